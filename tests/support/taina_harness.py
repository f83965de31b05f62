"""Test harness for integration tests written in Python (pytest).

Starts devstack and services on free loopback ports, stops them afterwards, and gives an
independent Kafka client (confluent-kafka) and a small HTTP client. Nothing reaches any address
but 127.0.0.1.

    from taina_harness import Devstack, Service, http, consume, free_port
"""
import hashlib
import http.client as httpclient
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("TN_BUILD_DIR", os.path.join(TOP, "build"))
BIN = os.path.join(BUILD, "bin")
MULT = int(os.environ.get("TN_TEST_TIMEOUT_MULT", "1"))
LEAVE = os.environ.get("TEST_LEAVE") == "1"

from ports import free_port, port_free, serves  # noqa: E402,F401  (free_port: for the tests)

# Consumer timeouts the mock cluster needs to let a restarted member in quickly (README: devstack).
KAFKA_FAST_GROUP = {
    "TAINA_KAFKA_SESSION_TIMEOUT_MS": "6000",
    "TAINA_KAFKA_MAX_POLL_INTERVAL_MS": "7000",
}


class TempDir:
    def __init__(self, prefix):
        self.path = tempfile.mkdtemp(prefix=prefix)

    def file(self, name, text=None):
        p = os.path.join(self.path, name)
        if text is not None:
            with open(p, "w") as f:
                f.write(text)
        return p

    def cleanup(self):
        if not LEAVE:
            shutil.rmtree(self.path, ignore_errors=True)


class Devstack:
    """taina-devstack: librdkafka's mock cluster with the topics of schemas/topics.json, and
    its fault control API (README, devstack): broker_down/up, rtt, push_errors, set_leader."""

    def __init__(self, tmp, brokers=3):
        self.tmp = tmp
        self.brokers = brokers
        self.control_port = free_port()
        bfile = tmp.file("bootstrap")
        self.log = open(tmp.file("devstack.log"), "w")
        self.proc = subprocess.Popen(
            [os.path.join(BIN, "taina-devstack"), "--devstack-bootstrap-file", bfile,
             "--devstack-brokers", str(brokers),
             "--devstack-control-port", str(self.control_port),
             "--devstack-topics-file", os.path.join(TOP, "schemas", "topics.json")],
            stdout=subprocess.DEVNULL, stderr=self.log, cwd=TOP)
        deadline = time.time() + 10 * MULT
        while time.time() < deadline:
            if os.path.exists(bfile) and os.path.getsize(bfile) > 0:
                break
            if self.proc.poll() is not None:
                raise RuntimeError("devstack exited: see " + self.log.name)
            time.sleep(0.05)
        self.bootstrap = open(bfile).read().strip()

    def _control(self, path, body=None):
        st, _, data = http("POST", self.control_port, path, body,
                           {"Content-Type": "application/json"} if body is not None else {})
        if st != 200:
            raise RuntimeError("devstack %s: %d %s" % (path, st, data.decode(errors="replace")))

    def broker_down(self, broker):
        """Broker @broker (1..brokers) closes its connections and accepts none until up."""
        self._control("/broker/%d/down" % broker)

    def broker_up(self, broker):
        self._control("/broker/%d/up" % broker)

    def rtt(self, broker, ms):
        """Add @ms of round-trip time to every response of @broker (0: none)."""
        self._control("/broker/%d/rtt" % broker, {"ms": ms})

    def push_errors(self, api, count, code):
        """The next @count requests of Kafka API @api ("Produce", "OffsetCommit", "EndTxn", ...)
        fail with error @code ("NOT_ENOUGH_REPLICAS", "REQUEST_TIMED_OUT", ...)."""
        self._control("/errors", {"api": api, "count": count, "code": code})

    def set_leader(self, topic, partition, broker):
        self._control("/leader", {"topic": topic, "partition": partition, "broker": broker})

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10 * MULT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Service:
    """A taina-<name> process with TAINA_* settings, its log in the temp dir."""

    def __init__(self, name, tmp, env, port=None, tag=None):
        self.name, self.tmp = name, tmp
        self.own_port = port is None  # chosen here: another one when someone took it first
        self.port = port or free_port()
        self.env = dict(os.environ)
        self.env.update({"TAINA_HTTP_PORT": str(self.port), "TAINA_HTTP_BIND": "127.0.0.1",
                         "TAINA_LOG_LEVEL": "info"})
        self.env.update(env)
        self.tag = tag or name
        self.runs = 0
        self.proc = None
        self.start()

    def start(self):
        self.runs += 1
        self.logpath = self.tmp.file("%s.%d.log" % (self.tag, self.runs))
        self.log = open(self.logpath, "w")
        self.proc = subprocess.Popen([os.path.join(BIN, "taina-" + self.name)], env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT, cwd=TOP)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def wait_ready(self, timeout=30):
        """Until /ready is 200 from this process (not from a program that took the port between
        free_port() and our bind: then, on a port chosen here, start again on another)."""
        deadline = time.time() + timeout * MULT
        moves = 0
        while time.time() < deadline:
            if self.proc.poll() is not None:
                if self.own_port and not port_free(self.port) and moves < 3:
                    moves += 1
                    self.log.close()
                    self.port = free_port()
                    self.env["TAINA_HTTP_PORT"] = str(self.port)
                    self.start()
                    continue
                raise RuntimeError("%s exited with %d: %s" % (self.name, self.proc.returncode,
                                                               self.tail()))
            try:
                st, _, _ = http("GET", self.port, "/ready", timeout=2)
                if st == 200 and serves(self.proc.pid, self.port):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("%s not ready after %ds: %s" % (self.name, timeout, self.tail()))

    def tail(self, n=30):
        if not self.log.closed:
            self.log.flush()
        with open(self.logpath, errors="replace") as f:
            return "".join(f.readlines()[-n:])

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Signal the process and return its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout * MULT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def wait_for(pred, timeout=30, what="condition"):
    """Until pred() is true, checked every 0.1 s; AssertionError after @timeout s (times MULT)."""
    deadline = time.time() + timeout * MULT
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def http(method, port, path, body=None, headers=None, timeout=30):
    """One request on 127.0.0.1:port; returns (status, headers dict lower-cased, body bytes)."""
    c = httpclient.HTTPConnection("127.0.0.1", port, timeout=timeout * MULT)
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    return r.status, hdrs, data


