/*
 * The file output: appends each batch's records, one JSON object per line,
 * to conf->path, and rotates by size.
 *
 * Guarantees: a batch is written whole to one file, never split across a
 * rotation and never left half-written: when a write or fdatasync fails,
 * the file is truncated back to where the batch began, so the pipeline's
 * retry neither duplicates records nor leaves a torn line. With
 * conf->fsync, LV_SENT means the batch is on disk; otherwise it means the
 * kernel has it.
 *
 * Rotation: before a batch would take the file past conf->max_bytes (when
 * non-zero), path.N becomes path.N+1 for N from max_files - 1 down to 1,
 * path becomes path.1, and a new path is opened. rename() replaces the
 * oldest, path.<max_files>, so at most max_files rotated files are kept. A
 * file already larger than max_bytes, or a batch larger than it, is written
 * anyway rather than split.
 *
 * A crash (kill -9 in the middle of a write) can leave a torn last line;
 * the file is cut back to its last newline when it is opened, since the
 * batch it belonged to was not acknowledged and is delivered again whole.
 *
 * A named pipe is written without blocking, through a pump (pump.h): batches
 * queue in the output and are written as the reader makes room, so a slow
 * reader holds batches in the pipeline's budget (which pauses the inputs)
 * instead of stalling the loop, and at the shutdown deadline they are handed
 * back. It is opened without blocking too (no reader yet: the batch is
 * retried). Pipes are never rotated.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf_map.h"
#include "logveil/log.h"
#include "logveil/stage.h"
#include "pump.h"

#define FILE_DEFAULT_MAX_FILES 5
/* Room for ".<int>" after the path. */
#define FILE_SUFFIX_MAX 12

/* Zeroed by the pipeline before init; `open` guards `fd`, since a zeroed fd
 * would be stdin. */
struct file_ctx {
    int fd;
    bool open;
    bool failing;  /* an error was logged and no batch has succeeded since */
    uint64_t size; /* bytes in the current file */
    int max_files;
    bool pipe;
    bool reopen;          /* the pipe failed: open it again at the next batch */
    struct lv_pump *pump; /* named pipes */
    struct lv_output *out;
};

static const char *file_name(const struct lv_output *out)
{
    return out->conf->name ? out->conf->name : out->type->name;
}

/* Makes the file's directory entry durable (its creation, the renames of
 * a rotation): fdatasync on the file alone does not. */
static int file_sync_dir(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');

    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == path)
        snprintf(dir, sizeof(dir), "/");
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int err = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return err;
}

/* Cuts a torn last line (left by a crash mid-write) back to the last
 * newline; *size is updated. 0 or a negative errno. */
static int file_repair(struct lv_output *out, int fd, uint64_t *size)
{
    char buf[4096];
    uint64_t end = *size;
    int rfd = open(out->conf->path, O_RDONLY | O_CLOEXEC);
    if (rfd < 0)
        return -errno;
    while (end > 0) {
        size_t n = end < sizeof buf ? (size_t)end : sizeof buf;
        ssize_t r = pread(rfd, buf, n, (off_t)(end - n));
        if (r != (ssize_t)n) {
            close(rfd);
            return r < 0 ? -errno : -EIO;
        }
        const char *nl = memrchr(buf, '\n', n);
        if (nl) {
            end = end - n + (uint64_t)(nl - buf) + 1;
            break;
        }
        end -= n;
    }
    close(rfd);
    if (end == *size)
        return 0;
    if (ftruncate(fd, (off_t)end) < 0)
        return -errno;
    lv_warn("output %s: %s ended in a torn line (%" PRIu64 " bytes, left by a crash); cut "
            "back to its last whole line, whose batch is delivered again",
            file_name(out), out->conf->path, *size - end);
    *size = end;
    return 0;
}

static enum lv_outcome pipe_error(struct lv_output *out, int err);

/* Opens conf->path for appending and takes its current size. With
 * conf->fsync, the directory is synced too, so that the file itself
 * survives a crash along with its contents. */
