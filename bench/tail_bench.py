#!/usr/bin/env python3
"""Benchmark of the tail input against `logveil filter` on the same corpus.

The 1M-record CRI corpus (../shared/bench/gen_corpus.py --format cri) is
placed in a directory as 0.log; `logveil run` tails it with default
redaction (development: everything kept) into a file output on /dev/null,
with acknowledged checkpoints on. The run ends when /metrics shows every
record written (and so acknowledged) by the output; wall time, CPU seconds
(from /proc) and peak RSS (VmHWM) are taken then. The same corpus through
`logveil filter --format cri > /dev/null` is the reference. Medians of RUNS.
"""
import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from filter_bench import REPO, corpus, median_of  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=2) as r:
        out = {}
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out


def proc_stats(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    with open("/proc/%d/status" % pid) as f:
        hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM"))
    return cpu, hwm


def tail_once(binary, path, records):
    tmp = tempfile.mkdtemp(prefix="lv-tailbench-")
    try:
        logdir = os.path.join(tmp, "logs")
        os.mkdir(logdir)
        os.link(path, os.path.join(logdir, "0.log")) if os.stat(path).st_dev == os.stat(
            tmp).st_dev else shutil.copy(path, os.path.join(logdir, "0.log"))
        port = free_port()
        cfg = os.path.join(tmp, "bench.yaml")
        with open(cfg, "w") as f:
            f.write("""environment: development
log_level: error
inputs: [{type: tail, paths: ["%s/*.log"], format: cri, checkpoint: %s/ckpt}]
admin: {listen: "127.0.0.1:%d"}
outputs: [{type: file, path: /dev/null}]
""" % (logdir, tmp, port))
        t0 = time.perf_counter()
        proc = subprocess.Popen([binary, "run", "--config", cfg], stdout=subprocess.DEVNULL)
        wall = None
        deadline = time.time() + 300
        while time.time() < deadline:
            time.sleep(0.02)
            try:
                m = scrape(port)
            except OSError:
                continue
            out = sum(v for k, v in m.items() if k.startswith("logveil_output_records_total"))
            if out >= records:  # the file output acknowledges on write
                wall = time.perf_counter() - t0
                break
        cpu, hwm = proc_stats(proc.pid)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        if wall is None:
            sys.exit("tail did not finish within 300 s")
        return wall, cpu, hwm
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(REPO, "build-release", "logveil"))
    ap.add_argument("--records", type=int, default=1000000)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    if not os.path.exists(a.binary):
        sys.exit("build first: python3 bench/filter_bench.py builds %s" % a.binary)
    path = corpus("cri", a.records)
    mb = os.path.getsize(path) / 1e6
    print("| run | wall s | records/s | MB/s | CPU s | peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    wall, cpu, rss = median_of([a.binary, "filter", "--format", "cri"], path, a.runs)
    print("| filter --format cri | %.2f | %.0f | %.0f | %.2f | %.1f |"
          % (wall, a.records / wall, mb / wall, cpu, rss / 1024))
    runs = [tail_once(a.binary, path, a.records) for _ in range(a.runs)]
    twall = statistics.median(r[0] for r in runs)
    tcpu = statistics.median(r[1] for r in runs)
    trss = max(r[2] for r in runs)
    print("| run, tail + checkpoints -> file | %.2f | %.0f | %.0f | %.2f | %.1f |"
          % (twall, a.records / twall, mb / twall, tcpu, trss / 1024))
    print("\ntail overhead over filter: wall %+.1f%%, CPU %+.1f%%"
          % (100 * (twall / wall - 1), 100 * (tcpu / cpu - 1)))


if __name__ == "__main__":
    main()
