/*
 * The audit chain. One HMAC context keyed at start is re-initialised for
 * each audit record; the record is fed as it lies in the batch, so nothing
 * is copied. Batches holding audit records wait in a FIFO, in the order
 * they were sealed (the order of their seqs), until they settle; the
 * settled link is that of the newest batch settled with all before it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "audit.h"
#include "input/checkpoint.h"
#include "json_write.h"
#include "logveil/log.h"
#include "logveil/metrics.h"

#define STATE_MAGIC "logveil-audit-state 2"

static void save(struct lv_audit *a);

struct link {
    uint64_t seq;
    unsigned char chain[32];
};

struct pending {
    uint64_t batch;
    struct link last; /* the batch's last audit record */
    bool settled;
};

struct lv_audit {
    EVP_MAC_CTX *mac;
    char *stream;
    char *key_id;
    struct lv_buf head;     /* ,"audit":{"stream":"S","key":"K","seq": */
    struct link cur;        /* the last record chained: seq and chain */
    struct link prev;       /* what the next record links to (cur, but after an
                               unclean stop the last settled record) */
    struct link settled;    /* the last record whose batch every output settled */
    struct link reserved;   /* the last record of a batch handed to the outputs */
    uint64_t restart_from;  /* > 0: the next record declares restart_from..
                               reserved.seq in flight at an unclean stop */
    bool unsealed;          /* records chained since the last seal */
    uint64_t saved_settled, saved_reserved; /* what the state file holds */
    struct pending *fifo;   /* sealed batches with audit records, oldest first */
    size_t head_i, n, cap;
    char *state_path;
    bool state_failing;
};

static EVP_MAC_CTX *keyed_mac(const char *key, size_t len)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    EVP_MAC_free(mac);
    if (ctx && !EVP_MAC_init(ctx, (const unsigned char *)key, len, params)) {
        EVP_MAC_CTX_free(ctx);
        ctx = NULL;
    }
    return ctx;
}

/* "<POD_UID>/<CONTAINER_NAME>" in Kubernetes, the host name elsewhere. */
static char *default_stream(void)
{
    const char *uid = getenv("POD_UID"), *container = getenv("CONTAINER_NAME");
    char buf[320];
    if (uid && *uid) {
        snprintf(buf, sizeof buf, "%s/%s", uid, container && *container ? container : "-");
        return lv_xstrdup(buf);
    }
    if (gethostname(buf, 256) != 0)
        snprintf(buf, sizeof buf, "localhost");
    buf[255] = '\0';
    return lv_xstrdup(buf);
}

static void to_hex(const unsigned char *b, size_t n, char *hex)
{
    static const char xd[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        hex[2 * i] = xd[b[i] >> 4];
        hex[2 * i + 1] = xd[b[i] & 15];
    }
}

static int from_hex(const char *hex, unsigned char *b, size_t n)
{
    for (size_t i = 0; i < 2 * n; i++) {
        char c = hex[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            return -EINVAL;
        b[i / 2] = (unsigned char)(i % 2 ? (b[i / 2] | v) : v << 4);
    }
    return 0;
}

/* The state file's name: the stream may hold any byte, so it is hashed. */
static char *state_path(const char *dir, const char *stream)
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    char hex[17], *path;
    EVP_Digest(stream, strlen(stream), md, &mdlen, EVP_sha256(), NULL);
    to_hex(md, 8, hex);
    hex[16] = '\0';
    size_t len = strlen(dir) + 40;
    path = lv_xmalloc(len);
    snprintf(path, len, "%s/audit-%s.state", dir, hex);
    return path;
}

static int put_link(struct lv_buf *b, const char *name, const struct link *l)
{
    char hex[65], text[128];
    to_hex(l->chain, 32, hex);
    hex[64] = '\0';
    int n = snprintf(text, sizeof text, "%s %" PRIu64 " %s\n", name, l->seq, hex);
    return lv_buf_append(b, text, (size_t)n);
}

/* The state file:
 *     logveil-audit-state 2
 *     settled <seq> <chain hex>
 *     reserved <seq> <chain hex>
 *     stream <name>
 *     end */
static int format_state(const struct lv_audit *a, struct lv_buf *b)
{
    if (lv_buf_puts(b, STATE_MAGIC "\n") < 0 || put_link(b, "settled", &a->settled) < 0 ||
        put_link(b, "reserved", &a->reserved) < 0 || lv_buf_puts(b, "stream ") < 0 ||
        lv_buf_append(b, a->stream, strlen(a->stream)) < 0)
        return -ENOBUFS;
    return lv_buf_puts(b, "\nend\n");
}

