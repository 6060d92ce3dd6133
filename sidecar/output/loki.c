/*
 * The Loki output: POST /loki/api/v1/push, a logproto.PushRequest encoded
 * by hand (the four messages of Loki's pkg/push/push.proto) and compressed
 * with snappy's block format, or JSON (gzip optional).
 *
 * Streams. A record's labels are the fields named in `labels` (an
 * allow-list of dotted paths, read from the record's text: `log.level`
 * finds {"log":{"level":..}} and {"log.level":..}); a label name is the
 * path with every character Loki does not allow in a name turned into '_'
 * (kubernetes.namespace -> kubernetes_namespace). Everything else stays in
 * the line, which is the record's JSON. Fields named in
 * `structured_metadata` go with each entry as structured metadata. Within
 * a push, entries are grouped per stream and ordered by time.
 *
 * The cardinality guard: when the distinct label sets seen pass
 * `max_streams`, the label with the most distinct values is demoted: from
 * then on it goes as structured metadata instead of a label. Each demotion
 * is logged once and counted (logveil_output_labels_demoted_total).
 *
 * Answers: 2xx delivered; 429, 5xx and transport failures retried without
 * limit; 400 (an entry out of order or too old, a line too long, a bad
 * label) dead-lettered with Loki's reason. Loki stores the valid entries of
 * a request it answers 400, and does not say which ones it refused, so the
 * dead-letter file holds every record of that request (some of which Loki
 * may have kept). Lines over max_line_size are dead-lettered before they
 * are sent.
 */
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ev.h>

#include "deadletter.h"
#include "field.h"
#include "http.h"
#include "json_write.h"
#include "logveil/log.h"
#include "logveil/stage.h"
#include "sample.h"

enum loki_format { LOKI_PROTOBUF, LOKI_JSON };

struct loki_opts {
    struct lv_http_conf http;
    char **labels;
    size_t nlabels;
    char **metadata;
    size_t nmetadata;
    int format;
    size_t batch_max_bytes;
    double flush_interval;
    size_t max_line_size;
    int max_streams;
    char *dead_letter;
};

#define MAX_FIELDS LV_FIELD_MAX
#define VALUE_MAX 1024
#define PUSH_PATH "/loki/api/v1/push"

/* One distinct-value counter: an open-addressing set of 64-bit hashes. */
struct hset {
    uint64_t *slot;
    size_t cap, n;
};

struct label {
    char *path;
    size_t plen;
    char *name;        /* as Loki allows it */
    bool demoted;      /* goes as structured metadata now */
    struct hset values;
};

/* One entry of a push, before encoding. */
struct entry {
    uint32_t stream;
    uint32_t seq;      /* order of arrival, for a stable sort */
    int64_t time_ns;
    const char *line;
    uint32_t len;
    uint32_t meta_off, meta_n; /* its structured metadata, in the request's meta array */
    size_t size;       /* its EntryAdapter's encoded size */
};

struct meta {
    uint16_t name;     /* index in the fields (labels then metadata) */
    const char *p;
    uint32_t len;
    bool string;
};

struct stream {
    char *labels;      /* {a="x", b="y"} */
    size_t len;
    uint64_t hash;
    size_t nentries;
    uint64_t raw_hash; /* of the label fields as read (raw_key()), 0: none kept */
    size_t raw;        /* where they are in the push's sraw array */
    size_t next;       /* where its next entry goes, while ordering them */
};

struct loki_req {
    struct lv_http_req http;
    struct loki_ctx *c;
    struct lv_batch **batches;
    size_t nbatches;
    uint8_t **outcomes; /* by batch: NULL, or one per record (pre-rejected lines) */
    struct lv_buf body;
    char head[512];
    size_t head_len;
};

struct loki_ctx {
    struct lv_output *out;
    const struct loki_opts *o;
    const char *name;
    struct lv_http_client *http;
    struct lv_deadletter *dl;
    struct lv_gz *gz;
    struct label *fields;      /* labels, then structured metadata (never demoted) */
    struct lv_field_path paths[MAX_FIELDS]; /* the fields' paths, for lv_field_read() */
    size_t nlabels, nfields;
    struct hset streams_seen;
    /* waiting batches, oldest first */
    struct lv_batch **wait;
    size_t nwait, capwait, wait_bytes;
    ev_timer flush;
    bool flush_due, failing, destroying;
    /* scratch for building a push, reused */
    struct entry *entries;
    size_t nentries, capentries;
    struct meta *metas;
    size_t nmetas, capmetas;
    struct stream *streams;
    size_t nstreams, capstreams;
    /* The label fields of each stream's first record, as read (escaped,
     * pointing into the batches of the push): a record whose fields are
     * the same bytes belongs to that stream without its label text being
     * made again. nlabels per stream. */
    struct lv_field *sraw;
    size_t nsraw, capsraw;
    uint32_t last_stream;      /* the stream of the previous record */
    struct entry *sorted;      /* the entries by stream, then time */
    size_t capsorted;
    struct lv_buf raw;         /* the protobuf before compression / label text */
    /* Bodies of finished pushes kept for the next ones (at most
     * `concurrency`): their pages stay mapped instead of being faulted in
     * afresh for every push. */
    struct lv_buf spare[8];
    size_t nspare;
    uint64_t rejected;
};

