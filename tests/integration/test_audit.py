#!/usr/bin/env python3
"""The tamper-evident audit trail end to end.

10,000 audit records (always_keep: log.type = audit) in a CRI log file go
through `logveil run` (tail input, file output) with two restarts in
between: a SIGTERM, and a kill -9 while records are being read and shipped.
(Reload by SIGHUP is not implemented in logveil yet, so there is no reload.)
Then:

- `logveil verify-audit --expect-last N` (N from logveil_audit_last_seq on
  /metrics) passes on the export, and an oracle written here with Python's
  hmac module, sharing no code with logveil, agrees: every seq from 1 to N
  is there, every link verifies, and every one of the 10,000 application
  records is chained;
- each tampering of a copy of the export is flagged, at the right seq, with
  a non-zero exit: one record deleted, a range deleted, one byte of a field
  changed, the contents of two records swapped, a forged record inserted,
  the tail cut (seen with --expect-last); a record duplicated is reported as
  a duplicate and the chain still passes;
- a key other than the audit key verifies nothing;
- after a rotation of the audit key the chain goes on, and verify-audit
  checks it with both keys given by id.

Usage: test_audit.py --binary PATH --source REPO
"""
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

TOTAL = 10000
STEP_TIMEOUT = 60.0


def cri_line(n):
    ts = f"2025-03-01T10:{n // 3600 % 60:02d}:{n // 60 % 60:02d}.{n % 1000000:06d}000Z"
    rec = {"log": {"type": "audit"}, "n": n, "user": f"u{n}", "action": "login",
           "password": f"pw-{n}"}
    return f"{ts} stdout F {json.dumps(rec, separators=(',', ':'))}\n"


def info_line(n):
    return f'2025-03-01T10:00:00.000000000Z stdout F {{"level":"info","msg":"noise {n}"}}\n'


def append(path, first, last):
    with open(path, "a") as f:
        for n in range(first, last):
            f.write(cri_line(n))
            if n % 10 == 0:
                f.write(info_line(n))


# ---- the oracle: an independent reading of the chain ------------------------------------

CHAIN = re.compile(r'"chain":"([0-9a-f]{64})"\}\}$')


def oracle(lines, key):
    """The export checked as the README describes it. Returns {stream:
    (verified, seqs that fail, missing seqs outside declared windows, max
    seq, missing seqs inside them)}. A record links to the chain of seq - 1,
    or of from - 1 when its audit member declares "restart": [from, seq - 1]
    (seqs in flight at an unclean stop, which may be missing)."""
    streams = {}
    for line in lines:
        line = line.rstrip("\n")
        m = CHAIN.search(line)
        if not m:
            continue
        audit = json.loads(line)["audit"]
        msg = (line[:m.start(1)] + line[m.end(1):]).encode()
        versions = streams.setdefault(audit["stream"], {}).setdefault(audit["seq"], [])
        entry = (msg, bytes.fromhex(m.group(1)), audit.get("restart"))
        if entry not in versions:
            versions.append(entry)
    results = {}
    for stream, seqs in streams.items():
        verified, bad, windows = 0, set(), []
        for seq, versions in seqs.items():
            for msg, chain, restart in versions:
                linked = (restart[0] if restart else seq) - 1
                prevs = [b"\0" * 32] if linked == 0 else [c for _, c, _ in seqs.get(linked, [])]
                if any(hmac.compare_digest(hmac.new(key, p + msg, hashlib.sha256).digest(), chain)
                       for p in prevs):
                    verified += 1
                    if restart:
                        windows.append(range(restart[0], restart[1] + 1))
                else:
                    bad.add(seq)
        last = max(seqs)
        missing = [s for s in range(1, last + 1) if s not in seqs]
        declared = [s for s in missing if any(s in w for w in windows)]
        results[stream] = (verified, bad, sorted(set(missing) - set(declared)), last, declared)
    return results


# ---- running logveil ----------------------------------------------------------------------

