/*
 * The tail input: follows the files its globs name, as the kubelet and the
 * container runtimes write them (docs/protocols.md §1), with at-least-once
 * checkpoints.
 *
 * A file is known by its identity, (st_dev, st_ino) plus a fingerprint of its
 * first bytes, so an inode the filesystem hands out again is a new file and
 * never inherits a stale offset; a rotated file that the globs still match is
 * the same file under a new name, not a second one. Each open file is one
 * lv_source named by its path: the pipeline frames its lines and keeps a
 * trailing incomplete line until its newline arrives.
 *
 * Discovery is a glob + stat scan every scan_interval; inotify only brings the
 * next scan or read forward. A file the globs no longer name (renamed by
 * rotation, deleted) keeps its descriptor: it is read to its end, kept
 * rotate_wait seconds longer for late writes, its last partial line flushed,
 * and closed once its records are acknowledged. A file shorter than the
 * offset read, or whose first bytes changed, was truncated (copytruncate)
 * and is read again from 0.
 *
 * Generations. Rotations can outpace the scans (a busy loop, a restart, a
 * kubelet that gzips generations while logveil is down): whenever a new
 * file appears at a path, or a followed file leaves it, every rotated
 * generation of that path (`<path>.*`, compressed or not) is reconciled
 * with what is known. A generation is known when it is followed, when it is
 * a generation done with (read to its end, or already there when logveil
 * first started: the `done` list, kept in the checkpoint while the file
 * exists), or when it holds, under a new inode, the content of one of those
 * (a .gz of it, or a copy). A file gone with its end unread continues in
 * the generation that holds its content up to its offset. Every other
 * generation is read from 0, in the order of its name. Nothing here
 * compares file times with the clock: a clock stepped between two runs
 * cannot hide a generation (a version 1 checkpoint, which lists no done
 * generations, falls back once to the modification times).
 *
 * At most max_open_files are open; beyond that, files with something to
 * read wait, and the least recently active file that is fully read and
 * acknowledged makes room (preferably one holding no unterminated line).
 * A closed file deleted with bytes unread (an evicted file's unterminated
 * last line, a waiting file) cannot be read any more: its lines, counted
 * while it waited, are counted as dropped with reason deleted_unread.
 *
 * Checkpoints hold acknowledged offsets only (lv_source_acked()), never read
 * offsets. They are written every second while they change, at once when a
 * truncation resets one, at stop, and once more in destroy, after the
 * pipeline has drained. Partial lines are not flushed at shutdown: the next
 * run reads them again from the checkpoint.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <ev.h>

#include "checkpoint.h"
#include "logveil/log.h"
#include "logveil/stage.h"
#include "tail_file.h"
#include "tail_guard.h"
#include "tail_scan.h"

#define CHUNK (256 * 1024)
#define CHUNKS_PER_TURN 4 /* per file, before the other files get a turn */
#define HOUSEKEEPING 1.0  /* seconds: checkpoint, closing drained files, gauges */
#define SOON 0.02         /* seconds: gathers a burst of inotify events into one scan */
#define CHECKPOINT_MAX (64u << 20)
#define COUNT_BUDGET (4u << 20) /* bytes of waiting files counted per scan */
#define MAX_DONE 16384          /* generations done with, per input */
#define PRUNE_EVERY 30          /* housekeeping ticks between two prunings of the done list */

/* What reconciling the generations of a path does with the ones not known. */
enum gen_mode {
    GEN_READ,   /* read them: they were rotated while nobody looked */
    GEN_ADOPT,  /* first start, no checkpoint: they were there before; never read them */
    GEN_LEGACY, /* a version 1 checkpoint: read the ones written since it */
};

struct tail_ctx {
    struct lv_input *in;
    char name[32];
    char *ckpt_path;
    struct lv_tail_guard *guard; /* what may be read: every open goes through it */
    struct lv_tail_file **files; /* in discovery order */
    size_t nfiles, cap, nopen;
    char *buf; /* one read buffer for every file */
    struct lv_tail_watch *watch;
    ev_io notify;
    ev_timer scan_timer, soon, housekeeping;
    ev_idle reader;
    uint64_t gen;
    size_t turn; /* the file the reader starts at (modulo nfiles) */
    uint64_t ahead_budget; /* bytes open files may still count ahead of the reader, this scan */
    struct lv_tail_file **done; /* generations done with, closed */
    size_t ndone, capdone;
    char **bases; /* paths whose generations the scan reconciles at its end */
    size_t nbases, capbases;
    enum gen_mode first_mode; /* for the first scan; later scans read */
    int64_t legacy_ns;        /* GEN_LEGACY: generations older than this were read */
    unsigned ticks;
    bool done_full_logged;
    bool first_start;     /* no checkpoint: read_from applies to the first scan */
    bool scanned;
    bool started, paused, stopped;
    bool waiting_logged, ckpt_failing;
    struct lv_buf ckpt_last;        /* the text last written */
    uint64_t open_gauge, lag_gauge; /* this input's share of the global gauges */
};

static double now(const struct tail_ctx *t)
{
    return ev_now(t->in->loop);
}

static void write_checkpoint(struct tail_ctx *t);
static void truncated(struct tail_ctx *t, struct lv_tail_file *f);
static void want_generations(struct tail_ctx *t, const char *path);

/* ---- the file table --------------------------------------------------------------- */

static struct lv_tail_file *find_file(const struct tail_ctx *t, uint64_t dev, uint64_t ino)
{
    for (size_t i = 0; i < t->nfiles; i++)
        if (t->files[i]->dev == dev && t->files[i]->ino == ino)
            return t->files[i];
    return NULL;
}

