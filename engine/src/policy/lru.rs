//! LRU: evict the key used least recently.

use super::EvictionPolicy;
use super::idlist::IdList;

/// Least recently used, exact: every access moves the key to the head of a list.
#[derive(Default)]
pub struct Lru {
    list: IdList,
}

/// Set on access; a reclaimed key is kept if it was used since it was last kept.
const USED: u8 = 1;

impl EvictionPolicy for Lru {
    fn name(&self) -> &str {
        "lru"
    }

    fn reserve(&mut self, n: usize) {
        self.list.reserve(n);
    }

    fn on_insert(&mut self, ids: &[u64]) {
        for &id in ids {
            if self.list.contains(id) {
                self.list.move_to_front(id);
            } else {
                self.list.push_front(id);
            }
        }
    }

    fn on_access(&mut self, ids: &[u64]) {
        for &id in ids {
            self.list.move_to_front(id);
            self.list.set_bits(id, USED);
        }
    }

    fn on_remove(&mut self, ids: &[u64]) {
        for &id in ids {
            self.list.remove(id);
        }
    }

    fn victims(&mut self, n: usize, out: &mut Vec<u64>) {
        for _ in 0..n {
            let Some(id) = self.list.back() else { break };
            self.list.remove(id);
            out.push(id);
        }
    }

    fn keep_on_reclaim(&mut self, ids: &[u64], out: &mut Vec<bool>) {
        for &id in ids {
            let used = self.used(id);
            if used {
                self.list.set_bits(id, 0);
            } else {
                self.list.remove(id);
            }
            out.push(used);
        }
    }

    fn memory_bytes(&self) -> usize {
        self.list.memory_bytes()
    }
}

impl Lru {
    fn used(&self, id: u64) -> bool {
        self.list.bits_of(id).is_some_and(|b| b & USED != 0)
    }
}
