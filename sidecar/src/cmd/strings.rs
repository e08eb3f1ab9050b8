//! String commands: GET/SET and their variants, MGET/MSET, APPEND and ranges,
//! counters. Each parses into a [`Cmd`] and applies to a keyspace; read-modify-write
//! commands keep the key's TTL as Redis does (their unit holds the key's stripe).

use super::args::{Args, is, parse_f64, parse_i64};
use super::error::{CmdError, CmdResult};
use super::{DataCmd, KeyPair};
use crate::keyspace::Keyspace;
use crate::protocol::reply::{Reply, format_double};
use bytes::Bytes;
use caskade_engine::MAX_VALUE_LEN;

/// An expiry as given: a time in ms, relative to now or absolute, checked as Redis
/// checks it when parsed and resolved against the keyspace's clock when applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expiry {
    ms: i64,
    absolute: bool,
    cmd: &'static str,
}

impl Expiry {
    /// Parses an EX/PX/EXAT/PXAT value (`unit_ms`: 1000 for seconds).
    fn parse(
        cmd: &'static str,
        raw: &[u8],
        unit_ms: i64,
        absolute: bool,
    ) -> Result<Self, CmdError> {
        let n = parse_i64(raw).ok_or(CmdError::NotInteger)?;
        if n <= 0 {
            return Err(CmdError::InvalidExpire(cmd));
        }
        let ms = n.checked_mul(unit_ms).ok_or(CmdError::InvalidExpire(cmd))?;
        Ok(Expiry { ms, absolute, cmd })
    }

    /// The expiry word `opt` (`ex`, `px`, `exat`, `pxat`) with its value.
    fn of_option(cmd: &'static str, opt: &[u8], raw: &[u8]) -> Option<Result<Self, CmdError>> {
        let (unit, absolute) = if is(opt, "ex") {
            (1000, false)
        } else if is(opt, "px") {
            (1, false)
        } else if is(opt, "exat") {
            (1000, true)
        } else if is(opt, "pxat") {
            (1, true)
        } else {
            return None;
        };
        Some(Expiry::parse(cmd, raw, unit, absolute))
    }

    /// The absolute time in Unix ms.
    fn at(self, now_ms: u64) -> Result<u64, CmdError> {
        if self.absolute {
            return Ok(self.ms as u64);
        }
        self.ms
            .checked_add(now_ms as i64)
            .map(|t| t as u64)
            .ok_or(CmdError::InvalidExpire(self.cmd))
    }
}

/// What SET does with the TTL.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SetTtl {
    /// No expiry.
    Clear,
    /// KEEPTTL.
    Keep,
    /// EX/PX/EXAT/PXAT.
    Expire(Expiry),
}

/// SET's condition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cond {
    /// Always.
    Always,
    /// NX: only if absent.
    Absent,
    /// XX: only if present.
    Present,
}

/// SET with its options.
#[derive(Debug, Clone, PartialEq)]
pub struct Set<'a> {
    key: &'a Bytes,
    value: &'a Bytes,
    cond: Cond,
    get: bool,
    ttl: SetTtl,
}

/// What GETEX does with the TTL.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GetExTtl {
    /// Nothing.
    Leave,
    /// PERSIST.
    Persist,
    /// EX/PX/EXAT/PXAT.
    Expire(Expiry),
}

