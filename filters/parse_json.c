/*
 * The JSON pass. yajl calls back for every token; a small stack (bounded by
 * the depth limit) records, for each open container, whether it is a map
 * and how many members were written, so commas go in the right places when
 * members are dropped. A redacted container is skipped as a whole: its
 * tokens are still parsed (the line must be valid) but nothing is written.
 *
 * Fields are found by their dotted path from the root ("log.level" matches
 * both {"log":{"level":..}} and {"log.level":..}); the path is kept in a
 * fixed buffer, and paths longer than it are simply not matched.
 */
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <yajl/yajl_parse.h>

#include "arena.h"
#include "enrich.h"
#include "json_text.h"
#include "json_write.h"
#include "level.h"
#include "parse_json.h"
#include "sample.h"

enum want_kind { W_LEVEL, W_KEY, W_KEEP, W_TIME, W_TSFIELD };

struct want {
    char *path;
    size_t len;
    uint64_t head;  /* the path's first eight bytes, zero-padded */
    uint64_t fhead; /* the same, folded (fold: matched case-insensitively) */
    bool fold;
    enum want_kind kind;
    size_t idx; /* W_LEVEL: enum lv_level_kind */
};

struct frame {
    bool is_map;
    bool drop_comma; /* PATCH: all members so far were dropped, and so
                        goes the comma before the next one */
    size_t count;    /* members written so far */
    size_t path_len; /* path length at this container's start */
};

#define PATH_MAX_LEN 256
/* Sets bit 5 of every byte: upper-case ASCII letters become lower-case. */
#define FOLD 0x2020202020202020ull
#define MAX_WANTS 32

struct lv_json {
    struct lv_redactor *redactor;
    struct lv_arena arena;
    yajl_alloc_funcs funcs;
    int max_depth;
    struct frame *stack; /* max_depth + 1 frames */
    struct want wants[MAX_WANTS];
    size_t nwants;
    /* Bit c & 63 of want_first[n]: some wanted path of length n (< 64)
     * starts with the byte c (either case, for those matched without). */
    uint64_t want_first[64];
    uint64_t want_top; /* bit c & 63: some wanted path starts with c */
    uint8_t want_from[65]; /* wants of length n: want_from[n] .. want_from[n+1] */
    size_t want_max;       /* the longest wanted path that can match (< 64) */
    const struct lv_keep_rule *keep;
    struct { const char *name; size_t len; unsigned flag; } tops[8];
    uint8_t top_first[256]; /* bit i: tops[i] starts with this byte */
    size_t keep_len[MAX_WANTS];
    size_t ntops;
    /* per run */
    enum lv_json_mode mode;
    const struct lv_scan *scan;
    struct lv_buf *out;
    struct lv_json_result *res;
    lv_json_early_fn *early;
    void *early_arg;
    enum lv_json_status status;
    int depth;
    int skip;          /* > 0: inside a redacted container */
    int pending_rule;  /* key rule for the next value, or -1 */
    bool root_seen;
    yajl_handle h;
    size_t root_end;   /* offset just past the root object */
    bool took_key; /* the current scalar is the sampling key */
    struct lv_buf fixed; /* REDACT: the line with its lone surrogates repaired */
    const char *line;    /* PATCH: the line, which is copied in runs */
    size_t line_len;
    size_t copied;       /* PATCH: where the next run starts */
    size_t vstart, vend; /* PATCH: the current scalar's place in the line */
    uint32_t next_hit;   /* PATCH: the first scan hit not before the current token */
    bool path_ok;
    size_t path_len;
    char path[PATH_MAX_LEN];
};

static void add_want(struct lv_json *j, const char *path, enum want_kind kind, size_t idx)
{
    if (!path || !*path || j->nwants == MAX_WANTS)
        return;
    size_t len = strlen(path);
    j->wants[j->nwants++] = (struct want){
        .path = lv_xstrdup(path), .len = len, .fold = kind == W_LEVEL, .kind = kind, .idx = idx};
    for (int k = 0; k < 2; k++) { /* the byte, then its other case */
        unsigned char c = (unsigned char)path[0];
        if (k && ((c | 0x20) < 'a' || (c | 0x20) > 'z' || kind != W_LEVEL))
            break;
        c ^= (unsigned char)(k << 5);
        if (len < 64)
            j->want_first[len] |= 1ull << (c & 63);
        j->want_top |= 1ull << (c & 63);
    }
}

