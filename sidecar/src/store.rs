//! The store every unit of execution and every read-through fill shares: the engine,
//! the key stripe locks that make a unit atomic, the map of databases to engine
//! namespaces, and the events (flushes) other subsystems keep state about.

use caskade_engine::Engine;
use parking_lot::{Mutex, MutexGuard};
use std::sync::Arc;

/// Told of keyspace events that other subsystems keep state about.
pub trait KeyspaceEvents: Send + Sync {
    /// Database `db` (`None`: every database) was flushed.
    fn flushed(&self, db: Option<u8>);
}

const STRIPES: usize = 4096;

/// Striped locks that make a unit of execution (one command today; a transaction or a
/// script later) atomic against every other unit naming one of its keys, as Redis'
/// single thread does. A key's stripe depends on its bytes only, not its database, so
/// commands that name keys in two databases (COPY ... DB, MOVE) lock by name too.
pub struct KeyLocks {
    stripes: Box<[Mutex<()>]>,
}

/// The stripes a unit holds; released when dropped.
#[must_use = "the stripes are released when this is dropped"]
pub struct StripeGuard<'a> {
    _held: Held<'a>,
}

/// One stripe is the common case (a single-key write): held without an allocation.
enum Held<'a> {
    Nothing,
    // The guards are held for their Drop, which releases the stripes.
    One { _guard: MutexGuard<'a, ()> },
    Many { _guards: Vec<MutexGuard<'a, ()>> },
}

impl StripeGuard<'_> {
    /// A guard holding nothing (a unit that names no key).
    pub fn none() -> Self {
        StripeGuard {
            _held: Held::Nothing,
        }
    }
}

impl Default for KeyLocks {
    fn default() -> Self {
        KeyLocks {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }
}

impl KeyLocks {
    /// The stripe `key` belongs to.
    pub fn stripe(key: &[u8]) -> usize {
        (xxhash_rust::xxh3::xxh3_64(key) as usize) % STRIPES
    }

    /// Stripe `idx`, if it can be had within `wait` (a script reaching a key it did not
    /// declare after it wrote: waiting without bound could deadlock).
    pub fn try_lock_stripe_for(
        &self,
        idx: usize,
        wait: std::time::Duration,
    ) -> Option<StripeGuard<'_>> {
        let guard = self.stripes[idx % STRIPES].try_lock_for(wait)?;
        Some(StripeGuard {
            _held: Held::One { _guard: guard },
        })
    }

    /// Locks the stripes of all `keys`, in ascending stripe order (the one global
    /// order, so two units can never deadlock).
    pub fn lock<'a, 'k>(&'a self, keys: impl IntoIterator<Item = &'k [u8]>) -> StripeGuard<'a> {
        let mut idx: Vec<usize> = keys.into_iter().map(Self::stripe).collect();
        idx.sort_unstable();
        idx.dedup();
        self.hold(&idx)
    }

    /// The stripe of one key, unless `give_up()` turns true while it waits (the
    /// common case: no allocation).
    pub fn lock_one_unless(
        &self,
        key: &[u8],
        give_up: impl Fn() -> bool,
    ) -> Option<StripeGuard<'_>> {
        let stripe = &self.stripes[Self::stripe(key)];
        loop {
            if let Some(g) = stripe.try_lock_for(std::time::Duration::from_millis(20)) {
                return Some(StripeGuard {
                    _held: Held::One { _guard: g },
                });
            }
            if give_up() {
                return None;
            }
        }
    }

    /// Like [`KeyLocks::lock`] (every stripe for `None`), but gives up, releasing what
    /// it took, when `give_up()` turns true while it waits (a script past its busy
    /// timeout holds a stripe: the command answers `-BUSY` instead of blocking its
    /// worker thread until the script ends).
    pub fn lock_unless<'a, 'k>(
        &'a self,
        keys: Option<impl IntoIterator<Item = &'k [u8]>>,
        give_up: impl Fn() -> bool,
    ) -> Option<StripeGuard<'a>> {
        let idx: Vec<usize> = match keys {
            Some(keys) => {
                let mut idx: Vec<usize> = keys.into_iter().map(Self::stripe).collect();
                idx.sort_unstable();
                idx.dedup();
                idx
            }
            None => (0..STRIPES).collect(),
        };
        let mut guards = Vec::with_capacity(idx.len());
        for i in idx {
            loop {
                if let Some(g) = self.stripes[i].try_lock_for(std::time::Duration::from_millis(20))
                {
                    guards.push(g);
                    break;
                }
                if give_up() {
                    return None;
                }
            }
        }
        Some(StripeGuard {
            _held: match guards.len() {
                0 => Held::Nothing,
                1 => Held::One {
                    _guard: guards.pop()?,
                },
                _ => Held::Many { _guards: guards },
            },
        })
    }

    /// Takes `sorted` (ascending, without repeats).
    fn hold(&self, sorted: &[usize]) -> StripeGuard<'_> {
        let held = match sorted {
            [] => Held::Nothing,
            [i] => Held::One {
                _guard: self.stripes[*i].lock(),
            },
            many => Held::Many {
                _guards: many.iter().map(|&i| self.stripes[i].lock()).collect(),
            },
        };
        StripeGuard { _held: held }
    }
}

/// The engine and its key locks: what every unit of execution and every read-through
/// store shares.
pub struct Store {
    /// The storage engine.
    pub engine: Engine,
    /// The key stripe locks.
    pub locks: KeyLocks,
    /// Which engine namespace holds each database (shared with the compaction
    /// filter, which shows plugins databases, not namespaces).
    pub databases: Arc<crate::databases::Databases>,
}

impl Store {
    /// Wraps an open engine, each database in its own namespace.
    pub fn new(engine: Engine) -> Self {
        Store {
            engine,
            locks: KeyLocks::default(),
            databases: Arc::default(),
        }
    }

    /// The same store with the database map kept in the data directory.
    pub fn with_databases(mut self, databases: Arc<crate::databases::Databases>) -> Self {
        self.databases = databases;
        self
    }

    /// The engine namespace of database `db`.
    pub fn ns(&self, db: u8) -> u8 {
        self.databases.physical(db)
    }
}

#[cfg(test)]
pub mod testing {
    //! An engine in a temporary directory, for command unit tests.
    use super::*;

    /// A store over a fresh engine; keep the directory alive as long as the store.
    pub fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut opts = caskade_engine::Options::new(dir.path());
        opts.fsync = caskade_engine::Fsync::Never;
        let engine = Engine::open(opts).expect("open");
        (dir, Store::new(engine))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripes_lock_in_one_order_and_release() {
        let locks = KeyLocks::default();
        let a: &[u8] = b"a";
        let b: &[u8] = b"b";
        {
            let _g = locks.lock([a, b, a]);
            // Another thread locking the same keys in the other order waits, not deadlocks.
            std::thread::scope(|s| {
                let h = s.spawn(|| locks.stripes[KeyLocks::stripe(b)].try_lock().is_none());
                assert!(h.join().expect("join"));
            });
        }
        assert!(locks.stripes[KeyLocks::stripe(a)].try_lock().is_some());
        drop(locks.lock_unless(None::<[&[u8]; 0]>, || false));
    }
}
