//! The blocking pops (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN, BZPOPMAX,
//! BZMPOP): parsed into [`Cmd`]. Applied, each is its non-blocking form, answering nil
//! when there is nothing to pop (as inside MULTI and from scripts); a connection whose
//! command found nothing waits as a [`Block`] and runs it again when a key it names
//! is written (`conn`, `crate::blocking`).

use super::args::Args;
use super::lists::{self, End, next_end};
use super::{CmdError, CmdResult, DataCmd, zsets};
use crate::keyspace::Keyspace;
use crate::protocol::reply::Reply;
use bytes::Bytes;
use std::time::Duration;

/// A blocking command, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Cmd<'a> {
    /// How long it may wait (`None`: for ever).
    pub timeout: Option<Duration>,
    op: Op<'a>,
}

#[derive(Debug, Clone, PartialEq)]
enum Op<'a> {
    /// BLPOP, BRPOP (`one`: answers `[key, element]`), BLMPOP.
    List {
        keys: &'a [Bytes],
        end: End,
        count: u64,
        one: bool,
    },
    /// BLMOVE, BRPOPLPUSH.
    Move {
        src: &'a Bytes,
        dst: &'a Bytes,
        from: End,
        to: End,
    },
    /// BZPOPMIN, BZPOPMAX (`one`: answers `[key, member, score]`), BZMPOP.
    Sorted {
        keys: &'a [Bytes],
        max: bool,
        count: u64,
        one: bool,
    },
}

/// A connection's blocked command: what to run again, where, and until when.
#[derive(Debug, Clone)]
pub struct Block {
    /// The command as it was sent.
    pub argv: Vec<Bytes>,
    /// The database it was sent in.
    pub db: u8,
    /// The keys it waits for.
    pub keys: Vec<Bytes>,
    /// How long it may wait (`None`: for ever).
    pub timeout: Option<Duration>,
}

/// Whether a blocking command's reply says it found nothing to pop.
pub fn found_nothing(reply: &Reply) -> bool {
    matches!(reply, Reply::Nil | Reply::NilArray)
}

/// Redis' timeout argument: seconds (fractions allowed), 0 for ever, whole
/// milliseconds rounded up; one too large for milliseconds in 64 bits is "negative"
/// as in Redis.
fn timeout(b: &[u8]) -> Result<Option<Duration>, CmdError> {
    let secs = zsets::strtod(b).ok_or(CmdError::err("timeout is not a float or out of range"))?;
    let ms = (secs * 1000.0).ceil();
    if ms < 0.0 || ms >= i64::MAX as f64 {
        return Err(CmdError::err("timeout is negative"));
    }
    Ok((ms > 0.0).then(|| Duration::from_millis(ms as u64)))
}

fn done<'a>(a: &Args<'a>, timeout: Option<Duration>, op: Op<'a>) -> Result<DataCmd<'a>, CmdError> {
    a.finish()?;
    Ok(DataCmd::Block(Cmd { timeout, op }))
}

/// `key... timeout`
fn keys_then_timeout<'a>(a: &mut Args<'a>) -> Result<(&'a [Bytes], Option<Duration>), CmdError> {
    let all = a.take_rest();
    let (t, keys) = all.split_last().ok_or(CmdError::Syntax)?;
    Ok((keys, timeout(t)?))
}

fn bpop<'a>(a: &mut Args<'a>, end: End) -> Result<DataCmd<'a>, CmdError> {
    let (keys, t) = keys_then_timeout(a)?;
    let op = Op::List {
        keys,
        end,
        count: 1,
        one: true,
    };
    done(a, t, op)
}

pub fn blpop<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    bpop(a, End::Left)
}

pub fn brpop<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    bpop(a, End::Right)
}

pub fn blmove<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let (src, dst) = (a.next_key()?, a.next_key()?);
    let (from, to) = (next_end(a)?, next_end(a)?);
    let t = timeout(a.next_arg()?)?;
    done(a, t, Op::Move { src, dst, from, to })
}

pub fn brpoplpush<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let (src, dst) = (a.next_key()?, a.next_key()?);
    let t = timeout(a.next_arg()?)?;
    let (from, to) = (End::Right, End::Left);
    done(a, t, Op::Move { src, dst, from, to })
}

