//! Server commands: CONFIG GET/SET (from the settings table), COMMAND, TIME, LASTSAVE,
//! MEMORY USAGE, OBJECT, SLOWLOG and FUNCTION FLUSH. INFO has a file of its own.

use super::args::{Args, is, parse_i64};
use super::error::{CmdError, CmdResult};
use super::{COMMANDS, Session, docs};
use crate::glob;
use crate::protocol::reply::Reply;
use crate::state::Shared;
use bytes::Bytes;

pub fn config(s: &Shared, sess: &mut Session, args: &mut Args<'_>) -> CmdResult {
    let a = args.take_rest();
    let sub = args_first(a)?;
    if is(sub, "get") && a.len() >= 2 {
        let params = crate::settings::redis_params(&s.config.lock());
        let mut pairs = Vec::new();
        for pat in &a[1..] {
            let pat = pat.to_ascii_lowercase();
            for (k, v) in &params {
                if glob::matches(&pat, k.as_bytes())
                    && !pairs
                        .iter()
                        .any(|(n, _): &(Reply, Reply)| n == &Reply::text(k))
                {
                    pairs.push((Reply::text(k), Reply::text(v)));
                }
            }
        }
        Ok(if sess.resp3 {
            Reply::Map(pairs)
        } else {
            Reply::Array(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect())
        })
    } else if is(sub, "set") {
        // Parameter and value pairs (docs.txt checked there is at least one).
        if a.len().is_multiple_of(2) {
            return Err(CmdError::Syntax);
        }
        config_set(s, &a[1..])
    } else if is(sub, "resetstat") && a.len() == 1 {
        s.cmdstats.reset();
        Ok(Reply::OK)
    } else if is(sub, "rewrite") && a.len() == 1 {
        Err(CmdError::err(
            "CONFIG REWRITE is not supported; edit the YAML file",
        ))
    } else {
        Err(CmdError::unknown_subcommand("CONFIG", sub))
    }
}

/// The first argument (the subcommand); the table's arity guarantees one.
fn args_first(a: &[Bytes]) -> Result<&Bytes, CmdError> {
    a.first().ok_or(CmdError::Syntax)
}

fn config_set(s: &Shared, pairs: &[Bytes]) -> CmdResult {
    // Validate everything first so a bad pair changes nothing.
    let mut next = s.config.lock().clone();
    for p in pairs.chunks_exact(2) {
        let name = String::from_utf8_lossy(&p[0]).to_ascii_lowercase();
        let value = String::from_utf8_lossy(&p[1]).into_owned();
        let bad = |why: &str| {
            Err(CmdError::err(format!(
                "CONFIG SET failed (possibly related to argument '{name}') - {why}"
            )))
        };
        match crate::settings::by_redis_name(&name) {
            Some(setting) if setting.live => {
                if let Err(why) = (setting.set)(&mut next, &value) {
                    return bad(&why);
                }
            }
            Some(_) => return bad("can't set immutable config"),
            None if crate::settings::IGNORED_ON_SET.contains(&name.as_str()) => {}
            None => return bad("Unknown option or number of arguments"),
        }
    }
    *s.config.lock() = next;
    Ok(Reply::OK)
}

pub fn command(_s: &Shared, _sess: &mut Session, args: &mut Args<'_>) -> CmdResult {
    let a = args.take_rest();
    let Some((sub, names)) = a.split_first() else {
        return Ok(Reply::Array(COMMANDS.iter().map(docs::info).collect()));
    };
    if is(sub, "count") {
        Ok(Reply::Int(COMMANDS.len() as i64))
    } else if is(sub, "info") {
        if names.is_empty() {
            return Ok(Reply::Array(COMMANDS.iter().map(docs::info).collect()));
        }
        Ok(Reply::Array(
            names
                .iter()
                .map(|n| info_of(n).unwrap_or(Reply::Nil))
                .collect(),
        ))
    } else if is(sub, "docs") {
        let found: Vec<&docs::Doc> = if names.is_empty() {
            docs::all().iter().collect()
        } else {
            names.iter().filter_map(|n| doc_of(n)).collect()
        };
        Ok(Reply::Map(
            found
                .into_iter()
                .map(|d| (Reply::text(d.name), docs::reply(d)))
                .collect(),
        ))
    } else if is(sub, "list") {
        command_list(names)
    } else {
        Err(CmdError::unknown_subcommand("COMMAND", sub))
    }
}

