//! `server.io: uring` and `hybrid` end to end: clients over TCP (for `uring`, one
//! `SO_REUSEPORT` listener per thread) and the Unix socket, pipelines and large values
//! (through completion-based reads, for `uring`), a blocked client woken from another
//! thread, and records that are not in the page cache read with io_uring ahead of the
//! command and checked like any read; a kernel that refuses io_uring gets `tokio`.
// The refusal is made with a seccomp filter installed between fork and exec.
#![allow(unsafe_code)]

mod common;

use common::{Server, info_u64, q};
use std::io::{Read, Write};
use std::path::Path;

fn uring(mode: &str, extra: &[&str]) -> (Server, tempfile::TempDir, std::path::PathBuf) {
    let sock_dir = tempfile::tempdir().expect("tempdir");
    let sock = sock_dir.path().join("caskade.sock");
    let mut args = vec![
        "--io",
        mode,
        "--threads",
        "2",
        "--unixsocket",
        sock.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    (Server::start(&args), sock_dir, sock)
}

fn info_text(c: &mut redis::Connection) -> String {
    redis::cmd("INFO").arg("caskade").query(c).expect("info")
}

#[test]
fn uring_serves_tcp_unix_pipelines_large_values_and_blocked_clients() {
    serves_tcp_unix_pipelines_large_values_and_blocked_clients("uring");
}

#[test]
fn hybrid_serves_tcp_unix_pipelines_large_values_and_blocked_clients() {
    serves_tcp_unix_pipelines_large_values_and_blocked_clients("hybrid");
}

#[test]
fn uring_reads_cold_records_with_io_uring_and_checks_them() {
    cold_records_are_read_with_io_uring_and_checked("uring");
}

#[test]
fn hybrid_reads_cold_records_with_io_uring_and_checks_them() {
    cold_records_are_read_with_io_uring_and_checked("hybrid");
}

fn serves_tcp_unix_pipelines_large_values_and_blocked_clients(mode: &str) {
    let (s, _sock_dir, sock) = uring(mode, &[]);
    let mut c = s.client();
    let info = info_text(&mut c);
    assert!(info.contains(&format!("io:{mode}")), "{info}");
    assert!(info.contains("io_threads:2"), "{info}");

    // A pipeline of a thousand commands, answered in order.
    let mut p = redis::pipe();
    for i in 0..1000 {
        p.cmd("SET").arg(format!("k{i}")).arg(i).ignore();
    }
    for i in 0..1000 {
        p.cmd("GET").arg(format!("k{i}"));
    }
    let got: Vec<String> = p.query(&mut c).expect("pipeline");
    assert_eq!(got.len(), 1000);
    assert!(got.iter().enumerate().all(|(i, v)| *v == i.to_string()));

    // A value larger than any one read: the connection's buffer grows, and shrinks.
    let big = "x".repeat(3 << 20);
    let () = q(&mut c, &["SET", "big", &big]);
    let back: String = q(&mut c, &["GET", "big"]);
    assert_eq!(back.len(), big.len());

    // The Unix socket reaches the same data.
    let mut u = redis::Client::open(format!("redis+unix://{}", sock.display()))
        .expect("client")
        .get_connection()
        .expect("connect");
    let v: String = q(&mut u, &["GET", "k7"]);
    assert_eq!(v, "7");

    // Several connections (spread over both threads) wake a blocked one in turn.
    let mut waiter = std::os::unix::net::UnixStream::connect(&sock).expect("connect");
    waiter
        .write_all(b"*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$1\r\n5\r\n")
        .expect("write");
    std::thread::sleep(std::time::Duration::from_millis(100));
    for i in 0..4 {
        let mut pusher = s.client();
        let _: i64 = q(&mut pusher, &["RPUSH", "q", &format!("v{i}")]);
    }
    let mut buf = [0u8; 64];
    let n = waiter.read(&mut buf).expect("read");
    assert_eq!(&buf[..n], b"*2\r\n$1\r\nq\r\n$2\r\nv0\r\n");
    let left: i64 = q(&mut c, &["LLEN", "q"]);
    assert_eq!(left, 3);

    // A raw client sending a command one byte at a time is parsed as a whole.
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    for b in b"*2\r\n$3\r\nGET\r\n$2\r\nk9\r\n" {
        raw.write_all(&[*b]).expect("write");
    }
    let n = raw.read(&mut buf).expect("read");
    assert_eq!(&buf[..n], b"$1\r\n9\r\n");
}

/// Asks the kernel to forget the cached pages of every file under `dir`.
fn drop_page_cache(dir: &Path) {
    use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            let f = std::fs::File::open(&path).expect("open");
            f.sync_all().expect("sync");
            posix_fadvise(&f, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED).expect("fadvise");
        }
    }
}

