//! Damaged files: a flipped byte is a miss (never a wrong value, never a panic), a torn
//! tail is cut on open, a damaged hint file is ignored, and foreign files are refused
//! with an error that names them.

mod common;

use caskade_engine::io::FaultStorage;
use caskade_engine::{Engine, Error, Fsync, ManualClock};
use common::*;
use std::path::Path;
use std::sync::Arc;

fn setup() -> (FaultStorage, Arc<ManualClock>) {
    (FaultStorage::new(), Arc::new(ManualClock::new(T0)))
}

/// Offset of `needle` in the file, so tests damage exactly the value they mean to.
fn find(fs: &FaultStorage, path: &Path, needle: &[u8]) -> usize {
    let bytes = fs.read_file(path).expect("file");
    bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present")
}

fn flip(fs: &FaultStorage, path: &Path, at: usize) {
    let mut bytes = fs.read_file(path).expect("file");
    bytes[at] ^= 0x20;
    fs.write_file(path, bytes);
}

/// "victim" gets an old version sealed away in segment 1 and a new one in the active
/// segment, followed by one more key.
fn write_two_versions(e: &Engine, last_key: &[u8], last_value: &[u8]) {
    e.put(0, b"victim", b"old-version-of-value", None)
        .expect("put");
    for i in 0..100u32 {
        e.put(0, format!("filler{i}").as_bytes(), &[7u8; 64], None)
            .expect("put");
    }
    e.put(0, b"victim", b"NEW-VERSION-OF-VALUE", None)
        .expect("put");
    e.put(0, last_key, last_value, None).expect("put");
}

#[test]
fn flipped_value_byte_is_a_miss_while_open_and_after_reopen() {
    let (fs, clock) = setup();
    let o = mem_options(&fs, &clock, Fsync::Always);
    let e = open(&o);
    write_two_versions(&e, b"bystander", b"fine");
    let active = seg_path(Path::new("/db"), e.stats().segments as u32);
    let at = find(&fs, &active, b"NEW-VERSION");
    flip(&fs, &active, at + 3);
    assert_eq!(
        get(&e, 0, b"victim"),
        None,
        "corrupt record must read as a miss"
    );
    assert_eq!(e.stats().corrupt_records, 1);
    assert_eq!(get(&e, 0, b"bystander").as_deref(), Some(&b"fine"[..]));
    drop(e);
    let e = open(&o);
    assert_eq!(
        get(&e, 0, b"victim"),
        None,
        "the old version must not come back"
    );
    assert_eq!(get(&e, 0, b"bystander").as_deref(), Some(&b"fine"[..]));
}

#[test]
fn flipped_byte_found_by_the_recovery_scan_drops_the_key() {
    let (fs, clock) = setup();
    let o = mem_options(&fs, &clock, Fsync::Always);
    let e = open(&o);
    write_two_versions(&e, b"after", b"still-here");
    let active = seg_path(Path::new("/db"), e.stats().segments as u32);
    // Crash (no hint for the active segment), then damage the newest version on disk.
    let fs2 = fs.crash(caskade_engine::io::CrashMode::DropUnsynced);
    drop(e);
    let at = find(&fs2, &active, b"NEW-VERSION");
    flip(&fs2, &active, at + 2);
    let e = open(&mem_options(&fs2, &clock, Fsync::Always));
    assert_eq!(
        get(&e, 0, b"victim"),
        None,
        "neither the damaged nor the old version"
    );
    assert_eq!(get(&e, 0, b"after").as_deref(), Some(&b"still-here"[..]));
    assert_eq!(e.stats().corrupt_records, 1);
}

#[test]
fn flipped_byte_in_a_sealed_segment_with_a_hint_is_a_miss() {
    let (fs, clock) = setup();
    let o = mem_options(&fs, &clock, Fsync::Never);
    let e = open(&o);
    e.put(0, b"sealed", b"SEALED-VALUE", None).expect("put");
    for i in 0..200u32 {
        e.put(0, format!("filler{i}").as_bytes(), &[7u8; 64], None)
            .expect("put");
    }
    e.close().expect("close");
    drop(e);
    let first = seg_path(Path::new("/db"), 1);
    let at = find(&fs, &first, b"SEALED-VALUE");
    flip(&fs, &first, at);
    let e = open(&o);
    assert_eq!(get(&e, 0, b"sealed"), None);
    assert_eq!(get(&e, 0, b"filler0").as_deref(), Some(&[7u8; 64][..]));
}

