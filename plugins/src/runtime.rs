//! The shared runtime: one wasmtime engine with epoch interruption (a ticker thread
//! advances the epoch every millisecond, so every call can carry a deadline), an
//! optional on-disk cache of compiled code, and per-instance stores with a memory limit
//! and no imports at all (no filesystem, clock or network).

use crate::error::Error;
use crate::stats::PluginStats;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use std::time::Duration;
use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{Engine, ResourceLimiter, Store};

const TICK: Duration = Duration::from_millis(1);

/// Limits every call and instance of one plugin runs under.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest a single call may run.
    pub deadline: Duration,
    /// Most linear memory one instance may hold.
    pub memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_millis(50),
            memory_bytes: 64 << 20,
        }
    }
}

/// The wasmtime engine shared by all plugins.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
}

pub(crate) struct HostState {
    limiter: Limiter,
}

impl HasLimiter for HostState {
    fn limiter(&mut self) -> &mut Limiter {
        &mut self.limiter
    }
}

/// A plugin instance asked for more linear memory than its limit allows: the typed
/// error a call fails with, so failures are counted by what they are.
#[derive(Debug, thiserror::Error)]
#[error("memory limit reached: wanted {desired} bytes, the limit is {limit}")]
pub(crate) struct MemoryLimitReached {
    desired: usize,
    limit: usize,
}

/// Every store's resource limits: linear memory up to a cap (refused with
/// [`MemoryLimitReached`]), and a few instances, memories and tables.
pub(crate) struct Limiter {
    memory_bytes: usize,
    instances: usize,
    /// The linear memory this store's instances hold, also counted in `gauge`.
    held: usize,
    gauge: Option<Arc<PluginStats>>,
}

impl Drop for Limiter {
    fn drop(&mut self) {
        // The store, and its memories with it, is going.
        if let Some(g) = &self.gauge {
            g.memory_bytes
                .fetch_sub(self.held as u64, Ordering::Relaxed);
        }
    }
}

impl Limiter {
    /// Memory up to `memory_bytes`; up to `instances` instances (and as many tables,
    /// and four memories).
    pub fn new(memory_bytes: usize, instances: usize) -> Self {
        Limiter {
            memory_bytes,
            instances,
            held: 0,
            gauge: None,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            return Err(MemoryLimitReached {
                desired,
                limit: self.memory_bytes,
            }
            .into());
        }
        let grows = maximum.is_none_or(|m| desired <= m);
        if grows {
            let more = desired.saturating_sub(current);
            self.held += more;
            if let Some(g) = &self.gauge {
                g.memory_bytes.fetch_add(more as u64, Ordering::Relaxed);
            }
        }
        Ok(grows)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(maximum.is_none_or(|m| desired <= m))
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.instances
    }

    fn memories(&self) -> usize {
        4
    }
}

/// Store data that carries its [`Limiter`].
pub(crate) trait HasLimiter: Send + 'static {
    /// The store's limiter.
    fn limiter(&mut self) -> &mut Limiter;
}

impl Runtime {
    /// A runtime; compiled code is cached in `cache_dir` if given, so restarts do not
    /// recompile unchanged plugins.
    pub fn new(cache_dir: Option<&Path>) -> Result<Runtime, Error> {
        let mut cfg = wasmtime::Config::new();
        cfg.wasm_component_model(true);
        cfg.epoch_interruption(true);
        if let Some(dir) = cache_dir {
            // wasmtime's cache wants an absolute path; callers' may be relative.
            let dir = std::path::absolute(dir)
                .map_err(|e| Error::Runtime(format!("cache directory {}: {e}", dir.display())))?;
            let mut cc = wasmtime::CacheConfig::new();
            cc.with_directory(dir);
            let cache = wasmtime::Cache::new(cc).map_err(|e| Error::Runtime(format!("{e:#}")))?;
            cfg.cache(Some(cache));
        }
        let engine = Engine::new(&cfg).map_err(|e| Error::Runtime(format!("{e:#}")))?;
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("caskade-wasm-epoch".into())
            .spawn(move || {
                // Holds only a weak reference: the thread ends with the engine.
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(TICK);
                }
            })
            .map_err(|e| Error::Runtime(format!("epoch ticker: {e}")))?;
        Ok(Runtime { engine })
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Reads and compiles a plugin file. A core module (what `cargo build --target
    /// wasm32-unknown-unknown` produces) is turned into a component first, using the
    /// WIT world it carries.
    pub fn load(&self, path: &Path) -> Result<Component, Error> {
        let bytes = std::fs::read(path).map_err(|error| Error::Read {
            path: path.to_path_buf(),
            error,
        })?;
        self.compile(&path.display().to_string(), &bytes)
    }

