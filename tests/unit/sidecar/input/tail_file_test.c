/*
 * What a followed file is known by, checked on real files in a temporary
 * directory: the first bytes alone do not tell apart files that start with
 * the same banner, the bytes before the checkpointed offset do; a copy or a
 * gzip of a file holds it, another file does not; a generation read to its
 * end is sealed at its size; the unread lines of a closed file are counted
 * for the day it is deleted; generations are listed in rotation order.
 * The expected fingerprints are computed here, from the bytes written, not
 * by the code under test.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "input/checkpoint.h"
#include "input/tail_file.h"
#include "input/tail_gz.h"
#include "input/tail_scan.h"

struct fixture {
    char dir[64];
    char path[128];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    const char *tmp = getenv("TMPDIR");
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "%s/lvtailXXXXXX", tmp && strlen(tmp) < 40 ? tmp : "/tmp");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/0.log", f->dir);
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

static void put(const char *path, const char *text)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, strlen(text), fp), strlen(text));
    fclose(fp);
}

static void put_gz(const char *path, const char *text)
{
    gzFile gz = gzopen(path, "wb");
    assert_non_null(gz);
    assert_int_equal(gzwrite(gz, text, (unsigned)strlen(text)), (int)strlen(text));
    assert_int_equal(gzclose(gz), Z_OK);
}

/* A Docker json-file log: a constant banner longer than the head
 * fingerprint, then `n` lines from `first`, each with its own time. */
static char *docker_log(int first, int n)
{
    size_t cap = 4096 + (size_t)n * 128;
    char *s = malloc(cap);
    size_t len = 0;
    assert_non_null(s);
    len += (size_t)snprintf(s + len, cap - len, "{\"log\":\"");
    for (int i = 0; i < 40; i++)
        len += (size_t)snprintf(s + len, cap - len, "banner-%02d ", i);
    len += (size_t)snprintf(s + len, cap - len,
                            "\\n\",\"stream\":\"stdout\",\"time\":\"2024-05-01T10:00:%02d.0Z\"}\n",
                            first % 60);
    for (int i = first; i < first + n; i++)
        len += (size_t)snprintf(s + len, cap - len,
                                "{\"log\":\"line %d\\n\",\"stream\":\"stdout\",\"time\":"
                                "\"2024-05-01T10:%02d:%02d.%09dZ\"}\n",
                                i, (i / 60) % 60, i % 60, i * 7919 % 1000000000);
    return s;
}

static struct stat stat_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st;
}

/* What the previous run's checkpoint would say of `text` read up to `at`:
 * its identity, the fingerprints of its first bytes and of the bytes before
 * `at`, computed here from the text. */
static struct lv_tail_file *checkpointed(const char *path, const char *text, uint64_t at)
{
    struct stat st = stat_of(path);
    struct lv_tail_file *f = lv_tail_file_new(NULL, "test", NULL, path, (uint64_t)st.st_dev,
                                              (uint64_t)st.st_ino);
    size_t head = strlen(text) < LV_CHECKPOINT_FP_MAX ? strlen(text) : LV_CHECKPOINT_FP_MAX;
    size_t tail = at < LV_CHECKPOINT_TAIL_MAX ? (size_t)at : LV_CHECKPOINT_TAIL_MAX;
    f->fp = lv_checkpoint_fingerprint(text, head);
    f->fp_len = (uint32_t)head;
    f->fp_known = true;
    f->tail_fp = lv_checkpoint_fingerprint(text + at - tail, tail);
    f->tail_len = (uint32_t)tail;
    f->tail_at = at;
    f->offset = f->read_to = f->size = at;
    return f;
}

