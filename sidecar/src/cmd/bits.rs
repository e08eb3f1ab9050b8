//! Bit commands on string values: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD
//! and BITFIELD_RO. Bit 0 is the most significant bit of the first byte, as in Redis;
//! writes keep the key's TTL and grow the string with zero bytes.

use super::DataCmd;
use super::args::{Args, is, parse_i64};
use super::error::{CmdError, CmdResult};
use crate::keyspace::Keyspace;
use crate::protocol::reply::Reply;
use bytes::Bytes;
use caskade_engine::MAX_VALUE_LEN;

/// A parsed bit command.
#[derive(Debug, Clone, PartialEq)]
pub enum Cmd<'a> {
    /// SETBIT key offset 0|1
    SetBit(&'a Bytes, u64, bool),
    /// GETBIT key offset
    GetBit(&'a Bytes, u64),
    /// BITCOUNT key [start end [BYTE|BIT]]
    Count(&'a Bytes, Option<Range>),
    /// BITPOS key 0|1 [start [end [BYTE|BIT]]]
    Pos(&'a Bytes, bool, Option<PosRange>),
    /// BITOP op dest key [key ...]
    Op(Op, &'a Bytes, &'a [Bytes]),
    /// BITFIELD / BITFIELD_RO
    Field(&'a Bytes, Vec<FieldOp>),
}

/// An inclusive range in bytes or bits, ends counted from the end when negative.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    start: i64,
    end: i64,
    bits: bool,
}

/// BITPOS's range: an end given or not (a clear bit past the string counts only
/// without one).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PosRange {
    start: i64,
    end: Option<i64>,
    bits: bool,
}

/// BITOP's operation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    And,
    Or,
    Xor,
    Not,
}

/// A BITFIELD field type: signed or not, and its width.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Kind {
    signed: bool,
    bits: u32,
}

/// What BITFIELD does on overflow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Overflow {
    Wrap,
    Sat,
    Fail,
}

/// One BITFIELD operation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldOp {
    Get(Kind, u64),
    Set(Kind, u64, i64, Overflow),
    IncrBy(Kind, u64, i64, Overflow),
}

/// Most bits a string may hold (Redis' `proto-max-bulk-len` in bits, below 2^32).
const MAX_BIT: u64 = (MAX_VALUE_LEN as u64) * 8;

fn bit_offset(raw: &[u8]) -> Result<u64, CmdError> {
    match parse_i64(raw) {
        Some(n) if n >= 0 && (n as u64) < MAX_BIT => Ok(n as u64),
        _ => Err(CmdError::err(
            "bit offset is not an integer or out of range",
        )),
    }
}

fn unit(a: &mut Args<'_>) -> Result<bool, CmdError> {
    match a.next_opt() {
        None => Ok(false),
        Some(w) if is(w, "BYTE") => Ok(false),
        Some(w) if is(w, "BIT") => Ok(true),
        Some(_) => Err(CmdError::Syntax),
    }
}

pub fn setbit<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let key = a.next_key()?;
    let offset = bit_offset(a.next_arg()?)?;
    let bit = match &a.next_arg()?[..] {
        b"0" => false,
        b"1" => true,
        _ => return Err(CmdError::err("bit is not an integer or out of range")),
    };
    a.finish()?;
    Ok(DataCmd::Bit(Cmd::SetBit(key, offset, bit)))
}

pub fn getbit<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let key = a.next_key()?;
    let offset = bit_offset(a.next_arg()?)?;
    a.finish()?;
    Ok(DataCmd::Bit(Cmd::GetBit(key, offset)))
}

pub fn bitcount<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let key = a.next_key()?;
    let range = match a.remaining() {
        0 => None,
        1 => return Err(CmdError::Syntax),
        _ => {
            let (start, end) = (a.next_i64()?, a.next_i64()?);
            let bits = unit(a)?;
            a.finish().map_err(|_| CmdError::Syntax)?;
            Some(Range { start, end, bits })
        }
    };
    Ok(DataCmd::Bit(Cmd::Count(key, range)))
}

