//! WATCH: which clients watch which exact keys, and the touch every write makes (Redis'
//! `touchWatchedKey`). A client's watch is a dirty flag raised by any write to one of
//! its keys; what the engine changes on its own (expiry, eviction, flushes) is caught
//! at EXEC by comparing each key's state with the one seen at WATCH.

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

const SHARDS: usize = 64;

/// Watchers by key (database byte, then the key's bytes), each a client's dirty flag.
type Shard = Mutex<HashMap<Vec<u8>, Vec<Arc<AtomicBool>>>>;

/// Who watches what. Costs a write one relaxed load while nobody watches anything.
pub struct Watches {
    watched: AtomicUsize,
    shards: Box<[Shard]>,
}

impl Default for Watches {
    fn default() -> Self {
        Watches {
            watched: AtomicUsize::new(0),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

/// The registry's key: the database, then the key's bytes (also the blocked
/// clients' registry's).
pub(crate) fn entry(db: u8, key: &[u8]) -> Vec<u8> {
    let mut e = Vec::with_capacity(key.len() + 1);
    e.push(db);
    e.extend_from_slice(key);
    e
}

impl Watches {
    fn shard(&self, e: &[u8]) -> &Shard {
        &self.shards[xxhash_rust::xxh3::xxh3_64(e) as usize % SHARDS]
    }

    /// `flag` is raised by the next write to `key` in `db`.
    pub fn watch(&self, db: u8, key: &[u8], flag: &Arc<AtomicBool>) {
        let e = entry(db, key);
        self.shard(&e)
            .lock()
            .entry(e)
            .or_default()
            .push(flag.clone());
        self.watched.fetch_add(1, Ordering::Relaxed);
    }

    /// Forgets one watch made with `flag`.
    pub fn unwatch(&self, db: u8, key: &[u8], flag: &Arc<AtomicBool>) {
        let e = entry(db, key);
        let mut shard = self.shard(&e).lock();
        if let Some(flags) = shard.get_mut(&e)
            && let Some(at) = flags.iter().position(|f| Arc::ptr_eq(f, flag))
        {
            flags.swap_remove(at);
            if flags.is_empty() {
                shard.remove(&e);
            }
            self.watched.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// A write changed `key` in `db`: every client watching it will fail its EXEC.
    pub fn touch(&self, db: u8, key: &[u8]) {
        if self.watched.load(Ordering::Relaxed) == 0 {
            return;
        }
        let e = entry(db, key);
        if let Some(flags) = self.shard(&e).lock().get(&e) {
            for f in flags {
                f.store(true, Ordering::Release);
            }
        }
    }
}

impl Watches {
    /// Database `db` was replaced (SWAPDB): the watchers of its keys for which
    /// `changed` holds fail their EXEC.
    pub fn touch_db(&self, db: u8, changed: impl Fn(&[u8]) -> bool) {
        if self.watched.load(Ordering::Relaxed) == 0 {
            return;
        }
        for shard in self.shards.iter() {
            for (e, flags) in shard.lock().iter() {
                if e.first() == Some(&db) && changed(&e[1..]) {
                    for f in flags {
                        f.store(true, Ordering::Release);
                    }
                }
            }
        }
    }
}

/// What a key looked like at WATCH: absent, or present with its expiry (Unix ms).
pub type KeyState = Option<Option<u64>>;

/// One connection's watched keys.
#[derive(Default)]
pub struct Watching {
    flag: Arc<AtomicBool>,
    keys: Vec<(u8, Bytes, KeyState)>,
}

impl Watching {
    /// Watches `key` in `db`, seen now as `state` (a key watched twice keeps its first
    /// state, as in Redis).
    pub fn add(&mut self, watches: &Watches, db: u8, key: Bytes, state: KeyState) {
        if self.keys.iter().any(|(d, k, _)| *d == db && *k == key) {
            return;
        }
        watches.watch(db, &key, &self.flag);
        self.keys.push((db, key, state));
    }

    /// The watched keys and the states they were seen in.
    pub fn keys(&self) -> &[(u8, Bytes, KeyState)] {
        &self.keys
    }

    /// Whether a write touched one of the keys since it was watched.
    pub fn touched(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// Forgets every watch (UNWATCH, EXEC, DISCARD, RESET, disconnect).
    pub fn clear(&mut self, watches: &Watches) {
        for (db, key, _) in self.keys.drain(..) {
            watches.unwatch(db, &key, &self.flag);
        }
        self.flag.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_raises_the_flag_of_every_watcher_of_that_exact_key() {
        let w = Watches::default();
        let (mut a, mut b) = (Watching::default(), Watching::default());
        a.add(&w, 0, Bytes::from_static(b"k"), None);
        b.add(&w, 0, Bytes::from_static(b"k"), None);
        b.add(&w, 1, Bytes::from_static(b"other"), None);
        w.touch(1, b"k");
        w.touch(0, b"kk");
        assert!(
            !a.touched() && !b.touched(),
            "other keys and databases do not count"
        );
        w.touch(0, b"k");
        assert!(a.touched() && b.touched());
        a.clear(&w);
        b.clear(&w);
        assert!(!a.touched());
        assert_eq!(
            w.watched.load(Ordering::Relaxed),
            0,
            "every watch is forgotten"
        );
        w.touch(0, b"k");
        assert!(!a.touched(), "an unwatched key no longer raises the flag");
    }
}
