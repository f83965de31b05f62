"""Horizontal scaling of taina-embedder: chunks/s with 1, 2 and 4 instances in one consumer group
on the 12 partitions of tickets.enriched, against an embeddings API that takes a fixed 20 ms per
request (taina-fake-embeddings with TAINA_FAKE_LATENCY_MS=20; the embedder's openai provider,
no vector store). With batches of BATCH chunks one instance can do at most BATCH / 20 ms, so the
workers, not the CPU, are the limit, and adding workers should add throughput.

Each point: a fresh devstack preloaded with N enriched records of K chunks (the embedder bench's
corpus and preload), the fake, then the instances started together (they join the group in its
first round). The rate is the steady one: chunks written (the instances' summed
taina_embedder_chunks_total, scraped every 25 ms) between the scrapes that show 5% and 90% of the
N x K, over that time (the tail, where the instances whose partitions held fewer records are idle,
is left out; the rate from the first chunk to the last is printed too). CPU: user + sys of the instances, the fake and devstack over the same time,
in cores, to show the machine was not the limit.
"""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "support"))
from taina_harness import KAFKA_FAST_GROUP, Devstack, Service, TempDir, http  # noqa: E402

N = int(os.environ.get("BENCH_SCALING_N", "2400"))
K = int(os.environ.get("BENCH_SCALING_K", "4"))
BATCH = int(os.environ.get("BENCH_SCALING_BATCH", "16"))
LATENCY = int(os.environ.get("BENCH_SCALING_LATENCY_MS", "20"))
POINTS = [int(x) for x in os.environ.get("BENCH_SCALING_POINTS", "1 2 4").split()]
PY = "/usr/bin/python3"


