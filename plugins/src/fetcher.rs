//! An origin fetcher implemented by a WebAssembly component. Fetches run as async calls
//! (a fetcher waiting on its origin holds no thread), each on an instance of a small
//! per-route pool, under the route's timeout (queueing included) and memory limit. The
//! instance gets WASI with nothing granted (no files, sockets, environment or stdio)
//! except `wasi:http` through the route's [`HostRule`] gate. An instance that traps or
//! times out is thrown away; a plugin error is an answer, and its instance is reused.

use crate::bindings::fetcher::exports::caskade::plugin::origin_fetcher::{
    CachedEntry, FetchOutcome,
};
use crate::bindings::fetcher::{OriginFetcherPlugin, OriginFetcherPluginPre};
use crate::error::Error;
use crate::http_gate::{Gate, HostRule};
use crate::runtime::{HasLimiter, Limiter};
use crate::runtime::{Runtime, classify};
use crate::stats::PluginStats;
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use wasmtime::Store;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// How a route runs its fetcher.
#[derive(Debug, Clone)]
pub struct FetcherOptions {
    /// The route's settings, handed to the plugin's `init`.
    pub settings: Vec<(String, String)>,
    /// Hosts the fetcher may reach.
    pub allowed_hosts: Vec<HostRule>,
    /// Longest one fetch may take, waiting for a free instance included.
    pub timeout: Duration,
    /// Most linear memory one instance may hold.
    pub memory_bytes: usize,
    /// Fetches running at once (and instances kept); more wait their turn.
    pub max_concurrent: usize,
}

/// What the cache holds for a key being revalidated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    /// The stored ETag.
    pub etag: Option<String>,
    /// Milliseconds since the value was fetched.
    pub age_ms: u64,
}

/// What a fetch produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new value, its freshness (`None`: the route's TTL) and ETag.
    Fresh {
        /// The value.
        value: Vec<u8>,
        /// Freshness in milliseconds, if the origin said.
        ttl_ms: Option<u64>,
        /// The origin's ETag.
        etag: Option<String>,
    },
    /// The cached value is unchanged; fresh for this long (`None`: the route's TTL).
    NotModified {
        /// Freshness in milliseconds, if the origin said.
        ttl_ms: Option<u64>,
    },
    /// The origin has no such key; remember for this long (`None`: the route's).
    NotFound {
        /// How long to remember, in milliseconds, if the origin said.
        ttl_ms: Option<u64>,
    },
}

/// Why a fetch produced no outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The fetch (queueing included) ran past the route's timeout.
    #[error("timed out after {0} ms")]
    Timeout(u64),
    /// The fetcher tried to reach a host the route does not allow.
    #[error("request to {host} refused: the host is not in the route's allowed_hosts")]
    Refused {
        /// `host:port` it tried.
        host: String,
    },
    /// The fetcher reported an error (the origin failed, answered oddly, ...).
    #[error("{0}")]
    Failed(String),
    /// The fetcher refused its settings.
    #[error("invalid settings: {0}")]
    InvalidSettings(String),
    /// The fetcher trapped or hit its memory limit; its instance was discarded.
    #[error("the fetcher plugin {what}: {detail}")]
    Crashed {
        /// "trapped", "memory limit reached".
        what: &'static str,
        /// The runtime's message.
        detail: String,
    },
    /// No instance could be started.
    #[error("the fetcher plugin could not start: {0}")]
    Start(String),
}

pub(crate) struct FetchState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    gate: Gate,
    limiter: Limiter,
}

impl HasLimiter for FetchState {
    fn limiter(&mut self) -> &mut Limiter {
        &mut self.limiter
    }
}

impl WasiView for FetchState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for FetchState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.gate,
        }
    }
}

struct Live {
    store: Store<FetchState>,
    plugin: OriginFetcherPlugin,
    uses: u32,
}

/// An instance is replaced after this many fetches, so nothing a guest leaks (host
/// resources, heap fragmentation) accumulates without bound.
const MAX_USES: u32 = 10_000;

/// An origin fetcher plugin with its route's options.
pub struct WasmFetcher {
    name: String,
    runtime: Runtime,
    pre: OriginFetcherPluginPre<FetchState>,
    opts: FetcherOptions,
    rules: Arc<[HostRule]>,
    idle: Mutex<Vec<Live>>,
    permits: Semaphore,
    stats: Arc<PluginStats>,
}

fn describe(e: crate::bindings::fetcher::caskade::plugin::types::PluginError) -> FetchError {
    use crate::bindings::fetcher::caskade::plugin::types::PluginError as E;
    match e {
        E::InvalidSettings(s) => FetchError::InvalidSettings(s),
        E::Failed(s) => FetchError::Failed(s),
    }
}

