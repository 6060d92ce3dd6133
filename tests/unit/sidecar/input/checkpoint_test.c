/*
 * The tail input's checkpoint store: what is written is read back exactly,
 * anything less than a whole file (torn by a crash, damaged on disk) is
 * refused as a whole, and a write replaces the old file atomically.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "input/checkpoint.h"

struct fixture {
    char dir[64];
    char path[128];
};

static const struct lv_checkpoint_entry sample[] = {
    {2049, 1234567, 0x0123456789abcdefull, 256, 1048576, "/var/log/pods/ns_pod_uid/app/0.log",
     0x1111222233334444ull, 1024, 0},
    {2049, 42, 0xfedcba9876543210ull, 17, 17, "/var/log/containers/with space.log", 7, 17,
     LV_CHECKPOINT_DONE},
    {7, 18446744073709551615ull, 0, 0, 0, "odd\\name\nwith newline", 0, 0, LV_CHECKPOINT_GZ},
    {1, 2, 3, 4, 5, "", 18446744073709551615ull, 8, LV_CHECKPOINT_DONE | LV_CHECKPOINT_GZ},
    {9, 10, 11, 12, 13, "/u", 14, 15, LV_CHECKPOINT_UNREAD},
    {9, 11, 11, 12, 13, "/zu", 14, 8, LV_CHECKPOINT_GZ | LV_CHECKPOINT_UNREAD},
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    const char *tmp = getenv("TMPDIR");
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "%s/lvckptXXXXXX", tmp && strlen(tmp) < 40 ? tmp : "/tmp");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/tail-0.ckpt", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void save(const char *path, const struct lv_checkpoint_entry *e, size_t n)
{
    struct lv_buf b;
    lv_buf_init(&b, 0, 0);
    assert_int_equal(lv_checkpoint_format(e, n, &b), 0);
    assert_int_equal(lv_checkpoint_write(path, b.data, b.len), 0);
    lv_buf_free(&b);
}

static void put_file(const char *path, const char *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    fclose(fp);
}

static void assert_entries_equal(const struct lv_checkpoint *cp,
                                 const struct lv_checkpoint_entry *e, size_t n)
{
    assert_int_equal(cp->n, n);
    for (size_t i = 0; i < n; i++) {
        assert_true(cp->entries[i].dev == e[i].dev);
        assert_true(cp->entries[i].ino == e[i].ino);
        assert_true(cp->entries[i].fp == e[i].fp);
        assert_int_equal(cp->entries[i].fp_len, e[i].fp_len);
        assert_true(cp->entries[i].offset == e[i].offset);
        assert_string_equal(cp->entries[i].path, e[i].path);
        assert_true(cp->entries[i].tail_fp == e[i].tail_fp);
        assert_int_equal(cp->entries[i].tail_len, e[i].tail_len);
        assert_int_equal(cp->entries[i].flags, e[i].flags);
    }
}

static void fingerprint_is_fnv1a_64(void **state)
{
    (void)state;
    assert_true(lv_checkpoint_fingerprint("", 0) == 0xcbf29ce484222325ull);
    assert_true(lv_checkpoint_fingerprint("a", 1) == 0xaf63dc4c8601ec8cull);
    assert_true(lv_checkpoint_fingerprint("foobar", 6) == 0x85944171f73967e8ull);
}

static void round_trip_keeps_every_field_and_odd_paths(void **state)
{
    struct fixture *f = *state;
    struct lv_checkpoint cp;
    save(f->path, sample, LV_ARRAY_LEN(sample));
    assert_int_equal(lv_checkpoint_load(f->path, &cp), 0);
    assert_int_equal(cp.version, 2);
    assert_entries_equal(&cp, sample, LV_ARRAY_LEN(sample));
    lv_checkpoint_free(&cp);
}

/* The text is the documented one: every field in its place, flags as
 * letters. */
static void format_writes_version_2_lines(void **state)
{
    struct lv_buf b;
    (void)state;
    lv_buf_init(&b, 0, 0);
    assert_int_equal(lv_checkpoint_format(sample + 1, 5, &b), 0);
    const char *want = "logveil-tail-checkpoint 2\n"
                       "2049 42 fedcba9876543210 17 17 0000000000000007 17 d "
                       "/var/log/containers/with space.log\n"
                       "7 18446744073709551615 0000000000000000 0 0 0000000000000000 0 z "
                       "odd\\\\name\\nwith newline\n"
                       "1 2 0000000000000003 4 5 ffffffffffffffff 8 dz \n"
                       "9 10 000000000000000b 12 13 000000000000000e 15 u /u\n"
                       "9 11 000000000000000b 12 13 000000000000000e 8 zu /zu\n";
    assert_true(b.len > strlen(want));
    assert_memory_equal(b.data, want, strlen(want));
    assert_memory_equal(b.data + strlen(want), "end 5 ", 6);
    lv_buf_free(&b);
}

