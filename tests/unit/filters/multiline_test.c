/*
 * Tests for multiline joining: continuation lines fold into the record before
 * them, JSON lines are never joined, the caps (max_lines, max_line) hold, a
 * flush sends what is held (as the pipeline does on its timeout and at the
 * end of a stream), and a joined record keeps its first line's time and
 * stream and its last line's position.
 *
 * Each test pushes lines through a joiner and collects the records emitted
 * (copied, since the joiner's copy is valid only during the callback).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "logveil/metrics.h"
#include "multiline.h"

#define MAX_RECORDS 64

struct got {
    char *data;
    size_t len;
    int64_t time_ns;
    enum lv_stream stream;
    int truncated;
    int masked;
    uint64_t end;
};

struct collector {
    struct got recs[MAX_RECORDS];
    size_t n;
    int fail; /* emit returns -EIO when set */
};

static int collect(void *arg, const struct lv_line *line)
{
    struct collector *c = arg;
    assert_true(c->n < MAX_RECORDS);
    assert_non_null(line->data);
    struct got *g = &c->recs[c->n++];
    g->data = malloc(line->len + 1);
    assert_non_null(g->data);
    memcpy(g->data, line->data, line->len);
    g->data[line->len] = '\0';
    g->len = line->len;
    g->time_ns = line->time_ns;
    g->stream = line->stream;
    g->truncated = line->truncated;
    g->masked = line->masked;
    g->end = line->pos.end;
    return c->fail ? -EIO : 0;
}

/* A joiner under its own rule; the test frees both with done(). */
struct fixture {
    struct lv_multiline_rule *rule;
    struct lv_multiline *m;
    struct collector c;
    uint64_t end; /* position of the next line pushed */
};

static void setup_rule(struct fixture *f, bool enabled, const char *pattern, int max_lines,
                       size_t max_line)
{
    char err[256] = "", text[64];
    struct lv_multiline_conf conf = {.enabled = enabled, .timeout = 1.0, .max_lines = max_lines};
    if (pattern) /* NULL: the default */
        conf.pattern = strcpy(text, pattern);
    memset(f, 0, sizeof *f);
    f->rule = lv_multiline_rule_new(&conf, max_line, err, sizeof err);
    if (!f->rule)
        fail_msg("rule: %s", err);
    f->m = lv_multiline_new(f->rule);
}

static void setup(struct fixture *f, const char *pattern, int max_lines, size_t max_line)
{
    setup_rule(f, true, pattern, max_lines, max_line);
}

static void done(struct fixture *f)
{
    for (size_t i = 0; i < f->c.n; i++)
        free(f->c.recs[i].data);
    lv_multiline_free(f->m);
    lv_multiline_rule_free(f->rule);
}

static int push_line(struct fixture *f, const char *text, int64_t t, enum lv_stream st)
{
    f->end += strlen(text) + 1;
    struct lv_line l = {text, strlen(text), t, st, 0, {3, f->end}, 0};
    return lv_multiline_push(f->m, &l, collect, &f->c);
}

static int push(struct fixture *f, const char *text)
{
    return push_line(f, text, 0, LV_STREAM_STDOUT);
}

static void flush(struct fixture *f)
{
    assert_int_equal(lv_multiline_flush(f->m, collect, &f->c), 0);
}

static void assert_record(const struct fixture *f, size_t i, const char *text)
{
    assert_true(i < f->c.n);
    assert_string_equal(f->c.recs[i].data, text);
}

/* ---- joining ------------------------------------------------------------------------- */

static void a_java_stack_trace_joins_into_one_record(void **state)
{
    struct fixture f;
    (void)state;
    setup(&f, NULL, 500, 0);
    push(&f, "ERROR request failed");
    push(&f, "java.lang.IllegalStateException: boom");
    push(&f, "\tat com.example.Foo.bar(Foo.java:10)");
    push(&f, "\tat com.example.Foo.run(Foo.java:20)");
    push(&f, "Caused by: java.io.IOException: closed");
    push(&f, "\tat com.example.Io.read(Io.java:5)");
    push(&f, "\t... 2 more");
    assert_int_equal(f.c.n, 0);
    push(&f, "INFO next request");
    assert_int_equal(f.c.n, 1);
    assert_record(&f, 0,
                  "ERROR request failed\n"
                  "java.lang.IllegalStateException: boom\n"
                  "\tat com.example.Foo.bar(Foo.java:10)\n"
                  "\tat com.example.Foo.run(Foo.java:20)\n"
                  "Caused by: java.io.IOException: closed\n"
                  "\tat com.example.Io.read(Io.java:5)\n"
                  "\t... 2 more");
    assert_false(f.c.recs[0].truncated);
    flush(&f);
    assert_record(&f, 1, "INFO next request");
    done(&f);
}

