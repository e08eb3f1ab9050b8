//! The sorted set commands (ZADD ... ZSCAN): parsed into [`Cmd`], applied to
//! [`Sorted`] sets, each change one atomic change of the log. Ranges by score and by
//! lexical bound become ranges of ranks, counted from the tree without reading leaves
//! outside them.

use super::args::{Args, ElementScan, is, parse_i64};
use super::hashes::rng;
use super::{CmdError, CmdResult, DataCmd};
use crate::keyspace::Keyspace;
use crate::protocol::reply::{Reply, format_score};
use crate::types::hashed::Hashed;
use crate::types::sorted::{Elem, LISTPACK_ENTRIES, LISTPACK_VALUE, Sorted, order};
use bytes::Bytes;
use caskade_engine::ValueType;
use std::collections::HashMap;

/// A score range's bound: its value and whether it is excluded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreRange {
    min: f64,
    min_ex: bool,
    max: f64,
    max_ex: bool,
}

/// A lexical bound: `-`, `+`, `[member` or `(member`.
#[derive(Debug, Clone, PartialEq)]
pub enum Lex<'a> {
    /// `-`: before every member.
    Least,
    /// `+`: after every member.
    Most,
    /// `[m` (true) or `(m` (false).
    At(&'a [u8], bool),
}

/// Which elements a range names.
#[derive(Debug, Clone, PartialEq)]
pub enum By<'a> {
    /// Ranks, inclusive, negative from the end.
    Rank(i64, i64),
    /// Scores.
    Score(ScoreRange),
    /// Members, when every score is equal.
    Lex(Lex<'a>, Lex<'a>),
}

/// ZRANGE and its older forms, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Range<'a> {
    key: &'a Bytes,
    /// ZRANGESTORE's destination.
    store: Option<&'a Bytes>,
    by: By<'a>,
    rev: bool,
    /// LIMIT offset count.
    limit: Option<(i64, i64)>,
    scores: bool,
}

/// ZADD's options.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

impl AddFlags {
    /// NX, XX and CH alone (GEOADD's).
    pub fn changes(nx: bool, xx: bool, ch: bool) -> AddFlags {
        AddFlags {
            nx,
            xx,
            ch,
            ..AddFlags::default()
        }
    }
}

/// How ZUNION and ZINTER combine scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// The weighted scores added up.
    Sum,
    /// The lowest weighted score.
    Min,
    /// The highest weighted score.
    Max,
}

/// The options of ZUNION, ZINTER, ZDIFF and ZINTERCARD.
#[derive(Debug, Clone, PartialEq)]
pub struct Combine {
    weights: Vec<f64>,
    aggregate: Aggregate,
    scores: bool,
    /// ZINTERCARD: count only, up to this many (0: all).
    card: Option<u64>,
}

/// Options that do not parse, reported after the keys' types are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptError {
    /// `ERR syntax error`
    Syntax,
    /// A WEIGHTS value that is no float.
    Weight,
    /// A negative LIMIT.
    Limit,
}

impl From<OptError> for CmdError {
    fn from(e: OptError) -> CmdError {
        match e {
            OptError::Syntax => CmdError::Syntax,
            OptError::Weight => CmdError::err("weight value is not a float"),
            OptError::Limit => CmdError::err("LIMIT can't be negative"),
        }
    }
}

/// How several sorted sets combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Members of any input.
    Union,
    /// Members of every input.
    Inter,
    /// Members of the first input in none of the others.
    Diff,
}

