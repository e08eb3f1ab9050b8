//! SORT and SORT_RO on lists and sets: parsed into [`Cmd`], the elements read from
//! the collection, weighed (by themselves or through a BY pattern), ordered, sliced
//! by LIMIT, projected through GET patterns, answered or stored as a list.

use super::args::{Args, is, parse_i64};
use super::{CmdError, CmdResult, DataCmd};
use crate::keyspace::Keyspace;
use crate::protocol::reply::Reply;
use crate::types::hashed::Hashed;
use crate::types::listed::Listed;
use crate::types::sorted::Sorted;
use bytes::Bytes;
use caskade_engine::ValueType;
use std::cmp::Ordering;

/// SORT or SORT_RO, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Cmd<'a> {
    key: &'a Bytes,
    by: Option<&'a Bytes>,
    /// LIMIT offset count.
    limit: Option<(i64, i64)>,
    gets: Vec<&'a Bytes>,
    desc: bool,
    alpha: bool,
    store: Option<&'a Bytes>,
    /// Run by a script: a set is sorted even without a sort order, as in Redis.
    scripted: bool,
}

impl Cmd<'_> {
    /// Marks it as run by a script.
    pub fn scripted(&mut self) {
        self.scripted = true;
    }
}

fn parse<'a>(a: &mut Args<'a>, read_only: bool) -> Result<DataCmd<'a>, CmdError> {
    let key = a.next_key()?;
    let mut c = Cmd {
        key,
        by: None,
        limit: None,
        gets: Vec::new(),
        desc: false,
        alpha: false,
        store: None,
        scripted: false,
    };
    while let Some(opt) = a.next_opt() {
        // An option without the arguments it takes is a syntax error, as in Redis.
        let left = a.remaining();
        if is(opt, "ASC") {
            c.desc = false;
        } else if is(opt, "DESC") {
            c.desc = true;
        } else if is(opt, "ALPHA") {
            c.alpha = true;
        } else if is(opt, "LIMIT") && left >= 2 {
            let (o, n) = (a.next_arg()?, a.next_arg()?);
            let int = |b: &Bytes| parse_i64(b).ok_or(CmdError::NotInteger);
            c.limit = Some((int(o)?, int(n)?));
        } else if is(opt, "STORE") && left >= 1 && !read_only {
            c.store = Some(a.next_arg()?);
        } else if is(opt, "BY") && left >= 1 {
            c.by = Some(a.next_arg()?);
        } else if is(opt, "GET") && left >= 1 {
            c.gets.push(a.next_arg()?);
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok(DataCmd::Sort(c))
}

pub fn sort<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    parse(a, false)
}

pub fn sort_ro<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    parse(a, true)
}

/// Whether SORT's arguments name patterns that read other keys (BY, GET): such a
/// SORT holds every stripe, so what it reads is one moment's.
pub fn reads_patterns(rest: &[Bytes]) -> bool {
    rest.iter().skip(1).any(|a| is(a, "BY") || is(a, "GET"))
}

/// The STORE destination among SORT's arguments, if any.
pub fn store_target(rest: &[Bytes]) -> Option<&Bytes> {
    let at = rest.iter().skip(1).position(|a| is(a, "STORE"))?;
    rest.get(at + 2)
}

/// What `pattern` names for `elem`: `#` is the element itself; otherwise the first `*`
/// becomes the element, and a `->field` suffix reads that field of a hash. A key that
/// is absent or of another type gives nothing.
fn lookup(ks: &Keyspace<'_>, pattern: &[u8], elem: &[u8]) -> Result<Option<Bytes>, CmdError> {
    if pattern == b"#" {
        return Ok(Some(Bytes::copy_from_slice(elem)));
    }
    let Some(star) = pattern.iter().position(|&b| b == b'*') else {
        return Ok(None);
    };
    let after = &pattern[star + 1..];
    let (rest, field) = match after.windows(2).position(|w| w == b"->") {
        Some(at) if at + 2 < after.len() => (&after[..at], Some(&after[at + 2..])),
        _ => (after, None),
    };
    let mut key = Vec::with_capacity(pattern.len() + elem.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(elem);
    key.extend_from_slice(rest);
    let Some(item) = ks.get_typed(&key)? else {
        return Ok(None);
    };
    match (field, item.vtype) {
        (None, ValueType::String) => Ok(Some(item.value)),
        (Some(f), ValueType::Hash) => {
            Hashed::from_item(ks, &key, ValueType::Hash, Some(item))?.get(f)
        }
        _ => Ok(None),
    }
}

/// A number as SORT reads it: leading blanks allowed, nothing after it, not NaN.
fn score(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?.trim_start();
    let v: f64 = match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        t => t.parse().ok()?,
    };
    (!v.is_nan()).then_some(v)
}