pub fn bitpos<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let key = a.next_key()?;
    let bit = match parse_i64(a.next_arg()?) {
        Some(0) => false,
        Some(1) => true,
        Some(_) => return Err(CmdError::err("The bit argument must be 1 or 0.")),
        None => return Err(CmdError::NotInteger),
    };
    let range = if a.is_empty() {
        None
    } else {
        let start = a.next_i64()?;
        let end = if a.is_empty() {
            None
        } else {
            Some(a.next_i64()?)
        };
        let bits = unit(a)?;
        a.finish().map_err(|_| CmdError::Syntax)?;
        Some(PosRange { start, end, bits })
    };
    Ok(DataCmd::Bit(Cmd::Pos(key, bit, range)))
}

pub fn bitop<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let op = a.next_arg()?;
    let op = if is(op, "AND") {
        Op::And
    } else if is(op, "OR") {
        Op::Or
    } else if is(op, "XOR") {
        Op::Xor
    } else if is(op, "NOT") {
        Op::Not
    } else {
        return Err(CmdError::Syntax);
    };
    let dest = a.next_key()?;
    let sources = a.take_rest();
    if op == Op::Not && sources.len() != 1 {
        return Err(CmdError::err(
            "BITOP NOT must be called with a single source key.",
        ));
    }
    Ok(DataCmd::Bit(Cmd::Op(op, dest, sources)))
}

fn kind(raw: &[u8]) -> Result<Kind, CmdError> {
    let bad = || {
        CmdError::err(
            "Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.",
        )
    };
    let (signed, width) = match raw.first() {
        Some(b'i' | b'I') => (true, &raw[1..]),
        Some(b'u' | b'U') => (false, &raw[1..]),
        _ => return Err(bad()),
    };
    let bits = parse_i64(width).ok_or_else(bad)?;
    let max = if signed { 64 } else { 63 };
    if bits < 1 || bits > max {
        return Err(bad());
    }
    Ok(Kind {
        signed,
        bits: bits as u32,
    })
}

fn field_offset(raw: &[u8], k: Kind) -> Result<u64, CmdError> {
    let bad = || CmdError::err("bit offset is not an integer or out of range");
    let (mul, num) = match raw.first() {
        Some(b'#') => (u64::from(k.bits), &raw[1..]),
        _ => (1, raw),
    };
    let n = parse_i64(num).filter(|&n| n >= 0).ok_or_else(bad)? as u64;
    let off = n.checked_mul(mul).ok_or_else(bad)?;
    if off + u64::from(k.bits) > MAX_BIT {
        return Err(bad());
    }
    Ok(off)
}

fn field(a: &mut Args<'_>, read_only: bool) -> Result<Vec<FieldOp>, CmdError> {
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    while let Some(w) = a.next_opt() {
        if is(w, "GET") && a.remaining() >= 2 {
            let k = kind(a.next_arg()?)?;
            let off = field_offset(a.next_arg()?, k)?;
            ops.push(FieldOp::Get(k, off));
        } else if read_only {
            return Err(CmdError::err(
                "BITFIELD_RO only supports the GET subcommand",
            ));
        } else if is(w, "OVERFLOW") && a.remaining() >= 1 {
            let mode = a.next_arg()?;
            overflow = if is(mode, "WRAP") {
                Overflow::Wrap
            } else if is(mode, "SAT") {
                Overflow::Sat
            } else if is(mode, "FAIL") {
                Overflow::Fail
            } else {
                return Err(CmdError::err("Invalid OVERFLOW type specified"));
            };
        } else if (is(w, "SET") || is(w, "INCRBY")) && a.remaining() >= 3 {
            let k = kind(a.next_arg()?)?;
            let off = field_offset(a.next_arg()?, k)?;
            let v = a.next_i64()?;
            ops.push(if is(w, "SET") {
                FieldOp::Set(k, off, v, overflow)
            } else {
                FieldOp::IncrBy(k, off, v, overflow)
            });
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok(ops)
}

pub fn bitfield<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let key = a.next_key()?;
    Ok(DataCmd::Bit(Cmd::Field(key, field(a, false)?)))
}

pub fn bitfield_ro<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
    let key = a.next_key()?;
    Ok(DataCmd::Bit(Cmd::Field(key, field(a, true)?)))
}

