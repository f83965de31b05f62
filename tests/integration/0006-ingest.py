"""ingest on devstack, driven over HTTP and with an independent Kafka client (confluent-kafka).

What a user checks: status codes and JSON error bodies, records on tickets.raw, tickets.enriched
and tickets.dlq (with their headers), PII that comes out redacted, chunk offsets, /metrics,
/ready, and a clean exit on SIGTERM.
"""
import json
import os
import signal
import sys
import time
import uuid

import jsonschema
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from taina_harness import (KAFKA_FAST_GROUP, Devstack, Service, TempDir, api_keys,  # noqa: E402
                           consume, http, metric, producer, wait_for)

KEY_A, KEY_B = "key-tenant-a-0123456789", "key-tenant-b-9876543210"
JSON = {"Content-Type": "application/json", "Authorization": "Bearer " + KEY_A}
NDJSON = {"Content-Type": "application/x-ndjson", "Authorization": "Bearer " + KEY_A}


def ticket(**kw):
    t = {"source": "web", "title": "Renovación de pasaporte",
         "body": "Quiero renovar mi pasaporte. ¿Qué documentos necesito?",
         "content_type": "text/plain", "created_at": "2026-11-24T10:00:00Z"}
    t.update(kw)
    return t


@pytest.fixture(scope="module")
def stack():
    tmp = TempDir("taina-0006-")
    ds = Devstack(tmp)
    env = {"TAINA_KAFKA_BROKERS": ds.bootstrap,
           "TAINA_API_KEYS_FILE": api_keys(tmp, {"tenant-a": KEY_A, "tenant-b": KEY_B}),
           "TAINA_HTTP_MAX_BODY": "64KiB", "TAINA_INGEST_MAX_ITEMS": "20",
           "TAINA_INGEST_BATCH_LINGER": "20ms", "TAINA_INGEST_CHUNK_WORDS": "20",
           "TAINA_INGEST_CHUNK_OVERLAP": "5"}
    env.update(KAFKA_FAST_GROUP)
    svc = Service("ingest", tmp, env)
    svc.wait_ready()
    yield {"tmp": tmp, "ds": ds, "svc": svc, "port": svc.port, "env": env}
    rc = svc.stop()
    ds.stop()
    tmp.cleanup()
    assert rc == 0, "ingest did not exit 0 on SIGTERM"


ENRICHED_SCHEMA = json.load(open(os.path.join(os.path.dirname(__file__), "..", "..", "schemas",
                                            "tickets.enriched.schema.json")))


def enriched(stack, ids, timeout=30):
    """The tickets.enriched values of @ids, by ticket id, each checked against the schema
    (ingest writes them without validating: they are valid by construction)."""
    ids = set(ids)
    recs = consume(stack["ds"].bootstrap, "tickets.enriched", want=len(ids), timeout=timeout,
                   pred=lambda r: r["key"].decode() in ids)
    got = {r["key"].decode(): json.loads(r["value"]) for r in recs if r["key"].decode() in ids}
    for v in got.values():
        jsonschema.validate(v, ENRICHED_SCHEMA, format_checker=jsonschema.FormatChecker())
    return got


def raw_ids(stack):
    return {json.loads(r["value"])["ticket_id"]
            for r in consume(stack["ds"].bootstrap, "tickets.raw", idle=2)}


def error_of(body):
    e = json.loads(body)["error"]
    assert e["code"] and e["message"], e
    return e


# --- HTTP: accepted ---------------------------------------------------------------------------

def test_single_ticket_accepted_and_enriched(stack):
    st, _, body = http("POST", stack["port"], "/v1/tickets", ticket(), JSON)
    assert st == 202, body
    r = json.loads(body)
    assert r["status"] == "accepted"
    tid = r["ticket_id"]
    uuid.UUID(tid)
    raw = [x for x in consume(stack["ds"].bootstrap, "tickets.raw", want=1,
                              pred=lambda x: x["key"] == tid.encode())
           if x["key"] == tid.encode()]
    assert len(raw) == 1
    v = json.loads(raw[0]["value"])
    assert v["tenant_id"] == "tenant-a" and v["schema_version"] == 1 and v["received_at"]
    assert raw[0]["headers"]["taina-schema"] == b"tickets.raw/1"
    assert raw[0]["headers"]["traceparent"].startswith(b"00-")
    e = enriched(stack, [tid])[tid]
    assert e["tenant_id"] == "tenant-a" and e["lang"] == "es" and e["category"] == "passport"
    assert len(e["content_hash"]) == 64 and e["chunks"]


