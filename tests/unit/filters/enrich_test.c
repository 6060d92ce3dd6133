/*
 * Tests for enrichment: RFC 3339 and epoch times read into UTC nanoseconds
 * and written back, the fields added to a record (@timestamp, stream,
 * environment, kubernetes.* from the downward API, the ECS copies,
 * sample_rate, redacted, truncated), and the rule that a field the record
 * already has is never added a second time.
 *
 * The appended text is compared whole, so the field names, their order and
 * the commas between them are all checked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "enrich.h"

#define SEC 1000000000LL
/* 2024-05-01T08:00:00Z in seconds since the epoch. */
#define T_0800 1714550400LL
#define TS_0800 "\"@timestamp\":\"2024-05-01T08:00:00.000000000Z\""

static const char *const downward_vars[] = {"POD_NAME", "POD_NAMESPACE", "POD_UID",
                                            "POD_IP",   "NODE_NAME",     "CONTAINER_NAME"};

static int clear_downward_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < LV_ARRAY_LEN(downward_vars); i++)
        unsetenv(downward_vars[i]);
    return 0;
}

static void set_downward_env(void)
{
    setenv("POD_NAME", "web-7d4b9c-x2x", 1);
    setenv("POD_NAMESPACE", "shop", 1);
    setenv("POD_UID", "1f0c2a4e-0000-4000-8000-000000000001", 1);
    setenv("NODE_NAME", "node-3", 1);
    setenv("CONTAINER_NAME", "web", 1);
}

/* ---- lv_time_parse ---------------------------------------------------------------- */

static int64_t parse_ok(const char *s, bool *utc)
{
    int64_t ns = -1;
    bool z = false;
    if (lv_time_parse(s, strlen(s), &ns, &z) != 0)
        fail_msg("lv_time_parse rejected \"%s\"", s);
    if (utc)
        *utc = z;
    return ns;
}

static void time_parse_reads_utc_with_z(void **state)
{
    bool utc;
    (void)state;
    assert_int_equal(parse_ok("2024-05-01T08:00:00Z", &utc), T_0800 * SEC);
    assert_true(utc);
    assert_int_equal(parse_ok("1970-01-01T00:00:00Z", NULL), 0);
    assert_int_equal(parse_ok("2000-02-29T23:59:59Z", NULL), 951868799LL * SEC);
    assert_int_equal(parse_ok("1969-12-31T23:59:59Z", NULL), -SEC);
}

static void time_parse_converts_offsets_to_utc(void **state)
{
    bool utc = true;
    (void)state;
    assert_int_equal(parse_ok("2024-05-01T10:00:00+02:00", &utc), T_0800 * SEC);
    assert_false(utc);
    assert_int_equal(parse_ok("2024-05-01T02:30:00-05:30", NULL), T_0800 * SEC);
    assert_int_equal(parse_ok("2024-05-01T08:00:00+00:00", NULL), T_0800 * SEC);
    assert_int_equal(parse_ok("2024-05-01T08:00:00-00:00", NULL), T_0800 * SEC);
    /* Across a day boundary. */
    assert_int_equal(parse_ok("2024-05-02T01:00:00+17:00", NULL), T_0800 * SEC);
}

