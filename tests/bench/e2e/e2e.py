"""HTTP ingest to searchable, the whole suite on devstack with its embedded defaults (ingest,
embedder with hash embeddings, rag with its local index; no upstream at all).

N tickets of about SIZE bytes (the realistic es/en text with personal data of
tests/bench/ingest/preload.py) are POSTed as NDJSON batches of BATCH to taina-ingest by POSTERS
client threads, as fast as ingest answers (it answers once the records are on tickets.raw).
Throughput: tickets/s from the first POST until every ticket is searchable (rag's index holds every
chunk the embedder wrote for the N tickets). Latency: every (N / SAMPLES)th ticket is polled on
/v1/search with a filter on its ticket_id until its chunk comes back; the latency runs from the
moment its batch's POST was sent (a few ms before ingest stamps its received_at) to the answer
that holds it. The poller asks for each pending sample in turn, then sleeps 10 ms.
CPU per ticket: user + sys of each service process (/proc/PID/stat) over the run, divided by N;
rag's includes answering the poller. Everything shares the machine's cores with devstack.
"""
import http.client as hc
import json
import os
import random
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "support"))
sys.path.insert(0, os.path.join(HERE, "..", "ingest"))
from preload import ticket  # noqa: E402
from taina_harness import KAFKA_FAST_GROUP, Devstack, Service, TempDir, http  # noqa: E402

N = int(os.environ.get("BENCH_E2E_N", "10000"))
SIZE = int(os.environ.get("BENCH_E2E_SIZE", "1024"))
BATCH = int(os.environ.get("BENCH_E2E_BATCH", "100"))
POSTERS = int(os.environ.get("BENCH_E2E_POSTERS", "2"))
SAMPLES = int(os.environ.get("BENCH_E2E_SAMPLES", "200"))
WARM = 20  # tickets through the pipeline before the clock starts
TIMEOUT = float(os.environ.get("BENCH_E2E_TIMEOUT", "300"))