/// A string command, parsed; it borrows its keys and values from the request.
#[derive(Debug, Clone, PartialEq)]
pub enum Cmd<'a> {
    /// GET key
    Get(&'a Bytes),
    /// SET key value [NX|XX] [GET] [EX|PX|EXAT|PXAT t|KEEPTTL]
    Set(Set<'a>),
    /// SETNX key value
    SetNx(KeyPair<'a>),
    /// SETEX / PSETEX key t value
    SetEx(KeyPair<'a>, Expiry),
    /// GETSET key value
    GetSet(KeyPair<'a>),
    /// GETDEL key
    GetDel(&'a Bytes),
    /// GETEX key [EX|PX|EXAT|PXAT t|PERSIST]
    GetEx(&'a Bytes, GetExTtl),
    /// MGET key...
    MGet(&'a [Bytes]),
    /// MSET / MSETNX key value ...
    MSet {
        /// The pairs, in order.
        pairs: Vec<KeyPair<'a>>,
        /// MSETNX: only if no key exists.
        nx: bool,
    },
    /// APPEND key tail
    Append(KeyPair<'a>),
    /// STRLEN key
    StrLen(&'a Bytes),
    /// GETRANGE key start end
    GetRange(&'a Bytes, i64, i64),
    /// SETRANGE key offset piece
    SetRange(&'a Bytes, usize, &'a Bytes),
    /// INCR/DECR/INCRBY/DECRBY key
    IncrBy(&'a Bytes, i64),
    /// INCRBYFLOAT key by
    IncrByFloat(&'a Bytes, f64),
}

fn pair<'a>(a: &mut Args<'a>) -> Result<KeyPair<'a>, CmdError> {
    Ok((a.next_key()?, a.next_arg()?))
}

fn done<'a>(a: &Args<'a>, c: Cmd<'a>) -> Result<DataCmd<'a>, CmdError> {
    a.finish()?;
    Ok(DataCmd::Str(c))
}

pub fn get<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let key = a.next_key()?;
    done(a, Cmd::Get(key))
}

pub fn set<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let (key, value) = pair(a)?;
    let (mut cond, mut get, mut ttl) = (Cond::Always, false, None);
    while let Some(opt) = a.next_opt() {
        if is(opt, "nx") && cond != Cond::Present {
            cond = Cond::Absent;
        } else if is(opt, "xx") && cond != Cond::Absent {
            cond = Cond::Present;
        } else if is(opt, "get") {
            get = true;
        } else if is(opt, "keepttl") && ttl.is_none() {
            ttl = Some(SetTtl::Keep);
        } else if ttl.is_none() && ["ex", "px", "exat", "pxat"].iter().any(|w| is(opt, w)) {
            let raw = a.value_of_option()?;
            let e = Expiry::of_option("set", opt, raw).ok_or(CmdError::Syntax)??;
            ttl = Some(SetTtl::Expire(e));
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let set = Set {
        key,
        value,
        cond,
        get,
        ttl: ttl.unwrap_or(SetTtl::Clear),
    };
    Ok(DataCmd::Str(Cmd::Set(set)))
}

pub fn setnx<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let p = pair(a)?;
    done(a, Cmd::SetNx(p))
}

fn set_with_ttl<'a>(a: &mut Args<'a>, unit: i64) -> Result<DataCmd<'a>, CmdError> {
    let key = a.next_key()?;
    let e = Expiry::parse(a.cmd(), a.next_arg()?, unit, false)?;
    let value = a.next_arg()?;
    done(a, Cmd::SetEx((key, value), e))
}

pub fn setex<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    set_with_ttl(a, 1000)
}

pub fn psetex<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    set_with_ttl(a, 1)
}

pub fn getset<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let p = pair(a)?;
    done(a, Cmd::GetSet(p))
}

pub fn getdel<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let key = a.next_key()?;
    done(a, Cmd::GetDel(key))
}

pub fn getex<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let key = a.next_key()?;
    let ttl = match a.take_rest() {
        [] => GetExTtl::Leave,
        [o] if is(o, "persist") => GetExTtl::Persist,
        [o, v] => GetExTtl::Expire(Expiry::of_option("getex", o, v).ok_or(CmdError::Syntax)??),
        _ => return Err(CmdError::Syntax),
    };
    Ok(DataCmd::Str(Cmd::GetEx(key, ttl)))
}

pub fn mget<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    Ok(DataCmd::Str(Cmd::MGet(a.take_rest())))
}

fn pairs<'a>(a: &mut Args<'a>) -> Result<Vec<KeyPair<'a>>, CmdError> {
    if !a.remaining().is_multiple_of(2) {
        return Err(CmdError::Arity(a.cmd()));
    }
    let mut out = Vec::with_capacity(a.remaining() / 2);
    while !a.is_empty() {
        out.push(pair(a)?);
    }
    Ok(out)
}

