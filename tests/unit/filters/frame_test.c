/*
 * Tests for framing: lines come out whole however the bytes are chunked,
 * CRI and Docker json-file framing is decoded (partials joined per stream,
 * times converted to UTC nanoseconds), lines are capped at max_line and
 * flagged, and every line carries the byte offset just past it.
 *
 * Each test collects the emitted lines (copied, since the frame's own copy
 * is valid only during the callback) and compares them with what the input
 * should give.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "frame.h"

#define MAX_LINES 64
#define SEC 1000000000LL

/* 2024-05-01T08:00:00Z in seconds since the epoch. */
#define T_0800 1714550400LL

struct got_line {
    char *data;
    size_t len;
    int64_t time_ns;
    enum lv_stream stream;
    int truncated;
    uint64_t end;
    uint32_t source;
};

struct collector {
    struct got_line lines[MAX_LINES];
    size_t n;
    int fail_at; /* emit returns -EIO for this line (1-based); 0: never */
};

static int collect(void *arg, const struct lv_line *line)
{
    struct collector *c = arg;
    assert_true(c->n < MAX_LINES);
    struct got_line *g = &c->lines[c->n++];
    g->data = malloc(line->len + 1);
    assert_non_null(g->data);
    memcpy(g->data, line->data, line->len);
    g->data[line->len] = '\0';
    g->len = line->len;
    g->time_ns = line->time_ns;
    g->stream = line->stream;
    g->truncated = line->truncated;
    g->end = line->pos.end;
    g->source = line->pos.source;
    return c->fail_at && (int)c->n == c->fail_at ? -EIO : 0;
}

static void collector_clear(struct collector *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->lines[i].data);
    memset(c, 0, sizeof *c);
}

/* Feeds `text` in two chunks split at `split`, then finishes. */
static void feed_split(enum lv_format fmt, size_t max_line, const char *text, size_t len,
                       size_t split, struct collector *c)
{
    struct lv_frame *f = lv_frame_new(fmt, max_line, 7);
    assert_int_equal(lv_frame_feed(f, text, split, collect, c), 0);
    assert_int_equal(lv_frame_feed(f, text + split, len - split, collect, c), 0);
    assert_int_equal(lv_frame_offset(f), len);
    assert_int_equal(lv_frame_finish(f, collect, c), 0);
    lv_frame_free(f);
}

static void feed_all(enum lv_format fmt, size_t max_line, const char *text, struct collector *c)
{
    feed_split(fmt, max_line, text, strlen(text), 0, c);
}

static void assert_line(const struct collector *c, size_t i, const char *data, uint64_t end)
{
    assert_true(i < c->n);
    assert_string_equal(c->lines[i].data, data);
    assert_int_equal(c->lines[i].len, strlen(data));
    assert_int_equal(c->lines[i].end, end);
    assert_int_equal(c->lines[i].source, 7);
}

/* ---- json: plain lines --------------------------------------------------------- */

static void json_lines_split_across_chunks_at_every_byte_come_out_whole(void **state)
{
    static const char text[] = "{\"a\":1}\n{\"msg\":\"two words\"}\n\n{\"last\":true}";
    (void)state;
    for (size_t split = 0; split <= sizeof text - 1; split++) {
        struct collector c = {0};
        feed_split(LV_FORMAT_JSON, 0, text, sizeof text - 1, split, &c);
        assert_int_equal(c.n, 4);
        assert_line(&c, 0, "{\"a\":1}", 8);
        assert_line(&c, 1, "{\"msg\":\"two words\"}", 28);
        assert_line(&c, 2, "", 29);
        assert_line(&c, 3, "{\"last\":true}", sizeof text - 1);
        for (size_t i = 0; i < c.n; i++) {
            assert_false(c.lines[i].truncated);
            assert_int_equal(c.lines[i].time_ns, 0);
            assert_int_equal(c.lines[i].stream, LV_STREAM_STDOUT);
        }
        collector_clear(&c);
    }
}

