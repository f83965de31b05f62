#!/usr/bin/python3
"""Taina's demo: the whole suite on its embedded defaults, on one machine, with no network.

    tools/demo/run.sh            make demo: start, ingest, ask, speak, book, summarize, stop
    tools/demo/run.sh up         make up:   start and ingest, then leave it running (build/demo/env)
    tools/demo/run.sh down       make down: stop what `up` (or an interrupted demo) left running

What `make demo` does, step by step (each step is one function below, in this order):

    1. start_stack        devstack (local Kafka), a throwaway PostgreSQL, the booking and speech
                          fakes, the five services with an API keys file (tenant "demo")
    2. ingest_corpus      POST documents.ndjson to ingest, and the invalid records: HTTP ones get
                          their 4xx, Kafka ones go to tickets.raw with kcat and end on tickets.dlq
    3. wait_pipeline      progress from the services' /metrics until every document is searchable
    4. ask_questions      questions in Spanish and English through rag: answers, citations, timings
    5. voice_turn         a question spoken by espeak-ng, streamed as Opus by taina-voice-client
    6. book_appointment   POST /v1/appointments, then the row as PostgreSQL holds it (psql)
    7. summarize          the summary table (and build/demo/summary.json), then everything stops

Ctrl-C (or SIGTERM/SIGHUP) at any point stops every process it started: each runs in its own
process group, gets SIGTERM (then SIGKILL after 15 s), and PostgreSQL is stopped with pg_ctl.
Every process is also recorded in build/demo/stack.json, so `make down` finds what a killed run
left.

Exit status: 0 when every check of the summary passed, 1 otherwise, 130 when interrupted.
Knobs: TAINA_DEMO_CI=1 (no live progress line; free ports instead of 8080-8084),
TAINA_DEMO_STT=fake|local (speech recognition of the voice turn, see voice_turn),
TAINA_DEMO_DIR (state folder, default build/demo).
"""
import hashlib
import json
import os
import secrets
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import wave
from datetime import datetime, timedelta, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, "..", ".."))
CORPUS = os.path.join(HERE, "corpus")
BIN = os.path.join(os.environ.get("TN_BUILD_DIR", os.path.join(TOP, "build")), "bin")
sys.path.insert(0, CORPUS)
sys.path.insert(0, os.path.join(TOP, "tests", "support"))
import verify_live as corpus  # noqa: E402  (the corpus's own loaders and Kafka record builder)
from ports import free_port, port_free, serves  # noqa: E402  (ports: what holds them)

CI = os.environ.get("TAINA_DEMO_CI") == "1"
STT = os.environ.get("TAINA_DEMO_STT", "fake")
OUT = os.path.abspath(os.environ.get("TAINA_DEMO_DIR", os.path.join(TOP, "build", "demo")))
TENANT = "demo"
DEFAULT_PORTS = {"ingest": 8080, "embedder": 8081, "rag": 8082, "voice-gateway": 8083,
                 "appointments": 8084}
# Questions asked through rag (ids of corpus/questions.json): four in each language.
QUESTIONS = ["q-es-passport-renewal", "q-es-cedula-lost", "q-es-marbete", "q-es-cita-cancelar",
             "q-en-learner", "q-en-passport-stolen", "q-en-hours", "q-en-card-blocked"]
# The spoken question: Spanish with the STT fake; English with pocketsphinx (English only).
VOICE_QUESTION = {"fake": "q-es-acta-matrimonio", "local": "q-en-birth-copy"}
SPEECH_KEY = "demo-speech-fake-key"
# Consumer timeouts the mock cluster needs (tests/support/taina_harness.py KAFKA_FAST_GROUP).
KAFKA_FAST_GROUP = {"TAINA_KAFKA_SESSION_TIMEOUT_MS": "6000",
                    "TAINA_KAFKA_MAX_POLL_INTERVAL_MS": "7000"}


