/*
 * Tests for level detection: the words (any case, whole words only), the
 * numbers by field kind (pino/bunyan, syslog), slog's offsets, the kind of
 * a field given by name, and the head of text lines: prefixes passed over,
 * logfmt keys, klog and Ruby letters, crash first lines, joined records.
 *
 * The expectations come from the loggers' documentation (see
 * tests/cases/loggers.cases for whole lines), not from the tables under
 * test; each table row here is one claim of the README's "Levels" section.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "level.h"
#include "logveil/util.h"

#define L(x) LV_LEVEL_##x

struct text_case {
    const char *text;
    enum lv_level level;
};

static void assert_text_cases(const struct text_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        enum lv_level got = lv_level_text(cases[i].text, strlen(cases[i].text));
        if (got != cases[i].level)
            fail_msg("\"%s\": %s, expected %s", cases[i].text, lv_level_name(got),
                     lv_level_name(cases[i].level));
    }
}

static enum lv_level value(enum lv_level_kind kind, const char *s)
{
    return lv_level_value(kind, s, strlen(s));
}

/* ---- words ------------------------------------------------------------------------------ */

static void the_words_issue_13_names_map_to_their_levels_in_any_case(void **state)
{
    static const struct text_case words[] = {
        {"warning", L(WARN)},     {"WARNING", L(WARN)},       {"Warning", L(WARN)},
        {"critical", L(FATAL)},   {"crit", L(FATAL)},         {"alert", L(FATAL)},
        {"emerg", L(FATAL)},      {"err", L(ERROR)},          {"eror", L(ERROR)},
        {"dpanic", L(ERROR)},     {"panic", L(FATAL)},        {"information", L(INFO)},
        {"Information", L(INFO)}, {"verbose", L(TRACE)},      {"notice", L(INFO)},
        {"TRACE", L(TRACE)},      {"Debug", L(DEBUG)},        {"info", L(INFO)},
        {"WARN", L(WARN)},        {"error", L(ERROR)},        {"FATAL", L(FATAL)},
        {"fail", L(ERROR)},       {"http", L(INFO)},          {"silly", L(TRACE)},
        {"SEVERE", L(ERROR)},     {"emergency", L(FATAL)},    {"informational", L(INFO)},
        {"TRC", L(TRACE)},        {"DBG", L(DEBUG)},          {"INF", L(INFO)},
        {"WRN", L(WARN)},         {"ERR", L(ERROR)},          {"FTL", L(FATAL)},
        {"dbug", L(DEBUG)},       {"trce", L(TRACE)},         {"ERRO", L(ERROR)},
    };
    (void)state;
    for (size_t i = 0; i < LV_ARRAY_LEN(words); i++) {
        const char *w = words[i].text;
        assert_int_equal(lv_level_parse(w, strlen(w)), words[i].level);
        assert_int_equal(value(LV_LEVEL_PINO, w), words[i].level);
        assert_int_equal(value(LV_LEVEL_SYSLOG, w), words[i].level);
    }
}

static void only_whole_words_are_levels(void **state)
{
    static const char *const not_levels[] = {
        "", "errors", "warnings", "info2", " info", "info ", "inform", "debugger",
        "informationalxxxxxxx", "e", "default", "log", "levels",
    };
    (void)state;
    for (size_t i = 0; i < LV_ARRAY_LEN(not_levels); i++) {
        const char *w = not_levels[i];
        assert_int_equal(lv_level_parse(w, strlen(w)), L(UNKNOWN));
        assert_int_equal(value(LV_LEVEL_PINO, w), L(UNKNOWN));
    }
}

/* ---- numbers ---------------------------------------------------------------------------- */

static void pino_and_bunyan_numbers_are_read_by_tens(void **state)
{
    static const struct text_case numbers[] = {
        {"10", L(TRACE)}, {"20", L(DEBUG)},   {"30", L(INFO)},     {"35", L(INFO)},
        {"40", L(WARN)},  {"50", L(ERROR)},   {"59", L(ERROR)},    {"60", L(FATAL)},
        {"70", L(FATAL)}, {"9", L(UNKNOWN)},  {"0", L(UNKNOWN)},   {"3", L(UNKNOWN)},
        {"-50", L(UNKNOWN)}, {"50.5", L(UNKNOWN)}, {"5e1", L(UNKNOWN)},
        {"1234567890", L(UNKNOWN)},
    };
    (void)state;
    for (size_t i = 0; i < LV_ARRAY_LEN(numbers); i++)
        if (value(LV_LEVEL_PINO, numbers[i].text) != numbers[i].level)
            fail_msg("pino %s", numbers[i].text);
}

