/*
 * The chain for one line. The order of work is chosen so that the common
 * cases cost least:
 *   1. the pre-scan decides whether the line can need redaction at all;
 *   2. a line that cannot is parsed only to validate it and pick out its
 *      fields (EXTRACT), then copied through verbatim; a line that can is
 *      parsed once and copied in runs with only the redacted values written
 *      anew (PATCH), or, when it has escapes or invalid UTF-8, written out
 *      whole (REDACT);
 *   3. as soon as the level and the sampling key are known, the sampling
 *      decision is made and a sampled-out record stops being parsed.
 * The always_keep rules are exact string matches, so when none of their
 * values occurs in the raw line (and the line has no escapes) a record
 * cannot be kept by them, and the early decision is safe.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

#include "audit.h"
#include "enrich.h"
#include "json_text.h"
#include "json_write.h"
#include "level.h"
#include "logveil/chain.h"
#include "logveil/log.h"
#include "logveil/metrics.h"
#include "parse_json.h"
#include "redact.h"
#include "sample.h"

struct needle {
    const char *text;
    size_t len;
    size_t pivot;
};

struct lv_chain {
    struct lv_redactor *redactor;
    struct lv_json *json;
    struct lv_sampler *sampler;
    struct lv_enricher *enricher;
    struct lv_audit *audit; /* NULL: no audit trail */
    const struct lv_keep_rule *keep;
    size_t nkeep;
    struct needle *keep_needles;
    bool count_field;
    char summary[64];   /* "redaction":{"policy":"<digest>","count": ; "" when off */
    size_t summary_len;
    bool may_drop;
    int max_depth;
    size_t record_cap;
    /* per line */
    const struct lv_line *line;
    bool keep_possible;
    bool decided;
    bool kept;
    double rate;
    enum lv_drop_reason why;
};

static size_t pivot_of(const char *t, size_t len);

struct lv_chain *lv_chain_new(const struct lv_conf *conf, char *err, size_t errlen)
{
    struct lv_chain *c = lv_xcalloc(1, sizeof *c);
    c->redactor = lv_redact_new(&conf->redact, err, errlen);
    if (!c->redactor) {
        lv_chain_free(c);
        return NULL;
    }
    c->audit = lv_audit_new(conf, err, errlen);
    if (!c->audit && err[0]) {
        lv_chain_free(c);
        return NULL;
    }
    c->json = lv_json_new(conf, c->redactor);
    c->sampler = lv_sample_new(&conf->sample, lv_conf_profile(conf));
    c->enricher = lv_enrich_new(conf);
    c->may_drop = lv_sample_may_drop(c->sampler);
    c->keep = conf->sample.keep;
    c->nkeep = conf->sample.nkeep;
    c->keep_needles = lv_xcalloc(c->nkeep, sizeof *c->keep_needles);
    for (size_t i = 0; i < c->nkeep; i++) {
        const char *t = c->keep[i].equals;
        c->keep_needles[i] = (struct needle){t, strlen(t), pivot_of(t, strlen(t))};
    }
    c->count_field = conf->redact.count_field;
    const char *digest = lv_redact_policy_digest(c->redactor);
    size_t plen;
    const char *policy = lv_redact_policy(c->redactor, &plen);
    lv_metrics_set_policy(digest, policy, plen);
    if (conf->redact.summary_field)
        c->summary_len = (size_t)snprintf(c->summary, sizeof c->summary,
                                          "\"redaction\":{\"policy\":\"%s\",\"count\":", digest);
    c->max_depth = conf->limits.max_depth;
    c->record_cap = 6 * (conf->limits.max_line ? conf->limits.max_line : 1 << 20) + 65536;
    return c;
}

void lv_chain_free(struct lv_chain *c)
{
    if (!c)
        return;
    lv_json_free(c->json);
    lv_redact_free(c->redactor);
    lv_sample_free(c->sampler);
    lv_enrich_free(c->enricher);
    lv_audit_free(c->audit);
    free(c->keep_needles);
    free(c);
}

size_t lv_chain_record_cap(const struct lv_chain *c)
{
    return c->record_cap;
}

struct lv_redactor *lv_chain_redactor(struct lv_chain *c)
{
    return c->redactor;
}

struct lv_audit *lv_chain_audit(struct lv_chain *c)
{
    return c->audit;
}

