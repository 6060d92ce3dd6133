/*
 * The tail input's guard on real files in a temporary directory: what it
 * allows, what it refuses and under which reason, and that each refusal is
 * counted once while scans keep finding it.
 */
#include <errno.h>
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

#include <cmocka.h>

#include "input/tail_guard.h"
#include "logveil/conf.h"
#include "logveil/log.h"
#include "logveil/metrics.h"

struct fx {
    char dir[64]; /* the root: logs/ and elsewhere/ under it */
    char logs[96], elsewhere[96], secret[128], glob[128];
    char *paths[1];
    char *secrets[1];
    struct lv_input_conf in;
    struct lv_conf conf;
};

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/lv_guard_XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->logs, sizeof fx->logs, "%s/logs", fx->dir);
    snprintf(fx->elsewhere, sizeof fx->elsewhere, "%s/elsewhere", fx->dir);
    assert_int_equal(mkdir(fx->logs, 0700), 0);
    assert_int_equal(mkdir(fx->elsewhere, 0700), 0);
    snprintf(fx->secret, sizeof fx->secret, "%s/key", fx->elsewhere);
    put(fx->secret, "k3y\n");
    snprintf(fx->glob, sizeof fx->glob, "%s/*.log", fx->logs);
    fx->paths[0] = fx->glob;
    fx->secrets[0] = fx->secret;
    fx->in = (struct lv_input_conf){.kind = LV_INPUT_TAIL, .paths = fx->paths, .npaths = 1};
    fx->conf = (struct lv_conf){.secret_files = fx->secrets, .nsecret_files = 1};
    lv_metrics_reset();
    lv_log_set_level(LV_LOG_ERROR);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

static void at(const struct fx *fx, const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", fx->logs, name);
}

static void regular_file_under_the_globs_directory_is_allowed_and_opened(void **state)
{
    struct fx *fx = *state;
    char p[160];
    struct stat st, want, opened;
    at(fx, "app.log", p, sizeof p);
    put(p, "line\n");
    assert_int_equal(stat(p, &want), 0);
    struct lv_tail_guard *g = lv_tail_guard_new(&fx->conf, &fx->in, "t");
    assert_true(lv_tail_guard_check(g, p, &st));
    assert_true(st.st_ino == want.st_ino && st.st_dev == want.st_dev);
    int fd = lv_tail_guard_open(g, p, &opened);
    assert_true(fd >= 0);
    char buf[8];
    assert_int_equal(read(fd, buf, sizeof buf), 5);
    assert_true(opened.st_ino == want.st_ino);
    close(fd);
    lv_tail_guard_free(g);
}

static void link_outside_the_roots_is_refused_and_counted_once_while_it_stays(void **state)
{
    struct fx *fx = *state;
    char p[160], target[160];
    struct stat st;
    snprintf(target, sizeof target, "%s/other.log", fx->elsewhere);
    put(target, "other\n");
    at(fx, "other.log", p, sizeof p);
    assert_int_equal(symlink(target, p), 0);
    struct lv_tail_guard *g = lv_tail_guard_new(&fx->conf, &fx->in, "t");
    for (int scan = 0; scan < 3; scan++) {
        lv_tail_guard_refresh(g);
        assert_false(lv_tail_guard_check(g, p, &st));
        assert_int_equal(lv_tail_guard_open(g, p, &st), -EPERM);
    }
    assert_int_equal(lv_metrics.files_skipped[LV_SKIP_OUTSIDE_ROOTS], 1);
    /* Gone for a whole scan, then back: a new refusal. */
    lv_tail_guard_refresh(g);
    lv_tail_guard_refresh(g);
    assert_false(lv_tail_guard_check(g, p, &st));
    assert_int_equal(lv_metrics.files_skipped[LV_SKIP_OUTSIDE_ROOTS], 2);
    lv_tail_guard_free(g);
}

static void secret_is_refused_by_identity_even_inside_the_roots(void **state)
{
    struct fx *fx = *state;
    char hard[160], soft[160];
    struct stat st;
    at(fx, "hard.log", hard, sizeof hard);
    at(fx, "soft.log", soft, sizeof soft);
    assert_int_equal(link(fx->secret, hard), 0); /* a name inside the roots */
    assert_int_equal(symlink(fx->secret, soft), 0);
    struct lv_tail_guard *g = lv_tail_guard_new(&fx->conf, &fx->in, "t");
    assert_false(lv_tail_guard_check(g, hard, &st));
    assert_false(lv_tail_guard_check(g, soft, &st));
    assert_int_equal(lv_metrics.files_skipped[LV_SKIP_SECRET_FILE], 2);
    assert_int_equal(lv_metrics.files_skipped[LV_SKIP_OUTSIDE_ROOTS], 0);
    lv_tail_guard_free(g);
}

