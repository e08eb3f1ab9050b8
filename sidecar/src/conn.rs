//! One client connection: read what has arrived, run every complete command in it,
//! and write all their replies with one write (pipelining). Enforces the query-buffer
//! limit and the idle timeout; closes after a protocol error, QUIT or CLIENT KILL.

use crate::cmd::{self, Session};
use crate::protocol::reply::Reply;
use crate::protocol::request::RequestParser;
use crate::state::Shared;
use crate::transport::{Tokio, Transport};
use bytes::BytesMut;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// The most one read asks for. A connection starts with [`FIRST_CHUNK`] and doubles
/// up to this while reads fill what it offers (pipelines), so an idle connection holds
/// a small buffer and a busy one makes few system calls.
const READ_CHUNK: usize = 64 * 1024;
/// What a new connection's first read offers.
const FIRST_CHUNK: usize = 1024;
/// Buffers grown past this for a large request or reply are freed once empty, so a
/// connection does not keep the memory of its largest request.
const KEEP_BUFFER: usize = 2 * READ_CHUNK;

/// Serves one client over a tokio stream until it leaves, is killed, or breaks the
/// protocol.
pub async fn serve<S>(shared: Arc<Shared>, stream: S, addr: String)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let reader = shared.reader.get().cloned();
    serve_on(shared, Tokio::with_reader(stream, reader), addr).await;
}

