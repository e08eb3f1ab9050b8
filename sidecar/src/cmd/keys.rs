//! Keyspace commands: DEL, EXISTS, TYPE, the EXPIRE/TTL family, RENAME and COPY,
//! SCAN/KEYS/RANDOMKEY, DBSIZE and the flushes. Each parses into a [`Cmd`] and applies
//! to a keyspace.

use super::DataCmd;
use super::args::{Args, is};
use super::error::{CmdError, CmdResult};
use crate::glob;
use crate::keyspace::Keyspace;
use crate::protocol::reply::Reply;
use bytes::Bytes;
use caskade_engine::{NAMESPACES, ValueType};

/// EXPIRE's conditions (NX, XX, GT, LT).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ExpireIf {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

impl ExpireIf {
    /// Whether a key whose expiry is `cur` (None: absent... no expiry) may take `at`.
    fn allows(self, cur: Option<u64>, at: u64) -> bool {
        match cur {
            None => !(self.xx || self.gt),
            Some(c) => !self.nx && (!self.gt || at > c) && (!self.lt || at < c),
        }
    }
}

/// How a TTL-family command reports an expiry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TtlUnit {
    /// TTL: seconds left, rounded.
    SecondsLeft,
    /// PTTL: ms left.
    MillisLeft,
    /// EXPIRETIME: Unix seconds.
    UnixSeconds,
    /// PEXPIRETIME: Unix ms.
    UnixMillis,
}

/// SCAN's options.
#[derive(Debug, Clone, PartialEq)]
pub struct Scan<'a> {
    cursor: u64,
    pattern: Option<&'a Bytes>,
    count: usize,
    /// TYPE given and not a type's name: no key matches.
    no_match: bool,
    /// TYPE given: only keys of that type.
    vtype: Option<ValueType>,
}

/// Redis' name of a type.
pub fn type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::String => "string",
        ValueType::Hash => "hash",
        ValueType::Set => "set",
        ValueType::ZSet => "zset",
        ValueType::List => "list",
    }
}

fn type_named(name: &[u8]) -> Option<ValueType> {
    [
        ValueType::String,
        ValueType::Hash,
        ValueType::Set,
        ValueType::ZSet,
        ValueType::List,
    ]
    .into_iter()
    .find(|&t| is(name, type_name(t)))
}

/// A keyspace command, parsed; it borrows its keys from the request.
#[derive(Debug, Clone, PartialEq)]
pub enum Cmd<'a> {
    /// DEL / UNLINK key...
    Del(&'a [Bytes]),
    /// EXISTS / TOUCH key...
    Exists(&'a [Bytes]),
    /// TYPE key
    Type(&'a Bytes),
    /// EXPIRE family: the key, the time as given in ms, whether absolute, conditions.
    Expire {
        /// The key.
        key: &'a Bytes,
        /// The time, relative or absolute, in ms.
        ms: i64,
        /// EXPIREAT/PEXPIREAT.
        absolute: bool,
        /// NX/XX/GT/LT.
        cond: ExpireIf,
        /// The command, for its error text.
        cmd: &'static str,
    },
    /// TTL family.
    Ttl(&'a Bytes, TtlUnit),
    /// PERSIST key
    Persist(&'a Bytes),
    /// RENAME / RENAMENX src dst
    Rename {
        /// The key moved.
        src: &'a Bytes,
        /// Its new name.
        dst: &'a Bytes,
        /// RENAMENX.
        nx: bool,
    },
    /// MOVE key db
    Move {
        /// The key moved.
        key: &'a Bytes,
        /// Where to.
        db: u8,
    },
    /// COPY src dst [DB n] [REPLACE]
    Copy {
        /// The key copied.
        src: &'a Bytes,
        /// The copy's name.
        dst: &'a Bytes,
        /// The copy's database (None: the same).
        db: Option<u8>,
        /// REPLACE.
        replace: bool,
    },
    /// SCAN cursor [MATCH p] [COUNT n] [TYPE t]
    Scan(Scan<'a>),
    /// KEYS pattern
    Keys(&'a Bytes),
    /// RANDOMKEY
    RandomKey,
    /// DBSIZE
    DbSize,
    /// FLUSHDB / FLUSHALL [ASYNC|SYNC]
    Flush {
        /// FLUSHALL.
        all: bool,
    },
    /// SWAPDB index1 index2
    SwapDb(u8, u8),
}

fn keyed(c: Cmd<'_>) -> Result<DataCmd<'_>, CmdError> {
    Ok(DataCmd::Key(c))
}

pub fn del<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    keyed(Cmd::Del(a.take_rest()))
}

pub fn exists<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    keyed(Cmd::Exists(a.take_rest()))
}

pub fn type_<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let key = a.next_key()?;
    a.finish()?;
    keyed(Cmd::Type(key))
}

fn expire_generic<'a>(
    a: &mut Args<'a>,
    unit: i64,
    absolute: bool,
) -> Result<DataCmd<'a>, CmdError> {
    let cmd = a.cmd();
    let key = a.next_key()?;
    let n = a.next_i64()?;
    let mut cond = ExpireIf::default();
    while let Some(opt) = a.next_opt() {
        if is(opt, "nx") {
            cond.nx = true;
        } else if is(opt, "xx") {
            cond.xx = true;
        } else if is(opt, "gt") {
            cond.gt = true;
        } else if is(opt, "lt") {
            cond.lt = true;
        } else {
            return Err(CmdError::err(format!(
                "Unsupported option {}",
                String::from_utf8_lossy(opt)
            )));
        }
    }
    if cond.nx && (cond.xx || cond.gt || cond.lt) {
        return Err(CmdError::err(
            "NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if cond.gt && cond.lt {
        return Err(CmdError::err(
            "GT and LT options at the same time are not compatible",
        ));
    }
    let ms = n.checked_mul(unit).ok_or(CmdError::InvalidExpire(cmd))?;
    keyed(Cmd::Expire {
        key,
        ms,
        absolute,
        cond,
        cmd,
    })
}

pub fn expire<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    expire_generic(a, 1000, false)
}

pub fn pexpire<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    expire_generic(a, 1, false)
}

pub fn expireat<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    expire_generic(a, 1000, true)
}

pub fn pexpireat<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    expire_generic(a, 1, true)
}

