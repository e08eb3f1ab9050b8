//! What COMMAND DOCS and COMMAND INFO tell about each command beyond its table entry:
//! summaries, groups, the argument grammar, ACL categories, tips and subcommands. The
//! text lives in `docs.txt` (its header describes the format) and is parsed once.

use super::Spec;
use super::error::CmdError;
use crate::protocol::reply::Reply;
use bytes::Bytes;
use std::sync::LazyLock;

const TEXT: &str = include_str!("docs.txt");

/// Every documented command, in file order, with its subcommands inside it.
static DOCS: LazyLock<Vec<Doc>> =
    LazyLock::new(|| parse(TEXT).unwrap_or_else(|e| panic!("docs.txt: {e}")));

/// One command's or subcommand's documentation.
#[derive(Debug, Default)]
pub struct Doc {
    /// Lower case; `parent|sub` for a subcommand.
    pub name: &'static str,
    pub group: &'static str,
    pub since: &'static str,
    pub summary: &'static str,
    pub complexity: &'static str,
    pub doc_flags: Vec<&'static str>,
    /// Since when, and what replaces it.
    pub deprecated: Option<(&'static str, &'static str)>,
    /// ACL categories beyond the ones the flags imply.
    pub acl: Vec<&'static str>,
    pub tips: Vec<&'static str>,
    /// A subcommand's COMMAND INFO (commands have theirs in the table).
    pub sub: Option<SubInfo>,
    /// COMMAND INFO's key positions where the table's (which say what the command
    /// locks) do not tell them, and a subcommand's.
    pub keys: Option<(i32, i32, i32)>,
    pub args: Vec<Arg>,
    pub subcommands: Vec<Doc>,
}

/// A subcommand's arity and flags.
#[derive(Debug, Default)]
pub struct SubInfo {
    pub arity: i32,
    pub flags: Vec<&'static str>,
}

/// One argument of the grammar.
#[derive(Debug, PartialEq)]
pub struct Arg {
    pub name: String,
    pub kind: Kind,
    pub token: Option<&'static str>,
    pub since: Option<&'static str>,
    pub deprecated_since: Option<&'static str>,
    pub optional: bool,
    pub multiple: bool,
    pub multiple_token: bool,
}

#[derive(Debug, PartialEq)]
pub enum Kind {
    /// A value of the type named (`string`, `integer`, ...); keys carry their key-spec
    /// index.
    Value(&'static str, Option<u32>),
    PureToken,
    OneOf(Vec<Arg>),
    Block(Vec<Arg>),
}

const VALUE_TYPES: &[&str] = &["string", "integer", "double", "key", "pattern", "unix-time"];

/// The documentation of the command `name` (lower case), if there is one.
pub fn find(name: &str) -> Option<&'static Doc> {
    DOCS.iter().find(|d| d.name == name)
}

/// Every documented command.
pub fn all() -> &'static [Doc] {
    &DOCS
}

/// Whether `n` arguments (the name included) fit Redis' `arity` (negative: at least).
pub fn arity_fits(arity: i32, n: usize) -> bool {
    let n = i32::try_from(n).unwrap_or(i32::MAX);
    if arity >= 0 { n == arity } else { n >= -arity }
}

/// Which subcommand `argv` runs of the command `spec`: its place among the command's
/// plus one, 0 for a command without subcommands (or an unknown one).
pub fn subcommand_of(spec: &Spec, argv: &[Bytes]) -> u32 {
    if !spec.subcommands {
        return 0;
    }
    subcommand_place(spec.name, argv).map_or(0, |n| n + 1)
}

/// The place of `argv`'s subcommand among `container`'s (its documentation's order),
/// if it has that one; up to 0xFFFF.
pub fn subcommand_place(container: &str, argv: &[Bytes]) -> Option<u32> {
    let sub = argv.get(1)?;
    let doc = find(container)?;
    doc.subcommands
        .iter()
        .position(|s| {
            s.name
                .split_once('|')
                .is_some_and(|(_, n)| n.as_bytes().eq_ignore_ascii_case(sub))
        })
        .and_then(|n| u32::try_from(n).ok())
        .filter(|&n| n < 0xFFFF)
}

