//! HyperLogLog in Redis' own encoding, stored as a string (so GET and SET of an HLL
//! round-trip with Redis): 16,384 registers of 6 bits, kept sparse (run-length
//! opcodes) until that passes 3,000 bytes or a register passes 32, then dense.
//!
//! | header field | size | meaning                                               |
//! |--------------|-----:|-------------------------------------------------------|
//! | magic        |    4 | `HYLL`                                                |
//! | encoding     |    1 | 0: dense, 1: sparse                                   |
//! | unused       |    3 | zero                                                  |
//! | cardinality  |    8 | little-endian cache; bit 7 of the last byte: stale    |
//!
//! Dense: register `i` is the 6 bits from bit `6i` (least significant first), 12,288
//! bytes. Sparse opcodes: `00xxxxxx` ZERO (x+1 zero registers), `01xxxxxx yyyyyyyy`
//! XZERO (xy+1 zero registers), `1vvvvvxx` VAL (x+1 registers of value v+1).

/// Registers (2^14).
const REGISTERS: usize = 1 << P;
const P: u32 = 14;
/// Bits of a hash left after the register index.
const Q: u32 = 64 - P;
const HEADER: usize = 16;
/// A dense HLL's bytes.
pub const DENSE_SIZE: usize = HEADER + (REGISTERS * 6).div_ceil(8);
/// Redis' `hll-sparse-max-bytes` default: a sparse HLL larger than this turns dense.
const SPARSE_MAX_BYTES: usize = 3000;
const VAL_MAX_VALUE: u8 = 32;
const VAL_MAX_LEN: usize = 4;
const ZERO_MAX_LEN: usize = 64;
const XZERO_MAX_LEN: usize = 16384;
const DENSE: u8 = 0;
const SPARSE: u8 = 1;

/// Why an HLL cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HllError {
    /// Not an HLL at all (Redis: `WRONGTYPE Key is not a valid HyperLogLog string value.`).
    NotHll,
    /// An HLL whose registers do not decode (Redis: `INVALIDOBJ Corrupted HLL object detected`).
    Corrupt,
}

