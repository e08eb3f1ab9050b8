//! How collections are laid out on the engine's records: each type's encoding, the
//! chunking that keeps a change small, and what every type shares (copying a key of
//! any type for RENAME, COPY and MOVE).

pub mod geohash;
pub mod hashed;
pub mod hll;
pub mod listed;
pub mod sorted;

use crate::cmd::CmdError;
use crate::keyspace::Keyspace;
use bytes::Bytes;
use caskade_engine::{ChunkWrite, CollectionWrite, Family, Item, RootWrite, ValueType};
use std::collections::BTreeSet;

/// Writes one change of the collection at `key` as one atomic change of the log: the
/// root's value, its family (`None`: no chunks) and expiry, and each changed chunk's
/// new body (`None`: the chunk is removed). `was`: the root's value as the change read
/// it, if the caller kept it; a root left as it was is not written again (the engine
/// checks that the key still holds that family and expiry).
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_change(
    ks: &Keyspace<'_>,
    key: &[u8],
    vtype: ValueType,
    root: &[u8],
    was: Option<&[u8]>,
    family: Option<Family>,
    expire_at_ms: Option<u64>,
    chunks: &[(u32, Option<Vec<u8>>)],
) -> Result<(), CmdError> {
    let root = RootValue {
        head: &[],
        rest: root,
    };
    write_change_parts(ks, key, vtype, root, was, family, expire_at_ms, chunks)
}

/// A root's value in two parts, `head` then `rest` (a small collection's header, then
/// its entries as they were read): written without joining them first.
#[derive(Clone, Copy)]
pub(crate) struct RootValue<'a> {
    pub head: &'a [u8],
    pub rest: &'a [u8],
}

/// [`write_change`] with the root's value in two parts.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_change_parts(
    ks: &Keyspace<'_>,
    key: &[u8],
    vtype: ValueType,
    root: RootValue<'_>,
    was: Option<&[u8]>,
    family: Option<Family>,
    expire_at_ms: Option<u64>,
    chunks: &[(u32, Option<Vec<u8>>)],
) -> Result<(), CmdError> {
    let RootValue { head, rest: root } = root;
    let change = CollectionWrite {
        // A caller that kept the root as read gives it whole.
        root_unchanged: head.is_empty() && was == Some(root),
        root: Some(RootWrite {
            vtype,
            head,
            value: root,
            family,
            expire_at_ms,
        }),
        chunks: chunks
            .iter()
            .map(|(n, b)| ChunkWrite {
                n: *n,
                value: b.as_deref(),
            })
            .collect(),
    };
    ks.write_collection(key, &change)?;
    Ok(())
}

/// A map keyed by a collection's own numbers (chunk, node and bucket numbers), hashed
/// by the engine's one-multiplication hasher: the numbers are the collection's, not a
/// client's bytes.
pub(crate) type NumMap<V> = std::collections::HashMap<u32, V, caskade_engine::IntHash>;

/// The length-prefixed bytes at `*at` of `b` (a 4-byte little-endian length, then
/// that many bytes), moving `*at` past them; `None` if `b` ends first.
pub(crate) fn take_prefixed(b: &Bytes, at: &mut usize) -> Option<Bytes> {
    prefixed(b, at).map(|r| b.slice(r))
}

/// Where the length-prefixed bytes at `*at` of `b` are, moving `*at` past them: as
/// [`take_prefixed`], for readers that step over or compare in place.
pub(crate) fn prefixed(b: &[u8], at: &mut usize) -> Option<std::ops::Range<usize>> {
    let len_end = at.checked_add(4).filter(|&e| e <= b.len())?;
    let len = u32::from_le_bytes(b[*at..len_end].try_into().ok()?) as usize;
    let end = len_end.checked_add(len).filter(|&e| e <= b.len())?;
    *at = end;
    Some(len_end..end)
}

/// The little-endian `u32` at `at` of `b`, if `b` holds it.
pub(crate) fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at.checked_add(4)?)?
        .try_into()
        .ok()
        .map(u32::from_le_bytes)
}

