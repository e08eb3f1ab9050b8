//! Write a caskade plugin in Rust: implement [`CompactionFilter`], [`EvictionPolicy`] or
//! [`OriginFetcher`] for a type, invoke [`export_compaction_filter!`],
//! [`export_eviction_policy!`] or [`export_origin_fetcher!`] once, and build for a
//! wasm32 target. The bindings come from `wit/caskade-plugin.wit`; this crate hides them
//! behind plain Rust types. The WIT travels inside this crate (`wit/`, a copy of
//! caskade's `wit/` kept identical by a test), so a plugin can depend on the SDK by
//! path or git from anywhere.
//!
//! Enable the crate feature of the plugin kind (`filter`, `policy` or `fetcher`): each
//! compiles the bindings of one world, and a plugin is exactly one kind. The `http`
//! feature adds [`http`], a small blocking HTTP client over `wasi:http` for fetchers
//! (build those for `wasm32-wasip2`).

// The generated bindings name this crate by its path, from inside it too.
extern crate self as caskade_plugin_sdk;

#[cfg(any(
    all(feature = "filter", feature = "policy"),
    all(feature = "filter", feature = "fetcher"),
    all(feature = "policy", feature = "fetcher"),
))]
compile_error!("a plugin is one kind: enable one of the `filter`, `policy` and `fetcher` features");

#[cfg(feature = "http")]
pub mod http;

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

/// Settings from the plugin's entry in caskade's configuration, as (name, value).
pub type Settings = [(String, String)];

/// Finds a setting by name.
pub fn setting<'a>(settings: &'a Settings, name: &str) -> Option<&'a str> {
    settings
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The compaction-filter world's bindings and the trait a filter implements.
#[cfg(feature = "filter")]
pub mod filter {
    wit_bindgen::generate!({
        path: "wit",
        world: "compaction-filter-plugin",
        pub_export_macro: true,
        export_macro_name: "export_filter_world",
        default_bindings_module: "caskade_plugin_sdk::filter",
        runtime_path: "caskade_plugin_sdk::__wit_bindgen::rt",
    });

    pub use caskade::plugin::types::PluginError;
    pub use exports::caskade::plugin::compaction_filter::{RecordInfo, Verdict};
}

#[cfg(feature = "filter")]
pub use filter::{PluginError, RecordInfo, Verdict};

/// A compaction filter: one instance lives for the plugin instance's lifetime.
#[cfg(feature = "filter")]
pub trait CompactionFilter: Sized + 'static {
    /// Builds the filter from its settings.
    fn init(settings: &Settings) -> Result<Self, PluginError>;
    /// One verdict per record, in order. `now_ms` is caskade's clock.
    fn filter(&mut self, records: &[RecordInfo], now_ms: u64) -> Vec<Verdict>;
}

/// Exports a [`CompactionFilter`] implementation as the plugin's compaction filter.
#[cfg(feature = "filter")]
#[macro_export]
macro_rules! export_compaction_filter {
    ($t:ty) => {
        struct __CaskadeFilter;
        ::std::thread_local! {
            static __CASKADE_FILTER: ::core::cell::RefCell<Option<$t>> =
                const { ::core::cell::RefCell::new(None) };
        }
        impl $crate::filter::exports::caskade::plugin::compaction_filter::Guest
            for __CaskadeFilter
        {
            fn init(
                settings: ::std::vec::Vec<(String, String)>,
            ) -> Result<(), $crate::PluginError> {
                let f = <$t as $crate::CompactionFilter>::init(&settings)?;
                __CASKADE_FILTER.with(|c| *c.borrow_mut() = Some(f));
                Ok(())
            }
            fn filter(
                records: ::std::vec::Vec<$crate::RecordInfo>,
                now_ms: u64,
            ) -> ::std::vec::Vec<$crate::Verdict> {
                __CASKADE_FILTER.with(|c| match c.borrow_mut().as_mut() {
                    Some(f) => $crate::CompactionFilter::filter(f, &records, now_ms),
                    None => records.iter().map(|_| $crate::Verdict::Keep).collect(),
                })
            }
        }
        $crate::filter::export_filter_world!(__CaskadeFilter);
    };
}

