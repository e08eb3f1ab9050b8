//! LCS: the longest common subsequence of two string values, its length, or the
//! matching ranges (IDX, MINMATCHLEN, WITHMATCHLEN), reported in Redis' order (from
//! the ends of the strings backwards).

use super::DataCmd;
use super::args::Args;
use super::error::{CmdError, CmdResult};
use crate::keyspace::Keyspace;
use crate::protocol::reply::Reply;
use bytes::Bytes;
use caskade_engine::MAX_VALUE_LEN;

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN]
#[derive(Debug, Clone, PartialEq)]
pub struct Cmd<'a> {
    a: &'a Bytes,
    b: &'a Bytes,
    len: bool,
    idx: bool,
    min_match: u64,
    with_match_len: bool,
}

pub fn lcs<'a>(args: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let (a, b) = (args.next_key()?, args.next_key()?);
    let mut c = Cmd {
        a,
        b,
        len: false,
        idx: false,
        min_match: 0,
        with_match_len: false,
    };
    while !args.is_empty() {
        if args.eat("LEN") {
            c.len = true;
        } else if args.eat("IDX") {
            c.idx = true;
        } else if args.eat("WITHMATCHLEN") {
            c.with_match_len = true;
        } else if args.remaining() >= 2 && args.eat("MINMATCHLEN") {
            c.min_match = args.next_i64()?.max(0) as u64;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    if c.len && c.idx {
        return Err(CmdError::err(
            "If you want both the length and indexes, please just use IDX.",
        ));
    }
    Ok(DataCmd::Lcs(c))
}

/// One matching run: inclusive ranges in each string.
struct Run {
    a: (usize, usize),
    b: (usize, usize),
}

/// The LCS table: `t[i][j]` is the LCS length of `a[..i]` and `b[..j]`.
struct Table {
    cols: usize,
    cells: Vec<u32>,
}

impl Table {
    fn build(a: &[u8], b: &[u8]) -> Table {
        let cols = b.len() + 1;
        let mut cells = vec![0u32; (a.len() + 1) * cols];
        for i in 1..=a.len() {
            for j in 1..=b.len() {
                cells[i * cols + j] = if a[i - 1] == b[j - 1] {
                    cells[(i - 1) * cols + j - 1] + 1
                } else {
                    cells[(i - 1) * cols + j].max(cells[i * cols + j - 1])
                };
            }
        }
        Table { cols, cells }
    }

    fn at(&self, i: usize, j: usize) -> u32 {
        self.cells[i * self.cols + j]
    }
}

/// Walks the table back from the ends: the common subsequence, and the runs of
/// contiguous matches in the order they are found.
fn walk(a: &[u8], b: &[u8], t: &Table) -> (Vec<u8>, Vec<Run>) {
    let mut out = vec![0u8; t.at(a.len(), b.len()) as usize];
    let mut left = out.len();
    let mut runs = Vec::new();
    let mut current: Option<Run> = None;
    let (mut i, mut j) = (a.len(), b.len());
    while i > 0 && j > 0 {
        let mut close = false;
        if a[i - 1] == b[j - 1] {
            left -= 1;
            out[left] = a[i - 1];
            match &mut current {
                None => {
                    current = Some(Run {
                        a: (i - 1, i - 1),
                        b: (j - 1, j - 1),
                    })
                }
                // Contiguous with the run so far: it grows backwards.
                Some(r) if r.a.0 == i && r.b.0 == j => {
                    r.a.0 -= 1;
                    r.b.0 -= 1;
                }
                Some(_) => close = true,
            }
            if current.as_ref().is_some_and(|r| r.a.0 == 0 || r.b.0 == 0) {
                close = true;
            }
            i -= 1;
            j -= 1;
        } else {
            if t.at(i - 1, j) > t.at(i, j - 1) {
                i -= 1;
            } else {
                j -= 1;
            }
            close |= current.is_some();
        }
        if close && let Some(r) = current.take() {
            runs.push(r);
        }
    }
    (out, runs)
}

impl Cmd<'_> {
    /// Applies the command to `ks`.
    pub fn apply(self, ks: &mut Keyspace<'_>) -> CmdResult {
        let a = ks.get(self.a)?.unwrap_or_default();
        let b = ks.get(self.b)?.unwrap_or_default();
        let cells = (a.len() as u64 + 1).saturating_mul(b.len() as u64 + 1);
        if cells.saturating_mul(4) > MAX_VALUE_LEN as u64 {
            return Err(CmdError::err(
                "Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
            ));
        }
        let t = Table::build(&a, &b);
        let (common, runs) = walk(&a, &b, &t);
        if self.len {
            return Ok(Reply::Int(common.len() as i64));
        }
        if !self.idx {
            return Ok(Reply::Bulk(common.into()));
        }
        let pair =
            |(s, e): (usize, usize)| Reply::Array(vec![Reply::Int(s as i64), Reply::Int(e as i64)]);
        let matches = runs
            .into_iter()
            .filter(|r| (r.a.1 - r.a.0 + 1) as u64 >= self.min_match)
            .map(|r| {
                let mut m = vec![pair(r.a), pair(r.b)];
                if self.with_match_len {
                    m.push(Reply::Int((r.a.1 - r.a.0 + 1) as i64));
                }
                Reply::Array(m)
            })
            .collect();
        Ok(Reply::Map(vec![
            (Reply::text("matches"), Reply::Array(matches)),
            (Reply::text("len"), Reply::Int(common.len() as i64)),
        ]))
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::run;
    use crate::protocol::reply::Reply;
    use crate::store::testing::store;

    #[test]
    fn lcs_answers_as_in_redis() {
        let (_d, st) = store();
        run(&st, &["MSET", "key1", "ohmytext", "key2", "mynewtext"]);
        assert_eq!(run(&st, &["LCS", "key1", "key2"]), Reply::text("mytext"));
        assert_eq!(run(&st, &["LCS", "key1", "key2", "LEN"]), Reply::Int(6));
        let arr = |v: Vec<i64>| Reply::Array(v.into_iter().map(Reply::Int).collect());
        assert_eq!(
            run(
                &st,
                &[
                    "LCS",
                    "key1",
                    "key2",
                    "IDX",
                    "MINMATCHLEN",
                    "4",
                    "WITHMATCHLEN"
                ]
            ),
            Reply::Map(vec![
                (
                    Reply::text("matches"),
                    Reply::Array(vec![Reply::Array(vec![
                        arr(vec![4, 7]),
                        arr(vec![5, 8]),
                        Reply::Int(4)
                    ])])
                ),
                (Reply::text("len"), Reply::Int(6)),
            ])
        );
    }
}
