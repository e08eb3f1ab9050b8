//! String commands: GET/SET and their variants, multi-key MGET/MSET, APPEND and
//! ranges, counters. Read-modify-write commands hold the key's stripe lock across the
//! read and the write, and keep the key's TTL as Redis does.

use super::{
    Session, engine_error, not_integer, parse_f64, parse_i64, syntax_error, tri, wrong_arity,
};
use crate::origin::{self, Lookup};
use crate::protocol::reply::{Reply, format_double};
use crate::state::{Shared, now_ms};
use bytes::Bytes;
use caskade_engine::MAX_VALUE_LEN;

fn eq(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

/// An expiry option as given: relative or absolute, seconds or milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ttl {
    None,
    Keep,
    Persist,
    At(u64),
}

/// Turns an EX/PX/EXAT/PXAT value into an absolute time in ms, as Redis validates it.
fn expire_at(cmd: &str, unit_ms: i64, absolute: bool, raw: &[u8]) -> Result<u64, Reply> {
    let invalid = || Reply::err(format!("ERR invalid expire time in '{cmd}' command"));
    let n = parse_i64(raw).ok_or_else(not_integer)?;
    if n <= 0 {
        return Err(invalid());
    }
    let ms = n.checked_mul(unit_ms).ok_or_else(invalid)?;
    let at = if absolute {
        ms
    } else {
        ms.checked_add(now_ms() as i64).ok_or_else(invalid)?
    };
    Ok(at as u64)
}

/// The reply for a key as [`origin::lookup`] finds it.
fn looked_up(r: Result<Lookup, Reply>) -> Reply {
    match r {
        Ok(Lookup::Hit(v)) => Reply::Bulk(v),
        Ok(Lookup::Miss) => Reply::Nil,
        Ok(Lookup::Pending) => Reply::Pending,
        Err(e) => e,
    }
}

pub fn get(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    looked_up(origin::lookup(s, sess, &a[0]))
}

pub fn set(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    let (key, value) = (&a[0], &a[1]);
    let (mut nx, mut xx, mut get_old) = (false, false, false);
    let mut ttl = Ttl::None;
    let mut i = 2;
    while i < a.len() {
        let opt = &a[i];
        let next = a.get(i + 1);
        let timed = |unit, abs| -> Result<Ttl, Reply> {
            match next {
                Some(v) => Ok(Ttl::At(expire_at("set", unit, abs, v)?)),
                None => Err(syntax_error()),
            }
        };
        let parsed = if eq(opt, "nx") && !xx {
            nx = true;
            Ok(None)
        } else if eq(opt, "xx") && !nx {
            xx = true;
            Ok(None)
        } else if eq(opt, "get") {
            get_old = true;
            Ok(None)
        } else if eq(opt, "keepttl") && ttl == Ttl::None {
            Ok(Some(Ttl::Keep))
        } else if ttl == Ttl::None && eq(opt, "ex") {
            timed(1000, false).map(Some)
        } else if ttl == Ttl::None && eq(opt, "px") {
            timed(1, false).map(Some)
        } else if ttl == Ttl::None && eq(opt, "exat") {
            timed(1000, true).map(Some)
        } else if ttl == Ttl::None && eq(opt, "pxat") {
            timed(1, true).map(Some)
        } else {
            Err(syntax_error())
        };
        match parsed {
            Err(r) => return r,
            Ok(Some(Ttl::Keep)) => ttl = Ttl::Keep,
            Ok(Some(t)) => {
                ttl = t;
                i += 1;
            }
            Ok(None) => {}
        }
        i += 1;
    }
    let db = sess.db;
    let _g = s.locks.lock(db, &[key]);
    let old = if get_old || nx || xx || ttl == Ttl::Keep {
        tri!(s.engine.get_item(db, key))
    } else {
        None
    };
    let old_reply = || Reply::opt(old.as_ref().map(|o| o.value.clone()));
    if (nx && old.is_some()) || (xx && old.is_none()) {
        return if get_old { old_reply() } else { Reply::Nil };
    }
    let exp = match ttl {
        Ttl::At(t) => Some(t),
        Ttl::Keep => old.as_ref().and_then(|o| o.expire_at_ms),
        Ttl::None | Ttl::Persist => None,
    };
    tri!(s.engine.put(db, key, value, exp));
    if get_old { old_reply() } else { Reply::OK }
}

