/*
 * Reading JSON text strictly, where yajl is lenient. yajl accepts vertical
 * tab and form feed as whitespace, and pairs a high-surrogate escape with
 * whatever \uXXXX follows it, so "\ud800\u0070" loses its 'p' inside one
 * astral character: a key spelled that way would hide from every rule.
 * These helpers say when a line may be copied as it is, repair surrogate
 * escapes before yajl reads them, and decode string text the way a strict
 * decoder does (RFC 8259; an unpaired surrogate is U+FFFD and the escape
 * after it is decoded on its own).
 *
 * Ownership: functions write into caller-owned buffers; nothing is kept.
 */
#ifndef LOGVEIL_FILTERS_JSON_TEXT_H
#define LOGVEIL_FILTERS_JSON_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logveil/util.h"

/* True when `s` may be shipped byte for byte as (part of) a JSON text that
 * yajl accepted: strict UTF-8 (RFC 3629: no overlong forms, surrogates or
 * code points past U+10FFFF) and no control byte but tab, CR and LF (yajl
 * takes \v and \f as blanks between tokens; RFC 8259 does not). */
bool lv_json_copyable(const char *s, size_t len);

/* Returns `s`, or a copy of it in `scratch` (overwritten) in which every
 * surrogate escape that is not half of a high-low pair is \uFFFD. The copy
 * has the same length, so offsets in it are offsets in `s`. NULL when the
 * copy does not fit in `scratch`. */
const char *lv_json_fix_surrogates(const char *s, size_t len, struct lv_buf *scratch);

/* Does `s` hold a backslash that starts a valid JSON escape? */
bool lv_json_has_escape(const char *s, size_t len);

/* Decodes the JSON escapes in `s` (string text without its quotes) into
 * `out` (overwritten). With `lenient`, a backslash that starts no valid
 * escape is kept as it is (free text); without, the text must be the body
 * of a valid JSON string. When `map` is not NULL, it receives for each
 * decoded byte the offset in `s` where the character that produced it
 * starts, and one more entry, len; its capacity is `*mapcap` entries and it
 * is grown (with lv_xrealloc) when short. 0, or -ENOBUFS when `out` is full,
 * or -EINVAL when a strict decode meets an invalid escape. */
int lv_json_unescape(const char *s, size_t len, bool lenient, struct lv_buf *out, uint32_t **map,
                     size_t *mapcap);

#endif
