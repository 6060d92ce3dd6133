#!/usr/bin/env python3
"""`logveil filter` end to end: framing, enrichment, sampling and the limits.

Everything goes through the real binary with a clean environment (PATH plus
whatever a test sets). Inputs are generated here, so the expected output is
known exactly:

- development keeps every line, every output line is a JSON object, numbers
  are written back byte for byte;
- CRI and Docker json-file framing: partial lines joined per stream, the
  runtime's time as @timestamp (in UTC) when the record has none, `stream`;
- Kubernetes fields from the downward-API variables;
- production sampling over 200,000 records: WARN and above and audit records
  always kept, DEBUG/INFO kept at 1 %, whole traces kept or dropped, the same
  decisions in two processes, and the drops counted in --stats;
- staging and canary keep 10 % with no config; the shipped production config
  works as a filter config;
- limits: a 50 MB line (bounded memory), a nesting bomb, invalid UTF-8, and
  a text line with a secret in it.

Usage: test_filter.py --binary PATH --source REPO
Prints one line per check and ends with "N passed, M failed".
"""
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

TIMEOUT = 60
MIB = 1024 * 1024

# The downward-API variables and what they become.
K8S_ENV = {
    "POD_NAME": "checkout-5f7d8c-abcde",
    "POD_NAMESPACE": "shop",
    "POD_UID": "0b6f5a2e-1c3d-4e5f-8a9b-0c1d2e3f4a5b",
    "NODE_NAME": "node-7",
    "CONTAINER_NAME": "checkout",
}


def run_filter(binary, args, data, env=None, timeout=TIMEOUT):
    """Runs `logveil filter ARGS` on `data` (bytes); returns the CompletedProcess."""
    return subprocess.run([binary, "filter", *args], input=data, capture_output=True,
                          env=env if env is not None else harness.clean_env(),
                          timeout=timeout)


def parse_lines(stdout):
    """(records, problems): every output line parsed as a JSON object."""
    records, problems = [], []
    for i, raw in enumerate(stdout.split(b"\n")[:-1] if stdout else []):
        try:
            rec = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            problems.append(f"line {i + 1}: {e}: {raw[:120]!r}")
            continue
        if not isinstance(rec, dict):
            problems.append(f"line {i + 1}: not an object: {raw[:120]!r}")
            continue
        records.append(rec)
    if stdout and not stdout.endswith(b"\n"):
        problems.append("output does not end with a newline")
    return records, problems


def dig(rec, path):
    for part in path.split("."):
        if not isinstance(rec, dict) or part not in rec:
            return None
        rec = rec[part]
    return rec


# ---- limits: run first, while this process is small (see check_huge_line) ----

HUGE_GENERATOR = r"""
import sys
out = sys.stdout.buffer
out.write(b'{"level":"info","msg":"')
chunk = b"0123456789abcdef" * 65536
for _ in range(50):
    out.write(chunk)
out.write(b'"}\n{"after":"the huge line"}\n')
"""


