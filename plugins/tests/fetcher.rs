//! Origin fetchers with real plugins (built from source by plugins/build.sh) against a
//! local HTTP origin: what the HTTP example makes of each answer, the host gate that
//! refuses hosts a route does not allow, timeouts, and misbehaving fetchers that trap,
//! loop or grab memory without taking the host down.

#[path = "../../tests/common/origin.rs"]
mod origin;
#[path = "../../tests/common/plugin_files.rs"]
mod plugin_files;

use caskade_plugins::{
    Cached, Error, FetchError, FetcherOptions, HostRule, Outcome, Runtime, WasmFetcher,
};
use origin::{Item, Origin};
use plugin_files::example;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn options(settings: &[(&str, &str)], hosts: &[&str], timeout_ms: u64) -> FetcherOptions {
    FetcherOptions {
        settings: settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        allowed_hosts: hosts
            .iter()
            .map(|h| HostRule::parse(h).expect("rule"))
            .collect(),
        timeout: Duration::from_millis(timeout_ms),
        memory_bytes: 32 << 20,
        max_concurrent: 4,
    }
}

/// The example plugin `file` loaded as a fetcher (compiled code cached across tests).
async fn load(
    file: &str,
    settings: &[(&str, &str)],
    hosts: &[&str],
    timeout_ms: u64,
) -> Result<WasmFetcher, Error> {
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache");
    std::fs::create_dir_all(&cache).expect("cache dir");
    let rt = Runtime::new(Some(&cache)).expect("runtime");
    let component = rt.load(&example(file)).expect("load");
    let opts = options(settings, hosts, timeout_ms);
    WasmFetcher::new(&rt, file, &component, opts, Arc::default()).await
}

/// The HTTP example against `origin`'s `path`, allowed to reach it.
async fn http_at(
    origin: &Origin,
    path: &str,
    extra: &[(&str, &str)],
    timeout_ms: u64,
) -> WasmFetcher {
    let base = format!("{}{path}", origin.url());
    let mut settings = vec![("base_url", base.as_str()), ("strip_prefix", "item:")];
    settings.extend_from_slice(extra);
    let host = format!("127.0.0.1:{}", origin.port);
    load("http_fetcher.wasm", &settings, &[&host], timeout_ms)
        .await
        .expect("fetcher")
}

