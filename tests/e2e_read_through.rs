//! End-to-end read-through: the real binary with the example HTTP fetcher (built from
//! source by plugins/build.sh) in front of a local HTTP origin that counts requests.
//! Misses fetch once and then hit the cache, concurrent misses share one fetch, "not
//! found" is remembered for the negative TTL, 304 keeps and extends the value, stale
//! values are served while one refresh runs, timeouts and refused hosts are clear
//! errors, and a misbehaving fetcher never takes the server down.

mod common;
#[path = "common/origin.rs"]
mod origin;

use common::plugin_files::example;
use common::{Server, caskade, q};
use origin::Origin;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

fn q_err(c: &mut redis::Connection, args: &[&str]) -> String {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    match cmd.query::<redis::Value>(c) {
        Err(e) => e.to_string(),
        Ok(v) => panic!("{args:?} answered {v:?}, not an error"),
    }
}

/// One route of the configuration: `prefix` fetched by the HTTP example from
/// `origin{path}` (the prefix stripped), plus `extra` YAML lines for the route.
fn http_route(origin: &Origin, prefix: &str, path: &str, extra: &str) -> String {
    let mut r = format!(
        "    - prefix: '{prefix}'\n      fetcher: {}\n      settings:\n        base_url: {}{path}\n        strip_prefix: '{prefix}'\n      allowed_hosts: ['127.0.0.1:{}']\n",
        example("http_fetcher.wasm").display(),
        origin.url(),
        origin.port
    );
    for line in extra.lines().filter(|l| !l.trim().is_empty()) {
        r.push_str(&format!("      {}\n", line.trim()));
    }
    r
}

struct Setup {
    server: Server,
    _dir: tempfile::TempDir,
}

/// Starts caskade with `routes` (YAML list items); compiled plugins are cached across
/// tests.
fn start(routes: &str) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache");
    let yaml = format!(
        "plugins:\n  cache_dir: {}\nread_through:\n  routes:\n{routes}",
        cache.display()
    );
    let cfg = dir.path().join("caskade.yaml");
    std::fs::write(&cfg, yaml).expect("write config");
    let server = Server::start(&["--config", &cfg.display().to_string()]);
    Setup { server, _dir: dir }
}

/// The value of metric `name` with all of `labels`, summed over other labels.
fn metric(s: &Server, name: &str, labels: &[(&str, &str)]) -> f64 {
    let (code, body) = s.admin_get("/metrics");
    assert_eq!(code, 200);
    body.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn first_get_fetches_and_then_the_cache_answers() {
    let origin = Origin::start();
    origin.put("a", b"alpha", Some("\"a1\""));
    origin.put("b", b"beta", None);
    origin.put("c", b"gamma", None);
    let s = start(&http_route(&origin, "item:", "/items/", "ttl: 1h"));
    let mut c = s.server.client();

    let v: String = q(&mut c, &["GET", "item:a"]);
    assert_eq!(v, "alpha");
    assert_eq!(origin.count("/items/a"), 1);
    let v: String = q(&mut c, &["GET", "item:a"]);
    assert_eq!(v, "alpha");
    assert_eq!(origin.count("/items/a"), 1, "the second GET is a cache hit");
    // The value is an ordinary key now, with the route's TTL (plus time kept stale).
    let ttl: i64 = q(&mut c, &["TTL", "item:a"]);
    assert!((3_600..=7_200).contains(&ttl), "{ttl}");

    // MGET fetches the misses (together) and answers in order; an unrouted key is a
    // plain miss that never reaches the origin.
    let vs: Vec<Option<String>> = q(&mut c, &["MGET", "item:a", "item:b", "other:b", "item:zz"]);
    assert_eq!(
        vs,
        vec![Some("alpha".into()), Some("beta".into()), None, None]
    );
    assert_eq!(
        (origin.count("/items/b"), origin.count("/items/zz")),
        (1, 1)
    );
    assert_eq!(origin.count("/items/a"), 1);

    // GETEX fills the key and then applies its expiry.
    let v: String = q(&mut c, &["GETEX", "item:c", "EX", "100"]);
    assert_eq!(v, "gamma");
    let ttl: i64 = q(&mut c, &["TTL", "item:c"]);
    assert!((90..=100).contains(&ttl), "{ttl}");

    // A client's own value under a routed prefix is served as is, never refreshed.
    let _: () = q(&mut c, &["SET", "item:mine", "local"]);
    let v: String = q(&mut c, &["GET", "item:mine"]);
    assert_eq!(v, "local");
    assert_eq!(origin.count("/items/mine"), 0);

    // redis-cli sees the same.
    let out = Command::new("redis-cli")
        .args(["-p", &s.server.port.to_string(), "GET", "item:a"])
        .output()
        .expect("redis-cli is missing: run tests/run.sh, which installs redis-tools");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "alpha");
    assert_eq!(origin.total(), 4);

    let fresh = metric(
        &s.server,
        "caskade_origin_requests_total",
        &[("route", "item:"), ("result", "fresh")],
    );
    let missing = metric(
        &s.server,
        "caskade_origin_requests_total",
        &[("route", "item:"), ("result", "not_found")],
    );
    assert_eq!((fresh, missing), (3.0, 1.0));
    let fetches = metric(
        &s.server,
        "caskade_origin_fetch_duration_seconds_count",
        &[("route", "item:")],
    );
    assert_eq!(fetches, 4.0);
    let info: String = q(&mut c, &["INFO", "readthrough"]);
    assert!(
        info.contains("# ReadThrough")
            && info.contains("route0:prefix=item:,fetches=4,fetch_failures=0"),
        "{info}"
    );
}

