//! Host bindings generated from the WIT package, one module per plugin world (the two
//! worlds share the `types` interface, so each gets its own copy of those types).

pub(crate) mod filter {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "compaction-filter-plugin",
    });
}

pub(crate) mod policy {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "eviction-policy-plugin",
    });
}

pub(crate) mod fetcher {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "origin-fetcher-plugin",
        exports: { default: async },
    });
}
