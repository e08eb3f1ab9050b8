//! A compaction filter implemented by a WebAssembly component. Calls are serialised on
//! one instance; a call that traps, runs out its deadline, hits the memory limit or
//! answers with the wrong number of verdicts keeps every record of that batch (the
//! built-in behaviour), and the next call gets a fresh instance.

use crate::bindings::filter::CompactionFilterPluginPre;
use crate::bindings::filter::exports::caskade::plugin::compaction_filter::{
    RecordInfo, Verdict as WitVerdict,
};
use crate::bindings::filter::{CompactionFilterPlugin, caskade::plugin::types::PluginError};
use crate::error::Error;
use crate::runtime::{HostState, Limits, Runtime, classify, deadline_ticks};
use crate::stats::PluginStats;
use caskade_engine::{CompactionFilter, FilterRecord, Verdict};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::Store;
use wasmtime::component::Component;

struct Live {
    store: Store<HostState>,
    plugin: CompactionFilterPlugin,
}

/// A compaction filter plugin.
pub struct WasmFilter {
    name: String,
    runtime: Runtime,
    pre: CompactionFilterPluginPre<HostState>,
    settings: Vec<(String, String)>,
    limits: Limits,
    live: Mutex<Option<Live>>,
    stats: Arc<PluginStats>,
}

fn describe(e: PluginError) -> String {
    match e {
        PluginError::InvalidSettings(s) => format!("invalid settings: {s}"),
        PluginError::Failed(s) => s,
    }
}

impl WasmFilter {
    /// Prepares `component` and starts one instance (so bad settings fail here, at
    /// load time, rather than at the first compaction).
    pub fn new(
        runtime: &Runtime,
        name: &str,
        component: &Component,
        settings: Vec<(String, String)>,
        limits: Limits,
        stats: Arc<PluginStats>,
    ) -> Result<WasmFilter, Error> {
        let pre = runtime.prepare(name, component, CompactionFilterPluginPre::new)?;
        let f = WasmFilter {
            name: name.to_string(),
            runtime: runtime.clone(),
            pre,
            settings,
            limits,
            live: Mutex::new(None),
            stats,
        };
        let live = f.instantiate().map_err(|reason| Error::Init {
            name: name.to_string(),
            reason,
        })?;
        *f.live.lock() = Some(live);
        Ok(f)
    }

    fn instantiate(&self) -> Result<Live, String> {
        let mut store = self.runtime.store(&self.limits, &self.stats);
        let plugin = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| format!("{e:#}"))?;
        plugin
            .caskade_plugin_compaction_filter()
            .call_init(&mut store, &self.settings)
            .map_err(|e| format!("{e:#}"))?
            .map_err(describe)?;
        Ok(Live { store, plugin })
    }

    /// The plugin's counters.
    pub fn stats(&self) -> &Arc<PluginStats> {
        &self.stats
    }

    fn call(
        &self,
        live: &mut Live,
        records: &[RecordInfo],
        now_ms: u64,
    ) -> Result<Vec<WitVerdict>, wasmtime::Error> {
        live.store.set_epoch_deadline(deadline_ticks(&self.limits));
        live.plugin
            .caskade_plugin_compaction_filter()
            .call_filter(&mut live.store, records, now_ms)
    }
}

impl CompactionFilter for WasmFilter {
    fn filter(&self, now_ms: u64, records: &[FilterRecord<'_>], out: &mut Vec<Verdict>) {
        let infos: Vec<RecordInfo> = records
            .iter()
            .map(|r| RecordInfo {
                namespace: r.ns,
                key: r.key.to_vec(),
                value_len: r.value_len,
                expire_at_ms: r.expire_at_ms,
                meta: r.meta.to_vec(),
            })
            .collect();
        let mut guard = self.live.lock();
        let started = Instant::now();
        if guard.is_none() {
            match self.instantiate() {
                Ok(l) => *guard = Some(l),
                Err(e) => {
                    tracing::warn!(plugin = %self.name, error = %e, "cannot start the filter; keeping records");
                    out.extend(records.iter().map(|_| Verdict::Keep));
                    return;
                }
            }
        }
        let Some(live) = guard.as_mut() else {
            out.extend(records.iter().map(|_| Verdict::Keep));
            return;
        };
        PluginStats::bump(&self.stats.calls);
        let result = self.call(live, &infos, now_ms);
        self.stats.call_nanos.fetch_add(
            started.elapsed().as_nanos() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        match result {
            Ok(verdicts) if verdicts.len() == records.len() => {
                out.extend(verdicts.into_iter().map(|v| match v {
                    WitVerdict::Keep => Verdict::Keep,
                    WitVerdict::Remove => Verdict::Remove,
                    WitVerdict::SetExpiry(e) => Verdict::SetExpiry(e),
                }));
            }
            Ok(verdicts) => {
                PluginStats::bump(&self.stats.bad_answers);
                tracing::warn!(
                    plugin = %self.name,
                    got = verdicts.len(),
                    want = records.len(),
                    "filter answered with the wrong number of verdicts; keeping the batch"
                );
                *guard = None;
                out.extend(records.iter().map(|_| Verdict::Keep));
            }
            Err(e) => {
                let what = classify(&e, &self.stats);
                tracing::warn!(plugin = %self.name, error = %format!("{e:#}"), "filter {what}; keeping the batch and starting a fresh instance");
                *guard = None;
                out.extend(records.iter().map(|_| Verdict::Keep));
            }
        }
    }
}
