//! Units of execution: one command, or a group of commands (a MULTI/EXEC block, a
//! script), runs holding the stripe locks of every key it names, found from the command
//! table's key positions and taken in one global order, so no other unit sees a state
//! between its steps and two units cannot deadlock.

use crate::cmd::{KeySpec, Spec};
use crate::keyspace::{KeyLocks, StripeGuard};
use bytes::Bytes;

/// What a unit must hold.
#[derive(Debug, Clone, PartialEq)]
pub enum Span<'a> {
    /// No key: nothing to hold.
    Nothing,
    /// The stripes of these keys.
    Keys(Vec<&'a [u8]>),
    /// Every stripe (a flush, or a whole-keyspace read inside a group).
    Everything,
}

impl<'a> Span<'a> {
    /// What `spec` with arguments `rest` must hold, alone (`in_group` false) or as one
    /// step of a group. Alone, a read of one key needs no stripe (one engine read is
    /// atomic) and a whole-keyspace read (SCAN, KEYS) holds none either; in a group
    /// both hold theirs, so the group's view stays still between its steps.
    pub fn of(spec: &Spec, rest: &'a [Bytes], in_group: bool) -> Span<'a> {
        match spec.keys {
            KeySpec::None => Span::Nothing,
            KeySpec::Every { write } if write || in_group => Span::Everything,
            KeySpec::Every { .. } => Span::Nothing,
            KeySpec::Range(..) => {
                let keys: Vec<&[u8]> = spec.key_args(rest).map(|k| &k[..]).collect();
                if keys.is_empty() || (!in_group && !spec.is_write() && keys.len() == 1) {
                    Span::Nothing
                } else {
                    Span::Keys(keys)
                }
            }
        }
    }

    /// Takes the stripes; the unit runs while the guard lives.
    pub fn lock(self, locks: &KeyLocks) -> StripeGuard<'_> {
        match self {
            Span::Nothing => StripeGuard::none(),
            Span::Keys(keys) => locks.lock(keys),
            Span::Everything => locks.lock_all(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::lookup;
    use crate::cmd::testing::argv as v;

    fn spec(name: &str) -> &'static Spec {
        lookup(name.as_bytes()).expect("a command")
    }

    #[test]
    fn spans_come_from_key_positions() {
        let a = v(&["k1", "v1", "k2", "v2"]);
        assert_eq!(
            Span::of(spec("mset"), &a, false),
            Span::Keys(vec![b"k1", b"k2"])
        );
        let a = v(&["src", "dst", "DB", "3"]);
        assert_eq!(
            Span::of(spec("copy"), &a, false),
            Span::Keys(vec![b"src", b"dst"])
        );
        let a = v(&["a", "b", "c"]);
        assert_eq!(
            Span::of(spec("mget"), &a, false),
            Span::Keys(vec![b"a", b"b", b"c"])
        );
        let a = v(&["k", "v", "EX", "10"]);
        assert_eq!(Span::of(spec("set"), &a, false), Span::Keys(vec![b"k"]));
    }

    #[test]
    fn lone_reads_hold_nothing_but_groups_hold_their_keys() {
        let a = v(&["k"]);
        assert_eq!(Span::of(spec("get"), &a, false), Span::Nothing);
        assert_eq!(Span::of(spec("get"), &a, true), Span::Keys(vec![b"k"]));
        assert_eq!(Span::of(spec("flushall"), &[], false), Span::Everything);
        let a = v(&["0"]);
        assert_eq!(Span::of(spec("scan"), &a, false), Span::Nothing);
        assert_eq!(Span::of(spec("scan"), &a, true), Span::Everything);
        assert_eq!(Span::of(spec("ping"), &[], true), Span::Nothing);
    }

    #[test]
    fn spans_lock() {
        let locks = KeyLocks::default();
        drop(Span::Keys(vec![b"x", b"y", b"x"]).lock(&locks));
        drop(Span::Everything.lock(&locks));
        drop(Span::Nothing.lock(&locks));
    }
}
