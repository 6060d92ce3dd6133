/*
 * The filter chain for one line: parse -> enrich -> redact -> sample. The
 * same code serves `logveil run` and `logveil filter`.
 *
 * Fail closed: a line that is not a JSON object is shipped as
 * {"message": "<line>"} with the value rules run over all of it; a record
 * that cannot be redacted (nesting too deep, a rule that cannot run, an
 * output larger than the cap) is replaced by a minimal record that says so.
 * Every record not kept is counted in lv_metrics with its reason.
 *
 * A line in which the conservative pre-scan finds no candidate for any rule
 * is validated by the parse and copied through verbatim; only lines with
 * candidates are written out again.
 *
 * Ownership: the chain copies what it needs from the configuration at
 * creation, except the sampling profile and rules, which must outlive it.
 */
#ifndef LOGVEIL_CHAIN_H
#define LOGVEIL_CHAIN_H

#include "logveil/conf.h"
#include "logveil/record.h"
#include "logveil/stage.h"
#include "logveil/util.h"

struct lv_chain;

/* NULL with `err` filled when the rules cannot be built. */
struct lv_chain *lv_chain_new(const struct lv_conf *conf, char *err, size_t errlen);
void lv_chain_free(struct lv_chain *c);

/* The largest record text the chain writes; `out` must have this much room
 * beyond its current length (its limit), or the record is replaced. */
size_t lv_chain_record_cap(const struct lv_chain *c);

/* The chain's redactor (filters/redact.h), for tools that explain it. */
struct lv_redactor;
struct lv_redactor *lv_chain_redactor(struct lv_chain *c);

/* The audit trail (filters/audit.h), or NULL when none is configured. */
struct lv_audit;
struct lv_audit *lv_chain_audit(struct lv_chain *c);
/* A reload: the new chain `to` takes over the audit trail of `from` (its
 * seqs, links, state file and batches in flight go on unbroken); `to` must
 * have been built without one. */
void lv_chain_hand_audit(struct lv_chain *from, struct lv_chain *to);

/* Runs the filters on `line`. When the record is kept, appends its JSON text
 * and '\n' to `out`, fills *rec (rec->off is the offset in `out`) and
 * returns 1; returns 0 when it was dropped (and counted). */
int lv_chain_process(struct lv_chain *c, const struct lv_line *line, struct lv_buf *out,
                     struct lv_record *rec);

#endif