static void json_lines_fed_one_byte_at_a_time_come_out_whole(void **state)
{
    static const char text[] = "{\"a\":1}\n{\"b\":2}\n";
    struct collector c = {0};
    struct lv_frame *f = lv_frame_new(LV_FORMAT_JSON, 0, 7);
    (void)state;
    for (size_t i = 0; i < sizeof text - 1; i++)
        assert_int_equal(lv_frame_feed(f, text + i, 1, collect, &c), 0);
    assert_int_equal(c.n, 2);
    assert_int_equal(lv_frame_finish(f, collect, &c), 0);
    assert_int_equal(c.n, 2);
    assert_line(&c, 0, "{\"a\":1}", 8);
    assert_line(&c, 1, "{\"b\":2}", 16);
    lv_frame_free(f);
    collector_clear(&c);
}

static void crlf_line_endings_are_stripped(void **state)
{
    struct collector c = {0};
    (void)state;
    feed_all(LV_FORMAT_JSON, 0, "{\"a\":1}\r\nplain\r\n{\"b\":2}\r", &c);
    assert_int_equal(c.n, 3);
    assert_line(&c, 0, "{\"a\":1}", 9);
    assert_line(&c, 1, "plain", 16);
    assert_line(&c, 2, "{\"b\":2}", 24);
    collector_clear(&c);
}

static void positions_are_the_byte_offset_after_each_line(void **state)
{
    static const char *const lines[] = {"x", "", "{\"k\":\"v\"}", "a somewhat longer line"};
    char text[256] = "";
    uint64_t ends[4], off = 0;
    (void)state;
    for (size_t i = 0; i < 4; i++) {
        strcat(text, lines[i]);
        strcat(text, "\n");
        off += strlen(lines[i]) + 1;
        ends[i] = off;
    }
    for (size_t chunk = 1; chunk <= strlen(text); chunk++) {
        struct collector c = {0};
        struct lv_frame *f = lv_frame_new(LV_FORMAT_JSON, 0, 7);
        for (size_t p = 0; p < strlen(text); p += chunk) {
            size_t n = strlen(text) - p < chunk ? strlen(text) - p : chunk;
            assert_int_equal(lv_frame_feed(f, text + p, n, collect, &c), 0);
        }
        assert_int_equal(lv_frame_finish(f, collect, &c), 0);
        assert_int_equal(c.n, 4);
        for (size_t i = 0; i < 4; i++)
            assert_line(&c, i, lines[i], ends[i]);
        lv_frame_free(f);
        collector_clear(&c);
    }
}

static void negative_return_from_emit_stops_the_feed(void **state)
{
    struct collector c = {.fail_at = 2};
    struct lv_frame *f = lv_frame_new(LV_FORMAT_JSON, 0, 7);
    (void)state;
    assert_int_equal(lv_frame_feed(f, "a\nb\nc\n", 6, collect, &c), -EIO);
    assert_int_equal(c.n, 2);
    lv_frame_free(f);
    collector_clear(&c);
}

/* ---- json: the line cap --------------------------------------------------------- */

static void raw_json_line_longer_than_max_line_is_truncated_and_flagged(void **state)
{
    struct collector c = {0};
    (void)state;
    feed_all(LV_FORMAT_JSON, 8, "0123456789abcdef\nshort\n", &c);
    assert_int_equal(c.n, 2);
    assert_line(&c, 0, "01234567", 17);
    assert_true(c.lines[0].truncated);
    assert_line(&c, 1, "short", 23);
    assert_false(c.lines[1].truncated);
    collector_clear(&c);
}

/* A line longer than the carry buffer (max_line plus slack for framing) that
 * arrives in many chunks: the cap holds, the rest is skipped up to its
 * newline, and the next line is intact with the right position. */
static void raw_line_longer_than_the_carry_cap_is_truncated_and_the_next_is_intact(void **state)
{
    const size_t max_line = 16, big = 64 * 1024;
    char *text = malloc(big + 16);
    (void)state;
    memset(text, 'x', big);
    memcpy(text + big, "\nnext\n", 6);
    size_t len = big + 6;
    for (size_t chunk = 1000; chunk <= 1024 * 1024; chunk *= 8) {
        struct collector c = {0};
        struct lv_frame *f = lv_frame_new(LV_FORMAT_JSON, max_line, 7);
        for (size_t p = 0; p < len; p += chunk)
            assert_int_equal(
                lv_frame_feed(f, text + p, len - p < chunk ? len - p : chunk, collect, &c), 0);
        assert_int_equal(lv_frame_finish(f, collect, &c), 0);
        assert_int_equal(c.n, 2);
        assert_line(&c, 0, "xxxxxxxxxxxxxxxx", big + 1);
        assert_true(c.lines[0].truncated);
        assert_line(&c, 1, "next", len);
        assert_false(c.lines[1].truncated);
        lv_frame_free(f);
        collector_clear(&c);
    }
    free(text);
}

