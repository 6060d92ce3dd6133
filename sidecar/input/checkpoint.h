/*
 * The tail input's checkpoint store: for each file followed, its identity
 * (device, inode, a fingerprint of its first bytes and one of the bytes just
 * before its offset) and the offset below which every record has been
 * acknowledged by every output; and the rotated generations known to be
 * done with (read to their end, or there before logveil first started), so
 * that a restart reads every other generation, whatever the clocks said.
 *
 * The file is text, one entry a line between a header and an `end` line that
 * carries the entry count and a checksum of everything before it:
 *
 *     logveil-tail-checkpoint 2
 *     <dev> <ino> <head fp> <head length> <offset> <tail fp> <tail length> <flags> <path>
 *     end <count> <checksum, 16 hex>
 *
 * Fingerprints are 16 hex digits. The tail fingerprint covers the `tail
 * length` bytes before the offset; for a gzip file (flag `z`) it covers the
 * file's 8-byte gzip trailer instead (CRC-32 and length of the whole
 * content), and offsets count decompressed bytes. Flag `d` marks a done
 * generation, whose offset is its size; flag `u` a file that had bytes
 * past its offset when the checkpoint was written (so that a file gone by
 * the next start is known to have lost some); `-` stands for no flags. The
 * letters come in the order d, z, u. Version 1
 * files (`<dev> <ino> <head fp> <head length> <offset> <path>`) are still
 * read, with no tail fingerprint and no done generations.
 *
 * A file without a valid `end` line (torn, truncated, edited) is refused as a
 * whole: half a checkpoint is worse than none. Writes are atomic (a temporary
 * file in the same directory, fsync, rename, fsync of the directory), so a
 * crash leaves either the old checkpoint or the new one. The path is there for
 * diagnostics; identity is what matches.
 *
 * Ownership: a loaded struct lv_checkpoint owns its entries and their paths;
 * lv_checkpoint_free() releases them. Entries given to lv_checkpoint_format()
 * are only read.
 */
#ifndef LOGVEIL_SIDECAR_INPUT_CHECKPOINT_H
#define LOGVEIL_SIDECAR_INPUT_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "logveil/util.h"

/* Files shorter than this are fingerprinted over what they hold, and again as
 * they grow, until they reach it. */
#define LV_CHECKPOINT_FP_MAX 256
/* The most bytes before the offset that the tail fingerprint covers. */
#define LV_CHECKPOINT_TAIL_MAX 1024

enum {
    LV_CHECKPOINT_DONE = 1, /* a generation done with: never read again */
    LV_CHECKPOINT_GZ = 2,   /* gzip-compressed; the tail fingerprint is its trailer's */
    LV_CHECKPOINT_UNREAD = 4, /* the file had bytes past the offset when this was written */
};

struct lv_checkpoint_entry {
    uint64_t dev;
    uint64_t ino;
    uint64_t fp;     /* lv_checkpoint_fingerprint() of the first fp_len bytes */
    uint32_t fp_len; /* 0..LV_CHECKPOINT_FP_MAX */
    uint64_t offset; /* acknowledged: the next run starts reading here */
    const char *path;
    uint64_t tail_fp;  /* of the tail_len bytes before offset (or the gzip trailer) */
    uint32_t tail_len; /* 0 (unknown)..LV_CHECKPOINT_TAIL_MAX */
    unsigned flags;    /* LV_CHECKPOINT_DONE, LV_CHECKPOINT_GZ, LV_CHECKPOINT_UNREAD */
};

struct lv_checkpoint {
    struct lv_checkpoint_entry *entries;
    size_t n;
    int version; /* of the file loaded: 1 has no tail fingerprints or done entries */
    char *text;  /* the file as read; paths point into it */
};

/* FNV-1a, 64 bits. */
uint64_t lv_checkpoint_fingerprint(const void *data, size_t len);

/* 0 with `cp` filled; -ENOENT when there is no checkpoint; -EINVAL when the
 * file is torn or corrupt (then `cp` is empty); another -errno when it cannot
 * be read. `cp` must be released with lv_checkpoint_free() in every case. */
int lv_checkpoint_load(const char *path, struct lv_checkpoint *cp);
void lv_checkpoint_free(struct lv_checkpoint *cp);

/* The file's text for `n` entries, appended to `out`. 0 or -ENOBUFS. */
int lv_checkpoint_format(const struct lv_checkpoint_entry *e, size_t n, struct lv_buf *out);

/* Replaces `path` atomically with `len` bytes of `data`. 0 or -errno. */
int lv_checkpoint_write(const char *path, const char *data, size_t len);

/* Creates the directory that will hold `path`, and its parents. 0 or -errno. */
int lv_checkpoint_mkdir(const char *path);

#endif