def seeded_rng():
    """A random.Random seeded from TN_TEST_SEED (default: the time), the seed printed so that a
    failing run can be repeated."""
    seed = int(os.environ.get("TN_TEST_SEED", str(int(time.time()))))
    print("seed %d" % seed, flush=True)
    return random.Random(seed)


def metric(svc, name, labels=""):
    """The sum of the series of metric @name on svc's /metrics whose labels contain @labels."""
    st, _, body = http("GET", svc.port, "/metrics")
    assert st == 200
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith(name + "{" if labels else name) and labels in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def api_keys(tmp, tenants):
    """Write an API keys file for {tenant: key}; returns its path."""
    lines = ["%s %s\n" % (t, hashlib.sha256(k.encode()).hexdigest()) for t, k in tenants.items()]
    return tmp.file("api_keys", "".join(lines))


def producer(bootstrap, conf=None):
    """An idempotent confluent-kafka producer; @conf adds or overrides librdkafka properties."""
    from confluent_kafka import Producer
    return Producer(dict({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                          "linger.ms": 5}, **(conf or {})))


def consume(bootstrap, topic, want=None, idle=3.0, timeout=60, pred=None):
    """Every committed record of @topic from the beginning, as dicts {key, value, headers,
    partition, offset}; stops when @want records (matching @pred, if given) were seen, or after
    @idle seconds without records once at least one arrived, or at @timeout."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "harness-%d" % os.getpid(),
                  "enable.auto.commit": False, "isolation.level": "read_committed",
                  "auto.offset.reset": "earliest"})
    md = c.list_topics(topic, timeout=10)
    parts = [TopicPartition(topic, p, 0) for p in md.topics[topic].partitions]
    c.assign(parts)
    out = []
    matched = 0
    last = time.time()
    deadline = time.time() + timeout * MULT
    while time.time() < deadline:
        m = c.poll(0.2)
        if m is None or m.error():
            if want is None and out and time.time() - last > idle:
                break
            if want is None and not out and time.time() - last > idle * 3:
                break
            continue
        last = time.time()
        rec = {"key": m.key(), "value": m.value(), "partition": m.partition(),
               "offset": m.offset(),
               "headers": {k: v for k, v in (m.headers() or [])}}
        out.append(rec)
        if pred is None or pred(rec):
            matched += 1
        if want is not None and matched >= want:
            break
    c.close()
    return out


def raw_ticket(i, tid, tenant, body, invalid):
    """The i-th record of a tickets.raw load: a plain-text ticket with @body, or, when @invalid,
    one without title and body (schema-invalid: it must end in tickets.dlq, once)."""
    if invalid:
        return {"schema_version": 1, "ticket_id": tid, "tenant_id": tenant, "source": "web"}
    return {"schema_version": 1, "ticket_id": tid, "tenant_id": tenant, "source": "web",
            "title": "Ticket %d" % i, "content_type": "text/plain",
            "created_at": "2026-11-24T10:00:00Z", "body": body}


def count_keys(bootstrap, topics, want, timeout, group="taina-check", linger=5.0,
               on_record=None):
    """Per key, how many records on @topics (from the beginning, read_committed) and the topic
    of its last one: ({key: n}, {key: topic}). Reads until every key of @want was seen, then
    @linger seconds more to catch late duplicates, or until @timeout. @on_record, when given, is
    called with each record (confluent_kafka.Message), in each partition's order."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False, "isolation.level": "read_committed"})
    parts = []
    for t in topics:
        md = c.list_topics(t, timeout=10)
        parts += [TopicPartition(t, p, 0) for p in md.topics[t].partitions]
    c.assign(parts)
    counts, topic_of = {}, {}
    deadline = time.time() + timeout * MULT
    complete_at = None
    while time.time() < deadline:
        for m in c.consume(500, 0.2):
            if m.error():
                continue
            k = m.key().decode()
            counts[k] = counts.get(k, 0) + 1
            topic_of[k] = m.topic()
            if on_record:
                on_record(m)
        if complete_at is None and want.issubset(counts):
            complete_at = time.time()
        if complete_at is not None and time.time() - complete_at > linger:
            break
    c.close()
    return counts, topic_of


