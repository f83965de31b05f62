#!/usr/bin/env bash
# Runs libFuzzer targets (make fuzz): each for FUZZ_SECONDS, from its seed corpus and regression
# inputs, growing a working corpus in $FUZZ_DIR/corpus/<target> (kept between runs, not in git).
# Prints one line per target (executions, seconds, crashes), appends it to $FUZZ_DIR/stats.txt,
# and fails when any target crashed, leaked, timed out or ran out of memory: the input is then in
# $FUZZ_DIR/crashes/<target>/; fix the bug and keep the input in tests/fuzz/regress/<target>/.
#   usage: FUZZ_DIR=build/fuzz FUZZ_SECONDS=60 tests/fuzz/run.sh target...
set -uo pipefail
cd "$(dirname "$0")/../.."
dir=${FUZZ_DIR:-build/fuzz}
secs=${FUZZ_SECONDS:-60}
rss=${FUZZ_RSS_MB:-2048}
timeout=${FUZZ_TIMEOUT:-10}
failed=() total_execs=0 total_secs=0
for t in "$@"; do
    bin="$dir/$t"
    work="$dir/corpus/$t" crashes="$dir/crashes/$t"
    log="$dir/logs/$t.log"
    mkdir -p "$work" "$crashes" "$dir/logs"
    seeds=()
    for d in "tests/fuzz/corpus/$t" "tests/fuzz/regress/$t"; do [[ -d "$d" ]] && seeds+=("$d"); done
    dict=()
    case "$t" in
    schema | enrich | ingest_body | rag_body) dict=(-dict=tests/fuzz/dict/json.dict) ;;
    config) dict=(-dict=tests/fuzz/dict/config.dict) ;;
    esac
    start=$(date +%s)
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
        "$bin" -max_total_time="$secs" -rss_limit_mb="$rss" -timeout="$timeout" -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$crashes/" "${dict[@]}" "$work" "${seeds[@]}" \
        >"$log" 2>&1
    rc=$?
    took=$(($(date +%s) - start))
    execs=$(grep -aoE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
    execs=${execs:-0}
    ncrash=$(find "$crashes" -type f -newer "$log" 2>/dev/null | wc -l)
    ((rc != 0 && ncrash == 0)) && ncrash=1
    total_execs=$((total_execs + execs)) total_secs=$((total_secs + took))
    line=$(printf 'fuzz %-12s %12d executions in %4d s (%d/s), %d crash(es), corpus %d inputs' \
        "$t" "$execs" "$took" "$((execs / (took > 0 ? took : 1)))" "$ncrash" \
        "$(find "$work" -type f | wc -l)")
    echo "$line"
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $line" >>"$dir/stats.txt"
    if ((rc != 0)); then
        failed+=("$t")
        grep -aE 'ERROR|SUMMARY|fuzz check failed|Test unit written' "$log" | head -n 8 | sed 's/^/    | /'
        echo "    | log: $log"
    fi
done
echo "fuzz: $total_execs executions in $total_secs s over $# target(s); ${#failed[@]} failed${failed[*]:+: ${failed[*]}}"
((${#failed[@]} == 0))
