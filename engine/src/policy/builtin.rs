//! The built-in policies, kept in the index itself: a key's policy bits live in its
//! index slot ([`Slot::meta`]) and eviction hands walk the index, so a built-in policy
//! costs no memory per key and nothing to rebuild at a restart. The hands are CLOCK
//! hands over the index in hash order. FIFO and SIEVE need insertion order: their
//! slots carry an 8-bit insertion-epoch stamp, and their hand looks only at keys of
//! the epochs its window has reached, oldest first.

use super::PolicyKind;
use super::ghost::Ghost;
use crate::format::record::NAMESPACES;
use crate::index::Index;
use crate::keydir::{HandStep, Keydir, Slot, TAGGED};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// SIEVE's and LRU's visited bit; S3-FIFO's two-bit frequency sits in the same place.
const VISITED: u16 = 1 << 1;
/// LRU: used since a reclaim last kept the key (VISITED is also set on insert).
const USED: u16 = 1 << 3;
/// FIFO and SIEVE: the insertion epoch, 8 bits.
const STAMP_SHIFT: u16 = 2;
const STAMP_MASK: u16 = 0xFF << STAMP_SHIFT;
/// FIFO's and SIEVE's epochs: about this many per cache's worth of inserts, and their
/// window takes about one epoch's worth of keys per revolution.
const EPOCHS_PER_CACHE: usize = 16;
const FREQ_SHIFT: u16 = 1;
const FREQ_MASK: u16 = 0b11 << FREQ_SHIFT;
const FREQ_MAX: u16 = 3;

fn freq(meta: u16) -> u16 {
    (meta & FREQ_MASK) >> FREQ_SHIFT
}

fn with_freq(meta: u16, f: u16) -> u16 {
    (meta & !FREQ_MASK) | (f.min(FREQ_MAX) << FREQ_SHIFT)
}

/// Where a hand is: a shard of a namespace's keydir, and a position in it.
struct Hand {
    /// `ns * SHARDS + shard`.
    cell: usize,
    pos: usize,
    /// FIFO and SIEVE: the epochs `(lo, hi]` this revolution looks at; the current epoch; and
    /// how many keys of each epoch (by stamp) it left in place, to pick the next one.
    lo: i64,
    hi: i64,
    now: i64,
    left: Box<[u32; 256]>,
}

impl Default for Hand {
    fn default() -> Self {
        Hand {
            cell: 0,
            pos: 0,
            lo: -1,
            hi: 0,
            now: 0,
            left: Box::new([0; 256]),
        }
    }
}

impl Hand {
    /// The epoch a stamp stands for: the latest one at or before `now`.
    fn epoch_of(&self, meta: u16) -> i64 {
        let stamp = ((meta & STAMP_MASK) >> STAMP_SHIFT) as i64;
        self.now - ((self.now - stamp) & 0xFF)
    }

    /// At the end of a revolution: the next window is the epochs after this
    /// one up to about `target` keys, or, once the window reached the newest epoch,
    /// the oldest epochs again (the hand wraps to the tail).
    fn next_window(&mut self, target: usize) {
        // The epoch being filled is left to the next cycle: its keys are the newest.
        let newest = (self.now - 1).max(0);
        let from = if self.hi >= newest {
            // Wrap: start from the oldest epoch that still has keys.
            let oldest = (0..256i64)
                .rev()
                .map(|age| self.now - age)
                .find(|&e| self.left[(e & 0xFF) as usize] > 0)
                .unwrap_or(self.now);
            oldest - 1
        } else {
            self.hi
        };
        let mut hi = from;
        let mut n = 0usize;
        while hi < newest && n < target.max(1) {
            hi += 1;
            n += self.left[(hi & 0xFF) as usize] as usize;
        }
        self.lo = from;
        self.hi = hi.max(from + 1);
        self.left.fill(0);
    }
}

const CELLS: usize = NAMESPACES as usize * Keydir::SHARDS;

/// A built-in policy: its kind, its hands and (S3-FIFO) its ghost table.
pub(crate) struct Builtin {
    kind: PolicyKind,
    /// The hands: SIEVE, LRU and FIFO use the first; S3-FIFO's small queue the first
    /// and its main queue the second.
    hands: Mutex<[Hand; 2]>,
    ghost: Mutex<Ghost>,
    /// FIFO and SIEVE: the current insertion epoch, keys inserted in it, and how many
    /// make one.
    epoch: AtomicU64,
    in_epoch: AtomicUsize,
    epoch_len: AtomicUsize,
}

