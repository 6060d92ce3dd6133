/*
 * The configuration loader: logveil's YAML schema written as tables for the
 * binder in conf_map.c, the built-in defaults, and the checks that involve
 * more than one key (a tail input needs paths, action hash needs a key).
 *
 * A file is bound over the defaults for the environment it names, so a key
 * left out keeps its default. A list given in the file replaces the default
 * list (redact.keys, inputs, outputs, always_keep), except
 * sampling.profiles, which is merged with the built-in profiles by name, one
 * setting at a time. Every profile, built-in or new, starts with WARN, ERROR
 * and FATAL at rate 1.0: losing an error to sampling is worse than keeping
 * one too many, so a file has to ask for it by name.
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <pcre2.h>

#include "logveil/conf.h"
#include "logveil/util.h"

#include "conf_compliance.h"
#include "conf_map.h"
#include "level.h"
#include "registry.h"

/* The binder stores enums as int. */
_Static_assert(sizeof(enum lv_action) == sizeof(int), "enum size");
_Static_assert(sizeof(enum lv_match) == sizeof(int), "enum size");
_Static_assert(sizeof(enum lv_format) == sizeof(int), "enum size");
_Static_assert(sizeof(enum lv_input_kind) == sizeof(int), "enum size");
_Static_assert(sizeof(enum lv_output_kind) == sizeof(int), "enum size");
_Static_assert(sizeof(enum lv_log_level) == sizeof(int), "enum size");

#define MIB (1024 * 1024)

/* Names in the order of the enum values. */
static const char *const action_names[] = {"mask", "hash", "drop", NULL};
static const char *const match_names[] = {"contains", "exact", NULL};
static const char *const format_names[] = {"json", "cri", "docker", NULL};
static const char *const input_names[] = {"stdin", "tail", NULL};
static const char *const output_names[] = {"stdout", "file", "elasticsearch", "loki", "kafka",
                                            NULL};
static const char *const log_level_names[] = {"debug", "info", "warn", "error", NULL};
static const char *const when_full_names[] = {"block", "drop_newest", "drop_oldest", "shed", NULL};
static const char *const read_from_names[] = {"head", "tail", NULL};

enum { REQUIRED = LV_CONF_MAP_REQUIRED, NONEMPTY = LV_CONF_MAP_NONEMPTY };

/* The start of a table entry: {KEY("max_line", &lv_conf_map_size, off), .min = 1}. */
#define KEY(n, t, o) .name = (n), .type = (t), .off = (o)

/* ---- regular expressions ---------------------------------------------- */

/* Compiled as the redactor compiles them (no options), so that a pattern
 * accepted here is accepted there. */
static pcre2_code *compile_pattern(const char *pattern, int *code, size_t *offset)
{
    PCRE2_SIZE off = 0;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, 0, code, &off, NULL);
    *offset = off;
    return re;
}

static void bind_regex(struct lv_conf_map_ctx *ctx, const struct lv_conf_map_key *k,
                       const yaml_node_t *node, void *base, const char *where)
{
    lv_conf_map_str.bind(ctx, k, node, base, where);
    const char *pattern = lv_conf_map_text(ctx, node);
    int code;
    size_t off;
    if (!pattern || !*pattern)
        return;
    pcre2_code *re = compile_pattern(pattern, &code, &off);
    if (re) {
        pcre2_code_free(re);
        return;
    }
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(code, msg, sizeof msg);
    lv_conf_map_error(ctx, node, where, "bad regular expression at offset %zu: %s", off,
                      (const char *)msg);
}

static void release_regex(const struct lv_conf_map_key *k, void *base)
{
    lv_conf_map_str.release(k, base);
}

static const struct lv_conf_map_type regex_type = {bind_regex, release_regex};

/* ---- sampling profiles ------------------------------------------------- */

static void bind_level_rate(struct lv_conf_map_ctx *ctx, const struct lv_conf_map_key *k,
                            const yaml_node_t *key, const yaml_node_t *value, void *base,
                            const char *where)
{
    const char *name = lv_conf_map_text(ctx, key);
    enum lv_level level = name ? lv_level_parse(name, strlen(name)) : LV_LEVEL_UNKNOWN;
    char at[LV_CONF_MAP_WHERE];
    if (level == LV_LEVEL_UNKNOWN) {
        lv_conf_map_error(ctx, key, where,
                          "unknown level \"%.40s\", expected one of: TRACE, DEBUG, INFO, WARN, "
                          "ERROR, FATAL",
                          name ? name : "");
        return;
    }
    struct lv_conf_map_key rate = {.name = name,
                                   .type = &lv_conf_map_double,
                                   .off = k->off + (size_t)level * sizeof(double),
                                   .max = 1};
    rate.type->bind(ctx, &rate, value, base, lv_conf_map_join(at, where, name));
}

/* levels: {WARN: 1.0, error: 1.0}; names as lv_level_parse() reads them. */
static void bind_levels(struct lv_conf_map_ctx *ctx, const struct lv_conf_map_key *k,
                        const yaml_node_t *node, void *base, const char *where)
{
    if (!lv_conf_map_is_map(ctx, node, where))
        return;
    for (size_t i = 0; i < lv_conf_map_npairs(node); i++) {
        const yaml_node_t *key, *value;
        lv_conf_map_pair(ctx, node, i, &key, &value);
        bind_level_rate(ctx, k, key, value, base, where);
    }
}

static void release_nothing(const struct lv_conf_map_key *k, void *base)
{
    (void)k;
    (void)base;
}

static const struct lv_conf_map_type levels_type = {bind_levels, release_nothing};