def test_tenant_comes_from_the_key(stack):
    hdr = dict(JSON, Authorization="Bearer " + KEY_B)
    st, _, body = http("POST", stack["port"], "/v1/tickets", ticket(), hdr)
    assert st == 202
    tid = json.loads(body)["ticket_id"]
    assert enriched(stack, [tid])[tid]["tenant_id"] == "tenant-b"
    # a tenant in the body is refused, never trusted
    st, _, body = http("POST", stack["port"], "/v1/tickets", ticket(tenant_id="tenant-a"), hdr)
    assert st == 422
    assert error_of(body)["keyword"] == "additionalProperties"


def test_given_ticket_id_is_kept(stack):
    tid = str(uuid.uuid4())
    st, _, body = http("POST", stack["port"], "/v1/tickets", ticket(ticket_id=tid), JSON)
    assert st == 202 and json.loads(body)["ticket_id"] == tid


def test_ndjson_mixed_batch(stack):
    lines = [json.dumps(ticket(title="uno")), "",
             json.dumps({"source": "web", "body": "sin título", "content_type": "text/plain",
                         "created_at": "2026-11-24T10:00:00Z"}),
             json.dumps(ticket(title="tres", created_at="yesterday")),
             json.dumps(ticket(title="cuatro"))]
    st, _, body = http("POST", stack["port"], "/v1/tickets", "\n".join(lines) + "\n", NDJSON)
    assert st == 202, body
    r = json.loads(body)
    assert r["accepted"] == 2 and r["rejected"] == 2
    by_line = {i["line"]: i for i in r["items"]}
    assert by_line[1]["status"] == "accepted" and by_line[5]["status"] == "accepted"
    assert by_line[3]["status"] == "rejected"
    assert by_line[3]["error"]["keyword"] == "required"
    assert by_line[4]["error"]["path"] == "/created_at"
    assert by_line[4]["error"]["keyword"] == "format"
    ids = [by_line[1]["ticket_id"], by_line[5]["ticket_id"]]
    got = enriched(stack, ids)
    assert sorted(v["title"] for v in got.values()) == ["cuatro", "uno"]
    titles = {json.loads(x["value"])["title"]
              for x in consume(stack["ds"].bootstrap, "tickets.raw", idle=2)}
    assert "tres" not in titles, "a rejected item reached tickets.raw"


# --- HTTP: errors -----------------------------------------------------------------------------

def test_malformed_json_400(stack):
    st, h, body = http("POST", stack["port"], "/v1/tickets", '{"title": ', JSON)
    assert st == 400 and h["content-type"].startswith("application/json")
    assert error_of(body)["code"] == "invalid_json"


def test_malformed_ndjson_line_400_with_line_number_and_nothing_produced(stack):
    before = raw_ids(stack)
    body = json.dumps(ticket(title="antes")) + "\n" + '{"oops"\n' + json.dumps(ticket())
    st, _, resp = http("POST", stack["port"], "/v1/tickets", body, NDJSON)
    assert st == 400
    assert "line 2" in error_of(resp)["message"]
    time.sleep(0.5)
    assert raw_ids(stack) == before


def test_auth_401(stack):
    st, h, body = http("POST", stack["port"], "/v1/tickets", ticket(),
                       {"Content-Type": "application/json"})
    assert st == 401 and error_of(body)
    st, _, body = http("POST", stack["port"], "/v1/tickets", ticket(),
                       dict(JSON, Authorization="Bearer wrong-key"))
    assert st == 401 and error_of(body)


def test_wrong_content_type_415(stack):
    st, _, body = http("POST", stack["port"], "/v1/tickets", "hola",
                       dict(JSON, **{"Content-Type": "text/plain"}))
    assert st == 415 and error_of(body)


