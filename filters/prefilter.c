/*
 * The redaction prefilter: Teddy over folded trigrams.
 *
 * Construction groups the words into at most eight buckets and fills, for
 * each of the three positions, a low-nibble and a high-nibble table of
 * bucket bits. A block then costs, per 16 or 32 bytes, three unaligned
 * loads (at p, p + 1 and p + 2) and for each of them two PSHUFBs, plus one
 * PSHUFB and a compare that find the separators at positions 1 and 2. The
 * portable version looks up the same tables one byte at a time, so every
 * implementation returns the same mask.
 *
 * Folding needs no instruction: OR 0x20 only sets bit 1 of the high nibble,
 * so the high-nibble tables are indexed by the raw nibble and entry h holds
 * what the folded nibble h | 2 holds. The low nibble is unchanged.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "logveil/util.h"
#include "prefilter.h"

#define NPOS 3
#define NBUCKETS 8
/* Above this many words the buckets start from one group per first byte,
 * which bounds the merge's table of pairs (n * n doubles). */
#define MAX_START_GROUPS 256

_Static_assert(NBUCKETS <= 8, "a bucket is a bit of a byte");

typedef uint64_t block_fn(const struct lv_prefilter *pf, const unsigned char *p);

enum impl_kind { IMPL_AVX2, IMPL_SSSE3, IMPL_SCALAR };

struct impl {
    const char *name;
    enum impl_kind kind;
    block_fn *fn;
};

struct lv_prefilter {
    const struct impl *impl; /* in use */
    const struct impl *best; /* the fastest this CPU runs */
    uint8_t lo[NPOS][16];    /* buckets by low nibble, per position */
    uint8_t hi[NPOS][16];    /* buckets by raw high nibble, per position */
    uint8_t byte[NPOS][256]; /* lo & hi for every raw byte, separators included */
};

/* A raw byte whose folded value is a separator: '_' (0x5f, 0x7f), '-' (0x0d,
 * 0x2d) and '.' (0x0e, 0x2e). Indexed by the low nibble, the table gives the
 * folded value a separator with that nibble has; 0 is no folded value. */
static const uint8_t sep_by_low[16] = {[0xd] = 0x2d, [0xe] = 0x2e, [0xf] = 0x7f};

static bool is_sep(unsigned b)
{
    return sep_by_low[b & 15] == (b | 0x20);
}

/* ---- the block, one byte at a time --------------------------------------- */

static uint64_t block_scalar(const struct lv_prefilter *pf, const unsigned char *p)
{
    uint64_t m = 0;
    for (unsigned k = 0; k < 64; k++) {
        unsigned b = pf->byte[0][p[k]] & pf->byte[1][p[k + 1]] & pf->byte[2][p[k + 2]];
        m |= (uint64_t)(b != 0) << k;
    }
    return m;
}

#if defined(__x86_64__)

/* ---- AVX2: 32 positions a step ------------------------------------------- */

#define TARGET_AVX2 __attribute__((target("avx2")))

/* PSHUFB works within each 128-bit lane: the tables are in both. */
struct avx2_tables {
    __m256i lo[NPOS], hi[NPOS], sep;
};

TARGET_AVX2 static inline __m256i avx2_buckets(__m256i v, __m256i lo, __m256i hi)
{
    const __m256i nibble = _mm256_set1_epi8(0x0f);
    __m256i l = _mm256_shuffle_epi8(lo, _mm256_and_si256(v, nibble));
    __m256i h = _mm256_shuffle_epi8(hi, _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble));
    return _mm256_and_si256(l, h);
}

/* 0xff for a separator. A byte >= 0x80 looks up 0, which no folded byte is. */
TARGET_AVX2 static inline __m256i avx2_seps(__m256i v, __m256i sep)
{
    __m256i folded = _mm256_or_si256(v, _mm256_set1_epi8(0x20));
    return _mm256_cmpeq_epi8(folded, _mm256_shuffle_epi8(sep, v));
}

TARGET_AVX2 static inline __m256i avx2_load(const unsigned char *p)
{
    return _mm256_loadu_si256((const __m256i *)p);
}

