//! Command dispatch: the table of commands (name, arity, handler), the per-connection
//! session, and helpers shared by the command files. Each command family lives in its
//! own file; every handler returns a [`Reply`] and never panics on client input.

mod connection;
mod keys;
mod server;
mod strings;

use crate::protocol::reply::Reply;
use crate::state::Shared;
use bytes::Bytes;
use caskade_engine::Error as EngineError;

pub use connection::Session;

/// A handler: shared state, this connection's session, and the arguments after the
/// command name.
pub type Handler = fn(&Shared, &mut Session, &[Bytes]) -> Reply;

/// One command as COMMAND INFO describes it.
pub struct Spec {
    /// Lower-case name.
    pub name: &'static str,
    /// Redis arity: the argument count including the name; negative means "at least".
    pub arity: i32,
    /// Redis command flags, for COMMAND INFO.
    pub flags: &'static [&'static str],
    /// First key, last key and step, for COMMAND INFO (0 when there are none).
    pub keys: (i32, i32, i32),
    /// The handler.
    pub run: Handler,
}

const W: &[&str] = &["write", "denyoom"];
const R: &[&str] = &["readonly", "fast"];
const F: &[&str] = &["fast"];
const ADMIN: &[&str] = &["admin", "noscript"];
const NOAUTH: &[&str] = &["noscript", "loading", "stale", "fast", "no_auth"];

macro_rules! spec {
    ($name:literal, $arity:expr, $flags:expr, $keys:expr, $run:path) => {
        Spec {
            name: $name,
            arity: $arity,
            flags: $flags,
            keys: $keys,
            run: $run,
        }
    };
}

/// Every command caskade answers, in COMMAND order.
pub static COMMANDS: &[Spec] = &[
    // strings
    spec!("get", 2, R, (1, 1, 1), strings::get),
    spec!("set", -3, W, (1, 1, 1), strings::set),
    spec!("setnx", 3, W, (1, 1, 1), strings::setnx),
    spec!("setex", 4, W, (1, 1, 1), strings::setex),
    spec!("psetex", 4, W, (1, 1, 1), strings::psetex),
    spec!("getset", 3, W, (1, 1, 1), strings::getset),
    spec!("getdel", 2, W, (1, 1, 1), strings::getdel),
    spec!("getex", -2, W, (1, 1, 1), strings::getex),
    spec!("mget", -2, R, (1, -1, 1), strings::mget),
    spec!("mset", -3, W, (1, -1, 2), strings::mset),
    spec!("msetnx", -3, W, (1, -1, 2), strings::msetnx),
    spec!("append", 3, W, (1, 1, 1), strings::append),
    spec!("strlen", 2, R, (1, 1, 1), strings::strlen),
    spec!("getrange", 4, R, (1, 1, 1), strings::getrange),
    spec!("substr", 4, R, (1, 1, 1), strings::getrange),
    spec!("setrange", 4, W, (1, 1, 1), strings::setrange),
    spec!("incr", 2, W, (1, 1, 1), strings::incr),
    spec!("decr", 2, W, (1, 1, 1), strings::decr),
    spec!("incrby", 3, W, (1, 1, 1), strings::incrby),
    spec!("decrby", 3, W, (1, 1, 1), strings::decrby),
    spec!("incrbyfloat", 3, W, (1, 1, 1), strings::incrbyfloat),
    // keys
    spec!("del", -2, &["write"], (1, -1, 1), keys::del),
    spec!("unlink", -2, &["write", "fast"], (1, -1, 1), keys::del),
    spec!("exists", -2, R, (1, -1, 1), keys::exists),
    spec!("touch", -2, R, (1, -1, 1), keys::exists),
    spec!("type", 2, R, (1, 1, 1), keys::type_),
    spec!("expire", -3, &["write", "fast"], (1, 1, 1), keys::expire),
    spec!("pexpire", -3, &["write", "fast"], (1, 1, 1), keys::pexpire),
    spec!(
        "expireat",
        -3,
        &["write", "fast"],
        (1, 1, 1),
        keys::expireat
    ),
    spec!(
        "pexpireat",
        -3,
        &["write", "fast"],
        (1, 1, 1),
        keys::pexpireat
    ),
    spec!("ttl", 2, R, (1, 1, 1), keys::ttl),
    spec!("pttl", 2, R, (1, 1, 1), keys::pttl),
    spec!("expiretime", 2, R, (1, 1, 1), keys::expiretime),
    spec!("pexpiretime", 2, R, (1, 1, 1), keys::pexpiretime),
    spec!("persist", 2, &["write", "fast"], (1, 1, 1), keys::persist),
    spec!("rename", 3, &["write"], (1, 2, 1), keys::rename),
    spec!("renamenx", 3, &["write", "fast"], (1, 2, 1), keys::renamenx),
    spec!("copy", -3, W, (1, 2, 1), keys::copy),
    spec!("scan", -2, &["readonly"], (0, 0, 0), keys::scan),
    spec!("keys", 2, &["readonly"], (0, 0, 0), keys::keys),
    spec!("randomkey", 1, &["readonly"], (0, 0, 0), keys::randomkey),
    spec!("dbsize", 1, R, (0, 0, 0), keys::dbsize),
    spec!("flushdb", -1, &["write"], (0, 0, 0), keys::flushdb),
    spec!("flushall", -1, &["write"], (0, 0, 0), keys::flushall),
    // connection
    spec!("ping", -1, F, (0, 0, 0), connection::ping),
    spec!("echo", 2, F, (0, 0, 0), connection::echo),
    spec!("quit", -1, NOAUTH, (0, 0, 0), connection::quit),
    spec!("reset", 1, NOAUTH, (0, 0, 0), connection::reset),
    spec!("hello", -1, NOAUTH, (0, 0, 0), connection::hello),
    spec!("auth", -2, NOAUTH, (0, 0, 0), connection::auth),
    spec!("select", 2, F, (0, 0, 0), connection::select),
    spec!("client", -2, &["noscript"], (0, 0, 0), connection::client),
    // server
    spec!("info", -1, &["loading", "stale"], (0, 0, 0), server::info),
    spec!("config", -2, ADMIN, (0, 0, 0), server::config),
    spec!(
        "command",
        -1,
        &["loading", "stale"],
        (0, 0, 0),
        server::command
    ),
    spec!("time", 1, F, (0, 0, 0), server::time),
    spec!("lastsave", 1, F, (0, 0, 0), server::lastsave),
    spec!("memory", -2, &["readonly"], (0, 0, 0), server::memory),
    spec!("object", -2, &["readonly"], (0, 0, 0), server::object),
    spec!("slowlog", -2, ADMIN, (0, 0, 0), server::slowlog),
    spec!("function", -2, &["noscript"], (0, 0, 0), server::function),
];

