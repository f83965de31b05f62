"""taina-fake-booking against its contract (CONTRACTS.md section 5): OAuth2 client credentials
(Basic and form client authentication, errors, expiring tokens, revocation), FHIR Slot search
with a start range, Appointment create (201 + Location), double booking refused with 409,
conditional create by identifier, cancel by update frees the slot, the down switch and the
skeleton's injected errors in OperationOutcome form."""
import base64
import json
import os
import sys
import time
import urllib.parse

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from taina_harness import Service, TempDir, http  # noqa: E402

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
FHIR = {"Content-Type": "application/fhir+json"}


@pytest.fixture(scope="module")
def fake():
    tmp = TempDir("taina-0015-")
    svc = Service("fake-booking", tmp, {"TAINA_FAKE_TOKEN_LIFETIME": "2",
                                        "TAINA_FAKE_SLOT_MINUTES": "30"})
    svc.wait_ready()
    yield svc
    rc = svc.stop()
    tmp.cleanup()
    assert rc == 0


def basic(cid="taina", secret="secret"):
    raw = "%s:%s" % (urllib.parse.quote(cid), urllib.parse.quote(secret))
    return {"Authorization": "Basic " + base64.b64encode(raw.encode()).decode()}


def token(fake, **kw):
    st, hdrs, body = http("POST", fake.port, "/token", "grant_type=client_credentials",
                          dict(FORM, **basic(**kw)))
    return st, hdrs, json.loads(body)


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


def call(fake, method, path, tok, body=None, headers=None):
    h = dict(bearer(tok), **(headers or {}))
    if body is not None:
        h.update(FHIR)
    st, hdrs, data = http(method, fake.port, path, body, h)
    return st, hdrs, (json.loads(data) if data else None)


def appointment(slot_id, ident=None):
    a = {"resourceType": "Appointment", "status": "booked",
         "slot": [{"reference": "Slot/" + slot_id}],
         "participant": [{"actor": {"display": "Ana"}, "status": "accepted"}]}
    if ident:
        a["identifier"] = [{"system": "urn:test", "value": ident}]
    return a


def slots(fake, tok, service="passport", frm="2030-01-01T09:00:00Z", to="2030-01-01T11:00:00Z"):
    q = urllib.parse.urlencode([("service-type", service), ("status", "free"),
                                ("start", "ge" + frm), ("start", "lt" + to)])
    return call(fake, "GET", "/Slot?" + q, tok)


def test_token_grant_and_errors(fake):
    st, hdrs, t = token(fake)
    assert st == 200 and t["token_type"] == "Bearer" and t["expires_in"] == 2
    assert hdrs["cache-control"] == "no-store" and len(t["access_token"]) == 32
    # client_secret_post works too
    st, _, body = http("POST", fake.port, "/token",
                       "grant_type=client_credentials&client_id=taina&client_secret=secret", FORM)
    assert st == 200 and json.loads(body)["access_token"] != t["access_token"]
    st, hdrs, e = token(fake, secret="wrong")
    assert st == 401 and e["error"] == "invalid_client" and "www-authenticate" in hdrs
    st, _, body = http("POST", fake.port, "/token", "grant_type=password", dict(FORM, **basic()))
    assert st == 400 and json.loads(body)["error"] == "unsupported_grant_type"
    st, _, body = http("POST", fake.port, "/token", "{}", dict({"Content-Type": "application/json"},
                                                               **basic()))
    assert st == 400 and json.loads(body)["error"] == "invalid_request"


def test_token_expires_and_revocation(fake):
    _, _, t = token(fake)
    tok = t["access_token"]
    assert slots(fake, tok)[0] == 200
    st, hdrs, oo = call(fake, "GET", "/Slot?service-type=x&start=ge2030-01-01T00:00:00Z"
                        "&start=lt2030-01-02T00:00:00Z", "not-a-token")
    assert st == 401 and oo["resourceType"] == "OperationOutcome"
    assert 'error="invalid_token"' in hdrs["www-authenticate"]
    time.sleep(2.2)
    assert slots(fake, tok)[0] == 401
    _, _, t = token(fake)
    assert slots(fake, t["access_token"])[0] == 200
    st, _, _ = http("POST", fake.port, "/admin/revoke", "{}")
    assert st == 200
    assert slots(fake, t["access_token"])[0] == 401


