#!/usr/bin/env python3
"""bench-rag's check that taina-rag and the peer answer alike: /v1/search top-5 (ticket_id,
chunk_index) lists for every question, from both.

    agree.py RAG_PORT PEER_PORT API_KEY QUESTIONS  ->  "agree A of Q"
"""
import http.client
import json
import sys


def top(port, key, q):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("POST", "/v1/search", json.dumps({"question": q, "top_k": 5}),
              {"Content-Type": "application/json", "Authorization": "Bearer " + key})
    r = c.getresponse()
    body = json.loads(r.read())
    if r.status != 200:
        sys.exit("agree: %d %s" % (r.status, body))
    return [(x["ticket_id"], x["chunk_index"]) for x in body["results"]]


def main():
    rport, pport, key = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    with open(sys.argv[4], encoding="utf-8") as f:
        qs = [line.rstrip("\n") for line in f if line.strip()]
    same = sum(top(rport, key, q) == top(pport, key, q) for q in qs)
    print("agree %d of %d" % (same, len(qs)))


if __name__ == "__main__":
    main()
