//! The engine's public face: [`Engine`] and its operations. Reads take a shard read
//! lock, copy a slot, and do one positional read; writes append under the writer lock
//! and update the index before releasing it, so index order always matches log order.

use crate::compaction::Worker;
use crate::core::{Inner, exact_expired};
use crate::error::{Error, Result};
use crate::filter::CompactionFilter;
use crate::format::record::{
    self, ALL_NAMESPACES, HEADER_LEN, Header, Kind, MAX_KEY_LEN, MAX_META_LEN, NAMESPACES,
    ValueType,
};
use crate::keydir::{Keydir, Liveness, Slot};
use crate::maintenance;
use crate::maintenance::Upkeep;
use crate::options::Options;
use crate::policy::EvictionPolicy;
use crate::segment::Segment;
use crate::stats::{Counters, Stats};
use crate::stopper::Stopper;
use bytes::Bytes;
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

/// A value as stored, with what was stored beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The value.
    pub value: Bytes,
    /// Per-record metadata (an ETag for read-through entries; empty otherwise).
    pub meta: Bytes,
    /// Expiry in Unix milliseconds, if the key has one.
    pub expire_at_ms: Option<u64>,
    /// What the key holds.
    pub vtype: ValueType,
}

/// One page of a [`Engine::scan`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanPage {
    /// Keys on this page.
    pub keys: Vec<Bytes>,
    /// The cursor for the next call; 0 when the walk is complete.
    pub cursor: u64,
}

impl Inner {
    /// The compactor thread's handles.
    fn compaction_worker(&self) -> Worker {
        Worker {
            log: self.log.clone(),
            index: self.index.clone(),
            policy: self.policy.clone(),
            compactor: self.compactor.clone(),
            counters: self.counters.clone(),
            families: self.families.clone(),
            dir: self.opts.dir.clone(),
            storage: self.opts.storage.clone(),
            clock: self.opts.clock.clone(),
            segment_bytes: self.opts.segment_bytes,
            max_disk_bytes: self.opts.max_disk_bytes,
            garbage_ratio: self.opts.compaction_garbage_ratio,
        }
    }

    /// The background thread's handles.
    fn upkeep(&self) -> Upkeep {
        Upkeep {
            log: self.log.clone(),
            index: self.index.clone(),
            policy: self.policy.clone(),
            counters: self.counters.clone(),
            families: self.families.clone(),
            clock: self.opts.clock.clone(),
            dir: self.opts.dir.clone(),
            storage: self.opts.storage.clone(),
            interval: self.opts.maintenance_interval,
        }
    }
}

/// A caskade store: thread-safe, synchronous, one per data directory.
///
/// Share it between threads with an `Arc`; every operation takes `&self`.
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
    stopper: Stopper,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

fn check_ns(ns: u8) -> Result<()> {
    if ns < NAMESPACES {
        Ok(())
    } else {
        Err(Error::BadNamespace(ns))
    }
}

fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(Error::KeyTooLong {
            len: key.len(),
            max: MAX_KEY_LEN,
        });
    }
    Ok(())
}

impl Engine {
    /// Opens (or creates) the store in `opts.dir`: takes the directory lock, loads hint
    /// files, scans what they do not cover, cuts a torn tail, and starts the background
    /// thread.
    pub fn open(opts: Options) -> Result<Engine> {
        opts.validate()?;
        let inner = Arc::new(crate::recovery::open(opts)?);
        let stopper = Stopper::default();
        let engine = Engine {
            inner: inner.clone(),
            stopper: stopper.clone(),
            threads: Mutex::new(Vec::new()),
        };
        // Pushed one by one, so a failed spawn still stops the threads already running.
        engine
            .threads
            .lock()
            .push(maintenance::spawn(inner.upkeep(), stopper.clone())?);
        engine.threads.lock().push(crate::compaction::spawn(
            inner.compaction_worker(),
            stopper,
        )?);
        inner.compactor.wake();
        Ok(engine)
    }

    /// The engine's clock (Unix ms): the one every expiry is judged by, so callers that
    /// compute TTLs use it too instead of a wall clock of their own.
    pub fn now_ms(&self) -> u64 {
        self.inner.now_ms()
    }

