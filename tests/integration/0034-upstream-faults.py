"""Upstream faults through the fakes' switches (tests/fakes/README.md), one test per upstream
family: Qdrant and embeddings (the embedder, then rag), the LLM (rag), STT and TTS (the voice
gateway), the booking system (appointments). Each family gets, while work flows: 20% errors,
dropped connections, malformed answers, answers of 128 MiB, and a latency spike past the
service's timeout; then the faults stop. Checked for every service: no crash and a clean SIGTERM
exit, bounded retries (nothing hangs past its deadline), clear errors to callers, RSS growth
under a bound (measured before and after); that each circuit breaker (the embedder's Qdrant,
rag's embeddings, Qdrant and LLM) opens during a full outage (metric, log, a fast clear error to
the caller, only probes reaching the upstream) and closes after it; and the final state
complete: every chunk one point, every booking once. ~100 s in all."""
import json
import os
import re
import sys
import threading
import time
import uuid

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from taina_harness import (BUILD, KAFKA_FAST_GROUP, MULT, Devstack, Service,  # noqa: E402
                           TempDir, http, producer, wait_for)

HUGE = 128 << 20         # bytes of a huge answer: over every client cap (at most 64 MiB)
RSS_GROWTH_MB = 64       # half a huge answer: none was held whole, and nothing piles up
# ASan keeps freed memory in quarantine (256 MB): RSS says nothing about leaks there
RSS_CHECK = "asan" not in os.path.basename(BUILD.rstrip("/"))
MIXED = {"error_rate": 0.2, "drop_rate": 0.05, "malformed_rate": 0.05, "huge_rate": 0.03,
         "huge_bytes": HUGE}
CLEAR = {"error_rate": 0, "drop_rate": 0, "malformed_rate": 0, "huge_rate": 0, "latency_ms": 0}
COOLDOWN_MS = 2000       # rag's circuit breakers (TAINA_BREAKER_COOLDOWN)


def faults(fake, **kw):
    st, _, body = http("POST", fake.port, "/admin/faults", kw,
                       {"Content-Type": "application/json"})
    assert st == 200, body


def fault_stats(fake):
    return json.loads(http("GET", fake.port, "/admin/stats")[2])["faults"]