/* The first eight bytes of `s` (which has room for them), zero-padded
 * after `len`. */
static uint64_t head_of(const char *s, size_t len)
{
    uint64_t h;
    memcpy(&h, s, sizeof h);
    return len >= 8 ? h : h & ((1ull << (8 * len)) - 1);
}

/* Orders the wants by length, keeping their order within one length (the
 * time field before the timestamp field), and indexes them by length. */
static void index_wants(struct lv_json *j)
{
    for (size_t i = 1; i < j->nwants; i++) {
        struct want w = j->wants[i];
        size_t k = i;
        for (; k > 0 && j->wants[k - 1].len > w.len; k--)
            j->wants[k] = j->wants[k - 1];
        j->wants[k] = w;
    }
    size_t i = 0;
    for (size_t len = 0; len <= 64; len++) {
        while (i < j->nwants && j->wants[i].len < len)
            i++;
        j->want_from[len] = (uint8_t)i;
    }
    j->want_max = 0;
    for (i = 0; i < j->nwants; i++) {
        if (j->wants[i].len < 64 && j->wants[i].len > j->want_max)
            j->want_max = j->wants[i].len;
        char pad[8] = {0};
        memcpy(pad, j->wants[i].path, j->wants[i].len < 8 ? j->wants[i].len : 8);
        j->wants[i].head = head_of(pad, j->wants[i].len);
        j->wants[i].fhead = j->wants[i].head | FOLD;
    }
}

static void add_top(struct lv_json *j, const char *name, unsigned flag)
{
    if (name && *name && j->ntops < LV_ARRAY_LEN(j->tops)) {
        j->tops[j->ntops].name = name;
        j->tops[j->ntops].len = strlen(name);
        j->tops[j->ntops].flag = flag;
        j->top_first[(unsigned char)name[0]] |= (uint8_t)(1u << j->ntops++);
    }
}

struct lv_json *lv_json_new(const struct lv_conf *conf, struct lv_redactor *redactor)
{
    struct lv_json *j = lv_xcalloc(1, sizeof *j);
    j->redactor = redactor;
    j->max_depth = conf->limits.max_depth > 0 ? conf->limits.max_depth : 64;
    j->stack = lv_xcalloc((size_t)j->max_depth + 2, sizeof *j->stack);
    lv_arena_init(&j->arena, 64 * 1024);
    lv_arena_yajl_funcs(&j->arena, &j->funcs);
    lv_buf_init(&j->fixed, 0, (conf->limits.max_line ? conf->limits.max_line : 1 << 20) + 4096);
    const struct lv_sample_conf *s = &conf->sample;
    for (size_t i = 0; i < s->nlevel_fields; i++) {
        const char *f = s->level_fields[i];
        add_want(j, f, W_LEVEL, f ? lv_level_kind_of(f, strlen(f)) : 0);
    }
    add_want(j, s->key, W_KEY, 0);
    j->keep = s->keep;
    for (size_t i = 0; i < s->nkeep && i < MAX_WANTS; i++) {
        add_want(j, s->keep[i].field, W_KEEP, i);
        j->keep_len[i] = strlen(s->keep[i].equals);
    }
    const struct lv_enrich_conf *e = &conf->enrich;
    for (size_t i = 0; i < e->ntime_fields; i++)
        add_want(j, e->time_fields[i], W_TIME, i);
    add_want(j, e->timestamp_field, W_TSFIELD, 0);
    add_top(j, e->stream_field, LV_HAS_STREAM);
    add_top(j, e->environment_field, LV_HAS_ENVIRONMENT);
    add_top(j, "kubernetes", LV_HAS_KUBERNETES);
    add_top(j, "log", LV_HAS_LOG);
    add_top(j, "trace", LV_HAS_TRACE);
    add_top(j, "sample_rate", LV_HAS_SAMPLE_RATE);
    add_top(j, "redacted", LV_HAS_REDACTED);
    index_wants(j);
    return j;
}

void lv_json_free(struct lv_json *j)
{
    if (!j)
        return;
    for (size_t i = 0; i < j->nwants; i++)
        free(j->wants[i].path);
    lv_arena_free(&j->arena);
    lv_buf_free(&j->fixed);
    free(j->stack);
    free(j);
}

/* ---- writing ----------------------------------------------------------------- */

static int cancel(struct lv_json *j, enum lv_json_status why)
{
    if (j->status == LV_JSON_OK)
        j->status = why;
    return 0;
}

