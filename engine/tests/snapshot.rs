//! The index snapshot: a clean shutdown writes it, the next open loads the index from
//! it and removes it; a damaged or stale one is ignored and the hints rebuild the same
//! index.

use caskade_engine::{Engine, Fsync, Options, PolicyKind};
use std::path::Path;

fn options(dir: &Path) -> Options {
    let mut o = Options::new(dir);
    o.fsync = Fsync::Never;
    // Several segments, so the snapshot lists more than one.
    o.segment_bytes = 256 << 10;
    o
}

fn fill(e: &Engine, n: u32) {
    for i in 0..n {
        e.put(
            (i % 3) as u8,
            format!("key:{i}").as_bytes(),
            format!("v{i}").as_bytes(),
            None,
        )
        .expect("put");
    }
    for i in (0..n).step_by(7) {
        e.delete((i % 3) as u8, format!("key:{i}").as_bytes())
            .expect("delete");
    }
}

fn check(e: &Engine, n: u32, others: usize) {
    for i in 0..n {
        let got = e
            .get((i % 3) as u8, format!("key:{i}").as_bytes())
            .expect("get");
        if i % 7 == 0 {
            assert_eq!(got, None, "key:{i} was deleted");
        } else {
            assert_eq!(got.as_deref(), Some(format!("v{i}").as_bytes()), "key:{i}");
        }
    }
    assert_eq!(e.total_len(), (n - n.div_ceil(7)) as usize + others);
}

#[test]
fn a_clean_shutdown_leaves_a_snapshot_that_the_next_open_loads_and_removes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let snap = dir.path().join("INDEX");
    let e = Engine::open(options(dir.path())).expect("open");
    fill(&e, 20_000);
    let before = e.stats();
    e.close().expect("close");
    assert!(snap.exists(), "clean shutdown writes the snapshot");
    let e = Engine::open(options(dir.path())).expect("reopen");
    assert!(!snap.exists(), "removed once read");
    check(&e, 20_000, 0);
    let after = e.stats();
    assert_eq!(
        (
            after.segments,
            after.garbage_bytes,
            after.live_bytes,
            after.index_bytes
        ),
        (
            before.segments,
            before.garbage_bytes,
            before.live_bytes,
            before.index_bytes
        ),
        "segments, their dead bytes and the index come back as they were"
    );
    // Writes after a snapshot-based open are in the next snapshot.
    e.put(0, b"later", b"x", None).expect("put");
    e.close().expect("close");
    let e = Engine::open(options(dir.path())).expect("reopen");
    assert_eq!(e.get(0, b"later").expect("get").as_deref(), Some(&b"x"[..]));
    check(&e, 20_000, 1);
}

#[test]
fn a_damaged_or_stale_snapshot_is_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let snap = dir.path().join("INDEX");
    let e = Engine::open(options(dir.path())).expect("open");
    fill(&e, 5_000);
    e.close().expect("close");
    // One flipped bit in an entry: that block fails its CRC; the hints take over.
    let mut bytes = std::fs::read(&snap).expect("read");
    let last = bytes.len() - 3;
    bytes[last] ^= 0x10;
    std::fs::write(&snap, &bytes).expect("write");
    let e = Engine::open(options(dir.path())).expect("open with a damaged snapshot");
    assert!(!snap.exists());
    check(&e, 5_000, 0);
    e.close().expect("close");
    // A snapshot kept aside, then more writes: it no longer matches the segments.
    let kept = std::fs::read(&snap).expect("read");
    let e = Engine::open(options(dir.path())).expect("open");
    e.put(1, b"newer", b"n", None).expect("put");
    e.close().expect("close");
    std::fs::write(&snap, &kept).expect("put the stale one back");
    let e = Engine::open(options(dir.path())).expect("open with a stale snapshot");
    assert_eq!(e.get(1, b"newer").expect("get").as_deref(), Some(&b"n"[..]));
    check(&e, 5_000, 1);
}

#[test]
fn policy_bits_survive_a_restart_through_the_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = options(dir.path());
    o.eviction = PolicyKind::Sieve;
    o.max_keys = Some(1000);
    let e = Engine::open(o.clone()).expect("open");
    for i in 0..1000u32 {
        e.put(0, format!("k{i}").as_bytes(), b"v", None)
            .expect("put");
    }
    // The first 100 are read: SIEVE's visited bits, in the index slots.
    for i in 0..100u32 {
        assert!(e.get(0, format!("k{i}").as_bytes()).expect("get").is_some());
    }
    e.close().expect("close");
    let e = Engine::open(o).expect("reopen");
    for i in 0..500u32 {
        e.put(0, format!("new{i}").as_bytes(), b"v", None)
            .expect("put");
    }
    // Those read before the restart outlived the 500 evictions.
    let kept = (0..100u32)
        .filter(|i| e.get(0, format!("k{i}").as_bytes()).expect("get").is_some())
        .count();
    assert_eq!(kept, 100);
}

/// Without a snapshot the index is rebuilt from hints, each shard reserving room for
/// the keys the rest of the log is expected to bring: the rebuilt index is no larger
/// than the one grown key by key, whether the log holds new keys or overwrites.
#[test]
fn an_index_rebuilt_from_hints_is_no_larger_than_one_grown_by_writes() {
    for (keys, rounds) in [(40_000u32, 1u32), (4_000, 10)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = Engine::open(options(dir.path())).expect("open");
        for r in 0..rounds {
            for i in 0..keys {
                e.put(
                    0,
                    format!("key:{i}").as_bytes(),
                    format!("v{r}").as_bytes(),
                    None,
                )
                .expect("put");
            }
        }
        let grown = e.stats();
        assert!(grown.segments > 2, "several segments: {}", grown.segments);
        e.close().expect("close");
        std::fs::remove_file(dir.path().join("INDEX")).expect("remove the snapshot");
        let e = Engine::open(options(dir.path())).expect("reopen from hints");
        assert_eq!(e.total_len(), keys as usize);
        let last = format!("v{}", rounds - 1);
        assert_eq!(
            e.get(0, b"key:7").expect("get").as_deref(),
            Some(last.as_bytes())
        );
        let rebuilt = e.stats().index_bytes;
        assert!(
            rebuilt * 10 <= grown.index_bytes * 11,
            "{keys} keys x {rounds}: {rebuilt} bytes rebuilt, {} grown",
            grown.index_bytes
        );
    }
}
