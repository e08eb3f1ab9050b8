//! Command-line flags, built from the settings table: each setting with a flag can also
//! come from its `CASKADE_*` environment variable; a flag beats the variable, which
//! beats the YAML file, which beats the defaults.

use crate::config::{Config, ConfigError};
use crate::settings::{SETTINGS, Setting};
use clap::{Arg, ArgMatches, Command};
use std::path::PathBuf;

/// What the command line (and the environment) said.
#[derive(Debug)]
pub struct Cli {
    /// `--config FILE`: the YAML file.
    pub config: Option<PathBuf>,
    /// `--check-config FILE`: validate and exit.
    pub check_config: Option<PathBuf>,
    overrides: Vec<(&'static str, String)>,
}

fn command() -> Command {
    let mut cmd = Command::new("caskade")
        .version(env!("CARGO_PKG_VERSION"))
        .about("caskade: a Redis-protocol cache sidecar over a disk-backed, bitcask-style engine.")
        .arg(
            Arg::new("config")
                .long("config")
                .env("CASKADE_CONFIG")
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .help("YAML configuration file (every field optional)"),
        )
        .arg(
            Arg::new("check-config")
                .long("check-config")
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .help("Validate the configuration file and exit"),
        );
    for s in SETTINGS {
        let Some(flag) = s.flag else { continue };
        let mut arg = Arg::new(flag).long(flag).value_name("VALUE").help(format!(
            "Sets `{}`{}; default {}",
            s.field,
            s.note,
            crate::settings::default_shown(s)
        ));
        if let Some(env) = s.env {
            arg = arg.env(env);
        }
        cmd = cmd.arg(arg);
    }
    cmd
}

impl Cli {
    /// Parses the process's arguments (exits with usage on a bad flag, as clap does).
    pub fn parse() -> Cli {
        Cli::from_matches(&command().get_matches())
    }

    fn from_matches(m: &ArgMatches) -> Cli {
        let overrides = SETTINGS
            .iter()
            .filter_map(|s| {
                let v = m.get_one::<String>(s.flag?)?;
                Some((s.field, v.clone()))
            })
            .collect();
        Cli {
            config: m.get_one::<PathBuf>("config").cloned(),
            check_config: m.get_one::<PathBuf>("check-config").cloned(),
            overrides,
        }
    }

    /// The configuration: file (if any), then environment and flags on top.
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        let mut cfg = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        for (field, value) in &self.overrides {
            let Some(s) = SETTINGS.iter().find(|s| s.field == *field) else {
                continue;
            };
            (s.set)(&mut cfg, value).map_err(|reason| ConfigError::Invalid {
                source_name: source_of(s),
                field: s.field.to_string(),
                reason,
            })?;
        }
        cfg.validate("command line / environment")?;
        Ok(cfg)
    }
}

fn source_of(s: &Setting) -> String {
    match (s.flag, s.env) {
        (Some(f), Some(e)) => format!("--{f} (or {e})"),
        (Some(f), None) => format!("--{f}"),
        _ => "command line".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        let m = command()
            .try_get_matches_from(std::iter::once("caskade").chain(args.iter().copied()))
            .expect("parses");
        Cli::from_matches(&m)
    }

    #[test]
    fn flags_override_defaults() {
        let c = cli(&["--port", "7000", "--max-keys", "5", "--fsync", "always"])
            .resolve()
            .expect("valid");
        assert_eq!(c.port, 7000);
        assert_eq!(c.storage.max_keys, Some(5));
        assert_eq!(c.storage.fsync, caskade_engine::Fsync::Always);
    }

    #[test]
    fn bad_values_name_the_flag_and_field() {
        let e = cli(&["--port", "seventy"])
            .resolve()
            .expect_err("bad port")
            .to_string();
        assert!(e.contains("--port") && e.contains("`port`"), "{e}");
        let e = cli(&["--segment-bytes", "1"])
            .resolve()
            .expect_err("too small")
            .to_string();
        assert!(e.contains("storage.segment_bytes"), "{e}");
    }
}
