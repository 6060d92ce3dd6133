/*
 * The file and stdout outputs, driven by hand: each test builds a struct
 * lv_output with no pipeline, so lv_output_done() only records the outcome
 * in lv_output_last_outcome and counts calls in lv_output_done_calls.
 *
 * Records are fixed-width ({"seq":0007} plus '\n', 13 bytes), which makes
 * rotation sizes easy to reason about and lets content checks read the
 * sequence back.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>
#include <time.h>

#include "logveil/stage.h"

/* The pipeline's test hook (see lv_output_done() in sidecar/output/dispatch.c). */
extern enum lv_outcome lv_output_last_outcome;
extern int lv_output_done_calls;

extern const struct lv_output_type lv_output_file;
extern const struct lv_output_type lv_output_stdout;

#define REC_LEN 13 /* {"seq":0007}\n */
#define MAX_RECS 4096

struct fixture {
    char dir[64];
    char path[128];
    struct lv_output_conf conf;
    struct lv_output_counter counter;
    struct lv_output out;
    struct lv_batch batch;
    char data[MAX_RECS * REC_LEN + 1];
    int next_seq; /* sequence number of the next record made */
};

/* Writes record `seq` (wrapping at 10000, to keep the width) and its
 * newline to `dst`, which has room for REC_LEN + 1 bytes. */
static void format_rec(char *dst, int seq)
{
    snprintf(dst, REC_LEN + 1, "{\"seq\":%04u}\n", (unsigned)seq % 10000u);
}

/* Fills f->batch with `n` new records, numbered on from the last batch. */
static struct lv_batch *make_batch(struct fixture *f, size_t n)
{
    assert_true(n <= MAX_RECS);
    for (size_t i = 0; i < n; i++)
        format_rec(f->data + i * REC_LEN, f->next_seq++);
    f->batch = (struct lv_batch){.n = n};
    f->batch.data.data = f->data;
    f->batch.data.len = n * REC_LEN;
    f->batch.data.cap = sizeof(f->data);
    return &f->batch;
}

static void use_type(struct fixture *f, const struct lv_output_type *type)
{
    free(f->out.ctx);
    f->out = (struct lv_output){
        .type = type, .conf = &f->conf, .counter = &f->counter, .pipeline = NULL};
    f->out.ctx = calloc(1, type->ctx_size);
    assert_non_null(f->out.ctx);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    const char *tmp = getenv("TMPDIR");

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "%s/lvfileXXXXXX", tmp && strlen(tmp) < 40 ? tmp : "/tmp");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/out.log", f->dir);
    f->conf = (struct lv_output_conf){.kind = LV_OUTPUT_FILE, .name = "test-file", .path = f->path};
    use_type(f, &lv_output_file);
    lv_output_done_calls = 0;
    lv_output_last_outcome = LV_REJECTED;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char p[160];

    f->out.type->destroy(&f->out);
    free(f->out.ctx);
    unlink(f->path);
    for (int n = 1; n <= 10; n++) {
        snprintf(p, sizeof(p), "%s.%d", f->path, n);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Reads a whole file into a NUL-terminated buffer the caller frees; NULL
 * when it does not exist. */
static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");

    *len = 0;
    if (!fp)
        return NULL;
    char *buf = malloc(MAX_RECS * REC_LEN * 4 + 1);
    assert_non_null(buf);
    *len = fread(buf, 1, MAX_RECS * REC_LEN * 4, fp);
    buf[*len] = '\0';
    fclose(fp);
    return buf;
}

static char *slurp_rotated(const struct fixture *f, int n, size_t *len)
{
    char p[160];

    if (n == 0)
        return slurp(f->path, len);
    snprintf(p, sizeof(p), "%s.%d", f->path, n);
    return slurp(p, len);
}

static bool rotated_exists(const struct fixture *f, int n)
{
    char p[160];

    snprintf(p, sizeof(p), "%s.%d", f->path, n);
    return access(p, F_OK) == 0;
}

