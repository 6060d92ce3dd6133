/*
 * Pseudonyms (filters/pseudonym.c) against RFC 4231's published HMAC-SHA256
 * vectors (test cases 6 and 7: the RFC's keys of 32 bytes or more), at
 * full length and truncated, with the key id in front; and the ids.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pseudonym.h"

static const char data6[] = "Test Using Larger Than Block-Size Key - Hash Key First";
static const char mac6[] = "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54";
static const char data7[] =
    "This is a test using a larger than block-size key and a larger than block-size data. The "
    "key needs to be hashed before being used by the HMAC algorithm.";
static const char mac7[] = "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2";

static struct lv_pseudonym *rfc_keys(char *key, int digits)
{
    static struct lv_hmac_key keys[2];
    memset(key, 0xaa, 131);
    keys[0] = (struct lv_hmac_key){.id = "rfc", .key = key, .key_len = 131};
    keys[1] = (struct lv_hmac_key){.id = "old.k-1", .key = key, .key_len = 32};
    struct lv_redact_conf conf = {.hmac_keys = keys, .nhmac_keys = 2, .hmac_length = digits};
    return lv_pseudonym_new(&conf);
}

static const char *put(struct lv_pseudonym *ps, size_t key, const char *value, struct lv_buf *b)
{
    b->len = 0;
    assert_int_equal(lv_pseudonym_put(ps, key, value, strlen(value), b), 0);
    lv_buf_putc(b, '\0');
    return b->data;
}

static void rfc4231_vectors_at_full_length(void **state)
{
    char key[131], want[128];
    struct lv_buf b;
    (void)state;
    struct lv_pseudonym *ps = rfc_keys(key, 64);
    lv_buf_init(&b, 128, 0);
    snprintf(want, sizeof want, "hmac:rfc:%s", mac6);
    assert_string_equal(put(ps, 0, data6, &b), want);
    snprintf(want, sizeof want, "hmac:rfc:%s", mac7);
    assert_string_equal(put(ps, 0, data7, &b), want);
    lv_buf_free(&b);
    lv_pseudonym_free(ps);
}

static void default_length_is_the_first_sixteen_digits_under_each_key(void **state)
{
    char key[131], want[64];
    struct lv_buf b;
    (void)state;
    struct lv_pseudonym *ps = rfc_keys(key, 0);
    lv_buf_init(&b, 128, 0);
    snprintf(want, sizeof want, "hmac:rfc:%.16s", mac6);
    assert_string_equal(put(ps, 0, data6, &b), want);
    assert_int_equal(lv_pseudonym_nkeys(ps), 2);
    assert_string_equal(lv_pseudonym_key_id(ps, 1), "old.k-1");
    /* Another key, another pseudonym, its own id. */
    assert_memory_equal(put(ps, 1, data6, &b), "hmac:old.k-1:", 13);
    assert_memory_not_equal(b.data + 13, mac6, 16);
    lv_buf_free(&b);
    lv_pseudonym_free(ps);
}

static void ids_are_checked_and_derived(void **state)
{
    char id[9], again[9];
    (void)state;
    assert_true(lv_pseudonym_valid_id("k2026"));
    assert_true(lv_pseudonym_valid_id("a.b_c-D9"));
    assert_false(lv_pseudonym_valid_id(""));
    assert_false(lv_pseudonym_valid_id("a:b"));
    assert_false(lv_pseudonym_valid_id("0123456789abcdef0123456789abcdef0"));
    lv_pseudonym_derive_id("0123456789abcdef0123456789abcdef", 32, id);
    lv_pseudonym_derive_id("0123456789abcdef0123456789abcdef", 32, again);
    assert_int_equal(strlen(id), 8);
    assert_string_equal(id, again);
    assert_int_equal(strspn(id, "0123456789abcdef"), 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rfc4231_vectors_at_full_length),
        cmocka_unit_test(default_length_is_the_first_sixteen_digits_under_each_key),
        cmocka_unit_test(ids_are_checked_and_derived),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
