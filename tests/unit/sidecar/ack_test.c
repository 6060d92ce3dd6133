/*
 * The acknowledgement engine, driven by hand: batches are plain structs,
 * marks are added as a sealed batch would add them, and outputs settle them
 * in whatever order a test picks. The oracle is a model kept by the test:
 * the acknowledged offset must be the end of the longest run of settled
 * marks from the start, whatever the order, and never more.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ack.h"

#define NB 64

struct model {
    struct lv_batch b[NB];
    uint64_t end[NB]; /* the offset each batch's mark carries */
    bool settled[NB];
    size_t n;
};

static void model_free(struct model *m)
{
    for (size_t i = 0; i < m->n; i++) {
        lv_ack_batch_free(&m->b[i]);
        lv_buf_free(&m->b[i].data);
        free(m->b[i].recs);
    }
}

/* A batch for `outputs` with one mark, at `end`, in `marks`. */
static struct lv_batch *add(struct model *m, struct lv_ack_marks *marks, uint64_t end,
                            uint32_t outputs)
{
    struct lv_batch *b = &m->b[m->n];
    memset(b, 0, sizeof *b);
    lv_ack_mark(marks, end, b);
    lv_ack_batch_open(b, outputs);
    m->end[m->n++] = end;
    return b;
}

/* What the acknowledged offset must be: the end of the last batch of the
 * longest settled run from the first. */
static uint64_t expected(const struct model *m, uint64_t start)
{
    uint64_t at = start;
    for (size_t i = 0; i < m->n && m->settled[i]; i++)
        at = m->end[i];
    return at;
}

static void settle_output(struct model *m, size_t i, unsigned out)
{
    if (lv_ack_batch_done(&m->b[i], out)) {
        lv_ack_batch_settle(&m->b[i]);
        m->settled[i] = true;
    }
}

static void the_checkpoint_follows_settled_batches_in_order_only(void **state)
{
    (void)state;
    struct model m = {0};
    struct lv_ack_marks *marks = lv_ack_marks_new(100);
    for (int k = 0; k < 5; k++)
        add(&m, marks, 100 + 10 * (uint64_t)(k + 1), 1);
    assert_int_equal(lv_ack_acked(marks), 100);
    settle_output(&m, 2, 0);
    settle_output(&m, 1, 0);
    assert_int_equal(lv_ack_acked(marks), 100); /* batch 0 still out */
    settle_output(&m, 0, 0);
    assert_int_equal(lv_ack_acked(marks), 130);
    settle_output(&m, 4, 0);
    assert_int_equal(lv_ack_acked(marks), 130);
    settle_output(&m, 3, 0);
    assert_int_equal(lv_ack_acked(marks), 150);
    assert_int_equal(lv_ack_marks_count(marks), 0);
    lv_ack_marks_close(marks);
    model_free(&m);
}

/* The old ring of 8192 sequence numbers let a batch settled at once reuse
 * the slot of one still waiting. Here one batch waits while a hundred
 * thousand after it settle at once: the checkpoint must not move, and the
 * list must stay short (settled neighbours merge). */
static void a_waiting_batch_holds_the_checkpoint_however_many_settle_after_it(void **state)
{
    (void)state;
    struct lv_ack_marks *marks = lv_ack_marks_new(0);
    struct lv_batch waiting = {0}, b = {0};
    lv_ack_mark(marks, 10, &waiting);
    lv_ack_batch_open(&waiting, 1);
    for (uint64_t k = 1; k <= 100000; k++) {
        lv_ack_mark(marks, 10 + k, &b);
        lv_ack_batch_settle(&b); /* emptied by sampling, or spooled */
        assert_int_equal(lv_ack_acked(marks), 0);
        assert_true(lv_ack_marks_count(marks) <= 2);
    }
    assert_true(lv_ack_batch_done(&waiting, 0));
    lv_ack_batch_settle(&waiting);
    assert_int_equal(lv_ack_acked(marks), 100010);
    assert_int_equal(lv_ack_marks_count(marks), 0);
    lv_ack_batch_free(&b);
    lv_ack_batch_free(&waiting);
    lv_ack_marks_close(marks);
}

/* Every order of settling, every fan-out: the acknowledged offset is the
 * model's, and the list holds at most two marks per unsettled batch. */
static void any_settling_order_gives_the_model_checkpoint(void **state)
{
    (void)state;
    srand(1234);
    for (int round = 0; round < 200; round++) {
        struct model m = {0};
        struct lv_ack_marks *marks = lv_ack_marks_new(7);
        unsigned nout = 1 + (unsigned)(rand() % 3);
        uint32_t all = (1u << nout) - 1;
        uint64_t at = 7;
        for (int k = 0; k < NB; k++) {
            at += (uint64_t)(rand() % 3); /* a batch may end where the last did */
            add(&m, marks, at, all);
        }
        /* Random (batch, output) settlements until every batch is settled. */
        size_t left = (size_t)NB * nout;
        while (left) {
            size_t i = (size_t)rand() % NB;
            unsigned out = (unsigned)rand() % nout;
            if (!(m.b[i].pending & (1u << out)))
                continue;
            settle_output(&m, i, out);
            left--;
            assert_int_equal(lv_ack_acked(marks), expected(&m, 7));
            size_t unsettled = 0;
            for (size_t j = 0; j < m.n; j++)
                unsettled += !m.settled[j];
            assert_true(lv_ack_marks_count(marks) <= 2 * unsettled);
        }
        assert_int_equal(lv_ack_acked(marks), at);
        lv_ack_marks_close(marks);
        model_free(&m);
    }
}

