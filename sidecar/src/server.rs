//! Listeners and lifecycle: accept on TCP and an optional Unix socket, refuse clients
//! beyond `max_clients`, and on SIGTERM/SIGINT stop accepting, let connections finish
//! what they are doing, then close the engine (sync and hint files).

use crate::config::{Config, IoMode};
use crate::conn;
use crate::state::Shared;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinSet;

/// How long shutdown waits for connections to finish their current batch.
pub(crate) const DRAIN: Duration = Duration::from_secs(5);

/// The mode `wanted` can have here: `tokio` where the kernel refuses io_uring (the
/// reason is logged). Decided once, before the runtime is built (`uring` needs fewer
/// of its threads).
pub fn io_mode(wanted: IoMode) -> IoMode {
    if wanted == IoMode::Tokio {
        return wanted;
    }
    match crate::uring::probe() {
        Ok(()) => wanted,
        Err(reason) => {
            tracing::warn!(%reason, io = wanted.as_str(), "io_uring is refused here; serving with tokio");
            IoMode::Tokio
        }
    }
}

/// Runs until a shutdown signal, then drains and closes. `mode` comes from
/// [`io_mode`]; `on_ready` runs once the listeners are bound.
pub async fn run(shared: Arc<Shared>, mode: IoMode, on_ready: impl FnOnce()) -> anyhow::Result<()> {
    let cfg = shared.config.lock().clone();
    let threads = match cfg.server.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n as usize,
    };
    let mode = match mode {
        IoMode::Hybrid => match crate::uring::Reader::start(&shared) {
            Ok(r) => {
                let _ = shared.reader.set(r);
                IoMode::Hybrid
            }
            Err(reason) => {
                tracing::warn!(%reason, "cannot start the io_uring reader; serving with tokio");
                IoMode::Tokio
            }
        },
        other => other,
    };
    let _ = shared.serving.set((mode, threads));
    let unix = match &cfg.unixsocket {
        Some(path) => {
            // A stale socket file from a previous run would make bind fail.
            if path.exists() {
                std::fs::remove_file(path).map_err(|e| {
                    anyhow::anyhow!("cannot remove stale socket {}: {e}", path.display())
                })?;
            }
            let l = std::os::unix::net::UnixListener::bind(path)
                .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", path.display()))?;
            tracing::info!(path = %path.display(), "listening for RESP on a Unix socket");
            Some(l)
        }
        None => None,
    };
    let r = match mode {
        IoMode::Tokio | IoMode::Hybrid => serve_tokio(&shared, &cfg, unix, mode, on_ready).await,
        IoMode::Uring => serve_uring(&shared, &cfg, unix, threads, on_ready).await,
    };
    if let Some(path) = &cfg.unixsocket {
        let _ = std::fs::remove_file(path);
    }
    r?;
    shared.store.engine.close()?;
    tracing::info!("caskade stopped");
    Ok(())
}