/// The little-endian `u64` at `at` of `b`, if `b` holds it.
pub(crate) fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at.checked_add(8)?)?
        .try_into()
        .ok()
        .map(u64::from_le_bytes)
}

/// The numbers a collection's records use (sorted-set nodes, list chunks and pages):
/// those below `hi`, but for the free ones, reused lowest first. Kept in the root as
/// one past the highest (4) · free count (4) · free numbers (4 each).
///
/// The free numbers are a sorted vector, not a tree: the root that holds them is read
/// by every command on the collection, and a sorted set churned by 100,000 ZADDs that
/// move members between leaves had a few hundred free (a tree insert each per read was
/// most of a ZRANK's time).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Numbers {
    hi: u32,
    /// Ascending, without repeats.
    free: Vec<u32>,
}

impl Numbers {
    /// The numbers of a collection using `used`, counting at least to `at_least`.
    pub fn from_used(used: &BTreeSet<u32>, at_least: u32) -> Numbers {
        let hi = used.last().map_or(0, |n| n + 1).max(at_least);
        Numbers {
            hi,
            free: (0..hi).filter(|n| !used.contains(n)).collect(),
        }
    }

    /// One past the highest number in use.
    pub fn hi(&self) -> u32 {
        self.hi
    }

    /// A number not in use: the lowest free one, or the next past the highest.
    pub fn take(&mut self) -> u32 {
        if self.free.is_empty() {
            self.hi += 1;
            return self.hi - 1;
        }
        self.free.remove(0)
    }

    /// `n` is no longer in use. The highest numbers in no use leave the count, so the
    /// family shrinks.
    pub fn give_back(&mut self, n: u32) {
        if let Err(i) = self.free.binary_search(&n) {
            self.free.insert(i, n);
        }
        while self.hi > 0 && self.free.last() == Some(&(self.hi - 1)) {
            self.free.pop();
            self.hi -= 1;
        }
    }

    /// The bytes [`Numbers::encode`] appends.
    pub fn encoded_len(&self) -> usize {
        8 + 4 * self.free.len()
    }

    /// Appends the encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.hi.to_le_bytes());
        out.extend_from_slice(&(self.free.len() as u32).to_le_bytes());
        for n in &self.free {
            out.extend_from_slice(&n.to_le_bytes());
        }
    }

    /// The numbers encoded at `*at` of `b`, moving `*at` past them.
    pub fn decode(b: &[u8], at: &mut usize) -> Option<Numbers> {
        let hi = le_u32(b, *at)?;
        let n = le_u32(b, *at + 4)? as usize;
        let list = b.get(*at + 8..(*at + 8).checked_add(n.checked_mul(4)?)?)?;
        let mut free: Vec<u32> = list
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        // Written ascending; sorted again only if a record says otherwise.
        if !free.is_sorted_by(|a, b| a < b) {
            free.sort_unstable();
            free.dedup();
        }
        *at += 8 + 4 * n;
        Some(Numbers { hi, free })
    }
}

/// Removal records for the numbers `freed` below `below` that `bodies` does not write
/// again: a number left as a hole must not come back at a restart, while one past the
/// family's count goes with the count.
pub(crate) fn push_removals(
    bodies: &mut Vec<(u32, Option<Vec<u8>>)>,
    freed: &BTreeSet<u32>,
    below: u32,
) {
    let written: BTreeSet<u32> = bodies.iter().map(|(n, _)| *n).collect();
    for &n in freed
        .iter()
        .filter(|&&n| n < below && !written.contains(&n))
    {
        bodies.push((n, None));
    }
}

