#!/usr/bin/env python3
"""The Loki output against a protocol-faithful fake (tests/fakes/fake_loki.py,
which decodes snappy with cramjam and protobuf with the protobuf library and
the classes compiled from Loki's own push.proto, prepared by
tests/loki/proto.py, and checks label syntax and per-stream time order), and
several outputs at once.

- corrupt: the fake itself, given bodies made by hand here: a valid push is
  stored as sent; a field push.proto lacks, a field of the wrong wire type,
  a bad snappy block, a framed snappy stream, an uncompressed body are
  refused (400) and counted as violations;

- protobuf: the default format; records out of time order in the input,
  labels from the allow-list only (environment, kubernetes.namespace,
  log.level), trace_id as structured metadata, the tenant header: every
  record exactly once, with the right labels and metadata;
- json: the JSON body, gzip-compressed, same checks;
- guard: a label with 60 distinct values and max_streams 10: the label is
  demoted to structured metadata, counted in
  logveil_output_labels_demoted_total, said in one log line;
- faults: 503 and 429 pushes retried; a push Loki answers 400 (an entry too
  far behind) dead-lettered with Loki's reason, never retried;
- hostile: label values from records that try to break the label syntax
  (quotes and braces, backslashes, newlines, values far over the length
  cap whose cut falls inside a UTF-8 sequence, lone surrogate escapes, an
  empty value) in the same pushes as ordinary records: every push valid,
  every record delivered once, each value escaped, cut on a character
  boundary, no label that is not on the allow-list;
- fanout: Elasticsearch, Loki and a file at once, Loki down for a while:
  the file and Elasticsearch get everything meanwhile, each record once (no
  resend to them); when Loki is back it gets everything it missed, once.
Always: no planted secret in any push.

Usage: test_loki.py --binary PATH --source REPO
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "loki"))
import harness  # noqa: E402
import proto  # noqa: E402

SECRET = "PLANTED-loki-pw-4411"
K8S = {"POD_NAMESPACE": "shop", "POD_NAME": "api-7d9", "CONTAINER_NAME": "api"}


class Fake:
    def __init__(self, a, tmp, script, name, *extra):
        pf = os.path.join(tmp, f"{name}.port")
        secrets = os.path.join(tmp, "secrets")
        with open(secrets, "w") as f:
            f.write(SECRET + "\n")
        # The fake Loki runs in the venv with its decoders (prepared before).
        python = proto.venv_python() if "loki" in script else sys.executable
        self.proc = subprocess.Popen([python, os.path.join(a.source, "tests", "fakes", script),
                                      "--port-file", pf, "--secrets", secrets, *extra])
        harness.wait_for(lambda: os.path.exists(pf), 10)
        self.url = f"http://127.0.0.1:{open(pf).read()}"
        self.base = "/loki/api/v1/fake" if "loki" in script else "/_fake"

    def get(self, what):
        with urllib.request.urlopen(f"{self.url}{self.base}/{what}", timeout=30) as r:
            return r.read().decode()

    def faults(self, f):
        r = urllib.request.Request(f"{self.url}{self.base}/faults", data=json.dumps(f).encode())
        urllib.request.urlopen(r, timeout=10).read()

    def stats(self):
        return json.loads(self.get("stats"))

    def entries(self):
        return [json.loads(x) for x in self.get("entries").splitlines()]

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def records(n, tag, distinct_users=0):
    out = []
    for i in range(n):
        r = {"level": ["info", "warn", "error"][i % 3], "seq": i, "tag": tag,
             "trace_id": f"tr-{i}", "time": f"2025-11-21T00:00:{59 - i % 60:02d}.{i:06d}Z",
             "password": SECRET}
        if distinct_users:
            r["user"] = f"u{i % distinct_users}"
        out.append(json.dumps(r))
    return ("\n".join(out) + "\n").encode()


def loki_output(url, tmp, name, extra=""):
    return f"""  - type: loki
    name: {name}
    url: {url}
    tenant: team-a
    labels: [environment, kubernetes.namespace, log.level]
    structured_metadata: [trace_id]
    flush_interval: 0.1
    retry_max_delay: 1
    dead_letter: {tmp}/{name}.dead.jsonl
{extra}"""


def run(a, tmp, name, outputs, data, extra="", timeout=120):
    cfg = os.path.join(tmp, f"{name}.yaml")
    with open(cfg, "w") as f:
        f.write(f"inputs: [{{type: stdin}}]\nstate_dir: {tmp}\n{extra}outputs:\n{outputs}")
    return subprocess.run([a.binary, "run", "--config", cfg], input=data, capture_output=True,
                          timeout=timeout, env=harness.clean_env(**K8S))


def of_tag(entries, tag):
    out = []
    for e in entries:
        rec = json.loads(e["line"])
        if rec.get("tag") == tag:
            out.append((rec, e))
    return out


def check_pushed(c, what, got, n):
    seqs = sorted(r["seq"] for r, _ in got)
    c.check(f"{what}: every record exactly once", seqs == list(range(n)),
            f"{len(seqs)} entries, {len(set(seqs))} distinct")
    ok = all(e["labels"] == {"environment": "development", "kubernetes_namespace": "shop",
                             "log_level": r["level"]} and e["meta"] == {"trace_id": r["trace_id"]}
             and r["password"] == "[REDACTED]" for r, e in got)
    c.check(f"{what}: labels from the allow-list only, trace_id as structured metadata", ok,
            str(got[:1])[:300])


def scenario_formats(c, a, loki, es, tmp):
    r = run(a, tmp, "pb", loki_output(loki.url, tmp, "loki"), records(3000, "pb"))
    c.check("protobuf: exit 0", r.returncode == 0, r.stderr.decode()[-300:])
    check_pushed(c, "protobuf", of_tag(loki.entries(), "pb"), 3000)
    r = run(a, tmp, "js", loki_output(loki.url, tmp, "loki", "    format: json\n    gzip: true\n"),
            records(3000, "js"))
    c.check("json: exit 0", r.returncode == 0, r.stderr.decode()[-300:])
    check_pushed(c, "json+gzip", of_tag(loki.entries(), "js"), 3000)
    formats = loki.stats()["formats"]
    c.check("both bodies arrived as such", formats == ["application/json",
                                                       "application/x-protobuf"], str(formats))


def scenario_guard(c, a, loki, es, tmp):
    port = harness.free_port()
    out = loki_output(loki.url, tmp, "loki", "    max_streams: 10\n").replace(
        "labels: [environment, kubernetes.namespace, log.level]",
        "labels: [environment, user, log.level]")
    cfg = os.path.join(tmp, "guard.yaml")
    with open(cfg, "w") as f:
        f.write(f"inputs: [{{type: stdin}}]\nstate_dir: {tmp}\n"
                f"admin: {{listen: '127.0.0.1:{port}'}}\noutputs:\n{out}")
    p = subprocess.Popen([a.binary, "run", "--config", cfg], stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env=harness.clean_env(**K8S))
    RUNNING.append(p)
    p.stdin.write(records(3000, "guard", distinct_users=60))
    p.stdin.flush()
    got = harness.wait_for(lambda: len(of_tag(loki.entries(), "guard")) >= 3000, 30, 0.2)
    demoted = harness.sample(harness.metrics_text(port), "logveil_output_labels_demoted_total",
                             output="loki")
    p.stdin.close()
    err = p.stderr.read().decode()
    p.wait(timeout=30)
    entries = of_tag(loki.entries(), "guard")
    streams = {json.dumps(e["labels"], sort_keys=True) for _, e in entries}
    late = entries[-1000:]
    c.check("guard: every record arrived", bool(got), f"{len(entries)}")
    c.check("guard: the label was demoted once, counted in the metric", demoted == 1,
            f"metric {demoted}")
    c.check("guard: one log line names the label", err.count("label user") == 1, err[-300:])
    c.check("guard: distinct streams stay near the budget", len(streams) <= 10 + 3,
            f"{len(streams)} streams")
    c.check("guard: the demoted label goes as structured metadata",
            all("user" not in e["labels"] and e["meta"].get("user") == r["user"]
                for r, e in late), str(late[:1])[:300])


def scenario_faults(c, a, loki, es, tmp):
    loki.faults({"request_status": [503, 2]})
    r = run(a, tmp, "f1", loki_output(loki.url, tmp, "loki"), records(1000, "f503"))
    loki.faults({"request_status": [429, 2]})
    r2 = run(a, tmp, "f2", loki_output(loki.url, tmp, "loki"), records(1000, "f429"))
    loki.faults({})
    c.check("faults: 503 and 429 retried, exit 0", r.returncode == 0 and r2.returncode == 0)
    check_pushed(c, "faults 503", of_tag(loki.entries(), "f503"), 1000)
    check_pushed(c, "faults 429", of_tag(loki.entries(), "f429"), 1000)
    loki.faults({"reject_containing": '"seq": 7,'})
    r = run(a, tmp, "f400", loki_output(loki.url, tmp, "l400", "    batch_max_bytes: 4096\n"),
            records(200, "f400"))
    loki.faults({})
    dead = [json.loads(x) for x in open(os.path.join(tmp, "l400.dead.jsonl"))]
    c.check("faults: a 400 push is dead-lettered with Loki's reason, not retried",
            r.returncode == 0 and dead and all(d["status"] == 400 and "too far behind" in
                                               d["error"]["reason"] for d in dead) and
            any(d["record"]["seq"] == 7 for d in dead) and
            loki.stats()["pushes"] > 0, str(dead[:1])[:300])


def scenario_fanout(c, a, loki, es, tmp):
    port = harness.free_port()
    out = (loki_output(loki.url, tmp, "loki") +
           f"""  - type: elasticsearch
    url: {es.url}
    index: fanout
    flush_interval: 0.1
  - type: file
    path: {tmp}/fanout.jsonl