/// The full name of subcommand `place` of `container` (`client|list`), as Redis 7
/// names it in CLIENT LIST.
pub fn subcommand_at(container: &str, place: u32) -> Option<&'static str> {
    let doc = find(container)?;
    doc.subcommands
        .get(usize::try_from(place).ok()?)
        .map(|s| s.name)
}

/// Where each command's subcommands start among the figures' slots (INFO commandstats,
/// `/metrics`): the table's commands first, then every container's subcommands.
static SUB_BASE: LazyLock<(Vec<usize>, usize)> = LazyLock::new(|| {
    let mut next = super::COMMANDS.len();
    let bases = super::COMMANDS
        .iter()
        .map(|c| {
            let base = next;
            if c.subcommands {
                next += find(c.name).map_or(0, |d| d.subcommands.len());
            }
            base
        })
        .collect();
    (bases, next)
});

/// How many slots the command figures have: one per command and per subcommand.
pub fn stat_slots() -> usize {
    SUB_BASE.1
}

/// The figures' slot of command `index` of the table run as its subcommand `sub`
/// (its place plus one, 0: none), as Redis 7 counts `client|list` apart.
pub fn stat_slot(index: usize, sub: u32) -> usize {
    let base = SUB_BASE.0.get(index).copied();
    match (sub.checked_sub(1), base) {
        (Some(place), Some(base)) if base + (place as usize) < SUB_BASE.1 => base + place as usize,
        _ => index,
    }
}

/// The name of figures' slot `slot`: a command's, or a subcommand's full name.
pub fn stat_name(slot: usize) -> Option<&'static str> {
    if let Some(c) = super::COMMANDS.get(slot) {
        return Some(c.name);
    }
    let index = SUB_BASE.0.partition_point(|&b| b <= slot).checked_sub(1)?;
    let container = super::COMMANDS.get(index)?;
    subcommand_at(
        container.name,
        u32::try_from(slot - SUB_BASE.0[index]).ok()?,
    )
}

/// Redis' checks of the subcommand of `container` (before the command runs or is
/// queued): it is one the command has, or HELP, and its arity fits.
pub fn check_subcommand(container: &'static str, argv: &[Bytes]) -> Result<(), CmdError> {
    let (Some(sub), Some(doc)) = (argv.get(1), find(container)) else {
        return Ok(());
    };
    let lower = String::from_utf8_lossy(sub).to_ascii_lowercase();
    if lower == "help" {
        if argv.len() == 2 {
            return Ok(());
        }
        return Err(CmdError::err(format!(
            "wrong number of arguments for '{container}|help' command"
        )));
    }
    let found = doc
        .subcommands
        .iter()
        .find(|s| s.name.split_once('|').is_some_and(|(_, n)| n == lower));
    let Some(found) = found else {
        let mut shown = String::from_utf8_lossy(sub).into_owned();
        if shown.len() > 128 {
            let mut end = 128;
            while !shown.is_char_boundary(end) {
                end -= 1;
            }
            shown.truncate(end);
        }
        return Err(CmdError::NoSuchSubcommand {
            sub: shown,
            cmd: container.to_ascii_uppercase(),
        });
    };
    match &found.sub {
        Some(info) if !arity_fits(info.arity, argv.len()) => Err(CmdError::Arity(found.name)),
        _ => Ok(()),
    }
}

