//! Every scalar setting, declared once: its YAML field, command-line flag, environment
//! variable, CONFIG GET/SET name, whether it may change while running, and how it is
//! read and written as text. The flags, CONFIG GET/SET and the README's table all come
//! from [`SETTINGS`]; the typed fields and their defaults live in `config.rs`.

use crate::config::{Config, parse_size};
use caskade_engine::NAMESPACES;
use std::path::PathBuf;

/// One setting.
pub struct Setting {
    /// The dotted YAML field.
    pub field: &'static str,
    /// What the README adds after the field (allowed values, what 0 means).
    pub note: &'static str,
    /// The flag, without `--`.
    pub flag: Option<&'static str>,
    /// The environment variable.
    pub env: Option<&'static str>,
    /// The CONFIG GET/SET name.
    pub redis: Option<&'static str>,
    /// Whether CONFIG SET may change it while running.
    pub live: bool,
    /// The default as the README writes it (checked against `Config::default()`).
    pub default_text: &'static str,
    /// Its value as text.
    pub get: Getter,
    /// Sets it from text; the error says why not (in Redis' words for live settings).
    pub set: fn(&mut Config, &str) -> Result<(), String>,
}

fn int<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| "argument couldn't be parsed into an integer".to_string())
}

fn path(p: &Option<PathBuf>) -> String {
    p.as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

fn fsync_text(f: caskade_engine::Fsync) -> &'static str {
    match f {
        caskade_engine::Fsync::Always => "always",
        caskade_engine::Fsync::EverySec => "everysec",
        caskade_engine::Fsync::Never => "never",
    }
}

