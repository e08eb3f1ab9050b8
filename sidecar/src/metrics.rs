//! Prometheus metrics: the recorder, and per-command counters and latency histograms
//! (handles registered once at start, so the hot path does no label lookups). Server
//! and engine figures are brought up to date before a scrape by `export`.

use metrics::{Counter, Histogram, counter, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets in seconds: 10 µs to 1 s.
const BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0,
];

/// Origin fetch buckets in seconds: 0.5 ms to 30 s.
const FETCH_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The installed recorder and the per-command handles.
pub struct Metrics {
    handle: PrometheusHandle,
    per_command: Vec<(Counter, Histogram)>,
}

impl Metrics {
    /// Installs the global Prometheus recorder and registers a counter and a histogram
    /// for each of `commands` (the command table's names, in its order).
    pub fn install(commands: &[&'static str]) -> anyhow::Result<Metrics> {
        let handle = PrometheusBuilder::new()
            .set_buckets(BUCKETS)?
            .set_buckets_for_metric(
                Matcher::Full("caskade_origin_fetch_duration_seconds".into()),
                FETCH_BUCKETS,
            )?
            .install_recorder()?;
        Ok(Metrics {
            handle,
            per_command: Self::handles(commands),
        })
    }

    /// Handles without an installed recorder (tests: several servers in one process).
    #[cfg(test)]
    pub fn unregistered(commands: &[&'static str]) -> Metrics {
        Metrics {
            handle: PrometheusBuilder::new().build_recorder().handle(),
            per_command: Self::handles(commands),
        }
    }

    fn handles(commands: &[&'static str]) -> Vec<(Counter, Histogram)> {
        commands
            .iter()
            .map(|&name| {
                (
                    counter!("caskade_commands_total", "cmd" => name),
                    histogram!("caskade_command_duration_seconds", "cmd" => name),
                )
            })
            .collect()
    }

    /// Counts one command (by its index in `COMMANDS`) and its duration.
    pub fn command(&self, index: usize, seconds: f64) {
        if let Some((c, h)) = self.per_command.get(index) {
            c.increment(1);
            h.record(seconds);
        }
    }

    /// Drains histogram samples into buckets; call every second (samples hold memory
    /// until drained).
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// The Prometheus text exposition of everything recorded so far.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}