/// `container HELP`: its subcommands with their syntax and summaries, from the docs.
pub fn help(container: &str) -> Reply {
    let upper = container.to_ascii_uppercase();
    let mut lines = vec![format!(
        "{upper} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    )];
    for s in find(container).map_or(&[][..], |d| &d.subcommands[..]) {
        let name = s.name.split_once('|').map_or(s.name, |(_, n)| n);
        let mut line = name.to_ascii_uppercase();
        for a in &s.args {
            line.push(' ');
            line.push_str(&syntax(a));
        }
        lines.push(line);
        lines.push(format!("    {}.", s.summary));
    }
    lines.push("HELP".into());
    lines.push("    Prints this help.".into());
    Reply::Array(lines.into_iter().map(Reply::StatusText).collect())
}

/// An argument written as usage lines write it: `[NX|XX]`, `key [key ...]`.
fn syntax(a: &Arg) -> String {
    let core = match &a.kind {
        Kind::Value(..) => a.name.clone(),
        Kind::PureToken => String::new(),
        Kind::OneOf(c) => c.iter().map(syntax).collect::<Vec<_>>().join("|"),
        Kind::Block(c) => c.iter().map(syntax).collect::<Vec<_>>().join(" "),
    };
    let one = match (a.token, core.is_empty()) {
        (Some(t), true) => t.to_owned(),
        (Some(t), false) => format!("{t} {core}"),
        (None, _) => core,
    };
    let many = if a.multiple {
        let again = if a.multiple_token {
            one.clone()
        } else {
            match &a.kind {
                Kind::Value(..) | Kind::PureToken => syntax_no_token(a),
                _ => one.clone(),
            }
        };
        format!("{one} [{again} ...]")
    } else {
        one
    };
    if a.optional {
        format!("[{many}]")
    } else {
        many
    }
}

/// A repeated argument's later occurrences (its token comes once unless repeated).
fn syntax_no_token(a: &Arg) -> String {
    match &a.kind {
        Kind::PureToken => a.token.unwrap_or_default().to_owned(),
        _ => a.name.clone(),
    }
}

/// COMMAND DOCS' map for one command.
pub fn reply(doc: &Doc) -> Reply {
    let mut m = vec![
        (Reply::text("summary"), Reply::text(doc.summary)),
        (Reply::text("since"), Reply::text(doc.since)),
        (Reply::text("group"), Reply::text(doc.group)),
    ];
    if !doc.complexity.is_empty() {
        m.push((Reply::text("complexity"), Reply::text(doc.complexity)));
    }
    if !doc.doc_flags.is_empty() {
        m.push((
            Reply::text("doc_flags"),
            Reply::Set(doc.doc_flags.iter().map(|f| Reply::Status(f)).collect()),
        ));
    }
    if let Some((since, by)) = doc.deprecated {
        m.push((Reply::text("deprecated_since"), Reply::text(since)));
        m.push((Reply::text("replaced_by"), Reply::text(by)));
    }
    if !doc.args.is_empty() {
        m.push((Reply::text("arguments"), args_reply(&doc.args)));
    }
    if !doc.subcommands.is_empty() {
        m.push((
            Reply::text("subcommands"),
            Reply::Map(
                doc.subcommands
                    .iter()
                    .map(|s| (Reply::text(s.name), reply(s)))
                    .collect(),
            ),
        ));
    }
    Reply::Map(m)
}

fn args_reply(args: &[Arg]) -> Reply {
    Reply::Array(args.iter().map(arg_reply).collect())
}

fn arg_reply(a: &Arg) -> Reply {
    let (ty, key_index, children) = match &a.kind {
        Kind::Value(t, k) => (*t, *k, None),
        Kind::PureToken => ("pure-token", None, None),
        Kind::OneOf(c) => ("oneof", None, Some(c)),
        Kind::Block(c) => ("block", None, Some(c)),
    };
    let mut m = vec![
        (Reply::text("name"), Reply::text(&a.name)),
        (Reply::text("type"), Reply::text(ty)),
    ];
    if let Some(i) = key_index {
        m.push((Reply::text("key_spec_index"), Reply::Int(i64::from(i))));
    }
    if let Some(t) = a.token {
        m.push((Reply::text("token"), Reply::text(t)));
    }
    if let Some(v) = a.since {
        m.push((Reply::text("since"), Reply::text(v)));
    }
    if let Some(v) = a.deprecated_since {
        m.push((Reply::text("deprecated_since"), Reply::text(v)));
    }
    let flags: Vec<Reply> = [
        (a.optional, "optional"),
        (a.multiple, "multiple"),
        (a.multiple_token, "multiple_token"),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .map(|(_, f)| Reply::Status(f))
    .collect();
    if !flags.is_empty() {
        m.push((Reply::text("flags"), Reply::Set(flags)));
    }
    if let Some(c) = children {
        m.push((Reply::text("arguments"), args_reply(c)));
    }
    Reply::Map(m)
}

/// ACL categories in Redis' order (the order COMMAND INFO lists them in).
const CATEGORIES: &[&str] = &[
    "@keyspace",
    "@read",
    "@write",
    "@set",
    "@sortedset",
    "@list",
    "@hash",
    "@string",
    "@bitmap",
    "@hyperloglog",
    "@geo",
    "@stream",
    "@pubsub",
    "@admin",
    "@fast",
    "@slow",
    "@blocking",
    "@dangerous",
    "@connection",
    "@transaction",
    "@scripting",
];

/// The ACL categories of a command with `flags` and `extra` categories: the ones its
/// flags imply (as Redis derives them) and the extra ones, in Redis' order.
pub fn categories(flags: &[&str], extra: &[&str]) -> Vec<&'static str> {
    let has = |f: &str| flags.contains(&f);
    let scripting = extra.contains(&"@scripting");
    CATEGORIES
        .iter()
        .copied()
        .filter(|&c| {
            extra.contains(&c)
                || match c {
                    "@write" => has("write"),
                    "@read" => has("readonly") && !has("write") && !scripting,
                    "@admin" | "@dangerous" => has("admin"),
                    "@pubsub" => has("pubsub"),
                    "@fast" => has("fast"),
                    "@slow" => !has("fast"),
                    "@blocking" => has("blocking"),
                    _ => false,
                }
        })
        .collect()
}

/// A command's ACL categories. A command with subcommands has Redis' (its flags are
/// the ones caskade routes on; Redis keeps them on the subcommands).
pub fn command_categories(spec: &Spec) -> Vec<&'static str> {
    let extra = find(spec.name).map_or(&[][..], |d| &d.acl[..]);
    categories(if spec.subcommands { &[] } else { spec.flags }, extra)
}

/// A subcommand's ACL categories.
pub fn sub_categories(d: &Doc) -> Vec<&'static str> {
    categories(d.sub.as_ref().map_or(&[][..], |s| &s.flags[..]), &d.acl)
}

