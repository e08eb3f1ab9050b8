//! An eviction policy: SIEVE (NSDI'24; insertion order, a visited bit, a moving hand)
//! for ordinary keys, while keys starting with one of the `protected_prefixes`
//! (comma-separated setting) are evicted only when no ordinary key is left. With no
//! protected prefixes it is plain SIEVE. A plugin is standalone WebAssembly, so it
//! carries its own structures rather than the engine's; they are laid out for few cache
//! misses per call, which is most of what a policy costs.

use caskade_plugin_sdk::{
    EvictionPolicy, Inserted, PluginError, Settings, export_eviction_policy, setting,
};
/// An open-addressing table from key id to a position, probed linearly. Key ids are
/// uniform hashes and never 0, so an id places itself and 0 marks an empty slot. One
/// cache line per lookup, where a general-purpose map would touch several.
#[derive(Default)]
struct IdTable {
    slots: Vec<(u64, u32)>,
    len: usize,
}

impl IdTable {
    fn home(&self, id: u64) -> usize {
        // Mixed first: ids are hashes, but a policy should not rely on how good.
        let bits = self.slots.len().trailing_zeros();
        ((id ^ (id >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9) >> (64 - bits)) as usize
    }

    fn find(&self, id: u64) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(id);
        loop {
            match self.slots[i].0 {
                0 => return None,
                k if k == id => return Some(i),
                _ => i = (i + 1) & mask,
            }
        }
    }

    fn get(&self, id: u64) -> Option<u32> {
        self.find(id).map(|i| self.slots[i].1)
    }

    /// Reads the slot `id` is looked for first (see [`warm`]).
    fn touch(&self, id: u64) -> u64 {
        if self.slots.is_empty() {
            return 0;
        }
        self.slots[self.home(id)].0
    }

    /// Sets `id`'s position, adding the id if it is new.
    fn set(&mut self, id: u64, at: u32) {
        if let Some(i) = self.find(id) {
            self.slots[i].1 = at;
            return;
        }
        // At most 70% full, so probes stay short.
        if (self.len + 1) * 10 > self.slots.len() * 7 {
            self.grow();
        }
        self.place(id, at);
        self.len += 1;
    }

    /// Sets the positions of `ids` to `first`, `first + 1`, ... (their slots warmed
    /// first).
    fn renumber(&mut self, ids: &[u64], first: usize) {
        warm(self, ids.iter().copied());
        for (j, &id) in ids.iter().enumerate() {
            self.set(id, (first + j) as u32);
        }
    }

    fn place(&mut self, id: u64, at: u32) {
        let mask = self.slots.len() - 1;
        let mut i = self.home(id);
        while self.slots[i].0 != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = (id, at);
    }

    fn grow(&mut self) {
        let cap = (self.slots.len() * 2).max(16);
        let old = std::mem::replace(&mut self.slots, vec![(0, 0); cap]);
        for (id, at) in old.into_iter().filter(|e| e.0 != 0) {
            self.place(id, at);
        }
    }

    /// Removes `id`, returning its position; later entries of its probe run move back
    /// into the hole, so no tombstones accumulate.
    fn remove(&mut self, id: u64) -> Option<u32> {
        let mut hole = self.find(id)?;
        let at = self.slots[hole].1;
        let mask = self.slots.len() - 1;
        let mut i = hole;
        loop {
            i = (i + 1) & mask;
            let (k, _) = self.slots[i];
            if k == 0 {
                break;
            }
            // An entry may fill the hole if its home is not between the hole and it.
            let home = self.home(k);
            if (i.wrapping_sub(home) & mask) >= (i.wrapping_sub(hole) & mask) {
                self.slots[hole] = self.slots[i];
                hole = i;
            }
        }
        self.slots[hole] = (0, 0);
        self.len -= 1;
        Some(at)
    }
}

/// Touches the table slot of every id of a batch before the batch is worked on, so
/// their cache misses are under way together instead of one after another; batches are
/// short enough for the touched lines to stay in cache until they are used.
fn warm(table: &IdTable, ids: impl Iterator<Item = u64>) {
    let seen = ids.fold(0u64, |acc, id| acc ^ table.touch(id));
    std::hint::black_box(seen);
}

/// SIEVE: keys stay in insertion order in an array (holes where keys left, squeezed
/// out once they are three times the keys); an access sets a visited bit; the hand walks
/// from the oldest toward the newest, clearing visited bits, and evicts the first
/// unvisited key it meets. The hand's walk reads the array in sequence.
#[derive(Default)]
struct Sieve {
    /// Key ids in insertion order; 0 is a hole left by a removal.
    order: Vec<u64>,
    /// Each position's visited bit.
    visited: Vec<bool>,
    /// Where each key is in `order`.
    at: IdTable,
    /// The next position the hand looks at.
    hand: usize,
    holes: usize,
}

impl Sieve {
    fn contains(&self, id: u64) -> bool {
        self.at.get(id).is_some()
    }

    fn insert(&mut self, id: u64) {
        if self.contains(id) {
            return;
        }
        self.at.set(id, self.order.len() as u32);
        self.order.push(id);
        self.visited.push(false);
    }

