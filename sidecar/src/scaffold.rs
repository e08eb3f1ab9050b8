//! `caskade plugin new`: writes a ready-to-build plugin crate of one kind (Cargo.toml,
//! `src/lib.rs` implementing the SDK's trait, a README with the build command and a
//! `caskade.yaml` that loads the result), as `cargo generate` would.

use std::path::{Path, PathBuf};

/// The kinds of plugin, as `--kind` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A compaction filter.
    Filter,
    /// An eviction policy.
    Policy,
    /// An origin fetcher.
    Fetcher,
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Kind, String> {
        match s {
            "filter" => Ok(Kind::Filter),
            "policy" => Ok(Kind::Policy),
            "fetcher" => Ok(Kind::Fetcher),
            other => Err(format!("'{other}' is not one of filter, policy, fetcher")),
        }
    }
}

/// What differs between kinds, filled into the templates.
struct Template {
    kind: &'static str,
    kind_text: &'static str,
    trait_name: &'static str,
    export_macro: &'static str,
    target: &'static str,
    features: &'static str,
    code: &'static str,
    /// The configuration that loads the plugin (`{{lib}}`/`{{target}}` filled in).
    yaml: &'static str,
    /// How to see it working.
    see_it: &'static str,
    target_note: &'static str,
}

impl Kind {
    fn template(self) -> Template {
        match self {
            Kind::Filter => Template {
                kind: "filter",
                kind_text: "compaction filter",
                trait_name: "CompactionFilter",
                export_macro: "export_compaction_filter",
                target: "wasm32-unknown-unknown",
                features: "\"filter\"",
                code: include_str!("scaffold/filter.rs.tmpl"),
                yaml: "plugins:\n  compaction_filter:\n    path: target/{{target}}/release/{{lib}}.wasm\n    settings:\n      drop_prefixes: \"tmp:\"\n      max_ttl_secs: \"86400\"\n",
                see_it: "See it work: write keys, then ask for a full compaction, which shows every\nkey to the filter at once (`BGREWRITEAOF` starts the same in the background;\nwithout either, compaction runs when data files hold enough garbage):\n\n```sh\nredis-cli SET tmp:1 a\nredis-cli SET user:1 b\nredis-cli CASKADE COMPACT   # filter_removals: 1\nredis-cli EXISTS tmp:1     # 0\nredis-cli TTL user:1       # 86400 or a little less\nredis-cli INFO plugins     # filter_calls, filter_failures\n```",
                target_note: "",
            },
            Kind::Policy => Template {
                kind: "policy",
                kind_text: "eviction policy",
                trait_name: "EvictionPolicy",
                export_macro: "export_eviction_policy",
                target: "wasm32-unknown-unknown",
                features: "\"policy\"",
                code: include_str!("scaffold/policy.rs.tmpl"),
                yaml: "storage:\n  max_keys: 1000\nplugins:\n  eviction_policy:\n    path: target/{{target}}/release/{{lib}}.wasm\n",
                see_it: "See it work: with `max_keys: 1000`, caskade asks the policy for victims once\nthe keys are there:\n\n```sh\nfor i in $(seq 1 2000); do echo \"SET k$i v\"; done | redis-cli > /dev/null\nredis-cli DBSIZE           # 1000\nredis-cli INFO plugins     # policy_calls, policy_failures\n```\n\nThe trait's methods: `init(settings)`, `wants_keys()` (default false: ids only),\n`on_insert(keys)`, `on_access(ids)`, `on_remove(ids)`, `victims(n)` and\n`keep_on_reclaim(ids)`; `src/lib.rs` says when caskade calls each.",
                target_note: "",
            },
            Kind::Fetcher => Template {
                kind: "fetcher",
                kind_text: "origin fetcher",
                trait_name: "OriginFetcher",
                export_macro: "export_origin_fetcher",
                target: "wasm32-wasip2",
                features: "\"fetcher\", \"http\"",
                code: include_str!("scaffold/fetcher.rs.tmpl"),
                yaml: "read_through:\n  routes:\n    - prefix: \"item:\"\n      fetcher: target/{{target}}/release/{{lib}}.wasm\n      allowed_hosts: [\"127.0.0.1:8080\"]\n      ttl: 60s\n      settings:\n        base_url: http://127.0.0.1:8080/items/\n        strip_prefix: \"item:\"\n",
                see_it: "See it work: serve a file as `http://127.0.0.1:8080/items/42` (for instance\n`mkdir items && echo hello > items/42 && python3 -m http.server 8080`), then:\n\n```sh\nredis-cli GET item:42      # \"hello\\n\", fetched from the origin\nredis-cli GET item:42      # the same, from the cache\nredis-cli GET item:nope    # (nil), remembered as not found\nredis-cli INFO readthrough # fetches, fetch_failures per route\n```",
                target_note: "\nFetchers reach the network through `wasi:http`, so they are built for\n`wasm32-wasip2`, whose output is already a component.\n",
            },
        }
    }
}

/// Why a plugin crate was not written.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name cannot be a crate's.
    #[error(
        "'{0}' is not a valid plugin name (letters, digits, '-' and '_', starting with a letter)"
    )]
    BadName(String),
    /// The directory exists and is not empty.
    #[error("{0} exists and is not empty")]
    Exists(PathBuf),
    /// No SDK was given and the one caskade was built from is not here.
    #[error(
        "no caskade-plugin-sdk found at {0}: pass --sdk with the path of the SDK crate (plugins/sdk in caskade's source) or a git URL of caskade's repository"
    )]
    NoSdk(PathBuf),
    /// Writing failed.
    #[error("{path}: {error}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

