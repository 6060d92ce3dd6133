/*
 * Tests for the JSON pass: EXTRACT and REDACT agree on every field they pick
 * out, REDACT writes a clean record back byte for byte and a redacted one
 * with its commas right (containers masked, dropped keys first, in the
 * middle or last), numbers keep their exact text, nesting past the limit
 * fails closed at exactly 65 levels, a root that is not an object is
 * invalid, and what EXTRACT cannot do itself (rewrite a timestamp, repair
 * UTF-8) is handed over to REDACT.
 *
 * REDACT output is the record without its closing brace (enrichment adds
 * fields before it), so expected texts below end without one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "enrich.h"
#include "json_text.h"
#include "json_write.h"
#include "parse_json.h"
#include "redact.h"
#include "sample.h"

/* 2024-05-01T08:00:00Z in nanoseconds since the epoch. */
#define T_0800 (1714550400LL * 1000000000LL)

struct fixture {
    struct lv_conf conf;
    struct lv_redactor *red;
    struct lv_json *json;
    struct lv_buf out;
    struct lv_json_result res;
};

static void open_with(struct fixture *fx, enum lv_action action)
{
    char err[256] = "";
    memset(fx, 0, sizeof *fx);
    lv_conf_defaults(&fx->conf, "development");
    for (size_t i = 0; i < fx->conf.redact.nkeys; i++)
        fx->conf.redact.keys[i].action = action;
    fx->red = lv_redact_new(&fx->conf.redact, err, sizeof err);
    if (!fx->red)
        fail_msg("lv_redact_new: %s", err);
    fx->json = lv_json_new(&fx->conf, fx->red);
    lv_buf_init(&fx->out, 4096, 0);
}

static void open_default(struct fixture *fx)
{
    open_with(fx, LV_ACTION_MASK);
}

static void close_fixture(struct fixture *fx)
{
    lv_json_free(fx->json);
    lv_redact_free(fx->red);
    lv_buf_free(&fx->out);
    lv_conf_free(&fx->conf);
}

/* Runs the pass on `line` with the line's own scan; REDACT output is left
 * NUL-terminated in fx->out. */
static enum lv_json_status run_len(struct fixture *fx, enum lv_json_mode mode, const char *line,
                                   size_t len)
{
    struct lv_scan scan;
    lv_redact_scan(fx->red, line, len, &scan);
    fx->out.len = 0;
    enum lv_json_status st =
        lv_json_run(fx->json, mode, line, len, &scan, &fx->out, &fx->res, NULL, NULL);
    lv_buf_putc(&fx->out, '\0');
    fx->out.len--;
    return st;
}

static enum lv_json_status run(struct fixture *fx, enum lv_json_mode mode, const char *line)
{
    return run_len(fx, mode, line, strlen(line));
}

/* PATCH applies to lines without escapes that are valid UTF-8. */
static bool patchable(const char *line)
{
    return !strchr(line, '\\') && lv_json_copyable(line, strlen(line));
}

/* REDACT of `line` succeeds and writes `want`; so does PATCH where it
 * applies (the lines here are compact, so the copy is byte for byte the
 * same), and both report the same fields and count. */
static void assert_redacted(struct fixture *fx, const char *line, const char *want)
{
    enum lv_json_status st = run(fx, LV_JSON_REDACT, line);
    if (st != LV_JSON_OK || strcmp(fx->out.data, want) != 0)
        fail_msg("REDACT of %s\n  want %s\n  got  %s (status %d)", line, want, fx->out.data, st);
    if (!patchable(line))
        return;
    struct lv_json_result redacted = fx->res;
    st = run(fx, LV_JSON_PATCH, line);
    if (st != LV_JSON_OK || strcmp(fx->out.data, want) != 0)
        fail_msg("PATCH of %s\n  want %s\n  got  %s (status %d)", line, want, fx->out.data, st);
    if (fx->res.redactions != redacted.redactions || fx->res.empty != redacted.empty ||
        fx->res.has != redacted.has || fx->res.trace_len != redacted.trace_len)
        fail_msg("PATCH and REDACT disagree on the fields of %s", line);
}

/* PATCH of `line` succeeds and writes `want`, blanks kept where they were. */
static void assert_patched(struct fixture *fx, const char *line, const char *want)
{
    enum lv_json_status st = run(fx, LV_JSON_PATCH, line);
    if (st != LV_JSON_OK || strcmp(fx->out.data, want) != 0)
        fail_msg("PATCH of %s\n  want %s\n  got  %s (status %d)", line, want, fx->out.data, st);
}

static char *nested(const char *open, const char *inner, const char *close, int levels)
{
    size_t lo = strlen(open), li = strlen(inner), lc = strlen(close);
    char *s = malloc(lo * (size_t)levels + li + lc * (size_t)levels + 1);
    char *p = s;
    for (int i = 0; i < levels; i++, p += lo)
        memcpy(p, open, lo);
    memcpy(p, inner, li);
    p += li;
    for (int i = 0; i < levels; i++, p += lc)
        memcpy(p, close, lc);
    *p = '\0';
    return s;
}

