//! The policy host: the eviction policy in force and what feeds it. Accesses are
//! collected in striped buffers and handed over in batches, inserts in batches too,
//! removals as they happen; a policy that fails is replaced by the built-in one, seeded
//! with every key from a [`KeySource`].

use crate::format::record::{HEADER_LEN, Header};
use crate::index::Index;
use crate::keydir::Slot;
use crate::log::Log;
use crate::policy::{EvictionPolicy, PolicyKind};
use parking_lot::{Mutex, MutexGuard};

/// Receives one batch of key ids and, if asked for, their keys.
pub(crate) type KeyBatch<'a> = dyn FnMut(&[u64], &[Vec<u8>]) + 'a;

/// Where a fresh policy learns the keys that exist: every key id (and its bytes, for a
/// policy that wants keys), in batches.
pub(crate) trait KeySource {
    /// Calls `batch(ids, keys)` for every key; `keys` is empty unless `wants_keys`.
    fn for_each_key_batch(&self, wants_keys: bool, batch: &mut KeyBatch<'_>);
    /// How many keys there are.
    fn count(&self) -> usize;
}

const ACCESS_STRIPES: usize = 8;

/// The policy and its pending inputs.
pub(crate) struct PolicyHost {
    policy: Mutex<Box<dyn EvictionPolicy>>,
    fallback: PolicyKind,
    pending_inserts: Mutex<PendingInserts>,
    access_bufs: Box<[Mutex<Vec<u64>>]>,
}

/// Accesses buffered per stripe before they are handed to the policy.
const ACCESS_BATCH: usize = 256;
/// Inserts buffered before they are handed to the policy.
const INSERT_BATCH: usize = 64;

/// Inserts not yet handed to the policy: ids, and their keys end to end.
#[derive(Default)]
pub(crate) struct PendingInserts {
    ids: Vec<u64>,
    keys: Vec<u8>,
    ends: Vec<usize>,
}

impl PendingInserts {
    fn push(&mut self, id: u64, key: &[u8]) {
        self.ids.push(id);
        self.keys.extend_from_slice(key);
        self.ends.push(self.keys.len());
    }

    fn keys(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(s, &e)| &self.keys[s..e])
    }

    fn clear(&mut self) {
        self.ids.clear();
        self.keys.clear();
        self.ends.clear();
    }
}

impl PolicyHost {
    /// Hosts `policy`; `fallback` takes over if it fails.
    pub fn new(policy: Box<dyn EvictionPolicy>, fallback: PolicyKind) -> Self {
        PolicyHost {
            policy: Mutex::new(policy),
            fallback,
            pending_inserts: Mutex::new(PendingInserts::default()),
            access_bufs: (0..ACCESS_STRIPES)
                .map(|_| Mutex::new(Vec::new()))
                .collect(),
        }
    }

    /// A read hit or an overwrite. Under contention the access is dropped rather than
    /// waited for: policies are statistical, the read path must not queue.
    pub fn note_access(&self, id: u64, keys: &dyn KeySource) {
        let stripe = &self.access_bufs[(id >> 61) as usize % self.access_bufs.len()];
        let Some(mut buf) = stripe.try_lock() else {
            return;
        };
        buf.push(id);
        if buf.len() >= ACCESS_BATCH {
            let batch = std::mem::take(&mut *buf);
            drop(buf);
            // Handed over only if the policy is free; otherwise the batch waits for the
            // next one (and is dropped if it grows too long): readers never queue here.
            match self.try_lock(keys) {
                Some(mut p) => p.on_access(&batch),
                None => {
                    let mut buf = stripe.lock();
                    if buf.len() < 16 * ACCESS_BATCH {
                        buf.extend_from_slice(&batch);
                    }
                }
            }
        }
    }

    /// Hands every buffered access to the policy (before it picks victims).
    pub fn drain_accesses(&self, p: &mut dyn EvictionPolicy) {
        for stripe in self.access_bufs.iter() {
            let batch = std::mem::take(&mut *stripe.lock());
            if !batch.is_empty() {
                p.on_access(&batch);
            }
        }
    }

    /// A key was created. Inserts reach the policy in batches; every other policy
    /// call goes through [`PolicyHost::lock`], which hands over the pending ones first, so
    /// the policy sees events in order.
    pub fn note_insert(&self, id: u64, key: &[u8], keys: &dyn KeySource) {
        let full = {
            let mut pending = self.pending_inserts.lock();
            pending.push(id, key);
            pending.ids.len() >= INSERT_BATCH
        };
        if full {
            drop(self.lock(keys));
        }
    }