pub fn mset<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let pairs = pairs(a)?;
    Ok(DataCmd::Str(Cmd::MSet { pairs, nx: false }))
}

pub fn msetnx<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let pairs = pairs(a)?;
    Ok(DataCmd::Str(Cmd::MSet { pairs, nx: true }))
}

pub fn append<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let p = pair(a)?;
    done(a, Cmd::Append(p))
}

pub fn strlen<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let key = a.next_key()?;
    done(a, Cmd::StrLen(key))
}

pub fn getrange<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let key = a.next_key()?;
    let (start, end) = (a.next_i64()?, a.next_i64()?);
    done(a, Cmd::GetRange(key, start, end))
}

pub fn setrange<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let key = a.next_key()?;
    let offset = a.next_i64()?;
    let offset = usize::try_from(offset).map_err(|_| CmdError::err("offset is out of range"))?;
    let piece = a.next_arg()?;
    done(a, Cmd::SetRange(key, offset, piece))
}

fn incr_by<'a>(a: &mut Args<'a>, sign: i64) -> Result<DataCmd<'a>, CmdError> {
    let key = a.next_key()?;
    done(a, Cmd::IncrBy(key, sign))
}

pub fn incr<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    incr_by(a, 1)
}

pub fn decr<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    incr_by(a, -1)
}

pub fn incrby<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let key = a.next_key()?;
    let by = a.next_i64()?;
    done(a, Cmd::IncrBy(key, by))
}

pub fn decrby<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let key = a.next_key()?;
    let by = match a.next_i64()? {
        i64::MIN => return Err(CmdError::err("decrement would overflow")),
        by => -by,
    };
    done(a, Cmd::IncrBy(key, by))
}

pub fn incrbyfloat<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let key = a.next_key()?;
    let by = a.next_f64()?;
    done(a, Cmd::IncrByFloat(key, by))
}

fn too_big() -> CmdError {
    CmdError::err("string exceeds maximum allowed size (proto-max-bulk-len)")
}

