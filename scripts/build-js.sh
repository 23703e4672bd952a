#!/usr/bin/env bash
# Builds the npm package `walcast` into js/dist: one .wasm, ESM + CommonJS glue for Node, plain
# ESM for browsers/bundlers, and TypeScript types. Run from anywhere; needs what
# scripts/install-deps.sh installs (wasm32 target, wasm-bindgen CLI, node_modules; wasm-opt is
# optional). Size analysis: `twiggy top target/wasm32-unknown-unknown/wasm/walcast_wasm.wasm`.
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

# The `wasm` profile (root Cargo.toml): LTO, one codegen unit, panic=abort, opt-level 3 (fastest;
# measured on the narrow7 capture, "s" decodes ~13% slower for ~6 KB less gzipped, "z" ~2.5x
# slower). WALCAST_WASM_OPT_LEVEL=s (or z) builds a smaller module instead.
opt_level=${WALCAST_WASM_OPT_LEVEL:-3}
export CARGO_PROFILE_WASM_OPT_LEVEL=$opt_level
cargo build -p walcast-wasm --lib --profile wasm --target wasm32-unknown-unknown \
  --no-default-features --features "$features"
raw=$root/target/wasm32-unknown-unknown/wasm/walcast_wasm.wasm

rm -rf "$dist"
mkdir -p "$dist/gen" "$dist/node" "$dist/browser"
# wasm-opt runs before wasm-bindgen: Debian's wasm-opt (108) breaks the externref table that
# wasm-bindgen's output initializes, while optimizing its input is safe (exports are kept).
# wasm-opt (binaryen: apt, or npm `binaryen` in js/node_modules) is optional: without it the
# module is only what rustc and wasm-bindgen make of it (larger).
opt=$root/target/wasm32-unknown-unknown/wasm/walcast_wasm.opt.wasm
wasm_opt=$(command -v wasm-opt || true)
[ -z "$wasm_opt" ] && [ -x "$js/node_modules/.bin/wasm-opt" ] && wasm_opt=$js/node_modules/.bin/wasm-opt
# WALCAST_WASM_NAMES=1 keeps function names, for profiling (node --cpu-prof shows them).
strip=(--strip-debug --strip-producers)
[ "${WALCAST_WASM_NAMES:-0}" = 1 ] && strip=(-g --strip-dwarf)
if [ -n "$wasm_opt" ]; then
  "$wasm_opt" "-O$opt_level" "${strip[@]}" \
    --enable-bulk-memory --enable-sign-ext --enable-mutable-globals --enable-nontrapping-float-to-int \
    --enable-reference-types --enable-multivalue \
    -o "$opt" "$raw"
else
  echo "warning: wasm-opt not found (apt install binaryen, or npm i -D binaryen in js/): module not optimized" >&2
  cp "$raw" "$opt"
fi
wasm-bindgen --target web --out-dir "$dist/gen" --out-name walcast --no-typescript "$opt"
mv "$dist/gen/walcast_bg.wasm" "$dist/walcast.wasm"
sed -i "s|new URL('walcast_bg.wasm', import.meta.url)|new URL('../walcast.wasm', import.meta.url)|g" "$dist/gen/walcast.js"

esbuild=$js/node_modules/.bin/esbuild
common=(--bundle --log-level=warning --target=es2020 --legal-comments=none)
"$esbuild" "$js/src/index.node.js" "${common[@]}" --platform=node --format=esm --define:WALCAST_CJS=false --outfile="$dist/node/index.mjs"
# In the CommonJS build the import.meta branch is never taken (__dirname exists): silence it.
"$esbuild" "$js/src/index.node.js" "${common[@]}" --platform=node --format=cjs --define:WALCAST_CJS=true --outfile="$dist/node/index.cjs" \
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
