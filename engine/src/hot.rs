//! The DRAM hot tier: records read recently and often, kept in memory, so a hot read is
//! a table lookup and a reference count instead of a `pread` and a CRC check.
//!
//! An entry is valid only for the record location it was read from (segment, offset).
//! Every change of a key (a write, a delete, an expiry change, a compaction copy, an
//! eviction, a flush) gives the key a new location or none, and the index is asked
//! first on every read, so an entry of an older record is never matched: the tier
//! cannot serve a stale value, whatever path changed the key. Old entries leave by
//! eviction (or at once when the same key's new record is admitted).
//!
//! Admission is TinyLFU: a count-min sketch of 4-bit counters, a key's four in one
//! cache line (halved as it fills, so it forgets), estimates how often each key was
//! read. While the tier has room every read record enters; once it is full a record
//! enters only if it was read clearly more often than the entry it would evict. A scan
//! reads each key once, so it cannot flush the keys that are read again and again.
//! Eviction is CLOCK within each shard.

use crate::format::record::Header;
use crate::inthash::IntHash;
use crate::stats::Striped;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Most shards (a power of two): a read locks one. A small tier has fewer, of at least
/// 256 KiB each, so that one shard still holds records of a few KiB.
const SHARDS: usize = 64;
/// What an entry costs beyond its bytes: the entry, its table slot, the buffer's
/// allocation header (an estimate, counted so the bound holds for small values).
const ENTRY_OVERHEAD: usize = 96;

/// Records up to this long are copied out on a hit rather than shared: the copy reads
/// only the record's own bytes, where sharing writes a reference count that lives in a
/// cache line of its own (often last written by another thread).
const COPY_MAX: usize = 1 << 10;

/// One cached record, held in its shard's table itself: a hit touches the table's
/// slot and the record's bytes, nothing between.
struct Entry {
    seg: u32,
    off: u32,
    /// Its place in the CLOCK ring.
    ring: u32,
    /// Read since the clock hand last passed.
    visited: bool,
    /// The log's generation when it was read (see [`HotTier::visit`]).
    generation: u64,
    /// The whole record, as read and checked (its header is parsed again on a hit).
    buf: Bytes,
}

impl Entry {
    fn cost(&self) -> usize {
        self.buf.len() + ENTRY_OVERHEAD
    }
}

/// A shard: a table from key id to its entry, and the CLOCK ring of key ids.
#[derive(Default)]
struct Shard {
    at: HashMap<u64, Entry, IntHash>,
    ring: Vec<Option<u64>>,
    free: Vec<u32>,
    hand: usize,
    bytes: usize,
}

impl Shard {
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let e = self.at.remove(&id)?;
        if let Some(r) = self.ring.get_mut(e.ring as usize) {
            *r = None;
        }
        self.free.push(e.ring);
        self.bytes -= e.cost();
        Some(e)
    }

    /// The key the CLOCK hand stops at (clearing visited marks on the way); `None` if
    /// the shard is empty.
    fn victim(&mut self) -> Option<u64> {
        if self.at.is_empty() {
            return None;
        }
        let n = self.ring.len();
        // Two turns at most: the first clears every mark.
        for _ in 0..2 * n + 1 {
            let i = self.hand % n;
            self.hand = (i + 1) % n;
            let Some(id) = self.ring[i] else { continue };
            match self.at.get_mut(&id) {
                Some(e) if e.visited => e.visited = false,
                Some(_) => return Some(id),
                None => {}
            }
        }
        None
    }

    fn insert(&mut self, id: u64, mut e: Entry) {
        self.bytes += e.cost();
        e.ring = match self.free.pop() {
            Some(i) => {
                self.ring[i as usize] = Some(id);
                i
            }
            None => {
                self.ring.push(Some(id));
                (self.ring.len() - 1) as u32
            }
        };
        self.at.insert(id, e);
    }
}

/// The frequency sketch: 4-bit counters in blocks of one cache line (128 counters); a
/// key's four counters all lie in one block, so counting or estimating a key costs one
/// cache miss, not four. Halved after `10 ×` its counters in increments, so it forgets.
struct Sketch {
    blocks: Box<[[AtomicU64; 8]]>,
    mask: usize,
    /// Counts added, per thread: each stripe halves the counters every `reset_at` of
    /// its own, which for the whole is every `reset_at` (one shared count was a cache
    /// line every hit wrote).
    added: Striped,
    reset_at: u64,
}

