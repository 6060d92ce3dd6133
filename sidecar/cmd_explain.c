/*
 * `logveil filter --explain` and `logveil filter --report`: the tools a
 * compliance officer runs on a sample before signing off a rule change.
 * Both run the same chain as `filter` (parse, redact, sample) on each line
 * of stdin, framed by --format, without multiline joining.
 *
 * --explain writes, instead of each record, one JSON line naming what was
 * redacted in it, never a value:
 *
 *   {"line":N,"kept":true,"policy":"<digest>","redactions":K,
 *    "fields":[{"path":"/user/password","rule":"key:password","action":"mask"},
 *              {"path":"/msg","spans":[[7,19]],"rules":["value:bearer_token"],
 *               "action":"mask"}, ...]}
 *
 * Paths are JSON Pointers (RFC 6901) built from the keys of the record as
 * written, so a key that held a secret appears in its redacted form; a
 * rewritten key is itself a field ("key": true).
 *
 * A path whose value a key rule replaced (or removed, under drop) names
 * that rule. A string that value rules rewrote gives the byte spans of the
 * decoded input string that were replaced, and the value rules that fired
 * in the record (each rule's counter, read before and after). Paths are
 * found by comparing the input with the record the chain wrote, so they
 * are exactly what changed; this is offline work, never the hot path.
 *
 * --report prints a summary over the input, from the same counters as
 * /metrics: records, records touched, counts per rule and action, records
 * dropped per reason and level.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yajl/yajl_tree.h>

#include "cmd_compliance.h"
#include "frame.h"
#include "json_write.h"
#include "logveil/chain.h"
#include "logveil/metrics.h"
#include "redact.h"

#define MAX_PATH 1024
#define MAX_DEPTH 64

struct explain {
    struct lv_chain *chain;
    struct lv_redactor *redactor; /* the chain's: key rules and the policy */
    struct lv_buf out;            /* the record the chain wrote */
    struct lv_buf line;           /* what --explain prints for it */
    uint64_t before[LV_METRICS_MAX_RULES];
    uint64_t lineno;
    bool explain;
    int nfields;
    char path[MAX_PATH];
    char *replacements[64]; /* every rule's replacement text, the default first */
    size_t nreplacements;
};

/* ---- the rules that fired --------------------------------------------------------------- */

static void snapshot(struct explain *e)
{
    for (unsigned i = 0; i < lv_metrics.nrules; i++)
        e->before[i] = lv_metrics.rules[i].hits;
}

/* The action of a rule, from the policy ("kind:name TAB match TAB action"). */
static const char *action_of(const struct explain *e, const char *rule)
{
    size_t len, n = strlen(rule);
    const char *p = lv_redact_policy(e->redactor, &len), *end = p + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            break;
        if ((size_t)(nl - p) > n && !memcmp(p, rule, n) && p[n] == '\t') {
            const char *act = memchr(p + n + 1, '\t', (size_t)(nl - p - n - 1));
            if (act && !strncmp(act + 1, "mask", 4))
                return "mask";
            if (act && !strncmp(act + 1, "hash", 4))
                return "hash";
            if (act && !strncmp(act + 1, "drop", 4))
                return "drop";
        }
        p = nl + 1;
    }
    return "mask";
}

/* The value rules whose counters moved for this record, as a JSON array. */
static void put_value_rules(struct explain *e, const char **action)
{
    bool first = true;
    lv_buf_putc(&e->line, '[');
    for (unsigned i = 0; i < lv_metrics.nrules; i++) {
        const char *name = lv_metrics.rules[i].name;
        if (lv_metrics.rules[i].hits == e->before[i] || strncmp(name, "value:", 6) != 0)
            continue;
        if (!first)
            lv_buf_putc(&e->line, ',');
        first = false;
        lv_json_string(&e->line, name, strlen(name), NULL);
        *action = action_of(e, name);
    }
    lv_buf_putc(&e->line, ']');
}

/* ---- what changed ----------------------------------------------------------------------- */

static void field_start(struct explain *e)
{
    if (e->nfields++)
        lv_buf_putc(&e->line, ',');
    lv_buf_puts(&e->line, "{\"path\":");
    lv_json_string(&e->line, e->path, strlen(e->path), NULL);
}

