/*
 * Tests for the redaction prefilter: it must report every position whose
 * folded trigram starts one of the words, in every implementation this
 * machine runs, and the implementations must agree bit for bit.
 *
 * The reference is independent of the prefilter: a bitmap over all 2^24
 * folded trigrams, marked exactly as the pre-scan marks them. Words are the
 * default key words and hints, and seeded random word sets (3 to 12 bytes,
 * letters, digits, punctuation and now and then any other byte); blocks
 * come from prose, JSON log lines, soups of the words' own bytes in both
 * cases with separators between them, and uniform random bytes. A failure
 * prints the block and the position, which reproduce.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "logveil/util.h"
#include "prefilter.h"

static const char *const default_words[] = {
    "password", "token", "secret", "apikey", "bearer", "basic",  "eyj",    "akia",
    "asia",     "begin", "sklive", "sktest", "pklive", "pktest", "rklive", "rktest"};

static const char json_line[] =
    "{\"@timestamp\":\"2025-11-21T00:00:00.000670487Z\",\"level\":\"WARN\",\"logger\":"
    "\"orders.handler\",\"message\":\"snapshot signal acquired snapshot rejected matched\","
    "\"service\":\"kline-analytics\",\"trace_id\":\"d1026706d7e805da846a32c3bb81e3c2\","
    "\"span_id\":\"9b62179273c8eb5b\",\"seq\":0,\"http\":{\"method\":\"PUT\",\"path\":"
    "\"/api/v1/klines\",\"status\":200,\"duration_ms\":167.544,\"headers\":{\"user-agent\":"
    "\"okhttp/4.12.0\",\"x-request-id\":\"2575ec87a171ac82\"}},\"user\":{\"id\":3539704,"
    "\"roles\":[\"viewer\",\"admin\"]}}";

/* Raw separators: each folds to '_' (0x7f), '-' (0x2d) or '.' (0x2e). */
static const unsigned char separators[] = {'_', '-', '.', 0x7f, 0x0d, 0x0e};

/* ---- random numbers ---------------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static unsigned below(unsigned n)
{
    return (unsigned)(rnd() % n);
}

/* ---- word sets ---------------------------------------------------------------------- */

#define MAX_SET 300
#define MAX_LEN 12

struct word_set {
    const char *words[MAX_SET];
    size_t lens[MAX_SET];
    size_t n;
    char text[MAX_SET][MAX_LEN];
};

static void set_defaults(struct word_set *s)
{
    s->n = LV_ARRAY_LEN(default_words);
    for (size_t i = 0; i < s->n; i++) {
        s->words[i] = default_words[i];
        s->lens[i] = strlen(default_words[i]);
    }
}

/* A byte a normalised word may hold: anything but upper case and the three
 * separators, mostly letters, digits and punctuation. */
static unsigned char word_byte(void)
{
    static const char common[] = "abcdefghijklmnopqrstuvwxyz0123456789!@#$%&*+/:;=?~";
    for (;;) {
        unsigned c = below(10) ? (unsigned char)common[below(sizeof common - 1)] : below(256);
        if (c != '_' && c != '-' && c != '.' && !(c >= 'A' && c <= 'Z'))
            return (unsigned char)c;
    }
}

static void set_random(struct word_set *s, size_t n)
{
    s->n = n;
    for (size_t i = 0; i < n; i++) {
        s->lens[i] = below(20) ? 3 + below(MAX_LEN - 2) : below(3); /* a few too short */
        for (size_t k = 0; k < s->lens[i]; k++)
            s->text[i][k] = (char)word_byte();
        s->words[i] = s->text[i];
    }
}

/* ---- the reference: the marked folded trigrams ---------------------------------- */

static uint8_t ref_bits[1u << 21];

static void ref_mark(unsigned a, unsigned b, unsigned c)
{
    uint32_t t = (a | 0x20) | (b | 0x20) << 8 | (c | 0x20) << 16;
    ref_bits[t >> 3] |= (uint8_t)(1u << (t & 7));
}

static void ref_build(const struct word_set *s)
{
    static const unsigned char seps[] = {'_', '-', '.'};
    memset(ref_bits, 0, sizeof ref_bits);
    for (size_t i = 0; i < s->n; i++) {
        const unsigned char *w = (const unsigned char *)s->words[i];
        if (s->lens[i] < 3)
            continue;
        ref_mark(w[0], w[1], w[2]);
        for (size_t x = 0; x < sizeof seps; x++) {
            ref_mark(w[0], w[1], seps[x]);
            ref_mark(w[0], seps[x], w[1]);
            for (size_t y = 0; y < sizeof seps; y++)
                ref_mark(w[0], seps[x], seps[y]);
        }
    }
}

