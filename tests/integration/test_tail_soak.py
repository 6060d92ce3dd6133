#!/usr/bin/env python3
"""Soak test of the tail input: rotation under load, crashes, a slow sink.

A writer process (cri_writer.py, next to this file) appends CRI lines whose
content carries a sequence number, and rotates the file as the kubelet does
(rename + create) or as logrotate does (copytruncate). logveil tails the
directory with an acknowledged checkpoint and writes to a file output; the
test then counts every sequence number in that output.

Scenarios (--only picks some, by name):

  rename        1,000,000 lines, rotation by rename every 5 MB, paths
                dir/*.log and dir/0.log* (the second also matches the rotated
                names, and 0.log twice): every number exactly once.
  copytruncate  the same lines, copy then truncate every 5 MB, paths
                dir/*.log (the copies do not match); the writer pauses around
                each truncation, so nothing may be missing; duplicates are
                counted and reported.
  crash_copytruncate  the same with logrotate's copytruncate every 2 MB:
                nothing may be missing (the copies hold what was not read)
  crash         1,000,000 lines, rename rotation; logveil is killed with
                SIGKILL three times at random points and restarted with the
                same checkpoint; nothing may be missing; duplicates must stay
                under kills x (buffer + one checkpoint interval of records).
  slow          the file output is a FIFO read at about 1 record per ms while
                the writer appends 200 MB; logveil's VmRSS, sampled every
                100 ms, must stay under buffer.max_bytes + 32 MiB, and it must
                not have read much more than it delivered; the file output
                writes the FIFO without blocking, so batches wait in the
                buffer, the input pauses (logveil_input_paused_total > 0) and
                /metrics keeps answering. Then the reader speeds up and
                everything must arrive.
  stall         the output fails (RLIMIT_FSIZE, so EFBIG) until the test
                raises the limit with prlimit: the buffer fills, the input
                pauses (logveil_input_paused_total > 0) and stops reading,
                RSS stays bounded (not checked in an ASan build, whose RSS is the
                sanitizer's); after the raise it resumes and delivers
                every record exactly once.

Every wait is bounded; each scenario must finish within 2 minutes and the
whole script within 6. The full sizes (1,000,000 lines, 200 MB) are the
default: alone on a 2-core machine the script takes about 2.5 minutes. Each
writer also has a time cap (WRITE_CAP): on a slow or busy machine it writes
fewer lines instead of overrunning, and the size used is printed ("FIGURE:
<scenario>: size used ..."). --quick divides the sizes by ten.

Lines starting with FIGURE: are for the notes (rates, duplicates, RSS). The
last line is "N passed, M failed"; the exit status is 1 when anything failed.
A missing or duplicated sequence number is reported as ranges, with the input
file and byte offsets that held it. On failure the work directory is kept
(logveil.log with every run's stderr, config, checkpoint, logs.ls listing the
input files; the big data files are removed unless --keep) and its path
printed. --match-rotated adds dir/0.log* to the globs of the crash, slow and
stall runs, which tells file discovery bugs from others.

SOAK_LOG_LEVEL in the environment (debug, for one) sets logveil's log_level
(default info); debug output slows logveil enough to change the timing.

Usage: test_tail_soak.py --binary PATH --source REPO [--quick] [--only a,b] [--keep]
                         [--seed N] [--match-rotated]
"""
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import cri_writer  # noqa: E402
import harness  # noqa: E402

WRITER = os.path.join(HERE, "cri_writer.py")
MIB = 1 << 20
SCENARIO_LIMIT = 120.0
SCRIPT_LIMIT = 360.0
# Full sizes. They fit the 6-minute budget on a 2-core machine (about 3
# minutes in all when measured); --quick divides them by ten.
FULL_LINES = 1_000_000
FULL_SLOW_BYTES = 200 * MIB
BUFFER_MAX = 16 * MIB
RSS_OVERHEAD = 32 * MIB

ROTATE_BYTES = 5 * MIB
CHECKPOINT_INTERVAL = 1.0  # protocols.md 1.5 rule 2: "every ~1 s"
SCAN_INTERVAL = 0.2
ROTATE_WAIT = 2.0
SEQ_TAG = b'{"seq":'
# A drain wait gives up when the output has not grown for this long (well
# past rotate_wait, a scan and a checkpoint interval).
STALL_GIVE_UP = 8.0
# Seconds each scenario's writer may take at most: on a slow or busy machine
# it writes fewer lines (reported as the size used) rather than overrun the
# 2-minute scenario limit.
WRITE_CAP = {"rename": 50, "copytruncate": 55, "crash": 45, "crash_copytruncate": 30,
             "slow": 45, "stall": 20}
# The admin server answers on the loop, which a blocking sink holds up.
SLOW_METRICS_TIMEOUT = 20.0


# ---- reporting -------------------------------------------------------------------

def figure(text):
    print(f"FIGURE: {text}", flush=True)


def info(text):
    print(f"     {text}", flush=True)


def ranges(seqs, limit=12):
    """[1,2,3,7] -> '1-3, 7' (at most `limit` ranges, then how many more)."""
    out = []
    start = prev = None
    count = 0
    for s in sorted(seqs):
        if start is None:
            start = prev = s
        elif s == prev + 1:
            prev = s
        else:
            out.append((start, prev))
            start = prev = s
        count += 1
    if start is not None:
        out.append((start, prev))
    text = ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in out[:limit])
    if len(out) > limit:
        text += f", ... ({len(out) - limit} more ranges)"
    return f"{count} seqs: {text}" if count else "none"


# ---- processes and probes ----------------------------------------------------------

def metrics(port, timeout=5.0):
    """{name or name{labels}: value} and "_latency", the seconds the answer
    took; {} when there is no answer."""
    t0 = time.monotonic()
    r = harness.request(port, "/metrics", timeout=timeout)
    latency = time.monotonic() - t0
    if r is None or r[0] != 200:
        return {}
    out = harness.parse_metrics(r[2])
    out["_latency"] = latency
    return out


def tail_metrics(m):
    keys = ("logveil_input_records_total", "logveil_input_bytes_total",
            "logveil_input_paused_total", "logveil_buffer_bytes", "logveil_files_open",
            "logveil_checkpoint_lag_bytes", "logveil_file_truncations_total",
            "logveil_inotify_overflows_total", "logveil_lines_not_json_total",
            "logveil_lines_truncated_total")
    parts = [f"{k.replace('logveil_', '')}={m[k]:.0f}" for k in keys if k in m]
    parts += [f"{k}={v:.0f}" for k, v in m.items()
              if k.startswith(("logveil_records_dropped_total", "logveil_output_errors_total"))
              and v]
    return " ".join(parts) if parts else "(no metrics)"


