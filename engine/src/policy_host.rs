//! The policy host: the eviction policy in force and what feeds it. The built-in
//! policy lives in the index (its bits are set on the read and write paths, at no cost
//! when they do not change); a plugged-in policy is fed accesses in striped buffers
//! handed over in batches, inserts in batches too, removals as they happen, and is
//! seeded with every key from a [`KeySource`]. A plugged-in policy that fails hands
//! eviction back to the built-in one.

use crate::format::record::{HEADER_LEN, Header};
use crate::index::Index;
use crate::keydir::{Keydir, Slot};
use crate::log::Log;
use crate::policy::builtin::Builtin;
use crate::policy::{EvictionPolicy, PolicyKind};
use parking_lot::{Mutex, MutexGuard};
use std::sync::atomic::{AtomicBool, Ordering};

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

/// The policies and a plugged-in policy's pending inputs.
pub(crate) struct PolicyHost {
    builtin: Builtin,
    /// A plugged-in policy, if one is in force.
    plugin: Mutex<Option<Box<dyn EvictionPolicy>>>,
    /// Whether `plugin` is set, read without its lock on every access.
    plugged: AtomicBool,
    /// Whether `plugin` wants key bytes with its inserts (else none are buffered).
    wants_keys: AtomicBool,
    pending_inserts: Mutex<PendingInserts>,
    access_bufs: Box<[Mutex<Vec<u64>>]>,
}

/// Keys chosen for eviction: built-in victims have left the index already; a plugged-in
/// policy names ids, which the caller removes.
#[derive(Default)]
pub(crate) struct Victims {
    pub removed: Vec<Slot>,
    pub ids: Vec<u64>,
}

impl Victims {
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.ids.is_empty()
    }
}