static void syslog_severities_are_read_in_severity_fields(void **state)
{
    static const enum lv_level severities[] = {L(FATAL), L(FATAL), L(FATAL), L(ERROR),
                                               L(WARN),  L(INFO),  L(INFO),  L(DEBUG)};
    char num[4];
    (void)state;
    for (int i = 0; i < 8; i++) {
        snprintf(num, sizeof num, "%d", i);
        assert_int_equal(value(LV_LEVEL_SYSLOG, num), severities[i]);
    }
    assert_int_equal(value(LV_LEVEL_SYSLOG, "8"), L(UNKNOWN));
    assert_int_equal(value(LV_LEVEL_SYSLOG, "30"), L(UNKNOWN));
    assert_int_equal(value(LV_LEVEL_PINO, "3"), L(UNKNOWN));
}

/* OpenTelemetry's data model: SeverityNumber 1-24, four to a level. */
static void otel_severity_numbers_are_read_by_fours(void **state)
{
    static const enum lv_level levels[] = {L(TRACE), L(DEBUG), L(INFO), L(WARN), L(ERROR), L(FATAL)};
    char num[4];
    (void)state;
    for (int n = 1; n <= 24; n++) {
        snprintf(num, sizeof num, "%d", n);
        if (value(LV_LEVEL_OTEL, num) != levels[(n - 1) / 4])
            fail_msg("severity number %d", n);
    }
    assert_int_equal(value(LV_LEVEL_OTEL, "0"), L(UNKNOWN)); /* UNSPECIFIED */
    assert_int_equal(value(LV_LEVEL_OTEL, "25"), L(UNKNOWN));
    assert_int_equal(value(LV_LEVEL_OTEL, "ERROR"), L(ERROR));
    assert_int_equal(lv_level_kind_of("severity_number", 15), LV_LEVEL_OTEL);
    assert_int_equal(lv_level_kind_of("SeverityNumber", 14), LV_LEVEL_OTEL);
    assert_int_equal(lv_level_kind_of("severityText", 12), LV_LEVEL_PINO);
}

/* MongoDB's "s": exactly its letters; no words in so short a field. */
static void mongodb_severity_letters_only(void **state)
{
    static const struct {
        const char *text;
        enum lv_level level;
    } cases[] = {
        {"F", L(FATAL)},   {"E", L(ERROR)},   {"W", L(WARN)},    {"I", L(INFO)},
        {"D", L(DEBUG)},   {"D1", L(DEBUG)},  {"D5", L(DEBUG)},  {"D6", L(UNKNOWN)},
        {"D0", L(UNKNOWN)}, {"e", L(UNKNOWN)}, {"EE", L(UNKNOWN)}, {"error", L(UNKNOWN)},
        {"I1", L(UNKNOWN)}, {"", L(UNKNOWN)},  {"X", L(UNKNOWN)},
    };
    (void)state;
    for (size_t i = 0; i < LV_ARRAY_LEN(cases); i++)
        if (value(LV_LEVEL_MONGO, cases[i].text) != cases[i].level)
            fail_msg("mongo %s", cases[i].text);
    assert_int_equal(lv_level_kind_of("s", 1), LV_LEVEL_MONGO);
}

static void slog_offsets_name_the_level_below(void **state)
{
    (void)state;
    assert_int_equal(value(LV_LEVEL_PINO, "ERROR+4"), L(ERROR));
    assert_int_equal(value(LV_LEVEL_PINO, "INFO+2"), L(INFO));
    assert_int_equal(value(LV_LEVEL_PINO, "WARN+1"), L(WARN));
    assert_int_equal(value(LV_LEVEL_PINO, "DEBUG-4"), L(TRACE));
    assert_int_equal(value(LV_LEVEL_PINO, "ERROR+"), L(UNKNOWN));
    assert_int_equal(value(LV_LEVEL_PINO, "+4"), L(UNKNOWN));
    assert_int_equal(value(LV_LEVEL_PINO, "LOUD+4"), L(UNKNOWN));
}

