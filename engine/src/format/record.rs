//! The record: the unit appended to segment files.
//!
//! | offset        | size      | field                                                |
//! |--------------:|----------:|------------------------------------------------------|
//! | 0             | 4         | CRC32 (`crc32fast`) of bytes 4..end of the record    |
//! | 4             | 1         | kind: 1 put, 2 tombstone, 3 flush, 4 evict, 5 seal   |
//! | 5             | 1         | namespace 0..32 (16..32 shadows, below; 255 = every namespace, flush only) |
//! | 6             | 1         | metadata length `m` (0..=255)                        |
//! | 7             | 1         | value type of a put: 0 string, 1 hash, 2 set, 3 zset, 4 list; 0 otherwise |
//! | 8             | 2         | key length `k` (1..=65535; 0 flush; 8 evict)         |
//! | 10            | 4         | value length `v`                                     |
//! | 14            | 8         | expiry, Unix milliseconds (0 = never)                |
//! | 22            | `k`       | key                                                  |
//! | 22+k          | `m`       | metadata (e.g. an ETag)                              |
//! | 22+k+m        | `v`       | value                                                |
//!
//! An evict record's "key" is the evicted key's 8-byte id (little-endian): eviction
//! knows keys only by id, and recovery needs no more to forget them. A seal record is
//! the first record of a segment started by sealing the one before: its 12-byte "key"
//! is that segment's id (4 bytes) and final length (8 bytes), so recovery can tell a
//! sealed segment cut short even without its hint file.
//!
//! The kind byte's top bit (`0x80`) marks a record that is not the last of one change:
//! a change of several records (a collection's chunks and its root) is written as one
//! run whose last record has the bit clear, and recovery applies a run whole or not at
//! all (a run torn by a crash is cut off with the tail).
//!
//! Namespaces 16..32 are shadows: namespace `n + 16` holds the chunks of the
//! collections of namespace `n` (see `families`), never counted or evicted as keys.
//!
//! The CRC covers the header after itself, so a flipped length or expiry is caught as
//! surely as a flipped value byte.

use super::{le_u16, le_u32, le_u64};

pub(crate) const HEADER_LEN: usize = 22;
/// The longest key the format can hold.
pub const MAX_KEY_LEN: usize = u16::MAX as usize;
/// The longest metadata (ETag) the format can hold.
pub const MAX_META_LEN: usize = u8::MAX as usize;
/// The longest value the format accepts (Redis' own `proto-max-bulk-len` default).
pub const MAX_VALUE_LEN: usize = 512 << 20;
/// The namespace byte of a flush record that empties every namespace.
pub(crate) const ALL_NAMESPACES: u8 = 255;
/// How many namespaces there are (Redis `SELECT 0..15`).
pub const NAMESPACES: u8 = 16;
/// Namespaces including the shadows that hold collection chunks.
pub(crate) const ALL_NS: u8 = 2 * NAMESPACES;
/// The kind byte's mark of a record that more records of the same change follow.
pub(crate) const CONTINUED: u8 = 0x80;

/// What a key holds, as the type byte of its record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum ValueType {
    /// A string (every record written before types existed).
    #[default]
    String = 0,
    /// A hash.
    Hash = 1,
    /// A set.
    Set = 2,
    /// A sorted set.
    ZSet = 3,
    /// A list.
    List = 4,
}

impl ValueType {
    /// The type a type byte names.
    pub fn from_byte(b: u8) -> Option<ValueType> {
        Some(match b {
            0 => ValueType::String,
            1 => ValueType::Hash,
            2 => ValueType::Set,
            3 => ValueType::ZSet,
            4 => ValueType::List,
            _ => return None,
        })
    }
}

/// What a record does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Put = 1,
    Tombstone = 2,
    Flush = 3,
    Evict = 4,
    Seal = 5,
}

/// The key id an evict record carries in its key field.
pub(crate) fn evicted_id(key: &[u8]) -> u64 {
    if key.len() == 8 {
        super::le_u64(key, 0)
    } else {
        0
    }
}

