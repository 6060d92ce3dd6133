/*
 * The pipeline. Records are written by the chain straight into the current
 * batch's buffer; the batch goes to every output at the end of each input
 * chunk, so latency is one read. A batch is recycled when the last output
 * has settled it: sent, rejected (counted), or retried until it is.
 *
 * Acknowledgement: every batch has a sequence number. When a batch is
 * sealed, each source that processed lines into it (kept or dropped) records
 * a mark (sequence, offset after its last line). A source's acknowledged
 * offset advances over its marks, in order, as their batches settle; so it
 * never passes a record some output has not settled.
 *
 * With multiline joining, a record held back waiting for its continuation
 * lines keeps `processed` at the offset where it begins: a restart reads it
 * again whole, and no checkpoint passes it before it is sent.
 *
 * With a disk spool, a batch sealed while the memory budget is spent (or
 * while older batches are still spooled, to keep order) is written to disk
 * instead; once on disk it counts as settled, so checkpoints move on, and it
 * is replayed in order when there is room again, or after a restart.
 *
 * Shutdown drains: inputs stop, what was read is filtered and delivered,
 * outputs flush, and only then does the loop end. A drain that cannot finish
 * within the grace period ends with exit status 1 and the number of records
 * left undelivered in the log.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <ev.h>

#include "admin.h"
#include "buffer/spool.h"
#include "frame.h"
#include "logveil/chain.h"
#include "logveil/log.h"
#include "multiline.h"
#include "pipeline.h"
#include "registry.h"

#define BATCH_TARGET (256 * 1024)
#define MAX_FREE_BATCHES 4
#define RETRY_RING 1024
#define SEQ_RING 8192 /* batches in flight are capped well below this */

enum lv_outcome lv_output_last_outcome;
int lv_output_done_calls;

/* Batches an output must be offered again, oldest first. */
struct retry_queue {
    struct lv_batch *ring[RETRY_RING];
    size_t head, n;
    double backoff;
    ev_timer timer;
    struct lv_pipeline *p;
    size_t idx;
};

struct mark {
    uint64_t seq;
    uint64_t offset;
};

struct lv_source {
    struct lv_pipeline *p;
    struct lv_input *in;
    uint32_t id;
    char *name;
    struct lv_frame *frame;
    uint64_t base;       /* offset of the frame's first byte */
    uint64_t framed;     /* after the last line the frame handed on */
    uint64_t processed;  /* after the last line processed, before any held record */
    uint64_t acked;
    struct lv_multiline *join[2]; /* by stream; NULL without multiline */
    uint64_t held_from[2];        /* where each joiner's held record begins */
    ev_tstamp held_at[2];         /* when each joiner last took a line */
    ev_timer join_timer;          /* the timeout of held records */
    bool dirty;          /* processed lines into the current batch */
    size_t frame_bytes;  /* what its framing and joiners hold, as counted in p->frame_bytes */
    struct mark *marks;  /* sealed batches holding its lines, oldest first */
    size_t head, nmarks, capmarks;
};

struct lv_pipeline {
    struct ev_loop *loop;
    const struct lv_conf *conf;
    struct lv_chain *chain;
    struct lv_input *inputs;
    struct lv_multiline_rule **rules; /* by input; NULL: no multiline */
    bool *done;
    size_t ninputs, ndone;
    struct lv_source **sources; /* by id; NULL slots are free */
    size_t nsources;
    struct lv_source **dirty;   /* sources with lines in the current batch */
    size_t ndirty;
    uint64_t next_seq;
    uint8_t settled[SEQ_RING];
    struct lv_output *outputs;
    struct retry_queue *retry;
    size_t noutputs;
    struct lv_batch *cur;
    struct lv_batch *free_list;
    size_t nfree;
    size_t batches_out;   /* submitted, not yet settled */
    size_t held_bytes;    /* buffer bytes of those batches */
    size_t frame_bytes;   /* partial lines and held records of the sources */
    size_t max_bytes;
    bool paused;
    bool releasing; /* inside drop_oldest() */
    bool replaying; /* inside replay() */
    bool spool_ok;  /* the last append worked: spill rather than pause */
    bool stopping;
    int exit_code;
    struct lv_admin *admin;
    struct lv_spool *spool;
    ev_timer replay_timer;
    ev_signal sigterm, sigint;
    ev_timer grace;
};

