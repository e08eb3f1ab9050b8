//! io_uring: the server of `server.io: uring` (one tokio-uring runtime per thread,
//! each accepting on its own `SO_REUSEPORT` TCP listener and on a share of the Unix
//! socket, serving its connections with completion-based reads and writes), and the
//! reader thread of `hybrid`. Both read the records a command deferred (neither in
//! memory nor in the page cache) on a ring, so a device read never holds a thread
//! that serves clients.

use crate::conn;
use crate::state::Shared;
use crate::transport::Transport;
use bytes::BytesMut;
use caskade_engine::{FileToken, RecordRead};
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// Whether io_uring can be used here; the kernel's refusal otherwise (seccomp
/// filters, `kernel.io_uring_disabled`, old kernels). A ring of its own, not a runtime:
/// this may run inside another runtime.
pub fn probe() -> Result<(), String> {
    io_uring::IoUring::new(8)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The serving threads, until told to stop.
pub struct Threads {
    stop: watch::Sender<bool>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl Threads {
    /// Starts one runtime per TCP listener (or `threads` of them, for a Unix socket
    /// alone); each serves what it accepts.
    pub fn start(
        shared: &Arc<Shared>,
        tcp: Vec<std::net::TcpListener>,
        unix: Option<&std::os::unix::net::UnixListener>,
        threads: usize,
    ) -> io::Result<Threads> {
        let (stop, stopped) = watch::channel(false);
        let mut tcp = tcp.into_iter();
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let unix = unix.map(|u| u.try_clone()).transpose()?;
            let tcp = tcp.next();
            let shared = shared.clone();
            let stopped = stopped.clone();
            let h = std::thread::Builder::new()
                .name(format!("caskade-uring-{i}"))
                .spawn(move || serve_thread(shared, tcp, unix, stopped))?;
            handles.push(h);
        }
        Ok(Threads { stop, handles })
    }

    /// Tells every thread to stop accepting and drain, and waits for them.
    pub fn stop(self) {
        let _ = self.stop.send(true);
        for h in self.handles {
            let _ = h.join();
        }
    }
}

/// An accepted connection, on its way from an accept task to the serving loop.
enum Accepted {
    Tcp(tokio_uring::net::TcpStream, String),
    Unix(tokio_uring::net::UnixStream),
}

fn serve_thread(
    shared: Arc<Shared>,
    tcp: Option<std::net::TcpListener>,
    unix: Option<std::os::unix::net::UnixListener>,
    mut stopped: watch::Receiver<bool>,
) {
    let rt = match tokio_uring::Runtime::new(&tokio_uring::builder()) {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start an io_uring runtime; this thread serves nothing");
            return;
        }
    };
    rt.block_on(async move {
        let (tx, mut rx) = mpsc::unbounded_channel();
        // Accepts run as tasks of their own: an accept cancelled by the serving loop's
        // select! could lose a connection the kernel had already handed over.
        let mut acceptors = JoinSet::new();
        if let Some(l) = tcp {
            let l = tokio_uring::net::TcpListener::from_std(l);
            let tx = tx.clone();
            acceptors.spawn_local(async move {
                loop {
                    match l.accept().await {
                        Ok((s, a)) => {
                            let _ = s.set_nodelay(true);
                            if tx.send(Accepted::Tcp(s, a.to_string())).is_err() {
                                return;
                            }
                        }
                        Err(e) => backoff(e).await,
                    }
                }
            });
        }
        if let Some(l) = unix {
            let l = l
                .set_nonblocking(true)
                .and_then(|()| tokio::net::UnixListener::from_std(l));
            match l {
                Ok(l) => {
                    let tx = tx.clone();
                    acceptors.spawn_local(async move {
                        loop {
                            let s = match l.accept().await {
                                Ok((s, _)) => s.into_std().and_then(|s| {
                                    // io_uring waits for data itself; a non-blocking
                                    // socket would answer EAGAIN instead.
                                    s.set_nonblocking(false)?;
                                    Ok(s)
                                }),
                                Err(e) => Err(e),
                            };
                            match s {
                                Ok(s) => {
                                    let s = tokio_uring::net::UnixStream::from_std(s);
                                    if tx.send(Accepted::Unix(s)).is_err() {
                                        return;
                                    }
                                }
                                Err(e) => backoff(e).await,
                            }
                        }
                    });
                }
                Err(e) => tracing::error!(error = %e, "cannot accept on the Unix socket"),
            }
        }
        drop(tx);
        let mut conns = JoinSet::new();
        let mut sweep = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                r = stopped.changed() => if r.is_err() || *stopped.borrow() { break },
                Some(a) = rx.recv() => admit(&shared, &mut conns, a),
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                _ = sweep.tick() => files::sweep(),
            }
        }
        acceptors.abort_all();
        // The main thread has told every client to finish (killed and woken).
        let _ = tokio::time::timeout(crate::server::DRAIN, async {
            while conns.join_next().await.is_some() {}
        })
        .await;
        conns.abort_all();
        while conns.join_next().await.is_some() {}
        files::clear();
    });
}

