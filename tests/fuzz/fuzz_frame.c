/*
 * libFuzzer target over framing (CRI, Docker, JSON lines) followed by
 * multiline joining, as an input runs them: lv_frame splits and decodes,
 * one lv_multiline joiner per stream folds stack traces.
 *
 * The first bytes choose the format, max_line (small, so that truncation
 * and the partial-line caps are reached), max_lines, and where the input is
 * cut into chunks; the rest is the input.
 *
 * Oracles: no crash, leak or unbounded allocation; the records do not
 * depend on how the bytes were cut into chunks (fed whole, or in the
 * fuzz-chosen pieces: same records, same order, same streams and flags);
 * no record is longer than max_line; a joined record of the JSON or CRI
 * formats has at most max_lines lines; and for JSON lines with no record
 * cut short, the records, one after the other, are the input's lines (a
 * joined record holds its lines separated by '\n', so the bytes are the
 * same).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "logveil/util.h"
#include "multiline.h"

#define MAX_OUT (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct out {
    struct lv_buf text; /* the records, each followed by a 0 byte */
    struct lv_buf meta; /* per record: stream, truncated */
    size_t n;
    size_t max_line;
    struct lv_multiline *ml[2];
    int max_lines;
    bool lines_checked;
};

static int keep(void *arg, const struct lv_line *line)
{
    struct out *o = arg;
    if (line->len > o->max_line) {
        fprintf(stderr, "a record of %zu bytes, max_line %zu\n", line->len, o->max_line);
        abort();
    }
    if (o->lines_checked) {
        size_t lines = 1;
        for (size_t i = 0; i < line->len; i++)
            lines += line->data[i] == '\n';
        if (lines > (size_t)o->max_lines) {
            fprintf(stderr, "a record of %zu lines, max_lines %d\n", lines, o->max_lines);
            abort();
        }
    }
    char meta[2] = {(char)line->stream, (char)(line->truncated != 0)};
    if (lv_buf_append(&o->text, line->data, line->len) < 0 || lv_buf_putc(&o->text, 0) < 0 ||
        lv_buf_append(&o->meta, meta, 2) < 0)
        abort(); /* bounded by the input: cannot happen below MAX_OUT */
    o->n++;
    return 0;
}

static int to_joiner(void *arg, const struct lv_line *line)
{
    struct out *o = arg;
    int rc = lv_multiline_push(o->ml[line->stream == LV_STREAM_STDERR], line, keep, o);
    return rc < 0 ? rc : 0;
}

static void run(struct lv_multiline_rule *rule, enum lv_format fmt, const uint8_t *data,
                size_t size, const size_t *cuts, size_t ncuts, struct out *o)
{
    struct lv_frame *f = lv_frame_new(fmt, o->max_line, 0);
    o->ml[0] = lv_multiline_new(rule);
    o->ml[1] = lv_multiline_new(rule);
    size_t at = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : size;
        lv_frame_feed(f, (const char *)data + at, end - at, to_joiner, o);
        at = end;
    }
    lv_frame_finish(f, to_joiner, o);
    lv_multiline_flush(o->ml[0], keep, o);
    lv_multiline_flush(o->ml[1], keep, o);
    lv_multiline_free(o->ml[0]);
    lv_multiline_free(o->ml[1]);
    lv_frame_free(f);
}

static void check_json_lines(const struct out *o, const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < o->n; i++)
        if (o->meta.data[2 * i + 1])
            return; /* something was cut: the bytes differ by design */
    for (size_t i = 0; i < size; i++)
        if (data[i] == '\r' || data[i] == 0)
            return;
    /* The input's lines: a last line without '\n' is one too. */
    size_t len = size && data[size - 1] == '\n' ? size - 1 : size;
    struct lv_buf joined;
    lv_buf_init(&joined, size + 1, 0);
    const char *t = o->text.data;
    for (size_t i = 0; i < o->n; i++) {
        size_t n = strlen(t);
        if ((i && lv_buf_putc(&joined, '\n') < 0) || lv_buf_append(&joined, t, n) < 0)
            abort();
        t += n + 1;
    }
    if (o->n && (joined.len != len || memcmp(joined.data, data, len) != 0)) {
        fprintf(stderr, "JSON lines: the records are not the input's lines\n");
        abort();
    }
    lv_buf_free(&joined);
}

