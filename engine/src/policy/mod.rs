//! Eviction policies: which keys to drop when the key budget is full, and which live
//! keys of a reclaimed segment are worth copying forward. The built-in ones
//! ([`PolicyKind`]) keep their state in the index ([`builtin`]); a plugged-in policy
//! ([`EvictionPolicy`]) sees keys only as 64-bit ids (the key's hash with its namespace
//! in the low 4 bits) and is told of inserts, accesses and removals in batches, so a
//! WebAssembly policy pays one call per batch, never one per request.

pub(crate) mod builtin;
mod ghost;

use std::str::FromStr;

/// A plugged-in eviction policy, which keeps its own state per key id. Ids it is told
/// of may already be gone (a removal and an access can cross); policies ignore ids
/// they do not know.
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
    /// then hands eviction back to the built-in policy of `Options::eviction`.
    fn failed(&self) -> bool {
        false
    }
}

/// The built-in policies, by name. Their state is a few bits in each key's index slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PolicyKind {
    /// First in, first out, a segment at a time: the keys of the oldest segment go
    /// first.
    Fifo,
    /// Least recently used, approximated by CLOCK: a used bit, set on access and on
    /// insert, that the hand clears once before it evicts.
    Lru,
    /// SIEVE (NSDI'24): a visited bit and a hand that clears it or evicts; new keys
    /// get no pass.
    Sieve,
    /// S3-FIFO (SOSP'23): a small probationary queue (10% of the keys), a main queue
    /// with a 2-bit frequency, and a ghost table of fingerprints.
    #[default]
    S3Fifo,
}

impl PolicyKind {
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

#[cfg(test)]
mod tests {
    use super::builtin::Builtin;
    use super::*;
    use crate::index::Index;
    use crate::keydir::Slot;

    /// Replays `trace` through a built-in policy over a real index bounded to
    /// `capacity` keys: the hit ratio.
    fn run(kind: PolicyKind, trace: &[u64], capacity: usize) -> f64 {
        let p = Builtin::new(kind);
        let index = Index::new(1);
        let kd = index.keydir(0);
        let mut hits = 0;
        let mut out = Vec::new();
        for (n, &id) in trace.iter().enumerate() {
            if kd.get(id).is_some() {
                hits += 1;
                kd.update_meta(id, |m| p.accessed(m));
                continue;
            }
            let slot = Slot {
                hash: id,
                seg: 1 + (n / 500) as u32,
                off: 0,
                len: 1,
                exp_s: 0,
                meta: 0,
            };
            kd.insert_with(slot, |old| p.written(id, old, &|| capacity));
            if index.total_len() > capacity {
                out.clear();
                p.evict(&index, 1, &mut out);
                assert_eq!(out.len(), 1, "{kind:?} produced no victim");
            }
        }
        hits as f64 / trace.len() as f64
    }

    fn id(k: u64) -> u64 {
        // Ids are uniform hashes with the namespace (0) in the low bits.
        k.wrapping_mul(0x9E37_79B9_7F4A_7C15) & !0xF
    }

    /// A hot set of 200 keys is used often, then a scan of one-hit cold keys streams
    /// past a cache of 1,000 while each hot key comes back only every ~2,000 requests:
    /// recency alone (FIFO, LRU) loses the hot set, frequency-aware policies keep it.
    fn scan_trace() -> Vec<u64> {
        let mut t = Vec::new();
        for _ in 0..10 {
            t.extend((1..=200u64).map(id));
        }
        let mut cold = 1_000_000u64;
        for round in 0..2_000u64 {
            for _ in 0..50 {
                cold += 1;
                t.push(id(cold));
            }
            for j in 0..5 {
                t.push(id((round * 5 + j) % 200 + 1));
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
    fn names_parse() {
        for k in [
            PolicyKind::Fifo,
            PolicyKind::Lru,
            PolicyKind::Sieve,
            PolicyKind::S3Fifo,
        ] {
            assert_eq!(k.as_str().parse::<PolicyKind>(), Ok(k));
        }
        assert!("random".parse::<PolicyKind>().is_err());
    }
}
