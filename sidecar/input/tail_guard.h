/*
 * Confinement for the tail input: which files it may read, and opening them
 * so that what is read is what was checked.
 *
 * The application can write the directories a tail input follows (a shared
 * volume), so a name there is not to be trusted: `evil.log` may be a
 * symlink to the sidecar's own credentials, to a FIFO that blocks the loop,
 * or to /dev/zero. A file is read only when
 *   - it is a regular file (FIFOs, devices, sockets and directories are not);
 *   - its resolved path (every symlink followed) lies under one of the
 *     input's roots: `allowed_roots`, or by default the directory each glob
 *     starts from plus /var/log/pods and /var/log/containers;
 *   - it is none of the sidecar's secret files (every NAME_file of the
 *     configuration, and the configuration file itself, which may hold
 *     secrets inline), whatever the roots say. Secrets are recognised by
 *     identity (device and inode, so a hard link or a bind mount is one too)
 *     and by resolved path, both taken again at every scan (a Kubernetes
 *     secret volume replaces its files on update).
 *
 * All three are decided on one open descriptor: the path is opened with
 * O_PATH (no read, no side effect, a FIFO does not block), its type and
 * identity come from fstat() on it, its resolved path from
 * /proc/self/fd/N, and the descriptor read from is that same inode reopened
 * through /proc/self/fd/N. Swapping a symlink between the check and the open
 * therefore changes nothing: the check is of the inode that is read. Where
 * /proc is missing, the resolved path comes from realpath(), is opened with
 * O_NOFOLLOW, and its identity must match the O_PATH descriptor's.
 *
 * A refused file is logged once and counted once in
 * logveil_files_skipped_total{reason} for as long as scans keep finding it
 * (a file that disappears and comes back is counted again).
 *
 * Ownership: a guard owns copies of its roots and secret paths; files and
 * scans hold a borrowed pointer to their input's guard, which outlives them.
 */
#ifndef LOGVEIL_SIDECAR_INPUT_TAIL_GUARD_H
#define LOGVEIL_SIDECAR_INPUT_TAIL_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

#include "logveil/conf.h"

/* The default roots, besides the directories of the input's globs. */
#define LV_TAIL_GUARD_DEFAULT_ROOTS                                                                \
    {                                                                                              \
        "/var/log/pods", "/var/log/containers"                                                     \
    }

struct lv_tail_guard;

/* A guard for the input `in` (`name` in log messages), refusing the
 * secret files `conf` names. */
struct lv_tail_guard *lv_tail_guard_new(const struct lv_conf *conf, const struct lv_input_conf *in,
                                        const char *name);
void lv_tail_guard_free(struct lv_tail_guard *g);

/* Takes the secrets' identities again; called at the start of each scan,
 * which also ends the previous scan's reckoning of skipped files. */
void lv_tail_guard_refresh(struct lv_tail_guard *g);

/* Whether `path` may be read; fills `st` (symlinks followed). A refusal is
 * logged and counted once. False without a count for a name that does not
 * resolve (dangling) or cannot be looked at. A NULL guard allows every
 * regular file. */
bool lv_tail_guard_check(struct lv_tail_guard *g, const char *path, struct stat *st);

/* Opens `path` for reading, as lv_tail_guard_check() would allow it, on a
 * descriptor that is the inode checked; fills `st` from it. -errno:
 * -EPERM when refused (logged and counted once; O_RDONLY opens never give
 * it otherwise), -ESTALE when the name changed while it was opened,
 * -ENOENT, and the open's own errors. */
int lv_tail_guard_open(struct lv_tail_guard *g, const char *path, struct stat *st);

#endif
