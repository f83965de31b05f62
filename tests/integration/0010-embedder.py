"""embedder on devstack with the Qdrant fake: enriched records produced with an independent
client (confluent-kafka) end as the right points in Qdrant (count, ids, payload) and as records
on tickets.embedded; fewer chunks leave no stale points; a deleted ticket leaves none; bad
records go to the DLQ; a 10 s Qdrant outage loses nothing and sends nothing to the DLQ; a Qdrant
outage with several batches in the pipeline (acknowledgments slowed down) leaves each ticket's
last version in Qdrant and last on tickets.embedded; the lag gauges go from N to 0."""
import base64
import json
import math
import os
import re
import struct
import sys
import time
import uuid

import jsonschema
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from taina_harness import (KAFKA_FAST_GROUP, MULT, Devstack, Service, TempDir,  # noqa: E402
                           consume, http, producer, wait_for)

NS = uuid.uuid5(uuid.NAMESPACE_URL, "https://taina.dev/chunks")
COLL = "taina-chunks"
EMBEDDED_SCHEMA = json.load(open(os.path.join(os.path.dirname(__file__), "..", "..", "schemas",
                                              "tickets.embedded.schema.json")))


def embedded_values(recs):
    """The values of tickets.embedded records, each checked against the topic's schema."""
    out = []
    for r in recs:
        v = json.loads(r["value"])
        jsonschema.validate(v, EMBEDDED_SCHEMA, format_checker=jsonschema.FormatChecker())
        out.append(v)
    return out


def point_id(tenant, ticket, idx):
    return str(uuid.uuid5(NS, "%s/%s/%d" % (tenant, ticket, idx)))


def enriched(ticket, tenant="t1", nchunks=2, deleted=False, words="pasaporte renovar cita"):
    v = {"schema_version": 1, "ticket_id": ticket, "tenant_id": tenant,
         "created_at": "2026-11-24T10:00:00Z", "enriched_at": "2026-11-24T10:00:01Z"}
    if deleted:
        v["deleted"] = True
        return v
    chunks, text, pos = [], "", 0
    for i in range(nchunks):
        t = "Fragmento %d: %s %s." % (i, words, ticket[:8])
        chunks.append({"index": i, "text": t, "start": pos, "end": pos + len(t),
                       "words": len(t.split())})
        text += t + " "
        pos += len(t) + 1
    v.update({"source": "web", "title": "Ticket " + ticket[:8], "text": text.strip(),
              "lang": "es", "lang_confidence": 0.9, "category": "passport",
              "priority": "normal", "pii": {}, "invalid_utf8": 0, "content_hash": "0" * 64,
              "chunks": chunks})
    return v


def send(bootstrap, values):
    p = producer(bootstrap)
    for v in values:
        key = v["ticket_id"] if isinstance(v, dict) else v[0]
        val = json.dumps(v) if isinstance(v, dict) else v[1]
        p.produce("tickets.enriched", key=key, value=val)
    assert p.flush(30) == 0


def qd(stack, method, path, body=None):
    st, _, data = http(method, stack["qport"], path, body,
                       {"Content-Type": "application/json"})
    return st, (json.loads(data) if data else None)


def points_of(stack, ticket):
    st, r = qd(stack, "POST", "/collections/%s/points/scroll" % COLL,
               {"filter": {"must": [{"key": "ticket_id", "match": {"value": ticket}}]},
                "limit": 1000, "with_payload": True})
    assert st == 200, r
    return r["result"]["points"]


def count(stack):
    st, r = qd(stack, "POST", "/collections/%s/points/count" % COLL, {"exact": True})
    return r["result"]["count"] if st == 200 else -1


@pytest.fixture(scope="module")
def stack():
    tmp = TempDir("taina-0010-")
    ds = Devstack(tmp)
    fake = Service("fake-qdrant", tmp, {"TAINA_HTTP_MAX_BODY": "64MiB"})
    fake.wait_ready()
    env = {"TAINA_KAFKA_BROKERS": ds.bootstrap, "TAINA_VECTOR_STORE": "qdrant",
           "TAINA_QDRANT_URL": "http://127.0.0.1:%d" % fake.port,
           "TAINA_KAFKA_STATS_INTERVAL": "500ms"}
    env.update(KAFKA_FAST_GROUP)
    svc = Service("embedder", tmp, env)
    svc.wait_ready()
    yield {"tmp": tmp, "ds": ds, "fake": fake, "svc": svc, "qport": fake.port, "env": env}
    rc = svc.stop()
    fake.stop()
    ds.stop()
    tmp.cleanup()
    assert rc == 0, "embedder did not exit 0 on SIGTERM"