static const struct lv_conf_map_key unknown_keys[] = {
    {KEY("stdout", &lv_conf_map_double, LV_STREAM_STDOUT * sizeof(double)), .max = 1},
    {KEY("stderr", &lv_conf_map_double, LV_STREAM_STDERR * sizeof(double)), .max = 1},
    {0},
};

/* unknown: {stdout: 0.01, stderr: 0.1}, or one rate for both streams. */
static void bind_unknown(struct lv_conf_map_ctx *ctx, const struct lv_conf_map_key *k,
                         const yaml_node_t *node, void *base, const char *where)
{
    double *rates = (double *)((char *)base + k->off);
    if (node->type == YAML_MAPPING_NODE) {
        lv_conf_map_bind(ctx, unknown_keys, node, rates, where);
        return;
    }
    struct lv_conf_map_key both = *k;
    both.type = &lv_conf_map_double;
    both.max = 1;
    both.type->bind(ctx, &both, node, base, where);
    rates[LV_STREAM_STDERR] = rates[LV_STREAM_STDOUT];
}

static const struct lv_conf_map_type unknown_type = {bind_unknown, release_nothing};

#define P(f) offsetof(struct lv_sample_profile, f)
static const struct lv_conf_map_key profile_keys[] = {
    {KEY("default", &lv_conf_map_double, P(rate)), .max = 1},
    {KEY("levels", &levels_type, P(levels))},
    {KEY("unknown", &unknown_type, P(unknown))},
    {0},
};
#undef P

static struct lv_sample_profile *add_profile(struct lv_sample_conf *s, const char *name,
                                             double rate)
{
    s->profiles = lv_xrealloc(s->profiles, (s->nprofiles + 1) * sizeof *s->profiles);
    struct lv_sample_profile *p = &s->profiles[s->nprofiles++];
    p->name = lv_xstrdup(name);
    p->rate = rate;
    for (int l = 0; l < LV_LEVEL_COUNT; l++)
        p->levels[l] = l >= LV_LEVEL_WARN ? 1.0 : -1;
    p->unknown[LV_STREAM_STDOUT] = p->unknown[LV_STREAM_STDERR] = -1;
    return p;
}

static struct lv_sample_profile *profile_for(struct lv_sample_conf *s, const char *name)
{
    for (size_t i = 0; i < s->nprofiles; i++)
        if (!strcmp(s->profiles[i].name, name))
            return &s->profiles[i];
    return add_profile(s, name, 1.0);
}

/* profiles: {name: {default: r, levels: {...}}}, merged into the built-ins.
 * The custom type works on the whole struct lv_sample_conf. */
static void bind_profiles(struct lv_conf_map_ctx *ctx, const struct lv_conf_map_key *k,
                          const yaml_node_t *node, void *base, const char *where)
{
    char at[LV_CONF_MAP_WHERE];
    (void)k;
    if (!lv_conf_map_is_map(ctx, node, where))
        return;
    for (size_t i = 0; i < lv_conf_map_npairs(node); i++) {
        const yaml_node_t *key, *value;
        lv_conf_map_pair(ctx, node, i, &key, &value);
        const char *name = lv_conf_map_text(ctx, key);
        if (!name) {
            lv_conf_map_error(ctx, key, where, "expected a profile name, got a %s",
                              key->type == YAML_MAPPING_NODE ? "map" : "sequence");
            continue;
        }
        struct lv_sample_profile *p = profile_for(base, name);
        lv_conf_map_bind(ctx, profile_keys, value, p, lv_conf_map_join(at, where, name));
    }
}

static void release_profiles(const struct lv_conf_map_key *k, void *base)
{
    struct lv_sample_conf *s = base;
    (void)k;
    for (size_t i = 0; s->profiles && i < s->nprofiles; i++)
        free(s->profiles[i].name);
    free(s->profiles);
    s->profiles = NULL;
    s->nprofiles = 0;
}

static const struct lv_conf_map_type profiles_type = {bind_profiles, release_profiles};

/* ---- redaction ---------------------------------------------------------- */

/* The redactor matches keys in this form: "API_Key" and "api-key" are "apikey". */
static void normalise_key(char *s)
{
    char *d = s;
    for (; *s; s++) {
        if (*s == '_' || *s == '-' || *s == '.')
            continue;
        *d++ = (*s >= 'A' && *s <= 'Z') ? (char)(*s - 'A' + 'a') : *s;
    }
    *d = '\0';
}

static void key_rule_init(void *elem, const void *parent)
{
    struct lv_key_rule *r = elem;
    const struct lv_redact_conf *redact = parent;
    r->match = redact->match;
    r->action = redact->action;
}

static void key_rule_scalar(struct lv_conf_map_ctx *ctx, const yaml_node_t *node, const char *value,
                            void *elem, const char *where)
{
    struct lv_key_rule *r = elem;
    (void)ctx;
    (void)node;
    (void)where;
    r->key = lv_xstrdup(value);
}

static void key_rule_check(struct lv_conf_map_ctx *ctx, const yaml_node_t *node, void *elem,
                           const char *where)
{
    struct lv_key_rule *r = elem;
    if (!r->key)
        return;
    normalise_key(r->key);
    if (!r->key[0])
        lv_conf_map_error(ctx, node, where,
                          "the key is empty once normalised (lower case, "
                          "without _ - .)");
}

#define K(f) offsetof(struct lv_key_rule, f)
static const struct lv_conf_map_key key_rule_keys[] = {
    {KEY("key", &lv_conf_map_str, K(key)), .flags = REQUIRED | NONEMPTY},
    {KEY("match", &lv_conf_map_enum, K(match)), .choices = match_names},
    {KEY("action", &lv_conf_map_enum, K(action)), .choices = action_names},
    {KEY("replacement", &lv_conf_map_str, K(replacement))},
    {0},
};
#undef K

