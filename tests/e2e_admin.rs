//! End-to-end: the admin port (metrics, health, readiness) and the Unix socket.

mod common;

use common::{Server, caskade, info_u64, q};

#[test]
fn caskade_probe_asks_the_admin_port_for_exec_probes() {
    let s = Server::start(&[]);
    let addr = format!("127.0.0.1:{}", s.admin_port);
    for args in [
        vec!["probe", "--addr", &addr],
        vec!["probe", "--ready", "--addr", &addr],
    ] {
        let out = caskade(&args, &[]);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    drop(s);
    // Nothing listening: a failure that says where it looked.
    let out = caskade(&["probe", "--addr", &addr], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&addr));
}

#[test]
fn metrics_health_and_readiness() {
    let s = Server::start(&[]);
    assert_eq!(s.admin_get("/healthz"), (200, "ok\n".into()));
    assert_eq!(s.admin_get("/readyz"), (200, "ready\n".into()));
    assert_eq!(s.admin_get("/nope").0, 404);
    let mut c = s.client();
    redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query::<()>(&mut c)
        .expect("set");
    redis::cmd("GET")
        .arg("k")
        .query::<String>(&mut c)
        .expect("get");
    redis::cmd("GET")
        .arg("missing")
        .query::<Option<String>>(&mut c)
        .expect("get");
    let (status, body) = s.admin_get("/metrics");
    assert_eq!(status, 200);
    for needle in [
        "caskade_commands_total{cmd=\"set\"} 1",
        "caskade_commands_total{cmd=\"get\"} 2",
        "caskade_command_duration_seconds_bucket{cmd=\"get\",le=",
        "caskade_keyspace_hits_total 1",
        "caskade_keyspace_misses_total 1",
        "caskade_connected_clients 1",
        "caskade_engine_keys 1",
        "caskade_engine_disk_bytes",
    ] {
        assert!(body.contains(needle), "metrics lack {needle}:\n{body}");
    }
}

#[test]
fn unix_socket_serves_resp() {
    let sock_dir = tempfile::tempdir().expect("tempdir");
    let sock = sock_dir.path().join("caskade.sock");
    let s = Server::start(&["--unixsocket", sock.to_str().expect("utf-8 path")]);
    let url = format!("redis+unix://{}", sock.display());
    let mut c = redis::Client::open(url)
        .expect("client")
        .get_connection()
        .expect("connect");
    redis::cmd("SET")
        .arg("via")
        .arg("socket")
        .query::<()>(&mut c)
        .expect("set");
    let mut tcp = s.client();
    let v: String = redis::cmd("GET").arg("via").query(&mut tcp).expect("get");
    assert_eq!(v, "socket");
}

/// The hot tier serves repeated reads from memory and says so in INFO and /metrics;
/// `--hot-bytes 0` turns it off. A write, a delete and an expiry change in between are
/// seen at once.
#[test]
fn the_hot_tier_is_reported_and_never_stale() {
    for (args, on) in [(vec![], true), (vec!["--hot-bytes", "0"], false)] {
        let s = Server::start(&args);
        let mut c = s.client();
        let get = |c: &mut redis::Connection| q::<Option<String>>(c, &["GET", "k"]);
        let _: () = q(&mut c, &["SET", "k", "v1"]);
        for _ in 0..3 {
            assert_eq!(get(&mut c).as_deref(), Some("v1"));
        }
        let _: () = q(&mut c, &["SET", "k", "v2"]);
        assert_eq!(get(&mut c).as_deref(), Some("v2"));
        let _: i64 = q(&mut c, &["PEXPIRE", "k", "1"]);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(get(&mut c), None);
        let _: () = q(&mut c, &["SET", "k", "v3"]);
        assert_eq!(get(&mut c).as_deref(), Some("v3"));
        let _: i64 = q(&mut c, &["DEL", "k"]);
        assert_eq!(get(&mut c), None);
        assert_eq!(info_u64(&mut c, &["caskade"], "hot_max_bytes") > 0, on);
        assert_eq!(info_u64(&mut c, &["caskade"], "hot_hits") > 0, on);
        let (_, metrics) = s.admin_get("/metrics");
        assert!(
            metrics.contains("caskade_hot_reads_total{result=\"hit\"}"),
            "{metrics}"
        );
    }
}