/// A sorted set command, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Cmd<'a> {
    /// ZADD
    Add {
        key: &'a Bytes,
        flags: AddFlags,
        pairs: Vec<(f64, &'a Bytes)>,
    },
    /// ZINCRBY
    IncrBy(&'a Bytes, f64, &'a Bytes),
    /// ZREM
    Rem(&'a Bytes, &'a [Bytes]),
    /// ZSCORE
    Score(&'a Bytes, &'a Bytes),
    /// ZMSCORE
    MScore(&'a Bytes, &'a [Bytes]),
    /// ZCARD
    Card(&'a Bytes),
    /// ZCOUNT, ZLEXCOUNT
    Count(&'a Bytes, By<'a>),
    /// ZRANGE, ZRANGESTORE, ZREVRANGE, ZRANGEBYSCORE, ...
    Range(Range<'a>),
    /// ZRANK (false), ZREVRANK (true)
    Rank(&'a Bytes, &'a Bytes, bool),
    /// ZREMRANGEBYRANK, ZREMRANGEBYSCORE, ZREMRANGEBYLEX
    RemRange(&'a Bytes, By<'a>),
    /// ZPOPMIN (false), ZPOPMAX (true), with a count or without.
    Pop(&'a Bytes, bool, Option<u64>),
    /// ZMPOP
    MPop {
        keys: &'a [Bytes],
        max: bool,
        count: u64,
    },
    /// ZRANDMEMBER
    RandMember(&'a Bytes, Option<i64>, bool),
    /// ZUNION, ZINTER, ZDIFF and their STORE forms; ZINTERCARD (`limit`).
    Combine {
        op: Op,
        keys: &'a [Bytes],
        /// The options, or why they are wrong: Redis checks the keys' types first.
        opts: Result<Combine, OptError>,
        store: Option<&'a Bytes>,
    },
    /// ZSCAN
    Scan(ElementScan<'a>),
}

fn done<'a>(a: &Args<'a>, c: Cmd<'a>) -> Result<DataCmd<'a>, CmdError> {
    a.finish()?;
    Ok(DataCmd::ZSet(c))
}

/// The whole of `s` read as C's `strtod` reads a number: decimal, `inf`/`infinity`,
/// or hexadecimal (`0x1p3`, `0x.8`); `None` if any of it is left over. NaN is refused.
pub(super) fn strtod(s: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(s).ok()?;
    let (neg, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = body.to_ascii_lowercase();
    let v = if lower == "inf" || lower == "infinity" {
        f64::INFINITY
    } else if let Some(hex) = lower.strip_prefix("0x") {
        hex_float(hex)?
    } else {
        // Rust's own parser takes what C's does for decimals, and words C has not.
        if !body
            .bytes()
            .all(|c| c.is_ascii_digit() || b".eE+-".contains(&c))
        {
            return None;
        }
        body.parse::<f64>().ok()?
    };
    let v = if neg { -v } else { v };
    (!v.is_nan()).then_some(v)
}

/// A hexadecimal float's digits after `0x`: `h[.h][p[+-]d]`, at least one digit.
fn hex_float(s: &str) -> Option<f64> {
    let (mantissa, exp) = match s.split_once('p') {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for c in int.chars() {
        v = v * 16.0 + f64::from(c.to_digit(16)?);
    }
    let mut scale = 1.0 / 16.0;
    for c in frac.chars() {
        v += f64::from(c.to_digit(16)?) * scale;
        scale /= 16.0;
    }
    Some(v * 2f64.powi(exp))
}

/// A score as ZADD, ZINCRBY and WEIGHTS take it (Redis' rule over `strtod`: no
/// leading blank, no overflow or underflow to zero, no NaN).
pub fn parse_score(b: &[u8]) -> Option<f64> {
    if b.first().is_none_or(|c| c.is_ascii_whitespace()) {
        return None;
    }
    let v = strtod(b)?;
    let text = std::str::from_utf8(b).ok()?.to_ascii_lowercase();
    let named_inf = text.trim_start_matches(['+', '-']).starts_with("inf");
    if v.is_infinite() && !named_inf {
        return None;
    }
    let digits = text.split(['e', 'p']).next().unwrap_or("");
    let digits = digits
        .trim_start_matches(['+', '-'])
        .trim_start_matches("0x");
    if v == 0.0 && digits.bytes().any(|c| c.is_ascii_hexdigit() && c != b'0') {
        return None;
    }
    Some(v)
}

/// A bound of a score range: `(` excludes; the rest is read as C's `strtod` does
/// (leading blanks allowed, nothing at all is 0).
fn range_bound(b: &[u8]) -> Option<(f64, bool)> {
    let (ex, rest) = match b.first() {
        Some(b'(') => (true, &b[1..]),
        _ => (false, b),
    };
    let rest = rest.trim_ascii_start();
    if rest.is_empty() {
        return Some((0.0, ex));
    }
    Some((strtod(rest)?, ex))
}

fn score_range(min: &[u8], max: &[u8]) -> Result<ScoreRange, CmdError> {
    let bad = || CmdError::err("min or max is not a float");
    let (min, min_ex) = range_bound(min).ok_or_else(bad)?;
    let (max, max_ex) = range_bound(max).ok_or_else(bad)?;
    Ok(ScoreRange {
        min,
        min_ex,
        max,
        max_ex,
    })
}

fn lex_bound(b: &[u8]) -> Option<Lex<'_>> {
    match b.first()? {
        b'-' if b.len() == 1 => Some(Lex::Least),
        b'+' if b.len() == 1 => Some(Lex::Most),
        b'[' => Some(Lex::At(&b[1..], true)),
        b'(' => Some(Lex::At(&b[1..], false)),
        _ => None,
    }
}

fn lex_range<'a>(min: &'a [u8], max: &'a [u8]) -> Result<By<'a>, CmdError> {
    let bad = || CmdError::err("min or max not valid string range item");
    Ok(By::Lex(
        lex_bound(min).ok_or_else(bad)?,
        lex_bound(max).ok_or_else(bad)?,
    ))
}

pub fn zadd<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let key = a.next_key()?;
    let mut f = AddFlags::default();
    while let Some(w) = a.peek() {
        let flag = if is(w, "NX") {
            &mut f.nx
        } else if is(w, "XX") {
            &mut f.xx
        } else if is(w, "GT") {
            &mut f.gt
        } else if is(w, "LT") {
            &mut f.lt
        } else if is(w, "CH") {
            &mut f.ch
        } else if is(w, "INCR") {
            &mut f.incr
        } else {
            break;
        };
        *flag = true;
        a.next_opt();
    }
    let rest = a.take_rest();
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    if f.incr && rest.len() > 2 {
        return Err(CmdError::err(
            "INCR option supports a single increment-element pair",
        ));
    }
    if f.nx && f.xx {
        return Err(CmdError::err(
            "XX and NX options at the same time are not compatible",
        ));
    }
    if (f.nx && (f.gt || f.lt)) || (f.gt && f.lt) {
        return Err(CmdError::err(
            "GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    let mut pairs = Vec::with_capacity(rest.len() / 2);
    for p in rest.chunks_exact(2) {
        pairs.push((parse_score(&p[0]).ok_or(CmdError::NotFloat)?, &p[1]));
    }
    done(
        a,
        Cmd::Add {
            key,
            flags: f,
            pairs,
        },
    )
}

pub fn zincrby<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let key = a.next_key()?;
    let by = parse_score(a.next_arg()?).ok_or(CmdError::NotFloat)?;
    let m = a.next_arg()?;
    done(a, Cmd::IncrBy(key, by, m))
}

parse!(zrem(k: next_key, members: rest) => Cmd::Rem(k, members));

parse!(zscore(k: next_key, m: next_arg) => Cmd::Score(k, m));

parse!(zmscore(k: next_key, members: rest) => Cmd::MScore(k, members));

parse!(zcard(k: next_key) => Cmd::Card(k));

pub fn zcount<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let (k, min, max) = (a.next_key()?, a.next_arg()?, a.next_arg()?);
    done(a, Cmd::Count(k, By::Score(score_range(min, max)?)))
}

pub fn zlexcount<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let (k, min, max) = (a.next_key()?, a.next_arg()?, a.next_arg()?);
    done(a, Cmd::Count(k, lex_range(min, max)?))
}

/// What kind of range a form of ZRANGE reads, when the form fixes it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Auto,
    Rank,
    Score,
    Lex,
}

/// The ZRANGE family: `store` for ZRANGESTORE; `kind` and `rev` fixed by the older
/// forms (ZREVRANGE, ZRANGEBYSCORE, ...), open for ZRANGE itself. Checks in Redis' order.
fn range_cmd<'a>(
    a: &mut Args<'a>,
    store: bool,
    mut kind: Kind,
    rev: Option<bool>,
) -> Result<DataCmd<'a>, CmdError> {
    let store = if store { Some(a.next_key()?) } else { None };
    let key = a.next_key()?;
    let (mut lo, mut hi) = (a.next_arg()?, a.next_arg()?);
    let (mut scores, mut limit, mut reverse) = (false, None, rev);
    while let Some(w) = a.next_opt() {
        if store.is_none() && is(w, "WITHSCORES") {
            scores = true;
        } else if is(w, "LIMIT") && a.remaining() >= 2 {
            let o = parse_i64(a.next_arg()?).ok_or(CmdError::NotInteger)?;
            let c = parse_i64(a.next_arg()?).ok_or(CmdError::NotInteger)?;
            limit = Some((o, c));
        } else if reverse.is_none() && is(w, "REV") {
            reverse = Some(true);
        } else if kind == Kind::Auto && is(w, "BYLEX") {
            kind = Kind::Lex;
        } else if kind == Kind::Auto && is(w, "BYSCORE") {
            kind = Kind::Score;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let rev = reverse.unwrap_or(false);
    if kind == Kind::Auto {
        kind = Kind::Rank;
    }
    if limit.is_some() && kind == Kind::Rank {
        return Err(CmdError::err(
            "syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if scores && kind == Kind::Lex {
        return Err(CmdError::err(
            "syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    if rev && kind != Kind::Rank {
        std::mem::swap(&mut lo, &mut hi);
    }
    let by = match kind {
        Kind::Score => By::Score(score_range(lo, hi)?),
        Kind::Lex => lex_range(lo, hi)?,
        _ => By::Rank(
            parse_i64(lo).ok_or(CmdError::NotInteger)?,
            parse_i64(hi).ok_or(CmdError::NotInteger)?,
        ),
    };
    done(
        a,
        Cmd::Range(Range {
            key,
            store,
            by,
            rev,
            limit,
            scores,
        }),
    )
}

pub fn zrange<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    range_cmd(a, false, Kind::Auto, None)
}

pub fn zrangestore<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    range_cmd(a, true, Kind::Auto, None)
}

pub fn zrevrange<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    range_cmd(a, false, Kind::Rank, Some(true))
}

pub fn zrangebyscore<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    range_cmd(a, false, Kind::Score, Some(false))
}

pub fn zrevrangebyscore<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    range_cmd(a, false, Kind::Score, Some(true))
}

pub fn zrangebylex<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    range_cmd(a, false, Kind::Lex, Some(false))
}

pub fn zrevrangebylex<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    range_cmd(a, false, Kind::Lex, Some(true))
}

parse!(zrank(k: next_key, m: next_arg) => Cmd::Rank(k, m, false));

parse!(zrevrank(k: next_key, m: next_arg) => Cmd::Rank(k, m, true));

pub fn zremrangebyrank<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let (k, start, stop) = (a.next_key()?, a.next_i64()?, a.next_i64()?);
    done(a, Cmd::RemRange(k, By::Rank(start, stop)))
}

