//! Property test: random sequences of writes, expiry changes, clock moves, clean
//! reopens and crashes, checked against a plain `HashMap` model. Under `fsync always`
//! a crash loses nothing acknowledged; under `fsync never` the survivor must equal the
//! model as it stood after some prefix of the operations since the last sync.

mod common;

use caskade_engine::io::{CrashMode, FaultStorage};
use caskade_engine::{Engine, Fsync, ManualClock};
use common::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

type Model = BTreeMap<(u8, u8), (Vec<u8>, Option<u64>)>;

#[derive(Debug, Clone)]
enum Op {
    Put {
        ns: u8,
        key: u8,
        len: usize,
        ttl: Option<u64>,
    },
    Delete {
        ns: u8,
        key: u8,
    },
    Expire {
        ns: u8,
        key: u8,
        ttl: i64,
    },
    Persist {
        ns: u8,
        key: u8,
    },
    Advance(u64),
    FlushNs(u8),
    Sync,
    Reopen,
    Crash {
        torn: bool,
        seed: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let ns = prop_oneof![Just(0u8), Just(3u8)];
    let key = 0u8..12;
    prop_oneof![
        8 => (ns.clone(), key.clone(), 0usize..300, proptest::option::weighted(0.3, 1u64..5000))
            .prop_map(|(ns, key, len, ttl)| Op::Put { ns, key, len, ttl }),
        2 => (ns.clone(), key.clone()).prop_map(|(ns, key)| Op::Delete { ns, key }),
        2 => (ns.clone(), key.clone(), -100i64..5000).prop_map(|(ns, key, ttl)| Op::Expire { ns, key, ttl }),
        1 => (ns.clone(), key.clone()).prop_map(|(ns, key)| Op::Persist { ns, key }),
        2 => (1u64..3000).prop_map(Op::Advance),
        1 => prop_oneof![Just(0u8), Just(3u8)].prop_map(Op::FlushNs),
        1 => Just(Op::Sync),
        1 => Just(Op::Reopen),
        1 => (any::<bool>(), any::<u64>()).prop_map(|(torn, seed)| Op::Crash { torn, seed }),
    ]
}

fn key_bytes(key: u8) -> Vec<u8> {
    format!("key:{key}").into_bytes()
}

fn value(step: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| (step * 31 + i * 7) as u8).collect()
}

fn live(model: &Model, now: u64) -> Model {
    model
        .iter()
        .filter(|(_, (_, exp))| exp.is_none_or(|e| e > now))
        .map(|(k, v)| (*k, v.clone()))
        .collect()
}

/// What the engine holds, read key by key over the whole key space.
fn observe(e: &Engine) -> Model {
    let mut m = Model::new();
    for ns in [0u8, 3] {
        for key in 0u8..12 {
            if let Some(item) = e.get_item(ns, &key_bytes(key)).expect("get") {
                m.insert((ns, key), (item.value.to_vec(), item.expire_at_ms));
            }
        }
    }
    m
}

fn check_scan(e: &Engine, model: &Model) {
    for ns in [0u8, 3] {
        let want: BTreeSet<Vec<u8>> = model
            .keys()
            .filter(|(n, _)| *n == ns)
            .map(|(_, k)| key_bytes(*k))
            .collect();
        let got: BTreeSet<Vec<u8>> = scan_all(e, ns, 3).into_iter().collect();
        assert_eq!(got, want, "scan of namespace {ns}");
    }
}