/// A decoded record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub kind: Kind,
    pub ns: u8,
    pub meta_len: u8,
    pub key_len: u16,
    pub value_len: u32,
    pub expire_at_ms: u64,
    /// What a put holds (always a string for other kinds).
    pub vtype: ValueType,
    /// More records of the same change follow this one.
    pub continued: bool,
}

impl Header {
    /// The length of the whole record this header starts.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.key_len as usize + self.meta_len as usize + self.value_len as usize
    }

    /// Parses a header, refusing anything the encoder could not have written. This is
    /// what lets recovery tell a torn or corrupt region from a record before the CRC.
    pub fn parse(b: &[u8]) -> Option<Header> {
        if b.len() < HEADER_LEN {
            return None;
        }
        let vtype = ValueType::from_byte(b[7])?;
        let kind = match b[4] & !CONTINUED {
            1 => Kind::Put,
            2 => Kind::Tombstone,
            3 => Kind::Flush,
            4 => Kind::Evict,
            5 => Kind::Seal,
            _ => return None,
        };
        let h = Header {
            kind,
            ns: b[5],
            meta_len: b[6],
            key_len: le_u16(b, 8),
            value_len: le_u32(b, 10),
            expire_at_ms: le_u64(b, 14),
            vtype,
            continued: b[4] & CONTINUED != 0,
        };
        if kind != Kind::Put && vtype != ValueType::String {
            return None;
        }
        let plausible = match kind {
            Kind::Put => h.ns < ALL_NS && h.key_len > 0,
            Kind::Tombstone => {
                h.ns < ALL_NS && h.key_len > 0 && h.value_len == 0 && h.meta_len == 0
            }
            Kind::Evict => h.ns < ALL_NS && h.key_len == 8 && h.value_len == 0 && h.meta_len == 0,
            Kind::Seal => {
                h.ns == 0 && h.key_len == SEAL_KEY_LEN && h.value_len == 0 && h.meta_len == 0
            }
            Kind::Flush => {
                (h.ns < NAMESPACES || h.ns == ALL_NAMESPACES)
                    && h.key_len == 0
                    && h.value_len == 0
                    && h.meta_len == 0
            }
        };
        (plausible && h.value_len as usize <= MAX_VALUE_LEN).then_some(h)
    }
}

/// A record's parts, borrowed from a buffer that held the whole record.
#[derive(Debug)]
pub(crate) struct RecordRef<'a> {
    pub header: Header,
    /// The whole encoded record.
    pub raw: &'a [u8],
    pub key: &'a [u8],
    pub meta: &'a [u8],
    pub value: &'a [u8],
}

/// The byte range of the value inside an encoded record.
pub(crate) fn value_range(h: &Header) -> std::ops::Range<usize> {
    let start = HEADER_LEN + h.key_len as usize + h.meta_len as usize;
    start..start + h.value_len as usize
}

/// Appends one encoded record to `buf`. Lengths must already be within the limits.
pub(crate) fn encode_into(
    buf: &mut Vec<u8>,
    kind: Kind,
    ns: u8,
    key: &[u8],
    meta: &[u8],
    value: &[u8],
    expire_at_ms: u64,
) {
    encode_typed(
        buf,
        kind as u8,
        ValueType::String,
        ns,
        key,
        meta,
        value,
        expire_at_ms,
    );
}

/// [`encode_into`] with the kind byte as written (a [`Kind`], perhaps with
/// [`CONTINUED`]) and the value type.
#[allow(clippy::too_many_arguments)]
pub(crate) fn encode_typed(
    buf: &mut Vec<u8>,
    kind: u8,
    vtype: ValueType,
    ns: u8,
    key: &[u8],
    meta: &[u8],
    value: &[u8],
    expire_at_ms: u64,
) {
    encode_typed_parts(buf, kind, vtype, ns, key, meta, &[], value, expire_at_ms);
}

