//! Collections as families of records: a change is whole or absent after a crash, and a
//! root dropped by any path (delete, overwrite, expiry, eviction, flush, shrinking)
//! drops its chunks, while the engine is open and after a restart.

mod common;

use caskade_engine::io::{CrashMode, FaultStorage};
use caskade_engine::{
    ChunkWrite, CollectionWrite, Engine, Error, Family, Fsync, ManualClock, RootWrite, ValueType,
};
use common::{T0, mem_options, open};
use std::sync::Arc;

fn setup() -> (FaultStorage, Arc<ManualClock>) {
    (FaultStorage::new(), Arc::new(ManualClock::new(T0)))
}

/// Writes a hash at `key` whose root says `tag` and whose chunks `0..n` say `tag:i`.
fn write(e: &Engine, key: &[u8], family: Family, tag: &str, exp: Option<u64>) {
    let values: Vec<Vec<u8>> = (0..family.chunks)
        .map(|i| format!("{tag}:{i}").repeat(20).into_bytes())
        .collect();
    let change = CollectionWrite {
        root: Some(RootWrite {
            vtype: ValueType::Hash,
            head: &[],
            value: tag.as_bytes(),
            family: Some(family),
            expire_at_ms: exp,
        }),
        chunks: values
            .iter()
            .enumerate()
            .map(|(i, v)| ChunkWrite {
                n: i as u32,
                value: Some(v),
            })
            .collect(),
        root_unchanged: false,
    };
    e.write_collection(0, key, &change).expect("write");
}

/// The root's tag, checking that every chunk says the same.
fn read(e: &Engine, key: &[u8]) -> Option<String> {
    let root = e.get_typed(0, key).expect("get")?;
    assert_eq!(root.vtype, ValueType::Hash);
    let tag = String::from_utf8(root.value.to_vec()).expect("utf8");
    let family = Family::decode(&root.meta).expect("a family");
    assert_eq!(
        e.family(0, key).map(|(t, f, _)| (t, f)),
        Some((ValueType::Hash, family)),
        "the registry knows the family"
    );
    for i in 0..family.chunks {
        let c = e.chunk(0, key, family, i).expect("chunk").expect("present");
        assert_eq!(
            c.to_vec(),
            format!("{tag}:{i}").repeat(20).into_bytes(),
            "chunk {i} belongs to the root's state"
        );
    }
    Some(tag)
}

fn fam(version: u64, chunks: u32) -> Family {
    Family::new(version, chunks)
}

#[test]
fn chunks_are_read_back_and_survive_a_restart() {
    let (fs, clock) = setup();
    let o = mem_options(&fs, &clock, Fsync::Never);
    let e = open(&o);
    write(&e, b"h", fam(7, 5), "one", None);
    assert_eq!(read(&e, b"h").as_deref(), Some("one"));
    assert_eq!(e.len(0), 1, "a collection is one key");
    assert_eq!(e.stats().chunks, 5);
    assert!(matches!(e.get(0, b"h"), Err(Error::WrongType)));
    drop(e);
    let e = open(&o);
    assert_eq!(read(&e, b"h").as_deref(), Some("one"));
    assert_eq!((e.len(0), e.stats().chunks), (1, 5));
    assert_eq!(e.scan(0, 0, 100).expect("scan").keys.len(), 1);
}

/// A root (value and meta) and its chunks read alike from the hot tier, where only
/// their bytes are copied out, and from the file: for a small record and one past the
/// tier's copy limit (shared, not copied), and not at all once expired.
#[test]
fn roots_and_chunks_read_alike_from_memory_and_from_the_file() {
    let (fs, clock) = setup();
    let mut o = mem_options(&fs, &clock, Fsync::Never);
    o.hot_bytes = 64 << 20;
    let e = open(&o);
    let big_root = "r".repeat(3000);
    for (key, tag) in [(&b"small"[..], "s"), (&b"big"[..], big_root.as_str())] {
        write(&e, key, fam(9, 3), tag, None);
        // Read until admitted (the tier admits what is read again).
        for _ in 0..3 {
            assert_eq!(read(&e, key).as_deref(), Some(tag));
        }
        let before = e.stats().hot.hits;
        assert_eq!(read(&e, key).as_deref(), Some(tag), "from memory");
        let after = e.stats().hot;
        assert!(
            after.hits >= before + 4,
            "root and chunks were hot: {before} {after:?}"
        );
    }
    write(&e, b"short", fam(8, 2), "x", Some(T0 + 1000));
    assert_eq!(read(&e, b"short").as_deref(), Some("x"));
    clock.advance(2000);
    assert!(
        e.get_typed(0, b"short").expect("get").is_none(),
        "expired in memory"
    );
    drop(e);
    let e = open(&o);
    assert_eq!(read(&e, b"small").as_deref(), Some("s"), "from the file");
    assert_eq!(read(&e, b"big").as_deref(), Some(big_root.as_str()));
    assert!(e.get_typed(0, b"short").expect("get").is_none());
}

