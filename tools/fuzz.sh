#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, -Dfuzzers=true, with ASan+UBSan) in build/fuzz and runs
# each for a bounded time, starting from its corpus (tests/fuzz/corpus/<name>, copied: new
# inputs stay in build/fuzz/work). A crash leaves its input in build/fuzz/artifacts and fails.
#   tools/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      (default 20 s, every target)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
shift || true
build=build/fuzz
# target -> corpus directory and dictionary (empty: none)
declare -A corpus=(
  [http1_request_fuzz]=http1_request [http1_response_fuzz]=http1_response
  [sse_fuzz]=sse [jsonrpc_fuzz]=jsonrpc [policy_loader_fuzz]=policy_loader
  [tools_filter_fuzz]=tools_filter [request_path_fuzz]=request_path
)
declare -A dict=(
  [http1_request_fuzz]=tests/fuzz/http.dict [http1_response_fuzz]=tests/fuzz/http.dict
  [sse_fuzz]=tests/fuzz/http.dict
)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(http1_request_fuzz http1_response_fuzz sse_fuzz jsonrpc_fuzz
  policy_loader_fuzz tools_filter_fuzz request_path_fuzz)

if [ ! -f "$build/build.ninja" ]; then
  CXX=clang++ CC=clang meson setup "$build" --buildtype=debugoptimized -Dfuzzers=true \
    -Dbenchmarks=false -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
ninja -C "$build" "${targets[@]/#/tests/fuzz/}"

mkdir -p "$build/artifacts"
failed=()
for t in "${targets[@]}"; do
  work="$build/work/$t"
  mkdir -p "$work"
  cp -n "tests/fuzz/corpus/${corpus[$t]}"/* "$work"/ 2>/dev/null || true
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$build/artifacts/$t-")
  [ -z "${dict[$t]:-}" ] || args+=(-dict="${dict[$t]}")
  echo "fuzz: $t for ${seconds}s" >&2
  if UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
     "$build/tests/fuzz/$t" "${args[@]}" "$work" >"$build/$t.log" 2>&1; then
    grep -E "stat::number_of_executed_units|stat::new_units_added" "$build/$t.log" |
      tr '\n' ' ' | sed "s/^/fuzz: $t: /; s/\$/\n/" >&2
  else
    echo "fuzz: $t FAILED; log: $build/$t.log" >&2
    tail -40 "$build/$t.log" >&2
    failed+=("$t")
  fi
done
[ ${#failed[@]} -eq 0 ] || { echo "fuzz: failed: ${failed[*]}" >&2; exit 1; }
