"""voice-gateway figures: (1) concurrent real-time sessions one core sustains, (2) the latency the
gateway adds between the end of speech and the first reply audio.

The gateway runs pinned to CPU 0 (taskset); everything else (devstack, rag, the speech fake,
taina-voice-client) to CPU 1. The upstreams are instant: the STT fake answers at once, rag has
no documents (an immediate extractive answer), and the reply's speech comes from the gateway's
TTS cache after the first turn, so the gateway core does what the goal is about: Opus decode,
voice activity detection, endpointing, Opus encode and paced sending.

(1) For N = 25, 50, 75, 100, 150, ... sessions (started over 1 s), each speaks a short question in real
time and waits for the spoken answer, twice. N is sustained when every session completes, no
reply packet arrives more than 60 ms behind real time, and the client's end-of-speech to first
audio p99 stays within 150 ms of the light-load figure (a loop that cannot keep up with decoding
detects the end of speech late). (2) comes from the gateway's voice.sessions reply events
(overhead_ms: end of utterance detected to first reply packet queued, minus STT, rag and TTS
time), at light load (20 sessions) and at the largest sustained N."""
import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "support"))
from taina_harness import BIN, consume, http  # noqa: E402
from voice_support import KA, SPEECH_KEY, espeak_wav, voice_stack  # noqa: E402


def pin(pid, cpu):
    subprocess.run(["taskset", "-apc", str(cpu), str(pid)], capture_output=True, check=True)


def cpu_s(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def run_load(port, wav, n, turns=2):
    cmd = ["taskset", "-c", "1", os.path.join(BIN, "taina-voice-client"), "--url",
           "ws://127.0.0.1:%d/v1/sessions/ws" % port, "--log-level", "warn", "--key", KA,
           "--wav", wav, "--sessions", str(n), "--turns", str(turns), "--speed", "1",
           "--ramp-ms", "1000", "--late-ms", "60", "--quiet", "1", "--timeout-ms", "120000"]
    r0, w0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    r1, w1 = resource.getrusage(resource.RUSAGE_CHILDREN), time.time()
    line = [x for x in p.stdout.splitlines() if x.startswith('{"event":"summary"')]
    out = json.loads(line[0]) if line else {"completed": 0, "behind": n, "refused": n,
                                            "send_behind": n, "first_audio_p99_ms": 0,
                                            "first_audio_p50_ms": 0}
    # the client shares CPU 1 with the upstreams: it must not be the limit
    out["client_cpu"] = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / (w1 - w0)
    return out


def pct(v, p):
    v = sorted(v)
    return v[max(0, int(round(p / 100.0 * len(v) + 0.4999)) - 1)] if v else 0.0


def events(bootstrap, since):
    """overhead_ms of the replies, and the worst in_late_ms / out_late_ms of the sessions (the
    gateway's own view of real time: incoming packets handled late, reply packets sent late)."""
    recs = consume(bootstrap, "voice.sessions", idle=2, timeout=60)
    oh, lin, lout = [], [], []
    for r in recs:
        v = json.loads(r["value"])
        if v["at"] < since:
            continue
        if v["event"] == "reply" and "overhead_ms" in v:
            oh.append(v["overhead_ms"])
        if v["event"] == "end":
            lin.append(v.get("in_late_ms", 0))
            lout.append(v.get("out_late_ms", 0))
    return oh, lin, lout


def now_iso():
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())


def main():
    st = voice_stack("taina-bench-voice-", None,
                     gateway_env={"TAINA_VOICE_WORKERS": "64", "TAINA_LOG_LEVEL": "warn",
                                  "TAINA_VOICE_MAX_SESSIONS": "5000"},
                     fake_env={"TAINA_LOG_LEVEL": "warn"})
    try:
        vg = st["vg"]
        pin(vg.proc.pid, 0)
        for s in (st["fake"], st["rag"]):
            pin(s.proc.pid, 1)
        pin(st["ds"].proc.pid, 1)
        http("POST", st["fake"].port, "/admin/stt/transcript", {"text": "hola"},
             {"Authorization": "Bearer " + SPEECH_KEY})
        wav = espeak_wav(st["tmp"], "q.wav", "Hola, buenos días", "es", lead=0.3, tail=0.8)
        run_load(vg.port, wav, 1, 1)  # warms the TTS cache
        t_light = now_iso()
        light = run_load(vg.port, wav, 20)
        time.sleep(1.1)
        light_oh = events(st["ds"].bootstrap, t_light)[0]
        base99 = light["first_audio_p99_ms"]
        print("light load (20 sessions): client end-of-speech to first audio p50 %.0f ms, p99 "
              "%.0f ms (includes the 500 ms endpoint silence)" % (light["first_audio_p50_ms"],
                                                                 base99))
        best, best_oh = 0, []
        steps = [int(x) for x in os.environ.get("BENCH_VOICE_STEPS", "").split()] or [
            25, 50, 75, 100, 150, 200, 250, 300, 400, 500]
        for n in steps:
            c0, w0, t0 = cpu_s(vg.proc.pid), time.time(), now_iso()
            r = run_load(vg.port, wav, n)
            cpu = (cpu_s(vg.proc.pid) - c0) / (time.time() - w0)
            time.sleep(1.1)
            oh, lin, lout = events(st["ds"].bootstrap, t0)
            # sustained: every session completes, no reply packet 60 ms behind real time at the
            # client, the client itself kept real time sending, and the end of speech is not
            # detected late (first audio p99 within 150 ms of light load)
            ok = (r["completed"] == n and r["behind"] == 0 and r.get("send_behind", 0) == 0 and
                  r["first_audio_p99_ms"] <= base99 + 150)
            print("%4d sessions: %s  completed %d, behind %d (client sending: %d), first audio "
                  "p50 %.0f p99 %.0f ms, worst late %.0f ms; gateway: CPU %.0f%% of one core, "
                  "input handled late p99 %.0f ms, replies sent late p99 %.0f ms; client CPU "
                  "%.0f%%; load %s" % (
                      n, "sustained" if ok else "NOT sustained", r["completed"], r["behind"],
                      r.get("send_behind", 0), r["first_audio_p50_ms"], r["first_audio_p99_ms"],
                      r.get("worst_late_ms", 0), cpu * 100, pct(lin, 99), pct(lout, 99),
                      r["client_cpu"] * 100, open("/proc/loadavg").read().split()[0]))
            if not ok:
                break
            best = n
            best_oh = oh
        print("RESULT voice.sessions_per_core value=%d goal=300" % best)
        print("RESULT voice.added_latency_p50_ms value=%.1f goal=- (light load, %d turns)" % (
            pct(light_oh, 50), len(light_oh)))
        print("RESULT voice.added_latency_p99_ms value=%.1f goal=50 (light load)" %
              pct(light_oh, 99))
        if best_oh:
            print("RESULT voice.added_latency_p99_at_%d_ms value=%.1f goal=50" % (
                best, pct(best_oh, 99)))
    finally:
        st["stop"]()


if __name__ == "__main__":
    main()