static void pump(struct loki_ctx *c);

/* libsnappy (C++, with libstdc++ behind it) is loaded only for a Loki
 * output that sends protobuf, as libcurl is by http.c. */
static struct {
    __typeof__(snappy_compress) *compress;
    __typeof__(snappy_max_compressed_length) *max_length;
} snappy;

static int load_snappy(char *err, size_t errlen)
{
    if (snappy.compress)
        return 0;
    void *h = dlopen("libsnappy.so.1", RTLD_NOW | RTLD_LOCAL);
    if (h) {
        *(void **)&snappy.max_length = dlsym(h, "snappy_max_compressed_length");
        *(void **)&snappy.compress = dlsym(h, "snappy_compress");
    }
    if (!snappy.compress || !snappy.max_length) {
        snappy.compress = NULL;
        snprintf(err, errlen, "cannot load libsnappy.so.1 (install libsnappy1v5): %s",
                 h ? "symbols missing" : dlerror());
        return -ENOENT;
    }
    return 0;
}

/* ---- the cardinality guard -------------------------------------------------------------------- */

/* Adds h; whether it was new. The set stops growing at `limit` entries
 * (it then says "not new"): only "more than the budget" matters. */
static bool hset_add(struct hset *s, uint64_t h, size_t limit)
{
    h |= 1; /* 0 marks a free slot */
    if (s->n >= limit)
        return false;
    if ((s->n + 1) * 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        uint64_t *slot = lv_xcalloc(cap, sizeof *slot);
        for (size_t i = 0; i < s->cap; i++)
            for (size_t j = s->slot[i] % cap; s->slot[i]; j = (j + 1) % cap)
                if (!slot[j]) {
                    slot[j] = s->slot[i];
                    break;
                }
        free(s->slot);
        s->slot = slot;
        s->cap = cap;
    }
    for (size_t j = h % s->cap;; j = (j + 1) % s->cap) {
        if (s->slot[j] == h)
            return false;
        if (!s->slot[j]) {
            s->slot[j] = h;
            s->n++;
            return true;
        }
    }
}

static void hset_clear(struct hset *s)
{
    if (s->slot)
        memset(s->slot, 0, s->cap * sizeof *s->slot);
    s->n = 0;
}

/* A new label set would pass the budget: the label with the most distinct
 * values becomes structured metadata. */
static void demote(struct loki_ctx *c)
{
    struct label *worst = NULL;
    for (size_t i = 0; i < c->nlabels; i++)
        if (!c->fields[i].demoted && (!worst || c->fields[i].values.n > worst->values.n))
            worst = &c->fields[i];
    if (!worst)
        return;
    worst->demoted = true;
    c->out->counter->labels_demoted++;
    lv_warn("output %s: more than %d distinct label sets; label %s (%zu distinct values so "
            "far) goes as structured metadata from now on, counted in "
            "logveil_output_labels_demoted_total",
            c->name, c->o->max_streams, worst->name, worst->values.n);
    hset_clear(&c->streams_seen);
    /* The push's streams are found by their label text again, and counted
     * anew, as every record after a demotion is. */
    for (size_t s = 0; s < c->nstreams; s++)
        c->streams[s].raw_hash = 0;
}

/* ---- building a push --------------------------------------------------------------------------- */

static void *grow(void *v, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return v;
    *cap = *cap ? *cap * 2 : 256;
    return lv_xrealloc(v, *cap * size);
}

/* `{name="value", ...}` with the value escaped as Prometheus label text. */
static void put_label(struct lv_buf *b, const struct label *l, const struct lv_field *f, bool first)
{
    char v[VALUE_MAX];
    size_t n = lv_field_unescape(f, v, sizeof v);
    lv_buf_append(b, first ? "" : ", ", first ? 0 : 2);
    lv_buf_append(b, l->name, strlen(l->name));
    lv_buf_puts(b, "=\"");
    for (size_t i = 0; i < n; i++) {
        if (v[i] == '"' || v[i] == '\\')
            lv_buf_putc(b, '\\');
        if (v[i] == '\n')
            lv_buf_puts(b, "\\n");
        else
            lv_buf_putc(b, v[i]);
    }
    lv_buf_putc(b, '"');
}

static uint32_t stream_of(struct loki_ctx *c, const struct lv_field *fv, bool may_demote)
{
    struct lv_buf *b = &c->raw;
    b->len = 0;
    lv_buf_putc(b, '{');
    bool first = true;
    for (size_t i = 0; i < c->nlabels; i++) {
        if (c->fields[i].demoted || !fv[i].p)
            continue;
        put_label(b, &c->fields[i], &fv[i], first);
        first = false;
    }
    lv_buf_putc(b, '}');
    uint64_t h = lv_sample_hash(b->data, b->len);
    size_t limit = (size_t)c->o->max_streams + 1;
    if (may_demote && hset_add(&c->streams_seen, h, limit) &&
        c->streams_seen.n > (size_t)c->o->max_streams) {
        demote(c);
        return stream_of(c, fv, false);
    }
    for (size_t s = 0; s < c->nstreams; s++)
        if (c->streams[s].hash == h && c->streams[s].len == b->len &&
            !memcmp(c->streams[s].labels, b->data, b->len))
            return (uint32_t)s;
    c->streams = grow(c->streams, &c->capstreams, c->nstreams, sizeof *c->streams);
    c->streams[c->nstreams] =
        (struct stream){.labels = lv_xstrndup(b->data, b->len), .len = b->len, .hash = h};
    return (uint32_t)c->nstreams++;
}

