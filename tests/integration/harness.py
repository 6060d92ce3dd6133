"""Helpers shared by the integration test scripts (standard library only).

A script puts this directory on sys.path and imports it: checks counted and
printed, a free port, a clean environment, /metrics scraped and parsed, VmRSS
from /proc, and bounded waits.
"""
import argparse
import http.client
import os
import signal
import shutil
import socket
import subprocess
import tempfile
import threading
import time


class Checks:
    """Counts checks; prints `ok   name` or `FAIL name: detail` for each."""

    def __init__(self, show_ok=True, ok_detail=False):
        self.passed = 0
        self.failed = 0
        self.show_ok = show_ok  # False: print failures only
        self.ok_detail = ok_detail  # True: a short detail is shown on success too

    def check(self, name, ok, detail="", count=1):
        """Records `count` checks passed or failed as `ok` says; returns ok."""
        if ok:
            self.passed += count
            if self.show_ok:
                short = self.ok_detail and detail and len(detail) <= 100
                print(f"ok   {name}" + (f" ({detail})" if short else ""), flush=True)
        else:
            self.failed += count
            print(f"FAIL {name}" + (f": {detail}" if detail else ""), flush=True)
        return ok

    def report(self):
        """Prints "N passed, M failed"; the exit status (1 when any failed)."""
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        return 1 if self.failed else 0


def parser(doc=None):
    """An ArgumentParser with --binary and --source, described by doc's first line."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--source", required=True)
    return ap


def run_steps(c, steps):
    """Calls each step; a subprocess timeout fails a check instead of the script."""
    for step in steps:
        try:
            step()
        except subprocess.TimeoutExpired as e:
            c.check(f"no timeout: {' '.join(map(str, e.cmd))}", False, f"after {e.timeout} s")


def run_in_tmp(c, prefix, fn):
    """fn(tmp) in a fresh temporary directory, removed afterwards; an exception
    fails the check "test ran to the end"."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    try:
        fn(tmp)
    except Exception as e:  # report, never hang or pass silently
        c.check("test ran to the end", False, repr(e))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def free_port():
    """A port that was free a moment ago; the sidecar cannot report port 0."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def random_key(n=32):
    """n random bytes for a key file, the last not a line feed: a key file's
    key is its bytes less one line ending (LF or CRLF), so a raw key ending
    in LF (1 in 256) would be one byte short, and refused below 32."""
    return os.urandom(n - 1) + bytes([os.urandom(1)[0] & 0x7f | 0x20])


def clean_env(**extra):
    """An environment with only PATH, plus `extra`."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    env.update(extra)
    return env


def request(port, path, method="GET", timeout=2.0):
    """(status, content type, body) from 127.0.0.1:port, or None while nothing answers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type"), resp.read().decode()
    except OSError:
        return None
    finally:
        conn.close()


def metrics_text(port, timeout=2.0):
    """The /metrics exposition; "" when there is no 200 answer."""
    r = request(port, "/metrics", timeout=timeout)
    return r[2] if r is not None and r[0] == 200 else ""


def parse_metrics(text):
    """{name or name{labels}: value} for every sample in an exposition."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                pass
    return out


def metrics(port, timeout=2.0):
    """parse_metrics of /metrics; {} when there is no answer."""
    return parse_metrics(metrics_text(port, timeout))


def sample(text, name, **labels):
    """The value of the sample `name` with exactly these labels, or None."""
    if labels:
        name += "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        if series == name:
            return float(value)
    return None


def rss_kib(pid):
    """VmRSS of `pid` in KiB, or None when it cannot be read."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


class RssSampler(threading.Thread):
    """VmRSS in bytes of whatever process pid_fn() names, every `interval` seconds."""

    def __init__(self, pid_fn, interval=0.1):
        super().__init__(daemon=True)
        self.pid_fn = pid_fn
        self.interval = interval
        self.samples = []  # (monotonic time, bytes)
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            pid = self.pid_fn()
            kib = rss_kib(pid) if pid else None
            if kib is not None:
                self.samples.append((time.monotonic(), kib * 1024))
            self.halt.wait(self.interval)

    def stop(self):
        self.halt.set()
        self.join(timeout=2)

    def peak(self, since=None):
        """The largest sample (taken at or after `since`), or None."""
        vals = [r for t, r in self.samples if since is None or t >= since]
        return max(vals) if vals else None


_SANITIZED = {}


def sanitized(binary):
    """Whether `binary` was built with AddressSanitizer (libasan is linked
    dynamically, so the executable names __asan_init): its RSS is then the
    sanitizer's (shadow memory, a quarantine of freed blocks), not logveil's,
    and RSS bounds are not checked."""
    if binary not in _SANITIZED:
        with open(binary, "rb") as f:
            _SANITIZED[binary] = b"__asan_init" in f.read()
    return _SANITIZED[binary]


def check_rss(c, binary, name, ok, detail=""):
    """An RSS bound: checked in normal builds; under ASan the figure is
    printed and the bound not checked (the scenario still runs, for memory
    errors)."""
    if sanitized(binary):
        print(f"skip {name} (ASan build: RSS is the sanitizer's) {detail}".rstrip(), flush=True)
        return True
    return c.check(name, ok, detail)


def terminate(proc, timeout):
    """SIGTERM, then the exit status; None when it had to be killed (or
    never started)."""
    if proc is None or proc.poll() is not None:
        return proc.returncode if proc else None
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def wait_for(pred, timeout, interval=0.05):
    """Calls pred until it is true or `timeout` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got or time.monotonic() >= deadline:
            return got
        time.sleep(interval)