static void overlong_last_line_without_newline_is_truncated_at_finish(void **state)
{
    char text[20000];
    struct collector c = {0};
    (void)state;
    memset(text, 'y', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    feed_all(LV_FORMAT_JSON, 4, text, &c);
    assert_int_equal(c.n, 1);
    assert_line(&c, 0, "yyyy", sizeof text - 1);
    assert_true(c.lines[0].truncated);
    collector_clear(&c);
}

/* A raw line that fills the carry buffer exactly, its newline arriving in
 * the next chunk, lost nothing: it must not be flagged. */
static void line_filling_the_carry_exactly_is_not_flagged_truncated(void **state)
{
    const size_t max_line = 16, raw_cap = 2 * max_line + 4096; /* Docker's carry */
    char *text = malloc(raw_cap + 1);
    const char *head = "{\"log\":\"short\\n\",\"stream\":\"stderr\",\"attrs\":{\"pad\":\"";
    const char *tail = "\"}}";
    struct collector c = {0};
    (void)state;
    memset(text, 'p', raw_cap);
    memcpy(text, head, strlen(head));
    memcpy(text + raw_cap - strlen(tail), tail, strlen(tail));
    text[raw_cap] = '\n';
    struct lv_frame *f = lv_frame_new(LV_FORMAT_DOCKER, max_line, 7);
    assert_int_equal(lv_frame_feed(f, text, raw_cap, collect, &c), 0);
    assert_int_equal(lv_frame_feed(f, text + raw_cap, 1, collect, &c), 0);
    assert_int_equal(c.n, 1);
    assert_line(&c, 0, "short", raw_cap + 1);
    assert_false(c.lines[0].truncated);
    assert_int_equal(c.lines[0].stream, LV_STREAM_STDERR);
    lv_frame_free(f);
    collector_clear(&c);
    free(text);
}

/* ---- CRI -------------------------------------------------------------------------- */

static void cri_full_line_gives_its_content_stream_and_utc_time(void **state)
{
    static const char text[] = "2024-05-01T08:00:00.5Z stderr F hello world\n";
    struct collector c = {0};
    (void)state;
    feed_all(LV_FORMAT_CRI, 0, text, &c);
    assert_int_equal(c.n, 1);
    assert_line(&c, 0, "hello world", sizeof text - 1);
    assert_int_equal(c.lines[0].stream, LV_STREAM_STDERR);
    assert_int_equal(c.lines[0].time_ns, T_0800 * SEC + 500000000);
    collector_clear(&c);
}

static void cri_containerd_time_with_a_short_fraction_is_read_exactly(void **state)
{
    struct collector c = {0};
    (void)state;
    feed_all(LV_FORMAT_CRI, 0,
             "2024-05-01T08:00:09.6697942Z stdout F a\n"
             "2024-05-01T08:00:09Z stdout F b\n"
             "2024-05-01T08:00:09.000000001Z stdout F c\n",
             &c);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.lines[0].time_ns, (T_0800 + 9) * SEC + 669794200);
    assert_int_equal(c.lines[1].time_ns, (T_0800 + 9) * SEC);
    assert_int_equal(c.lines[2].time_ns, (T_0800 + 9) * SEC + 1);
    collector_clear(&c);
}

static void cri_o_time_with_an_offset_is_converted_to_utc(void **state)
{
    struct collector c = {0};
    (void)state;
    feed_all(LV_FORMAT_CRI, 0,
             "2024-05-01T10:00:00.123456789+02:00 stdout F east\n"
             "2024-05-01T02:30:00.000000000-05:30 stdout F west\n",
             &c);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.lines[0].data, "east");
    assert_int_equal(c.lines[0].time_ns, T_0800 * SEC + 123456789);
    assert_string_equal(c.lines[1].data, "west");
    assert_int_equal(c.lines[1].time_ns, T_0800 * SEC);
    collector_clear(&c);
}

