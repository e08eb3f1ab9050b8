//! Loads the configured WebAssembly plugins (into the engine, or into read-through
//! routes) and keeps them current: a plugin file replaced on disk (checked every second)
//! or a SIGHUP reloads it. A new filter is swapped in atomically (compactions in flight
//! finish their batch on the old one); a new policy is seeded with every key and then
//! swapped in; a new fetcher takes the next fetches (those in flight finish on the old
//! one). A policy plugin that fails is replaced by the engine with the built-in
//! `storage.eviction_policy`. A plugin that fails to load at start is a startup error;
//! one that fails to reload leaves the old one in place.

use crate::config::{PluginConfig, PluginsConfig, RouteConfig};
use crate::databases::Databases;
use crate::origin::ReadThrough;
use crate::store::Store;
use anyhow::Context;
use caskade_engine::{CompactionFilter, EvictionPolicy, FilterRecord, Verdict};
use caskade_plugins::{
    Component, FetcherOptions, HostRule, Limits, PluginStats, Runtime, WasmFetcher, WasmFilter,
    WasmPolicy,
};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// One plugin a server loads, by what it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    /// `plugins.compaction_filter`.
    Filter,
    /// `plugins.eviction_policy`.
    Policy,
    /// The fetcher of `read_through.routes[i]`.
    Fetcher(usize),
}

impl Slot {
    /// The configuration field that names the slot's file.
    pub fn field(self) -> String {
        match self {
            Slot::Filter => "plugins.compaction_filter".into(),
            Slot::Policy => "plugins.eviction_policy".into(),
            Slot::Fetcher(i) => format!("read_through.routes[{i}].fetcher"),
        }
    }

    /// The slot's field name in INFO plugins.
    pub fn info_name(self) -> String {
        match self {
            Slot::Filter => "compaction_filter".into(),
            Slot::Policy => "eviction_policy".into(),
            Slot::Fetcher(i) => format!("route{i}_fetcher"),
        }
    }

    /// What kind of plugin the slot holds.
    pub fn kind(self) -> &'static str {
        match self {
            Slot::Filter => "compaction-filter",
            Slot::Policy => "eviction-policy",
            Slot::Fetcher(_) => "origin-fetcher",
        }
    }
}

/// A plugin that loaded: for the log line, INFO plugins and `--check-config`.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Which configuration entry it is.
    pub slot: Slot,
    /// Its file.
    pub path: PathBuf,
    /// The file's size.
    pub bytes: u64,
    /// How long compiling it took (a compilation cache hit makes this short).
    pub compile: Duration,
}

impl Loaded {
    /// One line: `plugins.eviction_policy: prefix_priority.wasm (eviction-policy,
    /// 34.1 KiB, compiled in 120 ms)`.
    pub fn describe(&self) -> String {
        format!(
            "{}: {} ({}, {:.1} KiB, compiled in {} ms)",
            self.slot.field(),
            self.path.display(),
            self.slot.kind(),
            self.bytes as f64 / 1024.0,
            self.compile.as_millis()
        )
    }
}

/// The plugin set of a running server.
pub struct Plugins {
    runtime: Runtime,
    filter: Option<PluginConfig>,
    policy: Option<PluginConfig>,
    routes: Vec<RouteConfig>,
    watch: bool,
    /// Counters of the filter and the policy (kept across reloads).
    pub filter_stats: Arc<PluginStats>,
    /// See `filter_stats`.
    pub policy_stats: Arc<PluginStats>,
    /// Counters of each route's fetcher, in configuration order.
    fetcher_stats: Vec<Arc<PluginStats>>,
    /// Successful reloads.
    pub reloads: AtomicU64,
    /// Reloads that failed (the old plugin stayed).
    pub reload_failures: AtomicU64,
    /// Modification time of each slot's file when last looked at.
    seen: Mutex<HashMap<Slot, Option<SystemTime>>>,
    /// What each slot last loaded.
    loaded: Mutex<HashMap<Slot, Loaded>>,
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

/// A compaction filter shown each record's database rather than the engine namespace
/// that holds it (the two differ after SWAPDB; the WIT promises the database).
struct ByDatabase<F> {
    inner: F,
    databases: Arc<Databases>,
}

impl<F: CompactionFilter> CompactionFilter for ByDatabase<F> {
    fn filter(&self, now_ms: u64, records: &[FilterRecord<'_>], out: &mut Vec<Verdict>) {
        let shown: Vec<FilterRecord<'_>> = records
            .iter()
            .map(|r| FilterRecord {
                ns: self.databases.logical(r.ns),
                ..*r
            })
            .collect();
        self.inner.filter(now_ms, &shown, out);
    }
}

impl Plugins {
    /// `None` when no plugin (and no read-through route) is configured.
    pub fn new(
        cfg: &PluginsConfig,
        routes: &[RouteConfig],
        data_dir: &Path,
    ) -> anyhow::Result<Option<Plugins>> {
        if cfg.compaction_filter.is_none() && cfg.eviction_policy.is_none() && routes.is_empty() {
            return Ok(None);
        }
        let cache: PathBuf = cfg
            .cache_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("plugin-cache"));
        std::fs::create_dir_all(&cache)
            .map_err(|e| anyhow::anyhow!("plugin cache directory {}: {e}", cache.display()))?;
        Plugins::with_runtime(cfg, routes, Runtime::new(Some(&cache))?).map(Some)
    }

