//! The 16-byte header at the start of every file the engine writes.
//!
//! | offset | size | field                                             |
//! |-------:|-----:|---------------------------------------------------|
//! | 0      | 8    | magic `b"CASKADE\0"`                              |
//! | 8      | 1    | file kind: 1 segment, 2 hint, 3 meta, 4 sync mark |
//! | 9      | 1    | reserved, 0                                       |
//! | 10     | 2    | format version (currently 1)                      |
//! | 12     | 4    | segment id (segment and hint files), else 0       |

use super::{le_u16, le_u32};

pub(crate) const MAGIC: &[u8; 8] = b"CASKADE\0";
pub(crate) const HEADER_LEN: usize = 16;
pub(crate) const VERSION: u16 = 1;

/// Which kind of file a header announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    Segment = 1,
    Hint = 2,
    Meta = 3,
    SyncMark = 4,
    Snapshot = 5,
}

pub(crate) fn encode(kind: FileKind, segment_id: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(MAGIC);
    h[8] = kind as u8;
    h[10..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&segment_id.to_le_bytes());
    h
}

/// Checks a header; returns the segment id it carries, or why it is not acceptable.
pub(crate) fn decode(bytes: &[u8], kind: FileKind) -> Result<u32, String> {
    if bytes.len() < HEADER_LEN || &bytes[0..8] != MAGIC {
        return Err("not a caskade file (bad magic)".into());
    }
    if bytes[8] != kind as u8 {
        return Err(format!(
            "file kind {} where {:?} was expected",
            bytes[8], kind
        ));
    }
    let version = le_u16(bytes, 10);
    if version != VERSION {
        return Err(format!(
            "format version {version} is not supported (this build reads version {VERSION})"
        ));
    }
    Ok(le_u32(bytes, 12))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_other_kinds_and_versions() {
        let h = encode(FileKind::Hint, 42);
        assert_eq!(decode(&h, FileKind::Hint), Ok(42));
        assert!(decode(&h, FileKind::Segment).is_err());
        let mut newer = h;
        newer[10] = 9;
        assert!(
            decode(&newer, FileKind::Hint)
                .expect_err("newer version refused")
                .contains("version 9")
        );
        assert!(decode(b"short", FileKind::Hint).is_err());
    }
}
