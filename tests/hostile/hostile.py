"""The hostile-input corpus (issue 11): what an attacker or a broken client sends to the HTTP
endpoints and topics of every service, generated at run time (nothing large is stored in git).

Each HTTP case is a request (body, content type, extra raw headers) and the statuses it may get;
a 4xx must carry the JSON error body `{"error":{"code","message"}}`. Each topic case is a record
value and what it must become: a dead letter (`tickets.dlq`, header `taina-error`) or, where the
input is acceptable after repair, an output record. tests/integration/0029-hostile.py runs them
against the services listed in SERVICES: adding a service is one entry there.
"""
import json
import selectors
import socket
import threading
import time

# --- what a well-formed request of each kind looks like -----------------------------------------


def ticket(**kw):
    t = {"source": "web", "title": "Renovación de pasaporte",
         "body": "Quiero renovar mi pasaporte. ¿Qué documentos necesito?",
         "content_type": "text/plain", "created_at": "2026-11-24T10:00:00Z"}
    t.update(kw)
    return t


def question(**kw):
    q = {"question": "¿Qué necesito para renovar el pasaporte?", "top_k": 3}
    q.update(kw)
    return q


def raw_record(ticket_id, **kw):
    r = dict(ticket(), schema_version=1, ticket_id=ticket_id, tenant_id="tenant-a")
    r.update(kw)
    return r


def enriched_record(ticket_id, **kw):
    text = "Para renovar el pasaporte presente la cédula. La cita se pide en línea."
    r = {"schema_version": 1, "ticket_id": ticket_id, "tenant_id": "tenant-a",
         "created_at": "2026-11-24T10:00:00Z", "enriched_at": "2026-11-24T10:00:01Z",
         "source": "web", "title": "Pasaporte", "text": text, "lang": "es",
         "lang_confidence": 0.9, "category": "passport", "priority": "normal", "pii": {},
         "invalid_utf8": 0, "content_hash": "0" * 64,
         "chunks": [{"index": 0, "text": text, "start": 0, "end": len(text), "words": 13}]}
    r.update(kw)
    return r


def dumps(v):
    return json.dumps(v, ensure_ascii=False).encode()


# --- HTTP cases ---------------------------------------------------------------------------------
# body: bytes, or a function of the endpoint's "document" function (a valid body with overrides).
# expect: statuses allowed. raw: send over a plain socket (header tricks). slow: marks slow cases.

DEEP = 10000


def http_cases(doc, field):
    """Cases for a JSON endpoint; @doc(**kw) builds a valid body, @field is a string member."""
    return [
        ("malformed", b'{"' + field.encode() + b'": ', {400}),
        ("trailing-garbage", dumps(doc()) + b" x", {400}),
        ("empty-body", b"", {400}),
        ("not-json-text", b"hello", {400}),
        ("json-string-root", b'"just a string"', {400}),
        ("json-array-root", b"[]", {422}),
        ("nesting-10000-arrays", b"[" * DEEP + b"]" * DEEP, {400}),
        ("nesting-10000-objects", b'{"a":' * DEEP + b"1" + b"}" * DEEP, {400}),
        ("nesting-10000-in-field", dumps(doc(**{field: "x"})).replace(
            b'"x"', b"[" * DEEP + b"]" * DEEP), {400}),
        ("invalid-utf8", dumps(doc(**{field: "xx"})).replace(b'"xx"', b'"\xff\xfe\xc3\x28"'),
         {400}),
        ("overlong-utf8", dumps(doc(**{field: "xx"})).replace(b'"xx"', b'"\xc0\xaf"'), {400}),
        ("lone-surrogate", dumps(doc(**{field: "xx"})).replace(b'"xx"', b'"\\ud800"'), {400}),
        ("nul-raw", dumps(doc(**{field: "xx"})).replace(b'"xx"', b'"a\x00b"'), {400}),
        ("nul-escaped", dumps(doc(**{field: "xx"})).replace(b'"xx"', b'"a\\u0000b"'), {400}),
        ("nul-outside-json", dumps(doc()) + b"\x00", {400}),
        ("duplicate-keys", dumps(doc(**{field: "xx"})).replace(
            b'"' + field.encode() + b'": "xx"', b'"%s": "a", "%s": "b"' % (
                field.encode(), field.encode())), {400}),
        ("wrong-type-number", dumps(doc(**{field: 5})), {422}),
        ("wrong-type-array", dumps(doc(**{field: ["x"]})), {422}),
        ("wrong-type-null", dumps(doc(**{field: None})), {422}),
        ("unknown-member", dumps(doc(zzz=1)), {422}),
        ("huge-real", dumps(doc(**{field: "xx"})).replace(b'"xx"', b"1e400"), {400}),
        ("huge-integer", dumps(doc(**{field: "xx"})).replace(b'"xx"', b"9" * 400), {400}),
        ("huge-string", dumps(doc(**{field: "x" * 900000})), {413, 422}),
    ]