/// Accesses buffered per stripe before they are handed to the policy.
const ACCESS_BATCH: usize = 256;
/// Inserts buffered before they are handed to the policy. Asking for victims hands
/// over what is pending anyway, so under eviction pressure a batch rarely fills: it is
/// large enough that inserts and victims then cost one call each per eviction round.
const INSERT_BATCH: usize = 256;

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
    /// The built-in policy `kind`, and `plugin` in force over it if given (it must be
    /// seeded with [`PolicyHost::seed_policy`] once the keys are known).
    pub fn new(kind: PolicyKind, plugin: Option<Box<dyn EvictionPolicy>>) -> Self {
        PolicyHost {
            builtin: Builtin::new(kind),
            plugged: AtomicBool::new(plugin.is_some()),
            wants_keys: AtomicBool::new(plugin.as_ref().is_some_and(|p| p.wants_keys())),
            plugin: Mutex::new(plugin),
            pending_inserts: Mutex::new(PendingInserts::default()),
            access_bufs: (0..ACCESS_STRIPES)
                .map(|_| Mutex::new(Vec::new()))
                .collect(),
        }
    }

    /// Whether a plugged-in policy is in force.
    pub fn plugged(&self) -> bool {
        self.plugged.load(Ordering::Relaxed)
    }

    /// The policy in force: its name and the heap bytes it holds.
    pub fn describe(&self) -> (String, usize) {
        if self.plugged()
            && let Some(p) = self.plugin.lock().as_ref()
        {
            return (p.name().to_string(), p.memory_bytes());
        }
        (
            self.builtin.kind().as_str().to_string(),
            self.builtin.memory_bytes(),
        )
    }

    /// The built-in policy's bits for a key being written over `old` (or created)
    /// in `index`.
    pub fn written(&self, index: &Index, id: u64, old: Option<&Slot>) -> u16 {
        self.builtin.written(id, old, &|| index.total_len())
    }

    /// A read hit of the key at `slot` in `kd`: the built-in bits change if they must;
    /// a plugged-in policy gets the id in a batch.
    pub fn note_read(&self, kd: &Keydir, slot: &Slot) {
        if self.plugged() {
            self.note_access(slot.hash);
        } else if self.builtin.accessed(slot.meta).is_some() {
            kd.update_meta(slot.hash, |m| self.builtin.accessed(m));
        }
    }

    /// An overwrite (the built-in bits were set by the write): a plugged-in policy is
    /// told.
    pub fn note_overwrite(&self, id: u64) {
        if self.plugged() {
            self.note_access(id);
        }
    }

    /// The built-in policy's insertion epoch, which its slots' stamps count from (kept
    /// across a restart with the slots themselves).
    pub fn epoch(&self) -> u64 {
        self.builtin.epoch()
    }

    /// Restores [`PolicyHost::epoch`].
    pub fn set_epoch(&self, epoch: u64) {
        self.builtin.set_epoch(epoch);
    }

    /// Up to `n` victims (at least one unless the policy has none).
    pub fn victims(&self, index: &Index, n: usize) -> Victims {
        let mut v = Victims::default();
        if self.plugged() {
            let mut guard = self.lock_plugin();
            if let Some(p) = guard.as_mut() {
                self.drain_accesses(p.as_mut());
                p.victims(n, &mut v.ids);
                if !(v.ids.is_empty() && p.failed()) {
                    return v;
                }
                self.unplug(&mut guard);
            }
        }
        self.builtin.evict(index, n, &mut v.removed);
        v
    }

    /// For the live keys of a segment being reclaimed (their slots), whether each is
    /// copied forward: `Some(bits)` with the built-in bits it keeps, `None` if not.
    pub fn keep_on_reclaim(&self, slots: &[Slot]) -> Vec<Option<u16>> {
        if self.plugged() {
            let mut guard = self.lock_plugin();
            if let Some(p) = guard.as_mut() {
                self.drain_accesses(p.as_mut());
                let ids: Vec<u64> = slots.iter().map(|s| s.hash).collect();
                let mut out = Vec::with_capacity(ids.len());
                p.keep_on_reclaim(&ids, &mut out);
                out.resize(ids.len(), true);
                return slots
                    .iter()
                    .zip(out)
                    .map(|(s, keep)| keep.then_some(s.meta))
                    .collect();
            }
        }
        slots
            .iter()
            .map(|s| self.builtin.keep_on_reclaim(s.meta))
            .collect()
    }

    /// Read hit or overwrite, for a plugged-in policy. Under contention the access is
    /// dropped rather than waited for: policies are statistical, the read path must
    /// not queue.
    fn note_access(&self, id: u64) {
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
            match self.try_lock() {
                Some(mut p) => {
                    if let Some(p) = p.as_mut() {
                        p.on_access(&batch);
                    }
                }
                None => {
                    let mut buf = stripe.lock();
                    if buf.len() < 16 * ACCESS_BATCH {
                        buf.extend_from_slice(&batch);
                    }
                }
            }
        }
    }

    /// Hands every buffered access to the policy (before it picks victims), in one
    /// call: a call into a plugin costs about a microsecond however short its batch.
    fn drain_accesses(&self, p: &mut dyn EvictionPolicy) {
        let mut batch = Vec::new();
        for stripe in self.access_bufs.iter() {
            let mut buf = stripe.lock();
            if batch.is_empty() {
                // The first non-empty stripe's buffer is taken, not copied.
                batch = std::mem::take(&mut *buf);
            } else {
                batch.extend_from_slice(&buf);
                buf.clear();
            }
        }
        if !batch.is_empty() {
            p.on_access(&batch);
        }
    }

    /// A key was created. Inserts reach a plugged-in policy in batches; every other
    /// call goes through [`PolicyHost::lock_plugin`], which hands over the pending ones
    /// first, so the policy sees events in order.
    pub fn note_insert(&self, id: u64, key: &[u8]) {
        if !self.plugged() {
            return;
        }
        let full = {
            let mut pending = self.pending_inserts.lock();
            let key = if self.wants_keys.load(Ordering::Relaxed) {
                key
            } else {
                &[]
            };
            pending.push(id, key);
            pending.ids.len() >= INSERT_BATCH
        };
        if full {
            drop(self.lock_plugin());
        }
    }

    /// The plugged-in policy (if any), with every pending insert handed to it.
    fn lock_plugin(&self) -> MutexGuard<'_, Option<Box<dyn EvictionPolicy>>> {
        self.hand_over_inserts(self.plugin.lock())
    }

    /// [`PolicyHost::lock_plugin`], unless someone else holds it.
    fn try_lock(&self) -> Option<MutexGuard<'_, Option<Box<dyn EvictionPolicy>>>> {
        self.plugin.try_lock().map(|p| self.hand_over_inserts(p))
    }

    /// Drops a failed plugged-in policy: the built-in one, whose bits the index kept
    /// all along, takes over at once.
    fn unplug(&self, p: &mut Option<Box<dyn EvictionPolicy>>) {
        if let Some(old) = p.take() {
            tracing::error!(policy = %old.name(), fallback = self.builtin.kind().as_str(), "eviction policy failed; the built-in policy takes over");
        }
        self.plugged.store(false, Ordering::Relaxed);
        self.pending_inserts.lock().clear();
        for stripe in self.access_bufs.iter() {
            stripe.lock().clear();
        }
    }

    fn hand_over_inserts<'a>(
        &self,
        mut guard: MutexGuard<'a, Option<Box<dyn EvictionPolicy>>>,
    ) -> MutexGuard<'a, Option<Box<dyn EvictionPolicy>>> {
        if guard.as_ref().is_some_and(|p| p.failed()) {
            self.unplug(&mut guard);
        }
        let Some(p) = guard.as_mut() else {
            return guard;
        };
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
        guard
    }

    /// Keys `ids` are gone (a plugged-in policy must forget them; the built-in bits
    /// left with the slots).
    pub fn note_removed(&self, ids: &[u64]) {
        if !ids.is_empty()
            && self.plugged()
            && let Some(p) = self.lock_plugin().as_mut()
        {
            p.on_remove(ids);
        }
    }

    /// Tells a plugged-in policy about every key recovery found (reading the keys back
    /// from disk if the policy wants them). The built-in policy needs nothing.
    pub fn seed_policy(&self, keys: &dyn KeySource) {
        if let Some(p) = self.plugin.lock().as_mut() {
            seed(p, keys);
        }
    }

    /// Seeds `policy` with every key, then puts it in force. Inserts, removals and
    /// evictions wait meanwhile, so it starts with exactly the engine's keys.
    pub fn replace(&self, policy: Box<dyn EvictionPolicy>, keys: &dyn KeySource) {
        // Holding the plugin lock for the whole swap keeps the two views consistent:
        // inserts and removals wait for it. Pending inserts are in the index, so the
        // seeding covers them; they are dropped rather than told twice.
        let mut current = self.plugin.lock();
        self.pending_inserts.lock().clear();
        let mut fresh = policy;
        seed(&mut fresh, keys);
        self.wants_keys.store(fresh.wants_keys(), Ordering::Relaxed);
        *current = Some(fresh);
        self.plugged.store(true, Ordering::Relaxed);
    }

    /// Hands eviction back to the built-in policy.
    pub fn unplug_policy(&self) {
        let mut current = self.plugin.lock();
        current.take();
        self.unplug(&mut current);
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
