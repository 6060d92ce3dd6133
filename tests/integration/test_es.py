#!/usr/bin/env python3
"""The Elasticsearch output against a protocol-faithful fake (tests/fakes/
fake_es.py), for the faults a real node will not produce on demand. The
fake validates every request (NDJSON shape, action lines, gzip, auth) and
stores documents by _id, answering 409 to a second create, as Elasticsearch
does. One plain fake and one TLS fake (a CA made here with openssl) serve
every scenario.

Scenarios (--only picks some):
  items     per-item 429 mixed with 400 in one answer, and a 5 MB answer:
            every good record exactly once, each bad one dead-lettered with
            status 400, its type and reason, counted as rejected
  requests  connection resets, then request-level 503, then 429: retried
            until every record is stored exactly once
  slow      answers slower than the timeout, then fast again: exactly once
  tls       TLS verified against the test CA with basic auth from a file;
            without the CA nothing is delivered; the password is never in
            logveil's output or /metrics
  checkpoint  a tail input while the sink goes down and up: at every
            sample, each record before the acknowledged offset is stored
  pool      concurrency 3 against slow answers: 3 requests in flight, never
            more, over as many kept-alive connections (not one per request)
  failover  urls: a dead node first and a live one: every record exactly
            once on the live one; the dead one gets a few requests, not half
  memory    the sink down for a minute while a 100 MB file is tailed: RSS
            stays bounded, nothing is lost, then every record arrives once
Always: no planted secret in any request body.

Usage: test_es.py --binary PATH --source REPO [--only a,b]
"""
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SECRETS = ["PLANTED-es-hunter2-91b", "sk_live_PLANTEDes00112233445566"]
PASSWORD = "PLANTED-basic-pw-77"


