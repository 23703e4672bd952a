#!/usr/bin/env bash
# Builds the npm package `walcast` into js/dist: one .wasm, ESM + CommonJS glue for Node, plain
# ESM for browsers/bundlers, and TypeScript types. Run from anywhere; needs what
# scripts/install-deps.sh installs (wasm32 target, wasm-bindgen CLI, wasm-opt, node_modules).
#
#   scripts/build-js.sh                        build (prints the gzipped .wasm size)
#   scripts/build-js.sh --test                 build, then run the package's tests (what CI runs)
#   WALCAST_WASM_FEATURES="" scripts/build-js.sh   without MessagePack / JSON lines output (smaller)
#   WALCAST_WASM_OPT_LEVEL=z scripts/build-js.sh   smallest instead of fastest (default 3)
#   WALCAST_WASM_MAX_GZ=N                      fail above N gzipped bytes (regression guard)
set -euo pipefail
run_tests=0
[ "${1:-}" = "--test" ] && run_tests=1
cd "$(dirname "$0")/.."
root=$(pwd)
js=$root/js
dist=$js/dist
target_gz=61440 # the size goal: 60 KiB gzipped
max_gz=${WALCAST_WASM_MAX_GZ:-163840}
features=${WALCAST_WASM_FEATURES-msgpack,jsonl}

# Release profile for the wasm build only (env overrides keep the native profiles untouched; a
# separate target dir keeps them from invalidating native release builds). Optimized for speed:
# measured on the narrow7 capture, opt-level 3 decodes ~2.5x faster in WASM than "z" for ~10 KB
# more gzipped. WALCAST_WASM_OPT_LEVEL=z (or s) builds the smallest module instead.
opt_level=${WALCAST_WASM_OPT_LEVEL:-3}
export CARGO_PROFILE_RELEASE_OPT_LEVEL=$opt_level
export CARGO_PROFILE_RELEASE_LTO=true
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
export CARGO_PROFILE_RELEASE_PANIC=abort
export CARGO_PROFILE_RELEASE_DEBUG=false
export CARGO_PROFILE_RELEASE_STRIP=false  # wasm-bindgen needs the target_features section; wasm-opt strips
target_dir=$root/target/wasm
cargo build -p walcast-wasm --lib --release --target wasm32-unknown-unknown --target-dir "$target_dir" \
  --no-default-features --features "$features"
raw=$target_dir/wasm32-unknown-unknown/release/walcast_wasm.wasm

rm -rf "$dist"
mkdir -p "$dist/gen" "$dist/node" "$dist/browser"
# wasm-opt runs before wasm-bindgen: Debian's wasm-opt (108) breaks the externref table that
# wasm-bindgen's output initializes, while optimizing its input is safe (exports are kept).
opt=$target_dir/walcast_wasm.opt.wasm
# WALCAST_WASM_NAMES=1 keeps function names, for profiling (node --cpu-prof shows them).
strip=(--strip-debug --strip-producers)
[ "${WALCAST_WASM_NAMES:-0}" = 1 ] && strip=(-g --strip-dwarf)
wasm-opt "-O$opt_level" "${strip[@]}" \
  --enable-bulk-memory --enable-sign-ext --enable-mutable-globals --enable-nontrapping-float-to-int \
  --enable-reference-types --enable-multivalue \
  -o "$opt" "$raw"
wasm-bindgen --target web --out-dir "$dist/gen" --out-name walcast --no-typescript "$opt"
mv "$dist/gen/walcast_bg.wasm" "$dist/walcast.wasm"
sed -i "s|new URL('walcast_bg.wasm', import.meta.url)|new URL('../walcast.wasm', import.meta.url)|g" "$dist/gen/walcast.js"

esbuild=$js/node_modules/.bin/esbuild
common=(--bundle --log-level=warning --target=es2020 --legal-comments=none)
"$esbuild" "$js/src/index.node.js" "${common[@]}" --platform=node --format=esm --outfile="$dist/node/index.mjs"
# In the CommonJS build the import.meta branch is never taken (__dirname exists): silence it.
"$esbuild" "$js/src/index.node.js" "${common[@]}" --platform=node --format=cjs --outfile="$dist/node/index.cjs" \
  --log-override:empty-import-meta=silent
"$esbuild" "$js/src/index.browser.js" "${common[@]}" --platform=browser --format=esm --outfile="$dist/browser/index.js"
rm -rf "$dist/gen"
cp "$js/src/index.d.ts" "$dist/index.d.ts"

raw_size=$(stat -c %s "$dist/walcast.wasm")
gz_size=$(gzip -9 -c "$dist/walcast.wasm" | wc -c)
echo "walcast.wasm: $raw_size bytes, $gz_size bytes gzipped (opt-level $opt_level, features: ${features:-none}; goal $target_gz, limit $max_gz)"
if [ "$gz_size" -gt "$target_gz" ]; then
  echo "warning: walcast.wasm is above the $target_gz-byte gzipped goal" >&2
fi
if [ "$gz_size" -gt "$max_gz" ]; then
  echo "error: walcast.wasm is larger than $max_gz bytes gzipped" >&2
  exit 1
fi

if [ "$run_tests" = 1 ]; then
  # The live end-to-end tests use the relay binary when it is built; build it so they run.
  cargo build -q -p walcast-relay --bin walcast
  (cd "$js" && npm test)
fi
