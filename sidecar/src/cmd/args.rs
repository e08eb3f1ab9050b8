//! The argument cursor every command parses with: keys, integers and floats with
//! Redis' exact errors, case-insensitive option words, and `finish()` so that left-over
//! arguments are a syntax error rather than silently ignored.

use super::error::CmdError;
use bytes::Bytes;

/// Case-insensitive ASCII comparison of an argument with a keyword: the one compare
/// every command and subcommand uses.
pub fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// Parses a Redis integer argument (no spaces, no `+`, no leading zeros past "0"): the
/// protocol's own integer rule.
pub fn parse_i64(b: &[u8]) -> Option<i64> {
    crate::protocol::request::redis_int(b)
}

/// Parses a Redis float argument (`inf` allowed, NaN refused).
pub fn parse_f64(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty() || s.trim() != s {
        return None;
    }
    let v: f64 = match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => s.parse().ok()?,
    };
    (!v.is_nan()).then_some(v)
}

/// The arguments after a command's name, consumed front to back.
#[derive(Debug, Clone)]
pub struct Args<'a> {
    cmd: &'static str,
    rest: &'a [Bytes],
    /// The command's name as the client wrote it, where known.
    spelt: Option<&'a [u8]>,
}

impl<'a> Args<'a> {
    /// The arguments of command `cmd` (its lower-case name, for error texts).
    pub fn new(cmd: &'static str, rest: &'a [Bytes]) -> Self {
        Args {
            cmd,
            rest,
            spelt: None,
        }
    }

    /// The same, knowing how the client spelt the command (a few of Redis' error
    /// texts repeat it so).
    pub fn spelt_as(mut self, name: &'a [u8]) -> Self {
        self.spelt = Some(name);
        self
    }

