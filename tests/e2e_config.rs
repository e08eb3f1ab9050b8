//! End-to-end: configuration through the real binary. A YAML file, environment
//! variables and flags in their order of precedence; `--check-config` naming the file,
//! line and field of a mistake; the idle timeout closing a silent client.

mod common;

use common::{Server, caskade};
use std::io::Read;

#[test]
fn check_config_accepts_a_good_file_and_names_mistakes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        "port: 7000\nstorage:\n  dir: /var/lib/caskade\n  segment_bytes: 16mb\n  fsync: always\nlimits:\n  max_clients: 50\n",
    )
    .expect("write");
    let out = caskade(&["--check-config", good.to_str().expect("path")], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let cases = [
        (
            "port: 7000\nstorage:\n  segmnt_bytes: 1mb\n",
            "line 3",
            "segmnt_bytes",
        ),
        ("port: seventy\n", "line 1", "port"),
        ("storage:\n  fsync: sometimes\n", "line 2", "sometimes"),
        (
            "storage:\n  segment_bytes: 1\n",
            "storage.segment_bytes",
            "outside",
        ),
        (
            "limits:\n  max_clients: 0\n",
            "limits.max_clients",
            "at least 1",
        ),
    ];
    for (i, (yaml, where_, what)) in cases.iter().enumerate() {
        let bad = dir.path().join(format!("bad{i}.yaml"));
        std::fs::write(&bad, yaml).expect("write");
        let out = caskade(&["--check-config", bad.to_str().expect("path")], &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{yaml}: {err}");
        assert!(
            err.contains(&format!("bad{i}.yaml")),
            "names the file: {err}"
        );
        assert!(err.contains(where_) && err.contains(what), "{yaml}: {err}");
    }
    let out = caskade(&["--check-config", "/nonexistent/caskade.yaml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/caskade.yaml"));
}

#[test]
fn startup_refuses_a_bad_file_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("c.yaml");
    std::fs::write(&bad, "limits:\n  max_bulk_bytes: lots\n").expect("write");
    let out = caskade(&["--config", bad.to_str().expect("path")], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("c.yaml") && err.contains("lots"), "{err}");
}

#[test]
fn file_values_apply_under_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("c.yaml");
    // The file sets a password and 3 clients; the harness's flags set port, directory
    // and admin port on top of it.
    std::fs::write(&cfg, "requirepass: from-file\nlimits:\n  max_clients: 3\n").expect("write");
    let s = Server::start(&["--config", cfg.to_str().expect("path")]);
    let mut c = redis::Client::open(s.url())
        .expect("client")
        .get_connection()
        .expect("connect");
    let e = redis::cmd("AUTH").arg("from-file").query::<String>(&mut c);
    assert_eq!(e.expect("file password"), "OK");
    let maxclients: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxclients")
        .query(&mut c)
        .expect("config get");
    assert_eq!(maxclients, vec!["maxclients", "3"]);
}

#[test]
fn environment_overrides_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, "requirepass: from-file\n").expect("write");
    let s = Server::start_with_env(
        &["--config", cfg.to_str().expect("path")],
        &[("CASKADE_REQUIREPASS", "from-env")],
    );
    let mut c = redis::Client::open(s.url())
        .expect("client")
        .get_connection()
        .expect("connect");
    assert!(
        redis::cmd("AUTH")
            .arg("from-file")
            .query::<String>(&mut c)
            .is_err()
    );
    assert_eq!(
        redis::cmd("AUTH")
            .arg("from-env")
            .query::<String>(&mut c)
            .expect("auth"),
        "OK"
    );
}

#[test]
fn idle_clients_are_closed_after_the_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("c.yaml");
    std::fs::write(&cfg, "limits:\n  idle_timeout_secs: 1\n").expect("write");
    let s = Server::start(&["--config", cfg.to_str().expect("path")]);
    let mut t = std::net::TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    t.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    let started = std::time::Instant::now();
    let mut b = [0u8; 1];
    assert_eq!(
        t.read(&mut b).expect("read"),
        0,
        "server closed the idle connection"
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
}

#[test]
fn key_budget_from_the_command_line_evicts() {
    let s = Server::start(&["--max-keys", "500", "--eviction-policy", "sieve"]);
    let mut c = s.client();
    for i in 0..2000 {
        redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg("v")
            .query::<()>(&mut c)
            .expect("set");
    }
    let n: i64 = redis::cmd("DBSIZE").query(&mut c).expect("dbsize");
    // Eviction goes a little below the limit (max/256) to batch its work.
    assert!((498..=500).contains(&n), "{n} keys");
    let info: String = redis::cmd("INFO").arg("stats").query(&mut c).expect("info");
    assert!(
        info.contains(&format!("evicted_keys:{}", 2000 - n)),
        "{info}"
    );
    let caskade: String = redis::cmd("INFO")
        .arg("caskade")
        .query(&mut c)
        .expect("info");
    assert!(
        caskade.contains("eviction_policy:sieve") && caskade.contains("max_keys:500"),
        "{caskade}"
    );
    let policy: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-policy")
        .query(&mut c)
        .expect("config");
    assert_eq!(policy, vec!["maxmemory-policy", "sieve"]);
}