fn ttl_generic<'a>(a: &mut Args<'a>, unit: TtlUnit) -> Result<DataCmd<'a>, CmdError> {
    let key = a.next_key()?;
    a.finish()?;
    keyed(Cmd::Ttl(key, unit))
}

pub fn ttl<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    ttl_generic(a, TtlUnit::SecondsLeft)
}

pub fn pttl<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    ttl_generic(a, TtlUnit::MillisLeft)
}

pub fn expiretime<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    ttl_generic(a, TtlUnit::UnixSeconds)
}

pub fn pexpiretime<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    ttl_generic(a, TtlUnit::UnixMillis)
}

pub fn persist<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let key = a.next_key()?;
    a.finish()?;
    keyed(Cmd::Persist(key))
}

fn rename_generic<'a>(a: &mut Args<'a>, nx: bool) -> Result<DataCmd<'a>, CmdError> {
    let (src, dst) = (a.next_key()?, a.next_key()?);
    a.finish()?;
    keyed(Cmd::Rename { src, dst, nx })
}

pub fn rename<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    rename_generic(a, false)
}

pub fn renamenx<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    rename_generic(a, true)
}

/// A database index argument (`ERR DB index is out of range` past the last).
pub fn db_index(a: &mut Args<'_>) -> Result<u8, CmdError> {
    let n = a.next_i64()?;
    if (0..NAMESPACES as i64).contains(&n) {
        Ok(n as u8)
    } else {
        Err(CmdError::err("DB index is out of range"))
    }
}

pub fn move_<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let key = a.next_key()?;
    let db = db_index(a)?;
    a.finish()?;
    keyed(Cmd::Move { key, db })
}

pub fn copy<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let (src, dst) = (a.next_key()?, a.next_key()?);
    let (mut db, mut replace) = (None, false);
    while !a.is_empty() {
        if a.eat("replace") {
            replace = true;
        } else if a.remaining() >= 2 && a.eat("db") {
            db = Some(db_index(a)?);
        } else {
            return Err(CmdError::Syntax);
        }
    }
    keyed(Cmd::Copy {
        src,
        dst,
        db,
        replace,
    })
}

pub fn scan<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let cursor = a.next_cursor()?;
    let o = a.scan_options(true)?;
    let vtype = o.type_name.and_then(|t| type_named(t));
    keyed(Cmd::Scan(Scan {
        cursor,
        pattern: o.pattern,
        count: o.count,
        no_match: o.type_name.is_some() && vtype.is_none(),
        vtype,
    }))
}

pub fn keys<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let pattern = a.next_arg()?;
    keyed(Cmd::Keys(pattern))
}

pub fn randomkey<'a>(_a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    keyed(Cmd::RandomKey)
}

pub fn dbsize<'a>(_a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    keyed(Cmd::DbSize)
}