/* Appends `f` to the files followed. */
static void follow(struct tail_ctx *t, struct lv_tail_file *f)
{
    if (t->nfiles == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->files = lv_xrealloc(t->files, t->cap * sizeof *t->files);
    }
    t->files[t->nfiles++] = f;
}

static struct lv_tail_file *add_file(struct tail_ctx *t, const char *path, uint64_t dev,
                                     uint64_t ino)
{
    struct lv_tail_file *f = lv_tail_file_new(t->in, t->name, t->guard, path, dev, ino);
    follow(t, f);
    return f;
}

static void close_file(struct tail_ctx *t, struct lv_tail_file *f)
{
    if (f->src)
        t->nopen--;
    lv_tail_file_close(f);
}

static void drop_file(struct tail_ctx *t, size_t i)
{
    close_file(t, t->files[i]);
    lv_tail_file_free(t->files[i]);
    memmove(&t->files[i], &t->files[i + 1], (t->nfiles - i - 1) * sizeof *t->files);
    t->nfiles--;
}

static void watch_dirs(struct tail_ctx *t, const char *path)
{
    lv_tail_watch_dir_of(t->watch, path);
    char *real = realpath(path, NULL); /* writes land in the target's directory */
    if (real)
        lv_tail_watch_dir_of(t->watch, real);
    free(real);
}

static void count_truncated(struct tail_ctx *t, const struct lv_tail_file *f);

static void open_file(struct tail_ctx *t, struct lv_tail_file *f)
{
    int rc = lv_tail_file_open(f);
    if (rc < 0)
        return;
    t->nopen++;
    f->active_at = now(t);
    watch_dirs(t, f->path);
    if (rc == 1) /* truncated or rewritten while closed */
        truncated(t, f);
}

/* ---- reading ------------------------------------------------------------------------- */

/* Up to CHUNKS_PER_TURN chunks; true when there may be more (or it may
 * not be read now: resume() comes when it may). */
static bool read_some(struct tail_ctx *t, struct lv_tail_file *f)
{
    for (int k = 0; k < CHUNKS_PER_TURN; k++) {
        if (!lv_source_may_read(f->src))
            return k > 0; /* another source finishes its line first */
        enum lv_tail_read r = lv_tail_file_read(f, t->buf, CHUNK);
        if (r == LV_TAIL_READ_RESTARTED)
            truncated(t, f);
        if (r == LV_TAIL_READ_EOF || r == LV_TAIL_READ_FAILED)
            return false;
        if (r == LV_TAIL_READ_DATA)
            f->active_at = now(t);
        if (t->paused || t->stopped) /* the feed may have paused the input */
            return true;
    }
    return true;
}

/* Each open file gets its turn, starting after the one whose turn the
 * last pause cut short: with a sink slower than one busy file, the other
 * files are still read (a fresh start at the first file would read it
 * alone for as long as it keeps the buffer full). */
static void on_reader(struct ev_loop *loop, ev_idle *w, int revents)
{
    struct tail_ctx *t = lv_container_of(w, struct tail_ctx, reader);
    bool more = false;
    size_t n = t->nfiles; /* a truncation may add a file: it is read next time */
    (void)revents;
    for (size_t k = 0; k < n && !t->paused && !t->stopped; k++) {
        size_t i = (t->turn + k) % n;
        struct lv_tail_file *f = t->files[i];
        if (f->src && !f->flushed)
            more |= read_some(t, f);
        if (t->paused)
            t->turn = i + 1;
    }
    if (!more || t->paused || t->stopped)
        ev_idle_stop(loop, w);
}

static void want_read(struct tail_ctx *t)
{
    if (t->started && !t->paused && !t->stopped)
        ev_idle_start(t->in->loop, &t->reader);
}

/* ---- generations --------------------------------------------------------------------- */

/* Whether `path` is `base` itself (with `self`) or names one of its
 * generations, `<base>.<suffix>`. */
static bool named_after(const char *path, const char *base, bool self)
{
    size_t n = strlen(base);
    return strncmp(path, base, n) == 0 && (path[n] == '.' || (self && path[n] == '\0'));
}

/* Whether `f` is one of the generations of `base` or of its target, or
 * (with `self`) one of those paths. */
static bool belongs(const struct lv_tail_file *f, const char *base, const char *real, bool self)
{
    return named_after(f->path, base, self) || (real && named_after(f->path, real, self));
}

static void forget_done(struct tail_ctx *t, size_t i)
{
    lv_tail_file_free(t->done[i]);
    memmove(&t->done[i], &t->done[i + 1], (t->ndone - i - 1) * sizeof *t->done);
    t->ndone--;
}

/* Keeps a closed file as a generation done with. Past MAX_DONE the oldest
 * is forgotten: should it still exist, a later reconciliation reads it
 * again (duplicates, never a loss). */
static void add_done(struct tail_ctx *t, struct lv_tail_file *f)
{
    if (t->ndone == MAX_DONE) {
        if (!t->done_full_logged)
            lv_warn("input %s: %d generations done with are remembered already; forgetting the "
                    "oldest (if it still exists it may be read again)",
                    t->name, MAX_DONE);
        t->done_full_logged = true;
        forget_done(t, 0);
    }
    if (t->ndone == t->capdone) {
        t->capdone = t->capdone ? t->capdone * 2 : 16;
        t->done = lv_xrealloc(t->done, t->capdone * sizeof *t->done);
    }
    f->matched = true;
    t->done[t->ndone++] = f;
}

/* A generation that has not been looked at: remembered as done with, not
 * read. */
static void adopt(struct tail_ctx *t, const struct lv_tail_found *g)
{
    struct lv_tail_file *f = lv_tail_file_generation(t->in, t->name, t->guard, g->path, &g->st);
    if (f && lv_tail_file_seal(f))
        add_done(t, f);
    else
        lv_tail_file_free(f);
}

