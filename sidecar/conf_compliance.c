/*
 * Binding of pseudonym and audit keys. A key type reads the file its value
 * names, keeps its bytes less one trailing line ending, LF or CRLF (as
 * hmac_key_file always did), and wipes them when released.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_compliance.h"
#include "logveil/util.h"
#include "pseudonym.h"

static void *field(void *base, size_t off)
{
    return (char *)base + off;
}

static void release_key(const struct lv_conf_map_key *k, void *base)
{
    char **f = field(base, k->off);
    size_t *len = field(base, k->off2);
    if (*f)
        explicit_bzero(*f, *len);
    free(*f);
    *f = NULL;
    *len = 0;
}

/* Reads the key file the node names into the char * at k->off, its length
 * at k->off2. */
static void bind_key_file(struct lv_conf_map_ctx *ctx, const struct lv_conf_map_key *k,
                          const yaml_node_t *node, void *base, const char *where)
{
    const char *path = node->type == YAML_SCALAR_NODE ? lv_conf_map_text(ctx, node) : NULL;
    char *data = NULL;
    size_t len = 0;
    if (!path || !*path) {
        lv_conf_map_error(ctx, node, where, "expected the name of a key file");
        return;
    }
    int rc = lv_read_file(path, LV_CONF_MAP_MAX_SECRET, &data, &len);
    if (rc < 0) {
        lv_conf_map_error(ctx, node, where, "cannot read \"%s\": %s", path,
                          rc == -EFBIG ? "larger than 64 KiB" : strerror(-rc));
        return;
    }
    size_t n = lv_secret_file_len(data, len);
    if (n < LV_PSEUDONYM_MIN_KEY)
        lv_conf_map_error(ctx, node, where,
                          "%s holds %zu bytes, expected a key of at least %d bytes (for "
                          "example: head -c 32 /dev/urandom | base64 > %s)",
                          path, n, LV_PSEUDONYM_MIN_KEY, path);
    else {
        release_key(k, base);
        *(char **)field(base, k->off) = lv_xstrndup(data, n);
        *(size_t *)field(base, k->off2) = n;
    }
    explicit_bzero(data, len);
    free(data);
}

static const struct lv_conf_map_type key_file_type = {bind_key_file, release_key};

static void check_id(struct lv_conf_map_ctx *ctx, const yaml_node_t *node, char **id,
                     const char *key, size_t key_len, const char *where)
{
    if (*id && !lv_pseudonym_valid_id(*id)) {
        lv_conf_map_error(ctx, node, where,
                          "key id \"%.40s\" is not 1 to 32 of A-Z a-z 0-9 _ . -", *id);
        return;
    }
    if (!*id && key) {
        char derived[9];
        lv_pseudonym_derive_id(key, key_len, derived);
        *id = lv_xstrdup(derived);
    }
}

static void hmac_key_check(struct lv_conf_map_ctx *ctx, const yaml_node_t *node, void *elem,
                           const char *where)
{
    struct lv_hmac_key *k = elem;
    char at[LV_CONF_MAP_WHERE];
    const yaml_node_t *id = lv_conf_map_get(ctx, node, "id");
    check_id(ctx, id ? id : node, &k->id, k->key, k->key_len, lv_conf_map_join(at, where, "id"));
}

#define H(f) offsetof(struct lv_hmac_key, f)
static const struct lv_conf_map_key hmac_key_keys[] = {
    {.name = "id", .type = &lv_conf_map_str, .off = H(id), .flags = LV_CONF_MAP_NONEMPTY},
    {.name = "file", .type = &key_file_type, .off = H(key), .off2 = H(key_len),
     .flags = LV_CONF_MAP_REQUIRED},
    {0},
};
#undef H

const struct lv_conf_map_array lv_conf_hmac_key_array = {
    .keys = hmac_key_keys,
    .size = sizeof(struct lv_hmac_key),
    .line_off = offsetof(struct lv_hmac_key, line),
    .check = hmac_key_check,
    .expected = "a map with id and file",
};

