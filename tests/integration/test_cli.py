#!/usr/bin/env python3
"""The command line: help, version, usage errors and their exit codes, and
`run` with a stdin input and a file output, ended by EOF or by SIGTERM.

Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.
Every run uses a clean environment (PATH plus what the test sets).

Usage: test_cli.py --binary PATH --source REPO
Prints one line per check and ends with "N passed, M failed".
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

TIMEOUT = 20
SECRET = "hunter2-cli-s3cr3t"
ENVIRONMENTS = ["development", "staging", "canary", "production"]


def run(binary, *args, data=b"", env=None):
    return subprocess.run([binary, *args], input=data, capture_output=True,
                          env=env or harness.clean_env(), timeout=TIMEOUT)


def text(r):
    return (r.stdout + r.stderr).decode(errors="replace")


def check_help_and_version(c, args):
    for flag in ("--help", "-h", "help"):
        r = run(args.binary, flag)
        out = r.stdout.decode()
        c.check(f"{flag}: exit 0 and names run, filter and check-config on stdout",
                r.returncode == 0 and all(w in out for w in ("run", "filter", "check-config")),
                f"exit {r.returncode}: {text(r)[:200]}")
    r = run(args.binary, "filter", "--help")
    c.check("filter --help: exit 0 and lists the filter options",
            r.returncode == 0 and all(w in r.stdout.decode()
                                      for w in ("--env", "--format", "--stats")),
            f"exit {r.returncode}")
    r = run(args.binary, "--version")
    c.check("--version prints 'logveil 0.1.0'",
            r.returncode == 0 and r.stdout.decode() == "logveil 0.1.0\n",
            f"exit {r.returncode}: {r.stdout!r}")


def check_usage_errors(c, args):
    r = run(args.binary)
    c.check("no command: exit 2 with the usage on stderr",
            r.returncode == 2 and "usage" in r.stderr.decode() and not r.stdout,
            f"exit {r.returncode}")
    r = run(args.binary, "frobnicate")
    err = r.stderr.decode()
    c.check("unknown command: exit 2", r.returncode == 2, f"exit {r.returncode}")
    c.check("unknown command: the message names it, the commands and --help",
            "frobnicate" in err and all(w in err for w in ("run", "filter", "check-config"))
            and "--help" in err and not r.stdout, err)
    r = run(args.binary, "filter", "--format", "bogus")
    err = r.stderr.decode()
    c.check("filter --format bogus: exit 2 naming the formats",
            r.returncode == 2 and "bogus" in err and all(f in err for f in ("json", "cri",
                                                                              "docker")), err)
    r = run(args.binary, "filter", "--no-such-option")
    c.check("filter with an unknown option: exit 2", r.returncode == 2, text(r))
    r = run(args.binary, "filter", "stray")
    c.check("filter with a stray argument: exit 2", r.returncode == 2, text(r))
    r = run(args.binary, "run")
    err = r.stderr.decode()
    c.check("run without --config: exit 2 saying --config is needed",
            r.returncode == 2 and "--config" in err, f"exit {r.returncode}: {err}")
    r = run(args.binary, "filter", "--env", "nosuch")
    err = r.stderr.decode()
    c.check("filter --env nosuch: exit 2 naming the known environments",
            r.returncode == 2 and "nosuch" in err and all(e in err for e in ENVIRONMENTS),
            f"exit {r.returncode}: {err}")
    r = run(args.binary, "check-config")
    c.check("check-config without a file: exit 2", r.returncode == 2, text(r))
    r = run(args.binary, "run", "--config", "/nonexistent/logveil.yaml")
    c.check("run with a missing config file: exit 2 naming it",
            r.returncode == 2 and "/nonexistent/logveil.yaml" in r.stderr.decode(), text(r))


def check_filter_empty(c, args):
    r = run(args.binary, "filter")
    c.check("filter with no config on empty stdin: exit 0, no output",
            r.returncode == 0 and r.stdout == b"", f"exit {r.returncode}: {text(r)[:200]}")
    with open(os.devnull, "rb") as null:
        r = subprocess.run([args.binary, "filter"], stdin=null, capture_output=True,
                           env=harness.clean_env(), timeout=TIMEOUT)
    c.check("filter with stdin from /dev/null: exit 0, no output",
            r.returncode == 0 and r.stdout == b"", f"exit {r.returncode}: {text(r)[:200]}")


def check_filter_from_file(c, args, tmp):
    """stdin redirected from a regular file, which epoll cannot watch."""
    path = os.path.join(tmp, "app.log")
    with open(path, "w") as f:
        for i in range(5000):
            f.write(json.dumps({"seq": i, "level": "info", "msg": "from a file"}) + "\n")
    with open(path, "rb") as f:
        r = subprocess.run([args.binary, "filter"], stdin=f, capture_output=True,
                           env=harness.clean_env(), timeout=TIMEOUT)
    lines = r.stdout.decode().splitlines()
    c.check("filter with stdin from a regular file: exit 0 and every line out",
            r.returncode == 0 and len(lines) == 5000, f"exit {r.returncode}, {len(lines)} lines")


def write_run_config(tmp, out_path, name="run.yaml"):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(f"""\
environment: development
log_level: warn
inputs:
  - type: stdin
    format: json
