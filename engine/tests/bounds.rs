//! The engine as a bounded cache: the disk budget and the key budget hold while far
//! more is written, eviction policies rank as the papers say on a scan, compaction runs
//! under concurrent reads without a wrong answer, the compaction filter is obeyed, and a
//! restart recovers exactly the keys that survived.

mod common;

use caskade_engine::io::{CrashMode, FaultStorage};
use caskade_engine::{
    CompactionFilter, Engine, FilterRecord, Fsync, ManualClock, Options, PolicyKind, Verdict,
};
use common::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("ls")
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every live key of every namespace with its value.
fn snapshot(e: &Engine) -> BTreeMap<(u8, Vec<u8>), Vec<u8>> {
    let mut out = BTreeMap::new();
    for ns in 0..16u8 {
        for k in scan_all(e, ns, 100) {
            if let Some(v) = get(e, ns, &k) {
                out.insert((ns, k), v);
            }
        }
    }
    out
}

#[test]
fn disk_stays_within_one_segment_of_the_budget_while_ten_times_it_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = Options::new(dir.path());
    o.segment_bytes = 64 << 10;
    o.max_disk_bytes = Some(1 << 20);
    o.fsync = Fsync::Never;
    o.eviction = PolicyKind::Sieve;
    let e = Engine::open(o.clone()).expect("open");
    let mut written = 0u64;
    let mut worst = 0u64;
    let mut i = 0u64;
    while written < 10 << 20 {
        let v = vec![(i % 251) as u8; 100 + (i % 900) as usize];
        e.put(0, format!("key:{i}").as_bytes(), &v, None)
            .expect("put never fails");
        written += v.len() as u64;
        if i.is_multiple_of(50) {
            worst = worst.max(dir_bytes(dir.path()));
            assert!(
                worst <= (1 << 20) + (64 << 10) + 4096,
                "directory holds {worst} bytes after {written} written"
            );
        }
        i += 1;
    }
    let s = e.stats();
    assert!(s.reclaims > 0 && s.evictions_disk > 0, "{s:?}");
    assert!(s.disk_bytes <= (1 << 20) + (64 << 10));
    // The newest keys are still there, with the right values.
    for j in i - 20..i {
        let want = vec![(j % 251) as u8; 100 + (j % 900) as usize];
        assert_eq!(get(&e, 0, format!("key:{j}").as_bytes()), Some(want));
    }
    eprintln!("budget 1 MiB: worst {worst} bytes on disk, {s:?}");
}

#[test]
fn max_keys_holds_after_every_insert() {
    let fs = FaultStorage::new();
    let clock = Arc::new(ManualClock::new(T0));
    let mut o = mem_options(&fs, &clock, Fsync::Never);
    o.max_keys = Some(1000);
    let e = open(&o);
    for i in 0..10_000u32 {
        e.put((i % 3) as u8, format!("k{i}").as_bytes(), b"v", None)
            .expect("put");
        assert!(
            e.total_len() <= 1000,
            "{} keys after insert {i}",
            e.total_len()
        );
    }
    // Eviction goes a little below the limit (max/256) to batch its work.
    let held = e.total_len() as u64;
    assert!((996..=1000).contains(&held), "{held} keys");
    assert_eq!(e.stats().evictions_max_keys, 10_000 - held);
    // Overwrites do not evict.
    let before = e.stats().evictions_max_keys;
    for k in scan_all(&e, 0, 100).iter().take(50) {
        e.put(0, k, b"again", None).expect("put");
    }
    assert_eq!(e.stats().evictions_max_keys, before);
}

/// Hot keys used often, then a scan of one-hit keys with the hot keys returning only
/// every ~2,000 requests; a miss is filled by a put, as a cache's client does.
fn hit_ratio(kind: PolicyKind) -> f64 {
    let fs = FaultStorage::new();
    let clock = Arc::new(ManualClock::new(T0));
    let mut o = mem_options(&fs, &clock, Fsync::Never);
    o.segment_bytes = 1 << 20;
    o.max_keys = Some(1000);
    o.eviction = kind;
    let e = open(&o);
    let mut trace = Vec::new();
    for _ in 0..10 {
        trace.extend((0..200).map(|k| format!("hot:{k}")));
    }
    let mut cold = 0;
    for round in 0..2000 {
        for _ in 0..50 {
            cold += 1;
            trace.push(format!("cold:{cold}"));
        }
        for j in 0..5 {
            trace.push(format!("hot:{}", (round * 5 + j) % 200));
        }
    }
    let mut hits = 0;
    for k in &trace {
        if e.get(0, k.as_bytes()).expect("get").is_some() {
            hits += 1;
        } else {
            e.put(0, k.as_bytes(), b"value", None).expect("put");
        }
    }
    hits as f64 / trace.len() as f64
}