/* ---- batches ------------------------------------------------------------------ */

static struct lv_batch *batch_new(struct lv_pipeline *p)
{
    struct lv_batch *b = p->free_list;
    if (b) {
        p->free_list = b->next;
        p->nfree--;
        b->next = NULL;
        return b;
    }
    b = lv_xcalloc(1, sizeof *b);
    lv_buf_init(&b->data, BATCH_TARGET + 4096, BATCH_TARGET + lv_chain_record_cap(p->chain));
    b->cap = 1024;
    b->recs = lv_xmalloc(b->cap * sizeof *b->recs);
    return b;
}

static struct lv_batch *batch_get(struct lv_pipeline *p)
{
    struct lv_batch *b = batch_new(p);
    b->seq = p->next_seq++;
    p->settled[b->seq % SEQ_RING] = 0;
    return b;
}

static void batch_free(struct lv_batch *b)
{
    lv_buf_free(&b->data);
    free(b->recs);
    free(b);
}

static size_t batch_bytes(const struct lv_batch *b)
{
    return b->data.cap + b->cap * sizeof *b->recs;
}

/* Under "shed" the pipeline pauses only past this: the room between the
 * budget and it is what shedding DEBUG and INFO buys. */
static size_t pause_at(const struct lv_pipeline *p)
{
    if (p->spool && p->spool_ok)
        return SIZE_MAX; /* new batches go to disk instead */
    if (p->conf->when_full == LV_FULL_SHED)
        return p->max_bytes + p->max_bytes / 4;
    if (p->conf->when_full == LV_FULL_DROP_NEWEST)
        return SIZE_MAX; /* never pauses: new records are dropped instead */
    return p->max_bytes;
}

static void drop_oldest(struct lv_pipeline *p);

static void update_pause(struct lv_pipeline *p)
{
    /* drop_oldest makes room from the batches waiting for a retry; it
     * pauses only when every held batch is in an output's hands. */
    if (p->conf->when_full == LV_FULL_DROP_OLDEST && p->held_bytes >= p->max_bytes &&
        !p->releasing)
        drop_oldest(p);
    lv_metrics.buffer_bytes = p->held_bytes + p->frame_bytes;
    bool over = p->held_bytes + p->frame_bytes >= pause_at(p) || p->batches_out >= SEQ_RING / 2;
    /* Resuming looks at batches only: partial lines cannot shrink unless
     * their sources are read again. */
    bool under = p->held_bytes <= p->max_bytes / 2;
    if (!p->paused && over && !p->stopping) {
        p->paused = true;
        lv_metrics.input_paused_total++;
        for (size_t i = 0; i < p->ninputs; i++)
            if (!p->done[i])
                p->inputs[i].type->pause(&p->inputs[i]);
    } else if (p->paused && (under || p->stopping)) {
        p->paused = false;
        for (size_t i = 0; i < p->ninputs; i++)
            if (!p->done[i])
                p->inputs[i].type->resume(&p->inputs[i]);
    }
}

static void maybe_finish(struct lv_pipeline *p);
static void replay(struct lv_pipeline *p);

/* ---- acknowledgement ---------------------------------------------------------- */

static void advance(struct lv_source *src)
{
    const uint8_t *settled = src->p->settled;
    while (src->nmarks && settled[src->marks[src->head].seq % SEQ_RING]) {
        src->acked = src->marks[src->head].offset;
        src->head = (src->head + 1) % src->capmarks;
        src->nmarks--;
    }
}

static void settle(struct lv_pipeline *p, uint64_t seq)
{
    p->settled[seq % SEQ_RING] = 1;
    for (size_t i = 0; i < p->nsources; i++)
        if (p->sources[i])
            advance(p->sources[i]);
}

static void push_mark(struct lv_source *src, uint64_t seq)
{
    if (src->nmarks == src->capmarks) {
        size_t cap = src->capmarks ? src->capmarks * 2 : 8;
        struct mark *m = lv_xmalloc(cap * sizeof *m);
        for (size_t k = 0; k < src->nmarks; k++)
            m[k] = src->marks[(src->head + k) % src->capmarks];
        free(src->marks);
        src->marks = m;
        src->head = 0;
        src->capmarks = cap;
    }
    src->marks[(src->head + src->nmarks++) % src->capmarks] = (struct mark){seq, src->processed};
}