impl Cmd<'_> {
    /// Applies the command to `ks`.
    pub fn apply(self, ks: &mut Keyspace<'_>) -> CmdResult {
        match self {
            Cmd::Get(key) => Ok(Reply::opt(ks.get_through(key)?)),
            Cmd::Set(s) => apply_set(ks, s),
            Cmd::SetNx((key, value)) => {
                if ks.exists(key)? {
                    return Ok(Reply::Int(0));
                }
                ks.put(key, value, None)?;
                Ok(Reply::Int(1))
            }
            Cmd::SetEx((key, value), e) => {
                let at = e.at(ks.now_ms())?;
                ks.put(key, value, Some(at))?;
                Ok(Reply::OK)
            }
            Cmd::GetSet((key, value)) => {
                let old = ks.get(key)?;
                ks.put(key, value, None)?;
                Ok(Reply::opt(old))
            }
            Cmd::GetDel(key) => {
                let old = ks.get(key)?;
                if old.is_some() {
                    ks.delete(key)?;
                }
                Ok(Reply::opt(old))
            }
            Cmd::GetEx(key, ttl) => {
                let at = match ttl {
                    GetExTtl::Expire(e) => Some(e.at(ks.now_ms())?),
                    GetExTtl::Leave | GetExTtl::Persist => None,
                };
                let Some(value) = ks.get_through(key)? else {
                    return Ok(Reply::Nil);
                };
                match (ttl, at) {
                    (_, Some(t)) => {
                        ks.expire(key, t)?;
                    }
                    (GetExTtl::Persist, None) => {
                        ks.persist(key)?;
                    }
                    _ => {}
                }
                Ok(Reply::Bulk(value))
            }
            Cmd::MGet(keys) => {
                let mut out = Vec::with_capacity(keys.len());
                for k in keys {
                    // A key of another type reads as nil here, as in Redis.
                    match ks.get_through(k) {
                        Err(crate::keyspace::ReadError::Engine(
                            caskade_engine::Error::WrongType,
                        )) => out.push(Reply::Nil),
                        r => out.push(Reply::opt(r?)),
                    }
                }
                Ok(Reply::Array(out))
            }
            Cmd::MSet { pairs, nx } => {
                if nx {
                    for (k, _) in &pairs {
                        if ks.exists(k)? {
                            return Ok(Reply::Int(0));
                        }
                    }
                }
                for (k, v) in &pairs {
                    ks.put(k, v, None)?;
                }
                Ok(if nx { Reply::Int(1) } else { Reply::OK })
            }
            Cmd::Append((key, tail)) => {
                let (mut v, exp) = match ks.get_item(key)? {
                    Some(i) => (i.value.to_vec(), i.expire_at_ms),
                    None => (Vec::new(), None),
                };
                if v.len() + tail.len() > MAX_VALUE_LEN {
                    return Err(too_big());
                }
                v.extend_from_slice(tail);
                ks.put(key, &v, exp)?;
                Ok(Reply::Int(v.len() as i64))
            }
            Cmd::StrLen(key) => Ok(Reply::Int(ks.get(key)?.map_or(0, |v| v.len() as i64))),
            Cmd::GetRange(key, start, end) => {
                let v = ks.get(key)?.unwrap_or_default();
                Ok(Reply::Bulk(range(&v, start, end)))
            }
            Cmd::SetRange(key, offset, piece) => {
                let old = ks.get_item(key)?;
                if piece.is_empty() {
                    return Ok(Reply::Int(old.map_or(0, |i| i.value.len() as i64)));
                }
                if offset.saturating_add(piece.len()) > MAX_VALUE_LEN {
                    return Err(too_big());
                }
                let (mut v, exp) = match old {
                    Some(i) => (i.value.to_vec(), i.expire_at_ms),
                    None => (Vec::new(), None),
                };
                if v.len() < offset + piece.len() {
                    v.resize(offset + piece.len(), 0);
                }
                v[offset..offset + piece.len()].copy_from_slice(piece);
                ks.put(key, &v, exp)?;
                Ok(Reply::Int(v.len() as i64))
            }
            Cmd::IncrBy(key, by) => {
                let (cur, exp) = match ks.get_item(key)? {
                    Some(i) => (
                        parse_i64(&i.value).ok_or(CmdError::NotInteger)?,
                        i.expire_at_ms,
                    ),
                    None => (0, None),
                };
                let n = cur
                    .checked_add(by)
                    .ok_or(CmdError::err("increment or decrement would overflow"))?;
                let mut buf = itoa::Buffer::new();
                ks.put(key, buf.format(n).as_bytes(), exp)?;
                Ok(Reply::Int(n))
            }
            Cmd::IncrByFloat(key, by) => {
                let (cur, exp) = match ks.get_item(key)? {
                    Some(i) => (
                        parse_f64(&i.value).ok_or(CmdError::NotFloat)?,
                        i.expire_at_ms,
                    ),
                    None => (0.0, None),
                };
                let n = cur + by;
                if !n.is_finite() {
                    return Err(CmdError::err("increment would produce NaN or Infinity"));
                }
                let text = format_double(n);
                ks.put(key, text.as_bytes(), exp)?;
                Ok(Reply::text(&text))
            }
        }
    }
}

