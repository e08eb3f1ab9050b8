//! Collections as families: a root record under the collection's key (its type byte
//! says which collection; its metadata, the family's version and chunk count) and
//! numbered chunk records in the namespace's shadow. The registry knows every family
//! that has chunks, so a root dropped by any path drops its chunks with it.
//!
//! | chunk key field | size | meaning                                     |
//! |-----------------|-----:|---------------------------------------------|
//! | root key        |  `k` | the collection's key                        |
//! | version         |    8 | big-endian: the family the chunk belongs to |
//! | chunk number    |    4 | big-endian, `0..chunks`                     |
//!
//! A root's metadata is the [`Family`]: version (8, little-endian) · chunks (4), then
//! its `aux` word (4) when that is not 0 (a sorted set's member-index chunk count). A
//! collection small enough for one record has no metadata and no chunks.
//!
//! Dropping chunks writes nothing: their slots leave the shadow keydir (their bytes
//! become garbage for compaction), and an open checks every chunk against its root, so
//! a chunk whose family is gone or whose number is past its root's count never returns.

use crate::core::exact_expired;
use crate::format::record::{NAMESPACES, ValueType};
use crate::index::Index;
use crate::inthash::IntHash;
use crate::keydir::Slot;
use crate::log::Log;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A collection's family: chunk records `0..chunks` under `version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// Names this family's chunks; a new family at the same key takes a new one, so
    /// an old family's chunks can never be mistaken for it.
    pub version: u64,
    /// Chunks `0..chunks` exist.
    pub chunks: u32,
    /// A word of the collection's own, kept in memory with the family so a point read
    /// can find its chunk without reading the root (a sorted set's member-index chunk
    /// count); 0 for most collections.
    pub aux: u32,
}

/// Bytes of a [`Family`] as a root's metadata (without its `aux` word)...
pub const FAMILY_META_LEN: usize = 12;
/// ...and with it (written only when it is not 0).
pub const FAMILY_META_AUX_LEN: usize = 16;
/// Bytes a chunk key adds to its root's key.
pub const CHUNK_KEY_EXTRA: usize = 12;

impl Family {
    /// A family with no `aux` word.
    pub fn new(version: u64, chunks: u32) -> Family {
        Family {
            version,
            chunks,
            aux: 0,
        }
    }

    /// The root metadata naming this family: 12 bytes, or 16 with a nonzero `aux`.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(FAMILY_META_AUX_LEN);
        b.extend_from_slice(&self.version.to_le_bytes());
        b.extend_from_slice(&self.chunks.to_le_bytes());
        if self.aux != 0 {
            b.extend_from_slice(&self.aux.to_le_bytes());
        }
        b
    }

    /// The family a root's metadata names, if it names one.
    pub fn decode(meta: &[u8]) -> Option<Family> {
        let aux = match meta.len() {
            FAMILY_META_LEN => 0,
            FAMILY_META_AUX_LEN => crate::format::le_u32(meta, 12),
            _ => return None,
        };
        Some(Family {
            version: crate::format::le_u64(meta, 0),
            chunks: crate::format::le_u32(meta, 8),
            aux,
        })
    }

    /// A version no family had: random, so that none recurs across restarts.
    pub fn new_version() -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.finish() | 1
    }
}

/// The key of chunk `n` of the family `version` of root `key`.
pub(crate) fn chunk_key(key: &[u8], version: u64, n: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + CHUNK_KEY_EXTRA);
    k.extend_from_slice(key);
    k.extend_from_slice(&version.to_be_bytes());
    k.extend_from_slice(&n.to_be_bytes());
    k
}

/// The root key, version and number a chunk key names.
pub(crate) fn parse_chunk_key(k: &[u8]) -> Option<(&[u8], u64, u32)> {
    let root_len = k.len().checked_sub(CHUNK_KEY_EXTRA).filter(|&l| l > 0)?;
    let (root, tail) = k.split_at(root_len);
    let version = u64::from_be_bytes(tail[..8].try_into().ok()?);
    let n = u32::from_be_bytes(tail[8..].try_into().ok()?);
    Some((root, version, n))
}

/// A family the registry knows.
#[derive(Debug, Clone)]
struct Entry {
    key: Arc<[u8]>,
    vtype: ValueType,
    family: Family,
    /// The root's exact expiry (Unix ms, 0 = never).
    expire_at_ms: u64,
}

const SHARDS: usize = 64;

/// Every family with chunks, by root id.
pub(crate) struct Families {
    index: Arc<Index>,
    log: Arc<Log>,
    shards: Box<[Mutex<HashMap<u64, Entry, IntHash>>]>,
    len: AtomicUsize,
    /// Roots removed without the writer held (expiry): their chunks are dropped at
    /// the next write or tick, under the writer, unless a write re-created the root.
    pending: Mutex<Vec<u64>>,
}

