//! Per-command figures for INFO `commandstats` and `/metrics`: calls, time, a latency
//! histogram, rejections (refused before running) and failures (an error reply), kept
//! in one stripe per thread so that commands on two threads never write one cache line;
//! and error replies counted by their code (rare: behind a lock).

use caskade_engine::{stripe_count, thread_stripe};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the latency histogram's buckets, in nanoseconds: 10 µs to 1 s (one
/// more bucket counts the rest).
pub const BUCKETS_NS: [u64; 16] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
];

/// One command's figures in one stripe, on cache lines of its own.
#[repr(align(64))]
#[derive(Default)]
struct Slot {
    calls: AtomicU64,
    nanos: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    /// Calls by duration, per bucket of [`BUCKETS_NS`] (not cumulative), and over it.
    buckets: [AtomicU64; BUCKETS_NS.len() + 1],
}

/// One command's figures, summed over the stripes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    /// Times it ran.
    pub calls: u64,
    /// Microseconds it ran for, in all.
    pub usec: u64,
    /// Times it was refused before running (arity, authentication, busy).
    pub rejected: u64,
    /// Times it ran and answered an error.
    pub failed: u64,
}

/// One command's latency histogram since the start (never reset: Prometheus counters
/// only grow).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    pub calls: u64,
    pub nanos: u64,
    /// Per bucket of [`BUCKETS_NS`], cumulative, then every call (`+Inf`).
    pub cumulative: Vec<u64>,
}

/// Every command's figures (by the command table's index) and the error counts.
pub struct CommandStats {
    /// `stripes[s][i]`: command `i` as counted by the threads of stripe `s`.
    stripes: Box<[Box<[Slot]>]>,
    /// What INFO showed as zero at the last CONFIG RESETSTAT, by command (the figures
    /// themselves only grow, for `/metrics`), and the processed count then.
    base: Mutex<(Vec<Figures>, u64)>,
    errors: Mutex<BTreeMap<String, u64>>,
    total_errors: AtomicU64,
}

impl CommandStats {
    /// Figures for `n` commands.
    pub fn new(n: usize) -> Self {
        CommandStats {
            stripes: (0..stripe_count())
                .map(|_| (0..n).map(|_| Slot::default()).collect())
                .collect(),
            base: Mutex::new((vec![Figures::default(); n], 0)),
            errors: Mutex::new(BTreeMap::new()),
            total_errors: AtomicU64::new(0),
        }
    }

    /// Command `index`'s slot in this thread's stripe.
    fn slot(&self, index: usize) -> Option<&Slot> {
        self.stripes[thread_stripe(self.stripes.len())].get(index)
    }

