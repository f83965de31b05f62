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

step "5. embedder (hash embeddings) and rag (local exact index, extractive answers)"
port_emb=$(free_port) port_rag=$(free_port)
TAINA_KAFKA_BROKERS=$bs TAINA_HTTP_PORT=$port_emb TAINA_HTTP_BIND=127.0.0.1 \
    TAINA_KAFKA_SESSION_TIMEOUT_MS=6000 TAINA_KAFKA_MAX_POLL_INTERVAL_MS=7000 \
    "$bin/taina-embedder" 2>"$out/logs/embedder.log" &
pids+=($!)
TAINA_KAFKA_BROKERS=$bs TAINA_HTTP_PORT=$port_rag TAINA_HTTP_BIND=127.0.0.1 TAINA_AUTH_DISABLED=1 \
    "$bin/taina-rag" 2>"$out/logs/rag.log" &
pids+=($!)
wait_ready "$port_emb" embedder
wait_ready "$port_rag" rag
for _ in $(seq 100); do
    n=$(curl -s "http://127.0.0.1:$port_rag/v1/search" -H 'Content-Type: application/json' \
        -d '{"question":"pasaporte licence","top_k":10}' | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["results"]))')
    [[ "$n" -ge 2 ]] && break
    sleep 0.2
done
echo "indexed: the two tickets are searchable"

step "6. questions through rag (POST /v1/query)"
for q in '¿Qué necesito para renovar el pasaporte?' 'I lost my driving licence, what should I do?'; do
    curl -s "http://127.0.0.1:$port_rag/v1/query" -H 'Content-Type: application/json' \
        -d "$(python3 -c 'import json,sys; print(json.dumps({"question": sys.argv[1]}))' "$q")" |
        python3 -c '
import json, sys
q = sys.argv[1]
r = json.load(sys.stdin)
print("  Q: " + q)
print("  A: " + r.get("answer", r.get("answer_error", "")))
for c in r["citations"]:
    print("     [%s#%d] %.3f %s" % (c["ticket_id"][:8], c["chunk_index"], c["score"], c.get("title", "")))
t = r["timings"]
print("     timings: embed %.1f ms, search %.1f ms, answer %.1f ms, total %.1f ms" % (t["embed_ms"], t["search_ms"], t["llm_ms"], t["total_ms"]))' "$q"
done

step "done"
echo "voice-gateway and appointments join this demo as their issues land."