def cpu_s(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def chunks_of(port):
    try:
        body = http("GET", port, "/metrics", timeout=5)[2].decode()
    except OSError:
        return 0.0
    return sum(float(l.rsplit(" ", 1)[1]) for l in body.splitlines()
               if l.startswith("taina_embedder_chunks_total"))


def point(tmp, corpus, n_inst):
    procs = []
    try:
        if os.path.exists(tmp.file("bootstrap")):
            os.remove(tmp.file("bootstrap"))  # the last point's: Devstack waits for a new one
        ds = Devstack(tmp)
        procs.append(ds)
        pre = subprocess.run([PY, os.path.join(HERE, "..", "embedder", "preload.py"), ds.bootstrap,
                              corpus, str(N), str(K)], capture_output=True, text=True)
        if pre.returncode:
            raise SystemExit("scaling: preload: " + pre.stderr.strip()[-300:])
        fake = Service("fake-embeddings", tmp, {"TAINA_FAKE_LATENCY_MS": str(LATENCY),
                                                "TAINA_HTTP_THREADS": "16",
                                                "TAINA_LOG_LEVEL": "warn"}, tag="fake.%d" % n_inst)
        procs.append(fake)
        fake.wait_ready()
        env = {"TAINA_KAFKA_BROKERS": ds.bootstrap, "TAINA_LOG_LEVEL": "warn",
               "TAINA_EMBED_PROVIDER": "openai", "TAINA_EMBED_URL": "http://127.0.0.1:%d" % fake.port,
               "TAINA_EMBED_MODEL": "text-embedding-3-small", "TAINA_EMBED_DIMS": "384",
               "TAINA_EMBEDDER_BATCH_CHUNKS": str(BATCH), "TAINA_EMBED_BATCH": str(BATCH)}
        env.update(KAFKA_FAST_GROUP)
        embs = [Service("embedder", tmp, env, tag="embedder.%d.%d" % (n_inst, i))
                for i in range(n_inst)]
        procs += embs
        want = N * K
        others = [fake.proc.pid, ds.proc.pid]
        samples = []  # (time, chunks written, CPU seconds of instances + fake + devstack)
        start = time.time()
        deadline = start + 300
        unready = list(embs)  # instances without partitions yet (their /ready is 503)
        all_ready = None      # seconds from the start until every instance had partitions
        while time.time() < deadline:
            for e in list(unready):
                try:
                    if http("GET", e.port, "/ready", timeout=2)[0] == 200:
                        unready.remove(e)
                except OSError:
                    pass
            if not unready and all_ready is None:
                all_ready = time.time() - start
            for e in embs:
                if e.proc.poll() is not None:
                    raise SystemExit("scaling: an embedder exited: " + e.tail(5))
            done = sum(chunks_of(e.port) for e in embs)
            now = time.time()
            if done > 0:
                samples.append((now, done, sum(cpu_s(e.proc.pid) for e in embs) +
                                sum(cpu_s(p) for p in others)))
            if done >= want:
                break
            time.sleep(0.025)
        else:
            raise SystemExit("scaling: %d instances: %d of %d chunks after 300 s" % (n_inst, done, want))
        # The steady window: from 5% to 90% of the chunks written (the instances' first batches
        # and the tail, where the instances whose partitions held fewer records are done, left out).
        a = next(x for x in samples if x[1] >= 0.05 * want)
        b = next(x for x in samples if x[1] >= 0.90 * want)
        if b[0] <= a[0]:
            raise SystemExit("scaling: too few chunks to time (raise BENCH_SCALING_N)")
        rate = (b[1] - a[1]) / (b[0] - a[0])
        drain = (samples[-1][1] - samples[0][1]) / max(1e-3, samples[-1][0] - samples[0][0])
        stats = http("GET", fake.port, "/admin/stats")[2].decode()
        shares = [int(chunks_of(e.port)) for e in embs]
        # offset commits refused during a rebalance: that batch is embedded again by the next owner
        refused = [sum("rebalance in progress" in line or "generation id is not valid" in line
                       for line in open(e.logpath, errors="replace")) for e in embs]
        return (rate, drain, b[0] - a[0], (b[2] - a[2]) / (b[0] - a[0]), shares,
                (all_ready, a[0] - start, b[0] - start, refused))
    finally:
        for p in reversed(procs):
            p.stop()


def main():
    tmp = TempDir("taina-bench-scaling-")
    try:
        corpus = tmp.file("corpus.txt")
        subprocess.run([PY, os.path.join(HERE, "..", "embedder", "corpus.py"), corpus, str(N * K),
                        "200"], check=True, capture_output=True)
        ceiling = BATCH / (LATENCY / 1000.0)
        print("scaling: taina-embedder instances in one group on 12 partitions; %d records x %d "
              "chunks of 200 words; batches of %d chunks; embeddings API (fake) +%d ms a request, "
              "so one instance does at most %.0f chunks/s; %d cores" % (
                  N, K, BATCH, LATENCY, ceiling, os.cpu_count()))
        res = {}
        for n in POINTS:
            rate, drain, secs, cores, shares, group = point(tmp, corpus, n)
            res[n] = rate
            base = res.get(POINTS[0], rate)
            print("  %d instance%s  %7.0f chunks/s  (%4.1f s from 5%% to 90%%; %4.0f chunks/s first to last)  x%.2f of %d instance%s, "
                  "efficiency %3.0f%%; %.0f%% of %d x the one-instance bound; CPU busy %.2f cores" % (
                      n, " " if n == 1 else "s", rate, secs, drain, rate / base, POINTS[0],
                      "" if POINTS[0] == 1 else "s", 100 * rate / base / (n / POINTS[0]),
                      100 * rate / (n * ceiling), n, cores))
            if n > 1:
                print("    chunks per instance: %s (uneven: a late join or a rebalance during the run)"
                      % "/".join(map(str, shares)) if max(shares) > 1.5 * min(shares) else
                      "    chunks per instance: %s" % "/".join(map(str, shares)))
            if n > 1:
                print("    group: every instance had partitions %s; window %.1f-%.1f s after the "
                      "start; offset commits refused in a rebalance: %s" % (
                          "after %.1f s" % group[0] if group[0] is not None else "never seen",
                          group[1], group[2], "/".join(map(str, group[3]))))
        for n in POINTS:
            if n == POINTS[0]:
                print("RESULT scaling.embedder_%d_chunks_per_s value=%.0f goal=-" % (n, res[n]))
            else:
                print("RESULT scaling.embedder_%d_chunks_per_s value=%.0f anchor=%.0f ratio=%.2f "
                      "goal=-" % (n, res[n], res[POINTS[0]], res[n] / res[POINTS[0]]))
    finally:
        tmp.cleanup()


if __name__ == "__main__":
    main()
