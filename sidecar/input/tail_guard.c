/*
 * Confinement of the tail input (see tail_guard.h): a file is checked and
 * opened on one O_PATH descriptor, so that the inode read is the inode
 * checked, whatever happens to the names in between.
 *
 * Refusals are remembered for one scan, by path, identity and reason, so
 * that each is logged and counted once while it stays; past MAX_SKIPS
 * remembered refusals, further ones are still refused and counted at every
 * sighting, but no longer logged (a directory of a million symlinks must not
 * make a million log lines per scan, nor an unbounded table).
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "logveil/log.h"
#include "logveil/metrics.h"
#include "tail_guard.h"

#define MAX_SKIPS 4096

struct secret {
    char *path;     /* as configured */
    char *resolved; /* realpath() at the last refresh; NULL when it did not resolve */
    dev_t dev;
    ino_t ino;
    bool known; /* dev and ino describe it */
};

struct skip {
    char *path;
    dev_t dev;
    ino_t ino;
    enum lv_file_skip reason;
    uint64_t seen; /* the scan that last found it */
};

struct root {
    char *path;     /* as configured, or a glob's directory */
    char *resolved; /* realpath() at the last refresh */
};

struct lv_tail_guard {
    const char *name;
    struct root *roots;
    size_t nroots;
    struct secret *secrets;
    size_t nsecrets;
    struct skip *skips;
    size_t nskips;
    uint64_t scan;
    bool full_logged;
};

/* What one O_PATH descriptor says about a name. */
struct resolved {
    int fd;
    struct stat st;
    char path[PATH_MAX];
    bool via_proc; /* `path` is the descriptor's own (/proc/self/fd) */
};

/* ---- building ------------------------------------------------------------------ */

static void add_root(struct lv_tail_guard *g, const char *path, size_t len)
{
    char *p = lv_xstrndup(path, len);
    while (len > 1 && p[len - 1] == '/')
        p[--len] = '\0';
    for (size_t i = 0; i < g->nroots; i++) {
        if (strcmp(g->roots[i].path, p) == 0) {
            free(p);
            return;
        }
    }
    g->roots = lv_xrealloc(g->roots, (g->nroots + 1) * sizeof *g->roots);
    g->roots[g->nroots++] = (struct root){p, NULL};
}

/* The directory a glob starts from: up to the last '/' before its first
 * wildcard ("/var/log/pods/<wildcard>/app.log" gives /var/log/pods). */
static void add_glob_root(struct lv_tail_guard *g, const char *glob)
{
    size_t lit = strcspn(glob, "*?[");
    const char *slash = NULL;
    for (const char *s = glob; s < glob + lit; s++)
        if (*s == '/')
            slash = s;
    if (!slash)
        add_root(g, ".", 1);
    else
        add_root(g, glob, slash == glob ? 1 : (size_t)(slash - glob));
}

static void add_secret(struct lv_tail_guard *g, const char *path)
{
    g->secrets = lv_xrealloc(g->secrets, (g->nsecrets + 1) * sizeof *g->secrets);
    g->secrets[g->nsecrets++] = (struct secret){.path = lv_xstrdup(path)};
}

struct lv_tail_guard *lv_tail_guard_new(const struct lv_conf *conf, const struct lv_input_conf *in,
                                        const char *name)
{
    static const char *const defaults[] = LV_TAIL_GUARD_DEFAULT_ROOTS;
    struct lv_tail_guard *g = lv_xcalloc(1, sizeof *g);
    g->name = name;
    for (size_t i = 0; i < in->nallowed_roots; i++)
        add_root(g, in->allowed_roots[i], strlen(in->allowed_roots[i]));
    if (!in->nallowed_roots) {
        for (size_t i = 0; i < in->npaths; i++)
            add_glob_root(g, in->paths[i]);
        for (size_t i = 0; i < LV_ARRAY_LEN(defaults); i++)
            add_root(g, defaults[i], strlen(defaults[i]));
    }
    for (size_t i = 0; i < conf->nsecret_files; i++)
        add_secret(g, conf->secret_files[i]);
    if (conf->path) /* it may hold secrets inline */
        add_secret(g, conf->path);
    lv_tail_guard_refresh(g);
    return g;
}

