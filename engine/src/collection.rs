//! The engine's collection operations: a collection's change (its chunks and its root)
//! appended as one run that recovery applies whole or not at all, chunk reads, and the
//! registry lookup that lets a point read skip the root. The layout of a collection's
//! values is the caller's; the engine keeps its records and drops them as one key.

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::families::{CHUNK_KEY_EXTRA, Family, chunk_key};
use crate::format::record::{
    self, CONTINUED, Kind, MAX_KEY_LEN, MAX_META_LEN, NAMESPACES, ValueType,
};
use crate::keydir::Slot;
use crate::stats::Counters;
use bytes::Bytes;

/// One chunk of a [`CollectionWrite`].
#[derive(Debug, Clone, Copy)]
pub struct ChunkWrite<'a> {
    /// The chunk's number.
    pub n: u32,
    /// Its new bytes; `None` removes it.
    pub value: Option<&'a [u8]>,
}

/// A collection's root after a change.
#[derive(Debug, Clone, Copy)]
pub struct RootWrite<'a> {
    /// What the key holds.
    pub vtype: ValueType,
    /// The first bytes of the root's value (may be empty): given apart so that a
    /// small collection's header and its entries as read need not be joined first.
    pub head: &'a [u8],
    /// The rest of the root's value (the whole collection, when it has no chunks).
    pub value: &'a [u8],
    /// Its chunks' family, if it has chunks.
    pub family: Option<Family>,
    /// Expiry in Unix ms (one in the past removes the key).
    pub expire_at_ms: Option<u64>,
}

/// One change of a collection, applied atomically (in the index and after a crash).
#[derive(Debug, Clone)]
pub struct CollectionWrite<'a> {
    /// The root after the change; `None` removes the key with every chunk.
    pub root: Option<RootWrite<'a>>,
    /// Chunks of the root's family written or removed.
    pub chunks: Vec<ChunkWrite<'a>>,
    /// The caller read the root as `root` says it is now (its value unchanged): only
    /// the chunks are appended, if the key still holds that family with that expiry
    /// (else the root is written too, as without this).
    pub root_unchanged: bool,
}

fn check(ns: u8, key: &[u8]) -> Result<()> {
    if ns >= NAMESPACES {
        return Err(Error::BadNamespace(ns));
    }
    if key.is_empty() || key.len() + CHUNK_KEY_EXTRA > MAX_KEY_LEN {
        return Err(Error::KeyTooLong {
            len: key.len(),
            max: MAX_KEY_LEN - CHUNK_KEY_EXTRA,
        });
    }
    Ok(())
}

impl Engine {
    /// The family of the collection at `key`, its type and expiry, if it has chunks:
    /// from memory, so a point read of a large collection reads only its chunk.
    pub fn family(&self, ns: u8, key: &[u8]) -> Option<(ValueType, Family, Option<u64>)> {
        let inner = &*self.inner;
        if ns >= NAMESPACES || inner.families.len() == 0 {
            return None;
        }
        let id = inner.index.key_id(ns, key);
        let (t, f, exp) = inner.families.get(ns, id, inner.now_ms())?;
        Some((t, f, (exp != 0).then_some(exp)))
    }

    /// Chunk `n` of `family` of the collection at `key`; `None` if it is missing.
    pub fn chunk(&self, ns: u8, key: &[u8], family: Family, n: u32) -> Result<Option<Bytes>> {
        check(ns, key)?;
        let inner = &*self.inner;
        if inner.log.is_closed() {
            return Err(Error::Closed);
        }
        let shadow = ns + NAMESPACES;
        let ck = chunk_key(key, family.version, n);
        let now = inner.now_ms();
        let Some((kd, slot)) = inner.find_slot(shadow, &ck, now) else {
            return Ok(None);
        };
        let Some(p) = inner.read_live_parts(kd, shadow, &ck, &slot, now)? else {
            return Ok(None);
        };
        Counters::bump(&inner.counters.chunk_reads);
        Ok(Some(p.value))
    }

