"""taina-fake-embeddings: OpenAI's POST /v1/embeddings and POST /v1/chat/completions
(CONTRACTS.md 2.0-2.2) as a client sees it.

Embeddings: response shape, deterministic L2-normalized vectors (and the dimensions prefix
property), base64 encoding, usage. Chat: grounded deterministic answers, whole and streamed
(SSE chunks: role first, content word by word, finish_reason, the usage chunk, [DONE]), the
per-token delay. OpenAI's error envelope for 400/401/404, GET /v1/models, the fault switches
and the admin counters, and a clean exit on SIGTERM.
"""
import base64
import http.client as httpclient
import json
import math
import os
import struct
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from taina_harness import Service, TempDir, http  # noqa: E402

KEY = "sk-fake-0123456789abcdef"
AUTH = {"Authorization": "Bearer " + KEY, "Content-Type": "application/json"}
MODEL = "text-embedding-3-small"


@pytest.fixture(scope="module")
def fake():
    tmp = TempDir("taina-0009-")
    svc = Service("fake-embeddings", tmp, {"TAINA_FAKE_API_KEY": KEY, "TAINA_FAKE_DIMS": "64",
                                           "TAINA_FAKE_MAX_INPUT_TOKENS": "100",
                                           "TAINA_FAKE_SEED": "3"})
    svc.wait_ready()
    yield svc
    rc = svc.stop()
    tmp.cleanup()
    assert rc == 0, "taina-fake-embeddings did not exit 0 on SIGTERM"


def call(fake, body, headers=AUTH, path="/v1/embeddings", method="POST"):
    st, hdrs, data = http(method, fake.port, path, body, headers)
    try:
        return st, json.loads(data), hdrs
    except ValueError:
        return st, data, hdrs


def embed(fake, inp, **kw):
    body = {"input": inp, "model": MODEL}
    body.update(kw)
    st, r, _ = call(fake, body)
    assert st == 200, r
    return r


def error_of(r):
    e = r["error"]
    assert set(e) == {"message", "type", "param", "code"}, e
    assert e["message"] and e["type"]
    return e


def norm(v):
    return math.sqrt(sum(x * x for x in v))


def cos(a, b):
    return sum(x * y for x, y in zip(a, b)) / (norm(a) * norm(b))


def test_single_string(fake):
    r = embed(fake, "renew my passport")
    assert r["object"] == "list" and r["model"] == MODEL
    assert len(r["data"]) == 1
    d = r["data"][0]
    assert d["object"] == "embedding" and d["index"] == 0
    assert len(d["embedding"]) == 64  # fake_dims
    assert norm(d["embedding"]) == pytest.approx(1.0, abs=1e-5)
    assert r["usage"]["prompt_tokens"] == r["usage"]["total_tokens"] > 0


def test_batch_is_deterministic_and_ordered(fake):
    texts = ["alpha beta", "gamma", "alpha beta", "¿Dónde está mi cita médica?"]
    r = embed(fake, texts)
    assert [d["index"] for d in r["data"]] == [0, 1, 2, 3]
    v = [d["embedding"] for d in r["data"]]
    assert v[0] == v[2] and v[0] != v[1]
    again = embed(fake, "gamma")["data"][0]["embedding"]
    assert again == v[1]
    for x in v:
        assert norm(x) == pytest.approx(1.0, abs=1e-5)


def test_shared_words_are_closer(fake):
    v = [d["embedding"] for d in embed(fake, [
        "passport renewal documents", "documents for passport renewal", "weather in lima today"])
        ["data"]]
    assert cos(v[0], v[1]) > 0.8
    assert cos(v[0], v[1]) > cos(v[0], v[2]) + 0.3


def test_dimensions_and_prefix(fake):
    big = embed(fake, "hello world", dimensions=256)["data"][0]["embedding"]
    small = embed(fake, "hello world", dimensions=8)["data"][0]["embedding"]
    assert len(big) == 256 and len(small) == 8
    n = norm(big[:8])
    assert small == pytest.approx([x / n for x in big[:8]], abs=1e-5)


def test_base64_and_tokens(fake):
    f = embed(fake, "base64 please", encoding_format="float")["data"][0]["embedding"]
    b = embed(fake, "base64 please", encoding_format="base64")["data"][0]["embedding"]
    raw = base64.b64decode(b)
    assert len(raw) == 4 * 64
    assert list(struct.unpack("<64f", raw)) == pytest.approx(f, abs=1e-6)
    r = embed(fake, [[1, 2, 3], [4, 5]])
    assert len(r["data"]) == 2 and r["usage"]["prompt_tokens"] == 5
    r = embed(fake, [1, 2, 3])
    assert len(r["data"]) == 1


