//! Injected I/O failures: a failed write or fsync poisons the engine for writes (reads
//! go on) until it is reopened; nothing acknowledged is lost and no damaged record is
//! ever served.

mod common;

use caskade_engine::io::{CrashMode, FaultStorage};
use caskade_engine::{Error, Fsync, ManualClock};
use common::*;
use std::sync::Arc;

#[test]
fn failed_fsync_refuses_writes_until_reopen() {
    let fs = FaultStorage::new();
    let clock = Arc::new(ManualClock::new(T0));
    let o = mem_options(&fs, &clock, Fsync::Always);
    let e = open(&o);
    e.put(0, b"before", b"1", None).expect("put");
    fs.fail_nth_sync(1);
    let err = e
        .put(0, b"doomed", b"2", None)
        .expect_err("sync failure reported");
    assert!(matches!(err, Error::Io { op: "sync", .. }), "{err}");
    let err = e.put(0, b"later", b"3", None).expect_err("poisoned");
    assert!(matches!(err, Error::Poisoned(_)), "{err}");
    assert!(matches!(e.delete(0, b"before"), Err(Error::Poisoned(_))));
    assert!(matches!(e.sync(), Err(Error::Poisoned(_))));
    assert_eq!(
        get(&e, 0, b"before").as_deref(),
        Some(&b"1"[..]),
        "reads go on"
    );
    // Power loss: the write whose sync failed was never acknowledged.
    let fs2 = fs.crash(CrashMode::DropUnsynced);
    drop(e);
    let e = open(&mem_options(&fs2, &clock, Fsync::Always));
    assert_eq!(get(&e, 0, b"before").as_deref(), Some(&b"1"[..]));
    assert_eq!(get(&e, 0, b"doomed"), None);
    e.put(0, b"after-reopen", b"4", None)
        .expect("writable again");
}

#[test]
fn failed_write_refuses_writes_until_a_retry_succeeds() {
    let fs = FaultStorage::new();
    let clock = Arc::new(ManualClock::new(T0));
    let o = mem_options(&fs, &clock, Fsync::Always);
    let e = open(&o);
    e.put(0, b"a", b"1", None).expect("put");
    e.put(0, b"b", b"old", None).expect("put");
    fs.fail_nth_write(1);
    let err = e
        .put(0, b"b", &[5u8; 100], None)
        .expect_err("write failure reported");
    assert!(matches!(err, Error::Io { op: "write", .. }), "{err}");
    let generation = e.write_generation();
    let err = e.put(0, b"c", b"3", None).expect_err("refused");
    assert!(
        matches!(&err, Error::Poisoned(why) if why.contains("retrying")),
        "{err}"
    );
    assert!(e.stats().write_error.is_some(), "the state is visible");
    assert_eq!(get(&e, 0, b"a").as_deref(), Some(&b"1"[..]), "reads go on");
    // The device works again: within about a second the engine retries by itself.
    let started = std::time::Instant::now();
    while e.put(0, b"c", b"3", None).is_err() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "writes never resumed"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(e.stats().write_error.is_none());
    assert_ne!(
        e.write_generation(),
        generation,
        "giving up unwritten records is visible to flushers"
    );
    drop(e);

    // With the background thread's timer out of reach, a write attempt retries itself.
    let fs = FaultStorage::new();
    let mut o = mem_options(&fs, &clock, Fsync::Always);
    o.maintenance_interval = std::time::Duration::from_secs(3600);
    let e = open(&o);
    e.put(0, b"a", b"1", None).expect("put");
    fs.fail_nth_write(1);
    e.put(0, b"b", &[5u8; 100], None)
        .expect_err("write failure reported");
    let started = std::time::Instant::now();
    while e.put(0, b"c", b"3", None).is_err() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "a write attempt never retried"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The refused write's record was given up, never served; the older value of its
    // key went with it (a miss, never the refused value or a resurrected one).
    assert_eq!(get(&e, 0, b"b"), None);
    assert_eq!(get(&e, 0, b"a").as_deref(), Some(&b"1"[..]));
    assert_eq!(get(&e, 0, b"c").as_deref(), Some(&b"3"[..]));
    let fs2 = fs.crash(CrashMode::DropUnsynced);
    drop(e);
    let e = open(&mem_options(&fs2, &clock, Fsync::Always));
    assert_eq!(get(&e, 0, b"a").as_deref(), Some(&b"1"[..]));
    assert_eq!(get(&e, 0, b"c").as_deref(), Some(&b"3"[..]));
    assert_ne!(
        get(&e, 0, b"b").as_deref(),
        Some(&[5u8; 100][..]),
        "the refused write never becomes durable"
    );
}

#[test]
fn every_write_and_sync_failure_point_keeps_acknowledged_data() {
    // Fail the Nth I/O call for every N a short workload makes, then crash: everything
    // acknowledged before the failure must be there, with the right value.
    for n in 1..60u64 {
        for fail_sync in [false, true] {
            let fs = FaultStorage::new();
            let clock = Arc::new(ManualClock::new(T0));
            let o = mem_options(&fs, &clock, Fsync::Always);
            let e = open(&o);
            if fail_sync {
                fs.fail_nth_sync(n);
            } else {
                fs.fail_nth_write(n);
            }
            let mut acked = Vec::new();
            let mut unacked = Vec::new();
            for i in 0..40u32 {
                let k = format!("k{}", i % 25).into_bytes();
                let v = vec![i as u8; 150];
                if e.put(0, &k, &v, None).is_ok() {
                    acked.retain(|(key, _)| key != &k);
                    acked.push((k, v));
                } else {
                    unacked.push((k, v));
                }
            }
            let fs2 = fs.crash(CrashMode::TornTail { seed: n });
            drop(e);
            let e = open(&mem_options(&fs2, &clock, Fsync::Always));
            for (k, v) in &acked {
                let got = get(&e, 0, k);
                // A write that failed may still have reached the disk (its sync failed
                // after the bytes were written), so it may win; nothing else may.
                let failed_later = unacked
                    .iter()
                    .any(|(uk, uv)| uk == k && got.as_ref() == Some(uv));
                assert!(
                    got.as_ref() == Some(v) || failed_later,
                    "n={n} sync={fail_sync} key {k:?}: {got:?}"
                );
            }
        }
    }
}
