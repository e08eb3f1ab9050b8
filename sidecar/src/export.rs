//! What a Prometheus scrape shows of the server's state: before `/metrics` renders,
//! the engine's, the clients', the plugins' and read-through's figures are copied into
//! the recorder's gauges and counters.

use crate::state::Shared;
use caskade_plugins::PluginStats;
use metrics::{Label, counter, gauge};
use std::sync::atomic::Ordering;

/// Brings the server's and the engine's figures up to date in the recorder.
pub fn export(s: &Shared) {
    let st = s.store.engine.stats();
    gauge!("caskade_connected_clients").set(s.client_count() as f64);
    counter!("caskade_connections_total").absolute(s.stats.connections.load(Ordering::Relaxed));
    counter!("caskade_rejected_connections_total")
        .absolute(s.stats.rejected.load(Ordering::Relaxed));
    counter!("caskade_keyspace_hits_total").absolute(st.hits);
    counter!("caskade_keyspace_misses_total").absolute(st.misses);
    counter!("caskade_expired_keys_total").absolute(st.expired_keys);
    counter!("caskade_engine_bytes_written_total").absolute(st.bytes_written);
    counter!("caskade_engine_syncs_total").absolute(st.syncs);
    counter!("caskade_engine_corrupt_records_total").absolute(st.corrupt_records);
    counter!("caskade_evictions_total", "reason" => "max_keys").absolute(st.evictions_max_keys);
    counter!("caskade_evictions_total", "reason" => "disk").absolute(st.evictions_disk);
    counter!("caskade_evictions_total", "reason" => "filter").absolute(st.filter_removals);
    counter!("caskade_compactions_total", "kind" => "compact").absolute(st.compactions);
    counter!("caskade_compactions_total", "kind" => "reclaim").absolute(st.reclaims);
    counter!("caskade_engine_bytes_rewritten_total").absolute(st.bytes_rewritten);
    gauge!("caskade_engine_write_amplification").set(st.write_amplification);
    gauge!("caskade_engine_live_bytes").set(st.live_bytes as f64);
    gauge!("caskade_engine_keys").set(st.keys as f64);
    let hot = &st.hot;
    gauge!("caskade_hot_bytes").set(hot.bytes as f64);
    gauge!("caskade_hot_max_bytes").set(hot.max_bytes as f64);
    gauge!("caskade_hot_entries").set(hot.entries as f64);
    counter!("caskade_hot_reads_total", "result" => "hit").absolute(hot.hits);
    counter!("caskade_hot_reads_total", "result" => "miss").absolute(hot.misses);
    counter!("caskade_hot_admissions_total").absolute(hot.admissions);
    counter!("caskade_hot_rejections_total").absolute(hot.rejections);
    counter!("caskade_hot_evictions_total").absolute(hot.evictions);
    // Records read with io_uring because they were in neither the hot tier nor the
    // page cache (server.io hybrid or uring).
    counter!("caskade_uring_reads_total").absolute(s.stats.uring_reads.load(Ordering::Relaxed));
    if let Some(p) = &s.plugins {
        plugin_counters(
            vec![Label::new("plugin", "compaction_filter")],
            &p.filter_stats,
        );
        plugin_counters(
            vec![Label::new("plugin", "eviction_policy")],
            &p.policy_stats,
        );
        counter!("caskade_plugin_reloads_total", "result" => "ok")
            .absolute(p.reloads.load(Ordering::Relaxed));
        counter!("caskade_plugin_reloads_total", "result" => "failed")
            .absolute(p.reload_failures.load(Ordering::Relaxed));
    }
    if let Some(rt) = &s.read_through {
        gauge!("caskade_origin_fetches_in_flight").set(rt.in_flight() as f64);
        for r in rt.routes() {
            let route = r.cfg.prefix.clone();
            gauge!("caskade_origin_negative_entries", "route" => route.clone())
                .set(r.negative.lock().len() as f64);
            plugin_counters(
                vec![
                    Label::new("plugin", "origin_fetcher"),
                    Label::new("route", route),
                ],
                &r.plugin_stats,
            );
        }
    }
    gauge!("caskade_engine_writes_refused").set(if st.write_error.is_some() { 1.0 } else { 0.0 });
    gauge!("caskade_engine_segments").set(st.segments as f64);
    gauge!("caskade_engine_disk_bytes").set(st.disk_bytes as f64);
    gauge!("caskade_engine_garbage_bytes").set(st.garbage_bytes as f64);
    gauge!("caskade_engine_index_bytes").set(st.index_bytes as f64);
}

/// One plugin's call counters, under `labels`.
fn plugin_counters(labels: Vec<Label>, ps: &PluginStats) {
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    counter!("caskade_plugin_calls_total", labels.clone()).absolute(get(&ps.calls));
    counter!("caskade_plugin_call_microseconds_total", labels.clone())
        .absolute(get(&ps.call_nanos) / 1_000);
    counter!("caskade_plugin_instances_total", labels.clone()).absolute(get(&ps.instances));
    for (reason, c) in [
        ("trap", &ps.traps),
        ("timeout", &ps.timeouts),
        ("memory", &ps.memory_refusals),
        ("bad_answer", &ps.bad_answers),
    ] {
        let mut l = labels.clone();
        l.push(Label::new("reason", reason));
        counter!("caskade_plugin_failures_total", l).absolute(get(c));
    }
}