@pytest.mark.parametrize("body,param", [
    ({"input": "", "model": MODEL}, "input"),
    ({"input": [], "model": MODEL}, "input"),
    ({"input": ["ok", ""], "model": MODEL}, "input"),
    ({"input": ["x"] * 2049, "model": MODEL}, "input"),
    ({"input": "hi"}, "model"),
    ({"model": MODEL}, "input"),
    ({"input": "hi", "model": MODEL, "dimensions": 0}, "dimensions"),
    ({"input": "hi", "model": MODEL, "encoding_format": "int8"}, "encoding_format"),
    ({"input": 42, "model": MODEL}, "input"),
])
def test_bad_requests(fake, body, param):
    st, r, hdrs = call(fake, body)
    assert st == 400, r
    assert hdrs["content-type"].startswith("application/json")
    e = error_of(r)
    assert e["type"] == "invalid_request_error" and e["param"] == param


def test_input_too_long(fake):
    st, r, _ = call(fake, {"input": ["short", "x" * 404], "model": MODEL})  # 101 tokens > 100
    assert st == 400
    e = error_of(r)
    assert e["code"] == "context_length_exceeded" and "100 tokens" in e["message"]
    st, _, _ = call(fake, {"input": "x" * 400, "model": MODEL})  # exactly 100: fine
    assert st == 200


def test_bad_json(fake):
    st, r, _ = call(fake, "{nope")
    assert st == 400 and error_of(r)["type"] == "invalid_request_error"


def test_auth(fake):
    st, r, _ = call(fake, {"input": "x", "model": MODEL}, {"Content-Type": "application/json"})
    assert st == 401 and error_of(r)["code"] is None
    st, r, _ = call(fake, {"input": "x", "model": MODEL},
                    {"Content-Type": "application/json", "Authorization": "Bearer sk-wrong-key"})
    assert st == 401 and error_of(r)["code"] == "invalid_api_key"
    assert KEY not in r["error"]["message"]
    st, r, _ = call(fake, None, {}, "/v1/models", "GET")
    assert st == 401
    st, r, _ = call(fake, None, {}, "/admin/faults", "GET")
    assert st == 401


def test_models_and_unknown_paths(fake):
    st, r, _ = call(fake, None, AUTH, "/v1/models", "GET")
    assert st == 200 and r["object"] == "list"
    assert MODEL in [m["id"] for m in r["data"]]
    assert all(m["object"] == "model" for m in r["data"])
    st, r, _ = call(fake, None, AUTH, "/v1/models/" + MODEL, "GET")
    assert st == 200 and r["id"] == MODEL
    st, r, _ = call(fake, None, AUTH, "/v1/models/nope", "GET")
    assert st == 404 and error_of(r)["code"] == "model_not_found"
    st, r, _ = call(fake, {}, AUTH, "/v1/nothing")
    assert st == 404 and error_of(r)
    st, r, _ = call(fake, None, AUTH, "/v1/embeddings", "GET")
    assert st == 405 and error_of(r)


def faults(fake, **kw):
    st, r, _ = call(fake, kw, AUTH, "/admin/faults")
    assert st == 200, r
    return r


def test_faults(fake):
    body = {"input": "x", "model": MODEL}
    try:
        faults(fake, error_rate=1.0)
        st, r, _ = call(fake, body)
        assert st == 503 and error_of(r)["type"] == "server_error"
        faults(fake, error_status=429)
        st, r, hdrs = call(fake, body)
        assert st == 429 and hdrs["retry-after"] == "1"
        assert error_of(r)["code"] == "rate_limit_exceeded"
        faults(fake, error_rate=0, malformed_rate=1.0)
        st, data, _ = call(fake, body)
        assert st == 200 and isinstance(data, bytes)  # not JSON
        faults(fake, malformed_rate=0, drop_rate=1.0)
        with pytest.raises((httpclient.HTTPException, ConnectionError)):
            http("POST", fake.port, "/v1/embeddings", body, AUTH, timeout=5)
        faults(fake, drop_rate=0, latency_ms=250)
        t = time.time()
        st, _, _ = call(fake, body)
        assert st == 200 and time.time() - t >= 0.25
    finally:
        r = faults(fake, error_rate=0, error_status=503, malformed_rate=0, drop_rate=0,
                   latency_ms=0)
    assert r == {"latency_ms": 0, "error_rate": 0.0, "error_status": 503, "drop_rate": 0.0,
                 "malformed_rate": 0.0, "huge_rate": 0.0, "huge_bytes": 32 << 20}
    st, r, _ = call(fake, body)
    assert st == 200 and r["data"]
    st, r, _ = call(fake, {"latency_ms": -1}, AUTH, "/admin/faults")
    assert st == 400


