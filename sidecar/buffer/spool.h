/*
 * The disk spool: where the pipeline puts whole batches when the outputs are
 * down and the memory budget is spent, instead of pausing the inputs. Batches
 * come back in the order they were appended, across segment files and across
 * restarts; a batch is durable once lv_spool_append() returns 0.
 *
 * On disk, <dir>/seg-<16 hex digits>.lvs files hold one frame per batch:
 *
 *     header, 32 bytes, little-endian:
 *         magic "LVSF", version u16 (2), flags u16 (0), payload length u32,
 *         record count u32, payload CRC32 u32, outputs u32 (bit i: the batch
 *         was spooled for output i), outputs signature u32 (which outputs
 *         the bits name), header CRC32 u32 (of the first 28 bytes)
 *     done, 8 bytes: outputs u32 that have settled the batch since, and its
 *         CRC32; rewritten in place, never synced (a torn or stale field
 *         reads as none done: a duplicate, never a loss)
 *     payload:
 *         per record, 35 bytes: level u8, stream u8, keep u8, time_ns i64,
 *         key_hash u64, pos.source u32, pos.end u64, len u32
 *         then the records' text, each followed by '\n'
 *
 * Version 1 frames (24-byte header: the first 20 bytes as above, then their
 * CRC; no outputs, no done field) are read as spooled for every output.
 * A frame is replayed to the outputs it was spooled for that have not marked
 * it done, when the outputs signature is this run's; to every output when
 * the configuration's outputs changed since.
 *
 * A segment is only ever appended to by the run that created it; the next
 * run starts a new one. So a crash mid-write leaves a torn frame only at the
 * end of a segment, and reading ignores it, uncounted (its append never
 * returned 0): fewer bytes than a header, a payload cut short, or zero bytes
 * to the end. Other damage is counted in lv_metrics.spool_corrupt, one per
 * skip, and logged: a frame whose payload fails its CRC is skipped by its
 * (checked) length, and its records are counted as dropped (reason
 * spool_corrupt, once per output still waiting for them); from a header that
 * fails its CRC, reading resynchronises on the next valid header in the
 * segment, or gives up the rest of the segment when there is none (the
 * records in what is skipped cannot be counted, their count was in the
 * damaged header: one is counted, a lower bound; so is one for a segment
 * that cannot be opened). Files in the directory that are not named like segments
 * are never touched. One process at a time: the directory is locked (flock).
 *
 * Ownership: the spool owns its files and copies what it is given; a batch
 * filled by lv_spool_next() stays the caller's, as do its buffers.
 */
#ifndef LOGVEIL_SIDECAR_BUFFER_SPOOL_H
#define LOGVEIL_SIDECAR_BUFFER_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logveil/stage.h"

/* Segments are rolled once they would grow past this. */
#define LV_SPOOL_SEGMENT_BYTES (8u << 20)

struct lv_spool;

/* Opens `dir`, creating it (not its parents) when missing, and finds the
 * segments an earlier run left: they are replayed first. `noutputs` and
 * `outputs_sig` describe this run's outputs (the signature changes when
 * they do). NULL with a message in `err` on failure. */
struct lv_spool *lv_spool_open(const char *dir, uint64_t max_bytes, unsigned noutputs,
                               uint32_t outputs_sig, char *err, size_t errlen);
/* Accepts NULL. Data not yet settled stays on disk for the next run. */
void lv_spool_close(struct lv_spool *s);

/* Appends `b` durably for the outputs in `outputs` (written and
 * fdatasync'ed before it returns 0). -ENOSPC when the spool would pass
 * max_bytes (or the disk is full), -EINVAL when the records do not tile
 * `data` in order, -errno on I/O errors; on failure nothing of `b` is left
 * to replay. */
int lv_spool_append(struct lv_spool *s, const struct lv_batch *b, uint32_t outputs);

/* The outputs that frames not yet handed out are for: a new batch must
 * follow them through the spool to keep their order. Every output, while
 * segments left by an earlier run are still being read. */
uint32_t lv_spool_backlog(const struct lv_spool *s);

/* Every byte spooled has been handed out by lv_spool_next(). (When the rest
 * is damaged, lv_spool_next() may still return -ENOENT while this is false.) */
bool lv_spool_empty(const struct lv_spool *s);

/* Reads the oldest batch not yet handed out that some output still needs
 * into `b`: its data, recs and n are replaced (data grows within its limit,
 * recs as needed; seq, ticket and pending are untouched) and record offsets
 * point into the new data; b->spool_id, spool_off and spool_done say where
 * it came from; *outputs is the outputs it is still for. 0; -ENOENT when
 * nothing is left; -errno on I/O errors, after which `b` is empty. A frame
 * that does not fit the batch's data limit is counted corrupt and skipped. */
int lv_spool_next(struct lv_spool *s, struct lv_batch *b, uint32_t *outputs);

/* Output `i` has settled the replayed batch `b`: its frame is marked done
 * for it, so a later run does not replay it there. */
void lv_spool_done(struct lv_spool *s, struct lv_batch *b, unsigned i);

/* The replayed batch `b` is finished for every output it was handed out
 * for (delivered, or dropped and counted). Call it at most once per batch
 * handed out; a batch left unfinished at shutdown is not settled, and the
 * next run replays it. A segment file is deleted once it has been
 * read to its end and every batch in it is settled. */
void lv_spool_settled(struct lv_spool *s, const struct lv_batch *b);

/* Bytes in segment files on disk, for the budget and the metrics. */
uint64_t lv_spool_bytes(const struct lv_spool *s);

#endif
