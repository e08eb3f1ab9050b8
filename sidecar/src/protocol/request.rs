//! Incremental request parsing, as Redis' `processMultibulkBuffer` and
//! `processInlineBuffer` do it: lengths are checked against limits before anything is
//! allocated, a partly received command keeps its progress (no re-parsing from the
//! start on every read), and bulk arguments are split out of the read buffer without
//! copying. Errors carry Redis' own texts; after one, the connection is closed.

use bytes::{Buf, Bytes, BytesMut};

/// Longest inline command or length line (Redis' `PROTO_INLINE_MAX_SIZE`).
pub const INLINE_MAX: usize = 64 * 1024;

/// A request the parser refused; the text is what Redis replies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProtocolError(pub String);

fn err(msg: &str) -> ProtocolError {
    ProtocolError(format!("Protocol error: {msg}"))
}

/// Parser state for one connection.
#[derive(Debug)]
pub struct RequestParser {
    max_bulk: usize,
    max_args: usize,
    /// Arguments still expected by the multibulk command in progress (0 = none).
    remaining: usize,
    args: Vec<Bytes>,
    /// Length of the bulk argument whose header has been read.
    bulk_len: Option<usize>,
    /// Argument lists given back once their commands ran (emptied), reused so a
    /// command costs no allocation of its own.
    spare: Vec<Vec<Bytes>>,
}

/// Argument lists a parser keeps for reuse, and the largest it keeps (in arguments):
/// a pipelined batch's worth of ordinary commands.
const SPARE_LISTS: usize = 64;
const SPARE_ARGS: usize = 64;

impl RequestParser {
    /// A parser refusing bulk strings over `max_bulk` bytes and commands with more than
    /// `max_args` arguments.
    pub fn new(max_bulk: usize, max_args: usize) -> Self {
        RequestParser {
            max_bulk,
            max_args,
            remaining: 0,
            args: Vec::new(),
            bulk_len: None,
            spare: Vec::new(),
        }
    }

    /// Takes back a command's arguments once it ran, for a later command to reuse.
    pub fn recycle(&mut self, mut args: Vec<Bytes>) {
        if self.spare.len() < SPARE_LISTS && args.capacity() <= SPARE_ARGS {
            args.clear();
            self.spare.push(args);
        }
    }

    /// An empty argument list with room for `n` (capped: never trust the count).
    fn list(&mut self, n: usize) -> Vec<Bytes> {
        let n = n.min(1024);
        match self.spare.pop() {
            Some(mut v) => {
                v.reserve(n);
                v
            }
            None => Vec::with_capacity(n),
        }
    }

    /// Bytes the command in progress holds outside the read buffer.
    pub fn pending_bytes(&self) -> usize {
        self.args.iter().map(Bytes::len).sum()
    }

    /// Takes the next complete command out of `buf`. `Ok(None)` means more bytes are
    /// needed; an empty command (blank inline line, `*0`) is skipped.
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        if self.remaining == 0
            && let Some(args) = self.whole(buf)
        {
            return Ok(Some(args));
        }
        loop {
            if self.remaining == 0 {
                let Some(&first) = buf.first() else {
                    return Ok(None);
                };
                if first != b'*' {
                    match parse_inline(buf)? {
                        None => return Ok(None),
                        Some(args) if args.is_empty() => continue,
                        Some(args) => return Ok(Some(args)),
                    }
                }
                let Some(n) = read_len_line(buf, "mbulk count")? else {
                    return Ok(None);
                };
                let n = match n {
                    Some(n) if n <= i32::MAX as i64 => n,
                    _ => return Err(err("invalid multibulk length")),
                };
                if n <= 0 {
                    continue;
                }
                if n as usize > self.max_args {
                    return Err(err("invalid multibulk length"));
                }
                self.remaining = n as usize;
                self.args = self.list(self.remaining);
            }
            while self.remaining > 0 {
                let len = match self.bulk_len {
                    Some(len) => len,
                    None => {
                        let Some(&first) = buf.first() else {
                            return Ok(None);
                        };
                        if first != b'$' {
                            return Err(err(&format!("expected '$', got '{}'", first as char)));
                        }
                        let Some(len) = read_len_line(buf, "bulk count")? else {
                            return Ok(None);
                        };
                        let len = match len {
                            Some(l) if l >= 0 && (l as u64) <= self.max_bulk as u64 => l as usize,
                            _ => return Err(err("invalid bulk length")),
                        };
                        self.bulk_len = Some(len);
                        len
                    }
                };
                if buf.len() < len + 2 {
                    // Room for what is announced, up to 1 MiB: a client that declares
                    // 512 MB and sends nothing must not cost 512 MB. The buffer grows
                    // as the bytes actually arrive.
                    buf.reserve((len + 2 - buf.len()).min(1 << 20));
                    return Ok(None);
                }
                let arg = buf.split_to(len).freeze();
                // Redis does not check the terminator; neither does it matter which two
                // bytes close a bulk string.
                buf.advance(2);
                self.args.push(arg);
                self.bulk_len = None;
                self.remaining -= 1;
            }
            return Ok(Some(std::mem::take(&mut self.args)));
        }
    }
}

