"""CloudWatch EMF lag lines (issue 9): the embedder with TAINA_METRICS_EMF=1 on devstack writes,
each statistics interval, one JSON line on stdout (logs stay on stderr) whose ConsumerLagSum is
the lag of its group: records waiting behind a failing embeddings API (a new group, then after
commits and a restart), counted independently (high watermarks minus the group's committed
offsets, read with confluent-kafka) and as the Prometheus gauge; the line has the shape of CONTRACTS.md section 7. A bad namespace stops the start (exit 2)."""
import json
import os
import re
import subprocess
import sys
import time
import uuid

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from taina_harness import (BIN, KAFKA_FAST_GROUP, MULT, TOP, Devstack, Service,  # noqa: E402
                           TempDir, free_port, http, producer, serves)

GROUP = "taina-emf-test"
TOPIC = "tickets.enriched"
WAITING = 37


def enriched(ticket):
    text = "Fragmento 0: renovar el pasaporte %s." % ticket[:8]
    return {"schema_version": 1, "ticket_id": ticket, "tenant_id": "t1",
            "created_at": "2026-11-24T10:00:00Z", "enriched_at": "2026-11-24T10:00:01Z",
            "source": "web", "title": "Ticket " + ticket[:8], "text": text, "lang": "es",
            "lang_confidence": 0.9, "category": "passport", "priority": "normal", "pii": {},
            "invalid_utf8": 0, "content_hash": "0" * 64,
            "chunks": [{"index": 0, "text": text, "start": 0, "end": len(text),
                        "words": len(text.split())}]}


def independent_lag(bootstrap):
    """Sum over the topic's partitions of (high watermark - committed offset of GROUP), with
    a partition that has no committed offset counted from its low watermark."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP,
                  "enable.auto.commit": False})
    try:
        md = c.list_topics(TOPIC, timeout=10)
        parts = [TopicPartition(TOPIC, p) for p in md.topics[TOPIC].partitions]
        total = 0
        for tp in c.committed(parts, timeout=10):
            lo, hi = c.get_watermark_offsets(TopicPartition(TOPIC, tp.partition), timeout=10)
            total += hi - (tp.offset if tp.offset >= 0 else lo)
        return total
    finally:
        c.close()


def emf_lines(path):
    """Every line of the service's stdout, parsed; anything that is not JSON fails the test."""
    with open(path) as f:
        lines = [ln for ln in f.read().split("\n") if ln]
    out = []
    for ln in lines:
        try:
            out.append(json.loads(ln))
        except ValueError:
            raise AssertionError("stdout has a line that is not one JSON document: %r" % ln)
    return out


