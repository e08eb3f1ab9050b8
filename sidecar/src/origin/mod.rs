//! Read-through caching: a miss on a routed key is filled from the origin by the
//! route's fetcher plugin. Command handlers stay synchronous: [`lookup`] answers from
//! the engine, remembered "not found" answers and failures, or the results fetched for
//! this command so far, and otherwise notes the key as pending; the connection then awaits [`ReadThrough::resolve`]
//! (one shared fetch per key, however many clients wait) and runs the command again.

mod entry;
mod memo;
mod route;

use crate::cmd::{Session, engine_error};
use crate::config::RouteConfig;
use crate::protocol::reply::Reply;
use crate::state::{Shared, now_ms};
use bytes::Bytes;
use caskade_plugins::{Cached, Outcome};
pub use entry::Entry;
use parking_lot::Mutex;
use route::Answer;
pub use route::Route;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;

/// What a finished fetch means for the commands waiting on it.
#[derive(Debug, Clone)]
pub enum Fetched {
    /// The value (stored unless a client wrote the key meanwhile).
    Value(Bytes),
    /// The origin has no such key.
    NotFound,
    /// The fetch failed; the error reply to give (unless a stale value may be served).
    Failed(String),
}

/// What [`lookup`] found.
#[derive(Debug)]
pub enum Lookup {
    /// A value to return.
    Hit(Bytes),
    /// No value (not routed, or the origin has none).
    Miss,
    /// A fetch is needed: the key was added to the session's pending list.
    Pending,
}

/// A connection's read-through bookkeeping for the command being run.
#[derive(Default)]
pub struct Scratch {
    /// Keys the command waits for.
    pub pending: Vec<Bytes>,
    /// Keys served stale that want a background refresh.
    pub refresh: Vec<Bytes>,
    /// Results of the fetches this command waited for.
    pub fetched: HashMap<Bytes, Fetched>,
    /// Routes whose stale value was served because the origin failed (counted once
    /// the command's reply is known not to be an error).
    pub stale_on_error: Vec<Arc<Route>>,
}

