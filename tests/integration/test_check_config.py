#!/usr/bin/env python3
"""`logveil check-config FILE`: the shipped configs pass, broken ones are explained.

Every shipped config must exit 0 on any machine, with no LOGVEIL_* variable
set. A config with many problems must exit 2 and print every one of them on
stderr as "file:line: message", in line order, and nothing else. Smaller cases
cover ${VAR} expansion, secrets read from files, YAML syntax errors and a
missing file.

Usage: test_check_config.py --binary PATH --source REPO
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SHIPPED = ["development", "staging", "canary", "production"]
TIMEOUT = 30

# One line of each kind of mistake; EXPECTED below holds the report for each.
BAD_CONFIG = """\
environment: production
log_level: loud
inputs:
  - type: tail
    format: cri
redact:
  keys: [password, {key: auth, match: exact}, [nested]]
  action: hash
  patterns:
    - name: card
      pattern: '(4[0-9]{12}'
sampling:
  profiles:
    production: {default: 1.5, levels: {LOUD: 1}}
  sampl: 1
limits:
  max_line: 12XB
admin:
  listen: ${LV_IT_UNSET}
outputs:
  - type: stdout
  - type: file
    name: archive
  - {type: pulsar}
"""

EXPECTED = [
    (2, 'log_level: unknown value "loud", expected one of: debug, info, warn, error'),
    (4, "inputs[0]: a tail input needs paths, the files to follow"),
    (7, "redact.keys[2]: expected a string or a map with key/match/action/replacement, "
        "got a sequence"),
    (8, "redact: action hash needs hmac_keys or hmac_key_file"),
    (11, "redact.patterns[0].pattern: bad regular expression at offset 11: "
         "missing closing parenthesis"),
    (14, 'sampling.profiles.production.default: expected a number from 0 to 1, got "1.5"'),
    (14, 'sampling.profiles.production.levels: unknown level "LOUD", expected one of: '
         "TRACE, DEBUG, INFO, WARN, ERROR, FATAL"),
    (15, 'unknown key "sampl" in sampling, expected one of: key, level_fields, profiles, '
         "always_keep, rate_limit, burst"),
    (17, 'limits.max_line: expected a size such as 1048576, 512KiB, 64MiB or 1GB, got "12XB"'),
    (19, "environment variable LV_IT_UNSET is not set, expected it to be set or a default "
         "given as ${LV_IT_UNSET:-default}"),
    (22, "outputs[1]: a file output needs path"),
    (24, 'outputs[2].type: unknown value "pulsar", expected one of: stdout, file, elasticsearch, '
         'loki, kafka'),
]

HASHING_CONFIG = """\
environment: production
redact:
  hmac_key_file: ${LV_IT_KEY_FILE:-%s}
  keys: [password, {key: user_id, match: exact, action: hash}]
"""


def clean_env(**extra):
    """The caller's environment without the variables the configs read (unlike
    harness.clean_env, the rest of it is kept)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("LOGVEIL_") and not k.startswith("LV_IT_")}
    env.update(extra)
    return env


def check_config(binary, path, env):
    return subprocess.run([binary, "check-config", path], env=env, capture_output=True,
                          text=True, timeout=TIMEOUT)


