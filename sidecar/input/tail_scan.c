/*
 * Discovery: glob(3) expansion with exclusions, and the inotify watch set.
 *
 * Globbing reads every directory on each scan, which is what makes the scan
 * trustworthy after an inotify overflow. A directory that cannot be read is
 * remembered, so that the files under it are not taken for deleted, while
 * files elsewhere still are.
 */
#include <fnmatch.h>
#include <glob.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "logveil/log.h"
#include "logveil/metrics.h"
#include "tail_scan.h"

#define MAX_WATCHES 4096
#define WATCH_MASK (IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_MODIFY | IN_MOVED_FROM | IN_ONLYDIR)

/* ---- globbing ------------------------------------------------------------------- */

#define MAX_FAILED_DIRS 64

/* glob(3)'s error callback takes no context; the loop thread is the only
 * caller, so a static pointer names the scan being filled. */
static struct lv_tail_scan *scanning;

static int on_glob_error(const char *path, int err)
{
    struct lv_tail_scan *s = scanning;
    if (err == ENOENT || err == ENOTDIR || !s->complete)
        return 0;
    if (s->nfailed == MAX_FAILED_DIRS) {
        s->complete = false; /* too many to list: trust no absence */
        return 0;
    }
    s->failed = lv_xrealloc(s->failed, (s->nfailed + 1) * sizeof *s->failed);
    s->failed[s->nfailed++] = lv_xstrdup(path);
    return 0; /* carry on with the directories that can be read */
}

static bool excluded(const struct lv_input_conf *conf, const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    for (size_t i = 0; i < conf->nexclude; i++)
        if (fnmatch(conf->exclude[i], path, 0) == 0 || fnmatch(conf->exclude[i], base, 0) == 0)
            return true;
    return false;
}

static void add_found(struct lv_tail_scan *out, const char *path, const struct stat *st)
{
    if (out->n == out->cap) {
        out->cap = out->cap ? out->cap * 2 : 16;
        out->items = lv_xrealloc(out->items, out->cap * sizeof *out->items);
    }
    out->items[out->n++] = (struct lv_tail_found){lv_xstrdup(path), *st};
}

/* Adds the files `pattern` names that `guard` allows; `keep` filters by
 * path first. */
static void expand(const char *pattern, struct lv_tail_guard *guard, struct lv_tail_scan *out,
                   bool (*keep)(const void *arg, const char *path), const void *arg)
{
    glob_t g;
    scanning = out;
    int rc = glob(pattern, 0, on_glob_error, &g);
    scanning = NULL;
    if (rc == GLOB_NOSPACE)
        out->complete = false;
    for (size_t i = 0; rc == 0 && i < g.gl_pathc; i++) {
        struct stat st;
        const char *path = g.gl_pathv[i];
        /* ENOENT: gone since, or a dangling symlink. Other errors leave the
         * file out too; a file the input has open is kept by its identity. */
        if (keep(arg, path) && lv_tail_guard_check(guard, path, &st))
            add_found(out, path, &st);
    }
    if (rc == 0)
        globfree(&g);
}

static bool not_excluded(const void *arg, const char *path)
{
    return !excluded(arg, path);
}

void lv_tail_scan_run(const struct lv_input_conf *conf, const char *name, struct lv_tail_guard *guard,
                      struct lv_tail_scan *out)
{
    *out = (struct lv_tail_scan){.complete = true};
    for (size_t i = 0; i < conf->npaths; i++)
        expand(conf->paths[i], guard, out, not_excluded, conf);
    if (out->nfailed || !out->complete)
        lv_debug("input %s: scan incomplete: %s could not be read", name,
                 out->nfailed ? out->failed[0] : "a directory");
}

bool lv_tail_scan_covers(const struct lv_tail_scan *s, const char *path)
{
    if (!s->complete)
        return false;
    for (size_t i = 0; i < s->nfailed; i++) {
        size_t n = strlen(s->failed[i]);
        if (strncmp(path, s->failed[i], n) == 0 && (path[n] == '/' || path[n] == '\0'))
            return false;
    }
    return true;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static bool uncompressed(const void *arg, const char *path)
{
    (void)arg;
    return !ends_with(path, ".gz") && !ends_with(path, ".tmp");
}

/* Adds the files named `<path><suffix>`, `suffix` a glob pattern. */
static void siblings(const char *path, const char *suffix, struct lv_tail_guard *guard,
                     struct lv_tail_scan *out, bool (*keep)(const void *arg, const char *path))
{
    /* The path is literal: escape what glob would read as a pattern. */
    char *pattern = lv_xmalloc(strlen(path) * 2 + strlen(suffix) + 1);
    char *p = pattern;
    for (const char *s = path; *s; s++) {
        if (strchr("*?[]\\", *s))
            *p++ = '\\';
        *p++ = *s;
    }
    memcpy(p, suffix, strlen(suffix) + 1);
    expand(pattern, guard, out, keep, NULL);
    free(pattern);
}

/* Rotated names: `<path>.<anything>` (the kubelet's `.<timestamp>`,
 * logrotate's `.1`, and their `.gz`) and logrotate's dateext,
 * `<path>-<digits...>` (`app.log-20251206`, `.gz` too). */
static void rotated_siblings(const char *path, struct lv_tail_guard *guard,
                             struct lv_tail_scan *out,
                             bool (*keep)(const void *arg, const char *path))
{
    siblings(path, ".*", guard, out, keep);
    siblings(path, "-[0-9]*", guard, out, keep);
}

void lv_tail_scan_siblings(const char *path, struct lv_tail_guard *guard, struct lv_tail_scan *out)
{
    *out = (struct lv_tail_scan){.complete = true};
    rotated_siblings(path, guard, out, uncompressed);
}

static bool not_temporary(const void *arg, const char *path)
{
    (void)arg;
    return !ends_with(path, ".tmp");
}

/* Names compare as if without ".gz": 0.log.1.gz sorts where 0.log.1 was. */
static int by_generation(const void *a, const void *b)
{
    const char *x = ((const struct lv_tail_found *)a)->path;
    const char *y = ((const struct lv_tail_found *)b)->path;
    size_t nx = strlen(x) - (ends_with(x, ".gz") ? 3 : 0);
    size_t ny = strlen(y) - (ends_with(y, ".gz") ? 3 : 0);
    int c = strncmp(x, y, nx < ny ? nx : ny);
    return c ? c : (nx > ny) - (nx < ny);
}

static bool listed(const struct lv_tail_scan *s, const struct stat *st)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->items[i].st.st_dev == st->st_dev && s->items[i].st.st_ino == st->st_ino)
            return true;
    return false;
}

