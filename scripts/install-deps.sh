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