class Fake:
    def __init__(self, source, tmp, name, *extra):
        self.port_file = os.path.join(tmp, f"{name}.port")
        secrets = os.path.join(tmp, "secrets.txt")
        with open(secrets, "w") as f:
            f.write("\n".join(SECRETS + [PASSWORD]) + "\n")
        self.proc = subprocess.Popen([sys.executable, os.path.join(source, "tests", "fakes",
                                                                   "fake_es.py"),
                                      "--port-file", self.port_file, "--secrets", secrets,
                                      *extra])
        harness.wait_for(lambda: os.path.exists(self.port_file), 10)
        self.port = int(open(self.port_file).read())
        self.scheme = "https" if "--tls-cert" in extra else "http"
        self.url = f"{self.scheme}://127.0.0.1:{self.port}"

    def call(self, path, body=None):
        import ssl
        ctx = ssl._create_unverified_context()  # the test's own fake
        data = json.dumps(body).encode() if body is not None else None
        r = urllib.request.Request(self.url + path, data=data, method="POST" if data else "GET")
        if self.scheme == "https":
            r.add_header("Authorization", "Basic " + base64.b64encode(
                f"logveil:{PASSWORD}".encode()).decode())
        with urllib.request.urlopen(r, timeout=30, context=ctx) as resp:
            return resp.read()

    def faults(self, f):
        self.call("/_fake/faults", f)

    def stats(self):
        return json.loads(self.call("/_fake/stats"))

    def docs(self, index):
        out = []
        for line in self.call("/_fake/docs").decode().splitlines():
            if not line:
                continue  # no document stored yet
            d = json.loads(line)
            if d["_index"] == index:
                out.append(json.loads(d["source"]))
        return out

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def config(tmp, name, url, inputs, extra=""):
    path = os.path.join(tmp, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(f"""inputs: {inputs}
state_dir: {tmp}
outputs:
  - type: elasticsearch
    url: {url}
    index: t-{name}
    dead_letter: {tmp}/{name}.dead.jsonl
    flush_interval: 0.1
    retry_max_delay: 1
    batch_max_records: 500
{extra}""")
    return path


def records(n, bad_every=0):
    out = []
    for i in range(n):
        r = {"level": "info", "seq": i, "password": SECRETS[i % 2],
             "msg": f"charge with api_key={SECRETS[1]} done"}
        if bad_every and i % bad_every == bad_every - 1:
            r["bad"] = "x"
        out.append(json.dumps(r))
    return ("\n".join(out) + "\n").encode()


def run_stdin(binary, cfg, data, timeout=120):
    return subprocess.run([binary, "run", "--config", cfg], input=data, capture_output=True,
                          timeout=timeout, env=harness.clean_env())


def exactly_once(c, what, docs, n, skip=()):
    seqs = sorted(d["seq"] for d in docs)
    want = [i for i in range(n) if i not in skip]
    c.check(f"{what}: every record exactly once", seqs == want,
            f"{len(seqs)} stored, {len(set(seqs))} distinct, {len(want)} expected")


def no_secret_in_output(c, what, r):
    text = (r.stdout + r.stderr).decode(errors="replace")
    c.check(f"{what}: no secret in logveil's output",
            not any(s in text for s in SECRETS + [PASSWORD]), text[-300:])


def scenario_items(c, a, fake, tmp):
    fake.faults({"item_429_every": 3, "reject_field": "bad", "pad_response": 5 * 1024 * 1024})
    cfg = config(tmp, "items", fake.url, "[{type: stdin}]")
    before = fake.stats()
    r = run_stdin(a.binary, cfg, records(3000, bad_every=100))
    fake.faults({})
    after = fake.stats()
    # Only the items answered 429 go again: a stored one sent again would
    # meet a 409 (and a 400 one would be dead-lettered twice).
    retried = after["attempts"] - before["attempts"] - 3000
    c.check("items: only the items answered 429 are sent again",
            after["conflicts"] == before["conflicts"] and 0 < retried < 3000 // 3 + 50,
            f"{after['conflicts'] - before['conflicts']} conflicts, {retried} items resent")
    bad = {i for i in range(3000) if i % 100 == 99}
    c.check("items: exit 0", r.returncode == 0, r.stderr.decode()[-300:])
    exactly_once(c, "items (per-item 429 with 400, 5 MB answers)", fake.docs("t-items"), 3000, bad)
    dead = [json.loads(x) for x in open(os.path.join(tmp, "items.dead.jsonl"))]
    c.check("items: each 400 dead-lettered once with status, type, reason, output and time",
            sorted(d["record"]["seq"] for d in dead) == sorted(bad) and
            all(d["status"] == 400 and d["error"]["type"] == "mapper_parsing_exception" and
                "[bad]" in d["error"]["reason"] and d["output"] == "elasticsearch" and
                d["time"].endswith("Z") for d in dead), str(dead[:1])[:300])
    c.check("items: dead letters hold the redacted record",
            not any(s in json.dumps(dead) for s in SECRETS))
    no_secret_in_output(c, "items", r)


def scenario_requests(c, a, fake, tmp):
    for status in (503, 429):
        name = f"requests{status}"
        fake.faults({"reset": 3, "request_status": [status, 3]})
        cfg = config(tmp, name, fake.url, "[{type: stdin}]")
        r = run_stdin(a.binary, cfg, records(2000))
        fake.faults({})
        c.check(f"{name}: exit 0", r.returncode == 0, r.stderr.decode()[-300:])
        exactly_once(c, f"{name} (3 resets then 3 x {status})", fake.docs(f"t-{name}"), 2000)


def scenario_slow(c, a, fake, tmp):
    fake.faults({"slow": 2.5})
    cfg = config(tmp, "slow", fake.url, "[{type: stdin}]", "    timeout: 1\n")
    threading.Timer(5, lambda: fake.faults({})).start()
    r = run_stdin(a.binary, cfg, records(2000))
    c.check("slow: exit 0", r.returncode == 0, r.stderr.decode()[-300:])
    c.check("slow: the timeouts were seen", b"timed out" in r.stderr, r.stderr.decode()[-300:])
    exactly_once(c, "slow (answers after the timeout)", fake.docs("t-slow"), 2000)


def make_ca(tmp):
    def ossl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)
    ca_key, ca = os.path.join(tmp, "ca.key"), os.path.join(tmp, "ca.pem")
    key, csr, cert = (os.path.join(tmp, x) for x in ("srv.key", "srv.csr", "srv.pem"))
    ext = os.path.join(tmp, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
         "-days", "2", "-subj", "/CN=logveil test CA")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
         "-subj", "/CN=127.0.0.1")
    ossl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "2", "-extfile", ext)
    return ca, cert, key