/* ---- EXTRACT and REDACT agree ------------------------------------------------------------ */

static const char *const records[] = {
    "{\"level\":\"error\",\"trace_id\":\"4bf92f3577b34da6\",\"msg\":\"boom\"}",
    "{\"log\":{\"level\":\"warn\",\"type\":\"audit\"},\"time\":\"2024-05-01T08:00:00Z\"}",
    "{\"severity\":\"DEBUG\",\"ts\":1714550400,\"a\":[1,{\"b\":null}],\"c\":{}}",
    "{\"log.level\":\"info\",\"trace_id\":42,\"stream\":\"x\",\"kubernetes\":{}}",
    "{\"@timestamp\":\"2024-05-01T08:00:00Z\",\"environment\":\"e\",\"sample_rate\":1}",
    "{\"level\":\"info\",\"password\":\"x\",\"trace_id\":\"t-1\",\"m\":\"token=abc\"}",
    "{\"level\":\"fatal\",\"secret\":{\"level\":\"debug\",\"trace_id\":\"inner\"},\"log\":{}}",
    "{}",
};

static void assert_same_fields(const struct lv_json_result *a, const struct lv_json_result *b,
                               const char *line)
{
    if (a->level != b->level || a->has_level != b->has_level || a->has_key != b->has_key ||
        a->key_hash != b->key_hash || a->keep != b->keep || a->has_time != b->has_time ||
        a->time_ns != b->time_ns || a->has != b->has || a->empty != b->empty ||
        a->trace_len != b->trace_len || memcmp(a->trace_id, b->trace_id, a->trace_len) != 0)
        fail_msg("EXTRACT and REDACT disagree on %s", line);
}

static void extract_and_redact_find_the_same_fields(void **state)
{
    struct fixture fx;
    (void)state;
    open_default(&fx);
    for (size_t i = 0; i < LV_ARRAY_LEN(records); i++) {
        assert_int_equal(run(&fx, LV_JSON_EXTRACT, records[i]), LV_JSON_OK);
        struct lv_json_result extracted = fx.res;
        assert_int_equal(run(&fx, LV_JSON_REDACT, records[i]), LV_JSON_OK);
        assert_same_fields(&extracted, &fx.res, records[i]);
    }
    close_fixture(&fx);
}

static void redact_writes_a_clean_record_back_byte_for_byte(void **state)
{
    struct fixture fx;
    (void)state;
    open_default(&fx);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(run(&fx, LV_JSON_REDACT, records[i]), LV_JSON_OK);
        assert_int_equal(fx.out.len, strlen(records[i]) - 1);
        assert_memory_equal(fx.out.data, records[i], fx.out.len);
    }
    close_fixture(&fx);
}

/* ---- extraction ------------------------------------------------------------------------- */

static void level_trace_id_keep_and_time_are_extracted(void **state)
{
    struct fixture fx;
    (void)state;
    open_default(&fx);
    const char *line = "{\"level\":\"ERROR\",\"trace_id\":\"abc\",\"log\":{\"type\":\"audit\"},"
                       "\"time\":\"2024-05-01T10:00:00+02:00\"}";
    assert_int_equal(run(&fx, LV_JSON_EXTRACT, line), LV_JSON_OK);
    assert_true(fx.res.has_level);
    assert_int_equal(fx.res.level, LV_LEVEL_ERROR);
    assert_true(fx.res.has_key);
    assert_int_equal(fx.res.key_hash, lv_sample_hash("abc", 3));
    assert_int_equal(fx.res.trace_len, 3);
    assert_memory_equal(fx.res.trace_id, "abc", 3);
    assert_true(fx.res.keep);
    assert_true(fx.res.has_time);
    assert_int_equal(fx.res.time_ns, T_0800);
    assert_true(fx.res.has & LV_HAS_LOG);
    close_fixture(&fx);
}

static void level_is_found_by_dotted_path_nested_or_flat_and_the_first_wins(void **state)
{
    struct fixture fx;
    (void)state;
    open_default(&fx);
    assert_int_equal(run(&fx, LV_JSON_EXTRACT, "{\"log\":{\"level\":\"warn\"}}"), LV_JSON_OK);
    assert_int_equal(fx.res.level, LV_LEVEL_WARN);
    assert_int_equal(run(&fx, LV_JSON_EXTRACT, "{\"log.level\":\"debug\"}"), LV_JSON_OK);
    assert_int_equal(fx.res.level, LV_LEVEL_DEBUG);
    assert_int_equal(run(&fx, LV_JSON_EXTRACT, "{\"severity\":\"info\",\"level\":\"error\"}"),
                     LV_JSON_OK);
    assert_int_equal(fx.res.level, LV_LEVEL_INFO);
    assert_int_equal(run(&fx, LV_JSON_EXTRACT, "{\"a\":{\"level\":\"error\"}}"), LV_JSON_OK);
    assert_false(fx.res.has_level);
    close_fixture(&fx);
}

