"""voice-gateway end to end on devstack: documents go through ingest and the embedder into rag
(local index); a Spanish question spoken by espeak-ng (padded with silence) is streamed by
taina-voice-client as real-time Opus; the STT fake (Deepgram API) receives PCM whose duration
matches the spoken part within 60 ms and whose envelope correlates with the original; the reply
cites the right document and its audio decodes to speech of plausible length; voice.sessions
holds start, turn, reply and end events valid against the schema, the transcript redacted.
Also: text turns with a token from POST /v1/sessions/token, 401 on the upgrade, /ready and
/metrics."""
import json
import math
import os
import socket
import struct
import subprocess
import sys
import wave

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from taina_harness import (BIN, KAFKA_FAST_GROUP, MULT, TOP, Devstack, Service,  # noqa: E402
                           TempDir, api_keys, consume, http)
from voice_support import (KA, SPEECH_KEY, envelope, envelope_corr, espeak_wav,  # noqa: E402
                           read_wav, spoken_span, voice_client, ws_upgrade)

QUESTION = "¿Qué necesito para renovar el pasaporte? Mi correo es ana.perez@example.com"
DOCS = [
    ("Renovación de pasaporte", "Para renovar el pasaporte debe presentar la cédula de identidad y "
     "el pasaporte anterior. El pago de la tasa se hace en el banco. La cita se pide en línea."),
    ("Licencia de conducir", "La licencia de conducir se renueva cada cuatro años. Necesita un "
     "examen médico y una foto reciente. El trámite dura una semana."),
    ("Opening hours", "Our offices are open Monday to Friday from eight in the morning to four "
     "in the afternoon. Saturdays we open only for urgent passport pickups."),
]


@pytest.fixture(scope="module")
def stack():
    from voice_support import voice_stack
    st = voice_stack("taina-0020-", DOCS)
    yield st
    codes = st["stop"]()
    assert codes == [0] * len(codes), "a service did not exit 0 on SIGTERM: %s" % codes


def lines_of(out):
    return [json.loads(x) for x in out.splitlines() if x.startswith("{\"session\"")
            or x.startswith("{\"event\"")]


