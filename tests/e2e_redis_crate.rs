//! End-to-end: the real `caskade` binary driven by the `redis` crate over RESP2 and
//! RESP3, checked against the replies Redis 7 gives for the same commands.

mod common;

use common::Server;
use redis::{Connection, Value, cmd};

fn q<T: redis::FromRedisValue>(c: &mut Connection, args: &[&str]) -> T {
    let mut command = cmd(args[0]);
    for a in &args[1..] {
        command.arg(*a);
    }
    command.query(c).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn err(c: &mut Connection, args: &[&str]) -> String {
    let mut command = cmd(args[0]);
    for a in &args[1..] {
        command.arg(*a);
    }
    match command.query::<Value>(c) {
        Err(e) => e.to_string(),
        Ok(v) => panic!("{args:?} should fail, got {v:?}"),
    }
}

#[test]
fn strings() {
    let s = Server::start(&[]);
    let mut c = s.client();
    assert_eq!(q::<String>(&mut c, &["SET", "k", "hello"]), "OK");
    assert_eq!(q::<String>(&mut c, &["GET", "k"]), "hello");
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "missing"]), None);
    assert_eq!(q::<i64>(&mut c, &["APPEND", "k", " world"]), 11);
    assert_eq!(q::<i64>(&mut c, &["STRLEN", "k"]), 11);
    assert_eq!(q::<String>(&mut c, &["GETRANGE", "k", "0", "4"]), "hello");
    assert_eq!(q::<String>(&mut c, &["GETRANGE", "k", "-5", "-1"]), "world");
    assert_eq!(q::<String>(&mut c, &["GETRANGE", "k", "5", "2"]), "");
    assert_eq!(q::<i64>(&mut c, &["SETRANGE", "k", "6", "WORLD"]), 11);
    assert_eq!(q::<String>(&mut c, &["GET", "k"]), "hello WORLD");
    assert_eq!(q::<i64>(&mut c, &["SETRANGE", "pad", "3", "x"]), 4);
    assert_eq!(q::<Vec<u8>>(&mut c, &["GET", "pad"]), b"\0\0\0x");
    assert_eq!(q::<i64>(&mut c, &["INCR", "n"]), 1);
    assert_eq!(q::<i64>(&mut c, &["INCRBY", "n", "41"]), 42);
    assert_eq!(q::<i64>(&mut c, &["DECRBY", "n", "2"]), 40);
    assert_eq!(q::<i64>(&mut c, &["DECR", "n"]), 39);
    assert_eq!(q::<String>(&mut c, &["INCRBYFLOAT", "f", "10.5"]), "10.5");
    assert_eq!(q::<String>(&mut c, &["INCRBYFLOAT", "f", "0.1"]), "10.6");
    assert_eq!(q::<String>(&mut c, &["INCRBYFLOAT", "f", "-5e0"]), "5.6");
    assert!(err(&mut c, &["INCR", "k"]).contains("value is not an integer or out of range"));
    q::<()>(&mut c, &["SET", "big", "9223372036854775807"]);
    assert!(err(&mut c, &["INCR", "big"]).contains("increment or decrement would overflow"));
    assert_eq!(q::<String>(&mut c, &["MSET", "a", "1", "b", "2"]), "OK");
    assert_eq!(
        q::<Vec<Option<String>>>(&mut c, &["MGET", "a", "nope", "b"]),
        vec![Some("1".into()), None, Some("2".into())]
    );
    assert_eq!(q::<i64>(&mut c, &["MSETNX", "a", "x", "c", "3"]), 0);
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "c"]), None);
    assert_eq!(q::<i64>(&mut c, &["MSETNX", "c", "3", "d", "4"]), 1);
    assert_eq!(
        q::<Option<String>>(&mut c, &["GETSET", "a", "new"]),
        Some("1".into())
    );
    assert_eq!(
        q::<Option<String>>(&mut c, &["GETDEL", "a"]),
        Some("new".into())
    );
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "a"]), 0);
    assert_eq!(q::<i64>(&mut c, &["SETNX", "a", "x"]), 1);
    assert_eq!(q::<i64>(&mut c, &["SETNX", "a", "y"]), 0);
    assert_eq!(q::<String>(&mut c, &["SETEX", "e", "100", "v"]), "OK");
    assert!((99..=100).contains(&q::<i64>(&mut c, &["TTL", "e"])));
    assert!(
        err(&mut c, &["SETEX", "e", "0", "v"]).contains("invalid expire time in 'setex' command")
    );
    assert_eq!(q::<String>(&mut c, &["GETEX", "e", "PERSIST"]), "v");
    assert_eq!(q::<i64>(&mut c, &["TTL", "e"]), -1);
    assert_eq!(q::<String>(&mut c, &["GETEX", "e", "PX", "50000"]), "v");
    assert!(q::<i64>(&mut c, &["PTTL", "e"]) > 49_000);
    // Binary-safe values.
    let bin: Vec<u8> = (0..=255u8).collect();
    redis::cmd("SET")
        .arg("bin")
        .arg(&bin[..])
        .query::<()>(&mut c)
        .expect("set bin");
    assert_eq!(q::<Vec<u8>>(&mut c, &["GET", "bin"]), bin);
}