class Interrupted(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Printing

TTY = sys.stdout.isatty() and not CI


def step(n, title):
    print(("\n\033[1m== %d. %s\033[0m" if TTY else "\n== %d. %s") % (n, title), flush=True)


def say(text=""):
    print(text, flush=True)


def rel(path):
    return os.path.relpath(path, os.getcwd()) if path.startswith(TOP) else path


# ---------------------------------------------------------------------------------------------
# HTTP and metrics (stdlib only)

def http(method, url, body=None, key=None, ctype="application/json", timeout=30):
    """(status, parsed JSON or text)."""
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else (
            body.encode() if isinstance(body, str) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", ctype)
    if key:
        req.add_header("Authorization", "Bearer " + key)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            st, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        st, raw = e.code, e.read()
    try:
        return st, json.loads(raw) if raw else None
    except ValueError:
        return st, raw.decode(errors="replace")


def metrics(url):
    """{(name, frozenset(labels)): value} from a Prometheus text page; {} when unreachable."""
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        head, _, value = line.rpartition(" ")
        name, _, labels = head.partition("{")
        pairs = []
        for part in labels.rstrip("}").split(","):
            if "=" in part:
                k, v = part.split("=", 1)
                pairs.append((k.strip(), v.strip().strip('"')))
        try:
            out[(name, frozenset(pairs))] = float(value)
        except ValueError:
            pass
    return out


def metric(m, name, **labels):
    """Sum of the samples of @name whose labels include @labels."""
    want = set(labels.items())
    return sum(v for (n, ls), v in m.items() if n == name and want <= ls)


# ---------------------------------------------------------------------------------------------
# The stack: processes in their own process groups, recorded in stack.json

class Stack:
    def __init__(self, out):
        self.out = out
        self.logs = os.path.join(out, "logs")
        self.state = os.path.join(out, "stack.json")
        self.procs = []  # [{name, pid, exe}] in start order
        self.popen = {}  # name -> Popen of our children (poll() sees an exit; kill(0) not)
        self.extra = {}  # name -> the environment service() was given (to start it again)
        self.pg_dir = None
        self.ports, self.urls = {}, {}
        self.key = None
        self.bootstrap = None
        self.db_uri = None
        self.voice = os.path.exists(os.path.join(BIN, "taina-voice-gateway"))

    def save(self):
        with open(self.state, "w") as f:
            json.dump({"procs": self.procs, "pg_dir": self.pg_dir, "ports": self.ports}, f)

    def spawn(self, name, argv, env=None, log=None):
        """Start @argv in a new session (its own process group: Ctrl-C at the terminal reaches
        only this script, which then stops the stack in order)."""
        logf = open(log or os.path.join(self.logs, name + ".log"), "w")
        p = subprocess.Popen(argv, env=env, cwd=TOP, stdin=subprocess.DEVNULL, stdout=logf,
                             stderr=subprocess.STDOUT, start_new_session=True)
        logf.close()
        self.procs = [q for q in self.procs if q["name"] != name]  # an earlier one exited
        self.procs.append({"name": name, "pid": p.pid, "exe": argv[0]})
        self.popen[name] = p
        self.save()
        return p

    def env(self, extra):
        """The environment of a service: ours without any TAINA_* (a sourced build/demo/env must
        not leak into a fresh stack), plus @extra."""
        e = {k: v for k, v in os.environ.items() if not k.startswith("TAINA_")}
        e.update({"TAINA_HTTP_BIND": "127.0.0.1", "TAINA_LOG_LEVEL": "info"})
        e.update(extra)
        return e

    def service(self, name, port, extra):
        self.extra[name] = extra
        env = self.env(dict(extra, TAINA_HTTP_PORT=str(port)))
        self.spawn(name, [os.path.join(BIN, "taina-" + name)], env)
        self.ports[name] = port
        self.urls[name] = "http://127.0.0.1:%d" % port
        self.save()

    def wait_ready(self, name, timeout=60):
        """Until /ready is 200 from the process we started: a port found free may be taken by
        another program before the service binds it; then the service exits, and it starts
        again on another port."""
        deadline = time.time() + timeout
        moves = 0
        while time.time() < deadline:
            p, port = self.popen[name], self.ports[name]
            if p.poll() is not None:
                if not port_free(port) and moves < 3:
                    moves += 1
                    self.service(name, free_port(), self.extra[name])
                    say("%-13s port %d was taken before it could bind it: started again on %d"
                        % (name, port, self.ports[name]))
                    continue
                raise RuntimeError("%s exited; see %s" % (name, rel(self.log(name))))
            st, _ = http_quiet(self.urls[name] + "/ready")
            if st == 200 and serves(p.pid, port):
                return
            time.sleep(0.1)
        raise RuntimeError("%s not ready after %d s; see %s" % (name, timeout, rel(self.log(name))))

    def log(self, name):
        return os.path.join(self.logs, name + ".log")

    def stop(self):
        stop_recorded(self.out)


def http_quiet(url):
    try:
        return http("GET", url, timeout=2)
    except OSError:
        return None, None


def ours(p):
    """The recorded process is still the program we started (not a recycled pid)."""
    try:
        return os.readlink("/proc/%d/exe" % p["pid"]) == os.path.realpath(p["exe"])
    except OSError:
        return False


def stop_recorded(out, quiet=False):
    """Stop what stack.json records, newest first: SIGTERM to the process group (the services
    drain and exit 0), SIGKILL after 15 s; then PostgreSQL with pg_ctl (pg.py stop)."""
    state = os.path.join(out, "stack.json")
    try:
        with open(state) as f:
            st = json.load(f)
    except (OSError, ValueError):
        return False
    codes = {}
    for p in reversed(st["procs"]):
        if not ours(p):
            continue
        try:
            os.killpg(p["pid"], signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.time() + 15
        while time.time() < deadline:
            try:  # our child (make demo): its exit code; else (make down) until it is gone
                pid, status = os.waitpid(p["pid"], os.WNOHANG)
                if pid:
                    codes[p["name"]] = os.waitstatus_to_exitcode(status)
                    break
            except ChildProcessError:
                if not ours(p):
                    break
            time.sleep(0.05)
        else:
            try:
                os.killpg(p["pid"], signal.SIGKILL)
                codes[p["name"]] = "killed"
            except ProcessLookupError:
                pass
    if st.get("pg_dir") and os.path.exists(st["pg_dir"]):
        subprocess.run([sys.executable, os.path.join(TOP, "tests", "support", "pg.py"), "stop",
                        st["pg_dir"]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       start_new_session=True)
    os.unlink(state)
    if not quiet:
        bad = {n: c for n, c in codes.items() if c not in (0, None)}
        clean = " (each exited 0)" if codes and len(codes) == len(st["procs"]) else ""
        say("stopped %d processes and PostgreSQL%s" % (
            len(st["procs"]), "; not clean: %s" % bad if bad else clean))
    return True


def pg_base(out):
    """PostgreSQL's folder: under build/demo when the `postgres` user can reach it, else /tmp."""
    d, ok = out, True
    while d != "/":
        if not os.stat(d).st_mode & 0o001:
            ok = False
        d = os.path.dirname(d)
    return os.path.join(out, "pg") if ok else "/tmp/taina-demo-pg-" + secrets.token_hex(4)


# ---------------------------------------------------------------------------------------------
# 1. start the stack

def start_stack(s, summary):
    stt = "local" if STT == "local" else "fake"
    for name in ("devstack", "ingest", "embedder", "rag", "appointments", "fake-booking"):
        if not os.path.exists(os.path.join(BIN, "taina-" + name)):
            raise RuntimeError("build/bin/taina-%s is missing: run make first" % name)

    # Ports: the usual ones when free (CI: always free ones, beside whatever else runs).
    for name, port in DEFAULT_PORTS.items():
        s.ports[name] = port if not CI and port_free(port) else free_port()

    # The demo tenant's API key: every request below carries it (no TAINA_AUTH_DISABLED).
    s.key = "taina-demo-" + secrets.token_hex(12)
    keys = os.path.join(s.out, "api_keys")
    with open(keys, "w") as f:
        f.write("# tenant sha256(key): the demo tenant (make demo / make up)\n")
        f.write("%s %s\n" % (TENANT, hashlib.sha256(s.key.encode()).hexdigest()))
    os.chmod(keys, 0o600)

    bfile = os.path.join(s.out, "bootstrap")
    s.spawn("devstack", [os.path.join(BIN, "taina-devstack"), "--devstack-bootstrap-file", bfile,
                         "--devstack-topics-file", os.path.join(TOP, "schemas", "topics.json")],
            s.env({}))
    for _ in range(200):
        if os.path.exists(bfile) and os.path.getsize(bfile):
            break
        time.sleep(0.05)
    else:
        raise RuntimeError("devstack did not start; see " + rel(s.log("devstack")))
    s.bootstrap = open(bfile).read().strip()
    say("devstack      Kafka mock cluster, 3 brokers     %s" % s.bootstrap)

    # PostgreSQL: initdb + pg_ctl as the postgres user, its own session like the rest.
    s.pg_dir = pg_base(s.out)
    s.save()
    p = subprocess.run([sys.executable, os.path.join(TOP, "tests", "support", "pg.py"), "start",
                        s.pg_dir], capture_output=True, text=True, start_new_session=True)
    if p.returncode:
        raise RuntimeError("PostgreSQL did not start: " + p.stderr.strip()[-500:])
    s.db_uri = p.stdout.strip()
    say("postgresql    throwaway cluster (pg_ctl)         %s" % s.db_uri)

    base = dict(KAFKA_FAST_GROUP, TAINA_KAFKA_BROKERS=s.bootstrap, TAINA_API_KEYS_FILE=keys)
    fakes = {"fake-booking": {}, "fake-speech": {"TAINA_FAKE_API_KEY": SPEECH_KEY,
                                                 "TAINA_HTTP_MAX_BODY": "16MiB"}}
    if not s.voice:
        del fakes["fake-speech"]
    for name, extra in fakes.items():
        s.service(name, free_port(), extra)
        s.wait_ready(name)
        say("%-13s %-34s %s" % (name, "booking system (OAuth2 + FHIR R4)" if name == "fake-booking"
                                else "speech-to-text (Deepgram API)", s.urls[name]))

    s.service("ingest", s.ports["ingest"], dict(base, TAINA_INGEST_BATCH_LINGER="20ms"))
    s.service("embedder", s.ports["embedder"], dict(base))
    s.service("rag", s.ports["rag"], dict(base))
    booking = s.urls["fake-booking"]
    s.service("appointments", s.ports["appointments"], dict(
        base, TAINA_DATABASE_URL=s.db_uri, TAINA_APPOINTMENTS_ID_KEY=secrets.token_hex(32),
        TAINA_BOOKING_URL=booking, TAINA_BOOKING_TOKEN_URL=booking + "/token",
        TAINA_BOOKING_CLIENT_ID="taina", TAINA_BOOKING_CLIENT_SECRET="secret",
        TAINA_APPOINTMENTS_POLL="200ms"))
    for name in ("ingest", "embedder", "rag", "appointments"):
        s.wait_ready(name)
    if s.voice:
        if stt == "fake":
            sttenv = {"TAINA_STT_PROVIDER": "deepgram", "TAINA_STT_URL": s.urls["fake-speech"],
                      "TAINA_STT_API_KEY": SPEECH_KEY}
        else:
            sttenv = {"TAINA_STT_PROVIDER": "local"}
        s.service("voice-gateway", s.ports["voice-gateway"],
                  dict(base, TAINA_RAG_URL=s.urls["rag"], **sttenv))
        s.wait_ready("voice-gateway")
    else:
        del s.ports["voice-gateway"]
        s.save()
    what = {"ingest": "HTTP ingest, validate, enrich, chunk", "embedder": "hash embeddings (384)",
            "rag": "local exact index, extractive", "appointments": "PostgreSQL + booking fake",
            "voice-gateway": "Opus/WebSocket, espeak-ng TTS"}
    for name in DEFAULT_PORTS:
        if name not in s.urls:
            continue
        url = s.urls[name]
        if name == "voice-gateway":
            url = url.replace("http:", "ws:") + "/v1/sessions/ws"
        moved = ""
        if not CI and s.ports[name] != DEFAULT_PORTS[name]:
            moved = "  (%d was taken)" % DEFAULT_PORTS[name]
        say("%-13s %-34s %s%s" % (name, what[name], url, moved))
    if not s.voice:
        say("voice-gateway NOT BUILT YET (build/bin/taina-voice-gateway missing): the voice step "
            "is skipped")
    say("API key       tenant %r, %s (keys file %s)" % (TENANT, s.key, rel(keys)))
    say("logs          %s/" % rel(s.logs))
    summary["ports"] = dict(s.ports)
    summary["stt"] = stt if s.voice else None
    write_env(s)


def write_env(s):
    """build/demo/env: `source build/demo/env` gives the URLs and the demo key."""
    lines = ["# written by tools/demo/demo.py: source build/demo/env"]
    names = {"ingest": "TAINA_INGEST_URL", "embedder": "TAINA_EMBEDDER_URL",
             "rag": "TAINA_RAG_URL", "appointments": "TAINA_APPOINTMENTS_URL",
             "fake-booking": "TAINA_BOOKING_FAKE_URL", "fake-speech": "TAINA_SPEECH_FAKE_URL"}
    for name, var in names.items():
        if name in s.urls:
            lines.append("export %s=%s" % (var, s.urls[name]))
    if "voice-gateway" in s.urls:
        lines.append("export TAINA_VOICE_URL=ws://127.0.0.1:%d/v1/sessions/ws"
                     % s.ports["voice-gateway"])
        lines.append("export TAINA_SPEECH_FAKE_KEY=%s" % SPEECH_KEY)
    lines += ["export TAINA_API_KEY=%s" % s.key,
              "export TAINA_KAFKA_BROKERS=%s" % s.bootstrap,
              "export TAINA_DATABASE_URL=%s" % s.db_uri]
    path = os.path.join(s.out, "env")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.chmod(path, 0o600)


# ---------------------------------------------------------------------------------------------
# 2. ingest the corpus and the invalid records

def ingest_corpus(s, summary, docs, cases, expected):
    body = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs).encode()
    t0 = time.time()
    st, r = http("POST", s.urls["ingest"] + "/v1/tickets", body, s.key, "application/x-ndjson",
                 timeout=120)
    items = r.get("items", []) if isinstance(r, dict) else []
    accepted = [i["ticket_id"] for i in items if i.get("status") == "accepted"]
    say("POST /v1/tickets  %d documents (NDJSON, %d KB, %d es + %d en): %s, %d accepted in %.0f ms"
        % (len(docs), len(body) // 1024, sum(d["lang"] == "es" for d in docs),
           sum(d["lang"] == "en" for d in docs), st, len(accepted), (time.time() - t0) * 1000))
    summary["documents"] = {"total": len(docs), "accepted": len(accepted),
                            "ids_kept": accepted == [d["ticket_id"] for d in docs]}

    say("\nInvalid records over HTTP (refused before they reach Kafka):")
    res = {}
    for c in cases:
        if c["via"] != "http":
            continue
        want = expected[c["case"]]
        payload = c["text"] if "text" in c else json.dumps(c["record"], ensure_ascii=False)
        st, r = http("POST", s.urls["ingest"] + "/v1/tickets", payload, s.key)
        err = r.get("error", {}) if isinstance(r, dict) else {}
        ok = st == want["http_status"] and err.get("code") == want.get("code") and all(
            err.get(k) == want[k] for k in ("path", "keyword") if k in want)
        res[c["case"]] = {"status": st, "code": err.get("code"), "path": err.get("path"),
                          "keyword": err.get("keyword"), "ok": ok}
        say("  %s %-24s %s %-16s %-14s %-20s %s" % (
            "ok  " if ok else "FAIL", c["case"], st, err.get("code"), err.get("path", ""),
            err.get("keyword", ""), c["note"]))
    summary["http_invalid"] = res

    say("\nInvalid records produced straight to tickets.raw with kcat (ingest dead-letters them):")
    tmpf = os.path.join(s.out, "raw-record")
    for c in cases:
        if c["via"] != "kafka":
            continue
        with open(tmpf, "wb") as f:
            f.write(corpus.kafka_value(c))
        subprocess.run(["kcat", "-P", "-b", s.bootstrap, "-t", "tickets.raw", "-k", c["key"],
                        "-X", "message.max.bytes=2000000", "-X", "compression.type=lz4", tmpf],
                       check=True)
        say("  %-24s %7d bytes  %s" % (c["case"], os.path.getsize(tmpf), c["note"]))
    os.unlink(tmpf)


# ---------------------------------------------------------------------------------------------
# 3. watch the pipeline until every document is searchable

def pipeline_counts(s):
    mi, me, mr = (metrics(s.urls[n]) for n in ("ingest", "embedder", "rag"))
    return {
        "ingested": metric(mi, "taina_ingest_http_items_total", outcome="accepted"),
        "enriched": metric(mi, "taina_ingest_records_out_total", topic="tickets.enriched"),
        "dead-lettered": metric(mi, "taina_ingest_dlq_total"),
        "embedded": metric(me, "taina_embedder_records_total", outcome="embedded"),
        "chunks embedded": metric(me, "taina_embedder_chunks_total"),
        "chunks indexed": metric(mr, "taina_rag_index", what="chunks"),
    }


def wait_pipeline(s, summary, docs, n_raw, timeout=120):
    say("ingest -> tickets.enriched -> embedder -> tickets.embedded -> rag's index "
        "(from each service's /metrics):")
    t0 = time.time()
    last = ""
    while True:
        c = pipeline_counts(s)
        line = "  %5.1f s  " % (time.time() - t0) + "  ".join(
            "%s %d" % (k, v) for k, v in c.items())
        done = (c["enriched"] >= len(docs) and c["embedded"] >= len(docs)
                and c["dead-lettered"] >= n_raw and c["chunks indexed"] >= c["chunks embedded"] > 0)
        if TTY:
            print("\r" + line + "\033[K", end="", flush=True)
        elif line[10:] != last[10:] or done:
            say(line)
        last = line
        if done or time.time() - t0 > timeout:
            break
        time.sleep(0.25 if TTY else 1.0)
    if TTY:
        print()
    # Searchable means searchable: each document through rag, filtered on its ticket id.
    missing = corpus.wait_indexed(corpus.Client(s.key), s.urls["rag"], docs,
                                  max(5, timeout - (time.time() - t0)))
    secs = time.time() - t0
    say("searchable: %d/%d documents after %.1f s%s" % (
        len(docs) - len(missing), len(docs), secs,
        "" if not missing else "; NOT: " + ", ".join(d["metadata"]["doc"] for d in missing)))
    summary["documents"]["searchable"] = len(docs) - len(missing)
    summary["documents"]["missing"] = [d["metadata"]["doc"] for d in missing]
    summary["pipeline_s"] = round(secs, 1)


def topic_keys(bootstrap, topic):
    """Keys of every committed record of @topic (kcat, an independent client)."""
    p = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", topic, "-e", "-q", "-f", "%k\\n",
                        "-X", "isolation.level=read_committed"],
                       capture_output=True, text=True, timeout=120)
    return [k for k in p.stdout.splitlines() if k]


def dlq_records(bootstrap):
    p = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", "tickets.dlq", "-e", "-q", "-J",
                        "-X", "isolation.level=read_committed"],
                       capture_output=True, text=True, timeout=120)
    out = []
    for line in p.stdout.splitlines():
        m = json.loads(line)
        h = m.get("headers") or []
        out.append((m.get("key"), dict(zip(h[0::2], h[1::2]))))
    return out