# ---------------------------------------------------------------------------------------------
# Chat completions

CHAT_MODEL = "gpt-4o-mini"
USER = ("Passages:\n\n[1] (Passports) Bring your old passport to the civil registry. It takes "
        "five days.\n\n[2] Photos must be recent.\n\nQuestion: How do I renew my passport?")
GROUNDED = "Answer based on passage [1]: Bring your old passport to the civil registry."


def chat_body(**kw):
    body = {"model": CHAT_MODEL, "messages": [
        {"role": "system", "content": "Answer from the numbered passages."},
        {"role": "user", "content": USER}]}
    body.update(kw)
    return body


def sse_events(data):
    """A small SSE parser: the data of each event, in order (comments and other fields
    ignored, CRLF accepted)."""
    events, cur = [], None
    for line in data.decode().replace("\r\n", "\n").split("\n"):
        if line == "":
            if cur is not None:
                events.append(cur)
            cur = None
        elif line.startswith(":"):
            continue
        elif line.startswith("data:"):
            v = line[5:]
            v = v[1:] if v.startswith(" ") else v
            cur = v if cur is None else cur + "\n" + v
    if cur is not None:
        events.append(cur)
    return events


def stream_chat(port, body, headers=AUTH):
    """POST a streaming chat; returns (status, headers, [(seconds since start, event data)])."""
    c = httpclient.HTTPConnection("127.0.0.1", port, timeout=30)
    t0 = time.time()
    c.request("POST", "/v1/chat/completions", body=json.dumps(body), headers=headers)
    r = c.getresponse()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    out, buf = [], b""
    while True:
        piece = r.read1(65536) if hasattr(r, "read1") else r.read(1)
        if not piece:
            break
        buf += piece
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            for d in sse_events(ev + b"\n\n"):
                out.append((time.time() - t0, d))
    for d in sse_events(buf):
        out.append((time.time() - t0, d))
    c.close()
    return r.status, hdrs, out


def test_chat_whole(fake):
    st, r, hdrs = call(fake, chat_body(temperature=0.2, max_tokens=100), path="/v1/chat/completions")
    assert st == 200, r
    assert hdrs["content-type"].startswith("application/json")
    assert r["object"] == "chat.completion" and r["model"] == CHAT_MODEL
    assert r["id"].startswith("chatcmpl-")
    ch = r["choices"][0]
    assert ch["index"] == 0 and ch["finish_reason"] == "stop"
    assert ch["message"]["role"] == "assistant"
    assert ch["message"]["content"] == GROUNDED
    u = r["usage"]
    assert u["completion_tokens"] == len(GROUNDED.split())
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    # deterministic
    _, again, _ = call(fake, chat_body(), path="/v1/chat/completions")
    assert again["choices"][0]["message"]["content"] == GROUNDED
    # content as parts; no numbered passage; a length cut
    body = chat_body(messages=[{"role": "user", "content": [{"type": "text", "text": USER}]}])
    _, r, _ = call(fake, body, path="/v1/chat/completions")
    assert r["choices"][0]["message"]["content"] == GROUNDED
    _, r, _ = call(fake, chat_body(messages=[{"role": "user", "content": "hi"}]),
                   path="/v1/chat/completions")
    assert r["choices"][0]["message"]["content"] == "I could not find an answer in the documents."
    _, r, _ = call(fake, chat_body(max_tokens=3), path="/v1/chat/completions")
    assert r["choices"][0]["message"]["content"] == "Answer based on "
    assert r["choices"][0]["finish_reason"] == "length"


def test_chat_stream(fake):
    st, hdrs, evs = stream_chat(fake.port, chat_body(stream=True))
    assert st == 200 and hdrs["content-type"].startswith("text/event-stream")
    data = [d for _, d in evs]
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"][0]["delta"] == {}
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    pieces = [c["choices"][0]["delta"]["content"] for c in chunks[1:-1]]
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert "".join(pieces) == GROUNDED
    assert len(pieces) == len(GROUNDED.split())  # word by word
    assert all("usage" not in c for c in chunks)
    # with the usage chunk
    _, _, evs = stream_chat(fake.port, chat_body(stream=True,
                                                 stream_options={"include_usage": True}))
    data = [d for _, d in evs]
    assert data[-1] == "[DONE]"
    usage = json.loads(data[-2])
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == len(pieces)
    assert all(json.loads(d)["usage"] is None for d in data[:-2])