static void key_field(struct explain *e, int rule)
{
    char name[128];
    snprintf(name, sizeof name, "key:%s", lv_redact_key_word(e->redactor, rule));
    field_start(e);
    lv_buf_puts(&e->line, ",\"rule\":");
    lv_json_string(&e->line, name, strlen(name), NULL);
    lv_buf_puts(&e->line, ",\"action\":");
    const char *act = action_of(e, name);
    lv_json_string(&e->line, act, strlen(act), NULL);
    lv_buf_putc(&e->line, '}');
}

/* The replacement texts of the policy (its 4th field), distinct, longest
 * first, so that a replacement that begins another is not taken for it. */
static void collect_replacements(struct explain *e)
{
    size_t len;
    const char *p = lv_redact_policy(e->redactor, &len), *end = p + len;
    while (p < end && e->nreplacements < LV_ARRAY_LEN(e->replacements)) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *f = p;
        if (!nl)
            break;
        for (int k = 0; k < 3 && f; k++) {
            f = memchr(f, '\t', (size_t)(nl - f));
            f = f ? f + 1 : NULL;
        }
        const char *fe = f ? memchr(f, '\t', (size_t)(nl - f)) : NULL;
        if (f && fe && fe > f) {
            char *r = lv_xstrndup(f, (size_t)(fe - f));
            bool seen = false;
            for (size_t i = 0; i < e->nreplacements && !seen; i++)
                seen = !strcmp(e->replacements[i], r);
            if (seen)
                free(r);
            else
                e->replacements[e->nreplacements++] = r;
        }
        p = nl + 1;
    }
    for (size_t i = 1; i < e->nreplacements; i++) /* longest first */
        for (size_t j = i; j > 0 && strlen(e->replacements[j]) > strlen(e->replacements[j - 1]);
             j--) {
            char *t = e->replacements[j];
            e->replacements[j] = e->replacements[j - 1];
            e->replacements[j - 1] = t;
        }
}

/* The length of a replacement starting at out[o], or 0. */
static size_t replacement_at(const struct explain *e, const char *out, size_t o, size_t olen)
{
    for (size_t i = 0; i < e->nreplacements; i++) {
        size_t rl = strlen(e->replacements[i]);
        if (olen - o >= rl && !memcmp(out + o, e->replacements[i], rl))
            return rl;
    }
    if (olen - o > 5 && !memcmp(out + o, "hmac:", 5)) {
        size_t k = o + 5;
        while (k < olen && out[k] != ':' && k - o < 40)
            k++;
        if (k < olen && out[k] == ':') {
            k++;
            while (k < olen && strchr("0123456789abcdef", out[k]))
                k++;
            return k - o;
        }
    }
    return 0;
}

/* Spans of `in` replaced in `out`: equal bytes are walked together; at a
 * replacement, the input resumes where the output's next bytes (up to 8)
 * occur again. What is left at the end is one span. */
static void put_spans(struct explain *e, const char *in, size_t ilen, const char *out, size_t olen)
{
    size_t i = 0, o = 0, n = 0;
    lv_buf_puts(&e->line, ",\"spans\":[");
    while (i < ilen || o < olen) {
        if (i < ilen && o < olen && in[i] == out[o] && !replacement_at(e, out, o, olen)) {
            i++, o++;
            continue;
        }
        size_t r = replacement_at(e, out, o, olen), start = i;
        o += r;
        /* The output's next bytes, up to 8 and never into the next
         * replacement, say where the input resumes. */
        size_t want = 0;
        while (want < 8 && o + want < olen && !replacement_at(e, out, o + want, olen))
            want++;
        const char *next = NULL;
        if (want)
            for (size_t k = i + (r ? 1 : 0); k + want <= ilen && !next; k++)
                if (!memcmp(in + k, out + o, want))
                    next = in + k;
        i = next ? (size_t)(next - in) : ilen;
        if (!next)
            o = olen;
        char span[48];
        int len = snprintf(span, sizeof span, "%s[%zu,%zu]", n++ ? "," : "", start, i);
        lv_buf_append(&e->line, span, (size_t)len);
        if (!r && next == in + start)
            break; /* no progress: give up rather than loop */
    }
    lv_buf_putc(&e->line, ']');
}

static bool has_marker(const struct explain *e, const char *s)
{
    for (size_t i = 0; i < e->nreplacements; i++)
        if (strstr(s, e->replacements[i]))
            return true;
    return strstr(s, "hmac:") != NULL;
}