/// [`serve`] over any [`Transport`].
pub async fn serve_on<T: Transport>(shared: Arc<Shared>, mut stream: T, addr: String) {
    let client = shared.register(addr);
    let id = client.id;
    let mut session = Session::new(&shared, client.clone());
    let (max_bulk, max_args, max_query, idle, waits_for_fsync) = {
        let c = shared.config.lock();
        (
            c.limits.max_bulk_bytes as usize,
            c.limits.max_args,
            c.limits.max_query_buffer_bytes as usize,
            c.limits.idle_timeout_secs,
            c.storage.fsync == caskade_engine::Fsync::Always,
        )
    };
    let mut parser = RequestParser::new(max_bulk, max_args);
    let mut inbuf = BytesMut::new();
    let mut out = BytesMut::new();
    let mut writes = Vec::new();
    // The batch's commands, and records read ahead for them (kept for their buffers).
    let mut batch: Vec<Vec<bytes::Bytes>> = Vec::new();
    let mut lent = Vec::new();
    let mut chunk = FIRST_CHUNK;
    // Bytes a blocked command's wait read (commands pipelined behind it) are parsed
    // before the next read: nothing more may come until they are answered.
    let mut carried = false;
    let mut gauge = BufferGauge {
        total: &shared.stats.client_buffer_bytes,
        reported: 0,
    };
    'conn: loop {
        // What a blocked command's wait read is parsed as if just read.
        if !std::mem::take(&mut carried) {
            if inbuf.capacity() - inbuf.len() < chunk / 4 {
                inbuf.reserve(chunk);
            }
            let offered = inbuf.capacity() - inbuf.len();
            let monitor = session.monitor.as_mut();
            let read = async {
                tokio::select! {
                    r = stream.read_buf(&mut inbuf) => Some(r),
                    () = client.wake.notified() => None,
                    line = next_line(monitor) => {
                        if let Some(line) = line {
                            out.extend_from_slice(&line);
                        }
                        None
                    }
                }
            };
            let got = if idle > 0 {
                match tokio::time::timeout(Duration::from_secs(idle), read).await {
                    Ok(r) => r,
                    Err(_) => break 'conn,
                }
            } else {
                read.await
            };
            if client.killed.load(Ordering::Acquire) {
                break;
            }
            match got {
                Some(Ok(0)) | Some(Err(_)) => break,
                // A full read (an io_uring read may bring more than was offered).
                Some(Ok(n)) if n >= offered => chunk = (chunk * 2).min(READ_CHUNK),
                Some(Ok(_)) => {}
                None => {
                    // Woken, or a MONITOR line to pass on (with any others queued).
                    if let Some(m) = session.monitor.as_mut() {
                        while let Ok(line) = m.rx.try_recv() {
                            out.extend_from_slice(&line);
                        }
                    }
                    if !out.is_empty() {
                        if stream.write_all(&mut out).await.is_err() {
                            break;
                        }
                        out.clear();
                    }
                    continue;
                }
            }
        } else if client.killed.load(Ordering::Acquire) {
            // Killed as its pop was served: what it sent meanwhile is not run.
            break;
        }
        // Noted once per batch, before any of its writes (see `settle`).
        let mut generation = shared.store.engine.write_generation();
        // Every complete command first: a command that reads ahead sees the rest of
        // its batch (to read their records side by side).
        let mut broken = None;
        loop {
            match parser.next(&mut inbuf) {
                Ok(Some(args)) => batch.push(args),
                Ok(None) => break,
                Err(e) => {
                    broken = Some(e);
                    break;
                }
            }
        }
        for i in 0..batch.len() {
            let (Some(args), Some(upcoming)) = (batch.get(i), batch.get(i + 1..)) else {
                break;
            };
            // The next command's first argument is its key for nearly every command
            // that has one: its index entry loads while this one runs (a hint only).
            if let Some(key) = upcoming.first().and_then(|next| next.get(1)) {
                shared
                    .store
                    .engine
                    .prefetch(shared.store.ns(session.db), key);
            }
            let mut ahead = cmd::ReadAhead {
                lent: std::mem::take(&mut lent),
                upcoming,
            };
            let mut earlier = std::mem::take(&mut session.wrote);
            let mut reply = cmd::run_on(
                &shared,
                &mut session,
                args,
                waits_for_fsync,
                &mut stream,
                &mut ahead,
            )
            .await;
            lent = ahead.lent;
            if let Some(block) = session.block.take() {
                // The replies before it leave now; it answers once served.
                session.wrote |= earlier;
                earlier = false;
                settle(&shared, &mut session, &mut out, &mut writes, generation);
                if !out.is_empty() {
                    if stream.write_all(&mut out).await.is_err() {
                        break 'conn;
                    }
                    out.clear();
                }
                generation = shared.store.engine.write_generation();
                let wait = Wait {
                    shared: &shared,
                    block,
                    waits_for_fsync,
                    max_query,
                };
                let before = inbuf.len();
                match wait.run(&mut session, &mut stream, &mut inbuf).await {
                    Some(r) => reply = r,
                    None => break 'conn,
                }
                carried |= inbuf.len() > before;
            }
            let start = out.len();
            reply.encode(&mut out, session.resp3);
            if session.wrote && !matches!(reply, Reply::Error(_)) {
                writes.push(Acked {
                    span: start..out.len(),
                    resp3: session.resp3,
                });
            }
            session.wrote |= earlier;
            if session.quit {
                settle(&shared, &mut session, &mut out, &mut writes, generation);
                let _ = stream.write_all(&mut out).await;
                break 'conn;
            }
        }
        for args in batch.drain(..) {
            parser.recycle(args);
        }
        lent.clear();
        if let Some(e) = broken {
            Reply::err(format!("ERR {}", e.0)).encode(&mut out, session.resp3);
            settle(&shared, &mut session, &mut out, &mut writes, generation);
            let _ = stream.write_all(&mut out).await;
            tracing::debug!(client = id, error = %e, "protocol error; closing");
            break 'conn;
        }
        if inbuf.len() + parser.pending_bytes() > max_query {
            Reply::err("ERR query buffer limit exceeded; closing the connection")
                .encode(&mut out, session.resp3);
            settle(&shared, &mut session, &mut out, &mut writes, generation);
            let _ = stream.write_all(&mut out).await;
            tracing::warn!(client = id, "query buffer limit exceeded; closing");
            break;
        }
        settle(&shared, &mut session, &mut out, &mut writes, generation);
        if !out.is_empty() {
            if stream.write_all(&mut out).await.is_err() {
                break;
            }
            out.clear();
            if out.capacity() > KEEP_BUFFER {
                out = BytesMut::new();
            }
        }
        if inbuf.is_empty() && inbuf.capacity() > KEEP_BUFFER {
            inbuf = BytesMut::new();
        }
        gauge.set(inbuf.capacity() + out.capacity());
    }
    stream.shutdown().await;
    session.watching.clear(&shared.watches);
    shared.unregister(id);
}

