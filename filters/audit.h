/*
 * The tamper-evident audit trail. Every record kept by an always_keep rule
 * (and every record withheld by fail-closed, which always_keep also keeps)
 * gets, as its last member:
 *
 *     "audit":{"stream":"<S>","key":"<K>","seq":<N>,"chain":"<64 hex>"}
 *
 * stream names the chain (default "<POD_UID>/<CONTAINER_NAME>", or the host
 * name outside Kubernetes); key is the audit key's id; seq counts the
 * stream's audit records from 1, across restarts; chain is
 *
 *     HMAC-SHA256(audit key, prev || line without its 64 chain digits)
 *
 * where prev is the 32-byte chain value of record N-1 (32 zero bytes for
 * N = 1) and the line is the record exactly as shipped, without its
 * newline, with the 64 hex digits of chain removed (so it ends in
 * "chain":""}}). A verifier recomputes it from an export alone (logveil
 * verify-audit): a deleted, altered, inserted or reordered record breaks
 * the chain where it stands. The chain is computed once, before the buffer,
 * so a record delivered twice is the same link twice.
 *
 * State. The seq and chain of the last audit record whose batch every
 * output has settled are written to <state_dir>/audit-<hash of stream>.state
 * (atomically) when a settled batch moves them: a tail input that reads
 * again after a crash starts from its checkpoint, which never passes an
 * unsettled batch, so the records it reads again get the seq they had, and,
 * when their text is the same (their own time, or the runtime's), the same
 * chain: duplicates, not a fork.
 *
 * Ownership: the audit trail copies its key and wipes it when freed.
 */
#ifndef LOGVEIL_FILTERS_AUDIT_H
#define LOGVEIL_FILTERS_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logveil/conf.h"
#include "logveil/util.h"

#define LV_AUDIT_CHAIN_HEX 64

struct lv_audit;

/* NULL when conf has no audit section (err "") or when the state cannot be
 * read (err says why). */
struct lv_audit *lv_audit_new(const struct lv_conf *conf, char *err, size_t errlen);
void lv_audit_free(struct lv_audit *a);

/* The record being written in `out` from `start`, all but its closing
 * brace, is an audit record: appends its "audit" member (with a ',' unless
 * the object is empty). 0 or -ENOBUFS. */
int lv_audit_append(struct lv_audit *a, struct lv_buf *out, size_t start);

/* The batch `batch_seq` is sealed: it holds the audit records chained since
 * the last call. */
void lv_audit_sealed(struct lv_audit *a, uint64_t batch_seq);
/* Every output has settled batch `batch_seq` (delivered, or its loss
 * counted): the state may move past its records and is written. */
void lv_audit_settled(struct lv_audit *a, uint64_t batch_seq);

/* The path of the state file; for messages and tests. */
const char *lv_audit_state_path(const struct lv_audit *a);

#endif
