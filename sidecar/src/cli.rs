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
    /// `plugin new ...`: write a plugin crate and exit.
    pub plugin_new: Option<PluginNew>,
    /// `probe [--ready] [--addr A]`: ask a running server's admin port and exit.
    pub probe: Option<(String, bool)>,
    overrides: Vec<(&'static str, String)>,
}

/// `caskade plugin new --kind KIND NAME [--dir DIR] [--sdk PATH|GIT-URL]`.
#[derive(Debug, Clone)]
pub struct PluginNew {
    /// What the plugin is.
    pub kind: crate::scaffold::Kind,
    /// The crate's name.
    pub name: String,
    /// Where to write it (default: `./NAME`).
    pub dir: PathBuf,
    /// Where the SDK comes from (default: the source tree caskade was built from).
    pub sdk: Option<String>,
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
                .help("Validate the configuration file, load every plugin it names, and exit"),
        )
        .subcommand(
            Command::new("probe")
                .about("Ask a running caskade's admin port whether it is alive (or ready); exit 0 if so. For exec probes when the admin port is bound to the loopback address")
                .arg(
                    Arg::new("addr")
                        .long("addr")
                        .value_name("HOST:PORT")
                        .default_value("127.0.0.1:9736")
                        .help("The admin address"),
                )
                .arg(
                    Arg::new("ready")
                        .long("ready")
                        .action(clap::ArgAction::SetTrue)
                        .help("Ask /readyz (recovery done, RESP served) instead of /healthz"),
                ),
        )
        .subcommand(
            Command::new("plugin")
                .about("Plugin authoring")
                .subcommand_required(true)
                .subcommand(
                    Command::new("new")
                        .about("Write a ready-to-build plugin crate (Cargo.toml, src/lib.rs, README.md, caskade.yaml)")
                        .arg(
                            Arg::new("kind")
                                .long("kind")
                                .required(true)
                                .value_parser(["filter", "policy", "fetcher"])
                                .help("compaction filter, eviction policy or origin fetcher"),
                        )
                        .arg(Arg::new("name").required(true).value_name("NAME").help("The crate's name"))
                        .arg(
                            Arg::new("dir")
                                .long("dir")
                                .value_name("DIR")
                                .value_parser(clap::value_parser!(PathBuf))
                                .help("Where to write it (default: ./NAME)"),
                        )
                        .arg(
                            Arg::new("sdk")
                                .long("sdk")
                                .value_name("PATH|GIT-URL")
                                .help("The caskade-plugin-sdk crate: a path, or a git URL of caskade's repository (default: the SDK of the source caskade was built from)"),
                        ),
                ),
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
        let plugin_new = m
            .subcommand_matches("plugin")
            .and_then(|p| p.subcommand_matches("new"))
            .map(|n| {
                let name = n.get_one::<String>("name").cloned().unwrap_or_default();
                PluginNew {
                    // clap checked the value against the kinds' names.
                    kind: n
                        .get_one::<String>("kind")
                        .and_then(|k| k.parse().ok())
                        .unwrap_or(crate::scaffold::Kind::Filter),
                    dir: n
                        .get_one::<PathBuf>("dir")
                        .cloned()
                        .unwrap_or_else(|| PathBuf::from(&name)),
                    name,
                    sdk: n.get_one::<String>("sdk").cloned(),
                }
            });
        let probe = m.subcommand_matches("probe").map(|p| {
            (
                p.get_one::<String>("addr").cloned().unwrap_or_default(),
                p.get_flag("ready"),
            )
        });
        Cli {
            config: m.get_one::<PathBuf>("config").cloned(),
            check_config: m.get_one::<PathBuf>("check-config").cloned(),
            plugin_new,
            probe,
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
    fn plugin_new_takes_a_kind_a_name_and_options() {
        let c = cli(&["plugin", "new", "--kind", "policy", "lru-ish"]);
        let n = c.plugin_new.expect("plugin new");
        assert_eq!(n.kind, crate::scaffold::Kind::Policy);
        assert_eq!(
            (n.name.as_str(), n.dir.as_path()),
            ("lru-ish", std::path::Path::new("lru-ish"))
        );
        assert!(
            command()
                .try_get_matches_from(["caskade", "plugin", "new", "--kind", "sieve", "x"])
                .is_err()
        );
        assert!(cli(&[]).plugin_new.is_none());
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
