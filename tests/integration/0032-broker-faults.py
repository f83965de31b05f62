"""Broker faults while records flow through ingest and the embedder (devstack's control API):
transient Produce, OffsetCommit, TxnOffsetCommit and EndTxn errors, one broker down for 10 s then
up, 300 ms of added round-trip time, and the leaders of tickets.raw and tickets.enriched moved.
Tickets go in through HTTP (NDJSON batches, as a client would send them) and straight onto
tickets.raw (an independent producer, which rides the same faults).

Afterwards, per id (the accounting of 0007 and 0011):
- ingest: every accepted id is on tickets.enriched or tickets.dlq; never missing, never three
  times, and twice only as devstack forces: it has no transaction markers (README, devstack), so
  the outputs of a transaction whose commit failed stay visible and the redo adds a second copy.
  So ids seen twice are allowed up to one batch per aborted transaction (ingest's own counter
  taina_ingest_transactions_total{outcome="aborted"}); on Kafka the same code is exactly once.
  An id that is on tickets.raw twice (the mock keeps both copies of a producer's retried batch:
  it deduplicates transactional producers only) is expected twice and not counted against ingest.
- embedder: the Qdrant fake holds exactly one point per distinct chunk, and every chunk is on
  tickets.embedded at least once.
- HTTP callers get 202 or a clear 503 with Retry-After, never a hang or a 500; no process dies.

Every producer here (the test's and the services') sends one request at a time per connection
(max.in.flight.requests.per.connection=1): librdkafka's mock cluster checks the sequence numbers
of transactional producers only, so with several batches of a partition in flight, a batch that
failed (a pushed NOT_ENOUGH_REPLICAS) is followed by the next one being appended anyway; the
client then takes that success as proof that the failed batch was written ("implicitly acked by
subsequent batch success", delivered without an offset) and never retries it. A real broker
answers the later batch OUT_OF_ORDER_SEQUENCE_NUMBER instead, so this is a devstack-only loss
(README, Reliability: reproduced deterministically, 31-36 of 1,200 records, and none with one
request in flight). It is what made 2 runs in ~28 miss ids the test's own producer had written.
One request in flight still sees a few records acknowledged without an offset now and then (2 runs
in ~10 with one seed); those are looked up on tickets.raw, and the ones not there are left out of
ingest's accounting (printed): ingest cannot pass on what never reached its input.

Seeded (TN_TEST_SEED, printed): which broker goes down. ~60 s."""
import json
import os
import random
import re
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from taina_harness import (KAFKA_FAST_GROUP, MULT, Devstack, Service, TempDir,  # noqa: E402
                           http, metric, producer)

HTTP_BATCHES, HTTP_BATCH = 30, 50  # 1,500 tickets through POST /v1/tickets
DIRECT = 3000                      # and 3,000 straight onto tickets.raw
INVALID_EVERY = 50                 # of the direct ones: schema-invalid, to the DLQ once
BATCH_MAX = 200                    # TAINA_INGEST_BATCH_MAX
ONE_IN_FLIGHT = {"max.in.flight.requests.per.connection": 1}  # the mock's gap: see above


def raw(i, tid):
    if i % INVALID_EVERY == 0:
        return {"schema_version": 1, "ticket_id": tid, "tenant_id": "default", "source": "web"}
    return {"schema_version": 1, "ticket_id": tid, "tenant_id": "default", "source": "web",
            "title": "Ticket %d" % i, "content_type": "text/plain",
            "created_at": "2026-11-24T10:00:00Z",
            "body": "Necesito renovar el pasaporte %d. Horario de la oficina de Madrid." % i}


