/*
 * The sidecar's counters and their Prometheus text exposition.
 *
 * Only the loop thread touches lv_metrics, so the counters are plain
 * integers. Every drop reason is rendered for every level, zeros included, so
 * that an alert can name a series before it has ever moved. Rule and output
 * names come from the configuration: their tables are fixed in size, names
 * past the last slot share an "other" series (label sets stay bounded), and
 * label values are escaped as the format requires.
 */
#include <assert.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "logveil/metrics.h"

#define NAME_LEN sizeof(((struct lv_rule_counter *)0)->name)
#define OTHER "other"

/* table_slot() reads both tables through their leading name. */
_Static_assert(offsetof(struct lv_rule_counter, name) == 0, "name leads lv_rule_counter");
_Static_assert(offsetof(struct lv_output_counter, name) == 0, "name leads lv_output_counter");
_Static_assert(sizeof(((struct lv_output_counter *)0)->name) == NAME_LEN, "same name length");

struct lv_metrics lv_metrics;

/* Lower-case level names for label values; lv_level_name() is upper-case. */
static const char *const level_labels[LV_LEVEL_COUNT] = {
    "unknown", "trace", "debug", "info", "warn", "error", "fatal",
};

const char *lv_drop_reason_name(enum lv_drop_reason r)
{
    static const char *const names[LV_DROP_REASON_COUNT] = {
        [LV_DROP_SAMPLED] = "sampled",
        [LV_DROP_RATE_LIMITED] = "rate_limited",
        [LV_DROP_DEPTH] = "depth",
        [LV_DROP_REDACT_FAILED] = "redact_failed",
        [LV_DROP_BUFFER] = "buffer",
        [LV_DROP_REJECTED] = "rejected",
        [LV_DROP_SPOOL_CORRUPT] = "spool_corrupt",
        [LV_DROP_SHUTDOWN] = "shutdown",
        [LV_DROP_DELETED_UNREAD] = "deleted_unread",
        [LV_DROP_TRUNCATED_UNREAD] = "truncated_unread",
        [LV_DROP_GZ_CORRUPT] = "gz_corrupt",
    };
    return (unsigned)r < LV_DROP_REASON_COUNT ? names[r] : "unknown";
}

/* Registration ------------------------------------------------------- */

static unsigned table_find(const char *names, size_t stride, unsigned n, const char *key)
{
    unsigned i = 0;
    while (i < n && strcmp(names + (size_t)i * stride, key) != 0)
        i++;
    return i;
}

/*
 * The index of `name` in a table of `max` entries, `stride` bytes apart, each
 * starting with its name; registers the name when it is new. Names are cut to
 * NAME_LEN - 1 bytes. The last entry is held back for "other", which every
 * name that arrives once the rest are taken shares (as does a rule that is
 * itself called "other", so the series is never rendered twice).
 */
static unsigned table_slot(char *names, size_t stride, unsigned *n, unsigned max, const char *name)
{
    char key[NAME_LEN];
    snprintf(key, sizeof key, "%s", name);
    unsigned i = table_find(names, stride, *n, key);
    if (i < *n)
        return i;
    if (*n >= max - 1) {
        i = table_find(names, stride, *n, OTHER);
        if (i < *n)
            return i;
        snprintf(key, sizeof key, "%s", OTHER);
    }
    memcpy(names + (size_t)*n * stride, key, sizeof key);
    return (*n)++;
}

uint64_t *lv_metrics_rule(const char *name)
{
    struct lv_metrics *m = &lv_metrics;
    unsigned i =
        table_slot(m->rules[0].name, sizeof m->rules[0], &m->nrules, LV_METRICS_MAX_RULES, name);
    return &m->rules[i].hits;
}

struct lv_output_counter *lv_metrics_output(const char *name)
{
    struct lv_metrics *m = &lv_metrics;
    unsigned i = table_slot(m->outputs[0].name, sizeof m->outputs[0], &m->noutputs,
                            LV_METRICS_MAX_OUTPUTS, name);
    return &m->outputs[i];
}

void lv_metrics_drop(enum lv_drop_reason reason, enum lv_level level)
{
    assert((unsigned)reason < LV_DROP_REASON_COUNT);
    if ((unsigned)level >= LV_LEVEL_COUNT)
        level = LV_LEVEL_UNKNOWN;
    lv_metrics.dropped[reason][level]++;
}

