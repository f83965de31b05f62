#!/usr/bin/env python3
"""The peer of taina-embedder, written the way a Python team would write it.

    embedder_peer.py BOOTSTRAP QDRANT_URL N_CHUNKS [T_LAUNCH] [GROUP] [SCHEMAS_DIR]
      -> "python_chunks C seconds S chunks_per_s R steady_s T steady_chunks_per_s Q
          cpu_s U cpu_us_per_chunk P maxrss_kb K"

confluent-kafka (Debian python3-confluent-kafka) and requests (python3-requests), with
taina-embedder's Kafka settings: consume tickets.enriched (read_committed, cooperative-sticky,
manual commits) in batches of 64 chunks or 50 ms from the first record (Consumer.consume); per
record json parse and jsonschema validation against tickets.enriched (bad records to
tickets.dlq); embed every chunk with the hash embedding below (the features of taina's "hash"
provider in pure Python; numpy not used); upsert the points with a requests.Session PUT
/collections/<c>/points?wait=true (UUIDv5 ids, taina's payload fields), remove stale points of
the batch's tickets (POST .../points/delete?wait=true with a filter), produce one
tickets.embedded record per chunk (f32le base64 vector) and wait for the acks, then commit the
batch's offsets synchronously. Stops once N_CHUNKS chunks are committed.

Times: "seconds" from T_LAUNCH (epoch seconds, when run.sh started this process; default: when
main() starts) to the commit covering the N-th chunk; "steady" from the first commit to that
commit, counting the chunks committed after the first batch. cpu_s is the process's user + sys
time (all threads, librdkafka's included) at the end.
"""
import base64
import hashlib
import json
import math
import os
import re
import resource
import struct
import sys
import time
import unicodedata
import uuid
from collections import Counter
from datetime import datetime, timezone

import jsonschema
import requests
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

BATCH_CHUNKS = 64
LINGER_S = 0.050
DIMS = 384
MODEL = "python-hash-v1"
COLLECTION = "taina-chunks"
CHUNK_NS = uuid.uuid5(uuid.NAMESPACE_URL, "https://taina.dev/chunks")

# --- hash embedding -----------------------------------------------------------------------------
# The features of taina's hash provider (common/src/embed.c): words of the accent- and
# case-folded text, adjacent word pairs, character 3- to 5-grams of "<word>"; weights 1.0, 0.7,
# 0.3; sublinear tf (1 + ln tf); signed feature hashing into DIMS buckets; L2-normalized. The hash
# is BLAKE2b (8 bytes, the feature kind as personalization), so the vectors are deterministic
# but not bit-identical to taina's (which uses its own 64-bit mix).

_WORD = re.compile(r"(?:[^\W_]|')+")
_PERSON = (b"word", b"bigram", b"char")
_WEIGHT = (1.0, 0.7, 0.3)


def fold(text):
    s = unicodedata.normalize("NFD", text.casefold())
    return "".join(ch for ch in s if not unicodedata.combining(ch))


def features(text):
    words = _WORD.findall(fold(text))
    feats = Counter()
    for w in words:
        feats[(0, w)] += 1
    for a, b in zip(words, words[1:]):
        feats[(1, a + " " + b)] += 1
    for w in words:
        p = "<" + w + ">"
        for n in (3, 4, 5):
            for i in range(len(p) - n + 1):
                feats[(2, p[i:i + n])] += 1
    return feats


def hash_embed(text, dims=DIMS):
    vec = [0.0] * dims
    for (kind, f), tf in features(text).items():
        h = int.from_bytes(hashlib.blake2b(f.encode(), digest_size=8,
                                           person=_PERSON[kind]).digest(), "little")
        w = _WEIGHT[kind] * (1.0 + math.log(tf))
        vec[h % dims] += -w if h >> 63 else w
    norm = math.sqrt(sum(x * x for x in vec))
    return [x / norm for x in vec] if norm else vec


def vector_b64(vec):
    return base64.b64encode(struct.pack("<%df" % len(vec), *vec)).decode()


# --- one batch ----------------------------------------------------------------------------------


def now():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def point_id(tenant, ticket, idx):
    return str(uuid.uuid5(CHUNK_NS, "%s/%s/%d" % (tenant, ticket, idx)))