/* The identity of `f` now names another file (a reused inode): its content,
 * if it is anywhere, is elsewhere, and is still looked for by content. */
static void let_go(struct lv_tail_file *f)
{
    f->dev = f->ino = 0;
}

/* Whether the generation `g` is known by its identity: followed, or done
 * with. A file that holds something else under a known identity (a reused
 * inode) is not known, and the stale entry lets go of the identity. */
static bool known_identity(struct tail_ctx *t, const struct lv_tail_found *g)
{
    bool gz;
    struct lv_tail_file *f = find_file(t, (uint64_t)g->st.st_dev, (uint64_t)g->st.st_ino);
    if (f && (f->verified || f->src))
        return true;
    if (f && lv_tail_file_holds(f, g->path, &g->st, &gz)) {
        free(f->path); /* a checkpointed file, renamed: where to look for it */
        f->path = lv_xstrdup(g->path);
        return true;
    }
    if (f)
        let_go(f);
    for (size_t i = 0; i < t->ndone; i++) {
        struct lv_tail_file *d = t->done[i];
        if (d->dev != (uint64_t)g->st.st_dev || d->ino != (uint64_t)g->st.st_ino)
            continue;
        /* A plain generation done with does not grow. */
        if ((!d->gz && (uint64_t)g->st.st_size != d->offset) ||
            !lv_tail_file_holds(d, g->path, &g->st, &gz)) {
            let_go(d);
            return false;
        }
        free(d->path);
        d->path = lv_xstrdup(g->path); /* renamed (.1 -> .2) */
        d->matched = true;
        return true;
    }
    return false;
}

/* A closed file gone with its end unread may continue in a generation of
 * its path under another inode: its compressed rotation, or a copy. */
static bool find_continuation(struct tail_ctx *t, struct lv_tail_file *f)
{
    if (f->src || !f->fp_known || f->fp_len == 0)
        return false;
    struct lv_tail_scan gens;
    bool found = false, gz;
    lv_tail_scan_generations(f->path, t->guard, &gens);
    for (size_t i = 0; i < gens.n && !found; i++) {
        const struct lv_tail_found *g = &gens.items[i];
        if (known_identity(t, g) || !lv_tail_file_holds(f, g->path, &g->st, &gz))
            continue;
        lv_info("input %s: %s is gone; %s holds the same content; resuming it at offset %" PRIu64
                "%s",
                t->name, f->path, g->path, f->offset, gz ? " of its decompressed content" : "");
        lv_metrics.files_read_compressed += gz && !f->gz;
        lv_tail_file_continue_in(f, g->path, &g->st, gz);
        f->rotated = true;
        f->gone_at = f->gone_at ? f->gone_at : now(t);
        found = true;
    }
    lv_tail_scan_free(&gens);
    return found;
}

/* A file truncated under us, or while it was closed: what it held before
 * may continue in a copy (copytruncate copies, then truncates), from its
 * acknowledged offset. Several copytruncates may have come and gone since
 * the last read (the input paused, the file closed, or logveil down): the
 * copies after the one that continues `was` hold lines nothing read, and
 * are read as unknown generations. Without a copy of `was`, what it had
 * unread is counted as lost; without `was` (nothing recognises it), its
 * copy is read again as an unknown generation too: duplicates, not a loss.
 * The reset to 0 is checkpointed at once. */
static void truncated(struct tail_ctx *t, struct lv_tail_file *f)
{
    struct lv_tail_file *was = f->before;
    f->before = NULL;
    if (was && find_continuation(t, was)) {
        follow(t, was);
    } else {
        lv_tail_file_free(was);
        count_truncated(t, f);
    }
    want_generations(t, f->path);
    write_checkpoint(t);
}

/* Whether what `f` is known by says something: an empty fingerprint, or
 * none of the bytes before an offset, matches too much to tell files apart
 * by content. */
static bool anchored(const struct lv_tail_file *f)
{
    return f->fp_known && f->fp_len > 0 && f->tail_len > 0;
}

/* Whether `g`, an unknown generation of `base`, holds content known under
 * another identity: a done generation (then compressed; the entry follows
 * it), or a followed file (a copy or compressed rotation of it, remembered
 * as done with: the followed file is read, not the copy). */
static bool holds_known(struct tail_ctx *t, const struct lv_tail_found *g, const char *base,
                        const char *real)
{
    bool gz;
    for (size_t i = 0; i < t->ndone; i++) {
        struct lv_tail_file *d = t->done[i];
        if (d->matched || !anchored(d) || !belongs(d, base, real, true) ||
            !lv_tail_file_holds(d, g->path, &g->st, &gz))
            continue;
        lv_debug("input %s: %s is %s, done with already", t->name, g->path, d->path);
        lv_tail_file_continue_in(d, g->path, &g->st, gz);
        d->matched = true;
        return true;
    }
    for (size_t i = 0; i < t->nfiles; i++) {
        struct lv_tail_file *f = t->files[i];
        if (!belongs(f, base, real, true))
            continue;
        lv_tail_file_note_tail(f);
        if (!anchored(f) || !lv_tail_file_holds(f, g->path, &g->st, &gz))
            continue;
        /* A copy holding more than was read here is left unknown: once
         * this file is found truncated, its unread end continues there. */
        uint64_t read = f->src ? lv_source_read_offset(f->src) : f->read_to;
        if (gz ? !f->src && f->size > f->read_to : (uint64_t)g->st.st_size > read)
            return true;
        adopt(t, g);
        return true;
    }
    return false;
}

/* An unknown generation: read from 0 like any rotated file. */
static void read_generation(struct tail_ctx *t, const struct lv_tail_found *g)
{
    struct lv_tail_file *f = lv_tail_file_generation(t->in, t->name, t->guard, g->path, &g->st);
    if (!f)
        return;
    lv_info("input %s: %s was rotated while nothing looked; reading it%s", t->name, g->path,
            f->gz ? " (decompressed)" : "");
    follow(t, f);
    f->rotated = true;
    f->gone_at = now(t);
}

