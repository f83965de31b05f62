"""appointments under failures: the booking system down for 10 s then back (booked, one
appointment); SIGKILL between the database commit and the publish (the result is published
after the restart); PostgreSQL restarted mid-run (the service reconnects, /ready says so while
it is away, every request is booked once)."""
import json
import os
import signal
import sys
import time
import uuid

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from pg import Postgres  # noqa: E402
from taina_harness import (KAFKA_FAST_GROUP, Devstack, Service, TempDir,  # noqa: E402
                           consume, http, producer, wait_for)

KEY = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"


@pytest.fixture(scope="module")
def stack():
    tmp = TempDir("taina-0016-")
    pg = Postgres()
    started = []
    try:
        ds = Devstack(tmp)
        started.append(ds)
        fake = Service("fake-booking", tmp, {})
        started.append(fake)
        fake.wait_ready()
        env = {"TAINA_KAFKA_BROKERS": ds.bootstrap, "TAINA_DATABASE_URL": pg.uri,
               "TAINA_APPOINTMENTS_ID_KEY": KEY, "TAINA_AUTH_DISABLED": "1",
               "TAINA_APPOINTMENTS_ID_STORAGE": "hmac-sha256",
               "TAINA_BOOKING_URL": "http://127.0.0.1:%d" % fake.port,
               "TAINA_BOOKING_TOKEN_URL": "http://127.0.0.1:%d/token" % fake.port,
               "TAINA_BOOKING_CLIENT_ID": "taina", "TAINA_BOOKING_CLIENT_SECRET": "secret",
               "TAINA_BOOKING_TIMEOUT": "2s",
               "TAINA_APPOINTMENTS_RETRY_BASE": "200ms", "TAINA_APPOINTMENTS_RETRY_CAP": "1s",
               "TAINA_APPOINTMENTS_POLL": "100ms", "TAINA_APPOINTMENTS_LEASE": "5s"}
        env.update(KAFKA_FAST_GROUP)
        svc = Service("appointments", tmp, env)
        started.append(svc)
        svc.wait_ready(60)
        yield {"tmp": tmp, "pg": pg, "ds": ds, "fake": fake, "svc": svc}
        rc = svc.stop()
        assert rc == 0, "appointments did not exit 0 on SIGTERM"
    finally:
        for p in reversed(started):
            p.stop()
        pg.close()
        tmp.cleanup()


def request(service):
    return {"schema_version": 1, "request_id": str(uuid.uuid4()), "tenant_id": "default",
            "citizen_name": "Luis Pérez", "id_number": "Y1234567X", "service_code": service,
            "preferred_window": {"from": "2031-05-04T08:00:00Z", "to": "2031-05-04T18:00:00Z"},
            "lang": "en", "requested_at": "2031-05-01T08:00:00Z"}


def send(stack, values):
    p = producer(stack["ds"].bootstrap)
    for v in values:
        p.produce("appointments.requests", key=v["request_id"], value=json.dumps(v))
    assert p.flush(30) == 0


def status(stack, rid):
    r = stack["pg"].sql("SELECT status, attempts FROM appointments WHERE request_id = %s",
                        (rid,))
    return r[0] if r else (None, 0)


def appointments_at_fake(stack, rid):
    body = json.loads(http("GET", stack["fake"].port, "/admin/appointments")[2])
    return [a for a in body["appointments"] if a["identifier"][0]["value"] == rid]


def test_booking_system_down_10s(stack):
    assert http("POST", stack["fake"].port, "/admin/down", {"seconds": 10})[0] == 200
    t0 = time.time()
    v = request("outage")
    send(stack, [v])
    wait_for(lambda: status(stack, v["request_id"])[1] >= 2, 15, "a failed attempt")
    assert status(stack, v["request_id"])[0] == "booking"  # never "booked" while down
    wait_for(lambda: status(stack, v["request_id"])[0] == "booked", 30, "booked after the outage")
    assert time.time() - t0 >= 9.5
    st, attempts = status(stack, v["request_id"])
    assert attempts >= 3
    assert len(appointments_at_fake(stack, v["request_id"])) == 1