TARGET_AVX2 static inline uint32_t avx2_step(const struct avx2_tables *t, const unsigned char *p)
{
    __m256i v0 = avx2_load(p), v1 = avx2_load(p + 1), v2 = avx2_load(p + 2);
    __m256i m = avx2_buckets(v0, t->lo[0], t->hi[0]);
    m = _mm256_and_si256(
        m, _mm256_or_si256(avx2_buckets(v1, t->lo[1], t->hi[1]), avx2_seps(v1, t->sep)));
    m = _mm256_and_si256(
        m, _mm256_or_si256(avx2_buckets(v2, t->lo[2], t->hi[2]), avx2_seps(v2, t->sep)));
    __m256i none = _mm256_cmpeq_epi8(m, _mm256_setzero_si256());
    return ~(uint32_t)_mm256_movemask_epi8(none);
}

TARGET_AVX2 static inline __m256i avx2_table(const uint8_t *t)
{
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)t));
}

TARGET_AVX2 static uint64_t block_avx2(const struct lv_prefilter *pf, const unsigned char *p)
{
    struct avx2_tables t;
    for (int i = 0; i < NPOS; i++) {
        t.lo[i] = avx2_table(pf->lo[i]);
        t.hi[i] = avx2_table(pf->hi[i]);
    }
    t.sep = avx2_table(sep_by_low);
    return avx2_step(&t, p) | (uint64_t)avx2_step(&t, p + 32) << 32;
}

/* ---- SSSE3: 16 positions a step ------------------------------------------ */

#define TARGET_SSSE3 __attribute__((target("ssse3")))

struct ssse3_tables {
    __m128i lo[NPOS], hi[NPOS], sep;
};

TARGET_SSSE3 static inline __m128i ssse3_buckets(__m128i v, __m128i lo, __m128i hi)
{
    const __m128i nibble = _mm_set1_epi8(0x0f);
    __m128i l = _mm_shuffle_epi8(lo, _mm_and_si128(v, nibble));
    __m128i h = _mm_shuffle_epi8(hi, _mm_and_si128(_mm_srli_epi16(v, 4), nibble));
    return _mm_and_si128(l, h);
}

TARGET_SSSE3 static inline __m128i ssse3_seps(__m128i v, __m128i sep)
{
    __m128i folded = _mm_or_si128(v, _mm_set1_epi8(0x20));
    return _mm_cmpeq_epi8(folded, _mm_shuffle_epi8(sep, v));
}

TARGET_SSSE3 static inline __m128i ssse3_load(const unsigned char *p)
{
    return _mm_loadu_si128((const __m128i *)p);
}

TARGET_SSSE3 static inline uint64_t ssse3_step(const struct ssse3_tables *t, const unsigned char *p)
{
    __m128i v0 = ssse3_load(p), v1 = ssse3_load(p + 1), v2 = ssse3_load(p + 2);
    __m128i m = ssse3_buckets(v0, t->lo[0], t->hi[0]);
    m = _mm_and_si128(m,
                      _mm_or_si128(ssse3_buckets(v1, t->lo[1], t->hi[1]), ssse3_seps(v1, t->sep)));
    m = _mm_and_si128(m,
                      _mm_or_si128(ssse3_buckets(v2, t->lo[2], t->hi[2]), ssse3_seps(v2, t->sep)));
    __m128i none = _mm_cmpeq_epi8(m, _mm_setzero_si128());
    return (uint64_t)(~(unsigned)_mm_movemask_epi8(none) & 0xffffu);
}

TARGET_SSSE3 static uint64_t block_ssse3(const struct lv_prefilter *pf, const unsigned char *p)
{
    struct ssse3_tables t;
    for (int i = 0; i < NPOS; i++) {
        t.lo[i] = ssse3_load(pf->lo[i]);
        t.hi[i] = ssse3_load(pf->hi[i]);
    }
    t.sep = ssse3_load(sep_by_low);
    return ssse3_step(&t, p) | ssse3_step(&t, p + 16) << 16 | ssse3_step(&t, p + 32) << 32 |
           ssse3_step(&t, p + 48) << 48;
}

#endif /* __x86_64__ */

/* Fastest first. */
static const struct impl impls[] = {
#if defined(__x86_64__)
    {"avx2", IMPL_AVX2, block_avx2},
    {"ssse3", IMPL_SSSE3, block_ssse3},
#endif
    {"scalar", IMPL_SCALAR, block_scalar},
};

static bool cpu_runs(const struct impl *im)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (im->kind == IMPL_AVX2)
        return __builtin_cpu_supports("avx2");
    if (im->kind == IMPL_SSSE3)
        return __builtin_cpu_supports("ssse3");
#endif
    return im->kind == IMPL_SCALAR;
}

/* ---- buckets -------------------------------------------------------------- */