static int parse_link(const char **p, const char *name, struct link *l)
{
    char hex[65] = "";
    int used = 0;
    size_t n = strlen(name);
    if (strncmp(*p, name, n) != 0 || (*p)[n] != ' ')
        return -EINVAL;
    if (sscanf(*p + n, " %" SCNu64 " %64[0-9a-f]\n%n", &l->seq, hex, &used) != 2 || used == 0 ||
        strlen(hex) != 64 || from_hex(hex, l->chain, 32) < 0)
        return -EINVAL;
    *p += n + (size_t)used;
    return 0;
}

/* Reads the state: 0 (a missing file is a new chain), or -EINVAL when it is
 * damaged or names another stream: starting over would fork the chain. The
 * text must be exactly what format_state() writes for what was read. */
static int load_state(struct lv_audit *a, char *err, size_t errlen)
{
    char *data = NULL;
    size_t len = 0;
    int rc = lv_read_file(a->state_path, 4096, &data, &len);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0) {
        snprintf(err, errlen, "audit: cannot read its state %s: %s", a->state_path, strerror(-rc));
        return rc;
    }
    const char *p = data;
    rc = -EINVAL;
    if (!strncmp(p, STATE_MAGIC "\n", sizeof STATE_MAGIC) &&
        (p += sizeof STATE_MAGIC, parse_link(&p, "settled", &a->settled) == 0) &&
        parse_link(&p, "reserved", &a->reserved) == 0 && a->settled.seq <= a->reserved.seq) {
        struct lv_buf want;
        lv_buf_init(&want, 256, 0);
        format_state(a, &want);
        rc = want.len == len && memcmp(want.data, data, len) == 0 ? 0 : -EINVAL;
        lv_buf_free(&want);
    }
    free(data);
    if (rc < 0)
        snprintf(err, errlen,
                 "audit: the state %s is damaged or belongs to another stream; starting a new "
                 "chain would fork this one: move the file aside to start one on purpose",
                 a->state_path);
    return rc;
}

static void render_head(struct lv_audit *a)
{
    lv_buf_init(&a->head, 128, 0);
    lv_buf_puts(&a->head, "\"audit\":{\"stream\":");
    lv_json_string(&a->head, a->stream, strlen(a->stream), NULL);
    lv_buf_puts(&a->head, ",\"key\":");
    lv_json_string(&a->head, a->key_id, strlen(a->key_id), NULL);
    lv_buf_puts(&a->head, ",\"seq\":");
}

struct lv_audit *lv_audit_new(const struct lv_conf *conf, char *err, size_t errlen)
{
    err[0] = '\0';
    if (!conf->audit.key)
        return NULL;
    struct lv_audit *a = lv_xcalloc(1, sizeof *a);
    a->mac = keyed_mac(conf->audit.key, conf->audit.key_len);
    if (!a->mac) {
        snprintf(err, errlen, "audit: OpenSSL has no HMAC-SHA256");
        goto err;
    }
    a->stream = conf->audit.stream ? lv_xstrdup(conf->audit.stream) : default_stream();
    a->key_id = lv_xstrdup(conf->audit.key_id);
    a->state_path = state_path(conf->state_dir, a->stream);
    if (load_state(a, err, errlen) < 0)
        goto err;
    /* Batches handed to the outputs and not settled when the last process
     * stopped may or may not have reached the store: their seqs are never
     * used again, and the next record links to the last settled one,
     * declaring the range between (see audit.h). */
    a->saved_settled = a->settled.seq;
    a->saved_reserved = a->reserved.seq;
    a->cur = a->reserved;
    a->prev = a->settled;
    if (a->reserved.seq > a->settled.seq)
        a->restart_from = a->settled.seq + 1;
    lv_metrics.audit_last_seq = a->cur.seq;
    render_head(a);
    return a;
err:
    lv_audit_free(a);
    return NULL;
}

void lv_audit_free(struct lv_audit *a)
{
    if (!a)
        return;
    if (a->head.data &&
        (a->settled.seq != a->saved_settled || a->reserved.seq != a->saved_reserved))
        save(a); /* the settled state as of the end: a clean stop declares nothing */
    EVP_MAC_CTX_free(a->mac); /* cleanses the key it holds */
    lv_buf_free(&a->head);
    free(a->stream);
    free(a->key_id);
    free(a->fifo);
    free(a->state_path);
    free(a);
}