static const struct lv_conf_map_array key_rule_array = {
    .keys = key_rule_keys,
    .size = sizeof(struct lv_key_rule),
    .line_off = LV_CONF_MAP_NO_LINE,
    .init = key_rule_init,
    .check = key_rule_check,
    .scalar = key_rule_scalar,
    .expected = "a string or a map with key/match/action/replacement",
};

static void pattern_init(void *elem, const void *parent)
{
    struct lv_value_rule *r = elem;
    const struct lv_redact_conf *redact = parent;
    r->action = redact->action;
}

static int capture_count(const char *pattern)
{
    int code;
    size_t off;
    uint32_t n = 0;
    pcre2_code *re = compile_pattern(pattern, &code, &off);
    if (!re)
        return -1;
    pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &n);
    pcre2_code_free(re);
    return (int)n;
}

static void pattern_check(struct lv_conf_map_ctx *ctx, const yaml_node_t *node, void *elem,
                          const char *where)
{
    struct lv_value_rule *r = elem;
    const yaml_node_t *group = lv_conf_map_get(ctx, node, "group");
    char at[LV_CONF_MAP_WHERE];
    if (!r->pattern || !group || r->group == 0)
        return;
    int n = capture_count(r->pattern);
    if (n >= 0 && r->group > n)
        lv_conf_map_error(ctx, group, lv_conf_map_join(at, where, "group"),
                          "the pattern has %d capture group%s, so group %d does not exist", n,
                          n == 1 ? "" : "s", r->group);
}

#define V(f) offsetof(struct lv_value_rule, f)
static const struct lv_conf_map_key pattern_keys[] = {
    {KEY("name", &lv_conf_map_str, V(name)), .flags = REQUIRED | NONEMPTY},
    {KEY("pattern", &regex_type, V(pattern)), .flags = REQUIRED | NONEMPTY},
    {KEY("hints", &lv_conf_map_strlist, V(hints)), .off2 = V(nhints)},
    {KEY("group", &lv_conf_map_int, V(group)), .max = 99},
    {KEY("action", &lv_conf_map_enum, V(action)), .choices = action_names},
    {KEY("replacement", &lv_conf_map_str, V(replacement))},
    {0},
};
#undef V

static const struct lv_conf_map_array pattern_array = {
    .keys = pattern_keys,
    .size = sizeof(struct lv_value_rule),
    .line_off = offsetof(struct lv_value_rule, line),
    .init = pattern_init,
    .check = pattern_check,
    .expected = "a map with name, pattern, hints, group, action and replacement",
};

static bool uses_hash(const struct lv_redact_conf *r)
{
    bool hash = r->action == LV_ACTION_HASH;
    for (size_t i = 0; i < r->nkeys; i++)
        hash |= r->keys[i].action == LV_ACTION_HASH;
    for (size_t i = 0; i < r->npatterns; i++)
        hash |= r->patterns[i].action == LV_ACTION_HASH;
    return hash;
}

/* Without keys in the file the default rules stay, and they take the
 * section's action, and its match when one is given (each default word has
 * its own: the short ones are exact). */
static void redact_check(struct lv_conf_map_ctx *ctx, const yaml_node_t *node, void *base,
                         const char *where)
{
    struct lv_redact_conf *r = base;
    const yaml_node_t *action = lv_conf_map_get(ctx, node, "action");
    bool match = lv_conf_map_get(ctx, node, "match") != NULL;
    for (size_t i = 0; !lv_conf_map_get(ctx, node, "keys") && i < r->nkeys; i++) {
        if (match)
            r->keys[i].match = r->match;
        r->keys[i].action = r->action;
    }
    lv_conf_hmac_check(ctx, node, r->action == LV_ACTION_HASH && action ? action : node, r, where,
                       uses_hash(r));
}

#define R(f) offsetof(struct lv_redact_conf, f)
/* match, action and replacement come first: rules below take them as defaults. */
static const struct lv_conf_map_key redact_keys[] = {
    {KEY("match", &lv_conf_map_enum, R(match)), .choices = match_names},
    {KEY("action", &lv_conf_map_enum, R(action)), .choices = action_names},
    {KEY("replacement", &lv_conf_map_str, R(replacement)), .flags = NONEMPTY},
    {KEY("hmac_key", &lv_conf_map_secret, R(hmac_key)), .off2 = R(hmac_key_len),
     .flags = LV_CONF_MAP_FILE},
    {KEY("hmac_keys", &lv_conf_map_array, R(hmac_keys)), .off2 = R(nhmac_keys), .flags = NONEMPTY,
     .array = &lv_conf_hmac_key_array},
    {KEY("hmac_length", &lv_conf_map_int, R(hmac_length)), .min = 8, .max = 64},
    {KEY("builtin_patterns", &lv_conf_map_bool, R(builtin_patterns))},
    {KEY("count_field", &lv_conf_map_bool, R(count_field))},
    {KEY("summary_field", &lv_conf_map_bool, R(summary_field))},
    {KEY("keys", &lv_conf_map_array, R(keys)), .off2 = R(nkeys), .array = &key_rule_array},
    {KEY("patterns", &lv_conf_map_array, R(patterns)), .off2 = R(npatterns),
     .array = &pattern_array},
    {0},
};
#undef R

/* ---- sampling, enrichment, limits, admin -------------------------------- */

#define A(f) offsetof(struct lv_keep_rule, f)
static const struct lv_conf_map_key keep_keys[] = {
    {KEY("field", &lv_conf_map_str, A(field)), .flags = REQUIRED | NONEMPTY},
    {KEY("equals", &lv_conf_map_str, A(equals)), .flags = REQUIRED | NONEMPTY},
    {0},
};
#undef A

