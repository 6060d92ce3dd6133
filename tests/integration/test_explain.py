#!/usr/bin/env python3
"""`logveil filter --explain` and `--report` on the redaction case file
(tests/cases/redact.cases), cases run under the built-in rules.

- --explain gives one line per input line; for every top-level key that a
  case writes in both `in` and `out`, explain names a path under it exactly
  when the case expects its value changed (redacted);
- no explain line holds a planted secret: none of the cases' `absent:` texts
  occurs anywhere in the explain output, raw or JSON-decoded;
- the policy: `check-config --print-policy`, the "redaction" member of each
  record under configs/production.yaml and the info metrics give the same
  digest; the count is the number of values redacted; swapping two rules
  changes the digest;
- --report's counts (records, records touched, redactions, each rule, each
  drop reason and level) equal the counters /metrics would show, taken here
  from `filter --stats` on the same input: in development (nothing sampled)
  and in production (DEBUG/INFO sampled by trace id, so both runs decide
  alike).

Usage: test_explain.py --binary PATH --source REPO
"""
import json
import os
import random
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import test_redact_cases as cases  # noqa: E402


def run(args, *argv, stdin=b""):
    return subprocess.run([args.binary, "filter", *argv], input=stdin, capture_output=True,
                          timeout=60)


def load_cases(source):
    all_cases, _ = cases.parse_file(os.path.join(source, "tests", "cases", "redact.cases"))
    picked = []
    for c in all_cases:
        if c.config is not None or c.env is not None or c.input is None:
            continue
        try:
            rec = json.loads(c.input.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            rec = None
        picked.append((c, rec))
    return picked


def expected_keys(case, rec):
    """{key: True when the case expects its value changed} for top-level keys
    written in both in and out."""
    if not isinstance(rec, dict) or case.out is None:
        return None
    try:
        out = json.loads(case.out)
    except ValueError:
        return None
    if not isinstance(out, dict):
        return None
    return {k: out[k] != rec[k] for k in out if k in rec}


def check_explain(args, c, picked):
    stdin = b"".join(case.input + b"\n" for case, _ in picked)
    r = run(args, "--explain", stdin=stdin)
    lines = r.stdout.decode("utf-8", "replace").splitlines()
    c.check("explain: exit 0, one line per input line", r.returncode == 0 and
            len(lines) == len(picked), f"exit {r.returncode}, {len(lines)} for {len(picked)}")
    wrong, compared = [], 0
    for (case, rec), line in zip(picked, lines):
        want = expected_keys(case, rec)
        if want is None:
            continue
        try:
            got = json.loads(line)
        except ValueError:
            wrong.append(f"{case.title()}: explain line is not JSON: {line[:200]}")
            continue
        tops = {f["path"].split("/")[1].replace("~1", "/").replace("~0", "~")
                for f in got["fields"]}
        for key, changed in want.items():
            compared += 1
            if (key in tops) != changed:
                wrong.append(f"{case.title()}: {key} expected {'redacted' if changed else 'kept'}"
                             f", explain says {sorted(tops)}")
    c.check(f"explain names exactly the fields the cases expect redacted ({compared} keys)",
            not wrong and compared > 100, "\n  ".join(wrong[:10]))
    def strings(v):
        """Every key and string of a parsed explain line (its numbers are
        line numbers, counts and offsets, which may spell anything)."""
        if isinstance(v, dict):
            for k, x in v.items():
                yield k
                yield from strings(x)
        elif isinstance(v, list):
            for x in v:
                yield from strings(x)
        elif isinstance(v, str):
            yield v
    texts = [t for l in lines for t in strings(json.loads(l))]
    leaks = [(case.title(), sec) for case, _ in picked for sec in case.absent
             if sec and any(sec in t for t in texts)]
    planted = sum(len(case.absent) for case, _ in picked)
    c.check(f"explain output holds none of the {planted} planted secrets in any of its "
            f"{len(texts)} strings", not leaks and planted, str(leaks[:5]))
    every = all(isinstance(f.get("rule", f.get("rules")), (str, list)) and f.get("action") in
                ("mask", "hash", "drop") for l in lines for f in json.loads(l)["fields"])
    c.check("every explained field names its rule(s) and action", every)


def stats_counters(stderr):
    m = harness.parse_metrics(stderr.decode())
    return m


def compare_report(args, c, name, stdin, *argv):
    rep = run(args, "--report", *argv, stdin=stdin)
    st = run(args, "--stats", *argv, stdin=stdin)
    m = harness.parse_metrics(st.stderr.decode())
    got = {}
    for line in rep.stdout.decode().splitlines():
        parts = line.split(" ")
        if parts[0] == "rule":
            got[f'logveil_redactions_by_rule_total{{rule="{parts[1]}"}}'] = float(parts[3])
        elif parts[0] == "dropped":
            got[f'logveil_records_dropped_total{{reason="{parts[1]}",level="{parts[2]}"}}'] = \
                float(parts[3])
        elif line.startswith("records touched "):
            got["logveil_records_redacted_total"] = float(parts[2])
        elif line.startswith("records kept "):
            got["kept"] = float(parts[2])
        elif parts[0] == "records":
            got["logveil_input_records_total"] = float(parts[1])
        elif parts[0] == "redactions":
            got["logveil_redactions_total"] = float(parts[1])
    want = {k: v for k, v in m.items()
            if v and (k.startswith("logveil_redactions_by_rule_total{") or
                      k.startswith("logveil_records_dropped_total{"))}
    for k in ("logveil_records_redacted_total", "logveil_input_records_total",
              "logveil_redactions_total"):
        want[k] = m.get(k)
    want["kept"] = sum(v for k, v in m.items() if k.startswith("logveil_records_kept_total{"))
    c.check(f"report ({name}): exit 0 both ways", rep.returncode == 0 and st.returncode == 0,
            rep.stderr.decode() + st.stderr.decode()[-300:])
    diff = {k: (got.get(k), want.get(k)) for k in set(got) | set(want) if got.get(k) != want.get(k)}
    c.check(f"report ({name}): every count equals the metrics' ({len(want)} counters)",
            not diff and want["logveil_input_records_total"], str(diff)[:800])
    return got


def check_policy(args, c, tmp):
    prod = os.path.join(args.source, "configs", "production.yaml")
    r = subprocess.run([args.binary, "check-config", "--print-policy", prod], capture_output=True,
                       text=True, timeout=30)
    lines = r.stdout.splitlines()
    m = re.fullmatch(r"policy ([0-9a-f]{8})", lines[0]) if lines else None
    c.check("check-config --print-policy: the digest, then the rules numbered in order",
            r.returncode == 0 and m and lines[1].startswith("0\tkey:password\t") and
            all(l.split("\t")[0] == str(i) for i, l in enumerate(lines[1:])), r.stdout[:300])
    digest = m.group(1) if m else "?"
    recs = [{"level": "error", "password": "p", "token": "t", "msg": "clean"},
            {"level": "error", "msg": "nothing here"},
            {"level": "error", "msg": "Authorization: Bearer abcdefghijklmnopqrstuvwxyz"}]
    st = run(args, "--config", prod, "--stats",
             stdin="".join(json.dumps(x) + "\n" for x in recs).encode())
    out = [json.loads(l) for l in st.stdout.decode().splitlines()]
    c.check("production.yaml: every record says which policy and how many values it redacted",
            [o.get("redaction") for o in out] ==
            [{"policy": digest, "count": n} for n in (2, 0, 1)], str([o.get("redaction") for o in out]))
    m = harness.parse_metrics(st.stderr.decode())
    rules = [k for k in m if k.startswith("logveil_redaction_rule_info{")]
    c.check("/metrics: the policy info carries the same digest, one rule_info per rule",
            m.get(f'logveil_redaction_policy_info{{policy="{digest}"}}') == 1 and
            len(rules) == len(lines) - 1 and all(f'policy="{digest}"' in k for k in rules),
            f"{len(rules)} rule samples for {len(lines) - 1} rules")
    swapped = os.path.join(tmp, "swapped.yaml")
    with open(prod) as f:
        text = f.read()
    with open(swapped, "w") as f:
        f.write(text.replace("keys: [password, passwd,", "keys: [passwd, password,", 1))
    r2 = subprocess.run([args.binary, "check-config", "--print-policy", swapped],
                        capture_output=True, text=True, timeout=30)
    new = r2.stdout.splitlines()
    strip = lambda ls: sorted(l.split("\t", 1)[1] for l in ls[1:] if "\tkey:" in l)
    c.check("the digest changes when two key rules change places (same rules, other order)",
            r2.returncode == 0 and new and new[0] != lines[0] and strip(new) == strip(lines),
            r2.stdout[:100])


def check_spans(args, c, tmp):
    cfg = os.path.join(tmp, "spans.yaml")
    with open(cfg, "w") as f:
        f.write('redact:\n  patterns:\n    - {name: ticket, pattern: "TKT-[0-9]{4}", hints: [tkt],'
                ' replacement: "<ticket>"}\n')
    msg = "voilà TKT-1234, then Bearer abcdefghijklmnop and TKT-9876 end"
    secrets = ["TKT-1234", "abcdefghijklmnop", "TKT-9876"]
    raw = msg.encode()
    want = [[raw.find(x.encode()), raw.find(x.encode()) + len(x.encode())] for x in secrets]
    r = run(args, "--config", cfg, "--explain",
            stdin=(json.dumps({"msg": msg, "n": 1}, ensure_ascii=False) + "\n").encode())
    got = json.loads(r.stdout) if r.returncode == 0 else {}
    fields = got.get("fields", [])
    c.check("explain: the spans are the byte ranges of the secrets in the decoded string, "
            "custom replacements included", len(fields) == 1 and fields[0]["path"] == "/msg" and
            fields[0]["spans"] == want and "value:ticket" in fields[0]["rules"],
            f"{fields} want {want}")


def main():
    args = harness.parser(__doc__).parse_args()
    c = harness.Checks()
    harness.run_in_tmp(c, "logveil-policy-", lambda tmp: check_policy(args, c, tmp))
    harness.run_in_tmp(c, "logveil-spans-", lambda tmp: check_spans(args, c, tmp))
    picked = load_cases(args.source)
    check_explain(args, c, picked)
    stdin = b"".join(case.input + b"\n" for case, _ in picked)
    got = compare_report(args, c, "cases, development", stdin)
    c.check("report: the cases touch records and fire rules",
            got.get("logveil_records_redacted_total", 0) > 50 and
            sum(1 for k in got if "by_rule" in k) > 10, str(got)[:300])
    rnd = random.Random(11)
    levels = ["debug", "info", "warn", "error"]
    mixed = "".join(json.dumps({"level": rnd.choice(levels), "trace_id": f"t{rnd.randrange(500)}",
                                "msg": f"token={rnd.randrange(10**6)}"}) + "\n"
                    for _ in range(3000)).encode()
    got = compare_report(args, c, "production sampling", mixed, "--env", "production")
    c.check("report (production): debug and info were sampled out and counted",
            any(k.startswith('logveil_records_dropped_total{reason="sampled",level="info"')
                for k in got), str(got)[:300])
    return c.report()


if __name__ == "__main__":
    sys.exit(main())
