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
 *
 * Hostile clients. The admin port may listen on every address, so a client
 * is assumed to be slow on purpose, to open many connections, and to send
 * more than it should:
 *   - at most MAX_CONNECTIONS connections, PER_IP_LIMIT from one address
 *     (MHD refuses the rest at accept);
 *   - a connection must deliver its request line and headers within
 *     HEAD_DEADLINE seconds of opening (or of its previous response): MHD's
 *     own timeout is one of inactivity, which a client sending a byte a
 *     second never reaches, so a sweep shuts such sockets down and MHD
 *     closes them (counted in logveil_admin_connections_timed_out_total);
 *   - the request line and headers must fit in CONN_MEMORY bytes (MHD
 *     answers 431 or 414 and closes); only GET and HEAD are served, and a
 *     request announcing a body is answered 413 at once, its body never read;
 *   - /metrics is rendered at most METRICS_RATE times a second (a burst of
 *     METRICS_BURST); past that, the last rendering is served, shared by
 *     reference between the responses in flight, never copied.
 * Probes must still answer while all of that goes on, and a connection limit
 * exhausted from many addresses would starve them. So the probes have a
 * listener of their own, `admin.probe_listen`, for the kubelet: it serves
 * /livez, /healthz and /readyz only, with its own connection limit and a
 * deadline of PROBE_HEAD_DEADLINE; a NetworkPolicy keeps everyone but the
 * node off it. The main port serves the probes too, for setups without one.
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

#define MAX_CONNECTIONS 64u
#define PER_IP_LIMIT 8u
#define IDLE_TIMEOUT_S 5u
#define HEAD_DEADLINE 2.0
#define CONN_MEMORY (16u * 1024)
#define PROBE_MAX_CONNECTIONS 16u
#define PROBE_HEAD_DEADLINE 1.0
#define PROBE_MEMORY (8u * 1024)
#define SWEEP_EVERY 0.2
#define METRICS_INITIAL 16384u
#define METRICS_LIMIT (1u << 20) /* far above what the bounded tables can render */
#define METRICS_RATE 20.0        /* renderings per second, sustained */
#define METRICS_BURST 50.0

#define CONTENT_TYPE_TEXT "text/plain; charset=utf-8"
#define CONTENT_TYPE_METRICS "text/plain; version=0.0.4; charset=utf-8"

struct server;

/* One TCP connection, from MHD's notification of its start to its close. */
struct conn {
    struct server *s;
    int fd;
    ev_tstamp since; /* opened, or its previous response completed */
    bool head_done;  /* the current request's headers are in */
    bool cut;        /* shut down by the sweep */
    struct conn *prev, *next;
};

struct server {
    struct lv_admin *a;
    struct MHD_Daemon *mhd;
    ev_io io;          /* MHD's epoll descriptor */
    ev_timer timer;    /* MHD_get_timeout() */
    ev_timer sweep;    /* head deadlines, while connections are open */
    struct conn conns; /* list head */
    bool probes_only;
    double head_deadline;
    int port;
    bool starting;   /* MHD messages are kept for `err`, not logged */
    char listen[64]; /* names this server in log messages */
    char last_error[256];
};

/* A rendering of /metrics, shared by the responses sending it. */
struct snapshot {
    unsigned refs;
    size_t len;
    char data[];
};

