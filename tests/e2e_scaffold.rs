//! End-to-end for plugin authors: a plugin of each kind written by `caskade plugin
//! new` and built as a crate of its own (tests/run.sh does both, as the scaffold's
//! README says), then loaded through the scaffold's own `caskade.yaml` and seen
//! working: the filter on CASKADE COMPACT, the policy at `max_keys`, the fetcher in
//! front of an HTTP origin.

mod common;
#[path = "common/origin.rs"]
mod origin;

use common::plugin_files::example;
use common::{Server, caskade, check_config_elsewhere, q};
use origin::Origin;
use std::path::{Path, PathBuf};

const KINDS: [(&str, &str); 3] = [
    ("filter", "wasm32-unknown-unknown"),
    ("policy", "wasm32-unknown-unknown"),
    ("fetcher", "wasm32-wasip2"),
];

/// The scaffold tests/run.sh wrote and built for `kind`.
fn built(kind: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/scaffolds"))
        .join(format!("scaffold-{kind}"))
}

/// A copy of the scaffold's `caskade.yaml` with the built plugin where the README puts
/// it (`target/TARGET/release/LIB.wasm` beside the configuration).
fn as_the_readme_says(kind: &str, target: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let lib = format!("scaffold_{kind}");
    let release = dir.path().join("target").join(target).join("release");
    std::fs::create_dir_all(&release).expect("mkdir");
    std::fs::copy(
        example(&format!("{lib}.wasm")),
        release.join(format!("{lib}.wasm")),
    )
    .expect("copy plugin");
    std::fs::copy(
        built(kind).join("caskade.yaml"),
        dir.path().join("caskade.yaml"),
    )
    .expect("copy config");
    dir
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn the_built_scaffolds_are_what_plugin_new_writes_today() {
    for (kind, target) in KINDS {
        let fresh = tempfile::tempdir().expect("tempdir");
        let dir = fresh.path().join("p");
        let name = format!("scaffold-{kind}");
        let plugin_new = || {
            let args = ["plugin", "new", "--kind", kind, &name, "--dir"];
            caskade(&[&args[..], &[dir.to_str().expect("path")]].concat(), &[])
        };
        let out = plugin_new();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for file in [
            "Cargo.toml",
            "src/lib.rs",
            "README.md",
            "caskade.yaml",
            ".gitignore",
        ] {
            assert_eq!(
                read(&dir.join(file)),
                read(&built(kind).join(file)),
                "{file} of the {kind} scaffold changed: run tests/run.sh (it rebuilds them)"
            );
        }
        let readme = read(&dir.join("README.md"));
        assert!(
            readme.contains(&format!("cargo build --release --target {target}"))
                && readme.contains(&format!("target/{target}/release/scaffold_{kind}.wasm"))
                && readme.contains("caskade --check-config caskade.yaml"),
            "{readme}"
        );
        // Written again into the same place: refused, nothing overwritten.
        let again = plugin_new();
        assert_eq!(again.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&again.stderr).contains("is not empty"));
    }
}

#[test]
fn each_scaffold_passes_check_config_with_its_own_yaml() {
    for (kind, target) in KINDS {
        let dir = as_the_readme_says(kind, target);
        let cfg = dir.path().join("caskade.yaml");
        let (ok, stdout, stderr) = check_config_elsewhere(&cfg);
        assert!(ok, "{kind}: {stdout}{stderr}");
        assert!(
            stdout.contains(&format!("scaffold_{kind}.wasm")),
            "{stdout}"
        );
    }
}

#[test]
fn the_scaffolded_filter_removes_and_caps_on_caskade_compact() {
    let dir = as_the_readme_says("filter", "wasm32-unknown-unknown");
    let cfg = dir.path().join("caskade.yaml");
    let mut s = Server::start_in(dir.path(), &["--config", cfg.to_str().expect("path")]);
    let mut c = s.client();
    let _: () = q(&mut c, &["SET", "tmp:1", "a"]);
    let _: () = q(&mut c, &["SET", "user:1", "b"]);
    let _: redis::Value = q(&mut c, &["CASKADE", "COMPACT"]);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "tmp:1"]), 0);
    let ttl: i64 = q(&mut c, &["TTL", "user:1"]);
    assert!((86_390..=86_400).contains(&ttl), "TTL {ttl}");
    let info: String = q(&mut c, &["INFO", "plugins"]);
    assert!(info.contains("filter_failures:0"), "{info}");
    assert!(s.stop().success());
}

#[test]
fn the_scaffolded_policy_holds_max_keys_and_keeps_what_is_read() {
    let dir = as_the_readme_says("policy", "wasm32-unknown-unknown");
    let cfg = dir.path().join("caskade.yaml");
    let mut s = Server::start_in(dir.path(), &["--config", cfg.to_str().expect("path")]);
    let mut c = s.client();
    for i in 0..1000 {
        let _: () = q(&mut c, &["SET", &format!("k{i}"), "v"]);
    }
    // Read the first hundred keys: CLOCK gives them a second chance.
    for i in 0..100 {
        let _: Option<String> = q(&mut c, &["GET", &format!("k{i}")]);
    }
    for i in 1000..2000 {
        let _: () = q(&mut c, &["SET", &format!("k{i}"), "v"]);
    }
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 1000);
    let hot: i64 = (0..100)
        .map(|i| q::<i64>(&mut c, &["EXISTS", &format!("k{i}")]))
        .sum();
    let cold: i64 = (100..200)
        .map(|i| q::<i64>(&mut c, &["EXISTS", &format!("k{i}")]))
        .sum();
    assert!(
        hot > cold,
        "read keys kept: {hot} of 100 against {cold} unread"
    );
    let info: String = q(&mut c, &["INFO", "plugins"]);
    assert!(info.contains("policy_failures:0"), "{info}");
    assert!(s.stop().success());
}

#[test]
fn the_scaffolded_fetcher_fills_misses_from_the_origin() {
    let dir = as_the_readme_says("fetcher", "wasm32-wasip2");
    let origin = Origin::start();
    origin.put("42", b"hello", Some("\"v1\""));
    // The scaffold's configuration, pointed at this test's origin.
    let cfg = dir.path().join("caskade.yaml");
    let yaml = read(&cfg).replace("127.0.0.1:8080", &format!("127.0.0.1:{}", origin.port));
    std::fs::write(&cfg, yaml).expect("write");
    let mut s = Server::start_in(dir.path(), &["--config", cfg.to_str().expect("path")]);
    let mut c = s.client();
    assert_eq!(
        q::<Option<String>>(&mut c, &["GET", "item:42"]).as_deref(),
        Some("hello")
    );
    assert_eq!(
        q::<Option<String>>(&mut c, &["GET", "item:42"]).as_deref(),
        Some("hello")
    );
    assert_eq!(origin.count("/items/42"), 1, "the second read is a hit");
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "item:nope"]), None);
    let info: String = q(&mut c, &["INFO", "readthrough"]);
    assert!(info.contains("fetch_failures=0"), "{info}");
    assert!(s.stop().success());
}
