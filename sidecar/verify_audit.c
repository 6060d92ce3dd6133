/*
 * The verifier. Reading: each line is parsed once with yajl, noting byte
 * offsets (yajl_get_bytes_consumed) of the members that matter, so that
 * the record's bytes are taken exactly as they are in the export, never
 * re-serialised. Checking: the records of a stream are sorted by seq; a
 * record verifies when HMAC(key, prev || its line without the chain digits)
 * equals its chain, prev being the chain value carried by a record of the
 * seq before. A record that fails is altered, unless its content (the
 * record before its "audit" member) verifies at another failed record's
 * place: then the two were swapped (reordered).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <yajl/yajl_parse.h>

#include "logveil/util.h"
#include "pseudonym.h"
#include "verify_audit.h"

#define CHAIN_HEX 64
#define MAX_STREAMS 1024
#define MAX_KEYS 16
#define MAX_SWAP_CANDIDATES 256
#define MAX_LISTED 20 /* findings of one kind listed in full; the rest counted */

struct vkey {
    char id[LV_PSEUDONYM_ID_MAX + 1];
    EVP_MAC_CTX *mac; /* keyed once; holds (and cleanses) the key */
};

/* An audit record: its line without the chain digits (msg), where its
 * "audit" member starts in msg, and what that member says. */
struct arec {
    uint32_t stream;
    uint64_t seq;
    uint64_t lineno;
    unsigned char chain[32];
    char key_id[LV_PSEUDONYM_ID_MAX + 1];
    char *msg;
    size_t len, audit_at;
    uint64_t restart_from; /* > 0: declares restart_from..seq-1 in flight at an unclean
                              stop, and links to restart_from - 1 */
    int state; /* enum below, set by the check */
};

enum { UNCHECKED, VERIFIED, UNVERIFIABLE, ALTERED, MOVED, DUPLICATE };

struct lv_verify {
    struct vkey keys[MAX_KEYS];
    size_t nkeys;
    char *streams[MAX_STREAMS];
    size_t nstreams;
    struct arec *recs;
    size_t n, cap;
    uint64_t malformed;
    struct {
        uint64_t lineno;
        const char *why; /* a static string */
    } notes[MAX_LISTED]; /* the first malformed lines, for the report */
};

struct lv_verify *lv_verify_new(void)
{
    return lv_xcalloc(1, sizeof(struct lv_verify));
}

void lv_verify_free(struct lv_verify *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->nkeys; i++)
        EVP_MAC_CTX_free(v->keys[i].mac);
    for (size_t i = 0; i < v->nstreams; i++)
        free(v->streams[i]);
    for (size_t i = 0; i < v->n; i++)
        free(v->recs[i].msg);
    free(v->recs);
    free(v);
}

void lv_verify_add_key(struct lv_verify *v, const char *id, const char *key, size_t len)
{
    if (v->nkeys == MAX_KEYS)
        return;
    struct vkey *k = &v->keys[v->nkeys++];
    if (id)
        snprintf(k->id, sizeof k->id, "%s", id);
    else
        lv_pseudonym_derive_id(key, len, k->id);
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    k->mac = mac ? EVP_MAC_CTX_new(mac) : NULL;
    EVP_MAC_free(mac);
    if (!k->mac || !EVP_MAC_init(k->mac, (const unsigned char *)key, len, params)) {
        EVP_MAC_CTX_free(k->mac);
        v->nkeys--; /* no HMAC: every record will fail to verify, never pass */
    }
}

/* ---- reading ------------------------------------------------------------------------ */

/* What one parse of a line found. Offsets are in the text parsed. */
struct scan {
    yajl_handle h;
    int depth;
    int in;          /* the top-level member being read: */
#define IN_NONE 0
#define IN_AUDIT 1
#define IN_SOURCE 2
#define IN_LINE 3
#define IN_OTHER 4
    int audit_key;   /* inside "audit": which member */
    size_t naudit;   /* "audit" members at the top level */
    size_t audit_at; /* where its key starts */
    size_t audit_end, top_end;
    size_t source_start, source_end;
    char *line;      /* decoded "line" member */
    size_t line_len;
    bool has_seq, has_chain, has_stream, has_key, has_restart, bad;
    long long seq;
    long long restart[2];
    int nrestart; /* integers in "restart"; -1: it is not an array */
    size_t chain_at; /* offset of the chain's first hex digit */
    char stream[256];
    char key_id[LV_PSEUDONYM_ID_MAX + 1];
    const char *why;
};

