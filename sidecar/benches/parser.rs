//! The request parser, decided by measurement: caskade's own `RequestParser` against
//! `redis-protocol`'s `resp2::decode::decode_bytes_mut` (both split requests out of a
//! `BytesMut` without copying arguments), in one criterion run, on
//! - 1,000 pipelined commands (SET with a 100-byte value and GET, alternating) in one
//!   buffer, as a pipelining client sends them;
//! - the same bytes arriving 16 at a time, as a slow network or a large value delivers
//!   them: a parser that restarts an incomplete frame from its first byte pays for
//!   every piece again.
//!
//! Both produce what the server needs, each command's arguments as `Vec<Bytes>`.
//! `cargo bench -p caskade --bench parser`.

// criterion_group! generates functions without docs.
#![allow(missing_docs)]

#[allow(dead_code)]
#[path = "../src/protocol/request.rs"]
mod request;

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use redis_protocol::resp2::decode::decode_bytes_mut;
use redis_protocol::resp2::types::BytesFrame;
use std::hint::black_box;

const COMMANDS: usize = 1000;

fn pipeline() -> Vec<u8> {
    let value = [b'x'; 100];
    let mut out = Vec::new();
    for i in 0..COMMANDS {
        let key = format!("key:{i:012}");
        if i % 2 == 0 {
            out.extend_from_slice(
                format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$100\r\n", key.len()).as_bytes(),
            );
            out.extend_from_slice(&value);
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(
                format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len()).as_bytes(),
            );
        }
    }
    out
}

/// Every command the buffer holds, with caskade's parser.
fn ours(parser: &mut request::RequestParser, buf: &mut BytesMut, out: &mut Vec<Vec<Bytes>>) {
    while let Some(args) = parser.next(buf).expect("valid input") {
        out.push(args);
    }
}

/// Every command the buffer holds, with redis-protocol's decoder.
fn theirs(buf: &mut BytesMut, out: &mut Vec<Vec<Bytes>>) {
    while let Some((frame, _, _)) = decode_bytes_mut(buf).expect("valid input") {
        let BytesFrame::Array(items) = frame else {
            panic!("a request is an array")
        };
        out.push(
            items
                .into_iter()
                .map(|f| match f {
                    BytesFrame::BulkString(b) => b,
                    other => panic!("a bulk string: {other:?}"),
                })
                .collect(),
        );
    }
}

fn parsers(c: &mut Criterion) {
    let input = pipeline();
    let mut g = c.benchmark_group("request parser");
    g.throughput(Throughput::Elements(COMMANDS as u64));
    for piece in [usize::MAX, 16] {
        let shape = if piece == usize::MAX {
            "pipelined, one buffer".to_string()
        } else {
            format!("{piece}-byte pieces")
        };
        g.bench_with_input(
            BenchmarkId::new("caskade RequestParser", &shape),
            &piece,
            |b, &piece| {
                b.iter(|| {
                    let mut parser = request::RequestParser::new(512 << 20, 1 << 20);
                    let mut buf = BytesMut::with_capacity(input.len());
                    let mut out = Vec::with_capacity(COMMANDS);
                    for chunk in input.chunks(piece.min(input.len())) {
                        buf.extend_from_slice(chunk);
                        ours(&mut parser, &mut buf, &mut out);
                    }
                    assert_eq!(out.len(), COMMANDS);
                    black_box(out)
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("redis-protocol decode_bytes_mut", &shape),
            &piece,
            |b, &piece| {
                b.iter(|| {
                    let mut buf = BytesMut::with_capacity(input.len());
                    let mut out = Vec::with_capacity(COMMANDS);
                    for chunk in input.chunks(piece.min(input.len())) {
                        buf.extend_from_slice(chunk);
                        theirs(&mut buf, &mut out);
                    }
                    assert_eq!(out.len(), COMMANDS);
                    black_box(out)
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, parsers);
criterion_main!(benches);
