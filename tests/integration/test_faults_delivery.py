#!/usr/bin/env python3
"""Fault injection against delivery: the acknowledgement engine, the spool, budgets, shutdown.

Each scenario starts the real binary, injects a fault (an output that is
down, a stalled reader, kill -9 at a random moment, a corrupted spool frame,
a budget smaller than a line) and then counts sequence numbers: every
application line carries "seq", so the records that reached the outputs say
exactly what was lost and what was duplicated. The oracles do not share code
with logveil: a missing record must be matched by a counted drop (from
/metrics or the shutdown line in the log), duplicates must stay under a
stated bound and are printed, and a checkpoint sampled while the output is
down must never pass a record that is delivered only later.

An output is "down" when its path is a symlink to /dev/full (every write
fails with ENOSPC; the file output reopens its path after a failure) and
comes back up when the symlink is switched to a real file.

Scenarios, by issue 14 item (--only picks some by name):

  ring_block_sampled     1  thousands of one-line batches, output down,
                            block, INFO sampled away: the checkpoint stays
                            before the first WARN; kill -9, restart with the
                            output up: every WARN arrives
  ring_drop_newest,      1  the same under drop_newest, drop_oldest and shed
  ring_drop_oldest,         with a 1 MiB budget: missing == dropped{buffer}
  ring_shed                 exactly, and no checkpoint passed a record
                            delivered only later
  ring_spool_kill        1  the same with a spool, kill -9 while spilling:
                            nothing missing after the restart
  spool_restarts         8  three restarts while the output stays down: the
                            spool does not grow, nothing arrives twice, order
                            is kept
  fanout_spool_sigterm  11  two outputs, one down, spool, SIGTERM: the healthy
                            output gets every record exactly once
  fanout_stalled_fifo   11  a file and a FIFO whose reader stalls, spool: the file
                            gets everything; the FIFO everything after a restart
  fanout_drop_oldest        two outputs, one down, no spool: the healthy one
                            gets everything, the other's losses are counted
  spool_corrupt         12  a payload byte flipped in a spooled frame: its
                            records are counted as dropped{spool_corrupt}
  spool_corrupt_header  12  a header byte flipped: the frame is skipped and
                            counted as at least one record
  kill_during_replay     8  kill -9 while a spool is replayed: nothing missing,
                            duplicates within the batches in flight
  kill_random           1   kill -9 three times at random moments while the
                            output flaps (spill, replay, checkpoint writes):
                            nothing missing, duplicates bounded
  partial_cri_files      3  64 CRI files with a 40 KB line each split P/P/F,
                            4 MiB budget: every record arrives
  stdin_over_budget      3  stdin, 1 MiB budget, a 1.2 MB line: the writer is
                            never stuck and logveil exits at end of input
  stdin_left_in_pipe    14  stdin paused, the pipe full, SIGTERM: what the
                            pipe held is read, and delivered or counted
  docker_big_lines       6  60 Docker files with a 900 KB line, 4 MiB budget:
                            RSS bounded during and after
  rss_json, rss_cri,     3  partial lines on both streams, output down, 1 MiB
  rss_docker                budget: RSS <= budget + fixed overhead; then every
                            record arrives
  rss_partials_json,     3  output up (nothing in flight), 24 files each holding
  rss_partials_cri,         a 900 KB partial line, 1 MiB budget: RSS <= budget
  rss_partials_docker       + fixed overhead, whatever the number of files; then
                            the ends are written and every line arrives whole
  cri_partial_forever    9  a stderr P that never gets its F: it is emitted
                            after a timeout, the checkpoint passes it, a
                            restart duplicates nothing
  frozen_cri_tail,       9  logveil is frozen (SIGSTOP) after reading the P
  frozen_stdin,             fragments of a line, or the first lines of a stack
  frozen_multiline          trace, while the rest is written: when it runs
                            again, its overdue timeouts must not send the
                            line in pieces (the rest is there, unread)
  slow_sink_fair            a sink slower than one busy file: a quiet file is
                            still read in its turn (the input pauses and
                            resumes all the time)
  stdout_stalled       4,14 stdout is a pipe nobody reads: /metrics answers,
                            SIGTERM exits within shutdown_timeout, the records
                            held by the output are counted (reason shutdown)
  fifo_stalled         4,14 the same for a file output on a FIFO
  file_torn_tail        13  a torn last line left by kill -9 is cut on open

Each scenario is bounded (SCENARIO_LIMIT) and uses loopback only.
"""
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import harness  # noqa: E402

MIB = 1 << 20
# What logveil may hold beyond buffer.max_bytes, whatever the number of
# files: one line being finished (about 3 x limits.max_line, 1 MiB here), a
# batch being filled, the read buffer, allocator slack. (Each open file's
# idle buffers, up to 112 KiB for Docker, count in the budget.)
RSS_FIXED_OVERHEAD = 8 * MIB
SCENARIO_LIMIT = 120.0
RUNNING = []
SEED = int(os.environ.get("LV_FAULTS_SEED", str(int(time.time()) % 100000)))


def figure(text):
    print("FIGURE: " + text, flush=True)


def ranges(seqs, limit=8):
    """[3, 4, 5, 9] -> '3-5, 9' (the first `limit` ranges)."""
    out, seqs = [], sorted(seqs)
    i = 0
    while i < len(seqs) and len(out) < limit:
        j = i
        while j + 1 < len(seqs) and seqs[j + 1] == seqs[j] + 1:
            j += 1
        out.append(str(seqs[i]) if i == j else "%d-%d" % (seqs[i], seqs[j]))
        i = j + 1
    return ", ".join(out) + (" ..." if i < len(seqs) else "")


# ---- the sidecar ------------------------------------------------------------------------