/* Rewrites `path` in place (same inode) with `text`. */
static void rewrite(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

/* ---- identity ------------------------------------------------------------------ */

static void the_same_file_grown_keeps_its_offset(void **state)
{
    struct fixture *fx = *state;
    char *a = docker_log(0, 50), *more = docker_log(0, 80);
    uint64_t at = strlen(a) - 100;
    while (a[at - 1] != '\n')
        at--;
    put(fx->path, a);
    struct lv_tail_file *f = checkpointed(fx->path, a, at);
    rewrite(fx->path, more); /* the same 50 lines, and 30 more */
    assert_false(lv_tail_file_probe_changed(f));
    assert_true(f->offset == at);
    lv_tail_file_free(f);
    free(a);
    free(more);
}

/* Another container's log on the same inode: the same banner, so the same
 * first 256 bytes, and longer than the offset. Only the bytes before the
 * offset differ. */
static void a_new_file_with_the_same_banner_is_read_from_0(void **state)
{
    struct fixture *fx = *state;
    char *a = docker_log(0, 50), *b = docker_log(1000, 90);
    assert_memory_equal(a, b, LV_CHECKPOINT_FP_MAX); /* the head says nothing */
    uint64_t at = strlen(a);
    put(fx->path, a);
    struct lv_tail_file *f = checkpointed(fx->path, a, at);
    rewrite(fx->path, b);
    assert_true(strlen(b) > at);
    assert_true(lv_tail_file_probe_changed(f));
    assert_true(f->offset == 0);
    lv_tail_file_free(f);
    free(a);
    free(b);
}

/* A version 1 checkpoint knew the first bytes only: the old behaviour,
 * kept for the one restart after an upgrade. */
static void without_a_tail_fingerprint_the_head_decides(void **state)
{
    struct fixture *fx = *state;
    char *a = docker_log(0, 50), *b = docker_log(1000, 90);
    put(fx->path, a);
    struct lv_tail_file *f = checkpointed(fx->path, a, strlen(a));
    f->tail_len = 0;
    rewrite(fx->path, b);
    assert_false(lv_tail_file_probe_changed(f));
    lv_tail_file_free(f);
    free(a);
    free(b);
}

/* A checkpointed .gz file whose inode now holds a plain log: a new file,
 * read from 0 as plain text, not "no longer the compressed file" for ever. */
static void a_plain_file_on_a_compressed_files_inode_is_plain(void **state)
{
    struct fixture *fx = *state;
    char gz[160];
    char *a = docker_log(0, 20);
    snprintf(gz, sizeof gz, "%s.1.gz", fx->path);
    put_gz(gz, a);
    struct lv_tail_file *f = checkpointed(gz, a, 100);
    f->gz = true;
    f->tail_len = 0;
    put(fx->path, "plain\n");
    rename(fx->path, gz); /* the plain file now has the name; make it the inode too */
    struct stat st = stat_of(gz);
    f->dev = (uint64_t)st.st_dev;
    f->ino = (uint64_t)st.st_ino;
    assert_true(lv_tail_file_probe_changed(f));
    assert_false(f->gz);
    assert_true(f->offset == 0);
    lv_tail_file_free(f);
    free(a);
}

/* ---- holding the content elsewhere ---------------------------------------------- */

static void a_gzip_of_the_file_holds_it_another_does_not(void **state)
{
    struct fixture *fx = *state;
    char same[160], other[160];
    bool gz = false;
    char *a = docker_log(0, 200), *b = docker_log(5000, 200);
    uint64_t at = strlen(a) / 2;
    put(fx->path, a);
    struct lv_tail_file *f = checkpointed(fx->path, a, at);
    snprintf(same, sizeof same, "%s.20250101-000000.gz", fx->path);
    snprintf(other, sizeof other, "%s.20250101-000001.gz", fx->path);
    put_gz(same, a);
    put_gz(other, b); /* same banner, other lines */
    struct stat st_same = stat_of(same), st_other = stat_of(other);
    assert_true(lv_tail_file_holds(f, same, &st_same, &gz));
    assert_true(gz);
    assert_false(lv_tail_file_holds(f, other, &st_other, &gz));
    /* Continuing there: decompressed offsets, the trailer as tail. */
    lv_tail_file_continue_in(f, same, &st_same, true);
    assert_true(f->gz);
    assert_true(f->offset == at);
    assert_string_equal(f->path, same);
    assert_int_equal(f->tail_len, 8);
    assert_true(lv_tail_file_holds(f, same, &st_same, &gz));
    assert_false(lv_tail_file_holds(f, other, &st_other, &gz));
    lv_tail_file_free(f);
    free(a);
    free(b);
}

/* copytruncate: the copy holds the file up to the offset; the truncated
 * and regrown file does not. */
static void a_copy_holds_the_file_the_regrown_original_does_not(void **state)
{
    struct fixture *fx = *state;
    char copy[160];
    bool gz = true;
    char *a = docker_log(0, 100), *b = docker_log(100, 300);
    uint64_t at = strlen(a);
    put(fx->path, a);
    struct lv_tail_file *f = checkpointed(fx->path, a, at);
    snprintf(copy, sizeof copy, "%s.1", fx->path);
    put(copy, a);
    rewrite(fx->path, b);
    struct stat st_copy = stat_of(copy), st = stat_of(fx->path);
    assert_true(lv_tail_file_holds(f, copy, &st_copy, &gz));
    assert_false(gz);
    assert_false(lv_tail_file_holds(f, fx->path, &st, &gz));
    lv_tail_file_free(f);
    free(a);
    free(b);
}

/* A generation read to its end: its size and the bytes before it. */
static void a_sealed_generation_is_known_by_its_end(void **state)
{
    struct fixture *fx = *state;
    char *a = docker_log(0, 30);
    size_t n = strlen(a);
    put(fx->path, a);
    struct stat st = stat_of(fx->path);
    struct lv_tail_file *f = lv_tail_file_generation(NULL, "test", NULL, fx->path, &st);
    assert_non_null(f);
    assert_false(f->gz);
    assert_true(f->offset == 0);
    assert_true(lv_tail_file_seal(f));
    assert_true(f->offset == n);
    assert_int_equal(f->tail_len, LV_CHECKPOINT_TAIL_MAX);
    assert_true(f->tail_fp ==
                lv_checkpoint_fingerprint(a + n - LV_CHECKPOINT_TAIL_MAX, LV_CHECKPOINT_TAIL_MAX));
    assert_true(f->fp == lv_checkpoint_fingerprint(a, LV_CHECKPOINT_FP_MAX));
    lv_tail_file_free(f);
    free(a);
}

/* The kubelet's <name>.gz of a generation read to its end is recognised
 * (by its name, length and first bytes); the same name over other content
 * of another length is not, nor is another name over other content. */
static void a_generation_read_to_its_end_is_known_in_its_gz(void **state)
{
    struct fixture *fx = *state;
    char gen[160], gz[176], other[160];
    bool is_gz = false;
    char *a = docker_log(0, 60), *b = docker_log(60, 61);
    snprintf(gen, sizeof gen, "%s.20250101-000000", fx->path);
    snprintf(gz, sizeof gz, "%s.gz", gen);
    snprintf(other, sizeof other, "%s.20250101-000001.gz", fx->path);
    put(gen, a);
    struct stat st = stat_of(gen);
    struct lv_tail_file *f = lv_tail_file_generation(NULL, "test", NULL, gen, &st);
    assert_non_null(f);
    assert_true(lv_tail_file_seal(f));
    put_gz(gz, a);
    put_gz(other, b);
    struct stat st_gz = stat_of(gz), st_other = stat_of(other);
    assert_true(lv_tail_file_holds(f, gz, &st_gz, &is_gz));
    assert_true(is_gz);
    assert_false(lv_tail_file_holds(f, other, &st_other, &is_gz));
    put_gz(gz, b); /* the same name, other content */
    st_gz = stat_of(gz);
    assert_false(lv_tail_file_holds(f, gz, &st_gz, &is_gz));
    lv_tail_file_free(f);
    free(a);
    free(b);
}

static void a_compressed_generation_is_read_decompressed(void **state)
{
    struct fixture *fx = *state;
    char gz[160];
    unsigned char trailer[8];
    char *a = docker_log(0, 30);
    snprintf(gz, sizeof gz, "%s.20250101-000000.gz", fx->path);
    put_gz(gz, a);
    struct stat st = stat_of(gz);
    struct lv_tail_file *f = lv_tail_file_generation(NULL, "test", NULL, gz, &st);
    assert_non_null(f);
    assert_true(f->gz);
    assert_true(f->fp == lv_checkpoint_fingerprint(a, LV_CHECKPOINT_FP_MAX));
    int fd = open(gz, O_RDONLY);
    assert_true(lv_tail_gz_trailer(fd, trailer));
    close(fd);
    assert_int_equal(lv_tail_gz_trailer_size(trailer), strlen(a));
    assert_true(f->tail_fp == lv_checkpoint_fingerprint(trailer, 8));
    assert_true(lv_tail_file_seal(f));
    assert_true(f->offset == strlen(a));
    lv_tail_file_free(f);
    free(a);
}

static void a_range_is_decompressed_at_its_offset(void **state)
{
    struct fixture *fx = *state;
    char gz[160], buf[64];
    char *a = docker_log(0, 400); /* more than one 16 KiB skip */
    size_t n = strlen(a);
    snprintf(gz, sizeof gz, "%s.gz", fx->path);
    put_gz(gz, a);
    int fd = open(gz, O_RDONLY);
    assert_int_equal(lv_tail_gz_range(fd, n - 40, buf, sizeof buf), 40);
    assert_memory_equal(buf, a + n - 40, 40);
    assert_int_equal(lv_tail_gz_range(fd, 20000, buf, 10), 10);
    assert_memory_equal(buf, a + 20000, 10);
    assert_int_equal(lv_tail_gz_range(fd, n + 5, buf, 10), 0);
    close(fd);
    fd = open(fx->dir, O_RDONLY | O_DIRECTORY);
    assert_int_equal(lv_tail_gz_range(fd, 0, buf, 10), -1);
    close(fd);
    free(a);
}

/* ---- unread lines ---------------------------------------------------------------- */

static void unread_lines_are_counted_up_to_the_size(void **state)
{
    struct fixture *fx = *state;
    uint64_t bytes;
    put(fx->path, "a\nb\nc\nd\ne\npartial");
    struct stat st = stat_of(fx->path);
    struct lv_tail_file *f =
        lv_tail_file_new(NULL, "test", NULL, fx->path, (uint64_t)st.st_dev, (uint64_t)st.st_ino);
    f->offset = f->read_to = 4; /* "a\nb\n" read */
    f->size = (uint64_t)st.st_size;
    assert_true(lv_tail_file_count_unread(f, 3) == 3); /* a budget: "c\nd" */
    assert_true(lv_tail_file_lost(f, &bytes) == 2);    /* c, and d's start */
    assert_true(bytes == (uint64_t)st.st_size - 4);
    assert_true(lv_tail_file_count_unread(f, 1 << 20) == (uint64_t)st.st_size - 7);
    assert_true(lv_tail_file_lost(f, &bytes) == 4); /* c d e, and the partial line */
    assert_true(lv_tail_file_count_unread(f, 1 << 20) == 0);
    f->size = f->read_to = f->offset; /* nothing unread: nothing lost */
    f->counted_to = 0;
    assert_true(lv_tail_file_lost(f, &bytes) == 0);
    assert_true(bytes == 0);
    lv_tail_file_free(f);
}

/* Nothing counted (deleted before a scan could look): one record at least. */
static void uncounted_bytes_are_one_record_at_least(void **state)
{
    struct fixture *fx = *state;
    uint64_t bytes;
    struct lv_tail_file *f = lv_tail_file_new(NULL, "test", NULL, fx->path, 1, 2);
    f->offset = f->read_to = 10;
    f->size = 5000;
    assert_true(lv_tail_file_lost(f, &bytes) == 1);
    assert_true(bytes == 4990);
    lv_tail_file_free(f);
}

/* ---- generations ----------------------------------------------------------------- */

static void generations_are_listed_in_rotation_order(void **state)
{
    struct fixture *fx = *state;
    const char *names[] = {"0.log.20250101-000003", "0.log.20250101-000001.gz",
                           "0.log.20250101-000002.gz", "0.log.20250101-000004.tmp",
                           "0.log.20250101-000000.gz", "1.log.20250101-000000", "0.log"};
    char path[192], link[192];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(path, sizeof path, "%s/%s", fx->dir, names[i]);
        put(path, names[i]);
    }
    /* Listed through a symlink to 0.log: the link's siblings and the
     * target's, each file once, by name. */
    snprintf(link, sizeof link, "%s/app.log", fx->dir);
    assert_int_equal(symlink(fx->path, link), 0);
    snprintf(path, sizeof path, "%s/app.log.20240101-000000", fx->dir);
    put(path, "the link's own");
    struct lv_tail_scan s;
    lv_tail_scan_generations(link, NULL, &s);
    const char *want[] = {"0.log.20250101-000000.gz", "0.log.20250101-000001.gz",
                          "0.log.20250101-000002.gz", "0.log.20250101-000003",
                          "app.log.20240101-000000"};
    assert_int_equal(s.n, sizeof want / sizeof *want);
    for (size_t i = 0; i < s.n; i++)
        assert_string_equal(strrchr(s.items[i].path, '/') + 1, want[i]);
    lv_tail_scan_free(&s);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(the_same_file_grown_keeps_its_offset),
        T(a_new_file_with_the_same_banner_is_read_from_0),
        T(without_a_tail_fingerprint_the_head_decides),
        T(a_plain_file_on_a_compressed_files_inode_is_plain),
        T(a_gzip_of_the_file_holds_it_another_does_not),
        T(a_copy_holds_the_file_the_regrown_original_does_not),
        T(a_sealed_generation_is_known_by_its_end),
        T(a_generation_read_to_its_end_is_known_in_its_gz),
        T(a_compressed_generation_is_read_decompressed),
        T(a_range_is_decompressed_at_its_offset),
        T(unread_lines_are_counted_up_to_the_size),
        T(uncounted_bytes_are_one_record_at_least),
        T(generations_are_listed_in_rotation_order),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
