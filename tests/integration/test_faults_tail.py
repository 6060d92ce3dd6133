#!/usr/bin/env python3
"""Fault injection for the tail input (issue 14, items 2, 5, 7 and 10): the
real binary follows files that a kubelet in miniature (cri_writer.py)
writes, rotates, compresses, truncates and deletes while logveil is down or
busy, and every scenario is judged by sequence numbers:

- missing records are exactly the ones counted in
  logveil_records_dropped_total{reason="deleted_unread"} (zero elsewhere),
  or under the reason a scenario is about;
- duplicates are reported, and bounded (zero here);
- the checkpoint is never ahead of delivery: every record in a followed
  file below its checkpointed offset was delivered, checked on the file's
  own bytes (decompressed when it is gzipped) whenever logveil stops and
  while the output is blocked.

Families:

- rotations while down: three kubelet rotations while logveil is stopped,
  with the checkpointed file's unread tail still to read, with and without
  compression, and with and without inode reuse. Reuse runs on a small ext4
  image on a loop device, where a freed inode is handed out again at once;
  the scenario checks that the reuse it wants really happened. Without a
  loop device those variants say so loudly and the suite exits 77 (CTest
  "skipped") once everything else has passed. One variant ends its first
  run with SIGKILL while the generations it read are still held open: the
  periodic checkpoint must hold all that is needed.
- copytruncate while logveil is behind (output stalled, buffer full): the
  unread rest is only in the copy; twice while the file is closed (evicted
  under max_open_files); while down after a checkpoint left at offset 0 of
  an empty file by an earlier one.
- constant banners: Docker json-file logs whose first line is the same long
  banner in every file; a deleted file's inode reused by another
  container's log; a copytruncate while down followed by regrowth past the
  old size (the copy holds the unread rest).
- a clock step: the previous run's clock was an hour fast (its checkpoint
  and files dated an hour ahead with os.utime), then two rotations while
  down.
- files deleted unread: files waiting behind max_open_files, an evicted
  file's unterminated last line, an evicted file that grew while closed.
- losses counted (logveil_records_dropped_total): a truncation while
  logveil is behind with no copy (truncated_unread, line for line); a
  followed file gone when logveil starts again (deleted_unread, one record:
  the live file, written to while down; a rotated file with bytes unread;
  nothing for a rotated file read to its end); a damaged .gz generation
  (gz_corrupt); a damaged checkpoint (everything read again, nothing lost).

Usage: test_faults_tail.py --binary PATH --source REPO
"""
import collections
import gzip
import json
import os
import subprocess
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cri_writer  # noqa: E402
import harness  # noqa: E402

STEP = 20.0  # seconds: the longest any one wait may take
SKIP = 77  # CTest SKIP_RETURN_CODE: a variant could not run here
SKIPPED = []  # scenarios that could not run what they are about, and why
HOUR = 3600


# ---- the sidecar ------------------------------------------------------------------------


