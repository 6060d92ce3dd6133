/*
 * Discovery for the tail input: which files the globs name now, and inotify
 * hints that something changed.
 *
 * lv_tail_scan_run() is the source of truth: it expands every glob, leaves out
 * excluded paths, follows symlinks (the files in /var/log/containers are
 * symlinks) and keeps the files the input's guard allows (tail_guard.h:
 * regular files under its roots, none of the sidecar's secrets). inotify only says "look again
 * soon" or "read now"; its queue can overflow, so the tail input scans on a
 * timer anyway.
 *
 * Ownership: a struct lv_tail_scan owns its paths until lv_tail_scan_free();
 * a watch set owns its inotify descriptor.
 */
#ifndef LOGVEIL_SIDECAR_INPUT_TAIL_SCAN_H
#define LOGVEIL_SIDECAR_INPUT_TAIL_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "logveil/conf.h"
#include "tail_guard.h"

struct lv_tail_found {
    char *path;
    struct stat st; /* of the file itself, symlinks followed */
};

struct lv_tail_scan {
    struct lv_tail_found *items;
    size_t n, cap;
    /* Directories that could not be read (not ENOENT): a file below one of
     * them may exist though it is missing from `items`. */
    char **failed;
    size_t nfailed;
    bool complete; /* false: too many failures to list; trust no absence */
};

/* The files the input's globs name, in glob order. A file named by two
 * globs, or by two paths (a symlink and its target), is listed under each:
 * the caller tells files apart by identity. `name` names the input in log
 * messages. */
void lv_tail_scan_run(const struct lv_input_conf *conf, const char *name, struct lv_tail_guard *guard,
                      struct lv_tail_scan *out);
/* Whether the scan read the directory `path` would be in: only then does its
 * absence from `items` mean that the file is gone. */
bool lv_tail_scan_covers(const struct lv_tail_scan *s, const char *path);
/* Rotated siblings of `path` (`<path>.<suffix>`: the kubelet's
 * `0.log.20251121-101010`, logrotate's `app.log.1`; and logrotate's dateext
 * `<path>-<digit>...`, `app.log-20251121`), compressed and temporary ones
 * left out. */
void lv_tail_scan_siblings(const char *path, struct lv_tail_guard *guard, struct lv_tail_scan *out);
/* Every rotated generation of `path`: its siblings `<path>.<suffix>` and
 * `<path>-<digit>...`, compressed or not (temporary `.tmp` files left out), and those of its
 * symlink's target; each file once, in the order of their names with a
 * `.gz` suffix set aside (the kubelet's timestamps sort in rotation order).
 * Exclusions do not apply: these continue files the globs named; the
 * guard does (a NULL guard: regular files only). */
void lv_tail_scan_generations(const char *path, struct lv_tail_guard *guard,
                              struct lv_tail_scan *out);
void lv_tail_scan_free(struct lv_tail_scan *s);

/* What the inotify events read asked for. */
enum { LV_TAIL_RESCAN = 1, LV_TAIL_READ = 2 };

struct lv_tail_watch;

/* NULL when inotify is unavailable (logged): scanning alone still works. */
struct lv_tail_watch *lv_tail_watch_new(const char *name);
void lv_tail_watch_free(struct lv_tail_watch *w);
/* The descriptor to poll for readability. */
int lv_tail_watch_fd(const struct lv_tail_watch *w);
/* Watches the directory holding `path` (once; bounded in number). */
void lv_tail_watch_dir_of(struct lv_tail_watch *w, const char *path);
/* Watches the literal directory each glob starts from, so that new
 * directories below it are noticed. */
void lv_tail_watch_globs(struct lv_tail_watch *w, const struct lv_input_conf *conf);
/* Drains pending events; returns LV_TAIL_RESCAN and/or LV_TAIL_READ.
 * Counts queue overflows in lv_metrics.inotify_overflows. */
int lv_tail_watch_read(struct lv_tail_watch *w);

#endif