/* The current batch is sealed: its sources remember where it ends for them. */
static void mark_sources(struct lv_pipeline *p, uint64_t seq)
{
    for (size_t i = 0; i < p->ndirty; i++) {
        p->dirty[i]->dirty = false;
        push_mark(p->dirty[i], seq);
    }
    p->ndirty = 0;
}

static void batch_release(struct lv_pipeline *p, struct lv_batch *b)
{
    if (--b->refs > 0)
        return;
    if (b->refs < 0)
        abort(); /* a reference dropped twice: the accounting is broken */
    p->batches_out--;
    p->held_bytes -= batch_bytes(b);
    settle(p, b->seq);
    if (b->spool_id) {
        lv_spool_settled(p->spool, b->spool_id);
        b->spool_id = 0;
        p->spool_ok = true;
    }
    if (p->nfree < MAX_FREE_BATCHES && b->data.cap <= BATCH_TARGET + 65536) {
        b->data.len = 0;
        b->n = 0;
        b->next = p->free_list;
        p->free_list = b;
        p->nfree++;
    } else {
        batch_free(b);
    }
    update_pause(p);
    replay(p);
    maybe_finish(p);
}

/* ---- outputs -------------------------------------------------------------------- */

static void offer(struct lv_pipeline *p, size_t i, struct lv_batch *b)
{
    struct lv_output *out = &p->outputs[i];
    /* -EAGAIN (full) and errors alike: offered again after a backoff. */
    if (out->type->submit(out, b) < 0)
        lv_output_done(out, b, LV_RETRY, NULL);
}

/* ---- when the buffer is full ------------------------------------------------------ */

static void drop_records(struct lv_batch *b, size_t from, size_t to)
{
    for (size_t r = from; r < to; r++)
        lv_metrics_drop(LV_DROP_BUFFER, (enum lv_level)b->recs[r].level);
}

/* shed: removes records at or below `max_level` that no rule keeps, never
 * WARN and above, and compacts the batch. */
static void shed(struct lv_batch *b, enum lv_level max_level)
{
    size_t kept = 0, out = 0;
    for (size_t r = 0; r < b->n; r++) {
        struct lv_record rec = b->recs[r];
        bool lose = !rec.keep && rec.level != LV_LEVEL_UNKNOWN && rec.level <= max_level;
        if (lose) {
            lv_metrics_drop(LV_DROP_BUFFER, (enum lv_level)rec.level);
            continue;
        }
        memmove(b->data.data + out, b->data.data + rec.off, rec.len + 1u);
        rec.off = out;
        out += rec.len + 1u;
        b->recs[kept++] = rec;
    }
    b->n = kept;
    b->data.len = out;
}

/* drop_oldest: batches waiting for a retry are the oldest the pipeline
 * still holds; they go first. */
static void batch_release(struct lv_pipeline *p, struct lv_batch *b);

static void drop_oldest(struct lv_pipeline *p)
{
    p->releasing = true; /* batch_release() calls update_pause() */
    for (size_t i = 0; i < p->noutputs && p->held_bytes >= p->max_bytes; i++) {
        struct retry_queue *q = &p->retry[i];
        while (q->n && p->held_bytes >= p->max_bytes) {
            struct lv_batch *old = q->ring[q->head];
            q->head = (q->head + 1) % RETRY_RING;
            q->n--;
            drop_records(old, 0, old->n); /* lost for this output at least */
            batch_release(p, old);
        }
    }
    p->releasing = false;
}

/* Applies buffer.when_full to the batch about to be submitted. */
static void when_full(struct lv_pipeline *p, struct lv_batch *b)
{
    if (p->held_bytes < p->max_bytes)
        return;
    switch (p->conf->when_full) {
    case LV_FULL_DROP_NEWEST:
        drop_records(b, 0, b->n);
        b->n = 0;
        b->data.len = 0;
        break;
    case LV_FULL_DROP_OLDEST:
        drop_oldest(p);
        break;
    case LV_FULL_SHED:
        shed(b, p->held_bytes >= p->max_bytes + p->max_bytes / 8 ? LV_LEVEL_INFO
                                                                  : LV_LEVEL_DEBUG);
        break;
    case LV_FULL_BLOCK:
        break; /* the inputs are paused instead */
    }
}