/* Reconciles every generation of `base` with what is known (see the top of
 * this file); done generations of `base` no longer found are forgotten
 * (`base` itself is not one of its generations: it is never listed). */
static void reconcile(struct tail_ctx *t, const char *base, enum gen_mode mode)
{
    struct lv_tail_scan gens;
    char *real = realpath(base, NULL);
    lv_tail_scan_generations(base, t->guard, &gens);
    for (size_t i = 0; i < t->ndone; i++)
        t->done[i]->matched = false;
    for (size_t i = 0; i < gens.n; i++) {
        const struct lv_tail_found *g = &gens.items[i];
        int64_t mtime = (int64_t)g->st.st_mtim.tv_sec * 1000000000 + g->st.st_mtim.tv_nsec;
        if (known_identity(t, g))
            continue;
        if (mode == GEN_ADOPT || (mode == GEN_LEGACY && mtime < t->legacy_ns))
            adopt(t, g);
        else if (!holds_known(t, g, base, real))
            read_generation(t, g);
    }
    for (size_t i = t->ndone; i-- > 0;) /* listed as generations, and not found */
        if (!t->done[i]->matched && belongs(t->done[i], base, real, false))
            forget_done(t, i);
    free(real);
    lv_tail_scan_free(&gens);
}

/* The generations of `path` are reconciled at the end of this scan. */
static void want_generations(struct tail_ctx *t, const char *path)
{
    for (size_t i = 0; i < t->nbases; i++)
        if (strcmp(t->bases[i], path) == 0)
            return;
    if (t->nbases == t->capbases) {
        t->capbases = t->capbases ? t->capbases * 2 : 8;
        t->bases = lv_xrealloc(t->bases, t->capbases * sizeof *t->bases);
    }
    t->bases[t->nbases++] = lv_xstrdup(path);
}

static void reconcile_wanted(struct tail_ctx *t)
{
    enum gen_mode mode = t->scanned ? GEN_READ : t->first_mode;
    for (size_t i = 0; i < t->nbases; i++) {
        reconcile(t, t->bases[i], mode);
        free(t->bases[i]);
    }
    t->nbases = 0;
}

/* Done generations in a directory that is gone (a pod removed) are
 * forgotten; the others are forgotten when a reconciliation of their path
 * does not find them. */
static void prune_done(struct tail_ctx *t)
{
    for (size_t i = t->ndone; i-- > 0;) {
        char *slash = strrchr(t->done[i]->path, '/');
        char *dir = slash && slash != t->done[i]->path
                        ? lv_xstrndup(t->done[i]->path, (size_t)(slash - t->done[i]->path))
                        : NULL;
        struct stat st;
        if (dir && stat(dir, &st) < 0 && errno == ENOENT)
            forget_done(t, i);
        free(dir);
    }
}

/* ---- scanning ------------------------------------------------------------------------ */

static void found(struct tail_ctx *t, const struct lv_tail_found *it)
{
    struct lv_tail_file *f = find_file(t, (uint64_t)it->st.st_dev, (uint64_t)it->st.st_ino);
    if (!f) {
        f = add_file(t, it->path, (uint64_t)it->st.st_dev, (uint64_t)it->st.st_ino);
        f->at_tail = !t->scanned && t->first_start && t->in->conf->read_from == LV_READ_TAIL;
        want_generations(t, it->path); /* its predecessors may have come and gone unseen */
    }
    bool own = strcmp(f->path, it->path) == 0;
    if (f->seen != t->gen) {
        f->seen = t->gen;
        f->own_path_seen = own;
        f->alt_path = it->path;
        f->size = (uint64_t)it->st.st_size;
        f->gone_at = f->flushed ? f->gone_at : 0;
    } else {
        f->own_path_seen |= own;
    }
}

/* A file found under another name only (rotated, still matched) is renamed. */
static void follow_rename(struct tail_ctx *t, struct lv_tail_file *f)
{
    if (f->seen != t->gen || f->own_path_seen)
        return;
    lv_debug("input %s: %s is now %s", t->name, f->path, f->alt_path);
    free(f->path);
    f->path = lv_xstrdup(f->alt_path);
}

/* A file known only from the checkpoint is gone (deleted, or its content
 * replaced, while logveil was down) and nothing holds its content. How much
 * followed its offset is not known. At least one record was lost when the
 * checkpoint says bytes were unread, and, as far as can be told, when a
 * file is at its path now: the application went on writing there (the
 * kubelet rotates a file away only once it has grown): counted as one. A
 * file read to its end with nothing at its path (a rotated generation
 * pruned, a container removed) is taken to have lost nothing; what an
 * application wrote to it after the checkpoint, if anything, cannot be
 * known. */
static void count_gone(struct tail_ctx *t, const struct lv_tail_file *f, const char *path)
{
    struct stat st;
    bool successor = stat(path, &st) == 0;
    if (!f->had_unread && !successor) {
        lv_info("input %s: %s, checkpointed at offset %" PRIu64 " and read to its end then, is "
                "gone",
                t->name, path, f->offset);
        return;
    }
    lv_metrics_drop(LV_DROP_DELETED_UNREAD, LV_LEVEL_UNKNOWN);
    lv_warn("input %s: the file checkpointed at offset %" PRIu64 " of %s is gone (deleted, "
            "rotated away or rewritten while logveil was down) and no other file holds it: %s; "
            "counted as one record lost (deleted_unread), how many there were is not known",
            t->name, f->offset, path,
            f->had_unread ? "it had bytes unread" : "its path was written to since");
}

