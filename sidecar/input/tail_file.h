/*
 * One file the tail input follows: its identity, its descriptor and source
 * while open, and where reading resumes while closed.
 *
 * Identity is (st_dev, st_ino) plus what the content is known by: a
 * fingerprint of the first bytes (up to LV_CHECKPOINT_FP_MAX, taken again as
 * a short file grows) and one of the bytes just before an offset (up to
 * LV_CHECKPOINT_TAIL_MAX before `tail_at`, taken at the acknowledged offset
 * for the checkpoint). The head alone is not enough: files that start with
 * the same long banner all look alike there, while the bytes before the
 * offset carry a timestamp. Opening checks the file against both: a file
 * whose content changed (a reused inode, or truncated and rewritten) is read
 * from 0, never from a stale offset. While open, a file found shorter than
 * the offset read, or with changed first bytes, was truncated
 * (copytruncate): its source is replaced by a new one at 0 and the
 * truncation counted.
 *
 * A file gone from disk while closed with its end unread may survive under
 * another inode: compressed (the kubelet gzips 0.log.<ts> into
 * 0.log.<ts>.gz) or copied (copytruncate). lv_tail_file_holds() says whether
 * another file holds the same content up to the offset, decompressing it if
 * need be, and lv_tail_file_continue_in() moves the file there. `gz` files
 * are read through zlib, their offsets in the decompressed stream; the tail
 * fingerprint of a gz file is that of its gzip trailer (CRC-32 and length of
 * the whole content), which needs no decompression.
 *
 * A closed file with bytes unread (waiting behind max_open_files, or
 * evicted with an unterminated last line) has its unread lines counted as
 * they appear, so that a deletion before it is read again is counted as
 * that many records lost.
 *
 * Ownership: a struct lv_tail_file owns its path, descriptor, source and
 * `before` (until the caller takes it); lv_tail_file_free() closes and
 * releases them (the source without flushing).
 * The fields below "the input's bookkeeping" belong to tail.c.
 */
#ifndef LOGVEIL_SIDECAR_INPUT_TAIL_FILE_H
#define LOGVEIL_SIDECAR_INPUT_TAIL_FILE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "logveil/stage.h"
#include "tail_guard.h"

struct lv_tail_file {
    struct lv_input *in;
    const char *input_name; /* for log messages; the input's, outlives the file */
    struct lv_tail_guard *guard; /* the input's (NULL in tests): every open goes through it */
    char *path;
    uint64_t dev, ino;
    uint64_t fp;
    uint32_t fp_len;
    bool fp_known;         /* fp and fp_len describe the file */
    uint64_t tail_fp;      /* the tail_len bytes before tail_at; gz: the gzip trailer */
    uint32_t tail_len;     /* 0: unknown */
    uint64_t tail_at;
    bool verified;         /* the identity was checked against the file this run */
    bool at_tail;          /* the next probe starts it at its last line (read_from: tail) */
    uint64_t offset;       /* while closed: where reading resumes (acknowledged) */
    uint64_t read_to;      /* while closed: how far it had been read */
    uint64_t size;         /* at the last scan or probe */
    int fd;                /* -1 while closed */
    struct lv_source *src; /* non-NULL exactly while open */
    bool eof;              /* the last read found nothing more */
    bool flushed;          /* closing for good: the partial line was emitted */
    bool error_logged;
    bool gz;              /* gzip-compressed: offsets are in the decompressed stream */
    struct gzFile_s *gzf; /* gz while open (it owns the descriptor; fd stays -1) */
    uint64_t gz_pos;      /* decompressed bytes read from gzf */
    uint32_t gz_size32;   /* the content length its trailer gives (modulo 2^32) */
    bool gz_size_known;
    /* While closed with bytes unread: lines counted in them, in case the
     * file is deleted before it is read again. */
    uint64_t counted_to;   /* counted from `offset` up to here */
    uint64_t unread_lines; /* newlines found */
    uint64_t line_end;     /* just past the last of them (`offset` when none) */
    struct lv_tail_file *before; /* after a truncation: what it was (lv_tail_file_read(),
                                  * or lv_tail_file_open() resetting the offset) */
    /* While open and behind (its size past the read offset): newlines
     * counted ahead of the reader, in [ahead_from, ahead_to), in case the
     * file is truncated before they are read. */
    uint64_t ahead_from, ahead_to;
    uint64_t ahead_lines; /* newlines found */
    uint64_t ahead_end;   /* just past the last of them */
    uint64_t ahead_base;  /* the source's newlines read when the count began */
    /* At the last truncation, or reset to 0 at open: what was lost unless a
     * copy holds it (records, a lower bound, and bytes); `lost_unknown`
     * when the file had not been read this run (only the checkpoint knew
     * it, and not how much followed its offset). */
    uint64_t lost_records, lost_bytes;
    bool lost_unknown;
    bool opened;      /* opened this run */
    bool had_unread;  /* the checkpoint it came from said bytes were unread */

    /* the input's bookkeeping */
    bool rotated;         /* renamed out of the globs: read to its end while it exists */
    uint64_t seen;        /* the last scan that found it */
    bool own_path_seen;   /* ... under its current path */
    const char *alt_path; /* ... otherwise under this one (owned by the scan) */
    double gone_at;       /* when the globs stopped naming it; 0 while they do */
    double active_at;     /* when a read last returned bytes */
    bool matched;         /* found by the generations listing being reconciled */
};

/* What one read did. */
enum lv_tail_read {
    LV_TAIL_READ_DATA,      /* fed a chunk; there may be more */
    LV_TAIL_READ_EOF,       /* nothing more for now */
    LV_TAIL_READ_RESTARTED, /* truncated: reading again from 0 */
    LV_TAIL_READ_FAILED,    /* an error (logged once); try again later */
};