static void add_meta(struct loki_ctx *c, size_t field, const struct lv_field *f)
{
    c->metas = grow(c->metas, &c->capmetas, c->nmetas, sizeof *c->metas);
    c->metas[c->nmetas++] = (struct meta){(uint16_t)field, f->p, (uint32_t)f->len, f->string};
}

/* The label fields as read, a demoted label as absent: a hash, 0 kept
 * for "none". */
static uint64_t raw_key(const struct loki_ctx *c, const struct lv_field *fv)
{
    uint64_t h = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < c->nlabels; i++) {
        uint64_t v = fv[i].p && !c->fields[i].demoted
                         ? lv_sample_hash(fv[i].p, fv[i].len) ^ (fv[i].string ? 0 : 0x5bd1e995u)
                         : 0;
        h = (h ^ v) * 0x100000001b3ull + i;
    }
    return h | 1;
}

static bool raw_same(const struct loki_ctx *c, const struct stream *st, uint64_t h,
                     const struct lv_field *fv)
{
    if (st->raw_hash != h)
        return false;
    for (size_t i = 0; i < c->nlabels; i++) {
        const struct lv_field *k = &c->sraw[st->raw + i];
        bool on = fv[i].p && !c->fields[i].demoted;
        if (on != (k->p != NULL) ||
            (on && (k->len != fv[i].len || k->string != fv[i].string ||
                    memcmp(k->p, fv[i].p, fv[i].len))))
            return false;
    }
    return true;
}

/* The stream of a record whose label fields are `fv`. One the push already
 * has, found by the fields' bytes (the previous record's first); else by
 * its label text, made and counted by the cardinality guard (which a
 * record of a stream already in the push adds nothing to). */
static uint32_t stream_for(struct loki_ctx *c, const struct lv_field *fv)
{
    uint64_t h = raw_key(c, fv);
    if (c->last_stream < c->nstreams && raw_same(c, &c->streams[c->last_stream], h, fv))
        return c->last_stream;
    for (size_t s = 0; s < c->nstreams; s++)
        if (raw_same(c, &c->streams[s], h, fv))
            return c->last_stream = (uint32_t)s;
    for (size_t i = 0; i < c->nlabels; i++)
        if (fv[i].p && !c->fields[i].demoted)
            hset_add(&c->fields[i].values, lv_sample_hash(fv[i].p, fv[i].len),
                     (size_t)c->o->max_streams * 4);
    size_t before = c->nstreams;
    uint32_t s = stream_of(c, fv, true);
    if (c->nstreams > before) { /* a new stream: its fields are kept */
        h = raw_key(c, fv);      /* (a demotion may have changed them) */
        while (c->nsraw + c->nlabels > c->capsraw)
            c->sraw = grow(c->sraw, &c->capsraw, c->capsraw, sizeof *c->sraw);
        c->streams[s].raw_hash = h;
        c->streams[s].raw = c->nsraw;
        for (size_t i = 0; i < c->nlabels; i++)
            c->sraw[c->nsraw++] = fv[i].p && !c->fields[i].demoted ? fv[i] : (struct lv_field){0};
    }
    return c->last_stream = s;
}

static void add_entry(struct loki_ctx *c, const struct lv_batch *b, size_t r)
{
    const struct lv_record *rec = &b->recs[r];
    const char *text = b->data.data + rec->off;
    struct lv_field fv[MAX_FIELDS];
    lv_field_read(text, rec->len, c->paths, c->nfields, fv);
    uint32_t s = stream_for(c, fv);
    c->entries = grow(c->entries, &c->capentries, c->nentries, sizeof *c->entries);
    struct entry *e = &c->entries[c->nentries];
    *e = (struct entry){s, (uint32_t)c->nentries, rec->time_ns, text, rec->len,
                        (uint32_t)c->nmetas, 0, 0};
    c->nentries++;
    c->streams[s].nentries++;
    for (size_t i = 0; i < c->nfields; i++)
        if (fv[i].p && (i >= c->nlabels || c->fields[i].demoted))
            add_meta(c, i, &fv[i]);
    e->meta_n = (uint32_t)(c->nmetas - e->meta_off);
}

