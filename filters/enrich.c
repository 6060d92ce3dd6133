/*
 * Enrichment. The Kubernetes fields come from the downward API: environment
 * variables POD_NAME, POD_NAMESPACE, POD_UID, POD_IP, NODE_NAME and
 * CONTAINER_NAME, and optionally a labels file in the downward API's
 * `key="value"` format. They never change while the process runs, so they
 * are rendered to JSON once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "enrich.h"
#include "json_write.h"
#include "logveil/log.h"

struct lv_enricher {
    struct lv_buf env_frag;  /* ,"environment":"production" */
    struct lv_buf k8s_frag;  /* ,"kubernetes":{...} */
    char *ts_field;          /* "@timestamp" as a JSON key with colon */
    size_t ts_field_len;
    char *stream_key;
    size_t stream_key_len;
    double cached_rate;      /* the sample_rate whose text is in rate_text */
    char rate_text[40];
    size_t rate_len;
    bool ecs;
    int64_t cached_sec;      /* the second whose text is in cached_text */
    char cached_text[32];
};

/* ---- time ------------------------------------------------------------------ */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* Parses ".123456789" at s: at least one digit, any number of them (digits
 * past nanoseconds are dropped). Returns characters used, 0 when there is
 * no digit; the fraction in ns. */
static size_t parse_fraction(const char *s, size_t len, int64_t *frac)
{
    size_t i = 1;
    int64_t scale = 100000000;
    *frac = 0;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        *frac += (s[i] - '0') * scale;
        scale /= 10;
    }
    return i > 1 ? i : 0;
}

static bool valid_date(int y, int m, int d)
{
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m >= 1 && m <= 12 && d >= 1 && d <= mdays[m - 1] && (m != 2 || d <= 28 || leap);
}

static int parse_offset(const char *s, size_t len, int64_t *secs, bool *utc)
{
    int hh, mm;
    *utc = false;
    if (len == 1 && (s[0] == 'Z' || s[0] == 'z')) {
        *secs = 0;
        *utc = s[0] == 'Z';
        return 0;
    }
    if (len != 6 || (s[0] != '+' && s[0] != '-') || s[3] != ':' || !digits(s + 1, 2, &hh) ||
        !digits(s + 4, 2, &mm) || hh > 23 || mm > 59)
        return -EINVAL;
    *secs = (hh * 3600 + mm * 60) * (s[0] == '-' ? -1 : 1);
    return 0;
}

int lv_time_parse(const char *s, size_t len, int64_t *ns, bool *utc)
{
    int y, mo, d, h, mi, se;
    if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        s[13] != ':' || s[16] != ':' || !digits(s, 4, &y) || !digits(s + 5, 2, &mo) ||
        !digits(s + 8, 2, &d) || !digits(s + 11, 2, &h) || !digits(s + 14, 2, &mi) ||
        !digits(s + 17, 2, &se))
        return -EINVAL;
    if (!valid_date(y, mo, d) || h > 23 || mi > 59 || se > 60)
        return -EINVAL;
    size_t i = 19;
    int64_t frac = 0, off;
    if (s[i] == '.' || s[i] == ',') {
        size_t n = parse_fraction(s + i, len - i, &frac);
        if (!n)
            return -EINVAL;
        i += n;
    }
    bool z;
    if (parse_offset(s + i, len - i, &off, &z) < 0)
        return -EINVAL;
    if (y < 1678 || y > 2261)
        return -EINVAL; /* nanoseconds since 1970 would not fit in 64 bits */
    int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + se - off;
    *ns = secs * 1000000000 + frac;
    if (utc)
        *utc = z && s[10] == 'T';
    return 0;
}

/* Integer arithmetic throughout: a double has 53 bits, too few for an epoch
 * in nanoseconds (~61 bits), and strtod() would also take "nan", "inf", hex
 * and exponents. Digits past a billionth of the unit are dropped. */
