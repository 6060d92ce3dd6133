/*
 * The configuration binder: YAML in, C structs out, one message per problem.
 *
 * The file is loaded whole with libyaml's document API, so keys can be
 * visited in the table's order rather than the file's: a setting that others
 * depend on (redact.action before redact.keys) is bound first wherever it is
 * written. Scalar values are expanded once, up front, into a side array
 * indexed like the document's nodes; a value whose expansion failed is NULL
 * there and every later look at it is silent, so each problem is reported
 * once. Messages carry their line and are sorted by it at the end, which puts
 * them back in file order.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "logveil/util.h"

#include "conf_map.h"

struct lv_conf_map_err {
    int line;
    size_t seq; /* report order, to keep the sort stable */
    char *msg;
};

static void *field(void *base, size_t off)
{
    return (char *)base + off;
}

/* Array fields are typed pointers (struct lv_input_conf *); they are read and
 * written as bytes so that no lvalue of the wrong pointer type is used. */
static void *get_ptr(void *base, size_t off)
{
    void *p;
    memcpy(&p, field(base, off), sizeof p);
    return p;
}

static void set_ptr(void *base, size_t off, void *p)
{
    memcpy(field(base, off), &p, sizeof p);
}

/* ---- errors ---------------------------------------------------------- */

static void add_error(struct lv_conf_map_ctx *ctx, int line, const char *msg)
{
    ctx->errs = lv_xrealloc(ctx->errs, (ctx->nerrs + 1) * sizeof *ctx->errs);
    ctx->errs[ctx->nerrs] = (struct lv_conf_map_err){line, ctx->nerrs, lv_xstrdup(msg)};
    ctx->nerrs++;
}

void lv_conf_map_error_at(struct lv_conf_map_ctx *ctx, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    add_error(ctx, line, msg);
}

void lv_conf_map_error(struct lv_conf_map_ctx *ctx, const yaml_node_t *node, const char *where,
                       const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (where[0])
        lv_conf_map_error_at(ctx, lv_conf_map_line(node), "%s: %s", where, msg);
    else
        add_error(ctx, lv_conf_map_line(node), msg);
}

