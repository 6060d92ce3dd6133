/*
 * The walk over JSON inside text: where the values of matching keys lie,
 * the members the drop action removes, the strings with escapes, and where
 * a parse that fails goes on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "logveil/conf.h"
#include "nested.h"
#include "redact.h"

struct seen {
    char values[16][64];   /* "start-end:text" */
    char members[16][64];
    size_t nvalues;
    char strings[16][64];
    size_t nstrings;
    const char *text;
};

static int on_value(void *arg, const struct lv_nested_value *v)
{
    struct seen *s = arg;
    snprintf(s->values[s->nvalues], 64, "%.*s%s", (int)(v->end - v->start), s->text + v->start,
             v->open ? "|open" : "");
    snprintf(s->members[s->nvalues++], 64, "%.*s", (int)(v->member_end - v->member_start),
             s->text + v->member_start);
    return 0;
}

static int on_string(void *arg, size_t start, size_t end, bool open)
{
    struct seen *s = arg;
    snprintf(s->strings[s->nstrings++], 64, "%.*s%s", (int)(end - start), s->text + start,
             open ? "|open" : "");
    return 0;
}

static struct lv_redactor *redactor;
static struct lv_nested *walker;

static int setup(void **state)
{
    (void)state;
    static struct lv_conf conf;
    char err[256];
    lv_conf_defaults(&conf, "development");
    redactor = lv_redact_new(&conf.redact, err, sizeof err);
    walker = lv_nested_new(redactor);
    return redactor ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    lv_nested_free(walker);
    lv_redact_free(redactor);
    return 0;
}

static struct seen walk(const char *text)
{
    struct seen s = {.text = text};
    const struct lv_nested_sink sink = {on_value, on_string, &s};
    assert_int_equal(lv_nested_walk(walker, text, strlen(text), &sink), 0);
    return s;
}

static void values_of_matching_keys_are_placed_in_the_text(void **state)
{
    (void)state;
    struct seen s = walk("INFO {\"user\":\"bob\",\"pass\\u0077ord\" : \"hunter2\",\"n\":1} "
                         "and [{\"Api-Key\":{\"a\":[1,{}]}}, {\"PIN\":1234}]");
    assert_int_equal(s.nvalues, 3);
    assert_string_equal(s.values[0], "\"hunter2\"");
    assert_string_equal(s.values[1], "{\"a\":[1,{}]}");
    assert_string_equal(s.values[2], "1234");
    assert_string_equal(s.members[0], "\"pass\\u0077ord\" : \"hunter2\",");
    assert_string_equal(s.members[2], "\"PIN\":1234");
    assert_int_equal(s.nstrings, 1);
    assert_string_equal(s.strings[0], "pass\\u0077ord");
}

static void a_value_the_text_ends_in_runs_to_its_end(void **state)
{
    (void)state;
    struct seen s = walk("{\"a\":1,\"token\":\"abc");
    assert_int_equal(s.nvalues, 1);
    assert_string_equal(s.values[0], "\"abc|open");
    s = walk("{\"secret\": {\"x\": [1, 2");
    assert_string_equal(s.values[0], "{\"x\": [1, 2|open");
    s = walk("{\"secret\": nope, \"b\": 2} tail");
    assert_string_equal(s.values[0], "nope, \"b\": 2} tail|open");
}

static void a_string_the_text_ends_in_is_searched_so_far(void **state)
{
    (void)state;
    struct seen s = walk("{\"body\":\"{\\\"token\\\":\\\"ab");
    assert_int_equal(s.nvalues, 0);
    assert_int_equal(s.nstrings, 1);
    assert_string_equal(s.strings[0], "{\\\"token\\\":\\\"ab|open");
}

static void a_failed_parse_goes_on_after_its_last_good_token(void **state)
{
    (void)state;
    /* yajl consumes the string it refuses ("\"{"): the '{' inside is tried */
    struct seen s = walk("{\"\"\"\\\"{\"\":\"{\\\"token\\\":1}\"");
    assert_int_equal(s.nstrings, 2); /* the refused string, then the one in the '{' in it */
    assert_string_equal(s.strings[1], "{\\\"token\\\":1}");
    /* a byte yajl refuses after the first value; the second object is read */
    s = walk("{\"a\":tru{\"password\":\"x\"}");
    assert_int_equal(s.nvalues, 1);
    assert_string_equal(s.values[0], "\"x\"");
}

static void a_string_yajl_refuses_is_searched_as_text_of_its_own(void **state)
{
    (void)state;
    /* a stray escape: the parse stops there, the string is searched */
    struct seen s = walk("{\"a\":\"C:\\Users\\x\",\"token\":\"t\"}");
    assert_int_equal(s.nvalues, 0);
    assert_int_equal(s.nstrings, 1);
    assert_string_equal(s.strings[0], "C:\\Users\\x");
    /* the value of a matching key is masked to the end of the text */
    s = walk("{\"token\":\"{\\\"k\\\":\\\"x\\\x0f\"} tail");
    assert_int_equal(s.nvalues, 1);
    assert_string_equal(s.values[0], "\"{\\\"k\\\":\\\"x\\\x0f\"} tail|open");
    assert_string_equal(s.strings[0], "{\\\"k\\\":\\\"x\\\x0f");
    /* a lone surrogate does not stop it */
    s = walk("{\"\\ud800\\u0070assword\":\"h\"}");
    assert_int_equal(s.nvalues, 1);
}

static void deep_json_in_text_is_walked_to_its_bottom(void **state)
{
    (void)state;
    char text[4096];
    size_t n = 0;
    for (int i = 0; i < 500; i++)
        text[n++] = '[';
    n += (size_t)sprintf(text + n, "{\"secret\":\"s\"}");
    for (int i = 0; i < 500; i++)
        text[n++] = ']';
    text[n] = '\0';
    struct seen s = walk(text);
    assert_int_equal(s.nvalues, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(values_of_matching_keys_are_placed_in_the_text),
        cmocka_unit_test(a_value_the_text_ends_in_runs_to_its_end),
        cmocka_unit_test(a_string_the_text_ends_in_is_searched_so_far),
        cmocka_unit_test(a_failed_parse_goes_on_after_its_last_good_token),
        cmocka_unit_test(a_string_yajl_refuses_is_searched_as_text_of_its_own),
        cmocka_unit_test(deep_json_in_text_is_walked_to_its_bottom),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