def test_collection_created_with_size_and_indexes(stack):
    st, r = qd(stack, "GET", "/collections/" + COLL)
    assert st == 200
    params = r["result"]["config"]["params"]["vectors"]
    assert params["size"] == 384 and params["distance"] == "Cosine"
    assert {"tenant_id", "ticket_id"} <= set(r["result"]["payload_schema"])


def test_points_and_embedded_records(stack):
    tickets = [str(uuid.uuid4()) for _ in range(3)]
    send(stack["ds"].bootstrap, [enriched(t, nchunks=n) for t, n in zip(tickets, (1, 2, 3))])
    wait_for(lambda: all(len(points_of(stack, t)) == n for t, n in zip(tickets, (1, 2, 3))),
             what="6 points")
    for t, n in zip(tickets, (1, 2, 3)):
        pts = points_of(stack, t)
        assert sorted(p["id"] for p in pts) == sorted(point_id("t1", t, i) for i in range(n))
        for p in pts:
            pl = p["payload"]
            assert pl["tenant_id"] == "t1" and pl["ticket_id"] == t
            assert pl["text"].startswith("Fragmento %d:" % pl["chunk_index"])
            assert pl["model"] == "taina-hash-v1" and pl["lang"] == "es"
            assert "start" in pl and "end" in pl and pl["content_hash"] == "0" * 64
    recs = consume(stack["ds"].bootstrap, "tickets.embedded", want=6,
                   pred=lambda r: r["key"].decode() in tickets)
    mine = embedded_values([r for r in recs if r["key"].decode() in tickets])
    assert len(mine) == 6
    for v in mine:
        vec = struct.unpack("<384f", base64.b64decode(v["vector"]))
        assert abs(math.sqrt(sum(x * x for x in vec)) - 1.0) < 1e-4
        assert v["dims"] == 384 and v["point_id"] == point_id("t1", v["ticket_id"],
                                                               v["chunk_index"])
    hdr = [r for r in recs if r["key"].decode() in tickets][0]["headers"]
    assert hdr["taina-schema"] == b"tickets.embedded/1"


def test_fewer_chunks_leave_no_stale_points_and_delete_removes_all(stack):
    t = str(uuid.uuid4())
    send(stack["ds"].bootstrap, [enriched(t, nchunks=5)])
    wait_for(lambda: len(points_of(stack, t)) == 5, what="5 points")
    send(stack["ds"].bootstrap, [enriched(t, nchunks=2, words="licencia de conducir")])
    wait_for(lambda: len(points_of(stack, t)) == 2, what="2 points after the update")
    assert all("licencia" in p["payload"]["text"] for p in points_of(stack, t))
    send(stack["ds"].bootstrap, [enriched(t, deleted=True)])
    wait_for(lambda: len(points_of(stack, t)) == 0, what="no points after the delete")
    recs = consume(stack["ds"].bootstrap, "tickets.embedded", idle=2,
                   pred=lambda r: r["key"].decode() == t)
    assert any(v.get("deleted") for v in embedded_values([r for r in recs
                                                          if r["key"].decode() == t]))


def test_text_that_needs_escaping_round_trips(stack):
    """Quotes, backslashes, control characters and non-ASCII text reach Qdrant's payload and
    tickets.embedded exactly as they were sent."""
    t = str(uuid.uuid4())
    v = enriched(t, nchunks=2, words='comilla " barra \\ /\ttab\nlínea \x01 ñandú \u2028 \U0001F600')
    v["title"] = 'Título "raro" \\ \x7f'
    send(stack["ds"].bootstrap, [v])
    wait_for(lambda: len(points_of(stack, t)) == 2, what="2 points")
    texts = {c["index"]: c["text"] for c in v["chunks"]}
    for p in points_of(stack, t):
        assert p["payload"]["text"] == texts[p["payload"]["chunk_index"]]
        assert p["payload"]["title"] == v["title"]
    recs = consume(stack["ds"].bootstrap, "tickets.embedded", want=2,
                   pred=lambda r: r["key"].decode() == t)
    mine = embedded_values([r for r in recs if r["key"].decode() == t])
    assert len(mine) == 2
    for e in mine:
        assert e["text"] == texts[e["chunk_index"]] and e["title"] == v["title"]


