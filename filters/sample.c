/*
 * The sampler: keeps or drops a record from its level's rate, the hash of
 * its sampling key, and an optional per-stream token bucket.
 *
 * A record with a key is kept when the top 53 bits of the key's hash, read
 * as a fraction in [0, 1), fall below the rate. The decision is therefore
 * the same in every replica and every run for the same key, and sampling is
 * nested: a key kept at rate 0.01 has a fraction below 0.01, so it is also
 * kept at 0.1 and at any larger rate. Records from one trace thus stay
 * together when their levels share a rate, and when they do not, the trace is
 * kept whole at every level whose rate is at least the smallest one that
 * kept it. A record without a key is sampled at random.
 *
 * The hash is XXH64 (seed 0), written out here so that its value is fixed by
 * this file alone: it reads the key's bytes as little-endian words whatever
 * the host's byte order, so every host computes the same value. Changing it
 * changes which traces every deployed replica keeps; the golden values in
 * tests/unit/filters/sample_test.c are there to catch that.
 *
 * Nothing is allocated per decision.
 */
#include <math.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "logveil/util.h"
#include "sample.h"

#define NSTREAMS 2

/* A token bucket; `tokens` never exceeds the sampler's burst. */
struct bucket {
    double tokens;
    int64_t last_ns;
    bool started;
};

struct lv_sampler {
    double rate[NSTREAMS][LV_LEVEL_COUNT]; /* by stream only for UNKNOWN */
    double limit; /* tokens per second; 0: no rate limit */
    double burst;
    struct bucket buckets[NSTREAMS];
    uint64_t rng; /* splitmix64 state, for records without a key */
};

/* XXH64 --------------------------------------------------------------- */

static const uint64_t P1 = 0x9E3779B185EBCA87ULL;
static const uint64_t P2 = 0xC2B2AE3D27D4EB4FULL;
static const uint64_t P3 = 0x165667B19E3779F9ULL;
static const uint64_t P4 = 0x85EBCA77C2B2AE63ULL;
static const uint64_t P5 = 0x27D4EB2F165667C5ULL;

static uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

/* Byte by byte, so the value does not depend on the host's byte order or on
 * alignment; compilers turn this into a single load on little-endian hosts. */
static uint64_t read64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint32_t read32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t xxh_round(uint64_t acc, uint64_t input)
{
    acc += input * P2;
    acc = rotl64(acc, 31);
    return acc * P1;
}

static uint64_t xxh_merge(uint64_t acc, uint64_t val)
{
    acc ^= xxh_round(0, val);
    return acc * P1 + P4;
}

/* The 32-byte stripes of a key of at least 32 bytes; advances *pp past them. */
static uint64_t xxh_stripes(const unsigned char **pp, size_t len)
{
    const unsigned char *p = *pp, *limit = p + len - 32;
    uint64_t v1 = P1 + P2, v2 = P2, v3 = 0, v4 = -P1;

    do {
        v1 = xxh_round(v1, read64(p));
        v2 = xxh_round(v2, read64(p + 8));
        v3 = xxh_round(v3, read64(p + 16));
        v4 = xxh_round(v4, read64(p + 24));
        p += 32;
    } while (p <= limit);
    *pp = p;

    uint64_t h = rotl64(v1, 1) + rotl64(v2, 7) + rotl64(v3, 12) + rotl64(v4, 18);
    h = xxh_merge(h, v1);
    h = xxh_merge(h, v2);
    h = xxh_merge(h, v3);
    return xxh_merge(h, v4);
}

/* The last 0-31 bytes, then the final avalanche. */
static uint64_t xxh_tail(uint64_t h, const unsigned char *p, size_t n)
{
    for (; n >= 8; n -= 8, p += 8)
        h = rotl64(h ^ xxh_round(0, read64(p)), 27) * P1 + P4;
    if (n >= 4) {
        h = rotl64(h ^ (uint64_t)read32(p) * P1, 23) * P2 + P3;
        p += 4;
        n -= 4;
    }
    for (; n > 0; n--, p++)
        h = rotl64(h ^ *p * P5, 11) * P1;
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    return h ^ (h >> 32);
}

uint64_t lv_sample_hash(const char *key, size_t len)
{
    const unsigned char *p = (const unsigned char *)key;
    uint64_t h = len >= 32 ? xxh_stripes(&p, len) : P5;

    h += len;
    return xxh_tail(h, p, len - (size_t)(p - (const unsigned char *)key));
}

/* Random numbers for records without a key ------------------------------ */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Seeded once per sampler. Keyless decisions need only be unbiased, not
 * unpredictable, so the time and pid are enough; the address keeps two
 * samplers made in the same nanosecond apart. */
static uint64_t rng_seed(const struct lv_sampler *s)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t seed = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    seed ^= (uint64_t)getpid() << 32;
    seed ^= (uint64_t)(uintptr_t)s;
    return splitmix64(&seed);
}

