//! Reads done ahead of the command that needs them, for a server that does its own
//! asynchronous I/O: a read-only command first runs without waiting for the device
//! ([`Engine::run_ahead`] with `nowait`), which answers from memory and the page cache
//! and lists the records it would have waited for; the server reads those however it
//! likes, and runs the command again with the bytes lent, which the usual read path
//! checks (CRC, key, expiry) as it checks its own reads.

use crate::engine::Engine;
use crate::keydir::Slot;
use crate::segment::Segment;
use std::cell::RefCell;
use std::sync::{Arc, Weak};

/// One record's location, and its bytes once read.
pub struct RecordRead {
    seg: Arc<Segment>,
    off: u32,
    len: u32,
    /// The log's generation when located: after writes are given up, the same offsets
    /// may hold other bytes, so a read from another generation is never used.
    generation: u64,
    data: Option<Vec<u8>>,
}

/// Names a segment file without keeping it open; see [`RecordRead::file_token`].
#[derive(Clone)]
pub struct FileToken(Weak<Segment>);

impl FileToken {
    /// Whether `read` is in the same, still open, segment file this token names.
    pub fn names(&self, read: &RecordRead) -> bool {
        std::ptr::eq(self.0.as_ptr(), Arc::as_ptr(&read.seg))
    }

    /// Whether the file it names is still open in the engine (or in a read under way).
    pub fn is_open(&self) -> bool {
        self.0.strong_count() > 0
    }
}

impl RecordRead {
    /// Whether its bytes are here (read from the page cache, or filled).
    pub fn is_ready(&self) -> bool {
        self.data.is_some()
    }

    /// The segment's number (unique while the engine runs).
    pub fn segment(&self) -> u32 {
        self.seg.id
    }

    /// Where the record starts in its segment file.
    pub fn offset(&self) -> u64 {
        u64::from(self.off)
    }

    /// The record's length in bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Always false: a record has a header.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A token for caching a descriptor of this record's file.
    pub fn file_token(&self) -> FileToken {
        FileToken(Arc::downgrade(&self.seg))
    }

    /// A descriptor of its own for the segment file; `None` where storage is not an OS
    /// file (then leave the record to the synchronous read).
    pub fn open_file(&self) -> Option<std::io::Result<std::fs::File>> {
        self.seg.file.try_clone_file()
    }

    /// Hands over what was read; anything but the whole record is ignored (the
    /// command's own read then meets the short file, or the error, itself).
    pub fn fill(&mut self, bytes: Vec<u8>) {
        if bytes.len() == self.len as usize {
            self.data = Some(bytes);
        }
    }
}

/// What the command running on this thread may use instead of reading, and what it
/// found it would have to wait for.
#[derive(Default)]
struct Pass {
    /// Reads that would wait for the device are deferred (the command's answer is
    /// then thrown away) instead of done.
    nowait: bool,
    lent: Vec<RecordRead>,
    deferred: Vec<RecordRead>,
}

thread_local! {
    static PASS: RefCell<Pass> = RefCell::new(Pass::default());
}

/// Empties this thread's pass when the command is done, even if it panics.
struct PassGuard;

impl Drop for PassGuard {
    fn drop(&mut self) {
        PASS.with(|p| {
            let mut p = p.borrow_mut();
            p.nowait = false;
            p.lent.clear();
            p.deferred.clear();
        });
    }
}

/// The bytes lent for the record at `slot` of `seg`, if one was read there in
/// `generation`.
fn take_lent(seg: &Segment, slot: &Slot, generation: u64) -> Option<Vec<u8>> {
    PASS.with(|p| {
        let mut p = p.try_borrow_mut().ok()?;
        if p.lent.is_empty() {
            return None;
        }
        let i = p.lent.iter().position(|r| {
            std::ptr::eq(Arc::as_ptr(&r.seg), seg)
                && r.off == slot.off
                && r.len == slot.len
                && r.generation == generation
        })?;
        p.lent.swap_remove(i).data
    })
}

/// How a read of the record at `slot` goes in the command running on this thread.
pub(crate) enum Lent {
    /// Read ahead, or found in the page cache: the bytes, still to be checked.
    Bytes(Vec<u8>),
    /// It would wait for the device, and the pass defers such reads: answer "absent"
    /// without side effects (the answer is thrown away).
    Deferred,
    /// Read it as usual.
    Read,
}