    /// Applies one change of the collection at `key`: every chunk record and the root
    /// are appended as one run, then the index takes them all, so no reader and no
    /// restart sees part of the change. The caller holds whatever makes the change
    /// exclusive (the server's key lock).
    pub fn write_collection(&self, ns: u8, key: &[u8], change: &CollectionWrite<'_>) -> Result<()> {
        check(ns, key)?;
        let inner = &*self.inner;
        let now = inner.now_ms();
        let root = match change.root {
            Some(r) if !r.expire_at_ms.is_some_and(|at| at == 0 || at <= now) => r,
            _ => {
                self.delete(ns, key)?;
                return Ok(());
            }
        };
        let max = inner.opts.max_value_bytes;
        let too_long = |len: usize| Error::ValueTooLong { len, max };
        let root_value_len = root.head.len() + root.value.len();
        if root_value_len > max {
            return Err(too_long(root_value_len));
        }
        let meta = root.family.map(|f| f.encode());
        let meta: &[u8] = meta.as_ref().map_or(&[], |m| &m[..]);
        debug_assert!(meta.len() <= MAX_META_LEN);
        let shadow = ns + NAMESPACES;
        let exp = root.expire_at_ms.unwrap_or(0);
        // (chunk id, offset in `buf`, length, written or removed)
        let mut parts: Vec<(u64, usize, usize, bool)> = Vec::with_capacity(change.chunks.len());
        // Each record: its header, key and value (a chunk's key is its root's and a
        // few bytes more, its meta empty), so the run is built without growing; a run
        // of the root alone fills its buffer exactly, which the hot tier then keeps.
        let per_chunk = record::HEADER_LEN + key.len() + CHUNK_KEY_EXTRA;
        let mut buf = Vec::with_capacity(
            change.chunks.len() * per_chunk
                + change
                    .chunks
                    .iter()
                    .filter_map(|c| c.value)
                    .map(<[u8]>::len)
                    .sum::<usize>()
                + record::HEADER_LEN
                + key.len()
                + meta.len()
                + root_value_len,
        );
        let hash = inner.index.key_id(ns, key);
        // Whether the run can end on its last chunk, the root left as it is: decided
        // again under the writer, but guessed now so that the last chunk's CRC is taken
        // once, here, and not again while the writer is held.
        let unchanged = || {
            change.root_unchanged
                && root.family.is_some_and(|f| {
                    inner.families.get(ns, hash, now) == Some((root.vtype, f, exp))
                })
        };
        let guess_kept = !change.chunks.is_empty() && unchanged();
        if !change.chunks.is_empty() {
            let Some(family) = root.family else {
                return Err(Error::BadChange("chunks written without a family"));
            };
            let last = change.chunks.len() - 1;
            for (i, c) in change.chunks.iter().enumerate() {
                let ck = chunk_key(key, family.version, c.n);
                let at = buf.len();
                let mark = if guess_kept && i == last {
                    0
                } else {
                    CONTINUED
                };
                match c.value {
                    Some(v) => {
                        if v.len() > max {
                            return Err(too_long(v.len()));
                        }
                        record::encode_typed(
                            &mut buf,
                            Kind::Put as u8 | mark,
                            ValueType::String,
                            shadow,
                            &ck,
                            b"",
                            v,
                            0,
                        );
                    }
                    None => record::encode_typed(
                        &mut buf,
                        Kind::Tombstone as u8 | mark,
                        ValueType::String,
                        shadow,
                        &ck,
                        b"",
                        b"",
                        0,
                    ),
                }
                let id = inner.index.key_id(shadow, &ck);
                parts.push((id, at, buf.len() - at, c.value.is_some()));
            }
        }
        let root_at = buf.len();
        // Room for the root too, written or not (decided below).
        let root_max = record::HEADER_LEN + key.len() + meta.len() + root_value_len;
        let encode_root = |buf: &mut Vec<u8>| {
            record::encode_typed_parts(
                buf,
                Kind::Put as u8,
                root.vtype,
                ns,
                key,
                meta,
                root.head,
                root.value,
                exp,
            );
        };
        // A run without chunks is its root alone: encoded (and its CRC taken) before
        // the writer is held, which other threads' writes wait for.
        let root_first = parts.is_empty();
        if root_first {
            encode_root(&mut buf);
        }
        inner
            .compactor
            .wait_for_space(&inner.log, root_at + root_max)?;
        let lsn = {
            let mut w = inner.writer()?;
            inner.families.settle();
            // Decided under the writer: nothing can drop or replace the key meanwhile.
            // A run without its root ends on its last chunk record (at `ends_at`).
            let ends_at = parts.last().map(|p| p.1).filter(|_| unchanged());
            let keep_root = ends_at.is_some();
            // Recovery applies a run up to the record without the mark: the last
            // chunk's mark is fixed where the guess was wrong (an expiry or an
            // eviction in between).
            match ends_at {
                Some(last) if !guess_kept => record::set_continued(&mut buf[last..], false),
                Some(_) => {}
                None => {
                    if guess_kept && let Some(&(_, last, _, _)) = parts.last() {
                        record::set_continued(&mut buf[last..], true);
                    }
                    if !root_first {
                        encode_root(&mut buf);
                    }
                }
            }
            let root_len = buf.len() - root_at;
            let (seg, off) = inner.log.append_locked(&mut w, &buf)?;
            if !parts.is_empty() {
                let kd = inner.index.keydir(shadow);
                let mut dead = Vec::new();
                for &(id, at, len, put) in &parts {
                    let old = if put {
                        kd.insert(Slot {
                            hash: id,
                            seg: seg.id,
                            off: off + at as u32,
                            len: len as u32,
                            exp_s: 0,
                            meta: 0,
                        })
                    } else {
                        seg.add_dead(len as u64);
                        kd.remove_if(id, |_| true)
                    };
                    dead.extend(old);
                }
                inner.log.mark_dead_all(dead);
            }
            if keep_root {
                // A change of the collection all the same, for the eviction policy.
                inner.note_overwrite(hash);
            } else {
                let kd = inner.index.keydir(ns);
                let old = inner.point_at(kd, hash, &seg, off + root_at as u32, root_len, exp);
                inner
                    .families
                    .set(ns, hash, key, root.family.map(|f| (root.vtype, f, exp)));
                inner.key_written(&mut w, hash, key, old)?;
            }
            // Chunks and the root being read often stay in memory across the change.
            let generation = inner.log.generation();
            for &(id, at, len, put) in &parts {
                if put {
                    let rec = &buf[at..at + len];
                    inner
                        .hot
                        .replace(id, seg.id, off + at as u32, generation, rec);
                }
            }
            if !keep_root {
                let at = off + root_at as u32;
                if root_at == 0 {
                    // A run of the root alone (a small collection): the tier keeps
                    // the buffer itself.
                    inner
                        .hot
                        .replace_owned(hash, seg.id, at, generation, Bytes::from(buf));
                } else {
                    let rec = &buf[root_at..root_at + root_len];
                    inner.hot.replace(hash, seg.id, at, generation, rec);
                }
            }
            w.lsn
        };
        Counters::bump(&inner.counters.puts);
        inner.log.after_write(lsn)
    }
}
