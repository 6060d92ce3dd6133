#!/bin/sh
# Runs a command in a private mount namespace without /proc, so that the
# tail input's guard takes its fallback (realpath, then O_NOFOLLOW and an
# identity check) instead of /proc/self/fd. Exit status 77 (skipped) when
# the namespace cannot be made here (needs CAP_SYS_ADMIN).
unshare --mount --propagation private true 2>/dev/null || { echo "skip: no mount namespace"; exit 77; }
# The sanitizers read /proc (LeakSanitizer stops the world through it at
# exit): an ASan build runs these tests with /proc only.
for arg in "$@"; do
    if [ -f "$arg" ] && grep -q __asan_init "$arg" 2>/dev/null; then
        echo "skip: $arg is an ASan build, which needs /proc"
        exit 77
    fi
done
exec unshare --mount --propagation private sh -c 'umount -l /proc && ! ls /proc/self/fd >/dev/null 2>&1 && exec "$@"' sh "$@"
