#!/usr/bin/env python3
"""logveil against a real single-node OpenSearch 2.19 (tests/opensearch/node.py).

One node serves every scenario (its write thread pool has one thread and a
queue of 4, so the node answers real per-item 429s under load):
- corpus: the 200k-record CRI corpus (../shared/bench/gen_corpus.py), tailed
  with a checkpoint, logveil killed with SIGKILL mid-run and started again:
  every record is in the index exactly once (each JSON record's seq once,
  and as many text records as text lines), read back through _count and a
  scroll over _search; no planted secret anywhere in the index (a full-text
  search and the sources of the planted records); @timestamp mapped as a
  date; records whose seq is not a number (a conflict with the mapping)
  answered 400 by OpenSearch item by item and dead-lettered with its reason,
  and counted as rejected;
- pressure: records sent to an index of 16 shards, so a _bulk request
  overflows the write queue: the node rejects items (its thread_pool write
  rejected count grows) and every record still arrives exactly once;
- outage: the node is stopped for 20 s while records are being written and
  started again on the same data: everything arrives exactly once, and the
  acknowledged checkpoint does not move while the node is down.

Runs in the normal build only: the node's JVM takes 20-30 s and 400 MB to
start, and the ASan build runs the same C paths against the fake
Elasticsearch (test_es.py).

Usage: test_opensearch.py --binary PATH --source REPO
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "opensearch"))
import harness  # noqa: E402
import node as osnode  # noqa: E402

PLANTED = ["PLANTED-os-pw-7f3a9c", "PLANTED-os-token-c0ffee", "sk_live_PLANTEDos0123456789abcdef"]


def req(url, method="GET", body=None, timeout=60):
    data = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request(url, data=data, method=method,
                               headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(r, timeout=timeout) as resp:
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        return json.loads(e.read() or b"{}")


def count(n, index):
    req(f"{n.url}/{index}/_refresh", "POST")
    return req(f"{n.url}/{index}/_count").get("count", -1)


def scroll(n, index, fields):
    """Every document's _source (only `fields`) in `index`."""
    out = []
    req(f"{n.url}/{index}/_refresh", "POST")
    r = req(f"{n.url}/{index}/_search?scroll=1m",
            "POST", {"size": 10000, "_source": fields, "sort": ["_doc"]})
    while r.get("hits", {}).get("hits"):
        out += [h["_source"] for h in r["hits"]["hits"]]
        r = req(f"{n.url}/_search/scroll", "POST", {"scroll": "1m", "scroll_id": r["_scroll_id"]})
    return out


def write_config(tmp, name, url, index, port, extra=""):
    path = os.path.join(tmp, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(f"""inputs:
  - type: tail
    format: cri
    paths: ["{tmp}/{name}.log"]
    checkpoint: {tmp}/{name}.ckpt
    read_from: head
admin: {{listen: "127.0.0.1:{port}"}}
state_dir: {tmp}
buffer: {{max_bytes: 16MiB}}
outputs:
  - type: elasticsearch
    url: {url}
    index: {index}
    dead_letter: {tmp}/{name}.dead.jsonl
    flush_interval: 0.2
    retry_max_delay: 2
{extra}""")
    return path


def start(binary, config, tmp, name):
    err = open(os.path.join(tmp, f"{name}.stderr"), "ab")
    return subprocess.Popen([binary, "run", "--config", config], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=err, env=harness.clean_env())


def acked(port):
    m = harness.metrics(port)
    vals = [v for k, v in m.items() if k.startswith("logveil_file_acked_offset_bytes")]
    return sum(vals) if vals else None


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


def corpus_records(path):
    """(set of seq, text lines) of a CRI file, read with Python's json."""
    seqs, text = [], 0
    with open(path, "rb") as f:
        for line in f:
            body = line.split(b" ", 3)[3]
            try:
                obj = json.loads(body)
                seqs.append(obj["seq"])
            except (ValueError, KeyError, TypeError):
                text += 1
    return seqs, text


def scenario_corpus(c, args, n, tmp):
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
                   "message": f"login retried with token={secret}"}
            f.write(f"{ts} stdout F {json.dumps(rec)}\n".encode())
        for i in range(5):  # seq mapped as long by then: a real per-item 400
            rec = {"level": "info", "seq": f"not-a-number-{i}", "conflict": True}
            f.write(f"{ts} stdout F {json.dumps(rec)}\n".encode())
    seqs, text = corpus_records(log)
    seqs = [s for s in seqs if isinstance(s, int)]
    size = os.path.getsize(log)
    port = harness.free_port()
    config = write_config(tmp, "corpus", n.url, "lv-corpus", port)
    # seq is a long before the records that conflict with it arrive.
    req(f"{n.url}/lv-corpus", "PUT", {"settings": {"number_of_replicas": 0},
                                       "mappings": {"properties": {"seq": {"type": "long"}}}})
    p = start(args.binary, config, tmp, "corpus")
    harness.wait_for(lambda: count(n, "lv-corpus") > 40000 or p.poll() is not None, 120, 0.5)
    before = count(n, "lv-corpus")
    p.send_signal(signal.SIGKILL)
    p.wait()
    c.check("corpus: logveil killed with SIGKILL mid-run", 0 < before < len(seqs) + text,
            f"{before} documents when killed")
    p = start(args.binary, config, tmp, "corpus")
    done = wait_acked(port, size, p, 300)
    c.check("corpus: after the restart the checkpoint reaches the end of the file", done,
            f"acked {acked(port)} of {size}")
    stop(p)
    total = count(n, "lv-corpus")
    docs = scroll(n, "lv-corpus", ["seq", "message", "password", "planted"])
    got = [d["seq"] for d in docs if isinstance(d.get("seq"), int)]
    no_seq = sum(1 for d in docs if "seq" not in d)
    c.check("corpus: _count is every record once (200k + planted, less the 5 rejected)",
            total == len(seqs) + text, f"_count {total}, expected {len(seqs) + text}")
    c.check("corpus: every JSON record's seq exactly once (no duplicate after SIGKILL)",
            sorted(got) == sorted(seqs), f"{len(got)} seq values, {len(set(got))} distinct, "
            f"expected {len(seqs)}")
    c.check("corpus: every text line once", no_seq == text, f"{no_seq} != {text}")
    hits = req(f"{n.url}/lv-corpus/_search", "POST", {"query": {"query_string": {
        "query": " OR ".join(f'"{s}"' for s in PLANTED)}}})["hits"]["total"]["value"]
    planted = [d for d in docs if d.get("planted")]
    text_of = json.dumps(planted)
    c.check("corpus: no planted secret anywhere in the index",
            hits == 0 and len(planted) == len(PLANTED) and
            not any(s in text_of for s in PLANTED), f"{hits} hits; {text_of[:300]}")
    mapping = req(f"{n.url}/lv-corpus/_mapping")["lv-corpus"]["mappings"]["properties"]
    c.check("corpus: @timestamp is mapped as a date",
            mapping.get("@timestamp", {}).get("type") == "date", str(mapping.get("@timestamp")))
    dead = [json.loads(x) for x in open(os.path.join(tmp, "corpus.dead.jsonl"))]
    c.check("corpus: the 5 records conflicting with the mapping are dead-lettered with "
            "OpenSearch's 400 and reason",
            len(dead) == 5 and all(d["status"] == 400 and
                                   d["error"]["type"] == "mapper_parsing_exception" and
                                   "seq" in d["error"]["reason"] and d["record"]["conflict"]
                                   for d in dead), str(dead[:1])[:400])