static size_t at(struct scan *s)
{
    return yajl_get_bytes_consumed(s->h);
}

static void fail(struct scan *s, const char *why)
{
    if (!s->bad)
        s->why = why;
    s->bad = true;
}

static int on_key(void *ctx, const unsigned char *k, size_t len)
{
    struct scan *s = ctx;
    if (s->depth == 1) {
        s->in = IN_OTHER;
        if (len == 5 && !memcmp(k, "audit", 5)) {
            /* An application may have its own "audit" member: the one
             * logveil adds is the last. */
            s->in = IN_AUDIT;
            s->naudit++;
            s->audit_at = at(s) - 7;
            s->audit_end = 0;
            s->has_seq = s->has_chain = s->has_stream = s->has_key = s->bad = false;
            s->nrestart = 0;
            s->has_restart = false;
            s->why = NULL;
        } else if (len == 7 && !memcmp(k, "_source", 7)) {
            s->in = IN_SOURCE;
        } else if (len == 4 && !memcmp(k, "line", 4)) {
            s->in = IN_LINE;
        }
    } else if (s->depth == 2 && s->in == IN_AUDIT) {
        static const char *const names[] = {"stream", "key", "seq", "chain", "restart"};
        s->audit_key = -1;
        for (int i = 0; i < 5; i++)
            if (strlen(names[i]) == len && !memcmp(k, names[i], len))
                s->audit_key = i;
    }
    return 1;
}

static int on_start_map(void *ctx)
{
    struct scan *s = ctx;
    s->depth++;
    if (s->depth == 2 && s->in == IN_SOURCE)
        s->source_start = at(s) - 1;
    if (s->depth == 2 && s->in == IN_AUDIT)
        s->audit_key = -1;
    else if (s->depth == 3 && s->in == IN_AUDIT && s->audit_key == 4)
        fail(s, "audit.restart is not two seqs");
    return 1;
}

static int on_end_map(void *ctx)
{
    struct scan *s = ctx;
    if (s->depth == 2 && s->in == IN_SOURCE)
        s->source_end = at(s);
    if (s->depth == 2 && s->in == IN_AUDIT)
        s->audit_end = at(s);
    if (s->depth == 1)
        s->top_end = at(s);
    s->depth--;
    return 1;
}

static int on_start_array(void *ctx)
{
    struct scan *s = ctx;
    s->depth++;
    if (s->depth == 3 && s->in == IN_AUDIT && s->audit_key == 4)
        s->has_restart = true;
    else if (s->depth > 3 && s->in == IN_AUDIT && s->audit_key == 4)
        fail(s, "audit.restart is not two seqs");
    return 1;
}

static int on_end_array(void *ctx)
{
    struct scan *s = ctx;
    s->depth--;
    return 1;
}

static void audit_string(struct scan *s, const unsigned char *v, size_t len)
{
    switch (s->audit_key) {
    case 0:
        if (len >= sizeof s->stream || memchr(v, '\0', len))
            fail(s, "audit.stream is too long");
        else
            memcpy(s->stream, v, len);
        s->has_stream = true;
        break;
    case 1:
        if (len >= sizeof s->key_id)
            fail(s, "audit.key is too long");
        else
            memcpy(s->key_id, v, len);
        s->has_key = true;
        break;
    case 3:
        s->has_chain = true;
        s->chain_at = at(s) - 1 - CHAIN_HEX;
        if (len != CHAIN_HEX || strspn((const char *)v, "0123456789abcdef") < CHAIN_HEX)
            fail(s, "audit.chain is not 64 lower-case hex digits");
        break;
    case 2: fail(s, "audit.seq is not a number"); break;
    case 4: fail(s, "audit.restart is not two seqs"); break;
    default: break;
    }
}

static int on_string(void *ctx, const unsigned char *v, size_t len)
{
    struct scan *s = ctx;
    if ((s->depth == 2 || (s->depth == 3 && s->audit_key == 4)) && s->in == IN_AUDIT)
        audit_string(s, v, len);
    else if (s->depth == 1 && s->in == IN_LINE && !s->line) {
        s->line = lv_xstrndup((const char *)v, len);
        s->line_len = len;
    }
    return 1;
}

