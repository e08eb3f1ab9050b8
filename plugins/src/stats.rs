//! Per-plugin counters, exported by the sidecar as Prometheus metrics.

use std::sync::atomic::{AtomicU64, Ordering};

/// What happened to one plugin's calls.
#[derive(Debug, Default)]
pub struct PluginStats {
    /// Calls made into the plugin.
    pub calls: AtomicU64,
    /// Total time spent in calls, in nanoseconds.
    pub call_nanos: AtomicU64,
    /// Calls that trapped (a panic, `unreachable`, an out-of-bounds access...).
    pub traps: AtomicU64,
    /// Calls stopped at their deadline.
    pub timeouts: AtomicU64,
    /// Calls stopped because the plugin wanted more memory than its limit.
    pub memory_refusals: AtomicU64,
    /// Calls answered with the wrong number of results.
    pub bad_answers: AtomicU64,
    /// Instances created (the first one, then one after each failure).
    pub instances: AtomicU64,
    /// Linear memory the plugin's live instances hold, in bytes.
    pub memory_bytes: AtomicU64,
}

impl PluginStats {
    pub(crate) fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Calls that failed in any way.
    pub fn failures(&self) -> u64 {
        [
            &self.traps,
            &self.timeouts,
            &self.memory_refusals,
            &self.bad_answers,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }
}