def test_slot_search(fake):
    _, _, t = token(fake)
    st, _, b = slots(fake, t["access_token"])
    assert st == 200 and b["resourceType"] == "Bundle" and b["type"] == "searchset"
    starts = [e["resource"]["start"] for e in b["entry"]]
    assert starts == ["2030-01-01T09:00:00Z", "2030-01-01T09:30:00Z", "2030-01-01T10:00:00Z",
                      "2030-01-01T10:30:00Z"]
    r = b["entry"][0]["resource"]
    assert r["resourceType"] == "Slot" and r["status"] == "free" and r["id"] == "passport.%d" % (
        1893488400 // 60)
    assert r["end"] == "2030-01-01T09:30:00Z" and r["schedule"]["reference"] == "Schedule/passport"
    st, _, oo = call(fake, "GET", "/Slot?service-type=passport", t["access_token"])
    assert st == 400 and oo["issue"][0]["severity"] == "error"


def test_create_conflict_conditional_cancel(fake):
    _, _, t = token(fake)
    tok = t["access_token"]
    _, _, b = slots(fake, tok, service="dni")
    first = b["entry"][0]["resource"]["id"]
    st, hdrs, a = call(fake, "POST", "/Appointment", tok, appointment(first, "r1"),
                       {"If-None-Exist": "identifier=urn:test|r1"})
    assert st == 201 and a["id"] and hdrs["location"] == "Appointment/%s/_history/1" % a["id"]
    assert a["start"] == "2030-01-01T09:00:00Z" and a["meta"]["versionId"] == "1"
    # the same request again (a retry): the existing appointment, not a second one
    st, _, again = call(fake, "POST", "/Appointment", tok, appointment(first, "r1"),
                        {"If-None-Exist": "identifier=urn:test|r1"})
    assert st == 200 and again["id"] == a["id"]
    # someone else wants the same slot
    st, _, oo = call(fake, "POST", "/Appointment", tok, appointment(first, "r2"))
    assert st == 409 and oo["issue"][0]["code"] == "conflict"
    # the slot is no longer offered
    _, _, b = slots(fake, tok, service="dni")
    assert first not in [e["resource"]["id"] for e in b["entry"]]
    # invalid resource
    bad = appointment(first)
    del bad["participant"]
    st, _, oo = call(fake, "POST", "/Appointment", tok, bad)
    assert st == 422
    # cancel: the slot is free again
    st, _, c = call(fake, "PUT", "/Appointment/" + a["id"], tok,
                    {"resourceType": "Appointment", "id": a["id"], "status": "cancelled",
                     "participant": a["participant"]})
    assert st == 200 and c["status"] == "cancelled" and c["meta"]["versionId"] == "2"
    _, _, b = slots(fake, tok, service="dni")
    assert b["entry"][0]["resource"]["id"] == first
    st, _, found = call(fake, "GET", "/Appointment?identifier=urn:test|r1", tok)
    assert st == 200 and found["total"] == 1
    st, _, got = call(fake, "GET", "/Appointment/" + a["id"], tok)
    assert st == 200 and got["status"] == "cancelled"
    assert call(fake, "GET", "/Appointment/nope", tok)[0] == 404


def test_steal_down_and_faults(fake):
    _, _, t = token(fake)
    tok = t["access_token"]
    _, _, b = slots(fake, tok, service="steal")
    assert http("POST", fake.port, "/admin/steal", {"count": 1})[0] == 200
    sid = b["entry"][0]["resource"]["id"]
    assert call(fake, "POST", "/Appointment", tok, appointment(sid))[0] == 409
    nxt = b["entry"][1]["resource"]["id"]
    assert call(fake, "POST", "/Appointment", tok, appointment(nxt))[0] == 201

    assert http("POST", fake.port, "/admin/refuse", {"count": 1, "status": 422})[0] == 200
    st, _, oo = call(fake, "POST", "/Appointment", tok, appointment(b["entry"][2]["resource"]["id"]))
    assert st == 422 and oo["issue"][0]["code"] == "business-rule"
    assert call(fake, "POST", "/Appointment", tok,
                appointment(b["entry"][2]["resource"]["id"]))[0] == 201

    assert http("POST", fake.port, "/admin/down", {"seconds": 30})[0] == 200
    st, hdrs, oo = slots(fake, tok)
    assert st == 503 and oo["issue"][0]["code"] == "transient"
    assert token(fake)[0] == 503
    assert http("POST", fake.port, "/admin/down", {"seconds": 0})[0] == 200
    assert slots(fake, tok)[0] == 200

    assert http("POST", fake.port, "/admin/faults", {"error_rate": 1, "error_status": 502})[0] \
        == 200
    st, _, oo = slots(fake, tok)
    assert st == 502 and oo["resourceType"] == "OperationOutcome"
    # admin endpoints are never faulted
    st, _, body = http("GET", fake.port, "/admin/appointments")
    assert st == 200 and len(json.loads(body)["appointments"]) >= 2
    assert http("POST", fake.port, "/admin/faults", {"error_rate": 0})[0] == 200
    st, _, body = http("GET", fake.port, "/admin/stats")
    s = json.loads(body)
    assert s["creates"]["conflict"] >= 2 and s["tokens"]["issued"] >= 5
    assert s["requests"]["GET /Slot"] >= 5 and "POST /admin/down" not in s["requests"]