#[test]
fn set_options_match_redis() {
    let s = Server::start(&[]);
    let mut c = s.client();
    assert_eq!(q::<Option<String>>(&mut c, &["SET", "k", "v", "XX"]), None);
    assert_eq!(
        q::<Option<String>>(&mut c, &["SET", "k", "v1", "NX"]),
        Some("OK".into())
    );
    assert_eq!(q::<Option<String>>(&mut c, &["SET", "k", "v2", "NX"]), None);
    assert_eq!(
        q::<Option<String>>(&mut c, &["SET", "k", "v3", "XX", "GET"]),
        Some("v1".into())
    );
    assert_eq!(
        q::<Option<String>>(&mut c, &["SET", "new", "v", "GET"]),
        None
    );
    assert_eq!(q::<String>(&mut c, &["SET", "k", "v4", "EX", "100"]), "OK");
    assert_eq!(q::<String>(&mut c, &["SET", "k", "v5", "KEEPTTL"]), "OK");
    assert!(q::<i64>(&mut c, &["TTL", "k"]) > 90);
    assert_eq!(q::<String>(&mut c, &["SET", "k", "v6"]), "OK");
    assert_eq!(
        q::<i64>(&mut c, &["TTL", "k"]),
        -1,
        "plain SET clears the TTL"
    );
    let later = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 1000)
        .to_string();
    assert_eq!(
        q::<String>(&mut c, &["SET", "k", "v", "EXAT", &later]),
        "OK"
    );
    assert_eq!(q::<i64>(&mut c, &["EXPIRETIME", "k"]).to_string(), later);
    assert!(err(&mut c, &["SET", "k", "v", "NX", "XX"]).contains("syntax error"));
    assert!(err(&mut c, &["SET", "k", "v", "EX", "10", "PX", "10"]).contains("syntax error"));
    assert!(err(&mut c, &["SET", "k", "v", "EX"]).contains("syntax error"));
    assert!(
        err(&mut c, &["SET", "k", "v", "EX", "0"]).contains("invalid expire time in 'set' command")
    );
    assert!(err(&mut c, &["SET", "k", "v", "EX", "abc"]).contains("not an integer"));
    assert!(err(&mut c, &["SET", "k", "v", "BOGUS"]).contains("syntax error"));
    assert_eq!(
        q::<String>(&mut c, &["SET", "short", "v", "PX", "30"]),
        "OK"
    );
    std::thread::sleep(std::time::Duration::from_millis(60));
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "short"]), None);
}

