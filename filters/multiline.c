/*
 * Multiline joining. The pattern runs only when its answer matters: on a line
 * that could join a held record with room for more lines. A first line is
 * held whether or not it matches, so a trace whose head was cut off (read
 * from a checkpoint, or after a JSON line) still comes out as one record.
 *
 * A PEM private key printed over several lines is joined whether or not the
 * input joins anything else: from a line that opens it ("-----BEGIN ...
 * PRIVATE KEY" and no END after) through the lines that look like its body
 * (base64, perhaps after a logger's prefix; its headers; blank lines) to its
 * END line, so that the private-key rule sees all of it. A block longer
 * than max_lines, or held past the timeout, goes out in records flagged
 * `masked`, which the chain replaces whole: no body line leaves in clear.
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <stdio.h>
#include <stdlib.h>

#include <pcre2.h>

#include "logveil/metrics.h"
#include "multiline.h"

/* A held buffer larger than this is given back once its record is sent: a
 * rare long trace does not pin max_line bytes per stream of every file. */
#define KEEP_BUFFER LV_MULTILINE_KEEP_BYTES

struct lv_multiline_rule {
    pcre2_code *re;      /* NULL: only PEM blocks are joined */
    pcre2_match_data *md;
    int max_lines;
    size_t max_line;
};

enum pem { PEM_NONE, PEM_OPEN, PEM_MORE /* the block went on past a record */ };

struct lv_multiline {
    struct lv_multiline_rule *rule;
    struct lv_buf buf;   /* the held record's text, capped at max_line */
    struct lv_line held; /* its header; data is set when it is emitted */
    int nlines;          /* 0: nothing held */
    enum pem pem;        /* inside a PEM private key block */
};

struct lv_multiline_rule *lv_multiline_rule_new(const struct lv_multiline_conf *conf,
                                                size_t max_line, char *err, size_t errlen)
{
    if (!conf->enabled) { /* PEM blocks only */
        struct lv_multiline_rule *r = lv_xcalloc(1, sizeof *r);
        r->max_lines = conf->max_lines > 0 ? conf->max_lines : 500;
        r->max_line = max_line ? max_line : 1 << 20;
        return r;
    }
    const char *pattern = conf->pattern ? conf->pattern : LV_MULTILINE_CONTINUE;
    int code;
    PCRE2_SIZE off;
    /* No options, as conf.c compiles it to validate the file. */
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, 0, &code, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        snprintf(err, errlen, "multiline.continue: bad regular expression at offset %zu: %s",
                 (size_t)off, (const char *)msg);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* the interpreter is the fallback */
    struct lv_multiline_rule *r = lv_xcalloc(1, sizeof *r);
    r->re = re;
    r->md = pcre2_match_data_create(1, NULL);
    if (!r->md)
        abort(); /* out of memory */
    r->max_lines = conf->max_lines > 0 ? conf->max_lines : 500;
    r->max_line = max_line ? max_line : 1 << 20;
    return r;
}

void lv_multiline_rule_free(struct lv_multiline_rule *r)
{
    if (!r)
        return;
    pcre2_match_data_free(r->md);
    pcre2_code_free(r->re);
    free(r);
}

struct lv_multiline *lv_multiline_new(struct lv_multiline_rule *r)
{
    struct lv_multiline *m = lv_xcalloc(1, sizeof *m);
    m->rule = r;
    lv_buf_init(&m->buf, 0, r->max_line);
    return m;
}

void lv_multiline_free(struct lv_multiline *m)
{
    if (!m)
        return;
    lv_buf_free(&m->buf);
    free(m);
}

bool lv_multiline_holding(const struct lv_multiline *m)
{
    return m->nlines > 0;
}

size_t lv_multiline_bytes(const struct lv_multiline *m)
{
    return m->buf.cap;
}

/* ---- the held record ------------------------------------------------------------ */

/* Appends what fits under max_line; a cut flags the record. */
static void append(struct lv_multiline *m, const char *s, size_t len)
{
    size_t room = m->rule->max_line - m->buf.len;
    if (len > room) {
        len = room;
        m->held.truncated = 1;
    }
    if (len) /* within the limit, so the buffer can grow */
        lv_buf_append(&m->buf, s, len);
}

static void hold(struct lv_multiline *m, const struct lv_line *line)
{
    m->held = *line;
    m->held.data = NULL;
    m->buf.len = 0;
    m->nlines = 1;
    append(m, line->data, line->len);
}

static void join(struct lv_multiline *m, const struct lv_line *line)
{
    append(m, "\n", 1);
    append(m, line->data, line->len);
    m->held.truncated |= line->truncated;
    m->held.pos = line->pos;
    m->nlines++;
    lv_metrics.lines_joined++;
}

int lv_multiline_flush(struct lv_multiline *m, lv_multiline_emit_fn *emit, void *arg)
{
    if (!m->nlines)
        return 0;
    if (m->pem == PEM_OPEN)
        m->pem = PEM_MORE; /* sent before its END: what follows is masked */
    struct lv_line l = m->held;
    /* An empty held line has no buffer: lines always point somewhere. */
    l.data = m->buf.len ? m->buf.data : "";
    l.len = m->buf.len;
    m->nlines = 0;
    int rc = emit(arg, &l);
    m->buf.len = 0;
    if (m->buf.cap > KEEP_BUFFER)
        lv_buf_free(&m->buf);
    return rc;
}