impl Scratch {
    /// Ends a command: counts its stale serves if `reply` delivered them, and empties
    /// everything but the background refreshes (which the caller takes).
    pub fn finish(&mut self, reply: &Reply) {
        if !matches!(reply, Reply::Error(_)) {
            for r in &self.stale_on_error {
                r.metrics.stale_on_error.increment(1);
            }
        }
        self.stale_on_error.clear();
        self.fetched.clear();
        self.pending.clear();
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

    /// Forgets remembered "not found" answers of database `db` (`None`: all), after a
    /// FLUSHDB or FLUSHALL.
    pub fn forget(&self, db: Option<u8>) {
        for r in &self.routes {
            r.negative.lock().clear(db);
            r.errors.lock().clear(db);
        }
    }

    /// Fetches in flight.
    pub fn in_flight(&self) -> usize {
        self.flights.lock().len()
    }

    /// Waits for every key in `keys` (starting fetches or joining those under way).
    pub async fn resolve(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        db: u8,
        mut keys: Vec<Bytes>,
    ) -> Vec<(Bytes, Fetched)> {
        keys.sort_unstable();
        keys.dedup();
        let waits: Vec<_> = keys
            .into_iter()
            .filter_map(|k| {
                let rx = self.join(shared, db, k.clone(), false)?;
                Some((k, rx))
            })
            .collect();
        let mut out = Vec::with_capacity(waits.len());
        for (key, mut rx) in waits {
            let got = match rx.wait_for(Option::is_some).await {
                Ok(v) => v.clone().unwrap_or(Fetched::NotFound),
                Err(_) => Fetched::Failed(format!(
                    "ERR origin fetch for '{}' was abandoned",
                    show(&key)
                )),
            };
            out.push((key, got));
        }
        out
    }

    /// Starts background refreshes of stale keys that were just served (one per key,
    /// joining any fetch already under way).
    pub fn refresh(self: &Arc<Self>, shared: &Arc<Shared>, db: u8, mut keys: Vec<Bytes>) {
        keys.sort_unstable();
        keys.dedup();
        for k in keys {
            if let Some(r) = self.route_for(&k) {
                r.metrics.stale_revalidating.increment(1);
            }
            let _ = self.join(shared, db, k, true);
        }
    }

    /// The receiver of the fetch of `key`, started here if none is under way.
    fn join(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
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
        let shared = shared.clone();
        // The fetch runs in its own task: clients that give up do not cancel it for
        // the others, and its result is stored either way.
        tokio::spawn(async move {
            let result = fly(&shared, &route, db, &key).await;
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

impl Drop for Landing {
    fn drop(&mut self) {
        if let Some((_, key)) = &self.key {
            let msg = format!("ERR origin fetch for '{}' was abandoned", show(key));
            self.finish(Fetched::Failed(msg));
        }
    }
}

/// Looks `key` up for GET, MGET and GETEX: the engine first; for a routed key, fresh
/// values are hits, stale ones inside the stale-while-revalidate window are hits that
/// ask for a background refresh, and misses are answered by remembered "not found"
/// answers and failures, by this command's fetch results, or become pending.
pub fn lookup(s: &Shared, sess: &mut Session, key: &Bytes) -> Result<Lookup, Reply> {
    let item = s.engine.get_item(sess.db, key).map_err(engine_error)?;
    let route = s.read_through.as_ref().and_then(|rt| rt.route_for(key));
    let Some(route) = route else {
        return Ok(item.map_or(Lookup::Miss, |i| Lookup::Hit(i.value)));
    };
    let fetched = sess.origin.fetched.get(key);
    let now = now_ms();
    let Some(item) = item else {
        return Ok(match fetched {
            Some(Fetched::Value(v)) => Lookup::Hit(v.clone()),
            Some(Fetched::NotFound) => Lookup::Miss,
            Some(Fetched::Failed(msg)) => return Err(Reply::err(msg.clone())),
            None if route.negative.lock().get(sess.db, key, now).is_some() => {
                route.metrics.negative_hits.increment(1);
                Lookup::Miss
            }
            None if let Some(msg) = route.errors.lock().get(sess.db, key, now) => {
                return Err(Reply::err(msg));
            }
            None => {
                sess.origin.pending.push(key.clone());
                Lookup::Pending
            }
        });
    };
    let Some(entry) = Entry::decode(&item.meta) else {
        // A client wrote this key: it is not the origin's to refresh.
        return Ok(Lookup::Hit(item.value));
    };
    if now < entry.fresh_until_ms {
        return Ok(Lookup::Hit(item.value));
    }
    let stale_for = now - entry.fresh_until_ms;
    // What this command fetched, or a failure of a moment ago (answered as it says
    // rather than asking the origin again).
    let known = match fetched {
        Some(f) => Some(f.clone()),
        None => route
            .errors
            .lock()
            .get(sess.db, key, now)
            .map(Fetched::Failed),
    };
    if stale_for < route.cfg.stale_while_revalidate && fetched.is_none() {
        if known.is_none() {
            sess.origin.refresh.push(key.clone());
        } else {
            sess.origin.stale_on_error.push(route.clone());
        }
        return Ok(Lookup::Hit(item.value));
    }
    Ok(match &known {
        Some(Fetched::Value(v)) => Lookup::Hit(v.clone()),
        Some(Fetched::NotFound) => Lookup::Miss,
        Some(Fetched::Failed(_)) if stale_for < route.cfg.stale_if_error => {
            sess.origin.stale_on_error.push(route.clone());
            Lookup::Hit(item.value)
        }
        Some(Fetched::Failed(msg)) => return Err(Reply::err(msg.clone())),
        None => {
            sess.origin.pending.push(key.clone());
            Lookup::Pending
        }
    })
}

/// One fetch of `key`: revalidates what the engine holds (with its ETag) or fetches it
/// anew, stores the outcome and says what it means for the waiting commands.
async fn fly(shared: &Arc<Shared>, route: &Route, db: u8, key: &Bytes) -> Fetched {
    let held = match shared.engine.get_item(db, key) {
        Ok(item) => item.and_then(|i| Entry::decode(&i.meta).map(|e| (i.value, e))),
        Err(e) => return Fetched::Failed(format!("ERR reading '{}': {e}", show(key))),
    };
    let cached = held.as_ref().map(|(_, e)| Cached {
        etag: e.etag.clone(),
        age_ms: now_ms().saturating_sub(e.fetched_at_ms),
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
            let stored = store(shared, route, db, key, move |_| {
                Some((v, Entry::fresh(now_ms(), ttl, etag)))
            })
            .await;
            match stored {
                Ok(()) => (Answer::Fresh, Fetched::Value(value)),
                Err(msg) => (Answer::Fresh, Fetched::Failed(msg)),
            }
        }
        Ok(Outcome::NotModified { ttl_ms }) => match held {
            Some((value, old)) => {
                let ttl = ttl_ms.unwrap_or(cfg.ttl);
                // Only the entry revalidated is extended: the value already on disk
                // is kept, whatever a client or another fetch did meanwhile.
                let stored = store(shared, route, db, key, move |cur| {
                    let cur = cur?;
                    let e = Entry::decode(&cur.meta)?;
                    (e.etag == old.etag)
                        .then(|| (cur.value.clone(), Entry::fresh(now_ms(), ttl, e.etag)))
                })
                .await;
                match stored {
                    Ok(()) => (Answer::NotModified, Fetched::Value(value)),
                    Err(msg) => (Answer::NotModified, Fetched::Failed(msg)),
                }
            }
            None => (
                Answer::Error,
                Fetched::Failed(format!(
                    "ERR origin fetch for '{}' failed: the fetcher answered not-modified but nothing was cached",
                    show(key)
                )),
            ),
        },
        Ok(Outcome::NotFound { ttl_ms }) => {
            let ttl = ttl_ms.unwrap_or(cfg.negative_ttl);
            // A stale copy the origin no longer has goes.
            let _ = remove_stale(shared, db, key).await;
            if ttl > 0 {
                route
                    .negative
                    .lock()
                    .insert(db, key.clone(), now_ms().saturating_add(ttl), ());
            }
            (Answer::NotFound, Fetched::NotFound)
        }
        Err(e) => {
            tracing::debug!(route = %cfg.prefix, key = %show(key), error = %e, "origin fetch failed");
            (
                Answer::of_error(&e),
                Fetched::Failed(format!("ERR origin fetch for '{}' failed: {e}", show(key))),
            )
        }
    };
    route.metrics.request(answer);
    match &fetched {
        Fetched::Failed(msg) if cfg.retry_after_error > 0 => {
            let until = now_ms().saturating_add(cfg.retry_after_error);
            route
                .errors
                .lock()
                .insert(db, key.clone(), until, msg.clone());
        }
        _ => route.errors.lock().remove(db, key),
    }
    fetched
}

/// Stores what `decide` makes of the current item, under the key's write lock, unless
/// a client wrote the key since the fetch began (a value without read-through meta).
async fn store(
    shared: &Arc<Shared>,
    route: &Route,
    db: u8,
    key: &Bytes,
    decide: impl FnOnce(Option<&caskade_engine::Item>) -> Option<(Bytes, Entry)> + Send + 'static,
) -> Result<(), String> {
    let (sh, k) = (shared.clone(), key.clone());
    let keep = route.cfg.keep_stale_ms();
    // Engine writes may wait for disk space or an fsync: keep them off the workers.
    let r = tokio::task::spawn_blocking(move || {
        let _g = sh.locks.lock(db, &[&k]);
        let cur = sh.engine.get_item(db, &k)?;
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
        sh.engine
            .put_item(db, &k, &value, Some(expire), &entry.encode())?;
        sh.engine.flush_writes()
    })
    .await;
    match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(caskade_engine::Error::ValueTooLong { len, max })) => Err(format!(
            "ERR origin value for '{}' is {len} bytes, over the {max}-byte limit",
            show(key)
        )),
        Ok(Err(e)) => Err(format!("ERR storing '{}': {e}", show(key))),
        Err(e) => Err(format!("ERR storing '{}': {e}", show(key))),
    }
}

/// Deletes a read-through entry of `key` (never a value a client wrote).
async fn remove_stale(shared: &Arc<Shared>, db: u8, key: &Bytes) -> Result<(), String> {
    let (sh, k) = (shared.clone(), key.clone());
    tokio::task::spawn_blocking(move || {
        let _g = sh.locks.lock(db, &[&k]);
        if let Some(cur) = sh.engine.get_item(db, &k)?
            && Entry::decode(&cur.meta).is_some()
        {
            sh.engine.delete(db, &k)?;
            sh.engine.flush_writes()?;
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
