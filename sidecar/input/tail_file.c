/*
 * One followed file. Reads use pread() at the source's read offset, so the
 * descriptor carries no position of its own: starting over after a
 * truncation is only a new source at 0.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "logveil/log.h"
#include "tail_file.h"
#include "tail_gz.h"
#include "tail_scan.h"

#define FP_MAX LV_CHECKPOINT_FP_MAX
#define TAIL_MAX LV_CHECKPOINT_TAIL_MAX
#define GZ_TRAILER 8
#define TAIL_LOOKBACK 65536
/* A compressed file's decompressed size is known once read to its end. */
#define GZ_SIZE_UNKNOWN UINT64_MAX

struct lv_tail_file *lv_tail_file_new(struct lv_input *in, const char *input_name,
                                      struct lv_tail_guard *guard, const char *path, uint64_t dev,
                                      uint64_t ino)
{
    struct lv_tail_file *f = lv_xcalloc(1, sizeof *f);
    f->in = in;
    f->input_name = input_name;
    f->guard = guard;
    f->path = lv_xstrdup(path);
    f->dev = dev;
    f->ino = ino;
    f->fd = -1;
    return f;
}

static void fingerprint_tail(struct lv_tail_file *f, int fd, uint64_t at);
static void reset_count(struct lv_tail_file *f);
static void note_truncation_loss(struct lv_tail_file *f);

struct lv_tail_file *lv_tail_file_content_of(const struct lv_tail_file *f, const char *path,
                                             uint64_t offset)
{
    struct lv_tail_file *g = lv_tail_file_new(f->in, f->input_name, f->guard, path, 0, 0);
    g->fp = f->fp;
    g->fp_len = f->fp_len;
    g->fp_known = true;
    g->tail_fp = f->tail_fp;
    g->tail_len = f->tail_len;
    g->tail_at = f->tail_at;
    g->gz = f->gz;
    g->offset = g->read_to = g->size = offset;
    return g;
}

void lv_tail_file_close(struct lv_tail_file *f)
{
    if (f->src) {
        f->offset = lv_source_acked(f->src);
        f->read_to = lv_source_read_offset(f->src);
        lv_source_close(f->src);
        f->src = NULL;
    }
    if (f->fd >= 0 && f->tail_at != f->offset)
        fingerprint_tail(f, f->fd, f->offset);
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    lv_tail_gz_close(f->gzf);
    f->gzf = NULL;
}

void lv_tail_file_note_tail(struct lv_tail_file *f)
{
    if (f->src && f->fd >= 0 && !f->gz && lv_source_acked(f->src) != f->tail_at)
        fingerprint_tail(f, f->fd, lv_source_acked(f->src));
}

void lv_tail_file_free(struct lv_tail_file *f)
{
    if (!f)
        return;
    lv_tail_file_close(f);
    lv_tail_file_free(f->before);
    free(f->path);
    free(f);
}

/* ---- identity -------------------------------------------------------------------- */

static ssize_t pread_all(int fd, char *buf, size_t len, uint64_t at)
{
    ssize_t n;
    do
        n = pread(fd, buf, len, (off_t)at);
    while (n < 0 && errno == EINTR);
    return n;
}

/* Whether a file starting with the `n` bytes `head` is the one `f` describes. */
static bool same_content(const struct lv_tail_file *f, const char *head, size_t n)
{
    return !f->fp_known || (n >= f->fp_len && lv_checkpoint_fingerprint(head, f->fp_len) == f->fp);
}

static void set_fp(struct lv_tail_file *f, const char *head, size_t n)
{
    f->fp = lv_checkpoint_fingerprint(head, n);
    f->fp_len = (uint32_t)n;
    f->fp_known = true;
}

static void forget_tail(struct lv_tail_file *f)
{
    f->tail_fp = 0;
    f->tail_len = 0;
    f->tail_at = 0;
}