class Embedder:
    """taina-embedder with EMF on: stdout and stderr to separate files."""

    def __init__(self, tmp, env, port):
        self.tmp, self.env, self.port, self.runs = tmp, env, port, 0
        self.start()

    def start(self, ready=True):
        self.runs += 1
        self.out_path = self.tmp.file("embedder.%d.stdout" % self.runs)
        self.err_path = self.tmp.file("embedder.%d.stderr" % self.runs)
        self.out, self.err = open(self.out_path, "w"), open(self.err_path, "w")
        self.proc = subprocess.Popen([os.path.join(BIN, "taina-embedder")], env=self.env,
                                     stdout=self.out, stderr=self.err, cwd=TOP)
        if not ready:  # not ready while its upstream fails
            return
        deadline = time.time() + 30 * MULT
        while time.time() < deadline:
            assert self.proc.poll() is None, "embedder exited: " + self.log_tail()
            try:
                if (http("GET", self.port, "/ready", timeout=2)[0] == 200
                        and serves(self.proc.pid, self.port)):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("embedder not ready: " + self.log_tail())

    def log_tail(self):
        return open(self.err_path).read()[-2000:]

    def stop(self):
        self.proc.terminate()
        try:
            rc = self.proc.wait(30 * MULT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.out.close()
        self.err.close()
        return rc


@pytest.fixture(scope="module")
def stack():
    tmp = TempDir("taina-0023-")
    ds = Devstack(tmp)
    fake = Service("fake-qdrant", tmp, {"TAINA_HTTP_MAX_BODY": "64MiB"})
    fake.wait_ready()
    fake_emb = Service("fake-embeddings", tmp, {"TAINA_FAKE_API_KEY": "sk-test"})
    fake_emb.wait_ready()
    port = free_port()
    env = dict(os.environ)
    env.update(KAFKA_FAST_GROUP)
    env.update({"TAINA_KAFKA_BROKERS": ds.bootstrap, "TAINA_VECTOR_STORE": "qdrant",
                "TAINA_QDRANT_URL": "http://127.0.0.1:%d" % fake.port,
                "TAINA_EMBED_PROVIDER": "openai", "TAINA_EMBED_API_KEY": "sk-test",
                "TAINA_EMBED_URL": "http://127.0.0.1:%d" % fake_emb.port,
                "TAINA_EMBED_MODEL": "e5-test", "TAINA_EMBED_DIMS": "64",
                "TAINA_HTTP_PORT": str(port), "TAINA_HTTP_BIND": "127.0.0.1",
                "TAINA_EMBEDDER_GROUP": GROUP, "TAINA_KAFKA_STATS_INTERVAL": "500ms",
                "TAINA_METRICS_EMF": "1", "TAINA_METRICS_EMF_NAMESPACE": "Taina/Test",
                "TAINA_EMBEDDER_RETRY_BASE": "200ms", "TAINA_EMBEDDER_RETRY_CAP": "1s",
                "TAINA_EMBEDDER_MAX_ATTEMPTS": "1000"})
    emb = Embedder(tmp, env, port)
    st = {"ds": ds, "fake": fake_emb, "port": port, "emb": emb, "tmp": tmp}
    yield st
    rc = st["emb"].stop()
    fake_emb.stop()
    fake.stop()
    ds.stop()
    tmp.cleanup()
    assert rc == 0, "embedder did not exit 0 on SIGTERM"


def faults(stack, on):
    body = {"error_rate": 1.0, "error_status": 503} if on else {"error_rate": 0.0}
    st, _, _ = http("POST", stack["fake"].port, "/admin/faults", body,
                    {"Content-Type": "application/json", "Authorization": "Bearer sk-test"})
    assert st == 200


def send(stack, n):
    p = producer(stack["ds"].bootstrap)
    for _ in range(n):
        t = str(uuid.uuid4())
        p.produce(TOPIC, key=t, value=json.dumps(enriched(t)))
    assert p.flush(30) == 0


def wait_emf(stack, want, what):
    """The group's EMF lines in the current run until the last one says @want."""
    seen, lines = [], []
    deadline = time.time() + 30 * MULT
    while time.time() < deadline:
        lines = [d for d in emf_lines(stack["emb"].out_path) if d.get("ConsumerGroup") == GROUP]
        seen = [d["ConsumerLagSum"] for d in lines]
        if seen and seen[-1] == want:
            return lines
        time.sleep(0.25)
    raise AssertionError("%s: EMF ConsumerLagSum %s, want %d" % (what, seen[-10:], want))


def gauge(port):
    _, _, body = http("GET", port, "/metrics")
    m = re.search(r'^taina_kafka_consumer_group_lag\{group="%s",topic="%s"\} (\S+)'
                  % (GROUP, TOPIC), body.decode(), re.M)
    return float(m.group(1)) if m else None


def test_lag_line_equals_the_lag(stack):
    # The embeddings API fails every call from now on: the embedder retries, commits nothing,
    # and the records wait. The group is new: librdkafka itself reports no lag without a commit.
    faults(stack, True)
    send(stack, WAITING)
    want = independent_lag(stack["ds"].bootstrap)
    assert want == WAITING, "records waiting (independent count): %d" % want
    lines = wait_emf(stack, want, "new group, records waiting")
    assert gauge(stack["port"]) == want
    assert independent_lag(stack["ds"].bootstrap) == want  # still waiting: nothing committed

    doc = lines[-1]
    aws = doc["_aws"]
    assert abs(aws["Timestamp"] - time.time() * 1000) < 60000 * MULT
    assert isinstance(aws["Timestamp"], int)
    [directive] = aws["CloudWatchMetrics"]
    assert directive["Namespace"] == "Taina/Test"
    assert directive["Dimensions"] == [["Service", "ConsumerGroup"]]
    assert directive["Metrics"] == [{"Name": "ConsumerLagSum", "Unit": "Count"}]
    for name in directive["Dimensions"][0] + [m["Name"] for m in directive["Metrics"]]:
        assert name in doc, "%s referenced but not a root member" % name
    assert doc["Service"] == "embedder" and doc["Topic"] == TOPIC
    assert list(doc)[0] == "_aws"


def test_lag_after_commits_and_a_restart(stack):
    # The API back: the backlog drains and is committed; the line goes to 0.
    faults(stack, False)
    wait_emf(stack, 0, "drained")
    assert independent_lag(stack["ds"].bootstrap) == 0
    # A restart with new records waiting reports those only (from the committed offsets).
    assert stack["emb"].stop() == 0
    faults(stack, True)
    send(stack, 11)
    stack["emb"].start(ready=False)
    lines = wait_emf(stack, 11, "restart")
    assert max(d["ConsumerLagSum"] for d in lines) == 11, "lag above the backlog after a restart"
    assert independent_lag(stack["ds"].bootstrap) == 11
    faults(stack, False)
    wait_emf(stack, 0, "drained again")


def test_stdout_has_only_emf_and_stderr_the_logs(stack):
    docs = emf_lines(stack["emb"].out_path)
    assert docs and all("_aws" in d for d in docs)
    with open(stack["emb"].err_path) as f:
        logs = [json.loads(ln) for ln in f if ln.startswith("{")]
    assert logs and not any("_aws" in d for d in logs)


def test_bad_namespace_stops_the_start():
    env = dict(os.environ)
    env.update({"TAINA_METRICS_EMF": "1", "TAINA_METRICS_EMF_NAMESPACE": "no spaces allowed",
                "TAINA_KAFKA_BROKERS": "127.0.0.1:1"})
    r = subprocess.run([os.path.join(BIN, "taina-embedder")], env=env, cwd=TOP,
                       capture_output=True, text=True, timeout=30 * MULT)
    assert r.returncode == 2
    assert "TAINA_METRICS_EMF_NAMESPACE" in r.stderr