pub fn setnx(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    let _g = s.locks.lock(sess.db, &[&a[0]]);
    if tri!(s.engine.exists(sess.db, &a[0])) {
        return Reply::Int(0);
    }
    tri!(s.engine.put(sess.db, &a[0], &a[1], None));
    Reply::Int(1)
}

fn set_with_ttl(s: &Shared, sess: &Session, a: &[Bytes], cmd: &str, unit: i64) -> Reply {
    let at = match expire_at(cmd, unit, false, &a[1]) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let _g = s.locks.lock(sess.db, &[&a[0]]);
    tri!(s.engine.put(sess.db, &a[0], &a[2], Some(at)));
    Reply::OK
}

pub fn setex(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    set_with_ttl(s, sess, a, "setex", 1000)
}

pub fn psetex(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    set_with_ttl(s, sess, a, "psetex", 1)
}

pub fn getset(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    let _g = s.locks.lock(sess.db, &[&a[0]]);
    let old = tri!(s.engine.get(sess.db, &a[0]));
    tri!(s.engine.put(sess.db, &a[0], &a[1], None));
    Reply::opt(old)
}

pub fn getdel(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    let _g = s.locks.lock(sess.db, &[&a[0]]);
    let old = tri!(s.engine.get(sess.db, &a[0]));
    if old.is_some() {
        tri!(s.engine.delete(sess.db, &a[0]));
    }
    Reply::opt(old)
}

pub fn getex(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    let ttl = match &a[1..] {
        [] => Ttl::None,
        [o] if eq(o, "persist") => Ttl::Persist,
        [o, v] => {
            let parsed = if eq(o, "ex") {
                expire_at("getex", 1000, false, v)
            } else if eq(o, "px") {
                expire_at("getex", 1, false, v)
            } else if eq(o, "exat") {
                expire_at("getex", 1000, true, v)
            } else if eq(o, "pxat") {
                expire_at("getex", 1, true, v)
            } else {
                return syntax_error();
            };
            match parsed {
                Ok(t) => Ttl::At(t),
                Err(r) => return r,
            }
        }
        _ => return syntax_error(),
    };
    let db = sess.db;
    let _g = s.locks.lock(db, &[&a[0]]);
    let value = match looked_up(origin::lookup(s, sess, &a[0])) {
        Reply::Bulk(v) => v,
        other => return other,
    };
    match ttl {
        Ttl::At(t) => {
            tri!(s.engine.expire(db, &a[0], t));
        }
        Ttl::Persist => {
            tri!(s.engine.persist(db, &a[0]));
        }
        Ttl::None | Ttl::Keep => {}
    }
    Reply::Bulk(value)
}

pub fn mget(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    let mut out = Vec::with_capacity(a.len());
    let mut pending = false;
    for k in a {
        match looked_up(origin::lookup(s, sess, k)) {
            Reply::Pending => pending = true,
            e @ Reply::Error(_) => return e,
            r => out.push(r),
        }
    }
    if pending {
        Reply::Pending
    } else {
        Reply::Array(out)
    }
}

fn pairs<'a>(cmd: &str, a: &'a [Bytes]) -> Result<Vec<(&'a Bytes, &'a Bytes)>, Reply> {
    if !a.len().is_multiple_of(2) {
        return Err(wrong_arity(cmd));
    }
    Ok(a.chunks_exact(2).map(|c| (&c[0], &c[1])).collect())
}

pub fn mset(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    let kv = match pairs("mset", a) {
        Ok(kv) => kv,
        Err(r) => return r,
    };
    let keys: Vec<&[u8]> = kv.iter().map(|(k, _)| &k[..]).collect();
    let _g = s.locks.lock(sess.db, &keys);
    for (k, v) in kv {
        tri!(s.engine.put(sess.db, k, v, None));
    }
    Reply::OK
}

pub fn msetnx(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    let kv = match pairs("msetnx", a) {
        Ok(kv) => kv,
        Err(r) => return r,
    };
    let keys: Vec<&[u8]> = kv.iter().map(|(k, _)| &k[..]).collect();
    let _g = s.locks.lock(sess.db, &keys);
    for k in &keys {
        if tri!(s.engine.exists(sess.db, k)) {
            return Reply::Int(0);
        }
    }
    for (k, v) in kv {
        tri!(s.engine.put(sess.db, k, v, None));
    }
    Reply::Int(1)
}

