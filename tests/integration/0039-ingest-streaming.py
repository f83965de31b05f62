"""Large tickets against a small memory budget: a transaction streams instead of shrinking.

An ML engineer replays a topic of long documents. ingest holds a batch's enriched records in memory
while the transaction before it commits, up to TAINA_INGEST_BATCH_MAX_BYTES; a batch that reaches
that budget begins its own transaction and produces the rest of its records as they are enriched,
on the pipeline's second producer while the commit before it is still in flight (pipeline.c,
run()). Here 600 tickets of about 8 KB meet a 64 KiB budget (about six enriched records): every
ticket must come out once, in tickets.enriched or (every 50th, schema-invalid) tickets.dlq, the
transactions must hold far more records than the budget could hold (taina_ingest_txn_records), and
the exit must be 0. Every 10th ticket is deleted a few records later (the same ticket id again,
with "deleted": true): such pairs often fall in two consecutive transactions that are in flight
together, and tickets.enriched must still have the ticket before its deletion, or downstream would
index a deleted ticket again.
"""
import json
import os
import random
import re
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from taina_harness import (KAFKA_FAST_GROUP, Devstack, Service, TempDir,  # noqa: E402
                           count_keys, http, producer, raw_ticket)

N = 600
INVALID_EVERY = 50
DELETE_EVERY = 10  # ticket i is deleted 2-12 records after it
SENTENCE = ("Necesito renovar mi pasaporte antes del viaje y no sé qué documentos llevar a la cita. "
            "Escríbanme a persona%d@example.com o llamen al 809-555-0142. ")


def body(i):
    return (SENTENCE % i) * 64  # about 8 KB


def metric(text, name):
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    assert m, name + " missing from /metrics"
    return float(m.group(1))


def test_large_tickets_stream_into_their_transaction():
    tmp = TempDir("taina-0039-")
    ds = Devstack(tmp)
    env = {"TAINA_KAFKA_BROKERS": ds.bootstrap, "TAINA_AUTH_DISABLED": "1",
           "TAINA_INGEST_BATCH_MAX_BYTES": "64KiB", "TAINA_LOG_LEVEL": "info"}
    env.update(KAFKA_FAST_GROUP)
    svc = None
    try:
        ids = [str(uuid.uuid4()) for _ in range(N)]
        seed = int(os.environ.get("TN_TEST_SEED", random.randrange(1 << 30)))
        print("TN_TEST_SEED=%d" % seed, flush=True)
        rnd = random.Random(seed)
        load = [(i, False) for i in range(N)]
        deleted = set()
        for i in range(1, N, DELETE_EVERY):  # odd i: valid tickets (INVALID_EVERY is even)
            load.insert(load.index((i, False)) + rnd.randint(2, 12), (i, True))
            deleted.add(ids[i])
        p = producer(ds.bootstrap)
        for i, gone in load:
            t = raw_ticket(i, ids[i], "t1", body(i), i % INVALID_EVERY == 0)
            if gone:
                t["deleted"] = True
            p.produce("tickets.raw", key=ids[i], value=json.dumps(t))
        assert p.flush(60) == 0, "the test's producer could not deliver"
        svc = Service("ingest", tmp, env)
        svc.wait_ready()
        order = {}  # ticket id -> "deleted" flags of its records, in their partition's order

        def note(m):
            if m.key().decode() in deleted:
                order.setdefault(m.key().decode(), []).append(
                    bool(json.loads(m.value()).get("deleted")))
        counts, topic_of = count_keys(ds.bootstrap, ("tickets.enriched", "tickets.dlq"), set(ids),
                                      120, on_record=note)
        missing = [i for i in ids if i not in counts]
        twice = {i: n for i, n in counts.items() if n > 1 and i not in deleted}
        reordered = [i for i in deleted if order.get(i) != [False, True]]
        in_dlq = sum(1 for i in ids if topic_of.get(i) == "tickets.dlq")
        st, _, text = http("GET", svc.port, "/metrics")
        assert st == 200
        text = text.decode()
        txns = metric(text, "taina_ingest_txn_records_count")
        # what the budget counts for a record still being enriched: learned from the records
        # enriched (about their raw size: the body is the text; a deletion's record is small),
        # not its first guess of 2
        grow = metric(text, "taina_ingest_enriched_bytes_ratio")
        assert 0.5 < grow < 1.6, "enriched/raw ratio %.3f" % grow
        recs = metric(text, "taina_ingest_txn_records_sum")
        print("ids %d, missing %d, twice %d, in dlq %d, deleted %d (not ticket then deletion: %d), "
              "transactions %d for %d records" % (N, len(missing), len(twice), in_dlq,
                                                  len(deleted), len(reordered), txns, recs),
              flush=True)
        assert not missing, "missing %d ids, e.g. %s" % (len(missing), missing[:3])
        assert not twice, "%d ids more than once, e.g. %s" % (len(twice), list(twice)[:3])
        assert not reordered, "%d deleted tickets not as [ticket, deletion]: %s" % (
            len(reordered), {i: order.get(i) for i in reordered[:3]})
        assert in_dlq == N // INVALID_EVERY
        assert recs == len(load)
        # held, a transaction would take about six of these records; streaming, up to 500 or
        # what arrives within its linger time
        assert recs / txns > 20, "%d transactions for %d records: the batches did not stream" % (
            txns, recs)
        assert svc.stop() == 0, "no clean exit: " + svc.tail()
        svc = None
    finally:
        if svc:
            svc.stop()
        ds.stop()
        tmp.cleanup()
