/*
 * The stdout output: writes each batch's records, one JSON object per line,
 * to file descriptor 1 and reports LV_SENT once every byte has been handed
 * to the kernel.
 *
 * A batch is written whole or reported as failed: partial writes and EINTR
 * are continued, and when fd 1 is non-blocking (a shell may leave it so) an
 * EAGAIN waits for POLLOUT. A broken pipe is final, since nothing will read
 * stdout again, so it is reported LV_REJECTED; any other write error is
 * reported LV_RETRY. Errors are logged once per episode, naming the
 * instance, never the records.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "logveil/log.h"
#include "logveil/stage.h"

struct stdout_ctx {
    bool failing; /* an error was logged and no batch has succeeded since */
};

static const char *stdout_name(const struct lv_output *out)
{
    return out->conf && out->conf->name ? out->conf->name : out->type->name;
}

static int stdout_init(struct lv_output *out)
{
    if (fcntl(STDOUT_FILENO, F_GETFL) < 0) {
        int err = errno;
        lv_error("output %s: stdout is not open: %s", stdout_name(out), strerror(err));
        return -err;
    }
    return 0;
}

/* Blocks until fd 1 can take more bytes; the loop thread waits here, which
 * is the backpressure a non-blocking stdout would otherwise hide. */
static int stdout_wait_writable(void)
{
    struct pollfd pfd = {.fd = STDOUT_FILENO, .events = POLLOUT};

    while (poll(&pfd, 1, -1) < 0) {
        if (errno != EINTR)
            return -errno;
    }
    return 0;
}

/* Writes all of `data`; 0 or a negative errno. */
static int stdout_write_all(const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDOUT_FILENO, data, len);
        if (n >= 0) {
            data += n;
            len -= (size_t)n;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        int err = stdout_wait_writable();
        if (err < 0)
            return err;
    }
    return 0;
}

static enum lv_outcome stdout_failed(struct lv_output *out, int err)
{
    struct stdout_ctx *c = out->ctx;

    out->counter->errors++;
    if (!c->failing)
        lv_error("output %s: cannot write to stdout: %s", stdout_name(out), strerror(-err));
    c->failing = true;
    return err == -EPIPE ? LV_REJECTED : LV_RETRY;
}

static int stdout_submit(struct lv_output *out, struct lv_batch *b)
{
    struct stdout_ctx *c = out->ctx;
    int err = stdout_write_all(b->data.data, b->data.len);

    if (err < 0) {
        lv_output_done(out, b, stdout_failed(out, err), NULL);
        return 0;
    }
    if (c->failing)
        lv_info("output %s: writing to stdout again", stdout_name(out));
    c->failing = false;
    out->counter->records += b->n;
    out->counter->bytes += b->data.len;
    lv_output_done(out, b, LV_SENT, NULL);
    return 0;
}

const struct lv_output_type lv_output_stdout = {
    .name = "stdout",
    .ctx_size = sizeof(struct stdout_ctx),
    .init = stdout_init,
    .submit = stdout_submit,
    .flush = lv_output_flush_noop,
    .destroy = lv_output_destroy_noop,
};
