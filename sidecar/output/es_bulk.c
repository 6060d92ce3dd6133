/*
 * The _bulk answer reader (the contract is in es_bulk.h). Depths: 1 the
 * answer object, 2 the items array, 3 an item, 4 its action object (status,
 * error), 5 the error object (type, reason).
 *
 * yajl reads a token that spans chunks again from its start at every
 * chunk: fed in small pieces (a peer that drips its answer), a long token
 * costs time quadratic in its length (a 5 MB string in 1460-byte segments:
 * 3.5 s of CPU). So small chunks are gathered into pieces of COALESCE bytes
 * before yajl sees them (the 5 MB string then costs 0.1 s), and a token
 * longer than TOKEN_MAX (far longer than any status, type or reason
 * Elasticsearch writes) ends the answer as bad.
 */
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#include "es_bulk.h"
#include "json_write.h"
#include "logveil/util.h"

#define COALESCE (64 * 1024)
#define TOKEN_MAX (8 * 1024 * 1024)

enum key { K_NONE, K_ERRORS, K_ITEMS, K_STATUS, K_ERROR, K_TYPE, K_REASON };

struct lv_es_bulk {
    yajl_handle y;
    lv_es_item_fn *fn;
    void *arg;
    int depth;
    enum key key;
    bool in_items, in_error;
    bool items_seen; /* the items array has begun */
    bool all_ok;     /* "errors":false came before the items */
    bool bad;    /* not JSON, a member of items that is not an object, an item too many */
    size_t items;
    struct lv_buf pend;    /* small chunks gathered, at most COALESCE bytes */
    bool in_string, escaped;
    size_t token_len;      /* of the string, number or literal being read */
    long status;
    char type[LV_ES_BULK_TEXT], reason[LV_ES_BULK_TEXT];
    size_t type_len, reason_len;
};

static int y_start_map(void *ctx)
{
    struct lv_es_bulk *b = ctx;
    b->depth++;
    if (b->in_items && b->depth == 3) {
        b->status = 0;
        b->type_len = b->reason_len = 0;
    }
    if (b->in_items && b->depth == 5 && b->key == K_ERROR)
        b->in_error = true;
    b->key = K_NONE;
    return 1;
}

static int y_end_map(void *ctx)
{
    struct lv_es_bulk *b = ctx;
    if (b->in_items && b->depth == 3) {
        struct lv_es_item it = {b->status, b->type, b->reason, b->type_len, b->reason_len};
        if (!b->fn(b->arg, &it)) {
            b->bad = true;
            return 0;
        }
        b->items++;
    }
    if (b->depth == 5)
        b->in_error = false;
    b->depth--;
    b->key = K_NONE;
    return 1;
}

/* A member of the items array that is not an object is no item. */
static int scalar_at(struct lv_es_bulk *b)
{
    b->key = K_NONE;
    if (b->in_items && b->depth == 2) {
        b->bad = true;
        return 0;
    }
    return 1;
}

static int y_start_array(void *ctx)
{
    struct lv_es_bulk *b = ctx;
    bool items = b->depth == 1 && b->key == K_ITEMS;
    if (!scalar_at(b))
        return 0;
    b->depth++;
    b->in_items = b->in_items || items;
    b->items_seen = b->items_seen || items;
    return 1;
}

static int y_end_array(void *ctx)
{
    struct lv_es_bulk *b = ctx;
    if (b->depth == 2)
        b->in_items = false;
    b->depth--;
    b->key = K_NONE;
    return 1;
}

static bool is(const unsigned char *k, size_t len, const char *name)
{
    return len == strlen(name) && memcmp(k, name, len) == 0;
}

static int y_key(void *ctx, const unsigned char *k, size_t len)
{
    struct lv_es_bulk *b = ctx;
    b->key = K_NONE;
    if (b->depth == 1 && is(k, len, "items"))
        b->key = K_ITEMS;
    else if (b->depth == 1 && is(k, len, "errors"))
        b->key = K_ERRORS;
    else if (b->in_items && b->depth == 4 && is(k, len, "status"))
        b->key = K_STATUS;
    else if (b->in_items && b->depth == 4 && is(k, len, "error"))
        b->key = K_ERROR;
    else if (b->in_error && b->depth == 5 && is(k, len, "type"))
        b->key = K_TYPE;
    else if (b->in_error && b->depth == 5 && is(k, len, "reason"))
        b->key = K_REASON;
    return 1;
}

/* An HTTP status: 1 to 7 digits, nothing else (a sign, a fraction, an
 * exponent) or it reads as 0, which the caller retries. */
static int y_number(void *ctx, const char *s, size_t len)
{
    struct lv_es_bulk *b = ctx;
    if (b->key == K_STATUS) {
        long v = len >= 1 && len <= 7 ? 0 : -1;
        for (size_t i = 0; i < len && v >= 0; i++)
            v = s[i] >= '0' && s[i] <= '9' ? v * 10 + (s[i] - '0') : -1;
        b->status = v >= 0 ? v : 0;
    }
    return scalar_at(b);
}

/* Valid UTF-8, cut at a character's start: yajl checks the bytes of a
 * string but decodes a lone surrogate escape (\ud800) into the three bytes
 * UTF-8 forbids; each byte of such a sequence becomes U+FFFD, as the JSON
 * writer repairs text (json_write.h). */
