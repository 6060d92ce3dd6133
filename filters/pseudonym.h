/*
 * Pseudonyms: keyed, stable stand-ins for secret values. A value hashed under
 * key `id` becomes "hmac:<id>:<hex>", where <hex> is the first `length` hex
 * digits of HMAC-SHA256(key, value). The same key and value give the same
 * pseudonym in every process and on every machine, so an investigator can
 * compute one (logveil pseudonym) and search the store for it without the
 * value being stored anywhere.
 *
 * A key set holds one or more keys: the first is active (new records use
 * it), the others are kept so that values can still be looked up under the
 * pseudonyms older records carry (rotation).
 *
 * Ownership: a key set copies the key bytes it is given and wipes them
 * (OPENSSL_cleanse) when it is freed. Keys are never logged.
 */
#ifndef LOGVEIL_FILTERS_PSEUDONYM_H
#define LOGVEIL_FILTERS_PSEUDONYM_H

#include <stddef.h>

#include "logveil/conf.h"
#include "logveil/util.h"

/* Key ids: 1 to 32 of [A-Za-z0-9_.-]. */
#define LV_PSEUDONYM_ID_MAX 32
/* Hex digits a pseudonym carries: 8 to 64, default 16. */
#define LV_PSEUDONYM_MIN_DIGITS 8
#define LV_PSEUDONYM_MAX_DIGITS 64
#define LV_PSEUDONYM_DEFAULT_DIGITS 16
/* Keys shorter than this are refused by the configuration. */
#define LV_PSEUDONYM_MIN_KEY 32

struct lv_pseudonym;

/* A key set built from conf->hmac_keys; NULL when there is none. */
struct lv_pseudonym *lv_pseudonym_new(const struct lv_redact_conf *conf);
void lv_pseudonym_free(struct lv_pseudonym *ps);

size_t lv_pseudonym_nkeys(const struct lv_pseudonym *ps);
const char *lv_pseudonym_key_id(const struct lv_pseudonym *ps, size_t i);

/* Appends the pseudonym of `value` under key `i` (0: the active key), without
 * quotes. 0, -ENOBUFS when `out` is full, -EIO when HMAC fails. */
int lv_pseudonym_put(struct lv_pseudonym *ps, size_t i, const char *value, size_t len,
                     struct lv_buf *out);

/* The id logveil gives a key that has none (the old hmac_key_file): the first
 * 8 hex digits of HMAC-SHA256(key, "logveil-key-id"). Writes 9 bytes. */
void lv_pseudonym_derive_id(const char *key, size_t len, char id[9]);

/* Whether `id` is a valid key id. */
int lv_pseudonym_valid_id(const char *id);

#endif
