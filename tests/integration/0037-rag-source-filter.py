"""The source filter end to end, on both backends (local, and Qdrant through its fake): a citizen's
ticket (source "email") and published documents (sources "import" and "web") go through ingest ->
embedder -> rag; tickets.embedded records carry their source; filters.source (one name or a list)
returns only those; a rag with TAINA_RAG_SOURCES=import never returns the email ticket, not even
for a question that is its text word for word, and answers 422 to a filter outside that set; a
chunk without a source (a record embedded before sources were carried) matches no source filter
but appears without one."""
import json
import os
import sys
import uuid

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from taina_harness import (Stack, api_keys, consume, http, ingest_tickets,  # noqa: E402
                           post_json, producer)

KA = "key-a-0123456789abcdef"
EMAIL = ("Reclamo por corte de agua", "Desde el lunes no tenemos agua en la calle Los Almendros "
         "número doce. Pedimos que envíen una cuadrilla a revisar la tubería rota del barrio.")
IMPORT = [("Cortes de agua programados", "La empresa de agua publica los cortes programados en su "
           "sitio web. Un corte programado dura como máximo ocho horas y se avisa con dos días."),
          ("Renovación de pasaporte", "Para renovar el pasaporte debe presentar la cédula de "
           "identidad y el pasaporte anterior. La cita se pide en línea.")]
WEB = ("Horario de atención", "Las oficinas abren de lunes a viernes de ocho a cuatro. Los sábados "
       "abren solo para entregar pasaportes urgentes y reclamos de agua.")
OLD = "Registro antiguo sin fuente: la tubería rota del barrio y el corte de agua en Los Almendros."


def search(port, question, filters=None, top_k=50):
    body = {"question": question, "top_k": top_k}
    if filters is not None:
        body["filters"] = filters
    return post_json(port, "/v1/search", body, KA)


def ids_of(r):
    return {x["ticket_id"] for x in r["results"]}


@pytest.fixture(scope="module")
def stack():
    s = Stack("taina-0037-")
    try:
        keys = api_keys(s.tmp, {"tenant-a": KA})
        p = s.rag_pipeline(keys)
        url = "http://127.0.0.1:%d" % p["qdrant"].port
        only = {"local": s.service("rag", {"TAINA_API_KEYS_FILE": keys,
                                           "TAINA_RAG_SOURCES": " import "},
                                   tag="rag-local-import", wait=False),
                "qdrant": s.service("rag", {"TAINA_API_KEYS_FILE": keys,
                                            "TAINA_RAG_SOURCES": "import",
                                            "TAINA_RAG_BACKEND": "qdrant",
                                            "TAINA_QDRANT_URL": url},
                                    tag="rag-qdrant-import", wait=False)}
        s.ready(*only.values())
        port = p["ingest"].port
        ids = {"email": [i["ticket_id"] for i in ingest_tickets(
                   port, KA, [{"source": "email", "title": EMAIL[0], "body": EMAIL[1]}])],
               "import": [i["ticket_id"] for i in ingest_tickets(
                   port, KA, [{"source": "import", "title": t, "body": b} for t, b in IMPORT])],
               "web": [i["ticket_id"] for i in ingest_tickets(
                   port, KA, [{"source": "web", "title": WEB[0], "body": WEB[1]}])]}
        every = set(sum(ids.values(), []))
        for rag in list(p["rag"].values()):
            wait_for(rag.port, every)
        yield {"stack": s, "p": p, "only": only, "ids": ids, "every": every, "url": url}
    finally:
        codes = s.close()
    assert set(codes.values()) <= {0}, "a service did not exit 0 on SIGTERM: %s" % codes


def wait_for(port, want, question="agua pasaporte oficinas", timeout=60):
    import time
    deadline = time.time() + timeout
    while time.time() < deadline:
        st, _, r = search(port, question)
        if st == 200 and want <= ids_of(r):
            return
        time.sleep(0.3)
    raise AssertionError("not searchable in time")


def test_embedded_records_carry_source(stack):
    mine = {t: src for src, ts in stack["ids"].items() for t in ts}
    recs = consume(stack["stack"].ds.bootstrap, "tickets.embedded")  # all of them, till idle
    seen = {}
    for r in recs:
        v = json.loads(r["value"])
        if v["ticket_id"] in mine:
            assert v.get("source") == mine[v["ticket_id"]], v
            seen[v["ticket_id"]] = v["source"]
    assert seen == mine


