//! A list on the log: one record while small; past [`INLINE_MAX`] bytes, a chain of
//! chunks of about [`CHUNK_TARGET`] bytes under a directory of two levels: the root
//! lists pages, and each page (a chunk) lists up to [`PAGE_MAX`] chunks in order with
//! their counts. A push or pop rewrites one chunk, its page and the root; an index
//! finds its page from the root's counts and its chunk from the page's, reading no
//! other; pages are read only where a command reaches them.
//!
//! | root value (inline)  | size | meaning                                        |
//! |----------------------|-----:|------------------------------------------------|
//! | form                 |    1 | 0: inline                                      |
//! | count                |    4 | elements, little-endian                        |
//! | elements             |    … | each: length (4) · bytes                       |
//!
//! | root value (chunked) | size | meaning                                        |
//! |----------------------|-----:|------------------------------------------------|
//! | form                 |    1 | 2: chunked, paged directory                    |
//! | count                |    8 | elements                                       |
//! | bytes                |    8 | encoded bytes of every element                 |
//! | numbers              |    4 | one past the highest chunk number in use (the family's count) |
//! | free                 |    … | count (4) · chunk numbers below it not in use (4 each) |
//! | pages                |    … | head to tail: page's chunk number (4) · chunks (4) · elements (8) · bytes (8) |
//!
//! A page's value is its chunks, head to tail: chunk number (4) · elements (4) ·
//! bytes (4). A chunk's value is its elements, encoded as above. Form 1 (written
//! before pages existed) is the chunked root with the whole directory in it, as one
//! page's value after count and bytes; it is read, and written back paged. A number
//! freed below the family's count gets a removed record, so a restart cannot bring it
//! back.

use super::NumMap;
use super::hashed::INLINE_MAX;
use super::{Numbers, le_u32, le_u64, prefixed, push_removals, take_prefixed};
use crate::cmd::CmdError;
use crate::keyspace::Keyspace;
use bytes::{Buf, Bytes};
use caskade_engine::{Family, Item, ValueType};
use std::collections::{BTreeSet, VecDeque};

/// A chunk past this many bytes takes no more pushes; one past twice this is split.
const CHUNK_TARGET: usize = 1 << 10;
/// A page holds at most this many chunks (past it, it splits at the next write).
const PAGE_MAX: usize = 64;
/// The page tag of chunks no page holds yet.
const NEW_PAGE: u32 = u32::MAX;

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

/// One record's elements as stored, one by one from element `skip` (those before it
/// are stepped over by their lengths, not sliced).
fn raw_elems(b: &Bytes, skip: usize) -> impl Iterator<Item = Result<Bytes, CmdError>> + '_ {
    let mut at = 0usize;
    let mut skip = skip;
    std::iter::from_fn(move || {
        while skip > 0 && at < b.len() {
            skip -= 1;
            if prefixed(b, &mut at).is_none() {
                at = b.len();
                return Some(Err(damaged()));
            }
        }
        if at >= b.len() {
            return None;
        }
        let e = take_prefixed(b, &mut at).ok_or_else(damaged);
        if e.is_err() {
            at = b.len();
        }
        Some(e)
    })
}

fn decode_elems(b: &Bytes) -> Result<VecDeque<Bytes>, CmdError> {
    let mut out = VecDeque::new();
    let mut at = 0usize;
    while at < b.len() {
        out.push_back(take_prefixed(b, &mut at).ok_or_else(damaged)?);
    }
    Ok(out)
}

/// One chunk in the directory: its number, how many elements it holds, their encoded
/// bytes (so trims, merges and pushes decide without reading it), and the page that
/// lists it (in memory only).
#[derive(Debug, Clone, Copy)]
struct Node {
    slot: u32,
    count: u32,
    bytes: u32,
    page: u32,
}

/// Bytes of one node in a page.
const NODE_BYTES: usize = 12;

/// A page not read yet: where it is and what it holds.
#[derive(Debug, Clone, Copy)]
struct Page {
    slot: u32,
    nodes: u32,
    count: u64,
    bytes: u64,
}

/// Bytes of one page in the root.
const PAGE_BYTES: usize = 24;

/// The directory in memory: chunks of the pages read, and pages not read.
#[derive(Debug, Clone, Copy)]
enum Entry {
    Node(Node),
    Page(Page),
}

impl Entry {
    fn count(&self) -> u64 {
        match self {
            Entry::Node(n) => u64::from(n.count),
            Entry::Page(p) => p.count,
        }
    }
}

/// The chunks a page (or a form-1 root) lists as stored in `b`, in order, tagged with
/// `page`.
fn stored_nodes(
    b: &[u8],
    page: u32,
) -> Result<impl DoubleEndedIterator<Item = Node> + ExactSizeIterator + Clone + '_, CmdError> {
    if !b.len().is_multiple_of(NODE_BYTES) {
        return Err(damaged());
    }
    Ok(b.chunks_exact(NODE_BYTES).map(move |n| Node {
        slot: le_u32(n, 0).unwrap_or_default(),
        count: le_u32(n, 4).unwrap_or_default(),
        bytes: le_u32(n, 8).unwrap_or_default(),
        page,
    }))
}

fn decode_nodes(b: &[u8], page: u32) -> Result<Vec<Node>, CmdError> {
    Ok(stored_nodes(b, page)?.collect())
}

/// The chunks page `page` lists as stored in `b`, checked against what the root says
/// the page holds (read in place or put in the directory alike).
fn page_nodes<'b>(
    b: &'b [u8],
    page: &Page,
) -> Result<impl DoubleEndedIterator<Item = Node> + ExactSizeIterator + Clone + 'b, CmdError> {
    let nodes = stored_nodes(b, page.slot)?;
    if nodes.len() != page.nodes as usize
        || nodes.clone().map(|n| u64::from(n.count)).sum::<u64>() != page.count
    {
        return Err(damaged());
    }
    Ok(nodes)
}