pub fn zremrangebyscore<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let (k, min, max) = (a.next_key()?, a.next_arg()?, a.next_arg()?);
    done(a, Cmd::RemRange(k, By::Score(score_range(min, max)?)))
}

pub fn zremrangebylex<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let (k, min, max) = (a.next_key()?, a.next_arg()?, a.next_arg()?);
    done(a, Cmd::RemRange(k, lex_range(min, max)?))
}

fn positive_count(b: &[u8]) -> Result<u64, CmdError> {
    parse_i64(b)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or(CmdError::err("value is out of range, must be positive"))
}

fn pop<'a>(a: &mut Args<'a>, max: bool) -> Result<DataCmd<'a>, CmdError> {
    let k = a.next_key()?;
    let count = match a.next_opt() {
        Some(c) => Some(positive_count(c)?),
        None => None,
    };
    done(a, Cmd::Pop(k, max, count))
}

pub fn zpopmin<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    pop(a, false)
}

pub fn zpopmax<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    pop(a, true)
}

pub fn zmpop<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let (keys, max, count) = a.mpop(["MIN", "MAX"])?;
    done(a, Cmd::MPop { keys, max, count })
}

/// Most elements a random pick with scores may name (Redis refuses more).
const RANDOM_MAX: i64 = i64::MAX / 2;

