//! The options `Engine::open` takes, with defaults that suit a cache on a local SSD.

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::filter::CompactionFilter;
use crate::format::record::MAX_VALUE_LEN;
use crate::io::{StdStorage, Storage};
use crate::policy::{EvictionPolicy, PolicyKind};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// When appended records are made durable (Redis' `appendfsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fsync {
    /// Every write is synced before it returns; concurrent writers share one sync
    /// (group commit).
    Always,
    /// A background thread syncs once a second; a crash loses at most about a second.
    #[default]
    EverySec,
    /// The engine never syncs on its own (the OS writes back when it likes); segments
    /// are still synced when sealed and on close.
    Never,
}

impl FromStr for Fsync {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "always" => Ok(Fsync::Always),
            "everysec" => Ok(Fsync::EverySec),
            "never" | "no" => Ok(Fsync::Never),
            other => Err(format!("'{other}' is not one of always, everysec, never")),
        }
    }
}

/// Builds a plugged-in eviction policy, once, when the engine opens (`None`: the
/// built-in one).
pub type PolicyFactory = Arc<dyn Fn() -> Option<Box<dyn EvictionPolicy>> + Send + Sync>;

/// The hot tier's default size: 64 MiB.
pub const DEFAULT_HOT_BYTES: u64 = 64 << 20;

/// Options for [`crate::Engine::open`].
#[derive(Clone)]
pub struct Options {
    /// The data directory (created if missing).
    pub dir: PathBuf,
    /// Segments are sealed once they reach this size (4 KiB ..= 2 GiB).
    pub segment_bytes: u64,
    /// Durability policy.
    pub fsync: Fsync,
    /// The largest value accepted (at most 512 MiB).
    pub max_value_bytes: usize,
    /// How often the background thread wakes to sync (for `EverySec`), write hint files
    /// and sweep expired keys.
    pub maintenance_interval: Duration,
    /// Most keys held (all namespaces); inserting past it evicts. `None` = unbounded.
    pub max_keys: Option<u64>,
    /// Most bytes of segment and hint files; past it the engine reclaims space first
    /// from garbage, then by evicting the oldest segment. Writes never fail for it; they
    /// wait while the background thread frees room. `None` = unbounded. At least three
    /// segments.
    pub max_disk_bytes: Option<u64>,
    /// The built-in eviction policy: in force unless `policy_factory` supplies one,
    /// and taking over if that one fails.
    pub eviction: PolicyKind,
    /// Builds a custom (e.g. WebAssembly) eviction policy to use instead of the
    /// built-in one.
    pub policy_factory: Option<PolicyFactory>,
    /// Asked about every live record that compaction copies.
    pub compaction_filter: Option<Arc<dyn CompactionFilter>>,
    /// A sealed segment whose garbage reaches this fraction is compacted even when
    /// there is room (0.0 ..= 1.0; 1.0 only when space is needed).
    pub compaction_garbage_ratio: f64,
    /// Bytes of recently and often read records kept in memory (the hot tier); 0 = off.
    pub hot_bytes: u64,
    /// Where files live; [`StdStorage`] unless a test injects faults.
    pub storage: Arc<dyn Storage>,
    /// Where time comes from.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("dir", &self.dir)
            .field("segment_bytes", &self.segment_bytes)
            .field("fsync", &self.fsync)
            .field("max_value_bytes", &self.max_value_bytes)
            .field("maintenance_interval", &self.maintenance_interval)
            .field("max_keys", &self.max_keys)
            .field("max_disk_bytes", &self.max_disk_bytes)
            .field("eviction", &self.eviction)
            .field("compaction_garbage_ratio", &self.compaction_garbage_ratio)
            .finish_non_exhaustive()
    }
}

/// Smallest and largest segment sizes: the index keeps offsets in 32 bits, and a
/// segment may overshoot its size by one record of up to 512 MiB.
pub const MIN_SEGMENT_BYTES: u64 = 4 << 10;
/// See [`MIN_SEGMENT_BYTES`].
pub const MAX_SEGMENT_BYTES: u64 = 2 << 30;

impl Options {
    /// Defaults for `dir`: 64 MiB segments, `fsync everysec`, 512 MiB values.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Options {
            dir: dir.into(),
            segment_bytes: 64 << 20,
            fsync: Fsync::EverySec,
            max_value_bytes: MAX_VALUE_LEN,
            maintenance_interval: Duration::from_millis(100),
            max_keys: None,
            max_disk_bytes: None,
            eviction: PolicyKind::default(),
            policy_factory: None,
            compaction_filter: None,
            compaction_garbage_ratio: 0.5,
            hot_bytes: DEFAULT_HOT_BYTES,
            storage: Arc::new(StdStorage),
            clock: Arc::new(SystemClock),
        }
    }

    /// Checks that the options are consistent (what [`crate::Engine::open`] checks
    /// first), so a caller can validate its configuration before opening.
    pub fn validate(&self) -> Result<()> {
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&self.segment_bytes) {
            return Err(Error::BadOption {
                field: "segment_bytes",
                reason: format!(
                    "{} is outside {MIN_SEGMENT_BYTES}..={MAX_SEGMENT_BYTES}",
                    self.segment_bytes
                ),
            });
        }
        if self.max_value_bytes == 0 || self.max_value_bytes > MAX_VALUE_LEN {
            return Err(Error::BadOption {
                field: "max_value_bytes",
                reason: format!("{} is outside 1..={MAX_VALUE_LEN}", self.max_value_bytes),
            });
        }
        if let Some(d) = self.max_disk_bytes
            && d < 3 * self.segment_bytes
        {
            return Err(Error::BadOption {
                field: "max_disk_bytes",
                reason: format!(
                    "{d} is less than three segments ({} bytes each)",
                    self.segment_bytes
                ),
            });
        }
        if self.max_keys == Some(0) {
            return Err(Error::BadOption {
                field: "max_keys",
                reason: "must be at least 1".into(),
            });
        }
        if !(0.0..=1.0).contains(&self.compaction_garbage_ratio) {
            return Err(Error::BadOption {
                field: "compaction_garbage_ratio",
                reason: format!("{} is outside 0.0..=1.0", self.compaction_garbage_ratio),
            });
        }
        if self.maintenance_interval.is_zero() {
            return Err(Error::BadOption {
                field: "maintenance_interval",
                reason: "must be greater than zero".into(),
            });
        }
        Ok(())
    }
}