fn get_bit(v: &[u8], at: u64) -> bool {
    v.get((at / 8) as usize)
        .is_some_and(|b| b & (0x80 >> (at % 8)) != 0)
}

fn set_bit(v: &mut Vec<u8>, at: u64, bit: bool) {
    let byte = (at / 8) as usize;
    if v.len() <= byte {
        v.resize(byte + 1, 0);
    }
    let mask = 0x80 >> (at % 8);
    if bit {
        v[byte] |= mask;
    } else {
        v[byte] &= !mask;
    }
}

/// `start..=end` of a length-`len` space, Redis style; `None` when empty.
fn clamp(start: i64, end: i64, len: i64) -> Option<(i64, i64)> {
    let fix = |x: i64| if x < 0 { (x + len).max(0) } else { x };
    let (s, e) = (fix(start), fix(end).min(len - 1));
    (len > 0 && s <= e).then_some((s, e))
}

fn count_bits(v: &[u8], from: u64, to: u64) -> u64 {
    (from..=to).filter(|&i| get_bit(v, i)).count() as u64
}

/// The field of kind `k` at bit `off`, as an unsigned pattern of `k.bits` bits.
fn read_field(v: &[u8], off: u64, k: Kind) -> u64 {
    (0..u64::from(k.bits)).fold(0u64, |acc, i| (acc << 1) | u64::from(get_bit(v, off + i)))
}

fn write_field(v: &mut Vec<u8>, off: u64, k: Kind, pattern: u64) {
    for i in 0..u64::from(k.bits) {
        let bit = (pattern >> (u64::from(k.bits) - 1 - i)) & 1 == 1;
        set_bit(v, off + i, bit);
    }
}

/// A pattern read as the field's value.
fn as_value(pattern: u64, k: Kind) -> i64 {
    if k.signed && k.bits < 64 && pattern & (1 << (k.bits - 1)) != 0 {
        (pattern | (!0u64 << k.bits)) as i64
    } else {
        pattern as i64
    }
}

fn limits(k: Kind) -> (i128, i128) {
    if k.signed {
        (-(1i128 << (k.bits - 1)), (1i128 << (k.bits - 1)) - 1)
    } else {
        (0, (1i128 << k.bits) - 1)
    }
}

/// `value` fitted into the field under `o`; `None` when FAIL refuses it.
fn fit(value: i128, k: Kind, o: Overflow) -> Option<u64> {
    let (min, max) = limits(k);
    let v = if value < min || value > max {
        match o {
            Overflow::Fail => return None,
            Overflow::Sat => value.clamp(min, max),
            Overflow::Wrap => value,
        }
    } else {
        value
    };
    let mask: u128 = if k.bits == 64 {
        u64::MAX.into()
    } else {
        (1u128 << k.bits) - 1
    };
    Some(((v as u128) & mask) as u64)
}