/* The tail fingerprint of a plain file: the bytes before `at`. */
static void fingerprint_tail(struct lv_tail_file *f, int fd, uint64_t at)
{
    char buf[TAIL_MAX];
    size_t want = at < TAIL_MAX ? (size_t)at : TAIL_MAX;
    ssize_t n = pread_all(fd, buf, want, at - want);
    forget_tail(f);
    f->tail_at = at;
    if (n == (ssize_t)want && want > 0) {
        f->tail_fp = lv_checkpoint_fingerprint(buf, want);
        f->tail_len = (uint32_t)want;
    }
}

/* The tail fingerprint of a gz file: its trailer. */
static bool trailer_fp(int fd, uint64_t *fp)
{
    unsigned char t[GZ_TRAILER];
    if (!lv_tail_gz_trailer(fd, t))
        return false;
    *fp = lv_checkpoint_fingerprint(t, sizeof t);
    return true;
}

static void fingerprint_trailer(struct lv_tail_file *f, int fd)
{
    forget_tail(f);
    if (trailer_fp(fd, &f->tail_fp))
        f->tail_len = GZ_TRAILER;
}

/* Whether the file open on `fd` (compressed when `gz`) holds what `f` is
 * known by. Without a tail fingerprint (a version 1 checkpoint), the first
 * bytes are all there is to compare. */
static bool holds(const struct lv_tail_file *f, int fd, bool gz)
{
    char buf[TAIL_MAX];
    ssize_t n = gz ? lv_tail_gz_head(fd, buf, f->fp_len) : pread_all(fd, buf, f->fp_len, 0);
    if (!f->fp_known || n != (ssize_t)f->fp_len || lv_checkpoint_fingerprint(buf, f->fp_len) != f->fp)
        return false;
    if (f->tail_len == 0)
        return true;
    if (f->gz) {
        uint64_t fp;
        return gz && trailer_fp(fd, &fp) && fp == f->tail_fp;
    }
    uint64_t at = f->tail_at - f->tail_len;
    n = gz ? lv_tail_gz_range(fd, at, buf, f->tail_len) : pread_all(fd, buf, f->tail_len, at);
    return n == (ssize_t)f->tail_len && lv_checkpoint_fingerprint(buf, f->tail_len) == f->tail_fp;
}

/* Opens the path, as the guard allows it, and checks it is still the file
 * the scan saw. A refusal was logged by the guard; it is also what a name
 * swapped for another file since the scan gets. */
static int open_checked(struct lv_tail_file *f, struct stat *st)
{
    int fd = lv_tail_guard_open(f->guard, f->path, st);
    if (fd < 0) {
        int err = -fd;
        bool quiet = err == ENOENT || err == ESTALE || err == EPERM;
        if (!quiet && !f->error_logged)
            lv_warn("input %s: cannot open %s: %s", f->input_name, f->path, strerror(err));
        f->error_logged = !quiet;
        return -err;
    }
    if ((uint64_t)st->st_dev != f->dev || (uint64_t)st->st_ino != f->ino) {
        close(fd); /* replaced since the scan: the next scan sorts it out */
        return -ESTALE;
    }
    f->error_logged = false;
    return fd;
}

/* read_from: tail starts at the beginning of the last line, so that the
 * line being written is read whole. */
static uint64_t last_line_start(int fd, uint64_t size)
{
    char *buf = lv_xmalloc(TAIL_LOOKBACK);
    size_t want = size < TAIL_LOOKBACK ? (size_t)size : TAIL_LOOKBACK;
    ssize_t n = pread_all(fd, buf, want, size - want);
    uint64_t start = size;
    if (n == (ssize_t)want) {
        char *nl = memrchr(buf, '\n', want);
        if (nl)
            start = size - want + (uint64_t)(nl - buf) + 1;
        else if (want == size)
            start = 0;
    }
    free(buf);
    return start;
}