int lv_time_parse_epoch(const char *s, size_t len, int64_t *ns)
{
    uint64_t whole = 0, frac = 0; /* frac: billionths of the unit */
    size_t i = 0;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        if (whole > (UINT64_MAX - 9) / 10)
            return -EINVAL;
        whole = whole * 10 + (uint64_t)(s[i] - '0');
    }
    if (i == 0)
        return -EINVAL;
    if (i < len) {
        if (s[i] != '.' || i + 1 == len)
            return -EINVAL;
        uint64_t scale = 100000000;
        for (i++; i < len; i++) {
            if (s[i] < '0' || s[i] > '9')
                return -EINVAL;
            frac += (uint64_t)(s[i] - '0') * scale;
            scale /= 10;
        }
    }
    /* Nanoseconds per unit, told from the magnitude. */
    uint64_t unit = whole < 100000000000ULL      ? 1000000000 /* seconds */
                    : whole < 100000000000000ULL ? 1000000    /* milliseconds */
                    : whole < 100000000000000000ULL ? 1000    /* microseconds */
                                                    : 1;
    if ((whole == 0 && frac == 0) || whole > (uint64_t)INT64_MAX / unit)
        return -EINVAL;
    uint64_t v = whole * unit + frac * unit / 1000000000; /* frac * unit < 1e18 */
    if (v > (uint64_t)INT64_MAX)
        return -EINVAL;
    *ns = (int64_t)v;
    return 0;
}

