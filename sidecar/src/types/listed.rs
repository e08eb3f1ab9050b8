//! A list on the log: one record while small; past [`INLINE_MAX`] bytes, a chain of
//! chunks of about [`CHUNK_TARGET`] bytes in the order the root's directory gives, so a
//! push or pop rewrites one chunk and the root, and an index finds its chunk from the
//! directory's counts without reading the others.
//!
//! | root value (inline)  | size | meaning                                        |
//! |----------------------|-----:|------------------------------------------------|
//! | form                 |    1 | 0: inline                                      |
//! | count                |    4 | elements, little-endian                        |
//! | elements             |    … | each: length (4) · bytes                       |
//!
//! | root value (chunked) | size | meaning                                        |
//! |----------------------|-----:|------------------------------------------------|
//! | form                 |    1 | 1: chunked                                     |
//! | count                |    8 | elements                                       |
//! | bytes                |    8 | encoded bytes of every element                 |
//! | directory            |    … | per chunk, head to tail: chunk number (4) · elements (4) · bytes (4) |
//!
//! A chunk's value is its elements, encoded as above. Chunk numbers are reused: a
//! number the directory no longer names is a removed record (below the family's
//! chunk count) or beyond it.

use super::hashed::INLINE_MAX;
use super::{le_u32, le_u64, take_prefixed};
use crate::cmd::CmdError;
use crate::keyspace::Keyspace;
use bytes::Bytes;
use caskade_engine::{Family, Item, ValueType};
use std::collections::{BTreeSet, HashMap, VecDeque};

/// A chunk past this many bytes takes no more pushes; one past twice this is split.
const CHUNK_TARGET: usize = 4 << 10;

fn elem_bytes(v: &[u8]) -> usize {
    4 + v.len()
}

fn encode_elems<'e>(out: &mut Vec<u8>, elems: impl Iterator<Item = &'e Bytes>) {
    for v in elems {
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v);
    }
}

fn damaged() -> CmdError {
    CmdError::err("list record is damaged")
}

fn decode_elems(b: &Bytes) -> Result<VecDeque<Bytes>, CmdError> {
    let mut out = VecDeque::new();
    let mut at = 0usize;
    while at < b.len() {
        out.push_back(take_prefixed(b, &mut at).ok_or_else(damaged)?);
    }
    Ok(out)
}

/// One chunk of the directory: its number, how many elements it holds, and their
/// encoded bytes (so trims, merges and pushes decide without reading it).
#[derive(Debug, Clone, Copy)]
struct Node {
    slot: u32,
    count: u32,
    bytes: u32,
}

/// Bytes of one directory entry.
const NODE_BYTES: usize = 12;

/// A chunk read (or made), with its encoded size.
struct Chunk {
    items: VecDeque<Bytes>,
    bytes: usize,
}

impl Chunk {
    fn new(items: VecDeque<Bytes>) -> Chunk {
        let bytes = items.iter().map(|v| elem_bytes(v)).sum();
        Chunk { items, bytes }
    }
}

enum Form {
    Inline(VecDeque<Bytes>),
    Chunked {
        family: Family,
        dir: Vec<Node>,
        chunks: HashMap<u32, Chunk>,
        dirty: BTreeSet<u32>,
        /// Numbers freed by this change (their records go unless reused).
        freed: BTreeSet<u32>,
    },
}

/// A list opened for reading or changing; changes are written by
/// [`Listed::commit`] as one atomic change.
pub struct Listed<'k, 'a> {
    ks: &'k Keyspace<'a>,
    key: &'k [u8],
    exists: bool,
    expire_at_ms: Option<u64>,
    count: u64,
    bytes: u64,
    form: Form,
    changed: bool,
}

impl<'k, 'a> Listed<'k, 'a> {
    /// The list at `key` (empty if absent); WRONGTYPE if the key holds another type.
    pub fn open(ks: &'k Keyspace<'a>, key: &'k [u8]) -> Result<Self, CmdError> {
        Listed::from_item(ks, key, ks.get_typed(key)?)
    }