static int on_integer(void *ctx, long long n)
{
    struct scan *s = ctx;
    if (s->depth == 3 && s->in == IN_AUDIT && s->audit_key == 4) {
        if (s->nrestart == 2 || n < 1)
            fail(s, "audit.restart is not two seqs");
        else
            s->restart[s->nrestart++] = n;
        return 1;
    }
    if (s->depth == 2 && s->in == IN_AUDIT && s->audit_key == 4) {
        fail(s, "audit.restart is not two seqs");
        return 1;
    }
    if (s->depth == 2 && s->in == IN_AUDIT && s->audit_key == 2) {
        s->has_seq = true;
        s->seq = n;
        if (n < 1)
            fail(s, "audit.seq is not a positive integer");
    } else if (s->depth == 2 && s->in == IN_AUDIT && s->audit_key >= 0) {
        fail(s, "an audit member has the wrong type");
    }
    return 1;
}

static int on_other(void *ctx)
{
    struct scan *s = ctx;
    if (s->depth >= 2 && s->in == IN_AUDIT && s->audit_key >= 0)
        fail(s, "an audit member has the wrong type");
    return 1;
}

static int on_double(void *ctx, double d)
{
    (void)d;
    return on_other(ctx);
}

static int on_bool(void *ctx, int b)
{
    (void)b;
    return on_other(ctx);
}

static const yajl_callbacks callbacks = {
    .yajl_null = on_other,
    .yajl_boolean = on_bool,
    .yajl_integer = on_integer,
    .yajl_double = on_double,
    .yajl_string = on_string,
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_key,
    .yajl_end_map = on_end_map,
    .yajl_start_array = on_start_array,
    .yajl_end_array = on_end_array,
};

/* 0: parsed (s filled); -EINVAL: not JSON. */
static int scan_text(struct scan *s, const char *text, size_t len)
{
    memset(s, 0, sizeof *s);
    s->h = yajl_alloc(&callbacks, NULL, s);
    if (!s->h)
        return -ENOMEM;
    yajl_status st = yajl_parse(s->h, (const unsigned char *)text, len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(s->h);
    yajl_free(s->h);
    s->h = NULL;
    return st == yajl_status_ok ? 0 : -EINVAL;
}

static uint32_t stream_index(struct lv_verify *v, const char *name)
{
    for (size_t i = 0; i < v->nstreams; i++)
        if (!strcmp(v->streams[i], name))
            return (uint32_t)i;
    if (v->nstreams == MAX_STREAMS)
        return UINT32_MAX;
    v->streams[v->nstreams] = lv_xstrdup(name);
    return (uint32_t)v->nstreams++;
}

static int malformed(struct lv_verify *v, uint64_t lineno, const char *why)
{
    if (v->malformed < MAX_LISTED) {
        v->notes[v->malformed].lineno = lineno;
        v->notes[v->malformed].why = why;
    }
    v->malformed++;
    return -EINVAL;
}

/* The canonical form: the audit member is the record's last, its chain its
 * last member, so the line ends with: <64 hex>"}} (blanks after allowed). */
static int take(struct lv_verify *v, const struct scan *s, const char *text, size_t len,
                uint64_t lineno)
{
    /* Not logveil's: the last member is not an "audit" object with a chain. */
    if (!s->has_chain || s->audit_end + 1 != s->top_end)
        return 0;
    if (s->bad)
        return malformed(v, lineno, s->why);
    if (!s->has_seq || !s->has_chain || !s->has_stream || !s->has_key)
        return malformed(v, lineno, "audit lacks one of stream, key, seq, chain");
    if (memcmp(text + s->audit_at, "\"audit\"", 7) != 0 || s->chain_at == 0 ||
        text[s->chain_at - 1] != '"' || s->chain_at + CHAIN_HEX + 3 != s->top_end ||
        s->audit_end + 1 != s->top_end || memcmp(text + s->chain_at + CHAIN_HEX, "\"}}", 3) != 0)
        return malformed(v, lineno, "the audit member is not the record's last, with chain last");
    if (s->has_restart && (s->nrestart != 2 || s->restart[0] > s->restart[1] ||
                           s->restart[1] != s->seq - 1))
        return malformed(v, lineno, "audit.restart is not [from, seq - 1]");
    uint32_t stream = stream_index(v, s->stream);
    if (stream == UINT32_MAX)
        return malformed(v, lineno, "too many streams");
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 256;
        v->recs = lv_xrealloc(v->recs, v->cap * sizeof *v->recs);
    }
    struct arec *r = &v->recs[v->n++];
    memset(r, 0, sizeof *r);
    r->stream = stream;
    r->seq = (uint64_t)s->seq;
    r->restart_from = s->has_restart ? (uint64_t)s->restart[0] : 0;
    r->lineno = lineno;
    snprintf(r->key_id, sizeof r->key_id, "%s", s->key_id);
    for (int i = 0; i < 32; i++) {
        unsigned hi = (unsigned)text[s->chain_at + 2 * i], lo = (unsigned)text[s->chain_at + 2 * i + 1];
        hi = hi <= '9' ? hi - '0' : hi - 'a' + 10;
        lo = lo <= '9' ? lo - '0' : lo - 'a' + 10;
        r->chain[i] = (unsigned char)(hi << 4 | lo);
    }
    r->len = s->top_end - CHAIN_HEX;
    r->msg = lv_xmalloc(r->len);
    memcpy(r->msg, text, s->chain_at);
    memcpy(r->msg + s->chain_at, text + s->chain_at + CHAIN_HEX, s->top_end - s->chain_at - CHAIN_HEX);
    r->audit_at = s->audit_at;
    (void)len;
    return 1;
}

