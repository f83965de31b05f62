#!/usr/bin/env bash
# Horizontal scaling: taina-embedder chunks/s with 1, 2 and 4 instances on 12 partitions against an
# embeddings API that takes 20 ms a request (see scaling.py for the method).
#   tests/bench/scaling/run.sh     (from the repo top, after make)
# Knobs: BENCH_SCALING_N records (2400), BENCH_SCALING_K chunks per record (4),
# BENCH_SCALING_BATCH chunks per batch and request (16), BENCH_SCALING_LATENCY_MS (20),
# BENCH_SCALING_POINTS instance counts ("1 2 4"); TEST_LEAVE=1 keeps the logs.
set -euo pipefail
cd "$(dirname "$0")/../../.."
export TN_BUILD_DIR=${TN_BUILD_DIR:-$PWD/${BUILD:-build}}
exec /usr/bin/python3 tests/bench/scaling/scaling.py