/* ---- the disk spool ------------------------------------------------------------------- */

static void recycle(struct lv_pipeline *p, struct lv_batch *b)
{
    b->data.len = 0;
    b->n = 0;
    if (p->nfree < MAX_FREE_BATCHES) {
        b->next = p->free_list;
        p->free_list = b;
        p->nfree++;
    } else {
        batch_free(b);
    }
}

/* Writes the batch to the spool when memory is spent or older batches wait
 * there. True when it went to disk (and is therefore settled). */
static bool spill(struct lv_pipeline *p, struct lv_batch *b)
{
    if (!p->spool || b->n == 0 || p->stopping)
        return false;
    if (p->held_bytes < p->max_bytes && lv_spool_empty(p->spool))
        return false;
    int rc = lv_spool_append(p->spool, b);
    if (rc < 0) {
        if (rc != -ENOSPC)
            lv_error("spool: cannot write: %s; holding the batch in memory", strerror(-rc));
        p->spool_ok = false; /* until replay makes room: the inputs pause as usual */
        return false;
    }
    lv_metrics.spool_bytes = lv_spool_bytes(p->spool);
    settle(p, b->seq);
    recycle(p, b);
    if (!ev_is_active(&p->replay_timer))
        ev_timer_start(p->loop, &p->replay_timer);
    maybe_finish(p);
    return true;
}

static void offer_all(struct lv_pipeline *p, struct lv_batch *b)
{
    b->refs = (int)p->noutputs;
    p->batches_out++;
    p->held_bytes += batch_bytes(b);
    for (size_t i = 0; i < p->noutputs; i++)
        offer(p, i, b);
    update_pause(p);
}

static bool retrying(const struct lv_pipeline *p)
{
    for (size_t i = 0; i < p->noutputs; i++)
        if (p->retry[i].n)
            return true;
    return false;
}

/* Replays spooled batches, oldest first, while memory has room and no
 * older batch waits for a retry. */
static void replay(struct lv_pipeline *p)
{
    if (!p->spool || p->replaying || p->stopping || retrying(p))
        return; /* older batches first; at shutdown, spooled ones stay */
    p->replaying = true;
    while (p->held_bytes < p->max_bytes / 2 && !lv_spool_empty(p->spool)) {
        struct lv_batch *b = batch_get(p);
        uint64_t id;
        if (lv_spool_next(p->spool, b, &id) < 0) {
            settle(p, b->seq);
            recycle(p, b);
            break;
        }
        b->spool_id = id;
        offer_all(p, b);
    }
    lv_metrics.spool_bytes = lv_spool_bytes(p->spool);
    p->replaying = false;
}

static void replay_due(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct lv_pipeline *p = lv_container_of(w, struct lv_pipeline, replay_timer);
    (void)loop;
    (void)revents;
    replay(p);
    if (lv_spool_empty(p->spool))
        ev_timer_stop(p->loop, &p->replay_timer);
}

static void submit_current(struct lv_pipeline *p)
{
    struct lv_batch *b = p->cur;
    if (!b)
        return;
    p->cur = NULL;
    mark_sources(p, b->seq);
    if (spill(p, b))
        return;
    when_full(p, b);
    if (b->n == 0) {
        /* Every line was dropped (and counted): settled at once. */
        b->data.len = 0;
        b->next = p->free_list;
        p->free_list = b;
        p->nfree++;
        settle(p, b->seq);
        maybe_finish(p);
        return;
    }
    offer_all(p, b);
}

static void retry_due(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct retry_queue *q = lv_container_of(w, struct retry_queue, timer);
    size_t n = q->n;
    (void)loop;
    (void)revents;
    for (size_t k = 0; k < n && q->n; k++) {
        struct lv_batch *b = q->ring[q->head];
        q->head = (q->head + 1) % RETRY_RING;
        q->n--;
        offer(q->p, q->idx, b);
    }
}

