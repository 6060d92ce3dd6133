/*
 * The Elasticsearch / OpenSearch output: records go in _bulk requests of
 * NDJSON, `create` actions by default (the only action a data stream takes;
 * `index` on request), each with an `_id` computed from where the record
 * came from, so that a record sent again (a retry, a replay after a crash,
 * the spool) is the same document: Elasticsearch answers 409 to a second
 * `create`, which counts as delivered.
 *
 * The _id is 40 hex digits: the source's identity (a hash of its name,
 * lv_pos.source), the record's end offset in it, and an XXH64 of the
 * record's length and its first and last 64 bytes (where its time is, the
 * record's own or the @timestamp enrichment adds at the end). Two records
 * get one _id only if all of these agree, which a truncated or rewritten
 * file with other lines at the same offsets does not produce. Uniqueness
 * holds within one index: a replay that lands in the next day's index is a
 * second document.
 *
 * Requests: the output gathers the batches the pipeline hands it and sends
 * a request when batch_max_records or batch_max_bytes (uncompressed NDJSON)
 * are reached or flush_interval has passed since records began to wait,
 * with at most `concurrency` requests in flight. A request may hold the end
 * of one batch and the start of the next; a batch is reported once every
 * request holding its records has answered, with one outcome per record.
 *
 * Answers. The whole _bulk response is parsed as it arrives, whatever its
 * size (es_bulk.h); `items` is in the order of the actions sent. Per
 * item: 2xx and 409 are delivered; 429 and 5xx are retried (the pipeline
 * resends just those records, sidecar/ack.h); any other status is a
 * permanent rejection: the record goes to the dead-letter file with the
 * status and Elasticsearch's error type and reason, and is counted (reason
 * rejected), never retried. A request that fails as a whole (no
 * connection, a timeout, 429, 5xx, 401/403 of a misconfigured credential)
 * is retried whole, without limit; 413 halves the request size first; 400
 * (a body Elasticsearch could not read, which would be our bug)
 * dead-letters its records with the reason, since sending it again would
 * fail again.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <ev.h>

#include "deadletter.h"
#include "es_bulk.h"
#include "http.h"
#include "logveil/log.h"
#include "logveil/stage.h"
#include "sample.h"

enum es_action { ES_CREATE, ES_INDEX };

struct es_opts {
    struct lv_http_conf http;
    char *index;            /* strftime pattern on the record's @timestamp (UTC) */
    char *data_stream;      /* instead of index: a data stream's name */
    int action;             /* enum es_action */
    size_t batch_max_bytes; /* NDJSON bytes in one request, before compression */
    int batch_max_records;
    double flush_interval;  /* seconds records may wait for a fuller request */
    char *dead_letter;
    bool document_id;       /* send the computed _id (idempotent resends) */
};

#define MIN_REQUEST_BYTES (64 * 1024)
#define BULK_PATH "/_bulk?filter_path=errors,items.*.status,items.*.error.type,items.*.error.reason"

/* A batch accepted and not yet reported. */
struct es_entry {
    struct lv_batch *b;
    uint8_t *outcomes;  /* one enum lv_outcome per record */
    size_t packed;      /* records put into requests so far */
    size_t pending;     /* requests holding some of its records, not answered */
    struct es_entry *prev, *next;
};

struct es_slice {
    struct es_entry *e;
    size_t from, to;
};

struct es_req {
    struct lv_http_req http; /* first: the done callback gets this */
    struct es_ctx *c;
    struct lv_buf body;
    struct es_slice *slices;
    size_t nslices, capslices, nrecs;
    /* the response, parsed as it comes */
    struct lv_es_bulk *answer;
    size_t slice_at, rec_at; /* the record the next item is about */
    char head[512];     /* the start of the body, for messages */
    size_t head_len;
};

struct es_ctx {
    struct lv_output *out;
    const struct es_opts *o;
    const char *name;
    struct lv_http_client *http;
    struct lv_deadletter *dl;
    struct lv_gz *gz;
    struct es_entry *head, *tail;
    struct es_entry *fill;        /* the first entry with records not packed */
    size_t unpacked_records, unpacked_bytes;
    size_t max_bytes;             /* batch_max_bytes, halved by 413 answers */
    ev_timer flush;
    bool flush_due;
    bool failing;                 /* a request-level failure was logged */
    bool destroying;
    int64_t index_sec;            /* the second whose index name is cached */
    char index[256];
    size_t index_len;
    uint64_t rejected;
};

