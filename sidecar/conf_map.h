/*
 * A table-driven binder from one YAML document onto C structs, in the manner
 * of Fluent Bit's config_map and nginx's ngx_command_t: a table of keys, each
 * naming a type and the offsetof its field. The binder checks types, ranges
 * and enum values, expands ${VAR}, ${VAR:-default} and $$ in every scalar
 * value (never in keys), reads NAME_file keys for secrets, and reports
 * unknown, duplicate and missing keys. Every problem is collected with its
 * line, and binding goes on, so one run shows them all.
 *
 * Ownership: what is bound belongs to the struct it was bound into, and
 * lv_conf_map_release() frees it by the same table, so a key in the table is
 * a field that is freed. The context owns the document and the messages until
 * lv_conf_map_errors() hands the messages over.
 */
#ifndef LOGVEIL_SIDECAR_CONF_MAP_H
#define LOGVEIL_SIDECAR_CONF_MAP_H

#include <stdbool.h>
#include <stddef.h>

#include <yaml.h>

/* Longest dotted location ("redact.patterns[0].pattern") kept for messages. */
#define LV_CONF_MAP_WHERE 256
/* Configuration files are small; anything larger is a mistake. */
#define LV_CONF_MAP_MAX_FILE (1024 * 1024)
/* Secrets read from NAME_file. */
#define LV_CONF_MAP_MAX_SECRET (64 * 1024)
/* lv_conf_map_array.line_off when the element has no line field. */
#define LV_CONF_MAP_NO_LINE ((size_t)-1)

struct lv_conf_map_err;

/* A file a NAME_file key named: a secret read by the binder, or a string
 * key such as labels_file. */
struct lv_conf_map_file {
    char *path;
    int line;
    bool secret; /* read as a secret (LV_CONF_MAP_FILE) */
};

struct lv_conf_map_ctx {
    const char *path;
    char *text;
    size_t len;
    yaml_document_t doc;
    bool loaded;
    char **values; /* by node index: expanded scalar text; NULL when expansion failed */
    struct lv_conf_map_err *errs;
    size_t nerrs;
    struct lv_conf_map_file *files; /* every NAME_file key bound, in binding order */
    size_t nfiles;
};

struct lv_conf_map_key;

/* Binds `node` into the field `k` describes inside `base`; `where` is the
 * dotted location used in messages. */
typedef void lv_conf_map_bind_fn(struct lv_conf_map_ctx *ctx, const struct lv_conf_map_key *k,
                                 const yaml_node_t *node, void *base, const char *where);
/* Frees what the field `k` describes inside `base` and leaves it empty. */
typedef void lv_conf_map_release_fn(const struct lv_conf_map_key *k, void *base);
/* Fills one new array element with its defaults, some taken from `parent`. */
typedef void lv_conf_map_init_fn(void *elem, const void *parent);
/* Checks a bound map (or array element) as a whole, after its keys. */
typedef void lv_conf_map_check_fn(struct lv_conf_map_ctx *ctx, const yaml_node_t *node, void *base,
                                  const char *where);
/* Fills an array element given as a plain string instead of a map. */
typedef void lv_conf_map_scalar_fn(struct lv_conf_map_ctx *ctx, const yaml_node_t *node,
                                   const char *value, void *elem, const char *where);

/* The keys of an array element that depend on what it is (an output's
 * type): fills *base with where they bind (allocated by the callback) and
 * returns their table, or NULL when there are none. Runs before the
 * element's own keys are bound, so it reads what it needs from `node`. */
typedef const struct lv_conf_map_key *lv_conf_map_more_fn(struct lv_conf_map_ctx *ctx,
                                                           const yaml_node_t *node, void *elem,
                                                           void **base);
/* Frees what lv_conf_map_more_fn allocated for an element. */
typedef void lv_conf_map_free_fn(void *elem);

struct lv_conf_map_type {
    lv_conf_map_bind_fn *bind;
    lv_conf_map_release_fn *release;
};

/* A sequence of maps bound into a heap array of structs. */
struct lv_conf_map_array {
    const struct lv_conf_map_key *keys;
    size_t size;                   /* element size */
    size_t line_off;               /* offsetof the element's int line, or LV_CONF_MAP_NO_LINE */
    lv_conf_map_init_fn *init;     /* may be NULL: zeroed */
    lv_conf_map_check_fn *check;   /* may be NULL */
    lv_conf_map_scalar_fn *scalar; /* NULL: elements must be maps */
    const char *expected;          /* for type errors: "a map with type and path" */
    lv_conf_map_more_fn *more;     /* may be NULL: the element has only `keys` */
    lv_conf_map_free_fn *free_more; /* with more: releases what it bound */
};

/* The options of a stage type that declares its own keys (an output type,
 * next to its code): bound into a struct of `size` bytes that `init` fills
 * with the defaults first; `check` looks at them as a whole afterwards.
 * Size 0: the keys bind into the element itself (the file output's fields
 * in struct lv_output_conf), and `check` gets the element. */