static bool ref_hit(const unsigned char *p)
{
    uint32_t t = (p[0] | 0x20u) | (p[1] | 0x20u) << 8 | (p[2] | 0x20u) << 16;
    return ref_bits[t >> 3] >> (t & 7) & 1;
}

/* ---- every implementation --------------------------------------------------------- */

static const char *impls[3];
static size_t nimpls;

static void find_impls(struct lv_prefilter *pf)
{
    static const char *const all[] = {"avx2", "ssse3", "scalar"};
    nimpls = 0;
    for (size_t i = 0; i < LV_ARRAY_LEN(all); i++)
        if (lv_prefilter_force(pf, all[i]) == 0)
            impls[nimpls++] = all[i];
    assert_int_equal(lv_prefilter_force(pf, NULL), 0);
}

static void print_block(const unsigned char *p)
{
    for (size_t i = 0; i < LV_PREFILTER_READ; i++)
        fprintf(stderr, "%02x%s", p[i], i % 22 == 21 ? "\n" : " ");
}

static uint64_t block_with(struct lv_prefilter *pf, const char *impl, const unsigned char *p)
{
    assert_int_equal(lv_prefilter_force(pf, impl), 0);
    assert_string_equal(lv_prefilter_impl(pf), impl);
    return lv_prefilter_block(pf, p);
}

/* Every implementation returns the same mask, and it holds every reference
 * hit. Returns the mask. */
static uint64_t check_block(struct lv_prefilter *pf, const unsigned char *p)
{
    uint64_t mask = block_with(pf, impls[0], p);
    for (size_t i = 1; i < nimpls; i++) {
        uint64_t other = block_with(pf, impls[i], p);
        if (other != mask) {
            print_block(p);
            fail_msg("%s returned %016llx, %s %016llx", impls[0], (unsigned long long)mask,
                     impls[i], (unsigned long long)other);
        }
    }
    for (unsigned k = 0; k < 64; k++)
        if (ref_hit(p + k) && !(mask >> k & 1)) {
            print_block(p);
            fail_msg("trigram hit at %u not reported (%02x %02x %02x)", k, p[k], p[k + 1],
                     p[k + 2]);
        }
    return mask;
}

/* ---- blocks ---------------------------------------------------------------------------- */

#define BUF_LEN 1024
/* At most three separators before each byte of a word. */
#define LONGEST_SPELLING (4 * MAX_LEN)

static unsigned char random_case(unsigned char c)
{
    return below(2) && c >= 'a' && c <= 'z' ? (unsigned char)(c - 32) : c;
}

static unsigned char separator(void)
{
    return separators[below(9) < 6 ? below(3) : below(sizeof separators)];
}

/* Appends word i as the pre-scan may see it: any case, and now and then
 * separators before its bytes. */
static size_t put_spelling(unsigned char *d, const struct word_set *s, size_t i)
{
    size_t n = 0;
    for (size_t k = 0; k < s->lens[i]; k++) {
        for (int r = 0; r < 3 && below(4) == 0; r++)
            d[n++] = separator();
        d[n++] = random_case((unsigned char)s->words[i][k]);
    }
    return n;
}

static void fill_prose(unsigned char *b, const struct word_set *s)
{
    static const char chars[] = "etaoinshrdlucmfwypvbgkjqxz ETAOIN,.:;'0123456789";
    for (size_t i = 0; i < BUF_LEN; i++)
        b[i] = below(6) ? (unsigned char)chars[below(30)]
                        : (unsigned char)chars[below(sizeof chars - 1)];
}

static void fill_soup(unsigned char *b, const struct word_set *s)
{
    for (size_t i = 0; i < BUF_LEN; i++) {
        size_t w = below((unsigned)s->n);
        if (below(5) == 0 || s->lens[w] == 0)
            b[i] = separator();
        else
            b[i] = random_case((unsigned char)s->words[w][below((unsigned)s->lens[w])]);
    }
}

static void fill_bytes(unsigned char *b, const struct word_set *s)
{
    for (size_t i = 0; i < BUF_LEN; i++)
        b[i] = (unsigned char)below(256);
}

/* JSON log lines whose keys and values are now and then a spelling of a
 * word, and otherwise the text of a real line cut at random. */