def mib(v):
    """Bytes as MiB text; '?' for None."""
    return "?" if v is None else f"{v / MIB:.1f}"


class Deadline:
    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def left(self, cap=None):
        left = max(0.0, self.end - time.monotonic())
        return left if cap is None else min(cap, left)

    def wait_for(self, fn, timeout, interval=0.25):
        """Calls fn until it is true; False when `timeout` (or the scenario)
        runs out."""
        return bool(harness.wait_for(fn, self.left(timeout), interval))


class Sidecar:
    """One logveil run --config, restartable; its stderr (all runs) in one file."""

    def __init__(self, binary, config, logpath, port, preexec=None):
        self.binary = binary
        self.config = config
        self.logpath = logpath
        self.port = port
        self.preexec = preexec
        self.proc = None
        self.runs = 0

    def start(self):
        self.runs += 1
        with open(self.logpath, "ab") as log:
            log.write(f"---- run {self.runs} at {time.strftime('%H:%M:%S')} ----\n".encode())
            self.proc = subprocess.Popen(
                [self.binary, "run", "--config", self.config], stdin=subprocess.DEVNULL,
                stdout=log, stderr=log, preexec_fn=self.preexec, start_new_session=True)
        return self.proc

    def pid(self):
        p = self.proc
        return p.pid if p is not None and p.poll() is None else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, deadline, timeout=15.0):
        def ready():
            if not self.alive():
                return True
            r = harness.request(self.port, "/readyz", timeout=1.0)
            return r is not None and r[0] == 200
        return deadline.wait_for(ready, timeout, 0.05) and self.alive()

    def kill9(self):
        if not self.alive():
            return
        os.kill(self.proc.pid, signal.SIGKILL)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        with open(self.logpath, "ab") as log:
            log.write(f"---- run {self.runs}: SIGKILL by the test ----\n".encode())

    def term(self, timeout=20.0):
        """SIGTERM and wait; the exit status, or None if it had to be killed."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            return self.proc.returncode
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            return None

    def log_tail(self, lines=15):
        try:
            with open(self.logpath, "rb") as f:
                f.seek(max(0, os.path.getsize(self.logpath) - 16384))
                text = f.read().decode(errors="replace")
            return text.splitlines()[-lines:]
        except OSError:
            return []

    def log_count(self, needle):
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode(errors="replace").count(needle)
        except OSError:
            return 0


class Writer:
    """cri_writer.py as a child process."""

    def __init__(self, live, args, errpath, progress, max_seconds):
        self.progress_path = progress
        cmd = [sys.executable, WRITER, "--path", live, "--progress", progress,
               "--max-seconds", str(max_seconds)] + args
        self.err = open(errpath, "ab")
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self.err, start_new_session=True)
        self.result = None
        self.elapsed = None

    def progress(self):
        """(records written, bytes written, rotations) so far."""
        try:
            with open(self.progress_path) as f:
                a, b, c = f.read().split()
                return int(a), int(b), int(c)
        except (OSError, ValueError):
            return 0, 0, 0

    def done(self):
        return self.proc.poll() is not None

    def finish(self, timeout):
        """The writer's report (dict), or None when it failed or timed out."""
        try:
            out, _ = self.proc.communicate(timeout=max(0.1, timeout))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            self.err.close()
            return None
        self.err.close()
        self.elapsed = time.monotonic() - self.t0
        lines = out.decode().strip().splitlines()
        if self.proc.returncode != 0 or not lines:
            return None
        self.result = json.loads(lines[-1])
        return self.result

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


# ---- the output, counted ----------------------------------------------------------

class Tracker:
    """Counts sequence numbers in logveil's output (one JSON record a line).

    A line holding other than exactly one whole record is "torn" (a kill -9
    in the middle of a write); the last whole record in it still counts.
    Long records are parsed and their message length checked. Duplicates are
    attributed to the current `segment` (the run of logveil that wrote them,
    when the caller moves it at each restart)."""

    def __init__(self, n, shape):
        self.n = n
        self.shape = shape
        self.counts = bytearray(n)
        self.unique = 0
        self.records = 0
        self.dups = 0
        self.out_of_range = []
        self.torn = []
        self.ntorn = 0
        self.long_checked = 0
        self.long_bad = []
        self.rest = b""
        self.offset = 0
        self.segment = 0
        self.seg_dups = {}
        self.lock = threading.Lock()

    def feed(self, data):
        with self.lock:
            data = self.rest + data
            cut = data.rfind(b"\n")
            if cut < 0:
                self.rest = data
                return
            self.rest = data[cut + 1:]
            for line in data[:cut].split(b"\n"):
                self._line(line)

    def _line(self, line):
        if line.startswith(SEQ_TAG) and line.endswith(b"}") and line.count(SEQ_TAG) == 1:
            comma = line.find(b",", 7)
            try:
                seq = int(line[7:comma])
            except ValueError:
                seq = None
            if seq is not None:
                self._count(seq, line)
                return
        self.ntorn += 1
        if len(self.torn) < 5:
            self.torn.append(line[:120] + (b" ... " + line[-120:] if len(line) > 240 else b""))
        i = line.rfind(SEQ_TAG)
        if i > 0:
            try:
                rec = json.loads(line[i:])
                self._count(int(rec["seq"]), line[i:])
            except (ValueError, KeyError, TypeError):
                pass

    def _count(self, seq, line):
        self.records += 1
        if not 0 <= seq < self.n:
            if len(self.out_of_range) < 20:
                self.out_of_range.append(seq)
            return
        c = self.counts[seq]
        if c == 0:
            self.unique += 1
        else:
            self.dups += 1
            self.seg_dups.setdefault(self.segment, []).append(seq)
        if c < 255:
            self.counts[seq] = c + 1
        if self.shape.is_long(seq):
            self.long_checked += 1
            try:
                got = len(json.loads(line)["msg"])
            except (ValueError, KeyError, TypeError):
                got = None
            want = self.shape.long_len(seq)
            if got != want and len(self.long_bad) < 10:
                self.long_bad.append((seq, want, got))

    def feed_file(self, path, upto=None, chunk=8 * MIB):
        """Reads what was added to `path` since the last call (up to byte
        `upto`)."""
        try:
            with open(path, "rb") as f:
                f.seek(self.offset)
                while upto is None or self.offset < upto:
                    want = chunk if upto is None else min(chunk, upto - self.offset)
                    data = f.read(want)
                    if not data:
                        break
                    self.offset += len(data)
                    self.feed(data)
        except FileNotFoundError:
            pass

    def missing(self, upto=None):
        c = self.counts if upto is None else self.counts[:upto]
        return [m.start() for m in re.finditer(b"\x00", c)]

    def duplicated(self):
        return [m.start() for m in re.finditer(b"[\x02-\xff]", self.counts)]


