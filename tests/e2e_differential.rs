//! The differential test: the same command scripts against caskade and a real
//! `redis-server` (Debian's 7.0, started here), replies compared exactly, types
//! included, in RESP2 and in RESP3.
//!
//! Scripts are `tests/differential/*.redis`, one command per line as redis-cli takes
//! it. A line may start with `@N ` to run on connection N (default 1; for WATCH and
//! other clients' effects), `? ` to run without comparing (a nondeterministic reply),
//! `~ ` to compare only the reply's shape (types and lengths), `% ` to compare the
//! elements in any order (a big collection's order is its table's), or `!sleep MS`. Each
//! script starts from FLUSHALL. Where caskade differs on purpose, the difference is
//! listed in `tests/differential/DIFFERENCES` with its reason; a listed difference that
//! no longer differs fails the test too, so the list stays true. Generated sequences
//! (proptest) over a small key space are compared the same way.

mod common;

use common::Server;
use common::resp::{Conn, RedisServer, Value, split};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/differential");

/// The connections of one side (caskade or Redis) for one script run.
struct Side {
    port: u16,
    resp3: bool,
    conns: BTreeMap<usize, Conn>,
}

impl Side {
    fn new(port: u16, resp3: bool) -> Side {
        Side {
            port,
            resp3,
            conns: BTreeMap::new(),
        }
    }

    fn conn(&mut self, n: usize) -> &mut Conn {
        let (port, resp3) = (self.port, self.resp3);
        self.conns.entry(n).or_insert_with(|| {
            let mut c = Conn::connect(port);
            if resp3 {
                let hello = c.cmd("HELLO 3");
                assert!(matches!(hello, Value::Map(_)), "HELLO 3: {hello:?}");
            }
            c
        })
    }
}

/// How a line is compared.
#[derive(Clone, Copy, PartialEq)]
enum Compare {
    Exact,
    Shape,
    Not,
    /// `%`: the same elements in any order (a big hash's or set's order is its table's).
    Unordered,
}

/// `v` with the elements of its arrays, sets and maps sorted (one level down, so a
/// flat RESP2 field-value array compares as a multiset).
fn sorted(v: &Value) -> Value {
    let key = |x: &Value| format!("{x:?}");
    match v {
        Value::Array(items) | Value::Set(items) => {
            let mut items: Vec<Value> = items.iter().map(sorted).collect();
            items.sort_by_key(key);
            Value::Array(items)
        }
        Value::Map(pairs) => {
            let mut pairs = pairs.clone();
            pairs.sort_by_key(|(k, _)| key(k));
            Value::Map(pairs)
        }
        other => other.clone(),
    }
}

/// One script line, parsed.
struct Line {
    no: usize,
    conn: usize,
    compare: Compare,
    text: String,
    args: Vec<Vec<u8>>,
}

fn parse_script(name: &str, text: &str) -> Vec<Line> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let mut l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let mut conn = 1;
        if let Some(rest) = l.strip_prefix('@') {
            let (n, rest) = rest.split_once(' ').expect("@N command");
            conn = n.parse().expect("connection number");
            l = rest.trim();
        }
        let compare = match l.as_bytes().first() {
            Some(b'?') => Compare::Not,
            Some(b'~') => Compare::Shape,
            Some(b'%') => Compare::Unordered,
            _ => Compare::Exact,
        };
        if compare != Compare::Exact {
            l = l[1..].trim();
        }
        let args = split(l).unwrap_or_else(|e| panic!("{name}:{}: {e}", i + 1));
        out.push(Line {
            no: i + 1,
            conn,
            compare,
            text: l.to_string(),
            args,
        });
    }
    out
}

/// `file: command | reason` entries.
fn differences() -> BTreeMap<(String, String), String> {
    let text = std::fs::read_to_string(Path::new(DIR).join("DIFFERENCES")).unwrap_or_default();
    let mut out = BTreeMap::new();
    for l in text.lines() {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let (place, reason) = l.split_once(" | ").expect("`file: command | reason`");
        let (file, cmd) = place.split_once(": ").expect("`file: command`");
        out.insert(
            (file.trim().to_string(), cmd.trim().to_string()),
            reason.to_string(),
        );
    }
    out
}

