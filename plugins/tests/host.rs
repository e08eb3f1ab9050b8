//! The plugin host with real plugins: the example plugins built from source by
//! plugins/build.sh, and hand-written misbehaving ones (WAT) that loop forever, trap,
//! grab memory or answer with the wrong number of results. Every misbehaviour is
//! contained: the call falls back to the built-in behaviour and is counted.

#[path = "../../tests/common/plugin_files.rs"]
mod plugin_files;

use caskade_engine::io::FaultStorage;
use caskade_engine::{
    CompactionFilter, Engine, EvictionPolicy, FilterRecord, Fsync, Options, PolicyKind, Verdict,
};
use caskade_plugins::{Limits, PluginStats, Runtime, WasmFilter, WasmPolicy};
use plugin_files::example;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn settings(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn limits(ms: u64) -> Limits {
    Limits {
        deadline: Duration::from_millis(ms),
        memory_bytes: 16 << 20,
    }
}

/// A core module with the world's WIT embedded, as a wasm32 build would produce.
fn from_wat(wat: &str, world: &str) -> Vec<u8> {
    let mut module = wat::parse_str(wat).expect("wat");
    let mut resolve = wit_parser::Resolve::default();
    let (pkg, _) = resolve
        .push_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../wit"))
        .expect("wit");
    let world = resolve.select_world(&[pkg], Some(world)).expect("world");
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .expect("embed");
    module
}

const REALLOC: &str = r#"
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 8192))
  (func (export "cabi_realloc") (param i32 i32) (param $align i32) (param $size i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and
      (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
      (i32.xor (i32.sub (local.get $align) (i32.const 1)) (i32.const -1))))
    (global.set $heap (i32.add (local.get $p) (local.get $size)))
    (block $ok
      (br_if $ok (i32.le_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536))))
      (drop (memory.grow (i32.add (i32.const 1)
        (i32.div_u (i32.sub (global.get $heap) (i32.mul (memory.size) (i32.const 65536))) (i32.const 65536))))))
    (local.get $p))
"#;

fn bad_filter(body: &str) -> Vec<u8> {
    from_wat(
        &format!(
            r#"(module {REALLOC}
              (func (export "caskade:plugin/compaction-filter@0.2.0#init") (param i32 i32) (result i32)
                (i32.store8 (i32.const 1024) (i32.const 0)) (i32.const 1024))
              (func (export "caskade:plugin/compaction-filter@0.2.0#filter") (param i32 i32 i64) (result i32)
                {body}))"#
        ),
        "compaction-filter-plugin",
    )
}

fn records() -> Vec<(Vec<u8>, Option<u64>)> {
    vec![
        (b"a".to_vec(), None),
        (b"tmp:b".to_vec(), Some(u64::MAX)),
        (b"c".to_vec(), Some(5)),
    ]
}

fn run_filter(f: &WasmFilter, now_ms: u64) -> Vec<Verdict> {
    let recs = records();
    let rs: Vec<FilterRecord<'_>> = recs
        .iter()
        .map(|(k, e)| FilterRecord {
            ns: 0,
            key: k,
            value_len: 10,
            expire_at_ms: *e,
            meta: b"",
        })
        .collect();
    let mut out = Vec::new();
    f.filter(now_ms, &rs, &mut out);
    out
}

#[test]
fn ttl_cap_example_caps_and_removes() {
    let rt = Runtime::new(None).expect("runtime");
    let c = rt.load(&example("ttl_cap.wasm")).expect("load");
    let stats = Arc::new(PluginStats::default());
    let f = WasmFilter::new(
        &rt,
        "ttl_cap",
        &c,
        settings(&[("max_ttl_secs", "60"), ("drop_prefixes", "tmp:")]),
        limits(100),
        stats.clone(),
    )
    .expect("filter");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let v = run_filter(&f, before);
    assert_eq!(v.len(), 3);
    match v[0] {
        // The cap is counted from the engine's clock, handed to the filter.
        Verdict::SetExpiry(Some(e)) => assert_eq!(e, before + 60_000),
        other => panic!("expected a capped expiry, got {other:?}"),
    }
    assert_eq!(v[1], Verdict::Remove);
    assert_eq!(v[2], Verdict::Keep, "an expiry already under the cap stays");
    assert_eq!(stats.failures(), 0, "{stats:?}");
}

