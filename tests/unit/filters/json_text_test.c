/*
 * Strict reading of JSON text: what may be copied as it is, surrogate
 * repair, and decoding with a map back to the encoded text.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json_text.h"

static bool copyable(const char *s)
{
    return lv_json_copyable(s, strlen(s));
}

static void copyable_text_is_strict_utf8_without_blanks_json_forbids(void **state)
{
    (void)state;
    assert_true(copyable("{\"a\":1}"));
    assert_true(copyable("{\"a\":\t1,\r\n\"b\":\"\xe2\x82\xac\"}"));
    assert_false(copyable("{\"a\":\v1}"));
    assert_false(copyable("{\"a\":\f1}"));
    assert_false(copyable("{\"a\":\"\xc0\x80\"}"));
    assert_false(copyable("{\"a\":\"\xed\xa0\x80\"}"));
    /* at every offset of a long line, past the 32- and 8-byte steps */
    char line[100];
    for (size_t at = 0; at < sizeof line - 1; at++) {
        memset(line, 'a', sizeof line - 1);
        line[sizeof line - 1] = '\0';
        line[at] = '\v';
        assert_false(copyable(line));
        line[at] = '\t';
        assert_true(copyable(line));
        line[at] = (char)0xff;
        assert_false(copyable(line));
    }
}

static const char *fix(const char *s, struct lv_buf *b)
{
    const char *out = lv_json_fix_surrogates(s, strlen(s), b);
    static char copy[256];
    memcpy(copy, out, strlen(s));
    copy[strlen(s)] = '\0';
    return copy;
}

static void lone_surrogates_become_u_fffd_in_place(void **state)
{
    struct lv_buf b;
    (void)state;
    lv_buf_init(&b, 0, 0);
    assert_string_equal(fix("\"\\ud800\\u0070\"", &b), "\"\\uFFFD\\u0070\"");
    assert_string_equal(fix("\"\\udc00x\"", &b), "\"\\uFFFDx\"");
    assert_string_equal(fix("\"\\ud83d\\ude00\"", &b), "\"\\ud83d\\ude00\"");
    assert_string_equal(fix("\"\\\\ud800\"", &b), "\"\\\\ud800\""); /* a backslash */
    assert_string_equal(fix("\"\\ud800\\ud800\\udc00\"", &b), "\"\\uFFFD\\ud800\\udc00\"");
    /* anything else stays, for yajl to take or refuse */
    assert_string_equal(fix("\"a\\qb\x01\\u12\"", &b), "\"a\\qb\x01\\u12\"");
    lv_buf_free(&b);
}

static void unescape_maps_each_decoded_byte_to_where_it_came_from(void **state)
{
    struct lv_buf out;
    uint32_t *map = NULL;
    size_t cap = 0;
    (void)state;
    lv_buf_init(&out, 0, 0);
    const char *s = "a\\u00e9\\n\\ud83d\\ude00\\qz";
    assert_int_equal(lv_json_unescape(s, strlen(s), true, &out, &map, &cap), 0);
    assert_int_equal(out.len, 1 + 2 + 1 + 4 + 2 + 1);
    assert_memory_equal(out.data, "a\xc3\xa9\n\xf0\x9f\x98\x80\\qz", out.len);
    const uint32_t want[] = {0, 1, 1, 7, 9, 9, 9, 9, 21, 22, 23, 24};
    assert_memory_equal(map, want, sizeof want);
    assert_int_equal(lv_json_unescape(s, strlen(s), false, &out, &map, &cap), -EINVAL);
    free(map);
    lv_buf_free(&out);
}

static void escapes_are_told_from_stray_backslashes(void **state)
{
    (void)state;
    assert_true(lv_json_has_escape("a\\nb", 4));
    assert_true(lv_json_has_escape("\\u0041", 6));
    assert_false(lv_json_has_escape("C:\\Users", 8));
    assert_false(lv_json_has_escape("\\u12", 4));
    assert_false(lv_json_has_escape("x\\", 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(copyable_text_is_strict_utf8_without_blanks_json_forbids),
        cmocka_unit_test(lone_surrogates_become_u_fffd_in_place),
        cmocka_unit_test(unescape_maps_each_decoded_byte_to_where_it_came_from),
        cmocka_unit_test(escapes_are_told_from_stray_backslashes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
