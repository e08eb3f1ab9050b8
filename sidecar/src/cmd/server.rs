//! Server commands: INFO (Redis' sections and fields that tools read, plus a
//! `# Caskade` section), CONFIG GET/SET, COMMAND, TIME, LASTSAVE, MEMORY USAGE,
//! OBJECT, SLOWLOG and FUNCTION FLUSH.

use super::args::{Args, is, parse_i64};
use super::connection::REDIS_VERSION;
use super::error::{CmdError, CmdResult};
use super::{COMMANDS, Session, Spec};
use crate::glob;
use crate::protocol::reply::Reply;
use crate::state::Shared;
use bytes::Bytes;
use caskade_engine::NAMESPACES;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn info_text(s: &Shared, sections: &[String]) -> String {
    let want = |name: &str| {
        sections.is_empty()
            || sections
                .iter()
                .any(|s| s == name || s == "all" || s == "everything" || s == "default")
    };
    let cfg = s.config.lock().clone();
    let st = s.store.engine.stats();
    let mut out = String::new();
    let uptime = s.started.elapsed().as_secs();
    if want("server") {
        let _ = write!(
            out,
            "# Server\r\nredis_version:{REDIS_VERSION}\r\nredis_mode:standalone\r\nos:{} {}\r\narch_bits:{}\r\nmultiplexing_api:epoll\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\nexecutable:caskade\r\ncaskade_version:{}\r\n\r\n",
            std::env::consts::OS,
            std::env::consts::ARCH,
            usize::BITS,
            std::process::id(),
            cfg.port,
            uptime / 86400,
            env!("CARGO_PKG_VERSION"),
        );
    }
    if want("clients") {
        let _ = write!(
            out,
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:0\r\n\r\n",
            s.client_count(),
            cfg.limits.max_clients
        );
    }
    if want("memory") {
        let rss = rss_bytes();
        let _ = write!(
            out,
            "# Memory\r\nused_memory:{rss}\r\nused_memory_human:{:.2}M\r\nused_memory_rss:{rss}\r\nused_memory_peak:{rss}\r\nmaxmemory:0\r\nmaxmemory_policy:noeviction\r\nmem_fragmentation_ratio:1.00\r\n\r\n",
            rss as f64 / (1 << 20) as f64
        );
    }
    if want("persistence") {
        let _ = write!(
            out,
            "# Persistence\r\nloading:0\r\nrdb_changes_since_last_save:0\r\nrdb_last_save_time:{}\r\naof_enabled:1\r\n\r\n",
            last_save(s)
        );
    }
    if want("stats") {
        let _ = write!(
            out,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\nrejected_connections:{}\r\nexpired_keys:{}\r\nevicted_keys:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\n\r\n",
            s.stats.connections.load(Ordering::Relaxed),
            s.stats.commands.load(Ordering::Relaxed),
            s.stats.rejected.load(Ordering::Relaxed),
            st.expired_keys,
            st.evictions_max_keys + st.evictions_disk,
            st.hits,
            st.misses
        );
    }
    if want("replication") {
        out.push_str("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n\r\n");
    }
    if want("cluster") {
        out.push_str("# Cluster\r\ncluster_enabled:0\r\n\r\n");
    }
    if want("keyspace") {
        out.push_str("# Keyspace\r\n");
        for db in 0..NAMESPACES {
            let n = s.store.engine.len(db);
            if n > 0 {
                let e = s.store.engine.expiring_len(db);
                let _ = write!(out, "db{db}:keys={n},expires={e},avg_ttl=0\r\n");
            }
        }
        out.push_str("\r\n");
    }
    if want("caskade") {
        let _ = write!(
            out,
            "# Caskade\r\nengine_keys:{}\r\nengine_segments:{}\r\nengine_disk_bytes:{}\r\nengine_live_bytes:{}\r\nengine_garbage_bytes:{}\r\nengine_index_bytes:{}\r\nengine_bytes_written:{}\r\nengine_bytes_rewritten:{}\r\nengine_write_amplification:{:.3}\r\nengine_syncs:{}\r\nengine_corrupt_records:{}\r\nevictions_max_keys:{}\r\nevictions_disk:{}\r\ncompaction_filter_removals:{}\r\ncompactions:{}\r\nreclaims:{}\r\neviction_policy:{}\r\neviction_policy_bytes:{}\r\nmax_keys:{}\r\nmax_disk_bytes:{}\r\nfsync:{:?}\r\ndata_dir:{}\r\n\r\n",
            st.keys,
            st.segments,
            st.disk_bytes,
            st.live_bytes,
            st.garbage_bytes,
            st.index_bytes,
            st.bytes_written,
            st.bytes_rewritten,
            st.write_amplification,
            st.syncs,
            st.corrupt_records,
            st.evictions_max_keys,
            st.evictions_disk,
            st.filter_removals,
            st.compactions,
            st.reclaims,
            st.policy,
            st.policy_bytes,
            cfg.storage.max_keys.unwrap_or(0),
            cfg.storage.max_disk_bytes.unwrap_or(0),
            cfg.storage.fsync,
            cfg.storage.dir.display()
        );
    }
    if want("caskade")
        && let Some(p) = &s.plugins
    {
        let g = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let _ = write!(
            out,
            "# Plugins\r\nfilter_calls:{}\r\nfilter_failures:{}\r\npolicy_calls:{}\r\npolicy_failures:{}\r\nplugin_reloads:{}\r\nplugin_reload_failures:{}\r\n\r\n",
            g(&p.filter_stats.calls),
            p.filter_stats.failures(),
            g(&p.policy_stats.calls),
            p.policy_stats.failures(),
            g(&p.reloads),
            g(&p.reload_failures),
        );
    }
    if want("caskade")
        && let Some(rt) = &s.read_through
    {
        let g = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let _ = write!(
            out,
            "# ReadThrough\r\nroutes:{}\r\nfetches_in_flight:{}\r\n",
            rt.routes().len(),
            rt.in_flight()
        );
        for (i, r) in rt.routes().iter().enumerate() {
            let _ = write!(
                out,
                "route{i}:prefix={},fetches={},fetch_failures={},negative_entries={}\r\n",
                r.cfg.prefix.replace([',', '\r', '\n'], "_"),
                g(&r.plugin_stats.calls),
                r.plugin_stats.failures(),
                r.negative.lock().len()
            );
        }
        out.push_str("\r\n");
    }
    while out.ends_with("\r\n\r\n") {
        out.truncate(out.len() - 2);
    }
    out
}

