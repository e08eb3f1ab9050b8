//! The index snapshot: written at a clean shutdown (after the last sync and hints), and
//! loaded by the next open in place of the hint files when it describes exactly the
//! segment files found. It is removed once read, used or not, so it can never describe
//! a later state. Format in [`crate::format::snapshot`].

use crate::core::Inner;
use crate::format::file_header::{self, FileKind, HEADER_LEN as FILE_HEADER_LEN};
use crate::format::record::ALL_NS;
use crate::format::snapshot::{self, Block, FILE_NAME, Head, SegmentInfo};
use crate::io::{FileHandle, OpenMode, join};
use crate::keydir::{ENTRY_BYTES, Keydir, Slot};
use crate::segment::{Segment, segment_name};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Bytes written per call while the entries stream out.
const CHUNK: usize = 4 << 20;

/// Writes the snapshot of `inner`'s index (temp file, sync, rename, sync directory).
/// Called with the log closed: nothing changes the index meanwhile but the policy
/// bits a read in flight may set, which a snapshot may or may not catch.
pub(crate) fn write(inner: &Inner) -> std::io::Result<()> {
    let storage = inner.opts.storage.as_ref();
    let dir = &inner.opts.dir;
    let segments: Vec<SegmentInfo> = inner
        .log
        .segments()
        .iter()
        .map(|s| SegmentInfo {
            id: s.id,
            len: s.len(),
            dead: s.dead.load(Ordering::Relaxed),
            hint_bytes: s.hint_bytes.load(Ordering::Relaxed),
            pinned: s.pinned.load(Ordering::Relaxed),
        })
        .collect();
    let keydirs: Vec<(u8, &Keydir)> = inner.index.every().collect();
    let start = snapshot::head_len(segments.len(), keydirs.len() * Keydir::SHARDS);
    let tmp = join(dir, &format!("{FILE_NAME}.tmp"));
    storage.remove(&tmp)?;
    let f = storage.open(&tmp, OpenMode::CreateNew)?;
    let mut blocks = Vec::with_capacity(keydirs.len() * Keydir::SHARDS);
    let mut buf = Vec::with_capacity(CHUNK + (1 << 20));
    let mut at = start as u64;
    for &(ns, kd) in &keydirs {
        for shard in 0..Keydir::SHARDS {
            let from = buf.len();
            let (capacity, entries) = kd.encode_shard(shard, &mut buf);
            blocks.push(Block {
                ns,
                shard: shard as u16,
                capacity: capacity as u32,
                entries: entries as u32,
                crc: crc32fast::hash(&buf[from..]),
            });
            if buf.len() >= CHUNK {
                f.write_all_at(&buf, at)?;
                at += buf.len() as u64;
                buf.clear();
            }
        }
    }
    f.write_all_at(&buf, at)?;
    let head = Head {
        active: inner.log.active().id,
        seed: inner.index.seed(),
        epoch: inner.policy.epoch(),
        segments,
        blocks,
    };
    f.write_all_at(&snapshot::encode_head(&head), 0)?;
    f.sync()?;
    drop(f);
    storage.rename(&tmp, &join(dir, FILE_NAME))?;
    storage.sync_dir(dir)
}

/// Loads the snapshot into `inner`'s (empty) index and its segments into the log if it
/// describes exactly the segments `seg_ids`; returns the newest segment. `None` (and
/// an index left empty) if there is no usable snapshot: recovery then reads hints.
/// The snapshot file is removed either way.
pub(crate) fn load(inner: &Inner, seg_ids: &[u32]) -> Option<Arc<Segment>> {
    let storage = inner.opts.storage.as_ref();
    let dir = &inner.opts.dir;
    let path = join(dir, FILE_NAME);
    let f = storage.open(&path, OpenMode::Read).ok()?;
    let loaded = match try_load(inner, f.as_ref(), seg_ids) {
        Ok(segs) => Some(segs),
        Err(reason) => {
            tracing::info!(path = %path.display(), %reason, "index snapshot not used; reading hint files");
            inner
                .index
                .clear(crate::format::record::ALL_NAMESPACES, |_, _| {});
            None
        }
    };
    drop(f);
    // Gone before anything is written: a later state must never meet this snapshot.
    if let Err(e) = storage.remove(&path).and_then(|()| storage.sync_dir(dir)) {
        tracing::warn!(path = %path.display(), error = %e, "could not remove the index snapshot");
        if loaded.is_some() {
            inner
                .index
                .clear(crate::format::record::ALL_NAMESPACES, |_, _| {});
            return None;
        }
    }
    let (segs, expired) = loaded?;
    let last = segs.last().cloned();
    for s in segs {
        inner.log.insert_segment(s);
    }
    // As hint loading does: a key that expired while closed is not loaded, and its
    // record is dead.
    inner.log.mark_dead_all(expired);
    last
}

