/*
 * The Kafka output: records are produced with librdkafka, one message per
 * record (the redacted JSON text), and a record is acknowledged to the
 * pipeline only when its delivery report says so. Fluent Bit acknowledges a
 * chunk once librdkafka has queued it, which loses what a broker outage then
 * times out; here nothing is settled before the broker has it.
 *
 * Headers: logveil.position, the record's source position (its source's
 * identity and end offset, as es.c's _id), and environment.
 *
 * Outcomes, per record, from its delivery report: delivered -> LV_SENT;
 * a permanent error (message too large, topic authorization, an invalid
 * topic or record, a topic that does not exist when missing_topic is
 * dead_letter) -> LV_REJECTED, written to the dead-letter file with the
 * error's name and text; anything else (a message timeout, a purge, a
 * transport error that ran out of retries, a topic that does not exist when
 * missing_topic is hold) -> LV_RETRY: the pipeline offers the record again
 * after its backoff, never dropping it. A record produced again after a
 * timeout may be a duplicate in Kafka (it was possibly persisted):
 * at-least-once.
 *
 * Backpressure: RD_KAFKA_RESP_ERR__QUEUE_FULL stops producing. A batch
 * accepted and not wholly produced waits in this output, which refuses more
 * (-EAGAIN) until delivery reports free room; the pipeline's buffer budget
 * then pauses the inputs. Each refusal is counted
 * (logveil_output_queue_full_total).
 *
 * Payloads are not copied: a message points into its batch (no
 * RD_KAFKA_MSG_F_COPY), which this output holds until the message's
 * delivery report, and which outlives the producer at the shutdown
 * deadline (the pipeline frees batches after its outputs). After a fatal
 * error the producer is destroyed before its records are handed back.
 * (Copying cost 13% of the CPU time in the benchmark.)
 *
 * Threads: librdkafka's callbacks (delivery reports, errors, its log lines)
 * are served on the loop only. Its main queue writes a byte to a pipe when
 * an event lands on it (rd_kafka_queue_io_event_enable); an ev_io on the
 * pipe calls rd_kafka_poll() until it has nothing more, since librdkafka
 * writes only when the queue was empty (protocols.md §4.4). Log lines go to
 * the same queue (log.queue). Nothing of the pipeline runs on librdkafka's
 * threads, and nothing blocks the loop but a producer's destruction after a
 * fatal error (its queues purged first, so it does not wait for brokers).
 *
 * Fatal errors: the idempotent producer of Debian's librdkafka 2.0.2 can
 * raise one after a disconnect (a sequence desynchronization, fixed in
 * 2.3.0). Then the producer is purged, every record it had not reported is
 * handed back LV_RETRY, the handle is destroyed and a new one created; the
 * pipeline sends those records again through it.
 *
 * Shutdown: the pipeline's drain waits for every record to be settled, so
 * the outstanding messages are flushed by the loop within the drain deadline;
 * at the deadline, cancel() purges the producer and hands back, LV_RETRY,
 * every record without a delivery report.
 *
 * librdkafka is loaded with dlopen() on first use, as libcurl is by http.c:
 * a logveil without a Kafka output does not map it and what it links.
 */
#include <librdkafka/rdkafka.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ev.h>

#include "conf_map.h"
#include "deadletter.h"
#include "field.h"
#include "logveil/log.h"
#include "logveil/stage.h"
#include "logveil/util.h"

/* ---- librdkafka, loaded on first use ---------------------------------------------------------- */

#define RDK_FUNCS(X)                                                                               \
    X(conf_new) X(conf_set) X(conf_destroy) X(conf_set_dr_msg_cb) X(conf_set_error_cb)             \
    X(conf_set_log_cb) X(conf_set_opaque) X(new) X(destroy) X(producev) X(queue_get_main)          \
    X(queue_io_event_enable) X(queue_destroy) X(set_log_queue) X(poll) X(purge) X(outq_len)        \
    X(fatal_error) X(err2str) X(err2name) X(version_str) X(topic_name) X(opaque) X(topic_new)        \
    X(topic_destroy)

static struct {
#define X(f) __typeof__(rd_kafka_##f) *f;
    RDK_FUNCS(X)
#undef X
    bool loaded;
} rdk;

