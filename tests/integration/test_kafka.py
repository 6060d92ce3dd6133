#!/usr/bin/env python3
"""The Kafka output against a real Kafka broker and librdkafka's mock cluster.

A real single-node Apache Kafka 4.1 broker (tests/kafka/broker.py, KRaft,
automatic topic creation off) serves these scenarios, read back with kcat:
- corpus: the 200k-record CRI corpus (../shared/bench/gen_corpus.py) with
  planted secrets, tailed to a topic of 3 partitions: every record exactly
  once (idempotence on), the message key is the record's trace_id, the
  headers carry the environment and the record's source position (its end
  offset in the file, checked against the file), records whose topic_field
  names another topic are there, no planted secret in any message;
- outage: the broker is killed (SIGKILL) for 15 s while records are being
  written: the acknowledged checkpoint does not move meanwhile, every record
  at or before it is in Kafka when the broker is back (logveil stopped with
  SIGSTOP while it is read), RSS stays within its bound, backpressure shows
  in /metrics (inputs paused, the buffer full), and afterwards nothing is
  lost (a duplicate only from a producer recreated after a fatal error);
- missing_topic: a topic that does not exist: with missing_topic dead_letter
  its records are dead-lettered with the error; with hold they are held (the
  checkpoint does not move) with a clear log line, and delivered once the
  topic is created.
config: check-config names every bad key and librdkafka property with
file:line; a secret read from a file is never echoed.
librdkafka's mock cluster (3 brokers, kafka_tool mock) serves the faults a
real broker does not produce on demand:
- mock_errors: Produce requests answered NOT_LEADER_FOR_PARTITION and
  REQUEST_TIMED_OUT: retried by librdkafka, every record exactly once;
- mock_broker_down: every broker down for 6 s with message.timeout.ms 2 s:
  the messages time out, are sent again, and all arrive, the checkpoint held
  at 0 meanwhile;
- mock_queue_full: librdkafka's queue bounded at 64 KiB and slow brokers:
  QUEUE_FULL refuses batches (logveil_output_queue_full_total), and every
  record still arrives exactly once;
- mock_shutdown: SIGTERM with messages outstanding (slow brokers) drains
  them within the deadline and checkpoints them; with every broker down the
  drain ends at its deadline and the next run sends what was handed back;
- mock_fatal: OUT_OF_ORDER_SEQUENCE_NUMBER on the first request, the fatal
  error of the idempotent producer: it is recreated, nothing is lost;
- mock_rejected: TOPIC_AUTHORIZATION_FAILED and a record over
  message.max.bytes: dead-lettered with the error, counted as rejected,
  every other record delivered, none twice.

Usage: test_kafka.py --binary PATH --source REPO --kafka-tool PATH [--only a,b]
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "kafka"))
import harness  # noqa: E402

PLANTED = ["PLANTED-kafka-pw-51e2", "PLANTED-kafka-token-beef77", "sk_live_PLANTEDkafka0123456789ab"]
BROKER_SCENARIOS = ("corpus", "outage", "missing_topic")


# ---- helpers ------------------------------------------------------------------------------------

def write_config(tmp, name, brokers, topic, port, extra="", env="development"):
    path = os.path.join(tmp, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(f"""environment: {env}
inputs:
  - type: tail
    format: cri
    paths: ["{tmp}/{name}.log"]
    checkpoint: {tmp}/{name}.ckpt
    read_from: head
