"""rag end to end on devstack: tickets ingested over HTTP through ingest and embedder become
answerable; a question about one document cites it first; tenant A never sees tenant B's chunks
through either endpoint or either backend (local, and Qdrant through its fake); the two backends
return the same top-k ids; streaming works with an SSE client; the error statuses; rag.queries
events with the question redacted."""
import hashlib
import json
import os
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from taina_harness import (KAFKA_FAST_GROUP, MULT, Devstack, Service, TempDir,  # noqa: E402
                           api_keys, consume, http)

KA, KB = "key-a-0123456789abcdef", "key-b-0123456789abcdef"
KC = "key-c-0123456789abcdef"  # tenant-c: only in the seed file of test_seed_file

DOCS_A = [
    ("Renovación de pasaporte", "Para renovar el pasaporte debe presentar la cédula de identidad y "
     "el pasaporte anterior. El pago de la tasa se hace en el banco. La cita se pide en línea."),
    ("Licencia de conducir", "La licencia de conducir se renueva cada cuatro años. Necesita un "
     "examen médico y una foto reciente. El trámite dura una semana."),
    ("Acta de nacimiento", "El acta de nacimiento se solicita en la oficialía civil del lugar de "
     "nacimiento. Cuesta doscientos pesos y se entrega el mismo día."),
    ("Opening hours", "Our offices are open Monday to Friday from eight in the morning to four "
     "in the afternoon. Saturdays we open only for urgent passport pickups."),
    ("Vehicle registration", "To register a vehicle bring the sales invoice, the customs "
     "certificate and proof of insurance. The plate is delivered within ten days."),
    ("Certificado de matrimonio", "El certificado de matrimonio se pide con los nombres de los "
     "contrayentes y la fecha de la boda. Se puede solicitar por internet."),
]
DOCS_B = [("Secreto de B", "El documento secreto del inquilino B habla de pasaportes diplomáticos "
           "y de la valija diplomática. Solo B debe verlo.")]


def ingest_docs(port, key, docs):
    body = "\n".join(json.dumps({"source": "web", "title": t, "body": b, "content_type": "text/plain",
                                 "created_at": "2026-11-24T10:00:00Z"}) for t, b in docs)
    st, _, resp = http("POST", port, "/v1/tickets", body,
                       {"Content-Type": "application/x-ndjson", "Authorization": "Bearer " + key})
    assert st == 202, resp
    return [i["ticket_id"] for i in json.loads(resp)["items"]]


def post(port, path, body, key=KA, headers=None):
    h = {"Content-Type": "application/json", "Authorization": "Bearer " + key}
    h.update(headers or {})
    st, hd, data = http("POST", port, path, body, h)
    return st, hd, (json.loads(data) if data and hd.get("content-type", "").startswith(
        "application/json") else data)


def wait_searchable(port, key, n, timeout=60):
    deadline = time.time() + timeout * MULT
    while time.time() < deadline:
        st, _, r = post(port, "/v1/search", {"question": "pasaporte licencia acta", "top_k": 50},
                        key)
        if st == 200 and len({x["ticket_id"] for x in r["results"]}) >= n:
            return
        time.sleep(0.3)
    raise AssertionError("not searchable in time")


