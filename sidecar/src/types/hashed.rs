//! A collection of unique fields with values, on the log (hashes; sets with empty
//! values): one record while small, in insertion order; past [`INLINE_MAX`] bytes, a
//! family of chunks chosen by linear hashing of the field, each change rewriting only
//! the chunks it touches (and at most one split or merge) plus a small root (not when
//! its count and bytes stay, as when a value is replaced by one as long).
//!
//! | root value (inline)  | size | meaning                                        |
//! |----------------------|-----:|------------------------------------------------|
//! | form                 |    1 | 0: inline                                      |
//! | flags                |    1 | bit 0: Redis would use its big encoding        |
//! | count                |    4 | fields, little-endian                          |
//! | entries              |    … | each: field length (4) · field · value length (4) · value |
//!
//! | root value (chunked) | size | meaning                                        |
//! |----------------------|-----:|------------------------------------------------|
//! | form                 |    1 | 1: chunked                                     |
//! | flags                |    1 | as above                                       |
//! | count                |    8 | fields                                         |
//! | bytes                |    8 | encoded bytes of every entry                   |
//!
//! A chunk's value is its entries, encoded as above. Chunk `i` of `n` holds the fields
//! whose hash `h` gives `h mod 2^(L+1) = i` (or `h mod 2^L = i` where `h mod 2^(L+1) >= n`),
//! with `L = floor(log2 n)`.

use super::{le_u32, prefixed, take_prefixed};
use crate::cmd::CmdError;
use crate::keyspace::Keyspace;
use bytes::{Buf, Bytes};
use caskade_engine::{Family, Item, ValueType};
use std::collections::{BTreeMap, BTreeSet};

/// Above this many encoded bytes a collection is chunked.
pub const INLINE_MAX: usize = 8 << 10;
/// A chunked collection splits a chunk when its chunks average more than this. Small,
/// since a change rewrites its chunk: into a 100,000-field hash an HSET writes 2.7 KB
/// with 2 KiB, 1.2 KB with 1 KiB and 0.67 KB with 512 bytes, and ran 1.1x faster at
/// 512 than at 1 KiB (same session, interleaved), with no more DRAM per field.
const CHUNK_TARGET: usize = 1 << 9;
/// Redis keeps a hash in a listpack up to this many fields...
const LISTPACK_ENTRIES: usize = 128;
/// ...each field and value at most this long.
const LISTPACK_VALUE: usize = 64;
/// Redis keeps a set of integers in an intset up to this many members.
pub const INTSET_ENTRIES: usize = 512;

/// The integer Redis' intset would hold `member` as (its canonical decimal form).
pub fn intset_value(member: &[u8]) -> Option<i64> {
    crate::cmd::parse_i64(member)
}

/// One field and its value.
pub type Entry = (Bytes, Bytes);

/// Whether a collection of `count` fields holding `field` with `value` is one Redis
/// keeps in its big encoding (a hashtable).
fn makes_big(vtype: ValueType, count: usize, field: &[u8], value: &[u8]) -> bool {
    match vtype {
        ValueType::Set => count > INTSET_ENTRIES || intset_value(field).is_none(),
        _ => {
            field.len() > LISTPACK_VALUE || value.len() > LISTPACK_VALUE || count > LISTPACK_ENTRIES
        }
    }
}

fn entry_bytes(f: &[u8], v: &[u8]) -> usize {
    8 + f.len() + v.len()
}

fn encode_entries(out: &mut Vec<u8>, entries: &[Entry]) {
    for (f, v) in entries {
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v);
    }
}

fn decode_entries(b: &Bytes) -> Result<Vec<Entry>, CmdError> {
    // About the entries a record of this size holds, so the vector seldom grows.
    let mut out = Vec::with_capacity(b.len() / 24 + 1);
    let mut at = 0usize;
    while at < b.len() {
        let f = take_prefixed(b, &mut at).ok_or_else(damaged)?;
        let v = take_prefixed(b, &mut at).ok_or_else(damaged)?;
        out.push((f, v));
    }
    Ok(out)
}

/// Where `field`'s entry sits in the encoded entries `b`: (entry start, value length's
/// offset, entry end), or `None` if absent. Compares in place: nothing is copied or
/// reference-counted on the way.
fn locate(b: &[u8], field: &[u8]) -> Result<Option<(usize, usize, usize)>, CmdError> {
    let mut at = 0usize;
    while at < b.len() {
        let start = at;
        let f = prefixed(b, &mut at).ok_or_else(damaged)?;
        let value_at = at;
        prefixed(b, &mut at).ok_or_else(damaged)?;
        if b[f] == *field {
            return Ok(Some((start, value_at, at)));
        }
    }
    Ok(None)
}

/// A run of entries (a small collection's, or a chunk's): as stored, read and changed
/// in place, until something needs them one by one. A point read or change of a small
/// hash decoded every entry (two reference counts each): a fifth of an HGET's time.
enum Entries {
    Raw(Bytes),
    Decoded(Vec<Entry>),
}

