//! Errors of loading and initialising plugins. Failures of calls are not errors: they
//! are contained, counted in [`crate::PluginStats`] and answered by the fallback.

use std::path::PathBuf;

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read. (The I/O error is part of the message, not a
    /// `source`, so a report of the chain says it once.)
    #[error("plugin {path}: {error}")]
    Read {
        /// The plugin file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The bytes are not a valid component or core module for this world.
    #[error("plugin {name}: not a valid plugin: {reason}")]
    Invalid {
        /// The plugin's name (its file).
        name: String,
        /// What the toolchain said.
        reason: String,
    },
    /// The plugin refused its settings or failed to start.
    #[error("plugin {name}: init failed: {reason}")]
    Init {
        /// The plugin's name.
        name: String,
        /// What the plugin (or the runtime) said.
        reason: String,
    },
    /// The runtime itself could not be set up.
    #[error("plugin runtime: {0}")]
    Runtime(String),
}
