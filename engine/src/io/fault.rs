//! A fault-injecting, in-memory backend for tests: it fails the Nth write or sync on
//! request and, on a simulated crash, keeps only what was synced (optionally plus a torn
//! prefix of what was not). Directory operations are taken as durable at once; file
//! contents are durable only after `sync`.

use super::{FileHandle, LockGuard, OpenMode, Storage};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What survives of unsynced bytes when [`FaultStorage::crash`] is called.
#[derive(Debug, Clone, Copy)]
pub enum CrashMode {
    /// Every byte written since the file's last sync is lost.
    DropUnsynced,
    /// A pseudo-random prefix (chosen from `seed`) of each file's unsynced tail
    /// survives, as after a power cut in the middle of writeback.
    TornTail {
        /// Seed for the choice of prefix lengths.
        seed: u64,
    },
}

#[derive(Default)]
struct MemFileState {
    data: Vec<u8>,
    durable: Vec<u8>,
}

struct MemFile {
    state: Mutex<MemFileState>,
    faults: Arc<Faults>,
}

struct Shared {
    files: Mutex<HashMap<PathBuf, Arc<MemFile>>>,
    locks: Mutex<HashSet<PathBuf>>,
    faults: Arc<Faults>,
}

/// Kept apart from `Shared` so files can point at it without a reference cycle.
struct Faults {
    writes: AtomicU64,
    syncs: AtomicU64,
    fail_write_at: AtomicU64,
    fail_sync_at: AtomicU64,
    sync_delay_us: AtomicU64,
    /// Whether reads that must not wait find nothing in the (imaginary) page cache.
    cold: std::sync::atomic::AtomicBool,
}

/// The in-memory, fault-injecting [`Storage`]. Cloning shares the same files.
#[derive(Clone)]
pub struct FaultStorage {
    shared: Arc<Shared>,
}

impl Default for FaultStorage {
    fn default() -> Self {
        Self::new()
    }
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("injected {what} failure"))
}

impl FaultStorage {
    /// An empty file system with no faults armed.
    pub fn new() -> Self {
        FaultStorage {
            shared: Arc::new(Shared {
                files: Mutex::new(HashMap::new()),
                locks: Mutex::new(HashSet::new()),
                faults: Arc::new(Faults {
                    writes: AtomicU64::new(0),
                    syncs: AtomicU64::new(0),
                    fail_write_at: AtomicU64::new(u64::MAX),
                    fail_sync_at: AtomicU64::new(u64::MAX),
                    sync_delay_us: AtomicU64::new(0),
                    cold: std::sync::atomic::AtomicBool::new(false),
                }),
            }),
        }
    }

    /// Makes the `n`th write from now (1 = the next one) fail after writing half of its
    /// bytes, like a device that dies mid-request.
    pub fn fail_nth_write(&self, n: u64) {
        let now = self.shared.faults.writes.load(Ordering::SeqCst);
        self.shared
            .faults
            .fail_write_at
            .store(now + n.max(1), Ordering::SeqCst);
    }

    /// Makes the `n`th sync from now (1 = the next one) fail; the bytes it should have
    /// made durable stay volatile.
    pub fn fail_nth_sync(&self, n: u64) {
        let now = self.shared.faults.syncs.load(Ordering::SeqCst);
        self.shared
            .faults
            .fail_sync_at
            .store(now + n.max(1), Ordering::SeqCst);
    }

    /// Makes every sync take `d`, like a real device, so tests can watch syncs overlap.
    pub fn set_sync_delay(&self, d: std::time::Duration) {
        self.shared
            .faults
            .sync_delay_us
            .store(d.as_micros() as u64, Ordering::SeqCst);
    }

    /// With `true`, a read that must not wait for the device
    /// ([`FileHandle::read_cached_at`]) finds nothing cached, as after the page cache
    /// was dropped.
    pub fn set_cold(&self, cold: bool) {
        self.shared.faults.cold.store(cold, Ordering::SeqCst);
    }

    /// Disarms every pending fault.
    pub fn heal(&self) {
        self.shared
            .faults
            .fail_write_at
            .store(u64::MAX, Ordering::SeqCst);
        self.shared
            .faults
            .fail_sync_at
            .store(u64::MAX, Ordering::SeqCst);
    }

    /// Writes done so far.
    pub fn writes(&self) -> u64 {
        self.shared.faults.writes.load(Ordering::SeqCst)
    }

    /// Syncs done so far.
    pub fn syncs(&self) -> u64 {
        self.shared.faults.syncs.load(Ordering::SeqCst)
    }

