//! The Helm chart, checked offline (tests/helm_check.py): lint, render with the default
//! values and every documented variant, validate each manifest against the Kubernetes
//! schemas (and ServiceMonitor, PodMonitor, PrometheusRule against the Prometheus
//! Operator's CRD schemas, with Node.js), refuse bad values through values.schema.json
//! and the templates, render an application chart that depends on caskade
//! (tests/helm/parent-app) and check its pod's every reference exists, and run the
//! rendered caskade configuration through the real binary's `--check-config`.
//! tests/run.sh installs the pinned Python and npm packages it needs.

use std::process::Command;

#[test]
fn helm_chart_lints_renders_validates_and_refuses_bad_values() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new("python3")
        .arg(format!("{root}/tests/helm_check.py"))
        .arg(format!("{root}/helm/caskade"))
        .arg(env!("CARGO_BIN_EXE_caskade"))
        .output()
        .expect("python3 is missing");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "chart checks failed (tests/run.sh installs helm-python-sdk and kubernetes-validate):\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}
