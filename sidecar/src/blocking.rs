//! Clients blocked on keys (BLPOP, BLMOVE, BZPOPMIN, ...): who waits for which key,
//! in the order they blocked, and the wake-up a write to one of those keys gives the
//! first of them. A woken client retries its command itself; when it is served it
//! passes the wake-up on, so the next in line sees what is left.

use crate::watch::entry;
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const SHARDS: usize = 64;

/// Waiters by key (database byte, then the key's bytes), first blocked first.
type Shard = Mutex<HashMap<Vec<u8>, VecDeque<Arc<Waiter>>>>;

/// One blocked client's wake-up.
#[derive(Default)]
pub struct Waiter {
    /// Notified when a key it waits for was written.
    pub ready: tokio::sync::Notify,
}

/// Who is blocked on what. Costs a write one relaxed load while nobody is blocked.
pub struct Blocked {
    waiting: AtomicUsize,
    shards: Box<[Shard]>,
}

impl Default for Blocked {
    fn default() -> Self {
        Blocked {
            waiting: AtomicUsize::new(0),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl Blocked {
    fn shard(&self, e: &[u8]) -> &Shard {
        &self.shards[xxhash_rust::xxh3::xxh3_64(e) as usize % SHARDS]
    }

    /// Blocks `waiter` on `keys` of `db`, behind everyone already waiting for them,
    /// until the returned registration is dropped.
    pub fn block<'b>(&'b self, db: u8, keys: &[Bytes], waiter: Arc<Waiter>) -> Registration<'b> {
        let mut keys: Vec<Bytes> = keys.to_vec();
        keys.sort();
        keys.dedup();
        for k in &keys {
            let e = entry(db, k);
            self.shard(&e)
                .lock()
                .entry(e)
                .or_default()
                .push_back(waiter.clone());
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Registration {
            blocked: self,
            db,
            keys,
            waiter,
        }
    }

    /// A write changed `key` in `db`: the first client blocked on it retries.
    pub fn touch(&self, db: u8, key: &[u8]) {
        if self.waiting.load(Ordering::Relaxed) == 0 {
            return;
        }
        let e = entry(db, key);
        if let Some(first) = self.shard(&e).lock().get(&e).and_then(|q| q.front()) {
            first.ready.notify_one();
        }
    }

    /// Clients blocked now.
    pub fn count(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
}

/// A client's place in the queues of the keys it waits for; dropping it (served,
/// timed out, unblocked or gone) leaves nothing behind.
pub struct Registration<'b> {
    blocked: &'b Blocked,
    db: u8,
    keys: Vec<Bytes>,
    waiter: Arc<Waiter>,
}

impl Registration<'_> {
    /// The wake-up this registration waits for.
    pub fn waiter(&self) -> &Waiter {
        &self.waiter
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        for k in &self.keys {
            let e = entry(self.db, k);
            let mut shard = self.blocked.shard(&e).lock();
            if let Some(q) = shard.get_mut(&e) {
                q.retain(|w| !Arc::ptr_eq(w, &self.waiter));
                if q.is_empty() {
                    shard.remove(&e);
                }
            }
        }
        self.blocked.waiting.fetch_sub(1, Ordering::Relaxed);
        // What woke this client (or what it left) is the next one's to see.
        for k in &self.keys {
            self.blocked.touch(self.db, k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn woken(w: &Waiter) -> bool {
        tokio::time::timeout(Duration::from_millis(50), w.ready.notified())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn the_first_blocked_is_woken_and_passes_it_on_when_it_leaves() {
        let b = Blocked::default();
        let (one, two) = (Arc::new(Waiter::default()), Arc::new(Waiter::default()));
        let k = [Bytes::from_static(b"k")];
        let r1 = b.block(0, &k, one.clone());
        let r2 = b.block(0, &k, two.clone());
        assert_eq!(b.count(), 2);
        b.touch(1, b"k");
        assert!(!woken(&one).await, "another database's key");
        b.touch(0, b"k");
        assert!(woken(&one).await, "the first blocked");
        assert!(!woken(&two).await, "only the first");
        drop(r1);
        assert!(woken(&two).await, "the wake-up passes on");
        drop(r2);
        assert_eq!(b.count(), 0);
        assert!(
            b.shards.iter().all(|s| s.lock().is_empty()),
            "nothing left behind"
        );
    }
}
