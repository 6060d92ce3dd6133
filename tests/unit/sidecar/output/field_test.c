/*
 * Reading fields from a record's text (sidecar/output/field.c): the key and
 * topic_field of the Kafka output. Expectations are written by hand.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "output/field.h"

static struct lv_field one(const char *json, const char *path)
{
    struct lv_field_path p = {path, strlen(path)};
    struct lv_field f;
    lv_field_read(json, strlen(json), &p, 1, &f);
    return f;
}

static void assert_field(struct lv_field f, const char *want, bool string)
{
    assert_non_null(f.p);
    assert_int_equal(f.len, strlen(want));
    assert_memory_equal(f.p, want, f.len);
    assert_int_equal(f.string, string);
}

static void top_level_string_is_found(void **state)
{
    (void)state;
    assert_field(one("{\"a\":1,\"trace_id\":\"abc\",\"z\":2}", "trace_id"), "abc", true);
}

static void nested_objects_and_dotted_keys_are_both_found(void **state)
{
    (void)state;
    const char *nested = "{\"kubernetes\":{\"pod\":{\"name\":\"p\"},\"namespace\":\"ns-1\"}}";
    assert_field(one(nested, "kubernetes.namespace"), "ns-1", true);
    assert_field(one("{\"kubernetes.namespace\":\"ns-2\"}", "kubernetes.namespace"), "ns-2", true);
    assert_field(one("{\"kubernetes\":{\"namespace.x\":\"y\"}}", "kubernetes.namespace.x"), "y", true);
}

static void numbers_are_found_as_text(void **state)
{
    (void)state;
    assert_field(one("{\"user\":{\"id\": 3539704 }}", "user.id"), "3539704", false);
}

static void objects_arrays_and_absent_paths_are_not_found(void **state)
{
    (void)state;
    assert_null(one("{\"a\":{\"b\":1}}", "a").p);
    assert_null(one("{\"a\":[1,2]}", "a").p);
    assert_null(one("{\"ab\":\"x\"}", "a").p);
    assert_null(one("{\"a\":\"x\"}", "a.b").p);
    assert_null(one("not json", "a").p);
}

static void keys_inside_strings_and_nested_values_are_skipped(void **state)
{
    (void)state;
    const char *json = "{\"msg\":\"\\\"k\\\":\\\"no\\\"\",\"x\":{\"k\":\"deep\"},\"k\":\"yes\"}";
    assert_field(one(json, "k"), "yes", true);
}

static void two_paths_in_one_pass(void **state)
{
    (void)state;
    struct lv_field_path p[2] = {{"t", 1}, {"k.v", 3}};
    struct lv_field f[2];
    const char *json = "{\"k\":{\"v\":\"key\"},\"t\":\"topic\"}";
    lv_field_read(json, strlen(json), p, 2, f);
    assert_field(f[0], "topic", true);
    assert_field(f[1], "key", true);
}

static void escapes_are_decoded(void **state)
{
    (void)state;
    char out[64];
    struct lv_field f = one("{\"k\":\"a\\\"b\\\\c\\u00e9\\ud83d\\ude00\\n\"}", "k");
    size_t n = lv_field_unescape(&f, out, sizeof out);
    assert_int_equal(n, strlen("a\"b\\c\xc3\xa9\xf0\x9f\x98\x80\n"));
    assert_memory_equal(out, "a\"b\\c\xc3\xa9\xf0\x9f\x98\x80\n", n);
    f = one("{\"k\":\"\\ud800x\"}", "k"); /* a lone surrogate */
    n = lv_field_unescape(&f, out, sizeof out);
    assert_int_equal(n, 4);
    assert_memory_equal(out, "\xef\xbf\xbdx", 4);
}

static void unescape_stops_within_its_buffer(void **state)
{
    (void)state;
    char out[8];
    struct lv_field f = one("{\"k\":\"0123456789abcdef\"}", "k");
    size_t n = lv_field_unescape(&f, out, sizeof out);
    assert_true(n <= sizeof out);
    assert_memory_equal(out, "01234567", n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(top_level_string_is_found),
        cmocka_unit_test(nested_objects_and_dotted_keys_are_both_found),
        cmocka_unit_test(numbers_are_found_as_text),
        cmocka_unit_test(objects_arrays_and_absent_paths_are_not_found),
        cmocka_unit_test(keys_inside_strings_and_nested_values_are_skipped),
        cmocka_unit_test(two_paths_in_one_pass),
        cmocka_unit_test(escapes_are_decoded),
        cmocka_unit_test(unescape_stops_within_its_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