#[test]
fn every_way_a_root_goes_takes_its_chunks() {
    let (fs, clock) = setup();
    let o = mem_options(&fs, &clock, Fsync::Never);
    let e = open(&o);
    write(&e, b"del", fam(1, 3), "a", None);
    write(&e, b"set", fam(2, 3), "b", None);
    write(&e, b"exp", fam(3, 3), "c", Some(T0 + 1000));
    write(&e, b"new", fam(4, 3), "d", None);
    write(&e, b"shrink", fam(5, 4), "e", None);
    write(&e, b"keep", fam(6, 2), "f", None);
    assert_eq!(e.stats().chunks, 18);
    assert!(e.delete(0, b"del").expect("delete"));
    e.put(0, b"set", b"a string now", None).expect("put");
    clock.advance(2000);
    assert_eq!(e.get_typed(0, b"exp").expect("get"), None);
    // A new family at the same key replaces the old one's chunks.
    write(&e, b"new", fam(40, 1), "g", None);
    write(&e, b"shrink", fam(5, 2), "h", None);
    e.put(0, b"unrelated", b"x", None)
        .expect("a write settles expired roots");
    assert_eq!(
        e.stats().chunks,
        2 + 1 + 2,
        "only live families' chunks remain"
    );
    assert_eq!(e.stats().chunked_collections, 3);
    for (k, want) in [(&b"new"[..], "g"), (b"shrink", "h"), (b"keep", "f")] {
        assert_eq!(read(&e, k).as_deref(), Some(want));
    }
    drop(e);
    let e = open(&o);
    assert_eq!(
        e.stats().chunks,
        5,
        "dropped chunks stay dropped after a restart"
    );
    assert_eq!(e.stats().chunked_collections, 3);
    for (k, want) in [(&b"new"[..], "g"), (b"shrink", "h"), (b"keep", "f")] {
        assert_eq!(read(&e, k).as_deref(), Some(want));
    }
    assert_eq!(
        e.get(0, b"set").expect("get").as_deref(),
        Some(&b"a string now"[..])
    );
    e.flush_namespace(0).expect("flush");
    assert_eq!((e.stats().chunks, e.stats().chunked_collections), (0, 0));
}

#[test]
fn eviction_treats_a_collection_as_one_key() {
    let (fs, clock) = setup();
    let mut o = mem_options(&fs, &clock, Fsync::Never);
    o.max_keys = Some(4);
    o.eviction = caskade_engine::PolicyKind::Fifo;
    let e = open(&o);
    write(&e, b"big", fam(9, 6), "x", None);
    for i in 0..10 {
        e.put(0, format!("k{i}").as_bytes(), b"v", None)
            .expect("put");
    }
    assert!(e.len(0) <= 4);
    assert_eq!(
        e.get_typed(0, b"big").expect("get"),
        None,
        "the oldest key went"
    );
    assert_eq!(e.stats().chunks, 0, "and its chunks with it");
}

#[test]
fn a_change_torn_by_a_crash_is_before_or_after_never_between() {
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..60u64 {
        let (fs, clock) = setup();
        let mut o = mem_options(&fs, &clock, Fsync::Never);
        o.segment_bytes = 1 << 20;
        {
            let e = open(&o);
            write(&e, b"h", fam(3, 6), "before", None);
            e.sync().expect("sync");
            write(&e, b"h", fam(3, 6), "after", None);
            e.flush_writes().expect("flush");
            let crashed = fs.crash(CrashMode::TornTail { seed });
            std::mem::forget(e);
            let o2 = mem_options(&crashed, &clock, Fsync::Never);
            let e2 = open(&o2);
            let got = read(&e2, b"h").expect("the synced state at least");
            seen.insert(got);
        }
    }
    assert!(
        seen.contains("before"),
        "some crashes cut the change: {seen:?}"
    );
}

/// Chunks `ns` of `key` written as `{tag}:{n}`, under `root` (`kept`: as it was).
fn change_chunks(e: &Engine, key: &[u8], root: RootWrite<'_>, kept: bool, ns: &[u32], tag: &str) {
    let bodies: Vec<Vec<u8>> = ns
        .iter()
        .map(|i| format!("{tag}:{i}").into_bytes())
        .collect();
    let change = CollectionWrite {
        root: Some(root),
        chunks: ns
            .iter()
            .zip(&bodies)
            .map(|(&n, b)| ChunkWrite { n, value: Some(b) })
            .collect(),
        root_unchanged: kept,
    };
    e.write_collection(0, key, &change).expect("write");
}

fn chunk_text(e: &Engine, key: &[u8], family: Family, n: u32) -> String {
    let c = e.chunk(0, key, family, n).expect("chunk").expect("present");
    String::from_utf8(c.to_vec()).expect("utf8")
}