/* Construction ------------------------------------------------------------ */

/* Rates outside [0, 1] are clamped; NaN keeps everything, since a record
 * lost to a configuration mistake is worse than one too many. */
static double clamp_rate(double r)
{
    if (isnan(r) || r >= 1.0)
        return 1.0;
    return r > 0.0 ? r : 0.0;
}

/* A level's own rate, else the profile's default; for records without a
 * level, the rate of their stream first. */
static double profile_rate(const struct lv_sample_profile *p, int level, int stream)
{
    if (level == LV_LEVEL_UNKNOWN && p->unknown[stream] >= 0)
        return p->unknown[stream];
    return p->levels[level] >= 0 ? p->levels[level] : p->rate;
}

static void set_rates(struct lv_sampler *s, const struct lv_sample_profile *profile)
{
    for (int st = 0; st < NSTREAMS; st++)
        for (int l = 0; l < LV_LEVEL_COUNT; l++)
            s->rate[st][l] = clamp_rate(profile ? profile_rate(profile, l, st) : 1.0);
}

/* A bucket shallower than one token would never let a record through. */
static void set_limit(struct lv_sampler *s, const struct lv_sample_conf *conf)
{
    if (!conf || !(conf->rate_limit > 0))
        return;
    s->limit = conf->rate_limit;
    s->burst = conf->burst > 0 ? conf->burst : conf->rate_limit;
    if (s->burst < 1.0)
        s->burst = 1.0;
}

struct lv_sampler *lv_sample_new(const struct lv_sample_conf *conf,
                                 const struct lv_sample_profile *profile)
{
    struct lv_sampler *s = lv_xcalloc(1, sizeof(*s));

    set_rates(s, profile);
    set_limit(s, conf);
    s->rng = rng_seed(s);
    return s;
}

void lv_sample_free(struct lv_sampler *s)
{
    free(s);
}

/* Decisions ---------------------------------------------------------------- */

/* The record header stores the level in a byte: anything out of range is
 * sampled as UNKNOWN rather than read past the table. */
static enum lv_level level_index(enum lv_level level)
{
    return (unsigned)level < LV_LEVEL_COUNT ? level : LV_LEVEL_UNKNOWN;
}

double lv_sample_rate(const struct lv_sampler *s, enum lv_level level, enum lv_stream stream)
{
    return s->rate[stream == LV_STREAM_STDERR][level_index(level)];
}

/* The rate limit only ever applies to levels that are sampled at all, so a
 * level at rate 1.0 is always kept. */
bool lv_sample_always_kept(const struct lv_sampler *s, enum lv_level level, enum lv_stream stream)
{
    return lv_sample_rate(s, level, stream) >= 1.0;
}

/* The top 53 bits as a fraction in [0, 1): exact in a double, and below 1.0
 * for every hash, so rate 1.0 keeps everything and rate 0 nothing. */
static bool hash_below(uint64_t hash, double rate)
{
    return (double)(hash >> 11) * 0x1.0p-53 < rate;
}

/* Refills from the time since the last call; a clock that steps back adds
 * nothing rather than draining the bucket. */
static bool bucket_take(struct lv_sampler *s, struct bucket *b, int64_t now_ns)
{
    if (!b->started) {
        b->tokens = s->burst;
        b->last_ns = now_ns;
        b->started = true;
    } else if (now_ns > b->last_ns) {
        b->tokens += (double)(now_ns - b->last_ns) * 1e-9 * s->limit;
        if (b->tokens > s->burst)
            b->tokens = s->burst;
        b->last_ns = now_ns;
    }
    if (b->tokens < 1.0)
        return false;
    b->tokens -= 1.0;
    return true;
}

bool lv_sample_decide(struct lv_sampler *s, const struct lv_sample_input *in, double *rate,
                      enum lv_drop_reason *why)
{
    double r = in->keep ? 1.0 : lv_sample_rate(s, in->level, in->stream);

    *rate = r;
    if (r >= 1.0)
        return true;
    uint64_t h = in->has_key ? in->key_hash : splitmix64(&s->rng);
    if (!hash_below(h, r)) {
        *why = LV_DROP_SAMPLED;
        return false;
    }
    if (s->limit > 0 && !bucket_take(s, &s->buckets[in->stream == LV_STREAM_STDERR], in->now_ns)) {
        *why = LV_DROP_RATE_LIMITED;
        return false;
    }
    return true;
}

bool lv_sample_may_drop(const struct lv_sampler *s)
{
    for (int st = 0; st < NSTREAMS; st++)
        for (int l = 0; l < LV_LEVEL_COUNT; l++)
            if (!lv_sample_always_kept(s, (enum lv_level)l, (enum lv_stream)st))
                return true;
    return false;
}