#[test]
fn bad_settings_fail_at_load_with_the_plugins_message() {
    let rt = Runtime::new(None).expect("runtime");
    let c = rt.load(&example("ttl_cap.wasm")).expect("load");
    let Err(err) = WasmFilter::new(
        &rt,
        "ttl_cap",
        &c,
        settings(&[("max_ttl_secs", "soon")]),
        limits(100),
        Arc::default(),
    ) else {
        panic!("bad settings accepted");
    };
    assert!(err.to_string().contains("max_ttl_secs"), "{err}");
}

#[test]
fn garbage_bytes_are_refused_with_a_clear_error() {
    let rt = Runtime::new(None).expect("runtime");
    let Err(err) = rt.compile("junk.wasm", b"not wasm at all") else {
        panic!("garbage accepted");
    };
    assert!(err.to_string().contains("junk.wasm"), "{err}");
    // A component for another world does not fit this one.
    let c = rt.load(&example("prefix_priority.wasm")).expect("load");
    assert!(
        WasmFilter::new(
            &rt,
            "policy-as-filter",
            &c,
            vec![],
            limits(50),
            Arc::default()
        )
        .is_err()
    );
}

#[test]
fn misbehaving_filters_are_contained() {
    let rt = Runtime::new(None).expect("runtime");
    type Counter = fn(&PluginStats) -> u64;
    let cases: [(&str, &str, Counter); 4] = [
        ("infinite loop", "(loop $l (br $l)) (unreachable)", |s| {
            s.timeouts.load(Ordering::Relaxed)
        }),
        ("trap", "(unreachable)", |s| s.traps.load(Ordering::Relaxed)),
        (
            "memory hog",
            "(loop $l (drop (memory.grow (i32.const 256))) (br $l)) (unreachable)",
            |s| s.memory_refusals.load(Ordering::Relaxed),
        ),
        (
            "wrong answer length",
            "(i32.store (i32.const 2048) (i32.const 4096)) (i32.store (i32.const 2052) (i32.const 0)) (i32.const 2048)",
            |s| s.bad_answers.load(Ordering::Relaxed),
        ),
    ];
    for (what, body, counter) in cases {
        let c = rt.compile(what, &bad_filter(body)).expect("compiles");
        let stats = Arc::new(PluginStats::default());
        let f = WasmFilter::new(&rt, what, &c, vec![], limits(20), stats.clone()).expect("loads");
        for round in 0..2 {
            let started = Instant::now();
            let v = run_filter(&f, 1_700_000_000_000);
            assert_eq!(
                v,
                vec![Verdict::Keep; 3],
                "{what}: the built-in behaviour keeps records"
            );
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{what}: contained quickly"
            );
            assert_eq!(counter(&stats), round + 1, "{what}: counted");
        }
        // The first instance, and a fresh one for the call after the first failure.
        assert_eq!(
            stats.instances.load(Ordering::Relaxed),
            2,
            "{what}: a fresh instance after a failure"
        );
    }
}

#[test]
fn a_policy_gets_key_bytes_only_if_it_asks_for_them() {
    let rt = Runtime::new(None).expect("runtime");
    let component = rt.load(&example("prefix_priority.wasm")).expect("load");
    let policy = |s: &[(&str, &str)]| {
        WasmPolicy::new(
            &rt,
            "prefix_priority",
            &component,
            &settings(s),
            limits(50),
            Arc::new(PluginStats::default()),
        )
        .expect("policy")
    };
    // Plain SIEVE decides by id alone; with protected prefixes it reads keys.
    assert!(!policy(&[]).wants_keys());
    assert!(policy(&[("protected_prefixes", "session:")]).wants_keys());
    // Without keys it still evicts in SIEVE order.
    let mut p = policy(&[]);
    p.on_insert(&[16, 32, 48]);
    p.on_access(&[16]);
    let mut out = Vec::new();
    p.victims(1, &mut out);
    assert_eq!(out, [32]);
}

/// The prefix-priority example without protected prefixes (plain SIEVE), counting
/// into `stats`.
fn plain_sieve(stats: &Arc<PluginStats>) -> WasmPolicy {
    let rt = Runtime::new(None).expect("runtime");
    let component = rt.load(&example("prefix_priority.wasm")).expect("load");
    WasmPolicy::new(
        &rt,
        "prefix_priority",
        &component,
        &[],
        limits(2000),
        stats.clone(),
    )
    .expect("policy")
}