@pytest.fixture(scope="module")
def stack():
    tmp = TempDir("taina-0013-")
    ds = Devstack(tmp)
    keys = api_keys(tmp, {"tenant-a": KA, "tenant-b": KB, "tenant-c": KC})
    fake_q = Service("fake-qdrant", tmp, {"TAINA_HTTP_MAX_BODY": "64MiB"})
    fake_q.wait_ready()
    base = {"TAINA_KAFKA_BROKERS": ds.bootstrap}
    base.update(KAFKA_FAST_GROUP)
    ingest = Service("ingest", tmp, dict(base, TAINA_API_KEYS_FILE=keys,
                                         TAINA_INGEST_BATCH_LINGER="20ms"))
    emb_local = Service("embedder", tmp, dict(base), tag="embedder-local")
    emb_qdrant = Service("embedder", tmp, dict(base, TAINA_VECTOR_STORE="qdrant",
                                               TAINA_EMBEDDER_GROUP="taina-embedder-qdrant",
                                               TAINA_QDRANT_URL="http://127.0.0.1:%d" % fake_q.port),
                         tag="embedder-qdrant")
    rag = Service("rag", tmp, dict(base, TAINA_API_KEYS_FILE=keys, TAINA_HTTP_MAX_BODY="16KiB"),
                  tag="rag-local")
    rag_q = Service("rag", tmp, dict(base, TAINA_API_KEYS_FILE=keys, TAINA_RAG_BACKEND="qdrant",
                                     TAINA_QDRANT_URL="http://127.0.0.1:%d" % fake_q.port),
                    tag="rag-qdrant")
    for s in (ingest, emb_local, emb_qdrant, rag, rag_q):
        s.wait_ready(60)
    ids_a = ingest_docs(ingest.port, KA, DOCS_A)
    ids_b = ingest_docs(ingest.port, KB, DOCS_B)
    wait_searchable(rag.port, KA, len(DOCS_A))
    wait_searchable(rag_q.port, KA, len(DOCS_A))
    yield {"tmp": tmp, "ds": ds, "keys": keys, "ingest": ingest, "rag": rag, "rag_q": rag_q,
           "ids_a": ids_a, "ids_b": ids_b, "base": base}
    codes = [s.stop() for s in (rag_q, rag, emb_qdrant, emb_local, ingest)]
    fake_q.stop()
    ds.stop()
    tmp.cleanup()
    assert codes == [0] * 5, "a service did not exit 0 on SIGTERM: %s" % codes


@pytest.mark.parametrize("which", ["rag", "rag_q"])
def test_question_cites_its_document_first(stack, which):
    st, _, r = post(stack[which].port, "/v1/query",
                     {"question": "¿Qué necesito para renovar el pasaporte?"})
    assert st == 200, r
    assert r["citations"][0]["ticket_id"] == stack["ids_a"][0]
    assert r["answer"] and "[1]" in r["answer"]
    assert r["model"] and r["timings"]["total_ms"] >= r["timings"]["search_ms"]
    st, _, r = post(stack[which].port, "/v1/query",
                     {"question": "When are the offices open?", "top_k": 3})
    assert st == 200 and r["citations"][0]["ticket_id"] == stack["ids_a"][3]
    assert len(r["citations"]) <= 3


@pytest.mark.parametrize("which", ["rag", "rag_q"])
def test_tenants_never_see_each_other(stack, which):
    port = stack[which].port
    for path in ("/v1/search", "/v1/query"):
        st, _, r = post(port, path, {"question": "pasaportes diplomáticos valija secreto",
                                     "top_k": 50}, KA)
        assert st == 200
        seen = {x["ticket_id"] for x in (r["results"] if path == "/v1/search" else r["citations"])}
        assert not seen & set(stack["ids_b"]), "tenant A saw tenant B's chunks"
        st, _, r = post(port, path, {"question": "pasaporte licencia acta", "top_k": 50}, KB)
        assert st == 200
        seen = {x["ticket_id"] for x in (r["results"] if path == "/v1/search" else r["citations"])}
        assert seen <= set(stack["ids_b"]) and seen, "tenant B saw another tenant's chunks"


def test_local_and_qdrant_return_the_same_top_k(stack):
    for q in ("renovar pasaporte cédula", "vehicle insurance plate", "acta de nacimiento precio",
              "horario sábados"):
        a = post(stack["rag"].port, "/v1/search", {"question": q, "top_k": 5})[2]["results"]
        b = post(stack["rag_q"].port, "/v1/search", {"question": q, "top_k": 5})[2]["results"]
        assert [(x["ticket_id"], x["chunk_index"]) for x in a] == \
               [(x["ticket_id"], x["chunk_index"]) for x in b], q
        for x, y in zip(a, b):
            assert abs(x["score"] - y["score"]) < 1e-3


def sse_events(data):
    events = []
    for block in data.decode().split("\n\n"):
        ev, payload = None, None
        for line in block.split("\n"):
            if line.startswith("event: "):
                ev = line[7:]
            elif line.startswith("data: "):
                payload = json.loads(line[6:])
        if ev:
            events.append((ev, payload))
    return events


