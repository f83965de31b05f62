#!/usr/bin/env bash
# Runs every test program: unit tests (cmocka), then integration tests (C programs and scripts).
# Prints one line per program and closes with "N passed, N failed" counted per test case.
#   TESTS=pattern   run only programs whose name contains pattern (several: "kafka 0006 0013")
#   TEST_LEAVE=1    keep temporary directories (tests honour it)
#   TN_TEST_TIMEOUT_MULT=N  multiply timeouts (sanitizer runs)
set -uo pipefail
BUILD=${BUILD:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
logs="$BUILD/test-logs"
mkdir -p "$logs"
mult=${TN_TEST_TIMEOUT_MULT:-1}
case "$BUILD" in *asan*) mult=$((mult < 3 ? 3 : mult)) ;; esac
export TN_TEST_TIMEOUT_MULT=$mult
export TN_BUILD_DIR="$top/$BUILD"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:detect_odr_violation=0}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$top/tests/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

progs=()
for f in "$BUILD"/tests/unit/* "$BUILD"/tests/integration/* tests/integration/*.sh tests/integration/*.py; do
    [[ -f "$f" && ( -x "$f" || "$f" == *.py ) ]] || continue
    [[ "$f" == *.d || "$f" == *.o ]] && continue
    if [[ -n "${TESTS:-}" ]]; then
        want=0
        for pat in $TESTS; do [[ "$(basename "$f")" == *"$pat"* ]] && want=1; done
        ((want)) || continue
    fi
    progs+=("$f")
done

passed=0 failed=0 failed_names=()
for f in "${progs[@]}"; do
    name=$(basename "$f")
    log="$logs/$name.log"
    start=$(date +%s.%N)
    case "$f" in
    *.py) cmd=(/usr/bin/python3 -m pytest -q -p no:cacheprovider "$f") ;;
    *) cmd=("$f") ;;
    esac
    timeout -k 10 $((600 * mult)) "${cmd[@]}" >"$log" 2>&1
    rc=$?
    secs=$(printf '%.1f' "$(echo "$(date +%s.%N) - $start" | bc)")
    # Count test cases: cmocka summaries, pytest summaries, or our own "N passed, N failed" line.
    p=$(grep -aoE '^\[  PASSED  \] [0-9]+ test' "$log" | grep -oE '[0-9]+' | paste -sd+ | bc)
    fl=$(grep -aoE '^\[  FAILED  \] [0-9]+ test' "$log" | grep -oE '[0-9]+' | paste -sd+ | bc)
    if [[ -z "$p$fl" ]]; then
        # ours: "N passed, N failed"; pytest: "=== 1 failed, 17 passed in 50.2s ==="
        line=$(grep -aE '^([A-Za-z]+: )?[0-9]+ passed(, [0-9]+ failed)?|^(=+ )?[0-9]+ (passed|failed).* in [0-9.]+s' "$log" | tail -1)
        p=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+')
        fl=$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+')
    fi
    p=${p:-0} fl=${fl:-0}
    if ((rc != 0 && fl == 0)); then fl=1; fi # crashed, timed out or leaked: count it
    if ((rc == 0 && p == 0 && fl == 0)); then p=1; fi
    passed=$((passed + p))
    failed=$((failed + fl))
    if ((rc == 0 && fl == 0)); then
        printf 'PASS  %-40s %4d case(s) %6ss\n' "$name" "$p" "$secs"
    else
        printf 'FAIL  %-40s rc=%d %d failed %6ss  (log: %s)\n' "$name" "$rc" "$fl" "$secs" "$log"
        # the lines that say what failed first (a CI excerpt may keep only the head), then the tail
        grep -aE '^\[ +(ERROR|FAILED|LINE) +\]|ERROR: (Address|Leak|Undefined)Sanitizer|runtime error|^E +|Traceback' \
            "$log" | awk '!seen[$0]++' | head -n 10 | sed 's/^/    ! /'
        tail -n 40 "$log" | sed 's/^/    | /'
        failed_names+=("$name")
    fi
done
echo
((${#failed_names[@]})) && echo "failed: ${failed_names[*]}"
echo "$passed passed, $failed failed"
((failed == 0 && ${#progs[@]} > 0))
