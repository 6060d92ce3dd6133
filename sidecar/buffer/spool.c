/*
 * The disk spool (the format is in spool.h). Segments are kept in an array,
 * oldest first; the last one is the one being written, if any. Each segment
 * remembers how far it has been read and how many of the batches handed out
 * from it have been settled, so it can be deleted as soon as it is both read
 * to its end and settled, whatever order the outputs settle batches in.
 *
 * A replayed batch carries the number of the segment it came from and its
 * frame's offset: settling is a count per segment, so nothing per batch is
 * kept in memory, and marking a frame done for an output is one small write
 * at its offset. Reading uses
 * the caller's batch buffers and one fixed scratch buffer, so memory does
 * not grow with the amount spooled; appending keeps one buffer for the
 * records' metadata, as large as the largest batch appended has needed.
 *
 * A frame is trusted only as far as its checksums go: the header has its own
 * CRC, so a length is never followed unless it is the length that was
 * written. A torn tail (fewer bytes than a header, a valid header whose
 * payload runs past the end of the file, or zero bytes to the end) is not
 * counted: its append never returned 0, so nothing was acknowledged for it.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include "logveil/log.h"
#include "spool.h"

#define MAGIC 0x4653564cu /* "LVSF" read as little-endian */
#define VERSION 2
#define HDR1_LEN 24   /* version 1: no outputs, no done field */
#define HDR_LEN 32    /* version 2 header */
#define DONE_LEN 8    /* version 2: the done field after the header */
#define PREFIX_LEN (HDR_LEN + DONE_LEN)
#define META_LEN 35
#define SCRATCH_LEN (64 * 1024) /* for scans and metadata; at least PREFIX_LEN */
#define NAME_LEN 25             /* "seg-" 16 hex ".lvs" and the NUL */

struct segment {
    uint64_t num;      /* from the name: segments sort by it */
    uint64_t size;     /* bytes of whole frames written, or the file's size */
    uint64_t read_off; /* next frame to hand out */
    uint64_t handed, settled;
    int fd; /* -1 until read or written */
};

struct lv_spool {
    char *dir;
    int dirfd;
    uint64_t max_bytes, bytes;
    uint32_t all_outputs; /* this run's outputs, as a mask */
    uint32_t sig;         /* and their signature */
    bool sig_logged;      /* frames of other outputs were met (logged once) */
    uint64_t first_own;   /* segments numbered below were left by an earlier run */
    uint64_t unread[32];  /* by output: frames of this run not yet handed out */
    struct segment *segs;
    size_t n, cap;
    bool writing;      /* segs[n - 1] is being appended to */
    uint64_t next_num; /* for the next segment created */
    struct lv_buf meta;
    unsigned char *scratch;
};

/* What reading one frame came to, besides a negative errno. */
enum { FRAME_OK = 1, FRAME_SKIPPED, FRAME_END };

/* ---- little-endian fields ------------------------------------------------------- */

static unsigned char *put_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        *p++ = (unsigned char)(v >> (8 * i));
    return p;
}

static uint64_t get_le(const unsigned char **p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)(*p)[i] << (8 * i);
    *p += bytes;
    return v;
}

/* zlib's crc32() starts over when given a NULL buffer: empty buffers are skipped. */
static uint32_t crc(uint32_t c, const void *p, size_t n)
{
    return n ? (uint32_t)crc32_z(c, p, n) : c;
}

/* ---- frames --------------------------------------------------------------------- */

struct frame_hdr {
    uint16_t version;
    uint32_t payload_len, nrecs, payload_crc;
    uint32_t outputs, sig, done;
    size_t len; /* bytes before the payload: PREFIX_LEN, or HDR1_LEN for version 1 */
};

static void encode_hdr(unsigned char *p, const struct frame_hdr *h)
{
    unsigned char *q = put_le(p, MAGIC, 4);
    q = put_le(q, VERSION, 2);
    q = put_le(q, 0, 2);
    q = put_le(q, h->payload_len, 4);
    q = put_le(q, h->nrecs, 4);
    q = put_le(q, h->payload_crc, 4);
    q = put_le(q, h->outputs, 4);
    q = put_le(q, h->sig, 4);
    put_le(q, crc(0, p, 28), 4);
}

