"""appointments against a real PostgreSQL (tests/support/pg.py), devstack and the booking fake:
a request becomes `booked` with one Appointment at the fake; the same request sent 5 times
(topic and HTTP mixed) books once; a slot taken meanwhile moves on to the next; an expiring
and a revoked token are refreshed; a 4xx from the booking system ends as `failed` with the
reason; cancel; results on appointments.results valid against their schema; bad input gets
400/401/413/415/422 (HTTP) or the DLQ (topic) and the service goes on; hostile values are
stored verbatim or refused, never executed; the id number is stored only encrypted."""
import json
import os
import re
import socket
import sys
import time
import uuid

import jsonschema
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from pg import Postgres  # noqa: E402
from taina_harness import (KAFKA_FAST_GROUP, MULT, TOP, Devstack, Service,  # noqa: E402
                           TempDir, api_keys, consume, http, producer)

RESULTS_SCHEMA = json.load(open(os.path.join(TOP, "schemas", "appointments.results.schema.json")))
VIEW_SCHEMA = json.load(open(os.path.join(TOP, "schemas", "http",
                                          "appointments.response.schema.json")))
ERROR_SCHEMA = json.load(open(os.path.join(TOP, "schemas", "http", "error.schema.json")))
KEY = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
T1, T2 = "key-tenant-one", "key-tenant-two"


def auth(key=T1, ct="application/json"):
    h = {"Authorization": "Bearer " + key}
    if ct:
        h["Content-Type"] = ct
    return h


@pytest.fixture(scope="module")
def stack():
    tmp = TempDir("taina-0014-")
    pg = Postgres()
    started = []
    try:
        ds = Devstack(tmp)
        started.append(ds)
        fake = Service("fake-booking", tmp, {"TAINA_FAKE_TOKEN_LIFETIME": "3"})
        started.append(fake)
        fake.wait_ready()
        env = {"TAINA_KAFKA_BROKERS": ds.bootstrap, "TAINA_DATABASE_URL": pg.uri,
               "TAINA_APPOINTMENTS_ID_KEY": KEY,
               "TAINA_API_KEYS_FILE": api_keys(tmp, {"t1": T1, "t2": T2}),
               "TAINA_BOOKING_URL": "http://127.0.0.1:%d" % fake.port,
               "TAINA_BOOKING_TOKEN_URL": "http://127.0.0.1:%d/token" % fake.port,
               "TAINA_BOOKING_CLIENT_ID": "taina", "TAINA_BOOKING_CLIENT_SECRET": "secret",
               "TAINA_APPOINTMENTS_RETRY_BASE": "100ms", "TAINA_APPOINTMENTS_RETRY_CAP": "1s",
               "TAINA_APPOINTMENTS_POLL": "100ms", "TAINA_LOG_LEVEL": "debug"}
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


def request(rid=None, tenant="t1", name="Ana García", service="passport",
            frm="2031-03-02T09:00:00Z", to="2031-03-02T12:00:00Z", **extra):
    v = {"schema_version": 1, "request_id": rid or str(uuid.uuid4()), "tenant_id": tenant,
         "session_id": str(uuid.uuid4()), "citizen_name": name, "id_number": "12345678Z",
         "phone": "+34 600 000 000", "service_code": service,
         "preferred_window": {"from": frm, "to": to}, "lang": "es",
         "requested_at": "2031-03-01T08:00:00Z"}
    v.update(extra)
    return v


def http_body(v):
    return {k: v[k] for k in v if k not in ("schema_version", "tenant_id", "requested_at")}


def send(stack, values):
    if "producer" not in stack:  # one for the module: a new one takes a while to connect
        stack["producer"] = producer(stack["ds"].bootstrap)
    p = stack["producer"]
    for v in values:
        if isinstance(v, dict):
            p.produce("appointments.requests", key=v["request_id"], value=json.dumps(v))
        else:
            p.produce("appointments.requests", key=v[0], value=v[1])
    assert p.flush(30) == 0


def row(stack, rid):
    r = stack["pg"].sql("SELECT status, attempts, external_id, citizen_name, id_number, reason, "
                        "slot_id FROM appointments WHERE request_id = %s", (rid,))
    if not r:
        return None
    return dict(zip(("status", "attempts", "external_id", "citizen_name", "id_number", "reason",
                     "slot_id"), r[0]))


def wait_status(stack, rid, want=("booked",), timeout=30):
    deadline = time.time() + timeout * MULT
    r = None
    while time.time() < deadline:
        r = row(stack, rid)
        if r and r["status"] in want:
            return r
        time.sleep(0.1)
    raise AssertionError("request %s not %s: %s\n%s" % (rid, want, r, stack["svc"].tail()))


