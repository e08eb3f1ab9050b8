//! Replies and their encoding. Commands build a [`Reply`]; the connection encodes it
//! for the protocol version the client chose with HELLO (RESP2 folds maps into arrays,
//! doubles into bulk strings, and both nils into `$-1` / `*-1`).

use bytes::{BufMut, Bytes, BytesMut};

/// One reply, independent of the protocol version.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`-style status.
    Status(&'static str),
    /// `-ERR ...`; the text includes the error code (`ERR`, `WRONGTYPE`, ...).
    Error(String),
    /// `:n`
    Int(i64),
    /// `$n` bulk string.
    Bulk(Bytes),
    /// Null bulk string (`$-1`, RESP3 `_`).
    Nil,
    /// Null array (`*-1`, RESP3 `_`).
    NilArray,
    /// `*n`
    Array(Vec<Reply>),
    /// RESP3 map `%n`; a flat array in RESP2.
    Map(Vec<(Reply, Reply)>),
    /// Pairs: an array of two-element arrays in RESP3, one flat array in RESP2 (as
    /// HRANDFIELD WITHVALUES and ZRANGE WITHSCORES answer).
    Pairs(Vec<(Reply, Reply)>),
    /// RESP3 set `~n`; an array in RESP2.
    Set(Vec<Reply>),
    /// RESP3 verbatim string `=` (format `txt`); a bulk string in RESP2.
    Verbatim(String),
    /// A status made at run time (a script's `{ok=...}`).
    StatusText(String),
    /// RESP3 double `,`; a bulk string in RESP2 (`%.17g`, as sorted-set scores).
    Double(f64),
    /// A coordinate (GEOPOS, WITHCOORD): a RESP3 double or RESP2 bulk string written
    /// as Redis writes them, `%.17Lf` without trailing zeros.
    Coordinate(f64),
    /// RESP3 boolean `#t`/`#f`; `:1`/`:0` in RESP2.
    Bool(bool),
    /// Nothing at all (SHUTDOWN closes the connection instead of answering).
    Silent,
}

impl Reply {
    /// `+OK`
    pub const OK: Reply = Reply::Status("OK");

    /// An error reply; `msg` starts with its code (`ERR ...`).
    pub fn err(msg: impl Into<String>) -> Reply {
        Reply::Error(msg.into())
    }

