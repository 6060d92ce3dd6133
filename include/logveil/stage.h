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
 * it until it reports the outcome through lv_output_done(); the batch is
 * recycled once every output it went to has settled it (sidecar/ack.h).
 */
#ifndef LOGVEIL_STAGE_H
#define LOGVEIL_STAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logveil/conf.h"
#include "logveil/metrics.h"
#include "logveil/record.h"
#include "logveil/util.h"

struct ev_loop;
struct lv_ack_mark;
struct lv_pipeline;
struct lv_source;

/* Records in their final text, each followed by '\n' in `data`. Outputs read
 * data, recs and n; the other fields are the pipeline's. */
struct lv_batch {
    uint64_t seq;            /* order of creation; a part has its parent's */
    struct lv_ack_mark **marks; /* where its lines end in their sources (sidecar/ack.h) */
    size_t nmarks, capmarks;
    uint32_t pending;        /* outputs that have not settled it, bit i for output i */
    uint32_t spool_done;     /* outputs its spool frame is marked done for */
    uint64_t spool_id;       /* replayed from the spool: its segment; 0 if not */
    uint64_t spool_off;      /* ... and the frame's offset in it */
    struct lv_batch *parent; /* a part of this batch: records an output retries */
    struct lv_buf data;
    struct lv_record *recs;
    size_t n;
    size_t cap;
    bool spilling;           /* being gathered for the spool (queue.c) */
    bool rereadable;         /* its inputs read it again after a restart (tail) */
    struct lv_batch *next;   /* the pipeline's list link */
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
    double retry_max_delay; /* the dispatcher's longest backoff; init may set it (0: 5 s) */
};

struct lv_output_type {
    const char *name;
    size_t ctx_size;
    /* The keys its config section has besides type and name, declared next
     * to its code (sidecar/conf_map.h); NULL: none of its own. */
    const struct lv_conf_spec *opts;
    int (*init)(struct lv_output *out);
    /* Accepts `b` (the pipeline has taken a reference for this output) and
     * reports its outcome once through lv_output_done(), possibly before
     * returning. -EAGAIN: full, offer it again later (backpressure). */
    int (*submit)(struct lv_output *out, struct lv_batch *b);
    /* Finishes what was accepted; called at shutdown. */
    int (*flush)(struct lv_output *out);
    /* The shutdown deadline has come: hands back, through lv_output_done(),
     * every batch accepted and not finished (LV_RETRY, or per record when
     * some of its records are out), without blocking. */
    void (*cancel)(struct lv_output *out);
    void (*destroy)(struct lv_output *out);
};

/* Reports the outcome of a submitted batch, once. `outcomes` gives one
 * outcome per record when they differ (Elasticsearch items); NULL means all
 * `outcome`. Rejected records are counted (reason rejected); records to
 * retry, when not all of them, are offered again as a part of the batch
 * holding just them, so what went is never sent twice. */
void lv_output_done(struct lv_output *out, struct lv_batch *b, enum lv_outcome outcome,
                    const uint8_t *outcomes);

/* The output can take more after refusing a batch with -EAGAIN: batches
 * waiting for it are offered again now instead of after their backoff. */
void lv_output_ready(struct lv_output *out);

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
    int masked;          /* a secret as a whole (the rest of a private key block
                            past its record): the chain ships none of it */
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
    /* How far the bytes of source `s` reach right now: its file's size, or
     * for a pipe what was read plus what waits in it (UINT64_MAX when it
     * cannot tell). A partial line or a held record whose time is up is
     * sent on its own only once the input has read that far: the rest of
     * it may be there, unread (the input throttled, paused, or frozen). */
    uint64_t (*readable_end)(struct lv_input *in, const struct lv_source *s);
    /* Shutdown: stop for good, then call lv_pipeline_input_done(). */
    void (*stop)(struct lv_input *in);
    void (*destroy)(struct lv_input *in);
};

/*
 * A source is one stream of bytes an input reads: stdin, or one file. The
 * pipeline frames its bytes into lines (each source has its own partial-line
 * state), runs the filters, and tracks acknowledgement: lv_source_acked() is
 * the offset below which every record has been settled by every output
 * (sent, rejected and counted, or dropped by a counted policy). That is the
 * only offset an input may checkpoint.
 *
 * Ownership: the pipeline owns sources; an input holds them until it calls
 * lv_source_close().
 */
struct lv_source;

/* `offset` is where reading starts (a checkpoint, or 0). */
struct lv_source *lv_source_open(struct lv_pipeline *p, struct lv_input *in, const char *name,
                                 uint64_t offset);
/* Bytes read at the source's current read offset. */
int lv_source_feed(struct lv_source *s, const char *data, size_t len);
/* The stream ended for good: a last line without '\n', pending partial
 * fragments and records held for multiline joining become records. (A file
 * that may still grow is not flushed.) */
void lv_source_flush(struct lv_source *s);
/* Offsets: bytes fed so far, end of the last whole line processed (but not
 * past the start of a record held for multiline joining), and the
 * acknowledged checkpoint. */
uint64_t lv_source_read_offset(const struct lv_source *s);
uint64_t lv_source_processed(const struct lv_source *s);
uint64_t lv_source_acked(const struct lv_source *s);
/* Newlines among the bytes fed (raw lines read whole). */
uint64_t lv_source_newlines(const struct lv_source *s);
/* Bytes fed that belong to a line not handed on yet: an unterminated
 * line, or fragments waiting for their end. */
bool lv_source_mid_line(const struct lv_source *s);
/* Whether the input may read this source now. False while the buffer's
 * budget is held by partial lines alone and another source is finishing
 * its line: the input skips this one, and is resumed (resume()) when that
 * is over. */
bool lv_source_may_read(const struct lv_source *s);
/* Everything processed has been acknowledged, and no record is held. */
bool lv_source_settled(const struct lv_source *s);
/* Records held for joining are sent first, unless the input is done or the
 * pipeline stopping (a tail input then reads them again from its checkpoint). */
void lv_source_close(struct lv_source *s);

/* The input will feed nothing more (end of stdin, or it was stopped). */
void lv_pipeline_input_done(struct lv_pipeline *p, struct lv_input *in);

/* The configuration the pipeline runs: what an input needs beyond its own
 * section (state_dir; its index, in->conf - conf->inputs). */
const struct lv_conf *lv_pipeline_conf(const struct lv_pipeline *p);

/* Shared defaults for slots that do not apply. */
void lv_input_noop(struct lv_input *in);
int lv_output_flush_noop(struct lv_output *out);
void lv_output_cancel_noop(struct lv_output *out);
void lv_output_destroy_noop(struct lv_output *out);

#endif
