"""taina-replay on devstack and the Qdrant fake, checked with an independent Kafka client and the
fake's REST API: copy (keys, headers, taina-replay-of, partitions kept or by key, offset and time
ranges, tenant filter, dry run); dlq re-drive (DLQ headers stripped, --reason, source topic);
lag and reset-offsets (table and JSON, dry run, refused while the group has a member, executed
once it stopped: the group's committed offsets); reindex into a new collection with the alias
switched while rag keeps answering (latest record wins, deleted and trimmed chunks stay out,
payloads and vectors equal the embedder's, and rag is served from the new collection after);
usage errors exit 2."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from taina_harness import (BIN, KAFKA_FAST_GROUP, MULT, TOP, Service, TempDir,  # noqa: E402
                           consume, http, producer, wait_for)

REPLAY = os.path.join(BIN, "taina-replay")


class Devstack:
    """devstack with the suite's topics plus two scratch topics of 6 and 4 partitions."""

    def __init__(self, tmp):
        topics = json.load(open(os.path.join(TOP, "schemas", "topics.json")))
        for name, n in (("replay.six", 6), ("replay.four", 4)):
            topics["topics"].append({"name": name, "partitions": n, "replication_factor": 3,
                                     "cleanup_policy": "delete", "retention_ms": -1})
        tfile = tmp.file("topics.json", json.dumps(topics))
        bfile = tmp.file("bootstrap")
        self.log = open(tmp.file("devstack.log"), "w")
        self.proc = subprocess.Popen([os.path.join(BIN, "taina-devstack"),
                                      "--devstack-bootstrap-file", bfile,
                                      "--devstack-topics-file", tfile],
                                     stdout=subprocess.DEVNULL, stderr=self.log, cwd=TOP)
        deadline = time.time() + 15 * MULT
        while not (os.path.exists(bfile) and os.path.getsize(bfile)):
            assert self.proc.poll() is None and time.time() < deadline, "devstack did not start"
            time.sleep(0.05)
        self.bootstrap = open(bfile).read().strip()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10 * MULT)
        self.log.close()


def replay(stack, *args, env=None):
    e = dict(os.environ, TAINA_KAFKA_BROKERS=stack["ds"].bootstrap,
             TAINA_QDRANT_URL="http://127.0.0.1:%d" % stack["fake"].port)
    e.update(env or {})
    p = subprocess.run([REPLAY] + list(args), env=e, capture_output=True, text=True,
                       timeout=120 * MULT)
    return p.returncode, p.stdout, p.stderr


def qd(stack, method, path, body=None):
    st, _, data = http(method, stack["fake"].port, path, body,
                       {"Content-Type": "application/json"})
    return st, (json.loads(data) if data else None)


def all_points(stack, coll):
    st, r = qd(stack, "POST", "/collections/%s/points/scroll" % coll,
               {"limit": 10000, "with_payload": True, "with_vector": True})
    assert st == 200, r
    return {p["id"]: p for p in r["result"]["points"]}


def count(stack, coll):
    st, r = qd(stack, "POST", "/collections/%s/points/count" % coll, {"exact": True})
    assert st == 200, r
    return r["result"]["count"]


def enriched(ticket, nchunks=2, deleted=False, words="pasaporte renovar cita"):
    v = {"schema_version": 1, "ticket_id": ticket, "tenant_id": "default",
         "created_at": "2026-11-24T10:00:00Z", "enriched_at": "2026-11-24T10:00:01Z"}
    if deleted:
        v["deleted"] = True
        return v
    chunks, text, pos = [], "", 0
    for i in range(nchunks):
        t = "Fragmento %d sobre %s del trámite %s." % (i, words, ticket[:8])
        chunks.append({"index": i, "text": t, "start": pos, "end": pos + len(t),
                       "words": len(t.split())})
        text += t + " "
        pos += len(t) + 1
    v.update({"source": "web", "title": "Trámite " + ticket[:8], "text": text.strip(),
              "lang": "es", "lang_confidence": 0.9, "category": "passport",
              "priority": "normal", "pii": {}, "invalid_utf8": 0, "content_hash": "0" * 64,
              "chunks": chunks})
    return v


def tid(n):
    return "00000000-0000-4000-8000-%012d" % n