static void pump(struct es_ctx *c);

/* ---- the body ------------------------------------------------------------------------------ */

static void index_name(struct es_ctx *c, int64_t time_ns)
{
    int64_t sec = time_ns / 1000000000 - (time_ns % 1000000000 < 0);
    if (c->index_len && sec == c->index_sec)
        return;
    time_t t = (time_t)sec;
    struct tm tm;
    gmtime_r(&t, &tm);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    c->index_len = strftime(c->index, sizeof c->index, c->o->index, &tm); /* the user's pattern */
#pragma GCC diagnostic pop
    c->index_sec = sec;
}

static char *hex(char *p, uint64_t v, int digits)
{
    static const char x[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; i--, v >>= 4)
        p[i] = x[v & 15];
    return p + digits;
}

/* The record's length, first and last 64 bytes, hashed: the text's part of
 * the _id, cheap on long records. */
static uint64_t text_hash(const char *text, uint32_t len)
{
    char buf[4 + 128];
    if (len <= 128)
        return lv_sample_hash(text, len);
    memcpy(buf, &len, 4);
    memcpy(buf + 4, text, 64);
    memcpy(buf + 68, text + len - 64, 64);
    return lv_sample_hash(buf, sizeof buf);
}

/* {"create":{"_index":"logs-2025.01.01","_id":"<40 hex>"}} and a newline. */
static size_t action_line(struct es_ctx *c, const struct lv_record *r, const char *text, char *buf)
{
    const char *index = c->o->data_stream;
    size_t ilen = index ? strlen(index) : 0;
    if (!index) {
        index_name(c, r->time_ns);
        index = c->index;
        ilen = c->index_len;
    }
    static const char create[] = "{\"create\":{\"_index\":\"", idx[] = "{\"index\":{\"_index\":\"";
    char *p = buf;
    if (c->o->action == ES_INDEX) {
        memcpy(p, idx, sizeof idx - 1);
        p += sizeof idx - 1;
    } else {
        memcpy(p, create, sizeof create - 1);
        p += sizeof create - 1;
    }
    memcpy(p, index, ilen);
    p += ilen;
    *p++ = '"';
    if (c->o->document_id) {
        memcpy(p, ",\"_id\":\"", 8);
        p = hex(p + 8, r->pos.source, 8);
        p = hex(p, r->pos.end, 16);
        p = hex(p, text_hash(text, r->len), 16);
        *p++ = '"';
    }
    memcpy(p, "}}\n", 3);
    return (size_t)(p + 3 - buf);
}

static int body_put(struct es_ctx *c, struct es_req *q, const void *data, size_t len)
{
    if (c->o->http.gzip)
        return lv_gz_write(c->gz, &q->body, data, len);
    return lv_buf_append(&q->body, data, len);
}

static void add_slice(struct es_req *q, struct es_entry *e, size_t from, size_t to)
{
    if (q->nslices == q->capslices) {
        q->capslices = q->capslices ? q->capslices * 2 : 4;
        q->slices = lv_xrealloc(q->slices, q->capslices * sizeof *q->slices);
    }
    q->slices[q->nslices++] = (struct es_slice){e, from, to};
    e->pending++;
}

/* Packs records from c->fill on into `q`, up to the request's bounds (one
 * record at least). */
static int pack(struct es_ctx *c, struct es_req *q)
{
    size_t bytes = 0, max_records = (size_t)c->o->batch_max_records;
    char line[400];
    int rc = 0;
    while (c->fill && q->nrecs < max_records && (bytes < c->max_bytes || !q->nrecs) && rc == 0) {
        struct es_entry *e = c->fill;
        size_t from = e->packed;
        while (e->packed < e->b->n && q->nrecs < max_records &&
               (bytes < c->max_bytes || !q->nrecs) && rc == 0) {
            const struct lv_record *r = &e->b->recs[e->packed];
            const char *text = e->b->data.data + r->off;
            size_t n = action_line(c, r, text, line);
            rc |= body_put(c, q, line, n);
            rc |= body_put(c, q, text, r->len + 1u); /* the record and its '\n' */
            bytes += n + r->len + 1u;
            c->unpacked_bytes -= r->len + 1u;
            e->packed++;
            q->nrecs++;
        }
        add_slice(q, e, from, e->packed);
        if (e->packed == e->b->n)
            c->fill = e->next;
    }
    c->unpacked_records -= q->nrecs;
    return rc;
}

