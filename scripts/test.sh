#!/usr/bin/env bash
# The README's test command (and what CI runs): installs missing prerequisites, then runs every
# check and test suite. Each step prints a banner so a failure is easy to place.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n==== %s ====\n' "$*"; }

step "install missing prerequisites"
scripts/install-deps.sh

step "format and lint"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

step "decoder builds for wasm32-unknown-unknown (no IO, no threads)"
cargo build -p walcast-decoder --target wasm32-unknown-unknown

step "Rust tests (real PostgreSQL clusters: 15, and 14/16/17/18 where installed)"
cargo test --workspace

if [ -f js/package.json ]; then
  step "npm package: WASM build, Node and browser tests"
  scripts/build-js.sh
  (cd js && npm test)
fi

step "bounded fuzz run of the decoder"
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  decoder/fuzz/run.sh "${WALCAST_FUZZ_SECS:-60}"
else
  echo "skipped: no nightly toolchain here (cargo fuzz needs one); property tests above cover random input"
fi

step "bounded fuzz run of the relay's client-facing parsers and row-scope re-encoder"
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  relay/fuzz/run.sh "${WALCAST_FUZZ_SECS:-60}"
else
  echo "skipped: no nightly toolchain here; relay/tests/fuzz_regressions.rs above replays the seeds"
fi

step "bounded fuzz run of the npm package's WASM Core (fast row path, flat buffers, packing)"
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  js/wasm/fuzz/run.sh "${WALCAST_FUZZ_SECS:-60}"
else
  echo "skipped: no nightly toolchain here; js/wasm/tests/fuzz.rs above runs the same body on mutated captures"
fi

step "all checks passed"