pub fn zrandmember<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let key = a.next_key()?;
    let Some(c) = a.next_opt() else {
        return done(a, Cmd::RandMember(key, None, false));
    };
    let n = parse_i64(c).ok_or(CmdError::NotInteger)?;
    if n == i64::MIN {
        return Err(CmdError::err(
            "value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    let scores = match a.next_opt() {
        None => false,
        Some(w) if is(w, "WITHSCORES") && a.is_empty() => true,
        Some(_) => return Err(CmdError::Syntax),
    };
    if scores && !(-RANDOM_MAX..=RANDOM_MAX).contains(&n) {
        return Err(CmdError::err("value is out of range"));
    }
    done(a, Cmd::RandMember(key, Some(n), scores))
}

/// ZUNION, ZINTER, ZDIFF, ZINTERCARD and the STORE forms: `numkeys` keys, then
/// WEIGHTS, AGGREGATE, WITHSCORES (without a destination) or LIMIT (ZINTERCARD).
fn combine<'a>(a: &mut Args<'a>, op: Op, store: bool, card: bool) -> Result<DataCmd<'a>, CmdError> {
    let store = if store { Some(a.next_key()?) } else { None };
    let n = a.next_i64()?;
    if n < 1 {
        let name = a.cmd();
        return Err(CmdError::Err(
            format!("at least 1 input key is needed for '{name}' command").into(),
        ));
    }
    if n as u64 > a.remaining() as u64 {
        return Err(CmdError::Syntax);
    }
    let all = a.take_rest();
    let (keys, rest) = all.split_at(n as usize);
    let opts = combine_options(op, keys.len(), rest, store.is_none(), card);
    done(
        a,
        Cmd::Combine {
            op,
            keys,
            opts,
            store,
        },
    )
}

fn combine_options(
    op: Op,
    n: usize,
    mut rest: &[Bytes],
    reply: bool,
    card: bool,
) -> Result<Combine, OptError> {
    let mut o = Combine {
        weights: vec![1.0; n],
        aggregate: Aggregate::Sum,
        scores: false,
        card: card.then_some(0),
    };
    while let Some(w) = rest.first() {
        if card {
            if !is(w, "LIMIT") || rest.len() < 2 {
                return Err(OptError::Syntax);
            }
            let limit = parse_i64(&rest[1])
                .and_then(|n| u64::try_from(n).ok())
                .ok_or(OptError::Limit)?;
            o.card = Some(limit);
            rest = &rest[2..];
        } else if op != Op::Diff && rest.len() > n && is(w, "WEIGHTS") {
            for (i, v) in rest[1..=n].iter().enumerate() {
                o.weights[i] = parse_score(v).ok_or(OptError::Weight)?;
            }
            rest = &rest[n + 1..];
        } else if op != Op::Diff && rest.len() >= 2 && is(w, "AGGREGATE") {
            o.aggregate = if is(&rest[1], "SUM") {
                Aggregate::Sum
            } else if is(&rest[1], "MIN") {
                Aggregate::Min
            } else if is(&rest[1], "MAX") {
                Aggregate::Max
            } else {
                return Err(OptError::Syntax);
            };
            rest = &rest[2..];
        } else if reply && is(w, "WITHSCORES") {
            o.scores = true;
            rest = &rest[1..];
        } else {
            return Err(OptError::Syntax);
        }
    }
    Ok(o)
}

pub fn zunion<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    combine(a, Op::Union, false, false)
}

pub fn zunionstore<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    combine(a, Op::Union, true, false)
}

pub fn zinter<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    combine(a, Op::Inter, false, false)
}

pub fn zinterstore<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    combine(a, Op::Inter, true, false)
}

pub fn zdiff<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    combine(a, Op::Diff, false, false)
}

pub fn zdiffstore<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    combine(a, Op::Diff, true, false)
}

pub fn zintercard<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    combine(a, Op::Inter, false, true)
}

parse!(zscan(s: element_scan) => Cmd::Scan(s));

fn open<'k, 'a>(ks: &'k Keyspace<'a>, key: &'k [u8]) -> Result<Sorted<'k, 'a>, CmdError> {
    Sorted::open(ks, key)
}