impl Families {
    pub fn new(index: Arc<Index>, log: Arc<Log>) -> Self {
        Families {
            index,
            log,
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::default()))
                .collect(),
            len: AtomicUsize::new(0),
            pending: Mutex::new(Vec::new()),
        }
    }

    fn shard(&self, id: u64) -> &Mutex<HashMap<u64, Entry, IntHash>> {
        &self.shards[(id >> 4) as usize % SHARDS]
    }

    /// Families with chunks.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// The family of root `id`, its type and exact expiry, if the root is live now.
    pub fn get(&self, ns: u8, id: u64, now: u64) -> Option<(ValueType, Family, u64)> {
        if self.len() == 0 {
            return None;
        }
        let found = self
            .shard(id)
            .lock()
            .get(&id)
            .map(|e| (e.vtype, e.family, e.expire_at_ms))?;
        if exact_expired(found.2, now) {
            return None;
        }
        // A root removed by expiry is still registered until its chunks go.
        self.index.slot(ns, id)?;
        Some(found)
    }

    /// Root `id` (of `key` in `ns`) now names `family` (`None`: it names none, or is
    /// gone). Chunks the old family had and the new one does not are dropped. Called
    /// with the writer held.
    pub fn set(&self, ns: u8, id: u64, key: &[u8], now: Option<(ValueType, Family, u64)>) {
        // Naming none is a drop (nothing to look up while no collection is chunked).
        let Some((vtype, family, expire_at_ms)) = now else {
            self.dropped(&[id]);
            return;
        };
        let old = {
            let mut shard = self.shard(id).lock();
            let key = match shard.get(&id) {
                Some(e) if &*e.key == key => e.key.clone(),
                _ => Arc::from(key),
            };
            let old = shard.insert(
                id,
                Entry {
                    key,
                    vtype,
                    family,
                    expire_at_ms,
                },
            );
            if old.is_none() {
                self.len.fetch_add(1, Ordering::Relaxed);
            }
            old
        };
        if let Some(old) = old {
            let keep = if family.version == old.family.version && *old.key == *key {
                family.chunks
            } else {
                0
            };
            self.reap(ns, &old, keep);
        }
    }

    /// Root `id`'s exact expiry changed (its record was rewritten with the same family).
    pub fn set_expiry(&self, id: u64, expire_at_ms: u64) {
        if self.len() == 0 {
            return;
        }
        if let Some(e) = self.shard(id).lock().get_mut(&id) {
            e.expire_at_ms = expire_at_ms;
        }
    }

    /// Roots `ids` are gone (deleted, overwritten, evicted, filtered away), with the
    /// writer held: their chunks go too.
    pub fn dropped(&self, ids: &[u64]) {
        if self.len() == 0 {
            return;
        }
        for &id in ids {
            let ns = (id & 0xF) as u8;
            let old = self.shard(id).lock().remove(&id);
            if let Some(old) = old {
                self.len.fetch_sub(1, Ordering::Relaxed);
                self.reap(ns, &old, 0);
            }
        }
    }

    /// Roots `ids` were removed without the writer held: their chunks go at the next
    /// [`Families::settle`].
    pub fn dropped_unlocked(&self, ids: &[u64]) {
        if self.len() == 0 {
            return;
        }
        let known: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|&id| self.shard(id).lock().contains_key(&id))
            .collect();
        if !known.is_empty() {
            self.pending.lock().extend(known);
        }
    }

    /// Whether roots removed without the writer wait for [`Families::settle`].
    pub fn has_pending(&self) -> bool {
        !self.pending.lock().is_empty()
    }

    /// Drops the chunks of roots removed without the writer held, unless a write has
    /// re-created the root since (that write dealt with the old family). Called with
    /// the writer held.
    pub fn settle(&self) {
        if self.len() == 0 {
            return;
        }
        let ids = std::mem::take(&mut *self.pending.lock());
        for id in ids {
            let ns = (id & 0xF) as u8;
            if self.index.slot(ns, id).is_none() {
                self.dropped(&[id]);
            }
        }
    }

    /// Namespace `ns` (or every one, for `ns >= NAMESPACES`) was flushed with its
    /// shadow: its families are gone.
    pub fn flushed(&self, ns: u8) {
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            let before = shard.len();
            shard.retain(|id, _| ns < NAMESPACES && (id & 0xF) as u8 != ns);
            self.len.fetch_sub(before - shard.len(), Ordering::Relaxed);
        }
    }

    /// Removes chunks `from..` of `e` from the shadow keydir.
    fn reap(&self, ns: u8, e: &Entry, from: u32) {
        let Some(kd) = self.index.get(ns + NAMESPACES) else {
            return;
        };
        let shadow = ns + NAMESPACES;
        let mut dead: Vec<Slot> = Vec::new();
        for n in from..e.family.chunks {
            let id = self
                .index
                .key_id(shadow, &chunk_key(&e.key, e.family.version, n));
            if let Some(s) = kd.remove_if(id, |_| true) {
                dead.push(s);
            }
        }
        self.log.mark_dead_all(dead);
    }

    /// Bytes the registry holds (about).
    pub fn heap_bytes(&self) -> usize {
        let per = std::mem::size_of::<(u64, Entry)>() + 16;
        self.shards
            .iter()
            .map(|s| {
                let s = s.lock();
                s.capacity() * per + s.values().map(|e| e.key.len()).sum::<usize>()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_keys_and_families_round_trip() {
        let k = chunk_key(b"user:1", 0xDEAD_BEEF, 7);
        assert_eq!(parse_chunk_key(&k), Some((&b"user:1"[..], 0xDEAD_BEEF, 7)));
        assert_eq!(
            parse_chunk_key(&k[..12]),
            None,
            "a chunk key has a root key"
        );
        let f = Family::new(42, 9);
        assert_eq!(f.encode().len(), FAMILY_META_LEN);
        assert_eq!(Family::decode(&f.encode()), Some(f));
        let g = Family { aux: 5, ..f };
        assert_eq!(Family::decode(&g.encode()), Some(g));
        assert_eq!(Family::decode(b"etag"), None);
        assert_ne!(Family::new_version(), Family::new_version());
    }
}
