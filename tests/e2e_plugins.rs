//! End-to-end with WebAssembly plugins built from source (plugins/build.sh, run by
//! tests/run.sh): a TTL-capping compaction filter caps TTLs, a prefix-priority
//! eviction policy keeps protected keys under pressure, misbehaving plugins are
//! contained while the server keeps answering, and a hot reload under load loses no
//! request.

mod common;

use common::plugin_files::example;
use common::{Server, caskade, check_config_elsewhere, info_u64, q};
use std::path::Path;
use std::time::{Duration, Instant};

fn info_field(c: &mut redis::Connection, field: &str) -> u64 {
    info_u64(c, &["caskade", "plugins"], field)
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn write_config(dir: &Path, yaml: &str) -> String {
    let p = dir.join("caskade.yaml");
    std::fs::write(&p, yaml).expect("write config");
    p.display().to_string()
}

/// Overwrites filler keys until older segments are mostly garbage, so the compactor
/// rewrites them (and shows their live records to the filter).
fn churn(c: &mut redis::Connection, rounds: usize) {
    let v = "x".repeat(200);
    for r in 0..rounds {
        for i in 0..20 {
            let _: () = q(c, &["SET", &format!("filler:{i}"), &format!("{r}{v}")]);
        }
    }
}

#[test]
fn ttl_cap_filter_caps_ttls_and_drops_prefixes_after_compaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(
        dir.path(),
        &format!(
            "storage:\n  segment_bytes: 16kb\n  compaction_garbage_ratio: 0.3\nplugins:\n  compaction_filter:\n    path: {}\n    settings:\n      max_ttl_secs: 100\n      drop_prefixes: \"tmp:\"\n",
            example("ttl_cap.wasm").display()
        ),
    );
    let s = Server::start(&["--config", &cfg]);
    let mut c = s.client();
    for i in 0..30 {
        let _: () = q(&mut c, &["SET", &format!("keep:{i}"), "value"]);
        let _: () = q(&mut c, &["SET", &format!("tmp:{i}"), "value"]);
        let _: () = q(
            &mut c,
            &["SET", &format!("long:{i}"), "value", "EX", "100000"],
        );
    }
    churn(&mut c, 300);
    wait_until("the filter to see the first segments", || {
        let ttl: i64 = q(&mut c, &["TTL", "keep:0"]);
        let gone: i64 = q(&mut c, &["EXISTS", "tmp:0"]);
        ttl > 0 && gone == 0
    });
    for i in 0..30 {
        let ttl: i64 = q(&mut c, &["TTL", &format!("keep:{i}")]);
        assert!((1..=100).contains(&ttl), "keep:{i} has TTL {ttl}");
        let long: i64 = q(&mut c, &["TTL", &format!("long:{i}")]);
        assert!((1..=100).contains(&long), "long:{i} was capped to {long}");
        let tmp: i64 = q(&mut c, &["EXISTS", &format!("tmp:{i}")]);
        assert_eq!(tmp, 0, "tmp:{i} was dropped");
    }
    assert!(info_field(&mut c, "filter_calls") > 0);
    assert_eq!(info_field(&mut c, "filter_failures"), 0);
}

#[test]
fn prefix_priority_policy_keeps_protected_keys_under_pressure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(
        dir.path(),
        &format!(
            "storage:\n  max_keys: 200\nplugins:\n  eviction_policy:\n    path: {}\n    settings:\n      protected_prefixes: \"session:,config:\"\n",
            example("prefix_priority.wasm").display()
        ),
    );
    let s = Server::start(&["--config", &cfg]);
    let mut c = s.client();
    for i in 0..50 {
        let _: () = q(&mut c, &["SET", &format!("session:{i}"), "v"]);
        let _: () = q(&mut c, &["SET", &format!("config:{i}"), "v"]);
    }
    for i in 0..2000 {
        let _: () = q(&mut c, &["SET", &format!("page:{i}"), "v"]);
    }
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 200);
    for i in 0..50 {
        for p in ["session", "config"] {
            let n: i64 = q(&mut c, &["EXISTS", &format!("{p}:{i}")]);
            assert_eq!(n, 1, "{p}:{i} was evicted");
        }
    }
    let info: String = q(&mut c, &["INFO", "caskade"]);
    assert!(info.contains("eviction_policy:prefix_priority"), "{info}");
    assert!(info_field(&mut c, "policy_calls") > 0);
    assert_eq!(info_field(&mut c, "policy_failures"), 0);
}

