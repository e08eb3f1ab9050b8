//! Connection commands and the per-connection session: PING, ECHO, QUIT, RESET,
//! HELLO (RESP2/RESP3, with AUTH and SETNAME inside), AUTH, SELECT and CLIENT.

use super::args::{Args, is, parse_i64};
use super::error::{CmdError, CmdResult};
use crate::protocol::reply::Reply;
use crate::state::{ClientHandle, Shared, Unblock};
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The version caskade reports to clients that check for a Redis they know.
pub const REDIS_VERSION: &str = "7.0.15";

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
    /// The commands queued since MULTI, while in a transaction.
    pub multi: Option<super::transaction::Multi>,
    /// The keys this connection WATCHes.
    pub watching: crate::watch::Watching,
    /// While EXEC runs its commands: the stripes it holds (a script inside takes none).
    pub holding: Option<crate::unit::Holding>,
    /// After MONITOR: the commands the server runs, to be sent to this client.
    pub monitor: Option<crate::monitor::Feed>,
    /// A blocking command that found nothing: the connection waits, then answers it.
    pub block: Option<super::Block>,
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
            multi: None,
            watching: crate::watch::Watching::default(),
            holding: None,
            monitor: None,
            block: None,
        }
    }
}

fn wrong_password() -> CmdError {
    CmdError::Coded("WRONGPASS invalid username-password pair or user is disabled.".into())
}

fn bad_client_name() -> CmdError {
    CmdError::err("Client names cannot contain spaces, newlines or special characters.")
}

pub fn ping(_s: &Shared, _sess: &mut Session, a: &mut Args<'_>) -> CmdResult {
    match a.take_rest() {
        [] => Ok(Reply::Status("PONG")),
        [msg] => Ok(Reply::Bulk(msg.clone())),
        _ => Err(CmdError::Arity("ping")),
    }
}

pub fn echo(_s: &Shared, _sess: &mut Session, a: &mut Args<'_>) -> CmdResult {
    Ok(Reply::Bulk(a.next_bytes()?))
}

pub fn quit(_s: &Shared, sess: &mut Session, _a: &mut Args<'_>) -> CmdResult {
    sess.quit = true;
    Ok(Reply::OK)
}

pub fn reset(s: &Shared, sess: &mut Session, _a: &mut Args<'_>) -> CmdResult {
    sess.multi = None;
    sess.watching.clear(&s.watches);
    sess.db = 0;
    sess.resp3 = false;
    sess.authenticated = s.config.lock().requirepass.is_none();
    let mut info = sess.client.info.lock();
    info.db = 0;
    info.resp = 2;
    info.name.clear();
    Ok(Reply::Status("RESET"))
}