fn apply_set(ks: &mut Keyspace<'_>, s: Set<'_>) -> CmdResult {
    let at = match s.ttl {
        SetTtl::Expire(e) => Some(e.at(ks.now_ms())?),
        SetTtl::Clear | SetTtl::Keep => None,
    };
    let needs_old = s.get || s.cond != Cond::Always || s.ttl == SetTtl::Keep;
    // Without GET, a key of any type counts as present (and is replaced), as in Redis.
    let old = match (needs_old, s.get) {
        (false, _) => None,
        (true, true) => ks.get_item(s.key)?,
        (true, false) => ks.get_typed(s.key)?,
    };
    let old_reply = || Reply::opt(old.as_ref().map(|o| o.value.clone()));
    let blocked = match s.cond {
        Cond::Always => false,
        Cond::Absent => old.is_some(),
        Cond::Present => old.is_none(),
    };
    if blocked {
        return Ok(if s.get { old_reply() } else { Reply::Nil });
    }
    let exp = match s.ttl {
        SetTtl::Expire(_) => at,
        SetTtl::Keep => old.as_ref().and_then(|o| o.expire_at_ms),
        SetTtl::Clear => None,
    };
    ks.put(s.key, s.value, exp)?;
    Ok(if s.get { old_reply() } else { Reply::OK })
}

