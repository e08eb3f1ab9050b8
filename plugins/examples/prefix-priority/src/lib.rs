//! An eviction policy: SIEVE (a FIFO queue with a visited bit and a moving hand) for
//! ordinary keys, while keys starting with one of the `protected_prefixes`
//! (comma-separated setting) are evicted only when no ordinary key is left. With no
//! protected prefixes it is plain SIEVE.

use caskade_plugin_sdk::{
    EvictionPolicy, Inserted, PluginError, Settings, export_eviction_policy, setting,
};
use std::collections::{HashMap, VecDeque};

#[derive(Default)]
struct Sieve {
    /// Oldest at the front. Entries whose id was removed are skipped lazily.
    queue: VecDeque<u64>,
    /// id -> visited bit, for the ids this queue holds.
    live: HashMap<u64, bool>,
}

impl Sieve {
    fn insert(&mut self, id: u64) {
        if self.live.insert(id, false).is_none() {
            self.queue.push_back(id);
        }
    }

    fn touch(&mut self, id: u64) -> bool {
        match self.live.get_mut(&id) {
            Some(v) => {
                *v = true;
                true
            }
            None => false,
        }
    }

    fn remove(&mut self, id: u64) -> bool {
        self.live.remove(&id).is_some()
    }

    /// The hand walks from the oldest entry: visited keys lose their bit and go round
    /// again, the first unvisited one is the victim.
    fn victim(&mut self) -> Option<u64> {
        while let Some(id) = self.queue.pop_front() {
            match self.live.get_mut(&id) {
                None => continue,
                Some(visited) if *visited => {
                    *visited = false;
                    self.queue.push_back(id);
                }
                Some(_) => {
                    self.live.remove(&id);
                    return Some(id);
                }
            }
        }
        None
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

    fn on_insert(&mut self, keys: &[Inserted]) {
        for k in keys {
            if self.protected.iter().any(|p| k.key.starts_with(p)) {
                self.guarded.insert(k.id);
            } else {
                self.ordinary.insert(k.id);
            }
        }
    }

    fn on_access(&mut self, ids: &[u64]) {
        for &id in ids {
            if !self.ordinary.touch(id) {
                self.guarded.touch(id);
            }
        }
    }

    fn on_remove(&mut self, ids: &[u64]) {
        for &id in ids {
            if !self.ordinary.remove(id) {
                self.guarded.remove(id);
            }
        }
    }

    fn victims(&mut self, n: u32) -> Vec<u64> {
        let mut out = Vec::with_capacity(n as usize);
        while out.len() < n as usize {
            match self.ordinary.victim().or_else(|| self.guarded.victim()) {
                Some(id) => out.push(id),
                None => break,
            }
        }
        out
    }

    fn keep_on_reclaim(&mut self, ids: &[u64]) -> Vec<bool> {
        ids.iter()
            .map(|&id| {
                if self.guarded.live.contains_key(&id) {
                    true
                } else {
                    // Ordinary keys are kept if visited since the hand last passed.
                    let keep = self.ordinary.live.get(&id).copied().unwrap_or(false);
                    if keep {
                        self.ordinary.live.insert(id, false);
                    } else {
                        self.ordinary.remove(id);
                    }
                    keep
                }
            })
            .collect()
    }
}

export_eviction_policy!(PrefixPriority);