    /// The value of `key`, or `None` if it is absent, expired or unreadable.
    pub fn get(&self, ns: u8, key: &[u8]) -> Result<Option<Bytes>> {
        Ok(self.get_item(ns, key)?.map(|i| i.value))
    }

    /// The value of `key` with its metadata and expiry; [`Error::WrongType`] if it
    /// holds a collection.
    pub fn get_item(&self, ns: u8, key: &[u8]) -> Result<Option<Item>> {
        match self.get_typed(ns, key)? {
            Some(i) if i.vtype != ValueType::String => Err(Error::WrongType),
            found => Ok(found),
        }
    }

    /// A hint that `key` is about to be read or written: its index entry (and what the
    /// hot tier checks first) start loading into the CPU's cache. For a pipeline, whose
    /// next command's key is known while the current one runs.
    pub fn prefetch(&self, ns: u8, key: &[u8]) {
        let inner = &*self.inner;
        if let Some(kd) = inner.index.get(ns) {
            let id = inner.index.key_id(ns, key);
            kd.prefetch(id);
            inner.hot.prefetch(id);
        }
    }

    /// The record of `key` whatever it holds (a collection's root, for a collection).
    pub fn get_typed(&self, ns: u8, key: &[u8]) -> Result<Option<Item>> {
        check_ns(ns)?;
        let inner = &*self.inner;
        if inner.log.is_closed() {
            return Err(Error::Closed);
        }
        let found = self.lookup(ns, key)?;
        if found.is_none() && crate::prefetch::deferring() {
            // A read deferred by a pass without waiting: the answer is thrown away.
            return Ok(None);
        }
        Counters::bump(if found.is_some() {
            &inner.counters.hits
        } else {
            &inner.counters.misses
        });
        Ok(found)
    }

    fn lookup(&self, ns: u8, key: &[u8]) -> Result<Option<Item>> {
        let inner = &*self.inner;
        let now = inner.now_ms();
        let Some((kd, slot)) = inner.find_slot(ns, key, now) else {
            return Ok(None);
        };
        let Some(p) = inner.read_live_parts(kd, ns, key, &slot, now)? else {
            return Ok(None);
        };
        inner.note_read(kd, &slot);
        let h = p.header;
        Ok(Some(Item {
            value: p.value,
            meta: p.meta,
            expire_at_ms: (h.expire_at_ms != 0).then_some(h.expire_at_ms),
            vtype: h.vtype,
        }))
    }

    /// Stores `value` under `key`, replacing any previous value, with an optional
    /// expiry in Unix ms (one in the past deletes the key, as Redis does).
    pub fn put(&self, ns: u8, key: &[u8], value: &[u8], expire_at_ms: Option<u64>) -> Result<()> {
        self.put_item(ns, key, value, expire_at_ms, b"")
    }

    /// [`Engine::put`] with per-record metadata (up to 255 bytes, e.g. an ETag).
    pub fn put_item(
        &self,
        ns: u8,
        key: &[u8],
        value: &[u8],
        expire_at_ms: Option<u64>,
        meta: &[u8],
    ) -> Result<()> {
        check_ns(ns)?;
        check_key(key)?;
        let inner = &*self.inner;
        if value.len() > inner.opts.max_value_bytes {
            return Err(Error::ValueTooLong {
                len: value.len(),
                max: inner.opts.max_value_bytes,
            });
        }
        if meta.len() > MAX_META_LEN {
            return Err(Error::MetaTooLong {
                len: meta.len(),
                max: MAX_META_LEN,
            });
        }
        if let Some(at) = expire_at_ms
            && (at == 0 || at <= inner.now_ms())
        {
            self.delete(ns, key)?;
            return Ok(());
        }
        let exp = expire_at_ms.unwrap_or(0);
        let mut buf = Vec::new();
        record::encode_into(&mut buf, Kind::Put, ns, key, meta, value, exp);
        let hash = inner.index.key_id(ns, key);
        let kd = inner.index.keydir(ns);
        inner.compactor.wait_for_space(&inner.log, buf.len())?;
        let lsn = {
            let mut w = inner.writer()?;
            inner.families.settle();
            let (seg, off) = inner.log.append_locked(&mut w, &buf)?;
            inner.families.dropped(&[hash]);
            let old = inner.point_at(kd, hash, &seg, off, buf.len(), exp);
            inner.key_written(&mut w, hash, key, old)?;
            let generation = inner.log.generation();
            // The buffer holds this record alone: the tier keeps it, uncopied.
            inner
                .hot
                .replace_owned(hash, seg.id, off, generation, Bytes::from(buf));
            w.lsn
        };
        Counters::bump(&inner.counters.puts);
        inner.log.after_write(lsn)
    }