/* The level each mode finds in `line` (they must agree). */
static enum lv_level level_of(struct fixture *fx, const char *line)
{
    assert_int_equal(run(fx, LV_JSON_EXTRACT, line), LV_JSON_OK);
    struct lv_json_result extracted = fx->res;
    assert_int_equal(run(fx, LV_JSON_REDACT, line), LV_JSON_OK);
    if (fx->res.level != extracted.level || fx->res.has_level != extracted.has_level)
        fail_msg("EXTRACT and REDACT disagree on the level of %s", line);
    if (patchable(line)) {
        assert_int_equal(run(fx, LV_JSON_PATCH, line), LV_JSON_OK);
        if (fx->res.level != extracted.level || fx->res.has_level != extracted.has_level)
            fail_msg("EXTRACT and PATCH disagree on the level of %s", line);
    }
    return extracted.level;
}

static void level_fields_are_matched_in_any_case(void **state)
{
    struct fixture fx;
    (void)state;
    open_default(&fx);
    assert_int_equal(level_of(&fx, "{\"Level\":\"Error\"}"), LV_LEVEL_ERROR);
    assert_int_equal(level_of(&fx, "{\"LogLevel\":\"Warning\",\"Message\":\"x\"}"),
                     LV_LEVEL_WARN);
    assert_int_equal(level_of(&fx, "{\"Log\":{\"Level\":\"info\"}}"), LV_LEVEL_INFO);
    assert_int_equal(level_of(&fx, "{\"LEVELNAME\":\"CRITICAL\"}"), LV_LEVEL_FATAL);
    assert_int_equal(level_of(&fx, "{\"SEVERITY\":2}"), LV_LEVEL_FATAL);
    /* Other wanted fields stay exact: "Trace_ID" is not the sampling key. */
    assert_int_equal(run(&fx, LV_JSON_EXTRACT, "{\"Trace_ID\":\"a\",\"`l\":\"error\"}"),
                     LV_JSON_OK);
    assert_false(fx.res.has_key);
    assert_false(fx.res.has_level);
    close_fixture(&fx);
}

static void numbers_are_read_by_the_field_they_are_in(void **state)
{
    struct fixture fx;
    (void)state;
    open_default(&fx);
    assert_int_equal(level_of(&fx, "{\"level\":50}"), LV_LEVEL_ERROR);
    assert_int_equal(level_of(&fx, "{\"level\":\"50\"}"), LV_LEVEL_ERROR);
    assert_int_equal(level_of(&fx, "{\"log.level\":60}"), LV_LEVEL_FATAL);
    assert_int_equal(level_of(&fx, "{\"severity\":3}"), LV_LEVEL_ERROR);
    assert_int_equal(level_of(&fx, "{\"syslog\":{\"severity\":0}}"), LV_LEVEL_FATAL);
    assert_int_equal(level_of(&fx, "{\"level\":3}"), LV_LEVEL_UNKNOWN);
    assert_int_equal(level_of(&fx, "{\"severity\":50}"), LV_LEVEL_UNKNOWN);
    close_fixture(&fx);
}

/* A field whose value says nothing does not stop a later one from saying it. */
static void the_first_field_that_says_a_level_wins(void **state)
{
    struct fixture fx;
    (void)state;
    open_default(&fx);
    assert_int_equal(level_of(&fx, "{\"level\":\"custom\",\"severity\":\"ERROR\"}"),
                     LV_LEVEL_ERROR);
    assert_int_equal(level_of(&fx, "{\"lvl\":\"warn\",\"level\":\"error\"}"), LV_LEVEL_WARN);
    assert_int_equal(level_of(&fx, "{\"level\":null,\"levelname\":\"DEBUG\"}"),
                     LV_LEVEL_DEBUG);
    close_fixture(&fx);
}

static void a_serilog_record_without_at_l_is_information(void **state)
{
    struct fixture fx;
    (void)state;
    open_default(&fx);
    assert_int_equal(level_of(&fx, "{\"@t\":\"2024-01-05T12:00:00Z\",\"@mt\":\"Hi {N}\","
                                   "\"N\":1}"),
                     LV_LEVEL_INFO);
    assert_int_equal(level_of(&fx, "{\"@m\":\"Hi\"}"), LV_LEVEL_INFO);
    assert_int_equal(level_of(&fx, "{\"@mt\":\"x\",\"@l\":\"Error\"}"), LV_LEVEL_ERROR);
    assert_int_equal(level_of(&fx, "{\"@l\":\"Warning\",\"@mt\":\"x\"}"), LV_LEVEL_WARN);
    assert_int_equal(level_of(&fx, "{\"@t\":\"2024-01-05T12:00:00Z\",\"msg\":\"x\"}"),
                     LV_LEVEL_UNKNOWN);
    close_fixture(&fx);
}

