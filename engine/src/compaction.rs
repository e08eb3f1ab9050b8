//! Space reclaim, on a thread of its own. A sealed segment with enough garbage is
//! compacted: its live records are copied forward (each shown to the compaction
//! filter) and the file is dropped. When the disk budget is near and nothing is
//! garbage, the oldest segment is reclaimed whole: its live keys are copied forward only
//! if the eviction policy says they are worth it, the rest are evicted. Copies go
//! through the writer a batch at a time, each re-checked against the index, so reads
//! never wait and writes interleave. Writers that find the budget full wait here for
//! room instead of failing.

use crate::engine::Inner;
use crate::error::{Error, Result};
use crate::eviction::evict_record;
use crate::filter::{FilterRecord, Verdict};
use crate::format::record::{self, Header, Kind, NAMESPACES};
use crate::io::join;
use crate::keydir::{Slot, coarse_expiry};
use crate::maintenance::Stopper;
use crate::segment::{Found, Segment, hint_name, walk};
use crate::stats::Counters;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

/// Records handled per trip through the writer lock.
const BATCH: usize = 256;

/// What to do with a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Keep every live record (subject to the filter).
    Compact,
    /// Keep only the live records the policy wants; evict the rest.
    Reclaim,
}

/// One record read from the segment being rewritten (its CRC checked by the walk).
struct Pending {
    off: u32,
    header: Header,
    bytes: Vec<u8>,
}

impl Pending {
    fn rec(&self) -> record::RecordRef<'_> {
        record::parts(&self.bytes, self.header)
    }
}

impl Inner {
    /// Blocks a writer while the disk budget is used up, until the compactor has made
    /// room. A write never fails for lack of space, unless reclaiming itself fails.
    pub fn wait_for_space(&self, incoming: usize) -> Result<()> {
        let Some(budget) = self.opts.max_disk_bytes else {
            return Ok(());
        };
        if self.log.disk_bytes() + incoming as u64 <= budget {
            if self.log.disk_bytes() + 2 * self.opts.segment_bytes > budget {
                self.wake_compactor();
            }
            return Ok(());
        }
        let mut guard = self.space_mx.lock();
        while self.log.disk_bytes() + incoming as u64 > budget {
            self.log.check_writable()?;
            if let Some(e) = self.compact_error.lock().clone() {
                return Err(Error::Poisoned(format!(
                    "reclaiming disk space failed: {e}"
                )));
            }
            self.wake_compactor();
            self.space_cv
                .wait_for(&mut guard, Duration::from_millis(20));
        }
        Ok(())
    }

    pub fn wake_compactor(&self) {
        *self.compact_wanted.lock() = true;
        self.compact_cv.notify_one();
    }

    /// The next segment to rewrite, if any: under space pressure the most-garbage
    /// segment if a quarter of it is garbage, else the oldest; without pressure, any
    /// segment over the garbage ratio. Never the active segment; a pinned segment
    /// (holding a flush record) only when it is the oldest.
    fn pick(&self) -> Option<(Arc<Segment>, Mode)> {
        let active = self.log.active().id;
        let segs: Vec<Arc<Segment>> = self
            .log
            .segments()
            .into_iter()
            .filter(|s| s.id != active)
            .collect();
        let oldest = segs.first()?.clone();
        let ratio = |s: &Segment| s.dead.load(Ordering::Relaxed) as f64 / s.len().max(1) as f64;
        let best = segs
            .iter()
            .filter(|s| !s.pinned.load(Ordering::Relaxed) || s.id == oldest.id)
            .max_by(|a, b| ratio(a).total_cmp(&ratio(b)))
            .cloned();
        let pressure = self
            .opts
            .max_disk_bytes
            .is_some_and(|budget| self.log.disk_bytes() + 2 * self.opts.segment_bytes > budget);
        match best {
            Some(b) if pressure && ratio(&b) >= 0.25 => Some((b, Mode::Compact)),
            _ if pressure => Some((oldest, Mode::Reclaim)),
            Some(b) if ratio(&b) >= self.opts.compaction_garbage_ratio && ratio(&b) > 0.0 => {
                Some((b, Mode::Compact))
            }
            _ => None,
        }
    }

    /// Seals the active segment so the compactor can reclaim it (used when the budget
    /// is full and everything sits in the active segment).
    fn seal_active(&self) -> Result<()> {
        let mut w = self.log.lock_writer()?;
        if w.active.len() > crate::format::file_header::HEADER_LEN as u64 {
            self.log.roll(&mut w)?;
        }
        Ok(())
    }