/* ---- the response ------------------------------------------------------------------------------ */

/* The record the next item is about, or NULL past the last one sent. */
static const struct es_slice *item_slice(struct es_req *q, size_t *rec)
{
    while (q->slice_at < q->nslices) {
        const struct es_slice *s = &q->slices[q->slice_at];
        if (q->rec_at < s->from)
            q->rec_at = s->from;
        if (q->rec_at < s->to) {
            *rec = q->rec_at;
            return s;
        }
        if (++q->slice_at < q->nslices)
            q->rec_at = q->slices[q->slice_at].from; /* another batch's numbering */
    }
    return NULL;
}

static enum lv_outcome item_outcome(long status)
{
    if ((status >= 200 && status < 300) || status == 409)
        return LV_SENT;
    if (status == 429 || status >= 500 || status == 0)
        return LV_RETRY;
    return LV_REJECTED;
}

static void dead_letter(struct es_ctx *c, const struct lv_batch *b, size_t rec, long status,
                        const char *type, size_t tlen, const char *reason, size_t rlen)
{
    const struct lv_record *r = &b->recs[rec];
    c->rejected++;
    if (c->dl)
        lv_deadletter_write(c->dl, b->data.data + r->off, r->len, (int)status, type, tlen,
                            reason, rlen);
}

/* One item of the answer: the outcome of the record it is about. */
static bool on_item(void *arg, const struct lv_es_item *it)
{
    struct es_req *q = arg;
    size_t rec;
    const struct es_slice *s = item_slice(q, &rec);
    if (!s)
        return false; /* more items than records sent */
    enum lv_outcome o = item_outcome(it->status);
    s->e->outcomes[rec] = (uint8_t)o;
    if (o == LV_REJECTED)
        dead_letter(q->c, s->e->b, rec, it->status, it->type, it->type_len, it->reason,
                    it->reason_len);
    q->rec_at++;
    return true;
}

static bool on_data(struct lv_http_req *r, const char *data, size_t len)
{
    struct es_req *q = (struct es_req *)r;
    if (q->head_len < sizeof q->head) {
        size_t n = len < sizeof q->head - q->head_len ? len : sizeof q->head - q->head_len;
        memcpy(q->head + q->head_len, data, n);
        q->head_len += n;
    }
    lv_es_bulk_feed(q->answer, data, len);
    return true;
}

/* ---- requests --------------------------------------------------------------------------------- */

static void entry_free(struct es_ctx *c, struct es_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    free(e->outcomes);
    free(e);
}

/* Reports `e` to the pipeline once all its records have answers. */
static void entry_settle(struct es_ctx *c, struct es_entry *e)
{
    if (e->pending || e->packed < e->b->n)
        return;
    struct lv_batch *b = e->b;
    size_t sent = 0, retry = 0;
    for (size_t r = 0; r < b->n; r++) {
        sent += e->outcomes[r] == LV_SENT;
        retry += e->outcomes[r] == LV_RETRY;
    }
    uint8_t *outcomes = e->outcomes;
    e->outcomes = NULL;
    entry_free(c, e);
    c->out->counter->records += sent;
    if (c->destroying) {
        free(outcomes);
        return;
    }
    if (sent == b->n)
        lv_output_done(c->out, b, LV_SENT, NULL);
    else if (retry == b->n)
        lv_output_done(c->out, b, LV_RETRY, NULL);
    else
        lv_output_done(c->out, b, LV_SENT, outcomes);
    free(outcomes);
}

static void req_free(struct es_req *q)
{
    lv_es_bulk_free(q->answer);
    lv_buf_free(&q->body);
    free(q->slices);
    free(q);
}

/* The same outcome for every record of `q` not classified by an item. */
static void rest_are(struct es_req *q, enum lv_outcome o, long status)
{
    size_t rec;
    const struct es_slice *s;
    while ((s = item_slice(q, &rec))) {
        s->e->outcomes[rec] = (uint8_t)o;
        if (o == LV_REJECTED)
            dead_letter(q->c, s->e->b, rec, status, "request_rejected", 16, q->head, q->head_len);
        q->rec_at++;
    }
}

