/*
 * Each block carries its size in a header so that realloc can copy; the last
 * block handed out grows in place when there is room, which is what yajl's
 * doubling buffers do most of the time.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "logveil/util.h"

struct hdr {
    size_t size;
    size_t big; /* 1 when malloc'd outside the block */
};

#define ALIGN 16
#define HDR ((sizeof(struct hdr) + ALIGN - 1) & ~(size_t)(ALIGN - 1))

void lv_arena_init(struct lv_arena *a, size_t size)
{
    memset(a, 0, sizeof *a);
    a->base = lv_xmalloc(size);
    a->size = size;
}

void lv_arena_reset(struct lv_arena *a)
{
    for (size_t i = 0; i < a->nbig; i++)
        free(a->big[i]);
    a->nbig = 0;
    a->used = 0;
}

void lv_arena_free(struct lv_arena *a)
{
    if (!a->base)
        return;
    lv_arena_reset(a);
    free(a->big);
    free(a->base);
    memset(a, 0, sizeof *a);
}

static struct hdr *hdr_of(void *p)
{
    return (struct hdr *)((char *)p - HDR);
}

static void *big_alloc(struct lv_arena *a, size_t n, void *old)
{
    char *raw;
    if (old) {
        char *oldraw = (char *)hdr_of(old);
        raw = lv_xrealloc(oldraw, HDR + n);
        for (size_t i = 0; i < a->nbig; i++)
            if (a->big[i] == oldraw)
                a->big[i] = raw;
    } else {
        raw = lv_xmalloc(HDR + n);
        if (a->nbig == a->capbig) {
            a->capbig = a->capbig ? a->capbig * 2 : 8;
            a->big = lv_xrealloc(a->big, a->capbig * sizeof *a->big);
        }
        a->big[a->nbig++] = raw;
    }
    struct hdr *h = (struct hdr *)raw;
    h->size = n;
    h->big = 1;
    return raw + HDR;
}

static void *arena_malloc(void *ctx, size_t n)
{
    struct lv_arena *a = ctx;
    size_t need = HDR + ((n + ALIGN - 1) & ~(size_t)(ALIGN - 1));
    if (a->size - a->used < need)
        return big_alloc(a, n, NULL);
    struct hdr *h = (struct hdr *)(a->base + a->used);
    h->size = n;
    h->big = 0;
    a->used += need;
    return (char *)h + HDR;
}

static void *arena_realloc(void *ctx, void *p, size_t n)
{
    struct lv_arena *a = ctx;
    if (!p)
        return arena_malloc(a, n);
    struct hdr *h = hdr_of(p);
    if (h->big)
        return big_alloc(a, n, p);
    size_t start = (size_t)((char *)h - a->base);
    size_t oldneed = HDR + ((h->size + ALIGN - 1) & ~(size_t)(ALIGN - 1));
    size_t need = HDR + ((n + ALIGN - 1) & ~(size_t)(ALIGN - 1));
    if (start + oldneed == a->used && start + need <= a->size) {
        a->used = start + need; /* the last block grows in place */
        h->size = n;
        return p;
    }
    void *q = arena_malloc(a, n);
    memcpy(q, p, h->size < n ? h->size : n);
    return q;
}

static void arena_free_one(void *ctx, void *p)
{
    (void)ctx;
    (void)p; /* everything goes at the next reset */
}

void lv_arena_yajl_funcs(struct lv_arena *a, yajl_alloc_funcs *funcs)
{
    funcs->malloc = arena_malloc;
    funcs->realloc = arena_realloc;
    funcs->free = arena_free_one;
    funcs->ctx = a;
}