static int read_record(struct lv_verify *v, const char *text, size_t len, uint64_t lineno, int level)
{
    struct scan s;
    if (scan_text(&s, text, len) < 0) {
        /* Not JSON: another record, unless it looks like one of ours. */
        free(s.line);
        if (memmem(text, len, "\"chain\":\"", 9))
            return malformed(v, lineno, "not valid JSON");
        return 0;
    }
    int rc = 0;
    if (s.naudit)
        rc = take(v, &s, text, len, lineno);
    else if (level == 0 && s.source_end > s.source_start)
        rc = read_record(v, text + s.source_start, s.source_end - s.source_start, lineno, 1);
    else if (level == 0 && s.line)
        rc = read_record(v, s.line, s.line_len, lineno, 1);
    free(s.line);
    return rc;
}

int lv_verify_line(struct lv_verify *v, const char *line, size_t len, uint64_t lineno)
{
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    /* Cheap test first: most lines of a mixed export are not audit records. */
    if (len < 8 || !memmem(line, len, "audit", 5))
        return 0;
    return read_record(v, line, len, lineno, 0);
}

/* ---- checking ----------------------------------------------------------------------- */

static const struct vkey *key_for(const struct lv_verify *v, const char *id)
{
    for (size_t i = 0; i < v->nkeys; i++)
        if (!strcmp(v->keys[i].id, id))
            return &v->keys[i];
    return v->nkeys == 1 ? &v->keys[0] : NULL;
}

/* Does `msg` (body + audit part) verify after prev, under its key? */
static bool mac_ok(const struct lv_verify *v, const char *key_id, const unsigned char prev[32],
                   const char *body, size_t body_len, const char *audit, size_t audit_len,
                   const unsigned char chain[32])
{
    const struct vkey *k = key_for(v, key_id);
    unsigned char md[32];
    size_t mdlen = 0;
    if (!k)
        return false;
    return EVP_MAC_init(k->mac, NULL, 0, NULL) && EVP_MAC_update(k->mac, prev, 32) &&
           EVP_MAC_update(k->mac, (const unsigned char *)body, body_len) &&
           EVP_MAC_update(k->mac, (const unsigned char *)audit, audit_len) &&
           EVP_MAC_final(k->mac, md, &mdlen, sizeof md) && mdlen == 32 &&
           CRYPTO_memcmp(md, chain, 32) == 0;
}

static bool verifies(const struct lv_verify *v, const struct arec *r, const unsigned char prev[32])
{
    return mac_ok(v, r->key_id, prev, r->msg, r->audit_at, r->msg + r->audit_at,
                  r->len - r->audit_at, r->chain);
}

