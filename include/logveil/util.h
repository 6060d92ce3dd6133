/*
 * Small helpers shared by every folder: allocation that aborts on OOM, and a
 * byte buffer with a hard cap.
 *
 * Ownership: an lv_buf owns its bytes; lv_buf_free() releases them and leaves
 * an empty buffer that may be reused. Growth past `limit` is refused with
 * -ENOBUFS, never done: every buffer that grows from input has a cap.
 */
#ifndef LOGVEIL_UTIL_H
#define LOGVEIL_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define LV_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define lv_container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#define LV_LIKELY(x) __builtin_expect(!!(x), 1)
#define LV_UNLIKELY(x) __builtin_expect(!!(x), 0)

void *lv_xmalloc(size_t n);
void *lv_xcalloc(size_t count, size_t n);
void *lv_xrealloc(void *p, size_t n);
char *lv_xstrdup(const char *s);
char *lv_xstrndup(const char *s, size_t n);

struct lv_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t limit; /* hard cap on cap; 0 means SIZE_MAX */
};

void lv_buf_init(struct lv_buf *b, size_t initial, size_t limit);
void lv_buf_free(struct lv_buf *b);
/* Makes room for `extra` more bytes. 0, or -ENOBUFS when over the limit. */
int lv_buf_grow(struct lv_buf *b, size_t extra);

static inline int lv_buf_reserve(struct lv_buf *b, size_t extra)
{
    if (LV_LIKELY(b->cap - b->len >= extra))
        return 0;
    return lv_buf_grow(b, extra);
}

static inline int lv_buf_append(struct lv_buf *b, const void *p, size_t n)
{
    if (LV_UNLIKELY(lv_buf_reserve(b, n) < 0))
        return -ENOBUFS;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static inline int lv_buf_putc(struct lv_buf *b, char c)
{
    if (LV_UNLIKELY(lv_buf_reserve(b, 1) < 0))
        return -ENOBUFS;
    b->data[b->len++] = c;
    return 0;
}

/* Literals only: the "" makes anything else a compile error. */
#define lv_buf_puts(b, lit) lv_buf_append((b), "" lit, sizeof("" lit) - 1)

/* Reads a whole small file (secrets, label files). Caller frees *out. */
int lv_read_file(const char *path, size_t max, char **out, size_t *len);

/* The length of the secret or key a file holds: its bytes less one line
 * ending (LF or CRLF), which editors add and `echo` writes. Any other byte is
 * part of it: a raw key whose last byte is CR keeps it. */
static inline size_t lv_secret_file_len(const char *data, size_t len)
{
    if (len && data[len - 1] == '\n')
        len -= 1 + (len > 1 && data[len - 2] == '\r');
    return len;
}

/* Monotonic and wall clocks in nanoseconds. */
int64_t lv_now_ns(void);
int64_t lv_mono_ns(void);

/* ASCII case-insensitive comparison of two counted strings. */
bool lv_strieq(const char *a, size_t alen, const char *b, size_t blen);

#endif
