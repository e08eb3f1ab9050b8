//! End-to-end with the clients people actually use: `redis-cli` (plain, `-3` for
//! RESP3, `--pipe` mass insert, `--scan`), Python's `redis` package over RESP2 and
//! RESP3, and Node.js' ioredis and node-redis. `tests/run.sh` installs them; a missing
//! one fails the test with the reason.

mod common;

use common::Server;
use std::io::Write;
use std::process::{Command, Stdio};

fn redis_cli(s: &Server, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(s.port.to_string())
        .args(args)
        .output()
        .expect("redis-cli is missing: run tests/run.sh, which installs redis-tools");
    assert!(
        out.status.success(),
        "redis-cli {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn redis_cli_basics_and_resp3() {
    let s = Server::start(&[]);
    assert_eq!(redis_cli(&s, &["PING"]), "PONG\n");
    assert_eq!(redis_cli(&s, &["SET", "greeting", "hello world"]), "OK\n");
    assert_eq!(redis_cli(&s, &["GET", "greeting"]), "hello world\n");
    assert_eq!(redis_cli(&s, &["GET", "missing"]), "\n");
    assert_eq!(redis_cli(&s, &["INCR", "n"]), "1\n");
    let hello = redis_cli(&s, &["-3", "HELLO", "3"]);
    assert!(hello.contains("proto") && hello.contains('3'), "{hello}");
    // RESP3 nulls and maps as redis-cli -3 prints them on a terminal-less stdout.
    assert_eq!(redis_cli(&s, &["-3", "GET", "missing"]), "\n");
    let cfg = redis_cli(&s, &["-3", "CONFIG", "GET", "port"]);
    assert!(cfg.contains(&s.port.to_string()), "{cfg}");
    assert!(redis_cli(&s, &["INFO", "server"]).contains("redis_version:7."));
    let err = redis_cli(&s, &["NOSUCH"]);
    assert!(err.contains("unknown command"), "{err}");
}

#[test]
fn redis_cli_pipe_mass_insert_and_scan() {
    let s = Server::start(&[]);
    let mut input = Vec::new();
    for i in 0..20_000 {
        let k = format!("mass:{i}");
        let v = format!("value-{i}");
        write!(
            input,
            "*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n${}\r\n{v}\r\n",
            k.len(),
            v.len()
        )
        .expect("write");
    }
    let mut child = Command::new("redis-cli")
        .arg("-p")
        .arg(s.port.to_string())
        .arg("--pipe")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("redis-cli is missing: run tests/run.sh, which installs redis-tools");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&input)
        .expect("pipe");
    let out = child.wait_with_output().expect("redis-cli --pipe");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("errors: 0, replies: 20000"), "{text}");
    assert_eq!(redis_cli(&s, &["DBSIZE"]), "20000\n");
    assert_eq!(redis_cli(&s, &["GET", "mass:19999"]), "value-19999\n");
    let scanned = redis_cli(&s, &["--scan", "--pattern", "mass:1999*"]);
    let mut keys: Vec<&str> = scanned.lines().collect();
    keys.sort();
    let mut want: Vec<String> = std::iter::once("mass:1999".to_string())
        .chain((0..10).map(|i| format!("mass:1999{i}")))
        .collect();
    want.sort();
    assert_eq!(keys, want);
}

/// Runs a client library's check script (`program script PORT`) against a fresh
/// server; `setup` says what tests/run.sh installs for it.
fn client_script(program: &str, script: &str, setup: &str) {
    let s = Server::start(&[]);
    let out = Command::new(program)
        .arg(script)
        .arg(s.port.to_string())
        .output()
        .unwrap_or_else(|e| panic!("{program} is missing (run tests/run.sh): {e}"));
    assert!(
        out.status.success(),
        "{script} failed (run tests/run.sh to install {setup}):\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn python_redis_over_resp2_and_resp3() {
    client_script(
        "python3",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/e2e_python.py"),
        "the redis package",
    );
}

/// ioredis (multi, WATCH, defineCommand) and node-redis (multi, eval, concurrent
/// transactions): tests/node/e2e.js.
#[test]
fn node_ioredis_and_node_redis() {
    client_script(
        "node",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/node/e2e.js"),
        "tests/node's packages",
    );
}

/// `redis-cli shutdown` stops the server as SIGTERM does: exit 0, data kept; the
/// connection closes without a reply (redis-py's `shutdown()` counts on it).
#[test]
fn redis_cli_shutdown_stops_the_server_cleanly() {
    let mut s = Server::start(&[]);
    let port = s.port.to_string();
    let cli = |args: &[&str]| {
        Command::new("redis-cli")
            .args(["-p", &port])
            .args(args)
            .output()
            .expect("redis-cli")
    };
    assert!(cli(&["SET", "kept", "yes"]).status.success());
    let out = cli(&["SHUTDOWN"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "SHUTDOWN answered: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(s.wait_exit().success(), "exit status after SHUTDOWN");
    s.restart();
    let out = cli(&["GET", "kept"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "yes");
}