static void time_parse_reads_fractions_of_zero_to_nine_digits(void **state)
{
    static const struct {
        const char *text;
        int64_t frac;
    } cases[] = {
        {"2024-05-01T08:00:00Z", 0},
        {"2024-05-01T08:00:00.5Z", 500000000},
        {"2024-05-01T08:00:00.12Z", 120000000},
        {"2024-05-01T08:00:00.123Z", 123000000},
        {"2024-05-01T08:00:00.1234Z", 123400000},
        {"2024-05-01T08:00:00.12345Z", 123450000},
        {"2024-05-01T08:00:00.123456Z", 123456000},
        {"2024-05-01T08:00:00.1234567Z", 123456700},
        {"2024-05-01T08:00:00.12345678Z", 123456780},
        {"2024-05-01T08:00:00.123456789Z", 123456789},
        {"2024-05-01T08:00:00.000000001Z", 1},
        {"2024-05-01T10:00:00.999999999+02:00", 999999999},
        /* Digits past nanoseconds are read and dropped. */
        {"2024-05-01T08:00:00.1234567891234Z", 123456789},
        /* ISO 8601 allows a comma. */
        {"2024-05-01T08:00:00,25Z", 250000000},
    };
    (void)state;
    for (size_t i = 0; i < LV_ARRAY_LEN(cases); i++)
        assert_int_equal(parse_ok(cases[i].text, NULL), T_0800 * SEC + cases[i].frac);
}

static void time_parse_accepts_a_space_or_lower_case_t_but_only_t_z_is_normalised(void **state)
{
    bool utc = true;
    (void)state;
    assert_int_equal(parse_ok("2024-05-01 08:00:00.25Z", &utc), T_0800 * SEC + 250000000);
    assert_false(utc);
    assert_int_equal(parse_ok("2024-05-01t08:00:00z", &utc), T_0800 * SEC);
    assert_false(utc);
    assert_int_equal(parse_ok("2024-05-01T08:00:00.25Z", &utc), T_0800 * SEC + 250000000);
    assert_true(utc);
}

static void time_parse_rejects_invalid_inputs(void **state)
{
    static const char *const bad[] = {
        "",
        "2024-05-01",
        "2024-05-01T08:00:00",  /* no zone */
        "2024-05-01T08:00Z",    /* no seconds */
        "2024-05-01X08:00:00Z", /* separator */
        "2024/05/01T08:00:00Z",
        "2024-13-01T08:00:00Z", /* month */
        "2024-00-01T08:00:00Z",
        "2024-05-00T08:00:00Z", /* day */
        "2024-05-32T08:00:00Z",
        "2023-02-29T08:00:00Z",  /* not a leap year */
        "2024-04-31T08:00:00Z",  /* April has 30 days */
        "2024-05-01T24:00:00Z",  /* hour */
        "2024-05-01T08:60:00Z",  /* minute */
        "2024-05-01T08:00:61Z",  /* second */
        "2024-05-01T08:00:00.Z", /* a point without digits */
        "2024-05-01T08:00:00.12x3Z",
        "2024-05-01T08:00:00+0200", /* offset without colon */
        "2024-05-01T08:00:00+02",
        "2024-05-01T08:00:00+24:00",
        "2024-05-01T08:00:00+02:60",
        "2024-05-01T08:00:00Z ", /* trailing text */
        "2024-05-01T08:00:00ZZ",
        "2024-05-01T08:00:00 UTC",
        "+024-05-01T08:00:00Z",
        "2O24-05-01T08:00:00Z",
        "1714550400",
    };
    (void)state;
    for (size_t i = 0; i < LV_ARRAY_LEN(bad); i++) {
        int64_t ns = 42;
        if (lv_time_parse(bad[i], strlen(bad[i]), &ns, NULL) != -EINVAL)
            fail_msg("lv_time_parse accepted \"%s\"", bad[i]);
    }
}

static void time_parse_reads_only_the_given_length(void **state)
{
    int64_t ns;
    (void)state;
    /* The text is not NUL-terminated where the length ends. */
    assert_int_equal(lv_time_parse("2024-05-01T08:00:00Zjunk", 20, &ns, NULL), 0);
    assert_int_equal(ns, T_0800 * SEC);
    assert_int_equal(lv_time_parse("2024-05-01T08:00:00.5Zjunk", 19, &ns, NULL), -EINVAL);
}

/* ---- lv_time_parse_epoch -------------------------------------------------------- */

