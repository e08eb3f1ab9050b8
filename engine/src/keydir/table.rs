//! One shard of the index: an open-addressing table with linear probing over 24-byte
//! entries. Entries hold the key's 64-bit hash, not the key (the key is checked on disk),
//! so the index costs no allocation per key. The hash's top bits name the shard and are
//! the same for every entry of a table, so the entry keeps the eviction policy's bits
//! there instead (see [`Slot::meta`]). Positions come from "fast range" reduction, so the
//! capacity need not be a power of two and the table can grow by 25% at a time, keeping
//! the load between 0.64 and 0.8 (hashbrown's doubling sits at 0.44–0.875).

/// Bits of the hash that choose the shard; the table uses the rest for position.
pub(crate) const SHARD_BITS: u32 = 10;
const MAX_LOAD_NUM: usize = 4;
const MAX_LOAD_DEN: usize = 5;
const MIN_CAP: usize = 8;
/// Where the shard bits, and in an entry the policy's bits, start.
const META_SHIFT: u32 = 64 - SHARD_BITS;
const LOW_MASK: u64 = (1 << META_SHIFT) - 1;
/// Bytes of one entry in [`Table::encode_into`]'s form.
pub(crate) const ENTRY_BYTES: usize = 24;
/// The largest meta value an entry can hold.
pub(crate) const META_MAX: u16 = (1 << SHARD_BITS) - 1;

/// One key's index entry, as the table hands it out.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Slot {
    /// The key's hash (the key id).
    pub hash: u64,
    /// The segment holding the record.
    pub seg: u32,
    /// The record's offset in the segment.
    pub off: u32,
    /// The record's whole length (never 0: a record has a header).
    pub len: u32,
    /// Expiry in whole Unix seconds, rounded up; 0 = never (the exact ms is on disk).
    pub exp_s: u32,
    /// The built-in eviction policy's bits for this key (at most [`META_MAX`]).
    pub meta: u16,
}

/// Two slots are the same when they point at the same record: the policy's bits change
/// on reads, and a read must not make a writer's "is it unchanged?" check fail.
impl PartialEq for Slot {
    fn eq(&self, o: &Slot) -> bool {
        (self.hash, self.seg, self.off, self.len, self.exp_s)
            == (o.hash, o.seg, o.off, o.len, o.exp_s)
    }
}

impl Eq for Slot {}

/// A slot as stored: the hash's low bits under the policy's bits. `len == 0` marks an
/// empty entry.
#[derive(Clone, Copy, Default)]
struct Entry {
    tagged: u64,
    seg: u32,
    off: u32,
    len: u32,
    exp_s: u32,
}

impl Entry {
    const EMPTY: Entry = Entry {
        tagged: 0,
        seg: 0,
        off: 0,
        len: 0,
        exp_s: 0,
    };

    fn of(s: &Slot) -> Entry {
        debug_assert!(s.len != 0 && s.meta <= META_MAX);
        Entry {
            tagged: (s.hash & LOW_MASK) | (s.meta as u64) << META_SHIFT,
            seg: s.seg,
            off: s.off,
            len: s.len,
            exp_s: s.exp_s,
        }
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn low(&self) -> u64 {
        self.tagged & LOW_MASK
    }

    fn meta(&self) -> u16 {
        (self.tagged >> META_SHIFT) as u16
    }

    fn set_meta(&mut self, meta: u16) {
        debug_assert!(meta <= META_MAX);
        self.tagged = self.low() | (meta as u64) << META_SHIFT;
    }
}

/// What a hand does with the slot it looks at (see [`Table::sweep`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandStep {
    /// Leave it as it is.
    Pass,
    /// Keep it with these policy bits.
    Set(u16),
    /// Remove it.
    Evict,
    /// Stop here, before this slot.
    Stop,
}

pub(crate) struct Table {
    slots: Box<[Entry]>,
    len: usize,
    /// The shard's bits, in place: every hash in this table has them.
    prefix: u64,
}

impl Table {
    /// An empty table for the hashes whose top bits are `prefix`'s.
    pub fn new(prefix: u64) -> Self {
        Table {
            slots: Box::new([]),
            len: 0,
            prefix: prefix & !LOW_MASK,
        }
    }

    fn slot(&self, e: &Entry) -> Slot {
        Slot {
            hash: self.prefix | e.low(),
            seg: e.seg,
            off: e.off,
            len: e.len,
            exp_s: e.exp_s,
            meta: e.meta(),
        }
    }

