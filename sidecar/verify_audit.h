/*
 * The audit-trail verifier behind `logveil verify-audit` (see
 * filters/audit.h for what the chain is). It reads an export one line at a
 * time, in any order, with other records mixed in: a record as shipped
 * (the file output, a Loki line, a Kafka value), an Elasticsearch hit
 * ({"_source": {...}}, the record's bytes as stored) or a Loki JSON line
 * ({"line": "<the record as a JSON string>"}). It keeps the audit records
 * and, at the end, checks each stream's chain: links verified, gaps,
 * altered records, contents moved between seqs (reordering), duplicates and
 * forks. It needs nothing but the audit key.
 *
 * Ownership: the verifier copies every line it keeps and the keys it is
 * given (wiped when freed). One thread.
 */
#ifndef LOGVEIL_SIDECAR_VERIFY_AUDIT_H
#define LOGVEIL_SIDECAR_VERIFY_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct lv_verify;

struct lv_verify *lv_verify_new(void);
void lv_verify_free(struct lv_verify *v);

/* A key, by id; id NULL: the id logveil derives from it. A single key is
 * also used for records naming an id no key has. */
void lv_verify_add_key(struct lv_verify *v, const char *id, const char *key, size_t len);

/* One line of the export (without its newline). 1 when it was an audit
 * record, 0 when it holds none, -EINVAL when it looks like one but is
 * malformed (reported, and it makes the result not whole). */
int lv_verify_line(struct lv_verify *v, const char *line, size_t len, uint64_t lineno);

/* Checks every stream from `from_seq` (1: from the start) and, when
 * expect_last is not 0, that the chain reaches that seq; writes the report
 * to `out`. Returns true when every chain is whole. */
bool lv_verify_report(struct lv_verify *v, uint64_t from_seq, uint64_t expect_last, FILE *out);

#endif