def locate(seqs, logdir, limit=2_000_000):
    """Where the given sequence numbers were written: {file: [(seq, offset)]}."""
    want = set(seqs[:limit])
    found = {}
    if not want:
        return found
    names = sorted(os.listdir(logdir))
    live = [n for n in names if n.endswith(".log")]
    rotated = [n for n in names if not n.endswith(".log") and ".log." in n]
    for name in rotated + live:
        off = 0
        starts = {}
        try:
            f = open(os.path.join(logdir, name), "rb")
        except OSError:
            continue
        with f:
            for line in f:
                parts = line.split(b" ", 3)
                if len(parts) == 4:
                    stream, tag, content = parts[1], parts[2], parts[3]
                    # A record starts with its first fragment, which holds
                    # the seq; later fragments carry on from it.
                    start, seq = starts.pop(stream, (None, None))
                    if start is None:
                        start, seq = off, -1
                        if content.startswith(SEQ_TAG):
                            try:
                                seq = int(content[7:content.find(b",", 7)])
                            except ValueError:
                                pass
                    if tag == b"P":
                        starts[stream] = (start, seq)
                    elif seq in want:
                        found.setdefault(name, []).append((seq, start))
                off += len(line)
    return found


def list_dir(logdir):
    """'name inode size' for each file, in rotation order."""
    names = sorted(os.listdir(logdir))
    order = [n for n in names if not n.endswith(".log")] + [n for n in names if n.endswith(".log")]
    out = []
    for n in order:
        try:
            st = os.stat(os.path.join(logdir, n))
            first, last = seq_span(os.path.join(logdir, n))
            out.append(f"{n} ino {st.st_ino} size {st.st_size} seqs {first}..{last}")
        except OSError:
            pass
    return out


def seq_span(path):
    """The first and last sequence numbers that start a record in a CRI file."""
    def seqs(data):
        return [int(x) for x in re.findall(rb' [PF] \{"seq":(\d+),', data)]
    with open(path, "rb") as f:
        head = seqs(f.read(4096))
        f.seek(max(0, os.fstat(f.fileno()).st_size - 200_000))
        tail = seqs(f.read())
    return (head[0] if head else None), (tail[-1] if tail else None)


def save_listing(logdir):
    """Keeps the file list (names, inodes, sizes, first and last seq) next to
    the logs, which are removed after a failure unless --keep."""
    path = os.path.join(os.path.dirname(logdir), "logs.ls")
    with open(path, "w") as f:
        for line in list_dir(logdir):
            f.write(line + "\n")
    info(f"input files listed in {path}")


def describe_locations(seqs, logdir):
    """Lines saying which input file held the given seqs, and where."""
    out = []
    where = locate(seqs, logdir)
    for name, items in sorted(where.items()):
        size = os.path.getsize(os.path.join(logdir, name))
        items.sort()
        out.append(f"{name} (size {size}): {ranges([s for s, _ in items], 6)}; "
                   f"byte offsets {items[0][1]}..{items[-1][1]}")
    return out


# ---- configuration -------------------------------------------------------------------

def write_config(path, *, paths, checkpoint, output, port, state_dir, buffer_max=BUFFER_MAX,
                 scan_interval=SCAN_INTERVAL, rotate_wait=ROTATE_WAIT, max_open_files=16):
    q = json.dumps
    text = (
        "environment: development\n"
        f"log_level: {os.environ.get('SOAK_LOG_LEVEL', 'info')}\n"
        "inputs:\n"
        "  - type: tail\n"
        "    format: cri\n"
        f"    paths: [{', '.join(q(p) for p in paths)}]\n"
        f"    checkpoint: {q(checkpoint)}\n"
        f"    scan_interval: {scan_interval}\n"
        f"    rotate_wait: {rotate_wait}\n"
        f"    max_open_files: {max_open_files}\n"
        "    read_from: head\n"
        "outputs:\n"
        "  - type: file\n"
        f"    path: {q(output)}\n"
        "    fsync: false\n"
        "buffer:\n"
        f"  max_bytes: {buffer_max}\n"
        "  when_full: block\n"
        f"state_dir: {q(state_dir)}\n"
        "admin:\n"
        f'  listen: "127.0.0.1:{port}"\n'
    )
    with open(path, "w") as f:
        f.write(text)
    return path


def read_checkpoint(path):
    """[(dev, ino, offset, path)] from the checkpoint file, or None."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    if not lines or not lines[0].startswith("logveil-tail-checkpoint") or \
            not lines[-1].startswith("end "):
        return None
    # Format 1: dev ino fp fp_len offset path; format 2 adds tail fp, tail
    # length and flags before the path.
    fields = 6 if lines[0].endswith(" 1") else 9
    out = []
    for line in lines[1:-1]:
        parts = line.split(" ", fields - 1)
        if len(parts) == fields:
            out.append((int(parts[0]), int(parts[1]), int(parts[4]), parts[-1]))
    return out


# ---- the scenarios ----------------------------------------------------------------------

class Ctx:
    def __init__(self, args, checks):
        self.args = args
        self.c = checks
        self.scale = 10 if args.quick else 1
        self.lines = args.lines or FULL_LINES // self.scale
        self.slow_bytes = args.slow_bytes or FULL_SLOW_BYTES // self.scale
        self.root = tempfile.mkdtemp(prefix="logveil-soak-")
        self.rng = random.Random(args.seed)
        self.cleanup = []  # callables run after each scenario
        self.failed_dirs = []

    def scenario_dir(self, name):
        d = os.path.join(self.root, name)
        os.makedirs(os.path.join(d, "logs"))
        os.makedirs(os.path.join(d, "state"))
        return d


def live_paths(ctx, logs):
    """The kubelet layout's glob; the rotated names too with --match-rotated."""
    paths = [os.path.join(logs, "*.log")]
    if ctx.args.match_rotated:
        paths.append(os.path.join(logs, "0.log*"))
    return paths


def writer_shape(args):
    """The Shape matching the writer's options that shape records."""
    def opt(name, default):
        if name in args:
            return int(args[args.index(name) + 1])
        return default
    return cri_writer.Shape(opt("--long-every", 1000), opt("--long-bytes", 40000),
                            opt("--stderr-every", 0), opt("--msg-bytes", 60))


