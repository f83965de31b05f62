#!/usr/bin/env bash
# appointments: bookings per second end to end against the booking fake (no added latency),
# database round trips and service CPU per booking. BENCH_APPT_N (2000), BENCH_APPT_WORKERS (8).
set -euo pipefail
cd "$(dirname "$0")/../../.."
export TN_BUILD_DIR=${TN_BUILD_DIR:-$PWD/${BUILD:-build}}
exec /usr/bin/python3 tests/bench/appointments/bench.py
