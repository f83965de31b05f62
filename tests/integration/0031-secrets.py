"""Secrets never leave the process: the five services run with every secret they take set (API keys
of two tenants, the embeddings/LLM, Qdrant, STT and TTS keys, the session token secret, the OAuth2
client secret, the database URL with its password, the id number key), at debug log level, through a
whole flow (ingest, embed into Qdrant, search, an LLM answer, a voice turn with a key and with a
token, a booking) and through failures (wrong keys, an upstream refusing its key). Afterwards no
secret appears in any service log, /metrics page, HTTP answer or --print-config output, and the
citizen's personal data (email, id number) appears in no log line (issue 11)."""
import glob
import json
import os
import subprocess
import sys
import time
import uuid

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from pg import Postgres  # noqa: E402
from taina_harness import (BIN, KAFKA_FAST_GROUP, MULT, Devstack, Service, TempDir,  # noqa: E402
                           api_keys, http)
from voice_support import voice_client  # noqa: E402

SECRETS = {
    "tenant_a_key": "tenant-a-key-5bd7e0c19a4f",
    "tenant_b_key": "tenant-b-key-0f3a9c77e2d1",
    "embed_key": "sk-embed-secret-7c1e9a3b5d",
    "qdrant_key": "qdrant-secret-2e8f4a6c0b",
    "speech_key": "speech-secret-9d3b7f1a5c",
    "token_secret": "voice-token-secret-4a8c2e6f0b1d3f5a7c9e",
    "client_secret": "oauth-client-secret-6b2d8f4a0c",
    "db_password": "db-password-8e4c0a6b2d",
    "id_key": "a3f1c5e7b9d2f4a6c8e0b1d3f5a7c9e2b4d6f8a0c1e3b5d7f9a2c4e6b8d0f1a3",
}
PII = {"email": "maria.rodriguez@example.org", "cedula": "001-1234567-8",
       "id_number": "40212345678"}
SERVICES = ["ingest", "embedder", "rag", "voice-gateway", "appointments"]


def bearer(key, ct="application/json"):
    h = {"Authorization": "Bearer " + key}
    if ct:
        h["Content-Type"] = ct
    return h