def fake_appointments(stack, rid=None):
    st, _, body = http("GET", stack["fake"].port, "/admin/appointments")
    assert st == 200
    out = json.loads(body)["appointments"]
    if rid:
        out = [a for a in out if a["identifier"][0]["value"] == rid]
    return out


def fake_stats(stack):
    return json.loads(http("GET", stack["fake"].port, "/admin/stats")[2])


def results_of(stack, rid, want):
    recs = consume(stack["ds"].bootstrap, "appointments.results", want=want,
                   pred=lambda r: r["key"].decode() == rid, timeout=30)
    out = []
    for r in recs:
        if r["key"].decode() != rid:
            continue
        v = json.loads(r["value"])
        jsonschema.validate(v, RESULTS_SCHEMA, format_checker=jsonschema.FormatChecker())
        assert r["headers"]["taina-schema"] == b"appointments.results/1"
        out.append(v)
    return out


def metric(stack, name, labels=""):
    _, _, body = http("GET", stack["svc"].port, "/metrics")
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith(name + "{" if labels or "{" in line.split(" ")[0] else name):
            if all(l in line for l in labels.split(",") if l):
                total += float(line.rsplit(" ", 1)[1])
    return total


def test_booked_with_one_appointment_and_results(stack):
    v = request()
    send(stack, [v])
    r = wait_status(stack, v["request_id"])
    appts = fake_appointments(stack, v["request_id"])
    assert len(appts) == 1 and appts[0]["status"] == "booked"
    assert r["external_id"] == appts[0]["id"] and r["attempts"] == 1
    assert appts[0]["start"] == "2031-03-02T09:00:00Z"
    assert appts[0]["participant"][0]["actor"]["display"] == "Ana García"
    res = results_of(stack, v["request_id"], 3)
    assert [x["status"] for x in res] == ["requested", "booking", "booked"]
    booked = res[-1]
    assert booked["external_id"] == appts[0]["id"] and booked["tenant_id"] == "t1"
    assert booked["slot"] == {"start": "2031-03-02T09:00:00.000Z", "end": "2031-03-02T09:30:00.000Z"}
    assert booked["session_id"] == v["session_id"]
    st, _, body = http("GET", stack["svc"].port, "/v1/appointments/" + v["request_id"],
                       headers=auth())
    assert st == 200
    view = json.loads(body)
    jsonschema.validate(view, VIEW_SCHEMA, format_checker=jsonschema.FormatChecker())
    assert view["status"] == "booked" and view["external_id"] == appts[0]["id"]
    # another tenant does not see it
    st, _, body = http("GET", stack["svc"].port, "/v1/appointments/" + v["request_id"],
                       headers=auth(T2))
    assert st == 404
    jsonschema.validate(json.loads(body), ERROR_SCHEMA)


def test_same_request_five_times_books_once(stack):
    v = request(service="dni")
    rid = v["request_id"]
    st, _, body = http("POST", stack["svc"].port, "/v1/appointments", http_body(v), auth())
    assert st == 202, body
    assert json.loads(body)["status"] in ("requested", "booking", "booked")
    send(stack, [v, v])
    st, _, body = http("POST", stack["svc"].port, "/v1/appointments", http_body(v), auth())
    assert st == 200 and json.loads(body)["request_id"] == rid
    send(stack, [v])
    wait_status(stack, rid)
    # every copy was read (the last one after the booking): still one appointment
    deadline = time.time() + 20 * MULT
    while metric(stack, "taina_appointments_requests_total", 'outcome="duplicate"') < 4 and \
            time.time() < deadline:
        time.sleep(0.2)
    assert len(fake_appointments(stack, rid)) == 1
    assert stack["pg"].sql("SELECT count(*) FROM appointments WHERE request_id = %s",
                           (rid,))[0][0] == 1
    assert row(stack, rid)["attempts"] == 1
    # the same id from another tenant is a conflict, not a second booking
    st, _, body = http("POST", stack["svc"].port, "/v1/appointments", http_body(v), auth(T2))
    assert st == 409 and json.loads(body)["error"]["code"] == "conflict"


def test_slot_taken_moves_to_next(stack):
    assert http("POST", stack["fake"].port, "/admin/steal", {"count": 1})[0] == 200
    v = request(service="taken")
    send(stack, [v])
    r = wait_status(stack, v["request_id"])
    appts = fake_appointments(stack, v["request_id"])
    assert len(appts) == 1 and appts[0]["start"] == "2031-03-02T09:30:00Z"
    assert r["attempts"] == 1
    assert metric(stack, "taina_appointments_booking_attempts_total", 'result="slot_taken"') >= 1


