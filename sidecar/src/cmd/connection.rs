//! Connection commands and the per-connection session: PING, ECHO, QUIT, RESET,
//! HELLO (RESP2/RESP3, with AUTH and SETNAME inside), AUTH, SELECT and CLIENT.

use super::{not_integer, parse_i64, syntax_error};
use crate::protocol::reply::Reply;
use crate::state::{ClientHandle, Shared};
use bytes::Bytes;
use caskade_engine::NAMESPACES;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The version caskade reports to clients that check for a Redis they know.
pub const REDIS_VERSION: &str = "7.2.4";

/// What a connection remembers between commands.
pub struct Session {
    /// The SELECTed database.
    pub db: u8,
    /// Whether HELLO 3 switched this connection to RESP3.
    pub resp3: bool,
    /// Whether AUTH succeeded (always true without requirepass).
    pub authenticated: bool,
    /// Set by QUIT: reply, then close.
    pub quit: bool,
    /// A write command ran since the engine's write buffer was last flushed.
    pub wrote: bool,
    /// This client's entry in the registry.
    pub client: Arc<ClientHandle>,
    /// Read-through bookkeeping of the command being run.
    pub origin: crate::origin::Scratch,
    /// When the command being run started (it may run again after fetches).
    pub cmd_started: Option<std::time::Instant>,
}

impl Session {
    /// A fresh session for a client.
    pub fn new(shared: &Shared, client: Arc<ClientHandle>) -> Self {
        Session {
            db: 0,
            resp3: false,
            authenticated: shared.config.lock().requirepass.is_none(),
            quit: false,
            wrote: false,
            client,
            origin: crate::origin::Scratch::default(),
            cmd_started: None,
        }
    }
}

