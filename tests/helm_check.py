"""Offline checks of the Helm chart: lint, render with the default values and with each
documented variant, validate every rendered manifest against the Kubernetes schemas
(kubernetes-validate --strict) and the Prometheus Operator's objects against its CRD
schemas (tests/node/validate-monitoring.mjs), check that bad values are refused by
values.schema.json or the templates, that the caskade configuration the chart renders
passes `caskade --check-config`, and that an application chart depending on caskade
(tests/helm/parent-app) gets a pod whose every ConfigMap, Secret and claim exists.

Run by tests/e2e_helm.rs as: python3 tests/helm_check.py CHART_DIR CASKADE_BINARY
"""
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import helm_python
import yaml

CHART, CASKADE = sys.argv[1], sys.argv[2]
KUBE = "1.30.0"
failures = []
passed = 0


def check(name, ok, detail=""):
    global passed
    if ok:
        passed += 1
    else:
        failures.append(f"{name}: {detail}")
        print(f"FAIL {name}: {detail}")


ROOT = Path(__file__).resolve().parent.parent
MONITORING = "monitoring.coreos.com/v1"


def render(values, chart=CHART):
    loaded = helm_python.Chart.load(chart)
    return loaded.render(values, name="demo", namespace="caskade")


def manifests(out):
    docs = []
    for path, text in out.items():
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append(doc)
    return docs


def validate(name, docs, kube=KUBE):
    crds = [d for d in docs if d.get("apiVersion") == MONITORING]
    if crds:
        r = subprocess.run(
            ["node", str(ROOT / "tests/node/validate-monitoring.mjs")],
            input=json.dumps(crds),
            capture_output=True,
            text=True,
        )
        check(f"{name}: monitoring objects valid for their CRD schemas", r.returncode == 0, r.stdout + r.stderr)
    docs = [d for d in docs if d.get("apiVersion") != MONITORING]
    with tempfile.TemporaryDirectory() as d:
        files = []
        for i, doc in enumerate(docs):
            f = Path(d) / f"{i}-{doc['kind']}.yaml"
            f.write_text(yaml.safe_dump(doc))
            files.append(str(f))
        r = subprocess.run(
            ["kubernetes-validate", "--strict", "-k", kube, *files],
            capture_output=True,
            text=True,
        )
        check(f"{name}: manifests valid for Kubernetes {kube}", r.returncode == 0, r.stdout + r.stderr)


def check_config(name, docs):
    cms = [d for d in docs if d["kind"] == "ConfigMap" and "caskade.yaml" in d.get("data", {})]
    check(f"{name}: one caskade ConfigMap", len(cms) == 1, str(len(cms)))
    if not cms:
        return
    # --check-config loads every plugin: the image's example plugins are the ones
    # plugins/build.sh built here.
    text = cms[0]["data"]["caskade.yaml"].replace("/usr/share/caskade/plugins/", str(ROOT / "target/plugins") + "/")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write(text)
        f.flush()
        r = subprocess.run([CASKADE, "--check-config", f.name], capture_output=True, text=True)
        check(f"{name}: caskade --check-config accepts the rendered config", r.returncode == 0, r.stderr)


def pod_spec(docs):
    dep = [d for d in docs if d["kind"] == "Deployment"]
    return dep[0]["spec"]["template"]["spec"] if dep else None


def containers(spec):
    return {c["name"]: c for c in spec.get("containers", []) + spec.get("initContainers", [])}


