//! A sorted set on the log: elements ordered by (score, member) in a B+tree whose top
//! node lives in the root record and whose other nodes are chunks, each holding the
//! element counts of its subtrees (so ranks need no leaf but the one they end in), and
//! a member index (chunks by linear hashing of the member) that finds a member's score
//! with one read. A change rewrites the leaf and the nodes above it, one index chunk
//! and the root (a score change that keeps its member in its leaf: the leaf and the
//! chunk, and the root only if the leaf's first element moved); a small set is one
//! record (a tree of height 0: the top is its leaf).
//!
//! | root value           | size | meaning                                        |
//! |----------------------|-----:|------------------------------------------------|
//! | form                 |    1 | 0: one record (height 0); 1: chunked           |
//! | flags                |    1 | bit 0: Redis would use its skiplist encoding   |
//! | count                |    8 | elements, little-endian                        |
//! | bytes                |    8 | encoded bytes of every element                 |
//! | index chunks         |    4 | chunked only: member-index chunks (also the family's `aux`) |
//! | height               |    1 | chunked only: node levels below the top        |
//! | nodes                |    4 | chunked only: one past the highest node number |
//! | free                 |    … | chunked only: count (4) · node numbers not in use (4 each) |
//! | top node             |    … | a node's entries (height 0: elements)          |
//!
//! | entry                | encoding                                                 |
//! |----------------------|----------------------------------------------------------|
//! | element (leaf)       | score (f64, 8) · member length (4) · member              |
//! | child (inner node)   | node number (4) · elements below (8) · its first element |
//! | member-index entry   | member length (4) · member · score (8)                   |
//!
//! A node chunk is a kind byte (0: leaf, 1: inner) and its entries. Chunk numbers
//! interleave the two structures: member-index chunk `i` is chunk `2i`, node `j` is
//! chunk `2j + 1`. Member-index chunk `i` of `n` holds the members whose hash gives `i`
//! as in [`super::hashed`].

use super::NumMap;
use super::hashed::{bucket, field_hash, scan_classes};
use super::{Numbers, le_u32, le_u64, prefixed, push_removals, take_prefixed};
use crate::cmd::CmdError;
use crate::keyspace::Keyspace;
use bytes::{Buf, Bytes};
use caskade_engine::{Family, Item, ValueType};
use std::cmp::Ordering;
use std::collections::BTreeSet;

/// Above this many encoded bytes a sorted set is chunked...
const INLINE_MAX: usize = super::hashed::INLINE_MAX;
/// ...and at or below this many it is one record again.
const INLINE_MIN: usize = INLINE_MAX / 4;
/// A node past this many bytes splits; one under a quarter of it merges with a
/// neighbour when the two fit in one. Small, since a change rewrites a node per level:
/// bytes written per change against chunks the index holds (`bench/collections.py`).
/// At 512 bytes a 100,000-member set was 5 levels deep, fewer score changes kept their
/// member in its leaf, and ZINCRBY under churn ran at a third of 1 KiB's rate.
const NODE_MAX: usize = 1 << 10;
/// The top node (in the root) past this many bytes moves down a level.
const TOP_MAX: usize = 1 << 10;
/// Member-index chunks average at most this many bytes. A score change rewrites one:
/// at 512 bytes a ZINCRBY on 100,000 members wrote 1.5 KB against 2.1 KB at 1 KiB, as
/// fast (same session, interleaved), for 1 more byte of index per member.
const BUCKET_TARGET: usize = 1 << 9;
/// Redis keeps a sorted set in a listpack up to this many elements...
pub const LISTPACK_ENTRIES: usize = 128;
/// ...each member at most this long.
pub const LISTPACK_VALUE: usize = 64;
/// The node number standing for the top node (kept in the root).
const TOP: u32 = u32::MAX;

/// One element: its score and member.
pub type Elem = (f64, Bytes);

/// The order of a sorted set: by score, then by member's bytes.
pub fn order(a: &Elem, b: &Elem) -> Ordering {
    a.0.partial_cmp(&b.0)
        .unwrap_or(Ordering::Equal)
        .then_with(|| a.1.cmp(&b.1))
}

fn lt(a: &Elem, b: &Elem) -> bool {
    order(a, b) == Ordering::Less
}

/// Encoded bytes of an element (also of its member-index entry).
fn elem_bytes(m: &[u8]) -> usize {
    12 + m.len()
}

fn damaged() -> CmdError {
    CmdError::err("sorted set record is damaged")
}

/// A subtree as its parent knows it.
#[derive(Debug, Clone)]
struct Child {
    no: u32,
    count: u64,
    first: Elem,
}

#[derive(Debug, Clone)]
enum Node {
    Leaf(Vec<Elem>),
    Inner(Vec<Child>),
}

impl Node {
    fn len(&self) -> usize {
        match self {
            Node::Leaf(v) => v.len(),
            Node::Inner(c) => c.len(),
        }
    }

    fn count(&self) -> u64 {
        match self {
            Node::Leaf(v) => v.len() as u64,
            Node::Inner(c) => c.iter().map(|c| c.count).sum(),
        }
    }

    fn first(&self) -> Option<Elem> {
        match self {
            Node::Leaf(v) => v.first().cloned(),
            Node::Inner(c) => c.first().map(|c| c.first.clone()),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Node::Leaf(v) => v.iter().map(|e| elem_bytes(&e.1)).sum(),
            Node::Inner(c) => c.iter().map(|c| 12 + elem_bytes(&c.first.1)).sum(),
        }
    }

    /// Splits off the entries from `at` on as a node of the same kind.
    fn split_off(&mut self, at: usize) -> Node {
        match self {
            Node::Leaf(v) => Node::Leaf(v.split_off(at)),
            Node::Inner(c) => Node::Inner(c.split_off(at)),
        }
    }

    /// Appends `other`'s entries (of the same kind).
    fn append(&mut self, other: Node) -> Result<(), CmdError> {
        match (self, other) {
            (Node::Leaf(a), Node::Leaf(b)) => a.extend(b),
            (Node::Inner(a), Node::Inner(b)) => a.extend(b),
            _ => return Err(damaged()),
        }
        Ok(())
    }

    /// Cuts the node into pieces of about `target` bytes, in order, each of two
    /// entries or more (but a last one), so pieces are fewer than entries even when
    /// entries are large.
    fn pieces(self, target: usize) -> Vec<Node> {
        let mut out = Vec::new();
        let mut rest = self;
        loop {
            let mut acc = 0usize;
            let mut cut = rest.len();
            for i in 0..rest.len() {
                acc += match &rest {
                    Node::Leaf(v) => elem_bytes(&v[i].1),
                    Node::Inner(c) => 12 + elem_bytes(&c[i].first.1),
                };
                if acc >= target && i >= 1 && i + 1 < rest.len() {
                    cut = i + 1;
                    break;
                }
            }
            if cut >= rest.len() {
                out.push(rest);
                return out;
            }
            let tail = rest.split_off(cut);
            out.push(rest);
            rest = tail;
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Node::Leaf(v) => {
                for e in v {
                    encode_elem(out, e);
                }
            }
            Node::Inner(c) => {
                for c in c {
                    out.extend_from_slice(&c.no.to_le_bytes());
                    out.extend_from_slice(&c.count.to_le_bytes());
                    encode_elem(out, &c.first);
                }
            }
        }
    }

    fn decode(b: &Bytes, leaf: bool) -> Result<Node, CmdError> {
        let mut at = 0usize;
        // About the entries a node of this size holds, so the vector seldom grows.
        let guess = b.len() / 24 + 1;
        if leaf {
            let mut v = Vec::with_capacity(guess);
            while at < b.len() {
                v.push(take_elem(b, &mut at)?);
            }
            return Ok(Node::Leaf(v));
        }
        let mut c = Vec::with_capacity(guess);
        while at < b.len() {
            let no = le_u32(b, at).ok_or_else(damaged)?;
            let count = le_u64(b, at + 4).ok_or_else(damaged)?;
            at += 12;
            c.push(Child {
                no,
                count,
                first: take_elem(b, &mut at)?,
            });
        }
        Ok(Node::Inner(c))
    }
}

fn encode_elem(out: &mut Vec<u8>, e: &Elem) {
    out.extend_from_slice(&e.0.to_le_bytes());
    out.extend_from_slice(&(e.1.len() as u32).to_le_bytes());
    out.extend_from_slice(&e.1);
}

