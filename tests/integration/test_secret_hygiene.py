#!/usr/bin/env python3
"""Secrets given to logveil never come out of it: every output of a run with
known keys is searched for them.

Each key is random, so finding it (or either half of it) anywhere is a leak.
Scenarios:

- run: `logveil run` with hmac_key_file (mode 0644: the warning must name
  the file, not its content), the key used by a hash rule, a tail input on
  a directory holding a symlink to the key file, and the admin server: the
  records (stdout), stderr, /metrics and the probes hold no part of the key;
  the hashes in the output are HMAC-SHA256 with that key (computed here with
  Python's hmac, so the key was used); while the sidecar runs, its memory
  holds the key exactly once (the redactor's copy: the file buffer, the
  configuration's copy and the YAML text were wiped).
- check_config: `check-config` on a valid file, on a file refused by
  strict_secret_files, with a key given both inline (through ${VAR}) and as
  a file, with a key file over 64 KiB, with an inline key followed by a
  YAML syntax error, with an inline key where a map is expected, and with
  an inline key holding "${" (a bad variable reference): no message holds
  any part of the key.
- filter_stats: `logveil filter --stats` with the key: stdout and the
  counters on stderr hold no part of it.

Usage: test_secret_hygiene.py --binary PATH --source REPO
"""
import hashlib
import hmac
import json
import os
import re
import secrets
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

STEP_TIMEOUT = 15.0
TS = "2024-05-01T10:00:00.123456789Z"


def new_key():
    return "K3Y-" + secrets.token_hex(24)


def parts(key):
    """The key and its halves: a leak of either half is a leak."""
    n = len(key) // 2
    return [key, key[:n], key[n:]]


def check_clean(c, name, key, outputs):
    found = [(where, p) for where, text in outputs.items() for p in parts(key) if p in text]
    c.check(name, not found, f"found {found[:3]}")