/// Members and scores as ZRANGE ... WITHSCORES answers them (pairs in RESP3).
fn scored(elems: Vec<Elem>) -> Reply {
    Reply::Pairs(
        elems
            .into_iter()
            .map(|(s, m)| (Reply::Bulk(m), Reply::Double(s)))
            .collect(),
    )
}

fn members(elems: Vec<Elem>) -> Reply {
    Reply::Array(elems.into_iter().map(|(_, m)| Reply::Bulk(m)).collect())
}

/// Members and scores as nested pairs in both protocols (ZMPOP).
fn nested(elems: Vec<Elem>) -> Reply {
    Reply::Array(
        elems
            .into_iter()
            .map(|(s, m)| Reply::Array(vec![Reply::Bulk(m), Reply::Double(s)]))
            .collect(),
    )
}

/// The ranks `lo..hi` (ascending) that `by` names in `z`.
fn ranks(z: &mut Sorted<'_, '_>, by: &By<'_>) -> Result<(u64, u64), CmdError> {
    let len = z.len();
    match by {
        By::Rank(start, stop) => {
            let n = len as i64;
            let start = if *start < 0 { n + start } else { *start }.max(0);
            let stop = if *stop < 0 { n + stop } else { *stop };
            if start > stop || start >= n {
                return Ok((0, 0));
            }
            Ok((start as u64, stop.min(n - 1) as u64 + 1))
        }
        By::Score(r) => {
            let lo = z.count_below(&|e: &Elem| {
                if r.min_ex { e.0 <= r.min } else { e.0 < r.min }
            })?;
            let hi = z.count_below(&|e: &Elem| {
                if r.max_ex { e.0 < r.max } else { e.0 <= r.max }
            })?;
            Ok((lo, hi.max(lo)))
        }
        By::Lex(min, max) => {
            let lo = z.count_below(&|e: &Elem| match min {
                Lex::Least => false,
                Lex::Most => true,
                Lex::At(m, true) => &e.1[..] < *m,
                Lex::At(m, false) => &e.1[..] <= *m,
            })?;
            let hi = z.count_below(&|e: &Elem| match max {
                Lex::Least => false,
                Lex::Most => true,
                Lex::At(m, true) => &e.1[..] <= *m,
                Lex::At(m, false) => &e.1[..] < *m,
            })?;
            Ok((lo, hi.max(lo)))
        }
    }
}

/// The elements a ZRANGE names, in the order it answers them.
fn range_elems(z: &mut Sorted<'_, '_>, r: &Range<'_>) -> Result<Vec<Elem>, CmdError> {
    let (lo, hi) = match r.by {
        By::Rank(start, stop) if r.rev => {
            // Ranks counted from the top.
            let (a, b) = ranks(z, &By::Rank(start, stop))?;
            let len = z.len();
            (len - b, len - a)
        }
        _ => ranks(z, &r.by)?,
    };
    let (mut lo, mut hi) = (lo, hi);
    if let Some((offset, count)) = r.limit {
        if offset < 0 {
            return Ok(Vec::new());
        }
        let span = hi.saturating_sub(lo);
        let skip = (offset as u64).min(span);
        let take = if count < 0 {
            span - skip
        } else {
            (count as u64).min(span - skip)
        };
        if r.rev {
            hi -= skip;
            lo = hi - take;
        } else {
            lo += skip;
            hi = lo + take;
        }
    }
    let mut out = z.range(lo, hi)?;
    if r.rev {
        out.reverse();
    }
    Ok(out)
}

/// What Redis would hold a new sorted set of `elems` as.
fn big_for(elems: &[Elem]) -> bool {
    elems.len() > LISTPACK_ENTRIES || elems.iter().any(|e| e.1.len() > LISTPACK_VALUE)
}

/// Replaces `dst` with a sorted set of `elems` (removing it when there are none);
/// how many there are.
pub(super) fn store(ks: &Keyspace<'_>, dst: &[u8], elems: Vec<Elem>) -> CmdResult {
    ks.delete(dst)?;
    let n = elems.len() as i64;
    if n > 0 {
        let big = big_for(&elems);
        Sorted::fill(ks, dst, elems, big, None)?;
    }
    Ok(Reply::Int(n))
}

