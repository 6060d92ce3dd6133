#!/usr/bin/env python3
"""A real single-node Apache Kafka 4.1 broker (KRaft, no ZooKeeper) for the tests
and the benchmark.

The artifacts come from Maven Central: org.apache.kafka:kafka_2.13 with its
runtime dependencies (tests/kafka/pom.xml), copied by `mvn
dependency:copy-dependencies` into a cache outside the repository
($LOGVEIL_CACHE, default ~/.cache/logveil), once. A broker runs as one JVM
(kafka.Kafka) in combined broker+controller mode: heap capped, two loopback
ports picked at random (clients, controller), log dirs in a temporary
directory formatted with kafka.tools.StorageTool. Automatic topic creation
is off unless asked for; tests create their topics (kafka_tool create-topic).

  broker.py --prepare    fetch (what test.sh runs before ctest)
  broker.py              start a broker, print its bootstrap address, stop on Ctrl-C
"""
import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
VERSION = "4.1.1"
HEAP = "384m"


def cache_dir():
    base = os.environ.get("LOGVEIL_CACHE") or os.path.expanduser("~/.cache/logveil")
    return os.path.join(base, f"kafka-{VERSION}")


def prepare(quiet=True):
    """The classpath of a broker, fetching what is missing."""
    lib = os.path.join(cache_dir(), "lib")
    marker = os.path.join(lib, ".complete")
    if not os.path.exists(marker):
        os.makedirs(lib, exist_ok=True)
        subprocess.run(["mvn", "-q", "-B", "-f", os.path.join(HERE, "pom.xml"),
                        "dependency:copy-dependencies", "-DincludeScope=runtime",
                        f"-DoutputDirectory={lib}"],
                       check=True, stdout=subprocess.DEVNULL if quiet else None)
        open(marker, "w").close()
    return os.path.join(lib, "*")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class Broker:
    """One broker; stop()/kill() and start() again keep its data and ports."""

    def __init__(self, auto_create=False, home=None, partitions=3):
        self.classpath = prepare()
        self.home = home or tempfile.mkdtemp(prefix="lv-kafka-")
        self.port, self.cport = free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.proc = None
        self.config = os.path.join(self.home, "server.properties")
        with open(self.config, "w") as f:
            f.write(f"""process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{self.cport}
listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.cport}
advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={self.home}/data
num.partitions={partitions}
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable={'true' if auto_create else 'false'}
""")
        cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        subprocess.run(["java", "-Xmx128m", "-cp", self.classpath, "kafka.tools.StorageTool",
                        "format", "-t", cluster, "-c", self.config],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self, timeout=90):
        log = open(os.path.join(self.home, "broker.log"), "ab")
        self.proc = subprocess.Popen(
            ["java", f"-Xms{HEAP}", f"-Xmx{HEAP}", "-XX:+UseSerialGC", "-Xss1m",
             "-XX:TieredStopAtLevel=1", "-cp", self.classpath, "kafka.Kafka", self.config],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Kafka exited with {self.proc.returncode}; see "
                                   f"{self.home}/broker.log")
            if answers(self.port) and self.metadata_ok():
                return self
            time.sleep(0.3)
        raise RuntimeError(f"Kafka did not answer in {timeout} s")

    def metadata_ok(self):
        r = subprocess.run(["kcat", "-b", self.bootstrap, "-L", "-m", "3"],
                           capture_output=True, timeout=20)
        return r.returncode == 0 and b"1 brokers" in r.stdout

    def kill(self):
        """SIGKILL: no clean shutdown."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

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
        print(f"Kafka {VERSION} ready in {cache_dir()}")
        return 0
    broker = Broker(auto_create="--auto-create" in sys.argv).start()
    print(broker.bootstrap, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        broker.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main())
