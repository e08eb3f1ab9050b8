//! Units of execution: one command, or a group of commands (a MULTI/EXEC block, a
//! script), runs holding the stripe locks of every key it names, found from the command
//! table's key positions and taken in one global order, so no other unit sees a state
//! between its steps and two units cannot deadlock.

use crate::store::{KeyLocks, StripeGuard};
use bytes::Bytes;

/// Which keys a command names: what its unit locks and what COMMAND INFO reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KeySpec {
    /// None.
    None,
    /// Redis' first key, last key (negative: from the end) and step, counting the
    /// command's name as position 0.
    Range(i32, i32, i32),
    /// Every key of the database (FLUSHDB, KEYS, SCAN, ...); `write` for the flushes.
    Every {
        /// Whether the command changes keys.
        write: bool,
    },
    /// The argument at this position (the name is 0) counts the keys that follow it
    /// (EVAL's `numkeys`).
    Counted(usize),
    /// The first argument (a destination), then `numkeys` at position 2 counting the
    /// keys after it (ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE).
    DestCounted,
    /// GEORADIUS's: the first argument, and STORE's or STOREDIST's destination.
    RadiusStore,
    /// SORT's: the first argument, and STORE's destination. A SORT whose BY or GET
    /// patterns read other keys holds every stripe.
    Sort,
}

impl KeySpec {
    /// The keys among `rest` (a command's arguments after its name).
    pub fn keys_in<'a>(self, rest: &'a [Bytes]) -> impl Iterator<Item = &'a Bytes> + 'a {
        let (first, last, step) = match self {
            KeySpec::Range(f, l, s) => (f, l, s),
            KeySpec::Counted(_) | KeySpec::DestCounted => {
                let at = if let KeySpec::Counted(at) = self {
                    at
                } else {
                    2
                };
                let n = rest
                    .get(at - 1)
                    .and_then(|b| crate::cmd::parse_i64(b))
                    .filter(|&n| n > 0 && (n as usize) < rest.len().saturating_sub(at - 1))
                    .unwrap_or(0) as i32;
                (at as i32 + 1, at as i32 + n, 1)
            }
            KeySpec::Sort | KeySpec::RadiusStore => (1, 1, 1),
            KeySpec::None | KeySpec::Every { .. } => (1, 0, 1),
        };
        let n = rest.len() as i32;
        let last = if last < 0 { n + 1 + last } else { last.min(n) };
        let step = step.max(1) as usize;
        let range = if first >= 1 && first <= last {
            (first as usize - 1)..(last as usize)
        } else {
            0..0
        };
        let store = match self {
            KeySpec::Sort => crate::cmd::sort_store_target(rest),
            KeySpec::DestCounted => rest.first(),
            KeySpec::RadiusStore => crate::cmd::radius_store_target(rest),
            _ => None,
        };
        rest.get(range)
            .unwrap_or_default()
            .iter()
            .step_by(step)
            .chain(store)
    }
}

/// What a running group (EXEC) holds, for a script run inside it: the script takes
/// no stripes of its own then.
#[derive(Debug, Clone, PartialEq)]
pub enum Holding {
    /// Every stripe.
    All,
    /// These stripes.
    Stripes(Vec<usize>),
}

