//! Commands: the table (name, arity, flags, key positions, how to run), the per-connection
//! session, and dispatch. A command parses its arguments with an [`Args`] cursor into a
//! typed value; a data command then applies that value to a [`Keyspace`] inside a unit
//! that holds its keys' stripes. One file per command family; none panics on input.

/// A command's parser that takes its arguments in order, each by an [`Args`] method,
/// and builds its typed value: `parse!(hget(k: next_key, f: next_arg) => Cmd::Get(k, f));`.
/// The family's own `done` checks that nothing is left and wraps the value.
macro_rules! parse {
    ($name:ident($($arg:ident: $how:ident),*) => $value:expr) => {
        pub fn $name<'a>(a: &mut Args<'a>) -> Result<DataCmd<'a>, CmdError> {
            $(let $arg = a.$how()?;)*
            done(a, $value)
        }
    };
}

mod args;
mod bits;
mod blocking;
mod compact;
mod connection;
mod docs;
pub use docs::{stat_name, stat_slots};
mod error;
mod functions;
mod geo;
mod hashes;
mod hll;
mod info;
mod keys;
mod lcs;
mod lists;
mod scripting;
mod server;
mod sets;
mod sort;
mod strings;
mod transaction;
mod zsets;

use crate::keyspace::Keyspace;
use crate::origin::Reads;
use crate::protocol::reply::Reply;
use crate::state::Shared;
use crate::store::KeyspaceEvents;
pub use crate::unit::KeySpec;
use crate::unit::Span;
use bytes::Bytes;
use std::sync::Arc;

pub use args::Args;
pub use args::parse_i64;
pub use blocking::{Block, found_nothing};
pub use connection::{REDIS_VERSION, Session};
pub use error::{CmdError, CmdResult};
pub use geo::radius_store_target;
pub use sort::{reads_patterns as sort_reads_patterns, store_target as sort_store_target};

/// A key and a value, as commands name them (borrowed from the request).
pub type KeyPair<'a> = (&'a Bytes, &'a Bytes);