/// [`encode_typed`] of a value given in two parts, `head` then `value` (a collection's
/// root header before its entries as they were read), so it is not joined first.
#[allow(clippy::too_many_arguments)]
pub(crate) fn encode_typed_parts(
    buf: &mut Vec<u8>,
    kind: u8,
    vtype: ValueType,
    ns: u8,
    key: &[u8],
    meta: &[u8],
    head: &[u8],
    value: &[u8],
    expire_at_ms: u64,
) {
    debug_assert!(key.len() <= MAX_KEY_LEN && meta.len() <= MAX_META_LEN);
    let start = buf.len();
    let value_len = head.len() + value.len();
    buf.reserve(HEADER_LEN + key.len() + meta.len() + value_len);
    buf.extend_from_slice(&[0; 4]);
    buf.push(kind);
    buf.push(ns);
    buf.push(meta.len() as u8);
    buf.push(vtype as u8);
    buf.extend_from_slice(&(key.len() as u16).to_le_bytes());
    buf.extend_from_slice(&(value_len as u32).to_le_bytes());
    buf.extend_from_slice(&expire_at_ms.to_le_bytes());
    buf.extend_from_slice(key);
    buf.extend_from_slice(meta);
    buf.extend_from_slice(head);
    buf.extend_from_slice(value);
    let crc = crc32fast::hash(&buf[start + 4..]);
    buf[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes a whole record, checking its header, its length and its CRC. `None` means
/// the bytes are not exactly one intact record.
/// An evict record for key `id` of namespace `ns` (the key's bytes are not at hand
/// when a policy names a victim by id).
pub(crate) fn evict(ns: u8, id: u64) -> Vec<u8> {
    let mut rec = Vec::with_capacity(HEADER_LEN + 8);
    encode_into(&mut rec, Kind::Evict, ns, &id.to_le_bytes(), b"", b"", 0);
    rec
}

const SEAL_KEY_LEN: u16 = 12;

/// The seal record naming segment `prev` and its final length `len`.
pub(crate) fn seal(prev: u32, len: u64) -> Vec<u8> {
    let mut key = [0u8; SEAL_KEY_LEN as usize];
    key[..4].copy_from_slice(&prev.to_le_bytes());
    key[4..].copy_from_slice(&len.to_le_bytes());
    let mut rec = Vec::with_capacity(HEADER_LEN + key.len());
    encode_into(&mut rec, Kind::Seal, 0, &key, b"", b"", 0);
    rec
}

/// The segment id and length a seal record's key names.
pub(crate) fn sealed(key: &[u8]) -> Option<(u32, u64)> {
    (key.len() == SEAL_KEY_LEN as usize).then(|| (super::le_u32(key, 0), le_u64(key, 4)))
}

/// A tombstone of `key` in namespace `ns`: the one way a removal is written.
pub(crate) fn tombstone(ns: u8, key: &[u8]) -> Vec<u8> {
    let mut rec = Vec::with_capacity(HEADER_LEN + key.len());
    encode_into(&mut rec, Kind::Tombstone, ns, key, b"", b"", 0);
    rec
}

pub(crate) fn decode(b: &[u8]) -> Option<RecordRef<'_>> {
    let header = Header::parse(b)?;
    if header.total_len() != b.len() || !crc_ok(b) {
        return None;
    }
    Some(parts(b, header))
}

/// The parts of a record that [`decode`] already checked, from its bytes and header.
pub(crate) fn parts(b: &[u8], header: Header) -> RecordRef<'_> {
    let k = HEADER_LEN + header.key_len as usize;
    let m = k + header.meta_len as usize;
    RecordRef {
        header,
        raw: b,
        key: &b[HEADER_LEN..k],
        meta: &b[k..m],
        value: &b[m..],
    }
}

/// Clears the [`CONTINUED`] mark of the encoded record `b` (a copy made by compaction
/// stands alone), fixing its CRC.
pub(crate) fn clear_continued(b: &mut [u8]) {
    set_continued(b, false);
}

