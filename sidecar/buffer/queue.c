/*
 * The bounded in-memory buffer. Records are written by the chain straight
 * into the current batch's buffer; the batch goes to every output at the end
 * of each input chunk, so latency is one read. A batch is recycled when the
 * last output has settled it: sent, rejected (counted), or retried until it is.
 *
 * The bytes of batches in flight, plus what the sources hold (partial lines,
 * records held for joining), are measured against buffer.max_bytes: over it
 * the inputs pause, and they resume once the batches alone are down to half
 * of it. buffer.when_full decides what happens to new batches meanwhile:
 * block (only the pause), drop_newest (their records are dropped; the inputs
 * never pause), drop_oldest (batches waiting for a retry go first), shed
 * (DEBUG records, then INFO ones, go; the pause comes later).
 *
 * With a disk spool, a batch sealed while the memory budget is spent (or
 * while older batches are still spooled, to keep order) is written to disk
 * instead; once on disk it counts as settled, so checkpoints move on, and it
 * is replayed in order when there is room again, or after a restart.
 */
#include <stdlib.h>
#include <string.h>
#include <ev.h>

#include "logveil/chain.h"
#include "logveil/log.h"
#include "pipeline_internal.h"
#include "spool.h"

#define BATCH_TARGET (256 * 1024)
#define MAX_FREE_BATCHES 4

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

struct lv_batch *lv_queue_get_batch(struct lv_pipeline *p)
{
    struct lv_batch *b = batch_new(p);
    b->seq = p->next_seq++;
    p->settled[b->seq % SEQ_RING] = 0;
    return b;
}

/* Records go into the current batch; one at its target size is sealed and
 * handed on first. */
struct lv_batch *lv_queue_current(struct lv_pipeline *p)
{
    if (p->cur && p->cur->data.len >= BATCH_TARGET)
        lv_queue_submit(p);
    if (!p->cur)
        p->cur = lv_queue_get_batch(p);
    struct lv_batch *b = p->cur;
    if (b->n == b->cap) {
        b->cap *= 2;
        b->recs = lv_xrealloc(b->recs, b->cap * sizeof *b->recs);
    }
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

/* Keeps an empty batch for reuse, unless enough are kept or it grew for a
 * long line: memory held outside the buffer's accounting stays small. */
static void recycle(struct lv_pipeline *p, struct lv_batch *b)
{
    b->data.len = 0;
    b->n = 0;
    if (p->nfree < MAX_FREE_BATCHES && b->data.cap <= BATCH_TARGET + 65536) {
        b->next = p->free_list;
        p->free_list = b;
        p->nfree++;
    } else {
        batch_free(b);
    }
}

/* ---- when the buffer is full ------------------------------------------------------ */

void lv_queue_drop_records(struct lv_batch *b, size_t from, size_t to)
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
static void drop_oldest(struct lv_pipeline *p)
{
    p->releasing = true; /* lv_queue_release() calls lv_queue_update_pause() */
    for (size_t i = 0; i < p->noutputs && p->held_bytes >= p->max_bytes; i++) {
        struct retry_queue *q = &p->retry[i];
        while (q->n && p->held_bytes >= p->max_bytes) {
            struct lv_batch *old = q->ring[q->head];
            q->head = (q->head + 1) % RETRY_RING;
            q->n--;
            lv_queue_drop_records(old, 0, old->n); /* lost for this output at least */
            lv_queue_release(p, old);
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
        lv_queue_drop_records(b, 0, b->n);
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

/* ---- backpressure ------------------------------------------------------------------- */

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

void lv_queue_update_pause(struct lv_pipeline *p)
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

/* Every output takes a reference; the batch's bytes count until the last
 * one is dropped. */
static void offer_all(struct lv_pipeline *p, struct lv_batch *b)
{
    b->refs = (int)p->noutputs;
    p->batches_out++;
    p->held_bytes += batch_bytes(b);
    for (size_t i = 0; i < p->noutputs; i++)
        lv_dispatch_offer(p, i, b);
    lv_queue_update_pause(p);
}

/* ---- the disk spool ------------------------------------------------------------------- */

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
    lv_source_settle_batch(p, b->seq);
    recycle(p, b);
    if (!ev_is_active(&p->replay_timer))
        ev_timer_start(p->loop, &p->replay_timer);
    lv_pipeline_maybe_finish(p);
    return true;
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
        struct lv_batch *b = lv_queue_get_batch(p);
        uint64_t id;
        if (lv_spool_next(p->spool, b, &id) < 0) {
            lv_source_settle_batch(p, b->seq);
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

int lv_queue_open_spool(struct lv_pipeline *p, char *err, size_t errlen)
{
    const struct lv_conf *conf = p->conf;
    if (!conf->spool_dir)
        return 0;
    p->spool = lv_spool_open(conf->spool_dir, conf->spool_max_bytes ? conf->spool_max_bytes
                                                                     : UINT64_MAX,
                             err, errlen);
    if (!p->spool)
        return -EIO; /* `err` says why */
    ev_timer_init(&p->replay_timer, replay_due, 0., 0.1);
    p->spool_ok = true;
    return 0;
}

void lv_queue_replay_earlier(struct lv_pipeline *p)
{
    if (p->spool && !lv_spool_empty(p->spool))
        ev_timer_start(p->loop, &p->replay_timer); /* what an earlier run spooled */
}

/* Shutdown with a spool: batches waiting for a retry go to disk rather than
 * be lost (they are replayed after the spool's older content). */
void lv_queue_spill_retries(struct lv_pipeline *p)
{
    for (size_t i = 0; p->spool && i < p->noutputs; i++) {
        struct retry_queue *q = &p->retry[i];
        while (q->n && lv_spool_append(p->spool, q->ring[q->head]) == 0) {
            struct lv_batch *b = q->ring[q->head];
            q->head = (q->head + 1) % RETRY_RING;
            q->n--;
            lv_queue_release(p, b);
        }
    }
}

void lv_queue_close_spool(struct lv_pipeline *p)
{
    if (p->spool)
        ev_timer_stop(p->loop, &p->replay_timer);
    lv_spool_close(p->spool);
}

/* ---- submitting and settling -------------------------------------------------------- */

void lv_queue_submit(struct lv_pipeline *p)
{
    struct lv_batch *b = p->cur;
    if (!b)
        return;
    p->cur = NULL;
    lv_source_mark_batch(p, b->seq);
    if (spill(p, b))
        return;
    when_full(p, b);
    if (b->n == 0) {
        /* Every line was dropped (and counted): settled at once. */
        uint64_t seq = b->seq;
        recycle(p, b);
        lv_source_settle_batch(p, seq);
        lv_pipeline_maybe_finish(p);
        return;
    }
    offer_all(p, b);
}

void lv_queue_release(struct lv_pipeline *p, struct lv_batch *b)
{
    if (--b->refs > 0)
        return;
    if (b->refs < 0)
        abort(); /* a reference dropped twice: the accounting is broken */
    p->batches_out--;
    p->held_bytes -= batch_bytes(b);
    lv_source_settle_batch(p, b->seq);
    if (b->spool_id) {
        lv_spool_settled(p->spool, b->spool_id);
        b->spool_id = 0;
        p->spool_ok = true;
    }
    recycle(p, b);
    lv_queue_update_pause(p);
    replay(p);
    lv_pipeline_maybe_finish(p);
}

void lv_queue_free_batches(struct lv_pipeline *p)
{
    while (p->free_list) {
        struct lv_batch *b = p->free_list;
        p->free_list = b->next;
        batch_free(b);
    }
    if (p->cur)
        batch_free(p->cur);
}
