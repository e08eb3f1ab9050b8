//! Eviction policies: which keys to drop when the key budget is full, and which live
//! keys of a reclaimed segment are worth copying forward. Policies see keys only as
//! 64-bit ids (the key's hash with its namespace in the low 4 bits) and are told of
//! inserts, accesses and removals in batches, so a WebAssembly policy pays one call per
//! batch, never one per request.

mod fifo;
mod idlist;
mod lru;
mod s3fifo;
mod sieve;

pub use fifo::Fifo;
pub use lru::Lru;
pub use s3fifo::S3Fifo;
pub use sieve::Sieve;

use std::str::FromStr;

/// An item-level eviction policy. Ids it is told of may already be gone (a removal and
/// an access can cross); policies ignore ids they do not know.
pub trait EvictionPolicy: Send {
    /// The policy's name, for INFO and metrics.
    fn name(&self) -> &str;
    /// About `n` keys are about to be inserted at once (a fresh policy being told of
    /// every key): room for them now, instead of growing step by step.
    fn reserve(&mut self, n: usize) {
        let _ = n;
    }
    /// Keys that were just created.
    fn on_insert(&mut self, ids: &[u64]);
    /// Keys that were just created, with their bytes, for policies that decide by key
    /// (say, by prefix). Called instead of [`Self::on_insert`] when [`Self::wants_keys`].
    fn on_insert_keys(&mut self, ids: &[u64], keys: &[&[u8]]) {
        let _ = keys;
        self.on_insert(ids);
    }
    /// Whether the policy needs key bytes on insert. Then a restart reads every key
    /// back from disk to tell the policy about it, which costs one read per key.
    fn wants_keys(&self) -> bool {
        false
    }
    /// Keys that were read or overwritten (batched; order within a batch is arrival
    /// order, but batches may be delayed and accesses may be dropped under contention).
    fn on_access(&mut self, ids: &[u64]);
    /// Keys removed for any reason other than being chosen by [`Self::victims`].
    fn on_remove(&mut self, ids: &[u64]);
    /// Chooses up to `n` keys to evict, appends them to `out`, and forgets them.
    fn victims(&mut self, n: usize, out: &mut Vec<u64>);
    /// For each id (live keys of a segment being reclaimed), whether it is worth
    /// copying forward. Keys not kept are forgotten.
    fn keep_on_reclaim(&mut self, ids: &[u64], out: &mut Vec<bool>);
    /// Heap bytes the policy holds, for stats.
    fn memory_bytes(&self) -> usize;
    /// Whether the policy can no longer do its job (a plugin that failed). The engine
    /// then replaces it with the built-in policy of `Options::eviction`, told of every
    /// key.
    fn failed(&self) -> bool {
        false
    }
}

/// The built-in policies, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PolicyKind {
    /// First in, first out.
    Fifo,
    /// Least recently used.
    Lru,
    /// SIEVE (NSDI'24): FIFO order with a visited bit and a moving hand.
    Sieve,
    /// S3-FIFO (SOSP'23): a small probationary FIFO, a main FIFO and a ghost list.
    #[default]
    S3Fifo,
}

impl PolicyKind {
    /// A fresh policy of this kind.
    pub fn build(self) -> Box<dyn EvictionPolicy> {
        match self {
            PolicyKind::Fifo => Box::new(Fifo::default()),
            PolicyKind::Lru => Box::new(Lru::default()),
            PolicyKind::Sieve => Box::new(Sieve::default()),
            PolicyKind::S3Fifo => Box::new(S3Fifo::default()),
        }
    }

    /// The policy's configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::Fifo => "fifo",
            PolicyKind::Lru => "lru",
            PolicyKind::Sieve => "sieve",
            PolicyKind::S3Fifo => "s3-fifo",
        }
    }
}

impl FromStr for PolicyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "fifo" => Ok(PolicyKind::Fifo),
            "lru" => Ok(PolicyKind::Lru),
            "sieve" => Ok(PolicyKind::Sieve),
            "s3-fifo" | "s3fifo" => Ok(PolicyKind::S3Fifo),
            other => Err(format!("'{other}' is not one of fifo, lru, sieve, s3-fifo")),
        }
    }
}