static bool writing(const struct lv_json *j)
{
    return j->mode != LV_JSON_EXTRACT && j->skip == 0;
}

/* Where the current token ends in the line. */
static size_t consumed(const struct lv_json *j)
{
    return yajl_get_bytes_consumed(j->h);
}

/* PATCH: is [start, end) a token of the line after what was copied, and
 * does it begin with `c` (if c >= 0)? Always, for a line yajl takes in one piece; a
 * token that yajl completes only at the end of the input (a truncated
 * line) has no place, and the line goes to REDACT. */
static bool in_line(struct lv_json *j, size_t start, size_t end, int c)
{
    if (start <= end && end <= j->line_len && start >= j->copied && start < end &&
        (c < 0 || j->line[start] == c))
        return true;
    cancel(j, LV_JSON_NEEDS_REDACT);
    return false;
}

/* PATCH: may a rule touch the token [start, end)? Not when the line's scan
 * recorded no hit inside it (and no rule looks at every text). Tokens come
 * in order, so one cursor walks the hits. */
static bool hit_within(struct lv_json *j, size_t start, size_t end)
{
    const struct lv_scan *sc = j->scan;
    if (sc->line != j->line || sc->every_text)
        return true;
    while (j->next_hit < sc->nhits && sc->hits[j->next_hit].pos < start)
        j->next_hit++;
    return j->next_hit < sc->nhits && sc->hits[j->next_hit].pos < end;
}

/* PATCH: the line goes out unchanged up to `to`; the next run starts at
 * `from` (what lies between is replaced, or dropped). */
static int copy_until(struct lv_json *j, size_t to, size_t from)
{
    if (LV_UNLIKELY(to < j->copied || to > j->line_len))
        return -EIO; /* cannot happen; if it did, the record is withheld */
    int rc = lv_buf_append(j->out, j->line + j->copied, to - j->copied);
    j->copied = from;
    return rc;
}

/* The comma before a member of the current container. */
static int put_sep(struct lv_json *j)
{
    struct frame *f = &j->stack[j->depth];
    if (f->count++ == 0)
        return 0;
    return lv_buf_putc(j->out, ',');
}

/* Before a value inside an array: its comma. (In a map the key wrote it.) */
static int value_sep(struct lv_json *j)
{
    if (j->depth > 0 && !j->stack[j->depth].is_map)
        return put_sep(j);
    return 0;
}

/* ---- extraction ---------------------------------------------------------------- */

/* The first level field whose value says a level wins; a field whose
 * presence only implies one (Serilog's @mt) gives it unless one does.
 * Returns true when the level became known. */
static bool take_level(struct lv_json *j, enum lv_level_kind kind, const char *s, size_t len)
{
    struct lv_json_result *r = j->res;
    if (r->has_level)
        return false;
    enum lv_level level = lv_level_value(kind, s, len);
    if (level == LV_LEVEL_UNKNOWN)
        return false;
    r->level = level;
    r->has_level = kind != LV_LEVEL_PRESENT_INFO;
    return r->has_level;
}

static void take_key(struct lv_json *j, const char *s, size_t len)
{
    struct lv_json_result *r = j->res;
    if (r->has_key)
        return;
    r->has_key = true;
    j->took_key = true;
    r->key_hash = lv_sample_hash(s, len);
    r->trace_len = len < sizeof r->trace_id ? len : 0;
    memcpy(r->trace_id, s, r->trace_len);
}

/* A time field's value, parsed at most once per scalar (the timestamp field
 * is usually also the first time field). */
struct parsed_time {
    bool done;
    int rc;
    int64_t ns;
    bool utc;
};

static int parse_time(struct parsed_time *t, const char *s, size_t len, bool is_string)
{
    if (!t->done) {
        t->done = true;
        t->rc = is_string ? lv_time_parse(s, len, &t->ns, &t->utc)
                          : lv_time_parse_epoch(s, len, &t->ns);
    }
    return t->rc;
}

static void take_time(struct lv_json *j, struct parsed_time *t, const char *s, size_t len,
                      bool is_string)
{
    if (j->res->has_time || parse_time(t, s, len, is_string) < 0)
        return;
    j->res->time_ns = t->ns;
    j->res->has_time = true;
}

