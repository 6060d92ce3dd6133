/*
 * libFuzzer target over the Elasticsearch _bulk answer reader (es_bulk.h),
 * which reads what a network peer sends.
 *
 * The first byte picks the mode and the chunking (the second, a limit on
 * the items the caller accepts). Raw (low bit clear): the
 * rest is the answer as it is. Built (low bit set): the rest drives a
 * writer of _bulk answers, written here from Elasticsearch's documented
 * format: items with fuzz-chosen statuses, errors whose type and reason mix
 * raw UTF-8, \u escapes and surrogate pairs, the keys Elasticsearch adds
 * (_index, _id, _shards, caused_by with its own type and reason,
 * root_cause), keys in any order, any JSON whitespace, "errors" before,
 * after or without the items, maybe cut short.
 *
 * Oracles: no crash, leak or unbounded allocation; never more items than
 * the caller accepts; every type and reason at most LV_ES_BULK_TEXT bytes
 * of valid UTF-8; the same items and result whatever the chunking (the
 * whole answer at once against fuzz-sized chunks); and for a built answer,
 * exactly what was written: ALL_OK when "errors":false came before the
 * items, else each item's status (0 for one that is not a 1-7 digit
 * integer), type and reason (decoded, cut at a character boundary) in
 * order, ITEMS when complete and within the limit, BAD when cut or over it.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logveil/util.h"
#include "output/es_bulk.h"

#define MAX_ITEMS 48
#define MAX_SEEN 512
#define STR_MAX 1400 /* past LV_ES_BULK_TEXT, to test the cut */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- what the reader reports --------------------------------------------- */

struct item {
    long status;
    size_t type_len, reason_len;
    char type[LV_ES_BULK_TEXT], reason[LV_ES_BULK_TEXT];
};

struct seen {
    size_t n, limit;
    struct item items[MAX_SEEN];
};

