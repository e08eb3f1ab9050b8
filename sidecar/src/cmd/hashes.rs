//! The hash commands (HSET ... HSCAN): parsed into [`Cmd`], applied to a [`Hashed`]
//! collection of the keyspace, whose changes reach the log as one atomic change.

use super::args::{Args, ElementScan, is, parse_f64, parse_i64};
use super::{CmdError, CmdResult, DataCmd};
use crate::keyspace::Keyspace;
use crate::protocol::reply::{Reply, format_double};
use crate::types::hashed::Hashed;
use bytes::Bytes;
use caskade_engine::ValueType;

/// A hash command, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Cmd<'a> {
    /// HSET / HMSET (`ok`: answer +OK, as HMSET does).
    Set {
        key: &'a Bytes,
        pairs: &'a [Bytes],
        ok: bool,
    },
    /// HSETNX
    SetNx(&'a Bytes, &'a Bytes, &'a Bytes),
    /// HGET
    Get(&'a Bytes, &'a Bytes),
    /// HMGET
    MGet(&'a Bytes, &'a [Bytes]),
    /// HGETALL, HKEYS, HVALS
    All(&'a Bytes, Part),
    /// HDEL
    Del(&'a Bytes, &'a [Bytes]),
    /// HEXISTS
    Exists(&'a Bytes, &'a Bytes),
    /// HLEN
    Len(&'a Bytes),
    /// HSTRLEN
    StrLen(&'a Bytes, &'a Bytes),
    /// HINCRBY
    IncrBy(&'a Bytes, &'a Bytes, i64),
    /// HINCRBYFLOAT
    IncrByFloat(&'a Bytes, &'a Bytes, f64),
    /// HRANDFIELD: no count (one field), or a count (negative: repeats allowed).
    RandField {
        key: &'a Bytes,
        count: Option<i64>,
        values: bool,
    },
    /// HSCAN
    Scan(ElementScan<'a>),
}

/// What HGETALL-like commands answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Fields and values.
    Both,
    /// Fields.
    Keys,
    /// Values.
    Values,
}

fn done<'a>(a: &Args<'a>, c: Cmd<'a>) -> Result<DataCmd<'a>, CmdError> {
    a.finish()?;
    Ok(DataCmd::Hash(c))
}

fn set_pairs<'a>(a: &mut Args<'a>, ok: bool) -> Result<DataCmd<'a>, CmdError> {
    let (key, pairs) = (a.next_key()?, a.take_rest());
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return Err(CmdError::Arity(a.cmd()));
    }
    done(a, Cmd::Set { key, pairs, ok })
}

pub fn hset<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    set_pairs(a, false)
}

pub fn hmset<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    set_pairs(a, true)
}

parse!(hsetnx(k: next_key, f: next_arg, v: next_arg) => Cmd::SetNx(k, f, v));

parse!(hget(k: next_key, f: next_arg) => Cmd::Get(k, f));

parse!(hmget(k: next_key, fields: rest) => Cmd::MGet(k, fields));

fn all<'a>(a: &mut Args<'a>, part: Part) -> Result<DataCmd<'a>, CmdError> {
    let k = a.next_key()?;
    done(a, Cmd::All(k, part))
}

pub fn hgetall<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    all(a, Part::Both)
}

pub fn hkeys<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    all(a, Part::Keys)
}

pub fn hvals<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    all(a, Part::Values)
}

parse!(hdel(k: next_key, fields: rest) => Cmd::Del(k, fields));

parse!(hexists(k: next_key, f: next_arg) => Cmd::Exists(k, f));

parse!(hlen(k: next_key) => Cmd::Len(k));

parse!(hstrlen(k: next_key, f: next_arg) => Cmd::StrLen(k, f));

parse!(hincrby(k: next_key, f: next_arg, by: next_i64) => Cmd::IncrBy(k, f, by));

pub fn hincrbyfloat<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let (k, f) = (a.next_key()?, a.next_arg()?);
    let by = a.next_f64()?;
    if !by.is_finite() {
        return Err(CmdError::err("value is NaN or Infinity"));
    }
    done(a, Cmd::IncrByFloat(k, f, by))
}

pub fn hrandfield<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let key = a.next_key()?;
    let count = match a.next_opt() {
        None => None,
        Some(c) => Some(parse_i64(c).ok_or(CmdError::NotInteger)?),
    };
    let values = match a.next_opt() {
        None => false,
        Some(w) if is(w, "WITHVALUES") => true,
        Some(_) => return Err(CmdError::Syntax),
    };
    done(a, Cmd::RandField { key, count, values })
}

parse!(hscan(s: element_scan) => Cmd::Scan(s));

/// A small pseudo-random source (HRANDFIELD needs no more).
pub fn rng() -> impl FnMut(u64) -> u64 {
    let mut s = xxhash_rust::xxh3::xxh3_64(
        &std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
            .to_le_bytes(),
    ) | 1;
    move |n| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        if n == 0 { 0 } else { s % n }
    }
}

/// Most elements a negative-count random pick may answer with (Redis refuses more).
const RANDOM_MAX: i64 = i64::MAX / 2;

fn open<'k, 'a>(ks: &'k Keyspace<'a>, key: &'k Bytes) -> Result<Hashed<'k, 'a>, CmdError> {
    Hashed::open(ks, key, ValueType::Hash)
}

fn point<'k, 'a>(ks: &'k Keyspace<'a>, key: &'k Bytes) -> Result<Hashed<'k, 'a>, CmdError> {
    Hashed::open_point(ks, key, ValueType::Hash)
}

