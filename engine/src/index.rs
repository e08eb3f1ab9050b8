//! The index: one keydir per namespace and the secret seed that turns a key into its
//! 64-bit id. Keys themselves stay on disk; the index holds ids and record positions.

use crate::format::hint::HintEntry;
use crate::format::record::{self, ALL_NAMESPACES, ALL_NS, Kind, NAMESPACES};
use crate::keydir::{Keydir, Slot};
use crate::segment::Found;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Every namespace's keydir (the shadows' too), created on first write.
pub(crate) struct Index {
    seed: u64,
    keydirs: [OnceLock<Keydir>; ALL_NS as usize],
    /// Keys still in a keydir that a running reclaim has already evicted (they leave
    /// when their segment's file is gone): not counted against `max_keys`.
    doomed: AtomicUsize,
}

impl Index {
    /// An empty index whose ids are hashed with `seed`.
    pub fn new(seed: u64) -> Self {
        Index {
            seed,
            keydirs: std::array::from_fn(|_| OnceLock::new()),
            doomed: AtomicUsize::new(0),
        }
    }

    /// The key's id: its seeded 64-bit hash with the namespace in the low 4 bits, so an
    /// id alone names the namespace (eviction policies see only ids). 0 marks an empty
    /// index slot, so the one id in 2^60 that would be 0 becomes 16 (still namespace 0).
    pub fn key_id(&self, ns: u8, key: &[u8]) -> u64 {
        let id = (xxhash_rust::xxh3::xxh3_64_with_seed(key, self.seed) & !0xF) | ns as u64;
        if id == 0 { 16 } else { id }
    }

    /// The seed key ids are hashed with.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The keydir of `ns`, created if it has none yet.
    pub fn keydir(&self, ns: u8) -> &Keydir {
        self.keydirs[ns as usize].get_or_init(Keydir::new)
    }

    /// The keydir of `ns`, if it was ever written.
    pub fn get(&self, ns: u8) -> Option<&Keydir> {
        self.keydirs.get(ns as usize).and_then(OnceLock::get)
    }

    /// The slot of id `id` in namespace `ns`.
    pub fn slot(&self, ns: u8, id: u64) -> Option<Slot> {
        self.get(ns).and_then(|kd| kd.get(id))
    }

    /// Every keydir of keys that exists (not the shadows, whose slots are collection
    /// chunks: never counted, swept, or seen by a policy).
    pub fn all(&self) -> impl Iterator<Item = &Keydir> {
        self.keydirs[..NAMESPACES as usize]
            .iter()
            .filter_map(OnceLock::get)
    }

    /// Every keydir that exists with its namespace, shadows included.
    pub fn every(&self) -> impl Iterator<Item = (u8, &Keydir)> {
        self.keydirs
            .iter()
            .enumerate()
            .filter_map(|(i, kd)| kd.get().map(|kd| (i as u8, kd)))
    }

    /// Empties namespace `ns` and its shadow (or all of them, for [`ALL_NAMESPACES`]),
    /// handing each removed slot to `removed`.
    pub fn clear(&self, ns: u8, mut removed: impl FnMut(u8, &Slot)) {
        for (i, kd) in self.keydirs.iter().enumerate() {
            if (ns == ALL_NAMESPACES || i % NAMESPACES as usize == ns as usize)
                && let Some(kd) = kd.get()
            {
                kd.clear(|s| removed(i as u8, s));
            }
        }
    }

    /// Keys in every namespace.
    pub fn total_len(&self) -> usize {
        self.all().map(Keydir::len).sum()
    }

    /// Collection chunks in every shadow namespace.
    pub fn chunk_len(&self) -> usize {
        self.keydirs[NAMESPACES as usize..]
            .iter()
            .filter_map(OnceLock::get)
            .map(Keydir::len)
            .sum()
    }

    /// Keys that count against `max_keys`: all but those a reclaim is removing.
    pub fn counted_len(&self) -> usize {
        self.total_len()
            .saturating_sub(self.doomed.load(Ordering::Relaxed))
    }

    /// `n` more keys are on their way out (see [`Index::counted_len`]).
    pub fn doom(&self, n: usize) {
        self.doomed.fetch_add(n, Ordering::Relaxed);
    }

    /// `n` doomed keys were removed or kept after all.
    pub fn undoom(&self, n: usize) {
        self.doomed.fetch_sub(n, Ordering::Relaxed);
    }

    /// Heap bytes of every keydir.
    pub fn heap_bytes(&self) -> usize {
        self.every().map(|(_, kd)| kd.heap_bytes()).sum()
    }

    /// Bytes of the live records the index points at.
    pub fn live_bytes(&self) -> u64 {
        self.every().map(|(_, kd)| kd.live_bytes()).sum()
    }

    /// What a record found by a segment walk means for the index. A corrupt record
    /// counts as a tombstone of its key, so a restart cannot fall back to an older
    /// version of that key.
    pub fn describe(&self, off: u64, found: &Found<'_>) -> HintEntry {
        match found {
            Found::Record(r) => HintEntry {
                kind: r.header.kind,
                ns: r.header.ns,
                hash: match r.header.kind {
                    Kind::Flush | Kind::Seal => 0,
                    Kind::Evict => record::evicted_id(r.key),
                    Kind::Put | Kind::Tombstone => self.key_id(r.header.ns, r.key),
                },
                offset: off as u32,
                len: r.header.total_len() as u32,
                expire_at_ms: r.header.expire_at_ms,
            },
            Found::Corrupt { ns, key, len } => HintEntry {
                kind: Kind::Tombstone,
                ns: *ns,
                hash: self.key_id(*ns, key),
                offset: off as u32,
                len: *len as u32,
                expire_at_ms: 0,
            },
        }
    }
}