    /// Loads every configured plugin as a server would (compiled, instantiated and
    /// initialised with its settings), without touching the data or cache directory:
    /// what loaded, or an error naming the first entry that did not.
    pub async fn check(cfg: &PluginsConfig, routes: &[RouteConfig]) -> anyhow::Result<Vec<Loaded>> {
        let p = Plugins::with_runtime(cfg, routes, Runtime::new(None)?)?;
        p.load_filter(&Arc::new(Databases::default()))?;
        p.load_policy()?;
        p.load_fetchers(&p.all_routes()).await?;
        Ok(p.loaded())
    }

    fn with_runtime(
        cfg: &PluginsConfig,
        routes: &[RouteConfig],
        runtime: Runtime,
    ) -> anyhow::Result<Plugins> {
        let p = Plugins {
            runtime,
            filter: cfg.compaction_filter.clone(),
            policy: cfg.eviction_policy.clone(),
            routes: routes.to_vec(),
            watch: cfg.watch.unwrap_or(true),
            filter_stats: Arc::default(),
            policy_stats: Arc::default(),
            fetcher_stats: routes.iter().map(|_| Arc::default()).collect(),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
            seen: Mutex::new(HashMap::new()),
            loaded: Mutex::new(HashMap::new()),
        };
        *p.seen.lock() = p.mtimes();
        Ok(p)
    }

    /// Compiles `slot`'s file, timing it.
    fn compile(&self, slot: Slot, path: &Path) -> anyhow::Result<(Component, Loaded)> {
        let started = Instant::now();
        let component = self.runtime.load(path)?;
        let loaded = Loaded {
            slot,
            path: path.to_path_buf(),
            bytes: std::fs::metadata(path).map_or(0, |m| m.len()),
            compile: started.elapsed(),
        };
        Ok((component, loaded))
    }

    /// Records and logs a plugin that is now in use.
    fn note_loaded(&self, l: Loaded) {
        tracing::info!(
            plugin = %l.path.display(),
            field = %l.slot.field(),
            kind = l.slot.kind(),
            bytes = l.bytes,
            compile_ms = l.compile.as_millis() as u64,
            "plugin loaded"
        );
        self.loaded.lock().insert(l.slot, l);
    }

    /// The counters of `slot`'s plugin.
    pub fn stats(&self, slot: Slot) -> Option<&PluginStats> {
        match slot {
            Slot::Filter => Some(&self.filter_stats),
            Slot::Policy => Some(&self.policy_stats),
            Slot::Fetcher(i) => self.fetcher_stats.get(i).map(|s| &**s),
        }
    }

    /// What each configured slot last loaded, in configuration order.
    pub fn loaded(&self) -> Vec<Loaded> {
        let loaded = self.loaded.lock();
        self.slots()
            .into_iter()
            .filter_map(|(slot, _)| loaded.get(&slot).cloned())
            .collect()
    }