fn not_numeric() -> CmdError {
    CmdError::err("One or more scores can't be converted into double")
}

impl Cmd<'_> {
    /// Applies the command to `ks`.
    pub fn apply(self, ks: &mut Keyspace<'_>) -> CmdResult {
        let ks = &*ks;
        let item = ks.get_typed(self.key)?;
        let vtype = item.as_ref().map(|i| i.vtype);
        let elems = match vtype {
            None => Vec::new(),
            Some(ValueType::List) => Listed::from_item(ks, self.key, item)?.all()?,
            Some(ValueType::Set) => Hashed::from_item(ks, self.key, ValueType::Set, item)?
                .all()?
                .into_iter()
                .map(|(m, _)| m)
                .collect(),
            Some(ValueType::ZSet) => Sorted::from_item(ks, self.key, item)?
                .all()?
                .into_iter()
                .map(|(_, m)| m)
                .collect(),
            Some(_) => return Err(CmdError::WrongType),
        };
        let (mut by, mut alpha) = (self.by, self.alpha);
        // BY a pattern without `*` means: keep the collection's order.
        let mut sorted = by.is_none_or(|p| p.contains(&b'*'));
        // A set in hash order stored somewhere, or handed to a script, would differ
        // run to run: sort it (as Redis does, for replication's sake).
        if !sorted && vtype == Some(ValueType::Set) && (self.store.is_some() || self.scripted) {
            (sorted, alpha, by) = (true, true, None);
        }
        let mut out: Vec<Bytes> = elems;
        if sorted {
            out = order(ks, out, by, alpha, self.desc)?;
        } else if self.desc && vtype == Some(ValueType::ZSet) {
            // Unsorted, a sorted set keeps its own order, which DESC reverses.
            out.reverse();
        }
        let len = out.len() as i64;
        let (offset, count) = self.limit.unwrap_or((0, -1));
        let start = offset.max(0);
        let mut end = if count < 0 {
            len - 1
        } else {
            start + count - 1
        };
        let start = if start >= len {
            end = len - 2;
            len - 1
        } else {
            start
        };
        end = end.min(len - 1);
        let picked: &[Bytes] = if start <= end && start >= 0 {
            &out[start as usize..=end as usize]
        } else {
            &[]
        };
        let mut values: Vec<Option<Bytes>> = Vec::new();
        for e in picked {
            if self.gets.is_empty() {
                values.push(Some(e.clone()));
            }
            for g in &self.gets {
                values.push(lookup(ks, g, e)?);
            }
        }
        let Some(dst) = self.store else {
            return Ok(Reply::Array(values.into_iter().map(Reply::opt).collect()));
        };
        let n = values.len() as i64;
        ks.delete(dst)?;
        if n > 0 {
            let elems = values.into_iter().map(Option::unwrap_or_default).collect();
            Listed::fill(ks, dst, elems, None)?;
        }
        Ok(Reply::Int(n))
    }
}

/// `elems` in SORT's order: by number (ties by bytes) or, with ALPHA, by bytes; by
/// themselves or by what `by` names for each (a missing weight counts as 0, or sorts
/// first with ALPHA).
fn order(
    ks: &Keyspace<'_>,
    elems: Vec<Bytes>,
    by: Option<&Bytes>,
    alpha: bool,
    desc: bool,
) -> Result<Vec<Bytes>, CmdError> {
    enum Weight {
        Num(f64),
        Text(Option<Bytes>),
    }
    let mut weighed = Vec::with_capacity(elems.len());
    for e in elems {
        let w = match by {
            Some(p) => lookup(ks, p, &e)?,
            None => Some(e.clone()),
        };
        let w = if alpha {
            Weight::Text(w)
        } else {
            match w {
                Some(v) => Weight::Num(score(&v).ok_or_else(not_numeric)?),
                None => Weight::Num(0.0),
            }
        };
        weighed.push((e, w));
    }
    weighed.sort_by(|(ea, wa), (eb, wb)| {
        let c = match (wa, wb) {
            (Weight::Num(a), Weight::Num(b)) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
            (Weight::Text(a), Weight::Text(b)) => a.cmp(b),
            _ => Ordering::Equal,
        };
        // Equal numbers fall back on the elements' bytes, as in Redis; equal BY
        // texts keep the collection's order (the sort is stable).
        let c = match wa {
            Weight::Num(_) => c.then_with(|| ea.cmp(eb)),
            Weight::Text(_) => c,
        };
        if desc { c.reverse() } else { c }
    });
    Ok(weighed.into_iter().map(|(e, _)| e).collect())
}