    fn touch(&mut self, id: u64) -> bool {
        match self.at.get(id) {
            Some(at) => {
                self.visited[at as usize] = true;
                true
            }
            None => false,
        }
    }

    fn take_visited(&mut self, id: u64) -> Option<bool> {
        let at = self.at.get(id)?;
        Some(std::mem::replace(&mut self.visited[at as usize], false))
    }

    fn remove(&mut self, id: u64) -> bool {
        let Some(at) = self.at.remove(id) else {
            return false;
        };
        self.order[at as usize] = 0;
        self.visited[at as usize] = false;
        self.holes += 1;
        self.squeeze_if_sparse();
        true
    }

    fn squeeze_if_sparse(&mut self) {
        // Holes may be three times the keys: squeezing renumbers every key, a random
        // table write each, so it is done rarely; an entry is 9 bytes.
        if self.holes > 1024 && self.holes > 3 * self.at.len {
            self.squeeze();
        }
    }

    /// Drops the holes, keeping the order and the hand's place in it. The moved keys'
    /// positions are updated a chunk at a time, each chunk's table slots warmed first.
    fn squeeze(&mut self) {
        let mut kept = 0;
        let mut hand = self.order.len();
        let mut chunk: Vec<u64> = Vec::with_capacity(64);
        for i in 0..self.order.len() {
            if i == self.hand {
                hand = kept;
            }
            let id = self.order[i];
            if id == 0 {
                continue;
            }
            self.order[kept] = id;
            self.visited[kept] = self.visited[i];
            kept += 1;
            chunk.push(id);
            if chunk.len() == chunk.capacity() {
                self.at.renumber(&chunk, kept - chunk.len());
                chunk.clear();
            }
        }
        self.at.renumber(&chunk, kept - chunk.len());
        if hand == self.order.len() {
            hand = kept;
        }
        self.order.truncate(kept);
        self.visited.truncate(kept);
        self.hand = hand;
        self.holes = 0;
    }

    /// Up to `n` victims, appended to `out`. The hand's walk marks them as holes; their
    /// table entries are removed afterwards as a batch.
    fn victims(&mut self, n: usize, out: &mut Vec<u64>) {
        let from = out.len();
        let mut live = self.at.len;
        while out.len() - from < n && live > 0 {
            if self.hand >= self.order.len() {
                self.hand = 0;
            }
            let i = self.hand;
            self.hand += 1;
            if self.order[i] == 0 {
                continue;
            }
            if self.visited[i] {
                self.visited[i] = false;
                continue;
            }
            out.push(self.order[i]);
            self.order[i] = 0;
            live -= 1;
        }
        let chosen = &out[from..];
        warm(&self.at, chosen.iter().copied());
        for &id in chosen {
            self.at.remove(id);
        }
        self.holes += chosen.len();
        self.squeeze_if_sparse();
    }
}

struct PrefixPriority {
    protected: Vec<Vec<u8>>,
    ordinary: Sieve,
    guarded: Sieve,
}

impl EvictionPolicy for PrefixPriority {
    fn init(settings: &Settings) -> Result<Self, PluginError> {
        let protected = setting(settings, "protected_prefixes")
            .unwrap_or("")
            .split(',')
            .filter(|p| !p.is_empty())
            .map(|p| p.as_bytes().to_vec())
            .collect();
        Ok(PrefixPriority {
            protected,
            ordinary: Sieve::default(),
            guarded: Sieve::default(),
        })
    }

    /// Keys are needed only to tell protected ones apart: plain SIEVE does without.
    fn wants_keys(&self) -> bool {
        !self.protected.is_empty()
    }

    fn on_insert(&mut self, keys: &Inserted<'_>) {
        // Most keys go to the ordinary keys' table.
        warm(&self.ordinary.at, keys.ids().iter().copied());
        for (id, key) in keys.iter() {
            if self.protected.iter().any(|p| key.starts_with(p)) {
                self.guarded.insert(id);
            } else {
                self.ordinary.insert(id);
            }
        }
    }

    fn on_access(&mut self, ids: &[u64]) {
        warm(&self.ordinary.at, ids.iter().copied());
        for &id in ids {
            if !self.ordinary.touch(id) {
                self.guarded.touch(id);
            }
        }
    }

    fn on_remove(&mut self, ids: &[u64]) {
        warm(&self.ordinary.at, ids.iter().copied());
        for &id in ids {
            if !self.ordinary.remove(id) {
                self.guarded.remove(id);
            }
        }
    }

    fn victims(&mut self, n: u32) -> Vec<u64> {
        let mut out = Vec::with_capacity(n as usize);
        self.ordinary.victims(n as usize, &mut out);
        let left = n as usize - out.len();
        if left > 0 {
            self.guarded.victims(left, &mut out);
        }
        out
    }

    fn keep_on_reclaim(&mut self, ids: &[u64]) -> Vec<bool> {
        ids.iter()
            .map(|&id| {
                if self.guarded.contains(id) {
                    return true;
                }
                // Ordinary keys are kept if visited since the hand last passed.
                let keep = self.ordinary.take_visited(id).unwrap_or(false);
                if !keep {
                    self.ordinary.remove(id);
                }
                keep
            })
            .collect()
    }
}

export_eviction_policy!(PrefixPriority);
