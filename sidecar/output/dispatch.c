/*
 * Delivery: offering batches to the outputs and taking their outcomes. An
 * output holds one reference to each batch it accepts until it reports
 * through lv_output_done(); rejected records are counted there. A batch
 * reported LV_RETRY (in whole, or for any of its records), or refused at
 * submit, waits in that output's retry queue and is offered again after a
 * backoff that starts at 0.1 s and doubles up to 5 s; it goes back to the
 * start after an outcome that needs no retry. Only the pipeline schedules
 * retries, and only here.
 */
#include <ev.h>

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
        lv_dispatch_offer(q->p, q->idx, b);
    }
}

void lv_dispatch_init(struct lv_pipeline *p, size_t i)
{
    p->retry[i].p = p;
    p->retry[i].idx = i;
    ev_timer_init(&p->retry[i].timer, retry_due, 0., 0.);
}

static void schedule_retry(struct lv_pipeline *p, size_t i, struct lv_batch *b)
{
    struct retry_queue *q = &p->retry[i];
    if (q->n == RETRY_RING) {
        /* Cannot hold more: count them as lost rather than hide it. */
        lv_queue_drop_records(b, 0, b->n);
        lv_queue_release(p, b);
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
    lv_queue_release(p, b);
}
