#!/usr/bin/env bash
# Instructions per decision for each scenario, and their ratios to the floor and to the
# one-tool policy. Counts instructions under callgrind (repeatable on a busy machine):
# runs each scenario at N and 2N iterations and divides the difference by N.
#   bench/policy/icount.sh [BUILD_DIR]     (default build/release)
set -euo pipefail
build=${1:-build/release}
bin=$build/bench/policy/decide_icount
n=20000
count() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 |
    awk '/Collected/ {print $NF}'
}
declare -A per
for s in floor extract allowed denied limited regex regex_miss big_policy big_policy_pattern; do
  a=$(count "$s" $n); b=$(count "$s" $((2 * n)))
  per[$s]=$(( (b - a) / n ))
  printf '%-20s %6d instructions per call\n' "$s" "${per[$s]}"
done
awk -v a="${per[allowed]}" -v f="${per[floor]}" -v b="${per[big_policy]}" 'BEGIN {
  printf "allowed / floor      %.2f   (target <= 2.0)\n", a / f
  printf "big_policy / allowed %.2f   (target <= 1.3)\n", b / a }'
