//! On-disk formats: the header every file starts with, the record layout of segment
//! files, hint files, the directory's meta file and its sync mark. All integers are little-endian.

pub(crate) mod file_header;
pub(crate) mod hint;
pub(crate) mod meta;
pub(crate) mod record;
pub(crate) mod snapshot;
pub(crate) mod sync_mark;

/// Reads a little-endian `u16` at `at`; callers have checked the length.
pub(crate) fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// Reads a little-endian `u32` at `at`; callers have checked the length.
pub(crate) fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Reads a little-endian `u64` at `at`; callers have checked the length.
pub(crate) fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}
