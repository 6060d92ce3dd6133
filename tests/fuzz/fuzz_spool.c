/*
 * libFuzzer target over the spool segment reader (lv_spool_open and
 * lv_spool_next on segments an earlier run left).
 *
 * The first byte picks the mode. Raw (low bit clear): the rest is a segment
 * file as it is. Built (low bit set): the rest drives a writer of the format
 * documented in spool.h, written here from that description (zlib's crc32
 * for the checksums), which lays out version 1 and version 2 frames with
 * fuzz-chosen records, done fields and outputs over one or two segments,
 * maybe a torn frame at the end of the last one, and maybe damage: a flipped
 * byte in a header or a payload.
 *
 * Oracles: no crash, leak or unbounded allocation, and a bounded number of
 * batches; every batch handed out has its records tiling its data, each
 * text followed by '\n'; and when the built segments carry no damage, the
 * batches are exactly the frames written (in order, records and texts
 * equal), less those every output had marked done, each for the outputs
 * not yet done (version 1 frames: every output), the torn frame left out.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "buffer/spool.h"
#include "logveil/log.h"
#include "logveil/stage.h"

#define NOUTPUTS 3
#define ALL ((1u << NOUTPUTS) - 1)
#define SIG 0x5eed5eedu
#define MAX_FRAMES 16
#define MAX_RECS 6
#define DATA_LIMIT (1u << 20)

static char dir[64];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(dir, sizeof dir, "%s/lv-fuzz-spool-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir))
        abort();
    lv_log_set_level(LV_LOG_ERROR + 1); /* damage is logged at every run otherwise */
    return 0;
}

static void clear_dir(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[128];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
}

/* ---- reading the fuzz input ------------------------------------------------ */

struct in {
    const uint8_t *p;
    size_t n;
};

static uint64_t take(struct in *in, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes && in->n; i++, in->p++, in->n--)
        v |= (uint64_t)in->p[0] << (8 * i);
    return v;
}

/* ---- the writer ------------------------------------------------------------ */

struct rec {
    struct lv_record r;
    char text[64];
};

struct frame {
    int version;
    uint32_t outputs, done;
    size_t n;
    struct rec recs[MAX_RECS];
};

static void le(struct lv_buf *b, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        if (lv_buf_putc(b, (char)(v >> (8 * i))) < 0)
            abort();
}

static uint32_t crc_of(const void *p, size_t n)
{
    return (uint32_t)crc32(0, p, (uInt)n);
}

static void put_frame(struct lv_buf *seg, const struct frame *f)
{
    struct lv_buf pay;
    lv_buf_init(&pay, 256, 0);
    for (size_t i = 0; i < f->n; i++) {
        const struct lv_record *r = &f->recs[i].r;
        le(&pay, r->level, 1);
        le(&pay, r->stream, 1);
        le(&pay, r->keep, 1);
        le(&pay, (uint64_t)r->time_ns, 8);
        le(&pay, r->key_hash, 8);
        le(&pay, r->pos.source, 4);
        le(&pay, r->pos.end, 8);
        le(&pay, r->len, 4);
    }
    for (size_t i = 0; i < f->n; i++) {
        if (lv_buf_append(&pay, f->recs[i].text, f->recs[i].r.len) < 0)
            abort();
        le(&pay, '\n', 1);
    }
    size_t start = seg->len;
    le(seg, 0x4653564cu, 4);
    le(seg, (uint64_t)f->version, 2);
    le(seg, 0, 2);
    le(seg, pay.len, 4);
    le(seg, f->n, 4);
    le(seg, pay.len ? crc_of(pay.data, pay.len) : 0, 4);
    if (f->version == 1) {
        le(seg, crc_of(seg->data + start, 20), 4);
    } else {
        le(seg, f->outputs, 4);
        le(seg, SIG, 4);
        le(seg, crc_of(seg->data + start, 28), 4);
        size_t d = seg->len;
        le(seg, f->done, 4);
        le(seg, crc_of(seg->data + d, 4), 4);
    }
    if (lv_buf_append(seg, pay.data, pay.len) < 0)
        abort();
    lv_buf_free(&pay);
}

static void make_frame(struct in *in, struct frame *f)
{
    uint64_t c = take(in, 1);
    f->version = (c & 1) ? 1 : 2;
    f->n = (c >> 1) % (MAX_RECS + 1);
    f->outputs = (uint32_t)(take(in, 1) % ALL) + 1;
    f->done = (c & 0x80) && f->version == 2 ? (uint32_t)take(in, 1) & f->outputs : 0;
    for (size_t i = 0; i < f->n; i++) {
        struct rec *r = &f->recs[i];
        memset(r, 0, sizeof *r);
        r->r.level = (uint8_t)take(in, 1);
        r->r.stream = (uint8_t)take(in, 1);
        r->r.keep = (uint8_t)take(in, 1);
        r->r.time_ns = (int64_t)take(in, 8);
        r->r.key_hash = take(in, 8);
        r->r.pos.source = (uint32_t)take(in, 4);
        r->r.pos.end = take(in, 8);
        r->r.len = (uint32_t)(take(in, 1) % sizeof r->text);
        for (uint32_t k = 0; k < r->r.len; k++)
            r->text[k] = (char)take(in, 1);
    }
}

static void write_seg(uint64_t num, const struct lv_buf *b)
{
    char p[128];
    snprintf(p, sizeof p, "%s/seg-%016llx.lvs", dir, (unsigned long long)num);
    FILE *f = fopen(p, "wb");
    if (!f || (b->len && fwrite(b->data, 1, b->len, f) != b->len) || fclose(f) != 0)
        abort();
}