/* 0, or -ENOENT with `err` filled. */
static int load_rdkafka(char *err, size_t errlen)
{
    if (rdk.loaded)
        return 0;
    void *h = dlopen("librdkafka.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(err, errlen, "cannot load librdkafka: %s (install librdkafka1)", dlerror());
        return -ENOENT;
    }
#define X(f)                                                                                       \
    if (!(*(void **)&rdk.f = dlsym(h, "rd_kafka_" #f))) {                                         \
        snprintf(err, errlen, "librdkafka.so.1 has no rd_kafka_" #f);                              \
        return -ENOENT;                                                                            \
    }
    RDK_FUNCS(X)
#undef X
    rdk.loaded = true;
    return 0; /* never unloaded: its threads may outlive a handle briefly */
}

#define rd_kafka_conf_new (*rdk.conf_new)
#define rd_kafka_conf_set (*rdk.conf_set)
#define rd_kafka_conf_destroy (*rdk.conf_destroy)
#define rd_kafka_conf_set_dr_msg_cb (*rdk.conf_set_dr_msg_cb)
#define rd_kafka_conf_set_error_cb (*rdk.conf_set_error_cb)
#define rd_kafka_conf_set_log_cb (*rdk.conf_set_log_cb)
#define rd_kafka_conf_set_opaque (*rdk.conf_set_opaque)
#define rd_kafka_new (*rdk.new)
#define rd_kafka_destroy (*rdk.destroy)
#define rd_kafka_producev (*rdk.producev)
#define rd_kafka_queue_get_main (*rdk.queue_get_main)
#define rd_kafka_queue_io_event_enable (*rdk.queue_io_event_enable)
#define rd_kafka_queue_destroy (*rdk.queue_destroy)
#define rd_kafka_set_log_queue (*rdk.set_log_queue)
#define rd_kafka_poll (*rdk.poll)
#define rd_kafka_purge (*rdk.purge)
#define rd_kafka_outq_len (*rdk.outq_len)
#define rd_kafka_fatal_error (*rdk.fatal_error)
#define rd_kafka_err2str (*rdk.err2str)
#define rd_kafka_err2name (*rdk.err2name)
#define rd_kafka_version_str (*rdk.version_str)
#define rd_kafka_topic_name (*rdk.topic_name)
#define rd_kafka_opaque (*rdk.opaque)
#define rd_kafka_topic_new (*rdk.topic_new)
#define rd_kafka_topic_destroy (*rdk.topic_destroy)

/* ---- options ----------------------------------------------------------------------------------- */

enum missing_topic { MISSING_HOLD, MISSING_DEAD_LETTER };

/* One librdkafka property; a value read from a NAME_file key is a secret,
 * never echoed. */
struct kafka_prop {
    char *name;
    char *value;
    size_t len;
    bool secret;
    int line;
};

struct kafka_opts {
    char *brokers;
    char *topic;        /* the topic, or topic_field's fallback */
    char *topic_field;  /* dotted path of the field naming a record's topic */
    char **topics;      /* glob patterns a topic from topic_field must match */
    size_t ntopics;
    char *key;          /* dotted path of the field that is the message key; NULL: none */
    struct kafka_prop *props;
    size_t nprops;
    char *dead_letter;
    int missing_topic;  /* enum missing_topic */
};

/* Safe defaults, before the user's properties (which win). */
static const char *const default_props[][2] = {
    {"enable.idempotence", "true"},          /* no duplicates or reordering from retries */
    {"acks", "all"},
    {"compression.type", "lz4"},
    {"queue.buffering.max.kbytes", "16384"}, /* librdkafka's copies: 16 MiB at most */
    {"message.timeout.ms", "300000"},        /* then the pipeline sends it again */
    {"linger.ms", "50"},
    {"socket.keepalive.enable", "true"},
    {"client.id", "logveil"},
};

#define KEY_MAX 1024
#define TOPIC_MAX 249
#define PENDING 0xff /* a record's outcome before its delivery report */

/* A batch accepted and not yet reported. */
struct kafka_entry {
    struct lv_batch *b;
    uint8_t *outcomes;            /* enum lv_outcome per record, PENDING until known */
    struct kafka_entry **slots;   /* record r's message opaque is &slots[r]; each holds this entry */
    size_t produced;              /* records handed to librdkafka or settled at once */
    size_t answered;              /* records whose outcome is known */
    bool queued_done;
    struct kafka_entry *prev, *next, *done_next;
};

struct kafka_ctx {
    struct lv_output *out;
    const struct kafka_opts *o;
    const char *name;
    const char *env;
    size_t envlen;
    struct lv_field_path paths[2];
    int topic_path, key_path; /* index in paths, or -1 */
    size_t npaths;
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;         /* the handle of `topic` */
    rd_kafka_queue_t *mainq;
    int pipe[2];
    ev_io io;
    ev_timer guard;                /* a poll each second while messages are out */
    ev_timer restart;
    struct lv_deadletter *dl;
    struct kafka_entry *head, *tail;
    struct kafka_entry *fill;      /* the first entry with records not produced */
    struct kafka_entry *done, **done_tail; /* entries with every outcome, to report */
    size_t outstanding;            /* messages produced, no delivery report yet */
    bool reporting;
    bool was_full;                 /* -EAGAIN was answered: lv_output_ready() when room */
    bool fatal;                    /* the producer is to be recreated */
    bool gone;                     /* reports are no longer ours (cancelled, destroying) */
    bool down_logged, timeout_logged, missing_logged, topic_refused_logged;
    uint64_t rejected, queue_full, restarts, retried;
};

/* ---- the producer handle ------------------------------------------------------------------------ */

static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);
static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque);
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

/* librdkafka's configuration: the defaults, the user's properties, then
 * what logveil needs. NULL with `err` filled (naming the property; a
 * secret's value is never quoted). `bad` receives the offending property. */
static rd_kafka_conf_t *make_conf(const struct kafka_opts *o, char *err, size_t errlen,
                                  const struct kafka_prop **bad)
{
    char why[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    *bad = NULL;
    for (size_t i = 0; i < LV_ARRAY_LEN(default_props); i++)
        if (rd_kafka_conf_set(conf, default_props[i][0], default_props[i][1], why, sizeof why) !=
            RD_KAFKA_CONF_OK)
            goto fail_default;
    for (size_t i = 0; i < o->nprops; i++) {
        const struct kafka_prop *p = &o->props[i];
        if (rd_kafka_conf_set(conf, p->name, p->value, why, sizeof why) == RD_KAFKA_CONF_OK)
            continue;
        *bad = p;
        if (p->secret)
            snprintf(err, errlen, "librdkafka refuses the value of %s read from the file", p->name);
        else
            snprintf(err, errlen, "%s", why);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (rd_kafka_conf_set(conf, "bootstrap.servers", o->brokers, why, sizeof why) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "log.queue", "true", why, sizeof why) != RD_KAFKA_CONF_OK) {
        snprintf(err, errlen, "%s", why);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
fail_default:
    snprintf(err, errlen, "librdkafka refuses a default: %.400s", why);
    rd_kafka_conf_destroy(conf);
    return NULL;
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents);
static void poll_all(struct kafka_ctx *c);

/* Every secret value (a property read from a file) in `msg` becomes "***":
 * librdkafka's messages may quote a value it refuses. */
static const char *scrub(const struct kafka_opts *o, char *msg)
{
    for (size_t i = 0; i < o->nprops; i++) {
        const struct kafka_prop *p = &o->props[i];
        char *at;
        while (p->secret && p->len && (at = strstr(msg, p->value))) {
            size_t rest = strlen(at + p->len);
            memcpy(at, "***", 3);
            memmove(at + 3, at + p->len, rest + 1);
        }
    }
    return msg;
}

static int open_handle(struct kafka_ctx *c, char *err, size_t errlen)
{
    const struct kafka_prop *bad;
    rd_kafka_conf_t *conf = make_conf(c->o, err, errlen, &bad);
    if (!conf)
        return -EINVAL;
    rd_kafka_conf_set_dr_msg_cb(conf, on_dr);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_opaque(conf, c);
    c->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, errlen); /* takes conf when it works */
    if (!c->rk) {
        scrub(c->o, err);
        rd_kafka_conf_destroy(conf);
        return -EINVAL;
    }
    rd_kafka_set_log_queue(c->rk, NULL); /* its log lines on the main queue, served by poll */
    c->rkt = rd_kafka_topic_new(c->rk, c->o->topic, NULL);
    if (pipe2(c->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        rd_kafka_destroy(c->rk);
        c->rk = NULL;
        return -errno;
    }
    c->mainq = rd_kafka_queue_get_main(c->rk);
    rd_kafka_queue_io_event_enable(c->mainq, c->pipe[1], "1", 1);
    ev_io_init(&c->io, on_io, c->pipe[0], EV_READ);
    ev_io_start(c->out->loop, &c->io);
    /* Events queued before the pipe was attached (rd_kafka_new starts the
     * broker threads, which may already have logged a refused connection)
     * wrote nothing to it, and librdkafka writes again only after the
     * queue is served: served now, or delivery reports would stall. */
    poll_all(c);
    return 0;
}

/* Serves every event waiting on the main queue. */
static void poll_all(struct kafka_ctx *c)
{
    char drain[256];
    while (read(c->pipe[0], drain, sizeof drain) > 0)
        ;
    while (rd_kafka_poll(c->rk, 0) > 0)
        ;
}

/* Destroys the handle; its messages are purged first, so this does not
 * wait for brokers. Reports that come meanwhile are served while `serve`. */
static void close_handle(struct kafka_ctx *c, bool serve)
{
    if (!c->rk)
        return;
    ev_io_stop(c->out->loop, &c->io);
    rd_kafka_purge(c->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT |
                              (serve ? 0 : RD_KAFKA_PURGE_F_NON_BLOCKING));
    if (serve)
        poll_all(c);
    rd_kafka_queue_io_event_enable(c->mainq, -1, NULL, 0);
    rd_kafka_queue_destroy(c->mainq);
    if (c->rkt)
        rd_kafka_topic_destroy(c->rkt);
    c->rkt = NULL;
    bool gone = c->gone;
    c->gone = true; /* whatever destroy still reports is settled by the caller */
    rd_kafka_destroy(c->rk);
    c->gone = gone;
    close(c->pipe[0]);
    close(c->pipe[1]);
    c->rk = NULL;
    c->mainq = NULL;
}

/* ---- entries and their outcomes ------------------------------------------------------------------ */

static void entry_unlink(struct kafka_ctx *c, struct kafka_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
}

static void entry_free(struct kafka_entry *e)
{
    free(e->outcomes);
    free(e->slots);
    free(e);
}

/* `e` has every outcome: it joins the list to report. */
static void entry_check(struct kafka_ctx *c, struct kafka_entry *e)
{
    if (e->queued_done || e->produced < e->b->n || e->answered < e->b->n)
        return;
    e->queued_done = true;
    e->done_next = NULL;
    *c->done_tail = e;
    c->done_tail = &e->done_next;
}

static void set_outcome(struct kafka_ctx *c, struct kafka_entry *e, size_t r, enum lv_outcome o)
{
    const struct lv_record *rec = &e->b->recs[r];
    e->outcomes[r] = (uint8_t)o;
    e->answered++;
    if (o == LV_SENT) {
        c->out->counter->records++;
        c->out->counter->bytes += rec->len;
    } else {
        c->out->counter->errors++;
        c->retried += o == LV_RETRY;
    }
}

static void dead_letter(struct kafka_ctx *c, struct kafka_entry *e, size_t r,
                        rd_kafka_resp_err_t err)
{
    const struct lv_record *rec = &e->b->recs[r];
    const char *type = rd_kafka_err2name(err), *reason = rd_kafka_err2str(err);
    c->rejected++;
    if (c->dl)
        lv_deadletter_write(c->dl, e->b->data.data + rec->off, rec->len, (int)err, type,
                            strlen(type), reason, strlen(reason));
}

/* Reports the entries that have every outcome. A report may make the
 * pipeline submit more at once: the list is taken one entry at a time, and
 * a report made from inside another only queues. */
static void report_done(struct kafka_ctx *c)
{
    if (c->reporting)
        return;
    c->reporting = true;
    while (c->done) {
        struct kafka_entry *e = c->done;
        c->done = e->done_next;
        if (!c->done)
            c->done_tail = &c->done;
        entry_unlink(c, e);
        struct lv_batch *b = e->b;
        size_t sent = 0, retry = 0;
        for (size_t r = 0; r < b->n; r++) {
            sent += e->outcomes[r] == LV_SENT;
            retry += e->outcomes[r] == LV_RETRY;
        }
        if (sent == b->n)
            lv_output_done(c->out, b, LV_SENT, NULL);
        else if (retry == b->n)
            lv_output_done(c->out, b, LV_RETRY, NULL);
        else
            lv_output_done(c->out, b, LV_SENT, e->outcomes);
        entry_free(e);
    }
    c->reporting = false;
}

/* ---- producing ------------------------------------------------------------------------------------ */

static bool topic_ok(const char *t, size_t n)
{
    if (n == 0 || n > TOPIC_MAX || (n == 1 && t[0] == '.') || (n == 2 && t[0] == '.' && t[1] == '.'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = t[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

/* A topic named by a record (topic_field) is written to only when it
 * matches one of `topics`; without that list, any valid name but Kafka's
 * internal ones (`__consumer_offsets`, `__transaction_state`, ...). A
 * hostile record cannot pick another topic: its record goes to `topic`. */
static bool topic_allowed(const struct kafka_opts *o, const char *t)
{
    if (!o->ntopics)
        return strncmp(t, "__", 2) != 0;
    for (size_t i = 0; i < o->ntopics; i++)
        if (fnmatch(o->topics[i], t, 0) == 0)
            return true;
    return false;
}

static void topic_refused(struct kafka_ctx *c, const char *t, size_t n)
{
    c->out->counter->values_refused++;
    if (c->topic_refused_logged)
        return;
    c->topic_refused_logged = true;
    /* The record's own value, printed only as far as it is a topic-like
     * name (never a secret-sized blob of anything). */
    size_t show = 0;
    while (show < n && show < 64 && t[show] > ' ' && t[show] < 0x7f && t[show] != '"')
        show++;
    lv_warn("output %s: a record names topic \"%.*s\"%s, which %s; such records go to %s "
            "(counted in logveil_output_values_refused_total)",
            c->name, (int)show, t, show < n ? "..." : "",
            topic_ok(t, n) ? "is not allowed by topics" : "is not a valid topic name",
            c->o->topic);
}

static bool missing_topic_err(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
           err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
}

/* What an error (at produce time or in a delivery report) means for the
 * record. */
static enum lv_outcome error_outcome(const struct kafka_ctx *c, rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return LV_SENT;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
        return LV_REJECTED;
    default:
        if (missing_topic_err(err))
            return c->o->missing_topic == MISSING_DEAD_LETTER ? LV_REJECTED : LV_RETRY;
        return LV_RETRY;
    }
}

static void log_missing_topic(struct kafka_ctx *c, const char *topic, rd_kafka_resp_err_t err)
{
    if (c->missing_logged)
        return;
    c->missing_logged = true;
    if (c->o->missing_topic == MISSING_DEAD_LETTER)
        lv_error("output %s: topic %s%s%s does not exist and the broker does not create it (%s); "
                 "its records go to the dead letters (missing_topic: dead_letter)",
                 c->name, topic ? "\"" : "", topic ? topic : "", topic ? "\"" : "",
                 rd_kafka_err2name(err));
    else
        lv_error("output %s: topic %s%s%s does not exist and the broker does not create it (%s); "
                 "its records are held and sent again until it exists (missing_topic: hold)",
                 c->name, topic ? "\"" : "", topic ? topic : "", topic ? "\"" : "",
                 rd_kafka_err2name(err));
}

/* The outcome of record r known without a delivery report (an error at
 * produce time). */
static void settle_now(struct kafka_ctx *c, struct kafka_entry *e, size_t r, const char *topic,
                       rd_kafka_resp_err_t err)
{
    enum lv_outcome o = error_outcome(c, err);
    if (missing_topic_err(err))
        log_missing_topic(c, topic, err);
    else if (o == LV_REJECTED)
        lv_warn("output %s: a record was refused (%s: %s); it goes to the dead letters", c->name,
                rd_kafka_err2name(err), rd_kafka_err2str(err));
    if (o == LV_REJECTED)
        dead_letter(c, e, r, err);
    set_outcome(c, e, r, o == LV_SENT ? LV_RETRY : o);
}

/* The position header: the source's identity in 8 hex digits, ':', and the
 * record's end offset in decimal ("037961d8:348"), what es.c's _id is made
 * of: a consumer can drop a duplicate by it. */
static size_t position(char *out, struct lv_pos p)
{
    static const char x[] = "0123456789abcdef";
    char dec[24];
    size_t n = 0;
    for (int i = 7; i >= 0; i--)
        out[7 - i] = x[(p.source >> (4 * i)) & 15];
    out[8] = ':';
    do
        dec[n++] = (char)('0' + p.end % 10);
    while ((p.end /= 10));
    for (size_t i = 0; i < n; i++)
        out[9 + i] = dec[n - 1 - i];
    return 9 + n;
}

/* Produces record r of `e`: 0 (handed over, or settled at once), -EAGAIN
 * (librdkafka's queue is full), -EPIPE (the producer failed for good). */
static int produce_one(struct kafka_ctx *c, struct kafka_entry *e, size_t r)
{
    const struct lv_record *rec = &e->b->recs[r];
    const char *text = e->b->data.data + rec->off;
    struct lv_field f[2];
    char topic[TOPIC_MAX + 8], key[KEY_MAX], pos[32];
    const char *t = c->o->topic, *k = NULL;
    size_t klen = 0;
    if (c->npaths)
        lv_field_read(text, rec->len, c->paths, c->npaths, f);
    if (c->topic_path >= 0 && f[c->topic_path].p && f[c->topic_path].string) {
        size_t n = lv_field_unescape(&f[c->topic_path], topic, sizeof topic - 1);
        topic[n < sizeof topic ? n : sizeof topic - 1] = '\0';
        if (topic_ok(topic, n) && topic_allowed(c->o, topic))
            t = topic;
        else
            topic_refused(c, topic, n);
    }
    if (c->key_path >= 0 && f[c->key_path].p) {
        klen = lv_field_unescape(&f[c->key_path], key, sizeof key);
        k = key;
    }
    size_t poslen = position(pos, rec->pos);
    void *value = (void *)(uintptr_t)text; /* librdkafka only reads it */
    rd_kafka_resp_err_t err;
    if (t == c->o->topic && c->rkt) /* the usual case: no lookup by name */
        err = rd_kafka_producev(
            c->rk, RD_KAFKA_V_RKT(c->rkt), RD_KAFKA_V_MSGFLAGS(0),
            RD_KAFKA_V_VALUE(value, rec->len), RD_KAFKA_V_KEY(k, klen),
            RD_KAFKA_V_HEADER("logveil.position", pos, (ssize_t)poslen),
            RD_KAFKA_V_HEADER("environment", c->env, (ssize_t)c->envlen),
            RD_KAFKA_V_OPAQUE(&e->slots[r]), RD_KAFKA_V_END);
    else
        err = rd_kafka_producev(
            c->rk, RD_KAFKA_V_TOPIC(t), RD_KAFKA_V_MSGFLAGS(0),
            RD_KAFKA_V_VALUE(value, rec->len), RD_KAFKA_V_KEY(k, klen),
            RD_KAFKA_V_HEADER("logveil.position", pos, (ssize_t)poslen),
            RD_KAFKA_V_HEADER("environment", c->env, (ssize_t)c->envlen),
            RD_KAFKA_V_OPAQUE(&e->slots[r]), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        c->outstanding++;
        return 0;
    }
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
        return -EAGAIN;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        c->fatal = true;
        return -EPIPE;
    }
    settle_now(c, e, r, t, err);
    return 0;
}

/* Produces what waits, until librdkafka's queue is full. */
static void produce_more(struct kafka_ctx *c)
{
    while (c->fill && c->rk && !c->fatal && !c->gone) {
        struct kafka_entry *e = c->fill;
        while (e->produced < e->b->n) {
            int rc = produce_one(c, e, e->produced);
            if (rc < 0)
                return;
            e->produced++;
        }
        c->fill = e->next;
        entry_check(c, e);
    }
}

static void restart_soon(struct kafka_ctx *c, double after);

/* After anything that may have freed room or settled records. */
static void kick(struct kafka_ctx *c)
{
    if (c->fatal && !ev_is_active(&c->restart) && !c->gone)
        restart_soon(c, 0.);
    produce_more(c);
    report_done(c);
    if (c->was_full && !c->fill && !c->fatal && !c->gone && !c->reporting) {
        c->was_full = false;
        lv_output_ready(c->out);
    }
    /* The pipe is what wakes the loop; while messages are out, a poll each
     * second as well, so that a wake-up lost between librdkafka and the
     * pipe costs a second, never a stall. Idle, nothing wakes the loop. */
    if ((c->outstanding || c->fill) && c->rk && !c->gone) {
        if (!ev_is_active(&c->guard))
            ev_timer_start(c->out->loop, &c->guard);
    } else {
        ev_timer_stop(c->out->loop, &c->guard);
    }
}

/* ---- librdkafka's callbacks (on the loop, from rd_kafka_poll) ---------------------------------- */

static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct kafka_ctx *c = opaque;
    (void)rk;
    if (c->gone)
        return; /* cancelled or destroyed: the records were handed back already */
    struct kafka_entry **slot = m->_private, *e = *slot;
    size_t r = (size_t)(slot - e->slots);
    c->outstanding--;
    if (e->outcomes[r] != PENDING)
        return;
    enum lv_outcome o = error_outcome(c, m->err);
    if (o == LV_SENT) {
        if (c->down_logged || c->timeout_logged)
            lv_info("output %s: messages are delivered again", c->name);
        c->down_logged = c->timeout_logged = c->missing_logged = false;
    } else if (missing_topic_err(m->err)) {
        log_missing_topic(c, m->rkt ? rd_kafka_topic_name(m->rkt) : NULL, m->err);
    } else if (m->err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT && !c->timeout_logged) {
        c->timeout_logged = true;
        lv_warn("output %s: messages timed out undelivered (message.timeout.ms); they are sent "
                "again",
                c->name);
    } else if (o == LV_REJECTED) {
        lv_warn("output %s: a record was refused (%s: %s); it goes to the dead letters", c->name,
                rd_kafka_err2name(m->err), rd_kafka_err2str(m->err));
    }
    if (o == LV_REJECTED)
        dead_letter(c, e, r, m->err);
    set_outcome(c, e, r, o);
    entry_check(c, e);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct kafka_ctx *c = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        c->fatal = true; /* logged, with its cause, when the producer is recreated */
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        if (!c->down_logged)
            lv_warn("output %s: no broker reachable; records wait and inputs slow down", c->name);
        c->down_logged = true;
        return;
    }
    char line[1024];
    snprintf(line, sizeof line, "%s", reason);
    lv_debug("output %s: librdkafka: %s: %s", c->name, rd_kafka_err2name(err), scrub(c->o, line));
}

/* librdkafka's log lines (syslog levels), with the output's name. They never
 * hold record contents. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    const struct kafka_ctx *c = rd_kafka_opaque(rk);
    char line[1024];
    snprintf(line, sizeof line, "%s", buf);
    lv_log(level <= 4 ? LV_LOG_WARN : LV_LOG_DEBUG, "output %s: librdkafka %s: %s", c->name, fac,
           scrub(c->o, line));
}

static void on_guard(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct kafka_ctx *c = lv_container_of(w, struct kafka_ctx, guard);
    (void)loop;
    (void)revents;
    if (!c->rk || c->gone)
        return;
    poll_all(c);
    kick(c);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    struct kafka_ctx *c = lv_container_of(w, struct kafka_ctx, io);
    (void)loop;
    (void)revents;
    poll_all(c);
    kick(c);
}

/* ---- fatal errors ------------------------------------------------------------------------------- */

/* Every record produced without an outcome is handed back LV_RETRY. */
static void unanswered_retry(struct kafka_ctx *c)
{
    for (struct kafka_entry *e = c->head; e; e = e->next) {
        for (size_t r = 0; r < e->produced; r++)
            if (e->outcomes[r] == PENDING)
                set_outcome(c, e, r, LV_RETRY);
        entry_check(c, e);
    }
    c->outstanding = 0;
}

static void on_restart(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct kafka_ctx *c = lv_container_of(w, struct kafka_ctx, restart);
    char err[512];
    (void)loop;
    (void)revents;
    if (c->gone)
        return;
    if (c->rk) {
        char why[512];
        rd_kafka_resp_err_t cause = rd_kafka_fatal_error(c->rk, why, sizeof why);
        lv_error("output %s: the producer failed for good (%s: %s); it is recreated, and what "
                 "it had not delivered is sent again",
                 c->name, rd_kafka_err2name(cause), cause ? scrub(c->o, why) : "no cause given");
    }
    close_handle(c, true); /* purged: reports served with _PURGE_* (LV_RETRY) */
    unanswered_retry(c);
    c->restarts++;
    if (open_handle(c, err, sizeof err) < 0) {
        lv_error("output %s: cannot recreate the producer: %s; trying again in 5 s", c->name, err);
        restart_soon(c, 5.);
        return;
    }
    c->fatal = false;
    lv_info("output %s: producer recreated (%" PRIu64 " so far)", c->name, c->restarts);
    kick(c);
}

static void restart_soon(struct kafka_ctx *c, double after)
{
    ev_timer_set(&c->restart, after, 0.);
    ev_timer_start(c->out->loop, &c->restart);
}

/* ---- the output type -------------------------------------------------------------------------- */

static int kafka_submit(struct lv_output *out, struct lv_batch *b)
{
    struct kafka_ctx *c = out->ctx;
    if (b->n == 0) {
        lv_output_done(out, b, LV_SENT, NULL);
        return 0;
    }
    /* A batch not wholly produced waits for room: refuse more meanwhile. */
    if (c->fill || c->fatal || c->gone || !c->rk) {
        c->was_full = true;
        if (c->fill) { /* librdkafka's queue is full (not a producer being recreated) */
            c->out->counter->queue_full++;
            c->queue_full++;
        }
        return -EAGAIN;
    }
    struct kafka_entry *e = lv_xcalloc(1, sizeof *e);
    e->b = b;
    e->outcomes = lv_xmalloc(b->n);
    memset(e->outcomes, PENDING, b->n);
    e->slots = lv_xmalloc(b->n * sizeof *e->slots);
    for (size_t r = 0; r < b->n; r++)
        e->slots[r] = e;
    e->prev = c->tail;
    if (c->tail)
        c->tail->next = e;
    else
        c->head = e;
    c->tail = e;
    c->fill = e;
    kick(c);
    return 0;
}

static int kafka_init(struct lv_output *out)
{
    struct kafka_ctx *c = out->ctx;
    const struct kafka_opts *o = out->conf->opts;
    char err[512];
    c->out = out;
    c->o = o;
    c->name = out->conf->name ? out->conf->name : out->type->name;
    c->done_tail = &c->done;
    c->pipe[0] = c->pipe[1] = -1;
    const struct lv_conf *conf = out->pipeline ? lv_pipeline_conf(out->pipeline) : NULL;
    c->env = conf && conf->environment ? conf->environment : "";
    c->envlen = strlen(c->env);
    c->topic_path = c->key_path = -1;
    if (o->topic_field) {
        c->topic_path = (int)c->npaths;
        c->paths[c->npaths++] = (struct lv_field_path){o->topic_field, strlen(o->topic_field)};
    }
    if (o->key) {
        c->key_path = (int)c->npaths;
        c->paths[c->npaths++] = (struct lv_field_path){o->key, strlen(o->key)};
    }
    ev_timer_init(&c->restart, on_restart, 0., 0.);
    ev_timer_init(&c->guard, on_guard, 1., 1.);
    if (load_rdkafka(err, sizeof err) < 0) {
        lv_error("output %s: %s", c->name, err);
        return -ENOENT;
    }
    if (o->dead_letter) {
        c->dl = lv_deadletter_open(o->dead_letter, c->name, err, sizeof err);
        if (!c->dl) {
            lv_error("output %s: %s", c->name, err);
            return -EIO;
        }
    }
    if (open_handle(c, err, sizeof err) < 0) {
        lv_error("output %s: cannot create the producer: %s", c->name, err);
        return -EINVAL;
    }
    lv_info("output %s: librdkafka %s, brokers %s", c->name, rd_kafka_version_str(), o->brokers);
    return 0;
}

/* The shutdown deadline: the producer is purged, and every record without
 * a delivery report goes back to the pipeline as LV_RETRY. */
static void kafka_cancel(struct lv_output *out)
{
    struct kafka_ctx *c = out->ctx;
    if (!c->out || c->gone)
        return;
    ev_timer_stop(out->loop, &c->restart);
    ev_timer_stop(out->loop, &c->guard);
    if (c->rk) {
        ev_io_stop(out->loop, &c->io);
        rd_kafka_purge(c->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT |
                                  RD_KAFKA_PURGE_F_NON_BLOCKING);
    }
    c->gone = true;
    for (struct kafka_entry *e = c->head; e; e = e->next) {
        for (size_t r = 0; r < e->b->n; r++)
            if (e->outcomes[r] == PENDING)
                set_outcome(c, e, r, LV_RETRY);
        e->produced = e->b->n;
        entry_check(c, e);
    }
    c->fill = NULL;
    report_done(c);
}

static void kafka_destroy(struct lv_output *out)
{
    struct kafka_ctx *c = out->ctx;
    if (!c->out)
        return;
    c->gone = true;
    ev_timer_stop(out->loop, &c->restart);
    ev_timer_stop(out->loop, &c->guard);
    if (c->rk)
        lv_info("output %s: %" PRIu64 " records delivered, %" PRIu64 " rejected, %" PRIu64
                " handed back to retry, %" PRIu64 " refusals for a full queue, %" PRIu64
                " producer restarts",
                c->name, out->counter->records, c->rejected, c->retried, c->queue_full,
                c->restarts);
    close_handle(c, false);
    while (c->head) {
        struct kafka_entry *e = c->head;
        entry_unlink(c, e);
        entry_free(e);
    }
    lv_deadletter_close(c->dl);
}

/* ---- configuration ----------------------------------------------------------------------------- */

static void release_props(const struct lv_conf_map_key *k, void *base)
{
    struct kafka_prop **props = (struct kafka_prop **)((char *)base + k->off);
    size_t *n = (size_t *)((char *)base + k->off2);
    for (size_t i = 0; i < *n; i++) {
        struct kafka_prop *p = &(*props)[i];
        if (p->value)
            explicit_bzero(p->value, p->len);
        free(p->value);
        free(p->name);
    }
    free(*props);
    *props = NULL;
    *n = 0;
}

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), m = strlen(tail);
    return n > m && memcmp(s + n - m, tail, m) == 0;
}

/* A value from NAME_file: the file less one line ending. */
static char *read_value_file(struct lv_conf_map_ctx *ctx, const yaml_node_t *node,
                             const char *path, const char *where, size_t *len)
{
    char *data = NULL;
    int rc = *path ? lv_read_file(path, LV_CONF_MAP_MAX_SECRET, &data, len) : -ENOENT;
    if (rc < 0) {
        lv_conf_map_error(ctx, node, where, "cannot read \"%s\": %s", path,
                          rc == -EFBIG ? "larger than 64 KiB" : strerror(-rc));
        return NULL;
    }
    *len = lv_secret_file_len(data, *len);
    data[*len] = '\0';
    if (memchr(data, '\0', *len) || *len == 0) {
        lv_conf_map_error(ctx, node, where, "%s is empty or holds a NUL byte", path);
        explicit_bzero(data, *len);
        free(data);
        return NULL;
    }
    return data;
}

/* properties: a map of librdkafka property names to scalar values; a name
 * ending in _file names a file whose content is the value (a secret). */
static void bind_props(struct lv_conf_map_ctx *ctx, const struct lv_conf_map_key *k,
                       const yaml_node_t *node, void *base, const char *where)
{
    if (!lv_conf_map_is_map(ctx, node, where))
        return;
    release_props(k, base);
    size_t n = lv_conf_map_npairs(node), m = 0;
    struct kafka_prop *props = lv_xcalloc(n ? n : 1, sizeof *props);
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *kn, *vn;
        char at[LV_CONF_MAP_WHERE];
        lv_conf_map_pair(ctx, node, i, &kn, &vn);
        const char *name = lv_conf_map_text(ctx, kn);
        if (!name || kn->type != YAML_SCALAR_NODE)
            continue;
        lv_conf_map_join(at, where, name);
        const char *value = vn->type == YAML_SCALAR_NODE ? lv_conf_map_text(ctx, vn) : NULL;
        if (vn->type != YAML_SCALAR_NODE || lv_conf_map_is_null(ctx, vn)) {
            lv_conf_map_error(ctx, vn, at, "expected a string, a number or a boolean");
            continue;
        }
        if (!value)
            continue; /* its expansion failed, and said so */
        struct kafka_prop *p = &props[m];
        p->line = lv_conf_map_line(kn);
        if (ends_with(name, "_file")) {
            p->value = read_value_file(ctx, vn, value, at, &p->len);
            if (!p->value)
                continue;
            p->name = lv_xstrndup(name, strlen(name) - 5);
            p->secret = true;
        } else {
            p->name = lv_xstrdup(name);
            p->value = lv_xstrdup(value);
            p->len = strlen(value);
        }
        m++;
    }
    *(struct kafka_prop **)((char *)base + k->off) = props;
    *(size_t *)((char *)base + k->off2) = m;
}

