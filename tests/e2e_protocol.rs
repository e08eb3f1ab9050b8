//! End-to-end protocol tests with raw bytes: inline commands, pipelining, malformed
//! input (bad lengths, huge bulk lengths, unbalanced arrays, binary keys). Each bad
//! request gets Redis' error and the connection is closed as Redis closes it; the
//! server keeps serving everyone else.

mod common;

use common::Server;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn connect(s: &Server) -> TcpStream {
    let t = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    t.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    t
}

/// Sends `req` and reads until `want` bytes arrived or the peer closed.
fn exchange(t: &mut TcpStream, req: &[u8], want: usize) -> Vec<u8> {
    t.write_all(req).expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < want {
        match t.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read: {e} after {:?}", String::from_utf8_lossy(&got)),
        }
    }
    got
}

fn closed(t: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(t.read(&mut b), Ok(0) | Err(_))
}

fn still_serving(s: &Server) {
    let mut t = connect(s);
    assert_eq!(exchange(&mut t, b"PING\r\n", 7), b"+PONG\r\n");
}

#[test]
fn inline_commands_and_pipelining() {
    let s = Server::start(&[]);
    let mut t = connect(&s);
    assert_eq!(exchange(&mut t, b"PING\r\n", 7), b"+PONG\r\n");
    assert_eq!(
        exchange(&mut t, b"set greeting \"hello world\"\r\n", 5),
        b"+OK\r\n"
    );
    assert_eq!(
        exchange(&mut t, b"GET greeting\n", 17),
        b"$11\r\nhello world\r\n"
    );
    // 100 commands in one write, answered in order.
    let mut req = Vec::new();
    let mut want = Vec::new();
    for i in 0..100 {
        req.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n$2\r\nk{}\r\n$1\r\n{}\r\n",
                i % 10,
                i % 10
            )
            .as_bytes(),
        );
        want.extend_from_slice(b"+OK\r\n");
        req.extend_from_slice(format!("*2\r\n$3\r\nGET\r\n$2\r\nk{}\r\n", i % 10).as_bytes());
        want.extend_from_slice(format!("$1\r\n{}\r\n", i % 10).as_bytes());
    }
    assert_eq!(exchange(&mut t, &req, want.len()), want);
}

#[test]
fn binary_keys_and_values() {
    let s = Server::start(&[]);
    let mut t = connect(&s);
    let key = b"k\x00\r\n\xff";
    let val = b"\x00\x01\r\n\x02";
    let mut req = format!("*3\r\n$3\r\nSET\r\n${}\r\n", key.len()).into_bytes();
    req.extend_from_slice(key);
    req.extend_from_slice(format!("\r\n${}\r\n", val.len()).as_bytes());
    req.extend_from_slice(val);
    req.extend_from_slice(b"\r\n");
    assert_eq!(exchange(&mut t, &req, 5), b"+OK\r\n");
    let mut get = format!("*2\r\n$3\r\nGET\r\n${}\r\n", key.len()).into_bytes();
    get.extend_from_slice(key);
    get.extend_from_slice(b"\r\n");
    let mut want = b"$5\r\n".to_vec();
    want.extend_from_slice(val);
    want.extend_from_slice(b"\r\n");
    assert_eq!(exchange(&mut t, &get, want.len()), want);
}

