/*
 * The stdin input: for `logveil filter` and `app | logveil run`. Reads in
 * large chunks when the loop says stdin is readable and hands them to the
 * pipeline. While the pipeline is paused the watcher is stopped, so a writer
 * blocks on a full pipe instead of logveil growing. At shutdown, what the
 * pipe holds is read and processed (delivered before the deadline, or
 * counted as dropped with reason shutdown); what is written after that is
 * counted at exit, and stdin closed.
 */
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <ev.h>

#include "logveil/log.h"
#include "logveil/stage.h"

#define CHUNK (256 * 1024)
#define STOP_DRAIN (4u << 20) /* bytes read from the pipe at shutdown, at most */
#define COUNT_MAX (64u << 20) /* bytes read to count the lines left at exit, at most */

struct stdin_ctx {
    ev_io io;
    struct lv_input *in;
    struct lv_source *src;
    char *buf;
    int eof;
};

/* End of stdin, or shutdown: what was read is all there will be. */
static void finish(struct stdin_ctx *s)
{
    if (s->eof)
        return;
    s->eof = 1;
    ev_io_stop(s->in->loop, &s->io);
    lv_source_flush(s->src);
    lv_pipeline_input_done(s->in->pipeline, s->in);
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    struct stdin_ctx *s = lv_container_of(w, struct stdin_ctx, io);
    (void)revents;
    if (!lv_source_may_read(s->src)) { /* another source finishes its line: resume() */
        ev_io_stop(loop, w);
        return;
    }
    ssize_t n = read(w->fd, s->buf, CHUNK);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n > 0) {
        lv_source_feed(s->src, s->buf, (size_t)n);
        return;
    }
    if (n < 0)
        lv_error("input stdin: read failed: %s", strerror(errno));
    finish(s);
}

static int stdin_init(struct lv_input *in)
{
    struct stdin_ctx *s = in->ctx;
    s->in = in;
    s->buf = lv_xmalloc(CHUNK);
    s->src = lv_source_open(in->pipeline, in, "stdin", 0);
    ev_io_init(&s->io, on_readable, STDIN_FILENO, EV_READ);
    return 0;
}

static int stdin_start(struct lv_input *in)
{
    struct stdin_ctx *s = in->ctx;
    ev_io_start(in->loop, &s->io);
    return 0;
}

static void stdin_pause(struct lv_input *in)
{
    struct stdin_ctx *s = in->ctx;
    ev_io_stop(in->loop, &s->io);
}

static void stdin_resume(struct lv_input *in)
{
    struct stdin_ctx *s = in->ctx;
    if (!s->eof)
        ev_io_start(in->loop, &s->io);
}

/* What was read, plus what waits in the pipe (or the rest of a file). */
static uint64_t stdin_readable_end(struct lv_input *in, const struct lv_source *src)
{
    int n = 0;
    (void)in;
    if (ioctl(STDIN_FILENO, FIONREAD, &n) == 0 && n >= 0)
        return lv_source_read_offset(src) + (uint64_t)n;
    struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
    return poll(&pfd, 1, 0) == 1 ? UINT64_MAX : lv_source_read_offset(src);
}

/* Shutdown: what the pipe holds was written before it, and is read and
 * processed (up to STOP_DRAIN). */
static void drain_at_stop(struct stdin_ctx *s)
{
    size_t total = 0;
    int avail = 0;
    while (total < STOP_DRAIN && ioctl(STDIN_FILENO, FIONREAD, &avail) == 0 && avail > 0) {
        size_t want = (size_t)avail < CHUNK ? (size_t)avail : CHUNK;
        ssize_t n = read(STDIN_FILENO, s->buf, want);
        if (n <= 0)
            break;
        lv_source_feed(s->src, s->buf, (size_t)n);
        total += (size_t)n;
    }
}

/* At exit: what was written since the drain (or past it) is lost with
 * logveil. Its lines are counted (reason shutdown, plus one for an
 * unterminated rest, up to COUNT_MAX bytes read), then stdin is closed, so
 * that a writer still writing gets EPIPE rather than a pipe nobody reads. */
static void count_left(struct stdin_ctx *s)
{
    uint64_t bytes = 0, lines = 0;
    bool partial = false;
    int avail = 0;
    while (bytes < COUNT_MAX && ioctl(STDIN_FILENO, FIONREAD, &avail) == 0 && avail > 0) {
        size_t want = (size_t)avail < CHUNK ? (size_t)avail : CHUNK;
        ssize_t n = read(STDIN_FILENO, s->buf, want);
        if (n <= 0)
            break;
        for (const char *p = s->buf, *e = s->buf + n; (p = memchr(p, '\n', (size_t)(e - p)));
             p++)
            lines++;
        partial = s->buf[n - 1] != '\n';
        bytes += (uint64_t)n;
    }
    partial |= ioctl(STDIN_FILENO, FIONREAD, &avail) == 0 && avail > 0;
    close(STDIN_FILENO);
    if (!bytes && !partial)
        return;
    lines += partial;
    for (uint64_t k = 0; k < lines; k++)
        lv_metrics_drop(LV_DROP_SHUTDOWN, LV_LEVEL_UNKNOWN);
    lv_warn("input stdin: %" PRIu64 " bytes still unread at exit; %" PRIu64
            " records counted as dropped (shutdown)",
            bytes, lines);
}

static void stdin_stop(struct lv_input *in)
{
    struct stdin_ctx *s = in->ctx;
    if (!s->eof)
        drain_at_stop(s);
    finish(s);
}

static void stdin_destroy(struct lv_input *in)
{
    struct stdin_ctx *s = in->ctx;
    if (!s)
        return;
    if (s->in) {
        ev_io_stop(in->loop, &s->io);
        count_left(s);
    }
    free(s->buf);
}

const struct lv_input_type lv_input_stdin = {
    .name = "stdin",
    .ctx_size = sizeof(struct stdin_ctx),
    .init = stdin_init,
    .start = stdin_start,
    .pause = stdin_pause,
    .resume = stdin_resume,
    .readable_end = stdin_readable_end,
    .stop = stdin_stop,
    .destroy = stdin_destroy,
};
