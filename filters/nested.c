/*
 * The walk over JSON inside text. yajl parses from each '{' or '[' of the
 * text; its count of bytes consumed, exact inside a callback, places every
 * token in the text. A parse ends when its first value closes (the rest of
 * the text is searched again), at an error (the search goes on from the
 * byte that failed, which yajl counts as consumed), or at the end of the
 * text, so every byte is parsed at most once or twice: the walk is linear
 * in the text. It keeps no state per level, so it needs no depth limit: a
 * record deeper than limits.max_depth is withheld, but the same JSON in a
 * text line is walked to its bottom (yajl's own stack is bounded by the
 * text's length).
 *
 * A string token's place is found from its end: when the text just before
 * it, as long as the decoded string, holds no backslash and follows a
 * quote, the token has no escapes; otherwise the opening quote is the first
 * unescaped one before the end.
 */
#include <stdlib.h>
#include <yajl/yajl_parse.h>

#include "arena.h"
#include "json_text.h"
#include "nested.h"

struct lv_nested {
    struct lv_redactor *r;
    struct lv_arena arena;
    yajl_alloc_funcs funcs;
    struct lv_buf fixed;
    struct lv_buf key; /* a refused key, decoded */
    /* per walk */
    const struct lv_nested_sink *sink;
    const char *s;
    size_t len;
    /* per parse */
    yajl_handle h;
    size_t base;       /* where the parse started in the text */
    int depth;
    int skip;          /* > 0: inside a matching key's container */
    int skip_rule;
    size_t skip_start; /* where that container starts */
    int pending;       /* the key rule of the next value, or -1 */
    size_t key_start, key_end;
    bool closed;       /* the first value ended */
    size_t good;       /* just past the last token yajl accepted */
    int rc;
};

struct lv_nested *lv_nested_new(struct lv_redactor *r)
{
    struct lv_nested *n = lv_xcalloc(1, sizeof *n);
    n->r = r;
    lv_arena_init(&n->arena, 16 * 1024);
    lv_arena_yajl_funcs(&n->arena, &n->funcs);
    lv_buf_init(&n->fixed, 0, 0);
    lv_buf_init(&n->key, 0, 0);
    return n;
}

void lv_nested_free(struct lv_nested *n)
{
    if (!n)
        return;
    lv_arena_free(&n->arena);
    lv_buf_free(&n->fixed);
    lv_buf_free(&n->key);
    free(n);
}

bool lv_nested_possible(const char *s, size_t len)
{
    return memchr(s, '"', len) && (memchr(s, '{', len) || memchr(s, '[', len));
}

/* ---- places ------------------------------------------------------------------ */

