/*
 * Reading Elasticsearch _bulk answers (sidecar/output/es_bulk.c): answers
 * as Elasticsearch and OpenSearch write them, and as a broken or hostile
 * peer might. Expectations are written by hand; tests/fuzz/fuzz_es_bulk.c
 * explores the rest.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "output/es_bulk.h"

#define MAX 8

struct got {
    size_t n, limit;
    long status[MAX];
    char type[MAX][LV_ES_BULK_TEXT + 1], reason[MAX][LV_ES_BULK_TEXT + 1];
    size_t type_len[MAX], reason_len[MAX];
};

static bool on_item(void *arg, const struct lv_es_item *it)
{
    struct got *g = arg;
    if (g->n == g->limit)
        return false;
    g->status[g->n] = it->status;
    memcpy(g->type[g->n], it->type, it->type_len);
    g->type[g->n][it->type_len] = '\0';
    g->type_len[g->n] = it->type_len;
    memcpy(g->reason[g->n], it->reason, it->reason_len);
    g->reason[g->n][it->reason_len] = '\0';
    g->reason_len[g->n] = it->reason_len;
    g->n++;
    return true;
}

/* The answer fed in chunks of `chunk` bytes. */
static enum lv_es_bulk_result read_answer(const char *text, size_t chunk, struct got *g)
{
    memset(g, 0, sizeof *g);
    g->limit = MAX;
    struct lv_es_bulk *b = lv_es_bulk_new(on_item, g);
    size_t len = strlen(text);
    for (size_t at = 0; at < len; at += chunk)
        lv_es_bulk_feed(b, text + at, len - at < chunk ? len - at : chunk);
    enum lv_es_bulk_result r = lv_es_bulk_finish(b);
    assert_int_equal(lv_es_bulk_items(b), g->n);
    lv_es_bulk_free(b);
    return r;
}

static const char mixed[] =
    "{\"took\":7,\"errors\":true,\"items\":["
    "{\"create\":{\"_index\":\"logs\",\"_id\":\"a\",\"status\":201,\"result\":\"created\","
    "\"_shards\":{\"total\":2,\"successful\":1,\"failed\":0}}},"
    "{\"create\":{\"_index\":\"logs\",\"_id\":\"b\",\"status\":409,\"error\":{\"type\":"
    "\"version_conflict_engine_exception\",\"reason\":\"[b]: version conflict\"}}},"
    "{\"create\":{\"status\":400,\"error\":{\"root_cause\":[{\"type\":\"root\",\"reason\":\"r\"}],"
    "\"type\":\"mapper_parsing_exception\",\"reason\":\"failed to parse [n]\","
    "\"caused_by\":{\"type\":\"illegal_argument_exception\",\"reason\":\"For input \\\"x\\\"\"}}}},"
    "{\"index\":{\"error\":{\"reason\":\"rejected \\u00e9\\ud83d\\ude00\",\"type\":\"es_rejected\"},"
    "\"status\":429}}]}";

static void items_in_order_with_their_errors(void **state)
{
    (void)state;
    struct got g;
    for (size_t chunk = 1; chunk <= sizeof mixed; chunk = chunk * 3 + 1) {
        assert_int_equal(read_answer(mixed, chunk, &g), LV_ES_BULK_ITEMS);
        assert_int_equal(g.n, 4);
        assert_int_equal(g.status[0], 201);
        assert_int_equal(g.type_len[0], 0);
        assert_int_equal(g.status[1], 409);
        assert_string_equal(g.type[1], "version_conflict_engine_exception");
        assert_int_equal(g.status[2], 400);
        /* the error's own type and reason, not those of caused_by or root_cause */
        assert_string_equal(g.type[2], "mapper_parsing_exception");
        assert_string_equal(g.reason[2], "failed to parse [n]");
        assert_int_equal(g.status[3], 429); /* status after the error */
        assert_string_equal(g.reason[3], "rejected \xc3\xa9\xf0\x9f\x98\x80");
    }
}

static void errors_false_first_means_all_delivered(void **state)
{
    (void)state;
    struct got g;
    assert_int_equal(read_answer("{\"took\":3,\"errors\":false,\"items\":[{\"create\":"
                                 "{\"status\":201}}]}", 5, &g),
                     LV_ES_BULK_ALL_OK);
    assert_int_equal(g.n, 0);
    /* The parse stops there: what follows is not read at all. */
    assert_int_equal(read_answer("{\"errors\":false,\"items\":[{\"create\" garbage", 64, &g),
                     LV_ES_BULK_ALL_OK);
}

static void errors_false_after_the_items_is_not_all_delivered(void **state)
{
    (void)state;
    struct got g;
    /* An empty items array, then "errors":false: no record has an outcome. */
    assert_int_equal(read_answer("{\"items\":[],\"errors\":false}", 64, &g), LV_ES_BULK_ITEMS);
    assert_int_equal(g.n, 0);
    assert_int_equal(read_answer("{\"items\":[{\"index\":{\"status\":503}}],\"errors\":false}",
                                 64, &g),
                     LV_ES_BULK_ITEMS);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.status[0], 503);
}

