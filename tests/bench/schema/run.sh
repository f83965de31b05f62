#!/usr/bin/env bash
# Validations/s of a tickets.enriched record: the common C validator against Python jsonschema,
# same schema, same document, same machine, same run. Goal: C >= 20x Python.
#   tests/bench/schema/run.sh [SECONDS]     (from the repo top, after make bench-build)
set -euo pipefail
cd "$(dirname "$0")/../../.."
BUILD=${BUILD:-build}
secs=${1:-3}
schema=schemas/tickets.enriched.schema.json
doc=schemas/examples/tickets.enriched/valid-es.json
c=$("$BUILD"/bench/bench-schema "$schema" "$doc" "$secs" | awk '/c_validations_per_s/ {print $2}')
out=$(/usr/bin/python3 tests/bench/schema/anchor.py "$schema" "$doc" "$secs" 2>&1)
py=$(awk '/python_validations_per_s/ {print $2}' <<<"$out")
pyver=$(awk '/jsonschema_version/ {print $2}' <<<"$out")
ratio=$(echo "scale=1; $c / $py" | bc)
printf 'schema validation (%s, 1 thread)\n' "$doc"
printf '  taina C validator     %10s validations/s\n' "$c"
printf '  anchor: python3-jsonschema %s %s validations/s\n' "$pyver" "$py"
printf '  ratio %sx (goal >= 20x)\n' "$ratio"
printf 'RESULT schema.validations_per_s value=%s anchor=%s ratio=%s goal=20\n' "$c" "$py" "$ratio"