fn run_line(side: &mut Side, line: &Line) -> Option<Value> {
    if line
        .args
        .first()
        .is_some_and(|a| a.eq_ignore_ascii_case(b"!sleep"))
    {
        let ms: u64 = String::from_utf8_lossy(&line.args[1]).parse().expect("ms");
        std::thread::sleep(std::time::Duration::from_millis(ms));
        return None;
    }
    Some(side.conn(line.conn).call(&line.args))
}

/// Runs `lines` on both sides; returns the mismatches (command, report) and the
/// commands that matched.
fn compare(
    name: &str,
    lines: &[Line],
    caskade: u16,
    redis: u16,
    resp3: bool,
) -> (Vec<(String, String)>, BTreeSet<String>) {
    let mut a = Side::new(caskade, resp3);
    let mut b = Side::new(redis, resp3);
    for s in [&mut a, &mut b] {
        let flushed = s.conn(1).cmd("FLUSHALL");
        assert_eq!(flushed, Value::Status("OK".into()));
    }
    let mut bad = Vec::new();
    let mut matched = BTreeSet::new();
    for line in lines {
        let (Some(got), Some(want)) = (run_line(&mut a, line), run_line(&mut b, line)) else {
            continue;
        };
        let same = match line.compare {
            Compare::Exact => got == want,
            Compare::Shape => got.same_shape(&want),
            Compare::Unordered => sorted(&got) == sorted(&want),
            Compare::Not => true,
        };
        if same {
            matched.insert(line.text.clone());
        } else {
            bad.push((
                line.text.clone(),
                format!(
                    "{name}:{} (RESP{}) {}\n    redis:   {want:?}\n    caskade: {got:?}",
                    line.no,
                    if resp3 { 3 } else { 2 },
                    line.text
                ),
            ));
        }
    }
    (bad, matched)
}