def account_for_documents(s, summary, docs, cases, expected, timeout=60):
    """Every document on tickets.enriched and tickets.embedded; every Kafka case on tickets.dlq
    with its expected reason (read back with kcat, independently of the services' counters)."""
    ids = {d["ticket_id"] for d in docs}
    enriched = ids & set(topic_keys(s.bootstrap, "tickets.enriched"))
    embedded_keys = topic_keys(s.bootstrap, "tickets.embedded")
    embedded = ids & set(embedded_keys)
    summary["documents"]["enriched"] = len(enriched)
    summary["documents"]["embedded"] = len(embedded)
    summary["chunks"] = sum(1 for k in embedded_keys if k in ids)
    want = {c["key"]: c for c in cases if c["via"] == "kafka"}
    deadline = time.time() + timeout
    while True:
        seen = {k: h for k, h in dlq_records(s.bootstrap) if k in want}
        if len(seen) == len(want) or time.time() > deadline:
            break
        time.sleep(1)
    res = {}
    say("tickets.enriched: %d/%d documents; tickets.embedded: %d/%d documents, %d chunks"
        % (len(enriched), len(docs), len(embedded), len(docs), summary["chunks"]))
    say("tickets.dlq (taina-error header of each dead letter):")
    for key, c in want.items():
        h = seen.get(key, {})
        exp = expected[c["case"]]["dlq_reason"]
        ok = h.get("taina-error") == exp
        res[c["case"]] = {"reason": h.get("taina-error"), "expected": exp, "ok": ok,
                          "detail": h.get("taina-error-detail")}
        say("  %s %-24s %-16s %s" % ("ok  " if ok else "FAIL", c["case"], h.get("taina-error"),
                                     (h.get("taina-error-detail") or "")[:70]))
    summary["dlq"] = res


