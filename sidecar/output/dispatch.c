/*
 * Delivery: offering batches to the outputs and taking their outcomes. An
 * output holds each batch it accepts until it reports through
 * lv_output_done(); rejected records are counted there. Records reported
 * LV_RETRY, or a batch refused at submit, wait in that output's retry queue
 * and are offered again after a backoff whose ceiling starts at 0.1 s and
 * doubles up to the output's retry_max_delay (5 s by default), with full
 * jitter (or at once, when the output says it is ready again); the backoff
 * goes back to the start after an outcome that needs no retry. When only
 * some records of a batch are to be retried (an Elasticsearch bulk answer
 * item by item), a part holding just those records is retried, and the
 * batch stays pending for that output until the part settles: records that
 * went are never sent twice, and rejected ones are counted once. Only the
 * pipeline schedules retries, and only here.
 */
#include <stdlib.h>
#include <ev.h>

#include "ack.h"
#include "pipeline_internal.h"

enum lv_outcome lv_output_last_outcome;
int lv_output_done_calls;

void lv_dispatch_offer(struct lv_pipeline *p, size_t i, struct lv_batch *b)
{
    struct lv_output *out = &p->outputs[i];
    /* -EAGAIN (full) and errors alike: offered again after a backoff. */
    if (out->type->submit(out, b) < 0)
        lv_output_done(out, b, LV_RETRY, NULL);
}

/* ---- the retry queues ----------------------------------------------------------- */

static void reserve(struct retry_queue *q)
{
    if (q->n < q->cap)
        return;
    size_t cap = q->cap ? q->cap * 2 : 64;
    struct lv_batch **ring = lv_xmalloc(cap * sizeof *ring);
    for (size_t k = 0; k < q->n; k++)
        ring[k] = q->ring[(q->head + k) % q->cap];
    free(q->ring);
    q->ring = ring;
    q->head = 0;
    q->cap = cap;
}

static void push_back(struct retry_queue *q, struct lv_batch *b)
{
    reserve(q);
    q->ring[(q->head + q->n++) % q->cap] = b;
}

static void push_front(struct retry_queue *q, struct lv_batch *b)
{
    reserve(q);
    q->head = (q->head + q->cap - 1) % q->cap;
    q->ring[q->head] = b;
    q->n++;
}

/* Removes `b` from `q`, keeping the order of the others; whether it was there. */
static bool take_out(struct retry_queue *q, const struct lv_batch *b)
{
    size_t k = 0;
    while (k < q->n && q->ring[(q->head + k) % q->cap] != b)
        k++;
    if (k == q->n)
        return false;
    for (; k + 1 < q->n; k++)
        q->ring[(q->head + k) % q->cap] = q->ring[(q->head + k + 1) % q->cap];
    q->n--;
    return true;
}

uint32_t lv_dispatch_unqueue(struct lv_pipeline *p, struct lv_batch *b)
{
    uint32_t outputs = 0;
    for (size_t i = 0; i < p->noutputs; i++)
        if (take_out(&p->retry[i], b))
            outputs |= UINT32_C(1) << i;
    return outputs;
}

void lv_dispatch_requeue(struct lv_pipeline *p, struct lv_batch *b, uint32_t outputs)
{
    for (size_t i = 0; i < p->noutputs; i++)
        if (outputs & (UINT32_C(1) << i))
            push_front(&p->retry[i], b);
}

static void retry_due(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct retry_queue *q = lv_container_of(w, struct retry_queue, timer);
    size_t n = q->n;
    (void)loop;
    (void)revents;
    for (size_t k = 0; k < n && q->n; k++) {
        struct lv_batch *b = q->ring[q->head];
        q->head = (q->head + 1) % q->cap;
        q->n--;
        lv_dispatch_offer(q->p, q->idx, b);
    }
}

void lv_dispatch_init(struct lv_pipeline *p, size_t i)
{
    p->retry[i].p = p;
    p->retry[i].idx = i;
    ev_timer_init(&p->retry[i].timer, retry_due, 0., 0.);
}

void lv_dispatch_free(struct lv_pipeline *p, size_t i)
{
    ev_timer_stop(p->loop, &p->retry[i].timer);
    free(p->retry[i].ring);
    p->retry[i].ring = NULL;
    p->retry[i].n = p->retry[i].cap = 0;
}

/* A uniform draw in [0, 1): xorshift64*, seeded from the clock once. */
static double uniform(void)
{
    static uint64_t x;
    if (!x)
        x = (uint64_t)lv_mono_ns() | 1;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    return (double)((x * UINT64_C(2685821657736338717)) >> 11) * 0x1.0p-53;
}

/* Exponential backoff with full jitter: the ceiling doubles from 0.1 s up
 * to the output's retry_max_delay (5 s unless it says otherwise), and the
 * wait is drawn uniformly below it, so outputs and replicas that failed
 * together do not retry together. There is no limit on the number of
 * retries: a long outage holds batches in the budget (pausing the inputs)
 * or in the spool, and loses nothing. */
static void schedule_retry(struct lv_pipeline *p, size_t i, struct lv_batch *b)
{
    struct retry_queue *q = &p->retry[i];
    double max = p->outputs[i].retry_max_delay > 0 ? p->outputs[i].retry_max_delay : 5.0;
    push_back(q, b);
    q->backoff = q->backoff ? (q->backoff * 2 > max ? max : q->backoff * 2) : (max < 0.1 ? max : 0.1);
    if (!ev_is_active(&q->timer) && !p->abandoning) {
        ev_timer_set(&q->timer, q->backoff * uniform(), 0.);
        ev_timer_start(p->loop, &q->timer);
    }
}

/* ---- outcomes --------------------------------------------------------------------- */

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
    size_t i = output_index(p, out), retry = 0;
    for (size_t r = 0; r < b->n; r++) {
        enum lv_outcome o = outcomes ? (enum lv_outcome)outcomes[r] : outcome;
        retry += o == LV_RETRY;
        if (o == LV_REJECTED)
            lv_metrics_drop(LV_DROP_REJECTED, (enum lv_level)b->recs[r].level);
    }
    if (retry == 0 && !(b->n == 0 && outcome == LV_RETRY)) {
        p->retry[i].backoff = 0;
        lv_queue_settle(p, b, i);
    } else if (retry == b->n) {
        schedule_retry(p, i, b);
    } else {
        /* Some went: only the others are offered again. */
        schedule_retry(p, i, lv_queue_split(p, b, i, outcomes));
    }
}

void lv_output_ready(struct lv_output *out)
{
    struct lv_pipeline *p = out->pipeline;
    if (!p || p->abandoning)
        return;
    struct retry_queue *q = &p->retry[output_index(p, out)];
    if (!q->n)
        return;
    ev_timer_stop(p->loop, &q->timer);
    retry_due(p->loop, &q->timer, 0);
}