static void request_failed(struct es_ctx *c, struct es_req *q, long status, const char *error)
{
    c->out->counter->errors++;
    if (status == 413 && c->max_bytes > MIN_REQUEST_BYTES)
        c->max_bytes /= 2;
    if (status == 400) {
        lv_error("output %s: Elasticsearch could not read a _bulk request (400: %.*s); its %zu "
                 "records go to the dead letters",
                 c->name, (int)q->head_len, q->head, q->nrecs);
        rest_are(q, LV_REJECTED, status);
        return;
    }
    if (!c->failing) {
        if (error)
            lv_warn("output %s: _bulk request failed: %s; retrying", c->name, error);
        else
            lv_warn("output %s: _bulk request answered %ld%s: %.*s; retrying", c->name, status,
                    status == 401 || status == 403 ? " (check the credentials)" : "",
                    (int)(q->head_len > 200 ? 200 : q->head_len), q->head);
    }
    c->failing = true;
    rest_are(q, LV_RETRY, status);
}

static void on_done(struct lv_http_req *r, long status, const char *error)
{
    struct es_req *q = (struct es_req *)r;
    struct es_ctx *c = q->c;
    enum lv_es_bulk_result answer = !error && status == 200 ? lv_es_bulk_finish(q->answer)
                                                             : LV_ES_BULK_BAD;
    size_t items = lv_es_bulk_items(q->answer);
    if (r->cancelled) {
        rest_are(q, LV_RETRY, 0); /* the shutdown deadline: handed back */
    } else if (error || status != 200) {
        request_failed(c, q, status, error);
    } else if (answer == LV_ES_BULK_ALL_OK) {
        if (c->failing)
            lv_info("output %s: _bulk requests succeed again", c->name);
        c->failing = false;
        rest_are(q, LV_SENT, 200);
        c->out->counter->bytes += q->http.body_len;
    } else {
        bool short_answer = answer == LV_ES_BULK_BAD || items < q->nrecs;
        if (short_answer)
            lv_warn("output %s: a _bulk answer gave %zu item outcomes for %zu records; the "
                    "others are sent again",
                    c->name, items, q->nrecs);
        else if (c->failing)
            lv_info("output %s: _bulk requests succeed again", c->name);
        c->failing = c->failing && short_answer;
        rest_are(q, LV_RETRY, 0);
        c->out->counter->bytes += q->http.body_len;
    }
    for (size_t i = 0; i < q->nslices; i++)
        q->slices[i].e->pending--;
    for (size_t i = 0; i < q->nslices; i++)
        if (i + 1 == q->nslices || q->slices[i + 1].e != q->slices[i].e)
            entry_settle(c, q->slices[i].e);
    bool cancelled = r->cancelled;
    req_free(q);
    if (!c->destroying && !cancelled)
        pump(c);
}

static struct es_req *req_new(struct es_ctx *c)
{
    struct es_req *q = lv_xcalloc(1, sizeof *q);
    q->c = c;
    /* Room for a full request without doubling past it: NDJSON of up to
     * max_bytes (plus the record that crosses it), or its gzip. */
    size_t want = c->unpacked_bytes + c->unpacked_records * 100 + 4096;
    size_t full = c->max_bytes + c->max_bytes / 8;
    want = want < full ? want : full;
    lv_buf_init(&q->body, c->o->http.gzip ? want / 4 : want, 0);
    q->answer = lv_es_bulk_new(on_item, q);
    q->http.path = BULK_PATH;
    q->http.content_type = "application/x-ndjson";
    q->http.body_gzip = c->o->http.gzip;
    q->http.on_data = on_data;
    q->http.on_done = on_done;
    return q;
}

static void send_one(struct es_ctx *c)
{
    struct es_req *q = req_new(c);
    if (c->o->http.gzip)
        lv_gz_begin(c->gz, &q->body);
    int rc = pack(c, q);
    if (rc == 0 && c->o->http.gzip)
        rc = lv_gz_end(c->gz, &q->body);
    q->http.body = q->body.data;
    q->http.body_len = q->body.len;
    if (rc == 0)
        rc = lv_http_send(c->http, &q->http);
    if (rc < 0) /* only if out of memory, or refused: answered as a failed request */
        on_done(&q->http, 0, "the request could not be made");
}