# ---------------------------------------------------------------------------------------------
# 4. questions through rag

def ask_questions(s, summary, docs, questions):
    by_id = {d["ticket_id"]: d["metadata"]["doc"] for d in docs}
    qs = {q["id"]: q for q in questions["questions"]}
    res = []
    for qid in QUESTIONS:
        q = qs[qid]
        t0 = time.time()
        st, r = http("POST", s.urls["rag"] + "/v1/query", {"question": q["question"], "top_k": 3},
                     s.key)
        wall = (time.time() - t0) * 1000
        if st != 200:
            say("  %s: POST /v1/query answered %s %s" % (qid, st, r))
            res.append({"id": qid, "status": st, "ok": False})
            continue
        cites = [by_id.get(c["ticket_id"], c["ticket_id"]) for c in r["citations"]]
        t = r["timings"]
        ok = any(c in q["expect"] for c in cites)
        res.append({"id": qid, "lang": q["lang"], "question": q["question"],
                    "answer": r.get("answer", r.get("answer_error")), "citations": cites,
                    "expected": q["expect"], "expected_first": cites[:1] == q["expect"][:1],
                    "ok": ok, "rag_ms": t["total_ms"], "client_ms": round(wall, 1)})
        say("\n[%s] Q: %s" % (q["lang"], q["question"]))
        say("     A: " + wrap(res[-1]["answer"] or "", 6))
        for i, c in enumerate(r["citations"]):
            say("     [%d] %-26s %.3f  %s" % (i + 1, cites[i], c["score"], c.get("title", "")))
        say("     %s expected %s; rag: embed %.1f ms, search %.1f ms, answer %.1f ms, "
            "total %.1f ms; round trip %.1f ms" % (
                "cites" if ok else "DOES NOT CITE", q["expect"][0], t["embed_ms"], t["search_ms"],
                t["llm_ms"], t["total_ms"], wall))
    summary["questions"] = res
    lat = [q["client_ms"] for q in res if "client_ms" in q]
    summary["query_p50_ms"] = round(statistics.median(lat), 1) if lat else None


