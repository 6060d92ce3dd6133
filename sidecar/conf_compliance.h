/*
 * The configuration of the compliance features (issue 11), kept apart from
 * conf.c: pseudonym keys (redact.hmac_keys, redact.hmac_key_file,
 * redact.hmac_length) and the audit trail (the `audit` section). Keys are
 * read from files only; a key shorter than 32 bytes is a configuration
 * error at the line that names its file.
 *
 * Ownership: what is bound belongs to struct lv_conf and is released by
 * conf.c's tables, which name these.
 */
#ifndef LOGVEIL_SIDECAR_CONF_COMPLIANCE_H
#define LOGVEIL_SIDECAR_CONF_COMPLIANCE_H

#include "conf_map.h"
#include "logveil/conf.h"

/* redact.hmac_keys: [{id: k2025, file: /etc/logveil/hmac/k2025}, ...] */
extern const struct lv_conf_map_array lv_conf_hmac_key_array;
/* audit: {key_file: F, key_id: ID, stream: NAME} */
extern const struct lv_conf_map_key lv_conf_audit_keys[];
void lv_conf_audit_check(struct lv_conf_map_ctx *ctx, const yaml_node_t *node, void *base,
                         const char *where);

/* The redact section's key checks, after its keys are bound: the old
 * hmac_key_file becomes a key with a derived id, an inline key is refused,
 * duplicate ids, and action hash without any key. */
void lv_conf_hmac_check(struct lv_conf_map_ctx *ctx, const yaml_node_t *node,
                        const yaml_node_t *at_node, struct lv_redact_conf *r, const char *where,
                        bool uses_hash);

#endif
