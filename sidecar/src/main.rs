//! The `caskade` binary: resolve the configuration, open the engine, serve RESP until
//! SIGTERM, then close cleanly.

mod cli;
mod cmd;
mod config;
mod conn;
mod glob;
mod protocol;
mod server;
mod state;

use anyhow::Context;
use clap::Parser;
use std::sync::Arc;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    if let Some(path) = &cli.check_config {
        return match config::Config::load(path) {
            Ok(_) => {
                println!("{}: OK", path.display());
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                std::process::ExitCode::from(2)
            }
        };
    }
    match run(&cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("caskade: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: &cli::Cli) -> anyhow::Result<()> {
    let cfg = cli.resolve()?;
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log.level)
        .with_context(|| format!("log level '{}'", cfg.log.level))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let mut opts = caskade_engine::Options::new(&cfg.storage.dir);
    opts.segment_bytes = cfg.storage.segment_bytes;
    opts.fsync = cfg.storage.fsync;
    opts.max_value_bytes = cfg.limits.max_bulk_bytes as usize;
    let engine = caskade_engine::Engine::open(opts)
        .with_context(|| format!("opening data directory {}", cfg.storage.dir.display()))?;
    let shared = Arc::new(state::Shared::new(engine, cfg));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("caskade-worker")
        .build()
        .context("starting the async runtime")?;
    rt.block_on(server::run(shared))
}
