"""Memory of each service: RSS when idle (ready, nothing to do, 2 s after the last was ready) and
VmHWM (peak RSS) after a standard load, in one run on devstack:

  ingest + embedder + rag  N tickets of 1 KB POSTed as NDJSON batches of 100, drained by the
                           embedder (hash) into rag's local index; then rag under wrk for SECONDS
                           (/v1/search, 16 connections, 64 questions in turn)
  appointments             M booking requests on appointments.requests, booked against the booking
                           fake and a throwaway PostgreSQL
  voice-gateway            K concurrent sessions of taina-voice-client's load mode (an espeak
                           question, the spoken answer), when the gateway is built

Every service runs with its defaults (only what the load needs is set). No anchor here: the Python
peers' memory under the same work is in the ingest, embedder and rag benches.
"""
import json
import os
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
SUPPORT = os.path.join(HERE, "..", "..", "support")
sys.path.insert(0, SUPPORT)
sys.path.insert(0, os.path.join(HERE, "..", "ingest"))
from preload import ticket  # noqa: E402
from taina_harness import BIN, KAFKA_FAST_GROUP, Devstack, Service, TempDir, http, producer  # noqa: E402

N = int(os.environ.get("BENCH_MEM_N", "5000"))
M = int(os.environ.get("BENCH_MEM_M", "500"))
K = int(os.environ.get("BENCH_MEM_K", "50"))
SECONDS = int(os.environ.get("BENCH_MEM_SECONDS", "5"))
PY = "/usr/bin/python3"


def status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def metric(port, name, labels=""):
    body = http("GET", port, "/metrics", timeout=10)[2].decode()
    return sum(float(l.rsplit(" ", 1)[1]) for l in body.splitlines()
               if l.startswith(name) and l[len(name):len(name) + 1] in ("{", " ") and labels in l)


