#!/usr/bin/env bash
# The local vector store (common/src/vecstore.c): exact cosine top-10 over 10,000 and 100,000
# chunks of 384 dims in one tenant (plus another tenant's 10% noise rows), next to numpy exact
# search over the same data in the same run (tests/bench/vecstore/anchor.py).
#   single query latency p50/p99 over 1,000 queries (1 thread; and 2 threads at once)
#   search_many batches of 8 and 32 on 1 and 2 threads: QPS and batch latency
#   recall@10 against exact brute force (the store ranks candidates with int8 first)
#   memory: vector bytes allocated (int8 + int16 fixed point, growth) vs raw f32 vector bytes, payload
# Goal (rag service): p99 < 20 ms per single query at 100,000 x 384.
#   tests/bench/vecstore/run.sh     (from the repo top, after make)
# Knobs: BENCH_NQ queries (1000), BENCH_ANCHOR_NQ queries numpy times (200: reference BLAS is slow).
set -euo pipefail
cd "$(dirname "$0")/../../.."
BUILD=${BUILD:-build}
PY=/usr/bin/python3
nq=${BENCH_NQ:-1000}
anq=${BENCH_ANCHOR_NQ:-200}
dims=384
tmp=$(mktemp -d /tmp/taina-bench-vecstore.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
have_np=1
if ! "$PY" -c 'import numpy' 2>/dev/null; then
    echo "numpy not installed: apt-get install python3-numpy"
    have_np=0
fi
get() { awk -v k="$1" '$1 == k {print $2}' "$2"; }
ratio() { if [[ -n "$2" && "$2" != 0 ]]; then echo "scale=2; $1 / $2" | bc; else echo "-"; fi; }

for n in 10000 100000; do
    c="$tmp/c-$n.txt" a="$tmp/a-$n.txt"
    "$BUILD"/bench/bench-vecstore "$n" "$dims" "$nq" "$tmp" >"$c"
    : >"$a"
    ((have_np)) && "$PY" tests/bench/vecstore/anchor.py "$tmp" "$n" "$dims" "$nq" "$anq" >"$a"
    rm -f "$tmp"/*.f32 "$tmp"/*.u32
    printf 'vecstore: %d chunks x %d dims in tenant A (+%d rows of tenant B), top-10, %d queries\n' \
        "$n" "$dims" $((n / 10)) "$nq"
    printf '  insert                     %10s chunks/s\n' "$(get insert_per_s "$c")"
    printf '  memory: vectors %s bytes for %s raw (x%s), payload %s bytes, %s rows\n' \
        "$(get vector_bytes "$c")" "$(get raw_vector_bytes "$c")" "$(get vector_overhead "$c")" \
        "$(get payload_bytes "$c")" "$(get rows "$c")"
    printf '  recall@10 vs exact brute force (%s queries): %s\n' "$(get recall_queries "$c")" \
        "$(get recall_at10 "$c")"
    if ((have_np)); then
        printf '  anchor: numpy %s (Debian, %s queries), top-10 agreement with the store %s\n' \
            "$(get numpy_version "$a")" "$(get np_queries "$a")" "$(get agreement_at10 "$a")"
    fi
    printf '  %-26s %9s %9s %9s   %s\n' "" "QPS" "p50 ms" "p99 ms" "numpy QPS / p50 / p99 (QPS ratio)"
    for row in single_t1:np_single single_t2: many8_t1:np_many8 many8_t2: many32_t1:np_many32 \
        many32_t2:; do
        k=${row%%:*} ak=${row#*:}
        anc="" r=""
        if [[ -n "$ak" && -s "$a" ]]; then
            r=$(ratio "$(get "${k}_qps" "$c")" "$(get "${ak}_qps" "$a")")
            anc="$(get "${ak}_qps" "$a") / $(get "${ak}_p50_ms" "$a") / $(get "${ak}_p99_ms" "$a") (x$r)"
        fi
        printf '  %-26s %9s %9s %9s   %s\n' "$k" "$(get "${k}_qps" "$c")" "$(get "${k}_p50_ms" "$c")" \
            "$(get "${k}_p99_ms" "$c")" "$anc"
        printf 'RESULT vecstore.%s.%s_qps value=%s anchor=%s ratio=%s\n' "$n" "$k" \
            "$(get "${k}_qps" "$c")" "${ak:+$(get "${ak}_qps" "$a")}" "${r:--}" >>"$tmp/results"
    done
    p99=$(get single_t1_p99_ms "$c")
    ap99=$(get np_single_p99_ms "$a")
    printf 'RESULT vecstore.%s.single_p99_ms value=%s anchor=%s ratio=%s goal=20\n' "$n" "$p99" \
        "${ap99:--}" "$(ratio "${ap99:-0}" "$p99")" >>"$tmp/results"
    printf 'RESULT vecstore.%s.recall_at10 value=%s goal=0.99\n' "$n" "$(get recall_at10 "$c")" \
        >>"$tmp/results"
    printf 'RESULT vecstore.%s.vector_overhead value=%s goal=1.2\n' "$n" \
        "$(get vector_overhead "$c")" >>"$tmp/results"
done
cat "$tmp/results"