struct lv_tail_file *lv_tail_file_new(struct lv_input *in, const char *input_name,
                                      struct lv_tail_guard *guard, const char *path, uint64_t dev,
                                      uint64_t ino);
/* A closed stand-in for what `f` held up to `offset`, named `path`: no
 * identity, only f's fingerprints (its first bytes, the bytes before
 * tail_at), so that the generation holding that content can be found. */
struct lv_tail_file *lv_tail_file_content_of(const struct lv_tail_file *f, const char *path,
                                             uint64_t offset);
/* Closes without flushing, and frees; accepts NULL. */
void lv_tail_file_free(struct lv_tail_file *f);

/* Opens the file briefly to fingerprint it and check its identity: changed
 * content resets the offset to 0 (and returns true); with at_tail, the
 * offset becomes the start of its last line. A gz file whose inode now
 * holds a plain file becomes that plain file. */
bool lv_tail_file_probe_changed(struct lv_tail_file *f);
/* Opens it for reading at `offset`: 0; 1 when the offset was reset to 0
 * (its content changed, or it is shorter than the offset: `before` is what
 * it was, when that can be recognised, and lost_records, lost_bytes and
 * lost_unknown say what was lost unless a copy holds it);
 * or -errno (ENOENT and ESTALE, "replaced since the scan", are not
 * logged). */
int lv_tail_file_open(struct lv_tail_file *f);
/* Closes the descriptor and the source, without flushing; `offset` becomes
 * the acknowledged offset, where the next open resumes, and the bytes
 * before it are fingerprinted. */
void lv_tail_file_close(struct lv_tail_file *f);
/* Fingerprints the bytes before the acknowledged offset of an open file, if
 * that offset moved since: the checkpoint's tail fingerprint. */
void lv_tail_file_note_tail(struct lv_tail_file *f);

/* A rotated generation found next to a followed file: a closed file named
 * `path`, fingerprinted (a .gz file with the gzip magic is read
 * decompressed), at offset 0; NULL when it cannot be opened or is not the
 * file `st` describes. */
struct lv_tail_file *lv_tail_file_generation(struct lv_input *in, const char *input_name,
                                             struct lv_tail_guard *guard, const char *path,
                                             const struct stat *st);
/* Marks a closed file as read to its end: `offset` is its size, and the
 * tail fingerprint covers its last bytes (for a generation known to be
 * done with). False when it cannot be read. */
bool lv_tail_file_seal(struct lv_tail_file *f);

/* Whether its path still names it; refreshes `size`. */
bool lv_tail_file_exists(struct lv_tail_file *f);
/* Where a file the globs no longer name went: still at its path (outside the
 * globs), or renamed next to it (0.log -> 0.log.20251121-101010) or next to
 * its symlink's target; `path` and `size` follow it. False when it is
 * nowhere to be found (deleted, or compressed into a new inode). */
bool lv_tail_file_locate(struct lv_tail_file *f);

/* Whether the file at `path` (`st`, symlinks followed) holds what `f` is
 * known by: the same first bytes, and the same bytes before tail_at (for a
 * gz `f`, the same gzip trailer). A compressed candidate is decompressed up
 * to tail_at, a plain one read there; except that <name>.gz of a file
 * <name> read to its end is recognised by its trailer's length and its
 * first bytes. `*gz` says whether it is compressed. */
bool lv_tail_file_holds(const struct lv_tail_file *f, const char *path, const struct stat *st,
                        bool *gz);
/* `f`, closed, continues in the file at `path`, which holds it (a copy, or
 * its compressed rotation): it takes that name and identity and resumes at
 * its offset, in the decompressed stream when `gz`. */
void lv_tail_file_continue_in(struct lv_tail_file *f, const char *path, const struct stat *st,
                              bool gz);

/* An open file behind its size: counts the newlines in at most `budget`
 * more of the bytes it has not read; the bytes counted. */
uint64_t lv_tail_file_count_ahead(struct lv_tail_file *f, uint64_t budget);

/* Evicting an open file: counts the lines it holds unprocessed (an
 * unterminated last line) before it is closed. */
void lv_tail_file_count_held(struct lv_tail_file *f);
/* A closed file: counts the lines in at most `budget` more of its unread
 * bytes, up to `size`; the bytes counted. */
uint64_t lv_tail_file_count_unread(struct lv_tail_file *f, uint64_t budget);
/* A closed file deleted before it was read to `size`: the records lost as
 * best known (every line counted, plus one for bytes after the last of
 * them, which hold at least part of one), and the bytes. */
uint64_t lv_tail_file_lost(const struct lv_tail_file *f, uint64_t *bytes);

/* Reads one chunk of at most `len` bytes into `buf` and feeds it. After
 * LV_TAIL_READ_RESTARTED (and lv_tail_file_check() true), `before` may hold
 * a closed file standing for the content before the truncation, at its
 * acknowledged offset, for the caller to take: a copy made by copytruncate
 * may hold its unread end. Without one, lost_records and lost_bytes say
 * what the truncation took: the lines counted ahead of the reader in the
 * bytes it had not read, plus one for a line cut short or bytes not
 * counted (a lower bound: what was written after the last count is not
 * known). A compressed file damaged part way is read up to the damage;
 * what its trailer says followed is counted as one record (gz_corrupt). */
enum lv_tail_read lv_tail_file_read(struct lv_tail_file *f, char *buf, size_t len);
/* At a scan: detects truncation and rewriting, and fingerprints a short file
 * that grew. True when the file was restarted at 0. */
bool lv_tail_file_check(struct lv_tail_file *f);

#endif