def test_streaming(stack):
    st, hd, data = post(stack["rag"].port, "/v1/query",
                        {"question": "¿Cuánto cuesta el acta de nacimiento?", "stream": True})
    assert st == 200 and hd["content-type"].startswith("text/event-stream")
    ev = sse_events(data)
    assert ev[0][0] == "citations"
    assert ev[0][1]["citations"][0]["ticket_id"] == stack["ids_a"][2]
    tokens = [p["text"] for e, p in ev if e == "token"]
    assert tokens and "".join(tokens).strip()
    assert ev[-1][0] == "done" and "timings" in ev[-1][1]


def test_error_statuses(stack):
    port = stack["rag"].port
    st, _, r = post(port, "/v1/query", "{not json")
    assert st == 400 and r["error"]["code"] == "invalid_json"
    st, _, r = post(port, "/v1/query", {"question": "x"}, key="nope")
    assert st == 401
    st, _, _ = post(port, "/v1/query", {"question": "x" * 20000})
    assert st == 413
    st, _, _ = post(port, "/v1/query", "question=x", headers={"Content-Type": "text/plain"})
    assert st == 415
    st, _, r = post(port, "/v1/query", {"question": "x", "top_k": 0})
    assert st == 422 and r["error"]["path"] == "/top_k"
    st, _, r = post(port, "/v1/search", {"question": ""})
    assert st == 422


def test_504_and_503(stack):
    tmp, base = stack["tmp"], stack["base"]
    fake = Service("fake-embeddings", tmp, {"TAINA_FAKE_LATENCY_MS": "0"})
    fake.wait_ready()
    url = "http://127.0.0.1:%d" % fake.port
    slow = Service("rag", tmp, dict(base, TAINA_API_KEYS_FILE=stack["keys"],
                                    TAINA_EMBED_PROVIDER="openai", TAINA_EMBED_URL=url,
                                    TAINA_EMBED_MODEL="m", TAINA_EMBED_DIMS="384",
                                    TAINA_RAG_REQUEST_TIMEOUT="300ms", TAINA_RAG_MAX_INFLIGHT="1",
                                    TAINA_LLM_PROVIDER="openai", TAINA_LLM_URL=url,
                                    TAINA_LLM_MODEL="chat"), tag="rag-slow")
    try:
        slow.wait_ready(60)
        # 504: the embeddings take longer than the request deadline
        http("POST", fake.port, "/admin/faults", {"latency_ms": 1000},
             {"Content-Type": "application/json"})
        st, _, r = post(slow.port, "/v1/search", {"question": "pasaporte"})
        assert st == 504, r
        # 503: one request in flight (the slow one) and a second comes
        results = []
        th = threading.Thread(target=lambda: results.append(
            post(slow.port, "/v1/search", {"question": "pasaporte"})[0]))
        th.start()
        time.sleep(0.3)
        st, hd, r = post(slow.port, "/v1/search", {"question": "licencia"})
        th.join()
        assert st == 503 and hd.get("retry-after") == "1"
        http("POST", fake.port, "/admin/faults", {"latency_ms": 0},
             {"Content-Type": "application/json"})
    finally:
        assert slow.stop() == 0
        fake.stop()


def test_llm_failure_keeps_citations(stack):
    tmp, base = stack["tmp"], stack["base"]
    fake = Service("fake-embeddings", tmp, {})
    fake.wait_ready()
    r2 = Service("rag", tmp, dict(base, TAINA_API_KEYS_FILE=stack["keys"],
                                  TAINA_LLM_PROVIDER="openai",
                                  TAINA_LLM_URL="http://127.0.0.1:1", TAINA_LLM_MODEL="chat",
                                  TAINA_LLM_TIMEOUT="1s"), tag="rag-nollm")
    try:
        r2.wait_ready(60)
        st, _, r = post(r2.port, "/v1/query", {"question": "renovar pasaporte"})
        assert st == 200, r
        assert "answer" not in r and r["answer_error"]
        assert r["citations"][0]["ticket_id"] == stack["ids_a"][0]
    finally:
        assert r2.stop() == 0
        fake.stop()


def test_query_events_redact_the_question(stack):
    q = "Mi correo es juana.perez@example.com, ¿cómo renuevo el pasaporte?"
    st, _, _ = post(stack["rag"].port, "/v1/query", {"question": q})
    assert st == 200
    evs = consume(stack["ds"].bootstrap, "rag.queries", idle=3,
                  pred=lambda r: b"[EMAIL]" in r["value"])
    mine = [json.loads(e["value"]) for e in evs if b"renuevo el pasaporte" in e["value"]]
    assert mine, "no rag.queries event"
    ev = mine[-1]
    assert "juana.perez" not in json.dumps(ev) and "[EMAIL]" in ev["question"]
    assert ev["tenant_id"] == "tenant-a" and ev["endpoint"] == "query" and ev["hits"]
    assert all(e["value"].find(b"juana.perez") < 0 for e in evs)