    /// The policy, with every pending insert handed to it.
    pub fn lock(&self, keys: &dyn KeySource) -> MutexGuard<'_, Box<dyn EvictionPolicy>> {
        self.hand_over_inserts(self.policy.lock(), keys)
    }

    /// [`PolicyHost::lock`], unless someone else holds it.
    fn try_lock(&self, keys: &dyn KeySource) -> Option<MutexGuard<'_, Box<dyn EvictionPolicy>>> {
        self.policy
            .try_lock()
            .map(|p| self.hand_over_inserts(p, keys))
    }

    /// Replaces a failed policy with the built-in one, told of every key (pending
    /// inserts included: they are in the index already).
    pub fn replace_failed(&self, p: &mut Box<dyn EvictionPolicy>, keys: &dyn KeySource) {
        tracing::error!(policy = %p.name(), fallback = self.fallback.as_str(), "eviction policy failed; the built-in policy takes over");
        let mut fresh = self.fallback.build();
        self.pending_inserts.lock().clear();
        seed(&mut fresh, keys);
        *p = fresh;
    }

    fn hand_over_inserts<'a>(
        &self,
        mut p: MutexGuard<'a, Box<dyn EvictionPolicy>>,
        keys: &dyn KeySource,
    ) -> MutexGuard<'a, Box<dyn EvictionPolicy>> {
        if p.failed() {
            self.replace_failed(&mut p, keys);
        }
        let mut pending = self.pending_inserts.lock();
        if !pending.ids.is_empty() {
            if p.wants_keys() {
                let keys: Vec<&[u8]> = pending.keys().collect();
                p.on_insert_keys(&pending.ids, &keys);
            } else {
                p.on_insert(&pending.ids);
            }
            pending.clear();
        }
        drop(pending);
        p
    }

    pub fn note_removed(&self, ids: &[u64], keys: &dyn KeySource) {
        if !ids.is_empty() {
            self.lock(keys).on_remove(ids);
        }
    }

    /// Tells a fresh policy about every key recovery found (reading the keys back from
    /// disk if the policy wants them).
    pub fn seed_policy(&self, keys: &dyn KeySource) {
        let mut p = self.policy.lock();
        seed(&mut p, keys);
    }

    /// Seeds `policy` with every key, then swaps it in. Inserts, removals and evictions
    /// wait meanwhile, so the new policy starts with exactly the engine's keys.
    pub fn replace(&self, policy: Box<dyn EvictionPolicy>, keys: &dyn KeySource) {
        // Holding the policy lock for the whole swap keeps the two views consistent:
        // inserts and removals wait for it. Pending inserts are in the index, so the
        // seeding covers them; they are dropped rather than told twice.
        let mut current = self.policy.lock();
        self.pending_inserts.lock().clear();
        let mut fresh = policy;
        seed(&mut fresh, keys);
        *current = fresh;
    }
}

/// Tells `p` of every key `keys` holds.
fn seed(p: &mut Box<dyn EvictionPolicy>, keys: &dyn KeySource) {
    p.reserve(keys.count());
    keys.for_each_key_batch(p.wants_keys(), &mut |ids, ks| {
        if ids.is_empty() {
            return;
        }
        if p.wants_keys() {
            let refs: Vec<&[u8]> = ks.iter().map(Vec::as_slice).collect();
            p.on_insert_keys(ids, &refs);
        } else {
            p.on_insert(ids);
        }
    });
}

/// The keys that exist, as the index and the log know them: what a fresh policy is
/// seeded from.
pub(crate) struct Keys<'a> {
    /// Which keys exist.
    pub index: &'a Index,
    /// Where their bytes are.
    pub log: &'a Log,
}

impl<'a> Keys<'a> {
    /// The keys `index` names, read from `log`.
    pub fn new(index: &'a Index, log: &'a Log) -> Self {
        Keys { index, log }
    }

    /// The key bytes of the record at `slot` (`None` if unreadable).
    pub fn key_of(&self, slot: &Slot) -> Option<Vec<u8>> {
        let seg = self.log.segment(slot.seg)?;
        let mut head = [0u8; HEADER_LEN];
        self.log.read_exact(&seg, slot.off as u64, &mut head).ok()?;
        let h = Header::parse(&head)?;
        let mut buf = vec![0u8; HEADER_LEN + h.key_len as usize];
        self.log.read_exact(&seg, slot.off as u64, &mut buf).ok()?;
        Some(buf.split_off(HEADER_LEN))
    }
}

impl KeySource for Keys<'_> {
    fn for_each_key_batch(&self, wants_keys: bool, batch: &mut KeyBatch<'_>) {
        let mut ids = Vec::with_capacity(4096);
        let mut keys: Vec<Vec<u8>> = Vec::new();
        for kd in self.index.all() {
            kd.for_each_slot(|slot| {
                if wants_keys {
                    keys.push(self.key_of(slot).unwrap_or_default());
                }
                ids.push(slot.hash);
                if ids.len() == 4096 {
                    batch(&ids, &keys);
                    ids.clear();
                    keys.clear();
                }
            });
        }
        batch(&ids, &keys);
    }

    fn count(&self) -> usize {
        self.index.total_len()
    }
}
