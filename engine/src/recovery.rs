//! Opening a directory: lock it, read or create the meta file, load each segment's hint
//! file and scan what it does not cover (CRC-checking every record), cut a torn tail,
//! and rebuild the index in log order so the newest record of each key wins.

use crate::compaction::Compactor;
use crate::core::Inner;
use crate::error::{Error, Result};
use crate::families::{Families, Family};
use crate::format::file_header::{self, FileKind, HEADER_LEN as FILE_HEADER_LEN};
use crate::format::hint::{self, HintEntry};
use crate::format::meta;
use crate::format::record::{self, ALL_NS, Kind, NAMESPACES, ValueType};
use crate::format::sync_mark::{self, Mark};
use crate::index::Index;
use crate::io::{OpenMode, join, write_atomic};
use crate::keydir::{Keydir, Slot, coarse_expiry, shard_of};
use crate::log::Log;
use crate::options::Options;
use crate::policy_host::PolicyHost;
use crate::segment::{Found, HINT_EXT, SEGMENT_EXT, Segment, hint_name, parse_name, walk};
use crate::stats::Counters;
use parking_lot::Mutex;
use std::collections::HashMap;
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
    let index = Arc::new(Index::new(seed));
    let log = Arc::new(Log::new(&opts));
    let inner = Inner {
        families: Arc::new(Families::new(index.clone(), log.clone())),
        index,
        log,
        counters: Arc::new(Counters::default()),
        dir_lock: Mutex::new(Some(lock)),
        policy: Arc::new(PolicyHost::new(
            opts.eviction,
            opts.policy_factory.as_ref().and_then(|f| f()),
        )),
        compactor: Arc::new(Compactor::new(&opts)),
        hot: crate::hot::HotTier::new(opts.hot_bytes),
        opts,
    };

    let total = seg_ids.len();
    let mut damage = Damage::default();
    let mut last: Option<(Arc<Segment>, bool)> = None;
    // After a clean shutdown the index comes from its snapshot; otherwise from hints.
    let from_snapshot = if total > 0 {
        crate::snapshot::load(&inner, &seg_ids)
    } else {
        None
    };
    let snapshot_used = from_snapshot.is_some();
    if let Some(seg) = from_snapshot {
        last = Some((seg, false));
    }
    let (mark, seals) = if snapshot_used {
        (None, HashMap::new())
    } else {
        (read_sync_mark(&inner), read_seals(&inner, &seg_ids))
    };
    let replay: &[u32] = if snapshot_used { &[] } else { &seg_ids };
    let mut scratch = HintScratch::default();
    let sizes = segment_sizes(&inner, replay);
    for (i, &id) in replay.iter().enumerate() {
        let is_last = i + 1 == total;
        // Sealed segments were synced whole when they were sealed; the last one is
        // known synced only up to the mark.
        // the last one is known synced only up to the mark. A seal record says how
        // long a sealed segment was.
        let by_mark = match mark {
            _ if !is_last => u64::MAX,
            Some(m) if m.seg == id => m.len,
            Some(m) if m.seg > id => u64::MAX,
            _ => FILE_HEADER_LEN as u64,
        };
        let synced_below = match seals.get(&id) {
            Some(&len) if by_mark == u64::MAX || len > by_mark => len,
            _ => by_mark,
        };
        let bytes_after = sizes[i + 1..].iter().sum();
        let loaded = load_segment(
            &inner,
            id,
            is_last,
            synced_below,
            bytes_after,
            &mut damage,
            &mut scratch,
        )?;
        if let Some(loaded) = loaded {
            last = Some(loaded);
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
    if let Some(h) = damage.horizon {
        distrust_before(&inner, h)?;
    }
    if !snapshot_used {
        inner.index.every().for_each(|(_, kd)| kd.fit());
    }

    let segment_bytes = inner.opts.segment_bytes;
    let next_id = seg_ids.last().map_or(1, |id| id + 1);
    let mut sealed_now = None;
    let active = match last {
        // A damaged segment is never appended to: it stays as found (and is scanned
        // again at every open) until compaction drops it.
        Some((seg, false)) if seg.len() < segment_bytes => seg,
        Some((seg, damaged)) => {
            inner.log.forget_hint(seg.id);
            if !damaged && !has_hint_for(&inner, seg.id) {
                inner.log.queue_hint(seg.id);
            }
            sealed_now = Some(seg);
            inner.log.create_segment(next_id)?
        }
        None => inner.log.create_segment(next_id)?,
    };
    let active_id = active.id;
    let active_len = active.len();
    // What recovery keeps of the last segment is synced now, so the mark can say so.
    active
        .file
        .sync()
        .map_err(|e| Error::io("sync", &active.path, e))?;
    inner.log.activate(active, next_id);
    inner.log.set_synced_mark(Mark {
        seg: active_id,
        len: active_len,
    });
    if let Some(sealed) = sealed_now {
        let mut w = inner.log.lock_writer()?;
        inner.log.append_seal(&mut w, &sealed)?;
    }
    inner.log.persist_sync_mark(true)?;
    mark_lost(&inner, &damage.lost)?;
    check_chunks(&inner)?;
    inner.policy.seed_policy(&inner.keys());
    {
        let mut w = inner.log.lock_writer()?;
        inner.enforce_max_keys(&mut w)?;
    }
    tracing::info!(
        dir = %inner.opts.dir.display(),
        segments = total,
        keys = inner.index.total_len(),
        snapshot = snapshot_used,
        ms = started.elapsed().as_millis() as u64,
        "engine opened"
    );
    Ok(inner)
}

/// Each segment's length (0 for one that cannot be opened: loading it reports why).
fn segment_sizes(inner: &Inner, ids: &[u32]) -> Vec<u64> {
    let storage = inner.opts.storage.as_ref();
    ids.iter()
        .map(|&id| {
            let path = join(&inner.opts.dir, &crate::segment::segment_name(id));
            storage
                .open(&path, OpenMode::Read)
                .and_then(|f| f.size())
                .unwrap_or(0)
        })
        .collect()
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
            if ns >= ALL_NS || hash == 0 {
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
                meta: 0,
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
        Kind::Seal => seg.add_dead(len as u64),
        Kind::Flush => {
            seg.pinned.store(true, Ordering::Relaxed);
            seg.add_dead(len as u64);
            let mut removed = Vec::new();
            inner.index.clear(ns, |_, s| removed.push(*s));
            inner.log.mark_dead_all(removed);
            inner.families.flushed(ns);
        }
    }
}

/// Applies a hint file's entries as [`apply`] would one by one, in log order, but shard
/// by shard: each shard is locked once per run and grown at most once, its entries
/// read in sequence with the homes of the next ones touched ahead (their cache misses
/// overlap), and runs of many keys are split over threads by shard.
/// Order within a shard, the only order that decides which record wins, is the log's.
/// A flush applies to every shard, so it separates runs.
fn apply_hinted(
    inner: &Inner,
    seg: &Segment,
    entries: &[HintEntry],
    now: u64,
    ahead: f64,
    scratch: &mut HintScratch,
) {
    let mut start = 0;
    for (i, e) in entries.iter().enumerate() {
        if e.kind == Kind::Flush {
            apply_run(inner, seg, &entries[start..i], now, 0.0, scratch);
            apply(inner, seg, e, now);
            start = i + 1;
        }
    }
    apply_run(inner, seg, &entries[start..], now, ahead, scratch);
}

/// How many entries ahead a shard touches the homes of the keys it inserts.
const TOUCH_AHEAD: usize = 32;

/// A run below this many entries is applied on the calling thread alone.
const PARALLEL_RUN: usize = 1 << 16;

/// Buffers reused from one hint file to the next, so that loading many does not
/// allocate (and fault in) fresh ones for each.
#[derive(Default)]
struct HintScratch {
    /// The hint file's bytes.
    bytes: Vec<u8>,
    /// Its entries as they are applied (missing records turned into removals).
    entries: Vec<HintEntry>,
    /// Where each (namespace, shard) bucket starts in `sorted`.
    starts: Vec<u32>,
    /// A run's keyed entries, grouped by bucket, in log order within each.
    sorted: Vec<Sorted>,
}

/// A keyed hint entry as a shard applies it.
#[derive(Clone, Copy, Default)]
struct Sorted {
    hash: u64,
    off: u32,
    len: u32,
    exp_s: u32,
    /// A live put (inserted); otherwise the key is removed.
    put: bool,
}

/// [`apply_hinted`] for a run without flushes.
///
/// `ahead` is how many times this segment's bytes the log holds after it: a shard
/// that gained keys here makes room for as many more per segment to come, so a table
/// grows about once to its final size instead of in many small steps (each a rehash).
fn apply_run(
    inner: &Inner,
    seg: &Segment,
    run: &[HintEntry],
    now: u64,
    ahead: f64,
    scratch: &mut HintScratch,
) {
    const BUCKETS: usize = ALL_NS as usize * Keydir::SHARDS;
    let bucket = |e: &HintEntry| -> Option<usize> {
        let keyed = matches!(e.kind, Kind::Put | Kind::Tombstone | Kind::Evict);
        (keyed && e.ns < ALL_NS && e.hash != 0)
            .then(|| e.ns as usize * Keydir::SHARDS + shard_of(e.hash))
    };
    // A stable counting sort of the entries by (namespace, shard), copied into bucket
    // order: a shard then reads its entries in sequence instead of one cache miss each.
    let starts = &mut scratch.starts;
    starts.clear();
    starts.resize(BUCKETS + 1, 0);
    let mut dead = 0u64;
    for e in run {
        match bucket(e) {
            Some(b) => starts[b + 1] += 1,
            // Seals, and entries no key can have: dead bytes only.
            None => dead += e.len as u64,
        }
    }
    for b in 0..BUCKETS {
        starts[b + 1] += starts[b];
    }
    let sorted = &mut scratch.sorted;
    sorted.clear();
    sorted.resize(starts[BUCKETS] as usize, Sorted::default());
    {
        let mut next = starts.clone();
        for e in run {
            if let Some(b) = bucket(e) {
                let expired = e.expire_at_ms != 0 && e.expire_at_ms <= now;
                sorted[next[b] as usize] = Sorted {
                    hash: e.hash,
                    off: e.offset,
                    len: e.len,
                    exp_s: coarse_expiry(e.expire_at_ms),
                    put: e.kind == Kind::Put && !expired,
                };
                next[b] += 1;
            }
        }
    }
    let (starts, sorted) = (&scratch.starts, &scratch.sorted);
    // Applies buckets `range`; returns the slots replaced and the bytes made dead.
    let apply_buckets = |range: std::ops::Range<usize>| -> (Vec<Slot>, u64) {
        let mut replaced = Vec::new();
        let mut dead = 0u64;
        for b in range {
            let members = &sorted[starts[b] as usize..starts[b + 1] as usize];
            if members.is_empty() {
                continue;
            }
            let kd = inner.index.keydir((b / Keydir::SHARDS) as u8);
            let mut shard = kd.shard_batch(b % Keydir::SHARDS);
            shard.reserve(members.len());
            let before = shard.len();
            let mut touched = 0u32;
            for e in members.iter().take(TOUCH_AHEAD) {
                touched ^= shard.touch(e.hash);
            }
            for (i, e) in members.iter().enumerate() {
                if i % TOUCH_AHEAD == 0 {
                    for next in members.iter().skip(i + TOUCH_AHEAD).take(TOUCH_AHEAD) {
                        touched ^= shard.touch(next.hash);
                    }
                }
                let old = if e.put {
                    shard.insert(Slot {
                        hash: e.hash,
                        seg: seg.id,
                        off: e.off,
                        len: e.len,
                        exp_s: e.exp_s,
                        meta: 0,
                    })
                } else {
                    dead += e.len as u64;
                    shard.remove(e.hash)
                };
                replaced.extend(old);
            }
            std::hint::black_box(touched);
            // At most 8 times what the shard holds, so a log whose new keys dry up
            // (overwrites of a working set) cannot reserve far more than it fills;
            // recovery fits what stays too empty at the end.
            let gained = shard.len().saturating_sub(before);
            let more = (gained as f64 * ahead) as usize;
            shard.reserve(more.min(shard.len() * 8));
        }
        (replaced, dead)
    };
    let threads = if run.len() < PARALLEL_RUN {
        1
    } else {
        crate::parallel::threads()
    };
    // Bucket ranges of about equal entry counts, one per thread.
    let results = crate::parallel::split(BUCKETS, threads, |b| starts[b] as u64, apply_buckets);
    for (replaced, d) in results {
        dead += d;
        inner.log.mark_dead_all(replaced);
    }
    seg.add_dead(dead);
}

/// What recovery learned about damage to synced bytes.
#[derive(Default)]
struct Damage {
    /// Keys whose newest record was lost (a hint names them): forgotten, and given an
    /// evict record once the log is open, so an older record cannot come back later.
    lost: Vec<u64>,
    /// The latest damage whose keys nobody can name: any key last written before it
    /// may have had a newer version in it, so none of those keys is trusted.
    horizon: Option<Mark>,
}

impl Damage {
    fn distrust(&mut self, seg: u32, off: u64) {
        let at = Mark { seg, len: off };
        self.horizon = self.horizon.max(Some(at));
    }
}

/// The lengths seal records give for sealed segments: each segment's first record
/// names the one sealed before it (a seal record in segment N names segment N-1 or,
/// after a gap left by compaction, an older one).
fn read_seals(inner: &Inner, seg_ids: &[u32]) -> HashMap<u32, u64> {
    let mut seals = HashMap::new();
    let mut buf = [0u8; record::HEADER_LEN + 12];
    for &id in seg_ids {
        let path = join(&inner.opts.dir, &crate::segment::segment_name(id));
        let Ok(f) = inner.opts.storage.open(&path, OpenMode::Read) else {
            continue;
        };
        if f.read_exact_at(&mut buf, FILE_HEADER_LEN as u64).is_err() {
            continue;
        }
        if let Some(r) = record::decode(&buf)
            && r.header.kind == Kind::Seal
            && let Some((prev, len)) = record::sealed(r.key)
            && prev < id
        {
            seals.insert(prev, len);
        }
    }
    seals
}

/// The sync mark, if its file is there and intact.
fn read_sync_mark(inner: &Inner) -> Option<Mark> {
    let path = join(&inner.opts.dir, sync_mark::FILE_NAME);
    let f = inner.opts.storage.open(&path, OpenMode::Read).ok()?;
    let mut b = vec![0u8; sync_mark::LEN];
    if f.size().ok()? != sync_mark::LEN as u64 || f.read_exact_at(&mut b, 0).is_err() {
        tracing::warn!(path = %path.display(), "sync mark unreadable; the last segment's tail is treated as unsynced");
        return None;
    }
    match sync_mark::decode(&b) {
        Ok(m) => Some(m),
        Err(reason) => {
            tracing::warn!(path = %path.display(), %reason, "sync mark ignored; the last segment's tail is treated as unsynced");
            None
        }
    }
}

/// Drops every key whose newest record lies before `h`, and the segments wholly before
/// it (nothing in them is live any more, and deleting them keeps the decision when the
/// damaged segment is compacted away).
fn distrust_before(inner: &Inner, h: Mark) -> Result<()> {
    let before = |s: &Slot| s.seg < h.seg || (s.seg == h.seg && (s.off as u64) < h.len);
    let mut dropped = Vec::new();
    for (_, kd) in inner.index.every() {
        for shard in 0..Keydir::SHARDS {
            kd.sweep_shard(shard, before, |s| dropped.push(*s));
        }
    }
    let keys = dropped.len();
    inner.log.mark_dead_all(dropped);
    let storage = inner.opts.storage.as_ref();
    let dir = &inner.opts.dir;
    let mut removed = 0;
    for seg in inner.log.segments() {
        if seg.id >= h.seg {
            continue;
        }
        inner.log.remove_segment(&seg);
        storage
            .remove(&seg.path)
            .and_then(|()| storage.remove(&join(dir, &hint_name(seg.id))))
            .map_err(|e| Error::io("remove", &seg.path, e))?;
        removed += 1;
    }
    storage
        .sync_dir(dir)
        .map_err(|e| Error::io("sync", dir, e))?;
    Counters::add(&inner.counters.corrupt, keys as u64);
    tracing::warn!(
        segment = h.seg,
        offset = h.len,
        keys,
        segments_removed = removed,
        "synced data is damaged and no hint names what was lost: every key last written before the damage is dropped, since it may have been overwritten there"
    );
    Ok(())
}

/// Checks every collection chunk against its root, registering the families found:
/// a chunk whose root is gone, names another family or is past its root's chunk count
/// (dropped without a record, see `families`) leaves the index. Chunks are read in log
/// order; only collections with chunks cost anything here.
fn check_chunks(inner: &Inner) -> Result<()> {
    let now = inner.now_ms();
    for ns in 0..NAMESPACES {
        let shadow = ns + NAMESPACES;
        let Some(kd) = inner.index.get(shadow) else {
            continue;
        };
        let mut slots = Vec::with_capacity(kd.len());
        kd.for_each_slot(|s| slots.push(*s));
        if slots.is_empty() {
            continue;
        }
        slots.sort_unstable_by_key(|s| (s.seg, s.off));
        let mut roots: HashMap<Vec<u8>, Option<FoundRoot>> = HashMap::new();
        let mut orphans = Vec::new();
        for s in &slots {
            let Some(seg) = inner.log.segment(s.seg) else {
                orphans.push(*s);
                continue;
            };
            let buf = inner.read_record(&seg, s)?;
            let Some(r) = buf.as_deref().and_then(record::decode) else {
                orphans.push(*s);
                continue;
            };
            let Some((root, version, n)) = crate::families::parse_chunk_key(r.key) else {
                orphans.push(*s);
                continue;
            };
            if r.header.kind != Kind::Put
                || r.header.ns != shadow
                || inner.index.key_id(shadow, r.key) != s.hash
            {
                orphans.push(*s);
                continue;
            }
            let known = roots
                .entry(root.to_vec())
                .or_insert_with(|| read_root(inner, ns, root, now));
            match known {
                Some((_, _, f, _)) if f.version == version && n < f.chunks => {}
                _ => orphans.push(*s),
            }
        }
        let dropped = orphans.len();
        let gone: Vec<Slot> = orphans.into_iter().filter(|s| kd.remove_exact(s)).collect();
        inner.log.mark_dead_all(gone);
        for (key, found) in roots {
            if let Some((id, vtype, family, exp)) = found {
                inner.families.set(ns, id, &key, Some((vtype, family, exp)));
            }
        }
        if dropped > 0 {
            tracing::debug!(ns, dropped, "collection chunks of gone families dropped");
        }
    }
    Ok(())
}

/// A live collection root: its id, type, family and exact expiry.
type FoundRoot = (u64, ValueType, Family, u64);

/// The family a live collection root at `key` names.
fn read_root(inner: &Inner, ns: u8, key: &[u8], now: u64) -> Option<FoundRoot> {
    let (kd, slot) = inner.find_slot(ns, key, now)?;
    let (buf, h) = inner.read_live(kd, ns, key, &slot, now).ok()??;
    if h.vtype == ValueType::String {
        return None;
    }
    let r = record::parts(&buf, h);
    let family = Family::decode(r.meta)?;
    Some((slot.hash, h.vtype, family, h.expire_at_ms))
}

/// Logs an evict record for each lost key that recovery left absent.
fn mark_lost(inner: &Inner, lost: &[u64]) -> Result<()> {
    if lost.is_empty() {
        return Ok(());
    }
    let mut w = inner.log.lock_writer()?;
    let mut marked = 0u64;
    for &id in lost {
        let ns = (id & 0xF) as u8;
        if inner.index.slot(ns, id).is_some() {
            continue;
        }
        let rec = record::evict(ns, id);
        let (seg, _) = inner.log.append_locked(&mut w, &rec)?;
        seg.add_dead(rec.len() as u64);
        marked += 1;
    }
    drop(w);
    Counters::add(&inner.counters.corrupt, marked);
    tracing::warn!(
        keys = marked,
        "records named by a hint file were missing from their segment; their keys are dropped"
    );
    inner.log.sync_now()
}

/// Opens segment `id` and applies its records. Returns the segment and whether it
/// was found damaged, or `None` for the remains of a segment whose creation was cut
/// short (no complete header), which it deletes. Bytes below `synced_below` had been
/// synced: damage there is recorded in `damage`; above it, in the last segment, it is
/// a torn tail and cut.
fn load_segment(
    inner: &Inner,
    id: u32,
    is_last: bool,
    synced_below: u64,
    bytes_after: u64,
    damage: &mut Damage,
    scratch: &mut HintScratch,
) -> Result<Option<(Arc<Segment>, bool)>> {
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
    let mut damaged = false;
    let hint_path = join(dir, &hint_name(id));
    if let Ok(hf) = storage.open(&hint_path, OpenMode::Read) {
        let load = load_hint(seg.id, hf.as_ref(), file_len, &mut damage.lost, scratch);
        if load.is_ok() {
            let ahead = bytes_after as f64 / file_len.max(1) as f64;
            let entries = std::mem::take(&mut scratch.entries);
            apply_hinted(inner, &seg, &entries, now, ahead, scratch);
            scratch.entries = entries;
        }
        match load {
            Ok(HintLoad::Covers(covered)) => {
                seg.hint_bytes
                    .store(hf.size().unwrap_or(0), Ordering::Relaxed);
                scan_from = covered;
                hinted = covered == file_len;
            }
            Ok(HintLoad::Truncated { lost }) => {
                seg.hint_bytes
                    .store(hf.size().unwrap_or(0), Ordering::Relaxed);
                tracing::warn!(
                    path = %path.display(),
                    lost,
                    "segment is shorter than its hint file says; the keys of the missing records are dropped"
                );
                scan_from = file_len;
                hinted = true;
                damaged = true;
            }
            Err(reason) => {
                tracing::warn!(path = %hint_path.display(), %reason, "ignoring hint file; scanning the segment");
            }
        }
    }
    if scan_from < file_len {
        // The records of a change of several records wait for its last one: a change
        // torn by a crash is not applied, and is cut off with the tail.
        let mut run: Vec<HintEntry> = Vec::new();
        let mut run_start = None;
        let mut end = walk(file.as_ref(), scan_from, file_len, |off, found| {
            if let Found::Corrupt { .. } = found {
                Counters::bump(&inner.counters.corrupt);
                tracing::warn!(
                    segment = id,
                    offset = off,
                    "corrupt record skipped; its key is dropped"
                );
            }
            let continued = matches!(&found, Found::Record(r) if r.header.continued);
            let e = inner.index.describe(off, &found);
            if continued {
                run_start.get_or_insert(off);
                run.push(e);
                return;
            }
            for e in run.drain(..) {
                apply(inner, &seg, &e, now);
            }
            run_start = None;
            apply(inner, &seg, &e, now);
        })
        .map_err(|e| Error::io("read", &path, e))?;
        if let Some(at) = run_start {
            if is_last {
                end.valid_end = end.valid_end.min(at);
            } else {
                // Only damage can leave a sealed segment ending inside a change: what
                // is intact of it is kept, as a damaged record's neighbours are.
                for e in run.drain(..) {
                    apply(inner, &seg, &e, now);
                }
            }
        }
        if end.corrupt_bytes > 0 {
            seg.add_dead(end.corrupt_bytes);
        }
        if let Some(at) = end.last_damage_below(synced_below, file_len) {
            // Synced bytes are damaged and their keys unknown (no usable hint).
            damage.distrust(id, at);
            damaged = true;
            seg.add_dead(file_len - end.valid_end);
        } else if end.valid_end < file_len {
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
            // A hint covering bytes that were cut would describe whatever is appended
            // over them.
            if storage.open(&hint_path, OpenMode::Read).is_ok() {
                storage
                    .remove(&hint_path)
                    .and_then(|()| storage.sync_dir(dir))
                    .map_err(|e| Error::io("remove", &hint_path, e))?;
                seg.hint_bytes.store(0, Ordering::Relaxed);
            }
        }
    }
    // A damaged segment keeps the files that describe its damage: a fresh hint would
    // hide it from the next open.
    if !hinted && !is_last && !damaged {
        inner.log.queue_hint(id);
    }
    Ok(Some((seg, damaged)))
}

/// What a hint file covered.
enum HintLoad {
    /// The segment's first `n` bytes (the rest, if any, is scanned).
    Covers(u64),
    /// The segment is shorter than the hint says: `lost` records it names are missing.
    Truncated { lost: usize },
}

/// Reads and checks a hint file, leaving its entries in `scratch.entries` for
/// [`apply_hinted`]. Records it names past the end of the segment become removals of
/// their keys (and their ids are added to `lost`); a flush stays as named, since its
/// loss would bring back what it removed.
fn load_hint(
    id: u32,
    hf: &dyn crate::io::FileHandle,
    file_len: u64,
    lost: &mut Vec<u64>,
    scratch: &mut HintScratch,
) -> Result<HintLoad, String> {
    let len = hf.size().map_err(|e| e.to_string())?;
    let mut bytes = std::mem::take(&mut scratch.bytes);
    bytes.clear();
    bytes.resize(len as usize, 0);
    let read = hf.read_exact_at(&mut bytes, 0).map_err(|e| e.to_string());
    scratch.entries.clear();
    let checked = read.and_then(|()| check_hint(&bytes, id, file_len, &mut scratch.entries));
    scratch.bytes = bytes;
    let (covered_len, missing) = checked?;
    // Only now, with every entry valid, are the missing records' keys given up.
    lost.extend(
        scratch
            .entries
            .iter()
            .filter(|e| e.offset as u64 + e.len as u64 > file_len && e.kind != Kind::Flush)
            .map(|e| e.hash),
    );
    if covered_len > file_len {
        return Ok(HintLoad::Truncated { lost: missing });
    }
    Ok(HintLoad::Covers(covered_len))
}

/// Validates a hint file's bytes and fills `out` with its entries as they are to be
/// applied: a put whose record lies past `file_len` (the segment lost it) becomes a
/// removal. Returns the length the hint covers and how many records are missing.
fn check_hint(
    bytes: &[u8],
    id: u32,
    file_len: u64,
    out: &mut Vec<HintEntry>,
) -> Result<(u64, usize), String> {
    let h = hint::decode(bytes, id)?;
    if h.covered_len < FILE_HEADER_LEN as u64 {
        return Err(format!("covers only {} bytes", h.covered_len));
    }
    let mut missing = 0;
    for e in h.entries() {
        let e = e?;
        let end = e.offset as u64 + e.len as u64;
        if (e.offset as u64) < FILE_HEADER_LEN as u64 || end > h.covered_len {
            return Err(format!("entry at {} runs outside the segment", e.offset));
        }
        if end <= file_len {
            out.push(e);
            continue;
        }
        missing += 1;
        out.push(HintEntry {
            kind: if e.kind == Kind::Put {
                Kind::Tombstone
            } else {
                e.kind
            },
            ..e
        });
    }
    Ok((h.covered_len, missing))
}
