//! The configuration: one YAML file, every field defaulted so caskade runs without one.
//! Unknown fields and bad values are errors that name the file, line and field. CLI
//! flags and `CASKADE_*` environment variables override the file (see `cli.rs`); each
//! scalar's names are declared once in `settings.rs`, and the engine's options are
//! derived and checked by the engine in [`Config::engine_options`].

use caskade_engine::{Fsync, PolicyKind};
use serde::{Deserialize, Deserializer};
use std::path::{Path, PathBuf};

/// Everything caskade can be told.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the RESP listener binds.
    pub bind: String,
    /// TCP port for RESP; 0 disables the TCP listener.
    pub port: u16,
    /// Connections the kernel queues before they are accepted (Redis `tcp-backlog`).
    pub tcp_backlog: u32,
    /// Path of a Unix socket to listen on as well.
    pub unixsocket: Option<PathBuf>,
    /// Password clients must give with AUTH (or HELLO ... AUTH).
    pub requirepass: Option<String>,
    /// The admin HTTP port (metrics, health, readiness).
    pub admin: AdminConfig,
    /// Storage settings.
    pub storage: StorageConfig,
    /// WebAssembly plugins.
    pub plugins: PluginsConfig,
    /// Read-through routes: key prefixes filled from an origin on a miss.
    pub read_through: ReadThroughConfig,
    /// Client limits.
    pub limits: Limits,
    /// Lua scripts.
    pub scripting: ScriptingConfig,
    /// Logging.
    pub log: LogConfig,
    /// How the server does its network and disk I/O.
    pub server: ServerConfig,
}

/// The server's I/O.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// `tokio` (epoll, and records read with `pread` on the serving thread), `hybrid`
    /// (epoll, and records not in memory or the page cache read with io_uring on a
    /// reader thread) or `uring` (io_uring runtimes, one per thread, each with its own
    /// listener, reading records on the same ring).
    pub io: IoMode,
    /// Threads that serve clients; 0 = one per core.
    pub threads: u32,
}

/// See [`ServerConfig::io`].
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum IoMode {
    /// tokio's multi-threaded runtime.
    Tokio,
    /// tokio's runtime for the network, io_uring for record reads that would wait for
    /// the device; falls back to `tokio`, saying why, where the kernel refuses io_uring.
    #[default]
    Hybrid,
    /// tokio-uring runtimes for everything; falls back to `tokio` as `hybrid` does.
    Uring,
}

impl IoMode {
    /// The name the configuration uses.
    pub fn as_str(self) -> &'static str {
        match self {
            IoMode::Tokio => "tokio",
            IoMode::Hybrid => "hybrid",
            IoMode::Uring => "uring",
        }
    }
}

impl std::str::FromStr for IoMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tokio" => Ok(IoMode::Tokio),
            "hybrid" => Ok(IoMode::Hybrid),
            "uring" => Ok(IoMode::Uring),
            other => Err(format!("'{other}' is not one of tokio, hybrid, uring")),
        }
    }
}

/// The admin HTTP listener.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Address to bind (`0.0.0.0` in a pod, so the kubelet's probes reach it).
    pub bind: String,
    /// Port; 0 disables the admin listener.
    pub port: u16,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            bind: "127.0.0.1".into(),
            port: 9736,
        }
    }
}

/// WebAssembly plugins: at most one compaction filter and one eviction policy.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PluginsConfig {
    /// Where compiled plugin code is cached (default: `plugin-cache` in the data dir).
    pub cache_dir: Option<PathBuf>,
    /// Reload a plugin when its file changes (checked every second); SIGHUP reloads too.
    pub watch: Option<bool>,
    /// The compaction filter plugin.
    pub compaction_filter: Option<PluginConfig>,
    /// The eviction policy plugin (the built-in `storage.eviction_policy` shadows it and
    /// takes over if it fails).
    pub eviction_policy: Option<PluginConfig>,
}

/// One plugin.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// The `.wasm` file (a component, or a core module carrying its WIT world).
    pub path: PathBuf,
    /// Settings handed to the plugin's `init`, in the order written.
    #[serde(default, deserialize_with = "de_settings")]
    pub settings: Vec<(String, String)>,
    /// Longest one call may run, in milliseconds.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
    /// Most memory one instance may hold (e.g. `64mb`).
    #[serde(default = "default_plugin_memory", deserialize_with = "de_size")]
    pub memory_bytes: u64,
}