/* Sends what waits, as far as the bounds and `concurrency` allow. */
static void pump(struct es_ctx *c)
{
    while (c->unpacked_records && lv_http_can_send(c->http)) {
        bool full = c->unpacked_records >= (size_t)c->o->batch_max_records ||
                    c->unpacked_bytes >= c->max_bytes;
        if (!full && !c->flush_due && !lv_http_open(c->http))
            break;
        send_one(c);
    }
    if (!c->unpacked_records) {
        c->flush_due = false;
        ev_timer_stop(c->out->loop, &c->flush);
    } else if (!ev_is_active(&c->flush) && !c->flush_due) {
        ev_timer_set(&c->flush, c->o->flush_interval, 0.);
        ev_timer_start(c->out->loop, &c->flush);
    }
}

static void flush_due(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct es_ctx *c = lv_container_of(w, struct es_ctx, flush);
    (void)loop;
    (void)revents;
    c->flush_due = true;
    pump(c);
}

static void http_ready(void *arg)
{
    struct es_ctx *c = arg;
    pump(c);
    lv_output_ready(c->out);
}

/* ---- the output type --------------------------------------------------------------------------- */

static int es_submit(struct lv_output *out, struct lv_batch *b)
{
    struct es_ctx *c = out->ctx;
    if (b->n == 0) {
        lv_output_done(out, b, LV_SENT, NULL);
        return 0;
    }
    /* While the breaker is open, one batch at a time goes as the probe; the
     * others wait in the pipeline's retry queue (or its spool). */
    if (lv_http_open(c->http) && (c->head || !lv_http_can_send(c->http)))
        return -EAGAIN;
    struct es_entry *e = lv_xcalloc(1, sizeof *e);
    e->b = b;
    e->outcomes = lv_xcalloc(b->n, 1); /* LV_SENT is 0 */
    e->prev = c->tail;
    if (c->tail)
        c->tail->next = e;
    else
        c->head = e;
    c->tail = e;
    if (!c->fill)
        c->fill = e;
    c->unpacked_records += b->n;
    c->unpacked_bytes += b->data.len;
    pump(c);
    return 0;
}

static int es_init(struct lv_output *out)
{
    struct es_ctx *c = out->ctx;
    const struct es_opts *o = out->conf->opts;
    char err[300];
    c->out = out;
    c->o = o;
    c->name = out->conf->name ? out->conf->name : out->type->name;
    c->max_bytes = o->batch_max_bytes;
    out->retry_max_delay = o->http.retry_max_delay;
    ev_timer_init(&c->flush, flush_due, 0., 0.);
    if (o->dead_letter) {
        c->dl = lv_deadletter_open(o->dead_letter, c->name, err, sizeof err);
        if (!c->dl) {
            lv_error("output %s: %s", c->name, err);
            return -EIO;
        }
    }
    c->http = lv_http_client_new(out->loop, &o->http, c->name, http_ready, c, err, sizeof err);
    if (!c->http) {
        lv_error("output %s: %s", c->name, err);
        return -EINVAL;
    }
    if (o->http.gzip)
        c->gz = lv_gz_new(1);
    return 0;
}

/* The shutdown deadline: requests in flight end, and every record not
 * answered goes back to the pipeline as LV_RETRY. */
static void es_cancel(struct lv_output *out)
{
    struct es_ctx *c = out->ctx;
    ev_timer_stop(out->loop, &c->flush);
    lv_http_cancel_all(c->http);
    while (c->fill) {
        struct es_entry *e = c->fill;
        c->fill = e->next;
        for (size_t r = e->packed; r < e->b->n; r++)
            e->outcomes[r] = LV_RETRY;
        e->packed = e->b->n;
        entry_settle(c, e);
    }
    c->unpacked_records = c->unpacked_bytes = 0;
}

static void es_destroy(struct lv_output *out)
{
    struct es_ctx *c = out->ctx;
    if (!c->out)
        return;
    c->destroying = true;
    ev_timer_stop(out->loop, &c->flush);
    if (c->http)
        lv_info("output %s: %" PRIu64 " requests, %" PRIu64 " records delivered, %" PRIu64
                " rejected",
                c->name, lv_http_requests(c->http), out->counter->records, c->rejected);
    lv_http_client_free(c->http);
    while (c->head)
        entry_free(c, c->head);
    lv_deadletter_close(c->dl);
    lv_gz_free(c->gz);
}

