/*
 * The contracts between the pipeline and its stages: input and output types,
 * and the batch that carries records from the filters to the outputs.
 *
 * Every stage type is a const table of function pointers; a plugin exports
 * exactly one such symbol (lv_output_stdout, lv_input_stdin, ...), listed in
 * sidecar/registry.c. The type is separate from the instance: the pipeline
 * allocates `ctx_size` bytes of context for each instance.
 *
 * Ownership: the pipeline owns batches. An output that accepts a batch holds
 * one reference until it reports the outcome through lv_output_done();
 * the batch is recycled when the last reference goes.
 */
#ifndef LOGVEIL_STAGE_H
#define LOGVEIL_STAGE_H

#include <stddef.h>
#include <stdint.h>

#include "logveil/conf.h"
#include "logveil/metrics.h"
#include "logveil/record.h"
#include "logveil/util.h"

struct ev_loop;
struct lv_pipeline;

/* Records in their final text, each followed by '\n' in `data`. */
struct lv_batch {
    struct lv_buf data;
    struct lv_record *recs;
    size_t n;
    size_t cap;
    int refs;
    struct lv_batch *next; /* the pipeline's list link */
};

/* A delivery outcome; only the pipeline schedules retries. */
enum lv_outcome { LV_SENT, LV_RETRY, LV_REJECTED };

struct lv_output {
    const struct lv_output_type *type;
    const struct lv_output_conf *conf;
    struct lv_output_counter *counter;
    struct lv_pipeline *pipeline;
    struct ev_loop *loop;
    void *ctx;
};

struct lv_output_type {
    const char *name;
    size_t ctx_size;
    int (*init)(struct lv_output *out);
    /* Accepts `b` (the pipeline has taken a reference for this output) and
     * reports its outcome once through lv_output_done(), possibly before
     * returning. -EAGAIN: full, offer it again later (backpressure). */
    int (*submit)(struct lv_output *out, struct lv_batch *b);
    /* Finishes what was accepted; called at shutdown. */
    int (*flush)(struct lv_output *out);
    void (*destroy)(struct lv_output *out);
};

/* Reports the outcome of a submitted batch. `outcomes` gives one outcome per
 * record when they differ (Elasticsearch items); NULL means all `outcome`. */
void lv_output_done(struct lv_output *out, struct lv_batch *b, enum lv_outcome outcome,
                    const uint8_t *outcomes);

/* For unit tests of outputs built without a pipeline (out->pipeline NULL):
 * lv_output_done() records the last outcome here and counts its calls. */
extern enum lv_outcome lv_output_last_outcome;
extern int lv_output_done_calls;

/* An application line, after CRI/Docker framing. */
struct lv_line {
    const char *data;
    size_t len;
    int64_t time_ns;     /* runtime's timestamp; 0 when the format has none */
    enum lv_stream stream;
    int truncated;       /* cut at limits.max_line */
    struct lv_pos pos;
};

struct lv_input {
    const struct lv_input_type *type;
    const struct lv_input_conf *conf;
    struct lv_pipeline *pipeline;
    struct ev_loop *loop;
    void *ctx;
};

struct lv_input_type {
    const char *name;
    size_t ctx_size;
    int (*init)(struct lv_input *in);
    int (*start)(struct lv_input *in);
    /* Stop reading (the buffer is full) and start again. */
    void (*pause)(struct lv_input *in);
    void (*resume)(struct lv_input *in);
    void (*destroy)(struct lv_input *in);
};

/* Called by inputs: one raw chunk of bytes in the input's format. The
 * pipeline frames it into lines, runs the filters and batches the records. */
int lv_pipeline_feed(struct lv_pipeline *p, struct lv_input *in, const char *data, size_t len);
/* The input has no more data. */
void lv_pipeline_eof(struct lv_pipeline *p, struct lv_input *in);

/* Shared defaults for slots that do not apply. */
void lv_input_noop(struct lv_input *in);
int lv_output_flush_noop(struct lv_output *out);
void lv_output_destroy_noop(struct lv_output *out);

#endif