static bool take_tsfield(struct lv_json *j, struct parsed_time *t, const char *s, size_t len,
                         bool is_string)
{
    int rc = parse_time(t, s, len, is_string);
    int64_t ns = t->ns;
    bool utc = is_string && t->utc;
    if (rc < 0) {
        /* Not a time: the record's own value stays, and no second key is
         * added beside it. */
        if (j->depth == 1)
            j->res->has |= LV_HAS_TIMESTAMP;
        return false;
    }
    if (utc && j->depth == 1) {
        j->res->has |= LV_HAS_TIMESTAMP;
        return false;
    }
    if (j->depth != 1)
        return false;
    if (j->mode == LV_JSON_EXTRACT) {
        cancel(j, LV_JSON_NEEDS_REDACT);
        return false;
    }
    j->res->has |= LV_HAS_TIMESTAMP;
    if (!writing(j))
        return false;
    if (j->mode == LV_JSON_PATCH && copy_until(j, j->vstart, j->vend) < 0) {
        cancel(j, LV_JSON_FAILED);
        return true;
    }
    char buf[40];
    buf[0] = '"';
    size_t n = lv_time_format(ns, buf + 1);
    buf[n + 1] = '"';
    lv_buf_append(j->out, buf, n + 2);
    return true;
}

static bool notify(struct lv_json *j)
{
    return j->early && j->early(j->early_arg, j->res);
}

/* Level fields are matched case-insensitively, the others exactly. Folding
 * also makes '@' and '`' alike, so a folded match is confirmed unless the
 * path is the want's exact text. */
static bool want_matches(const struct want *w, const char *path, size_t plen, uint64_t head,
                         uint64_t fhead)
{
    if (!w->fold)
        return w->head == head && (plen <= 8 || memcmp(w->path + 8, path + 8, plen - 8) == 0);
    if (w->fhead != fhead)
        return false;
    return (w->head == head && plen <= 8) || strncasecmp(w->path, path, plen) == 0;
}

/* Can the current path be a wanted one? Its length and first byte say no
 * to most paths at the cost of one bit test. */
static bool maybe_wanted(const struct lv_json *j)
{
    return j->path_ok && j->path_len < 64 &&
           (j->want_first[j->path_len] >> (j->path[0] & 63) & 1);
}

/* Matches the current path against the wanted fields. Returns true when the
 * value has been written already (a normalised timestamp). */
static bool extract_wanted(struct lv_json *j, const char *s, size_t len, bool is_string)
{
    bool written = false, news = false;
    struct parsed_time t = {0};
    size_t plen = j->path_len;
    uint64_t head = head_of(j->path, plen), fhead = head | FOLD;
    for (size_t i = j->want_from[plen]; i < j->want_from[plen + 1]; i++) {
        const struct want *w = &j->wants[i];
        if (!want_matches(w, j->path, plen, head, fhead))
            continue;
        switch (w->kind) {
        case W_LEVEL:
            news |= take_level(j, (enum lv_level_kind)w->idx, s, len);
            break;
        case W_KEY:
            news |= !j->res->has_key;
            take_key(j, s, len);
            break;
        case W_KEEP:
            if (is_string && j->keep_len[w->idx] == len &&
                memcmp(j->keep[w->idx].equals, s, len) == 0)
                j->res->keep = true;
            break;
        case W_TIME:
            take_time(j, &t, s, len, is_string);
            break;
        case W_TSFIELD:
            written |= take_tsfield(j, &t, s, len, is_string);
            break;
        }
    }
    if (news && notify(j))
        cancel(j, LV_JSON_CANCELLED);
    return written;
}

static bool extract(struct lv_json *j, const char *s, size_t len, bool is_string)
{
    return !j->skip && maybe_wanted(j) && extract_wanted(j, s, len, is_string);
}

/* ---- callbacks ------------------------------------------------------------------- */

/* PATCH: a scalar is rewritten only when a rule touches it. */
static int patch_scalar(struct lv_json *j, const char *s, size_t len, bool is_string)
{
    if (j->pending_rule >= 0) {
        j->res->redactions++;
        if (copy_until(j, j->vstart, j->vend) < 0)
            return -ENOBUFS;
        return lv_redact_key_value(j->redactor, j->pending_rule, s, len, j->out);
    }
    if (!is_string || !j->scan->rules || !hit_within(j, j->vstart, j->vend))
        return 0;
    int n = lv_redact_find(j->redactor, j->scan, s, len);
    if (n <= 0)
        return n;
    j->res->redactions += n;
    if (copy_until(j, j->vstart, j->vend) < 0)
        return -ENOBUFS;
    int rc = lv_redact_write(j->redactor, s, len, j->out);
    return rc < 0 ? rc : n;
}