@pytest.fixture(scope="module")
def stack():
    tmp = TempDir("taina-0024-")
    ds = Devstack(tmp)
    fake = Service("fake-qdrant", tmp, {"TAINA_HTTP_MAX_BODY": "64MiB"})
    fake.wait_ready()
    st = {"tmp": tmp, "ds": ds, "fake": fake}
    yield st
    for s in st.get("services", []):
        s.stop()
    fake.stop()
    ds.stop()
    tmp.cleanup()


def test_usage_errors_exit_2(stack):
    assert replay(stack)[0] == 2
    assert replay(stack, "frobnicate")[0] == 2
    rc, out, _ = replay(stack, "copy", "--help")
    assert rc == 0 and "taina-replay-of" in out and "murmur2" in out
    for args in (["copy", "--from", "replay.six"],
                 ["copy", "--from", "a", "--to", "b", "--start", "yesterday"],
                 ["copy", "--from", "a", "--to", "b", "--rate", "fast"],
                 ["lag", "--group", "g", "--from", "x"],
                 ["reset-offsets", "--group", "g", "--topic", "t"],
                 ["reset-offsets", "--group", "g", "--topic", "t", "--to-earliest",
                  "--to-latest"],
                 ["reindex", "--collection", "taina-chunks"]):
        rc, _, err = replay(stack, *args)
        assert rc == 2, (args, err)
        assert "taina-replay" in err


# ---------------------------------------------------------------------------------------------
# copy

def produce_six(stack, n=60):
    """n records over replay.six: keys k0..k9, headers, JSON values of tenants a and b, with
    record timestamps one minute apart from 2026-01-01T00:00:00Z."""
    p = producer(stack["ds"].bootstrap)
    t0 = 1767225600000
    for i in range(n):
        v = {"tenant_id": "a" if i % 3 else "b", "i": i}
        p.produce("replay.six", key="k%d" % (i % 10), value=json.dumps(v),
                  headers=[("traceparent", b"00-%032x-%016x-01" % (i + 1, i + 1)),
                           ("taina-schema", b"x/1")],
                  timestamp=t0 + i * 60000)
    assert p.flush(30) == 0
    return t0


def test_copy_keeps_keys_headers_partitions_and_marks_the_source(stack):
    produce_six(stack)
    src = consume(stack["ds"].bootstrap, "replay.six", want=60)
    rc, out, err = replay(stack, "copy", "--from", "replay.six", "--to", "tickets.raw")
    assert rc == 0, err
    assert "copied 60 of 60" in out and "keeps its partition" in out
    assert "60/60 records" in err and "ETA" in err  # progress on stderr
    dst = consume(stack["ds"].bootstrap, "tickets.raw", want=60)
    assert len(dst) == 60
    by_src = {(r["partition"], r["offset"]): r for r in src}
    for r in dst:
        topic, part, off = r["headers"]["taina-replay-of"].decode().split("/")
        s = by_src[(int(part), int(off))]
        assert topic == "replay.six"
        assert r["partition"] == s["partition"]  # same partition count: partition kept
        assert (r["key"], r["value"]) == (s["key"], s["value"])
        assert r["headers"]["traceparent"] == s["headers"]["traceparent"]
        assert r["headers"]["taina-schema"] == b"x/1"
    # per-partition order kept
    for p in range(6):
        offs = [int(r["headers"]["taina-replay-of"].decode().split("/")[2])
                for r in sorted(dst, key=lambda r: r["offset"]) if r["partition"] == p]
        assert offs == sorted(offs)


