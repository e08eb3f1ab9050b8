//! An origin fetcher that misbehaves on purpose, chosen by the key, for caskade's
//! containment tests: a key containing `trap` panics, `loop` never returns, `hog` grabs
//! memory until refused, `fail` returns an error; any other key is answered with
//! `fetched:<key>` (so tests can see the server still works after each misbehaviour).
//! The setting `init` (`loop` or `trap`) makes starting the instance misbehave instead.

use caskade_plugin_sdk::{
    CachedEntry, FetchOutcome, FreshValue, OriginFetcher, PluginError, Settings,
    export_origin_fetcher, setting,
};

struct Misbehave;

fn has(key: &[u8], word: &str) -> bool {
    key.windows(word.len()).any(|w| w == word.as_bytes())
}

impl OriginFetcher for Misbehave {
    fn init(settings: &Settings) -> Result<Self, PluginError> {
        match setting(settings, "init") {
            Some("loop") => loop {
                std::hint::black_box(());
            },
            Some("trap") => panic!("misbehave-fetcher: trapping in init"),
            _ => Ok(Misbehave),
        }
    }

    fn fetch(
        &mut self,
        key: &[u8],
        _cached: Option<CachedEntry>,
    ) -> Result<FetchOutcome, PluginError> {
        if has(key, "trap") {
            panic!("misbehave-fetcher: trapping on purpose");
        }
        if has(key, "loop") {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        if has(key, "hog") {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        if has(key, "fail") {
            return Err(PluginError::Failed("misbehave-fetcher: failing on purpose".into()));
        }
        let mut value = b"fetched:".to_vec();
        value.extend_from_slice(key);
        Ok(FetchOutcome::Fresh(FreshValue {
            value,
            ttl_ms: None,
            etag: None,
        }))
    }
}

export_origin_fetcher!(Misbehave);