static int by_time(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    if (x->time_ns != y->time_ns)
        return x->time_ns < y->time_ns ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The entries grouped by stream (in the order streams were made), each
 * stream's by time, ties in order of arrival: placed by stream in one pass,
 * and a stream's entries sorted only when they did not come in order. */
static void order_entries(struct loki_ctx *c)
{
    if (c->capsorted < c->nentries) {
        free(c->sorted);
        c->capsorted = c->capentries;
        c->sorted = lv_xmalloc(c->capsorted * sizeof *c->sorted);
    }
    size_t at = 0;
    for (size_t s = 0; s < c->nstreams; s++) {
        c->streams[s].next = at;
        at += c->streams[s].nentries;
    }
    for (size_t e = 0; e < c->nentries; e++)
        c->sorted[c->streams[c->entries[e].stream].next++] = c->entries[e];
    at = 0;
    for (size_t s = 0; s < c->nstreams; s++) {
        struct entry *first = c->sorted + at;
        size_t n = c->streams[s].nentries;
        for (size_t k = 1; k < n; k++)
            if (first[k].time_ns < first[k - 1].time_ns) {
                qsort(first, n, sizeof *first, by_time);
                break;
            }
        at += n;
    }
    struct entry *t = c->entries;
    size_t cap = c->capentries;
    c->entries = c->sorted;
    c->capentries = c->capsorted;
    c->sorted = t;
    c->capsorted = cap;
}

/* ---- protobuf ----------------------------------------------------------------------------------
 * PushRequest{1: repeated StreamAdapter}; StreamAdapter{1: labels, 2:
 * repeated EntryAdapter}; EntryAdapter{1: Timestamp, 2: line, 3: repeated
 * LabelPairAdapter}; Timestamp{1: int64 seconds, 2: int32 nanos};
 * LabelPairAdapter{1: name, 2: value}. Sizes are computed first, since each
 * message is written after its length. */

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static char *put_varint(char *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (char)(v | 0x80);
        v >>= 7;
    }
    *p++ = (char)v;
    return p;
}

/* A length-delimited field's full size. */
static size_t ld(size_t len)
{
    return 1 + varint_len(len) + len;
}

static char *put_ld(char *p, int field, const void *data, size_t len)
{
    *p++ = (char)(field << 3 | 2);
    p = put_varint(p, len);
    memcpy(p, data, len);
    return p + len;
}

static char *put_head(char *p, int field, size_t len)
{
    *p++ = (char)(field << 3 | 2);
    return put_varint(p, len);
}

static void ts_split(int64_t ns, int64_t *sec, int32_t *nanos)
{
    *sec = ns / 1000000000;
    *nanos = (int32_t)(ns % 1000000000);
    if (*nanos < 0) {
        *nanos += 1000000000;
        (*sec)--;
    }
}

static size_t ts_size(int64_t ns)
{
    int64_t sec;
    int32_t nanos;
    ts_split(ns, &sec, &nanos);
    return (sec ? 1 + varint_len((uint64_t)sec) : 0) + (nanos ? 1 + varint_len((uint64_t)nanos) : 0);
}

/* Structured metadata values are decoded into `v` (VALUE_MAX). */
static size_t pair_size(const struct loki_ctx *c, const struct meta *m, size_t *vlen, char *v)
{
    struct lv_field f = {m->p, m->len, m->string};
    *vlen = lv_field_unescape(&f, v, VALUE_MAX);
    return ld(strlen(c->fields[m->name].name)) + ld(*vlen);
}

static size_t entry_size(const struct loki_ctx *c, const struct entry *e)
{
    char v[VALUE_MAX];
    size_t vlen, n = ld(ts_size(e->time_ns)) + ld(e->len);
    for (uint32_t k = 0; k < e->meta_n; k++)
        n += ld(pair_size(c, &c->metas[e->meta_off + k], &vlen, v));
    return n;
}

static char *put_entry(const struct loki_ctx *c, char *p, const struct entry *e, size_t size)
{
    int64_t sec;
    int32_t nanos;
    char v[VALUE_MAX];
    size_t vlen;
    ts_split(e->time_ns, &sec, &nanos);
    p = put_head(p, 2, size);
    p = put_head(p, 1, ts_size(e->time_ns));
    if (sec) {
        *p++ = 1 << 3;
        p = put_varint(p, (uint64_t)sec);
    }
    if (nanos) {
        *p++ = 2 << 3;
        p = put_varint(p, (uint64_t)nanos);
    }
    p = put_ld(p, 2, e->line, e->len);
    for (uint32_t k = 0; k < e->meta_n; k++) {
        const struct meta *m = &c->metas[e->meta_off + k];
        const char *name = c->fields[m->name].name;
        p = put_head(p, 3, pair_size(c, m, &vlen, v));
        p = put_ld(p, 1, name, strlen(name));
        p = put_ld(p, 2, v, vlen);
    }
    return p;
}

