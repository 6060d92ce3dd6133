#!/usr/bin/env python3
"""Benchmark of `logveil filter` on the shared 1M-record corpora.

For each corpus format (json, cri) and profile (development: everything kept,
production: 1% of DEBUG/INFO), runs `logveil filter --env ENV --format FMT
< corpus > /dev/null` RUNS times and reports the median wall time (and the
range), records/s, MB/s, CPU seconds and peak RSS, with `cat corpus >
/dev/null` as the floor. The runs go round-robin over the rows.

The corpora are made by ../shared/bench/gen_corpus.py (called, not copied)
into bench/corpus/, which git ignores.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
GEN = os.path.join(REPO, "..", "shared", "bench", "gen_corpus.py")


def corpus(fmt, records):
    os.makedirs(os.path.join(HERE, "corpus"), exist_ok=True)
    path = os.path.join(HERE, "corpus", "%s-%d.log" % (fmt, records))
    if not os.path.exists(path):
        print("generating %s ..." % path, file=sys.stderr)
        with open(path + ".tmp", "wb") as out:
            subprocess.run([sys.executable, GEN, "--format", fmt, "--records", str(records)],
                           stdout=out, check=True)
        os.rename(path + ".tmp", path)
    return path


def measure(argv, path):
    """Runs argv with stdin from path, stdout to /dev/null: (wall, cpu, maxrss KiB).

    GNU time measures the command from a small parent: a child forked from
    this Python process would report Python's pages in its peak RSS."""
    with open(path, "rb") as fin, open(os.devnull, "wb") as fout:
        t0 = time.perf_counter()
        res = subprocess.run(["/usr/bin/time", "-f", "%U %S %M"] + argv, stdin=fin, stdout=fout,
                             stderr=subprocess.PIPE)
        wall = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit("%s failed: %s" % (argv, res.stderr.decode()[-500:]))
    user, sys_, rss = res.stderr.decode().split()[-3:]
    return wall, float(user) + float(sys_), int(rss)


def median_of(argv, path, runs):
    """(median wall, median CPU, max peak RSS KiB) of `runs` runs in a row."""
    results = [measure(argv, path) for _ in range(runs)]
    return (statistics.median(r[0] for r in results), statistics.median(r[1] for r in results),
            max(r[2] for r in results))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(REPO, "build-release", "logveil"))
    ap.add_argument("--records", type=int, default=1000000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--formats", default="json,cri")
    ap.add_argument("--envs", default="development,production")
    a = ap.parse_args()
    build = os.path.dirname(a.binary)
    if not os.path.exists(os.path.join(build, "CMakeCache.txt")):
        subprocess.run(["cmake", "-S", REPO, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
                        "-DLOGVEIL_TESTS=OFF"], check=True, stdout=subprocess.DEVNULL)
    # Always brought up to date: a stale binary would measure old code.
    subprocess.run(["cmake", "--build", build, "--target", "logveil", "-j2"], check=True,
                   stdout=subprocess.DEVNULL)
    rows = []  # (format, size MB, label, argv, path)
    for fmt in a.formats.split(","):
        path = corpus(fmt, a.records)
        mb = os.path.getsize(path) / 1e6
        rows.append((fmt, mb, "cat (floor)", ["cat"], path))
        for env in a.envs.split(","):
            rows.append((fmt, mb, "filter --env %s" % env,
                         [a.binary, "filter", "--env", env, "--format", fmt], path))
    # Round-robin: on a shared machine whose speed drifts, each row gets runs
    # from every period instead of one row taking all the slow ones.
    results = [[] for _ in rows]
    for _ in range(a.runs):
        for k, (_, _, _, argv, path) in enumerate(rows):
            results[k].append(measure(argv, path))
    print("| corpus | run | wall s (median) | wall s (min-max) | records/s | MB/s | CPU s "
          "| peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for (fmt, mb, label, _, _), res in zip(rows, results):
        wall = statistics.median(r[0] for r in res)
        cpu = statistics.median(r[1] for r in res)
        rss = max(r[2] for r in res)
        lo, hi = min(r[0] for r in res), max(r[0] for r in res)
        print("| %s %.0f MB | %s | %.2f | %.2f-%.2f | %.0f | %.0f | %.2f | %.1f |"
              % (fmt, mb, label, wall, lo, hi, a.records / wall, mb / wall, cpu, rss / 1024))


if __name__ == "__main__":
    main()
