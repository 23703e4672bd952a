#!/usr/bin/env bash
# Wire benchmark (issue #7): bytes per change a client receives, walcast (each compression
# setting) vs wal2json v1/v2 and test_decoding, plus relay CPU per MB and latency with and
# without compression, against a throwaway PostgreSQL 15. Writes the `wire` section of
# BENCHMARKS.md.   LATENCY=0 skips the latency runs; CPU_CLIENTS=N sets the clients of the
# CPU phase (8); WIRE_DUMP=DIR keeps every stream as received, for offline compressor trials.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f /usr/lib/postgresql/15/lib/wal2json.so ] || scripts/install-deps.sh
cargo build --release -p walcast-relay --bin walcast -p walcast-bench --bin wire_bench
out=$(mktemp)
./target/release/wire_bench | tee "$out"
python3 - "$out" <<'PY'
import sys, pathlib
out = pathlib.Path(sys.argv[1]).read_text()
path = pathlib.Path("BENCHMARKS.md")
text = path.read_text()
start, end = "<!-- wire:start -->", "<!-- wire:end -->"
block = f"{start}\n{out.strip()}\n{end}"
if start in text:
    before, rest = text.split(start, 1)
    text = before + block + rest.split(end, 1)[1]
else:
    text = text.rstrip() + "\n\n" + block + "\n"
path.write_text(text)
PY
echo "BENCHMARKS.md updated (wire)"