fn too_big() -> Reply {
    Reply::err("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
}

pub fn append(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    let db = sess.db;
    let _g = s.locks.lock(db, &[&a[0]]);
    let old = tri!(s.engine.get_item(db, &a[0]));
    let (mut v, exp) = match old {
        Some(i) => (i.value.to_vec(), i.expire_at_ms),
        None => (Vec::new(), None),
    };
    if v.len() + a[1].len() > MAX_VALUE_LEN {
        return too_big();
    }
    v.extend_from_slice(&a[1]);
    tri!(s.engine.put(db, &a[0], &v, exp));
    Reply::Int(v.len() as i64)
}

pub fn strlen(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    Reply::Int(tri!(s.engine.get(sess.db, &a[0])).map_or(0, |v| v.len() as i64))
}

pub fn getrange(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    let (Some(mut start), Some(mut end)) = (parse_i64(&a[1]), parse_i64(&a[2])) else {
        return not_integer();
    };
    let v = tri!(s.engine.get(sess.db, &a[0])).unwrap_or_default();
    let len = v.len() as i64;
    if start < 0 && end < 0 && start > end {
        return Reply::bulk(Bytes::new());
    }
    if start < 0 {
        start = (len + start).max(0);
    }
    if end < 0 {
        end = (len + end).max(0);
    }
    end = end.min(len - 1);
    if len == 0 || start > end {
        return Reply::bulk(Bytes::new());
    }
    Reply::Bulk(v.slice(start as usize..=end as usize))
}

pub fn setrange(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    let Some(offset) = parse_i64(&a[1]) else {
        return not_integer();
    };
    if offset < 0 {
        return Reply::err("ERR offset is out of range");
    }
    let offset = offset as usize;
    let db = sess.db;
    let _g = s.locks.lock(db, &[&a[0]]);
    let old = tri!(s.engine.get_item(db, &a[0]));
    let piece = &a[2];
    if piece.is_empty() {
        return Reply::Int(old.map_or(0, |i| i.value.len() as i64));
    }
    if offset.saturating_add(piece.len()) > MAX_VALUE_LEN {
        return too_big();
    }
    let (mut v, exp) = match old {
        Some(i) => (i.value.to_vec(), i.expire_at_ms),
        None => (Vec::new(), None),
    };
    if v.len() < offset + piece.len() {
        v.resize(offset + piece.len(), 0);
    }
    v[offset..offset + piece.len()].copy_from_slice(piece);
    tri!(s.engine.put(db, &a[0], &v, exp));
    Reply::Int(v.len() as i64)
}

fn add(s: &Shared, sess: &Session, key: &[u8], by: i64) -> Reply {
    let db = sess.db;
    let _g = s.locks.lock(db, &[key]);
    let old = tri!(s.engine.get_item(db, key));
    let (cur, exp) = match &old {
        Some(i) => match parse_i64(&i.value) {
            Some(n) => (n, i.expire_at_ms),
            None => return not_integer(),
        },
        None => (0, None),
    };
    let Some(n) = cur.checked_add(by) else {
        return Reply::err("ERR increment or decrement would overflow");
    };
    let mut buf = itoa::Buffer::new();
    if let Err(e) = s.engine.put(db, key, buf.format(n).as_bytes(), exp) {
        return engine_error(e);
    }
    Reply::Int(n)
}

pub fn incr(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    add(s, sess, &a[0], 1)
}

pub fn decr(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    add(s, sess, &a[0], -1)
}

pub fn incrby(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    match parse_i64(&a[1]) {
        Some(by) => add(s, sess, &a[0], by),
        None => not_integer(),
    }
}

pub fn decrby(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    match parse_i64(&a[1]) {
        Some(i64::MIN) => Reply::err("ERR decrement would overflow"),
        Some(by) => add(s, sess, &a[0], -by),
        None => not_integer(),
    }
}

pub fn incrbyfloat(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    let not_float = || Reply::err("ERR value is not a valid float");
    let Some(by) = parse_f64(&a[1]) else {
        return not_float();
    };
    let db = sess.db;
    let _g = s.locks.lock(db, &[&a[0]]);
    let old = tri!(s.engine.get_item(db, &a[0]));
    let (cur, exp) = match &old {
        Some(i) => match parse_f64(&i.value) {
            Some(n) => (n, i.expire_at_ms),
            None => return not_float(),
        },
        None => (0.0, None),
    };
    let n = cur + by;
    if !n.is_finite() {
        return Reply::err("ERR increment would produce NaN or Infinity");
    }
    let text = format_double(n);
    tri!(s.engine.put(db, &a[0], text.as_bytes(), exp));
    Reply::text(&text)
}
