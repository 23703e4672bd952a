#!/usr/bin/env bash
# Recaptures the pgoutput fixtures under tests/fixtures/ from a fresh PostgreSQL 15 cluster
# (`.hex`, one `\x…` message per line), then regenerates `.expected.jsonl` with the native
# decoder. Review the diff before committing: the expected files are the conformance contract
# for the WASM and Node builds.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run -q -p walcast-tests --example capture -- "${1:-15}"
WALCAST_BLESS=1 cargo test -q -p walcast-tests --test fixtures
du -ch tests/fixtures/* | tail -1