/// Looks a command up by name, case-insensitively.
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    lookup_indexed(name).map(|(_, s)| s)
}

/// [`lookup`] with the command's position in [`COMMANDS`].
fn lookup_indexed(name: &[u8]) -> Option<(usize, &'static Spec)> {
    if name.len() > 16 {
        return None;
    }
    let lower = name.to_ascii_lowercase();
    COMMANDS
        .iter()
        .enumerate()
        .find(|(_, s)| s.name.as_bytes() == lower.as_slice())
}

/// Runs one command for a session.
pub fn dispatch(shared: &Shared, session: &mut Session, args: &[Bytes]) -> Reply {
    let Some(name) = args.first() else {
        return Reply::OK;
    };
    let Some((index, spec)) = lookup_indexed(name) else {
        return unknown_command(name, &args[1..]);
    };
    // A static name: CLIENT LIST's cmd= field costs no allocation per command.
    session.client.info.lock().last_cmd = spec.name;
    if !session.authenticated && !spec.flags.contains(&"no_auth") {
        return Reply::err("NOAUTH Authentication required.");
    }
    let n = args.len() as i32;
    if (spec.arity > 0 && n != spec.arity) || (spec.arity < 0 && n < -spec.arity) {
        return wrong_arity(spec.name);
    }
    let started = *session
        .cmd_started
        .get_or_insert_with(std::time::Instant::now);
    session.wrote |= spec.flags.contains(&"write");
    let reply = (spec.run)(shared, session, &args[1..]);
    if matches!(reply, Reply::Pending) {
        // Runs again once its keys are fetched; counted then, fetch time included.
        return reply;
    }
    session.cmd_started = None;
    shared
        .stats
        .commands
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let elapsed = started.elapsed();
    shared.metrics.command(index, elapsed.as_secs_f64());
    let micros = elapsed.as_micros() as u64;
    if micros >= crate::state::SLOWLOG_SLOWER_THAN_US {
        record_slow(shared, session, args, micros);
    }
    reply
}

fn record_slow(shared: &Shared, session: &Session, args: &[Bytes], micros: u64) {
    let log = &shared.slowlog;
    let info = session.client.info.lock();
    let entry = crate::state::SlowEntry {
        id: log
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        at: crate::state::now_ms() / 1000,
        micros,
        args: args
            .iter()
            .take(32)
            .map(|a| a.slice(..a.len().min(128)))
            .collect(),
        client: (info.addr.clone(), info.name.clone()),
    };
    let mut entries = log.entries.lock();
    entries.push_front(entry);
    entries.truncate(crate::state::SLOWLOG_MAX);
}

fn unknown_command(name: &[u8], rest: &[Bytes]) -> Reply {
    let mut msg = format!(
        "ERR unknown command '{}', with args beginning with: ",
        String::from_utf8_lossy(&name[..name.len().min(128)])
    );
    for a in rest.iter().take(16) {
        msg.push_str(&format!(
            "'{}' ",
            String::from_utf8_lossy(&a[..a.len().min(128)])
        ));
    }
    Reply::err(msg)
}

/// `ERR wrong number of arguments for 'x' command`
pub fn wrong_arity(name: &str) -> Reply {
    Reply::err(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

/// `ERR syntax error`
pub fn syntax_error() -> Reply {
    Reply::err("ERR syntax error")
}

/// `ERR value is not an integer or out of range`
pub fn not_integer() -> Reply {
    Reply::err("ERR value is not an integer or out of range")
}

/// Parses a Redis integer argument (no spaces, no `+`, no leading zeros past "0").
pub fn parse_i64(b: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty() || s.starts_with('+') || s.len() > 20 {
        return None;
    }
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) || s == "-0" {
        return None;
    }
    s.parse().ok()
}

/// Parses a Redis float argument (`inf` allowed, NaN refused).
pub fn parse_f64(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty() || s.trim() != s {
        return None;
    }
    let v: f64 = match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => s.parse().ok()?,
    };
    (!v.is_nan()).then_some(v)
}

/// Maps an engine error to a Redis-style reply.
pub fn engine_error(e: EngineError) -> Reply {
    match e {
        EngineError::KeyTooLong { .. } => Reply::err(format!("ERR {e}")),
        EngineError::ValueTooLong { .. } => Reply::err("ERR string exceeds maximum allowed size"),
        EngineError::Poisoned(_) | EngineError::Io { .. } => {
            Reply::err(format!("IOERR storage failure: {e}"))
        }
        other => Reply::err(format!("ERR {other}")),
    }
}

/// Unwraps an engine result inside a handler, returning the error reply on failure.
macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return $crate::cmd::engine_error(e),
        }
    };
}
pub(crate) use tri;