#[test]
fn keyspace_commands() {
    let s = Server::start(&[]);
    let mut c = s.client();
    for k in ["a", "b", "c", "user:1", "user:2"] {
        q::<()>(&mut c, &["SET", k, "v"]);
    }
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 5);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "a", "a", "zz"]), 2);
    assert_eq!(q::<String>(&mut c, &["TYPE", "a"]), "string");
    assert_eq!(q::<String>(&mut c, &["TYPE", "zz"]), "none");
    assert_eq!(q::<i64>(&mut c, &["DEL", "a", "b", "zz"]), 2);
    assert_eq!(q::<i64>(&mut c, &["UNLINK", "c"]), 1);
    let mut keys: Vec<String> = q(&mut c, &["KEYS", "user:*"]);
    keys.sort();
    assert_eq!(keys, vec!["user:1", "user:2"]);
    // SCAN until the cursor comes back to 0.
    for i in 0..300 {
        q::<()>(&mut c, &["SET", &format!("s:{i}"), "v"]);
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor = "0".to_string();
    loop {
        let (next, batch): (String, Vec<String>) =
            q(&mut c, &["SCAN", &cursor, "MATCH", "s:*", "COUNT", "25"]);
        seen.extend(batch);
        if next == "0" {
            break;
        }
        cursor = next;
    }
    assert_eq!(seen.len(), 300);
    assert!(err(&mut c, &["SCAN", "notanumber"]).contains("invalid cursor"));
    let (_, none): (String, Vec<String>) =
        q(&mut c, &["SCAN", "0", "TYPE", "hash", "COUNT", "1000"]);
    assert!(none.is_empty());
    assert!(q::<Option<String>>(&mut c, &["RANDOMKEY"]).is_some());
    // Expiry family.
    assert_eq!(q::<i64>(&mut c, &["TTL", "user:1"]), -1);
    assert_eq!(q::<i64>(&mut c, &["TTL", "nope"]), -2);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "user:1", "100", "XX"]), 0);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "user:1", "100", "NX"]), 1);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "user:1", "50", "GT"]), 0);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "user:1", "200", "GT"]), 1);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "user:1", "150", "LT"]), 1);
    assert!((149..=150).contains(&q::<i64>(&mut c, &["TTL", "user:1"])));
    assert!(err(&mut c, &["EXPIRE", "user:1", "1", "NX", "XX"]).contains("not compatible"));
    assert_eq!(q::<i64>(&mut c, &["PERSIST", "user:1"]), 1);
    assert_eq!(q::<i64>(&mut c, &["PERSIST", "user:1"]), 0);
    assert_eq!(q::<i64>(&mut c, &["PEXPIRE", "user:1", "100000"]), 1);
    assert!(q::<i64>(&mut c, &["PTTL", "user:1"]) > 99_000);
    assert_eq!(q::<i64>(&mut c, &["EXPIRE", "user:1", "-1"]), 1);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "user:1"]), 0);
    // RENAME and COPY keep value and TTL.
    q::<()>(&mut c, &["SET", "src", "payload", "EX", "500"]);
    assert_eq!(q::<String>(&mut c, &["RENAME", "src", "dst"]), "OK");
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "src"]), None);
    assert_eq!(q::<String>(&mut c, &["GET", "dst"]), "payload");
    assert!(q::<i64>(&mut c, &["TTL", "dst"]) > 490);
    assert!(err(&mut c, &["RENAME", "src", "x"]).contains("no such key"));
    assert_eq!(q::<i64>(&mut c, &["RENAMENX", "dst", "user:2"]), 0);
    assert_eq!(q::<i64>(&mut c, &["COPY", "dst", "user:2"]), 0);
    assert_eq!(q::<i64>(&mut c, &["COPY", "dst", "user:2", "REPLACE"]), 1);
    assert_eq!(q::<i64>(&mut c, &["COPY", "dst", "dst", "DB", "5"]), 1);
    // Databases are separate namespaces.
    assert_eq!(q::<String>(&mut c, &["SELECT", "5"]), "OK");
    assert_eq!(q::<String>(&mut c, &["GET", "dst"]), "payload");
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 1);
    assert_eq!(q::<String>(&mut c, &["FLUSHDB"]), "OK");
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 0);
    assert!(err(&mut c, &["SELECT", "16"]).contains("DB index is out of range"));
    assert_eq!(q::<String>(&mut c, &["SELECT", "0"]), "OK");
    assert!(q::<i64>(&mut c, &["DBSIZE"]) > 300);
    assert_eq!(q::<String>(&mut c, &["FLUSHALL"]), "OK");
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 0);
}

