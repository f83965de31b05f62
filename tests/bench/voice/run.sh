#!/usr/bin/env bash
# voice-gateway: sessions one core sustains in real time, and the latency the gateway adds
# (see bench.py for the method). Needs 2 cores (gateway on CPU 0, everything else on CPU 1).
# Knobs: BENCH_VOICE_STEPS, the session counts to step through ("25 50 ... 500"; e.g. "250 300"
# to compare the gateway's CPU at those loads between two builds; it still stops at the first
# step not sustained).
set -euo pipefail
cd "$(dirname "$0")/../../.."
export TN_BUILD_DIR="$PWD/${BUILD:-build}"
exec /usr/bin/python3 tests/bench/voice/bench.py