def test_chunks_as_offsets_take_their_text_from_the_record(stack):
    """Without ingest_chunk_text a chunk is [start, end) in code points of the record's text:
    the embedder embeds and stores that span; offsets outside the text send the record to the
    DLQ (reason schema, the chunk named in the detail)."""
    t, t_bad = str(uuid.uuid4()), str(uuid.uuid4())
    v = enriched(t, nchunks=3, words='ñandú \U0001F600 línea \u2028 "x" \\')
    texts = {c["index"]: c.pop("text") for c in v["chunks"]}
    assert all(v["text"][c["start"]:c["end"]] == texts[c["index"]] for c in v["chunks"])
    bad = enriched(t_bad, nchunks=2)
    for c in bad["chunks"]:
        del c["text"]
    bad["chunks"][1]["end"] = len(bad["text"]) + 1
    send(stack["ds"].bootstrap, [v, bad])
    wait_for(lambda: len(points_of(stack, t)) == 3, what="3 points")
    for p in points_of(stack, t):
        assert p["payload"]["text"] == texts[p["payload"]["chunk_index"]]
    recs = consume(stack["ds"].bootstrap, "tickets.embedded", want=3,
                   pred=lambda r: r["key"].decode() == t)
    mine = embedded_values([r for r in recs if r["key"].decode() == t])
    assert sorted(e["text"] for e in mine) == sorted(texts.values())
    dlq = consume(stack["ds"].bootstrap, "tickets.dlq", want=1,
                  pred=lambda r: r["key"].decode() == t_bad)
    d = [r for r in dlq if r["key"].decode() == t_bad]
    assert len(d) == 1 and d[0]["headers"]["taina-error"] == b"schema"
    assert b"/chunks/1" in d[0]["headers"]["taina-error-detail"], d[0]["headers"]
    assert points_of(stack, t_bad) == []


def test_bad_records_go_to_the_dlq(stack):
    bad = [("emb-bad-json", b"{oops"),
           ("emb-bad-schema", json.dumps({"schema_version": 1, "ticket_id": "x"}).encode())]
    send(stack["ds"].bootstrap, bad)
    keys = {k for k, _ in bad}
    dlq = consume(stack["ds"].bootstrap, "tickets.dlq", want=2,
                  pred=lambda r: r["key"].decode() in keys)
    got = {r["key"].decode(): r["headers"]["taina-error"].decode() for r in dlq
           if r["key"].decode() in keys}
    assert got == {"emb-bad-json": "json", "emb-bad-schema": "schema"}
    assert stack["svc"].proc.poll() is None


def dlq_total(stack):
    st, _, body = http("GET", stack["svc"].port, "/metrics")
    return sum(float(m) for m in re.findall(r"^taina_embedder_dlq_total\{[^}]*\} (\S+)",
                                            body.decode(), re.M))


def test_qdrant_outage_loses_nothing(stack):
    before = dlq_total(stack)
    n0 = count(stack)
    st, _ = qd(stack, "POST", "/admin/faults", {"error_rate": 1.0, "error_status": 503})
    assert st == 200
    tickets = [str(uuid.uuid4()) for _ in range(40)]
    try:
        send(stack["ds"].bootstrap, [enriched(t, nchunks=2) for t in tickets])
        time.sleep(10)
        # while Qdrant is down the worker is not ready and nothing was written
        st, _, _ = http("GET", stack["svc"].port, "/ready")
        assert st == 503
    finally:
        qd(stack, "POST", "/admin/faults", {"error_rate": 0.0})
    wait_for(lambda: count(stack) == n0 + 80, timeout=60, what="80 points after the outage")
    # None of the outage's records is a dead letter. (The DLQ metric may also count a dead
    # letter of an earlier test again: a batch redone after a rewind is at least once.)
    want = set(tickets)
    dlq = consume(stack["ds"].bootstrap, "tickets.dlq", idle=2)
    assert not [r for r in dlq if r["key"] and r["key"].decode() in want], \
        "records of the outage went to the DLQ"
    assert dlq_total(stack) >= before
    wait_for(lambda: http("GET", stack["svc"].port, "/ready")[0] == 200, what="ready again")


