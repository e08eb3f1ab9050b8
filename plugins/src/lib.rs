//! caskade's WebAssembly plugin host. Compaction filters, eviction policies and origin
//! fetchers are components built against `wit/caskade-plugin.wit`; this crate compiles
//! them (once, with an on-disk cache of compiled code), runs every call under a
//! deadline and a memory limit, and contains whatever goes wrong: the call falls back
//! to the built-in behaviour (or, for a fetch, ends in an error) and the failure is
//! logged and counted.

mod bindings;
mod error;
mod fetcher;
mod filter;
mod http_gate;
mod policy;
mod runtime;
mod stats;

pub use error::Error;
pub use fetcher::{Cached, FetchError, FetcherOptions, Outcome, WasmFetcher};
pub use filter::WasmFilter;
pub use http_gate::HostRule;
pub use policy::WasmPolicy;
pub use runtime::{Limits, Runtime};
pub use stats::PluginStats;
/// A compiled plugin, as [`Runtime::load`] returns it.
pub use wasmtime::component::Component;
