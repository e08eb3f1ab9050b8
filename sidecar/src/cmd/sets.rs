//! The set commands (SADD ... SSCAN): parsed into [`Cmd`], applied to [`Hashed`]
//! collections of members with empty values, each change one atomic change of the log.

use super::args::{Args, ElementScan, is, parse_i64};
use super::hashes::rng;
use super::{CmdError, CmdResult, DataCmd};
use crate::keyspace::Keyspace;
use crate::protocol::reply::Reply;
use crate::types::hashed::{Entry, Hashed, INTSET_ENTRIES, intset_value};
use bytes::Bytes;
use caskade_engine::ValueType;
use std::collections::HashSet;

/// A set command, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Cmd<'a> {
    /// SADD
    Add(&'a Bytes, &'a [Bytes]),
    /// SREM
    Rem(&'a Bytes, &'a [Bytes]),
    /// SMEMBERS
    Members(&'a Bytes),
    /// SISMEMBER
    IsMember(&'a Bytes, &'a Bytes),
    /// SMISMEMBER
    MIsMember(&'a Bytes, &'a [Bytes]),
    /// SCARD
    Card(&'a Bytes),
    /// SPOP: one member, or a count of them.
    Pop(&'a Bytes, Option<u64>),
    /// SRANDMEMBER: one member, or a count (negative: repeats allowed).
    RandMember(&'a Bytes, Option<i64>),
    /// SMOVE source destination member
    Move(&'a Bytes, &'a Bytes, &'a Bytes),
    /// SINTER, SUNION, SDIFF, and their STORE forms (`store`: the destination).
    Combine {
        op: Op,
        keys: &'a [Bytes],
        store: Option<&'a Bytes>,
    },
    /// SINTERCARD (`limit` 0: none).
    InterCard(&'a [Bytes], u64),
    /// SSCAN
    Scan(ElementScan<'a>),
}

/// How several sets combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Members of every set.
    Inter,
    /// Members of any set.
    Union,
    /// Members of the first set in none of the others.
    Diff,
}

fn done<'a>(a: &Args<'a>, c: Cmd<'a>) -> Result<DataCmd<'a>, CmdError> {
    a.finish()?;
    Ok(DataCmd::Set(c))
}

parse!(sadd(k: next_key, members: rest) => Cmd::Add(k, members));

parse!(srem(k: next_key, members: rest) => Cmd::Rem(k, members));

parse!(smembers(k: next_key) => Cmd::Members(k));

parse!(sismember(k: next_key, m: next_arg) => Cmd::IsMember(k, m));

parse!(smismember(k: next_key, members: rest) => Cmd::MIsMember(k, members));

parse!(scard(k: next_key) => Cmd::Card(k));

/// The optional count of SPOP and SRANDMEMBER: more than one argument after the key is
/// a syntax error before the count is looked at, as in Redis.
fn count_arg<'a>(a: &mut Args<'a>) -> Result<Option<&'a Bytes>, CmdError> {
    if a.remaining() > 1 {
        return Err(CmdError::Syntax);
    }
    Ok(a.next_opt())
}

pub fn spop<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let k = a.next_key()?;
    let count = match count_arg(a)? {
        None => None,
        Some(c) => Some(
            parse_i64(c)
                .and_then(|n| u64::try_from(n).ok())
                .ok_or(CmdError::err("value is out of range, must be positive"))?,
        ),
    };
    done(a, Cmd::Pop(k, count))
}

pub fn srandmember<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let k = a.next_key()?;
    let count = match count_arg(a)? {
        None => None,
        Some(c) => {
            let n = parse_i64(c).ok_or(CmdError::NotInteger)?;
            if n == i64::MIN {
                return Err(CmdError::err(
                    "value is out of range, value must between -9223372036854775807 and 9223372036854775807",
                ));
            }
            Some(n)
        }
    };
    done(a, Cmd::RandMember(k, count))
}

parse!(smove(s: next_key, d: next_key, m: next_arg) => Cmd::Move(s, d, m));

fn combine<'a>(a: &mut Args<'a>, op: Op, store: bool) -> Result<DataCmd<'a>, CmdError> {
    let store = if store { Some(a.next_key()?) } else { None };
    let keys = a.take_rest();
    done(a, Cmd::Combine { op, keys, store })
}

