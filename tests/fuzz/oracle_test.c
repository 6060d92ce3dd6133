/*
 * The fuzzer's oracle must be able to fail: each kind of invalid JSON and
 * each kind of leak it exists to catch is shown to it here, next to the
 * sound output it must accept.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "oracle.h"

static const char *valid(const char *s)
{
    return oracle_validate(s, strlen(s), NULL);
}

static const char *keys(const char *s, bool drop)
{
    static char detail[128];
    assert_null(valid(s));
    return oracle_check_keys(s, strlen(s), oracle_default_rules(drop), detail, sizeof detail);
}

static void strict_json_is_accepted(void **state)
{
    (void)state;
    assert_null(valid("{}"));
    assert_null(valid(" {\"a\" : [1, -0.5e+3, true, false, null, \"x\\u00e9\\ud83d\\ude00\"]}\r\n"));
    assert_null(valid("{\"\\u0000\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}"));
    assert_null(valid("{\"k\":\"\xe2\x82\xac\xf0\x9f\x98\x80\"}"));
}

static void what_yajl_tolerates_is_refused(void **state)
{
    (void)state;
    assert_non_null(valid("{\"a\":\v1}"));            /* vertical tab between tokens */
    assert_non_null(valid("{\"a\":\f1}"));            /* form feed */
    assert_non_null(valid("{\"a\":\"x\x01\"}"));     /* raw control byte */
    assert_non_null(valid("{\"a\":\"\xc0\x80\"}"));  /* overlong NUL */
    assert_non_null(valid("{\"a\":\"\xed\xa0\x80\"}")); /* encoded surrogate */
    assert_non_null(valid("{\"a\":\"\xf4\x90\x80\x80\"}")); /* past U+10FFFF */
    assert_non_null(valid("{\"a\":01}"));
    assert_non_null(valid("{\"a\":1.}"));
    assert_non_null(valid("{\"a\":\"\\x\"}"));
    assert_non_null(valid("{\"a\":1} x"));
    assert_non_null(valid("[1]"));
    assert_non_null(valid("{\"a\":1}{}"));
}

static void surrogates_decode_as_a_strict_decoder_reads_them(void **state)
{
    char out[32];
    (void)state;
    const char *lone = "\\ud800\\u0070";
    long n = oracle_decode(lone, strlen(lone), out);
    assert_int_equal(n, 4);
    assert_memory_equal(out, "\xef\xbf\xbdp", 4);
    const char *pair = "\\ud83d\\ude00";
    n = oracle_decode(pair, strlen(pair), out);
    assert_int_equal(n, 4);
    assert_memory_equal(out, "\xf0\x9f\x98\x80", 4);
}

static void a_matching_key_that_keeps_its_value_is_caught(void **state)
{
    (void)state;
    assert_non_null(keys("{\"password\":\"hunter2\"}", false));
    assert_non_null(keys("{\"a\":{\"DB_PASS-word\":1}}", false));
    assert_non_null(keys("{\"pass\\u0077ord\":\"h\"}", false));
    assert_non_null(keys("{\"\\ud800\\u0070assword\":\"h\"}", false));
    assert_non_null(keys("{\"PIN\":\"1234\"}", false));
    assert_non_null(keys("{\"token\":[\"[REDACTED]\"]}", false));
    assert_null(keys("{\"password\":\"[REDACTED]\",\"spin\":3,\"pinned\":1,\"passenger\":\"a\"}",
                     false));
}

static void json_inside_strings_and_text_is_checked(void **state)
{
    (void)state;
    assert_non_null(keys("{\"body\":\"{\\\"token\\\":\\\"x\\\"}\"}", false));
    assert_non_null(keys("{\"body\":\"\\\"{\\\\\\\"token\\\\\\\":\\\\\\\"x\\\\\\\"}\\\"\"}", false));
    assert_non_null(keys("{\"message\":\"INFO body={\\\"apiKey\\\":\\\"k\\\"} done\"}", false));
    assert_non_null(keys("{\"message\":\"[{\\\"secret\\\":1}]\"}", false));
    assert_null(keys("{\"body\":\"{\\\"token\\\":\\\"[REDACTED]\\\"}\"}", false));
    assert_null(keys("{\"message\":\"{\\\"token\\\":\\\"[REDACTED]\\\"} x\"}", false));
}

static void a_value_cut_short_must_be_masked_to_the_end(void **state)
{
    (void)state;
    assert_non_null(keys("{\"message\":\"{\\\"a\\\":1,\\\"password\\\":\\\"hun\"}", false));
    assert_null(keys("{\"message\":\"{\\\"a\\\":1,\\\"password\\\":\\\"[REDACTED]\"}", false));
    assert_null(keys("{\"message\":\"{\\\"a\\\":1,\\\"password\\\":[REDACTED]\"}", false));
    /* inside a string the text ends in */
    assert_non_null(keys("{\"message\":\"{\\\"b\\\":\\\"{\\\\\\\"token\\\\\\\":\\\\\\\"ab\"}", false));
}

static void under_drop_a_matching_member_must_be_gone(void **state)
{
    (void)state;
    assert_non_null(keys("{\"password\":\"[REDACTED]\"}", true));
    assert_non_null(keys("{\"body\":\"{\\\"token\\\":\\\"[REDACTED]\\\"}\"}", true));
    assert_null(keys("{\"user\":\"bob\"}", true));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(strict_json_is_accepted),
        cmocka_unit_test(what_yajl_tolerates_is_refused),
        cmocka_unit_test(surrogates_decode_as_a_strict_decoder_reads_them),
        cmocka_unit_test(a_matching_key_that_keeps_its_value_is_caught),
        cmocka_unit_test(json_inside_strings_and_text_is_checked),
        cmocka_unit_test(a_value_cut_short_must_be_masked_to_the_end),
        cmocka_unit_test(under_drop_a_matching_member_must_be_gone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
