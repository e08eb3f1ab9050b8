//! S3-FIFO's ghost queue as a bounded table of 16-bit fingerprints: a key evicted from
//! the small queue leaves its fingerprint in a bucket chosen by its id, and a key that
//! comes back while its fingerprint is still there goes straight to the main queue. A
//! newer ghost in the same bucket replaces an older one, so the table forgets the way a
//! FIFO of about as many entries does, for 2 bytes per entry.

/// The fingerprint table.
#[derive(Default)]
pub(crate) struct Ghost {
    buckets: Vec<u16>,
}

/// The table holds one bucket per cached key, within these bounds.
const MIN_BUCKETS: usize = 1024;

impl Ghost {
    /// Mixes an id (uniform but for the namespace in its low 4 bits).
    fn mix(id: u64) -> u64 {
        (id ^ (id >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    fn place(&self, id: u64) -> (usize, u16) {
        let x = Self::mix(id);
        let bucket = ((x as u128 * self.buckets.len() as u128) >> 64) as usize;
        // Low bits of the product: independent of the bucket; 0 means empty.
        let fp = (x as u16).max(1);
        (bucket, fp)
    }

    /// Remembers `id`, evicted from the small queue of a cache of `cached` keys. The
    /// table is sized to the cache on first use and again if the cache grows or shrinks
    /// by more than half (starting empty then: a ghost is a hint, not a promise).
    pub fn remember(&mut self, id: u64, cached: usize) {
        let want = cached.max(MIN_BUCKETS);
        let have = self.buckets.len();
        if have == 0 || want > have + have / 2 || want < have / 2 {
            self.buckets = vec![0; want];
        }
        let (b, fp) = self.place(id);
        self.buckets[b] = fp;
    }

    /// Whether `id` was evicted lately; forgets it if so.
    pub fn take(&mut self, id: u64) -> bool {
        if self.buckets.is_empty() {
            return false;
        }
        let (b, fp) = self.place(id);
        let hit = self.buckets[b] == fp;
        if hit {
            self.buckets[b] = 0;
        }
        hit
    }

    pub fn memory_bytes(&self) -> usize {
        self.buckets.capacity() * 2
    }
}

#[cfg(test)]
mod tests {
    use super::Ghost;

    #[test]
    fn remembers_recent_ghosts_and_forgets_old_ones() {
        let mut g = Ghost::default();
        assert!(!g.take(16));
        let id = |i: u64| i.wrapping_mul(0x2545_F491_4F6C_DD1D) & !0xF;
        for i in 0..10_000u64 {
            g.remember(id(i), 10_000);
        }
        // The newest ones are nearly all there; a bucket keeps only its latest ghost.
        let recent = (9_000..10_000u64).filter(|&i| g.take(id(i))).count();
        assert!(recent > 850, "{recent}");
        assert!(!g.take(id(9_999)), "taken once");
        let strangers = (20_000..30_000u64).filter(|&i| g.take(id(i))).count();
        assert!(strangers < 10, "{strangers} false positives");
        assert_eq!(g.memory_bytes(), 20_000);
    }
}
