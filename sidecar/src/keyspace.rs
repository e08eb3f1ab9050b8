//! The keyspace as a command sees it: [`Keyspace`] is the narrow handle one command
//! applies to (one database of the engine, the engine's clock, this command's
//! read-through answers, who to tell about flushes, and the watches and blocked clients
//! its writes touch).

use crate::blocking::Blocked;
use crate::origin::{OriginError, Reads};
use crate::store::{KeyspaceEvents, Store};
use crate::watch::Watches;
use bytes::Bytes;
use caskade_engine::{
    CollectionWrite, Engine, Error as EngineError, Family, Item, Result as EngineResult, ScanPage,
    ValueType,
};
use std::cell::Cell;

/// Why a read through read-through failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The origin failed.
    #[error(transparent)]
    Origin(#[from] OriginError),
}

/// What one command applies to: a database of the engine, read and written through
/// the engine's clock. The unit running the command holds the key stripes.
pub struct Keyspace<'a> {
    store: &'a Store,
    engine: &'a Engine,
    /// The database the client named.
    db: u8,
    /// The engine namespace that holds it.
    ns: u8,
    now: Cell<Option<u64>>,
    reads: Option<&'a mut Reads>,
    events: Option<&'a dyn KeyspaceEvents>,
    watches: Option<&'a Watches>,
    blocked: Option<&'a Blocked>,
}

impl<'a> Keyspace<'a> {
    /// Database `db` of `store`.
    pub fn new(store: &'a Store, db: u8) -> Self {
        Keyspace {
            store,
            engine: &store.engine,
            db,
            ns: store.ns(db),
            now: Cell::new(None),
            reads: None,
            events: None,
            watches: None,
            blocked: None,
        }
    }

    /// Writes touch the keys `watches` holds (failing their watchers' EXEC).
    pub fn with_watches(mut self, watches: Option<&'a Watches>) -> Self {
        self.watches = watches;
        self
    }

    /// Writes wake the clients blocked on the keys they write (BLPOP and friends).
    pub fn with_blocked(mut self, blocked: Option<&'a Blocked>) -> Self {
        self.blocked = blocked;
        self
    }

    /// A write changed `key`.
    fn touch(&self, key: &[u8]) {
        if let Some(w) = self.watches {
            w.touch(self.db, key);
        }
        if let Some(b) = self.blocked {
            b.touch(self.db, key);
        }
    }

    /// Reads of routed keys answer through read-through with these prefetched answers.
    pub fn with_reads(mut self, reads: Option<&'a mut Reads>) -> Self {
        self.reads = reads;
        self
    }

    /// Flushes are told to `events`.
    pub fn with_events(mut self, events: Option<&'a dyn KeyspaceEvents>) -> Self {
        self.events = events;
        self
    }