#[test]
fn s3_fifo_keeps_a_hot_set_through_a_scan_better_than_lru_and_fifo() {
    let s3 = hit_ratio(PolicyKind::S3Fifo);
    let lru = hit_ratio(PolicyKind::Lru);
    let fifo = hit_ratio(PolicyKind::Fifo);
    let sieve = hit_ratio(PolicyKind::Sieve);
    eprintln!("hit ratios: s3-fifo {s3:.3} sieve {sieve:.3} lru {lru:.3} fifo {fifo:.3}");
    assert!(s3 > lru, "s3-fifo {s3} vs lru {lru}");
    assert!(s3 > fifo, "s3-fifo {s3} vs fifo {fifo}");
}

#[test]
fn compaction_under_concurrent_reads_never_returns_a_wrong_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = Options::new(dir.path());
    o.segment_bytes = 32 << 10;
    o.compaction_garbage_ratio = 0.3;
    let e = Arc::new(Engine::open(o).expect("open"));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (e, stop) = (e.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for k in 0..200u32 {
                        let key = format!("k{k}");
                        if let Some(v) = e.get(0, key.as_bytes()).expect("get") {
                            assert!(
                                v.starts_with(format!("{key}=").as_bytes()),
                                "{key} read {v:?}"
                            );
                        }
                        reads += 1;
                    }
                    let page = e.scan(0, 0, 50).expect("scan");
                    assert!(page.keys.iter().all(|k| k.starts_with(b"k")));
                }
                reads
            })
        })
        .collect();
    let mut version = 0u64;
    while e.stats().compactions < 5 {
        for k in 0..200u32 {
            version += 1;
            let mut v = format!("k{k}={version}:").into_bytes();
            v.resize(150, b'.');
            e.put(0, format!("k{k}").as_bytes(), &v, None).expect("put");
        }
        assert!(version < 5_000_000, "compaction never ran: {:?}", e.stats());
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().expect("reader") > 0);
    }
    let s = e.stats();
    assert!(s.garbage_bytes < s.disk_bytes, "{s:?}");
    assert!(s.write_amplification >= 1.0);
    for k in 0..200u32 {
        let v = e
            .get(0, format!("k{k}").as_bytes())
            .expect("get")
            .expect("present");
        assert!(v.starts_with(format!("k{k}=").as_bytes()));
    }
}

struct CapTtl {
    cap_at: u64,
}