static const struct lv_conf_map_array keep_array = {
    .keys = keep_keys,
    .size = sizeof(struct lv_keep_rule),
    .line_off = LV_CONF_MAP_NO_LINE,
    .expected = "a map with field and equals",
};

#define S(f) offsetof(struct lv_sample_conf, f)
static const struct lv_conf_map_key sampling_keys[] = {
    {KEY("key", &lv_conf_map_str, S(key)), .flags = NONEMPTY},
    {KEY("level_fields", &lv_conf_map_strlist, S(level_fields)), .off2 = S(nlevel_fields)},
    {KEY("profiles", &profiles_type, S(profiles)), .off2 = S(nprofiles)},
    {KEY("always_keep", &lv_conf_map_array, S(keep)), .off2 = S(nkeep), .array = &keep_array},
    {KEY("rate_limit", &lv_conf_map_double, S(rate_limit))},
    {KEY("burst", &lv_conf_map_double, S(burst))},
    {0},
};
#undef S

#define E(f) offsetof(struct lv_enrich_conf, f)
static const struct lv_conf_map_key enrich_keys[] = {
    {KEY("time_fields", &lv_conf_map_strlist, E(time_fields)), .off2 = E(ntime_fields)},
    {KEY("timestamp_field", &lv_conf_map_str, E(timestamp_field)), .flags = NONEMPTY},
    {KEY("environment_field", &lv_conf_map_str, E(environment_field))},
    {KEY("stream_field", &lv_conf_map_str, E(stream_field)), .flags = NONEMPTY},
    {KEY("kubernetes", &lv_conf_map_bool, E(kubernetes))},
    {KEY("labels_file", &lv_conf_map_str, E(labels_file))},
    {KEY("ecs", &lv_conf_map_bool, E(ecs))},
    {0},
};
#undef E

static const struct lv_conf_map_key limits_keys[] = {
    {KEY("max_line", &lv_conf_map_size, offsetof(struct lv_limits, max_line)), .min = 1},
    {KEY("max_depth", &lv_conf_map_int, offsetof(struct lv_limits, max_depth)), .min = 1,
     .max = 4096},
    {0},
};

static const struct lv_conf_map_key buffer_keys[] = {
    {KEY("max_bytes", &lv_conf_map_size, offsetof(struct lv_conf, buffer_max_bytes)), .min = 1},
    {KEY("when_full", &lv_conf_map_enum, offsetof(struct lv_conf, when_full)),
     .choices = when_full_names},
    {KEY("spool_dir", &lv_conf_map_str, offsetof(struct lv_conf, spool_dir)), .flags = NONEMPTY},
    {KEY("spool_max_bytes", &lv_conf_map_size, offsetof(struct lv_conf, spool_max_bytes))},
    {0},
};

/* As the admin server reads it: an IPv4 address or localhost, and a port
 * (0 picks a free one). */
static bool valid_listen(const char *s)
{
    const char *colon = strrchr(s, ':');
    char host[INET_ADDRSTRLEN], *end;
    struct in_addr addr;
    if (!colon || colon == s || (size_t)(colon - s) >= sizeof host ||
        !isdigit((unsigned char)colon[1]))
        return false;
    long port = strtol(colon + 1, &end, 10);
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    return !*end && port <= 65535 &&
           (!strcmp(host, "localhost") || inet_pton(AF_INET, host, &addr) == 1);
}

static void admin_check(struct lv_conf_map_ctx *ctx, const yaml_node_t *node, void *base,
                        const char *where)
{
    const struct lv_admin_conf *a = base;
    char at[LV_CONF_MAP_WHERE];
    if (a->listen && !valid_listen(a->listen))
        lv_conf_map_error(ctx, lv_conf_map_get(ctx, node, "listen"),
                          lv_conf_map_join(at, where, "listen"),
                          "expected HOST:PORT with HOST an IPv4 address or localhost, such as "
                          "127.0.0.1:2020, got \"%.60s\"",
                          a->listen);
    if (a->probe_listen && !valid_listen(a->probe_listen))
        lv_conf_map_error(ctx, lv_conf_map_get(ctx, node, "probe_listen"),
                          lv_conf_map_join(at, where, "probe_listen"),
                          "expected HOST:PORT with HOST an IPv4 address or localhost, such as "
                          "0.0.0.0:2021, got \"%.60s\"",
                          a->probe_listen);
    else if (a->probe_listen && !a->listen)
        lv_conf_map_error(ctx, lv_conf_map_get(ctx, node, "probe_listen"),
                          lv_conf_map_join(at, where, "probe_listen"),
                          "a probe listener needs admin.listen as well");
}

static const struct lv_conf_map_key admin_keys[] = {
    {KEY("listen", &lv_conf_map_str, offsetof(struct lv_admin_conf, listen))},
    {KEY("probe_listen", &lv_conf_map_str, offsetof(struct lv_admin_conf, probe_listen)),
     .flags = NONEMPTY},
    {0},
};

/* ---- inputs and outputs ------------------------------------------------- */

/* True when the element names a valid type; checks that depend on the type
 * are skipped otherwise, the type having been reported already. */
static bool type_is(struct lv_conf_map_ctx *ctx, const yaml_node_t *node, const char *const *names,
                    int kind)
{
    const yaml_node_t *type = lv_conf_map_get(ctx, node, "type");
    const char *text = type ? lv_conf_map_text(ctx, type) : NULL;
    return text && !strcasecmp(text, names[kind]);
}

