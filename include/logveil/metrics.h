/*
 * The sidecar's own counters. One thread (the loop) writes them, so they are
 * plain integers. lv_metrics_render() writes them in the Prometheus text
 * format for the admin server and for `logveil filter --stats`.
 *
 * Every record that is not delivered is counted here with a reason: this is
 * how "nothing lost silently" is shown. With several outputs, a record lost
 * for two of them is counted twice (once per output that lost it).
 */
#ifndef LOGVEIL_METRICS_H
#define LOGVEIL_METRICS_H

#include <stdint.h>

#include "logveil/record.h"
#include "logveil/util.h"

enum lv_drop_reason {
    LV_DROP_SAMPLED,       /* sampled out by the environment's profile */
    LV_DROP_RATE_LIMITED,  /* per-stream token bucket */
    LV_DROP_DEPTH,         /* nesting deeper than limits.max_depth: fail closed */
    LV_DROP_REDACT_FAILED, /* redaction could not complete: fail closed */
    LV_DROP_BUFFER,        /* buffer policy (when_full) */
    LV_DROP_REJECTED,      /* permanent rejection by a sink (dead-lettered) */
    LV_DROP_SPOOL_CORRUPT, /* in a spool frame damaged on disk */
    LV_DROP_SHUTDOWN,      /* still undelivered at the shutdown deadline */
    LV_DROP_DELETED_UNREAD, /* tail: a file deleted before its last bytes could be read */
    LV_DROP_TRUNCATED_UNREAD, /* tail: a file truncated before its last bytes were read */
    LV_DROP_GZ_CORRUPT,     /* tail: past the damage in a compressed generation */
    LV_DROP_REASON_COUNT
};

const char *lv_drop_reason_name(enum lv_drop_reason r);

/* Why the tail input refused a file its globs named (input/tail_guard.h). */
enum lv_file_skip {
    LV_SKIP_OUTSIDE_ROOTS, /* its resolved path is under none of the allowed roots */
    LV_SKIP_SECRET_FILE,   /* one of the sidecar's own secret files */
    LV_SKIP_NOT_REGULAR,   /* a FIFO, device, socket or directory */
    LV_SKIP_SYMLINK_LOOP,  /* too many levels of symlinks */
    LV_SKIP_COUNT
};

const char *lv_file_skip_name(enum lv_file_skip r);

#define LV_METRICS_MAX_RULES 128
#define LV_METRICS_MAX_OUTPUTS 16
#define LV_LATENCY_NBUCKETS 13 /* the bounds below and +Inf */

struct lv_rule_counter {
    char name[64];
    uint64_t hits;
};

struct lv_output_counter {
    char name[64];
    uint64_t records;
    uint64_t bytes;
    uint64_t errors;
    uint64_t labels_demoted; /* loki: labels the cardinality guard made metadata */
    /* HTTP outputs: request latency, by LV_LATENCY_BOUNDS (cumulative at
     * render), the last bucket +Inf */
    uint64_t latency_buckets[LV_LATENCY_NBUCKETS];
    uint64_t latency_count;
    double latency_sum;
    uint64_t queue_full;     /* kafka: batches refused while its queue was full */
    uint64_t values_refused; /* values from records refused as sink metadata (kafka topics) */
};

/* Output request latency: the bounds of the histogram's buckets, seconds. */
#define LV_LATENCY_BOUNDS {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
void lv_metrics_latency(struct lv_output_counter *c, double seconds);

struct lv_metrics {
    uint64_t input_records;    /* application lines after framing */
    uint64_t input_bytes;
    uint64_t lines_truncated;  /* longer than limits.max_line */
    uint64_t lines_not_json;   /* shipped as {"message": ...} */
    uint64_t lines_joined;     /* multiline: appended to the record before them */
    uint64_t lines_invalid_utf8;
    uint64_t records_fast_path; /* validated and copied through verbatim */
    uint64_t records_kept[LV_LEVEL_COUNT];
    uint64_t dropped[LV_DROP_REASON_COUNT][LV_LEVEL_COUNT];
    uint64_t redactions;       /* values redacted, all rules */
    uint64_t records_redacted; /* records with at least one redaction */
    struct lv_rule_counter rules[LV_METRICS_MAX_RULES];
    unsigned nrules;
    struct lv_output_counter outputs[LV_METRICS_MAX_OUTPUTS];
    unsigned noutputs;
    uint64_t input_paused_total;
    uint64_t buffer_bytes;     /* gauge */
    uint64_t spool_bytes;      /* gauge: bytes in the disk spool */
    uint64_t inotify_overflows;   /* tail: inotify queue overflows (events lost) */
    uint64_t file_truncations;    /* tail: files found shorter than the offset read */
    uint64_t files_read_compressed; /* tail: gone files resumed from their rotated .gz */
    uint64_t files_skipped[LV_SKIP_COUNT]; /* tail: files refused, by reason */
    uint64_t files_open;          /* tail: gauge, files held open */
    uint64_t checkpoint_lag_bytes; /* tail: gauge, bytes read but not yet acknowledged */
    uint64_t spool_corrupt;       /* spool: batches skipped, damaged on disk */
    uint64_t batches;             /* batches sealed from the inputs */
    /* configuration reloads (SIGHUP, run --watch-config) */
    uint64_t config_generation;   /* gauge: 1 at start, +1 per reload applied */
    uint64_t config_reloads_applied;
    uint64_t config_reloads_rejected;
    uint64_t config_last_reload_ok; /* gauge: 1 when the last reload (if any) was applied */
    uint64_t audit_last_seq;      /* gauge: seq of the last audit record chained */
    uint64_t audit_state_errors;  /* audit state file writes that failed */
    uint64_t admin_timed_out;     /* admin: connections closed for a late request head */
};

extern struct lv_metrics lv_metrics;

/* The redaction policy (filters/redact.h: its digest and its rule lines),
 * rendered as the info metrics logveil_redaction_policy_info and
 * logveil_redaction_rule_info. Copied; the last call wins. */
void lv_metrics_set_policy(const char *digest, const char *rules, size_t len);

/* A counter for one redaction rule, registered once at start. Never NULL:
 * past the table's size, rules share a last "other" slot. */
uint64_t *lv_metrics_rule(const char *name);
struct lv_output_counter *lv_metrics_output(const char *name);
void lv_metrics_drop(enum lv_drop_reason reason, enum lv_level level);
uint64_t lv_metrics_dropped_total(enum lv_drop_reason reason);

/* One open file of a tail input, for the per-file gauges. */
struct lv_file_gauge {
    const char *file;
    const char *input;     /* the input's name: files of two inputs stay apart */
    uint64_t read_offset;  /* bytes read */
    uint64_t acked_offset; /* the checkpoint: acknowledged by every output */
};

/* Fills at most `max` gauges, returns how many. Called by lv_metrics_render(). */
typedef size_t lv_file_gauges_fn(void *arg, struct lv_file_gauge *out, size_t max);

/* Registers `fn` for `arg`, or with fn NULL removes what `arg` registered.
 * At most LV_METRICS_MAX_FILE_PROVIDERS providers and LV_METRICS_MAX_FILES
 * files in all are rendered, so label sets stay bounded. */
#define LV_METRICS_MAX_FILE_PROVIDERS 16
#define LV_METRICS_MAX_FILES 1024
void lv_metrics_file_gauges(lv_file_gauges_fn *fn, void *arg);

/* Appends the Prometheus text exposition of every counter to `out`. */
int lv_metrics_render(struct lv_buf *out);
void lv_metrics_reset(void);

#endif
