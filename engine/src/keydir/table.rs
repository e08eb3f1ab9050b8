//! One shard of the index: an open-addressing table with linear probing over 24-byte
//! slots. Slots hold the key's 64-bit hash, not the key (the key is checked on disk), so
//! the index costs no allocation per key. Positions come from "fast range" reduction, so
//! the capacity need not be a power of two and the table can grow by 25% at a time,
//! keeping the load between 0.64 and 0.8 (hashbrown's doubling sits at 0.44–0.875).

/// Bits of the hash that choose the shard; the table uses the rest for position.
pub(crate) const SHARD_BITS: u32 = 10;
const MAX_LOAD_NUM: usize = 4;
const MAX_LOAD_DEN: usize = 5;
const MIN_CAP: usize = 8;

/// One key's index entry. `hash == 0` marks an empty slot; key hashes are never 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Slot {
    /// The key's hash (the key id).
    pub hash: u64,
    /// The segment holding the record.
    pub seg: u32,
    /// The record's offset in the segment.
    pub off: u32,
    /// The record's whole length.
    pub len: u32,
    /// Expiry in whole Unix seconds, rounded up; 0 = never (the exact ms is on disk).
    pub exp_s: u32,
}

impl Slot {
    const EMPTY: Slot = Slot {
        hash: 0,
        seg: 0,
        off: 0,
        len: 0,
        exp_s: 0,
    };
}

pub(crate) struct Table {
    slots: Box<[Slot]>,
    len: usize,
}

impl Table {
    pub fn new() -> Self {
        Table {
            slots: Box::new([]),
            len: 0,
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn heap_bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<Slot>()
    }

    fn home(&self, hash: u64) -> usize {
        // The shard bits are the top bits of the hash and constant within a shard, so
        // rotate them to the bottom where the range reduction ignores them.
        let x = hash.rotate_left(SHARD_BITS);
        ((x as u128 * self.slots.len() as u128) >> 64) as usize
    }

    fn find(&self, hash: u64) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let cap = self.slots.len();
        let mut i = self.home(hash);
        loop {
            let h = self.slots[i].hash;
            if h == hash {
                return Some(i);
            }
            if h == 0 {
                return None;
            }
            i += 1;
            if i == cap {
                i = 0;
            }
        }
    }

    pub fn get(&self, hash: u64) -> Option<&Slot> {
        self.find(hash).map(|i| &self.slots[i])
    }

    /// Inserts or replaces; returns the slot it replaced.
    pub fn insert(&mut self, slot: Slot) -> Option<Slot> {
        debug_assert_ne!(slot.hash, 0);
        if let Some(i) = self.find(slot.hash) {
            return Some(std::mem::replace(&mut self.slots[i], slot));
        }
        if (self.len + 1) * MAX_LOAD_DEN > self.slots.len() * MAX_LOAD_NUM {
            self.resize((self.slots.len() + self.slots.len() / 4 + 1).max(MIN_CAP));
        }
        self.place(slot);
        self.len += 1;
        None
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

    fn place(&mut self, slot: Slot) {
        let cap = self.slots.len();
        let mut i = self.home(slot.hash);
        while self.slots[i].hash != 0 {
            i += 1;
            if i == cap {
                i = 0;
            }
        }
        self.slots[i] = slot;
    }

    fn resize(&mut self, cap: usize) {
        let old = std::mem::replace(&mut self.slots, vec![Slot::EMPTY; cap].into_boxed_slice());
        for s in old.iter().filter(|s| s.hash != 0) {
            self.place(*s);
        }
    }

    /// Removes the slot for `hash` if `pred` accepts it.
    pub fn remove_if(&mut self, hash: u64, pred: impl FnOnce(&Slot) -> bool) -> Option<Slot> {
        let i = self.find(hash)?;
        if !pred(&self.slots[i]) {
            return None;
        }
        let removed = self.remove_at(i);
        let cap = self.slots.len();
        if cap > 64 && self.len * 4 < cap {
            self.resize(self.len * 10 / 7 + MIN_CAP);
        }
        Some(removed)
    }

    /// Backward-shift deletion: no tombstones, so probe lengths do not decay over time.
    fn remove_at(&mut self, mut hole: usize) -> Slot {
        let removed = self.slots[hole];
        let cap = self.slots.len();
        let mut j = hole;
        loop {
            j += 1;
            if j == cap {
                j = 0;
            }
            let s = self.slots[j];
            if s.hash == 0 {
                break;
            }
            let k = self.home(s.hash);
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
        self.slots[hole] = Slot::EMPTY;
        self.len -= 1;
        removed
    }

    /// Empties the table, returning what it held.
    pub fn take_all(&mut self) -> Vec<Slot> {
        let old = std::mem::replace(&mut self.slots, Box::new([]));
        self.len = 0;
        old.iter().copied().filter(|s| s.hash != 0).collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Slot> {
        self.slots.iter().filter(|s| s.hash != 0)
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
        let mut t = Table::new();
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
            assert_eq!(t.get(*h), Some(s));
        }
        assert_eq!(t.iter().count(), model.len());
    }

    #[test]
    fn load_stays_between_bounds_while_growing() {
        let mut t = Table::new();
        let mut r = 99u64;
        for n in 1..=100_000usize {
            r = xorshift(r);
            t.insert(slot(r | 1, 0));
            if n > 1000 {
                let load = n as f64 / (t.heap_bytes() / 24) as f64;
                assert!((0.6..=0.8).contains(&load), "load {load} at {n}");
            }
        }
    }

    #[test]
    fn reserve_makes_room_once_and_keeps_every_slot() {
        let mut t = Table::new();
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
    fn remove_if_respects_the_predicate_and_shrinks() {
        let mut t = Table::new();
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
}
