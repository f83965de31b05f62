"""At least once, idempotent: during a 10,000-chunk run the embedder is killed with SIGKILL
5 times (at seeded random moments: TN_TEST_SEED, printed) and restarted; afterwards the Qdrant
fake holds exactly one point per distinct chunk and every chunk is on tickets.embedded at least
once."""
import json
import os
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from taina_harness import (KAFKA_FAST_GROUP, MULT, Devstack, Service, TempDir,  # noqa: E402
                           http, producer, seeded_rng)

TICKETS, CHUNKS = 2500, 4  # 10,000 chunks
NS = uuid.uuid5(uuid.NAMESPACE_URL, "https://taina.dev/chunks")


def enriched(ticket, i):
    chunks = [{"index": k, "text": "Ticket %d, parte %d: horario de la oficina." % (i, k),
               "start": k * 50, "end": k * 50 + 40, "words": 7} for k in range(CHUNKS)]
    return {"schema_version": 1, "ticket_id": ticket, "tenant_id": "t1", "source": "web",
            "title": "T%d" % i, "text": "x", "lang": "es", "lang_confidence": 0.9,
            "category": "general", "priority": "normal", "pii": {}, "invalid_utf8": 0,
            "content_hash": "0" * 64, "created_at": "2026-11-24T10:00:00Z",
            "enriched_at": "2026-11-24T10:00:01Z", "chunks": chunks}


def feed(bootstrap, tickets, done):
    p = producer(bootstrap)
    step = len(tickets) // 100
    for s in range(0, len(tickets), step):
        for i in range(s, min(len(tickets), s + step)):
            p.produce("tickets.enriched", key=tickets[i], value=json.dumps(enriched(tickets[i], i)))
        p.poll(0)
        time.sleep(0.08)
    assert p.flush(30) == 0
    done.set()


def embedded_chunks(bootstrap, want, timeout):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "crash-check",
                  "enable.auto.commit": False, "isolation.level": "read_committed"})
    md = c.list_topics("tickets.embedded", timeout=10)
    c.assign([TopicPartition("tickets.embedded", p, 0)
              for p in md.topics["tickets.embedded"].partitions])
    seen = set()
    deadline = time.time() + timeout
    while time.time() < deadline and len(seen) < want:
        for m in c.consume(500, 0.5):
            if not m.error():
                v = json.loads(m.value())
                seen.add((v["ticket_id"], v["chunk_index"]))
    c.close()
    return seen


def test_sigkill_five_times():
    tmp = TempDir("taina-0011-")
    ds = Devstack(tmp)
    fake = Service("fake-qdrant", tmp, {"TAINA_HTTP_MAX_BODY": "64MiB"})
    env = {"TAINA_KAFKA_BROKERS": ds.bootstrap, "TAINA_VECTOR_STORE": "qdrant",
           "TAINA_LOG_LEVEL": "warn"}
    env.update(KAFKA_FAST_GROUP)
    svc = None
    try:
        fake.wait_ready()
        env["TAINA_QDRANT_URL"] = "http://127.0.0.1:%d" % fake.port
        svc = Service("embedder", tmp, env)
        svc.wait_ready(60)
        tickets = [str(uuid.uuid4()) for _ in range(TICKETS)]
        done = threading.Event()
        th = threading.Thread(target=feed, args=(ds.bootstrap, tickets, done))
        th.start()
        rng = seeded_rng()
        for k in range(5):
            time.sleep(rng.uniform(1.0, 3.0))
            svc.stop(sig=9)
            print("kill %d" % (k + 1), flush=True)
            svc.start()
        th.join()
        assert done.is_set()
        want = TICKETS * CHUNKS

        def count():
            st, _, body = http("POST", fake.port, "/collections/taina-chunks/points/count",
                               {"exact": True}, {"Content-Type": "application/json"})
            return json.loads(body)["result"]["count"] if st == 200 else -1

        deadline = time.time() + 180 * MULT
        while time.time() < deadline and count() < want:
            time.sleep(0.5)
        time.sleep(2)  # a late duplicate write would show as more points, not fewer
        assert count() == want, "points: %d, distinct chunks: %d" % (count(), want)
        seen = embedded_chunks(ds.bootstrap, want, 120 * MULT)
        assert len(seen) == want, "tickets.embedded has %d of %d chunks" % (len(seen), want)
        assert svc.stop() == 0
    finally:
        if svc:
            svc.stop(sig=9)
        fake.stop()
        ds.stop()
        tmp.cleanup()