/* A file truncated (or rewritten from the start) before it was read to its
 * end, with no copy holding the rest: the lines lost, as counted. */
static void count_truncated(struct tail_ctx *t, const struct lv_tail_file *f)
{
    if (f->lost_unknown) {
        count_gone(t, f, f->path);
        return;
    }
    if (!f->lost_records)
        return;
    lv_metrics.dropped[LV_DROP_TRUNCATED_UNREAD][LV_LEVEL_UNKNOWN] += f->lost_records;
    lv_warn("input %s: %s was truncated with %" PRIu64 " bytes not read, and no copy of them was "
            "found: %" PRIu64 " records counted as dropped (truncated_unread)",
            t->name, f->path, f->lost_bytes, f->lost_records);
}

/* A checkpointed file whose inode now holds another file: what it had left
 * to read may continue in another generation of its path (compressed, or
 * copied before a truncation). `was` is its entry before the probe. */
static void lost_content(struct tail_ctx *t, const struct lv_tail_file *was, const char *path)
{
    /* Nothing read and nothing known unread, or nothing known at all. */
    if (!was->fp_known || (was->offset == 0 && !was->had_unread))
        return;
    struct lv_tail_file *g = lv_tail_file_content_of(was, path, was->offset);
    if (!find_continuation(t, g)) {
        count_gone(t, was, path);
        lv_tail_file_free(g);
        return;
    }
    follow(t, g);
}

/* A file the globs stopped naming: rotated (it keeps being read, under its
 * new name, until it is done) or deleted. Its path's generations are
 * reconciled. */
static void went_away(struct tail_ctx *t, struct lv_tail_file *f)
{
    char *was = lv_xstrdup(f->path);
    struct lv_tail_file before = *f;
    f->rotated = lv_tail_file_locate(f);
    f->gone_at = now(t);
    if (!f->verified && f->rotated && lv_tail_file_probe_changed(f))
        lost_content(t, &before, was); /* from the checkpoint; its inode was reused */
    if (f->rotated && strcmp(was, f->path) != 0)
        lv_info("input %s: %s was rotated to %s", t->name, was, f->path);
    else if (f->rotated)
        lv_info("input %s: %s is no longer matched; reading it to the end", t->name, was);
    else if (f->src)
        lv_info("input %s: %s was deleted or moved away; reading it to the end", t->name, was);
    else if (find_continuation(t, f))
        lv_debug("input %s: %s continues in %s", t->name, was, f->path);
    else if (!f->verified)
        count_gone(t, f, was);
    want_generations(t, was);
    free(was);
}

/* A closed file that cannot be read any more loses what it had not read:
 * counted, and logged once. */
static void count_lost(struct tail_ctx *t, const struct lv_tail_file *f)
{
    uint64_t bytes, lost = lv_tail_file_lost(f, &bytes);
    if (!bytes)
        return;
    lv_metrics.dropped[LV_DROP_DELETED_UNREAD][LV_LEVEL_UNKNOWN] += lost;
    lv_warn("input %s: %s was deleted with %" PRIu64 " bytes unread; %" PRIu64
            " records counted as dropped (deleted_unread)",
            t->name, f->path, bytes, lost);
}

/* A rotated file read to its end that still exists is remembered as done
 * with, so that no later reconciliation reads it again. */
static void retire(struct tail_ctx *t, size_t i)
{
    struct lv_tail_file *f = t->files[i];
    close_file(t, f);
    if (f->rotated && lv_tail_file_exists(f) && lv_tail_file_seal(f)) {
        memmove(&t->files[i], &t->files[i + 1], (t->nfiles - i - 1) * sizeof *t->files);
        t->nfiles--;
        add_done(t, f);
        return;
    }
    drop_file(t, i);
}

/* Files the scan did not find. Open ones are drained; closed ones that were
 * rotated with bytes unread wait to be opened; closed ones read to their end
 * that still exist are done with; the others are forgotten, what they had
 * left unread counted as lost. */
static void handle_unseen(struct tail_ctx *t, const struct lv_tail_scan *s)
{
    for (size_t i = t->nfiles; i-- > 0;) {
        struct lv_tail_file *f = t->files[i];
        if (f->seen == t->gen || !lv_tail_scan_covers(s, f->path))
            continue;
        if (!f->gone_at)
            went_away(t, f);
        else if (f->rotated && !f->src && !(f->rotated = lv_tail_file_exists(f)) &&
                 f->size > f->read_to)
            find_continuation(t, f); /* gone before it was opened again */
        if (f->src || (f->rotated && f->size > f->read_to))
            continue;
        if (!f->rotated && f->verified)
            count_lost(t, f);
        retire(t, i);
    }
}

/* Makes room by closing the least recently active file that is fully read
 * and acknowledged; one holding an unterminated last line only when no
 * other can go, and then its held lines are counted in case it is deleted
 * before it is opened again. */
static bool evict_idle(struct tail_ctx *t)
{
    struct lv_tail_file *best = NULL;
    bool best_holds = true;
    for (size_t i = 0; i < t->nfiles; i++) {
        struct lv_tail_file *f = t->files[i];
        if (!f->src || f->gone_at || !f->eof || f->size > lv_source_read_offset(f->src) ||
            !lv_source_settled(f->src))
            continue;
        bool holds = lv_source_read_offset(f->src) > lv_source_acked(f->src);
        if (!best || (best_holds && !holds) ||
            (holds == best_holds && f->active_at < best->active_at)) {
            best = f;
            best_holds = holds;
        }
    }
    if (best) {
        lv_debug("input %s: closing idle %s to make room", t->name, best->path);
        lv_tail_file_count_held(best);
        close_file(t, best);
    }
    return best != NULL;
}