uint64_t lv_metrics_dropped_total(enum lv_drop_reason reason)
{
    if ((unsigned)reason >= LV_DROP_REASON_COUNT)
        return 0;
    uint64_t sum = 0;
    for (unsigned l = 0; l < LV_LEVEL_COUNT; l++)
        sum += lv_metrics.dropped[reason][l];
    return sum;
}

void lv_metrics_reset(void)
{
    memset(&lv_metrics, 0, sizeof lv_metrics);
}

/* Rendering ---------------------------------------------------------- */

/* Appends to `buf` until the first failure, which it keeps in `rc`, so the
 * render functions below need not check every call. */
struct writer {
    struct lv_buf *buf;
    int rc;
};

static void put(struct writer *w, const char *s, size_t n)
{
    if (w->rc == 0)
        w->rc = lv_buf_append(w->buf, s, n);
}

static void put_str(struct writer *w, const char *s)
{
    put(w, s, strlen(s));
}

/* A label value: backslash, double quote and newline are escaped. */
static void put_label_value(struct writer *w, const char *s)
{
    for (const char *run = s;; s++) {
        if (*s != '\\' && *s != '"' && *s != '\n' && *s != '\0')
            continue;
        put(w, run, (size_t)(s - run));
        if (*s == '\0')
            return;
        put_str(w, *s == '\n' ? "\\n" : *s == '"' ? "\\\"" : "\\\\");
        run = s + 1;
    }
}

/* HELP texts are the literals below: none holds a backslash or a newline. */
static void family(struct writer *w, const char *name, const char *type, const char *help)
{
    put_str(w, "# HELP ");
    put_str(w, name);
    put_str(w, " ");
    put_str(w, help);
    put_str(w, "\n# TYPE ");
    put_str(w, name);
    put_str(w, " ");
    put_str(w, type);
    put_str(w, "\n");
}

/* One sample; `labels` is NULL or a NULL-terminated list of name, value. */
static void sample(struct writer *w, const char *name, const char *const *labels, uint64_t v)
{
    put_str(w, name);
    for (size_t i = 0; labels && labels[i]; i += 2) {
        put_str(w, i == 0 ? "{" : ",");
        put_str(w, labels[i]);
        put_str(w, "=\"");
        put_label_value(w, labels[i + 1]);
        put_str(w, "\"");
    }
    if (labels && labels[0])
        put_str(w, "}");
    char num[24];
    int n = snprintf(num, sizeof num, " %" PRIu64 "\n", v);
    put(w, num, (size_t)n);
}

#define LABELS(...) ((const char *const[]){__VA_ARGS__, NULL})

