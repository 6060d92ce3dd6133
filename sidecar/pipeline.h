/*
 * The pipeline: inputs -> framing -> filter chain -> batches -> outputs, on
 * one libev loop. It owns every batch, counts bytes held by batches in flight
 * against buffer.max_bytes, pauses the inputs when that budget is spent and
 * resumes them below half of it, and retries batches an output reported as
 * LV_RETRY with capped exponential backoff.
 *
 * Ownership: the pipeline keeps a pointer to the configuration, which must
 * outlive it, and owns its inputs, outputs, chain and batches.
 */
#ifndef LOGVEIL_SIDECAR_PIPELINE_H
#define LOGVEIL_SIDECAR_PIPELINE_H

#include "logveil/conf.h"

struct ev_loop;
struct lv_pipeline;

/* NULL with `err` filled when a stage cannot be set up. */
struct lv_pipeline *lv_pipeline_new(struct ev_loop *loop, const struct lv_conf *conf, char *err,
                                    size_t errlen);
/* Runs until every input has ended and every batch is settled, or until
 * SIGTERM/SIGINT (then the same drain). Returns the process exit status. */
int lv_pipeline_run(struct lv_pipeline *p);
void lv_pipeline_free(struct lv_pipeline *p);

struct lv_chain;
struct ev_loop *lv_pipeline_loop(const struct lv_pipeline *p);
/* Puts `chain` in force for every record from now on (a reload); returns
 * the one it replaces, for the caller to free. */
struct lv_chain *lv_pipeline_swap_chain(struct lv_pipeline *p, struct lv_chain *chain);

#endif