impl WasmFetcher {
    /// Links `component` against WASI and `wasi:http`, checks it against the fetcher
    /// world, and starts one instance so bad settings fail here, at load time.
    pub async fn new(
        runtime: &Runtime,
        name: &str,
        component: &Component,
        opts: FetcherOptions,
        stats: Arc<PluginStats>,
    ) -> Result<WasmFetcher, Error> {
        let invalid = |e: wasmtime::Error| Error::Invalid {
            name: name.to_string(),
            reason: format!("{e:#}"),
        };
        let mut linker = Linker::<FetchState>::new(runtime.engine());
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(invalid)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(invalid)?;
        let pre = linker
            .instantiate_pre(component)
            .and_then(OriginFetcherPluginPre::new)
            .map_err(invalid)?;
        let f = WasmFetcher {
            name: name.to_string(),
            runtime: runtime.clone(),
            pre,
            rules: opts.allowed_hosts.clone().into(),
            permits: Semaphore::new(opts.max_concurrent.max(1)),
            opts,
            idle: Mutex::new(Vec::new()),
            stats,
        };
        let init_failed = |reason: String| Error::Init {
            name: name.to_string(),
            reason,
        };
        // An instance that never finishes starting must not hang the caller.
        let live = tokio::time::timeout(f.opts.timeout, f.instantiate())
            .await
            .map_err(|_| {
                init_failed(format!(
                    "did not start within the timeout ({} ms)",
                    f.opts.timeout.as_millis()
                ))
            })?
            .map_err(|e| init_failed(e.to_string()))?;
        f.idle.lock().push(live);
        Ok(f)
    }

    /// The plugin's counters.
    pub fn stats(&self) -> &Arc<PluginStats> {
        &self.stats
    }

    /// The plugin's name (its file).
    pub fn name(&self) -> &str {
        &self.name
    }

    async fn instantiate(&self) -> Result<Live, FetchError> {
        let wasi = WasiCtx::builder()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = FetchState {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            gate: Gate::new(self.rules.clone()),
            limiter: Limiter::new(self.opts.memory_bytes, 16),
        };
        let mut store: Store<FetchState> = self.runtime.new_store(state, &self.stats);
        // A guest that computes instead of waiting yields every tick, so it never holds
        // a worker thread; the fetch's timeout is what stops it.
        store.epoch_deadline_async_yield_and_update(1);
        store.set_epoch_deadline(1);
        let start = async {
            let plugin = self
                .pre
                .instantiate_async(&mut store)
                .await
                .map_err(|e| FetchError::Start(format!("{e:#}")))?;
            plugin
                .caskade_plugin_origin_fetcher()
                .call_init(&mut store, &self.opts.settings)
                .await
                .map_err(|e| FetchError::Start(format!("{e:#}")))?
                .map_err(describe)?;
            Ok::<_, FetchError>(plugin)
        };
        let plugin = start.await?;
        Ok(Live {
            store,
            plugin,
            uses: 0,
        })
    }

    /// Fetches `key`, revalidating `cached` if given. Never panics and never takes the
    /// caller down: whatever the plugin does ends as an [`Outcome`] or a [`FetchError`].
    pub async fn fetch(&self, key: &[u8], cached: Option<Cached>) -> Result<Outcome, FetchError> {
        let started = Instant::now();
        let deadline = started + self.opts.timeout;
        let result =
            match tokio::time::timeout_at(deadline.into(), self.fetch_inner(key, cached, deadline))
                .await
            {
                Ok(r) => r,
                Err(_) => {
                    PluginStats::bump(&self.stats.timeouts);
                    Err(FetchError::Timeout(self.opts.timeout.as_millis() as u64))
                }
            };
        self.stats
            .call_nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        result
    }

    async fn fetch_inner(
        &self,
        key: &[u8],
        cached: Option<Cached>,
        deadline: Instant,
    ) -> Result<Outcome, FetchError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| FetchError::Start(e.to_string()))?;
        let idle = self.idle.lock().pop();
        let mut live = match idle {
            Some(l) => l,
            None => self.instantiate().await?,
        };
        {
            let gate = &mut live.store.data_mut().gate;
            gate.deadline = deadline;
            gate.denied = None;
        }
        live.store.set_epoch_deadline(1);
        live.uses += 1;
        PluginStats::bump(&self.stats.calls);
        let cached = cached.map(|c| CachedEntry {
            etag: c.etag,
            age_ms: c.age_ms,
        });
        let result = live
            .plugin
            .caskade_plugin_origin_fetcher()
            .call_fetch(&mut live.store, key, cached.as_ref())
            .await;
        let denied = live.store.data_mut().gate.denied.take();
        let answer = match result {
            Err(e) => {
                let what = classify(&e, &self.stats);
                tracing::warn!(plugin = %self.name, error = %format!("{e:#}"), "fetcher {what}; discarding its instance");
                // A trapped instance is never reused.
                return Err(FetchError::Crashed {
                    what,
                    detail: format!("{e:#}"),
                });
            }
            Ok(answer) => answer,
        };
        if live.uses < MAX_USES {
            self.idle.lock().push(live);
        }
        if let Some(host) = denied {
            return Err(FetchError::Refused { host });
        }
        match answer {
            Ok(FetchOutcome::Fresh(v)) => Ok(Outcome::Fresh {
                value: v.value,
                ttl_ms: v.ttl_ms,
                etag: v.etag,
            }),
            Ok(FetchOutcome::NotModified(ttl_ms)) => Ok(Outcome::NotModified { ttl_ms }),
            Ok(FetchOutcome::NotFound(ttl_ms)) => Ok(Outcome::NotFound { ttl_ms }),
            Err(e) => Err(describe(e)),
        }
    }
}
