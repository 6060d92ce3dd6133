/*
 * Sampling by environment. The decision for a record is a deterministic
 * function of a hash of its sampling key (trace_id by default), so every
 * replica keeps or drops a whole trace as one; records without a key are
 * sampled at random. Records matching always_keep (audit) are never dropped,
 * nor are levels whose rate is 1.0 (WARN/ERROR/FATAL in the shipped
 * profiles). Records without a level have a rate per stream (the profile's
 * `unknown`). An optional per-stream token bucket caps records per second.
 *
 * Ownership: the sampler keeps pointers into the configuration, which must
 * outlive it.
 */
#ifndef LOGVEIL_FILTERS_SAMPLE_H
#define LOGVEIL_FILTERS_SAMPLE_H

#include <stdbool.h>
#include <stdint.h>

#include "logveil/conf.h"
#include "logveil/metrics.h"
#include "logveil/record.h"

struct lv_sampler;

/* What is known about a record when the decision is made. */
struct lv_sample_input {
    enum lv_level level;
    enum lv_stream stream;
    bool has_key;       /* the sampling key was present */
    uint64_t key_hash;  /* lv_sample_hash() of its value */
    bool keep;          /* an always_keep rule matched */
    int64_t now_ns;     /* monotonic clock, for the token bucket */
};

/* `profile` may be NULL: keep everything (rate 1.0). */
struct lv_sampler *lv_sample_new(const struct lv_sample_conf *conf,
                                 const struct lv_sample_profile *profile);
void lv_sample_free(struct lv_sampler *s);

/* 64-bit hash of the key's bytes; stable across runs, processes and hosts. */
uint64_t lv_sample_hash(const char *key, size_t len);

/* The rate that applies to records of `level` from `stream` (1.0 for
 * always-kept levels); the stream matters only for LV_LEVEL_UNKNOWN. */
double lv_sample_rate(const struct lv_sampler *s, enum lv_level level, enum lv_stream stream);

/* True when the record is kept; *rate is the rate it was kept at (for the
 * sample_rate field). When dropped, *why says whether by sampling or by the
 * rate limit. Counting is the caller's job. */
bool lv_sample_decide(struct lv_sampler *s, const struct lv_sample_input *in, double *rate,
                      enum lv_drop_reason *why);

/* True when a record of this level can only be kept (rate 1.0, no limit
 * that applies): lets the caller skip work that only serves the decision. */
bool lv_sample_always_kept(const struct lv_sampler *s, enum lv_level level, enum lv_stream stream);

/* True when some level can be dropped at all (else sampling costs nothing
 * and the caller need not look for the level early). */
bool lv_sample_may_drop(const struct lv_sampler *s);

#endif