static void broken_answers_are_bad(void **state)
{
    (void)state;
    struct got g;
    static const char *const bad[] = {
        "",
        "{\"errors\":true,\"items\":[{\"create\":{\"status\":201}}",   /* cut short */
        "{\"errors\":true,\"items\":[{\"create\":{\"status\":201}}]} x", /* trailing text */
        "{\"errors\":true,\"items\":[5]}",                             /* not an object */
        "{\"errors\":true,\"items\":[\"create\"]}",
        "{\"errors\":true,\"items\":[[{\"create\":{\"status\":201}}]]}",
        "<html>502 Bad Gateway</html>",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(read_answer(bad[i], 7, &g), LV_ES_BULK_BAD);
}

static void more_items_than_records_is_bad(void **state)
{
    (void)state;
    struct got g;
    memset(&g, 0, sizeof g);
    g.limit = 1;
    struct lv_es_bulk *b = lv_es_bulk_new(on_item, &g);
    const char *t = "{\"errors\":true,\"items\":[{\"create\":{\"status\":201}},"
                    "{\"create\":{\"status\":201}}]}";
    lv_es_bulk_feed(b, t, strlen(t));
    assert_int_equal(lv_es_bulk_finish(b), LV_ES_BULK_BAD);
    assert_int_equal(lv_es_bulk_items(b), 1);
    lv_es_bulk_free(b);
}

static void a_status_is_an_integer_or_zero(void **state)
{
    (void)state;
    struct got g;
    assert_int_equal(read_answer("{\"errors\":true,\"items\":[{\"create\":{\"status\":201.0}},"
                                 "{\"create\":{\"status\":-1}},{\"create\":{\"status\":2e2}},"
                                 "{\"create\":{\"status\":12345678901234567890123}},"
                                 "{\"create\":{\"status\":\"201\"}},{\"create\":{}},"
                                 "{\"create\":{\"status\":1234567}}]}",
                                 3, &g),
                     LV_ES_BULK_ITEMS);
    assert_int_equal(g.n, 7);
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(g.status[i], 0);
    assert_int_equal(g.status[6], 1234567);
}

static void long_texts_are_cut_on_a_character(void **state)
{
    (void)state;
    static char answer[4096];
    char *p = answer + sprintf(answer, "{\"errors\":true,\"items\":[{\"create\":{\"status\":400,"
                                       "\"error\":{\"type\":\"t\",\"reason\":\"");
    for (int i = 0; i < 1023; i++)
        *p++ = 'a';
    p += sprintf(p, "\xe2\x82\xac\xe2\x82\xac\"}}}]}"); /* the euro sign crosses byte 1024 */
    struct got g;
    assert_int_equal(read_answer(answer, 100, &g), LV_ES_BULK_ITEMS);
    assert_int_equal(g.reason_len[0], 1023);
}

static void a_lone_surrogate_becomes_a_replacement_character(void **state)
{
    (void)state;
    struct got g;
    assert_int_equal(read_answer("{\"errors\":true,\"items\":[{\"create\":{\"status\":400,"
                                 "\"error\":{\"type\":\"t\\udc00\",\"reason\":\"a\\ude00b\"}}}]}",
                                 9, &g),
                     LV_ES_BULK_ITEMS);
    /* Each byte of the surrogate's encoding, as the JSON writer repairs text. */
    assert_string_equal(g.type[0], "t\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    assert_string_equal(g.reason[0], "a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "b");
}

/* A token of `n` bytes (a string's content, or a number) fed in `chunk`-byte
 * pieces. */
static enum lv_es_bulk_result long_token(size_t n, bool number, size_t chunk, struct got *g)
{
    char *answer = malloc(n + 200);
    assert_non_null(answer);
    size_t len = (size_t)sprintf(answer, "{\"errors\":true,\"items\":[{\"create\":{\"status\":400,"
                                         "\"error\":{\"reason\":%s", number ? "" : "\"");
    memset(answer + len, number ? '7' : 'a', n);
    len += n;
    strcpy(answer + len, number ? "}}}]}" : "\"}}}]}");
    enum lv_es_bulk_result r = read_answer(answer, chunk, g);
    free(answer);
    return r;
}

/* yajl reads a token spanning chunks again at every chunk: a long token fed
 * in small pieces must neither take quadratic time nor be accepted past 8 MiB. */
static void long_tokens_are_bounded(void **state)
{
    (void)state;
    struct got g;
    assert_int_equal(long_token(1024 * 1024, false, 1, &g), LV_ES_BULK_ITEMS);
    assert_int_equal(g.reason_len[0], LV_ES_BULK_TEXT);
    assert_int_equal(long_token(8 * 1024 * 1024, false, 1460, &g), LV_ES_BULK_ITEMS);
    assert_int_equal(long_token(8 * 1024 * 1024 + 1, false, 1460, &g), LV_ES_BULK_BAD);
    assert_int_equal(long_token(50 * 1024 * 1024, false, 1460, &g), LV_ES_BULK_BAD);
    assert_int_equal(long_token(8 * 1024 * 1024 + 1, true, 100, &g), LV_ES_BULK_BAD);
    assert_int_equal(g.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(items_in_order_with_their_errors),
        cmocka_unit_test(errors_false_first_means_all_delivered),
        cmocka_unit_test(errors_false_after_the_items_is_not_all_delivered),
        cmocka_unit_test(broken_answers_are_bad),
        cmocka_unit_test(more_items_than_records_is_bad),
        cmocka_unit_test(a_status_is_an_integer_or_zero),
        cmocka_unit_test(long_texts_are_cut_on_a_character),
        cmocka_unit_test(a_lone_surrogate_becomes_a_replacement_character),
        cmocka_unit_test(long_tokens_are_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
