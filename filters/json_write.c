/*
 * JSON string escaping with UTF-8 repair. Runs of plain ASCII are copied in
 * one memcpy; only quotes, backslashes, control bytes and non-ASCII bytes
 * take the slow branch.
 */
#include "json_write.h"

/* 0: copy as is; 1: needs escaping; 2: non-ASCII, validate. */
static const unsigned char byte_class[256] = {
    [0 ... 0x1f] = 1, ['"'] = 1, ['\\'] = 1, [0x7f] = 0, [0x80 ... 0xff] = 2,
};

size_t lv_utf8_put(unsigned long cp, char *out)
{
    unsigned char *b = (unsigned char *)out;
    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        b[0] = (unsigned char)(0xc0 | cp >> 6);
        b[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        b[0] = (unsigned char)(0xe0 | cp >> 12);
        b[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        b[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    b[0] = (unsigned char)(0xf0 | cp >> 18);
    b[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
    b[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
    b[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

size_t lv_utf8_seq_len(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (avail < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

static int put_escape(struct lv_buf *out, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    char esc[6] = {'\\', 0, 0, 0, 0, 0};
    size_t n = 2;
    switch (c) {
    case '"': esc[1] = '"'; break;
    case '\\': esc[1] = '\\'; break;
    case '\n': esc[1] = 'n'; break;
    case '\r': esc[1] = 'r'; break;
    case '\t': esc[1] = 't'; break;
    case '\b': esc[1] = 'b'; break;
    case '\f': esc[1] = 'f'; break;
    default:
        memcpy(esc + 1, "u00", 3);
        esc[4] = hex[c >> 4];
        esc[5] = hex[c & 15];
        n = 6;
    }
    return lv_buf_append(out, esc, n);
}

int lv_json_string_body(struct lv_buf *out, const char *s, size_t len, bool *repaired)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        const unsigned char *run = p;
        while (p < end && byte_class[*p] == 0)
            p++;
        if (p > run && lv_buf_append(out, run, (size_t)(p - run)) < 0)
            return -ENOBUFS;
        if (p == end)
            break;
        int rc;
        if (byte_class[*p] == 1) {
            rc = put_escape(out, *p++);
        } else {
            size_t n = lv_utf8_seq_len(p, (size_t)(end - p));
            if (n) {
                rc = lv_buf_append(out, p, n);
                p += n;
            } else {
                rc = lv_buf_append(out, "\xef\xbf\xbd", 3);
                p++;
                if (repaired)
                    *repaired = true;
            }
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

int lv_json_string(struct lv_buf *out, const char *s, size_t len, bool *repaired)
{
    if (lv_buf_putc(out, '"') < 0 || lv_json_string_body(out, s, len, repaired) < 0)
        return -ENOBUFS;
    return lv_buf_putc(out, '"');
}