static bool ends_with_gz(const char *path)
{
    size_t n = strlen(path);
    return n >= 3 && strcmp(path + n - 3, ".gz") == 0;
}

/* A version 1 checkpoint did not say which files were compressed: a
 * checkpointed .gz file whose bytes do not match may be one resumed in the
 * previous run. */
static bool became_gz(struct lv_tail_file *f, int fd)
{
    if (f->gz || !f->fp_known || f->fp_len == 0 || !ends_with_gz(f->path) || !holds(f, fd, true))
        return false;
    lv_info("input %s: %s is a compressed rotation; resuming it at offset %" PRIu64
            " of its decompressed content",
            f->input_name, f->path, f->offset);
    f->gz = true;
    fingerprint_trailer(f, fd);
    lv_metrics.files_read_compressed++;
    return true;
}

/* Fingerprints the first bytes (decompressed for a gz file); the length
 * read, or -1. */
static ssize_t fingerprint_head(struct lv_tail_file *f, int fd)
{
    char head[FP_MAX];
    ssize_t n = f->gz ? lv_tail_gz_head(fd, head, FP_MAX) : pread_all(fd, head, FP_MAX, 0);
    if (n >= 0)
        set_fp(f, head, (size_t)n);
    return n;
}

/* The content at f's identity is not what f was: it is read from 0, as a
 * compressed file only when it is one and is named like one. */
static void became_new(struct lv_tail_file *f, int fd)
{
    f->gz = lv_tail_gz_is_gzip(fd) && ends_with_gz(f->path);
    f->offset = f->read_to = 0;
    forget_tail(f);
    if (f->gz)
        fingerprint_trailer(f, fd);
}

bool lv_tail_file_probe_changed(struct lv_tail_file *f)
{
    struct stat st;
    char head[FP_MAX];
    int fd = open_checked(f, &st);
    if (fd < 0)
        return false;
    bool changed = f->fp_known && !holds(f, fd, f->gz) && !became_gz(f, fd);
    if (changed) {
        lv_info("input %s: %s is not the file checkpointed (a reused inode, or truncated and "
                "rewritten); reading it from the start",
                f->input_name, f->path);
        became_new(f, fd);
    }
    /* A short file's first bytes are fingerprinted again as it grows. */
    ssize_t n = f->gz ? lv_tail_gz_head(fd, head, FP_MAX) : pread_all(fd, head, FP_MAX, 0);
    if (n >= 0) {
        set_fp(f, head, (size_t)n);
        if (f->gz && f->tail_len == 0)
            fingerprint_trailer(f, fd);
        if (f->at_tail && !f->gz)
            f->offset = f->read_to = last_line_start(fd, (uint64_t)st.st_size);
        f->at_tail = false;
        f->verified = true;
        f->size = f->gz ? GZ_SIZE_UNKNOWN : (uint64_t)st.st_size;
    }
    close(fd);
    return changed;
}

/* ---- where it went --------------------------------------------------------------- */

bool lv_tail_file_exists(struct lv_tail_file *f)
{
    struct stat st;
    if (stat(f->path, &st) < 0 || (uint64_t)st.st_dev != f->dev || (uint64_t)st.st_ino != f->ino)
        return false;
    if (!f->gz) /* a compressed file's size is that of its content */
        f->size = (uint64_t)st.st_size;
    return true;
}

/* Looks for `f` among the rotated siblings of `path` (0.log ->
 * 0.log.20251121-101010) and takes that name. */
static bool find_sibling(struct lv_tail_file *f, const char *path)
{
    struct lv_tail_scan sib;
    bool found = false;
    lv_tail_scan_siblings(path, f->guard, &sib);
    for (size_t i = 0; i < sib.n && !found; i++) {
        const struct lv_tail_found *it = &sib.items[i];
        if ((uint64_t)it->st.st_dev != f->dev || (uint64_t)it->st.st_ino != f->ino)
            continue;
        free(f->path);
        f->path = lv_xstrdup(it->path);
        f->size = (uint64_t)it->st.st_size;
        found = true;
    }
    lv_tail_scan_free(&sib);
    return found;
}

