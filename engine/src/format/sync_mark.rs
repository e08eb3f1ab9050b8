//! The `SYNCED` file: how far the log is known to be on disk. Rewritten in place after
//! syncs (without a sync of its own, so it only ever lags the truth), it lets recovery
//! tell damage to synced bytes (which must cost misses, never older values) from a
//! torn tail beyond the last sync (the prefix `everysec` promises).
//!
//! | offset | size | field                                                     |
//! |-------:|-----:|-----------------------------------------------------------|
//! | 0      | 16   | file header (kind 4, id of the segment the mark is in)    |
//! | 16     | 8    | length of that segment known synced; every older segment |
//! |        |      | is sealed and synced whole                                |
//! | 24     | 4    | CRC32 of bytes 0..24                                      |

use super::file_header::{self, FileKind};
use super::{le_u32, le_u64};

pub(crate) const FILE_NAME: &str = "SYNCED";
pub(crate) const LEN: usize = 28;

/// A position in the log: a segment id and a length within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Mark {
    pub seg: u32,
    pub len: u64,
}

pub(crate) fn encode(m: Mark) -> [u8; LEN] {
    let mut b = [0u8; LEN];
    b[..16].copy_from_slice(&file_header::encode(FileKind::SyncMark, m.seg));
    b[16..24].copy_from_slice(&m.len.to_le_bytes());
    let crc = crc32fast::hash(&b[..24]);
    b[24..].copy_from_slice(&crc.to_le_bytes());
    b
}

/// The mark, or why the file is unusable (then recovery trusts no unsealed bytes).
pub(crate) fn decode(b: &[u8]) -> Result<Mark, String> {
    let seg = file_header::decode(b, FileKind::SyncMark)?;
    if b.len() != LEN || le_u32(b, 24) != crc32fast::hash(&b[..24]) {
        return Err("sync mark is damaged (length or CRC)".into());
    }
    Ok(Mark {
        seg,
        len: le_u64(b, 16),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_round_trips_and_damage_is_refused() {
        let m = Mark { seg: 7, len: 4242 };
        let b = encode(m);
        assert_eq!(decode(&b), Ok(m));
        for i in 0..LEN {
            let mut c = b;
            c[i] ^= 1;
            assert!(decode(&c).is_err(), "flip at {i}");
        }
        assert!(decode(&b[..20]).is_err());
    }
}