    /// Every configured slot and its file.
    fn slots(&self) -> Vec<(Slot, &Path)> {
        let mut v = Vec::new();
        if let Some(f) = &self.filter {
            v.push((Slot::Filter, f.path.as_path()));
        }
        if let Some(p) = &self.policy {
            v.push((Slot::Policy, p.path.as_path()));
        }
        v.extend(
            self.routes
                .iter()
                .enumerate()
                .map(|(i, r)| (Slot::Fetcher(i), r.fetcher.as_path())),
        );
        v
    }

    fn mtimes(&self) -> HashMap<Slot, Option<SystemTime>> {
        self.slots()
            .into_iter()
            .map(|(slot, path)| (slot, mtime(path)))
            .collect()
    }

    /// Linear memory every live plugin instance holds (outside the allocator: wasmtime
    /// maps it), for INFO memory.
    pub fn memory_bytes(&self) -> u64 {
        [&self.filter_stats, &self.policy_stats]
            .into_iter()
            .chain(self.fetcher_stats.iter())
            .map(|s| s.memory_bytes.load(Ordering::Relaxed))
            .sum()
    }

    /// Every route's index, for loading all fetchers.
    pub fn all_routes(&self) -> Vec<usize> {
        (0..self.routes.len()).collect()
    }

    /// The fetchers of routes `which` (indexes into the configuration), freshly loaded
    /// from their files, counting into the routes' counters; `None` for the others. A
    /// file several routes share is compiled once.
    pub async fn load_fetchers(&self, which: &[usize]) -> anyhow::Result<Vec<Option<WasmFetcher>>> {
        let mut compiled: HashMap<&Path, (Component, Loaded)> = HashMap::new();
        let mut out = Vec::with_capacity(self.routes.len());
        let mut loaded = Vec::new();
        for (i, r) in self.routes.iter().enumerate() {
            if !which.contains(&i) {
                out.push(None);
                continue;
            }
            let what = || format!("read_through.routes[{i}] (prefix '{}')", r.prefix);
            let (component, mut info) = match compiled.get(r.fetcher.as_path()) {
                Some(c) => c.clone(),
                None => {
                    let c = self
                        .compile(Slot::Fetcher(i), &r.fetcher)
                        .with_context(what)?;
                    compiled.insert(&r.fetcher, c.clone());
                    c
                }
            };
            info.slot = Slot::Fetcher(i);
            let allowed_hosts = r
                .allowed_hosts
                .iter()
                .map(|h| HostRule::parse(h))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow::anyhow!(e))
                .with_context(what)?;
            let opts = FetcherOptions {
                settings: r.settings.clone(),
                allowed_hosts,
                timeout: Duration::from_millis(r.timeout),
                memory_bytes: r.memory_bytes as usize,
                max_concurrent: r.max_concurrent_fetches,
            };
            let name = r.fetcher.display().to_string();
            let stats = self.fetcher_stats[i].clone();
            let f = WasmFetcher::new(&self.runtime, &name, &component, opts, stats)
                .await
                .with_context(what)?;
            out.push(Some(f));
            loaded.push(info);
        }
        // Noted once all loaded: a reload that fails midway changes nothing.
        for l in loaded {
            self.note_loaded(l);
        }
        Ok(out)
    }