def write_records(path, start, n, tag):
    with open(path, "ab") as f:
        for i in range(start, start + n):
            rec = {"level": "info", "seq": i, "tag": tag, "message": "x" * 200}
            f.write(f"2025-11-21T02:00:00.{i:09d}Z stdout F {json.dumps(rec)}\n".encode())


def rejected_writes(n):
    stats = req(f"{n.url}/_nodes/stats/thread_pool")
    return sum(v["thread_pool"]["write"]["rejected"] for v in stats["nodes"].values())


def scenario_pressure(c, args, n, tmp):
    req(f"{n.url}/lv-pressure", "PUT", {"settings": {"number_of_shards": 16,
                                                      "number_of_replicas": 0}})
    log = os.path.join(tmp, "pressure.log")
    write_records(log, 0, 40000, "pressure")
    port = harness.free_port()
    config = write_config(tmp, "pressure", n.url, "lv-pressure", port,
                          "    concurrency: 4\n    batch_max_records: 4000\n")
    before = rejected_writes(n)
    p = start(args.binary, config, tmp, "pressure")
    done = wait_acked(port, os.path.getsize(log), p, 180)
    stop(p)
    after = rejected_writes(n)
    seqs = [d["seq"] for d in scroll(n, "lv-pressure", ["seq"])]
    c.check("pressure: the node rejected writes (real per-item 429s)", after > before,
            f"write rejected {before} -> {after}")
    c.check("pressure: every record exactly once despite the 429s",
            done and sorted(seqs) == list(range(40000)), f"{len(seqs)} docs, "
            f"{len(set(seqs))} distinct")


def scenario_outage(c, args, n, tmp):
    log = os.path.join(tmp, "outage.log")
    write_records(log, 0, 20000, "outage")
    port = harness.free_port()
    config = write_config(tmp, "outage", n.url, "lv-outage", port)
    p = start(args.binary, config, tmp, "outage")
    harness.wait_for(lambda: count(n, "lv-outage") > 0 or p.poll() is not None, 60, 0.2)
    n.stop()
    down_at = acked(port)
    write_records(log, 20000, 20000, "outage")  # written while the node is down
    samples = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 20:
        samples.append(acked(port))
        time.sleep(1)
    n.start()
    done = wait_acked(port, os.path.getsize(log), p, 180)
    stop(p)
    seqs = [d["seq"] for d in scroll(n, "lv-outage", ["seq"])]
    c.check("outage: the checkpoint does not move while the node is down",
            all(s == down_at for s in samples[2:]), f"{down_at} then {samples}")
    c.check("outage: after 20 s down and a restart, every record exactly once",
            done and sorted(seqs) == list(range(40000)), f"{len(seqs)} docs, "
            f"{len(set(seqs))} distinct")


def main():
    args = harness.parser(__doc__).parse_args()
    c = harness.Checks()
    tmp = tempfile.mkdtemp(prefix="lv-os-test-")
    n = None
    try:
        n = osnode.Node(write_queue_size=4).start()
        c.check("a real OpenSearch 2.19 node answers",
                req(n.url)["version"]["number"].startswith("2.19"), n.url)
        for scenario in (scenario_corpus, scenario_pressure, scenario_outage):
            t = time.monotonic()
            try:
                scenario(c, args, n, tmp)
            except Exception as e:  # a failed check, never a hang
                c.check(f"{scenario.__name__} ran to the end", False, repr(e))
            print(f"     ({scenario.__name__}: {time.monotonic() - t:.0f} s)", flush=True)
    finally:
        if n:
            n.remove()
        if c.failed:
            for f in sorted(os.listdir(tmp)):
                if f.endswith(".stderr"):
                    print(f"--- {f}:\n" + open(os.path.join(tmp, f)).read()[-2000:])
        subprocess.run(["rm", "-rf", tmp])
    return c.report()


if __name__ == "__main__":
    sys.exit(main())
