//! INFO: Redis' sections and the fields tools read, plus caskade's own (`# Caskade`,
//! `# Plugins`, `# ReadThrough`). Each section is a list of fields built from the
//! server's state; one renderer writes them in Redis' text format.

use super::Session;
use super::args::Args;
use super::connection::REDIS_VERSION;
use super::error::CmdResult;
use crate::protocol::reply::Reply;
use crate::state::Shared;
use caskade_engine::NAMESPACES;
use std::sync::atomic::{AtomicU64, Ordering};

/// One section: its title, the name INFO selects it by, whether a plain INFO shows
/// it, and its fields in order.
struct Section {
    title: &'static str,
    selector: &'static str,
    in_default: bool,
    fields: Vec<(String, String)>,
}

impl Section {
    fn new(title: &'static str, selector: &'static str) -> Self {
        Section {
            title,
            selector,
            in_default: true,
            fields: Vec::new(),
        }
    }

    /// Shown only when asked for by name, `all` or `everything` (as Redis'
    /// commandstats).
    fn not_default(mut self) -> Self {
        self.in_default = false;
        self
    }

    fn field(mut self, name: impl Into<String>, value: impl ToString) -> Self {
        self.fields.push((name.into(), value.to_string()));
        self
    }
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// The highest `used_memory` INFO has reported.
static PEAK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn human(bytes: u64) -> String {
    format!("{:.2}M", bytes as f64 / (1 << 20) as f64)
}

/// INFO memory: what the allocator holds (its own statistics), the process' RSS, and
/// the parts caskade knows the size of.
fn memory_section(s: &Shared, st: &caskade_engine::Stats, rss: u64) -> Section {
    let usage = crate::alloc::usage();
    let used = usage.map_or(rss, |u| u.allocated);
    let peak = PEAK.fetch_max(used, Ordering::Relaxed).max(used);
    let ratio = if used > 0 {
        rss as f64 / used as f64
    } else {
        0.0
    };
    let mut m = Section::new("Memory", "memory")
        .field("used_memory", used)
        .field("used_memory_human", human(used))
        .field("used_memory_rss", rss)
        .field("used_memory_rss_human", human(rss))
        .field("used_memory_peak", peak)
        .field("used_memory_peak_human", human(peak));
    if let Some(u) = usage {
        m = m
            .field("allocator_allocated", u.allocated)
            .field("allocator_active", u.held)
            .field("allocator_resident", u.held);
    }
    m.field("mem_fragmentation_ratio", format!("{ratio:.2}"))
        .field("mem_allocator", "libc")
        .field("mem_engine_index", st.index_bytes)
        .field("mem_hot_tier", st.hot.bytes)
        .field("mem_eviction_policy", st.policy_bytes)
        .field(
            "mem_plugins",
            s.plugins.as_ref().map_or(0, |p| p.memory_bytes()),
        )
        .field(
            "mem_clients_normal",
            s.stats.client_buffer_bytes.load(Ordering::Relaxed),
        )
        .field("maxmemory", 0)
        .field("maxmemory_policy", "noeviction")
}

/// CPU seconds (user, system) of this process, of its waited-for children, and of
/// its main thread, from `/proc` (clock ticks of 1/100 s, Linux' fixed ABI value).
fn cpu_seconds() -> [(f64, f64); 3] {
    let ticks = |path: &str, at: usize| -> (f64, f64) {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| {
                let rest = s.rsplit_once(')')?.1;
                let f: Vec<&str> = rest.split_whitespace().collect();
                let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
                Some((t(at)? / 100.0, t(at + 1)? / 100.0))
            })
            .unwrap_or((0.0, 0.0))
    };
    let pid = std::process::id();
    // After the command name: field 14 (utime) is index 11; 16 (cutime) is 13.
    [
        ticks("/proc/self/stat", 11),
        ticks("/proc/self/stat", 13),
        ticks(&format!("/proc/self/task/{pid}/stat"), 11),
    ]
}