@pytest.mark.parametrize("backend", ["local", "qdrant"])
def test_filter_by_source(stack, backend):
    port, ids = stack["p"]["rag"][backend].port, stack["ids"]
    st, _, r = search(port, "agua pasaporte oficinas")
    assert st == 200 and ids_of(r) == stack["every"]
    for f, want in (("email", ids["email"]), (["import"], ids["import"]),
                    (["import", "web"], ids["import"] + ids["web"]), ("phone", [])):
        st, _, r = search(port, "agua pasaporte oficinas tubería", {"source": f})
        assert st == 200, r
        assert ids_of(r) == set(want), (f, r)
        assert all(x["source"] in (f if isinstance(f, list) else [f]) for x in r["results"])
    st, _, r = post_json(port, "/v1/query", {"question": EMAIL[1], "filters": {"source": "web"}},
                         KA)
    assert st == 200 and {c["ticket_id"] for c in r["citations"]} <= set(ids["web"])


@pytest.mark.parametrize("backend", ["local", "qdrant"])
def test_configured_sources_never_return_the_email(stack, backend):
    port, ids = stack["only"][backend].port, stack["ids"]
    wait_for(port, set(ids["import"]))
    for question in (EMAIL[1], EMAIL[0] + " " + EMAIL[1]):
        st, _, r = search(port, question)
        assert st == 200 and r["results"], r
        assert ids_of(r) <= set(ids["import"]), r
        st, _, r = post_json(port, "/v1/query", {"question": question}, KA)
        assert st == 200, r
        assert {c["ticket_id"] for c in r["citations"]} <= set(ids["import"]), r
        assert "Almendros" not in r["answer"]
    st, _, r = search(port, EMAIL[1], {"source": ["import"]})
    assert st == 200 and ids_of(r) <= set(ids["import"])
    # the same question on the unrestricted rag finds the email ticket first
    st, _, r = search(stack["p"]["rag"][backend].port, EMAIL[1])
    assert r["results"][0]["ticket_id"] == ids["email"][0]


@pytest.mark.parametrize("backend", ["local", "qdrant"])
@pytest.mark.parametrize("path", ["/v1/search", "/v1/query"])
def test_source_outside_the_configured_set_is_422(stack, backend, path):
    port = stack["only"][backend].port
    for f in ("email", ["import", "email"], ["web"]):
        st, _, r = post_json(port, path, {"question": "agua", "filters": {"source": f}}, KA)
        assert st == 422, r
        assert r["error"]["code"] == "source_not_allowed"
        assert "is not one of the sources this service answers from (import)" in \
            r["error"]["message"], r
    for bad in ([], ["a"] * 9, "", 7):  # the schema's bounds
        st, _, r = post_json(port, path, {"question": "agua", "filters": {"source": bad}}, KA)
        assert st == 422 and r["error"]["code"] == "schema_violation", (bad, r)


def test_bad_configured_sources_stop_the_start(stack):
    from taina_harness import Service
    for bad in ("import,,web", ",".join("s%d" % i for i in range(9)), "x" * 65):
        svc = Service("rag", stack["stack"].tmp, dict(stack["stack"].base,
                                                      TAINA_AUTH_DISABLED="1",
                                                      TAINA_RAG_SOURCES=bad),
                      tag="rag-bad")
        try:
            assert svc.proc.wait(30) == 2
            assert "TAINA_RAG_SOURCES" in svc.tail(50)
        finally:
            svc.stop()


def test_chunks_without_source_match_no_source_filter(stack):
    """An old record (no source): on the local backend a tickets.embedded value without it, on
    Qdrant a point without it in its payload."""
    email = stack["ids"]["email"][0]
    rec = next(json.loads(r["value"]) for r in consume(
        stack["stack"].ds.bootstrap, "tickets.embedded", want=1,
        pred=lambda r: json.loads(r["value"])["ticket_id"] == email)
        if json.loads(r["value"])["ticket_id"] == email)
    old = str(uuid.uuid4())
    rec.update(ticket_id=old, point_id=str(uuid.uuid4()), text=OLD, chunk_count=1)
    rec.pop("source")
    pr = producer(stack["stack"].ds.bootstrap)
    pr.produce("tickets.embedded", json.dumps(rec).encode(), old.encode())
    assert pr.flush(30) == 0
    import base64
    import struct
    raw = base64.b64decode(rec["vector"])
    vec = list(struct.unpack("<%df" % (len(raw) // 4), raw))
    payload = {k: rec[k] for k in ("tenant_id", "ticket_id", "chunk_index", "title", "text",
                                   "lang", "model") if k in rec}
    st, _, body = http("PUT", stack["p"]["qdrant"].port,
                       "/collections/taina-chunks/points?wait=true",
                       json.dumps({"points": [{"id": rec["point_id"], "vector": vec,
                                               "payload": payload}]}),
                       {"Content-Type": "application/json"})
    assert st == 200, body
    for backend in ("local", "qdrant"):
        port = stack["p"]["rag"][backend].port
        wait_for(port, {old}, OLD)
        st, _, r = search(port, OLD, {"source": ["email", "import", "web"]})
        assert st == 200 and old not in ids_of(r) and email in ids_of(r)
        st, _, r = search(stack["only"][backend].port, OLD)
        assert st == 200 and old not in ids_of(r)
