//! Hint files: a compact list of a segment's records (no keys, no values) so a restart
//! rebuilds the index without reading the data. Written atomically (temp file, sync,
//! rename, sync directory); a hint that fails its CRC is ignored and the segment scanned.
//!
//! | offset | size | field                                                  |
//! |-------:|-----:|--------------------------------------------------------|
//! | 0      | 16   | file header (kind 2, segment id)                       |
//! | 16     | 26×n | entries, in log order (below)                          |
//! | end-20 | 8    | entry count `n`                                        |
//! | end-12 | 8    | covered length: the segment bytes these entries cover |
//! | end-4  | 4    | CRC32 of every byte before it                          |
//!
//! Entry: kind (1) · namespace (1) · key hash (8) · record offset (4) · record length (4)
//! · expiry in Unix ms (8).

use super::file_header::{self, FileKind};
use super::record::Kind;
use super::{le_u32, le_u64};

pub(crate) const ENTRY_LEN: usize = 26;
const TRAILER_LEN: usize = 20;

/// One record as a hint file describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HintEntry {
    pub kind: Kind,
    pub ns: u8,
    pub hash: u64,
    pub offset: u32,
    pub len: u32,
    pub expire_at_ms: u64,
}

pub(crate) fn encode(segment_id: u32, entries: &[HintEntry], covered_len: u64) -> Vec<u8> {
    let mut b =
        Vec::with_capacity(file_header::HEADER_LEN + entries.len() * ENTRY_LEN + TRAILER_LEN);
    b.extend_from_slice(&file_header::encode(FileKind::Hint, segment_id));
    for e in entries {
        b.push(e.kind as u8);
        b.push(e.ns);
        b.extend_from_slice(&e.hash.to_le_bytes());
        b.extend_from_slice(&e.offset.to_le_bytes());
        b.extend_from_slice(&e.len.to_le_bytes());
        b.extend_from_slice(&e.expire_at_ms.to_le_bytes());
    }
    b.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    b.extend_from_slice(&covered_len.to_le_bytes());
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// A hint file that passed its checks: iterate its entries with [`Hint::entries`].
pub(crate) struct Hint<'a> {
    body: &'a [u8],
    pub covered_len: u64,
}

impl Hint<'_> {
    pub fn entries(&self) -> impl Iterator<Item = Result<HintEntry, String>> + '_ {
        self.body.chunks_exact(ENTRY_LEN).map(|c| {
            let kind = match c[0] {
                1 => Kind::Put,
                2 => Kind::Tombstone,
                3 => Kind::Flush,
                4 => Kind::Evict,
                5 => Kind::Seal,
                k => return Err(format!("unknown record kind {k}")),
            };
            Ok(HintEntry {
                kind,
                ns: c[1],
                hash: le_u64(c, 2),
                offset: le_u32(c, 10),
                len: le_u32(c, 14),
                expire_at_ms: le_u64(c, 18),
            })
        })
    }
}

/// Validates a hint file for `segment_id`: header, CRC and entry count.
pub(crate) fn decode(b: &[u8], segment_id: u32) -> Result<Hint<'_>, String> {
    let id = file_header::decode(b, FileKind::Hint)?;
    if id != segment_id {
        return Err(format!("hint names segment {id}, not {segment_id}"));
    }
    if b.len() < file_header::HEADER_LEN + TRAILER_LEN {
        return Err("hint file is too short".into());
    }
    let crc_at = b.len() - 4;
    if le_u32(b, crc_at) != crc32fast::hash(&b[..crc_at]) {
        return Err("hint file fails its CRC".into());
    }
    let count = le_u64(b, b.len() - TRAILER_LEN);
    let covered_len = le_u64(b, b.len() - 12);
    let body = &b[file_header::HEADER_LEN..b.len() - TRAILER_LEN];
    if !body.len().is_multiple_of(ENTRY_LEN) || (body.len() / ENTRY_LEN) as u64 != count {
        return Err("hint entry count does not match its length".into());
    }
    Ok(Hint { body, covered_len })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hint_round_trips_and_catches_damage() {
        let entries = vec![
            HintEntry {
                kind: Kind::Put,
                ns: 0,
                hash: 7,
                offset: 16,
                len: 40,
                expire_at_ms: 0,
            },
            HintEntry {
                kind: Kind::Tombstone,
                ns: 15,
                hash: u64::MAX,
                offset: 56,
                len: 23,
                expire_at_ms: 99,
            },
        ];
        let b = encode(9, &entries, 79);
        let h = decode(&b, 9).expect("valid hint");
        assert_eq!(h.covered_len, 79);
        assert_eq!(h.entries().count(), 2);
        let back: Vec<_> = h.entries().collect::<Result<_, _>>().expect("entries");
        assert_eq!(back, entries);
        assert!(decode(&b, 8).is_err(), "wrong segment id");
        let mut c = b.clone();
        c[20] ^= 1;
        assert!(decode(&c, 9).is_err(), "flipped byte");
        assert!(decode(&b[..b.len() - 1], 9).is_err(), "truncated");
    }
}