class FifoReader(threading.Thread):
    """Holds a named pipe open for reading, and reads it only while `go` is
    set: the output stalls, without failing, while it is clear."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.go = threading.Event()
        self.halt = threading.Event()
        self.data = bytearray()
        self.lock = threading.Lock()

    def run(self):
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            while not self.halt.is_set():
                if not self.go.wait(0.05):
                    continue
                try:
                    chunk = os.read(fd, 1 << 20)
                except BlockingIOError:
                    chunk = None
                if chunk:
                    with self.lock:
                        self.data += chunk
                else:
                    time.sleep(0.01)
        finally:
            os.close(fd)

    def text(self):
        with self.lock:
            return bytes(self.data).decode(errors="replace")


class Sidecar:
    """One `logveil run` with one tail input, a file (or named pipe) output
    and the admin server; the checkpoint is at state/tail.ckpt."""

    running = []  # killed at the end, whatever happened

    def __init__(self, args, tmp, paths, fmt="cri", max_open_files=None, fifo=False, extra=(),
                 rotate_wait=0.3):
        self.args = args
        self.err = os.path.join(tmp, "stderr.log")
        self.port = harness.free_port()
        self.ckpt = os.path.join(tmp, "state", "tail.ckpt")
        self.fmt = fmt
        self.out = os.path.join(tmp, "out.fifo" if fifo else "out.jsonl")
        self.reader = None
        if fifo:
            os.mkfifo(self.out)
            self.reader = FifoReader(self.out)
            self.reader.start()
        lines = [
            "environment: development",
            "log_level: debug",
            f"state_dir: {json.dumps(os.path.join(tmp, 'state'))}",
            "inputs:",
            "  - type: tail",
            f"    format: {fmt}",
            f"    paths: {json.dumps(list(paths))}",
            f"    checkpoint: {json.dumps(self.ckpt)}",
            "    scan_interval: 0.1",
            f"    rotate_wait: {rotate_wait}",
        ]
        if max_open_files:
            lines.append(f"    max_open_files: {max_open_files}")
        lines += ["outputs:", "  - type: file", f"    path: {json.dumps(self.out)}",
                  "admin:", f'  listen: "127.0.0.1:{self.port}"'] + list(extra)
        self.cfg = os.path.join(tmp, "logveil.yaml")
        with open(self.cfg, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = None

    def start(self):
        with open(self.err, "ab") as err:
            self.proc = subprocess.Popen([self.args.binary, "run", "--config", self.cfg],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=err)
        Sidecar.running.append(self.proc)
        self.poll(lambda: (os.path.exists(self.ckpt) and self.metrics() != "", None))

    def stop(self):
        """SIGTERM; the exit status (None when it had to be killed)."""
        return harness.terminate(self.proc, STEP)

    def close(self):
        self.stop()
        if self.reader:
            self.reader.halt.set()
            self.reader.join(timeout=2)

    def poll(self, fn, timeout=STEP):
        """harness.poll, giving up early if this sidecar exits."""
        return harness.poll(fn, self.proc, timeout)

    def metrics(self):
        return harness.metrics_text(self.port)

    def dropped(self, reason):
        """logveil_records_dropped_total{reason} over every level; None
        while /metrics does not answer."""
        text = self.metrics()
        if not text:
            return None
        total = 0.0
        for line in text.splitlines():
            if line.startswith("logveil_records_dropped_total{") and \
                    f'reason="{reason}"' in line:
                total += float(line.rsplit(" ", 1)[1])
        return int(total)

    def output_text(self):
        if self.reader:
            return self.reader.text()
        try:
            with open(self.out, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def delivered(self):
        """Counter of the sequence numbers delivered so far (banners and
        other records without one left out)."""
        text = self.output_text()
        got = collections.Counter()
        for line in text[:text.rfind("\n") + 1].splitlines():
            rec = json.loads(line)
            if "seq" in rec:
                got[rec["seq"]] += 1
        return got

    def wait_delivered(self, want, timeout=STEP):
        """Waits until every sequence number in `want` has arrived."""
        want = set(want)
        _, got = self.poll(lambda: (want <= set(g := self.delivered()), g), timeout)
        return got if got is not None else collections.Counter()

    def log(self):
        try:
            with open(self.err, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_log(self, text, timeout=STEP):
        ok, _ = self.poll(lambda: (text in self.log(), None), timeout)
        return ok


def writer(path, start_seq, fmt="cri", compress=False, banner=0, max_files=0):
    argv = ["--path", path, "--start-seq", str(start_seq), "--count", "100000000",
            "--long-every", "0", "--format", fmt, "--banner", str(banner),
            "--max-files", str(max_files)]
    return cri_writer.Writer(cri_writer.build_parser().parse_args(
        argv + (["--compress"] if compress else [])))


# ---- the oracles --------------------------------------------------------------------------


def line_seq(line, fmt):
    """The sequence number a log file's line carries, or None."""
    try:
        if fmt == "docker":
            content = json.loads(line)["log"]
        else:
            content = line.split(" ", 3)[3]
        return json.loads(content).get("seq")
    except (ValueError, IndexError, KeyError, AttributeError):
        return None


def read_checkpoint(path):
    """The followed entries of a checkpoint (format 1 or 2) as
    (dev, ino, offset, path, tail_fp, tail_len); entries of generations
    known as done are left out: they are not reading positions. Format 1
    has no tail fingerprint (tail_len 0)."""
    with open(path) as f:
        lines = f.read().splitlines()
    version = int(lines[0].split()[1])
    out = []
    for line in lines[1:-1]:
        tail_fp, tail_len = 0, 0
        if version == 1:
            dev, ino, _, _, off, name = line.split(" ", 5)
        else:
            dev, ino, _, _, off, tail_fp, tail_len, flags, name = line.split(" ", 8)
            if "d" in flags:
                continue
        out.append((int(dev), int(ino), int(off), name, int(tail_fp, 16), int(tail_len)))
    return out


def fnv1a64(data):
    """The checkpoint's fingerprint (FNV-1a, 64 bits), computed here on its
    own from the published constants."""
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def file_bytes(path):
    with open(path, "rb") as f:
        data = f.read()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def check_checkpoint_behind(c, name, sc, delivered):
    """Every record below a checkpointed offset was delivered (the file is
    looked up by the path and inode the entry names)."""
    ahead, checked, earlier = [], 0, 0
    for dev, ino, off, path, tail_fp, tail_len in read_checkpoint(sc.ckpt):
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue
        if (st.st_dev, st.st_ino) != (dev, ino) or off == 0:
            continue
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        try:
            data = file_bytes(path)
        except (EOFError, zlib.error, gzip.BadGzipFile):
            continue  # a damaged compressed file (a scenario made it so)
        if len(data) < off or (tail_len and not gz and
                               fnv1a64(data[off - tail_len:off]) != tail_fp):
            # The entry names an earlier generation of this inode (written
            # before a truncation): its content is no longer at this path,
            # and a restart would see the truncation, not resume here.
            earlier += 1
            continue
        text = data[:off].decode(errors="replace")
        for line in text[:text.rfind("\n") + 1].splitlines():
            s = line_seq(line, sc.fmt)
            checked += s is not None
            if s is not None and not delivered.get(s):
                ahead.append(s)
    c.check(f"{name}: checkpoint not ahead of delivery ({checked} records below it"
            f"{f', {earlier} entries of an earlier generation' if earlier else ''})",
            not ahead, f"{len(ahead)} undelivered below the checkpoint: {ahead[:10]}")


