/*
 * Configuration reloads (see reload.h): a fingerprint of the sections a
 * reload cannot change, taken from the YAML itself, decides whether a new
 * file may be applied; the filter chain built from it replaces the old one.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <ev.h>
#include <yaml.h>

#include "logveil/chain.h"
#include "logveil/conf.h"
#include "logveil/log.h"
#include "logveil/metrics.h"
#include "logveil/util.h"
#include "pipeline.h"
#include "reload.h"

/* Top-level keys whose change a reload applies: what the chain is built from. */
static const char *const reloadable[] = {"environment", "log_level", "redact", "sampling",
                                         "enrich"};

struct lv_reload {
    struct lv_pipeline *p;
    char *path;
    uint64_t fixed;           /* fingerprint of the sections a reload cannot change */
    char fixed_keys[256];     /* their names, for the log line */
    struct lv_conf *conf;     /* the chain's, after a reload; NULL before */
    ev_signal sighup;
    ev_timer watch;           /* --watch-config: stat() of the path every second */
    struct stat seen;         /* what it gave last time */
    ev_timer settle;          /* a changed file is read once it has settled */
    bool watching;
};

/* ---- the fingerprint ------------------------------------------------------------ */

static uint64_t mix(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * UINT64_C(0x100000001b3);
    return h;
}

/* The node's tree: kind, scalar values, keys and items in order (aliases
 * are resolved by the loader, so an anchor's content counts where used). */
static uint64_t node_hash(yaml_document_t *doc, yaml_node_t *n, uint64_t h, int depth)
{
    if (!n || depth > 64)
        return mix(h, "?", 1);
    unsigned char kind = (unsigned char)n->type;
    h = mix(h, &kind, 1);
    switch (n->type) {
    case YAML_SCALAR_NODE:
        h = mix(h, &n->data.scalar.length, sizeof n->data.scalar.length);
        return mix(h, n->data.scalar.value, n->data.scalar.length);
    case YAML_SEQUENCE_NODE:
        for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top;
             i++)
            h = node_hash(doc, yaml_document_get_node(doc, *i), h, depth + 1);
        return mix(h, "]", 1);
    case YAML_MAPPING_NODE:
        for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top;
             pr++) {
            h = node_hash(doc, yaml_document_get_node(doc, pr->key), h, depth + 1);
            h = node_hash(doc, yaml_document_get_node(doc, pr->value), h, depth + 1);
        }
        return mix(h, "}", 1);
    default:
        return h;
    }
}

static bool is_reloadable(const char *key)
{
    for (size_t i = 0; i < LV_ARRAY_LEN(reloadable); i++)
        if (!strcmp(key, reloadable[i]))
            return true;
    return false;
}

/* Fingerprint of every top-level section but the reloadable ones; their
 * names go to `keys`. -errno when the file cannot be read or parsed (the
 * loader then reports why). */
