/*
 * Reloading the configuration while running: on SIGHUP, and with
 * `run --watch-config` whenever the file's stat changes (kubelet updates a
 * ConfigMap mount by swapping a symlink, which a stat of the path sees).
 *
 * What a reload can change: the filter chain's sections (environment,
 * log_level, redact, sampling, enrich). A new chain is built from the new
 * file and takes over between two records, so every record is filtered
 * whole by one rule set: those read before the switch by the old one, those
 * after by the new. Inputs, their positions and joiners, the buffer, the
 * spool and the outputs are not touched.
 *
 * What it cannot change: every other top-level key (inputs, outputs, buffer,
 * limits, admin, state_dir, shutdown_timeout, and any key added later). A
 * file that changes one of them, or that does not load, is rejected as a
 * whole: one log line per error (file:line), the old configuration keeps
 * running, logveil_config_reloads_total{result="rejected"} counts it and
 * logveil_config_last_reload_success drops to 0. A restart applies it.
 *
 * Ownership: the reloader belongs to the pipeline's loop; it keeps the
 * configuration of the chain in force (the pipeline's own is the caller's)
 * and frees it with the next reload or lv_reload_free().
 */
#ifndef LOGVEIL_SIDECAR_RELOAD_H
#define LOGVEIL_SIDECAR_RELOAD_H

#include <stdbool.h>

struct lv_pipeline;
struct lv_reload;

/* Watches for SIGHUP (and the file when `watch`). `path` is copied. NULL
 * with a log line when the file cannot be read for the fingerprint. */
struct lv_reload *lv_reload_new(struct lv_pipeline *p, const char *path, bool watch);
/* Reloads now; 0 when applied, -EINVAL when rejected. */
int lv_reload_now(struct lv_reload *r);
/* Stops watching (before the pipeline is freed). */
void lv_reload_stop(struct lv_reload *r);
/* After the pipeline is freed: the configuration its last chain used goes
 * with the reloader. Accepts NULL. */
void lv_reload_free(struct lv_reload *r);

#endif
