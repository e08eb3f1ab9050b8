//! Space reclaim, on a thread of its own. A sealed segment with enough garbage is
//! compacted: its live records are copied forward (each shown to the compaction
//! filter) and the file is dropped. When the disk budget is near and nothing is
//! garbage, the oldest segment is reclaimed whole: its live keys are copied forward only
//! if the eviction policy says they are worth it, the rest are evicted. Copies go
//! through the writer a batch at a time, each re-checked against the index, so reads
//! never wait and writes interleave. Writers that find the budget full wait here for
//! room instead of failing.

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::filter::{CompactionFilter, FilterRecord, Verdict};
use crate::format::record::{self, ALL_NS, Header, Kind, NAMESPACES};
use crate::index::Index;
use crate::io::{Storage, join};
use crate::keydir::{Keydir, Slot, coarse_expiry};
use crate::log::Log;
use crate::options::Options;
use crate::policy_host::Keys;
use crate::policy_host::PolicyHost;
use crate::segment::{Found, Segment, hint_name, walk};
use crate::stats::Counters;
use crate::stopper::Stopper;
use parking_lot::{Condvar, Mutex, RwLock};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
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

/// Keys a rewrite removes without a marker (their segment holds the only record of
/// them): they leave the index when the segment's file is gone.
#[derive(Default)]
struct Doomed {
    /// Chosen by the policy, which has forgotten them.
    evicted: Vec<Slot>,
    /// Removed by the compaction filter.
    removed: Vec<Slot>,
}

impl Doomed {
    fn len(&self) -> usize {
        self.evicted.len() + self.removed.len()
    }
}

/// What writers and the compactor thread share: the filter in force, the wake-up, the
/// writers waiting for disk space, and the compactor's last failure.
pub(crate) struct Compactor {
    filter: RwLock<Option<Arc<dyn CompactionFilter>>>,
    wanted: Mutex<bool>,
    wanted_cv: Condvar,
    space_mx: Mutex<()>,
    space_cv: Condvar,
    error: Mutex<Option<String>>,
    max_disk_bytes: Option<u64>,
    segment_bytes: u64,
    /// Full compactions asked for and done (see [`Compactor::request_full`]).
    full: Mutex<FullPasses>,
    full_cv: Condvar,
}

/// Tickets of full compactions: one asked for while another runs is served by the
/// next pass, so every caller waits for a pass that began after it asked.
#[derive(Default)]
struct FullPasses {
    asked: u64,
    done: u64,
    running: bool,
    /// The last pass's failure, if it failed.
    error: Option<String>,
}

impl Compactor {
    /// The compactor's shared state for `opts`.
    pub fn new(opts: &Options) -> Self {
        Compactor {
            filter: RwLock::new(opts.compaction_filter.clone()),
            wanted: Mutex::new(false),
            wanted_cv: Condvar::new(),
            space_mx: Mutex::new(()),
            space_cv: Condvar::new(),
            error: Mutex::new(None),
            max_disk_bytes: opts.max_disk_bytes,
            segment_bytes: opts.segment_bytes,
            full: Mutex::new(FullPasses::default()),
            full_cv: Condvar::new(),
        }
    }

    /// Asks for a full compaction (every sealed segment rewritten, the active one
    /// sealed first, each record shown to the filter); returns its ticket.
    pub fn request_full(&self) -> u64 {
        let ticket = {
            let mut f = self.full.lock();
            f.asked += 1;
            f.asked
        };
        self.wake();
        ticket
    }

    /// Whether a full compaction is asked for or running.
    pub fn full_in_progress(&self) -> bool {
        let f = self.full.lock();
        f.running || f.asked > f.done
    }

    /// Waits until the pass serving `ticket` has finished; its error if it failed.
    pub fn wait_full(&self, ticket: u64) -> std::result::Result<(), String> {
        let mut f = self.full.lock();
        while f.done < ticket {
            if let Some(e) = self.error.lock().clone() {
                return Err(e);
            }
            self.full_cv.wait_for(&mut f, Duration::from_millis(100));
        }
        f.error.clone().map_or(Ok(()), Err)
    }

    /// The ticket a pass starting now serves, if one is asked for.
    fn start_full(&self) -> Option<u64> {
        let mut f = self.full.lock();
        (f.asked > f.done).then(|| {
            f.running = true;
            f.asked
        })
    }

    fn finish_full(&self, ticket: u64, error: Option<String>) {
        let mut f = self.full.lock();
        f.done = ticket;
        f.running = false;
        f.error = error;
        drop(f);
        self.full_cv.notify_all();
    }