    /// [`Listed::open`] from the root already read (`None`: the key is absent).
    pub fn from_item(
        ks: &'k Keyspace<'a>,
        key: &'k [u8],
        item: Option<Item>,
    ) -> Result<Self, CmdError> {
        let mut l = Listed {
            ks,
            key,
            exists: false,
            expire_at_ms: None,
            count: 0,
            bytes: 0,
            form: Form::Inline(VecDeque::new()),
            changed: false,
        };
        let Some(item) = item else {
            return Ok(l);
        };
        if item.vtype != ValueType::List {
            return Err(CmdError::WrongType);
        }
        l.exists = true;
        l.expire_at_ms = item.expire_at_ms;
        let v = &item.value;
        match v.first() {
            Some(0) => {
                let elems = decode_elems(&v.slice(5.min(v.len())..))?;
                l.count = elems.len() as u64;
                l.bytes = elems.iter().map(|e| elem_bytes(e) as u64).sum();
                l.form = Form::Inline(elems);
            }
            Some(1) => {
                l.count = le_u64(v, 1).ok_or_else(damaged)?;
                l.bytes = le_u64(v, 9).ok_or_else(damaged)?;
                let dir_bytes = v.get(17..).ok_or_else(damaged)?;
                if dir_bytes.len() % NODE_BYTES != 0 {
                    return Err(damaged());
                }
                let mut dir = Vec::with_capacity(dir_bytes.len() / NODE_BYTES);
                for at in (0..dir_bytes.len()).step_by(NODE_BYTES) {
                    dir.push(Node {
                        slot: le_u32(dir_bytes, at).ok_or_else(damaged)?,
                        count: le_u32(dir_bytes, at + 4).ok_or_else(damaged)?,
                        bytes: le_u32(dir_bytes, at + 8).ok_or_else(damaged)?,
                    });
                }
                let family = Family::decode(&item.meta).ok_or_else(damaged)?;
                l.form = Form::Chunked {
                    family,
                    dir,
                    chunks: HashMap::new(),
                    dirty: BTreeSet::new(),
                    freed: BTreeSet::new(),
                };
            }
            _ => return Err(damaged()),
        }
        Ok(l)
    }

    /// The list at `key` from its elements alone, replacing nothing (the caller
    /// removed what `key` held): for RENAME and COPY of a chunked list.
    pub fn fill(
        ks: &'k Keyspace<'a>,
        key: &'k [u8],
        elems: Vec<Bytes>,
        expire_at_ms: Option<u64>,
    ) -> Result<(), CmdError> {
        let mut l = Listed::open(ks, key)?;
        for v in elems {
            l.push(false, v)?;
        }
        l.expire_at_ms = expire_at_ms;
        l.commit()
    }

    /// Whether the list exists (has an element).
    pub fn exists(&self) -> bool {
        self.exists
    }

    /// How many elements it has.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Encoded bytes of every element.
    pub fn stored_bytes(&self) -> u64 {
        self.bytes
    }