#[test]
fn malformed_requests_get_errors_and_the_server_stays_up() {
    let s = Server::start(&["--max-clients", "100"]);
    let cases: &[(&[u8], &str)] = &[
        (
            b"*abc\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n$-5\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$99999999999\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*2\r\n$3\r\nGET\r\n:12\r\n",
            "-ERR Protocol error: expected '$', got ':'\r\n",
        ),
        (
            b"*2\r\n*1\r\n$1\r\na\r\n",
            "-ERR Protocol error: expected '$', got '*'\r\n",
        ),
        (
            b"SET k \"open quote\r\n",
            "-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
    ];
    for (req, want) in cases {
        let mut t = connect(&s);
        let got = exchange(&mut t, req, want.len());
        assert_eq!(
            String::from_utf8_lossy(&got),
            *want,
            "request {:?}",
            String::from_utf8_lossy(req)
        );
        assert!(closed(&mut t), "connection closed after a protocol error");
        still_serving(&s);
    }
}

#[test]
fn huge_declared_lengths_allocate_nothing_up_front() {
    let s = Server::start(&[]);
    // Declares 500 MB and 2^31-1 arguments but sends a few bytes: the server must wait
    // (or refuse) without allocating what was announced, and keep serving others.
    let mut a = connect(&s);
    a.write_all(b"*1\r\n$536870000\r\nabc").expect("write");
    let mut b = connect(&s);
    b.write_all(b"*2147483647\r\n$3\r\nGET\r\n").expect("write");
    still_serving(&s);
    let mut c = connect(&s);
    let want = "-ERR Protocol error: invalid multibulk length\r\n";
    let got = exchange(&mut c, b"*2147483648\r\n", want.len());
    assert_eq!(String::from_utf8_lossy(&got), want);
    drop((a, b));
    still_serving(&s);
}

#[test]
fn unbalanced_array_waits_for_the_rest() {
    let s = Server::start(&[]);
    let mut t = connect(&s);
    t.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n")
        .expect("write");
    t.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let mut b = [0u8; 16];
    assert!(
        t.read(&mut b).is_err(),
        "no reply before the command is complete"
    );
    t.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    assert_eq!(exchange(&mut t, b"$1\r\nv\r\n", 5), b"+OK\r\n");
}

#[test]
fn wrong_arity_and_unknown_commands_keep_the_connection() {
    let s = Server::start(&[]);
    let mut t = connect(&s);
    let want = "-ERR wrong number of arguments for 'get' command\r\n";
    assert_eq!(
        String::from_utf8_lossy(&exchange(&mut t, b"GET\r\n", want.len())),
        want
    );
    let want = "-ERR unknown command 'FOO', with args beginning with: 'bar' \r\n";
    assert_eq!(
        String::from_utf8_lossy(&exchange(&mut t, b"FOO bar\r\n", want.len())),
        want
    );
    assert_eq!(exchange(&mut t, b"PING\r\n", 7), b"+PONG\r\n");
}

#[test]
fn quit_replies_then_closes() {
    let s = Server::start(&[]);
    let mut t = connect(&s);
    assert_eq!(exchange(&mut t, b"QUIT\r\n", 5), b"+OK\r\n");
    assert!(closed(&mut t));
}

#[test]
fn max_clients_is_enforced_with_an_error() {
    let s = Server::start(&["--max-clients", "2"]);
    let mut a = connect(&s);
    let mut b = connect(&s);
    assert_eq!(exchange(&mut a, b"PING\r\n", 7), b"+PONG\r\n");
    assert_eq!(exchange(&mut b, b"PING\r\n", 7), b"+PONG\r\n");
    let mut c = connect(&s);
    let want = b"-ERR max number of clients reached\r\n";
    assert_eq!(exchange(&mut c, b"", want.len()), want);
    drop(a);
    std::thread::sleep(Duration::from_millis(200));
    let mut d = connect(&s);
    assert_eq!(exchange(&mut d, b"PING\r\n", 7), b"+PONG\r\n");
}

#[test]
fn max_clients_is_exact_under_a_burst() {
    let s = Server::start(&["--max-clients", "10"]);
    // Opened back to back, before any of them sends a byte.
    let mut conns: Vec<_> = (0..30).map(|_| connect(&s)).collect();
    let refused = b"-ERR max number of clients reached\r\n";
    let mut served = 0;
    for c in &mut conns {
        // A refused connection has its error waiting; a served one has nothing to say.
        c.set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        let mut buf = [0u8; 64];
        match c.read(&mut buf) {
            Ok(n) => assert_eq!(&buf[..n], &refused[..], "a refusal"),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                c.set_read_timeout(Some(Duration::from_secs(10)))
                    .expect("timeout");
                assert_eq!(exchange(c, b"PING\r\n", 7), b"+PONG\r\n");
                served += 1;
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    assert_eq!(served, 10, "exactly the limit is served");
}