static int by_stream_seq(const void *a, const void *b)
{
    const struct arec *x = a, *y = b;
    if (x->stream != y->stream)
        return x->stream < y->stream ? -1 : 1;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    return x->lineno < y->lineno ? -1 : x->lineno > y->lineno;
}

struct tally {
    uint64_t first, last, records, verified, unverifiable, gaps, missing, altered, moved,
        duplicates, forked, replayed, declared;
    uint64_t listed[8];
    FILE *out;
    const char *stream;
};

static bool list(struct tally *t, int kind)
{
    return t->listed[kind]++ < MAX_LISTED;
}

/* The versions of one seq are recs[i..j): exact copies are duplicates. */
static void mark_duplicates(struct arec *recs, size_t i, size_t j, struct tally *t)
{
    for (size_t a = i + 1; a < j; a++)
        for (size_t b = i; b < a; b++)
            if (recs[b].state != DUPLICATE && recs[a].len == recs[b].len &&
                !memcmp(recs[a].chain, recs[b].chain, 32) &&
                !memcmp(recs[a].msg, recs[b].msg, recs[a].len)) {
                recs[a].state = DUPLICATE;
                t->duplicates++;
                if (list(t, 0))
                    fprintf(t->out, "  duplicate seq %" PRIu64 " line %" PRIu64
                                    " (same link as line %" PRIu64 ")\n",
                            recs[a].seq, recs[a].lineno, recs[b].lineno);
                break;
            }
}

/* The versions of `seq` in recs[0..n) (sorted by seq): [*i, *j), empty when
 * it is missing. */
static void group_of(const struct arec *recs, size_t n, uint64_t seq, size_t *i, size_t *j)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (recs[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    *i = *j = lo;
    while (*j < n && recs[*j].seq == seq)
        (*j)++;
}

/* The seq a record links to: the one before it, or, when it declares a
 * restart, the one before the range it declares. */
static uint64_t linked_seq(const struct arec *r)
{
    return (r->restart_from ? r->restart_from : r->seq) - 1;
}

static bool verifies_after(const struct lv_verify *v, const struct arec *recs, size_t n,
                           const struct arec *r, bool *prev_missing)
{
    static const unsigned char zero[32];
    uint64_t prev = linked_seq(r);
    size_t pi, pj;
    if (prev == 0)
        return *prev_missing = false, verifies(v, r, zero);
    group_of(recs, n, prev, &pi, &pj);
    *prev_missing = pi == pj;
    for (size_t p = pi; p < pj; p++)
        if (recs[p].state != DUPLICATE && verifies(v, r, recs[p].chain))
            return true;
    return false;
}

/* Checks the versions recs[i..j) of one seq against those of the seq they
 * link to. `anchor`: the first seq looked at (--from-seq), whose
 * predecessor is not expected. */
static void check_seq(const struct lv_verify *v, struct arec *recs, size_t n, size_t i, size_t j,
                      bool anchor, struct tally *t)
{
    size_t valid = 0;
    for (size_t a = i; a < j; a++) {
        struct arec *r = &recs[a];
        bool missing = false;
        if (r->state == DUPLICATE)
            continue;
        if (verifies_after(v, recs, n, r, &missing)) {
            r->state = VERIFIED;
            t->verified++;
            valid++;
        } else if (missing) {
            /* Nothing to check it against: the record it links to is not
             * in the export. */
            r->state = UNVERIFIABLE;
            if (anchor)
                continue;
            t->unverifiable++;
            if (list(t, 1))
                fprintf(t->out, "  unverifiable seq %" PRIu64 " line %" PRIu64
                                " (the record it links to, seq %" PRIu64 ", is missing)\n",
                        r->seq, r->lineno, linked_seq(r));
        } else {
            r->state = ALTERED;
        }
    }
    if (valid > 1) {
        t->forked++;
        if (list(t, 2))
            fprintf(t->out, "  forked seq %" PRIu64 ": %zu different records both chained\n",
                    recs[i].seq, valid);
    }
}

/* recs[x]'s content verifies at recs[y]'s place (its audit member and
 * predecessor): the contents of seqs were moved. */
static bool belongs_at(const struct lv_verify *v, const struct arec *recs, size_t nrecs,
                       const struct arec *x, const struct arec *y)
{
    for (size_t p = 0; p < nrecs; p++) {
        const struct arec *prev = &recs[p];
        if (prev->seq != linked_seq(y) || prev->state == DUPLICATE)
            continue;
        if (mac_ok(v, y->key_id, prev->chain, x->msg, x->audit_at, y->msg + y->audit_at,
                   y->len - y->audit_at, y->chain))
            return true;
    }
    return false;
}

static void find_moves(const struct lv_verify *v, struct arec *recs, size_t n, struct tally *t)
{
    size_t cand[MAX_SWAP_CANDIDATES], nc = 0;
    for (size_t i = 0; i < n && nc < MAX_SWAP_CANDIDATES; i++)
        if (recs[i].state == ALTERED)
            cand[nc++] = i;
    for (size_t a = 0; a < nc; a++)
        for (size_t b = 0; b < nc; b++) {
            struct arec *x = &recs[cand[a]], *y = &recs[cand[b]];
            if (a == b || x->state == MOVED || x->seq == y->seq)
                continue;
            if (belongs_at(v, recs, n, x, y)) {
                x->state = MOVED;
                t->moved++;
                if (list(t, 3))
                    fprintf(t->out, "  reordered seq %" PRIu64 " line %" PRIu64
                                    ": holds the content of seq %" PRIu64 "\n",
                            x->seq, x->lineno, y->seq);
            }
        }
}

static uint64_t body_hash(const struct arec *r)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < r->audit_at; i++)
        h = (h ^ (unsigned char)r->msg[i]) * 1099511628211ull;
    return h;
}

