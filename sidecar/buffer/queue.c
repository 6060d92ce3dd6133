/*
 * The bounded in-memory buffer. Records are written by the chain straight
 * into the current batch's buffer; the batch goes to every output at the end
 * of each input chunk, so latency is one read. A batch is recycled when every
 * output it went to has settled it (sidecar/ack.h): sent, rejected (counted),
 * dropped by a counted policy, or spooled for it.
 *
 * The bytes of batches in flight (their acknowledgement marks included),
 * plus what the sources hold (partial lines, records held for joining, the
 * buffers their framing keeps), are measured against buffer.max_bytes:
 * over it the inputs pause, and they resume once the batches alone are
 * down to half of it. Pausing helps only while a batch is in flight, whose
 * settling frees memory: partial lines shrink only by reading on, so with
 * nothing in flight they never keep the inputs paused; when they alone
 * spend the budget, one source reads on to finish its line and the others
 * wait (lv_source_limit()), so they hold at most the budget plus one line.
 * buffer.when_full decides what happens to
 * new batches meanwhile: block (only the pause), drop_newest (their records
 * are dropped; the inputs never pause), drop_oldest (batches waiting for a
 * retry go first), shed (DEBUG records, then INFO ones, go; the pause comes
 * later).
 *
 * With a disk spool, spooling is per output. When the memory budget is
 * spent, the batches waiting for a retry go to disk, oldest first, each once
 * for the outputs whose retry queues hold it (a batch on disk counts as
 * settled for them, so checkpoints move on); a new batch then goes to disk
 * for the outputs that have older batches there (to keep their order), or
 * for every output if memory is still spent, and straight to the others: a
 * healthy output is never held back by one that is down. Spooled batches
 * are replayed in order, when there is room again or after a restart, to the
 * outputs they were spooled for that have not marked them done; a replayed
 * batch that fails again waits in memory (it is still on disk) and is never
 * spooled twice.
 *
 * At the shutdown deadline the outputs hand back what they hold; with a
 * spool it goes to disk, otherwise its records are counted as dropped
 * (reason shutdown), except those a tail input reads again from its
 * checkpoint (which then stays before them) and those still on disk.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <ev.h>
#include <zlib.h>

#include "ack.h"
#include "audit.h"
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
    lv_ack_batch_free(b);
    lv_buf_free(&b->data);
    free(b->recs);
    free(b);
}

/* What a batch in flight holds, its acknowledgement marks included. */
static size_t batch_bytes(const struct lv_batch *b)
{
    return b->data.cap + b->cap * sizeof *b->recs + lv_ack_batch_bytes(b);
}

/* Keeps an empty batch for reuse, unless enough are kept or it grew for a
 * long line: memory held outside the buffer's accounting stays small. */
static void recycle(struct lv_pipeline *p, struct lv_batch *b)
{
    b->data.len = 0;
    b->n = 0;
    assert(b->nmarks == 0); /* settled or forgotten before */
    lv_ack_batch_forget(b);
    b->pending = 0;
    b->spool_id = b->spool_off = 0;
    b->spool_done = 0;
    b->parent = NULL;
    b->spilling = b->rereadable = false;
    if (p->nfree < MAX_FREE_BATCHES && b->data.cap <= BATCH_TARGET + 65536) {
        b->next = p->free_list;
        p->free_list = b;
        p->nfree++;
    } else {
        batch_free(b);
    }
}

/* No output holds `b` any more: its sources' checkpoints may pass its lines.
 * At the shutdown deadline a batch a tail input reads again is forgotten
 * instead (its checkpoint stays before it), and a replayed one stays
 * unsettled on disk (the next run replays it). */
static void release(struct lv_pipeline *p, struct lv_batch *b)
{
    p->batches_out--;
    p->held_bytes -= batch_bytes(b);
    if (p->abandoning && b->rereadable) {
        lv_ack_batch_forget(b);
    } else {
        lv_ack_batch_settle(b);
        if (!b->parent)
            lv_audit_settled(lv_chain_audit(p->chain), b->seq);
    }
    if (b->spool_id && !p->abandoning) {
        lv_spool_settled(p->spool, b);
        p->spool_ok = true;
    }
    recycle(p, b);
}

/* Hands `b` to the outputs in `outputs`; its bytes count until the last of
 * them has settled it. */
