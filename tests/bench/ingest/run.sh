#!/usr/bin/env bash
# Records/s of the ingest enrichment pipeline (tickets.raw -> tickets.enriched, one Kafka
# transaction per batch) on devstack, for 1 KB and 8 KB tickets, next to
#   - the ceiling: a transactional consume-produce passthrough of the same bytes with the same
#     librdkafka settings and batching (passthrough.c, build/bench/bench-ingest);
#   - the peer: the same enrichment in Python with confluent-kafka (tests/bench/peers/ingest_enrich.py).
# Goals: Taina >= 50% of the ceiling, >= 10x Python, peak RSS < 30 MB. Next to them, the bound this
# machine sets: every core doing only the enrichment (its CPU per record on one thread without
# Kafka, build/bench/bench-enrich, the same tickets) and the passthrough's work (its CPU per record).
# Every measurement gets a fresh devstack preloaded with N tickets, and the system under test
# then drains that backlog. The rate is the steady state: records committed after the first
# transaction, over the time from that first commit until all N are committed (on devstack the
# first commit of a transactional producer sometimes waits ~1 s for its coordinators, which
# would otherwise decide the figure). Taina is timed from its /metrics
# (taina_ingest_records_out_total, scraped every 25 ms), the others time themselves.
# The passthrough and taina drain N records (long enough that a run is more than its first
# batches: at 20,000 1 KB / 5,000 8 KB records the passthrough's runs lasted 0.1-0.2 s and its
# rate moved 2-3x between runs); the Python peer, some 30x slower, drains N_PY.
#   tests/bench/ingest/run.sh        (from the repo top, after make; BENCH_N_1K, BENCH_N_8K,
#                                     BENCH_N_PY_1K, BENCH_N_PY_8K)
set -euo pipefail
cd "$(dirname "$0")/../../.."
BUILD=${BUILD:-build}
PY=/usr/bin/python3
n1k=${BENCH_N_1K:-100000}
n8k=${BENCH_N_8K:-20000}
npy1k=${BENCH_N_PY_1K:-20000}
npy8k=${BENCH_N_PY_8K:-5000}
# records per transaction, for taina (TAINA_INGEST_BATCH_MAX, its default when unset) and the
# passthrough alike (the Python peer keeps its 500: it is CPU-bound)
batch=${TAINA_INGEST_BATCH_MAX:-$(sed -n 's/.*"ingest_batch_max", TN_CFG_INT, batch_max, "\([0-9]*\)".*/\1/p' services/ingest/config.c)}
[[ "$batch" =~ ^[0-9]+$ ]] || { echo "bench ingest: no ingest_batch_max default in services/ingest/config.c" >&2; exit 1; }
# The programs measured (taina, the passthrough, the Python peer) run with the glibc tunables the
# image sets (docker/Dockerfile: ENV GLIBC_TUNABLES), as a deployment runs them; devstack without.
image_tunables=$(sed -n 's/^ *GLIBC_TUNABLES=\([^ \\]*\).*/\1/p' docker/Dockerfile)
[[ -n "$image_tunables" ]] || { echo "bench ingest: no GLIBC_TUNABLES in docker/Dockerfile" >&2; exit 1; }
reps=${BENCH_REPS:-5} # runs of the ceiling and of taina, taken in turn (median rate); the Python peer runs once
here=tests/bench/ingest

tmp=$(mktemp -d /tmp/taina-bench-ingest.XXXXXX)
pids=()
stop_pid() { # PID: SIGTERM, wait up to 20 s, then SIGKILL
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 200; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local p
    for p in "${pids[@]}"; do stop_pid "$p"; done
    pids=()
    if [[ -n "${TEST_LEAVE:-}" ]]; then echo "  logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
    echo "  FAILED: $*" >&2
    for f in "$tmp"/*.log; do [[ -s "$f" ]] && { echo "--- $f" >&2; tail -5 "$f" >&2; }; done
    exit 1
}

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# devstack_start TAG: a fresh devstack; sets $bs and $ds_pid.
devstack_start() {
    local bfile=$tmp/bootstrap.$1 i
    "$BUILD"/bin/taina-devstack --devstack-bootstrap-file "$bfile" \
        --devstack-topics-file schemas/topics.json >/dev/null 2>"$tmp/devstack.$1.log" &
    ds_pid=$!
    pids+=("$ds_pid")
    for ((i = 0; i < 100; i++)); do
        [[ -s "$bfile" ]] && break
        kill -0 "$ds_pid" 2>/dev/null || fail "devstack exited"
        sleep 0.1
    done
    [[ -s "$bfile" ]] || fail "devstack did not start"
    bs=$(<"$bfile")
}
devstack_stop() {
    stop_pid "$ds_pid"
    pids=("${pids[@]/$ds_pid/}")
}

# preload TAG N SIZE: fresh devstack with N tickets of SIZE bytes in tickets.raw.
preload() {
    devstack_start "$1"
    $PY $here/preload.py "$bs" "$2" "$3" >"$tmp/preload.$1.out" 2>"$tmp/preload.$1.log" ||
        fail "preload: $(tail -1 "$tmp/preload.$1.log")"
    avg=$(sed -n 's/.*(\([0-9]*\) bytes each.*/\1/p' "$tmp/preload.$1.out")
}