static const struct lv_conf_map_type props_type = {bind_props, release_props};

static const char *const missing_names[] = {"hold", "dead_letter", NULL};

#define F(f) offsetof(struct kafka_opts, f)
static const struct lv_conf_map_key kafka_keys[] = {
    {.name = "brokers", .type = &lv_conf_map_str, .off = F(brokers),
     .flags = LV_CONF_MAP_REQUIRED | LV_CONF_MAP_NONEMPTY},
    {.name = "topic", .type = &lv_conf_map_str, .off = F(topic),
     .flags = LV_CONF_MAP_REQUIRED | LV_CONF_MAP_NONEMPTY},
    {.name = "topic_field", .type = &lv_conf_map_str, .off = F(topic_field),
     .flags = LV_CONF_MAP_NONEMPTY},
    {.name = "topics", .type = &lv_conf_map_strlist, .off = F(topics), .off2 = F(ntopics)},
    {.name = "key", .type = &lv_conf_map_str, .off = F(key), .flags = LV_CONF_MAP_NONEMPTY},
    {.name = "properties", .type = &props_type, .off = F(props), .off2 = F(nprops)},
    {.name = "dead_letter", .type = &lv_conf_map_str, .off = F(dead_letter),
     .flags = LV_CONF_MAP_NONEMPTY},
    {.name = "missing_topic", .type = &lv_conf_map_enum, .off = F(missing_topic),
     .choices = missing_names},
    {0},
};
#undef F

