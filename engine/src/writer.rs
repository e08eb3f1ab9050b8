//! The append path: one writer at a time appends records to the active segment's write
//! buffer (handed to the file when it reaches 64 KiB, on `flush_writes`, before a sync,
//! and every maintenance tick), seals the segment when full, and makes writes durable by
//! the configured policy. Under `fsync always`, writers that arrive while a sync runs
//! share the next one (group commit). A failed write or sync poisons the engine for
//! writes until it is reopened.

use crate::engine::Inner;
use crate::error::{Error, Result};
use crate::format::file_header::{self, FileKind, HEADER_LEN as FILE_HEADER_LEN};
use crate::io::{OpenMode, join};
use crate::options::Fsync;
use crate::segment::{Segment, segment_name};
use crate::stats::Counters;
use parking_lot::MutexGuard;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

pub(crate) struct Writer {
    pub active: Arc<Segment>,
    /// Bytes appended since open, over all segments: the log sequence number that
    /// durability waits are expressed in.
    pub lsn: u64,
    pub next_id: u32,
}

/// Records appended to the active segment but not yet handed to its file. Readers
/// find a record here when it lies past the segment's `written` mark.
pub(crate) struct Tail {
    pub seg: u32,
    /// File offset of `data[0]`.
    pub start: u64,
    pub data: Vec<u8>,
}

/// The write buffer is handed to the file once it holds this much.
const TAIL_FLUSH_BYTES: usize = 64 << 10;

pub(crate) struct SyncState {
    pub synced_lsn: u64,
    pub in_progress: bool,
    pub last_sync: Instant,
}

impl Inner {
    pub fn check_writable(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if self.poisoned.load(Ordering::Acquire) {
            let why = self.poison.lock().clone().unwrap_or_default();
            return Err(Error::Poisoned(why));
        }
        Ok(())
    }

    pub fn poison(&self, why: String) {
        tracing::error!(reason = %why, "refusing further writes until the engine is reopened");
        let mut p = self.poison.lock();
        if p.is_none() {
            *p = Some(why);
        }
        self.poisoned.store(true, Ordering::Release);
    }