    /// The machine "loses power": returns a new storage holding what survived, with no
    /// locks held and no faults armed. The old storage keeps working for handles that
    /// are still open, but nothing they do reaches the new one.
    pub fn crash(&self, mode: CrashMode) -> FaultStorage {
        let fresh = FaultStorage::new();
        let mut rng = match mode {
            CrashMode::DropUnsynced => 0,
            CrashMode::TornTail { seed } => seed | 1,
        };
        let files = self.shared.files.lock();
        let mut names: Vec<&PathBuf> = files.keys().collect();
        names.sort();
        let mut out = fresh.shared.files.lock();
        for name in names {
            let state = files[name].state.lock();
            let mut survived = state.durable.clone();
            if rng != 0 && state.data.starts_with(&state.durable) {
                let tail = &state.data[state.durable.len()..];
                if !tail.is_empty() {
                    rng = xorshift(rng);
                    let keep = (rng % (tail.len() as u64 + 1)) as usize;
                    survived.extend_from_slice(&tail[..keep]);
                }
            }
            out.insert(
                name.clone(),
                Arc::new(MemFile {
                    state: Mutex::new(MemFileState {
                        durable: survived.clone(),
                        data: survived,
                    }),
                    faults: fresh.shared.faults.clone(),
                }),
            );
        }
        drop(out);
        fresh
    }

    /// A copy of a file's current bytes, for tests that inspect or corrupt files.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let files = self.shared.files.lock();
        files.get(path).map(|f| f.state.lock().data.clone())
    }

    /// Replaces a file's bytes (current and durable), for corruption tests.
    pub fn write_file(&self, path: &Path, bytes: Vec<u8>) {
        let mut files = self.shared.files.lock();
        let file = files.entry(path.to_path_buf()).or_insert_with(|| {
            Arc::new(MemFile {
                state: Mutex::new(MemFileState::default()),
                faults: self.shared.faults.clone(),
            })
        });
        let mut state = file.state.lock();
        state.durable = bytes.clone();
        state.data = bytes;
    }
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

impl FileHandle for MemFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let state = self.state.lock();
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let end = start
            .checked_add(buf.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        if end > state.data.len() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.copy_from_slice(&state.data[start..end]);
        Ok(())
    }

    fn read_cached_at(&self, buf: &mut [u8], offset: u64) -> io::Result<bool> {
        if self.faults.cold.load(Ordering::SeqCst) {
            return Ok(false);
        }
        self.read_exact_at(buf, offset).map(|()| true)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let n = self.faults.writes.fetch_add(1, Ordering::SeqCst) + 1;
        let fail = n == self.faults.fail_write_at.load(Ordering::SeqCst);
        let buf = if fail { &buf[..buf.len() / 2] } else { buf };
        let mut state = self.state.lock();
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        let end = start + buf.len();
        if state.data.len() < end {
            state.data.resize(end, 0);
        }
        state.data[start..end].copy_from_slice(buf);
        if fail {
            return Err(injected("write"));
        }
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        let delay = self.faults.sync_delay_us.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(std::time::Duration::from_micros(delay));
        }
        let n = self.faults.syncs.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.faults.fail_sync_at.load(Ordering::SeqCst) {
            return Err(injected("sync"));
        }
        let mut state = self.state.lock();
        state.durable = state.data.clone();
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.state.lock().data.len() as u64)
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
        self.state.lock().data.resize(len, 0);
        Ok(())
    }
}

struct MemLock {
    path: PathBuf,
    shared: Arc<Shared>,
}

impl Drop for MemLock {
    fn drop(&mut self) {
        self.shared.locks.lock().remove(&self.path);
    }
}

impl Storage for FaultStorage {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FileHandle>> {
        let mut files = self.shared.files.lock();
        match (files.get(path), mode) {
            (Some(_), OpenMode::CreateNew) => Err(io::ErrorKind::AlreadyExists.into()),
            (Some(f), _) => Ok(f.clone()),
            (None, OpenMode::CreateNew) => {
                let f = Arc::new(MemFile {
                    state: Mutex::new(MemFileState::default()),
                    faults: self.shared.faults.clone(),
                });
                files.insert(path.to_path_buf(), f.clone());
                Ok(f)
            }
            (None, _) => Err(io::ErrorKind::NotFound.into()),
        }
    }

    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let files = self.shared.files.lock();
        Ok(files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut files = self.shared.files.lock();
        let f = files.remove(from).ok_or(io::ErrorKind::NotFound)?;
        files.insert(to.to_path_buf(), f);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.shared.files.lock().remove(path);
        Ok(())
    }

    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    fn lock(&self, path: &Path) -> io::Result<LockGuard> {
        if !self.shared.locks.lock().insert(path.to_path_buf()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(Box::new(MemLock {
            path: path.to_path_buf(),
            shared: self.shared.clone(),
        }))
    }
}
