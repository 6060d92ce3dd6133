/*
 * The admin HTTP server: /metrics (Prometheus text), /livez and its older
 * alias /healthz, and /readyz; optionally a second listener for the kubelet
 * serving the probes only. It runs on the pipeline's libev loop, never on
 * a thread of its own, so it reads lv_metrics without locks. Only GET and
 * HEAD are served, with per-address and total connection limits, a deadline
 * for the request head and a cap on its size (admin.c says which).
 *
 * Ownership: lv_admin_start() returns a server that the caller releases with
 * lv_admin_stop(), before the loop is destroyed.
 */
#ifndef LOGVEIL_ADMIN_H
#define LOGVEIL_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

struct ev_loop;
struct lv_admin;

/* Listens on "HOST:PORT" (an IPv4 literal or "localhost"; port 0 picks a free
 * one), and for the probes only on `probe_listen` unless it is NULL, and
 * serves from `loop`. Not ready until lv_admin_set_ready(). NULL, with the
 * reason in `err`, when an address is malformed or cannot be bound. */
struct lv_admin *lv_admin_start(struct ev_loop *loop, const char *listen, const char *probe_listen,
                                char *err, size_t errlen);

/* The ports actually bound; the probe port is 0 without a probe listener. */
int lv_admin_port(const struct lv_admin *a);
int lv_admin_probe_port(const struct lv_admin *a);

/* What /readyz answers from now on: 200 when ready, 503 otherwise. */
void lv_admin_set_ready(struct lv_admin *a, bool ready);

/* Closes every connection and the listening socket. Accepts NULL. */
void lv_admin_stop(struct lv_admin *a);

#endif