impl Cmd<'_> {
    /// Applies the command to `ks`.
    pub fn apply(self, ks: &mut Keyspace<'_>) -> CmdResult {
        let ks = &*ks;
        match self {
            Cmd::Add { key, flags, pairs } => add(ks, key, flags, &pairs),
            Cmd::IncrBy(key, by, m) => {
                let flags = AddFlags {
                    incr: true,
                    ..AddFlags::default()
                };
                add(ks, key, flags, &[(by, m)])
            }
            Cmd::Rem(key, ms) => {
                let mut z = open(ks, key)?;
                let mut n = 0;
                for m in ms {
                    n += z.remove(m)?.is_some() as i64;
                }
                z.commit()?;
                Ok(Reply::Int(n))
            }
            Cmd::Score(key, m) => {
                let s = Sorted::scores_of(ks, key, &[m])?;
                Ok(s[0].map_or(Reply::Nil, Reply::Double))
            }
            Cmd::MScore(key, ms) => {
                let ms: Vec<&Bytes> = ms.iter().collect();
                let s = Sorted::scores_of(ks, key, &ms)?;
                Ok(Reply::Array(
                    s.into_iter()
                        .map(|s| s.map_or(Reply::Nil, Reply::Double))
                        .collect(),
                ))
            }
            Cmd::Card(key) => Ok(Reply::Int(open(ks, key)?.len() as i64)),
            Cmd::Count(key, by) => {
                let mut z = open(ks, key)?;
                let (lo, hi) = ranks(&mut z, &by)?;
                Ok(Reply::Int((hi - lo) as i64))
            }
            Cmd::Range(r) => {
                let mut z = open(ks, r.key)?;
                let elems = range_elems(&mut z, &r)?;
                match r.store {
                    Some(dst) => store(ks, dst, elems),
                    None if r.scores => Ok(scored(elems)),
                    None => Ok(members(elems)),
                }
            }
            Cmd::Rank(key, m, rev) => {
                let mut z = open(ks, key)?;
                let len = z.len();
                Ok(match z.rank(m)? {
                    Some((r, _)) if rev => Reply::Int((len - 1 - r) as i64),
                    Some((r, _)) => Reply::Int(r as i64),
                    None => Reply::Nil,
                })
            }
            Cmd::RemRange(key, by) => {
                let mut z = open(ks, key)?;
                let (lo, hi) = ranks(&mut z, &by)?;
                let gone = z.range(lo, hi)?;
                for (_, m) in &gone {
                    z.remove(m)?;
                }
                z.commit()?;
                Ok(Reply::Int(gone.len() as i64))
            }
            Cmd::Pop(key, max, count) => {
                let mut z = open(ks, key)?;
                let elems = pop_from(&mut z, max, count.unwrap_or(1))?;
                z.commit()?;
                Ok(match count {
                    None => Reply::Array(
                        elems
                            .into_iter()
                            .flat_map(|(s, m)| [Reply::Bulk(m), Reply::Double(s)])
                            .collect(),
                    ),
                    Some(_) => scored(elems),
                })
            }
            Cmd::MPop { keys, max, count } => {
                for k in keys {
                    let mut z = open(ks, k)?;
                    if !z.exists() {
                        continue;
                    }
                    let elems = pop_from(&mut z, max, count)?;
                    z.commit()?;
                    return Ok(Reply::Array(vec![Reply::Bulk(k.clone()), nested(elems)]));
                }
                Ok(Reply::NilArray)
            }
            Cmd::RandMember(key, count, scores) => rand_member(ks, key, count, scores),
            Cmd::Combine {
                op,
                keys,
                opts,
                store: dst,
            } => {
                let mut srcs = Vec::with_capacity(keys.len());
                for k in keys {
                    srcs.push(source(ks, k)?);
                }
                let o = opts?;
                let limit = o.card.unwrap_or(0);
                let elems = combined(srcs, op, &o.weights, o.aggregate, limit)?;
                match dst {
                    Some(dst) => store(ks, dst, elems),
                    None if o.card.is_some() => Ok(Reply::Int(elems.len() as i64)),
                    None if o.scores => Ok(scored(elems)),
                    None => Ok(members(elems)),
                }
            }
            Cmd::Scan(scan) => {
                let (next, elems) = open(ks, scan.key)?.scan(scan.cursor, scan.count)?;
                let page = elems
                    .into_iter()
                    .map(|(s, m)| (m, Some(Bytes::from(format_score(s)))));
                Ok(scan.page(next, page))
            }
        }
    }
}

/// ZADD (and ZINCRBY, as ZADD INCR), with Redis' rules for each flag.
pub(super) fn add(
    ks: &Keyspace<'_>,
    key: &Bytes,
    f: AddFlags,
    pairs: &[(f64, &Bytes)],
) -> CmdResult {
    let mut z = open(ks, key)?;
    let nothing = || {
        if f.incr { Reply::Nil } else { Reply::Int(0) }
    };
    if !z.exists() {
        if f.xx {
            return Ok(nothing());
        }
        // Redis sizes a new set from the command's pairs.
        if pairs.len() > LISTPACK_ENTRIES || pairs.iter().any(|p| p.1.len() > LISTPACK_VALUE) {
            z.make_big();
        }
    }
    let (mut added, mut updated, mut last) = (0i64, 0i64, None);
    for &(score, m) in pairs {
        match z.score(m)? {
            Some(cur) => {
                if f.nx {
                    continue;
                }
                let new = if f.incr { cur + score } else { score };
                if new.is_nan() {
                    return Err(CmdError::err("resulting score is not a number (NaN)"));
                }
                if (f.lt && new >= cur) || (f.gt && new <= cur) {
                    continue;
                }
                last = Some(new);
                if new != cur {
                    z.set(m, new)?;
                    updated += 1;
                }
            }
            None => {
                if f.xx {
                    continue;
                }
                z.set(m, score)?;
                added += 1;
                last = Some(score);
            }
        }
    }
    z.commit()?;
    if f.incr {
        return Ok(last.map_or(Reply::Nil, Reply::Double));
    }
    Ok(Reply::Int(added + if f.ch { updated } else { 0 }))
}

