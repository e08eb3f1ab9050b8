//! Engine benchmark: put/get throughput for 100 B and 4 KiB values on one and two
//! threads, for caskade and, in the same run and on the same disk, fjall (LSM tree) and
//! redb (B-tree); then caskade's DRAM per key at 1M and 10M keys and its reopen time.
//! Prints tables and caskade's ratio to each reference.
//!
//! `CASKADE_BENCH_SCALE=0.1 cargo bench -p caskade-engine` runs a tenth of the sizes.

use caskade_engine::{Engine, Fsync, Options};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

trait Store: Send + Sync {
    fn name(&self) -> &'static str;
    fn put(&self, key: &[u8], value: &[u8]);
    fn get(&self, key: &[u8]) -> Option<usize>;
}

struct Caskade(Engine);
impl Store for Caskade {
    fn name(&self) -> &'static str {
        "caskade"
    }
    fn put(&self, key: &[u8], value: &[u8]) {
        self.0.put(0, key, value, None).expect("caskade put");
    }
    fn get(&self, key: &[u8]) -> Option<usize> {
        self.0.get(0, key).expect("caskade get").map(|v| v.len())
    }
}

struct Fjall {
    _db: fjall::Database,
    ks: fjall::Keyspace,
}
impl Store for Fjall {
    fn name(&self) -> &'static str {
        "fjall"
    }
    fn put(&self, key: &[u8], value: &[u8]) {
        self.ks.insert(key, value).expect("fjall put");
    }
    fn get(&self, key: &[u8]) -> Option<usize> {
        self.ks.get(key).expect("fjall get").map(|v| v.len())
    }
}

const REDB_TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("kv");
struct Redb(redb::Database);
impl Store for Redb {
    fn name(&self) -> &'static str {
        "redb"
    }
    fn put(&self, key: &[u8], value: &[u8]) {
        let mut tx = self.0.begin_write().expect("redb tx");
        // No fsync per operation, like caskade's everysec and fjall's buffered journal.
        tx.set_durability(redb::Durability::None)
            .expect("durability");
        {
            let mut t = tx.open_table(REDB_TABLE).expect("table");
            t.insert(key, value).expect("redb put");
        }
        tx.commit().expect("redb commit");
    }
    fn get(&self, key: &[u8]) -> Option<usize> {
        use redb::ReadableDatabase;
        let tx = self.0.begin_read().expect("redb read");
        let t = tx.open_table(REDB_TABLE).expect("table");
        t.get(key).expect("redb get").map(|v| v.value().len())
    }
}

fn open_store(kind: &str, dir: &Path) -> Arc<dyn Store> {
    match kind {
        "caskade" => {
            let mut o = Options::new(dir);
            o.fsync = Fsync::EverySec;
            Arc::new(Caskade(Engine::open(o).expect("open caskade")))
        }
        "fjall" => {
            let db = fjall::Database::builder(dir).open().expect("open fjall");
            let ks = db
                .keyspace("kv", fjall::KeyspaceCreateOptions::default)
                .expect("keyspace");
            Arc::new(Fjall { _db: db, ks })
        }
        "redb" => {
            let db = redb::Database::create(dir.join("db.redb")).expect("open redb");
            Arc::new(Redb(db))
        }
        other => unreachable!("{other}"),
    }
}

fn key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k.copy_from_slice(format!("k{i:015}").as_bytes());
    k
}

fn value(i: u64, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i as usize * 31 + j) as u8).collect()
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// Runs `f(thread, i)` for `n` operations split over `threads`; returns µs per op
/// (wall time × threads / ops, so it reads as the cost of one op on one core).
fn timed(threads: usize, n: u64, f: impl Fn(usize, u64) + Sync) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let f = &f;
            s.spawn(move || {
                let mut i = t as u64;
                while i < n {
                    f(t, i);
                    i += threads as u64;
                }
            });
        }
    });
    start.elapsed().as_secs_f64() * 1e6 / n as f64
}

struct Row {
    store: &'static str,
    value: usize,
    threads: usize,
    put_us: f64,
    get_us: f64,
}

