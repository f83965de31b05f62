#!/usr/bin/env bash
# make demo / make up / make down: tools/demo/demo.py does the work (its docstring is the table
# of contents). It traps Ctrl-C itself and stops every process it started; exec keeps it the
# process that gets the signal.
#   tools/demo/run.sh [demo|up|down]     TAINA_DEMO_CI=1 for the CI mode (build/demo/summary.json)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
for tool in kcat espeak-ng psql; do
    command -v "$tool" >/dev/null || { echo "demo: $tool is missing (make deps)" >&2; exit 1; }
done
exec /usr/bin/python3 -u tools/demo/demo.py "${1:-demo}"