static int file_open(struct lv_output *out)
{
    struct file_ctx *c = out->ctx;
    const char *path = out->conf->path;
    struct stat st;

    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0640);
    if (fd < 0)
        return -errno;
    int err = fstat(fd, &st) < 0 ? -errno : 0;
    uint64_t size = (uint64_t)st.st_size;
    if (err == 0 && S_ISREG(st.st_mode)) {
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        err = file_repair(out, fd, &size);
    }
    if (err == 0 && out->conf->fsync && S_ISREG(st.st_mode))
        err = file_sync_dir(path);
    if (err < 0) {
        close(fd);
        return err;
    }
    c->fd = fd;
    c->open = true;
    c->size = size;
    c->pipe = S_ISFIFO(st.st_mode);
    c->reopen = false;
    if (c->pipe && out->loop) {
        c->pump = lv_pump_new(out, fd, false, pipe_error);
        /* A reader that keeps the FIFO open across our restarts sees one
         * stream: a record cut at the last run's deadline is marked in the
         * state directory, and this run starts on a new line. */
        const struct lv_conf *conf = out->pipeline ? lv_pipeline_conf(out->pipeline) : NULL;
        if (conf && conf->state_dir) {
            char marker[4096];
            const char *name = out->conf->name ? out->conf->name : out->type->name;
            if (snprintf(marker, sizeof marker, "%s/torn-%s", conf->state_dir, name) <
                (int)sizeof marker)
                lv_pump_set_marker(c->pump, marker);
        }
    }
    return 0;
}

static void file_close(struct file_ctx *c)
{
    lv_pump_free(c->pump); /* empty: it handed everything back */
    c->pump = NULL;
    if (c->open)
        close(c->fd);
    c->open = false;
    c->fd = -1;
}

static int file_init(struct lv_output *out)
{
    struct file_ctx *c = out->ctx;
    const char *path = out->conf->path;

    c->fd = -1;
    c->out = out;
    c->max_files = out->conf->max_files > 0 ? out->conf->max_files : FILE_DEFAULT_MAX_FILES;
    if (!path || !*path) {
        lv_error("output %s: no path given", file_name(out));
        return -EINVAL;
    }
    if (strlen(path) + FILE_SUFFIX_MAX >= PATH_MAX) {
        lv_error("output %s: path is too long: %s", file_name(out), path);
        return -ENAMETOOLONG;
    }
    int err = file_open(out);
    if (err == -ENOENT)
        lv_error("output %s: cannot open %s: its directory does not exist", file_name(out), path);
    else if (err < 0)
        lv_error("output %s: cannot open %s: %s", file_name(out), path, strerror(-err));
    return err;
}

/* Renames `from` to `to`; a missing `from` is not an error (a gap left by
 * an earlier rotation that failed part-way, or fewer files so far). */
