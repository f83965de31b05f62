#!/usr/bin/env bash
# voice-gateway: sessions one core sustains in real time, and the latency the gateway adds
# (see bench.py for the method). Needs 2 cores (gateway on CPU 0, everything else on CPU 1).
set -euo pipefail
cd "$(dirname "$0")/../../.."
export TN_BUILD_DIR="$PWD/${BUILD:-build}"
exec /usr/bin/python3 tests/bench/voice/bench.py
