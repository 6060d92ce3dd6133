/*
 * The disk spool, on a fresh directory per test. Batches are made from a
 * number: batch `k` holds records whose text and every metadata field derive
 * from k and the record's index, so a batch read back can be checked field by
 * field against the one that was appended. Damage is done to the files by
 * hand, at offsets computed from the frame layout in spool.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "buffer/spool.h"
#include "logveil/metrics.h"

#define HDR_LEN 40 /* header and done field of a version 2 frame */
#define HDR1_LEN 24
#define META_LEN 35
#define NOUTPUTS 2
#define ALL 3u
#define SIG 0x5eed5eedu
#define FIRST_SEG "seg-0000000000000001.lvs"

struct fixture {
    char root[64];
    char dir[128];
    struct lv_spool *s;
};

/* ---- batches ------------------------------------------------------------------ */

static void batch_init(struct lv_batch *b, size_t limit)
{
    memset(b, 0, sizeof *b);
    lv_buf_init(&b->data, 0, limit);
}

static void batch_free(struct lv_batch *b)
{
    lv_buf_free(&b->data);
    free(b->recs);
}

static struct lv_record record_for(unsigned k, size_t i)
{
    return (struct lv_record){
        .level = (uint8_t)((k + i) % LV_LEVEL_COUNT),
        .stream = (uint8_t)(i % 2),
        .keep = (uint8_t)(i % 3 == 0),
        .time_ns = (int64_t)k * 1000000007 - (int64_t)i * 13,
        .key_hash = 0x9e3779b97f4a7c15ull * (k + 1) + i,
        .pos = {.source = k % 5, .end = (uint64_t)k << 40 | i},
    };
}

/* Batch `k`: `n` records, the i-th padded to i % 17 extra bytes, plus `pad`. */
static void make_batch(struct lv_batch *b, unsigned k, size_t n, size_t pad)
{
    b->data.len = 0;
    b->n = 0;
    if (b->cap < n) {
        b->recs = lv_xrealloc(b->recs, n * sizeof *b->recs);
        b->cap = n;
    }
    for (size_t i = 0; i < n; i++) {
        char text[64];
        int len = snprintf(text, sizeof text, "{\"batch\":%u,\"rec\":%zu,\"p\":\"", k, i);
        struct lv_record r = record_for(k, i);
        r.off = b->data.len;
        assert_int_equal(lv_buf_append(&b->data, text, (size_t)len), 0);
        for (size_t j = 0; j < i % 17 + pad; j++)
            assert_int_equal(lv_buf_putc(&b->data, 'x'), 0);
        assert_int_equal(lv_buf_puts(&b->data, "\"}"), 0);
        r.len = (uint32_t)(b->data.len - r.off);
        assert_int_equal(lv_buf_putc(&b->data, '\n'), 0);
        b->recs[b->n++] = r;
    }
}

static void assert_same_batch(const struct lv_batch *got, const struct lv_batch *want)
{
    assert_int_equal(got->n, want->n);
    assert_int_equal(got->data.len, want->data.len);
    assert_memory_equal(got->data.data, want->data.data, want->data.len);
    for (size_t i = 0; i < want->n; i++) {
        const struct lv_record *g = &got->recs[i], *w = &want->recs[i];
        assert_int_equal(g->off, w->off);
        assert_int_equal(g->len, w->len);
        assert_int_equal(g->level, w->level);
        assert_int_equal(g->stream, w->stream);
        assert_int_equal(g->keep, w->keep);
        assert_int_equal(g->time_ns, w->time_ns);
        assert_int_equal(g->key_hash, w->key_hash);
        assert_int_equal(g->pos.source, w->pos.source);
        assert_int_equal(g->pos.end, w->pos.end);
    }
}

/* The bytes batch `k` takes on disk. */
static size_t frame_len(unsigned k, size_t n, size_t pad)
{
    struct lv_batch b;
    batch_init(&b, 0);
    make_batch(&b, k, n, pad);
    size_t len = HDR_LEN + n * META_LEN + b.data.len;
    batch_free(&b);
    return len;
}