/* The done field: a mask and its CRC. */
static void encode_done(unsigned char *p, uint32_t done)
{
    put_le(p, done, 4);
    put_le(p + 4, crc(0, p, 4), 4);
}

/* A done field that does not check (torn, never written) reads as none. */
static uint32_t decode_done(const unsigned char *p)
{
    const unsigned char *q = p;
    uint32_t done = (uint32_t)get_le(&q, 4);
    return get_le(&q, 4) == crc(0, p, 4) ? done : 0;
}

/* Whether the `avail` bytes at `p` start with a header whose own CRC checks;
 * fills `h` when they do (version 2 needs its done field too). */
static bool decode_hdr(const unsigned char *p, size_t avail, struct frame_hdr *h)
{
    const unsigned char *q = p;
    if (avail < HDR1_LEN || get_le(&q, 4) != MAGIC)
        return false;
    h->version = (uint16_t)get_le(&q, 2);
    q += 2; /* flags */
    h->payload_len = (uint32_t)get_le(&q, 4);
    h->nrecs = (uint32_t)get_le(&q, 4);
    h->payload_crc = (uint32_t)get_le(&q, 4);
    if (h->version == 1) {
        h->outputs = UINT32_MAX;
        h->sig = h->done = 0;
        h->len = HDR1_LEN;
        return get_le(&q, 4) == crc(0, p, 20);
    }
    if (h->version != VERSION || avail < PREFIX_LEN)
        return false;
    h->outputs = (uint32_t)get_le(&q, 4);
    h->sig = (uint32_t)get_le(&q, 4);
    h->len = PREFIX_LEN;
    h->done = decode_done(p + HDR_LEN);
    return get_le(&q, 4) == crc(0, p, 28);
}

static void encode_rec(unsigned char *p, const struct lv_record *r)
{
    p = put_le(p, r->level, 1);
    p = put_le(p, r->stream, 1);
    p = put_le(p, r->keep, 1);
    p = put_le(p, (uint64_t)r->time_ns, 8);
    p = put_le(p, r->key_hash, 8);
    p = put_le(p, r->pos.source, 4);
    p = put_le(p, r->pos.end, 8);
    put_le(p, r->len, 4);
}

static void decode_rec(const unsigned char *p, struct lv_record *r)
{
    r->level = (uint8_t)get_le(&p, 1);
    r->stream = (uint8_t)get_le(&p, 1);
    r->keep = (uint8_t)get_le(&p, 1);
    r->time_ns = (int64_t)get_le(&p, 8);
    r->key_hash = get_le(&p, 8);
    r->pos.source = (uint32_t)get_le(&p, 4);
    r->pos.end = get_le(&p, 8);
    r->len = (uint32_t)get_le(&p, 4);
}

/* ---- files ---------------------------------------------------------------------- */

static void seg_name(char out[NAME_LEN], uint64_t num)
{
    snprintf(out, NAME_LEN, "seg-%016" PRIx64 ".lvs", num);
}

/* Exactly what seg_name() writes; anything else in the directory is not ours. */
static bool parse_name(const char *name, uint64_t *num)
{
    if (strlen(name) != NAME_LEN - 1 || memcmp(name, "seg-", 4) != 0 ||
        strcmp(name + 20, ".lvs") != 0)
        return false;
    uint64_t v = 0;
    for (const char *p = name + 4; p < name + 20; p++) {
        int d = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : -1;
        if (d < 0)
            return false;
        v = v << 4 | (uint64_t)d;
    }
    *num = v;
    return true;
}

static int fsync_dir(struct lv_spool *s)
{
    if (fsync(s->dirfd) < 0) {
        lv_warn("spool %s: cannot sync the directory: %s", s->dir, strerror(errno));
        return -errno;
    }
    return 0;
}