async fn backoff(e: io::Error) {
    tracing::warn!(error = %e, "accept failed");
    // Errors such as EMFILE repeat immediately.
    tokio::time::sleep(Duration::from_millis(50)).await;
}

fn admit(shared: &Arc<Shared>, conns: &mut JoinSet<()>, a: Accepted) {
    let (stream, addr) = match a {
        Accepted::Tcp(s, addr) => (Stream::Tcp(s), addr),
        Accepted::Unix(s) => (Stream::Unix(s), "unix".to_string()),
    };
    let mut conn = UringConn::new(shared.clone(), stream);
    let Some(seat) = crate::server::seat(shared) else {
        conns.spawn_local(async move {
            let mut out = BytesMut::from(&b"-ERR max number of clients reached\r\n"[..]);
            let _ = conn.write_all(&mut out).await;
            conn.shutdown().await;
        });
        return;
    };
    let shared = shared.clone();
    conns.spawn_local(async move {
        conn::serve_on(shared, conn, addr).await;
        drop(seat);
    });
}

enum Stream {
    Tcp(tokio_uring::net::TcpStream),
    Unix(tokio_uring::net::UnixStream),
}

impl Stream {
    async fn read(&self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        match self {
            Stream::Tcp(s) => s.read(buf).await,
            Stream::Unix(s) => s.read(buf).await,
        }
    }

    async fn write_all(&self, buf: BytesMut) -> (io::Result<()>, BytesMut) {
        match self {
            Stream::Tcp(s) => s.write_all(buf).await,
            Stream::Unix(s) => s.write_all(buf).await,
        }
    }

    fn shutdown(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Write),
        };
    }
}

type PendingRead = Pin<Box<dyn Future<Output = (io::Result<usize>, Vec<u8>)>>>;

/// A connection over io_uring. A read owns its buffer until the kernel completes it,
/// so a read the connection stops waiting for (a wake-up won the select!) stays
/// pending here and is collected by the next call: no bytes are lost.
pub struct UringConn {
    shared: Arc<Shared>,
    stream: Rc<Stream>,
    pending: Option<PendingRead>,
    /// The buffer reads land in, kept between reads.
    spare: Vec<u8>,
}

impl UringConn {
    fn new(shared: Arc<Shared>, stream: Stream) -> Self {
        UringConn {
            shared,
            stream: Rc::new(stream),
            pending: None,
            spare: Vec::new(),
        }
    }
}

impl Transport for UringConn {
    async fn read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        let pending = self.pending.get_or_insert_with(|| {
            let want = (buf.capacity() - buf.len()).max(1);
            let mut spare = std::mem::take(&mut self.spare);
            spare.clear();
            if spare.capacity() < want || spare.capacity() > 4 * want {
                spare = Vec::with_capacity(want);
            }
            let stream = self.stream.clone();
            Box::pin(async move { stream.read(spare).await })
        });
        let (r, spare) = pending.await;
        self.pending = None;
        let n = r?;
        buf.extend_from_slice(spare.get(..n).unwrap_or_default());
        self.spare = spare;
        Ok(n)
    }

    async fn write_all(&mut self, out: &mut BytesMut) -> io::Result<()> {
        let (r, buf) = self.stream.write_all(std::mem::take(out)).await;
        *out = buf;
        r
    }

    async fn shutdown(&mut self) {
        self.stream.shutdown();
    }

    fn reads_ahead(&self) -> bool {
        true
    }

    async fn read_records(&mut self, reads: Vec<RecordRead>) -> Vec<RecordRead> {
        read_here(reads, &self.shared).await
    }
}