""")
    cfg = os.path.join(tmp, "fanout.yaml")
    with open(cfg, "w") as f:
        f.write(f"inputs: [{{type: stdin}}]\nstate_dir: {tmp}\nbuffer: {{max_bytes: 32MiB}}\n"
                f"admin: {{listen: '127.0.0.1:{port}'}}\noutputs:\n{out}")
    loki.faults({"down": True})
    p = subprocess.Popen([a.binary, "run", "--config", cfg], stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         env=harness.clean_env(**K8S))
    RUNNING.append(p)
    p.stdin.write(records(4000, "fan"))
    p.stdin.flush()

    def file_count():
        try:
            return sum(1 for _ in open(os.path.join(tmp, "fanout.jsonl")))
        except OSError:
            return 0
    healthy = harness.wait_for(lambda: file_count() == 4000 and
                               json.loads(es.get("stats"))["docs"] >= 4000, 30, 0.2)
    time.sleep(3)  # Loki still down: nothing may be sent twice to the others
    es_attempts = json.loads(es.get("stats"))["attempts"]
    c.check("fanout: with Loki down, the file and Elasticsearch get everything", bool(healthy),
            f"file {file_count()}")
    c.check("fanout: nothing is sent twice to the healthy outputs",
            es_attempts == 4000 and file_count() == 4000, f"es attempts {es_attempts}")
    c.check("fanout: Loki has nothing yet", not of_tag(loki.entries(), "fan"))
    loki.faults({})
    p.stdin.close()
    p.wait(timeout=60)
    check_pushed(c, "fanout: Loki, once back,", of_tag(loki.entries(), "fan"), 4000)
    seqs = sorted(json.loads(x)["seq"] for x in open(os.path.join(tmp, "fanout.jsonl")))
    c.check("fanout: the file has each record once", seqs == list(range(4000)))


def varint(n):
    out = b""
    while n >= 0x80:
        out += bytes([n & 0x7F | 0x80])
        n >>= 7
    return out + bytes([n])


def pb_bytes(num, data):
    return varint(num << 3 | 2) + varint(len(data)) + data


def pb_varint(num, v):
    return varint(num << 3) + varint(v)


def snappy_literal(raw):
    """Snappy's block format, all of raw as one literal."""
    n = len(raw) - 1
    tag = bytes([n << 2]) if n < 60 else bytes([62 << 2]) + n.to_bytes(3, "little")
    return varint(len(raw)) + tag + raw