    /// Compiles plugin bytes (a component, or a core module carrying its WIT world).
    pub fn compile(&self, name: &str, bytes: &[u8]) -> Result<Component, Error> {
        let invalid = |reason: String| Error::Invalid {
            name: name.to_string(),
            reason,
        };
        if !bytes.starts_with(b"\0asm") {
            // Said without quoting the file: a path pointed at the wrong file must not
            // print its first bytes.
            return Err(invalid(format!(
                "not a WebAssembly file ({} bytes, without the \\0asm header)",
                bytes.len()
            )));
        }
        let component_bytes;
        let bytes = if wasmparser_is_core_module(bytes) {
            component_bytes = wit_component::ComponentEncoder::default()
                .module(bytes)
                .and_then(|e| e.validate(true).encode())
                .map_err(|e| invalid(format!("{e:#}")))?;
            &component_bytes[..]
        } else {
            bytes
        };
        Component::new(&self.engine, bytes).map_err(|e| invalid(format!("{e:#}")))
    }

    /// Links `component` against nothing (plugins get no imports) and checks it against
    /// a world with `typed` (the world's generated `...Pre::new`).
    pub(crate) fn prepare<P>(
        &self,
        name: &str,
        component: &Component,
        typed: impl FnOnce(InstancePre<HostState>) -> wasmtime::Result<P>,
    ) -> Result<P, Error> {
        Linker::<HostState>::new(&self.engine)
            .instantiate_pre(component)
            .and_then(typed)
            .map_err(|e| Error::Invalid {
                name: name.to_string(),
                reason: format!("{e:#}"),
            })
    }

    /// A new store for one instance: the one place stores are built, with their
    /// limiter in force and counted as an instance. The caller sets the deadline.
    pub(crate) fn new_store<T: HasLimiter>(
        &self,
        mut data: T,
        stats: &Arc<PluginStats>,
    ) -> Store<T> {
        data.limiter().gauge = Some(stats.clone());
        let mut store = Store::new(&self.engine, data);
        store.limiter(|d| d.limiter());
        PluginStats::bump(&stats.instances);
        store
    }

    /// A store for a filter or policy instance (no imports), with its call deadline.
    pub(crate) fn store(&self, limits: &Limits, stats: &Arc<PluginStats>) -> Store<HostState> {
        let data = HostState {
            limiter: Limiter::new(limits.memory_bytes, 8),
        };
        let mut store = self.new_store(data, stats);
        store.set_epoch_deadline(deadline_ticks(limits));
        store
    }
}

pub(crate) fn deadline_ticks(limits: &Limits) -> u64 {
    (limits.deadline.as_millis() as u64 / TICK.as_millis() as u64).max(1) + 1
}

/// Core modules have version 1 in their header; components have a different layer.
fn wasmparser_is_core_module(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && &bytes[0..4] == b"\0asm" && bytes[4..8] == [1, 0, 0, 0]
}

/// How a failed call failed, for the counters.
pub(crate) fn classify(e: &wasmtime::Error, stats: &PluginStats) -> &'static str {
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => {
            PluginStats::bump(&stats.timeouts);
            "deadline exceeded"
        }
        _ if e.downcast_ref::<MemoryLimitReached>().is_some() => {
            PluginStats::bump(&stats.memory_refusals);
            "memory limit reached"
        }
        _ => {
            PluginStats::bump(&stats.traps);
            "trapped"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_wasm_is_refused_without_quoting_it() {
        let rt = Runtime::new(None).expect("runtime");
        let e = rt
            .compile("x", b"root:x:0:0:secret\n")
            .expect_err("not wasm")
            .to_string();
        assert!(
            e.contains("not a WebAssembly file") && !e.contains("root"),
            "{e}"
        );
    }
}