/// Sets or clears the [`CONTINUED`] mark of the encoded record `b`, fixing its CRC
/// where the mark changes.
pub(crate) fn set_continued(b: &mut [u8], on: bool) {
    if b.len() > HEADER_LEN && (b[4] & CONTINUED != 0) != on {
        b[4] ^= CONTINUED;
        let crc = crc32fast::hash(&b[4..]);
        b[..4].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Whether the CRC at the start of `b` matches the rest of `b`.
pub(crate) fn crc_ok(b: &[u8]) -> bool {
    b.len() >= 4 && le_u32(b, 0) == crc32fast::hash(&b[4..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &[u8], meta: &[u8], value: &[u8], exp: u64) -> Vec<u8> {
        let mut b = Vec::new();
        encode_into(&mut b, Kind::Put, 3, key, meta, value, exp);
        b
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let b = put(b"key", b"etag-1", b"value", 1234);
        let r = decode(&b).expect("intact record decodes");
        assert_eq!(r.header.kind, Kind::Put);
        assert_eq!(r.header.ns, 3);
        assert_eq!(r.header.expire_at_ms, 1234);
        assert_eq!(
            (r.key, r.meta, r.value),
            (&b"key"[..], &b"etag-1"[..], &b"value"[..])
        );
        assert_eq!(&b[value_range(&r.header)], b"value");
    }

    #[test]
    fn any_flipped_bit_is_detected() {
        let b = put(b"k", b"m", b"some value bytes", 99);
        for i in 0..b.len() {
            for bit in 0..8 {
                let mut c = b.clone();
                c[i] ^= 1 << bit;
                assert!(
                    decode(&c).is_none(),
                    "flip of bit {bit} in byte {i} went unseen"
                );
            }
        }
    }

    #[test]
    fn implausible_headers_are_refused_before_the_crc() {
        let mut flush = Vec::new();
        encode_into(&mut flush, Kind::Flush, ALL_NAMESPACES, b"", b"", b"", 0);
        assert!(decode(&flush).is_some());
        let mut bad_ns = put(b"k", b"", b"v", 0);
        bad_ns[5] = ALL_NS;
        assert!(Header::parse(&bad_ns).is_none());
        let mut empty_key = put(b"k", b"", b"v", 0);
        empty_key[8] = 0;
        assert!(Header::parse(&empty_key).is_none());
        assert!(
            Header::parse(&[0u8; HEADER_LEN]).is_none(),
            "zeros are not a record"
        );
    }

    #[test]
    fn types_and_the_continued_mark_round_trip() {
        let mut b = Vec::new();
        encode_typed(
            &mut b,
            Kind::Put as u8 | CONTINUED,
            ValueType::ZSet,
            17,
            b"k",
            b"",
            b"v",
            0,
        );
        let r = decode(&b).expect("decodes");
        assert_eq!(
            (r.header.vtype, r.header.continued),
            (ValueType::ZSet, true)
        );
        assert_eq!(r.header.kind, Kind::Put);
        let marked = b.clone();
        clear_continued(&mut b);
        let r = decode(&b).expect("still decodes");
        assert!(!r.header.continued);
        // Marking it again gives the record as first encoded, CRC and all.
        let cleared = b.clone();
        set_continued(&mut b, true);
        assert_eq!(b, marked);
        set_continued(&mut b, true);
        assert_eq!(b, marked, "a mark already there changes nothing");
        set_continued(&mut b, false);
        assert_eq!(b, cleared);
        let mut bad = b.clone();
        bad[7] = 9;
        assert!(Header::parse(&bad).is_none(), "an unknown type is refused");
        let mut t = tombstone(0, b"k");
        t[7] = 1;
        assert!(Header::parse(&t).is_none(), "only a put has a type");
    }

    #[test]
    fn truncated_record_is_refused() {
        let b = put(b"key", b"", b"value", 0);
        assert!(decode(&b[..b.len() - 1]).is_none());
    }
}