fn default_deadline_ms() -> u64 {
    50
}

fn default_plugin_memory() -> u64 {
    64 << 20
}

fn de_settings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    let map = serde_norway::Mapping::deserialize(d)?;
    let text = |v: &serde_norway::Value| -> Result<String, D::Error> {
        match v {
            serde_norway::Value::String(s) => Ok(s.clone()),
            serde_norway::Value::Number(n) => Ok(n.to_string()),
            serde_norway::Value::Bool(b) => Ok(b.to_string()),
            other => Err(serde::de::Error::custom(format!(
                "plugin settings are strings, numbers or booleans, not {other:?}"
            ))),
        }
    };
    map.iter().map(|(k, v)| Ok((text(k)?, text(v)?))).collect()
}

/// Read-through caching: routes from key prefixes to origin fetcher plugins.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ReadThroughConfig {
    /// The routes; a key takes the route with the longest matching prefix.
    pub routes: Vec<RouteConfig>,
}

/// One read-through route. Durations are written with a unit: `500ms`, `30s`, `5m`,
/// `1h`, `1d` (or `0`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Keys starting with this (in any database) are filled from the origin on a miss.
    pub prefix: String,
    /// The fetcher plugin (`.wasm` component, e.g. the example `http_fetcher.wasm`).
    pub fetcher: PathBuf,
    /// Settings handed to the fetcher's `init` (base URL and so on), in order.
    #[serde(default, deserialize_with = "de_settings")]
    pub settings: Vec<(String, String)>,
    /// Hosts the fetcher may reach: `host`, `host:port`, `*.domain`, `[v6]:port`.
    /// Names are matched as written (`localhost` is not `127.0.0.1`).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// How long a fetched value is fresh, unless the fetcher says otherwise.
    #[serde(default = "default_ttl", deserialize_with = "de_duration_ms")]
    pub ttl: u64,
    /// How long "not found" is remembered (0: not at all).
    #[serde(default = "default_negative_ttl", deserialize_with = "de_duration_ms")]
    pub negative_ttl: u64,
    /// How long past its freshness a value is still served at once while one
    /// background refresh runs.
    #[serde(default, deserialize_with = "de_duration_ms")]
    pub stale_while_revalidate: u64,
    /// How long past its freshness a value is served when the origin fails.
    #[serde(default, deserialize_with = "de_duration_ms")]
    pub stale_if_error: u64,
    /// How long a stale value (with its ETag) is kept for revalidation; default: `ttl`.
    /// Never less than `stale_while_revalidate` or `stale_if_error`.
    #[serde(default, deserialize_with = "de_opt_duration_ms")]
    pub keep_stale: Option<u64>,
    /// After a failed fetch, reads of that key answer the failure (or the stale value
    /// `stale_if_error` allows) for this long instead of asking the origin again
    /// (0: ask every time).
    #[serde(
        default = "default_retry_after_error",
        deserialize_with = "de_duration_ms"
    )]
    pub retry_after_error: u64,
    /// Longest a fetch may take, waiting for a free fetcher instance included.
    #[serde(default = "default_fetch_timeout", deserialize_with = "de_duration_ms")]
    pub timeout: u64,
    /// Fetches of this route running at once; more wait (within `timeout`).
    #[serde(default = "default_max_concurrent_fetches")]
    pub max_concurrent_fetches: usize,
    /// Most "not found" answers (and, apart, failures) remembered at once; the oldest
    /// are forgotten first.
    #[serde(default = "default_max_negative_entries")]
    pub max_negative_entries: usize,
    /// Most memory one fetcher instance may hold (e.g. `64mb`).
    #[serde(default = "default_plugin_memory", deserialize_with = "de_size")]
    pub memory_bytes: u64,
}

fn default_ttl() -> u64 {
    60_000
}

fn default_negative_ttl() -> u64 {
    10_000
}

fn default_retry_after_error() -> u64 {
    1_000
}

fn default_fetch_timeout() -> u64 {
    5_000
}

fn default_max_concurrent_fetches() -> usize {
    32
}

fn default_max_negative_entries() -> usize {
    100_000
}

impl RouteConfig {
    /// How long after going stale the entry stays on disk.
    pub fn keep_stale_ms(&self) -> u64 {
        self.keep_stale
            .unwrap_or(self.ttl)
            .max(self.stale_while_revalidate)
            .max(self.stale_if_error)
    }
}

