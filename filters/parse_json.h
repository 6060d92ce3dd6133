/*
 * The JSON pass: one streaming yajl parse of a line, no DOM. In EXTRACT mode
 * it only validates the record and picks out the fields the later stages
 * need (level, sampling key, always_keep fields, time); in REDACT mode it
 * also writes the record out again, key rules and value rules applied as it
 * goes. Numbers are written back exactly as they were read.
 *
 * Either way the output (REDACT, PATCH) or the caller's verbatim copy (EXTRACT) is
 * the object without its closing brace, so enrichment can append fields.
 * Nesting deeper than limits.max_depth cancels the parse (fail closed), which
 * also bounds yajl's own stack.
 *
 * Ownership: the pass owns its yajl arena and scratch; results that point at
 * text (trace_id) stay valid until the next run.
 */
#ifndef LOGVEIL_FILTERS_PARSE_JSON_H
#define LOGVEIL_FILTERS_PARSE_JSON_H

#include <stdbool.h>
#include <stdint.h>

#include "logveil/conf.h"
#include "logveil/record.h"
#include "logveil/util.h"
#include "redact.h"

/* PATCH does what REDACT does for a line without backslashes that is valid
 * UTF-8 (the caller checks both): the output is the line itself, copied in
 * runs, with only the redacted values (and a timestamp to normalise)
 * written anew. Each token's place in the line is known from yajl's count
 * of bytes consumed, which is exact inside a callback. */
enum lv_json_mode { LV_JSON_EXTRACT, LV_JSON_REDACT, LV_JSON_PATCH };

enum lv_json_status {
    LV_JSON_OK,
    LV_JSON_INVALID,    /* not JSON, or not an object: treat as text */
    LV_JSON_DEPTH,      /* nested deeper than the limit: fail closed */
    LV_JSON_CANCELLED,  /* the early hook dropped it (sampled out) */
    LV_JSON_FAILED,     /* redaction could not complete: fail closed */
    LV_JSON_NEEDS_REDACT, /* EXTRACT found something only REDACT can do */
};

struct lv_json_result {
    enum lv_level level;
    bool has_level;
    bool has_key;
    uint64_t key_hash;
    char trace_id[128];
    size_t trace_len;
    bool keep;
    bool has_time;
    int64_t time_ns;
    unsigned has;       /* LV_HAS_* (enrich.h) */
    int redactions;
    bool empty;         /* the object has no members in the output */
    bool repaired_utf8;
};

/* Called when the level or the key becomes known; returning true cancels
 * the parse (the record is dropped). */
typedef bool lv_json_early_fn(void *arg, const struct lv_json_result *res);

struct lv_json;

struct lv_json *lv_json_new(const struct lv_conf *conf, struct lv_redactor *redactor);
void lv_json_free(struct lv_json *j);

/* Runs the pass over `line`. `scan` selects the value rules (REDACT and
 * PATCH); `early` may be NULL. Output is appended to `out` in REDACT and
 * PATCH modes. */
enum lv_json_status lv_json_run(struct lv_json *j, enum lv_json_mode mode, const char *line,
                                size_t len, const struct lv_scan *scan, struct lv_buf *out,
                                struct lv_json_result *res, lv_json_early_fn *early, void *arg);

#endif