/// Redis' MurmurHash64A (seed `0xadc83b19`), little-endian loads.
fn murmur64a(key: &[u8]) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h: u64 = 0xadc8_3b19 ^ (key.len() as u64).wrapping_mul(M);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let mut k = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= u64::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element lands in, and the run of zeros it brings (plus one).
fn pattern(elem: &[u8]) -> (usize, u8) {
    let h = murmur64a(elem);
    let index = (h & (REGISTERS as u64 - 1)) as usize;
    let rest = (h >> P) | (1u64 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

fn dense_get(regs: &[u8], i: usize) -> u8 {
    let bit = i * 6;
    let (byte, fb) = (bit / 8, bit % 8);
    let b0 = u16::from(regs[byte]);
    let b1 = u16::from(regs.get(byte + 1).copied().unwrap_or(0));
    (((b0 >> fb) | (b1 << (8 - fb))) & 63) as u8
}

fn dense_set(regs: &mut [u8], i: usize, v: u8) {
    let bit = i * 6;
    let (byte, fb) = (bit / 8, bit % 8);
    let v = u16::from(v);
    regs[byte] &= !((63u16 << fb) as u8);
    regs[byte] |= (v << fb) as u8;
    if let Some(next) = regs.get_mut(byte + 1) {
        *next &= !((63u16 >> (8 - fb)) as u8);
        *next |= (v >> (8 - fb)) as u8;
    }
}

fn is_zero(b: u8) -> bool {
    b & 0xc0 == 0
}

fn is_xzero(b: u8) -> bool {
    b & 0xc0 == 0x40
}

fn val_value(b: u8) -> u8 {
    ((b >> 2) & 0x1f) + 1
}

fn val_len(b: u8) -> usize {
    usize::from(b & 0x3) + 1
}

fn val_op(v: u8, len: usize) -> u8 {
    0x80 | ((v - 1) << 2) | (len as u8 - 1)
}

/// A run of zero registers as one opcode (ZERO or XZERO).
fn push_zeros(out: &mut Vec<u8>, len: usize) {
    if len > ZERO_MAX_LEN {
        let l = len - 1;
        out.extend_from_slice(&[0x40 | (l >> 8) as u8, (l & 0xff) as u8]);
    } else {
        out.push(len as u8 - 1);
    }
}

/// One opcode at `at` of `ops`: its length in bytes, the registers it covers and
/// their value (0 for the zero runs).
fn opcode(ops: &[u8], at: usize) -> Option<(usize, usize, u8)> {
    let b = *ops.get(at)?;
    if is_zero(b) {
        Some((1, usize::from(b & 0x3f) + 1, 0))
    } else if is_xzero(b) {
        // A value cut short after an XZERO's first byte reads its second as 0, as
        // Redis reads the string's terminating zero there.
        let lo = usize::from(ops.get(at + 1).copied().unwrap_or(0));
        Some((2, ((usize::from(b & 0x3f) << 8) | lo) + 1, 0))
    } else {
        Some((1, val_len(b), val_value(b)))
    }
}

/// An HLL value, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hll(Vec<u8>);

impl Hll {
    /// An empty HLL, as PFADD and PFMERGE make one: sparse, one XZERO.
    pub fn new() -> Hll {
        let mut v = b"HYLL".to_vec();
        v.extend_from_slice(&[SPARSE, 0, 0, 0]);
        v.extend_from_slice(&[0; 8]);
        let mut left = REGISTERS;
        while left > 0 {
            let run = left.min(XZERO_MAX_LEN);
            push_zeros(&mut v, run);
            left -= run;
        }
        Hll(v)
    }

    /// The HLL a stored string holds, checked as Redis checks it.
    pub fn from_bytes(b: &[u8]) -> Result<Hll, HllError> {
        if b.len() < HEADER || &b[..4] != b"HYLL" || b[4] > SPARSE {
            return Err(HllError::NotHll);
        }
        if b[4] == DENSE && b.len() != DENSE_SIZE {
            return Err(HllError::NotHll);
        }
        Ok(Hll(b.to_vec()))
    }

    /// The bytes to store.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// Whether it is in the dense form.
    pub fn is_dense(&self) -> bool {
        self.0[4] == DENSE
    }

    /// Marks the cached cardinality stale.
    pub fn invalidate(&mut self) {
        self.0[15] |= 0x80;
    }

    /// The cached cardinality, if it is current.
    pub fn cached(&self) -> Option<u64> {
        (self.0[15] & 0x80 == 0)
            .then(|| u64::from_le_bytes(self.0[8..16].try_into().unwrap_or([0; 8])))
    }

    /// Caches `card`.
    pub fn cache(&mut self, card: u64) {
        self.0[8..16].copy_from_slice(&card.to_le_bytes());
    }

    /// Adds an element; whether a register changed.
    pub fn add(&mut self, elem: &[u8]) -> Result<bool, HllError> {
        let (i, count) = pattern(elem);
        self.raise(i, count)
    }

    /// Raises register `i` to `count` if it is lower; whether it changed.
    fn raise(&mut self, i: usize, count: u8) -> Result<bool, HllError> {
        if self.is_dense() {
            let regs = &mut self.0[HEADER..];
            if dense_get(regs, i) >= count {
                return Ok(false);
            }
            dense_set(regs, i, count);
            return Ok(true);
        }
        self.sparse_raise(i, count)
    }

    /// Redis' `hllSparseSet`, step for step, so the bytes come out as Redis'.
    fn sparse_raise(&mut self, index: usize, count: u8) -> Result<bool, HllError> {
        if count > VAL_MAX_VALUE {
            return self.promote(index, count);
        }
        let ops = &self.0[HEADER..];
        // Step 1: the opcode covering `index`, where it starts, and the one before.
        let (mut at, mut first, mut prev) = (0usize, 0usize, None);
        let (oplen, span, value) = loop {
            let (len, span, value) = opcode(ops, at).ok_or(HllError::Corrupt)?;
            if index < first + span {
                break (len, span, value);
            }
            prev = Some(at);
            at += len;
            first += span;
        };
        let b = ops[at];
        if !is_zero(b) && !is_xzero(b) {
            // A: already at least this high. B: a lone register, set in place.
            if value >= count {
                return Ok(false);
            }
            if span == 1 {
                self.0[HEADER + at] = val_op(count, 1);
                self.merge_from(prev);
                return Ok(true);
            }
        }
        // C: a lone zero register, set in place.
        if is_zero(b) && span == 1 {
            self.0[HEADER + at] = val_op(count, 1);
            self.merge_from(prev);
            return Ok(true);
        }
        // D: split the run into (before) · this register · (after).
        let last = first + span - 1;
        let mut seq = Vec::with_capacity(5);
        if value == 0 {
            if index != first {
                push_zeros(&mut seq, index - first);
            }
            seq.push(val_op(count, 1));
            if index != last {
                push_zeros(&mut seq, last - index);
            }
        } else {
            if index != first {
                seq.push(val_op(value, index - first));
            }
            seq.push(val_op(count, 1));
            if index != last {
                seq.push(val_op(value, last - index));
            }
        }
        if seq.len() > oplen && self.0.len() + seq.len() - oplen > SPARSE_MAX_BYTES {
            return self.promote(index, count);
        }
        let start = HEADER + at;
        // A cut-short XZERO (see `opcode`): Redis writes the new run over it and its
        // terminator, and counts the length as if that byte were the value's.
        let new_len = self.0.len() + seq.len() - oplen;
        if start + oplen > self.0.len() {
            self.0.push(0);
        }
        self.0.splice(start..start + oplen, seq);
        self.0.truncate(new_len);
        self.merge_from(prev);
        Ok(true)
    }

    /// Redis' step 4: merges adjacent VAL opcodes of one value, scanning up to five
    /// opcodes from `prev` (or the start).
    fn merge_from(&mut self, prev: Option<usize>) {
        let ops = &mut self.0;
        let mut p = HEADER + prev.unwrap_or(0);
        let mut scan = 5;
        while p < ops.len() && scan > 0 {
            scan -= 1;
            let b = ops[p];
            if is_xzero(b) {
                p += 2;
                continue;
            }
            if is_zero(b) {
                p += 1;
                continue;
            }
            if let Some(&n) = ops.get(p + 1)
                && n & 0x80 != 0
                && val_value(b) == val_value(n)
            {
                let len = val_len(b) + val_len(n);
                if len <= VAL_MAX_LEN {
                    ops[p + 1] = val_op(val_value(b), len);
                    ops.remove(p);
                    continue;
                }
            }
            p += 1;
        }
    }

    /// Turns sparse into dense, then sets register `index` to `count`.
    fn promote(&mut self, index: usize, count: u8) -> Result<bool, HllError> {
        self.make_dense()?;
        dense_set(&mut self.0[HEADER..], index, count);
        Ok(true)
    }

    /// The dense form (the header kept, cache included).
    pub fn make_dense(&mut self) -> Result<(), HllError> {
        if self.is_dense() {
            return Ok(());
        }
        let mut dense = vec![0u8; DENSE_SIZE];
        dense[..HEADER].copy_from_slice(&self.0[..HEADER]);
        dense[4] = DENSE;
        let mut idx = 0usize;
        for (run, value) in self.runs()? {
            if value > 0 {
                for i in idx..idx + run {
                    dense_set(&mut dense[HEADER..], i, value);
                }
            }
            idx += run;
        }
        self.0 = dense;
        Ok(())
    }

    /// The sparse opcodes as (registers, value) runs covering every register.
    fn runs(&self) -> Result<Vec<(usize, u8)>, HllError> {
        let ops = &self.0[HEADER..];
        let (mut at, mut idx, mut out) = (0usize, 0usize, Vec::new());
        while at < ops.len() {
            let (len, run, value) = opcode(ops, at).ok_or(HllError::Corrupt)?;
            if idx + run > REGISTERS {
                return Err(HllError::Corrupt);
            }
            out.push((run, value));
            idx += run;
            at += len;
        }
        if idx != REGISTERS {
            return Err(HllError::Corrupt);
        }
        Ok(out)
    }

    /// Raises each of `max`'s registers to this HLL's where that is higher.
    pub fn merge_into(&self, max: &mut [u8; REGISTERS]) -> Result<(), HllError> {
        if self.is_dense() {
            let regs = &self.0[HEADER..];
            for (i, m) in max.iter_mut().enumerate() {
                *m = (*m).max(dense_get(regs, i));
            }
            return Ok(());
        }
        let mut idx = 0;
        for (run, value) in self.runs()? {
            for m in &mut max[idx..idx + run] {
                *m = (*m).max(value);
            }
            idx += run;
        }
        Ok(())
    }

    /// Sets every register to at least `max`'s (PFMERGE's destination), as Redis
    /// does: dense when `dense`, else register by register on the sparse form.
    pub fn raise_all(&mut self, max: &[u8; REGISTERS], dense: bool) -> Result<(), HllError> {
        if dense {
            self.make_dense()?;
        }
        for (i, &m) in max.iter().enumerate() {
            if m > 0 {
                self.raise(i, m)?;
            }
        }
        Ok(())
    }

    /// The estimated cardinality (Redis' estimator after Ertl).
    pub fn count(&self) -> Result<u64, HllError> {
        let mut histo = [0u32; 64];
        if self.is_dense() {
            let regs = &self.0[HEADER..];
            for i in 0..REGISTERS {
                histo[usize::from(dense_get(regs, i))] += 1;
            }
        } else {
            for (run, value) in self.runs()? {
                histo[usize::from(value)] += run as u32;
            }
        }
        Ok(estimate(&histo))
    }
}

/// The cardinality of registers `max` (PFCOUNT of several keys).
pub fn count_registers(max: &[u8; REGISTERS]) -> u64 {
    let mut histo = [0u32; 64];
    for &r in max.iter() {
        histo[usize::from(r) & 63] += 1;
    }
    estimate(&histo)
}

/// An empty register set for [`Hll::merge_into`].
pub fn registers() -> Box<[u8; REGISTERS]> {
    Box::new([0; REGISTERS])
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0, x);
    loop {
        x *= x;
        let before = z;
        z += x * y;
        y += y;
        if before == z {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let before = z;
        y *= 0.5;
        z -= (1.0 - x).powi(2) * y;
        if before == z {
            return z / 3.0;
        }
    }
}

fn estimate(histo: &[u32; 64]) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - f64::from(histo[Q as usize + 1])) / m);
    for j in (1..=Q as usize).rev() {
        z += f64::from(histo[j]);
        z *= 0.5;
    }
    z += m * sigma(f64::from(histo[0]) / m);
    const ALPHA_INF: f64 = 0.721_347_520_444_481_7;
    (ALPHA_INF * m * m / z).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_hll_is_redis_bytes_and_counts_zero() {
        let h = Hll::new();
        assert_eq!(h.0, b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\0\x7f\xff".to_vec());
        assert_eq!(h.count(), Ok(0));
    }

    #[test]
    fn sparse_and_dense_count_alike_and_stay_close() {
        let mut h = Hll::new();
        for i in 0..20_000u32 {
            h.add(format!("element:{i}").as_bytes()).expect("add");
        }
        assert!(h.is_dense(), "20,000 elements outgrow the sparse form");
        let n = h.count().expect("count");
        assert!((19_000..21_000).contains(&n), "{n}");
        let mut small = Hll::new();
        for i in 0..100u32 {
            small.add(format!("e{i}").as_bytes()).expect("add");
        }
        assert!(!small.is_dense());
        let sparse = small.count().expect("count");
        let mut dense = small.clone();
        dense.make_dense().expect("dense");
        assert_eq!(dense.count(), Ok(sparse), "one estimate from either form");
        assert!((95..=105).contains(&sparse), "{sparse}");
    }

    #[test]
    fn bad_bytes_are_refused_not_trusted() {
        assert_eq!(Hll::from_bytes(b"HYLL"), Err(HllError::NotHll));
        assert_eq!(
            Hll::from_bytes(b"HYLX\x01\0\0\0\0\0\0\0\0\0\0\0\x7f\xff"),
            Err(HllError::NotHll)
        );
        assert_eq!(
            Hll::from_bytes(b"HYLL\x00\0\0\0\0\0\0\0\0\0\0\0\x7f\xff"),
            Err(HllError::NotHll)
        );
        let short = Hll::from_bytes(b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\0\x7f").expect("header");
        assert_eq!(short.count(), Err(HllError::Corrupt));
        let mut short = short;
        assert_eq!(short.add(b"x"), Err(HllError::Corrupt));
    }
}