/* The early hook sees a level only once a field has said it: a template
 * seen before @l must not let a sampler decide on INFO. */
static bool record_early_level(void *arg, const struct lv_json_result *res)
{
    if (res->has_level)
        *(enum lv_level *)arg = res->level;
    return false;
}

static void an_implied_level_is_never_reported_early(void **state)
{
    struct fixture fx;
    struct lv_scan scan = {0};
    enum lv_level early = LV_LEVEL_UNKNOWN;
    (void)state;
    open_default(&fx);
    const char *line = "{\"@mt\":\"x\",\"trace_id\":\"t\",\"@l\":\"Error\"}";
    assert_int_equal(lv_json_run(fx.json, LV_JSON_EXTRACT, line, strlen(line), &scan, &fx.out,
                                 &fx.res, record_early_level, &early),
                     LV_JSON_OK);
    assert_int_equal(early, LV_LEVEL_ERROR);
    early = LV_LEVEL_UNKNOWN;
    line = "{\"@mt\":\"x\",\"trace_id\":\"t\"}";
    assert_int_equal(lv_json_run(fx.json, LV_JSON_EXTRACT, line, strlen(line), &scan, &fx.out,
                                 &fx.res, record_early_level, &early),
                     LV_JSON_OK);
    assert_int_equal(early, LV_LEVEL_UNKNOWN);
    assert_int_equal(fx.res.level, LV_LEVEL_INFO);
    close_fixture(&fx);
}

/* sampling.level_fields replaces the table; a field of one's own is read
 * as its name says (a *severity field holds syslog severities). */
static void level_fields_from_the_config_replace_the_table(void **state)
{
    struct fixture fx;
    char err[256] = "";
    static const char *const fields[] = {"lvl", "event.severity"};
    (void)state;
    memset(&fx, 0, sizeof fx);
    lv_conf_defaults(&fx.conf, "development");
    for (size_t i = 0; i < fx.conf.sample.nlevel_fields; i++)
        free(fx.conf.sample.level_fields[i]);
    free(fx.conf.sample.level_fields);
    fx.conf.sample.level_fields = calloc(2, sizeof(char *));
    for (size_t i = 0; i < 2; i++)
        fx.conf.sample.level_fields[i] = strdup(fields[i]);
    fx.conf.sample.nlevel_fields = 2;
    fx.red = lv_redact_new(&fx.conf.redact, err, sizeof err);
    if (!fx.red)
        fail_msg("lv_redact_new: %s", err);
    fx.json = lv_json_new(&fx.conf, fx.red);
    lv_buf_init(&fx.out, 4096, 0);
    assert_int_equal(level_of(&fx, "{\"level\":\"error\"}"), LV_LEVEL_UNKNOWN);
    assert_int_equal(level_of(&fx, "{\"LVL\":\"error\"}"), LV_LEVEL_ERROR);
    assert_int_equal(level_of(&fx, "{\"event\":{\"severity\":4}}"), LV_LEVEL_WARN);
    assert_int_equal(level_of(&fx, "{\"@mt\":\"x\"}"), LV_LEVEL_UNKNOWN);
    close_fixture(&fx);
}

static void keep_needs_the_exact_value_at_the_exact_path(void **state)
{
    struct fixture fx;
    (void)state;
    open_default(&fx);
    assert_int_equal(run(&fx, LV_JSON_EXTRACT, "{\"log\":{\"type\":\"audit\"}}"), LV_JSON_OK);
    assert_true(fx.res.keep);
    assert_int_equal(run(&fx, LV_JSON_EXTRACT, "{\"log\":{\"type\":\"audits\"}}"), LV_JSON_OK);
    assert_false(fx.res.keep);
    assert_int_equal(run(&fx, LV_JSON_EXTRACT, "{\"type\":\"audit\"}"), LV_JSON_OK);
    assert_false(fx.res.keep);
    close_fixture(&fx);
}

static void top_level_fields_enrichment_would_add_are_reported(void **state)
{
    struct fixture fx;
    (void)state;
    open_default(&fx);
    assert_int_equal(run(&fx, LV_JSON_EXTRACT,
                         "{\"stream\":1,\"environment\":1,\"kubernetes\":1,\"log\":1,\"trace\":1,"
                         "\"sample_rate\":1,\"redacted\":1,\"@timestamp\":\"2024-05-01T08:00:00Z\"}"),
                     LV_JSON_OK);
    assert_int_equal(fx.res.has, LV_HAS_STREAM | LV_HAS_ENVIRONMENT | LV_HAS_KUBERNETES |
                                     LV_HAS_LOG | LV_HAS_TRACE | LV_HAS_SAMPLE_RATE |
                                     LV_HAS_REDACTED | LV_HAS_TIMESTAMP);
    assert_int_equal(run(&fx, LV_JSON_EXTRACT, "{\"a\":{\"stream\":1,\"log\":2}}"), LV_JSON_OK);
    assert_int_equal(fx.res.has, 0);
    close_fixture(&fx);
}

