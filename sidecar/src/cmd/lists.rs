//! The list commands (LPUSH ... LMPOP, without the blocking forms): parsed into
//! [`Cmd`], applied to [`Listed`] lists of the keyspace, each change one atomic change
//! of the log.

use super::args::{Args, is, parse_i64};
use super::{CmdError, CmdResult, DataCmd};
use crate::keyspace::Keyspace;
use crate::protocol::reply::Reply;
use crate::types::listed::Listed;
use bytes::Bytes;
use caskade_engine::ValueType;

/// A list's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The head (LEFT).
    Left,
    /// The tail (RIGHT).
    Right,
}

impl End {
    fn front(self) -> bool {
        self == End::Left
    }
}

/// A list command, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Cmd<'a> {
    /// LPUSH, RPUSH, LPUSHX, RPUSHX (`existing`: only onto a list that exists).
    Push {
        key: &'a Bytes,
        end: End,
        elems: &'a [Bytes],
        existing: bool,
    },
    /// LPOP, RPOP: one element, or a count of them.
    Pop(&'a Bytes, End, Option<u64>),
    /// LLEN
    Len(&'a Bytes),
    /// LRANGE
    Range(&'a Bytes, i64, i64),
    /// LINDEX (the index is read once the key is known to exist, as Redis does)
    Index(&'a Bytes, &'a Bytes),
    /// LSET (likewise)
    Set(&'a Bytes, &'a Bytes, &'a Bytes),
    /// LREM (count: negative from the tail, 0 all)
    Rem(&'a Bytes, i64, &'a Bytes),
    /// LTRIM
    Trim(&'a Bytes, i64, i64),
    /// LINSERT key BEFORE|AFTER pivot element (`after`).
    Insert {
        key: &'a Bytes,
        after: bool,
        pivot: &'a Bytes,
        elem: &'a Bytes,
    },
    /// LPOS
    Pos {
        key: &'a Bytes,
        elem: &'a Bytes,
        rank: i64,
        count: Option<u64>,
        maxlen: u64,
    },
    /// LMOVE, RPOPLPUSH
    Move {
        src: &'a Bytes,
        dst: &'a Bytes,
        from: End,
        to: End,
    },
    /// LMPOP
    MPop {
        keys: &'a [Bytes],
        end: End,
        count: u64,
    },
}

fn done<'a>(a: &Args<'a>, c: Cmd<'a>) -> Result<DataCmd<'a>, CmdError> {
    a.finish()?;
    Ok(DataCmd::List(c))
}

/// LEFT or RIGHT (a syntax error when missing).
pub(super) fn next_end(a: &mut Args<'_>) -> Result<End, CmdError> {
    {
        let w = a.next_opt().ok_or(CmdError::Syntax)?;
        if is(w, "LEFT") {
            Ok(End::Left)
        } else if is(w, "RIGHT") {
            Ok(End::Right)
        } else {
            Err(CmdError::Syntax)
        }
    }
}

fn push<'a>(a: &mut Args<'a>, end: End, existing: bool) -> Result<DataCmd<'a>, CmdError> {
    let key = a.next_key()?;
    let elems = a.take_rest();
    done(
        a,
        Cmd::Push {
            key,
            end,
            elems,
            existing,
        },
    )
}

pub fn lpush<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    push(a, End::Left, false)
}

pub fn rpush<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    push(a, End::Right, false)
}

pub fn lpushx<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    push(a, End::Left, true)
}

pub fn rpushx<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    push(a, End::Right, true)
}

/// A count that must be positive (LPOP's, LMPOP's): `msg` otherwise.
fn positive(b: &[u8], zero_ok: bool, msg: &'static str) -> Result<u64, CmdError> {
    parse_i64(b)
        .filter(|&n| n > 0 || (zero_ok && n == 0))
        .map(|n| n as u64)
        .ok_or(CmdError::err(msg))
}