fn eq(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

pub fn ping(_s: &Shared, _sess: &mut Session, a: &[Bytes]) -> Reply {
    match a {
        [] => Reply::Status("PONG"),
        [msg] => Reply::Bulk(msg.clone()),
        _ => super::wrong_arity("ping"),
    }
}

pub fn echo(_s: &Shared, _sess: &mut Session, a: &[Bytes]) -> Reply {
    Reply::Bulk(a[0].clone())
}

pub fn quit(_s: &Shared, sess: &mut Session, _a: &[Bytes]) -> Reply {
    sess.quit = true;
    Reply::OK
}

pub fn reset(s: &Shared, sess: &mut Session, _a: &[Bytes]) -> Reply {
    sess.db = 0;
    sess.resp3 = false;
    sess.authenticated = s.config.lock().requirepass.is_none();
    let mut info = sess.client.info.lock();
    info.db = 0;
    info.resp = 2;
    info.name.clear();
    Reply::Status("RESET")
}

fn check_password(s: &Shared, user: Option<&[u8]>, pass: &[u8]) -> Result<(), Reply> {
    let cfg = s.config.lock();
    let Some(want) = cfg.requirepass.as_deref() else {
        if user.is_none() {
            return Err(Reply::err(
                "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            ));
        }
        // With no password configured the default user accepts anything, as in Redis.
        return if user.is_some_and(|u| u == b"default") {
            Ok(())
        } else {
            Err(Reply::err(
                "WRONGPASS invalid username-password pair or user is disabled.",
            ))
        };
    };
    let user_ok = user.is_none_or(|u| u == b"default");
    if user_ok && pass == want.as_bytes() {
        Ok(())
    } else {
        Err(Reply::err(
            "WRONGPASS invalid username-password pair or user is disabled.",
        ))
    }
}

pub fn auth(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    let result = match a {
        [pass] => check_password(s, None, pass),
        [user, pass] => check_password(s, Some(user), pass),
        _ => return syntax_error(),
    };
    match result {
        Ok(()) => {
            sess.authenticated = true;
            Reply::OK
        }
        Err(r) => r,
    }
}

fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

pub fn hello(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    let mut resp3 = sess.resp3;
    let mut i = 0;
    if let Some(v) = a.first() {
        match parse_i64(v) {
            Some(2) => resp3 = false,
            Some(3) => resp3 = true,
            Some(_) => return Reply::err("NOPROTO unsupported protocol version"),
            None => return Reply::err("ERR Protocol version is not an integer or out of range"),
        }
        i = 1;
    }
    let mut name: Option<&Bytes> = None;
    while i < a.len() {
        if eq(&a[i], "auth") && i + 2 < a.len() {
            if let Err(r) = check_password(s, Some(&a[i + 1]), &a[i + 2]) {
                return r;
            }
            sess.authenticated = true;
            i += 3;
        } else if eq(&a[i], "setname") && i + 1 < a.len() {
            if !valid_client_name(&a[i + 1]) {
                return Reply::err(
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                );
            }
            name = Some(&a[i + 1]);
            i += 2;
        } else {
            return Reply::err(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(&a[i])
            ));
        }
    }
    if !sess.authenticated {
        return Reply::err(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        );
    }
    sess.resp3 = resp3;
    {
        let mut info = sess.client.info.lock();
        info.resp = if resp3 { 3 } else { 2 };
        if let Some(n) = name {
            info.name = String::from_utf8_lossy(n).into_owned();
        }
    }
    Reply::Map(vec![
        (Reply::text("server"), Reply::text("redis")),
        (Reply::text("version"), Reply::text(REDIS_VERSION)),
        (Reply::text("proto"), Reply::Int(if resp3 { 3 } else { 2 })),
        (Reply::text("id"), Reply::Int(sess.client.id as i64)),
        (Reply::text("mode"), Reply::text("standalone")),
        (Reply::text("role"), Reply::text("master")),
        (Reply::text("modules"), Reply::Array(vec![])),
    ])
}

pub fn select(_s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    match parse_i64(&a[0]) {
        Some(n) if (0..NAMESPACES as i64).contains(&n) => {
            sess.db = n as u8;
            sess.client.info.lock().db = n as u8;
            Reply::OK
        }
        Some(_) => Reply::err("ERR DB index is out of range"),
        None => not_integer(),
    }
}

/// One CLIENT LIST / CLIENT INFO line.
fn client_line(c: &ClientHandle) -> String {
    let info = c.info.lock();
    format!(
        "id={} addr={} laddr= fd=0 name={} age={} idle=0 flags=N db={} sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
        c.id,
        info.addr,
        info.name,
        c.since.elapsed().as_secs(),
        info.db,
        if info.last_cmd.is_empty() {
            "NULL"
        } else {
            info.last_cmd
        },
        info.resp,
        info.lib_name,
        info.lib_ver
    )
}

pub fn client(s: &Shared, sess: &mut Session, a: &[Bytes]) -> Reply {
    let sub = &a[0];
    let rest = &a[1..];
    if eq(sub, "setname") && rest.len() == 1 {
        if !valid_client_name(&rest[0]) {
            return Reply::err(
                "ERR Client names cannot contain spaces, newlines or special characters.",
            );
        }
        sess.client.info.lock().name = String::from_utf8_lossy(&rest[0]).into_owned();
        Reply::OK
    } else if eq(sub, "getname") && rest.is_empty() {
        let name = sess.client.info.lock().name.clone();
        if name.is_empty() {
            Reply::Nil
        } else {
            Reply::text(&name)
        }
    } else if eq(sub, "id") && rest.is_empty() {
        Reply::Int(sess.client.id as i64)
    } else if eq(sub, "setinfo") && rest.len() == 2 {
        let value = String::from_utf8_lossy(&rest[1]).into_owned();
        if value.contains(' ') || value.contains('\n') {
            return Reply::err(
                "ERR lib-name and lib-ver cannot contain spaces, newlines or special characters.",
            );
        }
        let mut info = sess.client.info.lock();
        if eq(&rest[0], "lib-name") {
            info.lib_name = value;
        } else if eq(&rest[0], "lib-ver") {
            info.lib_ver = value;
        } else {
            return Reply::err(format!(
                "ERR Unrecognized option '{}'",
                String::from_utf8_lossy(&rest[0])
            ));
        }
        Reply::OK
    } else if eq(sub, "info") && rest.is_empty() {
        Reply::Verbatim(format!("{}\n", client_line(&sess.client)))
    } else if eq(sub, "list") {
        let clients: Vec<_> = s.clients.lock().values().cloned().collect();
        let mut out = String::new();
        for c in clients {
            out.push_str(&client_line(&c));
            out.push('\n');
        }
        Reply::Verbatim(out)
    } else if eq(sub, "kill") && !rest.is_empty() {
        client_kill(s, rest)
    } else if (eq(sub, "no-evict") || eq(sub, "no-touch")) && rest.len() == 1 {
        Reply::OK
    } else {
        Reply::err(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
            String::from_utf8_lossy(sub)
        ))
    }
}

fn client_kill(s: &Shared, rest: &[Bytes]) -> Reply {
    let clients: Vec<_> = s.clients.lock().values().cloned().collect();
    let kill = |c: &ClientHandle| {
        c.killed.store(true, Ordering::Release);
        c.wake.notify_one();
    };
    if rest.len() == 1 {
        // Old form: CLIENT KILL addr:port
        let addr = String::from_utf8_lossy(&rest[0]);
        return match clients.iter().find(|c| c.info.lock().addr == addr) {
            Some(c) => {
                kill(c);
                Reply::OK
            }
            None => Reply::err("ERR No such client"),
        };
    }
    if !rest.len().is_multiple_of(2) {
        return syntax_error();
    }
    let mut killed = 0;
    for c in &clients {
        let mut all = true;
        for f in rest.chunks_exact(2) {
            let v = String::from_utf8_lossy(&f[1]);
            let info = c.info.lock();
            let ok = if eq(&f[0], "id") {
                v.parse::<u64>().is_ok_and(|id| id == c.id)
            } else if eq(&f[0], "addr") {
                info.addr == v
            } else if eq(&f[0], "skipme") {
                true
            } else {
                return syntax_error();
            };
            all &= ok;
        }
        if all {
            kill(c);
            killed += 1;
        }
    }
    Reply::Int(killed)
}