def test_too_large_413(stack):
    big = ticket(body="x " * 40000)  # 80 KB > TAINA_HTTP_MAX_BODY=64KiB
    st, _, body = http("POST", stack["port"], "/v1/tickets", big, JSON)
    assert st == 413 and error_of(body)
    many = "\n".join(json.dumps(ticket()) for _ in range(21))  # TAINA_INGEST_MAX_ITEMS=20
    st, _, body = http("POST", stack["port"], "/v1/tickets", many, NDJSON)
    assert st == 413 and error_of(body)["code"] == "too_many_items"


def test_schema_violation_422(stack):
    st, _, body = http("POST", stack["port"], "/v1/tickets", ticket(lang="fr"), JSON)
    assert st == 422
    e = error_of(body)
    assert e["path"] == "/lang" and e["keyword"] == "enum"
    st, _, body = http("POST", stack["port"], "/v1/tickets", [ticket()], JSON)
    assert st == 422 and error_of(body)["keyword"] == "type"


# --- enrichment -------------------------------------------------------------------------------

PII_ES = ("Buenos días. Mi correo es maria.gomez@correo.do, mi cédula 402-2345678-1 y mi "
          "teléfono +1 809 555 1234. Pagué con la tarjeta 4111 1111 1111 1111. "
          "¿Cuándo puedo renovar la licencia de conducir?")
PII_EN = ("Hello, I need a birth certificate for my son. Email me at john.smith@example.org or "
          "call (809) 555-9876. My IBAN is GB82 WEST 1234 5698 7654 32.")


def test_pii_redacted_spanish_and_english(stack):
    ids = []
    for title, body in (("Licencia de conducir", PII_ES), ("Birth certificate", PII_EN)):
        st, _, resp = http("POST", stack["port"], "/v1/tickets",
                           ticket(title=title, body=body), JSON)
        assert st == 202
        ids.append(json.loads(resp)["ticket_id"])
    got = enriched(stack, ids)
    es, en = got[ids[0]], got[ids[1]]
    assert es["lang"] == "es" and en["lang"] == "en"
    for secret in ("maria.gomez@correo.do", "402-2345678-1", "809 555 1234", "4111 1111",
                   "john.smith", "555-9876", "GB82"):
        blob = json.dumps(got, ensure_ascii=False)
        assert secret not in blob, secret + " leaked into tickets.enriched"
    assert "[EMAIL]" in es["text"] and "[CEDULA]" in es["text"] and "[CARD]" in es["text"]
    assert "[PHONE]" in es["text"]
    assert es["pii"]["EMAIL"] == 1 and es["pii"]["CEDULA"] == 1 and es["pii"]["CARD"] == 1
    assert "[EMAIL]" in en["text"] and "[IBAN]" in en["text"] and "[PHONE]" in en["text"]
    assert en["category"] != "general"
    # the service log never shows the personal data either
    log = open(stack["svc"].logpath, errors="replace").read()
    assert "maria.gomez" not in log and "402-2345678-1" not in log


def test_chunks_offsets_and_overlap(stack):
    sentences = ["La oficina número %d abre a las ocho." % i for i in range(30)]
    body = "  ".join(sentences) + "\n\n¡Gracias!"
    st, _, resp = http("POST", stack["port"], "/v1/tickets", ticket(body=body), JSON)
    assert st == 202
    tid = json.loads(resp)["ticket_id"]
    e = enriched(stack, [tid])[tid]
    text, chunks = e["text"], e["chunks"]
    assert "  " not in text and "\n" not in text  # whitespace collapsed
    assert len(chunks) > 3
    for i, c in enumerate(chunks):
        assert c["index"] == i
        assert "text" not in c  # by default a chunk is its code-point offsets into the text
        assert c["words"] == len(text[c["start"]:c["end"]].split()) <= 20
    for a, b in zip(chunks, chunks[1:]):
        assert b["start"] < a["end"], "consecutive chunks overlap"
    assert chunks[0]["start"] == 0 and chunks[-1]["end"] == len(text)
    # sentence-aware: chunks that do not reach the end stop at a sentence end
    assert all(text[c["start"]:c["end"]].endswith(".") for c in chunks[:-1])