    /// Rewrites one segment and drops it.
    pub fn rewrite_segment(&self, seg: &Arc<Segment>, mode: Mode) -> Result<()> {
        let older_exists = self.log.segments().first().is_some_and(|s| s.id < seg.id);
        if seg.pinned.load(Ordering::Relaxed) && older_exists {
            // A flush record cannot move forward in the log; wait until it is oldest.
            return Ok(());
        }
        let mut batch: Vec<Pending> = Vec::with_capacity(BATCH);
        let mut failure: Option<Error> = None;
        walk(seg.file.as_ref(), 0, seg.len(), |off, found| {
            if failure.is_some() {
                return;
            }
            if let Found::Record(r) = found {
                batch.push(Pending {
                    off: off as u32,
                    header: r.header,
                    bytes: r.raw.to_vec(),
                });
            }
            if batch.len() == BATCH
                && let Err(e) = self.rewrite_batch(seg, mode, older_exists, &mut batch)
            {
                failure = Some(e);
            }
        })
        .map_err(|e| Error::io("read", &seg.path, e))?;
        if let Some(e) = failure {
            return Err(e);
        }
        self.rewrite_batch(seg, mode, older_exists, &mut batch)?;
        // Copies must be durable before the original disappears.
        self.log.sync_now()?;
        self.drop_segment(seg)?;
        Counters::bump(match mode {
            Mode::Compact => &self.counters.compactions,
            Mode::Reclaim => &self.counters.reclaims,
        });
        self.space_cv.notify_all();
        Ok(())
    }

    fn rewrite_batch(
        &self,
        seg: &Segment,
        mode: Mode,
        older_exists: bool,
        batch: &mut Vec<Pending>,
    ) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let now = self.now_ms();
        // Sort the batch into live puts (the index points at them) and the rest.
        let mut live: Vec<(usize, u64)> = Vec::new();
        for (i, p) in batch.iter().enumerate() {
            let r = p.rec();
            if r.header.kind != Kind::Put || r.header.ns >= NAMESPACES {
                continue;
            }
            let id = self.index.key_id(r.header.ns, r.key);
            let points_here = self
                .index
                .slot(r.header.ns, id)
                .is_some_and(|s| s.seg == seg.id && s.off == p.off);
            if points_here {
                live.push((i, id));
            }
        }
        // The policy decides which live keys a reclaim keeps.
        let mut keep = vec![true; live.len()];
        if mode == Mode::Reclaim && !live.is_empty() {
            let ids: Vec<u64> = live.iter().map(|&(_, id)| id).collect();
            let mut out = Vec::with_capacity(ids.len());
            let mut p = self.policy();
            self.policy.drain_accesses(p.as_mut());
            p.keep_on_reclaim(&ids, &mut out);
            for (k, o) in keep.iter_mut().zip(out) {
                *k = o;
            }
        }
        // The filter sees every record that is about to be copied.
        let mut verdicts = vec![Verdict::Keep; live.len()];
        let filter = self.filter.read().clone();
        if let Some(filter) = filter {
            let kept: Vec<usize> = (0..live.len()).filter(|&j| keep[j]).collect();
            let records: Vec<FilterRecord<'_>> = kept
                .iter()
                .map(|&j| {
                    let r = batch[live[j].0].rec();
                    FilterRecord {
                        ns: r.header.ns,
                        key: r.key,
                        value_len: r.header.value_len,
                        expire_at_ms: (r.header.expire_at_ms != 0).then_some(r.header.expire_at_ms),
                        meta: r.meta,
                    }
                })
                .collect();
            let mut out = Vec::with_capacity(records.len());
            filter.filter(&records, &mut out);
            if out.len() != records.len() {
                tracing::warn!(
                    got = out.len(),
                    want = records.len(),
                    "compaction filter answered for the wrong number of records; keeping the rest"
                );
            }
            for (&j, v) in kept.iter().zip(out) {
                verdicts[j] = v;
            }
        }