impl Sketch {
    fn new(counters: usize) -> Sketch {
        let blocks = (counters / 128).next_power_of_two().max(64);
        Sketch {
            blocks: (0..blocks)
                .map(|_| std::array::from_fn(|_| AtomicU64::new(0)))
                .collect(),
            mask: blocks - 1,
            added: Striped::default(),
            reset_at: 10 * 128 * blocks as u64,
        }
    }

    /// The block of `id` and its four counters there, as (word, shift) pairs.
    fn places(&self, id: u64) -> (&[AtomicU64; 8], [(usize, u32); 4]) {
        let h = (id ^ (id >> 31)).wrapping_mul(0x94D0_49BB_1331_11EB);
        let block = &self.blocks[(h >> 32) as usize & self.mask];
        // Four 7-bit counter numbers (0..128) from the low bits.
        let at = std::array::from_fn(|i| {
            let n = (h >> (7 * i)) as usize & 127;
            (n / 16, (n % 16) as u32 * 4)
        });
        (block, at)
    }

    fn estimate(&self, id: u64) -> u8 {
        let (block, at) = self.places(id);
        at.iter()
            .map(|&(w, shift)| (block[w].load(Ordering::Relaxed) >> shift) as u8 & 15)
            .min()
            .unwrap_or(0)
    }

    fn add(&self, id: u64) {
        let (block, at) = self.places(id);
        for (w, shift) in at {
            let word = &block[w];
            let v = word.load(Ordering::Relaxed);
            if (v >> shift) & 15 < 15 {
                // A lost increment under a race only makes an estimate lower.
                word.store(v + (1 << shift), Ordering::Relaxed);
            }
        }
        if self.added.add(1).is_multiple_of(self.reset_at) {
            for block in self.blocks.iter() {
                for word in block {
                    let v = word.load(Ordering::Relaxed);
                    word.store((v >> 1) & 0x7777_7777_7777_7777, Ordering::Relaxed);
                }
            }
        }
    }
}

/// One bit per slot of a table far larger than the tier's entry count: set while a key
/// hashing there has an entry. A read of a key whose bit is clear is a miss without
/// locking a shard or touching its table (three cache misses on a large tier; the bits
/// of a 64 MiB tier fit in 512 KiB). A bit cleared by another key's eviction makes a
/// held key miss once; its next offer sets it again.
struct Presence {
    bits: Box<[AtomicU64]>,
    mask: u64,
}

impl Presence {
    fn new(slots: usize) -> Presence {
        let slots = slots.next_power_of_two().max(1 << 12);
        Presence {
            bits: (0..slots / 64).map(|_| AtomicU64::new(0)).collect(),
            mask: slots as u64 - 1,
        }
    }

    fn place(&self, id: u64) -> (usize, u64) {
        let n = (id ^ (id >> 33)).wrapping_mul(0xC2B2_AE3D_27D4_EB4F) >> 20 & self.mask;
        ((n / 64) as usize, 1 << (n % 64))
    }

    fn prefetch(&self, id: u64) {
        if let Some(w) = self.bits.get(self.place(id).0) {
            crate::cache_hint::prefetch(w);
        }
    }

    fn test(&self, id: u64) -> bool {
        let (w, bit) = self.place(id);
        self.bits[w].load(Ordering::Relaxed) & bit != 0
    }

    fn set(&self, id: u64) {
        let (w, bit) = self.place(id);
        self.bits[w].fetch_or(bit, Ordering::Relaxed);
    }

    fn clear(&self, id: u64) {
        let (w, bit) = self.place(id);
        self.bits[w].fetch_and(!bit, Ordering::Relaxed);
    }
}

/// Bytes `r` of a record held in the tier, for a reader: copied if the record is small
/// (sharing it would make every hit write its reference count, a cache line of its
/// own), shared if large. An empty range costs nothing.
pub(crate) fn copy_out(rec: &Bytes, r: std::ops::Range<usize>) -> Bytes {
    if r.is_empty() {
        Bytes::new()
    } else if rec.len() <= COPY_MAX {
        Bytes::copy_from_slice(&rec[r])
    } else {
        rec.slice(r)
    }
}