static void schedule_retry(struct lv_pipeline *p, size_t i, struct lv_batch *b)
{
    struct retry_queue *q = &p->retry[i];
    if (q->n == RETRY_RING) {
        /* Cannot hold more: count them as lost rather than hide it. */
        for (size_t r = 0; r < b->n; r++)
            lv_metrics_drop(LV_DROP_BUFFER, (enum lv_level)b->recs[r].level);
        batch_release(p, b);
        return;
    }
    q->ring[(q->head + q->n++) % RETRY_RING] = b;
    q->backoff = q->backoff ? (q->backoff * 2 > 5.0 ? 5.0 : q->backoff * 2) : 0.1;
    if (!ev_is_active(&q->timer)) {
        ev_timer_set(&q->timer, q->backoff, 0.);
        ev_timer_start(p->loop, &q->timer);
    }
}

static size_t output_index(const struct lv_pipeline *p, const struct lv_output *out)
{
    return (size_t)(out - p->outputs);
}

void lv_output_done(struct lv_output *out, struct lv_batch *b, enum lv_outcome outcome,
                    const uint8_t *outcomes)
{
    struct lv_pipeline *p = out->pipeline;
    if (!p) {
        lv_output_last_outcome = outcome;
        lv_output_done_calls++;
        return;
    }
    size_t i = output_index(p, out);
    bool retry = outcome == LV_RETRY;
    for (size_t r = 0; r < b->n; r++) {
        enum lv_outcome o = outcomes ? (enum lv_outcome)outcomes[r] : outcome;
        retry |= o == LV_RETRY;
        if (o == LV_REJECTED)
            lv_metrics_drop(LV_DROP_REJECTED, (enum lv_level)b->recs[r].level);
    }
    if (retry) {
        schedule_retry(p, i, b);
        return;
    }
    p->retry[i].backoff = 0;
    batch_release(p, b);
}

/* ---- lines ---------------------------------------------------------------------- */

static size_t input_index(const struct lv_pipeline *p, const struct lv_input *in)
{
    return (size_t)(in - p->inputs);
}

/* Runs the chain on a complete record, into the current batch. */
static int to_chain(void *arg, const struct lv_line *line)
{
    struct lv_source *src = arg;
    struct lv_pipeline *p = src->p;
    if (p->cur && p->cur->data.len >= BATCH_TARGET)
        submit_current(p);
    if (!p->cur)
        p->cur = batch_get(p);
    struct lv_batch *b = p->cur;
    if (b->n == b->cap) {
        b->cap *= 2;
        b->recs = lv_xrealloc(b->recs, b->cap * sizeof *b->recs);
    }
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

/* The line goes to its stream's joiner; the timer runs while one holds. */
static void to_joiner(struct lv_source *src, const struct lv_line *l, uint64_t start)
{
    int st = l->stream == LV_STREAM_STDERR;
    struct ev_loop *loop = src->p->loop;
    if (lv_multiline_push(src->join[st], l, to_chain, src) == 1)
        src->held_from[st] = start;
    src->held_at[st] = ev_now(loop);
    if (holding(src, st) && !ev_is_active(&src->join_timer)) {
        ev_timer_set(&src->join_timer, src->in->conf->multiline.timeout, 0.);
        ev_timer_start(loop, &src->join_timer);
    }
}

/* The frame's callback: positions become the source's, then the line goes
 * to the chain, or through its stream's joiner. */
static int on_line(void *arg, const struct lv_line *line)
{
    struct lv_source *src = arg;
    struct lv_line l = *line;
    uint64_t start = src->framed;
    l.pos.source = src->id;
    l.pos.end += src->base;
    src->framed = l.pos.end;
    if (src->join[0])
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
    ev_timer_stop(src->p->loop, &src->join_timer);
    return any;
}

/* Sends the records held longer than the timeout; waits again for the
 * others. Once the input is done nothing is sent: a stopped tail input
 * reads them again from its checkpoint, stdin flushed them at its end. */
static void join_due(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct lv_source *src = lv_container_of(w, struct lv_source, join_timer);
    struct lv_pipeline *p = src->p;
    ev_tstamp now = ev_now(loop), timeout = src->in->conf->multiline.timeout, next = 0;
    bool sent = false;
    (void)revents;
    if (p->stopping || p->done[input_index(p, src->in)])
        return;
    for (int st = 0; st < 2; st++) {
        if (!holding(src, st))
            continue;
        ev_tstamp due = src->held_at[st] + timeout;
        if (due <= now + 0.001) {
            lv_multiline_flush(src->join[st], to_chain, src);
            sent = true;
        } else if (!next || due < next) {
            next = due;
        }
    }
    if (next) {
        ev_timer_set(w, next - now, 0.);
        ev_timer_start(loop, w);
    }
    if (sent) {
        update_processed(src);
        count_frame(src);
        submit_current(p);
    }
}

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
    struct lv_multiline_rule *rule = p->rules[input_index(p, in)];
    src->p = p;
    src->in = in;
    src->id = free_slot(p);
    src->name = lv_xstrdup(name);
    src->frame = lv_frame_new(in->conf->format, p->conf->limits.max_line, src->id);
    src->base = src->framed = src->processed = src->acked = offset;
    for (int st = 0; rule && st < 2; st++)
        src->join[st] = lv_multiline_new(rule);
    ev_timer_init(&src->join_timer, join_due, 0., 0.);
    p->sources[src->id] = src;
    return src;
}

