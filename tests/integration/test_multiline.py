#!/usr/bin/env python3
"""Multiline joining end to end: `logveil run` with `multiline` on an input,
records going to a file output. Scenarios, each with its own directory:

- stdin, CRI: a Java exception with five "\\tat" frames is one record whose
  message holds every line joined by "\\n", with a password inside a frame
  still redacted and the @timestamp of its first line; CRI partials (P) are
  joined before the frames are; the JSON lines around it are records of their
  own; stdout and stderr traces interleaved in one file stay apart; a trace
  at the end of input is flushed;
- `logveil filter --config` joins as the first input does;
- tail: a trace followed by a pause in the writer is sent by the timeout,
  within timeout + 1 s, and the checkpoint then covers it;
- tail: while a trace is held the checkpoint stops where it begins; after a
  SIGTERM (held records are not flushed at shutdown) the restart reads it
  again and it arrives once, whole, with the frame written while logveil was
  down;
- tail: a trace held when its file is truncated (copytruncate) is sent, as
  its lines would have been without joining;
- a PEM private key printed over several lines, with no multiline map
  (`logveil filter` with no config, and CRI lines of a tailed file): its
  body never leaves in clear, whole or with a logger's prefix on each line,
  nor when the writer pauses in the middle (the timeout sends what is held
  and the rest goes out masked whole); the lines around it are kept.

Usage: test_multiline.py --binary PATH --source REPO
Prints one line per check and ends with "N passed, M failed".
"""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

STEP_TIMEOUT = 10.0
T1 = "2024-05-01T10:00:00.100000000Z"
T2 = "2024-05-01T10:00:01.200000000Z"


def cri(content, stream="stdout", tag="F", ts=T2):
    return f"{ts} {stream} {tag} {content}\n"


def frames(prefix, n, secret_at=None):
    out = []
    for i in range(n):
        extra = " password=hunter2" if i == secret_at else ""
        out.append(f"\tat com.example.{prefix}{i}.call({prefix}{i}.java:{i + 1}){extra}")
    return out


def write_config(tmp, input_lines, name="logveil.yaml"):
    out = os.path.join(tmp, "out.jsonl")
    cfg = os.path.join(tmp, name)
    lines = ["environment: development",
             "log_level: debug",
             f"state_dir: {json.dumps(os.path.join(tmp, 'state'))}",
             "inputs:"] + input_lines + [
             "outputs:", "  - type: file", f"    path: {json.dumps(out)}"]
    with open(cfg, "w") as f:
        f.write("\n".join(lines) + "\n")
    return cfg, out


def read_records(path):
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return []
    recs = []
    for line in text.splitlines():
        try:
            recs.append(json.loads(line))
        except ValueError:
            recs.append({"unparsable": line})
    return recs


def message_with(recs, needle):
    return [r for r in recs if needle in r.get("message", "") or needle in r.get("msg", "")]


