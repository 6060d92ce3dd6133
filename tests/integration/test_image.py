#!/usr/bin/env python3
"""The Dockerfile, checked without a container engine.

- Its runtime stage installs a package for every shared library the binary
  needs: each library `ldd` lists, and each one the sources dlopen()
  (libcurl, libsnappy), is mapped to its Debian package with `dpkg -S`; the
  libraries the binary names itself (DT_NEEDED) and the dlopen()ed ones must
  be listed, the others (their dependencies) in the listed packages'
  dependency closure (`apt-cache depends --recurse`). No -dev package and no
  package that provides none of them, but ca-certificates, is installed.
- The runtime stage is Debian bookworm-slim, runs as a numeric non-root
  user (the chart's runAsUser), and its entrypoint is the binary.
- The version agrees everywhere: CMakeLists.txt, the Dockerfile's
  LOGVEIL_VERSION, `logveil --version`, the chart's appVersion and the image
  tag `helm template` renders.
- The build stage copies enough of the tree to configure the project.

Usage: test_image.py --binary PATH --source REPO
"""
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "helm"))
import harness  # noqa: E402
import tools  # noqa: E402

TIMEOUT = 60
# In every Debian image already (Essential: yes); apt-get never removes it.
BASE_PACKAGES = ["libc6"]


def read(path):
    with open(path) as f:
        return f.read()


def dockerfile(source):
    """Instructions (keyword, argument) with continuation lines joined."""
    text = re.sub(r"\\\n", " ", read(os.path.join(source, "Dockerfile")))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            kw, _, arg = line.partition(" ")
            out.append((kw.upper(), arg.strip()))
    return out


def stages(instrs):
    """[(FROM argument, [instructions])], and the global ARGs before the first FROM."""
    glob, out = [], []
    for kw, arg in instrs:
        if kw == "FROM":
            out.append((arg, []))
        elif out:
            out[-1][1].append((kw, arg))
        else:
            glob.append((kw, arg))
    return glob, out


def arg_default(instrs, name):
    for kw, arg in instrs:
        m = re.match(rf'{name}="?([^"]*)"?$', arg) if kw == "ARG" else None
        if m:
            return m.group(1)
    return None


def package_of(path):
    """The Debian package holding a library file (usrmerge: try the real path,
    the path as given, then the name)."""
    for cand in (os.path.realpath(path), path, "/usr" + path, "*/" + os.path.basename(path)):
        r = subprocess.run(["dpkg", "-S", cand], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":", 1)[0].strip()
    return None


def needed_libs(binary, source):
    """{soname: path} for ldd's list and for the dlopen()ed libraries, and the
    set of sonames the binary itself needs or loads."""
    libs = {}
    for line in subprocess.run(["ldd", binary], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        m = re.match(r"\s*(\S+)\s+=>\s+(\S+)", line) or re.match(r"\s*(/\S+)\s+\(", line)
        if m:
            libs[os.path.basename(m.group(1))] = m.group(2) if m.lastindex == 2 else m.group(1)
    direct = set(re.findall(r"\(NEEDED\).*\[(.+)\]", subprocess.run(
        ["readelf", "-d", binary], capture_output=True, text=True, check=True).stdout))
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    for root, _, files in os.walk(source):
        if not root.startswith((os.path.join(source, "sidecar"), os.path.join(source, "filters"))):
            continue
        for f in files:
            if f.endswith(".c"):
                for so in re.findall(r'dlopen\("([^"]+)"', read(os.path.join(root, f))):
                    m = re.search(rf"^\s*{re.escape(so)} \(.*x86-64.*\) => (\S+)", cache, re.M) or \
                        re.search(rf"^\s*{re.escape(so)} .*=> (\S+)", cache, re.M)
                    libs[so] = m.group(1) if m else None
                    direct.add(so)
    return libs, direct


def closure(packages):
    r = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                        "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances",
                        *packages], capture_output=True, text=True, timeout=TIMEOUT)
    return {line.strip().split(":")[0] for line in r.stdout.splitlines()
            if line and not line.startswith(" ")}, r


def check_libraries(c, args, runtime, runtime_pkgs):
    libs, direct = needed_libs(args.binary, args.source)
    c.check("ldd and the sources name libraries", len(libs) > 5, str(libs))
    pkg = {}
    for so, path in sorted(libs.items()):
        p = package_of(path) if path else None
        c.check(f"{so} belongs to a Debian package", p is not None, str(path))
        pkg[so] = p
    listed = set(runtime_pkgs) | set(BASE_PACKAGES)
    for so in sorted(direct):
        c.check(f"runtime stage installs {pkg.get(so)} for {so}", pkg.get(so) in listed,
                f"RUNTIME_PACKAGES: {' '.join(runtime_pkgs)}")
    have, r = closure(runtime_pkgs + BASE_PACKAGES)
    if not c.check("apt-cache resolves the runtime packages' dependencies",
                   r.returncode == 0 and listed <= have, r.stderr[-300:]):
        return
    missing = {so: p for so, p in pkg.items() if p and p not in have}
    c.check("every library ldd lists is installed in the runtime stage (listed or a dependency)",
            not missing, str(missing))
    useful = set(pkg.values()) | {"ca-certificates"}
    c.check("runtime stage: no -dev package, none that provides no needed library",
            runtime_pkgs and not [p for p in runtime_pkgs if p.endswith("-dev") or p not in useful],
            str([p for p in runtime_pkgs if p not in useful]))
    c.check("runtime stage: ca-certificates for TLS to the sinks", "ca-certificates" in listed)