/// Where and how data is stored.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// The data directory.
    pub dir: PathBuf,
    /// Segment size at which a segment is sealed (e.g. `64mb`).
    #[serde(deserialize_with = "de_size")]
    pub segment_bytes: u64,
    /// `always`, `everysec` or `never`.
    #[serde(deserialize_with = "de_parse")]
    pub fsync: Fsync,
    /// Most bytes of data files (e.g. `10gb`); reaching it evicts. Unbounded if unset.
    #[serde(deserialize_with = "de_opt_size")]
    pub max_disk_bytes: Option<u64>,
    /// Most keys (all databases); reaching it evicts. Unbounded if unset.
    pub max_keys: Option<u64>,
    /// `fifo`, `lru`, `sieve` or `s3-fifo`.
    #[serde(deserialize_with = "de_parse")]
    pub eviction_policy: PolicyKind,
    /// A segment this much garbage (0.0–1.0) is compacted even when there is room.
    pub compaction_garbage_ratio: f64,
    /// Bytes of often-read values kept in memory (the hot tier, e.g. `64mb`); 0 = off.
    #[serde(deserialize_with = "de_size")]
    pub hot_bytes: u64,
}

/// Limits on what one client may do.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Connections accepted at once; more get `-ERR max number of clients reached`.
    pub max_clients: usize,
    /// Largest bulk string in a request (Redis `proto-max-bulk-len`).
    #[serde(deserialize_with = "de_size")]
    pub max_bulk_bytes: u64,
    /// Most bytes one client may have buffered (Redis `client-query-buffer-limit`).
    #[serde(deserialize_with = "de_size")]
    pub max_query_buffer_bytes: u64,
    /// Most arguments in one command.
    pub max_args: usize,
    /// Seconds a client may stay idle before it is closed; 0 = never.
    pub idle_timeout_secs: u64,
}

/// Lua scripts (EVAL and friends).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ScriptingConfig {
    /// A script running longer makes other clients' commands answer `-BUSY` until it
    /// ends or SCRIPT KILL stops it (Redis' `busy-reply-threshold`).
    #[serde(deserialize_with = "de_duration_ms")]
    pub busy_timeout: u64,
    /// A script touching a key it did not declare in KEYS gets an error, instead of
    /// being run again holding every key.
    pub strict_keys: bool,
    /// Most memory one Lua state may hold; a script needing more gets an error.
    #[serde(deserialize_with = "de_size")]
    pub memory_limit_bytes: u64,
}

impl Default for ScriptingConfig {
    fn default() -> Self {
        ScriptingConfig {
            busy_timeout: 5000,
            strict_keys: false,
            memory_limit_bytes: 64 << 20,
        }
    }
}

/// Logging output.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `caskade=debug`.
    pub level: String,
    /// Lines for people (`text`) or JSON lines for log pipelines (`json`).
    pub format: LogFormat,
    /// Colour in text lines: `auto` (only when stderr is a terminal and `NO_COLOR` is
    /// unset), `always` or `never`.
    pub color: LogColor,
}

/// See [`LogConfig::format`].
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `2026-12-07T01:40:34Z  INFO caskade::admin: message key=value`.
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, target, fields.
    Json,
}

/// See [`LogConfig::color`].
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogColor {
    /// Colour only on a terminal.
    #[default]
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

impl LogFormat {
    /// The name the configuration uses.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("'{other}' is not one of text, json")),
        }
    }
}

impl LogColor {
    /// The name the configuration uses.
    pub fn as_str(self) -> &'static str {
        match self {
            LogColor::Auto => "auto",
            LogColor::Always => "always",
            LogColor::Never => "never",
        }
    }
}

