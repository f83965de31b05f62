"""Upstream faults through the fakes, second half of 0034: STT and TTS (the voice gateway on the
speech fake: Deepgram STT, ElevenLabs TTS) and the booking system (appointments). The same
faults: 20% errors, dropped connections, malformed answers, 128 MiB answers, a latency spike past
the timeout. Checked: no crash and a clean SIGTERM exit; each voice turn ends with a reply or a
clear `stt_failed` / `tts_failed` error event within the timeouts, and the session goes on;
every booking request ends booked exactly once (bounded retries inside each call, then backoff);
a cancel while the booking system is down gets a clear 502 with Retry-After; RSS growth under a
bound. Then the circuit breakers (STT and TTS on two speech fakes; the booking system): a full
outage opens each (metric, log, a fast upstream_unavailable error to the caller, only probes at
the cooldown rate reach the upstream; the session stays usable, bookings wait instead of
failing) and clearing it closes it. ~100 s."""
import json
import os
import re
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from pg import Postgres  # noqa: E402
from taina_harness import (BUILD, KAFKA_FAST_GROUP, MULT, Devstack, Service,  # noqa: E402
                           TempDir, http, producer, wait_for)
from voice_support import (KA, SPEECH_KEY, RawWS, espeak_wav, read_packets,  # noqa: E402
                           voice_client, voice_stack)

HUGE = 128 << 20
RSS_GROWTH_MB = 64
# ASan keeps freed memory in quarantine (256 MB): RSS says nothing about leaks there
RSS_CHECK = "asan" not in os.path.basename(BUILD.rstrip("/"))
MIXED = {"error_rate": 0.2, "drop_rate": 0.05, "malformed_rate": 0.05, "huge_rate": 0.05,
         "huge_bytes": HUGE}
CLEAR = {"error_rate": 0, "drop_rate": 0, "malformed_rate": 0, "huge_rate": 0, "latency_ms": 0}
COOLDOWN_MS = 2000  # TAINA_BREAKER_COOLDOWN of the gateway and of appointments here


def faults(fake, key=None, **kw):
    h = {"Content-Type": "application/json"}
    if key:
        h["Authorization"] = "Bearer " + key
    st, _, body = http("POST", fake.port, "/admin/faults", kw, h)
    assert st == 200, body