/* Reads exactly `n` bytes at `off`; a short read means the file shrank under us. */
static int read_at(int fd, void *buf, size_t n, uint64_t off)
{
    for (size_t done = 0; done < n;) {
        ssize_t r = pread(fd, (char *)buf + done, n - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return -EIO;
        done += (size_t)r;
    }
    return 0;
}

static int write_at(int fd, struct iovec *iov, int iovcnt, uint64_t off)
{
    while (iovcnt > 0) {
        ssize_t w = pwritev(fd, iov, iovcnt, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        off += (uint64_t)w;
        for (; iovcnt > 0 && (size_t)w >= iov->iov_len; iov++, iovcnt--)
            w -= (ssize_t)iov->iov_len;
        if (iovcnt > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

/* ---- segments ------------------------------------------------------------------- */

static struct segment *push_segment(struct lv_spool *s, uint64_t num, uint64_t size, int fd)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->segs = lv_xrealloc(s->segs, s->cap * sizeof *s->segs);
    }
    struct segment *g = &s->segs[s->n++];
    *g = (struct segment){.num = num, .size = size, .fd = fd};
    s->bytes += size;
    return g;
}

static int by_num(const void *a, const void *b)
{
    const struct segment *x = a, *y = b;
    return x->num < y->num ? -1 : x->num > y->num;
}

static int load_segments(struct lv_spool *s, char *err, size_t errlen)
{
    DIR *d = opendir(s->dir);
    if (!d) {
        snprintf(err, errlen, "spool %s: cannot list: %s", s->dir, strerror(errno));
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint64_t num;
        struct stat st;
        if (!parse_name(e->d_name, &num))
            continue;
        if (num >= s->next_num)
            s->next_num = num + 1; /* a name in use, ours or not, is never reused */
        if (fstatat(s->dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
            push_segment(s, num, (uint64_t)st.st_size, -1);
    }
    closedir(d);
    if (s->n)
        qsort(s->segs, s->n, sizeof *s->segs, by_num);
    return 0;
}

/* Deletes segment `i` when it has been read to its end and all settled.
 * Whether it did. A segment that cannot be deleted is forgotten all the same
 * (and logged): the next run replays it, which duplicates rather than loses. */
static bool maybe_delete(struct lv_spool *s, size_t i)
{
    struct segment *g = &s->segs[i];
    if (g->read_off < g->size || g->settled < g->handed)
        return false;
    char name[NAME_LEN];
    seg_name(name, g->num);
    if (g->fd >= 0)
        close(g->fd);
    if (unlinkat(s->dirfd, name, 0) < 0)
        lv_warn("spool %s: cannot delete %s: %s", s->dir, name, strerror(errno));
    else
        fsync_dir(s);
    s->bytes -= g->size;
    if (i == s->n - 1)
        s->writing = false;
    memmove(g, g + 1, (s->n - i - 1) * sizeof *g);
    s->n--;
    return true;
}

/* A failed append leaves nothing behind: the segment is cut back to where
 * the frame began and no longer written to. */
static void undo_append(struct lv_spool *s, struct segment *g)
{
    char name[NAME_LEN];
    seg_name(name, g->num);
    if (ftruncate(g->fd, (off_t)g->size) < 0 || fdatasync(g->fd) < 0)
        lv_error("spool %s: cannot cut %s back after a failed write: %s", s->dir, name,
                 strerror(errno));
    s->writing = false;
    maybe_delete(s, s->n - 1);
}

/* The segment the next `frame_len` bytes go to, rolling or creating it. */
static struct segment *writable(struct lv_spool *s, uint64_t frame_len, int *rc)
{
    struct segment *last = s->writing ? &s->segs[s->n - 1] : NULL;
    if (last && last->size + frame_len <= LV_SPOOL_SEGMENT_BYTES)
        return last;
    s->writing = false;
    uint64_t num = s->next_num++; /* never tried twice, even when creating fails */
    char name[NAME_LEN];
    seg_name(name, num);
    int fd = openat(s->dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        *rc = -errno;
        lv_warn("spool %s: cannot create %s: %s", s->dir, name, strerror(errno));
        return NULL;
    }
    struct segment *g = push_segment(s, num, 0, fd);
    s->writing = true;
    *rc = fsync_dir(s);
    if (*rc == 0)
        return g;
    undo_append(s, g); /* its name may not survive a crash: not used */
    return NULL;
}

/* ---- open and close ------------------------------------------------------------- */

struct lv_spool *lv_spool_open(const char *dir, uint64_t max_bytes, unsigned noutputs,
                               uint32_t outputs_sig, char *err, size_t errlen)
{
    struct lv_spool *s = lv_xcalloc(1, sizeof *s);
    s->dir = lv_xstrdup(dir);
    s->max_bytes = max_bytes;
    s->all_outputs = noutputs >= 32 ? UINT32_MAX : (UINT32_C(1) << noutputs) - 1;
    s->sig = outputs_sig;
    s->next_num = 1;
    s->scratch = lv_xmalloc(SCRATCH_LEN);
    lv_buf_init(&s->meta, 0, 0);
    s->dirfd = -1;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "spool %s: cannot create: %s", dir, strerror(errno));
        goto err;
    }
    s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dirfd < 0) {
        snprintf(err, errlen, "spool %s: cannot open: %s", dir, strerror(errno));
        goto err;
    }
    if (flock(s->dirfd, LOCK_EX | LOCK_NB) < 0) {
        snprintf(err, errlen, "spool %s: %s", dir,
                 errno == EWOULDBLOCK ? "in use by another logveil" : strerror(errno));
        goto err;
    }
    if (load_segments(s, err, errlen) < 0)
        goto err;
    s->first_own = s->next_num;
    return s;
err:
    lv_spool_close(s);
    return NULL;
}

void lv_spool_close(struct lv_spool *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        if (s->segs[i].fd >= 0)
            close(s->segs[i].fd);
    if (s->dirfd >= 0)
        close(s->dirfd); /* releases the lock */
    lv_buf_free(&s->meta);
    free(s->scratch);
    free(s->segs);
    free(s->dir);
    free(s);
}

/* ---- appending ------------------------------------------------------------------ */

/* Fills s->meta with the records' metadata, checking that they tile the data
 * in order, each followed by its newline (what the frame's reader rebuilds). */
static int encode_meta(struct lv_spool *s, const struct lv_batch *b)
{
    s->meta.len = 0;
    if (b->n > UINT32_MAX || b->n > (SIZE_MAX - b->data.len) / META_LEN)
        return -EFBIG;
    if (lv_buf_reserve(&s->meta, b->n * META_LEN) < 0)
        return -ENOBUFS;
    size_t off = 0;
    for (size_t i = 0; i < b->n; i++) {
        const struct lv_record *r = &b->recs[i];
        if (r->off != off || r->len >= b->data.len - off || b->data.data[off + r->len] != '\n')
            return -EINVAL;
        off += (size_t)r->len + 1;
        encode_rec((unsigned char *)s->meta.data + s->meta.len, r);
        s->meta.len += META_LEN;
    }
    return off == b->data.len ? 0 : -EINVAL;
}

int lv_spool_append(struct lv_spool *s, const struct lv_batch *b, uint32_t outputs)
{
    int rc = encode_meta(s, b);
    if (rc < 0)
        return rc;
    if (s->meta.len + b->data.len > UINT32_MAX)
        return -EFBIG;
    uint64_t frame_len = PREFIX_LEN + s->meta.len + b->data.len;
    if (frame_len > s->max_bytes || s->bytes > s->max_bytes - frame_len)
        return -ENOSPC;
    struct segment *g = writable(s, frame_len, &rc);
    if (!g)
        return rc;
    unsigned char hdr[PREFIX_LEN];
    struct frame_hdr h = {.version = VERSION,
                          .payload_len = (uint32_t)(s->meta.len + b->data.len),
                          .nrecs = (uint32_t)b->n,
                          .payload_crc =
                              crc(crc(0, s->meta.data, s->meta.len), b->data.data, b->data.len),
                          .outputs = outputs,
                          .sig = s->sig};
    encode_hdr(hdr, &h);
    encode_done(hdr + HDR_LEN, 0);
    struct iovec iov[] = {
        {hdr, PREFIX_LEN}, {s->meta.data, s->meta.len}, {b->data.data, b->data.len}};
    rc = write_at(g->fd, iov, (int)LV_ARRAY_LEN(iov), g->size);
    if (rc == 0 && fdatasync(g->fd) < 0)
        rc = -errno;
    if (rc < 0) {
        undo_append(s, g);
        return rc;
    }
    g->size += frame_len;
    s->bytes += frame_len;
    for (unsigned i = 0; i < 32; i++)
        s->unread[i] += (outputs >> i) & 1;
    return 0;
}

/* ---- reading -------------------------------------------------------------------- */

/*
 * Looks for the next header whose CRC checks, from `from` on; *at is the end
 * of the segment when there is none. *zeros tells whether every byte looked
 * at was zero (what a crash can leave past the last write on some file
 * systems). Chunks overlap by a header's length less one, so a header across
 * two chunks is found (a version 2 header with its done field is the longest).
 */
static int find_hdr(struct lv_spool *s, struct segment *g, uint64_t from, uint64_t *at, bool *zeros)
{
    *zeros = true;
    for (uint64_t pos = from; pos + HDR1_LEN <= g->size; pos += SCRATCH_LEN - (PREFIX_LEN - 1)) {
        size_t n = g->size - pos < SCRATCH_LEN ? (size_t)(g->size - pos) : SCRATCH_LEN;
        int rc = read_at(g->fd, s->scratch, n, pos);
        if (rc < 0)
            return rc;
        struct frame_hdr h;
        for (size_t i = 0; i < n; i++) {
            *zeros &= s->scratch[i] == 0;
            if (decode_hdr(s->scratch + i, n - i, &h)) {
                *at = pos + i;
                return 0;
            }
        }
    }
    *at = g->size;
    return 0;
}

/* The frame at g->read_off has a bad header (so the scan cannot stop there):
 * skips to the next good one, counting one corrupt frame, or ends the
 * segment. What is left with no good header in it is damage, counted, unless
 * it is all zeros: a torn tail. */
static int resync(struct lv_spool *s, struct segment *g)
{
    uint64_t at;
    bool zeros;
    int rc = find_hdr(s, g, g->read_off, &at, &zeros);
    if (rc < 0)
        return rc;
    if (at < g->size || !zeros) {
        char name[NAME_LEN];
        seg_name(name, g->num);
        lv_metrics.spool_corrupt++;
        lv_metrics_drop(LV_DROP_SPOOL_CORRUPT, LV_LEVEL_UNKNOWN); /* their count was in it */
        lv_error("spool %s: %s damaged at offset %" PRIu64 " (a header fails its checksum): "
                 "%" PRIu64 " bytes skipped, the records in them are lost; counted as one "
                 "record dropped (spool_corrupt), how many there were is not known",
                 s->dir, name, g->read_off, at - g->read_off);
    }
    g->read_off = at;
    return at < g->size ? FRAME_SKIPPED : FRAME_END;
}

/* Reads the records' metadata into b->recs, in chunks, adding it to *c. */
static int read_meta(struct lv_spool *s, struct segment *g, struct lv_batch *b, uint64_t off,
                     uint32_t *c)
{
    const size_t per_chunk = SCRATCH_LEN / META_LEN;
    for (size_t i = 0; i < b->n; i += per_chunk) {
        size_t k = b->n - i < per_chunk ? b->n - i : per_chunk;
        int rc = read_at(g->fd, s->scratch, k * META_LEN, off + i * META_LEN);
        if (rc < 0)
            return rc;
        *c = crc(*c, s->scratch, k * META_LEN);
        for (size_t j = 0; j < k; j++)
            decode_rec(s->scratch + j * META_LEN, &b->recs[i + j]);
    }
    return 0;
}

/* Rebuilds record offsets over the new data; false if they do not tile it. */
static bool rebuild_offsets(struct lv_batch *b)
{
    size_t off = 0;
    for (size_t i = 0; i < b->n; i++) {
        struct lv_record *r = &b->recs[i];
        if (r->len >= b->data.len - off || b->data.data[off + r->len] != '\n')
            return false;
        r->off = off;
        off += (size_t)r->len + 1;
    }
    return off == b->data.len;
}

/* Fills `b` from the frame whose header `h` was read at g->read_off. */
static int read_payload(struct lv_spool *s, struct segment *g, const struct frame_hdr *h,
                        struct lv_batch *b)
{
    uint64_t meta_len = (uint64_t)h->nrecs * META_LEN;
    if (meta_len > h->payload_len || h->nrecs > h->payload_len - meta_len ||
        lv_buf_reserve(&b->data, h->payload_len - meta_len) < 0)
        return FRAME_SKIPPED; /* inconsistent, or too large for this batch */
    if (b->cap < h->nrecs) {
        b->recs = lv_xrealloc(b->recs, h->nrecs * sizeof *b->recs);
        b->cap = h->nrecs;
    }
    b->n = h->nrecs;
    uint64_t off = g->read_off + h->len;
    uint32_t c = 0;
    int rc = read_meta(s, g, b, off, &c);
    size_t text_len = (size_t)(h->payload_len - meta_len);
    if (rc == 0)
        rc = read_at(g->fd, b->data.data, text_len, off + meta_len);
    if (rc < 0)
        return rc;
    b->data.len = text_len;
    c = crc(c, b->data.data, text_len);
    return c == h->payload_crc && rebuild_offsets(b) ? FRAME_OK : FRAME_SKIPPED;
}

static unsigned popcount32(uint32_t v)
{
    return (unsigned)__builtin_popcount(v);
}

/* The outputs of this run that still need the frame of header `h`; whether
 * its done field may be written (its bits name this run's outputs). */
static uint32_t still_needed(struct lv_spool *s, const struct frame_hdr *h, bool *markable)
{
    *markable = h->version == VERSION && h->sig == s->sig;
    if (*markable)
        return h->outputs & ~h->done & s->all_outputs;
    if (h->version == VERSION && !s->sig_logged) {
        lv_warn("spool %s: batches spooled when other outputs were configured are replayed to "
                "every output",
                s->dir);
        s->sig_logged = true;
    }
    return s->all_outputs;
}

/* A frame whose header checks but whose payload does not: its records are
 * lost for every output that still needed them, and counted so. */
static void count_damaged(struct lv_spool *s, struct segment *g, const struct frame_hdr *h,
                          uint32_t need)
{
    char name[NAME_LEN];
    seg_name(name, g->num);
    uint64_t lost = (uint64_t)h->nrecs * popcount32(need);
    lv_metrics.spool_corrupt++;
    for (uint64_t k = 0; k < lost; k++)
        lv_metrics_drop(LV_DROP_SPOOL_CORRUPT, LV_LEVEL_UNKNOWN);
    lv_error("spool %s: %s damaged at offset %" PRIu64 " (its records fail their checksum, or "
             "do not fit): %u records lost, counted as dropped (reason spool_corrupt)",
             s->dir, name, g->read_off, h->nrecs);
}

/* Reads the frame at g->read_off into `b` (FRAME_OK, with *need the outputs
 * it is for), or skips it (FRAME_SKIPPED: damaged, or done for every output). */
static int read_frame(struct lv_spool *s, struct segment *g, struct lv_batch *b, uint32_t *need)
{
    unsigned char raw[PREFIX_LEN];
    struct frame_hdr h;
    uint64_t left = g->size - g->read_off;
    size_t avail = left < PREFIX_LEN ? (size_t)left : PREFIX_LEN;
    if (left < HDR1_LEN)
        return FRAME_END; /* torn inside a header */
    int rc = read_at(g->fd, raw, avail, g->read_off);
    if (rc < 0)
        return rc;
    if (!decode_hdr(raw, avail, &h))
        return avail < PREFIX_LEN ? FRAME_END : resync(s, g);
    if (h.payload_len > left - h.len)
        return FRAME_END; /* torn inside the payload */
    bool markable;
    *need = still_needed(s, &h, &markable);
    for (unsigned i = 0; g->num >= s->first_own && markable && i < 32; i++)
        if ((h.outputs >> i) & 1 && s->unread[i])
            s->unread[i]--; /* handed out, or skipped, from here on */
    rc = *need ? read_payload(s, g, &h, b) : FRAME_SKIPPED;
    if (rc < 0)
        return rc;
    if (rc == FRAME_SKIPPED && *need)
        count_damaged(s, g, &h, *need);
    if (rc == FRAME_SKIPPED) {
        b->n = 0;
        b->data.len = 0;
    } else {
        b->spool_id = g->num;
        b->spool_off = markable ? g->read_off : UINT64_MAX;
        b->spool_done = h.done;
    }
    g->read_off += h.len + (uint64_t)h.payload_len;
    return rc;
}

/* Opens a segment left by an earlier run (for writing too: done fields are
 * rewritten). A file that cannot be opened for a reason that will not pass
 * is given up (logged, and counted once). */
static int open_for_reading(struct lv_spool *s, struct segment *g)
{
    char name[NAME_LEN];
    seg_name(name, g->num);
    g->fd = openat(s->dirfd, name, O_RDWR | O_CLOEXEC);
    if (g->fd < 0 && (errno == EACCES || errno == EROFS))
        g->fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC); /* done fields stay unwritten */
    if (g->fd >= 0)
        return 0;
    int e = errno;
    if (e == EMFILE || e == ENFILE || e == ENOMEM || e == EINTR)
        return -e;
    lv_error("spool %s: cannot read %s, its batches are lost: %s; counted as one record "
             "dropped (spool_corrupt), how many there were is not known",
             s->dir, name, strerror(e));
    lv_metrics.spool_corrupt++;
    lv_metrics_drop(LV_DROP_SPOOL_CORRUPT, LV_LEVEL_UNKNOWN);
    g->read_off = g->size;
    return 0;
}

int lv_spool_next(struct lv_spool *s, struct lv_batch *b, uint32_t *outputs)
{
    b->n = 0;
    b->data.len = 0;
    size_t i = 0;
    while (i < s->n) {
        struct segment *g = &s->segs[i];
        if (g->read_off < g->size) {
            int rc = g->fd < 0 ? open_for_reading(s, g) : 0;
            if (rc == 0 && g->read_off < g->size)
                rc = read_frame(s, g, b, outputs);
            if (rc < 0) {
                b->n = 0;
                b->data.len = 0;
                return rc;
            }
            if (rc == FRAME_OK) {
                g->handed++;
                return 0;
            }
            if (rc == FRAME_END)
                g->read_off = g->size;
            if (g->read_off < g->size)
                continue; /* a frame was skipped; on to the next one */
        }
        if (!maybe_delete(s, i))
            i++;
    }
    return -ENOENT;
}

static struct segment *segment_of(struct lv_spool *s, uint64_t num)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->segs[i].num == num)
            return &s->segs[i];
    return NULL;
}

