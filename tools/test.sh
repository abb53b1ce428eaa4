#!/usr/bin/env bash
# Runs every test on a fresh Debian 12 machine. Each step says what it does; a failing step is
# reported and the others still run. The last step is the whole meson suite on a debug build,
# so the output ends with meson's summary; the exit status is non-zero if anything failed.
#   FUZZ_SECONDS (20) per fuzz target, SOAK_SECONDS (15) for the short soak.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
failed=()
step() {
  local name=$1
  shift
  echo "==> $name ($((SECONDS - start))s)" >&2
  "$@" || { echo "==> $name FAILED" >&2; failed+=("$name"); }
}
debug_build() {
  [ -f build/debug/build.ninja ] || meson setup build/debug --buildtype=debug
  ninja -C build/debug
}

step "install dependencies (apt, npm)" tools/install-deps.sh
step "build: debug (gcc, werror)" debug_build
step "asan+ubsan: every suite" tools/sanitize.sh asan
step "tsan: engine, policy, net and threads suites" tools/sanitize.sh tsan engine policy net threads
step "fuzz: each libFuzzer target for ${FUZZ_SECONDS:-20}s from its corpus" tools/fuzz.sh "${FUZZ_SECONDS:-20}"
step "soak: ${SOAK_SECONDS:-15}s of load on the debug build, RSS and fds flat" \
  tools/soak.sh "${SOAK_SECONDS:-15}" build/debug
step "package: build the .deb, install, serve, purge" tools/package.sh

echo "==> meson test: unit, integration, fuzz corpora ($((SECONDS - start))s)" >&2
[ ${#failed[@]} -eq 0 ] || echo "==> steps that FAILED before this one: ${failed[*]}" >&2
status=0
meson test -C build/debug --print-errorlogs --num-processes 2 || status=$?
[ ${#failed[@]} -eq 0 ] || status=1
exit $status