static void open_waiting(struct tail_ctx *t)
{
    size_t waiting = 0, max = (size_t)t->in->conf->max_open_files;
    uint64_t budget = COUNT_BUDGET;
    for (size_t i = 0; i < t->nfiles; i++) {
        struct lv_tail_file *f = t->files[i];
        if (f->src || !f->verified || (f->seen != t->gen && !f->rotated))
            continue;
        bool has_data = f->size != f->read_to;
        if (t->nopen >= max && (!has_data || !evict_idle(t))) {
            if (has_data)
                budget -= lv_tail_file_count_unread(f, budget);
            waiting += has_data;
            continue;
        }
        open_file(t, f);
    }
    if (waiting && !t->waiting_logged)
        lv_warn("input %s: max_open_files (%zu) reached; %zu files wait", t->name, max, waiting);
    t->waiting_logged = waiting > 0;
}

/* After the globs: names, identities of files not yet checked, truncation
 * of open files. */
static void refresh(struct tail_ctx *t, struct lv_tail_file *f)
{
    bool seen = f->seen == t->gen;
    bool probe = seen && !f->src && !f->verified;
    struct lv_tail_file was = *f;                  /* the checkpoint's entry, before the probe */
    char *path = probe ? lv_xstrdup(f->path) : NULL; /* ... and its name, before a rename */
    follow_rename(t, f);
    if (probe) {
        /* A new file on the checkpointed one's inode: lost_content() looks
         * for the rest of the old one. Either way, the files rotated away
         * from its path while logveil was down went unseen: a checkpoint
         * written just after a truncation may hold too few first bytes to
         * tell the file rewritten since (copytruncate keeps the inode). */
        if (lv_tail_file_probe_changed(f))
            lost_content(t, &was, path);
        want_generations(t, f->path);
    } else if (seen && f->src) {
        if (lv_tail_file_check(f))
            truncated(t, f);
        else
            t->ahead_budget -= lv_tail_file_count_ahead(f, t->ahead_budget);
    }
    free(path);
}

static void update_gauges(struct tail_ctx *t);

static void scan(struct tail_ctx *t)
{
    struct lv_tail_scan s;
    lv_tail_watch_globs(t->watch, t->in->conf); /* a directory may have come (back) */
    lv_tail_guard_refresh(t->guard);
    lv_tail_scan_run(t->in->conf, t->name, t->guard, &s);
    t->gen++;
    t->ahead_budget = COUNT_BUDGET;
    for (size_t i = 0; i < s.n; i++)
        found(t, &s.items[i]);
    for (size_t i = 0; i < t->nfiles; i++)
        refresh(t, t->files[i]);
    handle_unseen(t, &s);
    reconcile_wanted(t);
    lv_tail_scan_free(&s);
    open_waiting(t);
    t->scanned = true;
    update_gauges(t);
    want_read(t);
}

/* Closes drained files the globs no longer name, once rotate_wait has passed
 * and their last records are acknowledged. */
static void reap(struct tail_ctx *t)
{
    double wait = t->in->conf->rotate_wait;
    for (size_t i = t->nfiles; i-- > 0;) {
        struct lv_tail_file *f = t->files[i];
        if (!f->src || !f->gone_at || now(t) - f->gone_at < wait)
            continue;
        if (!f->flushed) {
            if (!f->eof || read_some(t, f)) /* one last read: nothing may be left */
                continue;
            /* Only when something is pending: flushing nothing would leave
             * the source waiting for a batch that may never come. */
            if (lv_source_read_offset(f->src) > lv_source_processed(f->src))
                lv_source_flush(f->src);
            f->flushed = true;
        }
        if (!lv_source_settled(f->src))
            continue;
        lv_debug("input %s: done with %s", t->name, f->path);
        retire(t, i);
    }
}

/* ---- checkpoints and gauges ---------------------------------------------------------- */

static struct lv_checkpoint_entry entry_of(struct lv_tail_file *f, unsigned flags)
{
    uint64_t offset = f->src ? lv_source_acked(f->src) : f->offset;
    uint64_t read = f->src ? lv_source_read_offset(f->src) : f->read_to;
    /* (The size of a gz file not read to its end is unknown: UINT64_MAX.) */
    bool unread = !(flags & LV_CHECKPOINT_DONE) && (read > offset || f->size > offset);
    lv_tail_file_note_tail(f);
    bool tail = f->gz || f->tail_at == offset; /* a gz file's tail is its trailer */
    return (struct lv_checkpoint_entry){
        .dev = f->dev,
        .ino = f->ino,
        .fp = f->fp,
        .fp_len = f->fp_len,
        .offset = offset,
        .path = f->path,
        .tail_fp = tail ? f->tail_fp : 0,
        .tail_len = tail ? f->tail_len : 0,
        .flags = flags | (f->gz ? LV_CHECKPOINT_GZ : 0) | (unread ? LV_CHECKPOINT_UNREAD : 0),
    };
}

static void write_checkpoint(struct tail_ctx *t)
{
    struct lv_checkpoint_entry *e = lv_xmalloc((t->nfiles + t->ndone + 1) * sizeof *e);
    size_t n = 0;
    for (size_t i = 0; i < t->nfiles; i++)
        if (t->files[i]->fp_known)
            e[n++] = entry_of(t->files[i], 0);
    for (size_t i = 0; i < t->ndone; i++)
        e[n++] = entry_of(t->done[i], LV_CHECKPOINT_DONE);
    struct lv_buf text;
    lv_buf_init(&text, 4096, CHECKPOINT_MAX);
    int rc = lv_checkpoint_format(e, n, &text);
    free(e);
    bool same = text.len == t->ckpt_last.len && memcmp(text.data, t->ckpt_last.data, text.len) == 0;
    if (rc == 0 && !same)
        rc = lv_checkpoint_write(t->ckpt_path, text.data, text.len);
    if (rc < 0 && !t->ckpt_failing)
        lv_error("input %s: cannot write checkpoint %s: %s", t->name, t->ckpt_path, strerror(-rc));
    if (rc == 0 && !same) {
        lv_buf_free(&t->ckpt_last);
        t->ckpt_last = text;
    } else {
        lv_buf_free(&text);
    }
    t->ckpt_failing = rc < 0;
}