/* ---- configuration ------------------------------------------------------------------------------ */

static const char *const action_names[] = {"create", "index", NULL};

#define F(f) offsetof(struct es_opts, f)
static const struct lv_conf_map_key es_keys[] = {
    LV_HTTP_KEYS(struct es_opts, http),
    {.name = "api_key", .type = &lv_conf_map_secret, .off = F(http.api_key),
     .off2 = F(http.api_key_len), .flags = LV_CONF_MAP_FILE},
    {.name = "index", .type = &lv_conf_map_str, .off = F(index), .flags = LV_CONF_MAP_NONEMPTY},
    {.name = "data_stream", .type = &lv_conf_map_str, .off = F(data_stream),
     .flags = LV_CONF_MAP_NONEMPTY},
    {.name = "action", .type = &lv_conf_map_enum, .off = F(action), .choices = action_names},
    {.name = "batch_max_bytes", .type = &lv_conf_map_size, .off = F(batch_max_bytes),
     .min = 1024, .max = 100 * 1024 * 1024},
    {.name = "batch_max_records", .type = &lv_conf_map_int, .off = F(batch_max_records), .min = 1,
     .max = 1000000},
    {.name = "flush_interval", .type = &lv_conf_map_double, .off = F(flush_interval), .min = 0.001,
     .max = 3600},
    {.name = "dead_letter", .type = &lv_conf_map_str, .off = F(dead_letter),
     .flags = LV_CONF_MAP_NONEMPTY},
    {.name = "document_id", .type = &lv_conf_map_bool, .off = F(document_id)},
    {0},
};
#undef F

static void es_opts_init(void *opts)
{
    struct es_opts *o = opts;
    lv_http_conf_init(&o->http);
    o->batch_max_bytes = 1024 * 1024;
    o->batch_max_records = 2000;
    o->flush_interval = 1.0;
    o->document_id = true;
}

/* Elasticsearch's rules for index names, on the pattern's literal text. */
static const char *index_problem(const char *s)
{
    if (strpbrk(s, "\\/*?\"<>| ,#:"))
        return "it holds one of \\ / * ? \" < > | space , # :";
    for (const char *p = s; *p; p++)
        if (*p >= 'A' && *p <= 'Z' && (p == s || p[-1] != '%'))
            return "it holds upper-case letters";
    if (*s == '-' || *s == '_' || *s == '+')
        return "it starts with - _ or +";
    return strlen(s) > 200 ? "it is longer than 200 bytes" : NULL;
}

static void es_check(struct lv_conf_map_ctx *ctx, const yaml_node_t *node, void *opts,
                     const char *where)
{
    struct es_opts *o = opts;
    char at[LV_CONF_MAP_WHERE];
    lv_http_conf_check(ctx, node, &o->http, where);
    if (o->index && o->data_stream)
        lv_conf_map_error(ctx, lv_conf_map_get(ctx, node, "data_stream"), where,
                          "give index or data_stream, not both");
    if (o->data_stream && o->action == ES_INDEX)
        lv_conf_map_error(ctx, lv_conf_map_get(ctx, node, "action"), where,
                          "a data stream takes only action create");
    const char *name = o->data_stream ? o->data_stream : o->index;
    const char *why = name ? index_problem(name) : NULL;
    if (why)
        lv_conf_map_error(ctx, lv_conf_map_get(ctx, node, o->data_stream ? "data_stream" : "index"),
                          lv_conf_map_join(at, where, o->data_stream ? "data_stream" : "index"),
                          "not a valid index name: %s", why);
    if (!o->index && !o->data_stream)
        o->index = lv_xstrdup("logveil-%Y.%m.%d");
    if (o->dead_letter)
        lv_deadletter_check(ctx, node, o->dead_letter, where);
}

static const struct lv_conf_spec es_spec = {
    .keys = es_keys,
    .size = sizeof(struct es_opts),
    .init = es_opts_init,
    .check = es_check,
};

const struct lv_output_type lv_output_elasticsearch = {
    .name = "elasticsearch",
    .ctx_size = sizeof(struct es_ctx),
    .opts = &es_spec,
    .init = es_init,
    .submit = es_submit,
    .flush = lv_output_flush_noop,
    .cancel = es_cancel,
    .destroy = es_destroy,
};
