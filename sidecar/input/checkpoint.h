/*
 * The tail input's checkpoint store: for each file followed, its identity
 * (device, inode, and a fingerprint of its first bytes) and the offset below
 * which every record has been acknowledged by every output.
 *
 * The file is text, one entry a line between a header and an `end` line that
 * carries the entry count and a checksum of everything before it:
 *
 *     logveil-tail-checkpoint 1
 *     <dev> <ino> <fingerprint, 16 hex> <fingerprint length> <offset> <path>
 *     end <count> <checksum, 16 hex>
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

struct lv_checkpoint_entry {
    uint64_t dev;
    uint64_t ino;
    uint64_t fp;     /* lv_checkpoint_fingerprint() of the first fp_len bytes */
    uint32_t fp_len; /* 0..LV_CHECKPOINT_FP_MAX */
    uint64_t offset; /* acknowledged: the next run starts reading here */
    const char *path;
};

struct lv_checkpoint {
    struct lv_checkpoint_entry *entries;
    size_t n;
    char *text; /* the file as read; paths point into it */
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
