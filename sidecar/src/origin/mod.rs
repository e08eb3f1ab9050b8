//! Read-through caching: a miss on a routed key is filled from the origin by the
//! route's fetcher plugin. Fetches happen *before* a command's unit runs:
//! [`ReadThrough::prefetch`] looks at the command's routed keys, fetches what the engine
//! cannot answer (one shared fetch per key, however many clients wait) and hands back
//! [`Reads`], from which the command's synchronous apply answers; handlers never wait.

mod entry;
mod memo;
mod route;

use crate::config::RouteConfig;
use crate::store::{KeyspaceEvents, Store};
use bytes::Bytes;
use caskade_engine::Item;
use caskade_plugins::{Cached, Outcome};
pub use entry::Entry;
use parking_lot::Mutex;
use route::Answer;
pub use route::Route;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;

/// Why a read-through read failed; rendered as `ERR <text>` at the edge.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OriginError {
    /// The fetch's task ended without an answer (shutdown).
    #[error("origin fetch for '{key}' was abandoned")]
    Abandoned {
        /// The key, shown.
        key: String,
    },
    /// Reading what the engine holds failed.
    #[error("reading '{key}': {reason}")]
    Read {
        /// The key, shown.
        key: String,
        /// The engine's error.
        reason: String,
    },
    /// The fetcher failed (or timed out, or was refused a host).
    #[error("origin fetch for '{key}' failed: {reason}")]
    Fetch {
        /// The key, shown.
        key: String,
        /// The fetcher's error.
        reason: String,
    },
    /// The origin's value is over the engine's value limit.
    #[error("origin value for '{key}' is {len} bytes, over the {max}-byte limit")]
    TooLarge {
        /// The key, shown.
        key: String,
        /// The value's size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Storing the fetched value failed.
    #[error("storing '{key}': {reason}")]
    Store {
        /// The key, shown.
        key: String,
        /// The engine's error.
        reason: String,
    },
}

/// What a finished fetch means for the commands waiting on it.
#[derive(Debug, Clone)]
pub enum Fetched {
    /// The value (stored unless a client wrote the key meanwhile).
    Value(Bytes),
    /// The origin has no such key.
    NotFound,
    /// The fetch failed.
    Failed(OriginError),
}

/// How a routed key is to be answered, given what the engine holds and what (if
/// anything) was fetched for it. Pure: the caller counts and schedules.
#[derive(Debug)]
enum Decision {
    /// This value.
    Value(Bytes),
    /// No value.
    Miss,
    /// No value, from the remembered "not found" answers.
    NegativeHit,
    /// The fetch failed (or failed a moment ago) and nothing may be served instead.
    Failed(OriginError),
    /// A stale value inside the stale-while-revalidate window: serve it and refresh.
    Refresh(Bytes),
    /// A stale value served because the origin failed (stale-if-error).
    StaleOnError(Bytes),
    /// Only the origin can answer.
    Fetch,
}

/// What a route remembers of one key: a recent "not found", a recent failure.
trait Remembered {
    fn not_found(&self) -> bool;
    fn failure(&self) -> Option<OriginError>;
}

/// A route's memos, looked up for one key at one moment.
struct RouteMemory<'a> {
    route: &'a Route,
    db: u8,
    key: &'a Bytes,
    now: u64,
}

impl Remembered for RouteMemory<'_> {
    fn not_found(&self) -> bool {
        let r = self.route;
        r.negative.lock().get(self.db, self.key, self.now).is_some()
    }

    fn failure(&self) -> Option<OriginError> {
        let r = self.route;
        r.errors.lock().get(self.db, self.key, self.now)
    }
}