def test_copy_by_key_time_range_tenant_and_dry_run(stack):
    bs = stack["ds"].bootstrap
    t0 = 1767225600000
    # minutes 10..19 inclusive, tenant a only: i in 10..19 with i % 3 != 0
    want = sorted(i for i in range(10, 20) if i % 3)
    rc, out, err = replay(stack, "copy", "--from", "replay.six", "--to", "replay.four",
                          "--start", "2026-01-01T00:10:00Z", "--end", "2026-01-01T00:19:00Z",
                          "--tenant", "a", "--dry-run")
    assert rc == 0, err
    assert "would copy %d of" % len(want) in out and "by key" in out
    time.sleep(1)
    assert consume(bs, "replay.four", idle=1.5) == []  # dry run wrote nothing
    rc, out, err = replay(stack, "copy", "--from", "replay.six", "--to", "replay.four",
                          "--start", "2026-01-01T00:10:00Z", "--end", "2026-01-01T00:19:00Z",
                          "--tenant", "a", "--rate", "200/s")
    assert rc == 0, err
    assert "copied %d of" % len(want) in out
    dst = consume(bs, "replay.four", want=len(want))
    assert sorted(json.loads(r["value"])["i"] for r in dst) == want
    # by key: one key, one partition
    part_of = {}
    for r in dst:
        assert part_of.setdefault(r["key"], r["partition"]) == r["partition"]
    # partitions and offsets: only partition 0, from offset 2
    src0 = [r for r in consume(bs, "replay.six", want=60) if r["partition"] == 0]
    rc, out, err = replay(stack, "copy", "--from", "replay.six", "--to", "replay.four",
                          "--partitions", "0", "--start", "2", "--end", "now", "--dry-run")
    assert rc == 0 and "would copy %d of %d" % (len(src0) - 2, len(src0) - 2) in out, out + err
    rc, _, err = replay(stack, "copy", "--from", "replay.six", "--to", "replay.four",
                        "--partitions", "7")
    assert rc == 1 and "6 partitions" in err
    assert t0


# ---------------------------------------------------------------------------------------------
# dlq

def test_dlq_redrive_strips_error_headers(stack):
    bs = stack["ds"].bootstrap
    p = producer(bs)
    for i, (reason, src) in enumerate([("schema", "tickets.raw"), ("json", "tickets.raw"),
                                       ("schema", "tickets.raw"),
                                       ("upstream", "tickets.enriched")]):
        p.produce("tickets.dlq", key="dead-%d" % i, value='{"n":%d}' % i,
                  headers=[("traceparent", b"00-%032x-%016x-01" % (i + 9, i + 9)),
                           ("taina-error", reason.encode()),
                           ("taina-error-detail", b"/title: required"),
                           ("taina-source-topic", src.encode()),
                           ("taina-source-partition", b"0"),
                           ("taina-source-offset", str(i).encode())])
    assert p.flush(30) == 0
    before = len(consume(bs, "tickets.raw", idle=1.5))
    rc, out, err = replay(stack, "dlq", "--reason", "schema")
    assert rc == 0, err
    assert "copied 2 of 4" in out and "2 other reason" in out
    redriven = [r for r in consume(bs, "tickets.raw", want=before + 2)
                if r["headers"].get("taina-replay-of", b"").startswith(b"tickets.dlq/")]
    assert sorted(r["key"] for r in redriven) == [b"dead-0", b"dead-2"]
    for r in redriven:
        assert not any(h.startswith("taina-error") or h.startswith("taina-source-")
                       for h in r["headers"]), r["headers"]
        assert r["headers"]["traceparent"].startswith(b"00-")
    # an enriched record failed by the embedder does not go to tickets.raw, unless asked
    rc, out, err = replay(stack, "dlq", "--reason", "upstream", "--dry-run")
    assert rc == 0 and "would copy 0 of 4" in out and "1 other source topic" in out, out


# ---------------------------------------------------------------------------------------------
# lag and reset-offsets