def size_note(name, res, wanted):
    """Says how much was written, and when the time cap cut it short."""
    if res.get("cut_short"):
        info(f"{name}: the writer hit its {WRITE_CAP[name]} s cap (slow or busy machine): "
             f"size used {res['written']} lines, {res['bytes'] / MIB:.0f} MB, not {wanted}")
    figure(f"{name}: size used {res['written']} lines, {res['bytes'] / MIB:.0f} MB "
           f"(writer {res['lines_per_s']} lines/s)")


def drain(ctx, dl, tracker, outpath, total, sidecar, timeout):
    """Feeds the output into the tracker until every seq below `total` has
    arrived or `timeout` passes; True when complete."""
    last = [time.monotonic(), -1]

    def complete():
        tracker.feed_file(outpath)
        if tracker.unique >= total or not sidecar.alive():
            return True
        if tracker.offset != last[1]:
            last[:] = [time.monotonic(), tracker.offset]
        # Nothing new for a while: nothing more is coming.
        return time.monotonic() - last[0] > STALL_GIVE_UP
    dl.wait_for(complete, timeout, 0.5)
    return tracker.unique >= total


def verify(ctx, name, tracker, total, logdir, exactly_once, sidecar, port_metrics):
    """The common checks on a finished run; returns (missing, duplicates)."""
    c = ctx.c
    missing = tracker.missing(total)
    dup_seqs = tracker.duplicated()
    ok = c.check(f"{name}: no sequence number missing ({total} written)", not missing,
                 ranges(missing))
    if not ok:
        for line in describe_locations(missing, logdir):
            info(f"missing ones were in {line}")
        save_listing(logdir)
    if exactly_once:
        ok = c.check(f"{name}: no sequence number delivered twice", tracker.dups == 0,
                     f"{tracker.dups} extra records; {ranges(dup_seqs)}")
        if not ok:
            for line in describe_locations(dup_seqs, logdir):
                info(f"duplicated ones were in {line}")
            save_listing(logdir)
    c.check(f"{name}: no torn or foreign lines in the output", tracker.ntorn == 0,
            f"{tracker.ntorn} lines, e.g. {tracker.torn[:2]}")
    c.check(f"{name}: no sequence numbers that were never written",
            not tracker.out_of_range, f"{tracker.out_of_range}")
    c.check(f"{name}: long (P/F) records reassembled whole ({tracker.long_checked} checked)",
            tracker.long_checked > 0 and not tracker.long_bad,
            f"(seq, expected msg length, got): {tracker.long_bad}")
    if port_metrics:
        info(f"metrics: {tail_metrics(port_metrics)}")
    return missing, dup_seqs


def finish_sidecar(ctx, name, sidecar, expect_clean=True):
    rc = sidecar.term(timeout=20)
    if expect_clean:
        ctx.c.check(f"{name}: logveil exits 0 on SIGTERM", rc == 0,
                    f"exit status {rc}; log tail: {sidecar.log_tail(8)}")
    return rc


def check_checkpoint_final(ctx, name, ckpt, live):
    """After a clean shutdown, the checkpoint covers the live file whole."""
    entries = read_checkpoint(ckpt)
    if not ctx.c.check(f"{name}: checkpoint file is valid after shutdown", entries is not None,
                       f"{ckpt}"):
        return
    try:
        st = os.stat(live)
    except OSError:
        return
    mine = [e for e in entries if e[1] == st.st_ino]
    ctx.c.check(f"{name}: checkpoint holds the live file at its end offset ({st.st_size})",
                len(mine) == 1 and mine[0][2] == st.st_size,
                f"entries for inode {st.st_ino}: {mine}; all: {entries[:6]}")


def rotation_run(ctx, dl, name, mode):
    """Scenario 1: rename (exactly once) or copytruncate (at least once)."""
    c = ctx.c
    d = ctx.scenario_dir(name)
    logs = os.path.join(d, "logs")
    live = os.path.join(logs, "0.log")
    out = os.path.join(d, "out.log")
    ckpt = os.path.join(d, "state", "tail.ckpt")
    port = harness.free_port()
    if mode == "rename":
        paths = [os.path.join(logs, "*.log"), os.path.join(logs, "0.log*")]
        wargs = ["--rotate-mode", "rename", "--reopen-lag", "20", "--flush", "line",
                 "--stderr-every", "100", "--interleave"]
    else:
        paths = [os.path.join(logs, "*.log")]
        wargs = ["--rotate-mode", "copytruncate", "--pause-before", "0.25",
                 "--pause-after", "0.25", "--flush", "batch", "--batch", "64"]
    wargs += ["--count", str(ctx.lines), "--rotate-bytes", str(ROTATE_BYTES)]
    wanted_size = f"{ctx.lines} lines"
    info(f"{name}: {ctx.lines} lines, rotate every {ROTATE_BYTES // MIB} MB by {mode}, "
         f"paths {paths}, work dir {d}")
    cfg = write_config(os.path.join(d, "logveil.yaml"), paths=paths, checkpoint=ckpt,
                       output=out, port=port, state_dir=os.path.join(d, "state"))
    sc = Sidecar(ctx.args.binary, cfg, os.path.join(d, "logveil.log"), port)
    ctx.cleanup.append(sc.kill9)
    sc.start()
    if not c.check(f"{name}: logveil starts and is ready", sc.wait_ready(dl),
                   f"log: {sc.log_tail()}"):
        return d
    rss = harness.RssSampler(sc.pid)
    rss.start()
    shape = writer_shape(wargs)
    t0 = time.monotonic()
    w = Writer(live, wargs, os.path.join(d, "writer.err"), os.path.join(d, "writer.progress"),
               WRITE_CAP[name])
    ctx.cleanup.append(w.kill)
    res = w.finish(dl.left(WRITE_CAP[name] + 15))
    if not c.check(f"{name}: writer finished", res is not None,
                   f"progress {w.progress()}, see {d}/writer.err"):
        rss.stop()
        return d
    total = res["written"]
    size_note(name, res, wanted_size)
    tracker = Tracker(total, shape)
    drained = drain(ctx, dl, tracker, out, total, sc, timeout=45)
    t_drained = time.monotonic() - t0
    # Late duplicates (a rotated file read again after rotate_wait) would
    # come now.
    time.sleep(min(dl.left(), ROTATE_WAIT + 4 * SCAN_INTERVAL + 0.5))
    m = metrics(port)
    tracker.feed_file(out)
    rss.stop()
    c.check(f"{name}: logveil stayed up", sc.alive(), f"log: {sc.log_tail()}")
    c.check(f"{name}: output complete within the bounded wait", drained,
            f"{tracker.unique} of {total} after {t_drained:.1f} s")
    finish_sidecar(ctx, name, sc)
    tracker.feed_file(out)
    missing, dup_seqs = verify(ctx, name, tracker, total, logs, mode == "rename", sc, m)
    if mode == "rename":
        check_checkpoint_final(ctx, name, ckpt, live)
    else:
        trunc = m.get("logveil_file_truncations_total")
        c.check(f"{name}: truncations noticed (logveil_file_truncations_total > 0)",
                trunc is not None and trunc > 0,
                f"{trunc} for {res['rotations']} truncations by the writer")
        figure(f"{name}: file truncations counted by logveil {trunc} of {res['rotations']}")
    peak = rss.peak()
    figure(f"{name}: {total} lines, {res['bytes'] / MIB:.0f} MB, {res['rotations']} rotations; "
           f"writer {res['lines_per_s']} lines/s; all delivered {t_drained:.1f} s after the "
           f"writer started ({total / t_drained:.0f} lines/s end to end)")
    figure(f"{name}: duplicates {tracker.dups} ({100.0 * tracker.dups / max(1, total):.3f}%), "
           f"missing {len(missing)}")
    figure(f"{name}: logveil peak RSS {mib(peak)} MiB "
           f"(buffer.max_bytes {BUFFER_MAX // MIB} MiB)")
    return d