static void show(const char *what, const char *t, const char *meta)
{
    fprintf(stderr, "%s: stream %d truncated %d \"", what, meta[0], meta[1]);
    for (; *t; t++)
        fprintf(stderr, (unsigned char)*t < 0x20 || (unsigned char)*t > 0x7e ? "\\x%02x" : "%c",
                (unsigned char)*t);
    fprintf(stderr, "\"\n");
}

static void show_first_difference(const struct out *a, const struct out *b, const size_t *cuts,
                                  size_t ncuts)
{
    const char *x = a->text.data, *y = b->text.data;
    fprintf(stderr, "cuts:");
    for (size_t i = 0; i < ncuts; i++)
        fprintf(stderr, " %zu", cuts[i]);
    fprintf(stderr, "\n");
    for (size_t i = 0; i < a->n && i < b->n; i++) {
        if (strcmp(x, y) != 0 || memcmp(a->meta.data + 2 * i, b->meta.data + 2 * i, 2) != 0) {
            fprintf(stderr, "record %zu:\n", i);
            show("  whole", x, a->meta.data + 2 * i);
            show("  cut  ", y, b->meta.data + 2 * i);
            return;
        }
        x += strlen(x) + 1;
        y += strlen(y) + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct lv_multiline_rule *rules[2][5];
    static const enum lv_format formats[] = {LV_FORMAT_JSON, LV_FORMAT_CRI, LV_FORMAT_DOCKER,
                                             LV_FORMAT_CRI};
    if (size < 4)
        return 0;
    enum lv_format fmt = formats[data[0] & 3];
    size_t max_line = (data[0] & 4) ? 64 : 4096;
    int max_lines = 1 + (data[1] % 5);
    struct lv_multiline_rule **rule_at = &rules[max_line == 64][max_lines - 1];
    if (!*rule_at) {
        struct lv_multiline_conf mc = {
            .enabled = true, .pattern = NULL, .timeout = 1.0, .max_lines = max_lines};
        char err[256];
        *rule_at = lv_multiline_rule_new(&mc, max_line, err, sizeof err);
        if (!*rule_at)
            abort();
    }
    struct lv_multiline_rule *rule = *rule_at;
    uint16_t seed = (uint16_t)(data[2] | data[3] << 8);
    data += 4;
    size -= 4;
    size_t cuts[8], ncuts = 0;
    for (size_t i = 0; i < 8 && size; i++) {
        size_t c = (size_t)((seed * (i + 7u) * 2654435761u) >> 7) % (size + 1);
        if (!ncuts || c > cuts[ncuts - 1])
            cuts[ncuts++] = c;
    }
    struct out whole = {
        .max_line = max_line, .max_lines = max_lines, .lines_checked = fmt != LV_FORMAT_DOCKER};
    struct out cut = whole;
    lv_buf_init(&whole.text, 256, MAX_OUT);
    lv_buf_init(&whole.meta, 64, MAX_OUT);
    lv_buf_init(&cut.text, 256, MAX_OUT);
    lv_buf_init(&cut.meta, 64, MAX_OUT);
    run(rule, fmt, data, size, NULL, 0, &whole);
    run(rule, fmt, data, size, cuts, ncuts, &cut);
    if (getenv("LV_FUZZ_SHOW")) { /* for looking at one input by hand */
        const char *t = whole.text.data;
        for (size_t i = 0; i < whole.n; t += strlen(t) + 1, i++)
            show("whole", t, whole.meta.data + 2 * i);
        t = cut.text.data;
        for (size_t i = 0; i < cut.n; t += strlen(t) + 1, i++)
            show("cut  ", t, cut.meta.data + 2 * i);
    }
    if (whole.n != cut.n || whole.text.len != cut.text.len ||
        memcmp(whole.text.data, cut.text.data, whole.text.len) != 0 ||
        memcmp(whole.meta.data, cut.meta.data, whole.meta.len) != 0) {
        fprintf(stderr, "records differ with the chunking (%zu whole, %zu in %zu pieces)\n",
                whole.n, cut.n, ncuts + 1);
        show_first_difference(&whole, &cut, cuts, ncuts);
        abort();
    }
    if (fmt == LV_FORMAT_JSON && max_line == 4096)
        check_json_lines(&whole, data, size);
    lv_buf_free(&whole.text);
    lv_buf_free(&whole.meta);
    lv_buf_free(&cut.text);
    lv_buf_free(&cut.meta);
    return 0;
}