void lv_chain_hand_audit(struct lv_chain *from, struct lv_chain *to)
{
    lv_audit_free(to->audit);
    to->audit = from->audit;
    from->audit = NULL;
}

/* ---- sampling ------------------------------------------------------------------ */

static void decide(struct lv_chain *c, enum lv_level level, bool has_key, uint64_t hash, bool keep)
{
    struct lv_sample_input in = {level, c->line->stream, has_key, hash, keep, lv_mono_ns()};
    c->kept = lv_sample_decide(c->sampler, &in, &c->rate, &c->why);
    c->decided = true;
}

static bool early_decision(void *arg, const struct lv_json_result *r)
{
    struct lv_chain *c = arg;
    if (c->decided || c->keep_possible || !r->has_level)
        return false;
    if (!r->has_key && !lv_sample_always_kept(c->sampler, r->level, c->line->stream))
        return false;
    decide(c, r->level, r->has_key, r->key_hash, false);
    return !c->kept;
}

/* Finds `n` in `s` by its least common character (memchr is vectorised;
 * glibc's memmem is not, and this runs on every line). */
static bool find(const char *s, size_t len, const struct needle *n)
{
    if (!n->len || n->len > len)
        return n->len == 0;
    const char *from = s + n->pivot, *end = s + len - (n->len - n->pivot) + 1;
    while (from < end) {
        const char *hit = memchr(from, n->text[n->pivot], (size_t)(end - from));
        if (!hit)
            return false;
        if (memcmp(hit - n->pivot, n->text, n->len) == 0)
            return true;
        from = hit + 1;
    }
    return false;
}

/* The character of `t` least frequent in English text and JSON logs. */
static size_t pivot_of(const char *t, size_t len)
{
    static const char common[] = "\" :,etaoinshrdlcumwfgypbvkjxqz";
    size_t best = 0, best_rank = 0;
    for (size_t i = 0; i < len; i++) {
        const char *at = strchr(common, tolower((unsigned char)t[i]));
        size_t rank = at && t[i] ? (size_t)(at - common) : sizeof common;
        if (rank > best_rank) {
            best_rank = rank;
            best = i;
        }
    }
    return best;
}

static bool keep_possible(const struct lv_chain *c, const char *s, size_t len)
{
    for (size_t i = 0; i < c->nkeep; i++)
        if (find(s, len, &c->keep_needles[i]))
            return true;
    return false;
}

/* ---- records --------------------------------------------------------------------- */

/* The verbatim object without its closing brace (and trailing blanks).
 * -EINVAL when it may not be copied as it is: only the rewriting pass
 * repairs UTF-8 that yajl lets through (overlong forms, surrogates) and
 * drops the blanks it tolerates (\v, \f). */
static int copy_verbatim(const char *s, size_t len, struct lv_buf *out)
{
    if (!lv_json_copyable(s, len))
        return -EINVAL;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r' ||
                   s[len - 1] == '\n'))
        len--;
    if (!len || s[len - 1] != '}')
        return -EINVAL;
    return lv_buf_append(out, s, len - 1);
}

/* A text line: {"message": <the line with value rules applied>. */
static int text_record(struct lv_chain *c, const struct lv_scan *scan, struct lv_buf *out,
                       struct lv_json_result *res)
{
    const struct lv_line *l = c->line;
    memset(res, 0, sizeof *res);
    lv_metrics.lines_not_json++;
    if (lv_buf_puts(out, "{\"message\":") < 0)
        return -ENOBUFS;
    if (l->masked) { /* a secret as a whole: none of it goes out */
        const char *rep = lv_redact_replacement(c->redactor);
        lv_metrics.redactions++;
        res->redactions = 1;
        return lv_json_string(out, rep, strlen(rep), NULL);
    }
    int n = lv_redact_string(c->redactor, scan, l->data, l->len, out);
    if (n < 0)
        return n;
    res->redactions = n;
    res->level = lv_level_text(l->data, l->len);
    res->has_level = res->level != LV_LEVEL_UNKNOWN;
    res->keep = keep_possible(c, l->data, l->len);
    return 0;
}