/// Reads `reads` that are not filled yet on this thread's ring, side by side. A failed
/// read is left unfilled: the command then reads the record itself, meets the failure
/// again and says so.
async fn read_here(mut reads: Vec<RecordRead>, shared: &Shared) -> Vec<RecordRead> {
    let mut tasks = Vec::new();
    for (i, r) in reads.iter().enumerate() {
        if r.is_ready() {
            continue;
        }
        let Some(file) = files::get(r) else {
            continue;
        };
        let (len, off) = (r.len(), r.offset());
        let read = async move { file.read_exact_at(Vec::with_capacity(len), off).await };
        tasks.push((i, tokio::task::spawn_local(read)));
    }
    for (i, task) in tasks {
        if let Ok((Ok(()), bytes)) = task.await
            && let Some(r) = reads.get_mut(i)
        {
            r.fill(bytes);
            shared.stats.uring_reads.fetch_add(1, Ordering::Relaxed);
        }
    }
    reads
}

/// The io_uring reader thread of `hybrid` mode: connections served by tokio's runtime
/// hand it the records their commands would wait for, and await them filled. A clone
/// is a handle to the same thread, which ends when the last handle is dropped.
#[derive(Clone)]
pub struct Reader {
    jobs: mpsc::UnboundedSender<(
        Vec<RecordRead>,
        tokio::sync::oneshot::Sender<Vec<RecordRead>>,
    )>,
}

impl Reader {
    /// Starts the thread (with its own ring).
    pub fn start(shared: &Arc<Shared>) -> io::Result<Reader> {
        let (tx, mut rx) = mpsc::unbounded_channel::<(
            Vec<RecordRead>,
            tokio::sync::oneshot::Sender<Vec<RecordRead>>,
        )>();
        // Weak: the thread must not keep the server's state alive after shutdown.
        let shared = Arc::downgrade(shared);
        let (started, up) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("caskade-reader".into())
            .spawn(move || {
                // The ring belongs to the thread that made it.
                let rt = match tokio_uring::Runtime::new(&tokio_uring::builder()) {
                    Ok(rt) => {
                        let _ = started.send(Ok(()));
                        rt
                    }
                    Err(e) => {
                        let _ = started.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    let mut sweep = tokio::time::interval(Duration::from_secs(1));
                    loop {
                        tokio::select! {
                            job = rx.recv() => {
                                let Some((reads, done)) = job else { break };
                                let Some(shared) = shared.upgrade() else { break };
                                tokio::task::spawn_local(async move {
                                    let _ = done.send(read_here(reads, &shared).await);
                                });
                            }
                            _ = sweep.tick() => files::sweep(),
                        }
                    }
                    files::clear();
                });
            })?;
        up.recv()
            .map_err(|_| io::Error::other("the reader thread ended at start"))??;
        Ok(Reader { jobs: tx })
    }

    /// `reads`, filled where the reads succeeded.
    pub async fn read(&self, reads: Vec<RecordRead>) -> Vec<RecordRead> {
        let (done, filled) = tokio::sync::oneshot::channel();
        // The job owns the reads; if the thread is gone they come back unfilled only
        // through the command's own read of each, so none is lost either way.
        if self.jobs.send((reads, done)).is_err() {
            return Vec::new();
        }
        filled.await.unwrap_or_default()
    }
}

/// Descriptors of segment files for this thread's io_uring reads, by segment.
mod files {
    use super::*;

    thread_local! {
        static OPEN: RefCell<HashMap<u32, (FileToken, Rc<tokio_uring::fs::File>)>> =
            RefCell::new(HashMap::new());
    }

    /// A descriptor of `r`'s segment file, opened on first use.
    pub fn get(r: &RecordRead) -> Option<Rc<tokio_uring::fs::File>> {
        OPEN.with(|open| {
            let mut open = open.borrow_mut();
            if let Some((token, file)) = open.get(&r.segment())
                && token.names(r)
            {
                return Some(file.clone());
            }
            let file = match r.open_file()? {
                Ok(f) => Rc::new(tokio_uring::fs::File::from_std(f)),
                Err(e) => {
                    tracing::warn!(error = %e, segment = r.segment(), "cannot open a segment for io_uring reads");
                    return None;
                }
            };
            open.insert(r.segment(), (r.file_token(), file.clone()));
            Some(file)
        })
    }

    /// Closes the descriptors of segments the engine has dropped (compacted away):
    /// an open descriptor would keep a deleted file's blocks on the disk.
    pub fn sweep() {
        OPEN.with(|open| open.borrow_mut().retain(|_, (token, _)| token.is_open()));
    }

    /// Closes them all, as the thread ends.
    pub fn clear() {
        OPEN.with(|open| open.borrow_mut().clear());
    }
}
