#!/usr/bin/env bash
# The README's configuration reference is what the programs' config tables say (a new or changed
# key without `make docs` fails here), and every key a service declares appears in it.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=${TN_BUILD_DIR:-$top/build}/bin
passed=0 failed=0
check() { # name, condition result
    if [[ "$2" == 0 ]]; then passed=$((passed + 1)); echo "ok   $1"; else failed=$((failed + 1)); echo "FAIL $1"; fi
}

out=$("$top/tools/docs/config_reference.py" --check "$top/README.md" 2>&1) && rc=0 || rc=$?
[[ $rc == 0 ]] || echo "$out" | tail -30
check "README configuration reference matches the config tables (else: make docs)" $rc

missing=0
for d in "$top"/services/*/; do
    s=$(basename "$d")
    ls "$d"*.c >/dev/null 2>&1 || continue
    for v in $("$bin/taina-$s" --list-config | sed -n 's/^| `\(TAINA_[A-Z0-9_]*\)`.*/\1/p'); do
        grep -q "| \`$v\` |" "$top/README.md" || { echo "  $s: $v not in the README"; missing=1; }
    done
done
check "every key of every service is in the README" $missing

echo "$passed passed, $failed failed"
[[ $failed == 0 ]]
