//! Where the example plugins built by plugins/build.sh are, for the tests of every
//! crate (each crate's manifest sits one level below the repository root).

use std::path::PathBuf;

/// The built example plugin `name` (e.g. `http_fetcher.wasm`); fails the test with the
/// command to run if it is missing.
pub fn example(name: &str) -> PathBuf {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/plugins")).join(name);
    assert!(
        p.exists(),
        "{} is missing: run `bash plugins/build.sh` (tests/run.sh does)",
        p.display()
    );
    p
}
