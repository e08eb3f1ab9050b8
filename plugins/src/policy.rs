//! An eviction policy implemented by a WebAssembly component. When the plugin fails (a
//! trap, its deadline, its memory limit, or a wrong answer), the instance is dropped
//! and the policy reports itself failed: the engine replaces it with its built-in
//! policy, told of every key. Until then, a failed call evicts nothing and keeps
//! everything (the safe answers). A reload of the plugin brings a fresh instance.

use crate::bindings::policy::{
    EvictionPolicyPlugin, EvictionPolicyPluginPre, caskade::plugin::types::PluginError,
};
use crate::error::Error;
use crate::runtime::{HostState, Limits, Runtime, classify, deadline_ticks};
use crate::stats::PluginStats;
use caskade_engine::EvictionPolicy;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use wasmtime::Store;
use wasmtime::component::Component;

struct Live {
    store: Store<HostState>,
    plugin: EvictionPolicyPlugin,
}

/// An eviction policy plugin.
pub struct WasmPolicy {
    name: String,
    limits: Limits,
    live: Option<Live>,
    stats: Arc<PluginStats>,
    /// What the plugin answered `wants-keys` after `init`.
    wants_keys: bool,
}

impl WasmPolicy {
    /// Starts an instance of `component` with `settings`.
    pub fn new(
        runtime: &Runtime,
        name: &str,
        component: &Component,
        settings: &[(String, String)],
        limits: Limits,
        stats: Arc<PluginStats>,
    ) -> Result<WasmPolicy, Error> {
        let pre = runtime.prepare(name, component, EvictionPolicyPluginPre::new)?;
        let mut store = runtime.store(&limits, &stats);
        let init_err = |reason: String| Error::Init {
            name: name.to_string(),
            reason,
        };
        let plugin = pre
            .instantiate(&mut store)
            .map_err(|e| init_err(format!("{e:#}")))?;
        plugin
            .caskade_plugin_eviction_policy()
            .call_init(&mut store, &settings.to_vec())
            .map_err(|e| init_err(format!("{e:#}")))?
            .map_err(|e| {
                init_err(match e {
                    PluginError::InvalidSettings(s) => format!("invalid settings: {s}"),
                    PluginError::Failed(s) => s,
                })
            })?;
        let wants_keys = plugin
            .caskade_plugin_eviction_policy()
            .call_wants_keys(&mut store)
            .map_err(|e| init_err(format!("{e:#}")))?;
        Ok(WasmPolicy {
            name: name.to_string(),
            limits,
            live: Some(Live { store, plugin }),
            stats,
            wants_keys,
        })
    }

    /// The plugin's counters.
    pub fn stats(&self) -> &Arc<PluginStats> {
        &self.stats
    }

    /// Runs `f` on the live instance under a deadline; on failure, counts it, drops
    /// the instance, and returns `None` (the caller then asks the fallback).
    fn call<R>(
        &mut self,
        what: &str,
        f: impl FnOnce(&EvictionPolicyPlugin, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Option<R> {
        let live = self.live.as_mut()?;
        live.store.set_epoch_deadline(deadline_ticks(&self.limits));
        PluginStats::bump(&self.stats.calls);
        let started = Instant::now();
        let r = f(&live.plugin, &mut live.store);
        self.stats
            .call_nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                let why = classify(&e, &self.stats);
                tracing::error!(plugin = %self.name, call = what, error = %format!("{e:#}"), "eviction policy {why}");
                self.live = None;
                None
            }
        }
    }

    fn wrong_answer(&mut self, what: &str, got: usize, want: usize) {
        PluginStats::bump(&self.stats.bad_answers);
        tracing::error!(plugin = %self.name, call = what, got, want, "eviction policy answered with the wrong number of results");
        self.live = None;
    }
}

impl EvictionPolicy for WasmPolicy {
    fn name(&self) -> &str {
        &self.name
    }

    fn on_insert(&mut self, ids: &[u64]) {
        // Keys it did not ask for: ids alone.
        self.call("on-insert", |p, s| {
            p.caskade_plugin_eviction_policy()
                .call_on_insert(s, ids, &[], &[])
        });
    }

    fn on_insert_keys(&mut self, ids: &[u64], keys: &[&[u8]]) {
        let mut bytes = Vec::with_capacity(keys.iter().map(|k| k.len()).sum());
        let mut ends = Vec::with_capacity(keys.len());
        for k in keys {
            bytes.extend_from_slice(k);
            ends.push(bytes.len().min(u32::MAX as usize) as u32);
        }
        self.call("on-insert", |p, s| {
            p.caskade_plugin_eviction_policy()
                .call_on_insert(s, ids, &bytes, &ends)
        });
    }

    fn wants_keys(&self) -> bool {
        self.wants_keys
    }

    fn on_access(&mut self, ids: &[u64]) {
        self.call("on-access", |p, s| {
            p.caskade_plugin_eviction_policy().call_on_access(s, ids)
        });
    }

    fn on_remove(&mut self, ids: &[u64]) {
        self.call("on-remove", |p, s| {
            p.caskade_plugin_eviction_policy().call_on_remove(s, ids)
        });
    }

    fn victims(&mut self, n: usize, out: &mut Vec<u64>) {
        let asked = n.min(u32::MAX as usize) as u32;
        match self.call("victims", |p, s| {
            p.caskade_plugin_eviction_policy().call_victims(s, asked)
        }) {
            Some(v) if v.len() <= n => out.extend(v),
            Some(v) => self.wrong_answer("victims", v.len(), n),
            None => {}
        }
    }

    fn keep_on_reclaim(&mut self, ids: &[u64], out: &mut Vec<bool>) {
        match self.call("keep-on-reclaim", |p, s| {
            p.caskade_plugin_eviction_policy()
                .call_keep_on_reclaim(s, ids)
        }) {
            Some(v) if v.len() == ids.len() => out.extend(v),
            Some(v) => {
                self.wrong_answer("keep-on-reclaim", v.len(), ids.len());
                out.extend(ids.iter().map(|_| true));
            }
            None => out.extend(ids.iter().map(|_| true)),
        }
    }

    /// The instance's linear memory (guest state lives there).
    fn memory_bytes(&self) -> usize {
        self.stats.memory_bytes.load(Ordering::Relaxed) as usize
    }

    fn failed(&self) -> bool {
        self.live.is_none()
    }
}
