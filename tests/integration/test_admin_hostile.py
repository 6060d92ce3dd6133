#!/usr/bin/env python3
"""The admin server of a running `logveil run` under hostile clients, on
loopback, while records flow from stdin to a file.

- flood: for FLOOD_SECONDS, 300 half-open connections to the admin port
  from 50 loopback addresses (a request head dripped a line every half
  second, reopened as soon as the server drops them), slow POST bodies, heads of 64 KiB, and GETs announcing
  a body; meanwhile a probe loop hits /livez and /readyz on the probe
  listener every 200 ms. Every probe must answer 200 within 1 s; RSS stays
  within a bound of its value before the flood; records keep arriving during
  the flood, and none of the oversized heads or bodies is served; the
  server cuts late heads (its counter moves) and serves /metrics again once
  the flood is over.
- one_client: the case that opened the issue, 300 half-open connections
  from one address (127.0.0.2): the per-address limit keeps room for
  everyone else, and probes on the admin port itself, from 127.0.0.1,
  answer within 1 s.
- deadline: a connection that sends part of a head and then nothing more is
  closed by the server after about 2 s on the admin port and 1 s on the
  probe port, although it never stopped being connected; on a quiet server
  a 64 KiB head gets 431, a GET announcing a body 413, a POST 405.
- hammer: four keep-alive clients fetch /metrics as fast as they can for
  HAMMER_SECONDS; records keep arriving (the loop is not starved), RSS stays
  bounded, and the CPU logveil used is reported.
At the end stdin is closed: every record fed is in the output exactly once.

Usage: test_admin_hostile.py --binary PATH --source REPO
"""
import collections
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

FLOOD_SECONDS = 12.0
HAMMER_SECONDS = 5.0
ONE_CLIENT_SECONDS = 5.0
HALF_OPEN = 300
PROBE_EVERY = 0.2
PROBE_DEADLINE = 1.0
RSS_BOUND = 24 << 20  # bytes over the RSS before the flood


def write_config(tmp, port, probe_port, out_path):
    path = os.path.join(tmp, "logveil.yaml")
    with open(path, "w") as f:
        f.write("environment: development\n"
                "inputs:\n  - type: stdin\n"
                f"outputs:\n  - type: file\n    path: {json.dumps(out_path)}\n"
                f'admin:\n  listen: "127.0.0.1:{port}"\n'
                f'  probe_listen: "127.0.0.1:{probe_port}"\n')
    return path


class Feeder(threading.Thread):
    """Writes {"seq": N} lines to the sidecar's stdin every 5 ms until stopped."""

    def __init__(self, proc):
        super().__init__(daemon=True)
        self.proc = proc
        self.sent = 0
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                self.proc.stdin.write(b'{"level":"info","msg":"flow","seq":%d}\n' % self.sent)
                self.proc.stdin.flush()
            except OSError:
                return
            self.sent += 1
            self.halt.wait(0.005)


class Prober(threading.Thread):
    """GET /livez and /readyz every PROBE_EVERY s: (path, status or error, seconds)."""

    def __init__(self, port, paths=("/livez", "/readyz")):
        super().__init__(daemon=True)
        self.port = port
        self.paths = paths
        self.results = []
        self.halt = threading.Event()

    def probe(self, path):
        t0 = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=PROBE_DEADLINE + 1)
        try:
            conn.request("GET", path)
            status = conn.getresponse().status
        except OSError as e:
            status = repr(e)
        finally:
            conn.close()
        self.results.append((path, status, time.monotonic() - t0))

    def run(self):
        while not self.halt.is_set():
            for path in self.paths:
                self.probe(path)
            self.halt.wait(PROBE_EVERY)


def half_open(port, stop, stats, src):
    """Keeps one half-open connection from address `src` alive until `stop`,
    reopening it when the server drops it; counts drops."""
    while not stop.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2, source_address=(src, 0))
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            while not stop.is_set():
                stop.wait(0.5)
                s.sendall(b"X-Slow: 1\r\n")
        except OSError:
            stats["dropped"] += 1
            stop.wait(0.05)
        finally:
            try:
                s.close()
            except (OSError, UnboundLocalError):
                pass


