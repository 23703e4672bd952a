#!/usr/bin/env bash
# Bounded fuzz run for CI: `decoder/fuzz/run.sh [seconds]` (default 60).
# Needs a nightly toolchain (`rustup toolchain install nightly`). Uses cargo-fuzz when it is
# installed; otherwise builds the libFuzzer binary with the same flags cargo-fuzz passes.
set -euo pipefail
cd "$(dirname "$0")"
SECS="${1:-60}"
# Under CI the run is reproducible: a fixed seed and a fixed number of runs (about a minute
# here), so a change lands or not on its own merits, not on the fuzzer's luck that day. Outside
# CI it explores freely for SECS seconds.
if [ -n "${CI:-}" ]; then
  LIMIT=(-seed=1 -runs="${WALCAST_FUZZ_RUNS:-600000}")
else
  LIMIT=(-max_total_time="$SECS")
fi
mkdir -p corpus/decode artifacts/decode
# Seed with the real PostgreSQL captures (one message per file, and each capture as one
# 0xA5-separated sequence, which is how the target splits sequences).
if [ -z "$(ls -A corpus/decode)" ] && command -v python3 >/dev/null 2>&1; then
  python3 - <<'PY'
import glob, os
for path in glob.glob("../tests/fixtures/pg15/*.hex"):
    msgs = [bytes.fromhex(l.strip()[2:]) for l in open(path) if l.strip()]
    base = os.path.basename(path)[:-4]
    for i, m in enumerate(msgs[:200]):
        open(f"corpus/decode/{base}-{i}", "wb").write(m)
    open(f"corpus/decode/{base}-seq", "wb").write(b"\xa5".join(msgs[:200]))
PY
fi
if command -v cargo-fuzz >/dev/null 2>&1; then
  exec cargo +nightly fuzz run decode corpus/decode regressions -- "${LIMIT[@]}" -max_len=4096
fi
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# An explicit --target keeps RUSTFLAGS away from build scripts and proc macros, as cargo-fuzz does.
HOST="$(rustc +nightly -vV | sed -n 's/^host: //p')"
cargo +nightly build --release --bin decode --target "$HOST"
"./target/$HOST/release/decode" corpus/decode regressions -artifact_prefix=artifacts/decode/ \
  "${LIMIT[@]}" -max_len=4096
