//! The engine's error type: one enum, so callers (the sidecar) can map each case to a
//! Redis-style reply or a startup message without string matching.

use std::path::PathBuf;

/// Everything the engine can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O call failed; `op` says what the engine was doing, `path` on which file.
    // The I/O error is part of the message rather than a `source`, so a report of
    // the error chain says it once.
    #[error("{op} {path}: {error}")]
    Io {
        /// What the engine was doing ("read", "write", "sync", ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// A collection change that cannot be written as given (a caller's bug).
    #[error("invalid collection change: {0}")]
    BadChange(&'static str),
    /// A string was asked of a key that holds a collection (Redis' WRONGTYPE).
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    /// Another process (or another `Engine` in this one) holds the directory's lock.
    #[error("data directory {0} is locked by another caskade process")]
    Locked(PathBuf),
    /// A file in the data directory is not one of ours, or is from a newer format.
    #[error("{path}: {reason}")]
    BadFile {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An earlier fsync or write failed; the engine refuses writes until it is reopened,
    /// because the kernel may have dropped the dirty pages it could not write.
    #[error("writes are refused after an I/O failure: {0}")]
    Poisoned(String),
    /// The namespace is outside `0..16`.
    #[error("namespace {0} is out of range (0..16)")]
    BadNamespace(u8),
    /// The key is empty or longer than the format allows.
    #[error("key length {len} is outside 1..={max}")]
    KeyTooLong {
        /// The key's length.
        len: usize,
        /// The largest key allowed.
        max: usize,
    },
    /// The value is longer than the configured maximum.
    #[error("value length {len} exceeds the maximum of {max} bytes")]
    ValueTooLong {
        /// The value's length.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The per-record metadata (ETag) is longer than the format allows.
    #[error("metadata length {len} exceeds the maximum of {max} bytes")]
    MetaTooLong {
        /// The metadata's length.
        len: usize,
        /// The largest metadata allowed.
        max: usize,
    },
    /// The options passed to `Engine::open` are inconsistent.
    #[error("invalid option {field}: {reason}")]
    BadOption {
        /// The option's name.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// The engine has been closed.
    #[error("the engine is closed")]
    Closed,
    /// A full compaction failed.
    #[error("compaction failed: {0}")]
    Compaction(String),
}

/// Shorthand for the engine's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            error,
        }
    }
}