static void input_check(struct lv_conf_map_ctx *ctx, const yaml_node_t *node, void *elem,
                        const char *where)
{
    const struct lv_input_conf *in = elem;
    if (!type_is(ctx, node, input_names, (int)in->kind))
        return;
    if (in->kind == LV_INPUT_TAIL && !in->npaths)
        lv_conf_map_error(ctx, node, where, "a tail input needs paths, the files to follow");
    if (in->kind == LV_INPUT_STDIN && (in->npaths || in->nexclude || in->nallowed_roots))
        lv_conf_map_error(ctx, node, where,
                          "paths, exclude and allowed_roots apply only to tail inputs");
    char at[LV_CONF_MAP_WHERE];
    for (size_t i = 0; i < in->nallowed_roots; i++)
        if (in->allowed_roots[i][0] != '/')
            lv_conf_map_error(ctx, lv_conf_map_get(ctx, node, "allowed_roots"),
                              lv_conf_map_join(at, where, "allowed_roots"),
                              "\"%.100s\" is not an absolute path, expected directories such "
                              "as /var/log/pods",
                              in->allowed_roots[i]);
}

static void input_init(void *elem, const void *parent)
{
    struct lv_input_conf *in = elem;
    (void)parent;
    in->max_open_files = 64;
    in->scan_interval = 2.0;
    in->rotate_wait = 5.0;
    in->multiline.timeout = 1.0;
    in->multiline.max_lines = 500;
}

/* Any map turns joining on, `multiline: {}` with the default pattern. */
static void multiline_check(struct lv_conf_map_ctx *ctx, const yaml_node_t *node, void *base,
                            const char *where)
{
    struct lv_multiline_conf *m = base;
    (void)ctx;
    (void)node;
    (void)where;
    m->enabled = true;
    if (!m->pattern)
        m->pattern = lv_xstrdup(LV_MULTILINE_CONTINUE);
}

#define M(f) offsetof(struct lv_multiline_conf, f)
static const struct lv_conf_map_key multiline_keys[] = {
    {KEY("continue", &regex_type, M(pattern)), .flags = NONEMPTY},
    {KEY("timeout", &lv_conf_map_double, M(timeout)), .min = 0.01, .max = 3600},
    {KEY("max_lines", &lv_conf_map_int, M(max_lines)), .min = 1, .max = 100000},
    {0},
};
#undef M

#define I(f) offsetof(struct lv_input_conf, f)
static const struct lv_conf_map_key input_keys[] = {
    {KEY("type", &lv_conf_map_enum, I(kind)), .flags = REQUIRED, .choices = input_names},
    {KEY("format", &lv_conf_map_enum, I(format)), .choices = format_names},
    {KEY("paths", &lv_conf_map_strlist, I(paths)), .off2 = I(npaths)},
    {KEY("exclude", &lv_conf_map_strlist, I(exclude)), .off2 = I(nexclude)},
    {KEY("allowed_roots", &lv_conf_map_strlist, I(allowed_roots)), .off2 = I(nallowed_roots),
     .flags = NONEMPTY},
    {KEY("checkpoint", &lv_conf_map_str, I(checkpoint)), .flags = NONEMPTY},
    {KEY("max_open_files", &lv_conf_map_int, I(max_open_files)), .min = 1, .max = 100000},
    {KEY("scan_interval", &lv_conf_map_double, I(scan_interval)), .min = 0.01, .max = 3600},
    {KEY("rotate_wait", &lv_conf_map_double, I(rotate_wait)), .min = 0, .max = 3600},
    {KEY("read_from", &lv_conf_map_enum, I(read_from)), .choices = read_from_names},
    {KEY("multiline", &lv_conf_map_map, I(multiline)), .sub = multiline_keys,
     .check = multiline_check},
    {0},
};
#undef I

static const struct lv_conf_map_array input_array = {
    .keys = input_keys,
    .size = sizeof(struct lv_input_conf),
    .line_off = offsetof(struct lv_input_conf, line),
    .init = input_init,
    .check = input_check,
    .expected = "a map with type, format, paths, exclude, allowed_roots, checkpoint, "
                "max_open_files, scan_interval, rotate_wait, read_from and multiline",
};

static void output_init(void *elem, const void *parent)
{
    struct lv_output_conf *o = elem;
    (void)parent;
    o->max_files = 5;
}

/* Every type's keys but type and name are next to its code
 * (struct lv_output_type.opts). */
static void output_check(struct lv_conf_map_ctx *ctx, const yaml_node_t *node, void *elem,
                         const char *where)
{
    struct lv_output_conf *o = elem;
    if (!type_is(ctx, node, output_names, (int)o->kind))
        return;
    if (!o->name)
        o->name = lv_xstrdup(output_names[o->kind]);
    if (o->opts_spec && o->opts_spec->check)
        o->opts_spec->check(ctx, node, o->opts ? o->opts : o, where);
}

/* The keys of the output's type, bound into options of its own (or into
 * the element, for a spec of size 0). */
static const struct lv_conf_map_key *output_more(struct lv_conf_map_ctx *ctx,
                                                 const yaml_node_t *node, void *elem, void **base)
{
    struct lv_output_conf *o = elem;
    const yaml_node_t *type = lv_conf_map_get(ctx, node, "type");
    const char *text = type ? lv_conf_map_text(ctx, type) : NULL;
    for (int k = 0; text && output_names[k]; k++) {
        const struct lv_output_type *t = lv_registry_output((enum lv_output_kind)k);
        if (strcasecmp(text, output_names[k]) || !t || !t->opts)
            continue;
        o->opts_spec = t->opts;
        o->opts = t->opts->size ? lv_xcalloc(1, t->opts->size) : NULL;
        if (o->opts && t->opts->init)
            t->opts->init(o->opts);
        *base = o->opts ? o->opts : o;
        return t->opts->keys;
    }
    return NULL;
}