bool lv_tail_file_locate(struct lv_tail_file *f)
{
    if (lv_tail_file_exists(f) || find_sibling(f, f->path))
        return true;
    char *real = realpath(f->path, NULL);
    bool found = real && strcmp(real, f->path) != 0 && find_sibling(f, real);
    free(real);
    return found;
}

/* Opens `path`, as the guard allows it, if it is still the file `st`
 * describes. */
static int open_as(struct lv_tail_guard *guard, const char *path, const struct stat *st)
{
    struct stat now;
    int fd = lv_tail_guard_open(guard, path, &now);
    if (fd >= 0 && (now.st_dev != st->st_dev || now.st_ino != st->st_ino)) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* The kubelet compresses <name> into <name>.gz. A file read to its end is
 * known there by that name, by the content length in the trailer and by
 * its first bytes, without decompressing the whole file. */
static bool compressed_by_name(const struct lv_tail_file *f, const char *path, int fd)
{
    size_t n = strlen(f->path);
    unsigned char t[GZ_TRAILER];
    char head[FP_MAX];
    if (f->gz || !f->fp_known || f->tail_at != f->offset || f->size != f->offset ||
        strncmp(path, f->path, n) != 0 || strcmp(path + n, ".gz") != 0 ||
        !lv_tail_gz_trailer(fd, t) || lv_tail_gz_trailer_size(t) != (uint32_t)f->offset)
        return false;
    ssize_t k = lv_tail_gz_head(fd, head, f->fp_len);
    return k == (ssize_t)f->fp_len && lv_checkpoint_fingerprint(head, f->fp_len) == f->fp;
}

bool lv_tail_file_holds(const struct lv_tail_file *f, const char *path, const struct stat *st,
                        bool *gz)
{
    int fd = open_as(f->guard, path, st);
    if (fd < 0)
        return false;
    *gz = lv_tail_gz_is_gzip(fd);
    bool ok = (*gz || !f->gz) && ((*gz && compressed_by_name(f, path, fd)) || holds(f, fd, *gz));
    close(fd);
    return ok;
}

void lv_tail_file_continue_in(struct lv_tail_file *f, const char *path, const struct stat *st,
                              bool gz)
{
    free(f->path);
    f->path = lv_xstrdup(path);
    f->dev = (uint64_t)st->st_dev;
    f->ino = (uint64_t)st->st_ino;
    f->verified = true;
    f->size = gz ? GZ_SIZE_UNKNOWN : (uint64_t)st->st_size;
    f->read_to = f->offset;
    if (gz && !f->gz) {
        int fd = open_as(f->guard, path, st);
        f->gz = true;
        forget_tail(f);
        if (fd >= 0) {
            fingerprint_trailer(f, fd);
            close(fd);
        }
    }
}

/* ---- generations ----------------------------------------------------------------- */

struct lv_tail_file *lv_tail_file_generation(struct lv_input *in, const char *input_name,
                                             struct lv_tail_guard *guard, const char *path,
                                             const struct stat *st)
{
    int fd = open_as(guard, path, st);
    if (fd < 0)
        return NULL;
    struct lv_tail_file *f = lv_tail_file_new(in, input_name, guard, path, (uint64_t)st->st_dev,
                                              (uint64_t)st->st_ino);
    f->gz = lv_tail_gz_is_gzip(fd) && ends_with_gz(path);
    if (f->gz)
        fingerprint_trailer(f, fd);
    bool ok = fingerprint_head(f, fd) >= 0;
    close(fd);
    if (!ok) {
        lv_tail_file_free(f);
        return NULL;
    }
    f->verified = true;
    f->size = f->gz ? GZ_SIZE_UNKNOWN : (uint64_t)st->st_size;
    return f;
}

bool lv_tail_file_seal(struct lv_tail_file *f)
{
    unsigned char t[GZ_TRAILER];
    struct stat st;
    int fd = open_checked(f, &st);
    if (fd < 0)
        return false;
    if (f->gz && lv_tail_gz_trailer(fd, t))
        f->offset = lv_tail_gz_trailer_size(t);
    else if (!f->gz)
        f->offset = (uint64_t)st.st_size;
    if (!f->gz)
        fingerprint_tail(f, fd, f->offset);
    f->read_to = f->size = f->offset;
    close(fd);
    return true;
}

/* ---- reading ---------------------------------------------------------------------- */

static void count_truncation(const struct lv_tail_file *f, const char *what)
{
    lv_warn("input %s: %s %s; reading it again from the start", f->input_name, f->path, what);
    lv_metrics.file_truncations++;
}

/* A compressed file is read from its start, through zlib; the reads skip
 * to the offset. It is never truncated or rewritten (the kubelet writes a
 * .tmp and renames it), and one whose content is not the one fingerprinted
 * is not read at all. */
static int open_gz(struct lv_tail_file *f, int fd)
{
    if (!holds(f, fd, true)) {
        /* Its content, which had bytes unread, is nowhere to be read. */
        if (!f->error_logged) {
            lv_metrics_drop(LV_DROP_DELETED_UNREAD, LV_LEVEL_UNKNOWN);
            lv_warn("input %s: %s is no longer the compressed file it was; not reading it; "
                    "counted as one record lost (deleted_unread)",
                    f->input_name, f->path);
        }
        f->error_logged = true;
        f->size = f->read_to; /* nothing more to read: forgotten at the next scan */
        close(fd);
        return -EINVAL;
    }
    unsigned char t[GZ_TRAILER];
    if (f->tail_len == 0)
        fingerprint_trailer(f, fd);
    f->gz_size_known = lv_tail_gz_trailer(fd, t);
    f->gz_size32 = f->gz_size_known ? lv_tail_gz_trailer_size(t) : 0;
    f->gzf = lv_tail_gz_open(fd);
    if (!f->gzf) {
        int err = errno;
        lv_warn("input %s: cannot decompress %s: %s", f->input_name, f->path, strerror(err));
        return -err;
    }
    f->gz_pos = 0;
    f->read_to = f->offset;
    reset_count(f);
    f->src = lv_source_open(f->in->pipeline, f->in, f->path, f->offset);
    f->eof = f->flushed = false;
    f->verified = f->opened = true;
    lv_debug("input %s: following compressed %s from offset %" PRIu64, f->input_name, f->path,
             f->offset);
    return 0;
}

/* What a file truncated (under us, or while closed) had been, when it can
 * be recognised: its first bytes and the bytes before its last tail
 * fingerprint, closed at the acknowledged offset. A copy taken before the
 * truncation (copytruncate) holds it. */
static struct lv_tail_file *before_truncation(const struct lv_tail_file *f, uint64_t acked)
{
    /* Without the bytes before an offset (none noted yet: truncated within
     * a second of being opened), a first-bytes fingerprint of full length
     * still tells a copy of this content from other files. */
    if (f->gz || !f->fp_known || f->fp_len == 0 || (f->tail_len == 0 && f->fp_len < FP_MAX))
        return NULL;
    return lv_tail_file_content_of(f, f->path, acked);
}

int lv_tail_file_open(struct lv_tail_file *f)
{
    struct stat st;
    char head[FP_MAX];
    int fd = open_checked(f, &st);
    if (fd < 0)
        return fd;
    if (f->gz)
        return open_gz(f, fd);
    ssize_t n = pread_all(fd, head, sizeof head, 0);
    if (n < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    uint64_t off = f->offset;
    bool same_start = same_content(f, head, (size_t)n);
    if (same_start && off > (uint64_t)st.st_size) {
        count_truncation(f, "is shorter than its checkpoint");
        off = 0;
    } else if (!same_start || (off > 0 && f->tail_at == off && !holds(f, fd, false))) {
        lv_info("input %s: %s changed content (a reused inode, or rewritten); reading it from "
                "the start",
                f->input_name, f->path);
        off = 0;
    }
    int rc = off != f->offset;
    if (rc) {
        /* Read this run, the lines it had unread were counted while it
         * was closed; from a checkpoint, what followed the offset is not
         * known. */
        f->lost_unknown = !f->opened;
        f->lost_records = f->opened ? lv_tail_file_lost(f, &f->lost_bytes) : 0;
        f->lost_bytes = f->opened ? f->lost_bytes : 0;
        /* Truncated while it was closed (evicted, waiting, or logveil
         * down): a copy may hold the rest, as for a truncation under us. */
        lv_tail_file_free(f->before);
        f->before = before_truncation(f, f->offset);
        forget_tail(f);
    }
    set_fp(f, head, (size_t)n);
    f->fd = fd;
    f->offset = f->read_to = off;
    reset_count(f);
    f->size = (uint64_t)st.st_size;
    f->src = lv_source_open(f->in->pipeline, f->in, f->path, off);
    f->eof = f->flushed = false;
    f->verified = f->opened = true;
    f->ahead_from = f->ahead_to = 0;
    lv_debug("input %s: following %s from offset %" PRIu64, f->input_name, f->path, off);
    return rc;
}

/* Truncated or rewritten under us: a new source from 0. The old one's
 * partial line is not flushed; those bytes are gone from the file. */
static void restart(struct lv_tail_file *f, const char *what)
{
    char head[FP_MAX];
    count_truncation(f, what);
    note_truncation_loss(f);
    lv_tail_file_free(f->before);
    f->before = before_truncation(f, lv_source_acked(f->src));
    lv_source_close(f->src);
    f->src = lv_source_open(f->in->pipeline, f->in, f->path, 0);
    f->eof = f->flushed = false;
    ssize_t n = pread_all(f->fd, head, sizeof head, 0);
    f->fp_known = false;
    forget_tail(f);
    if (n >= 0)
        set_fp(f, head, (size_t)n);
}

/* Whether the file still starts as fingerprinted; a short file's
 * fingerprint grows with it. */
static bool same_start(struct lv_tail_file *f)
{
    char head[FP_MAX];
    ssize_t n = pread_all(f->fd, head, sizeof head, 0);
    if (n < 0)
        return true; /* cannot tell; the read that follows reports errors */
    if (!same_content(f, head, (size_t)n))
        return false;
    if (n > (ssize_t)f->fp_len)
        set_fp(f, head, (size_t)n);
    return true;
}

static enum lv_tail_read at_eof(struct lv_tail_file *f)
{
    struct stat st;
    f->eof = true;
    if (fstat(f->fd, &st) == 0 && (uint64_t)st.st_size < lv_source_read_offset(f->src)) {
        restart(f, "was truncated");
        return LV_TAIL_READ_RESTARTED;
    }
    return LV_TAIL_READ_EOF;
}

bool lv_tail_file_check(struct lv_tail_file *f)
{
    struct stat st;
    if (f->gz)
        return false;
    if (fstat(f->fd, &st) < 0)
        return false;
    f->size = (uint64_t)st.st_size;
    if (f->size < lv_source_read_offset(f->src)) {
        restart(f, "was truncated");
        return true;
    }
    if (!same_start(f)) {
        restart(f, "was rewritten from the start");
        return true;
    }
    return false;
}

/* A compressed file damaged part way: what its trailer says followed the
 * damage cannot be read. Its lines are not known; one record is counted
 * (nothing when only the checksum at the very end is wrong). */
static void gz_damaged(struct lv_tail_file *f, const char *what)
{
    if (f->error_logged)
        return;
    f->error_logged = true;
    uint32_t left = f->gz_size32 - (uint32_t)f->gz_pos; /* modulo 2^32, as the trailer */
    if (f->gz_size_known && left == 0) {
        lv_warn("input %s: cannot decompress %s: %s (after all of its content)", f->input_name,
                f->path, what);
        return;
    }
    lv_metrics_drop(LV_DROP_GZ_CORRUPT, LV_LEVEL_UNKNOWN);
    if (f->gz_size_known)
        lv_warn("input %s: cannot decompress %s past byte %" PRIu64 ": %s; the %" PRIu32
                " bytes its trailer says follow are lost, counted as one record (gz_corrupt)",
                f->input_name, f->path, f->gz_pos, what, left);
    else
        lv_warn("input %s: cannot decompress %s past byte %" PRIu64 ": %s; what follows is "
                "lost, counted as one record (gz_corrupt)",
                f->input_name, f->path, f->gz_pos, what);
}

/* Decompresses one chunk: skipped while short of the source's offset (a
 * resumed checkpoint), fed after. */
static enum lv_tail_read read_gz(struct lv_tail_file *f, char *buf, size_t len)
{
    uint64_t at = lv_source_read_offset(f->src);
    bool skip = f->gz_pos < at;
    if (skip && at - f->gz_pos < len)
        len = (size_t)(at - f->gz_pos);
    const char *what = NULL;
    ssize_t n = lv_tail_gz_read(f->gzf, buf, len, &what);
    if (n < 0) {
        gz_damaged(f, what);
        /* A damaged stream does not mend: what was read is all there is. */
        f->size = f->gz_pos;
        f->eof = true;
        return LV_TAIL_READ_FAILED;
    }
    if (n == 0) {
        if (skip && !f->error_logged)
            lv_warn("input %s: %s holds %" PRIu64 " bytes, fewer than its offset %" PRIu64,
                    f->input_name, f->path, f->gz_pos, at);
        f->error_logged |= skip;
        f->size = f->gz_pos;
        f->eof = true;
        return LV_TAIL_READ_EOF;
    }
    f->gz_pos += (uint64_t)n;
    f->eof = false;
    if (!skip)
        lv_source_feed(f->src, buf, (size_t)n);
    return LV_TAIL_READ_DATA;
}

enum lv_tail_read lv_tail_file_read(struct lv_tail_file *f, char *buf, size_t len)
{
    if (f->gz)
        return read_gz(f, buf, len);
    ssize_t n = pread_all(f->fd, buf, len, lv_source_read_offset(f->src));
    if (n < 0) {
        if (!f->error_logged)
            lv_warn("input %s: cannot read %s: %s", f->input_name, f->path, strerror(errno));
        f->error_logged = true;
        return LV_TAIL_READ_FAILED;
    }
    if (n == 0)
        return at_eof(f);
    /* New bytes: they must continue the file read so far, not a rewrite of
     * it (truncated and written past our offset between two reads). */
    if (!same_start(f)) {
        restart(f, "was rewritten from the start");
        return LV_TAIL_READ_RESTARTED;
    }
    f->eof = false;
    lv_source_feed(f->src, buf, (size_t)n);
    return LV_TAIL_READ_DATA;
}

/* ---- bytes unread while closed ------------------------------------------------------- */

static void reset_count(struct lv_tail_file *f)
{
    f->counted_to = f->line_end = f->offset;
    f->unread_lines = 0;
}

/* Counts the newlines in [from, to) of the file open on `fd` into *lines,
 * *end just past the last one; returns how far it got. */
static uint64_t count_newlines(int fd, uint64_t from, uint64_t to, uint64_t *lines,
                               uint64_t *end)
{
    char buf[65536];
    while (from < to) {
        size_t want = to - from < sizeof buf ? (size_t)(to - from) : sizeof buf;
        ssize_t n = pread_all(fd, buf, want, from);
        if (n <= 0)
            break;
        for (char *p = buf, *e = buf + n; (p = memchr(p, '\n', (size_t)(e - p))); p++) {
            (*lines)++;
            *end = from + (uint64_t)(p - buf) + 1;
        }
        from += (uint64_t)n;
    }
    return from;
}

/* Counts the newlines in [from, to) of the file open on `fd`, from where
 * the count stopped. */
static void count_lines(struct lv_tail_file *f, int fd, uint64_t from, uint64_t to)
{
    f->counted_to = count_newlines(fd, from, to, &f->unread_lines, &f->line_end);
}

uint64_t lv_tail_file_count_ahead(struct lv_tail_file *f, uint64_t budget)
{
    if (!f->src || f->gz || f->fd < 0 || !budget)
        return 0;
    uint64_t r = lv_source_read_offset(f->src);
    if (f->size <= r)
        return 0;
    if (f->ahead_to <= r || f->ahead_from > r) { /* none yet, or all read since */
        f->ahead_from = f->ahead_to = f->ahead_end = r;
        f->ahead_lines = 0;
        f->ahead_base = lv_source_newlines(f->src);
    }
    uint64_t from = f->ahead_to;
    if (from >= f->size)
        return 0;
    uint64_t to = f->size - from > budget ? from + budget : f->size;
    f->ahead_to = count_newlines(f->fd, from, to, &f->ahead_lines, &f->ahead_end);
    return f->ahead_to - from;
}

/* What a truncation of the open file takes: the lines counted ahead of the
 * reader that it has not read, plus one for a line it had begun or bytes
 * past the last counted newline. */
static void note_truncation_loss(struct lv_tail_file *f)
{
    uint64_t r = lv_source_read_offset(f->src), lines = 0, last = r, end = r;
    if (f->ahead_to > r && f->ahead_from <= r) {
        uint64_t read = lv_source_newlines(f->src) - f->ahead_base;
        lines = f->ahead_lines > read ? f->ahead_lines - read : 0; /* (rewritten meanwhile) */
        last = lines ? f->ahead_end : r;
        end = f->ahead_to;
    }
    f->lost_records = lines + (end > last || (lines == 0 && lv_source_mid_line(f->src)));
    f->lost_bytes = end - r;
    f->lost_unknown = false;
    f->ahead_from = f->ahead_to = 0;
}

void lv_tail_file_count_held(struct lv_tail_file *f)
{
    if (!f->src || f->gz || f->fd < 0)
        return;
    uint64_t acked = lv_source_acked(f->src), read = lv_source_read_offset(f->src);
    f->offset = acked; /* what the count starts from; the close sets it again */
    reset_count(f);
    count_lines(f, f->fd, acked, read);
}

uint64_t lv_tail_file_count_unread(struct lv_tail_file *f, uint64_t budget)
{
    if (f->counted_to < f->offset)
        reset_count(f);
    uint64_t from = f->counted_to;
    if (f->src || f->gz || f->size == GZ_SIZE_UNKNOWN || from >= f->size || !budget)
        return 0;
    struct stat st;
    int fd = open_checked(f, &st);
    if (fd < 0)
        return 0;
    uint64_t to = f->size - from > budget ? from + budget : f->size;
    count_lines(f, fd, from, to);
    close(fd);
    return f->counted_to - from;
}

uint64_t lv_tail_file_lost(const struct lv_tail_file *f, uint64_t *bytes)
{
    uint64_t end = f->size == GZ_SIZE_UNKNOWN ? f->read_to : f->size;
    end = end > f->read_to ? end : f->read_to;
    end = end > f->counted_to ? end : f->counted_to;
    *bytes = end > f->offset ? end - f->offset : 0;
    if (!*bytes)
        return 0;
    bool counted = f->counted_to >= f->offset && f->line_end >= f->offset;
    uint64_t lines = counted ? f->unread_lines : 0;
    uint64_t line_end = counted ? f->line_end : f->offset;
    return lines + (end > line_end);
}
