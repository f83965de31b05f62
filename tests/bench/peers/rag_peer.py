#!/usr/bin/env python3
"""The peer of taina-rag (local backend), written the way a Python team would write it:
FastAPI + uvicorn (Debian python3-fastapi, python3-uvicorn) and numpy exact search.

    RAG_PEER_DATA=seed.ndjson RAG_PEER_QVEC=qvec.ndjson RAG_PEER_KEYS=api_keys \\
        python3 -m uvicorn rag_peer:app --app-dir tests/bench/peers --workers 2 --port P

Each worker loads RAG_PEER_DATA (NDJSON of tickets.embedded record values, the file taina-rag
reads as its seed) into one float32 matrix (rows L2-normalized) with the payloads in lists and
per-tenant row arrays, and serves the same endpoints and JSON shapes as taina-rag:
  POST /v1/search {question, top_k, filters}  -> {results: [...], timings}
  POST /v1/query  {question, top_k, filters}  -> {citations, answer, model, timings}
(Bearer API keys from a taina keys file, "tenant sha256(key)" a line; pydantic validates the
body). Search: scores = M[tenant rows] @ q, the top 3*top_k (at most 150) by argpartition, ties
by row, then taina's rule of dropping a chunk that overlaps a better one of the same ticket.
Extractive answer: the question's content words, the passages' sentences scored by how many of
them they contain (+ a bonus for the better passages), the best ones within 600 characters in
document order with their [n] markers, like taina's extractive provider.
The question's vector: looked up in RAG_PEER_QVEC (the question -> vector file written by
bench-rag with taina's own hash embedding, so both sides search with the same floats and the
peer pays nothing to embed); a question not there is embedded with the pure-Python feature
hashing of embedder_peer.py. Unlike taina-rag it produces no rag.queries event.
"""
import base64
import hashlib
import json
import os
import re
import time
import unicodedata
from typing import Optional

import numpy as np
from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel, Field

from embedder_peer import hash_embed

DIMS = 384
MAX_CHARS = 600
STOP = set("""a al algo como con de del el en es la las lo los mi mis no o para por que qué se
su sus un una y the a an and are can do does for how i in is it my of on or the to what when
where which who why with you your""".split())
_WORD = re.compile(r"(?:[^\W_]|')+")
_SENT = re.compile(r"[^.!?]+[.!?]*")


def fold(text):
    s = unicodedata.normalize("NFD", text.casefold())
    return "".join(ch for ch in s if not unicodedata.combining(ch))


def load():
    rows, payload, tenants, index = [], [], {}, {}
    with open(os.environ["RAG_PEER_DATA"], encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            key = (r["tenant_id"], r["ticket_id"], r["chunk_index"])
            v = np.frombuffer(base64.b64decode(r["vector"]), dtype="<f4")
            if key in index:  # a later record replaces the chunk
                rows[index[key]] = v
                payload[index[key]] = r
                continue
            index[key] = len(rows)
            tenants.setdefault(r["tenant_id"], []).append(len(rows))
            rows.append(v)
            del r["vector"]
            payload.append(r)
    m = np.vstack(rows).astype(np.float32)
    m /= np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-30)
    return m, payload, {t: np.array(ix, dtype=np.int64) for t, ix in tenants.items()}


M, PAYLOAD, TENANT_ROWS = load()
QVEC = {}
if os.environ.get("RAG_PEER_QVEC"):
    with open(os.environ["RAG_PEER_QVEC"], encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            QVEC[d["question"]] = np.frombuffer(base64.b64decode(d["vector"]), dtype="<f4")
if os.environ.get("RAG_PEER_READY_DIR"):  # one file per loaded worker, for the bench
    open(os.path.join(os.environ["RAG_PEER_READY_DIR"], "worker.%d" % os.getpid()), "w").close()
KEYS = {}
with open(os.environ["RAG_PEER_KEYS"], encoding="utf-8") as f:
    for line in f:
        if line.strip():
            tenant, digest = line.split()
            KEYS[digest] = tenant

app = FastAPI()


class Filters(BaseModel):
    lang: Optional[str] = None
    category: Optional[str] = None
    ticket_id: Optional[str] = None


class Req(BaseModel):
    question: str = Field(min_length=1, max_length=2000)
    top_k: int = Field(5, ge=1, le=50)
    filters: Optional[Filters] = None
    stream: bool = False


def tenant_of(authorization):
    if not authorization or not authorization.startswith("Bearer "):
        raise HTTPException(401, "missing API key")
    t = KEYS.get(hashlib.sha256(authorization[7:].encode()).hexdigest())
    if t is None:
        raise HTTPException(401, "unknown API key")
    return t


def search(req, tenant):
    t0 = time.perf_counter()
    q = QVEC.get(req.question)
    if q is None:
        q = np.array(hash_embed(req.question, DIMS), dtype=np.float32)
    t1 = time.perf_counter()
    rows = TENANT_ROWS.get(tenant, np.empty(0, dtype=np.int64))
    f = req.filters
    if f and (f.lang or f.category or f.ticket_id):
        rows = np.array([i for i in rows if (not f.lang or PAYLOAD[i].get("lang") == f.lang) and
                         (not f.category or PAYLOAD[i].get("category") == f.category) and
                         (not f.ticket_id or PAYLOAD[i]["ticket_id"] == f.ticket_id)],
                        dtype=np.int64)
    fetch = min(req.top_k * 3, 150)
    hits = []
    if len(rows):
        n = np.linalg.norm(q)
        scores = (M[rows] @ (q / n if n else q)) if len(rows) < len(M) else M @ (q / n if n else q)
        k = min(fetch, len(rows))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.lexsort((rows[top], -scores[top]))]
        for i in top:  # drop a chunk that overlaps a better one of the same ticket
            p = PAYLOAD[rows[i]]
            if any(h[1]["ticket_id"] == p["ticket_id"] and p["start"] < h[1]["end"] and
                   h[1]["start"] < p["end"] for h in hits):
                continue
            hits.append((float(scores[i]), p))
            if len(hits) == req.top_k:
                break
    t2 = time.perf_counter()
    return hits, (t1 - t0) * 1000, (t2 - t1) * 1000