static void a_serilog_template_field_means_info_whatever_its_value(void **state)
{
    (void)state;
    assert_int_equal(value(LV_LEVEL_PRESENT_INFO, "Order {Id} failed"), L(INFO));
    assert_int_equal(value(LV_LEVEL_PRESENT_INFO, "error"), L(INFO));
}

/* ---- fields ----------------------------------------------------------------------------- */

static void a_field_kind_comes_from_the_table_else_from_its_name(void **state)
{
    static const struct {
        const char *name;
        enum lv_level_kind kind;
    } names[] = {
        {"level", LV_LEVEL_PINO},           {"Level", LV_LEVEL_PINO},
        {"lvl", LV_LEVEL_PINO},             {"severity", LV_LEVEL_SYSLOG},
        {"Severity", LV_LEVEL_SYSLOG},      {"syslog.severity", LV_LEVEL_SYSLOG},
        {"event.severity", LV_LEVEL_SYSLOG}, {"custom_level", LV_LEVEL_PINO},
        {"@mt", LV_LEVEL_PRESENT_INFO},     {"@m", LV_LEVEL_PRESENT_INFO},
        {"@l", LV_LEVEL_PINO},
    };
    (void)state;
    for (size_t i = 0; i < LV_ARRAY_LEN(names); i++)
        if (lv_level_kind_of(names[i].name, strlen(names[i].name)) != names[i].kind)
            fail_msg("kind of %s", names[i].name);
}

static void the_table_holds_every_field_issue_13_names(void **state)
{
    static const char *const wanted[] = {"level", "log.level", "severity",        "levelname",
                                         "loglevel", "lvl",     "@l", "syslog.severity"};
    size_t n;
    const struct lv_level_field *f = lv_level_fields(&n);
    (void)state;
    for (size_t i = 0; i < LV_ARRAY_LEN(wanted); i++) {
        bool found = false;
        for (size_t k = 0; k < n; k++)
            found |= strcmp(f[k].name, wanted[i]) == 0;
        if (!found)
            fail_msg("no field %s", wanted[i]);
    }
}

/* ---- text ------------------------------------------------------------------------------- */

static void a_level_word_is_read_after_times_pids_and_bracketed_names(void **state)
{
    static const struct text_case cases[] = {
        {"INFO  starting worker 3", L(INFO)},
        {"[WARN] disk 91% full", L(WARN)},
        {"<error> boom", L(ERROR)},
        {"Error handling request", L(ERROR)},
        {"2024-01-05 12:00:00,123 - ERROR - boom", L(ERROR)},
        {"[2024-01-05 12:00:00 +0000] [1] [ERROR] Worker timeout", L(ERROR)},
        {"2024-01-05T12:00:00.000000Z 0 [Warning] [MY-010068] [Server] CA certificate", L(WARN)},
        {"1 2 3 4 5 ERROR six tokens in", L(ERROR)},
        {"1 2 3 4 5 6 ERROR seven tokens in", L(UNKNOWN)},
        {"12:00:00 [main] [req-1]: FATAL x", L(FATAL)},
        {"ERROR\r", L(ERROR)},
        {"\x1b[31mERROR\x1b[0m boom", L(ERROR)},
        {"\x1b[90m12:00PM\x1b[0m \x1b[31mERR\x1b[0m boom", L(ERROR)},
        {"(node:7) Warning: Closing file descriptor 5 on garbage collection", L(WARN)},
        /* Python's logging cookbook: the logger's name between separators. */
        {"2024-01-05 12:00:00,123 - myapp - ERROR - payment failed", L(ERROR)},
        {"2024-01-05 12:00:00,123 - uvicorn.error - WARNING - slow", L(WARN)},
        {"12:00:00 | app.db | CRITICAL | gone", L(FATAL)},
        {"2024-01-05 12:00:00,123 - myapp ERROR - no separator after the name", L(UNKNOWN)},
        {"2024-01-05 12:00:00,123 - myapp | ERROR - two different separators", L(UNKNOWN)},
        {"12:00 - user - reported an error", L(UNKNOWN)},
        {"myapp - ERROR - no separator before the name", L(UNKNOWN)},
    };
    (void)state;
    assert_text_cases(cases, LV_ARRAY_LEN(cases));
}