async fn http_fetcher(origin: &Origin, extra: &[(&str, &str)], timeout_ms: u64) -> WasmFetcher {
    http_at(origin, "/items/", extra, timeout_ms).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_fetcher_maps_origin_answers() {
    let origin = Origin::start();
    origin.put("a", b"alpha", Some("\"v1\""));
    let f = http_fetcher(&origin, &[], 5_000).await;

    let got = f.fetch(b"item:a", None).await.expect("fresh");
    assert_eq!(
        got,
        Outcome::Fresh {
            value: b"alpha".to_vec(),
            ttl_ms: None,
            etag: Some("\"v1\"".into())
        }
    );
    // Revalidation sends the ETag; the origin says unchanged.
    let cached = Cached {
        etag: Some("\"v1\"".into()),
        age_ms: 10,
    };
    let got = f.fetch(b"item:a", Some(cached)).await.expect("304");
    assert_eq!(got, Outcome::NotModified { ttl_ms: None });
    assert_eq!(
        origin.if_none_match("/items/a"),
        vec![None, Some("\"v1\"".to_string())]
    );
    // A stale ETag gets the new value.
    origin.put("a", b"alpha2", Some("\"v2\""));
    let cached = Cached {
        etag: Some("\"v1\"".into()),
        age_ms: 10,
    };
    match f.fetch(b"item:a", Some(cached)).await.expect("200") {
        Outcome::Fresh { value, etag, .. } => {
            assert_eq!((value, etag), (b"alpha2".to_vec(), Some("\"v2\"".into())));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        f.fetch(b"item:nope", None).await,
        Ok(Outcome::NotFound { ttl_ms: None })
    );
    // Key bytes that are not URL-safe are percent-encoded.
    origin.put("a%20b%2Fc", b"spaced", None);
    assert!(
        matches!(f.fetch(b"item:a b/c", None).await, Ok(Outcome::Fresh { value, .. }) if value == b"spaced")
    );
    // Cache-Control max-age sets the TTL.
    origin.put_item(
        "cc",
        Item {
            body: b"x".to_vec(),
            etag: None,
            cache_control: Some("public, max-age=42".into()),
        },
    );
    assert!(matches!(
        f.fetch(b"item:cc", None).await,
        Ok(Outcome::Fresh {
            ttl_ms: Some(42_000),
            ..
        })
    ));
    assert_eq!(f.stats().calls.load(Ordering::Relaxed), 6);
    assert_eq!(f.stats().failures(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_errors_are_errors_and_json_is_checked() {
    let origin = Origin::start();
    let fail = http_at(&origin, "/fail/", &[], 5_000).await;
    match fail.fetch(b"k", None).await {
        Err(FetchError::Failed(m)) => assert!(m.contains("500"), "{m}"),
        other => panic!("{other:?}"),
    }

    let json = http_fetcher(
        &origin,
        &[("format", "json"), ("json_pointer", "/user/name")],
        5_000,
    )
    .await;
    origin.put("u1", br#"{"user":{"name":"ada","age":36}}"#, None);
    origin.put("u2", b"not json", None);
    origin.put("u3", br#"{"user":{}}"#, None);
    assert!(
        matches!(json.fetch(b"item:u1", None).await, Ok(Outcome::Fresh { value, .. }) if value == b"ada")
    );
    match json.fetch(b"item:u2", None).await {
        Err(FetchError::Failed(m)) => assert!(m.contains("not JSON"), "{m}"),
        other => panic!("{other:?}"),
    }
    match json.fetch(b"item:u3", None).await {
        Err(FetchError::Failed(m)) => assert!(m.contains("/user/name"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_fail_at_load() {
    for (settings, needle) in [
        (vec![], "base_url is required"),
        (vec![("base_url", "ftp://x/")], "http://"),
        (vec![("base_url", "http://x/"), ("format", "xml")], "format"),
    ] {
        match load("http_fetcher.wasm", &settings, &[], 1_000).await {
            Err(Error::Init { reason, .. }) => assert!(reason.contains(needle), "{reason}"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("{settings:?} accepted"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_the_route_does_not_allow_are_refused() {
    let origin = Origin::start();
    origin.put("a", b"alpha", None);
    // Allowed: another port on the same address, and the name instead of the address.
    let base = format!("{}/items/", origin.url());
    let named = format!("localhost:{}", origin.port);
    let f = load(
        "http_fetcher.wasm",
        &[("base_url", &base)],
        &["127.0.0.1:1", &named],
        5_000,
    )
    .await
    .expect("fetcher");
    match f.fetch(b"a", None).await {
        Err(FetchError::Refused { host }) => {
            assert_eq!(host, format!("127.0.0.1:{}", origin.port));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(origin.total(), 0, "a refused request never leaves the host");
    // The instance is fine afterwards (a refusal is not a crash).
    assert_eq!(f.stats().failures(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_origins_time_out_and_the_fetcher_recovers() {
    let origin = Origin::start();
    origin.put("a", b"alpha", None);
    origin.set_slow_ms(3_000);
    let slow = http_at(&origin, "/slow/", &[], 300).await;
    let t = Instant::now();
    assert_eq!(slow.fetch(b"a", None).await, Err(FetchError::Timeout(300)));
    assert!(
        t.elapsed() < Duration::from_millis(2_000),
        "{:?}",
        t.elapsed()
    );
    let fast = http_fetcher(&origin, &[], 300).await;
    assert!(matches!(
        fast.fetch(b"item:a", None).await,
        Ok(Outcome::Fresh { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_fetchers_are_contained() {
    let f = load("misbehave_fetcher.wasm", &[], &[], 400)
        .await
        .expect("fetcher");
    let stats = f.stats().clone();
    assert!(matches!(
        f.fetch(b"trap-1", None).await,
        Err(FetchError::Crashed {
            what: "trapped",
            ..
        })
    ));
    assert_eq!(
        f.fetch(b"loop-1", None).await,
        Err(FetchError::Timeout(400))
    );
    assert!(matches!(
        f.fetch(b"hog-1", None).await,
        Err(FetchError::Crashed {
            what: "memory limit reached",
            ..
        })
    ));
    assert!(
        matches!(f.fetch(b"fail-1", None).await, Err(FetchError::Failed(m)) if m.contains("on purpose"))
    );
    assert_eq!(
        f.fetch(b"ok", None).await,
        Ok(Outcome::Fresh {
            value: b"fetched:ok".to_vec(),
            ttl_ms: None,
            etag: None
        })
    );
    assert_eq!(stats.traps.load(Ordering::Relaxed), 1);
    assert_eq!(stats.timeouts.load(Ordering::Relaxed), 1);
    assert_eq!(stats.memory_refusals.load(Ordering::Relaxed), 1);
    // A looping fetcher yields while it spins: other fetches run meanwhile, even on a
    // single worker thread.
    let patient = load("misbehave_fetcher.wasm", &[], &[], 2_000)
        .await
        .expect("fetcher");
    let looping = patient.fetch(b"loop-2", None);
    let quick = async {
        let t = Instant::now();
        let r = patient.fetch(b"quick", None).await;
        (r, t.elapsed())
    };
    let (slow, (fast, took)) = tokio::join!(looping, quick);
    assert_eq!(slow, Err(FetchError::Timeout(2_000)));
    assert!(
        fast.is_ok() && took < Duration::from_millis(1_500),
        "{fast:?} {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_never_starts_fails_the_load() {
    let t = Instant::now();
    match load("misbehave_fetcher.wasm", &[("init", "loop")], &[], 300).await {
        Err(Error::Init { reason, .. }) => assert!(reason.contains("did not start"), "{reason}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a looping init was accepted"),
    }
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    match load("misbehave_fetcher.wasm", &[("init", "trap")], &[], 300).await {
        Err(Error::Init { reason, .. }) => assert!(reason.contains("could not start"), "{reason}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a trapping init was accepted"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_fetches_share_a_bounded_pool() {
    let origin = Origin::start();
    for i in 0..32 {
        origin.put(&format!("k{i}"), format!("v{i}").as_bytes(), None);
    }
    let f = Arc::new(http_fetcher(&origin, &[], 10_000).await);
    let mut tasks = Vec::new();
    for i in 0..32 {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            f.fetch(format!("item:k{i}").as_bytes(), None).await
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.expect("join") {
            Ok(Outcome::Fresh { value, .. }) => assert_eq!(value, format!("v{i}").into_bytes()),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(origin.total(), 32);
    // At most max_concurrent instances were ever made (one at load, three more).
    assert!(f.stats().instances.load(Ordering::Relaxed) <= 4);
}