/// The settings, in the README's order.
pub static SETTINGS: &[Setting] = &[
    Setting {
        field: "bind",
        note: "",
        flag: Some("bind"),
        env: Some("CASKADE_BIND"),
        redis: Some("bind"),
        live: false,
        default_text: "127.0.0.1",
        get: |c| c.bind.clone(),
        set: |c, v| {
            c.bind = v.to_string();
            Ok(())
        },
    },
    Setting {
        field: "port",
        note: " (0 = no TCP)",
        flag: Some("port"),
        env: Some("CASKADE_PORT"),
        redis: Some("port"),
        live: false,
        default_text: "6379",
        get: |c| c.port.to_string(),
        set: |c, v| {
            c.port = int(v)?;
            Ok(())
        },
    },
    Setting {
        field: "tcp_backlog",
        note: "",
        flag: Some("tcp-backlog"),
        env: Some("CASKADE_TCP_BACKLOG"),
        redis: Some("tcp-backlog"),
        live: false,
        default_text: "511",
        get: |c| c.tcp_backlog.to_string(),
        set: |c, v| {
            c.tcp_backlog = int(v)?;
            Ok(())
        },
    },
    Setting {
        field: "unixsocket",
        note: "",
        flag: Some("unixsocket"),
        env: Some("CASKADE_UNIXSOCKET"),
        redis: Some("unixsocket"),
        live: false,
        default_text: "",
        get: |c| path(&c.unixsocket),
        set: |c, v| {
            c.unixsocket = (!v.is_empty()).then(|| PathBuf::from(v));
            Ok(())
        },
    },
    Setting {
        field: "requirepass",
        note: "",
        flag: Some("requirepass"),
        env: Some("CASKADE_REQUIREPASS"),
        redis: Some("requirepass"),
        live: true,
        default_text: "",
        get: |c| c.requirepass.clone().unwrap_or_default(),
        set: |c, v| {
            c.requirepass = (!v.is_empty()).then(|| v.to_string());
            Ok(())
        },
    },
    Setting {
        field: "admin.bind",
        note: "",
        flag: Some("admin-bind"),
        env: Some("CASKADE_ADMIN_BIND"),
        redis: None,
        live: false,
        default_text: "127.0.0.1",
        get: |c| c.admin.bind.clone(),
        set: |c, v| {
            c.admin.bind = v.to_string();
            Ok(())
        },
    },
    Setting {
        field: "admin.port",
        note: " (0 = off)",
        flag: Some("admin-port"),
        env: Some("CASKADE_ADMIN_PORT"),
        redis: None,
        live: false,
        default_text: "9736",
        get: |c| c.admin.port.to_string(),
        set: |c, v| {
            c.admin.port = int(v)?;
            Ok(())
        },
    },
    Setting {
        field: "storage.dir",
        note: "",
        flag: Some("dir"),
        env: Some("CASKADE_DIR"),
        redis: Some("dir"),
        live: false,
        default_text: "caskade-data",
        get: |c| c.storage.dir.display().to_string(),
        set: |c, v| {
            c.storage.dir = PathBuf::from(v);
            Ok(())
        },
    },
    Setting {
        field: "storage.segment_bytes",
        note: "",
        flag: Some("segment-bytes"),
        env: Some("CASKADE_SEGMENT_BYTES"),
        redis: None,
        live: false,
        default_text: "64mb",
        get: |c| c.storage.segment_bytes.to_string(),
        set: |c, v| {
            c.storage.segment_bytes = parse_size(v)?;
            Ok(())
        },
    },
    Setting {
        field: "storage.fsync",
        note: " (`always`, `everysec`, `never`)",
        flag: Some("fsync"),
        env: Some("CASKADE_FSYNC"),
        redis: None,
        live: false,
        default_text: "everysec",
        get: |c| fsync_text(c.storage.fsync).to_string(),
        set: |c, v| {
            c.storage.fsync = v.parse()?;
            Ok(())
        },
    },
    Setting {
        field: "storage.max_disk_bytes",
        note: " (0 = unbounded)",
        flag: Some("max-disk-bytes"),
        env: Some("CASKADE_MAX_DISK_BYTES"),
        redis: Some("caskade-max-disk-bytes"),
        live: false,
        default_text: "",
        get: |c| c.storage.max_disk_bytes.unwrap_or(0).to_string(),
        set: |c, v| {
            c.storage.max_disk_bytes = match v.trim() {
                "" | "0" => None,
                v => Some(parse_size(v)?),
            };
            Ok(())
        },
    },
    Setting {
        field: "storage.max_keys",
        note: " (0 = unbounded)",
        flag: Some("max-keys"),
        env: Some("CASKADE_MAX_KEYS"),
        redis: Some("caskade-max-keys"),
        live: false,
        default_text: "",
        get: |c| c.storage.max_keys.unwrap_or(0).to_string(),
        set: |c, v| {
            c.storage.max_keys = match v.trim() {
                "" | "0" => None,
                v => Some(int(v)?),
            };
            Ok(())
        },
    },
    Setting {
        field: "storage.eviction_policy",
        note: " (`fifo`, `lru`, `sieve`, `s3-fifo`)",
        flag: Some("eviction-policy"),
        env: Some("CASKADE_EVICTION_POLICY"),
        redis: None,
        live: false,
        default_text: "s3-fifo",
        get: |c| c.storage.eviction_policy.as_str().to_string(),
        set: |c, v| {
            c.storage.eviction_policy = v.parse()?;
            Ok(())
        },
    },
    Setting {
        field: "storage.compaction_garbage_ratio",
        note: "",
        flag: None,
        env: None,
        redis: None,
        live: false,
        default_text: "0.5",
        get: |c| c.storage.compaction_garbage_ratio.to_string(),
        set: |c, v| {
            c.storage.compaction_garbage_ratio = v
                .trim()
                .parse()
                .map_err(|_| format!("'{v}' is not a number"))?;
            Ok(())
        },
    },
    Setting {
        field: "storage.hot_bytes",
        note: " (0 = off)",
        flag: Some("hot-bytes"),
        env: Some("CASKADE_HOT_BYTES"),
        redis: None,
        live: false,
        default_text: "64mb",
        get: |c| c.storage.hot_bytes.to_string(),
        set: |c, v| {
            c.storage.hot_bytes = parse_size(v)?;
            Ok(())
        },
    },
    Setting {
        field: "limits.max_clients",
        note: "",
        flag: Some("max-clients"),
        env: Some("CASKADE_MAX_CLIENTS"),
        redis: Some("maxclients"),
        live: true,
        default_text: "10000",
        get: |c| c.limits.max_clients.to_string(),
        set: |c, v| match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => {
                c.limits.max_clients = n;
                Ok(())
            }
            _ => Err("argument must be a positive integer".into()),
        },
    },
    Setting {
        field: "limits.max_bulk_bytes",
        note: "",
        flag: None,
        env: None,
        redis: Some("proto-max-bulk-len"),
        live: false,
        default_text: "512mb",
        get: |c| c.limits.max_bulk_bytes.to_string(),
        set: |c, v| {
            c.limits.max_bulk_bytes = parse_size(v)?;
            Ok(())
        },
    },
    Setting {
        field: "limits.max_query_buffer_bytes",
        note: "",
        flag: None,
        env: None,
        redis: Some("client-query-buffer-limit"),
        live: false,
        default_text: "1gb",
        get: |c| c.limits.max_query_buffer_bytes.to_string(),
        set: |c, v| {
            c.limits.max_query_buffer_bytes = parse_size(v)?;
            Ok(())
        },
    },
    Setting {
        field: "limits.max_args",
        note: "",
        flag: None,
        env: None,
        redis: None,
        live: false,
        default_text: "1048576",
        get: |c| c.limits.max_args.to_string(),
        set: |c, v| {
            c.limits.max_args = int(v)?;
            Ok(())
        },
    },
    Setting {
        field: "limits.idle_timeout_secs",
        note: " (0 = never)",
        flag: None,
        env: None,
        redis: Some("timeout"),
        live: true,
        default_text: "0",
        get: |c| c.limits.idle_timeout_secs.to_string(),
        set: |c, v| {
            c.limits.idle_timeout_secs = int(v)?;
            Ok(())
        },
    },
    Setting {
        field: "scripting.busy_timeout",
        note: "",
        flag: None,
        env: None,
        redis: Some("busy-reply-threshold"),
        live: true,
        default_text: "5s",
        // CONFIG GET answers milliseconds, as Redis does; a bare number is milliseconds.
        get: |c| c.scripting.busy_timeout.to_string(),
        set: |c, v| {
            c.scripting.busy_timeout = match v.trim().parse::<u64>() {
                Ok(ms) => ms,
                Err(_) => crate::config::parse_duration_ms(v)?,
            };
            Ok(())
        },
    },
    Setting {
        field: "scripting.strict_keys",
        note: "",
        flag: None,
        env: None,
        redis: Some("caskade-scripting-strict-keys"),
        live: true,
        default_text: "false",
        get: |c| if c.scripting.strict_keys { "yes" } else { "no" }.to_string(),
        set: |c, v| {
            c.scripting.strict_keys = match v.trim() {
                "yes" | "true" => true,
                "no" | "false" => false,
                _ => return Err("argument must be 'yes' or 'no'".into()),
            };
            Ok(())
        },
    },
    Setting {
        field: "scripting.memory_limit_bytes",
        note: "",
        flag: None,
        env: None,
        redis: None,
        live: false,
        default_text: "64mb",
        get: |c| c.scripting.memory_limit_bytes.to_string(),
        set: |c, v| {
            c.scripting.memory_limit_bytes = parse_size(v)?;
            Ok(())
        },
    },
    Setting {
        field: "log.level",
        note: "",
        flag: Some("log"),
        env: Some("CASKADE_LOG"),
        redis: None,
        live: false,
        default_text: "info",
        get: |c| c.log.level.clone(),
        set: |c, v| {
            c.log.level = v.to_string();
            Ok(())
        },
    },
    Setting {
        field: "log.format",
        note: " (`text`, `json`: one JSON object per line)",
        flag: Some("log-format"),
        env: Some("CASKADE_LOG_FORMAT"),
        redis: None,
        live: false,
        default_text: "text",
        get: |c| c.log.format.as_str().to_string(),
        set: |c, v| {
            c.log.format = v.parse()?;
            Ok(())
        },
    },
    Setting {
        field: "log.color",
        note: " (`auto`: on a terminal without `NO_COLOR`; `always`, `never`)",
        flag: Some("log-color"),
        env: Some("CASKADE_LOG_COLOR"),
        redis: None,
        live: false,
        default_text: "auto",
        get: |c| c.log.color.as_str().to_string(),
        set: |c, v| {
            c.log.color = v.parse()?;
            Ok(())
        },
    },
    Setting {
        field: "server.io",
        note: " (`tokio`: epoll, records read in place; `hybrid`: epoll, records not in the page cache read with io_uring; `uring`: io_uring runtimes, one per thread; the last two fall back to `tokio` where refused)",
        flag: Some("io"),
        env: Some("CASKADE_IO"),
        redis: None,
        live: false,
        default_text: "hybrid",
        get: |c| c.server.io.as_str().to_string(),
        set: |c, v| {
            c.server.io = v.parse()?;
            Ok(())
        },
    },
    Setting {
        field: "server.threads",
        note: " (0 = one per core)",
        flag: Some("threads"),
        env: Some("CASKADE_THREADS"),
        redis: None,
        live: false,
        default_text: "0",
        get: |c| c.server.threads.to_string(),
        set: |c, v| {
            c.server.threads = int(v)?;
            Ok(())
        },
    },
];

