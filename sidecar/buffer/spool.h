/*
 * The disk spool: where the pipeline puts whole batches when the outputs are
 * down and the memory budget is spent, instead of pausing the inputs. Batches
 * come back in the order they were appended, across segment files and across
 * restarts; a batch is durable once lv_spool_append() returns 0.
 *
 * On disk, <dir>/seg-<16 hex digits>.lvs files hold one frame per batch:
 *
 *     header, 24 bytes, little-endian:
 *         magic "LVSF", version u16 (1), flags u16 (0), payload length u32,
 *         record count u32, payload CRC32 u32, header CRC32 u32 (first 20 bytes)
 *     payload:
 *         per record, 35 bytes: level u8, stream u8, keep u8, time_ns i64,
 *         key_hash u64, pos.source u32, pos.end u64, len u32
 *         then the records' text, each followed by '\n'
 *
 * A segment is only ever appended to by the run that created it; the next
 * run starts a new one. So a crash mid-write leaves a torn frame only at the
 * end of a segment, and reading ignores it, uncounted (its append never
 * returned 0): fewer bytes than a header, a payload cut short, or zero bytes
 * to the end. Other damage is counted in lv_metrics.spool_corrupt, one per
 * skip: a frame whose payload fails its CRC is skipped by its (checked)
 * length; from a header that fails its CRC, reading resynchronises on the
 * next valid header in the segment, or gives up the rest of the segment when
 * there is none. Files in the directory that are not named like segments are
 * never touched. One process at a time: the directory is locked (flock).
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
 * segments an earlier run left: they are replayed first. NULL with a message
 * in `err` on failure. */
struct lv_spool *lv_spool_open(const char *dir, uint64_t max_bytes, char *err, size_t errlen);
/* Accepts NULL. Data not yet settled stays on disk for the next run. */
void lv_spool_close(struct lv_spool *s);

/* Appends `b` durably (written and fdatasync'ed before it returns 0).
 * -ENOSPC when the spool would pass max_bytes (or the disk is full),
 * -EINVAL when the records do not tile `data` in order, -errno on I/O
 * errors; on failure nothing of `b` is left to replay. */
int lv_spool_append(struct lv_spool *s, const struct lv_batch *b);

/* Every byte spooled has been handed out by lv_spool_next(). (When the rest
 * is damaged, lv_spool_next() may still return -ENOENT while this is false.) */
bool lv_spool_empty(const struct lv_spool *s);

/* Reads the oldest batch not yet handed out into `b`: its data, recs and n
 * are replaced (data grows within its limit, recs as needed; seq and refs are
 * untouched) and record offsets point into the new data. Sets *id for
 * lv_spool_settled(). 0; -ENOENT when nothing is left; -errno on I/O errors,
 * after which `b` is empty. A frame that does not fit the batch's data limit
 * is counted corrupt and skipped. */
int lv_spool_next(struct lv_spool *s, struct lv_batch *b, uint64_t *id);

/* The batch handed out as `id` has been delivered (or dropped and counted).
 * Call it once per batch handed out. A segment file is deleted once it has
 * been read to its end and every batch in it is settled. */
void lv_spool_settled(struct lv_spool *s, uint64_t id);

/* Bytes in segment files on disk, for the budget and the metrics. */
uint64_t lv_spool_bytes(const struct lv_spool *s);

#endif