static int by_line(const void *a, const void *b)
{
    const struct lv_conf_map_err *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static char *format_error(const char *path, const struct lv_conf_map_err *e)
{
    char head[32] = "";
    if (e->line > 0)
        snprintf(head, sizeof head, ":%d", e->line);
    size_t n = strlen(path) + strlen(head) + strlen(e->msg) + 3;
    char *s = lv_xmalloc(n);
    snprintf(s, n, "%s%s: %s", path, head, e->msg);
    return s;
}

size_t lv_conf_map_errors(struct lv_conf_map_ctx *ctx, char ***msgs)
{
    size_t n = ctx->nerrs;
    if (n)
        qsort(ctx->errs, n, sizeof *ctx->errs, by_line);
    *msgs = n ? lv_xcalloc(n, sizeof **msgs) : NULL;
    for (size_t i = 0; i < n; i++) {
        (*msgs)[i] = format_error(ctx->path, &ctx->errs[i]);
        free(ctx->errs[i].msg);
    }
    free(ctx->errs);
    ctx->errs = NULL;
    ctx->nerrs = 0;
    return n;
}

/* ---- nodes ----------------------------------------------------------- */

int lv_conf_map_line(const yaml_node_t *node)
{
    return node ? (int)node->start_mark.line + 1 : 0;
}

static const yaml_node_t *node_at(struct lv_conf_map_ctx *ctx, int id)
{
    return yaml_document_get_node(&ctx->doc, id);
}

static size_t node_id(const struct lv_conf_map_ctx *ctx, const yaml_node_t *node)
{
    return (size_t)(node - ctx->doc.nodes.start) + 1;
}

const yaml_node_t *lv_conf_map_root(struct lv_conf_map_ctx *ctx)
{
    return ctx->loaded ? yaml_document_get_root_node(&ctx->doc) : NULL;
}

const char *lv_conf_map_text(struct lv_conf_map_ctx *ctx, const yaml_node_t *node)
{
    return node->type == YAML_SCALAR_NODE ? ctx->values[node_id(ctx, node)] : NULL;
}

/* YAML's null: an empty plain value, ~ or null. */
bool lv_conf_map_is_null(struct lv_conf_map_ctx *ctx, const yaml_node_t *node)
{
    if (node->type != YAML_SCALAR_NODE || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = lv_conf_map_text(ctx, node);
    return s && (!*s || !strcmp(s, "~") || !strcasecmp(s, "null"));
}

size_t lv_conf_map_npairs(const yaml_node_t *map)
{
    if (map->type != YAML_MAPPING_NODE)
        return 0;
    return (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
}

void lv_conf_map_pair(struct lv_conf_map_ctx *ctx, const yaml_node_t *map, size_t i,
                      const yaml_node_t **key, const yaml_node_t **value)
{
    const yaml_node_pair_t *p = map->data.mapping.pairs.start + i;
    *key = node_at(ctx, p->key);
    *value = node_at(ctx, p->value);
}

static size_t seq_len(const yaml_node_t *seq)
{
    return (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
}

static const yaml_node_t *seq_item(struct lv_conf_map_ctx *ctx, const yaml_node_t *seq, size_t i)
{
    return node_at(ctx, seq->data.sequence.items.start[i]);
}

const yaml_node_t *lv_conf_map_get(struct lv_conf_map_ctx *ctx, const yaml_node_t *map,
                                   const char *name)
{
    for (size_t i = 0; i < lv_conf_map_npairs(map); i++) {
        const yaml_node_t *k, *v;
        lv_conf_map_pair(ctx, map, i, &k, &v);
        const char *s = lv_conf_map_text(ctx, k);
        if (s && !strcmp(s, name))
            return v;
    }
    return NULL;
}

const char *lv_conf_map_join(char *out, const char *where, const char *name)
{
    snprintf(out, LV_CONF_MAP_WHERE, "%s%s%s", where, where[0] ? "." : "", name);
    return out;
}

/* "a map", "a sequence", "nothing" or the quoted value, for type errors. */
#define MAX_ECHO 16 /* characters of a value that messages quote */

static const char *describe(struct lv_conf_map_ctx *ctx, const yaml_node_t *node, char *buf,
                            size_t size)
{
    if (node->type == YAML_MAPPING_NODE)
        return "a map";
    if (node->type == YAML_SEQUENCE_NODE)
        return "a sequence";
    if (lv_conf_map_is_null(ctx, node))
        return "nothing";
    const char *s = lv_conf_map_text(ctx, node);
    s = s ? s : "";
    /* A long value in the wrong place may be a secret put there by
     * mistake: its length is said, not its text. */
    if (strlen(s) > MAX_ECHO)
        snprintf(buf, size, "a string of %zu characters", strlen(s));
    else
        snprintf(buf, size, "\"%s\"", s);
    return buf;
}

static void type_error(struct lv_conf_map_ctx *ctx, const yaml_node_t *node, const char *where,
                       const char *expected)
{
    char buf[80];
    lv_conf_map_error(ctx, node, where, "expected %s, got %s", expected,
                      describe(ctx, node, buf, sizeof buf));
}

bool lv_conf_map_is_map(struct lv_conf_map_ctx *ctx, const yaml_node_t *node, const char *where)
{
    if (node->type == YAML_MAPPING_NODE)
        return true;
    if (!lv_conf_map_is_null(ctx, node))
        type_error(ctx, node, where, "a map");
    return false;
}

/* The text of a scalar value; NULL after reporting that it is not one, or
 * silently when its expansion already failed. */
static const char *scalar(struct lv_conf_map_ctx *ctx, const yaml_node_t *node, const char *where,
                          const char *expected)
{
    if (node->type == YAML_SCALAR_NODE)
        return lv_conf_map_text(ctx, node);
    type_error(ctx, node, where, expected);
    return NULL;
}

/* ---- ${VAR} expansion ------------------------------------------------ */

static bool is_var_name(const char *s, size_t n)
{
    if (!n || isdigit((unsigned char)s[0]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_')
            return false;
    return true;
}

/* Expands the ${...} at *sp and moves *sp past it. Shell semantics: ":-"
 * takes the default when the variable is unset or empty. */
static int expand_var(struct lv_conf_map_ctx *ctx, const yaml_node_t *node, const char **sp,
                      struct lv_buf *b)
{
    const char *name = *sp + 2;
    const char *close = strchr(name, '}');
    size_t n = strcspn(name, ":}");
    if (!close || (name[n] == ':' && name[n + 1] != '-') || !is_var_name(name, n)) {
        /* The value may be a secret with a "${" in it: quoted only when the
         * reference is short and closed. */
        size_t len = close ? (size_t)(close - *sp) + 1 : SIZE_MAX;
        if (len <= MAX_ECHO)
            lv_conf_map_error(ctx, node, "",
                              "bad variable reference \"%.*s\", expected ${NAME} or "
                              "${NAME:-default}; write $$ for a literal $",
                              (int)len, *sp);
        else
            lv_conf_map_error(ctx, node, "",
                              "bad variable reference, expected ${NAME} or ${NAME:-default}; "
                              "write $$ for a literal $");
        return -EINVAL;
    }
    char *var = lv_xstrndup(name, n);
    const char *val = getenv(var);
    const char *def = name[n] == ':' ? name + n + 2 : NULL;
    int rc;
    if (def && (!val || !*val))
        rc = lv_buf_append(b, def, (size_t)(close - def));
    else if (val)
        rc = lv_buf_append(b, val, strlen(val));
    else
        rc = -EINVAL;
    if (!def && !val)
        lv_conf_map_error(ctx, node, "",
                          "environment variable %s is not set, expected it to be set or a "
                          "default given as ${%s:-default}",
                          var, var);
    free(var);
    *sp = close + 1;
    return rc;
}

static int expand(struct lv_conf_map_ctx *ctx, const yaml_node_t *node, const char *s,
                  struct lv_buf *b)
{
    int rc = 0;
    while (*s && rc == 0) {
        if (s[0] == '$' && s[1] == '$') {
            rc = lv_buf_putc(b, '$');
            s += 2;
        } else if (s[0] == '$' && s[1] == '{') {
            rc = expand_var(ctx, node, &s, b);
        } else {
            rc = lv_buf_putc(b, *s++);
        }
    }
    return rc;
}

static char *expand_value(struct lv_conf_map_ctx *ctx, const yaml_node_t *node)
{
    const char *raw = (const char *)node->data.scalar.value;
    if (strlen(raw) != node->data.scalar.length) {
        lv_conf_map_error(ctx, node, "", "the value contains a NUL character");
        return NULL;
    }
    if (!strchr(raw, '$'))
        return lv_xstrdup(raw);
    struct lv_buf b;
    lv_buf_init(&b, node->data.scalar.length + 1, LV_CONF_MAP_MAX_FILE);
    int rc = expand(ctx, node, raw, &b);
    if (rc == 0)
        rc = lv_buf_putc(&b, '\0');
    if (rc == -ENOBUFS)
        lv_conf_map_error(ctx, node, "", "the value is longer than 1 MiB once expanded");
    char *out = rc == 0 ? lv_xstrdup(b.data) : NULL;
    if (b.data) /* ${VAR} may have brought a secret in */
        explicit_bzero(b.data, b.cap);
    lv_buf_free(&b);
    return out;
}

/* ---- loading --------------------------------------------------------- */

static int line_of_offset(const struct lv_conf_map_ctx *ctx, size_t off)
{
    int line = 1;
    for (size_t i = 0; i < off && i < ctx->len; i++)
        line += ctx->text[i] == '\n';
    return line;
}

/* `${` between two marks: the usual cause of a syntax error in { } or [ ],
 * where braces end a plain value. */
static bool has_var_between(const struct lv_conf_map_ctx *ctx, size_t from, size_t to)
{
    for (size_t i = from; i + 1 < to && i + 1 < ctx->len; i++)
        if (ctx->text[i] == '$' && ctx->text[i + 1] == '{')
            return true;
    return false;
}

static void syntax_error(struct lv_conf_map_ctx *ctx, const yaml_parser_t *p)
{
    int line = p->error == YAML_READER_ERROR ? line_of_offset(ctx, p->problem_offset)
                                             : (int)p->problem_mark.line + 1;
    const char *problem = p->problem ? p->problem : "the file cannot be parsed";
    const char *hint = "";
    if (p->context && strstr(p->context, "flow") &&
        has_var_between(ctx, p->context_mark.index, p->problem_mark.index + 1))
        hint = "; inside { } or [ ], quote a value that holds ${...}";
    if (p->context)
        lv_conf_map_error_at(ctx, line, "YAML syntax error: %s (%s at line %d)%s", problem,
                             p->context, (int)p->context_mark.line + 1, hint);
    else
        lv_conf_map_error_at(ctx, line, "YAML syntax error: %s", problem);
}

/* A second document would be silently ignored; say so instead. */
static int check_single_document(struct lv_conf_map_ctx *ctx, yaml_parser_t *p)
{
    yaml_document_t next;
    if (!yaml_parser_load(p, &next)) {
        syntax_error(ctx, p);
        return -EINVAL;
    }
    yaml_node_t *root = yaml_document_get_root_node(&next);
    if (root)
        lv_conf_map_error_at(ctx, lv_conf_map_line(root),
                             "a second YAML document, expected one document per file");
    yaml_document_delete(&next);
    return 0;
}

static int parse(struct lv_conf_map_ctx *ctx)
{
    yaml_parser_t p;
    int rc = 0;
    if (!yaml_parser_initialize(&p))
        return -ENOMEM;
    yaml_parser_set_input_string(&p, (const unsigned char *)ctx->text, ctx->len);
    if (!yaml_parser_load(&p, &ctx->doc)) {
        syntax_error(ctx, &p);
        rc = -EINVAL;
        goto out;
    }
    ctx->loaded = true;
    rc = check_single_document(ctx, &p);
out:
    yaml_parser_delete(&p);
    return rc;
}

/* Marks the map's keys, which are never expanded, and reports duplicates:
 * YAML forbids them, and silently taking one would hide the other. */
static void mark_keys(struct lv_conf_map_ctx *ctx, const yaml_node_t *map, bool *is_key)
{
    const yaml_node_pair_t *pairs = map->data.mapping.pairs.start;
    for (size_t i = 0; i < lv_conf_map_npairs(map); i++) {
        const yaml_node_t *k = node_at(ctx, pairs[i].key);
        is_key[pairs[i].key] = true;
        for (size_t j = 0; j < i && k->type == YAML_SCALAR_NODE; j++) {
            const yaml_node_t *prev = node_at(ctx, pairs[j].key);
            if (prev->type == YAML_SCALAR_NODE &&
                !strcmp((const char *)prev->data.scalar.value, (const char *)k->data.scalar.value))
                lv_conf_map_error(ctx, k, "", "duplicate key \"%.100s\", first given at line %d",
                                  (const char *)k->data.scalar.value, lv_conf_map_line(prev));
        }
    }
}

static void prepare(struct lv_conf_map_ctx *ctx)
{
    size_t n = (size_t)(ctx->doc.nodes.top - ctx->doc.nodes.start);
    bool *is_key = lv_xcalloc(n + 1, sizeof *is_key);
    ctx->values = lv_xcalloc(n + 1, sizeof *ctx->values);
    for (yaml_node_t *node = ctx->doc.nodes.start; node < ctx->doc.nodes.top; node++)
        if (node->type == YAML_MAPPING_NODE)
            mark_keys(ctx, node, is_key);
    for (yaml_node_t *node = ctx->doc.nodes.start; node < ctx->doc.nodes.top; node++) {
        size_t id = node_id(ctx, node);
        if (node->type != YAML_SCALAR_NODE)
            continue;
        ctx->values[id] = is_key[id] ? lv_xstrdup((const char *)node->data.scalar.value)
                                     : expand_value(ctx, node);
    }
    free(is_key);
}

int lv_conf_map_open(struct lv_conf_map_ctx *ctx, const char *path)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->path = path;
    int rc = lv_read_file(path, LV_CONF_MAP_MAX_FILE, &ctx->text, &ctx->len);
    if (rc == -EFBIG)
        lv_conf_map_error_at(ctx, 0, "the file is larger than 1 MiB");
    else if (rc < 0)
        lv_conf_map_error_at(ctx, 0, "cannot read the file: %s", strerror(-rc));
    if (rc < 0)
        return rc;
    rc = parse(ctx);
    if (ctx->loaded)
        prepare(ctx);
    return rc;
}

static void free_wiped(char *s)
{
    if (s)
        explicit_bzero(s, strlen(s));
    free(s);
}

/* The file may hold secrets inline (hmac_key: ...), in its text, in the
 * document's scalars and in their expanded values: all are wiped before
 * they are freed. */
void lv_conf_map_close(struct lv_conf_map_ctx *ctx)
{
    size_t n = ctx->loaded ? (size_t)(ctx->doc.nodes.top - ctx->doc.nodes.start) : 0;
    for (size_t i = 0; ctx->values && i <= n; i++)
        free_wiped(ctx->values[i]);
    free(ctx->values);
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *node = &ctx->doc.nodes.start[i];
        if (node->type == YAML_SCALAR_NODE && node->data.scalar.value)
            explicit_bzero(node->data.scalar.value, node->data.scalar.length);
    }
    if (ctx->loaded)
        yaml_document_delete(&ctx->doc);
    if (ctx->text)
        explicit_bzero(ctx->text, ctx->len);
    for (size_t i = 0; i < ctx->nerrs; i++)
        free(ctx->errs[i].msg);
    free(ctx->errs);
    for (size_t i = 0; i < ctx->nfiles; i++)
        free(ctx->files[i].path);
    free(ctx->files);
    free(ctx->text);
    memset(ctx, 0, sizeof *ctx);
}

/* ---- maps ------------------------------------------------------------ */

static const struct lv_conf_map_key *find_key(const struct lv_conf_map_key *keys, const char *name)
{
    for (const struct lv_conf_map_key *k = keys; k->name; k++)
        if (!strcmp(k->name, name))
            return k;
    return NULL;
}

/* NAME_file for a key that allows it. */
static bool is_file_key(const struct lv_conf_map_key *keys, const char *name)
{
    size_t n = strlen(name);
    if (n <= 5 || strcmp(name + n - 5, "_file"))
        return false;
    for (const struct lv_conf_map_key *k = keys; k->name; k++)
        if ((k->flags & LV_CONF_MAP_FILE) && strlen(k->name) == n - 5 &&
            !strncmp(k->name, name, n - 5))
            return true;
    return false;
}

static void expected_keys(const struct lv_conf_map_key *keys, char *out, size_t size)
{
    size_t len = 0;
    out[0] = '\0';
    for (const struct lv_conf_map_key *k = keys; k->name && len < size; k++) {
        const char *sep = k == keys ? "" : ", ";
        if (k->flags & LV_CONF_MAP_FILE)
            len += (size_t)snprintf(out + len, size - len, "%s%s, %s_file", sep, k->name, k->name);
        else
            len += (size_t)snprintf(out + len, size - len, "%s%s", sep, k->name);
    }
}

static void unknown_key(struct lv_conf_map_ctx *ctx, const struct lv_conf_map_key *keys,
                        const struct lv_conf_map_key *more, const yaml_node_t *key,
                        const char *name, const char *where)
{
    char expected[1024];
    expected_keys(keys, expected, sizeof expected);
    if (more && more->name) {
        size_t len = strlen(expected);
        snprintf(expected + len, sizeof expected - len, ", ");
        expected_keys(more, expected + len + 2, sizeof expected - len - 2);
    }
    if (where[0])
        lv_conf_map_error(ctx, key, "", "unknown key \"%.100s\" in %s, expected one of: %s", name,
                          where, expected);
    else
        lv_conf_map_error(ctx, key, "", "unknown key \"%.100s\", expected one of: %s", name,
                          expected);
}

static bool known_key(const struct lv_conf_map_key *keys, const char *name)
{
    return keys && (find_key(keys, name) || is_file_key(keys, name));
}

/* Every key of `map` must be in `keys` or in `more` (may be NULL). */
static void check_keys(struct lv_conf_map_ctx *ctx, const struct lv_conf_map_key *keys,
                       const struct lv_conf_map_key *more, const yaml_node_t *map,
                       const char *where)
{
    for (size_t i = 0; i < lv_conf_map_npairs(map); i++) {
        const yaml_node_t *k, *v;
        lv_conf_map_pair(ctx, map, i, &k, &v);
        const char *name = lv_conf_map_text(ctx, k);
        if (k->type != YAML_SCALAR_NODE)
            type_error(ctx, k, where, "a key name");
        else if (name && !known_key(keys, name) && !known_key(more, name))
            unknown_key(ctx, keys, more, k, name, where);
    }
}

static void bind_secret_file(struct lv_conf_map_ctx *ctx, const struct lv_conf_map_key *k,
                             const yaml_node_t *node, void *base, const char *where);

static bool ends_with_file(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && strcmp(name + n - 5, "_file") == 0;
}

/* Remembers a file a NAME_file key names, so that no input reads it. */
static void note_file(struct lv_conf_map_ctx *ctx, const yaml_node_t *node, bool secret)
{
    const char *path = node->type == YAML_SCALAR_NODE ? lv_conf_map_text(ctx, node) : NULL;
    if (!path || !*path || lv_conf_map_is_null(ctx, node))
        return;
    ctx->files = lv_xrealloc(ctx->files, (ctx->nfiles + 1) * sizeof *ctx->files);
    ctx->files[ctx->nfiles++] =
        (struct lv_conf_map_file){lv_xstrdup(path), lv_conf_map_line(node), secret};
}

static void bind_key(struct lv_conf_map_ctx *ctx, const struct lv_conf_map_key *k,
                     const yaml_node_t *map, void *base, const char *where)
{
    char at[LV_CONF_MAP_WHERE], file_key[128];
    snprintf(file_key, sizeof file_key, "%s_file", k->name);
    const yaml_node_t *v = lv_conf_map_get(ctx, map, k->name);
    const yaml_node_t *vf =
        (k->flags & LV_CONF_MAP_FILE) ? lv_conf_map_get(ctx, map, file_key) : NULL;
    if (v && (ends_with_file(k->name) || (k->flags & LV_CONF_MAP_SECRET_PATH)))
        note_file(ctx, v, (k->flags & LV_CONF_MAP_SECRET_PATH) != 0);
    if (vf)
        note_file(ctx, vf, true);
    if (v && vf)
        lv_conf_map_error(ctx, vf, where, "give %s or %s, not both", k->name, file_key);
    else if (v)
        k->type->bind(ctx, k, v, base, lv_conf_map_join(at, where, k->name));
    else if (vf)
        bind_secret_file(ctx, k, vf, base, lv_conf_map_join(at, where, file_key));
    else if (k->flags & LV_CONF_MAP_REQUIRED)
        lv_conf_map_error(ctx, map, where, "missing required key \"%s\"", k->name);
}

static void bind_keys(struct lv_conf_map_ctx *ctx, const struct lv_conf_map_key *keys,
                      const yaml_node_t *map, void *base, const char *where)
{
    check_keys(ctx, keys, NULL, map, where);
    for (const struct lv_conf_map_key *k = keys; k->name; k++)
        bind_key(ctx, k, map, base, where);
}

/* An element with keys of its own kind besides the array's. */
static void bind_keys_more(struct lv_conf_map_ctx *ctx, const struct lv_conf_map_array *a,
                           const yaml_node_t *map, void *elem, const char *where)
{
    void *more_base = NULL;
    const struct lv_conf_map_key *more = a->more(ctx, map, elem, &more_base);
    check_keys(ctx, a->keys, more, map, where);
    for (const struct lv_conf_map_key *k = a->keys; k->name; k++)
        bind_key(ctx, k, map, elem, where);
    for (const struct lv_conf_map_key *k = more; k && k->name; k++)
        bind_key(ctx, k, map, more_base, where);
}

void lv_conf_map_bind(struct lv_conf_map_ctx *ctx, const struct lv_conf_map_key *keys,
                      const yaml_node_t *node, void *base, const char *where)
{
    if (lv_conf_map_is_map(ctx, node, where))
        bind_keys(ctx, keys, node, base, where);
}

void lv_conf_map_release(const struct lv_conf_map_key *keys, void *base)
{
    for (const struct lv_conf_map_key *k = keys; k->name; k++)
        k->type->release(k, base);
}

static void release_nothing(const struct lv_conf_map_key *k, void *base)
{
    (void)k;
    (void)base;
}

/* ---- strings and secrets --------------------------------------------- */

static void release_str(const struct lv_conf_map_key *k, void *base)
{
    char **f = field(base, k->off);
    free(*f);
    *f = NULL;
}

static void bind_str(struct lv_conf_map_ctx *ctx, const struct lv_conf_map_key *k,
                     const yaml_node_t *node, void *base, const char *where)
{
    const char *s = scalar(ctx, node, where, "a string");
    if (!s)
        return;
    bool null = lv_conf_map_is_null(ctx, node);
    if ((k->flags & LV_CONF_MAP_NONEMPTY) && (null || !*s)) {
        type_error(ctx, node, where, "a non-empty string");
        return;
    }
    release_str(k, base);
    *(char **)field(base, k->off) = null ? NULL : lv_xstrdup(s);
}

static void release_secret(const struct lv_conf_map_key *k, void *base)
{
    char **f = field(base, k->off);
    size_t *len = field(base, k->off2);
    if (*f)
        explicit_bzero(*f, *len);
    free(*f);
    *f = NULL;
    *len = 0;
}

static void set_secret(const struct lv_conf_map_key *k, void *base, const char *s, size_t len)
{
    release_secret(k, base);
    *(char **)field(base, k->off) = lv_xstrndup(s, len);
    *(size_t *)field(base, k->off2) = len;
}

static void bind_secret(struct lv_conf_map_ctx *ctx, const struct lv_conf_map_key *k,
                        const yaml_node_t *node, void *base, const char *where)
{
    const char *s = scalar(ctx, node, where, "a string");
    if (!s)
        return;
    if (!*s || lv_conf_map_is_null(ctx, node))
        lv_conf_map_error(ctx, node, where, "expected a non-empty string");
    else
        set_secret(k, base, s, strlen(s));
}

/* The secret is the whole file less one line ending (LF or CRLF); any other
 * byte, NULs included, is part of it. */
static void bind_secret_file(struct lv_conf_map_ctx *ctx, const struct lv_conf_map_key *k,
                             const yaml_node_t *node, void *base, const char *where)
{
    const char *path = scalar(ctx, node, where, "a file name");
    char *data = NULL;
    size_t len = 0;
    if (!path)
        return;
    int rc = *path ? lv_read_file(path, LV_CONF_MAP_MAX_SECRET, &data, &len) : -ENOENT;
    if (rc == -EFBIG)
        lv_conf_map_error(ctx, node, where, "%s is larger than 64 KiB", path);
    else if (rc < 0)
        lv_conf_map_error(ctx, node, where, "cannot read \"%s\": %s", path, strerror(-rc));
    if (rc < 0)
        return;
    size_t n = lv_secret_file_len(data, len);
    if (n == 0)
        lv_conf_map_error(ctx, node, where, "%s is empty", path);
    else
        set_secret(k, base, data, n);
    explicit_bzero(data, len);
    free(data);
}

/* ---- numbers ---------------------------------------------------------- */

static bool in_range(const struct lv_conf_map_key *k, double v)
{
    return v >= k->min && (k->max == 0 || v <= k->max);
}

static const char *range_text(const struct lv_conf_map_key *k, char *buf, size_t size)
{
    if (k->max != 0)
        snprintf(buf, size, "from %g to %g", k->min, k->max);
    else
        snprintf(buf, size, "of at least %g", k->min);
    return buf;
}

static void range_error(struct lv_conf_map_ctx *ctx, const struct lv_conf_map_key *k,
                        const yaml_node_t *node, const char *where, const char *what)
{
    char expected[96], range[64];
    snprintf(expected, sizeof expected, "%s %s", what, range_text(k, range, sizeof range));
    type_error(ctx, node, where, expected);
}

static void bind_bool(struct lv_conf_map_ctx *ctx, const struct lv_conf_map_key *k,
                      const yaml_node_t *node, void *base, const char *where)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    const char *s = scalar(ctx, node, where, "true or false");
    for (size_t i = 0; s && i < LV_ARRAY_LEN(yes); i++) {
        if (!strcasecmp(s, yes[i]) || !strcasecmp(s, no[i])) {
            *(bool *)field(base, k->off) = !strcasecmp(s, yes[i]);
            return;
        }
    }
    if (s)
        type_error(ctx, node, where, "true or false");
}

static void bind_int(struct lv_conf_map_ctx *ctx, const struct lv_conf_map_key *k,
                     const yaml_node_t *node, void *base, const char *where)
{
    const char *s = scalar(ctx, node, where, "an integer");
    char *end;
    if (!s)
        return;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || !in_range(k, (double)v))
        range_error(ctx, k, node, where, "an integer");
    else
        *(int *)field(base, k->off) = (int)v;
}

static void bind_double(struct lv_conf_map_ctx *ctx, const struct lv_conf_map_key *k,
                        const yaml_node_t *node, void *base, const char *where)
{
    const char *s = scalar(ctx, node, where, "a number");
    char *end;
    if (!s)
        return;
    double v = strtod(s, &end);
    if (!*s || *end || !isfinite(v) || !in_range(k, v))
        range_error(ctx, k, node, where, "a number");
    else
        *(double *)field(base, k->off) = v;
}

static const struct {
    const char *name;
    uint64_t mult;
} units[] = {
    {"", 1},
    {"B", 1},
    {"KiB", 1ull << 10},
    {"MiB", 1ull << 20},
    {"GiB", 1ull << 30},
    {"KB", 1000},
    {"MB", 1000 * 1000},
    {"GB", 1000 * 1000 * 1000},
};

/* "1048576", "512KiB", "64 MiB", "1GB": binary units are powers of 1024,
 * decimal ones of 1000, as on every disk label. */
static bool parse_size(const char *s, uint64_t *out)
{
    char *end;
    if (!isdigit((unsigned char)*s))
        return false;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return false;
    while (*end == ' ')
        end++;
    for (size_t i = 0; i < LV_ARRAY_LEN(units); i++) {
        if (!strcasecmp(end, units[i].name)) {
            *out = (uint64_t)v * units[i].mult;
            return v <= UINT64_MAX / units[i].mult;
        }
    }
    return false;
}

static bool size_value(struct lv_conf_map_ctx *ctx, const struct lv_conf_map_key *k,
                       const yaml_node_t *node, const char *where, uint64_t *v)
{
    const char *s = scalar(ctx, node, where, "a size");
    if (!s)
        return false;
    if (!parse_size(s, v)) {
        type_error(ctx, node, where, "a size such as 1048576, 512KiB, 64MiB or 1GB");
        return false;
    }
    if (!in_range(k, (double)*v)) {
        range_error(ctx, k, node, where, "a size in bytes");
        return false;
    }
    return true;
}

static void bind_u64(struct lv_conf_map_ctx *ctx, const struct lv_conf_map_key *k,
                     const yaml_node_t *node, void *base, const char *where)
{
    uint64_t v;
    if (size_value(ctx, k, node, where, &v))
        *(uint64_t *)field(base, k->off) = v;
}

static void bind_size(struct lv_conf_map_ctx *ctx, const struct lv_conf_map_key *k,
                      const yaml_node_t *node, void *base, const char *where)
{
    uint64_t v;
    if (!size_value(ctx, k, node, where, &v))
        return;
    if ((uint64_t)(size_t)v != v)
        type_error(ctx, node, where, "a size that fits in memory");
    else
        *(size_t *)field(base, k->off) = (size_t)v;
}

/* ---- enums ------------------------------------------------------------ */

static void choices_text(const char *const *choices, char *out, size_t size)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; choices[i] && len < size; i++)
        len += (size_t)snprintf(out + len, size - len, "%s%s", i ? ", " : "", choices[i]);
}

