/*
 * Strict reading of JSON text. The copy check runs on every line that goes
 * out verbatim, so its common case (ASCII without control bytes) takes
 * 32 bytes per step; the rest runs only on lines that hold a backslash.
 */
#include <stdlib.h>

#include "json_text.h"
#include "json_write.h"

#if defined(__SSE2__)
#include <emmintrin.h>

/* Nonzero when a byte of the 32 at p is >= 0x80 or < 0x20: as signed bytes,
 * both are less than 0x20, so one compare finds them. */
static unsigned unusual32(const unsigned char *p)
{
    const __m128i limit = _mm_set1_epi8(0x20);
    __m128i a = _mm_loadu_si128((const __m128i *)p);
    __m128i b = _mm_loadu_si128((const __m128i *)(p + 16));
    return (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmplt_epi8(a, limit),
                                                    _mm_cmplt_epi8(b, limit)));
}
#endif

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* Nonzero when a byte of `w` is >= 0x80 or < 0x20. A borrow may set a bit
 * beside the right one, but never hides one: a hint, checked byte by byte. */
static uint64_t unusual(uint64_t w)
{
    return (w | (w - 0x20 * ONES)) & HIGHS;
}

#if !defined(__SSE2__)
static unsigned unusual32(const unsigned char *p)
{
    uint64_t x[4];
    memcpy(x, p, 32);
    return (unusual(x[0]) | unusual(x[1]) | unusual(x[2]) | unusual(x[3])) != 0;
}
#endif

/* One byte that is not plain printable ASCII: its UTF-8 sequence, or a
 * control byte JSON text may hold between tokens. The length consumed, or
 * 0 when the text may not be copied. */
static size_t odd_byte(const unsigned char *p, const unsigned char *end)
{
    if (*p >= 0x80)
        return lv_utf8_seq_len(p, (size_t)(end - p));
    if (*p < 0x20)
        return *p == '\t' || *p == '\n' || *p == '\r';
    return 1;
}

bool lv_json_copyable(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        uint64_t w;
        if (end - p >= 32 && !unusual32(p)) {
            p += 32;
            continue;
        }
        if (end - p >= 8 && (memcpy(&w, p, 8), !unusual(w))) {
            p += 8;
            continue;
        }
        size_t n = odd_byte(p, end);
        if (!n)
            return false;
        p += n;
    }
    return true;
}

static int hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The code unit of a \uXXXX escape at s[at] (the backslash), or -1. */
static long unit_at(const char *s, size_t len, size_t at)
{
    if (at + 6 > len || s[at] != '\\' || s[at + 1] != 'u')
        return -1;
    long v = 0;
    for (size_t i = 2; i < 6; i++) {
        int d = hex_digit((unsigned char)s[at + i]);
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

static bool is_high(long u)
{
    return u >= 0xd800 && u <= 0xdbff;
}

static bool is_low(long u)
{
    return u >= 0xdc00 && u <= 0xdfff;
}

const char *lv_json_fix_surrogates(const char *s, size_t len, struct lv_buf *scratch)
{
    char *copy = NULL;
    const char *bs = memchr(s, '\\', len);
    for (size_t i = bs ? (size_t)(bs - s) : len; i < len;) {
        if (s[i] != '\\') {
            i++;
            continue;
        }
        long u = unit_at(s, len, i);
        if (u < 0) {
            i += 2; /* any other escape, an escaped backslash included */
            continue;
        }
        if (is_high(u) && is_low(unit_at(s, len, i + 6))) {
            i += 12;
            continue;
        }
        if (is_high(u) || is_low(u)) {
            if (!copy) {
                scratch->len = 0;
                if (lv_buf_append(scratch, s, len) < 0)
                    return NULL;
                copy = scratch->data;
            }
            memcpy(copy + i + 2, "FFFD", 4);
        }
        i += 6;
    }
    return copy ? copy : s;
}

bool lv_json_has_escape(const char *s, size_t len)
{
    for (const char *p = s, *end = s + len; (p = memchr(p, '\\', (size_t)(end - p)));) {
        if (p + 1 == end)
            return false;
        switch (p[1]) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
            return true;
        case 'u':
            if (unit_at(s, len, (size_t)(p - s)) >= 0)
                return true;
        }
        p++;
    }
    return false;
}

/* The escape at s[i] (a backslash): its decoded bytes in b, their count in
 * *n, and the number of raw bytes it takes; 0 when it is not valid. */
static size_t decode_escape(const char *s, size_t len, size_t i, char *b, size_t *n)
{
    static const char simple[128] = {['"'] = '"', ['\\'] = '\\', ['/'] = '/', ['b'] = '\b',
                                      ['f'] = '\f', ['n'] = '\n', ['r'] = '\r', ['t'] = '\t'};
    if (i + 1 >= len)
        return 0;
    unsigned char c = (unsigned char)s[i + 1];
    if (c < 128 && simple[c]) {
        b[0] = simple[c];
        *n = 1;
        return 2;
    }
    long u = unit_at(s, len, i);
    if (u < 0)
        return 0;
    if (is_high(u)) {
        long lo = unit_at(s, len, i + 6);
        if (is_low(lo)) {
            *n = lv_utf8_put(0x10000 + ((unsigned long)(u - 0xd800) << 10) + (unsigned long)(lo - 0xdc00), b);
            return 12;
        }
    }
    *n = lv_utf8_put(is_high(u) || is_low(u) ? 0xfffd : (unsigned long)u, b);
    return 6;
}

static int map_reserve(uint32_t **map, size_t *mapcap, size_t need)
{
    if (*mapcap >= need)
        return 0;
    size_t cap = *mapcap ? *mapcap : 256;
    while (cap < need)
        cap *= 2;
    *map = lv_xrealloc(*map, cap * sizeof **map);
    *mapcap = cap;
    return 0;
}

int lv_json_unescape(const char *s, size_t len, bool lenient, struct lv_buf *out, uint32_t **map,
                     size_t *mapcap)
{
    out->len = 0;
    if (lv_buf_reserve(out, len) < 0)
        return -ENOBUFS; /* decoding never grows the text */
    if (map)
        map_reserve(map, mapcap, len + 1);
    for (size_t i = 0; i < len;) {
        const char *bs = memchr(s + i, '\\', len - i);
        size_t run = bs ? (size_t)(bs - s) - i : len - i;
        if (map)
            for (size_t k = 0; k < run; k++)
                (*map)[out->len + k] = (uint32_t)(i + k);
        memcpy(out->data + out->len, s + i, run);
        out->len += run;
        i += run;
        if (i == len)
            break;
        char b[4];
        size_t n = 1, used = decode_escape(s, len, i, b, &n);
        if (!used) {
            if (!lenient)
                return -EINVAL;
            b[0] = '\\';
            n = used = 1;
        }
        if (map)
            for (size_t k = 0; k < n; k++)
                (*map)[out->len + k] = (uint32_t)i;
        memcpy(out->data + out->len, b, n);
        out->len += n;
        i += used;
    }
    if (map)
        (*map)[out->len] = (uint32_t)len;
    return 0;
}
