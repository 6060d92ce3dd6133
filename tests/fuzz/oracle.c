/*
 * The oracle: a recursive-descent reader of strict JSON, and the key check
 * that walks records, the strings in them and the JSON found in text. It is
 * deliberately plain and slow (a malloc per decoded string): it only has to
 * be right, and different from the product.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oracle.h"

#define MAX_DEPTH 512   /* of one JSON text; records are nested 64 deep at most */
#define MAX_LEVELS 5    /* JSON inside strings inside JSON ..., levels checked */

/* ---- rules ------------------------------------------------------------------------ */

static const char *const default_contains[] = {
    "password", "passwd", "passphrase", "secret", "token", "apikey",
    "privatekey", "credential", "authorization", "cookie", "sessionid",
};
static const char *const default_exact[] = {"pwd", "pin", "otp"};

const struct oracle_rules *oracle_default_rules(bool drop)
{
    static const struct oracle_rules rules[2] = {
        {default_contains, sizeof default_contains / sizeof *default_contains, default_exact,
         sizeof default_exact / sizeof *default_exact, "[REDACTED]", false},
        {default_contains, sizeof default_contains / sizeof *default_contains, default_exact,
         sizeof default_exact / sizeof *default_exact, "[REDACTED]", true},
    };
    return &rules[drop];
}

bool oracle_key_matches(const struct oracle_rules *rules, const char *key, size_t n)
{
    char *norm = malloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = key[i];
        if (c == '_' || c == '-' || c == '.')
            continue;
        norm[k++] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    norm[k] = '\0';
    bool match = false;
    for (size_t i = 0; i < rules->nexact && !match; i++)
        match = k == strlen(rules->exact[i]) && memcmp(norm, rules->exact[i], k) == 0;
    for (size_t i = 0; i < rules->ncontains && !match; i++) {
        size_t wl = strlen(rules->contains[i]);
        for (size_t at = 0; at + wl <= k && !match; at++)
            match = memcmp(norm + at, rules->contains[i], wl) == 0;
    }
    free(norm);
    return match;
}

/* ---- reading ------------------------------------------------------------------------ */

struct reader {
    const unsigned char *s;
    size_t n, i;
    int depth;
    const char *err;
    size_t err_at;
};

static bool fail_at(struct reader *p, const char *why)
{
    if (!p->err) {
        p->err = why;
        p->err_at = p->i;
    }
    return false;
}

static void skip_blanks(struct reader *p)
{
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' ||
                           p->s[p->i] == '\r'))
        p->i++;
}

/* Length of the strict UTF-8 sequence at s (avail bytes), 0 when invalid. */
static size_t utf8_seq(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xbf;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4;
    else
        return 0;
    if (c == 0xe0)
        lo = 0xa0;
    else if (c == 0xed)
        hi = 0x9f;
    else if (c == 0xf0)
        lo = 0x90;
    else if (c == 0xf4)
        hi = 0x8f;
    if (avail < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t k = 2; k < len; k++)
        if (s[k] < 0x80 || s[k] > 0xbf)
            return 0;
    return len;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The code unit of "\uXXXX" at s[i] (the backslash), or -1. */
static long unit(const unsigned char *s, size_t n, size_t i)
{
    if (i + 6 > n || s[i] != '\\' || s[i + 1] != 'u')
        return -1;
    long v = 0;
    for (size_t k = 2; k < 6; k++) {
        int d = hexval(s[i + k]);
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static size_t put_utf8(unsigned long cp, char *out)
{
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xc0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xe0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* One escape at s[i] (the backslash): decoded into out, *used raw bytes.
 * Returns the decoded length, or -1 when it is not a JSON escape. */
static long escape(const unsigned char *s, size_t n, size_t i, char *out, size_t *used)
{
    if (i + 1 >= n)
        return -1;
    const char *simple = "\"\\/bfnrt", *value = "\"\\/\b\f\n\r\t";
    const char *at = s[i + 1] ? strchr(simple, s[i + 1]) : NULL;
    if (at) {
        out[0] = value[at - simple];
        *used = 2;
        return 1;
    }
    long u = unit(s, n, i);
    if (u < 0)
        return -1;
    if (u >= 0xd800 && u <= 0xdbff) {
        long lo = unit(s, n, i + 6);
        if (lo >= 0xdc00 && lo <= 0xdfff) {
            *used = 12;
            return (long)put_utf8(0x10000 + (((unsigned long)u - 0xd800) << 10) +
                                      ((unsigned long)lo - 0xdc00),
                                  out);
        }
        u = 0xfffd; /* unpaired: the next escape is read on its own */
    } else if (u >= 0xdc00 && u <= 0xdfff) {
        u = 0xfffd;
    }
    *used = 6;
    return (long)put_utf8((unsigned long)u, out);
}

long oracle_decode(const char *str, size_t n, char *out)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] == '\\') {
            size_t used;
            long d = escape(s, n, i, out + k, &used);
            if (d < 0)
                return -1;
            k += (size_t)d;
            i += used;
        } else if (s[i] < 0x20 || s[i] == '"') {
            return -1;
        } else {
            size_t len = utf8_seq(s + i, n - i);
            if (!len)
                return -1;
            memcpy(out + k, s + i, len);
            k += len;
            i += len;
        }
    }
    return (long)k;
}

