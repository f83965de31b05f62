#!/usr/bin/env bash
# Memory of each service: idle RSS after ready, and VmHWM after a standard load (see memory.py).
#   tests/bench/memory/run.sh     (from the repo top, after make)
# Knobs: BENCH_MEM_N tickets (5000), BENCH_MEM_SECONDS of wrk on rag (5), BENCH_MEM_M bookings
# (500), BENCH_MEM_K voice sessions (50); TEST_LEAVE=1 keeps the logs.
set -euo pipefail
cd "$(dirname "$0")/../../.."
export TN_BUILD_DIR=${TN_BUILD_DIR:-$PWD/${BUILD:-build}}
exec /usr/bin/python3 tests/bench/memory/memory.py