/// The documentation of a command or `parent|sub` subcommand, by any case of its name.
fn doc_of(name: &[u8]) -> Option<&'static docs::Doc> {
    let name = std::str::from_utf8(name).ok()?.to_ascii_lowercase();
    match name.split_once('|') {
        None => docs::find(&name),
        Some((parent, _)) => docs::find(parent)?
            .subcommands
            .iter()
            .find(|s| s.name == name),
    }
}

/// COMMAND INFO of a command or subcommand.
fn info_of(name: &[u8]) -> Option<Reply> {
    if name.contains(&b'|') {
        return doc_of(name).and_then(docs::sub_info);
    }
    super::lookup(name).map(docs::info)
}

/// COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern].
fn command_list(filter: &[Bytes]) -> CmdResult {
    let names = || {
        COMMANDS.iter().flat_map(|spec| {
            let subs = docs::find(spec.name).map_or(&[][..], |d| &d.subcommands[..]);
            std::iter::once(spec.name).chain(subs.iter().map(|s| s.name))
        })
    };
    let listed: Vec<Reply> = match filter {
        [] => COMMANDS.iter().map(|c| Reply::text(c.name)).collect(),
        [by, kind, value] if is(by, "FILTERBY") => {
            if is(kind, "MODULE") {
                // No modules: nothing comes from one.
                Vec::new()
            } else if is(kind, "ACLCAT") {
                let cat = format!("@{}", String::from_utf8_lossy(value).to_ascii_lowercase());
                let cat = cat.as_str();
                COMMANDS
                    .iter()
                    .flat_map(|spec| {
                        let subs = docs::find(spec.name).map_or(&[][..], |d| &d.subcommands[..]);
                        let own = docs::command_categories(spec).contains(&cat);
                        own.then_some(spec.name).into_iter().chain(
                            subs.iter()
                                .filter(|s| docs::sub_categories(s).contains(&cat))
                                .map(|s| s.name),
                        )
                    })
                    .map(Reply::text)
                    .collect()
            } else if is(kind, "PATTERN") {
                let pat = value.to_ascii_lowercase();
                names()
                    .filter(|n| glob::matches(&pat, n.as_bytes()))
                    .map(Reply::text)
                    .collect()
            } else {
                return Err(CmdError::Syntax);
            }
        }
        _ => return Err(CmdError::Syntax),
    };
    Ok(Reply::Array(listed))
}

pub fn time(s: &Shared, _sess: &mut Session, _args: &mut Args<'_>) -> CmdResult {
    // Whole milliseconds from the engine's clock; the microseconds below from the
    // system, for the finer part Redis reports.
    let ms = s.store.engine.now_ms();
    let sub_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_micros() % 1000) as u64;
    let us = ms * 1000 + sub_ms;
    Ok(Reply::Array(vec![
        Reply::text(&(us / 1_000_000).to_string()),
        Reply::text(&(us % 1_000_000).to_string()),
    ]))
}

/// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]: drains, syncs, writes the hints and
/// exits 0, as SIGTERM does (every write is on disk already, so SAVE and NOSAVE stop
/// the same way). The connection closes without a reply, as with Redis.
pub fn shutdown(s: &Shared, sess: &mut Session, a: &mut Args<'_>) -> CmdResult {
    let (mut save, mut nosave, mut abort) = (false, false, false);
    while let Some(w) = a.next_opt() {
        if is(w, "NOSAVE") {
            nosave = true;
        } else if is(w, "SAVE") {
            save = true;
        } else if is(w, "ABORT") {
            abort = true;
        } else if !is(w, "NOW") && !is(w, "FORCE") {
            return Err(CmdError::Syntax);
        }
    }
    if (save && nosave) || (abort && (save || nosave)) {
        return Err(CmdError::Syntax);
    }
    if abort {
        return Err(CmdError::err("No shutdown in progress."));
    }
    s.shutdown.notify_one();
    sess.quit = true;
    Ok(Reply::Silent)
}

/// SAVE: every write is in the log already; this syncs it.
pub fn save(s: &Shared, _sess: &mut Session, _a: &mut Args<'_>) -> CmdResult {
    s.store.engine.sync()?;
    s.last_save.store(
        s.store.engine.now_ms() / 1000,
        std::sync::atomic::Ordering::Relaxed,
    );
    Ok(Reply::OK)
}