    /// Replaces the compaction filter.
    pub fn set_filter(&self, filter: Option<Arc<dyn CompactionFilter>>) {
        *self.filter.write() = filter;
    }

    fn filter(&self) -> Option<Arc<dyn CompactionFilter>> {
        self.filter.read().clone()
    }

    /// Blocks a writer while the disk budget is used up, until the compactor has made
    /// room. A write never fails for lack of space, unless reclaiming itself fails.
    pub fn wait_for_space(&self, log: &Log, incoming: usize) -> Result<()> {
        let Some(budget) = self.max_disk_bytes else {
            return Ok(());
        };
        if log.disk_bytes() + incoming as u64 <= budget {
            if log.disk_bytes() + 2 * self.segment_bytes > budget {
                self.wake();
            }
            return Ok(());
        }
        let mut guard = self.space_mx.lock();
        while log.disk_bytes() + incoming as u64 > budget {
            log.check_writable()?;
            if let Some(e) = self.error.lock().clone() {
                return Err(Error::Poisoned(format!(
                    "reclaiming disk space failed: {e}"
                )));
            }
            self.wake();
            self.space_cv
                .wait_for(&mut guard, Duration::from_millis(20));
        }
        Ok(())
    }

    /// Asks for a compaction pass.
    pub fn wake(&self) {
        *self.wanted.lock() = true;
        self.wanted_cv.notify_one();
    }

    /// Waits (up to `timeout`) for a wake-up, and takes it.
    fn wait_wanted(&self, timeout: Duration) {
        let mut wanted = self.wanted.lock();
        if !*wanted {
            self.wanted_cv.wait_for(&mut wanted, timeout);
        }
        *wanted = false;
    }

    /// Space was freed: writers waiting for it look again.
    fn space_freed(&self) {
        self.space_cv.notify_all();
    }

    /// The compactor stopped on `e`: writers waiting for space get it.
    fn failed(&self, e: String) {
        *self.error.lock() = Some(e);
        self.space_cv.notify_all();
    }
}

/// What the compactor thread works with: handles on the subsystems it touches and
/// the options it reads, not the engine (lsm-tree's compaction worker `Options`).
pub(crate) struct Worker {
    /// Segments, writer and disk accounting.
    pub log: Arc<Log>,
    /// Which records are live.
    pub index: Arc<Index>,
    /// Which keys a reclaim keeps.
    pub policy: Arc<PolicyHost>,
    /// The filter and the signals shared with writers.
    pub compactor: Arc<Compactor>,
    /// The engine's figures.
    pub counters: Arc<Counters>,
    /// Told of collection roots filtered away.
    pub families: Arc<crate::families::Families>,
    /// The data directory and its storage.
    pub dir: PathBuf,
    /// See `dir`.
    pub storage: Arc<dyn Storage>,
    /// The engine's clock.
    pub clock: Arc<dyn Clock>,
    /// See [`Options`].
    pub segment_bytes: u64,
    /// See [`Options`].
    pub max_disk_bytes: Option<u64>,
    /// See [`Options::compaction_garbage_ratio`].
    pub garbage_ratio: f64,
}

