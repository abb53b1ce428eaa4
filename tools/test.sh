#!/usr/bin/env bash
# Runs every test on a fresh Debian 12 machine: installs what is missing, builds a debug
# build in build/debug, and runs the whole meson test suite (unit, integration, fuzz corpus
# replay). Its output ends with meson's summary; the exit status is the suite's.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
if [ ! -f build/debug/build.ninja ]; then
  meson setup build/debug --buildtype=debug
fi
ninja -C build/debug
meson test -C build/debug --print-errorlogs --num-processes 2
