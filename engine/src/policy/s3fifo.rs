//! S3-FIFO (Yang et al., SOSP'23): new keys enter a small FIFO (10% of the keys); those
//! accessed while there move to the main FIFO, the rest are evicted and remembered in a
//! ghost list, so a quick return goes straight to main. Main is a FIFO with reinsertion
//! for keys accessed since they last passed the head (a 2-bit frequency).

use super::{EvictionPolicy, IdMap};
use std::collections::VecDeque;

#[derive(Clone, Copy)]
struct Meta {
    freq: u8,
    in_main: bool,
    generation: u32,
}

/// S3-FIFO.
#[derive(Default)]
pub struct S3Fifo {
    small: VecDeque<(u64, u32)>,
    main: VecDeque<(u64, u32)>,
    ghost: VecDeque<u64>,
    ghost_set: IdMap<()>,
    meta: IdMap<Meta>,
    small_len: usize,
    main_len: usize,
    generation: u32,
}

impl S3Fifo {
    fn forget(&mut self, id: u64) -> Option<Meta> {
        let m = self.meta.remove(&id)?;
        if m.in_main {
            self.main_len -= 1;
        } else {
            self.small_len -= 1;
        }
        Some(m)
    }

    fn remember_ghost(&mut self, id: u64) {
        if self.ghost_set.insert(id, ()).is_none() {
            self.ghost.push_back(id);
        }
        // The ghost list remembers about as many keys as the cache holds.
        while self.ghost.len() > (self.small_len + self.main_len).max(16) {
            if let Some(old) = self.ghost.pop_front() {
                self.ghost_set.remove(&old);
            }
        }
    }

    fn push(&mut self, id: u64, in_main: bool, freq: u8) {
        self.generation = self.generation.wrapping_add(1);
        let g = self.generation;
        self.meta.insert(
            id,
            Meta {
                freq,
                in_main,
                generation: g,
            },
        );
        if in_main {
            self.main.push_back((id, g));
            self.main_len += 1;
        } else {
            self.small.push_back((id, g));
            self.small_len += 1;
        }
    }

    fn valid(&self, id: u64, g: u32, in_main: bool) -> Option<Meta> {
        self.meta
            .get(&id)
            .copied()
            .filter(|m| m.generation == g && m.in_main == in_main)
    }

    fn evict_one(&mut self) -> Option<u64> {
        loop {
            let total = self.small_len + self.main_len;
            if total == 0 {
                return None;
            }
            let from_small = self.main_len == 0 || self.small_len * 10 >= total;
            if from_small {
                let (id, g) = self.small.pop_front()?;
                let Some(m) = self.valid(id, g, false) else {
                    continue;
                };
                self.forget(id);
                if m.freq > 0 {
                    self.push(id, true, 0);
                } else {
                    self.remember_ghost(id);
                    return Some(id);
                }
            } else {
                let (id, g) = self.main.pop_front()?;
                let Some(m) = self.valid(id, g, true) else {
                    continue;
                };
                self.forget(id);
                if m.freq > 0 {
                    self.push(id, true, m.freq - 1);
                } else {
                    return Some(id);
                }
            }
        }
    }

    fn purge_if_stale(&mut self) {
        let live = self.small_len + self.main_len;
        if self.small.len() + self.main.len() > 2 * live + 1024 {
            let meta = &self.meta;
            self.small
                .retain(|(id, g)| meta.get(id).is_some_and(|m| m.generation == *g));
            self.main
                .retain(|(id, g)| meta.get(id).is_some_and(|m| m.generation == *g));
        }
    }
}

impl EvictionPolicy for S3Fifo {
    fn reserve(&mut self, n: usize) {
        // New keys enter the small queue.
        self.small.reserve(n);
        self.meta.reserve(n);
    }

    fn name(&self) -> &str {
        "s3-fifo"
    }

    fn on_insert(&mut self, ids: &[u64]) {
        for &id in ids {
            if self.meta.contains_key(&id) {
                self.on_access(&[id]);
            } else if self.ghost_set.remove(&id).is_some() {
                self.push(id, true, 0);
            } else {
                self.push(id, false, 0);
            }
        }
    }

    fn on_access(&mut self, ids: &[u64]) {
        for id in ids {
            if let Some(m) = self.meta.get_mut(id) {
                m.freq = (m.freq + 1).min(3);
            }
        }
    }

    fn on_remove(&mut self, ids: &[u64]) {
        for &id in ids {
            self.forget(id);
        }
        self.purge_if_stale();
    }

    fn victims(&mut self, n: usize, out: &mut Vec<u64>) {
        for _ in 0..n {
            match self.evict_one() {
                Some(id) => out.push(id),
                None => break,
            }
        }
    }

    fn keep_on_reclaim(&mut self, ids: &[u64], out: &mut Vec<bool>) {
        for &id in ids {
            let keep = match self.meta.get_mut(&id) {
                Some(m) if m.freq > 0 => {
                    m.freq -= 1;
                    true
                }
                _ => false,
            };
            if !keep {
                self.forget(id);
            }
            out.push(keep);
        }
        self.purge_if_stale();
    }

    fn memory_bytes(&self) -> usize {
        (self.small.capacity() + self.main.capacity()) * 16
            + self.ghost.capacity() * 8
            + self.ghost_set.capacity() * 9
            + self.meta.capacity() * (8 + 8 + 1)
    }
}