#[test]
fn scripts_answer_as_redis_does_in_resp2_and_resp3() {
    let redis = RedisServer::start();
    let caskade = Server::start(&[]);
    let known = differences();
    let mut scripts: Vec<_> = std::fs::read_dir(DIR)
        .expect("tests/differential")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "redis"))
        // DIFFERENTIAL_ONLY=name runs one script (while working on it).
        .filter(|p| {
            std::env::var("DIFFERENTIAL_ONLY")
                .map_or(true, |only| p.file_stem().is_some_and(|s| *s == *only))
        })
        .collect();
    scripts.sort();
    assert!(!scripts.is_empty());
    let mut failures = Vec::new();
    let mut listed_and_matching = Vec::new();
    for path in &scripts {
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let lines = parse_script(&name, &std::fs::read_to_string(path).expect("read"));
        let mut matched_in_both: Option<BTreeSet<String>> = None;
        for resp3 in [false, true] {
            let (bad, matched) = compare(&name, &lines, caskade.port, redis.port, resp3);
            for (cmd, report) in bad {
                if !known.contains_key(&(name.clone(), cmd)) {
                    failures.push(report);
                }
            }
            matched_in_both = Some(match matched_in_both {
                None => matched,
                Some(m) => m.intersection(&matched).cloned().collect(),
            });
        }
        let matched = matched_in_both.unwrap_or_default();
        for (file, cmd) in known.keys().filter(|(f, _)| *f == name) {
            if matched.contains(cmd) {
                listed_and_matching.push(format!("{file}: {cmd}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} replies differ from Redis:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        listed_and_matching.is_empty(),
        "listed in DIFFERENCES but answering as Redis does (remove them): {listed_and_matching:?}"
    );
}

/// Commands the generator draws from: `{k}` is one of a few keys, `{v}` a value,
/// `{n}` a small integer.
const TEMPLATES: &[&str] = &[
    "SET {k} {v}",
    "SET {k} {v} NX",
    "SET {k} {v} XX GET",
    "GET {k}",
    "GETDEL {k}",
    "APPEND {k} {v}",
    "INCR {k}",
    "INCRBY {k} {n}",
    "DECRBY {k} {n}",
    "STRLEN {k}",
    "GETRANGE {k} {n} -{n}",
    "SETRANGE {k} {n} {v}",
    "MSET {k} {v} {k} {v}",
    "MGET {k} {k} {k}",
    "MSETNX {k} {v} {k} {v}",
    "DEL {k} {k}",
    "EXISTS {k} {k}",
    "TYPE {k}",
    "RENAME {k} {k}",
    "RENAMENX {k} {k}",
    "COPY {k} {k}",
    "COPY {k} {k} REPLACE",
    "EXPIRE {k} 100",
    "PERSIST {k}",
    "TTL {k}",
    "DBSIZE",
    "SETBIT {k} {n} 1",
    "GETBIT {k} {n}",
    "BITCOUNT {k}",
    "BITPOS {k} 1",
    "BITOP XOR {k} {k} {k}",
    "BITFIELD {k} INCRBY i5 {n} {v}",
    "HSET {k} {v} {v}",
    "HSETNX {k} {v} {v}",
    "HGET {k} {v}",
    "HDEL {k} {v}",
    "HGETALL {k}",
    "HINCRBY {k} {v} {n}",
    "HLEN {k}",
    "SADD {k} {v} {v}",
    "SREM {k} {v}",
    "% SMEMBERS {k}",
    "SISMEMBER {k} {v}",
    "SCARD {k}",
    "% SINTER {k} {k}",
    "% SUNION {k} {k}",
    "SDIFFSTORE {k} {k} {k}",
    "SMOVE {k} {k} {v}",
    "SINTERCARD 2 {k} {k}",
    "RPUSH {k} {v} {v}",
    "LPUSH {k} {v}",
    "LPOP {k}",
    "RPOP {k} {n}",
    "LLEN {k}",
    "LRANGE {k} {n} -{n}",
    "LINDEX {k} -{n}",
    "LSET {k} {n} {v}",
    "LREM {k} -{n} {v}",
    "LTRIM {k} {n} -{n}",
    "LINSERT {k} BEFORE {v} {v}",
    "LPOS {k} {v} RANK {n} COUNT {n}",
    "LMOVE {k} {k} LEFT RIGHT",
    "RPOPLPUSH {k} {k}",
    "ZADD {k} {n} {v} {n} {v}",
    "ZADD {k} GT CH {v} {v}",
    "ZADD {k} INCR {n} {v}",
    "ZINCRBY {k} -{n} {v}",
    "ZREM {k} {v}",
    "ZSCORE {k} {v}",
    "ZRANK {k} {v}",
    "ZRANGE {k} {n} -{n} WITHSCORES",
    "ZRANGE {k} ({n} +inf BYSCORE LIMIT {n} {n}",
    "ZRANGEBYLEX {k} [{v} +",
    "ZCOUNT {k} -{n} {n}",
    "ZPOPMIN {k} {n}",
    "ZMPOP 2 {k} {k} MAX",
    "ZREMRANGEBYRANK {k} {n} -{n}",
    "ZUNIONSTORE {k} 2 {k} {k} WEIGHTS {n} -{n}",
    "ZINTER 2 {k} {k} WITHSCORES",
    "ZDIFF 2 {k} {k}",
    "ZCARD {k}",
    "MULTI",
    "EXEC",
    "DISCARD",
];

fn fill(template: &str, picks: &[u8]) -> String {
    let mut out = String::new();
    let mut p = picks.iter().cycle();
    let mut rest = template;
    while let Some(at) = rest.find('{') {
        out.push_str(&rest[..at]);
        let end = rest[at..].find('}').expect("closing brace") + at;
        let r = *p.next().expect("picks");
        match &rest[at + 1..end] {
            "k" => out.push_str(["a", "b", "c"][r as usize % 3]),
            "v" => out.push_str(["1", "x", "-7", "10", "\"a b\""][r as usize % 5]),
            _ => out.push_str(&(r % 6).to_string()),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn generated_sequences_answer_as_redis_does() {
    let redis = RedisServer::start();
    let caskade = Server::start(&[]);
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    let seq = proptest::collection::vec(
        (
            0..TEMPLATES.len(),
            proptest::collection::vec(any::<u8>(), 4),
        ),
        1..24,
    );
    runner
        .run(&seq, |steps| {
            let text: String = steps
                .iter()
                .map(|(t, picks)| fill(TEMPLATES[*t], picks) + "\n")
                .collect();
            let lines = parse_script("generated", &text);
            for resp3 in [false, true] {
                let (bad, _) = compare("generated", &lines, caskade.port, redis.port, resp3);
                let reports: Vec<&str> = bad.iter().map(|(_, r)| r.as_str()).collect();
                prop_assert!(bad.is_empty(), "{}\nsequence:\n{text}", reports.join("\n"));
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

/// COMMAND DOCS and COMMAND INFO of every caskade command (and subcommand) against
/// Redis' in RESP3: the argument grammar, groups, versions, flags, ACL categories and
/// tips must be Redis'. Not compared: the prose (summary, complexity, replaced_by and
/// history are caskade's own words; caskade has no history), key specs (caskade
/// reports none), the subcommands caskade does not have, and the flags of container
/// commands (caskade routes on them; Redis keeps them on the subcommands).
#[test]
fn command_docs_and_info_match_redis() {
    let redis = RedisServer::start();
    let caskade = Server::start(&[]);
    let mut ours = Side::new(caskade.port, true);
    let mut theirs = Side::new(redis.port, true);
    let Value::Array(names) = ours.conn(1).cmd("COMMAND LIST") else {
        panic!("COMMAND LIST")
    };
    let mut failures = Vec::new();
    // Commands of a later Redis (7.2) caskade has: Debian's 7.0 has no docs for them.
    let newer = ["client|setinfo", "client|no-touch"];
    let mut compared = 0;
    for name in names {
        let Value::Bulk(name) = name else {
            panic!("a name")
        };
        let name = String::from_utf8(name).expect("utf-8");
        // caskade's own command (CASKADE COMPACT): Redis has nothing to compare.
        if name == "caskade" {
            continue;
        }
        let doc = |side: &mut Side| match side.conn(1).call(&[
            b"COMMAND".to_vec(),
            b"DOCS".to_vec(),
            name.clone().into_bytes(),
        ]) {
            Value::Map(mut m) if m.len() == 1 => m.remove(0).1,
            other => panic!("COMMAND DOCS {name}: {other:?}"),
        };
        let (mine, reference) = (doc(&mut ours), doc(&mut theirs));
        let mine_subs = subcommand_names(&mine);
        for sub in mine_subs.iter().filter(|s| !newer.contains(&s.as_str())) {
            assert!(
                subcommand_names(&reference).contains(sub),
                "Redis has no {sub}"
            );
        }
        let (a, b) = (
            docs_compared(&mine, &mine_subs),
            docs_compared(&reference, &mine_subs),
        );
        let b = without(b, &newer);
        let a = without(a, &newer);
        if a != b {
            failures.push(format!(
                "COMMAND DOCS {name}\n  caskade: {a:?}\n  redis:   {b:?}"
            ));
        }
        let info = |side: &mut Side, n: &str| match side.conn(1).call(&[
            b"COMMAND".to_vec(),
            b"INFO".to_vec(),
            n.as_bytes().to_vec(),
        ]) {
            Value::Array(mut v) if v.len() == 1 => v.remove(0),
            other => panic!("COMMAND INFO {n}: {other:?}"),
        };
        let container = !mine_subs.is_empty();
        let mut infos = vec![(name.clone(), container)];
        infos.extend(
            mine_subs
                .iter()
                .filter(|s| !newer.contains(&s.as_str()))
                .map(|s| (s.clone(), false)),
        );
        for (n, container) in infos {
            let (a, b) = (
                info_compared(info(&mut ours, &n), container),
                info_compared(info(&mut theirs, &n), container),
            );
            if a != b {
                failures.push(format!(
                    "COMMAND INFO {n}\n  caskade: {a:?}\n  redis:   {b:?}"
                ));
            }
            compared += 1;
        }
    }
    assert!(compared > 100, "only {compared} commands compared");
    assert!(
        failures.is_empty(),
        "{} differ from Redis:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn key_is(k: &Value, name: &str) -> bool {
    matches!(k, Value::Bulk(b) if b == name.as_bytes())
}

fn subcommand_names(doc: &Value) -> Vec<String> {
    let Value::Map(m) = doc else { return vec![] };
    m.iter()
        .filter(|(k, _)| key_is(k, "subcommands"))
        .flat_map(|(_, v)| match v {
            Value::Map(s) => s
                .iter()
                .map(|(k, _)| format!("{k:?}").trim_matches('"').to_owned())
                .collect(),
            _ => vec![],
        })
        .collect()
}

/// A COMMAND DOCS map without prose, maps and sets sorted, subcommands limited to
/// `keep`.
fn docs_compared(v: &Value, keep: &[String]) -> Value {
    const PROSE: &[&str] = &["summary", "complexity", "replaced_by", "history"];
    match v {
        Value::Map(m) => {
            let mut out: Vec<(Value, Value)> = m
                .iter()
                .filter(|(k, _)| !PROSE.iter().any(|p| key_is(k, p)))
                .map(|(k, v)| {
                    let v = if key_is(k, "subcommands") {
                        let Value::Map(s) = v else {
                            panic!("subcommands map")
                        };
                        let mut s: Vec<(Value, Value)> = s
                            .iter()
                            .filter(|(n, _)| keep.iter().any(|kn| key_is(n, kn)))
                            .map(|(n, d)| (n.clone(), docs_compared(d, keep)))
                            .collect();
                        s.sort_by_key(|(k, _)| format!("{k:?}"));
                        Value::Map(s)
                    } else {
                        docs_compared(v, keep)
                    };
                    (k.clone(), v)
                })
                .collect();
            out.sort_by_key(|(k, _)| format!("{k:?}"));
            Value::Map(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| docs_compared(x, keep)).collect()),
        Value::Set(s) => {
            let mut s: Vec<Value> = s.iter().map(|x| docs_compared(x, keep)).collect();
            s.sort_by_key(|x| format!("{x:?}"));
            Value::Set(s)
        }
        other => other.clone(),
    }
}

/// Removes the named subcommands from a compared COMMAND DOCS map.
fn without(v: Value, names: &[&str]) -> Value {
    let Value::Map(m) = v else { return v };
    Value::Map(
        m.into_iter()
            .map(|(k, v)| match v {
                Value::Map(s) if key_is(&k, "subcommands") => (
                    k,
                    Value::Map(
                        s.into_iter()
                            .filter(|(n, _)| !names.iter().any(|x| key_is(n, x)))
                            .collect(),
                    ),
                ),
                v => (k, v),
            })
            .collect(),
    )
}

/// COMMAND INFO's fields that are compared: name, arity, flags (not for a container),
/// key positions, ACL categories and tips, sets sorted.
fn info_compared(v: Value, container: bool) -> Vec<Value> {
    let Value::Array(f) = v else {
        panic!("COMMAND INFO entry: {v:?}")
    };
    let sorted = |x: &Value| match x {
        Value::Set(s) => {
            let mut s = s.clone();
            s.sort_by_key(|x| format!("{x:?}"));
            Value::Set(s)
        }
        other => other.clone(),
    };
    let mut out = vec![f[0].clone(), f[1].clone()];
    if !container {
        out.push(sorted(&f[2]));
    }
    out.extend(f[3..6].iter().cloned());
    out.push(sorted(&f[6]));
    out.push(sorted(&f[7]));
    out
}
