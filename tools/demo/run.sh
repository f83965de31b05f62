#!/usr/bin/env bash
# make demo: the suite on its embedded defaults, as far as it is built today.
# Today that is the local Kafka (devstack) with the suite's topics; each service issue adds its step.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=${TN_BUILD_DIR:-$top/build}/bin
out=$top/build/demo
mkdir -p "$out/logs"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done; true; }
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. local Kafka: taina-devstack (librdkafka mock cluster, 3 brokers)"
rm -f "$out/bootstrap"
"$bin/taina-devstack" --topics-file "$top/schemas/topics.json" --bootstrap-file "$out/bootstrap" \
    >/dev/null 2>"$out/logs/devstack.log" &
pids+=($!)
for _ in $(seq 100); do [[ -s "$out/bootstrap" ]] && break; sleep 0.1; done
bs=$(cat "$out/bootstrap")
echo "bootstrap: $bs   (logs: build/demo/logs/devstack.log)"

step "2. the suite's topics, as any Kafka client sees them (kcat -L)"
kcat -b "$bs" -L | grep -E '^ +topic "' | sed 's/^ */  /'

step "3. a few tickets produced to tickets.raw and read back by a consumer group"
cat <<'TICKETS' | kcat -b "$bs" -P -t tickets.raw -K'|' -z lz4
t-1|{"title":"Renovar pasaporte","body":"¿Qué documentos necesito para renovar el pasaporte?","lang":"es"}
t-2|{"title":"Driving licence","body":"How do I replace a lost driving licence?","lang":"en"}
t-3|{"title":"Certificado de nacimiento","body":"Necesito una copia del certificado de nacimiento.","lang":"es"}
TICKETS
timeout 20 kcat -b "$bs" -G taina-demo -X auto.offset.reset=earliest -q -f '  partition %p offset %o key %k: %s\n' \
    tickets.raw 2>/dev/null | head -3 || true

step "done"
echo "The services (ingest, embedder, rag, voice-gateway, appointments) join this demo as their issues land."
