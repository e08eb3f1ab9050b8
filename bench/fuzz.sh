#!/usr/bin/env bash
# Runs every fuzz target for a fixed time each (default 60 s; FUZZ_SECS=N to change)
# in a release build, with the stable harness in caskade_engine::fuzzing: the record
# and hint decoders and the segment walk, recovery over arbitrary directory contents
# (in the in-memory fault storage), the request parser (also checked to parse the
# same however the bytes are split) and the config parser. Prints executions and
# findings per target; a panicking input is saved under $CASKADE_FUZZ_FINDINGS
# (default: the temp dir's caskade-fuzz-findings) and fails the run.
# CASKADE_FUZZ_SEED=N changes the mutation sequence.
set -euo pipefail
cd "$(dirname "$0")/.."
export CASKADE_FUZZ_SECS="${FUZZ_SECS:-60}"
status=0
run() {
  local out
  out=$(mktemp)
  if ! cargo test --release "$@" -- --nocapture --test-threads 1 >"$out" 2>&1; then
    status=1
  fi
  # libtest prints a test's output after its name, on the same line.
  grep -oE 'fuzz [a-z]+: [0-9]+ executions, [0-9]+ findings|panicked at .*|FAILED.*|^error(\[E[0-9]+\])?: .*' "$out" || true
  rm -f "$out"
}
run -p caskade-engine --test fuzz
run -p caskade --bin caskade fuzz_tests
exit "$status"
