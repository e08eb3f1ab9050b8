//! Remembered "not found" answers of one route, bounded: past `cap` entries the oldest
//! are forgotten. Kept in memory only (a restart forgets them, which costs one fetch
//! per key) so they never show up as keys (EXISTS, SCAN, DBSIZE).

use bytes::Bytes;
use std::collections::{HashMap, VecDeque};

/// The negative cache of one route.
pub struct NegativeCache {
    until: HashMap<(u8, Bytes), u64>,
    order: VecDeque<(u8, Bytes)>,
    cap: usize,
}

impl NegativeCache {
    /// An empty cache holding at most `cap` keys.
    pub fn new(cap: usize) -> Self {
        NegativeCache {
            until: HashMap::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    /// Remembers that `key` was not found, until `until_ms`.
    pub fn insert(&mut self, db: u8, key: Bytes, until_ms: u64) {
        if self.cap == 0 {
            return;
        }
        if self.until.insert((db, key.clone()), until_ms).is_none() {
            self.order.push_back((db, key));
        }
        while self.until.len() > self.cap {
            match self.order.pop_front() {
                Some(k) => {
                    self.until.remove(&k);
                }
                None => break,
            }
        }
        // Keys removed early leave their place in `order` behind; rebuild before it
        // grows far past the map.
        if self.order.len() > 2 * self.cap.max(16) {
            let until = &self.until;
            self.order.retain(|k| until.contains_key(k));
        }
    }

    /// Whether `key` is remembered as not found at `now_ms`.
    pub fn contains(&mut self, db: u8, key: &Bytes, now_ms: u64) -> bool {
        let k = (db, key.clone());
        match self.until.get(&k) {
            Some(&until) if until > now_ms => true,
            Some(_) => {
                self.until.remove(&k);
                false
            }
            None => false,
        }
    }

    /// Forgets every key of database `db` (`None`: of all databases).
    pub fn clear(&mut self, db: Option<u8>) {
        match db {
            None => {
                self.until.clear();
                self.order.clear();
            }
            Some(d) => self.until.retain(|(kd, _), _| *kd != d),
        }
    }

    /// Keys remembered (expired ones included until looked up).
    pub fn len(&self) -> usize {
        self.until.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_and_stays_bounded() {
        let mut n = NegativeCache::new(3);
        let k = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        n.insert(0, k("a"), 100);
        assert!(n.contains(0, &k("a"), 99));
        assert!(!n.contains(1, &k("a"), 99));
        assert!(!n.contains(0, &k("a"), 100));
        for i in 0..10 {
            n.insert(0, k(&format!("k{i}")), 1_000);
        }
        assert_eq!(n.len(), 3);
        assert!(n.contains(0, &k("k9"), 0) && !n.contains(0, &k("k0"), 0));
        n.clear(Some(0));
        assert_eq!(n.len(), 0);
        let mut n = NegativeCache::new(4);
        // Keys that expire and come back leave their old place in the order behind.
        for i in 0..1_000 {
            n.insert(0, k("x"), i + 1);
            assert!(!n.contains(0, &k("x"), i + 1));
            n.insert(0, k(&format!("y{}", i % 2)), 10_000);
        }
        assert!(n.order.len() <= 64, "{}", n.order.len());
    }
}