static int file_shift(const char *from, const char *to)
{
    if (rename(from, to) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}

/* Shifts the rotated files up by one, moves path to path.1 and opens a new
 * path. On failure the current file stays (or, past the last rename, the
 * output is left closed and the next batch reopens path). */
static int file_rotate(struct lv_output *out)
{
    struct file_ctx *c = out->ctx;
    const char *path = out->conf->path;
    char from[PATH_MAX], to[PATH_MAX];
    int err;

    for (int n = c->max_files - 1; n >= 1; n--) {
        snprintf(from, sizeof(from), "%s.%d", path, n);
        snprintf(to, sizeof(to), "%s.%d", path, n + 1);
        if ((err = file_shift(from, to)) < 0)
            return err;
    }
    snprintf(to, sizeof(to), "%s.1", path);
    if ((err = file_shift(path, to)) < 0)
        return err;
    file_close(c);
    return file_open(out);
}

/* Appends all of `data`; 0 or a negative errno, with *written set to the
 * bytes that did reach the file. */
static int file_write_all(int fd, const char *data, size_t len, size_t *written)
{
    *written = 0;
    while (*written < len) {
        ssize_t n = write(fd, data + *written, len - *written);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        *written += (size_t)n;
    }
    return 0;
}

/* Takes back a batch that did not fully succeed, so that its retry does not
 * duplicate records. If that fails too, the size is re-read so rotation
 * stays right; the retry then repeats the records already written. */
static void file_undo(struct file_ctx *c)
{
    struct stat st;

    if (ftruncate(c->fd, (off_t)c->size) == 0)
        return;
    if (fstat(c->fd, &st) == 0)
        c->size = (uint64_t)st.st_size;
}

/* Writes one whole batch to the current file; 0 or a negative errno. */
static int file_append(struct lv_output *out, const struct lv_batch *b)
{
    struct file_ctx *c = out->ctx;
    size_t written;
    int err;

    if (!c->open && (err = file_open(out)) < 0)
        return err;
    uint64_t max = out->conf->max_bytes;
    if (max > 0 && c->size > 0 && c->size + b->data.len > max && (err = file_rotate(out)) < 0)
        return err;
    err = file_write_all(c->fd, b->data.data, b->data.len, &written);
    if (err == 0 && out->conf->fsync && fdatasync(c->fd) < 0)
        err = -errno;
    if (err < 0) {
        if (written > 0)
            file_undo(c);
        return err;
    }
    c->size += b->data.len;
    return 0;
}

/* ---- named pipes ------------------------------------------------------------------- */

/* A write error hands every queued batch back for a retry; the pipe is
 * opened again for the next batch (its reader may have gone). */
static enum lv_outcome pipe_error(struct lv_output *out, int err)
{
    struct file_ctx *c = out->ctx;
    if (err == 0) {
        lv_info("output %s: writing %s again", file_name(out), out->conf->path);
        c->failing = false;
        return LV_SENT;
    }
    out->counter->errors++;
    if (!c->failing)
        lv_error("output %s: cannot write %s: %s", file_name(out), out->conf->path,
                 strerror(-err));
    c->failing = true;
    c->reopen = true;
    return LV_RETRY;
}

static int pipe_submit(struct lv_output *out, struct lv_batch *b)
{
    struct file_ctx *c = out->ctx;
    if (c->reopen && lv_pump_idle(c->pump)) {
        file_close(c);
        int err = file_open(out);
        if (err < 0)
            return err; /* no reader (ENXIO): retried after a backoff */
        if (!c->pipe)
            return -EAGAIN; /* the path is a file now: the next offer writes it */
    }
    return lv_pump_submit(c->pump, b);
}

static void file_cancel(struct lv_output *out)
{
    struct file_ctx *c = out->ctx;
    lv_pump_cancel(c->pump);
}

static int file_submit(struct lv_output *out, struct lv_batch *b)
{
    struct file_ctx *c = out->ctx;
    int err = c->open ? 0 : file_open(out);
    if (err == 0 && c->pump)
        return pipe_submit(out, b);
    if (err == 0 && b->data.len > 0)
        err = file_append(out, b);

    if (err < 0) {
        out->counter->errors++;
        if (!c->failing)
            lv_error("output %s: cannot write %s: %s", file_name(out), out->conf->path,
                     strerror(-err));
        c->failing = true;
        /* Reopen on the next attempt: the file may have been replaced or
         * its volume remounted by then. */
        file_close(c);
        lv_output_done(out, b, LV_RETRY, NULL);
        return 0;
    }
    if (c->failing)
        lv_info("output %s: writing %s again", file_name(out), out->conf->path);
    c->failing = false;
    out->counter->records += b->n;
    out->counter->bytes += b->data.len;
    lv_output_done(out, b, LV_SENT, NULL);
    return 0;
}

/* Every batch is written before submit returns; at shutdown, also make
 * sure what the kernel holds reaches the disk. */
static int file_flush(struct lv_output *out)
{
    struct file_ctx *c = out->ctx;

    /* A pipe or character device cannot be synced (EINVAL): nothing to do. */
    if (c->open && fdatasync(c->fd) < 0 && errno != EINVAL)
        return -errno;
    return 0;
}

static void file_destroy(struct lv_output *out)
{
    if (out && out->ctx)
        file_close(out->ctx);
}

/* The file output's keys bind into struct lv_output_conf itself (spec size
 * 0), where its fields have always been. */
#define O(f) offsetof(struct lv_output_conf, f)
static const struct lv_conf_map_key file_keys[] = {
    {.name = "path", .type = &lv_conf_map_str, .off = O(path), .flags = LV_CONF_MAP_NONEMPTY},
    {.name = "max_bytes", .type = &lv_conf_map_u64, .off = O(max_bytes)},
    {.name = "max_files", .type = &lv_conf_map_int, .off = O(max_files), .min = 1, .max = 1000},
    {.name = "fsync", .type = &lv_conf_map_bool, .off = O(fsync)},
    {0},
};
#undef O

static void file_check(struct lv_conf_map_ctx *ctx, const yaml_node_t *node, void *opts,
                       const char *where)
{
    const struct lv_output_conf *o = opts;
    if (!o->path)
        lv_conf_map_error(ctx, node, where, "a file output needs path");
}

static const struct lv_conf_spec file_spec = {
    .keys = file_keys,
    .size = 0,
    .check = file_check,
};

const struct lv_output_type lv_output_file = {
    .name = "file",
    .ctx_size = sizeof(struct file_ctx),
    .opts = &file_spec,
    .init = file_init,
    .submit = file_submit,
    .flush = file_flush,
    .cancel = file_cancel,
    .destroy = file_destroy,
};
