/*
 * The HTTP transport (the contract is in http.h).
 *
 * One multi handle serves the loop: libcurl keeps the connection cache in
 * it, so every client's requests reuse idle keep-alive connections. libcurl
 * tells us which sockets to watch (socket callback) and when to wake it
 * (timer callback); the loop calls curl_multi_socket_action() when either
 * fires, then collects finished transfers. A socket callback may free the
 * very watcher whose event is being handled (CURL_POLL_REMOVE inside
 * curl_multi_socket_action), so nothing of a watcher is read after that
 * call (protocols.md §5.1).
 */
#define CURL_DISABLE_TYPECHECK /* plain prototypes: the calls go through `lib` below */
#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ev.h>
#include <zlib.h>

#include "http.h"
#include "logveil/log.h"
#include "logveil/metrics.h"
#include "logveil/util.h"

/* ---- libcurl, loaded on first use -----------------------------------------------------------
 * libcurl and what it links (OpenSSL, Kerberos, LDAP, libssh2, ...) are
 * loaded only when a configuration has an HTTP output: linked at start,
 * they add 1.5 MiB of resident memory to every logveil, shipping or not.
 * The calls below keep their names; each goes through this table. */

#define CURL_FUNCS(X)                                                                              \
    X(global_init) X(multi_init) X(multi_setopt) X(multi_assign) X(multi_socket_action)            \
    X(multi_info_read) X(multi_add_handle) X(multi_remove_handle) X(multi_cleanup) X(easy_init)    \
    X(easy_setopt) X(easy_getinfo) X(easy_cleanup) X(easy_strerror) X(slist_append)                \
    X(slist_free_all) X(url) X(url_set) X(url_get) X(url_cleanup) X(free)

static struct {
#define X(f) __typeof__(curl_##f) *f;
    CURL_FUNCS(X)
#undef X
    bool loaded;
} lib;

/* 0, or -ENOENT with `err` filled when libcurl cannot be loaded. */
static int load_curl(char *err, size_t errlen)
{
    if (lib.loaded)
        return 0;
    void *h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(err, errlen, "cannot load libcurl: %s (install libcurl4)", dlerror());
        return -ENOENT;
    }
