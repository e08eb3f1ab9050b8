//! Prometheus metrics: the recorder, and the text of the per-command counters and
//! latency histograms, drawn from the command figures (`cmdstats`, counted per thread,
//! where a shared histogram made every command write cache lines both worker threads
//! write). Server and engine figures are brought up to date before a scrape by `export`.

use crate::cmdstats::{BUCKETS_NS, CommandStats};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::fmt::Write as _;

/// Origin fetch buckets in seconds: 0.5 ms to 30 s.
const FETCH_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The installed recorder.
pub struct Metrics {
    handle: PrometheusHandle,
}

impl Metrics {
    /// Installs the global Prometheus recorder.
    pub fn install() -> anyhow::Result<Metrics> {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("caskade_origin_fetch_duration_seconds".into()),
                FETCH_BUCKETS,
            )?
            .install_recorder()?;
        Ok(Metrics { handle })
    }

    /// A recorder that is not installed (tests: several servers in one process).
    #[cfg(test)]
    pub fn unregistered() -> Metrics {
        Metrics {
            handle: PrometheusBuilder::new().build_recorder().handle(),
        }
    }

    /// Drains histogram samples into buckets; call every second (samples hold memory
    /// until drained).
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// The Prometheus text exposition of everything recorded so far, with the
    /// commands' figures from `commands` (once the server runs).
    pub fn render(&self, commands: Option<&CommandStats>) -> String {
        let mut out = self.handle.render();
        if let Some(c) = commands {
            render_commands(&mut out, c);
        }
        out
    }
}

/// Appends `caskade_commands_total{cmd}` and the `caskade_command_duration_seconds{cmd}`
/// histograms: every command of the table (zeros included, so every series exists
/// from the first scrape), and each subcommand that ran (`client|list`).
fn render_commands(out: &mut String, stats: &CommandStats) {
    let commands = crate::cmd::COMMANDS.len();
    let all: Vec<_> = (0..stats.commands())
        .filter_map(|i| Some((i, crate::cmd::stat_name(i)?, stats.histogram(i)?)))
        .filter(|(i, _, h)| *i < commands || h.calls > 0)
        .map(|(_, name, h)| (name, h))
        .collect();
    if !out.is_empty() && !out.ends_with("\n\n") {
        out.push('\n');
    }
    out.push_str("# TYPE caskade_commands_total counter\n");
    for (name, h) in &all {
        let _ = writeln!(out, "caskade_commands_total{{cmd=\"{name}\"}} {}", h.calls);
    }
    out.push_str("\n# TYPE caskade_command_duration_seconds histogram\n");
    for (name, h) in &all {
        let bounds = BUCKETS_NS.iter().map(|&ns| Some(ns)).chain([None]);
        for (bound, n) in bounds.zip(&h.cumulative) {
            let le = match bound {
                Some(ns) => format!("{}", ns as f64 / 1e9),
                None => "+Inf".to_string(),
            };
            let _ = writeln!(
                out,
                "caskade_command_duration_seconds_bucket{{cmd=\"{name}\",le=\"{le}\"}} {n}"
            );
        }
        let sum = h.nanos as f64 / 1e9;
        let _ = writeln!(
            out,
            "caskade_command_duration_seconds_sum{{cmd=\"{name}\"}} {sum}"
        );
        let _ = writeln!(
            out,
            "caskade_command_duration_seconds_count{{cmd=\"{name}\"}} {}",
            h.calls
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_figures_render_as_counters_and_histograms() {
        let m = Metrics::unregistered();
        assert!(!m.render(None).contains("caskade_commands_total"));
        let n = crate::cmd::COMMANDS.len();
        let get = crate::cmd::COMMANDS
            .iter()
            .position(|c| c.name == "get")
            .expect("get");
        let stats = CommandStats::new(n);
        stats.ran(get, 20_000, None);
        stats.ran(get, 3_000_000_000, None);
        let text = m.render(Some(&stats));
        for line in [
            "# TYPE caskade_commands_total counter",
            "caskade_commands_total{cmd=\"get\"} 2",
            "caskade_commands_total{cmd=\"set\"} 0",
            "# TYPE caskade_command_duration_seconds histogram",
            "caskade_command_duration_seconds_bucket{cmd=\"get\",le=\"0.00001\"} 0",
            "caskade_command_duration_seconds_bucket{cmd=\"get\",le=\"0.000025\"} 1",
            "caskade_command_duration_seconds_bucket{cmd=\"get\",le=\"1\"} 1",
            "caskade_command_duration_seconds_bucket{cmd=\"get\",le=\"+Inf\"} 2",
            "caskade_command_duration_seconds_sum{cmd=\"get\"} 3.00002",
            "caskade_command_duration_seconds_count{cmd=\"get\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
    }
}