static void an_empty_object_is_reported_empty(void **state)
{
    struct fixture fx;
    (void)state;
    open_default(&fx);
    assert_int_equal(run(&fx, LV_JSON_EXTRACT, " { } "), LV_JSON_OK);
    assert_true(fx.res.empty);
    assert_int_equal(run(&fx, LV_JSON_REDACT, "{}"), LV_JSON_OK);
    assert_true(fx.res.empty);
    assert_string_equal(fx.out.data, "{");
    assert_int_equal(run(&fx, LV_JSON_EXTRACT, "{\"a\":{}}"), LV_JSON_OK);
    assert_false(fx.res.empty);
    close_fixture(&fx);
}

static bool cancel_on_level(void *arg, const struct lv_json_result *res)
{
    (void)arg;
    return res->has_level && res->level == LV_LEVEL_DEBUG;
}

static void the_early_hook_can_cancel_a_record(void **state)
{
    struct fixture fx;
    struct lv_scan scan = {0};
    (void)state;
    open_default(&fx);
    const char *line = "{\"level\":\"debug\",\"msg\":\"x\"}";
    assert_int_equal(lv_json_run(fx.json, LV_JSON_EXTRACT, line, strlen(line), &scan, &fx.out,
                                 &fx.res, cancel_on_level, NULL),
                     LV_JSON_CANCELLED);
    line = "{\"level\":\"info\",\"msg\":\"x\"}";
    assert_int_equal(lv_json_run(fx.json, LV_JSON_EXTRACT, line, strlen(line), &scan, &fx.out,
                                 &fx.res, cancel_on_level, NULL),
                     LV_JSON_OK);
    close_fixture(&fx);
}

/* ---- what EXTRACT hands over to REDACT ------------------------------------------------ */

static void extract_hands_a_timestamp_to_rewrite_over_to_redact(void **state)
{
    struct fixture fx;
    (void)state;
    open_default(&fx);
    const char *line = "{\"@timestamp\":\"2024-05-01T10:00:00+02:00\",\"a\":1}";
    assert_int_equal(run(&fx, LV_JSON_EXTRACT, line), LV_JSON_NEEDS_REDACT);
    assert_redacted(&fx, line, "{\"@timestamp\":\"2024-05-01T08:00:00.000000000Z\",\"a\":1");
    assert_true(fx.res.has & LV_HAS_TIMESTAMP);
    close_fixture(&fx);
}

/* yajl lets overlong forms, encoded surrogates and code points past
 * U+10FFFF through; a verbatim copy of them would not be valid UTF-8, so the
 * strict check the chain makes before copying refuses them, and REDACT
 * repairs them. */
static void strict_utf8_check_refuses_what_yajl_lets_through_and_redact_repairs_it(void **state)
{
    struct fixture fx;
    (void)state;
    open_default(&fx);
    static const char *const lines[] = {
        "{\"a\":\"\xff\"}",         "{\"a\":\"\xc0\xaf\"}",     "{\"a\":\"\xed\xa0\x80\"}",
        "{\"a\":\"\xf4\x90\x80\x80\"}", "{\"\xe0\x80\xaf\":1}", "{\"a\":\"ok\xe2\x82\"}"};
    for (size_t i = 0; i < LV_ARRAY_LEN(lines); i++) {
        if (lv_json_copyable(lines[i], strlen(lines[i])))
            fail_msg("the strict check accepted invalid UTF-8 in line %zu", i);
        assert_int_equal(run(&fx, LV_JSON_REDACT, lines[i]), LV_JSON_OK);
        assert_non_null(strstr(fx.out.data, "\xef\xbf\xbd"));
    }
    assert_int_equal(run(&fx, LV_JSON_EXTRACT, "{\"a\":\"\xc3\xa9\xe6\x97\xa5\xf0\x9f\x8e\x89\"}"),
                     LV_JSON_OK);
    close_fixture(&fx);
}

/* ---- writing ---------------------------------------------------------------------------- */

static void numbers_are_written_back_as_they_were_read(void **state)
{
    struct fixture fx;
    (void)state;
    open_default(&fx);
    assert_redacted(&fx,
                    "{\"password\":\"x\",\"a\":1.50e10,\"b\":-0,\"c\":12345678901234567890123,"
                    "\"d\":1E+2,\"e\":[0.1000,-1.5E-7,1e400]}",
                    "{\"password\":\"[REDACTED]\",\"a\":1.50e10,\"b\":-0,"
                    "\"c\":12345678901234567890123,\"d\":1E+2,\"e\":[0.1000,-1.5E-7,1e400]");
    close_fixture(&fx);
}

