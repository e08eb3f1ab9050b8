"""Offline checks of the Helm chart: lint, render with the default values and with each
documented variant, validate every rendered manifest against the Kubernetes schemas
(kubernetes-validate --strict), check that bad values are refused by values.schema.json,
and that the caskade configuration the chart renders passes `caskade --check-config`.

Run by tests/e2e_helm.rs as: python3 tests/helm_check.py CHART_DIR CASKADE_BINARY
"""
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


def render(values):
    chart = helm_python.Chart.load(CHART)
    return chart.render(values, name="demo", namespace="caskade")


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
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write(cms[0]["data"]["caskade.yaml"])
        f.flush()
        r = subprocess.run([CASKADE, "--check-config", f.name], capture_output=True, text=True)
        check(f"{name}: caskade --check-config accepts the rendered config", r.returncode == 0, r.stderr)


def pod_spec(docs):
    dep = [d for d in docs if d["kind"] == "Deployment"]
    return dep[0]["spec"]["template"]["spec"] if dep else None


def containers(spec):
    return {c["name"]: c for c in spec.get("containers", []) + spec.get("initContainers", [])}


def variant(name, values, kube=KUBE, expect=None):
    try:
        out = render(values)
    except helm_python.HelmError as e:
        check(f"{name}: renders", False, str(e))
        return
    docs = manifests(out)
    validate(name, docs, kube)
    check_config(name, docs)
    spec = pod_spec(docs)
    if spec is not None:
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
            probes = {p: cask.get(p, {}).get("httpGet", {}).get("port") for p in ("livenessProbe", "readinessProbe", "startupProbe")}
            check(f"{name}: probes on the admin port", set(probes.values()) == {"admin"}, str(probes))
        ann = [d for d in docs if d["kind"] == "Deployment"][0]["spec"]["template"]["metadata"]["annotations"]
        check(f"{name}: prometheus annotations", ann.get("prometheus.io/scrape") == "true", str(ann))
    if expect:
        try:
            expect(docs, spec)
            check(f"{name}: variant-specific expectations", True)
        except AssertionError as e:
            check(f"{name}: variant-specific expectations", False, str(e))


def volumes(spec):
    return {v["name"]: v for v in spec["volumes"]}


def expect_host_path(docs, spec):
    assert volumes(spec)["caskade-data"]["hostPath"]["path"] == "/mnt/ssd/caskade"


def expect_empty_dir(docs, spec):
    ed = volumes(spec)["caskade-data"]["emptyDir"]
    assert ed["sizeLimit"] == "5Gi", ed


def expect_pvc(docs, spec):
    pvcs = [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    assert len(pvcs) == 1 and pvcs[0]["spec"]["storageClassName"] == "local-ssd", pvcs
    assert volumes(spec)["caskade-data"]["persistentVolumeClaim"]["claimName"] == pvcs[0]["metadata"]["name"]


def expect_native(docs, spec):
    init = {c["name"]: c for c in spec.get("initContainers", [])}
    assert "caskade" in init and init["caskade"]["restartPolicy"] == "Always", spec.get("initContainers")
    assert "caskade" not in {c["name"] for c in spec["containers"]}


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


def expect_no_example(docs, spec):
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["ConfigMap"], kinds


lint = helm_python.lint(CHART, strict=True, kube_version="v" + KUBE)
bad = [m for m in lint["messages"] if m["severity"] >= 2] + lint["errors"]
check("helm lint --strict", not bad, str(bad))

variant("defaults", {})
variant("hostPath", {"persistence": {"type": "hostPath", "hostPath": {"path": "/mnt/ssd/caskade"}}}, expect=expect_host_path)
variant("emptyDir", {"persistence": {"type": "emptyDir", "emptyDir": {"sizeLimit": "5Gi"}}}, expect=expect_empty_dir)
variant(
    "local PV claim",
    {"persistence": {"type": "persistentVolumeClaim", "persistentVolumeClaim": {"storageClassName": "local-ssd", "size": "20Gi"}}},
    expect=expect_pvc,
)
variant("native sidecar", {"sidecar": {"native": True}}, expect=expect_native)
variant("plugins from ConfigMap", {"plugins": {"source": "configMap", "configMap": {"name": "my-plugins"}}}, expect=expect_plugins_configmap)
variant(
    "plugins from an init container",
    {"plugins": {"source": "initContainer", "image": {"reference": "example/caskade-plugins:1"}}},
    expect=expect_plugins_init,
)
variant("plugins from an image volume", {"plugins": {"source": "image", "image": {"reference": "example/caskade-plugins:1"}}}, kube="1.33.0")
variant("unix socket", {"unixSocket": {"enabled": True}}, expect=expect_socket)
variant("auth from a Secret", {"auth": {"existingSecret": "caskade-auth"}}, expect=expect_auth)
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

# Values the schema must refuse.
for name, values in [
    ("port that is not a number", {"respPort": "six-three-seven-nine"}),
    ("port out of range", {"adminPort": 70000}),
    ("unknown persistence type", {"persistence": {"type": "nfs"}}),
    ("unknown plugin source", {"plugins": {"source": "http"}}),
    ("unknown top-level value", {"replicas": 3}),
    ("config field the chart owns", {"config": {"port": 1}}),
    ("bad pull policy", {"image": {"repository": "x", "pullPolicy": "Sometimes"}}),
]:
    try:
        render(values)
        check(f"schema refuses {name}", False, "rendered without error")
    except helm_python.HelmError as e:
        check(f"schema refuses {name}", "schema" in str(e).lower() or "values" in str(e).lower(), str(e))

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
