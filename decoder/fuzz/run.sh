#!/usr/bin/env bash
# Bounded fuzz run for CI: `decoder/fuzz/run.sh [seconds]` (default 60).
# Needs a nightly toolchain (`rustup toolchain install nightly`); see scripts/fuzz-lib.sh.
set -euo pipefail
cd "$(dirname "$0")"
SECS="${1:-60}"
mkdir -p corpus/decode
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
# Float texts, for the float reader checked against str::parse (fuzzing.rs).
floats = [b"1.2345678901234567e-300", b"16777217", b"2.4703282292062327e-324", b"0.1", b"-1.5e+20",
          b"3.4028235e38", b"9007199254740993.0000000001"]
open("corpus/decode/floats", "wb").write(b"\xa5".join(floats))
PY
fi
# 600,000 runs took 167-210 s under CI here (2026-12-07).
. ../../scripts/fuzz-lib.sh
fuzz_run "$SECS" "${WALCAST_FUZZ_RUNS:-600000}" 4096 decode