admin: {{listen: "127.0.0.1:{port}"}}
state_dir: {tmp}
buffer: {{max_bytes: 16MiB}}
shutdown_timeout: 10
outputs:
  - type: kafka
    brokers: "{brokers}"
    topic: {topic}
    dead_letter: {tmp}/{name}.dead.jsonl
{extra}""")
    return path


def start(binary, config, tmp, name):
    err = open(os.path.join(tmp, f"{name}.stderr"), "ab")
    return subprocess.Popen([binary, "run", "--config", config], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=err, env=harness.clean_env())


def stderr_of(tmp, name):
    try:
        with open(os.path.join(tmp, f"{name}.stderr"), errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def acked(port):
    m = harness.metrics(port)
    vals = [v for k, v in m.items() if k.startswith("logveil_file_acked_offset_bytes")]
    return sum(vals) if vals else None


def metric(port, prefix):
    m = harness.metrics(port)
    return sum(v for k, v in m.items() if k.startswith(prefix))


def wait_acked(port, size, proc, timeout):
    return harness.wait_for(lambda: acked(port) == size or proc.poll() is not None, timeout, 0.2) \
        and acked(port) == size


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def consume(bootstrap, topic, timeout=120):
    """Every message of `topic` as kcat's JSON envelope (key, headers, payload)."""
    r = subprocess.run(["kcat", "-b", bootstrap, "-C", "-t", topic, "-e", "-q", "-J",
                        "-X", "fetch.wait.max.ms=50"],
                       capture_output=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"kcat failed: {r.stderr.decode(errors='replace')[-500:]}")
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def headers(m):
    h = m.get("headers") or []
    return {h[i]: h[i + 1] for i in range(0, len(h) - 1, 2)}


def seqs_of(msgs):
    out = []
    for m in msgs:
        try:
            out.append(json.loads(m["payload"])["seq"])
        except (ValueError, KeyError, TypeError):
            pass
    return out


def write_records(path, start, n, tag, pad=200, extra=None):
    """CRI lines of JSON records with seq start..start+n-1; returns each
    record's end offset in the file, by seq."""
    ends = {}
    with open(path, "ab") as f:
        pos = f.tell()
        for i in range(start, start + n):
            rec = {"level": "info", "seq": i, "tag": tag, "trace_id": f"t{i % 97}",
                   "message": "x" * pad}
            if extra:
                rec.update(extra)
            line = f"2025-11-21T02:00:00.{i % 10**9:09d}Z stdout F {json.dumps(rec)}\n".encode()
            f.write(line)
            pos += len(line)
            ends[i] = pos
    return ends


def exactly_once(c, name, got, want, detail=""):
    c.check(name, sorted(got) == sorted(want),
            f"{len(got)} records, {len(set(got))} distinct, expected {len(want)} {detail}")


# ---- the real broker ----------------------------------------------------------------------------