pub fn info(s: &Shared, _sess: &mut Session, args: &mut Args<'_>) -> CmdResult {
    let a = args.take_rest();
    let sections: Vec<String> = a
        .iter()
        .map(|x| String::from_utf8_lossy(x).to_ascii_lowercase())
        .collect();
    Ok(Reply::Verbatim(info_text(s, &sections)))
}

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
    } else if is(sub, "set") && a.len() >= 3 && a.len() % 2 == 1 {
        config_set(s, &a[1..])
    } else if is(sub, "resetstat") && a.len() == 1 {
        s.stats.commands.store(0, Ordering::Relaxed);
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

fn command_info(spec: &Spec) -> Reply {
    Reply::Array(vec![
        Reply::text(spec.name),
        Reply::Int(spec.arity as i64),
        Reply::Set(spec.flags.iter().map(|f| Reply::Status(f)).collect()),
        Reply::Int(spec.key_triple().0 as i64),
        Reply::Int(spec.key_triple().1 as i64),
        Reply::Int(spec.key_triple().2 as i64),
        Reply::Set(vec![]),
        Reply::Set(vec![]),
        Reply::Set(vec![]),
        Reply::Array(vec![]),
    ])
}

pub fn command(_s: &Shared, _sess: &mut Session, args: &mut Args<'_>) -> CmdResult {
    let a = args.take_rest();
    let Some((sub, names)) = a.split_first() else {
        return Ok(Reply::Array(COMMANDS.iter().map(command_info).collect()));
    };
    let all_or_named = || -> Vec<&'static Spec> {
        if names.is_empty() {
            COMMANDS.iter().collect()
        } else {
            names.iter().filter_map(|n| super::lookup(n)).collect()
        }
    };
    if is(sub, "count") && names.is_empty() {
        Ok(Reply::Int(COMMANDS.len() as i64))
    } else if is(sub, "info") {
        if names.is_empty() {
            return Ok(Reply::Array(COMMANDS.iter().map(command_info).collect()));
        }
        Ok(Reply::Array(
            names
                .iter()
                .map(|n| super::lookup(n).map_or(Reply::NilArray, command_info))
                .collect(),
        ))
    } else if is(sub, "docs") {
        Ok(Reply::Map(
            all_or_named()
                .into_iter()
                .map(|spec| {
                    (
                        Reply::text(spec.name),
                        Reply::Map(vec![
                            (Reply::text("summary"), Reply::text(spec.name)),
                            (Reply::text("since"), Reply::text("1.0.0")),
                            (Reply::text("group"), Reply::text("generic")),
                        ]),
                    )
                })
                .collect(),
        ))
    } else if is(sub, "list") && names.is_empty() {
        Ok(Reply::Array(
            COMMANDS.iter().map(|c| Reply::text(c.name)).collect(),
        ))
    } else {
        Err(CmdError::unknown_subcommand("COMMAND", sub))
    }
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

/// Unix seconds of the last time data was made durable (a sync), or the start time.
fn last_save(s: &Shared) -> u64 {
    let synced = s.store.engine.stats().last_sync_ms / 1000;
    synced.max(s.last_save.load(Ordering::Relaxed))
}

pub fn lastsave(s: &Shared, _sess: &mut Session, _args: &mut Args<'_>) -> CmdResult {
    Ok(Reply::Int(last_save(s) as i64))
}

pub fn memory(s: &Shared, sess: &mut Session, args: &mut Args<'_>) -> CmdResult {
    let sub = args.next_arg()?;
    let word = String::from_utf8_lossy(sub).to_ascii_lowercase();
    match (word.as_str(), args.take_rest()) {
        ("usage", [key] | [key, _, _]) => {
            let Some(item) = s.store.engine.get_item(sess.db, key)? else {
                return Ok(Reply::Nil);
            };
            // On disk: record header, key, metadata and value; in DRAM: one index slot.
            let bytes = 22
                + key.len()
                + item.meta.len()
                + item.value.len()
                + caskade_engine::INDEX_SLOT_BYTES;
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
    let Some(item) = s.store.engine.get_item(sess.db, key)? else {
        return Ok(Reply::Nil);
    };
    if is(sub, "encoding") {
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

pub fn function(_s: &Shared, _sess: &mut Session, args: &mut Args<'_>) -> CmdResult {
    let sub = args.next_arg()?;
    if is(sub, "flush") && args.remaining() <= 1 {
        Ok(Reply::OK)
    } else {
        Err(CmdError::unknown_subcommand("FUNCTION", sub))
    }
}
