/*
 * A pump writes batches, in order, to a descriptor that must never block the
 * loop: a pipe, a FIFO, a terminal, a socket. Batches queue in the pump and
 * are written as the descriptor takes them (an ev_io on the loop). A full
 * queue refuses more with -EAGAIN, which the pipeline takes as backpressure,
 * and the pump calls lv_output_ready() once it has room again.
 *
 * Outcomes: a batch written whole is reported LV_SENT. On a write error, or
 * when cancelled at the shutdown deadline, every queued batch is handed back
 * at once: the records of a batch already written whole are reported
 * LV_SENT, the others get the outcome the owner's error function chooses
 * (LV_RETRY when cancelled). A record cut in the middle stays cut in the
 * reader's stream; it is reported with the others, so it is sent again, and
 * the next write starts with a newline so that the cut piece is a line of
 * its own rather than glued to the next record; with a marker file
 * (lv_pump_set_marker) this holds across a restart, for a reader that keeps
 * the same FIFO open.
 *
 * Ownership: the pump belongs to one output, holds the batches it queued
 * until it reports them, and does not own the descriptor.
 */
#ifndef LOGVEIL_SIDECAR_OUTPUT_PUMP_H
#define LOGVEIL_SIDECAR_OUTPUT_PUMP_H

#include <stdbool.h>

#include "logveil/stage.h"

/* Batches a pump queues before it answers -EAGAIN. */
#define LV_PUMP_QUEUE 64

struct lv_pump;

/* What a write error (a negative errno) means for the batches queued:
 * LV_RETRY or LV_REJECTED. The owner counts and logs it; it is also called
 * with 0 when a write succeeds after an error. */
typedef enum lv_outcome lv_pump_error_fn(struct lv_output *out, int err);

/* `fd` must be non-blocking, or a socket (`socket`: written with
 * send(MSG_DONTWAIT)). */
struct lv_pump *lv_pump_new(struct lv_output *out, int fd, bool socket, lv_pump_error_fn *on_error);
/* Accepts NULL. Batches still queued are not reported. */
void lv_pump_free(struct lv_pump *pu);
/* Queues `b`; 0, or -EAGAIN when full. */
int lv_pump_submit(struct lv_pump *pu, struct lv_batch *b);
/* `path`: a file that says a record was left cut in this stream (created
 * when one is, removed once the newline after it is written); when it
 * exists now, the first write starts with a newline. */
void lv_pump_set_marker(struct lv_pump *pu, const char *path);
/* Hands back every queued batch (LV_RETRY for what is not out). */
void lv_pump_cancel(struct lv_pump *pu);
bool lv_pump_idle(const struct lv_pump *pu);

#endif