/// A blocking command that found nothing, waiting on this connection.
struct Wait<'s> {
    shared: &'s Shared,
    block: cmd::Block,
    waits_for_fsync: bool,
    max_query: usize,
}

impl Wait<'_> {
    /// Waits until a write to a key it names lets it pop, its timeout passes, CLIENT
    /// UNBLOCK ends it (its reply), or the client leaves or is killed (`None`). What
    /// the client sends meanwhile is kept for after.
    async fn run<T: Transport>(
        self,
        session: &mut Session,
        stream: &mut T,
        inbuf: &mut BytesMut,
    ) -> Option<Reply> {
        let shared = self.shared;
        let client = session.client.clone();
        let waiter = Arc::new(crate::blocking::Waiter::default());
        let registration = shared
            .blocked
            .block(self.block.db, &self.block.keys, waiter);
        client.blocked.store(true, Ordering::Release);
        client.take_unblock();
        let deadline = self.block.timeout.map(|t| tokio::time::Instant::now() + t);
        let outcome = loop {
            // Registered first, then tried: a push in between is not missed.
            let reply = cmd::retry(shared, session, &self.block, self.waits_for_fsync);
            if !cmd::found_nothing(&reply) {
                break Some(reply);
            }
            let timeout = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = registration.waiter().ready.notified() => {}
                () = timeout => break Some(Reply::NilArray),
                () = client.wake.notified() => {
                    if client.killed.load(Ordering::Acquire) {
                        break None;
                    }
                    match client.take_unblock() {
                        Some(crate::state::Unblock::Timeout) => break Some(Reply::NilArray),
                        Some(crate::state::Unblock::Error) => {
                            break Some(Reply::err("UNBLOCKED client unblocked via CLIENT UNBLOCK"));
                        }
                        None => {}
                    }
                }
                r = stream.read_buf(inbuf) => {
                    if matches!(r, Ok(0) | Err(_)) || inbuf.len() > self.max_query {
                        break None;
                    }
                }
            }
        };
        client.blocked.store(false, Ordering::Release);
        drop(registration);
        outcome
    }
}

/// The next MONITOR line for this connection; never, when it does not monitor (a
/// monitor that fell behind skips what it missed).
async fn next_line(monitor: Option<&mut crate::monitor::Feed>) -> Option<bytes::Bytes> {
    let Some(m) = monitor else {
        return std::future::pending().await;
    };
    loop {
        match m.rx.recv().await {
            Ok(line) => return Some(line),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
        }
    }
}

/// This connection's share of the server's buffer bytes, kept current after each
/// batch and given back when the connection ends.
struct BufferGauge<'a> {
    total: &'a std::sync::atomic::AtomicU64,
    reported: u64,
}

impl BufferGauge<'_> {
    fn set(&mut self, bytes: usize) {
        let bytes = bytes as u64;
        if bytes > self.reported {
            self.total
                .fetch_add(bytes - self.reported, Ordering::Relaxed);
        } else if bytes < self.reported {
            self.total
                .fetch_sub(self.reported - bytes, Ordering::Relaxed);
        }
        self.reported = bytes;
    }
}

impl Drop for BufferGauge<'_> {
    fn drop(&mut self) {
        self.set(0);
    }
}

/// Where a write's success reply sits in the outgoing buffer, until the batch's writes
/// have reached the file.
struct Acked {
    span: std::ops::Range<usize>,
    resp3: bool,
}

