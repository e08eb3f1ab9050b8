//! An eviction policy implemented by a WebAssembly component. A built-in policy runs
//! beside it as a shadow, told of the same events, so that when the plugin fails (a
//! trap, its deadline, its memory limit, or a wrong answer) caskade switches to the
//! built-in policy at once, with its state intact. The failed instance is dropped; a
//! reload of the plugin brings a fresh one (seeded by the engine with every key).

use crate::bindings::policy::exports::caskade::plugin::eviction_policy::Inserted;
use crate::bindings::policy::{
    EvictionPolicyPlugin, EvictionPolicyPluginPre, caskade::plugin::types::PluginError,
};
use crate::error::Error;
use crate::runtime::{HostState, Limits, Runtime, classify, deadline_ticks};
use crate::stats::PluginStats;
use caskade_engine::{EvictionPolicy, PolicyKind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use wasmtime::Store;
use wasmtime::component::{Component, Linker};

struct Live {
    store: Store<HostState>,
    plugin: EvictionPolicyPlugin,
}

/// An eviction policy plugin with a built-in fallback.
pub struct WasmPolicy {
    name: String,
    limits: Limits,
    live: Option<Live>,
    fallback: Box<dyn EvictionPolicy>,
    stats: Arc<PluginStats>,
}

impl WasmPolicy {
    /// Starts an instance of `component` with `settings`; `fallback` is the built-in
    /// policy that shadows it.
    pub fn new(
        runtime: &Runtime,
        name: &str,
        component: &Component,
        settings: &[(String, String)],
        limits: Limits,
        fallback: PolicyKind,
        stats: Arc<PluginStats>,
    ) -> Result<WasmPolicy, Error> {
        let linker = Linker::<HostState>::new(runtime.engine());
        let pre = linker
            .instantiate_pre(component)
            .and_then(EvictionPolicyPluginPre::new)
            .map_err(|e| Error::Invalid {
                name: name.to_string(),
                reason: format!("{e:#}"),
            })?;
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
        Ok(WasmPolicy {
            name: name.to_string(),
            limits,
            live: Some(Live { store, plugin }),
            fallback: fallback.build(),
            stats,
        })
    }

    /// The plugin's counters.
    pub fn stats(&self) -> &Arc<PluginStats> {
        &self.stats
    }

    /// Whether the plugin failed and the built-in policy has taken over.
    pub fn fell_back(&self) -> bool {
        self.live.is_none()
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
                tracing::error!(plugin = %self.name, call = what, error = %format!("{e:#}"), "eviction policy {why}; the built-in policy takes over");
                self.live = None;
                None
            }
        }
    }

    fn wrong_answer(&mut self, what: &str, got: usize, want: usize) {
        PluginStats::bump(&self.stats.bad_answers);
        tracing::error!(plugin = %self.name, call = what, got, want, "eviction policy answered wrongly; the built-in policy takes over");
        self.live = None;
    }
}

impl EvictionPolicy for WasmPolicy {
    fn name(&self) -> &str {
        if self.live.is_some() {
            &self.name
        } else {
            self.fallback.name()
        }
    }

    fn on_insert(&mut self, ids: &[u64]) {
        self.on_insert_keys(ids, &vec![&[][..]; ids.len()]);
    }

    fn on_insert_keys(&mut self, ids: &[u64], keys: &[&[u8]]) {
        self.fallback.on_insert(ids);
        let batch: Vec<Inserted> = ids
            .iter()
            .zip(keys)
            .map(|(&id, k)| Inserted {
                id,
                key: k.to_vec(),
            })
            .collect();
        self.call("on-insert", |p, s| {
            p.caskade_plugin_eviction_policy().call_on_insert(s, &batch)
        });
    }

    fn wants_keys(&self) -> bool {
        true
    }

    fn on_access(&mut self, ids: &[u64]) {
        self.fallback.on_access(ids);
        self.call("on-access", |p, s| {
            p.caskade_plugin_eviction_policy().call_on_access(s, ids)
        });
    }

    fn on_remove(&mut self, ids: &[u64]) {
        self.fallback.on_remove(ids);
        self.call("on-remove", |p, s| {
            p.caskade_plugin_eviction_policy().call_on_remove(s, ids)
        });
    }

    fn victims(&mut self, n: usize, out: &mut Vec<u64>) {
        let asked = n.min(u32::MAX as usize) as u32;
        match self.call("victims", |p, s| {
            p.caskade_plugin_eviction_policy().call_victims(s, asked)
        }) {
            Some(v) if v.len() <= n => {
                self.fallback.on_remove(&v);
                out.extend(v);
            }
            Some(v) => {
                self.wrong_answer("victims", v.len(), n);
                self.fallback.victims(n, out);
            }
            None => self.fallback.victims(n, out),
        }
    }

    fn keep_on_reclaim(&mut self, ids: &[u64], out: &mut Vec<bool>) {
        match self.call("keep-on-reclaim", |p, s| {
            p.caskade_plugin_eviction_policy()
                .call_keep_on_reclaim(s, ids)
        }) {
            Some(v) if v.len() == ids.len() => {
                let dropped: Vec<u64> = ids
                    .iter()
                    .zip(&v)
                    .filter(|(_, keep)| !**keep)
                    .map(|(id, _)| *id)
                    .collect();
                self.fallback.on_remove(&dropped);
                out.extend(v);
            }
            Some(v) => {
                self.wrong_answer("keep-on-reclaim", v.len(), ids.len());
                self.fallback.keep_on_reclaim(ids, out);
            }
            None => self.fallback.keep_on_reclaim(ids, out),
        }
    }

    fn memory_bytes(&self) -> usize {
        self.fallback.memory_bytes()
    }
}