    /// A bulk string of `s`.
    pub fn text(s: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// Bulk string or nil.
    pub fn opt(b: Option<Bytes>) -> Reply {
        b.map_or(Reply::Nil, Reply::Bulk)
    }

    /// Appends the encoding of this reply to `out`.
    pub fn encode(&self, out: &mut BytesMut, resp3: bool) {
        match self {
            Reply::Status(s) => line(out, b'+', s.as_bytes()),
            Reply::StatusText(s) => one_line(out, b'+', s),
            Reply::Silent => {}
            Reply::Double(d) if resp3 => line(out, b',', format_score(*d).as_bytes()),
            Reply::Double(d) => bulk(out, format_score(*d).as_bytes()),
            Reply::Coordinate(d) if resp3 => line(out, b',', format_coordinate(*d).as_bytes()),
            Reply::Coordinate(d) => bulk(out, format_coordinate(*d).as_bytes()),
            Reply::Bool(b) if resp3 => out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
            Reply::Bool(b) => int(out, b':', i64::from(*b)),
            Reply::Error(e) => one_line(out, b'-', e),
            Reply::Int(n) => int(out, b':', *n),
            Reply::Bulk(b) => bulk(out, b),
            Reply::Nil if resp3 => out.put_slice(b"_\r\n"),
            Reply::Nil => out.put_slice(b"$-1\r\n"),
            Reply::NilArray if resp3 => out.put_slice(b"_\r\n"),
            Reply::NilArray => out.put_slice(b"*-1\r\n"),
            Reply::Array(items) => {
                int(out, b'*', items.len() as i64);
                items.iter().for_each(|i| i.encode(out, resp3));
            }
            Reply::Set(items) => {
                int(out, if resp3 { b'~' } else { b'*' }, items.len() as i64);
                items.iter().for_each(|i| i.encode(out, resp3));
            }
            Reply::Pairs(pairs) => {
                if resp3 {
                    int(out, b'*', pairs.len() as i64);
                } else {
                    int(out, b'*', pairs.len() as i64 * 2);
                }
                for (k, v) in pairs {
                    if resp3 {
                        out.put_slice(b"*2\r\n");
                    }
                    k.encode(out, resp3);
                    v.encode(out, resp3);
                }
            }
            Reply::Map(pairs) => {
                if resp3 {
                    int(out, b'%', pairs.len() as i64);
                } else {
                    int(out, b'*', pairs.len() as i64 * 2);
                }
                for (k, v) in pairs {
                    k.encode(out, resp3);
                    v.encode(out, resp3);
                }
            }
            Reply::Verbatim(s) => {
                if resp3 {
                    int(out, b'=', s.len() as i64 + 4);
                    out.put_slice(b"txt:");
                    out.put_slice(s.as_bytes());
                    out.put_slice(b"\r\n");
                } else {
                    bulk(out, s.as_bytes());
                }
            }
        }
    }
}

/// Formats a double for INCRBYFLOAT replies: shortest round-trip form,
/// `inf`/`-inf`, no exponent for ordinary magnitudes.
pub fn format_double(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d.is_nan() {
        return "nan".into();
    }
    if d == d.trunc() && d.abs() < 1e17 {
        return format!("{}", d as i64);
    }
    format!("{d}")
}

/// A double as Redis 7.0 replies with one (a sorted set's score): C's `%.17g`, with
/// `inf` and `-inf` spelled out.
pub fn format_score(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d.is_nan() {
        return "nan".into();
    }
    if d == 0.0 {
        return if d.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // A whole number of at most 16 digits (counters, timestamps) is its own %.17g.
    if d.fract() == 0.0 && d.abs() < 1e16 {
        return (d as i64).to_string();
    }
    // %g: 17 significant digits; the exponent of the rounded value picks the style.
    let sci = format!("{d:.16e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if !(-4..17).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{}e{sign}{:02}", trim(mantissa), exp.unsigned_abs());
    }
    trim(&format!("{:.*}", (16 - exp) as usize, d))
}

/// A coordinate as Redis writes one: 17 decimals, trailing zeros dropped.
pub fn format_coordinate(d: f64) -> String {
    let s = format!("{d:.17}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A status or error line made at run time: it must stay one line.
fn one_line(out: &mut BytesMut, prefix: u8, text: &str) {
    let clean: Vec<u8> = text
        .bytes()
        .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b })
        .collect();
    line(out, prefix, &clean);
}

fn line(out: &mut BytesMut, prefix: u8, body: &[u8]) {
    out.reserve(body.len() + 3);
    out.put_u8(prefix);
    out.put_slice(body);
    out.put_slice(b"\r\n");
}

fn int(out: &mut BytesMut, prefix: u8, n: i64) {
    let mut b = itoa::Buffer::new();
    line(out, prefix, b.format(n).as_bytes());
}

fn bulk(out: &mut BytesMut, b: &[u8]) {
    int(out, b'$', b.len() as i64);
    out.reserve(b.len() + 2);
    out.put_slice(b);
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(r: &Reply, resp3: bool) -> String {
        let mut b = BytesMut::new();
        r.encode(&mut b, resp3);
        String::from_utf8_lossy(&b).into_owned()
    }

    #[test]
    fn resp2_and_resp3_encodings() {
        assert_eq!(enc(&Reply::OK, false), "+OK\r\n");
        assert_eq!(enc(&Reply::Nil, false), "$-1\r\n");
        assert_eq!(enc(&Reply::Nil, true), "_\r\n");
        assert_eq!(enc(&Reply::NilArray, false), "*-1\r\n");
        assert_eq!(enc(&Reply::Int(-5), true), ":-5\r\n");
        assert_eq!(enc(&Reply::text("hé"), false), "$3\r\nhé\r\n");
        let m = Reply::Map(vec![(Reply::text("a"), Reply::Int(1))]);
        assert_eq!(enc(&m, false), "*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&m, true), "%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&Reply::Verbatim("hi".into()), true), "=6\r\ntxt:hi\r\n");
        assert_eq!(
            enc(&Reply::err("ERR bad\r\nthing"), false),
            "-ERR bad  thing\r\n"
        );
    }

    #[test]
    fn doubles_format_like_redis() {
        assert_eq!(format_double(10.5), "10.5");
        for (d, want) in [
            (1.1, "1.1000000000000001"),
            (0.1, "0.10000000000000001"),
            (1e300, "1.0000000000000001e+300"),
            (2.0, "2"),
            (-0.0, "-0"),
            (1e17, "1e+17"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (0.0001, "0.0001"),
            (0.00001, "1.0000000000000001e-05"),
            (-2.5, "-2.5"),
            (f64::NEG_INFINITY, "-inf"),
            (-12345.0, "-12345"),
            (9007199254740991.0, "9007199254740991"),
            (9999999999999998.0, "9999999999999998"),
            (1e16, "10000000000000000"),
            (-9007199254740993.0, "-9007199254740992"),
        ] {
            assert_eq!(format_score(d), want, "{d}");
        }
        assert_eq!(format_double(5.0e3), "5000");
        assert_eq!(format_double(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(format_double(f64::INFINITY), "inf");
    }
}
