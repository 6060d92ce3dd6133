/*
 * What a record is once the filters are done with it: its final, redacted
 * JSON text plus a small fixed header. Stages after the filters never parse
 * the text again.
 *
 * Ownership: a record's text lives in the batch that holds it (see stage.h);
 * the record does not own it.
 */
#ifndef LOGVEIL_RECORD_H
#define LOGVEIL_RECORD_H

#include <stddef.h>
#include <stdint.h>

enum lv_level {
    LV_LEVEL_UNKNOWN,
    LV_LEVEL_TRACE,
    LV_LEVEL_DEBUG,
    LV_LEVEL_INFO,
    LV_LEVEL_WARN,
    LV_LEVEL_ERROR,
    LV_LEVEL_FATAL,
    LV_LEVEL_COUNT
};

/* A level word: "warning" -> WARN, "err" -> ERROR, case-insensitive;
 * UNKNOWN otherwise. The table is in filters/level.c. */
enum lv_level lv_level_parse(const char *s, size_t len);
const char *lv_level_name(enum lv_level level);

enum lv_stream { LV_STREAM_STDOUT, LV_STREAM_STDERR };

/* Where a record came from, for acknowledged checkpoints. */
struct lv_pos {
    uint32_t source; /* its source's identity: a hash of the source's name (a
                        file's path, "stdin"), the same in every run, so that
                        outputs can name a record idempotently (es.c's _id) */
    uint64_t end;    /* byte offset just past the record in its source */
};

struct lv_record {
    size_t off;        /* JSON text starts at batch data + off */
    uint32_t len;      /* text length, without the trailing newline */
    uint8_t level;     /* enum lv_level */
    uint8_t stream;    /* enum lv_stream */
    uint8_t keep;      /* 1 when always_keep matched (audit) */
    int64_t time_ns;   /* @timestamp, UTC nanoseconds */
    uint64_t key_hash; /* hash of the sampling key */
    struct lv_pos pos;
};

#endif