def post_json(port, path, body, key=None, headers=None, timeout=30):
    """POST a JSON body (with a Bearer @key when given); returns (status, headers, decoded JSON
    when the answer is JSON, else the raw bytes)."""
    h = {"Content-Type": "application/json"}
    if key:
        h["Authorization"] = "Bearer " + key
    h.update(headers or {})
    st, hd, data = http("POST", port, path, body, h, timeout=timeout)
    if data and hd.get("content-type", "").startswith("application/json"):
        data = json.loads(data)
    return st, hd, data


def ingest_tickets(port, key, tickets):
    """POST /v1/tickets one NDJSON batch of ticket dicts (title/body given, the rest defaulted);
    asserts 202 and returns the items of the answer, in order."""
    lines = [json.dumps(dict({"source": "web", "content_type": "text/plain",
                              "created_at": "2026-11-24T10:00:00Z"}, **t)) for t in tickets]
    st, _, resp = http("POST", port, "/v1/tickets", "\n".join(lines),
                       {"Content-Type": "application/x-ndjson", "Authorization": "Bearer " + key})
    assert st == 202, resp
    return json.loads(resp)["items"]


class Stack:
    """The processes of one test module: a temp dir and devstack, then services and fakes started
    through service() with the Kafka settings of every test (KAFKA_FAST_GROUP). close() stops
    them in reverse order with SIGTERM and returns {tag: exit code} of the services (the fakes
    are stopped, not judged), so a test can assert clean exits without copying setup code."""

    def __init__(self, prefix, brokers=3):
        self.tmp = TempDir(prefix)
        self.procs = []
        self.ds = None
        self.closed = False
        try:
            self.ds = Devstack(self.tmp, brokers)
        except Exception:
            self.tmp.cleanup()
            raise
        self.base = dict(KAFKA_FAST_GROUP, TAINA_KAFKA_BROKERS=self.ds.bootstrap)

    def service(self, name, env=None, tag=None, wait=True):
        """Start taina-@name with the Kafka settings and @env; waits for /ready unless @wait is
        False (then call ready() once several were started: they come up in parallel)."""
        s = Service(name, self.tmp, dict(self.base, **(env or {})), tag=tag)
        self.procs.append(s)
        if wait:
            s.wait_ready(60)
        return s

    def ready(self, *svcs):
        for s in svcs:
            s.wait_ready(60)

    def rag_pipeline(self, keys, backends=("local", "qdrant")):
        """ingest -> embedder -> rag for each backend in @backends ("local": rag's index from
        tickets.embedded; "qdrant": an embedder and a rag on the Qdrant fake), with the API keys
        file @keys. Returns {"ingest": Service, "rag": {backend: Service}, "qdrant": the fake
        or None}."""
        out = {"rag": {}, "qdrant": None}
        svcs = []
        if "qdrant" in backends:
            out["qdrant"] = self.service("fake-qdrant", {"TAINA_HTTP_MAX_BODY": "64MiB"})
        out["ingest"] = self.service("ingest", {"TAINA_API_KEYS_FILE": keys,
                                                "TAINA_INGEST_BATCH_LINGER": "20ms"}, wait=False)
        svcs.append(out["ingest"])
        for b in backends:
            emb, rag = {}, {"TAINA_API_KEYS_FILE": keys}
            if b == "qdrant":
                url = "http://127.0.0.1:%d" % out["qdrant"].port
                emb = {"TAINA_VECTOR_STORE": "qdrant", "TAINA_QDRANT_URL": url,
                       "TAINA_EMBEDDER_GROUP": "taina-embedder-qdrant"}
                rag.update(TAINA_RAG_BACKEND="qdrant", TAINA_QDRANT_URL=url)
            svcs.append(self.service("embedder", emb, tag="embedder-" + b, wait=False))
            out["rag"][b] = self.service("rag", rag, tag="rag-" + b, wait=False)
            svcs.append(out["rag"][b])
        self.ready(*svcs)
        return out

    def close(self):
        codes = {}
        if self.closed:
            return codes
        self.closed = True
        for s in reversed(self.procs):
            rc = s.stop()
            if not s.name.startswith("fake-"):
                codes[s.tag] = rc
        if self.ds:
            self.ds.stop()
        self.tmp.cleanup()
        return codes