def http_framing_cases(path, ctype, valid_body, max_body):
    """Cases about content type and length (sent over a plain socket)."""
    return [
        ("content-type-text", b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n"
         b"Content-Length: %d\r\n\r\n%s" % (path, len(valid_body), valid_body), {415}),
        ("content-type-missing", b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (
            path, len(valid_body), valid_body), {415}),
        ("content-length-100MB", b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: %s\r\n"
         b"Content-Length: %d\r\n\r\n" % (path, ctype, 100 << 20) + valid_body, {413}),
        ("content-length-negative", b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: %s\r\n"
         b"Content-Length: -1\r\n\r\n" % (path, ctype), {400}),
        ("content-length-garbage", b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: %s\r\n"
         b"Content-Length: 12abc\r\n\r\n" % (path, ctype), {400}),
        ("content-length-overflow", b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: %s\r\n"
         b"Content-Length: 99999999999999999999999999\r\n\r\n" % (path, ctype), {400, 413}),
        ("header-100KB", b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: %s\r\nX-Big: %s\r\n"
         b"Content-Length: %d\r\n\r\n%s" % (path, ctype, b"a" * 100000, len(valid_body),
                                             valid_body), {431, 413, 400}),
        ("headers-5000", b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: %s\r\n" % (path, ctype) +
         b"".join(b"X-H%d: v\r\n" % i for i in range(5000)) +
         b"Content-Length: %d\r\n\r\n%s" % (len(valid_body), valid_body), {431, 413, 400}),
        ("method-garbage", b"P\x01ST %s HTTP/1.1\r\nHost: t\r\n\r\n" % path, {400, 404, 405, 501}),
        ("path-crlf-encoded", b"GET /v1/%%0d%%0aSet-Cookie:%%20x=1 HTTP/1.1\r\nHost: t\r\n\r\n",
         {400, 404}),
    ]


# Request ids that must not come back as they were sent (X-Request-Id is echoed only when it is
# 1..64 characters of [A-Za-z0-9._:-]).
INJECTED_REQUEST_IDS = [
    b"abc\rSet-Cookie: injected=1",
    b"abc%0d%0aSet-Cookie:%20injected=1",
    b"abc\x00def",
    b"<script>alert(1)</script>",
    b"a" * 65,
    b"\xff\xfe",
]

# --- PII adversarial text: schema-valid, built to make naive patterns backtrack -----------------

PII_ADVERSARIAL = [
    ("a50000-at", "a" * 50000 + "@"),
    ("at-run", "a@" * 30000),
    ("dots-at", "a." * 40000 + "@" + "b." * 20000),
    ("digits-100000", "1" * 100000),
    ("digit-separators", "1-" * 50000),
    ("digit-spaces", "1 " * 50000),
    ("phone-parens", "+(" * 30000 + "1"),
    ("iban-like", "ES91" + " 2100" * 30000),
    ("card-like", "4111 " * 30000),
    ("mixed-nested", ("a.b-c_d+e@f." * 5000) + ("(1) 2-3.4 " * 5000)),
]