const char *lv_audit_state_path(const struct lv_audit *a)
{
    return a->state_path;
}

int lv_audit_append(struct lv_audit *a, struct lv_buf *out, size_t start)
{
    static const unsigned char tail[] = "\"}}";
    char seq[96];
    unsigned char md[32];
    size_t mdlen = 0;
    bool empty = out->len > start && out->data[out->len - 1] == '{';
    int n = a->restart_from
                ? snprintf(seq, sizeof seq, "%" PRIu64 ",\"restart\":[%" PRIu64 ",%" PRIu64
                                            "],\"chain\":\"",
                           a->cur.seq + 1, a->restart_from, a->cur.seq)
                : snprintf(seq, sizeof seq, "%" PRIu64 ",\"chain\":\"", a->cur.seq + 1);
    if ((!empty && lv_buf_putc(out, ',') < 0) || lv_buf_append(out, a->head.data, a->head.len) < 0 ||
        lv_buf_append(out, seq, (size_t)n) < 0 || lv_buf_reserve(out, LV_AUDIT_CHAIN_HEX + 4) < 0)
        return -ENOBUFS;
    if (!EVP_MAC_init(a->mac, NULL, 0, NULL) || !EVP_MAC_update(a->mac, a->prev.chain, 32) ||
        !EVP_MAC_update(a->mac, (const unsigned char *)out->data + start, out->len - start) ||
        !EVP_MAC_update(a->mac, tail, 3) || !EVP_MAC_final(a->mac, md, &mdlen, 32))
        return -EIO;
    to_hex(md, 32, out->data + out->len);
    out->len += LV_AUDIT_CHAIN_HEX;
    lv_buf_puts(out, "\"}"); /* reserved above, with the record's "}\n" */
    a->cur.seq++;
    memcpy(a->cur.chain, md, 32);
    a->prev = a->cur;
    a->restart_from = 0;
    a->unsealed = true;
    lv_metrics.audit_last_seq = a->cur.seq;
    return 0;
}

static void save(struct lv_audit *a)
{
    struct lv_buf b;
    lv_buf_init(&b, 256, 0);
    int rc = format_state(a, &b);
    if (rc == 0)
        rc = lv_checkpoint_write(a->state_path, b.data, b.len);
    if (rc == -ENOENT && lv_checkpoint_mkdir(a->state_path) == 0)
        rc = lv_checkpoint_write(a->state_path, b.data, b.len);
    lv_buf_free(&b);
    if (rc < 0) {
        lv_metrics.audit_state_errors++;
        if (!a->state_failing)
            lv_error("audit: cannot write its state %s: %s (a restart may fork the chain)",
                     a->state_path, strerror(-rc));
    } else {
        if (a->state_failing)
            lv_info("audit: state %s written again", a->state_path);
        a->saved_settled = a->settled.seq;
        a->saved_reserved = a->reserved.seq;
    }
    a->state_failing = rc < 0;
}

void lv_audit_sealed(struct lv_audit *a, uint64_t batch_seq)
{
    if (!a || !a->unsealed)
        return;
    a->unsealed = false;
    if (a->head_i + a->n == a->cap) {
        if (a->head_i > 0) {
            memmove(a->fifo, a->fifo + a->head_i, a->n * sizeof *a->fifo);
            a->head_i = 0;
        } else {
            a->cap = a->cap ? 2 * a->cap : 16;
            a->fifo = lv_xrealloc(a->fifo, a->cap * sizeof *a->fifo);
        }
    }
    a->fifo[a->head_i + a->n++] = (struct pending){batch_seq, a->cur, false};
    a->reserved = a->cur;
    save(a); /* before any output has the batch */
}

void lv_audit_settled(struct lv_audit *a, uint64_t batch_seq)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++)
        if (a->fifo[a->head_i + i].batch == batch_seq)
            a->fifo[a->head_i + i].settled = true;
    /* Written with the next reservation, or at exit: a settled state that
     * is older than it could be only widens what a restart declares. */
    while (a->n && a->fifo[a->head_i].settled) {
        a->settled = a->fifo[a->head_i].last;
        a->head_i++;
        a->n--;
    }
    if (!a->n)
        a->head_i = 0;
}
