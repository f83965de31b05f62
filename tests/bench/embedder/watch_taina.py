#!/usr/bin/env python3
"""Time taina-embedder through N chunks from its /metrics; read its CPU time and peak RSS.

    watch_taina.py PORT PID N T_LAUNCH [TIMEOUT_S]
      -> "taina_chunks C seconds S chunks_per_s R steady_s T steady_chunks_per_s Q
          cpu_s U cpu_us_per_chunk P vmhwm_kb K dlq D first_commit_s F"

Scrapes /metrics every 25 ms. "seconds" runs from T_LAUNCH (epoch seconds, when run.sh started
the process) to the first scrape that shows taina_embedder_chunks_total >= N (chunks counted
once their batch is committed); "steady" from the first scrape showing committed chunks to that
one, counting the chunks committed in between. CPU (utime + stime of /proc/PID/stat, all
threads) and VmHWM are read at that moment, while the process still runs. Exit 1 when the
process dies or N is not reached in time.
"""
import http.client
import os
import re
import sys
import time

CHUNKS = re.compile(rb'^taina_embedder_chunks_total(?:\{[^}]*\})? (\S+)$', re.M)
DLQ = re.compile(rb'^taina_embedder_dlq_total\{[^}]*\} (\S+)$', re.M)
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(") ", 1)[1].split()
    if rest[0] == "Z":
        raise FileNotFoundError
    return (int(rest[11]) + int(rest[12])) / TICK  # utime, stime (fields 14, 15)


def vmhwm_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def main():
    port, pid, want = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    t_launch = float(sys.argv[4])
    timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 120
    conn = None
    t0 = out0 = t0_wall = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            proc_cpu_s(pid)
        except FileNotFoundError:
            sys.exit("watch_taina: taina-embedder exited")
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/metrics")
            body = conn.getresponse().read()
        except (OSError, http.client.HTTPException):
            conn = None
            time.sleep(0.025)
            continue
        now = time.monotonic()
        out = sum(float(v) for v in CHUNKS.findall(body))
        if t0 is None and out > 0:
            t0, out0, t0_wall = now, out, time.time()
        if t0 is not None and out >= want:
            cpu, kb, secs = proc_cpu_s(pid), vmhwm_kb(pid), time.time() - t_launch
            if out == out0:
                sys.exit("watch_taina: N=%d came in one scrape interval: nothing to time" % want)
            dlq = sum(float(v) for v in DLQ.findall(body))
            steady = now - t0
            print("taina_chunks %d seconds %.3f chunks_per_s %.0f steady_s %.3f "
                  "steady_chunks_per_s %.0f cpu_s %.3f cpu_us_per_chunk %.0f vmhwm_kb %d dlq %d "
                  "first_commit_s %.3f"
                  % (out, secs, out / secs, steady, (out - out0) / steady, cpu, cpu / out * 1e6,
                     kb, dlq, t0_wall - t_launch))
            return
        time.sleep(0.025)
    sys.exit("watch_taina: N=%d not reached in %.0f s" % (want, timeout))


if __name__ == "__main__":
    main()