def check_huge_line(c, args):
    """A 50 MB single line: one truncated record and bounded memory.

    The line is written by a separate generator process, so this process
    never holds it. A forked child's peak RSS includes the parent's image
    before exec, which is why this check runs before any large data exists
    here, and why the child is reaped with wait4() to read its own usage.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        gen = subprocess.Popen([sys.executable, "-c", HUGE_GENERATOR], stdout=subprocess.PIPE,
                               env=harness.clean_env())
        lv = subprocess.Popen([args.binary, "filter", "--stats"], stdin=gen.stdout, stdout=out,
                              stderr=err, env=harness.clean_env())
        gen.stdout.close()
        killer = threading.Timer(TIMEOUT, lambda: (lv.kill(), gen.kill()))
        killer.start()
        _, status, usage = os.wait4(lv.pid, 0)
        killer.cancel()
        lv.returncode = os.waitstatus_to_exitcode(status)
        gen.wait()
        out.seek(0)
        stdout = out.read()
        err.seek(0)
        stats = err.read().decode(errors="replace")
    c.check("50 MB line: exit 0", lv.returncode == 0, f"exit {lv.returncode}: {stats[-500:]}")
    records, problems = parse_lines(stdout)
    c.check("50 MB line: output is valid JSON", not problems, "; ".join(problems[:3]))
    c.check("50 MB line: one record for it, and the next line intact",
            len(records) == 2 and records[1].get("after") == "the huge line",
            f"{len(records)} records")
    if records:
        big = records[0]
        msg = big.get("message", "")
        c.check("50 MB line: flagged truncated", big.get("truncated") is True,
                f"keys {sorted(big)}")
        c.check("50 MB line: message at most 1 MiB and not empty",
                0 < len(msg.encode()) <= MIB, f"{len(msg.encode())} bytes")
        c.check("50 MB line: message is the start of the line",
                msg.startswith('{"level":"info","msg":"0123456789abcdef'), msg[:60])
    c.check("50 MB line: peak RSS below 64 MB (also under AddressSanitizer)",
            usage.ru_maxrss < 64 * 1024, f"{usage.ru_maxrss // 1024} MB")
    c.check("50 MB line: counted as truncated",
            harness.sample(stats, "logveil_lines_truncated_total") == 1,
            str(harness.sample(stats, "logveil_lines_truncated_total")))


def check_nesting_bomb(c, args):
    deep_obj = b'{"a":' * 100000 + b"1" + b"}" * 100000
    unclosed = b'{"a":' * 100000
    data = deep_obj + b"\n" + unclosed + b'\n{"level":"info","msg":"after"}\n'
    r = run_filter(args.binary, ["--stats"], data)
    stats = r.stderr.decode(errors="replace")
    c.check("nesting bomb: exit 0 (no crash)", r.returncode == 0,
            f"exit {r.returncode}: {stats[-500:]}")
    records, problems = parse_lines(r.stdout)
    c.check("nesting bomb: output is valid JSON", not problems, "; ".join(problems[:3]))
    withheld = [x for x in records if "withheld" in str(x.get("message", ""))]
    c.check("nesting bomb: each bomb becomes a minimal record saying it was withheld",
            len(withheld) == 2 and all(x.get("logveil_error") is True for x in withheld)
            and all(len(json.dumps(x)) < 1000 for x in withheld),
            f"{len(records)} records: {[str(x)[:120] for x in records]}")
    c.check("nesting bomb: the next record is intact",
            bool(records) and records[-1].get("msg") == "after", str(records[-1:])[:200])
    depth = harness.sample(stats, "logveil_records_dropped_total", reason="depth", level="unknown")
    c.check("nesting bomb: counted as dropped, reason depth", depth == 2, f"depth drops: {depth}")


def check_invalid_utf8(c, args):
    data = (b'{"level":"info","msg":"caf\xc3\xa9 \xff\xfe end","k\xc0y":"v\xed\xa0\x80"}\n'
            b"plain text \xf0\x28\x8c\x28 here\n")
    r = run_filter(args.binary, [], data)
    records, problems = parse_lines(r.stdout)
    c.check("invalid UTF-8: exit 0 and valid JSON out",
            r.returncode == 0 and not problems and len(records) == 2,
            f"exit {r.returncode}, {problems[:2]}, {len(records)} records")
    if len(records) == 2:
        msg = records[0].get("msg", "")
        c.check("invalid UTF-8: bad bytes become U+FFFD, good ones stay",
                msg.startswith("caf\u00e9 ") and "\ufffd" in msg and msg.endswith(" end"),
                repr(msg))
        c.check("invalid UTF-8: keys and every value are repaired too",
                any("\ufffd" in k for k in records[0]) and
                "\ufffd" in "".join(str(v) for v in records[0].values()), repr(records[0]))
        c.check("invalid UTF-8: a text line is repaired as well",
                "\ufffd" in records[1].get("message", ""), repr(records[1]))


def check_text_line(c, args):
    data = b"2024-05-01 ERROR payment failed token=tok_live_abc123def456 user=ada\n"
    r = run_filter(args.binary, [], data)
    records, problems = parse_lines(r.stdout)
    ok = r.returncode == 0 and not problems and len(records) == 1
    c.check("text line: one record", ok, f"exit {r.returncode}, {problems}, {r.stdout[:200]!r}")
    if ok:
        msg = records[0].get("message", "")
        c.check("text line: becomes {\"message\": ...} with token= redacted",
                msg.startswith("2024-05-01 ERROR payment failed token=") and
                "tok_live_abc123def456" not in r.stdout.decode() and "user=ada" in msg, msg)


# ---- development: nothing lost, nothing changed ------------------------------------

NUMBERS = ["0", "-0", "1", "-1", "0.1", "1.0", "1e400", "-1.5E-300", "12345678901234567890123",
           "9223372036854775808", "3.141592653589793238462643383279", "1E+2", "0.000001"]


def check_development(c, args):
    rng = random.Random(7)
    lines = []
    for i in range(3000):
        kind = i % 5
        if kind == 0:
            lines.append(f"plain text line {i} with some words")
        elif kind == 1:
            n = NUMBERS[i % len(NUMBERS)]
            lines.append(f'{{"seq":{i},"n":{n},"arr":[{n},{{"m":{n}}}]}}')
        else:
            rec = {"seq": i, "level": rng.choice(["debug", "info", "warn", "error"]),
                   "msg": "x" * rng.randrange(0, 300), "trace_id": f"t{i}"}
            lines.append(json.dumps(rec))
    data = ("\n".join(lines) + "\n").encode()
    r = run_filter(args.binary, ["--env", "development"], data)
    records, problems = parse_lines(r.stdout)
    c.check("development: exit 0", r.returncode == 0, f"exit {r.returncode}: {r.stderr[-300:]}")
    c.check("development: every output line is a JSON object", not problems,
            "; ".join(problems[:3]))
    c.check("development: count in == count out", len(records) == len(lines),
            f"{len(lines)} in, {len(records)} out")
    # Numbers: compare the raw text, since a JSON parser would round them.
    out_lines = r.stdout.decode().split("\n")
    bad = []
    for i in range(1, len(lines), 5):
        n = NUMBERS[i % len(NUMBERS)]
        want = f'{{"seq":{i},"n":{n},"arr":[{n},{{"m":{n}}}]'
        if i >= len(out_lines) or not out_lines[i].startswith(want):
            bad.append(f"{want} -> {out_lines[i][:80] if i < len(out_lines) else None}")
    c.check("development: numbers are preserved exactly", not bad, "; ".join(bad[:3]))
    texts = [x for x in records if "message" in x and "plain text line" in x["message"]]
    c.check("development: text lines are kept as {\"message\": ...}", len(texts) == 600,
            f"{len(texts)} of 600")
    c.check("development: records carry environment and sample_rate 1",
            all(x.get("environment") == "development" and x.get("sample_rate") == 1
                for x in records), str(records[:1]))


# ---- CRI and Docker framing --------------------------------------------------------

def cri_sample():
    """(bytes, expected records in output order). Long lines are cut into P
    fragments of 50 bytes, and stderr fragments are interleaved with stdout's."""
    times = [("2024-05-01T10:00:00.123456789+02:00", "2024-05-01T08:00:00.123456789Z"),
             ("2024-05-01T08:00:09.6697942Z", "2024-05-01T08:00:09.669794200Z"),
             ("2024-05-01T08:00:10Z", "2024-05-01T08:00:10.000000000Z"),
             ("2024-05-01T03:00:11.5-05:00", "2024-05-01T08:00:11.500000000Z")]
    out, expected = [], []
    for i in range(40):
        t, utc = times[i % len(times)]
        rec = {"seq": i, "level": "info", "msg": f"message {i} " + "y" * (i * 7)}
        if i % 10 == 9:
            rec["time"] = "2023-01-02T03:04:05Z"  # its own time wins
        text = json.dumps(rec, separators=(",", ":"))
        pieces = [text[k:k + 50] for k in range(0, len(text), 50)]
        err_text = f"stderr line {i}"
        for n, piece in enumerate(pieces):
            tag = "F" if n == len(pieces) - 1 else ("P:x" if n % 2 else "P")
            if n == 1:  # an stderr line arrives in the middle of a stdout join
                out.append(f"{t} stderr P {err_text[:6]}")
                out.append(f"{t} stderr F {err_text[6:]}")
                expected.append(({"message": err_text}, "stderr", utc))
            out.append(f"{t} stdout {tag} {piece}")
        ts = "2023-01-02T03:04:05.000000000Z" if "time" in rec else utc
        expected.append((rec, "stdout", ts))
        if len(pieces) == 1:
            out.append(f"{t} stderr F {err_text}")
            expected.append(({"message": err_text}, "stderr", utc))
    return ("\n".join(out) + "\n").encode(), expected