def feed_direct(bootstrap, ids, out):
    """Onto tickets.raw with an idempotent producer that rides the same faults; its own delivery
    failures (none expected) are kept apart, so that they never count against ingest, and so
    are records acknowledged without an offset (the mock's gap, see above; none expected)."""
    p = producer(bootstrap, ONE_IN_FLIGHT)
    failed = out.setdefault("failed", [])
    no_offset = out.setdefault("no_offset", [])

    def report(err, msg):
        if err is not None:
            failed.append(msg.key().decode())
        elif msg.offset() is None or msg.offset() < 0:
            no_offset.append(msg.key().decode())

    step = DIRECT // 100
    for s in range(0, DIRECT, step):
        for i in range(s, s + step):
            p.produce("tickets.raw", key=ids[i], value=json.dumps(raw(i, ids[i])),
                      on_delivery=report)
        p.poll(0)
        time.sleep(0.2)
    out["unflushed"] = p.flush(120 * MULT)


def feed_http(port, out):
    """NDJSON batches; records the ids of accepted items and the statuses seen."""
    accepted, statuses = [], {}
    for b in range(HTTP_BATCHES):
        lines = [json.dumps({"ticket_id": str(uuid.uuid4()), "source": "web",
                             "title": "Consulta %d-%d" % (b, k), "content_type": "text/plain",
                             "created_at": "2026-11-24T10:00:00Z",
                             "body": "Quiero pedir cita para el carnet de conducir, lote %d." % b})
                 for k in range(HTTP_BATCH)]
        t0 = time.time()
        st, hdrs, body = http("POST", port, "/v1/tickets", "\n".join(lines),
                              {"Content-Type": "application/x-ndjson"}, timeout=30)
        statuses[st] = statuses.get(st, 0) + 1
        out.setdefault("slowest", 0)
        out["slowest"] = max(out["slowest"], time.time() - t0)
        if st == 202:
            for item in json.loads(body)["items"]:
                if item["status"] == "accepted":
                    accepted.append(item["ticket_id"])
        else:
            assert st == 503 and hdrs.get("retry-after"), (st, body[:200])
        time.sleep(0.5)
    out["accepted"], out["statuses"] = accepted, statuses


def read_outputs(bootstrap, want, timeout):
    """Per id, its records on tickets.enriched and tickets.dlq (read_committed)."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "faults-check",
                  "enable.auto.commit": False, "isolation.level": "read_committed"})
    parts = []
    for t in ("tickets.enriched", "tickets.dlq"):
        md = c.list_topics(t, timeout=10)
        parts += [TopicPartition(t, p, 0) for p in md.topics[t].partitions]
    c.assign(parts)
    counts, topic_of, chunks = {}, {}, set()
    deadline = time.time() + timeout
    complete_at = None
    while time.time() < deadline:
        for m in c.consume(500, 0.2):
            if m.error():
                continue
            k = m.key().decode()
            counts[k] = counts.get(k, 0) + 1
            topic_of[k] = m.topic()
            if m.topic() == "tickets.enriched":
                v = json.loads(m.value())
                chunks.update((k, ch["index"]) for ch in v.get("chunks", []))
        if complete_at is None and want.issubset(counts):
            complete_at = time.time()
        if complete_at is not None and time.time() - complete_at > 5:
            break  # 5 s more to catch late duplicates
    c.close()
    return counts, topic_of, chunks


def read_to_end(bootstrap, topic):
    """{key: [(partition, offset), ...]} of every record up to each partition's high watermark."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "faults-diag",
                  "enable.auto.commit": False})
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    out, pos = {}, {p: 0 for p in parts}
    deadline = time.time() + 60 * MULT
    while time.time() < deadline and any(pos[p] < ends[p] for p in parts):
        for m in c.consume(500, 0.5):
            if not m.error():
                out.setdefault(m.key().decode(), []).append((m.partition(), m.offset()))
                pos[m.partition()] = m.offset() + 1
    c.close()
    return out, ends


def embedded_chunks(bootstrap, want, timeout):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "faults-check-emb",
                  "enable.auto.commit": False, "isolation.level": "read_committed"})
    md = c.list_topics("tickets.embedded", timeout=10)
    c.assign([TopicPartition("tickets.embedded", p, 0)
              for p in md.topics["tickets.embedded"].partitions])
    seen = set()
    deadline = time.time() + timeout
    while time.time() < deadline and not want.issubset(seen):
        for m in c.consume(500, 0.5):
            if not m.error():
                v = json.loads(m.value())
                seen.add((v["ticket_id"], v["chunk_index"]))
    c.close()
    return seen


