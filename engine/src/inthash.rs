//! The hasher of tables keyed by integers the program made, not a client's bytes: key
//! ids (seeded 64-bit hashes already) and a collection's own chunk, node and bucket
//! numbers. One multiplication mixes the key, where SipHash cost a tenth of a ZINCRBY
//! on a large sorted set.

/// Builds [`IntHasher`]s.
#[derive(Debug, Default, Clone, Copy)]
pub struct IntHash;

impl std::hash::BuildHasher for IntHash {
    type Hasher = IntHasher;
    fn build_hasher(&self) -> IntHasher {
        IntHasher(0)
    }
}

/// Spreads an integer key over all 64 bits (a table takes its control bits from the
/// top) with one multiplication.
#[derive(Debug, Default)]
pub struct IntHasher(u64);

impl std::hash::Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (u64::from(n) ^ self.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn write_u64(&mut self, v: u64) {
        // A key id: its low bits carry the database, so the high ones are folded in.
        self.0 = (v ^ (v >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    }
}