    /// Removes `key`; returns whether it was there (an expired key was not).
    pub fn delete(&self, ns: u8, key: &[u8]) -> Result<bool> {
        check_ns(ns)?;
        check_key(key)?;
        let inner = &*self.inner;
        let Some(kd) = inner.index.get(ns) else {
            return Ok(false);
        };
        let hash = inner.index.key_id(ns, key);
        loop {
            let Some((slot, seg)) = inner.stable_slot(kd, hash) else {
                return Ok(false);
            };
            let Some(head) = inner.read_head(&seg, ns, key, &slot)? else {
                return Ok(false);
            };
            if exact_expired(head.expire_at_ms, inner.now_ms()) {
                inner.drop_expired(kd, &slot);
                return Ok(false);
            }
            let buf = record::tombstone(ns, key);
            if let Some(lsn) = inner.replace_if_unchanged(kd, Some(&slot), hash, &buf, 0, true)? {
                Counters::bump(&inner.counters.deletes);
                inner.note_removed(&[hash]);
                inner.log.after_write(lsn)?;
                return Ok(true);
            }
        }
    }

    /// Whether `key` holds a live value.
    pub fn exists(&self, ns: u8, key: &[u8]) -> Result<bool> {
        Ok(self.ttl(ns, key)?.is_some())
    }

    /// `None` if `key` is absent; `Some(None)` if it never expires; `Some(Some(ms))`
    /// with its expiry in Unix ms otherwise.
    pub fn ttl(&self, ns: u8, key: &[u8]) -> Result<Option<Option<u64>>> {
        let head = self.live_head(ns, key)?;
        Ok(head.map(|h| (h.expire_at_ms != 0).then_some(h.expire_at_ms)))
    }

    /// What `key` holds, if it exists (a short read of the record's header and key).
    pub fn type_of(&self, ns: u8, key: &[u8]) -> Result<Option<ValueType>> {
        Ok(self.live_head(ns, key)?.map(|h| h.vtype))
    }

    /// The header of `key`'s live record, dropping it on the way if it expired.
    fn live_head(&self, ns: u8, key: &[u8]) -> Result<Option<Header>> {
        check_ns(ns)?;
        check_key(key)?;
        let inner = &*self.inner;
        let now = inner.now_ms();
        let Some((kd, slot, seg)) = inner.find(ns, key, now) else {
            return Ok(None);
        };
        let Some(head) = inner.read_head(&seg, ns, key, &slot)? else {
            return Ok(None);
        };
        if exact_expired(head.expire_at_ms, now) {
            inner.drop_expired(kd, &slot);
            return Ok(None);
        }
        Ok(Some(head))
    }

