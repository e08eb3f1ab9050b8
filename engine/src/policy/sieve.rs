//! SIEVE (Zhang et al., NSDI'24): keys stay in insertion order; an access only sets a
//! visited bit; a hand moving from the oldest key toward the newest clears visited
//! bits and evicts the first unvisited key it meets.

use super::EvictionPolicy;
use super::idlist::IdList;

const VISITED: u8 = 1;

/// SIEVE.
#[derive(Default)]
pub struct Sieve {
    list: IdList,
    /// The node the hand rests on; `None` means "start at the oldest".
    hand: Option<u32>,
}

impl Sieve {
    fn remove(&mut self, id: u64) -> bool {
        if let Some(h) = self.hand
            && self.list.node(h).0 == id
        {
            self.hand = self.list.newer(h);
        }
        let removed = self.list.remove(id);
        if self.list.len() == 0 {
            self.hand = None;
        }
        removed
    }
}

impl EvictionPolicy for Sieve {
    fn name(&self) -> &str {
        "sieve"
    }

    fn reserve(&mut self, n: usize) {
        self.list.reserve(n);
    }

    fn on_insert(&mut self, ids: &[u64]) {
        for &id in ids {
            if self.list.contains(id) {
                self.list.set_bits(id, VISITED);
            } else {
                self.list.push_front(id);
            }
        }
    }

    fn on_access(&mut self, ids: &[u64]) {
        for &id in ids {
            self.list.set_bits(id, VISITED);
        }
    }

    fn on_remove(&mut self, ids: &[u64]) {
        for &id in ids {
            self.remove(id);
        }
    }

    fn victims(&mut self, n: usize, out: &mut Vec<u64>) {
        for _ in 0..n {
            let Some(mut at) = self.hand.or(self.list.tail_cursor()) else {
                break;
            };
            loop {
                let (id, bits) = self.list.node(at);
                if bits & VISITED == 0 {
                    self.hand = self.list.newer(at);
                    self.remove(id);
                    out.push(id);
                    break;
                }
                self.list.set_node_bits(at, 0);
                match self.list.newer(at).or(self.list.tail_cursor()) {
                    Some(next) => at = next,
                    None => break,
                }
            }
        }
    }

    fn keep_on_reclaim(&mut self, ids: &[u64], out: &mut Vec<bool>) {
        for &id in ids {
            let visited = self.list.bits_of(id).is_some_and(|b| b & VISITED != 0);
            if visited {
                self.list.set_bits(id, 0);
            } else {
                self.remove(id);
            }
            out.push(visited);
        }
    }

    fn memory_bytes(&self) -> usize {
        self.list.memory_bytes()
    }
}
