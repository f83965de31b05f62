#!/usr/bin/env bash
# taina-rag under load (issue 6), in one run, next to the peer a Python team would write:
#   QPS and p50/p99 latency of POST /v1/search and POST /v1/query (extractive answers, JSON) at
#   10,000 and 100,000 chunks of 384 dims (the hash embedding, one tenant, 200-word chunks of
#   citizen-service text from tests/bench/embedder/corpus.py), local backend, measured with wrk
#   (post.lua: 64 different questions in turn, top_k 5; 16 connections, 10 s a point, one wrk
#   thread; percentiles from wrk --latency). Everything shares the machine's 2 cores: the server,
#   wrk, and (for taina) devstack.
#   The peer (tests/bench/peers/rag_peer.py): FastAPI + uvicorn --workers 2, numpy exact search
#   over the same vectors (the same NDJSON records), the same endpoints and JSON shapes. It looks
#   the question's vector up in a file bench-rag wrote with taina's own hash embedding (so it
#   pays nothing to embed; taina embeds every question), and produces no rag.queries event.
#   agree.py checks that both return the same top-5 for every question.
# How the data gets in: bench-rag (build/bench/bench-rag) writes tickets.embedded record values
# (what taina-embedder produces) for the chunks. 10,000 chunks (~3.8 KB a record, ~3.2 MB a
# partition) go through devstack: produced to tickets.embedded with kcat, read by taina-rag from
# the beginning as in production. 100,000 do not fit in devstack's ~5 MB a partition x 12, so
# taina-rag loads them from TAINA_RAG_LOCAL_SEED_FILE (the same parsing path as the topic's
# records, before it reads the topic, which is empty here).
# Goals: taina >= 10x the peer's QPS; p99 < 20 ms at 100,000 chunks. Memory: taina-rag's
# taina_rag_index gauges and VmHWM, the peer's VmHWM (its two workers, each with the matrix);
# the index's vector bytes over the raw float32 vector bytes (chunks x 384 x 4; goal <= 1.2),
# and VmHWM over raw vector bytes + payload bytes (the whole process).
#   tests/bench/rag/run.sh    (from the repo top, after make)
# Knobs: BENCH_SMALL (10000), BENCH_BIG (100000), BENCH_WORDS (200), BENCH_SECONDS (10),
# BENCH_CONNS (16); TEST_LEAVE=1 keeps the logs.
set -euo pipefail
cd "$(dirname "$0")/../../.."
BUILD=${BUILD:-build}
PY=/usr/bin/python3
small=${BENCH_SMALL:-10000}
big=${BENCH_BIG:-100000}
words=${BENCH_WORDS:-200}
secs=${BENCH_SECONDS:-10}
conns=${BENCH_CONNS:-16}
here=tests/bench/rag
tenant=bench-tenant
key=bench-key-0123456789abcdef

for need in wrk kcat; do
    command -v $need >/dev/null || { echo "$need not installed: make deps"; exit 1; }
done
$PY -c 'import fastapi, uvicorn, numpy' 2>/dev/null ||
    { echo "the peer needs python3-fastapi python3-uvicorn python3-numpy: make deps"; exit 1; }