#[test]
fn every_single_byte_flip_in_a_segment_is_survived() {
    let (fs, clock) = setup();
    let o = mem_options(&fs, &clock, Fsync::Never);
    let keys: Vec<(Vec<u8>, Vec<u8>)> = (0..8u8)
        .map(|i| (format!("key{i}").into_bytes(), vec![i; 20 + i as usize]))
        .collect();
    {
        let e = open(&o);
        for (k, v) in &keys {
            e.put(0, k, v, None).expect("put");
        }
        e.close().expect("close");
    }
    let seg = seg_path(Path::new("/db"), 1);
    let hint = Path::new("/db/0000000001.hint");
    let pristine = fs.read_file(&seg).expect("segment");
    fs.write_file(hint, Vec::new()); // force the scan path
    for at in 16..pristine.len() {
        let mut damaged = pristine.clone();
        damaged[at] ^= 0x01;
        fs.write_file(&seg, damaged);
        let e = Engine::open(o.clone()).expect("open despite damage");
        let mut misses = 0;
        for (k, v) in &keys {
            match get(&e, 0, k) {
                Some(got) => assert_eq!(&got, v, "wrong value for {k:?} after flip at {at}"),
                None => misses += 1,
            }
        }
        // One key for the damaged record, and at most one more when the flip lands in
        // the key itself: the garbled key is forgotten too, which is safe (a miss) and
        // keeps an older version of the real key from coming back.
        assert!(misses <= 2, "one flipped byte cost {misses} keys (at {at})");
        drop(e);
        fs.write_file(hint, Vec::new());
    }
}

#[test]
fn torn_tail_is_truncated_and_appends_continue() {
    let (fs, clock) = setup();
    let o = mem_options(&fs, &clock, Fsync::Never);
    {
        let e = open(&o);
        e.put(0, b"a", b"complete", None).expect("put");
        e.sync().expect("sync");
        e.put(0, b"b", &[9u8; 200], None).expect("put");
        e.flush_writes().expect("hand the buffer to the file");
        let torn = fs.read_file(&seg_path(Path::new("/db"), 1)).expect("seg");
        drop(e);
        // Keep all of "a" and half of "b": a write cut off by a crash.
        let cut = torn.len() - 100;
        fs.write_file(&seg_path(Path::new("/db"), 1), torn[..cut].to_vec());
        fs.write_file(Path::new("/db/0000000001.hint"), Vec::new());
    }
    let e = open(&o);
    assert_eq!(get(&e, 0, b"a").as_deref(), Some(&b"complete"[..]));
    assert_eq!(get(&e, 0, b"b"), None);
    e.put(0, b"c", b"after", None)
        .expect("put after truncation");
    // Read at once, from the write buffer: the record lies where the cut bytes were,
    // and the file still holds garbage there until the buffer is handed over.
    assert_eq!(get(&e, 0, b"c").as_deref(), Some(&b"after"[..]));
    drop(e);
    let e = open(&o);
    assert_eq!(get(&e, 0, b"c").as_deref(), Some(&b"after"[..]));
    assert_eq!(get(&e, 0, b"a").as_deref(), Some(&b"complete"[..]));
}

#[test]
fn damaged_hint_file_is_ignored() {
    let (fs, clock) = setup();
    let o = mem_options(&fs, &clock, Fsync::Never);
    {
        let e = open(&o);
        for i in 0..300u32 {
            e.put(0, format!("k{i}").as_bytes(), &[1u8; 50], None)
                .expect("put");
        }
        e.close().expect("close");
    }
    let hint = Path::new("/db/0000000001.hint");
    flip(&fs, hint, 30);
    let e = open(&o);
    for i in 0..300u32 {
        assert!(get(&e, 0, format!("k{i}").as_bytes()).is_some(), "k{i}");
    }
}

#[test]
fn foreign_or_newer_files_are_refused_by_name() {
    let (fs, clock) = setup();
    let o = mem_options(&fs, &clock, Fsync::Never);
    drop(open(&o));
    let meta = Path::new("/db/CASKADE");
    let mut bytes = fs.read_file(meta).expect("meta");
    bytes[10] = 9; // format version 9
    fs.write_file(meta, bytes);
    match Engine::open(o.clone()) {
        Err(Error::BadFile { path, reason }) => {
            assert!(path.ends_with("CASKADE"));
            assert!(reason.contains("version 9"), "{reason}");
        }
        other => panic!("expected BadFile, got {:?}", other.err()),
    }
    fs.write_file(meta, b"hello".to_vec());
    assert!(matches!(
        Engine::open(o.clone()),
        Err(Error::BadFile { .. })
    ));
    fs.remove_for_test(meta);
    assert!(
        matches!(Engine::open(o), Err(Error::BadFile { .. })),
        "segments without meta"
    );
}

trait RemoveForTest {
    fn remove_for_test(&self, p: &Path);
}
impl RemoveForTest for FaultStorage {
    fn remove_for_test(&self, p: &Path) {
        caskade_engine::io::Storage::remove(self, p).expect("remove");
    }
}