/* Appends batches first..first+count-1, each of `n` records. */
static void append_batches(struct lv_spool *s, unsigned first, unsigned count, size_t n, size_t pad)
{
    struct lv_batch b;
    batch_init(&b, 0);
    for (unsigned k = first; k < first + count; k++) {
        make_batch(&b, k, n, pad);
        assert_int_equal(lv_spool_append(s, &b, ALL), 0);
    }
    batch_free(&b);
}

/* Reads the next batch and checks it is batch `k`, still for the outputs in
 * `outputs`; returns its segment. */
static uint64_t expect_batch_for(struct lv_spool *s, unsigned k, size_t n, size_t pad,
                                 uint32_t outputs)
{
    struct lv_batch got, want;
    uint32_t for_outputs = 0;
    batch_init(&got, 1 << 24);
    batch_init(&want, 0);
    got.seq = 4242;
    make_batch(&want, k, n, pad);
    assert_int_equal(lv_spool_next(s, &got, &for_outputs), 0);
    assert_int_equal(got.seq, 4242);
    assert_int_equal(for_outputs, outputs);
    assert_same_batch(&got, &want);
    uint64_t id = got.spool_id;
    batch_free(&got);
    batch_free(&want);
    return id;
}

static uint64_t expect_batch(struct lv_spool *s, unsigned k, size_t n, size_t pad)
{
    return expect_batch_for(s, k, n, pad, ALL);
}

static void settle(struct lv_spool *s, uint64_t id)
{
    struct lv_batch b = {.spool_id = id};
    lv_spool_settled(s, &b);
}

static void expect_nothing_left(struct lv_spool *s)
{
    struct lv_batch b;
    uint32_t outputs;
    batch_init(&b, 0);
    assert_int_equal(lv_spool_next(s, &b, &outputs), -ENOENT);
    assert_int_equal(b.n, 0);
    assert_true(lv_spool_empty(s));
    batch_free(&b);
}

/* ---- files ---------------------------------------------------------------------- */

static size_t count_segments(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strncmp(e->d_name, "seg-", 4) == 0 && strlen(e->d_name) == 24 &&
             strcmp(e->d_name + 20, ".lvs") == 0;
    closedir(d);
    return n;
}

static void path_in(char *out, size_t len, const struct fixture *f, const char *name)
{
    snprintf(out, len, "%s/%s", f->dir, name);
}

static bool exists(const struct fixture *f, const char *name)
{
    char path[256];
    struct stat st;
    path_in(path, sizeof path, f, name);
    return stat(path, &st) == 0;
}

static void write_file(const struct fixture *f, const char *name, const char *text)
{
    char path[256];
    path_in(path, sizeof path, f, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void xor_byte(const struct fixture *f, const char *name, off_t off, unsigned char mask)
{
    char path[256];
    unsigned char c;
    path_in(path, sizeof path, f, name);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &c, 1, off), 1);
    c ^= mask;
    assert_int_equal(pwrite(fd, &c, 1, off), 1);
    close(fd);
}

static off_t file_size(const struct fixture *f, const char *name)
{
    char path[256];
    struct stat st;
    path_in(path, sizeof path, f, name);
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

static void reopen(struct fixture *f, uint64_t max_bytes)
{
    char err[256] = "";
    lv_spool_close(f->s);
    f->s = lv_spool_open(f->dir, max_bytes, NOUTPUTS, SIG, err, sizeof err);
    assert_non_null(f->s);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->root, sizeof f->root, "/tmp/spool_test.XXXXXX");
    assert_non_null(mkdtemp(f->root));
    snprintf(f->dir, sizeof f->dir, "%s/spool", f->root);
    reopen(f, 1ull << 30);
    lv_metrics_reset();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    lv_spool_close(f->s);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->root);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* ---- tests ---------------------------------------------------------------------- */