/// Which of consecutive runs of `counts` elements (`total` in all) holds index `i`
/// (< `total`), and the index within it, walked from whichever end is nearer: an index
/// near the tail walks few runs.
fn run_at(
    counts: impl DoubleEndedIterator<Item = u64> + ExactSizeIterator,
    total: u64,
    i: u64,
) -> Result<(usize, u64), CmdError> {
    if i < total / 2 {
        let mut at = 0u64;
        for (k, n) in counts.enumerate() {
            if i < at + n {
                return Ok((k, i - at));
            }
            at += n;
        }
    } else {
        let mut end = total;
        for (k, n) in counts.enumerate().rev() {
            let start = end.checked_sub(n).ok_or_else(damaged)?;
            if i >= start {
                return Ok((k, i - start));
            }
            end = start;
        }
    }
    Err(damaged())
}

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

/// A chunked list's state while a command works on it.
struct Chunked {
    family: Family,
    /// The directory; empty while `raw_pages` holds it.
    dir: Vec<Entry>,
    /// The root's pages as stored, until a change needs them in `dir`: a read walks
    /// them in place (decoding a long list's pages cost half of an LINDEX).
    raw_pages: Option<Bytes>,
    chunks: NumMap<Chunk>,
    /// Chunks rewritten by this change.
    dirty: BTreeSet<u32>,
    /// Pages (by tag) whose chunks changed.
    dirty_pages: BTreeSet<u32>,
    /// Pages the list had when read: one no longer there at commit is freed.
    known_pages: Vec<u32>,
    /// Numbers freed by this change (their records go unless reused).
    freed: BTreeSet<u32>,
    /// The chunk numbers in use (chunks and pages).
    numbers: Numbers,
}

impl Chunked {
    /// Puts the pages as stored in the directory.
    fn decode_pages(&mut self) {
        let Some(pages) = self.raw_pages.take() else {
            return;
        };
        let n = pages.len() / PAGE_BYTES;
        self.dir.reserve(n);
        self.known_pages.reserve(n);
        for b in pages.chunks_exact(PAGE_BYTES) {
            let page = parse_page(b);
            self.known_pages.push(page.slot);
            self.dir.push(Entry::Page(page));
        }
    }

    /// Entries in the directory.
    fn len(&self) -> usize {
        match &self.raw_pages {
            Some(b) => b.len() / PAGE_BYTES,
            None => self.dir.len(),
        }
    }

    /// Directory entry `p`.
    fn entry(&self, p: usize) -> Option<Entry> {
        match &self.raw_pages {
            Some(b) => b
                .get(p * PAGE_BYTES..(p + 1) * PAGE_BYTES)
                .map(|b| Entry::Page(parse_page(b))),
            None => self.dir.get(p).copied(),
        }
    }

    /// Elements under directory entry `p` (< `len`).
    fn count_at(&self, p: usize) -> u64 {
        match &self.raw_pages {
            Some(b) => le_u64(b, p * PAGE_BYTES + 8).unwrap_or_default(),
            None => self.dir[p].count(),
        }
    }

    fn alloc(&mut self) -> u32 {
        let n = self.numbers.take();
        self.freed.remove(&n);
        n
    }

    fn release(&mut self, n: u32) {
        self.chunks.remove(&n);
        self.dirty.remove(&n);
        self.freed.insert(n);
        self.numbers.give_back(n);
    }

    fn node(&self, p: usize) -> Result<Node, CmdError> {
        match self.dir.get(p) {
            Some(Entry::Node(n)) => Ok(*n),
            _ => Err(damaged()),
        }
    }

    fn node_mut(&mut self, p: usize) -> Result<&mut Node, CmdError> {
        match self.dir.get_mut(p) {
            Some(Entry::Node(n)) => Ok(n),
            _ => Err(damaged()),
        }
    }

    /// The directory entry holding index `i` of a list of `count` (`i < count`) and
    /// the index within it, walked from whichever end is nearer: an index near the
    /// tail walks few entries.
    fn entry_at(&self, i: u64, count: u64) -> Result<(usize, u64), CmdError> {
        run_at((0..self.len()).map(|p| self.count_at(p)), count, i)
    }

    /// Appends to `out` up to `want` elements of chunk `slot` from its element `skip`
    /// on: from the chunk decoded if this command has it, else read in place (a read
    /// decodes no chunk and keeps none).
    fn take_from(
        &self,
        ks: &Keyspace<'_>,
        key: &[u8],
        slot: u32,
        skip: usize,
        want: usize,
        out: &mut Vec<Bytes>,
    ) -> Result<(), CmdError> {
        let room = want.saturating_sub(out.len());
        if let Some(c) = self.chunks.get(&slot) {
            out.extend(c.items.iter().skip(skip).take(room).cloned());
            return Ok(());
        }
        let b = ks.chunk(key, self.family, slot)?.ok_or_else(damaged)?;
        for e in raw_elems(&b, skip).take(room) {
            out.push(e?);
        }
        Ok(())
    }
}

/// A page's entry in the root as stored ([`PAGE_BYTES`] bytes).
fn parse_page(b: &[u8]) -> Page {
    Page {
        slot: le_u32(b, 0).unwrap_or_default(),
        nodes: le_u32(b, 4).unwrap_or_default(),
        count: le_u64(b, 8).unwrap_or_default(),
        bytes: le_u64(b, 16).unwrap_or_default(),
    }
}

