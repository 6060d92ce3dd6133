/*
 * Framing. A chunk's complete lines are handed on where they lie; only the
 * incomplete tail of a chunk is copied (into `carry`), and only P/partial
 * fragments are copied into the per-stream join buffers.
 */
#include <stdlib.h>
#include <yajl/yajl_parse.h>

#include "arena.h"
#include "enrich.h"
#include "frame.h"
#include "json_text.h"

struct join {
    struct lv_buf buf;
    uint64_t start;   /* offset of the raw line holding the first fragment */
    int64_t time_ns;
    int truncated;
    int active;
    int discarding;   /* sent at max_line: its remaining fragments are dropped */
};

struct lv_frame {
    enum lv_format format;
    size_t max_line;
    uint32_t source;
    uint64_t offset;      /* bytes fed */
    uint64_t newlines;    /* among them */
    uint64_t raw_start;   /* offset where the current raw line starts */
    struct lv_buf carry;  /* the incomplete raw line */
    int discarding;       /* past the cap: skip to the next '\n', flag the line */
    struct join join[2];  /* per stream */
    struct lv_arena arena; /* docker decoding */
    /* docker decoding state */
    int dk_field;         /* 1 log, 2 stream, 3 time */
    int dk_depth;
    const char *dk_line; /* the raw line being decoded */
    size_t dk_line_len;
    const char *dk_log;
    size_t dk_log_len;
    struct lv_buf dk_copy; /* the log value when yajl had to unescape it */
    struct lv_buf dk_fixed; /* the line with lone surrogate escapes repaired */
    enum lv_stream dk_stream;
    int64_t dk_time;
};

/* Raw lines may be longer than the application's: CRI adds a prefix, Docker
 * escapes. */
static size_t raw_cap(const struct lv_frame *f)
{
    return f->format == LV_FORMAT_DOCKER ? f->max_line * 2 + 4096 : f->max_line + 4096;
}

struct lv_frame *lv_frame_new(enum lv_format format, size_t max_line, uint32_t source)
{
    struct lv_frame *f = lv_xcalloc(1, sizeof *f);
    f->format = format;
    f->max_line = max_line ? max_line : 1 << 20;
    f->source = source;
    lv_buf_init(&f->carry, 0, raw_cap(f));
    for (int i = 0; i < 2; i++)
        lv_buf_init(&f->join[i].buf, 0, f->max_line);
    if (format == LV_FORMAT_DOCKER) {
        lv_arena_init(&f->arena, LV_FRAME_ARENA_BYTES);
        lv_buf_init(&f->dk_copy, 0, raw_cap(f));
        lv_buf_init(&f->dk_fixed, 0, raw_cap(f));
    }
    return f;
}

void lv_frame_free(struct lv_frame *f)
{
    if (!f)
        return;
    lv_buf_free(&f->carry);
    lv_buf_free(&f->join[0].buf);
    lv_buf_free(&f->join[1].buf);
    lv_arena_free(&f->arena);
    lv_buf_free(&f->dk_copy);
    lv_buf_free(&f->dk_fixed);
    free(f);
}

uint64_t lv_frame_offset(const struct lv_frame *f)
{
    return f->offset;
}

uint64_t lv_frame_newlines(const struct lv_frame *f)
{
    return f->newlines;
}

/* A buffer grown by one long line gives its memory back once it is empty,
 * so that many sources do not each keep a line's worth. */
static void shrink(struct lv_buf *b)
{
    if (b->len || b->cap <= LV_FRAME_KEEP_BYTES)
        return;
    size_t limit = b->limit;
    lv_buf_free(b);
    lv_buf_init(b, 0, limit);
}

uint64_t lv_frame_partial_start(const struct lv_frame *f, enum lv_stream st)
{
    return f->join[st].active ? f->join[st].start : UINT64_MAX;
}

uint64_t lv_frame_pending_start(const struct lv_frame *f)
{
    uint64_t a = lv_frame_partial_start(f, LV_STREAM_STDOUT);
    uint64_t b = lv_frame_partial_start(f, LV_STREAM_STDERR);
    return a < b ? a : b;
}

size_t lv_frame_bytes(const struct lv_frame *f)
{
    return f->carry.cap + f->join[0].buf.cap + f->join[1].buf.cap + f->dk_copy.cap +
           f->dk_fixed.cap + f->arena.size;
}