/// The eviction-policy world's bindings and the trait a policy implements.
#[cfg(feature = "policy")]
pub mod policy {
    wit_bindgen::generate!({
        path: "wit",
        world: "eviction-policy-plugin",
        pub_export_macro: true,
        export_macro_name: "export_policy_world",
        default_bindings_module: "caskade_plugin_sdk::policy",
        runtime_path: "caskade_plugin_sdk::__wit_bindgen::rt",
    });

    pub use caskade::plugin::types::PluginError;
}

#[cfg(feature = "policy")]
pub use policy::PluginError;

/// Keys that were created, as [`EvictionPolicy::on_insert`] receives them: ids, and
/// their bytes if the policy wants keys.
#[cfg(feature = "policy")]
pub struct Inserted<'a> {
    ids: &'a [u64],
    keys: &'a [u8],
    ends: &'a [u32],
}

#[cfg(feature = "policy")]
impl<'a> Inserted<'a> {
    #[doc(hidden)]
    pub fn new(ids: &'a [u64], keys: &'a [u8], ends: &'a [u32]) -> Self {
        Inserted { ids, keys, ends }
    }

    /// The keys' ids, oldest first.
    pub fn ids(&self) -> &'a [u64] {
        self.ids
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Key `i`'s bytes: empty unless the policy wants keys (or if caskade sent fewer
    /// than it should have).
    pub fn key(&self, i: usize) -> &'a [u8] {
        let start = match i {
            0 => 0,
            _ => self.ends.get(i - 1).map_or(0, |&e| e as usize),
        };
        let end = self.ends.get(i).map_or(start, |&e| e as usize);
        self.keys.get(start..end).unwrap_or(&[])
    }

    /// Each key's id and bytes.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &'a [u8])> + '_ {
        self.ids.iter().enumerate().map(|(i, &id)| (id, self.key(i)))
    }
}

/// An eviction policy: it keeps its state between calls, for the instance's lifetime.
#[cfg(feature = "policy")]
pub trait EvictionPolicy: Sized + 'static {
    /// Builds the policy from its settings.
    fn init(settings: &Settings) -> Result<Self, PluginError>;
    /// Whether [`EvictionPolicy::on_insert`] should carry each key's bytes (asked once,
    /// after `init`). The default, false, sends ids alone: nothing is copied into the
    /// plugin and a restart does not read every key back from disk for it.
    fn wants_keys(&self) -> bool {
        false
    }
    /// Keys that were created (their bytes only if [`EvictionPolicy::wants_keys`]).
    fn on_insert(&mut self, keys: &Inserted<'_>);
    /// Keys that were read or overwritten.
    fn on_access(&mut self, ids: &[u64]);
    /// Keys removed for another reason than eviction.
    fn on_remove(&mut self, ids: &[u64]);
    /// Up to `n` keys to evict; forget them.
    fn victims(&mut self, n: u32) -> Vec<u64>;
    /// One answer per id: whether the key is worth copying forward when its data file
    /// is reclaimed. Forget the keys answered false.
    fn keep_on_reclaim(&mut self, ids: &[u64]) -> Vec<bool>;
}