pub fn sinter<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    combine(a, Op::Inter, false)
}

pub fn sinterstore<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    combine(a, Op::Inter, true)
}

pub fn sunion<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    combine(a, Op::Union, false)
}

pub fn sunionstore<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    combine(a, Op::Union, true)
}

pub fn sdiff<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    combine(a, Op::Diff, false)
}

pub fn sdiffstore<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    combine(a, Op::Diff, true)
}

pub fn sintercard<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let keys = a.numkeys(CmdError::err(
        "Number of keys can't be greater than number of args",
    ))?;
    let mut limit = 0;
    while let Some(opt) = a.next_opt() {
        if !is(opt, "LIMIT") {
            return Err(CmdError::Syntax);
        }
        let v = a.next_opt().ok_or(CmdError::Syntax)?;
        limit = parse_i64(v)
            .and_then(|n| u64::try_from(n).ok())
            .ok_or(CmdError::err("LIMIT can't be negative"))?;
    }
    done(a, Cmd::InterCard(keys, limit))
}

parse!(sscan(s: element_scan) => Cmd::Scan(s));

fn open<'k, 'a>(ks: &'k Keyspace<'a>, key: &'k [u8]) -> Result<Hashed<'k, 'a>, CmdError> {
    Hashed::open(ks, key, ValueType::Set)
}

fn point<'k, 'a>(ks: &'k Keyspace<'a>, key: &'k [u8]) -> Result<Hashed<'k, 'a>, CmdError> {
    Hashed::open_point(ks, key, ValueType::Set)
}

fn members(h: &mut Hashed<'_, '_>) -> Result<Vec<Bytes>, CmdError> {
    Ok(h.all()?.into_iter().map(|(m, _)| m).collect())
}

fn bulks(members: Vec<Bytes>) -> Vec<Reply> {
    members.into_iter().map(Reply::Bulk).collect()
}

/// Members as Redis orders a set it built from them: an intset (few integers)
/// numerically; a hashtable in no order clients may rely on.
fn set_order(members: &mut [Bytes]) {
    if members.len() <= INTSET_ENTRIES && members.iter().all(|m| intset_value(m).is_some()) {
        members.sort_by_key(|m| intset_value(m));
    }
}

/// `n` distinct entries of `h` picked at random (all of them if it has no more).
fn pick_distinct(
    h: &mut Hashed<'_, '_>,
    n: u64,
    rng: &mut impl FnMut(u64) -> u64,
) -> Result<Vec<Entry>, CmdError> {
    if n >= h.len() {
        return h.all();
    }
    if n.saturating_mul(4) < h.len() {
        // Few of many: random picks, repeats dropped, without reading every chunk.
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for _ in 0..n.saturating_mul(64) {
            let Some(e) = h.random(rng)? else { break };
            if seen.insert(e.0.clone()) {
                out.push(e);
                if out.len() as u64 == n {
                    return Ok(out);
                }
            }
        }
    }
    let mut all = h.all()?;
    // A partial Fisher-Yates shuffle: `n` distinct members.
    let want = n as usize;
    for i in 0..want {
        let j = i + rng((all.len() - i) as u64) as usize;
        all.swap(i, j);
    }
    all.truncate(want);
    Ok(all)
}