/// MONITOR: from now on this connection is also sent every command the server runs.
pub fn monitor(s: &Shared, sess: &mut Session, _a: &mut Args<'_>) -> CmdResult {
    // Inside EXEC a client expects one reply per command, as Redis says.
    if sess.holding.is_some() {
        return Err(CmdError::err(
            "MONITOR isn't allowed for DENY BLOCKING client",
        ));
    }
    if sess.monitor.is_none() {
        sess.monitor = Some(s.monitors.subscribe());
    }
    Ok(Reply::OK)
}

/// BGSAVE [SCHEDULE]: a sync, as SAVE.
pub fn bgsave(s: &Shared, sess: &mut Session, a: &mut Args<'_>) -> CmdResult {
    if let Some(w) = a.next_opt()
        && !is(w, "SCHEDULE")
    {
        return Err(CmdError::Syntax);
    }
    save(s, sess, a)?;
    Ok(Reply::Status("Background saving started"))
}

/// WAIT numreplicas timeout: there are no replicas.
pub fn wait(_s: &Shared, _sess: &mut Session, a: &mut Args<'_>) -> CmdResult {
    let _replicas = a.next_i64()?;
    let timeout = a.next_i64()?;
    if timeout < 0 {
        return Err(CmdError::err("timeout is negative"));
    }
    Ok(Reply::Int(0))
}

pub fn lastsave(s: &Shared, _sess: &mut Session, _args: &mut Args<'_>) -> CmdResult {
    Ok(Reply::Int(super::info::last_save(s) as i64))
}

pub fn memory(s: &Shared, sess: &mut Session, args: &mut Args<'_>) -> CmdResult {
    let sub = args.next_arg()?;
    let word = String::from_utf8_lossy(sub).to_ascii_lowercase();
    match (word.as_str(), args.take_rest()) {
        ("usage", [key, rest @ ..]) => {
            match rest {
                [] => {}
                [w, n] if is(w, "SAMPLES") => {
                    parse_i64(n).ok_or(CmdError::NotInteger)?;
                }
                _ => return Err(CmdError::Syntax),
            }
            let Some(item) = s.store.engine.get_typed(s.store.ns(sess.db), key)? else {
                return Ok(Reply::Nil);
            };
            // On disk: record header, key, metadata and value; in DRAM: one index slot.
            // A chunked collection adds its chunks (each a record and a slot).
            let mut bytes = 22
                + key.len()
                + item.meta.len()
                + item.value.len()
                + caskade_engine::INDEX_SLOT_BYTES;
            if let Some(f) = caskade_engine::Family::decode(&item.meta)
                && item.vtype != caskade_engine::ValueType::String
            {
                let ks = crate::keyspace::Keyspace::new(&s.store, sess.db);
                let shape = crate::types::shape(&ks, key, item)?;
                let chunk_key = key.len() + caskade_engine::CHUNK_KEY_EXTRA;
                bytes += shape.stored_bytes as usize
                    + f.chunks as usize * (22 + chunk_key + caskade_engine::INDEX_SLOT_BYTES);
            }
            Ok(Reply::Int(bytes as i64))
        }
        ("doctor", []) => Ok(Reply::Verbatim(
            "Sam, I detected no memory issues in this instance.".into(),
        )),
        _ => Err(CmdError::unknown_subcommand("MEMORY", sub)),
    }
}

pub fn object(s: &Shared, sess: &mut Session, args: &mut Args<'_>) -> CmdResult {
    let sub = args.next_arg()?;
    let [key] = args.take_rest() else {
        return Err(CmdError::unknown_subcommand("OBJECT", sub));
    };
    let Some(item) = s.store.engine.get_typed(s.store.ns(sess.db), key)? else {
        return Ok(Reply::Nil);
    };
    if is(sub, "encoding") && item.vtype != caskade_engine::ValueType::String {
        let ks = crate::keyspace::Keyspace::new(&s.store, sess.db);
        Ok(Reply::text(crate::types::shape(&ks, key, item)?.encoding))
    } else if is(sub, "encoding") {
        let v = &item.value;
        let int = v.len() <= 20 && parse_i64(v).is_some();
        Ok(Reply::text(if int {
            "int"
        } else if v.len() <= 44 {
            "embstr"
        } else {
            "raw"
        }))
    } else if is(sub, "freq") || is(sub, "idletime") {
        Ok(Reply::Int(0))
    } else if is(sub, "refcount") {
        Ok(Reply::Int(1))
    } else {
        Err(CmdError::Syntax)
    }
}