static void a_matching_key_masks_a_value_of_any_type(void **state)
{
    struct fixture fx;
    (void)state;
    open_default(&fx);
    assert_redacted(&fx, "{\"token\":12,\"secret\":true,\"apiKey\":null,\"password\":-1.5e3}",
                    "{\"token\":\"[REDACTED]\",\"secret\":\"[REDACTED]\",\"apiKey\":\"[REDACTED]\","
                    "\"password\":\"[REDACTED]\"");
    assert_int_equal(fx.res.redactions, 4);
    close_fixture(&fx);
}

static void a_redacted_container_is_replaced_and_its_siblings_keep_their_commas(void **state)
{
    struct fixture fx;
    (void)state;
    open_default(&fx);
    assert_redacted(&fx, "{\"secret\":{\"a\":[1,{\"b\":2}]},\"x\":1}",
                    "{\"secret\":\"[REDACTED]\",\"x\":1");
    assert_redacted(&fx, "{\"x\":1,\"token\":[[1],[2,[3]]],\"y\":[1,2]}",
                    "{\"x\":1,\"token\":\"[REDACTED]\",\"y\":[1,2]");
    assert_redacted(&fx, "{\"a\":[{\"password\":{}},{\"password\":[]}],\"b\":{}}",
                    "{\"a\":[{\"password\":\"[REDACTED]\"},{\"password\":\"[REDACTED]\"}],\"b\":{}");
    close_fixture(&fx);
}

static void dropped_keys_leave_the_commas_right_first_middle_or_last(void **state)
{
    struct fixture fx;
    (void)state;
    open_with(&fx, LV_ACTION_DROP);
    assert_redacted(&fx, "{\"password\":\"x\",\"a\":1,\"b\":2}", "{\"a\":1,\"b\":2");
    assert_redacted(&fx, "{\"a\":1,\"password\":\"x\",\"b\":2}", "{\"a\":1,\"b\":2");
    assert_redacted(&fx, "{\"a\":1,\"b\":2,\"password\":\"x\"}", "{\"a\":1,\"b\":2");
    assert_redacted(&fx, "{\"token\":1,\"a\":1,\"secret\":[1,{\"x\":2}],\"apiKey\":{}}", "{\"a\":1");
    assert_redacted(&fx, "{\"a\":[{\"token\":1},{\"b\":1,\"token\":{\"c\":[]}},{\"token\":2,\"c\":3}]}",
                    "{\"a\":[{},{\"b\":1},{\"c\":3}]");
    close_fixture(&fx);
}

static void a_record_whose_every_key_is_dropped_is_empty(void **state)
{
    struct fixture fx;
    (void)state;
    open_with(&fx, LV_ACTION_DROP);
    assert_redacted(&fx, "{\"password\":\"x\",\"token\":{\"a\":1}}", "{");
    assert_true(fx.res.empty);
    assert_int_equal(fx.res.redactions, 2);
    close_fixture(&fx);
}

static void escaped_keys_are_decoded_before_matching(void **state)
{
    struct fixture fx;
    (void)state;
    open_default(&fx);
    assert_redacted(&fx, "{\"pass\\u0077ord\":\"x\",\"\\u0054OKEN\":1}",
                    "{\"password\":\"[REDACTED]\",\"TOKEN\":\"[REDACTED]\"");
    close_fixture(&fx);
}

static void value_rules_run_on_keys_too(void **state)
{
    struct fixture fx;
    (void)state;
    open_default(&fx);
    assert_redacted(&fx, "{\"s\":{\"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln\":1}}",
                    "{\"s\":{\"[REDACTED]\":1}");
    assert_int_equal(fx.res.redactions, 1);
    close_fixture(&fx);
}

static void a_trace_id_a_rule_touched_is_not_kept_for_trace_id(void **state)
{
    struct fixture fx;
    (void)state;
    open_default(&fx);
    assert_redacted(&fx, "{\"trace_id\":\"Bearer abcdefghijk\"}",
                    "{\"trace_id\":\"Bearer [REDACTED]\"");
    assert_true(fx.res.has_key);
    assert_int_equal(fx.res.trace_len, 0);
    close_fixture(&fx);
}

/* ---- depth and validity ----------------------------------------------------------------- */

