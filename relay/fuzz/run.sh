#!/usr/bin/env bash
# Bounded fuzz run of the relay's client-facing parsers and the row-scope re-encoder:
# `relay/fuzz/run.sh [seconds]` (default 60, split between the two targets).
# Needs a nightly toolchain (`rustup toolchain install nightly`). Uses cargo-fuzz when it is
# installed; otherwise builds the libFuzzer binaries with the same flags cargo-fuzz passes.
set -euo pipefail
cd "$(dirname "$0")"
SECS="${1:-60}"
HALF=$(( SECS / 2 > 0 ? SECS / 2 : 1 ))
# Under CI the run is reproducible: a fixed seed and a fixed number of runs per target, so a
# change lands or not on its own merits, not on the fuzzer's luck that day. Outside CI it
# explores freely for SECS seconds in all. 1,000,000 runs of each took 24 s here (2 busy cores).
if [ -n "${CI:-}" ]; then
  LIMIT=(-seed=1 -runs="${WALCAST_RELAY_FUZZ_RUNS:-1000000}")
else
  LIMIT=(-max_total_time="$HALF")
fi
TARGETS=(client_input scope_change)
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t" "regressions/$t"
  # Seed an empty corpus with the hand-written inputs.
  if [ -z "$(ls -A "corpus/$t")" ]; then cp "seeds/$t/"* "corpus/$t/"; fi
done
if command -v cargo-fuzz >/dev/null 2>&1; then
  for t in "${TARGETS[@]}"; do
    cargo +nightly fuzz run "$t" "corpus/$t" "regressions/$t" -- "${LIMIT[@]}" -max_len=8192
  done
  exit 0
fi
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# An explicit --target keeps RUSTFLAGS away from build scripts and proc macros, as cargo-fuzz does.
HOST="$(rustc +nightly -vV | sed -n 's/^host: //p')"
cargo +nightly build --release --bins --target "$HOST"
for t in "${TARGETS[@]}"; do
  "./target/$HOST/release/$t" "corpus/$t" "regressions/$t" -artifact_prefix="artifacts/$t/" \
    "${LIMIT[@]}" -max_len=8192
done
