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
 * A named pipe is written without blocking: batches queue in the output and
 * are written as the reader makes room (an ev_io on the loop), so a slow
 * reader holds batches in the pipeline's budget (which pauses the inputs)
 * instead of stalling the loop. Pipes are never rotated.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>

#include "logveil/log.h"
#include "logveil/stage.h"

#define FILE_DEFAULT_MAX_FILES 5
/* Room for ".<int>" after the path. */
#define FILE_SUFFIX_MAX 12
/* Batches a pipe output queues before it answers -EAGAIN. */
#define PIPE_QUEUE 64

/* Zeroed by the pipeline before init; `open` guards `fd`, since a zeroed fd
 * would be stdin. */
struct file_ctx {
    int fd;
    bool open;
    bool failing;  /* an error was logged and no batch has succeeded since */
    uint64_t size; /* bytes in the current file */
    int max_files;
    /* named pipes */
    bool pipe;
    bool pumping;
    ev_io writable;
    struct lv_output *out;
    struct lv_batch *queue[PIPE_QUEUE];
    size_t head, n;
    size_t written; /* bytes of the head batch already written */
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

/* Opens conf->path for appending and takes its current size. With
 * conf->fsync, the directory is synced too, so that the file itself
 * survives a crash along with its contents. */
static int file_open(struct lv_output *out)
{
    struct file_ctx *c = out->ctx;
    const char *path = out->conf->path;
    struct stat st;

    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    int err = fstat(fd, &st) < 0 ? -errno : 0;
    if (err == 0 && out->conf->fsync)
        err = file_sync_dir(path);
    if (err < 0) {
        close(fd);
        return err;
    }
    c->fd = fd;
    c->open = true;
    c->size = (uint64_t)st.st_size;
    c->pipe = S_ISFIFO(st.st_mode);
    if (c->pipe)
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return 0;
}

static void file_close(struct file_ctx *c)
{
    if (c->out && c->out->loop)
        ev_io_stop(c->out->loop, &c->writable);
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

static void pipe_sent(struct lv_output *out, struct lv_batch *b)
{
    out->counter->records += b->n;
    out->counter->bytes += b->data.len;
    lv_output_done(out, b, LV_SENT, NULL);
}

/* Writes queued batches until the pipe is full; then waits to be writable.
 * A write error hands every queued batch back for a retry. */
static void pipe_pump(struct lv_output *out)
{
    struct file_ctx *c = out->ctx;
    if (c->pumping)
        return; /* a done() callback submitted more: the loop below takes it */
    c->pumping = true;
    while (c->n) {
        struct lv_batch *b = c->queue[c->head];
        ssize_t w = write(c->fd, b->data.data + c->written, b->data.len - c->written);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            ev_io_start(out->loop, &c->writable);
            break;
        }
        if (w < 0) {
            out->counter->errors++;
            lv_error("output %s: cannot write %s: %s", file_name(out), out->conf->path,
                     strerror(errno));
            for (; c->n; c->n--, c->head = (c->head + 1) % PIPE_QUEUE, c->written = 0)
                lv_output_done(out, c->queue[c->head], LV_RETRY, NULL);
            break;
        }
        c->written += (size_t)w;
        if (c->written < b->data.len)
            continue;
        c->head = (c->head + 1) % PIPE_QUEUE;
        c->n--;
        c->written = 0;
        pipe_sent(out, b);
    }
    if (!c->n)
        ev_io_stop(out->loop, &c->writable);
    c->pumping = false;
}

static void pipe_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    struct file_ctx *c = lv_container_of(w, struct file_ctx, writable);
    (void)loop;
    (void)revents;
    pipe_pump(c->out);
}

static int pipe_submit(struct lv_output *out, struct lv_batch *b)
{
    struct file_ctx *c = out->ctx;
    if (c->n == PIPE_QUEUE)
        return -EAGAIN;
    if (!ev_is_active(&c->writable) && !c->n)
        ev_io_init(&c->writable, pipe_writable, c->fd, EV_WRITE);
    c->queue[(c->head + c->n++) % PIPE_QUEUE] = b;
    pipe_pump(out);
    return 0;
}

static int file_submit(struct lv_output *out, struct lv_batch *b)
{
    struct file_ctx *c = out->ctx;
    if (c->open && c->pipe && out->loop)
        return pipe_submit(out, b);
    int err = b->data.len > 0 ? file_append(out, b) : 0;

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

const struct lv_output_type lv_output_file = {
    .name = "file",
    .ctx_size = sizeof(struct file_ctx),
    .init = file_init,
    .submit = file_submit,
    .flush = file_flush,
    .destroy = file_destroy,
};
