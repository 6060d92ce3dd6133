/*
 * Dead letters: records a sink rejected for good (an Elasticsearch mapping
 * error, a Loki 400), kept in a file of JSON lines so that nothing is lost
 * without a trace. Shared by the outputs that have permanent rejections
 * (Elasticsearch, Loki, and Kafka next).
 *
 * Each line: {"time":"<RFC 3339 UTC>","output":"<name>","status":<int>,
 * "error":{"type":"...","reason":"..."},"record":<the record>}. The record
 * is the redacted text the sink was sent (it is JSON, so it is embedded as
 * it is); type and reason are the sink's, escaped and cut at 1 KiB each.
 * A line is written whole with one write(2) to a file opened O_APPEND.
 *
 * The records are counted by the pipeline as dropped with reason
 * "rejected" (lv_output_done with LV_REJECTED), whether or not this file
 * could be written; a failure to write is logged once per episode.
 *
 * Ownership: a dead-letter file owns its descriptor and a scratch buffer.
 */
#ifndef LOGVEIL_SIDECAR_OUTPUT_DEADLETTER_H
#define LOGVEIL_SIDECAR_OUTPUT_DEADLETTER_H

#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

struct lv_deadletter;

/* Opens (creates) `path` for appending; NULL with `err` filled. */
struct lv_deadletter *lv_deadletter_open(const char *path, const char *output, char *err,
                                         size_t errlen);
/* Appends one rejected record. 0 or a negative errno. */
int lv_deadletter_write(struct lv_deadletter *d, const char *record, size_t len, int status,
                        const char *type, size_t type_len, const char *reason,
                        size_t reason_len);
/* Records written so far. */
uint64_t lv_deadletter_count(const struct lv_deadletter *d);
void lv_deadletter_close(struct lv_deadletter *d);

/* check-config: the directory `path` (an output's dead_letter key, in the
 * map `node` at `where`) goes in must exist and be writable. */
struct lv_conf_map_ctx;
void lv_deadletter_check(struct lv_conf_map_ctx *ctx, const yaml_node_t *node, const char *path,
                         const char *where);

#endif