static void secret_replaced_by_a_new_file_is_refused_after_the_next_refresh(void **state)
{
    struct fx *fx = *state;
    char link_path[160], tmp[160];
    struct stat st;
    struct lv_tail_guard *g = lv_tail_guard_new(&fx->conf, &fx->in, "t");
    /* As a Kubernetes secret volume updates: a new file renamed over. */
    snprintf(tmp, sizeof tmp, "%s.new", fx->secret);
    put(tmp, "n3w\n");
    assert_int_equal(rename(tmp, fx->secret), 0);
    at(fx, "k.log", link_path, sizeof link_path);
    assert_int_equal(link(fx->secret, link_path), 0); /* only its identity says what it is */
    lv_tail_guard_refresh(g);
    assert_false(lv_tail_guard_check(g, link_path, &st));
    assert_int_equal(lv_metrics.files_skipped[LV_SKIP_SECRET_FILE], 1);
    lv_tail_guard_free(g);
}

static void fifo_directory_device_and_loop_are_refused_without_blocking(void **state)
{
    struct fx *fx = *state;
    char fifo[160], dir[160], zero[160], loop[160];
    struct stat st;
    at(fx, "fifo.log", fifo, sizeof fifo);
    at(fx, "dir.log", dir, sizeof dir);
    at(fx, "zero.log", zero, sizeof zero);
    at(fx, "loop.log", loop, sizeof loop);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(symlink("/dev/zero", zero), 0);
    assert_int_equal(symlink(loop, loop), 0);
    struct lv_tail_guard *g = lv_tail_guard_new(&fx->conf, &fx->in, "t");
    assert_int_equal(lv_tail_guard_open(g, fifo, &st), -EPERM); /* no writer: would block */
    assert_int_equal(lv_tail_guard_open(g, dir, &st), -EPERM);
    assert_int_equal(lv_tail_guard_open(g, zero, &st), -EPERM);
    assert_int_equal(lv_tail_guard_open(g, loop, &st), -EPERM);
    assert_int_equal(lv_metrics.files_skipped[LV_SKIP_NOT_REGULAR], 3);
    assert_int_equal(lv_metrics.files_skipped[LV_SKIP_SYMLINK_LOOP], 1);
    /* Without a guard (the unit tests of the tail), still no FIFO. */
    assert_int_equal(lv_tail_guard_open(NULL, fifo, &st), -EPERM);
    lv_tail_guard_free(g);
}

static void allowed_roots_replace_the_defaults(void **state)
{
    struct fx *fx = *state;
    char inside[160], outside[160], target[160];
    struct stat st;
    char *roots[] = {fx->elsewhere};
    fx->in.allowed_roots = roots;
    fx->in.nallowed_roots = 1;
    snprintf(target, sizeof target, "%s/pod.log", fx->elsewhere);
    put(target, "pod\n");
    at(fx, "pod.log", inside, sizeof inside);
    assert_int_equal(symlink(target, inside), 0);
    at(fx, "local.log", outside, sizeof outside);
    put(outside, "local\n");
    struct lv_tail_guard *g = lv_tail_guard_new(&fx->conf, &fx->in, "t");
    assert_true(lv_tail_guard_check(g, inside, &st));
    assert_false(lv_tail_guard_check(g, outside, &st));
    assert_int_equal(lv_metrics.files_skipped[LV_SKIP_OUTSIDE_ROOTS], 1);
    lv_tail_guard_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            regular_file_under_the_globs_directory_is_allowed_and_opened, setup, teardown),
        cmocka_unit_test_setup_teardown(
            link_outside_the_roots_is_refused_and_counted_once_while_it_stays, setup, teardown),
        cmocka_unit_test_setup_teardown(secret_is_refused_by_identity_even_inside_the_roots, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            secret_replaced_by_a_new_file_is_refused_after_the_next_refresh, setup, teardown),
        cmocka_unit_test_setup_teardown(fifo_directory_device_and_loop_are_refused_without_blocking,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(allowed_roots_replace_the_defaults, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