/* Checks that `text` holds exactly records first..first+count-1 in order. */
static void assert_records(const char *text, size_t len, int first, int count)
{
    char want[REC_LEN + 1];

    assert_int_equal(len, (size_t)count * REC_LEN);
    for (int i = 0; i < count; i++) {
        format_rec(want, first + i);
        assert_memory_equal(text + (size_t)i * REC_LEN, want, REC_LEN);
    }
}

static void submit_ok(struct fixture *f, size_t nrecs)
{
    int calls = lv_output_done_calls;

    assert_int_equal(f->out.type->submit(&f->out, make_batch(f, nrecs)), 0);
    assert_int_equal(lv_output_done_calls, calls + 1);
    assert_int_equal(lv_output_last_outcome, LV_SENT);
}

static void file_output_appends_records_and_counts_them(void **state)
{
    struct fixture *f = *state;
    size_t len;

    assert_int_equal(f->out.type->init(&f->out), 0);
    submit_ok(f, 3);
    submit_ok(f, 2);

    char *text = slurp(f->path, &len);
    assert_non_null(text);
    assert_records(text, len, 0, 5);
    free(text);
    assert_int_equal(f->counter.records, 5);
    assert_int_equal(f->counter.bytes, 5 * REC_LEN);
    assert_int_equal(f->counter.errors, 0);
}

static void file_output_creates_the_file_with_mode_0640(void **state)
{
    struct fixture *f = *state;
    struct stat st;
    mode_t old = umask(0);

    assert_int_equal(f->out.type->init(&f->out), 0);
    umask(old);
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
}

/* Batches of 3 records (39 bytes) under a 100-byte limit: two batches fit
 * in a file, the third rotates. Nothing is lost while max_files is large. */
static void rotation_never_splits_a_batch_and_keeps_every_record_in_order(void **state)
{
    struct fixture *f = *state;
    size_t len, total = 0;

    f->conf.max_bytes = 100;
    f->conf.max_files = 5;
    assert_int_equal(f->out.type->init(&f->out), 0);
    for (int i = 0; i < 7; i++)
        submit_ok(f, 3);

    /* Files oldest first: path.3 path.2 path.1 path, holding 2, 2, 2, 1
     * batches. */
    int seq = 0;
    for (int n = 3; n >= 0; n--) {
        char *text = slurp_rotated(f, n, &len);
        assert_non_null(text);
        assert_true(len <= 100);
        assert_int_equal(len % (3 * REC_LEN), 0);
        assert_records(text, len, seq, (int)(len / REC_LEN));
        seq += (int)(len / REC_LEN);
        total += len;
        free(text);
    }
    assert_int_equal(seq, 21);
    assert_int_equal(total, 21 * REC_LEN);
    assert_false(rotated_exists(f, 4));
}

/* With max_files 2, the third rotation drops the oldest file. */
static void rotation_keeps_max_files_and_drops_the_oldest(void **state)
{
    struct fixture *f = *state;
    size_t len;

    f->conf.max_bytes = 100;
    f->conf.max_files = 2;
    assert_int_equal(f->out.type->init(&f->out), 0);
    for (int i = 0; i < 7; i++)
        submit_ok(f, 3);

    char *text = slurp_rotated(f, 2, &len);
    assert_records(text, len, 6, 6); /* batches 3 and 4 */
    free(text);
    text = slurp_rotated(f, 1, &len);
    assert_records(text, len, 12, 6); /* batches 5 and 6 */
    free(text);
    text = slurp_rotated(f, 0, &len);
    assert_records(text, len, 18, 3); /* batch 7 */
    free(text);
    assert_false(rotated_exists(f, 3));
}

static void rotation_treats_max_files_zero_as_five(void **state)
{
    struct fixture *f = *state;

    f->conf.max_bytes = REC_LEN;
    f->conf.max_files = 0;
    assert_int_equal(f->out.type->init(&f->out), 0);
    for (int i = 0; i < 8; i++)
        submit_ok(f, 1);
    assert_true(rotated_exists(f, 5));
    assert_false(rotated_exists(f, 6));
}

