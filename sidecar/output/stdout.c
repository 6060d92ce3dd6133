/*
 * The stdout output: writes each batch's records, one JSON object per line,
 * to file descriptor 1 and reports LV_SENT once every byte has been handed
 * to the kernel.
 *
 * It never blocks the loop on a reader. When fd 1 is a pipe, a FIFO, a
 * terminal or a socket, batches go through a pump (pump.h): written as the
 * reader makes room, queued meanwhile (the buffer's budget then pauses the
 * inputs), handed back at the shutdown deadline. A pipe or terminal is
 * written through a descriptor of its own, opened again from
 * /proc/self/fd/1 with O_NONBLOCK, so the flag never reaches the open file
 * shared with the parent shell; where that cannot be done, fd 1 itself is
 * made non-blocking (a terminal is then written blocking, as a last resort).
 * A regular file or a device such as /dev/null never holds a writer back:
 * it is written in place, whole, before submit returns.
 *
 * A broken pipe is final, since nothing will read stdout again, so it is
 * reported LV_REJECTED; any other write error is reported LV_RETRY. Errors
 * are logged once per episode, naming the instance, never the records.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "logveil/log.h"
#include "logveil/stage.h"
#include "pump.h"

struct stdout_ctx {
    bool failing;       /* an error was logged and no batch has succeeded since */
    int fd;             /* a descriptor of its own for fd 1's pipe or terminal ... */
    bool own_fd;        /* ... when this is true; else fd 1 is written */
    struct lv_pump *pump; /* NULL: written in place */
};

static const char *stdout_name(const struct lv_output *out)
{
    return out->conf && out->conf->name ? out->conf->name : out->type->name;
}

static enum lv_outcome stdout_error(struct lv_output *out, int err)
{
    struct stdout_ctx *c = out->ctx;
    if (err == 0) {
        lv_info("output %s: writing to stdout again", stdout_name(out));
        c->failing = false;
        return LV_SENT;
    }
    out->counter->errors++;
    if (!c->failing)
        lv_error("output %s: cannot write to stdout: %s", stdout_name(out), strerror(-err));
    c->failing = true;
    return err == -EPIPE ? LV_REJECTED : LV_RETRY;
}

/* A descriptor of its own for the pipe or terminal on fd 1, non-blocking;
 * -1 when there is none to be had. */
static int reopen_nonblocking(void)
{
    return open("/proc/self/fd/1", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
}

/* Pipes, FIFOs, terminals and sockets go through a pump (on a loop; an
 * output built without one, in a unit test, writes fd 1 in place). */
static int stdout_setup_pump(struct lv_output *out, const struct stat *st)
{
    struct stdout_ctx *c = out->ctx;
    bool sock = S_ISSOCK(st->st_mode);
    if (!out->loop)
        return 0;
    if (!sock) {
        c->fd = reopen_nonblocking();
        c->own_fd = c->fd >= 0;
        if (c->fd < 0 && S_ISFIFO(st->st_mode)) {
            c->fd = STDOUT_FILENO; /* the flag is shared with whoever shares the pipe */
            fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
        } else if (c->fd < 0) {
            lv_warn("output %s: cannot write the terminal without blocking: %s",
                    stdout_name(out), strerror(errno));
            return 0;
        }
    }
    c->pump = lv_pump_new(out, sock ? STDOUT_FILENO : c->fd, sock, stdout_error);
    return 0;
}

static int stdout_init(struct lv_output *out)
{
    struct stat st;
    if (fstat(STDOUT_FILENO, &st) < 0) {
        int err = errno;
        lv_error("output %s: stdout is not open: %s", stdout_name(out), strerror(err));
        return -err;
    }
    if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || isatty(STDOUT_FILENO))
        return stdout_setup_pump(out, &st);
    return 0;
}

/* Writes all of `data` in place; 0 or a negative errno. A descriptor that
 * is non-blocking where it was not expected to be is an error to retry. */
static int stdout_write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n >= 0) {
            data += n;
            len -= (size_t)n;
        } else if (errno != EINTR) {
            return -errno;
        }
    }
    return 0;
}

static int stdout_submit(struct lv_output *out, struct lv_batch *b)
{
    struct stdout_ctx *c = out->ctx;
    if (c->pump)
        return lv_pump_submit(c->pump, b);
    int err = stdout_write_all(STDOUT_FILENO, b->data.data, b->data.len);
    if (err < 0) {
        lv_output_done(out, b, stdout_error(out, err), NULL);
        return 0;
    }
    if (c->failing)
        stdout_error(out, 0);
    out->counter->records += b->n;
    out->counter->bytes += b->data.len;
    lv_output_done(out, b, LV_SENT, NULL);
    return 0;
}

static void stdout_cancel(struct lv_output *out)
{
    struct stdout_ctx *c = out->ctx;
    lv_pump_cancel(c->pump);
}

static void stdout_destroy(struct lv_output *out)
{
    struct stdout_ctx *c = out->ctx;
    if (!c)
        return;
    lv_pump_free(c->pump);
    c->pump = NULL;
    if (c->own_fd)
        close(c->fd);
    c->own_fd = false;
}

const struct lv_output_type lv_output_stdout = {
    .name = "stdout",
    .ctx_size = sizeof(struct stdout_ctx),
    .init = stdout_init,
    .submit = stdout_submit,
    .flush = lv_output_flush_noop,
    .cancel = stdout_cancel,
    .destroy = stdout_destroy,
};
