#!/usr/bin/env bash
# Instructions per proxied call in the gateway's own code (user space), and where they go:
# runs `sluice serve` under callgrind in front of sluice-example-server, drives it with wrk
# (the ~300-byte tools/call of bench/net/tools_call.lua, 4 connections) and divides each
# function's inclusive instruction count by the calls served. Repeatable on a busy machine,
# unlike CPU time; the kernel's part (the socket operations) is not counted.
#   bench/net/icount_gateway.sh [BUILD_DIR] [SECONDS]     (default build/release, 8)
#   TARGET_PATH=/v1/decide PIPELINE=16 bench/net/icount_gateway.sh   per pipelined decision
#   FOOTPRINT=1 bench/net/icount_gateway.sh   also the hot code's size (bench/net/code_footprint.py)
#   KEEP_PROFILE=FILE bench/net/icount_gateway.sh   keeps the callgrind profile
# Needs valgrind and wrk. Ports 18190 and 18193 must be free.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/bench/net/common.sh"
build=${1:-$root/build/release}
secs=${2:-8}
work=$(mktemp -d)
pids=()
cleanup() {
  # SIGKILL for sluice under valgrind: on an early exit (port busy, not ready, non-2xx) it
  # would otherwise drain slowly or not at all, and `wait` would hang.
  if [ -n "${sluice_pid:-}" ]; then kill -KILL "$sluice_pid" 2>/dev/null || true; fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
write_policy "$work/policy.json"
ports_free 18190 18193
"$build/tools/example_server/sluice-example-server" --listen 127.0.0.1:18193 >/dev/null & pids+=($!)
valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" ${FOOTPRINT:+--dump-instr=yes} \
  "$build/tools/sluice/sluice" serve --policy "$work/policy.json" --listen 127.0.0.1:18190 \
  --shards 1 --upstream http://127.0.0.1:18193/mcp >"$work/out" 2>"$work/err" & sluice_pid=$!
for _ in $(seq 300); do grep -q listening "$work/out" && port_up 18193 && break; sleep 0.1; done
grep -q listening "$work/out" && port_up 18193 || { echo "not ready" >&2; cat "$work/err" >&2; exit 1; }
wrk_out=$(PIPELINE=${PIPELINE:-1} TARGET_PATH=${TARGET_PATH:-/mcp} wrk -t1 -c4 -d"${secs}s" -s "$root/bench/net/tools_call.lua" \
          http://127.0.0.1:18190)
calls=$(awk '/requests in/ {print $1}' <<<"$wrk_out")
if grep -q "Non-2xx" <<<"$wrk_out"; then  # an error answer costs less: it would skew the count
  echo "some calls were not answered 200:" >&2; echo "$wrk_out" >&2; exit 1
fi
# Dump through vgdb (it interrupts the blocking io_uring_enter under valgrind, which a
# SIGTERM does not always), then stop it the hard way: the profile is written.
timeout 60 callgrind_control --dump "$sluice_pid" >/dev/null 2>&1
kill -KILL "$sluice_pid"
wait "$sluice_pid" 2>/dev/null || true
profile=$(ls "$work"/cg.out.* 2>/dev/null | head -1)
[ -n "$profile" ] || { echo "callgrind wrote no profile" >&2; exit 1; }
if [ -n "${KEEP_PROFILE:-}" ]; then cp "$profile" "$KEEP_PROFILE"; fi
echo "$calls calls proxied under callgrind; instructions per call (inclusive):"
callgrind_annotate --inclusive=yes --threshold=100 "$profile" 2>/dev/null |
  awk -v n="$calls" '/^ *[0-9,]+ \( *[0-9.]+%\) / {
    ir = $1; gsub(",", "", ir)
    name = $0; sub(/^ *[0-9,]+ \( *[0-9.]+%\) +/, "", name)
    sub(/^\?\?\?:/, "", name); sub(/ \[[^]]*\]$/, "", name)
    gsub(/\(anonymous namespace\)/, "{anon}", name)
    sub(/\(.*$/, "", name)
    if (ir / n >= 100 && shown++ < 50) printf "%8d  %s\n", ir / n, name }'
if [ -n "${FOOTPRINT:-}" ]; then python3 "$root/bench/net/code_footprint.py" "$profile" "$calls"; fi