static void bind_enum(struct lv_conf_map_ctx *ctx, const struct lv_conf_map_key *k,
                      const yaml_node_t *node, void *base, const char *where)
{
    char list[256], buf[80];
    const char *s = scalar(ctx, node, where, "a name");
    if (!s)
        return;
    for (int i = 0; k->choices[i]; i++) {
        if (!strcasecmp(s, k->choices[i])) {
            *(int *)field(base, k->off) = i;
            return;
        }
    }
    choices_text(k->choices, list, sizeof list);
    lv_conf_map_error(ctx, node, where, "unknown value %s, expected one of: %s",
                      describe(ctx, node, buf, sizeof buf), list);
}

/* ---- lists of strings ------------------------------------------------- */

static void release_strlist(const struct lv_conf_map_key *k, void *base)
{
    char ***list = field(base, k->off);
    size_t *n = field(base, k->off2);
    for (size_t i = 0; *list && i < *n; i++)
        free((*list)[i]);
    free(*list);
    *list = NULL;
    *n = 0;
}

static void push_item(struct lv_conf_map_ctx *ctx, const yaml_node_t *item, const char *where,
                      size_t i, char **list, size_t *n)
{
    char at[LV_CONF_MAP_WHERE];
    snprintf(at, sizeof at, "%s[%zu]", where, i);
    const char *s = scalar(ctx, item, at, "a non-empty string");
    if (s && (!*s || lv_conf_map_is_null(ctx, item)))
        type_error(ctx, item, at, "a non-empty string");
    else if (s)
        list[(*n)++] = lv_xstrdup(s);
}

