//! Eviction by key count: `max_keys` is enforced right after an insert by evicting the
//! policy's victims, each logged as an evict record so a restart does not bring it back;
//! and the engine's doors to its policy host (accesses, inserts, removals).

use crate::core::Inner;
use crate::error::Result;
use crate::format::record::{self, NAMESPACES};
use crate::keydir::{Keydir, Slot};
use crate::log::Writer;
use crate::policy_host::Keys;
use crate::stats::Counters;
use std::sync::atomic::AtomicU64;

impl Inner {
    /// The keys that exist, for the policy host.
    pub fn keys(&self) -> Keys<'_> {
        Keys::new(&self.index, &self.log)
    }

    /// A read hit of the key at `slot` in `kd`.
    pub fn note_read(&self, kd: &Keydir, slot: &Slot) {
        self.policy.note_read(kd, slot);
    }

    /// An overwrite of key `id`.
    pub fn note_overwrite(&self, id: u64) {
        self.policy.note_overwrite(id);
    }

    /// Key `id` was created.
    pub fn note_insert(&self, id: u64, key: &[u8]) {
        self.policy.note_insert(id, key);
    }

    /// Keys `ids` are gone.
    pub fn note_removed(&self, ids: &[u64]) {
        self.policy.note_removed(ids);
    }

    /// Key `id` (`key`) was just written over `old`: the old record is garbage and the
    /// policy hears of an overwrite, or of a new key (which may evict others). Called
    /// with the writer held.
    pub fn key_written(
        &self,
        w: &mut Writer,
        id: u64,
        key: &[u8],
        old: Option<Slot>,
    ) -> Result<()> {
        match old {
            Some(old) => {
                self.log.mark_dead(&old);
                self.note_overwrite(id);
                Ok(())
            }
            None => {
                self.note_insert(id, key);
                self.enforce_max_keys(w)
            }
        }
    }

    /// Evicts until the key count is within `max_keys`. Called with the writer held.
    pub fn enforce_max_keys(&self, w: &mut Writer) -> Result<()> {
        let Some(max) = self.opts.max_keys else {
            return Ok(());
        };
        loop {
            let total = self.index.counted_len() as u64;
            if total <= max {
                return Ok(());
            }
            // Evict a little below the limit, so the next inserts do not each need a
            // round trip to the policy.
            let slack = (max / 256).min(64);
            let n = (total - max + slack) as usize;
            let victims = self.policy.victims(&self.index, n);
            if victims.is_empty() {
                tracing::warn!(total, max, "eviction policy offered no victims");
                return Ok(());
            }
            for slot in &victims.removed {
                self.log_eviction(w, slot, &self.counters.evicted_max_keys)?;
            }
            // A plugged-in policy names ids: their slots are looked up one by one, so
            // they are touched first and their cache misses overlap.
            let touched = victims.ids.iter().fold(0u32, |acc, &id| {
                let kd = self.index.get((id & 0xF) as u8);
                acc ^ kd.map_or(0, |kd| kd.touch(id))
            });
            std::hint::black_box(touched);
            for &id in &victims.ids {
                self.evict_id(w, id, &self.counters.evicted_max_keys)?;
            }
        }
    }

    /// Logs the eviction of `slot`, which has left the index.
    fn log_eviction(&self, w: &mut Writer, slot: &Slot, counter: &AtomicU64) -> Result<()> {
        self.log.mark_dead(slot);
        self.families.dropped(&[slot.hash]);
        let ns = (slot.hash & 0xF) as u8;
        let rec = record::evict(ns, slot.hash);
        let (seg, _) = self.log.append_locked(w, &rec)?;
        seg.add_dead(rec.len() as u64);
        Counters::bump(counter);
        Ok(())
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
        self.log_eviction(w, &slot, counter)?;
        Ok(true)
    }
}
