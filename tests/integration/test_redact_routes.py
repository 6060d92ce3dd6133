#!/usr/bin/env python3
"""Differential test of the routes a record can take through the redactor.

A few thousand generated records, each holding secrets where the built-in
rules promise to redact them (the value of a key whose normalised form holds
or is a rule word, spelled with any case, separators, characters around the
word, \\uXXXX escapes and lone surrogates before an escaped letter; and
credentials inside string values), go through `logveil filter` five ways:

  record     the record alone (a JSON object)
  trailing   the record and one byte after it (shipped as text)
  string     serialised into a string value of another record
  twice      serialised twice
  cut        with a long field at its end, cut at limits.max_line

Every route must redact the same secrets: all of them. The oracle is
Python's json module and plain substring search, not the product's yajl: a
secret is a unique random word, and it must not occur in an output line, nor
in any string of it decoded once, twice or more (strings that hold JSON or
JSON strings are decoded again). Each record also holds a benign marker
before its secrets, which every route must keep: redacting everything would
not pass.

Usage: test_redact_routes.py --binary PATH/logveil --source REPO [--records N]
       [--seed S] [-v]
Prints one line per failure and ends with "N passed, M failed".
"""
import json
import os
import random
import string
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

MAX_LINE = 4096
CONTAINS = ["password", "passwd", "passphrase", "secret", "token", "apikey", "privatekey",
            "credential", "authorization", "cookie", "sessionid"]
EXACT = ["pwd", "pin", "otp"]
AROUND = [" ", "\t", "[", "]", "(", ")", ":", "@", "/", "$", " my ", "db_", "-x", ".v2"]


class Gen:
    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.serial = 0

    def secret(self):
        self.serial += 1
        tail = "".join(self.rng.choice(string.ascii_letters + string.digits) for _ in range(10))
        return f"Sq{self.serial:05d}{tail}Zq"

    def marker(self):
        self.serial += 1
        return f"benign{self.serial:05d}marker"

    def spell(self, word, exact):
        """The word with random case and separators, maybe characters around it."""
        out = ""
        for i, ch in enumerate(word):
            out += ch.upper() if self.rng.random() < 0.4 else ch
            if i + 1 < len(word) and self.rng.random() < 0.15:
                out += self.rng.choice("_-.")
        if not exact and self.rng.random() < 0.5:
            out = self.rng.choice(AROUND) + out
        if not exact and self.rng.random() < 0.5:
            out += self.rng.choice(AROUND)
        return out

    def escaped_key(self, key, exact):
        """JSON text of a key string, some letters as \\uXXXX, maybe a lone high
        surrogate before the escaped first character (which must not swallow
        it: a strict decoder reads U+FFFD, then the character)."""
        out = '"'
        if not exact and self.rng.random() < 0.2: # (an exact key is then another key)
            out += "\\ud800\\u%04x" % ord(key[0])
            key = key[1:]
        for ch in key:
            if ch.isalpha() and self.rng.random() < 0.3:
                out += "\\u%04x" % ord(ch)
            else:
                out += json.dumps(ch)[1:-1]
        return out + '"'

    def value_secret(self, s):
        """A credential inside a string value, as a value rule sees it."""
        forms = [f"Authorization: Bearer {s}", f"password={s}&page=2", f"token: {s}",
                 f"https://app:{s}@db.example.com/x", f"--api-key {s}", f"Cookie: sid={s}",
                 f"api_key=\"{s}\"", f"AKIA{s[:16].upper()}", f"sk_live_{s}"]
        form = self.rng.choice(forms)
        hidden = s[:16].upper() if form.startswith("AKIA") else s
        return form, hidden

    def record(self):
        """(JSON text, secrets, marker)"""
        secrets = []
        marker = self.marker()
        members = [f'"msg":"{marker} request done"', f'"level":"info"']
        for _ in range(self.rng.randint(1, 3)):
            exact = self.rng.random() < 0.25
            word = self.rng.choice(EXACT if exact else CONTAINS)
            key = self.spell(word, exact)
            s = self.secret()
            secrets.append(s)
            kind = self.rng.randrange(4)
            if kind == 0:
                value = json.dumps(s)
            elif kind == 1:
                value = json.dumps({"inner": s, "n": 1})
            elif kind == 2:
                value = json.dumps(["a", s])
            else:
                value = json.dumps(f"x {s} y")
            members.append(f"{self.escaped_key(key, exact)}:{value}")
        for _ in range(self.rng.randint(0, 2)):
            s = self.secret()
            form, hidden = self.value_secret(s)
            secrets.append(hidden)
            members.append(f'"note{self.serial}":{json.dumps(form)}')
        members.append('"n":42')
        return "{" + ",".join(members) + "}", secrets, marker