impl Default for Entries {
    fn default() -> Self {
        Entries::Decoded(Vec::new())
    }
}

impl Entries {
    /// The value of `field`.
    fn get(&self, field: &[u8]) -> Result<Option<Bytes>, CmdError> {
        match self {
            Entries::Raw(b) => Ok(locate(b, field)?.map(|(_, v, end)| b.slice(v + 4..end))),
            Entries::Decoded(e) => Ok(e.iter().find(|(f, _)| f == field).map(|(_, v)| v.clone())),
        }
    }

    /// Whether `field` is there.
    fn contains(&self, field: &[u8]) -> Result<bool, CmdError> {
        match self {
            Entries::Raw(b) => Ok(locate(b, field)?.is_some()),
            Entries::Decoded(e) => Ok(e.iter().any(|(f, _)| f == field)),
        }
    }

    /// Sets `field` to `value`: the change in encoded bytes, and whether it is new.
    fn set(&mut self, field: &Bytes, value: &Bytes) -> Result<(i64, bool), CmdError> {
        match self {
            Entries::Raw(b) => {
                // A new run: what precedes the entry, the entry, what follows (a new
                // field goes last, keeping insertion order).
                let (head, tail, old, new) = match locate(b, field)? {
                    Some((_, v, end)) => (v, end, end - v - 4, false),
                    None => (b.len(), b.len(), 0, true),
                };
                let mut out = Vec::with_capacity(b.len() + entry_bytes(field, value));
                out.extend_from_slice(&b[..head]);
                if new {
                    out.extend_from_slice(&(field.len() as u32).to_le_bytes());
                    out.extend_from_slice(field);
                }
                out.extend_from_slice(&(value.len() as u32).to_le_bytes());
                out.extend_from_slice(value);
                out.extend_from_slice(&b[tail..]);
                *b = Bytes::from(out);
                let grow = if new {
                    entry_bytes(field, value) as i64
                } else {
                    value.len() as i64 - old as i64
                };
                Ok((grow, new))
            }
            Entries::Decoded(e) => Ok(match e.iter_mut().find(|(f, _)| f == field) {
                Some(entry) => {
                    let delta = value.len() as i64 - entry.1.len() as i64;
                    entry.1 = value.clone();
                    (delta, false)
                }
                None => {
                    e.push((field.clone(), value.clone()));
                    (entry_bytes(field, value) as i64, true)
                }
            }),
        }
    }

    /// Removes `field`, keeping the others' order: the encoded bytes it took, if it
    /// was there.
    fn remove(&mut self, field: &[u8]) -> Result<Option<usize>, CmdError> {
        match self {
            Entries::Raw(b) => {
                let Some((start, _, end)) = locate(b, field)? else {
                    return Ok(None);
                };
                let mut out = Vec::with_capacity(b.len() - (end - start));
                out.extend_from_slice(&b[..start]);
                out.extend_from_slice(&b[end..]);
                *b = Bytes::from(out);
                Ok(Some(end - start))
            }
            Entries::Decoded(e) => Ok(e.iter().position(|(f, _)| f == field).map(|i| {
                let (f, v) = e.remove(i);
                entry_bytes(&f, &v)
            })),
        }
    }

    /// The entries one by one (decoded once, then kept so).
    fn decoded(&mut self) -> Result<&mut Vec<Entry>, CmdError> {
        if let Entries::Raw(b) = self {
            *self = Entries::Decoded(decode_entries(b)?);
        }
        match self {
            Entries::Decoded(e) => Ok(e),
            Entries::Raw(_) => Err(damaged()),
        }
    }

    /// Their encoded size.
    fn encoded_len(&self) -> usize {
        match self {
            Entries::Raw(b) => b.len(),
            Entries::Decoded(e) => e.iter().map(|(f, v)| entry_bytes(f, v)).sum(),
        }
    }

    /// Appends their encoding to `out`.
    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Entries::Raw(b) => out.extend_from_slice(b),
            Entries::Decoded(e) => encode_entries(out, e),
        }
    }
}

/// A collection's record that does not decode.
fn damaged() -> CmdError {
    CmdError::err("collection record is damaged")
}

pub(crate) fn field_hash(f: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(f, 0x6361_736b)
}

/// The chunk of `n` that holds fields of hash `h`.
pub(crate) fn bucket(h: u64, n: u32) -> u32 {
    let level = 31 - n.leading_zeros();
    let wide = (h % (2u64 << level)) as u32;
    if wide < n {
        wide
    } else {
        (h % (1u64 << level)) as u32
    }
}