static void batch_larger_than_max_bytes_goes_whole_into_a_fresh_file(void **state)
{
    struct fixture *f = *state;
    size_t len;

    f->conf.max_bytes = 30;
    assert_int_equal(f->out.type->init(&f->out), 0);
    submit_ok(f, 1);
    submit_ok(f, 5);

    char *text = slurp_rotated(f, 1, &len);
    assert_records(text, len, 0, 1);
    free(text);
    text = slurp_rotated(f, 0, &len);
    assert_records(text, len, 1, 5);
    free(text);
}

/* kill -9 in the middle of a write left half a record: the next run cuts the
 * file back to its last whole line before it appends. */
static void a_torn_last_line_is_cut_back_when_the_file_is_opened(void **state)
{
    struct fixture *f = *state;
    size_t len;
    FILE *fp = fopen(f->path, "w");

    assert_non_null(fp);
    for (int i = 0; i < 3; i++) {
        char rec[REC_LEN + 1];
        format_rec(rec, f->next_seq++);
        fputs(rec, fp);
    }
    fputs("{\"seq\":00", fp); /* torn */
    fclose(fp);
    assert_int_equal(f->out.type->init(&f->out), 0);
    submit_ok(f, 2);
    char *text = slurp(f->path, &len);
    assert_records(text, len, 0, 5);
    free(text);
}

/* A file with no newline at all is all torn. */
static void a_file_that_is_one_torn_line_is_emptied(void **state)
{
    struct fixture *f = *state;
    size_t len;
    FILE *fp = fopen(f->path, "w");

    assert_non_null(fp);
    for (int i = 0; i < 1000; i++)
        fputs("torn", fp); /* longer than one read back */
    fclose(fp);
    assert_int_equal(f->out.type->init(&f->out), 0);
    submit_ok(f, 1);
    char *text = slurp(f->path, &len);
    assert_records(text, len, 0, 1);
    free(text);
}

static void file_output_continues_the_size_of_an_existing_file(void **state)
{
    struct fixture *f = *state;
    size_t len;
    FILE *fp = fopen(f->path, "w");

    assert_non_null(fp);
    for (int i = 0; i < 7; i++) {
        char rec[REC_LEN + 1];
        format_rec(rec, f->next_seq++);
        fputs(rec, fp);
    }
    fclose(fp);

    /* 91 bytes already there: one more 13-byte record would pass 100. */
    f->conf.max_bytes = 100;
    assert_int_equal(f->out.type->init(&f->out), 0);
    submit_ok(f, 1);

    char *text = slurp_rotated(f, 1, &len);
    assert_records(text, len, 0, 7);
    free(text);
    text = slurp_rotated(f, 0, &len);
    assert_records(text, len, 7, 1);
    free(text);
}

static void missing_directory_fails_init_with_enoent(void **state)
{
    struct fixture *f = *state;

    snprintf(f->path, sizeof(f->path), "%s/no-such-dir/out.log", f->dir);
    assert_int_equal(f->out.type->init(&f->out), -ENOENT);
}

static void missing_path_fails_init_with_einval(void **state)
{
    struct fixture *f = *state;

    f->conf.path = NULL;
    assert_int_equal(f->out.type->init(&f->out), -EINVAL);
}

static void fsync_mode_writes_and_reports_sent(void **state)
{
    struct fixture *f = *state;
    size_t len;

    f->conf.fsync = true;
    f->conf.max_bytes = 40;
    assert_int_equal(f->out.type->init(&f->out), 0);
    submit_ok(f, 2);
    submit_ok(f, 2); /* rotates */

    char *text = slurp_rotated(f, 1, &len);
    assert_records(text, len, 0, 2);
    free(text);
    text = slurp_rotated(f, 0, &len);
    assert_records(text, len, 2, 2);
    free(text);
    assert_int_equal(f->out.type->flush(&f->out), 0);
}

/* /dev/full fails every write with ENOSPC. */
static void write_error_reports_retry_and_counts_it(void **state)
{
    struct fixture *f = *state;

    if (access("/dev/full", W_OK) != 0)
        skip();
    f->conf.path = "/dev/full";
    assert_int_equal(f->out.type->init(&f->out), 0);
    for (int i = 1; i <= 2; i++) {
        assert_int_equal(f->out.type->submit(&f->out, make_batch(f, 2)), 0);
        assert_int_equal(lv_output_done_calls, i);
        assert_int_equal(lv_output_last_outcome, LV_RETRY);
        assert_int_equal(f->counter.errors, i);
    }
    assert_int_equal(f->counter.records, 0);
}

