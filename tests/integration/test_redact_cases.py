#!/usr/bin/env python3
"""Runs tests/cases/redact.cases through `logveil filter`.

The case file describes its own format. All cases that share a configuration
(and --env) go through one `logveil filter` process, in file order; every
input line must give exactly one output line, every output line must be a
JSON object, and each case's expectations are checked on its line.

The binary runs with only PATH in its environment, so the host's POD_* and
CONTAINER_NAME variables cannot add fields.

Usage: test_redact_cases.py --binary PATH/logveil --source REPO [--cases FILE]
                            [-k SUBSTRING] [-v]
Prints one line per failure and ends with "N passed, M failed".
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

# Fields logveil may add to a record; ignored unless the expected record names them.
ENRICH = {"@timestamp", "stream", "environment", "kubernetes", "sample_rate", "log",
          "trace", "redacted", "truncated", "redaction", "audit"}
HMAC_KEY = b"logveil-case-key-0123456789abcdef"
PROCESS_TIMEOUT = 120
REPEAT = re.compile(r"\{\{(\d+)\*(.+?)\}\}")
BYTE = re.compile(r"\\x([0-9a-fA-F]{2})")


class Case:
    def __init__(self, name, lineno):
        self.name = name
        self.lineno = lineno
        self.input = None     # bytes
        self.out = None       # expected record text
        self.absent = []
        self.present = []
        self.match = []
        self.config = None
        self.env = None

    def title(self):
        return f"line {self.lineno}: {self.name}"


class Num:
    """A JSON number kept as the text it was written as."""

    def __init__(self, text):
        self.text = text

    def __eq__(self, other):
        return isinstance(other, Num) and other.text == self.text

    def __repr__(self):
        return self.text


def expand(text):
    return REPEAT.sub(lambda m: m.group(2) * int(m.group(1)), text)


def parse_file(path):
    """(cases, configs): configs maps a name to ("yaml", text) or ("file", path)."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    configs, cases, block = {}, [], []
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^\[config ([\w-]+)(?: = (.+))?\]$", line)
        if m:
            start = i + 1
            if m.group(2):
                configs[m.group(1)] = ("file", m.group(2).strip())
            else:
                body = []
                i += 1
                while i < len(lines) and lines[i] != "[end]":
                    body.append(lines[i])
                    i += 1
                if i == len(lines):
                    raise ValueError(f"{path}:{start}: [config {m.group(1)}] without [end]")
                configs[m.group(1)] = ("yaml", "\n".join(body) + "\n")
            i += 1
            continue
        if line.strip() == "":
            if block:
                cases.extend(parse_block(path, block))
            block = []
        else:
            block.append((i + 1, line))
        i += 1
    if block:
        cases.extend(parse_block(path, block))
    return cases, configs


def parse_block(path, block):
    if all(text.startswith("#") for _, text in block):
        return []
    lineno, first = block[0]
    if not first.startswith("# "):
        raise ValueError(f"{path}:{lineno}: a case starts with '# name'")
    case = Case(first[2:].strip(), lineno)
    for n, text in block[1:]:
        if text.startswith("#"):
            continue
        key, sep, value = text.partition(":")
        if not sep:
            raise ValueError(f"{path}:{n}: expected 'field: value'")
        value = value[1:] if value.startswith(" ") else value
        if key == "in":
            case.input = expand(value).encode("utf-8")
        elif key == "in-bytes":
            case.input = bytes_with_escapes(expand(value))
        elif key == "out":
            case.out = expand(value)
        elif key == "absent":
            case.absent.append(expand(value))
        elif key == "present":
            case.present.append(expand(value))
        elif key == "match":
            case.match.append(value)
        elif key == "config":
            case.config = value.strip()
        elif key == "env":
            case.env = value.strip()
        else:
            raise ValueError(f"{path}:{n}: unknown field {key!r}")
    if case.input is None:
        raise ValueError(f"{path}:{lineno}: case {case.name!r} has no in:")
    if b"\n" in case.input:
        raise ValueError(f"{path}:{lineno}: an input line cannot hold a newline")
    return [case]


def bytes_with_escapes(text):
    """UTF-8 of text, with each \\xNN replaced by the byte NN."""
    out = bytearray()
    pos = 0
    for m in BYTE.finditer(text):
        out += text[pos:m.start()].encode("utf-8")
        out.append(int(m.group(1), 16))
        pos = m.end()
    out += text[pos:].encode("utf-8")
    return bytes(out)


