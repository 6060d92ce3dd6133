#!/usr/bin/env python3
"""A container runtime and kubelet in miniature: appends CRI log lines to a
file and rotates it, for the tail soak test.

Every record is a JSON line with a sequence number,

    <RFC3339Nano> stdout F {"seq":N,"level":"INFO","msg":"..."}

with the timestamp written as containerd does (UTC, trailing zeros of the
fraction dropped). Every --long-every'th record has a message of about
--long-bytes, and a line longer than --split (16 KiB, containerd's
max_container_log_line_size) is cut into P fragments of exactly that size and
an F remainder. With --stderr-every, some records go to stderr; with
--interleave, a stderr record is written between the fragments of a long
stdout record, as containerd's two copiers can do.

Rotation, when the live file has reached --rotate-bytes (always between
records, never between the fragments of one):

  rename        the kubelet's way (protocols.md 1.4): the live file is renamed
                to <path>.<YYYYmmdd-HHMMSS>, --reopen-lag lines are still
                written to the renamed file (the runtime has not reopened yet),
                then a new <path> is created. The timestamp comes from a clock
                that moves at least one second per rotation, so names stay
                unique and sort in rotation order; --suffix counter names them
                <path>.<YYYYmmdd-HHMMSS>-<n> instead.
  copytruncate  logrotate's way: the file is copied to the rotated name, then
                truncated in place. The writer is cooperative: nothing is
                written between the copy and the truncation, and
                --pause-before / --pause-after let a reader catch up around it.

With --max-files, the oldest rotated files beyond that many are deleted, as
the kubelet does; by default all are kept. With --compress, each rotation
first gzips the rotated files not yet compressed, as the kubelet does
(<name>.tmp written, renamed to <name>.gz, <name> removed), so only the
newest rotated file stays uncompressed.

--format docker writes Docker json-file lines instead,
{"log":"<content>\n","stream":"stdout","time":"<RFC3339Nano>"}, a line longer
than --split cut into entries without the newline. --banner N starts every
new live file with a constant record of about N bytes ({"banner":"..."}, no
sequence number), as an application that prints a long header at start.

A test can also drive a Writer itself: write(n) appends the next n records
and rotate_now() rotates (see Writer).

What was written is reported: a JSON object on stdout at the end (written,
first_seq, last_seq, bytes, rotations, long, stderr, elapsed, lines_per_s,
cut_short: stopped by --max-seconds before --count),
and, with --progress FILE, "written bytes rotations" replaced atomically
about ten times a second while writing.

The content of record N is a pure function of N and the options (see
record()), so a checker can import this module and know what to expect.

Usage: cri_writer.py --path DIR/0.log --count 1000000 --rotate-bytes 5MB
"""
import argparse
import gzip
import json
import os
import random
import shutil
import signal
import sys
import time

SPLIT = 16384
WORDS = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod "
         "tempor incididunt ut labore et dolore magna aliqua ").split()