/// See [`Lent`].
pub(crate) fn lent(seg: &Arc<Segment>, slot: &Slot, generation: u64) -> Lent {
    if let Some(b) = take_lent(seg, slot, generation) {
        return Lent::Bytes(b);
    }
    let nowait = PASS.with(|p| p.try_borrow().is_ok_and(|p| p.nowait));
    let end = u64::from(slot.off) + u64::from(slot.len);
    // A record still in the write buffer is copied from memory: nothing to wait for.
    if !nowait || end > seg.written.load(std::sync::atomic::Ordering::Acquire) {
        return Lent::Read;
    }
    let mut buf = vec![0u8; slot.len as usize];
    match seg.file.read_cached_at(&mut buf, u64::from(slot.off)) {
        Ok(true) => Lent::Bytes(buf),
        Ok(false) => {
            let read = RecordRead {
                seg: seg.clone(),
                off: slot.off,
                len: slot.len,
                generation,
                data: None,
            };
            PASS.with(|p| {
                if let Ok(mut p) = p.try_borrow_mut() {
                    p.deferred.push(read);
                }
            });
            Lent::Deferred
        }
        // Met again, and reported, by the usual read.
        Err(_) => Lent::Read,
    }
}

/// Whether the command running on this thread has deferred a read (its answer will
/// be thrown away, so it counts no hit or miss).
pub(crate) fn deferring() -> bool {
    PASS.with(|p| p.try_borrow().is_ok_and(|p| !p.deferred.is_empty()))
}

impl Engine {
    /// Runs `f` (a read-only command) with the `lent` records at hand on this thread
    /// (those it reads are taken out; the rest are left in `lent` for the commands
    /// after it), and, if `nowait`, without waiting for the device: a record neither in
    /// memory nor in the page cache reads as absent, and is returned among the deferred
    /// reads. A caller that gets any back throws `f`'s answer away, reads them
    /// (asynchronously), and runs `f` again with them lent. `f` must not write: its
    /// first answer may rest on records it did not see.
    pub fn run_ahead<R>(
        &self,
        lent: &mut Vec<RecordRead>,
        nowait: bool,
        f: impl FnOnce() -> R,
    ) -> (R, Vec<RecordRead>) {
        if lent.is_empty() && !nowait {
            return (f(), Vec::new());
        }
        lent.retain(RecordRead::is_ready);
        PASS.with(|p| {
            let mut p = p.borrow_mut();
            p.nowait = nowait;
            std::mem::swap(&mut p.lent, lent);
            p.deferred.clear();
        });
        let guard = PassGuard;
        let r = f();
        let deferred = PASS.with(|p| {
            let mut p = p.borrow_mut();
            std::mem::swap(&mut p.lent, lent);
            std::mem::take(&mut p.deferred)
        });
        drop(guard);
        (r, deferred)
    }
}

#[cfg(test)]
mod tests {
    use super::RecordRead;
    use crate::io::FaultStorage;
    use crate::{Engine, Options};
    use std::sync::Arc;

    fn engine() -> (Engine, FaultStorage) {
        let fs = FaultStorage::new();
        let mut o = Options::new("/data");
        o.storage = Arc::new(fs.clone());
        o.hot_bytes = 0;
        (Engine::open(o).expect("open"), fs)
    }

    /// What the server does with a deferred read: read the bytes (here, directly).
    fn complete(mut reads: Vec<RecordRead>) -> Vec<RecordRead> {
        for r in &mut reads {
            let mut buf = vec![0u8; r.len()];
            r.seg
                .file
                .read_exact_at(&mut buf, r.offset())
                .expect("read");
            r.fill(buf);
        }
        reads
    }

    fn cold_key(value: &[u8]) -> (Engine, FaultStorage) {
        let (e, fs) = engine();
        e.put(0, b"k", value, None).expect("put");
        e.flush_writes().expect("flush");
        fs.set_cold(true);
        (e, fs)
    }

