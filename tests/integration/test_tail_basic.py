#!/usr/bin/env python3
"""The tail input end to end: `logveil run` following CRI log files in a
temporary directory, records going to a file output.

Every record is a CRI line whose content is {"src": NAME, "seq": N}, so the
output can be checked for every record arriving exactly once. Scenarios, each
with its own directory and sidecar:

- discovery: a file present at start, one created later, rotated names that
  the glob (*.log*) still matches (read once: identity, not name), a .gz
  left out by `exclude`, the per-file gauges on /metrics;
- rotation by rename (kubelet) with late writes to the renamed file, and a
  file deleted while being written: both drained to the end, the deleted
  file's unterminated last line flushed when it is closed;
- rotations faster than the scans: files rotated away unseen are caught up,
  files rotated before the sidecar started are not read;
- copytruncate: the truncation is detected, counted, and the file read again
  from 0;
- restart: SIGTERM, more lines and two rotations while the sidecar is down,
  restart: it resumes from the checkpoint without loss or duplicates;
- compressed while down: a checkpointed file rotated and then gzipped by the
  kubelet's next rotation is finished from its .gz (decompressed, from the
  checkpoint offset); an unrelated .gz next to it is not read;
- a file whose inode comes back with other content is read from 0;
- a partial CRI line (P) at the end of a file is not emitted until its F
  arrives, and not flushed at shutdown either.

Usage: test_tail_basic.py --binary PATH --source REPO
Prints one line per check and ends with "N passed, M failed".
"""
import collections
import gzip
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

STEP_TIMEOUT = 10.0
TS = "2024-05-01T10:00:00.123456789Z"


def cri(src, seq, tag="F", stream="stdout"):
    return f'{TS} {stream} {tag} {{"src":"{src}","seq":{seq}}}\n'


def append(path, text):
    with open(path, "a") as f:
        f.write(text)


def append_records(path, src, seqs):
    append(path, "".join(cri(src, s) for s in seqs))


