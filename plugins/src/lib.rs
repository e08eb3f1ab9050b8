//! caskade's WebAssembly plugin host. Compaction filters and eviction policies are
//! components built against `wit/caskade-plugin.wit`; this crate compiles them (once,
//! with an on-disk cache of compiled code), runs every call under a deadline and a
//! memory limit, and contains whatever goes wrong: the call falls back to the built-in
//! behaviour and the failure is logged and counted.

mod bindings;
mod error;
mod filter;
mod policy;
mod runtime;
mod stats;

pub use error::Error;
pub use filter::WasmFilter;
pub use policy::WasmPolicy;
pub use runtime::{Limits, Runtime};
pub use stats::PluginStats;
/// A compiled plugin, as [`Runtime::load`] returns it.
pub use wasmtime::component::Component;
