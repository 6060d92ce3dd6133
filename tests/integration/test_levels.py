#!/usr/bin/env python3
"""Levels from every common logger, through `logveil filter`, with the cases
of tests/cases/loggers.cases (the file describes its format). Output is
read with Python's json module, and each input line is found in the output
by the number it carries, so what is checked does not rest on logveil's own
parsing. Scenarios:

- detection: development (keeps everything), every line once, CRI-framed on
  its stream: each record's ECS log.level is the case's level, lower case
  (absent for NONE);
- production: 10,000 records per logger (its lines in turn, each copy
  numbered): every WARN/ERROR/FATAL copy is shipped; TRACE/DEBUG/INFO copies
  are kept within 5 sigma of the rate (0.01), lines without a level within
  5 sigma of their stream's (0.01 stdout, 0.1 stderr); every kept record's
  sample_rate is its class's;
- the shipped configs/production.yaml keeps every WARN/ERROR/FATAL copy too
  (it no longer narrows level_fields);
- joined traces: production with multiline joining on, 300 copies of each
  [trace]: each copy is one record whose message is its lines joined by
  "\\n", at the trace's level, and every WARN/ERROR copy is kept;
- a Go panic, joined by the pattern for Go the README gives, is one FATAL
  record, every copy kept;
- JSON records cut at limits.max_line (shipped as text) keep their level:
  every ERROR one kept, INFO ones sampled.

Usage: test_levels.py --binary PATH --source REPO
Prints one line per check and ends with "N passed, M failed".
"""
import json
import math
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "NONE"]
ALWAYS = {"WARN", "ERROR", "FATAL"}
COPIES = 10000
TRACE_COPIES = 300
TIMEOUT = 120
MARK = re.compile(r"~(\d+)~")
T0 = "2024-01-05T12:00:00.000000000Z"
RATE = 0.01                                   # production, TRACE/DEBUG/INFO
UNKNOWN = {"stdout": 0.01, "stderr": 0.1}     # production, lines without a level

GO_PANIC = [
    "panic: runtime error: invalid memory address or nil pointer dereference (@N@)",
    "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x48f1a4]",
    "",
    "goroutine 1 [running]:",
    "main.(*Server).handle(0x0, {0x4b6f20, 0xc000012345})",
    "\t/app/server.go:42 +0x24",
    "main.main()",
    "\t/app/main.go:10 +0x1d",
]
GO_CONTINUE = r"^(\s|$|\[signal |goroutine \d+ \[|created by |[\w./*()-]+\(.*\)$)"


def parse_cases(path):
    """(loggers, traces): loggers is [(name, [(stream, level, line)])],
    traces is [(name, stream, level, [line])]."""
    loggers, traces = [], []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^\[(logger|trace) ([\w.-]+)\]$", line)
        if m and m.group(1) == "logger":
            loggers.append((m.group(2), []))
        elif m:
            i = parse_trace(path, lines, i, m.group(2), traces)
        elif line.startswith(("stdout ", "stderr ")):
            stream, level, text = line.split(" ", 2)
            if level not in LEVELS or not loggers or text.count("@N@") != 1:
                raise ValueError(f"{path}:{i + 1}: bad case line")
            loggers[-1][1].append((stream, level, text))
        elif line and not line.startswith("#"):
            raise ValueError(f"{path}:{i + 1}: unexpected line")
        i += 1
    return loggers, traces


def parse_trace(path, lines, i, name, traces):
    start, head = i + 1, {}
    i += 1
    while lines[i].startswith("#"):
        i += 1
    while re.match(r"^(stream|level): ", lines[i]):
        key, value = lines[i].split(": ", 1)
        head[key] = value
        i += 1
    body = []
    while i < len(lines) and lines[i] != "[end]":
        body.append(lines[i])
        i += 1
    if i == len(lines) or set(head) != {"stream", "level"} or not body:
        raise ValueError(f"{path}:{start}: bad [trace {name}]")
    traces.append((name, head["stream"], head["level"], body))
    return i


def cri(stream, text):
    return f"{T0} {stream} F {text}\n"


def numbered(text, n):
    return text.replace("@N@", f"~{n}~")