def wrap(text, indent, width=100):
    words, lines, cur = text.split(), [], ""
    for w in words:
        if cur and len(cur) + 1 + len(w) > width - indent:
            lines.append(cur)
            cur = w
        else:
            cur = (cur + " " + w).strip()
    lines.append(cur)
    return ("\n" + " " * indent).join(lines)


# ---------------------------------------------------------------------------------------------
# 5. one voice turn

def espeak_wav(path, text, lang, lead=0.4):
    """espeak-ng says @text into @path, after @lead seconds of silence (the detector's preroll)."""
    raw = path + ".raw.wav"
    subprocess.run(["espeak-ng", "-v", lang, "-w", raw, text], check=True)
    with wave.open(raw) as w:
        rate, frames = w.getframerate(), w.readframes(w.getnframes())
    os.unlink(raw)
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(struct.pack("<%dh" % int(lead * rate), *([0] * int(lead * rate))) + frames)
    return len(frames) / 2 / rate


def voice_turn(s, summary, questions, stt):
    if not s.voice:
        say("SKIPPED: build/bin/taina-voice-gateway does not exist yet (voice-gateway and "
            "tools/voice-client land from branch h/voice).")
        summary["voice"] = {"ran": False, "reason": "taina-voice-gateway not built"}
        return
    client = os.path.join(BIN, "taina-voice-client")
    if not os.path.exists(client):
        raise RuntimeError(client + " is missing: run make")
    q = next(x for x in questions["questions"] if x["id"] == VOICE_QUESTION[stt])
    if stt == "fake":
        say("STT: taina-fake-speech (the Deepgram API), scripted to return the question's text: "
            "the audio path is real\n     (Opus in, voice detection, endpointing, upload to STT), "
            "the recognition is not. TAINA_DEMO_STT=local\n     uses pocketsphinx instead "
            "(English only; 81-83% word errors on espeak-ng speech in common/README's test).")
        st, _ = http("POST", s.urls["fake-speech"] + "/admin/stt/transcript",
                     {"text": q["question"]}, SPEECH_KEY)
        if st != 200:
            raise RuntimeError("the speech fake refused the transcript: %s" % st)
    else:
        say("STT: pocketsphinx (the gateway's local provider, English; expect a poor transcript)")
    voice_dir = os.path.join(s.out, "voice")
    os.makedirs(voice_dir, exist_ok=True)
    wav, reply = os.path.join(voice_dir, "question.wav"), os.path.join(voice_dir, "reply.wav")
    secs = espeak_wav(wav, q["question"], q["lang"])
    say("question: espeak-ng -v %s says %r (%.1f s) -> %s" % (q["lang"], q["question"], secs,
                                                           rel(wav)))
    argv = [client, "--url", "ws://127.0.0.1:%d/v1/sessions/ws" % s.ports["voice-gateway"],
            "--lang", q["lang"], "--wav", wav, "--out", reply,
            "--log-level", "warn", "--timeout-ms", "150000"]
    say("$ taina-voice-client --url %s --key $TAINA_API_KEY --lang %s --wav %s --out %s"
        % (argv[2], q["lang"], rel(wav), rel(reply)))
    docs = {d["ticket_id"]: d["metadata"]["doc"]
            for d in corpus.load_ndjson(os.path.join(CORPUS, "documents.ndjson"))}
    t0 = time.time()
    ev = {}
    # Its own process group too (Ctrl-C reaches this script only), so stopped here in any case.
    errlog = os.path.join(s.logs, "voice-client.log")
    with open(errlog, "w") as errf:
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errf, text=True,
                             env=s.env({"TAINA_KEY": s.key}),  # = --key, not visible in ps
                             start_new_session=True)
    try:
        for line in p.stdout:  # the gateway's messages, as they come (one JSON line each)
            try:
                m = json.loads(line)
            except ValueError:
                continue
            e = m.get("event")
            ev.setdefault(e, m)
            if e == "transcript":
                say("transcript: %s" % m.get("text"))
            elif e == "reply":
                cites = [docs.get(c.get("ticket_id"), c.get("ticket_id"))
                         for c in m.get("citations", [])]
                say("reply:      %s   (%.0f ms after the end of speech)" % (
                    wrap(m.get("text", ""), 12), m.get("latency_ms", 0)))
                say("cites:      %s" % ", ".join(cites))
            elif e == "first_audio":
                say("first reply audio %.0f ms after the end of speech; the reply is spoken in "
                    "real time..." % m["latency_ms"])
            elif e == "audio_end":
                say("audio_end after %d Opus packets (%.1f s of speech)" % (
                    m.get("packets", 0), m.get("packets", 0) * 0.02))
            elif e == "error":
                say("error: %s %s" % (m.get("code"), m.get("message")))
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    wall = time.time() - t0
    transcript = ev.get("transcript", {}).get("text")
    rep = ev.get("reply", {})
    first = ev.get("first_audio", {}).get("latency_ms")
    by_id = [docs.get(c.get("ticket_id"), c.get("ticket_id")) for c in rep.get("citations", [])]
    say("reply audio: %s; the turn took %.1f s" % (rel(reply), wall))
    if stt == "fake":
        st, up = http("GET", s.urls["fake-speech"] + "/admin/stt/uploads", key=SPEECH_KEY)
        if st == 200 and up.get("uploads"):
            u = up["uploads"][0]
            say("STT received: %.2f s of audio at %d Hz, peak %.1f dBFS (the spoken part of the "
                "%.1f s question)" % (u["duration_s"], u["sample_rate"], u["peak_dbfs"], secs))
    ok = (p.returncode == 0 and bool(transcript) and bool(rep.get("text")) and first is not None
          and os.path.exists(reply) and (stt == "local" or any(c in q["expect"] for c in by_id)))
    if p.returncode:
        say("taina-voice-client exited %d; see %s" % (p.returncode, rel(errlog)))
    summary["voice"] = {"ran": True, "ok": ok, "stt": stt, "question": q["question"],
                        "transcript": transcript, "reply": rep.get("text"), "citations": by_id,
                        "expected": q["expect"], "reply_wav": reply, "first_audio_ms": first,
                        "turn_s": round(wall, 1), "exit": p.returncode}


