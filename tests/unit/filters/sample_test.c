/*
 * Tests for the sampler: rates hold within statistical bounds, decisions are
 * a stable function of the key (across processes, and against golden hash
 * values), errors and audit records are never dropped, and the token bucket
 * keeps exactly what its rate and depth allow.
 *
 * Run with --print-decisions, the binary prints the decisions for a fixed
 * list of keys and exits; the cross-process test compares that output with
 * its own.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "logveil/conf.h"
#include "sample.h"

#define N 1000000
#define SEC 1000000000LL

static struct lv_sample_profile profile_at(double rate)
{
    struct lv_sample_profile p = {.name = "test", .rate = rate};
    for (int l = 0; l < LV_LEVEL_COUNT; l++)
        p.levels[l] = -1;
    p.unknown[LV_STREAM_STDOUT] = p.unknown[LV_STREAM_STDERR] = -1;
    return p;
}

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* The hash of the i-th of a set of distinct, random-looking 16-byte keys:
 * eight random bytes, then i. Fixed seed, so a failure reproduces. */
static uint64_t random_key_hash(uint64_t i)
{
    uint64_t state = i ^ 0x6c6f677665696cULL;
    unsigned char key[16];
    uint64_t r = splitmix64(&state);

    memcpy(key, &r, 8);
    memcpy(key + 8, &i, 8);
    return lv_sample_hash((const char *)key, sizeof(key));
}

static uint64_t str_hash(const char *s)
{
    return lv_sample_hash(s, strlen(s));
}

static bool decide(struct lv_sampler *s, struct lv_sample_input *in, enum lv_drop_reason *why)
{
    double rate = -1;
    bool kept = lv_sample_decide(s, in, &rate, why);

    if (kept)
        assert_true(rate > 0 && rate <= 1.0);
    return kept;
}

static void assert_within_5_sigma(long kept, double p)
{
    double mean = N * p, sd = sqrt(N * p * (1 - p));

    if (fabs((double)kept - mean) > 5 * sd)
        fail_msg("kept %ld at rate %g, expected %.0f +- %.0f", kept, p, mean, 5 * sd);
}

static long count_kept(double rate, bool keyed)
{
    struct lv_sample_profile p = profile_at(rate);
    struct lv_sampler *s = lv_sample_new(NULL, &p);
    struct lv_sample_input in = {.level = LV_LEVEL_INFO, .has_key = keyed};
    enum lv_drop_reason why;
    long kept = 0;

    for (uint64_t i = 0; i < N; i++) {
        in.key_hash = keyed ? random_key_hash(i) : 0;
        if (decide(s, &in, &why))
            kept++;
        else
            assert_int_equal(why, LV_DROP_SAMPLED);
    }
    lv_sample_free(s);
    return kept;
}

static void keyed_records_are_kept_at_the_configured_rate(void **state)
{
    static const double rates[] = {0.01, 0.1, 0.5};

    for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++)
        assert_within_5_sigma(count_kept(rates[i], true), rates[i]);
}

static void keyless_records_are_kept_at_the_configured_rate(void **state)
{
    static const double rates[] = {0.01, 0.1, 0.5};

    for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++)
        assert_within_5_sigma(count_kept(rates[i], false), rates[i]);
}

/* Rate 0 and rate 1 are exact, for keys at both ends of the hash range. */
static void rate_zero_drops_and_rate_one_keeps_every_key(void **state)
{
    static const uint64_t hashes[] = {0, 1, UINT64_MAX >> 11, UINT64_MAX - 1, UINT64_MAX};
    struct lv_sample_profile none = profile_at(0), all = profile_at(1);
    struct lv_sampler *s0 = lv_sample_new(NULL, &none), *s1 = lv_sample_new(NULL, &all);
    enum lv_drop_reason why;

    for (size_t i = 0; i < sizeof(hashes) / sizeof(hashes[0]); i++) {
        struct lv_sample_input in = {
            .level = LV_LEVEL_INFO, .has_key = true, .key_hash = hashes[i]};
        assert_false(decide(s0, &in, &why));
        assert_true(decide(s1, &in, &why));
    }
    lv_sample_free(s0);
    lv_sample_free(s1);
}