size_t lv_time_format(int64_t ns, char *buf)
{
    int64_t sec = ns / 1000000000, frac = ns % 1000000000;
    if (frac < 0) {
        frac += 1000000000;
        sec--;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(buf, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(buf + n, 32 - n, ".%09dZ", (int)frac);
    return n;
}

/* ---- constant fragments ---------------------------------------------------- */

static void put_field(struct lv_buf *b, const char *key, const char *value, bool *first)
{
    if (!*first)
        lv_buf_putc(b, ',');
    *first = false;
    lv_json_string(b, key, strlen(key), NULL);
    lv_buf_putc(b, ':');
    lv_json_string(b, value, strlen(value), NULL);
}

/* {"name":"$VAR"} for the variables that are set; nothing when none is. */
static void put_object(struct lv_buf *b, const char *key, const char *const *names,
                       const char *const *vars, size_t n, bool *first)
{
    bool inner_first = true;
    size_t mark = b->len;
    if (!*first)
        lv_buf_putc(b, ',');
    lv_json_string(b, key, strlen(key), NULL);
    lv_buf_puts(b, ":{");
    for (size_t i = 0; i < n; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v)
            put_field(b, names[i], v, &inner_first);
    }
    if (inner_first) {
        b->len = mark; /* nothing was set */
        return;
    }
    lv_buf_putc(b, '}');
    *first = false;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads `n` hex digits at s; -1 when they are not all hex. */
static long hex_n(const char *s, int n)
{
    long v = 0;
    for (int i = 0; i < n; i++) {
        int h = hex_value(s[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

/* One Go escape at s (s[0] is the backslash, `avail` bytes readable):
 * writes its bytes at d and returns how many input bytes it used, or 0 when
 * it is not an escape this reads. */
static size_t go_escape(const char *s, size_t avail, char *d, size_t *written)
{
    static const char from[] = "abfnrtv\\\"'", to[] = "\a\b\f\n\r\t\v\\\"'";
    if (avail < 2)
        return 0;
    const char *one = s[1] ? strchr(from, s[1]) : NULL;
    if (one) {
        *d = to[one - from];
        *written = 1;
        return 2;
    }
    int width = s[1] == 'x' ? 2 : s[1] == 'u' ? 4 : s[1] == 'U' ? 8 : 0;
    long cp = width && avail >= 2 + (size_t)width ? hex_n(s + 2, width) : -1;
    if (cp < 0 || cp > 0x10FFFF)
        return 0;
    if (width == 2) {
        *d = (char)cp; /* \xHH is a byte, not a code point */
        *written = 1;
    } else {
        *written = lv_utf8_put((unsigned long)cp, d);
    }
    return 2 + (size_t)width;
}

/* Undoes Go's strconv.Quote in place (the kubelet writes label values with
 * %q). An escape it does not know is kept as written. Returns the new
 * length; the text only ever shrinks. */
static size_t go_unquote(char *v, size_t len)
{
    size_t d = 0, i = 0;
    while (i < len) {
        size_t written = 0, used = v[i] == '\\' ? go_escape(v + i, len - i, v + d, &written) : 0;
        if (used) {
            i += used;
            d += written;
        } else {
            v[d++] = v[i++];
        }
    }
    return d;
}

/* Downward API labels file: one `key="value"` a line, value Go-quoted. */
static void put_labels(struct lv_buf *b, const char *path, bool *first)
{
    char *text;
    size_t len;
    int rc = lv_read_file(path, 1 << 20, &text, &len);
    if (rc < 0) {
        lv_warn("enrich: cannot read labels file %s: %s", path, strerror(-rc));
        return;
    }
    bool inner_first = true;
    if (!*first)
        lv_buf_putc(b, ',');
    lv_buf_puts(b, "\"labels\":{");
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        char *v = eq + 1;
        size_t vl = strlen(v);
        if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"')
            vl = go_unquote(++v, vl - 2);
        if (!inner_first)
            lv_buf_putc(b, ',');
        inner_first = false;
        lv_json_string(b, line, (size_t)(eq - line), NULL);
        lv_buf_putc(b, ':');
        lv_json_string(b, v, vl, NULL);
    }
    lv_buf_putc(b, '}');
    *first = false;
    free(text);
}

static void render_kubernetes(struct lv_enricher *e, const struct lv_enrich_conf *c)
{
    static const char *const pod_names[] = {"name", "uid", "ip"};
    static const char *const pod_vars[] = {"POD_NAME", "POD_UID", "POD_IP"};
    static const char *const node_names[] = {"name"};
    static const char *const node_vars[] = {"NODE_NAME"};
    static const char *const cont_vars[] = {"CONTAINER_NAME"};
    struct lv_buf *b = &e->k8s_frag;
    bool first = true;
    lv_buf_puts(b, ",\"kubernetes\":{");
    const char *ns = getenv("POD_NAMESPACE");
    if (ns && *ns)
        put_field(b, "namespace", ns, &first);
    put_object(b, "pod", pod_names, pod_vars, 3, &first);
    put_object(b, "node", node_names, node_vars, 1, &first);
    put_object(b, "container", node_names, cont_vars, 1, &first);
    if (c->labels_file && *c->labels_file)
        put_labels(b, c->labels_file, &first);
    if (first)
        b->len = 0; /* not in Kubernetes: add nothing */
    else
        lv_buf_putc(b, '}');
}

static char *json_key(const char *name)
{
    struct lv_buf b;
    lv_buf_init(&b, 32, 0);
    lv_json_string(&b, name, strlen(name), NULL);
    lv_buf_putc(&b, ':');
    lv_buf_putc(&b, '\0');
    return b.data;
}

struct lv_enricher *lv_enrich_new(const struct lv_conf *conf)
{
    const struct lv_enrich_conf *c = &conf->enrich;
    struct lv_enricher *e = lv_xcalloc(1, sizeof *e);
    lv_buf_init(&e->env_frag, 64, 0);
    lv_buf_init(&e->k8s_frag, 256, 0);
    if (c->environment_field && *c->environment_field && conf->environment) {
        lv_buf_putc(&e->env_frag, ',');
        lv_json_string(&e->env_frag, c->environment_field, strlen(c->environment_field), NULL);
        lv_buf_putc(&e->env_frag, ':');
        lv_json_string(&e->env_frag, conf->environment, strlen(conf->environment), NULL);
    }
    if (c->kubernetes)
        render_kubernetes(e, c);
    e->ts_field = json_key(c->timestamp_field ? c->timestamp_field : "@timestamp");
    e->stream_key = c->stream_field && *c->stream_field ? json_key(c->stream_field) : NULL;
    e->ts_field_len = strlen(e->ts_field);
    e->stream_key_len = e->stream_key ? strlen(e->stream_key) : 0;
    e->cached_rate = -1;
    e->ecs = c->ecs;
    e->cached_sec = INT64_MIN;
    return e;
}

void lv_enrich_free(struct lv_enricher *e)
{
    if (!e)
        return;
    lv_buf_free(&e->env_frag);
    lv_buf_free(&e->k8s_frag);
    free(e->ts_field);
    free(e->stream_key);
    free(e);
}

const char *lv_enrich_timestamp_field(const struct lv_enricher *e)
{
    return e->ts_field;
}

/* ---- per record -------------------------------------------------------------- */

/* The date-time text of a second changes once a second: format it once. */
static int put_time(struct lv_enricher *e, int64_t ns, struct lv_buf *out)
{
    int64_t sec = ns / 1000000000, frac = ns % 1000000000;
    if (frac < 0) {
        frac += 1000000000;
        sec--;
    }
    if (sec != e->cached_sec) {
        lv_time_format(sec * 1000000000, e->cached_text);
        e->cached_sec = sec;
    }
    char tail[16];
    int n = snprintf(tail, sizeof tail, ".%09dZ\"", (int)frac);
    if (lv_buf_putc(out, '"') < 0 || lv_buf_append(out, e->cached_text, 19) < 0)
        return -ENOBUFS;
    return lv_buf_append(out, tail, (size_t)n);
}

static int sep(struct lv_buf *out, bool *first)
{
    if (*first) {
        *first = false;
        return 0;
    }
    return lv_buf_putc(out, ',');
}

static int put_frag(struct lv_buf *out, const struct lv_buf *frag, bool *first)
{
    if (!frag->len)
        return 0;
    /* Fragments start with ','; drop it when they come first. */
    size_t skip = *first ? 1 : 0;
    *first = false;
    return lv_buf_append(out, frag->data + skip, frag->len - skip);
}

static const char *const lower_level[LV_LEVEL_COUNT] = {"unknown", "trace", "debug", "info",
                                                       "warn",    "error", "fatal"};

/* ---- merging log.level into the record's own log object ----------------------------
 * The record text is valid JSON (written by the parse pass), so these
 * skippers need not validate; they only stop at the end of the text. */

static size_t skip_ws(const char *s, size_t i, size_t n)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* s[i] is '"': the index after the closing quote. */
static size_t skip_string(const char *s, size_t i, size_t n)
{
    for (i++; i < n && s[i] != '"'; i++)
        if (s[i] == '\\')
            i++;
    return i < n ? i + 1 : n;
}

static size_t skip_value(const char *s, size_t i, size_t n)
{
    int depth = 0;
    do {
        if (s[i] == '"') {
            i = skip_string(s, i, n);
            continue;
        }
        if (s[i] == '{' || s[i] == '[')
            depth++;
        else if (s[i] == '}' || s[i] == ']')
            depth--;
        else if (depth == 0 && (s[i] == ',' || s[i] == ':'))
            return i; /* the end of a scalar */
        i++;
    } while (i < n && depth > 0);
    if (depth == 0)
        while (i < n && s[i] != ',' && s[i] != '}' && s[i] != ']')
            i++; /* the rest of a scalar */
    return i;
}

static bool key_is(const char *s, size_t from, size_t to, const char *name)
{
    size_t len = strlen(name);
    return to - from == len + 2 && memcmp(s + from + 1, name, len) == 0;
}

/* One member of an object: its key [k0, k1) with the quotes, its value [v0, v1). */
struct member {
    size_t k0, k1, v0, v1;
};

/* The member after index i (just past '{' or past a value) of an object that
 * ends before n; SIZE_MAX when there is none. Returns the end of its value. */
static size_t next_member(const char *s, size_t i, size_t n, struct member *m)
{
    i = skip_ws(s, i, n);
    if (i < n && s[i] == ',')
        i = skip_ws(s, i + 1, n);
    if (i >= n || s[i] != '"')
        return SIZE_MAX; /* '}' or the end: no more members */
    m->k0 = i;
    m->k1 = skip_string(s, i, n);
    i = skip_ws(s, m->k1, n);
    i = skip_ws(s, i < n && s[i] == ':' ? i + 1 : i, n);
    m->v0 = i;
    m->v1 = i < n ? skip_value(s, i, n) : n;
    return m->v1;
}

/* The record has a top-level "log" object without "level" (and no dotted
 * "log.level"): "level" goes in as its last member, so ECS readers find
 * log.level in the one log object. The record text starts at `body`. */
static int merge_log_level(const struct lv_enrich_in *in, struct lv_buf *out)
{
    const char *s = out->data;
    size_t n = out->len, i = in->body + 1, log_end = 0;
    bool log_members = false;
    struct member m;
    if (in->body >= n || s[in->body] != '{')
        return 0;
    while ((i = next_member(s, i, n, &m)) != SIZE_MAX) {
        if (key_is(s, m.k0, m.k1, "log.level"))
            return 0;
        if (!key_is(s, m.k0, m.k1, "log") || s[m.v0] != '{')
            continue;
        struct member in_log;
        for (size_t j = m.v0 + 1; (j = next_member(s, j, m.v1, &in_log)) != SIZE_MAX;) {
            if (key_is(s, in_log.k0, in_log.k1, "level"))
                return 0;
            log_members = true;
        }
        log_end = m.v1 - 1; /* the log object's '}' */
    }
    if (!log_end || s[log_end] != '}')
        return 0;
    char add[40];
    int len = snprintf(add, sizeof add, "%s\"level\":\"%s\"", log_members ? "," : "",
                       lower_level[in->level]);
    if (lv_buf_reserve(out, (size_t)len) < 0)
        return -ENOBUFS;
    memmove(out->data + log_end + len, out->data + log_end, out->len - log_end);
    memcpy(out->data + log_end, add, (size_t)len);
    out->len += (size_t)len;
    return 0;
}

static int put_ecs(const struct lv_enrich_in *in, bool *first, struct lv_buf *out)
{
    const char *const *lower = lower_level;
    int rc = 0;
    if ((in->has & LV_HAS_LOG) && in->level != LV_LEVEL_UNKNOWN)
        rc |= merge_log_level(in, out);
    if (!(in->has & LV_HAS_LOG) && in->level != LV_LEVEL_UNKNOWN) {
        rc |= sep(out, first);
        rc |= lv_buf_puts(out, "\"log\":{\"level\":\"");
        rc |= lv_buf_append(out, lower[in->level], strlen(lower[in->level]));
        rc |= lv_buf_puts(out, "\"}");
    }
    if (!(in->has & LV_HAS_TRACE) && in->trace_id && in->trace_len) {
        rc |= sep(out, first);
        rc |= lv_buf_puts(out, "\"trace\":{\"id\":");
        rc |= lv_json_string(out, in->trace_id, in->trace_len, NULL);
        rc |= lv_buf_putc(out, '}');
    }
    return rc ? -ENOBUFS : 0;
}

int lv_enrich_append(struct lv_enricher *e, const struct lv_enrich_in *in, bool first,
                     struct lv_buf *out)
{
    int rc = 0;
    if (!(in->has & LV_HAS_TIMESTAMP)) {
        rc |= sep(out, &first);
        rc |= lv_buf_append(out, e->ts_field, e->ts_field_len);
        rc |= put_time(e, in->time_ns, out);
    }
    if (e->stream_key && !(in->has & LV_HAS_STREAM)) {
        rc |= sep(out, &first);
        rc |= lv_buf_append(out, e->stream_key, e->stream_key_len);
        rc |= in->stream == LV_STREAM_STDERR ? lv_buf_puts(out, "\"stderr\"")
                                             : lv_buf_puts(out, "\"stdout\"");
    }
    if (!(in->has & LV_HAS_ENVIRONMENT))
        rc |= put_frag(out, &e->env_frag, &first);
    if (!(in->has & LV_HAS_KUBERNETES))
        rc |= put_frag(out, &e->k8s_frag, &first);
    if (e->ecs)
        rc |= put_ecs(in, &first, out);
    if (!(in->has & LV_HAS_SAMPLE_RATE)) {
        if (in->sample_rate != e->cached_rate) {
            e->cached_rate = in->sample_rate;
            e->rate_len = (size_t)snprintf(e->rate_text, sizeof e->rate_text,
                                           "\"sample_rate\":%.6g", in->sample_rate);
        }
        rc |= sep(out, &first);
        rc |= lv_buf_append(out, e->rate_text, e->rate_len);
    }
    if (in->redactions > 0 && !(in->has & LV_HAS_REDACTED)) {
        char num[32];
        int n = snprintf(num, sizeof num, "\"redacted\":%d", in->redactions);
        rc |= sep(out, &first);
        rc |= lv_buf_append(out, num, (size_t)n);
    }
    if (in->truncated) {
        rc |= sep(out, &first);
        rc |= lv_buf_puts(out, "\"truncated\":true");
    }
    return rc ? -ENOBUFS : 0;
}