/// SIEVE as the paper states it, over a plain list: what the example must match.
#[derive(Default)]
struct SieveModel {
    /// Oldest first: (id, visited).
    order: Vec<(u64, bool)>,
    hand: usize,
}

impl SieveModel {
    fn position(&self, id: u64) -> Option<usize> {
        self.order.iter().position(|e| e.0 == id)
    }

    fn remove_at(&mut self, i: usize) {
        self.order.remove(i);
        if i < self.hand {
            self.hand -= 1;
        }
    }

    fn victim(&mut self) -> Option<u64> {
        if self.order.is_empty() {
            return None;
        }
        loop {
            if self.hand >= self.order.len() {
                self.hand = 0;
            }
            if self.order[self.hand].1 {
                self.order[self.hand].1 = false;
                self.hand += 1;
                continue;
            }
            let id = self.order[self.hand].0;
            // The hand now points at the next newer key.
            self.order.remove(self.hand);
            return Some(id);
        }
    }
}

#[test]
fn the_prefix_priority_example_without_prefixes_is_sieve() {
    let stats = Arc::new(PluginStats::default());
    let mut p = plain_sieve(&stats);
    let mut m = SieveModel::default();
    let mut r = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        r
    };
    // Enough events for the array's holes to be squeezed out many times over.
    for round in 0..3000 {
        let id = |x: u64| ((x % 6000) + 1) << 4;
        match next() % 10 {
            0..=3 => {
                let ids: Vec<u64> = (0..next() % 40).map(|_| id(next())).collect();
                for &i in &ids {
                    if m.position(i).is_none() {
                        m.order.push((i, false));
                    }
                }
                p.on_insert(&ids);
            }
            4..=5 => {
                let ids: Vec<u64> = (0..next() % 40).map(|_| id(next())).collect();
                for &i in &ids {
                    if let Some(at) = m.position(i) {
                        m.order[at].1 = true;
                    }
                }
                p.on_access(&ids);
            }
            6 => {
                let ids: Vec<u64> = (0..next() % 20).map(|_| id(next())).collect();
                for &i in &ids {
                    if let Some(at) = m.position(i) {
                        m.remove_at(at);
                    }
                }
                p.on_remove(&ids);
            }
            7 => {
                let ids: Vec<u64> = (0..next() % 20).map(|_| id(next())).collect();
                let want: Vec<bool> = ids
                    .iter()
                    .map(|&i| match m.position(i) {
                        Some(at) if m.order[at].1 => {
                            m.order[at].1 = false;
                            true
                        }
                        Some(at) => {
                            m.remove_at(at);
                            false
                        }
                        None => false,
                    })
                    .collect();
                let mut got = Vec::new();
                p.keep_on_reclaim(&ids, &mut got);
                assert_eq!(got, want, "round {round}: keep-on-reclaim");
            }
            _ => {
                let n = (next() % 60) as usize;
                let want: Vec<u64> = (0..n).map_while(|_| m.victim()).collect();
                let mut got = Vec::new();
                p.victims(n, &mut got);
                assert_eq!(got, want, "round {round}: victims");
            }
        }
    }
    assert_eq!(stats.failures(), 0, "{stats:?}");
    assert!(!m.order.is_empty(), "the run ends with keys in the cache");
}

#[test]
fn an_instance_s_linear_memory_is_counted_while_it_lives() {
    let stats = Arc::new(PluginStats::default());
    let mut p = plain_sieve(&stats);
    let at_start = stats.memory_bytes.load(Ordering::Relaxed);
    assert!(at_start > 0, "an instance has linear memory");
    assert_eq!(p.memory_bytes() as u64, at_start);
    // A policy told of many keys grows its memory, and says so.
    let ids: Vec<u64> = (1..=40_000u64).map(|i| i << 4).collect();
    for chunk in ids.chunks(4096) {
        p.on_insert(chunk);
    }
    assert_eq!(stats.failures(), 0, "{stats:?}");
    assert!(
        stats.memory_bytes.load(Ordering::Relaxed) > at_start,
        "{} then {}",
        at_start,
        stats.memory_bytes.load(Ordering::Relaxed)
    );
    drop(p);
    assert_eq!(
        stats.memory_bytes.load(Ordering::Relaxed),
        0,
        "gone with the instance"
    );
}

