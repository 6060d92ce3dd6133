/*
 * The audit chain (filters/audit.c): the member it appends, the chain value
 * (checked with OpenSSL's one-shot HMAC over the bytes the README names),
 * and the state file: seqs reserved before a batch goes out, the settled
 * link moving only over batches settled in order, an unclean stop declared
 * by the next record, a damaged file refused.
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
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "audit.h"
#include "logveil/metrics.h"

#define KEY "0123456789abcdef0123456789abcdef"

struct fixture {
    char dir[64];
    struct lv_conf conf;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/lv_audit_test_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->conf.state_dir = f->dir;
    f->conf.audit.key = KEY;
    f->conf.audit.key_len = strlen(KEY);
    f->conf.audit.key_id = "a1";
    f->conf.audit.stream = "pod/app";
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static struct lv_audit *open_audit(struct fixture *f)
{
    char err[256];
    struct lv_audit *a = lv_audit_new(&f->conf, err, sizeof err);
    if (!a)
        fail_msg("%s", err);
    return a;
}

/* Appends the audit member to `body` (a record without its closing brace)
 * and returns the whole line. */
static char *chained(struct lv_audit *a, const char *body)
{
    struct lv_buf out;
    lv_buf_init(&out, 256, 0);
    lv_buf_append(&out, body, strlen(body));
    assert_int_equal(lv_audit_append(a, &out, 0), 0);
    lv_buf_putc(&out, '}');
    lv_buf_putc(&out, '\0');
    return out.data;
}

