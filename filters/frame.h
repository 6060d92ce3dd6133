/*
 * Framing: from the bytes of an input to application lines. Splits on '\n'
 * (an incomplete last line waits for more bytes), then decodes the format:
 *   json    each line is the application's line;
 *   cri     "<RFC 3339 time> <stream> <P|F>[:tags] <content>", P fragments of
 *           the same stream joined until their F;
 *   docker  {"log":"...\n","stream":"...","time":"..."}, entries without the
 *           trailing newline joined with the next ones.
 * Lines are capped at max_line bytes: the rest of a longer line is dropped and
 * the line is flagged truncated. Every buffer here has that cap. A partial
 * line (CRI P fragments, Docker entries without their newline) is sent as
 * soon as it reaches max_line, flagged truncated, and the fragments that
 * still belong to it are dropped up to its end; lv_frame_flush_partials()
 * sends what one holds earlier (the caller's time bound).
 *
 * Memory: a buffer that held a long line is given back once it is empty, so
 * an idle frame keeps at most LV_FRAME_KEEP_BYTES in each of its buffers
 * (the incomplete raw line, one partial line per stream, the Docker decode
 * copy, the repaired line) plus, for Docker, the decoder's
 * LV_FRAME_ARENA_BYTES (lv_frame_idle_bytes()). While a line is read a frame
 * holds at most about three times max_line (the raw line, the line being
 * joined, the Docker decode copy; Docker's raw line and copies are up to
 * twice max_line, escapes included). lv_frame_bytes() says what it holds
 * now; the pipeline counts it in its budget.
 *
 * Ownership: lines passed to the callback point into the frame's buffers or
 * the caller's chunk and are valid only during the call.
 */
#ifndef LOGVEIL_FILTERS_FRAME_H
#define LOGVEIL_FILTERS_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "logveil/conf.h"
#include "logveil/stage.h"

#define LV_FRAME_KEEP_BYTES (16 * 1024)
#define LV_FRAME_ARENA_BYTES (32 * 1024)

struct lv_frame;

typedef int lv_frame_emit_fn(void *arg, const struct lv_line *line);

struct lv_frame *lv_frame_new(enum lv_format format, size_t max_line, uint32_t source);
void lv_frame_free(struct lv_frame *f);

/* Feeds a chunk; calls emit for each complete line. Stops at the first
 * negative return of emit and returns it; 0 otherwise. */
int lv_frame_feed(struct lv_frame *f, const char *data, size_t len, lv_frame_emit_fn *emit,
                  void *arg);
/* End of input: a last line without '\n' and pending partials are emitted. */
int lv_frame_finish(struct lv_frame *f, lv_frame_emit_fn *emit, void *arg);
/* Sends the partial lines waiting for their end now, as lines of their
 * own; the rest of each line, when it comes, makes another line. */
int lv_frame_flush_partials(struct lv_frame *f, lv_frame_emit_fn *emit, void *arg);
/* The same for one stream's partial line. */
int lv_frame_flush_partial(struct lv_frame *f, enum lv_stream st, lv_frame_emit_fn *emit,
                           void *arg);
/* Offset of the earliest raw line whose fragments wait to be joined
 * (UINT64_MAX when none): a checkpoint must not pass it. */
uint64_t lv_frame_pending_start(const struct lv_frame *f);
/* The same for one stream. */
uint64_t lv_frame_partial_start(const struct lv_frame *f, enum lv_stream st);
/* Memory held for incomplete lines and decoding (counted in the buffer budget). */
size_t lv_frame_bytes(const struct lv_frame *f);
/* The most an idle frame of `format` keeps for reuse (its buffers at
 * LV_FRAME_KEEP_BYTES each, the Docker decoder's arena): json 16 KiB, cri
 * 48 KiB, docker 112 KiB. */
size_t lv_frame_idle_bytes(enum lv_format format);
/* Bytes fed so far, and the newlines among them. */
uint64_t lv_frame_offset(const struct lv_frame *f);
uint64_t lv_frame_newlines(const struct lv_frame *f);

#endif