def scenario_tls(c, a, fake_unused, tmp):
    ca, cert, key = make_ca(tmp)
    auth = "Basic " + base64.b64encode(f"logveil:{PASSWORD}".encode()).decode()
    fake = Fake(a.source, tmp, "tls", "--tls-cert", cert, "--tls-key", key, "--auth", auth)
    try:
        pw = os.path.join(tmp, "es-password")
        with open(pw, "w") as f:
            f.write(PASSWORD + "\n")
        port = harness.free_port()
        auth_keys = f"    username: logveil\n    password_file: {pw}\n"
        cfg = config(tmp, "tls", fake.url, "[{type: stdin}]",
                     auth_keys + f"    tls: {{ca_file: {ca}}}\n")
        r = run_stdin(a.binary, cfg, records(1000))
        c.check("tls: exit 0", r.returncode == 0, r.stderr.decode()[-300:])
        exactly_once(c, "tls (verified with the test CA, basic auth from password_file)",
                     fake.docs("t-tls"), 1000)
        no_secret_in_output(c, "tls", r)
        # Without the CA the server is not trusted: nothing goes, nothing leaks.
        cfg = config(tmp, "untrusted", fake.url, "[{type: stdin}]",
                     auth_keys + f"admin: {{listen: '127.0.0.1:{port}'}}\n".replace("    ", ""))
        p = subprocess.Popen([a.binary, "run", "--config", cfg], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=harness.clean_env())
        RUNNING.append(p)
        p.stdin.write(records(100))
        p.stdin.flush()
        time.sleep(3)
        metrics = harness.metrics_text(port)
        p.send_signal(signal.SIGKILL)
        out, err = p.communicate()
        p.stdin.close()
        text = (out + err).decode(errors="replace") + metrics
        c.check("tls: an unverified server gets nothing", not fake.docs("t-untrusted"))
        c.check("tls: the certificate problem is logged",
                "certificate" in text or "SSL" in text, text[-300:])
        c.check("tls: no password in logs or /metrics", PASSWORD not in text and metrics != "")
        c.check("tls: no planted secret in any body the TLS fake received",
                fake.stats()["secrets"] == 0 and not fake.stats()["violations"])
    finally:
        fake.stop()


def write_cri(path, start, n):
    """Appends records; returns [(end offset, seq)]."""
    ends = []
    with open(path, "ab") as f:
        off = f.tell()
        for i in range(start, start + n):
            line = (f"2025-11-21T03:00:00.{i:09d}Z stdout F " +
                    json.dumps({"level": "info", "seq": i, "msg": "y" * 300}) + "\n").encode()
            f.write(line)
            off += len(line)
            ends.append((off, i))
    return ends


def acked(port):
    m = harness.metrics(port)
    vals = [v for k, v in m.items() if k.startswith("logveil_file_acked_offset_bytes")]
    return int(sum(vals)) if vals else None


def tail_config(tmp, name, url, port, extra=""):
    return config(tmp, name, url,
                  f"[{{type: tail, format: cri, read_from: head, paths: ['{tmp}/{name}.log']}}]",
                  extra + f"admin: {{listen: '127.0.0.1:{port}'}}\n")