/// What a unit must hold.
#[derive(Debug, Clone, PartialEq)]
pub enum Span<'a> {
    /// No key: nothing to hold.
    Nothing,
    /// The stripe of one key (kept apart: the common case, with no allocation).
    One(&'a [u8]),
    /// The stripes of these keys.
    Keys(Vec<&'a [u8]>),
    /// Every stripe (a flush, or a whole-keyspace read inside a group).
    Everything,
}

impl<'a> Span<'a> {
    /// What a command naming `keys` with arguments `rest` must
    /// hold, alone (`in_group` false) or as one step of a group. Every command holds
    /// the stripes of the keys it names, reads included: a read must not see a
    /// transaction or script half done. Alone, a whole-keyspace read (SCAN, KEYS)
    /// holds none (as Redis' SCAN, it guarantees no snapshot); in a group it holds
    /// every stripe, so the group's view stays still between its steps.
    pub fn of(keys: KeySpec, rest: &'a [Bytes], in_group: bool) -> Span<'a> {
        match keys {
            KeySpec::None => Span::Nothing,
            KeySpec::Every { write } if write || in_group => Span::Everything,
            KeySpec::Every { .. } => Span::Nothing,
            // One key named at one position: no iterator, no allocation.
            KeySpec::Range(first, last, _) if first == last && first >= 1 => {
                match rest.get(first as usize - 1) {
                    Some(k) => Span::One(k),
                    None => Span::Nothing,
                }
            }
            KeySpec::Sort if crate::cmd::sort_reads_patterns(rest) => Span::Everything,
            KeySpec::Range(..)
            | KeySpec::Counted(_)
            | KeySpec::DestCounted
            | KeySpec::RadiusStore
            | KeySpec::Sort => {
                let mut named = keys.keys_in(rest).map(|k| &k[..]);
                match (named.next(), named.next()) {
                    (None, _) => Span::Nothing,
                    (Some(k), None) => Span::One(k),
                    (Some(a), Some(b)) => Span::Keys([a, b].into_iter().chain(named).collect()),
                }
            }
        }
    }

    /// Takes the stripes, unless `give_up()` turns true while it waits (see
    /// [`KeyLocks::lock_unless`]). An uncontended stripe is taken at once.
    pub fn lock_unless(
        self,
        locks: &KeyLocks,
        give_up: impl Fn() -> bool,
    ) -> Option<StripeGuard<'_>> {
        match self {
            Span::Nothing => Some(StripeGuard::none()),
            Span::One(key) => locks.lock_one_unless(key, give_up),
            Span::Keys(keys) => locks.lock_unless(Some(keys), give_up),
            Span::Everything => locks.lock_unless(None::<[&[u8]; 0]>, give_up),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::testing::argv as v;

    const ONE: KeySpec = KeySpec::Range(1, 1, 1);
    const TWO: KeySpec = KeySpec::Range(1, 2, 1);
    const ALL: KeySpec = KeySpec::Range(1, -1, 1);
    const PAIRS: KeySpec = KeySpec::Range(1, -1, 2);

    #[test]
    fn a_sort_holds_its_key_and_destination_or_everything_for_patterns() {
        let a = v(&["l", "DESC", "STORE", "dst"]);
        assert_eq!(
            Span::of(KeySpec::Sort, &a, false),
            Span::Keys(vec![b"l", b"dst"])
        );
        let a = v(&["l", "ALPHA"]);
        assert_eq!(Span::of(KeySpec::Sort, &a, false), Span::One(b"l"));
        let a = v(&["l", "BY", "w_*", "STORE", "dst"]);
        assert_eq!(Span::of(KeySpec::Sort, &a, false), Span::Everything);
        let a = v(&["l", "get", "#"]);
        assert_eq!(Span::of(KeySpec::Sort, &a, false), Span::Everything);
    }

    #[test]
    fn spans_come_from_key_positions() {
        let a = v(&["k1", "v1", "k2", "v2"]);
        assert_eq!(Span::of(PAIRS, &a, false), Span::Keys(vec![b"k1", b"k2"]));
        let a = v(&["src", "dst", "DB", "3"]);
        assert_eq!(Span::of(TWO, &a, false), Span::Keys(vec![b"src", b"dst"]));
        let a = v(&["a", "b", "c"]);
        assert_eq!(Span::of(ALL, &a, false), Span::Keys(vec![b"a", b"b", b"c"]));
        let a = v(&["k", "v", "EX", "10"]);
        assert_eq!(Span::of(ONE, &a, false), Span::One(b"k"));
        assert_eq!(KeySpec::Range(2, 1, 1).keys_in(&a).count(), 0);
        assert_eq!(KeySpec::Range(1, 9, 1).keys_in(&a).count(), 4);
    }

    #[test]
    fn reads_hold_their_keys_and_whole_keyspace_reads_only_in_groups() {
        let a = v(&["k"]);
        assert_eq!(Span::of(ONE, &a, false), Span::One(b"k"));
        assert_eq!(Span::of(ONE, &a, true), Span::One(b"k"));
        let flush = KeySpec::Every { write: true };
        assert_eq!(Span::of(flush, &[], false), Span::Everything);
        let scan = KeySpec::Every { write: false };
        let a = v(&["0"]);
        assert_eq!(Span::of(scan, &a, false), Span::Nothing);
        assert_eq!(Span::of(scan, &a, true), Span::Everything);
        assert_eq!(Span::of(KeySpec::None, &[], true), Span::Nothing);
    }

    #[test]
    fn spans_lock() {
        let locks = KeyLocks::default();
        let never = || false;
        drop(Span::Keys(vec![b"x", b"y", b"x"]).lock_unless(&locks, never));
        drop(Span::One(b"x").lock_unless(&locks, never));
        drop(Span::Everything.lock_unless(&locks, never));
        drop(Span::Nothing.lock_unless(&locks, never));
        let held = Span::One(b"x").lock_unless(&locks, never);
        assert!(held.is_some());
        assert!(
            Span::Keys(vec![b"y", b"x"])
                .lock_unless(&locks, || true)
                .is_none(),
            "a held stripe and give_up: nothing is kept"
        );
        assert!(
            Span::One(b"y").lock_unless(&locks, || true).is_some(),
            "y was released"
        );
    }
}
