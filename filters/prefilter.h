/*
 * A vectorised prefilter for the redaction pre-scan. For a 64-byte block it
 * returns the positions where a word may start, so that the exact test runs
 * on those few positions instead of on every byte.
 *
 * The pre-scan folds raw bytes by OR 0x20 and, for a word w0 w1 w2 ...,
 * accepts the folded trigrams (w0 w1 w2), (w0 w1 S), (w0 S w1) and (w0 S S')
 * where S and S' are separators ('_', '-' and '.', folded 0x7f, 0x2d, 0x2e).
 * The prefilter accepts a superset: w0, then w1 or a separator, then w1, w2
 * or a separator. Its promise is that a position whose folded trigram is
 * one of a word's is always reported; other positions may be reported too.
 *
 * It is Teddy (from Hyperscan): words are grouped into at most eight
 * buckets, one bit each, and for each of the three positions two 16-entry
 * tables give the buckets whose characters have a byte's low nibble and its
 * high nibble. A byte matches a bucket at a position when both tables have
 * the bucket's bit; one PSHUFB looks up 16 or 32 bytes at a time. Separators
 * are recognised exactly, by a third table, and match every bucket. The
 * AVX2, SSSE3 and portable versions compute the same masks.
 *
 * Ownership: the prefilter copies what it needs from the words. Only the
 * test hooks change it after construction; lv_prefilter_block() may be
 * called from any number of threads at once.
 */
#ifndef LOGVEIL_FILTERS_PREFILTER_H
#define LOGVEIL_FILTERS_PREFILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lv_prefilter;

/* Bytes lv_prefilter_block() reads from p: the 64 positions and the two
 * bytes after the last. The caller pads a short tail. */
#define LV_PREFILTER_READ 66

/* `words`: n normalised words (lower case, without '_', '-' or '.'); those
 * shorter than three bytes are ignored. Bytes may be anything else. */
struct lv_prefilter *lv_prefilter_new(const char *const *words, const size_t *lens, size_t n);
void lv_prefilter_free(struct lv_prefilter *pf);

/* Bit k (0..63) is set when the folded trigram at p[k], p[k+1], p[k+2] may
 * start a word. Reads p[0] .. p[LV_PREFILTER_READ - 1], unaligned. */
uint64_t lv_prefilter_block(const struct lv_prefilter *pf, const unsigned char *p);

/* The implementation in use: "avx2", "ssse3" or "scalar". */
const char *lv_prefilter_impl(const struct lv_prefilter *pf);

/* For tests: use the portable implementation (on), or the one chosen for
 * this CPU (off). */
void lv_prefilter_force_scalar(struct lv_prefilter *pf, bool on);
/* For tests: use implementation `impl` ("avx2", "ssse3", "scalar"), or the
 * one chosen for this CPU when NULL. 0, or -ENOTSUP when this build or CPU
 * cannot run it (the implementation in use is then unchanged). */
int lv_prefilter_force(struct lv_prefilter *pf, const char *impl);

#endif