static const struct {
    const char *name;
    const char *type;
    const char *help;
    size_t off;
} scalars[] = {
    {"logveil_input_records_total", "counter", "Application lines read, after framing.",
     offsetof(struct lv_metrics, input_records)},
    {"logveil_input_bytes_total", "counter", "Bytes read from the inputs.",
     offsetof(struct lv_metrics, input_bytes)},
    {"logveil_lines_truncated_total", "counter", "Lines longer than limits.max_line, truncated.",
     offsetof(struct lv_metrics, lines_truncated)},
    {"logveil_lines_not_json_total", "counter", "Lines that were not JSON, shipped as a message.",
     offsetof(struct lv_metrics, lines_not_json)},
    {"logveil_lines_joined_total", "counter",
     "Lines joined to the record before them (multiline stack traces).",
     offsetof(struct lv_metrics, lines_joined)},
    {"logveil_lines_invalid_utf8_total", "counter", "Lines holding invalid UTF-8.",
     offsetof(struct lv_metrics, lines_invalid_utf8)},
    {"logveil_records_fast_path_total", "counter", "Records validated and copied verbatim.",
     offsetof(struct lv_metrics, records_fast_path)},
    {"logveil_redactions_total", "counter", "Values redacted, all rules.",
     offsetof(struct lv_metrics, redactions)},
    {"logveil_records_redacted_total", "counter", "Records with at least one redaction.",
     offsetof(struct lv_metrics, records_redacted)},
    {"logveil_input_paused_total", "counter", "Times the input paused because the buffer was full.",
     offsetof(struct lv_metrics, input_paused_total)},
    {"logveil_buffer_bytes", "gauge", "Bytes held in the buffer.",
     offsetof(struct lv_metrics, buffer_bytes)},
    {"logveil_inotify_overflows_total", "counter", "inotify queue overflows; a rescan follows.",
     offsetof(struct lv_metrics, inotify_overflows)},
    {"logveil_file_truncations_total", "counter", "Tailed files truncated under the reader.",
     offsetof(struct lv_metrics, file_truncations)},
    {"logveil_files_read_compressed_total", "counter",
     "Checkpointed files gone from disk, resumed from their compressed rotation (.gz).",
     offsetof(struct lv_metrics, files_read_compressed)},
    {"logveil_files_open", "gauge", "Tailed files held open.",
     offsetof(struct lv_metrics, files_open)},
    {"logveil_checkpoint_lag_bytes", "gauge", "Bytes read from files but not yet acknowledged.",
     offsetof(struct lv_metrics, checkpoint_lag_bytes)},
    {"logveil_spool_bytes", "gauge", "Bytes in the disk spool waiting to be replayed.",
     offsetof(struct lv_metrics, spool_bytes)},
    {"logveil_spool_corrupt_batches_total", "counter",
     "Spooled batches skipped because they were damaged on disk.",
     offsetof(struct lv_metrics, spool_corrupt)},
    {"logveil_batches_total", "counter", "Batches sealed from the inputs.",
     offsetof(struct lv_metrics, batches)},
    {"logveil_config_generation", "gauge",
     "Configuration in force: 1 at start, one more per reload applied.",
     offsetof(struct lv_metrics, config_generation)},
    {"logveil_config_last_reload_success", "gauge",
     "1 when the last reload was applied (or none was asked), 0 when it was rejected.",
     offsetof(struct lv_metrics, config_last_reload_ok)},
    {"logveil_audit_last_seq", "gauge",
     "Seq of the last audit record chained (verify-audit --expect-last).",
     offsetof(struct lv_metrics, audit_last_seq)},
    {"logveil_audit_state_errors_total", "counter",
     "Writes of the audit chain's state file that failed.",
     offsetof(struct lv_metrics, audit_state_errors)},
    {"logveil_admin_connections_timed_out_total", "counter",
     "Admin connections closed because their request head came too slowly.",
     offsetof(struct lv_metrics, admin_timed_out)},
};

static const struct {
    const char *name;
    const char *help;
    size_t off;
} output_families[] = {
    {"logveil_output_records_total", "Records delivered, by output.",
     offsetof(struct lv_output_counter, records)},
    {"logveil_output_bytes_total", "Bytes delivered, by output.",
     offsetof(struct lv_output_counter, bytes)},
    {"logveil_output_errors_total", "Delivery errors, by output.",
     offsetof(struct lv_output_counter, errors)},
    {"logveil_output_labels_demoted_total",
     "Loki labels demoted to structured metadata by the cardinality guard, by output.",
     offsetof(struct lv_output_counter, labels_demoted)},
    {"logveil_output_queue_full_total",
     "Batches an output refused because its queue was full (backpressure), by output.",
     offsetof(struct lv_output_counter, queue_full)},
    {"logveil_output_values_refused_total",
     "Values from records refused as sink metadata (a Kafka topic outside topics), by output.",
     offsetof(struct lv_output_counter, values_refused)},
};

static uint64_t field(const void *base, size_t off)
{
    uint64_t v;
    memcpy(&v, (const char *)base + off, sizeof v);
    return v;
}

static void render_scalars(struct writer *w, const struct lv_metrics *m)
{
    for (size_t i = 0; i < LV_ARRAY_LEN(scalars); i++) {
        family(w, scalars[i].name, scalars[i].type, scalars[i].help);
        sample(w, scalars[i].name, NULL, field(m, scalars[i].off));
    }
}