static void append_then_next_returns_the_same_batches_in_order(void **state)
{
    struct fixture *f = *state;
    append_batches(f->s, 0, 5, 20, 0);
    assert_false(lv_spool_empty(f->s));
    assert_int_equal(lv_spool_bytes(f->s), 5 * frame_len(0, 20, 0));
    for (unsigned k = 0; k < 5; k++)
        expect_batch(f->s, k, 20, 0);
    expect_nothing_left(f->s);
}

static void a_batch_without_records_comes_back_empty(void **state)
{
    struct fixture *f = *state;
    append_batches(f->s, 0, 1, 0, 0);
    append_batches(f->s, 1, 1, 3, 0);
    expect_batch(f->s, 0, 0, 0);
    expect_batch(f->s, 1, 3, 0);
    expect_nothing_left(f->s);
}

static void order_is_kept_across_segment_rollover(void **state)
{
    struct fixture *f = *state;
    /* About 1.1 MiB a batch: 20 batches take three segments. */
    append_batches(f->s, 0, 20, 1000, 1000);
    assert_int_equal(count_segments(f->dir), 3);
    for (unsigned k = 0; k < 20; k++)
        expect_batch(f->s, k, 1000, 1000);
    expect_nothing_left(f->s);
}

static void reopening_replays_what_was_left_before_what_is_new(void **state)
{
    struct fixture *f = *state;
    append_batches(f->s, 0, 12, 1000, 1000);
    expect_batch(f->s, 0, 1000, 1000); /* handed out but never settled */
    reopen(f, 1ull << 30);
    append_batches(f->s, 12, 3, 1000, 1000);
    for (unsigned k = 0; k < 15; k++)
        expect_batch(f->s, k, 1000, 1000);
    expect_nothing_left(f->s);
}

static void settled_segments_are_deleted_and_unsettled_ones_kept(void **state)
{
    struct fixture *f = *state;
    append_batches(f->s, 0, 20, 1000, 1000);
    uint64_t ids[20];
    for (unsigned k = 0; k < 20; k++)
        ids[k] = expect_batch(f->s, k, 1000, 1000);
    assert_int_equal(count_segments(f->dir), 3);
    assert_true(exists(f, FIRST_SEG));

    /* The first segment's batches, settled out of order, last one last. */
    uint64_t first = ids[0];
    unsigned in_first = 0;
    while (ids[in_first] == first)
        in_first++;
    for (unsigned k = in_first; k-- > 1;)
        settle(f->s, ids[k]);
    assert_true(exists(f, FIRST_SEG));
    settle(f->s, ids[0]);
    assert_false(exists(f, FIRST_SEG));
    assert_int_equal(count_segments(f->dir), 2);
    size_t left = 0;
    for (unsigned k = in_first; k < 20; k++)
        left += frame_len(k, 1000, 1000);
    assert_int_equal(lv_spool_bytes(f->s), left);

    /* What was handed out but not settled comes back after a restart. */
    reopen(f, 1ull << 30);
    for (unsigned k = in_first; k < 20; k++)
        settle(f->s, expect_batch(f->s, k, 1000, 1000));
    expect_nothing_left(f->s);
    assert_int_equal(count_segments(f->dir), 0);
    assert_int_equal(lv_spool_bytes(f->s), 0);
}

static void the_segment_being_written_is_deleted_once_drained(void **state)
{
    struct fixture *f = *state;
    append_batches(f->s, 0, 2, 10, 0);
    settle(f->s, expect_batch(f->s, 0, 10, 0));
    settle(f->s, expect_batch(f->s, 1, 10, 0));
    assert_int_equal(count_segments(f->dir), 0);
    append_batches(f->s, 2, 1, 10, 0);
    assert_int_equal(count_segments(f->dir), 1);
    settle(f->s, expect_batch(f->s, 2, 10, 0));
    expect_nothing_left(f->s);
}