def scenario_corpus(args, c, tmp, b):
    log = os.path.join(tmp, "corpus.log")
    gen = os.path.join(args.source, "..", "shared", "bench", "gen_corpus.py")
    if not os.path.exists(gen):
        gen = "/work/shared/bench/gen_corpus.py"
    with open(log, "wb") as f:
        subprocess.run([sys.executable, gen, "--format", "cri", "--records", "200000"],
                       stdout=f, check=True)
        ts = "2025-11-21T01:00:00.000000000Z"
        for i, secret in enumerate(PLANTED):
            rec = {"level": "info", "seq": 900000 + i, "planted": True, "password": secret,
                   "trace_id": f"planted-{i}", "message": f"login retried with token={secret}"}
            f.write(f"{ts} stdout F {json.dumps(rec)}\n".encode())
        for i in range(3):
            rec = {"level": "info", "seq": 910000 + i, "kafka_topic": "lv-routed"}
            f.write(f"{ts} stdout F {json.dumps(rec)}\n".encode())
    # The oracle: Python's json over the file, with each line's end offset.
    want, text, ends, keys = [], 0, {}, {}
    with open(log, "rb") as f:
        pos = 0
        for line in f:
            pos += len(line)
            try:
                obj = json.loads(line.split(b" ", 3)[3])
                want.append(obj["seq"])
                ends[obj["seq"]] = pos
                keys[obj["seq"]] = obj.get("trace_id")
            except (ValueError, KeyError, TypeError):
                text += 1
    size = os.path.getsize(log)
    for topic, parts in (("lv-corpus", 3), ("lv-routed", 1)):
        subprocess.run([args.kafka_tool, "create-topic", b.bootstrap, topic, str(parts)],
                       check=True, timeout=60)
    port = harness.free_port()
    config = write_config(tmp, "corpus", b.bootstrap, "lv-corpus", port,
                          "    topic_field: kafka_topic\n    key: trace_id\n")
    p = start(args.binary, config, tmp, "corpus")
    t0 = time.monotonic()
    done = wait_acked(port, size, p, 240)
    took = time.monotonic() - t0
    rc = stop(p)
    c.check("corpus: the checkpoint reaches the end of the file, and logveil exits 0",
            done and rc == 0, f"acked {acked(port)} of {size}, exit {rc}, {took:.1f} s")
    msgs = consume(b.bootstrap, "lv-corpus")
    routed = consume(b.bootstrap, "lv-routed")
    got = seqs_of(msgs)
    exactly_once(c, "corpus: every JSON record exactly once (idempotence on)",
                 got + seqs_of(routed), want)
    c.check("corpus: every text line once", len(msgs) - len(got) == text,
            f"{len(msgs) - len(got)} messages without seq, {text} text lines")
    c.check("corpus: records naming a topic in topic_field are in that topic only",
            sorted(seqs_of(routed)) == [910000, 910001, 910002] and
            not any(s >= 910000 for s in got), str(seqs_of(routed)))
    bad_key, bad_hdr = [], []
    for m in msgs + routed:
        try:
            seq = json.loads(m["payload"])["seq"]
        except (ValueError, KeyError, TypeError):
            seq = None
        h = headers(m)
        if seq is not None and m.get("key") != keys[seq]:
            bad_key.append((seq, m.get("key"), keys[seq]))
        pos = re.fullmatch(r"[0-9a-f]{8}:([0-9]+)", h.get("logveil.position", ""))
        if h.get("environment") != "development" or not pos or (
                seq is not None and pos.group(1) != str(ends[seq])):
            bad_hdr.append((seq, h))
    c.check("corpus: the message key is the record's trace_id (none without one)",
            not bad_key, str(bad_key[:3]))
    c.check("corpus: headers carry the environment and the record's end offset in its file",
            not bad_hdr, str(bad_hdr[:3]))
    everything = json.dumps(msgs + routed)
    planted = [json.loads(m["payload"]) for m in msgs if "planted" in m["payload"]]
    c.check("corpus: no planted secret in any message (3 planted records delivered, redacted)",
            len(planted) == len(PLANTED) and not any(s in everything for s in PLANTED),
            str(planted)[:300])


def scenario_outage(args, c, tmp, b):
    log = os.path.join(tmp, "outage.log")
    ends = write_records(log, 0, 20000, "outage")
    subprocess.run([args.kafka_tool, "create-topic", b.bootstrap, "lv-outage", "3"],
                   check=True, timeout=60)
    port = harness.free_port()
    config = write_config(tmp, "outage", b.bootstrap, "lv-outage", port)
    p = start(args.binary, config, tmp, "outage")
    rss = harness.RssSampler(lambda: p.pid)
    rss.start()
    try:
        harness.wait_for(lambda: (acked(port) or 0) > 0 or p.poll() is not None, 60, 0.1)
        b.kill()
        killed_at = time.monotonic()
        ends.update(write_records(log, 20000, 60000, "outage", pad=500))  # ~36 MB while down
        samples = []
        while time.monotonic() - killed_at < 15:
            samples.append(acked(port))
            time.sleep(0.5)
        paused = metric(port, "logveil_input_paused_total")
        buffered = metric(port, "logveil_buffer_bytes")
        p.send_signal(signal.SIGSTOP)  # nothing more is sent while Kafka is read
        try:
            b.start()
            held = max(s for s in samples if s is not None)
            present = set(seqs_of(consume(b.bootstrap, "lv-outage")))
        finally:
            p.send_signal(signal.SIGCONT)
        owed = [s for s, e in ends.items() if e <= held]
        missing = [s for s in owed if s not in present]
        c.check("outage: every record at or before the checkpoint is in Kafka (checkpoints "
                "never ahead of delivery)", owed and not missing,
                f"checkpoint {held}: {len(owed)} records owed, {len(missing)} missing")
        c.check("outage: the checkpoint does not move while the broker is down",
                len(set(samples[6:])) == 1, f"{samples}")
        c.check("outage: backpressure shows in /metrics (inputs paused, the buffer full)",
                paused > 0 and buffered >= 12 << 20,
                f"paused {paused}, buffer {buffered / 2**20:.1f} MiB")
        done = wait_acked(port, os.path.getsize(log), p, 180)
        rc = stop(p)
    finally:
        rss.stop()
    peak = rss.peak() or 0
    limit = (24 + 16 + 16) << 20  # 24 MiB + librdkafka's queue + the buffer's budget
    harness.check_rss(c, args.binary, "outage: peak RSS within 24 MiB + 16 MiB librdkafka queue "
                      "+ 16 MiB buffer", peak <= limit, f"{peak / 2**20:.1f} MiB")
    got = seqs_of(consume(b.bootstrap, "lv-outage"))
    err = stderr_of(tmp, "outage")
    recreated = "producer recreated" in err
    c.check("outage: after 15 s down and a restart, nothing lost and logveil exits 0",
            done and rc == 0 and set(got) == set(range(80000)),
            f"{len(got)} messages, {len(set(got))} distinct of 80000, exit {rc}")
    c.check("outage: no duplicate unless the producer was recreated after a fatal error",
            len(got) == len(set(got)) or recreated,
            f"{len(got) - len(set(got))} duplicates, recreated {recreated}")
    print(f"     (outage: peak RSS {peak / 2**20:.1f} MiB, {len(got) - len(set(got))} duplicates, "
          f"producer recreated: {recreated})", flush=True)