def content_words(text):
    return {w for w in _WORD.findall(fold(text)) if w not in STOP and len(w) > 1}


def extractive(question, hits):
    es = fold(question).startswith(("¿", "que", "como", "donde", "cuando", "cual", "quien")) or \
        " de " in question
    lead = "Según los documentos:" if es else "According to the documents:"
    qw = content_words(question)
    sents = []
    for i, (_, p) in enumerate(hits):
        bonus = 0.25 * (len(hits) - i) / len(hits)
        for j, s in enumerate(_SENT.findall(p["text"])):
            s = s.strip()
            c = len(qw & content_words(s))
            if s and c:
                sents.append((c + bonus, i, j, s))
    if not sents:
        return "No encontré una respuesta en los documentos." if es else \
            "I could not find an answer in the documents."
    sents.sort(key=lambda x: (-x[0], x[1], x[2]))
    used, chosen, seen = len(lead), [], set()
    for sc, i, j, s in sents:
        size = 1 + len(s) + len(" [%d]" % (i + 1))
        if used + size > MAX_CHARS or fold(s) in seen:
            continue
        seen.add(fold(s))
        chosen.append((i, j, s))
        used += size
    if not chosen:
        sc, i, j, s = sents[0]
        chosen = [(i, j, s[:MAX_CHARS - used - 8].rsplit(" ", 1)[0] + "…")]
    chosen.sort()
    return lead + "".join(" %s [%d]" % (s, i + 1) for i, _, s in chosen)


@app.post("/v1/search")
def v1_search(req: Req, authorization: Optional[str] = Header(None)):
    t0 = time.perf_counter()
    tenant = tenant_of(authorization)
    hits, embed_ms, search_ms = search(req, tenant)
    res = []
    for score, p in hits:
        o = {"ticket_id": p["ticket_id"], "chunk_index": p["chunk_index"], "score": score,
             "text": p["text"]}
        for k in ("title", "lang", "category"):
            if p.get(k):
                o[k] = p[k]
        res.append(o)
    return {"results": res, "timings": {"embed_ms": embed_ms, "search_ms": search_ms,
                                        "total_ms": (time.perf_counter() - t0) * 1000}}


@app.post("/v1/query")
def v1_query(req: Req, authorization: Optional[str] = Header(None)):
    t0 = time.perf_counter()
    tenant = tenant_of(authorization)
    hits, embed_ms, search_ms = search(req, tenant)
    t1 = time.perf_counter()
    passages, used = [], 0
    for h in hits:  # the context budget: 1500 tokens of 4 characters
        if passages and used + len(h[1]["text"]) > 6000:
            break
        passages.append(h)
        used += len(h[1]["text"])
    answer = extractive(req.question, passages)
    cites = []
    for score, p in hits:
        c = {"ticket_id": p["ticket_id"], "chunk_index": p["chunk_index"], "score": score,
             "snippet": p["text"][:300]}
        if p.get("title"):
            c["title"] = p["title"]
        cites.append(c)
    t2 = time.perf_counter()
    return {"citations": cites, "model": "peer-extractive", "answer": answer,
            "timings": {"embed_ms": embed_ms, "search_ms": search_ms,
                        "llm_ms": (t2 - t1) * 1000, "total_ms": (t2 - t0) * 1000}}