def check_framed(c, args, fmt, data, expected):
    r = run_filter(args.binary, ["--format", fmt], data)
    records, problems = parse_lines(r.stdout)
    c.check(f"{fmt}: exit 0 and valid JSON", r.returncode == 0 and not problems,
            f"exit {r.returncode}, {problems[:2]}, {r.stderr[-300:]}")
    c.check(f"{fmt}: one record per joined line", len(records) == len(expected),
            f"{len(records)} records, expected {len(expected)}")
    bad_body, bad_stream, bad_time = [], [], []
    for got, (want, stream, ts) in zip(records, expected):
        if any(got.get(k) != v for k, v in want.items()):
            bad_body.append(f"{str(want)[:60]} -> {str(got)[:100]}")
        if got.get("stream") != stream:
            bad_stream.append(f"{str(want)[:40]}: stream {got.get('stream')}")
        if got.get("@timestamp") != ts:
            bad_time.append(f"{str(want)[:40]}: {got.get('@timestamp')} != {ts}")
    c.check(f"{fmt}: partial lines are joined into the original records", not bad_body,
            "; ".join(bad_body[:3]))
    c.check(f"{fmt}: stream is stdout or stderr as the runtime said", not bad_stream,
            "; ".join(bad_stream[:3]))
    c.check(f"{fmt}: @timestamp is the runtime's time in UTC unless the record has one",
            not bad_time, "; ".join(bad_time[:3]))


