//! The engine's fuzz targets (record and hint decoders, recovery over arbitrary
//! directory contents), a few thousand inputs each here; `bench/fuzz.sh` runs them for
//! a fixed time (`CASKADE_FUZZ_SECS`) in a release build.

use caskade_engine::fuzzing::{self, run_from_env};

#[test]
fn fuzz_record_decoder_and_segment_walk() {
    run_from_env(
        "record",
        &fuzzing::record_seeds(),
        fuzzing::record_target,
        5000,
    );
}

#[test]
fn fuzz_hint_meta_and_sync_mark_decoders() {
    run_from_env("hint", &fuzzing::hint_seeds(), fuzzing::hint_target, 3000);
}

#[test]
fn fuzz_recovery_over_arbitrary_directories() {
    run_from_env(
        "recovery",
        &fuzzing::recovery_seeds(),
        fuzzing::recovery_target,
        300,
    );
}