LOSS_REASONS = ("deleted_unread", "truncated_unread", "gz_corrupt")


def account(c, name, sc, want, lost=(), dup_bound=0, reason="deleted_unread"):
    """Judges one scenario by sequence number: what is missing is exactly
    `lost`, counted under `reason` (and nothing under the other reasons a
    tail input counts); duplicates reported and bounded."""
    want, lost = set(want), set(lost)
    got = sc.wait_delivered(want - lost)
    time.sleep(0.5)  # room for duplicates to show up
    got = sc.delivered()
    missing = sorted(want - set(got))
    dups = sum(k - 1 for k in got.values() if k > 1)
    extra = sorted(set(got) - want)
    counted = sc.dropped(reason)
    others = {r: sc.dropped(r) for r in LOSS_REASONS if r != reason}
    c.check(f"{name}: missing records are exactly the ones lost ({len(missing)} missing, "
            f"{len(lost)} lost)", set(missing) == lost and not extra,
            f"missing {missing[:10]} ({len(missing)}), expected lost {sorted(lost)[:10]} "
            f"({len(lost)}), unexpected {extra[:10]}")
    c.check(f"{name}: {reason} counts them ({counted})", counted == len(lost),
            f"counted {counted}, lost {len(lost)}")
    c.check(f"{name}: no loss counted under another reason", not any(others.values()),
            str(others))
    c.check(f"{name}: duplicates {dups} (bound {dup_bound})", dups <= dup_bound,
            f"duplicated {sorted(s for s, k in got.items() if k > 1)[:10]}")
    return got


def stop_and_check(c, name, sc):
    rc = sc.stop()
    c.check(f"{name}: exits 0 on SIGTERM", rc == 0, f"exit status {rc}")
    check_checkpoint_behind(c, name, sc, sc.delivered())


def settle(sc, timeout=STEP):
    """Waits for a checkpoint written after every delivered record was
    acknowledged (logveil_checkpoint_lag_bytes 0, then a housekeeping tick)."""
    sc.poll(lambda: (harness.sample(sc.metrics(), "logveil_checkpoint_lag_bytes") == 0, None),
            timeout)
    time.sleep(1.2)


def scratch_fs(name, tmp, kind):
    """A mounted file system of `kind` for the logs ("ext4": inode reuse at
    once; "tmpfs": never), and the directory to write them in. Without
    ext4 the scenario cannot do what it is about: it says so loudly and
    the suite ends "skipped"; without tmpfs it runs in `tmp` (where reuse
    may or may not happen)."""
    fs = harness.ScratchFs(tmp, kind).__enter__()
    if fs.mnt is not None:
        return fs, os.path.join(fs.mnt, "logs")
    if kind == "ext4":
        print(f"SKIP {name}: no ext4 loop image ({fs.reason}); inode reuse NOT tested here",
              flush=True)
        SKIPPED.append(name)
        return fs, None
    print(f"note {name}: no tmpfs ({fs.reason}); running in {tmp}", flush=True)
    return fs, os.path.join(tmp, "logs")


def on_scratch(kind, body):
    """Runs body(logs) on a scratch file system of `kind`, unmounted after."""
    def run(args, c, tmp, name, **kw):
        fs, logs = scratch_fs(name, tmp, kind)
        try:
            if logs is not None:
                body(args, c, tmp, name, logs, **kw)
        finally:
            fs.__exit__(None, None, None)
    return run


# ---- rotations while down (item 2) ---------------------------------------------------------


def rotations_body(args, c, tmp, name, logs, compress_up, compress_down, done_gens,
                   max_files=0, reuse=None, kill=False):
    """`done_gens` rotations while logveil runs (read to their end), then it
    stops; the checkpointed file gets 100 more lines and three rotations
    follow while it is down. With `kill` it is a SIGKILL, while the rotated
    generations, read to their end, are still held (a long rotate_wait):
    the periodic checkpoint must say enough. `reuse` names the inode reuse
    to check for."""
    os.makedirs(logs)
    live = os.path.join(logs, "0.log")
    w = writer(live, 0, compress=compress_up, max_files=max_files)
    sc = Sidecar(args, tmp, [os.path.join(logs, "*.log")], rotate_wait=30 if kill else 0.3)
    w.write(500)
    sc.start()
    sc.wait_delivered(range(500))
    for k in range(done_gens):  # generations read to their end while running
        w.rotate_now()
        w.write(500)
        sc.wait_delivered(range(w.seq))
        if not kill:
            c.check(f"{name}: rotated generation {k} done with",
                    sc.wait_log(f"done with {w.rotated[-1]}"))
    settle(sc)
    if kill:
        sc.proc.kill()
        sc.proc.wait()
        check_checkpoint_behind(c, name + " (killed)", sc, sc.delivered())
    else:
        stop_and_check(c, name, sc)
    ckpt_ino = os.stat(live).st_ino
    done_inos = {os.stat(p).st_ino for p in w.rotated if os.path.exists(p)}
    # Down: the checkpointed file's tail, then three rotations.
    w.a.compress = compress_down
    w.write(100)
    for _ in range(3):
        w.rotate_now()
        w.write(1000)
    listing = sorted(os.listdir(logs))
    inos = {n: os.stat(os.path.join(logs, n)).st_ino for n in listing}
    if compress_down:
        c.check(f"{name}: a generation exists only compressed while down",
                sum(n.endswith(".gz") for n in listing) >= 3, str(listing))
    if reuse == "done":
        c.check(f"{name}: a new file took the inode of a generation done with",
                bool(done_inos & set(inos.values())), f"{inos}, done with {done_inos}")
    if reuse == "both":
        c.check(f"{name}: a new file took the checkpointed file's inode",
                ckpt_ino in inos.values(), f"{inos}, checkpointed {ckpt_ino}")
        c.check(f"{name}: a compressed file took the inode of a generation done with",
                any(i in done_inos for n, i in inos.items() if n.endswith(".gz")),
                f"{inos}, done with {done_inos}")
    sc.start()
    w.write(100)
    sc.wait_delivered(range(w.seq))
    w.rotate_now()  # and life goes on: what is known must stay known
    w.write(100)
    end = w.seq
    w.close()
    account(c, name, sc, range(end))
    stop_and_check(c, name, sc)


