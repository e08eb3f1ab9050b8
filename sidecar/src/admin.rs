//! The admin HTTP port: `/metrics` (Prometheus), `/healthz` (the process answers) and
//! `/readyz` (recovery finished and RESP is being served). A deliberately tiny HTTP/1.1
//! responder: one GET per connection, no keep-alive, bounded request size. Also the
//! client side of a probe (`caskade probe`), for containers whose admin port is bound
//! to the loopback address, where the kubelet's HTTP probes cannot reach it.

use crate::metrics::Metrics;
use crate::state::Shared;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the admin port reports on.
#[derive(Default)]
pub struct AdminState {
    /// Set once recovery is done and the RESP listeners are up.
    pub ready: AtomicBool,
    /// The server state, once the engine is open.
    pub shared: OnceLock<Arc<Shared>>,
}

/// Binds the admin port; serving runs in the background until the process exits.
pub async fn start(
    addr: &str,
    state: Arc<AdminState>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on admin address {addr}: {e}"))?;
    tracing::info!(addr = %listener.local_addr()?, "admin HTTP (metrics, healthz, readyz)");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let (state, metrics) = (state.clone(), metrics.clone());
            tokio::spawn(async move {
                let _ = tokio::time::timeout(
                    Duration::from_secs(10),
                    respond(stream, &state, &metrics),
                )
                .await;
            });
        }
    });
    Ok(())
}

/// `caskade probe`: GETs `/healthz` (or `/readyz`) from the admin port at `addr`;
/// `Ok` if it answered 200 within `timeout`, else why not.
pub fn probe(addr: &str, ready: bool, timeout: Duration) -> Result<(), String> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let path = if ready { "/readyz" } else { "/healthz" };
    let target = addr
        .to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr}: no address"))?;
    let mut s = std::net::TcpStream::connect_timeout(&target, timeout)
        .map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .and_then(|()| s.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("{addr}: {e}"))?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .map_err(|e| format!("{addr}: {e}"))?;
    let mut answer = Vec::new();
    // The responder closes after one answer; a short read is still an answer.
    let _ = s.take(4096).read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    let status = text.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else if status.is_empty() {
        Err(format!("{addr}{path}: no answer"))
    } else {
        Err(format!("{addr}{path}: {status}"))
    }
}

async fn respond(
    mut stream: TcpStream,
    state: &AdminState,
    metrics: &Metrics,
) -> std::io::Result<()> {
    let mut req = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || req.len() > 8192 {
            return Ok(());
        }
        req.extend_from_slice(&buf[..n]);
    }
    let line = req.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let path = path.split(|&b| b == b'?').next().unwrap_or_default();
    let ready = state.ready.load(Ordering::Acquire);
    let (status, ctype, body) = match (method, path) {
        (b"GET", b"/metrics") => ("200 OK", "text/plain; version=0.0.4", {
            let shared = state.shared.get();
            if let Some(s) = shared {
                crate::export::export(s);
            }
            metrics.render(shared.map(|s| &s.cmdstats))
        }),
        (b"GET", b"/healthz") => ("200 OK", "text/plain", "ok\n".to_string()),
        (b"GET", b"/readyz") if ready => ("200 OK", "text/plain", "ready\n".to_string()),
        (b"GET", b"/readyz") => (
            "503 Service Unavailable",
            "text/plain",
            "recovering\n".to_string(),
        ),
        (b"GET", _) => ("404 Not Found", "text/plain", "not found\n".to_string()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n".to_string(),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