def hand_push(entry_extra=b"", ts_extra=b""):
    """A PushRequest made here field by field (push.proto's numbers)."""
    ts = pb_varint(1, 1764000000) + pb_varint(2, 5) + ts_extra
    entry = (pb_bytes(1, ts) + pb_bytes(2, b'{"tag": "hand"}') +
             pb_bytes(3, pb_bytes(1, b"trace_id") + pb_bytes(2, b"t-1")) + entry_extra)
    return pb_bytes(1, pb_bytes(1, b'{app="x", env="e"}') + pb_bytes(2, entry))


def post(url, body, ctype="application/x-protobuf"):
    r = urllib.request.Request(f"{url}/loki/api/v1/push", data=body, headers={
        "Content-Type": ctype, "X-Scope-OrgID": "team-a"})
    try:
        with urllib.request.urlopen(r, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def scenario_corrupt(c, a, loki, es, tmp):
    fake = Fake(a, tmp, "fake_loki.py", "loki-hand", "--tenant", "team-a")
    try:
        status, _ = post(fake.url, snappy_literal(hand_push()))
        got = fake.entries()
        c.check("corrupt: a valid push made by hand is stored as sent", status == 204 and got == [
            {"labels": {"app": "x", "env": "e"}, "ns": 1764000000 * 10**9 + 5,
             "line": '{"tag": "hand"}', "meta": {"trace_id": "t-1"}}], f"{status} {got}")
        bad = [("a field number push.proto lacks (EntryAdapter 9)",
                snappy_literal(hand_push(pb_bytes(9, b"zz"))), "unknown field 9"),
               ("an unknown field in the timestamp (3)",
                snappy_literal(hand_push(ts_extra=pb_varint(3, 1))), "unknown field 3"),
               ("line (2) sent as a varint", snappy_literal(hand_push(pb_varint(2, 7))),
                "wrong wire type"),
               ("bad UTF-8 in a string", snappy_literal(hand_push(pb_bytes(2, b"\xff\xfe"))),
                "protobuf"),
               ("a snappy block cut short", snappy_literal(hand_push())[:-4], "snappy"),
               ("a snappy length header that lies",
                b"\x7f" + snappy_literal(hand_push())[1:], "snappy"),
               ("a framed snappy stream", b"\xff\x06\x00\x00sNaPpY" + hand_push(),
                "framed"),
               ("protobuf not compressed", hand_push(), "snappy")]
        for what, body, says in bad:
            status, text = post(fake.url, body)
            c.check(f"corrupt: {what} is refused", status == 400 and says in text,
                    f"{status} {text.strip()[:200]}")
        st = fake.stats()
        c.check("corrupt: each refusal counted as a violation, nothing more stored",
                len(st["violations"]) == len(bad) and st["entries"] == 1,
                f"{len(st['violations'])} violations, {st['entries']} entries")
    finally:
        fake.stop()


HOSTILE = ['x"} ,evil="1', 'back\\slash\\', "new\nline\r\t", "a" + "\u00e9" * 1500,
           "\u00e9" * 1500, "\U0001F600" * 400, "\ud800 lone", "", "{}", '=\"']


def scenario_hostile(c, a, loki, es, tmp):
    recs = []
    for i in range(2200):
        app = HOSTILE[i // 100 % len(HOSTILE)] if i % 100 == 0 else "shop"
        rec = json.dumps({"level": "info", "seq": i, "tag": "hostile", "app": app})
        if i % 100 == 50:  # the same value escaped: the same stream as "shop"
            rec = rec.replace('"app": "shop"', '"app": "s\\u0068o\\u0070"')
        recs.append(rec)
    data = ("\n".join(recs) + "\n").encode("utf-8", "surrogatepass")
    before = len(loki.stats()["violations"])
    out = f"""  - type: loki
    name: loki
    url: {loki.url}
    tenant: team-a
    labels: [app, tag]
    flush_interval: 0.1
    retry_max_delay: 1
    dead_letter: {tmp}/hostile.dead.jsonl
"""
    r = run(a, tmp, "hostile", out, data)
    c.check("hostile: exit 0", r.returncode == 0, r.stderr.decode()[-300:])
    got = of_tag(loki.entries(), "hostile")
    seqs = sorted(rec["seq"] for rec, _ in got)
    c.check("hostile: every record delivered exactly once, none dead-lettered",
            seqs == list(range(2200)) and (not os.path.exists(f"{tmp}/hostile.dead.jsonl") or
                                           not os.path.getsize(f"{tmp}/hostile.dead.jsonl")),
            f"{len(seqs)} entries")
    v = loki.stats()["violations"][before:]
    c.check("hostile: every push valid (label syntax, UTF-8)", not v, str(v[:3]))
    bad = []
    for rec, e in got:
        labels, want = e["labels"], rec["app"]
        value = labels.get("app")
        ok = set(labels) <= {"app", "tag"} and isinstance(value, str)
        if ok and want:
            # Cut to at most 1 KiB of UTF-8 on a character boundary.
            ok = want.startswith(value) and len(value.encode()) <= 1024 and \
                (value == want or len(value.encode()) > 1000)
        if not ok:
            bad.append((rec["seq"], want[:40], str(labels)[:80]))
    c.check("hostile: values escaped and kept, cut on a character boundary, no label injected",
            not bad, str(bad[:3]))


def reap(p):
    """Stops a logveil left running by a scenario that failed part-way."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


RUNNING = []


def main():
    a = harness.parser(__doc__).parse_args()
    c = harness.Checks()
    try:
        proto.python()
    except RuntimeError as e:
        c.check("the fake Loki's decoders are prepared", False, str(e))
        return c.report()
    tmp = tempfile.mkdtemp(prefix="lv-loki-test-")
    loki = Fake(a, tmp, "fake_loki.py", "loki", "--tenant", "team-a")
    es = Fake(a, tmp, "fake_es.py", "es")
    try:
        for s in (scenario_corrupt, scenario_formats, scenario_guard, scenario_faults,
                  scenario_hostile, scenario_fanout):
            t = time.monotonic()
            try:
                s(c, a, loki, es, tmp)
            except Exception as e:
                for p in RUNNING:
                    reap(p)
                c.check(f"{s.__name__} ran to the end", False, repr(e))
            print(f"     ({s.__name__}: {time.monotonic() - t:.0f} s)", flush=True)
        st = loki.stats()
        c.check("no planted secret in any push", st["secrets"] == 0, str(st["secrets"]))
        c.check("every push was valid (snappy, protobuf, labels, time order, tenant)",
                not st["violations"], str(st["violations"][:3]))
    finally:
        for p in RUNNING:
            reap(p)
        loki.stop()
        es.stop()
        subprocess.run(["rm", "-rf", tmp])
    return c.report()


if __name__ == "__main__":
    sys.exit(main())