fn decide(
    cfg: &RouteConfig,
    memory: &dyn Remembered,
    item: Option<Item>,
    fetched: Option<&Fetched>,
    now: u64,
) -> Decision {
    let Some(item) = item else {
        return match fetched {
            Some(Fetched::Value(v)) => Decision::Value(v.clone()),
            Some(Fetched::NotFound) => Decision::Miss,
            Some(Fetched::Failed(e)) => Decision::Failed(e.clone()),
            None if memory.not_found() => Decision::NegativeHit,
            None => match memory.failure() {
                Some(e) => Decision::Failed(e),
                None => Decision::Fetch,
            },
        };
    };
    let Some(entry) = Entry::decode(&item.meta) else {
        // A client wrote this key: it is not the origin's to refresh.
        return Decision::Value(item.value);
    };
    if now < entry.fresh_until_ms {
        return Decision::Value(item.value);
    }
    let stale_for = now - entry.fresh_until_ms;
    // What this command fetched, or a failure of a moment ago (answered as it says
    // rather than asking the origin again).
    let known = match fetched {
        Some(f) => Some(f.clone()),
        None => memory.failure().map(Fetched::Failed),
    };
    if stale_for < cfg.stale_while_revalidate && fetched.is_none() {
        return if known.is_none() {
            Decision::Refresh(item.value)
        } else {
            Decision::StaleOnError(item.value)
        };
    }
    match known {
        Some(Fetched::Value(v)) => Decision::Value(v),
        Some(Fetched::NotFound) => Decision::Miss,
        Some(Fetched::Failed(_)) if stale_for < cfg.stale_if_error => {
            Decision::StaleOnError(item.value)
        }
        Some(Fetched::Failed(e)) => Decision::Failed(e),
        None => Decision::Fetch,
    }
}

/// One command's read-through answers: what was fetched for it before its unit ran,
/// what the engine showed then for the keys that needed no fetch, and what its reads
/// asked for (background refreshes, stale serves to count).
pub struct Reads {
    rt: Arc<ReadThrough>,
    fetched: HashMap<Bytes, Fetched>,
    /// Answers seen at prefetch for keys that needed no fetch: the fallback if the key
    /// changed (was deleted, evicted or went stale) between the prefetch and the apply,
    /// so a read never waits for a second round.
    seen: HashMap<Bytes, Option<Bytes>>,
    refresh: Vec<Bytes>,
    stale_on_error: Vec<Arc<Route>>,
}

impl Reads {
    /// The answer for `key`, which the engine holds as `item`, at `now`.
    pub fn answer(
        &mut self,
        db: u8,
        key: &Bytes,
        item: Option<Item>,
        now: u64,
    ) -> Result<Option<Bytes>, OriginError> {
        let Some(route) = self.rt.route_for(key).cloned() else {
            return Ok(item.map(|i| i.value));
        };
        let memory = RouteMemory {
            route: &route,
            db,
            key,
            now,
        };
        match decide(&route.cfg, &memory, item, self.fetched.get(key), now) {
            Decision::Value(v) => Ok(Some(v)),
            Decision::Miss => Ok(None),
            Decision::NegativeHit => {
                route.metrics.negative_hits.increment(1);
                Ok(None)
            }
            Decision::Failed(e) => Err(e),
            Decision::Refresh(v) => {
                self.refresh.push(key.clone());
                Ok(Some(v))
            }
            Decision::StaleOnError(v) => {
                self.stale_on_error.push(route);
                Ok(Some(v))
            }
            Decision::Fetch => Ok(self.seen.get(key).cloned().flatten()),
        }
    }

    /// Ends the command: counts its stale serves if its reply was not an error, and
    /// starts the background refreshes its reads asked for.
    pub fn finish(self, store: &Arc<Store>, db: u8, reply_ok: bool) {
        if reply_ok {
            for r in &self.stale_on_error {
                r.metrics.stale_on_error.increment(1);
            }
        }
        if !self.refresh.is_empty() {
            self.rt.refresh(store, db, self.refresh);
        }
    }
}

type FlightKey = (u8, Bytes);

/// The read-through routes of a server and the fetches under way.
pub struct ReadThrough {
    /// Longest prefix first, so the first match is the most specific.
    routes: Vec<Arc<Route>>,
    flights: Mutex<HashMap<FlightKey, watch::Sender<Option<Fetched>>>>,
}

fn show(key: &[u8]) -> String {
    String::from_utf8_lossy(&key[..key.len().min(128)]).into_owned()
}

impl ReadThrough {
    /// Routes in configuration order; the longest matching prefix wins.
    pub fn new(routes: Vec<Arc<Route>>) -> Self {
        let mut sorted = routes;
        sorted.sort_by_key(|r| std::cmp::Reverse(r.cfg.prefix.len()));
        ReadThrough {
            routes: sorted,
            flights: Mutex::new(HashMap::new()),
        }
    }