static void fill_json(unsigned char *b, const struct word_set *s)
{
    size_t n = 0;
    while (n + LONGEST_SPELLING + 8 < BUF_LEN) {
        b[n++] = below(2) ? ',' : '{';
        b[n++] = '"';
        if (below(3) == 0) {
            n += put_spelling(b + n, s, below((unsigned)s->n));
        } else {
            size_t from = below(sizeof json_line - 1), len = 1 + below(30);
            if (from + len > sizeof json_line - 1)
                len = sizeof json_line - 1 - from;
            memcpy(b + n, json_line + from, len);
            n += len;
        }
        b[n++] = '"';
        b[n++] = ':';
    }
    memset(b + n, ' ', BUF_LEN - n);
}

typedef void fill_fn(unsigned char *b, const struct word_set *s);

/* Fills a buffer of each kind and checks a block at every `step` bytes. */
static void check_buffers(struct lv_prefilter *pf, const struct word_set *s, size_t rounds,
                          size_t step)
{
    static fill_fn *const fills[] = {fill_prose, fill_json, fill_soup, fill_bytes};
    unsigned char b[BUF_LEN];
    for (size_t r = 0; r < rounds; r++) {
        fills[r % LV_ARRAY_LEN(fills)](b, s);
        for (size_t at = below((unsigned)step); at + LV_PREFILTER_READ <= BUF_LEN; at += step)
            check_block(pf, b + at);
    }
}

/* ---- tests -------------------------------------------------------------------------- */

static struct lv_prefilter *new_prefilter(const struct word_set *s)
{
    struct lv_prefilter *pf = lv_prefilter_new(s->words, s->lens, s->n);
    assert_non_null(pf);
    find_impls(pf);
    ref_build(s);
    return pf;
}

static void the_chosen_implementation_is_the_fastest_the_cpu_runs(void **state)
{
    struct word_set s;
    set_defaults(&s);
    struct lv_prefilter *pf = new_prefilter(&s);
    const char *best = "scalar";
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2"))
        best = "avx2";
    else if (__builtin_cpu_supports("ssse3"))
        best = "ssse3";
#endif
    assert_string_equal(lv_prefilter_impl(pf), best);
    lv_prefilter_force_scalar(pf, true);
    assert_string_equal(lv_prefilter_impl(pf), "scalar");
    lv_prefilter_force_scalar(pf, false);
    assert_string_equal(lv_prefilter_impl(pf), best);
    assert_int_equal(lv_prefilter_force(pf, "neon"), -ENOTSUP);
    assert_string_equal(lv_prefilter_impl(pf), best);
    fprintf(stderr, "implementations here:");
    for (size_t i = 0; i < nimpls; i++)
        fprintf(stderr, " %s", impls[i]);
    fprintf(stderr, "\n");
    lv_prefilter_free(pf);
}

static void every_spelling_of_a_default_word_is_a_candidate_at_every_offset(void **state)
{
    struct word_set s;
    set_defaults(&s);
    struct lv_prefilter *pf = new_prefilter(&s);
    unsigned char b[LV_PREFILTER_READ];
    for (size_t i = 0; i < s.n; i++)
        for (unsigned form = 0; form < 4 * 9; form++)
            for (unsigned k = 0; k < 64; k++) {
                const unsigned char *w = (const unsigned char *)s.words[i];
                unsigned char s1 = separators[form / 4 % 3], s2 = separators[form / 12];
                unsigned char forms[4][3] = {
                    {w[0], w[1], w[2]}, {w[0], w[1], s1}, {w[0], s1, w[1]}, {w[0], s1, s2}};
                memset(b, 'z', sizeof b);
                for (int x = 0; x < 3; x++)
                    b[k + x] =
                        (form + k) & 1 ? random_case(forms[form % 4][x]) : forms[form % 4][x];
                if (!(check_block(pf, b) >> k & 1))
                    fail_msg("%s form %u not reported at %u", s.words[i], form, k);
            }
    lv_prefilter_free(pf);
}

static void every_trigram_hit_of_the_default_words_is_a_candidate(void **state)
{
    rng_state = 1;
    struct word_set s;
    set_defaults(&s);
    struct lv_prefilter *pf = new_prefilter(&s);
    check_buffers(pf, &s, 400, 7); /* 400 buffers of 137 blocks */
    lv_prefilter_free(pf);
}

static void every_trigram_hit_of_random_words_is_a_candidate(void **state)
{
    rng_state = 2;
    static struct word_set s;
    for (unsigned round = 0; round < 300; round++) {
        size_t n = round % 50 == 49 ? MAX_SET : 1 + below(round % 3 ? 40 : 8);
        set_random(&s, n);
        struct lv_prefilter *pf = new_prefilter(&s);
        check_buffers(pf, &s, 4, 11);
        lv_prefilter_free(pf);
    }
}