def docker_sample():
    out, expected = [], []
    for i in range(30):
        utc = f"2024-05-01T08:00:{i:02d}.{i:09d}Z"
        rec = {"seq": i, "level": "warn", "msg": f"<tag> & caf\u00e9 \"{i}\" " + "z" * (i * 9)}
        text = json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n"
        stream = "stderr" if i % 3 == 0 else "stdout"
        pieces = [text[k:k + 64] for k in range(0, len(text), 64)]
        for piece in pieces:
            # Go's encoder writes <, > and & as \u003c, \u003e, \u0026.
            entry = json.dumps({"log": piece, "stream": stream, "time": utc})
            entry = entry.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            out.append(entry)
        expected.append((rec, stream, utc))
    return ("\n".join(out) + "\n").encode(), expected


# ---- Kubernetes ---------------------------------------------------------------------

def check_kubernetes(c, args):
    data = b'{"level":"info","msg":"in a pod"}\nplain text in a pod\n'
    r = run_filter(args.binary, [], data, env=harness.clean_env(**K8S_ENV))
    records, problems = parse_lines(r.stdout)
    ok = r.returncode == 0 and not problems and len(records) == 2
    c.check("kubernetes: exit 0 and two records", ok, f"exit {r.returncode}, {problems}")
    want = {"kubernetes.pod.name": K8S_ENV["POD_NAME"],
            "kubernetes.namespace": K8S_ENV["POD_NAMESPACE"],
            "kubernetes.pod.uid": K8S_ENV["POD_UID"],
            "kubernetes.node.name": K8S_ENV["NODE_NAME"],
            "kubernetes.container.name": K8S_ENV["CONTAINER_NAME"]}
    for path, value in want.items():
        c.check(f"kubernetes: {path} from the downward API",
                ok and all(dig(x, path) == value for x in records),
                str([dig(x, path) for x in records]))
    r = run_filter(args.binary, [], data)
    records, _ = parse_lines(r.stdout)
    c.check("kubernetes: nothing added outside a pod",
            records and all("kubernetes" not in x for x in records), str(records[:1]))