enum Form {
    /// One record's elements as read: indexes and ranges are read in place, and the
    /// first change decodes them (decoding every element of a small list for an
    /// LINDEX cost a reference count each).
    Raw(Bytes),
    Inline(VecDeque<Bytes>),
    Chunked(Box<Chunked>),
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
                l.count = u64::from(le_u32(v, 1).ok_or_else(damaged)?);
                l.bytes = (v.len() - 5) as u64;
                // Moved past the header, not sliced (see `Hashed::from_item`).
                let mut raw = item.value;
                raw.advance(5);
                l.form = Form::Raw(raw);
            }
            Some(1) => {
                // The directory of one level: every chunk in the root, on no page yet.
                l.count = le_u64(v, 1).ok_or_else(damaged)?;
                l.bytes = le_u64(v, 9).ok_or_else(damaged)?;
                let nodes = decode_nodes(v.get(17..).ok_or_else(damaged)?, NEW_PAGE)?;
                let family = Family::decode(&item.meta).ok_or_else(damaged)?;
                let used: BTreeSet<u32> = nodes.iter().map(|n| n.slot).collect();
                l.form = Form::Chunked(Box::new(Chunked {
                    numbers: Numbers::from_used(&used, family.chunks),
                    family,
                    dir: nodes.into_iter().map(Entry::Node).collect(),
                    raw_pages: None,
                    chunks: NumMap::default(),
                    dirty: BTreeSet::new(),
                    dirty_pages: BTreeSet::from([NEW_PAGE]),
                    known_pages: Vec::new(),
                    freed: BTreeSet::new(),
                }));
            }
            Some(2) => {
                l.count = le_u64(v, 1).ok_or_else(damaged)?;
                l.bytes = le_u64(v, 9).ok_or_else(damaged)?;
                let mut at = 17usize;
                let numbers = Numbers::decode(v, &mut at).ok_or_else(damaged)?;
                if at > v.len() || !(v.len() - at).is_multiple_of(PAGE_BYTES) {
                    return Err(damaged());
                }
                let family = Family::decode(&item.meta).ok_or_else(damaged)?;
                let mut pages = item.value;
                pages.advance(at);
                l.form = Form::Chunked(Box::new(Chunked {
                    family,
                    dir: Vec::new(),
                    raw_pages: Some(pages),
                    chunks: NumMap::default(),
                    dirty: BTreeSet::new(),
                    dirty_pages: BTreeSet::new(),
                    known_pages: Vec::new(),
                    freed: BTreeSet::new(),
                    numbers,
                }));
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
        let mut l = Listed::from_item(ks, key, None)?;
        l.count = elems.len() as u64;
        l.bytes = elems.iter().map(|e| elem_bytes(e) as u64).sum();
        l.exists = !elems.is_empty();
        l.changed = true;
        l.form = Form::Inline(elems.into());
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

    /// The chunked state, its directory decoded (for a change).
    fn ch(&mut self) -> Result<&mut Chunked, CmdError> {
        match &mut self.form {
            Form::Chunked(c) => {
                c.decode_pages();
                Ok(c)
            }
            Form::Raw(_) | Form::Inline(_) => Err(damaged()),
        }
    }

    /// The chunked state as read (for a read: pages may still be as stored).
    fn chunked(&self) -> Result<&Chunked, CmdError> {
        match &self.form {
            Form::Chunked(c) => Ok(c),
            Form::Raw(_) | Form::Inline(_) => Err(damaged()),
        }
    }

    /// Chunk `slot`, read on first use.
    fn chunk(&mut self, slot: u32) -> Result<&mut Chunk, CmdError> {
        let (ks, key) = (self.ks, self.key);
        let c = self.ch()?;
        match c.chunks.entry(slot) {
            std::collections::hash_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(e) => {
                let items = match ks.chunk(key, c.family, slot)? {
                    Some(b) => decode_elems(&b)?,
                    None => return Err(damaged()),
                };
                Ok(e.insert(Chunk::new(items)))
            }
        }
    }

    /// Reads the page at directory position `p`, if it is one, putting its chunks in
    /// its place.
    fn expand(&mut self, p: usize) -> Result<(), CmdError> {
        let (ks, key) = (self.ks, self.key);
        let c = self.ch()?;
        let Some(Entry::Page(page)) = c.dir.get(p).copied() else {
            return Ok(());
        };
        let b = ks.chunk(key, c.family, page.slot)?.ok_or_else(damaged)?;
        let nodes: Vec<Node> = page_nodes(&b, &page)?.collect();
        c.dir.splice(p..=p, nodes.into_iter().map(Entry::Node));
        Ok(())
    }

    /// Reads every page.
    fn expand_all(&mut self) -> Result<(), CmdError> {
        let mut p = 0;
        while p < self.ch()?.dir.len() {
            self.expand(p)?;
            p += 1;
        }
        Ok(())
    }

    /// The chunk holding index `i` (< len) and the index within it, reading only the
    /// page that lists it.
    fn locate(&mut self, i: u64) -> Result<(usize, usize), CmdError> {
        let count = self.count;
        loop {
            let c = self.ch()?;
            let (p, at) = c.entry_at(i, count)?;
            match c.dir[p] {
                Entry::Page(_) => self.expand(p)?,
                Entry::Node(_) => return Ok((p, at as usize)),
            }
        }
    }

    /// The chunk holding index `i` (< len) and the index within it, for a read: a
    /// page not read yet is looked through as stored, not put in the directory.
    fn find(&self, i: u64) -> Result<(u32, usize), CmdError> {
        let (ks, key, count) = (self.ks, self.key, self.count);
        let c = self.chunked()?;
        let (p, within) = c.entry_at(i, count)?;
        let page = match c.entry(p).ok_or_else(damaged)? {
            Entry::Node(n) => return Ok((n.slot, within as usize)),
            Entry::Page(page) => page,
        };
        let b = ks.chunk(key, c.family, page.slot)?.ok_or_else(damaged)?;
        let mut nodes = page_nodes(&b, &page)?;
        let (k, at) = run_at(
            nodes.clone().map(|n| u64::from(n.count)),
            page.count,
            within,
        )?;
        let node = nodes.nth(k).ok_or_else(damaged)?;
        Ok((node.slot, at as usize))
    }

    fn touched(&mut self, slot: u32) {
        if let Form::Chunked(c) = &mut self.form {
            c.dirty.insert(slot);
        }
        self.changed = true;
    }

    /// A new, empty chunk at position `p` of the directory, on page `page`.
    fn new_node(&mut self, p: usize, page: u32) -> Result<u32, CmdError> {
        let c = self.ch()?;
        let slot = c.alloc();
        c.dir.insert(
            p,
            Entry::Node(Node {
                slot,
                count: 0,
                bytes: 0,
                page,
            }),
        );
        c.chunks.insert(slot, Chunk::new(VecDeque::new()));
        c.dirty_pages.insert(page);
        self.touched(slot);
        Ok(slot)
    }

    /// Records that the chunk at `p` gained or lost elements; drops it when empty,
    /// splits it when it has grown past twice the target.
    fn settle_node(&mut self, p: usize) -> Result<(), CmdError> {
        let node = self.ch()?.node(p)?;
        let slot = node.slot;
        let (len, bytes) = {
            let c = self.chunk(slot)?;
            (c.items.len(), c.bytes)
        };
        {
            let c = self.ch()?;
            let n = c.node_mut(p)?;
            n.count = len as u32;
            n.bytes = bytes as u32;
            c.dirty_pages.insert(node.page);
        }
        self.touched(slot);
        if len == 0 {
            let c = self.ch()?;
            c.dir.remove(p);
            c.release(slot);
        } else if bytes > 2 * CHUNK_TARGET && len > 1 {
            let tail = {
                let c = self.chunk(slot)?;
                let tail = c.items.split_off(len / 2);
                *c = Chunk::new(std::mem::take(&mut c.items));
                tail
            };
            let new = self.new_node(p + 1, node.page)?;
            let tail = Chunk::new(tail);
            let (n, tail_bytes) = (tail.items.len() as u32, tail.bytes as u32);
            *self.chunk(new)? = tail;
            let c = self.ch()?;
            let here = c.node_mut(p)?;
            here.count = (len / 2) as u32;
            here.bytes = bytes as u32 - tail_bytes;
            let next = c.node_mut(p + 1)?;
            next.count = n;
            next.bytes = tail_bytes;
        }
        Ok(())
    }

    /// One record's elements decoded, for a change.
    fn decode(&mut self) -> Result<(), CmdError> {
        if let Form::Raw(b) = &self.form {
            self.form = Form::Inline(decode_elems(b)?);
        }
        Ok(())
    }

    /// Adds `v` at the head (`front`) or the tail.
    pub fn push(&mut self, front: bool, v: Bytes) -> Result<(), CmdError> {
        self.decode()?;
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
        // The end chunk, its page read first.
        let n = self.ch()?.dir.len();
        if n > 0 {
            self.expand(if front { 0 } else { n - 1 })?;
        }
        let n = self.ch()?.dir.len();
        let end = if front { 0 } else { n.saturating_sub(1) };
        let end_node = self.ch()?.node(end).ok();
        let full = match end_node {
            None => true,
            Some(node) => node.bytes as usize + elem_bytes(&v) > CHUNK_TARGET,
        };
        let p = if full {
            let page = end_node.map_or(NEW_PAGE, |n| n.page);
            let p = if front { 0 } else { n };
            self.new_node(p, page)?;
            p
        } else {
            end
        };
        let slot = self.ch()?.node(p)?.slot;
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
        match &self.form {
            Form::Raw(b) => return raw_elems(b, i as usize).next().transpose(),
            Form::Inline(e) => return Ok(e.get(i as usize).cloned()),
            Form::Chunked(_) => {}
        }
        let (slot, at) = self.find(i)?;
        let (ks, key) = (self.ks, self.key);
        let mut out = Vec::with_capacity(1);
        self.chunked()?.take_from(ks, key, slot, at, 1, &mut out)?;
        out.pop().map(Some).ok_or_else(damaged)
    }

    /// Replaces element `i` (< len).
    pub fn set(&mut self, i: u64, v: Bytes) -> Result<(), CmdError> {
        self.decode()?;
        self.changed = true;
        if let Form::Inline(e) = &mut self.form {
            let old = e.get_mut(i as usize).ok_or_else(damaged)?;
            self.bytes = self.bytes + v.len() as u64 - old.len() as u64;
            *old = v;
            return Ok(());
        }
        let (p, at) = self.locate(i)?;
        let slot = self.ch()?.node(p)?.slot;
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
        self.decode()?;
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
        let slot = self.ch()?.node(p)?.slot;
        let c = self.chunk(slot)?;
        c.bytes += elem_bytes(&v);
        c.items.insert(at, v);
        self.settle_node(p)
    }

    /// Removes and returns element `i` (< len).
    pub fn remove(&mut self, i: u64) -> Result<Bytes, CmdError> {
        self.decode()?;
        self.changed = true;
        let v = if let Form::Inline(e) = &mut self.form {
            e.remove(i as usize).ok_or_else(damaged)?
        } else {
            let (p, at) = self.locate(i)?;
            let slot = self.ch()?.node(p)?.slot;
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

    /// Elements `start..=stop` (both < len, `start <= stop`), reading only the pages
    /// and chunks that hold them.
    pub fn range(&mut self, start: u64, stop: u64) -> Result<Vec<Bytes>, CmdError> {
        let want = (stop - start + 1) as usize;
        match &self.form {
            Form::Raw(b) => {
                return raw_elems(b, start as usize).take(want).collect();
            }
            Form::Inline(e) => {
                return Ok(e.iter().skip(start as usize).take(want).cloned().collect());
            }
            Form::Chunked(_) => {}
        }
        let (ks, key, count) = (self.ks, self.key, self.count);
        let c = self.chunked()?;
        let (mut p, mut skip) = c.entry_at(start, count)?;
        let mut out = Vec::with_capacity(want.min(1 << 16));
        // Pages are looked through as stored and chunks read in place: a range
        // decodes nothing it does not answer with.
        while out.len() < want && p < c.len() {
            match c.entry(p).ok_or_else(damaged)? {
                Entry::Node(n) => c.take_from(ks, key, n.slot, skip as usize, want, &mut out)?,
                Entry::Page(page) => {
                    let b = ks.chunk(key, c.family, page.slot)?.ok_or_else(damaged)?;
                    for node in page_nodes(&b, &page)? {
                        if out.len() >= want {
                            break;
                        }
                        let n = u64::from(node.count);
                        if skip >= n {
                            skip -= n;
                            continue;
                        }
                        c.take_from(ks, key, node.slot, skip as usize, want, &mut out)?;
                        skip = 0;
                    }
                }
            }
            skip = 0;
            p += 1;
        }
        if out.len() < want && start + (out.len() as u64) < count {
            return Err(damaged());
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
    /// chunks outside the range are dropped without being read (their pages are read
    /// for their numbers).
    pub fn trim(&mut self, start: u64, stop: u64) -> Result<(), CmdError> {
        if start > stop || start >= self.count {
            return self.clear();
        }
        let stop = stop.min(self.count - 1);
        if start == 0 && stop == self.count - 1 {
            return Ok(());
        }
        self.decode()?;
        self.changed = true;
        if let Form::Inline(e) = &mut self.form {
            e.truncate(stop as usize + 1);
            e.drain(..start as usize);
            self.count = e.len() as u64;
            self.bytes = e.iter().map(|v| elem_bytes(v) as u64).sum();
            return Ok(());
        }
        // Past the tail: whole entries after stop's go; stop's chunk is cut.
        // Both ends' pages read first; `start`'s may come before `stop`'s and move
        // it, so `stop` is found again (its page is read by then: nothing moves).
        self.locate(stop)?;
        let (first, at_first) = self.locate(start)?;
        let (last, at_last) = self.locate(stop)?;
        let (ks, key) = (self.ks, self.key);
        let c = self.ch()?;
        let mut dropped: Vec<Entry> = c.dir.drain(last + 1..).collect();
        dropped.extend(c.dir.drain(..first));
        let last = last - first;
        let mut removed_bytes = 0u64;
        for e in dropped {
            match e {
                Entry::Node(n) => {
                    removed_bytes += u64::from(n.bytes);
                    c.dirty_pages.insert(n.page);
                    c.release(n.slot);
                }
                Entry::Page(page) => {
                    removed_bytes += page.bytes;
                    let b = ks.chunk(key, c.family, page.slot)?.ok_or_else(damaged)?;
                    for n in decode_nodes(&b, page.slot)? {
                        c.release(n.slot);
                    }
                }
            }
        }
        let slot_last = c.node(last)?.slot;
        let ch = self.chunk(slot_last)?;
        for v in ch.items.drain(at_last + 1..) {
            removed_bytes += elem_bytes(&v) as u64;
        }
        *ch = Chunk::new(std::mem::take(&mut ch.items));
        let slot_first = self.ch()?.node(0)?.slot;
        let ch = self.chunk(slot_first)?;
        for v in ch.items.drain(..at_first) {
            removed_bytes += elem_bytes(&v) as u64;
        }
        *ch = Chunk::new(std::mem::take(&mut ch.items));
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
        // Whatever follows in this change starts from no elements (the old record and
        // chunks go with the root's next write).
        self.form = Form::Inline(VecDeque::new());
        Ok(())
    }

    /// Removes up to `limit` elements equal to `v` (0: all), walking from the head
    /// or (`from_tail`) the tail; how many went. Only chunks that change are written.
    pub fn remove_equal(&mut self, v: &[u8], limit: u64, from_tail: bool) -> Result<u64, CmdError> {
        let mut gone = 0u64;
        self.decode()?;
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
            self.expand_all()?;
            let n = self.ch()?.dir.len();
            let order: Vec<usize> = if from_tail {
                (0..n).rev().collect()
            } else {
                (0..n).collect()
            };
            // Chunks change only after the walk, so positions stay valid during it.
            let mut changed = Vec::new();
            for p in order {
                if limit != 0 && gone == limit {
                    break;
                }
                let slot = self.ch()?.node(p)?.slot;
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
        if let Form::Chunked(c) = &mut self.form {
            c.decode_pages();
        }
        if self.count == 0 {
            if self.exists {
                self.ks.delete(self.key)?;
            }
            return Ok(());
        }
        self.reshape()?;
        let mut root = Vec::with_capacity(
            17 + match &self.form {
                Form::Raw(b) => b.len(),
                Form::Inline(_) => self.bytes as usize,
                Form::Chunked(c) => c.numbers.encoded_len() + c.dir.len() * PAGE_BYTES,
            },
        );
        let mut bodies: Vec<(u32, Option<Vec<u8>>)> = Vec::new();
        let family = match &mut self.form {
            Form::Raw(b) => {
                root.push(0);
                root.extend_from_slice(&(self.count as u32).to_le_bytes());
                root.extend_from_slice(b);
                None
            }
            Form::Inline(e) => {
                root.push(0);
                root.extend_from_slice(&(e.len() as u32).to_le_bytes());
                encode_elems(&mut root, e.iter());
                None
            }
            Form::Chunked(c) => {
                let pages = c.paginate(&mut bodies);
                for &s in &c.dirty {
                    let chunk = c.chunks.get(&s).ok_or_else(damaged)?;
                    let mut b = Vec::with_capacity(chunk.bytes);
                    encode_elems(&mut b, chunk.items.iter());
                    bodies.push((s, Some(b)));
                }
                push_removals(&mut bodies, &c.freed, c.numbers.hi());
                root.push(2);
                root.extend_from_slice(&self.count.to_le_bytes());
                root.extend_from_slice(&self.bytes.to_le_bytes());
                c.numbers.encode(&mut root);
                for p in pages {
                    root.extend_from_slice(&p.slot.to_le_bytes());
                    root.extend_from_slice(&p.nodes.to_le_bytes());
                    root.extend_from_slice(&p.count.to_le_bytes());
                    root.extend_from_slice(&p.bytes.to_le_bytes());
                }
                Some(Family::new(c.family.version, c.numbers.hi()))
            }
        };
        let exp = self.expire_at_ms;
        super::write_change(
            self.ks,
            self.key,
            ValueType::List,
            &root,
            None,
            family,
            exp,
            &bodies,
        )
    }

    /// Moves between the inline and chunked forms, and merges a changed small chunk
    /// into its successor when both fit one.
    fn reshape(&mut self) -> Result<(), CmdError> {
        let bytes = self.bytes as usize;
        if bytes > INLINE_MAX {
            self.decode()?;
        }
        match &mut self.form {
            Form::Inline(e) if bytes > INLINE_MAX => {
                let elems = std::mem::take(e);
                let mut dir = Vec::new();
                let mut chunks = NumMap::default();
                let mut cur = VecDeque::new();
                let mut cur_bytes = 0;
                let mut cut = |cur: &mut VecDeque<Bytes>, dir: &mut Vec<Entry>| {
                    let slot = dir.len() as u32;
                    let c = Chunk::new(std::mem::take(cur));
                    dir.push(Entry::Node(Node {
                        slot,
                        count: c.items.len() as u32,
                        bytes: c.bytes as u32,
                        page: NEW_PAGE,
                    }));
                    chunks.insert(slot, c);
                };
                for v in elems {
                    if cur_bytes + elem_bytes(&v) > CHUNK_TARGET && !cur.is_empty() {
                        cut(&mut cur, &mut dir);
                        cur_bytes = 0;
                    }
                    cur_bytes += elem_bytes(&v);
                    cur.push_back(v);
                }
                if !cur.is_empty() {
                    cut(&mut cur, &mut dir);
                }
                let n = dir.len() as u32;
                self.form = Form::Chunked(Box::new(Chunked {
                    family: Family::new(Family::new_version(), n),
                    dirty: (0..n).collect(),
                    dirty_pages: BTreeSet::from([NEW_PAGE]),
                    known_pages: Vec::new(),
                    dir,
                    raw_pages: None,
                    chunks,
                    freed: BTreeSet::new(),
                    numbers: Numbers::from_used(&(0..n).collect(), 0),
                }));
            }
            Form::Chunked(_) if bytes <= INLINE_MAX / 4 => {
                let all = self.all()?;
                self.form = Form::Inline(all.into());
            }
            Form::Chunked(c) => {
                let small: Vec<u32> = c.dirty.iter().copied().collect();
                for slot in small {
                    self.merge_forward(slot)?;
                }
            }
            Form::Raw(_) | Form::Inline(_) => {}
        }
        Ok(())
    }

    /// Merges chunk `slot` (if still listed, read and small) with the next one when
    /// the two fit in one chunk.
    fn merge_forward(&mut self, slot: u32) -> Result<(), CmdError> {
        let c = self.ch()?;
        let Some(p) = c
            .dir
            .iter()
            .position(|e| matches!(e, Entry::Node(n) if n.slot == slot))
        else {
            return Ok(());
        };
        let (Ok(here), Ok(next)) = (c.node(p), c.node(p + 1)) else {
            return Ok(());
        };
        if here.bytes as usize > CHUNK_TARGET / 4
            || (here.bytes + next.bytes) as usize > CHUNK_TARGET
        {
            return Ok(());
        }
        let moved = std::mem::take(&mut self.chunk(next.slot)?.items);
        let c = self.chunk(slot)?;
        c.items.extend(moved);
        *c = Chunk::new(std::mem::take(&mut c.items));
        self.chunk(next.slot)?.bytes = 0;
        self.settle_node(p + 1)?;
        self.settle_node(p)
    }
}

impl Chunked {
    /// The pages to list in the root, head to tail: pages not read as they were,
    /// read ones unchanged as they were, changed ones (and chunks on no page yet)
    /// written anew in even pieces of at most [`PAGE_MAX`] chunks; pages no longer
    /// there are freed. Pages written go to `bodies`.
    fn paginate(&mut self, bodies: &mut Vec<(u32, Option<Vec<u8>>)>) -> Vec<Page> {
        // Sized up front: a rotation of a 100,000-element list pages about 160 entries,
        // and growing these vectors was a tenth of its time.
        let mut out = Vec::with_capacity(self.dir.len());
        let mut runs: Vec<(u32, Vec<Node>)> = Vec::new();
        let mut listed = Vec::with_capacity(self.dir.len());
        for e in &self.dir {
            match e {
                Entry::Page(p) => listed.push(Ok(*p)),
                Entry::Node(n) => match runs.last_mut() {
                    Some((tag, nodes))
                        if *tag == n.page && matches!(listed.last(), Some(Err(_))) =>
                    {
                        nodes.push(*n)
                    }
                    _ => {
                        let mut nodes = Vec::with_capacity(PAGE_MAX);
                        nodes.push(*n);
                        runs.push((n.page, nodes));
                        listed.push(Err(runs.len() - 1));
                    }
                },
            }
        }
        let mut kept = BTreeSet::new();
        for item in listed {
            let (tag, nodes) = match item {
                Ok(p) => {
                    kept.insert(p.slot);
                    out.push(p);
                    continue;
                }
                Err(r) => std::mem::take(&mut runs[r]),
            };
            let page_of = |slot: u32, nodes: &[Node]| Page {
                slot,
                nodes: nodes.len() as u32,
                count: nodes.iter().map(|n| u64::from(n.count)).sum(),
                bytes: nodes.iter().map(|n| u64::from(n.bytes)).sum(),
            };
            let changed = tag == NEW_PAGE || self.dirty_pages.contains(&tag) || kept.contains(&tag);
            if !changed && nodes.len() <= PAGE_MAX {
                kept.insert(tag);
                out.push(page_of(tag, &nodes));
                continue;
            }
            // Cut evenly: a page split at the head by pushes keeps half its chunks, so
            // pages stay between half full and full instead of leaving slivers.
            let pieces = nodes.len().div_ceil(PAGE_MAX).max(1);
            let per = nodes.len().div_ceil(pieces).max(1);
            for (k, piece) in nodes.chunks(per).enumerate() {
                let slot = if k == 0 && tag != NEW_PAGE && !kept.contains(&tag) {
                    tag
                } else {
                    self.alloc()
                };
                kept.insert(slot);
                let mut b = Vec::with_capacity(piece.len() * NODE_BYTES);
                for n in piece {
                    b.extend_from_slice(&n.slot.to_le_bytes());
                    b.extend_from_slice(&n.count.to_le_bytes());
                    b.extend_from_slice(&n.bytes.to_le_bytes());
                }
                bodies.push((slot, Some(b)));
                out.push(page_of(slot, piece));
            }
        }
        let gone: Vec<u32> = self
            .known_pages
            .iter()
            .filter(|p| !kept.contains(p))
            .copied()
            .collect();
        for slot in gone {
            self.release(slot);
        }
        // A page written where a freed number was is no removal.
        for (slot, _) in bodies.iter() {
            self.freed.remove(slot);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_read_in_place_are_those_decoding_finds() {
        let elems: Vec<Bytes> = (0..12).map(|i| Bytes::from("e".repeat(i * 3))).collect();
        let mut raw = Vec::new();
        encode_elems(&mut raw, elems.iter());
        let raw = Bytes::from(raw);
        for skip in 0..14 {
            let got: Vec<Bytes> = raw_elems(&raw, skip)
                .collect::<Result<_, _>>()
                .expect("read");
            assert_eq!(got, elems.get(skip..).unwrap_or_default(), "from {skip}");
        }
        // Cut anywhere inside an element: an error where the cut is reached, never a panic.
        for cut in 1..raw.len() {
            let part = raw.slice(..cut);
            let whole = decode_elems(&part).is_ok();
            for skip in 0..13 {
                let read: Result<Vec<Bytes>, _> = raw_elems(&part, skip).collect();
                if whole {
                    assert!(read.is_ok(), "cut {cut} from {skip}");
                }
            }
            if !whole {
                assert!(raw_elems(&part, 0).collect::<Result<Vec<_>, _>>().is_err());
                assert!(raw_elems(&part, 12).collect::<Result<Vec<_>, _>>().is_err());
            }
        }
    }

    #[test]
    fn a_list_cleared_then_pushed_to_in_one_change_holds_only_the_new_element() {
        let (_d, store) = crate::store::testing::store();
        let ks = Keyspace::new(&store, 0);
        for n in [5usize, 3000] {
            change(&ks, |l| {
                for i in 0..n {
                    l.push(false, Bytes::from(format!("element:{i:08}")))
                        .expect("push");
                }
            });
            change(&ks, |l| {
                l.clear().expect("clear");
                l.push(false, Bytes::from("new")).expect("push");
            });
            let mut l = Listed::open(&ks, b"l").expect("open");
            assert_eq!(
                l.all().expect("all"),
                vec![Bytes::from("new")],
                "{n} elements before"
            );
            assert_eq!(l.len(), 1);
            change(&ks, |l| l.clear().expect("clear"));
        }
    }

    /// A small list read, then changed, then read again in one open: the change
    /// starts from every element.
    #[test]
    fn a_small_list_read_in_place_then_changed_keeps_every_element() {
        let (_d, store) = crate::store::testing::store();
        let ks = Keyspace::new(&store, 0);
        change(&ks, |l| {
            for i in 0..5 {
                l.push(false, Bytes::from(format!("e{i}"))).expect("push");
            }
        });
        change(&ks, |l| {
            assert_eq!(l.get(4).expect("get"), Some(Bytes::from("e4")));
            assert_eq!(
                l.range(1, 2).expect("range"),
                vec![Bytes::from("e1"), Bytes::from("e2")]
            );
            l.push(true, Bytes::from("h")).expect("push");
            assert_eq!(l.get(0).expect("get"), Some(Bytes::from("h")));
        });
        let mut l = Listed::open(&ks, b"l").expect("open");
        let want: Vec<Bytes> = ["h", "e0", "e1", "e2", "e3", "e4"]
            .map(Bytes::from)
            .to_vec();
        assert_eq!(l.all().expect("all"), want);
        assert_eq!(l.len(), 6);
    }

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
        // Indexes and ranges read in place from a list just opened (no page read yet),
        // from either end, across chunks and pages.
        let n = model.len();
        for i in (0..n).step_by(n / 7 + 1).chain([n.saturating_sub(2)]) {
            let mut l = Listed::open(ks, b"l").expect("open");
            assert_eq!(l.get(i as u64).expect("get").as_ref(), model.get(i), "{i}");
        }
        for (start, len) in [
            (0, 10),
            (n / 2, 50),
            (n.saturating_sub(3), 3),
            (n / 3, n / 3 + 1),
        ] {
            if start >= n {
                continue;
            }
            let stop = (start + len).min(n) - 1;
            let mut l = Listed::open(ks, b"l").expect("open");
            let got = l.range(start as u64, stop as u64).expect("range");
            let want: Vec<Bytes> = model.range(start..=stop).cloned().collect();
            assert!(got == want, "range {start}..={stop} of {n}");
        }
    }

    /// `n` changes in the middle of the list and of `model` alike: sets, inserts and
    /// removals, spread by a stride.
    fn middle_changes(
        ks: &Keyspace<'_>,
        model: &mut VecDeque<Bytes>,
        n: u64,
        val: &dyn Fn(u32) -> Bytes,
    ) {
        for k in 0..n {
            let i = (k * 7919) % model.len() as u64;
            let v = val(k as u32 + 900_000);
            change(ks, |l| match k % 3 {
                0 => l.set(i, v.clone()).expect("set"),
                1 => l.insert(i, v.clone()).expect("insert"),
                _ => {
                    l.remove(i).expect("remove");
                }
            });
            match k % 3 {
                0 => model[i as usize] = v,
                1 => model.insert(i as usize, v),
                _ => {
                    model.remove(i as usize);
                }
            }
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
        middle_changes(&ks, &mut model, 300, &val);
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

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 12,
            failure_persistence: None,
            ..Default::default()
        })]

        /// Random pushes, pops, sets, inserts, removals, trims and LREMs in commands
        /// of random sizes, over lists long enough for several pages, answer as a
        /// model does.
        #[test]
        fn random_changes_answer_as_a_model_does(
            ops in proptest::collection::vec((0u8..10, 0u32..1_000_000, 0usize..40), 1..2500),
            batch in 1usize..60,
            start in 0usize..20_000,
        ) {
            let (_d, store) = crate::store::testing::store();
            let ks = Keyspace::new(&store, 0);
            let val = |i: u32, len: usize| Bytes::from(format!("{}{}", i % 50, "v".repeat(len)));
            let mut model: VecDeque<Bytes> = (0..start as u32).map(|i| val(i, i as usize % 9)).collect();
            Listed::fill(&ks, b"l", model.iter().cloned().collect(), None).expect("fill");
            for group in ops.chunks(batch) {
                change(&ks, |l| {
                    for &(op, x, len) in group {
                        let n = model.len() as u64;
                        let i = if n == 0 { 0 } else { u64::from(x) % n };
                        match op {
                            0 | 1 => {
                                l.push(op == 0, val(x, len)).expect("push");
                                if op == 0 { model.push_front(val(x, len)) } else { model.push_back(val(x, len)) }
                            }
                            2 | 3 => {
                                let want = if op == 2 { model.pop_front() } else { model.pop_back() };
                                assert_eq!(l.pop(op == 2).expect("pop"), want);
                            }
                            4 if n > 0 => {
                                l.set(i, val(x, len)).expect("set");
                                model[i as usize] = val(x, len);
                            }
                            5 => {
                                l.insert(i, val(x, len)).expect("insert");
                                model.insert(i as usize, val(x, len));
                            }
                            6 if n > 0 => {
                                assert_eq!(Some(l.remove(i).expect("remove")), model.remove(i as usize));
                            }
                            7 if n > 0 && x % 7 == 0 => {
                                let (a, b) = (i, (i + u64::from(x) % (n + 1)).min(n - 1));
                                l.trim(a, b).expect("trim");
                                model = model.range(a as usize..=b as usize).cloned().collect();
                            }
                            8 => {
                                let v = val(x, len);
                                let limit = u64::from(x % 3);
                                let gone = l.remove_equal(&v, limit, x % 2 == 0).expect("rem");
                                let mut left = if limit == 0 { usize::MAX } else { limit as usize };
                                let mut idx: Vec<usize> = (0..model.len()).filter(|&k| model[k] == v).collect();
                                if x % 2 == 0 { idx.reverse(); }
                                idx.truncate(left.min(idx.len()));
                                left = idx.len();
                                assert_eq!(gone, left as u64);
                                idx.sort_unstable();
                                for k in idx.into_iter().rev() { model.remove(k); }
                            }
                            _ => {}
                        }
                    }
                });
            }
            check(&ks, &model);
        }
    }

    #[test]
    fn a_long_list_reads_and_writes_only_the_pages_it_reaches() {
        let (_d, store) = crate::store::testing::store();
        let ks = Keyspace::new(&store, 0);
        let val = |i: u32| Bytes::from(format!("e{i}"));
        let mut model: VecDeque<Bytes> = (0..30_000u32).map(val).collect();
        Listed::fill(&ks, b"l", model.iter().cloned().collect(), None).expect("fill");
        let root = ks.get_typed(b"l").expect("get").expect("root");
        assert_eq!(root.value[0], 2, "a paged directory");
        assert!(
            root.value.len() < 512,
            "the root lists pages, not chunks: {} bytes",
            root.value.len()
        );
        check(&ks, &model);
        // A push and a pop at each end write a chunk, its page and the root.
        let before = store.engine.stats().bytes_written;
        change(&ks, |l| {
            l.push(true, val(1_000_000)).expect("push");
            assert_eq!(l.pop(false).expect("pop"), model.pop_back());
        });
        model.push_front(val(1_000_000));
        let written = store.engine.stats().bytes_written - before;
        assert!(
            written < 6 * CHUNK_TARGET as u64,
            "{written} bytes for a push and a pop"
        );
        let reads = store.engine.stats().chunk_reads;
        let mut l = Listed::open(&ks, b"l").expect("open");
        assert_eq!(l.get(15_000).expect("get"), model.get(15_000).cloned());
        assert!(
            store.engine.stats().chunk_reads - reads <= 2,
            "an index reads its page and its chunk"
        );
        drop(l);
        // Changes in the middle, then a trim that drops whole pages unread.
        middle_changes(&ks, &mut model, 200, &val);
        check(&ks, &model);
        change(&ks, |l| l.trim(9_000, 12_000).expect("trim"));
        model = model.range(9_000..=12_000).cloned().collect();
        check(&ks, &model);
        let chunks = store.engine.stats().chunks;
        assert!(chunks < 60, "the dropped pages' chunks went: {chunks} left");
        // Drained from both ends, through pages, back to one record.
        while model.len() > 10 {
            let front = model.len().is_multiple_of(3);
            change(&ks, |l| {
                let want = if front {
                    model.pop_front()
                } else {
                    model.pop_back()
                };
                assert_eq!(l.pop(front).expect("pop"), want);
            });
        }
        assert_eq!(store.engine.stats().chunks, 0);
        check(&ks, &model);
    }

    #[test]
    fn a_rotating_list_keeps_its_pages_full() {
        let (_d, store) = crate::store::testing::store();
        let ks = Keyspace::new(&store, 0);
        let elems: Vec<Bytes> = (0..20_000u32)
            .map(|i| Bytes::from(format!("e{i:06}")))
            .collect();
        Listed::fill(&ks, b"l", elems, None).expect("fill");
        let root_len = || ks.get_typed(b"l").expect("get").expect("root").value.len();
        let at_start = root_len();
        // LMOVE l l RIGHT LEFT, 6,000 times: every chunk and page passes through.
        for _ in 0..6_000 {
            change(&ks, |l| {
                let v = l.pop(false).expect("pop").expect("an element");
                l.push(true, v).expect("push");
            });
        }
        assert!(
            root_len() <= at_start + 3 * PAGE_BYTES,
            "the root grew from {at_start} to {} bytes: pages left as slivers",
            root_len()
        );
        let mut l = Listed::open(&ks, b"l").expect("open");
        assert_eq!(l.len(), 20_000);
        assert_eq!(l.get(0).expect("get"), Some(Bytes::from_static(b"e014000")));
    }

    #[test]
    fn a_list_written_before_pages_is_read_and_written_back_paged() {
        let (_d, store) = crate::store::testing::store();
        let ks = Keyspace::new(&store, 0);
        // The old form: every chunk in the root's directory.
        let mut model: VecDeque<Bytes> = VecDeque::new();
        let mut root = vec![1u8];
        let mut dir = Vec::new();
        let mut bodies = Vec::new();
        let mut total = 0u64;
        for slot in 0..40u32 {
            let elems: Vec<Bytes> = (0..50)
                .map(|i| Bytes::from(format!("{slot}:{i}")))
                .collect();
            let mut b = Vec::new();
            encode_elems(&mut b, elems.iter());
            dir.extend_from_slice(&slot.to_le_bytes());
            dir.extend_from_slice(&50u32.to_le_bytes());
            dir.extend_from_slice(&(b.len() as u32).to_le_bytes());
            total += b.len() as u64;
            bodies.push((slot, Some(b)));
            model.extend(elems);
        }
        root.extend_from_slice(&(model.len() as u64).to_le_bytes());
        root.extend_from_slice(&total.to_le_bytes());
        root.extend_from_slice(&dir);
        let family = Family::new(Family::new_version(), 40);
        crate::types::write_change(
            &ks,
            b"l",
            ValueType::List,
            &root,
            None,
            Some(family),
            None,
            &bodies,
        )
        .expect("write");
        check(&ks, &model);
        change(&ks, |l| {
            l.push(false, Bytes::from_static(b"new")).expect("push")
        });
        model.push_back(Bytes::from_static(b"new"));
        assert_eq!(ks.get_typed(b"l").expect("get").expect("root").value[0], 2);
        check(&ks, &model);
        change(&ks, |l| l.trim(100, 1500).expect("trim"));
        model = model.range(100..=1500).cloned().collect();
        check(&ks, &model);
    }
}
