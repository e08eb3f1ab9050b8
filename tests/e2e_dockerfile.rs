//! The container image's recipe: the Dockerfile passes hadolint (installed by
//! tests/run.sh) at its strictest threshold, and builds what the test command builds:
//! the `caskade` binary from the locked workspace and the plugins through
//! plugins/build.sh, run as the non-root user the Helm chart expects, on the ports the
//! binary uses by default.

use std::path::Path;

fn dockerfile() -> (std::path::PathBuf, String) {
    let p = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../Dockerfile")).to_path_buf();
    let text = std::fs::read_to_string(&p).expect("Dockerfile");
    (p, text)
}

/// The Dockerfile's instructions, continuation lines joined.
fn instructions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(part) => cur.push_str(&format!("{} ", part.trim())),
            None => {
                cur.push_str(t);
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    out
}

#[test]
fn hadolint_finds_nothing() {
    let (path, _) = dockerfile();
    let out = std::process::Command::new("hadolint")
        .args(["--failure-threshold", "style", "--no-color"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("hadolint ({e}): run tests/run.sh, which installs it"));
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "hadolint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_image_builds_what_the_test_command_builds() {
    let (_, text) = dockerfile();
    let steps = instructions(&text);
    let runs: Vec<&String> = steps.iter().filter(|s| s.starts_with("RUN ")).collect();
    assert!(
        runs.iter()
            .any(|r| r.contains("cargo build --release --locked -p caskade")),
        "{runs:?}"
    );
    assert!(
        runs.iter().any(|r| r.contains("bash plugins/build.sh")),
        "{runs:?}"
    );
    // Every COPY from the build context names something that exists.
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    for copy in steps
        .iter()
        .filter(|s| s.starts_with("COPY ") && !s.contains("--from="))
    {
        let words: Vec<&str> = copy.split_whitespace().skip(1).collect();
        for src in &words[..words.len() - 1] {
            assert!(
                root.join(src).exists(),
                "{copy}: {src} is not in the repository"
            );
        }
    }
    // The workspace members the build needs are all copied in.
    for member in ["engine", "sidecar", "plugins", "wit", "tests"] {
        assert!(
            steps
                .iter()
                .any(|s| s.starts_with(&format!("COPY {member} "))),
            "{member} is not copied"
        );
    }
    assert!(steps.iter().any(|s| s == "USER 65532:65532"), "{steps:?}");
    assert!(steps.iter().any(|s| s == "EXPOSE 6379 9736"), "{steps:?}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_caskade"))
        .arg("--help")
        .output()
        .expect("run");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("default 6379") && help.contains("default 9736"),
        "{help}"
    );
}
