//! A raw RESP2/RESP3 client for tests that compare replies exactly (types included),
//! and a reference `redis-server` started beside caskade.

use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One reply, as sent: every RESP2 and RESP3 type kept apart.
#[derive(Clone, PartialEq)]
pub enum Value {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    /// RESP2 `$-1` / `*-1`, RESP3 `_`.
    Nil,
    /// RESP2 null array `*-1` (kept apart from `$-1`, as clients tell them apart).
    NilArray,
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Set(Vec<Value>),
    Double(String),
    Bool(bool),
    BigNumber(String),
    Verbatim(String, Vec<u8>),
    Push(Vec<Value>),
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Status(s) => write!(f, "+{s}"),
            Value::Error(s) => write!(f, "-{s}"),
            Value::Int(i) => write!(f, ":{i}"),
            Value::Bulk(b) => write!(f, "{:?}", String::from_utf8_lossy(b)),
            Value::Nil => write!(f, "(nil)"),
            Value::NilArray => write!(f, "(nil array)"),
            Value::Array(v) => f.debug_list().entries(v).finish(),
            Value::Map(m) => f
                .debug_map()
                .entries(m.iter().map(|(k, v)| (k, v)))
                .finish(),
            Value::Set(v) => write!(f, "set{v:?}"),
            Value::Double(d) => write!(f, ",{d}"),
            Value::Bool(b) => write!(f, "#{b}"),
            Value::BigNumber(n) => write!(f, "({n}"),
            Value::Verbatim(k, b) => write!(f, "={k}:{:?}", String::from_utf8_lossy(b)),
            Value::Push(v) => write!(f, ">{v:?}"),
        }
    }
}

impl Value {
    /// The same shape: types and lengths, not contents (for nondeterministic replies).
    pub fn same_shape(&self, other: &Value) -> bool {
        use Value::*;
        match (self, other) {
            (Array(a), Array(b)) | (Set(a), Set(b)) | (Push(a), Push(b)) => a.len() == b.len(),
            (Map(a), Map(b)) => a.len() == b.len(),
            (Error(a), Error(b)) => a.split(' ').next() == b.split(' ').next(),
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

/// One connection.
pub struct Conn {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Conn {
    pub fn connect(port: u16) -> Conn {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        // Long enough for the heaviest scripted command of the differential scripts
        // (100,000 ZADDs from one EVAL: 18-25 s in a debug build on a busy 2-core VM),
        // short enough that a hang still fails the test.
        s.set_read_timeout(Some(Duration::from_secs(90)))
            .expect("timeout");
        s.set_nodelay(true).expect("nodelay");
        Conn {
            r: BufReader::new(s.try_clone().expect("clone")),
            w: s,
        }
    }

    pub fn send(&mut self, args: &[Vec<u8>]) {
        let mut b = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            b.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            b.extend_from_slice(a);
            b.extend_from_slice(b"\r\n");
        }
        self.w.write_all(&b).expect("write");
    }

    pub fn call(&mut self, args: &[Vec<u8>]) -> Value {
        self.send(args);
        self.read()
    }

    pub fn cmd(&mut self, line: &str) -> Value {
        self.call(&split(line).expect("a well-formed command line"))
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.r.read_line(&mut l).expect("read reply line");
        assert!(l.ends_with("\r\n"), "truncated reply line {l:?}");
        l.truncate(l.len() - 2);
        l
    }

    pub fn read(&mut self) -> Value {
        let l = self.line();
        let (t, rest) = l.split_at(1);
        let n = || rest.parse::<i64>().expect("length");
        match t {
            "+" => Value::Status(rest.into()),
            "-" => Value::Error(rest.into()),
            ":" => Value::Int(n()),
            "$" if n() < 0 => Value::Nil,
            "$" => Value::Bulk(self.bulk(n() as usize)),
            "*" if n() < 0 => Value::NilArray,
            "*" => Value::Array((0..n()).map(|_| self.read()).collect()),
            "~" => Value::Set((0..n()).map(|_| self.read()).collect()),
            ">" => Value::Push((0..n()).map(|_| self.read()).collect()),
            "%" => Value::Map((0..n()).map(|_| (self.read(), self.read())).collect()),
            "_" => Value::Nil,
            "," => Value::Double(rest.into()),
            "#" => Value::Bool(rest == "t"),
            "(" => Value::BigNumber(rest.into()),
            "=" => {
                let b = self.bulk(n() as usize);
                let kind = String::from_utf8_lossy(&b[..3]).into_owned();
                Value::Verbatim(kind, b[4..].to_vec())
            }
            other => panic!("unknown reply type {other:?} in {l:?}"),
        }
    }

    fn bulk(&mut self, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len + 2];
        self.r.read_exact(&mut b).expect("bulk");
        b.truncate(len);
        b
    }
}

/// Splits a command line as redis-cli does: spaces separate, double quotes group (with
/// `\n`, `\r`, `\t`, `\"`, `\\` and `\xHH` escapes), single quotes group literally.
pub fn split(line: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        if i == b.len() {
            break;
        }
        let mut arg = Vec::new();
        match b[i] {
            b'"' => {
                i += 1;
                loop {
                    match b.get(i) {
                        None => return Err(format!("unbalanced quotes in {line}")),
                        Some(b'"') => break,
                        Some(b'\\') => {
                            i += 1;
                            match b.get(i) {
                                Some(b'n') => arg.push(b'\n'),
                                Some(b'r') => arg.push(b'\r'),
                                Some(b't') => arg.push(b'\t'),
                                Some(b'x') => {
                                    let hex = line.get(i + 1..i + 3).ok_or("short \\x")?;
                                    arg.push(
                                        u8::from_str_radix(hex, 16).map_err(|e| e.to_string())?,
                                    );
                                    i += 2;
                                }
                                Some(&c) => arg.push(c),
                                None => return Err("trailing backslash".into()),
                            }
                        }
                        Some(&c) => arg.push(c),
                    }
                    i += 1;
                }
                i += 1;
            }
            b'\'' => {
                i += 1;
                while i < b.len() && b[i] != b'\'' {
                    arg.push(b[i]);
                    i += 1;
                }
                if i == b.len() {
                    return Err(format!("unbalanced quotes in {line}"));
                }
                i += 1;
            }
            _ => {
                while i < b.len() && b[i] != b' ' {
                    arg.push(b[i]);
                    i += 1;
                }
            }
        }
        out.push(arg);
    }
    Ok(out)
}

/// A throwaway `redis-server` (no persistence) on a free port: the reference.
pub struct RedisServer {
    child: Child,
    pub port: u16,
    /// Its working directory (SAVE writes `dump.rdb` there, not into the checkout).
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts one; panics with a clear message if `redis-server` is not installed
    /// (`tests/run.sh` installs Debian's).
    pub fn start() -> RedisServer {
        // Retried on a fresh port if redis-server exits (another test took the port
        // between the pick and its bind).
        for _ in 0..4 {
            if let Some(server) = Self::try_start() {
                return server;
            }
        }
        panic!("redis-server did not start on any of 4 free ports");
    }

    fn try_start() -> Option<RedisServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .args(["--bind", "127.0.0.1", "--enable-debug-command", "yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server must be installed to run the differential tests (tests/run.sh installs Debian's redis-server)");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // Exited: it could not bind; whatever answers on the port is not ours.
            if child.try_wait().expect("wait redis-server").is_some() {
                return None;
            }
            if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
                drop(s);
                break;
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(RedisServer {
            child,
            port,
            _dir: dir,
        })
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