void lv_tail_scan_generations(const char *path, struct lv_tail_guard *guard,
                              struct lv_tail_scan *out)
{
    *out = (struct lv_tail_scan){.complete = true};
    rotated_siblings(path, guard, out, not_temporary);
    char *real = realpath(path, NULL);
    if (real && strcmp(real, path) != 0) {
        struct lv_tail_scan more = {.complete = true};
        rotated_siblings(real, guard, &more, not_temporary);
        for (size_t i = 0; i < more.n; i++)
            if (!listed(out, &more.items[i].st))
                add_found(out, more.items[i].path, &more.items[i].st);
        lv_tail_scan_free(&more);
    }
    free(real);
    if (out->n > 1)
        qsort(out->items, out->n, sizeof *out->items, by_generation);
}

void lv_tail_scan_free(struct lv_tail_scan *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->items[i].path);
    for (size_t i = 0; i < s->nfailed; i++)
        free(s->failed[i]);
    free(s->items);
    free(s->failed);
}

/* ---- inotify -------------------------------------------------------------------- */

struct watch {
    int wd;
    char *dir;
};

struct lv_tail_watch {
    int fd;
    const char *name;
    struct watch *w;
    size_t n, cap;
    bool full_logged;
};

struct lv_tail_watch *lv_tail_watch_new(const char *name)
{
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
        lv_warn("input %s: no inotify (%s); relying on periodic scans", name, strerror(errno));
        return NULL;
    }
    struct lv_tail_watch *w = lv_xcalloc(1, sizeof *w);
    w->fd = fd;
    w->name = name;
    return w;
}

void lv_tail_watch_free(struct lv_tail_watch *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++)
        free(w->w[i].dir);
    free(w->w);
    close(w->fd);
    free(w);
}

int lv_tail_watch_fd(const struct lv_tail_watch *w)
{
    return w->fd;
}

static void watch_dir(struct lv_tail_watch *w, const char *dir)
{
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->w[i].dir, dir) == 0)
            return;
    if (w->n == MAX_WATCHES) {
        if (!w->full_logged)
            lv_warn("input %s: watching %d directories already; more rely on scans", w->name,
                    MAX_WATCHES);
        w->full_logged = true;
        return;
    }
    int wd = inotify_add_watch(w->fd, dir, WATCH_MASK);
    if (wd < 0) {
        if (errno == ENOSPC && !w->full_logged) {
            lv_warn("input %s: inotify watch limit reached (fs.inotify.max_user_watches); "
                    "relying on scans",
                    w->name);
            w->full_logged = true;
        }
        return;
    }
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 16;
        w->w = lv_xrealloc(w->w, w->cap * sizeof *w->w);
    }
    w->w[w->n++] = (struct watch){wd, lv_xstrdup(dir)};
}

void lv_tail_watch_dir_of(struct lv_tail_watch *w, const char *path)
{
    if (!w)
        return;
    const char *slash = strrchr(path, '/');
    if (!slash) {
        watch_dir(w, ".");
        return;
    }
    char *dir = slash == path ? lv_xstrdup("/") : lv_xstrndup(path, (size_t)(slash - path));
    watch_dir(w, dir);
    free(dir);
}

void lv_tail_watch_globs(struct lv_tail_watch *w, const struct lv_input_conf *conf)
{
    for (size_t i = 0; w && i < conf->npaths; i++) {
        const char *pat = conf->paths[i];
        size_t lit = strcspn(pat, "*?[");
        char *prefix = lv_xstrndup(pat, lit);
        lv_tail_watch_dir_of(w, prefix); /* up to the last '/' before a wildcard */
        free(prefix);
    }
}

static void forget(struct lv_tail_watch *w, int wd)
{
    for (size_t i = 0; i < w->n;) {
        if (w->w[i].wd != wd) {
            i++;
            continue;
        }
        free(w->w[i].dir);
        w->w[i] = w->w[--w->n];
    }
}

static int event_wants(struct lv_tail_watch *w, const struct inotify_event *ev)
{
    if (ev->mask & IN_Q_OVERFLOW) {
        lv_metrics.inotify_overflows++;
        lv_debug("input %s: inotify queue overflowed; rescanning", w->name);
        return LV_TAIL_RESCAN | LV_TAIL_READ;
    }
    if (ev->mask & IN_IGNORED) {
        forget(w, ev->wd);
        return LV_TAIL_RESCAN;
    }
    if (ev->mask & (IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM))
        return LV_TAIL_RESCAN | LV_TAIL_READ;
    return ev->mask & IN_MODIFY ? LV_TAIL_READ : 0;
}

int lv_tail_watch_read(struct lv_tail_watch *w)
{
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    int wants = 0;
    for (;;) {
        ssize_t n = read(w->fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return wants;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            wants |= event_wants(w, ev);
            p += sizeof *ev + ev->len;
        }
    }
}
