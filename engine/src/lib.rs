//! caskade's storage engine: a bitcask-style log of CRC-checked records in segment
//! files, an in-memory index of 24-byte slots (key hashes, not keys), hint files for
//! fast restarts, and fsync policies with group commit. Synchronous and thread-safe;
//! no async runtime inside. All file I/O goes through [`io::Storage`].

mod cache_hint;
mod clock;
mod collection;
mod compaction;
mod core;
mod engine;
mod error;
mod eviction;
mod families;
mod filter;
mod format;
#[doc(hidden)]
pub mod fuzzing;
mod hot;
mod index;
mod inthash;
pub mod io;
mod keydir;
mod log;
mod maintenance;
mod options;
mod parallel;
pub mod policy;
mod policy_host;
mod prefetch;
mod recovery;
mod segment;
mod snapshot;
mod stats;
mod stopper;

pub use clock::{Clock, ManualClock, SystemClock};
pub use collection::{ChunkWrite, CollectionWrite, RootWrite};
pub use engine::{Engine, Item, ScanPage};
pub use error::{Error, Result};
pub use families::{CHUNK_KEY_EXTRA, FAMILY_META_AUX_LEN, FAMILY_META_LEN, Family};
pub use filter::{CompactionFilter, FilterRecord, Verdict};
pub use format::record::{MAX_KEY_LEN, MAX_META_LEN, MAX_VALUE_LEN, NAMESPACES, ValueType};
pub use hot::HotStats;
pub use inthash::{IntHash, IntHasher};
pub use options::{
    DEFAULT_HOT_BYTES, Fsync, MAX_SEGMENT_BYTES, MIN_SEGMENT_BYTES, Options, PolicyFactory,
};
pub use policy::{EvictionPolicy, PolicyKind};
pub use prefetch::{FileToken, RecordRead};
pub use stats::{Stats, stripe_count, thread_stripe};

/// Bytes of index memory per key slot (the figure the DRAM budget is made of).
pub const INDEX_SLOT_BYTES: usize = std::mem::size_of::<keydir::Slot>();
