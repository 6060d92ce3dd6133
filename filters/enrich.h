/*
 * Enrichment: the fields logveil adds to every record. @timestamp (the
 * record's own time if it has one, else the runtime's, else arrival time,
 * always RFC 3339 UTC), stream, environment, Kubernetes metadata from the
 * downward API (ECS-style kubernetes.* names), and the ECS copies log.level
 * and trace.id. Fields the record already has at its top level are not
 * added again, except log.level: a record with a log object of its own and
 * no level in it gets "level" added to that object.
 *
 * The constant part (environment, kubernetes.*) is rendered once at start,
 * so enriching a record is a few appends.
 *
 * Ownership: the enricher copies what it needs from the configuration.
 */
#ifndef LOGVEIL_FILTERS_ENRICH_H
#define LOGVEIL_FILTERS_ENRICH_H

#include <stdbool.h>
#include <stdint.h>

#include "logveil/conf.h"
#include "logveil/record.h"
#include "logveil/util.h"

/* Top-level keys of a record that enrichment would otherwise add. */
enum {
    LV_HAS_TIMESTAMP = 1 << 0,
    LV_HAS_STREAM = 1 << 1,
    LV_HAS_ENVIRONMENT = 1 << 2,
    LV_HAS_KUBERNETES = 1 << 3,
    LV_HAS_LOG = 1 << 4,
    LV_HAS_TRACE = 1 << 5,
    LV_HAS_SAMPLE_RATE = 1 << 6,
    LV_HAS_REDACTED = 1 << 7,
};

struct lv_enricher;

struct lv_enrich_in {
    int64_t time_ns;
    enum lv_stream stream;
    unsigned has;          /* LV_HAS_* of the record */
    enum lv_level level;
    const char *trace_id;  /* for trace.id; may be NULL */
    size_t trace_len;
    double sample_rate;
    int redactions;
    bool truncated;
    size_t body;           /* where the record's '{' is in `out` (for merging
                              log.level into a log object of its own) */
};

struct lv_enricher *lv_enrich_new(const struct lv_conf *conf);
void lv_enrich_free(struct lv_enricher *e);

/* Appends the fields, each preceded by ',' unless `first`. */
int lv_enrich_append(struct lv_enricher *e, const struct lv_enrich_in *in, bool first,
                     struct lv_buf *out);

/* The configured name of the timestamp field ("@timestamp"). */
const char *lv_enrich_timestamp_field(const struct lv_enricher *e);

/* Parses RFC 3339 ("2025-11-21T10:00:00.123+02:00", 'Z', a space for 'T',
 * any fraction) into UTC nanoseconds. 0, or -EINVAL. *utc is set when the
 * text is already in the normalised form (ends in 'Z'). */
int lv_time_parse(const char *s, size_t len, int64_t *ns, bool *utc);
/* Parses a positive epoch number, digits with an optional fraction (no sign,
 * no exponent), in seconds, milliseconds, microseconds or nanoseconds (told
 * apart by magnitude), exactly. 0, or -EINVAL. */
int lv_time_parse_epoch(const char *s, size_t len, int64_t *ns);
/* "2025-11-21T10:00:00.123456789Z"; buf needs 32 bytes. Returns the length. */
size_t lv_time_format(int64_t ns, char *buf);

#endif