/* A sequence of strings; a single string is a list of one. */
static void bind_strlist(struct lv_conf_map_ctx *ctx, const struct lv_conf_map_key *k,
                         const yaml_node_t *node, void *base, const char *where)
{
    bool one = node->type == YAML_SCALAR_NODE && !lv_conf_map_is_null(ctx, node);
    if (node->type == YAML_MAPPING_NODE) {
        type_error(ctx, node, where, "a list of strings");
        return;
    }
    size_t count = node->type == YAML_SEQUENCE_NODE ? seq_len(node) : one;
    release_strlist(k, base);
    char **list = count ? lv_xcalloc(count, sizeof *list) : NULL;
    size_t *n = field(base, k->off2);
    if (one && lv_conf_map_text(ctx, node))
        list[(*n)++] = lv_xstrdup(lv_conf_map_text(ctx, node));
    for (size_t i = 0; node->type == YAML_SEQUENCE_NODE && i < count; i++)
        push_item(ctx, seq_item(ctx, node, i), where, i, list, n);
    *(char ***)field(base, k->off) = list;
}

/* ---- maps and arrays of maps ----------------------------------------- */

static void bind_map(struct lv_conf_map_ctx *ctx, const struct lv_conf_map_key *k,
                     const yaml_node_t *node, void *base, const char *where)
{
    void *sub = field(base, k->off);
    if (!lv_conf_map_is_map(ctx, node, where))
        return;
    bind_keys(ctx, k->sub, node, sub, where);
    if (k->check)
        k->check(ctx, node, sub, where);
}