def check_runtime_stage(c, runtime_from, runtime):
    c.check("runtime stage is Debian bookworm-slim", runtime_from.split()[0] == "debian:bookworm-slim",
            runtime_from)
    users = [a for k, a in runtime if k == "USER"]
    uid = users[-1].split(":")[0] if users else ""
    c.check("runtime stage runs as a numeric non-root user", uid.isdigit() and int(uid) > 0, str(users))
    copies = [a for k, a in runtime if k == "COPY"]
    c.check("runtime stage copies the binary only, from the build stage",
            copies == ["--from=build /src/build/logveil /usr/local/bin/logveil"], str(copies))
    entry = [a for k, a in runtime if k == "ENTRYPOINT"]
    c.check("entrypoint is the binary", entry == ['["/usr/local/bin/logveil"]'], str(entry))
    return int(uid) if uid.isdigit() else None


def check_versions(c, args, glob, uid):
    cmake = re.search(r"project\(logveil VERSION ([0-9.]+)", read(os.path.join(args.source, "CMakeLists.txt")))
    cmake = cmake.group(1) if cmake else None
    docker = arg_default(glob, "LOGVEIL_VERSION")
    binary = subprocess.run([args.binary, "--version"], capture_output=True, text=True).stdout.strip()
    chart_dir = os.path.join(args.source, "helm", "logveil")
    app = re.search(r'^appVersion:\s*"?([^"\s]+)"?', read(os.path.join(chart_dir, "Chart.yaml")), re.M)
    app = app.group(1) if app else None
    c.check("one version: CMakeLists.txt, Dockerfile, logveil --version, Chart appVersion",
            cmake and cmake == docker == app and binary == f"logveil {cmake}",
            f"cmake {cmake}, Dockerfile {docker}, binary '{binary}', chart {app}")
    try:
        helm = tools.prepare()["helm"]
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        c.check("helm is available (tests/helm/tools.py --prepare)", False, str(e))
        return
    r = subprocess.run([helm, "template", "t", chart_dir], capture_output=True, text=True, timeout=TIMEOUT)
    images = set(re.findall(r"^\s+image: (\S*logveil\S*)$", r.stdout, re.M))
    c.check("the chart's image tag is the version the Dockerfile builds",
            r.returncode == 0 and images == {f"logveil:{docker}"}, f"{images} {r.stderr[-200:]}")
    run_as = set(re.findall(r"runAsUser: (\d+)", r.stdout))
    c.check("the chart runs logveil as the image's user", str(uid) in run_as, str(run_as))
    cmd = re.search(r'args: \["run", "--config", "([^"]+)"', r.stdout)
    c.check("the chart's config path is the image's default",
            cmd and f'"{cmd.group(1)}"' in read(os.path.join(args.source, "Dockerfile")))


def check_build_context(c, args, build, tmp):
    """The build stage's COPY lines give a tree CMake can configure without tests."""
    tree = os.path.join(tmp, "src")
    os.makedirs(tree)
    for kw, arg in build:
        if kw == "COPY":
            src, dest = arg.split()[:2]
            target = os.path.join(tree, dest if dest not in ("./", ".") else "")
            path = os.path.join(args.source, src)
            if os.path.isdir(path):
                shutil.copytree(path, target)
            else:
                shutil.copy(path, target)
    r = subprocess.run(["cmake", "-S", tree, "-B", os.path.join(tmp, "b"), "-DCMAKE_BUILD_TYPE=Release",
                        "-DLOGVEIL_TESTS=OFF"], capture_output=True, text=True, timeout=TIMEOUT)
    c.check("the build stage's sources configure (cmake, tests off)", r.returncode == 0,
            (r.stdout + r.stderr)[-500:])
    dev = " ".join(a for k, a in build if k == "RUN")
    c.check("the build stage builds Release and checks the version",
            "-DCMAKE_BUILD_TYPE=Release" in dev and "--version" in dev and "LOGVEIL_VERSION" in dev)


def main():
    args = harness.parser(__doc__).parse_args()
    c = harness.Checks(show_ok=False)
    instrs = dockerfile(args.source)
    glob, st = stages(instrs)
    if not c.check("Dockerfile has a build and a runtime stage",
                   len(st) == 2 and st[0][0].endswith(" AS build"), str([s[0] for s in st])):
        return c.report()
    (build_from, build), (runtime_from, runtime) = st
    runtime_pkgs = (arg_default(runtime, "RUNTIME_PACKAGES") or "").split()
    c.check("runtime stage installs RUNTIME_PACKAGES without recommends",
            any(k == "RUN" and "--no-install-recommends ${RUNTIME_PACKAGES}" in a for k, a in runtime))
    check_libraries(c, args, runtime, runtime_pkgs)
    uid = check_runtime_stage(c, runtime_from, runtime)
    check_versions(c, args, glob, uid)
    harness.run_in_tmp(c, "lv-image-", lambda tmp: check_build_context(c, args, build, tmp))
    return c.report()


if __name__ == "__main__":
    sys.exit(main())