def test_spoken_question_end_to_end(stack):
    tmp, fake, vg = stack["tmp"], stack["fake"], stack["vg"]
    st, _, _ = http("POST", fake.port, "/admin/stt/transcript", {"text": QUESTION},
                    {"Authorization": "Bearer " + SPEECH_KEY})
    assert st == 200
    wav = espeak_wav(tmp, "q.wav", "Qué necesito para renovar el pasaporte", "es",
                     lead=0.6, tail=1.2)
    out = tmp.file("reply.wav")
    rc, text = voice_client(vg.port, ["--wav", wav, "--lang", "es", "--out", out], key=KA)
    assert rc == 0, text
    ev = lines_of(text)
    types = [e["event"] for e in ev]
    assert "ready" in types and "transcript" in types and "reply" in types, text
    assert types.index("transcript") < types.index("first_audio") < types.index("audio_end")
    tr = next(e for e in ev if e["event"] == "transcript")
    assert tr["final"] is True and tr["text"] == QUESTION
    reply = next(e for e in ev if e["event"] == "reply")
    assert reply["citations"] and reply["citations"][0]["ticket_id"] == stack["ids"][0]
    assert "pasaporte" in reply["text"].lower()
    assert next(e for e in ev if e["event"] == "closed")["code"] == 1000

    # What the STT fake received: 16 kHz PCM of the spoken part, within 60 ms, same envelope.
    st, hdrs, up = http("GET", fake.port, "/admin/stt/last", None,
                        {"Authorization": "Bearer " + SPEECH_KEY})
    assert st == 200
    up_pcm, up_rate = read_wav(up)
    orig_pcm, orig_rate = read_wav(open(wav, "rb").read())
    s0, s1 = spoken_span(orig_pcm, orig_rate)
    spoken_ms = (s1 - s0) * 1000.0 / orig_rate
    got_ms = len(up_pcm) * 1000.0 / up_rate
    assert abs(got_ms - spoken_ms) <= 60, "STT got %.0f ms, the speech lasts %.0f ms" % (
        got_ms, spoken_ms)
    a = envelope(orig_pcm[s0:s1], orig_rate)
    b = envelope(up_pcm, up_rate)
    corr = envelope_corr(a, b, max_lag=6)
    assert corr > 0.85, "the uploaded audio does not match the question (r=%.2f)" % corr

    # The reply audio: speech, of a plausible length for its text.
    pcm, rate = read_wav(open(out, "rb").read())
    secs = len(pcm) / rate
    words = len(reply["text"].split())
    assert rate == 16000 and 0.15 * words <= secs <= 1.0 * words + 2, (secs, words)
    loud = sum(1 for v in envelope(pcm, rate) if v > 0.01)
    assert loud > 0.4 * len(envelope(pcm, rate)), "the reply audio is mostly silence"

    # voice.sessions: start, turn (redacted), reply, end; all valid against the schema.
    sid = next(e for e in ev if e["event"] == "ready")["session_id"]
    recs = consume(stack["ds"].bootstrap, "voice.sessions", want=4,
                   pred=lambda r: json.loads(r["value"])["session_id"] == sid, timeout=30)
    mine = [json.loads(r["value"]) for r in recs if json.loads(r["value"])["session_id"] == sid]
    kinds = [m["event"] for m in mine]
    assert kinds[:1] == ["start"] and "turn" in kinds and "reply" in kinds and "end" in kinds
    turn = next(m for m in mine if m["event"] == "turn")
    assert "ana.perez@example.com" not in turn["transcript"] and "[EMAIL]" in turn["transcript"]
    assert abs(turn["audio_ms"] - got_ms) < 1
    end = next(m for m in mine if m["event"] == "end")
    assert end["turns"] == 1 and end["close_code"] == 1000 and end["opus_errors"] == 0
    rep = next(m for m in mine if m["event"] == "reply")
    assert rep["latency_ms"] > 0 and rep["overhead_ms"] < rep["latency_ms"]
    for r in recs:
        assert r["headers"].get("taina-schema") == b"voice.sessions/1"
    nd = tmp.file("events.ndjson", "".join(json.dumps(m) + "\n" for m in mine))
    p = subprocess.run([os.path.join(BIN, "taina-schema"), "validate",
                        os.path.join(TOP, "schemas", "voice.sessions.schema.json"), nd],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_text_turn_with_token(stack):
    vg = stack["vg"]
    st, _, body = http("POST", vg.port, "/v1/sessions/token", b"",
                       {"Authorization": "Bearer " + KA})
    assert st == 200, body
    tok = json.loads(body)
    assert tok["tenant_id"] == "tenant-a" and tok["expires_in"] > 0
    rc, text = voice_client(vg.port, ["--text", "When are the offices open?", "--lang", "en",
                                      "--token", tok["token"]])
    assert rc == 0, text
    ev = lines_of(text)
    reply = next(e for e in ev if e["event"] == "reply")
    assert reply["citations"][0]["ticket_id"] == stack["ids"][2]
    assert any(e["event"] == "audio_end" and e["packets"] > 10 for e in ev)
    assert not any(e["event"] == "transcript" for e in ev)  # text turns have none
    # the token is bound to its tenant: tampering is refused
    bad = tok["token"][:-2] + ("AA" if not tok["token"].endswith("AA") else "BB")
    st, _ = ws_upgrade(vg.port, "/v1/sessions/ws?token=" + bad)
    assert st == 401


def test_upgrade_needs_a_key(stack):
    port = stack["vg"].port
    assert ws_upgrade(port, "/v1/sessions/ws")[0] == 401
    assert ws_upgrade(port, "/v1/sessions/ws", {"Authorization": "Bearer nope"})[0] == 401
    st, body = ws_upgrade(port, "/v1/sessions/ws", {"Authorization": "Bearer " + KA})
    assert st == 101
    assert ws_upgrade(port, "/v1/other", {"Authorization": "Bearer " + KA})[0] == 404
    st, _, _ = http("POST", port, "/v1/sessions/token", b"", {"Authorization": "Bearer x"})
    assert st == 401


def test_ready_and_metrics(stack):
    port = stack["vg"].port
    st, _, body = http("GET", port, "/ready")
    assert st == 200, body
    st, hdrs, body = http("GET", port, "/metrics")
    assert st == 200 and hdrs["content-type"].startswith("text/plain")
    text = body.decode()
    for name in ("taina_voice_sessions ", "taina_voice_first_audio_seconds_bucket",
                 "taina_voice_overhead_seconds_bucket",
                 'taina_voice_stage_duration_seconds_bucket{stage="stt"',
                 'taina_voice_stage_duration_seconds_bucket{stage="rag"',
                 'taina_voice_stage_duration_seconds_bucket{stage="tts"',
                 "taina_voice_opus_errors_total"):
        assert name in text, name
