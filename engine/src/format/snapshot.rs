//! The index snapshot written at a clean shutdown, so the next open loads the index
//! instead of rebuilding it from hint files. Its head names the exact segment files it
//! describes (id and length); a head or block that fails its CRC, or any segment that
//! differs, and the snapshot is ignored.
//!
//! | offset | size | field                                                       |
//! |-------:|-----:|-------------------------------------------------------------|
//! | 0      | 16   | file header (kind 5, the active segment's id)               |
//! | 16     | 8    | the index's hash seed                                       |
//! | 24     | 4    | segment count `s`                                           |
//! | 28     | 4    | block count `b`                                             |
//! | 32     | 8    | the built-in policy's insertion epoch (its slots' stamps count from it) |
//! | 40     | 29×s | segments: id (4) · length (8) · dead bytes (8) · hint file bytes (8) · flags (1, bit 0: pinned) |
//! |        | 15×b | blocks: namespace (1) · shard (2) · table capacity (4) · entry count `n` (4) · CRC32 of the entries (4) |
//! |        | 4    | CRC32 of every byte before it                               |
//! |        | 24×Σn | each block's entries, in block order: key hash's low 54 bits under 10 policy bits (8) · segment (4) · offset (4) · record length (4) · expiry in s (4) |

use super::file_header::{self, FileKind, HEADER_LEN};
use super::{le_u32, le_u64};

pub(crate) const FILE_NAME: &str = "INDEX";
const FIXED: usize = HEADER_LEN + 24;
const SEGMENT_LEN: usize = 29;
const BLOCK_LEN: usize = 15;

/// One segment as the snapshot saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentInfo {
    pub id: u32,
    pub len: u64,
    pub dead: u64,
    pub hint_bytes: u64,
    pub pinned: bool,
}

/// One index shard's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Block {
    pub ns: u8,
    pub shard: u16,
    pub capacity: u32,
    pub entries: u32,
    pub crc: u32,
}

/// Everything before the entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    pub active: u32,
    pub seed: u64,
    pub epoch: u64,
    pub segments: Vec<SegmentInfo>,
    pub blocks: Vec<Block>,
}

/// The head's length for `segments` segments and `blocks` blocks (where the entries
/// start).
pub(crate) fn head_len(segments: usize, blocks: usize) -> usize {
    FIXED + SEGMENT_LEN * segments + BLOCK_LEN * blocks + 4
}

pub(crate) fn encode_head(h: &Head) -> Vec<u8> {
    let mut b = Vec::with_capacity(head_len(h.segments.len(), h.blocks.len()));
    b.extend_from_slice(&file_header::encode(FileKind::Snapshot, h.active));
    b.extend_from_slice(&h.seed.to_le_bytes());
    b.extend_from_slice(&(h.segments.len() as u32).to_le_bytes());
    b.extend_from_slice(&(h.blocks.len() as u32).to_le_bytes());
    b.extend_from_slice(&h.epoch.to_le_bytes());
    for s in &h.segments {
        b.extend_from_slice(&s.id.to_le_bytes());
        b.extend_from_slice(&s.len.to_le_bytes());
        b.extend_from_slice(&s.dead.to_le_bytes());
        b.extend_from_slice(&s.hint_bytes.to_le_bytes());
        b.push(s.pinned as u8);
    }
    for k in &h.blocks {
        b.push(k.ns);
        b.extend_from_slice(&k.shard.to_le_bytes());
        b.extend_from_slice(&k.capacity.to_le_bytes());
        b.extend_from_slice(&k.entries.to_le_bytes());
        b.extend_from_slice(&k.crc.to_le_bytes());
    }
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// The counts in a head's first [`fixed_len`] bytes: (segments, blocks).
pub(crate) fn counts(fixed: &[u8]) -> Result<(usize, usize), String> {
    if fixed.len() < FIXED {
        return Err("shorter than its head".into());
    }
    file_header::decode(fixed, FileKind::Snapshot)?;
    Ok((le_u32(fixed, 24) as usize, le_u32(fixed, 28) as usize))
}

/// Bytes to read first: enough for [`counts`].
pub(crate) fn fixed_len() -> usize {
    FIXED
}

/// Decodes a whole head (its length from [`counts`]).
pub(crate) fn decode_head(b: &[u8]) -> Result<Head, String> {
    let (ns, nb) = counts(b)?;
    let len = head_len(ns, nb);
    if b.len() != len {
        return Err(format!("head is {} bytes, expected {len}", b.len()));
    }
    let stored = le_u32(b, len - 4);
    if crc32fast::hash(&b[..len - 4]) != stored {
        return Err("head fails its CRC".into());
    }
    let active = file_header::decode(b, FileKind::Snapshot)?;
    let mut at = FIXED;
    let mut segments = Vec::with_capacity(ns);
    for _ in 0..ns {
        segments.push(SegmentInfo {
            id: le_u32(b, at),
            len: le_u64(b, at + 4),
            dead: le_u64(b, at + 12),
            hint_bytes: le_u64(b, at + 20),
            pinned: b[at + 28] & 1 != 0,
        });
        at += SEGMENT_LEN;
    }
    let mut blocks = Vec::with_capacity(nb);
    for _ in 0..nb {
        blocks.push(Block {
            ns: b[at],
            shard: u16::from_le_bytes([b[at + 1], b[at + 2]]),
            capacity: le_u32(b, at + 3),
            entries: le_u32(b, at + 7),
            crc: le_u32(b, at + 11),
        });
        at += BLOCK_LEN;
    }
    Ok(Head {
        active,
        seed: le_u64(b, 16),
        epoch: le_u64(b, 32),
        segments,
        blocks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_round_trips_and_refuses_damage() {
        let h = Head {
            active: 9,
            seed: 0xfeed,
            epoch: 12345,
            segments: vec![
                SegmentInfo {
                    id: 3,
                    len: 1 << 20,
                    dead: 77,
                    hint_bytes: 400,
                    pinned: true,
                },
                SegmentInfo {
                    id: 9,
                    len: 4096,
                    dead: 0,
                    hint_bytes: 0,
                    pinned: false,
                },
            ],
            blocks: vec![Block {
                ns: 2,
                shard: 1023,
                capacity: 80,
                entries: 60,
                crc: 0xabcd,
            }],
        };
        let b = encode_head(&h);
        assert_eq!(b.len(), head_len(2, 1));
        assert_eq!(counts(&b[..fixed_len()]), Ok((2, 1)));
        assert_eq!(decode_head(&b), Ok(h));
        let mut bad = b.clone();
        bad[40] ^= 1;
        assert!(decode_head(&bad).expect_err("damaged").contains("CRC"));
        assert!(decode_head(&b[..b.len() - 1]).is_err());
        assert!(counts(b"short").is_err());
    }
}