field() { awk -v k="$1" '{for (i = 1; i < NF; i++) if ($i == k) print $(i + 1)}' <<<"$2"; }

# run_ceiling TAG N SIZE / run_taina TAG N SIZE / run_python TAG N SIZE: one measurement on a
# fresh devstack; sets r_rps (records/s) and r_kb (peak RSS, kB).
run_ceiling() {
    local out
    preload "$1" "$2" "$3"
    out=$(GLIBC_TUNABLES=$image_tunables "$BUILD"/bench/bench-ingest "$bs" "$2" tickets.enriched bench-passthrough "$batch" \
        2>"$tmp/passthrough.$1.log") || fail "passthrough ($1)"
    devstack_stop
    r_rps=$(field records_per_s "$out") r_kb=$(field vmhwm_kb "$out") r_cpu=$(field cpu_us_per_record "$out")
}
run_taina() {
    local out port pid
    preload "$1" "$2" "$3"
    port=$(free_port)
    GLIBC_TUNABLES=$image_tunables TAINA_KAFKA_BROKERS=$bs TAINA_AUTH_DISABLED=1 TAINA_HTTP_PORT=$port \
        TAINA_HTTP_BIND=127.0.0.1 TAINA_LOG_LEVEL=warn \
        "$BUILD"/bin/taina-ingest >"$tmp/taina.$1.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    out=$($PY $here/watch_taina.py "$port" "$pid" "$2" 120 2>>"$tmp/taina.$1.log") ||
        fail "taina-ingest ($1)"
    stop_pid "$pid"
    pids=("${pids[@]/$pid/}")
    [[ "$(field dlq "$out")" == 0 ]] || echo "  warning: taina sent $(field dlq "$out") records to the DLQ" >&2
    devstack_stop
    r_rps=$(field records_per_s "$out") r_kb=$(field vmhwm_kb "$out") r_cpu=$(field cpu_us_per_record "$out")
}
run_python() {
    local out
    preload "$1" "$2" "$3"
    out=$(GLIBC_TUNABLES=$image_tunables $PY tests/bench/peers/ingest_enrich.py "$bs" "$2" tickets.enriched \
        bench-python-enrich schemas 2>"$tmp/python.$1.log") || fail "python peer ($1)"
    devstack_stop
    r_rps=$(field records_per_s "$out") r_kb=$(field maxrss_kb "$out") r_cpu=$(field cpu_us_per_record "$out")
}

# repeat LABEL N SIZE TIMES KIND...: runs each KIND in turn, TIMES rounds (interleaved, so that
# a slow spell of a shared machine falls on all of them alike); sets <kind>_rps and <kind>_cpu
# (the medians: records/s and CPU us per record), <kind>_kb (the largest peak) and <kind>_all
# (every run's rate).
repeat() {
    local label=$1 n=$2 size=$3 times=$4 i kind
    shift 4
    local -A rs=() cs=() kbs=()
    for ((i = 1; i <= times; i++)); do
        for kind in "$@"; do
            r_rps='' r_kb=0 r_cpu=''
            run_"$kind" "$label-$kind-$i" "$n" "$size"
            [[ -n "$r_rps" && -n "$r_cpu" ]] || fail "$kind ($label): no figure"
            rs[$kind]+="$r_rps "
            cs[$kind]+="$r_cpu "
            ((r_kb > ${kbs[$kind]:-0})) && kbs[$kind]=$r_kb
        done
    done
    for kind in "$@"; do
        local mid=$(((times + 1) / 2))
        printf -v "${kind}_all" '%s' "$(tr ' ' '\n' <<<"${rs[$kind]}" | grep . | sort -n | paste -sd/)"
        printf -v "${kind}_rps" '%s' "$(tr ' ' '\n' <<<"${rs[$kind]}" | grep . | sort -n | sed -n "${mid}p")"
        printf -v "${kind}_cpu" '%s' "$(tr ' ' '\n' <<<"${cs[$kind]}" | grep . | sort -n | sed -n "${mid}p")"
        printf -v "${kind}_kb" '%s' "${kbs[$kind]:-0}"
        printf -v "${kind}_seq" '%s' "${rs[$kind]}" # in the order run
    done
}

# measure LABEL N SIZE N_PY: sets ceil_*, taina_*, py_* (rps, kb, all, cpu).
measure() {
    repeat "$1" "$2" "$3" "$reps" ceiling taina
    ceil_rps=$ceiling_rps ceil_kb=$ceiling_kb ceil_all=$ceiling_all ceil_cpu=$ceiling_cpu
    # each taina run against the ceiling's run just before it (the same spell of a shared host)
    pairs=$(paste -d' ' <(tr ' ' '\n' <<<"$ceiling_seq" | grep .) <(tr ' ' '\n' <<<"$taina_seq" | grep .) |
        awk '{printf "%.2f\n", $2 / $1}' | sort -n | paste -sd/)
    repeat "$1" "$4" "$3" 1 python
    py_rps=$python_rps py_kb=$python_kb py_cpu=$python_cpu
}

