#!/usr/bin/env python3
"""Pseudonyms: `logveil pseudonym` and what `logveil filter` writes under
action hash, checked against an oracle outside logveil (Python's hmac module
and the published RFC 4231 vectors).

- golden vectors: RFC 4231 test cases 6 and 7 (the 131-byte key; the
  shorter RFC keys are below the 32-byte minimum, and refused with
  file:line), at full length (hmac_length: 64) and at the default 16 digits;
- rotation: with hmac_keys [new, old], records carry the new id, and
  `pseudonym` prints the value under both keys, the old line being exactly
  what a pipeline with only the old key wrote;
- the old hmac_key_file: a derived id, the first 8 hex digits of
  HMAC-SHA256(key, "logveil-key-id");
- cross-process equality: two `filter` processes, and `pseudonym` with
  values as arguments and on stdin, agree;
- the key never appears in any output or message.

Usage: test_pseudonym.py --binary PATH --source REPO
"""
import hashlib
import hmac
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

RFC4231_KEY = b"\xaa" * 131
RFC4231 = [  # (data, HMAC-SHA256) from RFC 4231, test cases 6 and 7
    (b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    (b"This is a test using a larger than block-size key and a larger than block-size data."
     b" The key needs to be hashed before being used by the HMAC algorithm.",
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
]
VALUES = ["hunter2", "alice@example.com", "日本語の値", "with \"quotes\" and \\", "x"]


def run(args, *argv, stdin=""):
    return subprocess.run([args.binary, *argv], input=stdin.encode(), capture_output=True,
                          timeout=30)


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def config(tmp, name, keys_yaml, extra=""):
    return write(os.path.join(tmp, name), (
        "environment: development\n"
        "redact:\n"
        "  keys: [password, email]\n"
        "  action: hash\n" + keys_yaml + extra).encode())


def oracle(key, value, digits=16):
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:digits]


def pseudonyms(args, c, cfg, values, name):
    r = run(args, "pseudonym", "--config", cfg, *values)
    c.check(f"{name}: pseudonym exits 0", r.returncode == 0, r.stderr.decode())
    return [l.split("\t", 1) for l in r.stdout.decode().splitlines()]


def golden(args, c, tmp):
    key = write(os.path.join(tmp, "rfc.key"), RFC4231_KEY)
    cfg = config(tmp, "rfc.yaml", f"  hmac_keys: [{{id: rfc, file: {key}}}]\n",
                 "  hmac_length: 64\n")
    got = pseudonyms(args, c, cfg, [d.decode() for d, _ in RFC4231], "RFC 4231")
    for (data, want), line in zip(RFC4231, got):
        c.check(f"RFC 4231 vector {want[:8]}: full-length pseudonym equals the RFC's HMAC",
                line[0] == f"hmac:rfc:{want}", line[0])
        c.check(f"RFC 4231 vector {want[:8]}: Python's hmac agrees (the oracle itself)",
                hmac.new(RFC4231_KEY, data, hashlib.sha256).hexdigest() == want)
    cfg16 = config(tmp, "rfc16.yaml", f"  hmac_keys: [{{id: rfc, file: {key}}}]\n")
    got = pseudonyms(args, c, cfg16, [RFC4231[0][0].decode()], "RFC 4231, 16 digits")
    c.check("default length: the first 16 hex digits", got and
            got[0][0] == "hmac:rfc:" + RFC4231[0][1][:16], str(got))
    short = write(os.path.join(tmp, "short.key"), b"\x0b" * 20)  # RFC 4231 test case 1's key
    bad = config(tmp, "short.yaml", f"  hmac_keys:\n    - id: rfc1\n      file: {short}\n")
    r = run(args, "check-config", bad)
    c.check("RFC 4231's 20-byte key is refused with file:line, exit 2",
            r.returncode == 2 and f"{bad}:7: redact.hmac_keys[0].file: {short} holds 20 bytes"
            in r.stderr.decode(), r.stderr.decode())


def filter_records(args, cfg, values):
    lines = "".join(json.dumps({"password": v, "email": v}) + "\n" for v in values)
    r = run(args, "filter", "--config", cfg, stdin=lines)
    return r.returncode, [json.loads(l) for l in r.stdout.decode().splitlines()], r.stderr


def rotation(args, c, tmp):
    # The new key's file has a newline after it, which is not part of the key
    # (random_key never ends in CR or LF, which would make that ambiguous).
    new_key, old_key = harness.random_key(40), harness.random_key(32)
    new = write(os.path.join(tmp, "k2026"), new_key + b"\n")  # one newline is not part of it
    old = write(os.path.join(tmp, "k2025"), old_key)
    only_old = config(tmp, "old.yaml", f"  hmac_keys: [{{id: k2025, file: {old}}}]\n")
    both = config(tmp, "both.yaml",
                  f"  hmac_keys:\n    - {{id: k2026, file: {new}}}\n    - {{id: k2025, file: {old}}}\n")
    rc, old_recs, _ = filter_records(args, only_old, VALUES)
    rc2, new_recs, _ = filter_records(args, both, VALUES)
    rc3, again, _ = filter_records(args, both, VALUES)
    c.check("filter runs under both configurations", rc == rc2 == rc3 == 0)
    c.check("records under the old key carry its id and the oracle's digits",
            [r["password"] for r in old_recs] == [f"hmac:k2025:{oracle(old_key, v)}" for v in VALUES],
            str(old_recs[:2]))
    c.check("after rotation, new records use the new (first) key",
            [r["password"] for r in new_recs] == [f"hmac:k2026:{oracle(new_key, v)}" for v in VALUES],
            str(new_recs[:2]))
    c.check("equal values give equal pseudonyms across keys of a record",
            all(r["password"] == r["email"] for r in new_recs))
    c.check("two processes give the same pseudonyms",
            [(r["password"], r["email"]) for r in again] ==
            [(r["password"], r["email"]) for r in new_recs])
    got = pseudonyms(args, c, both, VALUES, "rotation")
    want = []
    for v, n, o in zip(VALUES, new_recs, old_recs):
        want += [[n["password"], v], [o["password"], v]]
    c.check("pseudonym prints each value under every key, active first, equal to what the "
            "pipelines wrote (the old key's to old records)", got == want,
            f"{got[:4]} vs {want[:4]}")
    r = run(args, "pseudonym", "--config", both, stdin="".join(v + "\n" for v in VALUES))
    c.check("values on stdin give the same lines as arguments",
            [l.split("\t", 1) for l in r.stdout.decode().splitlines()] == want)
    everything = b"".join([r.stdout, r.stderr] + [json.dumps(x).encode() for x in new_recs])
    c.check("no output holds a key", new_key not in everything and old_key not in everything)


def legacy(args, c, tmp):
    key = harness.random_key()
    path = write(os.path.join(tmp, "legacy.key"), key)
    cfg = config(tmp, "legacy.yaml", f"  hmac_key_file: {path}\n")
    derived = hmac.new(key, b"logveil-key-id", hashlib.sha256).hexdigest()[:8]
    rc, recs, err = filter_records(args, cfg, ["hunter2"])
    c.check("hmac_key_file: the key id is derived from the key",
            rc == 0 and recs and recs[0]["password"] == f"hmac:{derived}:{oracle(key, 'hunter2')}",
            f"{recs} {err.decode()}")
    got = pseudonyms(args, c, cfg, ["hunter2"], "legacy")
    c.check("pseudonym agrees under hmac_key_file", got == [[recs[0]["password"], "hunter2"]]
            if recs else False, str(got))
    inline = config(tmp, "inline.yaml", "  hmac_key: " + "k" * 40 + "\n")
    r = run(args, "check-config", inline)
    c.check("an inline key is refused (keys are read from files only), and not echoed",
            r.returncode == 2 and "files only" in r.stderr.decode() and
            "k" * 40 not in r.stderr.decode(), r.stderr.decode())
    nokey = write(os.path.join(tmp, "nokey.yaml"), b"redact: {keys: [password]}\n")
    r = run(args, "pseudonym", "--config", nokey, "x")
    c.check("pseudonym without any key exits 2 and says so",
            r.returncode == 2 and b"no pseudonym key" in r.stderr, r.stderr.decode())


def main():
    args = harness.parser(__doc__).parse_args()
    c = harness.Checks()
    for fn in (golden, rotation, legacy):
        harness.run_in_tmp(c, "logveil-pseudonym-", lambda tmp: fn(args, c, tmp))
    return c.report()


if __name__ == "__main__":
    sys.exit(main())