impl Cmd<'_> {
    /// Applies the command to `ks`.
    pub fn apply(self, ks: &mut Keyspace<'_>) -> CmdResult {
        let ks = &*ks;
        match self {
            Cmd::Add(key, members) => {
                let mut h = open(ks, key)?;
                let mut added = 0;
                for m in members {
                    if !h.contains(m)? {
                        h.set(m, &Bytes::new())?;
                        added += 1;
                    }
                }
                h.commit()?;
                Ok(Reply::Int(added))
            }
            Cmd::Rem(key, members) => {
                let mut h = open(ks, key)?;
                let mut n = 0;
                for m in members {
                    n += h.remove(m)? as i64;
                }
                h.commit()?;
                Ok(Reply::Int(n))
            }
            Cmd::Members(key) => Ok(Reply::Set(bulks(members(&mut open(ks, key)?)?))),
            Cmd::IsMember(key, m) => Ok(Reply::Int(point(ks, key)?.contains(m)? as i64)),
            Cmd::MIsMember(key, ms) => {
                let mut h = point(ks, key)?;
                let mut out = Vec::with_capacity(ms.len());
                for m in ms {
                    out.push(Reply::Int(h.contains(m)? as i64));
                }
                Ok(Reply::Array(out))
            }
            Cmd::Card(key) => Ok(Reply::Int(open(ks, key)?.len() as i64)),
            Cmd::Pop(key, count) => pop(ks, key, count),
            Cmd::RandMember(key, count) => rand_member(ks, key, count),
            Cmd::Move(src, dst, m) => move_member(ks, src, dst, m),
            Cmd::Combine { op, keys, store } => {
                let mut out = combined(ks, op, keys, 0)?;
                let Some(dst) = store else {
                    set_order(&mut out);
                    return Ok(Reply::Set(bulks(out)));
                };
                let n = out.len() as i64;
                ks.delete(dst)?;
                if n > 0 {
                    let entries = out.into_iter().map(|m| (m, Bytes::new())).collect();
                    Hashed::fill(ks, dst, ValueType::Set, entries, false, None)?;
                }
                Ok(Reply::Int(n))
            }
            Cmd::InterCard(keys, limit) => Ok(Reply::Int(
                combined(ks, Op::Inter, keys, limit)?.len() as i64,
            )),
            Cmd::Scan(s) => {
                let (next, entries) = open(ks, s.key)?.scan(s.cursor, s.count)?;
                Ok(s.page(next, entries.into_iter().map(|(m, _)| (m, None))))
            }
        }
    }
}

/// The members `op` makes of the sets at `keys` (absent keys are empty sets; a key of
/// another type is WRONGTYPE), at most `limit` of them for an intersection (0: all).
fn combined(ks: &Keyspace<'_>, op: Op, keys: &[Bytes], limit: u64) -> Result<Vec<Bytes>, CmdError> {
    let mut sets = Vec::with_capacity(keys.len());
    for k in keys {
        sets.push(open(ks, k)?);
    }
    match op {
        Op::Inter => {
            if sets.iter().any(|s| !s.exists()) {
                return Ok(Vec::new());
            }
            // Walk the smallest; look each member up in the others.
            let Some(small) = (0..sets.len()).min_by_key(|&i| sets[i].len()) else {
                return Ok(Vec::new());
            };
            let mut first = sets.swap_remove(small);
            let mut out = Vec::new();
            'member: for m in members(&mut first)? {
                for s in sets.iter_mut() {
                    if !s.contains(&m)? {
                        continue 'member;
                    }
                }
                out.push(m);
                if out.len() as u64 == limit {
                    break;
                }
            }
            Ok(out)
        }
        Op::Union => {
            let mut seen = HashSet::new();
            let mut out = Vec::new();
            for s in sets.iter_mut() {
                for m in members(s)? {
                    if seen.insert(m.clone()) {
                        out.push(m);
                    }
                }
            }
            Ok(out)
        }
        Op::Diff => {
            let mut iter = sets.into_iter();
            let Some(mut first) = iter.next() else {
                return Ok(Vec::new());
            };
            let mut rest: Vec<_> = iter.filter(|s| s.exists()).collect();
            let mut out = Vec::new();
            'member: for m in members(&mut first)? {
                for s in rest.iter_mut() {
                    if s.contains(&m)? {
                        continue 'member;
                    }
                }
                out.push(m);
            }
            Ok(out)
        }
    }
}

