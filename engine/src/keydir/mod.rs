//! The index (keydir) of one namespace: key hash → record location and coarse expiry,
//! split into 1024 independently locked shards so readers never queue on one lock.
//! SCAN walks it in hash order, which stays stable while shards grow and shrink.

mod table;

pub(crate) use table::{ENTRY_BYTES, HandStep, Slot};
use table::{SHARD_BITS, Table};

use parking_lot::RwLock;
use std::sync::atomic::{AtomicUsize, Ordering};

const SHARDS: usize = 1 << SHARD_BITS;

/// Padded to a cache line so two shards' locks never share one.
#[repr(align(64))]
struct Shard(RwLock<Table>);

pub(crate) struct Keydir {
    shards: Box<[Shard]>,
    /// Keys, and keys with an expiry. Updated while the shard lock is held, so for any
    /// one key the increment always precedes the decrement and the sums never wrap.
    len: AtomicUsize,
    expiring: AtomicUsize,
    /// Keys whose policy bits have [`TAGGED`] set (S3-FIFO: those in its small queue).
    tagged: AtomicUsize,
    live: std::sync::atomic::AtomicU64,
}

/// The policy bit the keydir counts keys by.
pub(crate) const TAGGED: u16 = 1;

/// Changes to a keydir's counters, applied at once.
#[derive(Default)]
struct Delta {
    len: i64,
    live: i64,
    expiring: i64,
    tagged: i64,
}

impl Delta {
    fn count(&mut self, slot: &Slot, sign: i64) {
        self.len += sign;
        self.live += sign * slot.len as i64;
        if slot.exp_s != 0 {
            self.expiring += sign;
        }
        if slot.meta & TAGGED != 0 {
            self.tagged += sign;
        }
    }

    fn retag(&mut self, old: u16, new: u16) {
        self.tagged += ((new & TAGGED) as i64) - ((old & TAGGED) as i64);
    }

    fn apply(&self, kd: &Keydir) {
        if (self.len, self.live, self.expiring, self.tagged) == (0, 0, 0, 0) {
            return;
        }
        fn add_usize(a: &AtomicUsize, d: i64) {
            if d >= 0 {
                a.fetch_add(d as usize, Ordering::Relaxed);
            } else {
                a.fetch_sub(d.unsigned_abs() as usize, Ordering::Relaxed);
            }
        }
        add_usize(&kd.len, self.len);
        add_usize(&kd.expiring, self.expiring);
        add_usize(&kd.tagged, self.tagged);
        if self.live >= 0 {
            kd.live.fetch_add(self.live as u64, Ordering::Relaxed);
        } else {
            kd.live
                .fetch_sub(self.live.unsigned_abs(), Ordering::Relaxed);
        }
    }
}

/// One shard held for a batch of changes; the keydir's counters take the batch's net
/// change when it ends, while the shard is still held (so they never wrap).
pub(crate) struct ShardBatch<'a> {
    table: parking_lot::RwLockWriteGuard<'a, Table>,
    kd: &'a Keydir,
    delta: Delta,
}

impl ShardBatch<'_> {
    /// Room for `more` inserts.
    pub fn reserve(&mut self, more: usize) {
        self.table.reserve(more);
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// See [`Table::touch`].
    pub fn touch(&self, hash: u64) -> u32 {
        self.table.touch(hash)
    }

    /// Inserts or replaces; returns the slot it replaced.
    pub fn insert(&mut self, slot: Slot) -> Option<Slot> {
        let old = self.table.insert(slot);
        if let Some(o) = &old {
            self.delta.count(o, -1);
        }
        self.delta.count(&slot, 1);
        old
    }

    /// Removes `hash`; returns its slot.
    pub fn remove(&mut self, hash: u64) -> Option<Slot> {
        let old = self.table.remove_if(hash, |_| true);
        if let Some(o) = &old {
            self.delta.count(o, -1);
        }
        old
    }
}

impl Drop for ShardBatch<'_> {
    fn drop(&mut self) {
        self.delta.apply(self.kd);
    }
}

/// Whether a slot's coarse (whole-second, rounded up) expiry settles the question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    Alive,
    Expired,
    /// Within the last second before the coarse expiry: the exact time is on disk.
    Unsure,
}

/// The coarse expiry kept in a slot for an exact expiry in ms (0 = never).
pub(crate) fn coarse_expiry(expire_at_ms: u64) -> u32 {
    if expire_at_ms == 0 {
        0
    } else {
        expire_at_ms.div_ceil(1000).clamp(1, u32::MAX as u64) as u32
    }
}