/// COMMAND INFO's ten fields for a command.
pub fn info(spec: &Spec) -> Reply {
    let doc = find(spec.name);
    info_reply(
        spec.name,
        spec.arity,
        spec.flags,
        doc.and_then(|d| d.keys).unwrap_or(spec.key_triple()),
        &command_categories(spec),
        doc.map_or(&[][..], |d| &d.tips[..]),
        doc.map_or(&[][..], |d| &d.subcommands[..]),
    )
}

/// COMMAND INFO's ten fields for a subcommand (`None` for a command).
pub fn sub_info(d: &Doc) -> Option<Reply> {
    let s = d.sub.as_ref()?;
    Some(info_reply(
        d.name,
        s.arity,
        &s.flags,
        d.keys.unwrap_or((0, 0, 0)),
        &sub_categories(d),
        &d.tips,
        &[],
    ))
}

fn info_reply(
    name: &str,
    arity: i32,
    flags: &[&str],
    (first, last, step): (i32, i32, i32),
    acl: &[&'static str],
    tips: &[&'static str],
    subs: &[Doc],
) -> Reply {
    let subcommands = if subs.is_empty() {
        Reply::Set(vec![])
    } else {
        Reply::Array(subs.iter().filter_map(sub_info).collect())
    };
    Reply::Array(vec![
        Reply::text(name),
        Reply::Int(i64::from(arity)),
        Reply::Set(
            flags
                .iter()
                .map(|f| Reply::StatusText((*f).to_owned()))
                .collect(),
        ),
        Reply::Int(i64::from(first)),
        Reply::Int(i64::from(last)),
        Reply::Int(i64::from(step)),
        Reply::Set(acl.iter().map(|c| Reply::Status(c)).collect()),
        Reply::Set(tips.iter().map(|t| Reply::text(t)).collect()),
        Reply::Set(vec![]),
        subcommands,
    ])
}

/// Parses the whole file; an error names the line.
fn parse(text: &'static str) -> Result<Vec<Doc>, String> {
    let mut docs: Vec<Doc> = Vec::new();
    let mut current: Option<Doc> = None;
    let finish = |doc: Doc, docs: &mut Vec<Doc>| -> Result<(), String> {
        match doc.name.split_once('|') {
            Some((parent, _)) => docs
                .iter_mut()
                .rev()
                .find(|d| d.name == parent)
                .ok_or_else(|| format!("subcommand {} before its command", doc.name))?
                .subcommands
                .push(doc),
            None => docs.push(doc),
        }
        Ok(())
    };
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}", n + 1);
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("  ") {
            let doc = current
                .as_mut()
                .ok_or_else(|| at("an attribute outside an entry".into()))?;
            attribute(doc, rest).map_err(at)?;
        } else {
            if let Some(done) = current.take() {
                finish(done, &mut docs)?;
            }
            let mut w = line.split(' ');
            let (Some(name), Some(group), Some(since), None) =
                (w.next(), w.next(), w.next(), w.next())
            else {
                return Err(at(format!("expected `name group since`, got {line:?}")));
            };
            current = Some(Doc {
                name,
                group,
                since,
                ..Doc::default()
            });
        }
    }
    if let Some(done) = current.take() {
        finish(done, &mut docs)?;
    }
    Ok(docs)
}