static void output_free_more(void *elem)
{
    struct lv_output_conf *o = elem;
    if (o->opts_spec)
        lv_conf_map_release(o->opts_spec->keys, o->opts ? o->opts : o);
    free(o->opts);
    o->opts = NULL;
    o->opts_spec = NULL;
}

#define O(f) offsetof(struct lv_output_conf, f)
static const struct lv_conf_map_key output_keys[] = {
    {KEY("type", &lv_conf_map_enum, O(kind)), .flags = REQUIRED, .choices = output_names},
    {KEY("name", &lv_conf_map_str, O(name)), .flags = NONEMPTY},
    {0},
};
#undef O

static const struct lv_conf_map_array output_array = {
    .keys = output_keys,
    .size = sizeof(struct lv_output_conf),
    .line_off = offsetof(struct lv_output_conf, line),
    .init = output_init,
    .check = output_check,
    .expected = "a map with type, name and the type's keys (file: path, max_bytes, max_files, "
                "fsync)",
    .more = output_more,
    .free_more = output_free_more,
};

/* ---- the file ----------------------------------------------------------- */

#define C(f) offsetof(struct lv_conf, f)
static const struct lv_conf_map_key top_keys[] = {
    {KEY("environment", &lv_conf_map_str, C(environment)), .flags = NONEMPTY},
    {KEY("log_level", &lv_conf_map_enum, C(log_level)), .choices = log_level_names},
    {KEY("inputs", &lv_conf_map_array, C(inputs)), .off2 = C(ninputs), .flags = NONEMPTY,
     .array = &input_array},
    {KEY("redact", &lv_conf_map_map, C(redact)), .sub = redact_keys, .check = redact_check},
    {KEY("sampling", &lv_conf_map_map, C(sample)), .sub = sampling_keys},
    {KEY("enrich", &lv_conf_map_map, C(enrich)), .sub = enrich_keys},
    {KEY("limits", &lv_conf_map_map, C(limits)), .sub = limits_keys},
    {KEY("buffer", &lv_conf_map_map, 0), .sub = buffer_keys},
    {KEY("admin", &lv_conf_map_map, C(admin)), .sub = admin_keys, .check = admin_check},
    {KEY("audit", &lv_conf_map_map, C(audit)), .sub = lv_conf_audit_keys,
     .check = lv_conf_audit_check},
    {KEY("state_dir", &lv_conf_map_str, C(state_dir)), .flags = NONEMPTY},
    {KEY("shutdown_timeout", &lv_conf_map_double, C(shutdown_timeout)), .min = 0, .max = 3600},
    {KEY("strict_secret_files", &lv_conf_map_bool, C(strict_secret_files))},
    {KEY("outputs", &lv_conf_map_array, C(outputs)), .off2 = C(noutputs), .flags = NONEMPTY,
     .array = &output_array},
    {0},
};
#undef C

/* Output names label logs and metrics, so two outputs cannot share one. */
static void check_outputs(struct lv_conf_map_ctx *ctx, const struct lv_conf *conf)
{
    for (size_t j = 0; j < conf->noutputs; j++) {
        for (size_t i = 0; i < j; i++) {
            if (conf->outputs[i].name && conf->outputs[j].name &&
                !strcmp(conf->outputs[i].name, conf->outputs[j].name)) {
                lv_conf_map_error_at(ctx, conf->outputs[j].line,
                                     "outputs[%zu]: the name \"%s\" is already used by "
                                     "outputs[%zu], give each output its own name",
                                     j, conf->outputs[j].name, i);
                break;
            }
        }
    }
}

/* There is one stdin; two inputs reading it would split its lines. */
static void check_inputs(struct lv_conf_map_ctx *ctx, const struct lv_conf *conf)
{
    size_t first = SIZE_MAX;
    for (size_t i = 0; i < conf->ninputs; i++) {
        if (conf->inputs[i].kind != LV_INPUT_STDIN)
            continue;
        if (first == SIZE_MAX)
            first = i;
        else
            lv_conf_map_error_at(ctx, conf->inputs[i].line,
                                 "inputs[%zu]: stdin is already read by inputs[%zu], give "
                                 "one stdin input",
                                 i, first);
    }
}

/* The environment picks the defaults, so it is read before anything else. */
static const char *file_environment(struct lv_conf_map_ctx *ctx)
{
    const yaml_node_t *root = lv_conf_map_root(ctx);
    const yaml_node_t *env = root ? lv_conf_map_get(ctx, root, "environment") : NULL;
    const char *s = env ? lv_conf_map_text(ctx, env) : NULL;
    return s && *s && !lv_conf_map_is_null(ctx, env) ? s : NULL;
}

/* A misspelt environment would otherwise only be caught at start-up. */
static void check_environment(struct lv_conf_map_ctx *ctx, const yaml_node_t *root,
                              const struct lv_conf *conf)
{
    char names[256];
    size_t len = 0;
    if (lv_conf_profile(conf))
        return;
    names[0] = '\0';
    for (size_t i = 0; i < conf->sample.nprofiles && len < sizeof names; i++)
        len += (size_t)snprintf(names + len, sizeof names - len, "%s, ",
                                conf->sample.profiles[i].name);
    lv_conf_map_error(ctx, lv_conf_map_get(ctx, root, "environment"), "environment",
                      "no sampling profile named \"%.60s\", expected one of: %sor a profile of "
                      "that name under sampling.profiles",
                      conf->environment, names);
}

/* The longest line must fit in the buffer, or one line could break the
 * memory bound the buffer promises. */
