//! Compaction on request: BGREWRITEAOF (Redis users' "rewrite the log") starts a full
//! compaction in the background; CASKADE COMPACT runs one and answers when it is done,
//! with what it changed. A full compaction rewrites every segment, so the compaction
//! filter sees every live key without waiting for garbage to build up.

use super::args::{Args, is};
use super::error::{CmdError, CmdResult};
use super::{Session, blocking};
use crate::protocol::reply::Reply;
use crate::state::Shared;

/// BGREWRITEAOF: starts a full compaction unless one is running.
pub fn bgrewriteaof(s: &Shared, _sess: &mut Session, _a: &mut Args<'_>) -> CmdResult {
    let engine = &s.store.engine;
    if engine.stats().full_compaction_running {
        return Err(CmdError::err(
            "Background append only file rewriting already in progress",
        ));
    }
    engine.compact_all();
    Ok(Reply::Status(
        "Background append only file rewriting started",
    ))
}

/// CASKADE COMPACT: a full compaction, waited for (other clients are served
/// meanwhile); answers the segments rewritten, the keys the filter removed and the
/// disk bytes before and after.
pub fn caskade(s: &Shared, _sess: &mut Session, a: &mut Args<'_>) -> CmdResult {
    let sub = a.next_arg()?;
    if !is(sub, "compact") {
        return Err(CmdError::unknown_subcommand("CASKADE", sub));
    }
    let engine = &s.store.engine;
    let before = engine.stats();
    blocking(|| {
        let ticket = engine.compact_all();
        engine.wait_compaction(ticket)
    })?;
    let after = engine.stats();
    let field = |name: &str, v: u64| (Reply::text(name), Reply::Int(v as i64));
    Ok(Reply::Map(vec![
        field(
            "segments_compacted",
            after.compactions.saturating_sub(before.compactions),
        ),
        field(
            "filter_removals",
            after.filter_removals.saturating_sub(before.filter_removals),
        ),
        field("disk_bytes_before", before.disk_bytes),
        field("disk_bytes_after", after.disk_bytes),
    ]))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{control, session};
    use crate::protocol::reply::Reply;
    use crate::state::testing::shared;

    #[test]
    fn caskade_compact_drops_garbage_and_bgrewriteaof_starts_one() {
        let (_d, s) = shared();
        let mut sess = session(&s);
        for i in 0..50 {
            let v = format!("value {i}");
            super::super::testing::run(&s.store, &["SET", "k", &v]);
        }
        let Reply::Map(fields) = control(&s, &mut sess, &["CASKADE", "COMPACT"]) else {
            panic!("a map")
        };
        let get = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| *k == Reply::text(name))
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("filter_removals"), Some(Reply::Int(0)));
        let (Some(Reply::Int(before)), Some(Reply::Int(after))) =
            (get("disk_bytes_before"), get("disk_bytes_after"))
        else {
            panic!("{fields:?}")
        };
        assert!(
            after < before,
            "49 overwritten values dropped: {before} -> {after}"
        );
        assert_eq!(
            super::super::testing::run(&s.store, &["GET", "k"]),
            Reply::text("value 49")
        );
        assert_eq!(
            control(&s, &mut sess, &["CASKADE", "COMPACT", "now"]),
            Reply::err("ERR wrong number of arguments for 'caskade|compact' command")
        );
        assert!(matches!(
            control(&s, &mut sess, &["CASKADE", "SQUASH"]),
            Reply::Error(e) if e.starts_with("ERR unknown subcommand 'SQUASH'")
        ));
        assert_eq!(
            control(&s, &mut sess, &["BGREWRITEAOF"]),
            Reply::Status("Background append only file rewriting started")
        );
    }
}
