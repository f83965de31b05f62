#!/usr/bin/env bash
# The suite end to end on devstack with its embedded defaults: tickets POSTed to taina-ingest until
# they come back from taina-rag's /v1/search (see e2e.py for the method): tickets/s sustained,
# p50/p99 latency of sampled tickets, CPU per ticket of each service.
#   tests/bench/e2e/run.sh     (from the repo top, after make)
# Knobs: BENCH_E2E_N tickets (10000), BENCH_E2E_SIZE bytes (1024), BENCH_E2E_BATCH tickets per
# POST (100), BENCH_E2E_POSTERS client threads (2), BENCH_E2E_SAMPLES polled tickets (200);
# TEST_LEAVE=1 keeps the logs.
set -euo pipefail
cd "$(dirname "$0")/../../.."
export TN_BUILD_DIR=${TN_BUILD_DIR:-$PWD/${BUILD:-build}}
exec /usr/bin/python3 tests/bench/e2e/e2e.py
