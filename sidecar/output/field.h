/*
 * Reading a few fields from a record's final JSON text without a DOM: one
 * pass over the top object that descends only into objects whose key starts
 * a wanted path. A dotted path finds nested objects and dotted keys alike
 * (`log.level` finds {"log":{"level":..}} and {"log.level":..}); the first
 * match wins. Scalars only: an object or array value is not a match.
 *
 * The text is the pipeline's own output (valid JSON), so the reader trusts
 * its shape; on anything else it stops early and finds less, never reading
 * past `len`.
 *
 * Ownership: a field points into the text it was read from.
 */
#ifndef LOGVEIL_SIDECAR_OUTPUT_FIELD_H
#define LOGVEIL_SIDECAR_OUTPUT_FIELD_H

#include <stdbool.h>
#include <stddef.h>

#define LV_FIELD_MAX 32

struct lv_field_path {
    const char *path;
    size_t len;
};

/* A value found: [p, p + len) of the text, still escaped when `string`
 * (without its quotes); p NULL when the path was not found. */
struct lv_field {
    const char *p;
    size_t len;
    bool string;
};

/* Fills out[i] for each of the `n` (at most LV_FIELD_MAX) paths. */
void lv_field_read(const char *json, size_t len, const struct lv_field_path *paths, size_t n,
                   struct lv_field *out);

/* A string field's text decoded (the common escapes, \u as UTF-8; a lone
 * surrogate becomes U+FFFD) into `dst` of `cap` bytes, cut at a character
 * boundary when longer. Returns the length written. */
size_t lv_field_unescape(const struct lv_field *f, char *dst, size_t cap);

#endif