struct lv_admin {
    struct ev_loop *loop;
    struct server main, probe;
    bool ready;
    struct snapshot *last; /* the latest rendering (one reference) */
    double tokens;         /* renderings allowed now */
    ev_tstamp tokens_at;
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

static void snapshot_unref(void *cls)
{
    struct snapshot *s = cls;
    if (s && --s->refs == 0)
        free(s);
}

/* A fresh rendering, or NULL (logged) when it cannot be made. */
static struct snapshot *render(struct lv_admin *a)
{
    struct lv_buf body;
    lv_buf_init(&body, METRICS_INITIAL, METRICS_LIMIT);
    int rc = lv_metrics_render(&body);
    if (rc < 0) {
        lv_buf_free(&body);
        lv_error("admin %s: /metrics: cannot render: %s", a->main.listen, strerror(-rc));
        return NULL;
    }
    struct snapshot *s = lv_xmalloc(sizeof *s + body.len);
    s->refs = 1;
    s->len = body.len;
    memcpy(s->data, body.data, body.len);
    lv_buf_free(&body);
    return s;
}

/* The rendering to send: a new one while the token bucket allows it. */
static struct snapshot *current_metrics(struct lv_admin *a)
{
    ev_tstamp now = ev_now(a->loop);
    a->tokens += (now - a->tokens_at) * METRICS_RATE;
    if (a->tokens > METRICS_BURST)
        a->tokens = METRICS_BURST;
    a->tokens_at = now;
    if (a->tokens >= 1.0 || !a->last) {
        struct snapshot *s = render(a);
        if (s) {
            snapshot_unref(a->last);
            a->last = s;
            a->tokens -= 1.0;
        }
    }
    return a->last;
}

static enum MHD_Result reply_metrics(struct lv_admin *a, struct MHD_Connection *conn)
{
    struct snapshot *s = current_metrics(a);
    if (!s)
        return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot render metrics");
    s->refs++;
    struct MHD_Response *r =
        MHD_create_response_from_buffer_with_free_callback_cls(s->len, s->data, snapshot_unref, s);
    if (!r)
        snapshot_unref(s);
    return queue(conn, MHD_HTTP_OK, r, CONTENT_TYPE_METRICS);
}

static struct conn *conn_of(struct MHD_Connection *connection)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

/* A GET with a body is not something any probe or scraper sends. */
static bool announces_body(struct MHD_Connection *conn)
{
    const char *len =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return (len && strcmp(len, "0") != 0) ||
           MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
}

static enum MHD_Result route(struct server *s, struct MHD_Connection *conn, const char *url)
{
    struct lv_admin *a = s->a;
    if (strcmp(url, "/livez") == 0 || strcmp(url, "/healthz") == 0)
        return reply_text(conn, MHD_HTTP_OK, "ok");
    if (strcmp(url, "/readyz") == 0)
        return a->ready ? reply_text(conn, MHD_HTTP_OK, "ok")
                        : reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready");
    if (!s->probes_only && strcmp(url, "/metrics") == 0)
        return reply_metrics(a, conn);
    return reply_text(conn, MHD_HTTP_NOT_FOUND, "not found");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    static int headers_seen;
    struct server *s = cls;
    struct conn *c = conn_of(conn);
    if (c)
        c->head_done = true;
    /* Other methods are refused at once; MHD then closes the connection
     * instead of reading a body nobody wants. */
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
    /* MHD calls once when the headers are in and again when the request is
     * complete. A reply queued on the first call counts as early and costs
     * the keep-alive connection Prometheus would reuse, so answer on the
     * last call; a body, announced, is refused before it is read. */
    if (*req_cls == NULL) {
        if (announces_body(conn))
            return reply_text(conn, MHD_HTTP_CONTENT_TOO_LARGE, "no request body expected");
        *req_cls = &headers_seen;
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    return route(s, conn, url);
}

/* The next request on a kept-alive connection gets a deadline of its own. */
static void on_completed(void *cls, struct MHD_Connection *connection, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct server *s = cls;
    struct conn *c = conn_of(connection);
    if (c) {
        c->since = ev_now(s->a->loop);
        c->head_done = false;
    }
}

/* Connection bookkeeping and the head deadline ---------------------------- */

static void on_connection(void *cls, struct MHD_Connection *connection, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct server *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fd =
            MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct conn *c = lv_xcalloc(1, sizeof *c);
        c->s = s;
        c->fd = fd ? fd->connect_fd : -1;
        c->since = ev_now(s->a->loop);
        c->next = s->conns.next;
        c->prev = &s->conns;
        s->conns.next->prev = c;
        s->conns.next = c;
        *socket_context = c;
        if (!ev_is_active(&s->sweep))
            ev_timer_again(s->a->loop, &s->sweep);
        return;
    }
    struct conn *c = *socket_context;
    if (!c)
        return;
    c->prev->next = c->next;
    c->next->prev = c->prev;
    free(c);
    *socket_context = NULL;
    if (s->conns.next == &s->conns)
        ev_timer_stop(s->a->loop, &s->sweep);
}

static void run(struct server *s);

/* Shuts down the sockets of requests whose head is late; MHD sees the end
 * of the stream and closes them itself (it owns the descriptors). */
static void on_sweep(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct server *s = lv_container_of(w, struct server, sweep);
    ev_tstamp now = ev_now(loop);
    bool cut = false;
    for (struct conn *c = s->conns.next; c != &s->conns; c = c->next) {
        if (c->head_done || c->cut || c->fd < 0 || now - c->since < s->head_deadline)
            continue;
        shutdown(c->fd, SHUT_RDWR);
        c->cut = cut = true;
        lv_metrics.admin_timed_out++;
    }
    if (cut)
        run(s);
}

/* MHD's own messages: kept for `err` while starting, logged afterwards.
 * Refusals at the connection limits are not logged: a flood would turn
 * into a flood of log lines. */
__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct server *s = cls;
    vsnprintf(s->last_error, sizeof s->last_error, fmt, ap);
    s->last_error[strcspn(s->last_error, "\r\n")] = '\0';
    if (s->starting || strstr(s->last_error, "limit"))
        return;
    lv_warn("admin %s: %s", s->listen, s->last_error);
}

/* The loop side --------------------------------------------------------- */

static unsigned connections(struct server *s)
{
    const union MHD_DaemonInfo *i =
        MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    return i ? i->num_connections : 0;
}