def test_lag_and_reset_offsets(stack, request):
    bs = stack["ds"].bootstrap
    from confluent_kafka import Consumer, TopicPartition
    group = "replay-test-group"
    conf = {"bootstrap.servers": bs, "group.id": group, "enable.auto.commit": False,
            "session.timeout.ms": 6000, "max.poll.interval.ms": 7000,
            "partition.assignment.strategy": "cooperative-sticky"}
    c = Consumer(conf)
    # A group member left open when an assertion fails keeps the interpreter from exiting.
    closed = []
    def close_member():
        if not closed:
            closed.append(True)
            c.close()
    request.addfinalizer(close_member)
    # commit: partition p at p*2 (each partition holds 10 records of k0..k9 by key)
    hw = {}
    for p in range(6):
        lo, hi = c.get_watermark_offsets(TopicPartition("replay.six", p), timeout=10)
        hw[p] = hi
    c.subscribe(["replay.six"])
    wait_for(lambda: c.poll(0.2) is not None or len(c.assignment()) == 6, what="assignment")
    c.commit(offsets=[TopicPartition("replay.six", p, min(p * 2, hw[p])) for p in range(6)],
             asynchronous=False)
    committed = {p: min(p * 2, hw[p]) for p in range(6)}
    rc, out, err = replay(stack, "lag", "--group", group, "--json")
    assert rc == 0, err
    doc = json.loads(out)
    rows = {r["partition"]: r for r in doc["partitions"] if r["topic"] == "replay.six"}
    assert {p: r["committed"] for p, r in rows.items()} == committed
    assert {p: r["high_watermark"] for p, r in rows.items()} == hw
    assert doc["lag"] == sum(hw[p] - committed[p] for p in range(6))
    rc, out, _ = replay(stack, "lag", "--group", group)
    assert rc == 0 and "total lag of group %s: %d" % (group, doc["lag"]) in out
    assert "replay.six" in out and "COMMITTED" in out

    # dry run: a table, nothing changes
    rc, out, err = replay(stack, "reset-offsets", "--group", group, "--topic", "replay.six",
                          "--to-earliest")
    assert rc == 0 and "dry run" in out and "NEW-LAG" in out, err
    # refused while the consumer is a member (it keeps polling, as a live service does)
    stop = threading.Event()
    th = threading.Thread(target=lambda: [c.poll(0.1) for _ in iter(stop.is_set, True)])
    th.start()
    try:
        rc, out, err = replay(stack, "reset-offsets", "--group", group, "--topic",
                              "replay.six", "--shift-by", "-1", "--execute",
                              "--join-timeout", "20s")
    finally:
        stop.set()
        th.join()
    assert rc == 1 and "refusing" in err and "active member" in err, out + err
    got = c.committed([TopicPartition("replay.six", p) for p in range(6)], timeout=10)
    assert {t.partition: t.offset for t in got} == committed
    close_member()
    # stopped: executed (--to-datetime of minute 30: offsets where records of minute >= 30 start)
    rc, out, err = replay(stack, "reset-offsets", "--group", group, "--topic", "replay.six",
                          "--to-datetime", "2026-01-01T00:30:00Z", "--execute", "--json",
                          "--join-timeout", "40s")
    assert rc == 0, out + err
    plan = json.loads(out)
    assert plan["state"] == "executed"
    src = consume(bs, "replay.six", want=60)
    t30 = 1767225600000 + 30 * 60000
    want = {}
    for p in range(6):
        recs = sorted((r for r in src if r["partition"] == p), key=lambda r: r["offset"])
        want[p] = next((r["offset"] for r in recs
                        if json.loads(r["value"])["i"] >= 30), hw[p])
    assert {r["partition"]: r["new"] for r in plan["partitions"]} == want
    c2 = Consumer(conf)
    got = c2.committed([TopicPartition("replay.six", p) for p in range(6)], timeout=10)
    c2.close()
    assert {t.partition: t.offset for t in got} == want


# ---------------------------------------------------------------------------------------------
# reindex with rag answering through the alias