fn attribute(doc: &mut Doc, line: &'static str) -> Result<(), String> {
    let (key, value) = line.split_once(' ').unwrap_or((line, ""));
    let words = || value.split(' ').filter(|w| !w.is_empty());
    match key {
        "summary" => doc.summary = value,
        "complexity" => doc.complexity = value,
        "docflags" => doc.doc_flags = words().collect(),
        "acl" => doc.acl = words().collect(),
        "tips" => doc.tips = words().collect(),
        "deprecated" => {
            let (since, by) = value
                .split_once(" | ")
                .ok_or("expected `deprecated VERSION | REPLACEMENT`")?;
            doc.deprecated = Some((since, by));
        }
        "sub" => {
            let mut w = words();
            let arity = w
                .next()
                .and_then(|a| a.parse().ok())
                .ok_or("expected `sub ARITY FLAGS...`")?;
            doc.sub = Some(SubInfo {
                arity,
                flags: w.collect(),
            });
        }
        "keys" => {
            let v: Vec<i32> = words()
                .map(|w| w.parse().map_err(|_| format!("bad key position {w:?}")))
                .collect::<Result<_, _>>()?;
            let [first, last, step] = v[..] else {
                return Err("expected `keys FIRST LAST STEP`".into());
            };
            doc.keys = Some((first, last, step));
        }
        "args" => {
            let mut p = Parser {
                s: value,
                at: 0,
                keys: 0,
            };
            doc.args = p.list(None)?;
            if p.at != value.len() {
                return Err(format!("unexpected {:?}", &value[p.at..]));
            }
        }
        other => return Err(format!("unknown attribute {other:?}")),
    }
    Ok(())
}

/// A recursive-descent reader of one `args` line.
struct Parser {
    s: &'static str,
    at: usize,
    /// Keys seen so far: the next key's default key-spec index.
    keys: u32,
}

