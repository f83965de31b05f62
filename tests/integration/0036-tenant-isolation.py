"""Tenant isolation across the suite (README, Security): two tenants with their own API keys, and
documents and bookings whose words exist nowhere else, so that any leak shows up as a word.

- ingest: the tenant comes from the key, never from the body (a body naming tenant B sent with
  A's key is refused; a `tenant_id` hidden in metadata does not change where it lands).
- rag, local index and Qdrant (fake): B's documents never reach A's /v1/search results or
  /v1/query citations and answers (plain and streamed), even when A filters by B's ticket id,
  and the reverse; A reusing B's ticket id for its own ticket, then deleting it, leaves B's
  ticket as it was.
- voice-gateway: a text turn of A (API key or session token) never hears B's content.
- appointments: A's GET and DELETE of B's booking answer 404 exactly as for an id that does not
  exist, and B's booking stays booked, here and at the booking system.

Each negative check has a positive twin (B does find its own words), so a check cannot pass
because nothing was indexed."""
import json
import os
import sys
import uuid

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from pg import Postgres  # noqa: E402
from taina_harness import (Stack, api_keys, consume, http, ingest_tickets,  # noqa: E402
                           post_json, wait_for)
from voice_support import voice_client  # noqa: E402

KA, KB = "iso-key-a-0123456789abcdef", "iso-key-b-0123456789abcdef"
TA, TB = "tenant-a", "tenant-b"
ID_KEY = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

# Words that appear only in one tenant's documents.
WORDS_A = ("gralvenco", "muspelio", "tirandola")
WORDS_B = ("zorvanita", "quelbaria", "xenopolio")
DOCS_A = [
    {"title": "Renovación de pasaporte", "body": "Para renovar el pasaporte gralvenco presente la "
     "cédula y el pasaporte anterior en la oficina muspelio. El pago se hace en el banco."},
    {"title": "Opening hours", "body": "The tirandola office is open Monday to Friday from eight "
     "in the morning to four in the afternoon. Saturdays only for gralvenco pickups."},
]
DOCS_B = [
    {"title": "Permiso de zorvanita", "body": "El permiso de zorvanita se tramita en la "
     "ventanilla quelbaria del edificio xenopolio. Traiga el formulario firmado."},
    {"title": "Zorvanita licence", "body": "The zorvanita licence is issued at the quelbaria "
     "desk of the xenopolio building. Bring the signed form and two photos."},
]
Q_A = "¿Dónde se renueva el pasaporte gralvenco en la oficina muspelio tirandola?"
Q_B = "¿Dónde se tramita el permiso de zorvanita en la ventanilla quelbaria del xenopolio?"


def words_in(obj, words):
    text = json.dumps(obj, ensure_ascii=False).lower()
    return [w for w in words if w in text]


def hits_of(path, r):
    return r["results"] if path == "/v1/search" else r["citations"]


def search_ids(port, key, question, filters=None):
    body = {"question": question, "top_k": 50}
    if filters:
        body["filters"] = filters
    st, _, r = post_json(port, "/v1/search", body, key)
    assert st == 200, r
    return r


@pytest.fixture(scope="module")
def stack():
    st = Stack("taina-0036-")
    pg = None
    try:
        keys = api_keys(st.tmp, {TA: KA, TB: KB})
        pipe = st.rag_pipeline(keys)
        pg = Postgres()
        fake_b = st.service("fake-booking", {}, wait=False)
        speech = st.service("fake-speech", {"TAINA_FAKE_API_KEY": "speech-key"}, wait=False)
        # token sessions reach rag with their tenant's key from this file
        rag_keys = st.tmp.file("rag_keys", "%s %s\n%s %s\n" % (TA, KA, TB, KB))
        vg = st.service("voice-gateway", {
            "TAINA_API_KEYS_FILE": keys, "TAINA_VOICE_RAG_KEYS_FILE": rag_keys,
            "TAINA_RAG_URL": "http://127.0.0.1:%d" % pipe["rag"]["local"].port,
            # text turns only: the STT fake is there for /ready, never asked
            "TAINA_STT_PROVIDER": "deepgram", "TAINA_STT_API_KEY": "speech-key",
            "TAINA_STT_URL": "http://127.0.0.1:%d" % speech.port,
            "TAINA_SHUTDOWN_GRACE": "10s"}, wait=False)
        st.ready(fake_b, speech)
        appt = st.service("appointments", {
            "TAINA_DATABASE_URL": pg.uri, "TAINA_APPOINTMENTS_ID_KEY": ID_KEY,
            "TAINA_API_KEYS_FILE": keys,
            "TAINA_BOOKING_URL": "http://127.0.0.1:%d" % fake_b.port,
            "TAINA_BOOKING_TOKEN_URL": "http://127.0.0.1:%d/token" % fake_b.port,
            "TAINA_BOOKING_CLIENT_ID": "taina", "TAINA_BOOKING_CLIENT_SECRET": "secret",
            "TAINA_APPOINTMENTS_POLL": "100ms"}, wait=False)
        st.ready(vg, appt)

        ids_a = [i["ticket_id"] for i in ingest_tickets(pipe["ingest"].port, KA, DOCS_A)]
        ids_b = [i["ticket_id"] for i in ingest_tickets(pipe["ingest"].port, KB, DOCS_B)]
        for port in (r.port for r in pipe["rag"].values()):
            for key, ids, q in ((KA, ids_a, Q_A), (KB, ids_b, Q_B)):
                wait_for(lambda: set(ids) <= {x["ticket_id"] for x in
                                              search_ids(port, key, q)["results"]},
                         60, "documents searchable on rag %d" % port)
        yield {"st": st, "pg": pg, "pipe": pipe, "ingest": pipe["ingest"], "rag": pipe["rag"],
               "vg": vg, "appt": appt, "fake_booking": fake_b, "ids_a": ids_a, "ids_b": ids_b,
               # every ticket of each tenant, as the tests add some
               "owned": {KA: set(ids_a), KB: set(ids_b)}}
        codes = st.close()
        assert set(codes.values()) == {0}, "a service did not exit 0 on SIGTERM: %s" % codes
    finally:
        st.close()
        if pg:
            pg.close()