struct hashed {
    uint64_t hash;
    size_t i;
};

static int by_hash(const void *a, const void *b)
{
    const struct hashed *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* Verified records whose content (all but the audit member) is that of an
 * earlier seq: read again after a crash and chained anew. Not tampering:
 * both links verify; reported so that the auditor can count them once. */
static void find_replays(struct arec *recs, size_t n, struct tally *t)
{
    struct hashed *h = lv_xmalloc((n ? n : 1) * sizeof *h);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (recs[i].state == VERIFIED)
            h[m++] = (struct hashed){body_hash(&recs[i]), i};
    qsort(h, m, sizeof *h, by_hash);
    for (size_t a = 1; a < m; a++) {
        const struct arec *x = &recs[h[a - 1].i], *y = &recs[h[a].i];
        if (h[a].hash != h[a - 1].hash || x->audit_at != y->audit_at || x->seq == y->seq ||
            memcmp(x->msg, y->msg, x->audit_at) != 0)
            continue;
        t->replayed++;
        if (list(t, 6))
            fprintf(t->out, "  replayed seq %" PRIu64 " line %" PRIu64
                            ": same content as seq %" PRIu64 " (read again after a restart)\n",
                    y->seq, y->lineno, x->seq);
    }
    free(h);
}

static void report_gap(struct tally *t, uint64_t from, uint64_t to)
{
    t->gaps++;
    t->missing += to - from + 1;
    if (list(t, 4))
        fprintf(t->out, "  gap seq %" PRIu64 "..%" PRIu64 " (%" PRIu64 " missing)\n", from, to,
                to - from + 1);
}

struct window {
    uint64_t from, to, by;
};

static int by_from(const void *a, const void *b)
{
    const struct window *x = a, *y = b;
    return x->from < y->from ? -1 : x->from > y->from;
}

/* Missing seqs from..to: declared by a verified restart record (in flight
 * at an unclean stop), or a gap. */
static void report_missing(struct tally *t, const struct window *w, size_t nw, uint64_t from,
                           uint64_t to)
{
    uint64_t cur = from;
    for (size_t k = 0; k < nw && cur <= to; k++) {
        if (w[k].to < cur)
            continue;
        if (w[k].from > to)
            break;
        if (w[k].from > cur)
            report_gap(t, cur, w[k].from - 1);
        uint64_t lo = w[k].from > cur ? w[k].from : cur, hi = w[k].to < to ? w[k].to : to;
        t->declared += hi - lo + 1;
        if (list(t, 7))
            fprintf(t->out, "  in flight at an unclean stop, declared by seq %" PRIu64
                            ": seq %" PRIu64 "..%" PRIu64 " missing\n",
                    w[k].by, lo, hi);
        cur = hi + 1;
    }
    if (cur <= to)
        report_gap(t, cur, to);
}

static void check_stream(const struct lv_verify *v, struct arec *recs, size_t n, uint64_t from,
                         uint64_t expect_last, struct tally *t)
{
    t->first = n ? recs[0].seq : 0;
    t->last = n ? recs[n - 1].seq : 0;
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i; j < n && recs[j].seq == recs[i].seq;)
            j++;
        mark_duplicates(recs, i, j, t);
        check_seq(v, recs, n, i, j, i == 0 && recs[i].seq == from, t);
        t->records += j - i;
    }
    struct window *w = lv_xmalloc((n ? n : 1) * sizeof *w);
    size_t nw = 0;
    for (size_t i = 0; i < n; i++)
        if (recs[i].state == VERIFIED && recs[i].restart_from)
            w[nw++] = (struct window){recs[i].restart_from, recs[i].seq - 1, recs[i].seq};
    if (nw)
        qsort(w, nw, sizeof *w, by_from);
    uint64_t expect = from;
    for (size_t i = 0; i < n; i++) {
        if (recs[i].seq > expect)
            report_missing(t, w, nw, expect, recs[i].seq - 1);
        if (recs[i].seq >= expect)
            expect = recs[i].seq + 1;
    }
    if (expect_last && expect <= expect_last)
        report_missing(t, w, nw, expect, expect_last);
    free(w);
    find_moves(v, recs, n, t);
    find_replays(recs, n, t);
    for (size_t i = 0; i < n; i++)
        if (recs[i].state == ALTERED) {
            t->altered++;
            if (list(t, 5))
                fprintf(t->out, "  altered seq %" PRIu64 " line %" PRIu64
                                " (its chain does not match its content)\n",
                        recs[i].seq, recs[i].lineno);
        }
}