void lv_tail_guard_free(struct lv_tail_guard *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->nroots; i++) {
        free(g->roots[i].path);
        free(g->roots[i].resolved);
    }
    for (size_t i = 0; i < g->nsecrets; i++) {
        free(g->secrets[i].path);
        free(g->secrets[i].resolved);
    }
    for (size_t i = 0; i < g->nskips; i++)
        free(g->skips[i].path);
    free(g->roots);
    free(g->secrets);
    free(g->skips);
    free(g);
}

/* ---- refreshing ---------------------------------------------------------------- */

static void forget_unseen_skips(struct lv_tail_guard *g)
{
    for (size_t i = 0; i < g->nskips;) {
        if (g->skips[i].seen + 1 >= g->scan) {
            i++;
            continue;
        }
        free(g->skips[i].path);
        g->skips[i] = g->skips[--g->nskips];
    }
}

void lv_tail_guard_refresh(struct lv_tail_guard *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->nroots; i++) {
        free(g->roots[i].resolved);
        g->roots[i].resolved = realpath(g->roots[i].path, NULL);
    }
    for (size_t i = 0; i < g->nsecrets; i++) {
        struct secret *s = &g->secrets[i];
        struct stat st;
        free(s->resolved);
        s->resolved = realpath(s->path, NULL);
        s->known = stat(s->path, &st) == 0;
        s->dev = s->known ? st.st_dev : 0;
        s->ino = s->known ? st.st_ino : 0;
    }
    g->scan++;
    forget_unseen_skips(g);
}

/* ---- deciding ------------------------------------------------------------------ */

