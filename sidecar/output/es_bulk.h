/*
 * Reading an Elasticsearch / OpenSearch _bulk answer as it arrives, in
 * chunks of any size, with yajl's streaming parser and no DOM:
 *
 *   {"took":3,"errors":true,"items":[
 *     {"create":{"status":201}},
 *     {"create":{"status":400,"error":{"type":"mapper_parsing_exception",
 *                                      "reason":"failed to parse ..."}}}]}
 *
 * Each member of `items` (an object with one action key) is one item, in
 * the order of the actions sent; its `status` and its error's `type` and
 * `reason` (not those of a nested `caused_by`) are handed to the caller.
 * `"errors":false` before `items` (the order Elasticsearch writes) says
 * every item succeeded: the parse stops there, the rest is not read.
 *
 * The answer is untrusted input: anything that is not JSON, and more items
 * than the caller expects, ends the parse as LV_ES_BULK_BAD; what was
 * reported before stays reported. A status that is not a 1-7 digit
 * integer reads as 0. Memory is yajl's stack for the nesting plus two
 * capped texts, whatever the answer's size.
 */
#ifndef LOGVEIL_SIDECAR_OUTPUT_ES_BULK_H
#define LOGVEIL_SIDECAR_OUTPUT_ES_BULK_H

#include <stdbool.h>
#include <stddef.h>

#define LV_ES_BULK_TEXT 1024 /* bytes kept of an error's type and of its reason */

struct lv_es_item {
    long status;
    const char *type, *reason; /* decoded, valid UTF-8 (a lone surrogate's
                                  bytes as U+FFFD), cut at a character */
    size_t type_len, reason_len;
};

/* Called for each item; false says there was no record for it (the parse
 * ends as LV_ES_BULK_BAD). */
typedef bool lv_es_item_fn(void *arg, const struct lv_es_item *item);

enum lv_es_bulk_result {
    LV_ES_BULK_ALL_OK, /* "errors":false came first: every action succeeded */
    LV_ES_BULK_ITEMS,  /* a complete answer; its items were reported */
    LV_ES_BULK_BAD,    /* not a complete, well-formed answer */
};

struct lv_es_bulk; /* opaque */

struct lv_es_bulk *lv_es_bulk_new(lv_es_item_fn *fn, void *arg);
void lv_es_bulk_free(struct lv_es_bulk *b);

/* One more chunk of the answer. */
void lv_es_bulk_feed(struct lv_es_bulk *b, const char *data, size_t len);

/* The end of the answer. */
enum lv_es_bulk_result lv_es_bulk_finish(struct lv_es_bulk *b);

/* Items reported so far. */
size_t lv_es_bulk_items(const struct lv_es_bulk *b);

#endif
