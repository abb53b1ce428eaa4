#!/usr/bin/env bash
# Sluice against nginx on the same machine, in one run, the way docs/benchmarks.md reports:
# servers pinned to CPU 1, wrk (1 thread, 64 connections) and the upstream pinned to CPU 0.
# For each: requests/s, p50, p99 (wrk) and the server's own CPU time per request
# (utime+stime of its processes over the run / requests).
#
#   bench/net/vs_nginx.sh [BUILD_DIR] [SECONDS]      (default build/release, 5)
#
# Needs wrk and nginx (apt install wrk nginx-light). Ports 18180-18183 must be free.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build/release}
secs=${2:-5}
sluice=$build/tools/sluice/sluice
upstream=$build/tools/example_server/sluice-example-server
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

answer='{"decision":"allow","tool":"read_file","rule":"/tools/read_file","reason":""}'
cat > "$work/policy.json" <<JSON
{"version":"1","default":"deny","tools":{"read_file":{
  "deny_if":[{"path":"args.path","op":"regex","value":"^/(etc|root)/"}],
  "limits":[{"counter":"reads","window":"day","max":4000000000,"scope":"grant"}]}}}
JSON
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

wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; return 1; }
cpu_ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $t; }

taskset -c 0 "$upstream" --listen 127.0.0.1:18183 >/dev/null & pids+=($!)
taskset -c 1 "$sluice" serve --policy "$work/policy.json" --listen 127.0.0.1:18180 --shards 1 \
  --upstream http://127.0.0.1:18183/mcp >/dev/null & sluice_pid=$!; pids+=($sluice_pid)
nginx -c "$work/nginx.conf" -p "$work" & pids+=($!)
wait_port 18180; wait_port 18181; wait_port 18183
nginx_worker=$(pgrep -P "$(cat "$work/nginx.pid")")

tck=$(getconf CLK_TCK)
printf '%-34s %10s %9s %9s %12s\n' server req/s p50 p99 "us CPU/req"
run() {  # name port path pipeline pids...
  local name=$1 port=$2 path=$3 depth=$4; shift 4
  local c0 c1 out
  c0=$(cpu_ticks "$@")
  out=$(PIPELINE=$depth TARGET_PATH=$path taskset -c 0 wrk -t1 -c64 -d"${secs}s" --latency \
        -s "$root/bench/net/tools_call.lua" "http://127.0.0.1:$port")
  c1=$(cpu_ticks "$@")
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  awk -v n="$name" -v r="$rps" -v a="$p50" -v b="$p99" -v c=$((c1 - c0)) -v t="$tck" -v s="$secs" \
    'BEGIN { printf "%-34s %10.0f %9s %9s %12.2f\n", n, r, a, b, 1e6 * c / t / (r * s) }'
}
run "sluice decide (x1)" 18180 /v1/decide 1 "$sluice_pid"
run "nginx return 200 (x1)" 18181 /v1/decide 1 "$nginx_worker"
run "sluice decide (pipelined x16)" 18180 /v1/decide 16 "$sluice_pid"
run "nginx return 200 (pipelined x16)" 18181 /v1/decide 16 "$nginx_worker"
run "sluice gateway -> example (x1)" 18180 /mcp 1 "$sluice_pid"
run "nginx proxy_pass -> example (x1)" 18181 /mcp 1 "$nginx_worker"