/// Writes `item` (the record of `src` in `from`) as `dst` in `to`, replacing whatever
/// `dst` held; a chunked collection is written anew under its new key (its chunks'
/// keys name their root).
pub fn copy_value(
    from: &Keyspace<'_>,
    src: &[u8],
    item: Item,
    to: &Keyspace<'_>,
    dst: &[u8],
) -> Result<(), CmdError> {
    if item.vtype == ValueType::String {
        to.put_item(dst, &item.value, item.expire_at_ms, &item.meta)?;
        return Ok(());
    }
    if Family::decode(&item.meta).is_none() {
        let (vtype, exp) = (item.vtype, item.expire_at_ms);
        return write_change(to, dst, vtype, &item.value, None, None, exp, &[]);
    }
    let vtype = item.vtype;
    let exp = item.expire_at_ms;
    if vtype == ValueType::List {
        let elems = listed::Listed::from_item(from, src, Some(item))?.all()?;
        to.delete(dst)?;
        return listed::Listed::fill(to, dst, elems, exp);
    }
    if vtype == ValueType::ZSet {
        let mut z = sorted::Sorted::from_item(from, src, Some(item))?;
        let (elems, big) = (z.all()?, z.is_big());
        to.delete(dst)?;
        return sorted::Sorted::fill(to, dst, elems, big, exp);
    }
    let mut source = hashed::Hashed::from_item(from, src, vtype, Some(item))?;
    let entries = source.all()?;
    let big = source.is_big();
    to.delete(dst)?;
    hashed::Hashed::fill(to, dst, vtype, entries, big, exp)
}

/// What OBJECT ENCODING and MEMORY USAGE say of a collection.
pub struct Shape {
    /// Redis' name for the encoding it would use.
    pub encoding: &'static str,
    /// Encoded bytes of every element.
    pub stored_bytes: u64,
}

/// The [`Shape`] of the collection whose root `item` is at `key`.
pub fn shape(ks: &Keyspace<'_>, key: &[u8], item: Item) -> Result<Shape, CmdError> {
    if item.vtype == ValueType::List {
        let l = listed::Listed::from_item(ks, key, Some(item))?;
        return Ok(Shape {
            encoding: l.encoding(),
            stored_bytes: l.stored_bytes(),
        });
    }
    if item.vtype == ValueType::ZSet {
        let z = sorted::Sorted::from_item(ks, key, Some(item))?;
        return Ok(Shape {
            encoding: z.encoding(),
            stored_bytes: z.stored_bytes(),
        });
    }
    let vtype = item.vtype;
    let h = hashed::Hashed::from_item(ks, key, vtype, Some(item))?;
    Ok(Shape {
        encoding: h.encoding(),
        stored_bytes: h.stored_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Numbers taken and given back agree with a model of the set in use, and
        /// survive their encoding.
        #[test]
        fn numbers_agree_with_a_model(
            start in proptest::collection::btree_set(0u32..60, 0..30),
            ops in proptest::collection::vec((proptest::bool::ANY, 0usize..64), 1..200),
        ) {
            let mut used = start.clone();
            let mut n = Numbers::from_used(&start, 0);
            for (take, pick) in ops {
                if take || used.is_empty() {
                    // The lowest number not in use.
                    let want = (0..).find(|k| !used.contains(k)).expect("a free number");
                    proptest::prop_assert_eq!(n.take(), want);
                    used.insert(want);
                } else {
                    let k = *used.iter().nth(pick % used.len()).expect("in use");
                    used.remove(&k);
                    n.give_back(k);
                }
                proptest::prop_assert_eq!(n.hi(), used.last().map_or(0, |k| k + 1));
                let mut b = vec![7u8];
                n.encode(&mut b);
                proptest::prop_assert_eq!(b.len(), 1 + n.encoded_len());
                let mut at = 1;
                let back = Numbers::decode(&b, &mut at);
                proptest::prop_assert_eq!(back.as_ref(), Some(&n));
                proptest::prop_assert_eq!(at, b.len());
            }
        }
    }

    #[test]
    fn numbers_decode_unsorted_or_short_input_without_panicking() {
        let mut b = Vec::new();
        for v in [10u32, 3, 5, 3, 1] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let mut enc = 12u32.to_le_bytes().to_vec();
        enc.extend_from_slice(&4u32.to_le_bytes());
        enc.extend_from_slice(&b[..16]);
        let mut at = 0;
        let n = Numbers::decode(&enc, &mut at).expect("decodes");
        assert_eq!(n.free, vec![3, 5, 10]);
        for cut in 0..enc.len() {
            let mut at = 0;
            assert!(
                Numbers::decode(&enc[..cut], &mut at).is_none(),
                "cut at {cut}"
            );
        }
    }
}