#[test]
fn prefix_priority_example_protects_prefixes_in_the_engine() {
    let rt = Runtime::new(None).expect("runtime");
    let component = rt.load(&example("prefix_priority.wasm")).expect("load");
    let stats = Arc::new(PluginStats::default());
    let fs = FaultStorage::new();
    let mut o = Options::new("/db");
    o.storage = Arc::new(fs);
    o.fsync = Fsync::Never;
    o.max_keys = Some(100);
    let (rt2, c2, s2) = (rt.clone(), component.clone(), stats.clone());
    o.policy_factory = Some(Arc::new(move || {
        let p = WasmPolicy::new(
            &rt2,
            "prefix_priority",
            &c2,
            &settings(&[("protected_prefixes", "session:")]),
            limits(50),
            s2.clone(),
        )
        .expect("policy");
        Some(Box::new(p) as Box<dyn EvictionPolicy>)
    }));
    let e = Engine::open(o).expect("open");
    for i in 0..50 {
        e.put(0, format!("session:{i}").as_bytes(), b"v", None)
            .expect("put");
    }
    for i in 0..1000 {
        e.put(0, format!("page:{i}").as_bytes(), b"v", None)
            .expect("put");
    }
    assert_eq!(e.total_len(), 100);
    for i in 0..50 {
        assert!(
            e.exists(0, format!("session:{i}").as_bytes())
                .expect("exists"),
            "session:{i} was evicted"
        );
    }
    assert_eq!(stats.failures(), 0, "{stats:?}");
    assert!(stats.calls.load(Ordering::Relaxed) > 0);
    assert_eq!(e.stats().policy, "prefix_priority");
}

#[test]
fn a_trapping_policy_hands_over_to_the_built_in_one() {
    let wat = format!(
        r#"(module {REALLOC}
          (func (export "caskade:plugin/eviction-policy@0.2.0#init") (param i32 i32) (result i32)
            (i32.store8 (i32.const 1024) (i32.const 0)) (i32.const 1024))
          (func (export "caskade:plugin/eviction-policy@0.2.0#wants-keys") (result i32) (i32.const 0))
          (func (export "caskade:plugin/eviction-policy@0.2.0#on-insert") (param i32 i32 i32 i32 i32 i32))
          (func (export "caskade:plugin/eviction-policy@0.2.0#on-access") (param i32 i32))
          (func (export "caskade:plugin/eviction-policy@0.2.0#on-remove") (param i32 i32))
          (func (export "caskade:plugin/eviction-policy@0.2.0#victims") (param i32) (result i32) (unreachable))
          (func (export "caskade:plugin/eviction-policy@0.2.0#keep-on-reclaim") (param i32 i32) (result i32) (unreachable)))"#
    );
    let rt = Runtime::new(None).expect("runtime");
    let c = rt
        .compile("trapping-policy", &from_wat(&wat, "eviction-policy-plugin"))
        .expect("compiles");
    let stats = Arc::new(PluginStats::default());
    let mut o = Options::new("/db");
    o.storage = Arc::new(FaultStorage::new());
    o.fsync = Fsync::Never;
    o.max_keys = Some(3);
    o.eviction = PolicyKind::Fifo;
    let (rt2, s2) = (rt.clone(), stats.clone());
    o.policy_factory = Some(Arc::new(move || {
        let p = WasmPolicy::new(&rt2, "trapping", &c, &[], limits(50), s2.clone()).expect("policy");
        Some(Box::new(p) as Box<dyn EvictionPolicy>)
    }));
    let e = Engine::open(o).expect("open");
    for k in ["a", "b", "c", "d", "e"] {
        e.put(0, k.as_bytes(), b"v", None).expect("put never fails");
        assert!(e.total_len() <= 3, "max_keys holds through the failure");
    }
    // The plugin trapped on its first victims call; the built-in FIFO, whose order the
    // index kept all along, took over: the newest key stays.
    assert_eq!(stats.traps.load(Ordering::Relaxed), 1);
    assert_eq!(e.stats().policy, "fifo");
    assert_eq!(e.total_len(), 3);
    assert!(e.exists(0, b"e").expect("exists"));
}

#[test]
fn compiled_code_is_cached_on_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = example("ttl_cap.wasm");
    let rt = Runtime::new(Some(dir.path())).expect("runtime");
    rt.load(&path).expect("load");
    let files = walk(dir.path());
    assert!(files > 0, "the cache directory holds compiled code");
    let rt2 = Runtime::new(Some(dir.path())).expect("runtime");
    let started = Instant::now();
    rt2.load(&path).expect("load from cache");
    assert!(started.elapsed() < Duration::from_secs(5));
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