static void keep_text(char *dst, size_t *dlen, const unsigned char *s, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t n = s[i] < 0x80 ? 1 : lv_utf8_seq_len(s + i, len - i);
        const unsigned char *from = n ? s + i : (const unsigned char *)"\xef\xbf\xbd";
        size_t put = n ? n : 3;
        if (o + put > LV_ES_BULK_TEXT)
            break;
        memcpy(dst + o, from, put);
        o += put;
        i += n ? n : 1;
    }
    *dlen = o;
}

static int y_string(void *ctx, const unsigned char *s, size_t len)
{
    struct lv_es_bulk *b = ctx;
    if (b->key == K_TYPE)
        keep_text(b->type, &b->type_len, s, len);
    else if (b->key == K_REASON)
        keep_text(b->reason, &b->reason_len, s, len);
    return scalar_at(b);
}

static int y_null(void *ctx)
{
    return scalar_at(ctx);
}

static int y_bool(void *ctx, int v)
{
    struct lv_es_bulk *b = ctx;
    if (b->key == K_ERRORS && !v && !b->items_seen) {
        b->all_ok = true;
        return 0; /* stops the parse: the rest need not be read */
    }
    return scalar_at(b);
}

static const yajl_callbacks callbacks = {
    .yajl_null = y_null,
    .yajl_boolean = y_bool,
    .yajl_number = y_number,
    .yajl_string = y_string,
    .yajl_start_map = y_start_map,
    .yajl_map_key = y_key,
    .yajl_end_map = y_end_map,
    .yajl_start_array = y_start_array,
    .yajl_end_array = y_end_array,
};

/* yajl's allocations, failing as every other allocation does (util.h). */
static void *y_malloc(void *ctx, size_t n)
{
    (void)ctx;
    return lv_xrealloc(NULL, n);
}

static void *y_realloc(void *ctx, void *p, size_t n)
{
    (void)ctx;
    return lv_xrealloc(p, n);
}

static void y_free(void *ctx, void *p)
{
    (void)ctx;
    free(p);
}

struct lv_es_bulk *lv_es_bulk_new(lv_es_item_fn *fn, void *arg)
{
    struct lv_es_bulk *b = lv_xcalloc(1, sizeof *b);
    b->fn = fn;
    b->arg = arg;
    yajl_alloc_funcs funcs = {y_malloc, y_realloc, y_free, NULL};
    b->y = yajl_alloc(&callbacks, &funcs, b);
    lv_buf_init(&b->pend, 0, COALESCE);
    return b;
}

void lv_es_bulk_free(struct lv_es_bulk *b)
{
    if (!b)
        return;
    yajl_free(b->y);
    lv_buf_free(&b->pend);
    free(b);
}

/* Whether every token in `p` (with those before it) is at most TOKEN_MAX
 * bytes: a string's bytes between its quotes, or a run of bytes outside
 * strings that is neither structure nor blank (a number, a literal). */
static bool tokens_short(struct lv_es_bulk *b, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (b->in_string) {
            if (b->escaped)
                b->escaped = false;
            else if (ch == '\\')
                b->escaped = true;
            else if (ch == '"') {
                b->in_string = false;
                b->token_len = 0;
                continue;
            }
        } else if (ch == '"') {
            b->in_string = true;
            b->token_len = 0;
            continue;
        } else if (ch && strchr("{}[]:, \t\r\n", ch)) {
            b->token_len = 0;
            continue;
        }
        if (++b->token_len > TOKEN_MAX)
            return false;
    }
    return true;
}

static void parse(struct lv_es_bulk *b, const char *data, size_t len)
{
    if (!b->all_ok && !b->bad &&
        yajl_parse(b->y, (const unsigned char *)data, len) != yajl_status_ok && !b->all_ok)
        b->bad = true;
}

void lv_es_bulk_feed(struct lv_es_bulk *b, const char *data, size_t len)
{
    if (b->all_ok || b->bad)
        return;
    if (!tokens_short(b, data, len)) {
        b->bad = true;
        return;
    }
    if (b->pend.len + len > COALESCE && b->pend.len) {
        parse(b, b->pend.data, b->pend.len);
        b->pend.len = 0;
    }
    if (len >= COALESCE)
        parse(b, data, len);
    else if (lv_buf_append(&b->pend, data, len) < 0)
        b->bad = true; /* cannot happen: pend stays under COALESCE */
}

enum lv_es_bulk_result lv_es_bulk_finish(struct lv_es_bulk *b)
{
    if (b->pend.len) {
        parse(b, b->pend.data, b->pend.len);
        b->pend.len = 0;
    }
    if (b->all_ok)
        return LV_ES_BULK_ALL_OK;
    if (!b->bad && yajl_complete_parse(b->y) != yajl_status_ok)
        b->bad = true;
    return b->all_ok ? LV_ES_BULK_ALL_OK : b->bad ? LV_ES_BULK_BAD : LV_ES_BULK_ITEMS;
}

size_t lv_es_bulk_items(const struct lv_es_bulk *b)
{
    return b->items;
}
