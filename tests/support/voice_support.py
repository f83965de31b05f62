"""Helpers of the voice-gateway tests (0020-0022) and benchmark: the stack (devstack, ingest,
embedder, rag, the speech fake, the gateway), espeak-ng questions, WAV and envelope maths in plain
Python, taina-voice-client, and a raw WebSocket client that can send what a browser never would
(unmasked frames, bad opcodes, lying lengths)."""
import base64
import json
import os
import socket
import struct
import subprocess
import time
import wave
import io

from taina_harness import (BIN, KAFKA_FAST_GROUP, MULT, Devstack, Service, TempDir, api_keys,
                           http)

KA = "voice-key-a-0123456789"
KB = "voice-key-b-0123456789"
SPEECH_KEY = "fake-speech-key-0123"


# ---------------------------------------------------------------------------------------------
# The stack

def ingest_docs(port, key, docs):
    body = "\n".join(json.dumps({"source": "web", "title": t, "body": b,
                                 "content_type": "text/plain",
                                 "created_at": "2026-11-24T10:00:00Z"}) for t, b in docs)
    st, _, resp = http("POST", port, "/v1/tickets", body,
                       {"Content-Type": "application/x-ndjson", "Authorization": "Bearer " + key})
    assert st == 202, resp
    return [i["ticket_id"] for i in json.loads(resp)["items"]]


def wait_searchable(port, key, n, timeout=60):
    deadline = time.time() + timeout * MULT
    while time.time() < deadline:
        st, _, r = http("POST", port, "/v1/search", {"question": "pasaporte licencia offices",
                                                     "top_k": 50},
                        {"Content-Type": "application/json", "Authorization": "Bearer " + key})
        if st == 200 and len({x["ticket_id"] for x in json.loads(r)["results"]}) >= n:
            return
        time.sleep(0.3)
    raise AssertionError("not searchable in time")


def voice_stack(prefix, docs, gateway_env=None, fake_env=None):
    """devstack + ingest + embedder + rag (local, with @docs of tenant-a) + taina-fake-speech +
    the gateway (Deepgram STT on the fake, espeak TTS)."""
    tmp = TempDir(prefix)
    ds = Devstack(tmp)
    keys = api_keys(tmp, {"tenant-a": KA, "tenant-b": KB})
    base = {"TAINA_KAFKA_BROKERS": ds.bootstrap}
    base.update(KAFKA_FAST_GROUP)
    fake = Service("fake-speech", tmp, dict({"TAINA_FAKE_API_KEY": SPEECH_KEY,
                                             "TAINA_HTTP_MAX_BODY": "16MiB"}, **(fake_env or {})))
    procs = []
    if docs:
        ingest = Service("ingest", tmp, dict(base, TAINA_API_KEYS_FILE=keys,
                                             TAINA_INGEST_BATCH_LINGER="20ms"))
        emb = Service("embedder", tmp, dict(base))
        procs += [ingest, emb]
    rag = Service("rag", tmp, dict(base, TAINA_API_KEYS_FILE=keys))
    procs.append(rag)
    for s in [fake] + procs:
        s.wait_ready(60)
    ids = []
    if docs:
        ids = ingest_docs(procs[0].port, KA, docs)
        wait_searchable(rag.port, KA, len(docs))
    rag_keys = tmp.file("rag_keys", "# tenant key (for token sessions)\ntenant-a %s\n" % KA)
    env = dict(base, TAINA_API_KEYS_FILE=keys, TAINA_VOICE_RAG_KEYS_FILE=rag_keys,
               TAINA_RAG_URL="http://127.0.0.1:%d" % rag.port,
               TAINA_STT_PROVIDER="deepgram", TAINA_STT_URL="http://127.0.0.1:%d" % fake.port,
               TAINA_STT_API_KEY=SPEECH_KEY, TAINA_SHUTDOWN_GRACE="10s")
    env.update(gateway_env or {})
    vg = Service("voice-gateway", tmp, env)
    vg.wait_ready(60)

    def stop():
        codes = [s.stop() for s in [vg] + procs[::-1]]
        fake.stop()
        ds.stop()
        tmp.cleanup()
        return codes

    return {"tmp": tmp, "ds": ds, "keys": keys, "fake": fake, "rag": rag, "vg": vg, "ids": ids,
            "base": base, "env": env, "stop": stop}


def voice_client(port, args, key=None, timeout=60):
    cmd = [os.path.join(BIN, "taina-voice-client"), "--url",
           "ws://127.0.0.1:%d/v1/sessions/ws" % port, "--log-level", "warn"] + list(args)
    if key:
        cmd += ["--key", key]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout * MULT + 30)
    return p.returncode, p.stdout + p.stderr


# ---------------------------------------------------------------------------------------------
# Audio in plain Python

def espeak_wav(tmp, name, text, lang, lead=0.5, tail=1.0):
    """espeak-ng speaks @text into a WAV, padded with @lead and @tail seconds of silence."""
    raw = tmp.file("raw-" + name)
    subprocess.run(["espeak-ng", "-v", lang, "-w", raw, text], check=True)
    pcm, rate = read_wav(open(raw, "rb").read())
    pcm = [0] * int(lead * rate) + pcm + [0] * int(tail * rate)
    path = tmp.file(name)
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(struct.pack("<%dh" % len(pcm), *pcm))
    return path