def scenario_checkpoint(c, a, fake, tmp):
    log = os.path.join(tmp, "ckpt.log")
    ends = write_cri(log, 0, 5000)
    port = harness.free_port()
    p = subprocess.Popen([a.binary, "run", "--config", tail_config(tmp, "ckpt", fake.url, port)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         env=harness.clean_env())
    RUNNING.append(p)
    ahead, samples = [], 0
    try:
        for k in range(12):
            fake.faults({"down": k % 3 == 1})
            ends += write_cri(log, len(ends), 3000)
            t0 = time.monotonic()
            while time.monotonic() - t0 < 1.0:
                off = acked(port)  # read before the store: the order that can fail
                stored = {d["seq"] for d in fake.docs("t-ckpt")}
                if off is not None:
                    samples += 1
                    missing = [s for e, s in ends if e <= off and s not in stored]
                    if missing:
                        ahead.append((off, missing[:3]))
                time.sleep(0.1)
        fake.faults({})
        harness.wait_for(lambda: acked(port) == os.path.getsize(log), 60, 0.2)
        m = harness.metrics(port)
        name = "logveil_output_request_duration_seconds"
        buckets = [(k, v) for k, v in m.items() if k.startswith(name + "_bucket")]
        count = m.get(name + '_count{output="elasticsearch"}')
        c.check("checkpoint: request latency histogram (cumulative buckets, +Inf = count)",
                len(buckets) == 13 and count and count > 0 and
                all(buckets[i][1] <= buckets[i + 1][1] for i in range(12)) and
                buckets[-1][0].endswith('le="+Inf"}') and buckets[-1][1] == count,
                str(buckets[:3]) + f" count {count}")
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
    c.check("checkpoint: never ahead of what the sink stored", samples >= 10 and not ahead,
            f"{samples} samples, ahead at {ahead[:2]}")
    exactly_once(c, "checkpoint (sink down and up 4 times)", fake.docs("t-ckpt"), len(ends))


def scenario_memory(c, a, fake, tmp):
    log = os.path.join(tmp, "mem.log")
    n = 0
    with open(log, "wb") as f:
        while f.tell() < 100 * 1024 * 1024:
            f.write((f"2025-11-21T04:00:00.000000000Z stdout F " + json.dumps(
                {"level": "info", "seq": n, "password": SECRETS[0], "msg": "z" * 400}) +
                "\n").encode())
            n += 1
    fake.faults({"down": True})
    port = harness.free_port()
    cfg = tail_config(tmp, "mem", fake.url, port, "buffer: {max_bytes: 8MiB}\n")
    p = subprocess.Popen([a.binary, "run", "--config", cfg], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env=harness.clean_env())
    RUNNING.append(p)
    rss = harness.RssSampler(lambda: p.pid, 0.2)
    rss.start()
    time.sleep(60)
    peak_down = rss.peak()
    fake.faults({})
    done = harness.wait_for(lambda: acked(port) == os.path.getsize(log), 240, 0.5)
    rss.stop()
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=30)
    name = "memory: RSS stays under 48 MiB with the sink down a minute (buffer 8 MiB)"
    detail = f"peak {peak_down and peak_down // 1024} KiB"
    with open(a.binary, "rb") as f:
        asan = b"__asan_init" in f.read()
    if asan:  # the figure is the sanitizer's (as in test_faults_delivery.py)
        print(f"skip {name} (ASan build: RSS is the sanitizer's): {detail}", flush=True)
    else:
        c.check(name, peak_down is not None and peak_down < 48 * 1024 * 1024, detail)
    c.check("memory: the whole 100 MB file is acknowledged once the sink is back", bool(done))
    exactly_once(c, "memory (sink down 60 s)", fake.docs("t-mem"), n)


