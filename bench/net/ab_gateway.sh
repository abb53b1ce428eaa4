#!/usr/bin/env bash
# Two or more builds of the gateway side by side, for changes too small for the noise of one
# run: each `sluice serve --shards 1` (or a noop_proxy build: a NAME starting with noop)
# listens on its own port on CPU 1 in front of one sluice-example-server on CPU 0, and wrk
# (CPU 0, 1 thread, CONNS connections, bench/net/tools_call.lua) drives them in turn, ROUNDS
# times, so a change in the machine's load hits every build alike. Prints each round and each
# build's median server CPU per proxied call (utime+stime over the run / calls) and its
# user-space part, and how many calls were not answered 200 (those are cheaper and skew the
# CPU figure: compare CPU only between builds that fail none).
#
#   bench/net/ab_gateway.sh NAME=BINARY NAME=BINARY...     (ROUNDS=10, SECS=3, CONNS=64)
#   e.g. bench/net/ab_gateway.sh old=/tmp/sluice-old new=build/release/tools/sluice/sluice
#   TARGET_PATH=/v1/decide PIPELINE=16 bench/net/ab_gateway.sh ...   the decision service instead
#   (per decision, pipelined; TARGET_PATH defaults to /mcp, PIPELINE to 1)
#
# Needs wrk. Uses ports 18200 (upstream) and 18201.. (one per build), which must be free.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/bench/net/common.sh"
build=${BUILD:-$root/build/release}
upstream=$build/tools/example_server/sluice-example-server
[ $# -ge 1 ] || { sed -n '2,14p' "$0"; exit 2; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
write_policy "$work/policy.json"
ports_free $(seq 18200 $((18200 + $#)))
taskset -c 0 "$upstream" --listen 127.0.0.1:18200 >/dev/null & pids+=($!)
names=() ports=() spids=()
port=18200
for arg in "$@"; do
  name=${arg%%=*} bin=${arg#*=} port=$((port + 1))
  if [[ $name == noop* ]]; then
    taskset -c 1 "$bin" $port 18200 >/dev/null 2>&1 &
  else
    taskset -c 1 "$bin" serve --policy "$work/policy.json" --listen 127.0.0.1:$port --shards 1 \
      --upstream http://127.0.0.1:18200/mcp >/dev/null 2>&1 &
  fi
  spids+=($!) pids+=($!) names+=("$name") ports+=($port)
done
wait_port 18200
for p in "${ports[@]}"; do wait_port "$p"; done
tck=$(getconf CLK_TCK)
for ((r = 1; r <= ${ROUNDS:-10}; r++)); do
  line="round $r:"
  for i in "${!names[@]}"; do
    read -ra f < "/proc/${spids[$i]}/stat"; u0=${f[13]} k0=${f[14]}
    out=$(PIPELINE=${PIPELINE:-1} TARGET_PATH=${TARGET_PATH:-/mcp} taskset -c 0 \
          wrk -t1 -c"${CONNS:-64}" -d"${SECS:-3}s" \
          -s "$root/bench/net/tools_call.lua" "http://127.0.0.1:${ports[$i]}")
    read -ra f < "/proc/${spids[$i]}/stat"; u1=${f[13]} k1=${f[14]}
    calls=$(awk '/requests in/ {print $1}' <<<"$out")
    failed=$(awk '/Non-2xx/ {print $5}' <<<"$out")
    printf '%s %s %s %s %s\n' "${names[$i]}" "$calls" $((u1 - u0)) $((k1 - k0)) "${failed:-0}" \
      >> "$work/results"
    line+=" ${names[$i]} $(awk -v n="$calls" -v u=$((u1 - u0)) -v k=$((k1 - k0)) -v t="$tck" \
      'BEGIN { printf "%.2f", (u + k) / t / n * 1e6 }')"
  done
  echo "$line"
done
python3 - "$work/results" "$tck" <<'PY'
import statistics, sys
tck = int(sys.argv[2])
runs = {}
for line in open(sys.argv[1]):
    name, calls, ut, st, failed = line.split()
    calls, ut, st, failed = int(calls), int(ut), int(st), int(failed)
    runs.setdefault(name, []).append(
        ((ut + st) / tck / calls * 1e6, ut / tck / calls * 1e6, calls, failed))
print(f"{'build':<10} {'us CPU/call':>12} {'of it user':>11} {'calls/round':>12} {'not 200':>8}"
      f"   (medians of {len(next(iter(runs.values())))} rounds; not 200: all rounds)")
for name, v in runs.items():
    print(f"{name:<10} {statistics.median(x[0] for x in v):>12.2f}"
          f" {statistics.median(x[1] for x in v):>11.2f} {statistics.median(x[2] for x in v):>12.0f}"
          f" {sum(x[3] for x in v):>8}")
PY