def parse_size(text):
    """'5MB', '16KiB', '200M', '1000' -> bytes."""
    t = text.strip().upper().replace("IB", "B")
    mult = 1
    for suffix, m in (("KB", 1 << 10), ("MB", 1 << 20), ("GB", 1 << 30),
                      ("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("B", 1)):
        if t.endswith(suffix):
            t, mult = t[: -len(suffix)], m
            break
    return int(float(t) * mult)


def filler(n, seed):
    """n bytes of plain words, deterministic in seed; nothing a redaction
    rule would take for a secret."""
    out = []
    size = 0
    i = seed
    while size < n:
        w = WORDS[i % len(WORDS)]
        out.append(w)
        size += len(w) + 1
        i += 7
    return " ".join(out)[:n]


class Shape:
    """What record N looks like, given the options."""

    def __init__(self, long_every=0, long_bytes=40000, stderr_every=0, msg_bytes=60):
        self.long_every = long_every
        self.long_bytes = long_bytes
        self.stderr_every = stderr_every
        self.msg_bytes = msg_bytes
        self._short_pad = filler(max(0, msg_bytes - 40), 3)
        self._long_text = filler(long_bytes + 3 * SPLIT, 5) if long_every > 0 else ""

    def is_long(self, seq):
        return self.long_every > 0 and seq % self.long_every == self.long_every - 1

    def stream(self, seq):
        if self.stderr_every > 0 and seq % self.stderr_every == self.stderr_every // 2:
            return "stderr"
        return "stdout"

    def long_len(self, seq):
        # Varies, so fragments end at different places: from long_bytes to
        # long_bytes + 3 * SPLIT.
        return self.long_bytes + (seq * 7919) % (3 * SPLIT)

    def msg(self, seq):
        if self.is_long(seq):
            return self._long_text[: self.long_len(seq)]
        return f"request {seq} handled path=/api/v1/items status=200 {self._short_pad}"

    def level(self, seq):
        return "WARN" if seq % 97 == 0 else "INFO"

    def record(self, seq):
        """The application's line (the CRI content), without newline."""
        # Nothing in level or msg needs escaping, so no json.dumps.
        return f'{{"seq":{seq},"level":"{self.level(seq)}","msg":"{self.msg(seq)}"}}'


class Clock:
    """containerd's RFC3339Nano: UTC, fraction without trailing zeros."""

    def __init__(self):
        self._sec = None
        self._prefix = ""

    def now(self):
        ns = time.time_ns()
        sec, frac = divmod(ns, 1_000_000_000)
        if sec != self._sec:
            self._sec = sec
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        if frac == 0:
            return self._prefix + "Z"
        return f"{self._prefix}.{frac:09d}".rstrip("0") + "Z"


def docker_lines(ts, stream, content, split):
    """The json-file entries for one application line: pieces of `split`
    bytes without the newline, then the rest with it."""
    data = content.encode()
    pieces = [data[i:i + split] for i in range(0, max(len(data), 1), split)] or [b""]
    out = []
    for k, piece in enumerate(pieces):
        log = piece.decode("utf-8", "surrogateescape") + ("\n" if k == len(pieces) - 1 else "")
        out.append(('{"log":%s,"stream":"%s","time":"%s"}\n'
                    % (json.dumps(log), stream, ts)).encode())
    return out


def cri_lines(ts, stream, content, split):
    """The CRI lines for one application line: P fragments of exactly
    `split` bytes (counted in bytes, as containerd does), then F."""
    data = content.encode()
    head = f"{ts} {stream} ".encode()
    if len(data) <= split:
        return [head + b"F " + data + b"\n"]
    out = []
    pos = 0
    while len(data) - pos > split:
        out.append(head + b"P " + data[pos:pos + split] + b"\n")
        pos += split
    out.append(head + b"F " + data[pos:] + b"\n")
    return out


class Writer:
    def __init__(self, a):
        self.a = a
        self.path = a.path
        self.shape = Shape(a.long_every, a.long_bytes, a.stderr_every, a.msg_bytes)
        self.clock = Clock()
        self.lines = docker_lines if getattr(a, "format", "cri") == "docker" else cri_lines
        self.fd = None
        self.open_live()
        self.pending = []        # byte strings not yet written (batch mode)
        self.pending_lines = 0
        self.written = 0         # records completely written
        self.total_bytes = 0
        self.rotations = 0
        self.long = 0
        self.stderr = 0
        self.rotated = []        # names of rotated files, oldest first
        self.rot_clock = 0
        self.rng = random.Random(a.seed)
        self.last_progress = 0.0
        self.stop = False
        self.cut_short = False   # stopped by --max-seconds
        self.seq = a.start_seq   # the next record write() appends
        self.end = a.start_seq + a.count

    def open_live(self):
        """Opens the live file (created if missing); a new one starts with
        the banner."""
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.file_bytes = os.fstat(self.fd).st_size
        if self.file_bytes == 0:
            self.banner()

    def banner(self):
        n = getattr(self.a, "banner", 0)
        if n > 0:
            text = '{"banner":"%s"}' % filler(n, 11)
            self._write(self.fd, b"".join(self.lines(self.clock.now(), "stdout", text,
                                                      self.a.split)))

    # -- output --------------------------------------------------------------

    def _write(self, fd, data):
        while data:
            n = os.write(fd, data)
            data = data[n:]

    def emit(self, chunks):
        """chunks: CRI lines of one or more records."""
        if self.a.flush == "batch":
            self.pending.extend(chunks)
            return
        for c in chunks:
            if self.a.flush == "torn" and len(c) > 2:
                cut = self.rng.randrange(1, len(c) - 1)
                self._write(self.fd, c[:cut])
                self._write(self.fd, c[cut:])
            else:
                self._write(self.fd, c)

    def flush(self):
        if self.pending:
            self._write(self.fd, b"".join(self.pending))
            self.pending = []

    # -- rotation -------------------------------------------------------------

    def rotated_name(self):
        now = int(time.time())
        self.rot_clock = max(now, self.rot_clock + 1)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self.rot_clock))
        name = f"{self.path}.{stamp}"
        if self.a.suffix == "counter":
            name += f"-{self.rotations}"
        return name

    def compress_rotated(self):
        """The kubelet's compression of rotated files, before it rotates."""
        for k, name in enumerate(self.rotated):
            if name.endswith(".gz") or not os.path.exists(name):
                continue
            with open(name, "rb") as src, gzip.open(name + ".tmp", "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.rename(name + ".tmp", name + ".gz")
            os.unlink(name)
            self.rotated[k] = name + ".gz"

    def rotate(self, next_seq):
        """Returns how many records it wrote itself (the reopen lag)."""
        self.flush()
        if self.a.max_files > 0:
            # The kubelet removes the excess before it rotates (its count
            # includes the live file and the one about to be rotated).
            while len(self.rotated) > max(self.a.max_files - 2, 0):
                try:
                    os.unlink(self.rotated.pop(0))
                except FileNotFoundError:
                    pass
        if getattr(self.a, "compress", False):
            self.compress_rotated()
        target = self.rotated_name()
        wrote = 0
        if self.a.rotate_mode == "rename":
            os.rename(self.path, target)
            # The runtime still writes to the renamed inode until it reopens.
            for k in range(self.a.reopen_lag):
                if next_seq + k >= self.end:
                    break
                self.emit(self.lines_for(next_seq + k))
                wrote += 1
            self.flush()
            os.close(self.fd)
            self.open_live()
        else:
            if self.a.pause_before > 0:
                time.sleep(self.a.pause_before)
            shutil.copyfile(self.path, target)
            os.ftruncate(self.fd, 0)
            self.file_bytes = 0
            self.banner()
            if self.a.pause_after > 0:
                time.sleep(self.a.pause_after)
        self.file_bytes = os.fstat(self.fd).st_size
        self.rotations += 1
        self.rotated.append(target)
        return wrote

    # -- records ----------------------------------------------------------------

    def lines_for(self, seq):
        """The CRI lines of record seq; counts them as written."""
        ts = self.clock.now()
        stream = self.shape.stream(seq)
        lines = self.lines(ts, stream, self.shape.record(seq), self.a.split)
        self.note(seq, lines, stream)
        return lines

    def note(self, seq, lines, stream):
        n = sum(len(x) for x in lines)
        self.file_bytes += n
        self.total_bytes += n
        self.written += 1
        self.long += self.shape.is_long(seq)
        self.stderr += stream == "stderr"

    def progress(self, force=False):
        if not self.a.progress:
            return
        now = time.monotonic()
        if not force and now - self.last_progress < 0.1:
            return
        self.last_progress = now
        tmp = self.a.progress + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{self.written} {self.total_bytes} {self.rotations}\n")
        os.replace(tmp, self.a.progress)

    def write(self, n):
        """Appends the next n records, one write each (no rotation)."""
        for _ in range(n):
            self.emit(self.lines_for(self.seq))
            self.seq += 1
        self.flush()

    def rotate_now(self):
        """Rotates now, as --rotate-bytes would (the reopen lag included)."""
        self.seq += self.rotate(self.seq)

    def close(self):
        self.flush()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def run(self):
        a = self.a
        seq = a.start_seq
        self.end = a.start_seq + a.count
        t0 = time.monotonic()
        batch = max(1, a.batch)
        stop_at = t0 + a.max_seconds if a.max_seconds > 0 else None
        turns = 0
        while seq < self.end and not self.stop:
            turns += 1
            if a.max_bytes and self.total_bytes >= a.max_bytes:
                break
            if stop_at is not None and (turns & 255) == 0 and time.monotonic() >= stop_at:
                self.cut_short = True
                break
            if a.rotate_bytes and self.file_bytes >= a.rotate_bytes:
                seq += self.rotate(seq)
                if seq >= self.end:
                    break
            stream = self.shape.stream(seq)
            if (a.interleave and self.shape.is_long(seq) and stream == "stdout"
                    and seq + 1 < self.end):
                # A stderr record lands between the long record's fragments.
                ts = self.clock.now()
                long_lines = self.lines(ts, "stdout", self.shape.record(seq), a.split)
                other = self.lines(ts, "stderr", self.shape.record(seq + 1), a.split)
                self.emit(long_lines[:1] + other + long_lines[1:])
                self.note(seq, long_lines, "stdout")
                self.note(seq + 1, other, "stderr")
                seq += 2
            else:
                self.emit(self.lines_for(seq))
                seq += 1
            if a.flush == "batch":
                self.pending_lines += 1
                if self.pending_lines >= batch:
                    self.flush()
                    self.pending_lines = 0
            if a.rate > 0:
                # Sleep in steps of at least a millisecond, never fall behind.
                due = t0 + (seq - a.start_seq) / a.rate
                lag = due - time.monotonic()
                if lag > 0.001:
                    self.flush()
                    time.sleep(lag)
            if (seq & 1023) == 0:
                self.progress()
        self.flush()
        if a.fsync:
            os.fsync(self.fd)
        os.close(self.fd)
        elapsed = time.monotonic() - t0
        self.progress(force=True)
        return {
            "written": self.written,
            "first_seq": a.start_seq,
            "last_seq": a.start_seq + self.written - 1,
            "bytes": self.total_bytes,
            "rotations": self.rotations,
            "rotated": [os.path.basename(r) for r in self.rotated[-5:]],
            "long": self.long,
            "stderr": self.stderr,
            "elapsed": round(elapsed, 3),
            "lines_per_s": round(self.written / elapsed) if elapsed > 0 else None,
            "cut_short": self.cut_short,
        }


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--path", required=True, help="the live log file, e.g. DIR/0.log")
    p.add_argument("--count", type=int, default=1000, help="records to write")
    p.add_argument("--start-seq", type=int, default=0, help="sequence number of the first")
    p.add_argument("--max-bytes", type=parse_size, default=0,
                   help="stop after about this many bytes, even before --count (0: off)")
    p.add_argument("--rotate-bytes", type=parse_size, default=0,
                   help="rotate when the live file reaches this size (0: never)")
    p.add_argument("--rotate-mode", choices=("rename", "copytruncate"), default="rename")
    p.add_argument("--suffix", choices=("kubelet", "counter"), default="kubelet",
                   help="rotated names: <path>.<YYYYmmdd-HHMMSS>, or with -<n> added")
    p.add_argument("--reopen-lag", type=int, default=0,
                   help="rename: records still written to the renamed file")
    p.add_argument("--pause-before", type=float, default=0.0,
                   help="copytruncate: seconds to wait before copying")
    p.add_argument("--pause-after", type=float, default=0.0,
                   help="copytruncate: seconds to wait after truncating")
    p.add_argument("--max-files", type=int, default=0,
                   help="keep at most this many files, the live one included (0: all)")
    p.add_argument("--compress", action="store_true",
                   help="gzip rotated files at the next rotation, as the kubelet does")
    p.add_argument("--format", choices=("cri", "docker"), default="cri",
                   help="CRI lines, or Docker json-file entries")
    p.add_argument("--banner", type=int, default=0,
                   help="start each new live file with a constant record of about N bytes")
    p.add_argument("--max-seconds", type=float, default=0.0,
                   help="stop after this long even before --count (0: no limit); "
                        "the report says cut_short")
    p.add_argument("--rate", type=float, default=0.0, help="records per second (0: no limit)")
    p.add_argument("--flush", choices=("line", "batch", "torn"), default="line",
                   help="one write per line, per --batch records, or two per line")
    p.add_argument("--batch", type=int, default=100, help="records per write with --flush batch")
    p.add_argument("--fsync", action="store_true", help="fsync the file at the end")
    p.add_argument("--long-every", type=int, default=1000,
                   help="every Nth record has a long message (0: none)")
    p.add_argument("--long-bytes", type=int, default=40000, help="least size of a long message")
    p.add_argument("--split", type=int, default=SPLIT, help="P/F fragment size")
    p.add_argument("--stderr-every", type=int, default=0,
                   help="every Nth record goes to stderr (0: none)")
    p.add_argument("--interleave", action="store_true",
                   help="write a stderr record between the fragments of long records")
    p.add_argument("--msg-bytes", type=int, default=60, help="about the size of a short message")
    p.add_argument("--progress", help="file to keep 'written bytes rotations' in")
    p.add_argument("--seed", type=int, default=1, help="for --flush torn")
    return p


def main(argv=None):
    a = build_parser().parse_args(argv)
    w = Writer(a)

    def on_term(signum, frame):
        w.stop = True
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    result = w.run()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
