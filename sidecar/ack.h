/*
 * The acknowledgement engine: which offset of an input may be checkpointed,
 * and which outputs are done with a batch.
 *
 * Marks. When a batch is sealed, every source whose lines went into it
 * (kept or dropped by the filters) appends a mark to its list: the offset
 * after its last line in that batch. The batch holds its marks. A mark is
 * settled when its batch is: every output the batch went to has settled it
 * (delivered it, dead-lettered it and counted that, dropped it by a counted
 * policy, or had it written to the disk spool for that output). A source's
 * acknowledged offset is the offset of its newest mark that is settled with
 * every mark before it; that offset, and only that, may be checkpointed.
 *
 * Per-output settlement. A batch records the outputs that have not settled
 * it (`pending`, bit i for output i). Fan-out and spooling work per output:
 * a batch spooled for the outputs that failed it is replayed to those
 * outputs only, never to one that already has it. A part of a batch (the
 * records one output asked to retry, see lv_ack_split()) settles its parent
 * for that output when it settles itself.
 *
 * Invariants, checked by assert() in debug builds (without NDEBUG):
 *   1. A checkpoint never passes a record that is not settled: the
 *      acknowledged offset moves only over settled marks at the head of the
 *      list, and a batch settles its marks only once `pending` is empty.
 *   2. Marks never alias: a mark is an object its batch points to, not a
 *      slot in a ring of sequence numbers, so nothing can wrap. The list
 *      stays short without any pause: settled neighbours merge (the later
 *      offset wins), so it holds at most two marks per unsettled batch,
 *      and unsettled batches are bounded by the buffer's byte budget.
 *   3. An output settles a batch at most once, and only one it was meant
 *      for; a mark is settled once; a source's marks have non-decreasing
 *      offsets; an acknowledged offset never goes back.
 *
 * Ownership: a source owns its list (struct lv_ack_marks) and the marks in
 * it; a batch points to its marks. A list closed while batches still point
 * to some of its marks hands those marks to the batches, which free them
 * when they settle or are forgotten. One thread.
 */
#ifndef LOGVEIL_SIDECAR_ACK_H
#define LOGVEIL_SIDECAR_ACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logveil/stage.h"

/* Outputs a pipeline may have: `pending` is a 32-bit mask (so is the spool's). */
#define LV_ACK_MAX_OUTPUTS 32

struct lv_ack_marks;
struct lv_ack_mark;

/* ---- batches ------------------------------------------------------------------- */

/* `b` is to go to the outputs in `outputs` (a mask): its pending set. */
void lv_ack_batch_open(struct lv_batch *b, uint32_t outputs);
/* Output `i` has settled `b`: true when it was the last one (then the
 * caller settles b's marks, its parent for the same output, its spool
 * frame, and recycles it). */
bool lv_ack_batch_done(struct lv_batch *b, unsigned i);
/* `b` is settled: its marks are, and sources move their acknowledged
 * offsets. */
void lv_ack_batch_settle(struct lv_batch *b);
/* `b` goes without being settled (shutdown, for an input that reads it
 * again): its marks are never passed, so checkpoints stay before it. */
void lv_ack_batch_forget(struct lv_batch *b);
/* Whether `b`, or a batch it is a part of, was replayed from the spool: its
 * records are on disk still, and a later run replays them if this one
 * does not finish them. */
bool lv_ack_batch_durable(const struct lv_batch *b);
/* Fills `part` (empty) with the records of `b` whose outcome for output `i`
 * is LV_RETRY, and links it to `b`: `part` is pending for output i only,
 * and `b` stays pending for i until `part` settles. */
void lv_ack_split(struct lv_batch *b, unsigned i, const uint8_t *outcomes, struct lv_batch *part);
/* Frees what `b` holds for acknowledgement (its array of marks). */
void lv_ack_batch_free(struct lv_batch *b);
/* The memory acknowledgement holds on account of `b`, for the buffer's
 * budget: its array of marks, and each of its marks twice (once settled, a
 * mark may stay in its source's list behind an unsettled one: never more
 * of those than of unsettled marks, see invariant 2). */
size_t lv_ack_batch_bytes(const struct lv_batch *b);

/* ---- a source's marks --------------------------------------------------------------- */

/* `offset`: where the source starts (its checkpoint). */
struct lv_ack_marks *lv_ack_marks_new(uint64_t offset);
/* The source is gone: its marks that batches still point to become theirs. */
void lv_ack_marks_close(struct lv_ack_marks *m);
/* The source's lines up to `offset` are in `b`: a new mark at the end of
 * the list, held by `b`. */
void lv_ack_mark(struct lv_ack_marks *m, uint64_t offset, struct lv_batch *b);
uint64_t lv_ack_acked(const struct lv_ack_marks *m);
/* Marks not passed yet (settled ones merged into their neighbours). */
size_t lv_ack_marks_count(const struct lv_ack_marks *m);

#endif
