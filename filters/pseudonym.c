/*
 * Pseudonyms. Each key has an HMAC-SHA256 context keyed once at start;
 * hashing a value re-initialises it with the same key (EVP_MAC_init with no
 * key), which costs OpenSSL two small allocations against a dozen for the
 * one-shot HMAC(), and no key schedule.
 */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "logveil/log.h"
#include "pseudonym.h"

/* OpenSSL without HMAC-SHA256 is a broken installation, not a condition to
 * run under: nothing could be hashed. */
static void no_hmac(void)
{
    lv_error("OpenSSL has no HMAC-SHA256");
    abort();
}

struct pkey {
    char id[LV_PSEUDONYM_ID_MAX + 1];
    EVP_MAC_CTX *mac;
};

struct lv_pseudonym {
    struct pkey *keys;
    size_t nkeys;
    int digits;
};

static EVP_MAC_CTX *keyed_mac(const char *key, size_t len)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    EVP_MAC_free(mac); /* the context holds its own reference */
    if (ctx && !EVP_MAC_init(ctx, (const unsigned char *)key, len, params)) {
        EVP_MAC_CTX_free(ctx);
        ctx = NULL;
    }
    if (!ctx)
        no_hmac();
    return ctx;
}

struct lv_pseudonym *lv_pseudonym_new(const struct lv_redact_conf *conf)
{
    if (!conf->nhmac_keys)
        return NULL;
    struct lv_pseudonym *ps = lv_xcalloc(1, sizeof *ps);
    ps->keys = lv_xcalloc(conf->nhmac_keys, sizeof *ps->keys);
    ps->nkeys = conf->nhmac_keys;
    ps->digits = conf->hmac_length ? conf->hmac_length : LV_PSEUDONYM_DEFAULT_DIGITS;
    for (size_t i = 0; i < ps->nkeys; i++) {
        const struct lv_hmac_key *k = &conf->hmac_keys[i];
        snprintf(ps->keys[i].id, sizeof ps->keys[i].id, "%s", k->id);
        ps->keys[i].mac = keyed_mac(k->key, k->key_len);
    }
    return ps;
}

void lv_pseudonym_free(struct lv_pseudonym *ps)
{
    if (!ps)
        return;
    /* EVP_MAC_CTX_free cleanses the key material it holds. */
    for (size_t i = 0; i < ps->nkeys; i++)
        EVP_MAC_CTX_free(ps->keys[i].mac);
    free(ps->keys);
    free(ps);
}

size_t lv_pseudonym_nkeys(const struct lv_pseudonym *ps)
{
    return ps ? ps->nkeys : 0;
}

const char *lv_pseudonym_key_id(const struct lv_pseudonym *ps, size_t i)
{
    return ps->keys[i].id;
}

static int mac(EVP_MAC_CTX *ctx, const char *text, size_t len, unsigned char md[32])
{
    size_t mdlen = 0;
    if (!EVP_MAC_init(ctx, NULL, 0, NULL) ||
        !EVP_MAC_update(ctx, (const unsigned char *)text, len) ||
        !EVP_MAC_final(ctx, md, &mdlen, 32) || mdlen != 32)
        return -EIO;
    return 0;
}

static void to_hex(const unsigned char *md, int digits, char *hex)
{
    static const char xd[] = "0123456789abcdef";
    for (int i = 0; i < digits; i++)
        hex[i] = xd[(md[i / 2] >> (i % 2 ? 0 : 4)) & 15];
}

int lv_pseudonym_put(struct lv_pseudonym *ps, size_t i, const char *value, size_t len,
                     struct lv_buf *out)
{
    unsigned char md[32];
    char text[5 + LV_PSEUDONYM_ID_MAX + 1 + LV_PSEUDONYM_MAX_DIGITS];
    if (!ps || i >= ps->nkeys || mac(ps->keys[i].mac, value, len, md) < 0)
        return -EIO;
    size_t idlen = strlen(ps->keys[i].id);
    memcpy(text, "hmac:", 5);
    memcpy(text + 5, ps->keys[i].id, idlen);
    text[5 + idlen] = ':';
    to_hex(md, ps->digits, text + 6 + idlen);
    OPENSSL_cleanse(md, sizeof md);
    return lv_buf_append(out, text, 6 + idlen + (size_t)ps->digits);
}

void lv_pseudonym_derive_id(const char *key, size_t len, char id[9])
{
    static const char label[] = "logveil-key-id";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!HMAC(EVP_sha256(), key, (int)len, (const unsigned char *)label, sizeof label - 1, md,
              &mdlen))
        no_hmac();
    to_hex(md, 8, id);
    id[8] = '\0';
}

int lv_pseudonym_valid_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > LV_PSEUDONYM_ID_MAX)
        return 0;
    return strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}
