/*
 * Sources: the pipeline's side of an input. A source frames the bytes an
 * input reads into lines (each source has its own partial-line state), joins
 * them into multiline records when its input asks for it (and a private key
 * printed over several lines always), and runs the chain on each record,
 * into the current batch.
 *
 * Acknowledgement (sidecar/ack.h): when a batch is sealed, each source that
 * processed lines into it (kept or dropped) adds a mark, held by the batch:
 * its offset after its last line. A source's acknowledged offset advances
 * over its marks, in order, as their batches settle; so it never passes a
 * record some output has not settled.
 *
 * With multiline joining, a record held back waiting for its continuation
 * lines keeps `processed` at the offset where it begins: a restart reads it
 * again whole, and no checkpoint passes it before it is sent. A CRI or
 * Docker partial line waiting for its end does the same, for at most
 * PARTIAL_TIMEOUT seconds (and max_line bytes, see frame.h): then what it
 * holds is sent as a record of its own (a progress bar that never ends its
 * line must not pin the checkpoint), and the rest of the line, when it
 * comes, makes another.
 *
 * Both timeouts mean "the rest was not written in time", never "the rest
 * was not read in time": an input can fall behind its source for many
 * reasons (the buffer paused it, other files had their turn, the process
 * was frozen or starved of CPU). So when a timeout is up, the source asks
 * its input how far its bytes reach now (readable_end), and what waited is
 * sent alone only once the input has read that far and the rest still did
 * not come. A file that keeps growing does not delay it for long: what was
 * there when the time was up is soon read.
 */
#include <stdlib.h>
#include <ev.h>

#include "ack.h"
#include "frame.h"
#include "logveil/chain.h"
#include "multiline.h"
#include "sample.h"
#include "pipeline_internal.h"

/* Seconds a partial CRI/Docker line waits for its end before it is sent. */
#define PARTIAL_TIMEOUT 5.0
#define NONE UINT64_MAX

struct lv_source {
    struct lv_pipeline *p;
    struct lv_input *in;
    uint32_t id;
    uint32_t ident;      /* hash of the name: the same source in every run (lv_pos.source) */
    char *name;
    struct lv_frame *frame;
    uint64_t base;       /* offset of the frame's first byte */
    uint64_t framed;     /* after the last line the frame handed on */
    uint64_t processed;  /* after the last line processed, before any held record */
    struct lv_multiline *join[2]; /* by stream (PEM blocks only without multiline) */
    uint64_t held_from[2];        /* where each joiner's held record begins */
    ev_tstamp held_at[2];         /* when each joiner last took a line */
    uint64_t partial_from[2];     /* by stream: the frame's partial line, NONE: none */
    ev_tstamp partial_at[2];      /* when it began waiting */
    ev_timer timer;               /* the timeouts of held records and partial lines */
    uint64_t check_to;            /* NONE, or: once read this far, send what was due... */
    ev_tstamp check_at;           /* ... at this time */
    bool dirty;          /* processed lines into the current batch */
    size_t frame_bytes;  /* what its framing and joiners hold, as counted in p->frame_bytes */
    size_t idle_bytes;   /* the most they keep when idle (counted in p->frame_idle) */
    struct lv_ack_marks *marks; /* sealed batches holding its lines, oldest first */
};

/* ---- acknowledgement ---------------------------------------------------------- */

/* A tail input reads again, from its checkpoint, what was not acknowledged. */
static bool rereads(const struct lv_source *src)
{
    return src->in->conf->kind == LV_INPUT_TAIL;
}

void lv_source_mark_batch(struct lv_pipeline *p, struct lv_batch *b)
{
    b->rereadable = p->ndirty > 0;
    for (size_t i = 0; i < p->ndirty; i++) {
        struct lv_source *src = p->dirty[i];
        src->dirty = false;
        b->rereadable &= rereads(src);
        lv_ack_mark(src->marks, src->processed, b);
    }
    p->ndirty = 0;
}

/* ---- lines ---------------------------------------------------------------------- */

/* Runs the chain on a complete record, into the current batch. */
static int to_chain(void *arg, const struct lv_line *line)
{
    struct lv_source *src = arg;
    struct lv_pipeline *p = src->p;
    struct lv_batch *b = lv_queue_current(p);
    if (lv_chain_process(p->chain, line, &b->data, &b->recs[b->n]) == 1)
        b->n++;
    return 0;
}

static bool holding(const struct lv_source *src, int stream)
{
    return src->join[stream] && lv_multiline_holding(src->join[stream]);
}

