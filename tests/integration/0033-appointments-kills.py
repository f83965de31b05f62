"""appointments killed with SIGKILL 5 times at random moments (seeded: TN_TEST_SEED, printed)
while 80 booking requests flow in over the topic and over HTTP, the booking system answering
slowly (300 ms a call) so that kills land inside bookings, claims and publishes; restarted after
each kill. Afterwards the final state is complete: every request is booked, with exactly one
live appointment at the booking system (the conditional create absorbs bookings redone after a
kill), every request has its `booked` result on appointments.results (results are at least once:
duplicates allowed, as the README says), and the outbox is drained. ~45 s."""
import json
import os
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from pg import Postgres  # noqa: E402
from taina_harness import (KAFKA_FAST_GROUP, MULT, Devstack, Service, TempDir,  # noqa: E402
                           consume, http, producer, seeded_rng)

KEY = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
TOPIC_N, HTTP_N = 60, 20
KILLS = 5


def request(i):
    return {"schema_version": 1, "request_id": str(uuid.uuid4()), "tenant_id": "default",
            "citizen_name": "Ana Gómez %d" % i, "id_number": "X%07dZ" % i,
            "service_code": "kills%d" % (i % 4),
            "preferred_window": {"from": "2031-06-02T08:00:00Z", "to": "2031-06-09T18:00:00Z"},
            "lang": "es", "requested_at": "2031-06-01T08:00:00Z"}


def feed_topic(bootstrap, reqs):
    p = producer(bootstrap)
    for k in range(0, len(reqs), 6):
        for v in reqs[k:k + 6]:
            p.produce("appointments.requests", key=v["request_id"], value=json.dumps(v))
        p.poll(0)
        time.sleep(1.0)
    assert p.flush(30) == 0


def feed_http(svc, reqs, accepted):
    """POST /v1/appointments; a refused or cut call (the service is being killed) is retried
    with the same request id, as a client would: the id makes the retry idempotent."""
    for v in reqs:
        body = {k: x for k, x in v.items()
                if k not in ("schema_version", "tenant_id", "requested_at")}
        deadline = time.time() + 60 * MULT
        while time.time() < deadline:
            try:
                st, _, _ = http("POST", svc.port, "/v1/appointments", body,
                                {"Content-Type": "application/json"}, timeout=10)
                if st in (200, 202):
                    accepted.append(v["request_id"])
                    break
                assert st == 503, st
            except OSError:
                pass
            time.sleep(0.3)
        time.sleep(0.5)


def test_sigkill_five_times():
    rng = seeded_rng()
    tmp = TempDir("taina-0033-")
    pg = Postgres()
    started = []
    try:
        ds = Devstack(tmp)
        started.append(ds)
        fake = Service("fake-booking", tmp, {"TAINA_FAKE_LATENCY_MS": "300"})
        started.append(fake)
        fake.wait_ready()
        env = {"TAINA_KAFKA_BROKERS": ds.bootstrap, "TAINA_DATABASE_URL": pg.uri,
               "TAINA_APPOINTMENTS_ID_KEY": KEY, "TAINA_AUTH_DISABLED": "1",
               "TAINA_BOOKING_URL": "http://127.0.0.1:%d" % fake.port,
               "TAINA_BOOKING_TOKEN_URL": "http://127.0.0.1:%d/token" % fake.port,
               "TAINA_BOOKING_CLIENT_ID": "taina", "TAINA_BOOKING_CLIENT_SECRET": "secret",
               "TAINA_BOOKING_TIMEOUT": "5s", "TAINA_LOG_LEVEL": "warn",
               "TAINA_APPOINTMENTS_RETRY_BASE": "200ms", "TAINA_APPOINTMENTS_RETRY_CAP": "1s",
               "TAINA_APPOINTMENTS_POLL": "100ms", "TAINA_APPOINTMENTS_LEASE": "3s"}
        env.update(KAFKA_FAST_GROUP)
        svc = Service("appointments", tmp, env)
        started.append(svc)
        svc.wait_ready(60)
        reqs = [request(i) for i in range(TOPIC_N + HTTP_N)]
        accepted = []
        feeders = [threading.Thread(target=feed_topic, args=(ds.bootstrap, reqs[:TOPIC_N])),
                   threading.Thread(target=feed_http, args=(svc, reqs[TOPIC_N:], accepted))]
        for t in feeders:
            t.start()
        for k in range(KILLS):
            time.sleep(rng.uniform(1.0, 3.0))
            svc.stop(sig=9)
            print("kill %d" % (k + 1), flush=True)
            svc.start()
            svc.wait_ready(60)
        for t in feeders:
            t.join()
        assert len(accepted) == HTTP_N, "HTTP requests not accepted: %d" % len(accepted)
        ids = [v["request_id"] for v in reqs]

        def statuses():
            rows = pg.sql("SELECT request_id::text, status FROM appointments")
            return dict(rows)

        deadline = time.time() + 90 * MULT
        while time.time() < deadline:
            st = statuses()
            if all(st.get(i) == "booked" for i in ids):
                break
            time.sleep(0.5)
        st = statuses()
        notbooked = {i: st.get(i) for i in ids if st.get(i) != "booked"}
        assert not notbooked, "not booked: %s" % list(notbooked.items())[:5]
        appts = json.loads(http("GET", fake.port, "/admin/appointments")[2])["appointments"]
        per = {}
        for a in appts:
            if a["status"] != "cancelled":
                rid = a["identifier"][0]["value"]
                per[rid] = per.get(rid, 0) + 1
        assert all(per.get(i) == 1 for i in ids), \
            "live appointments per request: %s" % {i: per.get(i) for i in ids if per.get(i) != 1}
        recs = consume(ds.bootstrap, "appointments.results", want=len(ids),
                       pred=lambda r: json.loads(r["value"])["status"] == "booked",
                       timeout=60)
        booked = {r["key"].decode() for r in recs if json.loads(r["value"])["status"] == "booked"}
        assert set(ids) <= booked, "%d requests without a booked result" % len(set(ids) - booked)
        dup = len([r for r in recs if json.loads(r["value"])["status"] == "booked"]) - len(booked)
        deadline = time.time() + 10 * MULT
        while pg.sql("SELECT count(*) FROM appointments_outbox WHERE sent_at IS NULL")[0][0]:
            assert time.time() < deadline, "outbox not drained"
            time.sleep(0.2)
        print("requests %d booked, appointments %d, booked results %d (+%d duplicates)" %
              (len(ids), len(per), len(booked), dup))
        assert svc.stop() == 0, "appointments did not exit 0 on SIGTERM"
    finally:
        for p in reversed(started):
            p.stop()
        pg.close()
        tmp.cleanup()
