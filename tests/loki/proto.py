#!/usr/bin/env python3
"""Loki's official push schema and real decoders, for the fake Loki.

Fetched by name, pinned, into a cache outside the repository
($LOGVEIL_CACHE, default ~/.cache/logveil, then loki-proto/<pins>), once:
- push.proto from the Go module github.com/grafana/loki/pkg/push (its own
  LICENSE: Apache 2.0; only the .proto is read), and gogoproto/gogo.proto
  from github.com/gogo/protobuf, which it imports, both from the Go module
  proxy; each zip's sha256 is checked;
- a venv (python3 -m venv) with grpcio-tools (protoc), protobuf and cramjam
  (snappy) from PyPI, pinned, wheels only; the system Python is untouched;
- push_pb2.py and gogoproto/gogo_pb2.py compiled there by grpc_tools.protoc
  (google/protobuf/timestamp.proto and descriptor.proto are the ones
  bundled with grpcio-tools).
A second run finds the .complete marker and returns at once. Runs at the
same time wait on a lock; a failed run leaves nothing half-made behind.

  proto.py --prepare     fetch and compile (what test.sh runs before ctest)
  proto.py --python      the venv's python (after --prepare)

From Python: python() prepares when needed and returns the venv's python,
the interpreter to start tests/fakes/fake_loki.py with; gen_dir() is where
the compiled modules are.
"""
import fcntl
import hashlib
import io
import os
import shutil
import subprocess
import sys
import urllib.request
import zipfile

GOPROXY = "https://proxy.golang.org"
# (module, version, sha256 of the proxy's zip, {path in module: path in src/})
MODULES = [
    ("github.com/grafana/loki/pkg/push", "v0.0.0-20250630054201-94c0ba7b0952",
     "8967ce219ee3a5f0ca2af4d2247a4063ee6eb46a872af02f391ad4e302fca198",
     {"push.proto": "push.proto", "LICENSE": "LICENSE.loki-pkg-push"}),
    ("github.com/gogo/protobuf", "v1.3.2",
     "dd2b73f163c8183941626360196c8f844addd95423d341a0412e1b22d0104ff7",
     {"gogoproto/gogo.proto": "gogoproto/gogo.proto", "LICENSE": "LICENSE.gogo-protobuf"}),
]
# grpcio-tools brings grpcio, protobuf and setuptools; grpcio typing_extensions.
PACKAGES = ["grpcio-tools==1.85.4", "grpcio==1.85.4", "protobuf==7.36.2", "cramjam==2.14.0",
            "setuptools==84.2.1", "typing_extensions==4.16.0"]
# The cache's name: any change of a pin above makes a new one.
PINS = "push-94c0ba7b0952.protobuf-7.36.2.cramjam-2.14.0." + hashlib.sha256(
    repr((MODULES, PACKAGES)).encode()).hexdigest()[:12]


def cache_dir():
    base = os.environ.get("LOGVEIL_CACHE") or os.path.expanduser("~/.cache/logveil")
    return os.path.join(base, "loki-proto", PINS)


def gen_dir():
    return os.path.join(cache_dir(), "gen")


def venv_dir():
    return os.path.join(cache_dir(), "venv")


def venv_python():
    return os.path.join(venv_dir(), "bin", "python")


def ready():
    try:
        with open(os.path.join(cache_dir(), ".complete")) as f:
            return f.read().strip() == PINS and os.path.exists(venv_python())
    except OSError:
        return False


def fetch_module(module, version, sha256, files, src):
    url = f"{GOPROXY}/{module}/@v/{version}.zip"
    with urllib.request.urlopen(url, timeout=60) as r:
        data = r.read()
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise RuntimeError(f"{url}: sha256 {got}, expected {sha256}")
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for inside, dest in files.items():
            out = os.path.join(src, dest)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with open(out, "wb") as f:
                f.write(z.read(f"{module}@{version}/{inside}"))


def run(cmd, quiet):
    r = subprocess.run(cmd, stdout=subprocess.PIPE if quiet else None,
                       stderr=subprocess.STDOUT if quiet else None)
    if r.returncode:
        out = r.stdout.decode(errors="replace")[-2000:] if quiet else ""
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}\n{out}")


SELF_CHECK = r"""
import sys
sys.path.insert(0, sys.argv[1])
import cramjam, push_pb2
req = push_pb2.PushRequest()
e = req.streams.add(labels='{a="b"}').entries.add(line="x")
e.timestamp.seconds = 1
body = bytes(cramjam.snappy.compress_raw(req.SerializeToString()))
back = push_pb2.PushRequest.FromString(bytes(cramjam.snappy.decompress_raw(body)))
assert back == req, back
"""


def build(dest, quiet):
    src, gen = os.path.join(dest, "src"), os.path.join(dest, "gen")
    os.makedirs(gen)
    for m in MODULES:
        fetch_module(*m, src)
    run([sys.executable, "-m", "venv", os.path.join(dest, "venv")], quiet)
    py = os.path.join(dest, "venv", "bin", "python")
    run([py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--only-binary=:all:", *PACKAGES], quiet)
    include = subprocess.run(
        [py, "-c", "import grpc_tools, os; "
         "print(os.path.join(os.path.dirname(grpc_tools.__file__), '_proto'))"],
        check=True, capture_output=True, text=True).stdout.strip()
    run([py, "-m", "grpc_tools.protoc", "-I", src, "-I", include, f"--python_out={gen}",
         os.path.join(src, "push.proto"), os.path.join(src, "gogoproto", "gogo.proto")], quiet)
    run([py, "-c", SELF_CHECK, gen], quiet)
    with open(os.path.join(dest, ".complete"), "w") as f:
        f.write(PINS + "\n")


def prepare(quiet=True):
    """The venv's python, fetching and compiling what is missing; raises
    RuntimeError (or OSError) saying what failed."""
    final = cache_dir()
    if ready():
        return venv_python()
    parent = os.path.dirname(final)
    os.makedirs(parent, exist_ok=True)
    with open(os.path.join(parent, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready():
            return venv_python()
        shutil.rmtree(final, ignore_errors=True)
        # The venv is made in place (its scripts name their own path), so a
        # failure removes the directory rather than renaming a finished one.
        try:
            build(final, quiet)
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)
            raise
    return venv_python()


def python():
    """The interpreter to start fake_loki.py with (prepared if needed)."""
    try:
        return prepare()
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        raise RuntimeError(f"the fake Loki's decoders could not be prepared (tests/loki/"
                           f"proto.py --prepare, needs PyPI and proxy.golang.org): {e}") from e


def main():
    if sys.argv[1:] == ["--prepare"]:
        try:
            print(prepare(quiet=True))
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            print(f"proto.py: preparation failed: {e}", file=sys.stderr)
            return 1
        return 0
    if sys.argv[1:] == ["--python"]:
        if not ready():
            print("proto.py: not prepared; run tests/loki/proto.py --prepare", file=sys.stderr)
            return 1
        print(venv_python())
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