/* The PushRequest of the sorted entries, snappy-compressed into `out`. */
static int encode_protobuf(struct loki_ctx *c, struct lv_buf *out)
{
    size_t total = 0, e = 0;
    size_t *ssize = lv_xcalloc(c->nstreams + 1, sizeof *ssize);
    for (size_t s = 0; s < c->nstreams; s++) {
        ssize[s] = ld(c->streams[s].len);
        for (size_t k = 0; k < c->streams[s].nentries; k++, e++)
            ssize[s] += ld(c->entries[e].size = entry_size(c, &c->entries[e]));
        total += ld(ssize[s]);
    }
    struct lv_buf *raw = &c->raw;
    raw->len = 0;
    int rc = 0;
    if (raw->cap < total || raw->cap > 2 * total + 256 * 1024) {
        /* this push's size and an eighth, not the next power of two */
        free(raw->data);
        raw->cap = total + total / 8 + 1;
        raw->data = lv_xmalloc(raw->cap);
    }
    char *p = raw->data;
    e = 0;
    for (size_t s = 0; rc == 0 && s < c->nstreams; s++) {
        p = put_head(p, 1, ssize[s]);
        p = put_ld(p, 1, c->streams[s].labels, c->streams[s].len);
        for (size_t k = 0; k < c->streams[s].nentries; k++, e++)
            p = put_entry(c, p, &c->entries[e], c->entries[e].size);
    }
    free(ssize);
    if (rc < 0)
        return rc;
    raw->len = (size_t)(p - raw->data);
    /* The body sized for this push and an eighth (a spare one when it is
     * large enough), not doubled: pages resident are those snappy wrote. */
    size_t clen = snappy.max_length(raw->len);
    if (out->cap < clen) {
        free(out->data);
        out->data = lv_xmalloc(clen + clen / 8);
        out->cap = clen + clen / 8;
    }
    out->len = 0;
    if (snappy.compress(raw->data, raw->len, out->data, &clen) != SNAPPY_OK)
        return -EIO;
    out->len = clen;
    return 0;
}

/* {"streams":[{"stream":{..},"values":[["<ns>","<line>",{..}],..]},..]} */
static int json_put(struct loki_ctx *c, struct lv_buf *out, const char *s, size_t n)
{
    return c->o->http.gzip ? lv_gz_write(c->gz, out, s, n) : lv_buf_append(out, s, n);
}

static int json_string(struct loki_ctx *c, struct lv_buf *out, const char *s, size_t n)
{
    struct lv_buf *t = &c->raw;
    t->len = 0;
    int rc = lv_json_string(t, s, n, NULL);
    return rc ? rc : json_put(c, out, t->data, t->len);
}

static int json_stream_labels(struct loki_ctx *c, struct lv_buf *out, const struct stream *st)
{
    /* The labels text {a="x", b="y"} holds Prometheus-escaped values; in
     * JSON each becomes "a":"x", decoded from the same fields. Streams keep
     * the text form, so it is read back here. */
    int rc = json_put(c, out, "{", 1);
    const char *p = st->labels + 1, *end = st->labels + st->len - 1;
    bool first = true;
    while (p < end && rc == 0) {
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (!eq)
            break;
        char v[VALUE_MAX];
        size_t n = 0;
        const char *q = eq + 2;
        for (; q < end && *q != '"' && n < VALUE_MAX - 1; q++) {
            if (*q == '\\' && q + 1 < end) {
                q++;
                v[n++] = *q == 'n' ? '\n' : *q;
            } else {
                v[n++] = *q;
            }
        }
        rc |= json_put(c, out, first ? "" : ",", first ? 0 : 1);
        rc |= json_string(c, out, p, (size_t)(eq - p));
        rc |= json_put(c, out, ":", 1);
        rc |= json_string(c, out, v, n);
        first = false;
        p = q + 1;
        if (p < end && *p == ',')
            p += 2;
    }
    return rc | json_put(c, out, "}", 1);
}

static int json_entry(struct loki_ctx *c, struct lv_buf *out, const struct entry *e, bool first)
{
    char ts[32], v[VALUE_MAX];
    int n = snprintf(ts, sizeof ts, "%s[\"%" PRId64 "\",", first ? "" : ",", e->time_ns);
    int rc = json_put(c, out, ts, (size_t)n);
    rc |= json_string(c, out, e->line, e->len);
    if (e->meta_n) {
        rc |= json_put(c, out, ",{", 2);
        for (uint32_t k = 0; k < e->meta_n; k++) {
            const struct meta *m = &c->metas[e->meta_off + k];
            struct lv_field f = {m->p, m->len, m->string};
            size_t vlen = lv_field_unescape(&f, v, sizeof v);
            const char *name = c->fields[m->name].name;
            rc |= json_put(c, out, k ? "," : "", k ? 1 : 0);
            rc |= json_string(c, out, name, strlen(name));
            rc |= json_put(c, out, ":", 1);
            rc |= json_string(c, out, v, vlen);
        }
        rc |= json_put(c, out, "}", 1);
    }
    return rc | json_put(c, out, "]", 1);
}

static int encode_json(struct loki_ctx *c, struct lv_buf *out)
{
    if (c->o->http.gzip)
        lv_gz_begin(c->gz, out);
    else
        out->len = 0;
    int rc = json_put(c, out, "{\"streams\":[", 12);
    size_t e = 0;
    for (size_t s = 0; s < c->nstreams && rc == 0; s++) {
        rc |= json_put(c, out, s ? ",{\"stream\":" : "{\"stream\":", s ? 11 : 10);
        rc |= json_stream_labels(c, out, &c->streams[s]);
        rc |= json_put(c, out, ",\"values\":[", 11);
        for (size_t k = 0; k < c->streams[s].nentries; k++, e++)
            rc |= json_entry(c, out, &c->entries[e], k == 0);
        rc |= json_put(c, out, "]}", 2);
    }
    rc |= json_put(c, out, "]}", 2);
    if (rc == 0 && c->o->http.gzip)
        rc = lv_gz_end(c->gz, out);
    return rc;
}