/// Hashes ids for the policies' maps. Ids are already uniform hashes, but their low 4
/// bits hold the namespace, so they are mixed before a table reduces them.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, id: u64) {
        self.0 = (id ^ (id >> 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

pub(crate) type IdBuild = std::hash::BuildHasherDefault<IdHasher>;
pub(crate) type IdMap<V> = std::collections::HashMap<u64, V, IdBuild>;

#[cfg(test)]
mod tests {
    use super::*;

    fn run(kind: PolicyKind, trace: &[u64], capacity: usize) -> f64 {
        let mut p = kind.build();
        let mut present = std::collections::HashSet::new();
        let mut hits = 0;
        let mut victims = Vec::new();
        for &id in trace {
            if present.contains(&id) {
                hits += 1;
                p.on_access(&[id]);
                continue;
            }
            present.insert(id);
            p.on_insert(&[id]);
            while present.len() > capacity {
                victims.clear();
                p.victims(1, &mut victims);
                assert_eq!(victims.len(), 1, "{kind:?} produced no victim");
                assert!(
                    present.remove(&victims[0]),
                    "{kind:?} evicted an unknown id"
                );
            }
        }
        hits as f64 / trace.len() as f64
    }

    /// A hot set of 200 keys is used often, then a scan of one-hit cold keys streams
    /// past a cache of 1,000 while each hot key comes back only every ~2,000 requests:
    /// recency alone (FIFO, LRU) loses the hot set, frequency-aware S3-FIFO keeps it.
    fn scan_trace() -> Vec<u64> {
        let mut t = Vec::new();
        for _ in 0..10 {
            t.extend((1..=200u64).map(|k| k << 4));
        }
        let mut cold = 1_000_000u64;
        for round in 0..2_000u64 {
            for _ in 0..50 {
                cold += 1;
                t.push(cold << 4);
            }
            for j in 0..5 {
                t.push(((round * 5 + j) % 200 + 1) << 4);
            }
        }
        t
    }

    #[test]
    fn scan_resistance_orders_the_policies() {
        let trace = scan_trace();
        let s3 = run(PolicyKind::S3Fifo, &trace, 1000);
        let sieve = run(PolicyKind::Sieve, &trace, 1000);
        let lru = run(PolicyKind::Lru, &trace, 1000);
        let fifo = run(PolicyKind::Fifo, &trace, 1000);
        assert!(s3 > lru && s3 > fifo, "s3 {s3} lru {lru} fifo {fifo}");
        assert!(
            sieve > lru && sieve > fifo,
            "sieve {sieve} lru {lru} fifo {fifo}"
        );
    }

    #[test]
    fn every_policy_forgets_removed_keys_and_never_invents_victims() {
        for kind in [
            PolicyKind::Fifo,
            PolicyKind::Lru,
            PolicyKind::Sieve,
            PolicyKind::S3Fifo,
        ] {
            let mut p = kind.build();
            p.on_insert(&[16, 32, 48]);
            p.on_access(&[32, 999]);
            p.on_remove(&[16, 12345]);
            let mut v = Vec::new();
            p.victims(10, &mut v);
            v.sort_unstable();
            assert_eq!(v, vec![32, 48], "{kind:?}");
            v.clear();
            p.victims(10, &mut v);
            assert!(v.is_empty(), "{kind:?} evicted twice");
            assert!(p.memory_bytes() < 1 << 20);
        }
    }

    #[test]
    fn lru_evicts_the_least_recent() {
        let mut p = PolicyKind::Lru.build();
        p.on_insert(&[16, 32, 48]);
        p.on_access(&[16]);
        let mut v = Vec::new();
        p.victims(2, &mut v);
        assert_eq!(v, vec![32, 48]);
    }

    #[test]
    fn names_parse() {
        for k in [
            PolicyKind::Fifo,
            PolicyKind::Lru,
            PolicyKind::Sieve,
            PolicyKind::S3Fifo,
        ] {
            assert_eq!(k.as_str().parse::<PolicyKind>(), Ok(k));
            assert_eq!(k.build().name(), k.as_str());
        }
        assert!("random".parse::<PolicyKind>().is_err());
    }
}