static void string_field(struct explain *e, const char *in, const char *out)
{
    const char *action = "mask";
    field_start(e);
    put_spans(e, in, strlen(in), out, strlen(out));
    lv_buf_puts(&e->line, ",\"rules\":");
    put_value_rules(e, &action);
    lv_buf_puts(&e->line, ",\"action\":");
    lv_json_string(&e->line, action, strlen(action), NULL);
    lv_buf_putc(&e->line, '}');
}

static void compare(struct explain *e, yajl_val in, yajl_val out, int depth);

/* Appends "/<name>" to the path, as a JSON Pointer (RFC 6901: "~" is
 * "~0", "/" is "~1"). Returns the length to cut back to. */
static size_t push(struct explain *e, const char *name)
{
    size_t at = strlen(e->path), n = at;
    if (n + 1 < sizeof e->path)
        e->path[n++] = '/';
    for (; *name && n + 2 < sizeof e->path; name++) {
        if (*name == '~' || *name == '/') {
            e->path[n++] = '~';
            e->path[n++] = *name == '~' ? '0' : '1';
        } else {
            e->path[n++] = *name;
        }
    }
    e->path[n] = '\0';
    return at;
}

/* Members are matched in order: the output has the input's members, less
 * those dropped, with keys that value rules rewrote, then enrichment. Path
 * segments are the output's keys, never the input's: a key may hold a
 * secret ({"password=hunter2": 1}), and the output's is its redacted form.
 * A member dropped whole shows as "*". */
static void compare_object(struct explain *e, yajl_val in, yajl_val out, int depth)
{
    size_t j = 0;
    for (size_t i = 0; i < in->u.object.len; i++) {
        const char *key = in->u.object.keys[i];
        const char *okey = j < out->u.object.len ? out->u.object.keys[j] : NULL;
        bool same = okey && !strcmp(okey, key);
        bool rewritten = okey && !same && has_marker(e, okey);
        size_t at = push(e, same || rewritten ? okey : "*");
        int rule = lv_redact_key(e->redactor, key, strlen(key));
        if (rewritten) {
            string_field(e, key, okey);
            e->line.len--; /* reopen it to mark it as a key */
            lv_buf_puts(&e->line, ",\"key\":true}");
        }
        if (rule >= 0)
            key_field(e, rule); /* replaced, or dropped, by its key rule */
        else if (same || rewritten)
            compare(e, in->u.object.values[i], out->u.object.values[j], depth + 1);
        j += same || rewritten;
        e->path[at] = '\0';
    }
}

static void compare(struct explain *e, yajl_val in, yajl_val out, int depth)
{
    if (depth > MAX_DEPTH || !in || !out)
        return;
    if (YAJL_IS_OBJECT(in) && YAJL_IS_OBJECT(out)) {
        compare_object(e, in, out, depth);
    } else if (YAJL_IS_ARRAY(in) && YAJL_IS_ARRAY(out)) {
        for (size_t i = 0; i < in->u.array.len && i < out->u.array.len; i++) {
            char idx[24];
            snprintf(idx, sizeof idx, "%zu", i);
            size_t at = push(e, idx);
            compare(e, in->u.array.values[i], out->u.array.values[i], depth + 1);
            e->path[at] = '\0';
        }
    } else if (YAJL_IS_STRING(in) && YAJL_IS_STRING(out)) {
        const char *a = YAJL_GET_STRING(in), *b = YAJL_GET_STRING(out);
        if (strcmp(a, b) != 0 && has_marker(e, b))
            string_field(e, a, b);
    }
}

/* ---- per record ------------------------------------------------------------------------- */

static yajl_val parse(const char *s, size_t len)
{
    char *text = lv_xstrndup(s, len), err[64];
    yajl_val v = yajl_tree_parse(text, err, sizeof err);
    free(text);
    return v;
}