/* A string token at p->i: its decoded text in a new buffer (*out, *len),
 * or false. */
static bool read_string(struct reader *p, char **out, size_t *len)
{
    if (p->i >= p->n || p->s[p->i] != '"')
        return fail_at(p, "a string was expected");
    size_t start = ++p->i;
    while (p->i < p->n && p->s[p->i] != '"') {
        if (p->s[p->i] == '\\')
            p->i++;
        p->i++;
    }
    if (p->i >= p->n) {
        p->i = p->n;
        return fail_at(p, "an unterminated string");
    }
    char *dec = malloc(p->i - start + 1);
    long d = oracle_decode((const char *)p->s + start, p->i - start, dec);
    if (d < 0) {
        free(dec);
        p->i = start;
        return fail_at(p, "a string with an invalid escape, control byte or UTF-8");
    }
    p->i++;
    *out = dec;
    *len = (size_t)d;
    return true;
}

static bool read_digits(struct reader *p)
{
    size_t from = p->i;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
        p->i++;
    return p->i > from;
}

static bool read_number(struct reader *p)
{
    if (p->i < p->n && p->s[p->i] == '-')
        p->i++;
    if (p->i < p->n && p->s[p->i] == '0')
        p->i++;
    else if (!(p->i < p->n && p->s[p->i] >= '1' && p->s[p->i] <= '9') || !read_digits(p))
        return fail_at(p, "an invalid number");
    if (p->i < p->n && p->s[p->i] == '.' && (p->i++, !read_digits(p)))
        return fail_at(p, "an invalid fraction");
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-'))
            p->i++;
        if (!read_digits(p))
            return fail_at(p, "an invalid exponent");
    }
    return true;
}

static bool read_literal(struct reader *p, const char *lit)
{
    size_t len = strlen(lit);
    if (p->n - p->i < len || memcmp(p->s + p->i, lit, len) != 0)
        return fail_at(p, "an invalid literal");
    p->i += len;
    return true;
}

/* ---- the key check ---------------------------------------------------------------- */

struct check {
    const struct oracle_rules *rules;
    const char *why;
    char *detail;
    size_t cap;
};

static void broken(struct check *ck, const char *why, const char *key, size_t n)
{
    if (ck->why)
        return;
    ck->why = why;
    snprintf(ck->detail, ck->cap, "%.*s", (int)(n > 60 ? 60 : n), key);
}

static void check_text(struct check *ck, const char *t, size_t n, int level);

static bool read_value(struct reader *p, struct check *ck, int level, char **str, size_t *slen);

/* The text of a string the text ends inside, decoded as far as it is valid
 * (a cut escape, or anything invalid, ends it), is text too. */
static void check_partial(struct check *ck, const char *t, size_t n, int level)
{
    const unsigned char *s = (const unsigned char *)t;
    char *out = malloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        size_t used, len;
        long d;
        if (s[i] == '\\') {
            if ((d = escape(s, n, i, out + k, &used)) < 0)
                break;
            k += (size_t)d;
            i += used;
        } else if (s[i] < 0x20 || !(len = utf8_seq(s + i, n - i))) {
            break;
        } else {
            memcpy(out + k, s + i, len);
            k += len;
            i += len;
        }
    }
    check_text(ck, out, k, level);
    free(out);
}

/* What follows a matching key whose value did not end: the replacement,
 * bare or after a quote, to the end of the text, or nothing. */