def scenario_missing_topic(args, c, tmp, b):
    fast = ("    properties:\n      topic.metadata.refresh.interval.ms: 1000\n"
            "      topic.metadata.propagation.max.ms: 1000\n")
    # dead_letter
    log = os.path.join(tmp, "absent.log")
    write_records(log, 0, 100, "absent")
    port = harness.free_port()
    config = write_config(tmp, "absent", b.bootstrap, "lv-absent", port,
                          "    missing_topic: dead_letter\n" + fast)
    p = start(args.binary, config, tmp, "absent")
    done = wait_acked(port, os.path.getsize(log), p, 60)
    rejected = metric(port, 'logveil_records_dropped_total{reason="rejected"')
    stop(p)
    dead = []
    if os.path.exists(os.path.join(tmp, "absent.dead.jsonl")):
        dead = [json.loads(x) for x in open(os.path.join(tmp, "absent.dead.jsonl"))]
    c.check("missing_topic dead_letter: every record dead-lettered with the error, counted",
            done and sorted(d["record"]["seq"] for d in dead) == list(range(100)) and
            all("UNKNOWN_TOPIC" in d["error"]["type"] for d in dead) and rejected == 100,
            f"done {done}, {len(dead)} dead letters, rejected {rejected}, {str(dead[:1])[:300]}")
    c.check("missing_topic dead_letter: a clear log line", re.search(
        r'topic \\?"lv-absent\\?" does not exist.*dead letters', stderr_of(tmp, "absent")),
        stderr_of(tmp, "absent")[-500:])
    # hold
    log = os.path.join(tmp, "held.log")
    write_records(log, 0, 100, "held")
    port = harness.free_port()
    # librdkafka's default refresh of metadata (5 min) stays: a held record is
    # sent again by the pipeline's retries, and the topic's creation is seen.
    config = write_config(tmp, "held", b.bootstrap, "lv-held", port,
                          "    properties: {topic.metadata.propagation.max.ms: 1000}\n")
    p = start(args.binary, config, tmp, "held")
    samples = []
    for _ in range(16):
        time.sleep(0.5)
        samples.append(acked(port))
    err = stderr_of(tmp, "held")
    c.check("missing_topic hold: records held, the checkpoint at 0, a clear log line",
            set(samples) == {0} and re.search(r'topic \\?"lv-held\\?" does not exist.*held', err)
            and os.path.getsize(os.path.join(tmp, "held.dead.jsonl")) == 0,
            f"{samples} {err[-400:]}")
    subprocess.run([args.kafka_tool, "create-topic", b.bootstrap, "lv-held", "1"], check=True,
                   timeout=60)
    done = wait_acked(port, os.path.getsize(log), p, 90)
    stop(p)
    got = seqs_of(consume(b.bootstrap, "lv-held"))
    c.check("missing_topic hold: once the topic exists every record is delivered",
            done and set(got) == set(range(100)), f"done {done}, {len(got)} messages")