rotations_on_tmpfs = on_scratch("tmpfs", rotations_body)
rotations_on_ext4 = on_scratch("ext4", rotations_body)


def rotations_down_plain(args, c, tmp):
    rotations_on_tmpfs(args, c, tmp, "rotations down, killed", compress_up=False,
                       compress_down=False, done_gens=2, kill=True)


def rotations_down_gz(args, c, tmp):
    rotations_on_tmpfs(args, c, tmp, "rotations down, gzipped", compress_up=True,
                       compress_down=True, done_gens=2)


def rotations_down_plain_reuse(args, c, tmp):
    """The kubelet keeps 4 files: the generation read before the stop is
    deleted while down and a new live file takes its inode."""
    rotations_on_ext4(args, c, tmp, "rotations down, inode reuse", compress_up=False,
                      compress_down=False, done_gens=1, max_files=4, reuse="done")


def rotations_down_gz_reuse(args, c, tmp):
    """Compression turned on while down, with two generations read before
    the stop: the first one's inode goes to the second one's .gz, and the
    checkpointed file's inode to a later generation."""
    rotations_on_ext4(args, c, tmp, "rotations down, gzipped, inode reuse", compress_up=False,
                      compress_down=True, done_gens=2, reuse="both")


# ---- constant banners (item 5) -------------------------------------------------------------

BANNER = 600  # bytes: longer than the first-bytes fingerprint


def banner_reused_inode(args, c, tmp):
    name = "banner, reused inode"
    fs, logs = scratch_fs(name, tmp, "ext4")
    if logs is None:
        return
    try:
        a_dir, b_dir = os.path.join(logs, "a"), os.path.join(logs, "b")
        os.makedirs(a_dir)
        os.makedirs(b_dir)
        a = os.path.join(a_dir, "0.log")
        wa = writer(a, 0, fmt="docker", banner=BANNER)
        wa.write(500)
        wa.close()
        sc = Sidecar(args, tmp, [os.path.join(logs, "*", "*.log")], fmt="docker")
        sc.start()
        sc.wait_delivered(range(500))
        settle(sc)
        stop_and_check(c, name, sc)
        ino = os.stat(a).st_ino
        # Down: container a is removed, container b starts and logs more
        # than a had; its log takes a's inode.
        os.unlink(a)
        b = os.path.join(b_dir, "0.log")
        wb = writer(b, 10000, fmt="docker", banner=BANNER)
        wb.write(700)
        wb.close()
        c.check(f"{name}: b's log took a's inode", os.stat(b).st_ino == ino,
                f"{os.stat(b).st_ino} != {ino}")
        sc.start()
        account(c, name, sc, list(range(500)) + list(range(10000, 10700)))
        stop_and_check(c, name, sc)
    finally:
        fs.__exit__(None, None, None)


def banner_copytruncate(args, c, tmp):
    name = "banner, copytruncate while down"
    logs = os.path.join(tmp, "logs")
    os.makedirs(logs)
    p = os.path.join(logs, "c.log")
    w = writer(p, 0, fmt="docker", banner=BANNER)
    w.a.rotate_mode = "copytruncate"
    w.write(500)
    sc = Sidecar(args, tmp, [os.path.join(logs, "*.log")], fmt="docker")
    sc.start()
    sc.wait_delivered(range(500))
    settle(sc)
    stop_and_check(c, name, sc)
    old_size = os.path.getsize(p)
    # Down: 100 more lines, copied to c.log.<ts> and truncated; the
    # application writes its banner again and grows past the old size.
    w.write(100)
    w.rotate_now()
    w.write(700)
    w.close()
    c.check(f"{name}: regrown past the old size", os.path.getsize(p) > old_size)
    sc.start()
    account(c, name, sc, range(1300))
    stop_and_check(c, name, sc)


