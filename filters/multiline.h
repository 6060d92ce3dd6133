/*
 * Multiline joining: folds the continuation lines of a plain-text stack trace
 * into the record before them. A line the input's `continue` pattern matches
 * is appended, after a '\n', to the record held; any other line sends the
 * held record on and is held in its place. A line whose first character
 * other than JSON whitespace is '{' (a JSON object) is never joined nor held:
 * the held record goes first, then the line as it is. So a joined record
 * never reads as a JSON object, and the chain ships it as {"message": ...}
 * with its newlines escaped.
 *
 * Caps: a record holds at most max_lines lines (a continuation line past
 * them starts the next record, so nothing is lost) and max_line bytes (the
 * rest is dropped and the record flagged truncated, as the frame does with a
 * long line). A joined record has the time and stream of its first line and
 * the position of its last.
 *
 * The caller keeps one joiner per stream of a source and flushes on its own
 * clock (the timeout) and at the end of the stream; this module keeps no time.
 *
 * Ownership: a rule owns its compiled pattern and match data, and must
 * outlive its joiners; a joiner owns a copy of the record it holds. Lines
 * passed to the callback are valid only during the call. One thread.
 */
#ifndef LOGVEIL_FILTERS_MULTILINE_H
#define LOGVEIL_FILTERS_MULTILINE_H

#include <stdbool.h>
#include <stddef.h>

#include "logveil/conf.h"
#include "logveil/stage.h"

struct lv_multiline_rule;
struct lv_multiline;

typedef int lv_multiline_emit_fn(void *arg, const struct lv_line *line);

/* The pattern (conf->pattern, or LV_MULTILINE_CONTINUE when NULL) compiled
 * and JIT-compiled once for all the joiners of an input. NULL with `err`
 * filled when the pattern does not compile. */
struct lv_multiline_rule *lv_multiline_rule_new(const struct lv_multiline_conf *conf,
                                                size_t max_line, char *err, size_t errlen);
void lv_multiline_rule_free(struct lv_multiline_rule *r);

struct lv_multiline *lv_multiline_new(struct lv_multiline_rule *r);
void lv_multiline_free(struct lv_multiline *m);

/* Takes one line; emits 0, 1 or 2 complete records (the held one, then a
 * JSON line). Returns 1 when the line begins the record now held, 0 when it
 * was joined or emitted, or the first negative return of emit. */
int lv_multiline_push(struct lv_multiline *m, const struct lv_line *line,
                      lv_multiline_emit_fn *emit, void *arg);
/* Emits the held record, if any (the stream ended, or it waited long
 * enough). Returns 0 or emit's negative return. */
int lv_multiline_flush(struct lv_multiline *m, lv_multiline_emit_fn *emit, void *arg);
bool lv_multiline_holding(const struct lv_multiline *m);
/* True when the joiner would hand `line` on as it is, with nothing held to
 * send first (a JSON object, the common case): the caller may skip it. */
bool lv_multiline_passes(const struct lv_multiline *m, const struct lv_line *line);
/* Memory held for the record (counted in the buffer budget). Idle, a
 * joiner keeps at most LV_MULTILINE_KEEP_BYTES. */
size_t lv_multiline_bytes(const struct lv_multiline *m);
#define LV_MULTILINE_KEEP_BYTES (16 * 1024)

#endif
