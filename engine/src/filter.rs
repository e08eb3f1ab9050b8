//! The compaction filter hook: compaction shows every live record it is about to copy
//! to a filter, in batches, and the filter keeps it, removes it, or changes its expiry
//! (e.g. to cap TTLs). A WebAssembly filter implements the same trait.

/// What a filter sees of one record (no value bytes: filters decide on metadata).
#[derive(Debug, Clone, Copy)]
pub struct FilterRecord<'a> {
    /// Namespace (Redis database).
    pub ns: u8,
    /// The key.
    pub key: &'a [u8],
    /// The value's length.
    pub value_len: u32,
    /// Expiry in Unix ms, if any.
    pub expire_at_ms: Option<u64>,
    /// Per-record metadata (an ETag, say).
    pub meta: &'a [u8],
}

/// A filter's decision for one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Copy it unchanged.
    Keep,
    /// Drop the key.
    Remove,
    /// Copy it with this expiry (`None` = never expires).
    SetExpiry(Option<u64>),
}

/// Decides the fate of records during compaction.
pub trait CompactionFilter: Send + Sync {
    /// Appends one verdict per record, in order, to `out`. Fewer verdicts than records
    /// (a broken filter) keeps the records without one. `now_ms` is the engine's clock,
    /// the one the records' expiries are judged by.
    fn filter(&self, now_ms: u64, records: &[FilterRecord<'_>], out: &mut Vec<Verdict>);
}