        let mut removed_ids = Vec::new();
        let mut w = self.log.lock_writer()?;
        for (j, &(i, id)) in live.iter().enumerate() {
            let p = &batch[i];
            let r = p.rec();
            let ns = r.header.ns;
            let Some(kd) = self.index.get(ns) else {
                continue;
            };
            let expected = Slot {
                hash: id,
                seg: seg.id,
                off: p.off,
                len: p.bytes.len() as u32,
                exp_s: coarse_expiry(r.header.expire_at_ms),
            };
            if kd.get(id) != Some(expected) {
                continue; // Written or removed since the batch was read.
            }
            if !keep[j] {
                kd.remove_exact(&expected);
                if older_exists {
                    let rec = evict_record(ns, id);
                    let (s, _) = self.log.append_locked(&mut w, &rec)?;
                    s.add_dead(rec.len() as u64);
                }
                Counters::bump(&self.counters.evicted_disk);
                continue;
            }
            let new_exp = match verdicts[j] {
                Verdict::Keep => Some(r.header.expire_at_ms),
                Verdict::SetExpiry(e) => {
                    let e = e.unwrap_or(0);
                    (e == 0 || e > now).then_some(e)
                }
                Verdict::Remove => None,
            };
            let Some(exp) = new_exp else {
                kd.remove_exact(&expected);
                if older_exists {
                    let mut rec = Vec::new();
                    record::encode_into(&mut rec, Kind::Tombstone, ns, r.key, b"", b"", 0);
                    let (s, _) = self.log.append_locked(&mut w, &rec)?;
                    s.add_dead(rec.len() as u64);
                }
                Counters::bump(&self.counters.filter_removed);
                removed_ids.push(id);
                continue;
            };
            let copy = if exp == r.header.expire_at_ms {
                p.bytes.clone()
            } else {
                let mut b = Vec::with_capacity(p.bytes.len());
                record::encode_into(&mut b, Kind::Put, ns, r.key, r.meta, r.value, exp);
                b
            };
            let (s, off) = self.log.append_locked(&mut w, &copy)?;
            Counters::add(&self.counters.bytes_rewritten, copy.len() as u64);
            kd.insert(Slot {
                hash: id,
                seg: s.id,
                off,
                len: copy.len() as u32,
                exp_s: coarse_expiry(exp),
            });
        }
        // Markers of removals move forward while an older segment may still hold the
        // key; an expired put whose key is gone gets a tombstone for the same reason.
        if older_exists {
            for p in batch.iter() {
                let r = p.rec();
                let h = r.header;
                if h.ns >= NAMESPACES {
                    continue;
                }
                let id = match h.kind {
                    Kind::Tombstone => self.index.key_id(h.ns, r.key),
                    Kind::Evict => record::evicted_id(r.key),
                    Kind::Put if h.expire_at_ms != 0 && h.expire_at_ms <= now => {
                        self.index.key_id(h.ns, r.key)
                    }
                    Kind::Put | Kind::Flush => continue,
                };
                let absent = self.index.slot(h.ns, id).is_none();
                if !absent {
                    continue;
                }
                let rec = if h.kind == Kind::Put {
                    let mut b = Vec::new();
                    record::encode_into(&mut b, Kind::Tombstone, h.ns, r.key, b"", b"", 0);
                    b
                } else {
                    p.bytes.clone()
                };
                let (s, _) = self.log.append_locked(&mut w, &rec)?;
                s.add_dead(rec.len() as u64);
                Counters::add(&self.counters.bytes_rewritten, rec.len() as u64);
            }
        }
        drop(w);
        self.note_removed(&removed_ids);
        batch.clear();
        Ok(())
    }

    /// Forgets a rewritten segment and deletes its files.
    fn drop_segment(&self, seg: &Segment) -> Result<()> {
        self.log.remove_segment(seg);
        let storage = self.opts.storage.as_ref();
        let dir = &self.opts.dir;
        storage
            .remove(&seg.path)
            .and_then(|()| storage.remove(&join(dir, &hint_name(seg.id))))
            .and_then(|()| storage.sync_dir(dir))
            .map_err(|e| Error::io("remove", &seg.path, e))?;
        Ok(())
    }

    /// One compactor pass: rewrite segments while there is something worth doing.
    fn compact_pass(&self) -> Result<()> {
        for _ in 0..64 {
            if self.log.is_closed() || self.log.is_poisoned() {
                return Ok(());
            }
            match self.pick() {
                Some((seg, mode)) => self.rewrite_segment(&seg, mode)?,
                None => {
                    let full = self
                        .opts
                        .max_disk_bytes
                        .is_some_and(|b| self.log.disk_bytes() + 2 * self.opts.segment_bytes > b);
                    if full && self.log.segment_count() == 1 {
                        self.seal_active()?;
                        continue;
                    }
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// Starts the compactor thread.
pub(crate) fn spawn(inner: &Arc<Inner>, stopper: Stopper) -> Result<JoinHandle<()>> {
    let weak: Weak<Inner> = Arc::downgrade(inner);
    std::thread::Builder::new()
        .name("caskade-compactor".into())
        .spawn(move || {
            loop {
                let Some(inner) = weak.upgrade() else { return };
                {
                    let mut wanted = inner.compact_wanted.lock();
                    if !*wanted {
                        inner
                            .compact_cv
                            .wait_for(&mut wanted, Duration::from_millis(200));
                    }
                    *wanted = false;
                }
                if stopper.stopped() {
                    return;
                }
                if let Err(e) = inner.compact_pass() {
                    tracing::error!(error = %e, "compaction failed");
                    *inner.compact_error.lock() = Some(e.to_string());
                    inner.space_cv.notify_all();
                    return;
                }
            }
        })
        .map_err(|e| Error::io("spawn compactor thread", &inner.opts.dir, e))
}