# the same, short enough for a question (maxLength 4000)
PII_QUESTIONS = [
    ("a3999-at", "a" * 3999 + "@"),
    ("digits-4000", "1" * 4000),
    ("digit-separators", "1-" * 2000),
    ("dots-at", "a." * 1500 + "@" + "b." * 400),
    ("phone-parens", "+(" * 1999 + "1"),
]

# --- topic cases: (name, value bytes or None, what it must become) ------------------------------
# becomes: a set of DLQ reasons, or "output" (an output record for the key), or a set that also
# holds "output" when either is right.


def raw_topic_cases(tid):
    """tickets.raw records; @tid(name) gives the ticket id (and Kafka key) of a case."""
    def rec(name, **kw):
        return raw_record(tid(name), **kw)
    cases = [
        ("raw-not-json", b'{"oops', {"json"}),
        ("raw-empty", b"", {"json"}),
        ("raw-null-value", None, {"json"}),
        ("raw-nul-bytes", b"\x00\x01\x02\x00", {"json"}),
        ("raw-nesting-10000", b"[" * DEEP + b"]" * DEEP, {"json"}),
        ("raw-nesting-in-field", dumps(rec("raw-nesting-in-field", metadata={"k": "x"})).replace(
            b'"x"', b'{"a":' * DEEP + b"1" + b"}" * DEEP), {"json"}),
        ("raw-wrong-types", dumps(rec("raw-wrong-types", title=5, body=["x"])), {"schema"}),
        ("raw-array", b"[1, 2, 3]", {"schema"}),
        ("raw-huge-real", dumps(rec("raw-huge-real", schema_version=0)).replace(
            b'"schema_version": 0', b'"schema_version": 1e400'), {"json"}),
        ("raw-huge-integer", dumps(rec("raw-huge-integer", schema_version=0)).replace(
            b'"schema_version": 0', b'"schema_version": ' + b"9" * 300), {"json"}),
        ("raw-version-2", dumps(rec("raw-version-2", schema_version=2)), {"unknown_version"}),
        # ~960 KB: over the 900 KiB TAINA_INGEST_MAX_RECORD_BYTES
        ("raw-too-large", dumps(rec("raw-too-large", body="palabra " * 120000)), {"too_large"}),
        # repaired, not refused: invalid UTF-8 becomes U+FFFD and is counted
        ("raw-invalid-utf8", dumps(rec("raw-invalid-utf8", body="xx")).replace(
            b'"xx"', b'"caf\xe9 \xff\xfe ok"'), {"output"}),
        ("raw-nul-escaped", dumps(rec("raw-nul-escaped", body="a\u0000b")), {"output"}),
        # found by the enrich fuzzer: copied fields kept it, so the output had \u0000 in it
        ("raw-nul-in-metadata", dumps(rec("raw-nul-in-metadata", title="a\u0000b",
                                          metadata={"channel": "web\u0000x", "l": "\u0000"})),
         {"output"}),
    ]
    return cases + [("raw-pii-" + n, dumps(rec("raw-pii-" + n, body=t)), {"output", "enrich"})
                    for n, t in PII_ADVERSARIAL[:4]]


def enriched_topic_cases(tid):
    """tickets.enriched records; @tid(name) gives the ticket id (and Kafka key) of a case."""
    def rec(name, **kw):
        return enriched_record(tid(name), **kw)
    return [
        ("emb-not-json", b"{oops", {"json"}),
        ("emb-empty", b"", {"json"}),
        ("emb-null-value", None, {"json"}),
        ("emb-nul-bytes", b"\x00\x00", {"json"}),
        ("emb-nesting-10000", b"[" * DEEP + b"]" * DEEP, {"json"}),
        ("emb-wrong-types", dumps(rec("emb-wrong-types", chunks="x")), {"schema"}),
        ("emb-chunk-index-huge", dumps(rec("emb-chunk-index-huge", chunks=[
            {"index": 10 ** 30, "text": "x", "start": 0, "end": 1}])), {"json", "schema"}),
        ("emb-chunk-past-text", dumps(rec("emb-chunk-past-text", chunks=[
            {"index": 0, "text": "x", "start": 5000000, "end": 4}])), {"schema", "output"}),
        ("emb-huge-real", dumps(rec("emb-huge-real", lang_confidence=0)).replace(
            b'"lang_confidence": 0', b'"lang_confidence": 1e400'), {"json"}),
        ("emb-invalid-utf8", dumps(rec("emb-invalid-utf8", title="xx")).replace(
            b'"xx"', b'"\xff\xfe"'), {"json"}),
    ]


