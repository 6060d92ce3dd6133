#!/usr/bin/env python3
"""Configuration reloads and the drain at SIGTERM, with the real binary.

Scenarios (--only picks some):
  under_load  a tailed file written at a steady rate; SIGHUP with a file
              that adds a redaction rule (field `color`) and a production
              sampling rate of one half for INFO: every record before one
              switch point is filtered by the old rules and every one after
              it by the new (one cut, in sequence order); nothing lost but
              the records the new rate samples out, exactly as many as
              counted; nothing duplicated; every WARN kept
  rejected    then a file that does not parse, and one that changes the
              outputs: both rejected (log line with file:line or the
              section, metrics), the rules in force stay, logveil stays up
  watch       run --watch-config on a mount laid out as kubelet lays out a
              ConfigMap (config.yaml -> ..data/config.yaml, ..data -> a
              timestamped dir) and the ..data symlink swapped: reloaded
              without a signal
  audit       audit records (always_keep) chained while a reload changes a
              redaction rule: the chain goes on across it (one stream, seqs
              1..N, no restart declared), verify-audit passes
  drain       SIGTERM while a slow reader holds a FIFO output back: exit 0
              within shutdown_timeout; the next run, with a fast reader,
              delivers the rest from the checkpoint: no sequence missing

Usage: test_reload.py --binary PATH --source REPO [--only a,b]
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

RUNNING = []

BASE = """inputs: [{{type: tail, paths: ['{tmp}/app.log'], read_from: head}}]
state_dir: {tmp}/state
admin: {{listen: "127.0.0.1:{port}"}}
outputs: [{{type: file, path: {out}}}]
"""
NEW_RULES = """environment: production
redact:
  keys: [password, {{key: color, match: exact}}]
sampling:
  key: seq
  profiles:
    production: {{default: 0.5, levels: {{WARN: 1.0, ERROR: 1.0, FATAL: 1.0}}}}
