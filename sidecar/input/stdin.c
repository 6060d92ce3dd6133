/*
 * The stdin input: for `logveil filter` and `app | logveil run`. Reads in
 * large chunks when the loop says stdin is readable and hands them to the
 * pipeline. While the pipeline is paused the watcher is stopped, so a writer
 * blocks on a full pipe instead of logveil growing.
 */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <ev.h>

#include "logveil/log.h"
#include "logveil/stage.h"

#define CHUNK (256 * 1024)

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
    (void)loop;
    (void)revents;
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

static void stdin_stop(struct lv_input *in)
{
    finish(in->ctx);
}

static void stdin_destroy(struct lv_input *in)
{
    struct stdin_ctx *s = in->ctx;
    if (!s)
        return;
    if (s->in)
        ev_io_stop(in->loop, &s->io);
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
