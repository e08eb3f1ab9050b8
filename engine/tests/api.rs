//! The engine's operations, one behaviour per test, on the real file system.

mod common;

use caskade_engine::{Engine, Error, Fsync, ManualClock, Options};
use common::*;
use std::sync::Arc;

fn tmp_engine() -> (tempfile::TempDir, Options, Arc<ManualClock>, Engine) {
    tmp_engine_of(64 << 10)
}

fn tmp_engine_of(segment_bytes: u64) -> (tempfile::TempDir, Options, Arc<ManualClock>, Engine) {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let mut o = Options::new(dir.path());
    o.clock = clock.clone();
    o.segment_bytes = segment_bytes;
    let e = open(&o);
    (dir, o, clock, e)
}

#[test]
fn put_get_overwrite_delete() {
    let (_d, _o, _c, e) = tmp_engine();
    assert_eq!(get(&e, 0, b"k"), None);
    e.put(0, b"k", b"v1", None).expect("put");
    e.put(0, b"k", b"v2", None).expect("put");
    assert_eq!(get(&e, 0, b"k").as_deref(), Some(&b"v2"[..]));
    assert!(e.exists(0, b"k").expect("exists"));
    assert!(e.delete(0, b"k").expect("delete"));
    assert!(!e.delete(0, b"k").expect("delete again"));
    assert_eq!(get(&e, 0, b"k"), None);
    assert_eq!(e.len(0), 0);
}

#[test]
fn prefetch_is_a_hint_for_any_key_in_any_namespace() {
    let (_d, _o, _c, e) = tmp_engine();
    // Nothing written yet, a namespace never written, one out of range.
    for ns in [0, 3, 255] {
        e.prefetch(ns, b"k");
    }
    e.put(0, b"k", b"v", None).expect("put");
    e.prefetch(0, b"k");
    e.prefetch(0, b"");
    assert_eq!(get(&e, 0, b"k").as_deref(), Some(&b"v"[..]));
}

#[test]
fn empty_values_and_binary_keys_round_trip() {
    let (_d, _o, _c, e) = tmp_engine();
    let key = [0u8, 255, b'\r', b'\n', 0];
    e.put(0, &key, b"", None).expect("put");
    assert_eq!(get(&e, 0, &key), Some(vec![]));
    assert!(e.exists(0, &key).expect("exists"));
}

#[test]
fn namespaces_are_separate() {
    let (_d, _o, _c, e) = tmp_engine();
    e.put(0, b"k", b"zero", None).expect("put");
    e.put(15, b"k", b"fifteen", None).expect("put");
    assert_eq!(get(&e, 0, b"k").as_deref(), Some(&b"zero"[..]));
    assert_eq!(get(&e, 15, b"k").as_deref(), Some(&b"fifteen"[..]));
    assert_eq!(get(&e, 7, b"k"), None);
    e.flush_namespace(0).expect("flush");
    assert_eq!(get(&e, 0, b"k"), None);
    assert_eq!(get(&e, 15, b"k").as_deref(), Some(&b"fifteen"[..]));
    e.flush_all().expect("flushall");
    assert_eq!(e.total_len(), 0);
    assert!(matches!(e.get(16, b"k"), Err(Error::BadNamespace(16))));
}

#[test]
fn expiry_is_exact_to_the_millisecond() {
    let (_d, _o, clock, e) = tmp_engine();
    e.put(0, b"k", b"v", Some(T0 + 1500)).expect("put");
    assert_eq!(e.ttl(0, b"k").expect("ttl"), Some(Some(T0 + 1500)));
    clock.set(T0 + 1499);
    assert!(e.exists(0, b"k").expect("exists"));
    assert!(get(&e, 0, b"k").is_some());
    clock.set(T0 + 1500);
    assert!(!e.exists(0, b"k").expect("exists"));
    assert_eq!(get(&e, 0, b"k"), None);
    assert_eq!(e.ttl(0, b"k").expect("ttl"), None);
    assert!(!e.delete(0, b"k").expect("delete of expired"));
}

