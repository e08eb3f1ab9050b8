//! Loads the configured WebAssembly plugins into the engine and keeps them current: a
//! plugin file replaced on disk (checked every second) or a SIGHUP reloads it. A new
//! filter is swapped in atomically (compactions in flight finish their batch on the old
//! one); a new policy is seeded with every key and then swapped in. A policy plugin
//! that fails is replaced by the engine with the built-in `storage.eviction_policy`. A plugin that fails
//! to load at start is a startup error; one that fails to reload leaves the old one in
//! place.

use crate::config::{PluginConfig, PluginsConfig};
use caskade_engine::{Engine, EvictionPolicy};
use caskade_plugins::{Limits, PluginStats, Runtime, WasmFilter, WasmPolicy};
use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// The plugin set of a running server.
pub struct Plugins {
    runtime: Runtime,
    filter: Option<PluginConfig>,
    policy: Option<PluginConfig>,
    watch: bool,
    /// Counters of the filter and the policy (kept across reloads).
    pub filter_stats: Arc<PluginStats>,
    /// See `filter_stats`.
    pub policy_stats: Arc<PluginStats>,
    /// Successful reloads.
    pub reloads: AtomicU64,
    /// Reloads that failed (the old plugin stayed).
    pub reload_failures: AtomicU64,
    seen: Mutex<[Option<SystemTime>; 2]>,
}

fn limits(p: &PluginConfig) -> Limits {
    Limits {
        deadline: Duration::from_millis(p.deadline_ms),
        memory_bytes: p.memory_bytes as usize,
    }
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl Plugins {
    /// `None` when no plugin is configured.
    pub fn new(cfg: &PluginsConfig, data_dir: &Path) -> anyhow::Result<Option<Plugins>> {
        if cfg.compaction_filter.is_none() && cfg.eviction_policy.is_none() {
            return Ok(None);
        }
        let cache: PathBuf = cfg
            .cache_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("plugin-cache"));
        std::fs::create_dir_all(&cache)
            .map_err(|e| anyhow::anyhow!("plugin cache directory {}: {e}", cache.display()))?;
        let p = Plugins {
            runtime: Runtime::new(Some(&cache))?,
            filter: cfg.compaction_filter.clone(),
            policy: cfg.eviction_policy.clone(),
            watch: cfg.watch.unwrap_or(true),
            filter_stats: Arc::default(),
            policy_stats: Arc::default(),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
            seen: Mutex::new([None, None]),
        };
        *p.seen.lock() = p.mtimes();
        Ok(Some(p))
    }

    fn mtimes(&self) -> [Option<SystemTime>; 2] {
        [
            self.filter.as_ref().and_then(|f| mtime(&f.path)),
            self.policy.as_ref().and_then(|f| mtime(&f.path)),
        ]
    }

    /// The compaction filter, freshly loaded from its file.
    pub fn load_filter(&self) -> anyhow::Result<Option<Arc<WasmFilter>>> {
        let Some(f) = &self.filter else {
            return Ok(None);
        };
        let component = self.runtime.load(&f.path)?;
        let name = f.path.display().to_string();
        let filter = WasmFilter::new(
            &self.runtime,
            &name,
            &component,
            f.settings.clone(),
            limits(f),
            self.filter_stats.clone(),
        )?;
        Ok(Some(Arc::new(filter)))
    }

    /// The eviction policy, freshly loaded from its file.
    pub fn load_policy(&self) -> anyhow::Result<Option<Box<dyn EvictionPolicy>>> {
        let Some(p) = &self.policy else {
            return Ok(None);
        };
        let component = self.runtime.load(&p.path)?;
        let name = p.path.file_stem().map_or_else(
            || p.path.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        );
        let policy = WasmPolicy::new(
            &self.runtime,
            &name,
            &component,
            &p.settings,
            limits(p),
            self.policy_stats.clone(),
        )?;
        Ok(Some(Box::new(policy)))
    }

    /// Reloads the chosen plugins (`[filter, policy]`) into `engine`; on error the old
    /// plugins stay. A policy reload re-seeds the new policy with every key, so a
    /// changed filter file does not reload the policy.
    pub fn reload(&self, engine: &Engine, which: [bool; 2]) {
        let result = (|| -> anyhow::Result<()> {
            // Load both before installing either, so a bad file changes nothing.
            let filter = if which[0] { self.load_filter()? } else { None };
            let policy = if which[1] { self.load_policy()? } else { None };
            if let Some(f) = filter {
                engine.set_compaction_filter(Some(f));
            }
            if let Some(p) = policy {
                engine.replace_policy(p);
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                self.reloads.fetch_add(1, Ordering::Relaxed);
                tracing::info!("plugins reloaded");
            }
            Err(e) => {
                self.reload_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %format!("{e:#}"), "plugin reload failed; the running plugins stay");
            }
        }
    }

    /// Which plugin files (`[filter, policy]`) changed since the last look.
    fn changed(&self) -> [bool; 2] {
        let now = self.mtimes();
        let mut seen = self.seen.lock();
        let changed = [seen[0] != now[0], seen[1] != now[1]];
        *seen = now;
        changed
    }

    /// Reloads on SIGHUP, and on file changes if watching; runs until the process ends.
    pub async fn watch(self: Arc<Self>, shared: Arc<crate::state::Shared>) {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "no SIGHUP handler; plugin reload by signal is off");
                None
            }
        };
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let by_signal = tokio::select! {
                _ = tick.tick() => false,
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
            };
            // A file being copied in place changes twice in quick succession; a reload of
            // a half-written file fails and the next tick retries.
            let which = if by_signal {
                [true, true]
            } else if self.watch {
                self.changed()
            } else {
                [false, false]
            };
            if which.contains(&true) {
                let (me, sh) = (self.clone(), shared.clone());
                let _ = tokio::task::spawn_blocking(move || me.reload(&sh.engine, which)).await;
            }
        }
    }
}
