//! Fuzz targets for the engine's decoders and recovery, and the small stable-Rust
//! harness that drives them (and the sidecar's targets): seed inputs made by the real
//! encoders, mutated at random, each run under `catch_unwind`. Not coverage-guided;
//! `bench/fuzz.sh` runs every target for a fixed time. Not part of the engine's API.

use crate::format::file_header::{self, FileKind};
use crate::format::record::{self, Kind};
use crate::format::{hint, meta, snapshot, sync_mark};
use crate::io::{FaultStorage, OpenMode, Storage};
use crate::{Engine, Fsync, ManualClock, Options};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A xorshift generator: fuzzing needs speed and reproducibility, not quality.
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Mutates `input` in place: bit flips, byte sets, interesting values, truncation,
/// insertion, deletion and duplication of runs, a few at a time.
pub fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    const INTERESTING: [u8; 8] = [0, 1, 0x7f, 0x80, 0xff, b'\r', b'\n', b'$'];
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        match rng.below(8) {
            0 if len > 0 => {
                let at = rng.below(len);
                input[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                input[at] = rng.next_u64() as u8;
            }
            2 if len > 0 => {
                let at = rng.below(len);
                input[at] = INTERESTING[rng.below(INTERESTING.len())];
            }
            3 if len > 0 => input.truncate(rng.below(len)),
            4 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                input.splice(at..at, bytes);
            }
            5 if len > 1 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(32)).min(len);
                input.drain(at..end);
            }
            6 if len > 1 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(64)).min(len);
                let run = input[at..end].to_vec();
                let to = rng.below(len + 1);
                input.splice(to..to, run);
            }
            _ if len >= 4 => {
                // A little-endian length field set to something extreme.
                let at = rng.below(len - 3);
                let v: u32 = [0, 1, u32::MAX, 0x8000_0000, 65535][rng.below(5)];
                input[at..at + 4].copy_from_slice(&v.to_le_bytes());
            }
            _ => input.push(rng.next_u64() as u8),
        }
    }
}

/// What a harness run found.
#[derive(Debug, Default)]
pub struct Report {
    /// Inputs tried.
    pub executions: u64,
    /// Inputs that panicked, each saved under the findings directory.
    pub findings: Vec<PathBuf>,
}

/// Runs `target` on mutations of `seeds` for `time` (or at least `min_runs` inputs),
/// starting from `seed`. A panicking input is saved to `findings/<name>-<n>.bin`.
pub fn run(
    name: &str,
    seeds: &[Vec<u8>],
    target: impl Fn(&[u8]),
    time: Duration,
    min_runs: u64,
    seed: u64,
    findings: &Path,
) -> Report {
    let mut rng = Rng::new(seed);
    let mut report = Report::default();
    let mut corpus: Vec<Vec<u8>> = seeds.to_vec();
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    let started = Instant::now();
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    while report.executions < min_runs || started.elapsed() < time {
        let mut input = corpus[rng.below(corpus.len())].clone();
        mutate(&mut rng, &mut input);
        report.executions += 1;
        if catch_unwind(AssertUnwindSafe(|| target(&input))).is_err() {
            let _ = std::fs::create_dir_all(findings);
            let path = findings.join(format!("{name}-{}.bin", report.findings.len()));
            let _ = std::fs::write(&path, &input);
            report.findings.push(path);
            if report.findings.len() >= 10 {
                break;
            }
        } else if rng.below(64) == 0 && corpus.len() < 256 {
            // Keep a few mutants as new starting points, so mutations compound.
            corpus.push(input);
        }
    }
    std::panic::set_hook(quiet);
    report
}

