#!/usr/bin/env bash
# Installs what building and testing Sluice needs on Debian 12, and nothing when it is all
# there already. Used by tools/test.sh and tools/run-example.sh; safe to run again.
set -euo pipefail

packages=(
  build-essential meson ninja-build pkg-config cmake
  liburing-dev libsimdjson-dev libmimalloc-dev libboost1.81-dev libre2-dev libssl-dev
  libhiredis-dev  # --cluster: the limits hub's round trip to Redis
  redis-server    # tests of --cluster start their own (tests/integration/redis_server.h)
  libgtest-dev libgmock-dev libbenchmark-dev
  clang libfuzzer-14-dev libclang-rt-14-dev
  python3 curl
  chromium  # the dashboard's end-to-end test (tests/integration/dashboard_test.cc)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- npm: MCP servers for the `sluice init` integration tests (package.json, pinned in
# package-lock.json). Skipped when node_modules already matches the lock file.
cd "$(dirname "$0")/.."
if [ -f package-lock.json ]; then
  if ! command -v npm >/dev/null; then
    echo "install-deps: installing nodejs npm" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "install-deps: npm ci" >&2
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
  fi
fi
