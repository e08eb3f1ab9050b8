//! The engine's composed state: its subsystems (index, log, policy host, compactor
//! state, counters) and the read and replace steps every operation is built from
//! (find a key's slot, read its live record, replace it if unchanged, drop a corrupt or
//! expired one). `Engine` is the public face over it.

use crate::compaction::Compactor;
use crate::error::{Error, Result};
use crate::format::record::{self, HEADER_LEN, Header, Kind};
use crate::index::Index;
use crate::io::LockGuard;
use crate::keydir::{Keydir, Liveness, Slot, coarse_expiry};
use crate::log::Log;
use crate::log::Writer;
use crate::options::Options;
use crate::policy_host::PolicyHost;
use crate::segment::Segment;
use crate::stats::Counters;
use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

/// How often write attempts may retry refused writes.
const RETRY_ON_WRITE: Duration = Duration::from_millis(100);

/// A live record's value and meta, apart (see [`Inner::read_live_parts`]).
pub(crate) struct Parts {
    pub value: Bytes,
    pub meta: Bytes,
    pub header: Header,
}

pub(crate) struct Inner {
    pub opts: Options,
    /// The keydirs and the key hash.
    pub index: Arc<Index>,
    /// The segments, the writer, durability and disk accounting.
    pub log: Arc<Log>,
    /// The eviction policy and what feeds it (pending inserts, access buffers). Use
    /// [`Inner::policy`] to reach the policy, which hands over pending inserts first.
    pub policy: Arc<PolicyHost>,
    /// The compaction filter and the signals writers share with the compactor.
    pub compactor: Arc<Compactor>,
    /// The engine's figures.
    pub counters: Arc<Counters>,
    /// Collections with chunks, so that a root dropped drops its chunks.
    pub families: Arc<crate::families::Families>,
    /// Held while open.
    pub dir_lock: Mutex<Option<LockGuard>>,
    /// Records read recently and often, in memory.
    pub hot: crate::hot::HotTier,
}

/// Whether an exact expiry (Unix ms, 0 = none) has passed.
pub(crate) fn exact_expired(expire_at_ms: u64, now_ms: u64) -> bool {
    expire_at_ms != 0 && expire_at_ms <= now_ms
}

impl Inner {
    pub fn now_ms(&self) -> u64 {
        self.opts.clock.now_ms()
    }