"""


class Writer(threading.Thread):
    """Appends JSON lines with a sequence number at about `rate` lines/s;
    every fifth is a WARN, the others INFO."""

    def __init__(self, path, rate, start=0):
        super().__init__(daemon=True)
        self.path, self.rate, self.seq, self.first = path, rate, start, start
        self.stop_flag = threading.Event()

    def line(self, i):
        level = "warn" if i % 5 == 4 else "info"
        return json.dumps({"level": level, "seq": i, "color": "blue", "msg": "m" * 60}) + "\n"

    def run(self):
        t0 = time.monotonic()
        with open(self.path, "a") as f:
            while not self.stop_flag.is_set():
                due = self.first + int((time.monotonic() - t0) * self.rate)
                while self.seq < due:
                    f.write(self.line(self.seq))
                    self.seq += 1
                f.flush()
                time.sleep(0.01)

    def stop(self):
        self.stop_flag.set()
        self.join()


def start(binary, cfg, tmp, *extra):
    err = open(os.path.join(tmp, "stderr.log"), "ab")
    p = subprocess.Popen([binary, "run", "--config", cfg, *extra], stdout=subprocess.DEVNULL,
                         stderr=err, env=harness.clean_env())
    err.close()
    RUNNING.append(p)
    return p


def stop(p, timeout=30):
    return harness.terminate(p, timeout)


def read_out(path):
    recs = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                recs.append(json.loads(line))
    return recs


def log_text(tmp):
    with open(os.path.join(tmp, "stderr.log"), errors="replace") as f:
        return f.read()


def wait_metric(port, name, want, timeout=10):
    return harness.wait_for(lambda: harness.metrics(port).get(name) == want, timeout, 0.1)


def write(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)


def setup(tmp):
    port = harness.free_port()
    out = os.path.join(tmp, "out.log")
    base = BASE.format(tmp=tmp, port=port, out=out)
    return port, out, base


def check_switch(c, name, recs, written, dropped_sampled):
    """One cut in sequence order; losses only after it, as counted."""
    by_seq = {}
    dups = 0
    for r in recs:
        dups += r["seq"] in by_seq
        by_seq[r["seq"]] = r
    c.check(f"{name}: no record twice", dups == 0, f"{dups} duplicates")
    masked = sorted(s for s, r in by_seq.items() if r.get("color") != "blue")
    plain = sorted(s for s, r in by_seq.items() if r.get("color") == "blue")
    c.check(f"{name}: records after the reload follow the new rule (some masked)",
            bool(masked), f"{len(plain)} plain, none masked")
    if not masked:
        return None
    # The first record the new rules saw may have been sampled out: the
    # switch is just after the last record of the old rules.
    switch = plain[-1] + 1 if plain else 0
    c.check(f"{name}: one switch point: every record before it by the old rules, every one "
            "after by the new", masked[0] >= switch and
            all(by_seq[s]["environment"] == "production" for s in masked) and
            all(by_seq[s]["environment"] == "development" for s in plain),
            f"last plain {switch - 1}, first masked {masked[0]}")
    missing = [s for s in range(written) if s not in by_seq]
    c.check(f"{name}: nothing missing before the switch",
            not [s for s in missing if s < switch], str(missing[:5]))
    c.check(f"{name}: every WARN kept after the switch", not [s for s in missing if s % 5 == 4],
            str([s for s in missing if s % 5 == 4][:5]))
    info_after = [s for s in range(switch, written) if s % 5 != 4]
    frac = len(missing) / max(1, len(info_after))
    c.check(f"{name}: the new rate (0.5) applies to INFO after the switch",
            len(info_after) > 200 and 0.35 < frac < 0.65,
            f"{len(missing)} of {len(info_after)} INFO sampled out")
    c.check(f"{name}: records missing = records counted as sampled",
            len(missing) == dropped_sampled, f"{len(missing)} missing, {dropped_sampled} counted")
    return switch


def sampled_total(m):
    return int(sum(v for k, v in m.items()
                   if k.startswith('logveil_records_dropped_total{reason="sampled"')))


def under_load_and_rejected(a, c, tmp):
    port, out, base = setup(tmp)
    cfg = os.path.join(tmp, "logveil.yaml")
    write(cfg, base)
    w = Writer(os.path.join(tmp, "app.log"), 4000)
    open(w.path, "w").close()
    p = start(a.binary, cfg, tmp)
    try:
        c.check("under_load: logveil ready", harness.wait_for(
            lambda: harness.metrics(port).get("logveil_config_generation") == 1, 10))
        w.start()
        time.sleep(1.5)
        write(cfg, NEW_RULES.format() + base)
        p.send_signal(signal.SIGHUP)
        ok = wait_metric(port, "logveil_config_generation", 2)
        c.check("under_load: generation 2 after SIGHUP", ok)
        time.sleep(1.5)
        w.stop()
        written = w.seq
        harness.wait_for(lambda: harness.metrics(port).get("logveil_checkpoint_lag_bytes") == 0
                         and harness.metrics(port).get("logveil_input_records_total") == written,
                         20, 0.1)
        m = harness.metrics(port)
        c.check("under_load: reload counted as applied",
                m.get('logveil_config_reloads_total{result="applied"}') == 1 and
                m.get("logveil_config_last_reload_success") == 1, str(
                    {k: v for k, v in m.items() if "config" in k}))
        c.check("under_load: the log says which generation from when",
                "config reloaded from" in log_text(tmp) and "generation 2" in log_text(tmp))
        switch = check_switch(c, "under_load", read_out(out), written, sampled_total(m))
        before = len(read_out(out))

        # A file that does not parse: rejected, the rules in force stay.
        write(cfg, NEW_RULES.format() + base + "outputs: [\n")
        p.send_signal(signal.SIGHUP)
        ok = wait_metric(port, 'logveil_config_reloads_total{result="rejected"}', 1)
        m = harness.metrics(port)
        text = log_text(tmp)
        c.check("rejected: a file that does not parse is rejected, with file:line",
                ok and m.get("logveil_config_last_reload_success") == 0 and
                m.get("logveil_config_generation") == 2 and
                f"{cfg}:" in text and "reload rejected" in text, text[-400:])
        # One that changes the outputs: a restart's business.
        write(cfg, NEW_RULES.format() + base.replace("out.log", "other.log"))
        p.send_signal(signal.SIGHUP)
        ok = wait_metric(port, 'logveil_config_reloads_total{result="rejected"}', 2)
        text = log_text(tmp)
        c.check("rejected: a change of the outputs is rejected, naming the section",
                ok and "outputs" in text.splitlines()[-1], text.splitlines()[-1][-300:])
        # The rules of generation 2 still apply; logveil is up.
        w2 = Writer(w.path, 4000, written)
        w2.start()
        time.sleep(0.5)
        w2.stop()
        harness.wait_for(lambda: harness.metrics(port).get("logveil_input_records_total") ==
                         w2.seq, 20, 0.1)
        time.sleep(0.3)
        after = read_out(out)[before:]
        c.check("rejected: logveil stays up and keeps the rules in force",
                p.poll() is None and after and all(r["color"] != "blue" for r in after) and
                not os.path.exists(os.path.join(tmp, "other.log")),
                f"{len(after)} records after, switch was {switch}")
    finally:
        w.stop_flag.set()
        c.check("under_load: exit 0 at SIGTERM", stop(p) == 0)


def watch(a, c, tmp):
    port, out, base = setup(tmp)
    mount = os.path.join(tmp, "mount")
    os.makedirs(os.path.join(mount, "..2026_12_06_a"))
    write(os.path.join(mount, "..2026_12_06_a", "logveil.yaml"), base)
    os.symlink("..2026_12_06_a", os.path.join(mount, "..data"))
    os.symlink("..data/logveil.yaml", os.path.join(mount, "logveil.yaml"))
    w = Writer(os.path.join(tmp, "app.log"), 2000)
    open(w.path, "w").close()
    p = start(a.binary, os.path.join(mount, "logveil.yaml"), tmp, "--watch-config")
    try:
        c.check("watch: logveil ready", harness.wait_for(
            lambda: harness.metrics(port).get("logveil_config_generation") == 1, 10))
        w.start()
        time.sleep(1.0)
        # kubelet's atomic writer: a new timestamped dir, ..data swapped by rename.
        os.makedirs(os.path.join(mount, "..2026_12_06_b"))
        write(os.path.join(mount, "..2026_12_06_b", "logveil.yaml"), NEW_RULES.format() + base)
        os.symlink("..2026_12_06_b", os.path.join(mount, "..data_tmp"))
        os.rename(os.path.join(mount, "..data_tmp"), os.path.join(mount, "..data"))
        ok = wait_metric(port, "logveil_config_generation", 2, timeout=8)
        c.check("watch: the swapped ConfigMap is reloaded without a signal", ok,
                log_text(tmp)[-300:])
        time.sleep(1.0)
        w.stop()
        harness.wait_for(lambda: harness.metrics(port).get("logveil_input_records_total") ==
                         w.seq, 20, 0.1)
        check_switch(c, "watch", read_out(out), w.seq, sampled_total(harness.metrics(port)))
    finally:
        w.stop_flag.set()
        c.check("watch: exit 0 at SIGTERM", stop(p) == 0)


def audit(a, c, tmp):
    port, out, base = setup(tmp)
    key = os.path.join(tmp, "audit.key")
    with open(key, "wb") as f:
        f.write(harness.random_key())
    os.chmod(key, 0o600)
    audit_conf = f"audit: {{key_file: {key}, key_id: a1, stream: reload-test}}\n"
    cfg = os.path.join(tmp, "logveil.yaml")
    write(cfg, audit_conf + base)
    log = os.path.join(tmp, "app.log")

    def add(first, n):
        with open(log, "a") as f:
            for i in range(first, first + n):
                f.write(json.dumps({"level": "info", "seq": i, "color": "blue",
                                    "log": {"type": "audit"}}) + "\n")
    add(0, 0)
    p = start(a.binary, cfg, tmp)
    try:
        c.check("audit: logveil ready", harness.wait_for(
            lambda: harness.metrics(port).get("logveil_config_generation") == 1, 10))
        add(0, 3000)
        harness.wait_for(lambda: harness.metrics(port).get("logveil_input_records_total") == 3000,
                         20, 0.1)
        write(cfg, audit_conf + NEW_RULES.format().replace("environment: production\n", "") +
              base)
        p.send_signal(signal.SIGHUP)
        c.check("audit: reloaded", wait_metric(port, "logveil_config_generation", 2))
        add(3000, 3000)
        harness.wait_for(lambda: harness.metrics(port).get("logveil_input_records_total") == 6000,
                         20, 0.1)
        time.sleep(0.5)
        last = harness.metrics(port).get("logveil_audit_last_seq")
    finally:
        c.check("audit: exit 0 at SIGTERM", stop(p) == 0)
    recs = read_out(out)
    seqs = [r["audit"]["seq"] for r in recs if "audit" in r]
    c.check("audit: one chain across the reload, seqs 1..6000, no restart declared",
            seqs == list(range(1, 6001)) and last == 6000 and
            not any("restart" in r["audit"] for r in recs),
            f"{len(seqs)} audit records, last_seq {last}")
    c.check("audit: records after the reload follow its rule",
            all(r["color"] == "blue" for r in recs[:3000]) and
            all(r["color"] != "blue" for r in recs[3000:]))
    with open(out, "rb") as f:
        r = subprocess.run([a.binary, "verify-audit", "--key-file", key, "--expect-last", "6000"],
                           stdin=f, capture_output=True, timeout=60)
    c.check("audit: verify-audit passes on the export (exit 0)", r.returncode == 0,
            (r.stdout + r.stderr).decode()[-400:])


def drain(a, c, tmp):
    port = harness.free_port()
    fifo = os.path.join(tmp, "out.fifo")
    os.mkfifo(fifo)
    log = os.path.join(tmp, "app.log")
    n = 60000
    w = Writer(log, 0)
    with open(log, "w") as f:
        for i in range(n):
            f.write(w.line(i))
    cfg = os.path.join(tmp, "logveil.yaml")
    write(cfg, f"""inputs: [{{type: tail, paths: ['{log}'], read_from: head}}]