class Sidecar:
    """One `logveil run`: its config (with @PORT@ and @TMP@ filled in), its
    admin port, its stderr appended to stderr.log in the scenario directory."""

    def __init__(self, args, tmp, text, stdin=None, stdout=None, name="logveil"):
        self.port = harness.free_port()
        self.cfg = os.path.join(tmp, name + ".yaml")
        with open(self.cfg, "w") as f:
            f.write(text.replace("@PORT@", str(self.port)).replace("@TMP@", tmp))
        self.errpath = os.path.join(tmp, "stderr.log")
        with open(self.errpath, "ab") as err:
            err.write(b"=== start\n")
            self.proc = subprocess.Popen(
                [args.binary, "run", "--config", self.cfg],
                stdin=stdin if stdin is not None else subprocess.DEVNULL,
                stdout=stdout if stdout is not None else subprocess.DEVNULL,
                stderr=err, env=harness.clean_env())
        RUNNING.append(self.proc)
        self.last = {}

    def ready(self, timeout=15.0):
        return harness.wait_for(lambda: self.metrics() or self.proc.poll() is not None, timeout)

    def metrics(self, timeout=2.0):
        m = harness.metrics(self.port, timeout)
        if m:
            self.last = m
        return m

    def value(self, name, **labels):
        if labels:
            name += "{" + ",".join('%s="%s"' % kv for kv in labels.items()) + "}"
        return self.metrics().get(name, 0)

    def dropped(self, reason, m=None):
        m = m if m is not None else self.metrics()
        key = 'logveil_records_dropped_total{reason="%s"' % reason
        return sum(v for k, v in m.items() if k.startswith(key))

    def alive(self):
        return self.proc.poll() is None

    def kill9(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def term(self, timeout=30.0):
        """SIGTERM; (exit status or None if it had to be killed, seconds to exit)."""
        t0 = time.monotonic()
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None, time.monotonic() - t0
        return self.proc.returncode, time.monotonic() - t0

    def log(self):
        with open(self.errpath, errors="replace") as f:
            return f.read()


def config(*, inputs, outputs, buffer="{}", env="development", shutdown=3, extra=""):
    return """environment: %s
log_level: info
state_dir: @TMP@/state
inputs: %s
buffer: %s
shutdown_timeout: %s
admin: {listen: "127.0.0.1:@PORT@"}
outputs: %s
%s""" % (env, inputs, buffer, shutdown, outputs, extra)


def tail_input(fmt="json", paths="@TMP@/logs/*.log", extra=""):
    return '[{type: tail, paths: ["%s"], format: %s, checkpoint: @TMP@/state/ckpt, ' \
           'scan_interval: 0.2, rotate_wait: 1%s}]' % (paths, fmt, extra)


FAULTS_PROFILE = "sampling: {profiles: {faults: {default: 0.0}}}\n"


class Switch:
    """An output path that is down (a symlink to /dev/full) or up (to a file)."""

    def __init__(self, tmp, name, up=False):
        self.link = os.path.join(tmp, name + ".log")
        self.real = os.path.join(tmp, name + ".real")
        self.point(self.real if up else "/dev/full")

    def point(self, target):
        new = self.link + ".new"
        os.symlink(target, new)
        os.replace(new, self.link)

    def up(self):
        self.point(self.real)

    def down(self):
        self.point("/dev/full")


def read_records(path):
    """(seqs in file order, records that are not JSON with a seq, raw records)."""
    seqs, bad, recs = [], 0, []
    if not os.path.exists(path):
        return seqs, bad, recs
    with open(path, "rb") as f:
        for line in f:
            try:
                r = json.loads(line)
                seqs.append(r["seq"])
                recs.append(r)
            except (ValueError, KeyError, TypeError):
                bad += 1
                recs.append(line)
    return seqs, bad, recs


def seqs_of(path):
    return read_records(path)[0]


def tally(seqs, expected):
    """(missing, duplicated, unexpected) against the set `expected`."""
    seen = {}
    for s in seqs:
        seen[s] = seen.get(s, 0) + 1
    missing = sorted(set(expected) - set(seen))
    dups = sum(n - 1 for s, n in seen.items() if n > 1)
    extra = sorted(set(seen) - set(expected))
    return missing, dups, extra


def in_order(seqs):
    return next((i for i in range(1, len(seqs)) if seqs[i] < seqs[i - 1]), None)


def ckpt_offset(path, name):
    """The checkpointed offset of the file whose path ends in `name` (0 if none)."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return 0
    for line in lines[1:]:
        parts = line.split(" ", 5)
        if len(parts) == 6 and parts[5].endswith(name):
            return int(parts[4])
    return 0


def spool_bytes(tmp):
    d = os.path.join(tmp, "spool")
    if not os.path.isdir(d):
        return 0, 0
    segs = [f for f in os.listdir(d) if f.startswith("seg-")]
    return len(segs), sum(os.path.getsize(os.path.join(d, f)) for f in segs)


# ---- inputs ----------------------------------------------------------------------------


def json_line(seq, level="INFO", pad=80):
    return ('{"seq":%d,"level":"%s","msg":"record %d %s"}' % (seq, level, seq, "p" * pad)).encode()


class LogFile:
    """A log file the test appends to, knowing where each record starts and ends."""

    def __init__(self, path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.size = 0
        self.span = {}  # seq -> (start, end)

    def add(self, seq, data):
        """Appends `data` (the raw lines of record `seq`)."""
        os.write(self.fd, data)
        self.span[seq] = (self.size, self.size + len(data))
        self.size += len(data)

    def close(self):
        os.close(self.fd)

    def first_start(self, seqs):
        return min((self.span[s][0] for s in seqs), default=self.size)


class SlowWriter(threading.Thread):
    """Appends json lines one write() at a time with a short pause between,
    so that logveil reads about one line per read (one batch each)."""

    def __init__(self, log, count, level_of=lambda s: "INFO", pause=0.0003, start=0):
        super().__init__(daemon=True)
        self.log, self.count, self.level_of, self.pause = log, count, level_of, pause
        self.first = start
        self.written = 0
        self.halt = threading.Event()

    def run(self):
        for s in range(self.first, self.first + self.count):
            if self.halt.is_set():
                break
            self.log.add(s, json_line(s, self.level_of(s)) + b"\n")
            self.written += 1
            time.sleep(self.pause)


def wait_read(sc, n, timeout=30.0):
    return harness.wait_for(lambda: sc.value("logveil_input_records_total") >= n, timeout, 0.1)


class CkptWatch(threading.Thread):
    """Samples a checkpoint file's offset for `name` every 50 ms; keeps the max."""

    def __init__(self, path, name):
        super().__init__(daemon=True)
        self.path, self.name, self.max = path, name, 0
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            self.max = max(self.max, ckpt_offset(self.path, self.name))
            self.halt.wait(0.05)

    def stop(self):
        self.halt.set()
        self.join(2)
        self.max = max(self.max, ckpt_offset(self.path, self.name))
        return self.max


# ---- item 1: the acknowledgement window ---------------------------------------------------


def ring_block_sampled(args, c, tmp):
    """Output down, block, every INFO sampled away: one-line batches settle at
    once, the WARN ones wait. The checkpoint must stay before the first WARN."""
    n = 12000
    out = Switch(tmp, "out")
    text = config(inputs=tail_input(), outputs="[{type: file, path: %s}]" % out.link,
                  env="faults", extra=FAULTS_PROFILE)
    warn = lambda s: "WARN" if s % 100 == 99 else "INFO"  # noqa: E731
    log = LogFile(os.path.join(tmp, "logs", "0.log"))
    sc = Sidecar(args, tmp, text)
    sc.ready()
    watch = CkptWatch(os.path.join(tmp, "state", "ckpt"), "0.log")
    watch.start()
    w = SlowWriter(log, n, warn)
    w.start()
    w.join(60)
    c.check("ring_block_sampled: every line is read", wait_read(sc, n))
    time.sleep(1.5)  # a checkpoint tick
    batches = sc.value("logveil_batches_total")
    ck = watch.stop()
    warns = [s for s in range(n) if warn(s) == "WARN"]
    first = log.span[warns[0]][0]
    figure("ring_block_sampled: %d lines, %d batches, checkpoint %d, first WARN at %d"
           % (n, batches, ck, first))
    c.check("ring_block_sampled: the checkpoint never passed the first undelivered WARN",
            ck <= first, "checkpoint %d > %d" % (ck, first))
    sc.kill9()
    out.up()
    sc = Sidecar(args, tmp, text)
    sc.ready()
    harness.wait_for(lambda: len(set(seqs_of(out.real)) & set(warns)) >= len(warns), 40, 0.2)
    sc.term()
    missing, dups, _ = tally([s for s in seqs_of(out.real) if s in set(warns)], warns)
    c.check("ring_block_sampled: after kill -9 and a restart every WARN arrives (%d of %d)"
            % (len(warns) - len(missing), len(warns)), not missing, ranges(missing))
    c.check("ring_block_sampled: no WARN twice", dups == 0, "%d duplicates" % dups)


def ring_policy(args, c, tmp, policy):
    """Output down for thousands of one-line batches under a dropping policy
    with a 1 MiB budget, then up: what was lost is exactly what was counted,
    and no checkpoint taken during the outage passed a record that was
    delivered only after it (a record still held, not settled)."""
    name = "ring_" + policy
    n = 12000
    out = Switch(tmp, "out")
    text = config(inputs=tail_input(), outputs="[{type: file, path: %s}]" % out.link,
                  buffer="{max_bytes: 1MiB, when_full: %s}" % policy)
    log = LogFile(os.path.join(tmp, "logs", "0.log"))
    sc = Sidecar(args, tmp, text)
    sc.ready()
    watch = CkptWatch(os.path.join(tmp, "state", "ckpt"), "0.log")
    watch.start()
    w = SlowWriter(log, n)
    w.start()
    w.join(60)
    c.check("%s: every line is read" % name, wait_read(sc, n))
    time.sleep(1.5)
    ck = watch.stop()
    batches = sc.value("logveil_batches_total")
    out.up()
    settled = lambda: len(seqs_of(out.real)) + sc.dropped("buffer") >= n  # noqa: E731
    harness.wait_for(settled, 40, 0.2)
    harness.wait_for(lambda: ckpt_offset(os.path.join(tmp, "state", "ckpt"), "0.log") >= log.size,
                     5, 0.2)
    m = sc.metrics()
    dropped = sc.dropped("buffer", m)
    got = seqs_of(out.real)
    missing, dups, _ = tally(got, range(n))
    first = log.first_start(set(got))
    figure("%s: %d batches, %d dropped, %d delivered after recovery, checkpoint during the "
           "outage %d, first record delivered later starts at %d"
           % (name, batches, dropped, len(got), ck, first))
    c.check("%s: the checkpoint never passed a record delivered only later" % name,
            ck <= first, "checkpoint %d > %d" % (ck, first))
    c.check("%s: missing == dropped{buffer} (%d, %d)" % (name, len(missing), dropped),
            len(missing) == dropped)
    c.check("%s: no duplicates" % name, dups == 0, str(dups))
    c.check("%s: the drops are logged" % name, "drops records" in sc.log())
    sc.term()


def ring_drop_newest(args, c, tmp):
    ring_policy(args, c, tmp, "drop_newest")


def ring_drop_oldest(args, c, tmp):
    ring_policy(args, c, tmp, "drop_oldest")


def ring_shed(args, c, tmp):
    ring_policy(args, c, tmp, "shed")


def ring_spool_kill(args, c, tmp):
    """With a spool, output down, kill -9 while spilling, restart, then up."""
    n = 12000
    rnd = random.Random(SEED)
    out = Switch(tmp, "out")
    text = config(inputs=tail_input(), outputs="[{type: file, path: %s}]" % out.link,
                  buffer="{max_bytes: 1MiB, spool_dir: @TMP@/spool}")
    log = LogFile(os.path.join(tmp, "logs", "0.log"))
    sc = Sidecar(args, tmp, text)
    sc.ready()
    w = SlowWriter(log, n)
    w.start()
    time.sleep(rnd.uniform(2.0, 4.0))
    sc.kill9()
    # Read after the kill: every line logveil could have read (and spooled)
    # before it died was written by then.
    at = w.written
    ck = ckpt_offset(os.path.join(tmp, "state", "ckpt"), "0.log")
    sc = Sidecar(args, tmp, text)
    sc.ready()
    w.join(60)
    wait_read(sc, 1)
    time.sleep(1.0)
    out.up()
    harness.wait_for(lambda: len(set(seqs_of(out.real))) >= n, 60, 0.2)
    sc.term()
    missing, dups, _ = tally(seqs_of(out.real), range(n))
    after_ck = sum(1 for s in range(at) if log.span[s][0] >= ck)
    figure("ring_spool_kill: killed after %d lines, checkpoint then %d (%d lines after it); "
           "%d duplicates" % (at, ck, after_ck, dups))
    c.check("ring_spool_kill: nothing missing after kill -9 and restart", not missing,
            ranges(missing))
    c.check("ring_spool_kill: duplicates only from re-reading after the checkpoint (%d <= %d)"
            % (dups, after_ck), dups <= after_ck)


# ---- items 8, 11, 12: the spool ---------------------------------------------------------------


def write_burst(log, first, count, level="INFO"):
    for s in range(first, first + count):
        log.add(s, json_line(s, level) + b"\n")


def spool_restarts(args, c, tmp):
    n = 5000
    out = Switch(tmp, "out")
    text = config(inputs=tail_input(), outputs="[{type: file, path: %s}]" % out.link,
                  buffer="{max_bytes: 1MiB, spool_dir: @TMP@/spool}", shutdown=2)
    log = LogFile(os.path.join(tmp, "logs", "0.log"))
    for k in range(10):  # a few reads, so a few batches
        write_burst(log, k * n // 10, n // 10)
        time.sleep(0.01)
    sc = Sidecar(args, tmp, text)
    sc.ready()
    wait_read(sc, n)
    time.sleep(1.5)
    sc.term()
    sizes = [spool_bytes(tmp)]
    for _ in range(3):
        sc = Sidecar(args, tmp, text)
        sc.ready()
        time.sleep(1.5)  # replay is tried, the output fails
        sc.term()
        sizes.append(spool_bytes(tmp))
    figure("spool_restarts: spool (segments, bytes) after each run: %s" % sizes)
    c.check("spool_restarts: restarts while the output is down do not grow the spool",
            all(b <= sizes[0][1] for _, b in sizes[1:]), str(sizes))
    out.up()
    sc = Sidecar(args, tmp, text)
    sc.ready()
    harness.wait_for(lambda: len(seqs_of(out.real)) >= n, 30, 0.2)
    time.sleep(0.5)
    sc.term()
    got = seqs_of(out.real)
    missing, dups, _ = tally(got, range(n))
    c.check("spool_restarts: every record arrives", not missing, ranges(missing))
    c.check("spool_restarts: none twice", dups == 0, "%d duplicates" % dups)
    bad = in_order(got)
    c.check("spool_restarts: in order", bad is None, "at %s" % bad)
    c.check("spool_restarts: the spool is empty at the end", spool_bytes(tmp)[0] == 0,
            str(spool_bytes(tmp)))


def fanout_spool_sigterm(args, c, tmp):
    n = 5000
    good = Switch(tmp, "good", up=True)
    bad = Switch(tmp, "bad")
    outs = "[{type: file, name: good, path: %s}, {type: file, name: bad, path: %s}]" % (
        good.link, bad.link)
    text = config(inputs=tail_input(), outputs=outs,
                  buffer="{max_bytes: 1MiB, spool_dir: @TMP@/spool}", shutdown=2)
    log = LogFile(os.path.join(tmp, "logs", "0.log"))
    for k in range(10):
        write_burst(log, k * n // 10, n // 10)
        time.sleep(0.01)
    sc = Sidecar(args, tmp, text)
    sc.ready()
    ok = harness.wait_for(lambda: len(seqs_of(good.real)) >= n, 30, 0.2)
    c.check("fanout_spool_sigterm: the healthy output gets everything while the other is down",
            ok, "%d of %d" % (len(seqs_of(good.real)), n))
    time.sleep(0.5)
    sc.term()
    bad.up()
    sc = Sidecar(args, tmp, text)
    sc.ready()
    harness.wait_for(lambda: len(seqs_of(bad.real)) >= n, 30, 0.2)
    time.sleep(1.0)
    sc.term()
    for name, sw in (("healthy", good), ("recovered", bad)):
        got = seqs_of(sw.real)
        missing, dups, _ = tally(got, range(n))
        c.check("fanout_spool_sigterm: the %s output has every record" % name, not missing,
                ranges(missing))
        c.check("fanout_spool_sigterm: the %s output has none twice" % name, dups == 0,
                "%d duplicates" % dups)
    c.check("fanout_spool_sigterm: the recovered output gets them in order",
            in_order(seqs_of(bad.real)) is None)


def fanout_stalled_fifo(args, c, tmp):
    """Two outputs, a file and a FIFO whose reader stalls, with a spool and a
    1 MiB budget the FIFO output soon holds all of: the file keeps getting
    every record; at SIGTERM what the FIFO output holds goes to the spool;
    the next run, with the reader back, gives the FIFO every record, the
    file none twice."""
    n = 5000
    good = Switch(tmp, "good", up=True)
    reader = FifoReader(os.path.join(tmp, "out.fifo"), 8 * MIB, reading=False)
    reader.start()
    outs = "[{type: file, name: good, path: %s}, {type: file, name: fifo, path: %s}]" % (
        good.link, reader.path)
    text = config(inputs=tail_input(), outputs=outs,
                  buffer="{max_bytes: 1MiB, spool_dir: @TMP@/spool}", shutdown=2)
    log = LogFile(os.path.join(tmp, "logs", "0.log"))
    sc = Sidecar(args, tmp, text)
    sc.ready()
    for k in range(20):
        write_burst(log, k * n // 20, n // 20)
        time.sleep(0.05)
    ok = harness.wait_for(lambda: len(seqs_of(good.real)) >= n, 20, 0.2)
    c.check("fanout_stalled_fifo: the file gets every record while the FIFO is stalled",
            ok, "%d of %d" % (len(seqs_of(good.real)), n))
    rc, secs = sc.term(timeout=15)
    c.check("fanout_stalled_fifo: SIGTERM exits within shutdown_timeout + 2 s (%.1f s)" % secs,
            rc is not None and secs <= 4.0)
    reader.reading.set()
    sc = Sidecar(args, tmp, text)
    sc.ready()
    harness.wait_for(lambda: len(set(reader.seqs)) >= n, 30, 0.2)
    time.sleep(0.5)
    sc.term()
    reader.stop()
    missing, dups, _ = tally(reader.seqs, range(n))
    figure("fanout_stalled_fifo: FIFO: %d duplicates, %d torn lines" % (dups, reader.torn))
    c.check("fanout_stalled_fifo: the FIFO gets every record after the restart", not missing,
            ranges(missing))
    c.check("fanout_stalled_fifo: ... none twice but a record torn at the deadline",
            dups <= reader.torn, "%d dups, %d torn" % (dups, reader.torn))
    missing, dups, _ = tally(seqs_of(good.real), range(n))
    c.check("fanout_stalled_fifo: the file has every record once", not missing and dups == 0,
            "missing %s, %d dups" % (ranges(missing), dups))


def fanout_drop_oldest(args, c, tmp):
    n = 20000
    good = Switch(tmp, "good", up=True)
    bad = Switch(tmp, "bad")
    outs = "[{type: file, name: good, path: %s}, {type: file, name: bad, path: %s}]" % (
        good.link, bad.link)
    text = config(inputs=tail_input(), outputs=outs,
                  buffer="{max_bytes: 1MiB, when_full: drop_oldest}", shutdown=2)
    log = LogFile(os.path.join(tmp, "logs", "0.log"))
    sc = Sidecar(args, tmp, text)
    sc.ready()
    for k in range(40):
        write_burst(log, k * n // 40, n // 40)
        time.sleep(0.02)
    ok = harness.wait_for(lambda: len(seqs_of(good.real)) >= n, 30, 0.2)
    got = seqs_of(good.real)
    missing, dups, _ = tally(got, range(n))
    c.check("fanout_drop_oldest: the healthy output gets every record", ok and not missing,
            ranges(missing))
    c.check("fanout_drop_oldest: ... once", dups == 0, str(dups))
    bad.up()
    harness.wait_for(lambda: len(seqs_of(bad.real)) + sc.dropped("buffer") >= n, 30, 0.2)
    dropped = sc.dropped("buffer")
    missing, dups, _ = tally(seqs_of(bad.real), range(n))
    figure("fanout_drop_oldest: the down output lost %d records, %d counted" %
           (len(missing), dropped))
    c.check("fanout_drop_oldest: what the down output lost is counted exactly",
            len(missing) == dropped, "%d missing, %d counted" % (len(missing), dropped))
    sc.term()


def spool_frames(path):
    """[(offset, header length, payload length, records)] of a spool segment,
    read from the documented format (spool.h), versions 1 and 2."""
    frames = []
    with open(path, "rb") as f:
        data = f.read()
    off = 0
    while off + 24 <= len(data) and data[off:off + 4] == b"LVSF":
        version = int.from_bytes(data[off + 4:off + 6], "little")
        plen = int.from_bytes(data[off + 8:off + 12], "little")
        nrecs = int.from_bytes(data[off + 12:off + 16], "little")
        hlen = 24 if version == 1 else 40
        frames.append((off, hlen, plen, nrecs))
        off += hlen + plen
    return frames


def spool_corrupt(args, c, tmp):
    spool_damage(args, c, tmp, "payload")


def spool_corrupt_header(args, c, tmp):
    spool_damage(args, c, tmp, "header")


def spool_damage(args, c, tmp, where):
    """A byte flipped in a spooled frame's records (their count is in its
    header: counted exactly) or in its header (the count is lost with it:
    at least one record counted)."""
    name = "spool_corrupt" if where == "payload" else "spool_corrupt_header"
    n = 3000
    out = Switch(tmp, "out")
    text = config(inputs=tail_input(), outputs="[{type: file, path: %s}]" % out.link,
                  buffer="{max_bytes: 1MiB, spool_dir: @TMP@/spool}", shutdown=2)
    log = LogFile(os.path.join(tmp, "logs", "0.log"))
    sc = Sidecar(args, tmp, text)
    sc.ready()
    for k in range(10):
        write_burst(log, k * n // 10, n // 10)
        time.sleep(0.1)
    wait_read(sc, n)
    time.sleep(1.5)
    sc.term()
    segs = sorted(f for f in os.listdir(os.path.join(tmp, "spool")) if f.startswith("seg-"))
    frames = [(s, fr) for s in segs for fr in spool_frames(os.path.join(tmp, "spool", s))]
    c.check("%s: the outage left several frames in the spool (%d)" % (name, len(frames)),
            len(frames) >= 3)
    if len(frames) < 3:
        return
    seg, (off, hlen, plen, nrecs) = frames[len(frames) // 2]
    at = off + hlen + plen - 10 if where == "payload" else off + 12  # records' text; count
    with open(os.path.join(tmp, "spool", seg), "r+b") as f:
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 0x20]))
    out.up()
    sc = Sidecar(args, tmp, text)
    sc.ready()
    if where == "payload":
        done = lambda: len(seqs_of(out.real)) + sc.dropped("spool_corrupt") >= n  # noqa: E731
    else:  # the damaged frame's count is unknown: everything else, and one counted
        done = lambda: (len(set(seqs_of(out.real))) >= n - nrecs  # noqa: E731
                        and sc.dropped("spool_corrupt") >= 1)
    harness.wait_for(done, 30, 0.2)
    dropped = sc.dropped("spool_corrupt")
    sc.term()
    missing, dups, _ = tally(seqs_of(out.real), range(n))
    figure("%s: frame of %d records damaged; %d missing, %d counted"
           % (name, nrecs, len(missing), dropped))
    if where == "payload":
        c.check("%s: the damaged frame's records are counted as dropped{spool_corrupt}" % name,
                dropped == nrecs == len(missing), "frame %d, counted %d, missing %d"
                % (nrecs, dropped, len(missing)))
    else:
        c.check("%s: the frame is lost and counted, as at least one record" % name,
                len(missing) == nrecs and 1 <= dropped <= len(missing),
                "frame %d, counted %d, missing %d" % (nrecs, dropped, len(missing)))
    c.check("%s: the log says so" % name, "spool" in sc.log() and "damaged" in sc.log())


class FifoReader(threading.Thread):
    """Reads a FIFO at about `rate` bytes a second, across writers coming and
    going, and parses its lines. A line torn by a writer killed mid-record
    and glued to the next one is counted as torn, and the whole record at its
    end is still read (it was written whole by the next writer)."""

    def __init__(self, path, rate, reading=True):
        super().__init__(daemon=True)
        self.path, self.rate = path, rate
        os.mkfifo(path)
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.seqs, self.torn, self.buf = [], 0, b""
        self.halt = threading.Event()
        self.reading = threading.Event()  # clear: stalled, the FIFO fills
        if reading:
            self.reading.set()

    def run(self):
        chunk = max(1, int(self.rate / 50))
        while not self.halt.is_set():
            if not self.reading.is_set():
                self.halt.wait(0.05)
                continue
            try:
                data = os.read(self.fd, chunk)
            except BlockingIOError:
                data = b""
            self.buf += data
            *lines, self.buf = self.buf.split(b"\n")
            for line in lines:
                self.parse(line)
            self.halt.wait(0.02)

    def parse(self, line):
        try:
            self.seqs.append(json.loads(line)["seq"])
            return
        except (ValueError, KeyError):
            pass
        self.torn += 1
        at = line.rfind(b'{"seq":')
        try:
            self.seqs.append(json.loads(line[at:])["seq"])
        except (ValueError, KeyError):
            pass

    def stop(self):
        self.halt.set()
        self.join(2)
        os.close(self.fd)


def kill_during_replay(args, c, tmp):
    """A spool of 20,000 records (6 MB) is replayed into a FIFO read at 2 MB/s;
    kill -9 in the middle. Frames already delivered are marked done in place,
    so the next run replays only what was not: duplicates stay within the
    batches in flight at the kill, and the replay stays in order."""
    n = 20000
    rnd = random.Random(SEED + 3)
    out = Switch(tmp, "out")
    text = config(inputs=tail_input(), outputs="[{type: file, path: %s}]" % out.link,
                  buffer="{max_bytes: 1MiB, spool_dir: @TMP@/spool}", shutdown=2)
    log = LogFile(os.path.join(tmp, "logs", "0.log"))
    for k in range(40):
        write_burst(log, k * n // 40, n // 40)
    sc = Sidecar(args, tmp, text)
    sc.ready()
    wait_read(sc, n)
    time.sleep(1.5)
    sc.term()
    spooled = spool_bytes(tmp)
    reader = FifoReader(os.path.join(tmp, "out.fifo"), 2 * MIB)
    reader.start()
    out.point(reader.path)
    sc = Sidecar(args, tmp, text)
    harness.wait_for(lambda: reader.seqs, 10, 0.01)
    time.sleep(rnd.uniform(0.3, 1.5))
    sc.kill9()
    before = len(reader.seqs)
    sc = Sidecar(args, tmp, text)
    sc.ready()
    harness.wait_for(lambda: len(set(reader.seqs)) >= n, 40, 0.2)
    time.sleep(0.5)
    sc.term()
    reader.stop()
    got = reader.seqs
    missing, dups, _ = tally(got, range(n))
    figure("kill_during_replay: spool %s; killed after %d of %d records replayed; %d "
           "duplicates, %d torn lines" % (spooled, before, n, dups, reader.torn))
    c.check("kill_during_replay: killed in the middle of the replay", 0 < before < n,
            str(before))
    c.check("kill_during_replay: nothing missing", not missing, ranges(missing))
    c.check("kill_during_replay: duplicates only from the batches in the pipe at the kill "
            "(%d <= 2 x 1000)" % dups, dups <= 2 * 1000)
    descents = [i for i in range(1, len(got)) if got[i] < got[i - 1]]
    c.check("kill_during_replay: each run replays in order (one step back, where the "
            "second starts)", len(descents) <= 1, str(descents[:5]))
    c.check("kill_during_replay: the spool is empty at the end", spool_bytes(tmp)[0] == 0,
            str(spool_bytes(tmp)))


def kill_random(args, c, tmp):
    n = 20000
    rnd = random.Random(SEED + 1)
    out = Switch(tmp, "out")
    text = config(inputs=tail_input(), outputs="[{type: file, path: %s}]" % out.link,
                  buffer="{max_bytes: 1MiB, spool_dir: @TMP@/spool}", shutdown=2)
    log = LogFile(os.path.join(tmp, "logs", "0.log"))
    w = SlowWriter(log, n, pause=0.0002)
    sc = Sidecar(args, tmp, text)
    sc.ready()
    w.start()
    flaps = [0]
    halt = threading.Event()

    def flap():
        while not halt.is_set():
            halt.wait(rnd.uniform(0.3, 1.2))
            (out.down if flaps[0] % 2 == 0 else out.up)()
            flaps[0] += 1
    th = threading.Thread(target=flap, daemon=True)
    th.start()
    kills = []
    for _ in range(3):
        time.sleep(rnd.uniform(1.0, 3.0))
        sc.kill9()
        kills.append((w.written, ckpt_offset(os.path.join(tmp, "state", "ckpt"), "0.log")))
        sc = Sidecar(args, tmp, text)
        sc.ready()
    w.join(60)
    halt.set()
    th.join(3)
    out.up()
    harness.wait_for(lambda: len(set(seqs_of(out.real))) >= n, 60, 0.2)
    time.sleep(0.5)
    sc.term()
    got, torn, _ = read_records(out.real)
    missing, dups, _ = tally(got, range(n))
    bound = sum(sum(1 for s in range(at) if log.span[s][0] >= ck) for at, ck in kills)
    figure("kill_random: seed %d, kills at (lines written, checkpoint) %s, %d flaps, "
           "%d duplicates, %d torn lines" % (SEED, kills, flaps[0], dups, torn))
    c.check("kill_random: nothing missing", not missing, ranges(missing))
    c.check("kill_random: duplicates only from re-reading past checkpoints (%d <= %d)"
            % (dups, bound), dups <= bound)
    c.check("kill_random: no torn line in the output", torn == 0, str(torn))


# ---- items 3, 6, 9: budgets and partial lines ----------------------------------------------


def cri(stream, tag, content, ts="2024-05-01T10:00:00.123456789Z"):
    return b"%s %s %s %s\n" % (ts.encode(), stream.encode(), tag.encode(), content)


def cri_split(stream, content, split=16384):
    out = b""
    while len(content) > split:
        out += cri(stream, "P", content[:split])
        content = content[split:]
    return out + cri(stream, "F", content)


def docker(stream, log_text):
    return (json.dumps({"log": log_text, "stream": stream,
                        "time": "2024-05-01T10:00:00.123456789Z"}) + "\n").encode()


def check_rss(args, c, name, ok, detail=""):
    return harness.check_rss(c, args.binary, name, ok, detail)


class Rss:
    def __init__(self, sc):
        self.sampler = harness.RssSampler(lambda: sc.proc.pid, 0.05)
        self.sampler.start()

    def peak(self, since=None):
        return (self.sampler.peak(since) or 0) // 1024

    def now(self):
        return self.sampler.samples[-1][1] // 1024 if self.sampler.samples else 0

    def stop(self):
        self.sampler.stop()


def partial_cri_files(args, c, tmp):
    """Each of 64 files gets 7 short lines and a 40 KB line split P/P/F, then
    (once logveil has read those) 6 more lines: the buffers the long lines
    grew must not keep the inputs paused with nothing in flight."""
    files, per, long_at = 64, 14, 7
    out = Switch(tmp, "out", up=True)
    text = config(inputs=tail_input("cri", extra=", max_open_files: 64"),
                  outputs="[{type: file, path: %s}]" % out.link, buffer="{max_bytes: 4MiB}")
    os.makedirs(os.path.join(tmp, "logs"))
    sc = Sidecar(args, tmp, text)
    sc.ready()
    rss = Rss(sc)

    def write(first, last):
        for i in range(files):
            with open(os.path.join(tmp, "logs", "%02d.log" % i), "ab") as f:
                for k in range(first, last):
                    seq = i * per + k
                    if k == long_at:
                        f.write(cri_split("stdout", b'{"seq":%d,"msg":"%s"}' % (seq, b"x" * 40000)))
                    else:
                        f.write(cri("stdout", "F", json_line(seq)))
    write(0, long_at + 1)
    harness.wait_for(lambda: sc.value("logveil_input_records_total") >= files * (long_at + 1),
                     10, 0.1)
    write(long_at + 1, per)
    total = files * per
    ok = harness.wait_for(lambda: len(seqs_of(out.real)) >= total, 20, 0.2)
    rss.stop()
    missing, dups, _ = tally(seqs_of(out.real), range(total))
    figure("partial_cri_files: %d of %d records, paused %d times, peak RSS %d KiB" %
           (total - len(missing), total, sc.last.get("logveil_input_paused_total", 0),
            rss.peak()))
    c.check("partial_cri_files: every record arrives (%d files, 4 MiB budget)" % files,
            ok and not missing, ranges(missing))
    c.check("partial_cri_files: none twice", dups == 0, str(dups))
    sc.term()


def stdin_over_budget(args, c, tmp):
    out = Switch(tmp, "out", up=True)
    text = config(inputs="[{type: stdin}]", outputs="[{type: file, path: %s}]" % out.link,
                  buffer="{max_bytes: 1MiB}")
    sc = Sidecar(args, tmp, text, stdin=subprocess.PIPE)
    sc.ready()
    data = b"".join(json_line(s) + b"\n" for s in range(10))
    data += b'{"seq":10,"msg":"' + b"y" * 1200000 + b'"}\n'
    data += b"".join(json_line(s) + b"\n" for s in range(11, 21))
    done = threading.Event()

    def feed():
        try:
            sc.proc.stdin.write(data)
            sc.proc.stdin.close()
            done.set()
        except OSError:
            pass
    th = threading.Thread(target=feed, daemon=True)
    th.start()
    c.check("stdin_over_budget: the writer gets through a 1.2 MB line with a 1 MiB budget",
            done.wait(20))
    try:
        rc = sc.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        rc = None
        sc.kill9()
    got, bad, recs = read_records(out.real)
    trunc = sum(1 for r in recs if isinstance(r, dict) and r.get("truncated"))
    trunc += sum(1 for r in recs if not isinstance(r, dict) and b'"truncated":true' in r)
    c.check("stdin_over_budget: logveil ends at the end of input (exit %s)" % rc, rc == 0)
    missing, dups, _ = tally(got, [s for s in range(21) if s != 10])
    c.check("stdin_over_budget: the lines around it arrive once", not missing and dups == 0,
            "missing %s, %d dups" % (ranges(missing), dups))
    c.check("stdin_over_budget: the long line arrives truncated and flagged",
            bad + trunc >= 1, "bad %d, truncated %d" % (bad, trunc))


def stdin_left_in_pipe(args, c, tmp):
    """stdin, the output down, a small budget: the input pauses and the
    pipe fills. At SIGTERM what the writer had put in the pipe is read and
    processed, then (the output still down) counted as dropped{shutdown}:
    every record written is delivered or counted, none vanishes in the
    pipe."""
    name = "stdin_left_in_pipe"
    out = Switch(tmp, "out")
    text = config(inputs="[{type: stdin}]", outputs="[{type: file, path: %s}]" % out.link,
                  buffer="{max_bytes: 1MiB}", shutdown=2)
    sc = Sidecar(args, tmp, text, stdin=subprocess.PIPE)
    sc.ready()
    fd = sc.proc.stdin.fileno()
    written = [0]

    def feed():
        try:
            for s in range(200000):
                os.write(fd, json_line(s, pad=100) + b"\n")  # < PIPE_BUF: whole or not at all
                written[0] += 1
        except OSError:
            pass
    th = threading.Thread(target=feed, daemon=True)
    th.start()
    harness.wait_for(lambda: sc.value("logveil_input_paused_total") >= 1, 15, 0.1)
    time.sleep(1.0)  # the pipe fills behind the paused input
    before = written[0]
    rc, _ = sc.term(timeout=15)
    th.join(5)
    got, _, _ = read_records(out.real)
    log = sc.log()
    at_deadline = shutdown_line(log) or 0
    at_exit = re.findall(r"unread at exit; (\d+) records? counted", log)
    counted = at_deadline + sum(int(k) for k in at_exit)
    missing, dups, _ = tally(got, range(written[0]))
    figure("%s: %d written (%d when SIGTERM came), %d delivered, counted %d at the deadline, "
           "%s at exit" % (name, written[0], before, len(got), at_deadline, at_exit))
    c.check("%s: logveil exits at SIGTERM (status %s)" % (name, rc), rc is not None)
    # A writer racing the exit can get one more line into the pipe between
    # logveil's last count of it and the close of its read end (the write
    # succeeds, nothing reads it any more): at most one line, documented.
    c.check("%s: every record written is delivered or counted (reason shutdown): %d missing, "
            "%s counted" % (name, len(missing), counted),
            counted <= len(missing) <= counted + 1)


def docker_big_lines(args, c, tmp):
    files = 60
    out = Switch(tmp, "out", up=True)
    text = config(inputs=tail_input("docker", extra=", max_open_files: 64"),
                  outputs="[{type: file, path: %s}]" % out.link, buffer="{max_bytes: 4MiB}")
    os.makedirs(os.path.join(tmp, "logs"))
    sc = Sidecar(args, tmp, text)
    sc.ready()
    time.sleep(0.5)
    rss = Rss(sc)
    time.sleep(0.5)
    idle = rss.now()
    for i in range(files):
        with open(os.path.join(tmp, "logs", "%02d.log" % i), "ab") as f:
            # Half of them with a lone surrogate escape, which the decoder
            # repairs in a copy of the whole line.
            body = '{"seq":%d,"msg":"%s%s"}\n' % (i, "\ud800" if i % 2 else "", "z" * 900000)
            f.write(docker("stdout", body))
    ok = harness.wait_for(lambda: len(seqs_of(out.real)) >= files, 40, 0.2)
    peak = rss.peak()
    time.sleep(2.0)  # housekeeping: files closed, memory given back
    after = rss.now()
    rss.stop()
    missing, _, _ = tally(seqs_of(out.real), range(files))
    figure("docker_big_lines: idle RSS %d KiB, peak %d KiB, after delivery %d KiB"
           % (idle, peak, after))
    c.check("docker_big_lines: every record arrives", ok and not missing, ranges(missing))
    limit = idle + 4 * 1024 + 16 * 1024
    check_rss(args, c, "docker_big_lines: peak RSS <= idle + budget + 16 MiB (%d <= %d KiB)"
              % (peak, limit), peak <= limit)
    check_rss(args, c, "docker_big_lines: RSS comes back down after delivery "
              "(%d KiB <= idle + 8 MiB)" % after, after <= idle + 8 * 1024)
    sc.term()


def rss_scenario(args, c, tmp, fmt):
    """Output down, 1 MiB budget, 16 files with long lines split on both
    streams, written while logveil runs: RSS must stay under budget + fixed
    overhead; then the output comes up and every record arrives."""
    name = "rss_" + fmt
    files, per = 16, 200
    budget = 1 * MIB
    out = Switch(tmp, "out")
    text = config(inputs=tail_input(fmt, extra=", max_open_files: 64"),
                  outputs="[{type: file, path: %s}]" % out.link, buffer="{max_bytes: 1MiB}")
    os.makedirs(os.path.join(tmp, "logs"))
    sc = Sidecar(args, tmp, text)
    sc.ready()
    time.sleep(0.5)
    rss = Rss(sc)
    time.sleep(0.5)
    idle = rss.now()
    seq = 0
    for i in range(files):
        with open(os.path.join(tmp, "logs", "%02d.log" % i), "ab") as f:
            for k in range(per):
                st = "stderr" if k % 3 == 1 else "stdout"
                big = k % 20 == 5
                body = json_line(seq, pad=50000 if big else 80)
                if fmt == "cri":
                    f.write(cri_split(st, body))
                elif fmt == "docker":
                    text_ = body.decode() + "\n"
                    cut = [text_[i:i + 16384] for i in range(0, len(text_), 16384)]
                    f.write(b"".join(docker(st, part) for part in cut))
                else:
                    f.write(body + b"\n")
                seq += 1
    # The last line of each file is left open: a partial line on both streams.
    for i in range(files):
        with open(os.path.join(tmp, "logs", "%02d.log" % i), "ab") as f:
            if fmt == "cri":
                f.write(cri("stdout", "P", b'{"seq":%d,"msg":"' % 10**6 + b"q" * 16000))
                f.write(cri("stderr", "P", b"x" * 16000))
            elif fmt == "docker":
                f.write(docker("stdout", "partial " * 2000))
                f.write(docker("stderr", "partial " * 2000))
            else:
                f.write(b'{"seq":1000000,"msg":"' + b"q" * 30000)
    harness.wait_for(lambda: sc.value("logveil_input_paused_total") >= 1, 15, 0.1)
    time.sleep(2.0)
    peak = rss.peak()
    overhead = RSS_FIXED_OVERHEAD // 1024
    figure("%s: idle %d KiB, peak %d KiB with a %d KiB budget" % (name, idle, peak,
                                                                 budget // 1024))
    check_rss(args, c, "%s: RSS <= idle + budget + fixed overhead (%d <= %d KiB)"
              % (name, peak, idle + budget // 1024 + overhead),
              peak <= idle + budget // 1024 + overhead)
    out.up()
    ok = harness.wait_for(lambda: len(set(seqs_of(out.real))) >= seq, 60, 0.2)
    rss.stop()
    missing, dups, _ = tally(seqs_of(out.real), range(seq))
    c.check("%s: after the output comes back every record arrives" % name,
            ok and not missing, "%d missing: %s" % (len(missing), ranges(missing)))
    c.check("%s: none twice" % name, dups == 0, str(dups))
    sc.term()


def rss_partials(args, c, tmp, fmt):
    """The output is up, so no batch stays in flight, and 24 files each
    hold a partial line of 900 KB (CRI P fragments, Docker entries without
    their newline, a JSON line without its '\n'): a pause would not help
    (nothing in flight would free memory), so the partial lines must keep
    within the 1 MiB budget plus one line being finished, whatever the
    number of files. Then the ends are written: every line arrives whole."""
    name = "rss_partials_" + fmt
    files, size = 24, 900000
    budget = 1 * MIB
    out = Switch(tmp, "out", up=True)
    text = config(inputs=tail_input(fmt, extra=", max_open_files: 64"),
                  outputs="[{type: file, path: %s}]" % out.link, buffer="{max_bytes: 1MiB}")
    os.makedirs(os.path.join(tmp, "logs"))
    sc = Sidecar(args, tmp, text)
    sc.ready()
    time.sleep(0.5)
    rss = Rss(sc)
    time.sleep(0.5)
    idle = rss.now()
    ends = []
    for i in range(files):
        body = b'{"seq":%d,"msg":"%s"}' % (i, b"w" * size)
        with open(os.path.join(tmp, "logs", "%02d.log" % i), "ab") as f:
            if fmt == "cri":
                parts = cri_split("stdout", body).splitlines(keepends=True)
                f.write(b"".join(parts[:-1]))
                ends.append(parts[-1])
            elif fmt == "docker":
                text_ = body.decode() + "\n"
                cut = [text_[k:k + 16384] for k in range(0, len(text_), 16384)]
                f.write(b"".join(docker("stdout", part) for part in cut[:-1]))
                ends.append(docker("stdout", cut[-1]))
            else:
                f.write(body[:-100])
                ends.append(body[-100:] + b"\n")
    time.sleep(2.5)  # every file read as far as it may be (the timeout is 5 s)
    peak = rss.peak()
    for i in range(files):
        with open(os.path.join(tmp, "logs", "%02d.log" % i), "ab") as f:
            f.write(ends[i])
    ok = harness.wait_for(lambda: len(set(seqs_of(out.real))) >= files, 40, 0.2)
    peak_all = rss.peak()
    rss.stop()
    got, bad, recs = read_records(out.real)
    whole = sum(1 for r in recs if isinstance(r, dict) and len(r.get("msg", "")) == size)
    overhead = RSS_FIXED_OVERHEAD // 1024
    figure("%s: idle %d KiB, peak %d KiB while %d files held %d KB partial lines (budget %d "
           "KiB), %d KiB until delivered" % (name, idle, peak, files, size // 1000,
                                            budget // 1024, peak_all))
    check_rss(args, c, "%s: RSS <= idle + budget + fixed overhead while partial lines wait "
              "(%d <= %d KiB)" % (name, peak, idle + budget // 1024 + overhead),
              peak <= idle + budget // 1024 + overhead)
    c.check("%s: every line arrives once its end is written, whole (%d of %d whole, %d not "
            "JSON)" % (name, whole, files, bad), ok and whole == files and bad == 0)
    sc.term()


def rss_partials_json(args, c, tmp):
    rss_partials(args, c, tmp, "json")


def rss_partials_cri(args, c, tmp):
    rss_partials(args, c, tmp, "cri")


def rss_partials_docker(args, c, tmp):
    rss_partials(args, c, tmp, "docker")


def rss_json(args, c, tmp):
    rss_scenario(args, c, tmp, "json")


def rss_cri(args, c, tmp):
    rss_scenario(args, c, tmp, "cri")


def rss_docker(args, c, tmp):
    rss_scenario(args, c, tmp, "docker")


def cri_partial_forever(args, c, tmp):
    """stderr: a progress bar, P fragments and never an F. stdout: records."""
    n = 200
    out = Switch(tmp, "out", up=True)
    text = config(inputs=tail_input("cri"), outputs="[{type: file, path: %s}]" % out.link,
                  extra="limits: {max_line: 64KiB}\n")
    log = LogFile(os.path.join(tmp, "logs", "0.log"))
    log.add(-1, cri("stderr", "P", b"progress [=====     ] 50%"))
    for s in range(n):
        log.add(s, cri("stdout", "F", json_line(s)))
    sc = Sidecar(args, tmp, text)
    sc.ready()
    ok = harness.wait_for(lambda: len(seqs_of(out.real)) >= n, 20, 0.2)
    c.check("cri_partial_forever: the stdout records arrive", ok)
    ck_path = os.path.join(tmp, "state", "ckpt")
    passed = harness.wait_for(lambda: ckpt_offset(ck_path, "0.log") >= log.size, 15, 0.2)
    c.check("cri_partial_forever: within the time bound the checkpoint passes the P that "
            "has no F (%d of %d)" % (ckpt_offset(ck_path, "0.log"), log.size), passed)
    _, _, recs = read_records(out.real)
    c.check("cri_partial_forever: the held fragment is emitted",
            any(b"progress [=====" in (r if isinstance(r, bytes) else json.dumps(r).encode())
                for r in recs))
    # Bytes: fragments past max_line, quicker than the timeout.
    for k in range(6):
        log.add(-2 - k, cri("stderr", "P", b"#" * 16000))
    log.add(n, cri("stdout", "F", json_line(n)))
    passed = harness.wait_for(lambda: ckpt_offset(ck_path, "0.log") >= log.size, 15, 0.2)
    c.check("cri_partial_forever: past max_line the checkpoint passes it too", passed)
    sc.kill9()
    sc = Sidecar(args, tmp, text)
    sc.ready()
    time.sleep(2.0)
    sc.term()
    missing, dups, _ = tally(seqs_of(out.real), range(n + 1))
    c.check("cri_partial_forever: a restart delivers nothing twice", dups == 0 and not missing,
            "%d dups, missing %s" % (dups, ranges(missing)))


class SlowFifo(threading.Thread):
    """Reads a FIFO at about `rate` bytes a second, keeping the sequence
    numbers in arrival order."""

    def __init__(self, path, rate):
        super().__init__(daemon=True)
        self.path, self.rate = path, rate
        self.seqs = []
        self.halt = threading.Event()

    def run(self):
        fd = os.open(self.path, os.O_RDONLY)
        rest = b""
        try:
            while not self.halt.is_set():
                b = os.read(fd, 32768)
                if not b:
                    break
                rest += b
                *lines, rest = rest.split(b"\n")
                for line in lines:
                    try:
                        self.seqs.append(json.loads(line)["seq"])
                    except (ValueError, KeyError):
                        self.seqs.append(None)
                time.sleep(len(b) / self.rate)
        finally:
            os.close(fd)


def slow_sink_fair(args, c, tmp):
    """Two files, a busy one with a large backlog and a quiet one, and a sink
    slower than the busy file: the input pauses and resumes all the time.
    The quiet file must be read in its turn, not only once the busy one has
    nothing more (each resumption must not start with the busy file again)."""
    name = "slow_sink_fair"
    fifo = os.path.join(tmp, "out.fifo")
    os.mkfifo(fifo)
    text = config(inputs=tail_input(), outputs="[{type: file, path: %s}]" % fifo,
                  buffer="{max_bytes: 1MiB}")
    busy = LogFile(os.path.join(tmp, "logs", "a.log"))
    quiet = LogFile(os.path.join(tmp, "logs", "b.log"))
    nbusy, nquiet = 60000, 50
    busy.add(0, b"".join(json_line(s) + b"\n" for s in range(nbusy)))
    quiet.add(0, b"".join(json_line(s) + b"\n" for s in range(nbusy, nbusy + nquiet)))
    reader = SlowFifo(fifo, 3 << 20)
    reader.start()
    sc = Sidecar(args, tmp, text)
    quiet_seqs = set(range(nbusy, nbusy + nquiet))
    ok = harness.wait_for(lambda: quiet_seqs <= set(reader.seqs), 40, 0.1)
    got = list(reader.seqs)
    busy_before = sum(1 for s in got if s is not None and s < nbusy)
    paused = sc.value("logveil_input_paused_total")
    reader.halt.set()
    sc.kill9()
    figure("%s: the quiet file's %d records arrived after %d of the busy file's %d "
           "(input paused %d times)" % (name, nquiet, busy_before, nbusy, paused))
    c.check("%s: the sink was slower than the busy file (the input paused, %d times)"
            % (name, paused), paused >= 1)
    c.check("%s: the quiet file is read in its turn: its records arrive before a third of "
            "the busy file's backlog (%d of %d)" % (name, busy_before, nbusy),
            ok and busy_before < nbusy // 3)


def read_offset(sc, path):
    """logveil_file_read_offset_bytes of the open file `path` (0 when not shown)."""
    key = 'logveil_file_read_offset_bytes{file="%s"' % path
    return next((v for k, v in sc.metrics().items() if k.startswith(key)), 0)


class Frozen:
    """SIGSTOP for `seconds`, then SIGCONT: a process that read the start of
    a line and then did not run (a frozen cgroup, a throttled CPU, a loop
    busy elsewhere) while the rest of the line was written. When it runs
    again its timers are overdue and the rest waits unread."""

    def __init__(self, sc, seconds):
        self.sc, self.seconds = sc, seconds

    def __enter__(self):
        self.sc.proc.send_signal(signal.SIGSTOP)
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc):
        time.sleep(max(0.0, self.seconds - (time.monotonic() - self.t0)))
        self.sc.proc.send_signal(signal.SIGCONT)
        return False


def whole_records(c, name, path, expected, long_seq, long_len):
    """Every record is JSON with a seq, each expected one once, and the long
    one whole."""
    others = set(expected) - {long_seq}
    harness.wait_for(lambda: others <= set(seqs_of(path)), 20, 0.2)
    ok = harness.wait_for(lambda: set(expected) <= set(seqs_of(path)), 3, 0.2)
    got, bad, recs = read_records(path)
    missing, dups, _ = tally(got, expected)
    c.check("%s: every record arrives once (%s)" % (name, "in time" if ok else "timed out"),
            not missing and dups == 0, "missing %s, %d dups" % (ranges(missing), dups))
    long = [r for r in recs if isinstance(r, dict) and r.get("seq") == long_seq]
    c.check("%s: the line whose end was written while logveil did not run arrives whole, "
            "not in pieces (%d records not JSON)" % (name, bad),
            bad == 0 and len(long) == 1 and len(long[0].get("msg", "")) == long_len,
            "msg lengths %s, want %d" % ([len(r.get("msg", "")) for r in long], long_len))


def frozen_cri_tail(args, c, tmp):
    """A CRI line split P/P/F: the P fragments are read, then logveil is
    frozen for longer than the partial-line timeout while the F is written.
    When it runs again the F is in the file, unread: the line must not be
    sent in two pieces."""
    name = "frozen_cri_tail"
    out = Switch(tmp, "out", up=True)
    text = config(inputs=tail_input("cri"), outputs="[{type: file, path: %s}]" % out.link)
    log = LogFile(os.path.join(tmp, "logs", "0.log"))
    sc = Sidecar(args, tmp, text)
    sc.ready()
    msg = b"m" * 40000
    parts = cri_split("stdout", b'{"seq":100,"msg":"%s"}' % msg).splitlines(keepends=True)
    for s in range(5):
        log.add(s, cri("stdout", "F", json_line(s)))
    log.add(-1, b"".join(parts[:-1]))
    c.check("%s: the P fragments are read" % name,
            harness.wait_for(lambda: read_offset(sc, log.path) >= log.size, 10, 0.1))
    with Frozen(sc, 7.0):
        log.add(100, parts[-1])
        for s in range(5, 10):
            log.add(s, cri("stdout", "F", json_line(s)))
    whole_records(c, name, out.real, list(range(10)) + [100], 100, len(msg))
    sc.term()


def frozen_stdin(args, c, tmp):
    """The same through stdin (CRI framing): the F waits in the pipe."""
    name = "frozen_stdin"
    out = Switch(tmp, "out", up=True)
    text = config(inputs="[{type: stdin, format: cri}]",
                  outputs="[{type: file, path: %s}]" % out.link)
    sc = Sidecar(args, tmp, text, stdin=subprocess.PIPE)
    sc.ready()
    msg = b"m" * 40000
    parts = cri_split("stdout", b'{"seq":100,"msg":"%s"}' % msg).splitlines(keepends=True)
    # The P fragments, then a whole record on the other stream: once that
    # record is out, the fragments before it were read.
    sc.proc.stdin.write(b"".join(parts[:-1]) + cri("stderr", "F", json_line(0)))
    sc.proc.stdin.flush()
    c.check("%s: the P fragments are read" % name,
            harness.wait_for(lambda: 0 in seqs_of(out.real), 10, 0.1))
    with Frozen(sc, 7.0):
        sc.proc.stdin.write(parts[-1] + cri("stdout", "F", json_line(1)))
        sc.proc.stdin.flush()
    harness.wait_for(lambda: 1 in seqs_of(out.real), 10, 0.1)
    sc.proc.stdin.close()
    rc = sc.proc.wait(timeout=20)
    c.check("%s: logveil ends at the end of input (exit %s)" % (name, rc), rc == 0)
    whole_records(c, name, out.real, [0, 1, 100], 100, len(msg))


def frozen_multiline(args, c, tmp):
    """A stack trace being joined: its first lines are read and held, then
    logveil is frozen for longer than the multiline timeout while the rest
    of the trace is written. The trace must stay one record."""
    name = "frozen_multiline"
    out = Switch(tmp, "out", up=True)
    text = config(inputs=tail_input("json", extra=", multiline: {timeout: 1.0}"),
                  outputs="[{type: file, path: %s}]" % out.link)
    log = LogFile(os.path.join(tmp, "logs", "0.log"))
    sc = Sidecar(args, tmp, text)
    sc.ready()
    head = b"java.lang.IllegalStateException: boom\n\tat a.b.C.first(C.java:1)\n"
    rest = b"".join(b"\tat a.b.C.f%d(C.java:%d)\n" % (k, k) for k in range(2, 40))
    log.add(0, json_line(0) + b"\n")
    log.add(-1, head)
    c.check("%s: the first lines of the trace are read" % name,
            harness.wait_for(lambda: read_offset(sc, log.path) >= log.size, 10, 0.1))
    with Frozen(sc, 4.0):
        log.add(-2, rest)
        log.add(1, json_line(1) + b"\n")
    ok = harness.wait_for(lambda: 1 in seqs_of(out.real), 20, 0.2)
    sc.term()
    got, bad, recs = read_records(out.real)
    traces = [r for r in recs if isinstance(r, bytes)]  # the records without a seq
    whole = [r for r in traces if b"boom" in r and b"f39" in r]
    c.check("%s: the records around it arrive (%s)" % (name, "in time" if ok else "timed out"),
            sorted(got) == [0, 1], str(got))
    c.check("%s: the trace whose end was written while logveil did not run is one record "
            "(%d records for it)" % (name, len(traces)), len(traces) == 1 and len(whole) == 1,
            "records: %s" % [r[:60] for r in traces])


# ---- items 4, 13, 14: shutdown and the file output -------------------------------------------


def shutdown_line(log):
    m = re.findall(r"(\d+) records? undelivered", log)
    return int(m[-1]) if m else None


def stalled_sink(args, c, tmp, kind):
    name = kind + "_stalled"
    n = 20000
    if kind == "stdout":
        rfd, wfd = os.pipe()
        outputs, stdout = "[{type: stdout}]", wfd
    else:
        fifo = os.path.join(tmp, "out.fifo")
        os.mkfifo(fifo)
        rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        outputs, stdout = "[{type: file, path: %s}]" % fifo, None
    text = config(inputs="[{type: stdin}]", outputs=outputs, shutdown=2)
    sc = Sidecar(args, tmp, text, stdin=subprocess.PIPE, stdout=stdout)
    if kind == "stdout":
        os.close(wfd)

    def feed():
        try:
            for s in range(n):
                sc.proc.stdin.write(json_line(s, pad=200) + b"\n")
            sc.proc.stdin.flush()
        except (OSError, ValueError):
            pass
    th = threading.Thread(target=feed, daemon=True)
    th.start()
    sc.ready()
    time.sleep(1.5)  # the pipe fills, then the buffer
    t0 = time.monotonic()
    m = sc.metrics(timeout=3)
    c.check("%s: /metrics answers while the sink is stalled" % name, bool(m),
            "no answer after %.1f s" % (time.monotonic() - t0))
    sc.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    m = sc.metrics(timeout=2)
    c.check("%s: /metrics answers while draining" % name, bool(m))
    read = (m or sc.last).get("logveil_input_records_total", 0)
    rc, secs = sc.term(timeout=12)
    c.check("%s: SIGTERM exits within shutdown_timeout (2 s) + 2 s (%.1f s, status %s)"
            % (name, secs + 0.5, rc), rc is not None and secs + 0.5 <= 4.0)
    sc.proc.stdin = None
    chunks = []
    os.set_blocking(rfd, False)
    while True:
        try:
            b = os.read(rfd, 1 << 20)
        except BlockingIOError:
            break
        if not b:
            break
        chunks.append(b)
    os.close(rfd)
    got, torn = [], 0
    for line in b"".join(chunks).split(b"\n"):
        if not line:
            continue
        try:
            got.append(json.loads(line)["seq"])
        except (ValueError, KeyError):
            torn += 1
    counted = shutdown_line(sc.log())
    missing, dups, _ = tally(got, range(int(read)))
    figure("%s: read %d, delivered %d, %d torn, shutdown line counts %s"
           % (name, read, len(got), torn, counted))
    c.check("%s: records held at the deadline are counted (reason shutdown): %s == %d missing"
            % (name, counted, len(missing)), counted == len(missing))
    c.check("%s: nothing twice" % name, dups == 0, str(dups))


def stdout_stalled(args, c, tmp):
    stalled_sink(args, c, tmp, "stdout")


def fifo_stalled(args, c, tmp):
    stalled_sink(args, c, tmp, "fifo")


def fifo_torn_restart(args, c, tmp):
    """A reader that keeps a FIFO open across logveil's restarts, stalled at
    the shutdown deadline so a record is cut in the middle of its write: the
    next run starts on a new line, so the cut piece stands alone and the
    records after it arrive whole (not glued to it)."""
    n = 20000
    fifo = os.path.join(tmp, "out.fifo")
    os.mkfifo(fifo)
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    text = config(inputs=tail_input(), outputs="[{type: file, path: %s}]" % fifo, shutdown=1)
    log = LogFile(os.path.join(tmp, "logs", "0.log"))
    for s in range(n):
        log.add(s, json_line(s, pad=300) + b"\n")
    sc = Sidecar(args, tmp, text)
    sc.ready()
    time.sleep(1.5)  # the pipe fills: a write of a batch stops part way
    rc, secs = sc.term(timeout=12)
    c.check("fifo_torn_restart: exit at the deadline (status %s, %.1f s)" % (rc, secs),
            rc is not None)
    marker = os.path.exists(os.path.join(tmp, "state", "torn-file"))
    # The next run, read as fast as it writes, on the same open FIFO.
    sc = Sidecar(args, tmp, text)
    chunks = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 30:
        try:
            b = os.read(rfd, 1 << 20)
        except BlockingIOError:
            b = None
        if b:
            chunks.append(b)
            if b"".join(chunks[-2:]).count(b'"seq":%d,' % (n - 1)):
                break
        else:
            time.sleep(0.01)
    time.sleep(0.5)
    try:
        while True:
            b = os.read(rfd, 1 << 20)
            if not b:
                break
            chunks.append(b)
    except BlockingIOError:
        pass
    sc.term()
    os.close(rfd)
    got, cut, glued = [], [], []
    for line in b"".join(chunks).split(b"\n"):
        if not line:
            continue
        try:
            got.append(json.loads(line)["seq"])
            continue
        except (ValueError, KeyError):
            cut.append(line)
        # Glued: a whole record at the end of a cut piece.
        for i in range(1, len(line)):
            if line[i:i + 1] == b"{":
                try:
                    glued.append(json.loads(line[i:])["seq"])
                    break
                except (ValueError, KeyError):
                    pass
    figure("fifo_torn_restart: %d cut pieces, marker left %s, %d glued records"
           % (len(cut), marker, len(glued)))
    c.check("fifo_torn_restart: the scenario cut a record (marker left for the next run)",
            len(cut) >= 1 and marker, "%d cut, marker %s" % (len(cut), marker))
    c.check("fifo_torn_restart: the cut piece stands alone: no record glued to it",
            not glued, "glued %s" % glued[:3])
    missing, dups, _ = tally(got, range(n))
    c.check("fifo_torn_restart: every record arrives whole", not missing, ranges(missing))
    c.check("fifo_torn_restart: the marker is gone once the new line is written",
            not os.path.exists(os.path.join(tmp, "state", "torn-file")))


def file_torn_tail(args, c, tmp):
    n = 300
    outpath = os.path.join(tmp, "out.log")
    with open(outpath, "wb") as f:
        f.write(b'{"seq":-3}\n{"seq":-2}\n{"seq":-1,"lev')  # as kill -9 can leave it
    text = config(inputs=tail_input(), outputs="[{type: file, path: %s}]" % outpath)
    log = LogFile(os.path.join(tmp, "logs", "0.log"))
    write_burst(log, 0, n)
    sc = Sidecar(args, tmp, text)
    sc.ready()
    harness.wait_for(lambda: len(seqs_of(outpath)) >= n + 2, 20, 0.2)
    sc.term()
    got, bad, _ = read_records(outpath)
    c.check("file_torn_tail: the torn line is cut on open, every line is whole", bad == 0,
            "%d torn lines" % bad)
    missing, dups, _ = tally(got, [-3, -2] + list(range(n)))
    c.check("file_torn_tail: the earlier whole lines and the new records are there",
            not missing and dups == 0, "missing %s, %d dups" % (ranges(missing), dups))
    # The real thing: kill -9 while large batches are written.
    rnd = random.Random(SEED + 2)
    first = n
    for k in range(3):
        write_burst(log, first, 20000)
        first += 20000
        sc = Sidecar(args, tmp, text)
        time.sleep(rnd.uniform(0.2, 0.8))
        sc.kill9()
    sc = Sidecar(args, tmp, text)
    sc.ready()
    harness.wait_for(lambda: len(set(seqs_of(outpath))) >= first + 2, 30, 0.2)
    sc.term()
    got, bad, _ = read_records(outpath)
    missing, dups, _ = tally(got, [-3, -2] + list(range(first)))
    figure("file_torn_tail: after 3 kills during writes: %d duplicates" % dups)
    c.check("file_torn_tail: after kill -9 during writes no line is torn", bad == 0, str(bad))
    c.check("file_torn_tail: ... and nothing is missing", not missing, ranges(missing))


SCENARIOS = [ring_block_sampled, ring_drop_newest, ring_drop_oldest, ring_shed, ring_spool_kill,
             spool_restarts, fanout_spool_sigterm, fanout_stalled_fifo, fanout_drop_oldest,
             spool_corrupt, spool_corrupt_header, kill_during_replay, kill_random,
             partial_cri_files, stdin_over_budget, stdin_left_in_pipe, docker_big_lines,
             rss_json, rss_cri, rss_docker, rss_partials_json, rss_partials_cri,
             rss_partials_docker, cri_partial_forever, frozen_cri_tail, frozen_stdin,
             frozen_multiline, slow_sink_fair, stdout_stalled, fifo_stalled, fifo_torn_restart,
             file_torn_tail]


def bounded(fn):
    """Runs the scenario in a thread; past SCENARIO_LIMIT it fails."""
    def run(args, c, tmp):
        t0 = time.monotonic()
        err = []

        def body():
            try:
                fn(args, c, tmp)
            except Exception as e:  # noqa: BLE001 - reported as a failed check
                err.append(e)
        th = threading.Thread(target=body, daemon=True)
        th.start()
        th.join(SCENARIO_LIMIT)
        for p in RUNNING:
            if p.poll() is None:
                p.kill()
                p.wait()
        if th.is_alive():
            c.check("%s finished within %d s" % (fn.__name__, SCENARIO_LIMIT), False)
        elif err:
            raise err[0]
        figure("%s: %.1f s" % (fn.__name__, time.monotonic() - t0))
    run.__name__ = fn.__name__
    return run


if __name__ == "__main__":
    print("seed %d (LV_FAULTS_SEED)" % SEED, flush=True)
    sys.exit(harness.run_scenarios(__doc__, "lv-faults-", [bounded(s) for s in SCENARIOS],
                                   RUNNING))
