#!/usr/bin/env python3
"""Micro-benchmark of taina-fake-qdrant on the embedder's traffic (not part of the suite).

Starts the fake (build/bin/taina-fake-qdrant, or the binary given with --bin) on a free port and
replays what taina-embedder sends per batch: a keyword index on tenant_id and ticket_id, then
batches of one upsert of 64 points (384 floats printed "%.9g", the embedder's payload with
~1.2 KB of text) and one delete by filter (a should over 16 per-ticket musts: tenant_id and
ticket_id match, chunk_index range gte 4). It prints the mean and p50/p95 time per request of
each kind, by quarter of the run (the collection grows), plus one count and one filtered
search on the full collection.

    python3 tests/fakes/qdrant/bench_fake.py [--bin PATH] [--batches 160]
"""
import argparse
import http.client
import json
import os
import random
import statistics
import struct
import subprocess
import sys
import time
import uuid

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "support"))
from ports import free_port  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(TOP, "build", "bin", "taina-fake-qdrant"))
    ap.add_argument("--batches", type=int, default=160)
    ap.add_argument("--dims", type=int, default=384)
    a = ap.parse_args()
    port = free_port()
    env = dict(os.environ, TAINA_HTTP_PORT=str(port), TAINA_HTTP_BIND="127.0.0.1",
               TAINA_HTTP_MAX_BODY="64MiB", TAINA_LOG_LEVEL="warn")
    proc = subprocess.Popen([a.bin], env=env, stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/ready")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        hdr = {"Content-Type": "application/json"}

        def call(method, path, body):
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            t = time.perf_counter()
            conn.request(method, path, data, hdr)
            r = conn.getresponse()
            out = r.read()
            dt = time.perf_counter() - t
            assert r.status == 200, (r.status, out[:200])
            return dt, json.loads(out)

        call("PUT", "/collections/b", {"vectors": {"size": a.dims, "distance": "Cosine"}})
        for f in ("tenant_id", "ticket_id"):
            call("PUT", "/collections/b/index?wait=true",
                 {"field_name": f, "field_schema": "keyword"})
        rnd = random.Random(1)
        words = ["tramite", "licencia", "ciudad", "permit", "office", "agua", "street", "pago"]
        text = " ".join(rnd.choice(words) for _ in range(170))
        ups, dels = [], []
        ticket = 0
        for b in range(a.batches):
            pts, should = [], []
            for _ in range(16):
                tenant = "tenant-%d" % (ticket % 5)
                tid = "T-%06d" % ticket
                ticket += 1
                for k in range(4):
                    vec = ",".join("%.9g" % struct.unpack("f", struct.pack("f", rnd.gauss(0, 0.05)))[0]
                                   for _ in range(a.dims))
                    payload = {"tenant_id": tenant, "ticket_id": tid, "title": "t " + tid,
                               "lang": "es", "category": "water", "content_hash": "h" * 64,
                               "chunk_index": k, "text": text, "start": 0, "end": len(text),
                               "model": "hash-384"}
                    pts.append('{"id":"%s","vector":[%s],"payload":%s}' % (
                        uuid.uuid5(uuid.NAMESPACE_URL, "%s/%d" % (tid, k)), vec,
                        json.dumps(payload)))
                should.append({"must": [{"key": "tenant_id", "match": {"value": tenant}},
                                        {"key": "ticket_id", "match": {"value": tid}},
                                        {"key": "chunk_index", "range": {"gte": 4}}]})
            body = ('{"points":[%s]}' % ",".join(pts)).encode()
            ups.append(call("PUT", "/collections/b/points?wait=true", body)[0])
            dels.append(call("POST", "/collections/b/points/delete?wait=true",
                             {"filter": {"should": should}})[0])
        q = len(ups) // 4 or 1
        print("fake: %s, %d batches of 64 points x %d dims, %d KB per upsert body"
              % (a.bin, a.batches, a.dims, len(body) // 1024))
        for name, xs in (("upsert", ups), ("delete by filter", dels)):
            quarters = " ".join("%.2f" % (statistics.mean(xs[i:i + q]) * 1e3)
                                for i in range(0, len(xs), q))
            s = sorted(xs)
            print("  %-17s mean %6.2f ms  p50 %6.2f  p95 %6.2f  by quarter: %s"
                  % (name, statistics.mean(xs) * 1e3, s[len(s) // 2] * 1e3,
                     s[int(len(s) * 0.95)] * 1e3, quarters))
        flt = {"must": [{"key": "tenant_id", "match": {"value": "tenant-1"}},
                        {"key": "ticket_id", "match": {"value": "T-000006"}}]}
        dt, r = call("POST", "/collections/b/points/count", {"filter": flt, "exact": True})
        print("  count (indexed)   %6.2f ms (%d)" % (dt * 1e3, r["result"]["count"]))
        dt, r = call("POST", "/collections/b/points/count",
                     {"filter": {"must": [{"key": "chunk_index", "match": {"value": 1}}]}})
        print("  count (scan)      %6.2f ms (%d)" % (dt * 1e3, r["result"]["count"]))
        dt, r = call("POST", "/collections/b/points/search",
                     {"vector": [0.1] * a.dims, "limit": 5, "filter": flt})
        print("  search (indexed)  %6.2f ms (%d hits)" % (dt * 1e3, len(r["result"])))
    finally:
        proc.terminate()
        rc = proc.wait(30)
    if rc != 0:
        sys.exit("the fake exited %d" % rc)


if __name__ == "__main__":
    main()