static void render_levels(struct writer *w, const struct lv_metrics *m)
{
    const char *kept = "logveil_records_kept_total";
    family(w, kept, "counter", "Records kept by the filters, by level.");
    for (unsigned l = 0; l < LV_LEVEL_COUNT; l++)
        sample(w, kept, LABELS("level", level_labels[l]), m->records_kept[l]);

    const char *dropped = "logveil_records_dropped_total";
    family(w, dropped, "counter", "Records not delivered, by reason and level.");
    for (unsigned r = 0; r < LV_DROP_REASON_COUNT; r++)
        for (unsigned l = 0; l < LV_LEVEL_COUNT; l++)
            sample(w, dropped, LABELS("reason", lv_drop_reason_name(r), "level", level_labels[l]),
                   m->dropped[r][l]);
}

void lv_metrics_latency(struct lv_output_counter *c, double seconds)
{
    static const double bounds[] = LV_LATENCY_BOUNDS;
    size_t i = 0;
    while (i < LV_ARRAY_LEN(bounds) && seconds > bounds[i])
        i++;
    c->latency_buckets[i]++;
    c->latency_count++;
    c->latency_sum += seconds;
}

static void render_build(struct writer *w, const struct lv_metrics *m)
{
    family(w, "logveil_build_info", "gauge", "The running logveil's version.");
    sample(w, "logveil_build_info", LABELS("version", LOGVEIL_VERSION), 1);
    const char *reloads = "logveil_config_reloads_total";
    family(w, reloads, "counter", "Configuration reloads asked, by result.");
    sample(w, reloads, LABELS("result", "applied"), m->config_reloads_applied);
    sample(w, reloads, LABELS("result", "rejected"), m->config_reloads_rejected);
}

/* Only the outputs that sent requests (the HTTP ones) have a histogram. */
static void render_latency(struct writer *w, const struct lv_metrics *m)
{
    static const double bounds[] = LV_LATENCY_BOUNDS;
    const char *name = "logveil_output_request_duration_seconds";
    family(w, name, "histogram", "Output request latency (HTTP outputs), by output.");
    for (unsigned i = 0; i < m->noutputs; i++) {
        const struct lv_output_counter *c = &m->outputs[i];
        if (!c->latency_count)
            continue;
        uint64_t cum = 0;
        char le[32], line[160];
        for (size_t b = 0; b < LV_LATENCY_NBUCKETS; b++) {
            cum += c->latency_buckets[b];
            if (b < LV_ARRAY_LEN(bounds))
                snprintf(le, sizeof le, "%g", bounds[b]);
            else
                snprintf(le, sizeof le, "+Inf");
            sample(w, "logveil_output_request_duration_seconds_bucket",
                   LABELS("output", c->name, "le", le), cum);
        }
        put_str(w, "logveil_output_request_duration_seconds_sum{output=\"");
        put_label_value(w, c->name);
        int n = snprintf(line, sizeof line, "\"} %.6f\n", c->latency_sum);
        put(w, line, (size_t)n);
        sample(w, "logveil_output_request_duration_seconds_count", LABELS("output", c->name),
               c->latency_count);
    }
}

const char *lv_file_skip_name(enum lv_file_skip r)
{
    static const char *const names[LV_SKIP_COUNT] = {"outside_roots", "secret_file",
                                                     "not_regular", "symlink_loop"};
    return (unsigned)r < LV_SKIP_COUNT ? names[r] : "unknown";
}

static void render_skips(struct writer *w, const struct lv_metrics *m)
{
    const char *skipped = "logveil_files_skipped_total";
    family(w, skipped, "counter",
           "Files the tail globs named that were refused, never read, by reason.");
    for (unsigned r = 0; r < LV_SKIP_COUNT; r++)
        sample(w, skipped, LABELS("reason", lv_file_skip_name(r)), m->files_skipped[r]);
}

static void render_named(struct writer *w, const struct lv_metrics *m)
{
    const char *rules = "logveil_redactions_by_rule_total";
    family(w, rules, "counter", "Values redacted, by rule.");
    for (unsigned i = 0; i < m->nrules; i++)
        sample(w, rules, LABELS("rule", m->rules[i].name), m->rules[i].hits);

    for (size_t f = 0; f < LV_ARRAY_LEN(output_families); f++) {
        family(w, output_families[f].name, "counter", output_families[f].help);
        for (unsigned i = 0; i < m->noutputs; i++)
            sample(w, output_families[f].name, LABELS("output", m->outputs[i].name),
                   field(&m->outputs[i], output_families[f].off));
    }
}