pub fn blmpop<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let t = timeout(a.next_arg()?)?;
    let (keys, right, count) = a.mpop(["LEFT", "RIGHT"])?;
    let end = if right { End::Right } else { End::Left };
    let op = Op::List {
        keys,
        end,
        count,
        one: false,
    };
    done(a, t, op)
}

fn bzpop<'a>(a: &mut Args<'a>, max: bool) -> Result<DataCmd<'a>, CmdError> {
    let (keys, t) = keys_then_timeout(a)?;
    let op = Op::Sorted {
        keys,
        max,
        count: 1,
        one: true,
    };
    done(a, t, op)
}

pub fn bzpopmin<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    bzpop(a, false)
}

pub fn bzpopmax<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    bzpop(a, true)
}

pub fn bzmpop<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let t = timeout(a.next_arg()?)?;
    let (keys, max, count) = a.mpop(["MIN", "MAX"])?;
    let op = Op::Sorted {
        keys,
        max,
        count,
        one: false,
    };
    done(a, t, op)
}

/// `[key, [x...]]` with one popped `x` as `[key, x...]` (BLPOP's and BZPOPMIN's
/// shape, from LMPOP's and ZMPOP's).
fn flatten_one(reply: Reply) -> Reply {
    let Reply::Array(mut parts) = reply else {
        return reply;
    };
    let popped = parts.pop();
    match popped {
        Some(Reply::Array(mut items)) if items.len() == 1 => {
            match items.pop() {
                Some(Reply::Array(inner)) => parts.extend(inner),
                Some(one) => parts.push(one),
                None => {}
            }
            Reply::Array(parts)
        }
        Some(other) => {
            parts.push(other);
            Reply::Array(parts)
        }
        None => Reply::Array(parts),
    }
}

impl<'a> Cmd<'a> {
    /// The keys it waits for.
    pub fn keys(&self) -> Vec<Bytes> {
        match &self.op {
            Op::List { keys, .. } | Op::Sorted { keys, .. } => keys.to_vec(),
            Op::Move { src, .. } => vec![(*src).clone()],
        }
    }

    /// Applies its non-blocking form to `ks`: nil when there is nothing to pop.
    pub fn apply(self, ks: &mut Keyspace<'_>) -> CmdResult {
        match self.op {
            Op::List {
                keys,
                end,
                count,
                one,
            } => {
                let reply = lists::Cmd::MPop { keys, end, count }.apply(ks)?;
                Ok(if one { flatten_one(reply) } else { reply })
            }
            Op::Move { src, dst, from, to } => lists::Cmd::Move { src, dst, from, to }.apply(ks),
            Op::Sorted {
                keys,
                max,
                count,
                one,
            } => {
                let reply = zsets::Cmd::MPop { keys, max, count }.apply(ks)?;
                Ok(if one { flatten_one(reply) } else { reply })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_read_as_redis_reads_them() {
        let t = |s: &str| timeout(s.as_bytes());
        assert_eq!(t("0"), Ok(None));
        assert_eq!(t("1.5"), Ok(Some(Duration::from_millis(1500))));
        assert_eq!(
            t("0.0001"),
            Ok(Some(Duration::from_millis(1))),
            "rounded up"
        );
        assert_eq!(t("-1"), Err(CmdError::err("timeout is negative")));
        assert_eq!(t("inf"), Err(CmdError::err("timeout is negative")));
        assert_eq!(t("1e20"), Err(CmdError::err("timeout is negative")));
        for bad in ["x", "", " 1", "nan"] {
            assert_eq!(
                t(bad),
                Err(CmdError::err("timeout is not a float or out of range")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn one_popped_element_answers_flat() {
        let key = || Reply::Bulk(Bytes::from_static(b"k"));
        let v = || Reply::Bulk(Bytes::from_static(b"v"));
        assert_eq!(
            flatten_one(Reply::Array(vec![key(), Reply::Array(vec![v()])])),
            Reply::Array(vec![key(), v()])
        );
        assert_eq!(
            flatten_one(Reply::Array(vec![
                key(),
                Reply::Array(vec![Reply::Array(vec![v(), Reply::Double(1.5)])])
            ])),
            Reply::Array(vec![key(), v(), Reply::Double(1.5)])
        );
        assert_eq!(flatten_one(Reply::NilArray), Reply::NilArray);
    }
}