    /// The routes, longest prefix first.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// The route `key` belongs to.
    pub fn route_for(&self, key: &[u8]) -> Option<&Arc<Route>> {
        self.routes
            .iter()
            .find(|r| key.starts_with(r.cfg.prefix.as_bytes()))
    }

    /// Fetches in flight.
    pub fn in_flight(&self) -> usize {
        self.flights.lock().len()
    }

    /// Whether any of `keys` is routed.
    pub fn routes_any<'k>(&self, mut keys: impl Iterator<Item = &'k Bytes>) -> bool {
        keys.any(|k| self.route_for(k).is_some())
    }

    /// Prepares a command's reads of `keys` in database `db`: every routed key the
    /// engine cannot answer is fetched now (or joined, if a fetch is under way), so the
    /// command's apply answers without waiting.
    pub async fn prefetch<'k>(
        self: &Arc<Self>,
        store: &Arc<Store>,
        db: u8,
        keys: impl Iterator<Item = &'k Bytes>,
    ) -> Reads {
        let now = store.engine.now_ms();
        let mut need = Vec::new();
        let mut seen = HashMap::new();
        for key in keys {
            let Some(route) = self.route_for(key) else {
                continue;
            };
            // A read error is left for the apply, which meets it again and says so.
            let Ok(item) = store.engine.get_item(store.ns(db), key) else {
                continue;
            };
            let memory = RouteMemory {
                route,
                db,
                key,
                now,
            };
            match decide(&route.cfg, &memory, item, None, now) {
                Decision::Fetch => need.push(key.clone()),
                Decision::Value(v) | Decision::Refresh(v) | Decision::StaleOnError(v) => {
                    seen.insert(key.clone(), Some(v));
                }
                Decision::Miss | Decision::NegativeHit => {
                    seen.insert(key.clone(), None);
                }
                Decision::Failed(_) => {}
            }
        }
        let fetched = if need.is_empty() {
            HashMap::new()
        } else {
            self.resolve(store, db, need).await.into_iter().collect()
        };
        Reads {
            rt: self.clone(),
            fetched,
            seen,
            refresh: Vec::new(),
            stale_on_error: Vec::new(),
        }
    }

    /// Waits for every key in `keys` (starting fetches or joining those under way).
    async fn resolve(
        self: &Arc<Self>,
        store: &Arc<Store>,
        db: u8,
        mut keys: Vec<Bytes>,
    ) -> Vec<(Bytes, Fetched)> {
        keys.sort_unstable();
        keys.dedup();
        let waits: Vec<_> = keys
            .into_iter()
            .filter_map(|k| {
                let rx = self.join(store, db, k.clone(), false)?;
                Some((k, rx))
            })
            .collect();
        let mut out = Vec::with_capacity(waits.len());
        for (key, mut rx) in waits {
            let got = match rx.wait_for(Option::is_some).await {
                Ok(v) => v.clone().unwrap_or(Fetched::NotFound),
                Err(_) => Fetched::Failed(OriginError::Abandoned { key: show(&key) }),
            };
            out.push((key, got));
        }
        out
    }

    /// Starts background refreshes of stale keys that were just served (one per key,
    /// joining any fetch already under way).
    fn refresh(self: &Arc<Self>, store: &Arc<Store>, db: u8, mut keys: Vec<Bytes>) {
        keys.sort_unstable();
        keys.dedup();
        for k in keys {
            if let Some(r) = self.route_for(&k) {
                r.metrics.stale_revalidating.increment(1);
            }
            let _ = self.join(store, db, k, true);
        }
    }

    /// The receiver of the fetch of `key`, started here if none is under way.
    fn join(
        self: &Arc<Self>,
        store: &Arc<Store>,
        db: u8,
        key: Bytes,
        background: bool,
    ) -> Option<watch::Receiver<Option<Fetched>>> {
        let route = self.route_for(&key)?.clone();
        let mut flights = self.flights.lock();
        if let Some(tx) = flights.get(&(db, key.clone())) {
            if !background {
                route.metrics.coalesced.increment(1);
            }
            return Some(tx.subscribe());
        }
        let (tx, rx) = watch::channel(None);
        flights.insert((db, key.clone()), tx);
        drop(flights);
        let landing = Landing {
            rt: self.clone(),
            key: Some((db, key.clone())),
        };
        let store = store.clone();
        // The fetch runs in its own task: clients that give up do not cancel it for
        // the others, and its result is stored either way.
        tokio::spawn(async move {
            let result = fly(&store, &route, db, &key).await;
            landing.land(result);
        });
        Some(rx)
    }
}