static void cri_partials_are_joined_per_stream_when_streams_interleave(void **state)
{
    static const char text[] = "2024-05-01T08:00:01Z stdout P {\"out\":\n"
                               "2024-05-01T08:00:02Z stderr P err-\n"
                               "2024-05-01T08:00:03Z stdout P \"a b\"\n"
                               "2024-05-01T08:00:04Z stderr F part\n"
                               "2024-05-01T08:00:05Z stdout F }\n";
    (void)state;
    for (size_t split = 0; split <= sizeof text - 1; split++) {
        struct collector c = {0};
        feed_split(LV_FORMAT_CRI, 0, text, sizeof text - 1, split, &c);
        assert_int_equal(c.n, 2);
        /* stderr's F comes first (4th line), stdout's at the end. */
        assert_string_equal(c.lines[0].data, "err-part");
        assert_int_equal(c.lines[0].stream, LV_STREAM_STDERR);
        assert_int_equal(c.lines[0].time_ns, (T_0800 + 2) * SEC);
        assert_int_equal(c.lines[0].end, strstr(text, "stdout F") - text - 21);
        assert_string_equal(c.lines[1].data, "{\"out\":\"a b\"}");
        assert_int_equal(c.lines[1].stream, LV_STREAM_STDOUT);
        assert_int_equal(c.lines[1].time_ns, (T_0800 + 1) * SEC);
        assert_int_equal(c.lines[1].end, sizeof text - 1);
        collector_clear(&c);
    }
}

static void cri_tags_after_a_colon_are_ignored(void **state)
{
    struct collector c = {0};
    (void)state;
    feed_all(LV_FORMAT_CRI, 0,
             "2024-05-01T08:00:00Z stdout P:x one \n"
             "2024-05-01T08:00:00Z stdout F:x:y two\n",
             &c);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.lines[0].data, "one two");
    collector_clear(&c);
}

static void cri_content_keeps_its_spaces_and_may_be_empty(void **state)
{
    struct collector c = {0};
    (void)state;
    feed_all(LV_FORMAT_CRI, 0,
             "2024-05-01T08:00:00Z stdout F   spaced  out \n"
             "2024-05-01T08:00:00Z stdout F \n"
             "2024-05-01T08:00:00Z stdout F\n",
             &c);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.lines[0].data, "  spaced  out ");
    assert_string_equal(c.lines[1].data, "");
    assert_string_equal(c.lines[2].data, "");
    collector_clear(&c);
}

static void cri_carriage_return_before_the_newline_is_stripped(void **state)
{
    struct collector c = {0};
    (void)state;
    feed_all(LV_FORMAT_CRI, 0,
             "2024-05-01T08:00:00Z stdout F dos line\r\n"
             "2024-05-01T08:00:00Z stdout P a\rb \n"
             "2024-05-01T08:00:00Z stdout F joined\r\n",
             &c);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.lines[0].data, "dos line");
    assert_string_equal(c.lines[1].data, "a\rb joined");
    collector_clear(&c);
}

static void cri_partial_at_end_of_input_is_flushed_by_finish(void **state)
{
    static const char text[] = "2024-05-01T08:00:00Z stdout F done\n"
                               "2024-05-01T08:00:01Z stderr P cut short\n";
    struct collector c = {0};
    struct lv_frame *f = lv_frame_new(LV_FORMAT_CRI, 0, 7);
    (void)state;
    assert_int_equal(lv_frame_feed(f, text, sizeof text - 1, collect, &c), 0);
    assert_int_equal(c.n, 1);
    assert_int_equal(lv_frame_finish(f, collect, &c), 0);
    assert_int_equal(c.n, 2);
    assert_line(&c, 1, "cut short", sizeof text - 1);
    assert_int_equal(c.lines[1].stream, LV_STREAM_STDERR);
    assert_int_equal(c.lines[1].time_ns, (T_0800 + 1) * SEC);
    assert_false(c.lines[1].truncated);
    /* Nothing is left to flush a second time. */
    assert_int_equal(lv_frame_finish(f, collect, &c), 0);
    assert_int_equal(c.n, 2);
    lv_frame_free(f);
    collector_clear(&c);
}