static void prose_is_not_read_as_a_level(void **state)
{
    static const struct text_case cases[] = {
        {"", L(UNKNOWN)},
        {"user reported an error", L(UNKNOWN)},
        {"Errors: 0", L(UNKNOWN)},
        {"2024/01/05 12:00:00 listening on :8080", L(UNKNOWN)},
        {"http: TLS handshake error from 10.0.0.1:5555: EOF", L(UNKNOWN)},
        {"error-prone path taken", L(UNKNOWN)},
        {"3Error: not a class", L(UNKNOWN)},
        {"NoSuchElementException thrown by the iterator", L(UNKNOWN)},
        {"app.rb:3:in `m': boom", L(UNKNOWN)},
        {"E12 boom", L(UNKNOWN)},
    };
    (void)state;
    assert_text_cases(cases, LV_ARRAY_LEN(cases));
}

static void a_level_past_the_first_160_bytes_is_not_looked_for(void **state)
{
    char line[256];
    (void)state;
    memset(line, ' ', sizeof line);
    memcpy(line + 170, "ERROR", 5);
    assert_int_equal(lv_level_text(line, 175), L(UNKNOWN));
    memcpy(line + 100, "ERROR", 5);
    assert_int_equal(lv_level_text(line, 175), L(ERROR));
}

static void logfmt_level_keys_are_read_from_the_field_table(void **state)
{
    static const struct text_case cases[] = {
        {"ts=1 lvl=warn msg=x", L(WARN)},
        {"time=\"2024-01-05T12:00:00Z\" level=\"error\" msg=\"x y\"", L(ERROR)},
        {"time=2024-01-05T12:00:00Z level=WARN+2 msg=x", L(WARN)},
        {"foo=bar level=50 msg=pino", L(ERROR)},
        {"severity=3 msg=syslog", L(ERROR)},
        {"Level=Information msg=x", L(INFO)},
        {"msg=\"level=debug is set\" level=error", L(ERROR)},
        {"msg=x", L(UNKNOWN)},
        {"mylevel=error msg=x", L(UNKNOWN)},
        {"@mt=template msg=x", L(UNKNOWN)},
    };
    (void)state;
    assert_text_cases(cases, LV_ARRAY_LEN(cases));
}

static void klog_and_ruby_logger_letters_give_the_level(void **state)
{
    static const struct text_case cases[] = {
        {"E1205 12:00:00.000000       1 main.go:10] failed to sync", L(ERROR)},
        {"W1205 12:00:00.000000       1 main.go:10] deprecated", L(WARN)},
        {"I1205 12:00:00.000000       1 main.go:10] started", L(INFO)},
        {"F1205 12:00:00.000000       1 main.go:10] cannot start", L(FATAL)},
        {"E, [2024-01-05T12:00:00.123456 #1] ERROR -- app: boom", L(ERROR)},
        {"W, [2024-01-05T12:00:00.123456 #1]  WARN -- app: slow", L(WARN)},
        {"D, [2024-01-05T12:00:00.123456 #1] DEBUG -- app: x", L(DEBUG)},
        {"A, [2024-01-05T12:00:00.123456 #1]   ANY -- app: x", L(UNKNOWN)},
    };
    (void)state;
    assert_text_cases(cases, LV_ARRAY_LEN(cases));
}

static void crash_first_lines_are_error_or_fatal(void **state)
{
    static const struct text_case cases[] = {
        {"Exception in thread \"main\" java.lang.NullPointerException", L(ERROR)},
        {"java.lang.NullPointerException", L(ERROR)},
        {"com.example.OrderException: boom", L(ERROR)},
        {"java.lang.OutOfMemoryError: Java heap space", L(ERROR)},
        {"Caused by: java.io.IOException: reset", L(ERROR)},
        {"panic: runtime error: index out of range [3] with length 3", L(FATAL)},
        {"PANIC: upper case too", L(FATAL)},
        {"fatal error: all goroutines are asleep - deadlock!", L(FATAL)},
        {"Traceback (most recent call last):", L(ERROR)},
        {"ValueError: invalid literal", L(ERROR)},
        {"Uncaught ReferenceError: x is not defined", L(ERROR)},
        {"uncaughtException: boom", L(ERROR)},
        {"[UnhandledPromiseRejection: This error originated ...] {", L(ERROR)},
        {"(node:12) UnhandledPromiseRejectionWarning: Error: boom", L(ERROR)},
        {"Unhandled exception. System.IO.FileNotFoundException: x", L(ERROR)},
        {"Unhandled Exception: System.NullReferenceException: x", L(ERROR)},
        {"app.rb:3:in `/': divided by 0 (ZeroDivisionError)", L(ERROR)},
        {"/srv/app.rb:123:in 'Integer#/': divided by 0 (ZeroDivisionError)", L(ERROR)},
    };
    (void)state;
    assert_text_cases(cases, LV_ARRAY_LEN(cases));
}