/// Removes and returns up to `count` elements from the low (or high) end.
fn pop_from(z: &mut Sorted<'_, '_>, max: bool, count: u64) -> Result<Vec<Elem>, CmdError> {
    let len = z.len();
    let n = count.min(len);
    let mut elems = if max {
        let mut v = z.range(len - n, len)?;
        v.reverse();
        v
    } else {
        z.range(0, n)?
    };
    for (_, m) in &elems {
        z.remove(m)?;
    }
    elems.shrink_to_fit();
    Ok(elems)
}

fn rand_member(ks: &Keyspace<'_>, key: &Bytes, count: Option<i64>, scores: bool) -> CmdResult {
    let mut z = open(ks, key)?;
    let mut rng = rng();
    let len = z.len();
    let Some(count) = count else {
        if len == 0 {
            return Ok(Reply::Nil);
        }
        let r = rng(len);
        return Ok(Reply::opt(z.range(r, r + 1)?.pop().map(|e| e.1)));
    };
    if count == 0 || len == 0 {
        return Ok(Reply::Array(Vec::new()));
    }
    let picked = if count < 0 {
        let mut out = Vec::new();
        for _ in 0..count.unsigned_abs() {
            let r = rng(len);
            out.extend(z.range(r, r + 1)?);
        }
        out
    } else if count as u64 >= len {
        z.all()?
    } else {
        // Distinct ranks: a partial shuffle of the ranks when many are wanted, random
        // picks with repeats dropped when few are.
        let want = count as usize;
        let mut ranks: Vec<u64> = if (count as u64).saturating_mul(4) < len {
            let mut seen = std::collections::HashSet::new();
            let mut v = Vec::with_capacity(want);
            while v.len() < want {
                let r = rng(len);
                if seen.insert(r) {
                    v.push(r);
                }
            }
            v
        } else {
            let mut all: Vec<u64> = (0..len).collect();
            for i in 0..want {
                let j = i + rng((all.len() - i) as u64) as usize;
                all.swap(i, j);
            }
            all.truncate(want);
            all
        };
        let mut out = Vec::with_capacity(want);
        for r in ranks.drain(..) {
            out.extend(z.range(r, r + 1)?);
        }
        out
    };
    Ok(if scores {
        scored(picked)
    } else {
        members(picked)
    })
}

/// One input of ZUNION/ZINTER/ZDIFF: a sorted set, or a set (every score 1).
enum Source<'k, 'a> {
    Missing,
    Sorted(Box<Sorted<'k, 'a>>),
    Set(Hashed<'k, 'a>),
}

impl Source<'_, '_> {
    fn len(&self) -> u64 {
        match self {
            Source::Missing => 0,
            Source::Sorted(z) => z.len(),
            Source::Set(s) => s.len(),
        }
    }

    fn all(&mut self) -> Result<Vec<Elem>, CmdError> {
        match self {
            Source::Missing => Ok(Vec::new()),
            Source::Sorted(z) => z.all(),
            Source::Set(s) => Ok(s.all()?.into_iter().map(|(m, _)| (1.0, m)).collect()),
        }
    }

    fn score(&mut self, m: &[u8]) -> Result<Option<f64>, CmdError> {
        match self {
            Source::Missing => Ok(None),
            Source::Sorted(z) => z.score(m),
            Source::Set(s) => Ok(s.get(m)?.map(|_| 1.0)),
        }
    }
}

fn source<'k, 'a>(ks: &'k Keyspace<'a>, key: &'k [u8]) -> Result<Source<'k, 'a>, CmdError> {
    let Some(item) = ks.get_typed(key)? else {
        return Ok(Source::Missing);
    };
    match item.vtype {
        ValueType::ZSet => Ok(Source::Sorted(Box::new(Sorted::from_item(
            ks,
            key,
            Some(item),
        )?))),
        ValueType::Set => Ok(Source::Set(Hashed::from_item(
            ks,
            key,
            ValueType::Set,
            Some(item),
        )?)),
        _ => Err(CmdError::WrongType),
    }
}

/// `weight * score`, where 0 times an infinity is 0 (as in Redis).
fn weigh(w: f64, s: f64) -> f64 {
    let v = w * s;
    if v.is_nan() { 0.0 } else { v }
}

fn aggregate(agg: Aggregate, acc: f64, v: f64) -> f64 {
    match agg {
        Aggregate::Sum => {
            let s = acc + v;
            if s.is_nan() { 0.0 } else { s }
        }
        Aggregate::Min => acc.min(v),
        Aggregate::Max => acc.max(v),
    }
}