static size_t here(struct lv_nested *n)
{
    return n->good = n->base + yajl_get_bytes_consumed(n->h);
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* The opening quote of the string token whose closing quote is at `close`. */
static size_t opening_quote(const char *s, size_t close)
{
    for (size_t p = close; p-- > 0;) {
        if (s[p] != '"')
            continue;
        size_t k = p;
        while (k > 0 && s[k - 1] == '\\')
            k--;
        if ((p - k) % 2 == 0)
            return p;
    }
    return 0;
}

/* The place of the string token that just ended, decoded as `dlen` bytes;
 * a token with escapes is reported to the sink. */
static size_t string_start(struct lv_nested *n, size_t dlen)
{
    size_t end = here(n);
    if (end >= dlen + 2 && n->s[end - dlen - 2] == '"' && !memchr(n->s + end - dlen - 1, '\\', dlen))
        return end - dlen - 2;
    size_t start = opening_quote(n->s, end - 1);
    if (n->sink->string && n->rc == 0)
        n->rc = n->sink->string(n->sink->arg, start + 1, end - 1, false);
    return start;
}

/* The member from the key at key_start to `end`, with the comma after it
 * (and the blanks after that), or else the comma before it. */
static void member(const struct lv_nested *n, size_t end, struct lv_nested_value *v)
{
    v->member_start = n->key_start;
    v->member_end = end;
    size_t k = end;
    while (k < n->len && is_blank(n->s[k]))
        k++;
    if (k < n->len && n->s[k] == ',') {
        for (k++; k < n->len && is_blank(n->s[k]);)
            k++;
        v->member_end = k;
        return;
    }
    k = n->key_start;
    while (k > 0 && is_blank(n->s[k - 1]))
        k--;
    if (k > 0 && n->s[k - 1] == ',')
        v->member_start = k - 1;
}

static void report(struct lv_nested *n, int rule, size_t start, size_t end, const char *value,
                   size_t len, bool open)
{
    struct lv_nested_value v = {start, end, start, end, rule, value, len, open};
    member(n, end, &v);
    if (n->rc == 0)
        n->rc = n->sink->value(n->sink->arg, &v);
}

/* ---- callbacks ------------------------------------------------------------------ */

static int scalar(struct lv_nested *n, const char *s, size_t len, bool is_string)
{
    size_t end = here(n);
    if (n->skip)
        return 1;
    size_t start = is_string ? string_start(n, len) : end - len;
    if (n->pending >= 0)
        report(n, n->pending, start, end, s, len, false);
    n->pending = -1;
    return n->rc == 0;
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

static int on_key(void *ctx, const unsigned char *k, size_t len)
{
    struct lv_nested *n = ctx;
    here(n);
    if (n->skip)
        return 1;
    n->key_start = string_start(n, len);
    n->key_end = here(n);
    n->pending = lv_redact_key(n->r, (const char *)k, len);
    return n->rc == 0;
}

static int on_open(void *ctx)
{
    struct lv_nested *n = ctx;
    here(n);
    n->depth++;
    if (n->skip) {
        n->skip++;
    } else if (n->pending >= 0) {
        n->skip = 1;
        n->skip_rule = n->pending;
        n->skip_start = here(n) - 1;
        n->pending = -1;
    }
    return 1;
}

static int on_close(void *ctx)
{
    struct lv_nested *n = ctx;
    here(n);
    n->depth--;
    if (n->skip && --n->skip == 0)
        report(n, n->skip_rule, n->skip_start, here(n), NULL, 0, false);
    if (n->depth == 0) {
        n->closed = true;
        return 0; /* the first value is whole: the text goes on as text */
    }
    return n->rc == 0;
}

static const yajl_callbacks callbacks = {
    .yajl_null = on_null,
    .yajl_boolean = on_boolean,
    .yajl_number = on_number,
    .yajl_string = on_string,
    .yajl_start_map = on_open,
    .yajl_map_key = on_key,
    .yajl_end_map = on_close,
    .yajl_start_array = on_open,
    .yajl_end_array = on_close,
};

/* ---- the walk -------------------------------------------------------------------- */

static void unfinished(struct lv_nested *n);

/* The text of a string token that starts with the quote at `quote` and
 * that yajl did not take (the text ends inside it, or it holds an escape or
 * a byte JSON does not allow) is a string of its own, searched as far as
 * its closing quote or the end of the text. */
static void string_yajl_refused(struct lv_nested *n, size_t quote)
{
    size_t i = quote + 1;
    while (i < n->len && n->s[i] != '"')
        i += n->s[i] == '\\' ? 2 : 1;
    size_t end = i < n->len ? i : n->len;
    if (n->sink->string && n->rc == 0 && memchr(n->s + quote + 1, '\\', end - quote - 1))
        n->rc = n->sink->string(n->sink->arg, quote + 1, end, i >= n->len);
}

/* The text ended inside a string token that opened after `at` (an odd
 * number of unescaped quotes since). */
static void open_string(struct lv_nested *n, size_t at)
{
    size_t quote = SIZE_MAX;
    for (size_t i = at; i < n->len; i++) {
        if (n->s[i] == '\\')
            i++;
        else if (n->s[i] == '"')
            quote = quote == SIZE_MAX ? i : SIZE_MAX;
    }
    if (quote != SIZE_MAX)
        string_yajl_refused(n, quote);
}

/* The token that broke the parse: a string (after the last good token, past
 * blanks, ':' and ','), when it is one. One a ':' follows is a key: read
 * leniently, it gets the key rules, and a matching one's value runs to the
 * end of the text (the parse cannot say where it ends). */
static void refused_token(struct lv_nested *n)
{
    size_t i = n->good;
    while (i < n->len && (is_blank(n->s[i]) || n->s[i] == ':' || n->s[i] == ','))
        i++;
    if (i >= n->len || n->s[i] != '"')
        return;
    string_yajl_refused(n, i);
    size_t close = i + 1;
    while (close < n->len && n->s[close] != '"')
        close += n->s[close] == '\\' ? 2 : 1;
    size_t colon = close + 1;
    while (colon < n->len && is_blank(n->s[colon]))
        colon++;
    if (colon >= n->len || n->s[colon] != ':' || n->skip ||
        lv_json_unescape(n->s + i + 1, close - i - 1, true, &n->key, NULL, NULL) < 0)
        return;
    n->pending = lv_redact_key(n->r, n->key.data, n->key.len);
    n->key_start = i;
    n->key_end = close + 1;
    unfinished(n);
}

/* A parse that stopped inside the value of a matching key: the value runs
 * to the end of the text. */
static void unfinished(struct lv_nested *n)
{
    if (n->skip) {
        report(n, n->skip_rule, n->skip_start, n->len, NULL, 0, true);
        return;
    }
    if (n->pending < 0)
        return;
    size_t v = n->key_end;
    while (v < n->len && (is_blank(n->s[v]) || n->s[v] == ':'))
        v++;
    report(n, n->pending, v, n->len, NULL, 0, true); /* (maybe empty: a drop still drops) */
}

/* One parse from the bracket at `at`; returns where the search goes on. */
static size_t parse_from(struct lv_nested *n, size_t at)
{
    lv_arena_reset(&n->arena);
    n->h = yajl_alloc(&callbacks, &n->funcs, n);
    yajl_config(n->h, yajl_dont_validate_strings, 1);
    n->base = at;
    n->depth = n->skip = 0;
    n->pending = -1;
    n->closed = false;
    n->good = at;
    yajl_status st = yajl_parse(n->h, (const unsigned char *)n->s + at, n->len - at);
    size_t stop = n->base + yajl_get_bytes_consumed(n->h);
    yajl_free(n->h);
    n->h = NULL;
    if (n->closed)
        return stop;
    unfinished(n);
    if (st == yajl_status_ok) {
        open_string(n, at);
        return n->len;
    }
    refused_token(n);
    /* On from the end of the last good token: yajl counts the token that
     * broke the parse as consumed, and it may be a string holding a '{'. */
    return n->good > at ? n->good : at + 1;
}

int lv_nested_walk(struct lv_nested *n, const char *s, size_t len, const struct lv_nested_sink *sink)
{
    /* The same length as s, with lone surrogates as U+FFFD: places hold. */
    n->s = lv_json_fix_surrogates(s, len, &n->fixed);
    if (!n->s)
        return -ENOBUFS;
    n->len = len;
    n->sink = sink;
    n->rc = 0;
    for (size_t p = 0; p < len && n->rc == 0;) {
        while (p < len && n->s[p] != '{' && n->s[p] != '[')
            p++;
        if (p == len)
            break;
        size_t next = parse_from(n, p);
        p = next > p ? next : p + 1;
    }
    return n->rc;
}