static void check_budget(struct lv_conf_map_ctx *ctx, const yaml_node_t *root,
                         const struct lv_conf *conf)
{
    if (conf->limits.max_line <= conf->buffer_max_bytes)
        return;
    const yaml_node_t *buffer = lv_conf_map_get(ctx, root, "buffer");
    lv_conf_map_error(ctx, buffer ? buffer : lv_conf_map_get(ctx, root, "limits"),
                      "buffer.max_bytes",
                      "%llu bytes is less than limits.max_line (%zu bytes), expected a buffer "
                      "at least one line long",
                      (unsigned long long)conf->buffer_max_bytes, conf->limits.max_line);
}

/* A secret another user of the node can read is no secret: a warning, or
 * with strict_secret_files an error. The mode is that of the file itself,
 * symlinks followed (a Kubernetes secret volume links each key into
 * ..data/). */
static void check_secret_mode(struct lv_conf_map_ctx *ctx, const struct lv_conf *conf,
                              const struct lv_conf_map_file *f)
{
    struct stat st;
    if (!f->secret || stat(f->path, &st) < 0 || !(st.st_mode & (S_IRGRP | S_IROTH)))
        return;
    const char *who = (st.st_mode & S_IROTH) ? "every user" : "its group";
    if (conf->strict_secret_files)
        lv_conf_map_error_at(ctx, f->line,
                             "secret file %.200s is readable by %s (mode %04o), expected a file "
                             "only its owner can read (chmod 600; defaultMode: 0400 in a "
                             "Kubernetes secret volume)",
                             f->path, who, (unsigned)(st.st_mode & 07777));
    else
        lv_warn("%s:%d: secret file %.200s is readable by %s (mode %04o); make it readable by "
                "its owner only (chmod 600; defaultMode: 0400 in a Kubernetes secret volume), "
                "or set strict_secret_files: true to refuse it",
                ctx->path, f->line, f->path, who, (unsigned)(st.st_mode & 07777));
}

/* Takes over the files NAME_file keys named, for the tail inputs to refuse. */
static void take_files(struct lv_conf_map_ctx *ctx, struct lv_conf *conf)
{
    conf->secret_files = lv_xcalloc(ctx->nfiles + 1, sizeof *conf->secret_files);
    for (size_t i = 0; i < ctx->nfiles; i++) {
        check_secret_mode(ctx, conf, &ctx->files[i]);
        conf->secret_files[conf->nsecret_files++] = ctx->files[i].path;
        ctx->files[i].path = NULL;
    }
}

static void bind_file(struct lv_conf_map_ctx *ctx, struct lv_conf *conf)
{
    const yaml_node_t *root = lv_conf_map_root(ctx);
    if (!root || lv_conf_map_is_null(ctx, root))
        return; /* an empty file: the defaults */
    if (!lv_conf_map_is_map(ctx, root, "the top level"))
        return;
    lv_conf_map_bind(ctx, top_keys, root, conf, "");
    take_files(ctx, conf);
    check_inputs(ctx, conf);
    check_outputs(ctx, conf);
    check_budget(ctx, root, conf);
    if (lv_conf_map_get(ctx, root, "environment"))
        check_environment(ctx, root, conf);
}

static void take_errors(struct lv_conf_map_ctx *ctx, struct lv_conf_errors *errors)
{
    char **msgs;
    size_t n = lv_conf_map_errors(ctx, &msgs);
    if (errors) {
        errors->msgs = msgs;
        errors->n = n;
        return;
    }
    for (size_t i = 0; i < n; i++)
        free(msgs[i]);
    free(msgs);
}

int lv_conf_load(const char *path, struct lv_conf *conf, struct lv_conf_errors *errors)
{
    struct lv_conf_map_ctx ctx;
    if (errors)
        *errors = (struct lv_conf_errors){0};
    int rc = lv_conf_map_open(&ctx, path);
    lv_conf_defaults(conf, file_environment(&ctx));
    conf->path = lv_xstrdup(path);
    if (rc == 0)
        bind_file(&ctx, conf);
    if (rc == 0 && ctx.nerrs)
        rc = -EINVAL;
    take_errors(&ctx, errors);
    lv_conf_map_close(&ctx);
    return rc;
}

/* ---- defaults ------------------------------------------------------------ */

static char **strv_dup(const char *const *v, size_t n, size_t *count)
{
    char **out = lv_xcalloc(n, sizeof *out);
    for (size_t i = 0; i < n; i++)
        out[i] = lv_xstrdup(v[i]);
    *count = n;
    return out;
}

/* Keys whose normalised form contains one of the first words, or is one of
 * the short words: what a compliance officer expects `logveil filter` to
 * catch with no configuration. The short words are exact, so "spin",
 * "pinned" and "otpauth_enabled" stay readable. */
static void default_redact(struct lv_redact_conf *r)
{
    static const struct {
        const char *word;
        enum lv_match match;
    } keys[] = {
        {"password", LV_MATCH_CONTAINS},   {"passwd", LV_MATCH_CONTAINS},
        {"passphrase", LV_MATCH_CONTAINS}, {"secret", LV_MATCH_CONTAINS},
        {"token", LV_MATCH_CONTAINS},      {"apikey", LV_MATCH_CONTAINS},
        {"privatekey", LV_MATCH_CONTAINS}, {"credential", LV_MATCH_CONTAINS},
        {"authorization", LV_MATCH_CONTAINS}, {"cookie", LV_MATCH_CONTAINS},
        {"sessionid", LV_MATCH_CONTAINS},  {"pwd", LV_MATCH_EXACT},
        {"pin", LV_MATCH_EXACT},           {"otp", LV_MATCH_EXACT},
    };
    r->match = LV_MATCH_CONTAINS;
    r->action = LV_ACTION_MASK;
    r->replacement = lv_xstrdup("[REDACTED]");
    r->builtin_patterns = true;
    r->count_field = false;
    r->hmac_length = 16;
    r->keys = lv_xcalloc(LV_ARRAY_LEN(keys), sizeof *r->keys);
    r->nkeys = LV_ARRAY_LEN(keys);
    for (size_t i = 0; i < r->nkeys; i++)
        r->keys[i] = (struct lv_key_rule){lv_xstrdup(keys[i].word), keys[i].match, r->action, NULL};
}