impl Cmd<'_> {
    /// Applies the command to `ks`.
    pub fn apply(self, ks: &mut Keyspace<'_>) -> CmdResult {
        match self {
            Cmd::SetBit(key, at, bit) => {
                let item = ks.get_item(key)?;
                if let Some(i) = &item
                    && at / 8 < i.value.len() as u64
                    && get_bit(&i.value, at) == bit
                {
                    // The bit already has the value and the string its length: nothing
                    // is written and watchers see no change, as with Redis (a Bloom
                    // filter's or a "seen" bitmap's common case).
                    return Ok(Reply::Int(i64::from(bit)));
                }
                let (mut v, exp) = match item {
                    Some(i) => (i.value.to_vec(), i.expire_at_ms),
                    None => (Vec::new(), None),
                };
                let old = get_bit(&v, at);
                set_bit(&mut v, at, bit);
                ks.put(key, &v, exp)?;
                Ok(Reply::Int(i64::from(old)))
            }
            Cmd::GetBit(key, at) => {
                let v = ks.get(key)?.unwrap_or_default();
                Ok(Reply::Int(i64::from(get_bit(&v, at))))
            }
            Cmd::Count(key, range) => {
                let v = ks.get(key)?.unwrap_or_default();
                let n = match range {
                    None => v.iter().map(|b| u64::from(b.count_ones())).sum(),
                    Some(r) => {
                        let len = v.len() as i64 * if r.bits { 8 } else { 1 };
                        match clamp(r.start, r.end, len) {
                            None => 0,
                            Some((s, e)) if r.bits => count_bits(&v, s as u64, e as u64),
                            Some((s, e)) => v[s as usize..=e as usize]
                                .iter()
                                .map(|b| u64::from(b.count_ones()))
                                .sum(),
                        }
                    }
                };
                Ok(Reply::Int(n as i64))
            }
            Cmd::Pos(key, bit, range) => {
                let Some(v) = ks.get(key)? else {
                    return Ok(Reply::Int(if bit { -1 } else { 0 }));
                };
                let bits_len = v.len() as i64 * 8;
                let (from, to, end_given) = match range {
                    None => (0, bits_len - 1, false),
                    Some(r) => {
                        let len = if r.bits { bits_len } else { v.len() as i64 };
                        let end = r.end.unwrap_or(len - 1);
                        match clamp(r.start, end, len) {
                            None => return Ok(Reply::Int(-1)),
                            Some((s, e)) if r.bits => (s, e, r.end.is_some()),
                            Some((s, e)) => (s * 8, e * 8 + 7, r.end.is_some()),
                        }
                    }
                };
                if let Some(i) = (from..=to).find(|&i| get_bit(&v, i as u64) == bit) {
                    return Ok(Reply::Int(i));
                }
                // No clear bit in the range: without an explicit end, the first bit
                // past the string is clear.
                Ok(Reply::Int(if !bit && !end_given { to + 1 } else { -1 }))
            }
            Cmd::Op(op, dest, sources) => {
                let mut values = Vec::with_capacity(sources.len());
                for s in sources {
                    values.push(ks.get(s)?.unwrap_or_default());
                }
                let len = values.iter().map(Bytes::len).max().unwrap_or(0);
                if len == 0 {
                    ks.delete(dest)?;
                    return Ok(Reply::Int(0));
                }
                let byte = |i: usize, j: usize| values[j].get(i).copied().unwrap_or(0);
                let out: Vec<u8> = (0..len)
                    .map(|i| match op {
                        Op::Not => !byte(i, 0),
                        Op::And => (0..values.len()).fold(0xff, |acc, j| acc & byte(i, j)),
                        Op::Or => (0..values.len()).fold(0, |acc, j| acc | byte(i, j)),
                        Op::Xor => (0..values.len()).fold(0, |acc, j| acc ^ byte(i, j)),
                    })
                    .collect();
                ks.put(dest, &out, None)?;
                Ok(Reply::Int(len as i64))
            }
            Cmd::Field(key, ops) => {
                let (mut v, exp) = match ks.get_item(key)? {
                    Some(i) => (i.value.to_vec(), i.expire_at_ms),
                    None => (Vec::new(), None),
                };
                let mut changed = false;
                let mut replies = Vec::with_capacity(ops.len());
                for op in ops {
                    match op {
                        FieldOp::Get(k, off) => {
                            replies.push(Reply::Int(as_value(read_field(&v, off, k), k)));
                        }
                        FieldOp::Set(k, off, value, o) => {
                            let old = as_value(read_field(&v, off, k), k);
                            match fit(i128::from(value), k, o) {
                                Some(p) => {
                                    write_field(&mut v, off, k, p);
                                    changed = true;
                                    replies.push(Reply::Int(old));
                                }
                                None => replies.push(Reply::Nil),
                            }
                        }
                        FieldOp::IncrBy(k, off, by, o) => {
                            let old = as_value(read_field(&v, off, k), k);
                            let sum = if k.signed {
                                i128::from(old) + i128::from(by)
                            } else {
                                i128::from(old as u64) + i128::from(by)
                            };
                            match fit(sum, k, o) {
                                Some(p) => {
                                    write_field(&mut v, off, k, p);
                                    changed = true;
                                    replies.push(Reply::Int(as_value(p, k)));
                                }
                                None => replies.push(Reply::Nil),
                            }
                        }
                    }
                }
                if changed {
                    ks.put(key, &v, exp)?;
                }
                Ok(Reply::Array(replies))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::run;
    use crate::protocol::reply::Reply;
    use crate::store::testing::store;

    #[test]
    fn bits_set_count_and_find_as_in_redis() {
        let (_d, st) = store();
        assert_eq!(run(&st, &["SETBIT", "b", "7", "1"]), Reply::Int(0));
        assert_eq!(run(&st, &["SETBIT", "b", "7", "1"]), Reply::Int(1));
        assert_eq!(run(&st, &["GET", "b"]), Reply::Bulk("\u{1}".into()));
        assert_eq!(run(&st, &["GETBIT", "b", "7"]), Reply::Int(1));
        assert_eq!(run(&st, &["GETBIT", "b", "100"]), Reply::Int(0));
        assert_eq!(run(&st, &["SET", "c", "foobar"]), Reply::OK);
        assert_eq!(run(&st, &["BITCOUNT", "c"]), Reply::Int(26));
        assert_eq!(run(&st, &["BITCOUNT", "c", "1", "1"]), Reply::Int(6));
        assert_eq!(
            run(&st, &["BITCOUNT", "c", "5", "30", "BIT"]),
            Reply::Int(17)
        );
        assert_eq!(run(&st, &["SETBIT", "p", "13", "1"]), Reply::Int(0));
        assert_eq!(run(&st, &["BITPOS", "p", "1"]), Reply::Int(13));
        assert_eq!(run(&st, &["BITPOS", "p", "1", "0", "0"]), Reply::Int(-1));
        let set_ff = run(&st, &["BITFIELD", "ones", "SET", "u8", "0", "255"]);
        assert_eq!(set_ff, Reply::Array(vec![Reply::Int(0)]));
        assert_eq!(run(&st, &["BITPOS", "ones", "0"]), Reply::Int(8));
        assert_eq!(
            run(&st, &["BITPOS", "ones", "0", "0", "-1"]),
            Reply::Int(-1)
        );
        assert_eq!(
            run(&st, &["SETBIT", "b", "4294967296", "1"]),
            Reply::err("ERR bit offset is not an integer or out of range")
        );
    }

    #[test]
    fn a_setbit_that_changes_nothing_writes_no_record() {
        let (_d, st) = store();
        assert_eq!(run(&st, &["SETBIT", "b", "9", "1"]), Reply::Int(0));
        let puts = st.engine.stats().puts;
        assert_eq!(run(&st, &["SETBIT", "b", "9", "1"]), Reply::Int(1));
        assert_eq!(run(&st, &["SETBIT", "b", "8", "0"]), Reply::Int(0));
        assert_eq!(st.engine.stats().puts, puts);
        assert_eq!(run(&st, &["SETBIT", "b", "9", "0"]), Reply::Int(1));
        assert_eq!(run(&st, &["GETBIT", "b", "9"]), Reply::Int(0));
    }

    #[test]
    fn bitfield_overflows_wrap_saturate_or_fail() {
        let (_d, st) = store();
        let arr = |v: Vec<Reply>| Reply::Array(v);
        assert_eq!(
            run(
                &st,
                &["BITFIELD", "f", "SET", "u8", "0", "255", "GET", "u8", "0"]
            ),
            arr(vec![Reply::Int(0), Reply::Int(255)])
        );
        assert_eq!(
            run(&st, &["BITFIELD", "f", "INCRBY", "u8", "0", "10"]),
            arr(vec![Reply::Int(9)])
        );
        assert_eq!(
            run(
                &st,
                &[
                    "BITFIELD", "f", "OVERFLOW", "SAT", "INCRBY", "u8", "0", "1000"
                ]
            ),
            arr(vec![Reply::Int(255)])
        );
        assert_eq!(
            run(
                &st,
                &[
                    "BITFIELD", "f", "OVERFLOW", "FAIL", "INCRBY", "u8", "0", "1"
                ]
            ),
            arr(vec![Reply::Nil])
        );
        assert_eq!(
            run(
                &st,
                &["BITFIELD", "g", "SET", "i8", "#1", "-3", "GET", "i8", "#1"]
            ),
            arr(vec![Reply::Int(0), Reply::Int(-3)])
        );
        assert_eq!(
            run(&st, &["BITFIELD_RO", "g", "SET", "i8", "0", "1"]),
            Reply::err("ERR BITFIELD_RO only supports the GET subcommand")
        );
    }
}