    /// Sets (`Some(ms)`) or removes (`None`) the expiry of `key` if `cond` accepts its
    /// current expiry; returns whether the key existed and `cond` held. This is the
    /// building block for Redis' EXPIRE NX/XX/GT/LT and PERSIST. An expiry in the past
    /// deletes the key.
    pub fn expire_if(
        &self,
        ns: u8,
        key: &[u8],
        expire_at_ms: Option<u64>,
        cond: impl Fn(Option<u64>) -> bool,
    ) -> Result<bool> {
        check_ns(ns)?;
        check_key(key)?;
        let inner = &*self.inner;
        let Some(kd) = inner.index.get(ns) else {
            return Ok(false);
        };
        let hash = inner.index.key_id(ns, key);
        loop {
            let Some(slot) = kd.get(hash) else {
                return Ok(false);
            };
            let now = inner.now_ms();
            // A slot that moved meanwhile is read where it is now, and the change below
            // then finds the slot changed and goes round again.
            let Some((buf, h)) = inner.read_live(kd, ns, key, &slot, now)? else {
                return Ok(false);
            };
            let current = h.expire_at_ms;
            if !cond((current != 0).then_some(current)) {
                return Ok(false);
            }
            if let Some(at) = expire_at_ms
                && (at == 0 || at <= now)
            {
                return self.delete(ns, key);
            }
            let exp = expire_at_ms.unwrap_or(0);
            let mut out = Vec::new();
            let value_at = record::value_range(&h);
            let meta = &buf[value_at.start - h.meta_len as usize..value_at.start];
            record::encode_typed(
                &mut out,
                Kind::Put as u8,
                h.vtype,
                ns,
                key,
                meta,
                &buf[value_at],
                exp,
            );
            inner.compactor.wait_for_space(&inner.log, out.len())?;
            if let Some(lsn) =
                inner.replace_if_unchanged(kd, Some(&slot), hash, &out, exp, false)?
            {
                Counters::bump(&inner.counters.puts);
                inner.log.after_write(lsn)?;
                return Ok(true);
            }
        }
    }

    /// Sets the expiry of `key` (Unix ms); returns whether the key exists.
    pub fn expire(&self, ns: u8, key: &[u8], expire_at_ms: u64) -> Result<bool> {
        self.expire_if(ns, key, Some(expire_at_ms), |_| true)
    }

    /// Removes the expiry of `key`; returns whether it had one.
    pub fn persist(&self, ns: u8, key: &[u8]) -> Result<bool> {
        self.expire_if(ns, key, None, |cur| cur.is_some())
    }

    /// Up to about `count` live keys of namespace `ns` from `cursor` (0 to start), and
    /// the cursor to continue from (0 when done). Keys present for the whole walk are
    /// returned exactly once; keys added or removed meanwhile may or may not be.
    pub fn scan(&self, ns: u8, cursor: u64, count: usize) -> Result<ScanPage> {
        check_ns(ns)?;
        let inner = &*self.inner;
        let Some(kd) = inner.index.get(ns) else {
            return Ok(ScanPage::default());
        };
        let now = inner.now_ms();
        let (slots, next) = kd.scan(cursor, count, |s| s.liveness(now) != Liveness::Expired);
        let mut keys = Vec::with_capacity(slots.len());
        for slot in &slots {
            // A slot whose segment was compacted away meanwhile has moved: follow it.
            let found = match inner.log.segment(slot.seg) {
                Some(seg) => Some((*slot, seg)),
                None => inner.stable_slot(kd, slot.hash),
            };
            if let Some((slot, seg)) = found
                && let Some(key) = self.read_key(&seg, ns, &slot, now)?
            {
                keys.push(key);
            }
        }
        Ok(ScanPage { keys, cursor: next })
    }

