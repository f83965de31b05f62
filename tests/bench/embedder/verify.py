#!/usr/bin/env python3
"""Check a run's output: the Qdrant fake holds N points and tickets.embedded N records from
offset 0 (devstack drops the oldest records of a partition over about 5 MB).

    verify.py BOOTSTRAP QDRANT_PORT N  ->  "verified points P embedded E max_partition_records M"
"""
import json
import sys
import urllib.request

from confluent_kafka import Consumer, TopicPartition

TOPIC = "tickets.embedded"


def main():
    bootstrap, qport, want = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    req = urllib.request.Request(
        "http://127.0.0.1:%d/collections/taina-chunks/points/count" % qport,
        data=b'{"exact": true}', headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        points = json.load(r)["result"]["count"]
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-verify"})
    parts = c.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions
    have, most = 0, 0
    for part in parts:
        lo, hi = c.get_watermark_offsets(TopicPartition(TOPIC, part), timeout=10)
        if lo != 0:
            sys.exit("verify: %s[%d] starts at offset %d: devstack dropped records (lower "
                     "BENCH_N)" % (TOPIC, part, lo))
        have += hi
        most = max(most, hi)
    c.close()
    print("verified points %d embedded %d max_partition_records %d" % (points, have, most))
    if points != want or have < want:
        sys.exit("verify: want %d points and at least %d records on %s" % (want, want, TOPIC))


if __name__ == "__main__":
    main()