/// Which of S3-FIFO's queues a hand serves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Queue {
    /// The one hand of FIFO, SIEVE and LRU.
    Only,
    Small,
    Main,
}

impl Builtin {
    pub fn new(kind: PolicyKind) -> Self {
        Builtin {
            kind,
            hands: Mutex::new([Hand::default(), Hand::default()]),
            ghost: Mutex::new(Ghost::default()),
            epoch: AtomicU64::new(0),
            in_epoch: AtomicUsize::new(0),
            epoch_len: AtomicUsize::new(1),
        }
    }

    /// The stamp of a key inserted now into a cache of `cached()` keys (inserts
    /// come one at a time, under the log's writer, so relaxed counting is exact
    /// enough). An epoch lasts 1/EPOCHS_PER_CACHE of the cache's keys in inserts.
    fn stamp(&self, cached: &dyn Fn() -> usize) -> u16 {
        let e = self.epoch.load(Ordering::Relaxed);
        if self.in_epoch.fetch_add(1, Ordering::Relaxed) + 1
            >= self.epoch_len.load(Ordering::Relaxed)
        {
            self.in_epoch.store(0, Ordering::Relaxed);
            self.epoch.store(e + 1, Ordering::Relaxed);
            self.epoch_len
                .store((cached() / EPOCHS_PER_CACHE).max(1), Ordering::Relaxed);
        }
        ((e & 0xFF) as u16) << STAMP_SHIFT
    }

    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    /// The current insertion epoch (FIFO and SIEVE stamps count from it).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// Restores the insertion epoch of slots loaded as they were.
    pub fn set_epoch(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::Relaxed);
    }

    /// Heap bytes beyond the index (the ghost table).
    pub fn memory_bytes(&self) -> usize {
        self.ghost.lock().memory_bytes()
    }

    /// The bits of a key being written into a cache of `cached()` keys: an overwrite
    /// counts as an access; a new key starts as its policy says (S3-FIFO: in the small
    /// queue, or straight in main if it was evicted from small lately).
    pub fn written(&self, id: u64, old: Option<&Slot>, cached: &dyn Fn() -> usize) -> u16 {
        match old {
            Some(o) => self.accessed(o.meta).unwrap_or(o.meta),
            None => match self.kind {
                PolicyKind::Fifo | PolicyKind::Sieve => self.stamp(cached),
                // LRU: a new key is the most recently used one, so it gets a pass.
                PolicyKind::Lru => VISITED,
                PolicyKind::S3Fifo => {
                    if self.ghost.lock().take(id) {
                        0
                    } else {
                        TAGGED
                    }
                }
            },
        }
    }

    /// The bits after a read, or `None` if a read changes nothing (most reads of a hot
    /// key: then the read path writes nothing).
    pub fn accessed(&self, meta: u16) -> Option<u16> {
        let new = match self.kind {
            PolicyKind::Fifo => meta,
            PolicyKind::Sieve => meta | VISITED,
            PolicyKind::Lru => meta | VISITED | USED,
            PolicyKind::S3Fifo => with_freq(meta, freq(meta) + 1),
        };
        (new != meta).then_some(new)
    }

    /// Whether a reclaim copies a live key forward, and its bits if it does.
    pub fn keep_on_reclaim(&self, meta: u16) -> Option<u16> {
        match self.kind {
            PolicyKind::Fifo => None,
            PolicyKind::Sieve => (meta & VISITED != 0).then_some(meta & !VISITED),
            PolicyKind::Lru => (meta & USED != 0).then_some(meta & !(USED | VISITED)),
            PolicyKind::S3Fifo => {
                let f = freq(meta);
                (f > 0).then_some(with_freq(meta, f - 1))
            }
        }
    }

    /// What a hand serving `queue` does with `slot`; `force` evicts whatever it meets
    /// (a hand that went round too often without finding a victim).
    fn step(&self, queue: Queue, slot: &Slot, hand: &mut Hand, force: bool) -> HandStep {
        if force {
            return HandStep::Evict;
        }
        let m = slot.meta;
        match (self.kind, queue) {
            (PolicyKind::Fifo | PolicyKind::Sieve, _) => {
                let e = hand.epoch_of(m);
                if e <= hand.lo || e > hand.hi {
                    // Not reached yet, or already passed in this cycle.
                    hand.left[(e & 0xFF) as usize] += 1;
                    HandStep::Pass
                } else if self.kind == PolicyKind::Sieve && m & VISITED != 0 {
                    // Stays where it is: restamped with the epoch just behind the
                    // window, so the epochs behind the hand merge and the next cycle's
                    // windows are as full as the first. Not one inside the window: a
                    // write that moves the entry past the hand (a probe run shifting
                    // back over the table's end, a table growing) would show it to
                    // this revolution again, its bit spent, and it would go.
                    let at = hand.lo;
                    hand.left[(at & 0xFF) as usize] += 1;
                    HandStep::Set(
                        (m & !(VISITED | STAMP_MASK)) | ((at & 0xFF) as u16) << STAMP_SHIFT,
                    )
                } else {
                    HandStep::Evict
                }
            }
            (PolicyKind::Lru, _) => {
                if m & VISITED != 0 {
                    HandStep::Set(m & !VISITED)
                } else {
                    HandStep::Evict
                }
            }
            (PolicyKind::S3Fifo, Queue::Small) => {
                if m & TAGGED == 0 {
                    HandStep::Pass
                } else if freq(m) > 0 {
                    // Used while in the small queue: on to main, its count spent.
                    HandStep::Set(with_freq(m & !TAGGED, 0))
                } else {
                    HandStep::Evict
                }
            }
            (PolicyKind::S3Fifo, _) => {
                if m & TAGGED != 0 {
                    HandStep::Pass
                } else if freq(m) > 0 {
                    HandStep::Set(with_freq(m, freq(m) - 1))
                } else {
                    HandStep::Evict
                }
            }
        }
    }

    /// Evicts up to `n` keys from `index` (they leave it here) and appends their slots
    /// to `out`. The caller logs their eviction.
    pub fn evict(&self, index: &Index, n: usize, out: &mut Vec<Slot>) {
        let total = index.total_len();
        if total == 0 || n == 0 {
            return;
        }
        let mut hands = self.hands.lock();
        let want = out.len() + n.min(total);
        let windowed = matches!(self.kind, PolicyKind::Fifo | PolicyKind::Sieve);
        if windowed {
            let hand = &mut hands[0];
            hand.now = self.epoch.load(Ordering::Relaxed) as i64;
            // Stamps name the 256 epochs up to now, and the window's lower bound is
            // one of them (spared keys are stamped with it): a window further back (a
            // fresh hand over slots restored with their epoch) starts at the oldest.
            if hand.lo <= hand.now - 256 {
                hand.lo = hand.now - 255;
                hand.hi = hand.lo + 1;
            }
        }
        // A hand gives up looking after a few revolutions (S3-FIFO's main queue needs
        // up to four to wear a frequency of 3 down) and then takes what it meets.
        // A window covers about 1/EPOCHS_PER_CACHE of the keys per revolution.
        let windows = if windowed { EPOCHS_PER_CACHE + 1 } else { 1 };
        let budget = 6 * windows * (total + CELLS);
        let mut looked = 0usize;
        while out.len() < want {
            let queue = match self.kind {
                PolicyKind::S3Fifo => {
                    let small: usize = index.all().map(Keydir::tagged).sum();
                    let total = index.total_len();
                    if small > 0 && (small == total || small * 10 >= total) {
                        Queue::Small
                    } else {
                        Queue::Main
                    }
                }
                _ => Queue::Only,
            };
            let hand = &mut hands[(queue == Queue::Main) as usize];
            // S3-FIFO picks its queue again after each victim; the others take a batch.
            let quota = if self.kind == PolicyKind::S3Fifo {
                1
            } else {
                want - out.len()
            };
            let force = looked > budget;
            let before = out.len();
            let target = total / EPOCHS_PER_CACHE;
            self.advance(index, queue, hand, quota, force, &mut looked, target, out);
            if queue == Queue::Small {
                let mut ghost = self.ghost.lock();
                for s in &out[before..] {
                    ghost.remember(s.hash, total);
                }
            }
            if index.total_len() == 0 {
                break;
            }
        }
    }

    /// Moves `hand` through one shard (or until `quota` victims), counting the slots it
    /// looked at into `looked`.
    #[allow(clippy::too_many_arguments)]
    fn advance(
        &self,
        index: &Index,
        queue: Queue,
        hand: &mut Hand,
        quota: usize,
        force: bool,
        looked: &mut usize,
        target: usize,
        out: &mut Vec<Slot>,
    ) {
        let ns = (hand.cell / Keydir::SHARDS) as u8;
        let shard = hand.cell % Keydir::SHARDS;
        let mut taken = 0;
        let stopped = match index.get(ns) {
            Some(kd) => kd.sweep(
                shard,
                hand.pos,
                |s| {
                    if taken == quota {
                        return HandStep::Stop;
                    }
                    *looked += 1;
                    let step = self.step(queue, s, hand, force);
                    if step == HandStep::Evict {
                        taken += 1;
                    }
                    step
                },
                |s| out.push(s),
            ),
            None => {
                // No keydir for this namespace: skip all its shards.
                hand.cell = (ns as usize + 1) * Keydir::SHARDS - 1;
                None
            }
        };
        *looked += 1;
        match stopped {
            Some(pos) => hand.pos = pos,
            None => {
                hand.pos = 0;
                hand.cell += 1;
                if hand.cell == CELLS {
                    hand.cell = 0;
                    // A revolution ends: the window moves on to the next epochs.
                    if matches!(self.kind, PolicyKind::Fifo | PolicyKind::Sieve) {
                        hand.next_window(target);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(hash: u64, seg: u32) -> Slot {
        Slot {
            hash,
            seg,
            off: 0,
            len: 1,
            exp_s: 0,
            meta: 0,
        }
    }

    fn insert(p: &Builtin, index: &Index, id: u64, seg: u32) {
        index
            .keydir((id & 0xF) as u8)
            .insert_with(slot(id, seg), |old| {
                p.written(id, old, &|| index.total_len())
            });
    }

    fn access(p: &Builtin, index: &Index, id: u64) {
        if let Some(kd) = index.get((id & 0xF) as u8) {
            kd.update_meta(id, |m| p.accessed(m));
        }
    }

    fn ids(n: u64) -> Vec<u64> {
        // Spread over shards and namespaces 0 and 1.
        (1..=n)
            .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) & !0xF) | (i % 2))
            .collect()
    }

    #[test]
    fn fifo_takes_the_oldest_keys_first() {
        let p = Builtin::new(PolicyKind::Fifo);
        let index = Index::new(1);
        let all = ids(320);
        for &id in &all {
            insert(&p, &index, id, 1);
        }
        // Order is kept by epoch (1/16 of the keys each), so the first 100 victims
        // come from about the oldest 100 keys.
        let mut out = Vec::new();
        p.evict(&index, 100, &mut out);
        assert_eq!(out.len(), 100);
        let old: std::collections::HashSet<u64> = all[..120].iter().copied().collect();
        assert!(out.iter().all(|s| old.contains(&s.hash)));
        // A tiny cache keeps exact order: the newest key is never the victim.
        let index = Index::new(1);
        let p = Builtin::new(PolicyKind::Fifo);
        for &id in &all[..3] {
            insert(&p, &index, id, 1);
        }
        for &id in &all[3..40] {
            insert(&p, &index, id, 1);
            out.clear();
            p.evict(&index, 1, &mut out);
            assert_ne!(out[0].hash, id);
            assert_eq!(index.total_len(), 3);
        }
    }

    #[test]
    fn sieve_spares_visited_keys_once() {
        let p = Builtin::new(PolicyKind::Sieve);
        let index = Index::new(1);
        let all = ids(100);
        for &id in &all {
            insert(&p, &index, id, 1);
        }
        for &id in &all[..10] {
            access(&p, &index, id);
        }
        // The hand goes through the epochs oldest first and leaves the newest one
        // (about 1/16 of the keys) for the next cycle.
        let mut out = Vec::new();
        p.evict(&index, 80, &mut out);
        let gone: std::collections::HashSet<u64> = out.iter().map(|s| s.hash).collect();
        assert!(
            all[..10].iter().all(|id| !gone.contains(id)),
            "a visited key went first"
        );
        assert!(
            all[10..80].iter().all(|id| gone.contains(id)),
            "older keys go first"
        );
        // Their bits were spent on the way: the next cycle takes them too.
        out.clear();
        p.evict(&index, 20, &mut out);
        assert_eq!(out.len(), 20);
        assert_eq!(index.total_len(), 0);
    }

    /// A key spared by the hand is not taken later in the same revolution when a
    /// write moves it past the hand: here its shard's table grows between evictions
    /// (positions scale with the capacity), as at a key limit under inserts.
    #[test]
    fn sieve_spares_a_visited_key_that_a_growing_table_moves_past_the_hand() {
        let p = Builtin::new(PolicyKind::Sieve);
        p.set_epoch(3);
        let index = Index::new(1);
        let kd = index.keydir(0);
        // Keys of one shard, spread over its positions: 48 of epoch 1, every other one
        // visited; the ones added later are of epoch 2, outside the hand's window.
        let id = |low: u64| (7u64 << 54) | (low & ((1 << 54) - 1) & !0xF);
        let add = |low: u64, meta: u16| {
            let s = Slot {
                meta,
                ..slot(id(low), 1)
            };
            kd.insert_with(s, |_| meta);
        };
        for i in 0..48 {
            add(
                i << 47,
                1 << STAMP_SHIFT | if i % 2 == 1 { VISITED } else { 0 },
            );
        }
        let mut out = Vec::new();
        for n in 0..20u64 {
            p.evict(&index, 1, &mut out);
            // Three more keys into the same shard: the table grows every few rounds.
            for j in 0..3 {
                add(
                    (3 * n + j + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                    2 << STAMP_SHIFT,
                );
            }
        }
        assert_eq!(out.len(), 20);
        let visited_gone: Vec<u64> = (0..48)
            .filter(|&i| i % 2 == 1 && kd.get(id(i << 47)).is_none())
            .collect();
        assert!(
            visited_gone.is_empty(),
            "visited keys evicted: {visited_gone:?}"
        );
    }

    #[test]
    fn s3fifo_promotes_used_keys_and_remembers_ghosts() {
        let p = Builtin::new(PolicyKind::S3Fifo);
        let index = Index::new(1);
        let all = ids(200);
        for &id in &all {
            insert(&p, &index, id, 1);
        }
        let tagged = |index: &Index| index.all().map(Keydir::tagged).sum::<usize>();
        assert_eq!(tagged(&index), 200, "new keys enter the small queue");
        for &id in &all[..20] {
            access(&p, &index, id);
        }
        // While the small queue holds over 10% of the keys, its hand alone evicts.
        let mut out = Vec::new();
        p.evict(&index, 100, &mut out);
        assert_eq!(out.len(), 100);
        assert!(
            out.iter().all(|s| !all[..20].contains(&s.hash)),
            "a used key went"
        );
        // The used keys that the hand passed moved to main, their count spent.
        let promoted = all[..20]
            .iter()
            .filter(|&&id| {
                index
                    .slot((id & 0xF) as u8, id)
                    .is_some_and(|s| s.meta & TAGGED == 0 && freq(s.meta) == 0)
            })
            .count();
        assert!(promoted > 0);
        assert_eq!(tagged(&index), 100 - promoted);
        // An evicted key that comes back goes straight to main.
        let back = out[0].hash;
        insert(&p, &index, back, 2);
        assert_eq!(
            index
                .slot((back & 0xF) as u8, back)
                .map(|s| s.meta & TAGGED),
            Some(0)
        );
        assert!(p.memory_bytes() > 0);
    }

    #[test]
    fn every_kind_empties_the_index_when_asked_and_never_loops() {
        for kind in [
            PolicyKind::Fifo,
            PolicyKind::Lru,
            PolicyKind::Sieve,
            PolicyKind::S3Fifo,
        ] {
            let p = Builtin::new(kind);
            let index = Index::new(1);
            let all = ids(500);
            for &id in &all {
                insert(&p, &index, id, 7);
                // Every key as hot as it gets.
                for _ in 0..4 {
                    access(&p, &index, id);
                }
            }
            let mut out = Vec::new();
            p.evict(&index, 1000, &mut out);
            assert_eq!(out.len(), 500, "{kind:?}");
            assert_eq!(index.total_len(), 0, "{kind:?}");
            let mut uniq: Vec<u64> = out.iter().map(|s| s.hash).collect();
            uniq.sort_unstable();
            uniq.dedup();
            assert_eq!(uniq.len(), 500, "{kind:?} evicted a key twice");
        }
    }
}