/* RLIMIT_FSIZE makes the write stop part-way (a short write, then EFBIG):
 * the part written is taken back, and the retry leaves each record once. */
static void failed_write_is_taken_back_so_a_retry_does_not_duplicate(void **state)
{
    struct fixture *f = *state;
    struct rlimit old, small;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    size_t len;

    assert_int_equal(f->out.type->init(&f->out), 0);
    submit_ok(f, 3);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    small = (struct rlimit){.rlim_cur = 50, .rlim_max = old.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    struct lv_batch *b = make_batch(f, 3);
    int rc = f->out.type->submit(&f->out, b);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, old_handler);
    assert_int_equal(rc, 0);
    assert_int_equal(lv_output_last_outcome, LV_RETRY);
    assert_int_equal(f->counter.errors, 1);

    char *text = slurp(f->path, &len);
    assert_records(text, len, 0, 3);
    free(text);
    assert_int_equal(f->out.type->submit(&f->out, b), 0); /* the retry */
    assert_int_equal(lv_output_last_outcome, LV_SENT);
    text = slurp(f->path, &len);
    assert_records(text, len, 0, 6);
    free(text);
    assert_int_equal(f->counter.records, 6);
}

static void empty_batch_is_sent_without_writing(void **state)
{
    struct fixture *f = *state;
    struct stat st;

    assert_int_equal(f->out.type->init(&f->out), 0);
    submit_ok(f, 0);
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_size, 0);
}

/* The pipeline may destroy an instance whose init never ran or failed. */
static void destroy_accepts_a_zeroed_or_failed_context(void **state)
{
    struct fixture *f = *state;
    bool stdin_open = fcntl(STDIN_FILENO, F_GETFD) >= 0;

    f->out.type->destroy(&f->out); /* zeroed: must not close fd 0 */
    assert_int_equal(fcntl(STDIN_FILENO, F_GETFD) >= 0, stdin_open);

    snprintf(f->path, sizeof(f->path), "%s/no-such-dir/out.log", f->dir);
    assert_int_equal(f->out.type->init(&f->out), -ENOENT);
    f->out.type->destroy(&f->out);
    assert_int_equal(fcntl(STDIN_FILENO, F_GETFD) >= 0, stdin_open);

    struct lv_output none = {.type = &lv_output_file};
    f->out.type->destroy(&none);
}

/* Runs the stdout output's submit with fd 1 pointing at `fd`. */
static int submit_to_stdout_as(struct fixture *f, int fd, struct lv_batch *b)
{
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fd, STDOUT_FILENO) >= 0);
    int rc = f->out.type->submit(&f->out, b);
    assert_true(dup2(saved, STDOUT_FILENO) >= 0);
    close(saved);
    return rc;
}

static void stdout_output_writes_exact_bytes(void **state)
{
    struct fixture *f = *state;
    size_t len;

    use_type(f, &lv_output_stdout);
    f->conf = (struct lv_output_conf){.kind = LV_OUTPUT_STDOUT, .name = "test-stdout"};
    int fd = open(f->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(f->out.type->init(&f->out), 0);
    assert_int_equal(submit_to_stdout_as(f, fd, make_batch(f, 4)), 0);
    assert_int_equal(submit_to_stdout_as(f, fd, make_batch(f, 1)), 0);
    close(fd);

    assert_int_equal(lv_output_done_calls, 2);
    assert_int_equal(lv_output_last_outcome, LV_SENT);
    char *text = slurp(f->path, &len);
    assert_records(text, len, 0, 5);
    free(text);
    assert_int_equal(f->counter.records, 5);
    assert_int_equal(f->counter.bytes, 5 * REC_LEN);
}

static void stdout_output_rejects_on_a_broken_pipe(void **state)
{
    struct fixture *f = *state;
    int p[2];
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);

    use_type(f, &lv_output_stdout);
    f->conf = (struct lv_output_conf){.kind = LV_OUTPUT_STDOUT, .name = "test-stdout"};
    assert_int_equal(pipe(p), 0);
    close(p[0]);
    assert_int_equal(submit_to_stdout_as(f, p[1], make_batch(f, 2)), 0);
    close(p[1]);
    signal(SIGPIPE, old);

    assert_int_equal(lv_output_done_calls, 1);
    assert_int_equal(lv_output_last_outcome, LV_REJECTED);
    assert_int_equal(f->counter.errors, 1);
    assert_int_equal(f->counter.records, 0);
}