# --- raw HTTP over a socket ---------------------------------------------------------------------


def read_response(sock, timeout):
    """Read one HTTP response; returns (status, headers [(name, value) as bytes], body bytes) or
    (None, [], b"") when the server closed the connection without answering."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            return None, [], b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    headers = []
    for ln in lines[1:]:
        k, _, v = ln.partition(b":")
        headers.append((k.strip().lower(), v.strip()))
    hd = dict(headers)
    if b"content-length" in hd:
        n = int(hd[b"content-length"])
        while len(body) < n:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                break
            if not chunk:
                break
            body += chunk
        body = body[:n]
    elif hd.get(b"transfer-encoding", b"").lower() == b"chunked":
        while not body.endswith(b"0\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        out, rest = b"", body
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2:]
        body = out
    return status, headers, body


def raw_request(port, data, timeout=30):
    """Send @data as is (the server may answer before reading all of it) and read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed early (e.g. 413 before the body)
        return read_response(s, timeout)


def request_bytes(method, path, body, headers):
    h = b"".join(b"%s: %s\r\n" % (k, v) for k, v in headers)
    return b"%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%sContent-Length: %d\r\n\r\n" \
        % (method, path, h, len(body)) + body


def json_error(status, body):
    """The JSON error body every 4xx must carry; returns its code."""
    e = json.loads(body)["error"]
    assert isinstance(e["code"], str) and e["code"], (status, body[:200])
    assert isinstance(e["message"], str) and e["message"], (status, body[:200])
    return e["code"]


def chunked_flood(port, path, headers, total, timeout=30):
    """POST a chunked body of @total bytes (stopping when the server answers or closes); returns the
    status (None when the server closed without answering) and how many bytes went out."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    h = b"".join(b"%s: %s\r\n" % (k, v) for k, v in headers)
    s.sendall(b"POST %s HTTP/1.1\r\nHost: t\r\n%sTransfer-Encoding: chunked\r\n\r\n" % (path, h))
    chunk = b"[" * 65536
    sent = 0
    try:
        while sent < total:
            s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        s.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        pass
    try:
        st, _, _ = read_response(s, timeout)
    except (ConnectionResetError, socket.timeout, OSError):
        st = None
    s.close()
    return st, sent


class Slowloris:
    """@n connections that send a request's headers one byte at a time (every @interval s)."""

    def __init__(self, port, n, interval=0.5):
        self.port, self.n, self.interval = port, n, interval
        self.stop_flag = threading.Event()
        self.sel = selectors.DefaultSelector()
        self.socks = []
        self.closed_by_server = 0
        self.head = b"POST /v1/tickets HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n" + \
            b"X-Slow: " + b"s" * 100000
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.setblocking(False)
            self.socks.append([s, 0])
        self.th = threading.Thread(target=self.run, daemon=True)
        self.th.start()

    def run(self):
        while not self.stop_flag.is_set():
            for st in self.socks:
                s, pos = st
                if s is None:
                    continue
                try:
                    s.send(self.head[pos:pos + 1])
                    st[1] = pos + 1
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    s.close()
                    st[0] = None
                    self.closed_by_server += 1
            self.stop_flag.wait(self.interval)

    def alive(self):
        return sum(1 for s, _ in self.socks if s is not None)

    def stop(self):
        self.stop_flag.set()
        self.th.join(10)
        for s, _ in self.socks:
            if s is not None:
                s.close()


def idle_connections(port, n):
    """@n connections that send nothing; returns the sockets that connected."""
    out = []
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            out.append(s)
        except OSError:
            pass
    return out


def timed(fn, *a, **kw):
    t0 = time.time()
    r = fn(*a, **kw)
    return r, time.time() - t0
