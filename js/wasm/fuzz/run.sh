#!/usr/bin/env bash
# Bounded fuzz run of the npm package's WASM Core (the fast row path, the flat writer, the
# packed-message splitter, the MessagePack writer): `js/wasm/fuzz/run.sh [seconds]` (default 60).
# Needs a nightly toolchain (`rustup toolchain install nightly`). Uses cargo-fuzz when it is
# installed; otherwise builds the libFuzzer binary with the same flags cargo-fuzz passes.
set -euo pipefail
cd "$(dirname "$0")"
SECS="${1:-60}"
# Under CI the run is reproducible: a fixed seed and a fixed number of runs, so a change lands
# or not on its own merits, not on the fuzzer's luck that day. Outside CI it explores freely.
if [ -n "${CI:-}" ]; then
  LIMIT=(-seed=1 -runs="${WALCAST_WASM_FUZZ_RUNS:-100000}")
else
  LIMIT=(-max_total_time="$SECS")
fi
mkdir -p corpus/core artifacts/core
# Seed with the real PostgreSQL captures: each capture's first messages as one 0xA5-separated
# sequence (a Relation first, so rows take the typed fast path), and a few single messages.
if [ -z "$(ls -A corpus/core)" ] && command -v python3 >/dev/null 2>&1; then
  python3 - <<'PY'
import glob, os
for path in glob.glob("../../../tests/fixtures/*.hex") + glob.glob("../../../decoder/tests/fixtures/pg15/*.hex"):
    msgs = [bytes.fromhex(l.strip()[2:]) for l in open(path) if l.strip()]
    base = os.path.basename(path)[:-4]
    for n in (8, 40):
        open(f"corpus/core/{base}-seq{n}", "wb").write(b"\xa5".join(msgs[:n]))
    for i, m in enumerate(msgs[:20]):
        open(f"corpus/core/{base}-{i}", "wb").write(m)
PY
fi
if command -v cargo-fuzz >/dev/null 2>&1; then
  exec cargo +nightly fuzz run core corpus/core regressions -- "${LIMIT[@]}" -max_len=8192
fi
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# An explicit --target keeps RUSTFLAGS away from build scripts and proc macros, as cargo-fuzz does.
HOST="$(rustc +nightly -vV | sed -n 's/^host: //p')"
cargo +nightly build --release --bin core --target "$HOST"
"./target/$HOST/release/core" corpus/core regressions -artifact_prefix=artifacts/core/ \
  "${LIMIT[@]}" -max_len=8192