/* XXH64 with seed 0. All but the last are published reference values and
 * cover every path through the code (empty, 1-byte, 4-byte and 8-byte tails,
 * one and more 32-byte stripes); the last pins a W3C trace id (checked
 * against a second, independent implementation). If one of these
 * changes, every deployed replica would start keeping different traces. */
static void hash_matches_golden_values(void **state)
{
    static const struct {
        const char *key;
        uint64_t hash;
    } golden[] = {
        {"", 0xEF46DB3751D8E999ULL},
        {"a", 0xD24EC4F1A98C6E5BULL},
        {"abc", 0x44BC2CF5AD770999ULL},
        {"Hello, World!", 0xC49AACF8080FE47FULL},
        {"0123456789abcdef0123456789abcdef", 0x642A94958E71E6C5ULL},
        {"Nobody inspects the spammish repetition", 0xFBCEA83C8A378BF1ULL},
        {"The quick brown fox jumps over the lazy dog", 0x0B242D361FDA71BCULL},
        {"4bf92f3577b34da6a3ce929d0e0e4736", 0x2AB28D25664B8CFDULL},
    };

    for (size_t i = 0; i < sizeof(golden) / sizeof(golden[0]); i++) {
        uint64_t h = str_hash(golden[i].key);
        if (h != golden[i].hash)
            fail_msg("hash(\"%s\") = %016llx, expected %016llx", golden[i].key,
                     (unsigned long long)h, (unsigned long long)golden[i].hash);
    }
}

/* The hash reads bytes, never words at the key's address: an unaligned key
 * hashes like an aligned copy. */
static void hash_does_not_depend_on_alignment(void **state)
{
    char buf[80];
    const char *key = "Nobody inspects the spammish repetition";

    for (size_t off = 0; off < 8; off++) {
        memcpy(buf + off, key, strlen(key));
        assert_int_equal(lv_sample_hash(buf + off, strlen(key)), str_hash(key));
    }
}

/* The decisions for "trace-0".."trace-999" at rate 0.1, then the hashes of a
 * few keys, as text. */
static void write_decisions(FILE *out)
{
    struct lv_sample_profile p = profile_at(0.1);
    struct lv_sampler *s = lv_sample_new(NULL, &p);
    enum lv_drop_reason why;
    char key[32];

    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "trace-%d", i);
        struct lv_sample_input in = {
            .level = LV_LEVEL_INFO, .has_key = true, .key_hash = str_hash(key)};
        fputc(decide(s, &in, &why) ? '1' : '0', out);
    }
    fprintf(out, "\n%016llx %016llx\n", (unsigned long long)str_hash("trace-0"),
            (unsigned long long)str_hash("4bf92f3577b34da6a3ce929d0e0e4736"));
    lv_sample_free(s);
}

static size_t read_all(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    ssize_t n;

    while (len < cap && (n = read(fd, buf + len, cap - len)) > 0)
        len += (size_t)n;
    return len;
}

/* Runs this binary again, in a fresh process (new address layout, new
 * time and pid for the sampler's seed), and returns what it printed. */