def rss_mb(svc):
    with open("/proc/%d/status" % svc.proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def fault_errors(fake, key=None):
    h = {"Authorization": "Bearer " + key} if key else {}
    return json.loads(http("GET", fake.port, "/admin/stats", None, h)[2])["faults"]["error"]


def metric(svc, name, labels=""):
    total = None
    for line in http("GET", svc.port, "/metrics")[2].decode().splitlines():
        if line.startswith(name) and line[len(name)] in "{ " and labels in line:
            total = (total or 0.0) + float(line.rsplit(" ", 1)[1])
    return total


def alive(*svcs):
    for s in svcs:
        assert s.proc.poll() is None, "%s died (%s): %s" % (s.name, s.proc.returncode, s.tail())


def events(out):
    return [json.loads(x) for x in out.splitlines() if x.startswith("{\"session\"")]


def test_voice_stt_and_tts_faults():
    st = voice_stack("taina-0035-", None)
    vg, fake, tmp = st["vg"], st["fake"], st["tmp"]
    try:
        # ElevenLabs TTS on the same fake, 2 s deadlines for both
        assert vg.stop() == 0
        vg.env.update({"TAINA_TTS_PROVIDER": "elevenlabs",
                       "TAINA_TTS_URL": "http://127.0.0.1:%d" % fake.port,
                       "TAINA_TTS_API_KEY": SPEECH_KEY, "TAINA_TTS_VOICE_ES": "v-es",
                       "TAINA_TTS_VOICE_EN": "v-en", "TAINA_TTS_MODEL": "m",
                       "TAINA_STT_TIMEOUT": "2s", "TAINA_TTS_TIMEOUT": "2s",
                       "TAINA_VOICE_TTS_CACHE": "0"})
        vg.start()
        vg.wait_ready(60)
        st_, _, _ = http("POST", fake.port, "/admin/stt/transcript",
                         {"text": "¿Cuál es el horario de la oficina?"},
                         {"Authorization": "Bearer " + SPEECH_KEY})
        assert st_ == 200
        wav = espeak_wav(tmp, "q.wav", "Quiero renovar el pasaporte", "es", lead=0.4, tail=1.0)

        def turn(what, timeout_ms=25000):
            t0 = time.time()
            rc, out = voice_client(vg.port, ["--wav", wav, "--lang", "es", "--speed", "4",
                                             "--timeout-ms", str(timeout_ms)], key=KA, timeout=40)
            ev = events(out)
            kinds = [e["event"] for e in ev]
            errs = [e.get("code") for e in ev if e["event"] == "error"]
            print("%s: rc %d, %.1f s, events %s, errors %s" % (what, rc, time.time() - t0,
                                                              sorted(set(kinds)), errs), flush=True)
            assert set(errs) <= {"stt_failed", "tts_failed"}, errs
            if "stt_failed" in errs:
                # nothing was heard, so no reply follows (by protocol): the turn ends with the
                # error, which must come within the 2 s STT deadline after the utterance
                t_err = next(e["t_ms"] for e in ev if e.get("code") == "stt_failed")
                assert t_err < 2000 + 4000, "stt_failed after %.0f ms" % t_err
                return errs
            assert rc == 0, out[-2000:]
            assert "audio_end" in kinds, out[-2000:]  # tts_failed: reply text, no audio
            assert kinds and kinds[-1] == "closed", out[-2000:]
            return errs

        assert turn("no faults") == []
        rss0 = rss_mb(vg)
        faults(fake, SPEECH_KEY, **MIXED)
        failed = sum(1 for i in range(5) if turn("mixed faults %d" % i))
        assert failed < 5, "no turn got through 20% errors"
        faults(fake, SPEECH_KEY, **dict(CLEAR, latency_ms=3000))  # past both 2 s deadlines
        assert turn("latency spike", 8000) in (["stt_failed"], ["tts_failed"])
        faults(fake, SPEECH_KEY, **CLEAR)
        assert turn("faults off") == []
        alive(vg)
        rss1 = rss_mb(vg)
        print("voice-gateway RSS %.1f -> %.1f MB" % (rss0, rss1))
        assert not RSS_CHECK or rss1 - rss0 < RSS_GROWTH_MB, \
            "voice-gateway RSS grew %.1f MB" % (rss1 - rss0)
    finally:
        codes = st["stop"]()
    assert codes == [0] * len(codes), "a service did not exit 0 on SIGTERM: %s" % codes


def test_voice_stt_and_tts_circuit_breakers():
    """STT (Deepgram) and TTS (ElevenLabs) on two speech fakes, so one can be down while the
    other answers. A full outage of each opens its circuit: the turns that need it get
    upstream_unavailable at once (no call), the session goes on (a text turn while STT is down;
    the reply text while TTS is), only probes reach the fake; clearing it closes the circuit."""
    st = voice_stack("taina-0035c-", None)
    vg, stt, tmp = st["vg"], st["fake"], st["tmp"]
    tts = Service("fake-speech", tmp, {"TAINA_FAKE_API_KEY": SPEECH_KEY,
                                       "TAINA_HTTP_MAX_BODY": "16MiB"}, tag="fake-tts")
    try:
        tts.wait_ready()
        assert vg.stop() == 0
        vg.env.update({"TAINA_TTS_PROVIDER": "elevenlabs",
                       "TAINA_TTS_URL": "http://127.0.0.1:%d" % tts.port,
                       "TAINA_TTS_API_KEY": SPEECH_KEY, "TAINA_TTS_VOICE_ES": "v-es",
                       "TAINA_TTS_VOICE_EN": "v-en", "TAINA_TTS_MODEL": "m",
                       "TAINA_STT_TIMEOUT": "2s", "TAINA_TTS_TIMEOUT": "2s",
                       "TAINA_VOICE_TTS_CACHE": "0", "TAINA_BREAKER_THRESHOLD": "3",
                       "TAINA_BREAKER_COOLDOWN": "%dms" % COOLDOWN_MS,
                       "TAINA_VOICE_PROBE_INTERVAL": "10m"})  # only turns reach the fakes
        vg.start()
        vg.wait_ready(60)
        assert http("POST", stt.port, "/admin/stt/transcript",
                    {"text": "¿Cuál es el horario de la oficina?"},
                    {"Authorization": "Bearer " + SPEECH_KEY})[0] == 200
        wav = espeak_wav(tmp, "q.wav", "Cuál es el horario", "es", lead=0.3, tail=0.8)
        pk = tmp.file("q.opus")
        rc, out = voice_client(vg.port, ["--wav", wav, "--speed", "0", "--save-packets", pk],
                               key=KA)
        assert rc == 0, out[-2000:]
        packets = read_packets(pk)
        ws = RawWS(vg.port)
        ws.send_json({"type": "start", "lang": "es", "sample_rate": 16000})
        ws.until(lambda op, p, m: m and m["type"] == "ready")

        def turn(text=None):
            """One turn in the session: (messages, audio frames) until it ends."""
            if text:
                ws.send_json({"type": "text", "text": text})
            else:
                for p in packets:
                    ws.frame(2, p)
            got = {"frames": 0, "msgs": []}

            def end(op, p, m):
                got["frames"] += op == 2
                if not m:
                    return False
                got["msgs"].append(m)
                if m["type"] == "audio_end":
                    return True
                # a voice turn that heard nothing ends with its STT error
                return (not text and m["type"] == "error" and
                        m["code"] in ("stt_failed", "upstream_unavailable") and
                        not any(x["type"] == "transcript" for x in got["msgs"]))
            ws.until(end, timeout=30)
            return got["msgs"], got["frames"]

        def errors(msgs):
            return [m for m in msgs if m["type"] == "error"]

        def is_open(up):
            return metric(vg, "taina_voice_gateway_circuit_open", 'upstream="%s"' % up)

        assert is_open("stt") == 0.0 and is_open("tts") == 0.0
        # -- STT down: voice turns fail until the circuit opens
        faults(stt, SPEECH_KEY, error_rate=1.0)
        for _ in range(20):
            msgs, _ = turn()
            assert [e["code"] for e in errors(msgs)] == ["stt_failed"], msgs
            if is_open("stt") == 1.0:
                break
        assert is_open("stt") == 1.0, "the stt circuit did not open"
        # open: voice turns get upstream_unavailable without a call, a probe per cooldown
        before, n, refused = fault_errors(stt, SPEECH_KEY), 0, 0
        t_end = time.time() + 3 * COOLDOWN_MS / 1000.0
        while time.time() < t_end:
            msgs, _ = turn()
            codes = [e["code"] for e in errors(msgs)]
            assert codes in (["upstream_unavailable"], ["stt_failed"]), msgs
            if codes == ["upstream_unavailable"]:
                assert "stt" in errors(msgs)[0]["message"], msgs
                refused += 1
            n += 1
            time.sleep(0.05)
        got = fault_errors(stt, SPEECH_KEY) - before
        print("stt circuit open: %d voice turns, %d refused at once, %d requests reached the "
              "fake" % (n, refused, got))
        assert refused >= 1 and got <= 4 * 3, (n, refused, got)  # <= 4 probes x 3 attempts
        # the session goes on: a text turn is answered and spoken (TTS is up)
        msgs, frames = turn("¿Cuándo abren las oficinas?")
        assert not errors(msgs) and any(m["type"] == "reply" for m in msgs) and frames > 0, msgs
        faults(stt, SPEECH_KEY, **CLEAR)
        deadline = time.time() + 30 * MULT
        while True:
            msgs, _ = turn()
            if not errors(msgs) and any(m["type"] == "transcript" for m in msgs):
                break
            assert time.time() < deadline, "no transcript after STT came back: %s" % msgs
            time.sleep(0.3)
        assert is_open("stt") == 0.0
        # -- TTS down: text turns get the reply text with tts_failed until the circuit opens
        faults(tts, SPEECH_KEY, error_rate=1.0)
        for _ in range(20):
            msgs, frames = turn("¿Cuándo abren las oficinas?")
            codes = {e["code"] for e in errors(msgs)}  # the circuit may open within a turn
            assert "tts_failed" in codes and frames == 0, msgs
            assert codes <= {"tts_failed", "upstream_unavailable"}, msgs
            assert any(m["type"] == "reply" for m in msgs), msgs
            if is_open("tts") == 1.0:
                break
        assert is_open("tts") == 1.0, "the tts circuit did not open"
        before, n, refused = fault_errors(tts, SPEECH_KEY), 0, 0
        t_end = time.time() + 3 * COOLDOWN_MS / 1000.0
        while time.time() < t_end:
            msgs, frames = turn("¿Cuándo abren las oficinas?")
            codes = {e["code"] for e in errors(msgs)}
            assert codes and codes <= {"upstream_unavailable", "tts_failed"}, msgs
            assert any(m["type"] == "reply" for m in msgs), msgs  # the answer, as text
            if codes == {"upstream_unavailable"}:
                assert "tts" in errors(msgs)[0]["message"], msgs
                assert len(errors(msgs)) == 1, msgs  # told once per turn
                refused += 1
            n += 1
            time.sleep(0.05)
        got = fault_errors(tts, SPEECH_KEY) - before
        print("tts circuit open: %d text turns, %d refused at once, %d requests reached the "
              "fake" % (n, refused, got))
        assert refused >= 1 and got <= 4 * 3, (n, refused, got)
        faults(tts, SPEECH_KEY, **CLEAR)
        deadline = time.time() + 30 * MULT
        while True:
            msgs, frames = turn("¿Cuándo abren las oficinas?")
            if not errors(msgs) and frames > 0:
                break
            assert time.time() < deadline, "no audio after TTS came back: %s" % msgs
            time.sleep(0.3)
        assert is_open("tts") == 0.0
        ws.close()
        log = open(vg.logpath, errors="replace").read()
        for up in ("stt", "tts"):
            assert re.search(r"%s: circuit open after \d+ failures" % up, log), up
            assert "%s: circuit closed" % up in log, up
        alive(vg)
    finally:
        tts.stop()
        codes = st["stop"]()
    assert codes == [0] * len(codes), "a service did not exit 0 on SIGTERM: %s" % codes


KEY = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"


def test_booking_faults():
    tmp = TempDir("taina-0035b-")
    pg = Postgres()
    started = []
    try:
        ds = Devstack(tmp)
        started.append(ds)
        fake = Service("fake-booking", tmp, {})
        started.append(fake)
        fake.wait_ready()
        env = {"TAINA_KAFKA_BROKERS": ds.bootstrap, "TAINA_DATABASE_URL": pg.uri,
               "TAINA_APPOINTMENTS_ID_KEY": KEY, "TAINA_AUTH_DISABLED": "1",
               "TAINA_BOOKING_URL": "http://127.0.0.1:%d" % fake.port,
               "TAINA_BOOKING_TOKEN_URL": "http://127.0.0.1:%d/token" % fake.port,
               "TAINA_BOOKING_CLIENT_ID": "taina", "TAINA_BOOKING_CLIENT_SECRET": "secret",
               "TAINA_BOOKING_TIMEOUT": "2s", "TAINA_LOG_LEVEL": "info",
               "TAINA_APPOINTMENTS_RETRY_BASE": "100ms", "TAINA_APPOINTMENTS_RETRY_CAP": "1s",
               "TAINA_APPOINTMENTS_POLL": "100ms", "TAINA_APPOINTMENTS_LEASE": "10s",
               "TAINA_BREAKER_COOLDOWN": "%dms" % COOLDOWN_MS}
        env.update(KAFKA_FAST_GROUP)
        svc = Service("appointments", tmp, env)
        started.append(svc)
        svc.wait_ready(60)
        rss0 = rss_mb(svc)
        faults(fake, **MIXED)
        reqs = [{"schema_version": 1, "request_id": str(uuid.uuid4()), "tenant_id": "default",
                 "citizen_name": "Marta Ruiz %d" % i, "id_number": "Y%07dX" % i,
                 "service_code": "faults%d" % (i % 3),
                 "preferred_window": {"from": "2031-07-01T08:00:00Z",
                                      "to": "2031-07-08T18:00:00Z"},
                 "lang": "es", "requested_at": "2031-06-30T08:00:00Z"} for i in range(30)]
        p = producer(ds.bootstrap)
        for v in reqs:
            p.produce("appointments.requests", key=v["request_id"], value=json.dumps(v))
        assert p.flush(30) == 0
        time.sleep(5)
        faults(fake, **dict(CLEAR, latency_ms=3000))  # past the 2 s booking deadline
        time.sleep(4)
        faults(fake, **CLEAR)
        ids = [v["request_id"] for v in reqs]

        def states():
            return dict(pg.sql("SELECT request_id::text, status FROM appointments"))

        deadline = time.time() + 60 * MULT
        while time.time() < deadline and not all(states().get(i) == "booked" for i in ids):
            time.sleep(0.5)
        s = states()
        assert all(s.get(i) == "booked" for i in ids), \
            {i: s.get(i) for i in ids if s.get(i) != "booked"}
        appts = json.loads(http("GET", fake.port, "/admin/appointments")[2])["appointments"]
        per = {}
        for a in appts:
            if a["status"] != "cancelled":
                rid = a["identifier"][0]["value"]
                per[rid] = per.get(rid, 0) + 1
        assert all(per.get(i) == 1 for i in ids), "live appointments per request: %s" % per
        stats = json.loads(http("GET", fake.port, "/admin/stats")[2])
        attempts = pg.sql("SELECT max(attempts) FROM appointments")[0][0]
        print("booking faults %s, most attempts of a request %s" % (stats["faults"], attempts))
        assert stats["faults"]["error"] > 0
        # a cancel while the booking system is down: a clear 502 with Retry-After, then it works
        faults(fake, error_rate=1.0)
        t0 = time.time()
        st, hdrs, body = http("DELETE", svc.port, "/v1/appointments/" + ids[0], timeout=20)
        assert st == 502 and hdrs.get("retry-after"), (st, body[:300])
        assert json.loads(body)["error"]["code"] and time.time() - t0 < 2 + 3
        faults(fake, **CLEAR)
        st, _, body = http("DELETE", svc.port, "/v1/appointments/" + ids[0], timeout=20)
        assert st == 200 and json.loads(body)["status"] == "cancelled", body[:300]
        # a full outage opens the booking system's circuit: workers stop calling it but for a
        # probe per cooldown, new requests wait (not failed), /ready says so, a cancel gets a
        # fast 503; once it is back the circuit closes and every request is booked
        faults(fake, error_rate=1.0)
        more = [dict(v, request_id=str(uuid.uuid4()), citizen_name="Ana %d" % i)
                for i, v in enumerate(reqs[:6])]
        for v in more:
            p.produce("appointments.requests", key=v["request_id"], value=json.dumps(v))
        assert p.flush(30) == 0
        wait_for(lambda: metric(svc, "taina_appointments_circuit_open",
                                'upstream="booking"') == 1.0, 30, "the booking circuit to open")
        assert http("GET", svc.port, "/ready")[0] == 503
        before = fault_errors(fake)
        time.sleep(3 * COOLDOWN_MS / 1000.0)
        got = fault_errors(fake) - before
        print("booking circuit open: %d requests reached the booking system in 3 cooldowns" % got)
        assert got <= 4 * 3, "%d requests with the circuit open" % got  # 4 probes x 3 attempts
        s = states()
        assert all(s.get(v["request_id"]) in ("requested", "booking") for v in more), s
        for _ in range(3):  # a DELETE right when a probe is due is the probe (502): again
            st, hdrs, body = http("DELETE", svc.port, "/v1/appointments/" + ids[1], timeout=20)
            if st == 503:
                break
            assert st == 502, (st, body[:300])
        assert st == 503 and hdrs.get("retry-after"), (st, body[:300])
        err = json.loads(body)["error"]
        assert err["code"] == "upstream_unavailable" and "circuit open" in err["message"], err
        faults(fake, **CLEAR)
        wait_for(lambda: all(states().get(v["request_id"]) == "booked" for v in more), 60,
                 "the waiting requests booked")
        assert metric(svc, "taina_appointments_circuit_open", 'upstream="booking"') == 0.0
        assert http("GET", svc.port, "/ready")[0] == 200
        log = open(svc.logpath, errors="replace").read()
        assert re.search(r"booking: circuit open after \d+ failures", log)
        assert "booking: circuit closed" in log
        alive(svc)
        rss1 = rss_mb(svc)
        print("appointments RSS %.1f -> %.1f MB" % (rss0, rss1))
        assert not RSS_CHECK or rss1 - rss0 < RSS_GROWTH_MB, \
            "appointments RSS grew %.1f MB" % (rss1 - rss0)
        assert svc.stop() == 0, "appointments did not exit 0 on SIGTERM"
    finally:
        for p_ in reversed(started):
            p_.stop()
        pg.close()
        tmp.cleanup()