outputs:
  - type: file
    name: archive
    path: {out_path}
""")
    return path


def records_in(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return [], "no file"
    out = []
    for line in data.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError as e:
            return out, f"bad line {line[:100]!r}: {e}"
    if data and not data.endswith(b"\n"):
        return out, "torn last line"
    return out, None


def lines_for(prefix, n):
    recs = [{"level": "info", "msg": f"{prefix}-{i}", "password": SECRET} for i in range(n)]
    return b"".join(json.dumps(r).encode() + b"\n" for r in recs)


def check_run_to_eof(c, args, tmp):
    out_path = os.path.join(tmp, "eof.log")
    config = write_run_config(tmp, out_path)
    r = run(args.binary, "run", "--config", config, data=lines_for("eof", 100) + b"not json")
    c.check("run to EOF: exit 0", r.returncode == 0, f"exit {r.returncode}: {text(r)[-300:]}")
    recs, problem = records_in(out_path)
    c.check("run to EOF: every record is in the file, as JSON lines",
            problem is None and len(recs) == 101 and
            [x.get("msg") for x in recs[:100]] == [f"eof-{i}" for i in range(100)] and
            recs[100].get("message") == "not json", f"{len(recs)} records, {problem}")
    c.check("run to EOF: the records are redacted",
            recs and all(x.get("password") == "[REDACTED]" for x in recs[:100]) and
            SECRET not in json.dumps(recs), str(recs[:1]))
    c.check("run to EOF: nothing on stdout", r.stdout == b"", repr(r.stdout[:200]))


def start_run(binary, config, output):
    """`logveil run --config CONFIG` with stdin a pipe, stdout and stderr to `output`."""
    return subprocess.Popen([binary, "run", "--config", config], stdin=subprocess.PIPE,
                            stdout=output, stderr=output, env=harness.clean_env())


def check_run_sigterm(c, args, tmp):
    out_path = os.path.join(tmp, "sigterm.log")
    config = write_run_config(tmp, out_path, "sigterm.yaml")
    proc = start_run(args.binary, config, subprocess.PIPE)
    try:
        proc.stdin.write(lines_for("before", 50))
        proc.stdin.flush()
        written = harness.wait_for(lambda: len(records_in(out_path)[0]) == 50, 10, 0.02)
        c.check("SIGTERM: records sent before it are written while running", written,
                f"{len(records_in(out_path)[0])} records")
        # A line still being written when the signal comes is flushed too.
        proc.stdin.write(b'{"level":"warn","msg":"unterminated"}')
        proc.stdin.flush()
        time.sleep(0.2)
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            rc = None
        elapsed = time.monotonic() - start
        c.check("SIGTERM with stdin still open: exits 0 within 5 s", rc == 0,
                f"exit {rc} after {elapsed:.1f} s")
        recs, problem = records_in(out_path)
        msgs = [x.get("msg") for x in recs]
        c.check("SIGTERM: every record read so far is in the file",
                problem is None and msgs[:50] == [f"before-{i}" for i in range(50)] and
                msgs[50:] == ["unterminated"], f"{len(recs)} records, {problem}, {msgs[-2:]}")
        c.check("SIGTERM: no secret in the file", SECRET not in open(out_path).read())
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for f in (proc.stdin, proc.stdout, proc.stderr):
            try:
                f.close()
            except OSError:
                pass


def check_repeated_signals_while_draining(c, args, tmp):
    """An output that cannot deliver (/dev/full) keeps the drain waiting; more
    signals during the drain must be harmless."""
    config = write_run_config(tmp, "/dev/full", "full.yaml")
    proc = start_run(args.binary, config, subprocess.DEVNULL)
    try:
        proc.stdin.write(lines_for("full", 3))
        proc.stdin.flush()
        time.sleep(0.3)
        for sig in (signal.SIGTERM, signal.SIGTERM, signal.SIGINT, signal.SIGTERM):
            proc.send_signal(sig)
            time.sleep(0.15)
        time.sleep(0.5)
        c.check("signals during a stuck drain: still draining, no crash", proc.poll() is None,
                f"exit {proc.poll()}")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdin.close()


def main():
    args = harness.parser(__doc__).parse_args()
    c = harness.Checks()
    with tempfile.TemporaryDirectory(prefix="lv_cli_test_") as tmp:
        steps = [
            lambda: check_help_and_version(c, args),
            lambda: check_usage_errors(c, args),
            lambda: check_filter_empty(c, args),
            lambda: check_filter_from_file(c, args, tmp),
            lambda: check_run_to_eof(c, args, tmp),
            lambda: check_run_sigterm(c, args, tmp),
            lambda: check_repeated_signals_while_draining(c, args, tmp),
        ]
        harness.run_steps(c, steps)
    return c.report()


if __name__ == "__main__":
    sys.exit(main())