    /// The key of the live record at `slot`, read from disk.
    fn read_key(&self, seg: &Segment, ns: u8, slot: &Slot, now: u64) -> Result<Option<Bytes>> {
        let inner = &*self.inner;
        // Most keys are short: one read of header plus 64 bytes usually covers the key.
        let mut buf = vec![0u8; (slot.len as usize).min(HEADER_LEN + 64)];
        let read = |buf: &mut [u8]| match inner.log.read_exact(seg, slot.off as u64, buf) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(Error::io("read", &seg.path, e)),
        };
        if !read(&mut buf)? {
            return Ok(None);
        }
        let Some(h) = Header::parse(&buf) else {
            return Ok(None);
        };
        let key_end = HEADER_LEN + h.key_len as usize;
        if key_end > buf.len() {
            if key_end > slot.len as usize {
                return Ok(None);
            }
            buf.resize(key_end, 0);
            if !read(&mut buf)? {
                return Ok(None);
            }
        }
        if h.kind != Kind::Put || h.ns != ns || exact_expired(h.expire_at_ms, now) {
            return Ok(None);
        }
        buf.truncate(key_end);
        Ok(Some(Bytes::from(buf).slice(HEADER_LEN..)))
    }

    /// Keys in namespace `ns` (expired ones not yet swept included, like Redis DBSIZE).
    pub fn len(&self, ns: u8) -> usize {
        self.inner.index.get(ns).map_or(0, Keydir::len)
    }

    /// Keys in namespace `ns` that have an expiry (Redis INFO keyspace `expires`).
    pub fn expiring_len(&self, ns: u8) -> usize {
        self.inner.index.get(ns).map_or(0, Keydir::expiring)
    }

    /// Whether namespace `ns` holds no keys.
    pub fn is_empty(&self, ns: u8) -> bool {
        self.len(ns) == 0
    }

    /// Keys in all namespaces.
    pub fn total_len(&self) -> usize {
        (0..NAMESPACES).map(|ns| self.len(ns)).sum()
    }

    /// Removes every key of namespace `ns` (Redis FLUSHDB).
    pub fn flush_namespace(&self, ns: u8) -> Result<()> {
        check_ns(ns)?;
        self.flush_where(ns)
    }

    /// Removes every key of every namespace (Redis FLUSHALL).
    pub fn flush_all(&self) -> Result<()> {
        self.flush_where(ALL_NAMESPACES)
    }

    fn flush_where(&self, ns: u8) -> Result<()> {
        let inner = &*self.inner;
        let mut buf = Vec::new();
        record::encode_into(&mut buf, Kind::Flush, ns, b"", b"", b"", 0);
        let lsn = {
            let mut w = inner.writer()?;
            let (seg, _) = inner.log.append_locked(&mut w, &buf)?;
            seg.add_dead(buf.len() as u64);
            let mut removed = Vec::new();
            let mut ids = Vec::new();
            inner.index.clear(ns, |kd_ns, s| {
                if kd_ns < NAMESPACES {
                    ids.push(s.hash);
                }
                removed.push(*s);
            });
            inner.log.mark_dead_all(removed);
            inner.families.flushed(ns);
            inner.note_removed(&ids);
            // Unreachable now (no slot names them): their memory goes back at once.
            if ns == ALL_NAMESPACES {
                inner.hot.clear();
            }
            w.lsn
        };
        inner.log.after_write(lsn)
    }

    /// Hands buffered writes to the OS without syncing. Writes are buffered in memory
    /// (up to 64 KiB) between flushes; a server should call this before it acknowledges
    /// a batch of writes, so that a crash of the process loses nothing acknowledged.
    /// Syncs (any fsync policy) and the background thread (every tick) flush too.
    pub fn flush_writes(&self) -> Result<()> {
        self.inner.log.flush_writes()
    }

    /// Changes whenever writes that had not yet been handed to the file were given up
    /// (after a failed write, when writes resume). A server that notes it before a
    /// batch's first write and finds it changed after [`Engine::flush_writes`] must not
    /// acknowledge that batch's writes: some of them may be gone.
    pub fn write_generation(&self) -> u64 {
        self.inner.log.generation()
    }

    /// Replaces the compaction filter (`None` removes it); compactions that are running
    /// finish their current batch with the old one.
    pub fn set_compaction_filter(&self, filter: Option<Arc<dyn CompactionFilter>>) {
        self.inner.compactor.set_filter(filter);
    }

    /// Puts a plugged-in eviction policy in force: it is told of every key first
    /// (reading keys from disk if it wants them), then takes over atomically.
    pub fn replace_policy(&self, policy: Box<dyn EvictionPolicy>) {
        self.inner.policy.replace(policy, &self.inner.keys());
    }

    /// Hands eviction back to the built-in policy of `Options::eviction` (whose bits
    /// the index kept meanwhile).
    pub fn use_builtin_policy(&self) {
        self.inner.policy.unplug_policy();
    }

    /// Asks for a full compaction: the active segment is sealed and every segment
    /// rewritten, each live record shown to the compaction filter, garbage dropped.
    /// Runs on the compactor thread; returns at once with a ticket for
    /// [`Engine::wait_compaction`].
    pub fn compact_all(&self) -> u64 {
        self.inner.compactor.request_full()
    }

    /// Waits for the full compaction of `ticket` (from [`Engine::compact_all`]).
    pub fn wait_compaction(&self, ticket: u64) -> Result<()> {
        self.inner
            .compactor
            .wait_full(ticket)
            .map_err(Error::Compaction)
    }

    /// Makes every write so far durable, whatever the fsync policy.
    pub fn sync(&self) -> Result<()> {
        self.inner.log.check_writable()?;
        self.inner.log.sync_now()
    }

    /// A snapshot of the engine's figures.
    pub fn stats(&self) -> Stats {
        let inner = &*self.inner;
        let c = &inner.counters;
        let (mut segments, mut garbage_bytes) = (0, 0);
        for seg in inner.log.segments() {
            segments += 1;
            garbage_bytes += seg.dead.load(Ordering::Relaxed);
        }
        let disk_bytes = inner.log.disk_bytes();
        let index_bytes = inner.index.heap_bytes();
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let (policy, policy_bytes) = inner.policy.describe();
        let policy_bytes = policy_bytes as u64;
        let lc = &inner.log.counters;
        let written = get(&lc.bytes_written);
        let rewritten = get(&c.bytes_rewritten);
        let live_bytes = inner.index.live_bytes();
        Stats {
            write_error: inner.log.write_error(),
            keys: self.total_len() as u64,
            segments,
            disk_bytes,
            garbage_bytes,
            index_bytes: index_bytes as u64,
            puts: c.puts.get(),
            deletes: c.deletes.get(),
            hits: c.hits.get(),
            misses: c.misses.get(),
            expired_keys: get(&c.expired),
            corrupt_records: get(&c.corrupt),
            syncs: get(&lc.syncs),
            bytes_written: written,
            last_sync_ms: get(&lc.last_sync_ms),
            live_bytes,
            evictions_max_keys: get(&c.evicted_max_keys),
            evictions_disk: get(&c.evicted_disk),
            filter_removals: get(&c.filter_removed),
            compactions: get(&c.compactions),
            full_compactions: get(&c.full_compactions),
            full_compaction_running: inner.compactor.full_in_progress(),
            reclaims: get(&c.reclaims),
            bytes_rewritten: rewritten,
            write_amplification: if written > rewritten {
                written as f64 / (written - rewritten) as f64
            } else {
                1.0
            },
            policy_bytes,
            policy,
            chunks: inner.index.chunk_len() as u64,
            chunked_collections: inner.families.len() as u64,
            collection_registry_bytes: inner.families.heap_bytes() as u64,
            chunk_reads: c.chunk_reads.get(),
            hot: inner.hot.stats(),
        }
    }

    /// Syncs, writes the hint file of the active segment (so the next open reads no
    /// data), stops the background thread and releases the directory lock. Later calls
    /// fail with [`Error::Closed`]. Dropping the engine does the same, logging errors.
    pub fn close(&self) -> Result<()> {
        self.stopper.stop();
        self.inner.compactor.wake();
        for h in self.threads.lock().drain(..) {
            let _ = h.join();
        }
        shutdown(&self.inner)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::warn!(error = %e, "closing the engine failed");
        }
    }
}

/// Final sync and hints; releases the directory lock. Safe to call twice.
fn shutdown(inner: &Inner) -> Result<()> {
    if inner.log.close() {
        return Ok(());
    }
    let mut result = Ok(());
    if !inner.log.is_poisoned() {
        let (dir, storage) = (&inner.opts.dir, inner.opts.storage.as_ref());
        result = inner.log.sync_now();
        if result.is_ok() {
            result = inner.log.persist_sync_mark(true);
        }
        maintenance::write_pending_hints(&inner.log, &inner.index, dir, storage);
        if result.is_ok() {
            let active = inner.log.active();
            result = maintenance::write_hint(&inner.log, &inner.index, dir, storage, &active);
        }
        if result.is_ok() {
            // Not being able to write it only makes the next open slower.
            let started = std::time::Instant::now();
            match crate::snapshot::write(inner) {
                Ok(()) => tracing::info!(
                    keys = inner.index.total_len(),
                    ms = started.elapsed().as_millis() as u64,
                    "index snapshot written"
                ),
                Err(e) => tracing::warn!(error = %e, "could not write the index snapshot"),
            }
        }
    }
    inner.dir_lock.lock().take();
    tracing::info!(dir = %inner.opts.dir.display(), "engine closed");
    result
}