/* The redaction policy ------------------------------------------------ */

static struct {
    char digest[16];
    char *rules;
} policy;

void lv_metrics_set_policy(const char *digest, const char *rules, size_t len)
{
    snprintf(policy.digest, sizeof policy.digest, "%s", digest);
    free(policy.rules);
    policy.rules = lv_xstrndup(rules, len);
}

/* One sample per rule line: "kind:name TAB match TAB action TAB ...". */
static void render_policy(struct writer *w)
{
    if (!policy.rules)
        return;
    const char *info = "logveil_redaction_policy_info", *rule = "logveil_redaction_rule_info";
    family(w, info, "gauge", "The redaction policy in force: digest of its rules and their order.");
    sample(w, info, LABELS("policy", policy.digest), 1);
    family(w, rule, "gauge", "The rules of the redaction policy, in the order they apply.");
    unsigned order = 0;
    for (const char *l = policy.rules; *l;) {
        const char *end = strchr(l, '\n');
        size_t len = end ? (size_t)(end - l) : strlen(l);
        char line[512], ord[16];
        snprintf(line, sizeof line, "%.*s", (int)len, l);
        char *match = strchr(line, '\t'), *action = match ? strchr(match + 1, '\t') : NULL;
        char *rest = action ? strchr(action + 1, '\t') : NULL;
        if (match && action && rest) {
            *match++ = *action++ = *rest = '\0';
            snprintf(ord, sizeof ord, "%u", order++);
            sample(w, rule, LABELS("policy", policy.digest, "order", ord, "rule", line, "match",
                                   match, "action", action),
                   1);
        }
        l += len + (end != NULL);
    }
}

/* Per-file gauges ---------------------------------------------------- */

static struct {
    lv_file_gauges_fn *fn;
    void *arg;
} file_providers[LV_METRICS_MAX_FILE_PROVIDERS];

void lv_metrics_file_gauges(lv_file_gauges_fn *fn, void *arg)
{
    size_t free_slot = LV_ARRAY_LEN(file_providers);
    for (size_t i = 0; i < LV_ARRAY_LEN(file_providers); i++) {
        if (file_providers[i].arg == arg && file_providers[i].fn) {
            file_providers[i].fn = fn;
            return;
        }
        if (!file_providers[i].fn && free_slot == LV_ARRAY_LEN(file_providers))
            free_slot = i;
    }
    if (fn && free_slot < LV_ARRAY_LEN(file_providers)) {
        file_providers[free_slot].fn = fn;
        file_providers[free_slot].arg = arg;
    }
}

static void render_files(struct writer *w)
{
    struct lv_file_gauge *g = lv_xmalloc(LV_METRICS_MAX_FILES * sizeof *g);
    size_t n = 0;
    for (size_t i = 0; i < LV_ARRAY_LEN(file_providers); i++)
        if (file_providers[i].fn)
            n += file_providers[i].fn(file_providers[i].arg, g + n, LV_METRICS_MAX_FILES - n);
    const char *read = "logveil_file_read_offset_bytes";
    family(w, read, "gauge", "Bytes read, by open file.");
    for (size_t i = 0; i < n; i++)
        sample(w, read, LABELS("file", g[i].file, "input", g[i].input), g[i].read_offset);
    const char *acked = "logveil_file_acked_offset_bytes";
    family(w, acked, "gauge", "Checkpointed (acknowledged) offset, by open file.");
    for (size_t i = 0; i < n; i++)
        sample(w, acked, LABELS("file", g[i].file, "input", g[i].input), g[i].acked_offset);
    free(g);
}

int lv_metrics_render(struct lv_buf *out)
{
    struct writer w = {.buf = out, .rc = 0};
    size_t start = out->len;
    render_scalars(&w, &lv_metrics);
    render_levels(&w, &lv_metrics);
    render_skips(&w, &lv_metrics);
    render_named(&w, &lv_metrics);
    render_latency(&w, &lv_metrics);
    render_build(&w, &lv_metrics);
    render_policy(&w);
    render_files(&w);
    /* Half an exposition would read as counters that went back to zero. */
    if (w.rc < 0)
        out->len = start;
    return w.rc;
}
