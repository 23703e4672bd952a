#!/usr/bin/env bash
# Browser zstd benchmark (issue #7): the browser's own zstd decoding (fetch, Content-Encoding)
# against ruzstd compiled to WASM, on the relay's real zstd stream, in headless Chromium and
# Node 22. Builds the relay and the bench-only WASM module, then runs js/bench/zstd_browser.mjs
# and writes the `browser-zstd` section of BENCHMARKS.md. REPS=N sets the repetitions (15).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d js/node_modules/playwright-core ] || scripts/install-deps.sh
cargo build -p walcast-relay --bin walcast
cargo build -p walcast-bench-zstd-wasm --lib --profile wasm --target wasm32-unknown-unknown
dir=target/wasm32-unknown-unknown/wasm
wasm_opt=$(command -v wasm-opt || echo js/node_modules/.bin/wasm-opt)
"$wasm_opt" -O3 --strip-debug --strip-producers --enable-bulk-memory --enable-sign-ext \
  --enable-mutable-globals --enable-nontrapping-float-to-int \
  -o "$dir/walcast_bench_zstd_wasm.opt.wasm" "$dir/walcast_bench_zstd_wasm.wasm"
node js/bench/zstd_browser.mjs --write
