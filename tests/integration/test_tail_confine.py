#!/usr/bin/env python3
"""Tail confinement end to end: `logveil run` on a directory the application
can write (the shared-volume mode), with hostile names planted next to the
real log files.

Every secret planted is itself a well-formed CRI line whose JSON holds a
unique marker, so that a single read of it would ship the marker: the oracle
is that no marker appears in the output file, on stderr or on /metrics.
Scenarios, each with its own directory and sidecar:

- hostile_names: symlinks to a planted file outside the roots, to another
  file outside them, to the sidecar's own hmac_key_file, to a labels_file
  inside the roots (refused whatever the roots say), to the configuration
  file itself, a rotated-looking sibling linked to a secret (reached by the
  generations listing after a rotation), a symlink loop and a two-link
  loop, a FIFO, a symlink to /dev/zero, a socket and a directory named like
  a log: none is read, each is logged once and counted once under its
  reason in logveil_files_skipped_total, and the real files next to them
  (one rotated meanwhile) are tailed with every record once;
- allowed_roots: a root given in the configuration replaces the defaults:
  a file outside it is refused although it sits in the glob's directory,
  one inside it is read;
- swap_race: while the sidecar scans every 10 ms, symlinks are switched
  (rename over) between a harmless file and a secret (the sidecar's own key,
  or a planted file outside the roots) in a tight loop for a few seconds,
  and fresh links are created pointing at one and switched to the other:
  the harmless lines are read, the secrets never are.

Usage: test_tail_confine.py --binary PATH --source REPO
Prints one line per check and ends with "N passed, M failed".
"""
import collections
import json
import os
import socket
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

STEP_TIMEOUT = 15.0
TS = "2024-05-01T10:00:00.123456789Z"


def cri(src, seq):
    return f'{TS} stdout F {{"src":"{src}","seq":{seq}}}\n'


def secret_line(marker):
    """A secret that would be shipped whole if it were read once."""
    return f'{TS} stdout F {{"leak":"{marker}"}}\n'


