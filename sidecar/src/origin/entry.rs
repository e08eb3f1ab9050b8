//! The metadata stored beside a read-through value (in the engine's per-record meta):
//! when it was fetched, until when it is fresh, and the origin's ETag. A value without
//! it was written by a client and is never refreshed.
//!
//! | offset | size | field                                   |
//! |-------:|-----:|-----------------------------------------|
//! | 0      | 1    | magic `0xCA`                            |
//! | 1      | 1    | version (1)                             |
//! | 2      | 8    | fetched at, Unix ms (little endian)     |
//! | 10     | 8    | fresh until, Unix ms (little endian)    |
//! | 18     | n    | ETag, UTF-8 (absent if n = 0)           |

use caskade_engine::MAX_META_LEN;

const MAGIC: u8 = 0xCA;
const VERSION: u8 = 1;
const HEAD: usize = 18;
/// Longest ETag kept; a longer one is dropped (the value is then refetched in full).
pub const MAX_ETAG_LEN: usize = MAX_META_LEN - HEAD;

/// A read-through entry's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// When the value was fetched (or last revalidated), Unix ms.
    pub fetched_at_ms: u64,
    /// Until when it is fresh, Unix ms.
    pub fresh_until_ms: u64,
    /// The origin's ETag.
    pub etag: Option<String>,
}

impl Entry {
    /// An entry fetched (or revalidated) at `now_ms`, fresh for `ttl_ms`.
    pub fn fresh(now_ms: u64, ttl_ms: u64, etag: Option<String>) -> Entry {
        Entry {
            fetched_at_ms: now_ms,
            fresh_until_ms: now_ms.saturating_add(ttl_ms),
            etag,
        }
    }

    /// The bytes to store as the record's meta.
    pub fn encode(&self) -> Vec<u8> {
        let etag = self
            .etag
            .as_deref()
            .filter(|e| e.len() <= MAX_ETAG_LEN)
            .unwrap_or("");
        let mut b = Vec::with_capacity(HEAD + etag.len());
        b.push(MAGIC);
        b.push(VERSION);
        b.extend_from_slice(&self.fetched_at_ms.to_le_bytes());
        b.extend_from_slice(&self.fresh_until_ms.to_le_bytes());
        b.extend_from_slice(etag.as_bytes());
        b
    }

    /// The entry `meta` describes, or `None` for a value a client wrote.
    pub fn decode(meta: &[u8]) -> Option<Entry> {
        if meta.len() < HEAD || meta[0] != MAGIC || meta[1] != VERSION {
            return None;
        }
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&meta[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let etag = &meta[HEAD..];
        Some(Entry {
            fetched_at_ms: u64_at(2),
            fresh_until_ms: u64_at(10),
            etag: (!etag.is_empty())
                .then(|| std::str::from_utf8(etag).ok().map(str::to_string))
                .flatten(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_foreign_meta() {
        let e = Entry {
            fetched_at_ms: 1_700_000_000_000,
            fresh_until_ms: 1_700_000_060_000,
            etag: Some("\"abc\"".into()),
        };
        assert_eq!(Entry::decode(&e.encode()), Some(e.clone()));
        let none = Entry { etag: None, ..e };
        assert_eq!(Entry::decode(&none.encode()), Some(none.clone()));
        assert_eq!(Entry::decode(b""), None);
        assert_eq!(Entry::decode(b"W/\"etag-from-elsewhere-but-long\""), None);
        let long = Entry {
            etag: Some("x".repeat(MAX_ETAG_LEN + 1)),
            ..none.clone()
        };
        let b = long.encode();
        assert!(b.len() <= MAX_META_LEN);
        assert_eq!(Entry::decode(&b), Some(none));
    }
}