/// The elements `op` makes of the inputs `srcs` (sorted), at most `limit` of them
/// for an intersection (0: all).
fn combined(
    mut srcs: Vec<Source<'_, '_>>,
    op: Op,
    weights: &[f64],
    agg: Aggregate,
    limit: u64,
) -> Result<Vec<Elem>, CmdError> {
    let mut out: Vec<Elem> = match op {
        Op::Union => {
            let mut acc: HashMap<Bytes, f64> = HashMap::new();
            let mut order_seen = Vec::new();
            for (src, &w) in srcs.iter_mut().zip(weights) {
                for (s, m) in src.all()? {
                    let v = weigh(w, s);
                    match acc.get_mut(&m) {
                        Some(a) => *a = aggregate(agg, *a, v),
                        None => {
                            acc.insert(m.clone(), v);
                            order_seen.push(m);
                        }
                    }
                }
            }
            order_seen
                .into_iter()
                .map(|m| {
                    let s = acc.get(&m).copied().unwrap_or(0.0);
                    (s, m)
                })
                .collect()
        }
        Op::Inter => {
            if srcs.iter().any(|s| s.len() == 0) {
                return Ok(Vec::new());
            }
            // Walk the smallest; look each member up in the others.
            let small = (0..srcs.len()).min_by_key(|&i| srcs[i].len()).unwrap_or(0);
            let mut out = Vec::new();
            'member: for (s, m) in srcs[small].all()? {
                let mut acc = weigh(weights[small], s);
                for i in (0..srcs.len()).filter(|&i| i != small) {
                    let Some(o) = srcs[i].score(&m)? else {
                        continue 'member;
                    };
                    acc = aggregate(agg, acc, weigh(weights[i], o));
                }
                out.push((acc, m));
                if out.len() as u64 == limit {
                    break;
                }
            }
            out
        }
        Op::Diff => {
            let mut it = srcs.into_iter();
            let Some(mut first) = it.next() else {
                return Ok(Vec::new());
            };
            let mut rest: Vec<_> = it.filter(|s| s.len() > 0).collect();
            let mut out = Vec::new();
            'elem: for (s, m) in first.all()? {
                for r in rest.iter_mut() {
                    if r.score(&m)?.is_some() {
                        continue 'elem;
                    }
                }
                out.push((s, m));
            }
            out
        }
    };
    out.sort_by(order);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{run, texts};
    use crate::protocol::reply::Reply;
    use crate::store::testing::store;
    use std::collections::BTreeMap;

    fn bulks(r: Reply) -> Vec<String> {
        let Reply::Array(v) = r else {
            panic!("an array: {r:?}")
        };
        texts(v)
    }

    #[test]
    fn a_large_sorted_set_answers_ranges_and_ranks_as_a_model_does() {
        let (_d, store) = store();
        let mut model: BTreeMap<String, i64> = BTreeMap::new();
        for i in 0..6000i64 {
            let m = format!("m{:05}", (i * 7919) % 6007);
            let s = (i * 31) % 1000;
            run(&store, &["ZADD", "z", &s.to_string(), &m]);
            model.insert(m, s);
        }
        let mut sorted: Vec<(i64, String)> = model.iter().map(|(m, s)| (*s, m.clone())).collect();
        sorted.sort();
        assert!(store.engine.stats().chunks > 10, "the set is chunked");
        assert_eq!(
            run(&store, &["ZCARD", "z"]),
            Reply::Int(sorted.len() as i64)
        );
        let want: Vec<String> = sorted[100..=110].iter().map(|e| e.1.clone()).collect();
        assert_eq!(bulks(run(&store, &["ZRANGE", "z", "100", "110"])), want);
        let in_range: Vec<String> = sorted
            .iter()
            .filter(|e| e.0 > 500 && e.0 <= 510)
            .map(|e| e.1.clone())
            .collect();
        assert_eq!(
            bulks(run(&store, &["ZRANGEBYSCORE", "z", "(500", "510"])),
            in_range
        );
        assert_eq!(
            run(&store, &["ZCOUNT", "z", "(500", "510"]),
            Reply::Int(in_range.len() as i64)
        );
        let rev: Vec<String> = in_range.iter().rev().skip(2).take(3).cloned().collect();
        assert_eq!(
            bulks(run(
                &store,
                &[
                    "ZRANGE", "z", "510", "(500", "BYSCORE", "REV", "LIMIT", "2", "3"
                ]
            )),
            rev
        );
        let (s, m) = sorted[4321].clone();
        let (s, m) = (&s, &m);
        assert_eq!(run(&store, &["ZRANK", "z", m]), Reply::Int(4321));
        assert_eq!(run(&store, &["ZSCORE", "z", m]), Reply::Double(*s as f64));
        assert_eq!(
            run(&store, &["ZREMRANGEBYSCORE", "z", "0", "(100"]),
            Reply::Int(sorted.iter().filter(|e| e.0 < 100).count() as i64)
        );
        sorted.retain(|e| e.0 >= 100);
        let last = sorted.last().expect("elements").1.clone();
        assert_eq!(bulks(run(&store, &["ZRANGE", "z", "-1", "-1"])), vec![last]);
        assert_eq!(
            run(&store, &["ZRANK", "z", m]),
            Reply::Int(sorted.iter().position(|e| &e.1 == m).expect("kept") as i64)
        );
        assert_eq!(
            run(&store, &["ZUNIONSTORE", "u", "1", "z", "WEIGHTS", "2"]),
            Reply::Int(sorted.len() as i64)
        );
        assert_eq!(
            run(&store, &["ZSCORE", "u", m]),
            Reply::Double(2.0 * *s as f64)
        );
    }
}
