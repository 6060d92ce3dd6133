/*
 * The admin HTTP server: /metrics (Prometheus text), /livez and its older
 * alias /healthz, and /readyz. It runs on the pipeline's libev loop, never on
 * a thread of its own, so it reads lv_metrics without locks. Only GET and
 * HEAD are served.
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
 * one) and serves from `loop`. Not ready until lv_admin_set_ready(). NULL,
 * with the reason in `err`, when the address is malformed or cannot be bound. */
struct lv_admin *lv_admin_start(struct ev_loop *loop, const char *listen, char *err, size_t errlen);

/* The port actually bound. */
int lv_admin_port(const struct lv_admin *a);

/* What /readyz answers from now on: 200 when ready, 503 otherwise. */
void lv_admin_set_ready(struct lv_admin *a, bool ready);

/* Closes every connection and the listening socket. Accepts NULL. */
void lv_admin_stop(struct lv_admin *a);

#endif
