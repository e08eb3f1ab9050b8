//! Engine figures: counters bumped on the hot paths (relaxed atomics; those every read
//! or write bumps kept per thread) and the snapshot [`Stats`] that `Engine::stats`
//! assembles for INFO and metrics.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Most stripes: threads beyond this many share them.
const MAX_STRIPES: usize = 16;

thread_local! {
    /// This thread's stripe number (before reduction), given at its first count.
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The next stripe number to give a thread.
static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

/// How many stripes a figure counted per thread has: the cores, rounded up to a power
/// of two (at most 16). For the engine's counters and for its users' (the server's
/// per-command figures), so that both number threads alike.
pub fn stripe_count() -> usize {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    threads.next_power_of_two().clamp(1, MAX_STRIPES)
}

/// This thread's stripe among `n` (a power of two, such as [`stripe_count`]): threads
/// take numbers in the order they first count, so the serving threads, which count
/// first and most, get stripes of their own.
pub fn thread_stripe(n: usize) -> usize {
    STRIPE.with(|s| {
        if s.get() == usize::MAX {
            s.set(NEXT_STRIPE.fetch_add(1, Ordering::Relaxed));
        }
        s.get()
    }) & (n - 1)
}

/// One stripe's count, on a cache line of its own.
#[repr(align(64))]
#[derive(Default)]
struct Padded(AtomicU64);

/// A counter that threads bump without writing a cache line another thread writes: a
/// count per stripe (threads take stripes in the order they first count), summed when
/// read. A single shared counter bumped on every read made the two worker threads pass
/// its cache line back and forth.
pub(crate) struct Striped {
    cells: Box<[Padded]>,
}

impl Default for Striped {
    fn default() -> Self {
        Striped {
            cells: (0..stripe_count()).map(|_| Padded::default()).collect(),
        }
    }
}

impl Striped {
    /// Adds `n`; returns this thread's stripe's count after it.
    pub fn add(&self, n: u64) -> u64 {
        let c = &self.cells[thread_stripe(self.cells.len())].0;
        c.fetch_add(n, Ordering::Relaxed) + n
    }

    /// The total.
    pub fn get(&self) -> u64 {
        self.cells.iter().map(|c| c.0.load(Ordering::Relaxed)).sum()
    }
}

/// A counter [`Counters::bump`] and [`Counters::add`] work on.
pub(crate) trait Count {
    fn add_n(&self, n: u64);
}

impl Count for AtomicU64 {
    fn add_n(&self, n: u64) {
        self.fetch_add(n, Ordering::Relaxed);
    }
}

impl Count for Striped {
    fn add_n(&self, n: u64) {
        self.add(n);
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    pub puts: Striped,
    pub deletes: Striped,
    pub hits: Striped,
    pub misses: Striped,
    pub expired: AtomicU64,
    pub corrupt: AtomicU64,
    pub evicted_max_keys: AtomicU64,
    pub evicted_disk: AtomicU64,
    pub filter_removed: AtomicU64,
    pub compactions: AtomicU64,
    /// Full compactions finished (see `Engine::compact_all`).
    pub full_compactions: AtomicU64,
    pub reclaims: AtomicU64,
    pub bytes_rewritten: AtomicU64,
    pub chunk_reads: Striped,
}

impl Counters {
    pub fn bump(c: &impl Count) {
        c.add_n(1);
    }
    pub fn add(c: &impl Count, n: u64) {
        c.add_n(n);
    }
}

/// A snapshot of the engine's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Why writes are refused (after a failed write or sync), if they are.
    pub write_error: Option<String>,
    /// Keys in the index, all namespaces (expired keys not yet swept included).
    pub keys: u64,
    /// Segment files on disk.
    pub segments: u64,
    /// Bytes in segment files.
    pub disk_bytes: u64,
    /// Bytes of records the index no longer points at (reclaimable by compaction).
    pub garbage_bytes: u64,
    /// Heap bytes held by the index (slot arrays; shard headers excluded).
    pub index_bytes: u64,
    /// Successful writes (puts, expiry changes).
    pub puts: u64,
    /// Deletes that removed a key.
    pub deletes: u64,
    /// Reads that found a value.
    pub hits: u64,
    /// Reads that found nothing (absent, expired or corrupt).
    pub misses: u64,
    /// Keys removed because they expired.
    pub expired_keys: u64,
    /// Records found corrupt (CRC mismatch) on read or recovery.
    pub corrupt_records: u64,
    /// fsync calls on segment data.
    pub syncs: u64,
    /// Bytes appended to segments since open.
    pub bytes_written: u64,
    /// Unix ms of the last successful sync of segment data (0 if none since open).
    pub last_sync_ms: u64,
    /// Bytes of records the index points at (disk bytes less garbage, headers, hints).
    pub live_bytes: u64,
    /// Keys evicted because `max_keys` was reached.
    pub evictions_max_keys: u64,
    /// Keys dropped with a segment reclaimed for `max_disk_bytes`.
    pub evictions_disk: u64,
    /// Keys a compaction filter removed.
    pub filter_removals: u64,
    /// Segments compacted (live records copied forward, garbage dropped).
    pub compactions: u64,
    /// Full compactions finished (BGREWRITEAOF, CASKADE COMPACT).
    pub full_compactions: u64,
    /// Whether a full compaction is asked for or running.
    pub full_compaction_running: bool,
    /// Segments reclaimed whole for space (live records kept only if the policy wished).
    pub reclaims: u64,
    /// Bytes copied forward by compaction and reclaim.
    pub bytes_rewritten: u64,
    /// Bytes written ÷ bytes written for clients (1.0 = no rewriting).
    pub write_amplification: f64,
    /// Heap bytes held by the eviction policy.
    pub policy_bytes: u64,
    /// The eviction policy's name.
    pub policy: String,
    /// Chunk records of collections (in the index's shadow namespaces, not in `keys`).
    pub chunks: u64,
    /// Collections that have chunks.
    pub chunked_collections: u64,
    /// Heap bytes of the registry of chunked collections.
    pub collection_registry_bytes: u64,
    /// Chunk reads that found their chunk.
    pub chunk_reads: u64,
    /// The hot tier: size, hits, misses, admissions, evictions.
    pub hot: crate::hot::HotStats,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_striped_count_sums_every_thread() {
        let c = Striped::default();
        assert_eq!(c.add(2), 2, "this thread's stripe after the add");
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        Counters::bump(&c);
                    }
                });
            }
        });
        assert_eq!(c.get(), 8002);
    }
}