def test_reindex_swap_while_rag_answers(stack):
    bs, tmp = stack["ds"].bootstrap, stack["tmp"]
    qurl = "http://127.0.0.1:%d" % stack["fake"].port
    base = {"TAINA_KAFKA_BROKERS": bs, "TAINA_QDRANT_URL": qurl}
    base.update(KAFKA_FAST_GROUP)
    emb = Service("embedder", tmp, dict(base, TAINA_VECTOR_STORE="qdrant",
                                        TAINA_QDRANT_COLLECTION="chunks-v1"))
    stack.setdefault("services", []).append(emb)
    emb.wait_ready(60)
    p = producer(bs)
    # 12 tickets; then ticket 1 deleted, ticket 2 down to 1 chunk, ticket 3 rewritten
    for n in range(1, 13):
        v = enriched(tid(n), nchunks=3)
        p.produce("tickets.enriched", key=v["ticket_id"], value=json.dumps(v))
    assert p.flush(30) == 0
    wait_for(lambda: count(stack, "chunks-v1") == 36 if qd(stack, "GET", "/collections/chunks-v1")[0] == 200 else False,
             60, "36 points")
    for v in (enriched(tid(1), deleted=True), enriched(tid(2), nchunks=1),
              enriched(tid(3), nchunks=2, words="licencia conducir examen")):
        p.produce("tickets.enriched", key=v["ticket_id"], value=json.dumps(v))
    assert p.flush(30) == 0
    wait_for(lambda: count(stack, "chunks-v1") == 36 - 3 - 2 - 1, 60, "33 - 3 points")
    # tickets.embedded carries every record, the embedder's offsets are committed
    consume(bs, "tickets.embedded", want=36 + 1 + 1 + 2)
    st, r = qd(stack, "POST", "/collections/aliases",
               {"actions": [{"create_alias": {"collection_name": "chunks-v1",
                                              "alias_name": "taina-chunks"}}]})
    assert st == 200, r
    # a ghost point only the old collection has: served before the swap, gone after
    old = all_points(stack, "chunks-v1")
    any_pt = next(iter(old.values()))
    ghost_id = "00000000-0000-4000-8000-00000000dead"
    payload = dict(any_pt["payload"], ticket_id=tid(999), text="fantasma del índice viejo")
    st, r = qd(stack, "PUT", "/collections/chunks-v1/points?wait=true",
               {"points": [{"id": ghost_id, "vector": any_pt["vector"], "payload": payload}]})
    assert st == 200, r
    rag = Service("rag", tmp, dict(base, TAINA_RAG_BACKEND="qdrant", TAINA_AUTH_DISABLED="1",
                                   TAINA_QDRANT_COLLECTION="taina-chunks"))
    stack["services"].append(rag)
    rag.wait_ready(60)
    question = {"question": any_pt["payload"]["text"], "top_k": 50}

    def ask():
        st, _, body = http("POST", rag.port, "/v1/query", question,
                           {"Content-Type": "application/json"})
        return st, json.loads(body) if st == 200 else body

    st, ans = ask()
    assert st == 200 and tid(999) in {c["ticket_id"] for c in ans["citations"]}, ans

    results, stop = [], threading.Event()

    def hammer():
        while not stop.is_set():
            try:
                results.append(ask()[0])
            except OSError as e:
                results.append(str(e))
            time.sleep(0.02)

    th = threading.Thread(target=hammer)
    th.start()
    try:
        # dry: verified, alias unchanged
        rc, out, err = replay(stack, "reindex", "--collection", "chunks-v2")
        assert rc == 0, out + err
        assert "verified" in out and "alias taina-chunks -> chunks-v1" in out
        st, r = qd(stack, "GET", "/aliases")
        assert r["result"]["aliases"] == [{"alias_name": "taina-chunks",
                                           "collection_name": "chunks-v1"}]
        # never into the live collection
        rc, _, err = replay(stack, "reindex", "--collection", "chunks-v1")
        assert rc == 1 and "already points at" in err
        rc, out, err = replay(stack, "reindex", "--collection", "chunks-v2", "--swap")
        assert rc == 0, out + err
        assert "alias taina-chunks: chunks-v1 -> chunks-v2" in out
        time.sleep(1)
    finally:
        stop.set()
        th.join()
    assert results and all(s == 200 for s in results), [s for s in results if s != 200][:5]
    # the new collection: the embedder's live points exactly, same payloads and vectors
    new = all_points(stack, "chunks-v2")
    old.pop(ghost_id, None)
    assert set(new) == set(old) and len(new) == 30
    for pid, pt in new.items():
        assert pt["payload"] == old[pid]["payload"], pid
        assert all(abs(a - b) < 1e-6 for a, b in zip(pt["vector"], old[pid]["vector"]))
    tickets = {pt["payload"]["ticket_id"] for pt in new.values()}
    assert tid(1) not in tickets  # deleted: not resurrected
    assert sorted(pt["payload"]["chunk_index"] for pt in new.values()
                  if pt["payload"]["ticket_id"] == tid(2)) == [0]  # trimmed chunks stay out
    assert all("licencia" in pt["payload"]["text"] for pt in new.values()
               if pt["payload"]["ticket_id"] == tid(3))  # latest record wins
    # rag is served from the new collection: no ghost, and answers after the old one is gone
    st, ans = ask()
    assert st == 200 and ans["citations"] and tid(999) not in {
        c["ticket_id"] for c in ans["citations"]}
    st, _ = qd(stack, "DELETE", "/collections/chunks-v1")
    assert st == 200
    st, ans = ask()
    assert st == 200 and ans["citations"], ans