#[test]
fn misbehaving_filters_are_contained_and_the_server_keeps_answering() {
    for mode in ["loop", "trap", "hog", "short"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = write_config(
            dir.path(),
            &format!(
                "storage:\n  segment_bytes: 16kb\n  compaction_garbage_ratio: 0.3\nplugins:\n  compaction_filter:\n    path: {}\n    deadline_ms: 20\n    memory_bytes: 8mb\n    settings:\n      mode: {mode}\n",
                example("misbehave.wasm").display()
            ),
        );
        let s = Server::start(&["--config", &cfg]);
        let mut c = s.client();
        for i in 0..30 {
            let _: () = q(&mut c, &["SET", &format!("keep:{i}"), "value"]);
        }
        churn(&mut c, 200);
        wait_until(&format!("{mode}: a contained failure"), || {
            info_field(&mut c, "filter_failures") > 0
        });
        // The built-in behaviour kept every record; the server answers as before.
        for i in 0..30 {
            let v: Option<String> = q(&mut c, &["GET", &format!("keep:{i}")]);
            assert_eq!(v.as_deref(), Some("value"), "{mode}: keep:{i}");
        }
        assert_eq!(q::<String>(&mut c, &["PING"]), "PONG");
        let (_, metrics) = s.admin_get("/metrics");
        assert!(
            metrics.contains("caskade_plugin_failures_total{plugin=\"compaction_filter\""),
            "{mode}"
        );
    }
}

#[test]
fn hot_reload_under_load_loses_no_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugin = dir.path().join("filter.wasm");
    std::fs::copy(example("ttl_cap.wasm"), &plugin).expect("copy");
    let cfg = write_config(
        dir.path(),
        &format!(
            "plugins:\n  compaction_filter:\n    path: {}\n",
            plugin.display()
        ),
    );
    let mut s = Server::start(&["--config", &cfg]);
    let url = s.url();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut c = redis::Client::open(url)
                .expect("client")
                .get_connection()
                .expect("connect");
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let k = format!("load:{n}");
                let _: () = q(&mut c, &["SET", &k, &n.to_string()]);
                let v: String = q(&mut c, &["GET", &k]);
                assert_eq!(v, n.to_string());
                n += 1;
            }
            n
        })
    };
    let mut c = s.client();
    // Replace the file (watched), then signal a reload (SIGHUP), while the load runs.
    std::thread::sleep(Duration::from_millis(300));
    let staged = dir.path().join("filter.wasm.new");
    std::fs::copy(example("misbehave.wasm"), &staged).expect("copy");
    std::fs::rename(&staged, &plugin).expect("swap the file atomically");
    wait_until("a reload after the file changed", || {
        info_field(&mut c, "plugin_reloads") >= 1
    });
    std::fs::copy(example("ttl_cap.wasm"), &staged).expect("copy");
    std::fs::rename(&staged, &plugin).expect("swap back");
    s.signal_hup();
    wait_until("a second reload", || {
        info_field(&mut c, "plugin_reloads") >= 2
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let done = load.join().expect("the load saw no error");
    assert!(done > 100, "only {done} requests ran during the reloads");
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), done as i64);
    assert_eq!(info_field(&mut c, "plugin_reload_failures"), 0);
    assert!(s.stop().success());
}