def read_wav(data):
    with wave.open(io.BytesIO(data)) as w:
        n, ch, rate = w.getnframes(), w.getnchannels(), w.getframerate()
        assert w.getsampwidth() == 2
        raw = w.readframes(n)
    s = struct.unpack("<%dh" % (n * ch), raw)
    if ch == 2:
        s = [(s[i] + s[i + 1]) // 2 for i in range(0, len(s), 2)]
    return list(s), rate


def envelope(pcm, rate, win_ms=10):
    """RMS per window, full scale 1.0."""
    w = max(1, rate * win_ms // 1000)
    out = []
    for i in range(0, len(pcm) - w + 1, w):
        seg = pcm[i:i + w]
        out.append((sum(v * v for v in seg) / w) ** 0.5 / 32768.0)
    return out


def spoken_span(pcm, rate, dbfs=-45.0, win_ms=10):
    """[first, last) sample of the windows louder than @dbfs."""
    thr = 10 ** (dbfs / 20.0)
    env = envelope(pcm, rate, win_ms)
    loud = [i for i, v in enumerate(env) if v > thr]
    w = rate * win_ms // 1000
    return loud[0] * w, (loud[-1] + 1) * w


def envelope_corr(a, b, max_lag=5):
    """Best Pearson correlation of two envelopes over lags of +-@max_lag windows."""
    def pearson(x, y):
        n = min(len(x), len(y))
        if n < 10:
            return 0.0
        x, y = x[:n], y[:n]
        mx, my = sum(x) / n, sum(y) / n
        sxy = sum((p - mx) * (q - my) for p, q in zip(x, y))
        sx = sum((p - mx) ** 2 for p in x) ** 0.5
        sy = sum((q - my) ** 2 for q in y) ** 0.5
        return sxy / (sx * sy) if sx and sy else 0.0
    best = 0.0
    for lag in range(-max_lag, max_lag + 1):
        best = max(best, pearson(a[lag:], b) if lag >= 0 else pearson(a, b[-lag:]))
    return best


# ---------------------------------------------------------------------------------------------
# Raw WebSocket

def ws_upgrade(port, path, headers=None, sock=None):
    """Send an upgrade request; returns (status, raw response head + what followed)."""
    s = sock or socket.create_connection(("127.0.0.1", port), timeout=10 * MULT)
    key = base64.b64encode(os.urandom(16)).decode()
    req = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1:%d" % port, "Upgrade: websocket",
           "Connection: Upgrade", "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"]
    for k, v in (headers or {}).items():
        req.append("%s: %s" % (k, v))
    s.sendall(("\r\n".join(req) + "\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    if sock is None:
        try:
            s.settimeout(1)
            data += s.recv(4096)
        except OSError:
            pass
        s.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
    return status, data


class RawWS:
    """A WebSocket client that writes frames byte by byte as told."""

    def __init__(self, port, key=KA, path="/v1/sessions/ws"):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15 * MULT)
        st, data = ws_upgrade(port, path, {"Authorization": "Bearer " + key}, sock=self.sock)
        assert st == 101, data
        self.buf = data.split(b"\r\n\r\n", 1)[1]

    def frame(self, opcode, payload, fin=True, mask=True, rsv=0, length=None, send=True):
        """Send one frame (send=False: return its bytes, to send several in one write)."""
        b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
        n = len(payload) if length is None else length
        head = bytes([b0])
        mbit = 0x80 if mask else 0
        if n < 126:
            head += bytes([mbit | n])
        elif n < 65536:
            head += bytes([mbit | 126]) + struct.pack(">H", n)
        else:
            head += bytes([mbit | 127]) + struct.pack(">Q", n)
        if mask:
            m = os.urandom(4)
            head += m
            payload = bytes(c ^ m[i % 4] for i, c in enumerate(payload))
        if not send:
            return head + payload
        self.sock.sendall(head + payload)

    def send_json(self, obj):
        self.frame(1, json.dumps(obj).encode())

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk

    def recv(self):
        """(opcode, payload) of the next frame from the server."""
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, off = struct.unpack(">H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, off = struct.unpack(">Q", self.buf[2:10])[0], 10
        self._need(off + n)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return b0 & 0x0F, payload

    def until(self, pred, timeout=20):
        """Frames until pred(opcode, payload, msg) is true; returns the text messages seen.
        Raises ConnectionError if the server closes first (the close frame is in .closed)."""
        seen = []
        deadline = time.time() + timeout * MULT
        while time.time() < deadline:
            op, p = self.recv()
            msg = json.loads(p) if op == 1 else None
            if msg is not None:
                seen.append(msg)
            if op == 8:
                self.closed = struct.unpack(">H", p[:2])[0] if len(p) >= 2 else 1005
                if pred(op, p, msg):
                    return seen
                raise ConnectionError("closed with %d" % self.closed)
            if pred(op, p, msg):
                return seen
        raise TimeoutError("no such frame in time: %s" % seen[-5:])

    def close_code(self, timeout=10):
        """Read until the server's close frame; its code (1006 when the socket just ends)."""
        try:
            self.until(lambda op, p, m: op == 8, timeout)
            return self.closed
        except ConnectionError:
            return getattr(self, "closed", 1006)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def read_packets(path):
    """Opus packets saved by taina-voice-client --save-packets."""
    data = open(path, "rb").read()
    out, i = [], 0
    while i + 2 <= len(data):
        n = struct.unpack(">H", data[i:i + 2])[0]
        out.append(data[i + 2:i + 2 + n])
        i += 2 + n
    return out