fn pop<'a>(a: &mut Args<'a>, end: End) -> Result<DataCmd<'a>, CmdError> {
    if a.remaining() > 2 {
        return Err(CmdError::Arity(a.cmd()));
    }
    let key = a.next_key()?;
    let count = match a.next_opt() {
        None => None,
        Some(c) => Some(positive(
            c,
            true,
            "value is out of range, must be positive",
        )?),
    };
    done(a, Cmd::Pop(key, end, count))
}

pub fn lpop<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    pop(a, End::Left)
}

pub fn rpop<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    pop(a, End::Right)
}

parse!(llen(k: next_key) => Cmd::Len(k));
parse!(lrange(k: next_key, start: next_i64, stop: next_i64) => Cmd::Range(k, start, stop));
parse!(lindex(k: next_key, i: next_arg) => Cmd::Index(k, i));
parse!(lset(k: next_key, i: next_arg, v: next_arg) => Cmd::Set(k, i, v));
parse!(lrem(k: next_key, n: next_i64, v: next_arg) => Cmd::Rem(k, n, v));
parse!(ltrim(k: next_key, start: next_i64, stop: next_i64) => Cmd::Trim(k, start, stop));

pub fn linsert<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let key = a.next_key()?;
    let w = a.next_arg()?;
    let after = if is(w, "AFTER") {
        true
    } else if is(w, "BEFORE") {
        false
    } else {
        return Err(CmdError::Syntax);
    };
    let (pivot, elem) = (a.next_arg()?, a.next_arg()?);
    done(
        a,
        Cmd::Insert {
            key,
            after,
            pivot,
            elem,
        },
    )
}

pub fn lpos<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let (key, elem) = (a.next_key()?, a.next_arg()?);
    let (mut rank, mut count, mut maxlen) = (1, None, 0);
    while let Some(opt) = a.next_opt() {
        let v = a.next_opt().ok_or(CmdError::Syntax)?;
        let n = parse_i64(v).ok_or(CmdError::NotInteger)?;
        if is(opt, "RANK") {
            if n == 0 {
                return Err(CmdError::err(
                    "RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                ));
            }
            rank = n;
        } else if is(opt, "COUNT") {
            count = Some(u64::try_from(n).map_err(|_| CmdError::err("COUNT can't be negative"))?);
        } else if is(opt, "MAXLEN") {
            maxlen = u64::try_from(n).map_err(|_| CmdError::err("MAXLEN can't be negative"))?;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    done(
        a,
        Cmd::Pos {
            key,
            elem,
            rank,
            count,
            maxlen,
        },
    )
}

pub fn lmove<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let (src, dst) = (a.next_key()?, a.next_key()?);
    let (from, to) = (next_end(a)?, next_end(a)?);
    done(a, Cmd::Move { src, dst, from, to })
}

pub fn rpoplpush<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let (src, dst) = (a.next_key()?, a.next_key()?);
    done(
        a,
        Cmd::Move {
            src,
            dst,
            from: End::Right,
            to: End::Left,
        },
    )
}

pub fn lmpop<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let (keys, right, count) = a.mpop(["LEFT", "RIGHT"])?;
    let end = if right { End::Right } else { End::Left };
    done(a, Cmd::MPop { keys, end, count })
}

fn open<'k, 'a>(ks: &'k Keyspace<'a>, key: &'k [u8]) -> Result<Listed<'k, 'a>, CmdError> {
    Listed::open(ks, key)
}

/// Redis' index rule: negative counts from the tail; `None` outside the list.
fn index(i: i64, len: u64) -> Option<u64> {
    let i = if i < 0 { len as i64 + i } else { i };
    (i >= 0 && (i as u64) < len).then_some(i as u64)
}