fn count(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Unix seconds of the last time data was made durable (a sync), or the start time.
pub fn last_save(s: &Shared) -> u64 {
    let synced = s.store.engine.stats().last_sync_ms / 1000;
    synced.max(s.last_save.load(Ordering::Relaxed))
}

/// Every section, in Redis' order, then caskade's.
fn sections(s: &Shared) -> Vec<Section> {
    let cfg = s.config.lock().clone();
    let st = s.store.engine.stats();
    let uptime = s.started.elapsed().as_secs();
    let rss = rss_bytes();
    let mut out = vec![
        Section::new("Server", "server")
            .field("redis_version", REDIS_VERSION)
            .field("redis_mode", "standalone")
            .field(
                "os",
                format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            )
            .field("arch_bits", usize::BITS)
            .field("multiplexing_api", "epoll")
            .field("process_id", std::process::id())
            .field("tcp_port", cfg.port)
            .field("uptime_in_seconds", uptime)
            .field("uptime_in_days", uptime / 86400)
            .field("executable", "caskade")
            .field("caskade_version", env!("CARGO_PKG_VERSION")),
        Section::new("Clients", "clients")
            .field("connected_clients", s.client_count())
            .field("cluster_connections", 0)
            .field("maxclients", cfg.limits.max_clients)
            .field("client_recent_max_input_buffer", 0)
            .field("client_recent_max_output_buffer", 0)
            .field("blocked_clients", s.blocked.count())
            .field("tracking_clients", 0)
            .field("clients_in_timeout_table", 0),
        memory_section(s, &st, rss),
        Section::new("Persistence", "persistence")
            .field("loading", 0)
            .field("rdb_changes_since_last_save", 0)
            .field("rdb_last_save_time", last_save(s))
            .field("aof_enabled", 1)
            .field("aof_rewrite_in_progress", st.full_compaction_running as u8)
            .field(
                "aof_last_write_status",
                if st.write_error.is_some() {
                    "err"
                } else {
                    "ok"
                },
            ),
        Section::new("Stats", "stats")
            .field("total_connections_received", count(&s.stats.connections))
            .field("total_commands_processed", s.cmdstats.processed())
            .field("rejected_connections", count(&s.stats.rejected))
            .field("expired_keys", st.expired_keys)
            .field("evicted_keys", st.evictions_max_keys + st.evictions_disk)
            .field("keyspace_hits", st.hits)
            .field("keyspace_misses", st.misses)
            .field("total_error_replies", s.cmdstats.total_errors()),
        Section::new("Replication", "replication")
            .field("role", "master")
            .field("connected_slaves", 0),
        cpu_section(),
        commandstats(s),
        errorstats(s),
        Section::new("Cluster", "cluster").field("cluster_enabled", 0),
    ];
    let mut keyspace = Section::new("Keyspace", "keyspace");
    for db in 0..NAMESPACES {
        let n = s.store.engine.len(s.store.ns(db));
        if n > 0 {
            let e = s.store.engine.expiring_len(s.store.ns(db));
            keyspace = keyspace.field(format!("db{db}"), format!("keys={n},expires={e},avg_ttl=0"));
        }
    }
    out.push(keyspace);
    out.push(
        Section::new("Caskade", "caskade")
            .field(
                "io",
                s.serving.get().map_or("tokio", |(mode, _)| mode.as_str()),
            )
            .field("io_threads", s.serving.get().map_or(0, |&(_, n)| n))
            .field("uring_reads", s.stats.uring_reads.load(Ordering::Relaxed))
            .field("engine_keys", st.keys)
            .field("engine_segments", st.segments)
            .field("engine_disk_bytes", st.disk_bytes)
            .field("engine_live_bytes", st.live_bytes)
            .field("engine_garbage_bytes", st.garbage_bytes)
            .field("engine_index_bytes", st.index_bytes)
            .field("hot_max_bytes", st.hot.max_bytes)
            .field("hot_bytes", st.hot.bytes)
            .field("hot_entries", st.hot.entries)
            .field("hot_hits", st.hot.hits)
            .field("hot_misses", st.hot.misses)
            .field("hot_admissions", st.hot.admissions)
            .field("hot_rejections", st.hot.rejections)
            .field("hot_evictions", st.hot.evictions)
            .field("engine_bytes_written", st.bytes_written)
            .field("engine_bytes_rewritten", st.bytes_rewritten)
            .field(
                "engine_write_amplification",
                format!("{:.3}", st.write_amplification),
            )
            .field("engine_syncs", st.syncs)
            .field("engine_corrupt_records", st.corrupt_records)
            .field("engine_writes_refused", st.write_error.is_some() as u8)
            .field(
                "engine_write_error",
                st.write_error
                    .as_deref()
                    .unwrap_or("")
                    .replace(['\r', '\n'], " "),
            )
            .field("evictions_max_keys", st.evictions_max_keys)
            .field("evictions_disk", st.evictions_disk)
            .field("compaction_filter_removals", st.filter_removals)
            .field("compactions", st.compactions)
            .field("full_compactions", st.full_compactions)
            .field(
                "full_compaction_in_progress",
                st.full_compaction_running as u8,
            )
            .field("reclaims", st.reclaims)
            .field("eviction_policy", &st.policy)
            .field("eviction_policy_bytes", st.policy_bytes)
            .field("max_keys", cfg.storage.max_keys.unwrap_or(0))
            .field("max_disk_bytes", cfg.storage.max_disk_bytes.unwrap_or(0))
            .field("fsync", format!("{:?}", cfg.storage.fsync))
            .field("data_dir", cfg.storage.dir.display()),
    );
    out.push(plugins_section(s));
    let mut sec = Section::new("ReadThrough", "readthrough");
    match &s.read_through {
        None => sec = sec.field("routes", 0),
        Some(rt) => {
            sec = sec
                .field("routes", rt.routes().len())
                .field("fetches_in_flight", rt.in_flight());
            for (i, r) in rt.routes().iter().enumerate() {
                sec = sec.field(
                    format!("route{i}"),
                    format!(
                        "prefix={},fetches={},fetch_failures={},negative_entries={}",
                        r.cfg.prefix.replace([',', '\r', '\n'], "_"),
                        count(&r.plugin_stats.calls),
                        r.plugin_stats.failures(),
                        r.negative.lock().len()
                    ),
                );
            }
        }
    }
    out.push(sec);
    out
}

/// INFO plugins: each loaded plugin (kind, file, size, compile time, calls, failures)
/// and the reload counters.
fn plugins_section(s: &Shared) -> Section {
    let sec = Section::new("Plugins", "plugins");
    let Some(p) = &s.plugins else {
        return sec.field("plugins_loaded", 0);
    };
    let loaded = p.loaded();
    let mut sec = sec.field("plugins_loaded", loaded.len());
    for l in &loaded {
        let mut line = format!(
            "kind={},path={},bytes={},compile_ms={}",
            l.slot.kind(),
            l.path.display().to_string().replace([',', '\r', '\n'], "_"),
            l.bytes,
            l.compile.as_millis()
        );
        if let Some(st) = p.stats(l.slot) {
            line.push_str(&format!(
                ",calls={},failures={}",
                count(&st.calls),
                st.failures()
            ));
        }
        sec = sec.field(l.slot.info_name(), line);
    }
    sec.field("filter_calls", count(&p.filter_stats.calls))
        .field("filter_failures", p.filter_stats.failures())
        .field("policy_calls", count(&p.policy_stats.calls))
        .field("policy_failures", p.policy_stats.failures())
        .field("plugin_reloads", count(&p.reloads))
        .field("plugin_reload_failures", count(&p.reload_failures))
}

fn cpu_section() -> Section {
    let [own, children, main] = cpu_seconds();
    let f = |v: f64| format!("{v:.6}");
    Section::new("CPU", "cpu")
        .field("used_cpu_sys", f(own.1))
        .field("used_cpu_user", f(own.0))
        .field("used_cpu_sys_children", f(children.1))
        .field("used_cpu_user_children", f(children.0))
        .field("used_cpu_sys_main_thread", f(main.1))
        .field("used_cpu_user_main_thread", f(main.0))
}

/// `cmdstat_<name>:calls=..,usec=..,usec_per_call=..,rejected_calls=..,failed_calls=..`
/// for every command that ran or was refused.
fn commandstats(s: &Shared) -> Section {
    let mut sec = Section::new("Commandstats", "commandstats").not_default();
    for i in 0..s.cmdstats.commands() {
        let (Some(c), Some(name)) = (s.cmdstats.command(i), super::docs::stat_name(i)) else {
            continue;
        };
        let (calls, usec, rejected, failed) = (c.calls, c.usec, c.rejected, c.failed);
        if calls + rejected == 0 {
            continue;
        }
        let per_call = if calls > 0 {
            usec as f64 / calls as f64
        } else {
            0.0
        };
        sec = sec.field(
            format!("cmdstat_{name}"),
            format!(
                "calls={calls},usec={usec},usec_per_call={per_call:.2},rejected_calls={rejected},failed_calls={failed}"
            ),
        );
    }
    sec
}

/// `errorstat_<CODE>:count=..` for every error code replied.
fn errorstats(s: &Shared) -> Section {
    let mut sec = Section::new("Errorstats", "errorstats");
    for (code, n) in s.cmdstats.errors() {
        sec = sec.field(format!("errorstat_{code}"), format!("count={n}"));
    }
    sec
}

/// Writes `sections` as Redis does: `# Title`, `name:value` lines, a blank line
/// between sections, none after the last.
fn render(sections: &[Section]) -> String {
    let mut out = String::new();
    for (i, sec) in sections.iter().enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        out.push_str("# ");
        out.push_str(sec.title);
        out.push_str("\r\n");
        for (k, v) in &sec.fields {
            out.push_str(k);
            out.push(':');
            out.push_str(v);
            out.push_str("\r\n");
        }
    }
    out
}

