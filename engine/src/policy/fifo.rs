//! FIFO: evict in insertion order; accesses change nothing.

use super::{EvictionPolicy, IdMap};
use std::collections::VecDeque;

/// First in, first out. Removed keys leave stale queue entries that are skipped (each
/// entry carries the generation of the insert it stands for) and purged when they
/// outnumber the live ones.
#[derive(Default)]
pub struct Fifo {
    queue: VecDeque<(u64, u32)>,
    live: IdMap<u32>,
    generation: u32,
}

impl Fifo {
    fn purge_if_stale(&mut self) {
        if self.queue.len() > 2 * self.live.len() + 1024 {
            let live = &self.live;
            self.queue.retain(|(id, g)| live.get(id) == Some(g));
        }
    }
}

impl EvictionPolicy for Fifo {
    fn name(&self) -> &str {
        "fifo"
    }

    fn reserve(&mut self, n: usize) {
        self.queue.reserve(n);
        self.live.reserve(n);
    }

    fn on_insert(&mut self, ids: &[u64]) {
        for &id in ids {
            if !self.live.contains_key(&id) {
                self.generation = self.generation.wrapping_add(1);
                self.live.insert(id, self.generation);
                self.queue.push_back((id, self.generation));
            }
        }
    }

    fn on_access(&mut self, _ids: &[u64]) {}

    fn on_remove(&mut self, ids: &[u64]) {
        for id in ids {
            self.live.remove(id);
        }
        self.purge_if_stale();
    }

    fn victims(&mut self, n: usize, out: &mut Vec<u64>) {
        let mut found = 0;
        while found < n {
            let Some((id, g)) = self.queue.pop_front() else {
                break;
            };
            if self.live.get(&id) == Some(&g) {
                self.live.remove(&id);
                out.push(id);
                found += 1;
            }
        }
    }

    fn keep_on_reclaim(&mut self, ids: &[u64], out: &mut Vec<bool>) {
        for id in ids {
            self.live.remove(id);
            out.push(false);
        }
        self.purge_if_stale();
    }

    fn memory_bytes(&self) -> usize {
        self.queue.capacity() * 16 + self.live.capacity() * (8 + 4 + 1)
    }
}
