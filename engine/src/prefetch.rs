//! Reading a record ahead of the command that needs it, for a server that does its
//! own asynchronous I/O: [`Engine::prefetch`] locates a key's record (and takes it from
//! the page cache when that needs no wait), the server reads the rest however it likes,
//! and [`Engine::with_prefetched`] lends the bytes to the synchronous command, whose
//! usual read path checks them (CRC, key, expiry) as it checks its own reads.

use crate::engine::Engine;
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

thread_local! {
    /// The records lent to the command running on this thread.
    static LENT: RefCell<Vec<RecordRead>> = const { RefCell::new(Vec::new()) };
}

/// Empties this thread's lent records when the command is done, even if it panics.
struct Lent;

impl Drop for Lent {
    fn drop(&mut self) {
        LENT.with(|l| l.borrow_mut().clear());
    }
}

/// The bytes lent for the record at `off..off+len` of `seg`, if one was read there in
/// `generation`.
pub(crate) fn take_lent(seg: &Segment, off: u32, len: u32, generation: u64) -> Option<Vec<u8>> {
    LENT.with(|l| {
        let mut l = l.try_borrow_mut().ok()?;
        if l.is_empty() {
            return None;
        }
        let i = l.iter().position(|r| {
            std::ptr::eq(Arc::as_ptr(&r.seg), seg)
                && r.off == off
                && r.len == len
                && r.generation == generation
        })?;
        l.swap_remove(i).data
    })
}

impl Engine {
    /// The read `key`'s record needs, if it is on disk: `None` when the key is absent,
    /// in the hot tier, or still in the write buffer (nothing to wait for). The bytes
    /// are already there ([`RecordRead::is_ready`]) when the page cache held them.
    pub fn prefetch(&self, ns: u8, key: &[u8]) -> Option<RecordRead> {
        let inner = &*self.inner;
        if ns >= crate::NAMESPACES || inner.log.is_closed() {
            return None;
        }
        let now = inner.now_ms();
        let (_, slot, seg) = inner.find(ns, key, now)?;
        let generation = inner.log.generation();
        if inner.hot.holds(slot.hash, slot.seg, slot.off, generation) {
            return None;
        }
        let end = u64::from(slot.off) + u64::from(slot.len);
        if end > seg.written.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        let mut buf = vec![0u8; slot.len as usize];
        // An error here is met again, and reported, by the command's own read.
        let data = match seg.file.read_cached_at(&mut buf, u64::from(slot.off)) {
            Ok(true) => Some(buf),
            Ok(false) => None,
            Err(_) => return None,
        };
        Some(RecordRead {
            seg,
            off: slot.off,
            len: slot.len,
            generation,
            data,
        })
    }

    /// Runs `f` (a command) with `reads` lent to this thread: a read of one of those
    /// records takes the bytes instead of reading the file. Records not filled are
    /// left to `f`'s own reads.
    pub fn with_prefetched<R>(&self, reads: Vec<RecordRead>, f: impl FnOnce() -> R) -> R {
        if reads.is_empty() {
            return f();
        }
        LENT.with(|l| {
            let mut l = l.borrow_mut();
            l.clear();
            l.extend(reads.into_iter().filter(RecordRead::is_ready));
        });
        let _lent = Lent;
        f()
    }
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn a_lent_record_is_used_checked_and_only_once() {
        let (e, _fs) = engine();
        e.put(0, b"k", b"value", None).expect("put");
        e.flush_writes().expect("flush");
        let r = e.prefetch(0, b"k").expect("on disk");
        assert!(r.is_ready(), "in-memory storage reads at once");
        assert_eq!(r.len(), r.len());
        // A lent record of other bytes fails its check and reads as corrupt: proof the
        // command took the lent bytes rather than the file's.
        let mut bad = e.prefetch(0, b"k").expect("on disk");
        let mut bytes = vec![0u8; bad.len()];
        bytes[0] = 1;
        bad.data = None;
        bad.fill(bytes);
        assert_eq!(
            e.with_prefetched(vec![bad], || e.get(0, b"k")).ok(),
            Some(None)
        );
        // Put back and read normally: the lent bytes were used once, then forgotten.
        e.put(0, b"k", b"value", None).expect("put");
        e.flush_writes().expect("flush");
        let good = e.prefetch(0, b"k").expect("on disk");
        let got = e
            .with_prefetched(vec![good], || e.get(0, b"k"))
            .expect("get");
        assert_eq!(got.as_deref(), Some(&b"value"[..]));
        assert_eq!(e.get(0, b"k").expect("get").as_deref(), Some(&b"value"[..]));
    }

    #[test]
    fn nothing_to_prefetch_for_absent_buffered_or_replaced_records() {
        let (e, _fs) = engine();
        assert!(e.prefetch(0, b"nope").is_none());
        e.put(0, b"k", b"old", None).expect("put");
        // Still in the write buffer: no read to wait for.
        assert!(e.prefetch(0, b"k").is_none());
        e.flush_writes().expect("flush");
        let old = e.prefetch(0, b"k").expect("on disk");
        // Replaced after it was located: the lent old record is not the one the index
        // names, so the command reads the new value.
        e.put(0, b"k", b"new", None).expect("put");
        let got = e
            .with_prefetched(vec![old], || e.get(0, b"k"))
            .expect("get");
        assert_eq!(got.as_deref(), Some(&b"new"[..]));
    }

    #[test]
    fn a_short_fill_is_ignored() {
        let (e, _fs) = engine();
        e.put(0, b"k", b"value", None).expect("put");
        e.flush_writes().expect("flush");
        let mut r = e.prefetch(0, b"k").expect("on disk");
        r.data = None;
        r.fill(vec![0u8; 3]);
        assert!(!r.is_ready());
        let got = e.with_prefetched(vec![r], || e.get(0, b"k")).expect("get");
        assert_eq!(got.as_deref(), Some(&b"value"[..]));
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
        let mut r = e.prefetch(0, b"k").expect("on disk");
        // Just written, so cached, where the file system can say so; read it again
        // through a descriptor of its own either way, as an io_uring server does.
        let file = r.open_file().expect("an OS file").expect("dup");
        let mut buf = vec![0u8; r.len()];
        file.read_exact_at(&mut buf, r.offset()).expect("read");
        r.data = None;
        let token = r.file_token();
        assert!(token.names(&r) && token.is_open());
        r.fill(buf);
        let got = e.with_prefetched(vec![r], || e.get(0, b"k")).expect("get");
        assert_eq!(got.as_deref(), Some(&b"on disk"[..]));
    }
}
