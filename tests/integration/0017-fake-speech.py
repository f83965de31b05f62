"""taina-fake-speech: Deepgram POST /v1/listen, OpenAI POST /v1/audio/transcriptions and
ElevenLabs POST /v1/text-to-speech/{voice_id} (CONTRACTS.md 2.3, 3.1, 4) as a client sees them.

STT: the answer shapes, the controllable transcript (fixed, queue, per-language default, silence
gives ""), the recorded uploads (GET /admin/stt/uploads and the WAV of GET /admin/stt/last),
bad audio and bad forms. TTS: raw pcm_16000 speech whose length follows the text, the error
envelopes (400, 401, 404, 422). Each API's own key header; the fault switches on each endpoint
in that API's envelope; the admin counters and reset; a clean exit on SIGTERM.
"""
import http.client as httpclient
import io
import json
import math
import os
import struct
import sys
import time
import wave

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from taina_harness import Service, TempDir, http  # noqa: E402

KEY = "fake-speech-key-0123"
DG = {"Authorization": "Token " + KEY}
OA = {"Authorization": "Bearer " + KEY}
XI = {"xi-api-key": KEY, "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def fake():
    tmp = TempDir("taina-0017-")
    svc = Service("fake-speech", tmp, {"TAINA_FAKE_API_KEY": KEY, "TAINA_FAKE_STT_KEEP": "3",
                                       "TAINA_FAKE_VOICES": "voice-es,voice-en",
                                       "TAINA_FAKE_SEED": "5", "TAINA_HTTP_MAX_BODY": "8MiB"})
    svc.wait_ready()
    yield svc
    rc = svc.stop()
    tmp.cleanup()
    assert rc == 0, "taina-fake-speech did not exit 0 on SIGTERM"


@pytest.fixture(autouse=True)
def clean(fake):
    st, _, _ = http("POST", fake.port, "/admin/reset", b"", OA)
    assert st == 200


def tone_wav(secs=1.0, rate=16000, amp=0.3, channels=1, freq=220.0):
    n = int(secs * rate)
    buf = io.BytesIO()
    w = wave.open(buf, "wb")
    w.setnchannels(channels)
    w.setsampwidth(2)
    w.setframerate(rate)
    frames = bytearray()
    for i in range(n):
        v = int(amp * 32767 * math.sin(2 * math.pi * freq * i / rate))
        frames += struct.pack("<h", v) * channels
    w.writeframes(bytes(frames))
    w.close()
    return buf.getvalue()


def jcall(fake, method, path, body=None, headers=None):
    st, hdrs, data = http(method, fake.port, path, body, headers)
    try:
        return st, json.loads(data), hdrs
    except ValueError:
        return st, data, hdrs


def listen(fake, wav, query="?model=nova-2&language=es", headers=None):
    h = dict(DG)
    h["Content-Type"] = "audio/wav"
    h.update(headers or {})
    return jcall(fake, "POST", "/v1/listen" + query, wav, h)


def multipart(fields, files):
    bd = "----pytest-boundary-7d3f"
    out = bytearray()
    for k, v in fields.items():
        out += ("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n"
                % (bd, k, v)).encode()
    for k, (fn, ct, data) in files.items():
        out += ("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                "Content-Type: %s\r\n\r\n" % (bd, k, fn, ct)).encode()
        out += data + b"\r\n"
    out += ("--%s--\r\n" % bd).encode()
    return bytes(out), "multipart/form-data; boundary=" + bd


def transcribe(fake, wav, **fields):
    f = {"model": "whisper-1"}
    f.update(fields)
    body, ct = multipart(f, {"file": ("audio.wav", "audio/wav", wav)} if wav is not None else {})
    h = dict(OA)
    h["Content-Type"] = ct
    return jcall(fake, "POST", "/v1/audio/transcriptions", body, h)


def set_transcript(fake, **body):
    st, r, _ = jcall(fake, "POST", "/admin/stt/transcript", body, OA)
    assert st == 200, r
    return r


# ---------------------------------------------------------------------------------------------
# Deepgram


def test_deepgram_shape_and_default(fake):
    wav = tone_wav(1.5)
    st, r, hdrs = listen(fake, wav)
    assert st == 200, r
    assert hdrs["dg-request-id"] == r["metadata"]["request_id"]
    md = r["metadata"]
    assert abs(md["duration"] - 1.5) < 1e-6 and md["channels"] == 1 and len(md["sha256"]) == 64
    alt = r["results"]["channels"][0]["alternatives"][0]
    assert alt["transcript"] == "Quiero pedir una cita para renovar el pasaporte."  # es default
    assert 0 < alt["confidence"] <= 1
    words = alt["words"]
    assert [w["punctuated_word"] for w in words] == alt["transcript"].split()
    assert words[-1]["word"] == "pasaporte" and abs(words[-1]["end"] - 1.5) < 1e-6
    st, r, _ = listen(fake, wav, "?language=en")
    assert r["results"]["channels"][0]["alternatives"][0]["transcript"].startswith("I would")


def test_deepgram_raw_linear16_and_silence(fake):
    pcm = struct.pack("<%dh" % 8000, *([0] * 8000))
    st, r, _ = listen(fake, pcm, "?encoding=linear16&sample_rate=8000",
                      {"Content-Type": "audio/l16"})
    assert st == 200, r
    alt = r["results"]["channels"][0]["alternatives"][0]
    assert alt["transcript"] == "" and alt["words"] == [] and r["metadata"]["duration"] == 1.0
    st, r, _ = listen(fake, pcm, "?encoding=mulaw&sample_rate=8000")
    assert st == 400 and r["err_code"] == "INVALID_QUERY_PARAMETER"


def test_deepgram_bad_audio_and_auth(fake):
    st, r, _ = listen(fake, b"RIFF\x00\x00\x00\x00WAVEjunk")
    assert st == 400 and r["err_code"] == "Bad Request"
    assert "corrupt or unsupported data" in r["err_msg"] and r["request_id"]
    st, r, _ = listen(fake, b"")
    assert st == 400
    st, r, _ = listen(fake, b'{"url": "https://x/a.wav"}', "",
                      {"Content-Type": "application/json"})
    assert st == 400 and "remote" in r["err_msg"]
    st, r, _ = listen(fake, tone_wav(0.2), "", {"Authorization": "Token wrong"})
    assert st == 401 and r["err_code"] == "INVALID_AUTH"
    st, r, _ = listen(fake, tone_wav(0.2), "", {"Authorization": "Bearer " + KEY})
    assert st == 200  # short-lived tokens use Bearer


# ---------------------------------------------------------------------------------------------
# OpenAI


def test_openai_formats(fake):
    wav = tone_wav(1.0)
    set_transcript(fake, text="Necesito el certificado de empadronamiento.")
    st, r, _ = transcribe(fake, wav, language="es")
    assert st == 200 and r["text"] == "Necesito el certificado de empadronamiento.", r
    assert r["usage"] == {"type": "duration", "seconds": 1.0}
    st, r, hdrs = transcribe(fake, wav, response_format="text")
    assert st == 200 and r == b"Necesito el certificado de empadronamiento.\n"
    assert hdrs["content-type"].startswith("text/plain")
    st, r, _ = transcribe(fake, wav, response_format="verbose_json", language="es")
    assert st == 200 and r["duration"] == 1.0 and r["segments"][0]["end"] == 1.0
    st, r, _ = transcribe(fake, wav, response_format="srt")
    assert st == 400 and r["error"]["type"] == "invalid_request_error"


def test_openai_bad_requests(fake):
    st, r, _ = transcribe(fake, None)
    assert st == 400 and "'file'" in r["error"]["message"]
    body, ct = multipart({}, {"file": ("a.wav", "audio/wav", tone_wav(0.1))})
    st, r, _ = jcall(fake, "POST", "/v1/audio/transcriptions", body,
                     dict(OA, **{"Content-Type": ct}))
    assert st == 400 and "'model'" in r["error"]["message"]
    st, r, _ = transcribe(fake, b"ID3\x03mp3 data")
    assert st == 400 and "Invalid file format" in r["error"]["message"]
    st, r, _ = jcall(fake, "POST", "/v1/audio/transcriptions", b"{}",
                     dict(OA, **{"Content-Type": "application/json"}))
    assert st == 400
    st, r, _ = jcall(fake, "POST", "/v1/audio/transcriptions", b"--x\r\nbroken",
                     dict(OA, **{"Content-Type": "multipart/form-data; boundary=x"}))
    assert st == 400 and "multipart" in r["error"]["message"]
    h = {"Authorization": "Bearer nope"}
    body, ct = multipart({"model": "whisper-1"}, {"file": ("a.wav", "audio/wav", tone_wav(0.1))})
    st, r, _ = jcall(fake, "POST", "/v1/audio/transcriptions", body, dict(h, **{"Content-Type": ct}))
    assert st == 401 and r["error"]["code"] == "invalid_api_key"


# ---------------------------------------------------------------------------------------------
# Transcript control and recorded uploads


def test_transcript_queue_then_fixed(fake):
    r = set_transcript(fake, text="fixed one", queue=["first", "second"])
    assert r == {"text": "fixed one", "queue": ["first", "second"]}
    wav = tone_wav(0.5)
    got = []
    for _ in range(3):
        st, r, _ = transcribe(fake, wav)
        got.append(r["text"])
    st, r, _ = listen(fake, wav)
    got.append(r["results"]["channels"][0]["alternatives"][0]["transcript"])
    assert got == ["first", "second", "fixed one", "fixed one"]
    set_transcript(fake, text=None, queue=["x"], clear_queue=True)
    st, r, _ = jcall(fake, "GET", "/admin/stt/transcript", None, OA)
    assert r == {"text": None, "queue": ["x"]}
    st, r, _ = jcall(fake, "POST", "/admin/stt/transcript", {"text": 3}, OA)
    assert st == 400
    # Silence does not consume the queue.
    st, r, _ = transcribe(fake, tone_wav(0.5, amp=0.001))
    assert r["text"] == ""
    st, r, _ = transcribe(fake, wav)
    assert r["text"] == "x"


def test_uploads_recorded(fake):
    a = tone_wav(0.5, rate=16000, freq=300)
    b = tone_wav(0.25, rate=8000, channels=2, freq=500)
    c = tone_wav(1.0, rate=48000, freq=700)
    listen(fake, a)
    transcribe(fake, b, language="en")
    transcribe(fake, c, model="gpt-4o-transcribe")
    st, r, _ = listen(fake, a)  # 4 uploads, 3 kept
    st, r, _ = jcall(fake, "GET", "/admin/stt/uploads", None, OA)
    assert st == 200 and r["total"] == 4
    ups = r["uploads"]
    assert [u["id"] for u in ups] == [4, 3, 2]
    assert [u["api"] for u in ups] == ["deepgram", "openai", "openai"]
    assert ups[1]["sample_rate"] == 48000 and ups[1]["duration_s"] == 1.0
    assert ups[1]["model"] == "gpt-4o-transcribe" and ups[1]["bytes"] == len(c)
    assert ups[2]["sample_rate"] == 8000 and ups[2]["samples"] == 2000  # stereo mixed down
    assert ups[2]["language"] == "en" and ups[2]["content_type"] == "audio/wav"
    assert -14 < ups[0]["peak_dbfs"] < -13  # a sine at 0.3 of full scale: -13.5 dBFS
    st, hdrs, data = http("GET", fake.port, "/admin/stt/last?index=1", None, OA)
    assert st == 200 and hdrs["content-type"] == "audio/wav" and hdrs["x-upload-id"] == "3"
    assert data == c  # mono 16-bit WAV: the same bytes back
    st, hdrs, data = http("GET", fake.port, "/admin/stt/last", None, OA)
    assert hdrs["x-upload-id"] == "4" and data == a
    st, _, _ = http("GET", fake.port, "/admin/stt/last?index=3", None, OA)
    assert st == 404
    st, _, _ = http("GET", fake.port, "/admin/stt/last", None, {})
    assert st == 401
    st, r, _ = jcall(fake, "GET", "/admin/stats", None, OA)
    assert r["stt"]["deepgram"] == 2 and r["stt"]["openai"] == 2
    assert abs(r["stt"]["audio_seconds"] - 2.25) < 1e-6
    assert "GET /admin/stt/uploads" not in r["requests"]  # admin calls are not counted


# ---------------------------------------------------------------------------------------------
# ElevenLabs


def speak(fake, text, voice="voice-en", fmt="pcm_16000", **kw):
    body = {"text": text, "model_id": "eleven_multilingual_v2"}
    body.update(kw)
    q = "?output_format=" + fmt if fmt else ""
    st, hdrs, data = http("POST", fake.port, "/v1/text-to-speech/%s%s" % (voice, q), body, XI)
    return st, hdrs, data


def level(pcm):
    n = len(pcm) // 2
    s = struct.unpack("<%dh" % n, pcm)
    return 20 * math.log10(math.sqrt(sum(x * x for x in s) / n) / 32768)


def test_tts_speech(fake):
    st, hdrs, short = speak(fake, "Hello.")
    assert st == 200 and hdrs["content-type"] == "audio/pcm" and hdrs["request-id"]
    st, _, long_ = speak(fake, "I would like to book an appointment to renew my passport "
                               "next week, in the morning if possible.")
    assert st == 200 and len(short) % 2 == 0 and len(long_) % 2 == 0
    secs = len(long_) / 2 / 16000
    assert 3 < secs < 9 and len(long_) > 5 * len(short)
    assert level(long_) > -30
    st, _, es = speak(fake, "Quiero pedir una cita.", voice="voice-es", language_code="es")
    assert st == 200 and len(es) > 16000
    # espeak-ng's output of one text varies from call to call (by up to some 10%: the pause
    # it keeps from the sentence before).
    st, _, a8 = speak(fake, "Hello.", fmt="pcm_8000")
    assert st == 200 and abs(len(a8) * 2 - len(short)) < 0.15 * len(short)
    st, _, again = speak(fake, "Hello.")
    assert abs(len(again) - len(short)) < 0.15 * len(short)
    st, r, _ = jcall(fake, "GET", "/admin/stats", None, OA)
    assert r["tts"]["requests"] == 5 and r["tts"]["characters"] > 100


def test_tts_errors(fake):
    st, _, data = speak(fake, "Hello", fmt="mp3_44100_128")
    r = json.loads(data)
    assert st == 400 and r["detail"]["status"] == "invalid_output_format"
    st, _, data = speak(fake, "Hello", fmt=None)  # the API's default is mp3
    assert st == 400
    st, _, data = speak(fake, "Hello", voice="nobody")
    assert st == 404 and json.loads(data)["detail"]["status"] == "voice_not_found"
    st, _, data = speak(fake, "x" * 5001)
    assert st == 400 and json.loads(data)["detail"]["status"] == "max_character_limit_exceeded"
    st, _, data = http("POST", fake.port, "/v1/text-to-speech/voice-en?output_format=pcm_16000",
                       {"model_id": "m"}, XI)
    r = json.loads(data)
    assert st == 422 and r["detail"][0]["loc"] == ["body", "text"]
    st, _, data = http("POST", fake.port, "/v1/text-to-speech/voice-en?output_format=pcm_16000",
                       {"text": "hi"}, {"xi-api-key": "wrong"})
    assert st == 401 and json.loads(data)["detail"]["status"] == "invalid_api_key"


# ---------------------------------------------------------------------------------------------
# Faults, in each API's envelope


def faults(fake, **kw):
    st, r, _ = jcall(fake, "POST", "/admin/faults", kw, OA)
    assert st == 200, r
    return r


@pytest.mark.parametrize("api", ["deepgram", "openai", "elevenlabs"])
def test_faults(fake, api):
    wav = tone_wav(0.3)

    def call():
        if api == "deepgram":
            return listen(fake, wav)
        if api == "openai":
            return transcribe(fake, wav)
        st, hdrs, data = speak(fake, "Hello.")
        try:
            return st, json.loads(data), hdrs
        except ValueError:
            return st, data, hdrs

    try:
        faults(fake, error_rate=1.0)
        st, r, _ = call()
        assert st == 503
        if api == "deepgram":
            assert r["err_code"] == "INTERNAL_SERVER_ERROR" and r["err_msg"]
        elif api == "openai":
            assert r["error"]["type"] == "server_error"
        else:
            assert r["detail"]["status"] == "internal_error"
        faults(fake, error_status=429)
        st, r, hdrs = call()
        assert st == 429 and hdrs["retry-after"] == "1"
        faults(fake, error_rate=0, malformed_rate=1.0)
        st, data, _ = call()
        assert st == 200 and isinstance(data, bytes)  # not JSON (and not audio)
        faults(fake, malformed_rate=0, drop_rate=1.0)
        with pytest.raises((httpclient.HTTPException, ConnectionError)):
            call()
        faults(fake, drop_rate=0, latency_ms=200)
        t = time.time()
        st, _, _ = call()
        assert st == 200 and time.time() - t >= 0.2
    finally:
        faults(fake, error_rate=0, error_status=503, malformed_rate=0, drop_rate=0, latency_ms=0)
    st, r, _ = jcall(fake, "GET", "/admin/stats", None, OA)
    assert r["faults"]["error"] == 2 and r["faults"]["drop"] == 1 and r["faults"]["malformed"] == 1
    # Faulted uploads were not recorded: only the latency one.
    if api != "elevenlabs":
        st, r, _ = jcall(fake, "GET", "/admin/stt/uploads", None, OA)
        assert r["total"] == 1


def test_unknown_paths(fake):
    st, r, _ = jcall(fake, "GET", "/v1/listen", None, DG)
    assert st == 405 and r["err_code"]
    st, r, _ = jcall(fake, "POST", "/v1/nothing", b"", OA)
    assert st == 404 and r["error"]["message"]