state_dir: {tmp}/state
shutdown_timeout: 2
admin: {{listen: "127.0.0.1:{port}"}}
outputs: [{{type: file, path: {fifo}}}]
""")
    got = []

    def reader(rate):
        """Reads the FIFO at about `rate` bytes/s (0: as fast as it comes)."""
        with open(fifo, "rb") as f:
            buf = b""
            while True:
                chunk = f.read(4096) if rate else f.read1(1 << 16)
                if not chunk:
                    break
                buf += chunk
                *lines, buf = buf.split(b"\n")
                got.extend(lines)
                if rate:
                    time.sleep(4096 / rate)
    slow = threading.Thread(target=reader, args=(200_000,), daemon=True)
    slow.start()
    p = start(a.binary, cfg, tmp)
    time.sleep(3)
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        rc = None
    took = time.monotonic() - t0
    c.check("drain: exit 0 within shutdown_timeout (2 s) with a slow reader",
            rc == 0 and took < 3.5, f"exit {rc} after {took:.1f} s")
    first_run = len(got)
    c.check("drain: the slow reader had not got everything (the scenario holds)",
            first_run < n, f"{first_run} of {n}")
    slow.join(timeout=15)
    fast = threading.Thread(target=reader, args=(0,), daemon=True)
    fast.start()
    p = start(a.binary, cfg, tmp)
    done = harness.wait_for(lambda: {json.loads(x)["seq"] for x in got if x.startswith(b"{")}
                            >= set(range(n)), 60, 0.3)
    c.check("drain: the next run delivers the rest: no sequence missing", done,
            f"{len({json.loads(x)['seq'] for x in got if x.startswith(b'{')})} of {n}")
    c.check("drain: second exit 0", stop(p) == 0)
    fast.join(timeout=10)


def main():
    return harness.run_scenarios(__doc__, "logveil-reload-",
                                 [under_load_and_rejected, watch, audit, drain], RUNNING)


if __name__ == "__main__":
    sys.exit(main())