#[test]
fn errors_match_redis_texts() {
    let s = Server::start(&[]);
    let mut c = s.client();
    assert!(err(&mut c, &["GET"]).contains("wrong number of arguments for 'get' command"));
    assert!(
        err(&mut c, &["NOSUCH", "a", "b"])
            .contains("unknown command 'NOSUCH', with args beginning with: 'a' 'b'")
    );
    assert!(err(&mut c, &["INCRBY", "n", "1.5"]).contains("not an integer"));
    assert!(err(&mut c, &["CLIENT", "BOGUS"]).contains("Try CLIENT HELP"));
    assert!(err(&mut c, &["HELLO", "4"]).contains("NOPROTO"));
    // The connection is still usable after errors.
    assert_eq!(q::<String>(&mut c, &["PING"]), "PONG");
}

#[test]
fn resp3_replies() {
    let s = Server::start(&[]);
    let mut c = s.client_resp3();
    q::<()>(&mut c, &["SET", "k", "v"]);
    let hello: Value = q(&mut c, &["HELLO", "3"]);
    let Value::Map(pairs) = hello else {
        panic!("HELLO 3 should return a map, got {hello:?}");
    };
    let proto = pairs
        .iter()
        .find(|(k, _)| matches!(k, Value::BulkString(b) if b == b"proto"))
        .map(|(_, v)| v.clone());
    assert_eq!(proto, Some(Value::Int(3)));
    assert_eq!(q::<Value>(&mut c, &["GET", "nope"]), Value::Nil);
    assert!(matches!(
        q::<Value>(&mut c, &["CONFIG", "GET", "port"]),
        Value::Map(_)
    ));
    assert_eq!(q::<String>(&mut c, &["GET", "k"]), "v");
}

#[test]
fn auth_is_required_when_configured() {
    let s = Server::start(&["--requirepass", "s3cret"]);
    let mut c = redis::Client::open(s.url())
        .expect("client")
        .get_connection()
        .expect("connect");
    assert!(err(&mut c, &["GET", "k"]).contains("NOAUTH"));
    assert!(err(&mut c, &["AUTH", "wrong"]).contains("WRONGPASS"));
    assert_eq!(q::<String>(&mut c, &["AUTH", "s3cret"]), "OK");
    assert_eq!(q::<String>(&mut c, &["SET", "k", "v"]), "OK");
    // A client library authenticating through HELLO, as redis-py and others do.
    let url = format!(
        "redis://default:s3cret@127.0.0.1:{}/?protocol=resp3",
        s.port
    );
    let mut c3 = redis::Client::open(url)
        .expect("client")
        .get_connection()
        .expect("connect");
    assert_eq!(q::<String>(&mut c3, &["GET", "k"]), "v");
}

#[test]
fn client_info_and_introspection() {
    let s = Server::start(&[]);
    let mut c = s.client();
    assert_eq!(q::<String>(&mut c, &["CLIENT", "SETNAME", "tester"]), "OK");
    assert_eq!(q::<String>(&mut c, &["CLIENT", "GETNAME"]), "tester");
    let id: i64 = q(&mut c, &["CLIENT", "ID"]);
    let list: String = q(&mut c, &["CLIENT", "LIST"]);
    assert!(
        list.contains(&format!("id={id} ")) && list.contains("name=tester"),
        "{list}"
    );
    // Each line names the last command its client ran.
    let mut other = s.client();
    let other_id: i64 = q(&mut other, &["CLIENT", "ID"]);
    let _: Option<String> = q(&mut other, &["GET", "nothing"]);
    let list: String = q(&mut c, &["CLIENT", "LIST"]);
    let line = list
        .lines()
        .find(|l| l.starts_with(&format!("id={other_id} ")))
        .expect("the other client's line");
    assert!(line.contains(" cmd=get "), "{line}");
    // A subcommand by its full name, as Redis 7 gives it: this very CLIENT LIST.
    let own = list
        .lines()
        .find(|l| l.starts_with(&format!("id={id} ")))
        .expect("this client's line");
    assert!(own.contains(" cmd=client|list "), "{own}");
    let info: String = q(&mut c, &["INFO"]);
    for field in [
        "redis_version:7.",
        "arch_bits:64",
        "cluster_enabled:0",
        "connected_clients:",
        "used_memory:",
        "# Keyspace",
        "# Caskade",
    ] {
        assert!(info.contains(field), "INFO lacks {field}");
    }
    q::<()>(&mut c, &["SET", "k", "v"]);
    let ks: String = q(&mut c, &["INFO", "keyspace"]);
    assert!(ks.contains("db0:keys=1,"), "{ks}");
    assert!(!ks.contains("# Server"));
    assert!(q::<i64>(&mut c, &["COMMAND", "COUNT"]) > 50);
    let (secs, _micros): (String, String) = q(&mut c, &["TIME"]);
    assert!(secs.parse::<u64>().expect("secs") > 1_700_000_000);
    assert_eq!(q::<String>(&mut c, &["OBJECT", "ENCODING", "k"]), "embstr");
    assert!(q::<i64>(&mut c, &["MEMORY", "USAGE", "k"]) > 0);
    assert_eq!(q::<String>(&mut c, &["FUNCTION", "FLUSH"]), "OK");
    assert_eq!(
        q::<Vec<Value>>(&mut c, &["SLOWLOG", "GET"]).len() as i64,
        q::<i64>(&mut c, &["SLOWLOG", "LEN"])
    );
    // CLIENT KILL closes the other connection.
    let mut victim = s.client();
    let vid: i64 = q(&mut victim, &["CLIENT", "ID"]);
    assert_eq!(
        q::<i64>(&mut c, &["CLIENT", "KILL", "ID", &vid.to_string()]),
        1
    );
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(redis::cmd("PING").query::<String>(&mut victim).is_err());
}