impl std::str::FromStr for LogColor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(LogColor::Auto),
            "always" => Ok(LogColor::Always),
            "never" => Ok(LogColor::Never),
            other => Err(format!("'{other}' is not one of auto, always, never")),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: "127.0.0.1".into(),
            port: 6379,
            tcp_backlog: 511,
            unixsocket: None,
            requirepass: None,
            admin: AdminConfig::default(),
            storage: StorageConfig::default(),
            plugins: PluginsConfig::default(),
            read_through: ReadThroughConfig::default(),
            limits: Limits::default(),
            scripting: ScriptingConfig::default(),
            log: LogConfig::default(),
            server: ServerConfig::default(),
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            dir: PathBuf::from("caskade-data"),
            segment_bytes: 64 << 20,
            fsync: Fsync::EverySec,
            max_disk_bytes: None,
            max_keys: None,
            eviction_policy: PolicyKind::S3Fifo,
            compaction_garbage_ratio: 0.5,
            hot_bytes: caskade_engine::DEFAULT_HOT_BYTES,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_clients: 10_000,
            max_bulk_bytes: 512 << 20,
            max_query_buffer_bytes: 1 << 30,
            max_args: 1 << 20,
            idle_timeout_secs: 0,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
            color: LogColor::Auto,
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read. (The I/O error is part of the message, not a
    /// `source`, so a report of the chain says it once.)
    #[error("{path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The YAML did not parse or did not fit the schema.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line, column and field.
        message: String,
    },
    /// A value parsed but is not acceptable.
    #[error("{source_name}: field `{field}`: {reason}")]
    Invalid {
        /// The file, or "command line / environment".
        source_name: String,
        /// The dotted field name.
        field: String,
        /// Why.
        reason: String,
    },
}

impl Config {
    /// Reads and validates a YAML file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        let mut cfg = Config::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })?;
        if let Some(base) = path.parent() {
            cfg.resolve_plugin_paths(base);
        }
        cfg.validate(&path.display().to_string())?;
        Ok(cfg)
    }

    /// Makes relative plugin paths (files and the cache directory) relative to `base`,
    /// the configuration file's directory, so a configuration means the same files
    /// whatever directory caskade starts in. The data directory stays relative to the
    /// working directory, as Redis' `dir` does.
    pub fn resolve_plugin_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        let plugins = &mut self.plugins;
        for p in [&mut plugins.compaction_filter, &mut plugins.eviction_policy]
            .into_iter()
            .flatten()
        {
            fix(&mut p.path);
        }
        if let Some(dir) = &mut plugins.cache_dir {
            fix(dir);
        }
        for r in &mut self.read_through.routes {
            fix(&mut r.fetcher);
        }
    }

    /// Parses YAML text (an empty document is the defaults).
    pub fn parse(text: &str) -> Result<Config, String> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        serde_norway::from_str(text).map_err(|e| redact(&e.to_string()))
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self, source_name: &str) -> Result<(), ConfigError> {
        let bad = |field: &str, reason: String| ConfigError::Invalid {
            source_name: source_name.to_string(),
            field: field.to_string(),
            reason,
        };
        if let Err(e) = self.engine_options().validate() {
            let (field, reason) = match e {
                caskade_engine::Error::BadOption { field, reason } => (engine_field(field), reason),
                other => ("storage", other.to_string()),
            };
            return Err(bad(field, reason));
        }
        for (field, p) in [
            ("plugins.compaction_filter", &self.plugins.compaction_filter),
            ("plugins.eviction_policy", &self.plugins.eviction_policy),
        ] {
            if let Some(p) = p {
                if p.deadline_ms == 0 || p.deadline_ms > 60_000 {
                    return Err(bad(
                        field,
                        format!("deadline_ms {} is outside 1..=60000", p.deadline_ms),
                    ));
                }
                if p.memory_bytes < 1 << 20 {
                    return Err(bad(
                        field,
                        format!("memory_bytes {} is under 1 MiB", p.memory_bytes),
                    ));
                }
            }
        }
        self.validate_routes(&bad)?;
        let bulk = self.limits.max_bulk_bytes;
        if self.limits.max_query_buffer_bytes < bulk {
            return Err(bad(
                "limits.max_query_buffer_bytes",
                "must be at least limits.max_bulk_bytes".into(),
            ));
        }
        if self.limits.max_clients == 0 {
            return Err(bad("limits.max_clients", "must be at least 1".into()));
        }
        if self.server.threads > 1024 {
            return Err(bad("server.threads", "must be at most 1024".into()));
        }
        if self.tcp_backlog == 0 {
            return Err(bad("tcp_backlog", "must be at least 1".into()));
        }
        if self.limits.max_args == 0 {
            return Err(bad("limits.max_args", "must be at least 1".into()));
        }
        if self.port == 0 && self.unixsocket.is_none() {
            return Err(bad(
                "port",
                "0 disables TCP, so a unixsocket is required".into(),
            ));
        }
        if self.admin.port != 0 && self.admin.port == self.port && self.admin.bind == self.bind {
            return Err(bad(
                "admin.port",
                format!("{} is also the RESP port", self.port),
            ));
        }
        if self.requirepass.as_deref() == Some("") {
            return Err(bad(
                "requirepass",
                "an empty password; leave the field out to disable AUTH".into(),
            ));
        }
        Ok(())
    }
}

