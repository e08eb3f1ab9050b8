//! One read-through route at run time: its configuration, its fetcher (swapped on hot
//! reload; fetches in flight finish on the old one), what it remembers of "not found"
//! answers and failures, and its metric handles.

use super::memo::Memo;
use crate::config::RouteConfig;
use caskade_plugins::{FetchError, PluginStats, WasmFetcher};
use metrics::{Counter, Histogram, counter, histogram};
use parking_lot::{Mutex, RwLock};
use std::sync::Arc;

/// What became of one origin request, as counted by `caskade_origin_requests_total`.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    Fresh,
    NotModified,
    NotFound,
    Error,
    Timeout,
    Refused,
    Crashed,
}

const ANSWERS: [(Answer, &str); 7] = [
    (Answer::Fresh, "fresh"),
    (Answer::NotModified, "not_modified"),
    (Answer::NotFound, "not_found"),
    (Answer::Error, "error"),
    (Answer::Timeout, "timeout"),
    (Answer::Refused, "refused"),
    (Answer::Crashed, "crashed"),
];

impl Answer {
    /// How a failed fetch is counted.
    pub fn of_error(e: &FetchError) -> Answer {
        match e {
            FetchError::Timeout(_) => Answer::Timeout,
            FetchError::Refused { .. } => Answer::Refused,
            FetchError::Crashed { .. } | FetchError::Start(_) => Answer::Crashed,
            FetchError::Failed(_) | FetchError::InvalidSettings(_) => Answer::Error,
        }
    }
}

/// Metric handles of one route (label `route` = its prefix).
pub struct RouteMetrics {
    requests: Vec<Counter>,
    /// Fetch latency, seconds.
    pub latency: Histogram,
    /// Requests that joined a fetch already under way instead of starting one.
    pub coalesced: Counter,
    /// Stale values served while a background refresh runs.
    pub stale_revalidating: Counter,
    /// Stale values served because the origin failed.
    pub stale_on_error: Counter,
    /// Misses answered from the negative cache.
    pub negative_hits: Counter,
}

impl RouteMetrics {
    fn new(prefix: &str) -> Self {
        let p = prefix.to_string();
        RouteMetrics {
            requests: ANSWERS
                .iter()
                .map(|(_, name)| {
                    counter!("caskade_origin_requests_total", "route" => p.clone(), "result" => *name)
                })
                .collect(),
            latency: histogram!("caskade_origin_fetch_duration_seconds", "route" => p.clone()),
            coalesced: counter!("caskade_origin_coalesced_waiters_total", "route" => p.clone()),
            stale_revalidating: counter!("caskade_origin_stale_served_total", "route" => p.clone(), "reason" => "revalidating"),
            stale_on_error: counter!("caskade_origin_stale_served_total", "route" => p.clone(), "reason" => "origin_error"),
            negative_hits: counter!("caskade_origin_negative_hits_total", "route" => p),
        }
    }

    /// Counts one origin request.
    pub fn request(&self, r: Answer) {
        if let Some(c) = self.requests.get(r as usize) {
            c.increment(1);
        }
    }
}

/// A route with everything it needs at run time.
pub struct Route {
    /// Its configuration.
    pub cfg: RouteConfig,
    fetcher: RwLock<Arc<WasmFetcher>>,
    /// Remembered "not found" answers.
    pub negative: Mutex<Memo<()>>,
    /// Remembered failures: the error reply, until `retry_after_error` has passed.
    pub errors: Mutex<Memo<super::OriginError>>,
    /// Metric handles.
    pub metrics: RouteMetrics,
    /// The fetcher plugin's counters (the same across reloads).
    pub plugin_stats: Arc<PluginStats>,
}

impl Route {
    /// A route served by `fetcher` (and by the fetchers reloaded later, which count
    /// into the same counters).
    pub fn new(cfg: RouteConfig, fetcher: WasmFetcher) -> Self {
        Route {
            negative: Mutex::new(Memo::new(cfg.max_negative_entries)),
            errors: Mutex::new(Memo::new(cfg.max_negative_entries)),
            metrics: RouteMetrics::new(&cfg.prefix),
            plugin_stats: fetcher.stats().clone(),
            fetcher: RwLock::new(Arc::new(fetcher)),
            cfg,
        }
    }

    /// The current fetcher.
    pub fn fetcher(&self) -> Arc<WasmFetcher> {
        self.fetcher.read().clone()
    }

    /// Swaps in a reloaded fetcher.
    pub fn set_fetcher(&self, f: WasmFetcher) {
        *self.fetcher.write() = Arc::new(f);
    }
}
