/*
 * A bump allocator for the per-line yajl handle, so the hot path does no
 * malloc: lv_arena_reset() after each line gives all memory back at once.
 * Requests that do not fit the fixed block (only very long lines) fall back
 * to malloc and are freed at the next reset.
 *
 * Ownership: the arena owns every block it hands out; nothing is freed one
 * by one.
 */
#ifndef LOGVEIL_FILTERS_ARENA_H
#define LOGVEIL_FILTERS_ARENA_H

#include <stddef.h>
#include <yajl/yajl_common.h>

struct lv_arena {
    char *base;
    size_t size;
    size_t used;
    void **big;    /* malloc'd blocks, freed at reset */
    size_t nbig;
    size_t capbig;
};

void lv_arena_init(struct lv_arena *a, size_t size);
void lv_arena_reset(struct lv_arena *a);
void lv_arena_free(struct lv_arena *a);
/* Allocator functions for yajl_alloc() that draw from `a`. */
void lv_arena_yajl_funcs(struct lv_arena *a, yajl_alloc_funcs *funcs);

#endif
