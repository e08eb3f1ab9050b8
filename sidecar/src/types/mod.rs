//! How collections are laid out on the engine's records: each type's encoding, the
//! chunking that keeps a change small, and what every type shares (copying a key of
//! any type for RENAME, COPY and MOVE).

pub mod hashed;

use crate::cmd::CmdError;
use crate::keyspace::Keyspace;
use caskade_engine::{CollectionWrite, Family, Item, RootWrite, ValueType};

/// Writes `item` (the record of `src` in `from`) as `dst` in `to`, replacing whatever
/// `dst` held; a chunked collection is written anew under its new key (its chunks'
/// keys name their root).
pub fn copy_value(
    from: &Keyspace<'_>,
    src: &[u8],
    item: Item,
    to: &Keyspace<'_>,
    dst: &[u8],
) -> Result<(), CmdError> {
    if item.vtype == ValueType::String {
        to.put_item(dst, &item.value, item.expire_at_ms, &item.meta)?;
        return Ok(());
    }
    if Family::decode(&item.meta).is_none() {
        let change = CollectionWrite {
            root: Some(RootWrite {
                vtype: item.vtype,
                value: &item.value,
                family: None,
                expire_at_ms: item.expire_at_ms,
            }),
            chunks: Vec::new(),
        };
        to.write_collection(dst, &change)?;
        return Ok(());
    }
    let vtype = item.vtype;
    let exp = item.expire_at_ms;
    let mut source = hashed::Hashed::from_item(from, src, vtype, Some(item))?;
    let entries = source.all()?;
    let big = source.is_big();
    to.delete(dst)?;
    hashed::Hashed::fill(to, dst, vtype, entries, big, exp)
}