def slow_post(port, stop, stats):
    while not stop.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.sendall(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
            while not stop.is_set():
                s.sendall(b"a")
                stop.wait(0.3)
        except OSError:
            stats["post_dropped"] += 1
            stop.wait(0.05)


def answer_to(port, payload, timeout=5.0):
    """The status line the server answers `payload` with, or what happened."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            try:
                s.sendall(payload)
            except OSError:
                pass  # the server may answer and close before all of it is sent
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data.split(b"\r\n", 1)[0].decode(errors="replace") or "closed"
    except OSError as e:
        return repr(e)


def closed_after(port, timeout=10.0):
    """Seconds until the server closes a connection that sent half a head."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    t0 = time.monotonic()
    try:
        s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
        while True:
            if not s.recv(4096):
                return time.monotonic() - t0
    except OSError:
        return time.monotonic() - t0
    finally:
        s.close()


def delivered(out_path):
    try:
        with open(out_path) as f:
            text = f.read()
    except FileNotFoundError:
        return collections.Counter()
    whole = text[:text.rfind("\n") + 1]
    return collections.Counter(json.loads(l).get("seq") for l in whole.splitlines() if l)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def flood(args, c, proc, port, probe_port, out_path):
    base_rss = (harness.rss_kib(proc.pid) or 0) * 1024
    rss = harness.RssSampler(lambda: proc.pid)
    rss.start()
    prober = Prober(probe_port)
    prober.start()
    main_prober = Prober(port, ("/livez",))  # for information: the shared port
    main_prober.start()
    stop = threading.Event()
    stats = collections.Counter()
    # From 50 loopback addresses: the per-address limit alone cannot hold
    # them, the total limit fills up.
    threads = [threading.Thread(target=half_open, daemon=True,
                                args=(port, stop, stats, f"127.0.0.{2 + i % 50}"))
               for i in range(HALF_OPEN)]
    threads += [threading.Thread(target=slow_post, args=(port, stop, stats), daemon=True)
                for _ in range(5)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    big_head = (b"GET /metrics HTTP/1.1\r\nHost: x\r\n" +
                b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 1000) for i in range(64)) + b"\r\n")
    answers = collections.Counter()

    def oversized():
        while not stop.is_set():
            answers["head " + answer_to(port, big_head)] += 1
            answers["body " + answer_to(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
                                        b"Content-Length: 10\r\n\r\n")] += 1
            stop.wait(0.5)
    extra = threading.Thread(target=oversized, daemon=True)
    extra.start()
    flowing = []
    t_end = time.monotonic() + FLOOD_SECONDS - 1.0
    while time.monotonic() < t_end:
        flowing.append(len(delivered(out_path)))
        time.sleep(1.0)
    stop.set()
    extra.join(timeout=10)
    for t in threads:
        t.join(timeout=5)
    prober.halt.set()
    main_prober.halt.set()
    prober.join(timeout=5)
    main_prober.join(timeout=5)
    rss.stop()
    shared = main_prober.results
    print(f"info flood: /livez on the admin port itself (connection limit full): "
          f"{sum(1 for r in shared if r[1] == 200 and r[2] <= PROBE_DEADLINE)} of {len(shared)} "
          "answered within 1 s", flush=True)
    print(f"info flood: RSS before {base_rss >> 10} KiB, peak {(rss.peak() or 0) >> 10} KiB",
          flush=True)

    probes = prober.results
    late = [r for r in probes if r[1] != 200 or r[2] > PROBE_DEADLINE]
    worst = max((r[2] for r in probes), default=None)
    c.check(f"flood: every probe on the probe listener answered 200 within 1 s "
            f"({len(probes)} probes, slowest {worst and round(worst, 3)} s)",
            len(probes) >= FLOOD_SECONDS / (PROBE_EVERY + 0.05) and not late,
            f"{len(late)} late or failed: {late[:5]}")
    growth = [b - a for a, b in zip(flowing, flowing[1:])]
    c.check(f"flood: records kept flowing (per second: {growth})",
            growth and all(g > 0 for g in growth))
    peak = rss.peak()
    harness.check_rss(c, args.binary, "flood: RSS bounded",
                      peak is not None and peak - base_rss < RSS_BOUND,
                      f"before {base_rss >> 10} KiB, peak {peak and peak >> 10} KiB")
    c.check("flood: no 64 KiB head and no GET with a body was served",
            answers and not any(" 200 " in k for k in answers), str(dict(answers)))
    c.check(f"flood: the server dropped half-open connections ({stats['dropped']} drops)",
            stats["dropped"] > 0)
    ok, text = harness.poll(lambda: (bool(t := harness.metrics_text(port)), t), proc, 5.0)
    c.check("flood: /metrics answers again once the flood is over", ok)
    cut = harness.sample(text or "", "logveil_admin_connections_timed_out_total")
    c.check(f"flood: late heads were cut by the server ({cut})", cut is not None and cut > 0)


