#!/usr/bin/env python3
"""Preload tickets.enriched with N enriched records of K chunks each, the chunks taken in order
from a corpus file (corpus.py: one distinct chunk per line).

    preload.py BOOTSTRAP CORPUS N K
      -> "preloaded N records, C chunks, B bytes (A bytes each), max M bytes in a partition, S s"

Records are what taina-ingest writes (schemas/tickets.enriched.schema.json): title, text (the
chunks joined by a space), lang, category, priority, content_hash, chunks with start/end offsets.
Fails (exit 1) unless tickets.enriched then holds exactly N records from offset 0 (devstack keeps
about 5 MB per partition: nothing may have been dropped before the system under test reads it).
"""
import hashlib
import json
import random
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

TOPIC = "tickets.enriched"
TENANTS = ["ayuntamiento-sd", "dgii", "pasaportes", "intrant"]
CATS = ["passport", "national_id", "driving_licence", "civil_registry", "tax", "vehicle",
        "social_benefits", "appointments", "complaint", "other"]


def record(rng, chunks):
    text, out, pos = "", [], 0
    for i, c in enumerate(chunks):
        if i:
            text += " "
            pos += 1
        out.append({"index": i, "text": c, "start": pos, "end": pos + len(c),
                    "words": len(c.split())})
        text += c
        pos += len(c)
    es = " de " in chunks[0]
    day = rng.randrange(1, 29)
    return {"schema_version": 1, "ticket_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "tenant_id": rng.choice(TENANTS), "source": rng.choice(["web", "email", "chat"]),
            "title": chunks[0][:60].rsplit(" ", 1)[0], "text": text,
            "lang": "es" if es else "en", "lang_confidence": 0.93, "category": rng.choice(CATS),
            "priority": "normal", "pii": {}, "invalid_utf8": 0,
            "content_hash": hashlib.sha256(text.encode()).hexdigest(),
            "created_at": "2026-11-%02dT10:00:00Z" % day,
            "received_at": "2026-11-%02dT10:00:01Z" % day,
            "enriched_at": "2026-11-%02dT10:00:02Z" % day, "chunks": out}


def main():
    bootstrap, corpus, n, k = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    with open(corpus, encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f]
    if len(lines) < n * k:
        sys.exit("preload: %s has %d chunks, %d needed" % (corpus, len(lines), n * k))
    rng = random.Random(42)
    part_bytes = {}

    def delivered(err, msg):
        if err is not None:
            sys.exit("preload: %s" % err)
        part_bytes[msg.partition()] = part_bytes.get(msg.partition(), 0) + len(msg.value())

    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                  "compression.type": "lz4", "linger.ms": 20, "batch.size": 1000000})
    t0 = time.perf_counter()
    total = 0
    for i in range(n):
        rec = record(rng, lines[i * k:(i + 1) * k])
        v = json.dumps(rec, ensure_ascii=False).encode()
        total += len(v)
        while True:
            try:
                p.produce(TOPIC, v, rec["ticket_id"].encode(),
                          headers=[("taina-schema", b"tickets.enriched/1")], on_delivery=delivered)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    if p.flush(60) != 0:
        sys.exit("preload: records still unacknowledged after 60 s")
    secs = time.perf_counter() - t0
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-preload-check"})
    parts = c.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions
    have = 0
    for part in parts:
        lo, hi = c.get_watermark_offsets(TopicPartition(TOPIC, part), timeout=10)
        if lo != 0:
            sys.exit("preload: %s[%d] starts at offset %d: devstack dropped records "
                     "(lower BENCH_N)" % (TOPIC, part, lo))
        have += hi
    c.close()
    if have != n:
        sys.exit("preload: %s holds %d records, not %d" % (TOPIC, have, n))
    print("preloaded %d records, %d chunks, %d bytes (%.0f bytes each), max %d bytes in a "
          "partition, %.1f s" % (n, n * k, total, total / n, max(part_bytes.values()), secs))


if __name__ == "__main__":
    main()