/* Replaces whatever was written with a record that says why. */
static void failure_record(const char *why, struct lv_buf *out, struct lv_json_result *res)
{
    memset(res, 0, sizeof *res);
    res->keep = true; /* the failure itself must reach the store */
    lv_buf_puts(out, "{\"message\":\"logveil: record withheld: ");
    lv_buf_append(out, why, strlen(why));
    lv_buf_puts(out, "\",\"logveil_error\":true");
}

static enum lv_json_status parse(struct lv_chain *c, const struct lv_scan *scan, bool candidate,
                                 size_t start, struct lv_buf *out, struct lv_json_result *res)
{
    const struct lv_line *l = c->line;
    enum lv_json_status st;
    if (!candidate) {
        st = lv_json_run(c->json, LV_JSON_EXTRACT, l->data, l->len, scan, out, res,
                         early_decision, c);
        if (st == LV_JSON_OK) {
            if (copy_verbatim(l->data, l->len, out) == 0) {
                lv_metrics.records_fast_path++;
                return st;
            }
            st = LV_JSON_NEEDS_REDACT;
        }
        /* Invalid UTF-8 or a timestamp to rewrite: only REDACT or PATCH can. */
        if (st != LV_JSON_NEEDS_REDACT && st != LV_JSON_INVALID)
            return st;
        out->len = start;
    }
    /* Without escapes, with valid UTF-8 and only JSON's blanks, the line
     * can be patched rather than written anew. */
    bool patch = !scan->escapes && lv_json_copyable(l->data, l->len);
    st = lv_json_run(c->json, patch ? LV_JSON_PATCH : LV_JSON_REDACT, l->data, l->len, scan, out,
                     res, early_decision, c);
    if (st == LV_JSON_NEEDS_REDACT) { /* a token PATCH could not place */
        out->len = start;
        st = lv_json_run(c->json, LV_JSON_REDACT, l->data, l->len, scan, out, res,
                         early_decision, c);
    }
    if (res->repaired_utf8)
        lv_metrics.lines_invalid_utf8++;
    return st;
}

/* Sampling first: when the environment can drop records and no always_keep
 * value occurs in the line, a validate-only parse finds the level and key,
 * and a record sampled out stops there, before any redaction work. Returns
 * LV_JSON_CANCELLED for a dropped record, LV_JSON_OK with the verbatim body
 * written when the record is kept and needs no redaction, or -1 when the
 * general path must run. */
static int sample_first(struct lv_chain *c, size_t start, struct lv_buf *out,
                        struct lv_json_result *res)
{
    const struct lv_line *l = c->line;
    if (!c->may_drop || l->truncated || l->masked || c->keep_possible)
        return -1;
    enum lv_json_status st =
        lv_json_run(c->json, LV_JSON_EXTRACT, l->data, l->len, NULL, out, res, early_decision, c);
    if (st == LV_JSON_CANCELLED)
        return st;
    if (st != LV_JSON_OK)
        return -1;
    if (!c->decided)
        decide(c, res->level, res->has_key, res->key_hash, res->keep);
    if (!c->kept)
        return LV_JSON_CANCELLED;
    struct lv_scan scan;
    if (lv_redact_scan(c->redactor, l->data, l->len, &scan))
        return -1;
    if (copy_verbatim(l->data, l->len, out) < 0)
        return -1;
    lv_metrics.records_fast_path++;
    return LV_JSON_OK;
}

static bool may_keep(const struct lv_chain *c, const struct lv_line *l)
{
    return memchr(l->data, '\\', l->len) || keep_possible(c, l->data, l->len);
}

/* Builds the record body (everything but the enrich fields and the closing
 * brace). Returns false when the record was dropped. */