    /// Command `index` ran for `nanos`; `error` is its error reply, if it answered one.
    pub fn ran(&self, index: usize, nanos: u64, error: Option<&str>) {
        if let Some(c) = self.slot(index) {
            c.calls.fetch_add(1, Ordering::Relaxed);
            c.nanos.fetch_add(nanos, Ordering::Relaxed);
            let b = BUCKETS_NS
                .iter()
                .position(|&bound| nanos <= bound)
                .unwrap_or(BUCKETS_NS.len());
            c.buckets[b].fetch_add(1, Ordering::Relaxed);
            if error.is_some() {
                c.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some(e) = error {
            self.error(e);
        }
    }

    /// Command `index` (if known) was refused with `error` before it ran.
    pub fn rejected(&self, index: Option<usize>, error: &str) {
        if let Some(c) = index.and_then(|i| self.slot(i)) {
            c.rejected.fetch_add(1, Ordering::Relaxed);
        }
        self.error(error);
    }

    fn error(&self, text: &str) {
        let code = text.split(' ').next().unwrap_or("ERR");
        let code: String = code.chars().take(32).collect();
        self.total_errors.fetch_add(1, Ordering::Relaxed);
        let mut errors = self.errors.lock();
        // Redis keeps at most 128 distinct codes.
        if errors.len() < 128 || errors.contains_key(&code) {
            *errors.entry(code).or_insert(0) += 1;
        }
    }

    /// Error replies sent, in all.
    pub fn total_errors(&self) -> u64 {
        self.total_errors.load(Ordering::Relaxed)
    }

    /// (code, count) for every error code seen.
    pub fn errors(&self) -> Vec<(String, u64)> {
        self.errors
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// Command `index`'s figures since the start.
    fn total(&self, index: usize) -> Option<(Figures, u64)> {
        let mut f = Figures::default();
        let mut nanos = 0;
        for stripe in self.stripes.iter() {
            let c = stripe.get(index)?;
            let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
            f.calls += get(&c.calls);
            nanos += get(&c.nanos);
            f.rejected += get(&c.rejected);
            f.failed += get(&c.failed);
        }
        f.usec = nanos / 1000;
        Some((f, nanos))
    }

    /// Command `index`'s figures since the last CONFIG RESETSTAT.
    pub fn command(&self, index: usize) -> Option<Figures> {
        let (now, _) = self.total(index)?;
        let base = self.base.lock().0.get(index).copied().unwrap_or_default();
        Some(Figures {
            calls: now.calls.saturating_sub(base.calls),
            usec: now.usec.saturating_sub(base.usec),
            rejected: now.rejected.saturating_sub(base.rejected),
            failed: now.failed.saturating_sub(base.failed),
        })
    }

    /// Commands that ran since the last CONFIG RESETSTAT (INFO's
    /// `total_commands_processed`).
    pub fn processed(&self) -> u64 {
        let all: u64 = (0..self.commands())
            .filter_map(|i| self.total(i))
            .map(|(f, _)| f.calls)
            .sum();
        all.saturating_sub(self.base.lock().1)
    }

    /// How many commands there are figures for.
    pub fn commands(&self) -> usize {
        self.stripes.first().map_or(0, |s| s.len())
    }

    /// Command `index`'s latency histogram since the start.
    pub fn histogram(&self, index: usize) -> Option<Histogram> {
        let (f, nanos) = self.total(index)?;
        let mut cumulative = vec![0u64; BUCKETS_NS.len() + 1];
        for stripe in self.stripes.iter() {
            let c = stripe.get(index)?;
            for (sum, b) in cumulative.iter_mut().zip(&c.buckets) {
                *sum += b.load(Ordering::Relaxed);
            }
        }
        let mut running = 0;
        for n in cumulative.iter_mut() {
            running += *n;
            *n = running;
        }
        Some(Histogram {
            calls: f.calls,
            nanos,
            cumulative,
        })
    }

    /// CONFIG RESETSTAT: INFO counts from zero again (`/metrics` does not).
    pub fn reset(&self) {
        let n = self.commands();
        let now: Vec<Figures> = (0..n)
            .map(|i| self.total(i).map(|(f, _)| f).unwrap_or_default())
            .collect();
        let processed = now.iter().map(|f| f.calls).sum();
        *self.base.lock() = (now, processed);
        self.errors.lock().clear();
        self.total_errors.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_failures_rejections_and_error_codes_are_counted() {
        let s = CommandStats::new(2);
        s.ran(0, 10_000, None);
        s.ran(0, 5_999, Some("WRONGTYPE Operation against a key"));
        s.rejected(Some(1), "ERR wrong number of arguments");
        s.rejected(None, "ERR unknown command");
        let c = s.command(0).expect("stat");
        assert_eq!((c.calls, c.usec, c.failed, c.rejected), (2, 15, 1, 0));
        assert_eq!(s.command(1).expect("stat").rejected, 1);
        assert_eq!(s.processed(), 2);
        assert_eq!(
            s.errors(),
            vec![("ERR".to_string(), 2), ("WRONGTYPE".to_string(), 1)]
        );
        assert_eq!(s.total_errors(), 3);
        s.reset();
        assert_eq!(s.total_errors(), 0);
        assert!(s.errors().is_empty());
        assert_eq!(s.command(0), Some(Figures::default()));
        assert_eq!(s.processed(), 0);
        // The histogram keeps counting across a reset.
        s.ran(0, 2_000_000_000, None);
        assert_eq!(s.command(0).expect("stat").calls, 1);
        let h = s.histogram(0).expect("histogram");
        assert_eq!((h.calls, h.nanos), (3, 2_000_015_999));
        assert_eq!(h.cumulative[0], 2, "10 µs and under");
        assert_eq!(h.cumulative[BUCKETS_NS.len() - 1], 2, "1 s and under");
        assert_eq!(h.cumulative[BUCKETS_NS.len()], 3, "+Inf");
        assert!(s.command(2).is_none() && s.histogram(2).is_none());
    }

    /// Threads count into stripes of their own; the sums see every call.
    #[test]
    fn calls_from_many_threads_all_count() {
        let s = CommandStats::new(1);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..1000 {
                        s.ran(0, 30_000, None);
                    }
                });
            }
        });
        let h = s.histogram(0).expect("histogram");
        assert_eq!(h.calls, 8000);
        assert_eq!(h.cumulative[1], 0);
        assert_eq!(h.cumulative[2], 8000, "25 µs < 30 µs <= 50 µs");
        assert_eq!(s.command(0).expect("stat").usec, 8000 * 30);
    }
}