/* The buffer's budget counts what acknowledgement holds for a batch in
 * flight: more with each source's mark, twice a mark's size each (the test
 * above shows a list never holds more than twice its unsettled marks), and
 * no mark once the batch is settled. */
static void a_batch_counts_its_marks_in_the_budget(void **state)
{
    struct lv_batch b;
    struct lv_ack_marks *marks[8];
    size_t last = 0;
    (void)state;
    memset(&b, 0, sizeof b);
    for (size_t k = 0; k < 8; k++) {
        marks[k] = lv_ack_marks_new(0);
        lv_ack_mark(marks[k], 10, &b);
        size_t now = lv_ack_batch_bytes(&b);
        assert_true(now >= last + 2 * (sizeof(uint64_t) + 3 * sizeof(void *)));
        last = now;
    }
    lv_ack_batch_open(&b, 1);
    assert_true(lv_ack_batch_done(&b, 0));
    lv_ack_batch_settle(&b);
    assert_int_equal(lv_ack_batch_bytes(&b), b.capmarks * sizeof *b.marks);
    for (size_t k = 0; k < 8; k++) {
        assert_int_equal(lv_ack_acked(marks[k]), 10);
        lv_ack_marks_close(marks[k]);
    }
    lv_ack_batch_free(&b);
}

static void a_forgotten_batch_is_never_passed(void **state)
{
    (void)state;
    struct model m = {0};
    struct lv_ack_marks *marks = lv_ack_marks_new(0);
    add(&m, marks, 10, 1);
    add(&m, marks, 20, 1);
    lv_ack_batch_forget(&m.b[0]); /* left at shutdown for the input to read again */
    settle_output(&m, 1, 0);
    assert_int_equal(lv_ack_acked(marks), 0);
    lv_ack_marks_close(marks);
    model_free(&m);
}

/* A source closed (its file truncated and reopened) while batches still
 * hold its marks: they settle later without touching the closed list. */
static void a_closed_source_leaves_its_marks_to_their_batches(void **state)
{
    (void)state;
    struct model m = {0};
    struct lv_ack_marks *marks = lv_ack_marks_new(0);
    add(&m, marks, 10, 1);
    add(&m, marks, 20, 1);
    settle_output(&m, 1, 0);
    lv_ack_marks_close(marks);
    settle_output(&m, 0, 0); /* under ASan: no use after free, no leak */
    model_free(&m);
}

/* In every build, not only debug ones: a broken count would free a batch
 * an output still holds. */
static void settling_twice_for_one_output_aborts(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct lv_batch b = {0};
        lv_ack_batch_open(&b, 3);
        if (lv_ack_batch_done(&b, 1))
            _exit(2);
        lv_ack_batch_done(&b, 1);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
}

static void a_part_holds_the_records_to_retry_and_its_parent_waits(void **state)
{
    (void)state;
    struct lv_batch b = {0}, part = {0};
    lv_buf_init(&b.data, 0, 0);
    lv_buf_init(&part.data, 0, 0);
    const char *text[] = {"{\"a\":1}", "{\"b\":22}", "{\"c\":333}"};
    b.recs = calloc(3, sizeof *b.recs);
    for (size_t r = 0; r < 3; r++) {
        b.recs[r] = (struct lv_record){.off = b.data.len, .len = (uint32_t)strlen(text[r]),
                                       .level = (uint8_t)r};
        assert_int_equal(lv_buf_append(&b.data, text[r], strlen(text[r])), 0);
        assert_int_equal(lv_buf_putc(&b.data, '\n'), 0);
    }
    b.n = b.cap = 3;
    b.seq = 41;
    lv_ack_batch_open(&b, 3);
    const uint8_t outcomes[] = {LV_SENT, LV_RETRY, LV_RETRY};
    lv_ack_split(&b, 1, outcomes, &part);
    assert_int_equal(part.n, 2);
    assert_int_equal(part.seq, 41);
    assert_ptr_equal(part.parent, &b);
    assert_int_equal(part.pending, 2);
    assert_int_equal(part.data.len, strlen("{\"b\":22}\n{\"c\":333}\n"));
    assert_memory_equal(part.data.data, "{\"b\":22}\n{\"c\":333}\n", part.data.len);
    assert_int_equal(part.recs[1].off, strlen("{\"b\":22}\n"));
    assert_int_equal(part.recs[1].level, 2);
    assert_int_equal(b.pending, 3); /* the parent waits for the part */
    assert_false(lv_ack_batch_durable(&part));
    b.spool_id = 5;
    assert_true(lv_ack_batch_durable(&part)); /* its parent is on disk */
    lv_buf_free(&b.data);
    lv_buf_free(&part.data);
    free(b.recs);
    free(part.recs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_checkpoint_follows_settled_batches_in_order_only),
        cmocka_unit_test(a_waiting_batch_holds_the_checkpoint_however_many_settle_after_it),
        cmocka_unit_test(any_settling_order_gives_the_model_checkpoint),
        cmocka_unit_test(a_batch_counts_its_marks_in_the_budget),
        cmocka_unit_test(a_forgotten_batch_is_never_passed),
        cmocka_unit_test(a_closed_source_leaves_its_marks_to_their_batches),
        cmocka_unit_test(settling_twice_for_one_output_aborts),
        cmocka_unit_test(a_part_holds_the_records_to_retry_and_its_parent_waits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