/// Where the SDK comes from: the `caskade-plugin-sdk = { ... }` part of the manifest.
pub fn sdk_dependency(sdk: Option<&str>) -> Result<String, ScaffoldError> {
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let dir = match sdk {
        Some(url) if url.contains("://") || url.starts_with("git@") => {
            // Cargo finds the package by name anywhere in the repository.
            return Ok(format!("git = \"{}\"", quote(url)));
        }
        Some(path) => std::path::absolute(path).unwrap_or_else(|_| PathBuf::from(path)),
        // The SDK of the source tree this binary was built from, if it is still there.
        None => {
            let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/sdk");
            built.canonicalize().unwrap_or(built)
        }
    };
    if !dir.join("Cargo.toml").exists() {
        return Err(ScaffoldError::NoSdk(dir));
    }
    Ok(format!("path = \"{}\"", quote(&dir.display().to_string())))
}

fn valid_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.len() <= 64
}

/// The files of a new plugin crate, as (relative path, contents).
pub fn files(kind: Kind, name: &str, sdk: &str) -> Result<Vec<(PathBuf, String)>, ScaffoldError> {
    if !valid_name(name) {
        return Err(ScaffoldError::BadName(name.to_string()));
    }
    let t = kind.template();
    let lib = name.replace('-', "_");
    let fill = |text: &str| {
        text.replace("{{yaml}}", t.yaml)
            .replace("{{see_it}}", t.see_it)
            .replace("{{target_note}}", t.target_note)
            .replace("{{name}}", name)
            .replace("{{lib}}", &lib)
            .replace("{{kind}}", t.kind)
            .replace("{{kind_text}}", t.kind_text)
            .replace("{{trait}}", t.trait_name)
            .replace("{{macro}}", t.export_macro)
            .replace("{{target}}", t.target)
            .replace("{{features}}", t.features)
            .replace("{{sdk}}", sdk)
    };
    Ok(vec![
        (
            PathBuf::from("Cargo.toml"),
            fill(include_str!("scaffold/Cargo.toml.tmpl")),
        ),
        (PathBuf::from("src/lib.rs"), fill(t.code)),
        (
            PathBuf::from("README.md"),
            fill(include_str!("scaffold/README.md.tmpl")),
        ),
        (PathBuf::from("caskade.yaml"), fill(t.yaml)),
        (PathBuf::from(".gitignore"), "/target\n".to_string()),
    ])
}

/// Writes a new plugin crate into `dir` (created; refused if it holds anything).
pub fn write(kind: Kind, name: &str, dir: &Path, sdk: Option<&str>) -> Result<(), ScaffoldError> {
    let files = files(kind, name, &sdk_dependency(sdk)?)?;
    if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(ScaffoldError::Exists(dir.to_path_buf()));
    }
    for (rel, text) in files {
        let path = dir.join(rel);
        let write = || -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, text)
        };
        write().map_err(|error| ScaffoldError::Write {
            path: path.clone(),
            error,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_fills_every_placeholder() {
        for kind in [Kind::Filter, Kind::Policy, Kind::Fetcher] {
            for (path, text) in files(kind, "my-plugin", "path = \"/sdk\"").expect("files") {
                assert!(!text.contains("{{"), "{}: {text}", path.display());
            }
        }
        let f = files(Kind::Fetcher, "my-plugin", "path = \"/sdk\"").expect("files");
        let manifest = &f[0].1;
        assert!(manifest.contains("name = \"my-plugin\""));
        assert!(manifest.contains(
            "caskade-plugin-sdk = { path = \"/sdk\", features = [\"fetcher\", \"http\"] }"
        ));
        let yaml = &f[3].1;
        assert!(
            yaml.contains("target/wasm32-wasip2/release/my_plugin.wasm"),
            "{yaml}"
        );
        crate::config::Config::parse(yaml).expect("the YAML is a valid configuration");
        for kind in [Kind::Filter, Kind::Policy] {
            let f = files(kind, "p", "path = \"/sdk\"").expect("files");
            crate::config::Config::parse(&f[3].1).expect("valid configuration");
        }
    }

    #[test]
    fn bad_names_kinds_and_sdks_are_refused() {
        for name in ["", "1abc", "a b", "a/b", "ä"] {
            assert!(files(Kind::Filter, name, "").is_err(), "{name}");
        }
        assert!("sieve".parse::<Kind>().is_err());
        assert_eq!(
            sdk_dependency(Some("https://example.invalid/caskade.git")).expect("git"),
            "git = \"https://example.invalid/caskade.git\""
        );
        assert!(matches!(
            sdk_dependency(Some("/nonexistent/sdk")),
            Err(ScaffoldError::NoSdk(_))
        ));
        assert!(
            sdk_dependency(None)
                .expect("built from this tree")
                .starts_with("path = ")
        );
    }

    #[test]
    fn a_directory_with_files_is_not_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("keep"), "x").expect("write");
        let e = write(Kind::Filter, "p", dir.path(), None).expect_err("refused");
        assert!(matches!(e, ScaffoldError::Exists(_)), "{e}");
        let fresh = dir.path().join("new");
        write(Kind::Policy, "p", &fresh, None).expect("written");
        assert!(fresh.join("src/lib.rs").exists() && fresh.join("caskade.yaml").exists());
    }
}