/// Exports an [`EvictionPolicy`] implementation as the plugin's eviction policy.
#[cfg(feature = "policy")]
#[macro_export]
macro_rules! export_eviction_policy {
    ($t:ty) => {
        struct __CaskadePolicy;
        ::std::thread_local! {
            static __CASKADE_POLICY: ::core::cell::RefCell<Option<$t>> =
                const { ::core::cell::RefCell::new(None) };
        }
        fn __with<R: Default>(f: impl FnOnce(&mut $t) -> R) -> R {
            __CASKADE_POLICY.with(|c| c.borrow_mut().as_mut().map(f).unwrap_or_default())
        }
        impl $crate::policy::exports::caskade::plugin::eviction_policy::Guest for __CaskadePolicy {
            fn init(
                settings: ::std::vec::Vec<(String, String)>,
            ) -> Result<(), $crate::PluginError> {
                let p = <$t as $crate::EvictionPolicy>::init(&settings)?;
                __CASKADE_POLICY.with(|c| *c.borrow_mut() = Some(p));
                Ok(())
            }
            fn wants_keys() -> bool {
                __with(|p| $crate::EvictionPolicy::wants_keys(p))
            }
            fn on_insert(
                ids: ::std::vec::Vec<u64>,
                keys: ::std::vec::Vec<u8>,
                ends: ::std::vec::Vec<u32>,
            ) {
                let batch = $crate::Inserted::new(&ids, &keys, &ends);
                __with(|p| $crate::EvictionPolicy::on_insert(p, &batch))
            }
            fn on_access(ids: ::std::vec::Vec<u64>) {
                __with(|p| $crate::EvictionPolicy::on_access(p, &ids))
            }
            fn on_remove(ids: ::std::vec::Vec<u64>) {
                __with(|p| $crate::EvictionPolicy::on_remove(p, &ids))
            }
            fn victims(n: u32) -> ::std::vec::Vec<u64> {
                __with(|p| $crate::EvictionPolicy::victims(p, n))
            }
            fn keep_on_reclaim(ids: ::std::vec::Vec<u64>) -> ::std::vec::Vec<bool> {
                __with(|p| $crate::EvictionPolicy::keep_on_reclaim(p, &ids))
            }
        }
        $crate::policy::export_policy_world!(__CaskadePolicy);
    };
}

/// The origin-fetcher world's bindings and the trait a fetcher implements.
#[cfg(feature = "fetcher")]
pub mod fetcher {
    wit_bindgen::generate!({
        path: "wit",
        world: "origin-fetcher-plugin",
        pub_export_macro: true,
        export_macro_name: "export_fetcher_world",
        default_bindings_module: "caskade_plugin_sdk::fetcher",
        runtime_path: "caskade_plugin_sdk::__wit_bindgen::rt",
    });

    pub use caskade::plugin::types::PluginError;
    pub use exports::caskade::plugin::origin_fetcher::{CachedEntry, FetchOutcome, FreshValue};
}

#[cfg(feature = "fetcher")]
pub use fetcher::{CachedEntry, FetchOutcome, FreshValue, PluginError};

/// An origin fetcher: one value lives per plugin instance, built from its route's
/// settings; caskade calls one `fetch` at a time on it.
#[cfg(feature = "fetcher")]
pub trait OriginFetcher: Sized + 'static {
    /// Builds the fetcher from its route's settings.
    fn init(settings: &Settings) -> Result<Self, PluginError>;
    /// Fetches `key` (route prefix included). With `cached`, revalidate: send its ETag
    /// and answer [`FetchOutcome::NotModified`] if the origin says it is unchanged.
    fn fetch(&mut self, key: &[u8], cached: Option<CachedEntry>)
    -> Result<FetchOutcome, PluginError>;
}

/// Exports an [`OriginFetcher`] implementation as the plugin's origin fetcher.
#[cfg(feature = "fetcher")]
#[macro_export]
macro_rules! export_origin_fetcher {
    ($t:ty) => {
        struct __CaskadeFetcher;
        ::std::thread_local! {
            static __CASKADE_FETCHER: ::core::cell::RefCell<Option<$t>> =
                const { ::core::cell::RefCell::new(None) };
        }
        impl $crate::fetcher::exports::caskade::plugin::origin_fetcher::Guest for __CaskadeFetcher {
            fn init(
                settings: ::std::vec::Vec<(String, String)>,
            ) -> Result<(), $crate::PluginError> {
                let f = <$t as $crate::OriginFetcher>::init(&settings)?;
                __CASKADE_FETCHER.with(|c| *c.borrow_mut() = Some(f));
                Ok(())
            }
            fn fetch(
                key: ::std::vec::Vec<u8>,
                cached: Option<$crate::CachedEntry>,
            ) -> Result<$crate::FetchOutcome, $crate::PluginError> {
                __CASKADE_FETCHER.with(|c| match c.borrow_mut().as_mut() {
                    Some(f) => $crate::OriginFetcher::fetch(f, &key, cached),
                    None => Err($crate::PluginError::Failed("fetch before init".into())),
                })
            }
        }
        $crate::fetcher::export_fetcher_world!(__CaskadeFetcher);
    };
}