static bool body(struct lv_chain *c, size_t start, struct lv_buf *out, struct lv_json_result *res)
{
    const struct lv_line *l = c->line;
    /* Without sampling there is no early decision to protect. */
    c->keep_possible = c->may_drop ? may_keep(c, l) : true;
    int early = sample_first(c, start, out, res);
    if (early == LV_JSON_CANCELLED)
        return false;
    if (early == LV_JSON_OK)
        return true;
    out->len = start;
    struct lv_scan scan;
    bool candidate = lv_redact_scan(c->redactor, l->data, l->len, &scan);
    scan.cut = l->truncated != 0; /* the text may end inside a secret */
    enum lv_json_status st = l->truncated || l->masked ? LV_JSON_INVALID
                                                       : parse(c, &scan, candidate, start, out, res);
    if (st == LV_JSON_CANCELLED) {
        out->len = start;
        return false;
    }
    if (st == LV_JSON_INVALID) {
        out->len = start;
        c->decided = false; /* a partial parse may have decided on a non-record */
        if (text_record(c, &scan, out, res) < 0)
            st = LV_JSON_FAILED;
    }
    if (st == LV_JSON_OK || st == LV_JSON_INVALID)
        return true;
    out->len = start;
    c->decided = false;
    enum lv_drop_reason why = st == LV_JSON_DEPTH ? LV_DROP_DEPTH : LV_DROP_REDACT_FAILED;
    lv_metrics_drop(why, res->level);
    char msg[96];
    if (st == LV_JSON_DEPTH)
        snprintf(msg, sizeof msg, "JSON nested deeper than %d levels", c->max_depth);
    else
        snprintf(msg, sizeof msg, "redaction could not complete");
    failure_record(msg, out, res);
    return true;
}

/* "redaction":{"policy":"<digest>","count":N}, the rule set and what it did. */
static int put_summary(const struct lv_chain *c, int count, struct lv_buf *out)
{
    char num[16];
    int n = snprintf(num, sizeof num, "%d}", count > 0 ? count : 0);
    if (out->data[out->len - 1] != '{' && lv_buf_putc(out, ',') < 0)
        return -ENOBUFS;
    if (lv_buf_append(out, c->summary, c->summary_len) < 0)
        return -ENOBUFS;
    return lv_buf_append(out, num, (size_t)n);
}

static int finish(struct lv_chain *c, size_t start, struct lv_buf *out,
                  const struct lv_json_result *res, struct lv_record *rec)
{
    const struct lv_line *l = c->line;
    int64_t t = res->has_time ? res->time_ns : l->time_ns ? l->time_ns : lv_now_ns();
    struct lv_enrich_in in = {
        .time_ns = t,
        .stream = l->stream,
        .has = res->has,
        .level = res->level,
        .trace_id = res->trace_id,
        .trace_len = res->trace_len,
        .sample_rate = c->rate,
        .redactions = c->count_field ? res->redactions : 0,
        .truncated = l->truncated != 0,
        .body = start,
    };
    bool first = res->empty || out->len - start == 1;
    if (lv_enrich_append(c->enricher, &in, first, out) < 0)
        return -ENOBUFS;
    if (c->summary_len && put_summary(c, res->redactions, out) < 0)
        return -ENOBUFS;
    /* Last, so that the chain covers the record as it is shipped. */
    if (res->keep && c->audit && lv_audit_append(c->audit, out, start) < 0)
        return -ENOBUFS;
    if (lv_buf_puts(out, "}\n") < 0)
        return -ENOBUFS;
    *rec = (struct lv_record){
        .off = start,
        .len = (uint32_t)(out->len - start - 1),
        .level = (uint8_t)res->level,
        .stream = (uint8_t)l->stream,
        .keep = res->keep,
        .time_ns = t,
        .key_hash = res->key_hash,
        .pos = l->pos,
    };
    return 0;
}

int lv_chain_process(struct lv_chain *c, const struct lv_line *line, struct lv_buf *out,
                     struct lv_record *rec)
{
    size_t start = out->len;
    struct lv_json_result res;
    c->line = line;
    c->decided = false;
    c->rate = 1.0;
    lv_metrics.input_records++;
    lv_metrics.input_bytes += line->len;
    if (line->truncated)
        lv_metrics.lines_truncated++;
    if (!body(c, start, out, &res)) {
        lv_metrics_drop(c->why, res.level);
        return 0;
    }
    if (!c->decided)
        decide(c, res.level, res.has_key, res.key_hash, res.keep);
    if (!c->kept) {
        out->len = start;
        lv_metrics_drop(c->why, res.level);
        return 0;
    }
    if (out->len - start > c->record_cap || finish(c, start, out, &res, rec) < 0) {
        out->len = start;
        lv_metrics_drop(LV_DROP_REDACT_FAILED, res.level);
        failure_record("record larger than the output cap", out, &res);
        if (finish(c, start, out, &res, rec) < 0) {
            out->len = start;
            return 0;
        }
    }
    if (res.redactions > 0)
        lv_metrics.records_redacted++;
    lv_metrics.records_kept[res.level]++;
    return 1;
}
