//! Opening a directory: lock it, read or create the meta file, load each segment's hint
//! file and scan what it does not cover (CRC-checking every record), cut a torn tail,
//! and rebuild the index in log order so the newest record of each key wins.

use crate::compaction::Compactor;
use crate::core::Inner;
use crate::error::{Error, Result};
use crate::format::file_header::{self, FileKind, HEADER_LEN as FILE_HEADER_LEN};
use crate::format::hint::{self, HintEntry};
use crate::format::meta;
use crate::format::record::{Kind, NAMESPACES};
use crate::index::Index;
use crate::io::{OpenMode, join, write_atomic};
use crate::keydir::{Slot, coarse_expiry};
use crate::log::Log;
use crate::options::Options;
use crate::policy_host::PolicyHost;
use crate::segment::{Found, HINT_EXT, SEGMENT_EXT, Segment, hint_name, parse_name, walk};
use crate::stats::Counters;
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

const LOCK_FILE: &str = "LOCK";

pub(crate) fn open(opts: Options) -> Result<Inner> {
    let started = Instant::now();
    let storage = opts.storage.clone();
    let dir = opts.dir.clone();
    storage
        .create_dir_all(&dir)
        .map_err(|e| Error::io("create directory", &dir, e))?;
    let lock = match storage.lock(&join(&dir, LOCK_FILE)) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            return Err(Error::Locked(dir));
        }
        Err(e) => return Err(Error::io("lock", join(&dir, LOCK_FILE), e)),
    };
    let names = storage.list(&dir).map_err(|e| Error::io("list", &dir, e))?;
    let mut seg_ids: Vec<u32> = names
        .iter()
        .filter_map(|n| parse_name(n, SEGMENT_EXT))
        .collect();
    seg_ids.sort_unstable();
    for n in names.iter().filter(|n| n.ends_with(".tmp")) {
        // Leftovers of an atomic write that never reached its rename.
        let _ = storage.remove(&join(&dir, n));
    }
    for n in &names {
        if let Some(id) = parse_name(n, HINT_EXT)
            && seg_ids.binary_search(&id).is_err()
        {
            let _ = storage.remove(&join(&dir, n));
        }
    }

    let seed = read_or_create_meta(&opts, !seg_ids.is_empty())?;
    let inner = Inner {
        index: Arc::new(Index::new(seed)),
        log: Arc::new(Log::new(&opts)),
        counters: Arc::new(Counters::default()),
        dir_lock: Mutex::new(Some(lock)),
        policy: Arc::new(PolicyHost::new(
            match &opts.policy_factory {
                Some(f) => f(),
                None => opts.eviction.build(),
            },
            opts.eviction,
        )),
        compactor: Arc::new(Compactor::new(&opts)),
        opts,
    };

    let total = seg_ids.len();
    let mut last: Option<Arc<Segment>> = None;
    for (i, &id) in seg_ids.iter().enumerate() {
        let is_last = i + 1 == total;
        if let Some(seg) = load_segment(&inner, id, is_last)? {
            last = Some(seg);
        }
        if total >= 16 && (i + 1) % (total / 8).max(1) == 0 {
            tracing::info!(
                done = i + 1,
                total,
                keys = inner.index.total_len(),
                "recovering segments"
            );
        }
    }

    let segment_bytes = inner.opts.segment_bytes;
    let next_id = seg_ids.last().map_or(1, |id| id + 1);
    let active = match last {
        Some(seg) if seg.len() < segment_bytes => seg,
        Some(seg) => {
            inner.log.forget_hint(seg.id);
            if !has_hint_for(&inner, seg.id) {
                inner.log.queue_hint(seg.id);
            }
            inner.log.create_segment(next_id)?
        }
        None => inner.log.create_segment(next_id)?,
    };
    inner.log.activate(active, next_id);
    inner.policy.seed_policy(&inner.keys());
    {
        let mut w = inner.log.lock_writer()?;
        inner.enforce_max_keys(&mut w)?;
    }
    tracing::info!(
        dir = %inner.opts.dir.display(),
        segments = total,
        keys = inner.index.total_len(),
        ms = started.elapsed().as_millis() as u64,
        "engine opened"
    );
    Ok(inner)
}