static bool under(const char *path, const char *root)
{
    size_t n = strlen(root);
    if (n == 1 && root[0] == '/')
        return path[0] == '/';
    return strncmp(path, root, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

static bool in_roots(const struct lv_tail_guard *g, const char *path)
{
    for (size_t i = 0; i < g->nroots; i++)
        if ((g->roots[i].resolved && under(path, g->roots[i].resolved)) ||
            under(path, g->roots[i].path))
            return true;
    return false;
}

static bool is_secret(const struct lv_tail_guard *g, const struct resolved *r)
{
    for (size_t i = 0; i < g->nsecrets; i++) {
        const struct secret *s = &g->secrets[i];
        if (s->known && s->dev == r->st.st_dev && s->ino == r->st.st_ino)
            return true;
        if (s->resolved && strcmp(s->resolved, r->path) == 0)
            return true;
    }
    return false;
}

/* 0 when allowed, or the reason it is not. */
static int verdict(const struct lv_tail_guard *g, const struct resolved *r,
                   enum lv_file_skip *reason)
{
    if (is_secret(g, r))
        *reason = LV_SKIP_SECRET_FILE;
    else if (!S_ISREG(r->st.st_mode))
        *reason = LV_SKIP_NOT_REGULAR;
    else if (!in_roots(g, r->path))
        *reason = LV_SKIP_OUTSIDE_ROOTS;
    else
        return 0;
    return -EPERM;
}

static const char *describe(enum lv_file_skip reason)
{
    switch (reason) {
    case LV_SKIP_OUTSIDE_ROOTS:
        return "it resolves outside the allowed roots (allowed_roots)";
    case LV_SKIP_SECRET_FILE:
        return "it is one of logveil's own secret or configuration files";
    case LV_SKIP_NOT_REGULAR:
        return "it is not a regular file (a FIFO, device, socket or directory)";
    case LV_SKIP_SYMLINK_LOOP:
        return "its symlinks loop";
    default:
        return "refused";
    }
}

/* Logs and counts a refusal, once while scans keep finding it. The path
 * logged is the name the glob gave, never what it resolves to: the target
 * of a hostile symlink may itself be something to keep quiet. */
static void refuse(struct lv_tail_guard *g, const char *path, const struct stat *st,
                   enum lv_file_skip reason)
{
    dev_t dev = st ? st->st_dev : 0;
    ino_t ino = st ? st->st_ino : 0;
    for (size_t i = 0; i < g->nskips; i++) {
        struct skip *s = &g->skips[i];
        if (s->reason == reason && s->dev == dev && s->ino == ino && strcmp(s->path, path) == 0) {
            s->seen = g->scan;
            return;
        }
    }
    lv_metrics.files_skipped[reason]++;
    if (g->nskips == MAX_SKIPS) {
        if (!g->full_logged)
            lv_warn("input %s: more than %d files refused; further refusals are counted but "
                    "not logged",
                    g->name, MAX_SKIPS);
        g->full_logged = true;
        return;
    }
    g->skips = lv_xrealloc(g->skips, (g->nskips + 1) * sizeof *g->skips);
    g->skips[g->nskips++] = (struct skip){lv_xstrdup(path), dev, ino, reason, g->scan};
    lv_warn("input %s: not reading %s: %s", g->name, path, describe(reason));
}

/* ---- resolving and opening ----------------------------------------------------- */

static void proc_name(int fd, char *out, size_t size)
{
    snprintf(out, size, "/proc/self/fd/%d", fd);
}

/* Without /proc: the name realpath() gives, if it is still the inode the
 * descriptor holds. */
static int resolve_by_name(const char *path, struct resolved *r)
{
    char *real = realpath(path, NULL);
    struct stat now;
    int rc = 0;
    if (!real)
        rc = -errno;
    else if (strlen(real) >= sizeof r->path)
        rc = -ENAMETOOLONG;
    else if (stat(real, &now) < 0)
        rc = -errno;
    else if (now.st_dev != r->st.st_dev || now.st_ino != r->st.st_ino)
        rc = -ESTALE; /* replaced meanwhile: the next scan looks again */
    if (rc == 0)
        memcpy(r->path, real, strlen(real) + 1);
    free(real);
    return rc;
}

/* Opens `path` with O_PATH (symlinks followed) and learns what it is. */
static int resolve(const char *path, struct resolved *r)
{
    char link[64];
    r->via_proc = false;
    r->fd = open(path, O_PATH | O_CLOEXEC);
    if (r->fd < 0)
        return -errno;
    int rc = fstat(r->fd, &r->st) < 0 ? -errno : 0;
    proc_name(r->fd, link, sizeof link);
    ssize_t n = rc == 0 ? readlink(link, r->path, sizeof r->path - 1) : -1;
    if (n > 0 && (size_t)n < sizeof r->path - 1 && r->path[0] == '/') {
        r->path[n] = '\0';
        r->via_proc = true;
    } else if (rc == 0) {
        rc = resolve_by_name(path, r);
    }
    if (rc < 0) {
        close(r->fd);
        r->fd = -1;
    }
    return rc;
}

/* 0 with `r` filled and its descriptor open, or -errno; refusals (-EPERM)
 * are logged and counted. */
static int resolve_allowed(struct lv_tail_guard *g, const char *path, struct resolved *r)
{
    enum lv_file_skip reason;
    int rc = resolve(path, r);
    if (rc == -ELOOP) {
        refuse(g, path, NULL, LV_SKIP_SYMLINK_LOOP);
        return -EPERM;
    }
    if (rc < 0)
        return rc;
    rc = verdict(g, r, &reason);
    if (rc < 0) {
        refuse(g, path, &r->st, reason);
        close(r->fd);
        r->fd = -1;
    }
    return rc;
}

bool lv_tail_guard_check(struct lv_tail_guard *g, const char *path, struct stat *st)
{
    if (!g)
        return stat(path, st) == 0 && S_ISREG(st->st_mode);
    struct resolved r;
    if (resolve_allowed(g, path, &r) < 0)
        return false;
    *st = r.st;
    close(r.fd);
    return true;
}

/* The inode `r` holds, opened for reading: through /proc/self/fd, which
 * reaches that very inode, or else by its resolved name with O_NOFOLLOW and
 * an identity check. O_NONBLOCK and O_NOCTTY are belt and braces: only a
 * regular file gets here. */
static int reopen(const struct resolved *r, struct stat *st)
{
    char link[64];
    proc_name(r->fd, link, sizeof link);
    int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    int fd = r->via_proc ? open(link, flags) : open(r->path, flags | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    if (fstat(fd, st) < 0 || st->st_dev != r->st.st_dev || st->st_ino != r->st.st_ino ||
        !S_ISREG(st->st_mode)) {
        close(fd);
        return -ESTALE;
    }
    fcntl(fd, F_SETFL, 0); /* back to blocking reads, as a plain open gives */
    return fd;
}

int lv_tail_guard_open(struct lv_tail_guard *g, const char *path, struct stat *st)
{
    struct resolved r;
    int rc;
    if (g) {
        rc = resolve_allowed(g, path, &r);
    } else {
        rc = resolve(path, &r); /* no roots, no secrets: still no FIFO or device */
        if (rc == 0 && !S_ISREG(r.st.st_mode)) {
            close(r.fd);
            rc = -EPERM;
        }
    }
    if (rc < 0)
        return rc;
    rc = reopen(&r, st);
    close(r.fd);
    return rc;
}