    /// The same engine, database `db` (for COPY ... DB); plain reads only.
    pub fn other_db(&self, db: u8) -> Keyspace<'_> {
        Keyspace {
            store: self.store,
            engine: self.engine,
            db,
            ns: self.store.ns(db),
            now: self.now.clone(),
            reads: None,
            events: self.events,
            watches: self.watches,
            blocked: self.blocked,
        }
    }

    /// The database.
    pub fn db(&self) -> u8 {
        self.db
    }

    /// Now, in Unix ms, by the engine's clock; read once per command.
    pub fn now_ms(&self) -> u64 {
        if let Some(t) = self.now.get() {
            return t;
        }
        let t = self.engine.now_ms();
        self.now.set(Some(t));
        t
    }

    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> EngineResult<Option<Bytes>> {
        self.engine.get(self.ns, key)
    }

    /// The value of `key` with its metadata and expiry.
    pub fn get_item(&self, key: &[u8]) -> EngineResult<Option<Item>> {
        self.engine.get_item(self.ns, key)
    }

    /// The record of `key` whatever it holds (a collection's root, for a collection).
    pub fn get_typed(&self, key: &[u8]) -> EngineResult<Option<Item>> {
        self.engine.get_typed(self.ns, key)
    }

    /// What `key` holds, if it exists (no value is read).
    pub fn type_of(&self, key: &[u8]) -> EngineResult<Option<ValueType>> {
        self.engine.type_of(self.ns, key)
    }

    /// The family of a chunked collection at `key`, from memory.
    pub fn family(&self, key: &[u8]) -> Option<(ValueType, Family, Option<u64>)> {
        self.engine.family(self.ns, key)
    }

    /// Chunk `n` of `family` of the collection at `key`.
    pub fn chunk(&self, key: &[u8], family: Family, n: u32) -> EngineResult<Option<Bytes>> {
        self.engine.chunk(self.ns, key, family, n)
    }

    /// Applies one change of the collection at `key`, atomically.
    pub fn write_collection(&self, key: &[u8], change: &CollectionWrite<'_>) -> EngineResult<()> {
        self.engine.write_collection(self.ns, key, change)?;
        self.touch(key);
        Ok(())
    }

    /// The value of `key` as a client reads it: a routed key (read-through) is answered
    /// from the origin's answers fetched for this command when the engine has no fresh
    /// copy.
    pub fn get_through(&mut self, key: &Bytes) -> Result<Option<Bytes>, ReadError> {
        let item = self.get_item(key)?;
        if self.reads.is_none() {
            return Ok(item.map(|i| i.value));
        }
        let now = self.now_ms();
        match self.reads.as_deref_mut() {
            Some(reads) => Ok(reads.answer(self.db, key, item, now)?),
            None => Ok(item.map(|i| i.value)),
        }
    }

    /// Stores `value` under `key` with an optional expiry (Unix ms).
    pub fn put(&self, key: &[u8], value: &[u8], expire_at_ms: Option<u64>) -> EngineResult<()> {
        self.engine.put(self.ns, key, value, expire_at_ms)?;
        self.touch(key);
        Ok(())
    }

    /// [`Keyspace::put`] with record metadata.
    pub fn put_item(
        &self,
        key: &[u8],
        value: &[u8],
        expire_at_ms: Option<u64>,
        meta: &[u8],
    ) -> EngineResult<()> {
        self.engine
            .put_item(self.ns, key, value, expire_at_ms, meta)?;
        self.touch(key);
        Ok(())
    }

    /// Deletes `key`; whether it existed.
    pub fn delete(&self, key: &[u8]) -> EngineResult<bool> {
        let gone = self.engine.delete(self.ns, key)?;
        if gone {
            self.touch(key);
        }
        Ok(gone)
    }

    /// Whether `key` exists.
    pub fn exists(&self, key: &[u8]) -> EngineResult<bool> {
        self.engine.exists(self.ns, key)
    }

    /// `None`: no such key; `Some(None)`: no expiry; `Some(Some(ms))`: expires then.
    pub fn ttl(&self, key: &[u8]) -> EngineResult<Option<Option<u64>>> {
        self.engine.ttl(self.ns, key)
    }

    /// Sets the expiry of `key` if `allow(current expiry)` says so.
    pub fn expire_if(
        &self,
        key: &[u8],
        at_ms: Option<u64>,
        allow: impl Fn(Option<u64>) -> bool,
    ) -> EngineResult<bool> {
        let changed = self.engine.expire_if(self.ns, key, at_ms, allow)?;
        if changed {
            self.touch(key);
        }
        Ok(changed)
    }

    /// Sets the expiry of `key`.
    pub fn expire(&self, key: &[u8], at_ms: u64) -> EngineResult<bool> {
        let changed = self.engine.expire(self.ns, key, at_ms)?;
        if changed {
            self.touch(key);
        }
        Ok(changed)
    }

    /// Removes the expiry of `key`.
    pub fn persist(&self, key: &[u8]) -> EngineResult<bool> {
        let changed = self.engine.persist(self.ns, key)?;
        if changed {
            self.touch(key);
        }
        Ok(changed)
    }

    /// One page of keys in hash order.
    pub fn scan(&self, cursor: u64, count: usize) -> EngineResult<ScanPage> {
        self.engine.scan(self.ns, cursor, count)
    }

    /// Keys in this database.
    pub fn len(&self) -> usize {
        self.engine.len(self.ns)
    }

    /// Whether this database has no key.
    pub fn is_empty(&self) -> bool {
        self.engine.is_empty(self.ns)
    }

    /// Drops every key of this database.
    pub fn flush_db(&self) -> EngineResult<()> {
        self.engine.flush_namespace(self.ns)?;
        if let Some(e) = self.events {
            e.flushed(Some(self.db));
        }
        Ok(())
    }

    /// Exchanges databases `a` and `b` (SWAPDB): a client watching a key that either
    /// holds is told, as in Redis, and so is whoever keeps state per database
    /// (read-through).
    pub fn swap_databases(&self, a: u8, b: u8) -> std::io::Result<()> {
        self.store.databases.swap(a, b)?;
        let (na, nb) = (self.store.ns(a), self.store.ns(b));
        // A key whose presence cannot be read counts as changed.
        let held = |key: &[u8]| {
            [na, nb]
                .iter()
                .any(|&ns| self.engine.exists(ns, key).unwrap_or(true))
        };
        for db in [a, b] {
            if let Some(w) = self.watches {
                w.touch_db(db, held);
            }
            if let Some(e) = self.events {
                e.flushed(Some(db));
            }
        }
        Ok(())
    }

    /// Drops every key of every database.
    pub fn flush_all(&self) -> EngineResult<()> {
        self.engine.flush_all()?;
        if let Some(e) = self.events {
            e.flushed(None);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::store;

    #[test]
    fn flushes_are_told() {
        struct Count(std::sync::atomic::AtomicUsize);
        impl KeyspaceEvents for Count {
            fn flushed(&self, _db: Option<u8>) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let (_d, store) = store();
        let seen = Count(Default::default());
        let ks = Keyspace::new(&store, 3).with_events(Some(&seen));
        ks.put(b"k", b"v", None).expect("put");
        assert_eq!(ks.len(), 1);
        ks.flush_db().expect("flush");
        ks.flush_all().expect("flush");
        assert!(ks.is_empty());
        assert_eq!(seen.0.load(std::sync::atomic::Ordering::Relaxed), 2);
    }
}
