"""HTTPS upstreams behind a private CA: with TAINA_TLS_CA_FILE naming the CA, rag's OpenAI-compatible
embeddings calls go over TLS and succeed; without it the certificate is refused (the call never
reaches the upstream) and the caller gets a clear error, not a crash."""
import json
import os
import ssl
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from taina_harness import Devstack, Service, TempDir, http  # noqa: E402

DIMS = 8


class Embeddings(BaseHTTPRequestHandler):
    calls = 0

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        Embeddings.calls += 1
        data = [{"object": "embedding", "index": i,
                 "embedding": [1.0 if d == i % DIMS else 0.0 for d in range(DIMS)]}
                for i, _ in enumerate(inputs)]
        out = json.dumps({"object": "list", "data": data, "model": body["model"],
                          "usage": {"prompt_tokens": 1, "total_tokens": 1}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def stack():
    tmp = TempDir("taina-0028-")
    key, cert = tmp.file("key.pem"), tmp.file("cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Embeddings)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    ds = Devstack(tmp)
    env = {"TAINA_KAFKA_BROKERS": ds.bootstrap, "TAINA_AUTH_DISABLED": "1",
           "TAINA_EMBED_PROVIDER": "openai", "TAINA_EMBED_MODEL": "tls-test",
           "TAINA_EMBED_DIMS": str(DIMS), "TAINA_EMBED_TIMEOUT": "3s",
           "TAINA_EMBED_URL": "https://127.0.0.1:%d" % srv.server_address[1]}
    trusted = Service("rag", tmp, dict(env, TAINA_TLS_CA_FILE=cert), tag="rag-trusted")
    plain = Service("rag", tmp, env, tag="rag-system-trust")
    trusted.wait_ready()
    plain.wait_ready()
    yield {"trusted": trusted, "plain": plain}
    rcs = [trusted.stop(), plain.stop()]
    srv.shutdown()
    ds.stop()
    tmp.cleanup()
    assert rcs == [0, 0]


def search(svc):
    return http("POST", svc.port, "/v1/search", {"question": "how do I renew my passport"},
                {"Content-Type": "application/json"})


def test_private_ca_trusted(stack):
    before = Embeddings.calls
    st, _, body = search(stack["trusted"])
    assert st == 200, body
    assert "results" in json.loads(body)
    assert Embeddings.calls == before + 1


def test_unknown_ca_refused(stack):
    before = Embeddings.calls
    st, _, body = search(stack["plain"])
    assert st in (502, 503, 504), (st, body)
    err = json.loads(body)["error"]
    assert err["code"] and err["message"]
    assert Embeddings.calls == before  # the TLS handshake failed: nothing reached the upstream
    assert "certificate" in stack["plain"].tail(200).lower()