static void depth_64_is_accepted_and_65_fails_closed_in_both_modes(void **state)
{
    struct fixture fx;
    (void)state;
    open_default(&fx);
    char *arrays64 = nested("[", "", "]", 63), *arrays65 = nested("[", "", "]", 64);
    char line[512];
    snprintf(line, sizeof line, "{\"a\":%s}", arrays64);
    assert_int_equal(run(&fx, LV_JSON_EXTRACT, line), LV_JSON_OK);
    assert_int_equal(run(&fx, LV_JSON_REDACT, line), LV_JSON_OK);
    snprintf(line, sizeof line, "{\"a\":%s}", arrays65);
    assert_int_equal(run(&fx, LV_JSON_EXTRACT, line), LV_JSON_DEPTH);
    assert_int_equal(run(&fx, LV_JSON_REDACT, line), LV_JSON_DEPTH);
    /* Inside a redacted value the limit holds too. */
    snprintf(line, sizeof line, "{\"password\":%s}", arrays65);
    assert_int_equal(run(&fx, LV_JSON_REDACT, line), LV_JSON_DEPTH);
    free(arrays64);
    free(arrays65);
    char *objects64 = nested("{\"k\":", "1", "}", 64), *objects65 = nested("{\"k\":", "1", "}", 65);
    assert_int_equal(run(&fx, LV_JSON_REDACT, objects64), LV_JSON_OK);
    assert_int_equal(run(&fx, LV_JSON_EXTRACT, objects65), LV_JSON_DEPTH);
    assert_int_equal(run(&fx, LV_JSON_REDACT, objects65), LV_JSON_DEPTH);
    free(objects64);
    free(objects65);
    close_fixture(&fx);
}

static void a_root_that_is_not_one_object_is_invalid(void **state)
{
    struct fixture fx;
    (void)state;
    open_default(&fx);
    static const char *const lines[] = {
        "[1]",  "\"x\"",     "1",         "null",       "true",         "",
        "   ",  "{\"a\":1}{\"b\":2}", "{\"a\":1} x", "{\"a\":1", "{\"a\":1,}", "{'a':1}",
        "{a:1}", "{\"a\":NaN}", "{\"a\":01}", "{\"a\":\"\\q\"}", "[{\"password\":\"x\"}]"};
    for (size_t i = 0; i < LV_ARRAY_LEN(lines); i++) {
        if (run(&fx, LV_JSON_EXTRACT, lines[i]) != LV_JSON_INVALID)
            fail_msg("EXTRACT accepted <%s>", lines[i]);
        if (run(&fx, LV_JSON_REDACT, lines[i]) != LV_JSON_INVALID)
            fail_msg("REDACT accepted <%s>", lines[i]);
    }
    close_fixture(&fx);
}

/* ---- PATCH ------------------------------------------------------------------------------ */

static void patch_keeps_the_blanks_and_cuts_exactly_the_redacted_parts(void **state)
{
    struct fixture fx;
    (void)state;
    open_default(&fx);
    assert_patched(&fx, " { \"a\" : 1 , \"password\" :\t\"x\" , \"b\" : [ 1 , 2 ] } ",
                   " { \"a\" : 1 , \"password\" :\t\"[REDACTED]\" , \"b\" : [ 1 , 2 ] ");
    assert_patched(&fx, "{ \"secret\" : { \"a\" : [ 1 ] } , \"m\" : \"a Bearer abcdefgh b\" }",
                   "{ \"secret\" : \"[REDACTED]\" , \"m\" : \"a Bearer [REDACTED] b\" ");
    close_fixture(&fx);
    open_with(&fx, LV_ACTION_DROP);
    assert_patched(&fx, "{ \"a\" : 1 , \"password\" : \"x\" , \"b\" : 2 }", "{ \"a\" : 1 , \"b\" : 2 ");
    assert_patched(&fx, "{ \"password\" : \"x\" , \"token\" : [ ] ,\n\"b\" : 2 }", "{ \"b\" : 2 ");
    assert_patched(&fx, "{\"a\":{ \"token\" : 1 }, \"b\" : { \"c\":1 ,\"token\" : {\"d\":[]} } }",
                   "{\"a\":{  }, \"b\" : { \"c\":1 } ");
    assert_patched(&fx, "{ \"password\" : \"x\" }", "{  ");
    assert_true(fx.res.empty);
    close_fixture(&fx);
}

static void patch_rewrites_a_timestamp_and_hashes_in_place(void **state)
{
    struct fixture fx;
    (void)state;
    open_default(&fx);
    assert_patched(&fx, "{ \"@timestamp\" : \"2024-05-01T10:00:00+02:00\" , \"a\" : 1 }",
                   "{ \"@timestamp\" : \"2024-05-01T08:00:00.000000000Z\" , \"a\" : 1 ");
    assert_patched(&fx, "{\"@timestamp\":1714550400,\"a\":1}",
                   "{\"@timestamp\":\"2024-05-01T08:00:00.000000000Z\",\"a\":1");
    close_fixture(&fx);
}

/* A value that yajl completes only at the end of the input has no place in
 * the line: PATCH hands the line back to REDACT rather than guess. */
static void patch_hands_a_value_without_a_place_to_redact(void **state)
{
    struct fixture fx;
    (void)state;
    open_default(&fx);
    assert_int_equal(run(&fx, LV_JSON_PATCH, "{\"token\":123456"), LV_JSON_NEEDS_REDACT);
    assert_int_equal(run(&fx, LV_JSON_PATCH, "{\"a\":1,\"b\":\"x\""), LV_JSON_INVALID);
    close_fixture(&fx);
}