class Qdrant:
    def __init__(self, url):
        self.url = url.rstrip("/")
        self.s = requests.Session()

    def call(self, method, path, body):
        r = self.s.request(method, self.url + path, json=body, timeout=10)
        if r.status_code >= 300:
            raise RuntimeError("qdrant %s %s: %d %s" % (method, path, r.status_code, r.text[:200]))
        return r.json()

    def ensure_collection(self):
        r = self.s.get(self.url + "/collections/" + COLLECTION, timeout=10)
        if r.status_code == 404:
            self.call("PUT", "/collections/" + COLLECTION,
                      {"vectors": {"size": DIMS, "distance": "Cosine"}})
            for field in ("tenant_id", "ticket_id"):
                self.call("PUT", "/collections/%s/index?wait=true" % COLLECTION,
                          {"field_name": field, "field_schema": "keyword"})
        elif r.status_code != 200:
            raise RuntimeError("qdrant: %d %s" % (r.status_code, r.text[:200]))


def write_batch(records, qd, producer, delivery_errors):
    """records: [(msg, doc)] with doc None for a record that goes to the DLQ."""
    latest = {}
    for msg, doc in records:  # a later record of a ticket supersedes an earlier one
        if doc is not None:
            latest[(doc["tenant_id"], doc["ticket_id"])] = (msg, doc)
    live = list(latest.values())
    texts = [c["text"] for _, d in live if not d.get("deleted") for c in d["chunks"]]
    vecs = iter([hash_embed(t) for t in texts])
    stamp = now()
    points, stale, out = [], [], []
    for msg, d in live:
        tenant, ticket = d["tenant_id"], d["ticket_id"]
        chunks = [] if d.get("deleted") else d["chunks"]
        headers = [(k, v) for k, v in (msg.headers() or []) if k == "traceparent"]
        headers.append(("taina-schema", b"tickets.embedded/1"))
        if d.get("deleted"):
            out.append((ticket, {"schema_version": 1, "ticket_id": ticket, "tenant_id": tenant,
                                 "chunk_index": 0, "chunk_count": 0, "embedded_at": stamp,
                                 "deleted": True}, headers))
        for k, c in enumerate(chunks):
            vec = next(vecs)
            pid = point_id(tenant, ticket, k)
            payload = {f: d[f] for f in ("tenant_id", "ticket_id", "title", "lang", "category",
                                         "content_hash") if f in d}
            payload.update({"chunk_index": k, "text": c["text"], "start": c["start"],
                            "end": c["end"], "model": MODEL})
            points.append({"id": pid, "vector": vec, "payload": payload})
            v = {"schema_version": 1, "ticket_id": ticket, "tenant_id": tenant, "chunk_index": k,
                 "chunk_count": len(chunks), "embedded_at": stamp, "point_id": pid,
                 "model": MODEL, "dims": DIMS, "vector": vector_b64(vec), "text": c["text"],
                 "start": c["start"], "end": c["end"]}
            v.update({f: d[f] for f in ("title", "lang", "category", "content_hash") if f in d})
            out.append((ticket, v, headers))
        stale.append({"must": [{"key": "tenant_id", "match": {"value": tenant}},
                               {"key": "ticket_id", "match": {"value": ticket}},
                               {"key": "chunk_index", "range": {"gte": len(chunks)}}]})
    if points:
        qd.call("PUT", "/collections/%s/points?wait=true" % COLLECTION, {"points": points})
    if stale:
        qd.call("POST", "/collections/%s/points/delete?wait=true" % COLLECTION,
                {"filter": {"should": stale}})
    for key, v, headers in out:
        produce(producer, "tickets.embedded", key.encode(),
                json.dumps(v, ensure_ascii=False, separators=(",", ":")).encode(), headers)
    for msg, doc in records:
        if doc is None:
            produce(producer, "tickets.dlq", msg.key(), msg.value(),
                    (msg.headers() or []) + [("taina-error", msg.reason.encode())])
    if producer.flush(30) != 0 or delivery_errors:
        raise RuntimeError("kafka did not take the records: %s" % delivery_errors[:1])
    return len(texts)


def produce(producer, topic, key, value, headers):
    while True:
        try:
            producer.produce(topic, value, key, headers=headers)
            return
        except BufferError:
            producer.poll(0.005)