static struct lv_tail_file *file_of(struct tail_ctx *t, const struct lv_checkpoint_entry *e)
{
    struct lv_tail_file *f = lv_tail_file_new(t->in, t->name, t->guard, e->path, e->dev, e->ino);
    f->fp = e->fp;
    f->fp_len = e->fp_len;
    f->fp_known = true;
    f->tail_fp = e->tail_fp;
    f->tail_len = e->tail_len;
    f->tail_at = e->offset;
    f->gz = (e->flags & LV_CHECKPOINT_GZ) != 0;
    f->had_unread = (e->flags & LV_CHECKPOINT_UNREAD) != 0;
    f->offset = f->read_to = f->size = e->offset;
    return f;
}

static void load_checkpoint(struct tail_ctx *t)
{
    struct lv_checkpoint cp;
    int rc = lv_checkpoint_load(t->ckpt_path, &cp);
    /* Only a first start (no checkpoint at all) may take what is there as
     * read: a checkpoint that cannot be read says nothing of what was, so
     * every file and generation is read from its start (duplicates, never
     * a loss). */
    t->first_start = rc == -ENOENT;
    t->first_mode = rc == -ENOENT ? GEN_ADOPT : rc < 0 || cp.version != 1 ? GEN_READ : GEN_LEGACY;
    if (rc < 0 && rc != -ENOENT)
        lv_warn("input %s: ignoring checkpoint %s (%s); reading every file and rotated "
                "generation from its start",
                t->name, t->ckpt_path, rc == -EINVAL ? "torn or corrupt" : strerror(-rc));
    for (size_t i = 0; i < cp.n; i++) {
        const struct lv_checkpoint_entry *e = &cp.entries[i];
        if (e->flags & LV_CHECKPOINT_DONE) {
            add_done(t, file_of(t, e));
        } else if (!find_file(t, e->dev, e->ino)) {
            follow(t, file_of(t, e));
        }
    }
    /* A version 1 checkpoint lists no done generations: the previous run's
     * last scan came at most one scan_interval before its last checkpoint,
     * and generations written before that are taken as read (a second's
     * margin for coarse file times). */
    struct stat st;
    if (rc == 0 && cp.version == 1 && stat(t->ckpt_path, &st) == 0)
        t->legacy_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec -
                       (int64_t)(t->in->conf->scan_interval * 1e9) - 1000000000;
    if (rc == 0)
        lv_info("input %s: checkpoint %s holds %zu files", t->name, t->ckpt_path, cp.n);
    lv_checkpoint_free(&cp);
}

static bool has_gauge(const struct lv_file_gauge *g, size_t n, const char *path)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(g[i].file, path) == 0)
            return true;
    return false;
}

/* Newest first: when a deleted file and its successor share a path, the
 * series is the live file's (a series must not appear twice). */
static size_t file_gauges(void *arg, struct lv_file_gauge *out, size_t max)
{
    const struct tail_ctx *t = arg;
    size_t n = 0;
    for (size_t i = t->nfiles; i-- > 0 && n < max;) {
        const struct lv_tail_file *f = t->files[i];
        if (f->src && !has_gauge(out, n, f->path))
            out[n++] = (struct lv_file_gauge){f->path, t->name, lv_source_read_offset(f->src),
                                              lv_source_acked(f->src)};
    }
    return n;
}

static void update_gauges(struct tail_ctx *t)
{
    uint64_t lag = 0;
    for (size_t i = 0; i < t->nfiles; i++)
        if (t->files[i]->src)
            lag += lv_source_read_offset(t->files[i]->src) - lv_source_acked(t->files[i]->src);
    lv_metrics.files_open = lv_metrics.files_open - t->open_gauge + t->nopen;
    lv_metrics.checkpoint_lag_bytes = lv_metrics.checkpoint_lag_bytes - t->lag_gauge + lag;
    t->open_gauge = t->nopen;
    t->lag_gauge = lag;
}

/* ---- watchers ------------------------------------------------------------------------ */

static void on_scan_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    scan(w->data);
}

static void on_housekeeping(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct tail_ctx *t = lv_container_of(w, struct tail_ctx, housekeeping);
    (void)loop;
    (void)revents;
    if (!t->stopped && !t->paused)
        reap(t);
    if (++t->ticks % PRUNE_EVERY == 0)
        prune_done(t);
    write_checkpoint(t);
    update_gauges(t);
}

static void on_notify(struct ev_loop *loop, ev_io *w, int revents)
{
    struct tail_ctx *t = lv_container_of(w, struct tail_ctx, notify);
    (void)revents;
    int wants = lv_tail_watch_read(t->watch);
    if ((wants & LV_TAIL_RESCAN) && !ev_is_active(&t->soon)) {
        ev_timer_set(&t->soon, SOON, 0.);
        ev_timer_start(loop, &t->soon);
    }
    if (wants & LV_TAIL_READ)
        want_read(t);
}

/* ---- the input type ------------------------------------------------------------------ */

static char *default_checkpoint(const struct lv_conf *conf, size_t index)
{
    const char *dir = conf->state_dir ? conf->state_dir : ".";
    size_t len = strlen(dir) + 32;
    char *path = lv_xmalloc(len);
    snprintf(path, len, "%s/tail-%zu.ckpt", dir, index);
    return path;
}