/// GETRANGE's slice, with Redis' handling of negative and out-of-range indexes.
fn range(v: &Bytes, mut start: i64, mut end: i64) -> Bytes {
    let len = v.len() as i64;
    if start < 0 && end < 0 && start > end {
        return Bytes::new();
    }
    if start < 0 {
        start = (len + start).max(0);
    }
    if end < 0 {
        end = (len + end).max(0);
    }
    end = end.min(len - 1);
    if len == 0 || start > end {
        return Bytes::new();
    }
    v.slice(start as usize..=end as usize)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{run, run_at};
    use crate::protocol::reply::Reply;
    use crate::store::testing::store;

    fn bulk(s: &str) -> Reply {
        Reply::text(s)
    }

    fn err(s: &str) -> Reply {
        Reply::err(s)
    }

    #[test]
    fn set_options() {
        let (_d, st) = store();
        assert_eq!(run(&st, &["set", "k", "v1"]), Reply::OK);
        assert_eq!(run(&st, &["set", "k", "v2", "nx"]), Reply::Nil);
        assert_eq!(run(&st, &["set", "k", "v2", "xx", "get"]), bulk("v1"));
        assert_eq!(run(&st, &["set", "n", "v", "xx"]), Reply::Nil);
        assert_eq!(
            run(&st, &["set", "k", "v", "nx", "xx"]),
            err("ERR syntax error")
        );
        assert_eq!(run(&st, &["set", "k", "v", "ex"]), err("ERR syntax error"));
        assert_eq!(
            run(&st, &["set", "k", "v", "ex", "0"]),
            err("ERR invalid expire time in 'set' command")
        );
        assert_eq!(
            run(&st, &["set", "k", "v", "px", "x"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            run(&st, &["set", "k", "v", "ex", "1", "px", "1"]),
            err("ERR syntax error")
        );
        assert_eq!(run(&st, &["get", "k"]), bulk("v2"));
    }

    #[test]
    fn ttls_use_the_keyspace_clock() {
        let (_d, st) = store();
        let now = st.engine.now_ms();
        assert_eq!(run(&st, &["set", "k", "v", "ex", "100"]), Reply::OK);
        let ttl = st
            .engine
            .ttl(0, b"k")
            .expect("ttl")
            .expect("key")
            .expect("expiry");
        assert!(
            ttl >= now + 100_000 && ttl < now + 101_000,
            "{ttl} vs {now}"
        );
        assert_eq!(run(&st, &["set", "k", "w", "keepttl"]), Reply::OK);
        assert_eq!(
            st.engine.ttl(0, b"k").expect("ttl").expect("key"),
            Some(ttl)
        );
        assert_eq!(run(&st, &["getex", "k", "persist"]), bulk("w"));
        assert_eq!(st.engine.ttl(0, b"k").expect("ttl").expect("key"), None);
        assert_eq!(run(&st, &["getex", "k", "bogus"]), err("ERR syntax error"));
        assert_eq!(run(&st, &["getex", "nope", "ex", "5"]), Reply::Nil);
        assert_eq!(run(&st, &["psetex", "p", "1000", "v"]), Reply::OK);
        assert_eq!(
            run(&st, &["setex", "p", "-1", "v"]),
            err("ERR invalid expire time in 'setex' command")
        );
        assert_eq!(run_at(&st, 1, &["get", "k"]), Reply::Nil);
    }

    #[test]
    fn counters() {
        let (_d, st) = store();
        assert_eq!(run(&st, &["incr", "c"]), Reply::Int(1));
        assert_eq!(run(&st, &["incrby", "c", "41"]), Reply::Int(42));
        assert_eq!(run(&st, &["decrby", "c", "2"]), Reply::Int(40));
        assert_eq!(run(&st, &["decr", "c"]), Reply::Int(39));
        assert_eq!(
            run(&st, &["decrby", "c", "-9223372036854775808"]),
            err("ERR decrement would overflow")
        );
        assert_eq!(run(&st, &["set", "m", "9223372036854775807"]), Reply::OK);
        assert_eq!(
            run(&st, &["incr", "m"]),
            err("ERR increment or decrement would overflow")
        );
        assert_eq!(run(&st, &["set", "s", "abc"]), Reply::OK);
        assert_eq!(
            run(&st, &["incr", "s"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(run(&st, &["incrbyfloat", "f", "1.5"]), bulk("1.5"));
        assert_eq!(
            run(&st, &["incrbyfloat", "f", "x"]),
            err("ERR value is not a valid float")
        );
        assert_eq!(
            run(&st, &["incrbyfloat", "s", "1"]),
            err("ERR value is not a valid float")
        );
    }

    #[test]
    fn multi_key_and_ranges() {
        let (_d, st) = store();
        assert_eq!(run(&st, &["mset", "a", "1", "b", "2"]), Reply::OK);
        assert_eq!(
            run(&st, &["mset", "a", "1", "b"]),
            err("ERR wrong number of arguments for 'mset' command")
        );
        assert_eq!(run(&st, &["msetnx", "a", "9", "c", "3"]), Reply::Int(0));
        assert_eq!(run(&st, &["msetnx", "c", "3", "d", "4"]), Reply::Int(1));
        assert_eq!(
            run(&st, &["mget", "a", "x", "d"]),
            Reply::Array(vec![bulk("1"), Reply::Nil, bulk("4")])
        );
        assert_eq!(run(&st, &["append", "s", "Hello"]), Reply::Int(5));
        assert_eq!(run(&st, &["append", "s", " World"]), Reply::Int(11));
        assert_eq!(run(&st, &["getrange", "s", "-5", "-1"]), bulk("World"));
        assert_eq!(run(&st, &["getrange", "s", "5", "1"]), bulk(""));
        assert_eq!(run(&st, &["setrange", "s", "6", "Redis"]), Reply::Int(11));
        assert_eq!(run(&st, &["get", "s"]), bulk("Hello Redis"));
        assert_eq!(
            run(&st, &["setrange", "s", "-1", "x"]),
            err("ERR offset is out of range")
        );
        assert_eq!(run(&st, &["strlen", "s"]), Reply::Int(11));
        assert_eq!(run(&st, &["getset", "s", "new"]), bulk("Hello Redis"));
        assert_eq!(run(&st, &["getdel", "s"]), bulk("new"));
        assert_eq!(run(&st, &["getdel", "s"]), Reply::Nil);
        assert_eq!(run(&st, &["setnx", "s", "1"]), Reply::Int(1));
        assert_eq!(run(&st, &["setnx", "s", "2"]), Reply::Int(0));
        assert_eq!(
            run(&st, &["get", "s", "extra"]),
            err("ERR wrong number of arguments for 'get' command")
        );
    }
}