fn take_elem(b: &Bytes, at: &mut usize) -> Result<Elem, CmdError> {
    let score = f64::from_bits(le_u64(b, *at).ok_or_else(damaged)?);
    *at += 8;
    let m = take_prefixed(b, at).ok_or_else(damaged)?;
    Ok((score, m))
}

/// The member index's entries of one chunk.
type Bucket = Vec<(Bytes, f64)>;

fn decode_bucket(b: &Bytes) -> Result<Bucket, CmdError> {
    let mut out = Vec::with_capacity(b.len() / 24 + 1);
    let mut at = 0usize;
    while at < b.len() {
        let m = take_prefixed(b, &mut at).ok_or_else(damaged)?;
        let s = f64::from_bits(le_u64(b, at).ok_or_else(damaged)?);
        at += 8;
        out.push((m, s));
    }
    Ok(out)
}

fn encode_bucket(out: &mut Vec<u8>, b: &Bucket) {
    for (m, s) in b {
        out.extend_from_slice(&(m.len() as u32).to_le_bytes());
        out.extend_from_slice(m);
        out.extend_from_slice(&s.to_le_bytes());
    }
}

/// Where `e` goes among the entries of an inner node as stored (`b`, past its kind
/// byte): as [`child_for`], without decoding them; with the elements in the children
/// before it.
fn route_raw(b: &[u8], e: &Elem) -> Result<(usize, u32, u64), CmdError> {
    let (mut at, mut k) = (0usize, 0usize);
    let mut found = None;
    let (mut before_found, mut seen) = (0u64, 0u64);
    while at < b.len() {
        let no = le_u32(b, at).ok_or_else(damaged)?;
        let count = le_u64(b, at + 4).ok_or_else(damaged)?;
        let score = f64::from_bits(le_u64(b, at + 12).ok_or_else(damaged)?);
        let len = le_u32(b, at + 20).ok_or_else(damaged)? as usize;
        let member = b.get(at + 24..at + 24 + len).ok_or_else(damaged)?;
        let before =
            e.0.partial_cmp(&score)
                .unwrap_or(Ordering::Equal)
                .then_with(|| e.1[..].cmp(member))
                == Ordering::Less;
        if before && found.is_some() {
            break;
        }
        // The first child takes what sorts before every entry.
        if !before || found.is_none() {
            found = Some((k, no));
            before_found = seen;
        }
        seen = seen.saturating_add(count);
        at += 24 + len;
        k += 1;
    }
    found
        .map(|(k, no)| (k, no, before_found))
        .ok_or_else(damaged)
}

/// Where `e` goes among the entries of an inner node as stored (`b`, past its kind
/// byte), as [`route_raw`], and whether `to` goes to the same child: one pass for both
/// ends of a score change.
fn route_raw_both(b: &[u8], e: &Elem, to: &Elem) -> Result<(usize, u32, bool), CmdError> {
    // The firsts are in order, so "sorts before this entry" turns true once for each:
    // an element's child is the last entry it does not sort before (or the first).
    let (mut at, mut k) = (0usize, 0usize);
    let (mut e_child, mut to_child, mut no) = (0usize, 0usize, None);
    while at < b.len() {
        let n = le_u32(b, at).ok_or_else(damaged)?;
        let score = f64::from_bits(le_u64(b, at + 12).ok_or_else(damaged)?);
        let len = le_u32(b, at + 20).ok_or_else(damaged)? as usize;
        let member = b.get(at + 24..at + 24 + len).ok_or_else(damaged)?;
        let before = |x: &Elem| {
            x.0.partial_cmp(&score)
                .unwrap_or(Ordering::Equal)
                .then_with(|| x.1[..].cmp(member))
                == Ordering::Less
        };
        let (e_before, to_before) = (before(e), before(to));
        if k > 0 && e_before && to_before {
            break;
        }
        if !e_before || k == 0 {
            e_child = k;
            no = Some(n);
        }
        if !to_before {
            to_child = k;
        }
        at += 24 + len;
        k += 1;
    }
    let no = no.ok_or_else(damaged)?;
    Ok((e_child, no, e_child == to_child))
}

/// A leaf as stored (`b`, past its kind byte) with `from` moved to `to` (the same
/// member, another score): the leaf's new bytes, kind byte first, and its first
/// element if that changed.
fn move_raw(b: &[u8], from: &Elem, to: &Elem) -> Result<(Vec<u8>, Option<Elem>), CmdError> {
    let (mut at, mut from_at, mut ins_at) = (0usize, None, None);
    while at < b.len() {
        let start = at;
        let score = f64::from_bits(le_u64(b, at).ok_or_else(damaged)?);
        at += 8;
        let member = &b[prefixed(b, &mut at).ok_or_else(damaged)?];
        // Found as the decoded leaf's search finds it: by value (-0 is 0).
        if from_at.is_none() && score == from.0 && member == &from.1[..] {
            from_at = Some((start, at));
            continue;
        }
        if ins_at.is_none() && !lt_raw((score, member), to) {
            ins_at = Some(start);
        }
        if from_at.is_some() && ins_at.is_some() {
            break;
        }
    }
    let (fa, fe) = from_at.ok_or_else(damaged)?;
    let ins = ins_at.unwrap_or(b.len());
    let mut out = Vec::with_capacity(1 + b.len() + 8);
    out.push(0);
    if ins <= fa {
        out.extend_from_slice(&b[..ins]);
        encode_elem(&mut out, to);
        out.extend_from_slice(&b[ins..fa]);
        out.extend_from_slice(&b[fe..]);
    } else {
        out.extend_from_slice(&b[..fa]);
        out.extend_from_slice(&b[fe..ins]);
        encode_elem(&mut out, to);
        out.extend_from_slice(&b[ins..]);
    }
    // The first element changed only if it was `from` or `to` went before it.
    let first = if fa == 0 || ins == 0 {
        let score = f64::from_bits(le_u64(&out, 1).ok_or_else(damaged)?);
        let mut at = 9usize;
        let member = prefixed(&out, &mut at).ok_or_else(damaged)?;
        Some((score, Bytes::copy_from_slice(&out[member])))
    } else {
        None
    };
    Ok((out, first))
}

/// Whether an element as stored sorts before `e`.
fn lt_raw(x: (f64, &[u8]), e: &Elem) -> bool {
    x.0.partial_cmp(&e.0)
        .unwrap_or(Ordering::Equal)
        .then_with(|| x.1.cmp(&e.1[..]))
        == Ordering::Less
}

/// A leaf's elements as stored (`b`, past any kind byte), in order, as (score, member)
/// read in place; an error where they are damaged, and nothing after it.
fn raw_elems(b: &[u8]) -> impl Iterator<Item = Result<(f64, &[u8]), CmdError>> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        if at >= b.len() {
            return None;
        }
        let score = le_u64(b, at).map(f64::from_bits);
        at += 8;
        let member = prefixed(b, &mut at).map(|r| &b[r]);
        match score.zip(member) {
            Some(e) => Some(Ok(e)),
            None => {
                at = b.len();
                Some(Err(damaged()))
            }
        }
    })
}

/// How many of one leaf's elements as stored (`b`, past its kind byte) sort before `e`.
fn count_below_raw(b: &[u8], e: &Elem) -> Result<u64, CmdError> {
    let mut k = 0u64;
    for x in raw_elems(b) {
        if !lt_raw(x?, e) {
            break;
        }
        k += 1;
    }
    Ok(k)
}

/// The position and score of `member` among one record's elements as stored.
fn find_elem_raw(b: &[u8], member: &[u8]) -> Result<Option<(u64, f64)>, CmdError> {
    for (k, x) in raw_elems(b).enumerate() {
        let (score, m) = x?;
        if m == member {
            return Ok(Some((k as u64, score)));
        }
    }
    Ok(None)
}

/// Where the score of `member` is in a member-index chunk as stored.
fn find_raw(b: &[u8], member: &[u8]) -> Result<Option<usize>, CmdError> {
    let mut at = 0usize;
    while at < b.len() {
        let len = le_u32(b, at).ok_or_else(damaged)? as usize;
        let m = b.get(at + 4..at + 4 + len).ok_or_else(damaged)?;
        if b.len() < at + 4 + len + 8 {
            return Err(damaged());
        }
        if m == member {
            return Ok(Some(at + 4 + len));
        }
        at += 4 + len + 8;
    }
    Ok(None)
}

fn node_chunk(j: u32) -> u32 {
    2 * j + 1
}

fn bucket_chunk(i: u32) -> u32 {
    2 * i
}

/// The child of `cs` whose subtree holds `e`'s place.
fn child_for(cs: &[Child], e: &Elem) -> usize {
    cs.partition_point(|c| !lt(e, &c.first)).saturating_sub(1)
}

