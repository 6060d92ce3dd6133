/*
 * The tamper-evident audit trail. Every record kept by an always_keep rule
 * (and every record withheld by fail-closed, which always_keep also keeps)
 * gets, as its last member:
 *
 *     "audit":{"stream":"<S>","key":"<K>","seq":<N>,"chain":"<64 hex>"}
 *
 * (with "restart":[<from>,<to>] before chain on the first record after an
 * unclean stop, see below)
 *
 * stream names the chain (default "<POD_UID>/<CONTAINER_NAME>", or the host
 * name outside Kubernetes); key is the audit key's id; seq counts the
 * stream's audit records from 1, across restarts; chain is
 *
 *     HMAC-SHA256(audit key, prev || line without its 64 chain digits)
 *
 * where prev is the 32-byte chain value of record N-1 (32 zero bytes for
 * N = 1; of record from-1 for a record that declares a restart) and the line is the record exactly as shipped, without its
 * newline, with the 64 hex digits of chain removed (so it ends in
 * "chain":""}}). A verifier recomputes it from an export alone (logveil
 * verify-audit): a deleted, altered, inserted or reordered record breaks
 * the chain where it stands. The chain is computed once, before the buffer,
 * so a record delivered twice is the same link twice.
 *
 * State, restarts. Before a batch holding audit records is handed to the
 * outputs, <state_dir>/audit-<hash of stream>.state is written (atomically,
 * fsync'd) with the last link reserved so far and the last link settled
 * (every output done with its batch). So no seq that may have reached the
 * store is ever used twice. After a clean stop the two are equal. After an
 * unclean one (kill -9, a shutdown deadline) the seqs between were in
 * flight: some may be in the store, some not. The next record then carries
 * "restart":[S+1,R] before its chain, and links to the settled record S
 * instead of R: verify-audit checks the records of S+1..R that are there
 * and reports the missing ones as declared in flight, not as a gap. The
 * records a tail input reads again after the crash are chained anew, with
 * new seqs (verify-audit reports them as replayed).
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

/* The batch `batch_seq` is sealed and about to go to the outputs: it holds
 * the audit records chained since the last call, whose seqs are reserved
 * (written to the state file) now. */
void lv_audit_sealed(struct lv_audit *a, uint64_t batch_seq);
/* Every output has settled batch `batch_seq` (delivered, or its loss
 * counted): the settled link may move past its records (written with the
 * next reservation, and when the trail is freed). */
void lv_audit_settled(struct lv_audit *a, uint64_t batch_seq);

/* The path of the state file; for messages and tests. */
const char *lv_audit_state_path(const struct lv_audit *a);

#endif