size_t lv_frame_idle_bytes(enum lv_format format)
{
    switch (format) {
    case LV_FORMAT_CRI:
        return 3 * LV_FRAME_KEEP_BYTES; /* the raw line, a join per stream */
    case LV_FORMAT_DOCKER: /* ... and the decode copy, the repaired line, the arena */
        return 5 * LV_FRAME_KEEP_BYTES + LV_FRAME_ARENA_BYTES;
    default:
        return LV_FRAME_KEEP_BYTES;
    }
}

/* ---- joining fragments ---------------------------------------------------------- */

/* Adds a fragment to the stream's join buffer, truncating at max_line. */
static void join_add(struct lv_frame *f, struct join *j, const char *s, size_t len, int64_t t,
                     int truncated)
{
    if (!j->active) {
        j->active = 1;
        j->start = f->raw_start;
        j->time_ns = t;
        j->truncated = 0;
        j->buf.len = 0;
    }
    size_t room = f->max_line - j->buf.len;
    if (len > room) {
        len = room;
        j->truncated = 1;
    }
    j->truncated |= truncated;
    if (len) /* an empty buffer has no data pointer to copy to */
        lv_buf_append(&j->buf, s, len);
}

static int emit_line(struct lv_frame *f, const char *s, size_t len, int64_t t, enum lv_stream st,
                     int truncated, lv_frame_emit_fn *emit, void *arg)
{
    if (len > f->max_line) {
        len = f->max_line;
        truncated = 1;
    }
    /* A line joined from empty fragments lies in a buffer never allocated:
     * lines always point somewhere, so consumers need not test for NULL. */
    struct lv_line line = {s ? s : "", len, t, st, truncated, {f->source, f->offset}, 0};
    return emit(arg, &line);
}

/* Sends what a join holds and ends it; `discard`: drop what still belongs
 * to the line up to its end. */
static int join_emit(struct lv_frame *f, struct join *j, enum lv_stream st, int discard,
                     lv_frame_emit_fn *emit, void *arg)
{
    j->active = 0;
    j->discarding = discard;
    int rc = emit_line(f, j->buf.data, j->buf.len, j->time_ns, st, j->truncated, emit, arg);
    j->buf.len = 0;
    shrink(&j->buf);
    return rc;
}

/* A fragment arrives; `last` ends the line. A line that reaches max_line is
 * sent at once (truncated): nothing waits for an end that may never come. */
static int fragment(struct lv_frame *f, const char *s, size_t len, int64_t t, enum lv_stream st,
                    int last, int truncated, lv_frame_emit_fn *emit, void *arg)
{
    struct join *j = &f->join[st];
    if (j->discarding) {
        j->discarding = !last;
        return 0;
    }
    if (!j->active && last)
        return emit_line(f, s, len, t, st, truncated, emit, arg);
    join_add(f, j, s, len, t, truncated);
    if (last || j->truncated)
        return join_emit(f, j, st, !last, emit, arg);
    return 0;
}

int lv_frame_flush_partial(struct lv_frame *f, enum lv_stream st, lv_frame_emit_fn *emit,
                           void *arg)
{
    return f->join[st].active ? join_emit(f, &f->join[st], st, 0, emit, arg) : 0;
}

int lv_frame_flush_partials(struct lv_frame *f, lv_frame_emit_fn *emit, void *arg)
{
    int rc = lv_frame_flush_partial(f, LV_STREAM_STDOUT, emit, arg);
    return rc < 0 ? rc : lv_frame_flush_partial(f, LV_STREAM_STDERR, emit, arg);
}

/* ---- CRI ------------------------------------------------------------------------- */

static const char *field_end(const char *p, const char *end)
{
    const char *sp = memchr(p, ' ', (size_t)(end - p));
    return sp ? sp : end;
}

static int cri_line(struct lv_frame *f, const char *s, size_t len, int truncated,
                    lv_frame_emit_fn *emit, void *arg)
{
    const char *end = s + len, *t_end = field_end(s, end);
    int64_t t;
    if (t_end == end || lv_time_parse(s, (size_t)(t_end - s), &t, NULL) < 0)
        goto not_cri;
    const char *st = t_end + 1, *st_end = field_end(st, end);
    enum lv_stream stream;
    if (st_end - st == 6 && memcmp(st, "stdout", 6) == 0)
        stream = LV_STREAM_STDOUT;
    else if (st_end - st == 6 && memcmp(st, "stderr", 6) == 0)
        stream = LV_STREAM_STDERR;
    else
        goto not_cri;
    /* Tags are ':'-separated and only the first is read (forward
     * compatibility, as the kubelet does); it must be exactly P or F. */
    const char *tag = st_end + 1, *tag_end = st_end < end ? field_end(tag, end) : end;
    if (st_end == end || tag_end == tag || (tag[0] != 'P' && tag[0] != 'F') ||
        (tag + 1 < tag_end && tag[1] != ':'))
        goto not_cri;
    int last = tag[0] == 'F';
    const char *content = tag_end < end ? tag_end + 1 : end;
    /* containerd drops "\r\n", conmon only "\n": end both the same way. */
    if (last && end > content && end[-1] == '\r')
        end--;
    return fragment(f, content, (size_t)(end - content), t, stream, last, truncated, emit, arg);
not_cri:
    /* Not CRI framing: pass the line on as it is rather than lose it. */
    return emit_line(f, s, len, 0, LV_STREAM_STDOUT, truncated, emit, arg);
}

