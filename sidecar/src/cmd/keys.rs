//! Keyspace commands: DEL, EXISTS, TYPE, the EXPIRE/TTL family, RENAME and COPY,
//! SCAN/KEYS/RANDOMKEY, DBSIZE and the flushes.

use super::{Session, not_integer, parse_i64, syntax_error, tri};
use crate::glob;
use crate::protocol::reply::Reply;
use crate::state::{Shared, now_ms};
use bytes::Bytes;
use caskade_engine::NAMESPACES;

fn eq(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

pub fn del(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    let keys: Vec<&[u8]> = a.iter().map(|k| &k[..]).collect();
    let _g = s.locks.lock(sess.db, &keys);
    let mut n = 0;
    for k in keys {
        if tri!(s.engine.delete(sess.db, k)) {
            n += 1;
        }
    }
    Reply::Int(n)
}

pub fn exists(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    let mut n = 0;
    for k in a {
        if tri!(s.engine.exists(sess.db, k)) {
            n += 1;
        }
    }
    Reply::Int(n)
}

pub fn type_(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    if tri!(s.engine.exists(sess.db, &a[0])) {
        Reply::Status("string")
    } else {
        Reply::Status("none")
    }
}

fn expire_generic(
    s: &Shared,
    sess: &Session,
    a: &[Bytes],
    cmd: &str,
    unit: i64,
    absolute: bool,
) -> Reply {
    let Some(n) = parse_i64(&a[1]) else {
        return not_integer();
    };
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &a[2..] {
        if eq(opt, "nx") {
            nx = true;
        } else if eq(opt, "xx") {
            xx = true;
        } else if eq(opt, "gt") {
            gt = true;
        } else if eq(opt, "lt") {
            lt = true;
        } else {
            return Reply::err(format!(
                "ERR Unsupported option {}",
                String::from_utf8_lossy(opt)
            ));
        }
    }
    if nx && (xx || gt || lt) {
        return Reply::err("ERR NX and XX, GT or LT options at the same time are not compatible");
    }
    if gt && lt {
        return Reply::err("ERR GT and LT options at the same time are not compatible");
    }
    let invalid = || Reply::err(format!("ERR invalid expire time in '{cmd}' command"));
    let Some(ms) = n.checked_mul(unit) else {
        return invalid();
    };
    let at = if absolute {
        Some(ms)
    } else {
        ms.checked_add(now_ms() as i64)
    };
    let Some(at) = at else {
        return invalid();
    };
    // A time at or before now deletes; 0 would read as "no expiry" to the engine.
    let at_ms = at.max(1) as u64;
    let _g = s.locks.lock(sess.db, &[&a[0]]);
    let done = tri!(s.engine.expire_if(sess.db, &a[0], Some(at_ms), |cur| {
        match cur {
            None => !(xx || gt),
            Some(c) => !nx && (!gt || at_ms > c) && (!lt || at_ms < c),
        }
    }));
    Reply::Int(done as i64)
}

pub fn expire(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    expire_generic(s, sess, a, "expire", 1000, false)
}

pub fn pexpire(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    expire_generic(s, sess, a, "pexpire", 1, false)
}

pub fn expireat(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    expire_generic(s, sess, a, "expireat", 1000, true)
}

pub fn pexpireat(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    expire_generic(s, sess, a, "pexpireat", 1, true)
}

/// -2 missing, -1 no expiry, else `f(expire_at_ms)`.
fn ttl_generic(s: &Shared, sess: &Session, key: &[u8], f: impl Fn(u64) -> i64) -> Reply {
    match tri!(s.engine.ttl(sess.db, key)) {
        None => Reply::Int(-2),
        Some(None) => Reply::Int(-1),
        Some(Some(at)) => Reply::Int(f(at)),
    }
}

pub fn ttl(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    ttl_generic(s, sess, &a[0], |at| {
        (at.saturating_sub(now_ms()) as i64 + 500) / 1000
    })
}

pub fn pttl(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    ttl_generic(s, sess, &a[0], |at| at.saturating_sub(now_ms()) as i64)
}

pub fn expiretime(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    ttl_generic(s, sess, &a[0], |at| (at / 1000) as i64)
}

pub fn pexpiretime(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    ttl_generic(s, sess, &a[0], |at| at as i64)
}

pub fn persist(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    let _g = s.locks.lock(sess.db, &[&a[0]]);
    Reply::Int(tri!(s.engine.persist(sess.db, &a[0])) as i64)
}

/// Moves `src` to `dst` (value, metadata and TTL); `nx` refuses an existing `dst`.
fn rename_generic(s: &Shared, sess: &Session, src: &[u8], dst: &[u8], nx: bool) -> Reply {
    let db = sess.db;
    let _g = s.locks.lock(db, &[src, dst]);
    let Some(item) = tri!(s.engine.get_item(db, src)) else {
        return Reply::err("ERR no such key");
    };
    if src == dst {
        return if nx { Reply::Int(0) } else { Reply::OK };
    }
    if nx && tri!(s.engine.exists(db, dst)) {
        return Reply::Int(0);
    }
    tri!(
        s.engine
            .put_item(db, dst, &item.value, item.expire_at_ms, &item.meta)
    );
    tri!(s.engine.delete(db, src));
    if nx { Reply::Int(1) } else { Reply::OK }
}

pub fn rename(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    rename_generic(s, sess, &a[0], &a[1], false)
}

pub fn renamenx(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    rename_generic(s, sess, &a[0], &a[1], true)
}

pub fn copy(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    let (src, dst) = (&a[0], &a[1]);
    let mut dst_db = sess.db;
    let mut replace = false;
    let mut i = 2;
    while i < a.len() {
        if eq(&a[i], "replace") {
            replace = true;
        } else if eq(&a[i], "db") && i + 1 < a.len() {
            match parse_i64(&a[i + 1]) {
                Some(n) if (0..NAMESPACES as i64).contains(&n) => dst_db = n as u8,
                Some(_) => return Reply::err("ERR DB index is out of range"),
                None => return not_integer(),
            }
            i += 1;
        } else {
            return syntax_error();
        }
        i += 1;
    }
    if src == dst && dst_db == sess.db {
        return Reply::err("ERR source and destination objects are the same");
    }
    let _g = s.locks.lock_across(&[(sess.db, src), (dst_db, dst)]);
    let Some(item) = tri!(s.engine.get_item(sess.db, src)) else {
        return Reply::Int(0);
    };
    if !replace && tri!(s.engine.exists(dst_db, dst)) {
        return Reply::Int(0);
    }
    tri!(
        s.engine
            .put_item(dst_db, dst, &item.value, item.expire_at_ms, &item.meta)
    );
    Reply::Int(1)
}

pub fn scan(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    let cursor = match std::str::from_utf8(&a[0])
        .ok()
        .and_then(|c| c.parse::<u64>().ok())
    {
        Some(c) => c,
        None => return Reply::err("ERR invalid cursor"),
    };
    let mut pattern: Option<&[u8]> = None;
    let mut count = 10usize;
    let mut only_strings = true;
    let mut i = 1;
    while i < a.len() {
        let Some(v) = a.get(i + 1) else {
            return syntax_error();
        };
        if eq(&a[i], "match") {
            pattern = Some(v);
        } else if eq(&a[i], "count") {
            match parse_i64(v) {
                Some(n) if n >= 1 => count = n as usize,
                Some(_) => return syntax_error(),
                None => return not_integer(),
            }
        } else if eq(&a[i], "type") {
            only_strings = eq(v, "string");
        } else {
            return syntax_error();
        }
        i += 2;
    }
    let page = tri!(s.engine.scan(sess.db, cursor, count));
    let keys = page
        .keys
        .into_iter()
        .filter(|k| only_strings && pattern.is_none_or(|p| glob::matches(p, k)))
        .map(Reply::Bulk)
        .collect();
    Reply::Array(vec![
        Reply::text(&page.cursor.to_string()),
        Reply::Array(keys),
    ])
}

pub fn keys(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    let mut out = Vec::new();
    let mut cursor = 0;
    loop {
        let page = tri!(s.engine.scan(sess.db, cursor, 1000));
        out.extend(
            page.keys
                .into_iter()
                .filter(|k| glob::matches(&a[0], k))
                .map(Reply::Bulk),
        );
        if page.cursor == 0 {
            return Reply::Array(out);
        }
        cursor = page.cursor;
    }
}

pub fn randomkey(s: &Shared, sess: &mut Session, _a: &[Bytes]) -> Reply {
    if s.engine.is_empty(sess.db) {
        return Reply::Nil;
    }
    // Start the walk at a random hash and wrap once.
    let start = xxhash_rust::xxh3::xxh3_64(&now_ms().to_le_bytes())
        ^ (std::process::id() as u64).rotate_left(32);
    for cursor in [start, 0] {
        let mut c = cursor;
        loop {
            let page = tri!(s.engine.scan(sess.db, c, 1));
            if let Some(k) = page.keys.into_iter().next() {
                return Reply::Bulk(k);
            }
            if page.cursor == 0 {
                break;
            }
            c = page.cursor;
        }
    }
    Reply::Nil
}

pub fn dbsize(s: &Shared, sess: &mut Session, _a: &[Bytes]) -> Reply {
    Reply::Int(s.engine.len(sess.db) as i64)
}

fn flush_mode(a: &[Bytes]) -> Result<(), Reply> {
    match a {
        [] => Ok(()),
        [m] if eq(m, "async") || eq(m, "sync") => Ok(()),
        _ => Err(syntax_error()),
    }
}

pub fn flushdb(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    if let Err(r) = flush_mode(a) {
        return r;
    }
    tri!(s.engine.flush_namespace(sess.db));
    if let Some(rt) = &s.read_through {
        rt.forget(Some(sess.db));
    }
    Reply::OK
}

pub fn flushall(s: &Shared, _sess: &mut Session, a: &[Bytes]) -> Reply {
    if let Err(r) = flush_mode(a) {
        return r;
    }
    tri!(s.engine.flush_all());
    if let Some(rt) = &s.read_through {
        rt.forget(None);
    }
    Reply::OK
}
