//! The log owns the segments, the one writer and its 64 KiB write buffer, sealing,
//! durability (group commit under `fsync always`), refusing writes after a failed write
//! (until a retry gives up the unwritten buffer) or a failed sync (until reopen),
//! the hint files still to write, and the disk accounting (counted here and nowhere else).

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::format::file_header::{self, FileKind, HEADER_LEN as FILE_HEADER_LEN};
use crate::format::record::{HEADER_LEN as RECORD_HEADER_LEN, Header, Kind};
use crate::format::sync_mark::{self, Mark};
use crate::io::{FileHandle, OpenMode, Storage, join};
use crate::keydir::Slot;
use crate::options::{Fsync, Options};
use crate::segment::{Segment, segment_name};
use crate::stats::Counters;
use parking_lot::{Condvar, Mutex, MutexGuard, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    /// Where the log is known to be on disk, as a position (see [`Log::synced_mark`]).
    pub synced_at: Mark,
    pub in_progress: bool,
    pub last_sync: Instant,
}

/// The open `SYNCED` file and what it was last given.
#[derive(Default)]
struct MarkFile {
    handle: Option<Arc<dyn FileHandle>>,
    written: Option<Mark>,
}

/// Why writes are refused.
#[derive(Clone)]
struct Poison {
    why: String,
    /// A failed hand-over to the file (ENOSPC, EIO on write): the data is still ours,
    /// so writing can resume. A failed sync cannot: the kernel may have dropped pages.
    retryable: bool,
}

/// The log's own figures.
#[derive(Default)]
pub(crate) struct LogCounters {
    pub syncs: AtomicU64,
    pub bytes_written: AtomicU64,
    pub last_sync_ms: AtomicU64,
}

/// The segments and everything that appends to them, syncs them and counts their bytes.
pub(crate) struct Log {
    dir: PathBuf,
    storage: Arc<dyn Storage>,
    segment_bytes: u64,
    fsync: Fsync,
    clock: Arc<dyn Clock>,
    segments: RwLock<BTreeMap<u32, Arc<Segment>>>,
    writer: Mutex<Writer>,
    tail: RwLock<Tail>,
    sync: Mutex<SyncState>,
    sync_cv: Condvar,
    poison: Mutex<Option<Poison>>,
    poisoned: AtomicBool,
    /// A failure was logged and no write has reached the file since.
    failure_logged: AtomicBool,
    /// Bumped each time unflushed records are given up (see [`Log::generation`]).
    generation: AtomicU64,
    closed: AtomicBool,
    pending_hints: Mutex<Vec<u32>>,
    /// The `SYNCED` file and the mark it holds.
    mark_file: Mutex<MarkFile>,
    /// When refused writes were last retried from a write attempt.
    last_retry: Mutex<Option<Instant>>,
    /// Bytes of segment and hint files.
    disk_bytes: AtomicU64,
    pub counters: LogCounters,
}

impl Log {
    /// An empty log over `opts.dir`; recovery adds the segments found there and then
    /// names the active one ([`Log::activate`]).
    pub fn new(opts: &Options) -> Log {
        Log {
            dir: opts.dir.clone(),
            storage: opts.storage.clone(),
            segment_bytes: opts.segment_bytes,
            fsync: opts.fsync,
            clock: opts.clock.clone(),
            segments: RwLock::new(BTreeMap::new()),
            tail: RwLock::new(Tail {
                seg: 0,
                start: 0,
                data: Vec::new(),
            }),
            writer: Mutex::new(Writer {
                active: Segment::placeholder(),
                lsn: 0,
                next_id: 1,
            }),
            sync: Mutex::new(SyncState {
                synced_lsn: 0,
                synced_at: Mark::default(),
                in_progress: false,
                last_sync: Instant::now(),
            }),
            sync_cv: Condvar::new(),
            poison: Mutex::new(None),
            poisoned: AtomicBool::new(false),
            failure_logged: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            pending_hints: Mutex::new(Vec::new()),
            mark_file: Mutex::new(MarkFile::default()),
            last_retry: Mutex::new(None),
            disk_bytes: AtomicU64::new(0),
            counters: LogCounters::default(),
        }
    }