static void append_past_max_bytes_returns_enospc(void **state)
{
    struct fixture *f = *state;
    size_t len = frame_len(0, 10, 0);
    reopen(f, 3 * len + len / 2);
    append_batches(f->s, 0, 3, 10, 0);
    struct lv_batch b;
    batch_init(&b, 0);
    make_batch(&b, 3, 10, 0);
    assert_int_equal(lv_spool_append(f->s, &b, ALL), -ENOSPC);
    assert_int_equal(lv_spool_bytes(f->s), 3 * len);

    /* Draining makes room again once the segment goes. */
    for (unsigned k = 0; k < 3; k++)
        settle(f->s, expect_batch(f->s, k, 10, 0));
    assert_int_equal(lv_spool_append(f->s, &b, ALL), 0);
    expect_batch(f->s, 3, 10, 0);
    batch_free(&b);
}

/* RLIMIT_FSIZE stops the write part-way (a short write, then EFBIG). */
static void a_failed_write_leaves_nothing_behind(void **state)
{
    struct fixture *f = *state;
    append_batches(f->s, 0, 1, 10, 0);
    struct lv_batch b;
    batch_init(&b, 0);
    make_batch(&b, 1, 200, 50);
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, small;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    small = old;
    small.rlim_cur = (rlim_t)file_size(f, FIRST_SEG) + 100;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    int rc = lv_spool_append(f->s, &b, ALL);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, old_handler);
    assert_int_equal(rc, -EFBIG);
    assert_int_equal(file_size(f, FIRST_SEG), frame_len(0, 10, 0));
    assert_int_equal(lv_spool_bytes(f->s), frame_len(0, 10, 0));

    /* The damaged segment is no longer written: the next batch starts another. */
    make_batch(&b, 2, 10, 0);
    assert_int_equal(lv_spool_append(f->s, &b, ALL), 0);
    assert_int_equal(count_segments(f->dir), 2);
    batch_free(&b);
    settle(f->s, expect_batch(f->s, 0, 10, 0));
    settle(f->s, expect_batch(f->s, 2, 10, 0));
    expect_nothing_left(f->s);
    assert_int_equal(count_segments(f->dir), 0);
    assert_int_equal(lv_metrics.spool_corrupt, 0);
}

static void a_torn_final_frame_is_ignored_and_earlier_frames_survive(void **state)
{
    struct fixture *f = *state;
    append_batches(f->s, 0, 3, 10, 0);
    lv_spool_close(f->s);
    f->s = NULL;
    char path[256];
    path_in(path, sizeof path, f, FIRST_SEG);
    assert_int_equal(truncate(path, file_size(f, FIRST_SEG) - 5), 0);
    reopen(f, 1ull << 30);
    expect_batch(f->s, 0, 10, 0);
    expect_batch(f->s, 1, 10, 0);
    expect_nothing_left(f->s);
    assert_int_equal(lv_metrics.spool_corrupt, 0);
}

static void a_frame_torn_inside_its_header_is_ignored(void **state)
{
    struct fixture *f = *state;
    append_batches(f->s, 0, 2, 10, 0);
    reopen(f, 1ull << 30);
    char path[256];
    path_in(path, sizeof path, f, FIRST_SEG);
    assert_int_equal(truncate(path, (off_t)frame_len(0, 10, 0) + 10), 0);
    reopen(f, 1ull << 30);
    expect_batch(f->s, 0, 10, 0);
    expect_nothing_left(f->s);
    assert_int_equal(lv_metrics.spool_corrupt, 0);
}

static void a_zero_filled_tail_is_ignored(void **state)
{
    struct fixture *f = *state;
    append_batches(f->s, 0, 1, 10, 0);
    reopen(f, 1ull << 30);
    char path[256];
    path_in(path, sizeof path, f, FIRST_SEG);
    assert_int_equal(truncate(path, (off_t)frame_len(0, 10, 0) + 4096), 0);
    reopen(f, 1ull << 30);
    expect_batch(f->s, 0, 10, 0);
    expect_nothing_left(f->s);
    assert_int_equal(lv_metrics.spool_corrupt, 0);
}