struct lv_conf_spec {
    const struct lv_conf_map_key *keys;
    size_t size;
    void (*init)(void *opts);
    lv_conf_map_check_fn *check; /* may be NULL */
};

enum {
    LV_CONF_MAP_REQUIRED = 1 << 0, /* a missing key is an error */
    LV_CONF_MAP_NONEMPTY = 1 << 1, /* strings: not null, not ""; arrays: one element at least */
    LV_CONF_MAP_FILE = 1 << 2,     /* secrets: may be given as NAME_file instead */
    LV_CONF_MAP_SECRET_PATH = 1 << 3, /* strings: names a file holding a secret (a TLS
                                         key): listed like NAME_file secrets */
};

/* One key of a table; a table ends with an entry whose name is NULL. */
struct lv_conf_map_key {
    const char *name;
    const struct lv_conf_map_type *type;
    size_t off;  /* the field, from the table's base */
    size_t off2; /* lists and arrays: the count; secrets: the length */
    unsigned flags;
    double min, max;                   /* numbers and sizes; max 0: no upper bound */
    const char *const *choices;        /* enums: names in value order, NULL-terminated */
    const struct lv_conf_map_key *sub; /* maps: the keys inside */
    const struct lv_conf_map_array *array;
    lv_conf_map_check_fn *check; /* maps: runs after the keys are bound */
};

/* Field types. Enums are stored as int; strings as char *; lists as char **
 * with a size_t count at off2; secrets as char * with a size_t length at off2;
 * sizes ("64MiB", 1048576) as size_t (size) or uint64_t (u64). */
extern const struct lv_conf_map_type lv_conf_map_str;
extern const struct lv_conf_map_type lv_conf_map_secret;
extern const struct lv_conf_map_type lv_conf_map_bool;
extern const struct lv_conf_map_type lv_conf_map_int;
extern const struct lv_conf_map_type lv_conf_map_double;
extern const struct lv_conf_map_type lv_conf_map_size;
extern const struct lv_conf_map_type lv_conf_map_u64;
extern const struct lv_conf_map_type lv_conf_map_enum;
extern const struct lv_conf_map_type lv_conf_map_strlist;
extern const struct lv_conf_map_type lv_conf_map_map;
extern const struct lv_conf_map_type lv_conf_map_array;

/* Reads and parses `path` and expands its values. 0; -EINVAL after a YAML
 * syntax error; -errno when the file cannot be read. Errors are reported in
 * the context, which must be closed whatever the result. */
int lv_conf_map_open(struct lv_conf_map_ctx *ctx, const char *path);
void lv_conf_map_close(struct lv_conf_map_ctx *ctx);
/* The document's top node, or NULL for an empty file. */
const yaml_node_t *lv_conf_map_root(struct lv_conf_map_ctx *ctx);

/* Binds the map `node` into `base` by the table `keys`. A null node (an empty
 * value) binds nothing. */
void lv_conf_map_bind(struct lv_conf_map_ctx *ctx, const struct lv_conf_map_key *keys,
                      const yaml_node_t *node, void *base, const char *where);
/* Frees every field of `base` that the table `keys` describes. */
void lv_conf_map_release(const struct lv_conf_map_key *keys, void *base);

/* Node access for custom types. */
int lv_conf_map_line(const yaml_node_t *node);
bool lv_conf_map_is_null(struct lv_conf_map_ctx *ctx, const yaml_node_t *node);
/* True for a map; false for null, and false with an error for anything else. */
bool lv_conf_map_is_map(struct lv_conf_map_ctx *ctx, const yaml_node_t *node, const char *where);
/* The value of `name` in the map `map`, or NULL. */
const yaml_node_t *lv_conf_map_get(struct lv_conf_map_ctx *ctx, const yaml_node_t *map,
                                   const char *name);
/* A scalar's text, expanded unless it is a key; NULL when expansion failed. */
const char *lv_conf_map_text(struct lv_conf_map_ctx *ctx, const yaml_node_t *node);
size_t lv_conf_map_npairs(const yaml_node_t *map);
void lv_conf_map_pair(struct lv_conf_map_ctx *ctx, const yaml_node_t *map, size_t i,
                      const yaml_node_t **key, const yaml_node_t **value);

/* "where.name" into out (LV_CONF_MAP_WHERE bytes); just name when where is "". */
const char *lv_conf_map_join(char *out, const char *where, const char *name);

/* Reports "where: message" at the node's line ("message" when where is ""). */
void lv_conf_map_error(struct lv_conf_map_ctx *ctx, const yaml_node_t *node, const char *where,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Reports a message at a line; line 0 when the problem has none. */
void lv_conf_map_error_at(struct lv_conf_map_ctx *ctx, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Hands over the messages, in line order, each "path:line: message"; returns
 * how many. The caller frees each and the array. */
size_t lv_conf_map_errors(struct lv_conf_map_ctx *ctx, char ***msgs);

#endif