static void epoch_units_are_told_apart_by_magnitude(void **state)
{
    static const struct {
        const char *text;
        int64_t ns;
    } cases[] = {
        {"1714550400", T_0800 * SEC},
        {"1714550400.5", T_0800 * SEC + 500000000},
        {"1714550400.123456789", T_0800 * SEC + 123456789},
        {"1714550400123", T_0800 * SEC + 123000000},
        {"1714550400123.5", T_0800 * SEC + 123500000},
        {"1714550400123456", T_0800 * SEC + 123456000},
        {"1714550400123456789", T_0800 * SEC + 123456789},
        {"1", SEC},
    };
    (void)state;
    for (size_t i = 0; i < LV_ARRAY_LEN(cases); i++) {
        int64_t ns = -1;
        if (lv_time_parse_epoch(cases[i].text, strlen(cases[i].text), &ns) != 0)
            fail_msg("lv_time_parse_epoch rejected \"%s\"", cases[i].text);
        if (ns != cases[i].ns)
            fail_msg("\"%s\": got %lld, expected %lld", cases[i].text, (long long)ns,
                     (long long)cases[i].ns);
    }
}

static void epoch_rejects_what_is_not_a_positive_number(void **state)
{
    static const char *const bad[] = {
        "",
        "0",
        "-1714550400",
        "abc",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "1e9",
        "0x10",
        " 1714550400",
        "1714550400 ",
        "1.2.3",
        "99999999999999999999",
        "1714550400.",
    };
    (void)state;
    for (size_t i = 0; i < LV_ARRAY_LEN(bad); i++) {
        int64_t ns = 42;
        if (lv_time_parse_epoch(bad[i], strlen(bad[i]), &ns) != -EINVAL)
            fail_msg("lv_time_parse_epoch accepted \"%s\" as %lld", bad[i], (long long)ns);
    }
}

/* ---- lv_time_format --------------------------------------------------------------- */

static void time_format_writes_nanoseconds_in_utc(void **state)
{
    static const struct {
        int64_t ns;
        const char *text;
    } cases[] = {
        {0, "1970-01-01T00:00:00.000000000Z"},
        {T_0800 * SEC + 123456789, "2024-05-01T08:00:00.123456789Z"},
        {T_0800 * SEC + 1, "2024-05-01T08:00:00.000000001Z"},
        {-1, "1969-12-31T23:59:59.999999999Z"},
        {INT64_MAX, "2262-04-11T23:47:16.854775807Z"},
    };
    (void)state;
    for (size_t i = 0; i < LV_ARRAY_LEN(cases); i++) {
        char buf[32];
        size_t n = lv_time_format(cases[i].ns, buf);
        assert_int_equal(n, strlen(cases[i].text));
        assert_memory_equal(buf, cases[i].text, n);
    }
}

static void time_format_and_parse_round_trip(void **state)
{
    (void)state;
    for (int64_t t = 7; t < 2000000000LL * SEC; t = t * 3 + 987654321) {
        for (int64_t ns = -t; ns <= t; ns += 2 * t) {
            char buf[32];
            int64_t back;
            bool utc;
            size_t n = lv_time_format(ns, buf);
            assert_int_equal(lv_time_parse(buf, n, &back, &utc), 0);
            assert_int_equal(back, ns);
            assert_true(utc);
        }
    }
}

/* ---- enrichment ------------------------------------------------------------------- */

struct fixture {
    struct lv_conf conf;
    struct lv_enricher *e;
    struct lv_buf out;
};

static void fixture_open(struct fixture *fx, const char *env)
{
    lv_conf_defaults(&fx->conf, env);
    lv_buf_init(&fx->out, 256, 0);
    fx->e = NULL;
}

static void fixture_start(struct fixture *fx)
{
    fx->e = lv_enrich_new(&fx->conf);
    assert_non_null(fx->e);
}

static void fixture_close(struct fixture *fx)
{
    lv_enrich_free(fx->e);
    lv_conf_free(&fx->conf);
    lv_buf_free(&fx->out);
}

