//! Transactions: MULTI queues a connection's commands, EXEC runs them as one unit
//! (holding the stripes of every key they and the watched keys name, so no other
//! client sees a state between them), DISCARD drops them; WATCH makes EXEC answer nil
//! if a watched key changed since.

use super::args::Args;
use super::error::{CmdError, CmdResult};
use super::{COMMANDS, Run, Session, Spec, apply_data};
use crate::keyspace::Keyspace;
use crate::protocol::reply::Reply;
use crate::state::Shared;
use crate::store::KeyLocks;
use crate::unit::{Holding, Span};
use bytes::Bytes;
use std::sync::Arc;

/// The commands queued since MULTI, and whether queueing one of them failed.
#[derive(Debug, Default)]
pub struct Multi {
    /// Each command's index in the table (looked up when queued) and its arguments.
    queued: Vec<(usize, Vec<Bytes>)>,
    failed: bool,
}

/// Commands that run at once inside MULTI instead of being queued (as in Redis).
pub fn runs_at_once(name: &str) -> bool {
    matches!(
        name,
        "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
    )
}

/// Queues `argv`, the command at `index` of the table (already checked: a fitting
/// arity).
pub fn queue(session: &mut Session, index: usize, argv: &[Bytes]) -> Reply {
    if let Some(m) = session.multi.as_mut() {
        m.queued.push((index, argv.to_vec()));
    }
    Reply::Status("QUEUED")
}

/// A command was refused while queueing: EXEC will answer EXECABORT.
pub fn flag(session: &mut Session) {
    if let Some(m) = session.multi.as_mut() {
        m.failed = true;
    }
}

/// A command refused before it ran (authentication, arity). Inside MULTI the
/// transaction will abort; a refused EXEC (inside MULTI or not) answers EXECABORT
/// saying why and drops any transaction at once (as Redis' `execCommandAbort`).
pub fn refused(shared: &Shared, session: &mut Session, spec: &Spec, e: CmdError) -> Reply {
    if matches!(spec.run, Run::Exec) {
        session.multi = None;
        session.watching.clear(&shared.watches);
        let why = e.to_string();
        let why = why.strip_prefix("ERR ").unwrap_or(&why);
        return CmdError::Coded(
            format!("EXECABORT Transaction discarded because of: {why}").into(),
        )
        .into();
    }
    flag(session);
    e.into()
}

/// MULTI
pub fn multi(_s: &Shared, sess: &mut Session, _a: &mut Args<'_>) -> CmdResult {
    if sess.multi.is_some() {
        return Err(CmdError::err("MULTI calls can not be nested"));
    }
    sess.multi = Some(Multi::default());
    Ok(Reply::OK)
}

/// DISCARD
pub fn discard(s: &Shared, sess: &mut Session, _a: &mut Args<'_>) -> CmdResult {
    if sess.multi.take().is_none() {
        return Err(CmdError::err("DISCARD without MULTI"));
    }
    sess.watching.clear(&s.watches);
    Ok(Reply::OK)
}

/// WATCH key [key ...]
pub fn watch(s: &Shared, sess: &mut Session, a: &mut Args<'_>) -> CmdResult {
    if sess.multi.is_some() {
        return Err(CmdError::err("WATCH inside MULTI is not allowed"));
    }
    let ks = Keyspace::new(&s.store, sess.db);
    for key in a.take_rest() {
        let state = ks.ttl(key)?;
        sess.watching.add(&s.watches, sess.db, key.clone(), state);
    }
    Ok(Reply::OK)
}

/// UNWATCH
pub fn unwatch(s: &Shared, sess: &mut Session, _a: &mut Args<'_>) -> CmdResult {
    sess.watching.clear(&s.watches);
    Ok(Reply::OK)
}

/// Whether a watched key changed: touched by a write, or no longer in the state WATCH
/// saw (expired, evicted, flushed, its expiry changed by the engine). Called holding
/// the watched keys' stripes.
fn watched_changed(s: &Shared, sess: &Session) -> Result<bool, CmdError> {
    if sess.watching.touched() {
        return Ok(true);
    }
    for (db, key, then) in sess.watching.keys() {
        if s.store.engine.ttl(*db, key)? != *then {
            return Ok(true);
        }
    }
    Ok(false)
}