static void a_flipped_byte_in_the_middle_frame_is_counted_and_skipped(void **state)
{
    struct fixture *f = *state;
    size_t len = frame_len(0, 10, 0);
    append_batches(f->s, 0, 3, 10, 0);
    xor_byte(f, FIRST_SEG, (off_t)(len + len - 20), 0x01); /* in frame 1's text */
    expect_batch(f->s, 0, 10, 0);
    expect_batch(f->s, 2, 10, 0);
    expect_nothing_left(f->s);
    assert_int_equal(lv_metrics.spool_corrupt, 1);
    /* Its header still says how many records were lost, for both outputs. */
    assert_int_equal(lv_metrics_dropped_total(LV_DROP_SPOOL_CORRUPT), 10 * NOUTPUTS);

    struct lv_buf text;
    lv_buf_init(&text, 0, 0);
    assert_int_equal(lv_metrics_render(&text), 0);
    assert_int_equal(lv_buf_putc(&text, '\0'), 0);
    assert_non_null(strstr(text.data, "\nlogveil_spool_corrupt_batches_total 1\n"));
    lv_buf_free(&text);
}

static void a_damaged_header_is_skipped_by_finding_the_next_one(void **state)
{
    struct fixture *f = *state;
    size_t len = frame_len(0, 10, 0);
    append_batches(f->s, 0, 4, 10, 0);
    xor_byte(f, FIRST_SEG, (off_t)(len + 9), 0x40); /* frame 1's payload length */
    expect_batch(f->s, 0, 10, 0);
    expect_batch(f->s, 2, 10, 0);
    expect_batch(f->s, 3, 10, 0);
    expect_nothing_left(f->s);
    assert_int_equal(lv_metrics.spool_corrupt, 1);
}

static void damage_in_the_last_frame_is_counted(void **state)
{
    struct fixture *f = *state;
    size_t len = frame_len(0, 10, 0);
    append_batches(f->s, 0, 2, 10, 0);
    xor_byte(f, FIRST_SEG, (off_t)(len + 2), 0x01); /* frame 1's magic */
    expect_batch(f->s, 0, 10, 0);
    expect_nothing_left(f->s);
    assert_int_equal(lv_metrics.spool_corrupt, 1);
}

static void a_frame_larger_than_the_batch_limit_is_counted_and_skipped(void **state)
{
    struct fixture *f = *state;
    append_batches(f->s, 0, 1, 100, 100);
    append_batches(f->s, 1, 1, 2, 0);
    struct lv_batch small;
    uint32_t outputs;
    batch_init(&small, 1024);
    assert_int_equal(lv_spool_next(f->s, &small, &outputs), 0);
    assert_int_equal(lv_metrics.spool_corrupt, 1);
    assert_int_equal(lv_metrics_dropped_total(LV_DROP_SPOOL_CORRUPT), 100 * NOUTPUTS);
    assert_int_equal(small.n, 2);
    batch_free(&small);
    expect_nothing_left(f->s);
}

static void an_empty_directory_has_nothing_to_replay(void **state)
{
    struct fixture *f = *state;
    assert_true(lv_spool_empty(f->s));
    assert_int_equal(lv_spool_bytes(f->s), 0);
    expect_nothing_left(f->s);
    reopen(f, 1ull << 30);
    expect_nothing_left(f->s);
    assert_int_equal(count_segments(f->dir), 0);
}

