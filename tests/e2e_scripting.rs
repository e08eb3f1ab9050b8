//! Scripts against the real binary: a looping script makes other clients get `-BUSY`
//! and SCRIPT KILL ends it (a script that wrote is `UNKILLABLE`), and increments made
//! by several clients through a script (and through WATCH/MULTI) end exact.

mod common;

use common::Server;
use common::resp::{Conn, Value};
use std::time::{Duration, Instant};

fn is_error(v: &Value, prefix: &str) -> bool {
    matches!(v, Value::Error(e) if e.starts_with(prefix))
}

#[test]
fn a_looping_script_makes_others_busy_until_script_kill() {
    let s = Server::start(&[]);
    let mut admin = Conn::connect(s.port);
    assert_eq!(
        admin.cmd("CONFIG SET busy-reply-threshold 100"),
        Value::Status("OK".into())
    );
    let port = s.port;
    let looping = std::thread::spawn(move || {
        let mut c = Conn::connect(port);
        c.cmd("EVAL 'while true do end' 0")
    });
    let started = Instant::now();
    loop {
        let got = admin.cmd("GET k");
        if is_error(&got, "BUSY ") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never busy: {got:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(admin.cmd("SCRIPT KILL"), Value::Status("OK".into()));
    let ended = looping.join().expect("script client");
    assert!(
        matches!(&ended, Value::Error(e) if e.contains("Script killed by user with SCRIPT KILL")),
        "{ended:?}"
    );
    assert_eq!(admin.cmd("PING"), Value::Status("PONG".into()));
    assert!(is_error(&admin.cmd("SCRIPT KILL"), "NOTBUSY "));

    // A script that wrote cannot be killed; it ends by itself.
    let writing = std::thread::spawn(move || {
        let mut c = Conn::connect(port);
        c.cmd("EVAL \"redis.call('set', KEYS[1], 'w') local t = redis.call('time') local stop = tonumber(t[1]) + 2 while tonumber(redis.call('time')[1]) < stop do end return 1\" 1 w")
    });
    let started = Instant::now();
    loop {
        if is_error(&admin.cmd("GET other"), "BUSY ") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "never busy");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(is_error(&admin.cmd("SCRIPT KILL"), "UNKILLABLE "));
    // A command waiting for the script's key answers BUSY too, not after the script.
    assert!(is_error(&admin.cmd("GET w"), "BUSY "));
    assert_eq!(writing.join().expect("writer"), Value::Int(1));
    assert_eq!(admin.cmd("GET w"), Value::Bulk(b"w".to_vec()));
}

#[test]
fn increments_through_a_script_from_many_clients_are_exact() {
    let s = Server::start(&[]);
    let port = s.port;
    let clients: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = Conn::connect(port);
                for _ in 0..250 {
                    // Read, then write: atomic only if the script is one unit.
                    let r = c.cmd("EVAL \"local v = tonumber(redis.call('get', KEYS[1]) or '0') redis.call('set', KEYS[1], v + 1) return v + 1\" 1 n");
                    assert!(matches!(r, Value::Int(_)), "{r:?}");
                    // The same through a key the script does not declare.
                    let r = c.cmd("EVAL \"local v = tonumber(redis.call('get', 'undeclared') or '0') redis.call('set', 'undeclared', v + 1) return v + 1\" 0");
                    assert!(matches!(r, Value::Int(_)), "{r:?}");
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client");
    }
    let mut c = Conn::connect(port);
    assert_eq!(c.cmd("GET n"), Value::Bulk(b"1000".to_vec()));
    assert_eq!(c.cmd("GET undeclared"), Value::Bulk(b"1000".to_vec()));
}

/// Function libraries are kept in the data directory: a restart (clean or kill -9)
/// still has them.
#[test]
fn function_libraries_survive_a_restart() {
    let mut s = Server::start(&[]);
    let mut c = Conn::connect(s.port);
    let load = "FUNCTION LOAD \"#!lua name=counters\nredis.register_function('bump', function(keys, args) return redis.call('incrby', keys[1], args[1]) end)\"";
    assert_eq!(c.cmd(load), Value::Bulk(b"counters".to_vec()));
    assert_eq!(c.cmd("FCALL bump 1 n 5"), Value::Int(5));
    drop(c);
    s.kill();
    s.restart();
    let mut c = Conn::connect(s.port);
    assert_eq!(c.cmd("FCALL bump 1 n 2"), Value::Int(7));
    assert_eq!(
        c.cmd("FUNCTION DELETE counters"),
        Value::Status("OK".into())
    );
    drop(c);
    assert!(s.stop().success());
    s.restart();
    let mut c = Conn::connect(s.port);
    assert!(is_error(
        &c.cmd("FCALL bump 1 n 1"),
        "ERR Function not found"
    ));
}

#[test]
fn monitor_shows_every_client_command_and_a_script_s_commands() {
    let s = Server::start(&[]);
    let mut watcher = Conn::connect(s.port);
    assert_eq!(watcher.cmd("MONITOR"), Value::Status("OK".into()));
    let mut c = Conn::connect(s.port);
    assert_eq!(c.cmd("SET mk \"a b\""), Value::Status("OK".into()));
    assert_eq!(
        c.cmd("EVAL \"return redis.call('incr', KEYS[1])\" 1 mn"),
        Value::Int(1)
    );
    assert_eq!(c.cmd("AUTH secret"), c.cmd("AUTH secret"));
    c.cmd("MULTI");
    c.cmd("SET mt 1");
    assert_eq!(
        c.cmd("EXEC"),
        Value::Array(vec![Value::Status("OK".into())])
    );
    let mut lines = Vec::new();
    while lines.len() < 8 {
        match watcher.read() {
            Value::Status(l) => lines.push(l),
            other => panic!("not a monitor line: {other:?}"),
        }
    }
    let shown: Vec<&str> = lines
        .iter()
        .map(|l| l.split_once("] ").map_or("", |(_, args)| args))
        .collect();
    assert_eq!(
        shown,
        [
            "\"SET\" \"mk\" \"a b\"",
            "\"incr\" \"mn\"",
            "\"EVAL\" \"return redis.call('incr', KEYS[1])\" \"1\" \"mn\"",
            "\"AUTH\" \"(redacted)\"",
            "\"AUTH\" \"(redacted)\"",
            "\"MULTI\"",
            "\"SET\" \"mt\" \"1\"",
            "\"EXEC\"",
        ]
    );
    assert!(lines[1].contains(" [0 lua] "), "{}", lines[1]);
    assert!(lines[0].contains(" [0 127.0.0.1:"), "{}", lines[0]);
    // The monitoring connection still answers its own commands.
    assert_eq!(watcher.cmd("PING"), Value::Status("PONG".into()));
}