static void offer(struct lv_pipeline *p, struct lv_batch *b, uint32_t outputs)
{
    lv_ack_batch_open(b, outputs);
    p->batches_out++;
    p->held_bytes += batch_bytes(b);
    for (size_t i = 0; i < p->noutputs; i++)
        p->inflight[i] += (outputs >> i) & 1;
    /* b lives until the last output in the mask, offered last, settles it. */
    for (size_t i = 0; i < p->noutputs; i++)
        if (outputs & (UINT32_C(1) << i))
            lv_dispatch_offer(p, i, b);
    lv_queue_update_pause(p);
}

struct lv_batch *lv_queue_split(struct lv_pipeline *p, struct lv_batch *b, size_t i,
                                const uint8_t *outcomes)
{
    struct lv_batch *part = batch_new(p);
    lv_ack_split(b, (unsigned)i, outcomes, part);
    part->rereadable = b->rereadable;
    p->batches_out++;
    p->held_bytes += batch_bytes(part);
    p->inflight[i]++;
    return part;
}

/* ---- when the buffer is full ------------------------------------------------------ */

void lv_queue_drop_records(struct lv_batch *b, size_t from, size_t to, enum lv_drop_reason reason)
{
    for (size_t r = from; r < to; r++)
        lv_metrics_drop(reason, (enum lv_level)b->recs[r].level);
}

/* The buffer policy drops records: said once per episode, when it starts
 * (the count is in the metrics), and again when there is room. */
static void dropping(struct lv_pipeline *p)
{
    static const char *const names[] = {"block", "drop_newest", "drop_oldest", "shed"};
    if (p->drop_logged)
        return;
    p->drop_logged = true;
    lv_warn("buffer full (%zu bytes held, max_bytes %zu): when_full %s drops records, "
            "counted in logveil_records_dropped_total{reason=\"buffer\"}",
            p->held_bytes, p->max_bytes, names[p->conf->when_full]);
}

/* shed: removes records at or below `max_level` that no rule keeps, never
 * WARN and above, and compacts the batch. */