def copytruncate_behind(args, c, tmp):
    """copytruncate while logveil is behind (its output stalled, its small
    buffer full): what it had not read is only in the copy, and is read
    from there, from the acknowledged offset."""
    name = "copytruncate while behind"
    logs = os.path.join(tmp, "logs")
    os.makedirs(logs)
    p = os.path.join(logs, "c.log")
    write_seqs(p, range(0, 1000))
    sc = Sidecar(args, tmp, [os.path.join(logs, "*.log")], fifo=True,
                 extra=["buffer:", "  max_bytes: 64KiB", "limits:", "  max_line: 4096"])
    try:
        sc.reader.go.set()
        sc.start()
        sc.wait_delivered(range(1000))
        settle(sc)
        sc.reader.go.clear()
        write_seqs(p, range(1000, 21000))
        time.sleep(1.0)  # logveil reads until its buffer is full, and pauses
        copytruncate(p, p + ".1")
        write_seqs(p, range(30000, 30100))
        c.check(f"{name}: the truncation is seen", sc.wait_log("was truncated"))
        check_checkpoint_behind(c, name + " (output stalled)", sc, sc.delivered())
        sc.reader.go.set()
        # What was in flight at the truncation arrives twice: bounded by
        # one read (256 KiB), the buffer and the pipe (64 KiB each), under
        # 5000 of these lines.
        account(c, name, sc, list(range(21000)) + list(range(30000, 30100)), dup_bound=5000)
        stop_and_check(c, name, sc)
    finally:
        sc.close()


def copytruncate_dateext_down(args, c, tmp, compress=False):
    """logrotate's copytruncate with dateext (c.log-20261206, then gzipped
    when `compress`) while logveil is down after a kill -9: the lines it
    had not read are only in the copy, and are read from there."""
    name = "copytruncate dateext%s while down" % (" + gz" if compress else "")
    logs = os.path.join(tmp, "logs")
    os.makedirs(logs)
    p = os.path.join(logs, "c.log")
    write_seqs(p, range(0, 1000))
    sc = Sidecar(args, tmp, [os.path.join(logs, "*.log")])
    try:
        sc.start()
        sc.wait_delivered(range(1000))
        settle(sc)
        sc.proc.kill()
        sc.proc.wait()
        write_seqs(p, range(1000, 6000))
        copy = p + "-20261206"
        copytruncate(p, copy)
        if compress:  # logrotate's compress: the copy gzipped, the plain copy removed
            with open(copy, "rb") as src, gzip.open(copy + ".gz", "wb") as dst:
                dst.write(src.read())
            os.unlink(copy)
        write_seqs(p, range(30000, 30100))
        sc.start()
        account(c, name, sc, list(range(6000)) + list(range(30000, 30100)), dup_bound=1000)
        stop_and_check(c, name, sc)
    finally:
        sc.close()


def copytruncate_dateext_down_gz(args, c, tmp):
    copytruncate_dateext_down(args, c, tmp, compress=True)


def copytruncate_no_copy(args, c, tmp):
    """A truncation while logveil is behind (output stalled, buffer full),
    with no copy anywhere it looks: what it had not read is lost, and
    counted, line for line, as truncated_unread."""
    name = "truncated while behind, no copy"
    logs = os.path.join(tmp, "logs")
    os.makedirs(logs)
    p = os.path.join(logs, "c.log")
    write_seqs(p, range(0, 1000))
    sc = Sidecar(args, tmp, [os.path.join(logs, "*.log")], fifo=True,
                 extra=["buffer:", "  max_bytes: 64KiB", "limits:", "  max_line: 4096"])
    try:
        sc.reader.go.set()
        sc.start()
        sc.wait_delivered(range(1000))
        settle(sc)
        sc.reader.go.clear()
        write_seqs(p, range(1000, 21000))
        time.sleep(1.0)  # logveil reads until its buffer is full, and pauses
        os.truncate(p, 0)
        write_seqs(p, range(30000, 30100))
        c.check(f"{name}: the truncation is seen", sc.wait_log("was truncated"))
        c.check(f"{name}: the loss is logged", sc.wait_log("truncated_unread"))
        sc.reader.go.set()
        sc.wait_delivered(range(30000, 30100))
        time.sleep(0.5)
        got = sc.delivered()
        want = set(range(21000)) | set(range(30000, 30100))
        missing = sorted(want - set(got))
        counted = sc.dropped("truncated_unread")
        figure = f"{len(missing)} missing ({missing[:1]}..{missing[-1:]}), {counted} counted"
        print(f"FIGURE: {name}: {figure}", flush=True)
        c.check(f"{name}: something was lost (the reader was behind): {figure}",
                len(missing) > 1000)
        c.check(f"{name}: the missing records are the end of what was written before the "
                f"truncation", missing == list(range(21000 - len(missing), 21000)), figure)
        c.check(f"{name}: truncated_unread counts every one of them: {figure}",
                counted == len(missing))
        stop_and_check(c, name, sc)
    finally:
        sc.close()