/// Hands this connection's writes to the OS before their replies leave, so a crash of
/// the process never loses an acknowledged write (as with Redis' AOF). If that fails,
/// no success leaves for those writes: each one's reply is replaced by the error.
fn settle(
    shared: &Shared,
    session: &mut Session,
    out: &mut BytesMut,
    writes: &mut Vec<Acked>,
    generation: u64,
) {
    let acked = std::mem::take(writes);
    if !std::mem::take(&mut session.wrote) {
        return;
    }
    let engine = &shared.store.engine;
    let why = match engine.flush_writes() {
        // Flushed, and nothing appended since the batch's first write was given up by
        // a retry after a failed write (another connection's, during this batch).
        Ok(()) if engine.write_generation() == generation => return,
        Ok(()) => "they were given up after a failed write".to_string(),
        Err(e) => e.to_string(),
    };
    // The engine logs the failure once, when writes stop; each refused batch is detail.
    tracing::debug!(error = %why, "handing writes to the data file failed; their replies are errors");
    if acked.is_empty() {
        return;
    }
    let refusal = Reply::err(format!("MISCONF Errors writing to the data file: {why}"));
    let mut fixed = BytesMut::with_capacity(out.len());
    let mut at = 0;
    for a in &acked {
        fixed.extend_from_slice(out.get(at..a.span.start).unwrap_or_default());
        refusal.encode(&mut fixed, a.resp3);
        at = a.span.end;
    }
    fixed.extend_from_slice(out.get(at..).unwrap_or_default());
    *out = fixed;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::testing::shared;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    /// Reads until `want` has arrived (or fails on EOF or a mismatch).
    async fn expect(c: &mut DuplexStream, want: &[u8]) {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.len() < want.len() {
            let n = c.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
    }

    async fn closed(c: &mut DuplexStream) {
        let mut buf = [0u8; 64];
        assert_eq!(c.read(&mut buf).await.expect("read"), 0, "expected EOF");
    }

    #[tokio::test]
    async fn pipelined_commands_are_answered_in_order_then_quit_closes() {
        let (_d, sh) = shared();
        let (mut c, s) = tokio::io::duplex(1 << 16);
        let task = tokio::spawn(serve(sh.clone(), s, "test".into()));
        c.write_all(
            b"*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\nGET k\r\nNOPE x\r\n",
        )
        .await
        .expect("write");
        expect(
            &mut c,
            b"+PONG\r\n+OK\r\n$1\r\nv\r\n-ERR unknown command 'NOPE', with args beginning with: 'x' \r\n",
        )
        .await;
        assert_eq!(sh.client_count(), 1);
        c.write_all(b"HELLO 3\r\n").await.expect("write");
        let mut buf = [0u8; 512];
        let n = c.read(&mut buf).await.expect("read");
        assert!(buf[..n].starts_with(b"%7\r\n"), "a RESP3 map");
        c.write_all(b"GET missing\r\nQUIT\r\n")
            .await
            .expect("write");
        expect(&mut c, b"_\r\n+OK\r\n").await;
        closed(&mut c).await;
        task.await.expect("served");
        assert_eq!(sh.client_count(), 0);
    }

    /// A pipeline on one key with a transaction, a script, a flush of every key and
    /// a blocked pop among its commands answers each in order (none waits on a lock
    /// another step holds), a push from another connection wakes the pop, and two
    /// connections pipelining on one key at once both finish with every change applied.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pipelines_on_one_key_interleave_with_units_that_lock_and_wait() {
        let (_d, sh) = shared();
        let (mut c, s) = tokio::io::duplex(1 << 16);
        let task = tokio::spawn(serve(sh.clone(), s, "one".into()));
        let script = "EVAL \"return redis.call('incr', KEYS[1])\" 1 k\r\n";
        let req = format!(
            "SET k 1\r\nINCR k\r\nINCR k\r\nMULTI\r\nINCR k\r\nEXEC\r\nINCR k\r\n\
             {script}INCR k\r\nFLUSHALL\r\nINCR k\r\nRPUSH q a\r\nLPOP q\r\nBLPOP q 0\r\nGET k\r\n"
        );
        c.write_all(req.as_bytes()).await.expect("write");
        expect(
            &mut c,
            b"+OK\r\n:2\r\n:3\r\n+OK\r\n+QUEUED\r\n*1\r\n:4\r\n:5\r\n:6\r\n:7\r\n+OK\r\n:1\r\n:1\r\n$1\r\na\r\n",
        )
        .await;
        // Blocked on `q`: another connection can still push to it.
        let (mut other, s2) = tokio::io::duplex(1 << 16);
        let task2 = tokio::spawn(serve(sh.clone(), s2, "two".into()));
        other.write_all(b"RPUSH q b\r\n").await.expect("write");
        expect(&mut other, b":1\r\n").await;
        expect(&mut c, b"*2\r\n$1\r\nq\r\n$1\r\nb\r\n$1\r\n1\r\n").await;
        // Both pipelining on one key at once.
        let incrs = "INCR n\r\n".repeat(2000);
        let (a, b) = tokio::join!(
            async {
                c.write_all(incrs.as_bytes()).await.expect("write");
                c
            },
            async {
                other.write_all(incrs.as_bytes()).await.expect("write");
                other
            }
        );
        let (mut c, mut other) = (a, b);
        for conn in [&mut c, &mut other] {
            let mut got = 0;
            let mut buf = vec![0u8; 1 << 16];
            while got < 2000 {
                let n = conn.read(&mut buf).await.expect("read");
                assert!(n > 0);
                got += buf[..n].iter().filter(|&&b| b == b'\n').count();
            }
        }
        c.write_all(b"GET n\r\n").await.expect("write");
        expect(&mut c, b"$4\r\n4000\r\n").await;
        drop((c, other));
        task.await.expect("served");
        task2.await.expect("served");
    }

    /// Commands sent while a pop is blocked (read by its wait) are answered once it
    /// is served, without waiting for more input (CI once saw LLEN left unanswered).
    #[tokio::test]
    async fn commands_sent_while_blocked_are_answered_after_the_pop() {
        let (_d, sh) = shared();
        let (mut c, s) = tokio::io::duplex(1 << 16);
        let task = tokio::spawn(serve(sh.clone(), s, "one".into()));
        c.write_all(b"BLMOVE src dst RIGHT LEFT 0\r\n")
            .await
            .expect("write");
        while sh.blocked.count() == 0 {
            tokio::task::yield_now().await;
        }
        c.write_all(b"LLEN dst\r\n").await.expect("write");
        // Let the wait read it before the push.
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        let (mut other, s2) = tokio::io::duplex(1 << 16);
        let task2 = tokio::spawn(serve(sh.clone(), s2, "two".into()));
        other.write_all(b"RPUSH src m n\r\n").await.expect("write");
        expect(&mut other, b":2\r\n").await;
        let answered = expect(&mut c, b"$1\r\nn\r\n:1\r\n");
        tokio::time::timeout(Duration::from_secs(5), answered)
            .await
            .expect("LLEN answered without more input");
        drop((c, other));
        task.await.expect("served");
        task2.await.expect("served");
    }

    #[tokio::test]
    async fn buffers_grown_for_a_large_value_are_freed_and_counted() {
        let (_d, sh) = shared();
        let (mut c, s) = tokio::io::duplex(1 << 20);
        let task = tokio::spawn(serve(sh.clone(), s, "test".into()));
        let bytes = || sh.stats.client_buffer_bytes.load(Ordering::Relaxed);
        c.write_all(b"PING\r\n").await.expect("write");
        expect(&mut c, b"+PONG\r\n").await;
        let idle = bytes();
        assert!(
            idle > 0 && idle <= 4096,
            "an idle connection holds {idle} bytes"
        );
        let big = vec![b'x'; 1 << 20];
        let mut req = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048576\r\n".to_vec();
        req.extend_from_slice(&big);
        req.extend_from_slice(b"\r\nGET k\r\n");
        c.write_all(&req).await.expect("write");
        let mut want = b"+OK\r\n$1048576\r\n".to_vec();
        want.extend_from_slice(&big);
        want.extend_from_slice(b"\r\n");
        expect(&mut c, &want).await;
        c.write_all(b"PING\r\n").await.expect("write");
        expect(&mut c, b"+PONG\r\n").await;
        let after = bytes();
        assert!(
            after <= 2 * KEEP_BUFFER as u64,
            "{after} bytes kept after the large request was served"
        );
        drop(c);
        task.await.expect("served");
        assert_eq!(bytes(), 0, "a closed connection's buffers are given back");
    }

    #[tokio::test]
    async fn a_protocol_error_is_answered_and_closes() {
        let (_d, sh) = shared();
        let (mut c, s) = tokio::io::duplex(1 << 16);
        let task = tokio::spawn(serve(sh, s, "test".into()));
        c.write_all(b"*1\r\n$x\r\n").await.expect("write");
        expect(&mut c, b"-ERR Protocol error: invalid bulk length\r\n").await;
        closed(&mut c).await;
        task.await.expect("served");
    }

    #[tokio::test]
    async fn a_write_that_does_not_reach_the_file_is_never_acknowledged() {
        let fs = caskade_engine::io::FaultStorage::new();
        let sh = crate::state::testing::shared_on(std::sync::Arc::new(fs.clone()));
        let (mut c, s) = tokio::io::duplex(1 << 16);
        let _task = tokio::spawn(serve(sh.clone(), s, "test".into()));
        c.write_all(b"SET a 1\r\n").await.expect("write");
        expect(&mut c, b"+OK\r\n").await;
        // The next hand-over to the file fails: the batch's writes are refused, its
        // reads and failed writes answered as they were.
        fs.fail_nth_write(1);
        c.write_all(b"SET b 2\r\nPING\r\nINCR a\r\nINCR nan\r\n")
            .await
            .expect("write");
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.iter().filter(|&&b| b == b'\n').count() < 4 {
            let n = c.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed");
            got.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&got);
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert!(
            lines[0].starts_with("-MISCONF Errors writing to the data file"),
            "{text}"
        );
        assert_eq!(lines[1], "+PONG");
        assert!(lines[2].starts_with("-MISCONF"), "{text}");
        assert!(lines[3].starts_with("-MISCONF"), "{text}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_a_failed_sync_writes_are_refused_with_misconf_and_info_says_so() {
        let fs = caskade_engine::io::FaultStorage::new();
        let sh = crate::state::testing::shared_with(
            std::sync::Arc::new(fs.clone()),
            caskade_engine::Fsync::Always,
        );
        let (mut c, s) = tokio::io::duplex(1 << 16);
        let _task = tokio::spawn(serve(sh.clone(), s, "test".into()));
        fs.fail_nth_sync(1);
        c.write_all(b"SET a 1\r\n").await.expect("write");
        let mut buf = [0u8; 4096];
        let n = c.read(&mut buf).await.expect("read");
        assert!(
            buf[..n].starts_with(b"-IOERR storage failure: sync"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
        c.write_all(b"SET b 2\r\n").await.expect("write");
        let n = c.read(&mut buf).await.expect("read");
        assert!(
            buf[..n].starts_with(b"-MISCONF writes are refused"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
        let Reply::Verbatim(info) = crate::cmd::testing::info(&sh) else {
            panic!("text")
        };
        assert!(info.contains("aof_last_write_status:err"), "{info}");
        assert!(info.contains("engine_writes_refused:1"), "{info}");
    }

    #[tokio::test]
    async fn writes_are_handed_to_the_file_before_their_replies() {
        let (_d, sh) = shared();
        let (mut c, s) = tokio::io::duplex(1 << 16);
        let _task = tokio::spawn(serve(sh.clone(), s, "test".into()));
        c.write_all(b"SET a 1\r\nINCR a\r\n").await.expect("write");
        expect(&mut c, b"+OK\r\n:2\r\n").await;
        assert_eq!(
            sh.store.engine.get(0, b"a").expect("get").as_deref(),
            Some(&b"2"[..])
        );
    }
}
