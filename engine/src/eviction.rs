//! Glue between the engine and its eviction policy: accesses are collected in striped
//! buffers and handed over in batches; inserts and removals are reported as they
//! happen; `max_keys` is enforced right after an insert by evicting the policy's
//! victims, each logged as an evict record so a restart does not bring it back.

use crate::engine::Inner;
use crate::error::Result;
use crate::format::record::{self, HEADER_LEN, Header, Kind, NAMESPACES};
use crate::keydir::Slot;
use crate::log::Writer;
use crate::policy::EvictionPolicy;
use crate::stats::Counters;
use parking_lot::MutexGuard;
use std::sync::atomic::AtomicU64;

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

impl Inner {
    /// A read hit or an overwrite. Under contention the access is dropped rather than
    /// waited for: policies are statistical, the read path must not queue.
    pub fn note_access(&self, id: u64) {
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
            match self.try_policy() {
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
    /// call goes through [`Inner::policy`], which hands over the pending ones first, so
    /// the policy sees events in order.
    pub fn note_insert(&self, id: u64, key: &[u8]) {
        let full = {
            let mut pending = self.pending_inserts.lock();
            pending.push(id, key);
            pending.ids.len() >= INSERT_BATCH
        };
        if full {
            drop(self.policy());
        }
    }

    /// The policy, with every pending insert handed to it.
    pub fn policy(&self) -> MutexGuard<'_, Box<dyn EvictionPolicy>> {
        self.hand_over_inserts(self.policy.lock())
    }

    /// [`Inner::policy`], unless someone else holds it.
    fn try_policy(&self) -> Option<MutexGuard<'_, Box<dyn EvictionPolicy>>> {
        self.policy.try_lock().map(|p| self.hand_over_inserts(p))
    }

    /// Replaces a failed policy with the built-in one, told of every key (pending
    /// inserts included: they are in the index already).
    fn replace_failed(&self, p: &mut Box<dyn EvictionPolicy>) {
        tracing::error!(policy = %p.name(), fallback = self.opts.eviction.as_str(), "eviction policy failed; the built-in policy takes over");
        let mut fresh = self.opts.eviction.build();
        self.pending_inserts.lock().clear();
        self.seed(&mut fresh);
        *p = fresh;
    }

    fn hand_over_inserts<'a>(
        &self,
        mut p: MutexGuard<'a, Box<dyn EvictionPolicy>>,
    ) -> MutexGuard<'a, Box<dyn EvictionPolicy>> {
        if p.failed() {
            self.replace_failed(&mut p);
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

    pub fn note_removed(&self, ids: &[u64]) {
        if !ids.is_empty() {
            self.policy().on_remove(ids);
        }
    }

    /// Tells a fresh policy about every key recovery found (reading the keys back from
    /// disk if the policy wants them).
    pub fn seed_policy(&self) {
        let mut p = self.policy.lock();
        self.seed(&mut p);
    }

    /// Seeds `policy` with every key, then swaps it in. Inserts, removals and evictions
    /// wait meanwhile, so the new policy starts with exactly the engine's keys.
    pub fn replace_policy(&self, policy: Box<dyn EvictionPolicy>) {
        // Holding the policy lock for the whole swap keeps the two views consistent:
        // inserts and removals wait for it. Pending inserts are in the index, so the
        // seeding covers them; they are dropped rather than told twice.
        let mut current = self.policy.lock();
        self.pending_inserts.lock().clear();
        let mut fresh = policy;
        self.seed(&mut fresh);
        *current = fresh;
    }

    fn seed(&self, p: &mut Box<dyn EvictionPolicy>) {
        let wants_keys = p.wants_keys();
        let mut ids = Vec::with_capacity(4096);
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let flush =
            |p: &mut Box<dyn EvictionPolicy>, ids: &mut Vec<u64>, keys: &mut Vec<Vec<u8>>| {
                if wants_keys {
                    let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
                    p.on_insert_keys(ids, &refs);
                } else {
                    p.on_insert(ids);
                }
                ids.clear();
                keys.clear();
            };
        for kd in self.index.all() {
            kd.for_each_slot(|slot| {
                if wants_keys {
                    keys.push(self.key_of(slot).unwrap_or_default());
                }
                ids.push(slot.hash);
                if ids.len() == 4096 {
                    flush(p, &mut ids, &mut keys);
                }
            });
        }
        flush(p, &mut ids, &mut keys);
    }

    /// The key bytes of the record at `slot` (`None` if unreadable).
    fn key_of(&self, slot: &Slot) -> Option<Vec<u8>> {
        let seg = self.log.segment(slot.seg)?;
        let mut head = [0u8; HEADER_LEN];
        self.log.read_exact(&seg, slot.off as u64, &mut head).ok()?;
        let h = Header::parse(&head)?;
        let mut buf = vec![0u8; HEADER_LEN + h.key_len as usize];
        self.log.read_exact(&seg, slot.off as u64, &mut buf).ok()?;
        Some(buf.split_off(HEADER_LEN))
    }

    pub fn total_keys(&self) -> u64 {
        self.index.total_len() as u64
    }

    /// Evicts until the key count is within `max_keys`. Called with the writer held.
    pub fn enforce_max_keys(&self, w: &mut Writer) -> Result<()> {
        let Some(max) = self.opts.max_keys else {
            return Ok(());
        };
        let mut victims = Vec::new();
        loop {
            let total = self.total_keys();
            if total <= max {
                return Ok(());
            }
            victims.clear();
            {
                let mut p = self.policy();
                self.drain_accesses(p.as_mut());
                // Evict a little below the limit, so the next inserts do not each
                // need a round trip to the policy.
                let slack = (max / 256).min(64);
                let n = (total - max + slack) as usize;
                p.victims(n, &mut victims);
                if victims.is_empty() && p.failed() {
                    self.replace_failed(&mut p);
                    p.victims(n, &mut victims);
                }
            }
            if victims.is_empty() {
                tracing::warn!(total, max, "eviction policy offered no victims");
                return Ok(());
            }
            for &id in &victims {
                self.evict_id(w, id, &self.counters.evicted_max_keys)?;
            }
        }
    }

    /// Removes key `id` from the index and logs an evict record for it; returns whether
    /// the key was there.
    pub fn evict_id(&self, w: &mut Writer, id: u64, counter: &AtomicU64) -> Result<bool> {
        let ns = (id & 0xF) as u8;
        if ns >= NAMESPACES {
            return Ok(false);
        }
        let Some(kd) = self.index.get(ns) else {
            return Ok(false);
        };
        let Some(slot) = kd.remove_if(id, |_| true) else {
            return Ok(false);
        };
        self.log.mark_dead(&slot);
        let rec = evict_record(ns, id);
        let (seg, _) = self.log.append_locked(w, &rec)?;
        seg.add_dead(rec.len() as u64);
        Counters::bump(counter);
        Ok(true)
    }
}

/// An evict record for key `id` of namespace `ns`.
pub(crate) fn evict_record(ns: u8, id: u64) -> Vec<u8> {
    let mut rec = Vec::with_capacity(30);
    record::encode_into(&mut rec, Kind::Evict, ns, &id.to_le_bytes(), b"", b"", 0);
    rec
}