def run_filter(args, text, *extra):
    """(exit status, stderr, [(mark number or None, record)]) for `text`."""
    proc = subprocess.run([args.binary, "filter", "--format", "cri", *extra],
                          input=text.encode(), capture_output=True, timeout=TIMEOUT,
                          env=harness.clean_env())
    out = []
    for raw in proc.stdout.decode("utf-8", "replace").splitlines():
        m = MARK.search(raw)
        try:
            rec = json.loads(raw)
        except ValueError:
            rec = {"unparsable": raw}
        out.append((int(m.group(1)) if m else None, rec))
    return proc.returncode, proc.stderr.decode()[-400:], out


def ecs_level(rec):
    log = rec.get("log")
    return log.get("level") if isinstance(log, dict) else None


def expected_rate(stream, level):
    if level in ALWAYS:
        return 1.0
    return UNKNOWN[stream] if level == "NONE" else RATE


def within_5_sigma(kept, n, p):
    sigma = math.sqrt(n * p * (1 - p))
    return abs(kept - n * p) <= 5 * sigma, f"kept {kept} of {n}, expected {n * p:.1f} +- {5 * sigma:.1f}"


# ---- detection ------------------------------------------------------------------------------

def detection(args, c, loggers):
    cases, text = [], []
    for name, lines in loggers:
        for stream, level, line in lines:
            cases.append((name, stream, level, line))
            text.append(cri(stream, numbered(line, len(cases) - 1)))
    rc, err, out = run_filter(args, "".join(text), "--env", "development")
    c.check("detection: exits 0", rc == 0, err)
    c.check("detection: one record per line, each numbered",
            [n for n, _ in out] == list(range(len(cases))), f"{len(out)} of {len(cases)}")
    got = {n: rec for n, rec in out}
    for n, (name, stream, level, line) in enumerate(cases):
        rec = got.get(n, {})
        want = None if level == "NONE" else level.lower()
        c.check(f"{name}: {level} from {line[:70]}",
                ecs_level(rec) == want and rec.get("stream") == stream,
                f"log.level {ecs_level(rec)!r}, stream {rec.get('stream')!r}")


# ---- production --------------------------------------------------------------------------------

def copies(loggers):
    """Each logger's lines in turn, COPIES per logger: [(logger, stream, level, text)]."""
    out = []
    for name, lines in loggers:
        for k in range(COPIES):
            stream, level, line = lines[k % len(lines)]
            out.append((name, stream, level, numbered(line, len(out))))
    return out


def production(args, c, loggers):
    sent = copies(loggers)
    rc, err, out = run_filter(args, "".join(cri(s, t) for _, s, _, t in sent), "--env",
                              "production")
    c.check("production: exits 0", rc == 0, err)
    kept = {n: rec for n, rec in out if n is not None}
    c.check("production: every record is numbered and shipped once",
            len(kept) == len(out) and all(n < len(sent) for n in kept), f"{len(out)} records")
    for name, lines in loggers:
        classes = {}
        for n, (who, stream, level, _) in enumerate(sent):
            if who == name:
                cls = (stream, level) if level == "NONE" else ("", level)
                classes.setdefault(cls, []).append(n)
        for (stream, level), ns in sorted(classes.items()):
            got = [n for n in ns if n in kept]
            rate = expected_rate(stream or "stdout", level)
            label = f"{name}: {level}{' on ' + stream if stream else ''}"
            if rate == 1.0:
                c.check(f"{label}: all {len(ns)} kept", len(got) == len(ns),
                        f"kept {len(got)} of {len(ns)}")
            else:
                ok, detail = within_5_sigma(len(got), len(ns), rate)
                c.check(f"{label}: sampled at {rate}", ok, detail)
            wrong = [n for n in got if kept[n].get("sample_rate") != rate]
            c.check(f"{label}: kept at sample_rate {rate}", not wrong,
                    f"{len(wrong)} with {kept[wrong[0]].get('sample_rate') if wrong else ''}")


def shipped_production(args, c, loggers):
    sent = copies(loggers)
    cfg = os.path.join(args.source, "configs", "production.yaml")
    rc, err, out = run_filter(args, "".join(cri(s, t) for _, s, _, t in sent), "--config", cfg)
    c.check("configs/production.yaml: exits 0", rc == 0, err)
    kept = {n for n, _ in out}
    must = [n for n, (_, _, level, _) in enumerate(sent) if level in ALWAYS]
    lost = [sent[n][0] for n in must if n not in kept]
    c.check(f"configs/production.yaml: all {len(must)} WARN/ERROR/FATAL records kept", not lost,
            f"{len(lost)} lost, from {sorted(set(lost))}")


# ---- joined traces ------------------------------------------------------------------------------