#[test]
fn a_broken_plugin_file_stops_startup_with_its_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugin = dir.path().join("broken.wasm");
    std::fs::write(&plugin, b"definitely not wasm").expect("write");
    let cfg = write_config(
        dir.path(),
        &format!(
            "plugins:\n  compaction_filter:\n    path: {}\n",
            plugin.display()
        ),
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_caskade"))
        .args(["--config", &cfg, "--port", "0", "--unixsocket"])
        .arg(dir.path().join("s.sock"))
        .args(["--admin-port", "0", "--dir"])
        .arg(dir.path().join("data"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.wasm"), "{err}");
}

/// A directory with a configuration that names its plugins by paths relative to it.
fn relative_setup(yaml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).expect("mkdir");
    for name in ["ttl_cap.wasm", "prefix_priority.wasm"] {
        std::fs::copy(example(name), plugins.join(name)).expect("copy plugin");
    }
    write_config(dir.path(), yaml);
    dir
}

#[test]
fn check_config_loads_every_plugin_relative_to_the_config_file() {
    let dir = relative_setup(
        "plugins:\n  compaction_filter:\n    path: plugins/ttl_cap.wasm\n  eviction_policy:\n    path: plugins/prefix_priority.wasm\n",
    );
    let cfg = dir.path().join("caskade.yaml");
    // Run from elsewhere: the paths are the configuration file's.
    let (ok, stdout, stderr) = check_config_elsewhere(&cfg);
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("plugins.compaction_filter: ")
            && stdout.contains("ttl_cap.wasm (compaction-filter, ")
            && stdout.contains("prefix_priority.wasm (eviction-policy, ")
            && stdout.contains("compiled in"),
        "{stdout}"
    );

    // A missing fetcher, a plugin of the wrong kind, bad settings: each refused, the
    // entry named, the cause said once.
    for (yaml, field, cause) in [
        (
            "read_through:\n  routes:\n    - prefix: 'a:'\n      fetcher: plugins/missing.wasm\n      allowed_hosts: [example.com]\n",
            "read_through.routes[0]",
            "No such file or directory",
        ),
        (
            "plugins:\n  compaction_filter:\n    path: plugins/prefix_priority.wasm\n",
            "plugins.compaction_filter",
            "prefix_priority.wasm",
        ),
        (
            "plugins:\n  compaction_filter:\n    path: plugins/ttl_cap.wasm\n    settings:\n      max_ttl_secs: soon\n",
            "plugins.compaction_filter",
            "max_ttl_secs: 'soon' is not a number",
        ),
    ] {
        std::fs::write(&cfg, yaml).expect("write");
        let out = caskade(&["--check-config", cfg.to_str().expect("path")], &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{yaml}: {err}");
        assert!(err.contains(field) && err.contains(cause), "{err}");
        assert_eq!(err.matches(cause).count(), 1, "the cause once: {err}");
        assert!(out.stdout.is_empty());
        // The server refuses to start on the same file, with the same single cause.
        let out = caskade(
            &[
                "--config",
                cfg.to_str().expect("path"),
                "--port",
                "0",
                "--unixsocket",
                dir.path().join("s.sock").to_str().expect("path"),
                "--admin-port",
                "0",
                "--dir",
                dir.path().join("data").to_str().expect("path"),
            ],
            &[],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains(field), "{err}");
        assert_eq!(err.matches(cause).count(), 1, "the cause once: {err}");
    }
}

#[test]
fn caskade_compact_shows_a_filter_working_and_info_plugins_lists_it() {
    // No storage tuning: a full compaction on request reaches every key at once.
    let dir = relative_setup(
        "plugins:\n  compaction_filter:\n    path: plugins/ttl_cap.wasm\n    settings:\n      max_ttl_secs: 600\n      drop_prefixes: 'tmp:'\n",
    );
    let cfg = dir.path().join("caskade.yaml");
    let mut s = Server::start_in(dir.path(), &["--config", cfg.to_str().expect("path")]);
    let mut c = s.client();
    for i in 0..20 {
        let _: () = q(&mut c, &["SET", &format!("tmp:{i}"), "v"]);
        let _: () = q(&mut c, &["SET", &format!("keep:{i}"), "v"]);
    }
    let done: redis::Value = q(&mut c, &["CASKADE", "COMPACT"]);
    let text = format!("{done:?}");
    assert!(
        text.contains("filter_removals") && text.contains("20"),
        "{text}"
    );
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 20);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "tmp:3"]), 0);
    let ttl: i64 = q(&mut c, &["TTL", "keep:3"]);
    assert!((590..=600).contains(&ttl), "capped TTL {ttl}");

    let plugins: String = q(&mut c, &["INFO", "plugins"]);
    assert!(
        plugins.starts_with("# Plugins")
            && plugins.contains("plugins_loaded:1")
            && plugins.contains("compaction_filter:kind=compaction-filter,path=")
            && plugins.contains("ttl_cap.wasm,bytes="),
        "{plugins}"
    );
    assert!(!plugins.contains("# Server"), "{plugins}");
    let rt: String = q(&mut c, &["INFO", "readthrough"]);
    assert!(
        rt.starts_with("# ReadThrough") && rt.contains("routes:0"),
        "{rt}"
    );
    let own: String = q(&mut c, &["INFO", "caskade"]);
    assert!(
        own.starts_with("# Caskade") && own.contains("full_compactions:1"),
        "{own}"
    );

    // BGREWRITEAOF, as Redis users know it, runs one in the background.
    for i in 0..5 {
        let _: () = q(&mut c, &["SET", &format!("tmp:late{i}"), "v"]);
    }
    let started: String = q(&mut c, &["BGREWRITEAOF"]);
    assert_eq!(started, "Background append only file rewriting started");
    wait_until("the background compaction", || {
        info_field(&mut c, "full_compactions") == 2
    });
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "tmp:late1"]), 0);
    assert!(s.stop().success());
}