static void shed(struct lv_pipeline *p, struct lv_batch *b, enum lv_level max_level)
{
    size_t kept = 0, out = 0;
    for (size_t r = 0; r < b->n; r++) {
        struct lv_record rec = b->recs[r];
        bool lose = !rec.keep && rec.level != LV_LEVEL_UNKNOWN && rec.level <= max_level;
        if (lose) {
            lv_metrics_drop(LV_DROP_BUFFER, (enum lv_level)rec.level);
            dropping(p);
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
    p->releasing = true; /* lv_queue_settle() calls lv_queue_update_pause() */
    for (size_t i = 0; i < p->noutputs && p->held_bytes >= p->max_bytes; i++) {
        struct retry_queue *q = &p->retry[i];
        while (q->n && p->held_bytes >= p->max_bytes) {
            struct lv_batch *old = q->ring[q->head];
            q->head = (q->head + 1) % q->cap;
            q->n--;
            lv_queue_drop_records(old, 0, old->n, LV_DROP_BUFFER); /* lost for this output */
            dropping(p);
            lv_queue_settle(p, old, i);
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
        lv_queue_drop_records(b, 0, b->n, LV_DROP_BUFFER);
        dropping(p);
        b->n = 0;
        b->data.len = 0;
        break;
    case LV_FULL_DROP_OLDEST:
        drop_oldest(p);
        break;
    case LV_FULL_SHED:
        shed(p, b, p->held_bytes >= p->max_bytes + p->max_bytes / 8 ? LV_LEVEL_INFO
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
    size_t used = p->held_bytes + p->frame_bytes;
    lv_metrics.buffer_bytes = used;
    /* A pause waits for batches in flight to settle; with none in flight it
     * would wait for ever (partial lines shrink only by reading on). */
    bool in_flight = p->batches_out > 0;
    bool over = in_flight && used >= pause_at(p);
    bool under = !in_flight || p->held_bytes <= p->max_bytes / 2;
    if (p->drop_logged && under) {
        p->drop_logged = false;
        lv_info("buffer has room again (%zu bytes held)", p->held_bytes);
    }
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
    /* Nothing in flight and the budget spent all the same, beyond what the
     * sources' buffers keep when idle: partial lines hold it, whatever the
     * policy (none of them drops a partial line). */
    lv_source_limit(p, !in_flight && used >= p->max_bytes + p->frame_idle && !p->stopping);
}

/* ---- the disk spool ------------------------------------------------------------------- */

static int by_seq(const void *a, const void *b)
{
    const struct lv_batch *x = *(struct lv_batch *const *)a, *y = *(struct lv_batch *const *)b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The batches waiting in retry queues that are not on disk already, each
 * once, oldest first. The caller frees the array. */
static struct lv_batch **gather_retries(struct lv_pipeline *p, size_t *n)
{
    size_t total = 0;
    for (size_t i = 0; i < p->noutputs; i++)
        total += p->retry[i].n;
    struct lv_batch **v = lv_xmalloc((total ? total : 1) * sizeof *v);
    *n = 0;
    for (size_t i = 0; i < p->noutputs; i++) {
        struct retry_queue *q = &p->retry[i];
        for (size_t k = 0; k < q->n; k++) {
            struct lv_batch *b = q->ring[(q->head + k) % q->cap];
            if (b->spilling || lv_ack_batch_durable(b))
                continue;
            b->spilling = true;
            v[(*n)++] = b;
        }
    }
    qsort(v, *n, sizeof *v, by_seq);
    return v;
}

/* A batch just written to the spool for `outputs` is settled for them. */
static void spooled(struct lv_pipeline *p, struct lv_batch *b, uint32_t outputs)
{
    lv_metrics.spool_bytes = lv_spool_bytes(p->spool);
    if (!ev_is_active(&p->replay_timer))
        ev_timer_start(p->loop, &p->replay_timer);
    for (size_t i = 0; i < p->noutputs; i++)
        if (outputs & (UINT32_C(1) << i))
            lv_queue_settle(p, b, i); /* the last one releases b */
}

static void spool_failed(struct lv_pipeline *p, int rc)
{
    if (rc != -ENOSPC && p->spool_ok)
        lv_error("spool: cannot write: %s; holding batches in memory", strerror(-rc));
    p->spool_ok = false; /* until replay makes room: the inputs pause as usual */
}

/* Moves the batches waiting for a retry to disk, oldest first, each once for
 * the outputs whose queues hold it. False when an append failed (the rest
 * stay in memory). */
static bool spill_retries(struct lv_pipeline *p)
{
    size_t n;
    struct lv_batch **v = gather_retries(p, &n);
    bool ok = true;
    p->spilling = true;
    for (size_t k = 0; k < n; k++) {
        struct lv_batch *b = v[k];
        b->spilling = false;
        if (!ok)
            continue;
        uint32_t outputs = lv_dispatch_unqueue(p, b);
        int rc = lv_spool_append(p->spool, b, outputs);
        if (rc < 0) {
            lv_dispatch_requeue(p, b, outputs);
            spool_failed(p, rc);
            ok = false;
            continue;
        }
        spooled(p, b, outputs);
    }
    p->spilling = false;
    free(v);
    return ok;
}

/* Outputs that still hold batches, in their hands or for a retry. */
static uint32_t busy(const struct lv_pipeline *p)
{
    uint32_t outputs = 0;
    for (size_t i = 0; i < p->noutputs; i++)
        outputs |= (uint32_t)(p->inflight[i] > 0) << i;
    return outputs;
}

/* With a spool, a new batch goes to disk for the outputs whose older
 * batches wait there (their order), and, when memory is spent even after
 * the batches waiting for a retry went to disk, for the outputs that still
 * hold batches: the memory is theirs, and an idle output is not made to
 * wait for them. Returns the outputs it is still to be offered to. */
static uint32_t spill(struct lv_pipeline *p, struct lv_batch *b)
{
    if (!p->spool || b->n == 0 || p->stopping)
        return p->all_outputs;
    if (p->held_bytes >= p->max_bytes)
        spill_retries(p);
    uint32_t to_disk = lv_spool_backlog(p->spool);
    if (p->held_bytes >= p->max_bytes)
        to_disk |= busy(p) ? busy(p) : p->all_outputs;
    if (!to_disk)
        return p->all_outputs;
    int rc = lv_spool_append(p->spool, b, to_disk);
    if (rc < 0) {
        spool_failed(p, rc);
        return p->all_outputs;
    }
    lv_metrics.spool_bytes = lv_spool_bytes(p->spool);
    if (!ev_is_active(&p->replay_timer))
        ev_timer_start(p->loop, &p->replay_timer);
    return p->all_outputs & ~to_disk;
}

/* Outputs with batches waiting for a retry. */
static uint32_t retrying(const struct lv_pipeline *p)
{
    uint32_t outputs = 0;
    for (size_t i = 0; i < p->noutputs; i++)
        outputs |= (uint32_t)(p->retry[i].n > 0) << i;
    return outputs;
}

/* Replays spooled batches, oldest first, while memory has room and no
 * older batch for an output with a backlog on disk waits for a retry. */
static void replay(struct lv_pipeline *p)
{
    if (!p->spool || p->replaying || p->spilling || p->stopping ||
        (retrying(p) & lv_spool_backlog(p->spool)))
        return; /* older batches first; at shutdown, spooled ones stay */
    p->replaying = true;
    while (p->held_bytes < p->max_bytes / 2 && !lv_spool_empty(p->spool)) {
        struct lv_batch *b = lv_queue_get_batch(p);
        uint32_t outputs;
        if (lv_spool_next(p->spool, b, &outputs) < 0) {
            recycle(p, b);
            break;
        }
        offer(p, b, outputs);
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

/* Names the outputs (kind and name, in order): a spool frame's output bits
 * mean the same outputs only under the same signature. */
static uint32_t outputs_signature(const struct lv_pipeline *p)
{
    uLong c = crc32(0L, Z_NULL, 0);
    for (size_t i = 0; i < p->noutputs; i++) {
        const struct lv_output *out = &p->outputs[i];
        const char *name = out->conf->name ? out->conf->name : out->type->name;
        c = crc32(c, (const Bytef *)out->type->name, (uInt)strlen(out->type->name) + 1);
        c = crc32(c, (const Bytef *)name, (uInt)strlen(name) + 1);
    }
    return (uint32_t)c;
}

int lv_queue_open_spool(struct lv_pipeline *p, char *err, size_t errlen)
{
    const struct lv_conf *conf = p->conf;
    if (!conf->spool_dir)
        return 0;
    uint64_t max = conf->spool_max_bytes ? conf->spool_max_bytes : UINT64_MAX;
    p->spool = lv_spool_open(conf->spool_dir, max, (unsigned)p->noutputs, outputs_signature(p),
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
    if (p->spool)
        spill_retries(p);
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
    lv_metrics.batches++;
    lv_audit_sealed(lv_chain_audit(p->chain), b->seq);
    lv_source_mark_batch(p, b);
    uint32_t outputs = spill(p, b);
    if (outputs)
        when_full(p, b);
    if (b->n == 0 || !outputs) {
        /* On disk for every output, or every line dropped (and counted):
         * settled at once. */
        lv_ack_batch_settle(b);
        lv_audit_settled(lv_chain_audit(p->chain), b->seq);
        recycle(p, b);
        lv_queue_update_pause(p);
        lv_pipeline_maybe_finish(p);
        return;
    }
    offer(p, b, outputs);
}

void lv_queue_settle(struct lv_pipeline *p, struct lv_batch *b, size_t i)
{
    /* A part settles its parent for the same output when it is done. */
    while (b) {
        if (b->spool_id && !p->abandoning)
            lv_spool_done(p->spool, b, (unsigned)i);
        assert(p->inflight[i] > 0);
        p->inflight[i]--;
        if (!lv_ack_batch_done(b, (unsigned)i))
            break;
        struct lv_batch *parent = b->parent;
        release(p, b);
        b = parent;
    }
    lv_queue_update_pause(p);
    replay(p);
    lv_pipeline_maybe_finish(p);
}

/* Records of `b` lost at the deadline for output `i`: 0 when they are still
 * on disk or an input reads them again. */
static size_t abandon_one(struct lv_pipeline *p, struct lv_batch *b, size_t i, size_t *kept)
{
    size_t lost = 0;
    if (lv_ack_batch_durable(b) || b->rereadable) {
        *kept += b->n;
    } else {
        lv_queue_drop_records(b, 0, b->n, LV_DROP_SHUTDOWN);
        lost = b->n;
    }
    lv_queue_settle(p, b, i);
    return lost;
}

size_t lv_queue_abandon(struct lv_pipeline *p, size_t *kept)
{
    for (size_t i = 0; i < p->noutputs; i++)
        p->outputs[i].type->cancel(&p->outputs[i]);
    if (p->spool)
        spill_retries(p);
    size_t lost = 0;
    *kept = 0;
    p->abandoning = true;
    for (size_t i = 0; i < p->noutputs; i++) {
        struct retry_queue *q = &p->retry[i];
        while (q->n) {
            struct lv_batch *b = q->ring[q->head];
            q->head = (q->head + 1) % q->cap;
            q->n--;
            lost += abandon_one(p, b, i, kept);
        }
    }
    p->abandoning = false;
    return lost;
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