/* ---- requests ------------------------------------------------------------------------------------ */

static void reset_push(struct loki_ctx *c)
{
    for (size_t s = 0; s < c->nstreams; s++)
        free(c->streams[s].labels);
    c->nstreams = c->nentries = c->nmetas = c->nsraw = 0;
    c->last_stream = 0;
}

static void dead_letter(struct loki_ctx *c, const struct lv_batch *b, size_t r, int status,
                        const char *reason, size_t len)
{
    const struct lv_record *rec = &b->recs[r];
    c->rejected++;
    if (c->dl)
        lv_deadletter_write(c->dl, b->data.data + rec->off, rec->len, status, "loki_rejected",
                            13, reason, len);
}

/* Records over max_line_size are refused before sending: their outcomes. */
static uint8_t *too_long(struct loki_ctx *c, const struct lv_batch *b)
{
    uint8_t *o = NULL;
    for (size_t r = 0; c->o->max_line_size && r < b->n; r++) {
        if (b->recs[r].len <= c->o->max_line_size)
            continue;
        if (!o)
            o = lv_xcalloc(b->n, 1);
        o[r] = LV_REJECTED;
        dead_letter(c, b, r, 400, "line too long (over max_line_size, not sent)", 44);
    }
    return o;
}

static int build(struct loki_ctx *c, struct loki_req *q)
{
    reset_push(c);
    for (size_t i = 0; i < q->nbatches; i++) {
        const struct lv_batch *b = q->batches[i];
        q->outcomes[i] = too_long(c, b);
        for (size_t r = 0; r < b->n; r++)
            if (!q->outcomes[i] || q->outcomes[i][r] != LV_REJECTED)
                add_entry(c, b, r);
    }
    order_entries(c);
    int rc = c->o->format == LOKI_JSON ? encode_json(c, &q->body) : encode_protobuf(c, &q->body);
    reset_push(c);
    return rc;
}

static void report(struct loki_ctx *c, struct loki_req *q, enum lv_outcome o, int status)
{
    for (size_t i = 0; i < q->nbatches; i++) {
        struct lv_batch *b = q->batches[i];
        uint8_t *per = q->outcomes[i];
        size_t sent = 0;
        for (size_t r = 0; r < b->n; r++) {
            if (per && per[r] == LV_REJECTED)
                continue;
            if (o == LV_REJECTED)
                dead_letter(c, b, r, status, q->head, q->head_len);
            if (per)
                per[r] = (uint8_t)o;
            sent += o == LV_SENT;
        }
        c->out->counter->records += sent;
        if (!c->destroying)
            lv_output_done(c->out, b, o, per);
        free(per);
    }
}

static void req_free(struct loki_req *q)
{
    struct loki_ctx *c = q->c;
    size_t keep = c->o->http.concurrency > 0 ? (size_t)c->o->http.concurrency : 2;
    if (q->body.data && c->nspare < keep && c->nspare < sizeof c->spare / sizeof c->spare[0])
        c->spare[c->nspare++] = q->body;
    else
        lv_buf_free(&q->body);
    free(q->batches);
    free(q->outcomes);
    free(q);
}

static bool on_data(struct lv_http_req *r, const char *data, size_t len)
{
    struct loki_req *q = (struct loki_req *)r;
    size_t n = len < sizeof q->head - q->head_len ? len : sizeof q->head - q->head_len;
    memcpy(q->head + q->head_len, data, n);
    q->head_len += n;
    return true;
}

static void on_done(struct lv_http_req *r, long status, const char *error)
{
    struct loki_req *q = (struct loki_req *)r;
    struct loki_ctx *c = q->c;
    while (q->head_len && (q->head[q->head_len - 1] == '\n' || q->head[q->head_len - 1] == ' '))
        q->head_len--;
    if (!error && status >= 200 && status < 300) {
        if (c->failing)
            lv_info("output %s: pushes succeed again", c->name);
        c->failing = false;
        c->out->counter->bytes += q->http.body_len;
        report(c, q, LV_SENT, (int)status);
    } else if (!error && status == 400) {
        c->out->counter->errors++;
        lv_warn("output %s: Loki refused a push (400: %.*s); its records go to the dead letters",
                c->name, (int)(q->head_len > 300 ? 300 : q->head_len), q->head);
        report(c, q, LV_REJECTED, 400);
    } else if (r->cancelled) {
        report(c, q, LV_RETRY, 0); /* the shutdown deadline: handed back */
    } else {
        c->out->counter->errors++;
        if (!c->failing && error)
            lv_warn("output %s: push failed: %s; retrying", c->name, error);
        else if (!c->failing)
            lv_warn("output %s: push answered %ld: %.*s; retrying", c->name, status,
                    (int)(q->head_len > 200 ? 200 : q->head_len), q->head);
        c->failing = true;
        report(c, q, LV_RETRY, (int)status);
    }
    bool cancelled = r->cancelled;
    req_free(q);
    if (!c->destroying && !cancelled)
        pump(c);
}