/// Redis' range rule (LRANGE, LTRIM): the inclusive bounds inside the list, or `None`
/// when the range holds nothing.
fn bounds(start: i64, stop: i64, len: u64) -> Option<(u64, u64)> {
    let len_i = len as i64;
    let start = if start < 0 {
        (len_i + start).max(0)
    } else {
        start
    };
    let stop = if stop < 0 { len_i + stop } else { stop };
    if start > stop || start >= len_i {
        return None;
    }
    Some((start as u64, stop.min(len_i - 1) as u64))
}

fn bulks(v: Vec<Bytes>) -> Reply {
    Reply::Array(v.into_iter().map(Reply::Bulk).collect())
}

/// Pops up to `count` elements from `end` of `l` (committing it).
fn pop_some(mut l: Listed<'_, '_>, end: End, count: u64) -> Result<Vec<Bytes>, CmdError> {
    let mut out = Vec::new();
    for _ in 0..count.min(l.len()) {
        if let Some(v) = l.pop(end.front())? {
            out.push(v);
        }
    }
    l.commit()?;
    Ok(out)
}

impl Cmd<'_> {
    /// Applies the command to `ks`.
    pub fn apply(self, ks: &mut Keyspace<'_>) -> CmdResult {
        let ks = &*ks;
        match self {
            Cmd::Push {
                key,
                end,
                elems,
                existing,
            } => {
                let mut l = open(ks, key)?;
                if existing && !l.exists() {
                    return Ok(Reply::Int(0));
                }
                for v in elems {
                    l.push(end.front(), v.clone())?;
                }
                let n = l.len();
                l.commit()?;
                Ok(Reply::Int(n as i64))
            }
            Cmd::Pop(key, end, count) => {
                let l = open(ks, key)?;
                let Some(count) = count else {
                    return Ok(Reply::opt(pop_some(l, end, 1)?.pop()));
                };
                if !l.exists() {
                    return Ok(Reply::NilArray);
                }
                Ok(bulks(pop_some(l, end, count)?))
            }
            Cmd::Len(key) => Ok(Reply::Int(open(ks, key)?.len() as i64)),
            Cmd::Range(key, start, stop) => {
                let mut l = open(ks, key)?;
                Ok(match bounds(start, stop, l.len()) {
                    Some((a, b)) => bulks(l.range(a, b)?),
                    None => Reply::Array(Vec::new()),
                })
            }
            Cmd::Index(key, i) => {
                let mut l = open(ks, key)?;
                if !l.exists() {
                    return Ok(Reply::Nil);
                }
                let i = parse_i64(i).ok_or(CmdError::NotInteger)?;
                Ok(match index(i, l.len()) {
                    Some(i) => Reply::opt(l.get(i)?),
                    None => Reply::Nil,
                })
            }
            Cmd::Set(key, i, v) => {
                let mut l = open(ks, key)?;
                if !l.exists() {
                    return Err(CmdError::err("no such key"));
                }
                let i = parse_i64(i).ok_or(CmdError::NotInteger)?;
                let i = index(i, l.len()).ok_or(CmdError::err("index out of range"))?;
                l.set(i, v.clone())?;
                l.commit()?;
                Ok(Reply::OK)
            }
            Cmd::Rem(key, count, v) => {
                let mut l = open(ks, key)?;
                let n = l.remove_equal(v, count.unsigned_abs(), count < 0)?;
                l.commit()?;
                Ok(Reply::Int(n as i64))
            }
            Cmd::Trim(key, start, stop) => {
                let mut l = open(ks, key)?;
                match bounds(start, stop, l.len()) {
                    Some((a, b)) => l.trim(a, b)?,
                    None => l.clear()?,
                }
                l.commit()?;
                Ok(Reply::OK)
            }
            Cmd::Insert {
                key,
                after,
                pivot,
                elem,
            } => {
                let mut l = open(ks, key)?;
                if !l.exists() {
                    return Ok(Reply::Int(0));
                }
                let Some(at) = position(&mut l, pivot, 1, 1, 0)?.first().copied() else {
                    return Ok(Reply::Int(-1));
                };
                l.insert(at + after as u64, elem.clone())?;
                let n = l.len();
                l.commit()?;
                Ok(Reply::Int(n as i64))
            }
            Cmd::Pos {
                key,
                elem,
                rank,
                count,
                maxlen,
            } => {
                let mut l = open(ks, key)?;
                let found = position(&mut l, elem, rank, count.unwrap_or(1), maxlen)?;
                Ok(match count {
                    None => found.first().map_or(Reply::Nil, |&i| Reply::Int(i as i64)),
                    Some(_) => {
                        Reply::Array(found.into_iter().map(|i| Reply::Int(i as i64)).collect())
                    }
                })
            }
            Cmd::Move { src, dst, from, to } => move_elem(ks, src, dst, from, to),
            Cmd::MPop { keys, end, count } => {
                for k in keys {
                    let l = open(ks, k)?;
                    if l.exists() {
                        let popped = pop_some(l, end, count)?;
                        return Ok(Reply::Array(vec![Reply::Bulk(k.clone()), bulks(popped)]));
                    }
                }
                Ok(Reply::NilArray)
            }
        }
    }
}

