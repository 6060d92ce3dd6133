#!/usr/bin/env python3
"""The disk spool: the output is down for the first half of a run, then up.

The file output writes through a symlink that first points at /dev/full
(every write fails) and is then switched to a real file; the file output
reopens its path after a failed write. With buffer.spool_dir set and a 1 MiB
memory budget, logveil keeps reading while the output is down (the records
go to disk), keeps its memory bounded, and once the output is back, every
record arrives, in order. A second scenario stops logveil while the output
is down and starts it again: the spool left by the first run is replayed.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

CHECKS = harness.Checks()
check = CHECKS.check


def write_config(tmp, name):
    cfg = os.path.join(tmp, name + ".yaml")
    with open(cfg, "w") as f:
        f.write("""environment: development
log_level: error
inputs: [{type: stdin}]
buffer: {max_bytes: 1MiB, spool_dir: %s/spool, spool_max_bytes: 512MiB}
shutdown_timeout: 2
outputs: [{type: file, path: %s/out.log}]
""" % (tmp, tmp))
    return cfg


def point(tmp, target):
    link = os.path.join(tmp, "out.log")
    tmp_link = link + ".new"
    os.symlink(target, tmp_link)
    os.replace(tmp_link, link)


def seqs(path):
    out = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                out.append(json.loads(line)["seq"])
    return out


def feed(proc, first, count, close=True):
    for i in range(first, first + count):
        proc.stdin.write(('{"level":"INFO","seq":%d,"msg":"%s"}\n' % (i, "y" * 300)).encode())
    proc.stdin.flush()
    if close:
        proc.stdin.close()


def start(binary, cfg):
    return subprocess.Popen([binary, "run", "--config", cfg], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=harness.clean_env())


def wait_lines(path, n, seconds):
    """The seqs in `path` once there are `n` of them, or when `seconds` pass."""
    return harness.poll(lambda: (len(got := seqs(path)) >= n, got), None, seconds, 0.2)[1]


def test_outage_then_recovery(binary, tmp):
    real = os.path.join(tmp, "real.log")
    point(tmp, "/dev/full")
    proc = start(binary, write_config(tmp, "a"))
    rss = harness.RssSampler(lambda: proc.pid, interval=0.05)
    rss.start()
    n = 40000  # about 13 MB, far past the 1 MiB budget
    feed(proc, 0, n, close=False)
    time.sleep(1.0)
    spool_bytes = sum(os.path.getsize(os.path.join(tmp, "spool", f))
                      for f in os.listdir(os.path.join(tmp, "spool")))
    check("while the output is down the records go to the spool (%d bytes)" % spool_bytes,
          spool_bytes > 4 * 1024 * 1024)
    point(tmp, real)  # the output comes back
    got = wait_lines(real, n, 60)
    proc.stdin.close()
    proc.wait(timeout=30)
    rss.stop()
    peak = (rss.peak() or 0) // 1024  # KiB
    check("after recovery every record arrives (%d of %d)" % (len(set(got)), n),
          set(got) == set(range(n)))
    bad = next((i for i in range(1, len(got)) if got[i] < got[i - 1]), None)
    check("order is kept", bad is None,
          "at line %s: %s" % (bad, got[bad - 3:bad + 3] if bad else ""))
    check("RSS stays bounded (peak %d KiB)" % peak, 0 < peak < 48 * 1024)
    check("exit status 0", proc.returncode == 0, str(proc.returncode))
    check("the spool is empty again", not os.listdir(os.path.join(tmp, "spool")),
          str(os.listdir(os.path.join(tmp, "spool"))))


def test_restart_replays(binary, tmp):
    real = os.path.join(tmp, "real2.log")
    point(tmp, "/dev/full")
    cfg = write_config(tmp, "b")
    proc = start(binary, cfg)
    n = 20000
    feed(proc, 0, n, close=False)
    time.sleep(1.0)
    proc.stdin = None
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    spooled = os.listdir(os.path.join(tmp, "spool"))
    check("a stop while the output is down leaves the records in the spool", len(spooled) > 0)
    point(tmp, real)
    proc = start(binary, cfg)
    got = wait_lines(real, n, 60)
    proc.stdin.close()
    proc.wait(timeout=30)
    check("the next run replays the spool: every record arrives (%d of %d)" % (len(set(got)), n),
          set(got) == set(range(n)))


def main():
    a = harness.parser(__doc__).parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        test_outage_then_recovery(a.binary, tmp)
    with tempfile.TemporaryDirectory() as tmp:
        test_restart_replays(a.binary, tmp)
    raise SystemExit(CHECKS.report())


if __name__ == "__main__":
    main()