/// Arguments a command may have for [`RequestParser::whole`]; longer ones take the
/// step-by-step path.
const WHOLE_MAX_ARGS: usize = 16;

impl RequestParser {
    /// The common case, a well-formed multibulk command received whole: found in one
    /// pass over the bytes, then its arguments split out of `buf`. `None` (and `buf`
    /// untouched) for anything else (a partial command, an error, many arguments),
    /// which the step-by-step path then handles as before.
    fn whole(&mut self, buf: &mut BytesMut) -> Option<Vec<Bytes>> {
        let b = &buf[..];
        let (n, mut at) = len_line(b, 0, b'*')?;
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n > 0 && n <= WHOLE_MAX_ARGS)?;
        if n > self.max_args {
            return None;
        }
        let mut spans = [(0usize, 0usize); WHOLE_MAX_ARGS];
        for span in &mut spans[..n] {
            let (len, start) = len_line(b, at, b'$')?;
            let len = usize::try_from(len).ok().filter(|&l| l <= self.max_bulk)?;
            // The two bytes after an argument are skipped unread, as step by step.
            let end = start.checked_add(len)?;
            if end.checked_add(2)? > b.len() {
                return None;
            }
            *span = (start, end);
            at = end + 2;
        }
        // Each argument split out on its own: one reference count taken per argument,
        // none for the command as a whole.
        let mut args = self.list(n);
        let mut done = 0;
        for &(start, end) in &spans[..n] {
            buf.advance(start - done);
            args.push(buf.split_to(end - start).freeze());
            done = end;
        }
        buf.advance(at - done);
        Some(args)
    }
}

/// The number on the line at `b[at..]` that starts with `prefix` and the offset after
/// the line, as [`read_len_line`] reads it; `None` if incomplete or not a number.
fn len_line(b: &[u8], at: usize, prefix: u8) -> Option<(i64, usize)> {
    if *b.get(at)? != prefix {
        return None;
    }
    let line = b.get(at + 1..)?;
    // A length is a few plain digits: read while the line's end is looked for. At most
    // 18 of them, which no i64 overflows; a lone 0 but no leading zero.
    let mut n: i64 = 0;
    for (i, &c) in line.iter().enumerate().take(19) {
        match c {
            b'0'..=b'9' if i < 18 => n = n * 10 + i64::from(c - b'0'),
            b'\r' if i == 1 || (i > 1 && line[0] != b'0') => {
                let cr = at + 1 + i;
                return (cr + 1 < b.len()).then_some((n, cr + 2));
            }
            _ => break,
        }
    }
    // Anything else (a sign, a leading zero, many digits, no line end yet): in full.
    let cr = at + 1 + line.iter().position(|&c| c == b'\r')?;
    if cr + 1 >= b.len() {
        return None;
    }
    Some((redis_int(&b[at + 1..cr])?, cr + 2))
}

/// Reads `*N\r\n` or `$N\r\n` (the prefix byte is at `buf[0]`); `Ok(None)` when the
/// line is incomplete, `Ok(Some(None))` when it is not a number.
fn read_len_line(buf: &mut BytesMut, what: &str) -> Result<Option<Option<i64>>, ProtocolError> {
    // The scan starts after the prefix byte, so the number's range is never reversed.
    let Some(cr) = buf.iter().skip(1).position(|&b| b == b'\r').map(|i| i + 1) else {
        if buf.len() > INLINE_MAX {
            return Err(err(&format!("too big {what} string")));
        }
        return Ok(None);
    };
    if cr + 1 >= buf.len() {
        return Ok(None);
    }
    let n = redis_int(&buf[1..cr]);
    buf.advance(cr + 2);
    Ok(Some(n))
}