/* Partial lines held by a source's framing, and records held by its
 * joiners, count against the budget too. */
static void count_frame(struct lv_source *src)
{
    size_t now = lv_frame_bytes(src->frame);
    for (int st = 0; st < 2; st++)
        now += src->join[st] ? lv_multiline_bytes(src->join[st]) : 0;
    src->p->frame_bytes = src->p->frame_bytes - src->frame_bytes + now;
    src->frame_bytes = now;
}

/* `processed` moves past every line handed on, but never past the start of
 * a record still held; the next batch sealed carries it as the mark. */
static void update_processed(struct lv_source *src)
{
    uint64_t at = src->framed;
    for (int st = 0; st < 2; st++)
        if (holding(src, st) && src->held_from[st] < at)
            at = src->held_from[st];
    /* Nor past a CRI/Docker fragment of the other stream waiting for its end. */
    uint64_t pending = lv_frame_pending_start(src->frame);
    if (pending != UINT64_MAX && src->base + pending < at)
        at = src->base + pending;
    src->processed = at;
    if (!src->dirty) {
        src->dirty = true;
        src->p->dirty[src->p->ndirty++] = src;
    }
}

/* Makes the timer fire at `due` at the latest. */
static void arm(struct lv_source *src, ev_tstamp due)
{
    struct ev_loop *loop = src->p->loop;
    ev_tstamp after = due - ev_now(loop);
    if (ev_is_active(&src->timer) && ev_timer_remaining(loop, &src->timer) <= after)
        return;
    ev_timer_stop(loop, &src->timer);
    ev_timer_set(&src->timer, after > 0 ? after : 0., 0.);
    ev_timer_start(loop, &src->timer);
}

/* How long a held record waits for its next line: the input's multiline
 * timeout, or one second for a private key block of an input without one. */
static ev_tstamp join_timeout(const struct lv_source *src)
{
    double t = src->in->conf->multiline.timeout;
    return t > 0 ? t : 1.0;
}

/* The line goes to its stream's joiner; the timer runs while one holds. */
static void to_joiner(struct lv_source *src, const struct lv_line *l, uint64_t start)
{
    int st = l->stream == LV_STREAM_STDERR;
    if (lv_multiline_push(src->join[st], l, to_chain, src) == 1)
        src->held_from[st] = start;
    src->held_at[st] = ev_now(src->p->loop);
    if (holding(src, st))
        arm(src, src->held_at[st] + join_timeout(src));
}

/* After a chunk: a partial line that began waiting is timed. */
static void track_partial(struct lv_source *src)
{
    for (int st = 0; st < 2; st++) {
        uint64_t pending = lv_frame_partial_start(src->frame, (enum lv_stream)st);
        if (pending == src->partial_from[st])
            continue;
        src->partial_from[st] = pending;
        src->partial_at[st] = ev_now(src->p->loop);
        if (pending != NONE)
            arm(src, src->partial_at[st] + PARTIAL_TIMEOUT);
    }
}

/* The frame's callback: positions become the source's, then the line goes
 * to the chain, or through its stream's joiner. */
static int on_line(void *arg, const struct lv_line *line)
{
    struct lv_source *src = arg;
    struct lv_line l = *line;
    uint64_t start = src->framed;
    l.pos.source = src->ident;
    l.pos.end += src->base;
    src->framed = l.pos.end;
    struct lv_multiline *join = src->join[l.stream == LV_STREAM_STDERR];
    if (join && !lv_multiline_passes(join, &l))
        to_joiner(src, &l, start);
    else
        to_chain(src, &l);
    update_processed(src);
    return 0;
}

static bool flush_joiners(struct lv_source *src)
{
    bool any = false;
    for (int st = 0; st < 2; st++) {
        any |= holding(src, st);
        if (src->join[st])
            lv_multiline_flush(src->join[st], to_chain, src);
    }
    return any;
}

/* When what waits on stream `st` (the frame's partial line, the joiner's
 * record) is due to be sent alone; 0 when nothing waits. */
static ev_tstamp partial_due(const struct lv_source *src, int st)
{
    return src->partial_from[st] != NONE ? src->partial_at[st] + PARTIAL_TIMEOUT : 0;
}

static ev_tstamp joiner_due(const struct lv_source *src, int st)
{
    return holding(src, st) ? src->held_at[st] + join_timeout(src) : 0;
}

static bool is_due(ev_tstamp due, ev_tstamp t)
{
    return due && due <= t + 0.001;
}