#[test]
fn concurrent_gets_of_a_cold_key_make_one_origin_request() {
    let origin = Origin::start();
    origin.set_slow_ms(2_000);
    origin.put("cold", b"finally", None);
    let s = start(&http_route(&origin, "item:", "/slow/", "timeout: 10s"));
    let n = 100;
    let barrier = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let mut c = s.server.client();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                q::<String>(&mut c, &["GET", "item:cold"])
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().expect("thread"), "finally");
    }
    assert_eq!(origin.count("/slow/cold"), 1);
    let coalesced = metric(
        &s.server,
        "caskade_origin_coalesced_waiters_total",
        &[("route", "item:")],
    );
    // All but the first joined its fetch (a thread the machine held back past the
    // 2 s fetch would find the value stored instead).
    assert!(
        coalesced <= (n - 1) as f64 && coalesced >= (n - 10) as f64,
        "{coalesced}"
    );
}

#[test]
fn not_found_is_remembered_for_the_negative_ttl_then_fetched_again() {
    let origin = Origin::start();
    let s = start(&http_route(&origin, "item:", "/items/", "negative_ttl: 1s"));
    let mut c = s.server.client();
    let v: Option<String> = q(&mut c, &["GET", "item:ghost"]);
    assert_eq!(v, None);
    let v: Option<String> = q(&mut c, &["GET", "item:ghost"]);
    assert_eq!(v, None);
    assert_eq!(
        origin.count("/items/ghost"),
        1,
        "the second miss is remembered"
    );
    // Remembered misses are not keys.
    let n: i64 = q(&mut c, &["EXISTS", "item:ghost"]);
    assert_eq!(n, 0);
    let hits = metric(
        &s.server,
        "caskade_origin_negative_hits_total",
        &[("route", "item:")],
    );
    assert_eq!(hits, 1.0);

    origin.put("ghost", b"boo", None);
    let v: Option<String> = q(&mut c, &["GET", "item:ghost"]);
    assert_eq!(v, None, "still remembered as missing");
    std::thread::sleep(Duration::from_millis(1_100));
    let v: Option<String> = q(&mut c, &["GET", "item:ghost"]);
    assert_eq!(v.as_deref(), Some("boo"));
    assert_eq!(origin.count("/items/ghost"), 2);
    // FLUSHDB forgets remembered misses too.
    let _: Option<String> = q(&mut c, &["GET", "item:gone"]);
    origin.put("gone", b"back", None);
    let _: () = q(&mut c, &["FLUSHDB"]);
    let v: Option<String> = q(&mut c, &["GET", "item:gone"]);
    assert_eq!(v.as_deref(), Some("back"));
}