def wait(cond, what, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise SystemExit("memory: %s not done after %d s" % (what, timeout))


def tickets(n):
    import random
    rng = random.Random(7)
    out = []
    for _ in range(n):
        t = json.loads(ticket(rng, 1024)[1])
        t.pop("schema_version")
        t.pop("tenant_id")
        out.append(json.dumps(t, ensure_ascii=False))
    return out


def pipeline(tmp, figures, notes):
    """ingest, embedder, rag and appointments on one devstack."""
    from pg import Postgres
    procs = []
    pg = None
    try:
        ds = Devstack(tmp)
        procs.append(ds)
        base = {"TAINA_KAFKA_BROKERS": ds.bootstrap, "TAINA_LOG_LEVEL": "warn",
                "TAINA_AUTH_DISABLED": "1"}
        base.update(KAFKA_FAST_GROUP)
        pg = Postgres()
        fake = Service("fake-booking", tmp, {"TAINA_LOG_LEVEL": "warn"})
        procs.append(fake)
        svc = {"ingest": Service("ingest", tmp, dict(base, TAINA_HTTP_MAX_BODY="8MiB")),
               "embedder": Service("embedder", tmp, dict(base)),
               "rag": Service("rag", tmp, dict(base)),
               "appointments": Service("appointments", tmp, dict(
                   base, TAINA_DATABASE_URL=pg.uri, TAINA_APPOINTMENTS_ID_KEY="ab" * 32,
                   TAINA_BOOKING_URL="http://127.0.0.1:%d" % fake.port,
                   TAINA_BOOKING_TOKEN_URL="http://127.0.0.1:%d/token" % fake.port,
                   TAINA_BOOKING_CLIENT_ID="taina", TAINA_BOOKING_CLIENT_SECRET="secret"))}
        procs += list(svc.values())
        fake.wait_ready()
        for s in svc.values():
            s.wait_ready(60)
        time.sleep(2)
        for k, s in svc.items():
            figures[k] = {"idle": status_kb(s.proc.pid, "VmRSS")}

        # ingest -> embedder -> rag
        lines = tickets(N)
        ing, emb, rag = svc["ingest"], svc["embedder"], svc["rag"]
        for i in range(0, N, 100):
            st, _, data = http("POST", ing.port, "/v1/tickets", "\n".join(lines[i:i + 100]),
                               {"Content-Type": "application/x-ndjson"})
            if st != 202:
                raise SystemExit("memory: POST /v1/tickets: %d %s" % (st, data[:200]))

        def indexed():
            if metric(emb.port, "taina_embedder_records_total", 'outcome="embedded"') < N:
                return False
            return metric(rag.port, "taina_rag_index", 'what="chunks"') >= \
                metric(emb.port, "taina_embedder_chunks_total")
        wait(indexed, "indexing %d tickets" % N)
        chunks = int(metric(rag.port, "taina_rag_index", 'what="chunks"'))
        notes.append("%d tickets of 1 KB through ingest, embedder and rag (%d chunks)" % (N, chunks))
        # rag under wrk
        qf, bf = tmp.file("questions.txt"), tmp.file("bodies.ndjson")
        subprocess.run([PY, os.path.join(HERE, "..", "rag", "questions.py"), qf, bf, "64"],
                       check=True, capture_output=True)
        w = subprocess.run(["wrk", "-t1", "-c16", "-d%ds" % SECONDS, "-s",
                            os.path.join(HERE, "..", "rag", "post.lua"),
                            "http://127.0.0.1:%d/v1/search" % rag.port, "--", bf, "unused"],
                           capture_output=True, text=True)
        qps = [l.split()[1] for l in w.stdout.splitlines() if l.startswith("Requests/sec:")]
        bad = [l for l in w.stdout.splitlines() if "Non-2xx" in l or "Socket errors" in l]
        if w.returncode or not qps or bad:
            raise SystemExit("memory: wrk: %s %s" % (w.stdout[-300:], w.stderr[-300:]))
        notes.append("rag /v1/search under wrk for %d s, 16 connections: %.0f QPS" % (
            SECONDS, float(qps[0])))

        # appointments
        app = svc["appointments"]
        p = producer(ds.bootstrap)
        for i in range(M):
            rid = str(uuid.uuid4())
            p.produce("appointments.requests", key=rid, value=json.dumps({
                "schema_version": 1, "request_id": rid, "tenant_id": "default",
                "session_id": str(uuid.uuid4()), "citizen_name": "Lucía Martín",
                "id_number": "%08dZ" % i, "phone": "+34 600 %03d %03d" % (i % 1000, i // 1000),
                "service_code": "office-%d" % i,
                "preferred_window": {"from": "2031-06-02T09:00:00Z", "to": "2031-06-02T14:00:00Z"},
                "lang": "es", "requested_at": "2031-06-01T10:00:00Z"}))
            p.poll(0)
        p.flush(60)
        wait(lambda: pg.sql("SELECT count(*) FROM appointments WHERE status = 'booked'")[0][0] >= M
             and pg.sql("SELECT count(*) FROM appointments_outbox WHERE sent_at IS NULL")[0][0] == 0,
             "booking %d requests" % M)
        notes.append("%d appointment requests booked (booking fake, PostgreSQL)" % M)
        for k, s in svc.items():
            if s.proc.poll() is not None:
                raise SystemExit("memory: %s exited: %s" % (k, s.tail(5)))
            figures[k]["hwm"] = status_kb(s.proc.pid, "VmHWM")
            figures[k]["rss"] = status_kb(s.proc.pid, "VmRSS")
    finally:
        for p in reversed(procs):
            p.stop()
        if pg:
            pg.close()


def voice(figures, notes):
    if not os.path.exists(os.path.join(BIN, "taina-voice-gateway")) or \
            not os.path.exists(os.path.join(SUPPORT, "voice_support.py")):
        notes.append("voice-gateway: not built in this tree (skipped)")
        return
    from voice_support import KA, SPEECH_KEY, espeak_wav, voice_stack
    st = voice_stack("taina-bench-memory-voice-", None,
                     gateway_env={"TAINA_LOG_LEVEL": "warn"}, fake_env={"TAINA_LOG_LEVEL": "warn"})
    try:
        vg = st["vg"]
        http("POST", st["fake"].port, "/admin/stt/transcript", {"text": "hola"},
             {"Authorization": "Bearer " + SPEECH_KEY})
        time.sleep(2)
        figures["voice-gateway"] = {"idle": status_kb(vg.proc.pid, "VmRSS")}
        wav = espeak_wav(st["tmp"], "q.wav", "Hola, buenos días", "es", lead=0.3, tail=0.8)
        p = subprocess.run([os.path.join(BIN, "taina-voice-client"), "--url",
                            "ws://127.0.0.1:%d/v1/sessions/ws" % vg.port, "--log-level", "warn",
                            "--key", KA, "--wav", wav, "--sessions", str(K), "--turns", "2",
                            "--speed", "1", "--ramp-ms", "1000", "--quiet", "1",
                            "--timeout-ms", "120000"], capture_output=True, text=True)
        summary = [json.loads(x) for x in p.stdout.splitlines() if x.startswith('{"event":"summary"')]
        if not summary or summary[0].get("completed") != K:
            raise SystemExit("memory: voice-client: %s" % (p.stdout[-300:] + p.stderr[-300:]))
        notes.append("%d concurrent voice sessions, 2 spoken turns each (voice-client load mode)" % K)
        figures["voice-gateway"]["hwm"] = status_kb(vg.proc.pid, "VmHWM")
        figures["voice-gateway"]["rss"] = status_kb(vg.proc.pid, "VmRSS")
    finally:
        st["stop"]()


def main():
    tmp = TempDir("taina-bench-memory-")
    figures, notes = {}, []
    try:
        pipeline(tmp, figures, notes)
        voice(figures, notes)
    finally:
        tmp.cleanup()
    print("memory: each service with its defaults; idle = VmRSS 2 s after ready, loaded = VmHWM "
          "after the standard load:")
    for n in notes:
        print("  - " + n)
    print("  %-14s %10s %12s %12s" % ("service", "idle MB", "loaded MB", "RSS after"))
    for k, f in figures.items():
        print("  %-14s %10.1f %12.1f %12.1f" % (k, f["idle"] / 1024, f["hwm"] / 1024, f["rss"] / 1024))
    for k, f in figures.items():
        goal = "<30" if k == "ingest" else "-"
        print("RESULT memory.%s.idle_rss_mb value=%.1f goal=-" % (k, f["idle"] / 1024))
        print("RESULT memory.%s.loaded_hwm_mb value=%.1f goal=%s" % (k, f["hwm"] / 1024, goal))


if __name__ == "__main__":
    main()