def cpu_s(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def metric(body, name, labels=""):
    """Sum of the samples of @name whose labels contain @labels."""
    total = 0.0
    for line in body.splitlines():
        if line.startswith(name) and line[len(name):len(name) + 1] in ("{", " ") and labels in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def metrics(port):
    return http("GET", port, "/metrics", timeout=10)[2].decode()


def pct(v, p):
    v = sorted(v)
    return v[max(0, int(round(p / 100.0 * len(v) + 0.4999)) - 1)] if v else 0.0


def make_tickets(n, size):
    rng = random.Random(12)
    out = []
    for _ in range(n):
        _, raw = ticket(rng, size)
        t = json.loads(raw)
        for k in ("schema_version", "tenant_id"):
            t.pop(k)
        out.append(t)
    return out


def main():
    tickets = make_tickets(N + WARM, SIZE)
    warm, tickets = tickets[:WARM], tickets[WARM:]
    avg = sum(len(json.dumps(t, ensure_ascii=False).encode()) for t in tickets) / N
    step = max(1, N // SAMPLES)
    sampled = {t["ticket_id"]: t for t in tickets[step - 1::step]}
    batches = [tickets[i:i + BATCH] for i in range(0, N, BATCH)]
    bodies = ["\n".join(json.dumps(t, ensure_ascii=False) for t in b).encode() for b in batches]

    tmp = TempDir("taina-bench-e2e-")
    procs = []
    try:
        ds = Devstack(tmp)
        procs.append(ds)
        base = {"TAINA_KAFKA_BROKERS": ds.bootstrap, "TAINA_LOG_LEVEL": "warn",
                "TAINA_AUTH_DISABLED": "1"}
        base.update(KAFKA_FAST_GROUP)
        ingest = Service("ingest", tmp, dict(base, TAINA_HTTP_MAX_BODY="8MiB"))
        emb = Service("embedder", tmp, dict(base))
        rag = Service("rag", tmp, dict(base))
        procs += [ingest, emb, rag]
        for s in (ingest, emb, rag):
            s.wait_ready(60)
        svc = {"ingest": ingest, "embedder": emb, "rag": rag}
        # Warm-up: a first batch through the whole pipeline before the clock starts (each
        # service's first poll, group join, transaction and fetch happen here, once in a
        # process's life; the figures are about a running suite).
        tw = time.time()
        st, _, data = http("POST", ingest.port, "/v1/tickets", b"\n".join(
            json.dumps(t, ensure_ascii=False).encode() for t in warm),
            {"Content-Type": "application/x-ndjson"})
        if st != 202:
            raise SystemExit("e2e: warm-up POST: %d %s" % (st, data[:200]))
        while True:
            me = metrics(emb.port)
            if metric(me, "taina_embedder_records_total", 'outcome="embedded"') >= len(warm) and \
                    metric(metrics(rag.port), "taina_rag_index", 'what="chunks"') >= \
                    metric(me, "taina_embedder_chunks_total"):
                break
            if time.time() - tw > 60:
                raise SystemExit("e2e: the warm-up tickets not searchable after 60 s")
            time.sleep(0.02)
        warm_s = time.time() - tw
        base_recs = metric(metrics(emb.port), "taina_embedder_records_total", 'outcome="embedded"')
        base_chunks = metric(metrics(rag.port), "taina_rag_index", 'what="chunks"')
        base_out = metric(metrics(ingest.port), "taina_ingest_records_out_total", 'topic="tickets.enriched"')
        rss0 = {k: status_kb(s.proc.pid, "VmRSS") for k, s in svc.items()}
        cpu0 = {k: cpu_s(s.proc.pid) for k, s in svc.items()}
        cpu0["devstack"] = cpu_s(ds.proc.pid)

        sent = {}  # sampled ticket_id -> time its batch's POST was sent
        found = {}  # sampled ticket_id -> latency s
        lock = threading.Lock()
        errors = []
        next_batch = [0]

        def poster():
            try:
                post()
            except Exception as e:  # noqa: BLE001 (any failure ends the run, with its reason)
                errors.append("poster: %r" % e)

        def post():
            conn = hc.HTTPConnection("127.0.0.1", ingest.port, timeout=60)
            while True:
                with lock:
                    i = next_batch[0]
                    next_batch[0] += 1
                if i >= len(batches) or errors:
                    return
                t = time.time()
                with lock:
                    for tk in batches[i]:
                        if tk["ticket_id"] in sampled:
                            sent[tk["ticket_id"]] = t
                for attempt in range(20):
                    conn.request("POST", "/v1/tickets", body=bodies[i],
                                 headers={"Content-Type": "application/x-ndjson"})
                    r = conn.getresponse()
                    data = r.read()
                    if r.status != 503:
                        break
                    time.sleep(0.2)
                if r.status != 202 or json.loads(data).get("accepted") != len(batches[i]):
                    errors.append("POST batch %d: %d %s" % (i, r.status, data[:200]))
                    return

        def poller():
            try:
                poll()
            except Exception as e:  # noqa: BLE001
                errors.append("poller: %r" % e)

        def poll():
            conn = None
            while len(found) < len(sampled) and not errors:
                with lock:
                    pending = [k for k in sent if k not in found]
                for tid in pending:
                    body = json.dumps({"question": sampled[tid]["title"], "top_k": 1,
                                       "filters": {"ticket_id": tid}})
                    try:
                        if conn is None:
                            conn = hc.HTTPConnection("127.0.0.1", rag.port, timeout=30)
                        conn.request("POST", "/v1/search", body=body,
                                     headers={"Content-Type": "application/json"})
                        r = conn.getresponse()
                        data = r.read()
                    except (OSError, hc.HTTPException):
                        conn = None
                        continue
                    now = time.time()
                    if r.status == 200 and any(x["ticket_id"] == tid
                                               for x in json.loads(data)["results"]):
                        found[tid] = now - sent[tid]
                time.sleep(0.01)

        first = {}  # when each stage had its first record out

        def watch_first():
            while len(first) < 3 and not errors and time.time() - t0 < TIMEOUT:
                now = time.time()
                if "ingest0" not in first and metric(metrics(ingest.port),
                                                     "taina_ingest_records_out_total") > base_out:
                    first["ingest0"] = now - t0
                if "embedder0" not in first and metric(metrics(emb.port),
                                                       "taina_embedder_records_total") > base_recs:
                    first["embedder0"] = now - t0
                if "rag0" not in first and metric(metrics(rag.port), "taina_rag_index",
                                                  'what="chunks"') > base_chunks:
                    first["rag0"] = now - t0
                time.sleep(0.02)

        threads = [threading.Thread(target=poster) for _ in range(POSTERS)]
        wt = threading.Thread(target=watch_first)
        pt = threading.Thread(target=poller)
        t0 = time.time()
        for th in threads:
            th.start()
        pt.start()
        wt.start()
        for th in threads:
            th.join()
        t_posted = time.time()
        if errors:
            raise SystemExit("e2e: " + errors[0])
        # Done when the embedder has every ticket and rag's index every chunk it wrote.
        t_end = None
        deadline = t0 + TIMEOUT
        stage = first  # when each stage had its first and all N (ingest enriched, embedder embedded)
        while time.time() < deadline and not errors:
            now = time.time()
            if "ingest" not in stage and metric(metrics(ingest.port), "taina_ingest_records_out_total",
                                                'topic="tickets.enriched"') >= N + base_out:
                stage["ingest"] = now - t0
            me = metrics(emb.port)
            recs = metric(me, "taina_embedder_records_total", 'outcome="embedded"')
            if recs >= N + base_recs:
                stage.setdefault("embedder", now - t0)
            if recs >= N + base_recs:
                chunks = metric(me, "taina_embedder_chunks_total")
                have = metric(metrics(rag.port), "taina_rag_index", 'what="chunks"')
                if have >= chunks:
                    t_end = now
                    break
            time.sleep(0.02)
        if errors:
            raise SystemExit("e2e: " + errors[0])
        if t_end is None:
            raise SystemExit("e2e: not every ticket searchable after %.0f s (embedder %d of %d)"
                             % (TIMEOUT, recs, N))
        pt.join(max(1.0, deadline - time.time()))
        if pt.is_alive():
            errors.append("stop")
            raise SystemExit("e2e: %d of %d samples never found" % (len(sampled) - len(found),
                                                                   len(sampled)))
        cpu = {k: cpu_s(s.proc.pid) - cpu0[k] for k, s in svc.items()}
        cpu["devstack"] = cpu_s(ds.proc.pid) - cpu0["devstack"]
        hwm = {k: status_kb(s.proc.pid, "VmHWM") for k, s in svc.items()}
        mi = metrics(ingest.port)
        dlq = metric(mi, "taina_ingest_dlq_total") + metric(metrics(emb.port), "taina_embedder_dlq_total")
        secs = t_end - t0
        lat = [v * 1000 for v in found.values()]
        tps = N / secs
        p50, p90, p99 = pct(lat, 50), pct(lat, 90), pct(lat, 99)
        us = {k: v / N * 1e6 for k, v in cpu.items()}
        svc_us = us["ingest"] + us["embedder"] + us["rag"]
        print("e2e: %d tickets of %.0f bytes (es/en, with personal data), NDJSON batches of %d, %d "
              "client threads; devstack, ingest, embedder (hash), rag (local index), no auth"
              % (N, avg, BATCH, POSTERS))
        print("  posted in %.1f s (%.0f tickets/s accepted by ingest); all %d chunks searchable "
              "after %.1f s" % (t_posted - t0, N / (t_posted - t0), chunks - base_chunks, secs))
        print("  warm-up: %d tickets through the pipeline in %.1f s before the clock started"
              % (WARM, warm_s))
        print("  first ticket enriched after %.2f s, embedded after %.2f s, searchable after %.2f s"
              % (stage.get("ingest0", -1), stage.get("embedder0", -1), stage.get("rag0", -1)))
        print("  every ticket enriched after %.1f s, embedded after %.1f s, searchable after %.1f s"
              % (stage.get("ingest", secs), stage.get("embedder", secs), secs))
        print("  throughput %.0f tickets/s, first POST to last searchable" % tps)
        print("  latency POST sent -> returned by /v1/search (%d samples): p50 %.0f ms, p90 %.0f "
              "ms, p99 %.0f ms, max %.0f ms" % (len(lat), p50, p90, p99, max(lat)))
        print("  CPU per ticket: ingest %.0f us, embedder %.0f us, rag %.0f us (with the poller's "
              "searches), devstack %.0f us; services %.0f us" % (
                  us["ingest"], us["embedder"], us["rag"], us["devstack"], svc_us))
        print("  memory: RSS after the warm-up -> VmHWM: ingest %.1f -> %.1f MB, embedder %.1f -> %.1f "
              "MB, rag %.1f -> %.1f MB; dead letters %d" % (
                  rss0["ingest"] / 1024, hwm["ingest"] / 1024, rss0["embedder"] / 1024,
                  hwm["embedder"] / 1024, rss0["rag"] / 1024, hwm["rag"] / 1024, dlq))
        print("  anchor: none yet (no Python peer of the whole pipeline; each stage's peer is in "
              "its own bench)")
        print("RESULT e2e.tickets_per_s value=%.0f goal=-" % tps)
        print("RESULT e2e.latency_p50_ms value=%.0f goal=-" % p50)
        print("RESULT e2e.latency_p99_ms value=%.0f goal=-" % p99)
        print("RESULT e2e.cpu_us_per_ticket value=%.0f goal=-" % svc_us)
        for k in ("ingest", "embedder", "rag", "devstack"):
            print("RESULT e2e.%s_cpu_us_per_ticket value=%.0f goal=-" % (k, us[k]))
        if dlq:
            raise SystemExit("e2e: %d dead letters" % dlq)
    finally:
        for p in reversed(procs):
            p.stop()
        tmp.cleanup()


if __name__ == "__main__":
    main()
