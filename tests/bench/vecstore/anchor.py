#!/usr/bin/env python3
"""numpy exact cosine top-10 over the same data as bench-vecstore (the anchor).

    anchor.py DIR N DIMS NQUERIES [TIMED]
Reads DIR/m.f32 (N x DIMS, tenant A's rows in insertion order), DIR/q.f32 and DIR/ids.u32 (the C
store's top-10 row numbers). Normalizes the rows once (not timed), then times: one query at a
time (matrix-vector, argpartition, sort of the 10) and batches of 8 and 32 (matrix-matrix).
TIMED (default: all) limits the queries timed (numpy on Debian's reference BLAS is slow).
Prints "key value" lines, including the agreement of its top-10 with the C store's.
"""
import sys
import time

import numpy as np

K = 10


def topk(s):
    idx = np.argpartition(-s, K)[:K]
    return idx[np.argsort(-s[idx], kind="stable")]


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, max(0, int(np.ceil(p * len(v))) - 1))]


def main():
    d, n, dims, nq = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    m = np.fromfile(f"{d}/m.f32", dtype=np.float32).reshape(n, dims)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    qs = np.fromfile(f"{d}/q.f32", dtype=np.float32).reshape(nq, dims)
    cids = np.fromfile(f"{d}/ids.u32", dtype=np.uint32).reshape(nq, K)
    if len(sys.argv) > 5:
        nq = min(nq, int(sys.argv[5]))
    print("numpy_version", np.__version__)
    print("np_queries", nq)

    lat, agree = [], 0
    t0 = time.perf_counter()
    for i in range(nq):
        t = time.perf_counter()
        q = qs[i] / np.linalg.norm(qs[i])
        ids = topk(m @ q)
        lat.append(time.perf_counter() - t)
        agree += len(set(ids.tolist()) & set(cids[i].tolist()))
    secs = time.perf_counter() - t0
    print("np_single_qps %.1f" % (nq / secs))
    print("np_single_p50_ms %.3f" % (pct(lat, 0.50) * 1e3))
    print("np_single_p99_ms %.3f" % (pct(lat, 0.99) * 1e3))
    print("agreement_at10 %.4f" % (agree / (nq * K)))

    for b in (8, 32):
        lat = []
        t0 = time.perf_counter()
        for i in range(0, nq, b):
            t = time.perf_counter()
            q = qs[i : i + b]
            q = q / np.linalg.norm(q, axis=1, keepdims=True)
            s = q @ m.T
            for row in s:
                topk(row)
            lat.append(time.perf_counter() - t)
        secs = time.perf_counter() - t0
        print("np_many%d_qps %.1f" % (b, nq / secs))
        print("np_many%d_p50_ms %.3f" % (b, pct(lat, 0.50) * 1e3))
        print("np_many%d_p99_ms %.3f" % (b, pct(lat, 0.99) * 1e3))


if __name__ == "__main__":
    main()