/// A scan of a family of `n` chunks placed by [`bucket`], from `cursor` (0 to start):
/// visits hash classes until `count` items are gathered or the walk ends, returning the
/// next cursor (0 when done). `visit(chunk, mask, class)` adds the items of `chunk`
/// whose hash `h` has `h & mask == class` and returns how many it added.
///
/// The cursor walks the classes `h mod 2^(L+1)` (`L = floor(log2 n)`) in Redis'
/// reverse-binary order (its `dictScan`): a chunk split or merge between two calls
/// changes `L` by at most one, like a power-of-two table growing or shrinking, so every
/// item present for the whole scan is returned at least once. A cursor over chunk
/// numbers missed the items a merge moved into a chunk already passed.
pub(crate) fn scan_classes<E>(
    n: u32,
    cursor: u64,
    count: usize,
    mut visit: impl FnMut(u32, u64, u64) -> Result<usize, E>,
) -> Result<u64, E> {
    let mask = (2u64 << (31 - n.max(1).leading_zeros())) - 1;
    let mut v = cursor;
    let mut gathered = 0;
    loop {
        let class = v & mask;
        gathered += visit(bucket(class, n), mask, class)?;
        // The next class: increment the cursor's reversed bits above the mask.
        v = ((v | !mask).reverse_bits().wrapping_add(1)).reverse_bits();
        if v == 0 || gathered >= count.max(1) {
            return Ok(v);
        }
    }
}

/// Chunks' entries by chunk number.
type Chunks = BTreeMap<u32, Entries>;

enum Form {
    Inline(Entries),
    Chunked {
        family: Family,
        /// Chunks read so far (and changed ones), by number.
        chunks: Chunks,
        dirty: BTreeSet<u32>,
    },
}

/// A hashed collection opened for reading or changing; changes are written by
/// [`Hashed::commit`] as one atomic change.
pub struct Hashed<'k, 'a> {
    ks: &'k Keyspace<'a>,
    key: &'k [u8],
    vtype: ValueType,
    exists: bool,
    expire_at_ms: Option<u64>,
    big: bool,
    count: u64,
    bytes: u64,
    form: Form,
    changed: bool,
    /// A chunked collection's root as read: a change that leaves its count and bytes
    /// as they were (a value replaced by one as long) writes its chunks alone.
    root_was: Option<Bytes>,
}

impl<'k, 'a> Hashed<'k, 'a> {
    /// The collection of type `vtype` at `key` (empty if absent); WRONGTYPE if the key
    /// holds another type.
    pub fn open(ks: &'k Keyspace<'a>, key: &'k [u8], vtype: ValueType) -> Result<Self, CmdError> {
        Hashed::from_item(ks, key, vtype, ks.get_typed(key)?)
    }

    /// [`Hashed::open`] from the root already read (`None`: the key is absent).
    pub fn from_item(
        ks: &'k Keyspace<'a>,
        key: &'k [u8],
        vtype: ValueType,
        item: Option<Item>,
    ) -> Result<Self, CmdError> {
        let mut h = Hashed {
            ks,
            key,
            vtype,
            exists: false,
            expire_at_ms: None,
            big: false,
            count: 0,
            bytes: 0,
            form: Form::Inline(Entries::default()),
            changed: false,
            root_was: None,
        };
        let Some(item) = item else {
            return Ok(h);
        };
        if item.vtype != vtype {
            return Err(CmdError::WrongType);
        }
        h.exists = true;
        h.expire_at_ms = item.expire_at_ms;
        let v = &item.value;
        let bad = damaged;
        match v.first() {
            Some(0) if v.len() >= 6 => {
                h.big = v[1] & 1 != 0;
                // Read in place, the count as stored: nothing is decoded until needed.
                h.count = u64::from(le_u32(v, 2).ok_or_else(bad)?);
                h.bytes = (v.len() - 6) as u64;
                // Moved past the header, not sliced: a slice of a buffer held alone
                // allocates to share it (and frees that again at the end).
                let mut entries = item.value;
                entries.advance(6);
                h.form = Form::Inline(Entries::Raw(entries));
            }
            Some(1) if v.len() >= 18 => {
                h.big = v[1] & 1 != 0;
                h.count = u64::from_le_bytes(v[2..10].try_into().map_err(|_| bad())?);
                h.bytes = u64::from_le_bytes(v[10..18].try_into().map_err(|_| bad())?);
                let family = Family::decode(&item.meta).ok_or_else(bad)?;
                h.form = Form::Chunked {
                    family,
                    chunks: BTreeMap::new(),
                    dirty: BTreeSet::new(),
                };
                h.root_was = Some(v.clone());
            }
            _ => return Err(bad()),
        }
        Ok(h)
    }