class Bad:
    """A consumed message that goes to the DLQ."""

    def __init__(self, msg, reason):
        self.msg, self.reason = msg, reason

    def __getattr__(self, name):
        return getattr(self.msg, name)


# --- the loop -----------------------------------------------------------------------------------


def main():
    t_main = time.time()
    bootstrap, qurl, want = sys.argv[1], sys.argv[2], int(sys.argv[3])
    t_launch = float(sys.argv[4]) if len(sys.argv) > 4 else t_main
    group = sys.argv[5] if len(sys.argv) > 5 else "bench-python-embedder"
    schemas = sys.argv[6] if len(sys.argv) > 6 else "schemas"
    with open(os.path.join(schemas, "tickets.enriched.schema.json")) as f:
        validator = jsonschema.Draft7Validator(
            json.load(f), format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    qd = Qdrant(qurl)
    qd.ensure_collection()
    delivery_errors = []

    def on_delivery(err, msg):
        if err is not None:
            delivery_errors.append(str(err))

    producer = Producer({"bootstrap.servers": bootstrap, "client.id": "python-embedder",
                         "enable.idempotence": True, "acks": "all", "compression.type": "lz4",
                         "linger.ms": 5, "message.timeout.ms": 30000,
                         "on_delivery": on_delivery})
    consumer = Consumer({"bootstrap.servers": bootstrap, "client.id": "python-embedder",
                         "group.id": group, "enable.auto.commit": False,
                         "enable.auto.offset.store": False,
                         "partition.assignment.strategy": "cooperative-sticky",
                         "isolation.level": "read_committed", "auto.offset.reset": "earliest"})
    consumer.subscribe(["tickets.enriched"])

    done, done0, t0, t1 = 0, 0, None, None
    seen_recs = seen_chunks = 0
    give_up = time.monotonic() + 120
    while done < want:
        batch, nchunks, deadline = [], 0, None
        while nchunks < BATCH_CHUNKS:
            if batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
            else:
                left = 0.2
            per = seen_chunks / seen_recs if seen_recs else BATCH_CHUNKS
            n = max(1, math.ceil((BATCH_CHUNKS - nchunks) / max(per, 1.0)))
            for m in consumer.consume(n, left):
                if m.error():
                    continue
                if not batch:
                    deadline = time.monotonic() + LINGER_S
                try:
                    doc = json.loads(m.value())
                    err = next(validator.iter_errors(doc), None)
                    if err is not None:
                        raise ValueError("schema: " + err.message)
                except ValueError as e:
                    batch.append((Bad(m, str(e)[:200]), None))
                    continue
                batch.append((m, doc))
                k = len(doc.get("chunks", []))
                nchunks += k
                seen_recs += 1
                seen_chunks += k
            if not batch and time.monotonic() > give_up:
                sys.exit("embedder_peer: no records for too long (%d of %d)" % (done, want))
        if not batch:
            continue
        try:
            chunks = write_batch(batch, qd, producer, delivery_errors)
        except (RuntimeError, requests.RequestException) as e:
            sys.exit("embedder_peer: %s" % e)
        offsets = {}
        for m, _ in batch:
            tp = (m.topic(), m.partition())
            offsets[tp] = max(offsets.get(tp, 0), m.offset() + 1)
        try:
            consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                            asynchronous=False)
        except KafkaException as e:
            sys.exit("embedder_peer: commit failed: %s" % e)
        done += chunks
        t1 = time.monotonic()
        if t0 is None:
            t0, done0 = t1, done
            t0_wall = time.time()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    cpu = ru.ru_utime + ru.ru_stime
    secs = time.time() - t_launch
    steady = t1 - t0
    if done == done0:
        sys.exit("embedder_peer: N=%d fits in one batch: nothing to time" % want)
    print("python_chunks %d seconds %.3f chunks_per_s %.0f steady_s %.3f steady_chunks_per_s %.0f "
          "cpu_s %.3f cpu_us_per_chunk %.0f maxrss_kb %d first_commit_s %.3f"
          % (done, secs, done / secs, steady, (done - done0) / steady, cpu, cpu / done * 1e6,
             ru.ru_maxrss, t0_wall - t_launch))
    consumer.close()


if __name__ == "__main__":
    main()