/* HMAC-SHA256(KEY, prev || line without its 64 chain digits), in hex. */
static void expected_chain(const unsigned char prev[32], const char *line, char hex[65])
{
    const char *at = strstr(line, "\"chain\":\"") + 9;
    size_t head = (size_t)(at - line), len = strlen(line);
    unsigned char *msg = malloc(32 + len);
    memcpy(msg, prev, 32);
    memcpy(msg + 32, line, head);
    memcpy(msg + 32 + head, at + 64, len - head - 64);
    unsigned char md[32];
    unsigned int mdlen = 0;
    HMAC(EVP_sha256(), KEY, (int)strlen(KEY), msg, 32 + len - 64, md, &mdlen);
    for (int i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", md[i]);
    free(msg);
}

static void chain_value(const char *line, unsigned char out[32])
{
    const char *at = strstr(line, "\"chain\":\"") + 9;
    for (int i = 0; i < 32; i++) {
        unsigned v;
        sscanf(at + 2 * i, "%2x", &v);
        out[i] = (unsigned char)v;
    }
}

static void member_is_last_and_chain_is_the_hmac_of_prev_and_the_line(void **state)
{
    struct fixture *f = *state;
    struct lv_audit *a = open_audit(f);
    unsigned char prev[32] = {0};
    char want[65];
    static const char head[] = "{\"msg\":\"one\",\"audit\":{\"stream\":\"pod/app\",\"key\":\"a1\","
                               "\"seq\":1,\"chain\":\"";
    char *first = chained(a, "{\"msg\":\"one\"");
    assert_memory_equal(first, head, sizeof head - 1);
    assert_int_equal(strlen(first), sizeof head - 1 + 64 + 3);
    assert_string_equal(first + strlen(first) - 3, "\"}}");
    expected_chain(prev, first, want);
    assert_memory_equal(strstr(first, "\"chain\":\"") + 9, want, 64);
    chain_value(first, prev);
    char *second = chained(a, "{");
    assert_memory_equal(second, "{\"audit\":{", 10); /* no comma in an empty object */
    assert_non_null(strstr(second, "\"seq\":2,"));
    expected_chain(prev, second, want);
    assert_memory_equal(strstr(second, "\"chain\":\"") + 9, want, 64);
    assert_int_equal(lv_metrics.audit_last_seq, 2);
    free(first);
    free(second);
    lv_audit_free(a);
}

/* The "settled" and "reserved" seqs of the state file; -1 when it is absent. */
static void state_seqs(struct lv_audit *a, long long *settled, long long *reserved)
{
    FILE *fp = fopen(lv_audit_state_path(a), "r");
    *settled = *reserved = -1;
    if (!fp)
        return;
    char hex[80];
    assert_int_equal(fscanf(fp, "logveil-audit-state 2 settled %lld %64s reserved %lld", settled,
                            hex, reserved),
                     3);
    fclose(fp);
}

static void seqs_are_reserved_before_the_outputs_and_settled_in_order(void **state)
{
    struct fixture *f = *state;
    struct lv_audit *a = open_audit(f);
    long long settled, reserved;
    char *lines[7] = {0};
    for (uint64_t batch = 1; batch <= 3; batch++) {
        for (int i = 0; i < 2; i++)
            lines[2 * batch - 1 + (uint64_t)i] = chained(a, "{\"x\":1");
        lv_audit_sealed(a, batch); /* batch 1: seq 1-2, 2: 3-4, 3: 5-6 */
        state_seqs(a, &settled, &reserved);
        assert_int_equal(reserved, (long long)batch * 2); /* on disk before any output has it */
        assert_int_equal(settled, 0);
    }
    lv_audit_settled(a, 2);
    lv_audit_settled(a, 1);
    lv_audit_sealed(a, 4); /* nothing chained since: not a batch of ours */
    lv_audit_free(a);      /* batch 3 never settled: an unclean stop */
    a = open_audit(f);
    state_seqs(a, &settled, &reserved);
    assert_int_equal(settled, 4);
    assert_int_equal(reserved, 6);
    /* The next record declares 5..6 in flight and links to seq 4. */
    char *next = chained(a, "{\"x\":2");
    assert_non_null(strstr(next, "\"seq\":7,\"restart\":[5,6],\"chain\":\""));
    unsigned char prev[32];
    char want[65];
    chain_value(lines[4], prev);
    expected_chain(prev, next, want);
    assert_memory_equal(strstr(next, "\"chain\":\"") + 9, want, 64);
    char *after = chained(a, "{\"x\":3"); /* declared once only */
    assert_non_null(strstr(after, "\"seq\":8,\"chain\":\""));
    for (int i = 1; i <= 6; i++)
        free(lines[i]);
    free(next);
    free(after);
    lv_audit_free(a);
}

static void next_process_continues_the_chain(void **state)
{
    struct fixture *f = *state;
    struct lv_audit *a = open_audit(f);
    char *last = chained(a, "{\"n\":1");
    lv_audit_sealed(a, 7);
    lv_audit_settled(a, 7);
    lv_audit_free(a);
    a = open_audit(f);
    char *next = chained(a, "{\"n\":2");
    unsigned char prev[32];
    char want[65];
    chain_value(last, prev);
    expected_chain(prev, next, want);
    assert_non_null(strstr(next, "\"seq\":2,"));
    assert_memory_equal(strstr(next, "\"chain\":\"") + 9, want, 64);
    free(last);
    free(next);
    lv_audit_free(a);
}

static void damaged_or_foreign_state_is_refused(void **state)
{
    struct fixture *f = *state;
    struct lv_audit *a = open_audit(f);
    free(chained(a, "{"));
    lv_audit_sealed(a, 1);
    lv_audit_settled(a, 1);
    char path[256];
    snprintf(path, sizeof path, "%s", lv_audit_state_path(a));
    lv_audit_free(a);
    f->conf.audit.stream = "pod/other"; /* another stream has its own file */
    a = open_audit(f);
    assert_string_not_equal(lv_audit_state_path(a), path);
    lv_audit_free(a);
    f->conf.audit.stream = "pod/app";
    FILE *fp = fopen(path, "r+");
    fseek(fp, 26, SEEK_SET); /* inside "seq 1" */
    fputc('x', fp);
    fclose(fp);
    char err[256];
    assert_null(lv_audit_new(&f->conf, err, sizeof err));
    assert_non_null(strstr(err, "is damaged"));
}

static void no_audit_section_means_no_audit_trail(void **state)
{
    struct fixture *f = *state;
    char err[64] = "x";
    f->conf.audit.key = NULL;
    assert_null(lv_audit_new(&f->conf, err, sizeof err));
    assert_string_equal(err, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(member_is_last_and_chain_is_the_hmac_of_prev_and_the_line,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(seqs_are_reserved_before_the_outputs_and_settled_in_order,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(next_process_continues_the_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(damaged_or_foreign_state_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(no_audit_section_means_no_audit_trail, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