#define X(f)                                                                                       \
    if (!(*(void **)&lib.f = dlsym(h, "curl_" #f))) {                                             \
        snprintf(err, errlen, "libcurl.so.4 has no curl_" #f);                                     \
        return -ENOENT;                                                                            \
    }
    CURL_FUNCS(X)
#undef X
    lib.loaded = true;
    return 0; /* never unloaded: handles may outlive any one client */
}

#undef curl_easy_setopt /* curl.h's argument-count checks; the table's calls take three */
#undef curl_easy_getinfo
#undef curl_multi_setopt
#define curl_global_init (*lib.global_init)
#define curl_multi_init (*lib.multi_init)
#define curl_multi_setopt (*lib.multi_setopt)
#define curl_multi_assign (*lib.multi_assign)
#define curl_multi_socket_action (*lib.multi_socket_action)
#define curl_multi_info_read (*lib.multi_info_read)
#define curl_multi_add_handle (*lib.multi_add_handle)
#define curl_multi_remove_handle (*lib.multi_remove_handle)
#define curl_multi_cleanup (*lib.multi_cleanup)
#define curl_easy_init (*lib.easy_init)
#define curl_easy_setopt (*lib.easy_setopt)
#define curl_easy_getinfo (*lib.easy_getinfo)
#define curl_easy_cleanup (*lib.easy_cleanup)
#define curl_easy_strerror (*lib.easy_strerror)
#define curl_slist_append (*lib.slist_append)
#define curl_slist_free_all (*lib.slist_free_all)
#define curl_url (*lib.url)
#define curl_url_set (*lib.url_set)
#define curl_url_get (*lib.url_get)
#define curl_url_cleanup (*lib.url_cleanup)
#define curl_free (*lib.free)

/* ---- the loop's multi handle -------------------------------------------------------------- */

struct lv_http {
    struct ev_loop *loop;
    CURLM *multi;
    ev_timer timer;
    int running;
    unsigned refs;
    long max_host; /* connections per host: the largest concurrency of its clients */
};

struct sock {
    ev_io io;
    struct lv_http *h;
};

static struct lv_http *shared; /* one loop per process */

struct lv_http_client {
    struct lv_http *h;
    const struct lv_http_conf *conf;
    char *name;
    char **urls;                 /* without a trailing '/' */
    size_t nurls, next_url;
    /* Per endpoint: after a failure it is passed over until down_until
     * (ev_now) while another one is not, for down_for seconds doubling up
     * to retry_max_delay; a success clears it. */
    struct endpoint_state {
        double down_until, down_for;
    } *eps;
    struct curl_slist *auth;     /* Authorization and tenant headers; hold secrets */
    char *userpwd;               /* "user:password" for basic auth; a secret */
    size_t userpwd_len;
    lv_http_ready_fn *ready;
    void *ready_arg;
    struct lv_output_counter *counter; /* request latency */
    struct lv_http_req *inflight; /* list of requests in flight */
    size_t ninflight;
    uint64_t requests;
    /* the circuit breaker */
    int failures;                /* in a row */
    bool open, probing;
    double open_for;
    ev_timer breaker;
    bool failing_logged;
};

static void check_done(struct lv_http *h);

static void on_socket(struct ev_loop *loop, ev_io *w, int revents)
{
    struct sock *s = (struct sock *)w;
    struct lv_http *h = s->h; /* s may be freed by the call below */
    int action = (revents & EV_READ ? CURL_CSELECT_IN : 0) |
                 (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
    (void)loop;
    curl_multi_socket_action(h->multi, w->fd, action, &h->running);
    check_done(h);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct lv_http *h = lv_container_of(w, struct lv_http, timer);
    (void)loop;
    (void)revents;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &h->running);
    check_done(h);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct lv_http *h = userp;
    struct sock *s = socketp;
    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            ev_io_stop(h->loop, &s->io);
            free(s);
        }
        curl_multi_assign(h->multi, fd, NULL);
        return 0;
    }
    int events = (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    if (!s) {
        s = lv_xcalloc(1, sizeof *s);
        s->h = h;
        curl_multi_assign(h->multi, fd, s);
    } else {
        ev_io_stop(h->loop, &s->io); /* libev forbids changing an active watcher */
    }
    ev_io_init(&s->io, on_socket, fd, events);
    ev_io_start(h->loop, &s->io);
    return 0;
}

/* libcurl must not be called from here (CURLMOPT_TIMERFUNCTION). */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct lv_http *h = userp;
    (void)multi;
    ev_timer_stop(h->loop, &h->timer);
    if (timeout_ms >= 0) {
        ev_timer_set(&h->timer, (double)timeout_ms / 1000.0, 0.);
        ev_timer_start(h->loop, &h->timer);
    }
    return 0;
}

static struct lv_http *http_get(struct ev_loop *loop)
{
    if (shared) {
        shared->refs++;
        return shared;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct lv_http *h = lv_xcalloc(1, sizeof *h);
    h->loop = loop;
    h->multi = curl_multi_init();
    if (!h->multi)
        abort(); /* out of memory */
    h->refs = 1;
    ev_timer_init(&h->timer, on_timer, 0., 0.);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, 64L);
    shared = h;
    return h;
}

static void http_put(struct lv_http *h)
{
    if (!h || --h->refs)
        return;
    ev_timer_stop(h->loop, &h->timer);
    curl_multi_cleanup(h->multi); /* closes the cached connections */
    free(h);
    shared = NULL;
}

/* ---- the circuit breaker ------------------------------------------------------------------------ */

static void breaker_due(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct lv_http_client *c = lv_container_of(w, struct lv_http_client, breaker);
    (void)loop;
    (void)revents;
    c->probing = true; /* half open: the next request is a probe */
    c->ready(c->ready_arg);
}

/* An outcome the endpoint is to blame for: no answer, 429 or 5xx. */
static bool endpoint_failed(long status, const char *error)
{
    return error || status == 0 || status == 429 || status >= 500;
}

static void breaker_open(struct lv_http_client *c)
{
    double max = c->conf->retry_max_delay > 0 ? c->conf->retry_max_delay : 30;
    c->open_for = c->open_for ? fmin(c->open_for * 2, max) : fmin(1.0, max);
    if (!c->open)
        lv_warn("output %s: %d requests in a row failed; pausing requests to the endpoint, "
                "probing it again in %.1f s",
                c->name, c->failures, c->open_for);
    c->open = true;
    c->probing = false;
    ev_timer_stop(c->h->loop, &c->breaker);
    ev_timer_set(&c->breaker, c->open_for, 0.);
    ev_timer_start(c->h->loop, &c->breaker);
}

