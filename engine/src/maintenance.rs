//! The background thread: syncs once a second under `fsync everysec`, writes hint files
//! for sealed segments, and sweeps expired keys out of the index a few shards per tick.
//! It works through an [`Upkeep`] handle on the subsystems it touches; the engine stops
//! and joins it on close.

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::format::hint;
use crate::index::Index;
use crate::io::{Storage, write_atomic};
use crate::keydir::{Keydir, Liveness};
use crate::log::Log;
use crate::policy_host::PolicyHost;
use crate::segment::{Segment, hint_name, walk};
use crate::stats::Counters;
use crate::stopper::Stopper;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Index shards swept per namespace per tick: a full pass takes 32 ticks (3.2 s at the
/// default 100 ms), at a cost of a few hundred microseconds per tick at 10M keys.
const SWEEP_SHARDS_PER_TICK: usize = 32;

/// What the background thread works with.
pub(crate) struct Upkeep {
    /// Flushes, syncs and hint files.
    pub log: Arc<Log>,
    /// Expired keys to sweep.
    pub index: Arc<Index>,
    /// Told of swept keys.
    pub policy: Arc<PolicyHost>,
    /// The engine's figures.
    pub counters: Arc<Counters>,
    /// Told of expired collection roots.
    pub families: Arc<crate::families::Families>,
    /// The engine's clock.
    pub clock: Arc<dyn Clock>,
    /// The data directory and its storage (hint files).
    pub dir: PathBuf,
    /// See `dir`.
    pub storage: Arc<dyn Storage>,
    /// Time between ticks.
    pub interval: Duration,
}

pub(crate) fn spawn(upkeep: Upkeep, stopper: Stopper) -> Result<JoinHandle<()>> {
    let dir = upkeep.dir.clone();
    std::thread::Builder::new()
        .name("caskade-maintenance".into())
        .spawn(move || {
            let mut sweep_at = 0usize;
            // When the current refusal was first seen: the retry comes a second later.
            let mut refused_since: Option<std::time::Instant> = None;
            while stopper.sleep(upkeep.interval) {
                if upkeep.log.retryable() {
                    let since = *refused_since.get_or_insert_with(std::time::Instant::now);
                    if since.elapsed() >= RETRY_EVERY {
                        upkeep.resume_writes();
                        refused_since = None;
                    }
                } else {
                    refused_since = None;
                }
                upkeep.tick(&mut sweep_at);
            }
        })
        .map_err(|e| Error::io("spawn maintenance thread", &dir, e))
}

/// How often writes refused after a failed write are tried again (Redis retries a
/// failed AOF write every second too).
const RETRY_EVERY: Duration = Duration::from_secs(1);

impl Upkeep {
    fn resume_writes(&self) {
        retry_writes(&self.log, &self.index, &self.policy);
    }

    fn tick(&self, sweep_at: &mut usize) {
        let log = &self.log;
        if !log.is_poisoned()
            && let Err(e) = log.flush_writes()
        {
            tracing::error!(error = %e, "handing buffered writes to the file failed");
        }
        if !log.is_poisoned()
            && log.sync_due()
            && let Err(e) = log.sync_now()
        {
            tracing::error!(error = %e, "background fsync failed");
        }
        if let Err(e) = log.persist_sync_mark(false) {
            tracing::debug!(error = %e, "recording the sync mark failed");
        }
        write_pending_hints(log, &self.index, &self.dir, self.storage.as_ref());
        let now = self.clock.now_ms();
        for kd in self.index.all() {
            for i in 0..SWEEP_SHARDS_PER_TICK {
                self.sweep(kd, *sweep_at + i, now);
            }
        }
        *sweep_at = (*sweep_at + SWEEP_SHARDS_PER_TICK) % Keydir::SHARDS;
        if self.families.has_pending()
            && let Ok(_w) = self.log.lock_writer()
        {
            self.families.settle();
        }
    }

    fn sweep(&self, kd: &Keydir, shard: usize, now: u64) {
        let mut removed = Vec::new();
        kd.sweep_shard(
            shard,
            |s| s.liveness(now) == Liveness::Expired,
            |s| removed.push(*s),
        );
        if !removed.is_empty() {
            Counters::add(&self.counters.expired, removed.len() as u64);
            let ids: Vec<u64> = removed.iter().map(|s| s.hash).collect();
            self.log.mark_dead_all(removed);
            self.families.dropped_unlocked(&ids);
            self.policy.note_removed(&ids);
        }
    }
}

/// After a failed write: gives up the records of the refused writes still in the
/// write buffer (dropping the index's slots that point at them, so nothing that never
/// reached the file is served) and accepts writes again; the next write that fails
/// refuses them again. Run a second after the failure by the background thread, and
/// by write attempts (at most every 100 ms, see `Inner::writer`).
pub(crate) fn retry_writes(log: &Log, index: &Index, policy: &PolicyHost) {
    let w = log.lock_writer_unchecked();
    if !log.retryable() {
        return;
    }
    let seg = w.active.id;
    let mut removed = Vec::new();
    for (ns, key, off) in log.unflushed_puts(&w) {
        let id = index.key_id(ns, &key);
        if let Some(kd) = index.get(ns)
            && kd.remove_if(id, |s| s.seg == seg && s.off == off).is_some()
        {
            removed.push(id);
        }
    }
    let cut = log.discard_unflushed(&w);
    log.resume();
    drop(w);
    if !removed.is_empty() {
        policy.note_removed(&removed);
    }
    tracing::debug!(
        dropped = removed.len(),
        bytes = cut,
        "retrying writes; records of refused writes were given up"
    );
}

pub(crate) fn write_pending_hints(log: &Log, index: &Index, dir: &Path, storage: &dyn Storage) {
    for id in log.take_pending_hints() {
        let Some(seg) = log.segment(id) else {
            continue;
        };
        if let Err(e) = write_hint(log, index, dir, storage, &seg) {
            tracing::warn!(segment = id, error = %e, "writing hint file failed; the next open will scan this segment");
        }
    }
}

/// Writes the hint file of `seg`, covering everything appended to it so far. A record
/// found corrupt is hinted as a tombstone of its key, so a restart cannot fall back to
/// an older version of that key.
pub(crate) fn write_hint(
    log: &Log,
    index: &Index,
    dir: &Path,
    storage: &dyn Storage,
    seg: &Segment,
) -> Result<()> {
    let mut entries = Vec::new();
    let end = walk(seg.file.as_ref(), 0, seg.len(), |off, found| {
        entries.push(index.describe(off, &found));
    })
    .map_err(|e| Error::io("read", &seg.path, e))?;
    let bytes = hint::encode(seg.id, &entries, end.valid_end);
    let name = hint_name(seg.id);
    write_atomic(storage, dir, &name, &bytes)
        .map_err(|e| Error::io("write hint", dir.join(&name), e))?;
    if log.segment(seg.id).is_none() {
        // Compacted away while we wrote: the hint would be an orphan.
        let _ = storage.remove(&dir.join(&name));
        return Ok(());
    }
    log.hint_written(seg, bytes.len() as u64);
    Ok(())
}