def poll(fn, proc=None, timeout=10.0, interval=0.05):
    """Calls fn, which returns (done, value), until done, `proc` (a Popen)
    exits or `timeout` passes; (done, last value)."""
    last = [False, None]

    def step():
        last[:] = fn()
        return last[0] or (proc is not None and proc.poll() is not None)
    wait_for(step, timeout, interval)
    return last[0], last[1]


def run_scenarios(doc, prefix, scenarios, running):
    """Runs each scenario(args, checks, dir) in its own temp directory; an
    exception is a failed check, and a failing scenario's stderr.log is
    printed. Processes left in `running` are killed at the end. Returns the
    exit status. --only a,b runs the scenarios of those names only."""
    ap = parser(doc)
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    args = ap.parse_args()
    if args.only:
        wanted = args.only.split(",")
        unknown = set(wanted) - {s.__name__ for s in scenarios}
        if unknown:
            ap.error("no scenario named " + ", ".join(sorted(unknown)))
        scenarios = [s for s in scenarios if s.__name__ in wanted]
    c = Checks()
    root = tempfile.mkdtemp(prefix=prefix)
    try:
        for scenario in scenarios:
            tmp = os.path.join(root, scenario.__name__)
            os.makedirs(tmp)
            failed = c.failed
            try:
                scenario(args, c, tmp)
            except Exception as e:  # report, never hang or pass silently
                c.check(f"{scenario.__name__} ran to the end", False, repr(e))
            if c.failed != failed:
                try:
                    with open(os.path.join(tmp, "stderr.log"), errors="replace") as f:
                        print(f"--- logveil stderr ({scenario.__name__}) ---\n" +
                              f.read()[-6000:])
                except OSError:
                    pass
    finally:
        for proc in running:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        shutil.rmtree(root, ignore_errors=True)
    return c.report()


class ScratchFs:
    """A file system of a known kind mounted for the duration of a `with`
    block (needs root). kind "ext4": a small image on a loop device (needs
    mkfs.ext4 and a free loop device); ext4 hands a freed inode number out
    again to the next file created, so inode reuse happens when a test wants
    it, not when the host file system decides. kind "tmpfs": inode numbers
    are never handed out twice. `mnt` is None and `reason` says why when it
    could not be mounted: the caller must say so, not pass silently."""

    def __init__(self, tmp, kind="ext4", size_mb=64, inodes=512):
        self.kind = kind
        self.img = os.path.join(tmp, kind + ".img")
        self.mnt = os.path.join(tmp, kind)
        self.size_mb = size_mb
        self.inodes = inodes
        self.mounted = False
        self.reason = None

    def _mount(self):
        if self.kind == "tmpfs":
            return ["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m", "tmpfs", self.mnt]
        with open(self.img, "wb") as f:
            f.truncate(self.size_mb << 20)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-N", str(self.inodes), self.img],
                       check=True, capture_output=True, timeout=60)
        return ["mount", "-o", "loop", self.img, self.mnt]

    def __enter__(self):
        try:
            os.makedirs(self.mnt, exist_ok=True)
            subprocess.run(self._mount(), check=True, capture_output=True, timeout=60)
            self.mounted = True
        except (OSError, subprocess.SubprocessError) as e:
            detail = getattr(e, "stderr", b"") or b""
            self.reason = f"{e!r} {detail.decode(errors='replace').strip()}"
            self.mnt = None
        return self

    def __exit__(self, *exc):
        if self.mounted:
            subprocess.run(["umount", "-l", self.mnt], capture_output=True, timeout=60)
        try:
            os.unlink(self.img)
        except OSError:
            pass
        return False