def test_broker_faults_while_records_flow():
    seed = int(os.environ.get("TN_TEST_SEED", str(int(time.time()))))
    rng = random.Random(seed)
    down = rng.randint(1, 3)
    print("seed %d: broker %d goes down" % (seed, down), flush=True)
    tmp = TempDir("taina-0032-")
    ds = Devstack(tmp)
    fake = Service("fake-qdrant", tmp, {"TAINA_HTTP_MAX_BODY": "64MiB"})
    base = {"TAINA_KAFKA_BROKERS": ds.bootstrap, "TAINA_LOG_LEVEL": "info",
            "TAINA_KAFKA_MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION": "1"}
    base.update(KAFKA_FAST_GROUP)
    ingest = emb = None
    try:
        fake.wait_ready()
        ingest = Service("ingest", tmp, dict(base, TAINA_AUTH_DISABLED="1",
                                             TAINA_INGEST_BATCH_LINGER="50ms",
                                             TAINA_INGEST_BATCH_MAX=str(BATCH_MAX),
                                             TAINA_INGEST_TXN_TIMEOUT="20s"))
        emb = Service("embedder", tmp, dict(base, TAINA_VECTOR_STORE="qdrant",
                                            TAINA_QDRANT_URL="http://127.0.0.1:%d" % fake.port))
        ingest.wait_ready(60)
        emb.wait_ready(60)
        direct_ids = [str(uuid.uuid4()) for _ in range(DIRECT)]
        dout, hout = {}, {}
        feeders = [threading.Thread(target=feed_direct, args=(ds.bootstrap, direct_ids, dout)),
                   threading.Thread(target=feed_http, args=(ingest.port, hout))]
        for t in feeders:
            t.start()
        t0 = time.time()

        def at(s):
            time.sleep(max(0.0, t0 + s - time.time()))

        at(1)
        ds.push_errors("Produce", 8, "NOT_ENOUGH_REPLICAS")
        ds.push_errors("OffsetCommit", 4, "REQUEST_TIMED_OUT")
        ds.push_errors("TxnOffsetCommit", 2, "COORDINATOR_LOAD_IN_PROGRESS")
        ds.push_errors("EndTxn", 1, "COORDINATOR_NOT_AVAILABLE")
        print("%.1f s: produce and commit errors pushed" % (time.time() - t0), flush=True)
        at(3)
        ds.broker_down(down)
        print("%.1f s: broker %d down" % (time.time() - t0, down), flush=True)
        at(13)
        ds.broker_up(down)
        print("%.1f s: broker %d up" % (time.time() - t0, down), flush=True)
        at(15)
        for p in range(6):
            ds.set_leader("tickets.raw", p, 1 + (p + 1) % 3)
        for p in range(12):
            ds.set_leader("tickets.enriched", p, 1 + (p + 2) % 3)
        ds.rtt(1 + down % 3, 300)
        print("%.1f s: leaders moved, 300 ms rtt on broker %d" % (time.time() - t0,
                                                                  1 + down % 3), flush=True)
        at(19)
        ds.rtt(1 + down % 3, 0)
        for t in feeders:
            t.join()
        assert dout.get("unflushed") == 0, "the test's producer could not deliver"
        assert not dout["failed"], "the test's producer lost %d records: %s" % (
            len(dout["failed"]), dout["failed"][:3])
        raw = {}
        lost_by_mock = set()
        if dout["no_offset"]:
            # Acknowledged with no offset: written, or the mock's implicit ack (see above). What
            # tickets.raw holds is what ingest was given; the rest never reached it.
            raw, ends = read_to_end(ds.bootstrap, "tickets.raw")
            lost_by_mock = {i for i in dout["no_offset"] if i not in raw}
            print("%d of the test producer's records acknowledged without an offset; %d of them "
                  "not on tickets.raw (read to its ends %s): the mock's implicit acks, not "
                  "ingest's to process" % (len(dout["no_offset"]), len(lost_by_mock), ends),
                  flush=True)
        print("http: statuses %s, slowest %.1f s, accepted %d of %d" %
              (hout["statuses"], hout["slowest"], len(hout["accepted"]),
               HTTP_BATCHES * HTTP_BATCH), flush=True)
        assert set(hout["statuses"]) <= {202, 503}
        assert len(hout["accepted"]) >= HTTP_BATCHES * HTTP_BATCH // 2, "most batches refused"
        want = (set(direct_ids) - lost_by_mock) | set(hout["accepted"])
        counts, topic_of, chunks = read_outputs(ds.bootstrap, want, 90 * MULT)
        aborted = metric(ingest, "taina_ingest_transactions_total", 'outcome="aborted"')
        missing = [i for i in want if i not in counts]
        twice = {i: n for i, n in counts.items() if n > 1}
        in_dlq = sum(1 for i in direct_ids if topic_of.get(i) == "tickets.dlq")
        print("ids %d, seen %d, missing %d, twice %d, aborted transactions %d, in dlq %d" %
              (len(want), len(counts), len(missing), len(twice), aborted, in_dlq), flush=True)
        if (missing or twice) and not raw:
            raw, ends = read_to_end(ds.bootstrap, "tickets.raw")
            print("tickets.raw read to its ends %s" % ends, flush=True)
        if missing:
            print("missing (%d sent over HTTP) on tickets.raw at %s" % (
                len(set(missing) & set(hout["accepted"])),
                sorted(tuple(raw.get(i, [])) for i in missing)), flush=True)
        assert not missing, "ingest lost %d ids, e.g. %s" % (len(missing), missing[:3])
        # An id written twice onto tickets.raw is read twice: the mock does not deduplicate the
        # retries of non-transactional idempotent producers (a batch appended, its answer lost
        # with the connection, sent again), which a broker does; that copy is not ingest's.
        on_raw = {i: max(1, len(raw.get(i, []))) for i in twice}
        if any(n > 1 for n in on_raw.values()):
            print("ids twice on tickets.raw itself (the mock's missing dedup): %d" %
                  sum(1 for n in on_raw.values() if n > 1), flush=True)
        redone = [i for i, n in twice.items() if n > on_raw[i]]
        assert all(twice[i] == on_raw[i] + 1 for i in redone), "an id processed 3 times"
        assert len(redone) <= aborted * BATCH_MAX, \
            "%d ids twice with %d aborted transactions" % (len(redone), aborted)
        assert in_dlq == len([i for k, i in enumerate(direct_ids)
                              if k % INVALID_EVERY == 0 and i not in lost_by_mock])

        # embedder: one point per distinct chunk, each chunk on tickets.embedded
        def count():
            st, _, body = http("POST", fake.port, "/collections/taina-chunks/points/count",
                               {"exact": True}, {"Content-Type": "application/json"})
            return json.loads(body)["result"]["count"] if st == 200 else -1

        deadline = time.time() + 120 * MULT
        while time.time() < deadline and count() < len(chunks):
            time.sleep(0.5)
        time.sleep(2)
        print("chunks %d, points %d" % (len(chunks), count()), flush=True)
        assert count() == len(chunks)
        seen = embedded_chunks(ds.bootstrap, chunks, 120 * MULT)
        assert chunks.issubset(seen), "tickets.embedded lacks %d chunks" % len(chunks - seen)
        for s in (ingest, emb):
            assert s.proc.poll() is None, "%s died: %s" % (s.name, s.tail())
            errs = [ln for ln in open(s.logpath, errors="replace")
                    if re.search(r'"level":"(fatal)"', ln)]
            assert not errs, errs[:3]
        assert ingest.stop() == 0 and emb.stop() == 0, "no clean SIGTERM exit after the faults"
    finally:
        for s in (emb, ingest, fake):
            if s:
                s.stop(sig=9)
        ds.stop()
        tmp.cleanup()