static int fingerprint(const char *path, uint64_t *out, char *keys, size_t keylen)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    yaml_parser_t parser;
    yaml_document_t doc;
    int rc = -EINVAL;
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        return -ENOMEM;
    }
    yaml_parser_set_input_file(&parser, f);
    if (yaml_parser_load(&parser, &doc)) {
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        uint64_t h = UINT64_C(0xcbf29ce484222325);
        size_t kl = 0;
        keys[0] = '\0';
        if (root && root->type == YAML_MAPPING_NODE) {
            for (yaml_node_pair_t *pr = root->data.mapping.pairs.start;
                 pr < root->data.mapping.pairs.top; pr++) {
                yaml_node_t *k = yaml_document_get_node(&doc, pr->key);
                if (k && k->type == YAML_SCALAR_NODE &&
                    is_reloadable((const char *)k->data.scalar.value))
                    continue;
                h = node_hash(&doc, k, h, 0);
                h = node_hash(&doc, yaml_document_get_node(&doc, pr->value), h, 0);
                if (k && k->type == YAML_SCALAR_NODE && kl + k->data.scalar.length + 3 < keylen)
                    kl += (size_t)snprintf(keys + kl, keylen - kl, "%s%s", kl ? ", " : "",
                                           (const char *)k->data.scalar.value);
            }
            rc = 0;
        } else if (root) {
            h = node_hash(&doc, root, h, 0);
            rc = 0;
        }
        *out = h;
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

/* ---- reloading ------------------------------------------------------------------ */

static int reject(const char *why)
{
    lv_metrics.config_reloads_rejected++;
    lv_metrics.config_last_reload_ok = 0;
    lv_error("config reload rejected: %s; the running configuration stays", why);
    return -EINVAL;
}

int lv_reload_now(struct lv_reload *r)
{
    char why[600];
    uint64_t h;
    char keys[256];
    int rc = fingerprint(r->path, &h, keys, sizeof keys);
    struct lv_conf *conf = lv_xcalloc(1, sizeof *conf);
    struct lv_conf_errors errors = {0};
    int lrc = lv_conf_load(r->path, conf, &errors);
    if (lrc < 0 || rc < 0) {
        for (size_t i = 0; i < errors.n; i++)
            lv_error("%s", errors.msgs[i]);
        snprintf(why, sizeof why, "%s does not load (%zu error%s above)", r->path, errors.n,
                 errors.n == 1 ? "" : "s");
        lv_conf_errors_free(&errors);
        lv_conf_free(conf);
        free(conf);
        return reject(why);
    }
    lv_conf_errors_free(&errors);
    if (!lv_conf_profile(conf)) {
        snprintf(why, sizeof why, "no sampling profile for environment \"%s\"",
                 conf->environment);
        lv_conf_free(conf);
        free(conf);
        return reject(why);
    }
    if (h != r->fixed) {
        snprintf(why, sizeof why,
                 "a section only a restart can change differs (one of: %s); a reload applies "
                 "environment, log_level, redact, sampling and enrich",
                 keys[0] ? keys : r->fixed_keys);
        lv_conf_free(conf);
        free(conf);
        return reject(why);
    }
    /* The audit trail is not rebuilt: the running one (its seqs, its last
     * link, batches in flight) goes on in the new chain. `audit` is a
     * section a reload cannot change, so its key is the same. */
    struct lv_audit_conf audit = conf->audit;
    conf->audit.key = NULL;
    char err[512] = "";
    struct lv_chain *chain = lv_chain_new(conf, err, sizeof err);
    conf->audit = audit;
    if (chain)
        lv_chain_hand_audit(lv_pipeline_chain(r->p), chain);
    if (!chain) {
        snprintf(why, sizeof why, "%s", err);
        lv_conf_free(conf);
        free(conf);
        return reject(why);
    }
    lv_conf_wipe_keys(conf); /* the new redactor has its own copy */
    lv_chain_free(lv_pipeline_swap_chain(r->p, chain));
    if (r->conf) {
        lv_conf_free(r->conf);
        free(r->conf);
    }
    r->conf = conf;
    lv_log_set_level(conf->log_level);
    lv_metrics.config_generation++;
    lv_metrics.config_reloads_applied++;
    lv_metrics.config_last_reload_ok = 1;
    lv_info("config reloaded from %s: generation %" PRIu64 ", environment %s; records from "
            "here on are filtered by it",
            r->path, lv_metrics.config_generation, conf->environment);
    return 0;
}

static void on_sighup(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    struct lv_reload *r = w->data;
    lv_info("signal %d: reloading %s", w->signum, r->path);
    lv_reload_now(r);
}

static void on_settled(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    struct lv_reload *r = w->data;
    lv_info("%s changed: reloading", r->path);
    lv_reload_now(r);
}

/* The path is stat()ed, following symlinks, rather than watched with
 * inotify: kubelet swaps the ..data symlink of a ConfigMap mount, which
 * changes no file an inotify watch on the path would see. */
static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static void on_watch(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    struct lv_reload *r = w->data;
    struct stat st;
    if (stat(r->path, &st) < 0 || same_file(&st, &r->seen))
        return; /* gone for now (a swap in progress), or unchanged */
    r->seen = st;
    ev_timer_stop(loop, &r->settle);
    ev_timer_set(&r->settle, 0.2, 0.);
    ev_timer_start(loop, &r->settle);
}

struct lv_reload *lv_reload_new(struct lv_pipeline *p, const char *path, bool watch)
{
    struct lv_reload *r = lv_xcalloc(1, sizeof *r);
    r->p = p;
    r->path = lv_xstrdup(path);
    int rc = fingerprint(path, &r->fixed, r->fixed_keys, sizeof r->fixed_keys);
    if (rc < 0) {
        lv_error("config %s: cannot fingerprint it for reloads: %s", path, strerror(-rc));
        free(r->path);
        free(r);
        return NULL;
    }
    struct ev_loop *loop = lv_pipeline_loop(p);
    ev_signal_init(&r->sighup, on_sighup, SIGHUP);
    r->sighup.data = r;
    ev_signal_start(loop, &r->sighup);
    ev_unref(loop); /* a watcher that alone does not keep the loop running */
    ev_timer_init(&r->settle, on_settled, 0.2, 0.);
    r->settle.data = r;
    if (watch) {
        if (stat(path, &r->seen) < 0)
            memset(&r->seen, 0, sizeof r->seen);
        ev_timer_init(&r->watch, on_watch, 1.0, 1.0);
        r->watch.data = r;
        ev_timer_start(loop, &r->watch);
        ev_unref(loop);
        r->watching = true;
    }
    return r;
}

void lv_reload_stop(struct lv_reload *r)
{
    if (!r || !r->p)
        return;
    struct ev_loop *loop = lv_pipeline_loop(r->p);
    ev_ref(loop);
    ev_signal_stop(loop, &r->sighup);
    if (r->watching) {
        ev_ref(loop);
        ev_timer_stop(loop, &r->watch);
    }
    ev_timer_stop(loop, &r->settle);
    r->p = NULL;
}

void lv_reload_free(struct lv_reload *r)
{
    if (!r)
        return;
    lv_reload_stop(r);
    if (r->conf) {
        lv_conf_free(r->conf);
        free(r->conf);
    }
    free(r->path);
    free(r);
}