def multiline_config(tmp, pattern=None):
    cfg = os.path.join(tmp, "logveil.yaml")
    ml = "{}" if pattern is None else "{continue: " + json.dumps(pattern) + "}"
    with open(cfg, "w") as f:
        f.write("environment: production\ninputs:\n  - type: stdin\n    format: cri\n"
                f"    multiline: {ml}\n")
    return cfg


def check_traces(args, c, traces, cfg, label):
    text, sent = [], []
    for k in range(TRACE_COPIES):
        for name, stream, level, lines in traces:
            n = len(sent)
            body = [numbered(line, n) if "@N@" in line else line for line in lines]
            sent.append((name, level, "\n".join(body)))
            text.extend(cri(stream, line) for line in body)
    rc, err, out = run_filter(args, "".join(text), "--config", cfg)
    c.check(f"{label}: exits 0", rc == 0, err)
    got = {}
    for n, rec in out:
        got.setdefault(n, []).append(rec)
    for name, stream, level, lines in traces:
        ns = [n for n, (who, _, _) in enumerate(sent) if who == name]
        one = [n for n in ns if len(got.get(n, [])) == 1]
        whole = [n for n in one if got[n][0].get("message") == sent[n][2]]
        leveled = [n for n in one if ecs_level(got[n][0]) == level.lower()]
        if level in ALWAYS:
            c.check(f"{label} {name}: all {len(ns)} copies kept, one record each",
                    len(one) == len(ns), f"{len(one)} of {len(ns)}")
        c.check(f"{label} {name}: each record is the whole trace",
                bool(one) and len(whole) == len(one), f"{len(whole)} of {len(one)}")
        c.check(f"{label} {name}: at {level}", bool(one) and len(leveled) == len(one),
                f"{len(leveled)} of {len(one)}")
    strays = [rec for n, rec in out if n is None]
    c.check(f"{label}: no other records", not strays, json.dumps(strays[:2])[:300])


def joined_traces(args, c, traces):
    with tempfile.TemporaryDirectory(prefix="logveil-levels-") as tmp:
        check_traces(args, c, traces, multiline_config(tmp), "joined")


def go_panic(args, c):
    with tempfile.TemporaryDirectory(prefix="logveil-levels-") as tmp:
        trace = [("go-panic", "stderr", "FATAL", GO_PANIC)]
        check_traces(args, c, trace, multiline_config(tmp, GO_CONTINUE), "Go pattern")


def cut_json(args, c):
    """JSON records longer than limits.max_line are cut and shipped as text;
    their level still decides."""
    sent, text = [], []
    for k in range(4000):
        level = "error" if k % 10 == 0 else "info"
        sent.append(level)
        line = json.dumps({"level": level, "id": f"~{k}~", "msg": "x" * 5000})
        text.append(cri("stdout", line))
    with tempfile.TemporaryDirectory(prefix="logveil-levels-") as tmp:
        cfg = os.path.join(tmp, "logveil.yaml")
        with open(cfg, "w") as f:
            f.write("environment: production\nlimits: {max_line: 4KiB}\n")
        rc, err, out = run_filter(args, "".join(text), "--config", cfg)
    c.check("cut JSON: exits 0", rc == 0, err)
    kept = {n: rec for n, rec in out if n is not None}
    errors = [n for n, level in enumerate(sent) if level == "error"]
    c.check(f"cut JSON: all {len(errors)} ERROR records kept, cut, at error",
            all(n in kept and kept[n].get("truncated") is True and ecs_level(kept[n]) == "error"
                for n in errors), f"{sum(n in kept for n in errors)} kept")
    infos = [n for n, level in enumerate(sent) if level == "info"]
    ok, detail = within_5_sigma(sum(n in kept for n in infos), len(infos), RATE)
    c.check("cut JSON: INFO records sampled at 0.01", ok, detail)


def main():
    args = harness.parser(__doc__).parse_args()
    c = harness.Checks(show_ok=False)
    loggers, traces = parse_cases(os.path.join(args.source, "tests", "cases", "loggers.cases"))
    c.check("the corpus has at least fifteen loggers", len(loggers) >= 15, str(len(loggers)))
    harness.run_steps(c, [
        lambda: detection(args, c, loggers),
        lambda: production(args, c, loggers),
        lambda: shipped_production(args, c, loggers),
        lambda: joined_traces(args, c, traces),
        lambda: go_panic(args, c),
        lambda: cut_json(args, c),
    ])
    return c.report()


if __name__ == "__main__":
    sys.exit(main())