/// Ends a flight: removes it and hands its result to the waiters. Dropped without
/// landing (the task was cancelled at shutdown), it tells them the fetch was abandoned,
/// so no one waits on a flight that will never end.
struct Landing {
    rt: Arc<ReadThrough>,
    key: Option<FlightKey>,
}

impl Landing {
    fn land(mut self, result: Fetched) {
        self.finish(result);
    }

    fn finish(&mut self, result: Fetched) {
        let Some(key) = self.key.take() else { return };
        // The outcome is stored before the flight ends, so a request arriving after
        // this finds it in the engine rather than starting another fetch.
        let tx = self.rt.flights.lock().remove(&key);
        if let Some(tx) = tx {
            tx.send_replace(Some(result));
        }
    }
}

impl KeyspaceEvents for ReadThrough {
    /// Forgets remembered "not found" answers and failures of the flushed database(s).
    fn flushed(&self, db: Option<u8>) {
        for r in &self.routes {
            r.negative.lock().clear(db);
            r.errors.lock().clear(db);
        }
    }
}

impl Drop for Landing {
    fn drop(&mut self) {
        if let Some((_, key)) = &self.key {
            let e = OriginError::Abandoned { key: show(key) };
            self.finish(Fetched::Failed(e));
        }
    }
}

/// One fetch of `key`: revalidates what the engine holds (with its ETag) or fetches it
/// anew, stores the outcome and says what it means for the waiting commands.
async fn fly(store: &Arc<Store>, route: &Route, db: u8, key: &Bytes) -> Fetched {
    let held = match store.engine.get_item(store.ns(db), key) {
        Ok(item) => item.and_then(|i| Entry::decode(&i.meta).map(|e| (i.value, e))),
        Err(e) => {
            return Fetched::Failed(OriginError::Read {
                key: show(key),
                reason: e.to_string(),
            });
        }
    };
    let now = || store.engine.now_ms();
    let cached = held.as_ref().map(|(_, e)| Cached {
        etag: e.etag.clone(),
        age_ms: now().saturating_sub(e.fetched_at_ms),
    });
    let fetcher = route.fetcher();
    let started = Instant::now();
    let outcome = fetcher.fetch(key, cached).await;
    route
        .metrics
        .latency
        .record(started.elapsed().as_secs_f64());
    let cfg = &route.cfg;
    let (answer, fetched) = match outcome {
        Ok(Outcome::Fresh {
            value,
            ttl_ms,
            etag,
        }) => {
            let value = Bytes::from(value);
            let ttl = ttl_ms.unwrap_or(cfg.ttl);
            let v = value.clone();
            let at = now();
            let stored = persist(store, route, db, key, move |_| {
                Some((v, Entry::fresh(at, ttl, etag)))
            })
            .await;
            match stored {
                Ok(()) => (Answer::Fresh, Fetched::Value(value)),
                Err(e) => (Answer::Fresh, Fetched::Failed(e)),
            }
        }
        Ok(Outcome::NotModified { ttl_ms }) => match held {
            Some((value, old)) => {
                let ttl = ttl_ms.unwrap_or(cfg.ttl);
                let at = now();
                // Only the entry revalidated is extended: the value already on disk
                // is kept, whatever a client or another fetch did meanwhile.
                let stored = persist(store, route, db, key, move |cur| {
                    let cur = cur?;
                    let e = Entry::decode(&cur.meta)?;
                    (e.etag == old.etag).then(|| (cur.value.clone(), Entry::fresh(at, ttl, e.etag)))
                })
                .await;
                match stored {
                    Ok(()) => (Answer::NotModified, Fetched::Value(value)),
                    Err(e) => (Answer::NotModified, Fetched::Failed(e)),
                }
            }
            None => (
                Answer::Error,
                Fetched::Failed(OriginError::Fetch {
                    key: show(key),
                    reason: "the fetcher answered not-modified but nothing was cached".into(),
                }),
            ),
        },
        Ok(Outcome::NotFound { ttl_ms }) => {
            let ttl = ttl_ms.unwrap_or(cfg.negative_ttl);
            // A stale copy the origin no longer has goes.
            let _ = remove_stale(store, db, key).await;
            if ttl > 0 {
                route
                    .negative
                    .lock()
                    .insert(db, key.clone(), now().saturating_add(ttl), ());
            }
            (Answer::NotFound, Fetched::NotFound)
        }
        Err(e) => {
            tracing::debug!(route = %cfg.prefix, key = %show(key), error = %e, "origin fetch failed");
            (
                Answer::of_error(&e),
                Fetched::Failed(OriginError::Fetch {
                    key: show(key),
                    reason: e.to_string(),
                }),
            )
        }
    };
    route.metrics.request(answer);
    match &fetched {
        Fetched::Failed(e) if cfg.retry_after_error > 0 => {
            let until = now().saturating_add(cfg.retry_after_error);
            route
                .errors
                .lock()
                .insert(db, key.clone(), until, e.clone());
        }
        _ => route.errors.lock().remove(db, key),
    }
    fetched
}

