/*
 * The pipeline's insides, shared by the files that make it up and by no one
 * else (stages see only include/logveil/stage.h, main.c only pipeline.h).
 * Who owns what:
 *
 *   sidecar/pipeline.c         lifecycle: setting up inputs (with their multiline
 *                              rules) and outputs, run, signals, the drain at
 *                              shutdown, free; the shared defaults for stage slots
 *   sidecar/input/source.c     sources: bytes from inputs through framing and the
 *                              multiline joiners into the chain and the current
 *                              batch; the acknowledgement marks that say which
 *                              offset an input may checkpoint
 *   sidecar/buffer/queue.c     the bounded in-memory buffer: batches, byte
 *                              accounting, pausing and resuming the inputs,
 *                              buffer.when_full, and the hand-off to the disk spool
 *   sidecar/output/dispatch.c  offering batches to outputs, their outcomes
 *                              (lv_output_done), retries with capped backoff
 *
 * Ownership: struct lv_pipeline owns everything it points to; pipeline.c
 * allocates and frees it. Its fields are grouped by the file that keeps them:
 * the others read them, and change them through that file's functions below,
 * except where a comment at the field says otherwise.
 */
#ifndef LOGVEIL_SIDECAR_PIPELINE_INTERNAL_H
#define LOGVEIL_SIDECAR_PIPELINE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <ev.h>

#include "logveil/stage.h"

#define RETRY_RING 1024
#define SEQ_RING 8192 /* batches in flight are capped well below this */

struct lv_admin;
struct lv_chain;
struct lv_multiline_rule;
struct lv_spool;

/* Batches an output must be offered again, oldest first. */
struct retry_queue {
    struct lv_batch *ring[RETRY_RING];
    size_t head, n;
    double backoff;
    ev_timer timer;
    struct lv_pipeline *p;
    size_t idx;
};

struct lv_pipeline {
    /* pipeline.c */
    struct ev_loop *loop;
    const struct lv_conf *conf;
    struct lv_chain *chain;
    struct lv_input *inputs;
    struct lv_multiline_rule **rules; /* by input; NULL: no multiline */
    bool *done;
    size_t ninputs, ndone;
    struct lv_output *outputs;
    size_t noutputs;
    bool stopping;
    int exit_code;
    struct lv_admin *admin;
    ev_signal sigterm, sigint;
    ev_timer grace;

    /* input/source.c */
    struct lv_source **sources; /* by id; NULL slots are free */
    size_t nsources;
    struct lv_source **dirty; /* sources with lines in the current batch */
    size_t ndirty;
    size_t frame_bytes;        /* partial lines and held records of the sources */
    uint8_t settled[SEQ_RING]; /* by batch sequence; cleared by lv_queue_get_batch() */

    /* buffer/queue.c */
    uint64_t next_seq;
    struct lv_batch *cur; /* source.c makes an empty one to carry a last mark */
    struct lv_batch *free_list;
    size_t nfree;
    size_t batches_out; /* submitted, not yet settled */
    size_t held_bytes;  /* buffer bytes of those batches */
    size_t max_bytes;
    bool paused;
    bool releasing; /* inside drop_oldest() */
    bool replaying; /* inside replay() */
    bool spool_ok;  /* the last append worked: spill rather than pause */
    struct lv_spool *spool;
    ev_timer replay_timer;

    /* output/dispatch.c */
    struct retry_queue *retry; /* by output; queue.c takes from their heads to
                                * make room (drop_oldest) or to spill at shutdown */
};

/* pipeline.c */

/* Ends the loop once stopping, every input is done and every batch settled. */
void lv_pipeline_maybe_finish(struct lv_pipeline *p);

/* The index of `in` in p->inputs, p->rules and p->done. */
static inline size_t lv_pipeline_input_index(const struct lv_pipeline *p, const struct lv_input *in)
{
    return (size_t)(in - p->inputs);
}

/* input/source.c */

/* The current batch `seq` is sealed: its sources remember where it ends for them. */
void lv_source_mark_batch(struct lv_pipeline *p, uint64_t seq);
/* Batch `seq` is settled: every source's acknowledged offset advances over it. */
void lv_source_settle_batch(struct lv_pipeline *p, uint64_t seq);

/* buffer/queue.c */

/* A batch, empty, with the next sequence number. */
struct lv_batch *lv_queue_get_batch(struct lv_pipeline *p);
/* p->cur with room for one more record, made (or sealed and made anew, when
 * it has reached its target size) as needed. */
struct lv_batch *lv_queue_current(struct lv_pipeline *p);
/* Seals p->cur (if any) and hands it on: to disk, to when_full, to the outputs. */
void lv_queue_submit(struct lv_pipeline *p);
/* Pauses or resumes the inputs as the bytes held cross the limits. */
void lv_queue_update_pause(struct lv_pipeline *p);
/* Drops one reference; the last one settles and recycles the batch. */
void lv_queue_release(struct lv_pipeline *p, struct lv_batch *b);
/* Counts records [from, to) of `b` as dropped by the buffer. */
void lv_queue_drop_records(struct lv_batch *b, size_t from, size_t to);
/* The disk spool, when conf->spool_dir is set: open, replay what an earlier
 * run left, spill the retry queues at shutdown, close. */
int lv_queue_open_spool(struct lv_pipeline *p, char *err, size_t errlen);
void lv_queue_replay_earlier(struct lv_pipeline *p);
void lv_queue_spill_retries(struct lv_pipeline *p);
void lv_queue_close_spool(struct lv_pipeline *p);
/* Frees the recycled batches and the current one. */
void lv_queue_free_batches(struct lv_pipeline *p);

/* output/dispatch.c */

/* Readies output `i`'s retry queue. */
void lv_dispatch_init(struct lv_pipeline *p, size_t i);
/* Submits `b` to output `i`, which holds one of its references. */
void lv_dispatch_offer(struct lv_pipeline *p, size_t i, struct lv_batch *b);

#endif