/// Parses an integer as Redis' `string2ll` does: digits with an optional `-`, no `+`,
/// no spaces, no leading zeros (so `01` and `$00004` are refused, as Redis refuses them).
/// Every length line and every integer argument goes through here: one pass, no UTF-8
/// check, no intermediate string.
pub fn redis_int(b: &[u8]) -> Option<i64> {
    let (neg, digits) = match b {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, b),
    };
    match digits {
        [] => return None,
        [b'0'] => return (!neg).then_some(0),
        [b'0', ..] => return None,
        // 19 digits hold every i64; more always overflow.
        _ if digits.len() > 19 => return None,
        _ => {}
    }
    let mut n: u64 = 0;
    for &d in digits {
        let d = d.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    if neg {
        // i64::MIN's magnitude is one more than i64::MAX.
        (n <= i64::MAX as u64 + 1).then(|| (n as i64).wrapping_neg())
    } else {
        i64::try_from(n).ok()
    }
}

/// Parses one inline command line (`SET k "a b"\r\n`), with Redis' quoting rules.
fn parse_inline(buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    // Redis finds the line's end with strchr, which stops at a NUL byte: a line with
    // a NUL before its newline is never complete, so it waits (up to the inline limit).
    let end = buf.iter().position(|&b| b == b'\n' || b == 0);
    let Some(nl) = end.filter(|&i| buf.get(i) == Some(&b'\n')) else {
        if buf.len() > INLINE_MAX {
            return Err(err("too big inline request"));
        }
        return Ok(None);
    };
    let line = buf.split_to(nl + 1);
    let mut line = &line[..nl];
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    split_args(line)
        .map(Some)
        .ok_or_else(|| err("unbalanced quotes in request"))
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Where parsing resumes after the closing quote at `i`, which must be followed by a
/// space or the end of the line.
fn after_closing_quote(line: &[u8], i: usize) -> Option<usize> {
    match line.get(i + 1) {
        Some(b) if !b.is_ascii_whitespace() => None,
        _ => Some(i + 1),
    }
}

/// Redis' `sdssplitargs`: spaces separate words; "double quotes" take \n \r \t \b \a
/// \\ \" and \xHH escapes; 'single quotes' take only \'. A closing quote must be
/// followed by a space or the end. `None` for unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Bytes>> {
    let mut out = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return Some(out);
        }
        let mut cur = Vec::new();
        let (mut inq, mut insq) = (false, false);
        loop {
            if inq {
                if i >= n {
                    return None;
                }
                if line[i] == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && let (Some(h), Some(l)) = (hex(line[i + 2]), hex(line[i + 3]))
                {
                    cur.push(h * 16 + l);
                    i += 4;
                    continue;
                }
                if line[i] == b'\\' && i + 1 < n {
                    let c = match line[i + 1] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    };
                    cur.push(c);
                    i += 2;
                    continue;
                }
                if line[i] == b'"' {
                    i = after_closing_quote(line, i)?;
                    break;
                }
                cur.push(line[i]);
                i += 1;
            } else if insq {
                if i >= n {
                    return None;
                }
                if line[i] == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    cur.push(b'\'');
                    i += 2;
                    continue;
                }
                if line[i] == b'\'' {
                    i = after_closing_quote(line, i)?;
                    break;
                }
                cur.push(line[i]);
                i += 1;
            } else {
                if i >= n || line[i].is_ascii_whitespace() {
                    break;
                }
                match line[i] {
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    c => cur.push(c),
                }
                i += 1;
            }
        }
        out.push(Bytes::from(cur));
    }
}

#[cfg(test)]
mod strict_tests {
    use super::*;

