"""Ingest scaled out and in while records flow: exactly once across rebalances.

An SRE adds ingest instances when tickets.raw lags and removes them afterwards. While 12,000
records flow into tickets.raw (6 partitions, over ~24 s), a second and a third instance join the group
`taina-ingest` and then the first two leave with SIGTERM, so partitions move between members
four times, each time while transactions are committing. A leaving or losing member must let its
transaction in flight commit before its partitions move (the next owner starts after it) and
must drop the batch it was reading (the next owner reads it). Clean rebalances and clean exits
leave nothing for devstack's missing transaction markers to expose (README, devstack), so a
read_committed consumer must then find every input id exactly once in tickets.enriched or
tickets.dlq: none missing, none twice. The exits must be 0 (drained)."""
import json
import os
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from taina_harness import (KAFKA_FAST_GROUP, Devstack, Service, TempDir,  # noqa: E402
                           count_keys, producer, raw_ticket)

N = 12000
INVALID_EVERY = 100  # schema-invalid: to tickets.dlq, once
ONE_IN_FLIGHT = {"max.in.flight.requests.per.connection": 1}  # devstack: see 0032


def record(i, tid):
    return raw_ticket(i, tid, "t1", "I need to renew my passport %d. Write to "
                      "person%d@example.com, thanks." % (i, i), i % INVALID_EVERY == 0)


def feed(bootstrap, ids, out):
    """Over about 24 s, so that every membership change lands while records flow."""
    p = producer(bootstrap, ONE_IN_FLIGHT)
    per_tick = N // 240
    for start in range(0, N, per_tick):
        for i in range(start, min(N, start + per_tick)):
            p.produce("tickets.raw", key=ids[i], value=json.dumps(record(i, ids[i])))
        p.poll(0)
        time.sleep(0.1)
    out["unflushed"] = p.flush(60)


def test_exactly_once_across_rebalances():
    tmp = TempDir("taina-0038-")
    ds = Devstack(tmp)
    env = {"TAINA_KAFKA_BROKERS": ds.bootstrap, "TAINA_AUTH_DISABLED": "1",
           "TAINA_INGEST_BATCH_LINGER": "50ms", "TAINA_INGEST_BATCH_MAX": "200",
           "TAINA_INGEST_TXN_TIMEOUT": "10s", "TAINA_LOG_LEVEL": "info",
           "TAINA_KAFKA_MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION": "1"}
    env.update(KAFKA_FAST_GROUP)
    members = []
    try:
        members.append(Service("ingest", tmp, env, tag="ingest-a"))
        members[0].wait_ready(60)
        ids = [str(uuid.uuid4()) for _ in range(N)]
        out = {}
        feeder = threading.Thread(target=feed, args=(ds.bootstrap, ids, out))
        feeder.start()
        t0 = time.time()

        def at(s):
            time.sleep(max(0.0, t0 + s - time.time()))

        at(2)
        members.append(Service("ingest", tmp, env, tag="ingest-b"))
        at(8)
        members.append(Service("ingest", tmp, env, tag="ingest-c"))
        at(14)
        assert members[0].stop() == 0, "ingest-a: no clean exit: " + members[0].tail()
        print("%.1f s: a left" % (time.time() - t0), flush=True)
        at(20)
        assert members[1].stop() == 0, "ingest-b: no clean exit: " + members[1].tail()
        print("%.1f s: b left" % (time.time() - t0), flush=True)
        feeder.join()
        assert out.get("unflushed") == 0, "the test's producer could not deliver"
        counts, topic_of = count_keys(ds.bootstrap, ("tickets.enriched", "tickets.dlq"),
                                      set(ids), 180, group="rebalance-check")
        missing = [i for i in ids if i not in counts]
        twice = {i: n for i, n in counts.items() if n > 1}
        in_dlq = sum(1 for i in ids if topic_of.get(i) == "tickets.dlq")
        revoked = sum(open(m.logpath, errors="replace").read().count("kafka: revoked")
                      for m in members)
        print("ids %d, seen %d, missing %d, twice %d, in dlq %d, revocations logged %d" %
              (N, len(counts), len(missing), len(twice), in_dlq, revoked), flush=True)
        assert revoked >= 2, "the partitions never moved: the test proves nothing"
        assert not missing, "missing %d ids, e.g. %s" % (len(missing), missing[:3])
        assert not twice, "%d ids more than once, e.g. %s" % (len(twice), list(twice)[:3])
        assert in_dlq == N // INVALID_EVERY
        assert set(counts) == set(ids)
        assert members[2].proc.poll() is None, "ingest-c died: " + members[2].tail()
        assert members[2].stop() == 0, "ingest-c: no clean exit"
    finally:
        for m in members:
            m.stop(sig=9)
        ds.stop()
        tmp.cleanup()
