//! Trace replay: Zipf-distributed keys (α 0.8, 1.0, 1.2) over 100,000 keys, one million
//! requests, a miss filled by a put as a cache client does, with the cache bounded to
//! 1% and 10% of the key space. Prints hit ratio and throughput per policy, then hit
//! ratio and write amplification under a disk budget (where reclaim copies forward what
//! the policy keeps).
//!
//! `cargo bench -p caskade-engine --bench policies`; `CASKADE_BENCH_SCALE=0.1` for a
//! tenth of the requests. `python3 bench/charts.py policies OUTPUT hit-ratio.svg`
//! draws the first table (hit ratio against cache size per policy).

use caskade_engine::{Engine, Fsync, Options, PolicyKind};
use std::time::Instant;

const KEYS: usize = 100_000;
const VALUE: [u8; 64] = [7u8; 64];

struct Zipf {
    cdf: Vec<f64>,
    rng: u64,
}

impl Zipf {
    fn new(n: usize, alpha: f64, seed: u64) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for i in 1..=n {
            sum += 1.0 / (i as f64).powf(alpha);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Zipf { cdf, rng: seed | 1 }
    }

    fn next(&mut self) -> usize {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let u = (self.rng >> 11) as f64 / (1u64 << 53) as f64;
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

struct Outcome {
    hit_ratio: f64,
    write_amp: f64,
    mops: f64,
}

fn replay(
    kind: PolicyKind,
    alpha: f64,
    requests: usize,
    max_keys: Option<u64>,
    disk: Option<u64>,
) -> Outcome {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = Options::new(dir.path());
    o.fsync = Fsync::Never;
    o.eviction = kind;
    o.max_keys = max_keys;
    o.max_disk_bytes = disk;
    if disk.is_some() {
        o.segment_bytes = 256 << 10;
    }
    let e = Engine::open(o).expect("open");
    let mut z = Zipf::new(KEYS, alpha, 0x5eed);
    let keys: Vec<[u8; 16]> = (0..KEYS)
        .map(|i| {
            let mut k = [0u8; 16];
            k.copy_from_slice(format!("k{i:015}").as_bytes());
            k
        })
        .collect();
    let mut hits = 0usize;
    let start = Instant::now();
    for _ in 0..requests {
        let k = &keys[z.next()];
        if e.get(0, k).expect("get").is_some() {
            hits += 1;
        } else {
            e.put(0, k, &VALUE, None).expect("put");
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let s = e.stats();
    Outcome {
        hit_ratio: hits as f64 / requests as f64,
        write_amp: s.write_amplification,
        mops: requests as f64 / secs / 1e6,
    }
}

fn main() {
    let scale: f64 = std::env::var("CASKADE_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let requests = ((1_000_000.0 * scale) as usize).max(10_000);
    let policies = [
        PolicyKind::Fifo,
        PolicyKind::Lru,
        PolicyKind::Sieve,
        PolicyKind::S3Fifo,
    ];
    println!("\n## Eviction policies: Zipf trace replay ({requests} requests, {KEYS} keys)\n");
    println!("Cache bounded by max_keys. Hit ratio (Mops/s in brackets):\n");
    println!("| α   | cache | fifo | lru | sieve | s3-fifo |");
    println!("|-----|------:|-----:|----:|------:|--------:|");
    for alpha in [0.8, 1.0, 1.2] {
        for frac in [0.005, 0.01, 0.02, 0.05, 0.10, 0.20] {
            let cap = (KEYS as f64 * frac) as u64;
            let cells: Vec<String> = policies
                .iter()
                .map(|&p| {
                    let o = replay(p, alpha, requests, Some(cap), None);
                    format!("{:.4} ({:.2})", o.hit_ratio, o.mops)
                })
                .collect();
            println!(
                "| {alpha:.1} | {:>4}% | {} |",
                frac * 100.0,
                cells.join(" | ")
            );
        }
    }
    // Under a disk budget the cache is as large as the bytes allow; a reclaimed
    // segment's live keys are copied forward only if the policy keeps them.
    let budget: u64 = 2 << 20;
    println!(
        "\nCache bounded by max_disk_bytes = {} KiB (about 10% of the key space), α 1.0:\n",
        budget >> 10
    );
    println!("| policy | hit ratio | write amplification | Mops/s |");
    println!("|--------|----------:|--------------------:|-------:|");
    for &p in &policies {
        let o = replay(p, 1.0, requests, None, Some(budget));
        println!(
            "| {} | {:.4} | {:.3} | {:.2} |",
            p.as_str(),
            o.hit_ratio,
            o.write_amp,
            o.mops
        );
    }
}