int lv_source_feed(struct lv_source *src, const char *data, size_t len)
{
    int rc = lv_frame_feed(src->frame, data, len, on_line, src);
    count_frame(src);
    update_pause(src->p);
    submit_current(src->p);
    return rc;
}

void lv_source_flush(struct lv_source *src)
{
    lv_frame_finish(src->frame, on_line, src);
    flush_joiners(src);
    count_frame(src);
    /* A partial line at the very end was made a record: all is processed. */
    src->framed = src->base + lv_frame_offset(src->frame);
    update_processed(src);
    if (!src->p->cur) /* nothing was emitted: an empty batch carries the mark */
        src->p->cur = batch_get(src->p);
    submit_current(src->p);
}

uint64_t lv_source_read_offset(const struct lv_source *src)
{
    return src->base + lv_frame_offset(src->frame);
}

uint64_t lv_source_processed(const struct lv_source *src)
{
    return src->processed;
}

uint64_t lv_source_acked(const struct lv_source *src)
{
    return src->acked;
}

bool lv_source_settled(const struct lv_source *src)
{
    return !src->dirty && src->nmarks == 0 && !holding(src, 0) && !holding(src, 1);
}

void lv_source_close(struct lv_source *src)
{
    if (!src)
        return;
    struct lv_pipeline *p = src->p;
    /* Whole lines already read (a file truncated under us) go out as they
     * would have without joining; not once the input is done. */
    if (!p->stopping && !p->done[input_index(p, src->in)] && flush_joiners(src))
        update_processed(src);
    ev_timer_stop(p->loop, &src->join_timer);
    if (src->dirty) /* its lines are in the current batch: seal it first */
        submit_current(p);
    p->sources[src->id] = NULL;
    p->frame_bytes -= src->frame_bytes;
    lv_frame_free(src->frame);
    lv_multiline_free(src->join[0]);
    lv_multiline_free(src->join[1]);
    free(src->marks);
    free(src->name);
    free(src);
}

const struct lv_conf *lv_pipeline_conf(const struct lv_pipeline *p)
{
    return p->conf;
}

void lv_pipeline_input_done(struct lv_pipeline *p, struct lv_input *in)
{
    size_t i = input_index(p, in);
    if (p->done[i])
        return;
    submit_current(p);
    p->done[i] = true;
    p->ndone++;
    if (p->ndone == p->ninputs)
        p->stopping = true;
    maybe_finish(p);
}

/* ---- lifecycle --------------------------------------------------------------------- */

static void maybe_finish(struct lv_pipeline *p)
{
    if (!p->stopping || p->ndone < p->ninputs || p->batches_out > 0)
        return;
    for (size_t i = 0; i < p->noutputs; i++)
        if (p->outputs[i].type->flush(&p->outputs[i]) < 0)
            p->exit_code = 1;
    ev_break(p->loop, EVBREAK_ALL);
}

static void on_grace(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct lv_pipeline *p = lv_container_of(w, struct lv_pipeline, grace);
    (void)revents;
    size_t lost = 0;
    for (size_t i = 0; i < p->noutputs; i++) {
        struct retry_queue *q = &p->retry[i];
        for (size_t k = 0; k < q->n; k++) {
            struct lv_batch *b = q->ring[(q->head + k) % RETRY_RING];
            drop_records(b, 0, b->n);
            lost += b->n;
        }
    }
    lv_error("shutdown: %zu batches (%zu records waiting for a retry) undelivered after %.0f s; "
             "exiting, counted as dropped (reason buffer)",
             p->batches_out, lost, p->conf->shutdown_timeout);
    p->exit_code = 1;
    ev_break(loop, EVBREAK_ALL);
}