static void waiting_fragment_of_one_stream_holds_back_the_checkpoint(void **state)
{
    static const char first[] = "2024-05-01T08:00:00Z stdout F done\n";
    static const char partial[] = "2024-05-01T08:00:01Z stdout P half \n";
    static const char other[] = "2024-05-01T08:00:02Z stderr F other stream\n";
    static const char end[] = "2024-05-01T08:00:03Z stdout F and the rest\n";
    struct collector c = {0};
    struct lv_frame *f = lv_frame_new(LV_FORMAT_CRI, 0, 7);
    (void)state;
    lv_frame_feed(f, first, sizeof first - 1, collect, &c);
    assert_true(lv_frame_pending_start(f) == UINT64_MAX);
    lv_frame_feed(f, partial, sizeof partial - 1, collect, &c);
    lv_frame_feed(f, other, sizeof other - 1, collect, &c);
    /* The stderr line ended past the stdout fragment, which still waits. */
    assert_int_equal(c.n, 2);
    assert_int_equal(lv_frame_pending_start(f), sizeof first - 1);
    lv_frame_feed(f, end, sizeof end - 1, collect, &c);
    assert_int_equal(c.n, 3);
    assert_line(&c, 2, "half and the rest", lv_frame_offset(f));
    assert_true(lv_frame_pending_start(f) == UINT64_MAX);
    lv_frame_free(f);
    collector_clear(&c);
}

static void non_cri_line_is_passed_through_as_it_is(void **state)
{
    static const char *const lines[] = {
        "{\"plain\":\"json\"}",
        "2024-05-01T08:00:00Z stdin F wrong stream",
        "2024-05-01T08:00:00Z stdout X unknown tag",
        "2024-05-01T08:00:00Z stdout Fx not a tag",
        "2024-05-01T08:00:00Z stdout",
        "yesterday stdout F not a time",
    };
    (void)state;
    for (size_t i = 0; i < LV_ARRAY_LEN(lines); i++) {
        struct collector c = {0};
        char text[128];
        snprintf(text, sizeof text, "%s\n", lines[i]);
        feed_all(LV_FORMAT_CRI, 0, text, &c);
        assert_int_equal(c.n, 1);
        assert_line(&c, 0, lines[i], strlen(text));
        assert_int_equal(c.lines[0].time_ns, 0);
        assert_int_equal(c.lines[0].stream, LV_STREAM_STDOUT);
        collector_clear(&c);
    }
}

static void cri_joined_line_longer_than_max_line_is_truncated_and_flagged(void **state)
{
    struct collector c = {0};
    (void)state;
    feed_all(LV_FORMAT_CRI, 10,
             "2024-05-01T08:00:00Z stdout P 012345\n"
             "2024-05-01T08:00:00Z stdout P 6789ab\n"
             "2024-05-01T08:00:00Z stdout F cdef\n"
             "2024-05-01T08:00:00Z stdout F fits\n",
             &c);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.lines[0].data, "0123456789");
    assert_true(c.lines[0].truncated);
    assert_string_equal(c.lines[1].data, "fits");
    assert_false(c.lines[1].truncated);
    collector_clear(&c);
}

/* A partial line that never ends (a progress bar on stderr) must not wait
 * for ever: once max_line bytes are held it goes, flagged, the checkpoint
 * may pass it, and what still belongs to it up to its F is dropped. */
static void cri_partial_reaching_max_line_is_sent_at_once_and_its_rest_dropped(void **state)
{
    struct collector c = {0};
    struct lv_frame *f = lv_frame_new(LV_FORMAT_CRI, 10, 7);
    static const char p1[] = "2024-05-01T08:00:00Z stderr P 012345\n";
    static const char p2[] = "2024-05-01T08:00:00Z stderr P 6789ab\n";
    static const char p3[] = "2024-05-01T08:00:00Z stderr P more\n";
    static const char fin[] = "2024-05-01T08:00:00Z stderr F end\n";
    static const char next[] = "2024-05-01T08:00:00Z stderr F next\n";
    (void)state;
    lv_frame_feed(f, p1, sizeof p1 - 1, collect, &c);
    assert_int_equal(c.n, 0);
    assert_int_equal(lv_frame_pending_start(f), 0);
    lv_frame_feed(f, p2, sizeof p2 - 1, collect, &c);
    assert_int_equal(c.n, 1); /* no F needed */
    assert_string_equal(c.lines[0].data, "0123456789");
    assert_true(c.lines[0].truncated);
    assert_true(lv_frame_pending_start(f) == UINT64_MAX);
    lv_frame_feed(f, p3, sizeof p3 - 1, collect, &c);
    lv_frame_feed(f, fin, sizeof fin - 1, collect, &c);
    assert_int_equal(c.n, 1);
    assert_true(lv_frame_pending_start(f) == UINT64_MAX);
    lv_frame_feed(f, next, sizeof next - 1, collect, &c);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.lines[1].data, "next");
    lv_frame_free(f);
    collector_clear(&c);
}

