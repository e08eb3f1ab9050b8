//! tokio-uring against the `io-uring` crate used directly, and against `pread` on two
//! threads (what `server.io: tokio` does: the serving thread waits), on the reads the
//! uring server submits: random 4 KiB record reads from a 256 MiB file, 32 in flight,
//! from the page cache and with the page cache dropped before each pass.
//!
//! `cargo bench -p caskade --bench uring` prints one table (reads per second, and each
//! as a ratio of tokio-uring's in the same run), best of three interleaved passes.
#![allow(unsafe_code)]
#![allow(missing_docs)]

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::rc::Rc;
use std::time::{Duration, Instant};

const FILE_BYTES: u64 = 256 << 20;
const BLOCK: usize = 4096;
const DEPTH: usize = 32;
const READS: usize = 40_000;

/// The offsets every contender reads, the same sequence for all (xorshift).
fn offsets() -> Vec<u64> {
    let blocks = FILE_BYTES / BLOCK as u64;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..READS)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % blocks) * BLOCK as u64
        })
        .collect()
}

fn drop_cache(f: &File) {
    use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};
    let _ = posix_fadvise(f, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED);
}

fn warm(f: &File) {
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < FILE_BYTES {
        f.read_exact_at(&mut buf, at).expect("read");
        at += buf.len() as u64;
    }
}

fn tokio_uring_pass(path: &std::path::Path, offs: &[u64]) -> Duration {
    tokio_uring::start(async {
        let file = Rc::new(tokio_uring::fs::File::open(path).await.expect("open"));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for lane in 0..DEPTH {
            let file = file.clone();
            let mine: Vec<u64> = offs.iter().copied().skip(lane).step_by(DEPTH).collect();
            tasks.push(tokio_uring::spawn(async move {
                let mut buf = Vec::with_capacity(BLOCK);
                for off in mine {
                    buf.clear();
                    let (r, b) = file.read_exact_at(buf, off).await;
                    r.expect("read");
                    buf = b;
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        start.elapsed()
    })
}

fn io_uring_pass(file: &File, offs: &[u64]) -> Duration {
    use io_uring::{IoUring, opcode, types};
    let mut ring = IoUring::new(DEPTH as u32 * 2).expect("ring");
    let mut bufs = vec![vec![0u8; BLOCK]; DEPTH];
    let fd = types::Fd(file.as_raw_fd());
    let start = Instant::now();
    let mut next = 0;
    let mut done = 0;
    let mut in_flight = 0;
    let mut free: Vec<usize> = (0..DEPTH).collect();
    while done < offs.len() {
        while let (Some(slot), true) = (free.last().copied(), next < offs.len()) {
            free.pop();
            let buf = &mut bufs[slot];
            let sqe = opcode::Read::new(fd, buf.as_mut_ptr(), BLOCK as u32)
                .offset(offs[next])
                .build()
                .user_data(slot as u64);
            // SAFETY: the buffer `slot` stays alive and untouched until its completion
            // is reaped below (it is only handed out again from `free` after that), and
            // `file` outlives the ring's use of its descriptor in this function.
            unsafe { ring.submission().push(&sqe).expect("queue full") };
            next += 1;
            in_flight += 1;
        }
        ring.submit_and_wait(1).expect("submit");
        for cqe in ring.completion() {
            assert_eq!(cqe.result(), BLOCK as i32, "short or failed read");
            free.push(cqe.user_data() as usize);
            done += 1;
            in_flight -= 1;
        }
    }
    assert_eq!(in_flight, 0);
    start.elapsed()
}

/// Two threads doing blocking `pread`s: the device sees two reads at a time.
fn pread_pass(file: &File, offs: &[u64]) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for lane in 0..2 {
            s.spawn(move || {
                let mut buf = vec![0u8; BLOCK];
                for off in offs.iter().skip(lane).step_by(2) {
                    file.read_exact_at(&mut buf, *off).expect("read");
                }
            });
        }
    });
    start.elapsed()
}

fn main() {
    // `cargo test --benches` runs this once with `--bench` absent: keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let dir = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into()))
        .expect("dir");
    let path = dir.path().join("records");
    {
        let f = File::create(&path).expect("create");
        let chunk: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 31 % 251) as u8).collect();
        let mut at = 0;
        while at < FILE_BYTES {
            f.write_all_at(&chunk, at).expect("write");
            at += chunk.len() as u64;
        }
        f.sync_all().expect("sync");
    }
    let file = File::open(&path).expect("open");
    let offs = offsets();
    println!("random {BLOCK}-byte reads, {DEPTH} in flight, {READS} per pass, best of 3\n");
    println!("| contender | page cache | cold (dropped) |");
    println!("|---|---:|---:|");
    type Pass<'a> = Box<dyn Fn() -> Duration + 'a>;
    let contenders: Vec<(&str, Pass)> = vec![
        ("tokio-uring", Box::new(|| tokio_uring_pass(&path, &offs))),
        ("io-uring direct", Box::new(|| io_uring_pass(&file, &offs))),
        ("pread, 2 threads", Box::new(|| pread_pass(&file, &offs))),
    ];
    let mut best = vec![[Duration::MAX; 2]; contenders.len()];
    for _ in 0..3 {
        for (cold, warm_it) in [(0, true), (1, false)] {
            for (i, (_, pass)) in contenders.iter().enumerate() {
                if warm_it {
                    warm(&file);
                } else {
                    drop_cache(&file);
                }
                let t = pass();
                best[i][cold] = best[i][cold].min(t);
            }
        }
    }
    let rate = |d: Duration| READS as f64 / d.as_secs_f64();
    for (i, (name, _)) in contenders.iter().enumerate() {
        let cell = |k: usize| {
            format!(
                "{:.0}/s ({:.2}×)",
                rate(best[i][k]),
                rate(best[i][k]) / rate(best[0][k])
            )
        };
        println!("| {name} | {} | {} |", cell(0), cell(1));
    }
}