def rss_mb(svc):
    with open("/proc/%d/status" % svc.proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def metric(svc, name, labels=""):
    st, _, body = http("GET", svc.port, "/metrics")
    assert st == 200
    total = None
    for line in body.decode().splitlines():
        if line.startswith(name) and (line[len(name)] in "{ ") and labels in line:
            total = (total or 0.0) + float(line.rsplit(" ", 1)[1])
    return total


def alive(*svcs):
    for s in svcs:
        assert s.proc.poll() is None, "%s died (%s): %s" % (s.name, s.proc.returncode, s.tail())


def enriched(ticket, i, nchunks=2):
    chunks, text, pos = [], "", 0
    for k in range(nchunks):
        t = "Parte %d del ticket %d: renovar el pasaporte en la oficina de Madrid." % (k, i)
        chunks.append({"index": k, "text": t, "start": pos, "end": pos + len(t),
                       "words": len(t.split())})
        text += t + " "
        pos += len(t) + 1
    return {"schema_version": 1, "ticket_id": ticket, "tenant_id": "default", "source": "web",
            "title": "Pasaporte %d" % i, "text": text.strip(), "lang": "es",
            "lang_confidence": 0.9, "category": "passport", "priority": "normal", "pii": {},
            "invalid_utf8": 0, "content_hash": "0" * 64, "created_at": "2026-11-24T10:00:00Z",
            "enriched_at": "2026-11-24T10:00:01Z", "chunks": chunks}


def send(bootstrap, topic, values, key):
    p = producer(bootstrap)
    for v in values:
        p.produce(topic, key=v[key], value=json.dumps(v))
    assert p.flush(30) == 0


# ---------------------------------------------------------------------------------------------
# Qdrant, embeddings, LLM: the embedder and rag on one stack

@pytest.fixture(scope="module")
def index():
    tmp = TempDir("taina-0034-")
    ds = Devstack(tmp)
    started = [ds]
    try:
        fq = Service("fake-qdrant", tmp, {"TAINA_HTTP_MAX_BODY": "64MiB"})
        fe = Service("fake-embeddings", tmp, {"TAINA_HTTP_MAX_BODY": "16MiB"})
        fl = Service("fake-embeddings", tmp, {"TAINA_HTTP_MAX_BODY": "16MiB"}, tag="fake-llm")
        started += [fq, fe, fl]
        fq.wait_ready()
        fe.wait_ready()
        fl.wait_ready()
        qurl, eurl = ("http://127.0.0.1:%d" % fq.port, "http://127.0.0.1:%d" % fe.port)
        base = {"TAINA_KAFKA_BROKERS": ds.bootstrap, "TAINA_EMBED_PROVIDER": "openai",
                "TAINA_EMBED_URL": eurl, "TAINA_EMBED_MODEL": "e5-test", "TAINA_EMBED_DIMS": "64",
                "TAINA_QDRANT_URL": qurl, "TAINA_LOG_LEVEL": "info"}
        base.update(KAFKA_FAST_GROUP)
        emb = Service("embedder", tmp, dict(base, TAINA_VECTOR_STORE="qdrant",
                                            TAINA_EMBED_TIMEOUT="2s", TAINA_QDRANT_TIMEOUT="2s",
                                            TAINA_EMBEDDER_RETRY_BASE="100ms",
                                            TAINA_EMBEDDER_RETRY_CAP="1s",
                                            TAINA_EMBEDDER_MAX_ATTEMPTS="1000",
                                            TAINA_EMBEDDER_BATCH_CHUNKS="16",
                                            TAINA_KAFKA_STATS_INTERVAL="500ms"))
        rag = Service("rag", tmp, dict(base, TAINA_AUTH_DISABLED="1", TAINA_RAG_BACKEND="qdrant",
                                       TAINA_EMBED_TIMEOUT="2s", TAINA_QDRANT_TIMEOUT="2s",
                                       TAINA_LLM_PROVIDER="openai",
                                       TAINA_LLM_URL="http://127.0.0.1:%d" % fl.port,
                                       TAINA_LLM_MODEL="chat", TAINA_LLM_TIMEOUT="2s",
                                       TAINA_RAG_REQUEST_TIMEOUT="5s",
                                       TAINA_BREAKER_COOLDOWN="%dms" % COOLDOWN_MS))
        started += [emb, rag]
        emb.wait_ready(60)
        rag.wait_ready(60)
        yield {"tmp": tmp, "ds": ds, "fq": fq, "fe": fe, "fl": fl, "emb": emb, "rag": rag}
        for s in (rag, emb):
            alive(s)
            assert s.stop() == 0, "%s: no clean exit after the faults" % s.name
    finally:
        for s in reversed(started):
            s.stop()
        tmp.cleanup()


def points(fq):
    st, _, body = http("POST", fq.port, "/collections/taina-chunks/points/count",
                       {"exact": True}, {"Content-Type": "application/json"})
    return json.loads(body)["result"]["count"] if st == 200 else -1


def test_embedder_qdrant_and_embeddings_faults(index):
    ds, fq, fe, emb = index["ds"], index["fq"], index["fe"], index["emb"]
    rss0 = rss_mb(emb)
    # 1. mixed faults on both upstreams while 300 tickets (600 chunks) flow
    faults(fq, **MIXED)
    faults(fe, **MIXED)
    tickets = [str(uuid.uuid4()) for _ in range(300)]
    for k in range(0, 300, 30):
        send(ds.bootstrap, "tickets.enriched",
             [enriched(t, k + j) for j, t in enumerate(tickets[k:k + 30])], "ticket_id")
        time.sleep(0.5)
    # 2. a latency spike past the 2 s timeouts, 4 s long
    faults(fq, latency_ms=3000)
    faults(fe, latency_ms=3000)
    time.sleep(4)
    faults(fq, **CLEAR)
    faults(fe, **CLEAR)
    wait_for(lambda: points(fq) >= 600, 90, "600 points")
    time.sleep(1)
    assert points(fq) == 600, "one point per chunk: %d" % points(fq)
    print("qdrant faults %s, embeddings faults %s" % (fault_stats(fq), fault_stats(fe)))
    assert metric(emb, "taina_embedder_dlq_total") in (None, 0.0), "a batch went to the DLQ"
    # 3. a full Qdrant outage: the breaker opens (metric, log, /ready), then closes
    faults(fq, error_rate=1.0)
    more = [str(uuid.uuid4()) for _ in range(10)]
    send(ds.bootstrap, "tickets.enriched", [enriched(t, 1000 + i) for i, t in enumerate(more)],
         "ticket_id")
    wait_for(lambda: metric(emb, "taina_embedder_circuit_open", 'upstream="qdrant"') == 1.0, 30,
             "the qdrant circuit to open")
    assert http("GET", emb.port, "/ready")[0] == 503
    before = fault_stats(fq)["error"]
    time.sleep(6)
    # open circuit: one probe call every 5 s (each up to 4 requests: the client's own retries)
    # instead of a retry every ~0.5 s (30+ requests in 6 s)
    probes = fault_stats(fq)["error"] - before
    assert probes <= 8, "%d requests in 6 s with the circuit open" % probes
    faults(fq, **CLEAR)
    wait_for(lambda: metric(emb, "taina_embedder_circuit_open", 'upstream="qdrant"') == 0.0, 30,
             "the qdrant circuit to close")
    wait_for(lambda: points(fq) == 620, 30, "the outage's points")
    wait_for(lambda: http("GET", emb.port, "/ready")[0] == 200, 15, "/ready again")
    log = open(emb.logpath, errors="replace").read()
    assert re.search(r"qdrant: circuit open after \d+ failures", log)
    assert "qdrant: circuit closed" in log
    alive(emb)
    rss1 = rss_mb(emb)
    print("embedder RSS %.1f -> %.1f MB" % (rss0, rss1))
    assert not RSS_CHECK or rss1 - rss0 < RSS_GROWTH_MB, "embedder RSS grew %.1f MB" % (rss1 - rss0)


def query(rag, q, stream=False):
    t0 = time.time()
    try:
        st, hdrs, body = http("POST", rag.port, "/v1/query", {"question": q, "stream": stream},
                              {"Content-Type": "application/json"}, timeout=20)
    except OSError as e:  # a cut connection is not a clear error
        raise AssertionError("rag: no answer: %r" % e)
    return st, hdrs, body, time.time() - t0


def test_rag_embeddings_qdrant_llm_faults(index):
    fq, fe, fl, rag = index["fq"], index["fe"], index["fl"], index["rag"]
    wait_for(lambda: points(fq) >= 600, 60, "the index")
    assert query(rag, "renovar pasaporte")[0] == 200
    rss0 = rss_mb(rag)
    faults(fq, **MIXED)
    faults(fe, **MIXED)
    faults(fl, **MIXED)
    outcomes = {}
    lock = threading.Lock()

    def client(n):
        for i in range(n):
            st, hdrs, body, secs = query(rag, "pasaporte oficina %d" % i, stream=(i % 4 == 0))
            with lock:
                outcomes[st] = outcomes.get(st, 0) + 1
            assert secs < 5 + 3, "an answer took %.1f s past the 5 s deadline" % secs
            if st == 200:
                if not body.startswith(b"data:") and b"event:" not in body[:20]:
                    r = json.loads(body)
                    assert "answer" in r or r.get("answer_error"), r
            else:
                assert st in (502, 503, 504), (st, body[:300])
                assert json.loads(body)["error"]["code"], body
    threads = [threading.Thread(target=client, args=(40,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("rag under 20%% errors: %s; fakes: %s %s %s" % (outcomes, fault_stats(fq),
                                                          fault_stats(fe), fault_stats(fl)))
    assert outcomes.get(200, 0) >= 160 // 2, "fewer than half answered: %s" % outcomes
    # only huge answers, from each upstream in turn, to 4 clients at once: each gets a clear
    # 503 and nothing is buffered past the client's cap (RSS checked below)
    for fake in (fq, fe):
        faults(fake, huge_rate=1.0, huge_bytes=HUGE)
        sts = []
        ths = [threading.Thread(target=lambda: sts.extend(
            query(rag, "pasaporte huge")[0] for _ in range(4))) for _ in range(4)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        faults(fake, **CLEAR)
        assert set(sts) == {503}, sts
    print("huge answers: %s %s" % (fault_stats(fq)["huge"], fault_stats(fe)["huge"]))
    # a latency spike past every timeout: a clear 503 (the provider's 2 s timeout) or 504 (the
    # request's 5 s deadline) in time, never a hang
    faults(fe, **dict(CLEAR, latency_ms=6000))
    faults(fl, **CLEAR)
    st, _, body, secs = query(rag, "pasaporte")
    assert st in (503, 504) and secs < 8, (st, secs, body[:200])
    assert json.loads(body)["error"]["code"] in ("upstream_unavailable", "upstream_timeout")
    faults(fe, **CLEAR)
    faults(fq, **CLEAR)
    # the fake still sleeps out the 6 s request on one of its threads: a call that lands there
    # times out, so recovery is judged over a few seconds, not on the first query
    deadline = time.time() + 20 * MULT
    while True:
        st, _, body, _ = query(rag, "renovar pasaporte")
        if st == 200 and json.loads(body).get("answer"):
            break
        assert time.time() < deadline, "no full answer after the faults cleared: %s %s" % (
            st, body[:300])
        time.sleep(0.5)
    alive(rag)
    rss1 = rss_mb(rag)
    print("rag RSS %.1f -> %.1f MB" % (rss0, rss1))
    assert not RSS_CHECK or rss1 - rss0 < RSS_GROWTH_MB, "rag RSS grew %.1f MB" % (rss1 - rss0)


def search(rag, q):
    return http("POST", rag.port, "/v1/search", {"question": q},
                {"Content-Type": "application/json"}, timeout=20)


def open_rag_circuit(rag, fake, upstream, call):
    """A full outage of @fake: calls until rag's @upstream circuit opens (metric and log)."""
    faults(fake, error_rate=1.0)
    label = 'upstream="%s"' % upstream
    deadline = time.time() + 60 * MULT
    while metric(rag, "taina_rag_circuit_open", label) != 1.0:
        assert time.time() < deadline, "the %s circuit did not open" % upstream
        call()
    log = open(rag.logpath, errors="replace").read()
    assert re.search(r"%s: circuit open after \d+ failures" % upstream, log), upstream


def probes_only(rag, fake, call, attempts):
    """Calls for 3 cooldowns while the circuit is open: the upstream sees at most a probe per
    cooldown (each up to @attempts requests: the client's own retries)."""
    before = fault_stats(fake)["error"]
    n, t_end = 0, time.time() + 3 * COOLDOWN_MS / 1000.0
    while time.time() < t_end:
        call()
        n += 1
        time.sleep(0.05)
    got = fault_stats(fake)["error"] - before
    assert n > 3 * 4, "too few calls to tell: %d" % n
    assert got <= 4 * attempts, "%d requests reached the upstream for %d calls" % (got, n)
    return n, got


def close_rag_circuit(rag, fake, upstream, answered):
    faults(fake, **CLEAR)
    label = 'upstream="%s"' % upstream
    deadline = time.time() + 30 * MULT
    while not answered() or metric(rag, "taina_rag_circuit_open", label) != 0.0:
        assert time.time() < deadline, "the %s circuit did not close" % upstream
        time.sleep(0.3)
    assert "%s: circuit closed" % upstream in open(rag.logpath, errors="replace").read()


def full_answer(rag):
    st, _, body, _ = query(rag, "renovar pasaporte")
    return st == 200 and bool(json.loads(body).get("answer"))


def test_rag_circuit_breakers(index):
    """A full outage of each upstream of rag opens its circuit: embeddings and Qdrant get a fast
    503 upstream_unavailable naming the upstream with Retry-After from both endpoints; the LLM
    the citations with answer_error; the upstream only sees the probes; clearing closes it."""
    fq, fe, fl, rag = index["fq"], index["fe"], index["fl"], index["rag"]
    wait_for(lambda: full_answer(rag), 30, "a full answer before the outages")
    for fake, upstream, attempts in ((fe, "embeddings", 4), (fq, "qdrant", 2)):
        open_rag_circuit(rag, fake, upstream, lambda: query(rag, "pasaporte"))
        st, hdrs, body, _ = query(rag, "pasaporte")
        assert st == 503 and int(hdrs.get("retry-after", "0")) >= 1, (st, hdrs, body[:300])
        err = json.loads(body)["error"]
        assert err["code"] == "upstream_unavailable" and upstream in err["message"], err
        assert "circuit open" in err["message"], err
        st, hdrs, body = search(rag, "pasaporte")
        assert st == 503 and hdrs.get("retry-after"), (st, body[:300])
        assert json.loads(body)["error"]["code"] == "upstream_unavailable", body[:300]
        n, got = probes_only(rag, fake, lambda: query(rag, "pasaporte"), attempts)
        print("%s circuit open: %d queries, %d requests reached it" % (upstream, n, got))
        close_rag_circuit(rag, fake, upstream, lambda: full_answer(rag))
        assert search(rag, "pasaporte")[0] == 200
    # the LLM: the ranked citations still come, with a clear answer_error, and no call
    open_rag_circuit(rag, fl, "llm", lambda: query(rag, "pasaporte"))
    for stream in (False, True):
        st, _, body, _ = query(rag, "renovar pasaporte", stream=stream)
        assert st == 200, (st, body[:300])
        if stream:
            assert b"event: citations" in body and b"circuit open" in body, body[:600]
            continue
        r = json.loads(body)
        assert r["citations"] and "answer" not in r, r
        assert "llm" in r["answer_error"] and "circuit open" in r["answer_error"], r
    n, got = probes_only(rag, fl, lambda: query(rag, "pasaporte"), 2)
    print("llm circuit open: %d queries, %d requests reached it" % (n, got))
    close_rag_circuit(rag, fl, "llm", lambda: full_answer(rag))
    alive(rag)
