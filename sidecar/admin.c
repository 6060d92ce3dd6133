/*
 * The admin HTTP server, libmicrohttpd driven by the libev loop.
 *
 * MHD runs without a thread of its own: it is started in epoll mode, its
 * epoll descriptor is watched by an ev_io, and an ev_timer re-armed from
 * MHD_get_timeout() after every MHD_run() covers work MHD has pending without
 * socket activity (idle connection timeouts, connections already readable).
 * Requests are therefore answered on the loop, between pipeline callbacks,
 * and read the plain-integer counters of lv_metrics safely.
 *
 * That also makes /livez an honest watchdog without a timestamp of its own:
 * the answer is produced by the loop, so it only comes while the loop turns.
 * It never looks at output health; a backend outage must not restart the
 * sidecar.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <ev.h>
#include <microhttpd.h>

#include "admin.h"
#include "logveil/log.h"
#include "logveil/metrics.h"
#include "logveil/util.h"

#define MAX_CONNECTIONS 32u
#define IDLE_TIMEOUT_S 10u
#define METRICS_INITIAL 16384u
#define METRICS_LIMIT (1u << 20) /* far above what the bounded tables can render */

#define CONTENT_TYPE_TEXT "text/plain; charset=utf-8"
#define CONTENT_TYPE_METRICS "text/plain; version=0.0.4; charset=utf-8"

struct lv_admin {
    struct ev_loop *loop;
    struct MHD_Daemon *mhd;
    ev_io io;       /* MHD's epoll descriptor */
    ev_timer timer; /* MHD_get_timeout() */
    int port;
    bool ready;
    bool starting;   /* MHD messages are kept for `err`, not logged */
    char listen[64]; /* names this server in log messages */
    char last_error[256];
};

/* Parses "HOST:PORT" with HOST an IPv4 literal or "localhost". */
static int parse_listen(const char *listen, struct sockaddr_in *sa)
{
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen || !isdigit((unsigned char)colon[1]))
        return -EINVAL;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port > 65535)
        return -EINVAL;

    char host[INET_ADDRSTRLEN];
    size_t hlen = (size_t)(colon - listen);
    if (hlen >= sizeof host)
        return -EINVAL;
    memcpy(host, listen, hlen);
    host[hlen] = '\0';
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof host, "127.0.0.1");

    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -EINVAL;
}

/* Responses ----------------------------------------------------------- */

static enum MHD_Result queue(struct MHD_Connection *conn, unsigned status, struct MHD_Response *r,
                             const char *type)
{
    if (!r)
        return MHD_NO;
    enum MHD_Result ret = MHD_NO;
    if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type) == MHD_YES &&
        (status != MHD_HTTP_METHOD_NOT_ALLOWED ||
         MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD") == MHD_YES))
        ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
    /* MHD_RESPMEM_PERSISTENT only reads the literal; its parameter lacks const. */
    void *body = (void *)(uintptr_t)text;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), body, MHD_RESPMEM_PERSISTENT);
    return queue(conn, status, r, CONTENT_TYPE_TEXT);
}

