//! The I/O seam: every byte the engine reads or writes goes through [`Storage`] and
//! [`FileHandle`], so tests can inject faults and another backend (io_uring) can slot in
//! without touching the engine's logic.

mod fault;
mod std_fs;

pub use fault::{CrashMode, FaultStorage};
pub use std_fs::StdStorage;

use std::any::Any;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One open file. Positional reads and writes only: there is no shared cursor, so
/// concurrent readers never contend on the handle.
pub trait FileHandle: Send + Sync {
    /// Fills `buf` from `offset`; a short file is an `UnexpectedEof` error.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes everything written so far durable (`fdatasync`).
    fn sync(&self) -> io::Result<()>;
    /// The file's current length.
    fn size(&self) -> io::Result<u64>;
    /// Cuts (or extends with zeros) the file to `len` bytes.
    fn truncate(&self, len: u64) -> io::Result<()>;
    /// Fills `buf` from `offset` only if that cannot wait for the device (the bytes are
    /// in the page cache): `Ok(false)` when it would wait, when only part was cached, or
    /// where the file system cannot tell. Backends without a device read in full.
    fn read_cached_at(&self, buf: &mut [u8], offset: u64) -> io::Result<bool> {
        self.read_exact_at(buf, offset).map(|()| true)
    }
    /// A descriptor of its own for the same file, for a reader that submits its own
    /// I/O (io_uring); `None` for backends that are not an OS file.
    fn try_clone_file(&self) -> Option<io::Result<std::fs::File>> {
        None
    }
}

/// How [`Storage::open`] opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    ReadWrite,
    /// Read and write; the file must not exist yet.
    CreateNew,
}

/// A held directory lock; dropping it releases the lock.
pub type LockGuard = Box<dyn Any + Send + Sync>;

/// The file system as the engine sees it.
pub trait Storage: Send + Sync {
    /// Opens `path` in `mode`.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FileHandle>>;
    /// Creates `dir` and its parents if they are missing.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The names (not paths) of the files directly inside `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Atomically replaces `to` with `from`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file; a missing file is not an error.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on `path` (creating it), or fails with `WouldBlock`
    /// when someone else holds it.
    fn lock(&self, path: &Path) -> io::Result<LockGuard>;
}

/// Joins a file name onto a directory; a helper so call sites stay short.
pub(crate) fn join(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// Replaces `dir/name` with `bytes` atomically: temp file, sync, rename, sync directory.
/// A crash at any point leaves either the old file or the new one, never a mix.
pub(crate) fn write_atomic(
    storage: &dyn Storage,
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> io::Result<()> {
    let tmp = join(dir, &format!("{name}.tmp"));
    storage.remove(&tmp)?;
    let f = storage.open(&tmp, OpenMode::CreateNew)?;
    f.write_all_at(bytes, 0)?;
    f.sync()?;
    drop(f);
    storage.rename(&tmp, &join(dir, name))?;
    storage.sync_dir(dir)
}