#[test]
fn concurrent_increments_are_atomic() {
    let s = Server::start(&[]);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let mut c = s.client();
            std::thread::spawn(move || {
                for _ in 0..250 {
                    q::<i64>(&mut c, &["INCR", "counter"]);
                    q::<i64>(&mut c, &["APPEND", "log", "x"]);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let mut c = s.client();
    assert_eq!(q::<i64>(&mut c, &["GET", "counter"]), 1000);
    assert_eq!(q::<i64>(&mut c, &["STRLEN", "log"]), 1000);
}

#[test]
fn sigterm_exits_cleanly_and_restart_serves_the_same_data() {
    let mut s = Server::start(&["--fsync", "never"]);
    {
        let mut c = s.client();
        for i in 0..500 {
            q::<()>(&mut c, &["SET", &format!("key:{i}"), &format!("value:{i}")]);
        }
        q::<()>(&mut c, &["SET", "ttl", "v", "EX", "1000"]);
        q::<()>(&mut c, &["SELECT", "3"]);
        q::<()>(&mut c, &["SET", "in-db3", "yes"]);
    }
    let status = s.stop();
    assert!(status.success(), "exit status {status:?}");
    s.restart();
    let mut c = s.client();
    for i in 0..500 {
        assert_eq!(
            q::<String>(&mut c, &["GET", &format!("key:{i}")]),
            format!("value:{i}")
        );
    }
    assert!(q::<i64>(&mut c, &["TTL", "ttl"]) > 990);
    q::<()>(&mut c, &["SELECT", "3"]);
    assert_eq!(q::<String>(&mut c, &["GET", "in-db3"]), "yes");
}

/// SWAPDB's +OK means the exchange is on disk: after kill -9 each database still
/// holds what the other held, and a write after the swap lands where it was sent.
#[test]
fn swapdb_survives_a_crash() {
    let mut s = Server::start(&["--fsync", "always"]);
    {
        let mut c = s.client();
        q::<()>(&mut c, &["SET", "where", "was-0"]);
        q::<()>(&mut c, &["SELECT", "5"]);
        q::<()>(&mut c, &["SET", "where", "was-5"]);
        q::<()>(&mut c, &["SWAPDB", "0", "5"]);
        q::<()>(&mut c, &["SET", "after", "in-5"]);
    }
    s.kill();
    s.restart();
    let mut c = s.client();
    assert_eq!(q::<String>(&mut c, &["GET", "where"]), "was-5");
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "after"]), None);
    q::<()>(&mut c, &["SELECT", "5"]);
    assert_eq!(q::<String>(&mut c, &["GET", "where"]), "was-0");
    assert_eq!(q::<String>(&mut c, &["GET", "after"]), "in-5");
    let info: String = q(&mut c, &["INFO", "keyspace"]);
    assert!(
        info.contains("db0:keys=1,") && info.contains("db5:keys=2,"),
        "{info}"
    );
}