# ---- the mock cluster ---------------------------------------------------------------------------

class Mock:
    def __init__(self, tool):
        self.proc = subprocess.Popen([tool, "mock", "3"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.bootstrap = self.proc.stdout.readline().strip()

    def do(self, cmd):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        if answer != "ok":
            raise RuntimeError(f"mock: {cmd}: {answer}")

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def mock_run(args, c, tmp, name, before, n=20000, extra="", during=None):
    """Records 0..n-1 through logveil to the mock's topic `lv`; returns
    (done, messages, stderr, port samples from `during`)."""
    m = Mock(args.kafka_tool)
    try:
        m.do("topic lv 4")
        for cmd in before:
            m.do(cmd)
        log = os.path.join(tmp, f"{name}.log")
        write_records(log, 0, n, name, pad=100)
        port = harness.free_port()
        config = write_config(tmp, name, m.bootstrap, "lv", port, extra)
        p = start(args.binary, config, tmp, name)
        seen = during(m, port, p) if during else None
        done = wait_acked(port, os.path.getsize(log), p, 90)
        rejected = metric(port, 'logveil_records_dropped_total{reason="rejected"')
        rc = stop(p)
        msgs = consume(m.bootstrap, "lv")
        return done and rc == 0, msgs, stderr_of(tmp, name), seen, rejected
    finally:
        m.close()


def scenario_mock_errors(args, c, tmp):
    done, msgs, err, _, _ = mock_run(
        args, c, tmp, "errors",
        ["errors 12 NOT_LEADER_FOR_PARTITION REQUEST_TIMED_OUT NOT_ENOUGH_REPLICAS"])
    c.check("mock_errors: logveil delivers everything and exits 0", done, err[-500:])
    exactly_once(c, "mock_errors: NOT_LEADER/REQUEST_TIMED_OUT retried, every record exactly once",
                 seqs_of(msgs), range(20000))


def scenario_mock_broker_down(args, c, tmp):
    def during(m, port, p):
        samples = []
        for _ in range(12):
            time.sleep(0.5)
            samples.append(acked(port))
        for i in (1, 2, 3):
            m.do(f"up {i}")
        return samples
    done, msgs, err, samples, _ = mock_run(
        args, c, tmp, "down", ["down 1", "down 2", "down 3"], n=5000,
        extra="    properties: {message.timeout.ms: 2000}\n", during=during)
    c.check("mock_broker_down: the checkpoint stays at 0 while every broker is down",
            samples and set(samples[1:]) == {0}, str(samples))
    c.check("mock_broker_down: timed-out messages are logged and sent again",
            "timed out undelivered" in err, err[-500:])
    got = seqs_of(msgs)
    c.check("mock_broker_down: after the brokers are up, every record delivered (none lost, "
            "none twice)", done and sorted(got) == list(range(5000)),
            f"{len(got)} messages, {len(set(got))} distinct")


def scenario_mock_queue_full(args, c, tmp):
    def during(m, port, p):
        return harness.wait_for(
            lambda: metric(port, "logveil_output_queue_full_total") > 0 or p.poll() is not None,
            30, 0.05) and metric(port, "logveil_output_queue_full_total")
    done, msgs, err, full, _ = mock_run(
        args, c, tmp, "full", ["rtt 1 20", "rtt 2 20", "rtt 3 20"],
        extra="    properties: {queue.buffering.max.kbytes: 64}\n", during=during)
    c.check("mock_queue_full: librdkafka's full queue is backpressure, counted in /metrics",
            bool(full), f"logveil_output_queue_full_total {full}")
    c.check("mock_queue_full: logveil delivers everything and exits 0", done, err[-500:])
    exactly_once(c, "mock_queue_full: every record exactly once", seqs_of(msgs), range(20000))


def scenario_mock_shutdown(args, c, tmp):
    m = Mock(args.kafka_tool)
    try:
        m.do("topic lv 4")
        for i in (1, 2, 3):
            m.do(f"rtt {i} 150")
        log = os.path.join(tmp, "sd.log")
        write_records(log, 0, 20000, "sd", pad=100)
        port = harness.free_port()
        config = write_config(tmp, "sd", m.bootstrap, "lv", port)
        p = start(args.binary, config, tmp, "sd")
        harness.wait_for(lambda: (acked(port) or 0) > 0 or p.poll() is not None, 30, 0.02)
        outstanding = os.path.getsize(log) - (acked(port) or 0)
        t0 = time.monotonic()
        rc = stop(p)
        took = time.monotonic() - t0
        c.check("mock_shutdown: SIGTERM with messages outstanding drains them within the "
                "deadline (10 s) and exits 0", rc == 0 and took < 10 and outstanding > 0,
                f"exit {rc} after {took:.1f} s, {outstanding} bytes outstanding at SIGTERM")
        p = start(args.binary, config, tmp, "sd")
        wait_acked(port, os.path.getsize(log), p, 30)
        stop(p)
        exactly_once(c, "mock_shutdown: the drain delivered everything and checkpointed it (a "
                     "restart sends nothing again)", seqs_of(consume(m.bootstrap, "lv")),
                     range(20000))
        for i in (1, 2, 3):
            m.do(f"down {i}")
        write_records(log, 20000, 1000, "sd", pad=100)
        with open(config) as f:
            text = f.read().replace("shutdown_timeout: 10", "shutdown_timeout: 2")
        with open(config, "w") as f:
            f.write(text)
        p = start(args.binary, config, tmp, "sd")
        time.sleep(2)
        t0 = time.monotonic()
        rc = stop(p)
        took = time.monotonic() - t0
        # Exit 0: nothing is lost, what was not delivered is read again from
        # the checkpoint by the next run (below).
        c.check("mock_shutdown: with every broker down the drain ends at its 2 s deadline "
                "(exit 0, nothing lost), nothing checkpointed past what was delivered",
                rc == 0 and took < 6 and "read again from the checkpoint" in stderr_of(tmp, "sd"),
                f"exit {rc} after {took:.1f} s")
        for i in (1, 2, 3):
            m.do(f"up {i}")
        p = start(args.binary, config, tmp, "sd")
        done = wait_acked(port, os.path.getsize(log), p, 60)
        stop(p)
        exactly_once(c, "mock_shutdown: the records handed back at the deadline are sent by the "
                     "next run", seqs_of(consume(m.bootstrap, "lv")), range(21000),
                     f"(done {done})")
    finally:
        m.close()


def scenario_mock_fatal(args, c, tmp):
    done, msgs, err, _, _ = mock_run(args, c, tmp, "fatal", ["errors 1 OUT_OF_ORDER_SEQUENCE_NUMBER"])
    c.check("mock_fatal: the fatal idempotence error is logged and the producer recreated",
            "failed for good" in err and "producer recreated" in err, err[-800:])
    got = seqs_of(msgs)
    c.check("mock_fatal: nothing lost across the recreation, logveil exits 0",
            done and set(got) == set(range(20000)),
            f"{len(got)} messages, {len(set(got))} distinct")
    print(f"     (mock_fatal: {len(got) - len(set(got))} duplicates)", flush=True)


def scenario_mock_rejected(args, c, tmp):
    log = os.path.join(tmp, "rejected.log")
    write_records(log, 0, 1, "big", pad=30000)  # over message.max.bytes
    done, msgs, err, _, rejected = mock_run(
        args, c, tmp, "rejected", ["errors 2 TOPIC_AUTHORIZATION_FAILED"], n=5000,
        extra="    properties: {message.max.bytes: 20000}\n")
    dead = [json.loads(x) for x in open(os.path.join(tmp, "rejected.dead.jsonl"))]
    dseq = [d["record"]["seq"] for d in dead]
    got = seqs_of(msgs)
    types = {d["error"]["type"] for d in dead}
    c.check("mock_rejected: logveil settles everything and exits 0", done, err[-500:])
    c.check("mock_rejected: the record over message.max.bytes and the ones refused for "
            "authorization are dead-lettered with the error, counted as rejected",
            "MSG_SIZE_TOO_LARGE" in types and "TOPIC_AUTHORIZATION_FAILED" in types and
            rejected == len(dead), f"{len(dead)} dead letters {types}, rejected {rejected}")
    c.check("mock_rejected: every record delivered or dead-lettered, exactly once",
            sorted(got + dseq) == sorted(list(range(5000)) + [0]),
            f"{len(got)} delivered + {len(dseq)} dead letters")


def scenario_mock_hostile_topic(args, c, tmp):
    """Records naming their topic (topic_field) with an allow-list: only an
    allowed name is used; a topic outside it, an internal one, an invalid or
    an oversized name sends the record to the fallback topic, counted, with
    one log line; every record delivered once."""
    m = Mock(args.kafka_tool)
    try:
        for t in ("lv", "logs-a", "other"):
            m.do(f"topic {t} 1")
        log = os.path.join(tmp, "hostile.log")
        groups = [("logs-a", True), ("other", False), ("__consumer_offsets", False),
                  ("bad topic!", False), ("logs-" + "x" * 300, False)]
        for g, (topic, _) in enumerate(groups):
            write_records(log, g * 100, 100, "hostile", pad=50, extra={"topic": topic})
        port = harness.free_port()
        config = write_config(tmp, "hostile", m.bootstrap, "lv", port,
                              "    topic_field: topic\n    topics: ['logs-*']\n")
        p = start(args.binary, config, tmp, "hostile")
        done = wait_acked(port, os.path.getsize(log), p, 60)
        refused = metric(port, 'logveil_output_values_refused_total')
        rc = stop(p)
        err = stderr_of(tmp, "hostile")
        allowed = sorted(seqs_of(consume(m.bootstrap, "logs-a")))
        fallback = sorted(seqs_of(consume(m.bootstrap, "lv")))
        other = seqs_of(consume(m.bootstrap, "other"))
    finally:
        m.close()
    c.check("mock_hostile_topic: everything delivered, exit 0", done and rc == 0, err[-300:])
    c.check("mock_hostile_topic: only the allowed topic is used as named",
            allowed == list(range(100)) and not other, f"{len(allowed)} in logs-a, "
            f"{len(other)} in other")
    c.check("mock_hostile_topic: the others go to the fallback topic, each once",
            fallback == list(range(100, 500)), f"{len(fallback)} in lv")
    c.check("mock_hostile_topic: refusals counted (logveil_output_values_refused_total) and "
            "logged once", refused == 400 and err.count("which is not allowed by topics") +
            err.count("which is not a valid topic name") == 1,
            f"refused {refused}; {err[-300:]}")


# ---- configuration ---------------------------------------------------------------------------------

def scenario_config(args, c, tmp):
    secret, mech = "PLANTED-sasl-pw-9d1c", "PLANTED-BOGUS-MECHANISM"
    for name, text in (("pw.txt", secret + "\n"), ("mech.txt", mech + "\n")):
        with open(os.path.join(tmp, name), "w") as f:
            f.write(text)
    good = os.path.join(tmp, "good.yaml")
    with open(good, "w") as f:
        f.write(f"""inputs:
  - type: stdin
outputs:
  - type: kafka
    brokers: "127.0.0.1:1"
    topic: logs
    topic_field: kubernetes.namespace
    key: none
    missing_topic: dead_letter
    dead_letter: {tmp}/dead.jsonl
    properties:
      compression.type: zstd
      linger.ms: 20
      security.protocol: sasl_plaintext
      sasl.mechanisms: PLAIN
      sasl.username: logveil
      sasl.password_file: {tmp}/pw.txt
""")
    r = subprocess.run([args.binary, "check-config", good], capture_output=True, text=True,
                       env=harness.clean_env(), timeout=30)
    c.check("config: a kafka output with properties and a password file passes check-config",
            r.returncode == 0, r.stdout + r.stderr)
    bad = os.path.join(tmp, "bad.yaml")
    with open(bad, "w") as f:
        f.write(f"""inputs:
  - type: stdin
outputs:
  - type: kafka
    topic: "bad topic!"
    propertie: {{}}
    missing_topic: drop
    properties:
      linger.ms: 20
      no.such.property: x
      acks: sometimes
      ssl.key.password_file: {tmp}/absent
      bootstrap.servers: "x:1"
      sasl.password_file: {tmp}/pw.txt
""")
    r = subprocess.run([args.binary, "check-config", bad], capture_output=True, text=True,
                       env=harness.clean_env(), timeout=30)
    out = r.stdout + r.stderr
    want = ['bad.yaml:4: outputs[0]: missing required key "brokers"',
            "bad.yaml:5: outputs[0].topic: not a valid topic name",
            'bad.yaml:6: unknown key "propertie" in outputs[0]',
            "bad.yaml:7: outputs[0].missing_topic:",
            "bad.yaml:10: outputs[0].properties.no.such.property: No such configuration property",
            "bad.yaml:11: outputs[0].properties.acks: Invalid value",
            "bad.yaml:12: outputs[0].properties.ssl.key.password_file: cannot read",
            "bad.yaml:13: outputs[0].properties.bootstrap.servers: set by logveil"]
    missing = [w for w in want if w not in out]
    c.check("config: check-config names every bad kafka key and property with file:line, exit 2",
            r.returncode == 2 and not missing, f"exit {r.returncode}; missing {missing}; {out}")
    with open(good, "a") as f:
        f.write(f"      sasl.mechanisms_file: {tmp}/mech.txt\n")
    with open(good) as f:
        text = f.read().replace("      sasl.mechanisms: PLAIN\n", "")
    with open(good, "w") as f:
        f.write(text)
    r = subprocess.run([args.binary, "run", "--config", good], input="{}\n", capture_output=True,
                       text=True, env=harness.clean_env(), timeout=30)
    out = r.stdout + r.stderr
    c.check("config: a secret read from a file that librdkafka refuses is never echoed",
            r.returncode != 0 and "Unsupported SASL mechanism: ***" in out and mech not in out
            and secret not in out, out[-500:])


# ---- main ----------------------------------------------------------------------------------------

SCENARIOS = {
    "mock_hostile_topic": scenario_mock_hostile_topic,
    "config": scenario_config,
    "corpus": scenario_corpus, "outage": scenario_outage, "missing_topic": scenario_missing_topic,
    "mock_errors": scenario_mock_errors, "mock_broker_down": scenario_mock_broker_down,
    "mock_queue_full": scenario_mock_queue_full, "mock_shutdown": scenario_mock_shutdown, "mock_fatal": scenario_mock_fatal, "mock_rejected": scenario_mock_rejected,
}


def main():
    ap = harness.parser(__doc__)
    ap.add_argument("--kafka-tool", required=True)
    ap.add_argument("--only", default=",".join(SCENARIOS))
    args = ap.parse_args()
    names = args.only.split(",")
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        ap.error("no scenario named " + ", ".join(unknown))
    c = harness.Checks()
    root = tempfile.mkdtemp(prefix="lv-kafka-test-")
    b = None
    try:
        if any(n in BROKER_SCENARIOS for n in names):
            import broker as kbroker
            t = time.monotonic()
            b = kbroker.Broker().start()
            c.check("a real Kafka 4.1 broker answers", True,
                    f"{b.bootstrap} in {time.monotonic() - t:.0f} s")
        for n in names:
            tmp = os.path.join(root, n)
            os.makedirs(tmp)
            failed, t = c.failed, time.monotonic()
            try:
                if n in BROKER_SCENARIOS:
                    SCENARIOS[n](args, c, tmp, b)
                else:
                    SCENARIOS[n](args, c, tmp)
            except Exception as e:  # a failed check, never a hang
                c.check(f"{n} ran to the end", False, repr(e))
            print(f"     ({n}: {time.monotonic() - t:.0f} s)", flush=True)
            if c.failed != failed:
                for f in sorted(os.listdir(tmp)):
                    if f.endswith(".stderr"):
                        print(f"--- {f}:\n" + open(os.path.join(tmp, f),
                                                   errors="replace").read()[-3000:])
    finally:
        if b:
            b.remove()
        subprocess.run(["rm", "-rf", root])
    return c.report()


if __name__ == "__main__":
    sys.exit(main())