static void a_python_traceback_joins_into_one_record(void **state)
{
    struct fixture f;
    (void)state;
    setup(&f, NULL, 500, 0);
    push(&f, "ERROR:root:failed");
    push(&f, "Traceback (most recent call last):");
    push(&f, "  File \"app.py\", line 3, in <module>");
    push(&f, "    1 / 0");
    push(&f, "ZeroDivisionError: division by zero");
    push(&f, "INFO:root:next");
    assert_int_equal(f.c.n, 1);
    assert_record(&f, 0,
                  "ERROR:root:failed\nTraceback (most recent call last):\n"
                  "  File \"app.py\", line 3, in <module>\n    1 / 0\n"
                  "ZeroDivisionError: division by zero");
    done(&f);
}

static void lines_that_do_not_continue_are_records_of_their_own(void **state)
{
    struct fixture f;
    (void)state;
    setup(&f, NULL, 500, 0);
    push(&f, "one");
    push(&f, "Error: not an exception class");
    push(&f, "");
    push(&f, "TimeoutError occurred while waiting");
    flush(&f);
    assert_int_equal(f.c.n, 4);
    assert_record(&f, 0, "one");
    assert_record(&f, 1, "Error: not an exception class");
    assert_record(&f, 2, "");
    assert_record(&f, 3, "TimeoutError occurred while waiting");
    done(&f);
}

static void push_returns_one_when_the_line_begins_the_held_record(void **state)
{
    struct fixture f;
    (void)state;
    setup(&f, NULL, 500, 0);
    assert_int_equal(push(&f, "head"), 1);
    assert_true(lv_multiline_holding(f.m));
    assert_int_equal(push(&f, "  continued"), 0);
    assert_int_equal(push(&f, "{\"json\":1}"), 0);
    assert_false(lv_multiline_holding(f.m));
    assert_int_equal(push(&f, "next"), 1);
    done(&f);
}

static void a_continuation_with_nothing_held_begins_a_record(void **state)
{
    struct fixture f;
    (void)state;
    setup(&f, NULL, 500, 0);
    assert_int_equal(push(&f, "\tat com.example.Foo.bar(Foo.java:10)"), 1);
    push(&f, "\tat com.example.Main.main(Main.java:3)");
    flush(&f);
    assert_int_equal(f.c.n, 1);
    assert_record(&f, 0,
                  "\tat com.example.Foo.bar(Foo.java:10)\n\tat com.example.Main.main(Main.java:3)");
    done(&f);
}

static void a_configured_pattern_replaces_the_default(void **state)
{
    struct fixture f;
    (void)state;
    setup(&f, "^\\+", 500, 0);
    push(&f, "first");
    push(&f, "+ more");
    push(&f, "  indented is not a continuation here");
    flush(&f);
    assert_int_equal(f.c.n, 2);
    assert_record(&f, 0, "first\n+ more");
    assert_record(&f, 1, "  indented is not a continuation here");
    done(&f);
}

/* ---- JSON --------------------------------------------------------------------------- */

static void a_json_line_is_never_joined_and_flushes_the_held_record(void **state)
{
    struct fixture f;
    (void)state;
    setup(&f, NULL, 500, 0);
    push(&f, "ERROR failed");
    push(&f, "\tat a.B.c(B.java:1)");
    assert_int_equal(push(&f, "{\"level\":\"info\",\"msg\":\"ok\"}"), 0);
    assert_int_equal(f.c.n, 2);
    assert_record(&f, 0, "ERROR failed\n\tat a.B.c(B.java:1)");
    assert_record(&f, 1, "{\"level\":\"info\",\"msg\":\"ok\"}");
    assert_false(lv_multiline_holding(f.m));
    done(&f);
}