/* Shutdown with a spool: batches waiting for a retry go to disk rather than
 * be lost (they are replayed after the spool's older content). */
static void spill_retries(struct lv_pipeline *p)
{
    for (size_t i = 0; p->spool && i < p->noutputs; i++) {
        struct retry_queue *q = &p->retry[i];
        while (q->n && lv_spool_append(p->spool, q->ring[q->head]) == 0) {
            struct lv_batch *b = q->ring[q->head];
            q->head = (q->head + 1) % RETRY_RING;
            q->n--;
            batch_release(p, b);
        }
    }
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct lv_pipeline *p = w->data;
    (void)revents;
    if (ev_is_active(&p->grace)) {
        /* Already draining; starting the grace timer again would re-init
         * an active watcher, which libev forbids. */
        lv_info("signal %d: already draining", w->signum);
        return;
    }
    lv_info("signal %d: draining and stopping", w->signum);
    p->stopping = true;
    for (size_t i = 0; i < p->ninputs; i++)
        if (!p->done[i])
            p->inputs[i].type->stop(&p->inputs[i]);
    spill_retries(p);
    ev_timer_init(&p->grace, on_grace, p->conf->shutdown_timeout, 0.);
    ev_timer_start(loop, &p->grace);
    maybe_finish(p);
}

/* One compiled pattern per input, before its init opens sources. */
static int setup_multiline(struct lv_pipeline *p, size_t i, char *err, size_t errlen)
{
    const struct lv_multiline_conf *mc = &p->conf->inputs[i].multiline;
    char why[300];
    if (!mc->enabled)
        return 0;
    p->rules[i] = lv_multiline_rule_new(mc, p->conf->limits.max_line, why, sizeof why);
    if (!p->rules[i]) {
        snprintf(err, errlen, "input %zu: %s", i, why);
        return -EINVAL;
    }
    return 0;
}

static int setup_inputs(struct lv_pipeline *p, char *err, size_t errlen)
{
    const struct lv_conf *conf = p->conf;
    p->ninputs = conf->ninputs;
    p->inputs = lv_xcalloc(p->ninputs, sizeof *p->inputs);
    p->rules = lv_xcalloc(p->ninputs, sizeof *p->rules);
    p->done = lv_xcalloc(p->ninputs, sizeof *p->done);
    for (size_t i = 0; i < p->ninputs; i++) {
        const struct lv_input_conf *ic = &conf->inputs[i];
        const struct lv_input_type *t = lv_registry_input(ic->kind);
        if (!t) {
            snprintf(err, errlen, "input %zu: this build has no tail input yet", i);
            return -ENOTSUP;
        }
        if (setup_multiline(p, i, err, errlen) < 0)
            return -EINVAL;
        struct lv_input *in = &p->inputs[i];
        *in = (struct lv_input){t, ic, p, p->loop, lv_xcalloc(1, t->ctx_size)};
        int rc = t->init(in);
        if (rc < 0) {
            snprintf(err, errlen, "input %s: cannot start: %s", t->name, strerror(-rc));
            return rc;
        }
    }
    return 0;
}

static int setup_outputs(struct lv_pipeline *p, char *err, size_t errlen)
{
    const struct lv_conf *conf = p->conf;
    p->noutputs = conf->noutputs;
    p->outputs = lv_xcalloc(p->noutputs, sizeof *p->outputs);
    p->retry = lv_xcalloc(p->noutputs, sizeof *p->retry);
    for (size_t i = 0; i < p->noutputs; i++) {
        const struct lv_output_conf *oc = &conf->outputs[i];
        const struct lv_output_type *t = lv_registry_output(oc->kind);
        struct lv_output *out = &p->outputs[i];
        const char *name = oc->name ? oc->name : t->name;
        *out = (struct lv_output){t, oc, lv_metrics_output(name), p, p->loop,
                                  lv_xcalloc(1, t->ctx_size)};
        p->retry[i].p = p;
        p->retry[i].idx = i;
        ev_timer_init(&p->retry[i].timer, retry_due, 0., 0.);
        int rc = t->init(out);
        if (rc < 0) {
            snprintf(err, errlen, "output %s: cannot start: %s", name, strerror(-rc));
            return rc;
        }
    }
    return 0;
}