/* Lays out the frames; true when nothing was damaged on purpose. */
static bool build(struct in *in, struct frame *frames, size_t *nframes, size_t *whole)
{
    uint64_t c = take(in, 2);
    size_t n = 1 + (size_t)(c % MAX_FRAMES);
    size_t split = (c >> 4) & 1 ? (size_t)((c >> 5) % (n + 1)) : n; /* frames in segment 1 */
    bool torn = (c >> 9) & 1;
    int damage = (int)((c >> 10) & 3); /* 0, 1: none; 2: a header; 3: a payload */
    struct lv_buf seg[2];
    lv_buf_init(&seg[0], 4096, 0);
    lv_buf_init(&seg[1], 4096, 0);
    size_t frame_start = 0;
    for (size_t i = 0; i < n; i++) {
        make_frame(in, &frames[i]);
        struct lv_buf *b = &seg[i >= split];
        frame_start = b->len;
        put_frame(b, &frames[i]);
    }
    struct lv_buf *last = &seg[n > split];
    *nframes = n;
    *whole = n;
    if (torn && last->len > frame_start + 1) { /* the last frame cut short */
        last->len = frame_start + 1 + (size_t)(take(in, 2) % (last->len - frame_start - 1));
        (*whole)--;
    }
    bool clean = damage < 2 || !seg[0].len;
    if (!clean) {
        size_t at =
            (size_t)take(in, 2) % (damage == 2 ? (seg[0].len < 32 ? seg[0].len : 32) : seg[0].len);
        seg[0].data[at] ^= (char)(1 + take(in, 1) % 255);
    }
    write_seg(1, &seg[0]);
    if (split < n)
        write_seg(2, &seg[1]);
    lv_buf_free(&seg[0]);
    lv_buf_free(&seg[1]);
    return clean;
}

/* ---- reading it back ------------------------------------------------------- */

static void check_tiling(const struct lv_batch *b)
{
    size_t at = 0;
    for (size_t i = 0; i < b->n; i++) {
        const struct lv_record *r = &b->recs[i];
        if (r->off != at || r->off + r->len + 1 > b->data.len ||
            b->data.data[r->off + r->len] != '\n') {
            fprintf(stderr, "batch record %zu does not tile its data\n", i);
            abort();
        }
        at = r->off + r->len + 1;
    }
    if (at != b->data.len) {
        fprintf(stderr, "batch data has bytes past its records\n");
        abort();
    }
}

static bool same_rec(const struct lv_batch *b, size_t i, const struct rec *w)
{
    const struct lv_record *r = &b->recs[i];
    return r->level == w->r.level && r->stream == w->r.stream && r->keep == w->r.keep &&
           r->time_ns == w->r.time_ns && r->key_hash == w->r.key_hash &&
           r->pos.source == w->r.pos.source && r->pos.end == w->r.pos.end && r->len == w->r.len &&
           memcmp(b->data.data + r->off, w->text, r->len) == 0;
}

/* The next frame written that some output still needs, from *next on. */
static const struct frame *expected(const struct frame *frames, size_t whole, size_t *next)
{
    while (*next < whole) {
        const struct frame *f = &frames[(*next)++];
        uint32_t outputs = f->version == 1 ? ALL : f->outputs;
        if (outputs & ~f->done)
            return f;
    }
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct frame frames[MAX_FRAMES];
    if (size == 0)
        return 0;
    clear_dir();
    struct in in = {data + 1, size - 1};
    size_t nframes = 0, whole = 0, next = 0;
    bool clean = false, built = data[0] & 1;
    if (built) {
        clean = build(&in, frames, &nframes, &whole);
    } else {
        struct lv_buf raw = {(char *)(uintptr_t)(data + 1), size - 1, size - 1, 0};
        write_seg(1, &raw);
    }
    char err[256];
    struct lv_spool *s = lv_spool_open(dir, 64u << 20, NOUTPUTS, SIG, err, sizeof err);
    if (!s) {
        fprintf(stderr, "spool open: %s\n", err);
        abort();
    }
    struct lv_batch b;
    memset(&b, 0, sizeof b);
    lv_buf_init(&b.data, 0, DATA_LIMIT);
    uint32_t outputs;
    size_t batches = 0;
    int rc;
    while ((rc = lv_spool_next(s, &b, &outputs)) == 0) {
        check_tiling(&b);
        /* A frame is a 24-byte header at least; built ones are counted. */
        if (++batches > (built ? nframes : (size - 1) / 24)) {
            fprintf(stderr, "more batches than the segment can hold frames\n");
            abort();
        }
        if (clean) {
            const struct frame *f = expected(frames, whole, &next);
            uint32_t want = f ? (f->version == 1 ? ALL : f->outputs) & ~f->done : 0;
            bool same = f && b.n == f->n && outputs == want;
            for (size_t i = 0; same && i < b.n; i++)
                same = same_rec(&b, i, &f->recs[i]);
            if (!same) {
                fprintf(stderr,
                        "batch %zu is not the frame written: %zu records for outputs %x, "
                        "frame %zu (version %d) has %zu for %x, done %x\n",
                        batches, b.n, outputs, next - 1, f ? f->version : 0, f ? f->n : 0,
                        f ? f->outputs : 0, f ? f->done : 0);
                abort();
            }
        }
        lv_spool_settled(s, &b);
    }
    if (clean && (rc != -ENOENT || expected(frames, whole, &next))) {
        fprintf(stderr, "frames written were not all read back (rc %d)\n", rc);
        abort();
    }
    lv_buf_free(&b.data);
    free(b.recs);
    lv_spool_close(s);
    return 0;
}