def write(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def append_records(path, src, seqs):
    with open(path, "a") as f:
        f.write("".join(cri(src, s) for s in seqs))


def relink(target, link):
    """Points `link` at `target` atomically (symlink, then rename over)."""
    tmp = link + ".swap"
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    os.symlink(target, tmp)
    os.rename(tmp, link)


class Sidecar:
    running = []

    def __init__(self, args, tmp, logs, extra_input=(), extra_top=(), scan_interval=0.1):
        self.args = args
        self.out = os.path.join(tmp, "out.jsonl")
        self.err = os.path.join(tmp, "stderr.log")
        self.port = harness.free_port()
        self.ckpt = os.path.join(tmp, "state", "tail.ckpt")
        self.cfg = os.path.join(tmp, "logveil.yaml")
        lines = [
            "environment: development",
            f"state_dir: {json.dumps(os.path.join(tmp, 'state'))}",
            *extra_top,
            "inputs:",
            "  - type: tail",
            "    format: cri",
            f"    paths: {json.dumps([os.path.join(logs, '*.log')])}",
            f"    scan_interval: {scan_interval}",
            "    rotate_wait: 0.5",
            f"    checkpoint: {json.dumps(self.ckpt)}",
            *extra_input,
            "outputs:",
            "  - type: file",
            f"    path: {json.dumps(self.out)}",
            "admin:",
            f'  listen: "127.0.0.1:{self.port}"',
        ]
        write(self.cfg, "\n".join(lines) + "\n")
        self.proc = None

    def start(self):
        err = open(self.err, "ab")
        self.proc = subprocess.Popen([self.args.binary, "run", "--config", self.cfg],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=err)
        err.close()
        Sidecar.running.append(self.proc)
        harness.poll(lambda: (os.path.exists(self.ckpt), None), self.proc, STEP_TIMEOUT)

    def stop(self):
        return harness.terminate(self.proc, STEP_TIMEOUT)

    def poll(self, fn, timeout=STEP_TIMEOUT):
        return harness.poll(fn, self.proc, timeout)

    def text(self):
        try:
            with open(self.out, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def records(self):
        text = self.text()
        whole = text[:text.rfind("\n") + 1]
        return [json.loads(l) for l in whole.splitlines() if l.strip()]

    def seqs(self, src):
        return collections.Counter(r["seq"] for r in self.records() if r.get("src") == src)

    def stderr(self):
        try:
            with open(self.err, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def skipped(self):
        text = harness.metrics_text(self.port)
        return {r: harness.sample(text, "logveil_files_skipped_total", reason=r)
                for r in ("outside_roots", "secret_file", "not_regular", "symlink_loop")}


def check_once(c, name, got, want):
    missing = sorted(set(want) - set(got))
    dups = sorted(s for s, k in got.items() if k > 1)
    c.check(name, not missing and not dups,
            f"missing {missing[:10]} ({len(missing)}), duplicated {dups[:10]} ({len(dups)})")


def check_no_leak(c, name, sc, markers):
    outputs = {"output": sc.text(), "stderr": sc.stderr(),
               "metrics": harness.metrics_text(sc.port)}
    found = [(m, where) for m in markers for where, text in outputs.items() if m in text]
    c.check(name, not found, f"found {found[:5]}")


# ---- scenarios ---------------------------------------------------------------------------


def hostile_names(args, c, tmp):
    logs = os.path.join(tmp, "logs")
    elsewhere = os.path.join(tmp, "elsewhere")
    etc = os.path.join(tmp, "etc")
    for d in (logs, elsewhere, etc, os.path.join(logs, ".podinfo")):
        os.makedirs(d)
    markers = {k: f"{k}-{uuid.uuid4().hex}" for k in
               ("planted", "outside", "hmac", "labels", "sibling")}
    planted = os.path.join(elsewhere, "planted-secret")
    write(planted, secret_line(markers["planted"]))
    outside = os.path.join(elsewhere, "other.log")
    write(outside, secret_line(markers["outside"]))
    key = os.path.join(etc, "hmac.key")
    write(key, secret_line(markers["hmac"]))
    labels = os.path.join(logs, ".podinfo", "labels")  # inside the roots
    write(labels, secret_line(markers["labels"]))
    sibling_target = os.path.join(elsewhere, "sibling-secret")
    write(sibling_target, secret_line(markers["sibling"]))

    app, web = os.path.join(logs, "app.log"), os.path.join(logs, "web.log")
    append_records(app, "app", range(0, 100))
    append_records(web, "web", range(0, 100))
    links = {
        "planted.log": planted, "outside.log": outside, "hmac.log": key, "labels.log": labels,
        "loop.log": "loop.log", "ping.log": "pong.log", "pong.log": "ping.log",
        "zero.log": "/dev/zero",
        "app.log.20240101-000000": sibling_target,  # a generation of app.log
    }
    for name, target in links.items():
        os.symlink(target, os.path.join(logs, name))
    os.mkfifo(os.path.join(logs, "fifo.log"))
    os.mkdir(os.path.join(logs, "dir.log"))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(os.path.join(logs, "sock.log"))

    sc = Sidecar(args, tmp, logs, extra_top=[
        "redact:", f"  hmac_key_file: {json.dumps(key)}",
        "enrich:", "  kubernetes: false", f"  labels_file: {json.dumps(labels)}"])
    os.symlink(sc.cfg, os.path.join(logs, "config.log"))
    sc.start()
    try:
        ok, got = sc.poll(lambda: (len(g := sc.seqs("app")) >= 100 and len(sc.seqs("web")) >= 100,
                                   g))
        c.check("hostile_names: the real files are read at start", ok)
        # A rotation makes the input list app.log's generations, the planted
        # sibling among them.
        os.rename(app, app + ".20240101-000001")
        append_records(app + ".20240101-000001", "app", range(100, 150))
        append_records(app, "app", range(150, 300))
        for k in range(100, 300, 50):
            append_records(web, "web", range(k, k + 50))
            time.sleep(0.05)
        sc.poll(lambda: (len(sc.seqs("app")) >= 300 and len(sc.seqs("web")) >= 300, None))
        time.sleep(1.0)  # ten more scans: counts must not grow, nothing more read
        check_once(c, "hostile_names: app.log (rotated meanwhile) tailed, every record once",
                   sc.seqs("app"), range(300))
        check_once(c, "hostile_names: web.log tailed, every record once",
                   sc.seqs("web"), range(300))
        want = {"outside_roots": 3, "secret_file": 3, "not_regular": 4, "symlink_loop": 3}
        got = sc.skipped()
        c.check("hostile_names: each refused file counted once under its reason", got == want,
                f"got {got}, want {want}")
        err = sc.stderr()
        refused = ["planted.log", "outside.log", "hmac.log", "labels.log", "config.log",
                   "loop.log", "ping.log", "pong.log", "zero.log", "fifo.log", "dir.log",
                   "sock.log", "app.log.20240101-000000"]
        counts = {n: err.count(f"not reading {os.path.join(logs, n)}:") for n in refused}
        c.check("hostile_names: each refused file logged once",
                all(v == 1 for v in counts.values()), str(counts))
        c.check("hostile_names: the secret and config files are refused as secrets",
                all(f"not reading {os.path.join(logs, n)}: it is one of logveil's own" in err
                    for n in ("hmac.log", "labels.log", "config.log")))
        check_no_leak(c, "hostile_names: no planted secret in output, stderr or metrics",
                      sc, markers.values())
        c.check("hostile_names: nothing but the real files' records was shipped",
                all(r.get("src") in ("app", "web") for r in sc.records()),
                str([r for r in sc.records() if r.get("src") not in ("app", "web")][:3]))
    finally:
        rc = sc.stop()
        sock.close()
    c.check("hostile_names: SIGTERM exits 0 (no read blocked on the FIFO)", rc == 0,
            f"exit status {rc}")


def allowed_roots(args, c, tmp):
    logs = os.path.join(tmp, "logs")
    real = os.path.join(tmp, "pods")
    os.makedirs(logs)
    os.makedirs(real)
    marker = f"notroot-{uuid.uuid4().hex}"
    inside = os.path.join(real, "0.log")
    append_records(inside, "pod", range(100))
    os.symlink(inside, os.path.join(logs, "pod.log"))  # like /var/log/containers
    write(os.path.join(logs, "local.log"), secret_line(marker))  # in the glob's dir only
    sc = Sidecar(args, tmp, logs, extra_input=[f"    allowed_roots: {json.dumps([real])}"])
    sc.start()
    try:
        ok, _ = sc.poll(lambda: (len(sc.seqs("pod")) >= 100, None))
        time.sleep(0.5)
        check_once(c, "allowed_roots: a link into the allowed root is read", sc.seqs("pod"),
                   range(100))
        got = sc.skipped()
        c.check("allowed_roots: a file outside them is refused, though in the glob's directory",
                got["outside_roots"] == 1, str(got))
        check_no_leak(c, "allowed_roots: the refused file is not shipped", sc, [marker])
    finally:
        rc = sc.stop()
    c.check("allowed_roots: SIGTERM exits 0", rc == 0, f"exit status {rc}")


RACE_SECONDS = 6.0


def swap_race(args, c, tmp):
    logs = os.path.join(tmp, "logs")
    safe = os.path.join(logs, ".safe")  # inside the roots, not matched by the glob
    elsewhere = os.path.join(tmp, "elsewhere")
    etc = os.path.join(tmp, "etc")
    for d in (logs, safe, elsewhere, etc):
        os.makedirs(d)
    markers = {k: f"{k}-{uuid.uuid4().hex}" for k in ("key", "planted")}
    key = os.path.join(etc, "hmac.key")
    write(key, secret_line(markers["key"]))
    planted = os.path.join(elsewhere, "planted")
    write(planted, secret_line(markers["planted"]))
    real = os.path.join(logs, "real.log")
    append_records(real, "real", range(50))
    sc = Sidecar(args, tmp, logs, scan_interval=0.01,
                 extra_top=["redact:", f"  hmac_key_file: {json.dumps(key)}"])
    sc.start()
    swaps = made = 0
    try:
        deadline = time.monotonic() + RACE_SECONDS
        fixed = [os.path.join(logs, f"race{i}.log") for i in range(4)]
        seq = 50
        while time.monotonic() < deadline and sc.proc.poll() is None:
            # A fixed name switched back and forth between a harmless file
            # and a secret (the key, or a file outside the roots).
            link = fixed[made % 4]
            secret = key if made % 2 == 0 else planted
            # A new harmless inode every time, so that the sidecar keeps
            # finding and opening new files while the names move.
            h = os.path.join(safe, f"n{made}")
            append_records(h, "h", [made])
            made += 1
            for _ in range(3):
                relink(h, link)
                relink(secret, link)
                swaps += 2
            relink(h, link)
            fresh = os.path.join(logs, f"fresh{made % 8}.log")
            relink(secret, fresh)
            relink(h, fresh)
            swaps += 3
            old = os.path.join(safe, f"n{made - 16}")
            if made > 16:
                os.unlink(old)
            if made % 10 == 0:
                append_records(real, "real", range(seq, seq + 10))
                seq += 10
        ok, _ = sc.poll(lambda: (len(sc.seqs("real")) >= seq, None))
        time.sleep(0.5)
        check_once(c, f"swap_race: the real file next to the race is tailed ({seq} records)",
                   sc.seqs("real"), range(seq))
        harmless_read = sum(1 for r in sc.records() if r.get("src") == "h")
        got = sc.skipped()
        c.check(f"swap_race: {swaps} swaps over {made} new files; harmless targets were read "
                f"({harmless_read} records) and secrets refused", harmless_read > 0 and
                (got["secret_file"] or 0) > 0 and (got["outside_roots"] or 0) > 0, str(got))
        check_no_leak(c, "swap_race: no secret read, whatever the timing", sc, markers.values())
        c.check("swap_race: the sidecar is alive", sc.proc.poll() is None)
    finally:
        rc = sc.stop()
    c.check("swap_race: SIGTERM exits 0", rc == 0, f"exit status {rc}")


SCENARIOS = [hostile_names, allowed_roots, swap_race]


def main():
    return harness.run_scenarios(__doc__, "logveil-confine-", SCENARIOS, Sidecar.running)


if __name__ == "__main__":
    sys.exit(main())
