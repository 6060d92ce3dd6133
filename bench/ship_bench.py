#!/usr/bin/env python3
"""Benchmark of the shipping outputs: the 1M-record CRI corpus tailed (as in
tail_bench.py) into the fake Elasticsearch and the fake Loki on loopback
(tests/fakes/, in --minimal mode: they decompress and answer, nothing else),
into a real single-node OpenSearch 2.19 (tests/opensearch/node.py), into a
real single-node Kafka 4.1 broker (tests/kafka/broker.py, topics created on
first use) and into librdkafka's mock cluster (3 brokers in another
process, tests/kafka/kafka_tool.c built here with cc), against the file
output on /dev/null as the reference. Kafka runs with the output's
defaults (idempotence, acks=all, lz4, a 16 MiB queue); kafka-mock-none is
the mock cluster without compression, to show what lz4 costs.

A run ends when /metrics shows every record delivered (or rejected); wall
time, logveil's CPU seconds (from /proc) and its peak RSS (VmHWM) are taken
then, and the requests the sink received. Medians of RUNS (peak RSS: the
largest), runs round-robin across the sinks. Each OpenSearch run writes a
fresh index, so no run is helped by the _id of an earlier one.

Every sink runs with buffer.max_bytes 8MiB (the default, 64MiB, lets the
tail read that far ahead of a sink slower than /dev/null, and RSS follows).

Targets (issue 8): MB per CPU-second at least 80% of the file output's;
peak RSS at most 24 MiB. Issue 9 (Kafka): at least 70%, and peak RSS at
most 24 MiB plus librdkafka's queue (queue.buffering.max.kbytes, 16 MiB).

  bench/ship_bench.py [--records N] [--runs 3]
                      [--sinks file,es,es-nogzip,loki,opensearch,kafka,kafka-mock,kafka-mock-none]
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "opensearch"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "kafka"))
from filter_bench import REPO, corpus  # noqa: E402
from tail_bench import free_port, proc_stats, scrape  # noqa: E402


class Fake:
    def __init__(self, script, tmp):
        pf = os.path.join(tmp, script + ".port")
        self.proc = subprocess.Popen([sys.executable, os.path.join(REPO, "tests", "fakes", script),
                                      "--port-file", pf, "--minimal"])
        while not os.path.exists(pf):
            time.sleep(0.05)
        self.url = "http://127.0.0.1:" + open(pf).read()
        self.stats = self.url + ("/_fake/stats" if "es" in script else "/loki/api/v1/fake/stats")

    def requests(self):
        with urllib.request.urlopen(self.stats, timeout=10) as r:
            s = json.loads(r.read())
        return s.get("requests", s.get("pushes"))

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class MockCluster:
    """librdkafka's mock cluster, 3 brokers, in a process of its own."""

    def __init__(self, tmp):
        tool = os.path.join(tmp, "kafka_tool")
        subprocess.run(["cc", "-O2", "-D_GNU_SOURCE", "-o", tool,
                        os.path.join(REPO, "tests", "kafka", "kafka_tool.c"), "-lrdkafka"],
                       check=True)
        self.proc = subprocess.Popen([tool, "mock", "3"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()

    def topic(self, name):
        self.proc.stdin.write("topic %s 4\n" % name)
        self.proc.stdin.flush()
        if self.proc.stdout.readline().strip() != "ok":
            sys.exit("mock cluster: cannot create topic " + name)

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait()


def output_yaml(sink, url, run):
    if sink == "file":
        return "  - {type: file, path: /dev/null}\n"
    if sink in ("es", "es-nogzip", "opensearch"):
        return ("  - type: elasticsearch\n    url: %s\n    index: bench-%d\n%s"
                % (url, run, "    gzip: false\n" if sink == "es-nogzip" else ""))
    if sink.startswith("kafka"):
        return ("  - type: kafka\n    brokers: \"%s\"\n    topic: bench-%d\n%s"
                % (url, run, "    properties: {compression.type: none}\n"
                   if sink.endswith("-none") else ""))
    return ("  - type: loki\n    url: %s\n"
            "    labels: [environment, kubernetes.namespace, log.level]\n" % url)


def one_run(binary, path, records, sink, url, run):
    tmp = tempfile.mkdtemp(prefix="lv-shipbench-")
    try:
        logdir = os.path.join(tmp, "logs")
        os.mkdir(logdir)
        # A hard link (or a copy): tail confinement refuses a symlink whose
        # target is outside the input's roots, as bench/corpus's is.
        if os.stat(path).st_dev == os.stat(tmp).st_dev:
            os.link(path, os.path.join(logdir, "0.log"))
        else:
            shutil.copy(path, os.path.join(logdir, "0.log"))
        port = free_port()
        cfg = os.path.join(tmp, "bench.yaml")
        with open(cfg, "w") as f:
            f.write("environment: development\nlog_level: error\n"
                    "inputs: [{type: tail, paths: [\"%s/*.log\"], format: cri, checkpoint: %s/ckpt}]\n"
                    "admin: {listen: \"127.0.0.1:%d\"}\nbuffer: {max_bytes: 8MiB}\noutputs:\n%s"
                    % (logdir, tmp, port, output_yaml(sink, url, run)))
        t0 = time.perf_counter()
        proc = subprocess.Popen([binary, "run", "--config", cfg], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        wall = None
        deadline = time.time() + 900
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
            try:
                m = scrape(port)
            except OSError:
                continue
            done = sum(v for k, v in m.items() if k.startswith("logveil_output_records_total"))
            done += sum(v for k, v in m.items()
                        if k.startswith('logveil_records_dropped_total{reason="rejected"'))
            if done >= records:
                wall = time.perf_counter() - t0
                break
        cpu, hwm = proc_stats(proc.pid)
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=60)[1].decode()
        if wall is None:
            sys.exit("%s: not finished within 900 s: %s" % (sink, err[-500:]))
        return wall, cpu, hwm
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(REPO, "build-release", "logveil"))
    ap.add_argument("--records", type=int, default=1000000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sinks", default="file,es,es-nogzip,loki,opensearch")
    a = ap.parse_args()
    build = os.path.dirname(a.binary)
    if not os.path.exists(os.path.join(build, "CMakeCache.txt")):
        subprocess.run(["cmake", "-S", REPO, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
                        "-DLOGVEIL_TESTS=OFF"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", build, "--target", "logveil", "-j2"], check=True,
                   stdout=subprocess.DEVNULL)
    path = corpus("cri", a.records)
    mb = os.path.getsize(path) / 1e6
    sinks = a.sinks.split(",")
    tmp = tempfile.mkdtemp(prefix="lv-shipbench-sinks-")
    fakes, urls, node, broker, mock = {}, {"file": None}, None, None, None
    try:
        for s in sinks:
            if s in ("es", "es-nogzip") and "es" not in fakes:
                fakes["es"] = Fake("fake_es.py", tmp)
            if s == "loki":
                fakes["loki"] = Fake("fake_loki.py", tmp)
        urls.update({"es": fakes.get("es") and fakes["es"].url,
                     "es-nogzip": fakes.get("es") and fakes["es"].url,
                     "loki": fakes.get("loki") and fakes["loki"].url})
        if "opensearch" in sinks:
            import node as osnode
            node = osnode.Node().start()
            urls["opensearch"] = node.url
        if "kafka" in sinks:
            import broker as kbroker
            broker = kbroker.Broker(auto_create=True).start()
            urls["kafka"] = broker.bootstrap
        if "kafka-mock" in sinks or "kafka-mock-none" in sinks:
            mock = MockCluster(tmp)
            urls["kafka-mock"] = urls["kafka-mock-none"] = mock.url
            for run in range(a.runs):
                mock.topic("bench-%d" % run)  # both mock sinks write to it: counts are by metrics
        results = {s: [] for s in sinks}
        requests = {s: [] for s in sinks}
        for run in range(a.runs):
            for s in sinks:
                fake = fakes.get("es" if s.startswith("es") else s)
                before = fake.requests() if fake else 0
                results[s].append(one_run(a.binary, path, a.records, s, urls[s], run))
                requests[s].append(fake.requests() - before if fake else None)
                print("  %s run %d: %.1f s, %.1f CPU s" % (s, run, results[s][-1][0],
                                                          results[s][-1][1]), file=sys.stderr)
        print("| sink | wall s | records/s | MB/s | CPU s | MB per CPU-s | vs file | "
              "peak RSS MiB | requests |")
        print("|---|---|---|---|---|---|---|---|---|")
        ref = None
        for s in sinks:
            wall = statistics.median(r[0] for r in results[s])
            cpu = statistics.median(r[1] for r in results[s])
            rss = max(r[2] for r in results[s]) / 1024
            eff = mb / cpu
            ref = ref or (eff if s == "file" else None)
            req = requests[s][0]
            print("| %s | %.2f | %.0f | %.1f | %.2f | %.1f | %s | %.1f | %s |"
                  % (s, wall, a.records / wall, mb / wall, cpu, eff,
                     "%.0f%%" % (100 * eff / ref) if ref else "-", rss,
                     req if req is not None else "-"))
    finally:
        for f in fakes.values():
            f.stop()
        if node:
            node.remove()
        if broker:
            broker.remove()
        if mock:
            mock.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
