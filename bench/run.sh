#!/usr/bin/env bash
# Runs walcast's benchmarks and writes their sections into BENCHMARKS.md.
#   bench/run.sh relay     end-to-end relay throughput, latency (with the walsender's own floor and
#                          the relay's per-stage histograms), memory per client. Env: ROWS, RATES,
#                          CLIENTS, REPEAT (runs per figure, median reported; default 3), LAT_SECS,
#                          WALCAST_BIN (another relay binary, e.g. a baseline build, to compare).
#   bench/run.sh bootstrap what 100 and 1,000 simultaneous bootstraps cost PostgreSQL, beside a
#                          snapshot + COPY per client. Env: CLIENTS (100,1000), ROWS, WRITE_RATE.
#   bench/run.sh decoder   decoder parse / typed-row / JSON throughput on captured streams (criterion)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-relay}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
out=$(mktemp)
case "$what" in
  relay)
    cargo build --release -p walcast-relay --bin walcast -p walcast-bench --bins
    ./target/release/relay_bench | tee "$out" ;;
  bootstrap)
    cargo build --release -p walcast-relay --bin walcast -p walcast-bench --bins
    ./target/release/bootstrap_bench | tee "$out" ;;
  decoder)
    cargo bench -p walcast-decoder --bench decode
    python3 bench/criterion_table.py > "$out"; cat "$out" ;;
  *) echo "unknown benchmark $what" >&2; exit 2 ;;
esac
python3 - "$what" "$out" <<'PY'
import sys, pathlib
name, out = sys.argv[1], pathlib.Path(sys.argv[2]).read_text()
path = pathlib.Path("BENCHMARKS.md")
text = path.read_text() if path.exists() else "# Benchmarks\n\nFigures measured on this project's machines; each section says the command that reproduces it.\n"
start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
block = f"{start}\n{out.strip()}\n{end}"
if start in text:
    before, rest = text.split(start, 1)
    text = before + block + rest.split(end, 1)[1]
else:
    text = text.rstrip() + "\n\n" + block + "\n"
path.write_text(text)
PY
echo "BENCHMARKS.md updated ($what)"
