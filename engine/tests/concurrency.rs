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
    for w in writers {
        w.join().expect("writer");
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().expect("reader") > 0);
    }
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
