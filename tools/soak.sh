#!/usr/bin/env bash
# Soak run: sluice serve in front of sluice-example-server under heavy load from `sluice bench`
# (MCP calls through the gateway and decisions on /v1/decide at once) for a bounded time,
# sampling the sluice process's RSS and open descriptors every second. Fails when either grows
# after warm-up (the first third of the run): RSS by more than 16 MiB or 10 %, descriptors by
# more than 16. Samples go to BUILD/soak/samples.tsv.
#   tools/soak.sh [SECONDS] [BUILD_DIR]     (default 90 s, build/release if built, else build/debug)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-90}
build=${2:-}
if [ -z "$build" ]; then
  build=build/debug
  [ -x build/release/tools/sluice/sluice ] && build=build/release
fi
sluice=$build/tools/sluice/sluice
server=$build/tools/example_server/sluice-example-server
[ -x "$sluice" ] && [ -x "$server" ] || { echo "soak: build $build first" >&2; exit 2; }
out=$build/soak
rm -rf "$out" && mkdir -p "$out"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
# Starts a server with stdout on a FIFO and reads its readiness line (no polling); sets addr to
# its HOST:PORT and pid to its process id.
start() {
  local name=$1
  shift
  mkfifo "$out/$name.fifo"
  "$@" >"$out/$name.fifo" 2>"$out/$name.err" &
  pid=$!
  pids+=($pid)
  exec {fd}<"$out/$name.fifo"
  local line=""
  read -r -t 15 line <&$fd || true
  [[ "$line" == *" listening on "* ]] || { echo "soak: $name did not start: $line" >&2; cat "$out/$name.err" >&2; exit 1; }
  addr=$(sed -E 's/.* listening on ([^ ]+).*/\1/' <<<"$line")
}
start upstream "$server" --listen 127.0.0.1:0
up=$addr
start sluice "$sluice" serve --listen 127.0.0.1:0 --shards 2 \
  --policy tools/examples/policy.json --upstream "http://$up/mcp"
gw=$addr
spid=$pid
echo "soak: sluice (pid $spid) on $gw in front of $up, ${seconds}s of load" >&2

"$sluice" bench -c 64 -t 1 -d "$seconds" --json "http://$gw/mcp" >"$out/bench_mcp.json" 2>"$out/bench_mcp.err" &
b1=$!
"$sluice" bench -c 32 -t 1 -p 4 -d "$seconds" --json "http://$gw/v1/decide" >"$out/bench_decide.json" 2>"$out/bench_decide.err" &
b2=$!

printf "second\trss_kib\tfds\n" >"$out/samples.tsv"
for ((t = 1; t <= seconds; t++)); do
  sleep 1  # the sampling interval
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$spid/status")
  fds=$(find "/proc/$spid/fd" -mindepth 1 -maxdepth 1 | wc -l)
  printf "%d\t%d\t%d\n" "$t" "$rss" "$fds" >>"$out/samples.tsv"
done
wait $b1 $b2 || { echo "soak: sluice bench failed" >&2; cat "$out"/bench_*.err >&2; exit 1; }
kill -TERM "$spid"
wait "$spid" || { echo "soak: sluice did not exit 0 after SIGTERM" >&2; cat "$out/sluice.err" >&2; exit 1; }

python3 - "$out" "$seconds" <<'PY'
import json, sys
out, seconds = sys.argv[1], int(sys.argv[2])
rows = [list(map(int, l.split("\t"))) for l in open(f"{out}/samples.tsv").read().splitlines()[1:]]
warm = max(1, len(rows) // 3)
base, rest = rows[warm - 1], rows[warm - 1:]
rss_max = max(r[1] for r in rest); fds_max = max(r[2] for r in rest); fds_min = min(r[2] for r in rest)
def rate(name):
    try:
        j = json.load(open(f"{out}/bench_{name}.json"))
        return j.get("requests_per_second") or j.get("throughput") or j.get("rps")
    except Exception:
        return None
step = max(1, len(rows) // 10)
print("soak: second  rss_MiB  fds")
for r in rows[::step] + ([rows[-1]] if (len(rows) - 1) % step else []):
    print(f"soak: {r[0]:6d}  {r[1] / 1024:7.1f}  {r[2]:4d}")
grow = rss_max - base[1]
print(f"soak: after warm-up (t={base[0]}s): RSS {base[1] / 1024:.1f} -> max {rss_max / 1024:.1f} MiB "
      f"(+{grow / 1024:.1f}), fds {fds_min}..{fds_max}; "
      f"load: mcp {rate('mcp')} req/s, decide {rate('decide')} req/s")
ok = grow <= max(16 * 1024, base[1] // 10) and fds_max - base[2] <= 16
print("soak: flat" if ok else "soak: NOT FLAT")
sys.exit(0 if ok else 1)
PY
