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
//! Admission is TinyLFU: a count-min sketch of 4-bit counters (halved as it fills, so
//! it forgets) estimates how often each key was read; while the tier has room every
//! read record enters, and once it is full a record enters only if it was read more
//! often than the entry it would evict. A scan reads each key once, so it cannot flush
//! the keys that are read again and again. Eviction is CLOCK within each shard.

use crate::format::record::Header;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// Most shards (a power of two): a read locks one. A small tier has fewer, of at least
/// 256 KiB each, so that one shard still holds records of a few KiB.
const SHARDS: usize = 64;
/// What an entry costs beyond its bytes: the entry, its table slot, the buffer's
/// allocation header (an estimate, counted so the bound holds for small values).
const ENTRY_OVERHEAD: usize = 96;

/// One cached record.
struct Entry {
    /// The key id (the index's hash, database included).
    id: u64,
    seg: u32,
    off: u32,
    /// The log's generation when it was read (see [`HotTier::get`]).
    generation: u64,
    /// The whole record, as read and checked.
    buf: Bytes,
    header: Header,
    /// Read since the clock hand last passed.
    visited: bool,
}

impl Entry {
    fn cost(&self) -> usize {
        self.buf.len() + ENTRY_OVERHEAD
    }
}

/// A shard: a table from key id to a place in `ring`, and the CLOCK ring.
#[derive(Default)]
struct Shard {
    at: HashMap<u64, u32, IdHash>,
    ring: Vec<Option<Entry>>,
    free: Vec<u32>,
    hand: usize,
    bytes: usize,
}

/// Key ids are uniform hashes already: the table uses them as they are.
#[derive(Default, Clone, Copy)]
struct IdHash;