def scenario_rename(ctx, dl):
    return rotation_run(ctx, dl, "rename", "rename")


def scenario_copytruncate(ctx, dl):
    return rotation_run(ctx, dl, "copytruncate", "copytruncate")


def scenario_crash(ctx, dl, mode="rename"):
    """Scenario 2: three SIGKILLs, restarts with the same checkpoint; the
    writer rotates by rename, or (crash_copytruncate) as logrotate's
    copytruncate does every 2 MB, the copy next to the file."""
    c = ctx.c
    name = "crash" if mode == "rename" else "crash_copytruncate"
    d = ctx.scenario_dir(name)
    logs = os.path.join(d, "logs")
    live = os.path.join(logs, "0.log")
    out = os.path.join(d, "out.log")
    ckpt = os.path.join(d, "state", "tail.ckpt")
    port = harness.free_port()
    paths = live_paths(ctx, logs)
    # Rate-limited so that the run lasts long enough for three kills with a
    # checkpoint interval between them.
    rate = min(60000, max(2000, ctx.lines // 15))
    if mode == "rename":
        wargs = ["--count", str(ctx.lines), "--rotate-bytes", str(ROTATE_BYTES),
                 "--rotate-mode", "rename", "--reopen-lag", "20", "--flush", "torn",
                 "--rate", str(rate)]
    else:
        wargs = ["--count", str(ctx.lines), "--rotate-bytes", str(2 * MIB),
                 "--rotate-mode", "copytruncate", "--flush", "torn", "--rate", str(rate)]
    wanted_size = f"{ctx.lines} lines"
    kills = 3
    fracs = sorted(ctx.rng.uniform(0.1, 0.9) for _ in range(kills))
    downs = [ctx.rng.uniform(0.2, 1.5) for _ in range(kills)]
    info(f"{name}: {ctx.lines} lines at {rate}/s, {mode} every "
         f"{(ROTATE_BYTES if mode == 'rename' else 2 * MIB) // MIB} MB, "
         f"torn writes, paths {paths}; kill -9 at {[round(f, 3) for f in fracs]} of the run, "
         f"down {[round(x, 2) for x in downs]} s (seed {ctx.args.seed}); work dir {d}")
    cfg = write_config(os.path.join(d, "logveil.yaml"), paths=paths, checkpoint=ckpt,
                       output=out, port=port, state_dir=os.path.join(d, "state"))
    sc = Sidecar(ctx.args.binary, cfg, os.path.join(d, "logveil.log"), port)
    ctx.cleanup.append(sc.kill9)
    sc.start()
    if not c.check(f"{name}: logveil starts and is ready", sc.wait_ready(dl),
                   f"log: {sc.log_tail()}"):
        return d
    rss = harness.RssSampler(sc.pid)
    rss.start()
    shape = writer_shape(wargs)
    t0 = time.monotonic()
    w = Writer(live, wargs, os.path.join(d, "writer.err"), os.path.join(d, "writer.progress"),
               WRITE_CAP[name])
    ctx.cleanup.append(w.kill)
    boundaries = []  # output size when each killed run was dead
    started = time.monotonic()
    restart_ok = True
    # A kill is due at its fraction of the lines, or of the time the run
    # should take, whichever comes first (a busy machine writes slower).
    expect = min(WRITE_CAP[name], ctx.lines / rate)
    for k, frac in enumerate(fracs):
        target = int(frac * ctx.lines)

        def due():
            return ((w.progress()[0] >= target or w.done()
                     or time.monotonic() - t0 >= frac * expect)
                    and time.monotonic() - started >= 2 * CHECKPOINT_INTERVAL)
        dl.wait_for(due, 60, 0.02)
        prog = w.progress()
        sc.kill9()
        size = os.path.getsize(out) if os.path.exists(out) else 0
        boundaries.append(size)
        cp = read_checkpoint(ckpt)
        with open(os.path.join(d, "kills.txt"), "a") as f:
            f.write(f"kill {k + 1}: writer {prog}; checkpoint {cp}\n")
            for line in list_dir(logs):
                f.write(f"  {line}\n")
        info(f"kill {k + 1}: at writer progress {prog[0]} lines / {prog[2]} rotations, "
             f"{time.monotonic() - t0:.1f} s; output {size} bytes; checkpoint "
             f"{[(e[1], e[2], os.path.basename(e[3])) for e in cp] if cp else cp}")
        time.sleep(min(dl.left(), downs[k]))
        sc.start()
        started = time.monotonic()
        if not sc.wait_ready(dl, timeout=10):
            restart_ok = False
    c.check(f"{name}: logveil restarts and is ready after each kill", restart_ok,
            f"log: {sc.log_tail()}")
    res = w.finish(dl.left(WRITE_CAP[name] + 15))
    if not c.check(f"{name}: writer finished", res is not None,
                   f"progress {w.progress()}, see {d}/writer.err"):
        rss.stop()
        return d
    total = res["written"]
    size_note(name, res, wanted_size)
    tracker = Tracker(total, shape)
    for k, b in enumerate(boundaries):
        tracker.segment = k
        tracker.feed_file(out, upto=b)
    tracker.segment = len(boundaries)
    drained = drain(ctx, dl, tracker, out, total, sc, timeout=45)
    t_drained = time.monotonic() - t0
    time.sleep(min(dl.left(), ROTATE_WAIT + 4 * SCAN_INTERVAL + 0.5))
    m = metrics(port)
    tracker.feed_file(out)
    rss.stop()
    c.check(f"{name}: logveil stayed up after the last restart", sc.alive(),
            f"log: {sc.log_tail()}")
    c.check(f"{name}: output complete within the bounded wait", drained,
            f"{tracker.unique} of {total} after {t_drained:.1f} s")
    finish_sidecar(ctx, name, sc)
    tracker.feed_file(out)
    missing, dup_seqs = verify(ctx, name, tracker, total, logs, False, sc, m)
    out_size = os.path.getsize(out) if os.path.exists(out) else 0
    avg = out_size / max(1, tracker.records)
    buf_records = BUFFER_MAX / max(1.0, avg)
    bound = int(kills * (buf_records + rate * (CHECKPOINT_INTERVAL + SCAN_INTERVAL)))
    why = (f"{kills} x (buffer {buf_records:.0f} records + "
           f"{CHECKPOINT_INTERVAL + SCAN_INTERVAL:.1f} s x {rate}/s)")
    per_run = {k: len(v) for k, v in sorted(tracker.seg_dups.items())}
    c.check(f"{name}: duplicates bounded (< {bound} = {why})",
            tracker.dups < bound, f"{tracker.dups} duplicates; by restart {per_run}")
    for k, seqs in sorted(tracker.seg_dups.items()):
        info(f"run {k + 1} repeated {ranges(seqs, 4)}")
    check_checkpoint_final(ctx, name, ckpt, live)
    figure(f"{name}: {kills} kill -9 + restart during {total} lines ({res['rotations']} "
           f"rotations): duplicates {tracker.dups} (bound {bound}; by restart {per_run}), "
           f"missing {len(missing)}, torn output lines {tracker.ntorn}")
    peak = rss.peak()
    figure(f"{name}: logveil peak RSS {mib(peak)} MiB; all delivered "
           f"{t_drained:.1f} s after the writer started")
    return d


def scenario_crash_copytruncate(ctx, dl):
    return scenario_crash(ctx, dl, "copytruncate")


class MetricsPoller(threading.Thread):
    """Polls /metrics, one request at a time, and keeps the last answer with
    `extra()` taken when it arrived; a blocking sink holds the loop, and so
    the answers, up."""

    def __init__(self, port, extra, interval=1.0):
        super().__init__(daemon=True)
        self.port = port
        self.extra = extra
        self.interval = interval
        self.last = None
        self.answers = 0
        self.latencies = []
        self.unanswered = 0
        self.failures = []  # seconds each unanswered request took
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            t0 = time.monotonic()
            m = metrics(self.port, timeout=SLOW_METRICS_TIMEOUT)
            if not m:
                self.failures.append(round(time.monotonic() - t0, 1))
            if m:
                self.last = (m, self.extra())
                self.latencies.append(m["_latency"])
                self.answers += 1
            else:
                self.unanswered += 1
            self.halt.wait(self.interval)

    def stop(self):
        self.halt.set()


class FifoReader(threading.Thread):
    """Reads the FIFO logveil writes to: `rate` records per second while
    slow, as fast as it can once `fast` is set."""

    def __init__(self, path, tracker, rate):
        super().__init__(daemon=True)
        self.path = path
        self.tracker = tracker
        self.rate = rate
        self.fast = threading.Event()
        self.halt = threading.Event()
        self.read_lines = 0
        self.error = None

    def run(self):
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError as e:
            self.error = e
            return
        t0 = time.monotonic()
        slow_lines = 0
        try:
            while not self.halt.is_set():
                if self.fast.is_set():
                    data = os.read(fd, 4 * MIB)
                else:
                    data = os.read(fd, 4096)
                if not data:
                    break
                n = data.count(b"\n")
                self.read_lines += n
                self.tracker.feed(data)
                if not self.fast.is_set():
                    slow_lines += n
                    due = t0 + slow_lines / self.rate
                    delay = due - time.monotonic()
                    if delay > 0:
                        self.fast.wait(delay)
        finally:
            os.close(fd)


def scenario_slow(ctx, dl):
    """Scenario 3a: a FIFO sink read at ~1 record per ms."""
    c = ctx.c
    name = "slow"
    d = ctx.scenario_dir(name)
    logs = os.path.join(d, "logs")
    live = os.path.join(logs, "0.log")
    fifo = os.path.join(d, "out.fifo")
    os.mkfifo(fifo)
    ckpt = os.path.join(d, "state", "tail.ckpt")
    port = harness.free_port()
    paths = live_paths(ctx, logs)
    wargs = ["--count", str(100 * ctx.lines), "--max-bytes", str(ctx.slow_bytes),
             "--rotate-bytes", str(20 * MIB), "--rotate-mode", "rename", "--flush", "batch"]
    wanted_size = f"{ctx.slow_bytes // MIB} MB"
    info(f"{name}: writer appends {ctx.slow_bytes // MIB} MB; output is a FIFO read at "
         f"1000 records/s; buffer.max_bytes {BUFFER_MAX // MIB} MiB; work dir {d}")
    cfg = write_config(os.path.join(d, "logveil.yaml"), paths=paths, checkpoint=ckpt,
                       output=fifo, port=port, state_dir=os.path.join(d, "state"))
    shape = writer_shape(wargs)
    # The count is not known before the writer ends; size the tracker for
    # the most it could write.
    tracker = Tracker(100 * ctx.lines, shape)
    reader = FifoReader(fifo, tracker, rate=1000)
    reader.start()
    ctx.cleanup.append(reader.halt.set)
    sc = Sidecar(ctx.args.binary, cfg, os.path.join(d, "logveil.log"), port)
    ctx.cleanup.append(sc.kill9)
    sc.start()
    if not c.check(f"{name}: logveil starts and is ready", sc.wait_ready(dl),
                   f"log: {sc.log_tail()}"):
        reader.fast.set()
        return d
    rss = harness.RssSampler(sc.pid)
    rss.start()
    t0 = time.monotonic()
    w = Writer(live, wargs, os.path.join(d, "writer.err"), os.path.join(d, "writer.progress"),
               WRITE_CAP[name])
    ctx.cleanup.append(w.kill)
    poller = MetricsPoller(port, lambda: reader.read_lines)
    poller.start()
    ctx.cleanup.append(poller.stop)
    res = w.finish(dl.left(WRITE_CAP[name] + 15))
    t_slow = time.monotonic() - t0
    # One answer that began after the writer ended (the loop may hold it up).
    n_before = poller.answers
    dl.wait_for(lambda: poller.answers > n_before + 1, SLOW_METRICS_TIMEOUT + 5, 0.2)
    poller.stop()
    peak = rss.peak()
    if not c.check(f"{name}: writer finished", res is not None, f"see {d}/writer.err"):
        reader.fast.set()
        rss.stop()
        return d
    total = res["written"]
    size_note(name, res, wanted_size)
    m_slow, delivered = poller.last if poller.last else ({}, reader.read_lines)
    latencies = poller.latencies
    unanswered = poller.unanswered
    bound = BUFFER_MAX + RSS_OVERHEAD
    harness.check_rss(c, ctx.args.binary, f"{name}: peak RSS under buffer.max_bytes + "
                      f"{RSS_OVERHEAD // MIB} MiB while the sink is slow",
                      peak is not None and peak < bound,
                      f"peak {mib(peak)} MiB, bound {bound / MIB:.0f} MiB")
    read_bytes = m_slow.get("logveil_input_bytes_total")
    # Backpressure: what was read is what was delivered plus at most the
    # buffer and a few read chunks, not the 200 MB on disk. (`delivered` is
    # the reader's count when that /metrics answer arrived.)
    per_record = res["bytes"] / max(1, total)
    allowed = delivered * per_record + BUFFER_MAX + 8 * MIB
    c.check(f"{name}: the input did not read ahead of the slow sink",
            read_bytes is not None and read_bytes < allowed,
            f"read {read_bytes} of {res['bytes']} bytes while {delivered} records were "
            f"delivered (allowed {allowed:.0f}); {len(latencies)} /metrics answers")
    paused = m_slow.get("logveil_input_paused_total")
    c.check(f"{name}: the input paused while the sink was slow (logveil_input_paused_total > 0)",
            bool(paused), f"paused_total {paused}")
    c.check(f"{name}: /metrics kept answering within 1 s during the slow phase",
            bool(latencies) and max(latencies) < 1.0 and not unanswered,
            f"max {max(latencies) if latencies else None} s, {unanswered} unanswered")
    info(f"during the slow phase: metrics {tail_metrics(m_slow)}")
    # Speed up and drain everything.
    reader.fast.set()
    t1 = time.monotonic()

    last = [time.monotonic(), -1]

    def complete():
        if tracker.unique >= total or not sc.alive():
            return True
        if reader.read_lines != last[1]:
            last[:] = [time.monotonic(), reader.read_lines]
        return time.monotonic() - last[0] > STALL_GIVE_UP
    dl.wait_for(complete, 60, 0.25)
    drained = tracker.unique >= total
    t_drain = time.monotonic() - t1
    m = metrics(port)
    c.check(f"{name}: everything delivered once the sink sped up", drained,
            f"{tracker.unique} of {total} after {t_drain:.1f} s")
    time.sleep(min(dl.left(), 1.0))
    m = metrics(port) or m
    rss.stop()
    rc = sc.term(timeout=20)
    reader.halt.set()
    reader.join(timeout=5)
    info(f"logveil exit status with a FIFO output: {rc}")
    tracker.n = total
    verify(ctx, name, tracker, total, logs, True, sc, m)
    figure(f"{name}: slow sink (1 record/ms), writer {res['bytes'] / MIB:.0f} MB "
           f"({total} lines) in {t_slow:.1f} s; logveil peak RSS {mib(peak)} MiB vs "
           f"buffer.max_bytes {BUFFER_MAX / MIB:.0f} MiB (bound {bound / MIB:.0f} MiB); "
           f"read {mib(read_bytes)} MB while {delivered} records went out")
    figure(f"{name}: logveil_input_paused_total {paused} during the slow phase; "
           f"/metrics answered in at most {max(latencies) if latencies else float('nan'):.2f} s "
           f"(median {sorted(latencies)[len(latencies) // 2] if latencies else float('nan'):.2f} s), "
           f"{unanswered} requests failed (after {poller.failures} s; the client gives up "
           f"at {SLOW_METRICS_TIMEOUT:.0f} s)")
    figure(f"{name}: drain after speed-up {t_drain:.1f} s "
           f"({total / max(t_drain, 0.001):.0f} lines/s)")
    return d


def scenario_stall(ctx, dl):
    """Scenario 3b: the output fails (EFBIG) until the limit is raised."""
    c = ctx.c
    name = "stall"
    d = ctx.scenario_dir(name)
    logs = os.path.join(d, "logs")
    live = os.path.join(logs, "0.log")
    out = os.path.join(d, "out.log")
    ckpt = os.path.join(d, "state", "tail.ckpt")
    port = harness.free_port()
    paths = live_paths(ctx, logs)
    fsize = 8 * MIB
    write_bytes = max(40 * MIB, ctx.slow_bytes // 4)
    wargs = ["--count", str(100 * ctx.lines), "--max-bytes", str(write_bytes),
             "--rotate-bytes", str(ROTATE_BYTES), "--rotate-mode", "rename",
             "--flush", "batch"]
    wanted_size = f"{write_bytes // MIB} MB"
    info(f"{name}: output capped at {fsize // MIB} MiB by RLIMIT_FSIZE (writes fail with "
         f"EFBIG) while the writer appends {write_bytes // MIB} MB; then the limit is raised; "
         f"work dir {d}")
    cfg = write_config(os.path.join(d, "logveil.yaml"), paths=paths, checkpoint=ckpt,
                       output=out, port=port, state_dir=os.path.join(d, "state"))

    def limit_output():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # inherited across exec
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, resource.RLIM_INFINITY))
    sc = Sidecar(ctx.args.binary, cfg, os.path.join(d, "logveil.log"), port, preexec=limit_output)
    ctx.cleanup.append(sc.kill9)
    sc.start()
    if not c.check(f"{name}: logveil starts and is ready", sc.wait_ready(dl),
                   f"log: {sc.log_tail()}"):
        return d
    rss = harness.RssSampler(sc.pid)
    rss.start()
    shape = writer_shape(wargs)
    w = Writer(live, wargs, os.path.join(d, "writer.err"), os.path.join(d, "writer.progress"),
               WRITE_CAP[name])
    ctx.cleanup.append(w.kill)
    res = w.finish(dl.left(WRITE_CAP[name] + 15))
    if not c.check(f"{name}: writer finished", res is not None, f"see {d}/writer.err"):
        rss.stop()
        return d
    total = res["written"]
    size_note(name, res, wanted_size)

    def paused():
        m = metrics(port, timeout=2)
        return m.get("logveil_input_paused_total", 0) > 0
    got_pause = dl.wait_for(paused, 20, 0.2)
    m1 = metrics(port)
    c.check(f"{name}: input paused when the buffer filled (logveil_input_paused_total > 0)",
            got_pause, f"metrics: {tail_metrics(m1)}")
    # Paused means not reading: the bytes read must not move.
    time.sleep(min(dl.left(), 2.0))
    m2 = metrics(port)
    r1, r2 = m1.get("logveil_input_bytes_total"), m2.get("logveil_input_bytes_total")
    c.check(f"{name}: nothing read while paused", r1 is not None and r1 == r2,
            f"input bytes {r1} then {r2} two seconds later; buffer_bytes "
            f"{m2.get('logveil_buffer_bytes')}")
    peak = rss.peak()
    bound = BUFFER_MAX + RSS_OVERHEAD
    harness.check_rss(c, ctx.args.binary, f"{name}: peak RSS under buffer.max_bytes + "
                      f"{RSS_OVERHEAD // MIB} MiB while the output fails",
                      peak is not None and peak < bound,
                      f"peak {mib(peak)} MiB, bound {bound / MIB:.0f} MiB")
    c.check(f"{name}: the input did not read everything while paused",
            r2 is not None and r2 < res["bytes"],
            f"read {r2} of {res['bytes']} bytes")
    # Let the output write again.
    pid = sc.pid()
    t1 = time.monotonic()
    if pid:
        resource.prlimit(pid, resource.RLIMIT_FSIZE,
                         (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    tracker = Tracker(total, shape)
    drained = drain(ctx, dl, tracker, out, total, sc, timeout=45)
    t_drain = time.monotonic() - t1
    time.sleep(min(dl.left(), 1.0))
    m = metrics(port)
    tracker.feed_file(out)
    rss.stop()
    c.check(f"{name}: resumed and delivered everything after the output recovered", drained,
            f"{tracker.unique} of {total} after {t_drain:.1f} s; metrics {tail_metrics(m)}")
    finish_sidecar(ctx, name, sc)
    tracker.feed_file(out)
    verify(ctx, name, tracker, total, logs, True, sc, m)
    check_checkpoint_final(ctx, name, ckpt, live)
    figure(f"{name}: failing output for {write_bytes // MIB} MB written: "
           f"logveil_input_paused_total {m1.get('logveil_input_paused_total')}, "
           f"buffer_bytes {mib(m2.get('logveil_buffer_bytes'))} MiB, "
           f"peak RSS {mib(peak)} MiB (bound {bound / MIB:.0f} MiB); "
           f"read {mib(r2)} of {res['bytes'] / MIB:.0f} MB while paused; "
           f"drained {total} lines {t_drain:.1f} s after the output recovered")
    return d


SCENARIOS = [
    ("rename", scenario_rename),
    ("copytruncate", scenario_copytruncate),
    ("crash", scenario_crash),
    ("crash_copytruncate", scenario_crash_copytruncate),
    ("slow", scenario_slow),
    ("stall", scenario_stall),
]


def tail_available(binary, tmp):
    """None when the build has a tail input, else why not."""
    d = os.path.join(tmp, "probe")
    os.makedirs(os.path.join(d, "logs"))
    cfg = write_config(os.path.join(d, "c.yaml"), paths=[os.path.join(d, "logs", "*.log")],
                       checkpoint=os.path.join(d, "ckpt"), output=os.path.join(d, "out"),
                       port=harness.free_port(), state_dir=d)
    try:
        p = subprocess.run([binary, "run", "--config", cfg], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=1.5)
        text = (p.stdout + p.stderr).decode(errors="replace")
        return f"exit status {p.returncode}: {text.strip()[:300]}"
    except subprocess.TimeoutExpired:
        return None  # still running: it started
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = harness.parser(__doc__)
    ap.add_argument("--quick", action="store_true", help="sizes divided by ten")
    ap.add_argument("--lines", type=int, default=0, help="lines per run (default 1,000,000)")
    ap.add_argument("--slow-bytes", type=int, default=0, help="bytes for the slow sink run")
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    ap.add_argument("--seed", type=int, default=None, help="for the kill points")
    ap.add_argument("--keep", action="store_true", help="keep every work file")
    ap.add_argument("--match-rotated", action="store_true",
                    help="crash, slow, stall: add dir/0.log* to the paths, so the globs "
                         "name the rotated files too (tells discovery bugs from others)")
    args = ap.parse_args()
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    c = harness.Checks(ok_detail=True)
    ctx = Ctx(args, c)
    t_start = time.monotonic()
    print(f"sizes: {ctx.lines} lines per run, {ctx.slow_bytes // MIB} MB for the slow sink"
          f"{' (--quick)' if args.quick else ''}; seed {args.seed}; work dir {ctx.root}",
          flush=True)
    why = tail_available(args.binary, ctx.root)
    if why is not None:
        c.check("the build has a working tail input", False, why)
        shutil.rmtree(ctx.root, ignore_errors=True)
        return c.report()
    only = [s for s in args.only.split(",") if s]
    for name, fn in SCENARIOS:
        if only and name not in only:
            continue
        print(f"== {name}", flush=True)
        before = c.failed
        t0 = time.monotonic()
        d = None
        try:
            left = SCRIPT_LIMIT - (time.monotonic() - t_start)
            d = fn(ctx, Deadline(max(10.0, min(SCENARIO_LIMIT, left))))
        except Exception:
            c.check(f"{name}: ran without an exception", False, traceback.format_exc())
        finally:
            for fn_clean in reversed(ctx.cleanup):
                try:
                    fn_clean()
                except Exception:
                    pass
            ctx.cleanup = []
        elapsed = time.monotonic() - t0
        c.check(f"{name}: finished within {SCENARIO_LIMIT:.0f} s", elapsed < SCENARIO_LIMIT,
                f"{elapsed:.1f} s")
        figure(f"{name}: scenario took {elapsed:.1f} s")
        d = d or os.path.join(ctx.root, name)
        if c.failed > before or args.keep:
            if not args.keep:
                for f in ("out.log", "out.fifo"):
                    p = os.path.join(d, f)
                    if os.path.exists(p):
                        os.unlink(p)
                shutil.rmtree(os.path.join(d, "logs"), ignore_errors=True)
            ctx.failed_dirs.append(d)
            print(f"     kept {d} (logveil.log, config, checkpoint)", flush=True)
        else:
            shutil.rmtree(d, ignore_errors=True)
    total = time.monotonic() - t_start
    c.check(f"the whole soak finished within {SCRIPT_LIMIT:.0f} s", total < SCRIPT_LIMIT,
            f"{total:.1f} s")
    figure(f"whole soak took {total:.1f} s")
    if not ctx.failed_dirs:
        shutil.rmtree(ctx.root, ignore_errors=True)
    return c.report()


if __name__ == "__main__":
    sys.exit(main())
