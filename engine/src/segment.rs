//! Segment files: an append-only run of records after a file header. This module names
//! them, holds the per-segment figures, and walks a segment's records for recovery and
//! hint writing, telling intact records from corrupt ones and from a torn tail.

use crate::format::file_header::HEADER_LEN as FILE_HEADER_LEN;
use crate::format::record::{self, HEADER_LEN, Header, RecordRef};
use crate::io::FileHandle;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) const SEGMENT_EXT: &str = "seg";
pub(crate) const HINT_EXT: &str = "hint";

pub(crate) fn segment_name(id: u32) -> String {
    format!("{id:010}.{SEGMENT_EXT}")
}

pub(crate) fn hint_name(id: u32) -> String {
    format!("{id:010}.{HINT_EXT}")
}

/// Parses `0000000042.seg` (or `.hint`) into 42.
pub(crate) fn parse_name(name: &str, ext: &str) -> Option<u32> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    if stem.len() != 10 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// One open segment file.
pub(crate) struct Segment {
    pub id: u32,
    pub path: PathBuf,
    pub file: Arc<dyn FileHandle>,
    /// Bytes of the header and records, including any still in the write buffer (the
    /// append position).
    pub len: AtomicU64,
    /// Bytes handed to the file; records past this are still in the write buffer.
    pub written: AtomicU64,
    /// Bytes of records the index no longer points at.
    pub dead: AtomicU64,
    /// Size of this segment's hint file (0 while it has none).
    pub hint_bytes: AtomicU64,
    /// Holds a flush record, which cannot move forward in the log: compact it only
    /// when it is the oldest segment (then reclaim it whole).
    pub pinned: std::sync::atomic::AtomicBool,
}