/* The caller's time bound: what a partial holds goes now; the rest of the
 * line, when it comes, is a line of its own. */
static void flushed_partials_go_now_and_their_end_comes_as_another_line(void **state)
{
    struct collector c = {0};
    struct lv_frame *f = lv_frame_new(LV_FORMAT_CRI, 0, 7);
    static const char p[] = "2024-05-01T08:00:00Z stderr P 50% [=====\n";
    static const char done[] = "2024-05-01T08:00:09Z stderr F =====] 100%\n";
    static const char out[] = "2024-05-01T08:00:01Z stdout P out\n";
    (void)state;
    lv_frame_feed(f, p, sizeof p - 1, collect, &c);
    lv_frame_feed(f, out, sizeof out - 1, collect, &c);
    assert_int_equal(lv_frame_flush_partials(f, collect, &c), 0);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.lines[0].data, "out"); /* stdout, stream 0, first */
    assert_string_equal(c.lines[1].data, "50% [=====");
    assert_false(c.lines[1].truncated);
    assert_int_equal(c.lines[1].stream, LV_STREAM_STDERR);
    assert_true(lv_frame_pending_start(f) == UINT64_MAX);
    lv_frame_feed(f, done, sizeof done - 1, collect, &c);
    assert_int_equal(c.n, 3);
    assert_string_equal(c.lines[2].data, "=====] 100%");
    lv_frame_free(f);
    collector_clear(&c);
}

/* A long Docker line grows the raw buffer, the decode copy and the decoder's
 * arena; all of it is given back once the line is out. */
static void docker_memory_goes_back_to_the_idle_size_after_a_long_line(void **state)
{
    struct collector c = {0};
    struct lv_frame *f = lv_frame_new(LV_FORMAT_DOCKER, 1 << 20, 7);
    (void)state;
    size_t idle = lv_frame_bytes(f);
    assert_true(idle <= 4 * LV_FRAME_KEEP_BYTES + LV_FRAME_ARENA_BYTES);
    size_t n = 600000; /* decoded bytes; every 50th is a tab, escaped */
    char *line = malloc(2 * n + 200);
    assert_non_null(line);
    size_t len = (size_t)sprintf(line, "{\"log\":\"");
    for (size_t i = 0; i < n; i++) {
        if (i % 50 == 49) {
            line[len++] = '\\';
            line[len++] = 't';
        } else {
            line[len++] = 'x';
        }
    }
    len += (size_t)sprintf(line + len,
                           "\\n\",\"stream\":\"stdout\",\"time\":\"2024-05-01T08:00:00Z\"}");
    assert_int_equal(lv_frame_feed(f, line, len / 2, collect, &c), 0);
    assert_true(lv_frame_bytes(f) >= len / 2); /* the partial line counts */
    assert_int_equal(lv_frame_feed(f, line + len / 2, len - len / 2, collect, &c), 0);
    assert_int_equal(lv_frame_feed(f, "\n", 1, collect, &c), 0);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.lines[0].len, n);
    assert_true(lv_frame_bytes(f) <= idle + LV_FRAME_KEEP_BYTES);
    free(line);
    lv_frame_free(f);
    collector_clear(&c);
}

static void cri_single_full_line_longer_than_max_line_is_truncated(void **state)
{
    struct collector c = {0};
    (void)state;
    feed_all(LV_FORMAT_CRI, 4, "2024-05-01T08:00:00Z stderr F abcdefgh\n", &c);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.lines[0].data, "abcd");
    assert_true(c.lines[0].truncated);
    assert_int_equal(c.lines[0].stream, LV_STREAM_STDERR);
    collector_clear(&c);
}

/* ---- Docker json-file --------------------------------------------------------------- */

static void docker_entry_gives_its_log_without_the_newline(void **state)
{
    static const char text[] =
        "{\"log\":\"hello\\n\",\"stream\":\"stderr\",\"time\":\"2024-05-01T08:00:00.25Z\"}\n";
    struct collector c = {0};
    (void)state;
    feed_all(LV_FORMAT_DOCKER, 0, text, &c);
    assert_int_equal(c.n, 1);
    assert_line(&c, 0, "hello", sizeof text - 1);
    assert_int_equal(c.lines[0].stream, LV_STREAM_STDERR);
    assert_int_equal(c.lines[0].time_ns, T_0800 * SEC + 250000000);
    collector_clear(&c);
}

