//! The HyperLogLog commands (PFADD, PFCOUNT, PFMERGE): parsed into [`Cmd`], applied to
//! string values in Redis' HLL encoding ([`Hll`]), so an HLL read with GET here
//! loads into Redis with SET, and the other way round.

use super::args::Args;
use super::{CmdError, CmdResult, DataCmd};
use crate::keyspace::Keyspace;
use crate::protocol::reply::Reply;
use crate::types::hll::{self, Hll, HllError};
use bytes::Bytes;
use caskade_engine::{Item, ValueType};

/// A HyperLogLog command, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Cmd<'a> {
    /// PFADD key element...
    Add(&'a Bytes, &'a [Bytes]),
    /// PFCOUNT key...
    Count(&'a [Bytes]),
    /// PFMERGE destkey sourcekey...
    Merge(&'a Bytes, &'a [Bytes]),
}

fn done<'a>(a: &Args<'a>, c: Cmd<'a>) -> Result<DataCmd<'a>, CmdError> {
    a.finish()?;
    Ok(DataCmd::Hll(c))
}

parse!(pfadd(k: next_key, elems: rest) => Cmd::Add(k, elems));

parse!(pfcount(keys: rest) => Cmd::Count(keys));

parse!(pfmerge(k: next_key, sources: rest) => Cmd::Merge(k, sources));

impl From<HllError> for CmdError {
    fn from(e: HllError) -> CmdError {
        match e {
            HllError::NotHll => {
                CmdError::Coded("WRONGTYPE Key is not a valid HyperLogLog string value.".into())
            }
            HllError::Corrupt => CmdError::Coded("INVALIDOBJ Corrupted HLL object detected".into()),
        }
    }
}

/// The HLL at `key` with its record, if the key exists: WRONGTYPE for another type or
/// a string that is no HLL.
fn read(ks: &Keyspace<'_>, key: &[u8]) -> Result<Option<(Hll, Item)>, CmdError> {
    let Some(item) = ks.get_typed(key)? else {
        return Ok(None);
    };
    if item.vtype != ValueType::String {
        return Err(CmdError::WrongType);
    }
    Ok(Some((Hll::from_bytes(&item.value)?, item)))
}

/// Stores `h` at `key`, keeping the expiry `item` had.
fn write(ks: &Keyspace<'_>, key: &[u8], h: Hll, item: Option<&Item>) -> Result<(), CmdError> {
    let exp = item.and_then(|i| i.expire_at_ms);
    ks.put(key, &h.into_bytes(), exp)?;
    Ok(())
}

impl Cmd<'_> {
    /// Applies the command to `ks`.
    pub fn apply(self, ks: &mut Keyspace<'_>) -> CmdResult {
        let ks = &*ks;
        match self {
            Cmd::Add(key, elems) => {
                let (mut h, item, mut updated) = match read(ks, key)? {
                    Some((h, item)) => (h, Some(item), false),
                    None => (Hll::new(), None, true),
                };
                for e in elems {
                    updated |= h.add(e)?;
                }
                if updated {
                    h.invalidate();
                    write(ks, key, h, item.as_ref())?;
                }
                Ok(Reply::Int(i64::from(updated)))
            }
            Cmd::Count([key]) => {
                let Some((mut h, item)) = read(ks, key)? else {
                    return Ok(Reply::Int(0));
                };
                if let Some(card) = h.cached() {
                    return Ok(Reply::Int(card as i64));
                }
                let card = h.count()?;
                // As Redis does, the estimate is cached in the value itself.
                h.cache(card);
                write(ks, key, h, Some(&item))?;
                Ok(Reply::Int(card as i64))
            }
            Cmd::Count(keys) => {
                let mut max = hll::registers();
                for k in keys {
                    if let Some((h, _)) = read(ks, k)? {
                        h.merge_into(&mut max)?;
                    }
                }
                Ok(Reply::Int(hll::count_registers(&max) as i64))
            }
            Cmd::Merge(dst, sources) => {
                let mut max = hll::registers();
                let mut dense = false;
                let mut target = None;
                for (i, k) in std::iter::once(dst).chain(sources).enumerate() {
                    let Some((h, item)) = read(ks, k)? else {
                        continue;
                    };
                    dense |= h.is_dense();
                    h.merge_into(&mut max)?;
                    if i == 0 {
                        target = Some((h, item));
                    }
                }
                let (mut h, item) = match target {
                    Some((h, item)) => (h, Some(item)),
                    None => (Hll::new(), None),
                };
                h.raise_all(&max, dense)?;
                h.invalidate();
                write(ks, dst, h, item.as_ref())?;
                Ok(Reply::OK)
            }
        }
    }
}