/// Serves on tokio's runtime (the one this runs on) until told to stop.
async fn serve_tokio(
    shared: &Arc<Shared>,
    cfg: &Config,
    unix: Option<std::os::unix::net::UnixListener>,
    mode: IoMode,
    on_ready: impl FnOnce(),
) -> anyhow::Result<()> {
    let tcp = if cfg.port != 0 {
        let addr = format!("{}:{}", cfg.bind, cfg.port);
        let l = bind_tcp(&addr, cfg.tcp_backlog, 1)
            .and_then(|mut group| {
                let l = group
                    .pop()
                    .ok_or_else(|| std::io::Error::other("no listener"))?;
                l.set_nonblocking(true)?;
                TcpListener::from_std(l)
            })
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        tracing::info!(addr = %l.local_addr()?, io = mode.as_str(), "listening for RESP over TCP");
        Some(l)
    } else {
        None
    };
    let unix = match unix {
        Some(l) => {
            l.set_nonblocking(true)?;
            Some(UnixListener::from_std(l)?)
        }
        None => None,
    };
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    announce(cfg, on_ready);
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = shared.shutdown.notified() => {
                tracing::info!("SHUTDOWN received");
                break;
            }
            accepted = accept_tcp(tcp.as_ref()) => {
                if let Some((stream, addr)) = accepted {
                    let _ = stream.set_nodelay(true);
                    spawn(shared, &mut conns, stream, addr);
                }
            }
            accepted = accept_unix(unix.as_ref()) => {
                if let Some(stream) = accepted {
                    spawn(shared, &mut conns, stream, "unix".into());
                }
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    tracing::info!(clients = conns.len(), "shutting down: draining connections");
    drop(tcp);
    drop(unix);
    tell_clients_to_finish(shared);
    let _ = tokio::time::timeout(DRAIN, async { while conns.join_next().await.is_some() {} }).await;
    conns.abort_all();
    Ok(())
}

/// Serves on io_uring runtimes, one per thread, until told to stop.
async fn serve_uring(
    shared: &Arc<Shared>,
    cfg: &Config,
    unix: Option<std::os::unix::net::UnixListener>,
    threads: usize,
    on_ready: impl FnOnce(),
) -> anyhow::Result<()> {
    let tcp = if cfg.port != 0 {
        let addr = format!("{}:{}", cfg.bind, cfg.port);
        let group = bind_tcp(&addr, cfg.tcp_backlog, threads)
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        if let Some(l) = group.first() {
            tracing::info!(addr = %l.local_addr()?, io = "uring", threads, "listening for RESP over TCP");
        }
        group
    } else {
        Vec::new()
    };
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let running = crate::uring::Threads::start(shared, tcp, unix.as_ref(), threads)?;
    drop(unix);
    announce(cfg, on_ready);
    tokio::select! {
        () = &mut shutdown => {}
        () = shared.shutdown.notified() => tracing::info!("SHUTDOWN received"),
    }
    tracing::info!(
        clients = shared.client_count(),
        "shutting down: draining connections"
    );
    tell_clients_to_finish(shared);
    tokio::task::spawn_blocking(move || running.stop()).await?;
    Ok(())
}

fn announce(cfg: &Config, on_ready: impl FnOnce()) {
    on_ready();
    // Announce readiness on stdout for scripts and tests that wait for it.
    println!("{}", crate::logging::ready_line(cfg.log.format));
}

/// Every connection ends after its current batch (a blocked one at once).
fn tell_clients_to_finish(shared: &Shared) {
    for c in shared.clients.lock().values() {
        c.killed.store(true, Ordering::Release);
        c.wake.notify_one();
    }
}

/// A seat for a new connection, counted; `None` (counted as a rejection) when
/// `max_clients` are connected. Taken where connections are accepted, not when their
/// task registers: a burst of connections cannot all pass the check before any counts.
pub(crate) fn seat(shared: &Shared) -> Option<crate::state::Seat> {
    shared.stats.connections.fetch_add(1, Ordering::Relaxed);
    let max = shared.config.lock().limits.max_clients;
    let seat = shared.admit(max);
    if seat.is_none() {
        shared.stats.rejected.fetch_add(1, Ordering::Relaxed);
    }
    seat
}

/// Binds `addr` (a name or an address; the first of its addresses that binds) with a
/// listen queue of `backlog`, as Redis' `tcp-backlog` does (the standard library's
/// bind always asks for 128). One listener, or `count` of them on the same address with
/// `SO_REUSEPORT` (the kernel spreads connections over them, one per io_uring thread);
/// either way an address another socket already holds is refused, even one that
/// allows reuse (a second caskade on the same port would otherwise share the
/// connections silently).
pub(crate) fn bind_tcp(
    addr: &str,
    backlog: u32,
    count: usize,
) -> std::io::Result<Vec<std::net::TcpListener>> {
    use std::net::ToSocketAddrs;
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        match bind_group(a, backlog, count) {
            Ok(group) => return Ok(group),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("the address resolves to nothing")))
}

fn bind_group(
    a: std::net::SocketAddr,
    backlog: u32,
    count: usize,
) -> std::io::Result<Vec<std::net::TcpListener>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = |reuse_port: bool| -> std::io::Result<Socket> {
        let s = Socket::new(Domain::for_address(a), Type::STREAM, Some(Protocol::TCP))?;
        s.set_reuse_address(true)?;
        s.set_reuse_port(reuse_port)?;
        Ok(s)
    };
    let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
    // The first binds without SO_REUSEPORT: it fails if anyone holds the address.
    let first = socket(false)?;
    first.bind(&a.into())?;
    if count <= 1 {
        first.listen(backlog)?;
        return Ok(vec![first.into()]);
    }
    let bound = first.local_addr()?;
    drop(first);
    let mut group = Vec::with_capacity(count);
    for _ in 0..count {
        let s = socket(true)?;
        s.bind(&bound)?;
        s.listen(backlog)?;
        group.push(s.into());
    }
    Ok(group)
}

fn spawn<S>(shared: &Arc<Shared>, conns: &mut JoinSet<()>, mut stream: S, addr: String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Some(seat) = seat(shared) else {
        conns.spawn(async move {
            let _ = stream
                .write_all(b"-ERR max number of clients reached\r\n")
                .await;
            let _ = stream.shutdown().await;
        });
        return;
    };
    let shared = shared.clone();
    conns.spawn(async move {
        conn::serve(shared, stream, addr).await;
        drop(seat);
    });
}

async fn accept_tcp(l: Option<&TcpListener>) -> Option<(tokio::net::TcpStream, String)> {
    match l {
        Some(l) => match l.accept().await {
            Ok((s, a)) => Some((s, a.to_string())),
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                // Back off briefly: errors such as EMFILE repeat immediately.
                tokio::time::sleep(Duration::from_millis(50)).await;
                None
            }
        },
        None => std::future::pending().await,
    }
}

async fn accept_unix(l: Option<&UnixListener>) -> Option<tokio::net::UnixStream> {
    match l {
        Some(l) => match l.accept().await {
            Ok((s, _)) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                None
            }
        },
        None => std::future::pending().await,
    }
}

/// Installs the SIGTERM and SIGINT handlers now (before readiness is announced, so a
/// stop right after "ready" is a clean shutdown) and returns the wait for either.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut term), Ok(mut int)) = handlers else {
            tracing::error!("cannot install signal handlers; stop with SIGKILL");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    }
}