/* At its connection limit MHD takes the listening socket out of its epoll
 * set, and puts it back at the start of a run, not when a connection
 * closes. So a run that closed connections is followed by another: else,
 * with every connection gone and nothing left to wake the loop, new
 * connections would wait in the backlog for ever (seen under the flood
 * test: the admin port stopped answering once the flood was over). */
static void run(struct server *s)
{
    unsigned before = connections(s);
    MHD_run(s->mhd);
    if (connections(s) < before)
        MHD_run(s->mhd);
    MHD_UNSIGNED_LONG_LONG ms;
    ev_timer_stop(s->a->loop, &s->timer);
    if (MHD_get_timeout(s->mhd, &ms) != MHD_YES)
        return;
    ev_timer_set(&s->timer, (double)ms / 1000.0, 0.0);
    ev_timer_start(s->a->loop, &s->timer);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    run(lv_container_of(w, struct server, io));
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    run(lv_container_of(w, struct server, timer));
}

static struct MHD_Daemon *start_daemon(struct server *s, const struct sockaddr_in *sa)
{
    unsigned max = s->probes_only ? PROBE_MAX_CONNECTIONS : MAX_CONNECTIONS;
    /* The kubelet probes from one address: no per-address limit there. */
    unsigned per_ip = s->probes_only ? 0 : PER_IP_LIMIT;
    size_t memory = s->probes_only ? PROBE_MEMORY : CONN_MEMORY;
    s->starting = true;
    /* One option and its arguments per line. */
    /* clang-format off */
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, s,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s, /* first, to catch every message */
        MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)sa,
        MHD_OPTION_CONNECTION_LIMIT, max,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, IDLE_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, memory,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_END);
    /* clang-format on */
    s->starting = false;
    return d;
}

static int server_start(struct lv_admin *a, struct server *s, const char *listen, bool probes_only,
                        char *err, size_t errlen)
{
    struct sockaddr_in sa;
    const char *key = probes_only ? "admin.probe_listen" : "admin.listen";
    s->a = a;
    s->probes_only = probes_only;
    s->head_deadline = probes_only ? PROBE_HEAD_DEADLINE : HEAD_DEADLINE;
    s->conns.next = s->conns.prev = &s->conns;
    snprintf(s->listen, sizeof s->listen, "%s", listen);
    ev_init(&s->io, on_io);
    ev_init(&s->timer, on_timer);
    ev_init(&s->sweep, on_sweep);
    s->sweep.repeat = SWEEP_EVERY;
    if (parse_listen(listen, &sa) < 0) {
        snprintf(err, errlen, "%s \"%s\": expected HOST:PORT, HOST an IPv4 address or localhost",
                 key, listen);
        return -EINVAL;
    }
    s->mhd = start_daemon(s, &sa);
    const union MHD_DaemonInfo *epoll = NULL, *port = NULL;
    if (s->mhd) {
        epoll = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
        port = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    }
    if (!epoll || !port) {
        snprintf(err, errlen, "admin: cannot listen on %s: %s", listen,
                 s->last_error[0] ? s->last_error : "the HTTP server did not start");
        return -EIO;
    }
    s->port = port->port;
    ev_io_set(&s->io, epoll->epoll_fd, EV_READ);
    ev_io_start(a->loop, &s->io);
    run(s); /* arms the timer */
    return 0;
}

static void server_stop(struct server *s)
{
    if (!s->a)
        return;
    ev_io_stop(s->a->loop, &s->io);
    ev_timer_stop(s->a->loop, &s->timer);
    ev_timer_stop(s->a->loop, &s->sweep);
    if (s->mhd)
        MHD_stop_daemon(s->mhd); /* notifies every close: the list empties */
    s->mhd = NULL;
}

struct lv_admin *lv_admin_start(struct ev_loop *loop, const char *listen, const char *probe_listen,
                                char *err, size_t errlen)
{
    struct lv_admin *a = lv_xcalloc(1, sizeof *a);
    a->loop = loop;
    a->tokens = METRICS_BURST;
    a->tokens_at = ev_now(loop);
    if (server_start(a, &a->main, listen, false, err, errlen) < 0 ||
        (probe_listen && server_start(a, &a->probe, probe_listen, true, err, errlen) < 0)) {
        lv_admin_stop(a);
        return NULL;
    }
    return a;
}

int lv_admin_port(const struct lv_admin *a)
{
    return a->main.port;
}

int lv_admin_probe_port(const struct lv_admin *a)
{
    return a->probe.mhd ? a->probe.port : 0;
}

void lv_admin_set_ready(struct lv_admin *a, bool ready)
{
    a->ready = ready;
}

void lv_admin_stop(struct lv_admin *a)
{
    if (!a)
        return;
    server_stop(&a->main);
    server_stop(&a->probe);
    snapshot_unref(a->last);
    free(a);
}