def routes(rec):
    padded = rec[:-1] + ',"pad":"' + "p" * MAX_LINE + '"}'
    return {
        "record": rec,
        "trailing": rec + " x",
        "string": json.dumps({"body": rec}),
        "twice": json.dumps({"body": json.dumps(rec)}),
        "cut": padded,
    }


def decoded_texts(value, depth=0):
    """Every string in a parsed value, and whatever JSON they hold, decoded."""
    if depth > 8:
        return
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from decoded_texts(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            yield from decoded_texts(v, depth + 1)
    elif isinstance(value, str):
        yield value
        try:
            inner = json.loads(value)
        except ValueError:
            inner = None
        if isinstance(inner, (dict, list, str)) and inner != value:
            yield from decoded_texts(inner, depth + 1)


def run_filter(binary, lines, config):
    data = "".join(line + "\n" for line in lines).encode()
    proc = subprocess.run([binary, "filter", "--config", config], input=data,
                          capture_output=True, env=harness.clean_env(), timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.decode()[-500:])
    return proc.stdout.decode().split("\n")[:-1]


def main():
    ap = harness.parser(__doc__)
    ap.add_argument("--records", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("-v", action="store_true")
    args = ap.parse_args()
    c = harness.Checks(show_ok=args.v)
    gen = Gen(args.seed)
    records = [gen.record() for _ in range(args.records)]
    order = ["record", "trailing", "string", "twice", "cut"]
    lines = [routes(rec)[r] for rec, _, _ in records for r in order]
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "routes.yaml")
        with open(config, "w") as f:
            f.write(f"environment: development\nlimits:\n  max_line: {MAX_LINE}\n"
                    f"buffer:\n  max_bytes: 64MiB\n")
        out = run_filter(args.binary, lines, config)
    c.check("one output line per input line", len(out) == len(lines),
            f"{len(out)} lines for {len(lines)}")
    leaks = {r: 0 for r in order}
    lost = {r: 0 for r in order}
    shapes = {r: 0 for r in order}
    for i, raw in enumerate(out[:len(lines)]):
        rec, secrets, marker = records[i // len(order)]
        route = order[i % len(order)]
        try:
            parsed = json.loads(raw)
        except ValueError as e:
            c.check(f"{route} #{i // len(order)}: output is JSON", False, f"{e}: {raw[:200]}")
            continue
        texts = [raw] + list(decoded_texts(parsed))
        leaked = [s for s in secrets if any(s in t for t in texts)]
        text_route = "message" in parsed and route in ("trailing", "cut")
        shapes[route] += route not in ("trailing", "cut") or text_route
        if leaked:
            leaks[route] += 1
            if leaks[route] <= 5:
                c.check(f"{route} #{i // len(order)} redacts every secret", False,
                        f"{leaked[0]} in {raw[:600]} (input {lines[i][:400]})")
        if not any(marker in t for t in texts):
            lost[route] += 1
            if lost[route] <= 5:
                c.check(f"{route} #{i // len(order)} keeps the benign text", False, raw[:300])
    for route in order:
        c.check(f"{route}: every secret of {len(records)} records redacted", leaks[route] == 0,
                f"{leaks[route]} records leak")
        c.check(f"{route}: the benign text of every record kept", lost[route] == 0,
                f"{lost[route]} records lose it")
        c.check(f"{route}: shipped the way the route says", shapes[route] == len(records),
                f"{shapes[route]} of {len(records)}")
    return c.report()


if __name__ == "__main__":
    sys.exit(main())
