#!/usr/bin/env bash
# Sluice beside its peers, in one go: installs the peers (apt: nginx haproxy wrk; npm: the MCP
# proxies pinned in package.json, into bench/compare/node_modules), builds Sluice in release,
# then runs compare.py: every server on CPU 1, the load (sluice bench) and the shared example
# upstream on CPU 0. Writes results/compare.md, results/compare.json and results/compare.svg.
#
#   bench/compare/run.sh [--seconds S] [--build DIR] [--out DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build="$root/build-bench"
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done

need=()
for b in nginx:nginx haproxy:haproxy wrk:wrk node:nodejs npm:npm python3:python3; do
  command -v "${b%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${b%%:*}" ] || need+=("${b##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ ! -x "$here/node_modules/.bin/mcp-proxy" ] || [ ! -x "$here/node_modules/.bin/passthrough-mcp-server" ]; then
  (cd "$here" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "$root" --buildtype=release -Dbenchmarks=false >/dev/null
fi
ninja -C "$build" tools/sluice/sluice tools/example_server/sluice-example-server >/dev/null
exec python3 "$here/compare.py" --build "$build" --node-bin "$here/node_modules/.bin" "${args[@]}"