pub fn slowlog(s: &Shared, _sess: &mut Session, args: &mut Args<'_>) -> CmdResult {
    let sub = args.next_arg()?;
    let rest = args.take_rest();
    let entries = &s.slowlog.entries;
    if is(sub, "get") && rest.len() <= 1 {
        let count = match rest.first().map(|c| parse_i64(c)) {
            None => 10,
            Some(Some(n)) if n < 0 => usize::MAX,
            Some(Some(n)) => n as usize,
            Some(None) => return Err(CmdError::NotInteger),
        };
        let list = entries.lock();
        Ok(Reply::Array(
            list.iter()
                .take(count)
                .map(|e| {
                    Reply::Array(vec![
                        Reply::Int(e.id as i64),
                        Reply::Int(e.at as i64),
                        Reply::Int(e.micros as i64),
                        Reply::Array(e.args.iter().cloned().map(Reply::Bulk).collect()),
                        Reply::text(&e.client.0),
                        Reply::text(&e.client.1),
                    ])
                })
                .collect(),
        ))
    } else if is(sub, "len") && rest.is_empty() {
        Ok(Reply::Int(entries.lock().len() as i64))
    } else if is(sub, "reset") && rest.is_empty() {
        entries.lock().clear();
        Ok(Reply::OK)
    } else {
        Err(CmdError::unknown_subcommand("SLOWLOG", sub))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::call;
    use super::*;
    use crate::state::testing::shared;

    #[test]
    fn config_get_and_set_follow_the_settings() {
        let (_d, sh) = shared();
        let mut sess = Session::new(&sh, sh.register("t".into()));
        assert_eq!(
            call(&sh, &mut sess, "config", &["get", "maxc*"]),
            Reply::Array(vec![Reply::text("maxclients"), Reply::text("10000")])
        );
        assert_eq!(
            call(
                &sh,
                &mut sess,
                "config",
                &["set", "maxclients", "5", "timeout", "9"]
            ),
            Reply::OK
        );
        assert_eq!(sh.config.lock().limits.max_clients, 5);
        assert_eq!(sh.config.lock().limits.idle_timeout_secs, 9);
        assert_eq!(
            call(&sh, &mut sess, "config", &["set", "maxclients", "0"]),
            Reply::err(
                "ERR CONFIG SET failed (possibly related to argument 'maxclients') - argument must be a positive integer"
            )
        );
        assert_eq!(
            call(
                &sh,
                &mut sess,
                "config",
                &["set", "timeout", "1", "port", "1"]
            ),
            Reply::err(
                "ERR CONFIG SET failed (possibly related to argument 'port') - can't set immutable config"
            )
        );
        assert_eq!(
            sh.config.lock().limits.idle_timeout_secs,
            9,
            "a bad pair changes nothing"
        );
        assert_eq!(
            call(&sh, &mut sess, "config", &["set", "save", ""]),
            Reply::OK
        );
        assert_eq!(
            call(&sh, &mut sess, "config", &["set", "bogus", "1"]),
            Reply::err(
                "ERR CONFIG SET failed (possibly related to argument 'bogus') - Unknown option or number of arguments"
            )
        );
    }

    #[test]
    fn introspection() {
        let (_d, sh) = shared();
        let mut sess = Session::new(&sh, sh.register("t".into()));
        assert_eq!(
            call(&sh, &mut sess, "command", &["count"]),
            Reply::Int(COMMANDS.len() as i64)
        );
        sh.store.engine.put(0, b"n", b"123", None).expect("put");
        assert_eq!(
            call(&sh, &mut sess, "object", &["encoding", "n"]),
            Reply::text("int")
        );
        assert_eq!(
            call(&sh, &mut sess, "object", &["encoding", "x"]),
            Reply::Nil
        );
        assert_eq!(call(&sh, &mut sess, "slowlog", &["len"]), Reply::Int(0));
        assert_eq!(
            call(&sh, &mut sess, "memory", &["nope"]),
            Reply::err("ERR unknown subcommand 'nope'. Try MEMORY HELP.")
        );
        let Reply::Verbatim(info) = call(&sh, &mut sess, "info", &["keyspace"]) else {
            panic!("text")
        };
        assert_eq!(info, "# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n");
    }
}
