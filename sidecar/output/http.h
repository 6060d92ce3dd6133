/*
 * The HTTP transport shared by the Elasticsearch and Loki outputs: libcurl's
 * multi socket interface driven by the libev loop (socket and timer
 * callbacks, no polling, no thread per request), one multi handle for the
 * loop so connections are kept alive and reused, at most `concurrency`
 * requests in flight per client, connect and total timeouts, TLS verified
 * by default, credentials from files or the environment, and a circuit
 * breaker per client.
 *
 * Several URLs: requests go round-robin; an endpoint whose request failed
 * for its own sake is passed over while another is not, for 1 s doubling
 * up to retry_max_delay, so a dead node among live ones costs one failed
 * request per pause, not every other request.
 *
 * The breaker: after LV_HTTP_BREAKER_FAILURES requests in a row that failed
 * for the endpoint's sake (no connection, a timeout, 429 or 5xx), the
 * client opens: lv_http_send() refuses at once (-EAGAIN) instead of
 * hammering a dead endpoint. After a delay (1 s, doubling up to
 * retry_max_delay) it lets one request through as a probe; success closes
 * it, failure opens it again for longer. Each time it lets requests through
 * again it calls the client's `ready` callback, so the output can offer what
 * waits (lv_output_ready()).
 *
 * Secrets: the password, API key and bearer token are sent in headers the
 * client builds once; no message this module writes (logs, the error text
 * given to callbacks) holds a header, a URL's user info or a body.
 *
 * Ownership: a client owns its easy handles and headers; a request is the
 * caller's (usually embedded in a larger struct) and must stay valid, with
 * its body, until its done callback has run. One thread: the loop's.
 */
#ifndef LOGVEIL_SIDECAR_OUTPUT_HTTP_H
#define LOGVEIL_SIDECAR_OUTPUT_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf_map.h"
#include "logveil/util.h"

struct ev_loop;

#define LV_HTTP_BREAKER_FAILURES 5

/* Options shared by the HTTP outputs, bound from their config sections by
 * the keys LV_HTTP_KEYS() lists. */
struct lv_http_conf {
    char *url;
    char **urls;           /* several endpoints: round-robin, failing over */
    size_t nurls;
    double connect_timeout; /* seconds */
    double timeout;         /* whole request, seconds */
    int concurrency;        /* requests in flight */
    bool gzip;              /* compress request bodies */
    double retry_max_delay; /* the breaker's longest pause, seconds */
    struct {
        char *ca_file, *cert_file, *key_file;
        bool insecure_skip_verify;
    } tls;
    char *username;
    char *password;
    size_t password_len;
    char *api_key;          /* Elasticsearch: "Authorization: ApiKey <key>" */
    size_t api_key_len;
    char *bearer_token;
    size_t bearer_token_len;
    char *tenant;           /* Loki: X-Scope-OrgID */
};

extern const struct lv_conf_map_key lv_http_tls_keys[];

/* Table entries for the fields of a struct lv_http_conf at member `m` of
 * struct `T`. `api_key` and `tenant` are listed by the outputs that have
 * them. */
#define LV_HTTP_KEY(n, t, T, f) .name = (n), .type = (t), .off = offsetof(T, f)
#define LV_HTTP_KEYS(T, m)                                                                         \
    {LV_HTTP_KEY("url", &lv_conf_map_str, T, m.url), .flags = LV_CONF_MAP_NONEMPTY},              \
    {LV_HTTP_KEY("urls", &lv_conf_map_strlist, T, m.urls), .off2 = offsetof(T, m.nurls)},         \
    {LV_HTTP_KEY("connect_timeout", &lv_conf_map_double, T, m.connect_timeout), .min = 0.001,     \
     .max = 3600},                                                                                \
    {LV_HTTP_KEY("timeout", &lv_conf_map_double, T, m.timeout), .min = 0.001, .max = 3600},       \
    {LV_HTTP_KEY("concurrency", &lv_conf_map_int, T, m.concurrency), .min = 1, .max = 64},        \
    {LV_HTTP_KEY("gzip", &lv_conf_map_bool, T, m.gzip)},                                          \
    {LV_HTTP_KEY("retry_max_delay", &lv_conf_map_double, T, m.retry_max_delay), .min = 0.01,      \
     .max = 3600},                                                                                \
    {LV_HTTP_KEY("tls", &lv_conf_map_map, T, m.tls), .sub = lv_http_tls_keys},                    \
    {LV_HTTP_KEY("username", &lv_conf_map_str, T, m.username), .flags = LV_CONF_MAP_NONEMPTY},    \
    {LV_HTTP_KEY("password", &lv_conf_map_secret, T, m.password),                                 \
     .off2 = offsetof(T, m.password_len), .flags = LV_CONF_MAP_FILE},                             \
    {LV_HTTP_KEY("bearer_token", &lv_conf_map_secret, T, m.bearer_token),                         \
     .off2 = offsetof(T, m.bearer_token_len), .flags = LV_CONF_MAP_FILE}

