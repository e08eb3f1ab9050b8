//! The byte stream a connection is served over, and the disk reads it may do ahead of
//! a command: tokio's readiness-based streams (reads straight into the connection's
//! buffer, records read by the command itself), or io_uring's (see `uring.rs`).

use bytes::BytesMut;
use caskade_engine::RecordRead;
use std::future::Future;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What `conn::serve` needs of a connection.
pub trait Transport {
    /// Appends what has arrived to `buf` (up to its spare capacity); `Ok(0)` at the
    /// end of the stream. Cancel-safe: a read cut short by another branch of a
    /// `select!` loses nothing (what it brings is delivered by the next call).
    fn read_buf(&mut self, buf: &mut BytesMut) -> impl Future<Output = io::Result<usize>>;

    /// Writes all of `out` (left as it was, for the caller to clear and reuse).
    fn write_all(&mut self, out: &mut BytesMut) -> impl Future<Output = io::Result<()>>;

    /// Ends the stream for the peer.
    fn shutdown(&mut self) -> impl Future<Output = ()>;

    /// Whether this transport reads records ahead of a command (so the command's own
    /// reads never wait for the device on the serving thread).
    fn reads_ahead(&self) -> bool {
        false
    }

    /// Does the reads a command deferred because they would wait for the device (see
    /// `caskade_engine::Engine::run_ahead`), returning them filled where it could.
    fn read_records(&mut self, reads: Vec<RecordRead>) -> impl Future<Output = Vec<RecordRead>>;
}

/// A tokio stream (TCP, Unix, or an in-memory duplex in tests), with the io_uring
/// reader thread when `server.io` is `hybrid`.
pub struct Tokio<S> {
    stream: S,
    reader: Option<crate::uring::Reader>,
}

impl<S> Tokio<S> {
    /// `stream`, whose commands' reads that would wait go to `reader` (or are done in
    /// place without one).
    pub fn with_reader(stream: S, reader: Option<crate::uring::Reader>) -> Self {
        Tokio { stream, reader }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Transport for Tokio<S> {
    async fn read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        self.stream.read_buf(buf).await
    }

    async fn write_all(&mut self, out: &mut BytesMut) -> io::Result<()> {
        self.stream.write_all(out).await
    }

    async fn shutdown(&mut self) {
        let _ = self.stream.shutdown().await;
    }

    fn reads_ahead(&self) -> bool {
        self.reader.is_some()
    }

    async fn read_records(&mut self, reads: Vec<RecordRead>) -> Vec<RecordRead> {
        match &self.reader {
            Some(r) => r.read(reads).await,
            None => reads,
        }
    }
}