# ---------------------------------------------------------------------------------------------
# 6. book an appointment

def book_appointment(s, summary, questions):
    ask = questions["booking"][0]
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).date()
    rid = str(uuid.uuid4())
    body = {"request_id": rid, "citizen_name": "Ana Pérez", "id_number": "001-1234567-8",
            "phone": "+1 809 555 0142", "service_code": "passport", "lang": ask["lang"],
            "preferred_window": {"from": "%sT13:00:00Z" % tomorrow,
                                 "to": "%sT17:00:00Z" % tomorrow}}
    say("the citizen: %r -> service passport, tomorrow 13:00-17:00 UTC" % ask["text"])
    t0 = time.time()
    st, r = http("POST", s.urls["appointments"] + "/v1/appointments", body, s.key)
    say("POST /v1/appointments: %s %s" % (st, json.dumps(r, ensure_ascii=False)))
    status = r.get("status") if isinstance(r, dict) else None
    deadline = time.time() + 30
    while status not in ("booked", "failed") and time.time() < deadline:
        time.sleep(0.2)
        st, r = http("GET", s.urls["appointments"] + "/v1/appointments/" + rid, key=s.key)
        status = r.get("status") if isinstance(r, dict) else None
    secs = time.time() - t0
    say("GET /v1/appointments/%s: %s after %.1f s" % (rid, status, secs))
    say("\n$ psql \"$TAINA_DATABASE_URL\" -x  # the row, as the source of truth holds it")
    sql = ("SELECT request_id, tenant_id, status, service_code, citizen_name, "
           "left(id_number, 24) || '...' AS id_number_stored, slot_id, slot_start, slot_end, "
           "external_id, attempts, created_at FROM appointments WHERE request_id = :'rid';")
    p = subprocess.run(["psql", s.db_uri, "-X", "-x", "-v", "rid=" + rid, "-v", "ON_ERROR_STOP=1"],
                       input=sql, capture_output=True, text=True, timeout=30)
    say(p.stdout.rstrip() or p.stderr.rstrip())
    q = subprocess.run(["psql", s.db_uri, "-X", "-A", "-t", "-v", "rid=" + rid],
                       input="SELECT status || '|' || coalesce(external_id, '') FROM appointments "
                             "WHERE request_id = :'rid';", capture_output=True, text=True,
                       timeout=30).stdout.strip()
    db_status, _, ext = q.partition("|")
    summary["booking"] = {"request_id": rid, "status": status, "db_status": db_status or None,
                          "external_id": ext or None, "seconds": round(secs, 1),
                          "ok": status == "booked" and db_status == "booked" and bool(ext)}