static void a_joined_record_keeps_its_first_lines_level_else_takes_a_crash_below(void **state)
{
    static const struct text_case cases[] = {
        {"INFO retried\njava.io.IOException: reset\n\tat A.b(A.java:1)", L(INFO)},
        {"WARN retrying\nTraceback (most recent call last):\nKeyError: 'x'", L(WARN)},
        {"request 7 aborted\n\tat A.b(A.java:1)\nCaused by: java.io.IOException: x", L(ERROR)},
        {"worker exiting\nTraceback (most recent call last):\n  File \"a.py\"", L(ERROR)},
        {"request 7 aborted\n\tat A.b(A.java:1)", L(UNKNOWN)},
        {"first line\nERROR is a word, not a crash", L(UNKNOWN)},
        {"first line\n  ValueError: indented, so a frame's text", L(UNKNOWN)},
        {"\nTypeError: x\n    at f (a.js:1:1)", L(ERROR)},
    };
    (void)state;
    assert_text_cases(cases, LV_ARRAY_LEN(cases));
}

/* A JSON record cut at limits.max_line (or malformed) is text: its level
 * keys are read, at any depth, and nothing else in it is. */
static void json_that_could_not_be_parsed_is_read_by_its_level_keys(void **state)
{
    static const struct text_case cases[] = {
        {"{\"level\":\"error\",\"msg\":\"cut sh", L(ERROR)},
        {"{\"log\":{\"level\":\"warn\"},\"msg\":\"x", L(WARN)},
        {"{\"severity\": 3, \"msg\": \"x", L(ERROR)},
        {"{\"level\":50,\"msg\":\"x", L(ERROR)},
        {"  {\"LogLevel\":\"Critical\",", L(FATAL)},
        {"{\"@mt\":\"x\",\"N\":1,", L(INFO)},
        {"{\"@mt\":\"x\",\"@l\":\"Error\",\"m", L(ERROR)},
        {"{\"msg\":\"level: error\",\"x\":1", L(UNKNOWN)},
        {"{\"msg\":\"ERROR at the head of JSON is not read\"", L(UNKNOWN)},
        {"{\"msg\":\"level=error\"", L(UNKNOWN)},
    };
    (void)state;
    assert_text_cases(cases, LV_ARRAY_LEN(cases));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_words_issue_13_names_map_to_their_levels_in_any_case),
        cmocka_unit_test(only_whole_words_are_levels),
        cmocka_unit_test(pino_and_bunyan_numbers_are_read_by_tens),
        cmocka_unit_test(syslog_severities_are_read_in_severity_fields),
        cmocka_unit_test(otel_severity_numbers_are_read_by_fours),
        cmocka_unit_test(mongodb_severity_letters_only),
        cmocka_unit_test(slog_offsets_name_the_level_below),
        cmocka_unit_test(a_serilog_template_field_means_info_whatever_its_value),
        cmocka_unit_test(a_field_kind_comes_from_the_table_else_from_its_name),
        cmocka_unit_test(the_table_holds_every_field_issue_13_names),
        cmocka_unit_test(a_level_word_is_read_after_times_pids_and_bracketed_names),
        cmocka_unit_test(prose_is_not_read_as_a_level),
        cmocka_unit_test(a_level_past_the_first_160_bytes_is_not_looked_for),
        cmocka_unit_test(logfmt_level_keys_are_read_from_the_field_table),
        cmocka_unit_test(klog_and_ruby_logger_letters_give_the_level),
        cmocka_unit_test(crash_first_lines_are_error_or_fatal),
        cmocka_unit_test(a_joined_record_keeps_its_first_lines_level_else_takes_a_crash_below),
        cmocka_unit_test(json_that_could_not_be_parsed_is_read_by_its_level_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
