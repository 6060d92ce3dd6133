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
 *                              batch; each source's acknowledgement marks, which
 *                              say which offset an input may checkpoint
 *   sidecar/ack.c              the acknowledgement engine: marks and per-output
 *                              settlement, with their invariants
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

struct lv_admin;
struct lv_chain;
struct lv_multiline_rule;
struct lv_spool;

/* Batches an output must be offered again, oldest first. It grows as
 * needed: what it holds is bounded by the buffer's budget. */
struct retry_queue {
    struct lv_batch **ring;
    size_t head, n, cap;
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
    uint32_t all_outputs; /* mask of every output */
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
    size_t frame_bytes; /* partial lines and held records of the sources */
    size_t frame_idle;  /* the most their buffers keep when idle, all sources */
    struct lv_source *finisher; /* while set, the only source that may read */

    /* buffer/queue.c */
    uint64_t next_seq;
    struct lv_batch *cur; /* source.c makes an empty one to carry a last mark */
    struct lv_batch *free_list;
    size_t nfree;
    size_t batches_out; /* submitted, not yet settled (parts included) */
    size_t *inflight;   /* by output: batches pending for it (in its hands or retry queue) */
    size_t held_bytes;  /* buffer bytes of those batches */
    size_t max_bytes;
    bool paused;
    bool releasing; /* inside drop_oldest() */
    bool replaying; /* inside replay() */
    bool spilling;  /* inside spill_retries() */
    bool abandoning; /* inside lv_queue_abandon() */
    bool spool_ok;  /* the last append worked: spill rather than pause */
    bool drop_logged; /* the buffer policy's drops were logged (once an episode) */
    struct lv_spool *spool;
    ev_timer replay_timer;

    /* output/dispatch.c */
    struct retry_queue *retry; /* by output; queue.c takes batches out of them to
                                * make room (drop_oldest) or to spill them */
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

/* The current batch `b` is sealed: its sources remember where it ends for
 * them (a mark each, held by b), and b->rereadable says whether every one
 * of them reads its lines again after a restart. */
void lv_source_mark_batch(struct lv_pipeline *p, struct lv_batch *b);
/* `spent`: with no batch in flight, the partial lines and held records of
 * the sources hold the whole budget beyond what their buffers keep when
 * idle (frame_idle), and a pause would wait for ever. Then one source
 * holding a line reads on until it is whole (or cut at max_line, or sent
 * at its timeout); the others wait (p->finisher). */
void lv_source_limit(struct lv_pipeline *p, bool spent);

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
/* Output `i` has settled `b`; the last output settles and recycles it. */
void lv_queue_settle(struct lv_pipeline *p, struct lv_batch *b, size_t i);
/* Output `i` wants the records of `b` whose outcome is LV_RETRY again: a
 * part holding them, counted in the budget, pending for output i only. */
struct lv_batch *lv_queue_split(struct lv_pipeline *p, struct lv_batch *b, size_t i,
                                const uint8_t *outcomes);
/* Counts records [from, to) of `b` as dropped, for `reason`. */
void lv_queue_drop_records(struct lv_batch *b, size_t from, size_t to,
                           enum lv_drop_reason reason);
/* The disk spool, when conf->spool_dir is set: open, replay what an earlier
 * run left, spill the retry queues (at shutdown, or to make room), close. */
int lv_queue_open_spool(struct lv_pipeline *p, char *err, size_t errlen);
void lv_queue_replay_earlier(struct lv_pipeline *p);
void lv_queue_spill_retries(struct lv_pipeline *p);
void lv_queue_close_spool(struct lv_pipeline *p);
/* The shutdown deadline: the outputs hand back what they hold, and every
 * batch still held goes to the spool or is counted as dropped (reason
 * shutdown), unless a tail input reads it again or it is on disk already
 * (*kept counts those records). Returns the records counted. */
size_t lv_queue_abandon(struct lv_pipeline *p, size_t *kept);
/* Frees the recycled batches and the current one. */
void lv_queue_free_batches(struct lv_pipeline *p);

/* output/dispatch.c */

/* Readies output `i`'s retry queue. */
void lv_dispatch_init(struct lv_pipeline *p, size_t i);
/* Submits `b` to output `i` (b is pending for it). */
void lv_dispatch_offer(struct lv_pipeline *p, size_t i, struct lv_batch *b);
/* Takes `b` out of every retry queue holding it; the outputs it was taken
 * from, as a mask. */
uint32_t lv_dispatch_unqueue(struct lv_pipeline *p, struct lv_batch *b);
/* Puts `b` back at the head of the retry queues in `outputs`. */
void lv_dispatch_requeue(struct lv_pipeline *p, struct lv_batch *b, uint32_t outputs);
/* Frees output `i`'s retry queue (it must be empty). */
void lv_dispatch_free(struct lv_pipeline *p, size_t i);

#endif