# ---------------------------------------------------------------------------------------------
# 7. summary

def checks_of(summary, voice_required):
    d = summary.get("documents", {})
    n = d.get("total", -1)
    c = {
        "every document accepted": d.get("accepted") == n and d.get("ids_kept", False),
        "every document enriched": d.get("enriched") == n,
        "every document embedded": d.get("embedded") == n,
        "every document searchable": d.get("searchable") == n,
        "HTTP invalid records refused as expected": bool(summary.get("http_invalid")) and all(
            v["ok"] for v in summary["http_invalid"].values()),
        "Kafka invalid records dead-lettered with the expected reasons": bool(
            summary.get("dlq")) and all(v["ok"] for v in summary["dlq"].values()),
        "answers cite the expected documents": bool(summary.get("questions")) and all(
            q["ok"] for q in summary["questions"]),
        "the booking is in PostgreSQL as booked": summary.get("booking", {}).get("ok", False),
    }
    v = summary.get("voice", {})
    if voice_required or v.get("ran"):
        c["voice turn: transcript, cited reply, reply audio"] = v.get("ok", False)
    return c


def summarize(s, summary, started):
    d = summary.get("documents", {})
    dlq = summary.get("dlq", {})
    reasons = {}
    for v in dlq.values():
        reasons[v["reason"]] = reasons.get(v["reason"], 0) + 1
    v = summary.get("voice", {})
    b = summary.get("booking", {})
    qs = summary.get("questions", [])
    rows = [
        ("documents", "%s posted, %s accepted, %s enriched, %s embedded, %s searchable" % (
            d.get("total"), d.get("accepted"), d.get("enriched"), d.get("embedded"),
            d.get("searchable"))),
        ("chunks", "%s (indexed by rag, from tickets.embedded)" % summary.get("chunks")),
        ("refused over HTTP", "%d (%s)" % (len(summary.get("http_invalid", {})), ", ".join(
            sorted({"%s %s" % (x["status"], x["code"]) for x in
                    summary.get("http_invalid", {}).values()})))),
        ("DLQ records", "%d: %s" % (len(dlq), ", ".join(
            "%s x%d" % (r, n) for r, n in sorted(reasons.items(), key=lambda x: str(x[0]))))),
        ("pipeline", "%s s from the POST until every document was searchable"
         % summary.get("pipeline_s")),
        ("questions", "%d (%d es, %d en), %d cite the expected document (%d first)" % (
            len(qs), sum(q.get("lang") == "es" for q in qs), sum(q.get("lang") == "en" for q in qs),
            sum(q["ok"] for q in qs), sum(q.get("expected_first", False) for q in qs))),
        ("query latency p50", "%s ms round trip (rag's own p50 %s ms)" % (
            summary.get("query_p50_ms"),
            round(statistics.median([q["rag_ms"] for q in qs if "rag_ms" in q]), 1)
            if qs else None)),
        ("voice turn", ("first reply audio %s ms after the end of speech, whole turn %s s (STT: %s)"
                        % (round(v["first_audio_ms"]) if v.get("first_audio_ms") is not None
                           else "?", v.get("turn_s"), v.get("stt")))
         if v.get("ran") else "skipped: " + v.get("reason", "not reached")),
        ("booking", "%s in PostgreSQL (API said %s), booking system id %s, %s s" % (
            b.get("db_status"), b.get("status"), b.get("external_id"), b.get("seconds"))
         if b else "not reached"),
    ]
    w = max(len(r[0]) for r in rows)
    say("+-" + "-" * w + "-+-" + "-" * 86 + "+")
    for k, val in rows:
        say("| %-*s | %-86s|" % (w, k, val))
    say("+-" + "-" * w + "-+-" + "-" * 86 + "+")
    checks = checks_of(summary, s.voice)
    for name, ok in checks.items():
        say("  %s %s" % ("ok  " if ok else "FAIL", name))
    summary["checks"] = checks
    summary["ok"] = all(checks.values())
    summary["duration_s"] = round(time.time() - started, 1)
    path = os.path.join(s.out, "summary.json")
    with open(path, "w") as f:
        json.dump(summary, f, indent=2, ensure_ascii=False)
    say("summary: %s; %s in %.0f s" % (rel(path), "every check passed" if summary["ok"]
                                        else "SOME CHECKS FAILED", summary["duration_s"]))