/* A checkpoint written before tail fingerprints and done generations is
 * still read: no tail, no flags, and the version says so. */
static void version_1_file_is_read(void **state)
{
    struct fixture *f = *state;
    struct lv_checkpoint cp;
    char text[512];
    const char *body = "logveil-tail-checkpoint 1\n"
                       "2049 1234567 0123456789abcdef 256 1048576 /var/log/pods/a b/0.log\n"
                       "7 42 fedcba9876543210 17 17 odd\\\\name\n";
    int n = snprintf(text, sizeof text, "%send 2 %016llx\n", body,
                     (unsigned long long)lv_checkpoint_fingerprint(body, strlen(body)));
    put_file(f->path, text, (size_t)n);
    assert_int_equal(lv_checkpoint_load(f->path, &cp), 0);
    assert_int_equal(cp.version, 1);
    assert_int_equal(cp.n, 2);
    assert_true(cp.entries[0].offset == 1048576);
    assert_string_equal(cp.entries[0].path, "/var/log/pods/a b/0.log");
    assert_string_equal(cp.entries[1].path, "odd\\name");
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(cp.entries[i].tail_len, 0);
        assert_int_equal(cp.entries[i].flags, 0);
    }
    lv_checkpoint_free(&cp);
}

/* Flags are "-" or letters among d, z, u in that order: anything else
 * refuses the file, even with a checksum that matches. */
static void unknown_flags_are_refused(void **state)
{
    struct fixture *f = *state;
    const char *bad[] = {"zd", "x", "dd", "", "d-", "ud", "uu", "-u"};
    for (size_t i = 0; i < LV_ARRAY_LEN(bad); i++) {
        struct lv_checkpoint cp;
        char body[256], text[320];
        snprintf(body, sizeof body,
                 "logveil-tail-checkpoint 2\n1 2 0000000000000003 4 5 0000000000000006 7 %s /p\n",
                 bad[i]);
        int n = snprintf(text, sizeof text, "%send 1 %016llx\n", body,
                         (unsigned long long)lv_checkpoint_fingerprint(body, strlen(body)));
        put_file(f->path, text, (size_t)n);
        if (lv_checkpoint_load(f->path, &cp) != -EINVAL)
            fail_msg("flags \"%s\" were accepted", bad[i]);
        lv_checkpoint_free(&cp);
    }
}

/* A tail fingerprint longer than LV_CHECKPOINT_TAIL_MAX cannot have been
 * written: refused. */
static void tail_longer_than_the_maximum_is_refused(void **state)
{
    struct fixture *f = *state;
    struct lv_checkpoint cp;
    struct lv_checkpoint_entry e = sample[0];
    e.tail_len = LV_CHECKPOINT_TAIL_MAX + 1;
    save(f->path, &e, 1);
    assert_int_equal(lv_checkpoint_load(f->path, &cp), -EINVAL);
    lv_checkpoint_free(&cp);
}

static void empty_checkpoint_round_trips(void **state)
{
    struct fixture *f = *state;
    struct lv_checkpoint cp;
    save(f->path, NULL, 0);
    assert_int_equal(lv_checkpoint_load(f->path, &cp), 0);
    assert_int_equal(cp.n, 0);
    lv_checkpoint_free(&cp);
}

static void missing_checkpoint_is_enoent(void **state)
{
    struct fixture *f = *state;
    struct lv_checkpoint cp;
    assert_int_equal(lv_checkpoint_load(f->path, &cp), -ENOENT);
    assert_int_equal(cp.n, 0);
    lv_checkpoint_free(&cp);
}

/* A crash in the middle of a non-atomic write would leave a prefix: every
 * prefix, down to the empty file, is refused and yields no entries. */
static void every_torn_prefix_is_refused(void **state)
{
    struct fixture *f = *state;
    struct lv_buf b;
    lv_buf_init(&b, 0, 0);
    assert_int_equal(lv_checkpoint_format(sample, LV_ARRAY_LEN(sample), &b), 0);
    for (size_t len = 0; len < b.len; len++) {
        struct lv_checkpoint cp;
        put_file(f->path, b.data, len);
        if (lv_checkpoint_load(f->path, &cp) != -EINVAL)
            fail_msg("a prefix of %zu of %zu bytes was accepted", len, b.len);
        assert_int_equal(cp.n, 0);
        lv_checkpoint_free(&cp);
    }
    lv_buf_free(&b);
}

/* Any single damaged byte (a digit of an offset, a letter of a path, the
 * checksum itself) makes the whole file unusable. */
