/*
 * JSON held inside text: in a line that is not one JSON object (a record
 * with a byte after it, a top-level array, a line cut short, JSON after a
 * prefix) and in string values (JSON serialised once or several times).
 * Each '{' or '[' of the text starts a parse; what parses, up to the end of
 * the value or to the first error, is walked like a record, so the key
 * rules see every key decoded (escapes, surrogates) and whatever characters
 * surround the rule word. The walk does not write: it reports where, in the
 * text, the value of a matching key lies, and which string tokens hold
 * escapes (their decoded text may hide more), for the caller to redact.
 *
 * Fail closed: the value of a matching key that does not end before the
 * parse does (a line cut inside it, or broken JSON) runs to the end of the
 * text.
 *
 * Ownership: the walker owns its yajl arena and scratch; the text is the
 * caller's and is only read.
 */
#ifndef LOGVEIL_FILTERS_NESTED_H
#define LOGVEIL_FILTERS_NESTED_H

#include <stddef.h>

#include "redact.h"

/* Where the value of a matching key lies: [start, end) is the value's text,
 * [member_start, member_end) the whole member with one of its commas (what
 * the drop action removes). `value` is the decoded string or the number's
 * text, NULL for a container or a value that did not end; `open` says the
 * value did not end before the parse did (it then runs to the end of the
 * text). */
struct lv_nested_value {
    size_t start, end;
    size_t member_start, member_end;
    int rule;
    const char *value;
    size_t len;
    bool open;
};

/* Callbacks return 0, or a negative errno that stops the walk. */
typedef int lv_nested_value_fn(void *arg, const struct lv_nested_value *v);
/* A string token (a key or a value) with escapes: [start, end) is its text
 * between the quotes; `open` when the text ends inside it (a cut line: what
 * it holds so far is searched too). */
typedef int lv_nested_string_fn(void *arg, size_t start, size_t end, bool open);

struct lv_nested_sink {
    lv_nested_value_fn *value;
    lv_nested_string_fn *string;
    void *arg;
};

struct lv_nested;

struct lv_nested *lv_nested_new(struct lv_redactor *r);
void lv_nested_free(struct lv_nested *n);

/* Does `s` hold something the walk could read: a quote and an opening
 * bracket? (A cheap test before lv_nested_walk.) */
bool lv_nested_possible(const char *s, size_t len);

/* Walks the JSON in `s`. 0, or the first negative value a callback
 * returned, or -ENOBUFS when scratch memory ran out. */
int lv_nested_walk(struct lv_nested *n, const char *s, size_t len, const struct lv_nested_sink *sink);

#endif
