"""voice-gateway with 200 concurrent sessions: taina-voice-client's load mode opens them at once,
each streams a short spoken question (four times faster than real time) and waits for the
spoken answer; every session completes, none is refused, none falls behind real time by more
than 250 ms while its reply plays (times TN_TEST_TIMEOUT_MULT: 750 ms under ASan, whose build
runs about three times slower), and the gateway's session gauge returns to zero."""
import json
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from taina_harness import MULT, http  # noqa: E402
from voice_support import KA, SPEECH_KEY, espeak_wav, voice_client, voice_stack  # noqa: E402

N = 200


@pytest.fixture(scope="module")
def stack():
    st = voice_stack("taina-0022-", None, gateway_env={"TAINA_VOICE_WORKERS": "32"})
    st_, _, _ = http("POST", st["fake"].port, "/admin/stt/transcript", {"text": "hola"},
                     {"Authorization": "Bearer " + SPEECH_KEY})
    assert st_ == 200
    yield st
    codes = st["stop"]()
    assert codes == [0] * len(codes), codes


def test_200_concurrent_sessions(stack):
    port = stack["vg"].port
    wav = espeak_wav(stack["tmp"], "hola.wav", "hola", "es", lead=0.2, tail=0.7)
    rc, out = voice_client(port, ["--wav", wav, "--sessions", str(N), "--speed", "4",
                                  "--quiet", "1", "--late-ms", str(250 * MULT), "--timeout-ms", "90000"],
                           key=KA, timeout=120)
    summary = json.loads([x for x in out.splitlines() if x.startswith('{"event":"summary"')][0])
    assert rc == 0, out[-3000:]
    assert summary["completed"] == N and summary["refused"] == 0, summary
    assert summary["behind"] == 0, summary
    deadline = time.time() + 10 * MULT
    while time.time() < deadline:
        _, _, body = http("GET", port, "/metrics")
        if "\ntaina_voice_sessions 0\n" in body.decode():
            break
        time.sleep(0.2)
    else:
        raise AssertionError("sessions still open after the clients left")
    print("RESULT 200 sessions: first audio p50 %.0f ms, p99 %.0f ms" % (
        summary["first_audio_p50_ms"], summary["first_audio_p99_ms"]))