/* Whether anything was due at time `t`. */
static bool any_due(const struct lv_source *src, ev_tstamp t)
{
    for (int st = 0; st < 2; st++)
        if (is_due(partial_due(src, st), t) || is_due(joiner_due(src, st), t))
            return true;
    return false;
}

/* Sends on its own what was due at time `t` (and still waits). */
static void send_due(struct lv_source *src, ev_tstamp t)
{
    bool sent = false;
    for (int st = 0; st < 2; st++) {
        if (is_due(partial_due(src, st), t)) {
            lv_frame_flush_partial(src->frame, (enum lv_stream)st, on_line, src);
            sent = true;
        }
        if (is_due(joiner_due(src, st), t)) {
            lv_multiline_flush(src->join[st], to_chain, src);
            sent = true;
        }
    }
    if (!sent)
        return;
    update_processed(src);
    count_frame(src);
    track_partial(src);
    lv_queue_submit(src->p);
}

/* The timer runs again for the earliest of what waits and is not due yet. */
static void rearm(struct lv_source *src, ev_tstamp now)
{
    ev_tstamp next = 0;
    for (int st = 0; st < 2; st++) {
        ev_tstamp d[2] = {partial_due(src, st), joiner_due(src, st)};
        for (int k = 0; k < 2; k++)
            if (d[k] && !is_due(d[k], now) && (!next || d[k] < next))
                next = d[k];
    }
    ev_timer_stop(src->p->loop, &src->timer);
    if (next)
        arm(src, next);
}

/* What was due is sent once the input has read as far as its source
 * reached at that time (`check_to`): a chunk fed may just have done so. */
static void check_reached(struct lv_source *src)
{
    if (src->check_to == NONE || lv_source_read_offset(src) < src->check_to)
        return;
    src->check_to = NONE;
    send_due(src, src->check_at);
    rearm(src, ev_now(src->p->loop));
}

/* A timeout is up. Once the input is done nothing is sent: a stopped tail
 * input reads it again from its checkpoint, stdin flushed it at its end. */
static void held_due(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct lv_source *src = lv_container_of(w, struct lv_source, timer);
    struct lv_pipeline *p = src->p;
    ev_tstamp now = ev_now(loop);
    (void)revents;
    if (p->stopping || p->done[lv_pipeline_input_index(p, src->in)])
        return;
    if (any_due(src, now)) {
        src->check_to = src->in->type->readable_end(src->in, src);
        src->check_at = now;
        check_reached(src);
    }
    rearm(src, now);
}

/* ---- memory: partial lines over the budget ------------------------------------------ */

/* A line is begun and not handed on, or a record is held for joining:
 * only reading on completes it. */
static bool holds_line(const struct lv_source *src)
{
    return lv_source_mid_line(src) || holding(src, 0) || holding(src, 1);
}

/* What a source holds beyond what its buffers keep when idle. */
static size_t excess(const struct lv_source *src)
{
    return src->frame_bytes > src->idle_bytes ? src->frame_bytes - src->idle_bytes : 0;
}

/* The source holding the most for a line it has begun; NULL when none. */
static struct lv_source *most_held(const struct lv_pipeline *p)
{
    struct lv_source *best = NULL;
    for (size_t i = 0; i < p->nsources; i++) {
        struct lv_source *src = p->sources[i];
        if (src && holds_line(src) && (!best || excess(src) > excess(best)))
            best = src;
    }
    return best;
}

static void set_finisher(struct lv_pipeline *p, struct lv_source *src)
{
    if (p->finisher == src)
        return;
    p->finisher = src;
    /* The inputs skipped the sources held back: they look again. */
    for (size_t i = 0; i < p->ninputs && !p->paused; i++)
        if (!p->done[i])
            p->inputs[i].type->resume(&p->inputs[i]);
}

/* With the budget spent by partial lines alone, reading every source on
 * would let each grow its own line (up to about three times max_line
 * each), and pausing them all would wait for ever. One reads on, the
 * others wait: beyond what each source keeps when idle, memory stays
 * within the budget plus one line. The one holding the most goes first;
 * it keeps its turn until its line is whole, sent at its timeout, or cut
 * at max_line (while its writer is slow to end the line, the others wait
 * for it: the price of the bound). */
void lv_source_limit(struct lv_pipeline *p, bool spent)
{
    struct lv_source *f = p->finisher;
    if (spent && f && holds_line(f))
        return;
    set_finisher(p, spent ? most_held(p) : NULL);
}

