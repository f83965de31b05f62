#!/usr/bin/env bash
# Microseconds of ingest enrichment per record (ingest_enrich() and the JSON dump, one thread,
# no Kafka) on 1 KB and 8 KB tickets: the CPU side of tests/bench/ingest, quick enough to run
# under perf (perf record -g build/bench/bench-enrich 5).
#   tests/bench/enrich/run.sh [SECONDS]   (from the repo top, after make)
set -euo pipefail
cd "$(dirname "$0")/../../.."
BUILD=${BUILD:-build}
out=$("$BUILD"/bench/bench-enrich "${1:-3}")
k1=$(awk '/enrich_1k_us_per_record/ {print $2}' <<<"$out")
k8=$(awk '/enrich_8k_us_per_record/ {print $2}' <<<"$out")
c1=$(awk '/enrich_1k_cpu_us_per_record/ {print $2}' <<<"$out")
c8=$(awk '/enrich_8k_cpu_us_per_record/ {print $2}' <<<"$out")
printf 'ingest enrichment, one thread (parse, validate, normalize, lang, category, PII, chunks, dump)\n'
printf '  1 KB tickets  %8s us/record (CPU %s)\n' "$k1" "$c1"
printf '  8 KB tickets  %8s us/record (CPU %s)\n' "$k8" "$c8"
printf 'RESULT enrich.1k.us_per_record value=%s\n' "$k1"
printf 'RESULT enrich.8k.us_per_record value=%s\n' "$k8"
printf 'RESULT enrich.1k.cpu_us_per_record value=%s\n' "$c1"
printf 'RESULT enrich.8k.cpu_us_per_record value=%s\n' "$c8"