static void docker_escapes_are_decoded(void **state)
{
    struct collector c = {0};
    (void)state;
    feed_all(LV_FORMAT_DOCKER, 0,
             "{\"log\":\"{\\\"a\\\":\\\"\\u003cb\\u003e \\u00e9\\\\ \\ud83d\\ude00\\\"}\\r\\n\","
             "\"stream\":\"stdout\",\"time\":\"2024-05-01T08:00:00Z\"}\n",
             &c);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.lines[0].data, "{\"a\":\"<b> \xc3\xa9\\ \xf0\x9f\x98\x80\"}");
    assert_int_equal(c.lines[0].stream, LV_STREAM_STDOUT);
    collector_clear(&c);
}

/* yajl decodes every escaped string into one scratch buffer: a later escaped
 * key or value must not overwrite the log text already taken. */
static void docker_log_survives_later_escaped_strings(void **state)
{
    char text[70000];
    struct collector c = {0};
    (void)state;
    int n = snprintf(text, sizeof text,
                     "{\"log\":\"a\\tb\\n\",\"attrs\":{\"k\\\"ey\":\"v\\\\al\",\"big\":\"");
    for (int i = 0; i < 8000; i++)
        n += snprintf(text + n, sizeof text - (size_t)n, "\\u0041");
    snprintf(text + n, sizeof text - (size_t)n,
             "\"},\"stream\":\"stdout\",\"time\":\"2024-05-01T08:00:00Z\"}\n");
    feed_all(LV_FORMAT_DOCKER, 0, text, &c);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.lines[0].data, "a\tb");
    assert_int_equal(c.lines[0].time_ns, T_0800 * SEC);
    collector_clear(&c);
}

static void docker_partial_entries_are_joined_per_stream(void **state)
{
    static const char text[] =
        "{\"log\":\"first \",\"stream\":\"stdout\",\"time\":\"2024-05-01T08:00:01Z\"}\n"
        "{\"log\":\"oops\\n\",\"stream\":\"stderr\",\"time\":\"2024-05-01T08:00:02Z\"}\n"
        "{\"log\":\"second \",\"stream\":\"stdout\",\"time\":\"2024-05-01T08:00:01Z\"}\n"
        "{\"log\":\"third\\n\",\"stream\":\"stdout\",\"time\":\"2024-05-01T08:00:01Z\"}\n";
    (void)state;
    for (size_t split = 0; split <= sizeof text - 1; split += 7) {
        struct collector c = {0};
        feed_split(LV_FORMAT_DOCKER, 0, text, sizeof text - 1, split, &c);
        assert_int_equal(c.n, 2);
        assert_string_equal(c.lines[0].data, "oops");
        assert_int_equal(c.lines[0].stream, LV_STREAM_STDERR);
        assert_string_equal(c.lines[1].data, "first second third");
        assert_int_equal(c.lines[1].stream, LV_STREAM_STDOUT);
        assert_int_equal(c.lines[1].time_ns, (T_0800 + 1) * SEC);
        assert_int_equal(c.lines[1].end, sizeof text - 1);
        collector_clear(&c);
    }
}

static void docker_partial_at_end_of_input_is_flushed_by_finish(void **state)
{
    struct collector c = {0};
    (void)state;
    feed_all(LV_FORMAT_DOCKER, 0,
             "{\"log\":\"no newline\",\"stream\":\"stdout\",\"time\":\"2024-05-01T08:00:00Z\"}\n",
             &c);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.lines[0].data, "no newline");
    collector_clear(&c);
}

static void docker_joined_line_longer_than_max_line_is_truncated_and_flagged(void **state)
{
    struct collector c = {0};
    (void)state;
    feed_all(LV_FORMAT_DOCKER, 6,
             "{\"log\":\"abcd\",\"stream\":\"stdout\",\"time\":\"2024-05-01T08:00:00Z\"}\n"
             "{\"log\":\"efgh\\n\",\"stream\":\"stdout\",\"time\":\"2024-05-01T08:00:00Z\"}\n"
             "{\"log\":\"ok\\n\",\"stream\":\"stdout\",\"time\":\"2024-05-01T08:00:00Z\"}\n",
             &c);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.lines[0].data, "abcdef");
    assert_true(c.lines[0].truncated);
    assert_string_equal(c.lines[1].data, "ok");
    assert_false(c.lines[1].truncated);
    collector_clear(&c);
}