static struct lv_enrich_in input_at(int64_t ns)
{
    return (struct lv_enrich_in){.time_ns = ns, .stream = LV_STREAM_STDOUT, .sample_rate = 1.0};
}

/* Appends to a fresh buffer and checks the whole text. */
static void assert_appends(struct fixture *fx, const struct lv_enrich_in *in, bool first,
                           const char *want)
{
    fx->out.len = 0;
    assert_int_equal(lv_enrich_append(fx->e, in, first, &fx->out), 0);
    assert_int_equal(lv_buf_putc(&fx->out, '\0'), 0);
    assert_string_equal(fx->out.data, want);
}

static void record_outside_kubernetes_gets_time_stream_environment_and_rate(void **state)
{
    struct fixture fx;
    (void)state;
    fixture_open(&fx, "production");
    fixture_start(&fx);
    struct lv_enrich_in in = input_at(T_0800 * SEC + 5);
    in.stream = LV_STREAM_STDERR;
    in.sample_rate = 0.01;
    assert_appends(&fx, &in, false,
                   ",\"@timestamp\":\"2024-05-01T08:00:00.000000005Z\",\"stream\":\"stderr\","
                   "\"environment\":\"production\",\"sample_rate\":0.01");
    fixture_close(&fx);
}

static void kubernetes_fields_come_from_the_downward_api_environment(void **state)
{
    struct fixture fx;
    (void)state;
    set_downward_env();
    fixture_open(&fx, "staging");
    fixture_start(&fx);
    struct lv_enrich_in in = input_at(T_0800 * SEC);
    assert_appends(&fx, &in, false,
                   "," TS_0800 ",\"stream\":\"stdout\",\"environment\":\"staging\","
                   "\"kubernetes\":{\"namespace\":\"shop\",\"pod\":{\"name\":\"web-7d4b9c-x2x\","
                   "\"uid\":\"1f0c2a4e-0000-4000-8000-000000000001\"},\"node\":{\"name\":"
                   "\"node-3\"},\"container\":{\"name\":\"web\"}},\"sample_rate\":1");
    fixture_close(&fx);
}

static void pod_ip_is_added_when_set_and_empty_variables_are_left_out(void **state)
{
    struct fixture fx;
    (void)state;
    setenv("POD_NAME", "api-0", 1);
    setenv("POD_IP", "10.1.2.3", 1);
    setenv("POD_NAMESPACE", "", 1);
    setenv("NODE_NAME", "", 1);
    fixture_open(&fx, "production");
    fx.conf.enrich.ecs = false;
    fixture_start(&fx);
    struct lv_enrich_in in = input_at(T_0800 * SEC);
    in.has = LV_HAS_TIMESTAMP | LV_HAS_STREAM | LV_HAS_ENVIRONMENT | LV_HAS_SAMPLE_RATE;
    assert_appends(&fx, &in, false,
                   ",\"kubernetes\":{\"pod\":{\"name\":\"api-0\",\"ip\":\"10.1.2.3\"}}");
    fixture_close(&fx);
}

static char labels_path[64];