mb() { echo "scale=1; $1 / 1024" | bc; }

report() { # LABEL N N_PY
    local label=$1 n=$2 npy=$3 r_ceil r_py r_cpu rss
    r_ceil=$(echo "scale=2; $taina_rps / $ceil_rps" | bc | sed 's/^\./0./')
    r_py=$(echo "scale=1; $taina_rps / $py_rps" | bc | sed 's/^\./0./')
    r_cpu=$(echo "scale=1; $py_cpu / $taina_cpu" | bc | sed 's/^\./0./')
    rss=$(mb "$taina_kb")
    printf '  %s tickets (N=%s, Python N=%s, %s bytes each on average)\n' "$label" "$n" "$npy" "$avg"
    printf '    taina-ingest (enrichment)    %8s records/s   CPU %6s us/record   peak RSS %5s MB   (median of %s)\n' "$taina_rps" "$taina_cpu" "$rss" "$taina_all"
    printf '    ceiling: C txn passthrough   %8s records/s   CPU %6s us/record   peak RSS %5s MB   (median of %s)\n' "$ceil_rps" "$ceil_cpu" "$(mb "$ceil_kb")" "$ceil_all"
    printf '    anchor: Python peer          %8s records/s   CPU %6s us/record   peak RSS %5s MB\n' "$py_rps" "$py_cpu" "$(mb "$py_kb")"
    printf '    taina/ceiling %s%% (goal >= 50%%), taina/python %sx (goal >= 10x), taina peak RSS %s MB (goal < 30 MB)\n' \
        "$(echo "$r_ceil * 100 / 1" | bc)" "$r_py" "$rss"
    printf '    taina/ceiling of each round (taina against the ceiling run just before it): %s\n' "$pairs"
    printf '    CPU per record: taina %s us, Python %s us (%sx less), the passthrough alone %s us\n' \
        "$taina_cpu" "$py_cpu" "$r_cpu" "$ceil_cpu"
    # What this machine allows at best: every core enriching (bench-enrich's CPU per record, one
    # thread, no Kafka) and moving the bytes (the passthrough's CPU per record), no broker, no waits.
    local e_cpu bound r_bound
    e_cpu=$(awk "/enrich_${label}_cpu_us_per_record/ {print \$2}" <<<"$enrich_out")
    bound=$(echo "$(nproc) * 1000000 / ($e_cpu + $ceil_cpu)" | bc)
    r_bound=$(echo "scale=2; $bound / $ceil_rps" | bc | sed 's/^\./0./')
    printf '    bound: enrichment alone %s us of CPU per record (bench-enrich: one thread, no Kafka) + the\n' "$e_cpu"
    printf '      passthrough'"'"'s %s us: %s cores doing nothing else reach at most %s records/s, %s of the ceiling\n' \
        "$ceil_cpu" "$(nproc)" "$bound" "$r_bound"
    results+=("RESULT ingest.$label.records_per_s_vs_ceiling value=$taina_rps anchor=$ceil_rps ratio=$r_ceil goal=0.5")
    results+=("RESULT ingest.$label.records_per_s_vs_python value=$taina_rps anchor=$py_rps ratio=$r_py goal=10")
    results+=("RESULT ingest.$label.cpu_us_per_record value=$taina_cpu anchor=$py_cpu ratio=$r_cpu goal=-")
    results+=("RESULT ingest.$label.enrich_bound_records_per_s value=$bound anchor=$ceil_rps ratio=$r_bound goal=-")
    results+=("RESULT ingest.$label.peak_rss_mb value=$rss anchor=$(mb "$py_kb") ratio=$(echo "scale=2; $taina_kb / $py_kb" | bc | sed 's/^\./0./') goal=<30")
}

results=()
echo "ingest enrichment pipeline on devstack: tickets.raw -> tickets.enriched, one transaction per $batch records / 100 ms at most"
echo "  machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); librdkafka $(pkg-config --modversion rdkafka); python $($PY -c 'import platform; print(platform.python_version())'), confluent-kafka $($PY -c 'import confluent_kafka; print(confluent_kafka.version()[0])'), jsonschema $($PY -c 'import importlib.metadata as m; print(m.version("jsonschema"))')"
echo "  the measured programs run with GLIBC_TUNABLES=$image_tunables (the image's, docker/Dockerfile); transparent huge pages: $(sed -n 's/.*\[\(.*\)\].*/\1/p' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo unknown)"
enrich_out=$("$BUILD"/bench/bench-enrich 2)
measure 1k "$n1k" 1024 "$npy1k"
report 1k "$n1k" "$npy1k"
measure 8k "$n8k" 8192 "$npy8k"
report 8k "$n8k" "$npy8k"
printf '%s\n' "${results[@]}"