impl std::hash::BuildHasher for IdHash {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

/// See [`IdHash`].
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, v: u64) {
        // Mixed once more: the low bits carry the database.
        self.0 = (v ^ (v >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    }
}

impl Shard {
    fn remove_at(&mut self, i: u32) -> Option<Entry> {
        let e = self.ring.get_mut(i as usize)?.take()?;
        self.at.remove(&e.id);
        self.bytes -= e.cost();
        self.free.push(i);
        Some(e)
    }

    /// The entry the CLOCK hand stops at (clearing visited marks on the way); `None`
    /// if the shard is empty.
    fn victim(&mut self) -> Option<u32> {
        if self.at.is_empty() {
            return None;
        }
        let n = self.ring.len();
        // Two turns at most: the first clears every mark.
        for _ in 0..2 * n + 1 {
            let i = self.hand % n;
            self.hand = (i + 1) % n;
            if let Some(e) = &mut self.ring[i] {
                if e.visited {
                    e.visited = false;
                } else {
                    return Some(i as u32);
                }
            }
        }
        None
    }

    fn insert(&mut self, e: Entry) {
        self.bytes += e.cost();
        let id = e.id;
        let i = match self.free.pop() {
            Some(i) => {
                self.ring[i as usize] = Some(e);
                i
            }
            None => {
                self.ring.push(Some(e));
                (self.ring.len() - 1) as u32
            }
        };
        self.at.insert(id, i);
    }
}

/// The frequency sketch: four rows of 4-bit counters (one per byte, for lock-free
/// increments), halved after `10 ×` its width in increments.
struct Sketch {
    rows: Box<[AtomicU8]>,
    mask: usize,
    added: AtomicU64,
    reset_at: u64,
}

impl Sketch {
    fn new(width: usize) -> Sketch {
        let width = width.next_power_of_two().max(1024);
        Sketch {
            rows: (0..4 * width).map(|_| AtomicU8::new(0)).collect(),
            mask: width - 1,
            added: AtomicU64::new(0),
            reset_at: 10 * width as u64,
        }
    }

    fn places(&self, id: u64) -> [usize; 4] {
        let width = self.mask + 1;
        let mut h = id;
        std::array::from_fn(|row| {
            h = (h ^ (h >> 31)).wrapping_mul(0x94D0_49BB_1331_11EB);
            row * width + (h as usize & self.mask)
        })
    }

    fn estimate(&self, id: u64) -> u8 {
        self.places(id)
            .iter()
            .map(|&p| self.rows[p].load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    }

    fn add(&self, id: u64) {
        for p in self.places(id) {
            let c = &self.rows[p];
            let v = c.load(Ordering::Relaxed);
            if v < 15 {
                // A lost increment under a race only makes the estimate lower.
                c.store(v + 1, Ordering::Relaxed);
            }
        }
        if self.added.fetch_add(1, Ordering::Relaxed) + 1 == self.reset_at {
            for c in self.rows.iter() {
                c.store(c.load(Ordering::Relaxed) / 2, Ordering::Relaxed);
            }
            self.added.store(0, Ordering::Relaxed);
        }
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
    sketch: Option<Sketch>,
    shard_bytes: usize,
    max_bytes: u64,
    hits: AtomicU64,
    misses: AtomicU64,
    admissions: AtomicU64,
    rejections: AtomicU64,
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
            // About one counter per 256 bytes held: several per entry of small values.
            sketch: on.then(|| Sketch::new((max_bytes / 256).min(1 << 22) as usize)),
            shard_bytes: (max_bytes as usize) / shards.max(1),
            max_bytes,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            admissions: AtomicU64::new(0),
            rejections: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    fn shard(&self, id: u64) -> Option<&Mutex<Shard>> {
        // The top bits: the table inside the shard mixes the id itself.
        let n = self.shards.len();
        self.shards.get((id >> 58) as usize & n.wrapping_sub(1))
    }

    /// The record of key `id` if the tier holds the one at (`seg`, `off`), read while
    /// the log's generation was `generation`: writes given up after a failure may let
    /// a later record take the same place, so an entry of an earlier generation is not
    /// matched.
    pub fn get(&self, id: u64, seg: u32, off: u32, generation: u64) -> Option<(Bytes, Header)> {
        let shard = self.shard(id)?;
        let sketch = self.sketch.as_ref()?;
        sketch.add(id);
        let mut s = shard.lock();
        let found = s.at.get(&id).copied().and_then(|i| {
            let e = s.ring[i as usize].as_mut()?;
            (e.seg == seg && e.off == off && e.generation == generation).then(|| {
                e.visited = true;
                (e.buf.clone(), e.header)
            })
        });
        drop(s);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Offers the record of key `id` just read from (`seg`, `off`): admitted if there
    /// is room, or if it was read more often than the entry it would evict. An entry of
    /// an older record of the same key is replaced.
    pub fn offer(&self, id: u64, seg: u32, off: u32, generation: u64, buf: &Bytes, header: Header) {
        let (Some(shard), Some(sketch)) = (self.shard(id), self.sketch.as_ref()) else {
            return;
        };
        let entry = Entry {
            id,
            seg,
            off,
            generation,
            buf: buf.clone(),
            header,
            visited: false,
        };
        let cost = entry.cost();
        // One record may take at most an eighth of its shard.
        if cost > self.shard_bytes / 8 {
            return;
        }
        let mut s = shard.lock();
        if let Some(i) = s.at.get(&id).copied() {
            s.remove_at(i);
        }
        let freq = sketch.estimate(id);
        while s.bytes + cost > self.shard_bytes {
            let Some(v) = s.victim() else { break };
            let victim_id = s.ring[v as usize].as_ref().map_or(0, |e| e.id);
            if freq <= sketch.estimate(victim_id) {
                self.rejections.fetch_add(1, Ordering::Relaxed);
                return;
            }
            s.remove_at(v);
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
        s.insert(entry);
        self.admissions.fetch_add(1, Ordering::Relaxed);
    }

    /// Replaces the entry of key `id`, if the tier holds one, by its new record `rec`
    /// just appended at (`seg`, `off`): a key being read often stays in memory across
    /// its writes. The record is copied (the caller's buffer may hold other records).
    pub fn replace(&self, id: u64, seg: u32, off: u32, generation: u64, rec: &[u8]) {
        let Some(shard) = self.shard(id) else { return };
        let held = shard.lock().at.contains_key(&id);
        if let (true, Some(header)) = (held, Header::parse(rec)) {
            self.offer(
                id,
                seg,
                off,
                generation,
                &Bytes::copy_from_slice(rec),
                header,
            );
        }
    }

    /// Drops every entry (FLUSHALL, or when the data they came from is gone).
    pub fn clear(&self) {
        for shard in self.shards.iter() {
            *shard.lock() = Shard::default();
        }
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
            hits: get(&self.hits),
            misses: get(&self.misses),
            admissions: get(&self.admissions),
            rejections: get(&self.rejections),
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
        let (buf, h) = rec(b"k", b"v1");
        t.offer(7, 1, 100, 0, &buf, h);
        assert!(t.get(7, 1, 100, 0).is_some());
        assert!(t.get(7, 1, 100, 1).is_none(), "writes given up since");
        // The key was rewritten elsewhere: the entry is not matched.
        assert!(t.get(7, 1, 200, 0).is_none());
        assert!(t.get(7, 2, 100, 0).is_none());
        let (buf2, h2) = rec(b"k", b"v2");
        t.offer(7, 1, 200, 0, &buf2, h2);
        let (got, _) = t.get(7, 1, 200, 0).expect("the new record");
        assert_eq!(&got[..], &buf2[..]);
        assert_eq!(t.stats().entries, 1, "the old record's entry was replaced");
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
                    let (buf, h) = rec(&id.to_le_bytes(), &value);
                    t.offer(id, 1, i as u32, 0, &buf, h);
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
                let (buf, h) = rec(&id.to_le_bytes(), &value);
                t.offer(id, 2, j as u32, 0, &buf, h);
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
    fn off_means_nothing_is_kept() {
        let t = HotTier::new(0);
        let (buf, h) = rec(b"k", b"v");
        t.offer(1, 1, 1, 0, &buf, h);
        assert!(t.get(1, 1, 1, 0).is_none());
        assert_eq!(t.stats(), HotStats::default());
    }
}