@pytest.fixture(scope="module")
def stack():
    tmp = TempDir("taina-0031-")
    pg = Postgres()
    procs, seen = [], []
    try:
        pg.sql("ALTER USER postgres PASSWORD '%s'" % SECRETS["db_password"])
        ds = Devstack(tmp)
        keys = api_keys(tmp, {"tenant-a": SECRETS["tenant_a_key"],
                              "tenant-b": SECRETS["tenant_b_key"]})
        fq = Service("fake-qdrant", tmp, {"TAINA_FAKE_API_KEY": SECRETS["qdrant_key"],
                                          "TAINA_HTTP_MAX_BODY": "64MiB"})
        fe = Service("fake-embeddings", tmp, {"TAINA_FAKE_API_KEY": SECRETS["embed_key"],
                                              "TAINA_FAKE_DIMS": "64"})
        fs = Service("fake-speech", tmp, {"TAINA_FAKE_API_KEY": SECRETS["speech_key"],
                                          "TAINA_HTTP_MAX_BODY": "16MiB"})
        fb = Service("fake-booking", tmp, {"TAINA_FAKE_CLIENT_SECRET": SECRETS["client_secret"]})
        procs += [fq, fe, fs, fb]
        for f in (fq, fe, fs, fb):
            f.wait_ready()
        base = {"TAINA_KAFKA_BROKERS": ds.bootstrap, "TAINA_LOG_LEVEL": "debug",
                "TAINA_LOG_DEBUG": "all"}
        base.update(KAFKA_FAST_GROUP)
        emb = {"TAINA_EMBED_PROVIDER": "openai", "TAINA_EMBED_MODEL": "e5-test",
               "TAINA_EMBED_DIMS": "64", "TAINA_EMBED_URL": "http://127.0.0.1:%d" % fe.port,
               "TAINA_EMBED_API_KEY": SECRETS["embed_key"],
               "TAINA_QDRANT_URL": "http://127.0.0.1:%d" % fq.port,
               "TAINA_QDRANT_API_KEY": SECRETS["qdrant_key"]}
        env = {
            "ingest": dict(base, TAINA_API_KEYS_FILE=keys, TAINA_INGEST_BATCH_LINGER="20ms"),
            "embedder": dict(base, TAINA_VECTOR_STORE="qdrant", **emb),
            "rag": dict(base, TAINA_API_KEYS_FILE=keys, TAINA_RAG_BACKEND="qdrant",
                        TAINA_LLM_PROVIDER="openai", TAINA_LLM_MODEL="chat-test",
                        TAINA_LLM_URL="http://127.0.0.1:%d" % fe.port,
                        TAINA_LLM_API_KEY=SECRETS["embed_key"], **emb),
            "appointments": dict(
                base, TAINA_API_KEYS_FILE=keys,
                TAINA_DATABASE_URL=pg.uri.replace(
                    "postgres@", "postgres:%s@" % SECRETS["db_password"]),
                TAINA_APPOINTMENTS_ID_KEY=SECRETS["id_key"],
                TAINA_BOOKING_URL="http://127.0.0.1:%d" % fb.port,
                TAINA_BOOKING_TOKEN_URL="http://127.0.0.1:%d/token" % fb.port,
                TAINA_BOOKING_CLIENT_ID="taina",
                TAINA_BOOKING_CLIENT_SECRET=SECRETS["client_secret"]),
        }
        svc = {}
        for name in ("ingest", "embedder", "rag", "appointments"):
            svc[name] = Service(name, tmp, env[name])
            procs.append(svc[name])
        for name in ("ingest", "embedder", "rag", "appointments"):
            svc[name].wait_ready(60)
        rag_keys = tmp.file("rag_keys", "tenant-a %s\n" % SECRETS["tenant_a_key"])
        env["voice-gateway"] = dict(
            base, TAINA_API_KEYS_FILE=keys, TAINA_VOICE_RAG_KEYS_FILE=rag_keys,
            TAINA_VOICE_TOKEN_SECRET=SECRETS["token_secret"],
            TAINA_RAG_URL="http://127.0.0.1:%d" % svc["rag"].port,
            TAINA_STT_PROVIDER="deepgram", TAINA_STT_URL="http://127.0.0.1:%d" % fs.port,
            TAINA_STT_API_KEY=SECRETS["speech_key"], TAINA_TTS_PROVIDER="elevenlabs",
            TAINA_TTS_URL="http://127.0.0.1:%d" % fs.port, TAINA_TTS_API_KEY=SECRETS["speech_key"],
            TAINA_TTS_VOICE_ES="voice-es", TAINA_TTS_VOICE_EN="voice-en")
        svc["voice-gateway"] = Service("voice-gateway", tmp, env["voice-gateway"])
        procs.append(svc["voice-gateway"])
        svc["voice-gateway"].wait_ready(60)
        yield {"tmp": tmp, "ds": ds, "svc": svc, "env": env, "fe": fe, "seen": seen}
    finally:
        codes = {p.name: p.stop() for p in procs[::-1]}
        for p in procs:
            if p.name in SERVICES:
                assert codes[p.name] == 0, (p.name, codes[p.name], p.tail())
        if "ds" in dir():
            ds.stop()
        pg.close()
        tmp.cleanup()


def call(stack, method, port, path, body=None, headers=None):
    st, hdrs, data = http(method, port, path, body, headers)
    stack["seen"].append(b"%d %s\n" % (st, json.dumps(hdrs).encode()) + data)
    return st, data