    fn parse(input: &[u8]) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let mut p = RequestParser::new(1 << 20, 1 << 20);
        let mut buf = BytesMut::from(input);
        p.next(&mut buf)
    }

    #[test]
    fn lengths_with_leading_zeros_are_refused_as_redis_does() {
        assert_eq!(
            parse(b"*01\r\n$4\r\nPING\r\n").expect_err("*01").0,
            "Protocol error: invalid multibulk length"
        );
        assert_eq!(
            parse(b"*1\r\n$00004\r\nPING\r\n").expect_err("$00004").0,
            "Protocol error: invalid bulk length"
        );
        assert!(parse(b"*1\r\n$4\r\nPING\r\n").expect("ok").is_some());
        assert!(parse(b"*0\r\n").expect("empty").is_none());
    }

    #[test]
    fn an_inline_line_with_a_nul_waits_like_redis() {
        assert_eq!(parse(b"PI\0NG\r\n").expect("waits"), None);
        let big = [b"PING\0".as_slice(), &vec![b'x'; INLINE_MAX + 1]].concat();
        assert!(parse(&big).is_err(), "until the inline limit");
        assert!(parse(b"PING\r\n").expect("ok").is_some());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Redis' `string2ll` rules spelt out over the standard library's parser.
    fn string2ll_model(b: &[u8]) -> Option<i64> {
        let s = std::str::from_utf8(b).ok()?;
        let digits = s.strip_prefix('-').unwrap_or(s);
        if digits.is_empty()
            || !digits.bytes().all(|c| c.is_ascii_digit())
            || (digits.len() > 1 && digits.starts_with('0'))
            || s == "-0"
        {
            return None;
        }
        s.parse().ok()
    }

    #[test]
    fn length_lines_read_as_the_general_rule_reads_them() {
        for line in [
            "$0\r\n",
            "$7\r\n",
            "$10\r\n",
            "$00\r\n",
            "$01\r\n",
            "$-1\r\n",
            "$+1\r\n",
            "$999999999999999999\r\n",
            "$9999999999999999999\r\n",
            "$9223372036854775807\r\n",
            "$9223372036854775808\r\n",
            "$1 \r\n",
            "$\r\n",
            "$12\r",
            "$12",
            "$",
            "*3\r\n",
            "$1\rx",
        ] {
            let b = line.as_bytes();
            let general = b.iter().position(|&c| c == b'\r').and_then(|cr| {
                (b[0] == b'$' && cr + 1 < b.len()).then_some(())?;
                Some((redis_int(&b[1..cr])?, cr + 2))
            });
            assert_eq!(len_line(b, 0, b'$'), general, "{line:?}");
        }
    }

    #[test]
    fn integers_follow_string2ll_at_the_edges() {
        for s in [
            "0",
            "-0",
            "00",
            "01",
            "-01",
            "7",
            "-7",
            "+7",
            " 7",
            "7 ",
            "",
            "-",
            "--1",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999",
            "-99999999999999999999",
            "1a",
            "a1",
            "\u{661}",
        ] {
            assert_eq!(
                redis_int(s.as_bytes()),
                string2ll_model(s.as_bytes()),
                "{s:?}"
            );
        }
        assert_eq!(redis_int(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(redis_int(b"9223372036854775807"), Some(i64::MAX));
    }

    proptest! {
        #[test]
        fn integers_match_the_model(b in proptest::collection::vec(
            prop_oneof![Just(b'-'), Just(b'+'), Just(b'0'), b'0'..=b'9', any::<u8>()], 0..24)) {
            prop_assert_eq!(redis_int(&b), string2ll_model(&b));
        }

        #[test]
        fn integers_round_trip(n in any::<i64>()) {
            prop_assert_eq!(redis_int(n.to_string().as_bytes()), Some(n));
        }

        /// Commands received whole (the one-pass path) and a byte at a time (step by
        /// step) come out the same, errors included, for well-formed and damaged input.
        #[test]
        fn whole_and_piecemeal_parses_agree(
            cmds in proptest::collection::vec(
                proptest::collection::vec(proptest::collection::vec(
                    prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'$'), any::<u8>()], 0..6), 0..20),
                1..5),
            damage in proptest::option::of((any::<prop::sample::Index>(), any::<u8>())),
        ) {
            let mut input = Vec::new();
            for c in &cmds {
                input.extend_from_slice(format!("*{}\r\n", c.len()).as_bytes());
                for a in c {
                    input.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                    input.extend_from_slice(a);
                    input.extend_from_slice(b"\r\n");
                }
            }
            if let Some((i, b)) = damage {
                let i = i.index(input.len());
                input[i] = b;
            }
            let mut p = RequestParser::new(8, 12);
            let at_once = all(&mut p, &input);
            let mut p = RequestParser::new(8, 12);
            let mut buf = BytesMut::new();
            let mut piecemeal = Ok(Vec::new());
            'feed: for &b in &input {
                buf.extend_from_slice(&[b]);
                loop {
                    match p.next(&mut buf) {
                        Ok(Some(cmd)) => {
                            if let Ok(v) = &mut piecemeal {
                                v.push(cmd);
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            piecemeal = Err(e);
                            break 'feed;
                        }
                    }
                }
            }
            prop_assert_eq!(at_once, piecemeal);
        }
    }

    fn parser() -> RequestParser {
        RequestParser::new(512 << 20, 1 << 20)
    }

    fn all(p: &mut RequestParser, input: &[u8]) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(cmd) = p.next(&mut buf)? {
            out.push(cmd);
        }
        Ok(out)
    }

    fn strs(cmds: Vec<Vec<Bytes>>) -> Vec<Vec<String>> {
        cmds.into_iter()
            .map(|c| {
                c.iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn pipelined_multibulk_and_inline() {
        let mut p = parser();
        let got = all(
            &mut p,
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n\r\n*1\r\n$4\r\nPING\r\n",
        )
        .expect("ok");
        assert_eq!(
            strs(got),
            vec![vec!["GET", "k"], vec!["PING"], vec!["PING"]]
        );
    }

    #[test]
    fn recycled_argument_lists_come_back_empty_and_are_reused() {
        let mut p = parser();
        let mut buf = BytesMut::from(&b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"[..]);
        let first = p.next(&mut buf).expect("ok").expect("whole");
        let at = first.as_ptr();
        p.recycle(first);
        buf.extend_from_slice(b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1");
        let second = p.next(&mut buf).expect("ok").expect("whole");
        assert_eq!(strs(vec![second.clone()]), vec![vec!["PING"]]);
        assert_eq!(second.as_ptr(), at, "the list was reused");
        // A list handed back while another command is in progress (step by step).
        p.recycle(second);
        assert!(p.next(&mut buf).expect("ok").is_none());
        buf.extend_from_slice(b"\r\nk\r\n");
        let third = p.next(&mut buf).expect("ok").expect("complete");
        assert_eq!(strs(vec![third]), vec![vec!["GET", "k"]]);
    }

    #[test]
    fn byte_at_a_time_gives_the_same_commands() {
        let input = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\nECHO \"a b\"\n";
        let mut p = parser();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &b in input.iter() {
            buf.extend_from_slice(&[b]);
            while let Some(cmd) = p.next(&mut buf).expect("ok") {
                got.push(cmd);
            }
        }
        assert_eq!(
            strs(got),
            vec![vec!["SET", "key", "va\r\nl"], vec!["ECHO", "a b"]]
        );
    }

    #[test]
    fn bad_lengths_get_redis_errors() {
        let cases: [(&[u8], &str); 7] = [
            (b"*x\r\n", "Protocol error: invalid multibulk length"),
            (
                b"*99999999999\r\n",
                "Protocol error: invalid multibulk length",
            ),
            (b"*1\r\n$-1\r\n", "Protocol error: invalid bulk length"),
            (b"*1\r\n$abc\r\n", "Protocol error: invalid bulk length"),
            (
                b"*1\r\n$999999999999\r\n",
                "Protocol error: invalid bulk length",
            ),
            (
                b"*2\r\n$1\r\na\r\n:5\r\n",
                "Protocol error: expected '$', got ':'",
            ),
            (
                b"SET k \"unterminated\r\n",
                "Protocol error: unbalanced quotes in request",
            ),
        ];
        for (input, want) in cases {
            let e = all(&mut parser(), input).expect_err("refused");
            assert_eq!(e.0, want, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn huge_lines_without_terminator_are_refused() {
        let mut big = vec![b'a'; INLINE_MAX + 10];
        assert!(all(&mut parser(), &big).is_err());
        big[0] = b'*';
        assert!(all(&mut parser(), &big).is_err());
    }

    #[test]
    fn empty_commands_are_skipped() {
        let got = all(
            &mut parser(),
            b"*0\r\n*-1\r\n\r\n   \r\n*1\r\n$4\r\nPING\r\n",
        )
        .expect("ok");
        assert_eq!(strs(got), vec![vec!["PING"]]);
    }

    #[test]
    fn inline_quoting_follows_redis() {
        let args = split_args(br#"set "a\x41\n" 'it\'s' plain"#).expect("balanced");
        assert_eq!(
            args,
            vec![
                Bytes::from("set"),
                Bytes::from("aA\n"),
                Bytes::from("it's"),
                Bytes::from("plain")
            ]
        );
        assert!(split_args(br#""closed"glued"#).is_none());
        assert!(split_args(b"'open").is_none());
        assert_eq!(split_args(b"  ").expect("ok"), Vec::<Bytes>::new());
    }

    #[test]
    fn partial_bulk_keeps_progress_and_reserves_room() {
        let mut p = parser();
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$10\r\n01234"[..]);
        assert_eq!(p.next(&mut buf).expect("ok"), None);
        assert!(buf.capacity() >= 12);
        assert_eq!(p.pending_bytes(), 3);
        buf.extend_from_slice(b"56789\r\n");
        let cmd = p.next(&mut buf).expect("ok").expect("complete");
        assert_eq!(cmd[1], Bytes::from("0123456789"));
    }
}