static void explain_record(struct explain *e, const struct lv_line *l, bool kept, int redactions)
{
    char head[160];
    e->line.len = 0;
    e->nfields = 0;
    e->path[0] = '\0';
    snprintf(head, sizeof head, "{\"line\":%llu,\"kept\":%s,\"policy\":\"%s\",\"fields\":[",
             (unsigned long long)e->lineno, kept ? "true" : "false",
             lv_redact_policy_digest(e->redactor));
    lv_buf_append(&e->line, head, strlen(head));
    yajl_val out = kept ? parse(e->out.data, e->out.len) : NULL;
    yajl_val in = out ? parse(l->data, l->len) : NULL;
    if (in && YAJL_IS_OBJECT(in)) {
        compare(e, in, out, 0);
    } else if (out && YAJL_IS_OBJECT(out)) {
        /* A text line, shipped as {"message": ...}. */
        const char *path[] = {"message", NULL};
        yajl_val msg = yajl_tree_get(out, path, yajl_t_string);
        const char *got = msg ? YAJL_GET_STRING(msg) : NULL;
        char *text = lv_xstrndup(l->data, l->len);
        snprintf(e->path, sizeof e->path, "/message");
        if (got && strcmp(text, got) != 0 && has_marker(e, got))
            string_field(e, text, got);
        free(text);
    }
    yajl_tree_free(in);
    yajl_tree_free(out);
    snprintf(head, sizeof head, "],\"redactions\":%d}\n", redactions);
    lv_buf_append(&e->line, head, strlen(head));
    fwrite(e->line.data, 1, e->line.len, stdout);
}

static int on_line(void *arg, const struct lv_line *l)
{
    struct explain *e = arg;
    struct lv_record rec;
    uint64_t redactions = lv_metrics.redactions;
    e->lineno++;
    e->out.len = 0;
    snapshot(e);
    int kept = lv_chain_process(e->chain, l, &e->out, &rec);
    if (kept == 1)
        e->out.len = rec.len; /* without its newline */
    if (e->explain)
        explain_record(e, l, kept == 1, (int)(lv_metrics.redactions - redactions));
    return 0;
}

/* ---- the report ------------------------------------------------------------------------- */

static void report(const struct explain *e)
{
    static const char *const levels[] = {"unknown", "trace", "debug", "info",
                                         "warn",    "error", "fatal"};
    uint64_t kept = 0;
    for (int l = 0; l < LV_LEVEL_COUNT; l++)
        kept += lv_metrics.records_kept[l];
    printf("policy %s\n", lv_redact_policy_digest(e->redactor));
    printf("records %llu\n", (unsigned long long)lv_metrics.input_records);
    printf("records kept %llu\n", (unsigned long long)kept);
    printf("records touched %llu\n", (unsigned long long)lv_metrics.records_redacted);
    printf("redactions %llu\n", (unsigned long long)lv_metrics.redactions);
    for (unsigned i = 0; i < lv_metrics.nrules; i++)
        if (lv_metrics.rules[i].hits)
            printf("rule %s %s %llu\n", lv_metrics.rules[i].name,
                   action_of(e, lv_metrics.rules[i].name),
                   (unsigned long long)lv_metrics.rules[i].hits);
    for (int r = 0; r < LV_DROP_REASON_COUNT; r++)
        for (int l = 0; l < LV_LEVEL_COUNT; l++)
            if (lv_metrics.dropped[r][l])
                printf("dropped %s %s %llu\n", lv_drop_reason_name((enum lv_drop_reason)r),
                       levels[l], (unsigned long long)lv_metrics.dropped[r][l]);
}

int lv_cmd_explain(const struct lv_conf *conf, bool explain)
{
    char err[512] = "";
    struct explain e = {.explain = explain};
    e.chain = lv_chain_new(conf, err, sizeof err);
    if (!e.chain) {
        fprintf(stderr, "logveil: %s\n", err);
        return 1;
    }
    e.redactor = lv_chain_redactor(e.chain);
    collect_replacements(&e);
    lv_buf_init(&e.out, 4096, lv_chain_record_cap(e.chain) + 2);
    lv_buf_init(&e.line, 1024, 0);
    enum lv_format format = conf->ninputs ? conf->inputs[0].format : LV_FORMAT_JSON;
    struct lv_frame *f = lv_frame_new(format, conf->limits.max_line, 0);
    char buf[65536];
    ssize_t n;
    while ((n = read(STDIN_FILENO, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
        if (n > 0)
            lv_frame_feed(f, buf, (size_t)n, on_line, &e);
    lv_frame_finish(f, on_line, &e);
    if (!explain)
        report(&e);
    lv_frame_free(f);
    lv_buf_free(&e.out);
    lv_buf_free(&e.line);
    for (size_t i = 0; i < e.nreplacements; i++)
        free(e.replacements[i]);
    lv_chain_free(e.chain);
    return fflush(stdout) == 0 && n == 0 ? 0 : 1;
}