impl Slot {
    pub fn liveness(&self, now_ms: u64) -> Liveness {
        if self.exp_s == 0 {
            return Liveness::Alive;
        }
        let coarse_ms = self.exp_s as u64 * 1000;
        if self.exp_s == u32::MAX {
            // Clamped: the exact expiry lies somewhere beyond; only the disk knows.
            return if now_ms < coarse_ms {
                Liveness::Alive
            } else {
                Liveness::Unsure
            };
        }
        // exact ∈ (coarse_ms - 1000, coarse_ms]
        if now_ms >= coarse_ms {
            Liveness::Expired
        } else if now_ms + 1000 <= coarse_ms {
            Liveness::Alive
        } else {
            Liveness::Unsure
        }
    }
}

/// The shard a key hash belongs to.
pub(crate) fn shard_of(hash: u64) -> usize {
    (hash >> (64 - SHARD_BITS)) as usize
}

fn shard_start(shard: usize) -> u64 {
    (shard as u64) << (64 - SHARD_BITS)
}

impl Keydir {
    pub fn new() -> Self {
        Keydir {
            shards: (0..SHARDS)
                .map(|i| Shard(RwLock::new(Table::new(shard_start(i)))))
                .collect(),
            len: AtomicUsize::new(0),
            expiring: AtomicUsize::new(0),
            tagged: AtomicUsize::new(0),
            live: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn shard(&self, hash: u64) -> &RwLock<Table> {
        &self.shards[shard_of(hash)].0
    }

    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub fn get(&self, hash: u64) -> Option<Slot> {
        self.shard(hash).read().get(hash)
    }

    /// Starts loading the entry of `hash` into the cache (skipped while a writer
    /// holds its shard).
    pub fn prefetch(&self, hash: u64) {
        if let Some(t) = self.shard(hash).try_read() {
            t.prefetch(hash);
        }
    }

    /// Keys whose policy bits are [`TAGGED`].
    pub fn tagged(&self) -> usize {
        self.tagged.load(Ordering::Relaxed)
    }

    /// Keys with an expiry (expired keys not yet swept included).
    pub fn expiring(&self) -> usize {
        self.expiring.load(Ordering::Relaxed)
    }

    fn counted_out(&self, slot: &Slot) {
        let mut d = Delta::default();
        d.count(slot, -1);
        d.apply(self);
    }

    /// Inserts or replaces `slot` as it is (policy bits included); returns the slot it
    /// replaced.
    pub fn insert(&self, slot: Slot) -> Option<Slot> {
        self.insert_with(slot, |_| slot.meta)
    }

    /// Inserts or replaces `slot` with the policy bits `meta` picks from the slot it
    /// replaces (if any); returns that slot. `meta` runs under the shard's lock.
    pub fn insert_with(&self, slot: Slot, meta: impl FnOnce(Option<&Slot>) -> u16) -> Option<Slot> {
        let mut t = self.shard(slot.hash).write();
        let mut chosen = 0;
        let old = t.insert_with(slot, |old| {
            chosen = meta(old);
            chosen
        });
        let mut d = Delta::default();
        if let Some(o) = &old {
            d.count(o, -1);
        }
        d.count(
            &Slot {
                meta: chosen,
                ..slot
            },
            1,
        );
        d.apply(self);
        old
    }

    /// Changes the policy bits of `hash` to what `f` makes of them (`None`: leave
    /// them). Gives up rather than wait if the shard is busy: it is a read's
    /// bookkeeping, and policies are statistical.
    pub fn update_meta(&self, hash: u64, f: impl FnOnce(u16) -> Option<u16>) {
        let Some(mut t) = self.shard(hash).try_write() else {
            return;
        };
        if let Some((old, new)) = t.update_meta(hash, f) {
            let mut d = Delta::default();
            d.retag(old, new);
            d.apply(self);
        }
    }

    /// An eviction hand's walk over shard `shard` from position `from` (see
    /// [`HandStep`]); evicted slots leave the index and go to `evicted`. Returns the
    /// position it stopped at, or `None` at the shard's end.
    pub fn sweep(
        &self,
        shard: usize,
        from: usize,
        step: impl FnMut(&Slot) -> HandStep,
        mut evicted: impl FnMut(Slot),
    ) -> Option<usize> {
        let mut t = self.shards[shard % SHARDS].0.write();
        let mut d = Delta::default();
        let mut retagged = Delta::default();
        let mut step = step;
        let at = t.sweep(
            from,
            |s| {
                let r = step(s);
                if let HandStep::Set(m) = r {
                    retagged.retag(s.meta, m);
                }
                r
            },
            |s| {
                d.count(&s, -1);
                evicted(s);
            },
        );
        d.tagged += retagged.tagged;
        t.shrink_if_sparse();
        let cap = t.capacity();
        d.apply(self);
        (at < cap).then_some(at)
    }

    /// Shrinks every shard's table that is less than 60% full (see [`Table::fit`]).
    pub fn fit(&self) {
        for s in self.shards.iter() {
            s.0.write().fit();
        }
    }

    /// Shard `shard`, write-locked for a batch of changes (recovery applies a hint
    /// file shard by shard: one lock and a cache-resident table per run of keys).
    pub fn shard_batch(&self, shard: usize) -> ShardBatch<'_> {
        ShardBatch {
            table: self.shards[shard % SHARDS].0.write(),
            kd: self,
            delta: Delta::default(),
        }
    }

    /// Appends shard `shard`'s entries to `out` (see [`Table::encode_into`]); returns
    /// the table's capacity and how many entries it wrote.
    pub fn encode_shard(&self, shard: usize, out: &mut Vec<u8>) -> (usize, usize) {
        let t = self.shards[shard % SHARDS].0.read();
        (t.capacity(), t.encode_into(out))
    }

    /// Puts the table that `bytes` encodes (with `capacity` entries) in place of shard
    /// `shard`'s, which must be empty, leaving out keys whose coarse expiry says they
    /// expired by `now_ms` (handed to `expired`); `false` if the bytes are not a valid
    /// table.
    pub fn decode_shard(
        &self,
        shard: usize,
        capacity: usize,
        bytes: &[u8],
        now_ms: u64,
        mut expired: impl FnMut(Slot),
    ) -> bool {
        let shard = shard % SHARDS;
        let Some(mut table) = Table::decode(shard_start(shard), capacity, bytes) else {
            return false;
        };
        let gone: Vec<u64> = table
            .iter()
            .filter(|s| s.liveness(now_ms) == Liveness::Expired)
            .map(|s| s.hash)
            .collect();
        for h in gone {
            if let Some(s) = table.remove_if(h, |_| true) {
                expired(s);
            }
        }
        let mut t = self.shards[shard].0.write();
        if t.len() != 0 {
            return false;
        }
        let mut d = Delta::default();
        table.iter().for_each(|s| d.count(&s, 1));
        *t = table;
        d.apply(self);
        true
    }

    /// Removes `hash` only if its slot is still exactly `expected` (so a concurrent
    /// writer's newer slot is never removed by a stale decision).
    pub fn remove_exact(&self, expected: &Slot) -> bool {
        self.remove_if(expected.hash, |s| s == expected).is_some()
    }

    /// Reads the entry where `hash` would be looked for first (see [`Table::touch`]);
    /// never waits for the shard.
    pub fn touch(&self, hash: u64) -> u32 {
        self.shard(hash).try_read().map_or(0, |t| t.touch(hash))
    }

    pub fn remove_if(&self, hash: u64, pred: impl FnOnce(&Slot) -> bool) -> Option<Slot> {
        let mut t = self.shard(hash).write();
        let old = t.remove_if(hash, pred);
        if let Some(o) = &old {
            self.counted_out(o);
        }
        old
    }

    /// Empties the namespace, handing each removed slot to `f`.
    pub fn clear(&self, mut f: impl FnMut(&Slot)) {
        for shard in self.shards.iter() {
            let mut t = shard.0.write();
            let taken = t.take_all();
            taken.iter().for_each(|s| self.counted_out(s));
            drop(t);
            taken.iter().for_each(&mut f);
        }
    }

    /// Removes, from shard `shard`, the slots that `pred` picks, handing each to `f`.
    pub fn sweep_shard(
        &self,
        shard: usize,
        mut pred: impl FnMut(&Slot) -> bool,
        mut f: impl FnMut(&Slot),
    ) {
        let mut t = self.shards[shard % SHARDS].0.write();
        let doomed: Vec<u64> = t.iter().filter(|s| pred(s)).map(|s| s.hash).collect();
        for h in doomed {
            if let Some(s) = t.remove_if(h, |_| true) {
                self.counted_out(&s);
                f(&s);
            }
        }
    }

    pub const SHARDS: usize = SHARDS;

    /// Calls `f` with every slot, one shard (read-locked, then released) at a time.
    pub fn for_each_slot(&self, mut f: impl FnMut(&Slot)) {
        for shard in self.shards.iter() {
            let slots: Vec<Slot> = shard.0.read().iter().collect();
            slots.iter().for_each(&mut f);
        }
    }

    /// Up to `count` slots with hash ≥ `cursor` that `keep` accepts, in hash order, and
    /// the cursor to continue from (0 when the walk is complete). A key present for the
    /// whole walk is returned exactly once, whatever happens to other keys.
    pub fn scan(
        &self,
        cursor: u64,
        count: usize,
        mut keep: impl FnMut(&Slot) -> bool,
    ) -> (Vec<Slot>, u64) {
        let count = count.max(1);
        let mut out: Vec<Slot> = Vec::new();
        let mut shard = shard_of(cursor);
        let mut from = cursor;
        loop {
            let mut found: Vec<Slot> = self.shards[shard]
                .0
                .read()
                .iter()
                .filter(|s| s.hash >= from && keep(s))
                .collect();
            let need = count - out.len();
            if found.len() > need {
                found.select_nth_unstable_by_key(need - 1, |s| s.hash);
                found.truncate(need);
                found.sort_unstable_by_key(|s| s.hash);
                let last = found[need - 1].hash;
                out.extend(found);
                // Hash u64::MAX is the last possible one, so wrapping to 0 means "done".
                return (out, last.wrapping_add(1));
            }
            found.sort_unstable_by_key(|s| s.hash);
            out.extend(found);
            shard += 1;
            if shard == SHARDS {
                return (out, 0);
            }
            from = shard_start(shard);
            if out.len() >= count {
                return (out, from);
            }
        }
    }

    /// Bytes of the records the index points at.
    pub fn live_bytes(&self) -> u64 {
        self.live.load(Ordering::Relaxed)
    }

    pub fn heap_bytes(&self) -> usize {
        self.shards.iter().map(|s| s.0.read().heap_bytes()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn slot(hash: u64) -> Slot {
        Slot {
            hash,
            seg: 1,
            off: 0,
            len: 1,
            exp_s: 0,
            meta: 0,
        }
    }

    #[test]
    fn coarse_expiry_brackets_the_exact_one() {
        for exact in [1u64, 999, 1000, 1001, 123_456_789] {
            let s = Slot {
                exp_s: coarse_expiry(exact),
                ..slot(1)
            };
            for now in exact.saturating_sub(2500)..exact + 2500 {
                match s.liveness(now) {
                    Liveness::Alive => assert!(now < exact, "{now} {exact}"),
                    Liveness::Expired => assert!(now >= exact, "{now} {exact}"),
                    Liveness::Unsure => {}
                }
            }
        }
        assert_eq!(slot(1).liveness(u64::MAX), Liveness::Alive);
        let far = Slot {
            exp_s: coarse_expiry(u64::MAX),
            ..slot(1)
        };
        assert_eq!(far.liveness(1), Liveness::Alive);
    }

    #[test]
    fn scan_returns_every_stable_key_once_while_others_churn() {
        let kd = Keydir::new();
        let mut r = 7u64;
        let mut next = || {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            r
        };
        let stable: BTreeSet<u64> = (0..5000).map(|_| next() | 1).collect();
        for h in &stable {
            kd.insert(slot(*h));
        }
        let mut seen = Vec::new();
        let mut cursor = 0;
        let mut churn = Vec::new();
        loop {
            let (page, c) = kd.scan(cursor, 37, |_| true);
            assert!(page.len() <= 37);
            seen.extend(page.iter().map(|s| s.hash).filter(|h| stable.contains(h)));
            // Other keys come and go between calls, growing and shrinking shards.
            for _ in 0..50 {
                let h = next() | 1;
                if !stable.contains(&h) {
                    kd.insert(slot(h));
                    churn.push(h);
                }
            }
            for h in churn.drain(..churn.len() / 2) {
                kd.remove_if(h, |_| true);
            }
            if c == 0 {
                break;
            }
            cursor = c;
        }
        let unique: BTreeSet<u64> = seen.iter().copied().collect();
        assert_eq!(unique.len(), seen.len(), "a key came back twice");
        assert_eq!(unique, stable);
    }

    #[test]
    fn len_tracks_inserts_removes_and_clear() {
        let kd = Keydir::new();
        for h in 1..=100u64 {
            kd.insert(slot(h << 40));
        }
        kd.insert(slot(1 << 40));
        kd.insert(Slot {
            exp_s: 5,
            ..slot(7 << 40)
        });
        assert_eq!((kd.len(), kd.expiring()), (100, 1));
        kd.insert(slot(7 << 40));
        assert_eq!((kd.len(), kd.expiring()), (100, 0));
        assert!(kd.remove_exact(&slot(2 << 40)));
        assert!(!kd.remove_exact(&Slot {
            off: 9,
            ..slot(3 << 40)
        }));
        assert_eq!(kd.len(), 99);
        let mut n = 0;
        kd.clear(|_| n += 1);
        assert_eq!((n, kd.len()), (99, 0));
    }
}