static int scalar(struct lv_json *j, const char *s, size_t len, bool is_string)
{
    if (j->depth == 0)
        return cancel(j, LV_JSON_INVALID); /* the root must be an object */
    if (j->mode == LV_JSON_PATCH) {
        /* No escapes: a string's token is its text in quotes. */
        j->vend = consumed(j);
        j->vstart = j->vend - len - (is_string ? 2 : 0);
        if (!in_line(j, j->vstart, j->vend, is_string ? '"' : -1))
            return 0;
    }
    if (extract(j, s, len, is_string) || !writing(j))
        goto done;
    int rc;
    if (j->mode == LV_JSON_PATCH) {
        rc = patch_scalar(j, s, len, is_string);
    } else if (value_sep(j) < 0) {
        return cancel(j, LV_JSON_FAILED);
    } else if (j->pending_rule >= 0) {
        rc = lv_redact_key_value(j->redactor, j->pending_rule, s, len, j->out);
        j->res->redactions++;
    } else if (is_string) {
        rc = lv_redact_string(j->redactor, j->scan, s, len, j->out);
        if (rc > 0)
            j->res->redactions += rc;
    } else {
        rc = lv_buf_append(j->out, s, len);
    }
    if (rc < 0)
        return cancel(j, LV_JSON_FAILED);
    /* The ECS trace.id copy is written unredacted: never from a value that
     * a rule touched. */
    if (j->took_key && (j->pending_rule >= 0 || (is_string && rc > 0)))
        j->res->trace_len = 0;
done:
    j->took_key = false;
    j->pending_rule = -1;
    return j->status == LV_JSON_OK;
}

static int on_null(void *ctx)
{
    return scalar(ctx, "null", 4, false);
}

static int on_boolean(void *ctx, int b)
{
    return scalar(ctx, b ? "true" : "false", b ? 4 : 5, false);
}

static int on_number(void *ctx, const char *s, size_t len)
{
    return scalar(ctx, s, len, false);
}

static int on_string(void *ctx, const unsigned char *s, size_t len)
{
    return scalar(ctx, (const char *)s, len, true);
}

static void path_push_key(struct lv_json *j, const char *key, size_t len)
{
    size_t base = j->stack[j->depth].path_len;
    j->path_len = base;
    /* Paths only grow: one longer than every wanted path, and all below
     * it, cannot match; nor can a top-level key no wanted path starts
     * with (by its first byte), nor anything below it. */
    if (base == SIZE_MAX || base + len + 1 > PATH_MAX_LEN || base + len > j->want_max ||
        (base == 0 && len && !(j->want_top >> ((unsigned char)key[0] & 63) & 1))) {
        j->path_ok = false;
        return;
    }
    j->path_ok = true;
    if (j->depth > 1)
        j->path[j->path_len++] = '.';
    memcpy(j->path + j->path_len, key, len);
    j->path_len += len;
}

static void note_top_key(struct lv_json *j, const char *key, size_t len)
{
    if (!len)
        return;
    for (unsigned m = j->top_first[(unsigned char)key[0]]; m; m &= m - 1) {
        unsigned i = (unsigned)__builtin_ctz(m);
        if (j->tops[i].len == len && memcmp(j->tops[i].name, key, len) == 0)
            j->res->has |= j->tops[i].flag;
    }
}

/* A key is written out like a string value, value rules applied, so that a
 * credential used as a map key ({"sessions":{"eyJ...":{..}}}) is redacted
 * too. */