/// A data command, parsed: what it does, typed, ready to apply to a keyspace (from a
/// connection today; from EXEC and scripts alike).
#[derive(Debug, Clone, PartialEq)]
pub enum DataCmd<'a> {
    /// A string command.
    Str(strings::Cmd<'a>),
    /// A keyspace command.
    Key(keys::Cmd<'a>),
    /// A bit command.
    Bit(bits::Cmd<'a>),
    /// LCS.
    Lcs(lcs::Cmd<'a>),
    /// A hash command.
    Hash(hashes::Cmd<'a>),
    /// A set command.
    Set(sets::Cmd<'a>),
    /// A list command.
    List(lists::Cmd<'a>),
    /// A sorted set command.
    ZSet(zsets::Cmd<'a>),
    /// A HyperLogLog command.
    Hll(hll::Cmd<'a>),
    /// A GEO command.
    Geo(geo::Cmd<'a>),
    /// A blocking pop (its non-blocking form, once).
    Block(blocking::Cmd<'a>),
    /// SORT, SORT_RO.
    Sort(sort::Cmd<'a>),
}

impl DataCmd<'_> {
    /// Marks a command run by a script (what SORT needs to know).
    pub fn scripted(&mut self) {
        if let DataCmd::Sort(c) = self {
            c.scripted();
        }
    }

    /// Applies the command. The caller's unit holds the stripes of the keys it names.
    pub fn apply(self, ks: &mut Keyspace<'_>) -> CmdResult {
        match self {
            DataCmd::Str(c) => c.apply(ks),
            DataCmd::Key(c) => c.apply(ks),
            DataCmd::Bit(c) => c.apply(ks),
            DataCmd::Lcs(c) => c.apply(ks),
            DataCmd::Hash(c) => c.apply(ks),
            DataCmd::Set(c) => c.apply(ks),
            DataCmd::List(c) => c.apply(ks),
            DataCmd::ZSet(c) => c.apply(ks),
            DataCmd::Block(c) => c.apply(ks),
            DataCmd::Hll(c) => c.apply(ks),
            DataCmd::Geo(c) => c.apply(ks),
            DataCmd::Sort(c) => c.apply(ks),
        }
    }
}

/// How a command runs.
#[derive(Clone, Copy)]
pub enum Run {
    /// Reads or writes keys: parsed into a [`DataCmd`] (borrowing the request's
    /// arguments), applied to a keyspace in a unit.
    Data(for<'a, 'b> fn(&'b mut Args<'a>) -> Result<DataCmd<'a>, CmdError>),
    /// Acts on the connection or the server.
    Control(fn(&Shared, &mut Session, &mut Args<'_>) -> CmdResult),
    /// EXEC: runs the commands queued since MULTI as one unit.
    Exec,
}

/// One command as the table describes it.
pub struct Spec {
    /// Lower-case name.
    pub name: &'static str,
    /// Redis arity: the argument count including the name; negative means "at least".
    pub arity: i32,
    /// Redis command flags, for COMMAND INFO.
    pub flags: &'static [&'static str],
    /// The keys it names.
    pub keys: KeySpec,
    /// Whether its reads of routed keys fill from the origin (read-through).
    pub through: bool,
    /// Whether it changes data (the `write` flag, looked up once at compile time).
    pub write: bool,
    /// Whether its first argument is a subcommand (documented in `docs.txt`).
    pub subcommands: bool,
    /// How it runs.
    pub run: Run,
}

impl Spec {
    /// The keys named by `rest` (the arguments after the name), from the key positions.
    pub fn key_args<'a>(&self, rest: &'a [Bytes]) -> impl Iterator<Item = &'a Bytes> + 'a {
        self.keys.keys_in(rest)
    }

    /// COMMAND INFO's (first, last, step).
    pub fn key_triple(&self) -> (i32, i32, i32) {
        match self.keys {
            KeySpec::Range(f, l, s) => (f, l, s),
            KeySpec::Sort | KeySpec::DestCounted | KeySpec::RadiusStore => (1, 1, 1),
            KeySpec::None | KeySpec::Every { .. } | KeySpec::Counted(_) => (0, 0, 0),
        }
    }

    /// What this command with arguments `rest` holds as a unit (alone, or as one step
    /// of a group).
    pub fn span<'a>(&self, rest: &'a [Bytes], in_group: bool) -> Span<'a> {
        Span::of(self.keys, rest, in_group)
    }

    /// `ERR wrong number of arguments` unless `n` arguments (the name included) fit.
    pub fn check_arity(&self, n: usize) -> Result<(), CmdError> {
        if docs::arity_fits(self.arity, n) {
            Ok(())
        } else {
            Err(CmdError::Arity(self.name))
        }
    }

    /// The checks before a command runs or is queued: its arity, and for a command
    /// with subcommands, that the subcommand exists and its arity fits.
    pub fn check_args(&self, argv: &[Bytes]) -> Result<(), CmdError> {
        self.check_arity(argv.len())?;
        if self.subcommands {
            docs::check_subcommand(self.name, argv)?;
        }
        Ok(())
    }

    /// Whether the command changes data.
    pub fn is_write(&self) -> bool {
        self.write
    }
}

const R: &[&str] = &["readonly", "fast"];
const RO: &[&str] = &["readonly"];
const W: &[&str] = &["write", "denyoom"];
const WDF: &[&str] = &["write", "denyoom", "fast"];
const F: &[&str] = &["fast"];
const LSF: &[&str] = &["loading", "stale", "fast"];
const ADMIN: &[&str] = &["admin", "noscript"];
const NOAUTH: &[&str] = &[
    "noscript",
    "loading",
    "stale",
    "fast",
    "no_auth",
    "allow_busy",
];

/// Whether `flags` holds `flag` (for the table, at compile time).
const fn has_flag(flags: &[&str], flag: &str) -> bool {
    let mut i = 0;
    while i < flags.len() {
        let (a, b) = (flags[i].as_bytes(), flag.as_bytes());
        if a.len() == b.len() {
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                return true;
            }
        }
        i += 1;
    }
    false
}

const ONE: KeySpec = KeySpec::Range(1, 1, 1);
const ALL_ARGS: KeySpec = KeySpec::Range(1, -1, 1);
const TWO: KeySpec = KeySpec::Range(1, 2, 1);
/// `numkeys` first, then the keys it counts (SINTERCARD, ZUNION, LMPOP, ...).
const COUNTED: KeySpec = KeySpec::Counted(1);
const PAIRS: KeySpec = KeySpec::Range(1, -1, 2);
const READS_EVERY: KeySpec = KeySpec::Every { write: false };
const WRITES_EVERY: KeySpec = KeySpec::Every { write: true };

macro_rules! data {
    ($name:literal, $arity:expr, $flags:expr, $keys:expr, $parse:path) => {
        data!($name, $arity, $flags, $keys, $parse, false)
    };
    ($name:literal, $arity:expr, $flags:expr, $keys:expr, $parse:path, $through:expr) => {
        Spec {
            name: $name,
            arity: $arity,
            flags: $flags,
            keys: $keys,
            through: $through,
            write: has_flag($flags, "write"),
            subcommands: false,
            run: Run::Data($parse),
        }
    };
}

macro_rules! ctl {
    ($name:literal, $arity:expr, $flags:expr, $run:path) => {
        Spec {
            name: $name,
            arity: $arity,
            flags: $flags,
            keys: KeySpec::None,
            through: false,
            write: has_flag($flags, "write"),
            subcommands: false,
            run: Run::Control($run),
        }
    };
}

/// A command whose first argument is a subcommand: [`Spec::check_args`] checks it
/// against `docs.txt`, and HELP lists the subcommands from there.
macro_rules! container {
    ($name:literal, $arity:expr, $flags:expr, $run:path) => {
        Spec {
            subcommands: true,
            run: Run::Control(|s, sess, a| match a.peek() {
                Some(sub) if args::is(sub, "HELP") => Ok(docs::help($name)),
                _ => $run(s, sess, a),
            }),
            ..ctl!($name, $arity, $flags, $run)
        }
    };
}

const WF: &[&str] = &["write", "fast"];
const RMOV: &[&str] = &["readonly", "movablekeys"];
const BLOCKS: &[&str] = &["write", "noscript", "blocking"];
const BLOCKS_DENY: &[&str] = &["write", "denyoom", "noscript", "blocking"];
const BLOCKS_FAST: &[&str] = &["write", "noscript", "blocking", "fast"];
/// Every argument but the last (a timeout).
const UNTIL_LAST: KeySpec = KeySpec::Range(1, -2, 1);
const WMOV: &[&str] = &["write", "denyoom", "movablekeys"];
const TX: &[&str] = &["noscript", "loading", "stale", "fast", "allow_busy"];

/// EVAL and friends: `numkeys` at position 2 counts the keys after it.
macro_rules! script {
    ($name:literal, $flags:expr, $run:path) => {
        Spec {
            name: $name,
            arity: -3,
            flags: $flags,
            keys: KeySpec::Counted(2),
            through: false,
            write: false,
            subcommands: false,
            run: Run::Control($run),
        }
    };
}

const SCRIPT: &[&str] = &[
    "noscript",
    "stale",
    "skip_monitor",
    "no_mandatory_keys",
    "movablekeys",
];
const SCRIPT_RO: &[&str] = &[
    "readonly",
    "noscript",
    "stale",
    "skip_monitor",
    "no_mandatory_keys",
    "movablekeys",
];

/// Every command caskade answers, in COMMAND order.
pub static COMMANDS: &[Spec] = &[
    // strings
    data!("get", 2, R, ONE, strings::get, true),
    data!("set", -3, W, ONE, strings::set),
    data!("setnx", 3, WDF, ONE, strings::setnx),
    data!("setex", 4, W, ONE, strings::setex),
    data!("psetex", 4, W, ONE, strings::psetex),
    data!("getset", 3, WDF, ONE, strings::getset),
    data!("getdel", 2, WF, ONE, strings::getdel),
    data!("getex", -2, WF, ONE, strings::getex, true),
    data!("mget", -2, R, ALL_ARGS, strings::mget, true),
    data!("mset", -3, W, PAIRS, strings::mset),
    data!("msetnx", -3, W, PAIRS, strings::msetnx),
    data!("append", 3, WDF, ONE, strings::append),
    data!("strlen", 2, R, ONE, strings::strlen),
    data!("getrange", 4, RO, ONE, strings::getrange),
    data!("substr", 4, RO, ONE, strings::getrange),
    data!("setrange", 4, W, ONE, strings::setrange),
    data!("incr", 2, WDF, ONE, strings::incr),
    data!("decr", 2, WDF, ONE, strings::decr),
    data!("incrby", 3, WDF, ONE, strings::incrby),
    data!("decrby", 3, WDF, ONE, strings::decrby),
    data!("incrbyfloat", 3, WDF, ONE, strings::incrbyfloat),
    data!("lcs", -3, RO, TWO, lcs::lcs),
    // bits
    data!("setbit", 4, W, ONE, bits::setbit),
    data!("getbit", 3, R, ONE, bits::getbit),
    data!("bitcount", -2, RO, ONE, bits::bitcount),
    data!("bitpos", -3, RO, ONE, bits::bitpos),
    data!("bitop", -4, W, KeySpec::Range(2, -1, 1), bits::bitop),
    data!("bitfield", -2, W, ONE, bits::bitfield),
    data!("bitfield_ro", -2, R, ONE, bits::bitfield_ro),
    // hashes
    data!("hset", -4, WDF, ONE, hashes::hset),
    data!("hsetnx", 4, WDF, ONE, hashes::hsetnx),
    data!("hmset", -4, WDF, ONE, hashes::hmset),
    data!("hget", 3, R, ONE, hashes::hget),
    data!("hmget", -3, R, ONE, hashes::hmget),
    data!("hgetall", 2, RO, ONE, hashes::hgetall),
    data!("hkeys", 2, RO, ONE, hashes::hkeys),
    data!("hvals", 2, RO, ONE, hashes::hvals),
    data!("hdel", -3, WF, ONE, hashes::hdel),
    data!("hexists", 3, R, ONE, hashes::hexists),
    data!("hlen", 2, R, ONE, hashes::hlen),
    data!("hstrlen", 3, R, ONE, hashes::hstrlen),
    data!("hincrby", 4, WDF, ONE, hashes::hincrby),
    data!("hincrbyfloat", 4, WDF, ONE, hashes::hincrbyfloat),
    data!("hrandfield", -2, RO, ONE, hashes::hrandfield),
    data!("hscan", -3, RO, ONE, hashes::hscan),
    // lists
    data!("lpush", -3, WDF, ONE, lists::lpush),
    data!("rpush", -3, WDF, ONE, lists::rpush),
    data!("lpushx", -3, WDF, ONE, lists::lpushx),
    data!("rpushx", -3, WDF, ONE, lists::rpushx),
    data!("lpop", -2, WF, ONE, lists::lpop),
    data!("rpop", -2, WF, ONE, lists::rpop),
    data!("llen", 2, R, ONE, lists::llen),
    data!("lrange", 4, RO, ONE, lists::lrange),
    data!("lindex", 3, RO, ONE, lists::lindex),
    data!("lset", 4, W, ONE, lists::lset),
    data!("lrem", 4, &["write"], ONE, lists::lrem),
    data!("ltrim", 4, &["write"], ONE, lists::ltrim),
    data!("linsert", 5, W, ONE, lists::linsert),
    data!("lpos", -3, RO, ONE, lists::lpos),
    data!("lmove", 5, W, TWO, lists::lmove),
    data!("rpoplpush", 3, W, TWO, lists::rpoplpush),
    data!(
        "lmpop",
        -4,
        &["write", "movablekeys"],
        COUNTED,
        lists::lmpop
    ),
    // GEO
    data!("geoadd", -5, W, ONE, geo::geoadd),
    data!("geopos", -2, RO, ONE, geo::geopos),
    data!("geodist", -4, RO, ONE, geo::geodist),
    data!("geohash", -2, RO, ONE, geo::geohash),
    data!("geosearch", -7, RO, ONE, geo::geosearch),
    data!("geosearchstore", -8, W, TWO, geo::geosearchstore),
    data!("georadius", -6, WMOV, KeySpec::RadiusStore, geo::georadius),
    data!("georadius_ro", -6, RO, ONE, geo::georadius_ro),
    data!(
        "georadiusbymember",
        -5,
        WMOV,
        KeySpec::RadiusStore,
        geo::georadiusbymember
    ),
    data!(
        "georadiusbymember_ro",
        -5,
        RO,
        ONE,
        geo::georadiusbymember_ro
    ),
    // HyperLogLog
    data!("pfadd", -2, WDF, ONE, hll::pfadd),
    data!("pfcount", -2, RO, ALL_ARGS, hll::pfcount),
    data!("pfmerge", -2, W, ALL_ARGS, hll::pfmerge),
    // blocking pops
    data!("blpop", -3, BLOCKS, UNTIL_LAST, blocking::blpop),
    data!("brpop", -3, BLOCKS, UNTIL_LAST, blocking::brpop),
    data!("blmove", 6, BLOCKS_DENY, TWO, blocking::blmove),
    data!("brpoplpush", 4, BLOCKS_DENY, TWO, blocking::brpoplpush),
    data!(
        "blmpop",
        -5,
        &["write", "blocking", "movablekeys"],
        KeySpec::Counted(2),
        blocking::blmpop
    ),
    data!("bzpopmin", -3, BLOCKS_FAST, UNTIL_LAST, blocking::bzpopmin),
    data!("bzpopmax", -3, BLOCKS_FAST, UNTIL_LAST, blocking::bzpopmax),
    data!(
        "bzmpop",
        -5,
        &["write", "blocking", "movablekeys"],
        KeySpec::Counted(2),
        blocking::bzmpop
    ),
    // sets
    data!("sadd", -3, WDF, ONE, sets::sadd),
    data!("srem", -3, WF, ONE, sets::srem),
    data!("smembers", 2, RO, ONE, sets::smembers),
    data!("sismember", 3, R, ONE, sets::sismember),
    data!("smismember", -3, R, ONE, sets::smismember),
    data!("scard", 2, R, ONE, sets::scard),
    data!("spop", -2, WF, ONE, sets::spop),
    data!("srandmember", -2, RO, ONE, sets::srandmember),
    data!("smove", 4, WF, TWO, sets::smove),
    data!("sinter", -2, RO, ALL_ARGS, sets::sinter),
    data!(
        "sintercard",
        -3,
        &["readonly", "movablekeys"],
        COUNTED,
        sets::sintercard
    ),
    data!("sinterstore", -3, W, ALL_ARGS, sets::sinterstore),
    data!("sunion", -2, RO, ALL_ARGS, sets::sunion),
    data!("sunionstore", -3, W, ALL_ARGS, sets::sunionstore),
    data!("sdiff", -2, RO, ALL_ARGS, sets::sdiff),
    data!("sdiffstore", -3, W, ALL_ARGS, sets::sdiffstore),
    data!("sscan", -3, RO, ONE, sets::sscan),
    // sorted sets
    data!("zadd", -4, WDF, ONE, zsets::zadd),
    data!("zincrby", 4, WDF, ONE, zsets::zincrby),
    data!("zrem", -3, WF, ONE, zsets::zrem),
    data!("zscore", 3, R, ONE, zsets::zscore),
    data!("zmscore", -3, R, ONE, zsets::zmscore),
    data!("zcard", 2, R, ONE, zsets::zcard),
    data!("zcount", 4, R, ONE, zsets::zcount),
    data!("zlexcount", 4, R, ONE, zsets::zlexcount),
    data!("zrange", -4, RO, ONE, zsets::zrange),
    data!("zrangestore", -5, W, TWO, zsets::zrangestore),
    data!("zrevrange", -4, RO, ONE, zsets::zrevrange),
    data!("zrangebyscore", -4, RO, ONE, zsets::zrangebyscore),
    data!("zrevrangebyscore", -4, RO, ONE, zsets::zrevrangebyscore),
    data!("zrangebylex", -4, RO, ONE, zsets::zrangebylex),
    data!("zrevrangebylex", -4, RO, ONE, zsets::zrevrangebylex),
    data!("zrank", 3, R, ONE, zsets::zrank),
    data!("zrevrank", 3, R, ONE, zsets::zrevrank),
    data!(
        "zremrangebyrank",
        4,
        &["write"],
        ONE,
        zsets::zremrangebyrank
    ),
    data!(
        "zremrangebyscore",
        4,
        &["write"],
        ONE,
        zsets::zremrangebyscore
    ),
    data!("zremrangebylex", 4, &["write"], ONE, zsets::zremrangebylex),
    data!("zpopmin", -2, WF, ONE, zsets::zpopmin),
    data!("zpopmax", -2, WF, ONE, zsets::zpopmax),
    data!(
        "zmpop",
        -4,
        &["write", "movablekeys"],
        COUNTED,
        zsets::zmpop
    ),
    data!("zrandmember", -2, RO, ONE, zsets::zrandmember),
    data!("zunion", -3, RMOV, COUNTED, zsets::zunion),
    data!(
        "zunionstore",
        -4,
        WMOV,
        KeySpec::DestCounted,
        zsets::zunionstore
    ),
    data!("zinter", -3, RMOV, COUNTED, zsets::zinter),
    data!(
        "zinterstore",
        -4,
        WMOV,
        KeySpec::DestCounted,
        zsets::zinterstore
    ),
    data!("zintercard", -3, RMOV, COUNTED, zsets::zintercard),
    data!("zdiff", -3, RMOV, COUNTED, zsets::zdiff),
    data!(
        "zdiffstore",
        -4,
        WMOV,
        KeySpec::DestCounted,
        zsets::zdiffstore
    ),
    data!("zscan", -3, RO, ONE, zsets::zscan),
    // keys
    data!("del", -2, &["write"], ALL_ARGS, keys::del),
    data!("unlink", -2, WF, ALL_ARGS, keys::del),
    data!("exists", -2, R, ALL_ARGS, keys::exists),
    data!("touch", -2, R, ALL_ARGS, keys::exists),
    data!("type", 2, R, ONE, keys::type_),
    data!("expire", -3, WF, ONE, keys::expire),
    data!("pexpire", -3, WF, ONE, keys::pexpire),
    data!("expireat", -3, WF, ONE, keys::expireat),
    data!("pexpireat", -3, WF, ONE, keys::pexpireat),
    data!("ttl", 2, R, ONE, keys::ttl),
    data!("pttl", 2, R, ONE, keys::pttl),
    data!("expiretime", 2, R, ONE, keys::expiretime),
    data!("pexpiretime", 2, R, ONE, keys::pexpiretime),
    data!("persist", 2, WF, ONE, keys::persist),
    data!("rename", 3, &["write"], TWO, keys::rename),
    data!("renamenx", 3, WF, TWO, keys::renamenx),
    data!("copy", -3, W, TWO, keys::copy),
    data!("move", 3, WF, ONE, keys::move_),
    data!("scan", -2, RO, READS_EVERY, keys::scan),
    data!("keys", 2, RO, READS_EVERY, keys::keys),
    data!("randomkey", 1, RO, READS_EVERY, keys::randomkey),
    data!("dbsize", 1, R, READS_EVERY, keys::dbsize),
    data!("flushdb", -1, &["write"], WRITES_EVERY, keys::flushdb),
    data!("flushall", -1, &["write"], WRITES_EVERY, keys::flushall),
    data!("swapdb", 3, WF, WRITES_EVERY, keys::swapdb),
    data!(
        "sort",
        -2,
        &["write", "denyoom", "movablekeys"],
        KeySpec::Sort,
        sort::sort
    ),
    data!(
        "sort_ro",
        -2,
        &["readonly", "movablekeys"],
        KeySpec::Sort,
        sort::sort_ro
    ),
    // connection
    ctl!("ping", -1, F, connection::ping),
    ctl!("echo", 2, LSF, connection::echo),
    ctl!("quit", -1, NOAUTH, connection::quit),
    ctl!("reset", 1, NOAUTH, connection::reset),
    ctl!("hello", -1, NOAUTH, connection::hello),
    ctl!("auth", -2, NOAUTH, connection::auth),
    ctl!("select", 2, LSF, connection::select),
    container!("client", -2, &["noscript"], connection::client),
    // server
    ctl!("info", -1, &["loading", "stale"], info::info),
    container!("config", -2, ADMIN, server::config),
    container!("command", -1, &["loading", "stale"], server::command),
    ctl!("time", 1, LSF, server::time),
    ctl!("lastsave", 1, LSF, server::lastsave),
    container!("memory", -2, RO, server::memory),
    container!("object", -2, RO, server::object),
    container!("slowlog", -2, ADMIN, server::slowlog),
    container!("function", -2, &["noscript"], functions::function),
    ctl!(
        "shutdown",
        -1,
        &[
            "admin",
            "noscript",
            "loading",
            "stale",
            "no_multi",
            "allow_busy"
        ],
        server::shutdown
    ),
    ctl!(
        "save",
        1,
        &["admin", "noscript", "no_async_loading", "no_multi"],
        server::save
    ),
    ctl!(
        "bgsave",
        -1,
        &["admin", "noscript", "no_async_loading"],
        server::bgsave
    ),
    ctl!("wait", 3, &["noscript"], server::wait),
    ctl!(
        "bgrewriteaof",
        1,
        &["admin", "noscript", "no_async_loading"],
        compact::bgrewriteaof
    ),
    container!("caskade", -2, &["admin", "noscript"], compact::caskade),
    ctl!(
        "monitor",
        1,
        &["admin", "noscript", "loading", "stale"],
        server::monitor
    ),
    // scripting
    script!("eval", SCRIPT, scripting::eval),
    script!("evalsha", SCRIPT, scripting::evalsha),
    script!("eval_ro", SCRIPT_RO, scripting::eval_ro),
    script!("evalsha_ro", SCRIPT_RO, scripting::evalsha_ro),
    script!("fcall", SCRIPT, scripting::fcall),
    script!("fcall_ro", SCRIPT_RO, scripting::fcall_ro),
    container!("script", -2, &["noscript"], scripting::script),
    // transactions
    ctl!("multi", 1, TX, transaction::multi),
    Spec {
        name: "exec",
        arity: 1,
        flags: &["noscript", "loading", "stale", "skip_slowlog"],
        keys: KeySpec::None,
        through: false,
        write: false,
        subcommands: false,
        run: Run::Exec,
    },
    ctl!("discard", 1, TX, transaction::discard),
    ctl!("watch", -2, TX, transaction::watch),
    ctl!("unwatch", 1, TX, transaction::unwatch),
];

/// Looks a command up by name, case-insensitively.
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    lookup_indexed(name).map(|(_, s)| s)
}

/// [`lookup`] with the command's position in [`COMMANDS`]. Every command makes this
/// lookup, so it is one hash of the name and (almost always) one comparison.
fn lookup_indexed(name: &[u8]) -> Option<(usize, &'static Spec)> {
    let table = &*BY_NAME;
    let mut at = name_hash(name) as usize & (BY_NAME_SLOTS - 1);
    loop {
        let i = table[at];
        if i == NO_COMMAND {
            return None;
        }
        let spec = &COMMANDS[i as usize];
        if spec.name.len() == name.len() && spec.name.as_bytes().eq_ignore_ascii_case(name) {
            return Some((i as usize, spec));
        }
        at = (at + 1) & (BY_NAME_SLOTS - 1);
    }
}

/// Slots of [`BY_NAME`]: a power of two, at least four times the commands, so a probe
/// rarely goes past its first slot.
const BY_NAME_SLOTS: usize = 2048;
const NO_COMMAND: u16 = u16::MAX;

/// FNV-1a over the name's lowercase bytes: any spelling of a name hashes alike.
fn name_hash(name: &[u8]) -> u64 {
    name.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// [`COMMANDS`]' positions in an open-addressing table keyed by [`name_hash`].
static BY_NAME: std::sync::LazyLock<Box<[u16]>> = std::sync::LazyLock::new(|| {
    assert!(COMMANDS.len() * 4 <= BY_NAME_SLOTS && COMMANDS.len() < NO_COMMAND as usize);
    let mut table = vec![NO_COMMAND; BY_NAME_SLOTS].into_boxed_slice();
    for (i, spec) in COMMANDS.iter().enumerate() {
        let mut at = name_hash(spec.name.as_bytes()) as usize & (BY_NAME_SLOTS - 1);
        while table[at] != NO_COMMAND {
            at = (at + 1) & (BY_NAME_SLOTS - 1);
        }
        table[at] = i as u16;
    }
    table
});

/// Shows a client's command to the MONITOR clients, after it ran as Redis 7 does;
/// administrative commands (MONITOR among them) are not shown.
fn show_to_monitors(shared: &Shared, session: &Session, spec: &Spec, argv: &[Bytes]) {
    if shared.monitors.active() && !spec.flags.contains(&"admin") {
        let addr = session.client.info.lock().addr.clone();
        shared.monitors.feed(session.db, &addr, argv);
    }
}

/// Runs one command for a session: checks, parse, read-through prefetch (the one
/// place a command waits), then the unit, and the command's counters.
#[cfg(test)]
pub async fn run(
    shared: &Arc<Shared>,
    session: &mut Session,
    argv: &[Bytes],
    waits_for_fsync: bool,
) -> Reply {
    let mut io = crate::transport::Tokio::with_reader(tokio::io::empty(), None);
    let mut ahead = ReadAhead::default();
    run_on(shared, session, argv, waits_for_fsync, &mut io, &mut ahead).await
}

/// What a connection that reads ahead keeps across one pipelined batch: records read
/// for its commands and not used yet, and the commands still to run after this one.
#[derive(Default)]
pub struct ReadAhead<'b> {
    /// Read, checked when used, used at most once.
    pub lent: Vec<caskade_engine::RecordRead>,
    /// The rest of the batch, probed for records when one of its commands meets a
    /// cold one (so the batch's reads go to the device side by side).
    pub upcoming: &'b [Vec<Bytes>],
}

/// [`run`] for a connection over `io`. Where `io` reads ahead (io_uring), a read-only
/// command runs first without waiting for the device; if it met records that were
/// neither in memory nor in the page cache, its answer is thrown away, `io` reads
/// them (and those the rest of the batch will need), and it runs again with them at
/// hand.
pub async fn run_on<T: crate::transport::Transport>(
    shared: &Arc<Shared>,
    session: &mut Session,
    argv: &[Bytes],
    waits_for_fsync: bool,
    io: &mut T,
    ahead: &mut ReadAhead<'_>,
) -> Reply {
    let Some(name) = argv.first() else {
        return Reply::OK;
    };
    let Some((index, spec)) = lookup_indexed(name) else {
        transaction::flag(session);
        let reply = unknown_command(name, &argv[1..]);
        if let Reply::Error(e) = &reply {
            shared.cmdstats.rejected(None, e);
        }
        return reply;
    };
    // CLIENT LIST's cmd= field: an atomic store, no lock and no allocation per command
    // (a container's subcommand, such as CLIENT LIST's own `client|list`, is looked up
    // among its few).
    let sub = docs::subcommand_of(spec, argv);
    session.client.last_cmd.store(
        (index as u32 + 1) | sub << 16,
        std::sync::atomic::Ordering::Relaxed,
    );
    // Its figures' slot: a subcommand is counted apart (`cmdstat_client|list`).
    let slot = docs::stat_slot(index, sub);
    if !session.authenticated && !spec.flags.contains(&"no_auth") {
        let e = CmdError::Coded("NOAUTH Authentication required.".into());
        return rejected(shared, slot, transaction::refused(shared, session, spec, e));
    }
    if let Err(e) = spec.check_args(argv) {
        return rejected(shared, slot, transaction::refused(shared, session, spec, e));
    }
    if shared.scripts.is_busy() && !allowed_while_busy(spec, argv) {
        transaction::flag(session);
        return rejected(shared, slot, busy());
    }
    if session.multi.is_some() && !transaction::runs_at_once(spec.name) {
        return transaction::queue(session, index, argv);
    }
    // Timed by the TSC where it is invariant: cheaper than the two clock_gettime calls
    // it replaces (calibrated at start, in `main`).
    let started = quanta::Instant::now();
    let rest = &argv[1..];
    let mut args = Args::new(spec.name, rest).spelt_as(&argv[0]);
    let reply = match spec.run {
        Run::Control(f) => f(shared, session, &mut args).unwrap_or_else(Reply::from),
        Run::Exec => transaction::exec(shared, session, waits_for_fsync).await,
        Run::Data(parse) => match parse(&mut args) {
            Err(e) => e.into(),
            Ok(cmd) => {
                session.wrote |= spec.is_write();
                let db = session.db;
                let blocks = match &cmd {
                    DataCmd::Block(b) => Some((b.timeout, b.keys())),
                    _ => None,
                };
                let mut reads = match &shared.read_through {
                    Some(rt) if spec.through && rt.routes_any(spec.key_args(rest)) => {
                        // Boxed: the fetch's state stays off the common path's future.
                        Some(Box::pin(rt.prefetch(&shared.store, db, spec.key_args(rest))).await)
                    }
                    _ => None,
                };
                let reply = if io.reads_ahead() && !spec.is_write() {
                    let run = Planned {
                        spec,
                        name: &argv[0],
                        rest,
                        db,
                    };
                    read_ahead(shared, run, cmd, reads.as_mut(), io, ahead).await
                } else {
                    let apply = || execute(shared, spec, rest, db, cmd, reads.as_mut());
                    // Under fsync always a write waits for the disk: tell the runtime,
                    // so other connections keep their worker threads meanwhile.
                    if waits_for_fsync {
                        blocking(apply)
                    } else {
                        apply()
                    }
                };
                if let Some(r) = reads {
                    r.finish(&shared.store, db, !matches!(reply, Reply::Error(_)));
                }
                match blocks {
                    // Nothing to pop: the connection waits (and answers) instead.
                    Some((timeout, keys)) if found_nothing(&reply) => {
                        session.block = Some(Block {
                            argv: argv.to_vec(),
                            db,
                            keys,
                            timeout,
                        });
                        Reply::Silent
                    }
                    _ => reply,
                }
            }
        },
    };
    show_to_monitors(shared, session, spec, argv);
    let nanos = started.elapsed().as_nanos() as u64;
    shared.cmdstats.ran(slot, nanos, error_text(&reply));
    let micros = nanos / 1000;
    if micros >= crate::state::SLOWLOG_SLOWER_THAN_US {
        record_slow(shared, session, argv, micros);
    }
    reply
}

/// Runs a blocked command again (a key it waits for was written): its reply, which
/// says it found nothing again when [`found_nothing`].
pub fn retry(
    shared: &Shared,
    session: &mut Session,
    block: &Block,
    waits_for_fsync: bool,
) -> Reply {
    let Some(spec) = block.argv.first().and_then(|n| lookup(n)) else {
        return Reply::NilArray;
    };
    let Run::Data(parse) = spec.run else {
        return Reply::NilArray;
    };
    let rest = &block.argv[1..];
    let cmd = match parse(&mut Args::new(spec.name, rest).spelt_as(&block.argv[0])) {
        Ok(cmd) => cmd,
        Err(e) => return e.into(),
    };
    session.wrote |= spec.is_write();
    let apply = || execute(shared, spec, rest, block.db, cmd, None);
    if waits_for_fsync {
        blocking(apply)
    } else {
        apply()
    }
}

/// How many times a read-only command runs without waiting before it is run with
/// whatever reads it still needs done in place (a sorted set walking its chunks meets
/// one cold chunk per run).
const READ_AHEAD_RUNS: usize = 3;

/// A parsed command's place in the table, its arguments and database.
#[derive(Clone, Copy)]
struct Planned<'a> {
    spec: &'static Spec,
    name: &'a Bytes,
    rest: &'a [Bytes],
    db: u8,
}

impl<'a> Planned<'a> {
    /// Parses the arguments again (the parse is the argument check, and cheap).
    fn parse(&self) -> Result<DataCmd<'a>, Reply> {
        let Run::Data(parse) = self.spec.run else {
            return Err(Reply::err("ERR not a data command"));
        };
        parse(&mut Args::new(self.spec.name, self.rest).spelt_as(self.name)).map_err(Reply::from)
    }
}

/// The most commands after a cold one probed for the records they will need.
const PROBE_AHEAD: usize = 64;

/// Runs read-only `cmd` without waiting for the device, reading what it deferred
/// through `io` and running it again (see [`run_on`]).
async fn read_ahead<T: crate::transport::Transport>(
    shared: &Arc<Shared>,
    run: Planned<'_>,
    cmd: DataCmd<'_>,
    mut reads: Option<&mut crate::origin::Reads>,
    io: &mut T,
    ahead: &mut ReadAhead<'_>,
) -> Reply {
    let engine = &shared.store.engine;
    let mut cmd = Some(cmd);
    let mut attempt = 0;
    loop {
        let c = match cmd.take() {
            Some(c) => c,
            None => match run.parse() {
                Ok(c) => c,
                Err(e) => return e,
            },
        };
        // The last run reads what it still needs in place, so it defers nothing.
        let nowait = attempt < READ_AHEAD_RUNS;
        let (reply, mut deferred) = engine.run_ahead(&mut ahead.lent, nowait, || {
            execute(shared, run.spec, run.rest, run.db, c, reads.as_deref_mut())
        });
        if deferred.is_empty() {
            return reply;
        }
        if attempt == 0 {
            deferred.extend(probe(shared, run.db, std::mem::take(&mut ahead.upcoming)));
        }
        ahead.lent.extend(io.read_records(deferred).await);
        attempt += 1;
    }
}

/// The records that the read-only data commands naming keys at the head of `upcoming`
/// (up to the first other command) will need and would wait for: each runs without
/// waiting, its answer thrown away. A guess (a SELECT or a write may come between), so a record
/// read for nothing is simply not used.
fn probe(shared: &Arc<Shared>, db: u8, upcoming: &[Vec<Bytes>]) -> Vec<caskade_engine::RecordRead> {
    let engine = &shared.store.engine;
    let mut found = Vec::new();
    let mut none = Vec::new();
    for argv in upcoming.iter().take(PROBE_AHEAD) {
        let Some((name, rest)) = argv.split_first() else {
            break;
        };
        let Some((_, spec)) = lookup_indexed(name) else {
            break;
        };
        // Keyless reads (KEYS, SCAN, DBSIZE ...) would run twice for no record.
        if spec.is_write() || spec.check_args(argv).is_err() || spec.key_args(rest).next().is_none()
        {
            break;
        }
        let routed = shared
            .read_through
            .as_ref()
            .is_some_and(|rt| spec.through && rt.routes_any(spec.key_args(rest)));
        if routed {
            break;
        }
        let run = Planned {
            spec,
            name,
            rest,
            db,
        };
        let Ok(cmd) = run.parse() else {
            break;
        };
        let (_, deferred) = engine.run_ahead(&mut none, true, || {
            execute(shared, spec, rest, db, cmd, None)
        });
        found.extend(deferred);
    }
    found
}

/// Runs `f`, which may hold this thread for long (a script, a write waiting for the
/// disk), telling a multi-threaded runtime first so the other connections this worker
/// had queued move to another thread meanwhile.
pub(crate) fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// A refusal before the command ran, counted for INFO (in figures' slot `slot`).
fn rejected(shared: &Shared, slot: usize, reply: Reply) -> Reply {
    if let Some(e) = error_text(&reply) {
        shared.cmdstats.rejected(Some(slot), e);
    }
    reply
}

/// The text of an error reply.
pub(crate) fn error_text(reply: &Reply) -> Option<&str> {
    match reply {
        Reply::Error(e) => Some(e),
        _ => None,
    }
}

/// What other clients may run while a script is past its busy timeout.
fn allowed_while_busy(spec: &Spec, argv: &[Bytes]) -> bool {
    match spec.name {
        "script" | "function" => argv.get(1).is_some_and(|s| args::is(s, "KILL")),
        "shutdown" | "multi" | "discard" | "watch" | "unwatch" | "reset" | "quit" => true,
        _ => false,
    }
}

/// Runs a parsed data command as its own unit: holding its keys' stripes, applied to
/// database `db`.
pub fn execute(
    shared: &Shared,
    spec: &Spec,
    rest: &[Bytes],
    db: u8,
    cmd: DataCmd<'_>,
    reads: Option<&mut Reads>,
) -> Reply {
    let Some(_unit) = spec
        .span(rest, false)
        .lock_unless(&shared.store.locks, || shared.scripts.is_busy())
    else {
        return busy();
    };
    apply_data(shared, db, cmd, reads)
}

/// Redis' answer while a script is past its busy timeout.
pub(crate) fn busy() -> Reply {
    CmdError::Coded(
        "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
            .into(),
    )
    .into()
}

/// Applies a parsed data command to database `db`; the caller's unit holds its keys'
/// stripes (its own, or a transaction's).
pub fn apply_data(shared: &Shared, db: u8, cmd: DataCmd<'_>, reads: Option<&mut Reads>) -> Reply {
    let events = shared
        .read_through
        .as_deref()
        .map(|rt| rt as &dyn KeyspaceEvents);
    let mut ks = Keyspace::new(&shared.store, db)
        .with_reads(reads)
        .with_events(events)
        .with_watches(Some(&shared.watches))
        .with_blocked(Some(&shared.blocked));
    cmd.apply(&mut ks).unwrap_or_else(Reply::from)
}

fn record_slow(shared: &Shared, session: &Session, args: &[Bytes], micros: u64) {
    let log = &shared.slowlog;
    let info = session.client.info.lock();
    let entry = crate::state::SlowEntry {
        id: log
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        at: shared.store.engine.now_ms() / 1000,
        micros,
        args: args
            .iter()
            .take(32)
            .map(|a| a.slice(..a.len().min(128)))
            .collect(),
        client: (info.addr.clone(), info.name.clone()),
    };
    let mut entries = log.entries.lock();
    entries.push_front(entry);
    entries.truncate(crate::state::SLOWLOG_MAX);
}

fn unknown_command(name: &[u8], rest: &[Bytes]) -> Reply {
    let mut msg = format!(
        "unknown command '{}', with args beginning with: ",
        String::from_utf8_lossy(&name[..name.len().min(128)])
    );
    for a in rest.iter().take(16) {
        msg.push_str(&format!(
            "'{}' ",
            String::from_utf8_lossy(&a[..a.len().min(128)])
        ));
    }
    CmdError::err(msg).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::testing::shared;

    async fn call(sh: &Arc<Shared>, sess: &mut Session, argv: &[&str]) -> Reply {
        run(sh, sess, &testing::argv(argv), false).await
    }

    #[tokio::test]
    async fn dispatch_checks_auth_arity_and_names() {
        let (_d, sh) = shared();
        sh.config.lock().requirepass = Some("pw".into());
        let mut sess = Session::new(&sh, sh.register("t".into()));
        assert_eq!(
            call(&sh, &mut sess, &["get", "k"]).await,
            Reply::err("NOAUTH Authentication required.")
        );
        assert_eq!(call(&sh, &mut sess, &["auth", "pw"]).await, Reply::OK);
        assert_eq!(
            call(&sh, &mut sess, &["get"]).await,
            Reply::err("ERR wrong number of arguments for 'get' command")
        );
        assert_eq!(
            call(&sh, &mut sess, &["bogus", "a", "b"]).await,
            Reply::err("ERR unknown command 'bogus', with args beginning with: 'a' 'b' ")
        );
        assert_eq!(call(&sh, &mut sess, &["SeT", "k", "v"]).await, Reply::OK);
        assert!(sess.wrote, "a write asks for the buffer to be flushed");
        assert_eq!(call(&sh, &mut sess, &["select", "2"]).await, Reply::OK);
        assert_eq!(call(&sh, &mut sess, &["get", "k"]).await, Reply::Nil);
        assert!(sh.cmdstats.processed() >= 4);
    }

    #[test]
    fn every_command_is_found_and_key_positions_fit_the_arity() {
        for spec in COMMANDS {
            assert!(std::ptr::eq(
                lookup(spec.name.to_ascii_uppercase().as_bytes()).expect("found"),
                spec
            ));
            if let KeySpec::Range(first, _, _) = spec.keys {
                assert!(
                    spec.arity.abs() > first,
                    "{}: the first key is inside the arity",
                    spec.name
                );
            }
            assert!(spec.through == matches!(spec.name, "get" | "mget" | "getex"));
            assert_eq!(spec.write, spec.flags.contains(&"write"), "{}", spec.name);
        }
        assert!(std::ptr::eq(
            lookup(b"GeT").expect("found"),
            lookup(b"get").expect("found")
        ));
        assert!(lookup(b"getx").is_none() && lookup(b"").is_none() && lookup(b"ge").is_none());
        assert!(lookup(&[b'g'; 100]).is_none());
    }
}

#[cfg(test)]
pub mod testing {
    //! Runs data commands against a store as a connection would, without one.
    use super::*;
    use crate::store::Store;

    /// Arguments as a connection hands them over.
    pub fn argv(items: &[&str]) -> Vec<Bytes> {
        items
            .iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    /// Runs the connection or server command `argv` for `sess`: lookup, arity, run.
    pub fn control(sh: &Shared, sess: &mut Session, argv: &[&str]) -> Reply {
        let argv = self::argv(argv);
        let spec = lookup(&argv[0]).expect("a known command");
        if let Err(e) = spec.check_args(&argv) {
            return e.into();
        }
        let Run::Control(f) = spec.run else {
            panic!("{} is not a connection or server command", spec.name)
        };
        f(sh, sess, &mut Args::new(spec.name, &argv[1..])).unwrap_or_else(Reply::from)
    }

    /// A reply's elements as text, each a bulk string (members, fields, ...).
    pub fn texts(items: Vec<Reply>) -> Vec<String> {
        items
            .into_iter()
            .map(|m| match m {
                Reply::Bulk(b) => String::from_utf8(b.to_vec()).expect("utf-8"),
                other => panic!("a bulk string: {other:?}"),
            })
            .collect()
    }

    /// A fresh session of a registered client.
    pub fn session(sh: &Shared) -> Session {
        Session::new(sh, sh.register("test".into()))
    }

    /// Runs `argv` for `sess` exactly as a connection does (queueing inside MULTI,
    /// EXEC, every check).
    pub async fn send(sh: &Arc<Shared>, sess: &mut Session, argv: &[&str]) -> Reply {
        super::run(sh, sess, &self::argv(argv), false).await
    }

    /// [`control`] with the command's name apart from its arguments.
    pub fn call(sh: &Shared, sess: &mut Session, name: &str, args: &[&str]) -> Reply {
        let argv: Vec<&str> = std::iter::once(name).chain(args.iter().copied()).collect();
        control(sh, sess, &argv)
    }

    /// INFO, every section, from a session of its own.
    pub fn info(sh: &Shared) -> Reply {
        let mut sess = Session::new(sh, sh.register("info".into()));
        control(sh, &mut sess, &["info"])
    }

    /// Runs `argv` in database 0.
    pub fn run(store: &Store, argv: &[&str]) -> Reply {
        run_at(store, 0, argv)
    }

    /// Runs `argv` in database `db`: lookup, arity, parse, unit, apply.
    pub fn run_at(store: &Store, db: u8, argv: &[&str]) -> Reply {
        let argv = self::argv(argv);
        let spec = lookup(&argv[0]).expect("a known command");
        if let Err(e) = spec.check_arity(argv.len()) {
            return e.into();
        }
        let Run::Data(parse) = spec.run else {
            panic!("{} is not a data command", spec.name)
        };
        let rest = &argv[1..];
        match parse(&mut Args::new(spec.name, rest)) {
            Err(e) => e.into(),
            Ok(cmd) => {
                let _unit = spec.span(rest, false).lock_unless(&store.locks, || false);
                let mut ks = Keyspace::new(store, db);
                cmd.apply(&mut ks).unwrap_or_else(Reply::from)
            }
        }
    }
}