static size_t decisions_from_child(char *buf, size_t cap)
{
    int fds[2], status;

    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execl("/proc/self/exe", "sample_test", "--print-decisions", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    size_t len = read_all(fds[0], buf, cap);
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return len;
}

static void decisions_are_identical_in_another_process(void **state)
{
    static char mine[4096], theirs[4096];
    FILE *f = fmemopen(mine, sizeof(mine) - 1, "w");

    assert_non_null(f);
    write_decisions(f);
    long mine_len = ftell(f);
    fclose(f);
    size_t len = decisions_from_child(theirs, sizeof(theirs));
    assert_int_equal(len, (size_t)mine_len);
    assert_memory_equal(mine, theirs, len);
    /* Not all kept, not all dropped: the comparison says something. */
    assert_non_null(memchr(mine, '0', 1000));
    assert_non_null(memchr(mine, '1', 1000));
}

/* Levels at 1.0 and audit records under the shipped production profile, with
 * a rate limit far below the traffic: none is ever dropped, while the levels
 * that are sampled do hit the limit. */
static void errors_and_audit_records_are_never_dropped_in_production(void **state)
{
    struct lv_conf conf;
    lv_conf_defaults(&conf, "production");
    const struct lv_sample_profile *prod = lv_conf_profile(&conf);
    struct lv_sample_conf sc = {.rate_limit = 10, .burst = 10};

    assert_non_null(prod);
    struct lv_sampler *s = lv_sample_new(&sc, prod);
    long limited = 0;
    for (int l = LV_LEVEL_WARN; l <= LV_LEVEL_FATAL; l++)
        for (int st = 0; st < 2; st++)
            assert_true(lv_sample_always_kept(s, (enum lv_level)l, (enum lv_stream)st));
    for (uint64_t i = 0; i < N; i++) {
        struct lv_sample_input in = {.level = (enum lv_level)(i % LV_LEVEL_COUNT),
                                     .stream = (enum lv_stream)(i & 1),
                                     .has_key = i % 3 != 0,
                                     .key_hash = random_key_hash(i),
                                     .keep = i % 11 == 0,
                                     .now_ns = (int64_t)i * 1000};
        double rate = 0;
        enum lv_drop_reason why;
        bool kept = lv_sample_decide(s, &in, &rate, &why);
        if (in.keep || in.level >= LV_LEVEL_WARN) {
            assert_true(kept);
            assert_true(rate == 1.0);
        }
        limited += !kept && why == LV_DROP_RATE_LIMITED;
    }
    assert_true(limited > 0);
    lv_sample_free(s);
    lv_conf_free(&conf);
}

/* Every record of a trace gets the trace's decision, whatever its level, when
 * the levels share a rate; the random path is never taken for keyed records. */
static void records_with_the_same_key_share_one_decision(void **state)
{
    struct lv_sample_profile p = profile_at(0.1);
    struct lv_sampler *s = lv_sample_new(NULL, &p);
    enum lv_drop_reason why;

    for (uint64_t k = 0; k < 10000; k++) {
        struct lv_sample_input in = {.has_key = true, .key_hash = random_key_hash(k)};
        bool first = decide(s, &in, &why);
        for (int r = 0; r < 20; r++) {
            in.level = (enum lv_level)(r % 4);
            assert_int_equal(decide(s, &in, &why), first);
        }
    }
    lv_sample_free(s);
}

/* A key kept at a low rate is kept at every higher one, so a trace sampled
 * at 1% in one place and 10% in another is whole wherever the 1% kept it. */
static void a_key_kept_at_a_low_rate_is_kept_at_every_higher_rate(void **state)
{
    static const double rates[] = {0.001, 0.01, 0.1, 0.5, 0.9};
    struct lv_sampler *s[5];
    struct lv_sample_profile p[5];
    enum lv_drop_reason why;

    for (int i = 0; i < 5; i++) {
        p[i] = profile_at(rates[i]);
        s[i] = lv_sample_new(NULL, &p[i]);
    }
    for (uint64_t k = 0; k < 200000; k++) {
        struct lv_sample_input in = {
            .level = LV_LEVEL_INFO, .has_key = true, .key_hash = random_key_hash(k)};
        bool prev = decide(s[0], &in, &why);
        for (int i = 1; i < 5; i++) {
            bool kept = decide(s[i], &in, &why);
            assert_true(!prev || kept);
            prev = kept;
        }
    }
    for (int i = 0; i < 5; i++)
        lv_sample_free(s[i]);
}

/* 100/s with a burst of 100, 1M records over 10 s (one every 10 us), half of
 * them passing the sampler. The bucket starts full and is never idle long
 * enough to fill, so it lets through its depth plus 100 per second of elapsed
 * time: 100 + 100 * 9.99999 = 1099.999, i.e. 1099 records (1100 allowed for
 * rounding). */
static void token_bucket_keeps_its_burst_plus_its_rate_over_time(void **state)
{
    struct lv_sample_profile p = profile_at(0.5);
    struct lv_sample_conf sc = {.rate_limit = 100, .burst = 100};
    struct lv_sampler *s = lv_sample_new(&sc, &p);
    long kept = 0, limited = 0, sampled = 0;

    for (uint64_t i = 0; i < N; i++) {
        struct lv_sample_input in = {.level = LV_LEVEL_INFO,
                                     .has_key = true,
                                     .key_hash = random_key_hash(i),
                                     .now_ns = 5 * SEC + (int64_t)i * (10 * SEC / N)};
        enum lv_drop_reason why;
        if (decide(s, &in, &why))
            kept++;
        else if (why == LV_DROP_RATE_LIMITED)
            limited++;
        else if (why == LV_DROP_SAMPLED)
            sampled++;
    }
    lv_sample_free(s);
    assert_in_range(kept, 1099, 1100);
    assert_int_equal(kept + limited + sampled, N);
    assert_within_5_sigma(kept + limited, 0.5);
}

/* The default burst is one second's worth. */
static void token_bucket_burst_defaults_to_the_rate(void **state)
{
    struct lv_sample_profile p = profile_at(0.5);
    struct lv_sample_conf sc = {.rate_limit = 50};
    struct lv_sampler *s = lv_sample_new(&sc, &p);
    struct lv_sample_input in = {.level = LV_LEVEL_INFO, .has_key = true, .key_hash = 0};
    enum lv_drop_reason why;
    int kept = 0;

    for (int i = 0; i < 1000; i++)
        kept += decide(s, &in, &why);
    assert_int_equal(kept, 50);
    assert_int_equal(why, LV_DROP_RATE_LIMITED);
    lv_sample_free(s);
}

/* A burst on stdout does not use up stderr's allowance. */
static void each_stream_has_its_own_bucket(void **state)
{
    struct lv_sample_profile p = profile_at(0.5);
    struct lv_sample_conf sc = {.rate_limit = 1, .burst = 1};
    struct lv_sampler *s = lv_sample_new(&sc, &p);
    struct lv_sample_input out = {
        .level = LV_LEVEL_INFO, .stream = LV_STREAM_STDOUT, .has_key = true, .key_hash = 0};
    struct lv_sample_input err = out;
    enum lv_drop_reason why;

    err.stream = LV_STREAM_STDERR;
    assert_true(decide(s, &out, &why));
    assert_false(decide(s, &out, &why));
    assert_int_equal(why, LV_DROP_RATE_LIMITED);
    assert_true(decide(s, &err, &why));
    out.now_ns = SEC;
    assert_true(decide(s, &out, &why));
    lv_sample_free(s);
}

static void level_rates_override_the_profile_rate(void **state)
{
    struct lv_sample_profile p = profile_at(0.1);
    p.levels[LV_LEVEL_DEBUG] = 0;
    p.levels[LV_LEVEL_ERROR] = 1.0;
    struct lv_sample_conf sc = {.rate_limit = 10};
    struct lv_sampler *s = lv_sample_new(&sc, &p);

    for (int st = 0; st < 2; st++) {
        enum lv_stream stream = (enum lv_stream)st;
        assert_true(lv_sample_rate(s, LV_LEVEL_INFO, stream) == 0.1);
        assert_true(lv_sample_rate(s, LV_LEVEL_DEBUG, stream) == 0.0);
        assert_true(lv_sample_rate(s, LV_LEVEL_ERROR, stream) == 1.0);
        assert_true(lv_sample_rate(s, LV_LEVEL_UNKNOWN, stream) == 0.1);
        assert_true(lv_sample_always_kept(s, LV_LEVEL_ERROR, stream));
        assert_false(lv_sample_always_kept(s, LV_LEVEL_INFO, stream));
        assert_false(lv_sample_always_kept(s, LV_LEVEL_DEBUG, stream));
    }
    lv_sample_free(s);
}

/* `unknown` sets the rate of records without a level, per stream; the
 * stream changes no other level's rate. */
static void records_without_a_level_have_a_rate_per_stream(void **state)
{
    struct lv_sample_profile p = profile_at(0.01);
    p.unknown[LV_STREAM_STDERR] = 0.5;
    struct lv_sampler *s = lv_sample_new(NULL, &p);
    long kept[2] = {0, 0};
    enum lv_drop_reason why;

    assert_true(lv_sample_rate(s, LV_LEVEL_UNKNOWN, LV_STREAM_STDOUT) == 0.01);
    assert_true(lv_sample_rate(s, LV_LEVEL_UNKNOWN, LV_STREAM_STDERR) == 0.5);
    assert_true(lv_sample_rate(s, LV_LEVEL_INFO, LV_STREAM_STDERR) == 0.01);
    for (uint64_t i = 0; i < 100000; i++) {
        struct lv_sample_input in = {.level = LV_LEVEL_UNKNOWN,
                                     .stream = (enum lv_stream)(i & 1),
                                     .has_key = true,
                                     .key_hash = random_key_hash(i)};
        kept[i & 1] += decide(s, &in, &why);
    }
    /* 50000 each: 500 +- 5 sigma (~50) on stdout, 25000 +- ~560 on stderr. */
    assert_in_range(kept[LV_STREAM_STDOUT], 450, 550);
    assert_in_range(kept[LV_STREAM_STDERR], 24440, 25560);
    lv_sample_free(s);
}

/* The shipped production, canary and staging profiles keep stderr lines
 * without a level at a higher rate than stdout ones; development keeps all. */
static void shipped_profiles_keep_more_of_stderr_without_a_level(void **state)
{
    static const char *const envs[] = {"production", "canary", "staging"};
    for (size_t i = 0; i < LV_ARRAY_LEN(envs); i++) {
        struct lv_conf conf;
        lv_conf_defaults(&conf, envs[i]);
        struct lv_sampler *s = lv_sample_new(NULL, lv_conf_profile(&conf));
        double out = lv_sample_rate(s, LV_LEVEL_UNKNOWN, LV_STREAM_STDOUT);
        double err = lv_sample_rate(s, LV_LEVEL_UNKNOWN, LV_STREAM_STDERR);
        assert_true(out == lv_conf_profile(&conf)->rate);
        assert_true(err > out && err < 1.0);
        lv_sample_free(s);
        lv_conf_free(&conf);
    }
    struct lv_conf dev;
    lv_conf_defaults(&dev, "development");
    struct lv_sampler *s = lv_sample_new(NULL, lv_conf_profile(&dev));
    assert_false(lv_sample_may_drop(s));
    lv_sample_free(s);
    lv_conf_free(&dev);
}

static void kept_records_report_the_rate_they_were_kept_at(void **state)
{
    struct lv_sample_profile p = profile_at(0.25);
    struct lv_sampler *s = lv_sample_new(NULL, &p);
    struct lv_sample_input in = {.level = LV_LEVEL_INFO, .has_key = true, .key_hash = 0};
    enum lv_drop_reason why;
    double rate = 0;

    assert_true(lv_sample_decide(s, &in, &rate, &why));
    assert_true(rate == 0.25);
    in.keep = true;
    in.key_hash = UINT64_MAX;
    assert_true(lv_sample_decide(s, &in, &rate, &why));
    assert_true(rate == 1.0);
    lv_sample_free(s);
}

static void without_a_profile_everything_is_kept_at_rate_one(void **state)
{
    struct lv_sample_conf sc = {.rate_limit = 1, .burst = 1};
    struct lv_sampler *s = lv_sample_new(&sc, NULL);
    enum lv_drop_reason why;

    for (int i = 0; i < 1000; i++) {
        struct lv_sample_input in = {
            .level = (enum lv_level)(i % LV_LEVEL_COUNT), .has_key = i & 1, .key_hash = UINT64_MAX};
        assert_true(decide(s, &in, &why));
        assert_true(lv_sample_always_kept(s, in.level, in.stream));
    }
    lv_sample_free(s);
}

/* A level byte from a corrupt header is sampled as UNKNOWN, not read past
 * the rate table. */
static void an_out_of_range_level_is_sampled_as_unknown(void **state)
{
    struct lv_sample_profile p = profile_at(1.0);
    p.levels[LV_LEVEL_UNKNOWN] = 0.5;
    struct lv_sampler *s = lv_sample_new(NULL, &p);

    assert_true(lv_sample_rate(s, (enum lv_level)200, LV_STREAM_STDOUT) == 0.5);
    lv_sample_free(s);
}

/* Writes "trace-<i>" without snprintf, which dominates the run time under
 * AddressSanitizer otherwise. Returns the length. */
static size_t trace_key(char *buf, unsigned i)
{
    char digits[16];
    size_t n = 0;

    do
        digits[n++] = (char)('0' + i % 10);
    while ((i /= 10) != 0);
    memcpy(buf, "trace-", 6);
    for (size_t j = 0; j < n; j++)
        buf[6 + j] = digits[n - 1 - j];
    return 6 + n;
}

static double chi_square_16(const long counts[16], long n)
{
    double expected = n / 16.0, chi = 0;

    for (int b = 0; b < 16; b++)
        chi += (counts[b] - expected) * (counts[b] - expected) / expected;
    return chi;
}

/* Sequential keys differ in a byte or two; a weak hash clusters them. With
 * 15 degrees of freedom, chi-square exceeds 50 with probability about 1e-5.
 * Both the top bits (which the decision reads) and the low bits are checked. */
static void hash_spreads_trace_keys_evenly_over_16_buckets(void **state)
{
    long top[16] = {0}, low[16] = {0};
    char key[32];

    for (unsigned i = 0; i < N; i++) {
        uint64_t h = lv_sample_hash(key, trace_key(key, i));
        top[h >> 60]++;
        low[h & 15]++;
    }
    assert_true(chi_square_16(top, N) < 50);
    assert_true(chi_square_16(low, N) < 50);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--print-decisions") == 0) {
        write_decisions(stdout);
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keyed_records_are_kept_at_the_configured_rate),
        cmocka_unit_test(keyless_records_are_kept_at_the_configured_rate),
        cmocka_unit_test(rate_zero_drops_and_rate_one_keeps_every_key),
        cmocka_unit_test(hash_matches_golden_values),
        cmocka_unit_test(hash_does_not_depend_on_alignment),
        cmocka_unit_test(decisions_are_identical_in_another_process),
        cmocka_unit_test(errors_and_audit_records_are_never_dropped_in_production),
        cmocka_unit_test(records_with_the_same_key_share_one_decision),
        cmocka_unit_test(a_key_kept_at_a_low_rate_is_kept_at_every_higher_rate),
        cmocka_unit_test(token_bucket_keeps_its_burst_plus_its_rate_over_time),
        cmocka_unit_test(token_bucket_burst_defaults_to_the_rate),
        cmocka_unit_test(each_stream_has_its_own_bucket),
        cmocka_unit_test(level_rates_override_the_profile_rate),
        cmocka_unit_test(records_without_a_level_have_a_rate_per_stream),
        cmocka_unit_test(shipped_profiles_keep_more_of_stderr_without_a_level),
        cmocka_unit_test(kept_records_report_the_rate_they_were_kept_at),
        cmocka_unit_test(without_a_profile_everything_is_kept_at_rate_one),
        cmocka_unit_test(an_out_of_range_level_is_sampled_as_unknown),
        cmocka_unit_test(hash_spreads_trace_keys_evenly_over_16_buckets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
