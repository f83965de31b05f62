"""embedder with the openai provider against the OpenAI-compatible fake, in local mode (no
Qdrant: tickets.embedded is the index): vectors of the asked dimensions come from the API, the
API key is sent, a chunk the API refuses (400) sends only its record to the DLQ, and 429/503
bursts are retried without loss."""
import base64
import json
import math
import os
import struct
import sys
import time
import uuid

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from taina_harness import (KAFKA_FAST_GROUP, Devstack, Service, TempDir,  # noqa: E402
                           consume, http, producer)


def enriched(ticket, texts):
    chunks = [{"index": i, "text": t, "start": 0, "end": len(t), "words": len(t.split())}
              for i, t in enumerate(texts)]
    return {"schema_version": 1, "ticket_id": ticket, "tenant_id": "t1", "source": "web",
            "title": "x", "text": " ".join(texts), "lang": "en", "lang_confidence": 0.8,
            "category": "general", "priority": "normal", "pii": {}, "invalid_utf8": 0,
            "content_hash": "0" * 64, "created_at": "2026-11-24T10:00:00Z",
            "enriched_at": "2026-11-24T10:00:01Z", "chunks": chunks}


@pytest.fixture(scope="module")
def stack():
    tmp = TempDir("taina-0012-")
    ds = Devstack(tmp)
    fake = Service("fake-embeddings", tmp, {"TAINA_FAKE_API_KEY": "sk-test",
                                            "TAINA_FAKE_MAX_INPUT_TOKENS": "200"})
    fake.wait_ready()
    env = {"TAINA_KAFKA_BROKERS": ds.bootstrap, "TAINA_EMBED_PROVIDER": "openai",
           "TAINA_EMBED_URL": "http://127.0.0.1:%d" % fake.port, "TAINA_EMBED_MODEL": "e5-test",
           "TAINA_EMBED_API_KEY": "sk-test", "TAINA_EMBED_DIMS": "256",
           "TAINA_EMBEDDER_RETRY_BASE": "50ms"}
    env.update(KAFKA_FAST_GROUP)
    svc = Service("embedder", tmp, env)
    svc.wait_ready()
    yield {"ds": ds, "fake": fake, "svc": svc}
    rc = svc.stop()
    fake.stop()
    ds.stop()
    tmp.cleanup()
    assert rc == 0


def send(bs, values):
    p = producer(bs)
    for v in values:
        p.produce("tickets.enriched", key=v["ticket_id"], value=json.dumps(v))
    assert p.flush(30) == 0


def test_vectors_from_the_api(stack):
    tid = str(uuid.uuid4())
    send(stack["ds"].bootstrap, [enriched(tid, ["How do I renew my passport?",
                                               "Opening hours of the office"])])
    recs = consume(stack["ds"].bootstrap, "tickets.embedded", want=2,
                   pred=lambda r: r["key"].decode() == tid)
    mine = [json.loads(r["value"]) for r in recs if r["key"].decode() == tid]
    assert len(mine) == 2
    for v in mine:
        assert v["model"] == "e5-test" and v["dims"] == 256
        vec = struct.unpack("<256f", base64.b64decode(v["vector"]))
        assert abs(math.sqrt(sum(x * x for x in vec)) - 1) < 1e-3
    # the password-protected fake counted our requests: the key was sent
    st, _, body = http("GET", stack["fake"].port, "/admin/stats", headers={
        "Authorization": "Bearer sk-test"})
    assert st == 200 and json.loads(body)["embeddings"]["requests"] >= 1


def test_refused_chunk_goes_to_the_dlq_alone(stack):
    good, bad = str(uuid.uuid4()), str(uuid.uuid4())
    send(stack["ds"].bootstrap, [enriched(good, ["A short and fine text."]),
                                 enriched(bad, ["word " * 400])])  # over 200 tokens: 400
    dlq = consume(stack["ds"].bootstrap, "tickets.dlq", want=1,
                  pred=lambda r: r["key"].decode() == bad)
    mine = [r for r in dlq if r["key"].decode() == bad]
    assert mine and mine[0]["headers"]["taina-error"] == b"embed_rejected"
    recs = consume(stack["ds"].bootstrap, "tickets.embedded", want=1,
                   pred=lambda r: r["key"].decode() == good)
    assert any(r["key"].decode() == good for r in recs)


def test_429_and_503_bursts_are_retried(stack):
    hdr = {"Authorization": "Bearer sk-test", "Content-Type": "application/json"}
    http("POST", stack["fake"].port, "/admin/faults",
         {"error_rate": 0.5, "error_status": 429}, hdr)
    tickets = [str(uuid.uuid4()) for _ in range(20)]
    try:
        send(stack["ds"].bootstrap, [enriched(t, ["Birth certificate copy %d" % i])
                                     for i, t in enumerate(tickets)])
        time.sleep(2)
    finally:
        http("POST", stack["fake"].port, "/admin/faults", {"error_rate": 0.0}, hdr)
    want = set(tickets)
    recs = consume(stack["ds"].bootstrap, "tickets.embedded", want=20,
                   pred=lambda r: r["key"].decode() in want)
    assert {r["key"].decode() for r in recs} >= want
    dlq = consume(stack["ds"].bootstrap, "tickets.dlq", idle=2)
    assert not any(r["key"].decode() in want for r in dlq)