/// The indexes of up to `count` (0: all) elements equal to `v`, skipping `rank - 1`
/// matches (a negative rank walks from the tail), looking at `maxlen` elements at
/// most (0: all).
fn position(
    l: &mut Listed<'_, '_>,
    v: &[u8],
    rank: i64,
    count: u64,
    maxlen: u64,
) -> Result<Vec<u64>, CmdError> {
    let len = l.len();
    let mut skip = rank.unsigned_abs() - 1;
    let mut out = Vec::new();
    if len == 0 {
        return Ok(out);
    }
    let limit = if maxlen == 0 { len } else { maxlen.min(len) };
    // A chunk of indexes at a time, so a match near the end it starts from reads
    // only the chunks it needs.
    const STEP: u64 = 256;
    let mut seen = 0;
    while seen < limit {
        let n = STEP.min(limit - seen);
        let (a, b) = if rank > 0 {
            (seen, seen + n - 1)
        } else {
            (len - seen - n, len - seen - 1)
        };
        let part = l.range(a, b)?;
        let indexed = part.iter().enumerate().map(|(j, x)| (a + j as u64, x));
        let walk: Box<dyn Iterator<Item = (u64, &Bytes)>> = if rank > 0 {
            Box::new(indexed)
        } else {
            Box::new(indexed.rev())
        };
        for (i, x) in walk {
            if x != v {
                continue;
            }
            if skip > 0 {
                skip -= 1;
                continue;
            }
            out.push(i);
            if count != 0 && out.len() as u64 == count {
                return Ok(out);
            }
        }
        seen += n;
    }
    Ok(out)
}

/// LMOVE: the element is pushed onto the destination before it leaves the source, so
/// a crash between the two writes leaves it in both, never in neither.
fn move_elem(ks: &Keyspace<'_>, src: &Bytes, dst: &Bytes, from: End, to: End) -> CmdResult {
    let mut source = open(ks, src)?;
    if !source.exists() {
        return Ok(Reply::Nil);
    }
    // A rotation's destination is the list just read.
    if src != dst && ks.type_of(dst)?.is_some_and(|t| t != ValueType::List) {
        return Err(CmdError::WrongType);
    }
    let i = if from.front() { 0 } else { source.len() - 1 };
    let Some(v) = source.get(i)? else {
        return Ok(Reply::Nil);
    };
    if src == dst {
        // A rotation of one list: one change.
        source.pop(from.front())?;
        source.push(to.front(), v.clone())?;
        source.commit()?;
        return Ok(Reply::Bulk(v));
    }
    let mut dest = open(ks, dst)?;
    dest.push(to.front(), v.clone())?;
    dest.commit()?;
    source.pop(from.front())?;
    source.commit()?;
    Ok(Reply::Bulk(v))
}