def test_a_whole_flow_with_every_secret_in_use(stack):
    s, ka = stack["svc"], SECRETS["tenant_a_key"]
    tid = str(uuid.uuid4())
    body = {"ticket_id": tid, "source": "web", "title": "Renovación de pasaporte",
            "body": "Quiero renovar mi pasaporte. Mi correo es %s y mi cédula %s. ¿Qué documentos "
                    "necesito llevar a la oficina de pasaportes?" % (PII["email"], PII["cedula"]),
            "content_type": "text/plain", "created_at": "2026-12-01T10:00:00Z"}
    st, data = call(stack, "POST", s["ingest"].port, "/v1/tickets", body, bearer(ka))
    assert st == 202, data
    deadline, hits = time.time() + 60 * MULT, []
    while time.time() < deadline and not hits:
        st, data = call(stack, "POST", s["rag"].port, "/v1/search",
                        {"question": "documentos para renovar el pasaporte"}, bearer(ka))
        hits = [r for r in json.loads(data).get("results", []) if r["ticket_id"] == tid] \
            if st == 200 else []
        time.sleep(0.3)
    assert hits, "the ticket never became searchable"
    st, data = call(stack, "POST", s["rag"].port, "/v1/query",
                    {"question": "¿Qué documentos necesito para renovar el pasaporte?"}, bearer(ka))
    assert st == 200 and json.loads(data)["answer"], data
    # a voice text turn with a key, and one with a session token
    rc, out = voice_client(s["voice-gateway"].port, ["--lang", "es", "--text",
                                                       "¿Cómo renuevo mi pasaporte?"], key=ka)
    stack["seen"].append(out.encode())
    assert rc == 0, out
    st, data = call(stack, "POST", s["voice-gateway"].port, "/v1/sessions/token", None,
                    {"Authorization": "Bearer " + ka})
    assert st in (200, 201), data
    token = json.loads(data)["token"]
    rc, out = voice_client(s["voice-gateway"].port, ["--lang", "en", "--token", token, "--text",
                                                       "How do I renew my passport?"])
    stack["seen"].append(out.encode())
    assert rc == 0, out
    # a booking with the citizen's id number
    rid = str(uuid.uuid4())
    st, data = call(stack, "POST", s["appointments"].port, "/v1/appointments",
                    {"request_id": rid, "citizen_name": "María Rodríguez",
                     "id_number": PII["id_number"], "phone": "+1 809 555 0142",
                     "service_code": "passport_renewal", "lang": "es",
                     "preferred_window": {"from": "2026-12-03T08:00:00Z",
                                          "to": "2026-12-10T17:00:00Z"}}, bearer(ka))
    assert st in (200, 201, 202), data
    deadline, status = time.time() + 30 * MULT, None
    while time.time() < deadline and status != "booked":
        st, data = call(stack, "GET", s["appointments"].port, "/v1/appointments/" + rid, None,
                        bearer(ka, None))
        status = json.loads(data).get("status") if st == 200 else None
        time.sleep(0.3)
    assert status == "booked", data


def test_failures_do_not_echo_secrets(stack):
    s = stack["svc"]
    # a secret of the wrong kind presented as an API key, everywhere
    for name in SERVICES:
        path = {"ingest": "/v1/tickets", "rag": "/v1/search", "embedder": "/metrics",
                "appointments": "/v1/appointments", "voice-gateway": "/v1/sessions/token"}[name]
        if name == "embedder":
            continue
        st, data = call(stack, "POST", s[name].port, path, {"question": "x"},
                        bearer(SECRETS["qdrant_key"]))
        assert st == 401, (name, st, data)
    # the embeddings/LLM upstream refuses the key: clear errors, no key in them
    st, _ = call(stack, "POST", stack["fe"].port, "/admin/faults",
                 {"error_rate": 1, "error_status": 401},
                 {"Authorization": "Bearer " + SECRETS["embed_key"],
                  "Content-Type": "application/json"})
    assert st == 200
    try:
        st, data = call(stack, "POST", s["rag"].port, "/v1/query", {"question": "pasaporte"},
                        bearer(SECRETS["tenant_a_key"]))
        assert st >= 400 and json.loads(data)["error"]["message"], (st, data)
    finally:
        call(stack, "POST", stack["fe"].port, "/admin/faults", {"error_rate": 0},
             {"Authorization": "Bearer " + SECRETS["embed_key"],
              "Content-Type": "application/json"})


def test_no_secret_anywhere(stack):
    s, tmp = stack["svc"], stack["tmp"]
    texts = {}
    for name in SERVICES:
        st, data = call(stack, "GET", s[name].port, "/metrics")
        assert st == 200
        texts["metrics of " + name] = data
        p = subprocess.run([os.path.join(BIN, "taina-" + name), "--print-config"],
                           env=dict(os.environ, **stack["env"][name]), capture_output=True)
        assert p.returncode == 0, p.stderr
        assert b"TAINA_" in p.stdout
        texts["--print-config of " + name] = p.stdout + p.stderr
    for i, b in enumerate(stack["seen"]):
        texts["answer %d" % i] = b
    logs = {}
    for name in SERVICES:
        for path in glob.glob(os.path.join(tmp.path, name + ".*.log")):
            with open(path, "rb") as f:
                logs["log " + os.path.basename(path)] = f.read()
    assert len(logs) == len(SERVICES)
    assert all(len(v) > 1000 for v in logs.values()), "debug logs are expected to be long"
    texts.update(logs)
    leaks = [(what, k) for what, blob in texts.items() for k, v in SECRETS.items()
             if v.encode() in blob]
    assert not leaks, leaks
    pii = [(what, k) for what, blob in logs.items() for k, v in PII.items() if v.encode() in blob]
    assert not pii, pii
