#!/usr/bin/env bash
# Runs every benchmark (tests/bench/<name>/run.sh); each prints its figures next to their anchors
# and one "RESULT name value=.. anchor=.. ratio=.." line per figure. BENCH=pattern runs a subset.
set -uo pipefail
cd "$(dirname "$0")/../.."
export BUILD=${BUILD:-build}
mkdir -p "$BUILD/bench"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
rc=0
for r in tests/bench/*/run.sh; do
    name=$(basename "$(dirname "$r")")
    [[ -n "${BENCH:-}" && "$name" != *"$BENCH"* ]] && continue
    echo "== $name"
    "$r" || { echo "bench $name failed"; rc=1; }
done | tee "$BUILD/bench/results.txt"
exit "${PIPESTATUS[0]:-$rc}"