static enum MHD_Result reply_metrics(struct lv_admin *a, struct MHD_Connection *conn)
{
    struct lv_buf body;
    lv_buf_init(&body, METRICS_INITIAL, METRICS_LIMIT);
    int rc = lv_metrics_render(&body);
    if (rc < 0) {
        lv_buf_free(&body);
        lv_error("admin %s: /metrics: cannot render: %s", a->listen, strerror(-rc));
        return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot render metrics");
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(body.len, body.data, MHD_RESPMEM_MUST_COPY);
    lv_buf_free(&body);
    return queue(conn, MHD_HTTP_OK, r, CONTENT_TYPE_METRICS);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    static int headers_seen;
    struct lv_admin *a = cls;
    /* Other methods are refused at once; MHD then closes the connection
     * instead of reading a body nobody wants. */
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
    /* MHD calls once when the headers are in and again when the request is
     * complete. A reply queued on the first call counts as early and costs
     * the keep-alive connection Prometheus would reuse, so answer on the
     * last call, and discard any body a GET carries. */
    if (*req_cls == NULL) {
        *req_cls = &headers_seen;
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (strcmp(url, "/metrics") == 0)
        return reply_metrics(a, conn);
    if (strcmp(url, "/livez") == 0 || strcmp(url, "/healthz") == 0)
        return reply_text(conn, MHD_HTTP_OK, "ok");
    if (strcmp(url, "/readyz") == 0)
        return a->ready ? reply_text(conn, MHD_HTTP_OK, "ok")
                        : reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready");
    return reply_text(conn, MHD_HTTP_NOT_FOUND, "not found");
}

/* MHD's own messages: kept for `err` while starting, logged afterwards. */
__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct lv_admin *a = cls;
    vsnprintf(a->last_error, sizeof a->last_error, fmt, ap);
    a->last_error[strcspn(a->last_error, "\r\n")] = '\0';
    if (!a->starting)
        lv_warn("admin %s: %s", a->listen, a->last_error);
}

/* The loop side --------------------------------------------------------- */

static void run(struct lv_admin *a)
{
    MHD_run(a->mhd);
    MHD_UNSIGNED_LONG_LONG ms;
    ev_timer_stop(a->loop, &a->timer);
    if (MHD_get_timeout(a->mhd, &ms) != MHD_YES)
        return;
    ev_timer_set(&a->timer, (double)ms / 1000.0, 0.0);
    ev_timer_start(a->loop, &a->timer);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    run(lv_container_of(w, struct lv_admin, io));
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    run(lv_container_of(w, struct lv_admin, timer));
}

static struct MHD_Daemon *start_daemon(struct lv_admin *a, const struct sockaddr_in *sa)
{
    a->starting = true;
    /* One option and its arguments per line. */
    /* clang-format off */
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, a,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, a, /* first, to catch every message */
        MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)sa,
        MHD_OPTION_CONNECTION_LIMIT, MAX_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT, IDLE_TIMEOUT_S,
        MHD_OPTION_END);
    /* clang-format on */
    a->starting = false;
    return d;
}

struct lv_admin *lv_admin_start(struct ev_loop *loop, const char *listen, char *err, size_t errlen)
{
    struct sockaddr_in sa;
    if (parse_listen(listen, &sa) < 0) {
        snprintf(err, errlen,
                 "admin.listen \"%s\": expected HOST:PORT, HOST an IPv4 address "
                 "or localhost",
                 listen);
        return NULL;
    }
    struct lv_admin *a = lv_xcalloc(1, sizeof *a);
    a->loop = loop;
    snprintf(a->listen, sizeof a->listen, "%s", listen);
    ev_init(&a->io, on_io);
    ev_init(&a->timer, on_timer);

    a->mhd = start_daemon(a, &sa);
    const union MHD_DaemonInfo *epoll = NULL, *port = NULL;
    if (a->mhd) {
        epoll = MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_EPOLL_FD);
        port = MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_BIND_PORT);
    }
    if (!epoll || !port) {
        snprintf(err, errlen, "admin: cannot listen on %s: %s", listen,
                 a->last_error[0] ? a->last_error : "the HTTP server did not start");
        lv_admin_stop(a);
        return NULL;
    }
    a->port = port->port;
    ev_io_set(&a->io, epoll->epoll_fd, EV_READ);
    ev_io_start(loop, &a->io);
    run(a); /* arms the timer */
    return a;
}

int lv_admin_port(const struct lv_admin *a)
{
    return a->port;
}

void lv_admin_set_ready(struct lv_admin *a, bool ready)
{
    a->ready = ready;
}

void lv_admin_stop(struct lv_admin *a)
{
    if (!a)
        return;
    ev_io_stop(a->loop, &a->io);
    ev_timer_stop(a->loop, &a->timer);
    if (a->mhd)
        MHD_stop_daemon(a->mhd);
    free(a);
}
