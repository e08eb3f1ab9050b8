//! A small HTTP origin for read-through tests: it serves items a test puts in it, counts
//! every request, and can answer 200/304/404/500 or slowly.
//!
//! Paths: `/items/<name>` answers the item (200 with its ETag and Cache-Control, 304 if
//! `If-None-Match` matches, 404 if there is no such item); `/fail/<name>` answers 500;
//! `/slow/<name>` waits `slow_ms` and then answers like `/items/<name>`. While
//! `set_failing(true)`, everything answers 500.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One item the origin serves.
#[derive(Clone, Debug)]
pub struct Item {
    /// The body.
    pub body: Vec<u8>,
    /// The ETag header, if any.
    pub etag: Option<String>,
    /// The Cache-Control header, if any.
    pub cache_control: Option<String>,
}

#[derive(Default)]
struct State {
    items: Mutex<HashMap<String, Item>>,
    /// Requests per path.
    counts: Mutex<HashMap<String, u64>>,
    /// `If-None-Match` of every request, in order, by path.
    if_none_match: Mutex<Vec<(String, Option<String>)>>,
    /// Answers by status code.
    statuses: Mutex<HashMap<u16, u64>>,
    total: AtomicU64,
    slow_ms: AtomicU64,
    failing: std::sync::atomic::AtomicBool,
}

/// A running origin; it lives until the process ends.
#[derive(Clone)]
pub struct Origin {
    /// Its port on 127.0.0.1.
    pub port: u16,
    state: Arc<State>,
}

impl Origin {
    /// Starts an origin on a free port.
    pub fn start() -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind origin");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(State::default());
        state.slow_ms.store(5_000, Ordering::Relaxed);
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || serve(conn, &st));
            }
        });
        Origin { port, state }
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Serves `name` with `body` and `etag`.
    pub fn put(&self, name: &str, body: &[u8], etag: Option<&str>) {
        self.put_item(
            name,
            Item {
                body: body.to_vec(),
                etag: etag.map(str::to_string),
                cache_control: None,
            },
        );
    }

    /// Serves `name` as `item`.
    pub fn put_item(&self, name: &str, item: Item) {
        self.state
            .items
            .lock()
            .expect("lock")
            .insert(name.to_string(), item);
    }

    /// Stops serving `name` (it answers 404).
    pub fn remove(&self, name: &str) {
        self.state.items.lock().expect("lock").remove(name);
    }

    /// How long `/slow/` paths wait.
    pub fn set_slow_ms(&self, ms: u64) {
        self.state.slow_ms.store(ms, Ordering::Relaxed);
    }

    /// While set, every request is answered 500.
    pub fn set_failing(&self, on: bool) {
        self.state.failing.store(on, Ordering::Relaxed);
    }

    /// Requests received for `path` (e.g. `/items/a`).
    pub fn count(&self, path: &str) -> u64 {
        *self
            .state
            .counts
            .lock()
            .expect("lock")
            .get(path)
            .unwrap_or(&0)
    }

    /// Requests received in all.
    pub fn total(&self) -> u64 {
        self.state.total.load(Ordering::SeqCst)
    }

    /// Answers given with `status`.
    pub fn answered(&self, status: u16) -> u64 {
        *self
            .state
            .statuses
            .lock()
            .expect("lock")
            .get(&status)
            .unwrap_or(&0)
    }

    /// The `If-None-Match` header of each request for `path`, in order.
    pub fn if_none_match(&self, path: &str) -> Vec<Option<String>> {
        self.state
            .if_none_match
            .lock()
            .expect("lock")
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

fn serve(conn: TcpStream, st: &State) {
    let Ok(read_half) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut inm = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.trim().eq_ignore_ascii_case("if-none-match")
        {
            inm = Some(v.trim().to_string());
        }
    }
    st.total.fetch_add(1, Ordering::SeqCst);
    *st.counts
        .lock()
        .expect("lock")
        .entry(path.clone())
        .or_default() += 1;
    st.if_none_match
        .lock()
        .expect("lock")
        .push((path.clone(), inm.clone()));
    let (status, headers, body) = answer(&path, inm.as_deref(), st);
    *st.statuses.lock().expect("lock").entry(status).or_default() += 1;
    let reason = match status {
        200 => "OK",
        304 => "Not Modified",
        404 => "Not Found",
        _ => "Internal Server Error",
    };
    let mut out = format!("HTTP/1.1 {status} {reason}\r\nconnection: close\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if status != 304 {
        out.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut conn = conn;
    let _ = conn.write_all(out.as_bytes());
    if status != 304 {
        let _ = conn.write_all(&body);
    }
    let _ = conn.flush();
}

fn answer(path: &str, inm: Option<&str>, st: &State) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let item_answer = |name: &str| {
        let items = st.items.lock().expect("lock");
        let Some(item) = items.get(name) else {
            return (404, vec![], b"no such item".to_vec());
        };
        let mut headers = vec![];
        if let Some(e) = &item.etag {
            headers.push(("etag".to_string(), e.clone()));
        }
        if let Some(cc) = &item.cache_control {
            headers.push(("cache-control".to_string(), cc.clone()));
        }
        if inm.is_some() && inm == item.etag.as_deref() {
            return (304, headers, vec![]);
        }
        (200, headers, item.body.clone())
    };
    if st.failing.load(Ordering::Relaxed) {
        (500, vec![], b"origin failure".to_vec())
    } else if let Some(name) = path.strip_prefix("/items/") {
        item_answer(name)
    } else if let Some(name) = path.strip_prefix("/slow/") {
        std::thread::sleep(Duration::from_millis(st.slow_ms.load(Ordering::Relaxed)));
        item_answer(name)
    } else {
        (500, vec![], b"origin failure".to_vec())
    }
}
