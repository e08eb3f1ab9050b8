//! State shared by every connection: the store (engine and key locks), the
//! configuration, server counters, the SLOWLOG, and the registry of connected clients
//! (CLIENT LIST/KILL).

use crate::config::Config;
use crate::store::Store;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// Server-wide counters for INFO.
#[derive(Default)]
pub struct ServerStats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Connections refused at max_clients.
    pub rejected: AtomicU64,
    /// Bytes the connections' read and write buffers hold (INFO `mem_clients_normal`).
    pub client_buffer_bytes: AtomicU64,
    /// Records read ahead of a command with io_uring (they were not in the page cache).
    pub uring_reads: AtomicU64,
}

/// What CLIENT LIST shows of one connection.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// Peer address.
    pub addr: String,
    /// CLIENT SETNAME.
    pub name: String,
    /// SELECTed database.
    pub db: u8,
    /// 2 or 3.
    pub resp: u8,
    /// CLIENT SETINFO LIB-NAME / LIB-VER.
    pub lib_name: String,
    /// See `lib_name`.
    pub lib_ver: String,
}

/// One connected client, as the registry holds it.
pub struct ClientHandle {
    /// CLIENT ID.
    pub id: u64,
    /// When it connected.
    pub since: Instant,
    /// What CLIENT LIST shows.
    pub info: Mutex<ClientInfo>,
    /// Set by CLIENT KILL; the connection closes before its next command.
    pub killed: AtomicBool,
    /// Wakes the connection so a kill takes effect while it waits for input.
    pub wake: tokio::sync::Notify,
    /// Whether it waits in a blocking command (CLIENT LIST's `b` flag).
    pub blocked: AtomicBool,
    /// Set by CLIENT UNBLOCK: how the blocked command ends (see [`Unblock`]).
    pub unblock: std::sync::atomic::AtomicU8,
    /// The last command's place in the command table, plus one (0: none yet), and in
    /// the upper 16 bits its subcommand's place among its container's, plus one (see
    /// [`crate::cmd::docs::subcommand_at`]). Kept apart from `info`: every command
    /// sets it, and a store costs no lock.
    pub last_cmd: std::sync::atomic::AtomicU32,
}

/// How CLIENT UNBLOCK ends a blocked command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Unblock {
    /// As if its timeout had passed.
    Timeout = 1,
    /// With `-UNBLOCKED`.
    Error = 2,
}

impl ClientHandle {
    /// Ends the client's blocked command `how`; whether it was blocked.
    pub fn unblock(&self, how: Unblock) -> bool {
        if !self.blocked.load(Ordering::Acquire) {
            return false;
        }
        self.unblock.store(how as u8, Ordering::Release);
        self.wake.notify_one();
        true
    }

    /// The CLIENT UNBLOCK waiting to be acted on, if any (taken).
    pub fn take_unblock(&self) -> Option<Unblock> {
        match self.unblock.swap(0, Ordering::AcqRel) {
            1 => Some(Unblock::Timeout),
            2 => Some(Unblock::Error),
            _ => None,
        }
    }
}