static void breaker_outcome(struct lv_http_client *c, bool probe, bool failed)
{
    if (!failed) {
        bool was_open = c->open;
        c->failures = 0;
        c->open = c->probing = false;
        c->open_for = 0;
        ev_timer_stop(c->h->loop, &c->breaker);
        if (was_open)
            lv_info("output %s: the endpoint answers again", c->name);
        return;
    }
    c->failures++;
    if (probe || c->failures >= LV_HTTP_BREAKER_FAILURES)
        breaker_open(c);
}

/* ---- endpoints ---------------------------------------------------------------------------------- */

/* Round-robin over the endpoints not passed over after a failure; when
 * every one is, the one that failed longest ago. */
static size_t pick_endpoint(struct lv_http_client *c)
{
    double now = ev_now(c->h->loop);
    size_t best = c->next_url;
    for (size_t k = 0; k < c->nurls; k++) {
        size_t i = (c->next_url + k) % c->nurls;
        if (c->eps[i].down_until <= now) {
            best = i;
            break;
        }
        if (c->eps[i].down_until < c->eps[best].down_until)
            best = i;
    }
    c->next_url = (best + 1) % c->nurls;
    return best;
}

static void endpoint_outcome(struct lv_http_client *c, size_t i, bool failed)
{
    struct endpoint_state *e = &c->eps[i];
    if (!failed) {
        e->down_until = e->down_for = 0;
        return;
    }
    double max = c->conf->retry_max_delay > 0 ? c->conf->retry_max_delay : 30;
    e->down_for = e->down_for ? fmin(e->down_for * 2, max) : fmin(1.0, max);
    e->down_until = ev_now(c->h->loop) + e->down_for;
}

/* ---- requests ---------------------------------------------------------------------------------- */

static size_t on_write(char *data, size_t size, size_t n, void *arg)
{
    struct lv_http_req *r = arg;
    size_t len = size * n;
    if (r->on_data && !r->on_data(r, data, len))
        return 0; /* aborts the transfer */
    return len;
}

static void unlink_req(struct lv_http_client *c, struct lv_http_req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        c->inflight = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->next = r->prev = NULL;
    c->ninflight--;
}

/* Frees what the client attached to `r`, then tells the caller. */
/* Frees what the client attached to `r` (its headers copied the
 * Authorization line: wiped first), then tells the caller. After a success,
 * the output is told it may offer more; after a failure the pipeline's
 * backoff decides when it retries, not this. */
static void finish(struct lv_http_req *r, long status, const char *error)
{
    struct lv_http_client *c = r->client;
    unlink_req(c, r);
    curl_multi_remove_handle(c->h->multi, r->easy);
    curl_easy_cleanup(r->easy);
    for (struct curl_slist *h = r->headers; h; h = h->next)
        explicit_bzero(h->data, strlen(h->data));
    curl_slist_free_all(r->headers);
    r->easy = NULL;
    r->headers = NULL;
    bool failed = endpoint_failed(status, error);
    if (!r->cancelled && c->counter)
        lv_metrics_latency(c->counter, ev_time() - r->started);
    if (!r->cancelled) {
        if (c->nurls > 1)
            endpoint_outcome(c, r->endpoint, failed);
        breaker_outcome(c, r->probe, failed);
    }
    bool ready = !r->cancelled && !failed;
    r->on_done(r, status, error);
    if (ready && c->ready)
        c->ready(c->ready_arg);
}

static void check_done(struct lv_http *h)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(h->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct lv_http_req *r;
        long status = 0;
        CURLcode result = m->data.result;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        const char *error = NULL;
        if (result != CURLE_OK) {
            error = r->errbuf[0] ? r->errbuf : curl_easy_strerror(result);
            status = 0;
        }
        finish(r, status, error);
    }
}

static void set_tls(CURL *e, const struct lv_http_conf *conf)
{
    if (conf->tls.ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, conf->tls.ca_file);
    if (conf->tls.cert_file)
        curl_easy_setopt(e, CURLOPT_SSLCERT, conf->tls.cert_file);
    if (conf->tls.key_file)
        curl_easy_setopt(e, CURLOPT_SSLKEY, conf->tls.key_file);
    if (conf->tls.insecure_skip_verify) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
}

