//! The `CASKADE` meta file: written once when a directory is created, it holds the
//! secret seed of the key hash (so hint files stay valid across restarts while outside
//! parties cannot aim collisions at the index).
//!
//! | offset | size | field                          |
//! |-------:|-----:|--------------------------------|
//! | 0      | 16   | file header (kind 3)           |
//! | 16     | 8    | hash seed                      |
//! | 24     | 4    | CRC32 of bytes 0..24           |

use super::file_header::{self, FileKind};
use super::{le_u32, le_u64};

pub(crate) const FILE_NAME: &str = "CASKADE";
const LEN: usize = 28;

pub(crate) fn encode(seed: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(LEN);
    b.extend_from_slice(&file_header::encode(FileKind::Meta, 0));
    b.extend_from_slice(&seed.to_le_bytes());
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// Returns the seed, or why the file is unusable.
pub(crate) fn decode(b: &[u8]) -> Result<u64, String> {
    file_header::decode(b, FileKind::Meta)?;
    if b.len() != LEN || le_u32(b, 24) != crc32fast::hash(&b[..24]) {
        return Err("meta file is damaged (length or CRC)".into());
    }
    Ok(le_u64(b, 16))
}

#[cfg(test)]
mod tests {
    #[test]
    fn meta_round_trips() {
        let b = super::encode(0xDEAD_BEEF);
        assert_eq!(super::decode(&b), Ok(0xDEAD_BEEF));
        let mut c = b.clone();
        c[17] ^= 4;
        assert!(super::decode(&c).is_err());
    }
}