static void send_one(struct loki_ctx *c)
{
    struct loki_req *q = lv_xcalloc(1, sizeof *q);
    size_t bytes = 0, take = 0;
    while (take < c->nwait && (bytes < c->o->batch_max_bytes || take == 0))
        bytes += c->wait[take++]->data.len;
    q->c = c;
    q->batches = lv_xmalloc(take * sizeof *q->batches);
    q->outcomes = lv_xcalloc(take, sizeof *q->outcomes);
    memcpy(q->batches, c->wait, take * sizeof *q->batches);
    q->nbatches = take;
    memmove(c->wait, c->wait + take, (c->nwait - take) * sizeof *c->wait);
    c->nwait -= take;
    c->wait_bytes -= bytes;
    if (c->nspare)
        q->body = c->spare[--c->nspare];
    else
        lv_buf_init(&q->body, c->o->format == LOKI_JSON ? 64 * 1024 : 0, 0);
    q->body.len = 0;
    q->http.path = PUSH_PATH;
    q->http.content_type =
        c->o->format == LOKI_JSON ? "application/json" : "application/x-protobuf";
    q->http.body_gzip = c->o->format == LOKI_JSON && c->o->http.gzip;
    q->http.on_data = on_data;
    q->http.on_done = on_done;
    int rc = build(c, q);
    q->http.body = q->body.data;
    q->http.body_len = q->body.len;
    if (rc == 0)
        rc = lv_http_send(c->http, &q->http);
    if (rc < 0)
        on_done(&q->http, 0, "the push could not be made");
}

static void pump(struct loki_ctx *c)
{
    while (c->nwait && lv_http_can_send(c->http)) {
        if (c->wait_bytes < c->o->batch_max_bytes && !c->flush_due && !lv_http_open(c->http))
            break;
        send_one(c);
    }
    if (!c->nwait) {
        c->flush_due = false;
        ev_timer_stop(c->out->loop, &c->flush);
    } else if (!ev_is_active(&c->flush) && !c->flush_due) {
        ev_timer_set(&c->flush, c->o->flush_interval, 0.);
        ev_timer_start(c->out->loop, &c->flush);
    }
}

static void flush_due(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct loki_ctx *c = lv_container_of(w, struct loki_ctx, flush);
    (void)loop;
    (void)revents;
    c->flush_due = true;
    pump(c);
}

static void http_ready(void *arg)
{
    struct loki_ctx *c = arg;
    pump(c);
    lv_output_ready(c->out);
}

/* ---- the output type ----------------------------------------------------------------------------- */

static int loki_submit(struct lv_output *out, struct lv_batch *b)
{
    struct loki_ctx *c = out->ctx;
    if (b->n == 0) {
        lv_output_done(out, b, LV_SENT, NULL);
        return 0;
    }
    if (lv_http_open(c->http) && (c->nwait || !lv_http_can_send(c->http)))
        return -EAGAIN;
    c->wait = grow(c->wait, &c->capwait, c->nwait, sizeof *c->wait);
    c->wait[c->nwait++] = b;
    c->wait_bytes += b->data.len;
    pump(c);
    return 0;
}

/* "kubernetes.pod.name" -> "kubernetes_pod_name": Loki's names are
 * [a-zA-Z_][a-zA-Z0-9_]*. */
static char *label_name(const char *path)
{
    char *n = lv_xstrdup(path);
    for (char *p = n; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
              (p > n && *p >= '0' && *p <= '9')))
            *p = '_';
    return n;
}