static void check_unfinished(struct check *ck, const struct reader *p, size_t key_end,
                             const char *key, size_t klen)
{
    size_t i = key_end; /* (a control byte counts as a blank, as it does for the product) */
    while (i < p->n && (p->s[i] <= 0x20 || p->s[i] == ':'))
        i++;
    const char *rest = (const char *)p->s + i;
    size_t n = p->n - i, rl = strlen(ck->rules->replacement);
    bool quoted = n && *rest == '"';
    if (quoted) {
        rest++;
        n--;
    }
    /* The value starts with the mask: a cut value is masked to the end;
     * JSON broken elsewhere may go on after it (a rule on decoded text can
     * mask across the encoded JSON's quotes), but not with the value. */
    bool masked = n >= rl && memcmp(rest, ck->rules->replacement, rl) == 0;
    if (ck->rules->drop)
        broken(ck, "a member the drop action removes is there (its value cut short)", key, klen);
    else if (n && !masked)
        broken(ck, "the value of a matching key, cut short, does not start with the mask", key,
               klen);
}

static bool read_object(struct reader *p, struct check *ck, int level)
{
    p->i++;
    skip_blanks(p);
    if (p->i < p->n && p->s[p->i] == '}') {
        p->i++;
        return true;
    }
    for (;;) {
        char *key;
        size_t klen;
        skip_blanks(p);
        if (!read_string(p, &key, &klen))
            return false;
        size_t key_end = p->i;
        bool match = ck && oracle_key_matches(ck->rules, key, klen);
        skip_blanks(p);
        bool ok = p->i < p->n && p->s[p->i] == ':', colon = ok;
        if (ok) {
            p->i++;
            skip_blanks(p);
        }
        char *str = NULL;
        size_t slen = 0;
        /* A matching key's value is not searched: it must be the mask. */
        if (ok)
            ok = read_value(p, match ? NULL : ck, level, &str, &slen);
        else
            fail_at(p, "':' was expected");
        if (match && !ok) {
            if (colon) /* (without one, this key has no value) */
                check_unfinished(ck, p, key_end, key, klen);
        } else if (match && ck->rules->drop) {
            broken(ck, "a member the drop action removes is there", key, klen);
        } else if (match && !(str && slen == strlen(ck->rules->replacement) &&
                              memcmp(str, ck->rules->replacement, slen) == 0)) {
            broken(ck, "the value of a matching key is not the mask", key, klen);
        }
        free(str);
        free(key);
        if (!ok || (ck && ck->why))
            return false;
        skip_blanks(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->i < p->n && p->s[p->i] == '}') {
            p->i++;
            return true;
        }
        return fail_at(p, "',' or '}' was expected");
    }
}

static bool read_array(struct reader *p, struct check *ck, int level)
{
    p->i++;
    skip_blanks(p);
    if (p->i < p->n && p->s[p->i] == ']') {
        p->i++;
        return true;
    }
    for (;;) {
        skip_blanks(p);
        if (!read_value(p, ck, level, NULL, NULL) || (ck && ck->why))
            return false;
        skip_blanks(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->i < p->n && p->s[p->i] == ']') {
            p->i++;
            return true;
        }
        return fail_at(p, "',' or ']' was expected");
    }
}

/* One value at p->i. A string's decoded text is searched as text (ck), and
 * handed back in *str when asked for (else freed). */
static bool read_value(struct reader *p, struct check *ck, int level, char **str, size_t *slen)
{
    if (p->i >= p->n)
        return fail_at(p, "a value was expected");
    bool ok;
    switch (p->s[p->i]) {
    case '{':
    case '[':
        if (++p->depth > MAX_DEPTH)
            return fail_at(p, "nested too deep for the oracle");
        ok = p->s[p->i] == '{' ? read_object(p, ck, level) : read_array(p, ck, level);
        p->depth--;
        return ok;
    case '"': {
        char *s;
        size_t n;
        size_t start = p->i;
        if (!read_string(p, &s, &n)) {
            if (ck && p->i == p->n) /* cut inside it: what it holds so far */
                check_partial(ck, (const char *)p->s + start + 1, p->n - start - 1, level + 1);
            return false;
        }
        if (ck)
            check_text(ck, s, n, level + 1);
        if (str) {
            *str = s;
            *slen = n;
        } else {
            free(s);
        }
        return true;
    }
    case 't':
        return read_literal(p, "true");
    case 'f':
        return read_literal(p, "false");
    case 'n':
        return read_literal(p, "null");
    default:
        return read_number(p);
    }
}

/* JSON inside text: a parse from each '{' or '[' (the next from where it
 * stopped), and the text itself when it is one JSON string. */