fn cold_records_are_read_with_io_uring_and_checked(mode: &str) {
    let (mut s, _sock_dir, _sock) = uring(mode, &["--hot-bytes", "0"]);
    let mut c = s.client();
    let value = |i: usize| format!("{i:06}-{}", "v".repeat(1000));
    let mut p = redis::pipe();
    for i in 0..2000 {
        p.cmd("SET").arg(format!("key:{i}")).arg(value(i)).ignore();
    }
    let () = p.query(&mut c).expect("fill");
    // Collections large enough to have chunks.
    let mut p = redis::pipe();
    for i in 0..5000 {
        p.cmd("HSET").arg("h").arg(format!("f{i}")).arg(i).ignore();
        p.cmd("ZADD").arg("z").arg(i).arg(format!("m{i}")).ignore();
        p.cmd("RPUSH").arg("l").arg(i).ignore();
    }
    let () = p.query(&mut c).expect("collections");
    // Restarted (so the records are in the files, synced), then out of the page cache.
    assert!(s.stop().success(), "clean stop");
    s.restart();
    drop_page_cache(s.data_dir());
    let mut c = s.client();
    for i in (0..2000).step_by(7) {
        let v: String = q(&mut c, &["GET", &format!("key:{i}")]);
        assert_eq!(v, value(i));
    }
    drop_page_cache(s.data_dir());
    let f: String = q(&mut c, &["HGET", "h", "f4321"]);
    assert_eq!(f, "4321");
    let top: Vec<String> = q(&mut c, &["ZRANGE", "z", "4995", "-1"]);
    assert_eq!(top, ["m4995", "m4996", "m4997", "m4998", "m4999"]);
    let mid: Vec<String> = q(&mut c, &["LRANGE", "l", "2500", "2502"]);
    assert_eq!(mid, ["2500", "2501", "2502"]);
    let n: i64 = q(&mut c, &["HLEN", "h"]);
    assert_eq!(n, 5000);
    // A pipeline of cold GETs (with a write in the middle that one of them reads)
    // is answered in order, the later ones read side by side with the first.
    drop_page_cache(s.data_dir());
    let mut p = redis::pipe();
    for i in 100..150 {
        p.cmd("GET").arg(format!("key:{i}"));
    }
    p.cmd("SET").arg("key:160").arg("fresh").ignore();
    for i in 150..200 {
        p.cmd("GET").arg(format!("key:{i}"));
    }
    let got: Vec<String> = p.query(&mut c).expect("pipeline");
    for (n, v) in got.iter().enumerate() {
        let i = 100 + n;
        let want = if i == 160 {
            "fresh".to_string()
        } else {
            value(i)
        };
        assert_eq!(*v, want, "reply {n}");
    }
    // MGET reads its keys' records side by side.
    drop_page_cache(s.data_dir());
    let keys: Vec<String> = (0..40).map(|i| format!("key:{i}")).collect();
    let got: Vec<String> = redis::cmd("MGET").arg(&keys).query(&mut c).expect("mget");
    assert!(got.iter().enumerate().all(|(i, v)| *v == value(i)));
    let reads = info_u64(&mut c, &["caskade"], "uring_reads");
    assert!(reads > 0, "no record was read with io_uring");
    let (status, metrics) = s.admin_get("/metrics");
    assert_eq!(status, 200);
    let exported = metrics
        .lines()
        .find_map(|l| l.strip_prefix("caskade_uring_reads_total "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert!(exported.is_some_and(|n| n > 0), "{metrics}");

    // A record damaged on disk is caught by the same check as a synchronous read.
    assert!(s.stop().success(), "clean stop");
    let needle = value(1234);
    let mut damaged = false;
    for entry in std::fs::read_dir(s.data_dir()).expect("dir") {
        let path = entry.expect("entry").path();
        let Ok(mut bytes) = std::fs::read(&path) else {
            continue;
        };
        if let Some(at) = bytes
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
        {
            bytes[at + 10] ^= 0x20;
            std::fs::write(&path, &bytes).expect("write");
            damaged = true;
        }
    }
    assert!(damaged, "the record was found on disk");
    s.restart();
    drop_page_cache(s.data_dir());
    let mut c = s.client();
    let gone: Option<String> = q(&mut c, &["GET", "key:1234"]);
    assert_eq!(gone, None, "a damaged record is never served");
    assert_eq!(info_u64(&mut c, &["caskade"], "engine_corrupt_records"), 1);
    let v: String = q(&mut c, &["GET", "key:1235"]);
    assert_eq!(v, value(1235));
}

/// Starts caskade with `io_uring_setup` refused by a seccomp filter (as Docker's and
/// containerd's default profiles refuse it): it must serve with tokio and say why.
#[test]
fn a_kernel_that_refuses_io_uring_gets_tokio_and_the_reason() {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("caskade.sock");
    let filter = refuse_io_uring_setup();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_caskade"));
    cmd.args([
        "--io",
        "hybrid",
        "--port",
        "0",
        "--admin-port",
        "0",
        "--dir",
    ])
    .arg(dir.path().join("data"))
    .arg("--unixsocket")
    .arg(&sock)
    .env("CASKADE_LOG", "warn")
    .env("NO_COLOR", "1")
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    // SAFETY: between fork and exec the closure makes only two prctl system calls
    // (async-signal-safe) on a filter built before the fork; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || filter.install());
    }
    let mut child = cmd.spawn().expect("spawn");
    let stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let ready = stdout
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("caskade ready"));
    assert!(ready, "caskade did not start");
    let mut c = redis::Client::open(format!("redis+unix://{}", sock.display()))
        .expect("client")
        .get_connection()
        .expect("connect");
    let () = q(&mut c, &["SET", "k", "v"]);
    let info = info_text(&mut c);
    assert!(info.contains("io:tokio"), "{info}");
    let _ = child.kill();
    let _ = child.wait();
    let mut log = String::new();
    let _ = child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut log);
    assert!(
        log.contains("io_uring is refused here; serving with tokio")
            && log.contains("Operation not permitted"),
        "{log}"
    );
}

/// A classic BPF seccomp filter: `io_uring_setup` (425 on every architecture) fails
/// with EPERM, every other system call is allowed.
struct RefuseIoUring {
    prog: Vec<libc::sock_filter>,
}

fn refuse_io_uring_setup() -> RefuseIoUring {
    const IO_URING_SETUP: u32 = 425;
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    RefuseIoUring {
        prog: vec![
            // The system call's number (offset 0 of struct seccomp_data).
            stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
            jeq(IO_URING_SETUP, 0, 1),
            stmt(
                libc::BPF_RET | libc::BPF_K,
                libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
            ),
            stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
        ],
    }
}

impl RefuseIoUring {
    fn install(&self) -> std::io::Result<()> {
        let prog = libc::sock_fprog {
            len: self.prog.len() as u16,
            filter: self.prog.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: PR_SET_NO_NEW_PRIVS takes plain integers. PR_SET_SECCOMP reads the
        // program through `prog`, which points at `self.prog`, alive for the call.
        let ok = unsafe {
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
                && libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &prog as *const libc::sock_fprog,
                ) == 0
        };
        if ok {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}