/// The hot tier's figures, for INFO and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HotStats {
    /// The bound, in bytes (0: the tier is off).
    pub max_bytes: u64,
    /// Bytes held (records and per-entry overhead).
    pub bytes: u64,
    /// Records held.
    pub entries: u64,
    /// Reads served from memory.
    pub hits: u64,
    /// Reads that went to disk.
    pub misses: u64,
    /// Records admitted.
    pub admissions: u64,
    /// Records refused admission (read less often than what they would evict).
    pub rejections: u64,
    /// Records evicted to make room.
    pub evictions: u64,
}

/// The hot tier (see the module docs).
pub(crate) struct HotTier {
    shards: Box<[Mutex<Shard>]>,
    presence: Presence,
    /// Bytes held, across shards (kept beside each shard's own count).
    held: AtomicU64,
    sketch: Option<Sketch>,
    shard_bytes: usize,
    max_bytes: u64,
    hits: Striped,
    misses: Striped,
    admissions: Striped,
    rejections: Striped,
    evictions: AtomicU64,
}

impl HotTier {
    /// A tier of at most `max_bytes` (0: off, every read goes to disk).
    pub fn new(max_bytes: u64) -> HotTier {
        let on = max_bytes > 0;
        let shards = if on {
            ((max_bytes >> 18) as usize)
                .clamp(1, SHARDS)
                .next_power_of_two()
        } else {
            0
        };
        HotTier {
            shards: (0..shards).map(|_| Mutex::new(Shard::default())).collect(),
            // Eight slots per entry of a small value (ENTRY_OVERHEAD + 32 bytes).
            presence: Presence::new(if on {
                (max_bytes as usize / (ENTRY_OVERHEAD + 32))
                    .saturating_mul(8)
                    .min(1 << 30)
            } else {
                0
            }),
            // About one counter per 64 bytes held: several per entry of small values.
            sketch: on.then(|| Sketch::new((max_bytes / 64).min(1 << 24) as usize)),
            shard_bytes: (max_bytes as usize) / shards.max(1),
            held: AtomicU64::new(0),
            max_bytes,
            hits: Striped::default(),
            misses: Striped::default(),
            admissions: Striped::default(),
            rejections: Striped::default(),
            evictions: AtomicU64::new(0),
        }
    }

    fn shard(&self, id: u64) -> Option<&Mutex<Shard>> {
        // The top bits: the table inside the shard mixes the id itself.
        let n = self.shards.len();
        self.shards.get((id >> 58) as usize & n.wrapping_sub(1))
    }

    /// The record of key `id` (whole, as a reader gets it): for tests.
    #[cfg(test)]
    pub fn get(&self, id: u64, seg: u32, off: u32, generation: u64) -> Option<(Bytes, Header)> {
        self.visit(id, seg, off, generation, |rec, h| {
            (copy_out(rec, 0..rec.len()), h)
        })
    }

    /// `f` of the record of key `id` if the tier holds the one at (`seg`, `off`), read
    /// while the log's generation was `generation`: writes given up after a failure may
    /// let a later record take the same place, so an entry of an earlier generation is
    /// not matched. The record is handed over where it lies, under its shard's lock
    /// (`f` must be short), so a reader copies out only what it needs.
    pub fn visit<R>(
        &self,
        id: u64,
        seg: u32,
        off: u32,
        generation: u64,
        f: impl FnOnce(&Bytes, Header) -> R,
    ) -> Option<R> {
        let shard = self.shard(id)?;
        let sketch = self.sketch.as_ref()?;
        if !self.presence.test(id) {
            self.misses.add(1);
            return None;
        }
        let mut s = shard.lock();
        let found = match s.at.get_mut(&id) {
            Some(e) if e.seg == seg && e.off == off && e.generation == generation => {
                // Written only when it changes: a hot key's entry stays clean in the
                // cache of a core that reads it after another core did.
                if !e.visited {
                    e.visited = true;
                }
                Header::parse(&e.buf).map(|h| f(&e.buf, h))
            }
            _ => None,
        };
        drop(s);
        if found.is_some() {
            sketch.add(id);
            self.hits.add(1);
        } else {
            // Counted in the sketch by the offer that follows a read from disk.
            self.misses.add(1);
        }
        found
    }

    /// Starts loading what a read of key `id` looks at first.
    pub fn prefetch(&self, id: u64) {
        if self.sketch.is_some() {
            self.presence.prefetch(id);
        }
    }