fn has_hint_for(inner: &Inner, id: u32) -> bool {
    inner
        .opts
        .storage
        .open(&join(&inner.opts.dir, &hint_name(id)), OpenMode::Read)
        .is_ok()
}

fn read_or_create_meta(opts: &Options, has_segments: bool) -> Result<u64> {
    let path = join(&opts.dir, meta::FILE_NAME);
    match opts.storage.open(&path, OpenMode::Read) {
        Ok(f) => {
            let len = f.size().map_err(|e| Error::io("stat", &path, e))?;
            let mut b = vec![0u8; len.min(4096) as usize];
            f.read_exact_at(&mut b, 0)
                .map_err(|e| Error::io("read", &path, e))?;
            meta::decode(&b).map_err(|reason| Error::BadFile { path, reason })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if has_segments {
                return Err(Error::BadFile {
                    path,
                    reason: "missing, but the directory holds segment files; refusing to guess the hash seed".into(),
                });
            }
            let mut seed = [0u8; 8];
            getrandom::fill(&mut seed).map_err(|e| Error::BadOption {
                field: "dir",
                reason: format!("no randomness for the hash seed: {e}"),
            })?;
            let seed = u64::from_le_bytes(seed);
            write_atomic(
                opts.storage.as_ref(),
                &opts.dir,
                meta::FILE_NAME,
                &meta::encode(seed),
            )
            .map_err(|e| Error::io("create", &path, e))?;
            Ok(seed)
        }
        Err(e) => Err(Error::io("open", &path, e)),
    }
}

/// Applies one record, in log order, to the index being rebuilt.
fn apply(inner: &Inner, seg: &Segment, e: &HintEntry, now: u64) {
    let HintEntry {
        kind,
        ns,
        hash,
        offset: off,
        len,
        expire_at_ms,
    } = *e;
    match kind {
        Kind::Put | Kind::Tombstone | Kind::Evict => {
            if ns >= NAMESPACES || hash == 0 {
                seg.add_dead(len as u64);
                return;
            }
            let kd = inner.index.keydir(ns);
            let slot = Slot {
                hash,
                seg: seg.id,
                off,
                len,
                exp_s: coarse_expiry(expire_at_ms),
            };
            let expired = expire_at_ms != 0 && expire_at_ms <= now;
            // One index operation per record: most records are live puts, which replace.
            let old = if kind == Kind::Put && !expired {
                kd.insert(slot)
            } else {
                seg.add_dead(len as u64);
                kd.remove_if(hash, |_| true)
            };
            if let Some(old) = old {
                inner.log.mark_dead(&old);
            }
        }
        Kind::Flush => {
            seg.pinned.store(true, Ordering::Relaxed);
            seg.add_dead(len as u64);
            let mut removed = Vec::new();
            inner.index.clear(ns, |s| removed.push(*s));
            inner.log.mark_dead_all(removed);
        }
    }
}