    /// The name Redis 7.0's OBJECT ENCODING gives every list.
    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }

    /// Chunk `slot`, read on first use.
    fn chunk(&mut self, slot: u32) -> Result<&mut Chunk, CmdError> {
        let Form::Chunked { family, chunks, .. } = &mut self.form else {
            return Err(damaged());
        };
        match chunks.entry(slot) {
            std::collections::hash_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(e) => {
                let items = match self.ks.chunk(self.key, *family, slot)? {
                    Some(b) => decode_elems(&b)?,
                    None => return Err(damaged()),
                };
                Ok(e.insert(Chunk::new(items)))
            }
        }
    }

    /// The node holding index `i` (< len) and the index within it.
    fn locate(&self, i: u64) -> Result<(usize, usize), CmdError> {
        let Form::Chunked { dir, .. } = &self.form else {
            return Err(damaged());
        };
        // From whichever end is nearer: an index near the tail walks few nodes.
        if i < self.count / 2 {
            let mut at = 0u64;
            for (p, n) in dir.iter().enumerate() {
                if i < at + n.count as u64 {
                    return Ok((p, (i - at) as usize));
                }
                at += n.count as u64;
            }
        } else {
            let mut end = self.count;
            for (p, n) in dir.iter().enumerate().rev() {
                let start = end - n.count as u64;
                if i >= start {
                    return Ok((p, (i - start) as usize));
                }
                end = start;
            }
        }
        Err(damaged())
    }

    fn dir(&mut self) -> Result<&mut Vec<Node>, CmdError> {
        match &mut self.form {
            Form::Chunked { dir, .. } => Ok(dir),
            Form::Inline(_) => Err(damaged()),
        }
    }

    fn touched(&mut self, slot: u32) {
        if let Form::Chunked { dirty, .. } = &mut self.form {
            dirty.insert(slot);
        }
        self.changed = true;
    }

    /// A chunk number no node holds (the lowest free one).
    fn free_slot(&mut self) -> Result<u32, CmdError> {
        let Form::Chunked { dir, freed, .. } = &mut self.form else {
            return Err(damaged());
        };
        let used: BTreeSet<u32> = dir.iter().map(|n| n.slot).collect();
        let slot = (0..).find(|s| !used.contains(s)).unwrap_or(0);
        freed.remove(&slot);
        Ok(slot)
    }

    /// A new, empty node at position `p` of the directory.
    fn new_node(&mut self, p: usize) -> Result<u32, CmdError> {
        let slot = self.free_slot()?;
        if let Form::Chunked { dir, chunks, .. } = &mut self.form {
            dir.insert(
                p,
                Node {
                    slot,
                    count: 0,
                    bytes: 0,
                },
            );
            chunks.insert(slot, Chunk::new(VecDeque::new()));
        }
        self.touched(slot);
        Ok(slot)
    }

    /// Records that node `p` gained or lost elements; drops it when empty, splits it
    /// when it has grown past twice the target.
    fn settle_node(&mut self, p: usize) -> Result<(), CmdError> {
        let slot = self.dir()?[p].slot;
        let (len, bytes) = {
            let c = self.chunk(slot)?;
            (c.items.len(), c.bytes)
        };
        self.dir()?[p] = Node {
            slot,
            count: len as u32,
            bytes: bytes as u32,
        };
        self.touched(slot);
        if len == 0 {
            if let Form::Chunked {
                dir,
                chunks,
                dirty,
                freed,
                ..
            } = &mut self.form
            {
                dir.remove(p);
                chunks.remove(&slot);
                dirty.remove(&slot);
                freed.insert(slot);
            }
        } else if bytes > 2 * CHUNK_TARGET && len > 1 {
            let tail = {
                let c = self.chunk(slot)?;
                let tail = c.items.split_off(len / 2);
                *c = Chunk::new(std::mem::take(&mut c.items));
                tail
            };
            let new = self.new_node(p + 1)?;
            let tail = Chunk::new(tail);
            let (n, tail_bytes) = (tail.items.len() as u32, tail.bytes as u32);
            *self.chunk(new)? = tail;
            let dir = self.dir()?;
            dir[p].count = (len / 2) as u32;
            dir[p].bytes = bytes as u32 - tail_bytes;
            dir[p + 1].count = n;
            dir[p + 1].bytes = tail_bytes;
        }
        Ok(())
    }

    /// Adds `v` at the head (`front`) or the tail.
    pub fn push(&mut self, front: bool, v: Bytes) -> Result<(), CmdError> {
        self.count += 1;
        self.bytes += elem_bytes(&v) as u64;
        self.exists = true;
        self.changed = true;
        if let Form::Inline(e) = &mut self.form {
            if front {
                e.push_front(v)
            } else {
                e.push_back(v)
            }
            return Ok(());
        }
        let n = self.dir()?.len();
        let end = if front { 0 } else { n.saturating_sub(1) };
        let full = match self.dir()?.get(end) {
            None => true,
            Some(node) => node.bytes as usize + elem_bytes(&v) > CHUNK_TARGET,
        };
        let p = if full {
            let p = if front { 0 } else { n };
            self.new_node(p)?;
            p
        } else {
            end
        };
        let slot = self.dir()?[p].slot;
        let c = self.chunk(slot)?;
        c.bytes += elem_bytes(&v);
        if front {
            c.items.push_front(v)
        } else {
            c.items.push_back(v)
        }
        self.settle_node(p)
    }

    /// Removes and returns the head (`front`) or tail element.
    pub fn pop(&mut self, front: bool) -> Result<Option<Bytes>, CmdError> {
        if self.count == 0 {
            return Ok(None);
        }
        let i = if front { 0 } else { self.count - 1 };
        self.remove(i).map(Some)
    }

    /// Element `i` (0-based from the head), if the list is that long.
    pub fn get(&mut self, i: u64) -> Result<Option<Bytes>, CmdError> {
        if i >= self.count {
            return Ok(None);
        }
        if let Form::Inline(e) = &self.form {
            return Ok(e.get(i as usize).cloned());
        }
        let (p, at) = self.locate(i)?;
        let slot = self.dir()?[p].slot;
        Ok(self.chunk(slot)?.items.get(at).cloned())
    }

    /// Replaces element `i` (< len).
    pub fn set(&mut self, i: u64, v: Bytes) -> Result<(), CmdError> {
        self.changed = true;
        if let Form::Inline(e) = &mut self.form {
            let old = e.get_mut(i as usize).ok_or_else(damaged)?;
            self.bytes = self.bytes + v.len() as u64 - old.len() as u64;
            *old = v;
            return Ok(());
        }
        let (p, at) = self.locate(i)?;
        let slot = self.dir()?[p].slot;
        let c = self.chunk(slot)?;
        let old = c.items.get_mut(at).ok_or_else(damaged)?;
        let (new_len, old_len) = (v.len(), old.len());
        *old = v;
        c.bytes = c.bytes + new_len - old_len;
        self.bytes = self.bytes + new_len as u64 - old_len as u64;
        self.settle_node(p)
    }

    /// Inserts `v` so that it becomes element `i` (`i == len`: at the tail).
    pub fn insert(&mut self, i: u64, v: Bytes) -> Result<(), CmdError> {
        if i >= self.count {
            return self.push(false, v);
        }
        self.changed = true;
        if let Form::Inline(e) = &mut self.form {
            self.count += 1;
            self.bytes += elem_bytes(&v) as u64;
            e.insert(i as usize, v);
            return Ok(());
        }
        // Located before the count changes: the walk from the tail starts at it.
        let (p, at) = self.locate(i)?;
        self.count += 1;
        self.bytes += elem_bytes(&v) as u64;
        let slot = self.dir()?[p].slot;
        let c = self.chunk(slot)?;
        c.bytes += elem_bytes(&v);
        c.items.insert(at, v);
        self.settle_node(p)
    }

    /// Removes and returns element `i` (< len).
    pub fn remove(&mut self, i: u64) -> Result<Bytes, CmdError> {
        self.changed = true;
        let v = if let Form::Inline(e) = &mut self.form {
            e.remove(i as usize).ok_or_else(damaged)?
        } else {
            let (p, at) = self.locate(i)?;
            let slot = self.dir()?[p].slot;
            let c = self.chunk(slot)?;
            let v = c.items.remove(at).ok_or_else(damaged)?;
            c.bytes -= elem_bytes(&v);
            self.settle_node(p)?;
            v
        };
        self.count -= 1;
        self.bytes -= elem_bytes(&v) as u64;
        Ok(v)
    }

    /// Elements `start..=stop` (both < len, `start <= stop`), reading only the chunks
    /// that hold them.
    pub fn range(&mut self, start: u64, stop: u64) -> Result<Vec<Bytes>, CmdError> {
        let want = (stop - start + 1) as usize;
        if let Form::Inline(e) = &self.form {
            return Ok(e.iter().skip(start as usize).take(want).cloned().collect());
        }
        let (mut p, at) = self.locate(start)?;
        let mut out = Vec::with_capacity(want);
        let mut skip = at;
        while out.len() < want {
            let Some(slot) = self.dir()?.get(p).map(|n| n.slot) else {
                break;
            };
            let c = self.chunk(slot)?;
            out.extend(c.items.iter().skip(skip).take(want - out.len()).cloned());
            skip = 0;
            p += 1;
        }
        Ok(out)
    }

    /// Every element, head to tail.
    pub fn all(&mut self) -> Result<Vec<Bytes>, CmdError> {
        if self.count == 0 {
            return Ok(Vec::new());
        }
        self.range(0, self.count - 1)
    }

    /// Keeps elements `start..=stop` only (an empty range empties the list). Whole
    /// chunks outside the range are dropped without being read.
    pub fn trim(&mut self, start: u64, stop: u64) -> Result<(), CmdError> {
        if start > stop || start >= self.count {
            return self.clear();
        }
        let stop = stop.min(self.count - 1);
        if start == 0 && stop == self.count - 1 {
            return Ok(());
        }
        self.changed = true;
        if let Form::Inline(e) = &mut self.form {
            e.truncate(stop as usize + 1);
            e.drain(..start as usize);
            self.count = e.len() as u64;
            self.bytes = e.iter().map(|v| elem_bytes(v) as u64).sum();
            return Ok(());
        }
        // Past the tail: whole nodes after stop's go; stop's is cut.
        let (last, at_last) = self.locate(stop)?;
        let (first, at_first) = self.locate(start)?;
        let dropped: Vec<Node> = {
            let dir = self.dir()?;
            let mut d: Vec<Node> = dir.drain(last + 1..).collect();
            d.extend(dir.drain(..first));
            d
        };
        let last = last - first;
        let mut removed_bytes = 0u64;
        for n in &dropped {
            removed_bytes += n.bytes as u64;
            if let Form::Chunked {
                chunks,
                dirty,
                freed,
                ..
            } = &mut self.form
            {
                chunks.remove(&n.slot);
                dirty.remove(&n.slot);
                freed.insert(n.slot);
            }
        }
        let slot_last = self.dir()?[last].slot;
        let c = self.chunk(slot_last)?;
        for v in c.items.drain(at_last + 1..) {
            removed_bytes += elem_bytes(&v) as u64;
        }
        *c = Chunk::new(std::mem::take(&mut c.items));
        let slot_first = self.dir()?[0].slot;
        let c = self.chunk(slot_first)?;
        for v in c.items.drain(..at_first) {
            removed_bytes += elem_bytes(&v) as u64;
        }
        *c = Chunk::new(std::mem::take(&mut c.items));
        self.count = stop - start + 1;
        self.bytes -= removed_bytes;
        self.settle_node(last)?;
        if last != 0 {
            self.settle_node(0)?;
        }
        Ok(())
    }

    /// Removes every element.
    pub fn clear(&mut self) -> Result<(), CmdError> {
        self.changed = true;
        self.count = 0;
        self.bytes = 0;
        Ok(())
    }

    /// Removes up to `limit` elements equal to `v` (0: all), walking from the head
    /// or (`from_tail`) the tail; how many went. Only chunks that change are written.
    pub fn remove_equal(&mut self, v: &[u8], limit: u64, from_tail: bool) -> Result<u64, CmdError> {
        let mut gone = 0u64;
        if let Form::Inline(e) = &mut self.form {
            let idx: Vec<usize> = if from_tail {
                (0..e.len()).rev().collect()
            } else {
                (0..e.len()).collect()
            };
            let mut kill = Vec::new();
            for i in idx {
                if limit != 0 && gone == limit {
                    break;
                }
                if e[i] == v {
                    kill.push(i);
                    gone += 1;
                }
            }
            kill.sort_unstable();
            for i in kill.into_iter().rev() {
                e.remove(i);
            }
        } else {
            let n = self.dir()?.len();
            let order: Vec<usize> = if from_tail {
                (0..n).rev().collect()
            } else {
                (0..n).collect()
            };
            // Nodes change only after the walk, so positions stay valid during it.
            let mut changed = Vec::new();
            for p in order {
                if limit != 0 && gone == limit {
                    break;
                }
                let slot = self.dir()?[p].slot;
                let c = self.chunk(slot)?;
                let before = c.items.len();
                let mut left = if limit == 0 { u64::MAX } else { limit - gone };
                let mut keep: VecDeque<Bytes> = VecDeque::with_capacity(before);
                let items: Vec<Bytes> = c.items.drain(..).collect();
                let walk: Box<dyn Iterator<Item = Bytes>> = if from_tail {
                    Box::new(items.into_iter().rev())
                } else {
                    Box::new(items.into_iter())
                };
                for x in walk {
                    if left > 0 && x == v {
                        left -= 1;
                    } else if from_tail {
                        keep.push_front(x);
                    } else {
                        keep.push_back(x);
                    }
                }
                let removed = before - keep.len();
                *c = Chunk::new(keep);
                if removed > 0 {
                    gone += removed as u64;
                    changed.push(p);
                }
            }
            changed.sort_unstable();
            for p in changed.into_iter().rev() {
                self.settle_node(p)?;
            }
        }
        if gone > 0 {
            self.count -= gone;
            self.bytes -= gone * elem_bytes(v) as u64;
            self.changed = true;
        }
        Ok(gone)
    }

    /// Writes the changes as one atomic change of the log (removing the key once it
    /// has no elements).
    pub fn commit(mut self) -> Result<(), CmdError> {
        if !self.changed {
            return Ok(());
        }
        if self.count == 0 {
            if self.exists {
                self.ks.delete(self.key)?;
            }
            return Ok(());
        }
        self.reshape()?;
        let mut root = Vec::new();
        let mut bodies: Vec<(u32, Option<Vec<u8>>)> = Vec::new();
        let family = match &self.form {
            Form::Inline(e) => {
                root.push(0);
                root.extend_from_slice(&(e.len() as u32).to_le_bytes());
                encode_elems(&mut root, e.iter());
                None
            }
            Form::Chunked {
                family,
                dir,
                chunks,
                dirty,
                freed,
            } => {
                root.push(1);
                root.extend_from_slice(&self.count.to_le_bytes());
                root.extend_from_slice(&self.bytes.to_le_bytes());
                for n in dir {
                    root.extend_from_slice(&n.slot.to_le_bytes());
                    root.extend_from_slice(&n.count.to_le_bytes());
                    root.extend_from_slice(&n.bytes.to_le_bytes());
                }
                let top = dir.iter().map(|n| n.slot + 1).max().unwrap_or(0);
                for &s in dirty {
                    let mut b = Vec::new();
                    encode_elems(&mut b, chunks[&s].items.iter());
                    bodies.push((s, Some(b)));
                }
                // A freed number below the new count is a hole: its record is removed.
                // One past it goes with the family's shrinking count.
                for &s in freed.iter().filter(|&&s| s < top && !dirty.contains(&s)) {
                    bodies.push((s, None));
                }
                Some(Family::new(family.version, top))
            }
        };
        let exp = self.expire_at_ms;
        super::write_change(
            self.ks,
            self.key,
            ValueType::List,
            &root,
            family,
            exp,
            &bodies,
        )
    }

    /// Moves between the inline and chunked forms, and merges a changed small chunk
    /// into its successor when both fit one.
    fn reshape(&mut self) -> Result<(), CmdError> {
        let bytes = self.bytes as usize;
        match &mut self.form {
            Form::Inline(e) if bytes > INLINE_MAX => {
                let elems = std::mem::take(e);
                let mut dir = Vec::new();
                let mut chunks = HashMap::new();
                let mut cur = VecDeque::new();
                let mut cur_bytes = 0;
                for v in elems {
                    if cur_bytes + elem_bytes(&v) > CHUNK_TARGET && !cur.is_empty() {
                        let slot = dir.len() as u32;
                        let c = Chunk::new(std::mem::take(&mut cur));
                        dir.push(Node {
                            slot,
                            count: c.items.len() as u32,
                            bytes: c.bytes as u32,
                        });
                        chunks.insert(slot, c);
                        cur_bytes = 0;
                    }
                    cur_bytes += elem_bytes(&v);
                    cur.push_back(v);
                }
                if !cur.is_empty() {
                    let slot = dir.len() as u32;
                    let c = Chunk::new(cur);
                    dir.push(Node {
                        slot,
                        count: c.items.len() as u32,
                        bytes: c.bytes as u32,
                    });
                    chunks.insert(slot, c);
                }
                self.form = Form::Chunked {
                    family: Family::new(Family::new_version(), dir.len() as u32),
                    dirty: (0..dir.len() as u32).collect(),
                    dir,
                    chunks,
                    freed: BTreeSet::new(),
                };
            }
            Form::Chunked { .. } if bytes <= INLINE_MAX / 4 => {
                let all = self.all()?;
                self.form = Form::Inline(all.into());
            }
            Form::Chunked { dirty, .. } => {
                let small: Vec<u32> = dirty.iter().copied().collect();
                for slot in small {
                    self.merge_forward(slot)?;
                }
            }
            Form::Inline(_) => {}
        }
        Ok(())
    }

    /// Merges chunk `slot` (if still a node and small) with the next node when the
    /// two fit in one chunk.
    fn merge_forward(&mut self, slot: u32) -> Result<(), CmdError> {
        let Some(p) = self.dir()?.iter().position(|n| n.slot == slot) else {
            return Ok(());
        };
        let dir = self.dir()?;
        let (here, Some(&next)) = (dir[p], dir.get(p + 1)) else {
            return Ok(());
        };
        if here.bytes as usize > CHUNK_TARGET / 4
            || (here.bytes + next.bytes) as usize > CHUNK_TARGET
        {
            return Ok(());
        }
        let next = next.slot;
        let moved = std::mem::take(&mut self.chunk(next)?.items);
        let c = self.chunk(slot)?;
        c.items.extend(moved);
        *c = Chunk::new(std::mem::take(&mut c.items));
        self.chunk(next)?.bytes = 0;
        self.settle_node(p + 1)?;
        self.settle_node(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(ks: &Keyspace<'_>, f: impl FnOnce(&mut Listed<'_, '_>)) {
        let mut l = Listed::open(ks, b"l").expect("open");
        f(&mut l);
        l.commit().expect("commit");
    }

    fn check(ks: &Keyspace<'_>, model: &VecDeque<Bytes>) {
        let mut l = Listed::open(ks, b"l").expect("open");
        assert_eq!(l.len(), model.len() as u64);
        let all = l.all().expect("all");
        let first_bad = all.iter().zip(model.iter()).position(|(a, b)| a != b);
        assert!(
            all.len() == model.len() && first_bad.is_none(),
            "{} elements for {}; first difference at {first_bad:?}",
            all.len(),
            model.len()
        );
        for i in [0, model.len() / 2, model.len().saturating_sub(1)] {
            assert_eq!(l.get(i as u64).expect("get").as_ref(), model.get(i));
        }
    }

    #[test]
    fn a_list_grows_into_chunks_changes_anywhere_and_shrinks_against_a_model() {
        let (_d, store) = crate::store::testing::store();
        let ks = Keyspace::new(&store, 0);
        let mut model: VecDeque<Bytes> = VecDeque::new();
        let val = |i: u32| Bytes::from(format!("{i}:{}", "v".repeat(i as usize % 30)));
        for i in 0..4000u32 {
            let front = i % 3 == 0;
            change(&ks, |l| l.push(front, val(i)).expect("push"));
            if front {
                model.push_front(val(i))
            } else {
                model.push_back(val(i))
            }
        }
        assert!(store.engine.stats().chunks > 20);
        check(&ks, &model);
        // Changes in the middle: sets, inserts, removals.
        for k in 0..300u64 {
            let i = (k * 7919) % model.len() as u64;
            change(&ks, |l| match k % 3 {
                0 => l.set(i, val(k as u32 + 9000)).expect("set"),
                1 => l.insert(i, val(k as u32 + 5000)).expect("insert"),
                _ => {
                    l.remove(i).expect("remove");
                }
            });
            match k % 3 {
                0 => model[i as usize] = val(k as u32 + 9000),
                1 => model.insert(i as usize, val(k as u32 + 5000)),
                _ => {
                    model.remove(i as usize);
                }
            }
        }
        check(&ks, &model);
        let mut l = Listed::open(&ks, b"l").expect("open");
        assert_eq!(
            l.range(100, 1999).expect("range"),
            model.range(100..2000).cloned().collect::<Vec<_>>()
        );
        // Every "0:" element, from the tail, at most 3.
        let target = val(0);
        let want = model.iter().filter(|v| **v == target).count().min(3);
        change(&ks, |l| {
            assert_eq!(l.remove_equal(&target, 3, true).expect("rem"), want as u64)
        });
        for _ in 0..want {
            let at = model.iter().rposition(|v| *v == target).expect("present");
            model.remove(at);
        }
        check(&ks, &model);
        change(&ks, |l| l.trim(500, 2500).expect("trim"));
        model = model.range(500..=2500).cloned().collect();
        check(&ks, &model);
        // Pops from both ends down to a few: back to one record.
        while model.len() > 20 {
            let front = model.len().is_multiple_of(2);
            change(&ks, |l| {
                let got = l.pop(front).expect("pop");
                let want = if front {
                    model.pop_front()
                } else {
                    model.pop_back()
                };
                assert_eq!(got, want);
            });
        }
        assert_eq!(store.engine.stats().chunks, 0, "20 elements fit one record");
        check(&ks, &model);
        change(&ks, |l| l.trim(5, 1).expect("trim"));
        assert!(!ks.exists(b"l").expect("exists"), "an empty list is no key");
    }
}
