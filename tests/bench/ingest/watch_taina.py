#!/usr/bin/env python3
"""Time taina-ingest through N records from its /metrics, and read its peak RSS.

    watch_taina.py PORT PID N [TIMEOUT_S]
      -> "taina_records N seconds S records_per_s R vmhwm_kb K dlq D cpu_us_per_record C"

Scrapes /metrics every 25 ms near the start and the end, less often in between (pause()): the
clock starts at the first scrape that shows committed outputs (taina_ingest_records_out_total > 0:
the first transaction is done) and stops at the first that shows N; the rate counts the records
committed in between (the steady state, as the ceiling and the Python peer measure it). VmHWM comes
from /proc/PID/status while the process still runs. Exit 1 when the process dies or N is not
reached in time.
"""
import http.client
import os
import re
import sys
import time

OUT = re.compile(rb'^taina_ingest_records_out_total\{[^}]*\} (\S+)$', re.M)
DLQ = re.compile(rb'^taina_ingest_dlq_total\{[^}]*\} (\S+)$', re.M)


def vmhwm_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def cpu_s(pid):
    """User + system CPU seconds of PID so far, all threads (/proc/PID/stat fields 14 and 15)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pause(t0, out0, now, out, want):
    """Seconds to the next scrape: 25 ms around the start and the end of the run, so that both
    are seen to within 25 ms, and in between a fraction of the time N is still away at the rate
    seen so far, up to 200 ms. A scrape is some 2 ms of CPU between this script and the service's
    HTTP thread, which the ceiling (timing itself) does not pay: 40 a second took some 4% of the
    machine from the service being measured."""
    if t0 is None or out <= out0 or now <= t0:
        return 0.025
    left = (want - out) / ((out - out0) / (now - t0))
    return min(0.2, max(0.025, 0.4 * left))


def main():
    port, pid, want = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 120
    conn = None
    t0 = out0 = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/stat" % pid) as f:
                if f.read().split(") ")[-1].startswith("Z"):
                    raise FileNotFoundError
        except FileNotFoundError:
            sys.exit("watch_taina: taina-ingest exited")
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/metrics")
            body = conn.getresponse().read()
        except (OSError, http.client.HTTPException):
            conn = None
            time.sleep(0.05)
            continue
        now = time.monotonic()
        out = sum(float(v) for v in OUT.findall(body))
        if t0 is None and out > 0:
            t0, out0, cpu0 = now, out, cpu_s(pid)
        if t0 is not None and out >= want:
            if out == out0:
                sys.exit("watch_taina: N=%d came in one scrape interval: nothing to time" % want)
            dlq = sum(float(v) for v in DLQ.findall(body))
            secs = now - t0
            cpu = cpu_s(pid) - cpu0
            print("taina_records %d seconds %.3f records_per_s %.0f vmhwm_kb %d dlq %d "
                  "cpu_us_per_record %.0f"
                  % (out - out0, secs, (out - out0) / secs, vmhwm_kb(pid), dlq,
                     cpu * 1e6 / (out - out0)))
            return
        time.sleep(pause(t0, out0, now, out, want))
    sys.exit("watch_taina: N=%d not reached in %.0f s" % (want, timeout))


if __name__ == "__main__":
    main()
