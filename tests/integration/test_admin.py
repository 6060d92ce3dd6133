#!/usr/bin/env python3
"""The admin server of a running `logveil run`: probes, /metrics, shutdown.

Starts the sidecar with stdin as input and a file as output, feeds it a few
JSON lines (one carrying a password), and checks what the admin port says
about them; then closes stdin and expects a clean exit with every record in
the file and the secret nowhere in it.

Usage: test_admin.py --binary PATH --source REPO
"""
import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

SECRET = "hunter2-s3cr3t"
LINES = [
    {"level": "info", "msg": "admin-test-0 started"},
    {"level": "info", "msg": "admin-test-1 login", "user": "ada", "password": SECRET},
    {"level": "warn", "msg": "admin-test-2 slow request", "ms": 1200},
    {"level": "error", "msg": "admin-test-3 failed", "code": 500},
]
STEP_TIMEOUT = 10.0


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"ok   {name}")
        else:
            self.failed += 1
            print(f"FAIL {name}" + (f": {detail}" if detail else ""))
        return ok


def free_port():
    """A port that was free a moment ago; the sidecar cannot report port 0."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, path, method="GET"):
    """(status, content type, body), or None while nothing listens."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type"), resp.read().decode()
    except OSError:
        return None
    finally:
        conn.close()


def poll(fn, proc, timeout=STEP_TIMEOUT):
    """Calls fn until it returns (True, value) or time runs out; (ok, last value)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        ok, last = fn()
        if ok or proc.poll() is not None:
            return ok, last
        time.sleep(0.05)
    return False, last


def sample(text, name):
    """The value of the unlabelled sample `name` in an exposition, or None."""
    for line in text.splitlines():
        parts = line.split(" ")
        if len(parts) == 2 and parts[0] == name:
            return float(parts[1])
    return None


def write_config(tmp, port, out_path):
    path = os.path.join(tmp, "logveil.yaml")
    with open(path, "w") as f:
        f.write(
            "environment: development\n"
            "inputs:\n"
            "  - type: stdin\n"
            "outputs:\n"
            "  - type: file\n"
            f"    path: {json.dumps(out_path)}\n"
            "admin:\n"
            f'  listen: "127.0.0.1:{port}"\n'
        )
    return path


def check_probes(c, port, proc):
    ok, last = poll(lambda: ((r := request(port, "/readyz")) is not None and r[0] == 200, r), proc)
    c.check("/readyz turns 200", ok, f"last answer {last}")
    for path in ("/livez", "/healthz"):
        r = request(port, path)
        c.check(f"{path} is 200", r is not None and r[0] == 200, f"got {r}")
    r = request(port, "/nope")
    c.check("unknown path is 404", r is not None and r[0] == 404, f"got {r}")
    r = request(port, "/metrics", method="POST")
    c.check("POST is 405", r is not None and r[0] == 405, f"got {r}")


def check_metrics(c, port, proc):
    r = request(port, "/metrics")
    c.check("/metrics is 200", r is not None and r[0] == 200, f"got {r and r[:2]}")
    c.check("/metrics has the Prometheus content type",
            r is not None and r[1] == "text/plain; version=0.0.4; charset=utf-8",
            f"got {r and r[1]}")
    c.check("/metrics ends with a newline", r is not None and r[2].endswith("\n"))

    def counted():
        r = request(port, "/metrics")
        if r is None or r[0] != 200:
            return False, None
        got = (sample(r[2], "logveil_input_records_total"),
               sample(r[2], "logveil_redactions_total"))
        return got[0] == len(LINES) and got[1] is not None and got[1] >= 1, got
    ok, got = poll(counted, proc)
    records, redactions = got if got else (None, None)
    c.check(f"logveil_input_records_total reaches {len(LINES)}",
            records == len(LINES), f"last {records}")
    c.check("logveil_redactions_total is at least 1",
            redactions is not None and redactions >= 1, f"last {redactions}")


def check_output(c, out_path):
    try:
        with open(out_path) as f:
            text = f.read()
    except OSError as e:
        c.check("output file written", False, str(e))
        return
    records = []
    for line in text.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            c.check("output lines are JSON", False, f"line of {len(line)} bytes")
            return
    msgs = [r.get("msg", r.get("message", "")) for r in records]
    for want in LINES:
        c.check(f"output holds {want['msg'].split()[0]}",
                any(want["msg"] in str(m) for m in msgs))
    c.check("secret absent from output", SECRET not in text)


def run(args, c, tmp):
    port = free_port()
    out_path = os.path.join(tmp, "out.jsonl")
    cfg = write_config(tmp, port, out_path)
    err_path = os.path.join(tmp, "stderr.log")
    with open(err_path, "wb") as err:
        proc = subprocess.Popen([args.binary, "run", "--config", cfg], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        proc.stdin.write("".join(json.dumps(l) + "\n" for l in LINES).encode())
        proc.stdin.flush()
        check_probes(c, port, proc)
        check_metrics(c, port, proc)
        proc.stdin.close()
        try:
            rc = proc.wait(timeout=STEP_TIMEOUT)
            c.check("exits 0 once stdin closes", rc == 0, f"exit status {rc}")
        except subprocess.TimeoutExpired:
            c.check("exits 0 once stdin closes", False, "still running after 10 s")
        check_output(c, out_path)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if c.failed:
            with open(err_path, errors="replace") as f:
                print("--- logveil stderr ---\n" + f.read()[-4000:])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--source", required=True)
    args = ap.parse_args()

    c = Checks()
    tmp = tempfile.mkdtemp(prefix="logveil-admin-")
    try:
        run(args, c, tmp)
    except Exception as e:  # report, never hang or pass silently
        c.check("test ran to the end", False, repr(e))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
