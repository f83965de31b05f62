"""taina-fake-qdrant: the Qdrant REST contract (CONTRACTS.md section 1) as a client sees it.

Envelopes and status codes, API keys, collections, payload indexes, upsert (list and batch
forms), retrieve, exact search and query checked against a brute force in Python for each
distance, scroll, count and delete with filters, aliases switched atomically, the fault
switches and the admin counters, and a clean exit on SIGTERM.
"""
import http.client as httpclient
import json
import math
import os
import random
import sys
import time
import uuid

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from taina_harness import Service, TempDir, http  # noqa: E402

KEY = "qdrant-test-key-123"
AUTH = {"api-key": KEY, "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def fake():
    tmp = TempDir("taina-0008-")
    svc = Service("fake-qdrant", tmp, {"TAINA_FAKE_API_KEY": KEY, "TAINA_FAKE_SEED": "7",
                                       "TAINA_HTTP_MAX_BODY": "64MiB"})
    svc.wait_ready()
    yield svc
    rc = svc.stop()
    tmp.cleanup()
    assert rc == 0, "taina-fake-qdrant did not exit 0 on SIGTERM"


def call(fake, method, path, body=None, headers=AUTH):
    """(status, parsed JSON or raw bytes, headers)."""
    st, hdrs, data = http(method, fake.port, path, body, headers)
    try:
        return st, json.loads(data), hdrs
    except ValueError:
        return st, data, hdrs


def ok(fake, method, path, body=None):
    st, r, _ = call(fake, method, path, body)
    assert st == 200, (st, r)
    assert set(r) == {"result", "status", "time"}, r
    assert r["status"] == "ok" and isinstance(r["time"], float)
    return r["result"]


def err(fake, method, path, body=None, status=400):
    st, r, _ = call(fake, method, path, body)
    assert st == status, (st, r)
    assert set(r) == {"status", "time"}, r  # no "result" key on errors
    assert isinstance(r["status"]["error"], str) and r["status"]["error"]
    return r["status"]["error"]


def create(fake, name, size, distance="Cosine"):
    call(fake, "DELETE", "/collections/" + name)
    assert ok(fake, "PUT", "/collections/" + name,
              {"vectors": {"size": size, "distance": distance}}) is True


def upsert(fake, name, points, wait=True):
    q = "?wait=true" if wait else ""
    return ok(fake, "PUT", "/collections/%s/points%s" % (name, q), {"points": points})


# --- health, auth, envelopes --------------------------------------------------------------------

def test_health_is_plain_text_and_open(fake):
    for path in ("/healthz", "/livez", "/readyz"):
        st, hdrs, body = http("GET", fake.port, path)
        assert st == 200 and hdrs["content-type"].startswith("text/plain"), (path, st)
        assert body


def test_api_key_required(fake):
    st, hdrs, body = http("GET", fake.port, "/collections")
    assert st == 401 and hdrs["content-type"].startswith("text/plain")
    assert body == b"Must provide an API key or an Authorization bearer token"
    st, hdrs, body = http("GET", fake.port, "/collections", headers={"api-key": "wrong"})
    assert st == 401 and body == b"Invalid API key or JWT"
    st, _, _ = http("GET", fake.port, "/collections", headers={"Authorization": "Bearer " + KEY})
    assert st == 200
    st, _, _ = http("GET", fake.port, "/admin/stats")
    assert st == 401


def test_unknown_path_and_bad_json(fake):
    err(fake, "GET", "/nope", status=404)
    create(fake, "bad", 4)
    msg = err(fake, "POST", "/collections/bad/points/scroll", "{not json")
    assert msg.startswith("Format error in JSON body")
    st, _, data = http("POST", fake.port, "/collections/bad/points/scroll", "{}",
                       {"api-key": KEY, "Content-Type": "text/plain"})
    assert st == 400, data


# --- collections --------------------------------------------------------------------------------

def test_collection_lifecycle(fake):
    create(fake, "life", 4, "Dot")
    msg = err(fake, "PUT", "/collections/life", {"vectors": {"size": 4, "distance": "Dot"}}, 409)
    assert msg == "Wrong input: Collection `life` already exists!"
    info = ok(fake, "GET", "/collections/life")
    assert info["status"] == "green" and info["points_count"] == 0
    assert info["config"]["params"]["vectors"] == {"size": 4, "distance": "Dot"}
    assert info["payload_schema"] == {}
    assert ok(fake, "GET", "/collections/life/exists") == {"exists": True}
    assert {"name": "life"} in ok(fake, "GET", "/collections")["collections"]
    assert ok(fake, "DELETE", "/collections/life") is True
    assert ok(fake, "DELETE", "/collections/life") is False
    assert ok(fake, "GET", "/collections/life/exists") == {"exists": False}
    assert err(fake, "GET", "/collections/life", status=404) == \
        "Not found: Collection `life` doesn't exist!"


def test_collection_validation(fake):
    call(fake, "DELETE", "/collections/v")
    err(fake, "PUT", "/collections/v", {"vectors": {"size": 4, "distance": "cosine"}}, 400)
    err(fake, "PUT", "/collections/v", {"vectors": {"size": 0, "distance": "Cosine"}}, 422)
    err(fake, "PUT", "/collections/v", {"vectors": {"distance": "Cosine"}}, 400)
    err(fake, "PUT", "/collections/a:b", {"vectors": {"size": 4, "distance": "Cosine"}}, 422)
    err(fake, "PUT", "/collections/" + "x" * 256, {"vectors": {"size": 4, "distance": "Cosine"}},
        422)


def test_payload_index(fake):
    create(fake, "idx", 2)
    upsert(fake, "idx", [{"id": 1, "vector": [1, 0], "payload": {"tenant_id": "a"}},
                         {"id": 2, "vector": [0, 1], "payload": {"other": 1}}])
    r = ok(fake, "PUT", "/collections/idx/index?wait=true",
           {"field_name": "tenant_id", "field_schema": "keyword"})
    assert r["status"] == "completed"
    ok(fake, "PUT", "/collections/idx/index", {"field_name": "n", "field_schema": {"type": "integer"}})
    schema = ok(fake, "GET", "/collections/idx")["payload_schema"]
    assert schema["tenant_id"]["data_type"] == "keyword" and schema["tenant_id"]["points"] == 1
    assert schema["n"]["data_type"] == "integer"
    err(fake, "PUT", "/collections/idx/index", {"field_name": "x", "field_schema": "nonsense"})


# --- points -------------------------------------------------------------------------------------

def test_upsert_forms_ids_and_wait(fake):
    create(fake, "pts", 3)
    u = str(uuid.uuid4())
    r = ok(fake, "PUT", "/collections/pts/points",
           {"points": [{"id": 1, "vector": [1, 0, 0], "payload": {"k": "v"}},
                       {"id": u.upper(), "vector": [0, 1, 0]}]})
    assert r["status"] == "acknowledged" and isinstance(r["operation_id"], int)
    r = ok(fake, "PUT", "/collections/pts/points?wait=true",
           {"batch": {"ids": [2, 3], "vectors": [[0, 0, 1], [1, 1, 0]],
                      "payloads": [{"k": "w"}, None]}})
    assert r["status"] == "completed"
    assert ok(fake, "GET", "/collections/pts")["points_count"] == 4
    rec = ok(fake, "GET", "/collections/pts/points/" + u)
    assert rec["id"] == u  # normalized to lower case
    assert rec["vector"] == [0, 1, 0]
    rec = ok(fake, "GET", "/collections/pts/points/3")
    assert rec["vector"] == pytest.approx([2 ** -0.5, 2 ** -0.5, 0], abs=1e-6)  # Cosine: normalized
    assert "payload" not in rec or rec["payload"] == {}
    recs = ok(fake, "POST", "/collections/pts/points", {"ids": [1, 2, 99], "with_vector": True})
    assert [x["id"] for x in recs] == [1, 2]
    assert recs[0]["payload"] == {"k": "v"} and recs[0]["vector"] == [1, 0, 0]
    assert err(fake, "GET", "/collections/pts/points/99", status=404) == \
        "Not found: No point with id 99 found"


def test_upsert_errors_are_atomic(fake):
    create(fake, "bad_up", 4)
    msg = err(fake, "PUT", "/collections/bad_up/points",
              {"points": [{"id": 1, "vector": [1, 2, 3, 4]}, {"id": 2, "vector": [1, 2, 3]}]})
    assert msg.startswith("Wrong input:")
    assert "Vector dimension error: expected dim: 4, got 3" in msg
    for bad in (-1, "123", "not-a-uuid", 1.5):
        msg = err(fake, "PUT", "/collections/bad_up/points",
                  {"points": [{"id": bad, "vector": [1, 2, 3, 4]}]})
        assert "not a valid point ID" in msg, msg
    assert ok(fake, "GET", "/collections/bad_up")["points_count"] == 0
    err(fake, "PUT", "/collections/nothere/points", {"points": []}, 404)


def brute(points, q, distance, k, flt=None, offset=0):
    def norm(v):
        n = math.sqrt(sum(x * x for x in v))
        return [x / n for x in v] if n else v
    if distance == "Cosine":
        q = norm(q)
    scored = []
    for p in points:
        if flt and not flt(p):
            continue
        v = norm(p["vector"]) if distance == "Cosine" else p["vector"]
        if distance in ("Cosine", "Dot"):
            s = sum(a * b for a, b in zip(q, v))
        else:
            s = math.sqrt(sum((a - b) ** 2 for a, b in zip(q, v)))
        scored.append((s, p["id"]))
    scored.sort(key=lambda t: -t[0] if distance in ("Cosine", "Dot") else t[0])
    return scored[offset:offset + k]


@pytest.mark.parametrize("distance", ["Cosine", "Dot", "Euclid"])
def test_exact_search_matches_brute_force(fake, distance):
    rnd = random.Random(42)
    dim, n = 32, 1500
    name = "knn_" + distance.lower()
    create(fake, name, dim, distance)
    pts = [{"id": i, "vector": [rnd.uniform(-1, 1) for _ in range(dim)],
            "payload": {"group": i % 3, "tag": "t%d" % (i % 5)}} for i in range(n)]
    for i in range(0, n, 500):
        upsert(fake, name, pts[i:i + 500])
    for trial in range(5):
        q = [rnd.uniform(-1, 1) for _ in range(dim)]
        want = brute(pts, q, distance, 10)
        got = ok(fake, "POST", "/collections/%s/points/search" % name, {"vector": q, "limit": 10})
        assert isinstance(got, list)  # legacy: a bare array
        assert [h["id"] for h in got] == [w[1] for w in want]
        assert [h["score"] for h in got] == pytest.approx([w[0] for w in want], rel=1e-4, abs=1e-4)
        assert all("payload" not in h and "vector" not in h and "version" in h for h in got)
        # query API: {"points": [...]}, a filter, an offset
        want = brute(pts, q, distance, 5, flt=lambda p: p["payload"]["group"] == 1, offset=2)
        got = ok(fake, "POST", "/collections/%s/points/query" % name,
                 {"query": q, "limit": 5, "offset": 2, "with_payload": True,
                  "filter": {"must": [{"key": "group", "match": {"value": 1}}]}})["points"]
        assert [h["id"] for h in got] == [w[1] for w in want]
        assert all(h["payload"]["group"] == 1 for h in got)
    # score_threshold: higher is better for Cosine/Dot, lower for Euclid
    q = [rnd.uniform(-1, 1) for _ in range(dim)]
    all_hits = brute(pts, q, distance, n)
    thr = all_hits[20][0]
    got = ok(fake, "POST", "/collections/%s/points/search" % name,
             {"vector": q, "limit": 100, "score_threshold": thr})
    assert len(got) in (20, 21, 22)
    got = ok(fake, "POST", "/collections/%s/points/query" % name,
             {"query": {"nearest": q}, "limit": 3, "with_vector": True})["points"]
    assert len(got[0]["vector"]) == dim
    # query by point id: that point's vector, the point itself left out
    got = ok(fake, "POST", "/collections/%s/points/query" % name, {"query": 7, "limit": 3})
    assert 7 not in [h["id"] for h in got["points"]] and len(got["points"]) == 3
    err(fake, "POST", "/collections/%s/points/search" % name, {"vector": q, "limit": 0}, 422)
    err(fake, "POST", "/collections/%s/points/search" % name, {"vector": q[:-1], "limit": 1})


def test_search_speed_384(fake):
    rnd = random.Random(1)
    dim, n = 384, 5000
    create(fake, "speed", dim)
    vecs = [[round(rnd.uniform(-1, 1), 4) for _ in range(dim)] for _ in range(n)]
    for i in range(0, n, 1000):
        ok(fake, "PUT", "/collections/speed/points?wait=true",
           {"batch": {"ids": list(range(i, i + 1000)), "vectors": vecs[i:i + 1000]}})
    q = vecs[123]
    t = time.time()
    got = ok(fake, "POST", "/collections/speed/points/query", {"query": q, "limit": 5})["points"]
    assert time.time() - t < 2.0
    assert got[0]["id"] == 123 and got[0]["score"] == pytest.approx(1.0, abs=1e-5)
    call(fake, "DELETE", "/collections/speed")


# --- filters, scroll, count, delete -------------------------------------------------------------

DOCS = [
    {"id": 1, "payload": {"city": "Lima", "n": 1, "tags": ["a", "b"], "meta": {"lang": "es"},
                          "items": [{"k": "x", "v": 1}, {"k": "y", "v": 2}]}},
    {"id": 2, "payload": {"city": "Cusco", "n": 5, "tags": ["b"], "meta": {"lang": "qu"},
                          "items": [{"k": "x", "v": 2}]}},
    {"id": 3, "payload": {"city": "Lima", "n": 10, "tags": [], "meta": {"lang": "es"},
                          "nothing": None}},
    {"id": 4, "payload": {"city": "Arequipa", "n": 7.5, "flag": True}},
    {"id": "a0000000-0000-0000-0000-000000000001", "payload": {"city": "Puno", "n": 3}},
    {"id": 5},
]


@pytest.fixture(scope="module")
def docs(fake):
    create(fake, "docs", 2)
    pts = [dict(d, vector=[1, i + 1]) for i, d in enumerate(DOCS)]
    upsert(fake, "docs", pts)
    return "docs"


def count(fake, flt):
    return ok(fake, "POST", "/collections/docs/points/count", {"filter": flt, "exact": True})["count"]


def ids(fake, flt):
    r = ok(fake, "POST", "/collections/docs/points/scroll", {"filter": flt, "limit": 100})
    return [p["id"] for p in r["points"]]


@pytest.mark.parametrize("flt,want", [
    ({"must": {"key": "city", "match": {"value": "Lima"}}}, [1, 3]),
    ({"must": [{"key": "city", "match": {"value": "Lima"}}, {"key": "n", "range": {"gt": 1}}]},
     [3]),
    ({"should": [{"key": "city", "match": {"value": "Cusco"}},
                 {"key": "city", "match": {"value": "Puno"}}]},
     [2, "a0000000-0000-0000-0000-000000000001"]),
    ({"must_not": [{"key": "city", "match": {"value": "Lima"}}]},
     [2, 4, 5, "a0000000-0000-0000-0000-000000000001"]),
    ({"must": {"key": "city", "match": {"any": ["Cusco", "Arequipa"]}}}, [2, 4]),
    ({"must": {"key": "city", "match": {"except": ["Lima", "Cusco"]}}},
     [4, 5, "a0000000-0000-0000-0000-000000000001"]),
    ({"must": {"key": "tags", "match": {"value": "b"}}}, [1, 2]),  # any element of an array
    ({"must": {"key": "meta.lang", "match": {"value": "es"}}}, [1, 3]),  # dotted key
    ({"must": {"key": "items[].k", "match": {"value": "y"}}}, [1]),
    ({"must": {"key": "n", "range": {"gte": 5, "lte": 7.5}}}, [2, 4]),
    ({"must": {"key": "n", "range": {"lt": 3}}}, [1]),
    ({"must": {"key": "flag", "match": {"value": True}}}, [4]),
    ({"must": {"has_id": [2, "A0000000-0000-0000-0000-000000000001", 99]}},
     [2, "a0000000-0000-0000-0000-000000000001"]),
    ({"must": {"is_empty": {"key": "tags"}}},
     [3, 4, 5, "a0000000-0000-0000-0000-000000000001"]),
    ({"must": {"is_null": {"key": "nothing"}}}, [3]),
    ({"must": [{"must_not": {"key": "city", "match": {"value": "Lima"}}},
               {"should": [{"key": "n", "range": {"gt": 6}}, {"has_id": [5]}]}]}, [4, 5]),
    ({"must": {"nested": {"key": "items", "filter": {"must": [
        {"key": "k", "match": {"value": "x"}}, {"key": "v", "match": {"value": 2}}]}}}}, [2]),
    ({"min_should": {"conditions": [{"key": "city", "match": {"value": "Lima"}},
                                    {"key": "tags", "match": {"value": "a"}},
                                    {"key": "n", "range": {"lt": 2}}], "min_count": 2}}, [1]),
    ({"must": {"key": "missing", "match": {"value": 1}}}, []),
    ({}, [1, 2, 3, 4, 5, "a0000000-0000-0000-0000-000000000001"]),
])
def test_filters(fake, docs, flt, want):
    assert ids(fake, flt) == want  # scroll orders by id: numbers, then UUIDs
    assert count(fake, flt) == len(want)


def test_bad_filter_is_400(fake, docs):
    err(fake, "POST", "/collections/docs/points/count", {"filter": {"must": {"key": "x"}}})
    err(fake, "POST", "/collections/docs/points/count", {"filter": {"bogus": []}})
    err(fake, "POST", "/collections/docs/points/count",
        {"filter": {"must": {"key": "city", "geo_radius": {}}}})


def test_scroll_pages(fake, docs):
    seen, off, pages = [], None, 0
    while True:
        body = {"limit": 2}
        if off is not None:
            body["offset"] = off
        r = ok(fake, "POST", "/collections/docs/points/scroll", body)
        assert all("payload" in p or p["id"] == 5 for p in r["points"])  # with_payload: true
        assert all("vector" not in p for p in r["points"])
        seen += [p["id"] for p in r["points"]]
        off = r["next_page_offset"]
        pages += 1
        if off is None:
            break
    assert seen == [1, 2, 3, 4, 5, "a0000000-0000-0000-0000-000000000001"] and pages == 3
    r = ok(fake, "POST", "/collections/docs/points/scroll",
           {"limit": 1, "with_payload": ["city"], "with_vector": True})
    assert r["points"][0]["payload"] == {"city": "Lima"} and r["points"][0]["vector"]
    r = ok(fake, "POST", "/collections/docs/points/scroll", {"with_payload": False})
    assert len(r["points"]) == 6 and all("payload" not in p for p in r["points"])
    assert r["next_page_offset"] is None


def test_delete_by_ids_and_filter(fake):
    create(fake, "del", 2)
    upsert(fake, "del", [{"id": i, "vector": [1, i], "payload": {"g": i % 2}} for i in range(10)])
    r = ok(fake, "POST", "/collections/del/points/delete?wait=true", {"points": [0, 1, 42]})
    assert r["status"] == "completed"
    assert ok(fake, "POST", "/collections/del/points/count", {})["count"] == 8
    ok(fake, "POST", "/collections/del/points/delete",
       {"filter": {"must": [{"key": "g", "match": {"value": 0}}]}})
    r = ok(fake, "POST", "/collections/del/points/scroll", {})
    assert [p["id"] for p in r["points"]] == [3, 5, 7, 9]
    err(fake, "POST", "/collections/del/points/delete", {"nothing": 1})


# --- keyword indexes: the same answers as a full scan -------------------------------------------

def same_answers(fake, a, b, flt, dims):
    """count, scroll, search and query of a filter give the same on collections a and b."""
    res = []
    for name in (a, b):
        base = "/collections/%s/points/" % name
        r = [ok(fake, "POST", base + "count", {"filter": flt, "exact": True})["count"],
             ok(fake, "POST", base + "scroll", {"filter": flt, "limit": 1000})["points"],
             ok(fake, "POST", base + "scroll", {"filter": flt, "limit": 3, "offset": 5})]
        r.append(ok(fake, "POST", base + "search",
                    {"vector": [0.5] * dims, "limit": 7, "filter": flt, "with_payload": True}))
        r.append(ok(fake, "POST", base + "query", {"limit": 4, "filter": flt})["points"])
        r.append(ok(fake, "POST", base + "query",
                    {"query": [1] + [0] * (dims - 1), "limit": 5, "filter": flt})["points"])
        for p in r[3] + r[4] + r[5]:
            del p["version"]  # operation ids: the index requests count as operations
        res.append(r)
    assert res[0] == res[1], flt
    return res[0][0]


def kw_filters(rnd, tenants, tickets):
    t, k = rnd.choice(tenants), rnd.choice(tickets)
    branch = lambda t, k, n: {"must": [{"key": "tenant_id", "match": {"value": t}},  # noqa: E731
                                       {"key": "ticket_id", "match": {"value": k}},
                                       {"key": "chunk_index", "range": {"gte": n}}]}
    return [
        {"must": [{"key": "tenant_id", "match": {"value": t}}]},
        {"must": [{"key": "tenant_id", "match": {"value": t}},
                  {"key": "ticket_id", "match": {"value": k}}]},
        {"should": [branch(rnd.choice(tenants), rnd.choice(tickets), rnd.randrange(4))
                    for _ in range(rnd.randrange(1, 6))]},
        {"should": [{"key": "ticket_id", "match": {"value": k}},
                    {"key": "tags", "match": {"value": "red"}}]},  # tags is not indexed: a scan
        {"must": {"key": "ticket_id", "match": {"any": [k, rnd.choice(tickets), "none"]}}},
        {"must": {"key": "ticket_id", "match": {"value": "no-such-ticket"}}},
        {"must": [{"key": "tenant_id", "match": {"value": t}}],
         "must_not": [{"key": "chunk_index", "match": {"value": 0}}]},
        {"must": [{"key": "tenant_id", "match": {"value": 7}}]},  # an integer: the scan
        {"must": [{"key": "owner.name", "match": {"value": t}}]},  # an indexed dotted key
        {"must": [{"key": "labels", "match": {"value": k}}]},  # an indexed array of strings
        {"must": [{"must": [{"key": "tenant_id", "match": {"value": t}}]},
                  {"should": [{"key": "chunk_index", "range": {"lt": 2}}]}]},
        {"should": [{"key": "tenant_id", "match": {"value": t}}], "min_should": {
            "conditions": [{"key": "chunk_index", "match": {"value": 1}}], "min_count": 1}},
        {"must": {"key": "ticket_id", "match": {"except": [k]}}},
        {"must": {"key": "ticket_id", "match": {"text": k[:3]}}},
        {"must": {"is_empty": {"key": "ticket_id"}}},
        {"must": {"has_id": [1, 2, 3]}},
    ]


def test_keyword_index_answers_like_a_scan(fake):
    dims = 4
    rnd = random.Random(8)
    create(fake, "kw_idx", dims)
    create(fake, "kw_scan", dims)
    ok(fake, "PUT", "/collections/kw_idx/index", {"field_name": "tenant_id", "field_schema": "keyword"})
    tenants = ["t%d" % i for i in range(3)]
    tickets = ["k%02d" % i for i in range(15)]

    def payload():
        t, k = rnd.choice(tenants), rnd.choice(tickets)
        p = {"tenant_id": t, "ticket_id": k, "chunk_index": rnd.randrange(5),
             "owner": {"name": t}, "labels": [k, rnd.choice(tickets)],
             "tags": rnd.sample(["red", "blue", "green"], rnd.randrange(3))}
        if rnd.random() < 0.1:
            p["tenant_id"] = rnd.choice([7, None, [t, "x"], {"t": t}])  # not all strings
        if rnd.random() < 0.05:
            del p["ticket_id"]
        return p

    def both(method, path, body):
        assert ok(fake, method, path % "kw_idx", body) == ok(fake, method, path % "kw_scan", body) \
            or path.endswith("points") or "delete" in path

    for step in range(30):
        # upserts that add points and overwrite others (their payload changes), ids and UUIDs
        pts = []
        for _ in range(rnd.randrange(1, 25)):
            i = rnd.randrange(120)
            pid = i if i % 3 else str(uuid.UUID(int=i))
            pts.append({"id": pid, "vector": [rnd.uniform(-1, 1) for _ in range(dims)],
                        "payload": payload() if rnd.random() < 0.9 else None})
        for name in ("kw_idx", "kw_scan"):
            upsert(fake, name, pts)
        if step == 3:  # indexes made after points exist, on paths and arrays
            for f in ("ticket_id", "owner.name", "labels", "chunk_index"):
                ok(fake, "PUT", "/collections/kw_idx/index",
                   {"field_name": f, "field_schema": "keyword" if f != "chunk_index" else "integer"})
        if step == 20:  # a dropped index and a re-typed one: back to the scan for them
            ok(fake, "DELETE", "/collections/kw_idx/index/labels")
            ok(fake, "PUT", "/collections/kw_idx/index",
               {"field_name": "owner.name", "field_schema": {"type": "integer"}})
        if step == 25:
            ok(fake, "PUT", "/collections/kw_idx/index", {"field_name": "labels"})  # keyword
        if rnd.random() < 0.4:
            gone = [rnd.randrange(120) for _ in range(5)]
            for name in ("kw_idx", "kw_scan"):
                ok(fake, "POST", "/collections/%s/points/delete" % name, {"points": gone})
        for flt in kw_filters(rnd, tenants, tickets):
            same_answers(fake, "kw_idx", "kw_scan", flt, dims)
        if step % 3 == 2:  # the embedder's delete: a should over per-ticket musts
            flt = kw_filters(rnd, tenants, tickets)[2]
            for name in ("kw_idx", "kw_scan"):
                ok(fake, "POST", "/collections/%s/points/delete?wait=true" % name, {"filter": flt})
            assert same_answers(fake, "kw_idx", "kw_scan", flt, dims) == 0
            assert same_answers(fake, "kw_idx", "kw_scan", {}, dims) > 0
    schema = ok(fake, "GET", "/collections/kw_idx")["payload_schema"]
    assert set(schema) == {"tenant_id", "ticket_id", "owner.name", "labels", "chunk_index"}
    assert schema["owner.name"]["data_type"] == "integer"


def test_keyword_index_follows_overwrites_and_deletes(fake):
    create(fake, "kw_ow", 2)
    ok(fake, "PUT", "/collections/kw_ow/index", {"field_name": "t", "field_schema": "keyword"})
    upsert(fake, "kw_ow", [{"id": i, "vector": [1, i], "payload": {"t": "a"}} for i in range(6)])

    def scroll(v):
        r = ok(fake, "POST", "/collections/kw_ow/points/scroll",
               {"filter": {"must": {"key": "t", "match": {"value": v}}}})
        return [p["id"] for p in r["points"]]
    upsert(fake, "kw_ow", [{"id": 2, "vector": [1, 2], "payload": {"t": "b"}},
                           {"id": 4, "vector": [1, 4]}])  # no payload: out of every value
    assert scroll("a") == [0, 1, 3, 5] and scroll("b") == [2]
    ok(fake, "POST", "/collections/kw_ow/points/delete", {"points": [0]})  # 5 moves into 0's place
    assert scroll("a") == [1, 3, 5]
    ok(fake, "POST", "/collections/kw_ow/points/delete",
       {"filter": {"should": [{"must": [{"key": "t", "match": {"value": "a"}},
                                        {"key": "t", "match": {"any": ["a", "z"]}}]},
                              {"key": "t", "match": {"value": "zz"}}]}})
    assert scroll("a") == [] and scroll("b") == [2]
    r = ok(fake, "POST", "/collections/kw_ow/points/scroll", {})
    assert [p["id"] for p in r["points"]] == [2, 4]
    assert ok(fake, "GET", "/collections/kw_ow")["payload_schema"]["t"]["points"] == 1


# --- upsert: vectors parsed without jansson, the same floats and errors -------------------------

def raw_upsert(fake, name, text):
    """PUT a body given as text: (status, parsed answer)."""
    st, hdrs, data = http("PUT", fake.port, "/collections/%s/points?wait=true" % name,
                          text.encode(), AUTH)
    return st, json.loads(data)


def test_upsert_vector_numbers_are_parsed_exactly(fake):
    nums = ["0", "-0", "-0.0", "1", "-7", "0.1", "0.30000000000000004", "1e-30", "-2.5E+3",
            "3.4028235e38", "1e39", "-1e39", "1.17549435e-38", "1e-45", "4.9e-324",
            "123456789012345678", "0.123456789012345678901234567890", "9007199254740993.0",
            "1.5e300", "2.2250738585072014e-308", "0.000001", "1e22", "1e23", "7e-23",
            "0.0123456789", "-0.0512345678", "1.23456789e-05"]
    dims = len(nums)
    create(fake, "fastvec", dims, "Dot")
    vec = "[ %s ]" % " ,\n".join(nums)
    st, r = raw_upsert(fake, "fastvec", '{"points": [ {"id": 1, "vector": %s,'
                       ' "payload": {"vector": [1, 2], "s": "\\"vector\\": [3]"}} ]}' % vec)
    assert st == 200, r
    # the batch form goes through jansson: the reference
    st, r = raw_upsert(fake, "fastvec", '{"batch": {"ids": [2], "vectors": [%s]}}' % vec)
    assert st == 200, r
    got = ok(fake, "POST", "/collections/fastvec/points", {"ids": [1, 2], "with_vector": True})
    assert got[0]["vector"] == got[1]["vector"]
    assert [math.copysign(1, x) for x in got[0]["vector"][:3]] == [1, 1, -1]  # -0 is 0, -0.0 is not
    assert got[0]["payload"] == {"vector": [1, 2], "s": '"vector": [3]'}
    # escaped keys and the named form go the ordinary way and give the same
    st, r = raw_upsert(fake, "fastvec", '{"points": [{"id": 3, "vect\\u006fr": %s},'
                       ' {"id": 4, "vector": {"": %s}}]}' % (vec, vec))
    assert st == 200, r
    got = ok(fake, "POST", "/collections/fastvec/points", {"ids": [1, 3, 4], "with_vector": True})
    assert got[0]["vector"] == got[1]["vector"] == got[2]["vector"]
    # random numbers in the forms clients print: each vector both ways, bit for bit
    rnd = random.Random(5)
    forms = ["%.9g", "%.17g", "%.3e", "%.12f", "%d", "%.1f"]
    texts = []
    for _ in range(60):
        xs = []
        for _ in range(dims):
            f = rnd.choice(forms)
            x = rnd.choice([rnd.gauss(0, 0.05), rnd.uniform(-1e6, 1e6), rnd.gauss(0, 1e-20)])
            xs.append(f % (int(x) if f == "%d" else x))
        texts.append("[%s]" % ",".join(xs))
    ids_ = list(range(100, 160))
    st, r = raw_upsert(fake, "fastvec", '{"points": [%s]}' % ",".join(
        '{"id": %d, "vector": %s}' % (i, t) for i, t in zip(ids_, texts)))
    assert st == 200, r
    st, r = raw_upsert(fake, "fastvec", '{"batch": {"ids": %s, "vectors": [%s]}}' % (
        json.dumps([i + 100 for i in ids_]), ",".join(texts)))
    assert st == 200, r
    got = ok(fake, "POST", "/collections/fastvec/points",
             {"ids": ids_ + [i + 100 for i in ids_], "with_vector": True})
    assert len(got) == 120
    assert [p["vector"] for p in got[:60]] == [p["vector"] for p in got[60:]]


def test_upsert_fast_path_errors(fake):
    create(fake, "fastbad", 3)
    cases = [
        ('{"points": [{"id": 1, "vector": [1, 2]}]}', 400,
         "Wrong input: Vector dimension error: expected dim: 3, got 2"),
        ('{"points": [{"id": 1, "vector": []}]}', 400,
         "Wrong input: Vector dimension error: expected dim: 3, got 0"),
        ('{"points": [{"id": 1, "vector": [1, 2, 3]}, {"id": 2, "vector": [1, "2", 3]}]}', 400,
         "Format error in JSON body: invalid type: expected f32"),
        ('{"points": [{"id": 1, "vector": [1, 2, 3]}, {"id": 2, "vector": 5}]}', 400,
         "Format error in JSON body: data did not match any variant of untagged enum "
         "VectorStruct"),
        ('{"points": [{"id": 1, "vector": [1, 2, null]}]}', 400,
         "Format error in JSON body: invalid type: expected f32"),
        ('{"points": [{"id": -1, "vector": [1, 2, 3]}]}', 400, "not a valid point ID"),
        ('{"points": [{"vector": [1, 2, 3]}]}', 400, "missing field `id`"),
    ]
    for text, status, msg in cases:
        st, r = raw_upsert(fake, "fastbad", text)
        assert st == status and msg in r["status"]["error"], (text, r)
    for text in ('{"points": [{"id": 1, "vector": [1, 2, 3], "vector": [1, 2, 3]}]}',
                 '{"points": [{"id": 1, "vector": [1, 2, 3]}], "points": []}',
                 '{"points": [{"id": 1, "vector": [1, 2, 3]}]',
                 '{"points": [{"id": 1, "vector": [1, 2, 3,]}]}',
                 '{"points": [{"id": 1, "vector": [01, 2, 3]}]}',
                 '{"points": [{"id": 1, "vector": [1, 2, 3]}]} x',
                 '{"points": [{"id": 1, "vector": [1, 2, 99999999999999999999]}]}',
                 '{"points": [{"id": 1, "vector": [1, 2, 1e999]}]}'):
        st, r = raw_upsert(fake, "fastbad", text)
        assert st == 400 and r["status"]["error"].startswith("Format error in JSON body"), \
            (text, r)
    assert ok(fake, "GET", "/collections/fastbad")["points_count"] == 0


# --- aliases ------------------------------------------------------------------------------------

def test_aliases_switch_atomically(fake):
    create(fake, "blue", 2)
    create(fake, "green", 2)
    upsert(fake, "blue", [{"id": 1, "vector": [1, 0], "payload": {"c": "blue"}}])
    upsert(fake, "green", [{"id": 1, "vector": [1, 0], "payload": {"c": "green"}}])
    ok(fake, "POST", "/collections/aliases", {"actions": [
        {"create_alias": {"collection_name": "blue", "alias_name": "live"}}]})

    def live():
        r = ok(fake, "POST", "/collections/live/points/query",
               {"query": [1, 0], "limit": 1, "with_payload": True})
        return r["points"][0]["payload"]["c"]
    assert live() == "blue"
    assert {"alias_name": "live", "collection_name": "blue"} in \
        ok(fake, "GET", "/aliases")["aliases"]
    # one failing action: nothing applied
    err(fake, "POST", "/collections/aliases", {"actions": [
        {"delete_alias": {"alias_name": "live"}},
        {"create_alias": {"collection_name": "nope", "alias_name": "live"}}]}, 404)
    assert live() == "blue"
    # blue/green switch in one request
    ok(fake, "POST", "/collections/aliases", {"actions": [
        {"delete_alias": {"alias_name": "live"}},
        {"create_alias": {"collection_name": "green", "alias_name": "live"}}]})
    assert live() == "green"
    assert ok(fake, "GET", "/collections/green/aliases") == \
        {"aliases": [{"alias_name": "live", "collection_name": "green"}]}
    assert ok(fake, "GET", "/collections/blue/aliases") == {"aliases": []}
    # aliases work for writes and info too
    upsert(fake, "live", [{"id": 2, "vector": [0, 1]}])
    assert ok(fake, "GET", "/collections/live")["points_count"] == 2
    ok(fake, "POST", "/collections/aliases", {"actions": [
        {"rename_alias": {"old_alias_name": "live", "new_alias_name": "prod"}}]})
    err(fake, "GET", "/collections/live", status=404)
    assert ok(fake, "GET", "/collections/prod/exists") == {"exists": True}
    err(fake, "POST", "/collections/aliases",
        {"actions": [{"delete_alias": {"alias_name": "live"}}]}, 404)
    err(fake, "PUT", "/collections/prod", {"vectors": {"size": 2, "distance": "Cosine"}}, 409)
    ok(fake, "DELETE", "/collections/green")  # drops its aliases
    assert all(a["alias_name"] != "prod" for a in ok(fake, "GET", "/aliases")["aliases"])


# --- faults and admin ---------------------------------------------------------------------------

def faults(fake, **kw):
    st, r, _ = call(fake, "POST", "/admin/faults", kw)
    assert st == 200, r
    return r


def test_fault_error_rate_and_reset(fake):
    try:
        assert faults(fake, error_rate=1.0)["error_rate"] == 1.0
        for _ in range(3):
            msg = err(fake, "GET", "/collections", status=503)
            assert "injected" in msg
        faults(fake, error_status=429)
        st, r, hdrs = call(fake, "GET", "/collections")
        assert st == 429 and hdrs.get("retry-after") == "1" and "error" in r["status"]
        st, r, _ = call(fake, "GET", "/admin/faults")  # admin is never faulted
        assert st == 200 and r["error_status"] == 429
    finally:
        faults(fake, error_rate=0, error_status=503)
    ok(fake, "GET", "/collections")


def test_fault_latency(fake):
    t = time.time()
    ok(fake, "GET", "/collections")
    base = time.time() - t
    faults(fake, latency_ms=300)
    try:
        t = time.time()
        ok(fake, "GET", "/collections")
        assert time.time() - t >= 0.3
    finally:
        faults(fake, latency_ms=0)
    t = time.time()
    ok(fake, "GET", "/collections")
    assert time.time() - t < 0.25 + base


def test_fault_malformed_and_drop(fake):
    faults(fake, malformed_rate=1.0)
    try:
        st, _, data = http("GET", fake.port, "/collections", headers=AUTH)
        assert st == 200
        with pytest.raises(ValueError):
            json.loads(data)
    finally:
        faults(fake, malformed_rate=0)
    faults(fake, drop_rate=1.0)
    try:
        with pytest.raises((httpclient.HTTPException, ConnectionError)):
            http("GET", fake.port, "/collections", headers=AUTH, timeout=5)
    finally:
        faults(fake, drop_rate=0)
    ok(fake, "GET", "/collections")


def test_fault_partial_rate(fake):
    faults(fake, error_rate=0.5)
    try:
        codes = [call(fake, "GET", "/collections")[0] for _ in range(60)]
    finally:
        faults(fake, error_rate=0)
    assert set(codes) == {200, 503} and 10 < codes.count(503) < 50


def test_admin_validation_and_stats(fake):
    st, _, _ = call(fake, "POST", "/admin/faults", {"error_rate": 2})
    assert st == 400
    st, _, _ = call(fake, "POST", "/admin/faults", {"bogus": 1})
    assert st == 400
    create(fake, "counted", 2)
    upsert(fake, "counted", [{"id": i, "vector": [1, i]} for i in range(7)])
    st, s, _ = call(fake, "GET", "/admin/stats")
    assert st == 200
    assert s["collections"]["counted"]["points_count"] == 7
    assert s["requests"]["PUT /collections/{name}/points"] >= 1
    assert s["requests_total"] >= sum(v for k, v in s["requests"].items()) - 1
    assert s["faults"]["error"] >= 4 and s["faults"]["drop"] >= 1