# ---- sampling -----------------------------------------------------------------------

SAMPLED_LEVELS = ("debug", "info")
LEVEL_CHOICES = ["info"] * 55 + ["INFO"] * 5 + ["debug"] * 15 + ["warn"] * 8 + \
    ["WARNING"] * 2 + ["error"] * 6 + ["ERROR"] * 2 + ["fatal"] * 2 + ["audit"] * 5


def sampling_corpus(n):
    """n records in traces of 1-4 records, each trace with its own id.
    Returns (bytes, meta) with meta[seq] = (trace, level, audit)."""
    rng = random.Random(20240501)
    lines, meta = [], []
    trace = 0
    while len(meta) < n:
        trace += 1
        tid = f"{rng.getrandbits(128):032x}"
        for _ in range(min(rng.randint(1, 4), n - len(meta))):
            seq = len(meta)
            level = rng.choice(LEVEL_CHOICES)
            audit = level == "audit"
            if audit:
                rec = {"seq": seq, "level": "info", "log": {"type": "audit"}, "trace_id": tid,
                       "msg": "user changed role"}
                level = "info"
            else:
                rec = {"seq": seq, "level": level, "trace_id": tid, "msg": "request handled"}
            lines.append(json.dumps(rec, separators=(",", ":")))
            meta.append((trace, level.lower().replace("warning", "warn"), audit))
    return ("\n".join(lines) + "\n").encode(), meta


def check_production_sampling(c, args):
    n = 200000
    data, meta = sampling_corpus(n)
    first = run_filter(args.binary, ["--env", "production", "--stats"], data)
    second = run_filter(args.binary, ["--env", "production"], data)
    stats = first.stderr.decode(errors="replace")
    c.check("production: both runs exit 0", first.returncode == 0 and second.returncode == 0,
            f"exit {first.returncode}/{second.returncode}: {stats[-300:]}")
    records, problems = parse_lines(first.stdout)
    records2, problems2 = parse_lines(second.stdout)
    c.check("production: output is valid JSON", not problems and not problems2,
            "; ".join((problems + problems2)[:3]))
    kept = {x["seq"]: x for x in records if "seq" in x}
    kept2 = {x["seq"] for x in records2 if "seq" in x}
    c.check("production: two processes keep the identical set of records",
            set(kept) == kept2, f"{len(kept)} vs {len(kept2)}, differ in "
            f"{len(set(kept) ^ kept2)}")

    always = [s for s, (_, lvl, audit) in enumerate(meta) if audit or lvl not in SAMPLED_LEVELS]
    lost = [s for s in always if s not in kept]
    c.check(f"production: every WARN/ERROR/FATAL and audit record is kept ({len(always)})",
            not lost, f"{len(lost)} lost, e.g. {[meta[s] for s in lost[:3]]}")
    audits = [s for s, m in enumerate(meta) if m[2]]
    c.check("production: audit records are kept whatever their level",
            all(s in kept for s in audits) and len(audits) > 1000, f"{len(audits)} audits")

    # Sampled levels: the trace is the unit, so the kept fraction's sigma is
    # that of a cluster sample: sqrt(p(1-p) * sum(m_i^2)) / sum(m_i).
    by_trace = {}
    for s, (trace, lvl, audit) in enumerate(meta):
        if lvl in SAMPLED_LEVELS and not audit:
            by_trace.setdefault(trace, []).append(s)
    split = [t for t, seqs in by_trace.items() if 0 < sum(s in kept for s in seqs) < len(seqs)]
    c.check("production: the records of a trace are kept or dropped together", not split,
            f"{len(split)} traces split, e.g. {split[:3]}")
    sampled = [s for seqs in by_trace.values() for s in seqs]
    n_kept = sum(s in kept for s in sampled)
    p = 0.01
    sigma = math.sqrt(p * (1 - p) * sum(len(v) ** 2 for v in by_trace.values())) / len(sampled)
    frac = n_kept / len(sampled)
    c.check(f"production: DEBUG/INFO kept fraction {frac:.5f} within 5 sigma of 0.01 "
            f"(sigma {sigma:.5f})", abs(frac - p) <= 5 * sigma and n_kept > 0,
            f"{n_kept} of {len(sampled)}")

    bad_rate = []
    for s, x in kept.items():
        _, lvl, audit = meta[s]
        want = 0.01 if lvl in SAMPLED_LEVELS and not audit else 1
        if x.get("sample_rate") != want:
            bad_rate.append(f"seq {s} ({lvl}, audit={audit}): {x.get('sample_rate')}")
    c.check("production: kept records carry sample_rate (0.01 sampled, 1 always kept)",
            not bad_rate, "; ".join(bad_rate[:3]))
    c.check("production: environment is production",
            all(x.get("environment") == "production" for x in records), str(records[:1]))

    for level in SAMPLED_LEVELS:
        dropped = sum(1 for s, (_, lvl, audit) in enumerate(meta)
                      if lvl == level and not audit and s not in kept)
        got = harness.sample(stats, "logveil_records_dropped_total", reason="sampled", level=level)
        c.check(f'production: --stats dropped{{reason="sampled",level="{level}"}} equals the '
                f"{dropped} {level} records dropped", got == dropped, f"stats say {got}")
    got = harness.sample(stats, "logveil_input_records_total")
    c.check("production: --stats counts every input record", got == n, f"stats say {got}")


