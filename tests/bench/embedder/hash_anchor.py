#!/usr/bin/env python3
"""The anchor of bench-embedder: chunks/s of the same feature hashing in pure Python (the
peer's hash_embed, tests/bench/peers/embedder_peer.py), one thread, on the same corpus.

    hash_anchor.py CORPUS [CHUNKS] [SECONDS]
      -> "python_chunks_per_s_cpu R python_chunks_per_s_wall W chunks K features_per_chunk F"

Embeds the first CHUNKS (default 300) lines once, then whole passes until SECONDS (default 2)
of wall time are up; R counts the thread's CPU time (time.thread_time), W the wall time.
"""
import math
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "peers"))
from embedder_peer import DIMS, features, hash_embed  # noqa: E402


def main():
    path = sys.argv[1]
    want = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    secs = float(sys.argv[3]) if len(sys.argv) > 3 else 2.0
    with open(path, encoding="utf-8") as f:
        chunks = [line.rstrip("\n") for _, line in zip(range(want), f)]
    feats = sum(len(features(c)) for c in chunks) / len(chunks)
    for c in chunks:  # warm up, and check
        v = hash_embed(c, DIMS)
        if abs(math.fsum(x * x for x in v) - 1.0) > 1e-6:
            sys.exit("hash_anchor: a vector without unit length")
    n = 0
    w0, c0 = time.perf_counter(), time.thread_time()
    while True:
        for c in chunks:
            hash_embed(c, DIMS)
        n += len(chunks)
        w1 = time.perf_counter()
        if w1 - w0 >= secs:
            break
    c1 = time.thread_time()
    print("python_chunks_per_s_cpu %.0f python_chunks_per_s_wall %.0f chunks %d "
          "features_per_chunk %.0f" % (n / (c1 - c0), n / (w1 - w0), len(chunks), feats))


if __name__ == "__main__":
    main()
