#!/usr/bin/env bash
# devstack serves independent Kafka clients: kcat lists the suite's topics, produces 10,000
# records, and a kcat -G consumer group reads every one of them.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=${TN_BUILD_DIR:-$top/build}/bin
mult=${TN_TEST_TIMEOUT_MULT:-1}
tmp=$(mktemp -d /tmp/taina-devstack-XXXXXX)
pid=
cleanup() {
    [[ -n "$pid" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    [[ "${TEST_LEAVE:-}" == 1 ]] || rm -rf "$tmp"
}
trap cleanup EXIT
passed=0 failed=0
check() { # name, condition result
    if [[ "$2" == 0 ]]; then passed=$((passed + 1)); echo "ok   $1"; else failed=$((failed + 1)); echo "FAIL $1"; fi
}

"$bin/taina-devstack" --topics-file "$top/schemas/topics.json" --bootstrap-file "$tmp/bootstrap" \
    >"$tmp/stdout" 2>"$tmp/devstack.log" &
pid=$!
for _ in $(seq $((100 * mult))); do [[ -s "$tmp/bootstrap" ]] && break; sleep 0.1; done
[[ -s "$tmp/bootstrap" ]] || { cat "$tmp/devstack.log"; echo "0 passed, 1 failed"; exit 1; }
bs=$(cat "$tmp/bootstrap")
echo "bootstrap: $bs"
[[ "$(head -1 "$tmp/stdout")" == "$bs" ]]; check "bootstrap printed on stdout and written to the file" $?

# 1. kcat lists the topics of schemas/topics.json with their partition counts
kcat -b "$bs" -L -J >"$tmp/meta.json"
python3 - "$tmp/meta.json" "$top/schemas/topics.json" <<'PY'
import json, sys
meta = json.load(open(sys.argv[1])); want = json.load(open(sys.argv[2]))["topics"]
have = {t["topic"]: len(t["partitions"]) for t in meta["topics"]}
missing = [t["name"] for t in want if have.get(t["name"]) != t["partitions"]]
assert not missing, f"topics missing or wrong partition count: {missing}; have {have}"
assert len(meta["brokers"]) == 3, meta["brokers"]
PY
check "kcat -L lists every topic with its partitions and 3 brokers" $?

# 2. produce 10,000 keyed records
seq 1 10000 | awk '{printf "ticket-%d:{\"n\":%d,\"text\":\"record number %d\"}\n", $1, $1, $1}' >"$tmp/records"
kcat -b "$bs" -P -t tickets.raw -K: -z lz4 -X acks=all <"$tmp/records"
total=$(kcat -b "$bs" -C -t tickets.raw -o beginning -e -q -f '%o\n' | wc -l)
[[ "$total" == 10000 ]]; check "10,000 records produced (read back: $total)" $?

# 3. a kcat -G consumer group reads all of them (the file exists before the loop reads it: the
# background job opens it only once it runs)
: >"$tmp/consumed"
timeout $((60 * mult)) kcat -u -b "$bs" -G taina-kcat-test -X auto.offset.reset=earliest \
    -X enable.partition.eof=true -f '%k %s\n' -q tickets.raw >"$tmp/consumed" 2>"$tmp/kcat-g.log" &
kpid=$!
for _ in $(seq $((600 * mult))); do
    n=$(wc -l <"$tmp/consumed")
    [[ "$n" -ge 10000 ]] && break
    sleep 0.1
done
sleep 0.5
kill "$kpid" 2>/dev/null || true
wait "$kpid" 2>/dev/null || true
distinct=$(cut -d' ' -f1 "$tmp/consumed" | sort -u | wc -l)
lines=$(wc -l <"$tmp/consumed")
[[ "$distinct" == 10000 && "$lines" == 10000 ]]; check "kcat -G group read all 10,000 records once (lines $lines, distinct keys $distinct)" $?

# 4. clean stop on SIGTERM removes the bootstrap file
kill -TERM "$pid"; rc=0; wait "$pid" || rc=$?; pid=
[[ "$rc" == 0 && ! -e "$tmp/bootstrap" ]]; check "SIGTERM: exit 0 and bootstrap file removed (rc=$rc)" $?

echo "$passed passed, $failed failed"
[[ "$failed" == 0 ]]
