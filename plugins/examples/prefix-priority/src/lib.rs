//! An eviction policy: SIEVE (NSDI'24; insertion order, a visited bit, a moving hand)
//! for ordinary keys, while keys starting with one of the `protected_prefixes`
//! (comma-separated setting) are evicted only when no ordinary key is left. With no
//! protected prefixes it is plain SIEVE. A plugin is standalone WebAssembly, so it
//! carries its own list and hasher rather than the engine's.

use caskade_plugin_sdk::{
    EvictionPolicy, Inserted, PluginError, Settings, export_eviction_policy, setting,
};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Key ids are already uniform hashes: mixing them once is enough (std's SipHash
/// would be most of this plugin's cost).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, id: u64) {
        self.0 = (id ^ (id >> 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

const NONE: u32 = u32::MAX;

struct Node {
    id: u64,
    /// Toward the newest entry.
    newer: u32,
    /// Toward the oldest entry.
    older: u32,
    visited: bool,
}

/// SIEVE: entries stay in insertion order in a doubly linked list (over a slab); an
/// access sets a visited bit; the hand walks from the oldest toward the newest,
/// clearing visited bits, and evicts the first unvisited entry it meets.
#[derive(Default)]
struct Sieve {
    nodes: Vec<Node>,
    free: Vec<u32>,
    index: IdMap<u32>,
    newest: Option<u32>,
    oldest: Option<u32>,
    hand: Option<u32>,
}

impl Sieve {
    fn contains(&self, id: u64) -> bool {
        self.index.contains_key(&id)
    }

    fn insert(&mut self, id: u64) {
        if self.index.contains_key(&id) {
            return;
        }
        let node = Node {
            id,
            newer: NONE,
            older: self.newest.unwrap_or(NONE),
            visited: false,
        };
        let at = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        if let Some(n) = self.newest {
            self.nodes[n as usize].newer = at;
        }
        self.newest = Some(at);
        if self.oldest.is_none() {
            self.oldest = Some(at);
        }
        self.index.insert(id, at);
    }

    fn touch(&mut self, id: u64) -> bool {
        match self.index.get(&id) {
            Some(&at) => {
                self.nodes[at as usize].visited = true;
                true
            }
            None => false,
        }
    }

    fn take_visited(&mut self, id: u64) -> Option<bool> {
        let at = *self.index.get(&id)?;
        Some(std::mem::replace(
            &mut self.nodes[at as usize].visited,
            false,
        ))
    }

    fn remove(&mut self, id: u64) -> bool {
        let Some(at) = self.index.remove(&id) else {
            return false;
        };
        let (newer, older) = (self.nodes[at as usize].newer, self.nodes[at as usize].older);
        if self.hand == Some(at) {
            self.hand = (newer != NONE).then_some(newer);
        }
        match older {
            NONE => self.oldest = (newer != NONE).then_some(newer),
            o => self.nodes[o as usize].newer = newer,
        }
        match newer {
            NONE => self.newest = (older != NONE).then_some(older),
            n => self.nodes[n as usize].older = older,
        }
        self.free.push(at);
        true
    }

    fn victim(&mut self) -> Option<u64> {
        let mut at = self.hand.or(self.oldest)?;
        loop {
            let node = &mut self.nodes[at as usize];
            if !node.visited {
                let id = node.id;
                // The hand stays where the victim was: removal moves it one newer.
                self.hand = Some(at);
                self.remove(id);
                return Some(id);
            }
            node.visited = false;
            let next = node.newer;
            at = if next == NONE { self.oldest? } else { next };
        }
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