/* An indented object would match "^\s": it is JSON all the same, so no
 * joined record ever begins like an object (its newlines would otherwise be
 * copied through verbatim). */
static void an_indented_json_line_is_not_joined_either(void **state)
{
    struct fixture f;
    (void)state;
    setup(&f, NULL, 500, 0);
    push(&f, "head");
    push(&f, "  \t{\"a\":1}");
    push(&f, "  ");
    push(&f, " {\"b\":2}");
    flush(&f);
    assert_int_equal(f.c.n, 4);
    assert_record(&f, 0, "head");
    assert_record(&f, 1, "  \t{\"a\":1}");
    assert_record(&f, 2, "  ");
    assert_record(&f, 3, " {\"b\":2}");
    done(&f);
}

/* ---- caps ------------------------------------------------------------------------------ */

static void a_continuation_past_max_lines_begins_the_next_record(void **state)
{
    struct fixture f;
    (void)state;
    setup(&f, NULL, 3, 0);
    push(&f, "head");
    push(&f, " 1");
    push(&f, " 2");
    assert_int_equal(push(&f, " 3"), 1);
    push(&f, " 4");
    flush(&f);
    assert_int_equal(f.c.n, 2);
    assert_record(&f, 0, "head\n 1\n 2");
    assert_record(&f, 1, " 3\n 4");
    done(&f);
}

static void a_joined_record_is_capped_at_max_line_and_flagged_truncated(void **state)
{
    struct fixture f;
    (void)state;
    setup(&f, NULL, 500, 12);
    push(&f, "head");    /* 4 bytes */
    push(&f, " abcdef"); /* + 8 = 12: exactly full */
    flush(&f);
    assert_record(&f, 0, "head\n abcdef");
    assert_false(f.c.recs[0].truncated);
    push(&f, "head");
    push(&f, " abcdefgh"); /* cut after " abcdef" */
    push(&f, " more");     /* nothing fits: dropped, still joined */
    assert_true(lv_multiline_holding(f.m));
    flush(&f);
    assert_int_equal(f.c.n, 2);
    assert_record(&f, 1, "head\n abcdef");
    assert_true(f.c.recs[1].truncated);
    assert_int_equal(f.c.recs[1].end, f.end);
    done(&f);
}

static void a_truncated_line_flags_the_record_it_joins(void **state)
{
    struct fixture f;
    (void)state;
    setup(&f, NULL, 500, 0);
    push(&f, "head");
    f.end += 6;
    struct lv_line l = {" cut", 4, 0, LV_STREAM_STDOUT, 1, {3, f.end}, 0};
    assert_int_equal(lv_multiline_push(f.m, &l, collect, &f.c), 0);
    flush(&f);
    assert_record(&f, 0, "head\n cut");
    assert_true(f.c.recs[0].truncated);
    done(&f);
}

/* ---- flushing and the record's header ------------------------------------------------- */

static void flush_sends_the_held_record_as_a_timeout_does(void **state)
{
    struct fixture f;
    (void)state;
    setup(&f, NULL, 500, 0);
    flush(&f);
    assert_int_equal(f.c.n, 0);
    push(&f, "WARN slow");
    push(&f, "  detail");
    flush(&f);
    assert_int_equal(f.c.n, 1);
    assert_record(&f, 0, "WARN slow\n  detail");
    assert_false(lv_multiline_holding(f.m));
    flush(&f); /* nothing twice */
    assert_int_equal(f.c.n, 1);
    push(&f, "  after the flush, a record of its own");
    flush(&f);
    assert_record(&f, 1, "  after the flush, a record of its own");
    done(&f);
}

static void the_record_has_its_first_lines_time_and_stream_and_its_last_lines_position(void **state)
{
    struct fixture f;
    (void)state;
    setup(&f, NULL, 500, 0);
    push_line(&f, "head", 1000, LV_STREAM_STDERR);
    push_line(&f, "  one", 2000, LV_STREAM_STDERR);
    push_line(&f, "  two", 3000, LV_STREAM_STDERR);
    uint64_t last = f.end;
    push_line(&f, "next", 4000, LV_STREAM_STDERR);
    assert_int_equal(f.c.n, 1);
    assert_int_equal(f.c.recs[0].time_ns, 1000);
    assert_int_equal(f.c.recs[0].stream, LV_STREAM_STDERR);
    assert_int_equal(f.c.recs[0].end, last);
    done(&f);
}