#[test]
fn expire_persist_and_conditions() {
    let (_d, _o, clock, e) = tmp_engine();
    e.put_item(0, b"k", b"v", None, b"etag").expect("put");
    assert!(!e.persist(0, b"k").expect("persist without ttl"));
    assert!(e.expire(0, b"k", T0 + 10_000).expect("expire"));
    // Changing the expiry keeps value and metadata.
    let item = e.get_item(0, b"k").expect("get").expect("present");
    assert_eq!((&item.value[..], &item.meta[..]), (&b"v"[..], &b"etag"[..]));
    assert_eq!(item.expire_at_ms, Some(T0 + 10_000));
    // GT: only a later expiry.
    assert!(
        !e.expire_if(0, b"k", Some(T0 + 5_000), |cur| cur
            .is_some_and(|c| T0 + 5_000 > c))
            .expect("gt")
    );
    assert!(e.persist(0, b"k").expect("persist"));
    assert_eq!(e.ttl(0, b"k").expect("ttl"), Some(None));
    assert!(!e.expire(0, b"missing", T0 + 1).expect("expire missing"));
    // An expiry in the past deletes.
    assert!(e.expire(0, b"k", T0 - 1).expect("expire past"));
    assert!(!e.exists(0, b"k").expect("exists"));
    e.put(0, b"p", b"v", Some(T0)).expect("put already expired");
    assert!(!e.exists(0, b"p").expect("exists"));
    clock.advance(1);
}

#[test]
fn active_sweep_removes_expired_keys_without_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let mut o = Options::new(dir.path());
    o.clock = clock.clone();
    o.maintenance_interval = std::time::Duration::from_millis(5);
    let e = open(&o);
    for i in 0..2000u32 {
        e.put(0, format!("k{i}").as_bytes(), b"v", Some(T0 + 1000))
            .expect("put");
    }
    e.put(0, b"keep", b"v", None).expect("put");
    assert_eq!(e.len(0), 2001);
    clock.advance(2000);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while e.len(0) > 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(e.len(0), 1);
    assert_eq!(e.stats().expired_keys, 2000);
    assert!(e.stats().garbage_bytes > 0);
}

#[test]
fn scan_walks_every_key_once_and_skips_expired() {
    let (_d, _o, clock, e) = tmp_engine();
    let mut want = Vec::new();
    for i in 0..500u32 {
        let k = format!("key-{i:04}").into_bytes();
        e.put(2, &k, b"x", None).expect("put");
        want.push(k);
    }
    e.put(2, b"short-lived", b"x", Some(T0 + 10)).expect("put");
    e.put(3, b"other-ns", b"x", None).expect("put");
    clock.advance(20);
    want.sort();
    for count in [1, 7, 10, 1000] {
        assert_eq!(scan_all(&e, 2, count), want, "count {count}");
    }
    assert_eq!(scan_all(&e, 3, 10), vec![b"other-ns".to_vec()]);
    assert_eq!(scan_all(&e, 4, 10), Vec::<Vec<u8>>::new());
}

#[test]
fn long_keys_scan_correctly() {
    let (_d, _o, _c, e) = tmp_engine();
    let long = vec![b'x'; 5000];
    e.put(0, &long, b"v", None).expect("put");
    assert_eq!(scan_all(&e, 0, 10), vec![long.clone()]);
    assert_eq!(get(&e, 0, &long).as_deref(), Some(&b"v"[..]));
}

#[test]
fn limits_are_errors_not_panics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = Options::new(dir.path());
    o.max_value_bytes = 1000;
    let e = open(&o);
    assert!(matches!(
        e.put(0, b"", b"v", None),
        Err(Error::KeyTooLong { .. })
    ));
    let huge_key = vec![1u8; 70_000];
    assert!(matches!(
        e.put(0, &huge_key, b"v", None),
        Err(Error::KeyTooLong { .. })
    ));
    assert!(matches!(
        e.put(0, b"k", &[0; 1001], None),
        Err(Error::ValueTooLong { .. })
    ));
    assert!(matches!(
        e.put_item(0, b"k", b"v", None, &[0; 256]),
        Err(Error::MetaTooLong { .. })
    ));
    let mut bad = Options::new(dir.path());
    bad.segment_bytes = 10;
    assert!(matches!(
        Engine::open(bad),
        Err(Error::BadOption {
            field: "segment_bytes",
            ..
        })
    ));
}

#[test]
fn data_survives_reopen_across_many_segments_using_hints() {
    let (dir, o, _c, e) = tmp_engine();
    for i in 0..3000u32 {
        e.put(0, format!("k{i}").as_bytes(), &[i as u8; 100], None)
            .expect("put");
    }
    for i in (0..3000u32).step_by(3) {
        e.delete(0, format!("k{i}").as_bytes()).expect("delete");
    }
    let stats = e.stats();
    assert!(stats.segments > 3, "segments {}", stats.segments);
    e.close().expect("close");
    assert!(matches!(e.get(0, b"k1"), Err(Error::Closed)));
    drop(e);
    let names = std::fs::read_dir(dir.path()).expect("ls").count();
    assert!(names > 4);
    let hints = std::fs::read_dir(dir.path())
        .expect("ls")
        .filter(|d| {
            d.as_ref()
                .is_ok_and(|d| d.file_name().to_string_lossy().ends_with(".hint"))
        })
        .count();
    assert_eq!(
        hints as u64, stats.segments,
        "every segment has a hint after close"
    );
    let e = open(&o);
    assert_eq!(e.len(0), 2000);
    for i in 0..3000u32 {
        let want = (i % 3 != 0).then(|| vec![i as u8; 100]);
        assert_eq!(get(&e, 0, format!("k{i}").as_bytes()), want, "k{i}");
    }
    let reopened = e.stats();
    assert_eq!(
        reopened.garbage_bytes, stats.garbage_bytes,
        "dead-byte accounting survives"
    );
}