static void every_corrupt_byte_is_refused(void **state)
{
    struct fixture *f = *state;
    struct lv_buf b;
    lv_buf_init(&b, 0, 0);
    assert_int_equal(lv_checkpoint_format(sample, LV_ARRAY_LEN(sample), &b), 0);
    for (size_t i = 0; i < b.len; i++) {
        struct lv_checkpoint cp;
        b.data[i] ^= 0x01;
        put_file(f->path, b.data, b.len);
        b.data[i] ^= 0x01;
        if (lv_checkpoint_load(f->path, &cp) == 0)
            fail_msg("damage at byte %zu of %zu was accepted", i, b.len);
        assert_int_equal(cp.n, 0);
        lv_checkpoint_free(&cp);
    }
    lv_buf_free(&b);
}

static void trailing_bytes_after_end_are_refused(void **state)
{
    struct fixture *f = *state;
    struct lv_buf b;
    struct lv_checkpoint cp;
    lv_buf_init(&b, 0, 0);
    assert_int_equal(lv_checkpoint_format(sample, 2, &b), 0);
    assert_int_equal(lv_buf_puts(&b, "1 2 0000000000000003 4 5 0000000000000006 7 - /x\n"), 0);
    put_file(f->path, b.data, b.len);
    assert_int_equal(lv_checkpoint_load(f->path, &cp), -EINVAL);
    lv_checkpoint_free(&cp);
    lv_buf_free(&b);
}

static void unknown_version_is_refused(void **state)
{
    struct fixture *f = *state;
    struct lv_checkpoint cp;
    char text[128];
    const char *body = "logveil-tail-checkpoint 3\n";
    int n = snprintf(text, sizeof text, "%send 0 %016llx\n", body,
                     (unsigned long long)lv_checkpoint_fingerprint(body, strlen(body)));
    put_file(f->path, text, (size_t)n);
    assert_int_equal(lv_checkpoint_load(f->path, &cp), -EINVAL);
    lv_checkpoint_free(&cp);
}

/* The new content replaces the old in one rename; no temporary file stays
 * behind, and one left by an earlier crash does not get in the way. */
static void write_replaces_the_file_atomically(void **state)
{
    struct fixture *f = *state;
    struct lv_checkpoint cp;
    char tmp[160];
    struct stat st;
    snprintf(tmp, sizeof tmp, "%s.tmp", f->path);
    save(f->path, sample, 1);
    put_file(tmp, "half a checkpoint", 17); /* as a crash mid-write leaves it */
    assert_int_equal(lv_checkpoint_load(f->path, &cp), 0);
    assert_entries_equal(&cp, sample, 1);
    lv_checkpoint_free(&cp);

    ino_t before;
    assert_int_equal(stat(f->path, &st), 0);
    before = st.st_ino;
    save(f->path, sample + 1, 3);
    assert_int_equal(stat(f->path, &st), 0);
    assert_true(st.st_ino != before); /* a new inode, renamed over the old */
    assert_int_equal(stat(tmp, &st), -1);
    assert_int_equal(lv_checkpoint_load(f->path, &cp), 0);
    assert_entries_equal(&cp, sample + 1, 3);
    lv_checkpoint_free(&cp);
}

static void write_into_a_missing_directory_fails_and_mkdir_creates_it(void **state)
{
    struct fixture *f = *state;
    char path[192];
    struct lv_checkpoint cp;
    snprintf(path, sizeof path, "%s/state/nested/tail-1.ckpt", f->dir);
    assert_int_equal(lv_checkpoint_write(path, "x", 1), -ENOENT);
    assert_int_equal(lv_checkpoint_mkdir(path), 0);
    assert_int_equal(lv_checkpoint_mkdir(path), 0); /* already there: fine */
    save(path, sample, 2);
    assert_int_equal(lv_checkpoint_load(path, &cp), 0);
    assert_entries_equal(&cp, sample, 2);
    lv_checkpoint_free(&cp);
}

static void free_accepts_null_and_empty(void **state)
{
    struct lv_checkpoint cp = {0};
    (void)state;
    lv_checkpoint_free(NULL);
    lv_checkpoint_free(&cp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fingerprint_is_fnv1a_64),
        cmocka_unit_test_setup_teardown(round_trip_keeps_every_field_and_odd_paths, setup,
                                        teardown),
        cmocka_unit_test(format_writes_version_2_lines),
        cmocka_unit_test_setup_teardown(version_1_file_is_read, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_flags_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(tail_longer_than_the_maximum_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(empty_checkpoint_round_trips, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_checkpoint_is_enoent, setup, teardown),
        cmocka_unit_test_setup_teardown(every_torn_prefix_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(every_corrupt_byte_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(trailing_bytes_after_end_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_version_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(write_replaces_the_file_atomically, setup, teardown),
        cmocka_unit_test_setup_teardown(write_into_a_missing_directory_fails_and_mkdir_creates_it,
                                        setup, teardown),
        cmocka_unit_test(free_accepts_null_and_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
