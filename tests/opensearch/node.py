#!/usr/bin/env python3
"""A real single-node OpenSearch 2.19 for the tests and the benchmark.

The artifacts come from Maven Central: org.opensearch:opensearch and
org.opensearch.plugin:transport-netty4-client with their dependencies
(tests/opensearch/pom.xml), copied by `mvn dependency:copy-dependencies`
into a cache outside the repository ($LOGVEIL_CACHE, default
~/.cache/logveil), once. LogveilNode.java, compiled there too, starts the
node in one JVM the way OpenSearch's test framework does (the server's Node
with Netty4Plugin as a classpath plugin): heap capped, a loopback port
picked at random, data in a temporary directory.

  node.py --prepare      fetch and compile (what test.sh runs before ctest)
  node.py                start a node, print its URL, stop it on Ctrl-C
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
VERSION = "2.19.1"
HEAP = "384m"


def cache_dir():
    base = os.environ.get("LOGVEIL_CACHE") or os.path.expanduser("~/.cache/logveil")
    return os.path.join(base, f"opensearch-{VERSION}")


def prepare(quiet=True):
    """The classpath of a node, fetching and compiling what is missing."""
    cache = cache_dir()
    lib, classes = os.path.join(cache, "lib"), os.path.join(cache, "classes")
    marker = os.path.join(lib, ".complete")
    if not os.path.exists(marker):
        os.makedirs(lib, exist_ok=True)
        subprocess.run(["mvn", "-q", "-B", "-f", os.path.join(HERE, "pom.xml"),
                        "dependency:copy-dependencies", f"-DoutputDirectory={lib}"],
                       check=True, stdout=subprocess.DEVNULL if quiet else None)
        open(marker, "w").close()
    src = os.path.join(HERE, "LogveilNode.java")
    cls = os.path.join(classes, "LogveilNode.class")
    if not os.path.exists(cls) or os.path.getmtime(cls) < os.path.getmtime(src):
        os.makedirs(classes, exist_ok=True)
        subprocess.run(["javac", "-d", classes, "-cp", os.path.join(lib, "*"), src], check=True)
    return os.path.join(lib, "*") + ":" + classes


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """One node; start() and stop() may be called again (same data)."""

    def __init__(self, write_queue_size=10000, home=None):
        self.classpath = prepare()
        self.home = home or tempfile.mkdtemp(prefix="lv-opensearch-")
        self.port = free_port()
        self.queue = write_queue_size
        self.proc = None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, timeout=120):
        log = open(os.path.join(self.home, "node.log"), "ab")
        self.proc = subprocess.Popen(
            ["java", f"-Xms{HEAP}", f"-Xmx{HEAP}", "-XX:+UseSerialGC", "-Xss1m",
             "-Dlog4j2.disable.jmx=true", "-cp", self.classpath, "LogveilNode", self.home,
             str(self.port), str(self.queue)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"OpenSearch exited with {self.proc.returncode}; see "
                                   f"{self.home}/node.log")
            try:
                with urllib.request.urlopen(self.url + "/_cluster/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"OpenSearch did not answer in {timeout} s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def remove(self):
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


def main():
    if "--prepare" in sys.argv:
        prepare(quiet=False)
        print(f"OpenSearch {VERSION} ready in {cache_dir()}")
        return 0
    node = Node().start()
    print(node.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        node.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main())