fn throughput(kind: &str, value_len: usize, threads: usize, n: u64) -> Row {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_store(kind, dir.path());
    let vals: Vec<Vec<u8>> = (0..64).map(|i| value(i, value_len)).collect();
    let put_us = timed(threads, n, |_, i| {
        store.put(&key(i), &vals[(i % 64) as usize])
    });
    let get_us = timed(threads, n, |t, i| {
        let k = xorshift(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ t as u64 | 1) % n;
        assert_eq!(store.get(&key(k)), Some(value_len), "{kind} lost key {k}");
    });
    Row {
        store: store.name(),
        value: value_len,
        threads,
        put_us,
        get_us,
    }
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn dram_and_reopen(keys: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = Options::new(dir.path());
    o.fsync = Fsync::Never;
    let rss0 = rss_bytes();
    let e = Engine::open(o.clone()).expect("open");
    let start = Instant::now();
    for i in 0..keys {
        e.put(0, &key(i), b"v", None).expect("put");
    }
    let load = start.elapsed();
    let s = e.stats();
    let rss = rss_bytes().saturating_sub(rss0);
    println!(
        "| {:>10} | {:>13.1} | {:>11.1} | {:>9.2} s |",
        keys,
        s.index_bytes as f64 / keys as f64,
        rss as f64 / keys as f64,
        load.as_secs_f64(),
    );
    e.close().expect("close");
    drop(e);
    let start = Instant::now();
    let e = Engine::open(o.clone()).expect("reopen");
    let reopen = start.elapsed();
    assert_eq!(e.total_len() as u64, keys);
    e.close().expect("close");
    drop(e);
    // Without hints (after a crash the active segment is scanned; here all of them).
    for entry in std::fs::read_dir(dir.path()).expect("ls").flatten() {
        if entry.file_name().to_string_lossy().ends_with(".hint") {
            std::fs::remove_file(entry.path()).expect("rm hint");
        }
    }
    let start = Instant::now();
    let e = Engine::open(o).expect("reopen by scan");
    let scan = start.elapsed();
    assert_eq!(e.total_len() as u64, keys);
    println!(
        "|            reopen {keys} keys: {:.2} s from hint files, {:.2} s by scanning every segment",
        reopen.as_secs_f64(),
        scan.as_secs_f64()
    );
}

fn main() {
    let scale: f64 = std::env::var("CASKADE_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let n = |base: u64| ((base as f64 * scale) as u64).max(1000);
    // CASKADE_BENCH_PARTS=throughput,dram picks parts (both by default).
    let parts = std::env::var("CASKADE_BENCH_PARTS").unwrap_or_else(|_| "throughput,dram".into());
    println!("\n## caskade engine benchmark (scale {scale})\n");
    if parts.contains("throughput") {
        throughput_tables(n);
    }
    if parts.contains("dram") {
        println!("\nDRAM per key, 16-byte keys. The index holds 24-byte slots (hash, location,");
        println!("expiry), not the keys, so this is the whole DRAM cost of a key:\n");
        println!("| keys       | index B/key   | RSS Δ B/key | load time |");
        println!("|------------|--------------:|------------:|----------:|");
        for keys in [n(1_000_000), n(10_000_000)] {
            dram_and_reopen(keys);
        }
    }
}

fn throughput_tables(n: impl Fn(u64) -> u64) {
    println!("Single-key operations, 16-byte keys, no fsync per operation in any store");
    println!("(caskade fsync=everysec, fjall's buffered journal, redb Durability::None).\n");
    println!("| store   | value | threads | put µs/op | get µs/op | put ops/s | get ops/s |");
    println!("|---------|------:|--------:|----------:|----------:|----------:|----------:|");
    let mut rows = Vec::new();
    for (value_len, ops) in [(100usize, n(200_000)), (4096, n(50_000))] {
        for threads in [1usize, 2] {
            for kind in ["caskade", "fjall", "redb"] {
                let r = throughput(kind, value_len, threads, ops);
                println!(
                    "| {:<7} | {:>5} | {:>7} | {:>9.2} | {:>9.2} | {:>9.0} | {:>9.0} |",
                    r.store,
                    r.value,
                    r.threads,
                    r.put_us,
                    r.get_us,
                    1e6 / r.put_us * threads as f64,
                    1e6 / r.get_us * threads as f64
                );
                rows.push(r);
            }
        }
    }
    println!(
        "\nRatios (caskade throughput ÷ reference throughput; > 1 means caskade is faster):\n"
    );
    println!("| value | threads | vs fjall put | vs fjall get | vs redb put | vs redb get |");
    println!("|------:|--------:|-------------:|-------------:|------------:|------------:|");
    for c in rows.iter().filter(|r| r.store == "caskade") {
        let other = |name: &str| {
            rows.iter()
                .find(|r| r.store == name && r.value == c.value && r.threads == c.threads)
                .expect("row")
        };
        let (f, r) = (other("fjall"), other("redb"));
        println!(
            "| {:>5} | {:>7} | {:>11.2}× | {:>11.2}× | {:>10.2}× | {:>10.2}× |",
            c.value,
            c.threads,
            f.put_us / c.put_us,
            f.get_us / c.get_us,
            r.put_us / c.put_us,
            r.get_us / c.get_us
        );
    }
    if let Some(c) = rows
        .iter()
        .find(|r| r.store == "caskade" && r.value == 4096 && r.threads == 1)
    {
        println!(
            "\n4 KiB single thread: put {:.2} µs/op, get {:.2} µs/op (bitcaskDB publishes put 13–25, get 6–8 µs/op)",
            c.put_us, c.get_us
        );
    }
}