# ---------------------------------------------------------------------------------------------

def on_signal(signum, _frame):
    raise Interrupted(signal.Signals(signum).name)


def prepare(out):
    """A fresh state folder; whatever an earlier `make up` or a killed demo left is stopped."""
    if stop_recorded(out, quiet=True):
        say("(stopped the stack an earlier run left in %s)" % rel(out))
    for name in ("logs", "voice", "pg"):
        shutil.rmtree(os.path.join(out, name), ignore_errors=True)
    for name in ("env", "summary.json", "bootstrap", "api_keys"):
        try:
            os.unlink(os.path.join(out, name))
        except FileNotFoundError:
            pass
    os.makedirs(os.path.join(out, "logs"), exist_ok=True)


def run(mode):
    started = time.time()
    docs = corpus.load_ndjson(os.path.join(CORPUS, "documents.ndjson"))
    cases = corpus.load_ndjson(os.path.join(CORPUS, "invalid.ndjson"))
    expected, questions = corpus.load_json("expected.json"), corpus.load_json("questions.json")
    n_raw = sum(c["via"] == "kafka" for c in cases)
    prepare(OUT)
    s, summary = Stack(OUT), {"mode": mode}
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    keep = False
    try:
        step(1, "the stack: Kafka, PostgreSQL, fakes, the five services (API keys on)")
        start_stack(s, summary)
        step(2, "ingest: %d documents over HTTP, %d invalid records" % (len(docs), len(cases)))
        ingest_corpus(s, summary, docs, cases, expected["invalid"])
        step(3, "the pipeline at work")
        wait_pipeline(s, summary, docs, n_raw)
        account_for_documents(s, summary, docs, cases, expected["invalid"])
        if mode == "up":
            up_banner(s)
            keep = True
            return 0
        step(4, "questions through rag (POST /v1/query, top_k 3)")
        ask_questions(s, summary, docs, questions)
        step(5, "a voice turn (taina-voice-client -> voice-gateway -> STT -> rag -> espeak-ng)")
        voice_turn(s, summary, questions, summary.get("stt") or "fake")
        step(6, "an appointment (POST /v1/appointments -> booking system -> PostgreSQL)")
        book_appointment(s, summary, questions)
        step(7, "summary")
        summarize(s, summary, started)
        return 0 if summary["ok"] else 1
    except Interrupted as e:
        print()
        say("interrupted (%s): stopping everything" % e)
        return 130
    except Exception as e:  # a step that could not go on: say why, stop, fail
        say("\nFAILED: %s" % e)
        summary["error"] = str(e)
        with open(os.path.join(OUT, "summary.json"), "w") as f:
            json.dump(dict(summary, ok=False), f, indent=2, ensure_ascii=False)
        return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        if not keep:
            if mode == "demo":
                step(8, "stop")
            s.stop()
            try:  # its URLs point at nothing now
                os.unlink(os.path.join(OUT, "env"))
            except FileNotFoundError:
                pass


def up_banner(s):
    say("\nThe stack is up. Ports: %s" % ", ".join("%s %d" % kv for kv in s.ports.items()))
    say("  source %s/env     # TAINA_*_URL, TAINA_API_KEY, TAINA_KAFKA_BROKERS, "
        "TAINA_DATABASE_URL" % rel(s.out))
    say("  curl -s $TAINA_RAG_URL/v1/query -H \"Authorization: Bearer $TAINA_API_KEY\" "
        "-H 'Content-Type: application/json' \\\n"
        "       -d '{\"question\":\"¿Qué necesito para renovar el pasaporte?\"}'")
    say("  more in README.md, \"Explore by hand\"; logs in %s/; make down stops it" % rel(s.logs))


def main(argv):
    mode = argv[1] if len(argv) > 1 else "demo"
    if mode not in ("demo", "up", "down"):
        sys.stderr.write("usage: demo.py [demo|up|down]\n")
        return 2
    if mode == "down":
        for name in ("env", "bootstrap"):  # they point at nothing now
            try:
                os.unlink(os.path.join(OUT, name))
            except FileNotFoundError:
                pass
        if not stop_recorded(OUT):
            say("nothing to stop (no %s)" % rel(os.path.join(OUT, "stack.json")))
        return 0
    return run(mode)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