/// Runs the server with `args` until it is ready, stops it with SIGTERM and returns
/// what it wrote (stdout, stderr), neither a terminal.
fn run_until_ready(args: &[&str]) -> (String, String) {
    use std::io::{BufRead, BufReader, Read};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_caskade"))
        .args(args)
        .args(["--port", "0", "--admin-port", "0", "--unixsocket"])
        .arg(dir.path().join("s.sock"))
        .arg("--dir")
        .arg(dir.path().join("data"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut out = String::new();
    while !out.contains("caskade ready") {
        let before = out.len();
        stdout.read_line(&mut out).expect("read stdout");
        assert!(out.len() > before, "exited before ready");
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read stderr");
    stdout.read_to_string(&mut out).expect("read stdout");
    assert!(child.wait().expect("wait").success());
    (out, err)
}

#[test]
fn logs_carry_no_colour_off_a_terminal_and_json_lines_name_the_loaded_plugin() {
    let dir =
        relative_setup("plugins:\n  eviction_policy:\n    path: plugins/prefix_priority.wasm\n");
    let cfg = dir.path().join("caskade.yaml");
    let cfg = cfg.to_str().expect("path");
    let (_, text) = run_until_ready(&["--config", cfg]);
    assert!(
        !text.contains('\x1b'),
        "colour escapes off a terminal:\n{text}"
    );
    assert!(
        text.contains("plugin loaded") && text.contains("kind=\"eviction-policy\""),
        "{text}"
    );
    let (_, coloured) = run_until_ready(&["--config", cfg, "--log-color", "always"]);
    assert!(coloured.contains("\x1b["), "{coloured}");

    let (out, json) = run_until_ready(&["--config", cfg, "--log-format", "json"]);
    let mut loaded = None;
    for line in json.lines().chain(out.lines()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for field in ["timestamp", "level", "target", "fields"] {
            assert!(v.get(field).is_some(), "{field} missing: {line}");
        }
        if v["fields"]["message"] == "plugin loaded" {
            loaded = Some(v);
        }
    }
    let loaded = loaded.unwrap_or_else(|| panic!("no plugin loaded line:\n{json}"));
    assert_eq!(loaded["fields"]["kind"], "eviction-policy");
    assert_eq!(loaded["fields"]["field"], "plugins.eviction_policy");
    assert!(loaded["fields"]["bytes"].as_u64().is_some_and(|b| b > 1000));
    assert!(loaded["fields"]["compile_ms"].is_u64());
    assert!(out.contains("caskade ready"));
}