/// The configuration field an engine option comes from.
fn engine_field(option: &str) -> &'static str {
    match option {
        "segment_bytes" => "storage.segment_bytes",
        "max_value_bytes" => "limits.max_bulk_bytes",
        "max_disk_bytes" => "storage.max_disk_bytes",
        "max_keys" => "storage.max_keys",
        "compaction_garbage_ratio" => "storage.compaction_garbage_ratio",
        _ => "storage",
    }
}

impl Config {
    /// The engine's options, derived from this configuration in this one place (the
    /// plugins add their filter and policy on top).
    pub fn engine_options(&self) -> caskade_engine::Options {
        let s = &self.storage;
        let mut o = caskade_engine::Options::new(&s.dir);
        o.segment_bytes = s.segment_bytes;
        o.fsync = s.fsync;
        o.max_value_bytes = usize::try_from(self.limits.max_bulk_bytes).unwrap_or(usize::MAX);
        o.max_disk_bytes = s.max_disk_bytes;
        o.max_keys = s.max_keys;
        o.eviction = s.eviction_policy;
        o.compaction_garbage_ratio = s.compaction_garbage_ratio;
        o.hot_bytes = s.hot_bytes;
        o
    }

    fn validate_routes(
        &self,
        bad: &dyn Fn(&str, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        for (i, r) in self.read_through.routes.iter().enumerate() {
            let field = |name: &str| format!("read_through.routes[{i}].{name}");
            if !seen.insert(r.prefix.as_str()) {
                return Err(bad(
                    &field("prefix"),
                    format!("'{}' is the prefix of an earlier route too", r.prefix),
                ));
            }
            for h in &r.allowed_hosts {
                caskade_plugins::HostRule::parse(h).map_err(|e| bad(&field("allowed_hosts"), e))?;
            }
            if r.ttl == 0 {
                return Err(bad(&field("ttl"), "must be more than 0".into()));
            }
            if r.timeout == 0 || r.timeout > 600_000 {
                return Err(bad(
                    &field("timeout"),
                    format!("{} ms is outside 1ms..=10m", r.timeout),
                ));
            }
            if r.max_concurrent_fetches == 0 {
                return Err(bad(
                    &field("max_concurrent_fetches"),
                    "must be at least 1".into(),
                ));
            }
            if r.memory_bytes < 1 << 20 {
                return Err(bad(
                    &field("memory_bytes"),
                    format!("{} is under 1 MiB", r.memory_bytes),
                ));
            }
        }
        Ok(())
    }
}

/// A parser message without the file's content in it: quoted strings become "a
/// string", and a name in backticks stays only if it looks like a field name. Pointing
/// `--check-config` at a file that is not a configuration (a key file, `/etc/shadow`)
/// must not print its lines.
fn redact(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find(['`', '"']) {
        let (before, from) = rest.split_at(i);
        out.push_str(before);
        let quote = from.chars().next().unwrap_or('"');
        let body = &from[1..];
        // The closing quote, skipping escaped ones.
        let mut end = None;
        let mut escaped = false;
        for (j, c) in body.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                c if c == quote && !escaped => {
                    end = Some(j);
                    break;
                }
                _ => escaped = false,
            }
        }
        let Some(end) = end else {
            out.push_str("...");
            return out;
        };
        let inner = &body[..end];
        let name_like = !inner.is_empty()
            && inner.len() <= 64
            && inner
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if quote == '`' && name_like {
            out.push('`');
            out.push_str(inner);
            out.push('`');
        } else if quote == '`' {
            out.push_str("(a name that is not a field)");
        } else {
            out.push_str("(text)");
        }
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    out.replace("string (text)", "a string")
}

/// Parses a duration with a unit (`500ms`, `30s`, `5m`, `1h`, `1d`; `0` alone) into
/// milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    if t == "0" {
        return Ok(0);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (e.g. 500ms, 30s, 5m, 1h)"))?;
    let mult: u64 = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "" => return Err(format!("'{s}' needs a unit (ms, s, m, h or d)")),
        other => return Err(format!("unknown duration unit '{other}' in '{s}'")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("'{s}' is too long"))
}