fn check_password(s: &Shared, user: Option<&[u8]>, pass: &[u8]) -> Result<(), CmdError> {
    let cfg = s.config.lock();
    let Some(want) = cfg.requirepass.as_deref() else {
        if user.is_none() {
            return Err(CmdError::err(
                "AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            ));
        }
        // With no password configured the default user accepts anything, as in Redis.
        return if user.is_some_and(|u| u == b"default") {
            Ok(())
        } else {
            Err(wrong_password())
        };
    };
    let user_ok = user.is_none_or(|u| u == b"default");
    if user_ok && pass == want.as_bytes() {
        Ok(())
    } else {
        Err(wrong_password())
    }
}

pub fn auth(s: &Shared, sess: &mut Session, a: &mut Args<'_>) -> CmdResult {
    match a.take_rest() {
        [pass] => check_password(s, None, pass)?,
        [user, pass] => check_password(s, Some(user), pass)?,
        _ => return Err(CmdError::Syntax),
    }
    sess.authenticated = true;
    Ok(Reply::OK)
}

fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

pub fn hello(s: &Shared, sess: &mut Session, a: &mut Args<'_>) -> CmdResult {
    let mut resp3 = sess.resp3;
    if let Some(v) = a.next_opt() {
        match parse_i64(v) {
            Some(2) => resp3 = false,
            Some(3) => resp3 = true,
            Some(_) => {
                return Err(CmdError::Coded(
                    "NOPROTO unsupported protocol version".into(),
                ));
            }
            None => {
                return Err(CmdError::err(
                    "Protocol version is not an integer or out of range",
                ));
            }
        }
    }
    let mut name: Option<&Bytes> = None;
    while let Some(opt) = a.next_opt() {
        if is(opt, "auth") && a.remaining() >= 2 {
            let (user, pass) = (a.next_arg()?, a.next_arg()?);
            check_password(s, Some(user), pass)?;
            sess.authenticated = true;
        } else if is(opt, "setname") && !a.is_empty() {
            let n = a.next_arg()?;
            if !valid_client_name(n) {
                return Err(bad_client_name());
            }
            name = Some(n);
        } else {
            return Err(CmdError::err(format!(
                "Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(opt)
            )));
        }
    }
    if !sess.authenticated {
        return Err(CmdError::Coded(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time".into(),
        ));
    }
    sess.resp3 = resp3;
    {
        let mut info = sess.client.info.lock();
        info.resp = if resp3 { 3 } else { 2 };
        if let Some(n) = name {
            info.name = String::from_utf8_lossy(n).into_owned();
        }
    }
    Ok(Reply::Map(vec![
        (Reply::text("server"), Reply::text("redis")),
        (Reply::text("version"), Reply::text(REDIS_VERSION)),
        (Reply::text("proto"), Reply::Int(if resp3 { 3 } else { 2 })),
        (Reply::text("id"), Reply::Int(sess.client.id as i64)),
        (Reply::text("mode"), Reply::text("standalone")),
        (Reply::text("role"), Reply::text("master")),
        (Reply::text("modules"), Reply::Array(vec![])),
    ]))
}

pub fn select(_s: &Shared, sess: &mut Session, a: &mut Args<'_>) -> CmdResult {
    let db = super::keys::db_index(a)?;
    sess.db = db;
    sess.client.info.lock().db = db;
    Ok(Reply::OK)
}

/// CLIENT LIST's `cmd=`: the last command's name as Redis 7 gives it (`client|list`
/// for a subcommand), from its `last_cmd` (`NULL` before the first).
fn last_command(last: u32) -> &'static str {
    let Some(spec) = (last & 0xFFFF)
        .checked_sub(1)
        .and_then(|i| super::COMMANDS.get(i as usize))
    else {
        return "NULL";
    };
    match (last >> 16).checked_sub(1) {
        Some(sub) => super::docs::subcommand_at(spec.name, sub).unwrap_or(spec.name),
        None => spec.name,
    }
}

/// One CLIENT LIST / CLIENT INFO line.
fn client_line(c: &ClientHandle) -> String {
    let info = c.info.lock();
    format!(
        "id={} addr={} laddr= fd=0 name={} age={} idle=0 flags={} db={} sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
        c.id,
        info.addr,
        info.name,
        c.since.elapsed().as_secs(),
        if c.blocked.load(Ordering::Relaxed) {
            "b"
        } else {
            "N"
        },
        info.db,
        last_command(c.last_cmd.load(Ordering::Relaxed)),
        info.resp,
        info.lib_name,
        info.lib_ver
    )
}

pub fn client(s: &Shared, sess: &mut Session, a: &mut Args<'_>) -> CmdResult {
    let sub = a.next_arg()?;
    let rest = a.take_rest();
    let word = String::from_utf8_lossy(sub).to_ascii_lowercase();
    match (word.as_str(), rest) {
        ("setname", [name]) => {
            if !valid_client_name(name) {
                return Err(bad_client_name());
            }
            sess.client.info.lock().name = String::from_utf8_lossy(name).into_owned();
            Ok(Reply::OK)
        }
        ("getname", []) => {
            let name = sess.client.info.lock().name.clone();
            Ok(if name.is_empty() {
                Reply::Nil
            } else {
                Reply::text(&name)
            })
        }
        ("id", []) => Ok(Reply::Int(sess.client.id as i64)),
        ("unblock", [id, how @ ..]) if how.len() <= 1 => {
            let id = super::args::parse_i64(id).ok_or(CmdError::NotInteger)?;
            let how = match how.first() {
                None => Unblock::Timeout,
                Some(w) if is(w, "TIMEOUT") => Unblock::Timeout,
                Some(w) if is(w, "ERROR") => Unblock::Error,
                Some(_) => {
                    return Err(CmdError::err(
                        "CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
                    ));
                }
            };
            let client = s.clients.lock().get(&(id as u64)).cloned();
            Ok(Reply::Int(client.is_some_and(|c| c.unblock(how)) as i64))
        }
        ("setinfo", [attr, value]) => {
            let value = String::from_utf8_lossy(value).into_owned();
            if value.contains(' ') || value.contains('\n') {
                return Err(CmdError::err(
                    "lib-name and lib-ver cannot contain spaces, newlines or special characters.",
                ));
            }
            let mut info = sess.client.info.lock();
            if is(attr, "lib-name") {
                info.lib_name = value;
            } else if is(attr, "lib-ver") {
                info.lib_ver = value;
            } else {
                return Err(CmdError::err(format!(
                    "Unrecognized option '{}'",
                    String::from_utf8_lossy(attr)
                )));
            }
            Ok(Reply::OK)
        }
        ("info", []) => Ok(Reply::Verbatim(format!("{}\n", client_line(&sess.client)))),
        ("list", rest) => client_list(s, rest),
        ("kill", [_, ..]) => client_kill(s, rest),
        ("no-evict" | "no-touch", [on]) if is(on, "ON") || is(on, "OFF") => Ok(Reply::OK),
        ("no-evict" | "no-touch", [_]) => Err(CmdError::Syntax),
        _ => Err(CmdError::unknown_subcommand("CLIENT", sub)),
    }
}

/// CLIENT LIST [TYPE normal|master|replica|slave|pubsub] | [ID id [id ...]], as Redis
/// 7.0 parses it. Every client here is a normal one (no replication, no pub/sub yet).
fn client_list(s: &Shared, rest: &[Bytes]) -> CmdResult {
    let clients: Vec<_> = s.clients.lock().values().cloned().collect();
    let chosen: Vec<_> = match rest {
        [] => clients,
        [t, kind] if is(t, "TYPE") => {
            let name = String::from_utf8_lossy(kind).to_ascii_lowercase();
            match name.as_str() {
                "normal" => clients,
                "master" | "replica" | "slave" | "pubsub" => Vec::new(),
                _ => {
                    return Err(CmdError::err(format!(
                        "Unknown client type '{}'",
                        String::from_utf8_lossy(kind)
                    )));
                }
            }
        }
        [t, ids @ ..] if is(t, "ID") && !ids.is_empty() => {
            let mut out = Vec::new();
            for id in ids {
                let id =
                    super::args::parse_i64(id).ok_or_else(|| CmdError::err("Invalid client ID"))?;
                // In the order asked, once per mention, as Redis lists them.
                out.extend(clients.iter().filter(|c| c.id as i64 == id).cloned());
            }
            out
        }
        _ => return Err(CmdError::Syntax),
    };
    let mut out = String::new();
    for c in chosen {
        out.push_str(&client_line(&c));
        out.push('\n');
    }
    Ok(Reply::Verbatim(out))
}

fn client_kill(s: &Shared, rest: &[Bytes]) -> CmdResult {
    let clients: Vec<_> = s.clients.lock().values().cloned().collect();
    let kill = |c: &ClientHandle| {
        c.killed.store(true, Ordering::Release);
        c.wake.notify_one();
    };
    if let [addr] = rest {
        // Old form: CLIENT KILL addr:port
        let addr = String::from_utf8_lossy(addr);
        return match clients.iter().find(|c| c.info.lock().addr == addr) {
            Some(c) => {
                kill(c);
                Ok(Reply::OK)
            }
            None => Err(CmdError::err("No such client")),
        };
    }
    if !rest.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    let mut killed = 0;
    for c in &clients {
        let mut all = true;
        for f in rest.chunks_exact(2) {
            let [name, v] = f else { continue };
            let v = String::from_utf8_lossy(v);
            let info = c.info.lock();
            let ok = if is(name, "id") {
                v.parse::<u64>().is_ok_and(|id| id == c.id)
            } else if is(name, "addr") {
                info.addr == v
            } else if is(name, "skipme") {
                true
            } else {
                return Err(CmdError::Syntax);
            };
            all &= ok;
        }
        if all {
            kill(c);
            killed += 1;
        }
    }
    Ok(Reply::Int(killed))
}

#[cfg(test)]
mod tests {
    use super::super::testing::call;
    use super::*;
    use crate::state::testing::shared;

    #[test]
    fn hello_auth_select_and_client() {
        let (_d, sh) = shared();
        let mut sess = Session::new(&sh, sh.register("1.2.3.4:5".into()));
        assert_eq!(
            call(&sh, &mut sess, "auth", &["pw"]),
            Reply::err(
                "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
            )
        );
        assert_eq!(
            call(&sh, &mut sess, "hello", &["4"]),
            Reply::err("NOPROTO unsupported protocol version")
        );
        let Reply::Map(fields) = call(&sh, &mut sess, "hello", &["3", "SETNAME", "app"]) else {
            panic!("a map")
        };
        assert!(fields.contains(&(Reply::text("proto"), Reply::Int(3))));
        assert!(sess.resp3);
        assert_eq!(
            call(&sh, &mut sess, "client", &["getname"]),
            Reply::text("app")
        );
        assert_eq!(
            call(&sh, &mut sess, "client", &["setname", "a b"]),
            Reply::err("ERR Client names cannot contain spaces, newlines or special characters.")
        );
        assert_eq!(
            call(&sh, &mut sess, "client", &["nope"]),
            Reply::err("ERR unknown subcommand 'nope'. Try CLIENT HELP.")
        );
        assert_eq!(
            call(&sh, &mut sess, "select", &["16"]),
            Reply::err("ERR DB index is out of range")
        );
        assert_eq!(call(&sh, &mut sess, "select", &["3"]), Reply::OK);
        assert_eq!(sess.db, 3);
        let Reply::Verbatim(line) = call(&sh, &mut sess, "client", &["info"]) else {
            panic!("text")
        };
        assert!(
            line.contains("addr=1.2.3.4:5") && line.contains("db=3") && line.contains("resp=3")
        );
        assert_eq!(call(&sh, &mut sess, "reset", &[]), Reply::Status("RESET"));
        assert_eq!((sess.db, sess.resp3), (0, false));
        assert_eq!(call(&sh, &mut sess, "ping", &["hi"]), Reply::text("hi"));
    }

    #[test]
    fn passwords() {
        let (_d, sh) = shared();
        sh.config.lock().requirepass = Some("pw".into());
        let mut sess = Session::new(&sh, sh.register("t".into()));
        assert!(!sess.authenticated);
        assert_eq!(
            call(&sh, &mut sess, "hello", &["3"]),
            Reply::err(
                "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"
            )
        );
        assert_eq!(
            call(&sh, &mut sess, "auth", &["default", "no"]),
            Reply::err("WRONGPASS invalid username-password pair or user is disabled.")
        );
        assert!(matches!(
            call(&sh, &mut sess, "hello", &["2", "AUTH", "default", "pw"]),
            Reply::Map(_)
        ));
        assert!(sess.authenticated);
    }
}