/// A sorted set opened for reading or changing; changes are written by
/// [`Sorted::commit`] as one atomic change.
pub struct Sorted<'k, 'a> {
    ks: &'k Keyspace<'a>,
    key: &'k [u8],
    exists: bool,
    expire_at_ms: Option<u64>,
    big: bool,
    count: u64,
    bytes: u64,
    /// Levels below the top (0: one record).
    height: u8,
    family: Option<Family>,
    /// Member-index chunks (chunked only).
    buckets: u32,
    /// The node numbers in use.
    numbers: Numbers,
    nodes: NumMap<Node>,
    /// The top node as read, until something needs it decoded: one record's elements
    /// (height 0), where a ZSCORE or ZRANK of a small set finds its member in place
    /// (decoding every element cost a reference count each), or the root's inner node,
    /// which a descent routes through in place. The top is in `nodes` once decoded.
    raw_top: Option<Bytes>,
    /// Node chunks not decoded (kind byte first): as read, which a descent reads in
    /// place, or, when dirty, as a score change within one leaf rewrote them.
    raw_nodes: NumMap<Bytes>,
    index: NumMap<Bucket>,
    /// Member-index chunks read but not decoded, as read or with scores changed in
    /// place (a score change finds and rewrites 8 bytes instead of decoding them).
    /// Kept as read until a score changes: a ZSCORE copies nothing.
    raw_index: NumMap<Bytes>,
    dirty_nodes: BTreeSet<u32>,
    dirty_buckets: BTreeSet<u32>,
    /// Chunk numbers whose records go (unless written again).
    freed: BTreeSet<u32>,
    changed: bool,
    /// A chunked set's root as read: a change that leaves it as it was (a score change
    /// inside one leaf) writes its chunks alone.
    root_was: Option<Bytes>,
}

impl<'k, 'a> Sorted<'k, 'a> {
    /// The sorted set at `key` (empty if absent); WRONGTYPE if the key holds another type.
    pub fn open(ks: &'k Keyspace<'a>, key: &'k [u8]) -> Result<Self, CmdError> {
        Sorted::from_item(ks, key, ks.get_typed(key)?)
    }

    /// [`Sorted::open`] from the root already read (`None`: the key is absent).
    pub fn from_item(
        ks: &'k Keyspace<'a>,
        key: &'k [u8],
        item: Option<Item>,
    ) -> Result<Self, CmdError> {
        let mut z = Sorted {
            ks,
            key,
            exists: false,
            expire_at_ms: None,
            big: false,
            count: 0,
            bytes: 0,
            height: 0,
            family: None,
            buckets: 0,
            numbers: Numbers::default(),
            nodes: NumMap::default(),
            raw_top: None,
            raw_nodes: NumMap::default(),
            index: NumMap::default(),
            raw_index: NumMap::default(),
            dirty_nodes: BTreeSet::new(),
            dirty_buckets: BTreeSet::new(),
            freed: BTreeSet::new(),
            changed: false,
            root_was: None,
        };
        let Some(item) = item else {
            z.nodes.insert(TOP, Node::Leaf(Vec::new()));
            return Ok(z);
        };
        if item.vtype != ValueType::ZSet {
            return Err(CmdError::WrongType);
        }
        z.exists = true;
        z.expire_at_ms = item.expire_at_ms;
        let v = &item.value;
        if v.len() < 18 {
            return Err(damaged());
        }
        z.big = v[1] & 1 != 0;
        z.count = le_u64(v, 2).ok_or_else(damaged)?;
        z.bytes = le_u64(v, 10).ok_or_else(damaged)?;
        match v[0] {
            0 => {
                // Moved past the header, not sliced (see `Hashed::from_item`).
                let mut top = item.value;
                top.advance(18);
                z.raw_top = Some(top);
            }
            1 => {
                let family = Family::decode(&item.meta).ok_or_else(damaged)?;
                z.buckets = le_u32(v, 18).ok_or_else(damaged)?;
                z.height = *v.get(22).ok_or_else(damaged)?;
                let mut at = 23usize;
                z.numbers = Numbers::decode(v, &mut at).ok_or_else(damaged)?;
                if z.buckets == 0 || z.height == 0 || at > v.len() {
                    return Err(damaged());
                }
                z.family = Some(family);
                // Room for a way down and a second one (a score that moves), so
                // the table is not grown while a change walks.
                z.raw_nodes = NumMap::with_capacity_and_hasher(
                    2 * usize::from(z.height),
                    caskade_engine::IntHash,
                );
                z.root_was = Some(item.value.clone());
                let mut top = item.value;
                top.advance(at);
                z.raw_top = Some(top);
            }
            _ => return Err(damaged()),
        }
        Ok(z)
    }

    /// The scores of `members` in the sorted set at `key`, reading for a chunked set
    /// only the member-index chunks they are in (its family is known from memory).
    pub fn scores_of(
        ks: &'k Keyspace<'a>,
        key: &'k [u8],
        members: &[&Bytes],
    ) -> Result<Vec<Option<f64>>, CmdError> {
        let mut z = match ks.family(key) {
            Some((t, _, _)) if t != ValueType::ZSet => return Err(CmdError::WrongType),
            Some((_, family, exp)) if family.aux > 0 => Sorted {
                exists: true,
                expire_at_ms: exp,
                height: 1,
                buckets: family.aux,
                family: Some(family),
                nodes: NumMap::default(),
                ..Sorted::from_item(ks, key, None)?
            },
            _ => Sorted::open(ks, key)?,
        };
        members.iter().map(|m| z.score(m)).collect()
    }

    /// The sorted set at `key` made of `elems` (distinct members), replacing nothing
    /// (the caller removed what `key` held).
    pub fn fill(
        ks: &'k Keyspace<'a>,
        key: &'k [u8],
        elems: Vec<Elem>,
        big: bool,
        expire_at_ms: Option<u64>,
    ) -> Result<(), CmdError> {
        let mut z = Sorted::from_item(ks, key, None)?;
        let mut elems = elems;
        if !big {
            for e in &mut elems {
                e.0 += 0.0;
            }
        }
        elems.sort_by(order);
        z.count = elems.len() as u64;
        z.bytes = elems.iter().map(|e| elem_bytes(&e.1) as u64).sum();
        z.big = big;
        z.exists = true;
        z.changed = true;
        z.expire_at_ms = expire_at_ms;
        z.nodes.insert(TOP, Node::Leaf(elems));
        z.commit()
    }

    /// Whether the key exists.
    pub fn exists(&self) -> bool {
        self.exists
    }

    /// How many elements it has.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether Redis would hold it as a skiplist.
    pub fn is_big(&self) -> bool {
        self.big
    }

    /// Marks it as Redis' skiplist from now on (Redis never turns one back).
    pub fn make_big(&mut self) {
        self.big = true;
    }

