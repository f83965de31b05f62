"""The test harness and the demo start services on ports found free a moment earlier; another
program may bind such a port first (a parallel test, another service of the same stack). Then
the service exits ("address in use") while the port's /ready answers 200 from the other program,
and a test talks to the wrong process (CI, 0030-demo: rag's port answered by another service,
/v1/search 404). Both must tell the two apart and start the service again on another port."""
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import importlib.util
import os
import sys
import threading

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
import ports  # noqa: E402
import taina_harness  # noqa: E402
from taina_harness import TOP, Service, TempDir, http  # noqa: E402


class Impostor(BaseHTTPRequestHandler):
    """Another program on the port: ready, and nothing else."""

    def do_GET(self):
        body = b'{"status":"ready"}' if self.path == "/ready" else b'{"error":{}}'
        self.send_response(200 if self.path == "/ready" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_):
        pass


@pytest.fixture
def impostor():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Impostor)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def test_serves_tells_the_holder_of_a_port(impostor):
    assert ports.serves(os.getpid(), impostor)
    assert not ports.serves(os.getpid(), ports.free_port())
    assert not ports.port_free(impostor)


def test_harness_moves_a_service_off_a_taken_port(impostor, monkeypatch):
    picks = iter([impostor])
    real = ports.free_port
    monkeypatch.setattr(taina_harness, "free_port", lambda: next(picks, None) or real())
    tmp = TempDir("taina-0040-")
    svc = Service("fake-booking", tmp, {})
    try:
        assert svc.port == impostor
        svc.wait_ready()
        assert svc.port != impostor
        assert ports.serves(svc.proc.pid, svc.port)
        st, _, _ = http("POST", svc.port, "/token", "grant_type=client_credentials",
                        {"Content-Type": "application/x-www-form-urlencoded"})
        assert st == 400  # the fake's own answer (no client credentials), not the impostor's 501
    finally:
        assert svc.stop() == 0
        tmp.cleanup()


def test_harness_still_reports_a_service_that_cannot_start():
    tmp = TempDir("taina-0040-")
    svc = Service("fake-booking", tmp, {"TAINA_HTTP_MAX_BODY": "not-a-size"})
    try:
        with pytest.raises(RuntimeError, match="exited"):
            svc.wait_ready(timeout=10)
    finally:
        svc.stop()
        tmp.cleanup()


def test_demo_moves_a_service_off_a_taken_port(impostor, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "demo", os.path.join(TOP, "tools", "demo", "demo.py"))
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    s = demo.Stack(str(tmp_path))
    os.makedirs(s.logs)
    s.service("fake-booking", impostor, {})
    try:
        s.wait_ready("fake-booking", timeout=30)
        port = s.ports["fake-booking"]
        assert port != impostor and s.urls["fake-booking"].endswith(":%d" % port)
        assert ports.serves(s.popen["fake-booking"].pid, port)
        assert [p["name"] for p in s.procs] == ["fake-booking"]  # the exited one is forgotten
        assert "port %d was taken" % impostor in capsys.readouterr().out
    finally:
        demo.stop_recorded(s.out, quiet=True)