class Sidecar:
    def __init__(self, args, tmp):
        self.args, self.tmp = args, tmp
        self.log = os.path.join(tmp, "app.log")
        self.out = os.path.join(tmp, "out.jsonl")
        self.err = os.path.join(tmp, "stderr.log")
        self.key = os.path.join(tmp, "audit.key")
        self.port = harness.free_port()
        with open(self.key, "wb") as f:
            f.write(harness.random_key())
        self.cfg = os.path.join(tmp, "logveil.yaml")
        with open(self.cfg, "w") as f:
            f.write("\n".join([
                "environment: production",
                f"state_dir: {json.dumps(os.path.join(tmp, 'state'))}",
                "shutdown_timeout: 5",
                "inputs:",
                "  - type: tail",
                "    format: cri",
                f"    paths: [{json.dumps(self.log)}]",
                "    scan_interval: 0.1",
                "outputs:",
                "  - type: file",
                f"    path: {json.dumps(self.out)}",
                "admin:",
                f'  listen: "127.0.0.1:{self.port}"',
                "audit:",
                f"  key_file: {json.dumps(self.key)}",
                "  stream: it-pod/app",
            ]) + "\n")
        self.proc = None

    def start(self):
        with open(self.err, "ab") as err:
            self.proc = subprocess.Popen([self.args.binary, "run", "--config", self.cfg],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=err)
        harness.wait_for(lambda: harness.metrics_text(self.port) or self.proc.poll() is not None,
                         STEP_TIMEOUT)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STEP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def audit_ns(self):
        """The n of every audit record written whole so far."""
        try:
            with open(self.out) as f:
                text = f.read()
        except FileNotFoundError:
            return set()
        text = text[:text.rfind("\n") + 1]
        return {json.loads(l)["n"] for l in text.splitlines() if '"audit":{' in l}

    def wait_count(self, n):
        ok, got = harness.poll(lambda: (len(c := self.audit_ns()) >= n, c), self.proc,
                               STEP_TIMEOUT, 0.1)
        return got or set()