static struct curl_slist *request_headers(const struct lv_http_client *c,
                                          const struct lv_http_req *r)
{
    char line[160];
    struct curl_slist *h = NULL;
    snprintf(line, sizeof line, "Content-Type: %s", r->content_type);
    h = curl_slist_append(h, line);
    if (r->body_gzip)
        h = curl_slist_append(h, "Content-Encoding: gzip");
    h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip on large bodies */
    for (const struct curl_slist *a = c->auth; a; a = a->next)
        h = curl_slist_append(h, a->data);
    if (!h)
        abort();
    return h;
}

static CURL *make_easy(struct lv_http_client *c, struct lv_http_req *r)
{
    const struct lv_http_conf *conf = c->conf;
    char url[2048];
    CURL *e = curl_easy_init();
    if (!e)
        abort();
    r->endpoint = pick_endpoint(c);
    snprintf(url, sizeof url, "%s%s", c->urls[r->endpoint], r->path);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(conf->connect_timeout * 1000));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(conf->timeout * 1000));
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, 256L * 1024);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (c->userpwd) {
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(e, CURLOPT_USERPWD, c->userpwd);
    }
    set_tls(e, conf);
    return e;
}

bool lv_http_can_send(const struct lv_http_client *c)
{
    if (c->open && !c->probing)
        return false;
    if (c->open)
        return c->ninflight == 0; /* one probe at a time */
    return c->ninflight < (size_t)(c->conf->concurrency > 0 ? c->conf->concurrency : 2);
}

int lv_http_send(struct lv_http_client *c, struct lv_http_req *r)
{
    if (!lv_http_can_send(c))
        return -EAGAIN;
    r->client = c;
    r->cancelled = false;
    r->probe = c->open;
    r->errbuf[0] = '\0';
    r->headers = request_headers(c, r);
    r->easy = make_easy(c, r);
    r->started = ev_time();
    r->prev = NULL;
    r->next = c->inflight;
    if (c->inflight)
        c->inflight->prev = r;
    c->inflight = r;
    c->ninflight++;
    c->requests++;
    curl_multi_add_handle(c->h->multi, r->easy); /* the timer callback starts it */
    return 0;
}

bool lv_http_open(const struct lv_http_client *c)
{
    return c->open;
}

size_t lv_http_in_flight(const struct lv_http_client *c)
{
    return c->ninflight;
}

uint64_t lv_http_requests(const struct lv_http_client *c)
{
    return c->requests;
}

void lv_http_cancel_all(struct lv_http_client *c)
{
    while (c->inflight) {
        struct lv_http_req *r = c->inflight;
        r->cancelled = true;
        finish(r, 0, "cancelled");
    }
}

/* ---- clients ------------------------------------------------------------------------------------- */

static char *trimmed_url(const char *u)
{
    size_t n = strlen(u);
    while (n && u[n - 1] == '/')
        n--;
    return lv_xstrndup(u, n);
}

/* "Authorization: <scheme> <secret>" in a header list; the temporary copy is wiped. */
static struct curl_slist *secret_header(struct curl_slist *list, const char *scheme,
                                        const char *secret, size_t len)
{
    size_t n = strlen("Authorization: ") + strlen(scheme) + 1 + len + 1;
    char *line = lv_xmalloc(n);
    snprintf(line, n, "Authorization: %s %.*s", scheme, (int)len, secret);
    list = curl_slist_append(list, line);
    explicit_bzero(line, n);
    free(line);
    return list;
}

static void setup_auth(struct lv_http_client *c, const struct lv_http_conf *conf)
{
    if (conf->username) {
        c->userpwd_len = strlen(conf->username) + 1 + conf->password_len;
        c->userpwd = lv_xmalloc(c->userpwd_len + 1);
        snprintf(c->userpwd, c->userpwd_len + 1, "%s:%.*s", conf->username,
                 (int)conf->password_len, conf->password ? conf->password : "");
    }
    if (conf->api_key)
        c->auth = secret_header(c->auth, "ApiKey", conf->api_key, conf->api_key_len);
    if (conf->bearer_token)
        c->auth = secret_header(c->auth, "Bearer", conf->bearer_token, conf->bearer_token_len);
    if (conf->tenant) {
        char line[300];
        snprintf(line, sizeof line, "X-Scope-OrgID: %s", conf->tenant);
        c->auth = curl_slist_append(c->auth, line);
    }
}