fn run(ops: Vec<Op>, fsync: Fsync) {
    let clock = Arc::new(ManualClock::new(T0));
    let mut fs = FaultStorage::new();
    let mut engine = open(&mem_options(&fs, &clock, fsync));
    let mut model = Model::new();
    // Model states since the last point where everything was durable.
    let mut since_sync: Vec<Model> = vec![model.clone()];
    for (step, op) in ops.into_iter().enumerate() {
        let now = clock.now();
        match op {
            Op::Put { ns, key, len, ttl } => {
                let v = value(step, len);
                let exp = ttl.map(|t| now + t);
                engine.put(ns, &key_bytes(key), &v, exp).expect("put");
                model.insert((ns, key), (v, exp));
            }
            Op::Delete { ns, key } => {
                let existed = engine.delete(ns, &key_bytes(key)).expect("delete");
                let was = live(&model, now).contains_key(&(ns, key));
                assert_eq!(existed, was, "delete's answer, step {step}");
                model.remove(&(ns, key));
            }
            Op::Expire { ns, key, ttl } => {
                let at = (now as i64 + ttl) as u64;
                let done = engine.expire(ns, &key_bytes(key), at).expect("expire");
                let was = live(&model, now).contains_key(&(ns, key));
                assert_eq!(done, was, "expire's answer, step {step}");
                if was {
                    if at <= now {
                        model.remove(&(ns, key));
                    } else if let Some(entry) = model.get_mut(&(ns, key)) {
                        entry.1 = Some(at);
                    }
                }
            }
            Op::Persist { ns, key } => {
                let done = engine.persist(ns, &key_bytes(key)).expect("persist");
                let had_ttl = live(&model, now)
                    .get(&(ns, key))
                    .is_some_and(|(_, e)| e.is_some());
                assert_eq!(done, had_ttl, "persist's answer, step {step}");
                if had_ttl && let Some(entry) = model.get_mut(&(ns, key)) {
                    entry.1 = None;
                }
            }
            Op::Advance(ms) => clock.advance(ms),
            Op::FlushNs(ns) => {
                engine.flush_namespace(ns).expect("flush");
                model.retain(|(n, _), _| *n != ns);
            }
            Op::Sync => {
                engine.sync().expect("sync");
                since_sync.clear();
            }
            Op::Reopen => {
                engine.close().expect("close");
                drop(engine);
                engine = open(&mem_options(&fs, &clock, fsync));
                since_sync.clear();
            }
            Op::Crash { torn, seed } => {
                let mode = if torn {
                    CrashMode::TornTail { seed }
                } else {
                    CrashMode::DropUnsynced
                };
                let survivor = fs.crash(mode);
                drop(engine);
                fs = survivor;
                engine = open(&mem_options(&fs, &clock, fsync));
                let got = observe(&engine);
                let now = clock.now();
                if fsync == Fsync::Always {
                    assert_eq!(got, live(&model, now), "state after crash, step {step}");
                } else {
                    since_sync.push(model.clone());
                    let found = since_sync
                        .iter()
                        .rev()
                        .find(|m| live(m, now) == got)
                        .cloned();
                    let Some(m) = found else {
                        panic!(
                            "state after crash at step {step} matches no prefix: {got:?} vs {:?}",
                            since_sync.iter().map(|m| live(m, now)).collect::<Vec<_>>()
                        );
                    };
                    model = m;
                }
                since_sync.clear();
            }
        }
        since_sync.push(model.clone());
        let now = clock.now();
        let want = live(&model, now);
        assert_eq!(
            observe(&engine),
            want,
            "state after step {step} ({:?})",
            since_sync.len()
        );
        for ((ns, key), (_, exp)) in &want {
            assert_eq!(
                engine.ttl(*ns, &key_bytes(*key)).expect("ttl"),
                Some(*exp),
                "ttl of {ns}/{key}"
            );
        }
        if step % 8 == 0 {
            check_scan(&engine, &want);
        }
        let total: usize = want.len();
        assert!(engine.total_len() >= total, "index lost keys");
    }
    engine.close().expect("close");
    drop(engine);
    let engine = open(&mem_options(&fs, &clock, fsync));
    assert_eq!(
        observe(&engine),
        live(&model, clock.now()),
        "after final reopen"
    );
}

trait Now {
    fn now(&self) -> u64;
}
impl Now for ManualClock {
    fn now(&self) -> u64 {
        caskade_engine::Clock::now_ms(self)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn fsync_always_loses_nothing_acknowledged(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops, Fsync::Always);
    }

    #[test]
    fn fsync_never_recovers_a_prefix_of_history(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops, Fsync::Never);
    }
}
