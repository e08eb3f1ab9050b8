//! Scripting commands: EVAL, EVALSHA, their `_RO` forms and SCRIPT. A script runs as
//! one unit holding the stripes of the keys it declares, so scripts that keep to their
//! keys do not stop other clients. One that reaches an undeclared key before it has
//! written is run again holding every stripe (and its sha is remembered, so later runs
//! start that way); after a write it takes that key's stripe too, waiting at most
//! [`UNDECLARED_WAIT`]. `scripting.strict_keys` makes such a key an error instead.

use super::args::Args;
use super::error::{CmdError, CmdResult};
use super::{KeySpec, Run, Session, apply_data, lookup_indexed};
use crate::protocol::reply::Reply;
use crate::script::vm::{self, Env};
use crate::script::{Habits, Kill, Script};
use crate::state::Shared;
use crate::store::{KeyLocks, StripeGuard};
use crate::unit::Holding;
use bytes::Bytes;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How long a script that already wrote waits for the stripe of an undeclared key.
const UNDECLARED_WAIT: Duration = Duration::from_secs(2);

/// EVAL script numkeys [key ...] [arg ...]
pub fn eval(s: &Shared, sess: &mut Session, a: &mut Args<'_>) -> CmdResult {
    run(s, sess, a, false, false)
}

/// EVALSHA sha1 numkeys [key ...] [arg ...]
pub fn evalsha(s: &Shared, sess: &mut Session, a: &mut Args<'_>) -> CmdResult {
    run(s, sess, a, true, false)
}

/// EVAL_RO: EVAL refusing write commands.
pub fn eval_ro(s: &Shared, sess: &mut Session, a: &mut Args<'_>) -> CmdResult {
    run(s, sess, a, false, true)
}

/// EVALSHA_RO: EVALSHA refusing write commands.
pub fn evalsha_ro(s: &Shared, sess: &mut Session, a: &mut Args<'_>) -> CmdResult {
    run(s, sess, a, true, true)
}

/// What a script's commands may touch without asking.
enum Held {
    /// Every stripe (an exclusive run, or a transaction holding them all).
    All,
    /// These stripes (the declared keys', then undeclared ones taken on the way).
    Stripes(HashSet<usize>),
}

/// One run's state, shared by the script's commands.
struct Call<'s> {
    shared: &'s Shared,
    declared: HashSet<Bytes>,
    held: Held,
    extra: Vec<StripeGuard<'s>>,
    read_only: bool,
    strict: bool,
    /// Restarting holding every stripe is still possible (no write yet, not inside a
    /// transaction that holds the stripes).
    may_restart: bool,
    /// Set when the script reached an undeclared key and must run again exclusively:
    /// from then on, its commands are refused (so it cannot write).
    restart: bool,
    wrote: bool,
}

impl Call<'_> {
    fn check_key(&mut self, key: &Bytes) -> Result<(), Reply> {
        if matches!(self.held, Held::All) || self.declared.contains(key) {
            return Ok(());
        }
        let stripe = KeyLocks::stripe(key);
        if let Held::Stripes(h) = &self.held
            && h.contains(&stripe)
        {
            return Ok(());
        }
        self.undeclared(Some(key), Some(stripe))
    }

    fn undeclared(&mut self, key: Option<&Bytes>, stripe: Option<usize>) -> Result<(), Reply> {
        let what = key.map_or("every key".to_string(), |k| {
            format!("key '{}'", String::from_utf8_lossy(k))
        });
        if self.strict {
            return Err(Reply::err(format!(
                "ERR Script attempted to access {what}, not declared in KEYS (scripting.strict_keys)"
            )));
        }
        if self.may_restart && !self.wrote {
            self.restart = true;
            return Err(Reply::err("ERR script restarted holding every key"));
        }
        let Some(stripe) = stripe else {
            return Err(Reply::err(format!(
                "ERR Script attempted to access {what} after writing; declare its keys in KEYS"
            )));
        };
        match self
            .shared
            .store
            .locks
            .try_lock_stripe_for(stripe, UNDECLARED_WAIT)
        {
            Some(g) => {
                self.extra.push(g);
                if let Held::Stripes(h) = &mut self.held {
                    h.insert(stripe);
                }
                Ok(())
            }
            None => Err(Reply::err(format!(
                "ERR Script could not lock undeclared {what} in time; declare it in KEYS"
            ))),
        }
    }
}

/// `numkeys` and the keys and arguments after it.
fn split_keys<'a>(
    a: &mut Args<'a>,
    not_integer: &'static str,
) -> Result<(&'a [Bytes], &'a [Bytes]), CmdError> {
    let numkeys = super::args::parse_i64(a.next_arg()?).ok_or(CmdError::err(not_integer))?;
    if numkeys < 0 {
        return Err(CmdError::err("Number of keys can't be negative"));
    }
    let rest = a.take_rest();
    if numkeys as usize > rest.len() {
        return Err(CmdError::err(
            "Number of keys can't be greater than number of args",
        ));
    }
    Ok(rest.split_at(numkeys as usize))
}