#[test]
fn a_change_that_keeps_its_root_writes_its_chunks_alone_and_is_whole_after_a_crash() {
    let root = |family| RootWrite {
        vtype: ValueType::Hash,
        head: &[],
        value: b"the root",
        family: Some(family),
        expire_at_ms: None,
    };
    let f = fam(3, 4);
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..40u64 {
        let (fs, clock) = setup();
        let mut o = mem_options(&fs, &clock, Fsync::Never);
        o.segment_bytes = 1 << 20;
        let e = open(&o);
        change_chunks(&e, b"h", root(f), false, &[0, 1, 2, 3], "old");
        // The same change with and without the root: only the root's record differs.
        let at = e.stats().bytes_written;
        change_chunks(&e, b"h", root(f), false, &[1, 2], "mid");
        let full = e.stats().bytes_written - at;
        let at = e.stats().bytes_written;
        e.sync().expect("sync");
        change_chunks(&e, b"h", root(f), true, &[1, 2], "new");
        let kept = e.stats().bytes_written - at;
        assert!(
            full >= kept + b"the root".len() as u64 + 2,
            "{full} against {kept}"
        );
        assert_eq!(
            e.get_typed(0, b"h").expect("get").map(|r| r.value.to_vec()),
            Some(b"the root".to_vec())
        );
        assert_eq!(e.family(0, b"h").map(|(_, fm, _)| fm), Some(f));
        assert_eq!(chunk_text(&e, b"h", f, 1), "new:1");
        // A crash keeps both chunks of the kept-root change or neither.
        e.flush_writes().expect("flush");
        let crashed = fs.crash(CrashMode::TornTail { seed });
        std::mem::forget(e);
        let e2 = open(&mem_options(&crashed, &clock, Fsync::Never));
        assert_eq!(e2.family(0, b"h").map(|(_, fm, _)| fm), Some(f));
        let both = (chunk_text(&e2, b"h", f, 1), chunk_text(&e2, b"h", f, 2));
        assert!(
            both == ("new:1".into(), "new:2".into()) || both == ("mid:1".into(), "mid:2".into()),
            "{both:?}"
        );
        assert_eq!(chunk_text(&e2, b"h", f, 0), "old:0");
        seen.insert(both.0);
    }
    assert!(
        seen.contains("mid:1"),
        "some crashes cut the change: {seen:?}"
    );
}

#[test]
fn a_kept_root_is_written_after_all_when_the_key_no_longer_holds_it() {
    let (fs, clock) = setup();
    let o = mem_options(&fs, &clock, Fsync::Never);
    let e = open(&o);
    let root = |family, exp| RootWrite {
        vtype: ValueType::Hash,
        head: &[],
        value: b"r",
        family: Some(family),
        expire_at_ms: exp,
    };
    let f = fam(5, 2);
    // Gone meanwhile (deleted, evicted, expired): the change brings its root back, so
    // no chunk is left without one.
    change_chunks(&e, b"h", root(f, None), false, &[0, 1], "a");
    assert!(e.delete(0, b"h").expect("delete"));
    change_chunks(&e, b"h", root(f, None), true, &[0, 1], "b");
    assert_eq!(
        e.get_typed(0, b"h").expect("get").map(|r| r.value.to_vec()),
        Some(b"r".to_vec())
    );
    assert_eq!(chunk_text(&e, b"h", f, 1), "b:1");
    // Another family or expiry than the key holds: the root is written with them.
    let g = fam(5, 3);
    change_chunks(&e, b"h", root(g, None), true, &[0, 1, 2], "c");
    assert_eq!(e.family(0, b"h").map(|(_, fm, _)| fm), Some(g));
    change_chunks(&e, b"h", root(g, Some(T0 + 500)), true, &[2], "d");
    assert_eq!(e.family(0, b"h").map(|(_, _, x)| x), Some(Some(T0 + 500)));
    drop(e);
    let e = open(&o);
    assert_eq!(
        e.family(0, b"h").map(|(_, fm, x)| (fm, x)),
        Some((g, Some(T0 + 500)))
    );
    assert_eq!(chunk_text(&e, b"h", g, 2), "d:2");
    assert_eq!(e.stats().chunks, 3);
    // Kept, and read back after a restart.
    let at = e.stats().bytes_written;
    change_chunks(&e, b"h", root(g, Some(T0 + 500)), true, &[0], "e");
    assert!(e.stats().bytes_written - at < 40, "one small chunk record");
    drop(e);
    let e = open(&o);
    assert_eq!(chunk_text(&e, b"h", g, 0), "e:0");
    assert_eq!(chunk_text(&e, b"h", g, 2), "d:2");
    assert_eq!(
        e.get_typed(0, b"h").expect("get").map(|r| r.value.to_vec()),
        Some(b"r".to_vec())
    );
}