static void non_docker_line_is_passed_through_as_it_is(void **state)
{
    struct collector c = {0};
    (void)state;
    feed_all(LV_FORMAT_DOCKER, 0, "not json at all\n{\"msg\":\"no log key\"}\n", &c);
    assert_int_equal(c.n, 2);
    assert_line(&c, 0, "not json at all", 16);
    assert_line(&c, 1, "{\"msg\":\"no log key\"}", 37);
    collector_clear(&c);
}

/* The lone-surrogate repair is for decoding a Docker entry; a line that is
 * not one is the application's text and goes on as written, whether it
 * came in one read or several (found by fuzz_frame: the line assembled
 * from chunks came out repaired, the same line read at once did not). */
static void non_docker_line_with_a_lone_surrogate_escape_is_passed_through_as_written(void **state)
{
    const char *text = "{\"msg\":\"a \\udc00 b\"}\nnot json \\ud800x\n";
    (void)state;
    for (size_t split = 0; split <= strlen(text); split++) {
        struct collector c = {0};
        feed_split(LV_FORMAT_DOCKER, 0, text, strlen(text), split, &c);
        assert_int_equal(c.n, 2);
        assert_line(&c, 0, "{\"msg\":\"a \\udc00 b\"}", 21);
        assert_line(&c, 1, "not json \\ud800x", 38);
        collector_clear(&c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_lines_split_across_chunks_at_every_byte_come_out_whole),
        cmocka_unit_test(json_lines_fed_one_byte_at_a_time_come_out_whole),
        cmocka_unit_test(crlf_line_endings_are_stripped),
        cmocka_unit_test(waiting_fragment_of_one_stream_holds_back_the_checkpoint),
        cmocka_unit_test(positions_are_the_byte_offset_after_each_line),
        cmocka_unit_test(negative_return_from_emit_stops_the_feed),
        cmocka_unit_test(raw_json_line_longer_than_max_line_is_truncated_and_flagged),
        cmocka_unit_test(raw_line_longer_than_the_carry_cap_is_truncated_and_the_next_is_intact),
        cmocka_unit_test(overlong_last_line_without_newline_is_truncated_at_finish),
        cmocka_unit_test(line_filling_the_carry_exactly_is_not_flagged_truncated),
        cmocka_unit_test(cri_full_line_gives_its_content_stream_and_utc_time),
        cmocka_unit_test(cri_containerd_time_with_a_short_fraction_is_read_exactly),
        cmocka_unit_test(cri_o_time_with_an_offset_is_converted_to_utc),
        cmocka_unit_test(cri_partials_are_joined_per_stream_when_streams_interleave),
        cmocka_unit_test(cri_tags_after_a_colon_are_ignored),
        cmocka_unit_test(cri_content_keeps_its_spaces_and_may_be_empty),
        cmocka_unit_test(cri_carriage_return_before_the_newline_is_stripped),
        cmocka_unit_test(cri_partial_at_end_of_input_is_flushed_by_finish),
        cmocka_unit_test(non_cri_line_is_passed_through_as_it_is),
        cmocka_unit_test(cri_joined_line_longer_than_max_line_is_truncated_and_flagged),
        cmocka_unit_test(cri_single_full_line_longer_than_max_line_is_truncated),
        cmocka_unit_test(cri_partial_reaching_max_line_is_sent_at_once_and_its_rest_dropped),
        cmocka_unit_test(flushed_partials_go_now_and_their_end_comes_as_another_line),
        cmocka_unit_test(docker_memory_goes_back_to_the_idle_size_after_a_long_line),
        cmocka_unit_test(docker_entry_gives_its_log_without_the_newline),
        cmocka_unit_test(docker_escapes_are_decoded),
        cmocka_unit_test(docker_log_survives_later_escaped_strings),
        cmocka_unit_test(docker_partial_entries_are_joined_per_stream),
        cmocka_unit_test(docker_partial_at_end_of_input_is_flushed_by_finish),
        cmocka_unit_test(docker_joined_line_longer_than_max_line_is_truncated_and_flagged),
        cmocka_unit_test(non_docker_line_is_passed_through_as_it_is),
        cmocka_unit_test(non_docker_line_with_a_lone_surrogate_escape_is_passed_through_as_written),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