/// EXEC: runs the queued commands as one unit and answers with their replies.
pub async fn exec(shared: &Arc<Shared>, sess: &mut Session, waits_for_fsync: bool) -> Reply {
    let Some(multi) = sess.multi.take() else {
        return CmdError::err("EXEC without MULTI").into();
    };
    if multi.failed {
        sess.watching.clear(&shared.watches);
        return CmdError::Coded(
            "EXECABORT Transaction discarded because of previous errors.".into(),
        )
        .into();
    }
    let steps: Vec<(usize, &'static Spec, &[Bytes], &[Bytes])> = multi
        .queued
        .iter()
        .filter_map(|(index, argv)| {
            Some((*index, COMMANDS.get(*index)?, argv.get(1..)?, &argv[..]))
        })
        .collect();
    // Routed misses are fetched before the unit takes its stripes (handlers never
    // wait), for the database the transaction starts in.
    let db = sess.db;
    let mut reads = match &shared.read_through {
        Some(rt) => {
            let keys: Vec<&Bytes> = steps
                .iter()
                .filter(|(_, spec, _, _)| spec.through)
                .flat_map(|(_, spec, rest, _)| spec.key_args(rest))
                .collect();
            if rt.routes_any(keys.iter().copied()) {
                Some(Box::pin(rt.prefetch(&shared.store, db, keys.into_iter())).await)
            } else {
                None
            }
        }
        None => None,
    };
    let mut run = || {
        let mut everything = false;
        let mut keys: Vec<&[u8]> = Vec::new();
        for (_, spec, rest, _) in &steps {
            match spec.span(rest, true) {
                Span::Nothing => {}
                Span::One(k) => keys.push(k),
                Span::Keys(ks) => keys.extend(ks),
                Span::Everything => everything = true,
            }
        }
        keys.extend(sess.watching.keys().iter().map(|(_, k, _)| &k[..]));
        let holding = if everything {
            Holding::All
        } else {
            Holding::Stripes(keys.iter().map(|k| KeyLocks::stripe(k)).collect())
        };
        let busy = || shared.scripts.is_busy();
        let unit = if everything {
            shared.store.locks.lock_unless(None::<[&[u8]; 0]>, busy)
        } else {
            shared.store.locks.lock_unless(Some(keys), busy)
        };
        let Some(_unit) = unit else {
            return super::busy();
        };
        match watched_changed(shared, sess) {
            Ok(false) => {}
            Ok(true) => return Reply::NilArray,
            Err(e) => return e.into(),
        }
        // A script inside runs on these stripes instead of taking its own.
        sess.holding = Some(holding);
        let mut replies = Vec::with_capacity(steps.len());
        for &(index, spec, rest, argv) in &steps {
            let started = quanta::Instant::now();
            let mut args = Args::new(spec.name, rest).spelt_as(&argv[0]);
            let reply = match spec.run {
                Run::Control(f) => f(shared, sess, &mut args).unwrap_or_else(Reply::from),
                Run::Data(parse) => match parse(&mut args) {
                    Err(e) => e.into(),
                    Ok(cmd) => {
                        sess.wrote |= spec.is_write();
                        let here = reads.as_mut().filter(|_| sess.db == db);
                        apply_data(shared, sess.db, cmd, here)
                    }
                },
                // Not queued (runs at once inside MULTI).
                Run::Exec => Reply::err("ERR EXEC inside EXEC"),
            };
            super::show_to_monitors(shared, sess, spec, argv);
            let nanos = started.elapsed().as_nanos() as u64;
            let slot = super::docs::stat_slot(index, super::docs::subcommand_of(spec, argv));
            shared.cmdstats.ran(slot, nanos, super::error_text(&reply));
            replies.push(reply);
        }
        sess.holding = None;
        Reply::Array(replies)
    };
    let reply = if waits_for_fsync {
        super::blocking(&mut run)
    } else {
        run()
    };
    if let Some(r) = reads {
        r.finish(&shared.store, db, !matches!(reply, Reply::Error(_)));
    }
    sess.watching.clear(&shared.watches);
    reply
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::{send, session};
    use crate::protocol::reply::Reply;
    use crate::state::testing::shared;
    use bytes::Bytes;

    fn bulk(s: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[tokio::test]
    async fn queued_commands_run_at_exec_and_errors_abort_or_stay_local() {
        let (_d, s) = shared();
        let mut c = session(&s);
        assert_eq!(send(&s, &mut c, &["MULTI"]).await, Reply::OK);
        assert_eq!(
            send(&s, &mut c, &["SET", "k", "1"]).await,
            Reply::Status("QUEUED")
        );
        assert_eq!(
            send(&s, &mut c, &["INCR", "k"]).await,
            Reply::Status("QUEUED")
        );
        assert_eq!(
            send(&s, &mut c, &["GET", "k"]).await,
            Reply::Status("QUEUED")
        );
        let mut other = session(&s);
        assert_eq!(
            send(&s, &mut other, &["GET", "k"]).await,
            Reply::Nil,
            "nothing ran yet"
        );
        assert_eq!(
            send(&s, &mut c, &["EXEC"]).await,
            Reply::Array(vec![Reply::OK, Reply::Int(2), bulk("2")])
        );
        // An unknown command while queueing: EXECABORT, nothing runs.
        send(&s, &mut c, &["MULTI"]).await;
        send(&s, &mut c, &["SET", "k", "9"]).await;
        assert!(matches!(send(&s, &mut c, &["NOPE"]).await, Reply::Error(_)));
        assert_eq!(
            send(&s, &mut c, &["EXEC"]).await,
            Reply::err("EXECABORT Transaction discarded because of previous errors.")
        );
        assert_eq!(send(&s, &mut c, &["GET", "k"]).await, bulk("2"));
        // A runtime error stays in its own reply.
        send(&s, &mut c, &["MULTI"]).await;
        send(&s, &mut c, &["INCRBY", "k", "x"]).await;
        send(&s, &mut c, &["INCR", "k"]).await;
        assert_eq!(
            send(&s, &mut c, &["EXEC"]).await,
            Reply::Array(vec![
                Reply::err("ERR value is not an integer or out of range"),
                Reply::Int(3)
            ])
        );
    }

    #[tokio::test]
    async fn a_write_by_another_client_to_a_watched_key_makes_exec_answer_nil() {
        let (_d, s) = shared();
        let (mut a, mut b) = (session(&s), session(&s));
        send(&s, &mut a, &["WATCH", "w"]).await;
        send(&s, &mut b, &["SET", "unrelated", "1"]).await;
        send(&s, &mut a, &["MULTI"]).await;
        send(&s, &mut a, &["SET", "w", "a"]).await;
        assert_eq!(
            send(&s, &mut a, &["EXEC"]).await,
            Reply::Array(vec![Reply::OK])
        );
        send(&s, &mut a, &["WATCH", "w"]).await;
        send(&s, &mut b, &["SET", "w", "b"]).await;
        send(&s, &mut a, &["MULTI"]).await;
        send(&s, &mut a, &["SET", "w", "a"]).await;
        assert_eq!(send(&s, &mut a, &["EXEC"]).await, Reply::NilArray);
        assert_eq!(send(&s, &mut a, &["GET", "w"]).await, bulk("b"));
        // EXEC forgot the watch: the next transaction runs.
        send(&s, &mut a, &["MULTI"]).await;
        send(&s, &mut a, &["SET", "w", "a"]).await;
        assert_eq!(
            send(&s, &mut a, &["EXEC"]).await,
            Reply::Array(vec![Reply::OK])
        );
    }

    /// Clients incrementing one counter through WATCH/MULTI retry loops lose nothing,
    /// and a reader never sees a transaction half done.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn watch_retry_loops_are_exact_and_exec_is_one_unit() {
        let (_d, s) = shared();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let mut c = session(&s);
                let mut done = 0;
                while done < 50 {
                    send(&s, &mut c, &["WATCH", "n"]).await;
                    let n = match send(&s, &mut c, &["GET", "n"]).await {
                        Reply::Bulk(b) => String::from_utf8_lossy(&b).parse::<i64>().unwrap_or(0),
                        _ => 0,
                    };
                    let next = (n + 1).to_string();
                    send(&s, &mut c, &["MULTI"]).await;
                    send(&s, &mut c, &["SET", "n", &next]).await;
                    send(&s, &mut c, &["SET", "copy", &next]).await;
                    if matches!(send(&s, &mut c, &["EXEC"]).await, Reply::Array(_)) {
                        done += 1;
                    }
                }
            }));
        }
        let reader = {
            let s = s.clone();
            tokio::spawn(async move {
                let mut c = session(&s);
                for _ in 0..300 {
                    if let Reply::Array(v) = send(&s, &mut c, &["MGET", "n", "copy"]).await {
                        assert_eq!(v[0], v[1], "a transaction was seen half done");
                    }
                    tokio::task::yield_now().await;
                }
            })
        };
        for t in tasks {
            t.await.expect("client");
        }
        reader.await.expect("reader");
        let mut c = session(&s);
        assert_eq!(send(&s, &mut c, &["GET", "n"]).await, bulk("200"));
    }
}