fn pop(ks: &Keyspace<'_>, key: &Bytes, count: Option<u64>) -> CmdResult {
    let mut h = open(ks, key)?;
    let mut rng = rng();
    let Some(count) = count else {
        let Some((m, _)) = h.random(&mut rng)? else {
            return Ok(Reply::Nil);
        };
        h.remove(&m)?;
        h.commit()?;
        return Ok(Reply::Bulk(m));
    };
    if count == 0 || !h.exists() {
        return Ok(Reply::Set(Vec::new()));
    }
    let picked = pick_distinct(&mut h, count, &mut rng)?;
    if picked.len() as u64 >= h.len() {
        ks.delete(key)?;
    } else {
        for (m, _) in &picked {
            h.remove(m)?;
        }
        h.commit()?;
    }
    Ok(Reply::Set(bulks(picked.into_iter().map(|e| e.0).collect())))
}

fn rand_member(ks: &Keyspace<'_>, key: &Bytes, count: Option<i64>) -> CmdResult {
    let mut h = open(ks, key)?;
    let mut rng = rng();
    let Some(count) = count else {
        return Ok(Reply::opt(h.random(&mut rng)?.map(|e| e.0)));
    };
    if count == 0 || !h.exists() {
        return Ok(Reply::Array(Vec::new()));
    }
    let picked = if count > 0 {
        pick_distinct(&mut h, count as u64, &mut rng)?
    } else {
        let mut out = Vec::new();
        for _ in 0..count.unsigned_abs() {
            if let Some(e) = h.random(&mut rng)? {
                out.push(e);
            }
        }
        out
    };
    Ok(Reply::Array(bulks(
        picked.into_iter().map(|e| e.0).collect(),
    )))
}

