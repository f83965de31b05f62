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

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { # port name
    for _ in $(seq 300); do curl -sf "http://127.0.0.1:$1/ready" >/dev/null && return 0; sleep 0.1; done
    echo "$2 did not become ready; see build/demo/logs/$2.log"; exit 1
}

step "3. ingest: HTTP ingest and the exactly-once enrichment pipeline (port $((port_ingest = $(free_port))))"
TAINA_KAFKA_BROKERS=$bs TAINA_AUTH_DISABLED=1 TAINA_HTTP_PORT=$port_ingest TAINA_HTTP_BIND=127.0.0.1 \
    TAINA_KAFKA_SESSION_TIMEOUT_MS=6000 TAINA_KAFKA_MAX_POLL_INTERVAL_MS=7000 \
    "$bin/taina-ingest" 2>"$out/logs/ingest.log" &
pids+=($!)
wait_ready "$port_ingest" ingest
echo "POST /v1/tickets (NDJSON): two tickets with personal data, one without a title"
curl -s "http://127.0.0.1:$port_ingest/v1/tickets" -H 'Content-Type: application/x-ndjson' --data-binary @- <<'TICKETS' | python3 -m json.tool
{"source":"web","title":"Renovar pasaporte","body":"Buenos días. Quiero renovar mi pasaporte, vence en enero. Mi correo es ana.perez@example.com y mi cédula 001-1234567-8. ¿Qué documentos necesito?","content_type":"text/plain","created_at":"2026-11-24T09:00:00Z"}
{"source":"email","title":"Lost driving licence","body":"<p>Hello, I lost my <b>driving licence</b>. Please call me at (809) 555-0142.</p>","content_type":"text/html","created_at":"2026-11-24T09:05:00Z"}
{"source":"web","body":"sin título","content_type":"text/plain","created_at":"2026-11-24T09:06:00Z"}
TICKETS

step "4. tickets.enriched (read_committed): normalized, language, category, PII redacted, chunks"
timeout 20 kcat -b "$bs" -C -t tickets.enriched -X isolation.level=read_committed -c 2 -q 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    v = json.loads(line)
    print("  %s  lang=%s (%.2f)  category=%s  pii=%s  chunks=%d" % (v["ticket_id"][:8], v["lang"],
          v["lang_confidence"], v["category"], v["pii"], len(v["chunks"])))
    print("    text: " + v["text"])' || true

step "done"
echo "The services (ingest, embedder, rag, voice-gateway, appointments) join this demo as their issues land."