    /// The name Redis' OBJECT ENCODING gives it.
    pub fn encoding(&self) -> &'static str {
        if self.big { "skiplist" } else { "listpack" }
    }

    /// Encoded bytes of every element.
    pub fn stored_bytes(&self) -> u64 {
        self.bytes
    }

    /// Node `id`'s chunk as read (not decoded), kept for the rest of the command.
    fn read_node(&mut self, id: u32) -> Result<Bytes, CmdError> {
        if let Some(b) = self.raw_nodes.get(&id) {
            return Ok(b.clone());
        }
        let b = self.peek_node(id)?;
        self.raw_nodes.insert(id, b.clone());
        Ok(b)
    }

    /// [`Sorted::read_node`] without keeping it: a descent that passes a node once
    /// (a rank) pays for no table of what it read.
    fn peek_node(&self, id: u32) -> Result<Bytes, CmdError> {
        if let Some(b) = self.raw_nodes.get(&id) {
            return Ok(b.clone());
        }
        let family = self.family.ok_or_else(damaged)?;
        self.ks
            .chunk(self.key, family, node_chunk(id))?
            .ok_or_else(damaged)
    }

    /// Where `e` goes below node `id` (`None` if it is a leaf, else the child's
    /// position and number) and whether `to` goes to the same child; an inner node
    /// not decoded yet is read in place.
    fn route_both(
        &mut self,
        id: u32,
        e: &Elem,
        to: &Elem,
    ) -> Result<Option<(usize, u32, bool)>, CmdError> {
        if id == TOP
            && let Some(b) = &self.raw_top
        {
            if self.height == 0 {
                return Ok(None);
            }
            return route_raw_both(b, e, to).map(Some);
        }
        if let Some(node) = self.nodes.get(&id) {
            return match node {
                Node::Leaf(_) => Ok(None),
                Node::Inner(cs) if cs.is_empty() => Err(damaged()),
                Node::Inner(cs) => {
                    let i = child_for(cs, e);
                    Ok(Some((i, cs[i].no, child_for(cs, to) == i)))
                }
            };
        }
        let b = self.read_node(id)?;
        match b.first() {
            Some(0) => Ok(None),
            Some(1) => route_raw_both(&b[1..], e, to).map(Some),
            _ => Err(damaged()),
        }
    }

    fn node(&mut self, id: u32) -> Result<&mut Node, CmdError> {
        if id == TOP
            && let Some(b) = self.raw_top.take()
        {
            self.nodes.insert(TOP, Node::decode(&b, self.height == 0)?);
        }
        if !self.nodes.contains_key(&id) {
            let b = self.read_node(id)?;
            self.raw_nodes.remove(&id);
            let node = match b.first() {
                Some(0) => Node::decode(&b.slice(1..), true)?,
                Some(1) => Node::decode(&b.slice(1..), false)?,
                _ => return Err(damaged()),
            };
            self.nodes.insert(id, node);
        }
        self.nodes.get_mut(&id).ok_or_else(damaged)
    }

    fn touch(&mut self, id: u32) {
        if id != TOP {
            self.dirty_nodes.insert(id);
        }
        self.changed = true;
    }

    fn alloc(&mut self) -> u32 {
        let id = self.numbers.take();
        self.freed.remove(&node_chunk(id));
        id
    }

    fn release(&mut self, id: u32) {
        self.nodes.remove(&id);
        self.raw_nodes.remove(&id);
        self.dirty_nodes.remove(&id);
        self.freed.insert(node_chunk(id));
        self.numbers.give_back(id);
    }

    fn bucket_mut(&mut self, i: u32) -> Result<&mut Bucket, CmdError> {
        if !self.index.contains_key(&i) {
            let b = match self.raw_index.remove(&i) {
                Some(raw) => decode_bucket(&raw)?,
                None => {
                    let family = self.family.ok_or_else(damaged)?;
                    match self.ks.chunk(self.key, family, bucket_chunk(i))? {
                        Some(b) => decode_bucket(&b)?,
                        None => Vec::new(),
                    }
                }
            };
            self.index.insert(i, b);
        }
        self.index.get_mut(&i).ok_or_else(damaged)
    }

    /// Member-index chunk `i` as read (with any scores changed in place), unless it
    /// is decoded already.
    fn raw_bucket(&mut self, i: u32) -> Result<Option<&mut Bytes>, CmdError> {
        if self.index.contains_key(&i) {
            return Ok(None);
        }
        if !self.raw_index.contains_key(&i) {
            let family = self.family.ok_or_else(damaged)?;
            let b = self.ks.chunk(self.key, family, bucket_chunk(i))?;
            self.raw_index.insert(i, b.unwrap_or_default());
        }
        Ok(self.raw_index.get_mut(&i))
    }

    /// Sets the score of `member`, which member-index chunk `i` holds, in place;
    /// `false` if it is not there.
    fn rescore(&mut self, i: u32, member: &[u8], score: f64) -> Result<bool, CmdError> {
        if let Some(raw) = self.raw_bucket(i)? {
            let Some(at) = find_raw(raw, member)? else {
                return Ok(false);
            };
            // Its own bytes from here on (taken over, not copied, when nothing else
            // shares them).
            let mut v = Vec::from(std::mem::take(raw));
            v[at..at + 8].copy_from_slice(&score.to_le_bytes());
            *raw = Bytes::from(v);
        } else {
            let b = self.bucket_mut(i)?;
            let Some(e) = b.iter_mut().find(|(m, _)| m == member) else {
                return Ok(false);
            };
            e.1 = score;
        }
        self.dirty_buckets.insert(i);
        Ok(true)
    }

    /// The score of `member`.
    pub fn score(&mut self, member: &[u8]) -> Result<Option<f64>, CmdError> {
        if !self.exists {
            return Ok(None);
        }
        if self.height == 0
            && let Some(b) = &self.raw_top
        {
            return Ok(find_elem_raw(b, member)?.map(|(_, s)| s));
        }
        if self.height == 0 {
            let Node::Leaf(v) = self.node(TOP)? else {
                return Err(damaged());
            };
            return Ok(v.iter().find(|e| e.1 == member).map(|e| e.0));
        }
        let i = bucket(field_hash(member), self.buckets);
        if let Some(raw) = self.raw_bucket(i)? {
            return Ok(match find_raw(raw, member)? {
                Some(at) => le_u64(raw, at).map(f64::from_bits),
                None => None,
            });
        }
        let b = self.bucket_mut(i)?;
        Ok(b.iter().find(|(m, _)| m == member).map(|(_, s)| *s))
    }

    /// Sets `member`'s score; its score before, if it was there.
    pub fn set(&mut self, member: &Bytes, score: f64) -> Result<Option<f64>, CmdError> {
        let old = self.score(member)?;
        if old.is_none() && self.count == 0 && self.height > 0 {
            // Emptied by this change: it starts again as one record (the old
            // family's chunks go with the root's next write).
            *self = Sorted {
                exists: self.exists,
                big: self.big,
                expire_at_ms: self.expire_at_ms,
                ..Sorted::from_item(self.ks, self.key, None)?
            };
        }
        if let Some(o) = old {
            // Redis compares scores as numbers: -0 is 0, and nothing changes.
            if o == score {
                return Ok(old);
            }
            let to = if self.big { score } else { score + 0.0 };
            if self.height > 0 && self.move_in_leaf(&(o, member.clone()), &(to, member.clone()))? {
                let i = bucket(field_hash(member), self.buckets);
                if !self.rescore(i, member, to)? {
                    return Err(damaged());
                }
                self.changed = true;
                return Ok(old);
            }
            self.tree_remove(&(o, member.clone()))?;
        } else {
            self.count += 1;
            self.bytes += elem_bytes(member) as u64;
            if self.count as usize > LISTPACK_ENTRIES || member.len() > LISTPACK_VALUE {
                self.big = true;
            }
        }
        // Redis' listpack writes -0 as 0; its skiplist keeps it.
        let score = if self.big { score } else { score + 0.0 };
        self.tree_insert(&(score, member.clone()))?;
        if self.height > 0 {
            let i = bucket(field_hash(member), self.buckets);
            if !self.rescore(i, member, score)? {
                self.bucket_mut(i)?.push((member.clone(), score));
                self.dirty_buckets.insert(i);
            }
        }
        self.exists = true;
        self.changed = true;
        Ok(old)
    }

    /// Removes `member`; its score, if it was there.
    pub fn remove(&mut self, member: &[u8]) -> Result<Option<f64>, CmdError> {
        let Some(score) = self.score(member)? else {
            return Ok(None);
        };
        let m = Bytes::copy_from_slice(member);
        self.tree_remove(&(score, m))?;
        if self.height > 0 {
            let i = bucket(field_hash(member), self.buckets);
            let b = self.bucket_mut(i)?;
            b.retain(|(x, _)| x != member);
            self.dirty_buckets.insert(i);
        }
        self.count -= 1;
        self.bytes = self.bytes.saturating_sub(elem_bytes(member) as u64);
        self.changed = true;
        Ok(Some(score))
    }

    fn tree_insert(&mut self, e: &Elem) -> Result<(), CmdError> {
        self.insert_in(TOP, e)?;
        Ok(())
    }

    /// Inserts `e` below node `id`; the node split off to its right, if it grew too big.
    fn insert_in(&mut self, id: u32, e: &Elem) -> Result<Option<Child>, CmdError> {
        self.touch(id);
        let next = match self.node(id)? {
            Node::Leaf(v) => {
                let pos = v.partition_point(|x| lt(x, e));
                v.insert(pos, e.clone());
                None
            }
            Node::Inner(cs) => {
                if cs.is_empty() {
                    return Err(damaged());
                }
                let i = child_for(cs, e);
                cs[i].count += 1;
                if lt(e, &cs[i].first) {
                    cs[i].first = e.clone();
                }
                Some((i, cs[i].no))
            }
        };
        if let Some((i, no)) = next
            && let Some(new) = self.insert_in(no, e)?
        {
            let Node::Inner(cs) = self.node(id)? else {
                return Err(damaged());
            };
            cs[i].count -= new.count;
            cs.insert(i + 1, new);
        }
        if id == TOP {
            return Ok(None);
        }
        let node = self.node(id)?;
        if node.bytes() <= NODE_MAX || node.len() < 2 {
            return Ok(None);
        }
        let half = node.len() / 2;
        let right = node.split_off(half);
        let child = Child {
            no: 0,
            count: right.count(),
            first: right.first().ok_or_else(damaged)?,
        };
        let no = self.alloc();
        self.nodes.insert(no, right);
        self.touch(no);
        Ok(Some(Child { no, ..child }))
    }

    /// Moves `from` to `to` (the same member, a new score) in place when both belong
    /// in the same leaf: no subtree's count changes, so only the leaf is rewritten
    /// (and its parents' first entries, when its first element changed). Whether it
    /// did; if not, nothing was changed.
    fn move_in_leaf(&mut self, from: &Elem, to: &Elem) -> Result<bool, CmdError> {
        let mut path: Vec<(u32, usize)> = Vec::with_capacity(self.height as usize);
        let mut id = TOP;
        let leaf = loop {
            let Some((i, no, same)) = self.route_both(id, from, to)? else {
                break id;
            };
            if !same {
                return Ok(false);
            }
            path.push((id, i));
            id = no;
        };
        if leaf != TOP && !self.nodes.contains_key(&leaf) {
            // Moved in the leaf's bytes: decoding and encoding its elements cost more
            // than the rest of a ZINCRBY on a large set.
            let b = self.read_node(leaf)?;
            if b.first() != Some(&0) {
                return Err(damaged());
            }
            let (moved, first) = move_raw(&b[1..], from, to)?;
            self.raw_nodes.insert(leaf, Bytes::from(moved));
            self.touch(leaf);
            if let Some(first) = first {
                self.new_first(&path, first)?;
            }
            return Ok(true);
        }
        let Node::Leaf(v) = self.node(leaf)? else {
            return Err(damaged());
        };
        let Ok(pos) = v.binary_search_by(|x| order(x, from)) else {
            return Err(damaged());
        };
        let first_before = v.first().cloned();
        v.remove(pos);
        let at = v.partition_point(|x| lt(x, to));
        v.insert(at, to.clone());
        let first = v.first().cloned().ok_or_else(damaged)?;
        self.touch(leaf);
        if first_before.is_some_and(|f| f.1 == first.1 && f.0.to_bits() == first.0.to_bits()) {
            return Ok(true);
        }
        self.new_first(&path, first)?;
        Ok(true)
    }

    /// A leaf's first element changed to `first`: so does its entry above (the last
    /// step of `path`, the way down to it), and the entry above that while it is the
    /// first child.
    fn new_first(&mut self, path: &[(u32, usize)], first: Elem) -> Result<(), CmdError> {
        for &(parent, i) in path.iter().rev() {
            let Node::Inner(cs) = self.node(parent)? else {
                return Err(damaged());
            };
            cs[i].first = first.clone();
            self.touch(parent);
            if i > 0 {
                break;
            }
        }
        Ok(())
    }

    fn tree_remove(&mut self, e: &Elem) -> Result<(), CmdError> {
        if !self.remove_in(TOP, e)? {
            return Err(damaged());
        }
        Ok(())
    }

    /// Removes `e` below node `id`; whether it was there.
    fn remove_in(&mut self, id: u32, e: &Elem) -> Result<bool, CmdError> {
        let (i, no) = match self.node(id)? {
            Node::Leaf(v) => {
                let Ok(pos) = v.binary_search_by(|x| order(x, e)) else {
                    return Ok(false);
                };
                v.remove(pos);
                self.touch(id);
                return Ok(true);
            }
            Node::Inner(cs) => {
                if cs.is_empty() {
                    return Ok(false);
                }
                let i = child_for(cs, e);
                (i, cs[i].no)
            }
        };
        if !self.remove_in(no, e)? {
            return Ok(false);
        }
        self.touch(id);
        let first = self.node(no)?.first();
        let Node::Inner(cs) = self.node(id)? else {
            return Err(damaged());
        };
        cs[i].count = cs[i].count.saturating_sub(1);
        match first {
            None => {
                cs.remove(i);
                self.release(no);
            }
            Some(f) => {
                cs[i].first = f;
                self.merge_small(id, i)?;
            }
        }
        Ok(true)
    }

    /// Merges child `i` of `id` with a neighbour when it has shrunk below a quarter of
    /// a node and the two fit in one.
    fn merge_small(&mut self, id: u32, i: usize) -> Result<(), CmdError> {
        let Node::Inner(cs) = self.node(id)? else {
            return Err(damaged());
        };
        if cs.len() < 2 {
            return Ok(());
        }
        let (no, j) = (cs[i].no, if i + 1 < cs.len() { i + 1 } else { i - 1 });
        let other = cs[j].no;
        if self.node(no)?.bytes() >= NODE_MAX / 4 {
            return Ok(());
        }
        if self.node(no)?.bytes() + self.node(other)?.bytes() > NODE_MAX * 3 / 4 {
            return Ok(());
        }
        let (l, r) = (i.min(j), i.max(j));
        let Node::Inner(cs) = self.node(id)? else {
            return Err(damaged());
        };
        let (lno, rno, rcount) = (cs[l].no, cs[r].no, cs[r].count);
        cs[l].count += rcount;
        cs.remove(r);
        let right = self.nodes.remove(&rno).ok_or_else(damaged)?;
        self.node(lno)?.append(right)?;
        self.touch(lno);
        self.release(rno);
        Ok(())
    }

    /// How many elements come before the first for which `below` is false (`below` is
    /// true for a prefix of the order: "is before the bound").
    pub fn count_below(&mut self, below: &impl Fn(&Elem) -> bool) -> Result<u64, CmdError> {
        if !self.exists {
            return Ok(0);
        }
        let mut id = TOP;
        let mut acc = 0u64;
        loop {
            match self.node(id)? {
                Node::Leaf(v) => return Ok(acc + v.partition_point(below) as u64),
                Node::Inner(cs) => {
                    let n = cs.partition_point(|c| below(&c.first));
                    if n == 0 {
                        return Ok(acc);
                    }
                    acc += cs[..n - 1].iter().map(|c| c.count).sum::<u64>();
                    id = cs[n - 1].no;
                }
            }
        }
    }

    /// The 0-based rank of `member` in ascending order, with its score.
    pub fn rank(&mut self, member: &[u8]) -> Result<Option<(u64, f64)>, CmdError> {
        if self.height == 0
            && let Some(b) = &self.raw_top
        {
            // One record's elements are in order: the position is the rank.
            return find_elem_raw(b, member);
        }
        let Some(s) = self.score(member)? else {
            return Ok(None);
        };
        let e = (s, Bytes::copy_from_slice(member));
        // A descent like a change's: nodes not decoded yet are read in place, summing
        // the counts of the children before the way down.
        let (mut id, mut acc) = (TOP, 0u64);
        loop {
            if id == TOP
                && let Some(b) = &self.raw_top
            {
                let (_, no, before) = route_raw(b, &e)?;
                acc += before;
                id = no;
                continue;
            }
            if let Some(node) = self.nodes.get(&id) {
                match node {
                    Node::Leaf(v) => {
                        return Ok(Some((acc + v.partition_point(|x| lt(x, &e)) as u64, s)));
                    }
                    Node::Inner(cs) if cs.is_empty() => return Err(damaged()),
                    Node::Inner(cs) => {
                        let i = child_for(cs, &e);
                        acc += cs[..i].iter().map(|c| c.count).sum::<u64>();
                        id = cs[i].no;
                    }
                }
                continue;
            }
            let b = self.peek_node(id)?;
            match b.first() {
                Some(0) => return Ok(Some((acc + count_below_raw(&b[1..], &e)?, s))),
                Some(1) => {
                    let (_, no, before) = route_raw(&b[1..], &e)?;
                    acc += before;
                    id = no;
                }
                _ => return Err(damaged()),
            }
        }
    }

    /// The elements of ranks `from..to` (ascending), reading only the nodes that hold them.
    pub fn range(&mut self, from: u64, to: u64) -> Result<Vec<Elem>, CmdError> {
        let to = to.min(self.count);
        let mut out = Vec::with_capacity(to.saturating_sub(from).min(1 << 16) as usize);
        if from < to {
            self.collect(TOP, from, to, &mut out)?;
        }
        Ok(out)
    }

    fn collect(
        &mut self,
        id: u32,
        from: u64,
        to: u64,
        out: &mut Vec<Elem>,
    ) -> Result<(), CmdError> {
        let decoded = if id == TOP {
            self.raw_top.is_none()
        } else {
            self.nodes.contains_key(&id)
        };
        let kids: Vec<(u32, u64, u64)> = if !decoded {
            // Read in place, members shared with the bytes read: a ZRANGE 0 9 of a
            // large set decodes no node.
            let (b, leaf) = if id == TOP {
                (self.raw_top.clone().ok_or_else(damaged)?, self.height == 0)
            } else {
                let b = self.peek_node(id)?;
                let leaf = match b.first() {
                    Some(0) => true,
                    Some(1) => false,
                    _ => return Err(damaged()),
                };
                (b.slice(1..), leaf)
            };
            if leaf {
                let take = to.saturating_sub(from) as usize;
                for x in raw_elems(&b).skip(from as usize).take(take) {
                    let (score, member) = x?;
                    out.push((score, b.slice_ref(member)));
                }
                return Ok(());
            }
            let (mut at, mut seen) = (0usize, 0u64);
            let mut kids = Vec::new();
            while at < b.len() && seen < to {
                let no = le_u32(&b, at).ok_or_else(damaged)?;
                let count = le_u64(&b, at + 4).ok_or_else(damaged)?;
                let len = le_u32(&b, at + 20).ok_or_else(damaged)? as usize;
                let end = seen + count;
                if end > from {
                    kids.push((no, from.saturating_sub(seen), to.min(end) - seen));
                }
                seen = end;
                at += 24 + len;
            }
            kids
        } else {
            match self.node(id)? {
                Node::Leaf(v) => {
                    let (a, b) = (from as usize, (to as usize).min(v.len()));
                    if a < b {
                        out.extend_from_slice(&v[a..b]);
                    }
                    return Ok(());
                }
                Node::Inner(cs) => {
                    let mut at = 0u64;
                    let mut kids = Vec::new();
                    for c in cs.iter() {
                        let end = at + c.count;
                        if end > from && at < to {
                            kids.push((c.no, from.saturating_sub(at), to.min(end) - at));
                        }
                        at = end;
                        if at >= to {
                            break;
                        }
                    }
                    kids
                }
            }
        };
        for (no, a, b) in kids {
            self.collect(no, a, b, out)?;
        }
        Ok(())
    }

    /// Every element, ascending.
    pub fn all(&mut self) -> Result<Vec<Elem>, CmdError> {
        self.range(0, self.count)
    }

    /// One page of a scan from `cursor` (0 to start) with at least `count` elements
    /// unless the walk ends; the next cursor (0 when done). A small set answers in one
    /// page, as Redis' listpack does; a chunked one by member-index chunk.
    pub fn scan(&mut self, cursor: u64, count: usize) -> Result<(u64, Vec<Elem>), CmdError> {
        if !self.exists {
            return Ok((0, Vec::new()));
        }
        if self.height == 0 || !self.big {
            return Ok((0, self.all()?));
        }
        let mut out = Vec::new();
        let next = scan_classes(self.buckets, cursor, count, |chunk, mask, class| {
            let before = out.len();
            out.extend(
                self.bucket_mut(chunk)?
                    .iter()
                    .filter(|(m, _)| field_hash(m) & mask == class)
                    .map(|(m, s)| (*s, m.clone())),
            );
            Ok::<_, CmdError>(out.len() - before)
        })?;
        Ok((next, out))
    }

    /// Writes the changes as one atomic change of the log (removing the key once it
    /// has no elements), moving between one record and chunks and keeping the top
    /// node and the member index near their sizes.
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
        if self.height == 0 && self.bytes as usize > INLINE_MAX {
            self.chunk_up()?;
        } else if self.height > 0 && self.bytes as usize <= INLINE_MIN {
            let all = self.all()?;
            self = Sorted {
                big: self.big,
                count: self.count,
                bytes: self.bytes,
                exists: true,
                changed: true,
                expire_at_ms: self.expire_at_ms,
                nodes: NumMap::from_iter([(TOP, Node::Leaf(all))]),
                ..Sorted::from_item(self.ks, self.key, None)?
            };
        }
        if self.height > 0 {
            self.settle_top()?;
            self.settle_index()?;
        }
        let top_bytes = match &self.raw_top {
            Some(b) => b.len(),
            None => self.nodes.get(&TOP).map_or(0, Node::bytes),
        };
        let mut root = Vec::with_capacity(64 + self.numbers.encoded_len() + top_bytes);
        root.extend_from_slice(&[u8::from(self.height > 0), u8::from(self.big)]);
        root.extend_from_slice(&self.count.to_le_bytes());
        root.extend_from_slice(&self.bytes.to_le_bytes());
        let mut bodies: Vec<(u32, Option<Vec<u8>>)> = Vec::new();
        let family = match self.family {
            Some(f) if self.height > 0 => {
                root.extend_from_slice(&self.buckets.to_le_bytes());
                root.push(self.height);
                self.numbers.encode(&mut root);
                let chunks = (2 * self.buckets).max(2 * self.numbers.hi());
                for j in std::mem::take(&mut self.dirty_nodes) {
                    let Some(node) = self.nodes.get(&j) else {
                        // Changed in place: its bytes as they are (not copied when
                        // nothing else holds them).
                        let raw = self.raw_nodes.remove(&j).ok_or_else(damaged)?;
                        bodies.push((node_chunk(j), Some(Vec::from(raw))));
                        continue;
                    };
                    let mut b = Vec::with_capacity(1 + node.bytes());
                    b.push(u8::from(matches!(node, Node::Inner(_))));
                    node.encode(&mut b);
                    bodies.push((node_chunk(j), Some(b)));
                }
                for i in std::mem::take(&mut self.dirty_buckets) {
                    if let Some(raw) = self.raw_index.remove(&i) {
                        bodies.push((bucket_chunk(i), Some(Vec::from(raw))));
                        continue;
                    }
                    let entries = self.index.get(&i).ok_or_else(damaged)?;
                    let mut b = Vec::with_capacity(entries.iter().map(|e| elem_bytes(&e.0)).sum());
                    encode_bucket(&mut b, entries);
                    bodies.push((bucket_chunk(i), Some(b)));
                }
                push_removals(&mut bodies, &self.freed, chunks);
                Some(Family {
                    version: f.version,
                    chunks,
                    aux: self.buckets,
                })
            }
            _ => None,
        };
        match &self.raw_top {
            Some(b) => root.extend_from_slice(b),
            None => self.nodes.get(&TOP).ok_or_else(damaged)?.encode(&mut root),
        }
        let exp = self.expire_at_ms;
        super::write_change(
            self.ks,
            self.key,
            ValueType::ZSet,
            &root,
            self.root_was.as_deref(),
            family,
            exp,
            &bodies,
        )
    }

    /// One record becomes chunks: leaves of about half a node, the member index at
    /// its target size, under a top node split as often as it needs.
    fn chunk_up(&mut self) -> Result<(), CmdError> {
        self.node(TOP)?;
        let top = self.nodes.remove(&TOP).ok_or_else(damaged)?;
        let Node::Leaf(elems) = top else {
            return Err(damaged());
        };
        let n = (self.bytes as usize).div_ceil(BUCKET_TARGET).max(2) as u32;
        self.buckets = n;
        self.family = Some(Family {
            version: Family::new_version(),
            chunks: 0,
            aux: n,
        });
        let mut index: NumMap<Bucket> = (0..n).map(|i| (i, Vec::new())).collect();
        for (s, m) in &elems {
            let b = bucket(field_hash(m), n);
            index.entry(b).or_default().push((m.clone(), *s));
        }
        self.index = index;
        self.dirty_buckets = (0..n).collect();
        let kids = self.plant(Node::Leaf(elems))?;
        self.nodes.insert(TOP, Node::Inner(kids));
        self.height = 1;
        Ok(())
    }

    /// Cuts `node` into new nodes of about half a node each; their entries for the
    /// level above.
    fn plant(&mut self, node: Node) -> Result<Vec<Child>, CmdError> {
        let mut kids = Vec::new();
        for piece in node.pieces(NODE_MAX / 2) {
            let no = self.alloc();
            kids.push(Child {
                no,
                count: piece.count(),
                first: piece.first().ok_or_else(damaged)?,
            });
            self.nodes.insert(no, piece);
            self.touch(no);
        }
        Ok(kids)
    }

    /// Keeps the top node small (moving its entries a level down) and never a lone
    /// child above another node.
    fn settle_top(&mut self) -> Result<(), CmdError> {
        if let Some(b) = &self.raw_top {
            // Left as read: small enough, and more than one child (an inner entry is
            // 24 bytes and its member) unless the top is all there is below the root.
            let lone = le_u32(b, 20).is_some_and(|len| b.len() == 24 + len as usize);
            if b.len() <= TOP_MAX && (self.height <= 1 || !lone) {
                return Ok(());
            }
        }
        // Each round leaves the top fewer entries (pieces hold two or more), so it ends
        // even when a few large members alone make the top large.
        while self.node(TOP)?.bytes() > TOP_MAX && self.node(TOP)?.len() > 1 {
            let top = self.nodes.remove(&TOP).ok_or_else(damaged)?;
            let kids = self.plant(top)?;
            self.nodes.insert(TOP, Node::Inner(kids));
            self.height += 1;
        }
        while self.height > 1 {
            let only = match self.node(TOP)? {
                Node::Inner(cs) if cs.len() == 1 => cs[0].no,
                _ => break,
            };
            self.node(only)?;
            let node = self.nodes.remove(&only).ok_or_else(damaged)?;
            self.nodes.insert(TOP, node);
            self.release(only);
            self.height -= 1;
        }
        Ok(())
    }

    /// Splits or merges member-index chunks (linear hashing) as the bytes call for.
    fn settle_index(&mut self) -> Result<(), CmdError> {
        let bytes = self.bytes as usize;
        while bytes > self.buckets as usize * BUCKET_TARGET {
            let n = self.buckets;
            let level = 31 - n.leading_zeros();
            let from = n - (1 << level);
            let old = std::mem::take(self.bucket_mut(from)?);
            let (moved, kept): (Bucket, Bucket) = old
                .into_iter()
                .partition(|(m, _)| bucket(field_hash(m), n + 1) == n);
            *self.bucket_mut(from)? = kept;
            self.index.insert(n, moved);
            self.freed.remove(&bucket_chunk(n));
            self.dirty_buckets.extend([from, n]);
            self.buckets = n + 1;
        }
        while self.buckets > 2 && bytes < self.buckets as usize * BUCKET_TARGET / 4 {
            let last = self.buckets - 1;
            let level = 31 - last.leading_zeros();
            let into = last - (1 << level);
            let moved = std::mem::take(self.bucket_mut(last)?);
            self.bucket_mut(into)?.extend(moved);
            self.index.remove(&last);
            self.dirty_buckets.remove(&last);
            self.dirty_buckets.insert(into);
            self.freed.insert(bucket_chunk(last));
            self.buckets = last;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn change(ks: &Keyspace<'_>, f: impl FnOnce(&mut Sorted<'_, '_>)) {
        change_at(ks, b"z", f);
    }

    fn change_at(ks: &Keyspace<'_>, key: &[u8], f: impl FnOnce(&mut Sorted<'_, '_>)) {
        let mut z = Sorted::open(ks, key).expect("open");
        f(&mut z);
        z.commit().expect("commit");
    }

    /// The model's elements in order.
    fn ordered(model: &BTreeMap<Bytes, f64>) -> Vec<Elem> {
        let mut v: Vec<Elem> = model.iter().map(|(m, s)| (*s, m.clone())).collect();
        v.sort_by(order);
        v
    }

    /// Walks the subtree of `id`: its element count and first element, asserting
    /// that every entry above a node names that node's count and first element.
    fn walk(z: &mut Sorted<'_, '_>, id: u32) -> (u64, Option<Elem>) {
        let kids = match z.node(id).expect("node") {
            Node::Leaf(v) => return (v.len() as u64, v.first().cloned()),
            Node::Inner(cs) => cs.clone(),
        };
        let mut total = 0;
        for c in &kids {
            let (n, first) = walk(z, c.no);
            assert_eq!(n, c.count, "the count above node {}", c.no);
            let first = first.expect("no empty node");
            assert!(
                first.1 == c.first.1 && first.0.to_bits() == c.first.0.to_bits(),
                "the first element above node {}",
                c.no
            );
            total += n;
        }
        (total, kids.first().map(|c| c.first.clone()))
    }

    fn check(ks: &Keyspace<'_>, model: &BTreeMap<Bytes, f64>) {
        // Read in place, from a set just opened (no node decoded).
        let want = ordered(model);
        assert_eq!(
            Sorted::open(ks, b"z").expect("open").all().expect("all"),
            want
        );
        for r in (0..want.len()).step_by(want.len() / 5 + 1) {
            let mut z = Sorted::open(ks, b"z").expect("open");
            let got = z.range(r as u64, r as u64 + 40).expect("range");
            assert_eq!(got, want[r..(r + 40).min(want.len())]);
        }
        let mut z = Sorted::open(ks, b"z").expect("open");
        if z.exists() {
            assert_eq!(walk(&mut z, TOP).0, z.len());
        }
        assert_eq!(z.len(), model.len() as u64);
        assert_eq!(z.all().expect("all"), want);
        for (r, e) in want.iter().enumerate().step_by(97) {
            assert_eq!(z.rank(&e.1).expect("rank"), Some((r as u64, e.0)));
            assert_eq!(
                z.range(r as u64, r as u64 + 3).expect("range"),
                want[r..(r + 3).min(want.len())]
            );
            let below = z.count_below(&|x: &Elem| x.0 < e.0).expect("count");
            assert_eq!(below, want.iter().filter(|x| x.0 < e.0).count() as u64);
        }
        let members: Vec<&Bytes> = model.keys().step_by(13).collect();
        let scores = Sorted::scores_of(ks, b"z", &members).expect("scores");
        for (m, s) in members.iter().zip(scores) {
            assert_eq!(s, model.get(*m).copied());
        }
    }

    #[test]
    fn a_sorted_set_grows_into_a_tree_and_shrinks_back_against_a_model() {
        let (_d, store) = crate::store::testing::store();
        let ks = Keyspace::new(&store, 0);
        let mut model = BTreeMap::new();
        let member = |i: u64| Bytes::from(format!("member:{:05}", i * 7919 % 10007));
        let mut x = 1u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // Many equal scores (lexical order) and a spread of others.
        for i in 0..12_000u64 {
            let s = if i % 3 == 0 {
                0.0
            } else {
                (rnd() % 1000) as f64 / 8.0
            };
            change(&ks, |z| {
                z.set(&member(i % 9000), s).expect("set");
            });
            model.insert(member(i % 9000), s);
        }
        check(&ks, &model);
        let z = Sorted::open(&ks, b"z").expect("open");
        assert!(z.height >= 1, "9,000 members make a tree");
        assert!(store.engine.stats().chunks > 100);
        drop(z);
        // Most go again, in an order unlike the scores'.
        for i in 0..8_950u64 {
            change(&ks, |z| {
                assert!(z.remove(&member(i)).expect("remove").is_some());
            });
            model.remove(&member(i));
            if i % 3000 == 0 {
                check(&ks, &model);
            }
        }
        check(&ks, &model);
        assert_eq!(
            store.engine.stats().chunks,
            0,
            "50 members are one record again"
        );
        change(&ks, |z| {
            for m in model.keys() {
                z.remove(m).expect("remove");
            }
        });
        assert!(
            !ks.exists(b"z").expect("exists"),
            "an empty sorted set is no key"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 12,
            failure_persistence: None,
            ..Default::default()
        })]

        /// Random adds, score changes and removals in commands of random sizes, with
        /// members long and short (trees of several levels, splits and merges of
        /// every kind), always answer as a model does.
        #[test]
        fn random_changes_answer_as_a_model_does(
            ops in proptest::collection::vec((0u8..4, 0u32..3000, 0u8..12, 1usize..300), 1..3000),
            batch in 1usize..40,
        ) {
            let (_d, store) = crate::store::testing::store();
            let ks = Keyspace::new(&store, 0);
            let mut model = BTreeMap::new();
            for group in ops.chunks(batch) {
                change(&ks, |z| {
                    for &(op, id, score, len) in group {
                        let m = Bytes::from(format!("{id:04}{}", "x".repeat(len % (id as usize % 97 + 3))));
                        if op == 0 {
                            z.remove(&m).expect("remove");
                            model.remove(&m);
                        } else {
                            z.set(&m, f64::from(score) - 4.0).expect("set");
                            model.insert(m, f64::from(score) - 4.0);
                        }
                    }
                });
            }
            check(&ks, &model);
        }
    }

    #[test]
    fn a_score_that_keeps_its_member_in_its_leaf_rewrites_the_leaf_alone() {
        let (_d, store) = crate::store::testing::store();
        let ks = Keyspace::new(&store, 0);
        let mut model = BTreeMap::new();
        let member = |i: u64| Bytes::from(format!("member:{i:06}"));
        // `z`, and its twin `t` whose changes always write their root.
        for key in [&b"z"[..], b"t"] {
            change_at(&ks, key, |z| {
                for i in 0..20_000u64 {
                    z.set(&member(i), i as f64).expect("set");
                    model.insert(member(i), i as f64);
                }
            });
        }
        // ZINCRBY 1 on scattered members: most stay in their leaf (among them leaves'
        // first elements, whose entries above change), some pass a neighbour into
        // the next leaf.
        let written = || store.engine.stats().bytes_written;
        let (mut small, mut kept, mut changes) = (0, 0, 0);
        for round in 0..3u64 {
            for i in (round..20_000).step_by(157) {
                let by = if i % 4 == 0 { 2.5 } else { 1.0 };
                let mut alone = false;
                let mut deltas = [0; 2];
                for (d, key) in [&b"z"[..], b"t"].into_iter().enumerate() {
                    let at = written();
                    change_at(&ks, key, |z| {
                        let s = z.score(&member(i)).expect("score").expect("there");
                        z.set(&member(i), s + by).expect("set");
                        assert!(z.height >= 2);
                        // The leaf alone (beside a member-index chunk and the root).
                        alone = z.dirty_nodes.len() == 1;
                        if d == 1 {
                            z.root_was = None;
                        }
                    });
                    deltas[d] = written() - at;
                }
                small += u32::from(alone);
                // The root is not written again when it did not change: always for a
                // change of the leaf alone, and for some that rewrote a node above it.
                kept += u32::from(deltas[0] < deltas[1]);
                assert!(!alone || deltas[0] < deltas[1], "{deltas:?}");
                *model.get_mut(&member(i)).expect("model") += by;
                changes += 1;
            }
            check(&ks, &model);
        }
        assert!(
            small * 10 >= changes * 9,
            "{small} of {changes} changes rewrote the leaf alone"
        );
        assert!(
            kept >= small,
            "{kept} kept their root, {small} rewrote the leaf alone"
        );
    }

    proptest::proptest! {
        /// Reading a node or a member-index chunk in place finds what decoding it finds.
        #[test]
        fn reading_in_place_agrees_with_decoding(
            firsts in proptest::collection::btree_set((-3i8..3, 0u16..40), 1..30),
            probe in (-4i8..4, 0u16..45),
        ) {
            let elem = |(s, m): (i8, u16)| (f64::from(s), Bytes::from(format!("m{m}")));
            let mut kids: Vec<Child> = firsts
                .iter()
                .enumerate()
                .map(|(k, &f)| Child { no: k as u32 * 3, count: k as u64 % 5 + 1, first: elem(f) })
                .collect();
            kids.sort_by(|a, b| order(&a.first, &b.first));
            let mut b = Vec::new();
            Node::Inner(kids.clone()).encode(&mut b);
            let e = elem(probe);
            let i = child_for(&kids, &e);
            let before: u64 = kids[..i].iter().map(|c| c.count).sum();
            proptest::prop_assert_eq!(route_raw(&b, &e).expect("route"), (i, kids[i].no, before));
            let bucket: Bucket = kids.iter().map(|c| (c.first.1.clone(), c.first.0)).collect();
            let mut raw = Vec::new();
            encode_bucket(&mut raw, &bucket);
            let found = find_raw(&raw, &e.1)
                .expect("find")
                .and_then(|at| le_u64(&raw, at).map(f64::from_bits));
            let want = bucket.iter().find(|(m, _)| *m == e.1).map(|(_, s)| *s);
            proptest::prop_assert_eq!(found, want);
            // One record's elements, in order: the position found is the rank.
            let leaf: Vec<Elem> = kids.iter().map(|c| c.first.clone()).collect();
            let mut raw = Vec::new();
            Node::Leaf(leaf.clone()).encode(&mut raw);
            let want = leaf.iter().position(|x| x.1 == e.1).map(|k| (k as u64, leaf[k].0));
            proptest::prop_assert_eq!(find_elem_raw(&raw, &e.1).expect("find"), want);
            let below = leaf.iter().filter(|x| lt(x, &e)).count() as u64;
            proptest::prop_assert_eq!(count_below_raw(&raw, &e).expect("count"), below);
        }

        /// A score change made in a node's bytes routes and moves as the decoded node.
        #[test]
        fn changing_in_place_agrees_with_decoding(
            firsts in proptest::collection::btree_set((-3i8..3, 0u16..40), 1..30),
            pick in 0usize..30,
            to in -4i8..4,
            probe in (-4i8..4, 0u16..45),
        ) {
            let elem = |(s, m): (i8, u16)| (f64::from(s), Bytes::from(format!("m{m}")));
            // Members unique, as in a set.
            let mut seen = std::collections::HashSet::new();
            let mut leaf: Vec<Elem> = firsts.iter().filter(|f| seen.insert(f.1)).map(|&f| elem(f)).collect();
            leaf.sort_by(order);
            let from = leaf[pick % leaf.len()].clone();
            let to = (f64::from(to) + 0.5, from.1.clone());
            // Routing both ends in one pass finds what routing each finds.
            let kids: Vec<Child> = leaf
                .iter()
                .enumerate()
                .map(|(k, f)| Child { no: k as u32 * 3, count: 1, first: f.clone() })
                .collect();
            let mut b = Vec::new();
            Node::Inner(kids.clone()).encode(&mut b);
            let e = elem(probe);
            let i = child_for(&kids, &e);
            proptest::prop_assert_eq!(
                route_raw_both(&b, &e, &to).expect("route"),
                (i, kids[i].no, child_for(&kids, &to) == i)
            );
            // Moving in the bytes leaves what moving the decoded elements leaves.
            let mut raw = Vec::new();
            Node::Leaf(leaf.clone()).encode(&mut raw);
            let (moved, first) = move_raw(&raw, &from, &to).expect("move");
            let mut want = leaf.clone();
            want.retain(|x| x.1 != from.1);
            want.push(to.clone());
            want.sort_by(order);
            let mut encoded = vec![0];
            Node::Leaf(want.clone()).encode(&mut encoded);
            proptest::prop_assert_eq!(&moved, &encoded);
            let changed = (want[0].0.to_bits(), &want[0].1) != (leaf[0].0.to_bits(), &leaf[0].1);
            proptest::prop_assert_eq!(first, changed.then(|| want[0].clone()));
        }
    }

    #[test]
    fn large_members_still_make_a_tree_that_ends() {
        let (_d, store) = crate::store::testing::store();
        let ks = Keyspace::new(&store, 0);
        let mut model = BTreeMap::new();
        // Members of 3 KiB: every separator is larger than a node's target.
        for i in 0..40u64 {
            let m = Bytes::from(format!("{i:04}{}", "m".repeat(3 << 10)));
            change(&ks, |z| {
                z.set(&m, (i % 7) as f64).expect("set");
            });
            model.insert(m, (i % 7) as f64);
        }
        check(&ks, &model);
        let keys: Vec<Bytes> = model.keys().take(35).cloned().collect();
        for m in keys {
            change(&ks, |z| {
                z.remove(&m).expect("remove");
            });
            model.remove(&m);
        }
        check(&ks, &model);
    }

    #[test]
    fn one_command_of_many_elements_builds_a_balanced_tree() {
        let (_d, store) = crate::store::testing::store();
        let ks = Keyspace::new(&store, 0);
        let mut model = BTreeMap::new();
        change(&ks, |z| {
            for i in 0..50_000u64 {
                let m = Bytes::from(format!("m{i}"));
                z.set(&m, (i % 977) as f64).expect("set");
                model.insert(m, (i % 977) as f64);
            }
        });
        check(&ks, &model);
        let z = Sorted::open(&ks, b"z").expect("open");
        assert!(
            z.height >= 2,
            "50,000 members make a tree of two levels or more"
        );
        let root = ks.get_typed(b"z").expect("get").expect("root");
        assert!(root.value.len() <= TOP_MAX + 64, "the root stays small");
        drop(z);
        // A change of one element rewrites a bounded number of bytes.
        let before = store.engine.stats().bytes_written;
        change(&ks, |z| {
            z.set(&Bytes::from_static(b"m7"), -5.0).expect("set");
        });
        let written = store.engine.stats().bytes_written - before;
        assert!(
            written < 6 * NODE_MAX as u64,
            "{written} bytes for one change"
        );
        model.insert(Bytes::from_static(b"m7"), -5.0);
        check(&ks, &model);
    }
}