def verify(args, key, lines, *extra, key_arg=None):
    r = subprocess.run([args.binary, "verify-audit", "--key-file", key_arg or key, *extra],
                       input="".join(lines), capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


def summary(out):
    """The numbers of the stream's summary line."""
    m = re.search(r"records (\d+), links verified (\d+), gaps (\d+) \((\d+) missing\), "
                  r"altered (\d+), reordered (\d+), duplicates (\d+), forked (\d+), "
                  r"unverifiable (\d+), replayed (\d+), declared in flight (\d+): (\w+)", out)
    if not m:
        return None
    keys = ("records", "verified", "gaps", "missing", "altered", "reordered", "duplicates",
            "forked", "unverifiable", "replayed", "declared")
    d = dict(zip(keys, map(int, m.groups()[:-1])))
    d["verdict"] = m.groups()[-1]
    return d


# ---- the scenario --------------------------------------------------------------------------

def ship(args, c, tmp):
    sc = Sidecar(args, tmp)
    append(sc.log, 0, 4000)
    sc.start()
    c.check("first run delivers 4,000 audit records", len(sc.wait_count(4000)) >= 4000)
    c.check("first run stops cleanly on SIGTERM", sc.stop() == 0)
    append(sc.log, 4000, 7000)  # written while it is down
    sc.start()
    def trickle():  # 1,500 more over about 1.5 s
        for first in range(7000, 8500, 50):
            append(sc.log, first, first + 50)
            time.sleep(0.05)
    writer = threading.Thread(target=trickle)
    writer.start()
    got = sc.wait_count(7600)
    sc.kill9()  # while the application is still writing and logveil shipping
    writer.join()
    c.check("second run was killed mid-stream (kill -9)", 7600 <= len(got) < 8500,
            f"{len(got)} delivered")
    append(sc.log, 8500, TOTAL)
    sc.start()
    got = sc.wait_count(TOTAL)
    c.check("third run delivers every one of the 10,000 audit records",
            got == set(range(TOTAL)), f"{len(got)} distinct")
    last = harness.sample(harness.metrics_text(sc.port), "logveil_audit_last_seq")
    c.check("third run stops cleanly", sc.stop() == 0)
    with open(sc.out) as f:
        lines = f.readlines()
    return sc, lines, int(last or 0)


def check_whole(args, c, sc, lines, last):
    key = open(sc.key, "rb").read()
    res = oracle(lines, key)
    c.check("one audit stream, named as configured", list(res) == ["it-pod/app"], str(list(res)))
    verified, bad, missing, top, declared = res.get("it-pod/app", (0, {0}, [0], 0, []))
    c.check("oracle: every seq from 1 to the last is there, or declared in flight at the "
            "kill -9", not missing, f"missing {missing[:10]}, {len(declared)} declared")
    c.check("oracle: every link verifies", not bad, f"bad {sorted(bad)[:10]}")
    restarts = sum(1 for l in lines if '"restart":[' in l)
    c.check("at most one restart declared (after the kill -9)", restarts <= 1, f"{restarts}")
    c.check("oracle: the last seq is the one /metrics shows", top == last, f"{top} vs {last}")
    seq_n = {}
    for l in lines:
        m = CHAIN.search(l.rstrip("\n"))
        if m:
            rec = json.loads(l)
            seq_n.setdefault(rec["audit"]["seq"], rec["n"])
    firsts = {}
    for seq in sorted(seq_n):
        firsts.setdefault(seq_n[seq], seq)
    again = sum(1 for seq, n in seq_n.items() if firsts[n] != seq)
    c.check("each seq holds one record: the 10,000, those read again after kill -9 (same n as "
            "a lower seq), and none reused", len(seq_n) == TOTAL + again and
            len(firsts) == TOTAL and top == len(seq_n) + len(declared),
            f"last seq {top}, {again} read again, {len(declared)} declared, "
            f"{len(firsts)} distinct")
    rc, out, err = verify(args, sc.key, lines, "--expect-last", str(last))
    s = summary(out)
    c.check("verify-audit passes on the export (exit 0, whole)",
            rc == 0 and s and s["verdict"] == "whole", out[-2000:] + err)
    if s:
        c.check("verify-audit verified as many links as the oracle",
                s["verified"] == verified, f"{s['verified']} vs {verified}")
        c.check("verify-audit reports the records read again as replayed, the seqs in flight "
                "at the kill as declared", s["replayed"] == again and
                s["declared"] == len(declared), f"{s['replayed']} replayed, {s['declared']} "
                f"declared")
    return key


def audit_lines(lines):
    """{seq: index in lines} of the first line of each seq."""
    at = {}
    for i, l in enumerate(lines):
        m = re.search(r'"seq":(\d+),"chain"', l)
        if m and int(m.group(1)) not in at:
            at[int(m.group(1))] = i
    return at


def body_and_audit(line):
    i = line.rfind(',"audit":{')
    return line[:i], line[i:]


def check_tampering(args, c, sc, lines, last):
    at = audit_lines(lines)
    declared = set(oracle(lines, open(sc.key, "rb").read())["it-pod/app"][4])

    def near(k):
        """k, or the next seq that is there and not in a declared window."""
        while k not in at or any(s in declared for s in range(k - 1, k + 11)):
            k += 1
        return k

    def run(name, tampered, *extra, want_rc=1, expect=(), absent=()):
        rc, out, err = verify(args, sc.key, tampered, *extra)
        ok = rc == want_rc and all(re.search(e, out) for e in expect) and \
            not any(re.search(a, out) for a in absent)
        c.check(name, ok, f"exit {rc}\n{out[-1500:]}{err}")
        return out

    k = near(4321)
    run("delete one: a gap at exactly that seq", [l for i, l in enumerate(lines) if i != at[k]],
        expect=[rf"gap seq {k}\.\.{k} \(1 missing\)", "BROKEN"], absent=["altered seq"])
    lo = near(5000)
    hi = lo + 9
    drop = {at[s] for s in range(lo, hi + 1)}
    run("delete a range: one gap covering it", [l for i, l in enumerate(lines) if i not in drop],
        expect=[rf"gap seq {lo}\.\.{hi} \(10 missing\)"], absent=["altered seq"])
    t = list(lines)
    k = near(777)
    t[at[k]] = t[at[k]].replace('"user":"u', '"user":"U', 1)
    run("change one byte of a field: altered at that seq", t,
        expect=[rf"altered seq {k} line", "altered 1,"], absent=["gap seq"])
    t = list(lines)
    a, b = near(1200), near(2400)
    (ba, aa), (bb, ab) = body_and_audit(t[at[a]]), body_and_audit(t[at[b]])
    t[at[a]], t[at[b]] = bb + aa, ba + ab
    run("swap the contents of two: both reported as reordered, not altered", t,
        expect=[rf"reordered seq {a} line \d+: holds the content of seq {b}",
                rf"reordered seq {b} line \d+: holds the content of seq {a}"],
        absent=["altered seq"])
    t = list(lines)
    k = near(3000)
    t.insert(at[k] + 1, t[at[k]])
    out = run("duplicate one: a duplicate, and the chain still whole", t, want_rc=0,
              expect=[rf"duplicate seq {k} line", "whole"])
    s = summary(out)
    c.check("the duplicate is counted once more than in the export",
            s is not None and s["duplicates"] >= 1)
    t = list(lines)
    k = near(6000)
    forged = t[at[k]].replace('"action":"login"', '"action":"grant-admin"')
    t.insert(at[k] + 1, forged)
    run("insert a forged record (an existing seq, other content): flagged at that seq", t,
        expect=[rf"altered seq {k} line"])
    t = list(lines)
    forged = re.sub(r'"seq":\d+,"chain":"[0-9a-f]{64}"',
                    f'"seq":{last + 1},"chain":"{"ab" * 32}"', t[at[10]])
    t.append(forged)
    run("append a forged record after the last: altered at its seq", t,
        expect=[rf"altered seq {last + 1} line"])
    cut = {at[s] for s in range(last - 4, last + 1)}
    t = [l for i, l in enumerate(lines) if i not in cut]
    run("cut the tail: passes without --expect-last (nothing to compare with)", t, want_rc=0)
    run("cut the tail: a gap up to the expected last seq with --expect-last", t,
        "--expect-last", str(last), expect=[rf"gap seq {last - 4}\.\.{last} \(5 missing\)"])
    k = near(9000)
    run("--from-seq: a chain verified from the middle", lines[at[k]:], "--from-seq", str(k),
        "--expect-last", str(last), want_rc=0, expect=["whole"])
    # A forged restart declaration cannot hide a deletion.
    k = near(3500)
    t = [l for i, l in enumerate(lines) if i != at[k]]
    t[at[k + 1] - 1] = re.sub(r'"seq":(\d+),"chain"', lambda m: f'"seq":{m.group(1)},"restart":'
                              f'[{k},{k}],"chain"', t[at[k + 1] - 1], count=1)
    run("a deletion disguised by a forged restart declaration: a gap and an altered record",
        t, expect=[rf"gap seq {k}\.\.{k}", rf"altered seq {k + 1} line"])
    other = os.path.join(sc.tmp, "other.key")
    with open(other, "wb") as f:
        f.write(harness.random_key())
    rc, out, _ = verify(args, other, lines, key_arg=other)
    s = summary(out)
    c.check("another key verifies nothing", rc == 1 and s is not None and s["verified"] == 0,
            out[-500:])
    rc, out, _ = verify(args, sc.key, ['{"audit":{"seq":1,"chain":"zz"}}\n', "not json\n",
                                       '{"a":1,"audit":{"stream":"s","key":"k","seq":-1,'
                                       '"chain":"' + "0" * 64 + '"}}\n'])
    c.check("malformed audit records are reported with their line, exit 1",
            rc == 1 and "malformed line 1" in out and "malformed line 3" in out, out)


def key_rotation(args, c, tmp):
    """The audit key changes between two runs: the chain goes on (seq and
    prev carry over), each record names its key id, and verify-audit needs
    both keys, given by id."""
    keys = {}
    for kid in ("a2025", "a2026"):
        keys[kid] = os.path.join(tmp, kid)
        with open(keys[kid], "wb") as f:
            f.write(harness.random_key())
    out = []
    for run_no, kid in enumerate(("a2025", "a2026")):
        cfg = os.path.join(tmp, f"{kid}.yaml")
        with open(cfg, "w") as f:
            f.write(f"state_dir: {json.dumps(os.path.join(tmp, 'state'))}\n"
                    f"audit: {{key_file: {json.dumps(keys[kid])}, key_id: {kid}, stream: rot}}\n")
        lines = "".join(json.dumps({"log": {"type": "audit"}, "n": run_no * 10 + i,
                                    "time": "2025-01-01T00:00:00Z"}) + "\n" for i in range(10))
        r = subprocess.run([args.binary, "filter", "--config", cfg], input=lines,
                           capture_output=True, text=True, timeout=30)
        c.check(f"key rotation: run {run_no + 1} (key {kid}) exits 0", r.returncode == 0,
                f"exit {r.returncode}: {r.stderr[-400:]}")
        out += r.stdout.splitlines(keepends=True)
    ids = [json.loads(l)["audit"]["key"] for l in out]
    seqs = [json.loads(l)["audit"]["seq"] for l in out]
    c.check("key rotation: records name the key that chained them, seq goes on",
            ids == ["a2025"] * 10 + ["a2026"] * 10 and seqs == list(range(1, 21)), f"{ids} {seqs}")
    both = ["--key-file", f"a2025={keys['a2025']}", "--key-file", f"a2026={keys['a2026']}"]
    r = subprocess.run([args.binary, "verify-audit", *both], input="".join(out),
                       capture_output=True, text=True, timeout=30)
    s = summary(r.stdout)
    c.check("key rotation: verify-audit with both keys by id passes across the change",
            r.returncode == 0 and s and s["verified"] == 20, r.stdout[-600:])
    res = oracle(out, open(keys["a2025"], "rb").read())
    c.check("key rotation: the Python oracle with the old key verifies exactly the old records",
            res["rot"][0] == 10 and res["rot"][1] == set(range(11, 21)), str(res["rot"][:2]))
    cfg = os.path.join(tmp, "other-stream.yaml")
    with open(cfg, "w") as f:
        f.write(f"state_dir: {json.dumps(os.path.join(tmp, 'state'))}\n"
                f"audit: {{key_file: {json.dumps(keys['a2026'])}, key_id: a2026, stream: rot2}}\n")
    other = subprocess.run([args.binary, "filter", "--config", cfg],
                           input='{"log":{"type":"audit"},"n":99}\n' * 3, capture_output=True,
                           text=True, timeout=30).stdout.splitlines(keepends=True)
    mixed = [l for pair in zip(out, other) for l in pair] + out[len(other):]
    r = subprocess.run([args.binary, "verify-audit", *both], input="".join(mixed),
                       capture_output=True, text=True, timeout=30)
    c.check("two streams interleaved in one export: each checked on its own, both whole",
            r.returncode == 0 and 'stream "rot": seq 1..20, records 20' in r.stdout and
            'stream "rot2": seq 1..3, records 3' in r.stdout, r.stdout[-600:])
    r = subprocess.run([args.binary, "verify-audit", "--key-file", f"a2025={keys['a2025']}"],
                       input="".join(out), capture_output=True, text=True, timeout=30)
    c.check("key rotation: without the new key, its records do not verify (exit 1)",
            r.returncode == 1 and "NOT VERIFIED" in r.stdout, r.stdout[-300:])


def main():
    ap = harness.parser(__doc__)
    args = ap.parse_args()
    c = harness.Checks(ok_detail=True)  # the figures (seqs, replays) in the log

    def scenario(tmp):
        sc, lines, last = ship(args, c, tmp)
        check_whole(args, c, sc, lines, last)
        check_tampering(args, c, sc, lines, last)
        if c.failed:
            with open(sc.err, errors="replace") as f:
                print("--- logveil stderr ---\n" + f.read()[-4000:])
    harness.run_in_tmp(c, "logveil-audit-", scenario)
    harness.run_in_tmp(c, "logveil-audit-rotation-", lambda tmp: key_rotation(args, c, tmp))
    return c.report()


if __name__ == "__main__":
    sys.exit(main())