@pytest.mark.parametrize("body,param", [
    ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
    ({"model": CHAT_MODEL}, "messages"),
    ({"model": CHAT_MODEL, "messages": []}, "messages"),
    ({"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}],
      "stream_options": {"include_usage": True}}, "stream_options"),
    ({"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}], "temperature": 3},
     "temperature"),
    ({"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0},
     "max_tokens"),
    ({"model": CHAT_MODEL, "messages": [{"role": "robot", "content": "hi"}]}, None),
    ({"model": CHAT_MODEL, "messages": [{"role": "user", "content": 5}]}, None),
])
def test_chat_bad_requests(fake, body, param):
    st, r, _ = call(fake, body, path="/v1/chat/completions")
    assert st == 400, r
    e = error_of(r)
    assert e["type"] == "invalid_request_error" and e["param"] == param


def test_chat_auth_and_faults(fake):
    st, r, _ = call(fake, chat_body(), {"Content-Type": "application/json"},
                    "/v1/chat/completions")
    assert st == 401 and error_of(r)["type"] == "invalid_request_error"
    st, r, _ = call(fake, chat_body(), {"Content-Type": "application/json",
                                        "Authorization": "Bearer sk-nope"}, "/v1/chat/completions")
    assert st == 401 and error_of(r)["code"] == "invalid_api_key"
    st, r, _ = call(fake, "{nope", path="/v1/chat/completions")
    assert st == 400 and error_of(r)
    try:
        faults(fake, error_rate=1.0, error_status=429)
        st, r, hdrs = call(fake, chat_body(stream=True), path="/v1/chat/completions")
        assert st == 429 and hdrs["retry-after"] == "1" and error_of(r)
        faults(fake, error_rate=1.0, error_status=500)
        st, r, _ = call(fake, chat_body(), path="/v1/chat/completions")
        assert st == 500 and error_of(r)["type"] == "server_error"
        faults(fake, error_rate=0, malformed_rate=1.0)
        st, data, _ = call(fake, chat_body(), path="/v1/chat/completions")
        assert st == 200 and isinstance(data, bytes)
        faults(fake, malformed_rate=0, drop_rate=1.0)
        with pytest.raises((httpclient.HTTPException, ConnectionError)):
            http("POST", fake.port, "/v1/chat/completions", chat_body(stream=True), AUTH,
                 timeout=5)
        faults(fake, drop_rate=0, latency_ms=200)
        t = time.time()
        st, _, evs = stream_chat(fake.port, chat_body(stream=True))
        assert st == 200 and evs[-1][1] == "[DONE]" and time.time() - t >= 0.2
    finally:
        faults(fake, error_rate=0, error_status=503, malformed_rate=0, drop_rate=0, latency_ms=0)


def test_chat_token_delay():
    tmp = TempDir("taina-0009-delay-")
    svc = Service("fake-embeddings", tmp, {"TAINA_FAKE_TOKEN_DELAY_MS": "60"})
    try:
        svc.wait_ready()
        st, _, evs = stream_chat(svc.port, chat_body(stream=True))
        assert st == 200 and evs[-1][1] == "[DONE]"
        times = [t for t, d in evs[1:-2]]  # the content chunks
        n = len(GROUNDED.split())
        assert len(times) == n
        # pieces arrive spread out, not in one burst: about 60 ms apart
        assert times[-1] - times[0] >= 0.06 * (n - 1) * 0.8
        _, r, _ = call(svc, chat_body(), {"Content-Type": "application/json"},
                       "/v1/chat/completions")
        assert r["choices"][0]["message"]["content"] == GROUNDED  # no delay needed when whole
    finally:
        rc = svc.stop()
        tmp.cleanup()
    assert rc == 0


def test_stats(fake):
    st, s, _ = call(fake, None, AUTH, "/admin/stats", "GET")
    assert st == 200
    assert s["chat"]["requests"] >= 5 and s["chat"]["streamed"] >= 2
    assert s["chat"]["completion_tokens"] > 0
    assert s["requests"]["POST /v1/chat/completions"] >= 5
    assert s["requests"]["POST /v1/embeddings"] >= 10
    assert s["embeddings"]["inputs"] >= 10 and s["embeddings"]["tokens"] > 0
    assert s["faults"]["error"] >= 2 and s["faults"]["malformed"] >= 1 and s["faults"]["drop"] >= 1