struct lv_http_client *lv_http_client_new(struct ev_loop *loop, const struct lv_http_conf *conf,
                                          const char *name, lv_http_ready_fn *ready, void *arg,
                                          char *err, size_t errlen)
{
    size_t n = conf->nurls + (conf->url != NULL);
    if (n == 0) {
        snprintf(err, errlen, "no url given");
        return NULL;
    }
    if (load_curl(err, errlen) < 0)
        return NULL;
    struct lv_http_client *c = lv_xcalloc(1, sizeof *c);
    c->h = http_get(loop);
    c->conf = conf;
    c->name = lv_xstrdup(name);
    c->counter = lv_metrics_output(name);
    c->urls = lv_xcalloc(n, sizeof *c->urls);
    c->eps = lv_xcalloc(n, sizeof *c->eps);
    if (conf->url)
        c->urls[c->nurls++] = trimmed_url(conf->url);
    for (size_t i = 0; i < conf->nurls; i++)
        c->urls[c->nurls++] = trimmed_url(conf->urls[i]);
    c->ready = ready;
    c->ready_arg = arg;
    ev_timer_init(&c->breaker, breaker_due, 0., 0.);
    setup_auth(c, conf);
    long conns = conf->concurrency > 0 ? conf->concurrency : 2;
    if (conns > c->h->max_host) {
        c->h->max_host = conns;
        curl_multi_setopt(c->h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, conns);
    }
    return c;
}

void lv_http_client_free(struct lv_http_client *c)
{
    if (!c)
        return;
    c->ready = NULL;
    lv_http_cancel_all(c);
    ev_timer_stop(c->h->loop, &c->breaker);
    for (size_t i = 0; i < c->nurls; i++)
        free(c->urls[i]);
    free(c->urls);
    free(c->eps);
    for (struct curl_slist *a = c->auth; a; a = a->next)
        explicit_bzero(a->data, strlen(a->data));
    curl_slist_free_all(c->auth);
    if (c->userpwd)
        explicit_bzero(c->userpwd, c->userpwd_len);
    free(c->userpwd);
    free(c->name);
    http_put(c->h);
    free(c);
}

/* ---- configuration ------------------------------------------------------------------------------- */

#define TLS(f) offsetof(__typeof__(((struct lv_http_conf *)0)->tls), f)
const struct lv_conf_map_key lv_http_tls_keys[] = {
    {.name = "ca_file", .type = &lv_conf_map_str, .off = TLS(ca_file), .flags = LV_CONF_MAP_NONEMPTY},
    {.name = "cert_file", .type = &lv_conf_map_str, .off = TLS(cert_file),
     .flags = LV_CONF_MAP_NONEMPTY},
    {.name = "key_file", .type = &lv_conf_map_str, .off = TLS(key_file), .flags = LV_CONF_MAP_NONEMPTY},
    {.name = "insecure_skip_verify", .type = &lv_conf_map_bool, .off = TLS(insecure_skip_verify)},
    {0},
};
#undef TLS

void lv_http_conf_init(struct lv_http_conf *c)
{
    c->connect_timeout = 5;
    c->timeout = 30;
    c->concurrency = 2;
    c->gzip = true;
    c->retry_max_delay = 30;
}

/* Why `u` is not a URL this transport can use; NULL when it is. */
static const char *url_problem(const char *u)
{
    static char why_load[200];
    if (load_curl(why_load, sizeof why_load) < 0)
        return why_load;
    CURLU *h = curl_url();
    char *scheme = NULL, *host = NULL, *user = NULL;
    const char *why = NULL;
    if (curl_url_set(h, CURLUPART_URL, u, 0) != CURLUE_OK)
        why = "not a URL";
    else if (curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
             (strcmp(scheme, "http") && strcmp(scheme, "https")))
        why = "the scheme is not http or https";
    else if (curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host)
        why = "there is no host";
    else if (curl_url_get(h, CURLUPART_USER, &user, 0) == CURLUE_OK)
        why = "it holds user info: give username and password_file instead";
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_url_cleanup(h);
    return why;
}