fn flush<'a>(a: &mut Args<'a>, all: bool) -> Result<DataCmd<'a>, CmdError> {
    match a.take_rest() {
        [] => {}
        [m] if is(m, "async") || is(m, "sync") => {}
        _ => return Err(CmdError::Syntax),
    }
    keyed(Cmd::Flush { all })
}

pub fn flushdb<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    flush(a, false)
}

pub fn flushall<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    flush(a, true)
}

/// SWAPDB index1 index2: a non-integer is named (`invalid first DB index`), an index
/// out of range is not, as in Redis.
pub fn swapdb<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let mut index = |which: &str| {
        let n = super::args::parse_i64(a.next_arg()?)
            .ok_or_else(|| CmdError::err(format!("invalid {which} DB index")))?;
        Ok::<_, CmdError>(n)
    };
    let (first, second) = (index("first")?, index("second")?);
    a.finish()?;
    let in_range = |n: i64| u8::try_from(n).ok().filter(|&d| d < NAMESPACES);
    match (in_range(first), in_range(second)) {
        (Some(x), Some(y)) => keyed(Cmd::SwapDb(x, y)),
        _ => Err(CmdError::err("DB index is out of range")),
    }
}

impl Cmd<'_> {
    /// Applies the command to `ks`.
    pub fn apply(self, ks: &mut Keyspace<'_>) -> CmdResult {
        match self {
            Cmd::Del(keys) => {
                let mut n = 0;
                for k in keys {
                    n += ks.delete(k)? as i64;
                }
                Ok(Reply::Int(n))
            }
            Cmd::Exists(keys) => {
                let mut n = 0;
                for k in keys {
                    n += ks.exists(k)? as i64;
                }
                Ok(Reply::Int(n))
            }
            Cmd::Type(key) => Ok(Reply::Status(ks.type_of(key)?.map_or("none", type_name))),
            Cmd::Expire {
                key,
                ms,
                absolute,
                cond,
                cmd,
            } => {
                let at = if absolute {
                    Some(ms)
                } else {
                    ms.checked_add(ks.now_ms() as i64)
                };
                let at = at.ok_or(CmdError::InvalidExpire(cmd))?;
                // A time at or before now deletes; 0 would read as "no expiry" to the engine.
                let at_ms = at.max(1) as u64;
                let done = ks.expire_if(key, Some(at_ms), |cur| cond.allows(cur, at_ms))?;
                Ok(Reply::Int(done as i64))
            }
            Cmd::Ttl(key, unit) => Ok(Reply::Int(match ks.ttl(key)? {
                None => -2,
                Some(None) => -1,
                Some(Some(at)) => {
                    let now = ks.now_ms();
                    match unit {
                        TtlUnit::SecondsLeft => (at.saturating_sub(now) as i64 + 500) / 1000,
                        TtlUnit::MillisLeft => at.saturating_sub(now) as i64,
                        TtlUnit::UnixSeconds => (at / 1000) as i64,
                        TtlUnit::UnixMillis => at as i64,
                    }
                }
            })),
            Cmd::Persist(key) => Ok(Reply::Int(ks.persist(key)? as i64)),
            Cmd::Rename { src, dst, nx } => {
                let Some(item) = ks.get_typed(src)? else {
                    return Err(CmdError::err("no such key"));
                };
                if src == dst {
                    return Ok(if nx { Reply::Int(0) } else { Reply::OK });
                }
                if nx && ks.exists(dst)? {
                    return Ok(Reply::Int(0));
                }
                crate::types::copy_value(ks, src, item, ks, dst)?;
                ks.delete(src)?;
                Ok(if nx { Reply::Int(1) } else { Reply::OK })
            }
            Cmd::Move { key, db } => {
                if db == ks.db() {
                    return Err(CmdError::err("source and destination objects are the same"));
                }
                let Some(item) = ks.get_typed(key)? else {
                    return Ok(Reply::Int(0));
                };
                let target = ks.other_db(db);
                if target.exists(key)? {
                    return Ok(Reply::Int(0));
                }
                // Both databases' copies of the key share its stripe (stripes go by
                // name), so nobody sees it in both or in neither.
                crate::types::copy_value(ks, key, item, &target, key)?;
                ks.delete(key)?;
                Ok(Reply::Int(1))
            }
            Cmd::Copy {
                src,
                dst,
                db,
                replace,
            } => {
                let dst_db = db.unwrap_or(ks.db());
                if src == dst && dst_db == ks.db() {
                    return Err(CmdError::err("source and destination objects are the same"));
                }
                let Some(item) = ks.get_typed(src)? else {
                    return Ok(Reply::Int(0));
                };
                let target = ks.other_db(dst_db);
                if !replace && target.exists(dst)? {
                    return Ok(Reply::Int(0));
                }
                crate::types::copy_value(ks, src, item, &target, dst)?;
                Ok(Reply::Int(1))
            }
            Cmd::Scan(s) => {
                let page = ks.scan(s.cursor, s.count)?;
                let keys = page
                    .keys
                    .into_iter()
                    .filter(|k| {
                        !s.no_match
                            && s.pattern.as_ref().is_none_or(|p| glob::matches(p, k))
                            && s.vtype
                                .is_none_or(|t| ks.type_of(k).ok().flatten() == Some(t))
                    })
                    .map(Reply::Bulk)
                    .collect();
                Ok(Reply::Array(vec![
                    Reply::text(&page.cursor.to_string()),
                    Reply::Array(keys),
                ]))
            }
            Cmd::Keys(pattern) => {
                let mut out = Vec::new();
                let mut cursor = 0;
                loop {
                    let page = ks.scan(cursor, 1000)?;
                    out.extend(
                        page.keys
                            .into_iter()
                            .filter(|k| glob::matches(pattern, k))
                            .map(Reply::Bulk),
                    );
                    if page.cursor == 0 {
                        return Ok(Reply::Array(out));
                    }
                    cursor = page.cursor;
                }
            }
            Cmd::RandomKey => random_key(ks),
            Cmd::DbSize => Ok(Reply::Int(ks.len() as i64)),
            Cmd::Flush { all } => {
                if all {
                    ks.flush_all()?;
                } else {
                    ks.flush_db()?;
                }
                Ok(Reply::OK)
            }
            Cmd::SwapDb(x, y) => {
                if x != y {
                    ks.swap_databases(x, y).map_err(|e| {
                        CmdError::err(format!("could not keep the database map: {e}"))
                    })?;
                }
                Ok(Reply::OK)
            }
        }
    }
}