static int put_key(struct lv_json *j, const char *key, size_t len)
{
    if (!j->scan->rules) {
        bool bad = false;
        int rc = lv_json_string(j->out, key, len, &bad);
        j->res->repaired_utf8 |= bad;
        return rc;
    }
    int n = lv_redact_string(j->redactor, j->scan, key, len, j->out);
    if (n > 0)
        j->res->redactions += n;
    return n < 0 ? n : 0;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The end of the member before the key at `at`: back over the comma. */
static size_t before_comma(const char *s, size_t at)
{
    while (at && is_blank(s[at - 1]))
        at--;
    if (at && s[at - 1] == ',')
        at--;
    while (at && is_blank(s[at - 1]))
        at--;
    return at;
}

/* PATCH: a key is rewritten when a value rule touches it; a member whose
 * key rule drops it goes with one of its commas. */
static int patch_key(struct lv_json *j, const char *key, size_t len)
{
    struct frame *f = &j->stack[j->depth];
    size_t end = consumed(j), start = end - len - 2;
    if (!in_line(j, start, end, '"'))
        return 0;
    if (f->drop_comma) {
        j->copied = start;
        f->drop_comma = false;
    }
    bool hit = hit_within(j, start, end);
    j->pending_rule = hit && lv_redact_key_possible(j->redactor, j->scan, key, len)
                          ? lv_redact_key(j->redactor, key, len)
                          : -1;
    if (j->pending_rule >= 0 && lv_redact_key_action(j->redactor, j->pending_rule) == LV_ACTION_DROP) {
        lv_redact_key_value(j->redactor, j->pending_rule, NULL, 0, j->out); /* counts it */
        j->res->redactions++;
        size_t from = start;
        if (f->count)
            from = before_comma(j->line, start);
        else
            f->drop_comma = true;
        if (copy_until(j, from, from) < 0)
            return cancel(j, LV_JSON_FAILED);
        j->skip = -1;
        return 1;
    }
    f->count++;
    if (!j->scan->rules || !hit)
        return 1;
    int n = lv_redact_find(j->redactor, j->scan, key, len);
    if (n > 0) {
        j->res->redactions += n;
        if (copy_until(j, start, end) < 0 || lv_redact_write(j->redactor, key, len, j->out) < 0)
            return cancel(j, LV_JSON_FAILED);
    }
    return n < 0 ? cancel(j, LV_JSON_FAILED) : 1;
}

static int on_map_key(void *ctx, const unsigned char *k, size_t len)
{
    struct lv_json *j = ctx;
    const char *key = (const char *)k;
    if (j->skip)
        return 1;
    path_push_key(j, key, len);
    if (j->depth == 1)
        note_top_key(j, key, len);
    if (j->mode == LV_JSON_EXTRACT) {
        j->stack[j->depth].count++;
        return 1;
    }
    if (j->mode == LV_JSON_PATCH)
        return patch_key(j, key, len);
    j->pending_rule = lv_redact_key_possible(j->redactor, j->scan, key, len)
                          ? lv_redact_key(j->redactor, key, len)
                          : -1;
    if (j->pending_rule >= 0 && lv_redact_key_action(j->redactor, j->pending_rule) == LV_ACTION_DROP) {
        lv_redact_key_value(j->redactor, j->pending_rule, NULL, 0, j->out); /* counts it */
        j->res->redactions++;
        j->skip = -1; /* the next value is skipped; see skip_value() */
        return 1;
    }
    if (put_sep(j) < 0 || put_key(j, key, len) < 0 || lv_buf_putc(j->out, ':') < 0)
        return cancel(j, LV_JSON_FAILED);
    return 1;
}

/* skip == -1 marks "drop the next value": a scalar is swallowed whole, a
 * container turns it into a depth count. */
static bool skip_value(struct lv_json *j, bool container)
{
    if (j->skip != -1)
        return false;
    j->skip = container ? 1 : 0;
    j->pending_rule = -1;
    if (!container && j->mode == LV_JSON_PATCH)
        j->copied = consumed(j);
    return true;
}

/* One root, an object; nesting within the limit. */
static bool container_allowed(struct lv_json *j, bool is_map)
{
    if (j->depth == 0 && (!is_map || j->root_seen))
        return cancel(j, LV_JSON_INVALID);
    j->root_seen = true;
    if (j->depth >= j->max_depth)
        return cancel(j, LV_JSON_DEPTH);
    return true;
}

static void push_frame(struct lv_json *j, bool is_map)
{
    size_t path = j->depth == 0 ? 0 : (j->path_ok ? j->path_len : SIZE_MAX);
    j->depth++;
    j->stack[j->depth] = (struct frame){is_map, false, 0, path};
}

/* After a container closed: true when it was the root. */
static bool pop_frame(struct lv_json *j)
{
    if (j->depth == 0) {
        j->res->empty = j->stack[1].count == 0;
        j->root_end = consumed(j); /* just past the '}' */
        return true;
    }
    j->path_len = j->stack[j->depth].path_len;
    j->path_ok = j->path_len != SIZE_MAX;
    return false;
}

static int open_container(void *ctx, bool is_map)
{
    struct lv_json *j = ctx;
    if (!container_allowed(j, is_map))
        return 0;
    if (skip_value(j, true)) { /* a dropped container starts */
        j->depth++;
        return 1;
    }
    if (j->skip > 0) {
        j->depth++;
        j->skip++;
        return 1;
    }
    if (j->depth > 0 && writing(j)) {
        bool patch = j->mode == LV_JSON_PATCH;
        if (!patch && value_sep(j) < 0)
            return cancel(j, LV_JSON_FAILED);
        if (j->pending_rule >= 0) {
            /* A redacted container: replaced by the mask, its tokens skipped
             * (PATCH resumes copying where it closes). */
            size_t at = consumed(j) - 1;
            if (patch && !in_line(j, at, at + 1, is_map ? '{' : '['))
                return 0;
            if ((patch && copy_until(j, at, at) < 0) ||
                lv_redact_key_value(j->redactor, j->pending_rule, NULL, 0, j->out) < 0)
                return cancel(j, LV_JSON_FAILED);
            j->res->redactions++;
            j->pending_rule = -1;
            j->depth++;
            j->skip = 1;
            return 1;
        }
        if (!patch && lv_buf_putc(j->out, is_map ? '{' : '[') < 0)
            return cancel(j, LV_JSON_FAILED);
    }
    push_frame(j, is_map);
    j->pending_rule = -1;
    return 1;
}

static int close_container(void *ctx, bool is_map)
{
    struct lv_json *j = ctx;
    j->depth--;
    if (j->skip > 0) {
        if (--j->skip == 0 && j->mode == LV_JSON_PATCH)
            j->copied = consumed(j);
        return 1;
    }
    if (pop_frame(j))
        return 1; /* the root's brace is the caller's, after enrichment */
    if (writing(j) && j->mode == LV_JSON_REDACT && lv_buf_putc(j->out, is_map ? '}' : ']') < 0)
        return cancel(j, LV_JSON_FAILED);
    return 1;
}

static int on_start_map(void *ctx)
{
    return open_container(ctx, true);
}

static int on_end_map(void *ctx)
{
    return close_container(ctx, true);
}

static int on_start_array(void *ctx)
{
    return open_container(ctx, false);
}

static int on_end_array(void *ctx)
{
    return close_container(ctx, false);
}

/* Scalars go through here first so that a dropped value is swallowed. */
static int on_null_s(void *ctx)
{
    struct lv_json *j = ctx;
    return skip_value(j, false) ? 1 : on_null(ctx);
}

static int on_boolean_s(void *ctx, int b)
{
    struct lv_json *j = ctx;
    return skip_value(j, false) ? 1 : on_boolean(ctx, b);
}

static int on_number_s(void *ctx, const char *s, size_t len)
{
    struct lv_json *j = ctx;
    return skip_value(j, false) ? 1 : on_number(ctx, s, len);
}

static int on_string_s(void *ctx, const unsigned char *s, size_t len)
{
    struct lv_json *j = ctx;
    return skip_value(j, false) ? 1 : on_string(ctx, s, len);
}

/* ---- EXTRACT's callbacks ------------------------------------------------------------------
 * EXTRACT writes nothing and skips nothing, and runs on most lines: its
 * callbacks only follow the path and pick out the wanted fields. */

static int x_scalar(struct lv_json *j, const char *s, size_t len, bool is_string)
{
    if (LV_UNLIKELY(j->depth == 0))
        return cancel(j, LV_JSON_INVALID); /* the root must be an object */
    if (!maybe_wanted(j))
        return 1;
    extract(j, s, len, is_string);
    j->took_key = false;
    return j->status == LV_JSON_OK;
}

static int x_null(void *ctx)
{
    return x_scalar(ctx, "null", 4, false);
}

static int x_boolean(void *ctx, int b)
{
    return x_scalar(ctx, b ? "true" : "false", b ? 4 : 5, false);
}

static int x_number(void *ctx, const char *s, size_t len)
{
    return x_scalar(ctx, s, len, false);
}

static int x_string(void *ctx, const unsigned char *s, size_t len)
{
    return x_scalar(ctx, (const char *)s, len, true);
}

static int x_map_key(void *ctx, const unsigned char *k, size_t len)
{
    struct lv_json *j = ctx;
    path_push_key(j, (const char *)k, len);
    if (j->depth == 1)
        note_top_key(j, (const char *)k, len);
    j->stack[j->depth].count++;
    return 1;
}

static int x_start_map(void *ctx)
{
    struct lv_json *j = ctx;
    if (!container_allowed(j, true))
        return 0;
    push_frame(j, true);
    return 1;
}

static int x_start_array(void *ctx)
{
    struct lv_json *j = ctx;
    if (!container_allowed(j, false))
        return 0;
    push_frame(j, false);
    return 1;
}

static int x_end(void *ctx)
{
    struct lv_json *j = ctx;
    j->depth--;
    pop_frame(j);
    return 1;
}

static const yajl_callbacks extract_callbacks = {
    .yajl_null = x_null,
    .yajl_boolean = x_boolean,
    .yajl_number = x_number,
    .yajl_string = x_string,
    .yajl_start_map = x_start_map,
    .yajl_map_key = x_map_key,
    .yajl_end_map = x_end,
    .yajl_start_array = x_start_array,
    .yajl_end_array = x_end,
};

static const yajl_callbacks callbacks = {
    .yajl_null = on_null_s,
    .yajl_boolean = on_boolean_s,
    .yajl_number = on_number_s,
    .yajl_string = on_string_s,
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_map_key,
    .yajl_end_map = on_end_map,
    .yajl_start_array = on_start_array,
    .yajl_end_array = on_end_array,
};

static void reset_run(struct lv_json *j, enum lv_json_mode mode, const struct lv_scan *scan,
                      struct lv_buf *out, struct lv_json_result *res)
{
    memset(res, 0, sizeof *res);
    j->mode = mode;
    j->scan = scan;
    j->out = out;
    j->res = res;
    j->status = LV_JSON_OK;
    j->depth = 0;
    j->skip = 0;
    j->pending_rule = -1;
    j->root_seen = false;
    j->took_key = false;
    j->path_ok = true;
    j->path_len = 0;
    j->stack[0] = (struct frame){false, false, 0, 0};
}

/* yajl checks only the shape of UTF-8 sequences: overlong forms, encoded
 * surrogates and code points past U+10FFFF pass, and a verbatim copy would
 * ship them. This is the strict check, eight ASCII bytes at a time. */

/* yajl's final step accepts an unterminated string after the root object
 * ({"a":1}"}): anything but blanks after the root makes the line text. */
static bool only_blanks(const char *s, size_t from, size_t len)
{
    for (size_t i = from; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return false;
    return from > 0;
}

enum lv_json_status lv_json_run(struct lv_json *j, enum lv_json_mode mode, const char *line,
                                size_t len, const struct lv_scan *scan, struct lv_buf *out,
                                struct lv_json_result *res, lv_json_early_fn *early, void *arg)
{
    reset_run(j, mode, scan, out, res);
    j->early = early;
    j->early_arg = arg;
    if (mode == LV_JSON_REDACT) {
        /* yajl would join a lone high surrogate with the escape after it
         * ("\ud800\u0070assword" would lose its 'p'): parse a copy in which
         * it is U+FFFD, as a strict decoder reads it. */
        line = lv_json_fix_surrogates(line, len, &j->fixed);
        if (!line || lv_buf_putc(out, '{') < 0)
            return LV_JSON_FAILED;
    }
    lv_arena_reset(&j->arena);
    yajl_handle h = j->h =
        yajl_alloc(mode == LV_JSON_EXTRACT ? &extract_callbacks : &callbacks, &j->funcs, j);
    /* REDACT repairs UTF-8 itself; PATCH is given only valid UTF-8. */
    if (mode != LV_JSON_EXTRACT)
        yajl_config(h, yajl_dont_validate_strings, 1);
    j->root_end = 0;
    j->line = line;
    j->line_len = len;
    j->copied = 0;
    j->next_hit = 0;
    yajl_status st = yajl_parse(h, (const unsigned char *)line, len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    yajl_free(h);
    j->h = NULL;
    if (st == yajl_status_ok && (!j->root_seen || !only_blanks(line, j->root_end, len)))
        return LV_JSON_INVALID;
    if (st == yajl_status_client_canceled)
        return j->status;
    if (st != yajl_status_ok)
        return LV_JSON_INVALID;
    /* PATCH: the rest of the line, up to the root's closing brace. */
    if (mode == LV_JSON_PATCH && copy_until(j, j->root_end - 1, j->root_end) < 0)
        return LV_JSON_FAILED;
    return LV_JSON_OK;
}
