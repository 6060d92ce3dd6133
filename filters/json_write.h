/*
 * Writing JSON text: strings escaped per RFC 8259, with invalid UTF-8
 * replaced by U+FFFD so the output is always valid JSON whatever the input.
 *
 * Ownership: every function appends to a caller-owned lv_buf and returns 0
 * or -ENOBUFS when the buffer's cap would be passed.
 */
#ifndef LOGVEIL_FILTERS_JSON_WRITE_H
#define LOGVEIL_FILTERS_JSON_WRITE_H

#include <stdbool.h>
#include <stddef.h>

#include "logveil/util.h"

/* Appends `s` as a quoted JSON string. *repaired (may be NULL) is set when
 * invalid UTF-8 was replaced. */
int lv_json_string(struct lv_buf *out, const char *s, size_t len, bool *repaired);
/* The same without the surrounding quotes. */
int lv_json_string_body(struct lv_buf *out, const char *s, size_t len, bool *repaired);
/* Writes code point `cp` (<= 0x10FFFF) as UTF-8 at `out` (room for 4);
 * returns the bytes written. */
size_t lv_utf8_put(unsigned long cp, char *out);
/* Length of the valid UTF-8 sequence starting at s (1-4), or 0 if invalid. */
size_t lv_utf8_seq_len(const unsigned char *s, size_t avail);

#endif