/// The segments, and the slots of keys that expired while the engine was closed.
type Loaded = (Vec<Arc<Segment>>, Vec<Slot>);

fn try_load(inner: &Inner, f: &dyn FileHandle, seg_ids: &[u32]) -> Result<Loaded, String> {
    let mut fixed = vec![0u8; snapshot::fixed_len()];
    f.read_exact_at(&mut fixed, 0).map_err(|e| e.to_string())?;
    let (ns, nb) = snapshot::counts(&fixed)?;
    let size = f.size().map_err(|e| e.to_string())?;
    let head_len = snapshot::head_len(ns, nb);
    if head_len as u64 > size {
        return Err("shorter than its head".into());
    }
    let mut head = vec![0u8; head_len];
    f.read_exact_at(&mut head, 0).map_err(|e| e.to_string())?;
    let head = snapshot::decode_head(&head)?;
    if head.seed != inner.index.seed() {
        return Err("written for another hash seed".into());
    }
    let listed: Vec<u32> = head.segments.iter().map(|s| s.id).collect();
    if listed != seg_ids {
        return Err("the segment files differ from those it describes".into());
    }
    let entries: u64 = head.blocks.iter().map(|b| b.entries as u64).sum();
    if head_len as u64 + entries * ENTRY_BYTES as u64 != size {
        return Err(format!(
            "{size} bytes where its head describes {}",
            head_len as u64 + entries * ENTRY_BYTES as u64
        ));
    }
    let segs = open_segments(inner, &head.segments)?;
    let expired = load_blocks(inner, f, &head.blocks, head_len as u64)?;
    inner.policy.set_epoch(head.epoch);
    Ok((segs, expired))
}

/// Opens the segments, each exactly as long as the snapshot says.
fn open_segments(inner: &Inner, infos: &[SegmentInfo]) -> Result<Vec<Arc<Segment>>, String> {
    let storage = inner.opts.storage.as_ref();
    let mut out = Vec::with_capacity(infos.len());
    for s in infos {
        let path = join(&inner.opts.dir, &segment_name(s.id));
        let file = storage
            .open(&path, OpenMode::ReadWrite)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let len = file.size().map_err(|e| e.to_string())?;
        if len != s.len {
            return Err(format!("segment {} is {len} bytes, not {}", s.id, s.len));
        }
        let mut header = [0u8; FILE_HEADER_LEN];
        file.read_exact_at(&mut header, 0)
            .map_err(|e| e.to_string())?;
        if file_header::decode(&header, FileKind::Segment) != Ok(s.id) {
            return Err(format!("segment {} has a bad header", s.id));
        }
        let seg = Segment::new(s.id, path, file, len);
        seg.dead.store(s.dead, Ordering::Relaxed);
        seg.hint_bytes.store(s.hint_bytes, Ordering::Relaxed);
        seg.pinned.store(s.pinned, Ordering::Relaxed);
        out.push(Arc::new(seg));
    }
    Ok(out)
}

/// Reads and installs every block, split over threads by entry count; returns the
/// slots of keys that expired meanwhile (left out).
fn load_blocks(
    inner: &Inner,
    f: &dyn FileHandle,
    blocks: &[Block],
    start: u64,
) -> Result<Vec<Slot>, String> {
    let mut offsets = Vec::with_capacity(blocks.len());
    let mut at = start;
    for b in blocks {
        if b.ns >= ALL_NS || b.shard as usize >= Keydir::SHARDS {
            return Err(format!("block for namespace {} shard {}", b.ns, b.shard));
        }
        offsets.push(at);
        at += b.entries as u64 * ENTRY_BYTES as u64;
    }
    let now = inner.now_ms();
    let load_range = |range: std::ops::Range<usize>| -> Result<Vec<Slot>, String> {
        let mut buf = Vec::new();
        let mut expired = Vec::new();
        for i in range {
            let b = &blocks[i];
            buf.resize(b.entries as usize * ENTRY_BYTES, 0);
            f.read_exact_at(&mut buf, offsets[i])
                .map_err(|e| e.to_string())?;
            if crc32fast::hash(&buf) != b.crc {
                return Err(format!(
                    "block for namespace {} shard {} fails its CRC",
                    b.ns, b.shard
                ));
            }
            if !inner.index.keydir(b.ns).decode_shard(
                b.shard as usize,
                b.capacity as usize,
                &buf,
                now,
                |s| expired.push(s),
            ) {
                return Err(format!(
                    "block for namespace {} shard {} is not a valid table",
                    b.ns, b.shard
                ));
            }
        }
        Ok(expired)
    };
    // Block ranges of about equal bytes, one per thread.
    let before = |i: usize| offsets.get(i).map_or(at, |&o| o) - start;
    crate::parallel::split(blocks.len(), crate::parallel::threads(), before, load_range)
        .into_iter()
        .try_fold(Vec::new(), |mut all, r| {
            all.extend(r?);
            Ok(all)
        })
}