def loads(text):
    """JSON with objects as lists of pairs (order and duplicates kept) and
    numbers as their text."""
    return json.loads(text, object_pairs_hook=lambda pairs: ("obj", pairs),
                      parse_float=Num, parse_int=Num, parse_constant=Num)


def strings_of(value):
    """Every key and string in a parsed record, decoded."""
    if isinstance(value, tuple):
        for k, v in value[1]:
            yield k
            yield from strings_of(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings_of(v)
    elif isinstance(value, str):
        yield value


def check_case(case, raw):
    """A list of problems with output line `raw` (bytes) for `case`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return [f"output is not UTF-8: {e}"]
    try:
        got = loads(text)
    except ValueError as e:
        return [f"output is not JSON ({e}): {text[:300]}"]
    if not isinstance(got, tuple):
        return [f"output is not a JSON object: {text[:300]}"]
    problems = []
    if case.out is not None:
        want = loads(case.out)
        names = {k for k, _ in want[1]}
        pairs = [(k, v) for k, v in got[1] if k not in ENRICH or k in names]
        if pairs != want[1]:
            problems.append(f"expected {short(case.out)}\n       got      {short(text)}")
    decoded = "\x00".join(strings_of(got))
    for s in case.absent:
        if s in text or s in decoded:
            problems.append(f"{s!r} must not appear: {short(text)}")
    for s in case.present:
        if s not in text:
            problems.append(f"{s!r} must appear: {short(text)}")
    for rx in case.match:
        if not re.search(rx, text):
            problems.append(f"/{rx}/ does not match: {short(text)}")
    return problems


def short(text, limit=400):
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def config_path(name, configs, source, tmp):
    kind, value = configs[name]
    if kind == "file":
        return os.path.join(source, value)
    path = os.path.join(tmp, f"{name}.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(value.replace("@TMP@", tmp))
    return path


def run_group(binary, args, cases):
    """Output lines of one `logveil filter` over the cases' inputs, or an error."""
    data = b"".join(c.input + b"\n" for c in cases)
    try:
        proc = subprocess.run([binary, "filter"] + args, input=data, capture_output=True,
                              env=harness.clean_env(), timeout=PROCESS_TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {PROCESS_TIMEOUT} s"
    if proc.returncode != 0:
        return None, f"exit status {proc.returncode}: {proc.stderr.decode(errors='replace')[-2000:]}"
    lines = proc.stdout.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if len(lines) != len(cases):
        return None, f"{len(cases)} lines in, {len(lines)} lines out"
    return lines, None


def main():
    ap = harness.parser(__doc__)
    ap.add_argument("--cases", help="case file (default: SOURCE/tests/cases/redact.cases)")
    ap.add_argument("-k", dest="only", help="run only cases whose name contains this")
    ap.add_argument("-v", dest="verbose", action="store_true", help="print passing cases too")
    opts = ap.parse_args()
    path = opts.cases or os.path.join(opts.source, "tests", "cases", "redact.cases")
    checks = harness.Checks(show_ok=opts.verbose)
    try:
        cases, configs = parse_file(path)
        for c in cases:
            if c.config is not None and c.config not in configs:
                raise ValueError(f"{path}:{c.lineno}: no [config {c.config}]")
    except (OSError, ValueError) as e:
        checks.check("reading the cases", False, str(e))
        return checks.report()
    if opts.only:
        cases = [c for c in cases if opts.only in c.name]
    tmp = tempfile.mkdtemp(prefix="logveil-cases-")
    try:
        with open(os.path.join(tmp, "hmac.key"), "wb") as f:
            f.write(HMAC_KEY)
        groups = {}
        for c in cases:
            groups.setdefault((c.config, c.env), []).append(c)
        for (config, env), group in groups.items():
            args = []
            if config:
                args += ["--config", config_path(config, configs, opts.source, tmp)]
            if env:
                args += ["--env", env]
            lines, err = run_group(opts.binary, args, group)
            if err:
                checks.check(f"group config={config} env={env}", False, err, count=len(group))
                continue
            for case, raw in zip(group, lines):
                problems = check_case(case, raw)
                if not checks.check(case.title(), not problems):
                    for p in problems:
                        print(f"     {p}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    status = checks.report()
    return status if checks.passed else 1  # no case run is a failure too


if __name__ == "__main__":
    sys.exit(main())