static void kafka_opts_init(void *opts)
{
    struct kafka_opts *o = opts;
    o->missing_topic = MISSING_HOLD;
}

static const char *const reserved_props[] = {
    "bootstrap.servers", "metadata.broker.list", "log.queue", "dr_msg_cb", "dr_cb",
    "error_cb", "log_cb", "opaque", "background_event_cb", NULL,
};

static void kafka_check(struct lv_conf_map_ctx *ctx, const yaml_node_t *node, void *opts,
                        const char *where)
{
    struct kafka_opts *o = opts;
    char at[LV_CONF_MAP_WHERE], err[512];
    if (o->topic && !topic_ok(o->topic, strlen(o->topic)))
        lv_conf_map_error(ctx, lv_conf_map_get(ctx, node, "topic"),
                          lv_conf_map_join(at, where, "topic"),
                          "not a valid topic name: 1 to 249 of a-z A-Z 0-9 . _ -");
    if (o->ntopics && !o->topic_field)
        lv_conf_map_error(ctx, lv_conf_map_get(ctx, node, "topics"),
                          lv_conf_map_join(at, where, "topics"),
                          "the topics a record may name: give topic_field too");
    if (o->key && strcmp(o->key, "none") == 0) {
        free(o->key);
        o->key = NULL;
    }
    if (o->dead_letter)
        lv_deadletter_check(ctx, node, o->dead_letter, where);
    if (load_rdkafka(err, sizeof err) < 0) {
        lv_conf_map_error(ctx, node, where, "%s", err);
        return;
    }
    /* Each property on its own, so that every bad one is reported. */
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    for (size_t i = 0; i < o->nprops; i++) {
        const struct kafka_prop *p = &o->props[i];
        bool reserved = false;
        for (const char *const *r = reserved_props; *r; r++)
            reserved |= strcmp(p->name, *r) == 0;
        if (reserved)
            lv_conf_map_error_at(ctx, p->line,
                                 "%s.properties.%s: set by logveil (brokers is the key for the "
                                 "bootstrap servers)",
                                 where, p->name);
        else if (rd_kafka_conf_set(conf, p->name, p->value, err, sizeof err) != RD_KAFKA_CONF_OK)
            lv_conf_map_error_at(ctx, p->line, "%s.properties.%s%s: %s", where, p->name,
                                 p->secret ? "_file" : "",
                                 p->secret ? "librdkafka refuses the value read from the file"
                                           : err);
    }
    rd_kafka_conf_destroy(conf);
}

static const struct lv_conf_spec kafka_spec = {
    .keys = kafka_keys,
    .size = sizeof(struct kafka_opts),
    .init = kafka_opts_init,
    .check = kafka_check,
};

const struct lv_output_type lv_output_kafka = {
    .name = "kafka",
    .ctx_size = sizeof(struct kafka_ctx),
    .opts = &kafka_spec,
    .init = kafka_init,
    .submit = kafka_submit,
    .flush = lv_output_flush_noop,
    .cancel = kafka_cancel,
    .destroy = kafka_destroy,
};