def test_html_and_invalid_utf8_normalized(stack):
    html = ("<html><head><style>p{color:red}</style><script>alert(1)</script></head><body>"
            "<p>Solicitud de acta de nacimiento</p><p>Ma&ntilde;ana &amp; hoy&nbsp;&#233;xito</p>"
            "</body></html>")
    st, _, resp = http("POST", stack["port"], "/v1/tickets",
                       ticket(body=html, content_type="text/html"), JSON)
    assert st == 202
    tid = json.loads(resp)["ticket_id"]
    e = enriched(stack, [tid])[tid]
    assert e["text"] == "Solicitud de acta de nacimiento Mañana & hoy éxito"
    # invalid UTF-8 straight on the topic (HTTP would refuse it as malformed JSON)
    tid2 = str(uuid.uuid4())
    raw = dict(ticket(title="Cafe\u0301"), ticket_id=tid2, tenant_id="tenant-a", schema_version=1)
    data = json.dumps(raw, ensure_ascii=False).encode().replace(b"pasaporte", b"pas\xffaporte")
    p = producer(stack["ds"].bootstrap)
    p.produce("tickets.raw", key=tid2, value=data)
    p.flush(10)
    e2 = enriched(stack, [tid2])[tid2]
    assert e2["invalid_utf8"] == 1 and "pas\ufffdaporte" in e2["text"]
    assert e2["title"] == "Caf\u00e9"  # NFC


def test_title_that_grows_when_redacted_is_cut_not_refused(stack):
    title = "x" * 493 + " a@b.co"  # 500 characters: the most the schema allows
    st, _, resp = http("POST", stack["port"], "/v1/tickets", ticket(title=title), JSON)
    assert st == 202
    tid = json.loads(resp)["ticket_id"]
    e = enriched(stack, [tid])[tid]
    assert len(e["title"]) <= 500 and e["title"].endswith("\u2026")
    assert "a@b.co" not in e["title"]


def test_deleted_passes_through(stack):
    tid = str(uuid.uuid4())
    st, _, _ = http("POST", stack["port"], "/v1/tickets",
                    ticket(ticket_id=tid, deleted=True), JSON)
    assert st == 202
    e = enriched(stack, [tid])[tid]
    assert e["deleted"] is True and "chunks" not in e


def test_bad_records_go_to_the_dlq_and_the_service_goes_on(stack):
    p = producer(stack["ds"].bootstrap)
    good = str(uuid.uuid4())
    bad = {
        "dlq-json": b'{"not json',
        "dlq-schema": json.dumps({"schema_version": 1, "ticket_id": str(uuid.uuid4()),
                                  "tenant_id": "tenant-a", "title": "x"}).encode(),
        "dlq-version": json.dumps(dict(ticket(), schema_version=7, ticket_id=str(uuid.uuid4()),
                                       tenant_id="tenant-a")).encode(),
        "dlq-nul": b"\x00\x01\x02",
    }
    for k, v in bad.items():
        p.produce("tickets.raw", key=k, value=v, headers=[("traceparent", b"bogus")])
    p.produce("tickets.raw", key=good,
              value=json.dumps(dict(ticket(), ticket_id=good, tenant_id="tenant-a",
                                    schema_version=1)).encode())
    p.flush(10)
    dlq = consume(stack["ds"].bootstrap, "tickets.dlq", want=len(bad),
                  pred=lambda r: r["key"].decode() in bad)
    dlq = {r["key"].decode(): r for r in dlq if r["key"].decode() in bad}
    assert set(dlq) == set(bad)
    reasons = {k: r["headers"]["taina-error"].decode() for k, r in dlq.items()}
    assert reasons == {"dlq-json": "json", "dlq-schema": "schema", "dlq-version": "unknown_version",
                       "dlq-nul": "json"}
    for k, r in dlq.items():
        assert r["value"] == bad[k], "the DLQ keeps the original bytes"
        assert r["headers"]["taina-source-topic"] == b"tickets.raw"
        assert int(r["headers"]["taina-source-offset"]) >= 0
        assert r["headers"]["taina-error-detail"]
    assert b"required" in dlq["dlq-schema"]["headers"]["taina-error-detail"]
    assert good in enriched(stack, [good])
    assert stack["svc"].proc.poll() is None


