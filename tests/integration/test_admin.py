#!/usr/bin/env python3
"""The admin server of a running `logveil run`: probes, /metrics, shutdown.

Starts the sidecar with stdin as input and a file as output, feeds it a few
JSON lines (one carrying a password), and checks what the admin port says
about them; then closes stdin and expects a clean exit with every record in
the file and the secret nowhere in it.

Usage: test_admin.py --binary PATH --source REPO
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SECRET = "hunter2-s3cr3t"
LINES = [
    {"level": "info", "msg": "admin-test-0 started"},
    {"level": "info", "msg": "admin-test-1 login", "user": "ada", "password": SECRET},
    {"level": "warn", "msg": "admin-test-2 slow request", "ms": 1200},
    {"level": "error", "msg": "admin-test-3 failed", "code": 500},
]
STEP_TIMEOUT = 10.0


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
    ok, last = harness.poll(lambda: ((r := harness.request(port, "/readyz")) is not None
                                     and r[0] == 200, r), proc, STEP_TIMEOUT)
    c.check("/readyz turns 200", ok, f"last answer {last}")
    for path in ("/livez", "/healthz"):
        r = harness.request(port, path)
        c.check(f"{path} is 200", r is not None and r[0] == 200, f"got {r}")
    r = harness.request(port, "/nope")
    c.check("unknown path is 404", r is not None and r[0] == 404, f"got {r}")
    r = harness.request(port, "/metrics", method="POST")
    c.check("POST is 405", r is not None and r[0] == 405, f"got {r}")


def check_metrics(c, port, proc):
    r = harness.request(port, "/metrics")
    c.check("/metrics is 200", r is not None and r[0] == 200, f"got {r and r[:2]}")
    c.check("/metrics has the Prometheus content type",
            r is not None and r[1] == "text/plain; version=0.0.4; charset=utf-8",
            f"got {r and r[1]}")
    c.check("/metrics ends with a newline", r is not None and r[2].endswith("\n"))

    def counted():
        r = harness.request(port, "/metrics")
        if r is None or r[0] != 200:
            return False, None
        got = (harness.sample(r[2], "logveil_input_records_total"),
               harness.sample(r[2], "logveil_redactions_total"))
        return got[0] == len(LINES) and got[1] is not None and got[1] >= 1, got
    ok, got = harness.poll(counted, proc, STEP_TIMEOUT)
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
    port = harness.free_port()
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
    args = harness.parser(__doc__).parse_args()
    c = harness.Checks()
    harness.run_in_tmp(c, "logveil-admin-", lambda tmp: run(args, c, tmp))
    return c.report()


if __name__ == "__main__":
    sys.exit(main())