def scenario_pool(c, a, fake_unused, tmp):
    fake = Fake(a.source, tmp, "pool")  # its own counters
    try:
        fake.faults({"slow": 0.3})
        cfg = config(tmp, "pool", fake.url, "[{type: stdin}]",
                     "    concurrency: 3\n")
        r = run_stdin(a.binary, cfg, records(15000))  # 30 requests of 500
        st = fake.stats()
        c.check("pool: exit 0", r.returncode == 0, r.stderr.decode()[-300:])
        exactly_once(c, "pool", fake.docs("t-pool"), 15000)
        # The fake's own GETs and POSTs (faults, stats, docs) are one
        # connection each, and are not _bulk requests in flight at once.
        c.check("pool: 3 requests in flight at once, never more",
                st["max_in_flight"] == 3, f"max in flight {st['max_in_flight']}")
        c.check("pool: connections kept alive (at most 3 for logveil's 30+ requests)",
                st["requests"] >= 30 and st["connections"] - 2 <= 3,
                f"{st['requests']} requests over {st['connections'] - 2} connections")
        c.check("pool: no planted secret in any request body, every request valid",
                st["secrets"] == 0 and st["bodies"] >= 30 and not st["violations"])
    finally:
        fake.stop()


def scenario_failover(c, a, fake_unused, tmp):
    dead, live = Fake(a.source, tmp, "dead"), Fake(a.source, tmp, "live")
    try:
        dead.faults({"down": True})
        cfg = config(tmp, "failover", "x", "[{type: stdin}]")
        with open(cfg) as f:
            text = f.read().replace("    url: x\n", f"    urls: [{dead.url}, {live.url}]\n")
        with open(cfg, "w") as f:
            f.write(text)
        t0 = time.monotonic()
        r = run_stdin(a.binary, cfg, records(20000))
        took = time.monotonic() - t0
        c.check("failover: exit 0", r.returncode == 0, r.stderr.decode()[-300:])
        exactly_once(c, "failover (first node dead)", live.docs("t-failover"), 20000)
        sd, sl = dead.stats(), live.stats()
        # 40 requests of 500 records; the dead node is tried again after
        # 1 s, then 2 s (retry_max_delay 1: every second) while they go.
        c.check("failover: the dead node is passed over after a failure",
                sd["requests"] <= 2 + int(took) and sl["requests"] >= 40,
                f"dead {sd['requests']}, live {sl['requests']} requests in {took:.1f} s")
    finally:
        dead.stop()
        live.stop()


SCENARIOS = {"items": scenario_items, "requests": scenario_requests, "slow": scenario_slow,
             "tls": scenario_tls, "pool": scenario_pool,
             "failover": scenario_failover, "checkpoint": scenario_checkpoint, "memory": scenario_memory}


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
    ap = harness.parser(__doc__)
    ap.add_argument("--only")
    a = ap.parse_args()
    c = harness.Checks()
    names = a.only.split(",") if a.only else list(SCENARIOS)
    tmp = tempfile.mkdtemp(prefix="lv-es-test-")
    fake = Fake(a.source, tmp, "plain")
    try:
        for name in names:
            t = time.monotonic()
            try:
                SCENARIOS[name](c, a, fake, tmp)
            except Exception as e:
                for p in RUNNING:
                    reap(p)
                c.check(f"{name} ran to the end", False, repr(e))
            print(f"     ({name}: {time.monotonic() - t:.0f} s)", flush=True)
        st = fake.stats()
        own_fake = {"pool", "tls", "failover"}  # scenarios that bring their own fake
        c.check("no planted secret in any request body", st["secrets"] == 0 and
                (st["bodies"] > 0 or not set(names) - own_fake),
                f"{st['secrets']} in {st['bodies']} bodies")
        c.check("every request was valid NDJSON _bulk", not st["violations"],
                str(st["violations"][:3]))
    finally:
        for p in RUNNING:
            reap(p)
        fake.stop()
        subprocess.run(["rm", "-rf", tmp])
    return c.report()


if __name__ == "__main__":
    sys.exit(main())