def one_client(args, c, proc, port, probe_port, out_path):
    """The report that opened the issue: 300 half-open connections from one
    client, probes on the admin port itself from another address."""
    stop = threading.Event()
    stats = collections.Counter()
    threads = [threading.Thread(target=half_open, args=(port, stop, stats, "127.0.0.2"),
                                daemon=True) for _ in range(HALF_OPEN)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    prober = Prober(port)
    prober.start()
    time.sleep(ONE_CLIENT_SECONDS)
    prober.halt.set()
    prober.join(timeout=5)
    stop.set()
    for t in threads:
        t.join(timeout=5)
    late = [r for r in prober.results if r[1] != 200 or r[2] > PROBE_DEADLINE]
    worst = max((r[2] for r in prober.results), default=None)
    c.check(f"one_client: with 300 half-open connections from one address, probes on the "
            f"admin port from another answered 200 within 1 s ({len(prober.results)} probes, "
            f"slowest {worst and round(worst, 3)} s)",
            len(prober.results) >= 2 * ONE_CLIENT_SECONDS / (PROBE_EVERY + 0.05) and not late,
            f"{len(late)} late or failed: {late[:5]}")


def deadline(args, c, proc, port, probe_port, out_path):
    secs = closed_after(port)
    c.check(f"deadline: admin port closes a head still incomplete after {secs:.2f} s",
            1.8 <= secs <= 3.0)
    secs = closed_after(probe_port)
    c.check(f"deadline: probe port closes a head still incomplete after {secs:.2f} s",
            0.8 <= secs <= 2.0)
    r = harness.request(port, "/metrics", method="POST")
    c.check("deadline: POST is 405", r is not None and r[0] == 405, f"got {r}")
    big_head = (b"GET /metrics HTTP/1.1\r\nHost: x\r\n" +
                b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 1000) for i in range(64)) + b"\r\n")
    got = answer_to(port, big_head)
    c.check("deadline: a 64 KiB head gets 431", " 431 " in got, got)
    got = answer_to(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
    c.check("deadline: a GET announcing a body gets 413", " 413 " in got, got)
    r = harness.request(probe_port, "/metrics")
    c.check("deadline: the probe port serves no /metrics", r is not None and r[0] == 404,
            f"got {r}")


def hammer(args, c, proc, port, probe_port, out_path):
    stop = threading.Event()
    served = collections.Counter()

    def scrape():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        while not stop.is_set():
            try:
                conn.request("GET", "/metrics")
                resp = conn.getresponse()
                body = resp.read()
                served[resp.status] += 1
                served["bytes"] = max(served["bytes"], len(body))
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                served["errors"] += 1
        conn.close()

    base_rss = (harness.rss_kib(proc.pid) or 0) * 1024
    rss = harness.RssSampler(lambda: proc.pid)
    rss.start()
    cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
    before = len(delivered(out_path))
    threads = [threading.Thread(target=scrape, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    mid = []
    for _ in range(int(HAMMER_SECONDS)):
        time.sleep(1.0)
        mid.append(len(delivered(out_path)))
    stop.set()
    for t in threads:
        t.join(timeout=10)
    rss.stop()
    print(f"info hammer: RSS before {base_rss >> 10} KiB, peak {(rss.peak() or 0) >> 10} KiB",
          flush=True)
    cpu = cpu_seconds(proc.pid) - cpu0
    wall = time.monotonic() - t0
    print(f"info hammer: {served[200]} scrapes in {wall:.1f} s, largest {served['bytes']} bytes, "
          f"logveil CPU {cpu:.2f} s ({100 * cpu / wall:.0f}% of one core)", flush=True)
    growth = [b - a for a, b in zip([before] + mid, mid)]
    c.check(f"hammer: records kept flowing while /metrics was hammered (per second: {growth})",
            all(g > 0 for g in growth))
    c.check("hammer: every scrape answered 200", served[200] > 0 and served["errors"] == 0,
            str(dict(served)))
    peak = rss.peak()
    harness.check_rss(c, args.binary, "hammer: RSS bounded",
                      peak is not None and peak - base_rss < RSS_BOUND,
                      f"before {base_rss >> 10} KiB, peak {peak and peak >> 10} KiB")


def run(args, c, tmp):
    port, probe_port = harness.free_port(), harness.free_port()
    out_path = os.path.join(tmp, "out.jsonl")
    cfg = write_config(tmp, port, probe_port, out_path)
    err_path = os.path.join(tmp, "stderr.log")
    with open(err_path, "wb") as err:
        proc = subprocess.Popen([args.binary, "run", "--config", cfg], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=err)
    feeder = Feeder(proc)
    try:
        ok, _ = harness.poll(lambda: ((r := harness.request(probe_port, "/readyz")) is not None
                                      and r[0] == 200, r), proc, 10.0)
        c.check("the probe listener answers /readyz", ok)
        feeder.start()
        for step in (flood, one_client, deadline, hammer):
            step(args, c, proc, port, probe_port, out_path)
        feeder.halt.set()
        feeder.join(timeout=5)
        proc.stdin.close()
        try:
            rc = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            rc = "still running after 15 s"
        c.check("exits 0 once stdin closes", rc == 0, f"exit status {rc}")
        got = delivered(out_path)
        missing = [s for s in range(feeder.sent) if got[s] != 1]
        c.check(f"every record fed ({feeder.sent}) is in the output exactly once", not missing,
                f"{len(missing)} missing or duplicated: {missing[:10]}")
    finally:
        feeder.halt.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if c.failed:
            with open(err_path, errors="replace") as f:
                print("--- logveil stderr ---\n" + f.read()[-4000:])


def main():
    args = harness.parser(__doc__).parse_args()
    c = harness.Checks()
    harness.run_in_tmp(c, "logveil-admin-hostile-", lambda tmp: run(args, c, tmp))
    return c.report()


if __name__ == "__main__":
    sys.exit(main())