static bool utf8_valid(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
                   : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (!len || i + len > n)
            return false;
        unsigned cp = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        static const unsigned min[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

static bool on_item(void *arg, const struct lv_es_item *it)
{
    struct seen *s = arg;
    if (it->type_len > LV_ES_BULK_TEXT || it->reason_len > LV_ES_BULK_TEXT ||
        !utf8_valid((const unsigned char *)it->type, it->type_len) ||
        !utf8_valid((const unsigned char *)it->reason, it->reason_len)) {
        fprintf(stderr, "item %zu: a type or reason over the cap or not UTF-8\n", s->n);
        abort();
    }
    if (s->n >= s->limit)
        return false;
    if (s->n == MAX_SEEN)
        abort(); /* limit is at most MAX_SEEN */
    struct item *m = &s->items[s->n++];
    m->status = it->status;
    m->type_len = it->type_len;
    m->reason_len = it->reason_len;
    memcpy(m->type, it->type, it->type_len);
    memcpy(m->reason, it->reason, it->reason_len);
    return true;
}

static enum lv_es_bulk_result run(const char *text, size_t len, size_t chunk, struct seen *s)
{
    struct lv_es_bulk *b = lv_es_bulk_new(on_item, s);
    for (size_t at = 0; at < len; at += chunk)
        lv_es_bulk_feed(b, text + at, len - at < chunk ? len - at : chunk);
    enum lv_es_bulk_result r = lv_es_bulk_finish(b);
    if (lv_es_bulk_items(b) != s->n)
        abort();
    lv_es_bulk_free(b);
    return r;
}

static bool same_items(const struct item *a, const struct item *b)
{
    return a->status == b->status && a->type_len == b->type_len &&
           a->reason_len == b->reason_len && !memcmp(a->type, b->type, a->type_len) &&
           !memcmp(a->reason, b->reason, a->reason_len);
}

/* ---- reading the fuzz input ------------------------------------------------ */

struct in {
    const uint8_t *p;
    size_t n;
};

static unsigned take(struct in *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

/* ---- the writer ------------------------------------------------------------ */

static void put(struct lv_buf *b, const char *s, size_t n)
{
    if (lv_buf_append(b, s, n) < 0)
        abort();
}

static void puts_(struct lv_buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* JSON whitespace, zero to three characters of it. */
static void ws(struct lv_buf *b, struct in *in)
{
    unsigned v = take(in);
    for (unsigned k = 0; k < (v & 3); k++)
        put(b, &" \t\n\r"[(v >> (2 + 2 * k)) & 3], 1);
}

static size_t utf8_put(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A string of fuzz-chosen characters, written as JSON into `b` and kept
 * decoded in `dec` (its length in *dlen). */
static void string(struct lv_buf *b, struct in *in, char *dec, size_t *dlen)
{
    static const unsigned pick[] = {'a', 'Z', 0x00, ' ', '"', '\\', '/', 0x01, 0x1F, 0x7F, 0xE9,
                                    0x20AC, 0x2028, 0xFFFD, 0x1F600, 0x10FFFF};
    unsigned n = take(in);
    if (n & 0x80)
        n = (n & 0x7F) * 12; /* long ones cross the cap */
    *dlen = 0;
    puts_(b, "\"");
    for (unsigned i = 0; i < n && *dlen + 4 <= STR_MAX; i++) {
        unsigned v = in->n ? take(in) : i;
        unsigned cp = pick[v & 0x0F];
        *dlen += utf8_put(dec + *dlen, cp);
        char e[16];
        bool must = cp < 0x20 || cp == '"' || cp == '\\';
        if (must || (v & 0x10)) { /* escaped */
            if (cp == '"' || cp == '\\')
                snprintf(e, sizeof e, "\\%c", (char)cp);
            else if (cp == '\n' || cp == '\t')
                snprintf(e, sizeof e, "%s", cp == '\n' ? "\\n" : "\\t");
            else if (cp >= 0x10000)
                snprintf(e, sizeof e, "\\u%04X\\u%04x", 0xD800 + ((cp - 0x10000) >> 10),
                         0xDC00 + ((cp - 0x10000) & 0x3FF));
            else
                snprintf(e, sizeof e, (v & 0x20) ? "\\u%04x" : "\\u%04X", cp);
            puts_(b, e);
        } else {
            put(b, e, utf8_put(e, cp));
        }
    }
    puts_(b, "\"");
}

static void key(struct lv_buf *b, struct in *in, const char *k)
{
    ws(b, in);
    puts_(b, "\"");
    puts_(b, k);
    puts_(b, "\"");
    ws(b, in);
    puts_(b, ":");
    ws(b, in);
}

/* A value nobody reads: a number, a string, an object or an array. */
static void noise(struct lv_buf *b, struct in *in, int depth)
{
    char scratch[STR_MAX];
    size_t len;
    switch (take(in) % (depth > 3 ? 3 : 5)) {
    case 0: puts_(b, "12"); break;
    case 1: string(b, in, scratch, &len); break;
    case 2: puts_(b, take(in) & 1 ? "true" : "null"); break;
    case 3:
        puts_(b, "{");
        key(b, in, "status");
        puts_(b, "404");
        puts_(b, ",");
        key(b, in, "type");
        noise(b, in, depth + 1);
        puts_(b, ",");
        key(b, in, "reason");
        noise(b, in, depth + 1);
        puts_(b, "}");
        break;
    default:
        puts_(b, "[");
        noise(b, in, depth + 1);
        puts_(b, ",{\"status\":500,\"error\":{\"type\":\"x\"}}]");
        break;
    }
}

/* One item: its action object's members in a fuzz-chosen order. */
static void item(struct lv_buf *b, struct in *in, struct item *want)
{
    static const long statuses[] = {200, 201, 409, 429, 500, 503, 400, 404, 413, 0};
    unsigned v = take(in);
    char num[32];
    if ((v & 0x0F) < 10) {
        want->status = statuses[v & 0x0F];
        snprintf(num, sizeof num, "%ld", want->status);
    } else {
        static const char *const odd[] = {"201.0", "-1", "2e2", "12345678", "1234567", "99"};
        int k = (v & 0x0F) - 10;
        snprintf(num, sizeof num, "%s", odd[k]);
        want->status = k == 4 ? 1234567 : k == 5 ? 99 : 0;
    }
    bool error = v & 0x10;
    want->type_len = want->reason_len = 0;
    static const char *const actions[] = {"create", "index", "delete", "update"};
    ws(b, in);
    puts_(b, "{");
    key(b, in, actions[v >> 6]);
    puts_(b, "{");
    char type[STR_MAX], reason[STR_MAX];
    size_t tlen = 0, rlen = 0;
    unsigned order = take(in);
    bool first = true;
    for (int slot = 0; slot < 4; slot++) {
        int what = (slot + (int)(order & 3)) & 3; /* a rotation of the members */
        if (what == 3 && !(order & 4))
            continue;
        if (what == 1 && !error)
            continue;
        if (!first)
            puts_(b, ",");
        first = false;
        if (what == 0) {
            key(b, in, "status");
            puts_(b, num);
        } else if (what == 1) {
            key(b, in, "error");
            puts_(b, "{");
            unsigned eo = take(in);
            key(b, in, "root_cause");
            puts_(b, "[{\"type\":\"root\",\"reason\":\"r\"}],");
            if (eo & 1) {
                key(b, in, "caused_by");
                noise(b, in, 4);
                puts_(b, ",");
            }
            if (eo & 2) {
                key(b, in, "reason");
                string(b, in, reason, &rlen);
                puts_(b, ",");
                key(b, in, "type");
                string(b, in, type, &tlen);
            } else {
                key(b, in, "type");
                string(b, in, type, &tlen);
                puts_(b, ",");
                key(b, in, "reason");
                string(b, in, reason, &rlen);
            }
            if (eo & 4) {
                puts_(b, ",");
                key(b, in, "caused_by");
                puts_(b, "{\"type\":\"inner\",\"reason\":\"inner\",\"caused_by\":{\"type\":\"x\"}}");
            }
            puts_(b, "}");
        } else if (what == 2) {
            key(b, in, "_index");
            puts_(b, "\"logs-2026.12.06\",");
            key(b, in, "_shards");
            puts_(b, "{\"total\":2,\"successful\":1,\"failed\":0}");
        } else {
            key(b, in, "_id");
            noise(b, in, 1);
        }
    }
    if (first) { /* nothing written: at least the status */
        key(b, in, "status");
        puts_(b, num);
    }
    ws(b, in);
    puts_(b, "}}");
    ws(b, in);
    /* The expected texts: decoded, cut at a character boundary. */
    size_t cut[2] = {tlen, rlen};
    const char *src[2] = {type, reason};
    for (int k = 0; k < 2; k++) {
        if (cut[k] > LV_ES_BULK_TEXT) {
            cut[k] = LV_ES_BULK_TEXT;
            while ((src[k][cut[k]] & 0xC0) == 0x80)
                cut[k]--;
        }
    }
    want->type_len = cut[0];
    want->reason_len = cut[1];
    memcpy(want->type, type, cut[0]);
    memcpy(want->reason, reason, cut[1]);
}

/* ---- the target ------------------------------------------------------------- */

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_es_bulk: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    struct in in = {data + 2, size - 2};
    /* Chunks of 1 to 64 bytes (tokens cut everywhere) or of 256 bytes and up. */
    size_t c = data[0] >> 1;
    size_t chunk = c < 64 ? c + 1 : (c - 63) * 256;
    static struct seen whole, chunked;
    whole.n = chunked.n = 0;
    whole.limit = chunked.limit = data[1] < 0xF0 ? MAX_SEEN : data[1] & 0x0F;

    if (!(data[0] & 1)) {
        const char *text = (const char *)in.p;
        enum lv_es_bulk_result a = run(text, in.n, in.n ? in.n : 1, &whole);
        enum lv_es_bulk_result b = run(text, in.n, chunk, &chunked);
        check(a == b && whole.n == chunked.n, "the chunking changed the result");
        for (size_t i = 0; i < whole.n; i++)
            check(same_items(&whole.items[i], &chunked.items[i]), "the chunking changed an item");
        return 0;
    }

    static struct item want[MAX_ITEMS];
    struct lv_buf b;
    lv_buf_init(&b, 4096, 0);
    unsigned shape = take(&in);
    size_t n = take(&in) % (MAX_ITEMS + 1);
    int errors = shape & 3;          /* 0 absent, 1 false before, 2 true before, 3 after */
    bool cut = shape & 4;
    ws(&b, &in);
    puts_(&b, "{");
    key(&b, &in, "took");
    puts_(&b, "30,");
    if (errors == 1 || errors == 2) {
        key(&b, &in, "errors");
        puts_(&b, errors == 1 ? "false," : "true,");
    }
    key(&b, &in, "items");
    puts_(&b, "[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            puts_(&b, ",");
        item(&b, &in, &want[i]);
    }
    puts_(&b, "]");
    if (errors == 3) {
        puts_(&b, ",");
        key(&b, &in, "errors");
        puts_(&b, take(&in) & 1 ? "false" : "true");
    }
    ws(&b, &in);
    puts_(&b, "}");
    size_t len = b.len;
    size_t items_end = len; /* where a cut leaves the answer incomplete */
    if (cut)
        len = (take(&in) | take(&in) << 8) % items_end; /* before the closing brace */

    enum lv_es_bulk_result r = run(b.data, len, chunk, &chunked);
    enum lv_es_bulk_result r1 = run(b.data, len, len ? len : 1, &whole);
    check(r == r1 && whole.n == chunked.n, "the chunking changed the result");
    if (errors == 1) {
        /* Either the "false" was read (ALL_OK, no item), or the cut came first. */
        check(r == LV_ES_BULK_ALL_OK ? chunked.n == 0 : cut && r == LV_ES_BULK_BAD,
              "\"errors\":false before the items is not ALL_OK");
    } else {
        check(r != LV_ES_BULK_ALL_OK, "ALL_OK without \"errors\":false before the items");
        size_t expect = n < chunked.limit ? n : chunked.limit;
        if (!cut) {
            check(chunked.n == expect, "not every item was reported");
            check(r == (n > chunked.limit ? LV_ES_BULK_BAD : LV_ES_BULK_ITEMS),
                  "a complete answer's result");
        } else {
            check(chunked.n <= expect, "more items than were written");
            check(r == LV_ES_BULK_BAD, "an answer cut short was not BAD");
        }
        for (size_t i = 0; i < chunked.n; i++) {
            if (!same_items(&chunked.items[i], &want[i])) {
                fprintf(stderr, "item %zu: status %ld (want %ld), type %zu bytes (want %zu), "
                        "reason %zu bytes (want %zu)\n", i, chunked.items[i].status,
                        want[i].status, chunked.items[i].type_len, want[i].type_len,
                        chunked.items[i].reason_len, want[i].reason_len);
                check(false, "an item differs from what was written");
            }
        }
    }
    lv_buf_free(&b);
    return 0;
}