/* The child's side: reads the pipe slowly to EOF; 0 when it carried
 * exactly records 0..nrecs-1 in order. */
static int read_slowly_and_check(const int p[2], int nrecs)
{
    char want[REC_LEN + 1], got[REC_LEN];
    size_t have = 0;
    int seq = 0;
    ssize_t n;

    close(p[1]);
    usleep(100 * 1000); /* let the writer fill the pipe first */
    while ((n = read(p[0], got + have, REC_LEN - have)) > 0) {
        have += (size_t)n;
        if (have < REC_LEN)
            continue;
        format_rec(want, seq++);
        if (memcmp(got, want, REC_LEN) != 0)
            return 1;
        have = 0;
        if (seq % 1024 == 0)
            usleep(1000);
    }
    return n == 0 && have == 0 && seq == nrecs ? 0 : 1;
}

/* A batch of its own (the pump keeps pointers to what it queues), with
 * records, as the pipeline makes them. */
static struct lv_batch *new_batch(struct fixture *f, size_t n)
{
    struct lv_batch *b = calloc(1, sizeof *b);
    assert_non_null(b);
    lv_buf_init(&b->data, n * REC_LEN, 0);
    b->recs = calloc(n, sizeof *b->recs);
    assert_non_null(b->recs);
    for (size_t i = 0; i < n; i++) {
        char rec[REC_LEN + 1];
        format_rec(rec, f->next_seq++);
        b->recs[i] = (struct lv_record){.off = b->data.len, .len = REC_LEN - 1};
        assert_int_equal(lv_buf_append(&b->data, rec, REC_LEN), 0);
    }
    b->n = b->cap = n;
    return b;
}

static void free_batch(struct lv_batch *b)
{
    lv_buf_free(&b->data);
    free(b->recs);
    free(b);
}

/* Puts the write end of a fresh pipe on fd 1; returns the saved fd 1. */
static int pipe_as_stdout(int p[2])
{
    fflush(stdout);
    assert_int_equal(pipe(p), 0);
    int saved = dup(STDOUT_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(p[1], STDOUT_FILENO) >= 0);
    close(p[1]);
    return saved;
}

static void restore_stdout(int saved)
{
    assert_true(dup2(saved, STDOUT_FILENO) >= 0);
    close(saved);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

/* Turns the loop until `calls` outcomes are in, or 10 s pass. */
static void run_until(struct ev_loop *loop, int calls)
{
    ev_timer deadline;
    ev_timer_init(&deadline, on_deadline, 10., 0.);
    ev_timer_start(loop, &deadline);
    while (lv_output_done_calls < calls && ev_is_active(&deadline))
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &deadline);
}

/* A child reads the pipe on stdout slowly while four times the pipe's size
 * is submitted: submit never waits for the reader, the loop writes as the
 * reader makes room, and every record arrives in order. */