void lv_spool_done(struct lv_spool *s, struct lv_batch *b, unsigned i)
{
    struct segment *g = segment_of(s, b->spool_id);
    if (!g || g->fd < 0 || b->spool_off == UINT64_MAX)
        return;
    b->spool_done |= UINT32_C(1) << i;
    unsigned char done[DONE_LEN];
    encode_done(done, b->spool_done);
    /* Not synced: after a crash an older mask only means a duplicate. */
    if (pwrite(g->fd, done, DONE_LEN, (off_t)(b->spool_off + HDR_LEN)) != DONE_LEN)
        lv_debug("spool %s: cannot mark a frame done: %s", s->dir, strerror(errno));
}

uint32_t lv_spool_backlog(const struct lv_spool *s)
{
    if (lv_spool_empty(s))
        return 0;
    uint32_t outputs = 0;
    for (size_t i = 0; i < s->n; i++)
        if (s->segs[i].num < s->first_own && s->segs[i].read_off < s->segs[i].size)
            return s->all_outputs;
    for (unsigned i = 0; i < 32; i++)
        outputs |= (uint32_t)(s->unread[i] > 0) << i;
    return outputs & s->all_outputs;
}

bool lv_spool_empty(const struct lv_spool *s)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->segs[i].read_off < s->segs[i].size)
            return false;
    return true;
}

void lv_spool_settled(struct lv_spool *s, const struct lv_batch *b)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->segs[i].num != b->spool_id)
            continue;
        if (s->segs[i].settled >= s->segs[i].handed)
            abort(); /* settled twice: the caller's accounting is broken */
        s->segs[i].settled++;
        maybe_delete(s, i);
        return;
    }
    abort(); /* an id never handed out, or settled after its segment went */
}

uint64_t lv_spool_bytes(const struct lv_spool *s)
{
    return s->bytes;
}