    /// Entries (empty ones included): hand positions run over `0..capacity()`.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn heap_bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<Entry>()
    }

    /// Starts loading the entry where `hash` is looked for first.
    pub fn prefetch(&self, hash: u64) {
        if let Some(e) = self.slots.get(self.home(hash & LOW_MASK)) {
            crate::cache_hint::prefetch(e);
        }
    }

    /// Where `low` (a hash's bits below the shard bits) is looked for first.
    fn home(&self, low: u64) -> usize {
        // The shard bits are constant within a shard, so only the low bits place an
        // entry; shifted up, they fill the range reduction's input.
        let x = low << SHARD_BITS;
        ((x as u128 * self.slots.len() as u128) >> 64) as usize
    }

    fn find(&self, hash: u64) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        debug_assert_eq!(hash & !LOW_MASK, self.prefix);
        let low = hash & LOW_MASK;
        let cap = self.slots.len();
        let mut i = self.home(low);
        loop {
            let e = &self.slots[i];
            if e.is_empty() {
                return None;
            }
            if e.low() == low {
                return Some(i);
            }
            i += 1;
            if i == cap {
                i = 0;
            }
        }
    }

    /// Reads the entry where `hash` would be looked for first and returns a word of
    /// it: a batch that touches its next entries' homes before inserting them has
    /// their cache misses in flight together instead of one after another.
    pub fn touch(&self, hash: u64) -> u32 {
        if self.slots.is_empty() {
            return 0;
        }
        self.slots[self.home(hash & LOW_MASK)].len
    }

    pub fn get(&self, hash: u64) -> Option<Slot> {
        self.find(hash).map(|i| self.slot(&self.slots[i]))
    }

    /// Inserts or replaces; returns the slot it replaced.
    pub fn insert(&mut self, slot: Slot) -> Option<Slot> {
        self.insert_with(slot, |_| slot.meta)
    }

    /// Inserts or replaces `slot`, its policy bits chosen by `meta` from the slot it
    /// replaces (if any); returns that slot.
    pub fn insert_with(
        &mut self,
        mut slot: Slot,
        meta: impl FnOnce(Option<&Slot>) -> u16,
    ) -> Option<Slot> {
        if let Some(i) = self.find(slot.hash) {
            let old = self.slot(&self.slots[i]);
            slot.meta = meta(Some(&old));
            self.slots[i] = Entry::of(&slot);
            return Some(old);
        }
        slot.meta = meta(None);
        if (self.len + 1) * MAX_LOAD_DEN > self.slots.len() * MAX_LOAD_NUM {
            self.resize((self.slots.len() + self.slots.len() / 4 + 1).max(MIN_CAP));
        }
        self.place(Entry::of(&slot));
        self.len += 1;
        None
    }

    /// Changes the policy bits of `hash`'s slot to `f`'s answer (`None`: unchanged);
    /// returns the old and new bits if they changed.
    pub fn update_meta(
        &mut self,
        hash: u64,
        f: impl FnOnce(u16) -> Option<u16>,
    ) -> Option<(u16, u16)> {
        let i = self.find(hash)?;
        let old = self.slots[i].meta();
        let new = f(old).filter(|&m| m != old)?;
        self.slots[i].set_meta(new);
        Some((old, new))
    }

    /// Walks entries from position `from` toward the end, asking `step` about each
    /// slot; evicted slots go to `evicted`. Returns where it stopped (`capacity()` at
    /// the end). A removal pulls later entries back (backward shift), so the position
    /// is looked at again; an entry that wraps from the start to the end may be seen
    /// twice in one walk, which a statistical policy does not mind.
    pub fn sweep(
        &mut self,
        from: usize,
        mut step: impl FnMut(&Slot) -> HandStep,
        mut evicted: impl FnMut(Slot),
    ) -> usize {
        let mut i = from;
        while i < self.slots.len() {
            if self.slots[i].is_empty() {
                i += 1;
                continue;
            }
            let slot = self.slot(&self.slots[i]);
            match step(&slot) {
                HandStep::Pass => i += 1,
                HandStep::Set(m) => {
                    self.slots[i].set_meta(m);
                    i += 1;
                }
                HandStep::Evict => {
                    self.remove_at(i);
                    evicted(slot);
                }
                HandStep::Stop => return i,
            }
        }
        self.slots.len()
    }

    /// Room for `more` inserts without growing meanwhile (a batch that knows its
    /// size): grows once, by at least the usual step so growth stays amortised.
    pub fn reserve(&mut self, more: usize) {
        let want = self.len + more;
        if want * MAX_LOAD_DEN > self.slots.len() * MAX_LOAD_NUM {
            let needed = want * MAX_LOAD_DEN / MAX_LOAD_NUM + 1;
            let step = self.slots.len() + self.slots.len() / 4 + 1;
            self.resize(needed.max(step).max(MIN_CAP));
        }
    }

    fn place(&mut self, e: Entry) {
        let cap = self.slots.len();
        let mut i = self.home(e.low());
        while !self.slots[i].is_empty() {
            i += 1;
            if i == cap {
                i = 0;
            }
        }
        self.slots[i] = e;
    }

    fn resize(&mut self, cap: usize) {
        let old = std::mem::replace(&mut self.slots, vec![Entry::EMPTY; cap].into_boxed_slice());
        for e in old.iter().filter(|e| !e.is_empty()) {
            self.place(*e);
        }
    }

    /// Removes the slot for `hash` if `pred` accepts it.
    pub fn remove_if(&mut self, hash: u64, pred: impl FnOnce(&Slot) -> bool) -> Option<Slot> {
        let i = self.find(hash)?;
        if !pred(&self.slot(&self.slots[i])) {
            return None;
        }
        let removed = self.remove_at(i);
        self.shrink_if_sparse();
        Some(removed)
    }

    /// Shrinks a table less than 60% full (a recovery that reserved for more keys than
    /// came) to the load a resize leaves; growth alone keeps tables above 64%.
    pub fn fit(&mut self) {
        let target = (self.len * 10 / 7 + 1).max(MIN_CAP);
        if self.len * 5 < self.slots.len() * 3 && target < self.slots.len() {
            self.resize(target);
        }
    }

    /// Gives memory back once the table is mostly empty.
    pub fn shrink_if_sparse(&mut self) {
        let cap = self.slots.len();
        if cap > 64 && self.len * 4 < cap {
            self.resize(self.len * 10 / 7 + MIN_CAP);
        }
    }

    /// Backward-shift deletion: no tombstones, so probe lengths do not decay over time.
    fn remove_at(&mut self, mut hole: usize) -> Slot {
        let removed = self.slot(&self.slots[hole]);
        let cap = self.slots.len();
        let mut j = hole;
        loop {
            j += 1;
            if j == cap {
                j = 0;
            }
            let s = self.slots[j];
            if s.is_empty() {
                break;
            }
            let k = self.home(s.low());
            // The entry at j may fill the hole unless its home lies cyclically in (hole, j].
            let stays = if hole <= j {
                hole < k && k <= j
            } else {
                hole < k || k <= j
            };
            if !stays {
                self.slots[hole] = s;
                hole = j;
            }
        }
        self.slots[hole] = Entry::EMPTY;
        self.len -= 1;
        removed
    }

    /// Appends the table's entries, as stored, to `out` (24 bytes each: the hash's low
    /// bits under the policy bits, segment, offset, length, expiry); returns how many.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> usize {
        let mut n = 0;
        for e in self.slots.iter().filter(|e| !e.is_empty()) {
            out.extend_from_slice(&e.tagged.to_le_bytes());
            out.extend_from_slice(&e.seg.to_le_bytes());
            out.extend_from_slice(&e.off.to_le_bytes());
            out.extend_from_slice(&e.len.to_le_bytes());
            out.extend_from_slice(&e.exp_s.to_le_bytes());
            n += 1;
        }
        n
    }

    /// A table of `capacity` entries for `prefix` holding the entries `bytes` encodes
    /// (see [`Table::encode_into`]); `None` if they do not fit or one is malformed.
    pub fn decode(prefix: u64, capacity: usize, bytes: &[u8]) -> Option<Table> {
        if !bytes.len().is_multiple_of(ENTRY_BYTES) {
            return None;
        }
        let n = bytes.len() / ENTRY_BYTES;
        if n * MAX_LOAD_DEN > capacity * MAX_LOAD_NUM || (n > 0 && capacity == 0) {
            return None;
        }
        // A table shrinks once it is a quarter full, so a far larger capacity is not
        // one this engine wrote (and must not become an allocation).
        if capacity > 8 * n + 1024 {
            return None;
        }
        let mut t = Table::new(prefix);
        t.slots = vec![Entry::EMPTY; capacity].into_boxed_slice();
        let u32_at = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        for b in bytes.chunks_exact(ENTRY_BYTES) {
            let mut tagged = [0u8; 8];
            tagged.copy_from_slice(&b[..8]);
            let e = Entry {
                tagged: u64::from_le_bytes(tagged),
                seg: u32_at(b, 8),
                off: u32_at(b, 12),
                len: u32_at(b, 16),
                exp_s: u32_at(b, 20),
            };
            if e.is_empty() || t.find(prefix | e.low()).is_some() {
                return None;
            }
            t.place(e);
            t.len += 1;
        }
        Some(t)
    }

    /// Empties the table, returning what it held.
    pub fn take_all(&mut self) -> Vec<Slot> {
        let old = std::mem::replace(&mut self.slots, Box::new([]));
        self.len = 0;
        old.iter()
            .filter(|e| !e.is_empty())
            .map(|e| self.slot(e))
            .collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = Slot> + '_ {
        self.slots
            .iter()
            .filter(|e| !e.is_empty())
            .map(|e| self.slot(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn slot(hash: u64, off: u32) -> Slot {
        Slot {
            hash,
            seg: 1,
            off,
            len: 10,
            exp_s: 0,
            meta: 0,
        }
    }

    fn xorshift(mut x: u64) -> u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }

    #[test]
    fn matches_a_hashmap_under_random_inserts_and_removes() {
        let mut t = Table::new(5 << (64 - SHARD_BITS));
        let mut model = HashMap::new();
        let mut r = 0x1234_5678_u64;
        for step in 0..200_000u32 {
            r = xorshift(r);
            // A small key space forces replacements and removals of present keys; the
            // top bits are fixed as in one shard, to exercise the rotation.
            let hash = (r % 3000 + 1) | (5 << (64 - SHARD_BITS));
            if r.is_multiple_of(3) {
                assert_eq!(
                    t.remove_if(hash, |_| true),
                    model.remove(&hash),
                    "step {step}"
                );
            } else {
                let s = slot(hash, step);
                assert_eq!(t.insert(s), model.insert(hash, s), "step {step}");
            }
            assert_eq!(t.len(), model.len());
        }
        for (h, s) in &model {
            assert_eq!(t.get(*h), Some(*s));
        }
        assert_eq!(t.iter().count(), model.len());
    }

    #[test]
    fn load_stays_between_bounds_while_growing() {
        let mut t = Table::new(0);
        let mut r = 99u64;
        for n in 1..=100_000usize {
            r = xorshift(r);
            t.insert(slot((r & LOW_MASK) | 1, 0));
            if n > 1000 {
                let load = n as f64 / (t.heap_bytes() / 24) as f64;
                assert!((0.6..=0.8).contains(&load), "load {load} at {n}");
            }
        }
    }

    #[test]
    fn reserve_makes_room_once_and_keeps_every_slot() {
        let mut t = Table::new(0);
        for h in 1..=100u64 {
            t.insert(slot(h, 0));
        }
        t.reserve(10_000);
        let cap = t.heap_bytes();
        for h in 101..=10_100u64 {
            t.insert(slot(h, 0));
        }
        assert_eq!(t.heap_bytes(), cap, "no growth inside the reservation");
        assert_eq!(t.len(), 10_100);
        assert!((1..=10_100u64).all(|h| t.get(h).is_some()));
        // A reservation that fits changes nothing.
        t.reserve(0);
        assert_eq!(t.heap_bytes(), cap);
    }

    #[test]
    fn fit_shrinks_only_an_overreserved_table_and_keeps_every_slot() {
        let mut t = Table::new(0);
        for h in 1..=1000u64 {
            t.insert(slot(h, 0));
        }
        let grown = t.capacity();
        t.fit();
        assert_eq!(t.capacity(), grown, "growth leaves a table full enough");
        t.reserve(20_000);
        t.fit();
        assert!(t.capacity() < grown * 2, "{} slots for 1000", t.capacity());
        assert!(
            t.len() * 10 <= t.capacity() * 8,
            "still under the maximum load"
        );
        assert!((1..=1000u64).all(|h| t.get(h).is_some()));
    }

    #[test]
    fn remove_if_respects_the_predicate_and_shrinks() {
        let mut t = Table::new(0);
        for h in 1..=1000u64 {
            t.insert(slot(h, h as u32));
        }
        assert_eq!(t.remove_if(5, |s| s.off == 6), None);
        assert!(t.remove_if(5, |s| s.off == 5).is_some());
        let big = t.heap_bytes();
        for h in 6..=1000u64 {
            t.remove_if(h, |_| true);
        }
        assert!(t.heap_bytes() < big / 4);
        assert_eq!(t.get(1).map(|s| s.off), Some(1));
        assert_eq!(t.take_all().len(), 4);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn policy_bits_live_in_the_shard_bits_and_survive_moves() {
        let prefix = 0x2ab_u64 << (64 - SHARD_BITS);
        let mut t = Table::new(prefix);
        let hashes: Vec<u64> = (1..=5000u64).map(|h| prefix | (h * 7919)).collect();
        for (i, &h) in hashes.iter().enumerate() {
            t.insert(Slot {
                meta: (i as u16) % (META_MAX + 1),
                ..slot(h, i as u32)
            });
        }
        // Growth moved every entry; the bits and the full hash came along.
        for (i, &h) in hashes.iter().enumerate() {
            let s = t.get(h).expect("present");
            assert_eq!(
                (s.hash, s.off, s.meta),
                (h, i as u32, (i as u16) % (META_MAX + 1))
            );
        }
        // A replacement picks its bits from the slot it replaces.
        let old = t.insert_with(slot(hashes[3], 99), |old| old.map_or(0, |o| o.meta + 1));
        assert_eq!(old.map(|o| o.meta), Some(3));
        assert_eq!(t.get(hashes[3]).map(|s| (s.off, s.meta)), Some((99, 4)));
        assert_eq!(t.update_meta(hashes[3], Some), None, "unchanged");
        assert_eq!(t.update_meta(hashes[3], |_| Some(9)), Some((4, 9)));
        // Slots compare by the record they point at, not by their bits.
        assert_eq!(t.get(hashes[3]), Some(slot(hashes[3], 99)));
    }

    #[test]
    fn a_sweep_sees_every_slot_once_and_evicts_in_place() {
        let mut t = Table::new(0);
        for h in 1..=3000u64 {
            t.insert(slot(h * 0x9E37_79B9, h as u32));
        }
        let mut seen = std::collections::HashSet::new();
        let mut evicted = Vec::new();
        let end = t.sweep(
            0,
            |s| {
                seen.insert(s.hash);
                match s.off % 3 {
                    0 => HandStep::Evict,
                    1 => HandStep::Set(1),
                    _ => HandStep::Pass,
                }
            },
            |s| evicted.push(s.off),
        );
        assert_eq!(end, t.capacity());
        assert_eq!(seen.len(), 3000);
        assert_eq!(evicted.len(), 1000);
        assert!(evicted.iter().all(|o| o % 3 == 0));
        assert_eq!(t.len(), 2000);
        assert!(t.iter().all(|s| s.meta == (s.off % 3 == 1) as u16));
        // Stop leaves the rest alone and says where.
        let mut n = 0;
        let at = t.sweep(
            0,
            |_| {
                n += 1;
                if n > 10 {
                    HandStep::Stop
                } else {
                    HandStep::Pass
                }
            },
            |_| {},
        );
        assert!(at < t.capacity());
        assert_eq!(t.len(), 2000);
    }

    #[test]
    fn encoded_entries_decode_into_the_same_table() {
        let prefix = 3u64 << (64 - SHARD_BITS);
        let mut t = Table::new(prefix);
        for h in 1..=2000u64 {
            t.insert(Slot {
                meta: (h % 7) as u16,
                exp_s: h as u32,
                ..slot(prefix | (h * 0x1_0001), h as u32)
            });
        }
        let mut bytes = Vec::new();
        assert_eq!(t.encode_into(&mut bytes), 2000);
        let back = Table::decode(prefix, t.capacity(), &bytes).expect("decodes");
        assert_eq!((back.len(), back.capacity()), (2000, t.capacity()));
        for s in t.iter() {
            let b = back.get(s.hash).expect("present");
            assert_eq!((b, b.meta), (s, s.meta));
        }
        // Too many for the capacity, far too few, a torn entry, an empty one or a
        // duplicate: refused.
        assert!(Table::decode(prefix, 100, &bytes).is_none());
        assert!(Table::decode(prefix, 1 << 30, &bytes).is_none());
        assert!(Table::decode(prefix, t.capacity(), &bytes[..bytes.len() - 1]).is_none());
        let mut zero = bytes.clone();
        zero[16..20].fill(0);
        assert!(Table::decode(prefix, t.capacity(), &zero).is_none());
        let mut twice = bytes[..48].to_vec();
        twice.extend_from_slice(&bytes[..24]);
        assert!(Table::decode(prefix, t.capacity(), &twice).is_none());
    }
}