impl Parser {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.at).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn skip_spaces(&mut self) {
        while self.eat(b' ') {}
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at {:?}", &self.s[self.at..]))
    }

    /// Elements up to `end` (or the end of the line), separated by spaces; inside a
    /// one-of, by `|`.
    fn list(&mut self, end: Option<u8>) -> Result<Vec<Arg>, String> {
        let mut out = Vec::new();
        loop {
            self.skip_spaces();
            match self.peek() {
                None if end.is_none() => return Ok(out),
                None => return self.err("unclosed group"),
                Some(c) if Some(c) == end => {
                    self.at += 1;
                    return Ok(out);
                }
                _ => out.push(self.element()?),
            }
        }
    }

    fn one_of(&mut self) -> Result<Vec<Arg>, String> {
        let mut out = Vec::new();
        loop {
            self.skip_spaces();
            out.push(self.element()?);
            self.skip_spaces();
            if self.eat(b')') {
                return Ok(out);
            }
            if !self.eat(b'|') {
                return self.err("expected `|` or `)`");
            }
        }
    }

    fn word(&mut self) -> &'static str {
        let start = self.at;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || b"_-:/".contains(&c) {
                self.at += 1;
            } else {
                break;
            }
        }
        &self.s[start..self.at]
    }

    fn version(&mut self) -> Result<&'static str, String> {
        let start = self.at;
        while let Some(c) = self.peek() {
            let dots = self.s.as_bytes().get(self.at + 1) == Some(&b'.');
            if c.is_ascii_digit() || (c == b'.' && !dots) {
                self.at += 1;
            } else {
                break;
            }
        }
        if start == self.at {
            return self.err("expected a version");
        }
        Ok(&self.s[start..self.at])
    }

    fn element(&mut self) -> Result<Arg, String> {
        if self.eat(b'[') {
            let mut a = self.element()?;
            if !self.eat(b']') {
                return self.err("expected `]`");
            }
            a.optional = true;
            return Ok(a);
        }
        let mut word = self.word();
        if word.is_empty() {
            return self.err("expected an argument");
        }
        let mut token = None;
        if self.eat(b'=') {
            token = Some(word);
            word = self.word();
        }
        let (name, kind) = if self.eat(b'(') {
            (word.to_owned(), Kind::OneOf(self.one_of()?))
        } else if self.eat(b'{') {
            (word.to_owned(), Kind::Block(self.list(Some(b'}'))?))
        } else if self.eat(b'~') {
            token = Some(self.word());
            (word.to_owned(), Kind::PureToken)
        } else if let Some((name, ty)) = word.rsplit_once(':') {
            let Some(ty) = VALUE_TYPES.iter().find(|t| **t == ty) else {
                return self.err(&format!("unknown type {ty:?}"));
            };
            // A key counts in order unless `#N` names its key spec; a value of another
            // type has one only when named (SORT's patterns name the keys they read).
            let index = if self.eat(b'#') {
                let w = self.word();
                Some(w.parse().map_err(|_| format!("bad key index {w:?}"))?)
            } else {
                (*ty == "key").then_some(self.keys)
            };
            if let Some(i) = index {
                self.keys = self.keys.max(i + 1);
            }
            let key = index;
            (name.to_owned(), Kind::Value(ty, key))
        } else if word.bytes().all(|c| !c.is_ascii_lowercase()) {
            token = Some(word);
            (word.to_ascii_lowercase(), Kind::PureToken)
        } else {
            return self.err(&format!("{word:?} is neither a token nor name:type"));
        };
        let mut arg = Arg {
            name,
            kind,
            token,
            since: None,
            deprecated_since: None,
            optional: false,
            multiple: false,
            multiple_token: false,
        };
        loop {
            if self.s[self.at..].starts_with("...") {
                self.at += 3;
                arg.multiple = true;
            } else if self.eat(b'!') {
                arg.multiple_token = true;
            } else if self.eat(b'@') {
                arg.since = Some(self.version()?);
            } else if self.eat(b'^') {
                arg.deprecated_since = Some(self.version()?);
            } else {
                return Ok(arg);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::COMMANDS;

    /// Every command and every subcommand has a figures' slot of its own, named after it.
    #[test]
    fn each_subcommand_has_a_slot_of_its_own() {
        let mut seen = std::collections::BTreeSet::new();
        for (i, c) in COMMANDS.iter().enumerate() {
            assert_eq!(stat_slot(i, 0), i);
            assert_eq!(stat_name(i), Some(c.name));
            assert!(seen.insert(i));
            let subs = find(c.name).map_or(&[][..], |d| &d.subcommands[..]);
            for (place, s) in subs.iter().enumerate().filter(|_| c.subcommands) {
                let slot = stat_slot(i, place as u32 + 1);
                assert!(slot >= COMMANDS.len() && seen.insert(slot), "{}", s.name);
                assert_eq!(stat_name(slot), Some(s.name));
                let argv = [
                    Bytes::from(c.name),
                    Bytes::from(
                        s.name
                            .split_once('|')
                            .unwrap_or_default()
                            .1
                            .to_ascii_uppercase(),
                    ),
                ];
                assert_eq!(subcommand_place(c.name, &argv), Some(place as u32));
            }
        }
        assert_eq!(seen.len(), stat_slots());
        assert!(seen.iter().any(|&s| stat_name(s) == Some("client|list")));
    }

    #[test]
    fn the_file_parses_and_documents_every_command_once() {
        let docs = parse(TEXT).expect("docs.txt parses");
        for spec in COMMANDS {
            let n = docs.iter().filter(|d| d.name == spec.name).count();
            assert_eq!(n, 1, "{} is documented {n} times", spec.name);
        }
        for d in &docs {
            assert!(
                COMMANDS.iter().any(|s| s.name == d.name),
                "{} is documented but not a command",
                d.name
            );
            assert!(
                !d.summary.is_empty() && !d.complexity.is_empty(),
                "{}",
                d.name
            );
            assert!(d.sub.is_none(), "{} has subcommand info", d.name);
            for s in &d.subcommands {
                assert!(s.sub.is_some(), "{} needs a `sub` line", s.name);
                assert!(!s.summary.is_empty(), "{}", s.name);
            }
        }
    }

    fn args(line: &'static str) -> Vec<Arg> {
        let mut p = Parser {
            s: line,
            at: 0,
            keys: 0,
        };
        p.list(None).expect("parses")
    }

    #[test]
    fn the_grammar_reads_tokens_groups_and_suffixes() {
        let a = args(
            "key:key [condition(NX | xx~XX)@2.6.12] EX=seconds:integer key:key#3... [GET=g{a:string b:double}...!]",
        );
        assert_eq!(a.len(), 5);
        assert_eq!(a[0].kind, Kind::Value("key", Some(0)));
        let Kind::OneOf(c) = &a[1].kind else {
            panic!("one-of")
        };
        assert!(a[1].optional && a[1].since == Some("2.6.12"));
        assert_eq!((c[0].name.as_str(), c[0].token), ("nx", Some("NX")));
        assert_eq!((c[1].name.as_str(), c[1].token), ("xx", Some("XX")));
        assert_eq!(a[2].token, Some("EX"));
        assert_eq!(a[2].kind, Kind::Value("integer", None));
        assert_eq!(a[3].kind, Kind::Value("key", Some(3)));
        assert!(a[3].multiple);
        assert!(a[4].optional && a[4].multiple && a[4].multiple_token);
        assert!(matches!(&a[4].kind, Kind::Block(b) if b.len() == 2));
        // Names may hold `:` and `/` (the type follows the last `:`).
        assert_eq!(args("ip:port:string^2.8.12")[0].name, "ip:port");
        assert_eq!(
            args("ip:port:string^2.8.12")[0].deprecated_since,
            Some("2.8.12")
        );
    }

    #[test]
    fn bad_grammar_is_refused_with_where() {
        for bad in [
            "key:keys",
            "(",
            "a{b:string",
            "[x:string",
            "lower",
            "x(a b)",
        ] {
            let mut p = Parser {
                s: bad,
                at: 0,
                keys: 0,
            };
            assert!(p.list(None).is_err(), "{bad}");
        }
    }

    #[test]
    fn usage_lines_follow_the_grammar() {
        let line = |s: &'static str| args(s).iter().map(syntax).collect::<Vec<_>>().join(" ");
        assert_eq!(
            line("key:key [condition(NX | XX)] [EX=seconds:integer] [key:key...]"),
            "key [NX|XX] [EX seconds] [key [key ...]]"
        );
        assert_eq!(
            line("[GET=encoding_offset{encoding:string offset:integer}...!]"),
            "[GET encoding offset [GET encoding offset ...]]"
        );
        let Reply::Array(help) = help("config") else {
            panic!("lines")
        };
        assert!(help.contains(&Reply::StatusText("GET parameter [parameter ...]".into())));
    }

    #[test]
    fn subcommands_are_checked_as_redis_checks_them() {
        let argv = |a: &[&str]| -> Vec<Bytes> {
            a.iter()
                .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                .collect()
        };
        assert_eq!(
            check_subcommand("config", &argv(&["config", "GET", "x"])),
            Ok(())
        );
        assert_eq!(
            check_subcommand("config", &argv(&["config", "get"])),
            Err(CmdError::Arity("config|get"))
        );
        assert_eq!(
            check_subcommand("config", &argv(&["config", "nope"])).map_err(|e| e.to_string()),
            Err("ERR unknown subcommand 'nope'. Try CONFIG HELP.".to_owned())
        );
        assert_eq!(
            check_subcommand("config", &argv(&["config", "help"])),
            Ok(())
        );
        assert!(check_subcommand("config", &argv(&["config", "help", "x"])).is_err());
        let long = "x".repeat(300);
        let e = check_subcommand("config", &argv(&["config", &long])).expect_err("unknown");
        assert!(e.to_string().contains(&format!("'{}'", "x".repeat(128))));
    }

    #[test]
    fn categories_follow_the_flags_as_redis_derives_them() {
        assert_eq!(
            categories(&["readonly", "fast"], &["@string"]),
            ["@read", "@string", "@fast"]
        );
        assert_eq!(
            categories(&["write"], &["@keyspace", "@dangerous"]),
            ["@keyspace", "@write", "@slow", "@dangerous"]
        );
        assert_eq!(
            categories(&["readonly", "noscript"], &["@scripting"]),
            ["@slow", "@scripting"]
        );
        assert_eq!(
            categories(&["admin", "noscript"], &[]),
            ["@admin", "@slow", "@dangerous"]
        );
    }
}
