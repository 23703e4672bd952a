#!/usr/bin/env bash
# Bounded fuzz run of the npm package's WASM Core (the fast row path, the flat writer, the
# packed-message splitter, the MessagePack writer): `js/wasm/fuzz/run.sh [seconds]` (default 60).
# Needs a nightly toolchain (`rustup toolchain install nightly`); see scripts/fuzz-lib.sh.
set -euo pipefail
cd "$(dirname "$0")"
SECS="${1:-60}"
mkdir -p corpus/core
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
# 100,000 runs took 49-54 s under CI here.
. ../../../scripts/fuzz-lib.sh
fuzz_run "$SECS" "${WALCAST_WASM_FUZZ_RUNS:-100000}" 8192 core