/// Whether INFO's arguments select `sec`: by its name, `all` or `everything`, or (for
/// the sections a plain INFO shows) no argument or `default`.
fn selected(asked: &[String], sec: &Section) -> bool {
    let default = asked.is_empty() || asked.iter().any(|a| a == "default");
    (default && sec.in_default)
        || asked
            .iter()
            .any(|a| a == sec.selector || a == "all" || a == "everything")
}

pub fn info(s: &Shared, _sess: &mut Session, args: &mut Args<'_>) -> CmdResult {
    let asked: Vec<String> = args
        .take_rest()
        .iter()
        .map(|x| String::from_utf8_lossy(x).to_ascii_lowercase())
        .collect();
    let chosen: Vec<Section> = sections(s)
        .into_iter()
        .filter(|sec| selected(&asked, sec))
        .collect();
    Ok(Reply::Verbatim(render(&chosen)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_redis() {
        let secs = [
            Section::new("Server", "server").field("redis_version", "7.0.15"),
            Section::new("Keyspace", "keyspace"),
            Section::new("Stats", "stats").field("a", 1).field("b", "x"),
        ];
        assert_eq!(
            render(&secs),
            "# Server\r\nredis_version:7.0.15\r\n\r\n# Keyspace\r\n\r\n# Stats\r\na:1\r\nb:x\r\n"
        );
    }

    #[test]
    fn selection() {
        let server = Section::new("Server", "server");
        let cmds = Section::new("Commandstats", "commandstats").not_default();
        assert!(selected(&[], &server));
        assert!(selected(&["all".into()], &cmds));
        assert!(selected(&["stats".into(), "server".into()], &server));
        assert!(!selected(&["stats".into()], &server));
        assert!(!selected(&[], &cmds), "commandstats only when asked for");
        assert!(!selected(&["default".into()], &cmds));
        assert!(selected(&["commandstats".into()], &cmds));
    }

    #[tokio::test]
    async fn commandstats_and_errorstats_count_what_ran() {
        let (_d, s) = crate::state::testing::shared();
        let mut c = crate::cmd::testing::session(&s);
        use crate::cmd::testing::send;
        send(&s, &mut c, &["SET", "k", "v"]).await;
        send(&s, &mut c, &["INCR", "k"]).await;
        send(&s, &mut c, &["GET"]).await;
        send(&s, &mut c, &["NOPE"]).await;
        send(&s, &mut c, &["CONFIG", "GET", "port"]).await;
        send(&s, &mut c, &["client", "getname"]).await;
        send(&s, &mut c, &["CLIENT", "GETNAME"]).await;
        let Reply::Verbatim(text) = send(&s, &mut c, &["INFO", "commandstats"]).await else {
            panic!("INFO is verbatim")
        };
        assert!(text.contains("cmdstat_set:calls=1,"), "{text}");
        // A subcommand counts under its full name, as in Redis 7; its container not.
        assert!(text.contains("cmdstat_config|get:calls=1,"), "{text}");
        assert!(text.contains("cmdstat_client|getname:calls=2,"), "{text}");
        assert!(!text.contains("cmdstat_config:") && !text.contains("cmdstat_client:"));
        assert!(
            text.contains("cmdstat_incr:calls=1,") && text.contains("failed_calls=1"),
            "{text}"
        );
        assert!(
            text.contains("cmdstat_get:calls=0,") && text.contains("rejected_calls=1"),
            "{text}"
        );
        let Reply::Verbatim(text) = send(&s, &mut c, &["INFO", "errorstats"]).await else {
            panic!("INFO is verbatim")
        };
        assert!(text.contains("errorstat_ERR:count=3"), "{text}");
        let Reply::Verbatim(all) = send(&s, &mut c, &["INFO"]).await else {
            panic!()
        };
        assert!(all.contains("# CPU\r\nused_cpu_sys:"), "{all}");
        assert!(!all.contains("# Commandstats"), "not in the default INFO");
    }
}