static void garbage_files_in_the_directory_are_not_touched(void **state)
{
    struct fixture *f = *state;
    const char *names[] = {"notes.txt", "seg-xyz.lvs", "seg-0000000000000001.lvs.tmp",
                           "seg-000000000000000A.lvs"};
    for (size_t i = 0; i < LV_ARRAY_LEN(names); i++)
        write_file(f, names[i], "not a segment\n");
    char path[256];
    path_in(path, sizeof path, f, FIRST_SEG);
    assert_int_equal(mkdir(path, 0700), 0); /* named like a segment, but a directory */
    reopen(f, 1ull << 30);
    assert_true(lv_spool_empty(f->s));
    assert_int_equal(lv_spool_bytes(f->s), 0);
    append_batches(f->s, 0, 2, 10, 0);
    settle(f->s, expect_batch(f->s, 0, 10, 0));
    settle(f->s, expect_batch(f->s, 1, 10, 0));
    expect_nothing_left(f->s);
    for (size_t i = 0; i < LV_ARRAY_LEN(names); i++)
        assert_int_equal(file_size(f, names[i]), strlen("not a segment\n"));
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(lv_metrics.spool_corrupt, 0);
}

static void a_second_open_of_the_same_directory_is_refused(void **state)
{
    struct fixture *f = *state;
    char err[256] = "";
    assert_null(lv_spool_open(f->dir, 1 << 20, NOUTPUTS, SIG, err, sizeof err));
    assert_non_null(strstr(err, "in use"));
}

static void records_that_do_not_tile_the_data_are_refused(void **state)
{
    struct fixture *f = *state;
    struct lv_batch b;
    batch_init(&b, 0);
    make_batch(&b, 0, 3, 0);
    b.recs[1].off++;
    assert_int_equal(lv_spool_append(f->s, &b, ALL), -EINVAL);
    make_batch(&b, 0, 3, 0);
    assert_int_equal(lv_buf_putc(&b.data, 'x'), 0); /* a byte no record covers */
    assert_int_equal(lv_spool_append(f->s, &b, ALL), -EINVAL);
    batch_free(&b);
    assert_true(lv_spool_empty(f->s));
    assert_int_equal(count_segments(f->dir), 0);
}


/* Replays batch `k` of `n` records, marks it done for `outputs_done` and
 * leaves it unsettled, as a run stopped before the other outputs had it. */
static void mark_done(struct lv_spool *s, unsigned k, size_t n, uint32_t for_outputs,
                      uint32_t outputs_done)
{
    struct lv_batch got;
    uint32_t outputs;
    batch_init(&got, 1 << 24);
    assert_int_equal(lv_spool_next(s, &got, &outputs), 0);
    assert_int_equal(outputs, for_outputs);
    assert_int_equal(got.n, n);
    (void)k;
    for (unsigned i = 0; i < NOUTPUTS; i++)
        if (outputs_done & (1u << i))
            lv_spool_done(s, &got, i);
    batch_free(&got);
}

static void a_batch_is_replayed_only_to_the_outputs_that_have_not_marked_it_done(void **state)
{
    struct fixture *f = *state;
    append_batches(f->s, 0, 3, 10, 0);
    mark_done(f->s, 0, 10, ALL, 1u); /* output 0 has batch 0 */
    mark_done(f->s, 1, 10, ALL, 0);
    mark_done(f->s, 2, 10, ALL, ALL); /* both have batch 2, not yet settled */
    reopen(f, 1ull << 30);
    expect_batch_for(f->s, 0, 10, 0, 2u);
    expect_batch_for(f->s, 1, 10, 0, ALL);
    expect_nothing_left(f->s); /* batch 2 is done for every output: skipped */
}

static void a_batch_spooled_for_one_output_is_replayed_to_it_alone(void **state)
{
    struct fixture *f = *state;
    struct lv_batch b;
    batch_init(&b, 0);
    make_batch(&b, 0, 10, 0);
    assert_int_equal(lv_spool_append(f->s, &b, 2u), 0);
    batch_free(&b);
    expect_batch_for(f->s, 0, 10, 0, 2u);
}

static void a_done_field_that_does_not_check_reads_as_none_done(void **state)
{
    struct fixture *f = *state;
    append_batches(f->s, 0, 1, 10, 0);
    mark_done(f->s, 0, 10, ALL, 1u);
    reopen(f, 1ull << 30);
    xor_byte(f, FIRST_SEG, 32, 0x02); /* the done mask, now 3, but its CRC is for 1 */
    reopen(f, 1ull << 30);
    expect_batch_for(f->s, 0, 10, 0, ALL); /* a duplicate, never a loss */
    assert_int_equal(lv_metrics.spool_corrupt, 0);
}