def test_concurrent_searches_answer_as_alone(stack):
    """Concurrent local searches are coalesced into one pass over the matrix: each still gets
    exactly what it gets alone."""
    port = stack["rag"].port
    qs = ["renovar pasaporte cédula", "vehicle insurance plate", "acta de nacimiento precio",
          "horario sábados", "licencia examen médico", "matrimonio internet",
          "pasaportes diplomáticos", "offices open Monday"]
    alone = {(q, k): post(port, "/v1/search", {"question": q, "top_k": k})[2]["results"]
             for q in qs for k in (1, 3, 10)}
    got, errors = {}, []

    def worker(i):
        try:
            for j in range(6):
                q, k = qs[(i + j) % len(qs)], (1, 3, 10)[(i + j) % 3]
                st, _, r = post(port, "/v1/search", {"question": q, "top_k": k})
                assert st == 200, r
                got.setdefault((q, k), []).append(r["results"])
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    strip = lambda rs: [(x["ticket_id"], x["chunk_index"], x["score"]) for x in rs]  # noqa: E731
    for key, runs in got.items():
        for rs in runs:
            assert strip(rs) == strip(alone[key]), key


def test_seed_file(stack):
    """TAINA_RAG_LOCAL_SEED_FILE: tickets.embedded record values, one a line, applied through the
    topic's parsing path before the topic: here tenant A's records copied to tenant-c (plus a
    blank line, a line that is not JSON, a record without ids and a deleted ticket), so tenant-c
    finds on the seeded service what tenant A finds from the topic."""
    tmp, base = stack["tmp"], stack["base"]
    recs = [json.loads(r["value"]) for r in consume(stack["ds"].bootstrap, "tickets.embedded",
                                                    idle=2)]
    mine = [r for r in recs if r.get("tenant_id") == "tenant-a" and not r.get("deleted")]
    assert mine
    lines = []
    for r in mine:
        lines.append(json.dumps(dict(r, tenant_id="tenant-c")))
    gone = dict(mine[0], tenant_id="tenant-c", ticket_id="gone-ticket")
    lines += ["", "not json {", json.dumps({"text": "no ids"}), json.dumps(gone),
              json.dumps({"schema_version": 1, "tenant_id": "tenant-c", "ticket_id": "gone-ticket",
                          "deleted": True, "chunk_count": 0})]
    seed = tmp.file("seed.ndjson", "\n".join(lines) + "\n")
    r3 = Service("rag", tmp, dict(base, TAINA_API_KEYS_FILE=stack["keys"],
                                  TAINA_RAG_LOCAL_SEED_FILE=seed), tag="rag-seed")
    try:
        r3.wait_ready(60)
        for q in ("renovar pasaporte cédula", "vehicle insurance plate", "horario sábados"):
            a = post(stack["rag"].port, "/v1/search", {"question": q, "top_k": 5})[2]["results"]
            st, _, c = post(r3.port, "/v1/search", {"question": q, "top_k": 5}, KC)
            assert st == 200, c
            c = c["results"]
            assert [(x["ticket_id"], x["chunk_index"], x["score"]) for x in a] == \
                   [(x["ticket_id"], x["chunk_index"], x["score"]) for x in c], q
        st, _, c = post(r3.port, "/v1/search", {"question": "pasaporte", "top_k": 50}, KC)
        assert "gone-ticket" not in {x["ticket_id"] for x in c["results"]}
        _, _, m = http("GET", r3.port, "/metrics")
        assert b'taina_rag_index{what="chunks"}' in m
    finally:
        assert r3.stop() == 0
    bad = Service("rag", tmp, dict(base, TAINA_API_KEYS_FILE=stack["keys"],
                                   TAINA_RAG_LOCAL_SEED_FILE=tmp.file("x") + ".missing"),
                  tag="rag-noseed")
    assert bad.proc.wait(30 * MULT) != 0, "a missing seed file must stop the service"
    bad.log.close()