/* The hits the line's scan recorded stand in for scanning each key and
 * string again; with more hits than the scan keeps, every string is scanned
 * again, and the result is the same. */
static void patch_finds_every_secret_however_many_words_the_line_holds(void **state)
{
    struct fixture fx;
    (void)state;
    open_default(&fx);
    char line[8192], want[8192];
    for (int n = 1; n <= 2 * LV_SCAN_HITS; n += 7) {
        size_t l = 0, w = 0;
        l += (size_t)snprintf(line + l, sizeof line - l, "{\"m\":\"passwords tokens\"");
        w += (size_t)snprintf(want + w, sizeof want - w, "{\"m\":\"passwords tokens\"");
        for (int i = 0; i < n; i++) {
            l += (size_t)snprintf(line + l, sizeof line - l,
                                  ",\"k%d\":\"basic x\",\"x_Pass-word%d\":\"v%d\",\"t%d\":\"akia\","
                                  "\"s%d\":\"Bearer abcdefgh%d\"",
                                  i, i, i, i, i, i);
            w += (size_t)snprintf(want + w, sizeof want - w,
                                  ",\"k%d\":\"basic x\",\"x_Pass-word%d\":\"[REDACTED]\",\"t%d\":\"akia\","
                                  "\"s%d\":\"Bearer [REDACTED]\"",
                                  i, i, i, i);
        }
        l += (size_t)snprintf(line + l, sizeof line - l, "}");
        assert_patched(&fx, line, want);
        assert_int_equal(fx.res.redactions, 2 * n);
    }
    close_fixture(&fx);
}

static void a_nul_byte_after_the_object_makes_it_invalid(void **state)
{
    struct fixture fx;
    (void)state;
    open_default(&fx);
    assert_int_equal(run_len(&fx, LV_JSON_EXTRACT, "{\"a\":1}\0x", 9), LV_JSON_INVALID);
    assert_int_equal(run_len(&fx, LV_JSON_REDACT, "{\"a\":1}\0x", 9), LV_JSON_INVALID);
    close_fixture(&fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(extract_and_redact_find_the_same_fields),
        cmocka_unit_test(redact_writes_a_clean_record_back_byte_for_byte),
        cmocka_unit_test(level_trace_id_keep_and_time_are_extracted),
        cmocka_unit_test(level_is_found_by_dotted_path_nested_or_flat_and_the_first_wins),
        cmocka_unit_test(level_fields_are_matched_in_any_case),
        cmocka_unit_test(numbers_are_read_by_the_field_they_are_in),
        cmocka_unit_test(the_first_field_that_says_a_level_wins),
        cmocka_unit_test(a_serilog_record_without_at_l_is_information),
        cmocka_unit_test(an_implied_level_is_never_reported_early),
        cmocka_unit_test(level_fields_from_the_config_replace_the_table),
        cmocka_unit_test(keep_needs_the_exact_value_at_the_exact_path),
        cmocka_unit_test(top_level_fields_enrichment_would_add_are_reported),
        cmocka_unit_test(an_empty_object_is_reported_empty),
        cmocka_unit_test(the_early_hook_can_cancel_a_record),
        cmocka_unit_test(extract_hands_a_timestamp_to_rewrite_over_to_redact),
        cmocka_unit_test(strict_utf8_check_refuses_what_yajl_lets_through_and_redact_repairs_it),
        cmocka_unit_test(numbers_are_written_back_as_they_were_read),
        cmocka_unit_test(a_matching_key_masks_a_value_of_any_type),
        cmocka_unit_test(a_redacted_container_is_replaced_and_its_siblings_keep_their_commas),
        cmocka_unit_test(dropped_keys_leave_the_commas_right_first_middle_or_last),
        cmocka_unit_test(a_record_whose_every_key_is_dropped_is_empty),
        cmocka_unit_test(escaped_keys_are_decoded_before_matching),
        cmocka_unit_test(value_rules_run_on_keys_too),
        cmocka_unit_test(a_trace_id_a_rule_touched_is_not_kept_for_trace_id),
        cmocka_unit_test(depth_64_is_accepted_and_65_fails_closed_in_both_modes),
        cmocka_unit_test(a_root_that_is_not_one_object_is_invalid),
        cmocka_unit_test(a_nul_byte_after_the_object_makes_it_invalid),
        cmocka_unit_test(patch_keeps_the_blanks_and_cuts_exactly_the_redacted_parts),
        cmocka_unit_test(patch_rewrites_a_timestamp_and_hashes_in_place),
        cmocka_unit_test(patch_hands_a_value_without_a_place_to_redact),
        cmocka_unit_test(patch_finds_every_secret_however_many_words_the_line_holds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