def check_low_rate_envs(c, args):
    n = 20000
    rng = random.Random(99)
    lines = [json.dumps({"seq": i, "level": "info", "trace_id": f"{rng.getrandbits(64):016x}"})
             for i in range(n)]
    lines += [json.dumps({"seq": n + i, "level": "error"}) for i in range(100)]
    data = ("\n".join(lines) + "\n").encode()
    decisions = {}
    for env in ("staging", "canary"):
        r = run_filter(args.binary, ["--env", env], data)
        records, problems = parse_lines(r.stdout)
        info = [x for x in records if x.get("level") == "info"]
        errors = [x for x in records if x.get("level") == "error"]
        p = 0.1
        sigma = math.sqrt(p * (1 - p) / n)
        frac = len(info) / n
        c.check(f"{env}: exit 0 and valid JSON with no config", r.returncode == 0 and not problems,
                f"exit {r.returncode}, {problems[:2]}, {r.stderr[-300:]}")
        c.check(f"{env}: INFO kept fraction {frac:.4f} within 5 sigma of 0.1",
                abs(frac - p) <= 5 * sigma, f"{len(info)} of {n}")
        c.check(f"{env}: sample_rate 0.1 on INFO, 1 on ERROR, errors all kept",
                all(x.get("sample_rate") == 0.1 for x in info) and len(errors) == 100 and
                all(x.get("sample_rate") == 1 for x in errors), str(info[:1]))
        c.check(f"{env}: environment field", all(x.get("environment") == env for x in records))
        decisions[env] = {x["seq"] for x in info}
    c.check("staging and canary: the same rate keeps the same traces",
            decisions["staging"] == decisions["canary"])