class Sidecar:
    """One `logveil run` with a tail input on `paths` and a file output."""

    running = []  # killed at the end, whatever happened

    def __init__(self, args, tmp, paths, exclude=(), checkpoint=True, admin=False,
                 rotate_wait=0.5):
        self.args = args
        self.tmp = tmp
        self.out = os.path.join(tmp, "out.jsonl")
        self.err = os.path.join(tmp, "stderr.log")
        self.port = harness.free_port() if admin else None
        self.ckpt = os.path.join(tmp, "state", "tail.ckpt") if checkpoint else \
            os.path.join(tmp, "state", "tail-0.ckpt")
        self.cfg = os.path.join(tmp, "logveil.yaml")
        lines = [
            "environment: development",
            "log_level: debug",
            f"state_dir: {json.dumps(os.path.join(tmp, 'state'))}",
            "inputs:",
            "  - type: tail",
            "    format: cri",
            f"    paths: {json.dumps(list(paths))}",
            "    scan_interval: 0.1",
            f"    rotate_wait: {rotate_wait}",
        ]
        if exclude:
            lines.append(f"    exclude: {json.dumps(list(exclude))}")
        if checkpoint:
            lines.append(f"    checkpoint: {json.dumps(self.ckpt)}")
        lines += ["outputs:", "  - type: file", f"    path: {json.dumps(self.out)}"]
        if admin:
            lines += ["admin:", f'  listen: "127.0.0.1:{self.port}"']
        with open(self.cfg, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = None

    def start(self):
        err = open(self.err, "ab")
        self.proc = subprocess.Popen([self.args.binary, "run", "--config", self.cfg],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=err)
        err.close()
        Sidecar.running.append(self.proc)
        # Ready once the first scan ran: the checkpoint is written then.
        self.poll(lambda: (os.path.exists(self.ckpt), None))

    def stop(self):
        """SIGTERM and the exit status (None when it had to be killed)."""
        return harness.terminate(self.proc, STEP_TIMEOUT)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def poll(self, fn, timeout=STEP_TIMEOUT):
        """harness.poll, giving up early if this sidecar exits."""
        return harness.poll(fn, self.proc, timeout)

    def metric(self, name):
        """An unlabelled sample from /metrics, or None."""
        return harness.sample(harness.metrics_text(self.port), name)

    def records(self):
        """Every output record written whole so far, as parsed JSON."""
        try:
            with open(self.out) as f:
                text = f.read()
        except FileNotFoundError:
            return []
        whole = text[:text.rfind("\n") + 1]  # a write may be under way
        return [json.loads(l) for l in whole.splitlines() if l.strip()]

    def seqs(self, src):
        return collections.Counter(r["seq"] for r in self.records() if r.get("src") == src)

    def messages(self):
        return [r["message"] for r in self.records() if "message" in r]

    def stderr_tail(self):
        try:
            with open(self.err, errors="replace") as f:
                return f.read()[-6000:]
        except OSError:
            return ""


def wait_seqs(sc, src, n, timeout=STEP_TIMEOUT):
    """Waits until records 0..n-1 of `src` have all arrived; their Counter."""
    ok, got = sc.poll(lambda: (len(c := sc.seqs(src)) >= n, c), timeout)
    return got or collections.Counter()


def check_once(c, name, got, want):
    missing = sorted(set(want) - set(got))
    dups = sorted(s for s, k in got.items() if k > 1)
    extra = sorted(set(got) - set(want))
    c.check(name, not missing and not dups and not extra,
            f"missing {missing[:10]} ({len(missing)}), duplicated {dups[:10]} ({len(dups)}), "
            f"unexpected {extra[:10]}")


# ---- scenarios ---------------------------------------------------------------------------


def discovery(args, c, tmp):
    logs = os.path.join(tmp, "logs")
    os.makedirs(logs)
    a = os.path.join(logs, "a.log")
    append_records(a, "a", range(0, 100))
    with open(os.path.join(logs, "old.log.gz"), "wb") as f:
        f.write(b"\x1f\x8b not a log at all\n")
    sc = Sidecar(args, tmp, [os.path.join(logs, "*.log*")], exclude=["*.gz"], admin=True)
    sc.start()
    try:
        wait_seqs(sc, "a", 100)
        # Rotation by rename to a name the glob still matches, then a new file.
        os.rename(a, a + ".20250101-000000")
        append_records(a + ".20250101-000000", "a", range(100, 150))
        append_records(a, "a", range(150, 300))
        b = os.path.join(logs, "b.log")
        for k in range(0, 200, 50):
            append_records(b, "b", range(k, k + 50))
            time.sleep(0.05)
        got_a = wait_seqs(sc, "a", 300)
        got_b = wait_seqs(sc, "b", 200)
        time.sleep(0.5)  # room for duplicates to show up
        check_once(c, "discovery: file present at start and after rotation, each record once",
                   sc.seqs("a"), range(300))
        check_once(c, "discovery: file created later is found, each record once",
                   sc.seqs("b"), range(200))
        c.check("discovery: excluded .gz is not read",
                not any("not a log" in m for m in sc.messages()), str(sc.messages()[:3]))
        text = harness.metrics_text(sc.port)
        size_b = os.path.getsize(b)
        line = f'logveil_file_read_offset_bytes{{file="{b}",input="tail-0"}} {size_b}'
        c.check("metrics: read offset per open file", line in text.splitlines(),
                "no line " + line)
        acked = f'logveil_file_acked_offset_bytes{{file="{b}",input="tail-0"}}'
        c.check("metrics: acknowledged offset per open file", acked in text)
        c.check("metrics: files open gauge",
                (harness.sample(text, "logveil_files_open") or 0) >= 2)
        c.check("metrics: inotify overflow counter exposed",
                harness.sample(text, "logveil_inotify_overflows_total") is not None)
    finally:
        rc = sc.stop()
    c.check("discovery: SIGTERM exits 0", rc == 0, f"exit status {rc}")
    return sc


def rotation_and_deletion(args, c, tmp):
    logs = os.path.join(tmp, "logs")
    os.makedirs(logs)
    r = os.path.join(logs, "r.log")
    d = os.path.join(logs, "d.log")
    append_records(r, "r", range(0, 100))
    writer = open(d, "a")
    writer.write("".join(cri("d", s) for s in range(0, 100)))
    writer.flush()
    sc = Sidecar(args, tmp, [os.path.join(logs, "*.log")], rotate_wait=1.0, admin=True)
    sc.start()
    try:
        wait_seqs(sc, "r", 100)
        wait_seqs(sc, "d", 100)
        # kubelet: rename, the runtime still writes to the old file for a
        # moment, then the new file appears.
        rotated = r + ".20250101-000000"
        os.rename(r, rotated)
        append_records(rotated, "r", range(100, 120))
        time.sleep(0.3)
        append_records(rotated, "r", range(120, 130))
        append_records(r, "r", range(130, 200))
        ok, text = sc.poll(lambda: (f'file="{rotated}"' in (m := harness.metrics_text(sc.port))
                                    and f'file="{r}"' in m, m))
        c.check("rename rotation: the rotated file keeps its own series under its new name", ok)
        series = [l.rsplit(" ", 1)[0] for l in (text or "").splitlines()
                  if l and not l.startswith("#")]
        c.check("rename rotation: no series appears twice on /metrics",
                len(series) == len(set(series)),
                str([k for k, v in collections.Counter(series).items() if v > 1]))
        # Deleted while being written: the writer keeps its descriptor.
        os.unlink(d)
        writer.write("".join(cri("d", s) for s in range(100, 150)))
        writer.flush()
        time.sleep(0.2)
        writer.write(cri("d", 150)[:-1])  # no newline: flushed when the file is closed
        writer.flush()
        check_once(c, "rename rotation: old file drained (late writes too), new file read",
                   wait_seqs(sc, "r", 200), range(200))
        got = wait_seqs(sc, "d", 151)
        check_once(c, "deleted file drained, its unterminated last line flushed at close",
                   got, range(151))
        ok, _ = sc.poll(lambda: ("done with " + d in sc.stderr_tail(), None))
        c.check("deleted file closed after rotate_wait", ok)
    finally:
        writer.close()
        rc = sc.stop()
    c.check("rotation: SIGTERM exits 0", rc == 0, f"exit status {rc}")
    return sc


def fast_rotation(args, c, tmp):
    """Rotations faster than the scans: the file in between is caught up,
    older rotated files are not read."""
    logs = os.path.join(tmp, "logs")
    os.makedirs(logs)
    p = os.path.join(logs, "0.log")
    old = p + ".20240101-000000"  # rotated before the sidecar started
    append_records(old, "old", range(0, 10))
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    append_records(p, "f", range(0, 100))
    sc = Sidecar(args, tmp, [os.path.join(logs, "*.log")], admin=True)
    sc.start()
    try:
        wait_seqs(sc, "f", 100)
        # Three rotations in well under a scan (and inotify's coalescing
        # delay); the old file is renamed on the way, as Docker and
        # logrotate rename .1 to .2.
        os.rename(old, old + ".renamed")
        os.rename(p, p + ".20250101-000001")
        append_records(p, "f", range(100, 150))
        os.rename(p, p + ".20250101-000002")
        append_records(p, "f", range(150, 200))
        os.rename(p, p + ".20250101-000003")
        append_records(p, "f", range(200, 300))
        got = wait_seqs(sc, "f", 300)
        time.sleep(0.5)
        check_once(c, "fast rotation: files rotated between two scans are read, once",
                   sc.seqs("f"), range(300))
        c.check("fast rotation: files rotated before the sidecar started are not read",
                not sc.seqs("old"), str(sc.seqs("old")))
        ok, n = sc.poll(lambda: ((v := sc.metric("logveil_files_open")) == 1, v))
        c.check("fast rotation: rotated files closed once drained (logveil_files_open 1)", ok,
                f"last {n}")
    finally:
        rc = sc.stop()
    c.check("fast rotation: exits 0", rc == 0, f"exit status {rc}")
    return sc


def copytruncate(args, c, tmp):
    logs = os.path.join(tmp, "logs")
    os.makedirs(logs)
    p = os.path.join(logs, "c.log")
    append_records(p, "c", range(0, 100))
    sc = Sidecar(args, tmp, [os.path.join(logs, "*.log")], admin=True)
    sc.start()
    try:
        wait_seqs(sc, "c", 100)
        shutil.copyfile(p, p + ".1")  # outside the glob
        os.truncate(p, 0)
        time.sleep(0.5)  # let the sidecar see the truncation before new lines
        append_records(p, "c", range(100, 150))
        check_once(c, "copytruncate: lines after the truncation read from 0, once each",
                   wait_seqs(sc, "c", 150), range(150))
        ok, got = sc.poll(lambda: ((v := sc.metric("logveil_file_truncations_total")) == 1, v))
        c.check("copytruncate: counted in logveil_file_truncations_total", ok, f"got {got}")
        # Truncated and rewritten past the old offset before the next look:
        # the changed first bytes give it away.
        os.truncate(p, 0)
        append_records(p, "c2", range(0, 300))
        got = wait_seqs(sc, "c2", 300)
        c.check("copytruncate: a rewrite past the old offset is read from 0 too",
                set(range(300)) <= set(got), f"{len(got)} of 300")
    finally:
        rc = sc.stop()
    c.check("copytruncate: SIGTERM exits 0", rc == 0, f"exit status {rc}")
    return sc


def restart(args, c, tmp):
    logs = os.path.join(tmp, "logs")
    os.makedirs(logs)
    p = os.path.join(logs, "0.log")
    append_records(p, "s", range(0, 200))
    append(p, f"{TS} stdout P pending-\n")  # a partial line at shutdown
    sc = Sidecar(args, tmp, [os.path.join(logs, "*.log")], checkpoint=False)
    sc.start()
    wait_seqs(sc, "s", 200)
    time.sleep(1.2)  # a checkpoint tick
    rc = sc.stop()
    c.check("restart: first run exits 0 on SIGTERM", rc == 0, f"exit status {rc}")
    c.check("restart: checkpoint at <state_dir>/tail-0.ckpt", os.path.exists(sc.ckpt))
    c.check("restart: partial line not flushed at shutdown",
            not any("pending" in m for m in sc.messages()), str(sc.messages()))
    with open(sc.ckpt) as f:
        text = f.read()
    size = os.path.getsize(p)
    line = f"{size - len(f'{TS} stdout P pending-') - 1}"
    offsets = [l.split(" ")[4] for l in text.splitlines()[1:-1] if l.endswith(" " + p)]
    c.check("restart: checkpoint holds the acknowledged offset (before the P line)",
            offsets == [line], text)
    # While down: more lines, then two kubelet rotations; the file between
    # them was never seen by the sidecar.
    append(p, f"{TS} stdout F done\n")
    append_records(p, "s", range(200, 300))
    os.rename(p, p + ".20250101-000000")
    append_records(p, "s", range(300, 350))
    os.rename(p, p + ".20250101-000001")
    append_records(p, "s", range(350, 400))
    sc.start()
    try:
        append_records(p, "s", range(400, 500))
        got = wait_seqs(sc, "s", 500)
        time.sleep(0.5)
        check_once(c, "restart: resumes from the checkpoint, rotated files finished, no loss "
                   "or duplicates", sc.seqs("s"), range(500))
        msgs = sc.messages()
        c.check("restart: the partial line is joined with its F after the restart",
                msgs.count("pending-done") == 1, str(msgs))
    finally:
        rc = sc.stop()
    c.check("restart: second run exits 0", rc == 0, f"exit status {rc}")
    return sc


def compressed_while_down(args, c, tmp):
    logs = os.path.join(tmp, "logs")
    os.makedirs(logs)
    p = os.path.join(logs, "0.log")
    append_records(p, "z", range(0, 100))
    # Compressed before the sidecar knew anything: never read.
    unrelated = p + ".20240101-000000.gz"
    with gzip.open(unrelated, "wt") as f:
        f.write("".join(cri("old", s) for s in range(0, 10)))
    sc = Sidecar(args, tmp, [os.path.join(logs, "*.log")], admin=True)
    sc.start()
    wait_seqs(sc, "z", 100)
    time.sleep(1.2)  # a checkpoint tick
    rc = sc.stop()
    c.check("compressed: first run exits 0", rc == 0, f"exit status {rc}")
    # While down: more lines, a kubelet rotation, then the next one, which
    # compresses the file rotated before (to .tmp, renamed to .gz, the
    # original deleted) before renaming the live file.
    append_records(p, "z", range(100, 200))
    first = p + ".20250101-000000"
    os.rename(p, first)
    append_records(p, "z", range(200, 210))
    with open(first, "rb") as src, gzip.open(first + ".gz.tmp", "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.rename(first + ".gz.tmp", first + ".gz")
    os.unlink(first)
    os.rename(p, p + ".20250101-000100")
    append_records(p, "z", range(210, 220))
    sc.start()
    try:
        got = wait_seqs(sc, "z", 220)
        time.sleep(0.5)  # room for duplicates to show up
        check_once(c, "compressed: the rest of a checkpointed file is read from its .gz, "
                   "every record once", sc.seqs("z"), range(220))
        c.check("compressed: an unrelated .gz is not read", not sc.seqs("old"),
                str(sc.seqs("old")))
        ok, n = sc.poll(lambda: ((v := sc.metric("logveil_files_read_compressed_total")) == 1, v))
        c.check("compressed: counted in logveil_files_read_compressed_total", ok, f"got {n}")
        ok, _ = sc.poll(lambda: ("done with " + first + ".gz" in sc.stderr_tail(), None))
        c.check("compressed: the .gz is closed once read and settled", ok)
    finally:
        rc = sc.stop()
    c.check("compressed: second run exits 0", rc == 0, f"exit status {rc}")
    return sc


def reused_inode(args, c, tmp):
    logs = os.path.join(tmp, "logs")
    os.makedirs(logs)
    p = os.path.join(logs, "0.log")
    append_records(p, "old", range(0, 50))
    sc = Sidecar(args, tmp, [os.path.join(logs, "*.log")])
    sc.start()
    wait_seqs(sc, "old", 50)
    time.sleep(1.2)
    sc.stop()
    ino = os.stat(p).st_ino
    # Same inode, other content, longer than the old offset: what a reused
    # inode looks like to the checkpoint.
    with open(p, "r+") as f:
        f.truncate(0)
        f.write("".join(cri("new", s) for s in range(0, 200)))
    c.check("reused inode: same inode number", os.stat(p).st_ino == ino)
    sc.start()
    try:
        check_once(c, "reused inode with other content is read from 0",
                   wait_seqs(sc, "new", 200), range(200))
    finally:
        rc = sc.stop()
    c.check("reused inode: exits 0", rc == 0, f"exit status {rc}")
    return sc


def partial_lines(args, c, tmp):
    logs = os.path.join(tmp, "logs")
    os.makedirs(logs)
    p = os.path.join(logs, "0.log")
    append_records(p, "p", range(0, 10))
    append(p, f"{TS} stdout P first-half|\n")
    # An F line without its newline yet, on the other stream so that it does
    # not complete the P fragment above.
    append(p, cri("p", 10, stream="stderr")[:-1])
    sc = Sidecar(args, tmp, [os.path.join(logs, "*.log")])
    sc.start()
    try:
        wait_seqs(sc, "p", 10)
        time.sleep(1.0)  # several scans and reads at EOF
        c.check("partial: P fragment at EOF not emitted", not sc.messages(), str(sc.messages()))
        c.check("partial: line without newline at EOF not emitted", 10 not in sc.seqs("p"))
        append(p, "\n")
        append(p, f"{TS} stdout F second-half\n")
        ok, msgs = sc.poll(lambda: (bool(m := sc.messages()), m))
        c.check("partial: emitted once its F arrives",
                msgs == ["first-half|second-half"], str(msgs))
        c.check("partial: the completed line arrives", sc.seqs("p").get(10) == 1)
    finally:
        rc = sc.stop()
    c.check("partial: exits 0", rc == 0, f"exit status {rc}")
    return sc


def huge_line(args, c, tmp):
    """A 50 MB line, split by the runtime into 16 KiB P fragments: one record,
    cut at limits.max_line and flagged; the lines around it are whole; memory
    stays bounded; the checkpoint passes it."""
    logs = os.path.join(tmp, "logs")
    os.makedirs(logs)
    p = os.path.join(logs, "0.log")
    append_records(p, "h", range(0, 5))
    chunk = "x" * 16384
    with open(p, "a") as f:
        for _ in range(50 * 1024 * 1024 // 16384):
            f.write(f"{TS} stdout P {chunk}\n")
        f.write(f"{TS} stdout F end\n")
    append_records(p, "h", range(5, 10))
    sc = Sidecar(args, tmp, [os.path.join(logs, "*.log")], admin=True)
    sc.start()
    try:
        got = wait_seqs(sc, "h", 10, timeout=60)
        with open(f"/proc/{sc.proc.pid}/status") as f:  # the high-water mark
            peak = next(int(l.split()[1]) for l in f if l.startswith("VmHWM"))
        check_once(c, "huge: the lines around a 50 MB line arrive once each", got, range(10))
        big = [r for r in sc.records() if "message" in r]
        c.check("huge: the 50 MB line is one record, cut and flagged",
                len(big) == 1 and big[0].get("truncated") is True
                and len(big[0]["message"]) <= 1024 * 1024,
                str([(len(r["message"]), r.get("truncated")) for r in big]))
        c.check(f"huge: RSS stays bounded (peak {peak} KiB)", 0 < peak < 64 * 1024, str(peak))
        ok, lag = sc.poll(lambda: ((v := sc.metric("logveil_checkpoint_lag_bytes")) == 0, v),
                          timeout=15)
        c.check("huge: the checkpoint passes it (lag 0)", ok, f"lag {lag}")
    finally:
        rc = sc.stop()
    c.check("huge: exits 0", rc == 0, f"exit status {rc}")
    return sc


SCENARIOS = [discovery, rotation_and_deletion, fast_rotation, copytruncate, restart,
             compressed_while_down, reused_inode, partial_lines, huge_line]


def main():
    return harness.run_scenarios(__doc__, "logveil-tail-", SCENARIOS, Sidecar.running)


if __name__ == "__main__":
    sys.exit(main())