    /// Makes `active` the segment appends go to, with ids continuing from `next_id`,
    /// and counts the directory's bytes from the segments recovery found.
    pub fn activate(&self, active: Arc<Segment>, next_id: u32) {
        {
            let mut w = self.writer.lock();
            w.next_id = active.id.max(next_id.saturating_sub(1)) + 1;
            self.start_tail(&active);
            w.active = active;
        }
        let disk: u64 = self
            .segments
            .read()
            .values()
            .map(|s| s.len() + s.hint_bytes.load(Ordering::Relaxed))
            .sum();
        self.disk_bytes.store(disk, Ordering::Relaxed);
    }

    /// Adds a segment found at open.
    pub fn insert_segment(&self, seg: Arc<Segment>) {
        self.segments.write().insert(seg.id, seg);
    }

    /// Segment `id`, if it still exists.
    pub fn segment(&self, id: u32) -> Option<Arc<Segment>> {
        self.segments.read().get(&id).cloned()
    }

    /// Every segment, oldest first.
    pub fn segments(&self) -> Vec<Arc<Segment>> {
        self.segments.read().values().cloned().collect()
    }

    /// How many segments there are.
    pub fn segment_count(&self) -> usize {
        self.segments.read().len()
    }

    /// The active segment.
    pub fn active(&self) -> Arc<Segment> {
        self.writer.lock().active.clone()
    }

    /// Bytes of segment and hint files.
    pub fn disk_bytes(&self) -> u64 {
        self.disk_bytes.load(Ordering::Relaxed)
    }

    /// Drops a segment the compactor emptied: out of the map (readers that still hold
    /// it finish), its hint forgotten, its files' bytes uncounted. The caller removes
    /// the files.
    pub fn remove_segment(&self, seg: &Segment) {
        self.segments.write().remove(&seg.id);
        self.pending_hints.lock().retain(|&id| id != seg.id);
        let freed = seg.len() + seg.hint_bytes.load(Ordering::Relaxed);
        self.disk_bytes.fetch_sub(freed, Ordering::Relaxed);
    }

    /// A hint file of `seg` of `bytes` bytes replaced any earlier one.
    pub fn hint_written(&self, seg: &Segment, bytes: u64) {
        let old = seg.hint_bytes.swap(bytes, Ordering::Relaxed);
        self.disk_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.disk_bytes.fetch_sub(old, Ordering::Relaxed);
    }

    /// Queues the hint file of sealed segment `id`.
    pub fn queue_hint(&self, id: u32) {
        let mut p = self.pending_hints.lock();
        if !p.contains(&id) {
            p.push(id);
        }
    }

    /// No hint is to be written for `id` (it has one, or is active again).
    pub fn forget_hint(&self, id: u32) {
        self.pending_hints.lock().retain(|&p| p != id);
    }

    /// The hint files still to write, taken.
    pub fn take_pending_hints(&self) -> Vec<u32> {
        std::mem::take(&mut *self.pending_hints.lock())
    }

    /// Counts a slot's record as garbage in its segment.
    pub fn mark_dead(&self, slot: &Slot) {
        if let Some(seg) = self.segment(slot.seg) {
            seg.add_dead(slot.len as u64);
        }
    }

    /// Marks many slots dead with one pass over the segment map.
    pub fn mark_dead_all(&self, slots: impl IntoIterator<Item = Slot>) {
        let mut per_seg: HashMap<u32, u64> = HashMap::new();
        for s in slots {
            *per_seg.entry(s.seg).or_default() += s.len as u64;
        }
        let segs = self.segments.read();
        for (id, bytes) in per_seg {
            if let Some(seg) = segs.get(&id) {
                seg.add_dead(bytes);
            }
        }
    }

    /// Whether a write or sync failed.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// Whether [`Log::close`] ran.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Refuses writes from now on; returns whether it was already closed.
    pub fn close(&self) -> bool {
        self.closed.swap(true, Ordering::AcqRel)
    }