    #[test]
    fn a_cold_read_is_deferred_then_served_from_the_lent_bytes() {
        let (e, _fs) = cold_key(b"value");
        let before = e.stats();
        let (first, deferred) = e.run_ahead(&mut Vec::new(), true, || e.get(0, b"k"));
        assert_eq!(first.ok(), Some(None), "answers absent, to be thrown away");
        assert_eq!(deferred.len(), 1);
        let after = e.stats();
        assert_eq!(
            (after.hits, after.misses),
            (before.hits, before.misses),
            "a thrown-away answer counts nothing"
        );
        let (second, more) = e.run_ahead(&mut complete(deferred), true, || e.get(0, b"k"));
        assert!(more.is_empty());
        assert_eq!(second.expect("get").as_deref(), Some(&b"value"[..]));
        assert_eq!(e.stats().hits, before.hits + 1);
    }

    #[test]
    fn records_in_memory_or_cached_are_never_deferred() {
        let (e, fs) = engine();
        e.put(0, b"k", b"buffered", None).expect("put");
        fs.set_cold(true);
        // Still in the write buffer: copied from memory.
        let (got, deferred) = e.run_ahead(&mut Vec::new(), true, || e.get(0, b"k"));
        assert_eq!(got.expect("get").as_deref(), Some(&b"buffered"[..]));
        assert!(deferred.is_empty());
        e.flush_writes().expect("flush");
        fs.set_cold(false);
        let (got, deferred) = e.run_ahead(&mut Vec::new(), true, || e.get(0, b"k"));
        assert_eq!(got.expect("get").as_deref(), Some(&b"buffered"[..]));
        assert!(deferred.is_empty());
        // Without `nowait`, a cold read is simply done.
        fs.set_cold(true);
        let (got, deferred) = e.run_ahead(&mut Vec::new(), false, || e.get(0, b"k"));
        assert_eq!(got.expect("get").as_deref(), Some(&b"buffered"[..]));
        assert!(deferred.is_empty());
    }

    #[test]
    fn lent_bytes_are_checked_used_once_and_only_for_the_current_record() {
        let (e, _fs) = cold_key(b"value");
        let (_, deferred) = e.run_ahead(&mut Vec::new(), true, || e.get(0, b"k"));
        let mut bad = complete(deferred);
        // Other bytes fail the CRC: the key reads as corrupt, as from the file.
        if let Some(d) = bad[0].data.as_mut() {
            d[0] ^= 1;
        }
        let (got, _) = e.run_ahead(&mut bad, false, || e.get(0, b"k"));
        assert_eq!(got.ok(), Some(None));
        assert_eq!(e.stats().corrupt_records, 1);

        e.put(0, b"k", b"old", None).expect("put");
        e.flush_writes().expect("flush");
        let (_, deferred) = e.run_ahead(&mut Vec::new(), true, || e.get(0, b"k"));
        let mut old = complete(deferred);
        // Replaced after it was deferred: the lent record is not the one the index
        // names now, so the command reads the new value.
        e.put(0, b"k", b"new", None).expect("put");
        let (got, _) = e.run_ahead(&mut old, false, || e.get(0, b"k"));
        assert_eq!(got.expect("get").as_deref(), Some(&b"new"[..]));
    }

    #[test]
    fn records_lent_and_not_read_stay_for_the_commands_after() {
        let (e, fs) = engine();
        e.put(0, b"a", b"1", None).expect("put");
        e.put(0, b"b", b"2", None).expect("put");
        e.flush_writes().expect("flush");
        fs.set_cold(true);
        // One pass finds both cold (as a probe of a batch does).
        let (_, deferred) = e.run_ahead(&mut Vec::new(), true, || {
            (e.get(0, b"a").ok(), e.get(0, b"b").ok())
        });
        assert_eq!(deferred.len(), 2);
        let mut pool = complete(deferred);
        let (a, more) = e.run_ahead(&mut pool, true, || e.get(0, b"a"));
        assert!(more.is_empty());
        assert_eq!(a.expect("get").as_deref(), Some(&b"1"[..]));
        assert_eq!(pool.len(), 1, "b's record is kept for the next command");
        let (b, more) = e.run_ahead(&mut pool, true, || e.get(0, b"b"));
        assert!(more.is_empty());
        assert_eq!(b.expect("get").as_deref(), Some(&b"2"[..]));
        assert!(pool.is_empty());
    }