/// Reads a value of a configuration as text.
pub type Getter = fn(&Config) -> String;

/// CONFIG GET names Redis tools read that have no caskade setting of their own: their
/// value follows from the settings (or is fixed), and CONFIG SET accepts and ignores them.
pub static REDIS_COMPAT: &[(&str, Getter)] = &[
    ("appendonly", |_| "yes".into()),
    ("appendfsync", |c| match c.storage.fsync {
        caskade_engine::Fsync::Never => "no".into(),
        f => fsync_text(f).into(),
    }),
    ("save", |_| String::new()),
    ("databases", |_| NAMESPACES.to_string()),
    ("maxmemory", |_| "0".into()),
    ("maxmemory-policy", |c| {
        if c.storage.max_keys.is_some() || c.storage.max_disk_bytes.is_some() {
            c.storage.eviction_policy.as_str().into()
        } else {
            "noeviction".into()
        }
    }),
];

/// Compatibility names CONFIG SET accepts and ignores (clients set them blindly).
pub const IGNORED_ON_SET: &[&str] = &["save", "appendonly", "maxmemory-policy", "maxmemory"];

/// The default as `--help` shows it.
pub fn default_shown(s: &Setting) -> &'static str {
    match s.default_text {
        "" if s.field.starts_with("storage.max_") => "unbounded",
        "" => "none",
        d => d,
    }
}