impl Worker {
    fn keys(&self) -> Keys<'_> {
        Keys::new(&self.index, &self.log)
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
            .max_disk_bytes
            .is_some_and(|budget| self.log.disk_bytes() + 2 * self.segment_bytes > budget);
        match best {
            Some(b) if pressure && ratio(&b) >= 0.25 => Some((b, Mode::Compact)),
            _ if pressure => Some((oldest, Mode::Reclaim)),
            Some(b) if ratio(&b) >= self.garbage_ratio && ratio(&b) > 0.0 => {
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
        let mut doomed = Doomed::default();
        let mut failure: Option<Error> = None;
        let walked = walk(seg.file.as_ref(), 0, seg.len(), |off, found| {
            if failure.is_some() {
                return;
            }
            if let Found::Record(r) = found
                && !self.superseded(seg, off, &r)
            {
                batch.push(Pending {
                    off: off as u32,
                    header: r.header,
                    bytes: r.raw.to_vec(),
                });
            }
            if batch.len() == BATCH
                && let Err(e) = self.rewrite_batch(seg, mode, older_exists, &mut batch, &mut doomed)
            {
                failure = Some(e);
            }
        })
        .map_err(|e| Error::io("read", &seg.path, e));
        let result = walked.and_then(|end| {
            if let Some(e) = failure {
                return Err(e);
            }
            self.rewrite_batch(seg, mode, older_exists, &mut batch, &mut doomed)?;
            if end.is_damaged(seg.len()) {
                self.forget_unreadable(seg)?;
            }
            // Copies must be durable before the original disappears.
            self.log.sync_now()?;
            Ok(end)
        });
        let end = match result {
            Ok(end) => end,
            Err(e) => {
                self.restore(&doomed);
                return Err(e);
            }
        };
        if end.is_damaged(seg.len()) && older_exists {
            // Damaged bytes may have held removal markers whose keys are unknown: the
            // segment stays until nothing older is left for them to hide.
            tracing::warn!(
                segment = seg.id,
                "damaged segment kept until it is the oldest, so no key it removed comes back"
            );
            seg.pinned.store(true, Ordering::Relaxed);
            self.restore(&doomed);
            return Ok(());
        }
        self.drop_segment(seg, &doomed)?;
        Counters::bump(match mode {
            Mode::Compact => &self.counters.compactions,
            Mode::Reclaim => &self.counters.reclaims,
        });
        self.compactor.space_freed();
        Ok(())
    }

    /// Whether the record at `off` of `seg` is a put the index has moved away from and
    /// that never expires: nothing of it is copied or carried forward, so it is not
    /// even read into a batch (a churned key's old versions are most of a segment).
    /// An index entry never comes back to an older record, so this stays true.
    fn superseded(&self, seg: &Segment, off: u64, r: &record::RecordRef<'_>) -> bool {
        let h = &r.header;
        if h.kind != Kind::Put || h.ns >= ALL_NS || h.expire_at_ms != 0 {
            return false;
        }
        let id = self.index.key_id(h.ns, r.key);
        self.index
            .slot(h.ns, id)
            .is_none_or(|s| s.seg != seg.id || u64::from(s.off) != off)
    }

    /// Keys the index still points into `seg` although the walk found no intact record
    /// for them (damage found only now): forgotten, each with an evict record so an
    /// older version cannot come back. Called with every intact live record copied.
    fn forget_unreadable(&self, seg: &Segment) -> Result<()> {
        let mut w = self.log.lock_writer()?;
        let mut lost = Vec::new();
        for (ns, kd) in self.index.every() {
            for shard in 0..Keydir::SHARDS {
                kd.sweep_shard(shard, |s| s.seg == seg.id, |s| lost.push((ns, s.hash)));
            }
        }
        for &(ns, id) in &lost {
            let rec = record::evict(ns, id);
            let (s, _) = self.log.append_locked(&mut w, &rec)?;
            s.add_dead(rec.len() as u64);
            Counters::bump(&self.counters.corrupt);
        }
        drop(w);
        if !lost.is_empty() {
            tracing::warn!(
                segment = seg.id,
                keys = lost.len(),
                "records found damaged during compaction; their keys are dropped"
            );
            let ids: Vec<u64> = lost
                .iter()
                .filter(|(ns, _)| *ns < NAMESPACES)
                .map(|&(_, id)| id)
                .collect();
            self.families.dropped(&ids);
            self.policy.note_removed(&ids);
        }
        Ok(())
    }

    /// A rewrite that does not drop its segment gives its doomed keys back to the
    /// policy, which forgot the evicted ones: they stay, and stay evictable.
    fn restore(&self, doomed: &Doomed) {
        let keys = self.keys();
        // The built-in policy's bits stayed with the slots; only a plugged-in policy
        // must hear of them again.
        let evicted = if self.policy.plugged() {
            &doomed.evicted[..]
        } else {
            &[]
        };
        for slot in evicted {
            let present = self.index.slot((slot.hash & 0xF) as u8, slot.hash);
            if let Some(key) = present.and_then(|now| keys.key_of(&now)) {
                self.policy.note_insert(slot.hash, &key);
            }
        }
        self.index.undoom(doomed.len());
    }

    fn rewrite_batch(
        &self,
        seg: &Segment,
        mode: Mode,
        older_exists: bool,
        batch: &mut Vec<Pending>,
        doomed: &mut Doomed,
    ) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let now = self.clock.now_ms();
        // Sort the batch into live puts (the index points at them) and the rest.
        let mut live: Vec<(usize, u64)> = Vec::new();
        // The live keys' slots: a collection's chunks are not keys (see `chunk`).
        let mut slots: Vec<Slot> = Vec::new();
        for (i, p) in batch.iter().enumerate() {
            let r = p.rec();
            if r.header.kind != Kind::Put || r.header.ns >= ALL_NS {
                continue;
            }
            let id = self.index.key_id(r.header.ns, r.key);
            if let Some(s) = self
                .index
                .slot(r.header.ns, id)
                .filter(|s| s.seg == seg.id && s.off == p.off)
            {
                live.push((i, id));
                if r.header.ns < NAMESPACES {
                    slots.push(s);
                }
            }
        }
        // A collection's chunks go only with their root: a reclaim copies them, and
        // the filter sees the root alone (the collection as one key).
        let chunk = |j: usize| batch[live[j].0].rec().header.ns >= NAMESPACES;
        // The policy decides which live keys a reclaim keeps (`None`: evicted), and
        // the built-in policy's bits they keep; a compaction keeps every key's bits.
        let keep: Vec<Option<Option<u16>>> = if mode == Mode::Reclaim && !slots.is_empty() {
            let mut asked = self.policy.keep_on_reclaim(&slots).into_iter();
            (0..live.len())
                .map(|j| {
                    if chunk(j) {
                        Some(None)
                    } else {
                        asked.next().flatten().map(Some)
                    }
                })
                .collect()
        } else {
            vec![Some(None); live.len()]
        };
        // The filter sees every record that is about to be copied.
        let mut verdicts = vec![Verdict::Keep; live.len()];
        let filter = self.compactor.filter();
        if let Some(filter) = filter {
            let kept: Vec<usize> = (0..live.len())
                .filter(|&j| keep[j].is_some() && !chunk(j))
                .collect();
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
            filter.filter(now, &records, &mut out);
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
                meta: 0,
            };
            if kd.get(id) != Some(expected) {
                continue; // Written or removed since the batch was read.
            }
            let Some(bits) = keep[j] else {
                if older_exists {
                    kd.remove_exact(&expected);
                    let rec = record::evict(ns, id);
                    let (s, _) = self.log.append_locked(&mut w, &rec)?;
                    s.add_dead(rec.len() as u64);
                    self.families.dropped(&[id]);
                } else {
                    // Nothing older holds the key, so no marker is needed: the record
                    // goes with its file. Until the file is gone the key stays
                    // readable, so nobody sees it absent and then back after a crash.
                    doomed.evicted.push(expected);
                    self.index.doom(1);
                }
                Counters::bump(&self.counters.evicted_disk);
                continue;
            };
            let new_exp = match verdicts[j] {
                Verdict::Keep => Some(r.header.expire_at_ms),
                Verdict::SetExpiry(e) => {
                    let e = e.unwrap_or(0);
                    (e == 0 || e > now).then_some(e)
                }
                Verdict::Remove => None,
            };
            let Some(exp) = new_exp else {
                if older_exists {
                    kd.remove_exact(&expected);
                    let rec = record::tombstone(ns, r.key);
                    let (s, _) = self.log.append_locked(&mut w, &rec)?;
                    s.add_dead(rec.len() as u64);
                    removed_ids.push(id);
                } else {
                    doomed.removed.push(expected);
                    self.index.doom(1);
                }
                Counters::bump(&self.counters.filter_removed);
                continue;
            };
            let copy = if exp == r.header.expire_at_ms {
                let mut b = p.bytes.clone();
                // A copy stands alone: the change it was part of is whole on disk.
                record::clear_continued(&mut b);
                b
            } else {
                let mut b = Vec::with_capacity(p.bytes.len());
                record::encode_typed(
                    &mut b,
                    Kind::Put as u8,
                    r.header.vtype,
                    ns,
                    r.key,
                    r.meta,
                    r.value,
                    exp,
                );
                self.families.set_expiry(id, exp);
                b
            };
            let (s, off) = self.log.append_locked(&mut w, &copy)?;
            Counters::add(&self.counters.bytes_rewritten, copy.len() as u64);
            let moved = Slot {
                hash: id,
                seg: s.id,
                off,
                len: copy.len() as u32,
                exp_s: coarse_expiry(exp),
                meta: 0,
            };
            // The copy keeps the key's policy bits (those a reclaim left it).
            kd.insert_with(moved, |old| bits.or(old.map(|o| o.meta)).unwrap_or(0));
        }
        // Markers of removals move forward while an older segment may still hold the
        // key; an expired put whose key is gone gets a tombstone for the same reason.
        if older_exists {
            for p in batch.iter() {
                let r = p.rec();
                let h = r.header;
                if h.ns >= ALL_NS {
                    continue;
                }
                let id = match h.kind {
                    Kind::Tombstone => self.index.key_id(h.ns, r.key),
                    Kind::Evict => record::evicted_id(r.key),
                    Kind::Put if h.expire_at_ms != 0 && h.expire_at_ms <= now => {
                        self.index.key_id(h.ns, r.key)
                    }
                    Kind::Put | Kind::Flush | Kind::Seal => continue,
                };
                let absent = self.index.slot(h.ns, id).is_none();
                if !absent {
                    continue;
                }
                let rec = if h.kind == Kind::Put {
                    record::tombstone(h.ns, r.key)
                } else {
                    let mut b = p.bytes.clone();
                    record::clear_continued(&mut b);
                    b
                };
                let (s, _) = self.log.append_locked(&mut w, &rec)?;
                s.add_dead(rec.len() as u64);
                Counters::add(&self.counters.bytes_rewritten, rec.len() as u64);
            }
        }
        self.families.dropped(&removed_ids);
        drop(w);
        self.policy.note_removed(&removed_ids);
        batch.clear();
        Ok(())
    }

    /// Deletes a rewritten segment's files, then forgets the keys that went with it
    /// and the segment itself. The files go first: a key leaves the index only once a
    /// restart can no longer find it either.
    fn drop_segment(&self, seg: &Segment, doomed: &Doomed) -> Result<()> {
        let storage = self.storage.as_ref();
        let dir = &self.dir;
        if let Err(e) = storage
            .remove(&seg.path)
            .and_then(|()| storage.remove(&join(dir, &hint_name(seg.id))))
            .and_then(|()| storage.sync_dir(dir))
        {
            self.restore(doomed);
            return Err(Error::io("remove", &seg.path, e));
        }
        let keys = self.keys();
        let mut removed = Vec::with_capacity(doomed.removed.len());
        {
            // Under the writer, so no put or delete crosses the check below.
            let _w = self.log.lock_writer_unchecked();
            for slot in &doomed.evicted {
                let Some(kd) = self.index.get((slot.hash & 0xF) as u8) else {
                    continue;
                };
                if kd.remove_exact(slot) {
                    self.families.dropped(&[slot.hash]);
                    continue;
                }
                // Overwritten meanwhile: the key lives on, and a plugged-in policy
                // (which forgot it as a victim) must know it again.
                if self.policy.plugged()
                    && let Some(now) = kd.get(slot.hash)
                    && let Some(key) = keys.key_of(&now)
                {
                    self.policy.note_insert(slot.hash, &key);
                }
            }
            for slot in &doomed.removed {
                if let Some(kd) = self.index.get((slot.hash & 0xF) as u8)
                    && kd.remove_exact(slot)
                {
                    removed.push(slot.hash);
                }
            }
            self.index.undoom(doomed.len());
            self.log.remove_segment(seg);
            self.families.dropped(&removed);
        }
        self.policy.note_removed(&removed);
        Ok(())
    }

    /// A full compaction: seals the active segment, then rewrites every segment that
    /// was sealed at that moment, whatever its garbage (so the filter sees every live
    /// key). Segments written meanwhile are left to the ordinary passes.
    fn full_pass(&self) -> Result<u64> {
        self.seal_active()?;
        let active = self.log.active().id;
        let mut rewritten = 0;
        for seg in self.log.segments().into_iter().filter(|s| s.id < active) {
            if self.log.is_closed() || self.log.is_poisoned() {
                break;
            }
            self.rewrite_segment(&seg, Mode::Compact)?;
            rewritten += 1;
        }
        Counters::bump(&self.counters.full_compactions);
        tracing::info!(segments = rewritten, "full compaction done");
        Ok(rewritten)
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
                        .max_disk_bytes
                        .is_some_and(|b| self.log.disk_bytes() + 2 * self.segment_bytes > b);
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
pub(crate) fn spawn(worker: Worker, stopper: Stopper) -> Result<JoinHandle<()>> {
    let dir = worker.dir.clone();
    std::thread::Builder::new()
        .name("caskade-compactor".into())
        .spawn(move || {
            loop {
                worker.compactor.wait_wanted(Duration::from_millis(200));
                if stopper.stopped() {
                    worker
                        .compactor
                        .finish_full(u64::MAX, Some("the engine closed".into()));
                    return;
                }
                if let Some(ticket) = worker.compactor.start_full() {
                    let result = worker.full_pass();
                    let error = result.as_ref().err().map(|e| e.to_string());
                    worker.compactor.finish_full(ticket, error);
                    if let Err(e) = result
                        && !matches!(e, Error::Poisoned(_))
                    {
                        tracing::error!(error = %e, "full compaction failed");
                        worker.compactor.failed(e.to_string());
                        return;
                    }
                }
                match worker.compact_pass() {
                    // Writes are refused for now (a failed write, retried): try later.
                    Err(Error::Poisoned(_)) => continue,
                    Err(e) => {
                        tracing::error!(error = %e, "compaction failed");
                        worker.compactor.failed(e.to_string());
                        worker.compactor.finish_full(u64::MAX, Some(e.to_string()));
                        return;
                    }
                    Ok(()) => {}
                }
            }
        })
        .map_err(|e| Error::io("spawn compactor thread", &dir, e))
}