/// One admitted connection's place under `max_clients`.
pub struct Seat(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Seat {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One SLOWLOG entry.
#[derive(Debug, Clone)]
pub struct SlowEntry {
    /// Increasing id.
    pub id: u64,
    /// Unix seconds when the command ran.
    pub at: u64,
    /// How long it took, in microseconds.
    pub micros: u64,
    /// The command and up to 31 arguments, each cut to 128 bytes.
    pub args: Vec<bytes::Bytes>,
    /// Client address and name.
    pub client: (String, String),
}

/// Commands slower than the threshold, newest first, at most `SLOWLOG_MAX` of them.
#[derive(Default)]
pub struct SlowLog {
    /// The entries.
    pub entries: Mutex<std::collections::VecDeque<SlowEntry>>,
    /// The next id.
    pub next_id: AtomicU64,
}

/// Redis' `slowlog-max-len` default.
pub const SLOWLOG_MAX: usize = 128;
/// Redis' `slowlog-log-slower-than` default, in microseconds.
pub const SLOWLOG_SLOWER_THAN_US: u64 = 10_000;

/// Everything connections share.
pub struct Shared {
    /// The engine and its key locks.
    pub store: Arc<Store>,
    /// The configuration in force.
    pub config: Mutex<Config>,
    /// Counters.
    pub stats: ServerStats,
    /// Connected clients by id.
    pub clients: Mutex<BTreeMap<u64, Arc<ClientHandle>>>,
    next_client_id: AtomicU64,
    /// Connections admitted and not yet closed (what `max_clients` bounds).
    admitted: Arc<std::sync::atomic::AtomicUsize>,
    /// When the server started.
    pub started: Instant,
    /// Unix seconds of the start (LASTSAVE before the first sync).
    pub last_save: AtomicU64,
    /// SLOWLOG.
    pub slowlog: SlowLog,
    /// The WebAssembly plugins, if any are configured.
    pub plugins: Option<Arc<crate::plugins::Plugins>>,
    /// Read-through routes, if any are configured.
    pub read_through: Option<Arc<crate::origin::ReadThrough>>,
    /// Which clients WATCH which keys.
    pub watches: crate::watch::Watches,
    /// Which clients are blocked on which keys.
    pub blocked: crate::blocking::Blocked,
    /// The script cache and the scripts running now.
    pub scripts: Arc<crate::script::Scripts>,
    /// The clients in MONITOR mode.
    pub monitors: crate::monitor::Monitors,
    /// Notified by SHUTDOWN: the server drains and stops as on SIGTERM.
    pub shutdown: tokio::sync::Notify,
    /// How clients are served (after any fallback), and by how many threads.
    pub serving: std::sync::OnceLock<(crate::config::IoMode, usize)>,
    /// The io_uring reader thread, in `hybrid` mode.
    pub reader: std::sync::OnceLock<crate::uring::Reader>,
    /// INFO commandstats and errorstats.
    pub cmdstats: crate::cmdstats::CommandStats,
    /// Function libraries (kept in the data directory).
    pub functions: crate::script::functions::Functions,
}

/// Where the function libraries are kept, in the data directory.
pub const FUNCTIONS_FILE: &str = "FUNCTIONS";

impl Shared {
    /// Wraps an open engine.
    pub fn new(
        store: Arc<Store>,
        config: Config,
        plugins: Option<Arc<crate::plugins::Plugins>>,
        read_through: Option<Arc<crate::origin::ReadThrough>>,
    ) -> Self {
        let started_ms = store.engine.now_ms();
        let functions = crate::script::functions::Functions::open(Some(
            config.storage.dir.join(FUNCTIONS_FILE),
        ));
        Shared {
            store,
            config: Mutex::new(config),
            stats: ServerStats::default(),
            clients: Mutex::new(BTreeMap::new()),
            next_client_id: AtomicU64::new(1),
            admitted: Arc::default(),
            started: Instant::now(),
            last_save: AtomicU64::new(started_ms / 1000),
            slowlog: SlowLog::default(),
            plugins,
            read_through,
            watches: crate::watch::Watches::default(),
            blocked: crate::blocking::Blocked::default(),
            scripts: Arc::default(),
            monitors: crate::monitor::Monitors::default(),
            shutdown: tokio::sync::Notify::new(),
            serving: std::sync::OnceLock::new(),
            reader: std::sync::OnceLock::new(),
            cmdstats: crate::cmdstats::CommandStats::new(crate::cmd::stat_slots()),
            functions,
        }
    }

    /// Admits one more connection unless `max` are open; the seat is given back when
    /// dropped (when the connection ends).
    pub fn admit(&self, max: usize) -> Option<Seat> {
        let n = self.admitted.fetch_add(1, Ordering::AcqRel);
        if n >= max {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Seat(self.admitted.clone()))
    }

    /// Registers a new client and returns its handle.
    pub fn register(&self, addr: String) -> Arc<ClientHandle> {
        let id = self.next_client_id.fetch_add(1, Ordering::Relaxed);
        let h = Arc::new(ClientHandle {
            id,
            since: Instant::now(),
            info: Mutex::new(ClientInfo {
                addr,
                resp: 2,
                ..ClientInfo::default()
            }),
            killed: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            blocked: AtomicBool::new(false),
            unblock: std::sync::atomic::AtomicU8::new(0),
            last_cmd: std::sync::atomic::AtomicU32::new(0),
        });
        self.clients.lock().insert(id, h.clone());
        h
    }

    /// Forgets a client that disconnected.
    pub fn unregister(&self, id: u64) {
        self.clients.lock().remove(&id);
    }

    /// Connected clients.
    pub fn client_count(&self) -> usize {
        self.clients.lock().len()
    }
}

#[cfg(test)]
pub mod testing {
    //! A server's shared state over a fresh engine, without listeners.
    use super::*;

    /// Default configuration, a temporary engine, no plugins; keep the directory alive.
    pub fn shared() -> (tempfile::TempDir, Arc<Shared>) {
        let (dir, store) = crate::store::testing::store();
        (dir, over(store))
    }

    /// [`shared`] over an engine on `storage` (e.g. the engine's fault-injecting one).
    pub fn shared_on(storage: Arc<dyn caskade_engine::io::Storage>) -> Arc<Shared> {
        shared_with(storage, caskade_engine::Fsync::Never)
    }

    /// [`shared_on`] with an fsync policy; the server's configuration says the same.
    pub fn shared_with(
        storage: Arc<dyn caskade_engine::io::Storage>,
        fsync: caskade_engine::Fsync,
    ) -> Arc<Shared> {
        let mut opts = caskade_engine::Options::new("/data");
        opts.storage = storage;
        opts.fsync = fsync;
        let engine = caskade_engine::Engine::open(opts).expect("open");
        let sh = over(crate::store::Store::new(engine));
        sh.config.lock().storage.fsync = fsync;
        sh
    }

    #[test]
    fn seats_are_exact_and_given_back() {
        let (_d, sh) = shared();
        let seats: Vec<Seat> = (0..3).filter_map(|_| sh.admit(3)).collect();
        assert_eq!(seats.len(), 3);
        assert!(sh.admit(3).is_none(), "the fourth is refused");
        drop(seats);
        assert!(sh.admit(3).is_some());
    }

    fn over(store: crate::store::Store) -> Arc<Shared> {
        Arc::new(Shared::new(Arc::new(store), Config::default(), None, None))
    }
}