/// A hint file of more entries than recovery applies on one thread, with overwrites,
/// deletes, expiries, two namespaces and flushes inside it: the reopened engine holds
/// exactly what the model does, with the same key counts and no fewer dead bytes.
#[test]
fn a_large_hint_file_applied_shard_by_shard_in_parallel_recovers_exactly() {
    let (_dir, o, clock, e) = tmp_engine_of(64 << 20);
    type Model = std::collections::HashMap<(u8, u32), Vec<u8>>;
    let mut model = Model::default();
    fn key(i: u32) -> Vec<u8> {
        format!("key:{i:08}").into_bytes()
    }
    fn put(e: &Engine, model: &mut Model, ns: u8, i: u32, v: Vec<u8>, exp: Option<u64>) {
        e.put(ns, &key(i), &v, exp).expect("put");
        if exp.is_none_or(|x| x > T0 + 10_000) {
            model.insert((ns, i), v);
        } else {
            model.remove(&(ns, i));
        }
    }
    for i in 0..60_000u32 {
        put(&e, &mut model, 0, i, vec![1; 8], None);
    }
    // Namespace 5 is flushed after its keys went in; later writes survive the flush.
    for i in 0..20_000u32 {
        e.put(5, &key(i), b"gone", None).expect("put");
    }
    e.flush_namespace(5).expect("flush");
    for i in 0..90_000u32 {
        let v = vec![(i % 251) as u8; 4 + (i % 13) as usize];
        match i % 5 {
            // Overwrites of earlier keys and new keys alike.
            0 | 1 => put(&e, &mut model, 0, i, v, None),
            // Expired by the time the engine reopens.
            2 => put(&e, &mut model, 0, i, v, Some(T0 + 5_000)),
            // Expiring later.
            3 => put(&e, &mut model, 5, i, v, Some(T0 + 3_600_000)),
            _ => {
                e.delete(0, &key(i)).expect("delete");
                model.remove(&(0, i));
            }
        }
    }
    let before = e.stats();
    assert_eq!(before.segments, 1, "one segment, so one large hint");
    e.close().expect("close");
    drop(e);
    // Without the index snapshot a clean shutdown leaves, the hints are read.
    std::fs::remove_file(_dir.path().join("INDEX")).expect("snapshot written");
    clock.advance(10_000);
    let e = open(&o);
    for ns in [0u8, 5] {
        let want = model.keys().filter(|(n, _)| *n == ns).count();
        assert_eq!(e.len(ns), want, "namespace {ns}");
    }
    for ((ns, i), v) in &model {
        assert_eq!(get(&e, *ns, &key(*i)).as_ref(), Some(v), "{ns}/{i}");
    }
    for i in 0..90_000u32 {
        if !model.contains_key(&(0, i)) {
            assert_eq!(get(&e, 0, &key(i)), None, "0/{i}");
        }
        if !model.contains_key(&(5, i)) {
            assert_eq!(get(&e, 5, &key(i)), None, "5/{i}");
        }
    }
    let after = e.stats();
    assert!(
        after.garbage_bytes >= before.garbage_bytes,
        "dead bytes {} then {} (expired records add to them)",
        before.garbage_bytes,
        after.garbage_bytes
    );
}

#[test]
fn stats_count_hits_misses_and_bytes() {
    let (_d, _o, _c, e) = tmp_engine();
    e.put(0, b"a", b"1", None).expect("put");
    get(&e, 0, b"a");
    get(&e, 0, b"b");
    let s = e.stats();
    assert_eq!((s.puts, s.hits, s.misses, s.keys), (1, 1, 1, 1));
    assert!(s.index_bytes >= 24);
    assert!(s.bytes_written > 0 && s.disk_bytes > s.bytes_written);
}

#[test]
fn fsync_always_syncs_before_returning() {
    let fs = caskade_engine::io::FaultStorage::new();
    let clock = Arc::new(ManualClock::new(T0));
    let e = open(&mem_options(&fs, &clock, Fsync::Always));
    let before = fs.syncs();
    e.put(0, b"k", b"v", None).expect("put");
    assert!(fs.syncs() > before);
}