static void release_map(const struct lv_conf_map_key *k, void *base)
{
    lv_conf_map_release(k->sub, field(base, k->off));
}

static void release_array(const struct lv_conf_map_key *k, void *base)
{
    const struct lv_conf_map_array *a = k->array;
    char *elems = get_ptr(base, k->off);
    size_t *n = field(base, k->off2);
    for (size_t i = 0; elems && i < *n; i++) {
        lv_conf_map_release(a->keys, elems + i * a->size);
        if (a->free_more)
            a->free_more(elems + i * a->size);
    }
    free(elems);
    set_ptr(base, k->off, NULL);
    *n = 0;
}

static void bind_element(struct lv_conf_map_ctx *ctx, const struct lv_conf_map_array *a,
                         const yaml_node_t *node, void *elem, const void *parent, const char *where)
{
    if (a->init)
        a->init(elem, parent);
    if (a->line_off != LV_CONF_MAP_NO_LINE)
        *(int *)field(elem, a->line_off) = lv_conf_map_line(node);
    if (node->type == YAML_MAPPING_NODE && a->more) {
        bind_keys_more(ctx, a, node, elem, where);
    } else if (node->type == YAML_MAPPING_NODE) {
        bind_keys(ctx, a->keys, node, elem, where);
    } else if (a->scalar && node->type == YAML_SCALAR_NODE && !lv_conf_map_is_null(ctx, node)) {
        if (!lv_conf_map_text(ctx, node))
            return;
        a->scalar(ctx, node, lv_conf_map_text(ctx, node), elem, where);
    } else {
        type_error(ctx, node, where, a->expected);
        return;
    }
    if (a->check)
        a->check(ctx, node, elem, where);
}