/// What a test runs: `target` on mutations of `seeds`, for `CASKADE_FUZZ_SECS` seconds
/// if set (else `runs` inputs), from `CASKADE_FUZZ_SEED`, saving findings under
/// `CASKADE_FUZZ_FINDINGS` (default: the temp dir's `caskade-fuzz-findings`). Prints
/// the executions and panics if any input panicked.
pub fn run_from_env(name: &str, seeds: &[Vec<u8>], target: fn(&[u8]), runs: u64) {
    let secs = std::env::var("CASKADE_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok());
    let (time, min) = match secs {
        Some(s) => (Duration::from_secs(s), 0),
        None => (Duration::ZERO, runs),
    };
    let seed = std::env::var("CASKADE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED);
    let dir = std::env::var_os("CASKADE_FUZZ_FINDINGS")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("caskade-fuzz-findings"));
    let r = run(name, seeds, target, time, min, seed, &dir);
    println!(
        "fuzz {name}: {} executions, {} findings",
        r.executions,
        r.findings.len()
    );
    assert!(r.findings.is_empty(), "{name} panicked on {:?}", r.findings);
}

/// Seeds for the record decoder and the segment walk: a segment of every record kind.
pub fn record_seeds() -> Vec<Vec<u8>> {
    let mut seg = file_header::encode(FileKind::Segment, 1).to_vec();
    record::encode_into(&mut seg, Kind::Put, 0, b"key", b"etag", b"value", 0);
    record::encode_into(
        &mut seg,
        Kind::Put,
        3,
        b"k2",
        b"",
        &[7u8; 300],
        1_700_000_000_000,
    );
    seg.extend_from_slice(&record::tombstone(0, b"key"));
    seg.extend_from_slice(&record::evict(1, 0x1234_5671));
    seg.extend_from_slice(&record::seal(0, 4096));
    record::encode_into(&mut seg, Kind::Flush, 2, b"", b"", b"", 0);
    let mut one = Vec::new();
    record::encode_into(&mut one, Kind::Put, 0, b"a", b"", b"b", 0);
    vec![seg, one]
}

/// The record decoder and the segment walk over arbitrary bytes: never a panic, and
/// what the walk calls intact decodes to the same record.
pub fn record_target(data: &[u8]) {
    let _ = record::Header::parse(data);
    if let Some(r) = record::decode(data) {
        assert_eq!(r.raw.len(), data.len());
    }
    let fs = FaultStorage::new();
    let p = Path::new("/s");
    fs.write_file(p, data.to_vec());
    let Ok(f) = fs.open(p, OpenMode::Read) else {
        return;
    };
    let end = crate::segment::walk(f.as_ref(), 0, data.len() as u64, |off, found| {
        if let crate::segment::Found::Record(r) = found {
            let at = off as usize;
            assert!(record::decode(&data[at..at + r.raw.len()]).is_some());
        }
    });
    if let Ok(end) = end {
        assert!(end.valid_end <= data.len() as u64 || data.len() < 16);
    }
}

/// Seeds for the hint decoder (and the index snapshot's head).
pub fn hint_seeds() -> Vec<Vec<u8>> {
    let entries = [
        hint::HintEntry {
            kind: Kind::Put,
            ns: 0,
            hash: 0xABCD_EF00,
            offset: 16,
            len: 40,
            expire_at_ms: 0,
        },
        hint::HintEntry {
            kind: Kind::Tombstone,
            ns: 1,
            hash: 0x1234_5671,
            offset: 56,
            len: 30,
            expire_at_ms: 5,
        },
    ];
    let head = snapshot::Head {
        active: 2,
        seed: 7,
        epoch: 40,
        segments: vec![snapshot::SegmentInfo {
            id: 2,
            len: 4096,
            dead: 100,
            hint_bytes: 60,
            pinned: false,
        }],
        blocks: vec![snapshot::Block {
            ns: 0,
            shard: 3,
            capacity: 8,
            entries: 2,
            crc: 0,
        }],
    };
    vec![
        hint::encode(1, &entries, 86),
        hint::encode(1, &[], 16),
        snapshot::encode_head(&head),
    ]
}

/// The hint decoder over arbitrary bytes: never a panic.
pub fn hint_target(data: &[u8]) {
    if let Ok(h) = hint::decode(data, 1) {
        for e in h.entries() {
            let _ = e;
        }
    }
    let _ = meta::decode(data);
    let _ = sync_mark::decode(data);
    let _ = snapshot::decode_head(data);
}

/// Seeds for recovery: directories (see [`recovery_target`]) written by the engine.
pub fn recovery_seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for clean in [true, false] {
        let fs = FaultStorage::new();
        let o = options(&fs);
        let Ok(e) = Engine::open(o) else {
            continue;
        };
        for i in 0..60u32 {
            let _ = e.put(
                (i % 3) as u8,
                format!("key{i}").as_bytes(),
                &[i as u8; 40],
                (i % 5 == 0).then_some(2_000_000_000_000),
            );
            if i % 7 == 0 {
                let _ = e.delete(0, format!("key{}", i / 2).as_bytes());
            }
        }
        let _ = e.flush_namespace(2);
        let fs = if clean {
            let _ = e.close();
            fs
        } else {
            fs.crash(crate::io::CrashMode::TornTail { seed: 7 })
        };
        drop(e);
        out.push(pack(&fs));
    }
    out
}

fn options(fs: &FaultStorage) -> Options {
    let mut o = Options::new("/db");
    o.storage = Arc::new(fs.clone());
    o.clock = Arc::new(ManualClock::new(1_700_000_000_000));
    o.fsync = Fsync::Never;
    o.segment_bytes = crate::options::MIN_SEGMENT_BYTES;
    o
}

/// The file names a packed directory may hold, by index.
fn name_of(i: u8) -> String {
    match i % FILES {
        0 => meta::FILE_NAME.to_string(),
        1 => sync_mark::FILE_NAME.to_string(),
        12 => snapshot::FILE_NAME.to_string(),
        n @ 2..=6 => crate::segment::segment_name(u32::from(n) - 1),
        n => crate::segment::hint_name(u32::from(n) - 6),
    }
}

/// How many names [`name_of`] knows.
const FILES: u8 = 13;

/// A directory as bytes: per file, a name index (1 byte), a length (4 bytes LE) and
/// the contents.
fn pack(fs: &FaultStorage) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..FILES {
        let path = Path::new("/db").join(name_of(i));
        if let Some(bytes) = fs.read_file(&path) {
            out.push(i);
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(&bytes);
        }
    }
    out
}

/// Recovery over arbitrary directory contents: open either fails with an error or
/// yields an engine that answers reads, takes writes and closes, without a panic.
pub fn recovery_target(data: &[u8]) {
    let fs = FaultStorage::new();
    let _ = fs.create_dir_all(Path::new("/db"));
    let mut at = 0;
    while at + 5 <= data.len() {
        let name = name_of(data[at]);
        let len = u32::from_le_bytes([data[at + 1], data[at + 2], data[at + 3], data[at + 4]]);
        at += 5;
        let end = (at + len as usize).min(data.len());
        fs.write_file(&Path::new("/db").join(name), data[at..end].to_vec());
        at = end;
    }
    let Ok(e) = Engine::open(options(&fs)) else {
        return;
    };
    for i in 0..20u32 {
        let key = format!("key{i}");
        let _ = e.get((i % 3) as u8, key.as_bytes());
        let _ = e.ttl(0, key.as_bytes());
    }
    let _ = e.scan(0, 0, 100);
    if e.put(0, b"after", b"recovery", None).is_ok() {
        assert!(
            matches!(e.get(0, b"after"), Ok(Some(v)) if &v[..] == b"recovery"),
            "a write after recovery must read back"
        );
    }
    let _ = e.close();
}
