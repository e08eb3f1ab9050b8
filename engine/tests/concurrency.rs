//! Threads at once: readers never see a value that was not written for their key,
//! writers under `fsync always` share syncs (group commit), and reads proceed while a
//! writer holds the log.

mod common;

use caskade_engine::io::FaultStorage;
use caskade_engine::{Engine, Fsync, ManualClock, Options};
use common::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn value_for(key: u32, version: u32) -> Vec<u8> {
    let mut v = format!("{key}:{version}:").into_bytes();
    v.resize(64 + (version % 50) as usize, b'x');
    v
}

/// Waits for the writers, stops the readers and checks each of them read something.
fn finish(
    writers: Vec<std::thread::JoinHandle<()>>,
    stop: &AtomicBool,
    readers: Vec<std::thread::JoinHandle<u64>>,
) {
    for w in writers {
        w.join().expect("writer");
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().expect("reader") > 0);
    }
}

#[test]
fn readers_only_ever_see_values_written_for_their_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = Options::new(dir.path());
    o.segment_bytes = 256 << 10;
    let e = Arc::new(Engine::open(o).expect("open"));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2u32)
        .map(|w| {
            let e = e.clone();
            std::thread::spawn(move || {
                for version in 0..3000u32 {
                    let key = (version * 7 + w) % 200;
                    e.put(
                        0,
                        format!("k{key}").as_bytes(),
                        &value_for(key, version),
                        None,
                    )
                    .expect("put");
                    if version % 10 == 0 {
                        e.delete(0, format!("k{}", (key + 1) % 200).as_bytes())
                            .expect("delete");
                    }
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let e = e.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for key in 0..200u32 {
                        if let Some(v) = e.get(0, format!("k{key}").as_bytes()).expect("get") {
                            let prefix = format!("{key}:");
                            assert!(v.starts_with(prefix.as_bytes()), "k{key} read {v:?}");
                        }
                        reads += 1;
                    }
                }
                reads
            })
        })
        .collect();
    finish(writers, &stop, readers);
    // Compaction may have merged the segments again by now: what was written says
    // whether the readers raced segment rollovers.
    let written = e.stats().bytes_written;
    assert!(
        written > 2 * (256 << 10),
        "the run crossed segment boundaries: {written} bytes"
    );
}

#[test]
fn group_commit_shares_syncs_between_writers() {
    let fs = FaultStorage::new();
    let clock = Arc::new(ManualClock::new(T0));
    let mut o = mem_options(&fs, &clock, Fsync::Always);
    o.segment_bytes = 64 << 20;
    let e = Arc::new(open(&o));
    fs.set_sync_delay(std::time::Duration::from_millis(1));
    let before = fs.syncs();
    let threads: Vec<_> = (0..8u32)
        .map(|t| {
            let e = e.clone();
            std::thread::spawn(move || {
                for i in 0..200u32 {
                    e.put(0, format!("t{t}-{i}").as_bytes(), b"v", None)
                        .expect("put");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let syncs = fs.syncs() - before;
    assert_eq!(e.len(0), 1600);
    // Eight writers wait on each 1 ms sync together, so one sync covers several writes.
    assert!((1..=800).contains(&syncs), "{syncs} syncs for 1600 writes");
    eprintln!("group commit: {syncs} syncs for 1600 writes");
}

/// One writer per key, each operation numbered: a put stores its number, a delete
/// removes the key, an expiry change rewrites it. Readers note the last acknowledged
/// operation before each read and check that a value read is not older (a put after
/// it, or the acknowledged put itself): with the hot tier
/// (small, so records are admitted and evicted all the time) and compaction moving
/// records, no read may return a value an acknowledged operation replaced.
#[test]
fn the_hot_tier_never_serves_a_value_an_acknowledged_write_replaced() {
    use std::sync::atomic::AtomicU64;
    const KEYS: usize = 16;
    for hot_bytes in [0, 16 << 10, 1 << 20] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut o = Options::new(dir.path());
        o.segment_bytes = 64 << 10;
        o.compaction_garbage_ratio = 0.3;
        o.hot_bytes = hot_bytes;
        let e = Arc::new(Engine::open(o).expect("open"));
        // Per key: (last acknowledged operation << 1) | 1 if it was a delete.
        let acked: Arc<Vec<AtomicU64>> = Arc::new((0..KEYS).map(|_| AtomicU64::new(0)).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..KEYS)
            .map(|k| {
                let (e, acked) = (e.clone(), acked.clone());
                std::thread::spawn(move || {
                    let key = format!("k{k}");
                    for op in 1..=1500u64 {
                        let deleted = match op % 10 {
                            3 => {
                                e.delete(0, key.as_bytes()).expect("delete");
                                true
                            }
                            7 => {
                                // An expiry change of an existing key: a new record.
                                e.put(0, key.as_bytes(), &op.to_le_bytes(), None)
                                    .expect("put");
                                e.expire(0, key.as_bytes(), u64::MAX / 2).expect("expire");
                                false
                            }
                            _ => {
                                e.put(0, key.as_bytes(), &op.to_le_bytes(), None)
                                    .expect("put");
                                false
                            }
                        };
                        acked[k].store(op << 1 | u64::from(deleted), Ordering::SeqCst);
                    }
                })
            })
            .collect();
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (e, acked, stop) = (e.clone(), acked.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut reads = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for k in 0..KEYS {
                            let floor = acked[k].load(Ordering::SeqCst);
                            let got = e.get(0, format!("k{k}").as_bytes()).expect("get");
                            // Absent is always possible: a delete may be in flight.
                            if let Some(v) = got {
                                let op = u64::from_le_bytes(v[..8].try_into().expect("8 bytes"));
                                assert!(
                                    op >= floor >> 1,
                                    "k{k}: read op {op}, op {} was acknowledged first (hot {hot_bytes})",
                                    floor >> 1
                                );
                            }
                            reads += 1;
                        }
                    }
                    reads
                })
            })
            .collect();
        finish(writers, &stop, readers);
        let hot = e.stats().hot;
        assert!(hot.bytes <= hot.max_bytes, "{hot:?}");
        if hot_bytes > 0 {
            assert!(hot.hits > 0 && hot.admissions > 0, "{hot:?}");
        }
    }
}