fn run(s: &Shared, sess: &mut Session, a: &mut Args<'_>, by_sha: bool, ro: bool) -> CmdResult {
    let first = a.next_arg()?;
    let (keys, argv) = split_keys(a, "value is not an integer or out of range")?;
    let script: Arc<Script> = if by_sha {
        s.scripts.get(first).ok_or_else(|| {
            CmdError::Coded("NOSCRIPT No matching script. Please use EVAL.".into())
        })?
    } else {
        s.scripts
            .load(first)
            .map_err(|e| CmdError::Coded(e.into()))?
    };
    let read_only = ro || script.flags.no_writes;
    Ok(run_unit(
        s,
        sess,
        keys,
        read_only,
        &script.habits,
        &mut |env| vm::eval(&script, keys, argv, env),
    ))
}

/// FCALL function numkeys [key ...] [arg ...]
pub fn fcall(s: &Shared, sess: &mut Session, a: &mut Args<'_>) -> CmdResult {
    call_function(s, sess, a, false)
}

/// FCALL_RO: FCALL of a function flagged `no-writes`.
pub fn fcall_ro(s: &Shared, sess: &mut Session, a: &mut Args<'_>) -> CmdResult {
    call_function(s, sess, a, true)
}

fn call_function(s: &Shared, sess: &mut Session, a: &mut Args<'_>, ro: bool) -> CmdResult {
    let name = String::from_utf8_lossy(a.next_arg()?).into_owned();
    let (keys, argv) = split_keys(a, "Bad number of keys provided")?;
    let Some((_, meta)) = s.functions.find(&name) else {
        return Err(CmdError::err("Function not found"));
    };
    if ro && !meta.no_writes() {
        return Err(CmdError::err(
            "Can not execute a script with write flag using *_ro command.",
        ));
    }
    let habits = s.scripts.function_habits(&name);
    Ok(run_unit(
        s,
        sess,
        keys,
        ro || meta.no_writes(),
        &habits,
        &mut |env| vm::fcall(&s.functions, &name, keys, argv, env),
    ))
}