#[test]
fn not_modified_keeps_the_value_and_extends_it() {
    let origin = Origin::start();
    origin.put("e", b"v1", Some("\"1\""));
    let s = start(&http_route(
        &origin,
        "item:",
        "/items/",
        "ttl: 1s\nkeep_stale: 10s",
    ));
    let mut c = s.server.client();
    let v: String = q(&mut c, &["GET", "item:e"]);
    assert_eq!(v, "v1");
    std::thread::sleep(Duration::from_millis(1_100));
    // Same ETag, different body: a 304 must keep what the cache holds.
    origin.put("e", b"CHANGED", Some("\"1\""));
    let v: String = q(&mut c, &["GET", "item:e"]);
    assert_eq!(v, "v1");
    assert_eq!(origin.answered(304), 1);
    assert_eq!(
        origin.if_none_match("/items/e"),
        vec![None, Some("\"1\"".to_string())]
    );
    // Extended: fresh again for the TTL, so the next reads stay local.
    let v: String = q(&mut c, &["GET", "item:e"]);
    assert_eq!(v, "v1");
    assert_eq!(origin.count("/items/e"), 2);
    let pttl: i64 = q(&mut c, &["PTTL", "item:e"]);
    assert!(pttl > 10_000, "{pttl}");
    let nm = metric(
        &s.server,
        "caskade_origin_requests_total",
        &[("result", "not_modified")],
    );
    assert_eq!(nm, 1.0);

    // A new ETag brings the new value.
    std::thread::sleep(Duration::from_millis(1_100));
    origin.put("e", b"v2", Some("\"2\""));
    let v: String = q(&mut c, &["GET", "item:e"]);
    assert_eq!(v, "v2");
}