    /// The collection at `key` from its fields alone (distinct), replacing nothing
    /// (the caller removed what `key` held): for RENAME, COPY and the STORE commands.
    /// Built whole, then cut into chunks once, so filling costs O(n).
    pub fn fill(
        ks: &'k Keyspace<'a>,
        key: &'k [u8],
        vtype: ValueType,
        entries: Vec<Entry>,
        big: bool,
        expire_at_ms: Option<u64>,
    ) -> Result<(), CmdError> {
        let mut h = Hashed::from_item(ks, key, vtype, None)?;
        h.count = entries.len() as u64;
        h.bytes = entries.iter().map(|(f, v)| entry_bytes(f, v) as u64).sum();
        h.big = big
            || entries
                .iter()
                .any(|(f, v)| makes_big(vtype, entries.len(), f, v));
        h.exists = !entries.is_empty();
        h.changed = true;
        h.expire_at_ms = expire_at_ms;
        h.form = Form::Inline(Entries::Decoded(entries));
        h.commit()
    }

    /// The collection at `key` for point reads: a chunked one is known from memory,
    /// so a read costs only its chunk (its count is not known this way).
    pub fn open_point(
        ks: &'k Keyspace<'a>,
        key: &'k [u8],
        vtype: ValueType,
    ) -> Result<Self, CmdError> {
        let Some((t, family, exp)) = ks.family(key) else {
            return Hashed::open(ks, key, vtype);
        };
        if t != vtype {
            return Err(CmdError::WrongType);
        }
        Ok(Hashed {
            ks,
            key,
            vtype,
            exists: true,
            expire_at_ms: exp,
            big: true,
            count: 0,
            bytes: 0,
            form: Form::Chunked {
                family,
                chunks: BTreeMap::new(),
                dirty: BTreeSet::new(),
            },
            changed: false,
            root_was: None,
        })
    }

    /// Encoded bytes of every entry.
    pub fn stored_bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether Redis would hold it in its big encoding.
    pub fn is_big(&self) -> bool {
        self.big
    }

    /// Whether the collection exists (has at least one field).
    pub fn exists(&self) -> bool {
        self.exists
    }