/// `pairs` as a flat array in RESP2 and a map in RESP3.
fn pairs_reply(entries: Vec<(Bytes, Bytes)>) -> Reply {
    Reply::Map(
        entries
            .into_iter()
            .map(|(f, v)| (Reply::Bulk(f), Reply::Bulk(v)))
            .collect(),
    )
}

impl Cmd<'_> {
    /// Applies the command to `ks`.
    pub fn apply(self, ks: &mut Keyspace<'_>) -> CmdResult {
        let ks = &*ks;
        match self {
            Cmd::Set { key, pairs, ok } => {
                let mut h = open(ks, key)?;
                let mut added = 0;
                for p in pairs.chunks_exact(2) {
                    added += h.set(&p[0], &p[1])? as i64;
                }
                h.commit()?;
                Ok(if ok { Reply::OK } else { Reply::Int(added) })
            }
            Cmd::SetNx(key, f, v) => {
                let mut h = open(ks, key)?;
                if h.contains(f)? {
                    return Ok(Reply::Int(0));
                }
                h.set(f, v)?;
                h.commit()?;
                Ok(Reply::Int(1))
            }
            Cmd::Get(key, f) => Ok(Reply::opt(point(ks, key)?.get(f)?)),
            Cmd::MGet(key, fields) => {
                let mut h = point(ks, key)?;
                let mut out = Vec::with_capacity(fields.len());
                for f in fields {
                    out.push(Reply::opt(h.get(f)?));
                }
                Ok(Reply::Array(out))
            }
            Cmd::All(key, part) => {
                let entries = open(ks, key)?.all()?;
                Ok(match part {
                    Part::Both => pairs_reply(entries),
                    Part::Keys => {
                        Reply::Array(entries.into_iter().map(|e| Reply::Bulk(e.0)).collect())
                    }
                    Part::Values => {
                        Reply::Array(entries.into_iter().map(|e| Reply::Bulk(e.1)).collect())
                    }
                })
            }
            Cmd::Del(key, fields) => {
                let mut h = open(ks, key)?;
                let mut n = 0;
                for f in fields {
                    n += h.remove(f)? as i64;
                }
                h.commit()?;
                Ok(Reply::Int(n))
            }
            Cmd::Exists(key, f) => Ok(Reply::Int(point(ks, key)?.contains(f)? as i64)),
            Cmd::Len(key) => Ok(Reply::Int(open(ks, key)?.len() as i64)),
            Cmd::StrLen(key, f) => Ok(Reply::Int(
                point(ks, key)?.get(f)?.map_or(0, |v| v.len() as i64),
            )),
            Cmd::IncrBy(key, f, by) => {
                let mut h = open(ks, key)?;
                let cur = match h.get(f)? {
                    Some(v) => {
                        parse_i64(&v).ok_or(CmdError::err("hash value is not an integer"))?
                    }
                    None => 0,
                };
                let n = cur
                    .checked_add(by)
                    .ok_or(CmdError::err("increment or decrement would overflow"))?;
                let mut buf = itoa::Buffer::new();
                h.set(f, &Bytes::copy_from_slice(buf.format(n).as_bytes()))?;
                h.commit()?;
                Ok(Reply::Int(n))
            }
            Cmd::IncrByFloat(key, f, by) => {
                let mut h = open(ks, key)?;
                let cur = match h.get(f)? {
                    Some(v) => parse_f64(&v).ok_or(CmdError::err("hash value is not a float"))?,
                    None => 0.0,
                };
                let n = cur + by;
                if !n.is_finite() {
                    return Err(CmdError::err("increment would produce NaN or Infinity"));
                }
                let text = format_double(n);
                h.set(f, &Bytes::from(text.clone()))?;
                h.commit()?;
                Ok(Reply::text(&text))
            }
            Cmd::RandField { key, count, values } => rand_field(ks, key, count, values),
            Cmd::Scan(s) => {
                let (next, entries) = open(ks, s.key)?.scan(s.cursor, s.count)?;
                Ok(s.page(next, entries.into_iter().map(|(f, v)| (f, Some(v)))))
            }
        }
    }
}

fn rand_field(ks: &Keyspace<'_>, key: &Bytes, count: Option<i64>, values: bool) -> CmdResult {
    let mut h = open(ks, key)?;
    let mut rng = rng();
    let Some(count) = count else {
        return Ok(Reply::opt(h.random(&mut rng)?.map(|e| e.0)));
    };
    if !(-RANDOM_MAX..=RANDOM_MAX).contains(&count) {
        return Err(CmdError::err("value is out of range"));
    }
    if count == 0 || !h.exists() {
        return Ok(Reply::Array(Vec::new()));
    }
    let mut picked = Vec::new();
    if count < 0 {
        for _ in 0..count.unsigned_abs() {
            if let Some(e) = h.random(&mut rng)? {
                picked.push(e);
            }
        }
    } else {
        let mut all = h.all()?;
        let want = (count as usize).min(all.len());
        // A partial Fisher-Yates shuffle: `want` distinct fields.
        for i in 0..want {
            let j = i + rng((all.len() - i) as u64) as usize;
            all.swap(i, j);
        }
        all.truncate(want);
        picked = all;
    }
    Ok(if values {
        Reply::Pairs(
            picked
                .into_iter()
                .map(|(f, v)| (Reply::Bulk(f), Reply::Bulk(v)))
                .collect(),
        )
    } else {
        Reply::Array(picked.into_iter().map(|(f, _)| Reply::Bulk(f)).collect())
    })
}