/// Stores what `decide` makes of the current item, under the key's stripe lock, unless
/// a client wrote the key since the fetch began (a value without read-through meta).
async fn persist(
    store: &Arc<Store>,
    route: &Route,
    db: u8,
    key: &Bytes,
    decide: impl FnOnce(Option<&Item>) -> Option<(Bytes, Entry)> + Send + 'static,
) -> Result<(), OriginError> {
    let (st, k) = (store.clone(), key.clone());
    let keep = route.cfg.keep_stale_ms();
    // Engine writes may wait for disk space or an fsync: keep them off the workers.
    let r = tokio::task::spawn_blocking(move || {
        let _g = st.locks.lock([&k[..]]);
        let cur = st.engine.get_item(st.ns(db), &k)?;
        if cur
            .as_ref()
            .is_some_and(|c| Entry::decode(&c.meta).is_none())
        {
            return Ok(());
        }
        let Some((value, entry)) = decide(cur.as_ref()) else {
            return Ok(());
        };
        let expire = entry.fresh_until_ms.saturating_add(keep);
        st.engine
            .put_item(db, &k, &value, Some(expire), &entry.encode())?;
        st.engine.flush_writes()
    })
    .await;
    let failed = |reason: String| OriginError::Store {
        key: show(key),
        reason,
    };
    match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(caskade_engine::Error::ValueTooLong { len, max })) => Err(OriginError::TooLarge {
            key: show(key),
            len,
            max,
        }),
        Ok(Err(e)) => Err(failed(e.to_string())),
        Err(e) => Err(failed(e.to_string())),
    }
}

