#!/usr/bin/env bash
# Runs test suites under a sanitizer in their own build directory, compiling only the tests of
# those suites and what they start (sluice, sluice-example-server).
#   tools/sanitize.sh asan [SUITE...]   AddressSanitizer + UndefinedBehaviorSanitizer in
#                                       build/asan (default: every suite)
#   tools/sanitize.sh tsan [SUITE...]   ThreadSanitizer in build/tsan (default: engine policy;
#                                       tools/test.sh: engine policy net threads)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?usage: tools/sanitize.sh asan|tsan [SUITE...]}
shift
case "$mode" in
  asan) dir=build/asan sanitize=address,undefined default_suites=() extra=() ;;
  # -Wno-tsan: GCC warns that TSan does not model atomic_thread_fence, which Asio's
  # fenced blocks use (the control plane's admin server); the limits hub's wake handshake
  # (net/limit_hub.cc) fences only atomics, so no report can hinge on a fence.
  tsan) dir=build/tsan sanitize=thread default_suites=(engine policy) extra=(-Dcpp_args=-Wno-tsan) ;;
  *) echo "sanitize: unknown mode $mode" >&2; exit 2 ;;
esac
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=("${default_suites[@]}")

if [ ! -f "$dir/build.ninja" ]; then
  meson setup "$dir" --buildtype=debug -Dbenchmarks=false -Db_sanitize="$sanitize" "${extra[@]}" \
    >/dev/null
fi
# Regenerate first when meson.build changed since the last setup: introspection reads the
# build directory as it was configured.
ninja -C "$dir" build.ninja >/dev/null
# The ninja targets of the chosen suites' tests and of what they depend on.
mapfile -t targets < <(meson introspect "$dir" --tests | python3 -c '
import json, os, sys
build, suites = os.path.abspath(sys.argv[1]), set(sys.argv[2:])
targets = json.load(open(os.path.join(build, "meson-info", "intro-targets.json")))
by_id = {t["id"]: t for t in targets}
out = set()
for t in json.load(sys.stdin):
    if suites and not suites.intersection(s.split(":")[-1] for s in t["suite"]):
        continue
    out.add(os.path.relpath(t["cmd"][0], build))
    for d in t.get("depends", []):
        if d in by_id:
            out.update(os.path.relpath(f, build) for f in by_id[d]["filename"])
print("\n".join(sorted(out)))
' "$dir" "${suites[@]}")
echo "sanitize: $mode: building ${#targets[@]} targets for suites: ${suites[*]:-all}" >&2
ninja -C "$dir" "${targets[@]}"
suite_args=()
for s in "${suites[@]}"; do suite_args+=(--suite "$s"); done
# halt_on_error: a sanitizer report fails the test (meson's defaults, made explicit).
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1:print_summary=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=1:detect_leaks=1:print_summary=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
meson test -C "$dir" --no-rebuild --print-errorlogs --num-processes 2 "${suite_args[@]}"