/* The pipeline keeps one joiner per stream of a source (CRI interleaves
 * stdout and stderr in one file); joiners sharing a rule stay apart. */
static void joiners_sharing_a_rule_keep_interleaved_streams_apart(void **state)
{
    struct fixture f;
    (void)state;
    setup(&f, NULL, 500, 0);
    struct lv_multiline *err = lv_multiline_new(f.rule);
    struct lv_line l = {"stderr head", 11, 0, LV_STREAM_STDERR, 0, {3, 1}, 0};
    push(&f, "stdout head");
    lv_multiline_push(err, &l, collect, &f.c);
    push(&f, "  stdout more");
    l.data = "  stderr more";
    l.len = 13;
    lv_multiline_push(err, &l, collect, &f.c);
    flush(&f);
    lv_multiline_flush(err, collect, &f.c);
    assert_int_equal(f.c.n, 2);
    assert_record(&f, 0, "stdout head\n  stdout more");
    assert_record(&f, 1, "stderr head\n  stderr more");
    lv_multiline_free(err);
    done(&f);
}

static void joined_lines_are_counted(void **state)
{
    struct fixture f;
    (void)state;
    setup(&f, NULL, 500, 0);
    uint64_t before = lv_metrics.lines_joined;
    push(&f, "head");
    push(&f, "  1");
    push(&f, "  2");
    push(&f, "next");
    flush(&f);
    assert_int_equal(lv_metrics.lines_joined - before, 2);
    done(&f);
}

static void a_negative_return_from_emit_is_passed_back(void **state)
{
    struct fixture f;
    (void)state;
    setup(&f, NULL, 500, 0);
    push(&f, "head");
    f.c.fail = 1;
    assert_int_equal(push(&f, "next"), -EIO);
    assert_int_equal(push(&f, "{}"), -EIO);
    done(&f);
}

/* ---- the rule -------------------------------------------------------------------------- */

static void a_bad_pattern_is_reported_with_its_offset(void **state)
{
    char err[256] = "";
    struct lv_multiline_conf conf = {.enabled = true, .pattern = "^(\\s|at ", .max_lines = 5};
    (void)state;
    assert_null(lv_multiline_rule_new(&conf, 0, err, sizeof err));
    assert_string_equal(err, "multiline.continue: bad regular expression at offset 8: missing "
                             "closing parenthesis");
    lv_multiline_rule_free(NULL);
    lv_multiline_free(NULL);
}

/* ---- private key blocks -------------------------------------------------------------- */

static const char *const key_lines[] = {
    "-----BEGIN RSA PRIVATE KEY-----",
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun",
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK",
    "LxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW/VDL5Aa==",
    "-----END RSA PRIVATE KEY-----",
};

static void a_private_key_block_joins_without_a_multiline_map(void **state)
{
    struct fixture f;
    (void)state;
    setup_rule(&f, false, NULL, 500, 0);
    assert_int_equal(push(&f, "INFO loading"), 0); /* nothing else is held */
    assert_int_equal(f.c.n, 1);
    assert_int_equal(push(&f, key_lines[0]), 1);
    for (size_t i = 1; i < LV_ARRAY_LEN(key_lines); i++)
        assert_int_equal(push(&f, key_lines[i]), 0);
    assert_int_equal(f.c.n, 2);
    assert_string_equal(f.c.recs[1].data, "-----BEGIN RSA PRIVATE KEY-----\n"
                                          "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
                                          "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
                                          "LxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW/VDL5Aa==\n"
                                          "-----END RSA PRIVATE KEY-----");
    assert_false(f.c.recs[1].masked);
    assert_int_equal(push(&f, "INFO done"), 0);
    assert_int_equal(f.c.n, 3);
    done(&f);
}