    /// Reloads the fetchers of routes `which` into `rt`; on error the old fetchers stay.
    pub async fn reload_fetchers(&self, rt: &ReadThrough, which: &[usize]) {
        match self.load_fetchers(which).await {
            Ok(loaded) => {
                for (cfg, f) in self.routes.iter().zip(loaded) {
                    let Some(f) = f else { continue };
                    if let Some(route) = rt.routes().iter().find(|r| r.cfg.prefix == cfg.prefix) {
                        route.set_fetcher(f);
                    }
                }
                self.reloads.fetch_add(1, Ordering::Relaxed);
                tracing::info!("fetcher plugins reloaded");
            }
            Err(e) => {
                self.reload_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %format!("{e:#}"), "fetcher plugin reload failed; the running fetchers stay");
            }
        }
    }

    /// The compaction filter, freshly loaded from its file, shown each record's
    /// database as `databases` maps it.
    pub fn load_filter(
        &self,
        databases: &Arc<Databases>,
    ) -> anyhow::Result<Option<Arc<dyn CompactionFilter>>> {
        let Some(f) = &self.filter else {
            return Ok(None);
        };
        let field = || Slot::Filter.field();
        let (component, info) = self.compile(Slot::Filter, &f.path).with_context(field)?;
        let name = f.path.display().to_string();
        let filter = WasmFilter::new(
            &self.runtime,
            &name,
            &component,
            f.settings.clone(),
            limits(f),
            self.filter_stats.clone(),
        )
        .with_context(field)?;
        self.note_loaded(info);
        Ok(Some(Arc::new(ByDatabase {
            inner: filter,
            databases: databases.clone(),
        })))
    }

    /// The eviction policy, freshly loaded from its file.
    pub fn load_policy(&self) -> anyhow::Result<Option<Box<dyn EvictionPolicy>>> {
        let Some(p) = &self.policy else {
            return Ok(None);
        };
        let field = || Slot::Policy.field();
        let (component, info) = self.compile(Slot::Policy, &p.path).with_context(field)?;
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
        )
        .with_context(field)?;
        self.note_loaded(info);
        Ok(Some(Box::new(policy)))
    }

    /// Reloads the engine's plugins among `which` (the filter, the policy); on error
    /// the old plugins stay. A policy reload re-seeds the new policy with every key, so
    /// a changed filter file does not reload the policy.
    pub fn reload(&self, store: &Store, which: &[Slot]) {
        let engine = &store.engine;
        let result = (|| -> anyhow::Result<()> {
            // Load both before installing either, so a bad file changes nothing.
            let filter = if which.contains(&Slot::Filter) {
                self.load_filter(&store.databases)?
            } else {
                None
            };
            let policy = if which.contains(&Slot::Policy) {
                self.load_policy()?
            } else {
                None
            };
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

    /// The slots whose files changed since the last look.
    fn changed(&self) -> Vec<Slot> {
        let now = self.mtimes();
        let mut seen = self.seen.lock();
        let changed = now
            .iter()
            .filter(|(slot, t)| seen.get(*slot) != Some(*t))
            .map(|(slot, _)| *slot)
            .collect();
        *seen = now;
        changed
    }

    /// Reloads on SIGHUP, and on file changes if watching; runs until the process ends.
    pub async fn watch(
        self: Arc<Self>,
        store: Arc<crate::store::Store>,
        read_through: Option<Arc<ReadThrough>>,
    ) {
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
            let which: Vec<Slot> = if by_signal {
                // Refresh the recorded times too, so the next tick does not reload again.
                let _ = self.changed();
                self.slots().into_iter().map(|(slot, _)| slot).collect()
            } else if self.watch {
                self.changed()
            } else {
                Vec::new()
            };
            if which.contains(&Slot::Filter) || which.contains(&Slot::Policy) {
                let (me, st, w) = (self.clone(), store.clone(), which.clone());
                let _ = tokio::task::spawn_blocking(move || me.reload(&st, &w)).await;
            }
            let routes: Vec<usize> = which
                .iter()
                .filter_map(|s| match s {
                    Slot::Fetcher(i) => Some(*i),
                    Slot::Filter | Slot::Policy => None,
                })
                .collect();
            if !routes.is_empty()
                && let Some(rt) = &read_through
            {
                self.reload_fetchers(rt, &routes).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the namespaces it is shown and keeps everything.
    struct Seen(Mutex<Vec<u8>>);

    impl CompactionFilter for Seen {
        fn filter(&self, _now: u64, records: &[FilterRecord<'_>], out: &mut Vec<Verdict>) {
            self.0.lock().extend(records.iter().map(|r| r.ns));
            out.extend(records.iter().map(|_| Verdict::Keep));
        }
    }

    #[test]
    fn a_compaction_filter_is_shown_databases_not_namespaces() {
        let dbs = Arc::new(Databases::default());
        dbs.swap(0, 5).expect("swap");
        let f = ByDatabase {
            inner: Seen(Mutex::new(Vec::new())),
            databases: dbs.clone(),
        };
        let rec = |ns| FilterRecord {
            ns,
            key: b"k",
            value_len: 1,
            expire_at_ms: None,
            meta: b"",
        };
        let mut out = Vec::new();
        f.filter(
            0,
            &[rec(dbs.physical(0)), rec(dbs.physical(5)), rec(2)],
            &mut out,
        );
        assert_eq!(*f.inner.0.lock(), [0, 5, 2]);
        assert_eq!(out, [Verdict::Keep; 3]);
    }
}
