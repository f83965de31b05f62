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
    p = subprocess.run(cmd, capture_output=True, text=True)
    line = [x for x in p.stdout.splitlines() if x.startswith('{"event":"summary"')]
    return json.loads(line[0]) if line else {"completed": 0, "behind": n, "refused": n,
                                             "first_audio_p99_ms": 0, "first_audio_p50_ms": 0}


def pct(v, p):
    v = sorted(v)
    return v[max(0, int(round(p / 100.0 * len(v) + 0.4999)) - 1)] if v else 0.0


def overheads(bootstrap, since):
    recs = consume(bootstrap, "voice.sessions", idle=2, timeout=60)
    out = []
    for r in recs:
        v = json.loads(r["value"])
        if v["event"] == "reply" and "overhead_ms" in v and v["at"] >= since:
            out.append(v["overhead_ms"])
    return out


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
        light_oh = overheads(st["ds"].bootstrap, t_light)
        base99 = light["first_audio_p99_ms"]
        print("light load (20 sessions): client end-of-speech to first audio p50 %.0f ms, p99 "
              "%.0f ms (includes the 500 ms endpoint silence)" % (light["first_audio_p50_ms"],
                                                                 base99))
        best, best_oh = 0, []
        for n in (25, 50, 75, 100, 150, 200, 300, 400, 500):
            c0, w0, t0 = cpu_s(vg.proc.pid), time.time(), now_iso()
            r = run_load(vg.port, wav, n)
            cpu = (cpu_s(vg.proc.pid) - c0) / (time.time() - w0)
            ok = (r["completed"] == n and r["behind"] == 0 and
                  r["first_audio_p99_ms"] <= base99 + 150)
            print("%4d sessions: %s  completed %d, behind %d, first audio p50 %.0f p99 %.0f ms, "
                  "worst late %.0f ms, gateway CPU %.0f%% of one core" % (
                      n, "sustained" if ok else "NOT sustained", r["completed"], r["behind"],
                      r["first_audio_p50_ms"], r["first_audio_p99_ms"],
                      r.get("worst_late_ms", 0), cpu * 100))
            if not ok:
                break
            best = n
            time.sleep(1.1)
            best_oh = overheads(st["ds"].bootstrap, t0)
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