# ---------------------------------------------------------------------------------------------
# ingest

def test_ingest_tenant_comes_from_the_key(stack):
    port = stack["ingest"].port
    claimed = str(uuid.uuid4())
    body = dict(DOCS_A[0], source="web", content_type="text/plain",
                created_at="2026-11-24T10:00:00Z", ticket_id=claimed, tenant_id=TB)
    st, _, r = post_json(port, "/v1/tickets", body, KA)
    assert st == 422 and r["error"]["keyword"] == "additionalProperties", r
    # in a batch: the line naming tenant B is refused, its neighbour (with a tenant_id in its
    # metadata, which is free-form) lands as A
    hidden = str(uuid.uuid4())
    items = ingest_tickets(port, KA, [
        dict(DOCS_A[1], ticket_id=claimed, tenant_id=TB),
        dict(DOCS_A[1], ticket_id=hidden, metadata={"tenant_id": TB})])
    assert [i["status"] for i in items] == ["rejected", "accepted"], items
    stack["owned"][KA].add(hidden)
    for topic in ("tickets.raw", "tickets.enriched"):
        recs = consume(stack["st"].ds.bootstrap, topic, want=1, timeout=30,
                       pred=lambda r: r["key"].decode() == hidden)
        mine = [json.loads(r["value"]) for r in recs if r["key"].decode() in (hidden, claimed)]
        assert [(v["ticket_id"], v["tenant_id"]) for v in mine] == [(hidden, TA)], (topic, mine)


# ---------------------------------------------------------------------------------------------
# rag, both backends

@pytest.mark.parametrize("backend", ["local", "qdrant"])
@pytest.mark.parametrize("path", ["/v1/search", "/v1/query"])
def test_rag_never_shows_the_other_tenant(stack, backend, path):
    port = stack["rag"][backend].port
    for key, q, theirs, their_words in ((KA, Q_B, stack["ids_b"], WORDS_B),
                                        (KB, Q_A, stack["ids_a"], WORDS_A)):
        # asking with the other tenant's words, with and without a filter on its ticket ids
        for filters in (None, {"ticket_id": theirs[0]}, {"ticket_id": theirs[1], "lang": "en"}):
            body = {"question": q, "top_k": 50}
            if filters:
                body["filters"] = filters
            st, _, r = post_json(port, path, body, key)
            assert st == 200, r
            seen = {x["ticket_id"] for x in hits_of(path, r)}
            assert not seen & set(theirs), (key, filters, r)
            assert seen <= stack["owned"][key], (key, filters, r)
            assert not words_in(r, their_words), (key, filters, r)
            if filters:
                assert not seen, "a filter on another tenant's ticket found %s" % seen
        # the twin: the owner finds them, through the same filter
        st, _, r = post_json(port, path, {"question": q, "top_k": 50,
                                          "filters": {"ticket_id": theirs[0]}},
                             KB if key == KA else KA)
        assert st == 200 and {x["ticket_id"] for x in hits_of(path, r)} == {theirs[0]}, r
        assert words_in(r, their_words)


@pytest.mark.parametrize("backend", ["local", "qdrant"])
def test_rag_streamed_answer_stays_in_the_tenant(stack, backend):
    port = stack["rag"][backend].port
    st, hd, data = post_json(port, "/v1/query", {"question": Q_B, "stream": True}, KA)
    assert st == 200 and hd["content-type"].startswith("text/event-stream")
    text = data.decode().lower()
    assert not [w for w in WORDS_B if w in text] and not [i for i in stack["ids_b"] if i in text]
    st, _, data = post_json(port, "/v1/query", {"question": Q_B, "stream": True}, KB)
    assert st == 200 and stack["ids_b"][0] in data.decode()