/* The old single key file: a key with a derived id, first in the set. */
static void adopt_single_key(struct lv_conf_map_ctx *ctx, const yaml_node_t *file,
                             struct lv_redact_conf *r, const char *where)
{
    if (r->hmac_key_len < LV_PSEUDONYM_MIN_KEY) {
        lv_conf_map_error(ctx, file, where,
                          "the key holds %zu bytes, expected a key of at least %d bytes (for "
                          "example: head -c 32 /dev/urandom | base64 > FILE)",
                          r->hmac_key_len, LV_PSEUDONYM_MIN_KEY);
        return;
    }
    r->hmac_keys = lv_xcalloc(1, sizeof *r->hmac_keys);
    r->nhmac_keys = 1;
    struct lv_hmac_key *k = &r->hmac_keys[0];
    k->key = lv_xmalloc(r->hmac_key_len);
    memcpy(k->key, r->hmac_key, r->hmac_key_len);
    k->key_len = r->hmac_key_len;
    k->line = lv_conf_map_line(file);
    check_id(ctx, file, &k->id, k->key, k->key_len, where);
}

static void check_unique_ids(struct lv_conf_map_ctx *ctx, const struct lv_redact_conf *r)
{
    for (size_t j = 0; j < r->nhmac_keys; j++)
        for (size_t i = 0; i < j; i++)
            if (r->hmac_keys[i].id && r->hmac_keys[j].id &&
                !strcmp(r->hmac_keys[i].id, r->hmac_keys[j].id)) {
                lv_conf_map_error_at(ctx, r->hmac_keys[j].line,
                                     "redact.hmac_keys[%zu]: the id \"%s\" is already used by "
                                     "hmac_keys[%zu], give each key its own id",
                                     j, r->hmac_keys[j].id, i);
                break;
            }
}

void lv_conf_hmac_check(struct lv_conf_map_ctx *ctx, const yaml_node_t *node,
                        const yaml_node_t *at_node, struct lv_redact_conf *r, const char *where,
                        bool uses_hash)
{
    char at[LV_CONF_MAP_WHERE];
    const yaml_node_t *inline_key = lv_conf_map_get(ctx, node, "hmac_key");
    const yaml_node_t *file = lv_conf_map_get(ctx, node, "hmac_key_file");
    const yaml_node_t *keys = lv_conf_map_get(ctx, node, "hmac_keys");
    const yaml_node_t *length = lv_conf_map_get(ctx, node, "hmac_length");
    if (inline_key)
        lv_conf_map_error(ctx, inline_key, lv_conf_map_join(at, where, "hmac_key"),
                          "keys are read from files only, expected hmac_key_file or hmac_keys");
    if (file && keys)
        lv_conf_map_error(ctx, file, where, "give hmac_keys or hmac_key_file, not both");
    else if (file && r->hmac_key)
        adopt_single_key(ctx, file, r, lv_conf_map_join(at, where, "hmac_key_file"));
    check_unique_ids(ctx, r);
    if (length && r->hmac_length % 2)
        lv_conf_map_error(ctx, length, lv_conf_map_join(at, where, "hmac_length"),
                          "expected an even number of hex digits, got %d", r->hmac_length);
    if (uses_hash && !r->nhmac_keys && !inline_key && !file && !keys)
        lv_conf_map_error(ctx, at_node, where, "action hash needs hmac_keys or hmac_key_file");
}

/* ---- audit ------------------------------------------------------------------------- */

#define A(f) offsetof(struct lv_audit_conf, f)
const struct lv_conf_map_key lv_conf_audit_keys[] = {
    {.name = "key_file", .type = &key_file_type, .off = A(key), .off2 = A(key_len),
     .flags = LV_CONF_MAP_REQUIRED},
    {.name = "key_id", .type = &lv_conf_map_str, .off = A(key_id), .flags = LV_CONF_MAP_NONEMPTY},
    {.name = "stream", .type = &lv_conf_map_str, .off = A(stream), .flags = LV_CONF_MAP_NONEMPTY},
    {0},
};
#undef A

void lv_conf_audit_check(struct lv_conf_map_ctx *ctx, const yaml_node_t *node, void *base,
                         const char *where)
{
    struct lv_audit_conf *a = base;
    char at[LV_CONF_MAP_WHERE];
    const yaml_node_t *id = lv_conf_map_get(ctx, node, "key_id");
    a->line = lv_conf_map_line(node);
    if (!a->key)
        return;
    check_id(ctx, id ? id : node, &a->key_id, a->key, a->key_len,
             lv_conf_map_join(at, where, "key_id"));
    if (a->stream && strlen(a->stream) > 200)
        lv_conf_map_error(ctx, lv_conf_map_get(ctx, node, "stream"),
                          lv_conf_map_join(at, where, "stream"), "longer than 200 bytes");
}