/* An array given in the file replaces the one already there (the default). */
static void bind_array(struct lv_conf_map_ctx *ctx, const struct lv_conf_map_key *k,
                       const yaml_node_t *node, void *base, const char *where)
{
    const struct lv_conf_map_array *a = k->array;
    char at[LV_CONF_MAP_WHERE];
    if (node->type != YAML_SEQUENCE_NODE) {
        type_error(ctx, node, where, "a sequence");
        return;
    }
    size_t n = seq_len(node);
    if (n == 0 && (k->flags & LV_CONF_MAP_NONEMPTY)) {
        lv_conf_map_error(ctx, node, where, "expected at least one entry, got an empty sequence");
        return;
    }
    release_array(k, base);
    char *elems = n ? lv_xcalloc(n, a->size) : NULL;
    set_ptr(base, k->off, elems);
    *(size_t *)field(base, k->off2) = n;
    for (size_t i = 0; i < n; i++) {
        snprintf(at, sizeof at, "%s[%zu]", where, i);
        bind_element(ctx, a, seq_item(ctx, node, i), elems + i * a->size, base, at);
    }
}

const struct lv_conf_map_type lv_conf_map_str = {bind_str, release_str};
const struct lv_conf_map_type lv_conf_map_secret = {bind_secret, release_secret};
const struct lv_conf_map_type lv_conf_map_bool = {bind_bool, release_nothing};
const struct lv_conf_map_type lv_conf_map_int = {bind_int, release_nothing};
const struct lv_conf_map_type lv_conf_map_double = {bind_double, release_nothing};
const struct lv_conf_map_type lv_conf_map_size = {bind_size, release_nothing};
const struct lv_conf_map_type lv_conf_map_u64 = {bind_u64, release_nothing};
const struct lv_conf_map_type lv_conf_map_enum = {bind_enum, release_nothing};
const struct lv_conf_map_type lv_conf_map_strlist = {bind_strlist, release_strlist};
const struct lv_conf_map_type lv_conf_map_map = {bind_map, release_map};
const struct lv_conf_map_type lv_conf_map_array = {bind_array, release_array};