    /// Whether the last sync is a second old (for `fsync everysec`).
    pub fn sync_due(&self) -> bool {
        self.fsync == Fsync::EverySec
            && self.sync.lock().last_sync.elapsed() >= std::time::Duration::from_secs(1)
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    pub fn check_writable(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned(self.write_error().unwrap_or_default()));
        }
        Ok(())
    }

    /// Refuses writes until the engine is reopened (a failed sync).
    pub fn poison(&self, why: String) {
        self.refuse(why, false);
    }

    /// Refuses writes until a retry can hand the data to the file (a failed write).
    fn poison_write(&self, why: String) {
        self.refuse(why, true);
    }

    /// Logged once per outage, not for every write refused or every failed retry.
    fn refuse(&self, why: String, retryable: bool) {
        let mut p = self.poison.lock();
        if p.is_none() {
            if !self.failure_logged.swap(true, Ordering::AcqRel) {
                if retryable {
                    tracing::error!(reason = %why, "refusing writes; retrying every second");
                } else {
                    tracing::error!(reason = %why, "refusing further writes until the engine is reopened");
                }
            }
            *p = Some(Poison { why, retryable });
            if retryable {
                // Write attempts retry from a moment after the failure, not at once.
                *self.last_retry.lock() = Some(Instant::now());
            }
        }
        self.poisoned.store(true, Ordering::Release);
    }

    /// Why writes are refused, if they are.
    pub fn write_error(&self) -> Option<String> {
        if !self.is_poisoned() {
            return None;
        }
        self.poison.lock().as_ref().map(|p| {
            if p.retryable {
                format!("{} (retrying)", p.why)
            } else {
                format!("{}; reopen the engine to write again", p.why)
            }
        })
    }

    /// Whether writes are refused after a failed write that a retry may clear.
    pub fn retryable(&self) -> bool {
        self.is_poisoned() && self.poison.lock().as_ref().is_some_and(|p| p.retryable)
    }

    /// The writer, refused or not (for the retry after a failed write).
    pub fn lock_writer_unchecked(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock()
    }

    /// The puts still in the write buffer, as (namespace, key, offset): what a retry
    /// gives up, read from the buffer itself so the index need not be swept.
    pub fn unflushed_puts(&self, w: &Writer) -> Vec<(u8, Vec<u8>, u32)> {
        debug_assert_eq!(self.tail.read().seg, w.active.id);
        let t = self.tail.read();
        let mut out = Vec::new();
        let mut at = 0usize;
        while let Some(h) = t.data.get(at..).and_then(Header::parse) {
            let end = at + h.total_len();
            if end > t.data.len() {
                break;
            }
            if h.kind == Kind::Put {
                let key = t.data
                    [at + RECORD_HEADER_LEN..at + RECORD_HEADER_LEN + h.key_len as usize]
                    .to_vec();
                out.push((h.ns, key, (t.start + at as u64) as u32));
            }
            at = end;
        }
        out
    }

    /// Whether a write attempt should retry refused writes now: they are refused
    /// after a failed write, and the last retry was at least `every` ago.
    pub fn retry_due(&self, every: std::time::Duration) -> bool {
        if !self.retryable() {
            return false;
        }
        let mut last = self.last_retry.lock();
        if last.is_some_and(|t| t.elapsed() < every) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    /// Gives up what a failed hand-over left in the write buffer (its writes were
    /// refused, so none was acknowledged): the active segment ends where the file's
    /// good bytes end, and the next write goes there. The caller has dropped the index's
    /// slots in that region first.
    pub fn discard_unflushed(&self, w: &Writer) -> u64 {
        let mut t = self.tail.write();
        let seg = &w.active;
        let cut = seg.len().saturating_sub(t.start);
        t.data.clear();
        seg.len.store(t.start, Ordering::Release);
        seg.written.fetch_min(t.start, Ordering::AcqRel);
        self.disk_bytes.fetch_sub(cut, Ordering::Relaxed);
        self.generation.fetch_add(1, Ordering::AcqRel);
        cut
    }

    /// Changes whenever records that had not reached the file were given up: a caller
    /// that appended before and flushes after must not report its writes as done if it
    /// changed in between.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Accepts writes again after [`Log::discard_unflushed`]; a write that fails again
    /// refuses them again.
    pub fn resume(&self) {
        let mut p = self.poison.lock();
        if p.as_ref().is_some_and(|p| p.retryable) {
            *p = None;
            self.poisoned.store(false, Ordering::Release);
        }
    }

    /// A write reached the file: the outage, if any, is over.
    fn written_ok(&self) {
        if self.failure_logged.load(Ordering::Acquire)
            && !self.is_poisoned()
            && self.failure_logged.swap(false, Ordering::AcqRel)
        {
            tracing::info!("writes reach the data file again");
        }
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
        if off > FILE_HEADER_LEN as u64 && off + rec.len() as u64 > self.segment_bytes {
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
                self.poison_write(format!("write to {} failed: {e}", seg.path.display()));
                return Err(Error::io("write", &seg.path, e));
            }
            self.written_ok();
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
            self.poison_write(format!("write to {} failed: {e}", seg.path.display()));
            return Err(Error::io("write", &seg.path, e));
        }
        self.written_ok();
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
            s.synced_at = s.synced_at.max(Mark {
                seg: old.id,
                len: old.len(),
            });
        }
        let seg = match self.create_segment(w.next_id) {
            Ok(seg) => seg,
            Err(e) => {
                // A full disk can strike here too: refuse writes (and retry) as for a
                // failed write; what was appended is synced in the old segment.
                self.poison_write(e.to_string());
                return Err(Error::Poisoned(e.to_string()));
            }
        };
        w.next_id += 1;
        self.start_tail(&seg);
        w.active = seg;
        self.queue_hint(old.id);
        self.append_seal(w, &old)
    }

    /// Starts the (new, empty) active segment with the seal record of `sealed`.
    pub fn append_seal(&self, w: &mut Writer, sealed: &Segment) -> Result<()> {
        let rec = crate::format::record::seal(sealed.id, sealed.len());
        let (seg, _) = self.append_locked(w, &rec)?;
        seg.add_dead(rec.len() as u64);
        Ok(())
    }

    /// Creates segment `id` with its header, durable in its directory.
    pub fn create_segment(&self, id: u32) -> Result<Arc<Segment>> {
        let path = join(&self.dir, &segment_name(id));
        let storage = self.storage.as_ref();
        let file = storage
            .open(&path, OpenMode::CreateNew)
            .map_err(|e| Error::io("create", &path, e))?;
        let header = file_header::encode(FileKind::Segment, id);
        if let Err(e) = file
            .write_all_at(&header, 0)
            .and_then(|()| file.sync())
            .and_then(|()| storage.sync_dir(&self.dir))
        {
            // Leave no half-made segment behind: the retry creates it again.
            drop(file);
            let _ = storage.remove(&path);
            return Err(Error::io("create", &path, e));
        }
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
        match self.fsync {
            Fsync::Always => self.wait_durable(lsn),
            Fsync::EverySec | Fsync::Never => Ok(()),
        }
    }

    /// How far the log is known to be on disk: segment `seg` up to `len`, and every
    /// older segment whole.
    pub fn synced_mark(&self) -> Mark {
        self.sync.lock().synced_at
    }

    /// Recovery found (and synced) the log up to `mark`.
    pub fn set_synced_mark(&self, mark: Mark) {
        let mut st = self.sync.lock();
        st.synced_at = st.synced_at.max(mark);
    }

    /// Writes the sync mark to its file if it moved. Without `durable` the file is not
    /// synced: a mark that lags after a power cut only makes recovery more lenient
    /// about a tail, never wrong about synced bytes.
    pub fn persist_sync_mark(&self, durable: bool) -> Result<()> {
        let mark = self.synced_mark();
        let mut mf = self.mark_file.lock();
        if mf.written == Some(mark) && !durable {
            return Ok(());
        }
        let path = join(&self.dir, sync_mark::FILE_NAME);
        let handle = match &mf.handle {
            Some(h) => h.clone(),
            None => {
                let h = match self.storage.open(&path, OpenMode::ReadWrite) {
                    Ok(h) => h,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => self
                        .storage
                        .open(&path, OpenMode::CreateNew)
                        .and_then(|h| self.storage.sync_dir(&self.dir).map(|()| h))
                        .map_err(|e| Error::io("create", &path, e))?,
                    Err(e) => return Err(Error::io("open", &path, e)),
                };
                mf.handle = Some(h.clone());
                h
            }
        };
        handle
            .write_all_at(&sync_mark::encode(mark), 0)
            .and_then(|()| if durable { handle.sync() } else { Ok(()) })
            .map_err(|e| Error::io("write", &path, e))?;
        mf.written = Some(mark);
        Ok(())
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
                self.flush_tail(&w)
                    .map(|()| (w.active.clone(), w.lsn, w.active.len()))
            };
            let result = match &flushed {
                Ok((seg, _, _)) => seg.file.sync(),
                Err(_) => Ok(()),
            };
            let (seg, target, len) = match flushed {
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
                    st.synced_at = st.synced_at.max(Mark { seg: seg.id, len });
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
