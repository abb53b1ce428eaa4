#!/usr/bin/env bash
# Sluice against nginx on the same machine, in one run, the way docs/benchmarks.md reports:
# servers pinned to CPU 1, wrk (1 thread, 64 connections) and the upstream pinned to CPU 0.
# For each: requests/s, p50, p99 (wrk) and the server's own CPU time per request
# (utime+stime of its processes over the run / requests) and the kernel's share of it.
# The gateway pair is followed by bench/net/noop_proxy in front of the same upstream: the
# cost of the four socket operations of a proxied call alone (no HTTP, no policy), the floor
# under both. Last, the issue's three targets, computed from the medians (met or NOT met).
#
#   bench/net/vs_nginx.sh [BUILD_DIR] [SECONDS]      (default build/release, 5; ROUNDS=3)
#
# Needs wrk and nginx (apt install wrk nginx-light). Ports 18180-18184 must be free.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/bench/net/common.sh"
ports_free 18180 18181 18183 18184
build=${1:-$root/build/release}
secs=${2:-5}
sluice=$build/tools/sluice/sluice
upstream=$build/tools/example_server/sluice-example-server
noop_proxy=$build/bench/net/noop_proxy
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

answer='{"decision":"allow","tool":"read_file","rule":"/tools/read_file","reason":""}'
write_policy "$work/policy.json"
cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
worker_cpu_affinity 10;
daemon off;
error_log $work/nginx-error.log warn;
pid $work/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream example { server 127.0.0.1:18183; keepalive 64; }
  server {
    listen 127.0.0.1:18181 reuseport backlog=4096;
    location /v1/decide { default_type application/json; return 200 '$answer'; }
    location /mcp { proxy_pass http://example; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGINX

cpu_ticks() {  # utime stime, summed over the given pids
  local u=0 k=0 f
  for p in "$@"; do
    read -ra f < "/proc/$p/stat"
    u=$((u + f[13])) k=$((k + f[14]))
  done
  echo "$u $k"
}

taskset -c 0 "$upstream" --listen 127.0.0.1:18183 >/dev/null & pids+=($!)
taskset -c 1 "$sluice" serve --policy "$work/policy.json" --listen 127.0.0.1:18180 --shards 1 \
  --upstream http://127.0.0.1:18183/mcp >/dev/null & sluice_pid=$!; pids+=($sluice_pid)
nginx -c "$work/nginx.conf" -p "$work" & pids+=($!)
taskset -c 1 "$noop_proxy" 18184 18183 >/dev/null & noop_pid=$!; pids+=($noop_pid)
wait_port 18180; wait_port 18181; wait_port 18183; wait_port 18184
nginx_worker=$(pgrep -P "$(cat "$work/nginx.pid")")

tck=$(getconf CLK_TCK)
rounds=${ROUNDS:-3}
results=$work/results
run() {  # name port path pipeline pids...: one measurement appended to $results
  local name=$1 port=$2 path=$3 depth=$4; shift 4
  local c0 c1 out
  read -r u0 k0 <<<"$(cpu_ticks "$@")"
  out=$(PIPELINE=$depth TARGET_PATH=$path taskset -c 0 wrk -t1 -c64 -d"${secs}s" --latency \
        -s "$root/bench/net/tools_call.lua" "http://127.0.0.1:$port")
  read -r u1 k1 <<<"$(cpu_ticks "$@")"
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$rps" "$p50" "$p99" $((u1 - u0)) $((k1 - k0)) >> "$results"
}
# Pairs run back to back, and every pair ROUNDS times in turn, so a change in the machine's
# load hits both servers of a pair alike; the table shows each row's median round.
for ((r = 1; r <= rounds; r++)); do
  run "sluice decide (x1)" 18180 /v1/decide 1 "$sluice_pid"
  run "nginx return 200 (x1)" 18181 /v1/decide 1 "$nginx_worker"
  run "sluice decide (pipelined x16)" 18180 /v1/decide 16 "$sluice_pid"
  run "nginx return 200 (pipelined x16)" 18181 /v1/decide 16 "$nginx_worker"
  run "sluice gateway -> example (x1)" 18180 /mcp 1 "$sluice_pid"
  run "nginx proxy_pass -> example (x1)" 18181 /mcp 1 "$nginx_worker"
  run "noop_proxy floor -> example (x1)" 18184 /mcp 1 "$noop_pid"
done
python3 - "$results" "$tck" "$secs" "$rounds" <<'PY'
import statistics, sys
path, tck, secs, rounds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
rows = {}
for line in open(path):
    name, rps, p50, p99, ut, st = line.rstrip("\n").split("\t")
    rps = float(rps)
    cpu = (int(ut) + int(st)) / tck / (rps * secs) * 1e6 if rps else float("inf")
    kern = int(st) / max(1, int(ut) + int(st))
    rows.setdefault(name, []).append((cpu, rps, p50, p99, kern))
print(f"{rounds} round(s) of {secs:g} s; each row is its median round by CPU per request")
print(f"{'server':<34} {'req/s':>10} {'p50':>9} {'p99':>9} {'us CPU/req':>11} {'kernel':>7}"
      f"  {'us CPU/req, every round':<}")
for name, runs in rows.items():
    med = sorted(runs)[len(runs) // 2]
    cpu, rps, p50, p99, kern = med
    each = " ".join(f"{r[0]:.2f}" for r in runs)
    print(f"{name:<34} {rps:>10.0f} {p50:>9} {p99:>9} {cpu:>11.2f} {kern:>6.0%}  {each}")

# The issue's targets, from the medians above; the gateway's also round by round (each
# round's pair ran back to back).
def median(name, i):
    runs = rows[name]
    return sorted(runs)[len(runs) // 2][i]
def ratio_rounds(a, b, i=0):
    return [x[i] / y[i] for x, y in zip(rows[a], rows[b])]
d1s, d1n = "sluice decide (x1)", "nginx return 200 (x1)"
x16s, x16n = "sluice decide (pipelined x16)", "nginx return 200 (pipelined x16)"
gw, ng = "sluice gateway -> example (x1)", "nginx proxy_pass -> example (x1)"
d1 = median(d1s, 0) / median(d1n, 0)
x16 = median(x16s, 1) / median(x16n, 1)
g = median(gw, 0) / median(ng, 0)
met = lambda ok: "met" if ok else "NOT met"
def rounds(each, ok):  # each round's ratio (its pair ran back to back), and how many meet it
    return (f"rounds {' '.join(f'{r:.2f}' for r in each)}, {sum(ok(r) for r in each)} of"
            f" {len(each)} meet it")
print()
print(f"decide x1, CPU vs nginx:          {d1:.2f}x (target <= 1x: {met(d1 <= 1)});"
      f" {rounds(ratio_rounds(d1s, d1n), lambda r: r <= 1)}")
print(f"decide x16, throughput vs nginx:  {x16:.2f}x (target >= 4x: {met(x16 >= 4)});"
      f" {rounds(ratio_rounds(x16s, x16n, 1), lambda r: r >= 4)}")
print(f"gateway, CPU vs nginx:            {g:.2f}x (target <= 0.67x: {met(g <= 0.67)});"
      f" {rounds(ratio_rounds(gw, ng), lambda r: r <= 0.67)}")
floor = median("noop_proxy floor -> example (x1)", 0)
print(f"floor, CPU vs nginx:              {floor / median(ng, 0):.2f}x;"
      f" gateway vs floor {median(gw, 0) / floor:.2f}x")
PY