struct lv_pipeline *lv_pipeline_new(struct ev_loop *loop, const struct lv_conf *conf, char *err,
                                    size_t errlen)
{
    struct lv_pipeline *p = lv_xcalloc(1, sizeof *p);
    p->loop = loop;
    p->conf = conf;
    p->max_bytes = conf->buffer_max_bytes ? conf->buffer_max_bytes : 64u << 20;
    p->chain = lv_chain_new(conf, err, errlen);
    if (!p->chain || setup_outputs(p, err, errlen) < 0 || setup_inputs(p, err, errlen) < 0)
        goto err;
    if (conf->spool_dir) {
        p->spool = lv_spool_open(conf->spool_dir, conf->spool_max_bytes ? conf->spool_max_bytes
                                                                         : UINT64_MAX,
                                 err, errlen);
        if (!p->spool)
            goto err;
        ev_timer_init(&p->replay_timer, replay_due, 0., 0.1);
        p->spool_ok = true;
    }
    if (conf->admin.listen) {
        p->admin = lv_admin_start(loop, conf->admin.listen, err, errlen);
        if (!p->admin)
            goto err;
    }
    return p;
err:
    lv_pipeline_free(p);
    return NULL;
}

int lv_pipeline_run(struct lv_pipeline *p)
{
    ev_signal_init(&p->sigterm, on_signal, SIGTERM);
    ev_signal_init(&p->sigint, on_signal, SIGINT);
    p->sigterm.data = p->sigint.data = p;
    ev_signal_start(p->loop, &p->sigterm);
    ev_signal_start(p->loop, &p->sigint);
    ev_unref(p->loop); /* the signal watchers alone do not keep the loop alive */
    ev_unref(p->loop);
    if (p->spool && !lv_spool_empty(p->spool))
        ev_timer_start(p->loop, &p->replay_timer); /* what an earlier run spooled */
    for (size_t i = 0; i < p->ninputs; i++)
        p->inputs[i].type->start(&p->inputs[i]);
    if (p->admin)
        lv_admin_set_ready(p->admin, true);
    if (p->ninputs == 0)
        p->stopping = true;
    maybe_finish(p);
    if (!(p->stopping && p->batches_out == 0))
        ev_run(p->loop, 0);
    ev_ref(p->loop);
    ev_ref(p->loop);
    ev_signal_stop(p->loop, &p->sigterm);
    ev_signal_stop(p->loop, &p->sigint);
    ev_timer_stop(p->loop, &p->grace);
    return p->exit_code;
}

void lv_pipeline_free(struct lv_pipeline *p)
{
    if (!p)
        return;
    lv_admin_stop(p->admin);
    if (p->spool)
        ev_timer_stop(p->loop, &p->replay_timer);
    lv_spool_close(p->spool);
    for (size_t i = 0; p->inputs && i < p->ninputs; i++) {
        if (p->inputs[i].type)
            p->inputs[i].type->destroy(&p->inputs[i]);
        free(p->inputs[i].ctx);
    }
    for (size_t i = 0; i < p->nsources; i++)
        lv_source_close(p->sources[i]);
    for (size_t i = 0; p->rules && i < p->ninputs; i++)
        lv_multiline_rule_free(p->rules[i]);
    for (size_t i = 0; p->outputs && i < p->noutputs; i++) {
        ev_timer_stop(p->loop, &p->retry[i].timer);
        if (p->outputs[i].type)
            p->outputs[i].type->destroy(&p->outputs[i]);
        free(p->outputs[i].ctx);
    }
    while (p->free_list) {
        struct lv_batch *b = p->free_list;
        p->free_list = b->next;
        batch_free(b);
    }
    if (p->cur)
        batch_free(p->cur);
    free(p->inputs);
    free(p->rules);
    free(p->done);
    free(p->sources);
    free(p->dirty);
    free(p->outputs);
    free(p->retry);
    lv_chain_free(p->chain);
    free(p);
}

/* ---- shared defaults for stage slots that do not apply ---------------------------- */

void lv_input_noop(struct lv_input *in)
{
    (void)in;
}

int lv_output_flush_noop(struct lv_output *out)
{
    (void)out;
    return 0;
}

void lv_output_destroy_noop(struct lv_output *out)
{
    (void)out;
}