    /// Writers replace, delete and re-expire keys (and compaction moves them) while
    /// readers defer, read and lend their records: a lent record is never served once
    /// a later write was acknowledged.
    #[test]
    fn lent_records_never_serve_a_value_an_acknowledged_write_replaced() {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        const KEYS: usize = 8;
        let fs = FaultStorage::new();
        let mut o = Options::new("/data");
        o.storage = Arc::new(fs.clone());
        o.segment_bytes = 64 << 10;
        o.compaction_garbage_ratio = 0.3;
        o.hot_bytes = 0;
        let e = Arc::new(Engine::open(o).expect("open"));
        fs.set_cold(true);
        let acked: Arc<Vec<AtomicU64>> = Arc::new((0..KEYS).map(|_| AtomicU64::new(0)).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..KEYS)
            .map(|k| {
                let (e, acked) = (e.clone(), acked.clone());
                std::thread::spawn(move || {
                    let key = format!("k{k}");
                    for op in 1..=800u64 {
                        if op % 10 == 3 {
                            e.delete(0, key.as_bytes()).expect("delete");
                        } else {
                            e.put(0, key.as_bytes(), &op.to_le_bytes(), None)
                                .expect("put");
                        }
                        // Handed to the file: a later read may be deferred.
                        e.flush_writes().expect("flush");
                        acked[k].store(op, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (e, acked, stop) = (e.clone(), acked.clone(), stop.clone());
                std::thread::spawn(move || {
                    let (mut reads, mut lent_reads) = (0u64, 0u64);
                    while !stop.load(Ordering::Relaxed) || reads < 100 {
                        for k in 0..KEYS {
                            let key = format!("k{k}");
                            let floor = acked[k].load(Ordering::SeqCst);
                            let (got, deferred) =
                                e.run_ahead(&mut Vec::new(), true, || e.get(0, key.as_bytes()));
                            let got = if deferred.is_empty() {
                                got
                            } else {
                                let mut lent = complete(deferred);
                                // Let writers replace the record meanwhile.
                                std::thread::yield_now();
                                lent_reads += 1;
                                e.run_ahead(&mut lent, false, || e.get(0, key.as_bytes())).0
                            };
                            if let Some(v) = got.expect("get") {
                                let op = u64::from_le_bytes(v[..8].try_into().expect("8 bytes"));
                                assert!(
                                    op >= floor,
                                    "k{k}: read op {op} after op {floor} was acknowledged"
                                );
                            }
                            reads += 1;
                        }
                    }
                    (reads, lent_reads)
                })
            })
            .collect();
        for w in writers {
            w.join().expect("writer");
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            let (reads, lent) = r.join().expect("reader");
            assert!(
                reads > 0 && lent > 0,
                "{reads} reads, {lent} through lent records"
            );
        }
    }

    #[test]
    fn a_short_fill_is_ignored() {
        let (e, _fs) = cold_key(b"value");
        let (_, mut deferred) = e.run_ahead(&mut Vec::new(), true, || e.get(0, b"k"));
        deferred[0].fill(vec![0u8; 3]);
        assert!(!deferred[0].is_ready());
        let (got, _) = e.run_ahead(&mut deferred, false, || e.get(0, b"k"));
        assert_eq!(got.expect("get").as_deref(), Some(&b"value"[..]));
    }

    #[test]
    fn a_real_file_is_read_through_a_descriptor_of_its_own() {
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().expect("dir");
        let mut o = Options::new(dir.path());
        o.hot_bytes = 0;
        let e = Engine::open(o).expect("open");
        e.put(0, b"k", b"on disk", None).expect("put");
        e.flush_writes().expect("flush");
        // Out of the page cache, so the pass defers it.
        for entry in std::fs::read_dir(dir.path()).expect("dir") {
            let f = std::fs::File::open(entry.expect("entry").path()).expect("open");
            f.sync_all().expect("sync");
            let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed);
        }
        let (first, mut deferred) = e.run_ahead(&mut Vec::new(), true, || e.get(0, b"k"));
        if deferred.is_empty() {
            // A file system that cannot tell what is cached reads at once.
            assert_eq!(first.expect("get").as_deref(), Some(&b"on disk"[..]));
            return;
        }
        let r = &mut deferred[0];
        let token = r.file_token();
        assert!(token.names(r) && token.is_open());
        let file = r.open_file().expect("an OS file").expect("dup");
        let mut buf = vec![0u8; r.len()];
        file.read_exact_at(&mut buf, r.offset()).expect("read");
        r.fill(buf);
        let (got, _) = e.run_ahead(&mut deferred, true, || e.get(0, b"k"));
        assert_eq!(got.expect("get").as_deref(), Some(&b"on disk"[..]));
    }
}