/// A YAML value that is either a plain number or text with a unit (`64mb`, `30s`).
#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrText {
    N(u64),
    S(String),
}

fn de_duration_ms<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match NumOrText::deserialize(d)? {
        NumOrText::N(0) => Ok(0),
        NumOrText::N(n) => Err(serde::de::Error::custom(format!(
            "'{n}' needs a unit (ms, s, m, h or d)"
        ))),
        NumOrText::S(s) => parse_duration_ms(&s).map_err(serde::de::Error::custom),
    }
}

fn de_opt_duration_ms<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    de_duration_ms(d).map(Some)
}

/// Parses a size: a plain number of bytes, or a number with a unit (`k`, `kb`, `kib`,
/// `m`, `mb`, `mib`, `g`, `gb`, `gib`; as in Redis, `kb` is 1024 and `k` is 1000).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size (e.g. 1048576, 64mb, 1gb)"))?;
    let mult: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" => 1_000,
        "kb" | "kib" => 1 << 10,
        "m" => 1_000_000,
        "mb" | "mib" => 1 << 20,
        "g" => 1_000_000_000,
        "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit '{other}' in '{s}'")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("'{s}' is too large"))
}

fn de_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match NumOrText::deserialize(d)? {
        NumOrText::N(n) => Ok(n),
        NumOrText::S(s) => parse_size(&s).map_err(serde::de::Error::custom),
    }
}