/// Opens segment `id` and applies its records. Returns `None` for the remains of a
/// segment whose creation was cut short (no complete header), which it deletes.
fn load_segment(inner: &Inner, id: u32, is_last: bool) -> Result<Option<Arc<Segment>>> {
    let storage = inner.opts.storage.as_ref();
    let dir = &inner.opts.dir;
    let path = join(dir, &crate::segment::segment_name(id));
    let file = storage
        .open(&path, OpenMode::ReadWrite)
        .map_err(|e| Error::io("open", &path, e))?;
    let file_len = file.size().map_err(|e| Error::io("stat", &path, e))?;
    let mut header = [0u8; FILE_HEADER_LEN];
    if file_len < FILE_HEADER_LEN as u64 {
        if is_last {
            tracing::warn!(path = %path.display(), "removing a segment whose creation was interrupted");
            drop(file);
            storage
                .remove(&path)
                .map_err(|e| Error::io("remove", &path, e))?;
            return Ok(None);
        }
        return Err(Error::BadFile {
            path,
            reason: format!("only {file_len} bytes, shorter than a file header"),
        });
    }
    file.read_exact_at(&mut header, 0)
        .map_err(|e| Error::io("read", &path, e))?;
    match file_header::decode(&header, FileKind::Segment) {
        Ok(found) if found == id => {}
        Ok(found) => {
            return Err(Error::BadFile {
                path,
                reason: format!("header names segment {found}"),
            });
        }
        Err(reason) => return Err(Error::BadFile { path, reason }),
    }
    let seg = Arc::new(Segment::new(id, path.clone(), file.clone(), file_len));
    inner.log.insert_segment(seg.clone());
    let now = inner.now_ms();

    let mut scan_from = FILE_HEADER_LEN as u64;
    let mut hinted = false;
    let hint_path = join(dir, &hint_name(id));
    if let Ok(hf) = storage.open(&hint_path, OpenMode::Read) {
        match load_hint(inner, &seg, hf.as_ref(), file_len, now) {
            Ok(covered) => {
                seg.hint_bytes
                    .store(hf.size().unwrap_or(0), Ordering::Relaxed);
                scan_from = covered;
                hinted = covered == file_len;
            }
            Err(reason) => {
                tracing::warn!(path = %hint_path.display(), %reason, "ignoring hint file; scanning the segment");
            }
        }
    }
    if scan_from < file_len {
        let end = walk(file.as_ref(), scan_from, file_len, |off, found| {
            if let Found::Corrupt { .. } = found {
                Counters::bump(&inner.counters.corrupt);
                tracing::warn!(
                    segment = id,
                    offset = off,
                    "corrupt record skipped; its key is dropped"
                );
            }
            apply(inner, &seg, &inner.index.describe(off, &found), now);
        })
        .map_err(|e| Error::io("read", &path, e))?;
        if end.corrupt_bytes > 0 {
            seg.add_dead(end.corrupt_bytes);
        }
        if end.valid_end < file_len {
            tracing::warn!(
                path = %path.display(),
                cut = file_len - end.valid_end,
                "truncating a torn tail"
            );
            file.truncate(end.valid_end)
                .and_then(|()| file.sync())
                .map_err(|e| Error::io("truncate", &path, e))?;
            seg.len.store(end.valid_end, Ordering::Release);
            // What the file holds is what was kept: a record appended over the cut
            // must be read from the write buffer, not from the bytes cut away.
            seg.written.store(end.valid_end, Ordering::Release);
        }
    }
    if !hinted && !is_last {
        inner.log.queue_hint(id);
    }
    Ok(Some(seg))
}

/// Applies a hint file; returns the segment length it covers.
fn load_hint(
    inner: &Inner,
    seg: &Segment,
    hf: &dyn crate::io::FileHandle,
    file_len: u64,
    now: u64,
) -> Result<u64, String> {
    let len = hf.size().map_err(|e| e.to_string())?;
    let mut bytes = vec![0u8; len as usize];
    hf.read_exact_at(&mut bytes, 0).map_err(|e| e.to_string())?;
    let h = hint::decode(&bytes, seg.id)?;
    if h.covered_len > file_len || h.covered_len < FILE_HEADER_LEN as u64 {
        return Err(format!(
            "covers {} bytes but the segment holds {file_len}",
            h.covered_len
        ));
    }
    // Validate every entry before applying any, so a bad hint changes nothing.
    let entries = h.entries().collect::<Result<Vec<_>, _>>()?;
    for e in &entries {
        let end = e.offset as u64 + e.len as u64;
        if (e.offset as u64) < FILE_HEADER_LEN as u64 || end > h.covered_len {
            return Err(format!("entry at {} runs outside the segment", e.offset));
        }
    }
    for e in &entries {
        apply(inner, seg, e, now);
    }
    Ok(h.covered_len)
}