tmp=$(mktemp -d /tmp/taina-bench-rag.XXXXXX)
pids=()
stop_pid() { # PID: SIGTERM, wait up to 20 s, then SIGKILL
    local pid=$1 i
    [[ -n "$pid" ]] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 200; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
forget() { pids=("${pids[@]/$1/}"); }
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
field() { awk -v k="$1" '{for (i = 1; i < NF; i++) if ($i == k) print $(i + 1)}' <<<"$2"; }
ratio() { if [[ -n "$2" && "$2" != 0 ]]; then echo "scale=${3:-1}; $1 / $2" | bc | sed 's/^\./0./'; else echo -; fi; }
status_kb() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$2/status" 2>/dev/null || echo 0; }
gauge() { awk -v w="taina_rag_index{what=\"$1\"}" '$1 == w {printf "%.0f", $2}' <<<"$2"; }

# wrk_point PORT PATH: sets $qps $p50 $p99 (ms) and $bad (non-2xx + socket errors).
wrk_point() {
    local out=$tmp/wrk.out
    wrk -t1 -c"$conns" -d"${secs}s" --latency -s $here/post.lua "http://127.0.0.1:$1$2" \
        -- "$tmp/bodies.ndjson" "$key" >"$out" 2>&1 || fail "wrk: $(tail -2 "$out")"
    qps=$(awk '$1 == "Requests/sec:" {printf "%.0f", $2}' "$out")
    ms() { awk -v p="$1" '$1 == p {v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
        f = u == "us" ? 0.001 : u == "s" ? 1000 : 1; printf "%.2f", v * f}' "$out"; }
    p50=$(ms 50%)
    p99=$(ms 99%)
    bad=$(awk '/Non-2xx/ {n += $NF} /Socket errors/ {gsub(/,/, ""); n += $4 + $6 + $8 + $10}
        END {print n + 0}' "$out")
}

echo "data: corpus of $big chunks of $words words, $(nproc) cores shared by server, wrk and devstack"
$PY tests/bench/embedder/corpus.py "$tmp/corpus.txt" "$big" "$words" >/dev/null
$PY $here/questions.py "$tmp/questions.txt" "$tmp/bodies.ndjson" 64
gen=$("$BUILD"/bench/bench-rag "$tmp/corpus.txt" "$big" "$tenant" "$tmp/seed.$big.ndjson" \
    "$tmp/questions.txt" "$tmp/qvec.ndjson") || fail "bench-rag"
rm -f "$tmp/corpus.txt"
head -n "$small" "$tmp/seed.$big.ndjson" >"$tmp/seed.$small.ndjson"
printf '%s %s\n' "$tenant" "$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)" >"$tmp/keys"
echo "  bench-rag: $(field records "$gen") tickets.embedded records of model $(field model "$gen"),"\
    "$(($(field bytes "$gen") / $(field records "$gen"))) bytes each; 64 questions"

for n in "$small" "$big"; do
    seedf=$tmp/seed.$n.ndjson
    # devstack, and the data
    bfile=$tmp/bootstrap.$n
    "$BUILD"/bin/taina-devstack --devstack-bootstrap-file "$bfile" \
        --devstack-topics-file schemas/topics.json >/dev/null 2>"$tmp/devstack.$n.log" &
    ds_pid=$!
    pids+=("$ds_pid")
    for ((i = 0; i < 100; i++)); do [[ -s "$bfile" ]] && break; sleep 0.1; done
    [[ -s "$bfile" ]] || fail "devstack did not start"
    bs=$(<"$bfile")
    extra=()
    if (($(stat -c %s "$seedf") / 12 < 4500000)); then # fits devstack's ~5 MB a partition
        # keyed by ticket (as taina-embedder does), so the partitions fill evenly
        sed -E 's/^(\{"schema_version":1,"ticket_id":"([^"]+)")/\2\t\1/' "$seedf" >"$tmp/keyed.ndjson"
        kcat -P -b "$bs" -t tickets.embedded -z lz4 -K $'\t' -l "$tmp/keyed.ndjson" \
            2>"$tmp/kcat.$n.log" ||
            fail "kcat: $(tail -1 "$tmp/kcat.$n.log")"
        how="through devstack: $n records produced to tickets.embedded (kcat, keyed by ticket), read by taina-rag from the beginning"
    else
        extra=(TAINA_RAG_LOCAL_SEED_FILE="$seedf")
        how="TAINA_RAG_LOCAL_SEED_FILE: $n records (over devstack's ~5 MB x 12 partitions), then the empty topic"
    fi
    # taina-rag
    port=$(free_port)
    t0=$(date +%s.%N)
    env TAINA_HTTP_PORT="$port" TAINA_HTTP_BIND=127.0.0.1 TAINA_LOG_LEVEL=warn \
        TAINA_KAFKA_BROKERS="$bs" TAINA_API_KEYS_FILE="$tmp/keys" "${extra[@]}" \
        "$BUILD"/bin/taina-rag >/dev/null 2>"$tmp/rag.$n.log" &
    rag_pid=$!
    pids+=("$rag_pid")
    for ((i = 0; i < 1200; i++)); do
        curl -sf "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
        kill -0 "$rag_pid" 2>/dev/null || fail "taina-rag exited"
        sleep 0.1
    done
    curl -sf "http://127.0.0.1:$port/ready" >/dev/null || fail "taina-rag not ready"
    load_s=$(echo "$(date +%s.%N) - $t0" | bc)
    m=$(curl -sf "http://127.0.0.1:$port/metrics")
    chunks=$(gauge chunks "$m")
    [[ "$chunks" == "$n" ]] || fail "taina-rag indexed $chunks chunks, not $n"
    declare -A R=()
    for ep in search query; do
        wrk_point "$port" /v1/$ep
        R[taina.$ep]="$qps $p50 $p99 $bad"
    done
    m=$(curl -sf "http://127.0.0.1:$port/metrics")
    rag_hwm=$(status_kb VmHWM "$rag_pid")
    rag_rss=$(status_kb VmRSS "$rag_pid")
    # the peer
    pport=$(free_port)
    mkdir -p "$tmp/ready.$n"
    t0=$(date +%s.%N)
    RAG_PEER_DATA="$seedf" RAG_PEER_QVEC="$tmp/qvec.ndjson" RAG_PEER_KEYS="$tmp/keys" \
        RAG_PEER_READY_DIR="$tmp/ready.$n" OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 \
        $PY -m uvicorn rag_peer:app --app-dir tests/bench/peers --workers 2 --host 127.0.0.1 \
        --port "$pport" --log-level warning >/dev/null 2>"$tmp/peer.$n.log" &
    peer_pid=$!
    pids+=("$peer_pid")
    for ((i = 0; i < 1800; i++)); do
        (($(ls "$tmp/ready.$n" | wc -l) >= 2)) && break
        kill -0 "$peer_pid" 2>/dev/null || fail "the peer exited"
        sleep 0.1
    done
    (($(ls "$tmp/ready.$n" | wc -l) >= 2)) || fail "the peer did not load"
    sleep 0.5
    peer_load_s=$(echo "$(date +%s.%N) - $t0" | bc)
    for ep in search query; do
        wrk_point "$pport" /v1/$ep
        R[peer.$ep]="$qps $p50 $p99 $bad"
    done
    agree=$($PY $here/agree.py "$port" "$pport" "$key" "$tmp/questions.txt") || fail "agree"
    peer_hwm=0
    for w in $(pgrep -P "$peer_pid"); do
        peer_hwm=$((peer_hwm + $(status_kb VmHWM "$w")))
    done
    peer_hwm=$((peer_hwm + $(status_kb VmHWM "$peer_pid")))
    stop_pid "$peer_pid"
    forget "$peer_pid"
    stop_pid "$rag_pid"
    forget "$rag_pid"
    stop_pid "$ds_pid"
    forget "$ds_pid"

    printf 'rag: %d chunks x 384 dims, one tenant; %d connections, %d s a point\n' "$n" "$conns" "$secs"
    printf '  data: %s; taina-rag ready in %.1f s, the peer in %.1f s\n' "$how" "$load_s" "$peer_load_s"
    printf '  memory: taina-rag VmHWM %d MB (VmRSS %d MB), index vectors %d MB + payload %d MB (%s chunks); peer VmHWM %d MB (2 workers + parent)\n' \
        $((rag_hwm / 1024)) $((rag_rss / 1024)) $(($(gauge vector_bytes "$m") / 1048576)) \
        $(($(gauge payload_bytes "$m") / 1048576)) "$chunks" $((peer_hwm / 1024))
    printf '  memory ratios: index vectors / raw float32 vectors (%d MB) %s; VmHWM / (raw vectors + payload) %s\n' \
        $((chunks * 384 * 4 / 1048576)) "$(ratio "$(gauge vector_bytes "$m")" "$((chunks * 384 * 4))" 3)" \
        "$(ratio "$((rag_hwm * 1024))" "$((chunks * 384 * 4 + $(gauge payload_bytes "$m")))" 3)"
    printf '  same top-5 (ticket, chunk) from both: %s of %s questions\n' \
        "$(field agree "$agree")" "$(awk '{print $4}' <<<"$agree")"
    printf '  %-10s %10s %9s %9s   %s\n' "" "QPS" "p50 ms" "p99 ms" "peer QPS / p50 / p99 (QPS ratio)"
    for ep in search query; do
        read -r tq t50 t99 tbad <<<"${R[taina.$ep]}"
        read -r pq p50_ p99_ pbad <<<"${R[peer.$ep]}"
        r=$(ratio "$tq" "$pq")
        printf '  %-10s %10s %9s %9s   %s / %s / %s (x%s)%s\n' "/v1/$ep" "$tq" "$t50" "$t99" \
            "$pq" "$p50_" "$p99_" "$r" \
            "$( ((tbad + pbad)) && echo "  errors: taina $tbad, peer $pbad")"
        printf 'RESULT rag.%s.%s_qps value=%s anchor=%s ratio=%s goal=10\n' "$n" "$ep" "$tq" \
            "$pq" "$r" >>"$tmp/results"
        goal=""
        ((n >= 100000)) && goal=" goal=20"
        printf 'RESULT rag.%s.%s_p99_ms value=%s anchor=%s ratio=%s%s\n' "$n" "$ep" "$t99" \
            "$p99_" "$(ratio "$p99_" "$t99")" "$goal" >>"$tmp/results"
    done
    printf 'RESULT rag.%s.vmhwm_mb value=%d anchor=%d ratio=%s\n' "$n" $((rag_hwm / 1024)) \
        $((peer_hwm / 1024)) "$(ratio "$rag_hwm" "$peer_hwm" 2)" >>"$tmp/results"
    raw=$((chunks * 384 * 4))
    printf 'RESULT rag.%s.vector_ratio value=%s goal=1.2\n' "$n" \
        "$(ratio "$(gauge vector_bytes "$m")" "$raw" 3)" >>"$tmp/results"
    printf 'RESULT rag.%s.process_ratio value=%s\n' "$n" \
        "$(ratio "$((rag_hwm * 1024))" "$((raw + $(gauge payload_bytes "$m")))" 3)" >>"$tmp/results"
    unset R
done
cat "$tmp/results"