def test_sigkill_between_commit_and_publish(stack):
    svc = stack["svc"]
    assert svc.stop() == 0
    # test knob: the publisher leaves rows alone for 30 s after their commit
    svc.env["TAINA_APPOINTMENTS_TEST_OUTBOX_HOLD"] = "30s"
    svc.start()
    svc.wait_ready(60)
    v = request("crash")
    rid = v["request_id"]
    send(stack, [v])
    wait_for(lambda: status(stack, rid)[0] == "booked", 30, "booked")
    unsent = stack["pg"].sql("SELECT payload FROM appointments_outbox WHERE request_id = %s "
                             "AND sent_at IS NULL ORDER BY id", (rid,))
    assert [json.loads(p[0])["status"] for p in unsent] == ["requested", "booking", "booked"]
    svc.proc.send_signal(signal.SIGKILL)
    svc.proc.wait()
    assert svc.stop() == -signal.SIGKILL
    del svc.env["TAINA_APPOINTMENTS_TEST_OUTBOX_HOLD"]
    svc.start()
    svc.wait_ready(60)
    recs = consume(stack["ds"].bootstrap, "appointments.results", want=3,
                   pred=lambda r: r["key"].decode() == rid, timeout=30)
    got = [json.loads(r["value"])["status"] for r in recs if r["key"].decode() == rid]
    assert got == ["requested", "booking", "booked"]
    wait_for(lambda: stack["pg"].sql("SELECT count(*) FROM appointments_outbox WHERE "
                                     "sent_at IS NULL")[0][0] == 0, 10, "outbox drained")
    assert len(appointments_at_fake(stack, rid)) == 1


def test_postgres_restart(stack):
    svc, pg = stack["svc"], stack["pg"]
    before = [request("pgrestart") for _ in range(5)]
    send(stack, before)
    pg.stop()
    # while it is away: /ready says so, HTTP answers 503, requests wait on the topic
    wait_for(lambda: http("GET", svc.port, "/ready")[0] == 503, 10, "/ready 503")
    during = [request("pgrestart") for _ in range(3)]
    send(stack, during)
    st, hdrs, _ = http("POST", svc.port, "/v1/appointments",
                       {k: v for k, v in request("pgrestart").items()
                        if k not in ("schema_version", "tenant_id", "requested_at")},
                       {"Content-Type": "application/json"}, timeout=40)
    assert st == 503 and hdrs.get("retry-after")
    time.sleep(2)
    pg.start()
    for v in before + during:
        wait_for(lambda: status(stack, v["request_id"])[0] == "booked", 40,
                 "booked after the restart")
        assert len(appointments_at_fake(stack, v["request_id"])) == 1
    wait_for(lambda: http("GET", svc.port, "/ready")[0] == 200, 10, "/ready 200")
    assert svc.proc.poll() is None


def test_lease_runs_out_during_a_slow_booking(stack):
    """A booking slower than the lease: a second worker claims the request and books it too;
    the conditional create gives it the same appointment, and nothing is cancelled."""
    svc = stack["svc"]
    assert svc.stop() == 0
    svc.env["TAINA_APPOINTMENTS_LEASE"] = "1s"
    svc.start()
    svc.wait_ready(60)
    before = json.loads(http("GET", stack["fake"].port, "/admin/stats")[2])["creates"]
    assert http("POST", stack["fake"].port, "/admin/faults", {"latency_ms": 1500})[0] == 200
    try:
        v = request("slow")
        send(stack, [v])
        wait_for(lambda: status(stack, v["request_id"])[0] == "booked", 30, "booked")
        # the second worker's create comes back after the first one recorded the booking
        wait_for(lambda: json.loads(http("GET", stack["fake"].port, "/admin/stats")[2])
                 ["creates"]["existing"] > before["existing"], 20, "the second create")
        time.sleep(1)
    finally:
        http("POST", stack["fake"].port, "/admin/faults", {"latency_ms": 0})
        svc.env["TAINA_APPOINTMENTS_LEASE"] = "5s"
    st, attempts = status(stack, v["request_id"])
    assert st == "booked" and attempts >= 2
    appts = appointments_at_fake(stack, v["request_id"])
    assert len(appts) == 1 and appts[0]["status"] == "booked"
