//! The background thread: syncs once a second under `fsync everysec`, writes hint files
//! for sealed segments, and sweeps expired keys out of the index a few shards per tick.
//! It holds only a weak reference, so it never keeps a dropped engine alive.

use crate::engine::Inner;
use crate::error::{Error, Result};
use crate::format::hint;
use crate::io::write_atomic;
use crate::keydir::{Keydir, Liveness};
use crate::segment::{Segment, hint_name, walk};
use crate::stats::Counters;
use parking_lot::{Condvar, Mutex};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

/// Index shards swept per namespace per tick: a full pass takes 32 ticks (3.2 s at the
/// default 100 ms), at a cost of a few hundred microseconds per tick at 10M keys.
const SWEEP_SHARDS_PER_TICK: usize = 32;

/// Wakes the thread early and tells it to stop.
#[derive(Clone, Default)]
pub(crate) struct Stopper(Arc<(Mutex<bool>, Condvar)>);

impl Stopper {
    pub fn stopped(&self) -> bool {
        *self.0.0.lock()
    }

    pub fn stop(&self) {
        *self.0.0.lock() = true;
        self.0.1.notify_all();
    }

    /// Sleeps up to `d`; returns false once stopped.
    fn sleep(&self, d: Duration) -> bool {
        let mut stopped = self.0.0.lock();
        if !*stopped {
            self.0.1.wait_for(&mut stopped, d);
        }
        !*stopped
    }
}

pub(crate) fn spawn(inner: &Arc<Inner>, stopper: Stopper) -> Result<JoinHandle<()>> {
    let weak: Weak<Inner> = Arc::downgrade(inner);
    let interval = inner.opts.maintenance_interval;
    std::thread::Builder::new()
        .name("caskade-maintenance".into())
        .spawn(move || {
            let mut sweep_at = 0usize;
            while stopper.sleep(interval) {
                let Some(inner) = weak.upgrade() else { return };
                tick(&inner, &mut sweep_at);
            }
        })
        .map_err(|e| Error::io("spawn maintenance thread", &inner.opts.dir, e))
}

fn tick(inner: &Inner, sweep_at: &mut usize) {
    if !inner.log.is_poisoned()
        && let Err(e) = inner.log.flush_writes()
    {
        tracing::error!(error = %e, "handing buffered writes to the file failed");
    }
    if !inner.log.is_poisoned()
        && inner.log.sync_due()
        && let Err(e) = inner.log.sync_now()
    {
        tracing::error!(error = %e, "background fsync failed");
    }
    write_pending_hints(inner);
    let now = inner.now_ms();
    for kd in inner.index.all() {
        for i in 0..SWEEP_SHARDS_PER_TICK {
            sweep(inner, kd, *sweep_at + i, now);
        }
    }
    *sweep_at = (*sweep_at + SWEEP_SHARDS_PER_TICK) % Keydir::SHARDS;
}

fn sweep(inner: &Inner, kd: &Keydir, shard: usize, now: u64) {
    let mut removed = Vec::new();
    kd.sweep_shard(
        shard,
        |s| s.liveness(now) == Liveness::Expired,
        |s| removed.push(*s),
    );
    if !removed.is_empty() {
        Counters::add(&inner.counters.expired, removed.len() as u64);
        let ids: Vec<u64> = removed.iter().map(|s| s.hash).collect();
        inner.log.mark_dead_all(removed);
        inner.note_removed(&ids);
    }
}

fn write_pending_hints(inner: &Inner) {
    let pending = inner.log.take_pending_hints();
    for id in pending {
        let Some(seg) = inner.log.segment(id) else {
            continue;
        };
        if let Err(e) = write_hint(inner, &seg) {
            tracing::warn!(segment = id, error = %e, "writing hint file failed; the next open will scan this segment");
        }
    }
}

/// Writes the hint file of `seg`, covering everything appended to it so far. A record
/// found corrupt is hinted as a tombstone of its key, so a restart cannot fall back to
/// an older version of that key.
pub(crate) fn write_hint(inner: &Inner, seg: &Segment) -> Result<()> {
    let mut entries = Vec::new();
    let end = walk(seg.file.as_ref(), 0, seg.len(), |off, found| {
        entries.push(inner.describe(off, &found));
    })
    .map_err(|e| Error::io("read", &seg.path, e))?;
    let bytes = hint::encode(seg.id, &entries, end.valid_end);
    let name = hint_name(seg.id);
    write_atomic(inner.opts.storage.as_ref(), &inner.opts.dir, &name, &bytes)
        .map_err(|e| Error::io("write hint", inner.opts.dir.join(&name), e))?;
    if inner.log.segment(seg.id).is_none() {
        // Compacted away while we wrote: the hint would be an orphan.
        let _ = inner.opts.storage.remove(&inner.opts.dir.join(&name));
        return Ok(());
    }
    inner.log.hint_written(seg, bytes.len() as u64);
    Ok(())
}

/// Final sync and hints; releases the directory lock. Safe to call twice.
pub(crate) fn shutdown(inner: &Inner) -> Result<()> {
    if inner.log.close() {
        return Ok(());
    }
    let mut result = Ok(());
    if !inner.log.is_poisoned() {
        result = inner.log.sync_now();
        write_pending_hints(inner);
        if result.is_ok() {
            let active = inner.log.active();
            result = write_hint(inner, &active);
        }
    }
    inner.dir_lock.lock().take();
    tracing::info!(dir = %inner.opts.dir.display(), "engine closed");
    result
}