impl CompactionFilter for CapTtl {
    fn filter(&self, _now_ms: u64, records: &[FilterRecord<'_>], out: &mut Vec<Verdict>) {
        for r in records {
            out.push(if r.key.starts_with(b"tmp:") {
                Verdict::Remove
            } else if r.expire_at_ms.is_none_or(|e| e > self.cap_at) {
                Verdict::SetExpiry(Some(self.cap_at))
            } else {
                Verdict::Keep
            });
        }
    }
}

#[test]
fn compaction_filter_caps_ttls_and_removes_keys_durably() {
    let fs = FaultStorage::new();
    let clock = Arc::new(ManualClock::new(T0));
    let mut o = mem_options(&fs, &clock, Fsync::Never);
    o.compaction_garbage_ratio = 0.2;
    o.compaction_filter = Some(Arc::new(CapTtl {
        cap_at: T0 + 60_000,
    }));
    let e = open(&o);
    // Filler overwritten round after round makes every older segment mostly garbage,
    // so the segments holding the keep/tmp keys get compacted.
    for round in 0..200u32 {
        if round < 50 {
            e.put(0, format!("keep:{round}").as_bytes(), b"value", None)
                .expect("put");
            e.put(0, format!("tmp:{round}").as_bytes(), b"value", None)
                .expect("put");
        }
        for i in 0..20u32 {
            e.put(
                0,
                format!("filler:{i}").as_bytes(),
                &[round as u8; 100],
                None,
            )
            .expect("put");
        }
    }
    wait_until("the filter to see every segment", || {
        e.stats().filter_removals == 50
    });
    for i in 0..50u32 {
        let ttl = e.ttl(0, format!("keep:{i}").as_bytes()).expect("ttl");
        assert_eq!(ttl, Some(Some(T0 + 60_000)), "keep:{i}");
        assert_eq!(get(&e, 0, format!("tmp:{i}").as_bytes()), None, "tmp:{i}");
    }
    assert_eq!(e.stats().filter_removals, 50);
    e.close().expect("close");
    drop(e);
    let e = open(&o);
    assert_eq!(get(&e, 0, b"tmp:7"), None, "removal survives a restart");
    assert_eq!(e.ttl(0, b"keep:7").expect("ttl"), Some(Some(T0 + 60_000)));
}

#[test]
fn a_full_compaction_shows_every_key_to_the_filter_without_any_garbage() {
    let fs = FaultStorage::new();
    let clock = Arc::new(ManualClock::new(T0));
    let mut o = mem_options(&fs, &clock, Fsync::Never);
    o.compaction_filter = Some(Arc::new(CapTtl {
        cap_at: T0 + 60_000,
    }));
    let e = open(&o);
    // A handful of writes: no segment is sealed, nothing is garbage, so no ordinary
    // pass would ever show these keys to the filter.
    for i in 0..10u32 {
        e.put(0, format!("keep:{i}").as_bytes(), b"v", None)
            .expect("put");
        e.put(0, format!("tmp:{i}").as_bytes(), b"v", None)
            .expect("put");
    }
    let before = e.stats();
    assert_eq!(before.filter_removals, 0);
    let ticket = e.compact_all();
    e.wait_compaction(ticket).expect("full compaction");
    let after = e.stats();
    assert_eq!(after.filter_removals, 10, "{after:?}");
    assert_eq!(after.full_compactions, 1);
    assert!(!after.full_compaction_running);
    for i in 0..10u32 {
        assert_eq!(get(&e, 0, format!("tmp:{i}").as_bytes()), None, "tmp:{i}");
        let ttl = e.ttl(0, format!("keep:{i}").as_bytes()).expect("ttl");
        assert_eq!(ttl, Some(Some(T0 + 60_000)), "keep:{i}");
    }
    // Two callers asking at once are both served, by one pass or by two.
    let (a, b) = (e.compact_all(), e.compact_all());
    e.wait_compaction(b).expect("second");
    e.wait_compaction(a).expect("first");
    assert!(e.stats().full_compactions >= 2);
    e.close().expect("close");
    drop(e);
    let e = open(&o);
    assert_eq!(get(&e, 0, b"tmp:3"), None, "removal survives a restart");
    assert_eq!(get(&e, 0, b"keep:3").as_deref(), Some(&b"v"[..]));
    let ticket = e.compact_all();
    e.close().expect("close");
    // A pass asked for while the engine closes is done or refused, never waited on
    // for ever.
    if let Err(err) = e.wait_compaction(ticket) {
        assert!(err.to_string().contains("closed"), "{err}");
    }
}

#[test]
fn restart_after_compaction_and_eviction_recovers_exactly_the_survivors() {
    for crash in [false, true] {
        let fs = FaultStorage::new();
        let clock = Arc::new(ManualClock::new(T0));
        let mut o = mem_options(&fs, &clock, Fsync::Always);
        o.segment_bytes = 16 << 10;
        o.max_disk_bytes = Some(160 << 10);
        o.max_keys = Some(400);
        o.compaction_garbage_ratio = 0.3;
        let e = open(&o);
        for i in 0..6000u32 {
            let key = format!("k{}", i % 900);
            match i % 10 {
                0 => {
                    e.delete(0, key.as_bytes()).expect("delete");
                }
                1 => {
                    e.put(1, key.as_bytes(), b"short-lived", Some(T0 + 1000))
                        .expect("put");
                }
                _ => {
                    let v = vec![(i % 256) as u8; 50 + (i % 200) as usize];
                    e.put(0, key.as_bytes(), &v, None).expect("put");
                }
            }
            if i == 3000 {
                clock.advance(2000);
                e.flush_namespace(2).expect("flush");
            }
        }
        wait_until("compaction and reclaim", || {
            let s = e.stats();
            s.compactions + s.reclaims > 0
        });
        let before = snapshot(&e);
        assert!(!before.is_empty());
        assert!(e.total_len() <= 400);
        let e = if crash {
            let survivor = fs.crash(CrashMode::DropUnsynced);
            drop(e);
            open(&mem_options_like(&o, &survivor))
        } else {
            e.close().expect("close");
            drop(e);
            open(&o)
        };
        let after = snapshot(&e);
        assert_eq!(after.len(), before.len(), "crash={crash}");
        assert_eq!(after, before, "crash={crash}");
    }
}

fn mem_options_like(o: &Options, fs: &FaultStorage) -> Options {
    let mut o = o.clone();
    o.storage = Arc::new(fs.clone());
    o
}

/// A plugged-in policy as a plugin would keep it: a FIFO queue of ids.
#[derive(Default)]
struct QueuePolicy {
    queue: std::collections::VecDeque<u64>,
}

impl caskade_engine::EvictionPolicy for QueuePolicy {
    fn name(&self) -> &str {
        "queue"
    }
    fn on_insert(&mut self, ids: &[u64]) {
        self.queue.extend(ids);
    }
    fn on_access(&mut self, _ids: &[u64]) {}
    fn on_remove(&mut self, ids: &[u64]) {
        self.queue.retain(|id| !ids.contains(id));
    }
    fn victims(&mut self, n: usize, out: &mut Vec<u64>) {
        let n = n.min(self.queue.len());
        out.extend(self.queue.drain(..n));
    }
    fn keep_on_reclaim(&mut self, ids: &[u64], out: &mut Vec<bool>) {
        self.on_remove(ids);
        out.extend(ids.iter().map(|_| false));
    }
    fn memory_bytes(&self) -> usize {
        self.queue.capacity() * 8
    }
}

#[test]
fn a_plugged_in_policy_is_seeded_with_every_key_and_can_be_unplugged() {
    let fs = FaultStorage::new();
    let clock = Arc::new(ManualClock::new(T0));
    let mut o = mem_options(&fs, &clock, Fsync::Never);
    o.max_keys = Some(100);
    o.eviction = PolicyKind::Lru;
    let e = open(&o);
    for i in 0..100u32 {
        e.put(0, format!("old:{i}").as_bytes(), b"v", None)
            .expect("put");
    }
    e.replace_policy(Box::new(QueuePolicy::default()));
    assert_eq!(e.stats().policy, "queue");
    for i in 0..50u32 {
        e.put(0, format!("new:{i}").as_bytes(), b"v", None)
            .expect("put");
    }
    // The new policy knew the old keys, so they were its victims, not the new ones.
    assert!(e.total_len() <= 100);
    for i in 0..50u32 {
        assert!(
            e.exists(0, format!("new:{i}").as_bytes()).expect("exists"),
            "new:{i}"
        );
    }
    assert!(e.stats().evictions_max_keys >= 50);
    // Back to the built-in LRU, which kept its bits meanwhile: the keys read since
    // stay while new ones push the rest out.
    e.use_builtin_policy();
    assert_eq!(e.stats().policy, "lru");
    for i in 0..10u32 {
        assert!(
            e.get(0, format!("new:{i}").as_bytes())
                .expect("get")
                .is_some()
        );
    }
    for i in 0..200u32 {
        e.put(0, format!("newer:{i}").as_bytes(), b"v", None)
            .expect("put");
    }
    assert!(e.total_len() <= 100);
    assert!(e.stats().evictions_max_keys >= 150);
}

/// Blocks the compactor inside its second filter call (the second batch of a
/// segment) until released, and says when it got there.
struct Gate {
    calls: std::sync::atomic::AtomicUsize,
    reached: std::sync::mpsc::SyncSender<()>,
    release: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl CompactionFilter for Gate {
    fn filter(&self, _now_ms: u64, records: &[FilterRecord<'_>], out: &mut Vec<Verdict>) {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 1 {
            let _ = self.reached.send(());
            let _ = self
                .release
                .lock()
                .expect("gate")
                .recv_timeout(Duration::from_secs(30));
        }
        out.extend(records.iter().map(|_| Verdict::Keep));
    }
}

/// A reclaim evicts the oldest segment's keys batch by batch, but a key leaves the
/// index only once the segment's file is gone: a DEL seen in between must be logged,
/// or a crash before the file is deleted brings the key back after it was deleted.
#[test]
fn a_key_deleted_while_its_segment_is_reclaimed_stays_deleted_after_a_crash() {
    for policy in [PolicyKind::Fifo, PolicyKind::Lru] {
        let fs = FaultStorage::new();
        let clock = Arc::new(ManualClock::new(T0));
        let mut o = mem_options(&fs, &clock, Fsync::Always);
        o.segment_bytes = 64 << 10;
        o.max_disk_bytes = Some(256 << 10);
        o.eviction = policy;
        let (reached_tx, reached) = std::sync::mpsc::sync_channel(1);
        let (release, release_rx) = std::sync::mpsc::channel();
        o.compaction_filter = Some(Arc::new(Gate {
            calls: Default::default(),
            reached: reached_tx,
            release: std::sync::Mutex::new(release_rx),
        }));
        let e = Arc::new(open(&o));
        let writer = {
            let e = e.clone();
            std::thread::spawn(move || {
                for i in 0..2400u32 {
                    if e.put(0, format!("k{i}").as_bytes(), &[7u8; 100], None)
                        .is_err()
                    {
                        return;
                    }
                }
            })
        };
        reached
            .recv_timeout(Duration::from_secs(30))
            .expect("the reclaim reaches its second batch");
        // k0 is in the first batch of the oldest segment, decided on already.
        let deleted = e.delete(0, b"k0").expect("delete");
        assert!(
            deleted,
            "{policy:?}: k0 is still readable until its file is gone"
        );
        let survivor = fs.crash(CrashMode::DropUnsynced);
        let _ = release.send(());
        writer.join().expect("writer");
        drop(e);
        let e = open(&mem_options_like(&o, &survivor));
        assert_eq!(
            get(&e, 0, b"k0"),
            None,
            "{policy:?}: a deleted key came back"
        );
    }
}
