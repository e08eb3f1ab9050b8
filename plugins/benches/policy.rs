//! The built-in SIEVE policy against the same policy as a WebAssembly plugin (the
//! prefix-priority example with no protected prefixes is plain SIEVE), in one run
//! (five interleaved rounds of each, the best one counted):
//! engine throughput under eviction, the cost of one plugin call, and the resident
//! memory of one plugin instance. Needs `bash plugins/build.sh` first.
//!
//! `cargo bench -p caskade-plugins`; `CASKADE_BENCH_SCALE=0.1` for a tenth of the work.

use caskade_engine::{Engine, EvictionPolicy, Fsync, Options, PolicyKind};
use caskade_plugins::{Component, Limits, PluginStats, Runtime, WasmPolicy};
use std::sync::Arc;
use std::time::Instant;

fn plugin(rt: &Runtime) -> Component {
    let p = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/plugins/prefix_priority.wasm"
    ));
    assert!(p.exists(), "run `bash plugins/build.sh` first");
    rt.load(&p).expect("load")
}

fn wasm_policy(rt: &Runtime, c: &Component) -> WasmPolicy {
    WasmPolicy::new(
        rt,
        "sieve.wasm",
        c,
        &[],
        Limits::default(),
        Arc::new(PluginStats::default()),
    )
    .expect("policy")
}

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// get, and put on a miss, over keys drawn with a skew (a square of a uniform draw),
/// with the cache bounded to a tenth of the key space. Returns (ops/s, hit ratio).
fn engine_run(policy: Option<Box<dyn EvictionPolicy>>, ops: u64) -> (f64, f64) {
    let keys = ops;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = Options::new(dir.path());
    o.fsync = Fsync::Never;
    o.eviction = PolicyKind::Sieve;
    o.max_keys = Some(keys / 10);
    if let Some(p) = policy {
        let slot = parking_lot::Mutex::new(Some(p));
        o.policy_factory = Some(Arc::new(move || slot.lock().take()));
    }
    let e = Engine::open(o).expect("open");
    let mut r = 0x9e37_79b9u64;
    let mut hits = 0u64;
    let started = Instant::now();
    for _ in 0..ops {
        let u = (xorshift(&mut r) % 1_000_000) as f64 / 1_000_000.0;
        let k = format!("key:{}", (u * u * keys as f64) as u64);
        if e.get(0, k.as_bytes()).expect("get").is_some() {
            hits += 1;
        } else {
            e.put(0, k.as_bytes(), b"value-of-some-length", None)
                .expect("put");
        }
    }
    (
        ops as f64 / started.elapsed().as_secs_f64(),
        hits as f64 / ops as f64,
    )
}

fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |p| p * 4096)
}

fn main() {
    let scale: f64 = std::env::var("CASKADE_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let ops = ((1_000_000.0 * scale) as u64).max(20_000);
    let rt = Runtime::new(None).expect("runtime");
    let c = plugin(&rt);

    println!(
        "\n## SIEVE built in vs as a WebAssembly plugin ({ops} get-or-put operations, cache = 10% of keys)\n"
    );
    // Interleaved rounds, best of each: this machine's speed drifts between runs.
    let (mut b_ops, mut b_hit, mut w_ops, mut w_hit) = (0.0f64, 0.0, 0.0f64, 0.0);
    for _ in 0..5 {
        let (o, h) = engine_run(None, ops);
        (b_ops, b_hit) = (b_ops.max(o), h);
        let (o, h) = engine_run(Some(Box::new(wasm_policy(&rt, &c))), ops);
        (w_ops, w_hit) = (w_ops.max(o), h);
    }
    println!("| policy | ops/s | hit ratio |");
    println!("|--------|------:|----------:|");
    println!("| built-in SIEVE | {b_ops:.0} | {b_hit:.4} |");
    println!("| SIEVE plugin | {w_ops:.0} | {w_hit:.4} |");
    println!(
        "\nplugin throughput = {:.3}x built-in ({:+.1}%)",
        w_ops / b_ops,
        (w_ops / b_ops - 1.0) * 100.0
    );

    // The cost of one call, alone and per id in a batch of 256 accesses.
    let mut p = wasm_policy(&rt, &c);
    let ids: Vec<u64> = (1..=256u64).map(|i| i << 4).collect();
    let keys: Vec<&[u8]> = ids.iter().map(|_| &b"k"[..]).collect();
    p.on_insert_keys(&ids, &keys);
    let n = 20_000;
    let t = Instant::now();
    for i in 0..n {
        p.on_access(&ids[i % 256..i % 256 + 1]);
    }
    let one = t.elapsed().as_nanos() as f64 / n as f64;
    let t = Instant::now();
    for _ in 0..n / 10 {
        p.on_access(&ids);
    }
    let batch = t.elapsed().as_nanos() as f64 / (n / 10) as f64;
    println!(
        "\nper call: {:.2} µs for one id; {:.2} µs for 256 ids ({:.1} ns per id)",
        one / 1000.0,
        batch / 1000.0,
        batch / 256.0
    );

    // Resident memory of an instance: many instances, RSS before and after.
    let before = rss();
    let many: Vec<WasmPolicy> = (0..50).map(|_| wasm_policy(&rt, &c)).collect();
    let per = (rss().saturating_sub(before)) / many.len() as u64;
    println!(
        "resident memory per instance: {:.0} KiB (50 instances)",
        per as f64 / 1024.0
    );
}
