/*
 * Field reading (the contract is in field.h). The scanner skips what it does
 * not need in a tight loop over the bytes that matter to JSON structure, and
 * finds a string's end by memchr, counting the backslashes before a quote.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "field.h"
#include "json_write.h"

static size_t ws(const char *s, size_t i, size_t n)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* Just past the closing quote of the string that starts at s[i]. */
static size_t str_end(const char *s, size_t i, size_t n)
{
    for (i++; i < n; i++) {
        const char *q = memchr(s + i, '"', n - i);
        if (!q)
            return n;
        i = (size_t)(q - s);
        size_t bs = 0;
        while (bs < i && s[i - 1 - bs] == '\\')
            bs++;
        if (bs % 2 == 0)
            return i + 1;
    }
    return n;
}

static const unsigned char structural[256] = {
    ['"'] = 1, ['{'] = 1, ['}'] = 1, ['['] = 1, [']'] = 1, [','] = 1,
};

/* Just past the value that starts at s[i]. */
static size_t value_end(const char *s, size_t i, size_t n)
{
    int depth = 0;
    while (i < n) {
        while (i < n && !structural[(unsigned char)s[i]])
            i++;
        if (i == n)
            break;
        char ch = s[i];
        if (ch == '"') {
            i = str_end(s, i, n);
            if (depth == 0)
                return i;
            continue;
        }
        if (ch == '{' || ch == '[') {
            depth++;
        } else if (ch == '}' || ch == ']') {
            if (depth == 0)
                return i;
            if (--depth == 0)
                return i + 1;
        } else if (depth == 0 && ch == ',') {
            return i;
        }
        i++;
    }
    return n;
}

/* Key `k` names all of the rest of `path` (1), a leading segment of it (2),
 * or neither (0). */
static int key_match(const char *k, size_t klen, const char *path, size_t plen)
{
    if (klen > plen || (klen < plen && path[klen] != '.') || memcmp(k, path, klen))
        return 0;
    return klen == plen ? 1 : 2;
}

/* The object at s[i] ('{'); prefix[f]: how much of path f the enclosing
 * keys matched, SIZE_MAX when they did not. */
static void walk(const char *s, size_t i, size_t n, const struct lv_field_path *paths, size_t np,
                 const size_t *prefix, struct lv_field *out, int depth)
{
    size_t sub[LV_FIELD_MAX];
    for (i = ws(s, i + 1, n); i < n && s[i] == '"';) {
        size_t k0 = i + 1, k1 = str_end(s, i, n) - 1;
        i = ws(s, k1 + 1, n);
        i = ws(s, i < n && s[i] == ':' ? i + 1 : i, n);
        size_t v0 = i, v1 = value_end(s, i, n);
        bool descend = false;
        for (size_t f = 0; f < np; f++) {
            sub[f] = SIZE_MAX;
            if (prefix[f] == SIZE_MAX)
                continue;
            int m = key_match(s + k0, k1 - k0, paths[f].path + prefix[f], paths[f].len - prefix[f]);
            if (m == 2)
                sub[f] = prefix[f] + (k1 - k0) + 1;
            if (m == 1 && !out[f].p && v0 < n && s[v0] != '{' && s[v0] != '[' && v1 > v0) {
                out[f].string = s[v0] == '"';
                out[f].p = s + v0 + out[f].string;
                out[f].len = v1 - v0 - 2 * out[f].string;
                while (!out[f].string && out[f].len &&
                       strchr(" \t\r\n", out[f].p[out[f].len - 1]))
                    out[f].len--; /* a number's end is where the next ',' or '}' is */
            }
            descend |= m == 2;
        }
        if (descend && v0 < n && s[v0] == '{' && depth < 8)
            walk(s, v0, v1, paths, np, sub, out, depth + 1);
        bool all = true;
        for (size_t f = 0; f < np && all; f++)
            all = out[f].p != NULL;
        if (all)
            return; /* the rest of the record need not be read */
        i = ws(s, v1, n);
        if (i < n && s[i] == ',')
            i = ws(s, i + 1, n);
    }
}

void lv_field_read(const char *json, size_t len, const struct lv_field_path *paths, size_t n,
                   struct lv_field *out)
{
    size_t prefix[LV_FIELD_MAX] = {0};
    n = n < LV_FIELD_MAX ? n : LV_FIELD_MAX;
    memset(out, 0, n * sizeof *out);
    size_t i = ws(json, 0, len);
    if (i < len && json[i] == '{')
        walk(json, i, len, paths, n, prefix, out, 0);
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static unsigned long hex4(const char *p)
{
    unsigned long v = 0;
    for (int k = 0; k < 4; k++) {
        int d = hexval(p[k]);
        if (d < 0)
            return 0xFFFD;
        v = v << 4 | (unsigned)d;
    }
    return v;
}

size_t lv_field_unescape(const struct lv_field *f, char *dst, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < f->len && o + 4 <= cap; i++) {
        char ch = f->p[i];
        if (!f->string || ch != '\\' || i + 1 == f->len) {
            dst[o++] = ch;
            continue;
        }
        ch = f->p[++i];
        if (ch == 'u' && i + 4 < f->len) {
            unsigned long cp = hex4(f->p + i + 1);
            i += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && i + 6 < f->len && f->p[i + 1] == '\\' &&
                f->p[i + 2] == 'u') {
                unsigned long lo = hex4(f->p + i + 3);
                if (lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    i += 6;
                }
            }
            o += lv_utf8_put(cp >= 0xD800 && cp < 0xE000 ? 0xFFFD : cp, dst + o);
            continue;
        }
        dst[o++] = ch == 'n' ? '\n' : ch == 't' ? '\t' : ch == 'r' ? '\r' : ch == 'b' ? '\b'
                   : ch == 'f' ? '\f' : ch;
    }
    /* An escape's character is never cut (o + 4 <= cap held before it), but
     * the text's own multi-byte characters are copied byte by byte: the
     * stop may fall inside one, which is dropped (Loki refuses a push with a
     * label that is not UTF-8, and every record in it). */
    size_t k = o;
    while (k > 0 && o - k < 3 && ((unsigned char)dst[k - 1] & 0xC0) == 0x80)
        k--;
    if (k > 0) {
        unsigned char lead = (unsigned char)dst[k - 1];
        size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
        if (k - 1 + need > o)
            o = k - 1;
    }
    return o;
}
