"""make demo in CI mode (issue 10): `TAINA_DEMO_CI=1 tools/demo/run.sh` in a temp state folder,
then its summary.json checked against the corpus on its own terms: every document accepted,
enriched, embedded and searchable; each invalid record refused over HTTP or dead-lettered with
the reason expected.json gives; the answers cite the expected documents in both languages; the
booking is in PostgreSQL as booked; the voice turn ran (required once taina-voice-gateway is
built) with a transcript, a reply citing its document and a reply WAV. Then nothing the demo
started is left. A second run is interrupted like Ctrl-C at a terminal (SIGINT to its process
group) once the stack is up: exit 130, every process and PostgreSQL stopped.

Whatever happens, `demo.py down` on the temp folder stops what a failed run left."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import wave

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from taina_harness import BIN, MULT, TOP  # noqa: E402

CORPUS = os.path.join(TOP, "tools", "demo", "corpus")
VOICE_BUILT = os.path.exists(os.path.join(BIN, "taina-voice-gateway"))


def ndjson(name):
    with open(os.path.join(CORPUS, name), encoding="utf-8") as f:
        return [json.loads(x) for x in f if x.strip()]


def listening(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purpose
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def demo_dir():
    d = tempfile.mkdtemp(prefix="taina-0030-")
    os.chmod(d, 0o755)  # the postgres user keeps its cluster under it
    yield d
    subprocess.run(["/usr/bin/python3", os.path.join(TOP, "tools", "demo", "demo.py"), "down"],
                   env=dict(os.environ, TAINA_DEMO_DIR=d), timeout=120)
    if os.environ.get("TEST_LEAVE") != "1":
        shutil.rmtree(d, ignore_errors=True)


def start_demo(d):
    env = dict(os.environ, TAINA_DEMO_CI="1", TAINA_DEMO_DIR=d)
    return subprocess.Popen([os.path.join(TOP, "tools", "demo", "run.sh"), "demo"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def test_demo_ci_summary(demo_dir):
    t0 = time.time()
    p = start_demo(demo_dir)
    try:
        out, _ = p.communicate(timeout=170 * MULT)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGINT)
        out, _ = p.communicate(timeout=60)
        pytest.fail("the demo took more than 170 s:\n" + out[-4000:])
    took = time.time() - t0
    print(out[-3000:])
    with open(os.path.join(demo_dir, "summary.json")) as f:
        s = json.load(f)
    assert p.returncode == 0, "exit %d: %s" % (p.returncode, s.get("error") or s.get("checks"))

    docs = ndjson("documents.ndjson")
    cases = ndjson("invalid.ndjson")
    with open(os.path.join(CORPUS, "expected.json")) as f:
        expected = json.load(f)["invalid"]

    d = s["documents"]
    assert d["total"] == len(docs) == 68
    for what in ("accepted", "enriched", "embedded", "searchable"):
        assert d[what] == len(docs), "%s: %s of %d" % (what, d[what], len(docs))
    assert d["ids_kept"] and d["missing"] == []
    assert s["chunks"] >= len(docs)

    for c in cases:
        want = expected[c["case"]]
        if c["via"] == "http":
            got = s["http_invalid"][c["case"]]
            assert got["status"] == want["http_status"] and got["code"] == want["code"], got
            for k in ("path", "keyword"):
                if k in want:
                    assert got[k] == want[k], (c["case"], got)
        else:
            assert s["dlq"][c["case"]]["reason"] == want["dlq_reason"], (c["case"], s["dlq"])

    qs = s["questions"]
    assert len(qs) >= 6 and {q["lang"] for q in qs} == {"es", "en"}
    for q in qs:
        assert q["answer"] and any(c in q["expected"] for c in q["citations"]), q
    assert s["query_p50_ms"] is not None

    b = s["booking"]
    assert b["status"] == "booked" and b["db_status"] == "booked" and b["external_id"], b

    v = s["voice"]
    if VOICE_BUILT:
        assert v["ran"], "taina-voice-gateway is built, so the voice step must run"
    if v["ran"]:
        assert v["ok"] and v["transcript"] and v["reply"], v
        assert any(c in v["expected"] for c in v["citations"]) or v["stt"] == "local", v
        with wave.open(v["reply_wav"]) as w:  # the reply audio: over a second of speech
            assert w.getnframes() > w.getframerate(), v["reply_wav"]
    assert all(s["checks"].values()), s["checks"]

    # nothing left running: no port answers, no state file, PostgreSQL's folder removed
    assert not os.path.exists(os.path.join(demo_dir, "stack.json"))
    assert not os.path.exists(os.path.join(demo_dir, "pg"))
    for name, port in s["ports"].items():
        assert not listening(port), "%s still listens on %d" % (name, port)
    print("demo took %.1f s" % took)


def test_demo_interrupted_stops_everything(demo_dir):
    p = start_demo(demo_dir)
    state = os.path.join(demo_dir, "stack.json")
    lines = []
    try:
        for line in p.stdout:  # wait until the services are up and the corpus is on its way
            lines.append(line)
            if line.startswith("== 3."):
                break
        with open(state) as f:
            st = json.load(f)
        pids = [x["pid"] for x in st["procs"]]
        assert len(pids) >= 6 and all(alive(x) for x in pids)
        assert os.path.exists(os.path.join(st["pg_dir"], "data", "postmaster.pid"))
        os.killpg(p.pid, signal.SIGINT)  # what Ctrl-C at the terminal does
        out, _ = p.communicate(timeout=60 * MULT)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    text = "".join(lines) + out
    assert p.returncode == 130, text[-2000:]
    assert "interrupted (SIGINT)" in text and "stopped" in text, text[-2000:]
    left = [x for x in pids if alive(x)]
    assert not left, "still running after Ctrl-C: %s" % left
    assert not os.path.exists(st["pg_dir"]), "PostgreSQL's folder is still there"
    assert not os.path.exists(state)
    for port in st["ports"].values():
        assert not listening(port)
