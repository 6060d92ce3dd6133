#!/usr/bin/env python3
"""The bounded buffer under a sink that never accepts anything.

The file output points at /dev/full, so every write fails with ENOSPC and
every batch waits for a retry. A writer thread pushes JSON lines into
logveil's stdin; the buffer budget is 1 MiB. For each buffer.when_full
policy the test checks what a user would: block stops reading (the writer
is held back, nothing is dropped), drop_newest and drop_oldest keep reading
and count what they drop, shed drops DEBUG and INFO but never ERROR or audit
records. Every loss shows in logveil_records_dropped_total{reason="buffer"}.
"""
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

CHECKS = harness.Checks()
check = CHECKS.check


def dropped(m, level=None):
    total = 0
    for k, v in m.items():
        if k.startswith('logveil_records_dropped_total{reason="buffer"'):
            if level is None or 'level="%s"' % level in k:
                total += v
    return total


def line(i, level):
    if i % 50 == 0:
        return '{"level":"INFO","log":{"type":"audit"},"seq":%d}\n' % i
    return '{"level":"%s","seq":%d,"msg":"%s"}\n' % (level, i, "x" * 200)


class Writer(threading.Thread):
    """Writes `count` lines into the pipe; remembers how many got through."""

    def __init__(self, pipe, count, levels):
        super().__init__(daemon=True)
        self.pipe, self.count, self.levels, self.written = pipe, count, levels, 0

    def run(self):
        try:
            for i in range(self.count):
                self.pipe.write(line(i, self.levels[i % len(self.levels)]).encode())
                self.written += 1
            self.pipe.close()
        except (BrokenPipeError, ValueError, OSError):
            pass


def start(binary, policy, tmp):
    port = harness.free_port()
    cfg = os.path.join(tmp, "%s.yaml" % policy)
    with open(cfg, "w") as f:
        f.write("""environment: development
log_level: error
inputs: [{type: stdin}]
buffer: {max_bytes: 1MiB, when_full: %s}
shutdown_timeout: 1
admin: {listen: "127.0.0.1:%d"}
outputs: [{type: file, path: /dev/full}]
""" % (policy, port))
    proc = subprocess.Popen([binary, "run", "--config", cfg], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=harness.clean_env())
    harness.wait_for(lambda: harness.metrics(port), 10)
    return proc, port


def stop(proc):
    # The writer thread may be blocked in a write on stdin: leave the pipe
    # to it (it ends with EPIPE once logveil exits).
    proc.stdin = None
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err.decode(errors="replace")


def test_block(binary, tmp):
    proc, port = start(binary, "block", tmp)
    w = Writer(proc.stdin, 100000, ["INFO"])  # about 23 MB
    w.start()
    harness.wait_for(lambda: harness.metrics(port).get("logveil_input_paused_total", 0) >= 1,
                     10, 0.1)
    time.sleep(1.0)
    m = harness.metrics(port)
    read = m["logveil_input_bytes_total"]
    check("block: inputs are paused", m["logveil_input_paused_total"] >= 1)
    check("block: reading stops near the budget (%d bytes read of 23 MB)" % read,
          read < 8 * 1024 * 1024, "read %d bytes" % read)
    check("block: the writer is held back", w.written < 100000, "wrote %d" % w.written)
    check("block: nothing is dropped while blocked", dropped(m) == 0, str(dropped(m)))
    check("block: RSS stays bounded (%d KiB)" % harness.rss_kib(proc.pid),
          harness.rss_kib(proc.pid) < 48 * 1024)
    rc, err = stop(proc)
    check("block: shutdown with an undeliverable sink exits 1 and says so",
          rc == 1 and "undelivered" in err, "rc=%s err=%s" % (rc, err[-300:]))


def test_dropping(binary, tmp, policy):
    proc, port = start(binary, policy, tmp)
    w = Writer(proc.stdin, 20000, ["INFO"])
    w.start()
    w.join(30)
    check("%s: the writer is never held back" % policy, w.written == 20000, str(w.written))
    ok = harness.wait_for(lambda: harness.metrics(port)["logveil_input_records_total"] >= 20000,
                          10, 0.1)
    m = harness.metrics(port)
    check("%s: every line is read" % policy, ok, str(m["logveil_input_records_total"]))
    check("%s: drops are counted with reason buffer" % policy, dropped(m) > 0)
    check("%s: RSS stays bounded (%d KiB)" % (policy, harness.rss_kib(proc.pid)),
          harness.rss_kib(proc.pid) < 48 * 1024)
    stop(proc)


def test_shed(binary, tmp):
    proc, port = start(binary, "shed", tmp)
    w = Writer(proc.stdin, 60000, ["DEBUG", "INFO", "ERROR", "DEBUG", "INFO"])
    w.start()
    harness.wait_for(lambda: dropped(harness.metrics(port), "debug") > 0, 15, 0.1)
    time.sleep(0.5)
    m = harness.metrics(port)
    check("shed: DEBUG records are shed first", dropped(m, "debug") > 0)
    check("shed: ERROR records are never shed", dropped(m, "error") == 0, str(dropped(m, "error")))
    check("shed: RSS stays bounded (%d KiB)" % harness.rss_kib(proc.pid),
          harness.rss_kib(proc.pid) < 48 * 1024)
    stop(proc)


def main():
    a = harness.parser(__doc__).parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        test_block(a.binary, tmp)
        test_dropping(a.binary, tmp, "drop_newest")
        test_dropping(a.binary, tmp, "drop_oldest")
        test_shed(a.binary, tmp)
    raise SystemExit(CHECKS.report())


if __name__ == "__main__":
    main()