def test_qdrant_outage_with_batches_in_flight_keeps_the_last_version(stack):
    """Several batches at once in the pipeline: every broker answers 1 s late, so the records of
    a few batches await their acknowledgments while the next ones are written to Qdrant (which
    takes 100 ms a call). Qdrant then fails for 3 s (at once: faster than the acknowledgments)
    from the moment a third batch's points appear. Three versions of each ticket (3, then 1,
    then 2 chunks) go in, in order: afterwards each ticket has exactly the points of its last
    version, its last record on tickets.embedded is from that version, every chunk of it is
    there, and nothing went to the DLQ."""
    ds = stack["ds"]
    # after the outage above the next few batches go the synchronous way: get past them first
    warm = [str(uuid.uuid4()) for _ in range(40)]
    n0 = count(stack)
    send(ds.bootstrap, [enriched(t, nchunks=8) for t in warm])
    wait_for(lambda: count(stack) == n0 + 320, timeout=30, what="the warm-up's points")
    tickets = [str(uuid.uuid4()) for _ in range(80)]
    versions = [(3, "uno primera"), (1, "dos segunda"), (2, "tres tercera")]
    n0 = count(stack)
    qd(stack, "POST", "/admin/faults", {"latency_ms": 100})
    for b in range(1, ds.brokers + 1):
        ds.rtt(b, 1000)
    try:
        send(ds.bootstrap, [enriched(t, nchunks=n, words=w) for n, w in versions for t in tickets])
        wait_for(lambda: count(stack) > n0 + 130, timeout=30, what="three batches' points")
        qd(stack, "POST", "/admin/faults", {"error_rate": 1.0, "error_status": 503,
                                            "latency_ms": 0})
        time.sleep(3)
    finally:
        qd(stack, "POST", "/admin/faults", {"error_rate": 0.0, "latency_ms": 0})
        for b in range(1, ds.brokers + 1):
            ds.rtt(b, 0)

    def last_version(t):
        return sorted((p["payload"]["chunk_index"], "tres" in p["payload"]["text"])
                      for p in points_of(stack, t)) == [(0, True), (1, True)]
    wait_for(lambda: count(stack) == n0 + 2 * len(tickets) and all(map(last_version, tickets)),
             timeout=90, what="the points of each ticket's last version, and no others")
    # the outage hit with batches in the pipeline (the worker logs how many were sent before)
    with open(stack["svc"].logpath, errors="replace") as f:
        behind = [int(n) for n in re.findall(r"redoing it \((\d+) sent before it", f.read())]
    assert behind and max(behind) >= 2, "no outage with 2+ batches sent before it: %s" % behind
    want = set(tickets)
    recs = [r for r in consume(ds.bootstrap, "tickets.embedded", idle=3)
            if r["key"] and r["key"].decode() in want]
    last, seen = {}, {}
    for r in sorted(recs, key=lambda r: (r["partition"], r["offset"])):
        v = json.loads(r["value"])
        last[v["ticket_id"]] = v
        if "tres" in v.get("text", ""):
            seen.setdefault(v["ticket_id"], set()).add(v["chunk_index"])
    for t in tickets:
        assert last[t]["chunk_count"] == 2 and "tres" in last[t]["text"], (t, last[t])
        assert seen.get(t) == {0, 1}, (t, seen.get(t))
    dlq = consume(ds.bootstrap, "tickets.dlq", idle=2)
    assert not [r for r in dlq if r["key"] and r["key"].decode() in want], \
        "records of the run went to the DLQ"


def lag(stack):
    st, _, body = http("GET", stack["svc"].port, "/metrics")
    m = re.search(r'^taina_kafka_consumer_group_lag\{group="taina-embedder",'
                  r'topic="tickets.enriched"\} (\S+)', body.decode(), re.M)
    return float(m.group(1)) if m else None


def test_lag_goes_from_n_to_zero(stack):
    svc = stack["svc"]
    assert svc.stop() == 0
    tickets = [str(uuid.uuid4()) for _ in range(300)]
    send(stack["ds"].bootstrap, [enriched(t, nchunks=1) for t in tickets])
    # slow enough to watch: 30 batches of 10 behind a Qdrant that takes 200 ms
    qd(stack, "POST", "/admin/faults", {"latency_ms": 200})
    svc.env["TAINA_EMBEDDER_BATCH_CHUNKS"] = "10"
    svc.start()
    seen = []
    deadline = time.time() + 60 * MULT
    while time.time() < deadline:
        try:
            v = lag(stack)
        except OSError:
            v = None
        if v is not None:
            seen.append(v)
            if v == 0 and max(seen) > 0:
                break
        time.sleep(0.1)
    qd(stack, "POST", "/admin/faults", {"latency_ms": 0})
    assert seen and max(seen) >= 200, "the lag never showed the backlog: %s" % seen[:20]
    assert seen[-1] == 0, "lag did not return to 0: %s" % seen[-10:]


def test_every_embedded_record_matches_the_schema(stack):
    recs = consume(stack["ds"].bootstrap, "tickets.embedded", idle=2)
    assert recs
    embedded_values(recs)
