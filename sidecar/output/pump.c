/*
 * The pump (see pump.h). The head batch may be written in several goes:
 * `written` is how much of it is out. Reporting a batch can make the
 * pipeline submit another one at once (a replay from the spool): the queue
 * is never walked while an outcome is being reported, and a submit made
 * from inside pump() only queues (the loop in pump() takes it).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <ev.h>

#include "logveil/log.h"
#include "logveil/util.h"
#include "pump.h"

struct lv_pump {
    struct lv_output *out;
    int fd;
    bool socket;
    lv_pump_error_fn *on_error;
    ev_io io;
    struct lv_batch *queue[LV_PUMP_QUEUE];
    size_t head, n;
    size_t written; /* bytes of the head batch already out */
    bool pumping;
    bool was_full; /* -EAGAIN was answered: call lv_output_ready() when there is room */
    bool failing;  /* the last write failed */
    /* A record was cut in the middle (at the deadline, or by a write error):
     * the next bytes written start with a newline, so the cut piece stands
     * alone in the reader's stream instead of being glued to the next
     * record. `marker` (a file) carries this to the next run. */
    bool newline_first;
    char *marker;
};

static void sent(struct lv_pump *pu, struct lv_batch *b)
{
    pu->out->counter->records += b->n;
    pu->out->counter->bytes += b->data.len;
    lv_output_done(pu->out, b, LV_SENT, NULL);
}

/* Reports the head batch, of which `written` bytes are out: whole records
 * among them as LV_SENT, the rest as `outcome`. */
static void report_partly(struct lv_output *out, struct lv_batch *b, size_t written,
                          enum lv_outcome outcome)
{
    size_t whole = 0;
    while (whole < b->n && b->recs[whole].off + b->recs[whole].len + 1u <= written)
        whole++;
    if (whole == 0) {
        lv_output_done(out, b, outcome, NULL);
        return;
    }
    uint8_t *outcomes = lv_xmalloc(b->n);
    for (size_t r = 0; r < b->n; r++)
        outcomes[r] = (uint8_t)(r < whole ? LV_SENT : outcome);
    out->counter->records += whole;
    out->counter->bytes += b->recs[whole - 1].off + b->recs[whole - 1].len + 1u;
    lv_output_done(out, b, outcome, outcomes);
    free(outcomes);
}

/* The head batch was cut after `written` bytes: inside a record? */
static bool cut_inside(const struct lv_batch *b, size_t written)
{
    size_t end = 0;
    for (size_t r = 0; r < b->n && b->recs[r].off + b->recs[r].len + 1u <= written; r++)
        end = b->recs[r].off + b->recs[r].len + 1u;
    return written > end;
}

static void mark_torn(struct lv_pump *pu)
{
    pu->newline_first = true;
    if (!pu->marker)
        return;
    int fd = open(pu->marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0)
        close(fd);
    lv_warn("output %s: a record was cut in the middle of its write; the next write starts on "
            "a new line (the record is sent again whole)",
            pu->out->conf && pu->out->conf->name ? pu->out->conf->name : pu->out->type->name);
}

/* Empties the queue, then reports every batch that was in it. */
static void hand_back(struct lv_pump *pu, enum lv_outcome outcome)
{
    struct lv_batch *q[LV_PUMP_QUEUE];
    size_t n = pu->n, written = pu->written;
    if (n && written && cut_inside(pu->queue[pu->head], written))
        mark_torn(pu);
    for (size_t k = 0; k < n; k++)
        q[k] = pu->queue[(pu->head + k) % LV_PUMP_QUEUE];
    pu->n = pu->head = pu->written = 0;
    ev_io_stop(pu->out->loop, &pu->io);
    for (size_t k = 0; k < n; k++)
        report_partly(pu->out, q[k], k == 0 ? written : 0, outcome);
}

static ssize_t put(struct lv_pump *pu, const char *data, size_t len)
{
    if (pu->socket)
        return send(pu->fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    return write(pu->fd, data, len);
}

/* Writes queued batches until the descriptor is full, then waits for it. */
static void pump(struct lv_pump *pu)
{
    if (pu->pumping)
        return; /* a report submitted more: the loop below takes it */
    pu->pumping = true;
    while (pu->n && pu->newline_first && pu->written == 0) {
        ssize_t w = put(pu, "\n", 1);
        if (w == 1) {
            pu->newline_first = false;
            if (pu->marker)
                unlink(pu->marker);
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ev_io_start(pu->out->loop, &pu->io);
            pu->pumping = false;
            return;
        } else {
            break; /* the batch's write below meets the error */
        }
    }
    while (pu->n) {
        struct lv_batch *b = pu->queue[pu->head];
        ssize_t w = put(pu, b->data.data + pu->written, b->data.len - pu->written);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ev_io_start(pu->out->loop, &pu->io);
            break;
        }
        if (w < 0) {
            pu->failing = true;
            pu->pumping = false;
            hand_back(pu, pu->on_error(pu->out, -errno));
            return;
        }
        if (pu->failing) {
            pu->failing = false;
            pu->on_error(pu->out, 0);
        }
        pu->written += (size_t)w;
        if (pu->written < b->data.len)
            continue;
        pu->head = (pu->head + 1) % LV_PUMP_QUEUE;
        pu->n--;
        pu->written = 0;
        sent(pu, b);
    }
    if (!pu->n)
        ev_io_stop(pu->out->loop, &pu->io);
    pu->pumping = false;
    if (pu->was_full && pu->n < LV_PUMP_QUEUE) {
        pu->was_full = false;
        lv_output_ready(pu->out);
    }
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    struct lv_pump *pu = lv_container_of(w, struct lv_pump, io);
    (void)loop;
    (void)revents;
    pump(pu);
}

struct lv_pump *lv_pump_new(struct lv_output *out, int fd, bool socket, lv_pump_error_fn *on_error)
{
    struct lv_pump *pu = lv_xcalloc(1, sizeof *pu);
    pu->out = out;
    pu->fd = fd;
    pu->socket = socket;
    pu->on_error = on_error;
    ev_io_init(&pu->io, on_writable, fd, EV_WRITE);
    return pu;
}

void lv_pump_free(struct lv_pump *pu)
{
    if (!pu)
        return;
    if (pu->out->loop)
        ev_io_stop(pu->out->loop, &pu->io);
    free(pu->marker);
    free(pu);
}

void lv_pump_set_marker(struct lv_pump *pu, const char *path)
{
    free(pu->marker);
    pu->marker = lv_xstrdup(path);
    if (access(path, F_OK) == 0)
        pu->newline_first = true; /* the last run left a record cut in this stream */
}

int lv_pump_submit(struct lv_pump *pu, struct lv_batch *b)
{
    if (pu->n == LV_PUMP_QUEUE) {
        pu->was_full = true;
        return -EAGAIN;
    }
    pu->queue[(pu->head + pu->n++) % LV_PUMP_QUEUE] = b;
    if (!ev_is_active(&pu->io)) /* else the descriptor is full: wait for it */
        pump(pu);
    return 0;
}

void lv_pump_cancel(struct lv_pump *pu)
{
    if (pu && pu->n)
        hand_back(pu, LV_RETRY);
}

bool lv_pump_idle(const struct lv_pump *pu)
{
    return !pu || pu->n == 0;
}
