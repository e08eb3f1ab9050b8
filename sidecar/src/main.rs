//! The `caskade` binary: resolve the configuration, open the engine, serve RESP until
//! SIGTERM, then close cleanly.

mod admin;
mod alloc;
mod blocking;
mod cli;
mod cmd;
mod cmdstats;
mod config;
mod conn;
mod databases;
mod export;
mod files;
#[cfg(test)]
mod fuzz_tests;
mod glob;
mod keyspace;
mod logging;
mod metrics;
mod monitor;
mod origin;
mod plugins;
mod protocol;
mod scaffold;
mod script;
mod server;
mod settings;
mod state;
mod store;
mod transport;
mod types;
mod unit;
mod uring;
mod watch;

use anyhow::Context;
use std::sync::Arc;

fn main() -> std::process::ExitCode {
    alloc::tune();
    let cli = cli::Cli::parse();
    if let Some(path) = &cli.check_config {
        return check_config(path);
    }
    if let Some((addr, ready)) = &cli.probe {
        return match admin::probe(addr, *ready, std::time::Duration::from_secs(2)) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("caskade probe: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    if let Some(new) = &cli.plugin_new {
        return match scaffold::write(new.kind, &new.name, &new.dir, new.sdk.as_deref()) {
            Ok(()) => {
                println!(
                    "wrote {}: build it as its README.md says, then `caskade --check-config {}`",
                    new.dir.display(),
                    new.dir.join("caskade.yaml").display()
                );
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("caskade plugin new: {e}");
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

/// `--check-config FILE`: the file parses and validates, and every plugin it names
/// compiles and initialises with its settings. Prints what loaded, or the first error.
fn check_config(path: &std::path::Path) -> std::process::ExitCode {
    let cfg = match config::Config::load(path) {
        Ok(cfg) => cfg,
        // The error names the file already.
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let checked = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")
        .and_then(|rt| {
            rt.block_on(plugins::Plugins::check(
                &cfg.plugins,
                &cfg.read_through.routes,
            ))
        });
    match checked {
        Ok(loaded) => {
            println!("{}: OK", path.display());
            for l in loaded {
                println!("  {}", l.describe());
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e:#}", path.display());
            std::process::ExitCode::from(2)
        }
    }
}

fn run(cli: &cli::Cli) -> anyhow::Result<()> {
    let cfg = cli.resolve()?;
    logging::init(&cfg.log)?;
    let metrics = Arc::new(metrics::Metrics::install()?);
    // The clock commands are timed by calibrates itself (about a millisecond) on first
    // use: here, not in the first command.
    let _ = quanta::Instant::now();
    let io = server::io_mode(cfg.server.io);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if io == config::IoMode::Uring {
        // Clients are served by the io_uring threads; this runtime keeps the admin
        // port, timers and plugin upkeep.
        builder.worker_threads(1);
    } else if cfg.server.threads > 0 {
        builder.worker_threads(cfg.server.threads as usize);
    }
    let rt = builder
        .enable_all()
        .thread_name("caskade-worker")
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        // The admin port comes up first, so probes see "alive, not ready" during recovery.
        let admin = Arc::new(admin::AdminState::default());
        // Histogram samples wait in the recorder until drained into buckets: drained
        // every second whether or not anyone scrapes (each waiting sample holds 16
        // bytes; 10M unscraped SETs held 160 MB).
        let upkeep = metrics.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                upkeep.upkeep();
            }
        });
        if cfg.admin.port != 0 {
            let addr = format!("{}:{}", cfg.admin.bind, cfg.admin.port);
            admin::start(&addr, admin.clone(), metrics.clone()).await?;
        }
        let mut opts = cfg.engine_options();
        let plugins =
            plugins::Plugins::new(&cfg.plugins, &cfg.read_through.routes, &cfg.storage.dir)?
                .map(Arc::new);
        let read_through = match &plugins {
            Some(p) if !cfg.read_through.routes.is_empty() => {
                let fetchers = p
                    .load_fetchers(&p.all_routes())
                    .await?
                    .into_iter()
                    .flatten()
                    .collect();
                Some(Arc::new(origin::build(&cfg.read_through.routes, fetchers)))
            }
            _ => None,
        };
        // Read before the engine opens: the compaction filter shows plugins databases.
        let databases = Arc::new(databases::Databases::open(&cfg.storage.dir)?);
        if let Some(p) = &plugins {
            opts.compaction_filter = p.load_filter(&databases)?;
            if let Some(policy) = p.load_policy()? {
                // The engine asks for its policy once, at open.
                let slot = parking_lot::Mutex::new(Some(policy));
                opts.policy_factory = Some(Arc::new(move || slot.lock().take()));
            }
        }
        let dir = cfg.storage.dir.clone();
        let engine = tokio::task::spawn_blocking(move || caskade_engine::Engine::open(opts))
            .await
            .context("engine recovery task")?
            .with_context(|| format!("opening data directory {}", dir.display()))?;
        let store = Arc::new(store::Store::new(engine).with_databases(databases));
        let shared = Arc::new(state::Shared::new(
            store.clone(),
            cfg,
            plugins.clone(),
            read_through.clone(),
        ));
        let _ = admin.shared.set(shared.clone());
        // Free memory left inside the allocator's heaps goes back to the system.
        tokio::spawn(async {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tick.tick().await;
                let _ = tokio::task::spawn_blocking(alloc::trim_if_wasteful).await;
            }
        });
        if let Some(p) = plugins {
            tokio::spawn(p.watch(store, read_through));
        }
        server::run(shared, io, || {
            admin
                .ready
                .store(true, std::sync::atomic::Ordering::Release)
        })
        .await
    })
}