def copytruncate_while_closed(args, c, tmp):
    """max_open_files 1: a file read to its end is evicted for another,
    then copytruncated twice while closed (two copies, the second holding
    lines nothing read) and written to again. When it is opened again,
    what it had unread continues in the first copy, from the acknowledged
    offset, and the second copy is read whole: nothing is lost."""
    name = "copytruncate twice while closed"
    logs = os.path.join(tmp, "logs")
    os.makedirs(logs)
    p, other = os.path.join(logs, "c.log"), os.path.join(logs, "e.log")
    write_seqs(p, range(0, 1000))
    sc = Sidecar(args, tmp, [os.path.join(logs, "*.log")], max_open_files=1, fifo=True)
    try:
        sc.reader.go.set()
        sc.start()
        sc.wait_delivered(range(1000))
        settle(sc)
        sc.reader.go.clear()  # e.log's records stay unacknowledged: it keeps the slot
        write_seqs(other, range(20000, 25000))
        c.check(f"{name}: c.log evicted for e.log", sc.wait_log(f"closing idle {p}"))
        for k, first in enumerate((1000, 2000)):
            write_seqs(p, range(first, first + 1000))
            copytruncate(p, f"{p}.{k + 1}")
        write_seqs(p, range(3000, 3100))
        time.sleep(0.5)  # a few scans while it is closed
        check_checkpoint_behind(c, name + " (output stalled)", sc, sc.delivered())
        sc.reader.go.set()
        account(c, name, sc, list(range(3100)) + list(range(20000, 25000)), dup_bound=100)
        stop_and_check(c, name, sc)
    finally:
        sc.close()


def copytruncate_down_after_reset(args, c, tmp):
    """A copytruncate seen while running leaves the checkpoint at offset 0
    of an empty file (nothing to fingerprint); logveil is killed, and while
    it is down the file is written, copied and truncated again. At start the
    file cannot be told from the checkpointed one by content, but the copy
    rotated while down is still found and read."""
    name = "copytruncate while down, after a reset to 0"
    logs = os.path.join(tmp, "logs")
    os.makedirs(logs)
    p = os.path.join(logs, "c.log")
    write_seqs(p, range(0, 1000))
    sc = Sidecar(args, tmp, [os.path.join(logs, "*.log")])
    try:
        sc.start()
        sc.wait_delivered(range(1000))
        settle(sc)
        copytruncate(p, p + ".1")
        c.check(f"{name}: the truncation is seen", sc.wait_log("was truncated"))
        settle(sc)
        sc.proc.kill()
        sc.proc.wait()
        entries = [e for e in read_checkpoint(sc.ckpt) or [] if e[3] == p]
        c.check(f"{name}: checkpointed at offset 0", len(entries) == 1 and entries[0][2] == 0,
                str(entries))
        write_seqs(p, range(1000, 2000))
        copytruncate(p, p + ".2")
        write_seqs(p, range(2000, 2100))
        sc.start()
        account(c, name, sc, range(2100))
        stop_and_check(c, name, sc)
    finally:
        sc.close()


def gone_while_down_body(args, c, tmp, name, logs, *, rotated, unread, reuse=False):
    """A followed file is gone when logveil starts again, with nothing
    holding its content. `rotated`: it had been renamed out of the globs
    (nobody writes to it any more); else it is the live file, which the
    application wrote to while logveil was down before it was rotated away
    (a new file at its path) and the rotated generation pruned. `unread`:
    logveil had not read it to its end when it stopped (its checkpoint says
    so). `reuse`: on ext4, where a new file takes the gone file's inode at
    once (its identity then names another content)."""
    os.makedirs(logs)
    live = os.path.join(logs, "c.log")
    want = set(range(500))
    write_seqs(live, range(500))
    sc = Sidecar(args, tmp, [os.path.join(logs, "*.log")], rotate_wait=60,
                 extra=["buffer:", "  max_bytes: 64KiB", "limits:", "  max_line: 4096",
                        "shutdown_timeout: 1"])
    # The output is a symlink: to a file (up), or to /dev/full (every write
    # fails, so the buffer fills and the input stops reading).
    real = sc.out + ".real"
    out_up = lambda: (os.path.lexists(sc.out + ".new") and os.unlink(sc.out + ".new"),
                      os.symlink(real, sc.out + ".new"), os.replace(sc.out + ".new", sc.out))
    out_down = lambda: (os.symlink("/dev/full", sc.out + ".new"),
                        os.replace(sc.out + ".new", sc.out))
    try:
        if unread:  # the output is down from the start: the buffer fills, the rest waits
            out_down()
            write_seqs(live, range(500, 20500))
            want |= set(range(500, 20500))
            sc.start()
            time.sleep(1.5)
        else:
            out_up()
            sc.start()
            sc.wait_delivered(range(500))
        if rotated:
            os.rename(live, live + ".1")  # out of the globs; followed for 60 s more
            c.check(f"{name}: the rotation is seen", sc.wait_log("was rotated to"))
        if not unread:
            settle(sc)
        rc = sc.stop()  # with the output down: at the 1 s deadline, not 0 then
        c.check(f"{name}: exits on SIGTERM (status {rc})", rc is not None and (rc == 0 or unread))
        gone = live + ".1" if rotated else live
        gone_ino = os.stat(gone).st_ino
        if not rotated:
            write_seqs(gone, range(30000, 30100))  # the application goes on meanwhile,
            want |= set(range(30000, 30100))
            os.rename(gone, gone + ".2")           # its log is rotated,
            write_seqs(gone, range(30100, 30110))  # a new one started
            want |= set(range(30100, 30110))
            gone += ".2"                           # and the generation pruned
        os.unlink(gone)
        write_seqs(os.path.join(logs, "d.log"), range(40000, 40010))
        want |= set(range(40000, 40010))
        if reuse:
            c.check(f"{name}: a new file took the gone file's inode",
                    os.stat(os.path.join(logs, "d.log")).st_ino == gone_ino)
        out_up()
        sc.start()
        sc.wait_delivered(range(40000, 40010))
        time.sleep(0.5)
        missing = sorted(want - set(sc.delivered()))
        counted = sc.dropped("deleted_unread")
        figure = f"{len(missing)} missing, {counted} counted"
        print(f"FIGURE: {name}: {figure}", flush=True)
        if missing:
            c.check(f"{name}: the loss is logged", sc.wait_log("counted as one record lost"))
            c.check(f"{name}: it is counted, as one record (a lower bound): {figure}",
                    counted == 1)
        else:
            c.check(f"{name}: nothing is lost, and nothing is counted: {figure}", counted == 0)
        stop_and_check(c, name, sc)
    finally:
        sc.close()


