"""Bookings per second end to end against the booking fake with no added latency: N requests
produced to appointments.requests, timed until every one is `booked` in PostgreSQL and every
result is published (outbox empty). Also the database round trips per booking (statements,
from taina_db_queries_total), and the service's CPU time per booking (/proc/PID/stat).
Each request has its own service code, so bookings do not compete for slots (contention is
tested in 0014, not timed here)."""
import json
import os
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "support"))
from pg import Postgres  # noqa: E402
from taina_harness import (KAFKA_FAST_GROUP, Devstack, Service, TempDir, http,  # noqa: E402
                           producer)

N = int(os.environ.get("BENCH_APPT_N", "2000"))
WORKERS = os.environ.get("BENCH_APPT_WORKERS", "8")


def metric_sum(port, name):
    _, _, body = http("GET", port, "/metrics")
    return sum(float(l.rsplit(" ", 1)[1]) for l in body.decode().splitlines()
               if l.startswith(name + "{") or l.startswith(name + " "))


def cpu_s(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def main():
    tmp = TempDir("taina-bench-appt-")
    pg = Postgres()
    procs = []
    try:
        ds = Devstack(tmp)
        procs.append(ds)
        fake = Service("fake-booking", tmp, {"TAINA_LOG_LEVEL": "warn"})
        procs.append(fake)
        fake.wait_ready()
        env = {"TAINA_KAFKA_BROKERS": ds.bootstrap, "TAINA_DATABASE_URL": pg.uri,
               "TAINA_APPOINTMENTS_ID_KEY": "ab" * 32, "TAINA_AUTH_DISABLED": "1",
               "TAINA_BOOKING_URL": "http://127.0.0.1:%d" % fake.port,
               "TAINA_BOOKING_TOKEN_URL": "http://127.0.0.1:%d/token" % fake.port,
               "TAINA_BOOKING_CLIENT_ID": "taina", "TAINA_BOOKING_CLIENT_SECRET": "secret",
               "TAINA_APPOINTMENTS_WORKERS": WORKERS, "TAINA_APPOINTMENTS_DB_POOL": "16",
               "TAINA_LOG_LEVEL": "warn"}
        env.update(KAFKA_FAST_GROUP)
        svc = Service("appointments", tmp, env)
        procs.append(svc)
        svc.wait_ready(60)
        names = ["María José Fernández", "John O'Neill", "Lucía Martín", "Ahmed El Idrissi"]
        values = []
        for i in range(N):
            values.append(json.dumps({
                "schema_version": 1, "request_id": str(uuid.uuid4()), "tenant_id": "default",
                "session_id": str(uuid.uuid4()), "citizen_name": names[i % len(names)],
                "id_number": "%08dZ" % i, "phone": "+34 600 %03d %03d" % (i % 1000, i // 1000),
                "service_code": "office-%d" % i,
                "preferred_window": {"from": "2031-06-02T09:00:00Z",
                                     "to": "2031-06-02T14:00:00Z"},
                "lang": "es" if i % 3 else "en", "requested_at": "2031-06-01T10:00:00Z"}))
        q0 = metric_sum(svc.port, "taina_db_queries_total")
        c0 = cpu_s(svc.proc.pid)
        t0 = time.time()
        p = producer(ds.bootstrap)
        for v in values:
            p.produce("appointments.requests", key=json.loads(v)["request_id"], value=v)
            p.poll(0)
        p.flush(60)
        while True:
            booked, unsent = pg.sql("SELECT (SELECT count(*) FROM appointments WHERE status = "
                                    "'booked'), (SELECT count(*) FROM appointments_outbox WHERE "
                                    "sent_at IS NULL)")[0]
            if booked >= N and unsent == 0:
                break
            if time.time() - t0 > 600:
                raise SystemExit("bench: only %d of %d booked after 600 s" % (booked, N))
            time.sleep(0.05)
        secs = time.time() - t0
        c1 = cpu_s(svc.proc.pid)
        q1 = metric_sum(svc.port, "taina_db_queries_total")
        creates = json.loads(http("GET", fake.port, "/admin/stats")[2])["creates"]["created"]
        assert creates == N, "bench: %d appointments at the fake for %d requests" % (creates, N)
        print("appointments: %d bookings end to end (topic -> booked -> result published) in "
              "%.2f s with %s workers" % (N, secs, WORKERS))
        print("  bookings/s %.0f; database round trips per booking %.2f; service CPU per "
              "booking %.0f us" % (N / secs, (q1 - q0) / N, (c1 - c0) / N * 1e6))
        print("RESULT appointments.bookings_per_s value=%.0f" % (N / secs))
        print("RESULT appointments.db_round_trips_per_booking value=%.2f" % ((q1 - q0) / N))
        print("RESULT appointments.cpu_us_per_booking value=%.0f" % ((c1 - c0) / N * 1e6))
        svc.stop()
    finally:
        for proc in reversed(procs):
            proc.stop()
        pg.close()
        tmp.cleanup()


if __name__ == "__main__":
    main()