def variant(name, values, kube=KUBE, expect=None, chart=CHART):
    try:
        out = render(values, chart)
    except helm_python.HelmError as e:
        check(f"{name}: renders", False, str(e))
        return
    docs = manifests(out)
    validate(name, docs, kube)
    check_config(name, docs)
    spec = pod_spec(docs)
    if spec is not None:
        references_exist(name, docs, spec, values)
        cask = containers(spec).get("caskade")
        check(f"{name}: caskade container present", cask is not None)
        if cask:
            sc = cask["securityContext"]
            hardened = (
                sc.get("runAsNonRoot") is True
                and sc.get("readOnlyRootFilesystem") is True
                and sc.get("allowPrivilegeEscalation") is False
                and sc.get("seccompProfile", {}).get("type") == "RuntimeDefault"
                and sc.get("capabilities", {}).get("drop") == ["ALL"]
            )
            check(f"{name}: hardened securityContext", hardened, str(sc))
            probes = {p: probe_target(cask.get(p, {})) for p in ("livenessProbe", "readinessProbe", "startupProbe")}
            check(f"{name}: probes on the admin port", set(probes.values()) == {"caskade-admin"}, str(probes))
        ann = [d for d in docs if d["kind"] == "Deployment"][0]["spec"]["template"]["metadata"]["annotations"]
        loopback = values.get("caskade", values).get("admin", {}).get("bind") == "127.0.0.1"
        check(f"{name}: prometheus annotations", (ann.get("prometheus.io/scrape") == "true") != loopback, str(ann))
        check(f"{name}: config checksum annotation", "checksum/caskade-config" in ann, str(ann))
    if expect:
        try:
            expect(docs, spec)
            check(f"{name}: variant-specific expectations", True)
        except AssertionError as e:
            check(f"{name}: variant-specific expectations", False, str(e))


def probe_target(probe):
    """The admin port an HTTP probe asks, or the one `caskade probe --addr` asks."""
    if "httpGet" in probe:
        return probe["httpGet"]["port"]
    cmd = probe.get("exec", {}).get("command", [])
    if cmd[:2] == ["/usr/local/bin/caskade", "probe"] and "--addr" in cmd:
        return "caskade-admin" if cmd[cmd.index("--addr") + 1].startswith("127.0.0.1:") else cmd
    return str(probe)


def references_exist(name, docs, spec, values):
    """Every ConfigMap, Secret and claim the pod refers to is rendered (or is the user's
    own existing Secret or claim)."""
    have = {(d["kind"], d["metadata"]["name"]) for d in docs}
    v = values.get("caskade", values)
    external = {
        ("Secret", v.get("auth", {}).get("existingSecret")),
        ("PersistentVolumeClaim", v.get("persistence", {}).get("persistentVolumeClaim", {}).get("existingClaim")),
        ("ConfigMap", v.get("plugins", {}).get("configMap", {}).get("name")),
    }
    wanted = set()
    for vol in spec.get("volumes", []):
        if "configMap" in vol:
            wanted.add(("ConfigMap", vol["configMap"]["name"]))
        if "secret" in vol:
            wanted.add(("Secret", vol["secret"]["secretName"]))
        if "persistentVolumeClaim" in vol:
            wanted.add(("PersistentVolumeClaim", vol["persistentVolumeClaim"]["claimName"]))
    for c in containers(spec).values():
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                wanted.add(("Secret", ref["name"]))
    missing = sorted(w for w in wanted - have - external)
    check(f"{name}: every ConfigMap, Secret and claim the pod refers to exists", not missing, str(missing))
    mounts = {m["name"] for c in containers(spec).values() for m in c.get("volumeMounts", [])}
    vols = {vol["name"] for vol in spec.get("volumes", [])}
    check(f"{name}: every mounted volume is declared", mounts <= vols, str(mounts - vols))


def volumes(spec):
    return {v["name"]: v for v in spec["volumes"]}


def strategy(docs):
    return [d for d in docs if d["kind"] == "Deployment"][0]["spec"]["strategy"]["type"]


def expect_host_path(docs, spec):
    assert volumes(spec)["caskade-data"]["hostPath"]["path"] == "/mnt/ssd/caskade"
    assert strategy(docs) == "Recreate", strategy(docs)
    init = {c["name"]: c for c in spec.get("initContainers", [])}
    fix = init["caskade-volume-permissions"]
    assert fix["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN", "FOWNER"]}, fix
    assert "chown 65532:65532 /data" in " ".join(fix["command"]), fix["command"]