/* ---- deciding ------------------------------------------------------------------------ */

/* Whatever follows JSON whitespace (which is all the parser skips) is '{'. */
static bool json_object(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
        i++;
    return i < len && s[i] == '{';
}

/* ---- PEM blocks ---------------------------------------------------------------------- */

/* Where "-----BEGIN" or "-----END" (`mark`) followed by capitals, digits and
 * blanks and "PRIVATE KEY" starts in s, or NULL. */
static const char *pem_marker(const char *s, size_t len, const char *mark)
{
    size_t ml = strlen(mark);
    for (const char *p = s, *end = s + len; (p = memmem(p, (size_t)(end - p), mark, ml)); p++) {
        const char *q = p + ml;
        while (q < end && ((*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') || *q == ' '))
            q++;
        if (q - 11 >= p + ml && memcmp(q - 11, "PRIVATE KEY", 11) == 0)
            return p;
    }
    return NULL;
}

/* A line that opens a private key block it does not close. */
static bool pem_opens(const struct lv_line *l)
{
    const char *begin = pem_marker(l->data, l->len, "-----BEGIN");
    return begin && !pem_marker(begin, l->len - (size_t)(begin - l->data), "-----END");
}

static bool pem_closes(const struct lv_line *l)
{
    return pem_marker(l->data, l->len, "-----END") != NULL;
}

static bool base64_byte(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/' || c == '=';
}

/* A line of a block's body: base64 (after a logger's prefix, a run of at
 * least 16), one of its headers (RFC 1421), or blank. */
static bool pem_body(const struct lv_line *l)
{
    size_t n = l->len;
    while (n && (l->data[n - 1] == '\r' || l->data[n - 1] == ' ' || l->data[n - 1] == '\t'))
        n--;
    size_t run = 0;
    while (run < n && base64_byte(l->data[n - 1 - run]))
        run++;
    if (run == n || run >= 16)
        return true;
    static const char *const headers[] = {"Proc-Type:", "DEK-Info:", "Comment:"};
    for (size_t i = 0; i < LV_ARRAY_LEN(headers); i++)
        if (memmem(l->data, n, headers[i], strlen(headers[i])))
            return true;
    return false;
}

/* Inside a block: a body line joins, an END line joins and sends it, any
 * other line ends it unclosed (the private-key rule then masks to the end
 * of the record). Returns 1 when the line was taken, 0 when it goes on as
 * any line. */
static int pem_push(struct lv_multiline *m, const struct lv_line *line,
                    lv_multiline_emit_fn *emit, void *arg)
{
    bool closes = pem_closes(line);
    if (!closes && !pem_body(line)) {
        int rc = lv_multiline_flush(m, emit, arg);
        m->pem = PEM_NONE;
        return rc < 0 ? rc : 0;
    }
    if (m->nlines >= m->rule->max_lines) {
        int rc = lv_multiline_flush(m, emit, arg);
        if (rc < 0)
            return rc;
    }
    if (m->nlines) {
        join(m, line);
    } else {
        hold(m, line);
        m->held.masked = m->pem == PEM_MORE;
    }
    if (!closes)
        return 1;
    m->held.masked |= m->pem == PEM_MORE;
    m->pem = PEM_NONE;
    int rc = lv_multiline_flush(m, emit, arg);
    return rc < 0 ? rc : 1;
}

/* A match that cannot run (a match limit) makes a record of its own: it
 * loses nothing, where a wrong join would glue unrelated records. */
static bool continues(struct lv_multiline_rule *r, const struct lv_line *line)
{
    return pcre2_match(r->re, (PCRE2_SPTR)line->data, line->len, 0, 0, r->md, NULL) >= 0;
}

bool lv_multiline_passes(const struct lv_multiline *m, const struct lv_line *line)
{
    return !m->nlines && m->pem == PEM_NONE && json_object(line->data, line->len);
}

int lv_multiline_push(struct lv_multiline *m, const struct lv_line *line,
                      lv_multiline_emit_fn *emit, void *arg)
{
    if (json_object(line->data, line->len)) {
        int rc = lv_multiline_flush(m, emit, arg);
        m->pem = PEM_NONE;
        if (rc >= 0)
            rc = emit(arg, line);
        return rc < 0 ? rc : 0;
    }
    if (m->pem != PEM_NONE) {
        int rc = pem_push(m, line, emit, arg);
        if (rc != 0)
            return rc < 0 ? rc : m->nlines == 1 ? 1 : 0;
    }
    if (pem_opens(line)) {
        int rc = lv_multiline_flush(m, emit, arg);
        if (rc < 0)
            return rc;
        hold(m, line);
        m->pem = PEM_OPEN;
        return 1;
    }
    if (!m->rule->re) { /* nothing else is joined */
        int rc = lv_multiline_flush(m, emit, arg);
        if (rc >= 0)
            rc = emit(arg, line);
        return rc < 0 ? rc : 0;
    }
    if (m->nlines && m->nlines < m->rule->max_lines && continues(m->rule, line)) {
        join(m, line);
        return 0;
    }
    int rc = lv_multiline_flush(m, emit, arg);
    if (rc < 0)
        return rc;
    hold(m, line);
    return 1;
}
