//! Command-line flags. Each flag can also come from a `CASKADE_*` environment variable;
//! a flag beats the variable, which beats the YAML file, which beats the defaults.

use crate::config::{Config, ConfigError, parse_size};
use caskade_engine::{Fsync, PolicyKind};
use clap::Parser;
use std::path::PathBuf;

/// caskade: a Redis-protocol cache sidecar over a disk-backed, bitcask-style engine.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// YAML configuration file (every field optional).
    #[arg(long, env = "CASKADE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Validate the configuration file and exit.
    #[arg(long, value_name = "FILE")]
    pub check_config: Option<PathBuf>,
    /// Address to bind.
    #[arg(long, env = "CASKADE_BIND")]
    pub bind: Option<String>,
    /// TCP port (0 disables TCP).
    #[arg(long, env = "CASKADE_PORT")]
    pub port: Option<u16>,
    /// Unix socket path.
    #[arg(long, env = "CASKADE_UNIXSOCKET")]
    pub unixsocket: Option<PathBuf>,
    /// Data directory.
    #[arg(long, env = "CASKADE_DIR")]
    pub dir: Option<PathBuf>,
    /// Segment size, e.g. 64mb.
    #[arg(long, env = "CASKADE_SEGMENT_BYTES", value_parser = parse_size)]
    pub segment_bytes: Option<u64>,
    /// always, everysec or never.
    #[arg(long, env = "CASKADE_FSYNC")]
    pub fsync: Option<Fsync>,
    /// Disk budget for data files, e.g. 10gb; reaching it evicts.
    #[arg(long, env = "CASKADE_MAX_DISK_BYTES", value_parser = parse_size)]
    pub max_disk_bytes: Option<u64>,
    /// Key budget; reaching it evicts.
    #[arg(long, env = "CASKADE_MAX_KEYS")]
    pub max_keys: Option<u64>,
    /// fifo, lru, sieve or s3-fifo.
    #[arg(long, env = "CASKADE_EVICTION_POLICY")]
    pub eviction_policy: Option<PolicyKind>,
    /// Password for AUTH.
    #[arg(long, env = "CASKADE_REQUIREPASS")]
    pub requirepass: Option<String>,
    /// Admin HTTP port for /metrics, /healthz and /readyz (0 disables it).
    #[arg(long, env = "CASKADE_ADMIN_PORT")]
    pub admin_port: Option<u16>,
    /// Address the admin port binds.
    #[arg(long, env = "CASKADE_ADMIN_BIND")]
    pub admin_bind: Option<String>,
    /// Most connections at once.
    #[arg(long, env = "CASKADE_MAX_CLIENTS")]
    pub max_clients: Option<usize>,
    /// Log filter, e.g. info or caskade=debug.
    #[arg(long, env = "CASKADE_LOG")]
    pub log: Option<String>,
}

impl Cli {
    /// The configuration: file (if any), then environment and flags on top.
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        let mut cfg = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(v) = &self.bind {
            cfg.bind = v.clone();
        }
        if let Some(v) = self.port {
            cfg.port = v;
        }
        if let Some(v) = &self.unixsocket {
            cfg.unixsocket = Some(v.clone());
        }
        if let Some(v) = &self.dir {
            cfg.storage.dir = v.clone();
        }
        if let Some(v) = self.segment_bytes {
            cfg.storage.segment_bytes = v;
        }
        if let Some(v) = self.fsync {
            cfg.storage.fsync = v;
        }
        if let Some(v) = self.max_disk_bytes {
            cfg.storage.max_disk_bytes = Some(v);
        }
        if let Some(v) = self.max_keys {
            cfg.storage.max_keys = Some(v);
        }
        if let Some(v) = self.eviction_policy {
            cfg.storage.eviction_policy = v;
        }
        if let Some(v) = &self.requirepass {
            cfg.requirepass = Some(v.clone());
        }
        if let Some(v) = self.admin_port {
            cfg.admin.port = v;
        }
        if let Some(v) = &self.admin_bind {
            cfg.admin.bind = v.clone();
        }
        if let Some(v) = self.max_clients {
            cfg.limits.max_clients = v;
        }
        if let Some(v) = &self.log {
            cfg.log.level = v.clone();
        }
        cfg.validate("command line / environment")?;
        Ok(cfg)
    }
}