def expect_host_path_replicas(docs, spec):
    anti = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert anti["topologyKey"] == "kubernetes.io/hostname", anti


def expect_empty_dir(docs, spec):
    ed = volumes(spec)["caskade-data"]["emptyDir"]
    assert ed["sizeLimit"] == "5Gi", ed
    assert strategy(docs) == "RollingUpdate"


def expect_pvc(docs, spec):
    pvcs = [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    assert len(pvcs) == 1 and pvcs[0]["spec"]["storageClassName"] == "local-ssd", pvcs
    assert volumes(spec)["caskade-data"]["persistentVolumeClaim"]["claimName"] == pvcs[0]["metadata"]["name"]
    assert strategy(docs) == "Recreate", "a ReadWriteOnce claim mounts on one node"


def expect_native(docs, spec):
    init = [c["name"] for c in spec.get("initContainers", [])]
    assert init[-1] == "caskade", init
    assert spec["initContainers"][-1]["restartPolicy"] == "Always"
    assert "caskade" not in {c["name"] for c in spec["containers"]}


def expect_native_with_plugins(docs, spec):
    init = [c["name"] for c in spec.get("initContainers", [])]
    assert init == ["caskade-volume-permissions", "caskade-plugins", "caskade"], init


def expect_plugins_configmap(docs, spec):
    assert volumes(spec)["caskade-plugins"]["configMap"]["name"] == "my-plugins"
    mounts = {m["name"]: m for m in containers(spec)["caskade"]["volumeMounts"]}
    assert mounts["caskade-plugins"]["readOnly"] is True


def expect_plugins_init(docs, spec):
    init = {c["name"]: c for c in spec.get("initContainers", [])}
    assert init["caskade-plugins"]["image"] == "example/caskade-plugins:1", init
    assert "emptyDir" in volumes(spec)["caskade-plugins"]


def expect_socket(docs, spec):
    c = containers(spec)
    app = {m["mountPath"] for m in c["app"]["volumeMounts"]}
    cask = {m["mountPath"] for m in c["caskade"]["volumeMounts"]}
    assert "/var/run/caskade" in app and "/var/run/caskade" in cask
    cm = [d for d in docs if d["kind"] == "ConfigMap"][0]["data"]["caskade.yaml"]
    assert "unixsocket: /var/run/caskade/caskade.sock" in cm, cm


def expect_auth(docs, spec):
    env = containers(spec)["caskade"]["env"]
    assert env[0]["valueFrom"]["secretKeyRef"]["name"] == "caskade-auth", env


def expect_generated_auth(docs, spec):
    secrets = [d for d in docs if d["kind"] == "Secret"]
    assert [s["metadata"]["name"] for s in secrets] == ["demo-caskade-auth"], secrets
    assert len(secrets[0]["data"]["password"]) >= 40, "32 random characters, base64"
    c = containers(spec)
    assert c["caskade"]["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "demo-caskade-auth"
    assert c["app"]["env"][0]["name"] == "REDISCLI_AUTH"
    test = [d for d in docs if d["kind"] == "Pod"][0]
    assert test["spec"]["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "demo-caskade-auth"


def expect_no_example(docs, spec):
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["ConfigMap"], kinds


def expect_loopback_admin(docs, spec):
    cask = containers(spec)["caskade"]
    cmd = cask["readinessProbe"]["exec"]["command"]
    assert cmd == ["/usr/local/bin/caskade", "probe", "--ready", "--addr", "127.0.0.1:9736"], cmd
    assert "--ready" not in cask["livenessProbe"]["exec"]["command"]
    cm = [d for d in docs if d["kind"] == "ConfigMap"][0]["data"]["caskade.yaml"]
    assert "admin:\n  bind: 127.0.0.1" in cm, cm


def expect_monitoring(docs, spec):
    kinds = {d["kind"]: d for d in docs}
    for k in ["ServiceMonitor", "PodMonitor", "PrometheusRule", "PodDisruptionBudget", "NetworkPolicy"]:
        assert k in kinds, (k, sorted(kinds))
    alerts = {r["alert"] for g in kinds["PrometheusRule"]["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert {"CaskadeDown", "CaskadeWritesRefused", "CaskadePluginFailures", "CaskadeOriginErrors"} <= alerts, alerts
    assert "MyAlert" in alerts
    metrics_svc = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"].endswith("-metrics")][0]
    sm = kinds["ServiceMonitor"]["spec"]["selector"]["matchLabels"]
    assert all(metrics_svc["metadata"]["labels"].get(k) == v for k, v in sm.items()), (sm, metrics_svc)
    assert kinds["ServiceMonitor"]["metadata"]["labels"]["release"] == "prom"
    pod_labels = [d for d in docs if d["kind"] == "Deployment"][0]["spec"]["template"]["metadata"]["labels"]
    for sel in [kinds["PodMonitor"]["spec"]["selector"]["matchLabels"], metrics_svc["spec"]["selector"],
                kinds["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"]]:
        assert all(pod_labels.get(k) == v for k, v in sel.items()), (sel, pod_labels)
    assert kinds["PodDisruptionBudget"]["spec"]["minAvailable"] == 1


def expect_knobs(docs, spec):
    cask = containers(spec)["caskade"]
    assert cask["image"] == "caskade/caskade@sha256:" + "a" * 64, cask["image"]
    assert cask["args"] == ["--config", "/etc/caskade/caskade.yaml", "--log", "debug"], cask["args"]
    assert {"name": "TZ", "value": "UTC"} in cask["env"], cask["env"]
    assert {"name": "scratch", "mountPath": "/scratch"} in cask["volumeMounts"]
    assert "scratch" in volumes(spec)
    assert cask["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    meta = [d for d in docs if d["kind"] == "Deployment"][0]["spec"]["template"]["metadata"]
    assert meta["labels"]["team"] == "cache" and meta["annotations"]["owner"] == "platform", meta
    assert spec["terminationGracePeriodSeconds"] == 60 and spec["priorityClassName"] == "high"
    assert spec["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"
    svc = [d for d in docs if d["kind"] == "Service"][0]
    assert svc["spec"]["type"] == "NodePort" and svc["metadata"]["annotations"]["a"] == "b", svc
    sa = [d for d in docs if d["kind"] == "ServiceAccount"][0]
    assert sa["automountServiceAccountToken"] is False and spec["automountServiceAccountToken"] is False


def expect_parent(docs, spec):
    deps = [d for d in docs if d["kind"] == "Deployment"]
    assert [d["metadata"]["name"] for d in deps] == ["demo-shop"], "the subchart renders no example: " + str(deps)
    assert not [d for d in docs if d["kind"] in ("Service", "Pod", "ServiceAccount")], "no example objects"
    cms = [d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"]
    assert cms == ["demo-caskade-config"], cms
    assert volumes(spec)["caskade-config"]["configMap"]["name"] == "demo-caskade-config"


def expect_parent_pvc(docs, spec):
    expect_parent(docs, spec)
    pvcs = [d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"]
    assert pvcs == ["demo-caskade-data"], pvcs
    assert strategy(docs) == "Recreate"


def expect_parent_monitoring(docs, spec):
    pm = [d for d in docs if d["kind"] == "PodMonitor"][0]
    assert pm["spec"]["selector"]["matchLabels"] == {"app": "shop"}, pm


def expect_parent_native(docs, spec):
    expect_parent(docs, spec)
    init = [c["name"] for c in spec.get("initContainers", [])]
    assert init == ["caskade-plugins", "caskade"], init


lint = helm_python.lint(CHART, strict=True, kube_version="v" + KUBE)
bad = [m for m in lint["messages"] if m["severity"] >= 2] + lint["errors"]
check("helm lint --strict", not bad, str(bad))

# The version the templates name must be the chart's.
meta = yaml.safe_load((Path(CHART) / "Chart.yaml").read_text())
defaults = yaml.safe_load((Path(CHART) / "values.yaml").read_text())
helpers = (Path(CHART) / "templates/_helpers.tpl").read_text()
check("image.tag is the appVersion", defaults["image"]["tag"] == meta["appVersion"], defaults["image"]["tag"])
check(
    "caskade.chartVersion is the chart's version",
    f'define "caskade.chartVersion" -}}}}{meta["version"]}{{{{' in helpers,
    meta["version"],
)


def undocumented(path):
    """Keys of values.yaml with no comment right above them (or above their parent's
    first key); caskade's own `config` is documented by the README."""
    missing, stack = [], []
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^( *)([A-Za-z][A-Za-z0-9_]*):", line)
        if not m or line.lstrip().startswith("#"):
            continue
        indent, key = len(m.group(1)), m.group(2)
        commented = i > 0 and lines[i - 1].strip().startswith("#")
        stack = [e for e in stack if e[0] < indent]
        # A documented mapping documents what it holds (resources, probes, ...).
        inherited = any(doc for _, _, doc in stack)
        stack.append((indent, key, commented))
        dotted = ".".join(k for _, k, _ in stack)
        leaf = not line.rstrip().endswith(":")
        if leaf and not dotted.startswith("config.") and not commented and not inherited:
            missing.append(dotted)
    return missing


missing = undocumented(Path(CHART) / "values.yaml")
check("every value in values.yaml is documented", not missing, str(missing))

variant("defaults", {})
variant("hostPath", {"persistence": {"type": "hostPath", "hostPath": {"path": "/mnt/ssd/caskade"}}}, expect=expect_host_path)
variant(
    "hostPath, three replicas",
    {"persistence": {"type": "hostPath"}, "example": {"replicas": 3}},
    expect=expect_host_path_replicas,
)
variant("emptyDir", {"persistence": {"type": "emptyDir", "emptyDir": {"sizeLimit": "5Gi"}}}, expect=expect_empty_dir)
variant(
    "local PV claim",
    {"persistence": {"type": "persistentVolumeClaim", "persistentVolumeClaim": {"storageClassName": "local-ssd", "size": "20Gi"}}},
    expect=expect_pvc,
)
variant("native sidecar", {"sidecar": {"native": True}}, expect=expect_native)
variant(
    "native sidecar after the other init containers",
    {"sidecar": {"native": True}, "persistence": {"type": "hostPath"},
     "plugins": {"source": "initContainer", "image": {"reference": "example/caskade-plugins:1"}}},
    expect=expect_native_with_plugins,
)
variant("plugins from ConfigMap", {"plugins": {"source": "configMap", "configMap": {"name": "my-plugins"}}}, expect=expect_plugins_configmap)
variant(
    "plugins from an init container",
    {"plugins": {"source": "initContainer", "image": {"reference": "example/caskade-plugins:1"}}},
    expect=expect_plugins_init,
)
variant("plugins from an image volume", {"plugins": {"source": "image", "image": {"reference": "example/caskade-plugins:1"}}}, kube="1.33.0")
variant("unix socket", {"unixSocket": {"enabled": True}}, expect=expect_socket)
variant("auth from a Secret", {"auth": {"existingSecret": "caskade-auth"}}, expect=expect_auth)
variant(
    "generated password, Service and helm test",
    {"auth": {"generate": True}, "bind": "0.0.0.0", "service": {"enabled": True}},
    expect=expect_generated_auth,
)
variant("admin port on the loopback address", {"admin": {"bind": "127.0.0.1"}}, expect=expect_loopback_admin)
variant(
    "monitoring, disruption budget and network policy",
    {
        "metrics": {
            "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
            "podMonitor": {"enabled": True, "interval": "15s"},
            "prometheusRule": {"enabled": True, "additionalRules": [{"alert": "MyAlert", "expr": "vector(1) > 2", "for": "1m"}]},
        },
        "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
        "networkPolicy": {"enabled": True, "adminFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]},
    },
    expect=expect_monitoring,
)
variant(
    "usual knobs",
    {
        "image": {"repository": "caskade/caskade", "tag": "0.1.0", "digest": "sha256:" + "a" * 64, "pullPolicy": "IfNotPresent"},
        "extraArgs": ["--log", "debug"],
        "extraEnv": [{"name": "TZ", "value": "UTC"}],
        "extraVolumes": [{"name": "scratch", "emptyDir": {}}],
        "extraVolumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}},
        "example": {
            "podLabels": {"team": "cache"},
            "podAnnotations": {"owner": "platform"},
            "terminationGracePeriodSeconds": 60,
            "priorityClassName": "high",
            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway",
                                           "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "caskade"}}}],
        },
        "bind": "0.0.0.0",
        "service": {"enabled": True, "type": "NodePort", "annotations": {"a": "b"}},
    },
    expect=expect_knobs,
)
variant("named template only", {"example": {"enabled": False}}, expect=expect_no_example)
variant("custom caskade config", {"config": {"storage": {"max_keys": 100000, "eviction_policy": "sieve"}, "limits": {"idle_timeout_secs": 60}}})
variant(
    "read-through route",
    {"config": {"read_through": {"routes": [{
        "prefix": "user:",
        "fetcher": "/usr/share/caskade/plugins/http_fetcher.wasm",
        "settings": {"base_url": "http://users.default.svc:8080/users/", "strip_prefix": "user:", "format": "json"},
        "allowed_hosts": ["users.default.svc:8080"],
        "ttl": "30s",
        "stale_while_revalidate": "1m",
        "timeout": "2s",
    }]}}},
)

# An application chart that depends on caskade (tests/helm/parent-app), rendered with
# caskade in its charts/ directory as `helm dependency update` puts it there.
with tempfile.TemporaryDirectory() as d:
    parent = Path(d) / "shop"
    shutil.copytree(ROOT / "tests/helm/parent-app", parent)
    shutil.copytree(CHART, parent / "charts/caskade")
    p = str(parent)
    variant("parent chart: defaults", {}, chart=p, expect=expect_parent)
    variant("parent chart: hostPath", {"caskade": {"persistence": {"type": "hostPath"}}}, chart=p, expect=expect_parent)
    variant(
        "parent chart: local PV claim",
        {"caskade": {"persistence": {"type": "persistentVolumeClaim", "persistentVolumeClaim": {"storageClassName": "local-ssd"}}}},
        chart=p,
        expect=expect_parent_pvc,
    )
    variant(
        "parent chart: native sidecar, plugins from an init container",
        {"caskade": {"sidecar": {"native": True}, "plugins": {"source": "initContainer", "image": {"reference": "example/caskade-plugins:1"}}}},
        chart=p,
        expect=expect_parent_native,
    )
    variant("parent chart: plugins from ConfigMap", {"caskade": {"plugins": {"source": "configMap", "configMap": {"name": "my-plugins"}}}}, chart=p, expect=expect_parent)
    variant("parent chart: plugins from an image volume", {"caskade": {"plugins": {"source": "image", "image": {"reference": "example/caskade-plugins:1"}}}}, chart=p, kube="1.33.0")
    variant("parent chart: unix socket", {"caskade": {"unixSocket": {"enabled": True}}}, chart=p)
    variant("parent chart: auth from a Secret", {"caskade": {"auth": {"existingSecret": "shop-cache"}}}, chart=p, expect=expect_parent)
    variant("parent chart: generated password", {"caskade": {"auth": {"generate": True}}}, chart=p, expect=expect_parent)
    variant("parent chart: global values", {"global": {"imageRegistry": "x"}}, chart=p, expect=expect_parent)
    variant("parent chart: emptyDir", {"caskade": {"persistence": {"type": "emptyDir", "emptyDir": {"sizeLimit": "5Gi"}}}}, chart=p, expect=expect_parent)
    variant(
        "parent chart: custom config and a read-through route",
        {"caskade": {"config": {"storage": {"max_keys": 100000}, "read_through": {"routes": [{
            "prefix": "item:",
            "fetcher": "/usr/share/caskade/plugins/http_fetcher.wasm",
            "settings": {"base_url": "http://items:8080/", "strip_prefix": "item:"},
            "allowed_hosts": ["items:8080"],
        }]}}}},
        chart=p,
        expect=expect_parent,
    )
    variant("parent chart: admin port on the loopback address", {"caskade": {"admin": {"bind": "127.0.0.1"}}}, chart=p, expect=expect_parent)
    variant(
        "parent chart: pod monitor",
        {"caskade": {"metrics": {"podMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}}}},
        chart=p,
        expect=expect_parent_monitoring,
    )

# Values the schema (or the templates, for combinations) must refuse.
for name, values in [
    ("port that is not a number", {"respPort": "six-three-seven-nine"}),
    ("port out of range", {"adminPort": 70000}),
    ("unknown persistence type", {"persistence": {"type": "nfs"}}),
    ("unknown plugin source", {"plugins": {"source": "http"}}),
    ("unknown top-level value", {"replicas": 3}),
    ("config field the chart owns", {"config": {"port": 1}}),
    ("bad pull policy", {"image": {"repository": "x", "tag": "1", "pullPolicy": "Sometimes"}}),
    ("a digest that is not one", {"image": {"repository": "x", "tag": "1", "digest": "latest", "pullPolicy": "Always"}}),
    ("unknown strategy", {"example": {"strategy": {"type": "BlueGreen"}}}),
    ("bad scrape interval", {"metrics": {"podMonitor": {"enabled": True, "interval": "often"}}}),
    ("origin error ratio over 1", {"metrics": {"prometheusRule": {"originErrorRatio": 5}}}),
]:
    try:
        render(values)
        check(f"schema refuses {name}", False, "rendered without error")
    except helm_python.HelmError as e:
        check(f"schema refuses {name}", "schema" in str(e).lower() or "values" in str(e).lower(), str(e))

for name, values, says in [
    ("a rolling update on a node's directory", {"persistence": {"type": "hostPath"}, "example": {"strategy": {"type": "RollingUpdate"}}}, "deadlock"),
    ("a rolling update on a ReadWriteOnce claim", {"persistence": {"type": "persistentVolumeClaim"}, "example": {"strategy": {"type": "RollingUpdate"}}}, "deadlock"),
    ("replicas sharing one claim", {"persistence": {"type": "persistentVolumeClaim"}, "example": {"replicas": 2}}, "same claim"),
    ("a Service to a loopback-only caskade", {"service": {"enabled": True}}, "bind"),
    ("scraping a loopback-only admin port", {"admin": {"bind": "127.0.0.1"}, "metrics": {"podMonitor": {"enabled": True}}}, "admin.bind"),
]:
    try:
        render(values)
        check(f"templates refuse {name}", False, "rendered without error")
    except helm_python.HelmError as e:
        check(f"templates refuse {name}", says in str(e), str(e))

notes = render({"bind": "0.0.0.0"}).get("caskade/templates/NOTES.txt", "")
check("NOTES warn of an open port without a password", "WARNING" in notes and "auth.generate" in notes, notes)
notes = render({"persistence": {"type": "hostPath"}}).get("caskade/templates/NOTES.txt", "")
check("NOTES explain Recreate on a node's directory", "Recreate" in notes, notes)
# A config the chart renders but caskade refuses is caught by --check-config.
try:
    docs = manifests(render({"config": {"storage": {"fsync": "sometimes"}}}))
    cm = [d for d in docs if d["kind"] == "ConfigMap"][0]["data"]["caskade.yaml"]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write(cm)
        f.flush()
        r = subprocess.run([CASKADE, "--check-config", f.name], capture_output=True, text=True)
        check("check-config refuses a bad rendered config", r.returncode == 2 and "sometimes" in r.stderr, r.stderr)
except helm_python.HelmError as e:
    check("check-config refuses a bad rendered config", False, str(e))

print(f"{passed} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