/* ---- opening, feeding, closing ---------------------------------------------------- */

static uint32_t free_slot(struct lv_pipeline *p)
{
    for (size_t i = 0; i < p->nsources; i++)
        if (!p->sources[i])
            return (uint32_t)i;
    p->sources = lv_xrealloc(p->sources, (p->nsources + 1) * sizeof *p->sources);
    p->dirty = lv_xrealloc(p->dirty, (p->nsources + 1) * sizeof *p->dirty);
    p->sources[p->nsources] = NULL;
    return (uint32_t)p->nsources++;
}

struct lv_source *lv_source_open(struct lv_pipeline *p, struct lv_input *in, const char *name,
                                 uint64_t offset)
{
    struct lv_source *src = lv_xcalloc(1, sizeof *src);
    struct lv_multiline_rule *rule = p->rules[lv_pipeline_input_index(p, in)];
    src->p = p;
    src->in = in;
    src->id = free_slot(p);
    src->name = lv_xstrdup(name);
    src->ident = (uint32_t)lv_sample_hash(name, strlen(name));
    src->frame = lv_frame_new(in->conf->format, p->conf->limits.max_line, src->id);
    src->base = src->framed = src->processed = offset;
    src->marks = lv_ack_marks_new(offset);
    src->partial_from[0] = src->partial_from[1] = src->check_to = NONE;
    for (int st = 0; rule && st < 2; st++)
        src->join[st] = lv_multiline_new(rule);
    src->idle_bytes = lv_frame_idle_bytes(in->conf->format);
    src->idle_bytes += rule ? 2 * LV_MULTILINE_KEEP_BYTES : 0;
    p->frame_idle += src->idle_bytes;
    ev_timer_init(&src->timer, held_due, 0., 0.);
    p->sources[src->id] = src;
    return src;
}

int lv_source_feed(struct lv_source *src, const char *data, size_t len)
{
    int rc = lv_frame_feed(src->frame, data, len, on_line, src);
    count_frame(src);
    track_partial(src);
    check_reached(src);
    lv_queue_update_pause(src->p);
    lv_queue_submit(src->p);
    return rc;
}

void lv_source_flush(struct lv_source *src)
{
    lv_frame_finish(src->frame, on_line, src);
    flush_joiners(src);
    ev_timer_stop(src->p->loop, &src->timer);
    count_frame(src);
    track_partial(src);
    /* A partial line at the very end was made a record: all is processed. */
    src->framed = src->base + lv_frame_offset(src->frame);
    update_processed(src);
    if (!src->p->cur) /* nothing was emitted: an empty batch carries the mark */
        src->p->cur = lv_queue_get_batch(src->p);
    lv_queue_submit(src->p);
}

uint64_t lv_source_read_offset(const struct lv_source *src)
{
    return src->base + lv_frame_offset(src->frame);
}

uint64_t lv_source_newlines(const struct lv_source *src)
{
    return lv_frame_newlines(src->frame);
}

bool lv_source_mid_line(const struct lv_source *src)
{
    return src->framed < lv_source_read_offset(src);
}

uint64_t lv_source_processed(const struct lv_source *src)
{
    return src->processed;
}

uint64_t lv_source_acked(const struct lv_source *src)
{
    return lv_ack_acked(src->marks);
}

bool lv_source_may_read(const struct lv_source *src)
{
    return !src->p->finisher || src->p->finisher == src;
}

bool lv_source_settled(const struct lv_source *src)
{
    return !src->dirty && lv_ack_marks_count(src->marks) == 0 && !holding(src, 0) &&
           !holding(src, 1);
}

void lv_source_close(struct lv_source *src)
{
    if (!src)
        return;
    struct lv_pipeline *p = src->p;
    /* Whole lines already read (a file truncated under us) go out as they
     * would have without joining; not once the input is done. */
    if (!p->stopping && !p->done[lv_pipeline_input_index(p, src->in)] && flush_joiners(src))
        update_processed(src);
    ev_timer_stop(p->loop, &src->timer);
    if (src->dirty) /* its lines are in the current batch: seal it first */
        lv_queue_submit(p);
    p->sources[src->id] = NULL;
    p->frame_bytes -= src->frame_bytes;
    p->frame_idle -= src->idle_bytes;
    if (p->finisher == src)
        set_finisher(p, NULL);
    lv_frame_free(src->frame);
    lv_multiline_free(src->join[0]);
    lv_multiline_free(src->join[1]);
    lv_ack_marks_close(src->marks);
    free(src->name);
    free(src);
}