static void a_block_with_a_logger_prefix_on_each_line_joins(void **state)
{
    struct fixture f;
    (void)state;
    setup_rule(&f, false, NULL, 500, 0);
    push(&f, "2024-01-01 ERROR key: -----BEGIN PRIVATE KEY-----");
    push(&f, "2024-01-01 ERROR MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7");
    push(&f, "2024-01-01 ERROR -----END PRIVATE KEY-----");
    assert_int_equal(f.c.n, 1);
    done(&f);
}

static void a_line_that_is_no_key_body_ends_the_block(void **state)
{
    struct fixture f;
    (void)state;
    setup_rule(&f, false, NULL, 500, 0);
    push(&f, key_lines[0]);
    push(&f, key_lines[1]);
    push(&f, "connection refused, retrying");
    push(&f, "{\"level\":\"info\"}");
    assert_int_equal(f.c.n, 3);
    assert_record(&f, 0, "-----BEGIN RSA PRIVATE KEY-----\n"
                         "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun");
    assert_record(&f, 1, "connection refused, retrying");
    done(&f);
}

static void a_block_past_its_record_goes_out_masked(void **state)
{
    struct fixture f;
    (void)state;
    setup_rule(&f, false, NULL, 2, 0); /* two lines a record */
    for (size_t i = 0; i < LV_ARRAY_LEN(key_lines); i++)
        push(&f, key_lines[i]);
    assert_int_equal(f.c.n, 3);
    assert_false(f.c.recs[0].masked); /* BEGIN and a line: the rule masks it */
    assert_true(f.c.recs[1].masked);
    assert_true(f.c.recs[2].masked);
    /* a timeout before the END: what follows is masked too */
    push(&f, key_lines[0]);
    push(&f, key_lines[1]);
    flush(&f);
    push(&f, key_lines[2]);
    push(&f, key_lines[4]);
    assert_int_equal(f.c.n, 5);
    assert_false(f.c.recs[3].masked);
    assert_true(f.c.recs[4].masked);
    assert_record(&f, 4, "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
                         "-----END RSA PRIVATE KEY-----");
    done(&f);
}

static void a_block_closed_on_its_own_line_is_no_block(void **state)
{
    struct fixture f;
    (void)state;
    setup_rule(&f, false, NULL, 500, 0);
    push(&f, "-----BEGIN PRIVATE KEY----- MIIE -----END PRIVATE KEY-----");
    push(&f, "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun");
    assert_int_equal(f.c.n, 2);
    /* a certificate is no private key */
    push(&f, "-----BEGIN CERTIFICATE-----");
    assert_int_equal(f.c.n, 3);
    done(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_private_key_block_joins_without_a_multiline_map),
        cmocka_unit_test(a_block_with_a_logger_prefix_on_each_line_joins),
        cmocka_unit_test(a_line_that_is_no_key_body_ends_the_block),
        cmocka_unit_test(a_block_past_its_record_goes_out_masked),
        cmocka_unit_test(a_block_closed_on_its_own_line_is_no_block),
        cmocka_unit_test(a_java_stack_trace_joins_into_one_record),
        cmocka_unit_test(a_python_traceback_joins_into_one_record),
        cmocka_unit_test(lines_that_do_not_continue_are_records_of_their_own),
        cmocka_unit_test(push_returns_one_when_the_line_begins_the_held_record),
        cmocka_unit_test(a_continuation_with_nothing_held_begins_a_record),
        cmocka_unit_test(a_configured_pattern_replaces_the_default),
        cmocka_unit_test(a_json_line_is_never_joined_and_flushes_the_held_record),
        cmocka_unit_test(an_indented_json_line_is_not_joined_either),
        cmocka_unit_test(a_continuation_past_max_lines_begins_the_next_record),
        cmocka_unit_test(a_joined_record_is_capped_at_max_line_and_flagged_truncated),
        cmocka_unit_test(a_truncated_line_flags_the_record_it_joins),
        cmocka_unit_test(flush_sends_the_held_record_as_a_timeout_does),
        cmocka_unit_test(
            the_record_has_its_first_lines_time_and_stream_and_its_last_lines_position),
        cmocka_unit_test(joiners_sharing_a_rule_keep_interleaved_streams_apart),
        cmocka_unit_test(joined_lines_are_counted),
        cmocka_unit_test(a_negative_return_from_emit_is_passed_back),
        cmocka_unit_test(a_bad_pattern_is_reported_with_its_offset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