static void words_shorter_than_three_bytes_are_ignored(void **state)
{
    static const char *const words[] = {"ab", "x", ""};
    static const size_t lens[] = {2, 1, 0};
    unsigned char b[LV_PREFILTER_READ];
    for (size_t n = 0; n <= LV_ARRAY_LEN(words); n++) {
        struct lv_prefilter *pf = lv_prefilter_new(words, lens, n);
        find_impls(pf);
        for (size_t i = 0; i < sizeof b; i++)
            b[i] = (unsigned char)"ab_x-"[i % 5];
        for (size_t i = 0; i < nimpls; i++)
            assert_int_equal(block_with(pf, impls[i], b), 0);
        lv_prefilter_free(pf);
    }
}

static void a_block_of_spaces_has_no_candidates(void **state)
{
    struct word_set s;
    set_defaults(&s);
    struct lv_prefilter *pf = new_prefilter(&s);
    unsigned char b[LV_PREFILTER_READ];
    memset(b, ' ', sizeof b);
    for (size_t i = 0; i < nimpls; i++)
        assert_int_equal(block_with(pf, impls[i], b), 0);
    lv_prefilter_free(pf);
}

/* The block ends on the last byte of a page followed by an inaccessible
 * one, so a longer read faults even without AddressSanitizer (which the
 * heap copy checks as well). */
static void a_block_reads_no_more_than_lv_prefilter_read_bytes(void **state)
{
    struct word_set s;
    set_defaults(&s);
    struct lv_prefilter *pf = new_prefilter(&s);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    unsigned char *map =
        mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(map != MAP_FAILED);
    assert_int_equal(mprotect(map + page, page, PROT_NONE), 0);
    unsigned char *tail = map + page - LV_PREFILTER_READ;
    unsigned char *heap = malloc(LV_PREFILTER_READ);
    assert_non_null(heap);
    for (size_t i = 0; i < LV_PREFILTER_READ; i++)
        tail[i] = heap[i] = (unsigned char)"tokenpassword"[i % 13];
    uint64_t want = check_block(pf, heap);
    assert_int_equal(check_block(pf, tail), want);
    assert_true(want & 1); /* "tok" at 0 */
    free(heap);
    munmap(map, 2 * page);
    lv_prefilter_free(pf);
}

/* The share of positions reported in a line without any word. */
static double candidate_rate(struct lv_prefilter *pf, const char *line, size_t len, size_t *exact)
{
    unsigned char *b = calloc(1, len + LV_PREFILTER_READ);
    assert_non_null(b);
    memcpy(b, line, len);
    size_t reported = 0;
    *exact = 0;
    for (size_t at = 0; at < len; at += 64) {
        uint64_t mask = check_block(pf, b + at);
        if (len - at < 64)
            mask &= (1ull << (len - at)) - 1;
        reported += (size_t)__builtin_popcountll(mask);
        for (size_t k = at; k < len && k < at + 64; k++)
            *exact += ref_hit(b + k);
    }
    free(b);
    return (double)reported / (double)len;
}

static void few_positions_of_a_json_log_line_are_candidates(void **state)
{
    struct word_set s;
    set_defaults(&s);
    struct lv_prefilter *pf = new_prefilter(&s);
    size_t exact;
    double rate = candidate_rate(pf, json_line, sizeof json_line - 1, &exact);
    fprintf(stderr, "json line: %zu bytes, %.2f%% candidates (%.0f), %zu exact trigram hits\n",
            sizeof json_line - 1, 100 * rate, rate * (double)(sizeof json_line - 1), exact);
    assert_true(rate < 0.03);
    lv_prefilter_free(pf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_chosen_implementation_is_the_fastest_the_cpu_runs),
        cmocka_unit_test(every_spelling_of_a_default_word_is_a_candidate_at_every_offset),
        cmocka_unit_test(every_trigram_hit_of_the_default_words_is_a_candidate),
        cmocka_unit_test(every_trigram_hit_of_random_words_is_a_candidate),
        cmocka_unit_test(words_shorter_than_three_bytes_are_ignored),
        cmocka_unit_test(a_block_of_spaces_has_no_candidates),
        cmocka_unit_test(a_block_reads_no_more_than_lv_prefilter_read_bytes),
        cmocka_unit_test(few_positions_of_a_json_log_line_are_candidates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