gone_on_tmpfs = on_scratch("tmpfs", gone_while_down_body)  # inodes never reused
gone_on_ext4 = on_scratch("ext4", gone_while_down_body)    # reused at once


def gone_while_down_live(args, c, tmp):
    gone_on_tmpfs(args, c, tmp, "gone while down, live", rotated=False, unread=False)


def gone_while_down_rotated_read(args, c, tmp):
    gone_on_tmpfs(args, c, tmp, "gone while down, rotated, read to its end", rotated=True,
                  unread=False)


def gone_while_down_rotated_unread(args, c, tmp):
    gone_on_tmpfs(args, c, tmp, "gone while down, rotated, bytes unread", rotated=True,
                  unread=True)


def gone_while_down_reused_inode(args, c, tmp):
    gone_on_ext4(args, c, tmp, "gone while down, rotated, bytes unread, inode reused",
                 rotated=True, unread=True, reuse=True)


def corrupt_checkpoint(args, c, tmp):
    """The checkpoint cannot be read (damaged on disk) when logveil starts:
    it does not know what it read, so it reads everything again, the
    generations rotated meanwhile included (duplicates, never a loss)."""
    name = "corrupt checkpoint"
    logs = os.path.join(tmp, "logs")
    os.makedirs(logs)
    live = os.path.join(logs, "0.log")
    w = writer(live, 0)
    w.write(300)
    sc = Sidecar(args, tmp, [os.path.join(logs, "*.log")])
    sc.start()
    sc.wait_delivered(range(300))
    settle(sc)
    stop_and_check(c, name, sc)
    w.write(200)  # while down, then a rotation: 300-499 only in the generation
    w.rotate_now()
    w.write(100)
    with open(sc.ckpt, "r+b") as f:
        f.seek(os.path.getsize(sc.ckpt) // 2)
        f.write(b"#")
    sc.start()
    c.check(f"{name}: the damaged checkpoint is reported", sc.wait_log("ignoring checkpoint"))
    end = w.seq
    w.close()
    account(c, name, sc, range(end), dup_bound=end)
    stop_and_check(c, name, sc)


def gz_corrupt(args, c, tmp):
    """A compressed generation rotated while logveil was down is damaged
    half way: what cannot be decompressed is counted (gz_corrupt)."""
    name = "damaged gz generation"
    logs = os.path.join(tmp, "logs")
    os.makedirs(logs)
    live = os.path.join(logs, "0.log")
    w = writer(live, 0, compress=True)
    w.write(100)
    sc = Sidecar(args, tmp, [os.path.join(logs, "*.log")])
    sc.start()
    sc.wait_delivered(range(100))
    settle(sc)
    stop_and_check(c, name, sc)
    w.rotate_now()  # 0-99 read, rotated
    w.write(5000)   # only in the next generation, compressed at the next rotation
    w.rotate_now()
    w.write(10)
    w.rotate_now()  # the generation holding 100-5099 is gzipped now
    w.write(10)
    end = w.seq
    w.close()
    gz = sorted(n for n in os.listdir(logs) if n.endswith(".gz"))
    data = bytearray(open(os.path.join(logs, gz[-1]), "rb").read())
    for k in range(len(data) // 2, len(data) // 2 + 64):
        data[k] ^= 0x55
    with open(os.path.join(logs, gz[-1]), "wb") as f:
        f.write(data)
    sc.start()
    c.check(f"{name}: the damage is reported", sc.wait_log("gz_corrupt"))
    got = sc.wait_delivered(range(5100, end))
    time.sleep(0.5)
    got = sc.delivered()
    missing = sorted(set(range(end)) - set(got))
    counted = sc.dropped("gz_corrupt")
    c.check(f"{name}: the records past the damage are missing, and counted (at least one: "
            f"{len(missing)} missing, {counted} counted)", missing and 1 <= counted <= len(missing)
            and set(missing) <= set(range(100, 5100)))
    stop_and_check(c, name, sc)


# ---- clock steps (item 7) ------------------------------------------------------------------


def clock_step_back(args, c, tmp):
    name = "clock an hour fast in the previous run"
    logs = os.path.join(tmp, "logs")
    os.makedirs(logs)
    live = os.path.join(logs, "0.log")
    w = writer(live, 0)
    w.write(500)
    sc = Sidecar(args, tmp, [os.path.join(logs, "*.log")])
    sc.start()
    sc.wait_delivered(range(500))
    settle(sc)
    stop_and_check(c, name, sc)
    # What the previous run and its files would carry had its clock been
    # an hour fast: everything it wrote dated an hour ahead.
    ahead = time.time() + HOUR
    for path in (sc.ckpt, live):
        os.utime(path, (ahead, ahead))
    w.write(100)
    w.rotate_now()
    w.write(1000)
    w.rotate_now()
    w.write(1000)
    sc.start()
    w.write(100)
    end = w.seq
    w.close()
    account(c, name, sc, range(end))
    stop_and_check(c, name, sc)


# ---- files deleted unread (item 10) --------------------------------------------------------


def cri_line(seq):
    return (f'2024-05-01T10:00:00.1Z stdout F {{"seq":{seq},"level":"INFO",'
            f'"msg":"line {seq}"}}\n')


def copytruncate(path, copy):
    """logrotate's copytruncate: `path` copied to `copy`, then emptied."""
    with open(path, "rb") as src, open(copy, "wb") as dst:
        dst.write(src.read())
    os.truncate(path, 0)


def write_seqs(path, seqs, end="\n"):
    with open(path, "a") as f:
        f.write("".join(cri_line(s) for s in seqs)[:-1] + end)


def waiting_deleted(args, c, tmp):
    """max_open_files 2 and an output that does not drain: two files open,
    two wait; one of the waiting files is deleted."""
    name = "waiting file deleted"
    logs = os.path.join(tmp, "logs")
    os.makedirs(logs)
    files = [os.path.join(logs, f"w{k}.log") for k in range(4)]
    for k, p in enumerate(files):
        write_seqs(p, range(k * 100000, k * 100000 + 3000))
    sc = Sidecar(args, tmp, [os.path.join(logs, "*.log")], max_open_files=2, fifo=True)
    try:
        sc.start()
        c.check(f"{name}: two files wait", sc.wait_log("max_open_files (2) reached; 2 files wait"))
        time.sleep(0.5)  # a few scans: the waiting files are looked at
        check_checkpoint_behind(c, name + " (output stalled)", sc, sc.delivered())
        os.unlink(files[2])
        c.check(f"{name}: the loss is logged", sc.wait_log("deleted_unread"))
        sc.reader.go.set()
        want = [k * 100000 + s for k in range(4) for s in range(3000)]
        account(c, name, sc, want, lost=range(200000, 203000))
        stop_and_check(c, name, sc)
    finally:
        sc.close()


def evicted_deleted(args, c, tmp):
    """max_open_files 1: a file with an unterminated last line is evicted
    and deleted; another is evicted, grows while closed and is deleted."""
    name = "evicted files deleted"
    logs = os.path.join(tmp, "logs")
    os.makedirs(logs)
    e0, e1, e2 = (os.path.join(logs, f"e{k}.log") for k in range(3))
    write_seqs(e0, range(0, 101), end="")  # seq 100 has no newline
    write_seqs(e1, range(10000, 10100))
    sc = Sidecar(args, tmp, [os.path.join(logs, "*.log")], max_open_files=1, fifo=True)
    try:
        sc.reader.go.set()
        sc.start()
        sc.wait_delivered(list(range(100)) + list(range(10000, 10100)))
        c.check(f"{name}: e0 evicted for e1", sc.wait_log(f"closing idle {e0}"))
        settle(sc)
        # Stall the output, and keep the one slot busy with e2.
        sc.reader.go.clear()
        time.sleep(0.2)
        write_seqs(e2, range(20000, 25000))
        c.check(f"{name}: e1 evicted for e2", sc.wait_log(f"closing idle {e1}"))
        write_seqs(e1, range(10100, 10150))  # grows while closed: waits
        time.sleep(0.5)  # a few scans
        check_checkpoint_behind(c, name + " (output stalled)", sc, sc.delivered())
        os.unlink(e0)
        os.unlink(e1)
        c.check(f"{name}: the losses are logged", sc.wait_log(f"{e1} was deleted"))
        sc.reader.go.set()
        want = list(range(0, 101)) + list(range(10000, 10150)) + list(range(20000, 25000))
        account(c, name, sc, want, lost=[100] + list(range(10100, 10150)))
        stop_and_check(c, name, sc)
    finally:
        sc.close()


SCENARIOS = [rotations_down_plain, rotations_down_gz, rotations_down_plain_reuse,
             rotations_down_gz_reuse, banner_reused_inode, banner_copytruncate, copytruncate_behind,
             copytruncate_dateext_down, copytruncate_dateext_down_gz, copytruncate_no_copy,
             copytruncate_while_closed, copytruncate_down_after_reset, gone_while_down_live,
             gone_while_down_rotated_read,
             gone_while_down_rotated_unread, gone_while_down_reused_inode, corrupt_checkpoint,
             gz_corrupt,
             clock_step_back, waiting_deleted, evicted_deleted]


def main():
    status = harness.run_scenarios(__doc__, "logveil-faults-tail-", SCENARIOS, Sidecar.running)
    if status == 0 and SKIPPED:
        print(f"SKIPPED (no inode reuse here): {', '.join(SKIPPED)}", flush=True)
        return SKIP
    return status


if __name__ == "__main__":
    sys.exit(main())