    /// The command's name as the client wrote it (its lower-case name if unknown).
    pub fn spelt(&self) -> &'a [u8] {
        self.spelt.unwrap_or(self.cmd.as_bytes())
    }

    /// The command's name.
    pub fn cmd(&self) -> &'static str {
        self.cmd
    }

    /// Arguments not consumed yet.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// Whether every argument was consumed.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next argument, if any.
    /// The next argument, left in place.
    pub fn peek(&self) -> Option<&'a Bytes> {
        self.rest.first()
    }

    pub fn next_opt(&mut self) -> Option<&'a Bytes> {
        let (first, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(first)
    }

    /// The next argument; running out is a wrong-arity error (the table's arity makes
    /// that impossible for required arguments, so this is only a guard).
    pub fn next_arg(&mut self) -> Result<&'a Bytes, CmdError> {
        self.next_opt().ok_or(CmdError::Arity(self.cmd))
    }

    /// The next argument as an owned value.
    pub fn next_bytes(&mut self) -> Result<Bytes, CmdError> {
        self.next_arg().cloned()
    }

    /// The next argument, a key (borrowed from the request).
    pub fn next_key(&mut self) -> Result<&'a Bytes, CmdError> {
        self.next_arg()
    }

    /// The value of an option that needs one (`COUNT 10`): missing is a syntax error.
    pub fn value_of_option(&mut self) -> Result<&'a Bytes, CmdError> {
        self.next_opt().ok_or(CmdError::Syntax)
    }

    /// The next argument as a Redis integer.
    pub fn next_i64(&mut self) -> Result<i64, CmdError> {
        parse_i64(self.next_arg()?).ok_or(CmdError::NotInteger)
    }

    /// The next argument as a Redis float (`ERR value is not a valid float`).
    pub fn next_f64(&mut self) -> Result<f64, CmdError> {
        parse_f64(self.next_arg()?).ok_or(CmdError::NotFloat)
    }

    /// Consumes the next argument if it is `word` (case-insensitively).
    pub fn eat(&mut self, word: &str) -> bool {
        match self.rest.first() {
            Some(a) if is(a, word) => {
                self.rest = &self.rest[1..];
                true
            }
            _ => false,
        }
    }

    /// Everything not consumed yet, consuming it (for the `parse!` parsers).
    pub fn rest(&mut self) -> Result<&'a [Bytes], CmdError> {
        Ok(self.take_rest())
    }

    /// Everything not consumed yet, consuming it.
    pub fn take_rest(&mut self) -> &'a [Bytes] {
        std::mem::take(&mut self.rest)
    }

    /// A `numkeys` argument and the keys it counts (SINTERCARD, LMPOP, ZMPOP, ...):
    /// Redis' error for a count below 1, and `past_end` for one past the arguments
    /// (commands differ there).
    pub fn numkeys(&mut self, past_end: CmdError) -> Result<&'a [Bytes], CmdError> {
        let n = parse_i64(self.next_arg()?)
            .filter(|&n| n > 0)
            .ok_or(CmdError::err("numkeys should be greater than 0"))?;
        if n as u64 > self.rest.len() as u64 {
            return Err(past_end);
        }
        let (keys, rest) = self.rest.split_at(n as usize);
        self.rest = rest;
        Ok(keys)
    }

    /// The arguments of LMPOP, ZMPOP and their blocking forms: `numkeys` keys, one of
    /// the two `ends` (whether the second), and COUNT (1 unless given).
    pub fn mpop(&mut self, ends: [&str; 2]) -> Result<(&'a [Bytes], bool, u64), CmdError> {
        // Redis reads the keys' count, then wants an end after them.
        let keys = self.numkeys(CmdError::Syntax)?;
        let w = self.next_opt().ok_or(CmdError::Syntax)?;
        let second = match ends.iter().position(|e| is(w, e)) {
            Some(i) => i == 1,
            None => return Err(CmdError::Syntax),
        };
        let mut count = 1;
        if let Some(opt) = self.next_opt() {
            if !is(opt, "COUNT") {
                return Err(CmdError::Syntax);
            }
            let v = self.next_opt().ok_or(CmdError::Syntax)?;
            count = parse_i64(v)
                .filter(|&n| n > 0)
                .ok_or(CmdError::err("count should be greater than 0"))? as u64;
        }
        Ok((keys, second, count))
    }

    /// A SCAN-family cursor (`ERR invalid cursor` unless an unsigned integer).
    pub fn next_cursor(&mut self) -> Result<u64, CmdError> {
        std::str::from_utf8(self.next_arg()?)
            .ok()
            .and_then(|c| c.parse::<u64>().ok())
            .ok_or(CmdError::err("invalid cursor"))
    }

    /// The options of a SCAN-family command, to the end: MATCH, COUNT (at least 1) and,
    /// when `with_type` (SCAN itself), TYPE.
    pub fn scan_options(&mut self, with_type: bool) -> Result<ScanOptions<'a>, CmdError> {
        let mut o = ScanOptions {
            pattern: None,
            count: 10,
            type_name: None,
        };
        while let Some(opt) = self.next_opt() {
            let v = self.value_of_option()?;
            if is(opt, "match") {
                o.pattern = Some(v);
            } else if is(opt, "count") {
                match parse_i64(v) {
                    Some(n) if n >= 1 => o.count = n as usize,
                    Some(_) => return Err(CmdError::Syntax),
                    None => return Err(CmdError::NotInteger),
                }
            } else if with_type && is(opt, "type") {
                o.type_name = Some(v);
            } else {
                return Err(CmdError::Syntax);
            }
        }
        Ok(o)
    }

    /// The arguments of HSCAN, SSCAN and ZSCAN: a key, a cursor, MATCH and COUNT.
    pub fn element_scan(&mut self) -> Result<ElementScan<'a>, CmdError> {
        let key = self.next_key()?;
        let cursor = self.next_cursor()?;
        let o = self.scan_options(false)?;
        Ok(ElementScan {
            key,
            cursor,
            pattern: o.pattern,
            count: o.count,
        })
    }

    /// Succeeds only if every argument was consumed (`ERR syntax error` otherwise).
    pub fn finish(&self) -> Result<(), CmdError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(CmdError::Syntax)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::testing::argv as v;

    #[test]
    fn integers_follow_redis() {
        for ok in ["0", "-1", "9223372036854775807", "-9223372036854775808"] {
            assert!(parse_i64(ok.as_bytes()).is_some(), "{ok}");
        }
        for bad in [
            "",
            "+1",
            "01",
            "-0",
            " 1",
            "1 ",
            "1.0",
            "9223372036854775808",
            "x",
        ] {
            assert!(parse_i64(bad.as_bytes()).is_none(), "{bad}");
        }
    }

    #[test]
    fn floats_follow_redis() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"+Infinity"), Some(f64::INFINITY));
        for bad in ["", "nan", " 1", "1 ", "abc"] {
            assert!(parse_f64(bad.as_bytes()).is_none(), "{bad}");
        }
    }

    #[test]
    fn cursor_consumes_in_order_and_finishes() {
        let a = v(&["key", "12", "NX", "2.5", "extra"]);
        let mut c = Args::new("x", &a);
        assert_eq!(c.next_key().expect("key"), "key");
        assert_eq!(c.next_i64().expect("int"), 12);
        assert!(!c.eat("xx"));
        assert!(c.eat("nx"));
        assert_eq!(c.next_f64().expect("float"), 2.5);
        assert_eq!(c.finish(), Err(CmdError::Syntax));
        assert_eq!(c.remaining(), 1);
        assert_eq!(c.take_rest().len(), 1);
        assert!(c.finish().is_ok());
        assert_eq!(c.next_arg(), Err(CmdError::Arity("x")));
        assert_eq!(c.value_of_option(), Err(CmdError::Syntax));
    }

    #[test]
    fn bad_numbers_give_redis_errors() {
        let a = v(&["abc", "abc"]);
        let mut c = Args::new("x", &a);
        assert_eq!(c.next_i64(), Err(CmdError::NotInteger));
        assert_eq!(c.next_f64(), Err(CmdError::NotFloat));
        assert!(is(b"KeepTTL", "keepttl"));
    }
}

/// What [`Args::scan_options`] read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScanOptions<'a> {
    /// MATCH's pattern.
    pub pattern: Option<&'a Bytes>,
    /// COUNT (10 unless given).
    pub count: usize,
    /// TYPE's name, as given.
    pub type_name: Option<&'a Bytes>,
}

/// What HSCAN, SSCAN and ZSCAN were asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ElementScan<'a> {
    /// The collection.
    pub key: &'a Bytes,
    /// Where to go on from (0: the start).
    pub cursor: u64,
    /// MATCH
    pub pattern: Option<&'a Bytes>,
    /// COUNT (at least 1)
    pub count: usize,
}

impl ElementScan<'_> {
    /// The reply to one page: the next cursor, then each element whose name matches
    /// MATCH, followed by its value where the collection has values (HSCAN, ZSCAN).
    pub fn page(
        &self,
        next: u64,
        elements: impl IntoIterator<Item = (Bytes, Option<Bytes>)>,
    ) -> crate::protocol::reply::Reply {
        use crate::protocol::reply::Reply;
        let mut out = Vec::new();
        for (name, value) in elements {
            if self.pattern.is_none_or(|p| crate::glob::matches(p, &name)) {
                out.push(Reply::Bulk(name));
                out.extend(value.map(Reply::Bulk));
            }
        }
        Reply::Array(vec![Reply::text(&next.to_string()), Reply::Array(out)])
    }
}
