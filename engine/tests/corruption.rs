//! Damaged files: a flipped byte is a miss (never a wrong value, never a panic), a torn
//! tail is cut on open, a damaged hint file is ignored, and foreign files are refused
//! with an error that names them.

mod common;

use caskade_engine::io::{FaultStorage, Storage};
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

/// A flip in synced bytes that no hint describes: the damaged record's key cannot be
/// trusted, so every key written before the damage is dropped (any of them might have
/// been overwritten there); the keys written after it survive, and nothing is wrong.
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
    // The scan path is the subject: no index snapshot, no hint.
    fs.remove(Path::new("/db/INDEX"))
        .expect("remove the snapshot");
    let pristine = fs.read_file(&seg).expect("segment");
    // Where each key's record starts (22 header bytes before its key).
    let starts: Vec<usize> = keys.iter().map(|(k, _)| find(&fs, &seg, k) - 22).collect();
    fs.write_file(hint, Vec::new()); // force the scan path
    for at in 16..pristine.len() {
        let mut damaged = pristine.clone();
        damaged[at] ^= 0x01;
        fs.write_file(&seg, damaged);
        for round in 0..2 {
            let e = Engine::open(o.clone()).expect("open despite damage");
            for (i, (k, v)) in keys.iter().enumerate() {
                match get(&e, 0, k) {
                    Some(got) => {
                        assert_eq!(&got, v, "wrong value for {k:?} after flip at {at}")
                    }
                    None => assert!(
                        starts[i] <= at,
                        "key{i}, written after the flip at {at}, was lost (open {round})"
                    ),
                }
            }
            drop(e);
        }
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
        // The clean close recorded the whole segment as synced; a crash would have
        // left the mark behind the unsynced "b".
        fs.remove(Path::new("/db/SYNCED")).expect("remove the mark");
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

/// What a key may read as after damage: its newest acknowledged value or a miss.
/// Anything else (an overwritten value, a deleted key back) is an older version.
struct Model {
    newest: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Model {
    /// Each key written twice (the second write in a later segment than the first),
    /// some deleted after; a clean stop.
    fn build(o: &caskade_engine::Options) -> Model {
        let e = open(o);
        let mut newest = Vec::new();
        for i in 0..240u32 {
            e.put(
                0,
                format!("key:{i}").as_bytes(),
                format!("old:{i}:{:040}", 0).as_bytes(),
                None,
            )
            .expect("put");
            if i % 10 == 0 {
                // Never overwritten: keeps each older segment from being compacted away
                // (with the garbage ratio at 1.0), so the older versions stay on disk.
                e.put(0, format!("pin:{i}").as_bytes(), b"pinned", None)
                    .expect("put");
            }
        }
        for i in 0..240u32 {
            let key = format!("key:{i}").into_bytes();
            if i % 7 == 3 {
                e.delete(0, &key).expect("delete");
                newest.push((key, None));
            } else {
                let v = format!("new:{i}:{:040}", 1).into_bytes();
                e.put(0, &key, &v, None).expect("put");
                newest.push((key, Some(v)));
            }
        }
        assert!(e.stats().segments >= 6, "the keys span several segments");
        e.close().expect("close");
        Model { newest }
    }

    /// Counts misses; fails on anything that is not the newest value.
    fn check(&self, e: &Engine, what: &str) -> usize {
        let mut misses = 0;
        for (k, want) in &self.newest {
            let got = get(e, 0, k);
            match (&got, want) {
                (None, None) => {}
                (None, Some(_)) => misses += 1,
                (Some(g), Some(w)) if g == w => {}
                (Some(g), _) => panic!(
                    "{what}: {} reads {:?}, an older version (newest: {:?})",
                    String::from_utf8_lossy(k),
                    String::from_utf8_lossy(g),
                    want.as_ref()
                        .map(|w| String::from_utf8_lossy(w).into_owned())
                ),
            }
        }
        misses
    }
}

/// Damage to synced segments, with and without their hint files: every key reads as
/// its newest value or as a miss, at the first open and at the next one (after the
/// engine ran on the damaged directory), never as a version it replaced.
#[test]
fn damage_to_synced_segments_costs_misses_never_older_versions() {
    let (fs, clock) = setup();
    let mut o = mem_options(&fs, &clock, Fsync::Never);
    o.compaction_garbage_ratio = 1.0;
    let model = Model::build(&o);
    let segments: Vec<u32> = files(&fs, Path::new("/db"))
        .iter()
        .filter_map(|n| n.strip_suffix(".seg")?.parse().ok())
        .collect();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let scenarios = [
        "truncate half",
        "truncate third, no hint",
        "flips",
        "flips, no hint",
        "hint gone",
    ];
    for &id in &segments {
        for what in scenarios {
            let copy = fs.crash(caskade_engine::io::CrashMode::DropUnsynced);
            let seg = seg_path(Path::new("/db"), id);
            let hint = Path::new("/db").join(format!("{id:010}.hint"));
            let mut bytes = copy.read_file(&seg).expect("segment");
            match what {
                "truncate half" => bytes.truncate(16 + (bytes.len() - 16) / 2),
                "truncate third, no hint" => {
                    bytes.truncate(16 + (bytes.len() - 16) / 3);
                    copy.remove(&hint).expect("remove hint");
                }
                "flips" | "flips, no hint" => {
                    for _ in 0..20 {
                        let at = 16 + (next() as usize) % (bytes.len() - 16);
                        bytes[at] ^= 1 << (next() % 8);
                    }
                    if what == "flips, no hint" {
                        copy.remove(&hint).expect("remove hint");
                    }
                }
                _ => copy.remove(&hint).expect("remove hint"),
            }
            copy.write_file(&seg, bytes);
            let co = {
                let mut co = o.clone();
                co.storage = Arc::new(copy.clone());
                co
            };
            let label = format!("segment {id}, {what}");
            let e = open(&co);
            let misses = model.check(&e, &label);
            if what == "hint gone" {
                assert_eq!(misses, 0, "{label}: a missing hint alone loses nothing");
            }
            // The engine runs on the damaged directory, then restarts.
            for i in 0..50u32 {
                e.put(0, format!("later:{i}").as_bytes(), &[1u8; 60], None)
                    .expect("put");
            }
            drop(e);
            let e = open(&co);
            let again = model.check(&e, &format!("{label}, reopened"));
            assert!(again >= misses, "{label}: a dropped key came back");
            assert_eq!(get(&e, 0, b"later:49").as_deref(), Some(&[1u8; 60][..]));
        }
    }
}

/// After a crash the last segment's bytes below the sync mark were on disk: damage
/// there is damage (misses), not a torn tail to cut back to older versions.
#[test]
fn damage_below_the_sync_mark_of_the_last_segment_costs_misses_not_older_versions() {
    let (fs, clock) = setup();
    let mut o = mem_options(&fs, &clock, Fsync::Always);
    o.segment_bytes = 64 << 10;
    let e = open(&o);
    for i in 0..100u32 {
        e.put(0, format!("key:{i}").as_bytes(), b"old", None)
            .expect("put");
    }
    for i in 0..100u32 {
        e.put(0, format!("key:{i}").as_bytes(), b"new", None)
            .expect("put");
    }
    e.close().expect("close");
    drop(e);
    // The clean stop left a hint and the mark; a crash leaves no hint for the active
    // segment, so take the hint away and cut the segment below what the mark says.
    let seg = seg_path(Path::new("/db"), 1);
    fs.remove(Path::new("/db/0000000001.hint"))
        .expect("remove hint");
    let mut bytes = fs.read_file(&seg).expect("segment");
    bytes.truncate(bytes.len() * 3 / 4);
    fs.write_file(&seg, bytes);
    let e = open(&o);
    for i in 0..100u32 {
        let got = get(&e, 0, format!("key:{i}").as_bytes());
        assert_ne!(
            got.as_deref(),
            Some(&b"old"[..]),
            "key:{i} went back to its older version"
        );
    }
}