impl Segment {
    pub fn new(id: u32, path: PathBuf, file: Arc<dyn FileHandle>, len: u64) -> Self {
        Segment {
            id,
            path,
            file,
            len: AtomicU64::new(len),
            written: AtomicU64::new(len),
            dead: AtomicU64::new(0),
            hint_bytes: AtomicU64::new(0),
            pinned: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Stands in for the active segment while recovery finds the real one.
    pub fn placeholder() -> Arc<Segment> {
        Arc::new(Segment::new(0, PathBuf::new(), Arc::new(NoFile), 0))
    }

    pub fn add_dead(&self, bytes: u64) {
        self.dead.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn len(&self) -> u64 {
        self.len.load(Ordering::Acquire)
    }
}

struct NoFile;

impl FileHandle for NoFile {
    fn read_exact_at(&self, _: &mut [u8], _: u64) -> io::Result<()> {
        Err(io::ErrorKind::NotFound.into())
    }
    fn write_all_at(&self, _: &[u8], _: u64) -> io::Result<()> {
        Err(io::ErrorKind::NotFound.into())
    }
    fn sync(&self) -> io::Result<()> {
        Err(io::ErrorKind::NotFound.into())
    }
    fn size(&self) -> io::Result<u64> {
        Ok(0)
    }
    fn truncate(&self, _: u64) -> io::Result<()> {
        Err(io::ErrorKind::NotFound.into())
    }
}

/// Reads a file through a sliding window, so walking it costs one large read per
/// megabyte rather than two small reads per record.
struct WindowReader<'a> {
    file: &'a dyn FileHandle,
    file_len: u64,
    buf: Vec<u8>,
    start: u64,
}

const WINDOW: usize = 1 << 20;

impl<'a> WindowReader<'a> {
    fn new(file: &'a dyn FileHandle, file_len: u64) -> Self {
        WindowReader {
            file,
            file_len,
            buf: Vec::new(),
            start: 0,
        }
    }

    /// `len` bytes at `off`, or `None` when they run past the end of the file.
    fn get(&mut self, off: u64, len: usize) -> io::Result<Option<&[u8]>> {
        let end = off.saturating_add(len as u64);
        if end > self.file_len {
            return Ok(None);
        }
        if off < self.start || end > self.start + self.buf.len() as u64 {
            let want = len.max(WINDOW).min((self.file_len - off) as usize);
            self.buf.resize(want, 0);
            self.file.read_exact_at(&mut self.buf, off)?;
            self.start = off;
        }
        let s = (off - self.start) as usize;
        Ok(Some(&self.buf[s..s + len]))
    }

    fn intact_record_at(&mut self, off: u64) -> io::Result<Option<Header>> {
        let Some(h) = self.get(off, HEADER_LEN)?.and_then(Header::parse) else {
            return Ok(None);
        };
        Ok(match self.get(off, h.total_len())? {
            Some(b) if record::crc_ok(b) => Some(h),
            _ => None,
        })
    }
}

/// What [`walk`] finds at one position.
pub(crate) enum Found<'a> {
    /// An intact record.
    Record(RecordRef<'a>),
    /// A record whose header is plausible but whose CRC fails: its key bytes (which may
    /// themselves be damaged) let the caller forget that key rather than serve an older
    /// version of it.
    Corrupt { ns: u8, key: &'a [u8], len: u64 },
}

/// The outcome of a walk.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct WalkEnd {
    /// End of the last intact record; everything after it is a torn tail.
    pub valid_end: u64,
    /// Bytes skipped as corrupt before `valid_end`.
    pub corrupt_bytes: u64,
    /// Where each damaged region before `valid_end` starts (a corrupt record or bytes
    /// skipped to the next intact record), in file order.
    pub damaged: Vec<u64>,
}

impl WalkEnd {
    /// Where the last damage below `bound` (the length known synced, `u64::MAX` for
    /// the whole file) starts, counting a torn tail below it, or a file shorter than
    /// it, as damage: records before that point may have been superseded by records
    /// lost in it.
    pub fn last_damage_below(&self, bound: u64, file_len: u64) -> Option<u64> {
        let limit = if bound == u64::MAX { file_len } else { bound };
        let tail = (self.valid_end < limit).then_some(self.valid_end);
        tail.or_else(|| self.damaged.iter().rev().copied().find(|&d| d < bound))
    }

    /// Whether the walk met any damage or a torn tail.
    pub fn is_damaged(&self, file_len: u64) -> bool {
        !self.damaged.is_empty() || self.valid_end < file_len
    }
}

/// Walks the records of `file` from `from` to `file_len`, calling `f(offset, found)`
/// for each. After damage it searches forward for the next intact record, so one bad
/// region costs only the records inside it.
pub(crate) fn walk(
    file: &dyn FileHandle,
    from: u64,
    file_len: u64,
    mut f: impl FnMut(u64, Found<'_>),
) -> io::Result<WalkEnd> {
    let mut r = WindowReader::new(file, file_len);
    let mut pos = from.max(FILE_HEADER_LEN as u64);
    let mut end = WalkEnd {
        valid_end: pos,
        corrupt_bytes: 0,
        damaged: Vec::new(),
    };
    while pos < file_len {
        let header = r.get(pos, HEADER_LEN)?.and_then(Header::parse);
        if let Some(h) = header {
            let total = h.total_len() as u64;
            if let Some(b) = r.get(pos, h.total_len())? {
                if let Some(rec) = record::decode(b) {
                    f(pos, Found::Record(rec));
                    pos += total;
                    end.valid_end = pos;
                    continue;
                }
                // A plausible header with a bad CRC: damage inside one record, if what
                // follows it is intact (or the end of the file).
                let key_end = HEADER_LEN + h.key_len as usize;
                let key = b[HEADER_LEN..key_end].to_vec();
                let next = pos + total;
                if next == file_len || r.intact_record_at(next)?.is_some() {
                    if h.key_len > 0 {
                        f(
                            pos,
                            Found::Corrupt {
                                ns: h.ns,
                                key: &key,
                                len: total,
                            },
                        );
                    }
                    if next < file_len {
                        end.corrupt_bytes += total;
                        end.damaged.push(pos);
                    }
                    pos = next;
                    continue;
                }
            }
        }
        // Resynchronise: the next offset that holds an intact record.
        let mut probe = pos + 1;
        let mut resumed = false;
        while probe + (HEADER_LEN as u64) <= file_len {
            if r.intact_record_at(probe)?.is_some() {
                end.corrupt_bytes += probe - pos;
                end.damaged.push(pos);
                pos = probe;
                resumed = true;
                break;
            }
            probe += 1;
        }
        if !resumed {
            break;
        }
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::file_header::{self, FileKind};
    use crate::format::record::{Kind, encode_into};
    use crate::io::{FaultStorage, OpenMode, Storage};
    use std::path::Path;

    fn build(records: &[(&[u8], &[u8])]) -> (Vec<u8>, Vec<u64>) {
        let mut b = file_header::encode(FileKind::Segment, 1).to_vec();
        let mut offs = Vec::new();
        for (k, v) in records {
            offs.push(b.len() as u64);
            encode_into(&mut b, Kind::Put, 0, k, b"", v, 0);
        }
        (b, offs)
    }

    fn walk_bytes(bytes: Vec<u8>) -> (Vec<String>, WalkEnd) {
        let fs = FaultStorage::new();
        let p = Path::new("/s");
        fs.write_file(p, bytes.clone());
        let f = fs.open(p, OpenMode::Read).expect("open");
        let mut seen = Vec::new();
        let end = walk(f.as_ref(), 0, bytes.len() as u64, |_, found| match found {
            Found::Record(r) => seen.push(String::from_utf8_lossy(r.key).into_owned()),
            Found::Corrupt { key, .. } => seen.push(format!("!{}", String::from_utf8_lossy(key))),
        })
        .expect("walk");
        (seen, end)
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(segment_name(42), "0000000042.seg");
        assert_eq!(parse_name("0000000042.seg", SEGMENT_EXT), Some(42));
        assert_eq!(parse_name("0000000042.hint", HINT_EXT), Some(42));
        assert_eq!(parse_name("42.seg", SEGMENT_EXT), None);
        assert_eq!(parse_name("0000000042.seg.tmp", SEGMENT_EXT), None);
    }

    #[test]
    fn intact_segment_walks_to_its_end() {
        let (b, _) = build(&[(b"a", b"1"), (b"bb", b"22"), (b"ccc", b"333")]);
        let len = b.len() as u64;
        let (seen, end) = walk_bytes(b);
        assert_eq!(seen, ["a", "bb", "ccc"]);
        assert_eq!(
            end,
            WalkEnd {
                valid_end: len,
                corrupt_bytes: 0,
                damaged: Vec::new(),
            }
        );
    }

    #[test]
    fn torn_tail_stops_at_the_last_intact_record() {
        let (b, offs) = build(&[(b"a", b"1"), (b"bb", b"22"), (b"ccc", b"333")]);
        for cut in offs[2] + 1..b.len() as u64 {
            let (seen, end) = walk_bytes(b[..cut as usize].to_vec());
            assert_eq!(seen, ["a", "bb"], "cut at {cut}");
            assert_eq!(end.valid_end, offs[2]);
        }
    }

    #[test]
    fn damaged_value_is_reported_and_the_walk_goes_on() {
        let (mut b, offs) = build(&[(b"a", b"1"), (b"bb", b"22"), (b"ccc", b"333")]);
        let value_byte = offs[1] as usize + HEADER_LEN + 2;
        b[value_byte] ^= 0x40;
        let len = b.len() as u64;
        let (seen, end) = walk_bytes(b);
        assert_eq!(seen, ["a", "!bb", "ccc"]);
        assert_eq!(end.valid_end, len);
        assert!(end.corrupt_bytes > 0);
        assert_eq!(end.damaged, [offs[1]]);
        assert_eq!(end.last_damage_below(len, len), Some(offs[1]));
        assert_eq!(end.last_damage_below(offs[1], len), None);
    }

    #[test]
    fn damaged_length_resynchronises_on_the_next_record() {
        let (mut b, offs) = build(&[(b"a", b"1"), (b"bb", b"22"), (b"ccc", b"333")]);
        b[offs[1] as usize + 10] = 0xff; // value length of "bb"
        let len = b.len() as u64;
        let (seen, end) = walk_bytes(b);
        assert_eq!(seen, ["a", "ccc"]);
        assert_eq!(end.valid_end, len);
        assert_eq!(end.damaged, [offs[1]]);
    }

    #[test]
    fn damaged_last_record_is_reported_and_cut() {
        let (mut b, offs) = build(&[(b"a", b"1"), (b"bb", b"22")]);
        let last = b.len() - 1;
        b[last] ^= 1;
        let (seen, end) = walk_bytes(b);
        assert_eq!(seen, ["a", "!bb"]);
        assert_eq!(end.valid_end, offs[1]);
    }
}