/* The characters a group of words accepts at each position, as the nibbles
 * of their folded values: the nibble tables accept every pairing. */
struct group {
    uint16_t lo[NPOS], hi[NPOS];
};

static void group_add(struct group *g, int pos, unsigned char c)
{
    unsigned f = c | 0x20u;
    g->lo[pos] |= (uint16_t)(1u << (f & 15));
    g->hi[pos] |= (uint16_t)(1u << (f >> 4));
}

static void group_add_word(struct group *g, const unsigned char *w)
{
    group_add(g, 0, w[0]);
    group_add(g, 1, w[1]);
    group_add(g, 2, w[1]);
    group_add(g, 2, w[2]);
}

static struct group group_union(const struct group *a, const struct group *b)
{
    struct group u;
    for (int i = 0; i < NPOS; i++) {
        u.lo[i] = a->lo[i] | b->lo[i];
        u.hi[i] = a->hi[i] | b->hi[i];
    }
    return u;
}

/* A rough share of each raw byte in JSON log lines, used only to choose which
 * words share a bucket: letters by their English frequency, hex digits and
 * JSON punctuation weighted up. */
static double raw_weight(unsigned b)
{
    static const unsigned char letters[26] = {82, 15, 28, 43, 127, 22, 20, 61, 70, 2,  8, 40, 24,
                                              67, 75, 19, 1,  60,  63, 91, 28, 10, 24, 2, 20, 1};
    if (b >= 'a' && b <= 'z')
        return letters[b - 'a'];
    if (b >= 'A' && b <= 'Z')
        return letters[b - 'A'] / 10.0;
    if (b >= '0' && b <= '9')
        return 40;
    if (b == '"' || b == ' ')
        return 50;
    if (b == ':' || b == ',' || b == '-' || b == '.' || b == '_')
        return 20;
    if (b > ' ' && b < 0x7f)
        return 3;
    return 0.5;
}

/* By folded nibbles, [high][low]: both raw bytes that fold to the value. */
static void folded_weights(double w[16][16])
{
    memset(w, 0, 16 * sizeof *w);
    for (unsigned b = 0; b < 256; b++)
        w[(b | 0x20) >> 4][b & 15] += raw_weight(b);
}

/* The expected number of positions a group accepts, up to a constant: the
 * product over the three positions of the weight of the bytes accepted. */
static double group_cost(const struct group *g, const double w[16][16])
{
    static const unsigned char seps[] = {0x7f, 0x2d, 0x2e};
    double cost = 1;
    for (int pos = 0; pos < NPOS; pos++) {
        double sum = 0;
        for (unsigned h = 0; h < 16; h++) {
            if (!(g->hi[pos] >> h & 1))
                continue;
            for (unsigned l = 0; l < 16; l++)
                if (g->lo[pos] >> l & 1)
                    sum += w[h][l];
        }
        for (size_t i = 0; i < sizeof seps && pos > 0; i++) {
            unsigned h = seps[i] >> 4, l = seps[i] & 15;
            if (!(g->hi[pos] >> h & 1 && g->lo[pos] >> l & 1))
                sum += w[h][l];
        }
        cost *= sum;
    }
    return cost;
}

struct merge {
    struct group *g;
    size_t n;
    double w[16][16];
    double *cost;  /* [i] of group i */
    double *delta; /* [i * n + j], i < j: the cost of their union less theirs */
    bool *gone;    /* merged into another */
};

static void set_delta(struct merge *m, size_t i, size_t j)
{
    struct group u = group_union(&m->g[i], &m->g[j]);
    size_t lo = i < j ? i : j, hi = i < j ? j : i;
    m->delta[lo * m->n + hi] = group_cost(&u, m->w) - m->cost[i] - m->cost[j];
}

/* The live pair whose union costs the least more than its groups apart. */
static void cheapest_pair(const struct merge *m, size_t *bi, size_t *bj)
{
    bool found = false;
    for (size_t i = 0; i < m->n; i++) {
        if (m->gone[i])
            continue;
        for (size_t j = i + 1; j < m->n; j++)
            if (!m->gone[j] && (!found || m->delta[i * m->n + j] < m->delta[*bi * m->n + *bj])) {
                *bi = i, *bj = j;
                found = true;
            }
    }
}

/* Greedy: merge the cheapest pair until at most NBUCKETS groups remain.
 * Words that share a first byte merge first, as their union costs little
 * more than either of them. Returns the number of groups left, packed. */
