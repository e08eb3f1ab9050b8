//! The engine's fuzz targets (record and hint decoders, recovery over arbitrary
//! directory contents), a few thousand inputs each here; `bench/fuzz.sh` runs them for
//! a fixed time (`CASKADE_FUZZ_SECS`) in a release build.

use caskade_engine::fuzzing;
use std::path::PathBuf;
use std::time::Duration;

fn budget() -> (Duration, u64) {
    match std::env::var("CASKADE_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(secs) => (Duration::from_secs(secs), 0),
        None => (Duration::ZERO, 3000),
    }
}

fn findings() -> PathBuf {
    std::env::var_os("CASKADE_FUZZ_FINDINGS")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("caskade-fuzz-findings"))
}

fn go(name: &str, seeds: Vec<Vec<u8>>, target: fn(&[u8]), runs: u64) {
    let (time, min) = budget();
    let min = if min == 0 { 0 } else { runs.min(min) };
    let seed = std::env::var("CASKADE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED);
    let r = fuzzing::run(name, &seeds, target, time, min, seed, &findings());
    println!(
        "fuzz {name}: {} executions, {} findings",
        r.executions,
        r.findings.len()
    );
    assert!(r.findings.is_empty(), "{name} panicked on {:?}", r.findings);
}

#[test]
fn fuzz_record_decoder_and_segment_walk() {
    go(
        "record",
        fuzzing::record_seeds(),
        fuzzing::record_target,
        5000,
    );
}

#[test]
fn fuzz_hint_meta_and_sync_mark_decoders() {
    go("hint", fuzzing::hint_seeds(), fuzzing::hint_target, 5000);
}

#[test]
fn fuzz_recovery_over_arbitrary_directories() {
    go(
        "recovery",
        fuzzing::recovery_seeds(),
        fuzzing::recovery_target,
        300,
    );
}