/* ---- Docker json-file ---------------------------------------------------------- */

static int dk_key(void *ctx, const unsigned char *k, size_t len)
{
    struct lv_frame *f = ctx;
    f->dk_field = 0;
    if (f->dk_depth != 1)
        return 1;
    if (len == 3 && memcmp(k, "log", 3) == 0)
        f->dk_field = 1;
    else if (len == 6 && memcmp(k, "stream", 6) == 0)
        f->dk_field = 2;
    else if (len == 4 && memcmp(k, "time", 4) == 0)
        f->dk_field = 3;
    return 1;
}

static int dk_string(void *ctx, const unsigned char *s, size_t len)
{
    struct lv_frame *f = ctx;
    if (f->dk_field == 1) {
        /* An unescaped value points into the line. An escaped one points
         * into yajl's decode buffer, which the next escaped key or value
         * overwrites, so it is copied (it is never longer than the line). */
        const char *p = (const char *)s;
        if (p < f->dk_line || p > f->dk_line + f->dk_line_len) {
            f->dk_copy.len = 0;
            if (lv_buf_append(&f->dk_copy, p, len) < 0)
                return 0;
            p = f->dk_copy.data;
        }
        f->dk_log = p;
        f->dk_log_len = len;
    } else if (f->dk_field == 2) {
        f->dk_stream = len == 6 && memcmp(s, "stderr", 6) == 0 ? LV_STREAM_STDERR : LV_STREAM_STDOUT;
    } else if (f->dk_field == 3) {
        lv_time_parse((const char *)s, len, &f->dk_time, NULL);
    }
    f->dk_field = 0;
    return 1;
}

static int dk_other(void *ctx)
{
    ((struct lv_frame *)ctx)->dk_field = 0;
    return 1;
}

static int dk_bool(void *ctx, int b)
{
    (void)b;
    return dk_other(ctx);
}

static int dk_number(void *ctx, const char *s, size_t len)
{
    (void)s;
    (void)len;
    return dk_other(ctx);
}

static int dk_open(void *ctx)
{
    struct lv_frame *f = ctx;
    f->dk_field = 0;
    f->dk_depth++;
    return 1;
}

static int dk_close(void *ctx)
{
    ((struct lv_frame *)ctx)->dk_depth--;
    return 1;
}

static const yajl_callbacks dk_callbacks = {
    .yajl_null = dk_other,
    .yajl_boolean = dk_bool,
    .yajl_number = dk_number,
    .yajl_string = dk_string,
    .yajl_start_map = dk_open,
    .yajl_map_key = dk_key,
    .yajl_end_map = dk_close,
    .yajl_start_array = dk_open,
    .yajl_end_array = dk_close,
};

/* The decoded log of one entry. The runtime ends an entry at each newline,
 * but a log value can still hold several ("a\nb\n" written by hand): each
 * '\n' ends a line, because a line never holds one (the records downstream
 * are newline-delimited, and a verbatim copy would carry it). The text
 * after the last '\n' is a partial, joined with the next entries. */
static int docker_log(struct lv_frame *f, const char *s, size_t n, int truncated,
                      lv_frame_emit_fn *emit, void *arg)
{
    const char *nl;
    while (n > 1 && (nl = memchr(s, '\n', n - 1))) {
        size_t len = (size_t)(nl - s);
        int rc = fragment(f, s, len && s[len - 1] == '\r' ? len - 1 : len, f->dk_time,
                          f->dk_stream, 1, truncated, emit, arg);
        if (rc < 0)
            return rc;
        n -= len + 1;
        s = nl + 1;
    }
    int last = n > 0 && s[n - 1] == '\n';
    if (last)
        n--;
    if (last && n > 0 && s[n - 1] == '\r')
        n--;
    return fragment(f, s, n, f->dk_time, f->dk_stream, last, truncated, emit, arg);
}

