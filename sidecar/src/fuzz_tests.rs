//! Fuzz targets for the request parser, the config parser and the HyperLogLog decoder
//! (a stored string is input: SET can put any bytes there), driven by the engine's
//! stable harness (`caskade_engine::fuzzing`): a few thousand inputs per test run,
//! `CASKADE_FUZZ_SECS` seconds each under `bench/fuzz.sh`.

use crate::config::Config;
use crate::protocol::request::RequestParser;
use crate::types::hll::Hll;
use bytes::{Bytes, BytesMut};
use caskade_engine::fuzzing;

/// Every command (or the error) the parser makes of `data` fed in pieces of the given
/// sizes (cycled), until it needs more bytes or refuses.
fn parse_all(data: &[u8], pieces: &[usize]) -> (Vec<Vec<Bytes>>, Option<String>) {
    let mut p = RequestParser::new(1 << 16, 1024);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < data.len() {
        let n = pieces[i % pieces.len()].max(1).min(data.len() - at);
        i += 1;
        buf.extend_from_slice(&data[at..at + n]);
        at += n;
        loop {
            match p.next(&mut buf) {
                Ok(Some(cmd)) => out.push(cmd),
                Ok(None) => break,
                Err(e) => return (out, Some(e.0)),
            }
        }
    }
    (out, None)
}

/// The parser never panics, and how the bytes arrive does not change what it makes of
/// them: fed all at once or in pieces, the same commands and the same error.
fn request_target(data: &[u8]) {
    let whole = parse_all(data, &[usize::MAX]);
    let sizes: Vec<usize> = data
        .iter()
        .take(8)
        .map(|&b| 1 + (b as usize % 17))
        .collect();
    let pieces = parse_all(data, if sizes.is_empty() { &[1] } else { &sizes });
    assert_eq!(whole, pieces, "chunking changed the parse of {data:?}");
}

fn request_seeds() -> Vec<Vec<u8>> {
    vec![
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n*1\r\n$4\r\nPING\r\n".to_vec(),
        b"PING\r\nSET a b\r\nGET \"a b\" 'c'\r\n".to_vec(),
        b"*2\r\n$3\r\nGET\r\n$-1\r\n*0\r\n\r\n".to_vec(),
        b"*1\r\n$70000\r\n".to_vec(),
    ]
}

/// The config parser never panics on any text.
fn config_target(data: &[u8]) {
    let _ = Config::parse(&String::from_utf8_lossy(data));
}

fn config_seeds() -> Vec<Vec<u8>> {
    vec![
        b"port: 6380\nstorage:\n  dir: /data\n  fsync: always\n  max_disk_bytes: 1gb\nlimits:\n  max_clients: 10\n"
            .to_vec(),
        b"read_through:\n  routes:\n    - prefix: \"user:\"\n      plugin: /p.wasm\n      ttl: 5m\n".to_vec(),
        b"plugins:\n  eviction:\n    path: x.wasm\n    memory: 16mb\nlog:\n  level: debug\n".to_vec(),
    ]
}

/// Any stored string: refused as no HLL, or used (added to, counted, merged, made
/// dense) without a panic, corrupt registers reported as such.
fn hll_target(data: &[u8]) {
    use crate::types::hll::{self, Hll};
    let Ok(mut h) = Hll::from_bytes(data) else {
        return;
    };
    let mut max = hll::registers();
    let _ = h.merge_into(&mut max);
    let _ = h.count();
    for e in data.chunks(3).take(64) {
        if h.add(e).is_err() {
            return;
        }
    }
    let _ = h.raise_all(&max, false);
    let _ = h.make_dense();
    let _ = h.count();
}

fn hll_seeds() -> Vec<Vec<u8>> {
    let mut small = Hll::new();
    for i in 0..50u32 {
        let _ = small.add(&i.to_le_bytes());
    }
    let mut dense = small.clone();
    let _ = dense.make_dense();
    vec![
        Hll::new().into_bytes(),
        small.into_bytes(),
        dense.into_bytes(),
        b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\0\x7f".to_vec(),
    ]
}

#[test]
fn fuzz_hll_decoder() {
    fuzzing::run_from_env("hll", &hll_seeds(), hll_target, 3000);
}

#[test]
fn fuzz_request_parser() {
    fuzzing::run_from_env("request", &request_seeds(), request_target, 20_000);
}

#[test]
fn fuzz_config_parser() {
    fuzzing::run_from_env("config", &config_seeds(), config_target, 3000);
}