    pub fn lock_writer(&self) -> Result<MutexGuard<'_, Writer>> {
        self.check_writable()?;
        let w = self.writer.lock();
        // Checked again: a failure may have happened while we queued for the lock.
        self.check_writable()?;
        Ok(w)
    }

    /// Appends one encoded record; returns the segment and offset it landed at.
    pub fn append_locked(&self, w: &mut Writer, rec: &[u8]) -> Result<(Arc<Segment>, u32)> {
        let off = w.active.len();
        if off > FILE_HEADER_LEN as u64 && off + rec.len() as u64 > self.opts.segment_bytes {
            self.roll(w)?;
        }
        let seg = w.active.clone();
        let off = seg.len();
        let buffered = self.tail.read().data.len();
        if buffered > 0 && buffered + rec.len() > TAIL_FLUSH_BYTES {
            self.flush_tail(w)?;
        }
        if rec.len() >= TAIL_FLUSH_BYTES {
            // Large records skip the buffer (which the flush above left empty).
            if let Err(e) = seg.file.write_all_at(rec, off) {
                self.poison(format!("write to {} failed: {e}", seg.path.display()));
                return Err(Error::io("write", &seg.path, e));
            }
            seg.written.store(off + rec.len() as u64, Ordering::Release);
            self.tail.write().start = off + rec.len() as u64;
        } else {
            self.tail.write().data.extend_from_slice(rec);
        }
        seg.len.store(off + rec.len() as u64, Ordering::Release);
        w.lsn += rec.len() as u64;
        self.disk_bytes
            .fetch_add(rec.len() as u64, Ordering::Relaxed);
        Counters::add(&self.counters.bytes_written, rec.len() as u64);
        Ok((seg, off as u32))
    }

    /// Hands the write buffer to the active segment's file. A failure poisons the
    /// engine: buffered records were already acknowledged and cannot be retried safely.
    pub fn flush_tail(&self, w: &Writer) -> Result<()> {
        let mut t = self.tail.write();
        if t.data.is_empty() {
            return Ok(());
        }
        let seg = &w.active;
        debug_assert_eq!(t.seg, seg.id);
        if let Err(e) = seg.file.write_all_at(&t.data, t.start) {
            self.poison(format!("write to {} failed: {e}", seg.path.display()));
            return Err(Error::io("write", &seg.path, e));
        }
        let end = t.start + t.data.len() as u64;
        seg.written.store(end, Ordering::Release);
        t.start = end;
        t.data.clear();
        if t.data.capacity() > 4 * TAIL_FLUSH_BYTES {
            t.data.shrink_to(TAIL_FLUSH_BYTES);
        }
        Ok(())
    }

    /// Reads `buf.len()` bytes of `seg` at `off`, from the write buffer if they are
    /// still there. A record is never split between buffer and file.
    pub fn read_exact(&self, seg: &Segment, off: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let end = off + buf.len() as u64;
        if end > seg.written.load(Ordering::Acquire) {
            let t = self.tail.read();
            if t.seg == seg.id && off >= t.start && end <= t.start + t.data.len() as u64 {
                let s = (off - t.start) as usize;
                buf.copy_from_slice(&t.data[s..s + buf.len()]);
                return Ok(());
            }
        }
        seg.file.read_exact_at(buf, off)
    }

    /// Seals the active segment (synced, hint queued) and starts a new one.
    pub fn roll(&self, w: &mut Writer) -> Result<()> {
        self.flush_tail(w)?;
        let old = w.active.clone();
        if let Err(e) = old.file.sync() {
            self.poison(format!("sync of {} failed: {e}", old.path.display()));
            return Err(Error::io("sync", &old.path, e));
        }
        Counters::bump(&self.counters.syncs);
        self.counters
            .last_sync_ms
            .store(self.now_ms(), Ordering::Relaxed);
        {
            let mut s = self.sync.lock();
            s.synced_lsn = s.synced_lsn.max(w.lsn);
        }
        let seg = self.create_segment(w.next_id)?;
        w.next_id += 1;
        self.start_tail(&seg);
        w.active = seg;
        self.pending_hints.lock().push(old.id);
        Ok(())
    }

    /// Creates segment `id` with its header, durable in its directory.
    pub fn create_segment(&self, id: u32) -> Result<Arc<Segment>> {
        let path = join(&self.opts.dir, &segment_name(id));
        let storage = self.opts.storage.as_ref();
        let file = storage
            .open(&path, OpenMode::CreateNew)
            .map_err(|e| Error::io("create", &path, e))?;
        let header = file_header::encode(FileKind::Segment, id);
        file.write_all_at(&header, 0)
            .and_then(|()| file.sync())
            .and_then(|()| storage.sync_dir(&self.opts.dir))
            .map_err(|e| Error::io("create", &path, e))?;
        let seg = Arc::new(Segment::new(id, path, file, FILE_HEADER_LEN as u64));
        self.segments.write().insert(id, seg.clone());
        self.disk_bytes
            .fetch_add(FILE_HEADER_LEN as u64, Ordering::Relaxed);
        Ok(seg)
    }

    /// Points the (empty) write buffer at the end of `seg`, the new active segment.
    pub fn start_tail(&self, seg: &Segment) {
        let mut t = self.tail.write();
        debug_assert!(t.data.is_empty());
        t.seg = seg.id;
        t.start = seg.len();
    }

    /// Hands buffered writes to the OS (not a sync): after this, a crash of the process
    /// (not of the machine) loses nothing written so far.
    pub fn flush_writes(&self) -> Result<()> {
        let w = self.lock_writer()?;
        self.flush_tail(&w)
    }

    /// Called after a write released the writer: waits for durability if the policy
    /// asks for it.
    pub fn after_write(&self, lsn: u64) -> Result<()> {
        match self.opts.fsync {
            Fsync::Always => self.wait_durable(lsn),
            Fsync::EverySec | Fsync::Never => Ok(()),
        }
    }

    /// Syncs everything appended so far.
    pub fn sync_now(&self) -> Result<()> {
        let lsn = self.writer.lock().lsn;
        self.wait_durable(lsn)
    }

    /// Returns once every byte up to `lsn` is durable. One caller at a time syncs; the
    /// others wait and are usually covered by that sync (group commit).
    pub fn wait_durable(&self, lsn: u64) -> Result<()> {
        let mut st = self.sync.lock();
        loop {
            if st.synced_lsn >= lsn {
                return Ok(());
            }
            if self.poisoned.load(Ordering::Acquire) {
                drop(st);
                return self.check_writable();
            }
            if st.in_progress {
                self.sync_cv.wait(&mut st);
                continue;
            }
            st.in_progress = true;
            drop(st);
            let flushed = {
                let w = self.writer.lock();
                self.flush_tail(&w).map(|()| (w.active.clone(), w.lsn))
            };
            let result = match &flushed {
                Ok((seg, _)) => seg.file.sync(),
                Err(_) => Ok(()),
            };
            let (seg, target) = match flushed {
                Ok(v) => v,
                Err(e) => {
                    st = self.sync.lock();
                    st.in_progress = false;
                    self.sync_cv.notify_all();
                    return Err(e);
                }
            };
            st = self.sync.lock();
            st.in_progress = false;
            st.last_sync = Instant::now();
            match result {
                Ok(()) => {
                    Counters::bump(&self.counters.syncs);
                    self.counters
                        .last_sync_ms
                        .store(self.now_ms(), std::sync::atomic::Ordering::Relaxed);
                    st.synced_lsn = st.synced_lsn.max(target);
                }
                Err(e) => {
                    self.poison(format!("sync of {} failed: {e}", seg.path.display()));
                    self.sync_cv.notify_all();
                    return Err(Error::io("sync", &seg.path, e));
                }
            }
            self.sync_cv.notify_all();
        }
    }
}