static void after_the_outputs_change_a_batch_is_replayed_to_every_output(void **state)
{
    struct fixture *f = *state;
    char err[256] = "";
    append_batches(f->s, 0, 1, 10, 0);
    mark_done(f->s, 0, 10, ALL, 1u);
    lv_spool_close(f->s);
    f->s = lv_spool_open(f->dir, 1ull << 30, 3, SIG + 1, err, sizeof err);
    assert_non_null(f->s);
    expect_batch_for(f->s, 0, 10, 0, 7u);
}

/* A version 1 frame (24-byte header, no outputs) as an older logveil wrote it. */
static void a_version_1_frame_is_replayed_to_every_output(void **state)
{
    struct fixture *f = *state;
    append_batches(f->s, 0, 1, 10, 0);
    lv_spool_close(f->s);
    f->s = NULL;
    char path[256];
    path_in(path, sizeof path, f, FIRST_SEG);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    size_t len = (size_t)file_size(f, FIRST_SEG);
    unsigned char *v2 = malloc(len), *v1 = malloc(len);
    assert_int_equal(pread(fd, v2, len, 0), (ssize_t)len);
    memcpy(v1, v2, 20);
    v1[4] = 1; /* version */
    uint32_t c = (uint32_t)crc32(0, v1, 20);
    for (int i = 0; i < 4; i++)
        v1[20 + i] = (unsigned char)(c >> (8 * i));
    memcpy(v1 + HDR1_LEN, v2 + HDR_LEN, len - HDR_LEN);
    assert_int_equal(ftruncate(fd, 0), 0);
    assert_int_equal(pwrite(fd, v1, len - (HDR_LEN - HDR1_LEN), 0),
                     (ssize_t)(len - (HDR_LEN - HDR1_LEN)));
    close(fd);
    free(v1);
    free(v2);
    reopen(f, 1ull << 30);
    settle(f->s, expect_batch_for(f->s, 0, 10, 0, ALL));
    expect_nothing_left(f->s);
    assert_int_equal(count_segments(f->dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(append_then_next_returns_the_same_batches_in_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_batch_without_records_comes_back_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(order_is_kept_across_segment_rollover, setup, teardown),
        cmocka_unit_test_setup_teardown(reopening_replays_what_was_left_before_what_is_new, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(settled_segments_are_deleted_and_unsettled_ones_kept, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(the_segment_being_written_is_deleted_once_drained, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(append_past_max_bytes_returns_enospc, setup, teardown),
        cmocka_unit_test_setup_teardown(a_failed_write_leaves_nothing_behind, setup, teardown),
        cmocka_unit_test_setup_teardown(a_torn_final_frame_is_ignored_and_earlier_frames_survive,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_frame_torn_inside_its_header_is_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(a_zero_filled_tail_is_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(a_flipped_byte_in_the_middle_frame_is_counted_and_skipped,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_damaged_header_is_skipped_by_finding_the_next_one, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(damage_in_the_last_frame_is_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(a_frame_larger_than_the_batch_limit_is_counted_and_skipped,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(an_empty_directory_has_nothing_to_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(garbage_files_in_the_directory_are_not_touched, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_second_open_of_the_same_directory_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(records_that_do_not_tile_the_data_are_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            a_batch_is_replayed_only_to_the_outputs_that_have_not_marked_it_done, setup, teardown),
        cmocka_unit_test_setup_teardown(a_batch_spooled_for_one_output_is_replayed_to_it_alone,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_done_field_that_does_not_check_reads_as_none_done, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            after_the_outputs_change_a_batch_is_replayed_to_every_output, setup, teardown),
        cmocka_unit_test_setup_teardown(a_version_1_frame_is_replayed_to_every_output, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
