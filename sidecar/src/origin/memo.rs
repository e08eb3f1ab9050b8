//! Answers of one route remembered for a while: "not found" for the negative TTL, and
//! a failed fetch for `retry_after_error` (so a failing origin is not asked again for
//! the same key on every read). Bounded: past `cap` keys the oldest are forgotten.
//! Kept in memory only (a restart forgets them, which costs one fetch per key), so
//! they never show up as keys (EXISTS, SCAN, DBSIZE).

use bytes::Bytes;
use std::collections::{HashMap, VecDeque};

/// Keys of one route with what is remembered of each, and until when.
pub struct Memo<V> {
    until: HashMap<(u8, Bytes), (u64, V)>,
    order: VecDeque<(u8, Bytes)>,
    cap: usize,
}

impl<V: Clone> Memo<V> {
    /// An empty memo holding at most `cap` keys.
    pub fn new(cap: usize) -> Self {
        Memo {
            until: HashMap::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    /// Remembers `value` for `key` until `until_ms`.
    pub fn insert(&mut self, db: u8, key: Bytes, until_ms: u64, value: V) {
        if self.cap == 0 {
            return;
        }
        if self
            .until
            .insert((db, key.clone()), (until_ms, value))
            .is_none()
        {
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
        // Keys forgotten early leave their place in `order` behind; rebuild before it
        // grows far past the map.
        if self.order.len() > 2 * self.cap.max(16) {
            let until = &self.until;
            self.order.retain(|k| until.contains_key(k));
        }
    }

    /// What is remembered of `key` at `now_ms`, if anything.
    pub fn get(&mut self, db: u8, key: &Bytes, now_ms: u64) -> Option<V> {
        let k = (db, key.clone());
        match self.until.get(&k) {
            Some((until, v)) if *until > now_ms => Some(v.clone()),
            Some(_) => {
                self.until.remove(&k);
                None
            }
            None => None,
        }
    }

    /// Forgets `key`.
    pub fn remove(&mut self, db: u8, key: &Bytes) {
        if !self.until.is_empty() {
            self.until.remove(&(db, key.clone()));
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
        let mut n = Memo::new(3);
        let k = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        n.insert(0, k("a"), 100, "x");
        assert_eq!(n.get(0, &k("a"), 99), Some("x"));
        assert_eq!(n.get(1, &k("a"), 99), None);
        assert_eq!(n.get(0, &k("a"), 100), None);
        for i in 0..10 {
            n.insert(0, k(&format!("k{i}")), 1_000, "y");
        }
        assert_eq!(n.len(), 3);
        assert!(n.get(0, &k("k9"), 0).is_some() && n.get(0, &k("k0"), 0).is_none());
        n.remove(0, &k("k9"));
        assert!(n.get(0, &k("k9"), 0).is_none());
        n.clear(Some(0));
        assert_eq!(n.len(), 0);
        let mut n = Memo::new(4);
        // Keys that expire and come back leave their old place in the order behind.
        for i in 0..1_000 {
            n.insert(0, k("x"), i + 1, ());
            assert!(n.get(0, &k("x"), i + 1).is_none());
            n.insert(0, k(&format!("y{}", i % 2)), 10_000, ());
        }
        assert!(n.order.len() <= 64, "{}", n.order.len());
    }
}