    /// The writer, for a write. While writes are refused after a failed write, the
    /// attempt itself retries (at most every 100 ms): writes resume as soon as one can
    /// reach the file, not only on the background thread's timer.
    pub fn writer(&self) -> Result<MutexGuard<'_, Writer>> {
        match self.log.lock_writer() {
            Err(Error::Poisoned(_)) if self.log.retry_due(RETRY_ON_WRITE) => {
                crate::maintenance::retry_writes(&self.log, &self.index, &self.policy);
                self.log.lock_writer()
            }
            r => r,
        }
    }

    /// The slot for `hash` and its segment. Compaction points slots at new segments
    /// before it drops the old one, so a slot whose segment is gone has moved: look
    /// again. `None` if the key is absent.
    pub fn stable_slot(&self, kd: &Keydir, hash: u64) -> Option<(Slot, Arc<Segment>)> {
        for _ in 0..16 {
            let slot = kd.get(hash)?;
            if let Some(seg) = self.log.segment(slot.seg) {
                return Some((slot, seg));
            }
            if kd.get(hash) == Some(slot) {
                // Only a bug could leave a slot pointing at a dropped segment.
                tracing::error!(segment = slot.seg, "index points at a dropped segment");
                return None;
            }
        }
        None
    }

    /// The slot and segment of `key`, unless it is absent or its coarse expiry says it
    /// has expired (then it is dropped from the index on the way).
    pub fn find(&self, ns: u8, key: &[u8], now: u64) -> Option<(&Keydir, Slot, Arc<Segment>)> {
        let (kd, slot) = self.find_slot(ns, key, now)?;
        let (slot, seg) = self.segment_of(kd, slot)?;
        Some((kd, slot, seg))
    }

    /// The segment `slot` points into, with `slot`; if compaction dropped that segment
    /// since `slot` was read, the key has moved: its slot now and that one's segment.
    fn segment_of(&self, kd: &Keydir, slot: Slot) -> Option<(Slot, Arc<Segment>)> {
        match self.log.segment(slot.seg) {
            Some(seg) => Some((slot, seg)),
            None => self.stable_slot(kd, slot.hash),
        }
    }

    /// [`Inner::find`] without the segment: a read the hot tier answers needs none, and
    /// looking it up locks the segment map and counts a reference, two writes to cache
    /// lines every reading thread shares.
    pub fn find_slot(&self, ns: u8, key: &[u8], now: u64) -> Option<(&Keydir, Slot)> {
        let kd = self.index.get(ns)?;
        let slot = kd.get(self.index.key_id(ns, key))?;
        if slot.liveness(now) == Liveness::Expired {
            self.drop_expired(kd, &slot);
            return None;
        }
        Some((kd, slot))
    }

    /// The bytes and header of the live record of exactly `key` at `slot`. A corrupt
    /// record or an expired one is dropped from the index on the way; a record of
    /// another key with the same 64-bit hash (which replaced this one) is a miss.
    pub fn read_live(
        &self,
        kd: &Keydir,
        ns: u8,
        key: &[u8],
        slot: &Slot,
        now: u64,
    ) -> Result<Option<(Bytes, Header)>> {
        let generation = self.log.generation();
        let whole = |buf: &Bytes, h| (crate::hot::copy_out(buf, 0..buf.len()), h);
        if let Some(hit) = self.hot_answer(kd, ns, key, slot, now, generation, whole) {
            return Ok(hit);
        }
        self.read_cold(kd, ns, key, slot, now, generation)
    }

    /// [`Inner::read_live`] as the value and meta bytes apart. A record in the hot tier
    /// is looked at where it lies and only those two are copied out (one allocation for
    /// a string's value), where slicing a copy of the whole record cost two. Chunks
    /// of a collection are copied out too: sharing them saved instructions but made
    /// two threads ranking in one large sorted set trade the reference counts of its
    /// upper nodes (ZRANK ran 0.9x as fast, interleaved).
    pub fn read_live_parts(
        &self,
        kd: &Keydir,
        ns: u8,
        key: &[u8],
        slot: &Slot,
        now: u64,
    ) -> Result<Option<Parts>> {
        let generation = self.log.generation();
        // `cut` takes a range out of the record: copied (or shared) out of the tier's
        // entry, sliced out of a buffer just read for this reader.
        let parts = |buf: &Bytes, h: Header, cut: fn(&Bytes, Range<usize>) -> Bytes| {
            let value = record::value_range(&h);
            let meta = value.start - h.meta_len as usize..value.start;
            Parts {
                value: cut(buf, value),
                meta: cut(buf, meta),
                header: h,
            }
        };
        let hot = |buf: &Bytes, h| parts(buf, h, crate::hot::copy_out);
        if let Some(hit) = self.hot_answer(kd, ns, key, slot, now, generation, hot) {
            return Ok(hit);
        }
        Ok(self
            .read_cold(kd, ns, key, slot, now, generation)?
            .map(|(buf, h)| parts(&buf, h, |b, r| b.slice(r))))
    }

    /// The answer of the hot tier for `key` at `slot`, taken out of its record by
    /// `take`: `None` if the tier does not hold it. A record there was checked when it
    /// was read; the entry matches only the location the index names now (and the
    /// writes since given up none).
    #[allow(clippy::too_many_arguments)]
    fn hot_answer<T>(
        &self,
        kd: &Keydir,
        ns: u8,
        key: &[u8],
        slot: &Slot,
        now: u64,
        generation: u64,
        take: impl FnOnce(&Bytes, Header) -> T,
    ) -> Option<Option<T>> {
        // Under the tier's shard lock: a comparison and a copy, nothing that locks.
        let hit = self
            .hot
            .visit(slot.hash, slot.seg, slot.off, generation, |buf, h| {
                // Another key with the same 64-bit hash may have replaced this one.
                if record::parts(buf, h).key != key || h.ns != ns {
                    Some(None)
                } else if exact_expired(h.expire_at_ms, now) {
                    None
                } else {
                    Some(Some(take(buf, h)))
                }
            })?;
        if hit.is_none() {
            self.drop_expired(kd, slot);
        }
        Some(hit.flatten())
    }

    /// [`Inner::read_live`] past the hot tier: the record from the file (or as read
    /// ahead), checked, and offered to the tier. Its segment is looked up here; if
    /// compaction dropped it since `slot` was read, the key has moved, and its slot is
    /// read again.
    fn read_cold(
        &self,
        kd: &Keydir,
        ns: u8,
        key: &[u8],
        slot: &Slot,
        now: u64,
        generation: u64,
    ) -> Result<Option<(Bytes, Header)>> {
        let Some((slot, seg)) = self.segment_of(kd, *slot) else {
            return Ok(None);
        };
        let (slot, seg) = (&slot, &seg);
        let read = match crate::prefetch::lent(seg, slot, generation) {
            crate::prefetch::Lent::Bytes(b) => Some(b),
            crate::prefetch::Lent::Deferred => return Ok(None),
            crate::prefetch::Lent::Read => self.read_record(seg, slot)?,
        };
        let Some(buf) = read else {
            self.drop_corrupt(ns, key, kd, slot);
            return Ok(None);
        };
        let h = match record::decode(&buf) {
            None => {
                self.drop_corrupt(ns, key, kd, slot);
                return Ok(None);
            }
            Some(r) if r.key != key || r.header.ns != ns || r.header.kind != Kind::Put => {
                return Ok(None);
            }
            Some(r) => r.header,
        };
        if exact_expired(h.expire_at_ms, now) {
            self.drop_expired(kd, slot);
            return Ok(None);
        }
        let buf = Bytes::from(buf);
        self.hot
            .offer(slot.hash, slot.seg, slot.off, generation, &buf);
        Ok(Some((buf, h)))
    }

    /// The whole record a slot points at; `None` if it cannot be read in full (the
    /// segment was cut short underneath us), which callers treat as corruption.
    pub fn read_record(&self, seg: &Segment, slot: &Slot) -> Result<Option<Vec<u8>>> {
        let mut buf = vec![0u8; slot.len as usize];
        match self.log.read_exact(seg, slot.off as u64, &mut buf) {
            Ok(()) => Ok(Some(buf)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(Error::io("read", &seg.path, e)),
        }
    }

    /// The header of the record at `slot` if it is a live put of exactly `key` in `ns`:
    /// a short read of header and key, for operations that need no value.
    pub fn read_head(
        &self,
        seg: &Segment,
        ns: u8,
        key: &[u8],
        slot: &Slot,
    ) -> Result<Option<Header>> {
        let want = HEADER_LEN + key.len();
        if (slot.len as usize) < want {
            return Ok(None);
        }
        let mut buf = vec![0u8; want];
        match self.log.read_exact(seg, slot.off as u64, &mut buf) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(Error::io("read", &seg.path, e)),
        }
        Ok(Header::parse(&buf).filter(|h| {
            h.kind == Kind::Put
                && h.ns == ns
                && h.key_len as usize == key.len()
                && h.total_len() == slot.len as usize
                && &buf[HEADER_LEN..] == key
        }))
    }

    /// Drops an expired slot from the index (the record on disk says it expired, so no
    /// tombstone is needed for restarts).
    pub fn drop_expired(&self, kd: &Keydir, slot: &Slot) {
        if kd.remove_exact(slot) {
            Counters::bump(&self.counters.expired);
            self.log.mark_dead(slot);
            self.families.dropped_unlocked(&[slot.hash]);
            self.note_removed(&[slot.hash]);
        }
    }

    /// A record failed its CRC: forget the key, and log a tombstone so that an older
    /// version of it in an earlier segment cannot come back after a restart.
    pub fn drop_corrupt(&self, ns: u8, key: &[u8], kd: &Keydir, slot: &Slot) {
        Counters::bump(&self.counters.corrupt);
        tracing::warn!(
            segment = slot.seg,
            offset = slot.off,
            "corrupt record read; key dropped"
        );
        let Ok(mut w) = self.log.lock_writer() else {
            if kd.remove_exact(slot) {
                self.note_removed(&[slot.hash]);
            }
            return;
        };
        if kd.get(slot.hash).as_ref() != Some(slot) {
            return;
        }
        let buf = record::tombstone(ns, key);
        match self.log.append_locked(&mut w, &buf) {
            Ok((seg, _)) => seg.add_dead(buf.len() as u64),
            Err(e) => tracing::warn!(error = %e, "could not log a tombstone for a corrupt record"),
        }
        if kd.remove_exact(slot) {
            self.log.mark_dead(slot);
            if ns < crate::format::record::NAMESPACES {
                self.families.dropped(&[slot.hash]);
            }
            drop(w);
            self.note_removed(&[slot.hash]);
        }
    }

    /// Points `hash`'s slot at the record of `len` bytes just appended at `off` in
    /// `seg`, with the built-in policy's bits for the write; returns the slot replaced.
    pub fn point_at(
        &self,
        kd: &Keydir,
        hash: u64,
        seg: &Segment,
        off: u32,
        len: usize,
        expire_at_ms: u64,
    ) -> Option<Slot> {
        let slot = Slot {
            hash,
            seg: seg.id,
            off,
            len: len as u32,
            exp_s: coarse_expiry(expire_at_ms),
            meta: 0,
        };
        kd.insert_with(slot, |old| self.policy.written(&self.index, hash, old))
    }

    /// Appends `rec` for `key` if its slot is still `expected`, then points the index
    /// at the new record (or removes the key, for a tombstone). Returns the LSN to wait
    /// for, or `None` if the slot changed meanwhile (the caller retries).
    pub fn replace_if_unchanged(
        &self,
        kd: &Keydir,
        expected: Option<&Slot>,
        hash: u64,
        rec: &[u8],
        expire_at_ms: u64,
        tombstone: bool,
    ) -> Result<Option<u64>> {
        let mut w = self.writer()?;
        if kd.get(hash).as_ref() != expected {
            return Ok(None);
        }
        self.families.settle();
        let (seg, off) = self.log.append_locked(&mut w, rec)?;
        let old = if tombstone {
            seg.add_dead(rec.len() as u64);
            self.families.dropped(&[hash]);
            expected.filter(|s| kd.remove_exact(s)).copied()
        } else {
            self.families.set_expiry(hash, expire_at_ms);
            self.point_at(kd, hash, &seg, off, rec.len(), expire_at_ms)
        };
        if let Some(old) = old {
            self.log.mark_dead(&old);
        }
        Ok(Some(w.lsn))
    }
}