/// The setting CONFIG knows as `name` (lower-case).
pub fn by_redis_name(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.redis == Some(name))
}

/// Every CONFIG GET name with its value, settings first.
pub fn redis_params(c: &Config) -> Vec<(&'static str, String)> {
    SETTINGS
        .iter()
        .filter_map(|s| Some((s.redis?, (s.get)(c))))
        .chain(REDIS_COMPAT.iter().map(|(n, get)| (*n, get(c))))
        .collect()
}

/// The README's settings table, rows only (a test keeps the README in step).
#[cfg(test)]
pub fn readme_rows() -> String {
    let code = |s: &str| format!("`{s}`");
    SETTINGS
        .iter()
        .map(|s| {
            let default = match s.default_text {
                "" => default_shown(s).to_string(),
                d => code(d),
            };
            format!(
                "| `{}`{} | {} | {} | {} | {} |\n",
                s.field,
                s.note,
                s.flag.map(|f| code(&format!("--{f}"))).unwrap_or_default(),
                s.env.map(code).unwrap_or_default(),
                default,
                s.redis
                    .map(|r| if s.live {
                        format!("`{r}` (settable)")
                    } else {
                        code(r)
                    })
                    .unwrap_or_default(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_as_written_are_the_defaults() {
        let d = Config::default();
        for s in SETTINGS {
            let mut c = Config::default();
            (s.set)(&mut c, s.default_text).unwrap_or_else(|e| panic!("{}: {e}", s.field));
            assert_eq!((s.get)(&c), (s.get)(&d), "{}", s.field);
        }
    }

    #[test]
    fn every_name_is_unique_and_round_trips() {
        let mut seen = std::collections::HashSet::new();
        for s in SETTINGS {
            let names = [("field", Some(s.field)), ("flag", s.flag), ("env", s.env)];
            for (kind, name) in names.into_iter().chain([("redis", s.redis)]) {
                if let Some(name) = name {
                    assert!(seen.insert((kind, name)), "{kind} {name} declared twice");
                }
            }
            let mut c = Config::default();
            let v = (s.get)(&c);
            (s.set)(&mut c, &v).unwrap_or_else(|e| panic!("{}: {e}", s.field));
            assert_eq!((s.get)(&c), v, "{}", s.field);
        }
    }

    #[test]
    fn the_readme_lists_every_setting() {
        let readme = include_str!("../../README.md");
        for row in readme_rows().lines() {
            assert!(readme.contains(row), "README lacks the row:\n{row}");
        }
    }

    #[test]
    fn redis_names() {
        let mut c = Config::default();
        let p = redis_params(&c);
        assert!(
            p.contains(&("caskade-max-keys", "0".into())),
            "unbounded reads as 0"
        );
        assert!(p.contains(&("maxclients", "10000".into())));
        assert!(p.contains(&("maxmemory-policy", "noeviction".into())));
        c.storage.fsync = caskade_engine::Fsync::Never;
        assert!(redis_params(&c).contains(&("appendfsync", "no".into())));
        let s = by_redis_name("maxclients").expect("maxclients");
        assert!(s.live);
        assert_eq!(
            (s.set)(&mut c, "0"),
            Err("argument must be a positive integer".into())
        );
        assert_eq!(
            (by_redis_name("timeout").expect("timeout").set)(&mut c, "x"),
            Err("argument couldn't be parsed into an integer".into())
        );
    }
}