/// SMOVE. The member is added to the destination before it leaves the source, so a
/// crash between the two writes leaves it in both, never in neither.
fn move_member(ks: &Keyspace<'_>, src: &Bytes, dst: &Bytes, m: &Bytes) -> CmdResult {
    let mut from = open(ks, src)?;
    if !from.exists() {
        return Ok(Reply::Int(0));
    }
    if ks.type_of(dst)?.is_some_and(|t| t != ValueType::Set) {
        return Err(CmdError::WrongType);
    }
    if !from.contains(m)? {
        return Ok(Reply::Int(0));
    }
    if src == dst {
        return Ok(Reply::Int(1));
    }
    let mut to = open(ks, dst)?;
    if !to.contains(m)? {
        to.set(m, &Bytes::new())?;
        to.commit()?;
    }
    from.remove(m)?;
    from.commit()?;
    Ok(Reply::Int(1))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{run, texts};
    use crate::protocol::reply::Reply;
    use crate::store::testing::store;
    use std::collections::BTreeSet;

    fn members(r: Reply) -> BTreeSet<String> {
        let (Reply::Set(v) | Reply::Array(v)) = r else {
            panic!("a set reply: {r:?}")
        };
        texts(v).into_iter().collect()
    }

    /// SSCAN of a chunked set, with members removed between calls (chunks merge) and
    /// added (chunks split): every member present for the whole scan is returned.
    #[test]
    fn sscan_returns_every_member_present_throughout_while_chunks_merge_and_split() {
        const KEEP: usize = 1000;
        const CHURN: usize = 7000;
        let (_d, store) = store();
        for i in 0..CHURN {
            if i < KEEP {
                run(&store, &["SADD", "s", &format!("keep{i}")]);
            }
            run(&store, &["SADD", "s", &format!("churn{i}")]);
        }
        let chunks_before = store.engine.stats().chunks;
        let (mut fewest, mut most) = (chunks_before, chunks_before);
        let mut seen = BTreeSet::new();
        let mut cursor = "0".to_string();
        let mut round = 0;
        loop {
            let Reply::Array(page) = run(&store, &["SSCAN", "s", &cursor, "COUNT", "10"]) else {
                panic!("a page")
            };
            let [Reply::Bulk(next), Reply::Array(items)] = &page[..] else {
                panic!("{page:?}")
            };
            seen.extend(texts(items.clone()));
            cursor = String::from_utf8(next.to_vec()).expect("utf-8");
            if cursor == "0" {
                break;
            }
            // The churn leaves (chunks merge), then comes back (chunks split).
            for j in 0..150 {
                let i = round * 150 + j;
                if i < CHURN {
                    run(&store, &["SREM", "s", &format!("churn{i}")]);
                } else if i < 2 * CHURN {
                    run(&store, &["SADD", "s", &format!("churn{}", i - CHURN)]);
                }
            }
            round += 1;
            let chunks = store.engine.stats().chunks;
            (fewest, most) = (fewest.min(chunks), most.max(chunks));
        }
        assert!(
            fewest * 2 < chunks_before && most >= chunks_before,
            "chunks merged and split during the scan: {chunks_before}, down to {fewest}, up to {most}"
        );
        let missed: Vec<usize> = (0..KEEP)
            .filter(|i| !seen.contains(&format!("keep{i}")))
            .collect();
        assert!(
            missed.is_empty(),
            "missed {} members, e.g. {:?}",
            missed.len(),
            &missed[..missed.len().min(5)]
        );
    }

    #[test]
    fn chunked_sets_combine_and_move_as_a_model_does() {
        let (_d, store) = store();
        let (mut a, mut b) = (BTreeSet::new(), BTreeSet::new());
        for i in 0..3000 {
            let m = format!("m{i}");
            if i % 2 == 0 {
                run(&store, &["SADD", "a", &m]);
                a.insert(m.clone());
            }
            if i % 3 == 0 {
                run(&store, &["SADD", "b", &m]);
                b.insert(m);
            }
        }
        assert!(store.engine.stats().chunks > 4, "both sets are chunked");
        let got = |argv: &[&str]| members(run(&store, argv));
        assert_eq!(got(&["SMEMBERS", "a"]), a);
        assert_eq!(
            got(&["SINTER", "a", "b"]),
            a.intersection(&b).cloned().collect()
        );
        assert_eq!(got(&["SUNION", "a", "b"]), a.union(&b).cloned().collect());
        assert_eq!(
            got(&["SDIFF", "a", "b"]),
            a.difference(&b).cloned().collect()
        );
        assert_eq!(
            run(&store, &["SINTERCARD", "2", "a", "b", "LIMIT", "7"]),
            Reply::Int(7)
        );
        assert_eq!(
            run(&store, &["SDIFFSTORE", "d", "a", "b"]),
            Reply::Int(a.difference(&b).count() as i64)
        );
        assert_eq!(run(&store, &["SMOVE", "a", "b", "m2"]), Reply::Int(1));
        a.remove("m2");
        b.insert("m2".into());
        assert_eq!(run(&store, &["SISMEMBER", "a", "m2"]), Reply::Int(0));
        assert_eq!(run(&store, &["SISMEMBER", "b", "m2"]), Reply::Int(1));
        let Reply::Set(popped) = run(&store, &["SPOP", "a", "100"]) else {
            panic!("SPOP with a count answers a set")
        };
        let popped = members(Reply::Set(popped));
        assert_eq!(popped.len(), 100);
        assert!(popped.is_subset(&a), "popped members were members");
        for m in &popped {
            a.remove(m);
        }
        assert_eq!(got(&["SMEMBERS", "a"]), a);
        assert_eq!(run(&store, &["SCARD", "a"]), Reply::Int(a.len() as i64));
        let picked = got(&["SRANDMEMBER", "a", "50"]);
        assert_eq!(picked.len(), 50, "distinct picks");
        assert!(picked.is_subset(&a));
    }
}