fn random_key(ks: &Keyspace<'_>) -> CmdResult {
    if ks.is_empty() {
        return Ok(Reply::Nil);
    }
    // Start the walk at a random hash and wrap once.
    let start = xxhash_rust::xxh3::xxh3_64(&ks.now_ms().to_le_bytes())
        ^ (std::process::id() as u64).rotate_left(32);
    for cursor in [start, 0] {
        let mut c = cursor;
        loop {
            let page = ks.scan(c, 1)?;
            if let Some(k) = page.keys.into_iter().next() {
                return Ok(Reply::Bulk(k));
            }
            if page.cursor == 0 {
                break;
            }
            c = page.cursor;
        }
    }
    Ok(Reply::Nil)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{run, run_at};
    use crate::protocol::reply::Reply;
    use crate::store::testing::store;

    fn err(s: &str) -> Reply {
        Reply::err(s)
    }

    #[test]
    fn del_exists_type() {
        let (_d, st) = store();
        run(&st, &["mset", "a", "1", "b", "2"]);
        assert_eq!(run(&st, &["exists", "a", "a", "x"]), Reply::Int(2));
        assert_eq!(run(&st, &["type", "a"]), Reply::Status("string"));
        assert_eq!(run(&st, &["type", "x"]), Reply::Status("none"));
        assert_eq!(run(&st, &["del", "a", "b", "x"]), Reply::Int(2));
        assert_eq!(run(&st, &["dbsize"]), Reply::Int(0));
        assert_eq!(run(&st, &["randomkey"]), Reply::Nil);
    }

    #[test]
    fn expire_conditions_and_ttls() {
        let (_d, st) = store();
        run(&st, &["set", "k", "v"]);
        assert_eq!(run(&st, &["ttl", "k"]), Reply::Int(-1));
        assert_eq!(run(&st, &["ttl", "x"]), Reply::Int(-2));
        assert_eq!(run(&st, &["expire", "k", "100", "xx"]), Reply::Int(0));
        assert_eq!(run(&st, &["expire", "k", "100", "nx"]), Reply::Int(1));
        assert_eq!(run(&st, &["expire", "k", "50", "gt"]), Reply::Int(0));
        assert_eq!(run(&st, &["expire", "k", "50", "lt"]), Reply::Int(1));
        assert_eq!(run(&st, &["ttl", "k"]), Reply::Int(50));
        assert_eq!(
            run(&st, &["expire", "k", "5", "nx", "xx"]),
            err("ERR NX and XX, GT or LT options at the same time are not compatible")
        );
        assert_eq!(
            run(&st, &["expire", "k", "5", "gt", "lt"]),
            err("ERR GT and LT options at the same time are not compatible")
        );
        assert_eq!(
            run(&st, &["expire", "k", "5", "zz"]),
            err("ERR Unsupported option zz")
        );
        assert_eq!(
            run(&st, &["pexpire", "k", "9223372036854775807"]),
            err("ERR invalid expire time in 'pexpire' command")
        );
        assert_eq!(
            run(&st, &["expire", "k", "9223372036854775807"]),
            err("ERR invalid expire time in 'expire' command")
        );
        assert_eq!(
            run(&st, &["pexpireat", "k", "4102444800000"]),
            Reply::Int(1)
        );
        assert_eq!(run(&st, &["expiretime", "k"]), Reply::Int(4102444800));
        assert_eq!(run(&st, &["pexpiretime", "k"]), Reply::Int(4102444800000));
        assert_eq!(run(&st, &["persist", "k"]), Reply::Int(1));
        assert_eq!(run(&st, &["expire", "k", "0"]), Reply::Int(1));
        assert_eq!(run(&st, &["exists", "k"]), Reply::Int(0));
    }

    #[test]
    fn rename_and_copy() {
        let (_d, st) = store();
        assert_eq!(run(&st, &["rename", "a", "b"]), err("ERR no such key"));
        run(&st, &["set", "a", "1"]);
        assert_eq!(run(&st, &["rename", "a", "a"]), Reply::OK);
        assert_eq!(run(&st, &["rename", "a", "b"]), Reply::OK);
        run(&st, &["set", "c", "3"]);
        assert_eq!(run(&st, &["renamenx", "b", "c"]), Reply::Int(0));
        assert_eq!(run(&st, &["copy", "b", "c"]), Reply::Int(0));
        assert_eq!(run(&st, &["copy", "b", "c", "replace"]), Reply::Int(1));
        assert_eq!(
            run(&st, &["copy", "b", "b"]),
            err("ERR source and destination objects are the same")
        );
        assert_eq!(run(&st, &["copy", "b", "b", "db", "2"]), Reply::Int(1));
        assert_eq!(run_at(&st, 2, &["get", "b"]), Reply::text("1"));
        assert_eq!(
            run(&st, &["copy", "b", "x", "db", "16"]),
            err("ERR DB index is out of range")
        );
        assert_eq!(run(&st, &["copy", "b", "x", "db"]), err("ERR syntax error"));
    }

    #[test]
    fn scan_keys_flush() {
        let (_d, st) = store();
        for i in 0..30 {
            run(&st, &["set", &format!("k{i}"), "v"]);
        }
        run(&st, &["set", "other", "v"]);
        let Reply::Array(keys) = run(&st, &["keys", "k*"]) else {
            panic!("an array")
        };
        assert_eq!(keys.len(), 30);
        let mut seen = 0;
        let mut cursor = "0".to_string();
        loop {
            let Reply::Array(page) = run(&st, &["scan", &cursor, "match", "k?", "count", "7"])
            else {
                panic!("an array")
            };
            let [Reply::Bulk(c), Reply::Array(ks)] = &page[..] else {
                panic!("cursor and keys")
            };
            seen += ks.len();
            cursor = String::from_utf8_lossy(c).into_owned();
            if cursor == "0" {
                break;
            }
        }
        assert_eq!(seen, 10);
        assert_eq!(
            run(&st, &["scan", "0", "type", "hash", "count", "1000"]),
            Reply::Array(vec![Reply::text("0"), Reply::Array(vec![])])
        );
        assert_eq!(run(&st, &["scan", "x"]), err("ERR invalid cursor"));
        assert_eq!(
            run(&st, &["scan", "0", "count", "0"]),
            err("ERR syntax error")
        );
        assert_eq!(run(&st, &["scan", "0", "count"]), err("ERR syntax error"));
        assert!(matches!(run(&st, &["randomkey"]), Reply::Bulk(_)));
        run_at(&st, 1, &["set", "one", "v"]);
        assert_eq!(run(&st, &["flushdb", "bogus"]), err("ERR syntax error"));
        assert_eq!(run(&st, &["flushdb", "async"]), Reply::OK);
        assert_eq!(run(&st, &["dbsize"]), Reply::Int(0));
        assert_eq!(run_at(&st, 1, &["dbsize"]), Reply::Int(1));
        assert_eq!(run(&st, &["flushall"]), Reply::OK);
        assert_eq!(run_at(&st, 1, &["dbsize"]), Reply::Int(0));
    }
}