/* The URL as a message may show it: without any user info. */
static void check_url(struct lv_conf_map_ctx *ctx, const yaml_node_t *node, const char *u,
                      const char *where)
{
    const char *why = url_problem(u);
    if (!why)
        return;
    const char *at = strchr(u, '@');
    const char *shown = at && strchr(u, ':') < at ? at + 1 : u;
    lv_conf_map_error(ctx, node, where, "bad URL \"%s%.80s\": %s, expected such as "
                      "http://127.0.0.1:9200 or https://es.example:9200",
                      shown == u ? "" : "...@", shown, why);
}

static void check_readable(struct lv_conf_map_ctx *ctx, const yaml_node_t *tls, const char *name,
                           const char *path, const char *where)
{
    char at[LV_CONF_MAP_WHERE], key[LV_CONF_MAP_WHERE];
    if (path && access(path, R_OK) < 0)
        lv_conf_map_error(ctx, tls ? lv_conf_map_get(ctx, tls, name) : NULL,
                          lv_conf_map_join(at, lv_conf_map_join(key, where, "tls"), name),
                          "cannot read \"%s\": %s", path, strerror(errno));
}

void lv_http_conf_check(struct lv_conf_map_ctx *ctx, const yaml_node_t *node,
                        const struct lv_http_conf *c, const char *where)
{
    char at[LV_CONF_MAP_WHERE];
    const yaml_node_t *url = lv_conf_map_get(ctx, node, "url");
    const yaml_node_t *urls = lv_conf_map_get(ctx, node, "urls");
    if (!c->url && !c->nurls)
        lv_conf_map_error(ctx, node, where, "missing required key \"url\" (or \"urls\")");
    if (c->url && url)
        check_url(ctx, url, c->url, lv_conf_map_join(at, where, "url"));
    for (size_t i = 0; urls && i < c->nurls; i++) {
        char item[LV_CONF_MAP_WHERE];
        snprintf(item, sizeof item, "%s.urls[%zu]", where, i);
        check_url(ctx, urls, c->urls[i], item);
    }
    if (c->password && !c->username)
        lv_conf_map_error(ctx, node, where, "password needs username");
    if (c->username && !c->password && !lv_conf_map_get(ctx, node, "password") &&
        !lv_conf_map_get(ctx, node, "password_file")) /* (a bad one is reported already) */
        lv_conf_map_error(ctx, node, where, "username needs password or password_file");
    const yaml_node_t *tls = lv_conf_map_get(ctx, node, "tls");
    check_readable(ctx, tls, "ca_file", c->tls.ca_file, where);
    check_readable(ctx, tls, "cert_file", c->tls.cert_file, where);
    check_readable(ctx, tls, "key_file", c->tls.key_file, where);
}

/* ---- gzip bodies --------------------------------------------------------------------------------- */

struct lv_gz {
    z_stream z;
    int level;
};

struct lv_gz *lv_gz_new(int level)
{
    struct lv_gz *g = lv_xcalloc(1, sizeof *g);
    g->level = level;
    if (deflateInit2(&g->z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        abort(); /* only out of memory */
    return g;
}

void lv_gz_free(struct lv_gz *g)
{
    if (!g)
        return;
    deflateEnd(&g->z);
    free(g);
}

void lv_gz_begin(struct lv_gz *g, struct lv_buf *out)
{
    deflateReset(&g->z);
    out->len = 0;
}

static int gz_run(struct lv_gz *g, struct lv_buf *out, const void *data, size_t len, int flush)
{
    g->z.next_in = (Bytef *)(uintptr_t)data;
    g->z.avail_in = (uInt)len;
    for (;;) {
        if (lv_buf_reserve(out, 16384) < 0)
            return -ENOBUFS;
        g->z.next_out = (Bytef *)out->data + out->len;
        g->z.avail_out = (uInt)(out->cap - out->len);
        int rc = deflate(&g->z, flush);
        out->len = out->cap - g->z.avail_out;
        if (rc == Z_STREAM_END || (flush == Z_NO_FLUSH && g->z.avail_in == 0 &&
                                   g->z.avail_out > 0))
            return 0;
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return -EIO;
    }
}

int lv_gz_write(struct lv_gz *g, struct lv_buf *out, const void *data, size_t len)
{
    return gz_run(g, out, data, len, Z_NO_FLUSH);
}

int lv_gz_end(struct lv_gz *g, struct lv_buf *out)
{
    return gz_run(g, out, NULL, 0, Z_FINISH);
}