fn de_parse<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr<Err = String>,
{
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

fn de_opt_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<NumOrText>::deserialize(d)? {
        None => Ok(None),
        Some(NumOrText::N(n)) => Ok(Some(n)),
        Some(NumOrText::S(s)) => parse_size(&s).map(Some).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(Config::parse("").expect("ok"), Config::default());
        assert_eq!(Config::parse("# nothing\n").expect("ok"), Config::default());
    }

    #[test]
    fn fields_parse_with_units() {
        let c = Config::parse(
            "port: 7000\nstorage:\n  segment_bytes: 8mb\n  fsync: always\nlimits:\n  max_bulk_bytes: 1048576\n",
        )
        .expect("ok");
        assert_eq!(c.port, 7000);
        assert_eq!(c.storage.segment_bytes, 8 << 20);
        assert_eq!(c.storage.fsync, Fsync::Always);
        assert_eq!(c.limits.max_bulk_bytes, 1 << 20);
        let c = Config::parse(
            "storage:\n  max_disk_bytes: 1gb\n  max_keys: 1000\n  eviction_policy: sieve\n",
        )
        .expect("ok");
        assert_eq!(c.storage.max_disk_bytes, Some(1 << 30));
        assert_eq!(c.storage.max_keys, Some(1000));
        assert_eq!(c.storage.eviction_policy, PolicyKind::Sieve);
        let c = Config::parse(
            "plugins:\n  compaction_filter:\n    path: /p/f.wasm\n    settings:\n      max_ttl_secs: 60\n      drop: tmp\n",
        )
        .expect("ok");
        let f = c.plugins.compaction_filter.expect("filter");
        assert_eq!(
            f.settings,
            vec![
                ("max_ttl_secs".into(), "60".into()),
                ("drop".into(), "tmp".into())
            ]
        );
        assert_eq!((f.deadline_ms, f.memory_bytes), (50, 64 << 20));
        let e = Config::parse("plugins:\n  compaction_filter:\n    pth: x\n").expect_err("typo");
        assert!(e.contains("pth") && e.contains("line 3"), "{e}");
        let e = Config::parse("storage:\n  eviction_policy: random\n").expect_err("bad policy");
        assert!(e.contains("random") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn unknown_fields_and_bad_values_name_line_and_field() {
        let e = Config::parse("port: 1\nstorage:\n  segmnt_bytes: 5\n").expect_err("unknown");
        assert!(e.contains("segmnt_bytes") && e.contains("line 3"), "{e}");
        let e = Config::parse("port: many\n").expect_err("bad port");
        assert!(e.contains("port") && e.contains("line 1"), "{e}");
        let e = Config::parse("storage:\n  fsync: sometimes\n").expect_err("bad fsync");
        assert!(e.contains("sometimes") && e.contains("line 2"), "{e}");
        let e = Config::parse("storage:\n  segment_bytes: 12parsecs\n").expect_err("bad size");
        assert!(e.contains("parsecs"), "{e}");
    }

    #[test]
    fn validation_names_the_field() {
        let mut c = Config::default();
        c.storage.segment_bytes = 10;
        let e = c.validate("x.yaml").expect_err("too small").to_string();
        assert!(
            e.starts_with("x.yaml: field `storage.segment_bytes`"),
            "{e}"
        );
    }

    #[test]
    fn routes_parse_with_durations_and_defaults() {
        let c = Config::parse(
            "read_through:\n  routes:\n    - prefix: 'user:'\n      fetcher: /p/http.wasm\n      settings:\n        base_url: http://origin:8080/users/\n      allowed_hosts: [origin:8080]\n      ttl: 30s\n      stale_while_revalidate: 1m\n      timeout: 250ms\n",
        )
        .expect("ok");
        let r = &c.read_through.routes[0];
        assert_eq!(r.prefix, "user:");
        assert_eq!(
            (r.ttl, r.stale_while_revalidate, r.timeout),
            (30_000, 60_000, 250)
        );
        assert_eq!((r.negative_ttl, r.stale_if_error), (10_000, 0));
        assert_eq!(r.keep_stale_ms(), 60_000);
        assert_eq!(r.allowed_hosts, vec!["origin:8080".to_string()]);
        c.validate("c.yaml").expect("valid");

        let e = Config::parse(
            "read_through:\n  routes:\n    - prefix: a\n      fetcher: f.wasm\n      ttl: 30\n",
        )
        .expect_err("no unit");
        assert!(e.contains("needs a unit") && e.contains("routes[0]"), "{e}");
        let e = Config::parse(
            "read_through:\n  routes:\n    - prefix: a\n      fetcher: f.wasm\n      tll: 3s\n",
        )
        .expect_err("typo");
        assert!(e.contains("tll") && e.contains("line 5"), "{e}");
        let e = Config::parse("read_through:\n  routes:\n    - fetcher: f.wasm\n")
            .expect_err("no prefix");
        assert!(e.contains("prefix"), "{e}");

        let mut c = Config::parse(
            "read_through:\n  routes:\n    - prefix: a\n      fetcher: f.wasm\n      allowed_hosts: ['bad host']\n",
        )
        .expect("parses");
        let e = c.validate("c.yaml").expect_err("bad host").to_string();
        assert!(
            e.starts_with("c.yaml: field `read_through.routes[0].allowed_hosts`"),
            "{e}"
        );
        c.read_through.routes[0].allowed_hosts.clear();
        let dup = c.read_through.routes[0].clone();
        c.read_through.routes.push(dup);
        let e = c.validate("c.yaml").expect_err("duplicate").to_string();
        assert!(e.contains("routes[1].prefix"), "{e}");
    }

    #[test]
    fn errors_do_not_echo_the_file() {
        let e = Config::parse("root:*:20228:0:99999:7:::\n").expect_err("not a config");
        assert!(!e.contains("20228"), "{e}");
        let e = Config::parse("hunter2 secret line\n").expect_err("not a config");
        assert!(!e.contains("hunter2"), "{e}");
        let e = Config::parse("port: \"hunter2\"\n").expect_err("bad port");
        assert!(
            !e.contains("hunter2") && e.contains("port") && e.contains("line 1"),
            "{e}"
        );
        let e = Config::parse("storage:\n  segmnt_bytes: 5\n").expect_err("typo");
        assert!(
            e.contains("`segmnt_bytes`") && e.contains("`segment_bytes`"),
            "{e}"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("2s"), Ok(2_000));
        assert_eq!(parse_duration_ms("5m"), Ok(300_000));
        assert_eq!(parse_duration_ms("1h"), Ok(3_600_000));
        assert_eq!(parse_duration_ms("0"), Ok(0));
        assert!(parse_duration_ms("10").is_err());
        assert!(parse_duration_ms("3 weeks").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64mb"), Ok(64 << 20));
        assert_eq!(parse_size("1k"), Ok(1000));
        assert_eq!(parse_size(" 2 GiB "), Ok(2 << 30));
        assert!(parse_size("mb").is_err());
        assert!(parse_size("99999999999999gb").is_err());
    }
}