def write(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def check_shipped(c, args, tmp):
    for name in SHIPPED:
        path = os.path.join(args.source, "configs", name + ".yaml")
        r = check_config(args.binary, path, clean_env())
        c.check(f"{name}.yaml passes check-config", r.returncode == 0 and not r.stderr,
                f"exit {r.returncode}, stderr: {r.stderr.strip()[:2000]}")


def error_lines(stderr, path):
    """(line, message) for each "path:line: message" line; None for other lines."""
    pattern = re.compile(re.escape(path) + r":(\d+): (.*)")
    out = []
    for line in stderr.splitlines():
        m = pattern.fullmatch(line)
        out.append((int(m.group(1)), m.group(2)) if m else None)
    return out


def check_bad(c, args, tmp):
    path = write(tmp, "bad.yaml", BAD_CONFIG)
    r = check_config(args.binary, path, clean_env())
    c.check("a broken config exits 2", r.returncode == 2, f"exit {r.returncode}")
    got = error_lines(r.stderr, path)
    c.check("every stderr line is file:line: message", None not in got, r.stderr)
    for line, msg in EXPECTED:
        c.check(f"reports line {line}: {msg[:50]}", (line, msg) in got,
                f"not among:\n{r.stderr}")
    c.check(f"reports exactly {len(EXPECTED)} problems", len(got) == len(EXPECTED),
            f"got {len(got)}:\n{r.stderr}")
    lines = [g[0] for g in got if g]
    c.check("problems come in line order", lines == sorted(lines), str(lines))


def check_env(c, args, tmp):
    text = "admin:\n  listen: ${LV_IT_LISTEN}\n"
    path = write(tmp, "env.yaml", text)
    r = check_config(args.binary, path, clean_env(LV_IT_LISTEN="127.0.0.1:2021"))
    c.check("${VAR} set in the environment passes", r.returncode == 0, r.stderr)
    r = check_config(args.binary, path, clean_env())
    want = (f"{path}:2: environment variable LV_IT_LISTEN is not set, expected it to be set "
            "or a default given as ${LV_IT_LISTEN:-default}")
    c.check("${VAR} unset exits 2", r.returncode == 2, f"exit {r.returncode}")
    c.check("${VAR} unset names the variable and its line", r.stderr.strip() == want, r.stderr)
    path = write(tmp, "default.yaml", "admin:\n  listen: ${LV_IT_LISTEN:-127.0.0.1:2022}\n")
    r = check_config(args.binary, path, clean_env())
    c.check("${VAR:-default} unset passes", r.returncode == 0, r.stderr)


def check_secret_file(c, args, tmp):
    missing = os.path.join(tmp, "missing.key")
    path = write(tmp, "hash.yaml", HASHING_CONFIG % missing)
    r = check_config(args.binary, path, clean_env())
    want = (f'{path}:3: redact.hmac_key_file: cannot read "{missing}": '
            "No such file or directory")
    c.check("a missing hmac_key_file exits 2", r.returncode == 2, f"exit {r.returncode}")
    c.check("a missing hmac_key_file is reported with errno text", want in r.stderr.splitlines(),
            r.stderr)
    key = write(tmp, "hmac.key", "0123456789abcdef0123456789abcdef\n")
    r = check_config(args.binary, path, clean_env(LV_IT_KEY_FILE=key))
    c.check("hash with a readable hmac_key_file passes", r.returncode == 0, r.stderr)


def check_syntax_and_missing(c, args, tmp):
    path = write(tmp, "syntax.yaml", "environment: staging\nredact:\n  keys: [a\n  match: exact\n")
    r = check_config(args.binary, path, clean_env())
    got = error_lines(r.stderr, path)
    c.check("a YAML syntax error exits 2", r.returncode == 2, f"exit {r.returncode}")
    c.check("a YAML syntax error is reported at its line",
            len(got) == 1 and got[0] is not None and got[0][0] == 4
            and got[0][1].startswith("YAML syntax error: "), r.stderr)
    path = os.path.join(tmp, "absent.yaml")
    r = check_config(args.binary, path, clean_env())
    c.check("a missing file exits 2", r.returncode == 2, f"exit {r.returncode}")
    c.check("a missing file is reported with errno text",
            r.stderr.strip() == f"{path}: cannot read the file: No such file or directory",
            r.stderr)


OUTPUTS_CONFIG = """\
outputs:
  - type: elasticsearch
    url: ftp://127.0.0.1:9200
    indx: logs
    password_file: /nonexistent/es-password
    username: logveil
  - type: elasticsearch
    name: es2
    urls: ["http://user:s3cretpw@127.0.0.1:9200", "not a url"]
    index: Logs-%Y
    path: /tmp/x
    tls: {ca_file: /nonexistent/ca.pem}
  - type: elasticsearch
    name: es3
    url: http://127.0.0.1:9200
    data_stream: logs-app-default
    action: index
    dead_letter: /nonexistent-dir/dl.jsonl
  - type: loki
    url: http://127.0.0.1:3100
    labels: [environment]
    bearer_token_file: /nonexistent/token
    format: xml
  - type: stdout
    max_files: 3
"""

ES_KEYS = ("type, name, url, urls, connect_timeout, timeout, concurrency, gzip, retry_max_delay, "
           "tls, username, password, password_file, bearer_token, bearer_token_file, api_key, "
           "api_key_file, index, data_stream, action, batch_max_bytes, batch_max_records, "
           "flush_interval, dead_letter, document_id")
EXAMPLE = "expected such as http://127.0.0.1:9200 or https://es.example:9200"
OUTPUTS_EXPECTED = [
    (3, f'outputs[0].url: bad URL "ftp://127.0.0.1:9200": the scheme is not http or https, '
        f"{EXAMPLE}"),
    (4, f'unknown key "indx" in outputs[0], expected one of: {ES_KEYS}'),
    (5, 'outputs[0].password_file: cannot read "/nonexistent/es-password": '
        "No such file or directory"),
    (9, 'outputs[1].urls[0]: bad URL "...@127.0.0.1:9200": it holds user info: give username '
        f"and password_file instead, {EXAMPLE}"),
    (9, f'outputs[1].urls[1]: bad URL "not a url": not a URL, {EXAMPLE}'),
    (10, "outputs[1].index: not a valid index name: it holds upper-case letters"),
    (11, f'unknown key "path" in outputs[1], expected one of: {ES_KEYS}'),
    (12, 'outputs[1].tls.ca_file: cannot read "/nonexistent/ca.pem": No such file or directory'),
    (17, "outputs[2]: a data stream takes only action create"),
    (18, "outputs[2].dead_letter: cannot write in the directory /nonexistent-dir: "
         "No such file or directory"),
    (22, 'outputs[3].bearer_token_file: cannot read "/nonexistent/token": '
         "No such file or directory"),
    (23, 'outputs[3].format: unknown value "xml", expected one of: protobuf, json'),
    (25, 'unknown key "max_files" in outputs[4], expected one of: type, name'),
]


def check_outputs(c, args, tmp):
    """Output types' own keys: bad URLs, unknown keys, unreadable secret and TLS
    files, each at its line; a credential in a URL is never echoed."""
    path = write(tmp, "outputs.yaml", OUTPUTS_CONFIG)
    r = check_config(args.binary, path, clean_env())
    got = error_lines(r.stderr, path)
    c.check("outputs: a broken output config exits 2", r.returncode == 2, f"exit {r.returncode}")
    for line, msg in OUTPUTS_EXPECTED:
        c.check(f"outputs: reports line {line}: {msg[:60]}", (line, msg) in got,
                f"not among:\n{r.stderr}")
    c.check(f"outputs: exactly {len(OUTPUTS_EXPECTED)} problems",
            len(got) == len(OUTPUTS_EXPECTED), r.stderr)
    c.check("outputs: the password in a URL is not repeated", "s3cretpw" not in r.stderr)
    secret = write(tmp, "pw", "hunter2-es\n")
    good = write(tmp, "good.yaml", f"""outputs:
  - type: elasticsearch
    urls: [http://127.0.0.1:9200, https://es.example:9200/]
    username: logveil
    password_file: {secret}
    data_stream: logs-app-default
    dead_letter: {tmp}/es.dead.jsonl
  - type: loki
    url: http://127.0.0.1:3100
    tenant: team-a
    labels: [environment, kubernetes.namespace, log.level]
    structured_metadata: [trace.id]
    dead_letter: {tmp}/loki.dead.jsonl
  - type: file
    path: {tmp}/out.jsonl
    max_files: 3
""")
    r = check_config(args.binary, good, clean_env())
    c.check("outputs: a valid Elasticsearch + Loki + file config passes", r.returncode == 0,
            r.stderr)
    # Loki: up to 15 labels, and 32 label and structured_metadata fields in all.
    for nmeta, ok in ((17, True), (18, False)):
        labels = ", ".join(f"l{i}" for i in range(15))
        meta = ", ".join(f"m{i}" for i in range(nmeta))
        path = write(tmp, f"loki{nmeta}.yaml", f"""outputs:
  - type: loki
    url: http://127.0.0.1:3100
    labels: [{labels}]
    structured_metadata: [{meta}]
""")
        r = check_config(args.binary, path, clean_env())
        want = f"{path}:2: outputs[0]: {15 + nmeta} labels and structured_metadata fields, " \
            "expected at most 32"
        c.check(f"outputs: Loki with {15 + nmeta} fields " + ("passes" if ok else "is refused"),
                r.returncode == 0 if ok else (r.returncode == 2 and want in r.stderr),
                r.stderr)


def main():
    args = harness.parser(__doc__).parse_args()
    c = harness.Checks()

    def steps(tmp):
        for step in (check_shipped, check_bad, check_env, check_secret_file,
                     check_syntax_and_missing, check_outputs):
            step(c, args, tmp)
    harness.run_in_tmp(c, "logveil-check-config-", steps)
    return c.report()


if __name__ == "__main__":
    sys.exit(main())