static int prepare_state(struct tail_ctx *t)
{
    int rc = lv_checkpoint_mkdir(t->ckpt_path);
    char *slash = strrchr(t->ckpt_path, '/');
    char *dir = slash ? lv_xstrndup(t->ckpt_path, (size_t)(slash - t->ckpt_path)) : NULL;
    if (rc == 0 && access(dir ? (*dir ? dir : "/") : ".", W_OK) < 0)
        rc = -errno;
    free(dir);
    if (rc < 0)
        lv_error("input %s: checkpoint %s: cannot use its directory: %s", t->name, t->ckpt_path,
                 strerror(-rc));
    return rc;
}

static int tail_init(struct lv_input *in)
{
    struct tail_ctx *t = in->ctx;
    const struct lv_conf *conf = lv_pipeline_conf(in->pipeline);
    size_t index = (size_t)(in->conf - conf->inputs);
    t->in = in;
    snprintf(t->name, sizeof t->name, "tail-%zu", index);
    t->guard = lv_tail_guard_new(conf, in->conf, t->name);
    t->ckpt_path =
        in->conf->checkpoint ? lv_xstrdup(in->conf->checkpoint) : default_checkpoint(conf, index);
    lv_buf_init(&t->ckpt_last, 0, CHECKPOINT_MAX);
    ev_idle_init(&t->reader, on_reader);
    ev_timer_init(&t->scan_timer, on_scan_timer, 0., 0.);
    t->scan_timer.data = t;
    ev_timer_init(&t->soon, on_scan_timer, 0., 0.);
    t->soon.data = t;
    ev_timer_init(&t->housekeeping, on_housekeeping, HOUSEKEEPING, HOUSEKEEPING);
    int rc = prepare_state(t);
    if (rc < 0)
        return rc;
    load_checkpoint(t);
    t->buf = lv_xmalloc(CHUNK);
    t->watch = lv_tail_watch_new(t->name);
    if (t->watch)
        ev_io_init(&t->notify, on_notify, lv_tail_watch_fd(t->watch), EV_READ);
    return 0;
}

static int tail_start(struct lv_input *in)
{
    struct tail_ctx *t = in->ctx;
    double every = in->conf->scan_interval > 0 ? in->conf->scan_interval : 2.0;
    t->started = true;
    lv_metrics_file_gauges(file_gauges, t);
    if (t->watch)
        ev_io_start(in->loop, &t->notify);
    scan(t);
    ev_timer_set(&t->scan_timer, every, every);
    ev_timer_start(in->loop, &t->scan_timer);
    ev_timer_start(in->loop, &t->housekeeping);
    write_checkpoint(t);
    return 0;
}

static void tail_pause(struct lv_input *in)
{
    struct tail_ctx *t = in->ctx;
    t->paused = true;
    ev_idle_stop(in->loop, &t->reader);
}

static void tail_resume(struct lv_input *in)
{
    struct tail_ctx *t = in->ctx;
    t->paused = false;
    want_read(t);
}

/* A plain file's bytes reach its size; a compressed one's, its end once
 * a read found it (it does not grow). */
static uint64_t tail_readable_end(struct lv_input *in, const struct lv_source *src)
{
    struct tail_ctx *t = in->ctx;
    for (size_t i = 0; i < t->nfiles; i++) {
        struct lv_tail_file *f = t->files[i];
        struct stat st;
        if (f->src != src)
            continue;
        if (f->gz)
            return f->eof ? lv_source_read_offset(src) : UINT64_MAX;
        if (!f->error_logged && fstat(f->fd, &st) == 0)
            return (uint64_t)st.st_size;
        break; /* a file that fails to read has nothing more to give for now */
    }
    return lv_source_read_offset(src);
}

/* Shutdown: no more reading, and no flushing of partial lines; the
 * housekeeping timer keeps checkpointing while the pipeline drains. */
static void tail_stop(struct lv_input *in)
{
    struct tail_ctx *t = in->ctx;
    if (!t->stopped) {
        t->stopped = true;
        ev_idle_stop(in->loop, &t->reader);
        ev_timer_stop(in->loop, &t->scan_timer);
        ev_timer_stop(in->loop, &t->soon);
        if (t->watch)
            ev_io_stop(in->loop, &t->notify);
        if (t->started)
            write_checkpoint(t);
    }
    lv_pipeline_input_done(in->pipeline, in);
}

static void tail_destroy(struct lv_input *in)
{
    struct tail_ctx *t = in->ctx;
    if (!t || !t->in)
        return;
    ev_idle_stop(in->loop, &t->reader);
    ev_timer_stop(in->loop, &t->scan_timer);
    ev_timer_stop(in->loop, &t->soon);
    ev_timer_stop(in->loop, &t->housekeeping);
    if (t->watch)
        ev_io_stop(in->loop, &t->notify);
    if (t->started) {
        write_checkpoint(t); /* after the drain: the last acknowledgements count */
        lv_metrics_file_gauges(NULL, t);
    }
    while (t->nfiles)
        drop_file(t, t->nfiles - 1);
    while (t->ndone)
        forget_done(t, t->ndone - 1);
    for (size_t i = 0; i < t->nbases; i++)
        free(t->bases[i]);
    update_gauges(t);
    free(t->files);
    free(t->done);
    free(t->bases);
    lv_tail_watch_free(t->watch);
    lv_tail_guard_free(t->guard);
    lv_buf_free(&t->ckpt_last);
    free(t->buf);
    free(t->ckpt_path);
}

const struct lv_input_type lv_input_tail = {
    .name = "tail",
    .ctx_size = sizeof(struct tail_ctx),
    .init = tail_init,
    .start = tail_start,
    .pause = tail_pause,
    .resume = tail_resume,
    .readable_end = tail_readable_end,
    .stop = tail_stop,
    .destroy = tail_destroy,
};
