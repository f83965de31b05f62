#!/usr/bin/env bash
# make bench: every benchmark (tests/bench/<name>/run.sh), each printing its figures next to their
# anchors and one "RESULT name value=.. anchor=.. ratio=.. goal=.." line per figure. The whole
# output goes to build/bench/results.txt and each bench's to build/bench/<name>.txt; then
# tools/bench/results.py parses the RESULT lines into build/bench/results.json (with the machine,
# the versions, the date and the commit) and build/bench/results.md (the README's table:
# tools/bench/results.py readme --write README.md puts it there).
#   BENCH=pattern       run the benches whose name contains the pattern; several: BENCH="e2e scaling"
#                       (a subset updates its benches in results.json and keeps the others' figures)
#   BENCH_SKIP=pattern  leave out the benches whose name contains it (e.g. BENCH_SKIP=voice)
# Knobs of each bench: the header of its run.sh.
set -uo pipefail
cd "$(dirname "$0")/../.."
export BUILD=${BUILD:-build}
out=$BUILD/bench
mkdir -p "$out"

match() { # NAME PATTERNS: does NAME contain one of the space-separated PATTERNS?
    local p
    for p in $2; do [[ "$1" == *"$p"* ]] && return 0; done
    return 1
}

names=()
for r in tests/bench/*/run.sh; do
    name=$(basename "$(dirname "$r")")
    [[ -n "${BENCH:-}" ]] && ! match "$name" "$BENCH" && continue
    [[ -n "${BENCH_SKIP:-}" ]] && match "$name" "$BENCH_SKIP" && continue
    names+=("$name")
done
((${#names[@]})) || { echo "bench: nothing matches BENCH='${BENCH:-}'"; exit 1; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.1f GB", $2 / 1048576}' /proc/meminfo), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "benches: ${names[*]}"
BENCH_GIT_COMMIT=$(git rev-parse HEAD 2>/dev/null)
BENCH_GIT_DIRTY=$([[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]] && echo 1 || echo 0)
export BENCH_GIT_COMMIT BENCH_GIT_DIRTY
rc=0
runs=$out/runs.tsv # name, status, seconds: what results.py records of this run
: >"$runs"
start=$(date +%s)
for name in "${names[@]}"; do
    echo "== $name"
    t0=$(date +%s)
    tests/bench/"$name"/run.sh 2>&1 | tee "$out/$name.txt"
    st=${PIPESTATUS[0]}
    secs=$(($(date +%s) - t0))
    if ((st)); then
        echo "bench $name failed (exit $st)"
        rc=1
    fi
    echo "== $name: ${secs} s"
    printf '%s\t%s\t%s\n' "$name" "$st" "$secs" >>"$runs"
done 2>&1 | tee "$out/results.txt"
total=$(($(date +%s) - start))
grep -q $'\t[1-9][0-9]*\t' "$runs" && rc=1
/usr/bin/python3 tools/bench/results.py collect --runs "$runs" --dir "$out" || rc=1
echo "bench: ${#names[@]} benches in $((total / 60)) min $((total % 60)) s; build/bench/results.json, build/bench/results.md"
exit $rc
