#!/usr/bin/env python3
"""What the README and docs/runbook.md say about metrics and alerts, and the
compliance example, checked against the binary and the chart.

- Every metric name (logveil_*) in README.md and docs/runbook.md is one
  logveil exports (the oracle: `logveil filter --stats`, which prints every
  counter the sidecar serves on /metrics), and so is every drop reason
  named in `reason="..."`.
- Every alert of the chart's PrometheusRule is in the README's alert table
  and in the runbook's, and every link into docs/runbook.md from either
  file names a heading there.
- The compliance example runs as written: its config block passes
  check-config (with the HMAC key the text names) and `logveil filter`
  turns its sample line into the output the text shows.

Usage: test_docs.py --binary PATH --source REPO
"""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

TIMEOUT = 30


def read(*parts):
    with open(os.path.join(*parts)) as f:
        return f.read()


def exported(binary):
    """Metric names and drop reasons, from `filter --stats` on one record."""
    r = subprocess.run([binary, "filter", "--stats"], input='{"msg":"x"}\n', capture_output=True,
                       text=True, timeout=TIMEOUT, env=harness.clean_env())
    names = set(re.findall(r"^(?:# TYPE )?(logveil_\w+)", r.stderr, re.M))
    return names, set(re.findall(r'reason="(\w+)"', r.stderr))


def slug(heading):
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def check_metric_names(c, args, docs):
    names, reasons = exported(args.binary)
    c.check("filter --stats lists the metrics", len(names) > 20, str(sorted(names))[:200])
    for doc, text in docs.items():
        used = set(re.findall(r"\b(logveil_[a-z0-9_]*[a-z0-9])\b", text))
        c.check(f"{doc}: every metric named is exported", used <= names,
                f"unknown: {sorted(used - names)}")
        named = {x for m in re.findall(r'reason(?:=|!=|=~|!~)\\?"([\w|\\]+)\\?"', text)
                 for x in m.replace("\\", "").split("|")}
        c.check(f"{doc}: every drop reason named is counted", named <= reasons,
                f"unknown: {sorted(named - reasons)}")


def check_alert_tables(c, args, docs):
    rule = read(args.source, "helm", "logveil", "templates", "prometheusrule.yaml")
    alerts = set(re.findall(r"- alert: (\w+)", rule))
    c.check("the chart defines alerts", len(alerts) >= 7, str(alerts))
    for doc, text in docs.items():
        missing = {a for a in alerts if f"`{a}`" not in text}
        c.check(f"{doc}: every alert is in its table", not missing, str(sorted(missing)))
    anchors = {slug(h) for h in re.findall(r"^#+\s+(.*)$", docs["docs/runbook.md"], re.M)}
    for doc, text in docs.items():
        prefix = r"\(#" if doc == "docs/runbook.md" else r"\(docs/runbook\.md#"
        links = set(re.findall(prefix + r"([\w-]+)\)", text))
        c.check(f"{doc}: every link into the runbook names a heading", links and links <= anchors,
                f"missing: {sorted(links - anchors)}")


def check_compliance_example(c, args, readme, tmp):
    section = readme[readme.index("## For compliance officers"):]
    block = re.search(r"\*\*Adding rules\*\*.*?```yaml\n(.*?)```", section, re.S).group(1)
    key = re.search(r"these are for the key `([^`]+)`", section).group(1)
    sample = re.search(r"the line\n`(\{.*?\})`\ncomes out as", section, re.S).group(1)
    shown = re.search(r"comes out as\n`(\{.*?),\.\.\.\}`", section, re.S).group(1)
    key_path = re.search(r"hmac_key_file: (\S+)", block).group(1)
    with open(os.path.join(tmp, "hmac.key"), "w") as f:
        f.write(key)
    conf = os.path.join(tmp, "rules.yaml")
    with open(conf, "w") as f:
        f.write(block.replace(key_path, os.path.join(tmp, "hmac.key")))
    r = subprocess.run([args.binary, "check-config", conf], capture_output=True, text=True,
                       timeout=TIMEOUT, env=harness.clean_env())
    c.check("README compliance example: its config passes check-config", r.returncode == 0,
            r.stderr[-300:])
    r = subprocess.run([args.binary, "filter", "--config", conf, "--env", "development"],
                       input=sample + "\n", capture_output=True, text=True, timeout=TIMEOUT,
                       env=harness.clean_env())
    out = r.stdout.strip()
    c.check("README compliance example: filter prints what the README shows",
            out.startswith(shown) and json.loads(out)["password"] == "[REDACTED]",
            f"README: {shown}\nfilter: {out[:300]}")


def main():
    args = harness.parser(__doc__).parse_args()
    c = harness.Checks(show_ok=False)
    docs = {"README.md": read(args.source, "README.md"),
            "docs/runbook.md": read(args.source, "docs", "runbook.md")}
    harness.run_steps(c, [lambda: check_metric_names(c, args, docs),
                          lambda: check_alert_tables(c, args, docs)])
    harness.run_in_tmp(c, "lv-docs-", lambda tmp: check_compliance_example(
        c, args, docs["README.md"], tmp))
    return c.report()


if __name__ == "__main__":
    sys.exit(main())