def test_token_expiry_and_revocation_refresh(stack):
    before = fake_stats(stack)["tokens"]["issued"]
    for _ in range(2):  # tokens live 3 s here, refreshed 1.5 s early
        v = request(service="token")
        send(stack, [v])
        wait_status(stack, v["request_id"])
        time.sleep(2)
    assert fake_stats(stack)["tokens"]["issued"] >= before + 1
    assert metric(stack, "taina_appointments_token_refreshes_total", 'reason="expiry"') >= 1
    # every token revoked: the next call gets 401, one refresh, and goes on. The cached token
    # must still be live (not about to be refreshed for its age): revoke right after a booking
    # (a slow machine can miss that, the next call then refreshing for expiry: a few tries, each
    # on its own day so that the window's six slots do not run out)
    unauthorized = 0
    for i in range(6):
        day = {"frm": "2031-03-%02dT09:00:00Z" % (3 + i), "to": "2031-03-%02dT12:00:00Z" % (3 + i)}
        v = request(service="token", **day)
        send(stack, [v])
        wait_status(stack, v["request_id"])
        assert http("POST", stack["fake"].port, "/admin/revoke", {})[0] == 200
        v = request(service="token", **day)
        send(stack, [v])
        r = wait_status(stack, v["request_id"])
        assert r["attempts"] == 1 and len(fake_appointments(stack, v["request_id"])) == 1
        unauthorized = metric(stack, "taina_appointments_token_refreshes_total",
                              'reason="unauthorized"')
        if unauthorized:
            break
    assert unauthorized >= 1
    assert fake_stats(stack)["unauthorized_api"] >= 1


def test_4xx_from_booking_system_fails_with_reason(stack):
    # no slot in the window
    v = request(service="empty", frm="2031-03-02T09:05:00Z", to="2031-03-02T09:10:00Z")
    send(stack, [v])
    r = wait_status(stack, v["request_id"], ("failed",))
    assert "no free slot" in r["reason"]
    # the booking system refuses the create with 422: failed at once, no retry
    assert http("POST", stack["fake"].port, "/admin/refuse", {"count": 1, "status": 422})[0] \
        == 200
    v = request(service="refused")
    send(stack, [v])
    r = wait_status(stack, v["request_id"], ("failed",))
    assert r["attempts"] == 1 and "422" in r["reason"]
    res = results_of(stack, v["request_id"], 3)
    assert res[-1]["status"] == "failed" and "422" in res[-1]["reason"]
    assert not fake_appointments(stack, v["request_id"])


def test_cancel(stack):
    v = request(service="cancel")
    rid = v["request_id"]
    assert http("POST", stack["svc"].port, "/v1/appointments", http_body(v), auth())[0] == 202
    wait_status(stack, rid)
    assert http("DELETE", stack["svc"].port, "/v1/appointments/" + rid, headers=auth(T2))[0] \
        == 404
    st, _, body = http("DELETE", stack["svc"].port, "/v1/appointments/" + rid, headers=auth())
    assert st == 200 and json.loads(body)["status"] == "cancelled"
    appts = fake_appointments(stack, rid)
    assert len(appts) == 1 and appts[0]["status"] == "cancelled"
    st, _, body = http("DELETE", stack["svc"].port, "/v1/appointments/" + rid, headers=auth())
    assert st == 200 and json.loads(body)["status"] == "cancelled"
    res = results_of(stack, rid, 4)
    assert [x["status"] for x in res] == ["requested", "booking", "booked", "cancelled"]


def test_http_bad_input(stack):
    port = stack["svc"].port
    good = http_body(request())

    def err(st, body, code=None):
        doc = json.loads(body)
        jsonschema.validate(doc, ERROR_SCHEMA)
        if code:
            assert doc["error"]["code"] == code, doc
        return doc

    st, _, body = http("POST", port, "/v1/appointments", "{not json", auth())
    assert st == 400
    err(st, body, "invalid_json")
    st, hdrs, body = http("POST", port, "/v1/appointments", good, auth(key="wrong"))
    assert st == 401 and "www-authenticate" in hdrs
    err(st, body, "unauthorized")
    st, _, body = http("POST", port, "/v1/appointments", good, auth(ct="text/plain"))
    assert st == 415
    err(st, body, "unsupported_media_type")
    # a 5 MB body is refused from its Content-Length, before it is sent
    with socket.create_connection(("127.0.0.1", port), timeout=10 * MULT) as sk:
        sk.sendall(("POST /v1/appointments HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                    "Content-Type: application/json\r\nContent-Length: 5000000\r\n\r\n"
                    % T1).encode())
        resp = b""
        while b"}}" not in resp:
            chunk = sk.recv(65536)
            if not chunk:
                break
            resp += chunk
    head, _, body = resp.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    err(413, body, "payload_too_large")
    bad = dict(good)
    del bad["service_code"]
    st, _, body = http("POST", port, "/v1/appointments", bad, auth())
    assert st == 422 and err(st, body, "schema_violation")["error"]["path"] == "/"
    bad = dict(good, tenant_id="t2")  # the tenant comes from the key only
    assert http("POST", port, "/v1/appointments", bad, auth())[0] == 422
    st, _, body = http("GET", port, "/v1/appointments/'%20OR%201=1--", headers=auth())
    assert st == 404
    assert http("GET", port, "/v1/appointments/" + str(uuid.uuid4()), headers=auth())[0] == 404