static size_t merge_groups(struct group *g, size_t n)
{
    if (n <= NBUCKETS)
        return n;
    struct merge m = {.g = g, .n = n};
    folded_weights(m.w);
    m.cost = lv_xcalloc(n, sizeof *m.cost);
    m.delta = lv_xcalloc(n * n, sizeof *m.delta);
    m.gone = lv_xcalloc(n, sizeof *m.gone);
    for (size_t i = 0; i < n; i++)
        m.cost[i] = group_cost(&g[i], m.w);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            set_delta(&m, i, j);
    for (size_t left = n; left > NBUCKETS; left--) {
        size_t i = 0, j = 0;
        cheapest_pair(&m, &i, &j);
        g[i] = group_union(&g[i], &g[j]);
        m.cost[i] = group_cost(&g[i], m.w);
        m.gone[j] = true;
        for (size_t k = 0; k < n; k++)
            if (!m.gone[k] && k != i)
                set_delta(&m, i, k);
    }
    size_t live = 0;
    for (size_t i = 0; i < n; i++)
        if (!m.gone[i])
            g[live++] = g[i];
    free(m.cost);
    free(m.delta);
    free(m.gone);
    return live;
}

/* One group per word, or per first byte when there are many words. */
static size_t start_groups(struct group *g, const char *const *words, const size_t *lens, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += lens[i] >= 3;
    bool by_first = count > MAX_START_GROUPS;
    size_t m = 0;
    int slot[256];
    memset(slot, -1, sizeof slot);
    for (size_t i = 0; i < n; i++) {
        const unsigned char *w = (const unsigned char *)words[i];
        if (lens[i] < 3)
            continue;
        struct group *to = &g[m];
        if (by_first && slot[w[0] | 0x20] >= 0)
            to = &g[slot[w[0] | 0x20]];
        else if (by_first)
            slot[w[0] | 0x20] = (int)m++;
        else
            m++;
        group_add_word(to, w);
    }
    return m;
}

static void fill_tables(struct lv_prefilter *pf, const struct group *g, size_t n)
{
    uint8_t hi_folded[NPOS][16] = {{0}};
    for (size_t b = 0; b < n; b++)
        for (int pos = 0; pos < NPOS; pos++)
            for (unsigned x = 0; x < 16; x++) {
                if (g[b].lo[pos] >> x & 1)
                    pf->lo[pos][x] |= (uint8_t)(1u << b);
                if (g[b].hi[pos] >> x & 1)
                    hi_folded[pos][x] |= (uint8_t)(1u << b);
            }
    for (int pos = 0; pos < NPOS; pos++) {
        for (unsigned x = 0; x < 16; x++)
            pf->hi[pos][x] = hi_folded[pos][x | 2];
        for (unsigned v = 0; v < 256; v++) {
            bool sep = pos > 0 && is_sep(v);
            pf->byte[pos][v] = sep ? 0xff : pf->lo[pos][v & 15] & pf->hi[pos][v >> 4];
        }
    }
}

/* ---- interface ------------------------------------------------------------ */

struct lv_prefilter *lv_prefilter_new(const char *const *words, const size_t *lens, size_t n)
{
    struct lv_prefilter *pf = lv_xcalloc(1, sizeof *pf);
    struct group *g = lv_xcalloc(n, sizeof *g);
    size_t m = merge_groups(g, start_groups(g, words, lens, n));
    fill_tables(pf, g, m);
    free(g);
    for (size_t i = 0; !pf->best; i++)
        if (cpu_runs(&impls[i]))
            pf->best = &impls[i];
    pf->impl = pf->best;
    return pf;
}

void lv_prefilter_free(struct lv_prefilter *pf)
{
    free(pf);
}

uint64_t lv_prefilter_block(const struct lv_prefilter *pf, const unsigned char *p)
{
    return pf->impl->fn(pf, p);
}

const char *lv_prefilter_impl(const struct lv_prefilter *pf)
{
    return pf->impl->name;
}

int lv_prefilter_force(struct lv_prefilter *pf, const char *impl)
{
    if (!impl) {
        pf->impl = pf->best;
        return 0;
    }
    for (size_t i = 0; i < LV_ARRAY_LEN(impls); i++)
        if (strcmp(impls[i].name, impl) == 0 && cpu_runs(&impls[i])) {
            pf->impl = &impls[i];
            return 0;
        }
    return -ENOTSUP;
}

void lv_prefilter_force_scalar(struct lv_prefilter *pf, bool on)
{
    lv_prefilter_force(pf, on ? "scalar" : NULL);
}