static void stdout_pipe_is_written_from_the_loop_and_submit_never_waits(void **state)
{
    struct fixture *f = *state;
    enum { NBATCH = 20, PER = 1000 }; /* 260,000 bytes */
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct lv_batch *b[NBATCH];
    int p[2];

    use_type(f, &lv_output_stdout);
    f->conf = (struct lv_output_conf){.kind = LV_OUTPUT_STDOUT, .name = "test-stdout"};
    f->out.loop = loop;
    int saved = pipe_as_stdout(p);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int q[2] = {p[0], STDOUT_FILENO};
        _exit(read_slowly_and_check(q, NBATCH * PER));
    }
    close(p[0]);
    assert_int_equal(f->out.type->init(&f->out), 0);
    double slowest = 0;
    for (int k = 0; k < NBATCH; k++) {
        b[k] = new_batch(f, PER);
        double t0 = now_s();
        assert_int_equal(f->out.type->submit(&f->out, b[k]), 0);
        slowest = now_s() - t0 > slowest ? now_s() - t0 : slowest;
    }
    assert_true(slowest < 0.05); /* the reader waits 100 ms before it reads */
    run_until(loop, NBATCH);
    restore_stdout(saved);
    f->out.type->destroy(&f->out);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(lv_output_done_calls, NBATCH);
    assert_int_equal(lv_output_last_outcome, LV_SENT);
    assert_int_equal(f->counter.records, NBATCH * PER);
    for (int k = 0; k < NBATCH; k++)
        free_batch(b[k]);
    ev_loop_destroy(loop);
}

/* Nobody reads: at the deadline the pump hands back every batch it holds;
 * what it counted as sent is exactly the whole records in the pipe. */
static void stdout_pump_hands_back_what_it_holds_when_cancelled(void **state)
{
    struct fixture *f = *state;
    enum { NBATCH = 20, PER = 1000 };
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct lv_batch *b[NBATCH];
    int p[2];

    use_type(f, &lv_output_stdout);
    f->conf = (struct lv_output_conf){.kind = LV_OUTPUT_STDOUT, .name = "test-stdout"};
    f->out.loop = loop;
    int saved = pipe_as_stdout(p);
    assert_int_equal(f->out.type->init(&f->out), 0);
    for (int k = 0; k < NBATCH; k++) {
        b[k] = new_batch(f, PER);
        assert_int_equal(f->out.type->submit(&f->out, b[k]), 0);
    }
    ev_run(loop, EVRUN_NOWAIT);
    int sent = lv_output_done_calls;
    assert_true(sent < NBATCH); /* the pipe holds 64 KiB */
    f->out.type->cancel(&f->out);
    assert_int_equal(lv_output_done_calls, NBATCH);
    assert_int_equal(lv_output_last_outcome, LV_RETRY);
    restore_stdout(saved);
    f->out.type->destroy(&f->out);

    char buf[4096];
    size_t bytes = 0;
    ssize_t n;
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    while ((n = read(p[0], buf, sizeof buf)) > 0)
        bytes += (size_t)n;
    close(p[0]);
    assert_int_equal(f->counter.records, bytes / REC_LEN);
    assert_true(f->counter.records >= (uint64_t)sent * PER);
    for (int k = 0; k < NBATCH; k++)
        free_batch(b[k]);
    ev_loop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(file_output_appends_records_and_counts_them, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(file_output_creates_the_file_with_mode_0640, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            rotation_never_splits_a_batch_and_keeps_every_record_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(rotation_keeps_max_files_and_drops_the_oldest, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(rotation_treats_max_files_zero_as_five, setup, teardown),
        cmocka_unit_test_setup_teardown(batch_larger_than_max_bytes_goes_whole_into_a_fresh_file,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(file_output_continues_the_size_of_an_existing_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_torn_last_line_is_cut_back_when_the_file_is_opened,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_file_that_is_one_torn_line_is_emptied, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_directory_fails_init_with_enoent, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_path_fails_init_with_einval, setup, teardown),
        cmocka_unit_test_setup_teardown(fsync_mode_writes_and_reports_sent, setup, teardown),
        cmocka_unit_test_setup_teardown(write_error_reports_retry_and_counts_it, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_write_is_taken_back_so_a_retry_does_not_duplicate,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(empty_batch_is_sent_without_writing, setup, teardown),
        cmocka_unit_test_setup_teardown(destroy_accepts_a_zeroed_or_failed_context, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(stdout_output_writes_exact_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(stdout_output_rejects_on_a_broken_pipe, setup, teardown),
        cmocka_unit_test_setup_teardown(
            stdout_pipe_is_written_from_the_loop_and_submit_never_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(stdout_pump_hands_back_what_it_holds_when_cancelled,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