def write(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def memory_count(pid, needle):
    """How many times `needle` is in the readable memory of `pid`; None when
    /proc/PID/mem cannot be read (not permitted here)."""
    count = 0
    try:
        maps = open(f"/proc/{pid}/maps").read().splitlines()
        mem = open(f"/proc/{pid}/mem", "rb")
    except OSError:
        return None
    with mem:
        for line in maps:
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
            if not m or "r" not in m.group(3) or "[vvar]" in line or "[vsyscall]" in line:
                continue
            start, end = int(m.group(1), 16), int(m.group(2), 16)
            if end - start > 1 << 30:
                continue  # reserved address space, not data
            try:
                mem.seek(start)
                count += mem.read(end - start).count(needle)
            except (OSError, ValueError, OverflowError, MemoryError):
                continue
    return count


def run(args, c, tmp):
    key = new_key()
    key_path = os.path.join(tmp, "hmac.key")
    write(key_path, key + "\n", 0o644)
    logs = os.path.join(tmp, "logs")
    os.makedirs(logs)
    os.symlink(key_path, os.path.join(logs, "key.log"))
    port = harness.free_port()
    cfg = os.path.join(tmp, "logveil.yaml")
    write(cfg, "environment: development\n"
               f"state_dir: {json.dumps(os.path.join(tmp, 'state'))}\n"
               "redact:\n"
               f"  hmac_key_file: {json.dumps(key_path)}\n"
               "  keys: [{key: user, action: hash}]\n"
               "inputs:\n"
               "  - type: stdin\n"
               "  - type: tail\n"
               f"    paths: [{json.dumps(os.path.join(logs, '*.log'))}]\n"
               "    scan_interval: 0.1\n"
               "outputs:\n  - type: stdout\n"
               f'admin:\n  listen: "127.0.0.1:{port}"\n')
    out_path, err_path = os.path.join(tmp, "out.jsonl"), os.path.join(tmp, "stderr.log")
    users = [f"user-{i}" for i in range(5)]
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen([args.binary, "run", "--config", cfg], stdin=subprocess.PIPE,
                                stdout=out, stderr=err)
    scraped = {}
    try:
        proc.stdin.write("".join(json.dumps({"user": u, "msg": "login"}) + "\n"
                                 for u in users).encode())
        proc.stdin.flush()
        ok, _ = harness.poll(lambda: ((r := harness.request(port, "/readyz")) is not None
                                      and r[0] == 200, r), proc, STEP_TIMEOUT)
        c.check("run: the sidecar is ready", ok)
        ok, _ = harness.poll(lambda: (open(out_path).read().count("\n") >= len(users), None),
                             proc, STEP_TIMEOUT)
        time.sleep(0.5)  # a few scans of the directory holding the symlink
        for path in ("/metrics", "/livez", "/readyz"):
            r = harness.request(port, path)
            scraped[path] = r[2] if r else ""
        # The key's second half: a freed buffer keeps it even where the
        # allocator has written over the first bytes.
        count = None if harness.sanitized(args.binary) else \
            memory_count(proc.pid, key[len(key) // 2:].encode())
        if harness.sanitized(args.binary):
            print("skip run: key copies in memory (ASan build: its allocator keeps freed "
                  "blocks and its own copies)")
        elif count is None:
            print("skip run: the sidecar's memory cannot be read here (/proc/PID/mem)")
        else:
            c.check(f"run: the key is in the sidecar's memory exactly once ({count})",
                    count == 1)
        proc.terminate()
        rc = proc.wait(timeout=STEP_TIMEOUT)
        c.check("run: SIGTERM exits 0", rc == 0, f"exit status {rc}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out, err = open(out_path).read(), open(err_path).read()
    records = [json.loads(l) for l in out.splitlines() if l.strip()]
    # hmac:<key id>:<16 hex>; hmac_key_file's id is derived from the key.
    kid = hmac.new(key.encode(), b"logveil-key-id", hashlib.sha256).hexdigest()[:8]
    want = {f"hmac:{kid}:" + hmac.new(key.encode(), u.encode(), hashlib.sha256).hexdigest()[:16]
            for u in users}
    got = {r.get("user") for r in records}
    c.check("run: the hashes are HMAC-SHA256 under the key", got == want,
            f"got {sorted(got)[:2]}, want {sorted(want)[:2]}")
    c.check("run: the world-readable key file is warned about, by name",
            f"secret file {key_path} is readable by every user" in err, err[-500:])
    c.check("run: the symlink to the key file is refused",
            "key.log: it is one of logveil's own" in err)
    check_clean(c, "run: no part of the key in the records, stderr, /metrics or the probes", key,
                {"stdout": out, "stderr": err, **scraped})


def check_config(args, c, tmp):
    key = new_key()
    key_path = os.path.join(tmp, "hmac.key")
    write(key_path, key + "\n", 0o600)
    big_path = os.path.join(tmp, "big.key")
    write(big_path, (key + "\n") * (70 * 1024 // len(key)), 0o600)
    base = "environment: development\n"
    cases = {
        "valid": (base + f"redact:\n  hmac_key_file: {key_path}\n", 0),
        "strict and readable": (f"strict_secret_files: true\n{base}redact:\n"
                                f"  hmac_key_file: {key_path}\n", 2),
        "inline and file": (base + "redact:\n  hmac_key: ${LV_KEY}\n"
                            f"  hmac_key_file: {key_path}\n", 2),
        "too big": (base + f"redact:\n  hmac_key_file: {big_path}\n", 2),
        "syntax error after": (base + f"redact:\n  hmac_key: {key}\n  keys: [unclosed\n", 2),
        "inline where a map is": (base + f"redact: {key}\n", 2),
        "inline as a list": (base + f"redact:\n  hmac_key: [{key}]\n", 2),
        "unknown key": (base + f"redact:\n  hmac_kee: {key}\n", 2),
        "a ${ inside the key": (base + f"redact:\n  hmac_key: \"{key[:8]}${{{key[8:]}\"\n", 2),
    }
    for name, (text, want_rc) in cases.items():
        cfg = os.path.join(tmp, "c.yaml")
        write(cfg, text)
        if name == "strict and readable":
            os.chmod(key_path, 0o640)
        r = subprocess.run([args.binary, "check-config", cfg], capture_output=True, text=True,
                           timeout=STEP_TIMEOUT, env=harness.clean_env(LV_KEY=key))
        os.chmod(key_path, 0o600)
        c.check(f"check_config ({name}): exit status {want_rc}", r.returncode == want_rc,
                f"got {r.returncode}: {r.stdout[-200:]} {r.stderr[-300:]}")
        check_clean(c, f"check_config ({name}): no part of the key in what it prints", key,
                    {"stdout": r.stdout, "stderr": r.stderr})


def filter_stats(args, c, tmp):
    key = new_key()
    key_path = os.path.join(tmp, "hmac.key")
    write(key_path, key + "\n")
    cfg = os.path.join(tmp, "f.yaml")
    write(cfg, "environment: development\nredact:\n"
               f"  hmac_key_file: {key_path}\n  keys: [{{key: user, action: hash}}, password]\n")
    lines = "".join(json.dumps({"user": f"u{i}", "password": key, "msg": key}) + "\n"
                    for i in range(20))
    r = subprocess.run([args.binary, "filter", "--config", cfg, "--stats"], input=lines,
                       capture_output=True, text=True, timeout=STEP_TIMEOUT,
                       env=harness.clean_env())
    c.check("filter_stats: exit status 0", r.returncode == 0, r.stderr[-300:])
    c.check("filter_stats: the counters are printed", "logveil_input_records_total 20" in r.stderr)
    # The records carried the key as a value: "password" is a key rule, and
    # "msg" is free text that no rule knows. So only the password must go.
    out = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
    c.check("filter_stats: the key as a password value is redacted in every record",
            len(out) == 20 and all(o.get("password") == "[REDACTED]" for o in out))
    check_clean(c, "filter_stats: no part of the key on stderr", key, {"stderr": r.stderr})


SCENARIOS = [run, check_config, filter_stats]


def main():
    return harness.run_scenarios(__doc__, "logveil-secrets-", SCENARIOS, [])


if __name__ == "__main__":
    sys.exit(main())