bool lv_verify_report(struct lv_verify *v, uint64_t from, uint64_t expect_last, FILE *out)
{
    bool whole = v->malformed == 0;
    size_t kept = 0;
    for (uint64_t i = 0; i < v->malformed && i < MAX_LISTED; i++)
        fprintf(out, "malformed line %" PRIu64 ": %s\n", v->notes[i].lineno, v->notes[i].why);
    if (from < 1)
        from = 1;
    for (size_t i = 0; i < v->n; i++) {
        if (v->recs[i].seq >= from)
            v->recs[kept++] = v->recs[i];
        else
            free(v->recs[i].msg);
    }
    v->n = kept;
    if (v->n) /* recs is NULL when nothing was read */
        qsort(v->recs, v->n, sizeof *v->recs, by_stream_seq);
    if (v->n == 0) {
        fprintf(out, "no audit records%s\n", from > 1 ? " from that seq" : "");
        whole = false;
    }
    for (size_t i = 0; i < v->n;) {
        size_t j = i;
        while (j < v->n && v->recs[j].stream == v->recs[i].stream)
            j++;
        struct tally t = {.out = out, .stream = v->streams[v->recs[i].stream]};
        fprintf(out, "stream \"%s\"\n", t.stream);
        check_stream(v, v->recs + i, j - i, from, expect_last, &t);
        bool ok = !t.gaps && !t.altered && !t.moved && !t.forked && !t.unverifiable;
        fprintf(out,
                "stream \"%s\": seq %" PRIu64 "..%" PRIu64 ", records %" PRIu64
                ", links verified %" PRIu64 ", gaps %" PRIu64 " (%" PRIu64
                " missing), altered %" PRIu64 ", reordered %" PRIu64 ", duplicates %" PRIu64
                ", forked %" PRIu64 ", unverifiable %" PRIu64 ", replayed %" PRIu64
                ", declared in flight %" PRIu64 ": %s\n",
                t.stream, t.first, t.last, t.records, t.verified, t.gaps, t.missing, t.altered,
                t.moved, t.duplicates, t.forked, t.unverifiable, t.replayed, t.declared,
                ok ? "whole" : "BROKEN");
        whole &= ok;
        i = j;
    }
    if (v->malformed)
        fprintf(out, "malformed audit records: %" PRIu64 "\n", v->malformed);
    fprintf(out, "%s\n", whole ? "verified: every chain is whole" : "NOT VERIFIED");
    return whole;
}