/// Runs a script or function as one unit over its declared `keys`: locking, the
/// undeclared-key rule (a rerun holding every stripe, remembered in `habits`), the
/// busy watchdog, and the caller's database restored afterwards.
fn run_unit(
    s: &Shared,
    sess: &mut Session,
    keys: &[Bytes],
    read_only: bool,
    habits: &Habits,
    body: &mut dyn FnMut(Env<'_>) -> Reply,
) -> Reply {
    // A script not known to be quick runs telling the runtime it may block, so the
    // connections queued on this worker move to another thread meanwhile (a task in
    // tokio's LIFO slot would otherwise wait for the script to end); one whose last
    // run was quick skips that hand-off, which costs more than such a script.
    let mut run = || run_unit_here(s, sess, keys, read_only, habits, body);
    if habits.is_quick() {
        run()
    } else {
        super::blocking(run)
    }
}

/// A run shorter than this marks its script quick (the time its body ran, not the
/// time it waited for its keys: a quick script on a hot key stays quick).
const QUICK: Duration = Duration::from_millis(1);

/// [`run_unit`] on this thread.
fn run_unit_here(
    s: &Shared,
    sess: &mut Session,
    keys: &[Bytes],
    read_only: bool,
    habits: &Habits,
    body: &mut dyn FnMut(Env<'_>) -> Reply,
) -> Reply {
    let cfg = s.config.lock().scripting.clone();
    let caller_db = sess.db;
    let mut exclusive = habits.is_exclusive();
    loop {
        let in_unit = sess.holding.clone();
        let (_unit, held) = match &in_unit {
            Some(Holding::All) => (StripeGuard::none(), Held::All),
            Some(Holding::Stripes(h)) => (
                StripeGuard::none(),
                Held::Stripes(h.iter().copied().collect()),
            ),
            None => {
                let busy = || s.scripts.is_busy();
                let taken = if exclusive {
                    s.store.locks.lock_unless(None::<[&[u8]; 0]>, busy)
                } else {
                    s.store
                        .locks
                        .lock_unless(Some(keys.iter().map(|k| &k[..])), busy)
                };
                let Some(g) = taken else {
                    return super::busy();
                };
                let held = if exclusive {
                    Held::All
                } else {
                    Held::Stripes(keys.iter().map(|k| KeyLocks::stripe(k)).collect())
                };
                (g, held)
            }
        };
        let mut call = Call {
            shared: s,
            declared: keys.iter().cloned().collect(),
            held,
            extra: Vec::new(),
            read_only,
            strict: cfg.strict_keys,
            may_restart: in_unit.is_none() && !exclusive,
            restart: false,
            wrote: false,
        };
        let guard = s.scripts.start();
        let running = guard.running.clone();
        let mut dispatch = |args: &[Bytes]| -> Reply {
            if call.restart {
                return Reply::err("ERR script restarted holding every key");
            }
            let reply = script_command(&mut call, sess, args);
            if call.wrote {
                running.wrote.store(true, Ordering::Release);
            }
            reply
        };
        let started = std::time::Instant::now();
        let reply = body(Env {
            call: &mut dispatch,
            running: guard.running.clone(),
            scripts: s.scripts.clone(),
            busy_after: Duration::from_millis(cfg.busy_timeout),
            memory_limit: cfg.memory_limit_bytes as usize,
        });
        habits.note_duration(started.elapsed() < QUICK);
        drop(guard);
        // SELECT inside a script does not change the caller's database (Redis 7).
        sess.db = caller_db;
        if call.restart {
            habits.mark_exclusive();
            exclusive = true;
            continue;
        }
        return reply;
    }
}

/// One `redis.call` / `redis.pcall`: Redis' checks for commands from scripts, the
/// key check, then the command.
fn script_command(call: &mut Call<'_>, sess: &mut Session, argv: &[Bytes]) -> Reply {
    let Some((_, spec)) = argv.first().and_then(|n| lookup_indexed(n)) else {
        return Reply::err("ERR Unknown Redis command called from script");
    };
    match spec.check_args(argv) {
        Ok(()) => {}
        // A subcommand the command does not have is an unknown command, as in Redis.
        Err(CmdError::NoSuchSubcommand { .. }) => {
            return Reply::err("ERR Unknown Redis command called from script");
        }
        Err(_) => {
            return Reply::err("ERR Wrong number of args calling Redis command from script");
        }
    }
    if spec.flags.contains(&"noscript") {
        return Reply::err("ERR This Redis command is not allowed from script");
    }
    if spec.is_write() && call.read_only {
        return Reply::err("ERR Write commands are not allowed from read-only scripts.");
    }
    let rest = &argv[1..];
    if matches!(spec.keys, KeySpec::Every { .. }) {
        if !matches!(call.held, Held::All)
            && let Err(r) = call.undeclared(None, None)
        {
            return r;
        }
    } else {
        for key in spec.key_args(rest) {
            if let Err(r) = call.check_key(key) {
                return r;
            }
        }
    }
    if call.shared.monitors.active() {
        call.shared.monitors.feed(sess.db, "lua", argv);
    }
    let mut args = Args::new(spec.name, rest).spelt_as(&argv[0]);
    match spec.run {
        Run::Control(f) => f(call.shared, sess, &mut args).unwrap_or_else(Reply::from),
        Run::Data(parse) => match parse(&mut args) {
            Err(e) => e.into(),
            Ok(mut cmd) => {
                if spec.is_write() {
                    call.wrote = true;
                    sess.wrote = true;
                }
                cmd.scripted();
                apply_data(call.shared, sess.db, cmd, None)
            }
        },
        Run::Exec => Reply::err("ERR This Redis command is not allowed from script"),
    }
}

/// SCRIPT KILL and FUNCTION KILL: stops the running scripts that have not written.
pub fn kill(s: &Shared) -> CmdResult {
    match s.scripts.kill() {
        Kill::Killed => Ok(Reply::OK),
        Kill::NotBusy => Err(CmdError::Coded(
            "NOTBUSY No scripts in execution right now.".into(),
        )),
        Kill::Unkillable => Err(CmdError::Coded(
            "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.".into(),
        )),
    }
}

/// SCRIPT LOAD | EXISTS | FLUSH | KILL (HELP, and the subcommand and its arity, are
/// checked before this from `docs.txt`).
pub fn script(s: &Shared, _sess: &mut Session, a: &mut Args<'_>) -> CmdResult {
    let sub = a.next_arg()?;
    let sub_text = String::from_utf8_lossy(sub).to_ascii_uppercase();
    match sub_text.as_str() {
        "LOAD" => {
            let body = a.next_arg()?;
            let script = s
                .scripts
                .load(body)
                .map_err(|e| CmdError::Coded(e.into()))?;
            Ok(Reply::text(&script.sha))
        }
        "EXISTS" => Ok(Reply::Array(
            a.take_rest()
                .iter()
                .map(|sha| Reply::Int(i64::from(s.scripts.get(sha).is_some())))
                .collect(),
        )),
        "FLUSH" => {
            if a.remaining() > 1
                || a.next_opt().is_some_and(|mode| {
                    !super::args::is(mode, "ASYNC") && !super::args::is(mode, "SYNC")
                })
            {
                return Err(CmdError::err("SCRIPT FLUSH only support SYNC|ASYNC option"));
            }
            s.scripts.flush();
            Ok(Reply::OK)
        }
        "KILL" => kill(s),
        _ => Err(CmdError::err(format!(
            "unknown subcommand '{}'. Try SCRIPT HELP.",
            String::from_utf8_lossy(sub)
        ))),
    }
}
