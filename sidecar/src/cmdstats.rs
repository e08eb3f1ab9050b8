//! Per-command and per-error figures for INFO `commandstats` and `errorstats`: calls,
//! time, rejections (refused before running) and failures (an error reply), and
//! error replies counted by their code.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// One command's figures.
#[derive(Default)]
pub struct CommandStat {
    /// Times it ran.
    pub calls: AtomicU64,
    /// Microseconds it ran for, in all.
    pub usec: AtomicU64,
    /// Times it was refused before running (arity, authentication, busy).
    pub rejected: AtomicU64,
    /// Times it ran and answered an error.
    pub failed: AtomicU64,
}

/// Every command's figures (by the command table's index) and the error counts.
pub struct CommandStats {
    commands: Box<[CommandStat]>,
    errors: Mutex<BTreeMap<String, u64>>,
    total_errors: AtomicU64,
}

impl CommandStats {
    /// Figures for `n` commands.
    pub fn new(n: usize) -> Self {
        CommandStats {
            commands: (0..n).map(|_| CommandStat::default()).collect(),
            errors: Mutex::new(BTreeMap::new()),
            total_errors: AtomicU64::new(0),
        }
    }

    /// Command `index` ran for `usec`; `error` is its error reply, if it answered one.
    pub fn ran(&self, index: usize, usec: u64, error: Option<&str>) {
        if let Some(c) = self.commands.get(index) {
            c.calls.fetch_add(1, Ordering::Relaxed);
            c.usec.fetch_add(usec, Ordering::Relaxed);
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
        if let Some(c) = index.and_then(|i| self.commands.get(i)) {
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

    /// Command `index`'s figures.
    pub fn command(&self, index: usize) -> Option<&CommandStat> {
        self.commands.get(index)
    }

    /// CONFIG RESETSTAT.
    pub fn reset(&self) {
        for c in self.commands.iter() {
            for f in [&c.calls, &c.usec, &c.rejected, &c.failed] {
                f.store(0, Ordering::Relaxed);
            }
        }
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
        s.ran(0, 10, None);
        s.ran(0, 5, Some("WRONGTYPE Operation against a key"));
        s.rejected(Some(1), "ERR wrong number of arguments");
        s.rejected(None, "ERR unknown command");
        let c = s.command(0).expect("stat");
        assert_eq!(c.calls.load(Ordering::Relaxed), 2);
        assert_eq!(c.usec.load(Ordering::Relaxed), 15);
        assert_eq!(c.failed.load(Ordering::Relaxed), 1);
        assert_eq!(
            s.command(1).expect("stat").rejected.load(Ordering::Relaxed),
            1
        );
        assert_eq!(
            s.errors(),
            vec![("ERR".to_string(), 2), ("WRONGTYPE".to_string(), 1)]
        );
        assert_eq!(s.total_errors(), 3);
        s.reset();
        assert_eq!(s.total_errors(), 0);
        assert!(s.errors().is_empty());
    }
}
