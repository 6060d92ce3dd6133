/*
 * Allocation that aborts on OOM, the capped byte buffer, clocks, and the
 * level names every folder shares.
 */
#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "logveil/record.h"
#include "logveil/util.h"

static void oom(size_t n)
{
    fprintf(stderr, "logveil: out of memory allocating %zu bytes\n", n);
    abort();
}

void *lv_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *lv_xcalloc(size_t count, size_t n)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (!p)
        oom(count * n);
    return p;
}

void *lv_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *lv_xstrdup(const char *s)
{
    return lv_xstrndup(s, strlen(s));
}

char *lv_xstrndup(const char *s, size_t n)
{
    char *p = lv_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void lv_buf_init(struct lv_buf *b, size_t initial, size_t limit)
{
    b->limit = limit ? limit : SIZE_MAX;
    b->cap = initial < b->limit ? initial : b->limit;
    b->data = b->cap ? lv_xmalloc(b->cap) : NULL;
    b->len = 0;
}

void lv_buf_free(struct lv_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int lv_buf_grow(struct lv_buf *b, size_t extra)
{
    size_t limit = b->limit ? b->limit : SIZE_MAX;
    if (extra > limit || b->len > limit - extra)
        return -ENOBUFS;
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
    if (cap > limit)
        cap = limit;
    b->data = lv_xrealloc(b->data, cap);
    b->cap = cap;
    return 0;
}

/* The file may hold a secret (a NAME_file key, or a configuration with
 * one inline), so the buffer is sized from fstat() to need no growth, which
 * would leave a copy behind in freed memory, and is wiped before it is
 * freed. */
int lv_read_file(const char *path, size_t max, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = 0;
    struct stat st;
    size_t initial = 256;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= 0)
        initial = (uint64_t)st.st_size < max ? (size_t)st.st_size + 1 : max + 1;
    struct lv_buf b;
    lv_buf_init(&b, initial, max + 1);
    for (;;) {
        if (lv_buf_reserve(&b, 1) < 0) {
            rc = -EFBIG;
            break;
        }
        ssize_t n = read(fd, b.data + b.len, b.cap - b.len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
        b.len += (size_t)n;
    }
    close(fd);
    if (rc == 0 && b.len > max)
        rc = -EFBIG;
    if (rc == 0) {
        *out = lv_xstrndup(b.data ? b.data : "", b.len);
        *len = b.len;
    }
    if (b.data)
        explicit_bzero(b.data, b.cap);
    lv_buf_free(&b);
    return rc;
}

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t lv_now_ns(void)
{
    return clock_ns(CLOCK_REALTIME);
}

int64_t lv_mono_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

bool lv_strieq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++)
        if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i]))
            return false;
    return true;
}