/* Defaults: timeouts 5 s / 30 s, concurrency 2, gzip on, retry_max_delay 30 s. */
void lv_http_conf_init(struct lv_http_conf *c);
/* Checks the URLs (http or https, a host, no user info: credentials go in
 * username/password_file), that one of url and urls is given, that password
 * comes with username, and that the TLS files can be read. `path_hint` is
 * appended to the message for a URL with a path it will add (e.g. "/_bulk"). */
void lv_http_conf_check(struct lv_conf_map_ctx *ctx, const yaml_node_t *node,
                        const struct lv_http_conf *c, const char *where);

struct lv_http_client;
struct lv_http_req;

/* A piece of the response body (decompressed). Return false to abort the
 * transfer (it then completes with a curl error). */
typedef bool lv_http_data_fn(struct lv_http_req *r, const char *data, size_t len);
/* The request is over: `status` is the HTTP status (0 when none came),
 * `error` a message when the transfer failed (NULL otherwise), `cancelled`
 * when lv_http_cancel_all() ended it. The request may be freed here. */
typedef void lv_http_done_fn(struct lv_http_req *r, long status, const char *error);
/* The client lets requests through again (its breaker closed or is probing). */
typedef void lv_http_ready_fn(void *arg);

struct lv_http_req {
    /* Set by the caller before lv_http_send(). */
    const char *path;             /* appended to the endpoint's URL, e.g. "/_bulk" */
    const char *content_type;
    const char *body;             /* kept valid until done */
    size_t body_len;
    bool body_gzip;               /* the body is gzip-compressed */
    lv_http_data_fn *on_data;
    lv_http_done_fn *on_done;
    /* The client's. */
    struct lv_http_client *client;
    void *easy;
    struct curl_slist *headers;
    char errbuf[256];
    bool cancelled;               /* true in on_done when cancelled */
    bool probe;
    size_t endpoint;              /* index of the URL it went to */
    double started;               /* ev_time() when sent, for the latency histogram */
    struct lv_http_req *next, *prev;
};

/* `name` names the output in log lines. NULL with `err` filled on failure. */
struct lv_http_client *lv_http_client_new(struct ev_loop *loop, const struct lv_http_conf *conf,
                                          const char *name, lv_http_ready_fn *ready, void *arg,
                                          char *err, size_t errlen);
/* Starts `r`. 0; -EAGAIN when `concurrency` requests are in flight or the
 * breaker is open (offer it again after `ready`). */
int lv_http_send(struct lv_http_client *c, struct lv_http_req *r);
/* Whether a request would be taken now. */
bool lv_http_can_send(const struct lv_http_client *c);
size_t lv_http_in_flight(const struct lv_http_client *c);
/* The breaker is open (requests refused, or one probe let through). */
bool lv_http_open(const struct lv_http_client *c);
/* Requests sent, for the benchmarks (also in the output's metrics). */
uint64_t lv_http_requests(const struct lv_http_client *c);
/* Ends every request in flight now; each done callback runs with
 * r->cancelled set and status 0. */
void lv_http_cancel_all(struct lv_http_client *c);
/* Cancels what is in flight and frees the client; accepts NULL. */
void lv_http_client_free(struct lv_http_client *c);

/* gzip (RFC 1952) of a body built piece by piece: the outputs write their
 * bodies through this, so a compressed body never exists uncompressed. */
struct lv_gz;
struct lv_gz *lv_gz_new(int level);
void lv_gz_free(struct lv_gz *g);
/* Starts a new body in `out` (cleared). */
void lv_gz_begin(struct lv_gz *g, struct lv_buf *out);
int lv_gz_write(struct lv_gz *g, struct lv_buf *out, const void *data, size_t len);
int lv_gz_end(struct lv_gz *g, struct lv_buf *out);

#endif