    /// Offers the record of key `id` just read from (`seg`, `off`): admitted if there
    /// is room, or if it was read clearly more often than the entry it would evict. An entry of
    /// an older record of the same key is replaced.
    pub fn offer(&self, id: u64, seg: u32, off: u32, generation: u64, buf: &Bytes) {
        // Cloned only once admitted: the first clone of a buffer read from disk allocates.
        self.admit(id, seg, off, generation, buf.len(), || buf.clone());
    }

    /// [`HotTier::offer`]'s work: `make` builds the entry's record (of `len` bytes) once
    /// it is admitted.
    fn admit(
        &self,
        id: u64,
        seg: u32,
        off: u32,
        generation: u64,
        len: usize,
        make: impl FnOnce() -> Bytes,
    ) {
        let (Some(shard), Some(sketch)) = (self.shard(id), self.sketch.as_ref()) else {
            return;
        };
        let cost = len + ENTRY_OVERHEAD;
        // One record may take at most an eighth of its shard.
        if cost > self.shard_bytes / 8 {
            return;
        }
        sketch.add(id);
        let freq = sketch.estimate(id);
        // A full tier admits only keys read more than twice: the rest are refused
        // without taking the shard's lock (most reads of a uniform key space end here).
        if freq < 3 && self.held.load(Ordering::Relaxed) + cost as u64 > self.max_bytes * 15 / 16 {
            self.rejections.add(1);
            return;
        }
        let mut s = shard.lock();
        let before = s.bytes;
        if s.remove(id).is_some() {
            self.presence.clear(id);
        }
        while s.bytes + cost > self.shard_bytes {
            let Some(victim_id) = s.victim() else { break };
            // Clearly more often than the victim: between keys read about as often
            // (a uniform key space), swapping them is all cost and no gain.
            if freq < sketch.estimate(victim_id).saturating_add(2) {
                self.rejections.add(1);
                self.note_held(before, s.bytes);
                return;
            }
            s.remove(victim_id);
            self.presence.clear(victim_id);
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
        let entry = Entry {
            seg,
            off,
            ring: 0,
            visited: false,
            generation,
            buf: make(),
        };
        s.insert(id, entry);
        self.presence.set(id);
        self.note_held(before, s.bytes);
        self.admissions.add(1);
    }

    /// Brings the total in step with a shard that went from `before` to `after` bytes.
    fn note_held(&self, before: usize, after: usize) {
        if after >= before {
            self.held
                .fetch_add((after - before) as u64, Ordering::Relaxed);
        } else {
            self.held
                .fetch_sub((before - after) as u64, Ordering::Relaxed);
        }
    }

    /// Replaces the entry of key `id`, if the tier holds one, by its new record `rec`
    /// just appended at (`seg`, `off`): a key being read often stays in memory across
    /// its writes. The record is copied (the caller's buffer may hold other records).
    ///
    /// The entry is updated where it is (its table slot, its place in the ring and its
    /// mark kept) when the shard has room for the new size: a key written again and
    /// again, such as a small collection under HSET, costs one lookup and one copy per
    /// write instead of a removal, an admission and a re-insertion (a ninth of an
    /// HSET's instructions). A write is not a read: the frequency sketch is not told.
    pub fn replace(&self, id: u64, seg: u32, off: u32, generation: u64, rec: &[u8]) {
        debug_assert!(Header::parse(rec).is_some(), "a record just encoded parses");
        self.replace_with(id, seg, off, generation, rec.len(), || {
            Bytes::copy_from_slice(rec)
        });
    }

    /// [`HotTier::replace`] with a record the caller gives up (a write's own buffer,
    /// holding that record alone): kept as it is, not copied.
    pub fn replace_owned(&self, id: u64, seg: u32, off: u32, generation: u64, rec: Bytes) {
        debug_assert!(
            Header::parse(&rec).is_some(),
            "a record just encoded parses"
        );
        let len = rec.len();
        self.replace_with(id, seg, off, generation, len, || rec);
    }

    /// [`HotTier::replace`]'s work: `make` gives the record (`len` bytes) once it is
    /// kept.
    fn replace_with(
        &self,
        id: u64,
        seg: u32,
        off: u32,
        generation: u64,
        len: usize,
        make: impl FnOnce() -> Bytes,
    ) {
        if !self.presence.test(id) {
            return;
        }
        let Some(shard) = self.shard(id) else {
            return;
        };
        let cost = len + ENTRY_OVERHEAD;
        let mut s = shard.lock();
        let Some(old) = s.at.get(&id).map(Entry::cost) else {
            return;
        };
        let before = s.bytes;
        let after = before - old + cost;
        if cost > self.shard_bytes / 8 || after > self.shard_bytes {
            // Too big to keep, or room must be made: out, and admitted again (against
            // what it would evict) as a new record.
            s.remove(id);
            self.presence.clear(id);
            self.note_held(before, s.bytes);
            drop(s);
            self.admit(id, seg, off, generation, len, make);
            return;
        }
        if let Some(e) = s.at.get_mut(&id) {
            e.seg = seg;
            e.off = off;
            e.generation = generation;
            e.buf = make();
        }
        s.bytes = after;
        self.note_held(before, after);
    }

    /// Drops every entry (FLUSHALL, or when the data they came from is gone).
    pub fn clear(&self) {
        for shard in self.shards.iter() {
            *shard.lock() = Shard::default();
        }
        for w in self.presence.bits.iter() {
            w.store(0, Ordering::Relaxed);
        }
        self.held.store(0, Ordering::Relaxed);
    }

    /// The tier's figures.
    pub fn stats(&self) -> HotStats {
        let (mut bytes, mut entries) = (0, 0);
        for shard in self.shards.iter() {
            let s = shard.lock();
            bytes += s.bytes as u64;
            entries += s.at.len() as u64;
        }
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        HotStats {
            max_bytes: self.max_bytes,
            bytes,
            entries,
            hits: self.hits.get(),
            misses: self.misses.get(),
            admissions: self.admissions.get(),
            rejections: self.rejections.get(),
            evictions: get(&self.evictions),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::record::{self, Kind};

    fn rec(key: &[u8], value: &[u8]) -> (Bytes, Header) {
        let mut out = Vec::new();
        record::encode_typed(
            &mut out,
            Kind::Put as u8,
            crate::ValueType::String,
            0,
            key,
            b"",
            value,
            0,
        );
        let h = record::decode(&out).expect("decodes").header;
        (Bytes::from(out), h)
    }

    #[test]
    fn an_entry_serves_only_the_location_it_was_read_from() {
        let t = HotTier::new(1 << 20);
        let (buf, _) = rec(b"k", b"v1");
        t.offer(7, 1, 100, 0, &buf);
        assert!(t.get(7, 1, 100, 0).is_some());
        assert!(t.get(7, 1, 100, 1).is_none(), "writes given up since");
        // The key was rewritten elsewhere: the entry is not matched.
        assert!(t.get(7, 1, 200, 0).is_none());
        assert!(t.get(7, 2, 100, 0).is_none());
        let (buf2, _) = rec(b"k", b"v2");
        t.offer(7, 1, 200, 0, &buf2);
        let (got, _) = t.get(7, 1, 200, 0).expect("the new record");
        assert_eq!(&got[..], &buf2[..]);
        assert_eq!(t.stats().entries, 1, "the old record's entry was replaced");
        // A write replaces a held key's entry, and admits no key the tier does not hold.
        let (buf3, _) = rec(b"k", b"v3");
        t.replace(7, 1, 300, 0, &buf3);
        assert_eq!(&t.get(7, 1, 300, 0).expect("replaced").0[..], &buf3[..]);
        t.replace(8, 1, 400, 0, &buf3);
        assert!(t.get(8, 1, 400, 0).is_none());
        assert_eq!(t.stats().entries, 1);
    }

    /// A held key's writes update its entry in place and keep the byte count exact; a
    /// record too big to keep leaves the tier instead of staying as a stale entry.
    #[test]
    fn a_write_updates_a_held_entry_in_place_and_counts_its_bytes() {
        let t = HotTier::new(1 << 20);
        let (small, _) = rec(b"k", b"v");
        t.offer(7, 1, 100, 0, &small);
        let base = t.stats().bytes;
        assert_eq!(base, (small.len() + ENTRY_OVERHEAD) as u64);
        let (bigger, _) = rec(b"k", &[b'x'; 300]);
        t.replace(7, 1, 200, 3, &bigger);
        let st = t.stats();
        assert_eq!(st.bytes, (bigger.len() + ENTRY_OVERHEAD) as u64);
        assert_eq!((st.entries, st.admissions), (1, 1), "{st:?}");
        assert!(t.get(7, 1, 100, 0).is_none(), "the old location");
        assert!(t.get(7, 1, 200, 0).is_none(), "the old generation");
        assert_eq!(&t.get(7, 1, 200, 3).expect("in place").0[..], &bigger[..]);
        t.replace(7, 1, 300, 3, &small);
        assert_eq!(t.stats().bytes, base);
        // A write's own buffer is kept as it is.
        let (owned, _) = rec(b"k", b"w");
        let at = owned.as_ptr();
        t.replace_owned(7, 1, 350, 3, owned.clone());
        t.visit(7, 1, 350, 3, |buf, _| {
            assert_eq!(buf.as_ptr(), at, "not copied")
        })
        .expect("held");
        t.replace(7, 1, 300, 3, &small);
        // Past an eighth of its shard: dropped, not kept at its old location.
        let (huge, _) = rec(b"k", &vec![b'x'; (1 << 20) / 8]);
        t.replace(7, 1, 400, 3, &huge);
        let st = t.stats();
        assert_eq!((st.entries, st.bytes), (0, 0), "{st:?}");
        assert!(t.get(7, 1, 300, 3).is_none());
    }

    #[test]
    fn the_bound_holds_and_a_scan_does_not_flush_what_is_read_often() {
        let t = HotTier::new(64 * 1024 * SHARDS as u64);
        let value = vec![b'x'; 1000];
        let hot: Vec<u64> = (1..=2000u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        // The hot set, read many times.
        for round in 0..10 {
            for (i, &id) in hot.iter().enumerate() {
                if t.get(id, 1, i as u32, 0).is_none() {
                    let (buf, _) = rec(&id.to_le_bytes(), &value);
                    t.offer(id, 1, i as u32, 0, &buf);
                }
                let _ = round;
            }
        }
        let before = hot
            .iter()
            .enumerate()
            .filter(|&(i, &id)| t.get(id, 1, i as u32, 0).is_some())
            .count();
        // A scan of ten times as many keys, each read once.
        for j in 0..20_000u64 {
            let id = (j + 1_000_000).wrapping_mul(0xD6E8_FEB8_6659_FD93);
            if t.get(id, 2, j as u32, 0).is_none() {
                let (buf, _) = rec(&id.to_le_bytes(), &value);
                t.offer(id, 2, j as u32, 0, &buf);
            }
        }
        let after = hot
            .iter()
            .enumerate()
            .filter(|&(i, &id)| t.get(id, 1, i as u32, 0).is_some())
            .count();
        let st = t.stats();
        assert!(st.bytes <= st.max_bytes, "{st:?}");
        assert!(before > 1500, "the hot set fits: {before}");
        assert!(
            after * 10 >= before * 9,
            "a scan kept most of the hot set: {before} -> {after}"
        );
        assert!(st.rejections > 10_000, "{st:?}");
    }

    #[test]
    fn small_records_are_copied_out_and_large_ones_shared_alike() {
        let t = HotTier::new(1 << 24);
        for (id, len) in [
            (1u64, 10usize),
            (2, COPY_MAX),
            (3, COPY_MAX + 1),
            (4, 8 * COPY_MAX),
        ] {
            let (buf, h) = rec(&id.to_le_bytes(), &vec![id as u8; len]);
            t.offer(id, 1, id as u32, 0, &buf);
            // Prefetching is a hint: asked for held and unknown keys alike.
            t.prefetch(id);
            t.prefetch(id + 100);
            let (got, gh) = t.get(id, 1, id as u32, 0).expect("held");
            assert_eq!(&got[..], &buf[..], "{len}");
            assert_eq!((gh.key_len, gh.value_len), (h.key_len, h.value_len));
            assert_eq!(got.as_ptr() == buf.as_ptr(), buf.len() > COPY_MAX, "{len}");
        }
        assert_eq!(t.stats().entries, 4);
    }

    #[test]
    fn off_means_nothing_is_kept() {
        let t = HotTier::new(0);
        let (buf, _) = rec(b"k", b"v");
        t.offer(1, 1, 1, 0, &buf);
        assert!(t.get(1, 1, 1, 0).is_none());
        assert_eq!(t.stats(), HotStats::default());
    }
}