static int docker_line(struct lv_frame *f, const char *s, size_t len, int truncated,
                       lv_frame_emit_fn *emit, void *arg)
{
    yajl_alloc_funcs funcs;
    lv_arena_reset(&f->arena);
    lv_arena_yajl_funcs(&f->arena, &funcs);
    /* yajl would pair a lone high surrogate with the next escape and swallow
     * a letter of the application's line: read it as U+FFFD. */
    const char *raw = s, *fixed = lv_json_fix_surrogates(s, len, &f->dk_fixed);
    if (!fixed)
        return emit_line(f, s, len, 0, LV_STREAM_STDOUT, truncated, emit, arg);
    s = fixed;
    f->dk_line = s;
    f->dk_line_len = len;
    f->dk_log = NULL;
    f->dk_depth = 0;
    f->dk_stream = LV_STREAM_STDOUT;
    f->dk_time = 0;
    yajl_handle h = yajl_alloc(&dk_callbacks, &funcs, f);
    yajl_config(h, yajl_dont_validate_strings, 1);
    yajl_status st = yajl_parse(h, (const unsigned char *)s, len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    yajl_free(h);
    /* yajl's buffers for a long line were drawn outside the arena's block:
     * given back now, not at the next line, which may be long in coming. */
    lv_arena_reset(&f->arena);
    int rc;
    /* Not a Docker entry: the application's text as written (the repair
     * was for yajl; the chain makes its own). */
    if (st != yajl_status_ok || !f->dk_log)
        rc = emit_line(f, raw, len, 0, LV_STREAM_STDOUT, truncated, emit, arg);
    else
        rc = docker_log(f, f->dk_log, f->dk_log_len, truncated, emit, arg);
    f->dk_copy.len = 0;
    shrink(&f->dk_copy);
    f->dk_fixed.len = 0;
    shrink(&f->dk_fixed);
    return rc;
}

/* ---- splitting ---------------------------------------------------------------------- */

static int raw_line(struct lv_frame *f, const char *s, size_t len, int truncated,
                    lv_frame_emit_fn *emit, void *arg)
{
    switch (f->format) {
    case LV_FORMAT_CRI:
        return cri_line(f, s, len, truncated, emit, arg);
    case LV_FORMAT_DOCKER:
        return docker_line(f, s, len, truncated, emit, arg);
    default:
        if (len && s[len - 1] == '\r')
            len--;
        return emit_line(f, s, len, 0, LV_STREAM_STDOUT, truncated, emit, arg);
    }
}

/* Adds bytes of a line that has not ended yet to `carry`, up to the cap. */
static void carry_add(struct lv_frame *f, const char *s, size_t len)
{
    if (f->discarding)
        return;
    size_t room = raw_cap(f) - f->carry.len;
    if (len > room) {
        /* Only bytes actually dropped make the line truncated: a line that
         * fills the buffer exactly and then ends is whole. */
        len = room;
        f->discarding = 1;
    }
    lv_buf_append(&f->carry, s, len);
}

/* A line ends: the carried part plus `s`. */
static int end_line(struct lv_frame *f, const char *s, size_t len, lv_frame_emit_fn *emit, void *arg)
{
    if (!f->carry.len && !f->discarding)
        return raw_line(f, s, len, 0, emit, arg);
    carry_add(f, s, len);
    int truncated = f->discarding;
    int rc = raw_line(f, f->carry.data, f->carry.len, truncated, emit, arg);
    f->carry.len = 0;
    f->discarding = 0;
    shrink(&f->carry);
    return rc;
}

int lv_frame_feed(struct lv_frame *f, const char *data, size_t len, lv_frame_emit_fn *emit, void *arg)
{
    const char *p = data, *end = data + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) {
            carry_add(f, p, (size_t)(end - p));
            f->offset += (uint64_t)(end - p);
            return 0;
        }
        f->offset += (uint64_t)(nl + 1 - p);
        f->newlines++;
        int rc = end_line(f, p, (size_t)(nl - p), emit, arg);
        f->raw_start = f->offset;
        if (rc < 0)
            return rc;
        p = nl + 1;
    }
    return 0;
}

int lv_frame_finish(struct lv_frame *f, lv_frame_emit_fn *emit, void *arg)
{
    int rc = 0;
    if (f->carry.len || f->discarding)
        rc = end_line(f, "", 0, emit, arg);
    /* A P with no F: the stream ended mid-line. */
    if (rc >= 0)
        rc = lv_frame_flush_partials(f, emit, arg);
    f->join[0].discarding = f->join[1].discarding = 0;
    return rc;
}