/// Deletes a read-through entry of `key` (never a value a client wrote).
async fn remove_stale(store: &Arc<Store>, db: u8, key: &Bytes) -> Result<(), String> {
    let (st, k) = (store.clone(), key.clone());
    tokio::task::spawn_blocking(move || {
        let _g = st.locks.lock([&k[..]]);
        if let Some(cur) = st.engine.get_item(st.ns(db), &k)?
            && Entry::decode(&cur.meta).is_some()
        {
            st.engine.delete(st.ns(db), &k)?;
            st.engine.flush_writes()?;
        }
        Ok::<_, caskade_engine::Error>(())
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

/// Builds the routes of `cfgs` with their fetchers.
pub fn build(cfgs: &[RouteConfig], fetchers: Vec<caskade_plugins::WasmFetcher>) -> ReadThrough {
    let routes = cfgs
        .iter()
        .cloned()
        .zip(fetchers)
        .map(|(cfg, f)| Arc::new(Route::new(cfg, f)))
        .collect();
    ReadThrough::new(routes)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Memo {
        not_found: bool,
        failure: Option<OriginError>,
    }

    impl Remembered for Memo {
        fn not_found(&self) -> bool {
            self.not_found
        }

        fn failure(&self) -> Option<OriginError> {
            self.failure.clone()
        }
    }

    const NOTHING: Memo = Memo {
        not_found: false,
        failure: None,
    };

    fn failed() -> OriginError {
        OriginError::Fetch {
            key: "k".into(),
            reason: "down".into(),
        }
    }

    fn cfg() -> RouteConfig {
        let c = crate::config::Config::parse(
            "read_through:\n  routes:\n    - prefix: 'k'\n      fetcher: f.wasm\n      ttl: 10s\n      stale_while_revalidate: 5s\n      stale_if_error: 20s\n",
        )
        .expect("parses");
        c.read_through.routes[0].clone()
    }

    /// A read-through entry fetched at `fetched_at` with a 10 s TTL.
    fn entry(value: &str, fetched_at: u64) -> Item {
        Item {
            value: Bytes::copy_from_slice(value.as_bytes()),
            meta: Entry::fresh(fetched_at, 10_000, None).encode().into(),
            expire_at_ms: None,
            vtype: caskade_engine::ValueType::String,
        }
    }

    fn value(d: Decision) -> Option<String> {
        match d {
            Decision::Value(v) | Decision::Refresh(v) | Decision::StaleOnError(v) => {
                Some(String::from_utf8_lossy(&v).into_owned())
            }
            _ => None,
        }
    }

    #[test]
    fn misses_fetch_unless_remembered() {
        let c = cfg();
        assert!(matches!(
            decide(&c, &NOTHING, None, None, 0),
            Decision::Fetch
        ));
        let negative = Memo {
            not_found: true,
            failure: None,
        };
        assert!(matches!(
            decide(&c, &negative, None, None, 0),
            Decision::NegativeHit
        ));
        let failing = Memo {
            not_found: false,
            failure: Some(failed()),
        };
        assert!(matches!(
            decide(&c, &failing, None, None, 0),
            Decision::Failed(_)
        ));
        let got = Fetched::Value(Bytes::from_static(b"v"));
        assert_eq!(
            value(decide(&c, &NOTHING, None, Some(&got), 0)),
            Some("v".into())
        );
        assert!(matches!(
            decide(&c, &NOTHING, None, Some(&Fetched::NotFound), 0),
            Decision::Miss
        ));
        let bad = Fetched::Failed(failed());
        assert!(matches!(
            decide(&c, &NOTHING, None, Some(&bad), 0),
            Decision::Failed(_)
        ));
    }

    #[test]
    fn fresh_and_client_written_values_are_hits() {
        let c = cfg();
        let written = Item {
            value: Bytes::from_static(b"mine"),
            meta: Bytes::new(),
            expire_at_ms: None,
            vtype: caskade_engine::ValueType::String,
        };
        assert!(matches!(
            decide(&c, &NOTHING, Some(written), None, 1_000_000),
            Decision::Value(_)
        ));
        let d = decide(&c, &NOTHING, Some(entry("v", 1_000)), None, 5_000);
        assert!(matches!(d, Decision::Value(_)));
    }

    #[test]
    fn stale_values_follow_the_windows() {
        let c = cfg();
        // Fresh until 11_000; stale-while-revalidate to 16_000; stale-if-error to 31_000.
        let d = decide(&c, &NOTHING, Some(entry("old", 1_000)), None, 12_000);
        assert!(matches!(d, Decision::Refresh(_)), "{d:?}");
        let failing = Memo {
            not_found: false,
            failure: Some(failed()),
        };
        let d = decide(&c, &failing, Some(entry("old", 1_000)), None, 12_000);
        assert!(matches!(d, Decision::StaleOnError(_)), "{d:?}");
        let d = decide(&c, &NOTHING, Some(entry("old", 1_000)), None, 20_000);
        assert!(matches!(d, Decision::Fetch), "{d:?}");
        let bad = Fetched::Failed(failed());
        let d = decide(&c, &NOTHING, Some(entry("old", 1_000)), Some(&bad), 20_000);
        assert!(matches!(d, Decision::StaleOnError(_)), "{d:?}");
        let d = decide(&c, &NOTHING, Some(entry("old", 1_000)), Some(&bad), 40_000);
        assert!(matches!(d, Decision::Failed(_)), "{d:?}");
        let new = Fetched::Value(Bytes::from_static(b"new"));
        let d = decide(&c, &NOTHING, Some(entry("old", 1_000)), Some(&new), 20_000);
        assert_eq!(value(d), Some("new".into()));
        let d = decide(
            &c,
            &NOTHING,
            Some(entry("old", 1_000)),
            Some(&Fetched::NotFound),
            20_000,
        );
        assert!(matches!(d, Decision::Miss), "{d:?}");
    }
}