static void check_text(struct check *ck, const char *t, size_t n, int level)
{
    if (level > MAX_LEVELS || ck->why)
        return;
    for (size_t i = 0; i < n && !ck->why;) {
        if (t[i] != '{' && t[i] != '[') {
            i++;
            continue;
        }
        struct reader p = {(const unsigned char *)t, n, i, 0, NULL, 0};
        read_value(&p, ck, level, NULL, NULL);
        i = p.i > i ? p.i : i + 1;
    }
    size_t a = 0, b = n;
    while (a < b && strchr(" \t\r\n", t[a]) && t[a])
        a++;
    while (b > a && strchr(" \t\r\n", t[b - 1]) && t[b - 1])
        b--;
    if (b - a >= 2 && t[a] == '"' && t[b - 1] == '"' && !ck->why) {
        struct reader p = {(const unsigned char *)t, b, a, 0, NULL, 0};
        char *s;
        size_t len;
        if (read_string(&p, &s, &len)) {
            if (p.i == b)
                check_text(ck, s, len, level + 1);
            free(s);
        }
    }
}

/* ---- entry points ------------------------------------------------------------------ */

const char *oracle_validate(const char *s, size_t n, size_t *at)
{
    struct reader p = {(const unsigned char *)s, n, 0, 0, NULL, 0};
    skip_blanks(&p);
    if (p.i >= n || s[p.i] != '{')
        fail_at(&p, "the root is not an object");
    else if (read_value(&p, NULL, 0, NULL, NULL)) {
        skip_blanks(&p);
        if (p.i != n)
            fail_at(&p, "bytes after the root object");
    }
    if (at)
        *at = p.err_at;
    return p.err;
}

const char *oracle_check_keys(const char *s, size_t n, const struct oracle_rules *rules,
                              char *detail, size_t cap)
{
    struct check ck = {rules, NULL, detail, cap};
    struct reader p = {(const unsigned char *)s, n, 0, 0, NULL, 0};
    skip_blanks(&p);
    read_value(&p, &ck, 0, NULL, NULL);
    return ck.why;
}

/* ---- every text -------------------------------------------------------------------- */

struct each {
    oracle_text_fn *fn;
    void *arg;
    bool stop;
};

/* Text with valid JSON escapes, decoded (others kept): what a string holding
 * serialised text says once more. NULL when there is no escape. */
static char *unescape_text(const char *t, size_t n, size_t *len)
{
    const unsigned char *s = (const unsigned char *)t;
    char *out = malloc(n + 1);
    size_t k = 0;
    bool any = false;
    for (size_t i = 0; i < n;) {
        size_t used;
        long d = s[i] == '\\' ? escape(s, n, i, out + k, &used) : -1;
        if (d < 0) {
            out[k++] = t[i++];
            continue;
        }
        any = true;
        k += (size_t)d;
        i += used;
    }
    if (!any) {
        free(out);
        return NULL;
    }
    *len = k;
    return out;
}

static void each_text(struct each *e, const char *t, size_t n, int level)
{
    if (e->stop || level > MAX_LEVELS + 1)
        return;
    e->stop = e->fn(e->arg, t, n, false);
    size_t len;
    char *dec = unescape_text(t, n, &len);
    if (dec) {
        each_text(e, dec, len, level + 1);
        free(dec);
    }
}

/* The strings and numbers of one JSON value (the reader is strict; the
 * record was validated). */
static void each_value(struct each *e, struct reader *p)
{
    skip_blanks(p);
    if (p->i >= p->n || e->stop)
        return;
    unsigned char c = p->s[p->i];
    if (c == '"') {
        char *s;
        size_t n;
        if (read_string(p, &s, &n)) {
            each_text(e, s, n, 0);
            free(s);
        }
        return;
    }
    if (c == '{' || c == '[') {
        unsigned char close = c == '{' ? '}' : ']';
        p->i++;
        for (;;) {
            skip_blanks(p);
            if (p->i >= p->n || p->s[p->i] == close || e->stop) {
                p->i++;
                return;
            }
            each_value(e, p); /* a key, or a value */
            skip_blanks(p);
            if (p->i < p->n && (p->s[p->i] == ',' || p->s[p->i] == ':'))
                p->i++;
        }
    }
    size_t from = p->i;
    if (c == 't' || c == 'f' || c == 'n')
        read_literal(p, c == 't' ? "true" : c == 'f' ? "false" : "null");
    else if (read_number(p))
        e->stop = e->fn(e->arg, (const char *)p->s + from, p->i - from, true);
    if (p->i == from)
        p->i++;
}

void oracle_each_text(const char *s, size_t n, oracle_text_fn *fn, void *arg)
{
    struct each e = {fn, arg, false};
    struct reader p = {(const unsigned char *)s, n, 0, 0, NULL, 0};
    each_value(&e, &p);
}