def test_reusing_the_other_tenants_ticket_id(stack):
    """A posts its own ticket under B's ticket id, then deletes it: both act on A's ticket of
    that id only; B's ticket keeps its text on both backends."""
    tid = stack["ids_b"][0]
    rags = list(stack["rag"].values())
    word = "pentarquio"

    def a_has_it(present):
        return lambda: all(bool(search_ids(r.port, KA, word, {"ticket_id": tid})["results"])
                           == present for r in rags)

    items = ingest_tickets(stack["ingest"].port, KA, [{
        "ticket_id": tid, "title": "Aviso pentarquio",
        "body": "El aviso pentarquio de A reemplaza lo que diga la ventanilla quelbaria."}])
    assert items[0]["status"] == "accepted"
    wait_for(a_has_it(True), 60, "A's ticket under B's id indexed")
    for r in rags:
        res = search_ids(r.port, KB, Q_B, {"ticket_id": tid})["results"]
        assert res and all(x["ticket_id"] == tid for x in res)
        assert not words_in(res, (word,)) and words_in(res, ("zorvanita",)), res
        res = search_ids(r.port, KB, word)["results"]
        assert not words_in(res, (word,)), "B sees A's text: %s" % res
    items = ingest_tickets(stack["ingest"].port, KA, [{
        "ticket_id": tid, "title": "Aviso pentarquio", "body": "", "deleted": True}])
    assert items[0]["status"] == "accepted"
    wait_for(a_has_it(False), 60, "A's ticket deleted")
    for r in rags:
        res = search_ids(r.port, KB, Q_B, {"ticket_id": tid})["results"]
        assert res and words_in(res, ("zorvanita",)), "A's delete removed B's ticket: %s" % res


# ---------------------------------------------------------------------------------------------
# voice-gateway

def reply_of(out):
    evs = [json.loads(x) for x in out.splitlines() if x.startswith("{\"session\"")]
    return next(e for e in evs if e["event"] == "reply")


def test_voice_text_turn_hears_only_its_tenant(stack):
    port = stack["vg"].port
    st, _, tok = post_json(port, "/v1/sessions/token", b"", KA)
    assert st == 200 and tok["tenant_id"] == TA
    for how in (["--key", KA], ["--token", tok["token"]]):
        rc, out = voice_client(port, ["--text", Q_B, "--lang", "es"] + how)
        assert rc == 0, out
        reply = reply_of(out)
        assert not {c["ticket_id"] for c in reply["citations"]} & set(stack["ids_b"]), reply
        assert not words_in(reply, WORDS_B), reply
    # the twin: B's session hears B's document
    rc, out = voice_client(port, ["--text", Q_B, "--lang", "es", "--key", KB])
    assert rc == 0, out
    reply = reply_of(out)
    assert reply["citations"] and reply["citations"][0]["ticket_id"] in stack["ids_b"], reply
    assert words_in(reply, WORDS_B)


# ---------------------------------------------------------------------------------------------
# appointments

def test_appointments_of_the_other_tenant_do_not_exist(stack):
    port = stack["appt"].port
    rid = str(uuid.uuid4())
    body = {"request_id": rid, "session_id": str(uuid.uuid4()),
            "citizen_name": "Zorvanita Quelbaria", "id_number": "00112345678",
            "phone": "+34 600 000 000", "service_code": "passport", "lang": "es",
            "preferred_window": {"from": "2031-03-02T09:00:00Z", "to": "2031-03-02T12:00:00Z"}}
    st, _, r = post_json(port, "/v1/appointments", body, KB)
    assert st == 202, r

    def get(key, i):
        st, _, data = http("GET", port, "/v1/appointments/" + i, None,
                           {"Authorization": "Bearer " + key})
        return st, data

    def b_status():
        st, data = get(KB, rid)
        return json.loads(data)["status"] if st == 200 else None

    wait_for(lambda: b_status() == "booked", 30, "B's request booked")
    unknown = str(uuid.uuid4())
    for method in ("GET", "DELETE"):
        st, _, data = http(method, port, "/v1/appointments/" + rid, None,
                           {"Authorization": "Bearer " + KA})
        st0, _, data0 = http(method, port, "/v1/appointments/" + unknown, None,
                             {"Authorization": "Bearer " + KA})
        assert (st, st0) == (404, 404), (method, st, data)
        assert data == data0, "%s of another tenant's id differs from an unknown id" % method
        assert not words_in(data.decode(), ("zorvanita", "quelbaria"))
    # B's booking is untouched, here and at the booking system
    assert b_status() == "booked"
    st, _, data = http("GET", stack["fake_booking"].port, "/admin/appointments")
    theirs = [a for a in json.loads(data)["appointments"] if a["identifier"][0]["value"] == rid]
    assert len(theirs) == 1 and theirs[0]["status"] == "booked", theirs
    # A sending B's request id as its own: refused, nothing of B's in the answer, B's unchanged.
    # (The 409 does tell A that the id is taken: request ids are random UUIDs chosen by the
    # client, so A only learns what it already holds; see README, Security.)
    st, _, r = post_json(port, "/v1/appointments", dict(body, citizen_name="Otro Nombre"), KA)
    assert st == 409, r
    assert not words_in(r, ("zorvanita", "quelbaria", "booked")), r
    assert b_status() == "booked"
    rows = stack["pg"].sql("SELECT tenant_id, citizen_name FROM appointments WHERE request_id = %s",
                           (rid,))
    assert rows == [(TB, "Zorvanita Quelbaria")]