/* The built-in level fields, from the table in filters/level.c. */
static void default_level_fields(struct lv_sample_conf *s)
{
    size_t n;
    const struct lv_level_field *f = lv_level_fields(&n);
    s->level_fields = lv_xcalloc(n, sizeof *s->level_fields);
    for (size_t i = 0; i < n; i++)
        s->level_fields[i] = lv_xstrdup(f[i].name);
    s->nlevel_fields = n;
}

/* A stderr line without a level is more often a crash's or a runtime's
 * message than one on stdout, so where records are sampled it is kept at a
 * higher rate. */
static void default_sample(struct lv_sample_conf *s)
{
    static const struct {
        const char *name;
        double rate;   /* for TRACE, DEBUG, INFO and records without a level */
        double stderr; /* for records without a level on stderr */
    } profiles[] = {{"development", 1.0, 1.0},
                    {"staging", 0.1, 0.5},
                    {"canary", 0.1, 0.5},
                    {"production", 0.01, 0.1}};
    s->key = lv_xstrdup("trace_id");
    default_level_fields(s);
    for (size_t i = 0; i < LV_ARRAY_LEN(profiles); i++) {
        struct lv_sample_profile *p = add_profile(s, profiles[i].name, profiles[i].rate);
        p->unknown[LV_STREAM_STDERR] = profiles[i].stderr;
    }
    s->keep = lv_xcalloc(1, sizeof *s->keep);
    s->keep[0] = (struct lv_keep_rule){lv_xstrdup("log.type"), lv_xstrdup("audit")};
    s->nkeep = 1;
}

static void default_enrich(struct lv_enrich_conf *e)
{
    static const char *const time_fields[] = {"@timestamp", "timestamp", "time", "ts"};
    e->time_fields = strv_dup(time_fields, LV_ARRAY_LEN(time_fields), &e->ntime_fields);
    e->timestamp_field = lv_xstrdup("@timestamp");
    e->environment_field = lv_xstrdup("environment");
    e->stream_field = lv_xstrdup("stream");
    e->kubernetes = true;
    e->ecs = true;
}

void lv_conf_defaults(struct lv_conf *conf, const char *environment)
{
    memset(conf, 0, sizeof *conf);
    conf->environment = lv_xstrdup(environment ? environment : "development");
    conf->log_level = LV_LOG_INFO;
    conf->inputs = lv_xcalloc(1, sizeof *conf->inputs);
    conf->inputs[0] = (struct lv_input_conf){.kind = LV_INPUT_STDIN, .format = LV_FORMAT_JSON};
    conf->ninputs = 1;
    conf->outputs = lv_xcalloc(1, sizeof *conf->outputs);
    conf->outputs[0] = (struct lv_output_conf){
        .kind = LV_OUTPUT_STDOUT, .name = lv_xstrdup("stdout"), .max_files = 5};
    conf->noutputs = 1;
    default_redact(&conf->redact);
    default_sample(&conf->sample);
    default_enrich(&conf->enrich);
    conf->limits = (struct lv_limits){.max_line = MIB, .max_depth = 64};
    conf->buffer_max_bytes = 64 * (uint64_t)MIB;
    conf->state_dir = lv_xstrdup("/var/lib/logveil");
    conf->shutdown_timeout = 25;
}

const struct lv_sample_profile *lv_conf_profile(const struct lv_conf *conf)
{
    for (size_t i = 0; conf->environment && i < conf->sample.nprofiles; i++)
        if (!strcmp(conf->sample.profiles[i].name, conf->environment))
            return &conf->sample.profiles[i];
    return NULL;
}

void lv_conf_wipe_keys(struct lv_conf *conf)
{
    struct lv_redact_conf *r = &conf->redact;
    if (r->hmac_key)
        explicit_bzero(r->hmac_key, r->hmac_key_len);
    free(r->hmac_key);
    r->hmac_key = NULL;
    r->hmac_key_len = 0;
    /* The pseudonym keys and the audit key: the redactor and the audit
     * trail keep copies of their own. */
    for (size_t i = 0; i < r->nhmac_keys; i++) {
        struct lv_hmac_key *k = &r->hmac_keys[i];
        if (k->key)
            explicit_bzero(k->key, k->key_len);
        free(k->key);
        k->key = NULL;
        k->key_len = 0;
    }
    if (conf->audit.key)
        explicit_bzero(conf->audit.key, conf->audit.key_len);
    free(conf->audit.key);
    conf->audit.key = NULL;
    conf->audit.key_len = 0;
}

void lv_conf_free(struct lv_conf *conf)
{
    lv_conf_map_release(top_keys, conf);
    for (size_t i = 0; i < conf->nsecret_files; i++)
        free(conf->secret_files[i]);
    free(conf->secret_files);
    free(conf->path);
    memset(conf, 0, sizeof *conf);
}

void lv_conf_errors_free(struct lv_conf_errors *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->n; i++)
        free(e->msgs[i]);
    free(e->msgs);
    e->msgs = NULL;
    e->n = 0;
}