def test_hostile_values_verbatim_or_refused(stack):
    port = stack["svc"].port
    names = ["Robert'); DROP TABLE appointments;--", "O'Brien \"Bob\" \\ %s $1 ;",
             "x' OR '1'='1", "Ñandú 😀 \u2028 <script>"]
    ids = []
    for n in names:
        v = request(name=n, service="hostile")
        ids.append(v["request_id"])
        st, _, body = http("POST", port, "/v1/appointments", http_body(v), auth())
        assert st == 202, body
    for rid, n in zip(ids, names):
        r = wait_status(stack, rid)
        assert r["citizen_name"] == n
        assert fake_appointments(stack, rid)[0]["participant"][0]["actor"]["display"] == n
    # 1 MB strings: refused by the schema, nothing stored
    v = request(name="a" * 1000000)
    st, _, body = http("POST", port, "/v1/appointments", http_body(v), auth())
    assert st == 422 and json.loads(body)["error"]["keyword"] == "maxLength"
    assert row(stack, v["request_id"]) is None
    v = request(id_number="1" * 1000000)
    assert http("POST", port, "/v1/appointments", http_body(v), auth())[0] == 422
    # invalid UTF-8: refused with 422
    v = request()
    raw = json.dumps(http_body(v)).replace("Ana Garc\\u00eda", "Ana \xff\xfe").encode("latin-1")
    st, _, body = http("POST", port, "/v1/appointments", raw, auth())
    assert st == 422 and json.loads(body)["error"]["code"] == "invalid_utf8"
    assert row(stack, v["request_id"]) is None
    # the table is still there and whole
    assert stack["pg"].sql("SELECT count(*) FROM appointments")[0][0] >= len(names)


def test_bad_records_to_dlq_and_service_goes_on(stack):
    rid_bad = str(uuid.uuid4())
    bad_schema = request(rid=rid_bad)
    del bad_schema["citizen_name"]
    send(stack, [("k1", b"{not json"), ("k2", b'{"citizen_name": "Ana \xff"}'),
                 (rid_bad, json.dumps(bad_schema).encode())])
    good = request(service="afterdlq")
    send(stack, [good])
    wait_status(stack, good["request_id"])
    recs = consume(stack["ds"].bootstrap, "tickets.dlq", want=3,
                   pred=lambda r: r["headers"].get("taina-source-topic") ==
                   b"appointments.requests")
    mine = [r for r in recs if r["headers"].get("taina-source-topic") == b"appointments.requests"]
    reasons = sorted(r["headers"]["taina-error"].decode() for r in mine)
    assert reasons == ["invalid_json", "invalid_utf8", "schema_violation"], reasons
    for r in mine:
        assert "taina-error-detail" in r["headers"] and "taina-source-offset" in r["headers"]
        assert b"12345678Z" not in r["headers"]["taina-error-detail"]
    assert row(stack, rid_bad) is None
    assert metric(stack, "taina_appointments_dlq_total") >= 3


def test_id_number_never_stored_or_logged_plain(stack):
    v = request(service="pii", id_number="X9876543K")
    send(stack, [v])
    r = wait_status(stack, v["request_id"])
    assert r["id_number"].startswith("aes-256-gcm:") and "X9876543K" not in r["id_number"]
    # the booking system gets the number itself (decrypted for it)
    a = fake_appointments(stack, v["request_id"])[0]
    assert a["participant"][0]["actor"]["identifier"]["value"] == "X9876543K"
    dump = stack["pg"].sql("SELECT string_agg(payload, ' ') FROM appointments_outbox")[0][0]
    assert "X9876543K" not in dump and "12345678Z" not in dump
    stack["svc"].log.flush()
    log = open(stack["svc"].logpath, errors="replace").read()
    assert "X9876543K" not in log and "12345678Z" not in log


def test_metrics_and_ready(stack):
    port = stack["svc"].port
    assert http("GET", port, "/ready")[0] == 200
    _, _, body = http("GET", port, "/metrics")
    text = body.decode()
    for fam in ("taina_appointments_requests_total", "taina_appointments_outcomes_total",
                "taina_appointments_booking_duration_seconds_bucket",
                "taina_appointments_outbox_backlog", "taina_appointments_token_refreshes_total",
                "taina_db_queries_total", "taina_appointments_results_published_total"):
        assert fam in text, fam
    assert re.search(r'taina_appointments_outcomes_total\{outcome="booked"\} [1-9]', text)
    st = stack["pg"].sql("SELECT count(*) FROM schema_migrations")[0][0]
    assert st == 1