def checkpoint_offset(path):
    """The offset of the only entry of a tail checkpoint, or None."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return None
    entries = [l for l in lines[1:] if not l.startswith("end ")]
    return int(entries[0].split(" ")[4]) if len(entries) == 1 else None


# ---- stdin ----------------------------------------------------------------------------------


def stdin_cri(args, c, tmp):
    cfg, out = write_config(tmp, ["  - type: stdin", "    format: cri", "    multiline: {}"])
    java = frames("Frame", 5, secret_at=2)
    text = cri('{"msg":"before"}')
    text += cri("ERROR handler failed", ts=T1)
    text += cri("java.lang.IllegalStateException: bo", tag="P") + cri("om")
    text += "".join(cri(f) for f in java)
    text += cri('{"msg":"after","n":1}')
    # Two traces interleaved, one per stream.
    text += cri("ERROR on stdout") + cri("ERROR on stderr", stream="stderr")
    for i in range(3):
        text += cri(f"\tat out.O{i}.f(O.java:1)") + cri(f"\tat err.E{i}.f(E.java:1)",
                                                      stream="stderr")
    text += cri('{"msg":"between"}')
    # A trace at the end of the input, its last frame without a newline.
    text += cri("ERROR last words") + cri("\tat end.Z.z(Z.java:9)")[:-1]
    with open(os.path.join(tmp, "stderr.log"), "wb") as err:
        proc = subprocess.run([args.binary, "run", "--config", cfg], input=text.encode(),
                              stdout=subprocess.DEVNULL, stderr=err, timeout=30)
    c.check("stdin: exits 0", proc.returncode == 0, f"exit status {proc.returncode}")
    recs = read_records(out)
    want = "\n".join(["ERROR handler failed", "java.lang.IllegalStateException: boom"] +
                     java).replace("hunter2", "[REDACTED]")
    trace = message_with(recs, "handler failed")
    c.check("stdin: a Java exception with five frames is one record, lines joined by \\n",
            len(trace) == 1 and trace[0]["message"] == want,
            json.dumps(trace)[:600])
    c.check("stdin: a password inside a frame is still redacted",
            not any("hunter2" in json.dumps(r) for r in recs))
    c.check("stdin: the joined record has its first line's time",
            trace and trace[0].get("@timestamp") == T1, trace and trace[0].get("@timestamp"))
    c.check("stdin: a level read from the first line",
            trace and trace[0].get("log", {}).get("level") == "error", json.dumps(trace)[:300])
    names = [r.get("msg") for r in recs if "msg" in r]
    c.check("stdin: JSON lines are records of their own",
            names == ["before", "after", "between"], str(names))
    o, e = message_with(recs, "ERROR on stdout"), message_with(recs, "ERROR on stderr")
    c.check("stdin: interleaved stdout and stderr traces stay apart",
            len(o) == 1 and len(e) == 1 and
            o[0]["message"] == "ERROR on stdout\n" + "\n".join(
                f"\tat out.O{i}.f(O.java:1)" for i in range(3)) and
            e[0]["message"] == "ERROR on stderr\n" + "\n".join(
                f"\tat err.E{i}.f(E.java:1)" for i in range(3)) and
            o[0].get("stream") == "stdout" and e[0].get("stream") == "stderr",
            json.dumps(o + e)[:600])
    last = message_with(recs, "last words")
    c.check("stdin: a trace at the end of the input is flushed",
            len(last) == 1 and last[0]["message"] == "ERROR last words\n\tat end.Z.z(Z.java:9)",
            json.dumps(last))
    c.check("stdin: nothing else", len(recs) == 7, f"{len(recs)} records")


def filter_command(args, c, tmp):
    cfg, _ = write_config(tmp, ["  - type: stdin", "    multiline: {continue: '^\\+'}"])
    text = "first\n+ second\n+ third\n{\"msg\":\"json\"}\n"
    proc = subprocess.run([args.binary, "filter", "--config", cfg], input=text.encode(),
                          capture_output=True, timeout=30)
    recs = [json.loads(l) for l in proc.stdout.decode().splitlines() if l.strip()]
    c.check("filter: exits 0", proc.returncode == 0, proc.stderr.decode()[-300:])
    c.check("filter: joins with the first input's pattern",
            [r.get("message", r.get("msg")) for r in recs] == ["first\n+ second\n+ third",
                                                                "json"],
            str(recs)[:400])


# ---- tail ------------------------------------------------------------------------------------


class Tail:
    """One `logveil run` following logs/*.log with multiline on."""

    running = []

    def __init__(self, args, tmp, timeout):
        self.args = args
        self.tmp = tmp
        self.logs = os.path.join(tmp, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.log = os.path.join(self.logs, "app.log")
        self.ckpt = os.path.join(tmp, "state", "app.ckpt")
        self.cfg, self.out = write_config(tmp, [
            "  - type: tail",
            "    format: cri",
            f"    paths: {json.dumps([os.path.join(self.logs, '*.log')])}",
            f"    checkpoint: {json.dumps(self.ckpt)}",
            "    scan_interval: 0.1",
            f"    multiline: {{timeout: {timeout}}}"])
        self.proc = None

    def start(self):
        err = open(os.path.join(self.tmp, "stderr.log"), "ab")
        self.proc = subprocess.Popen([self.args.binary, "run", "--config", self.cfg],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=err)
        err.close()
        Tail.running.append(self.proc)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STEP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return "killed after SIGTERM timed out"

    def append(self, text):
        with open(self.log, "a") as f:
            f.write(text)
            f.flush()

    def records(self):
        return read_records(self.out)

    def wait_message(self, needle, timeout=STEP_TIMEOUT):
        """(arrived, the records whose message holds `needle`)."""
        return harness.poll(lambda: (bool(m := message_with(self.records(), needle)), m),
                            self.proc, timeout)

    def wait_checkpoint(self, offset, timeout=5.0):
        """(reached, the checkpoint's offset) once it is `offset`."""
        return harness.poll(lambda: ((o := checkpoint_offset(self.ckpt)) == offset, o),
                            self.proc, timeout)


def tail_timeout(args, c, tmp):
    timeout = 1.0
    t = Tail(args, tmp, timeout)
    t.append(cri('{"msg":"ready"}'))
    t.start()
    try:
        ok, _ = t.wait_message("ready")
        c.check("timeout: the sidecar follows the file", ok)
        trace = ["ERROR paused writer"] + frames("Slow", 3)
        start = time.monotonic()
        t.append("".join(cri(l) for l in trace))
        ok, got = t.wait_message("paused writer", timeout + 5)
        took = time.monotonic() - start
        c.check(f"timeout: a held trace is sent within timeout + 1 s ({took:.2f} s)",
                ok and took <= timeout + 1.0, f"took {took:.2f} s")
        c.check("timeout: it was held until the timeout, not sent at once",
                took >= timeout - 0.25, f"took {took:.2f} s")
        c.check("timeout: it is one record with every line",
                ok and len(got) == 1 and got[0]["message"] == "\n".join(trace), str(got)[:400])
        size = os.path.getsize(t.log)
        ok, off = t.wait_checkpoint(size)
        c.check("timeout: the checkpoint then covers the trace", ok, f"{off} != {size}")
    finally:
        rc = t.stop()
    c.check("timeout: exits 0", rc == 0, f"exit status {rc}")


def tail_restart(args, c, tmp):
    t = Tail(args, tmp, 60)
    first = cri('{"msg":"one"}')
    t.append(first)
    trace = ["ERROR across a restart", "java.lang.RuntimeException: x"] + frames("Re", 2)
    t.append("".join(cri(l) for l in trace))
    t.start()
    try:
        ok, _ = t.wait_message("one")
        c.check("restart: the line before the trace arrives", ok)
        ok, off = t.wait_checkpoint(len(first))
        c.check("restart: while the trace is held the checkpoint stops where it begins",
                ok, f"offset {off}, trace begins at {len(first)}")
        time.sleep(1.2)  # another checkpoint tick: it must not move on
        c.check("restart: and stays there", checkpoint_offset(t.ckpt) == len(first),
                str(checkpoint_offset(t.ckpt)))
        c.check("restart: the held trace is not sent yet",
                not message_with(t.records(), "across a restart"))
    finally:
        rc = t.stop()
    c.check("restart: SIGTERM exits 0", rc == 0, f"exit status {rc}")
    c.check("restart: a held trace is not flushed at shutdown",
            not message_with(t.records(), "across a restart"))
    c.check("restart: the checkpoint left is the trace's start",
            checkpoint_offset(t.ckpt) == len(first), str(checkpoint_offset(t.ckpt)))
    late = "\tat com.example.Late.call(Late.java:7)"
    t.append(cri(late) + cri('{"msg":"two"}'))
    t.start()
    try:
        ok, _ = t.wait_message("two")
        recs = t.records()
        got = message_with(recs, "across a restart")
        c.check("restart: the trace arrives once, whole, with the frame written meanwhile",
                ok and len(got) == 1 and got[0]["message"] == "\n".join(trace + [late]),
                str(got)[:400])
        c.check("restart: the line before it is not sent again",
                len(message_with(recs, "one")) == 1, str(recs)[:300])
        size = os.path.getsize(t.log)
        ok, off = t.wait_checkpoint(size)
        c.check("restart: the checkpoint reaches the end", ok, f"{off} != {size}")
    finally:
        rc = t.stop()
    c.check("restart: exits 0 again", rc == 0, f"exit status {rc}")


def tail_truncated(args, c, tmp):
    t = Tail(args, tmp, 60)
    t.append(cri('{"msg":"ready"}'))
    t.start()
    try:
        ok, _ = t.wait_message("ready")
        c.check("truncated: the sidecar follows the file", ok)
        trace = ["ERROR before copytruncate"] + frames("Cut", 2)
        t.append("".join(cri(l) for l in trace))
        time.sleep(0.5)  # read and held
        c.check("truncated: the trace is held",
                not message_with(t.records(), "before copytruncate"))
        with open(t.log, "r+") as f:  # what copytruncate does to the original
            f.truncate(0)
        t.append(cri('{"msg":"after truncation"}'))
        ok, _ = t.wait_message("after truncation")
        got = message_with(t.records(), "before copytruncate")
        c.check("truncated: a trace held when its file is truncated is sent, not lost",
                ok and len(got) == 1 and got[0]["message"] == "\n".join(trace), str(got)[:400])
    finally:
        rc = t.stop()
    c.check("truncated: exits 0", rc == 0, f"exit status {rc}")


# ---- private keys over several lines -------------------------------------------------------

KEY_BODY = ["MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun",
            "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK",
            "LxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW/VDL5Aa=="]


def key_lines(prefix=""):
    return ([f"{prefix}-----BEGIN RSA PRIVATE KEY-----"] + [prefix + b for b in KEY_BODY] +
            [f"{prefix}-----END RSA PRIVATE KEY-----"])


def leaks(recs):
    text = json.dumps(recs)
    return [b for b in KEY_BODY if b in text or b[:24] in text]


def pem_filter(args, c, tmp):
    lines = (["INFO loading the signing key"] + key_lines() + ["INFO key loaded"] +
             key_lines("2024-05-01 10:00:00 ERROR ") + ['{"msg":"after"}'])
    proc = subprocess.run([args.binary, "filter"], input=("\n".join(lines) + "\n").encode(),
                          capture_output=True, env=harness.clean_env(), timeout=30)
    recs = [json.loads(l) for l in proc.stdout.decode().splitlines() if l.strip()]
    msgs = [r.get("message", r.get("msg")) for r in recs]
    c.check("pem: filter with no config exits 0", proc.returncode == 0, proc.stderr.decode()[-300:])
    c.check("pem: no line of a key body leaves in clear", not leaks(recs), str(msgs)[:600])
    c.check("pem: a block is one record, the lines around it their own",
            msgs == ["INFO loading the signing key", "[REDACTED]", "INFO key loaded",
                     "2024-05-01 10:00:00 ERROR [REDACTED]", "after"], str(msgs)[:600])


def pem_paused(args, c, tmp):
    """The writer stops in the middle of a key for longer than the timeout."""
    proc = subprocess.Popen([args.binary, "filter"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=harness.clean_env())
    lines = key_lines()
    proc.stdin.write(("\n".join(lines[:2]) + "\n").encode())
    proc.stdin.flush()
    time.sleep(2.0)
    proc.stdin.write(("\n".join(lines[2:] + ["INFO next"]) + "\n").encode())
    out, err = proc.communicate(timeout=30)
    recs = [json.loads(l) for l in out.decode().splitlines() if l.strip()]
    msgs = [r.get("message") for r in recs]
    c.check("pem: a paused block leaves nothing in clear", not leaks(recs), str(msgs)[:600])
    c.check("pem: the part sent by the timeout and the rest are masked whole",
            msgs == ["[REDACTED]", "[REDACTED]", "INFO next"], str(msgs)[:600])


def pem_tail(args, c, tmp):
    t = Tail(args, tmp, 1.0)
    # no multiline map on this input: only private keys are joined
    with open(t.cfg) as f:
        cfg = f.read().replace("    multiline: {timeout: 1.0}\n", "")
    with open(t.cfg, "w") as f:
        f.write(cfg)
    t.start()
    t.append("".join(cri(l, stream="stderr") for l in ["starting"] + key_lines() + ["done"]))
    ok, _ = t.wait_message("done")
    recs = t.records()
    msgs = [r.get("message") for r in recs]
    c.check("pem: tail sends the lines after the key", ok, str(msgs)[:300])
    c.check("pem: tail ships no line of the key body", not leaks(recs), str(msgs)[:600])
    c.check("pem: tail joins the key into one record", msgs == ["starting", "[REDACTED]", "done"],
            str(msgs)[:600])
    c.check("pem: tail exits 0 on SIGTERM", t.stop() == 0)


SCENARIOS = [stdin_cri, filter_command, tail_timeout, tail_restart, tail_truncated, pem_filter,
             pem_paused, pem_tail]


def main():
    return harness.run_scenarios(__doc__, "logveil-multiline-", SCENARIOS, Tail.running)


if __name__ == "__main__":
    sys.exit(main())
