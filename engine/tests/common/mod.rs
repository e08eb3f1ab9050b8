//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use caskade_engine::io::{FaultStorage, Storage};
use caskade_engine::{Engine, Fsync, ManualClock, Options};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const T0: u64 = 1_700_000_000_000;

pub fn mem_options(fs: &FaultStorage, clock: &Arc<ManualClock>, fsync: Fsync) -> Options {
    let mut o = Options::new("/db");
    o.storage = Arc::new(fs.clone());
    o.clock = clock.clone();
    o.fsync = fsync;
    o.segment_bytes = 4096;
    // A hot tier small enough that records are admitted, evicted and replaced all the
    // time, so every test that uses these options (the model, crashes, corruption)
    // checks that it never serves a record the log no longer holds.
    o.hot_bytes = 8 << 10;
    o
}

pub fn open(o: &Options) -> Engine {
    Engine::open(o.clone()).expect("open")
}

pub fn files(storage: &dyn Storage, dir: &Path) -> Vec<String> {
    let mut v = storage.list(dir).expect("list");
    v.sort();
    v
}

pub fn seg_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{id:010}.seg"))
}

pub fn get(e: &Engine, ns: u8, key: &[u8]) -> Option<Vec<u8>> {
    e.get(ns, key).expect("get").map(|b| b.to_vec())
}

/// Every live key of a namespace, walked with SCAN.
pub fn scan_all(e: &Engine, ns: u8, count: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut cursor = 0;
    loop {
        let page = e.scan(ns, cursor, count).expect("scan");
        out.extend(page.keys.iter().map(|k| k.to_vec()));
        if page.cursor == 0 {
            break;
        }
        cursor = page.cursor;
    }
    out.sort();
    out
}