static void write_labels(const char *text)
{
    snprintf(labels_path, sizeof labels_path, "/tmp/lv_enrich_labels_XXXXXX");
    int fd = mkstemp(labels_path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static void set_labels_file(struct fixture *fx, const char *path)
{
    free(fx->conf.enrich.labels_file);
    fx->conf.enrich.labels_file = strdup(path);
}

static void labels_file_adds_kubernetes_labels(void **state)
{
    struct fixture fx;
    (void)state;
    set_downward_env();
    write_labels("app=\"web\"\ntier=\"backend\"\n");
    fixture_open(&fx, "production");
    set_labels_file(&fx, labels_path);
    fixture_start(&fx);
    unlink(labels_path);
    struct lv_enrich_in in = input_at(T_0800 * SEC);
    in.has = LV_HAS_TIMESTAMP | LV_HAS_STREAM | LV_HAS_ENVIRONMENT | LV_HAS_SAMPLE_RATE;
    assert_appends(&fx, &in, false,
                   ",\"kubernetes\":{\"namespace\":\"shop\",\"pod\":{\"name\":\"web-7d4b9c-x2x\","
                   "\"uid\":\"1f0c2a4e-0000-4000-8000-000000000001\"},\"node\":{\"name\":"
                   "\"node-3\"},\"container\":{\"name\":\"web\"},\"labels\":{\"app\":\"web\","
                   "\"tier\":\"backend\"}}");
    fixture_close(&fx);
}

/* The kubelet writes label values with Go's %q: quotes and backslashes are
 * escaped, and the JSON must carry the value, not its Go spelling. */
static void go_quoted_label_values_are_unquoted(void **state)
{
    struct fixture fx;
    (void)state;
    write_labels("app.kubernetes.io/name=\"web\"\nnote=\"say \\\"hi\\\" \\\\o/\"\n"
                 "multi=\"a\\nb\\tc\"\nempty=\"\"\nuni=\"caf\\u00e9 \\x41 \\q\"\n");
    fixture_open(&fx, "production");
    set_labels_file(&fx, labels_path);
    fixture_start(&fx);
    unlink(labels_path);
    struct lv_enrich_in in = input_at(T_0800 * SEC);
    in.has = LV_HAS_TIMESTAMP | LV_HAS_STREAM | LV_HAS_ENVIRONMENT | LV_HAS_SAMPLE_RATE;
    assert_appends(
        &fx, &in, false,
        ",\"kubernetes\":{\"labels\":{\"app.kubernetes.io/name\":\"web\","
        "\"note\":\"say \\\"hi\\\" \\\\o/\",\"multi\":\"a\\nb\\tc\",\"empty\":\"\",\"uni\":"
        "\"caf\xc3\xa9 A \\\\q\"}}");
    fixture_close(&fx);
}

static void unreadable_labels_file_leaves_the_other_kubernetes_fields(void **state)
{
    struct fixture fx;
    (void)state;
    setenv("POD_NAME", "api-0", 1);
    fixture_open(&fx, "production");
    set_labels_file(&fx, "/nonexistent/logveil/labels");
    lv_log_set_level(LV_LOG_ERROR); /* the warning is expected */
    fixture_start(&fx);
    lv_log_set_level(LV_LOG_INFO);
    struct lv_enrich_in in = input_at(T_0800 * SEC);
    in.has = LV_HAS_TIMESTAMP | LV_HAS_STREAM | LV_HAS_ENVIRONMENT | LV_HAS_SAMPLE_RATE;
    assert_appends(&fx, &in, false, ",\"kubernetes\":{\"pod\":{\"name\":\"api-0\"}}");
    fixture_close(&fx);
}

static void kubernetes_off_adds_nothing_even_in_a_pod(void **state)
{
    struct fixture fx;
    (void)state;
    set_downward_env();
    fixture_open(&fx, "production");
    fx.conf.enrich.kubernetes = false;
    fixture_start(&fx);
    struct lv_enrich_in in = input_at(T_0800 * SEC);
    in.has = LV_HAS_TIMESTAMP | LV_HAS_STREAM | LV_HAS_SAMPLE_RATE;
    assert_appends(&fx, &in, false, ",\"environment\":\"production\"");
    fixture_close(&fx);
}

static void fields_the_record_already_has_are_not_added_again(void **state)
{
    struct fixture fx;
    (void)state;
    set_downward_env();
    fixture_open(&fx, "production");
    fixture_start(&fx);
    struct lv_enrich_in in = input_at(T_0800 * SEC);
    in.level = LV_LEVEL_ERROR;
    in.trace_id = "abc";
    in.trace_len = 3;
    in.redactions = 2;
    in.has = LV_HAS_TIMESTAMP | LV_HAS_STREAM | LV_HAS_ENVIRONMENT | LV_HAS_KUBERNETES |
             LV_HAS_LOG | LV_HAS_TRACE | LV_HAS_SAMPLE_RATE | LV_HAS_REDACTED;
    assert_appends(&fx, &in, false, "");
    assert_appends(&fx, &in, true, "");
    /* One by one: each flag removes exactly its own field. */
    in.has &= ~(unsigned)LV_HAS_TRACE;
    assert_appends(&fx, &in, false, ",\"trace\":{\"id\":\"abc\"}");
    in.has = LV_HAS_TIMESTAMP | LV_HAS_STREAM | LV_HAS_KUBERNETES | LV_HAS_LOG | LV_HAS_TRACE |
             LV_HAS_SAMPLE_RATE;
    assert_appends(&fx, &in, true, "\"environment\":\"production\",\"redacted\":2");
    fixture_close(&fx);
}

static void ecs_copies_are_log_level_in_lower_case_and_trace_id(void **state)
{
    static const struct {
        enum lv_level level;
        const char *name;
    } levels[] = {
        {LV_LEVEL_TRACE, "trace"}, {LV_LEVEL_DEBUG, "debug"}, {LV_LEVEL_INFO, "info"},
        {LV_LEVEL_WARN, "warn"},   {LV_LEVEL_ERROR, "error"}, {LV_LEVEL_FATAL, "fatal"},
    };
    struct fixture fx;
    (void)state;
    fixture_open(&fx, "production");
    fixture_start(&fx);
    for (size_t i = 0; i < LV_ARRAY_LEN(levels); i++) {
        struct lv_enrich_in in = input_at(T_0800 * SEC);
        in.level = levels[i].level;
        in.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736\"x";
        in.trace_len = 34;
        in.has = LV_HAS_TIMESTAMP | LV_HAS_STREAM | LV_HAS_ENVIRONMENT | LV_HAS_SAMPLE_RATE;
        char want[256];
        snprintf(want, sizeof want,
                 "\"log\":{\"level\":\"%s\"},\"trace\":{\"id\":"
                 "\"4bf92f3577b34da6a3ce929d0e0e4736\\\"x\"}",
                 levels[i].name);
        assert_appends(&fx, &in, true, want);
    }
    /* No level known, no trace id: nothing to copy. */
    struct lv_enrich_in in = input_at(T_0800 * SEC);
    in.has = LV_HAS_TIMESTAMP | LV_HAS_STREAM | LV_HAS_ENVIRONMENT | LV_HAS_SAMPLE_RATE;
    assert_appends(&fx, &in, true, "");
    fixture_close(&fx);
}

static void ecs_off_adds_no_copies(void **state)
{
    struct fixture fx;
    (void)state;
    fixture_open(&fx, "production");
    fx.conf.enrich.ecs = false;
    fixture_start(&fx);
    struct lv_enrich_in in = input_at(T_0800 * SEC);
    in.level = LV_LEVEL_INFO;
    in.trace_id = "t";
    in.trace_len = 1;
    in.has = LV_HAS_TIMESTAMP | LV_HAS_STREAM | LV_HAS_ENVIRONMENT | LV_HAS_SAMPLE_RATE;
    assert_appends(&fx, &in, true, "");
    fixture_close(&fx);
}

static void sample_rate_is_written_as_a_short_number(void **state)
{
    static const struct {
        double rate;
        const char *text;
    } cases[] = {
        {1.0, "\"sample_rate\":1"},     {0.01, "\"sample_rate\":0.01"},
        {0.1, "\"sample_rate\":0.1"},   {0.5, "\"sample_rate\":0.5"},
        {0.01, "\"sample_rate\":0.01"}, {0.001, "\"sample_rate\":0.001"},
        {0.25, "\"sample_rate\":0.25"}, {1.0, "\"sample_rate\":1"},
    };
    struct fixture fx;
    (void)state;
    fixture_open(&fx, "production");
    fixture_start(&fx);
    for (size_t i = 0; i < LV_ARRAY_LEN(cases); i++) {
        struct lv_enrich_in in = input_at(T_0800 * SEC);
        in.sample_rate = cases[i].rate;
        in.has = LV_HAS_TIMESTAMP | LV_HAS_STREAM | LV_HAS_ENVIRONMENT;
        assert_appends(&fx, &in, true, cases[i].text);
    }
    fixture_close(&fx);
}

static void first_field_has_no_leading_comma_and_later_ones_do(void **state)
{
    struct fixture fx;
    (void)state;
    set_downward_env();
    fixture_open(&fx, "production");
    fixture_start(&fx);
    struct lv_enrich_in in = input_at(T_0800 * SEC);
    assert_appends(&fx, &in, true,
                   TS_0800
                   ",\"stream\":\"stdout\",\"environment\":\"production\","
                   "\"kubernetes\":{\"namespace\":\"shop\",\"pod\":{\"name\":\"web-7d4b9c-x2x\","
                   "\"uid\":\"1f0c2a4e-0000-4000-8000-000000000001\"},\"node\":{\"name\":"
                   "\"node-3\"},\"container\":{\"name\":\"web\"}},\"sample_rate\":1");
    /* Each constant fragment may come first. */
    in.has = LV_HAS_TIMESTAMP | LV_HAS_STREAM;
    assert_appends(&fx, &in, true,
                   "\"environment\":\"production\",\"kubernetes\":{\"namespace\":\"shop\","
                   "\"pod\":{\"name\":\"web-7d4b9c-x2x\",\"uid\":"
                   "\"1f0c2a4e-0000-4000-8000-000000000001\"},\"node\":{\"name\":\"node-3\"},"
                   "\"container\":{\"name\":\"web\"}},\"sample_rate\":1");
    in.has = LV_HAS_TIMESTAMP | LV_HAS_STREAM | LV_HAS_ENVIRONMENT | LV_HAS_SAMPLE_RATE;
    in.truncated = true;
    fx.out.len = 0;
    assert_int_equal(lv_enrich_append(fx.e, &in, true, &fx.out), 0);
    assert_true(fx.out.len > 0 && fx.out.data[0] == '"');
    in.has |= LV_HAS_KUBERNETES;
    assert_appends(&fx, &in, true, "\"truncated\":true");
    assert_appends(&fx, &in, false, ",\"truncated\":true");
    fixture_close(&fx);
}

static void redacted_count_and_truncated_flag_are_added_when_they_apply(void **state)
{
    struct fixture fx;
    (void)state;
    fixture_open(&fx, "production");
    fixture_start(&fx);
    struct lv_enrich_in in = input_at(T_0800 * SEC);
    in.has = LV_HAS_TIMESTAMP | LV_HAS_STREAM | LV_HAS_ENVIRONMENT | LV_HAS_SAMPLE_RATE;
    in.redactions = 3;
    in.truncated = true;
    assert_appends(&fx, &in, false, ",\"redacted\":3,\"truncated\":true");
    in.redactions = 0;
    in.truncated = false;
    assert_appends(&fx, &in, false, "");
    fixture_close(&fx);
}

static void configured_field_names_are_used_and_an_empty_environment_field_omits_it(void **state)
{
    struct fixture fx;
    (void)state;
    fixture_open(&fx, "production");
    free(fx.conf.enrich.timestamp_field);
    fx.conf.enrich.timestamp_field = strdup("ts\"utc");
    free(fx.conf.enrich.stream_field);
    fx.conf.enrich.stream_field = strdup("log.stream");
    free(fx.conf.enrich.environment_field);
    fx.conf.enrich.environment_field = strdup("");
    fixture_start(&fx);
    assert_string_equal(lv_enrich_timestamp_field(fx.e), "\"ts\\\"utc\":");
    struct lv_enrich_in in = input_at(T_0800 * SEC);
    assert_appends(&fx, &in, true,
                   "\"ts\\\"utc\":\"2024-05-01T08:00:00.000000000Z\",\"log.stream\":\"stdout\","
                   "\"sample_rate\":1");
    fixture_close(&fx);
}

static void times_within_one_second_and_across_seconds_are_written_exactly(void **state)
{
    struct fixture fx;
    (void)state;
    fixture_open(&fx, "production");
    fixture_start(&fx);
    static const struct {
        int64_t ns;
        const char *text;
    } cases[] = {
        {T_0800 * SEC + 1, "2024-05-01T08:00:00.000000001Z"},
        {T_0800 * SEC + 999999999, "2024-05-01T08:00:00.999999999Z"},
        {T_0800 * SEC + SEC, "2024-05-01T08:00:01.000000000Z"},
        {T_0800 * SEC + 1, "2024-05-01T08:00:00.000000001Z"},
        {-1, "1969-12-31T23:59:59.999999999Z"},
    };
    for (size_t i = 0; i < LV_ARRAY_LEN(cases); i++) {
        struct lv_enrich_in in = input_at(cases[i].ns);
        in.has = LV_HAS_STREAM | LV_HAS_ENVIRONMENT | LV_HAS_SAMPLE_RATE;
        char want[80];
        snprintf(want, sizeof want, "\"@timestamp\":\"%s\"", cases[i].text);
        assert_appends(&fx, &in, true, want);
    }
    fixture_close(&fx);
}

static void append_into_a_full_buffer_fails_with_enobufs(void **state)
{
    struct fixture fx;
    (void)state;
    fixture_open(&fx, "production");
    fixture_start(&fx);
    struct lv_buf small;
    lv_buf_init(&small, 8, 16);
    struct lv_enrich_in in = input_at(T_0800 * SEC);
    assert_int_equal(lv_enrich_append(fx.e, &in, false, &small), -ENOBUFS);
    assert_true(small.len <= 16);
    lv_buf_free(&small);
    fixture_close(&fx);
}

#define T(f) cmocka_unit_test_setup(f, clear_downward_env)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(time_parse_reads_utc_with_z),
        T(time_parse_converts_offsets_to_utc),
        T(time_parse_reads_fractions_of_zero_to_nine_digits),
        T(time_parse_accepts_a_space_or_lower_case_t_but_only_t_z_is_normalised),
        T(time_parse_rejects_invalid_inputs),
        T(time_parse_reads_only_the_given_length),
        T(epoch_units_are_told_apart_by_magnitude),
        T(epoch_rejects_what_is_not_a_positive_number),
        T(time_format_writes_nanoseconds_in_utc),
        T(time_format_and_parse_round_trip),
        T(record_outside_kubernetes_gets_time_stream_environment_and_rate),
        T(kubernetes_fields_come_from_the_downward_api_environment),
        T(pod_ip_is_added_when_set_and_empty_variables_are_left_out),
        T(labels_file_adds_kubernetes_labels),
        T(go_quoted_label_values_are_unquoted),
        T(unreadable_labels_file_leaves_the_other_kubernetes_fields),
        T(kubernetes_off_adds_nothing_even_in_a_pod),
        T(fields_the_record_already_has_are_not_added_again),
        T(ecs_copies_are_log_level_in_lower_case_and_trace_id),
        T(ecs_off_adds_no_copies),
        T(sample_rate_is_written_as_a_short_number),
        T(first_field_has_no_leading_comma_and_later_ones_do),
        T(redacted_count_and_truncated_flag_are_added_when_they_apply),
        T(configured_field_names_are_used_and_an_empty_environment_field_omits_it),
        T(times_within_one_second_and_across_seconds_are_written_exactly),
        T(append_into_a_full_buffer_fails_with_enobufs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