def check_production_config(c, args, tmp):
    labels = os.path.join(tmp, "labels")
    with open(labels, "w") as f:
        f.write('app="checkout"\ntier="backend"\n')
    config = os.path.join(args.source, "configs", "production.yaml")
    data = (b'{"level":"error","msg":"card declined","password":"hunter2","trace_id":"t1"}\n'
            b'{"level":"info","msg":"audit","log":{"type":"audit"},"trace_id":"t2"}\n'
            b"plain line apikey=sk_live_0123456789abcdef01234567\n")
    env = harness.clean_env(LOGVEIL_LABELS_FILE=labels, **K8S_ENV)
    r = run_filter(args.binary, ["--config", config], data, env=env)
    records, problems = parse_lines(r.stdout)
    ok = r.returncode == 0 and not problems
    c.check("--config configs/production.yaml: exit 0 and valid JSON", ok,
            f"exit {r.returncode}, {problems[:2]}, {r.stderr.decode(errors='replace')[-400:]}")
    c.check("--config configs/production.yaml: error and audit records kept",
            [x.get("msg") for x in records[:2]] == ["card declined", "audit"], str(records)[:300])
    text = r.stdout.decode(errors="replace")
    c.check("--config configs/production.yaml: secrets redacted",
            "hunter2" not in text and "sk_live_0123456789abcdef01234567" not in text, text[:300])
    c.check("--config configs/production.yaml: environment production and labels from the file",
            bool(records) and all(x.get("environment") == "production" for x in records) and
            dig(records[0], "kubernetes.labels") == {"app": "checkout", "tier": "backend"} and
            dig(records[0], "kubernetes.pod.name") == K8S_ENV["POD_NAME"], str(records[:1])[:300])


def check_ecs_log_merge(c, args):
    """log.level goes into a log object the record has (an audit record), and
    is never added twice or into a log that is not an object."""
    data = (b'{"level":"warn","log":{"type":"audit"},"n":1}\n'
            b'{"level":"error","log":{},"n":2}\n'
            b'{"level":"info","log":{"level":"INFO","origin":{"file":"a}\\"b"}},"n":3}\n'
            b'{"level":"info","log":"text","n":4}\n'
            b'{"level":"debug","log.level":"DEBUG","log":{"type":"a"},"n":5}\n'
            b'{"level":"warn","n":6}\n')
    r = run_filter(args.binary, [], data)
    records, problems = parse_lines(r.stdout)
    by = {x.get("n"): x for x in records}
    c.check("ecs: exit 0, six valid records", r.returncode == 0 and not problems and
            len(by) == 6, f"{problems[:2]} {r.stderr[-200:]}")
    c.check("ecs: log.level merged into the record's own log object",
            by.get(1, {}).get("log") == {"type": "audit", "level": "warn"} and
            by.get(2, {}).get("log") == {"level": "error"}, str(by.get(1)))
    c.check("ecs: a log object with its own level is left as it is",
            by.get(3, {}).get("log") == {"level": "INFO", "origin": {"file": 'a}"b'}})
    c.check("ecs: a log that is not an object, or a dotted log.level, gets none added",
            by.get(4, {}).get("log") == "text" and by.get(5, {}).get("log") == {"type": "a"})
    c.check("ecs: a record without log gets log.level",
            by.get(6, {}).get("log") == {"level": "warn"})
    raw = r.stdout.decode()
    c.check("ecs: no duplicate log keys in the text",
            all(line.count('"log":') <= 1 for line in raw.splitlines()))


def main():
    args = harness.parser(__doc__).parse_args()
    c = harness.Checks()
    with tempfile.TemporaryDirectory(prefix="lv_filter_test_") as tmp:
        steps = [
            lambda: check_huge_line(c, args),  # first: see its docstring
            lambda: check_nesting_bomb(c, args),
            lambda: check_invalid_utf8(c, args),
            lambda: check_text_line(c, args),
            lambda: check_development(c, args),
            lambda: check_framed(c, args, "cri", *cri_sample()),
            lambda: check_framed(c, args, "docker", *docker_sample()),
            lambda: check_kubernetes(c, args),
            lambda: check_production_sampling(c, args),
            lambda: check_low_rate_envs(c, args),
            lambda: check_production_config(c, args, tmp),
            lambda: check_ecs_log_merge(c, args),
        ]
        harness.run_steps(c, steps)
    return c.report()


if __name__ == "__main__":
    sys.exit(main())