#[test]
fn stale_values_are_served_at_once_while_one_refresh_runs() {
    let origin = Origin::start();
    origin.set_slow_ms(800);
    origin.put("s", b"old", Some("\"o\""));
    let s = start(&http_route(
        &origin,
        "item:",
        "/slow/",
        "ttl: 1s\nstale_while_revalidate: 1m",
    ));
    let mut c = s.server.client();
    let v: String = q(&mut c, &["GET", "item:s"]);
    assert_eq!(v, "old");
    std::thread::sleep(Duration::from_millis(1_100));
    origin.put("s", b"new", Some("\"n\""));
    // Twenty reads during the (slow) refresh: all answered at once with the stale value.
    for _ in 0..20 {
        let t = Instant::now();
        let v: String = q(&mut c, &["GET", "item:s"]);
        assert_eq!(v, "old");
        assert!(
            t.elapsed() < Duration::from_millis(400),
            "{:?}",
            t.elapsed()
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v: String = q(&mut c, &["GET", "item:s"]);
        if v == "new" {
            break;
        }
        assert!(Instant::now() < deadline, "the refresh never landed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(origin.count("/slow/s"), 2, "exactly one background refresh");
    assert_eq!(
        origin.if_none_match("/slow/s"),
        vec![None, Some("\"o\"".to_string())]
    );
    let stale = metric(
        &s.server,
        "caskade_origin_stale_served_total",
        &[("reason", "revalidating")],
    );
    assert!(stale >= 1.0, "{stale}");
}

#[test]
fn origin_errors_are_clear_errors_or_stale_values_where_allowed() {
    let origin = Origin::start();
    origin.put("x", b"kept", None);
    let routes = http_route(
        &origin,
        "lenient:",
        "/items/",
        "ttl: 500ms\nstale_if_error: 1m",
    ) + &http_route(&origin, "strict:", "/items/", "ttl: 500ms");
    let s = start(&routes);
    let mut c = s.server.client();
    let v: String = q(&mut c, &["GET", "lenient:x"]);
    assert_eq!(v, "kept");
    let v: String = q(&mut c, &["GET", "strict:x"]);
    assert_eq!(v, "kept");
    std::thread::sleep(Duration::from_millis(600));
    origin.set_failing(true);
    let v: String = q(&mut c, &["GET", "lenient:x"]);
    assert_eq!(v, "kept", "stale served on origin error");
    let e = q_err(&mut c, &["GET", "strict:x"]);
    assert!(
        e.contains("origin fetch for 'strict:x' failed") && e.contains("500"),
        "{e}"
    );
    let e = q_err(&mut c, &["MGET", "lenient:x", "strict:new"]);
    assert!(e.contains("strict:new"), "{e}");
    // For retry_after_error (1 s by default) a failed key is answered from the failure:
    // the failing origin is not asked again.
    let asked = origin.count("/items/x");
    let v: String = q(&mut c, &["GET", "lenient:x"]);
    assert_eq!(v, "kept");
    let e = q_err(&mut c, &["GET", "strict:x"]);
    assert!(e.contains("500"), "{e}");
    assert_eq!(origin.count("/items/x"), asked);
    let stale = metric(
        &s.server,
        "caskade_origin_stale_served_total",
        &[("reason", "origin_error")],
    );
    assert_eq!(stale, 2.0, "the MGET that failed served nothing");
    // lenient:x, strict:x, strict:new (the MGET's lenient:x was remembered).
    let errors = metric(
        &s.server,
        "caskade_origin_requests_total",
        &[("result", "error")],
    );
    assert_eq!(errors, 3.0);
    origin.set_failing(false);
    std::thread::sleep(Duration::from_millis(1_100));
    let v: String = q(&mut c, &["GET", "strict:x"]);
    assert_eq!(v, "kept");
    assert_eq!(origin.count("/items/x"), asked + 1);
}

#[test]
fn a_slow_origin_times_out_and_the_connection_stays_usable() {
    let origin = Origin::start();
    origin.set_slow_ms(3_000);
    origin.put("s", b"late", None);
    let s = start(&http_route(&origin, "item:", "/slow/", "timeout: 300ms"));
    let mut c = s.server.client();
    let t = Instant::now();
    let e = q_err(&mut c, &["GET", "item:s"]);
    assert!(e.contains("timed out after 300 ms"), "{e}");
    assert!(
        t.elapsed() < Duration::from_millis(2_000),
        "{:?}",
        t.elapsed()
    );
    let pong: String = q(&mut c, &["PING"]);
    assert_eq!(pong, "PONG");
    let _: () = q(&mut c, &["SET", "plain", "1"]);
    let v: String = q(&mut c, &["GET", "plain"]);
    assert_eq!(v, "1");
    let timeouts = metric(
        &s.server,
        "caskade_origin_requests_total",
        &[("result", "timeout")],
    );
    assert_eq!(timeouts, 1.0);
}

#[test]
fn hosts_the_route_does_not_allow_are_refused() {
    let origin = Origin::start();
    origin.put("a", b"alpha", None);
    let route = format!(
        "    - prefix: 'item:'\n      fetcher: {}\n      settings:\n        base_url: {}/items/\n      allowed_hosts: ['localhost:{}', '127.0.0.1:1']\n",
        example("http_fetcher.wasm").display(),
        origin.url(),
        origin.port
    );
    let s = start(&route);
    let mut c = s.server.client();
    let e = q_err(&mut c, &["GET", "item:a"]);
    assert!(
        e.contains(&format!("request to 127.0.0.1:{} refused", origin.port))
            && e.contains("allowed_hosts"),
        "{e}"
    );
    assert_eq!(origin.total(), 0, "nothing reached the origin");
    let refused = metric(
        &s.server,
        "caskade_origin_requests_total",
        &[("result", "refused")],
    );
    assert_eq!(refused, 1.0);
}

#[test]
fn a_misbehaving_fetcher_never_takes_the_server_down() {
    let route = format!(
        "    - prefix: 'm:'\n      fetcher: {}\n      timeout: 500ms\n      memory_bytes: 16mb\n",
        example("misbehave_fetcher.wasm").display()
    );
    let s = start(&route);
    let mut c = s.server.client();
    let e = q_err(&mut c, &["GET", "m:trap"]);
    assert!(e.contains("trapped"), "{e}");
    let e = q_err(&mut c, &["GET", "m:hog"]);
    assert!(e.contains("memory limit"), "{e}");
    // While a fetch spins, other clients are served.
    let spinning = {
        let mut c2 = s.server.client();
        std::thread::spawn(move || q_err(&mut c2, &["GET", "m:loop"]))
    };
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    let _: () = q(&mut c, &["SET", "k", "v"]);
    let v: String = q(&mut c, &["GET", "k"]);
    assert_eq!(v, "v");
    assert!(
        t.elapsed() < Duration::from_millis(1_000),
        "{:?}",
        t.elapsed()
    );
    let e = spinning.join().expect("thread");
    assert!(e.contains("timed out"), "{e}");
    // Fresh instances answer afterwards, and the server is healthy.
    let v: String = q(&mut c, &["GET", "m:fine"]);
    assert_eq!(v, "fetched:m:fine");
    assert_eq!(s.server.admin_get("/healthz").0, 200);
    let crashed = metric(
        &s.server,
        "caskade_origin_requests_total",
        &[("result", "crashed")],
    );
    assert_eq!(crashed, 2.0);
    let traps = metric(
        &s.server,
        "caskade_plugin_failures_total",
        &[("plugin", "origin_fetcher"), ("reason", "trap")],
    );
    assert_eq!(traps, 1.0);

    // SIGHUP reloads the fetcher; reads go on.
    let before = metric(
        &s.server,
        "caskade_plugin_reloads_total",
        &[("result", "ok")],
    );
    s.server.signal_hup();
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(
        &s.server,
        "caskade_plugin_reloads_total",
        &[("result", "ok")],
    ) <= before
    {
        assert!(Instant::now() < deadline, "no reload");
        std::thread::sleep(Duration::from_millis(50));
    }
    let v: String = q(&mut c, &["GET", "m:after"]);
    assert_eq!(v, "fetched:m:after");
}

#[test]
fn a_fetcher_that_fails_to_load_stops_startup_naming_the_route() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.wasm");
    std::fs::write(&bad, b"not wasm").expect("write");
    let cfg = dir.path().join("caskade.yaml");
    std::fs::write(
        &cfg,
        format!(
            "read_through:\n  routes:\n    - prefix: 'x:'\n      fetcher: {}\n",
            bad.display()
        ),
    )
    .expect("write");
    let (cfg, data) = (cfg.display().to_string(), dir.path().join("data"));
    let sock = dir.path().join("s.sock").display().to_string();
    let data = data.display().to_string();
    let out = caskade(
        &[
            "--config",
            &cfg,
            "--port",
            "0",
            "--admin-port",
            "0",
            "--dir",
            &data,
            "--unixsocket",
            &sock,
        ],
        &[],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("read_through.routes[0] (prefix 'x:')") && err.contains("bad.wasm"),
        "{err}"
    );
}

#[test]
fn plugins_work_with_a_relative_data_directory() {
    // The default data directory ("caskade-data") is relative; the compiled-code cache
    // inside it must still work.
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("caskade.yaml");
    std::fs::write(
        &cfg,
        format!(
            "read_through:\n  routes:\n    - prefix: 'm:'\n      fetcher: {}\n",
            example("misbehave_fetcher.wasm").display()
        ),
    )
    .expect("write");
    let s = Server::start_in(dir.path(), &["--config", "caskade.yaml"]);
    let mut c = s.client();
    let v: String = q(&mut c, &["GET", "m:rel"]);
    assert_eq!(v, "fetched:m:rel");
    assert!(s.data_dir().join("plugin-cache").is_dir());
}