    /// How many fields it has.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// The name Redis' OBJECT ENCODING gives it.
    pub fn encoding(&self) -> &'static str {
        match (self.big, self.vtype) {
            (true, _) => "hashtable",
            (false, ValueType::Set) => "intset",
            (false, _) => "listpack",
        }
    }

    fn chunk_mut(&mut self, n: u32) -> Result<&mut Entries, CmdError> {
        let Form::Chunked { family, chunks, .. } = &mut self.form else {
            return Err(damaged());
        };
        match chunks.entry(n) {
            std::collections::btree_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::btree_map::Entry::Vacant(e) => {
                let entries = match self.ks.chunk(self.key, *family, n)? {
                    Some(b) => Entries::Raw(b),
                    None => Entries::default(),
                };
                Ok(e.insert(entries))
            }
        }
    }

    /// The entries holding `field`'s place: the inline list, or its chunk.
    fn place(&mut self, field: &[u8]) -> Result<(&mut Entries, Option<u32>), CmdError> {
        if let Form::Chunked { family, .. } = &self.form {
            let n = bucket(field_hash(field), family.chunks);
            return Ok((self.chunk_mut(n)?, Some(n)));
        }
        match &mut self.form {
            Form::Inline(e) => Ok((e, None)),
            Form::Chunked { .. } => Err(damaged()),
        }
    }

    /// [`Hashed::place`] for a change. A command's first change splices the stored
    /// entries; one of many fields works on them decoded, so it costs a search per
    /// field, not a copy of the record per field.
    fn place_to_change(&mut self, field: &[u8]) -> Result<(&mut Entries, Option<u32>), CmdError> {
        let again = self.changed;
        let (entries, n) = self.place(field)?;
        if again {
            entries.decoded()?;
        }
        Ok((entries, n))
    }

    /// The value of `field`.
    pub fn get(&mut self, field: &[u8]) -> Result<Option<Bytes>, CmdError> {
        if !self.exists {
            return Ok(None);
        }
        self.place(field)?.0.get(field)
    }

    /// Whether `field` is there.
    pub fn contains(&mut self, field: &[u8]) -> Result<bool, CmdError> {
        if !self.exists {
            return Ok(false);
        }
        self.place(field)?.0.contains(field)
    }

    /// Sets `field` to `value`; whether the field is new.
    pub fn set(&mut self, field: &Bytes, value: &Bytes) -> Result<bool, CmdError> {
        let (entries, n) = self.place_to_change(field)?;
        let (grow, new) = entries.set(field, value)?;
        self.mark(n);
        self.bytes = (self.bytes as i64 + grow).max(0) as u64;
        if new {
            self.count += 1;
        }
        self.big |= makes_big(self.vtype, self.count as usize, field, value);
        self.exists = true;
        self.changed = true;
        Ok(new)
    }

    /// Removes `field`; whether it was there.
    pub fn remove(&mut self, field: &[u8]) -> Result<bool, CmdError> {
        if !self.exists {
            return Ok(false);
        }
        let (entries, n) = self.place_to_change(field)?;
        // Order is kept: a small collection answers in insertion order, as Redis' does.
        let Some(gone) = entries.remove(field)? else {
            return Ok(false);
        };
        self.mark(n);
        self.bytes = self.bytes.saturating_sub(gone as u64);
        self.count -= 1;
        self.changed = true;
        Ok(true)
    }

    fn mark(&mut self, n: Option<u32>) {
        if let (Some(n), Form::Chunked { dirty, .. }) = (n, &mut self.form) {
            dirty.insert(n);
        }
    }

    /// Every entry, in the order Redis answers with where it has one: a small hash in
    /// insertion order, an intset in numeric order; chunk by chunk otherwise.
    pub fn all(&mut self) -> Result<Vec<Entry>, CmdError> {
        if !self.exists {
            return Ok(Vec::new());
        }
        let mut out = match &mut self.form {
            Form::Inline(e) => e.decoded()?.clone(),
            Form::Chunked { family, .. } => {
                let n = family.chunks;
                let mut out = Vec::with_capacity(self.count as usize);
                for i in 0..n {
                    out.extend(self.chunk_mut(i)?.decoded()?.iter().cloned());
                }
                out
            }
        };
        if self.vtype == ValueType::Set && !self.big {
            out.sort_by_key(|(m, _)| intset_value(m));
        }
        Ok(out)
    }

    /// One page of a scan from `cursor` (0 to start) with at least `count` entries
    /// unless the walk ends; the next cursor (0 when done).
    pub fn scan(&mut self, cursor: u64, count: usize) -> Result<(u64, Vec<Entry>), CmdError> {
        if !self.exists {
            return Ok((0, Vec::new()));
        }
        // Redis answers a collection in its small encoding in one page.
        let n = match &self.form {
            Form::Chunked { family, .. } if self.big => family.chunks as u64,
            _ => return Ok((0, self.all()?)),
        };
        let mut out = Vec::new();
        let next = scan_classes(n as u32, cursor, count, |chunk, mask, class| {
            let before = out.len();
            out.extend(
                self.chunk_mut(chunk)?
                    .decoded()?
                    .iter()
                    .filter(|(f, _)| field_hash(f) & mask == class)
                    .cloned(),
            );
            Ok::<_, CmdError>(out.len() - before)
        })?;
        Ok((next, out))
    }

    /// A uniformly chosen entry, or `None` if empty.
    pub fn random(&mut self, rng: &mut impl FnMut(u64) -> u64) -> Result<Option<Entry>, CmdError> {
        if !self.exists || self.count == 0 {
            return Ok(None);
        }
        match &mut self.form {
            Form::Inline(e) => {
                let e = e.decoded()?;
                Ok(e.get(rng(e.len() as u64) as usize).cloned())
            }
            Form::Chunked { family, .. } => {
                // A chunk by its share of the fields would need every count; chunks are
                // balanced by hashing, so a random chunk's random entry is close to fair.
                let n = family.chunks as u64;
                for _ in 0..64 {
                    let c = self.chunk_mut(rng(n) as u32)?.decoded()?;
                    if !c.is_empty() {
                        let i = rng(c.len() as u64) as usize;
                        return Ok(Some(c[i].clone()));
                    }
                }
                let all = self.all()?;
                Ok((!all.is_empty()).then(|| all[rng(all.len() as u64) as usize].clone()))
            }
        }
    }

    /// Writes the changes as one atomic change of the log (removing the key once it
    /// has no fields), splitting or merging chunks to keep them near their target
    /// size: one split per chunk's worth of growth.
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
        let flags = self.big as u8;
        let (vtype, exp) = (self.vtype, self.expire_at_ms);
        match &self.form {
            Form::Inline(e) => {
                // The header, then the entries as they are (spliced ones are not copied
                // again into a root value first).
                let mut head = [0, flags, 0, 0, 0, 0];
                head[2..].copy_from_slice(&(self.count as u32).to_le_bytes());
                let decoded;
                let rest: &[u8] = match e {
                    Entries::Raw(b) => b,
                    Entries::Decoded(_) => {
                        let mut v = Vec::with_capacity(e.encoded_len());
                        e.encode_into(&mut v);
                        decoded = v;
                        &decoded
                    }
                };
                let root = super::RootValue { head: &head, rest };
                super::write_change_parts(self.ks, self.key, vtype, root, None, None, exp, &[])
            }
            Form::Chunked {
                family,
                chunks,
                dirty,
            } => {
                let mut root = Vec::with_capacity(18);
                root.extend_from_slice(&[1, flags]);
                root.extend_from_slice(&self.count.to_le_bytes());
                root.extend_from_slice(&self.bytes.to_le_bytes());
                let bodies: Vec<(u32, Option<Vec<u8>>)> = dirty
                    .iter()
                    .map(|&n| {
                        let c = &chunks[&n];
                        let mut b = Vec::with_capacity(c.encoded_len());
                        c.encode_into(&mut b);
                        (n, Some(b))
                    })
                    .collect();
                let was = self.root_was.as_deref();
                let family = Some(*family);
                super::write_change(self.ks, self.key, vtype, &root, was, family, exp, &bodies)
            }
        }
    }

    /// Moves between the inline and chunked forms, and splits or merges chunks.
    fn reshape(&mut self) -> Result<(), CmdError> {
        let bytes = self.bytes as usize;
        match &mut self.form {
            Form::Inline(e) if bytes > INLINE_MAX => {
                // Chunked from the start at about the target size each.
                let entries = std::mem::take(e.decoded()?);
                let n = bytes.div_ceil(CHUNK_TARGET).max(2) as u32;
                let mut parts: Vec<Vec<Entry>> = (0..n).map(|_| Vec::new()).collect();
                for (f, v) in entries {
                    parts[bucket(field_hash(&f), n) as usize].push((f, v));
                }
                let chunks: Chunks = (0..n)
                    .zip(parts)
                    .map(|(i, p)| (i, Entries::Decoded(p)))
                    .collect();
                self.form = Form::Chunked {
                    family: Family::new(Family::new_version(), n),
                    dirty: (0..n).collect(),
                    chunks,
                };
            }
            Form::Chunked { family, .. } if bytes <= INLINE_MAX / 4 => {
                let n = family.chunks;
                let mut all = Vec::with_capacity(self.count as usize);
                for i in 0..n {
                    all.append(self.chunk_mut(i)?.decoded()?);
                }
                self.form = Form::Inline(Entries::Decoded(all));
            }
            Form::Chunked { .. } => {
                // As many splits (or merges) as this change's growth (or shrinkage)
                // calls for: one for a field or two, more for a command of many.
                while bytes > self.chunked()?.0.chunks as usize * CHUNK_TARGET {
                    self.split()?;
                }
                loop {
                    let n = self.chunked()?.0.chunks as usize;
                    if n <= 2 || bytes >= n * CHUNK_TARGET / 4 {
                        break;
                    }
                    self.merge()?;
                }
            }
            Form::Inline(_) => {}
        }
        Ok(())
    }

    /// The chunked form's parts.
    fn chunked(&mut self) -> Result<(&mut Family, &mut Chunks, &mut BTreeSet<u32>), CmdError> {
        match &mut self.form {
            Form::Chunked {
                family,
                chunks,
                dirty,
            } => Ok((family, chunks, dirty)),
            Form::Inline(_) => Err(damaged()),
        }
    }

    /// Linear hashing's split: chunk `n - 2^L` gives the fields that now map to `n`.
    fn split(&mut self) -> Result<(), CmdError> {
        let n = self.chunked()?.0.chunks;
        let level = 31 - n.leading_zeros();
        let from = n - (1 << level);
        let old = std::mem::take(self.chunk_mut(from)?.decoded()?);
        let (moved, kept): (Vec<Entry>, Vec<Entry>) = old
            .into_iter()
            .partition(|(f, _)| bucket(field_hash(f), n + 1) == n);
        *self.chunk_mut(from)? = Entries::Decoded(kept);
        let (family, chunks, dirty) = self.chunked()?;
        chunks.insert(n, Entries::Decoded(moved));
        family.chunks = n + 1;
        dirty.extend([from, n]);
        Ok(())
    }

    /// The reverse of [`Hashed::split`]: the last chunk goes back into its buddy.
    fn merge(&mut self) -> Result<(), CmdError> {
        let last = self.chunked()?.0.chunks - 1;
        let level = 31 - last.leading_zeros();
        let into = last - (1 << level);
        let moved = std::mem::take(self.chunk_mut(last)?.decoded()?);
        self.chunk_mut(into)?.decoded()?.extend(moved);
        let (family, chunks, dirty) = self.chunked()?;
        chunks.remove(&last);
        dirty.remove(&last);
        family.chunks = last;
        dirty.insert(into);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Items that stay for a whole scan are returned at least once, whatever splits and
    /// merges (the chunk count going up or down by one, several times, across powers of
    /// two) happen between the calls.
    #[test]
    fn a_scan_returns_every_item_through_splits_and_merges() {
        let hashes: Vec<u64> = (0..3000u64).map(|i| field_hash(&i.to_le_bytes())).collect();
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut rnd = move |m: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % m
        };
        for start in [1u32, 7, 16, 31, 64, 100] {
            for _ in 0..20 {
                let mut n = start;
                let mut seen = vec![false; hashes.len()];
                let mut cursor = 0;
                let mut calls = 0;
                loop {
                    cursor = scan_classes(n, cursor, 1 + rnd(40) as usize, |chunk, mask, class| {
                        let mut added = 0;
                        for (i, &h) in hashes.iter().enumerate() {
                            if bucket(h, n) == chunk && h & mask == class {
                                seen[i] = true;
                                added += 1;
                            }
                        }
                        Ok::<_, ()>(added)
                    })
                    .expect("visit");
                    calls += 1;
                    if cursor == 0 {
                        break;
                    }
                    // A split or a merge, or several, before the next call.
                    for _ in 0..rnd(4) {
                        n = if rnd(2) == 0 { n + 1 } else { (n - 1).max(1) };
                    }
                    assert!(calls < 100_000, "the scan ends");
                }
                let missed = seen.iter().filter(|s| !**s).count();
                assert_eq!(missed, 0, "from {start} chunks");
            }
        }
    }

    /// Applies `f` to the hash at `key` and commits.
    fn change(ks: &Keyspace<'_>, f: impl FnOnce(&mut Hashed<'_, '_>)) {
        let mut h = Hashed::open(ks, b"h", ValueType::Hash).expect("open");
        f(&mut h);
        h.commit().expect("commit");
    }

    #[test]
    fn a_chunked_change_that_keeps_count_and_bytes_does_not_write_its_root() {
        let (_d, store) = crate::store::testing::store();
        let ks = Keyspace::new(&store, 0);
        let field = |i: u32| Bytes::from(format!("field:{i}"));
        change(&ks, |h| {
            for i in 0..2000u32 {
                h.set(&field(i), &Bytes::from_static(b"aaaa")).expect("set");
            }
        });
        let written = || store.engine.stats().bytes_written;
        // The same change, with its root kept and with it written.
        let mut deltas = [0; 2];
        for (d, value) in [&b"bbbb"[..], b"cccc"].into_iter().enumerate() {
            let at = written();
            change(&ks, |h| {
                h.set(&field(7), &Bytes::copy_from_slice(value))
                    .expect("set");
                if d == 1 {
                    h.root_was = None;
                }
            });
            deltas[d] = written() - at;
        }
        assert!(deltas[0] < deltas[1], "{deltas:?}");
        // A value of another length changes the root's byte count: it is written.
        change(&ks, |h| {
            h.set(&field(8), &Bytes::from_static(b"longer"))
                .expect("set");
        });
        let mut h = Hashed::open(&ks, b"h", ValueType::Hash).expect("open");
        assert_eq!(h.len(), 2000);
        assert_eq!(h.stored_bytes(), 2000 * 8 + field_bytes_sum(2000) + 2);
        assert_eq!(
            h.get(&field(7)).expect("get"),
            Some(Bytes::from_static(b"cccc"))
        );
        assert_eq!(
            h.get(&field(8)).expect("get"),
            Some(Bytes::from_static(b"longer"))
        );
    }

    /// Bytes of fields `field:0` .. `field:{n-1}` and of their four-byte values.
    fn field_bytes_sum(n: u32) -> u64 {
        (0..n).map(|i| format!("field:{i}").len() as u64 + 4).sum()
    }

    #[test]
    fn a_hash_grows_into_chunks_and_shrinks_back_against_a_model() {
        let (_d, store) = crate::store::testing::store();
        let ks = Keyspace::new(&store, 0);
        let mut model = std::collections::BTreeMap::new();
        let field = |i: u32| Bytes::from(format!("field:{i}"));
        let value =
            |i: u32, round: u32| Bytes::from(format!("{round}:{}", "v".repeat(i as usize % 40)));
        for round in 0..3u32 {
            // Grows well past one record, then most of it goes again.
            for i in 0..2000u32 {
                change(&ks, |h| {
                    h.set(&field(i), &value(i, round)).expect("set");
                });
                model.insert(field(i), value(i, round));
            }
            let chunks = store.engine.stats().chunks;
            assert!(
                chunks > 20,
                "round {round}: {chunks} chunks for 2000 fields"
            );
            for i in (0..2000u32).filter(|i| i % 10 != 0) {
                change(&ks, |h| {
                    assert!(h.remove(&field(i)).expect("remove"));
                });
                model.remove(&field(i));
            }
            let mut h = Hashed::open(&ks, b"h", ValueType::Hash).expect("open");
            assert_eq!(h.len(), model.len() as u64);
            let mut all = h.all().expect("all");
            all.sort();
            let want: Vec<Entry> = model.iter().map(|(f, v)| (f.clone(), v.clone())).collect();
            assert_eq!(all, want, "round {round}");
            for (f, v) in &model {
                let mut p = Hashed::open_point(&ks, b"h", ValueType::Hash).expect("open");
                assert_eq!(p.get(f).expect("get").as_ref(), Some(v));
            }
        }
        let merged = store.engine.stats().chunks;
        let bytes = Hashed::open(&ks, b"h", ValueType::Hash)
            .expect("open")
            .stored_bytes();
        // Merged down until chunks average a quarter of their target or more.
        let most = (4 * bytes).div_ceil(CHUNK_TARGET as u64);
        assert!(
            merged <= most,
            "200 fields ({bytes} bytes) left in {merged} chunks, at most {most}: merges follow removals"
        );
        change(&ks, |h| {
            for i in (0..2000u32).filter(|i| i % 10 == 0 && i % 100 != 0) {
                assert!(h.remove(&field(i)).expect("remove"));
                model.remove(&field(i));
            }
        });
        assert_eq!(
            store.engine.stats().chunks,
            0,
            "20 fields fit one record again"
        );
        let mut h = Hashed::open(&ks, b"h", ValueType::Hash).expect("open");
        let mut all = h.all().expect("all");
        all.sort();
        let want: Vec<Entry> = model.iter().map(|(f, v)| (f.clone(), v.clone())).collect();
        assert_eq!(all, want);
        change(&ks, |h| {
            for f in model.keys() {
                h.remove(f).expect("remove");
            }
        });
        assert!(!ks.exists(b"h").expect("exists"), "an empty hash is no key");
    }

    #[test]
    fn one_command_of_many_fields_splits_as_often_as_it_grows() {
        let (_d, store) = crate::store::testing::store();
        let ks = Keyspace::new(&store, 0);
        // Chunked first, then 20 changes of 1,000 fields each (about 36 KiB apiece).
        for round in 0..21u32 {
            change(&ks, |h| {
                for i in 0..1000u32 {
                    let f = Bytes::from(format!("field:{round}:{i:06}"));
                    h.set(&f, &Bytes::from_static(b"0123456789abcdef"))
                        .expect("set");
                }
            });
        }
        let h = Hashed::open(&ks, b"h", ValueType::Hash).expect("open");
        let chunks = store.engine.stats().chunks;
        let average = h.stored_bytes() / chunks;
        assert!(
            average <= CHUNK_TARGET as u64,
            "{chunks} chunks average {average} bytes: a point read stays one small chunk"
        );
    }

    #[test]
    fn linear_hashing_moves_only_the_split_chunk() {
        for n in 2..200u32 {
            let level = 31 - n.leading_zeros();
            let from = n - (1 << level);
            for h in (0..5000u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15)) {
                let (before, after) = (bucket(h, n), bucket(h, n + 1));
                assert!(before < n && after <= n);
                if before != after {
                    assert_eq!((before, after), (from, n), "n={n} h={h}");
                }
            }
        }
    }

    proptest::proptest! {
        /// A run of entries changed in place as stored ends as the same bytes, and
        /// answers the same, as one decoded and changed entry by entry.
        #[test]
        fn changing_entries_in_place_agrees_with_decoding(
            start in proptest::collection::btree_map(0u8..12, 0usize..20, 0..8),
            ops in proptest::collection::vec((0u8..3, 0u8..14, 0usize..20), 1..40),
        ) {
            let field = |f: u8| Bytes::from(format!("f{f}"));
            let value = |n: usize| Bytes::from("v".repeat(n));
            let entries: Vec<Entry> = start.iter().map(|(&f, &n)| (field(f), value(n))).collect();
            let mut raw_bytes = Vec::new();
            encode_entries(&mut raw_bytes, &entries);
            let mut raw = Entries::Raw(Bytes::from(raw_bytes));
            let mut decoded = Entries::Decoded(entries);
            for (op, f, n) in ops {
                let (f, v) = (field(f), value(n));
                match op {
                    0 => proptest::prop_assert_eq!(
                        raw.set(&f, &v).expect("set"),
                        decoded.set(&f, &v).expect("set")
                    ),
                    1 => proptest::prop_assert_eq!(
                        raw.remove(&f).expect("remove"),
                        decoded.remove(&f).expect("remove")
                    ),
                    _ => {
                        proptest::prop_assert_eq!(raw.get(&f).expect("get"), decoded.get(&f).expect("get"));
                        proptest::prop_assert_eq!(
                            raw.contains(&f).expect("contains"),
                            decoded.contains(&f).expect("contains")
                        );
                    }
                }
                proptest::prop_assert!(matches!(raw, Entries::Raw(_)), "read and changed in place");
                proptest::prop_assert_eq!(raw.encoded_len(), decoded.encoded_len());
                let (mut a, mut b) = (Vec::new(), Vec::new());
                raw.encode_into(&mut a);
                decoded.encode_into(&mut b);
                proptest::prop_assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn damaged_entries_are_an_error_not_a_panic() {
        let mut good = Vec::new();
        encode_entries(&mut good, &[(Bytes::from("f"), Bytes::from("value"))]);
        for cut in 0..good.len() {
            let mut e = Entries::Raw(Bytes::copy_from_slice(&good[..cut]));
            if cut == 0 {
                assert_eq!(e.get(b"f").expect("empty"), None);
                continue;
            }
            assert!(e.get(b"f").is_err(), "cut at {cut}");
            assert!(
                e.set(&Bytes::from("g"), &Bytes::new()).is_err(),
                "cut at {cut}"
            );
            assert!(e.remove(b"f").is_err(), "cut at {cut}");
        }
    }
}