static int loki_init(struct lv_output *out)
{
    struct loki_ctx *c = out->ctx;
    const struct loki_opts *o = out->conf->opts;
    char err[300];
    c->out = out;
    c->o = o;
    c->name = out->conf->name ? out->conf->name : out->type->name;
    out->retry_max_delay = o->http.retry_max_delay;
    ev_timer_init(&c->flush, flush_due, 0., 0.);
    c->nlabels = o->nlabels;
    c->nfields = o->nlabels + o->nmetadata;
    c->fields = lv_xcalloc(c->nfields ? c->nfields : 1, sizeof *c->fields);
    for (size_t i = 0; i < c->nfields; i++) {
        const char *path = i < o->nlabels ? o->labels[i] : o->metadata[i - o->nlabels];
        c->fields[i].path = lv_xstrdup(path);
        c->fields[i].plen = strlen(path);
        c->fields[i].name = label_name(path);
        c->paths[i] = (struct lv_field_path){c->fields[i].path, c->fields[i].plen};
    }
    lv_buf_init(&c->raw, 64 * 1024, 0);
    if (o->format == LOKI_PROTOBUF && load_snappy(err, sizeof err) < 0) {
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
    c->http = lv_http_client_new(out->loop, &o->http, c->name, http_ready, c, err, sizeof err);
    if (!c->http) {
        lv_error("output %s: %s", c->name, err);
        return -EINVAL;
    }
    if (o->format == LOKI_JSON && o->http.gzip)
        c->gz = lv_gz_new(1);
    return 0;
}

static void loki_cancel(struct lv_output *out)
{
    struct loki_ctx *c = out->ctx;
    ev_timer_stop(out->loop, &c->flush);
    lv_http_cancel_all(c->http);
    size_t n = c->nwait;
    c->nwait = 0;
    c->wait_bytes = 0;
    for (size_t i = 0; i < n; i++)
        lv_output_done(out, c->wait[i], LV_RETRY, NULL);
}

static void loki_destroy(struct lv_output *out)
{
    struct loki_ctx *c = out->ctx;
    if (!c->out)
        return;
    c->destroying = true;
    ev_timer_stop(out->loop, &c->flush);
    if (c->http)
        lv_info("output %s: %" PRIu64 " requests, %" PRIu64 " records delivered, %" PRIu64
                " rejected",
                c->name, lv_http_requests(c->http), out->counter->records, c->rejected);
    lv_http_client_free(c->http);
    lv_deadletter_close(c->dl);
    lv_gz_free(c->gz);
    for (size_t i = 0; i < c->nfields; i++) {
        free(c->fields[i].path);
        free(c->fields[i].name);
        free(c->fields[i].values.slot);
    }
    free(c->fields);
    free(c->streams_seen.slot);
    reset_push(c);
    free(c->entries);
    free(c->metas);
    free(c->streams);
    free(c->sraw);
    free(c->sorted);
    free(c->wait);
    lv_buf_free(&c->raw);
    for (size_t i = 0; i < c->nspare; i++)
        lv_buf_free(&c->spare[i]);
}

/* ---- configuration ------------------------------------------------------------------------------- */

static const char *const format_names[] = {"protobuf", "json", NULL};

#define F(f) offsetof(struct loki_opts, f)
static const struct lv_conf_map_key loki_keys[] = {
    LV_HTTP_KEYS(struct loki_opts, http),
    {.name = "tenant", .type = &lv_conf_map_str, .off = F(http.tenant), .flags = LV_CONF_MAP_NONEMPTY},
    {.name = "labels", .type = &lv_conf_map_strlist, .off = F(labels), .off2 = F(nlabels)},
    {.name = "structured_metadata", .type = &lv_conf_map_strlist, .off = F(metadata),
     .off2 = F(nmetadata)},
    {.name = "format", .type = &lv_conf_map_enum, .off = F(format), .choices = format_names},
    {.name = "batch_max_bytes", .type = &lv_conf_map_size, .off = F(batch_max_bytes), .min = 1024,
     .max = 100 * 1024 * 1024},
    {.name = "flush_interval", .type = &lv_conf_map_double, .off = F(flush_interval), .min = 0.001,
     .max = 3600},
    {.name = "max_line_size", .type = &lv_conf_map_size, .off = F(max_line_size)},
    {.name = "max_streams", .type = &lv_conf_map_int, .off = F(max_streams), .min = 1,
     .max = 1000000},
    {.name = "dead_letter", .type = &lv_conf_map_str, .off = F(dead_letter),
     .flags = LV_CONF_MAP_NONEMPTY},
    {0},
};
#undef F

static void loki_opts_init(void *opts)
{
    struct loki_opts *o = opts;
    lv_http_conf_init(&o->http);
    o->http.gzip = false; /* protobuf bodies are snappy-compressed */
    o->batch_max_bytes = 1024 * 1024;
    o->flush_interval = 1.0;
    o->max_line_size = 256 * 1024;
    o->max_streams = 1000;
}

static void loki_check(struct lv_conf_map_ctx *ctx, const yaml_node_t *node, void *opts,
                       const char *where)
{
    struct loki_opts *o = opts;
    char at[LV_CONF_MAP_WHERE];
    lv_http_conf_check(ctx, node, &o->http, where);
    if (o->nlabels + o->nmetadata > MAX_FIELDS)
        lv_conf_map_error(ctx, node, where, "%zu labels and structured_metadata fields, "
                          "expected at most %d", o->nlabels + o->nmetadata, MAX_FIELDS);
    if (o->nlabels > 15)
        lv_conf_map_error(ctx, lv_conf_map_get(ctx, node, "labels"),
                          lv_conf_map_join(at, where, "labels"),
                          "%zu labels, Loki allows 15 per stream by default", o->nlabels);
    if (o->dead_letter)
        lv_deadletter_check(ctx, node, o->dead_letter, where);
}

static const struct lv_conf_spec loki_spec = {
    .keys = loki_keys,
    .size = sizeof(struct loki_opts),
    .init = loki_opts_init,
    .check = loki_check,
};

const struct lv_output_type lv_output_loki = {
    .name = "loki",
    .ctx_size = sizeof(struct loki_ctx),
    .opts = &loki_spec,
    .init = loki_init,
    .submit = loki_submit,
    .flush = lv_output_flush_noop,
    .cancel = loki_cancel,
    .destroy = loki_destroy,
};