def test_metrics(stack):
    st, _, body = http("GET", stack["port"], "/metrics")
    assert st == 200
    text = body.decode()
    for name in ("taina_ingest_records_in_total", "taina_ingest_records_out_total",
                 'taina_ingest_dlq_total{reason="schema"}', 'taina_ingest_pii_redactions_total{type="EMAIL"}',
                 "taina_ingest_enrich_duration_seconds_bucket", "taina_kafka_consumer_lag",
                 'taina_ingest_http_items_total{outcome="accepted"}'):
        assert name in text, name + " missing from /metrics"
    # every record read was enriched and timed once (more when a batch was read again); read in
    # this order, as a record is timed before its transaction counts it in
    records_in = metric(stack["svc"], "taina_ingest_records_in_total")
    assert records_in > 0
    assert metric(stack["svc"], "taina_ingest_enrich_duration_seconds_count") >= records_in


# --- 503 and readiness ------------------------------------------------------------------------

def test_503_when_kafka_cannot_take_the_records(stack):
    tmp = stack["tmp"]
    env = dict(stack["env"], TAINA_KAFKA_BROKERS="127.0.0.1:9",
               TAINA_INGEST_PRODUCE_TIMEOUT="1s", TAINA_INGEST_ENRICH="false")
    svc = Service("ingest", tmp, env, tag="ingest-nokafka")
    try:
        svc.wait_ready()
        t0 = time.time()
        st, h, body = http("POST", svc.port, "/v1/tickets", ticket(), JSON)
        assert st == 503 and h.get("retry-after") == "1", (st, h, body)
        assert error_of(body)["code"] == "unavailable"
        assert time.time() - t0 < 15
    finally:
        assert svc.stop() == 0


def test_not_ready_until_assigned(stack):
    env = dict(stack["env"], TAINA_INGEST_GROUP="never-assigned-%d" % os.getpid(),
               TAINA_KAFKA_BROKERS="127.0.0.1:9")
    svc = Service("ingest", stack["tmp"], env, tag="ingest-unready")
    try:
        # without a broker the pipeline cannot initialize transactions: it fails or stays unready
        time.sleep(1.5)
        if svc.proc.poll() is None:
            st, _, body = http("GET", svc.port, "/ready")
            assert st == 503, body
    finally:
        svc.stop(signal.SIGTERM)


def checkpoint_groups(bootstrap):
    """The consumer groups with checkpoints in taina.checkpoints (keys GROUP|TOPIC|PARTITION)."""
    return {r["key"].decode().split("|")[0]
            for r in consume(bootstrap, "taina.checkpoints", idle=2, timeout=15)}


def test_checkpoints_only_where_the_cluster_needs_them(stack):
    """TAINA_INGEST_CHECKPOINTS=auto (the default) writes checkpoints on devstack, which does not
    store the offsets a transaction commits; =off writes none, while its transactions commit
    (on Kafka auto means off)."""
    ds = stack["ds"]
    st, _, body = http("POST", stack["port"], "/v1/tickets", ticket(), JSON)
    assert st == 202, body
    enriched(stack, [json.loads(body)["ticket_id"]])
    assert "taina-ingest" in checkpoint_groups(ds.bootstrap)
    env = dict(stack["env"], TAINA_INGEST_GROUP="ingest-nock",
               TAINA_INGEST_TRANSACTIONAL_ID="ingest-nock", TAINA_INGEST_CHECKPOINTS="off")
    svc = Service("ingest", stack["tmp"], env, tag="ingest-nock")
    try:
        svc.wait_ready()
        st, _, body = http("POST", svc.port, "/v1/tickets", ticket(), JSON)
        assert st == 202, body
        wait_for(lambda: metric(svc, "taina_ingest_transactions_total",
                                'outcome="committed"') >= 1, 30, "a committed transaction")
    finally:
        assert svc.stop() == 0
    assert "ingest-nock" not in checkpoint_groups(ds.bootstrap)
