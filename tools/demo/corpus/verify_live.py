#!/usr/bin/env python3
"""End-to-end check of the demo corpus against running services (stdlib only, plus kcat for the
Kafka cases).

    # against services that are already up (the demo's):
    verify_live.py --rag http://127.0.0.1:8082 --ingest http://127.0.0.1:8080 --api-key none \
                   [--brokers $(cat build/demo/bootstrap)]
    # or start devstack + ingest + embedder + rag from build/bin, check, and stop them:
    verify_live.py --start

What it does:
1. with --ingest: POST documents.ndjson (one NDJSON batch; every line must be accepted with its
   own ticket_id) and each HTTP case of invalid.ndjson (status, error code, path, keyword as in
   expected.json);
2. with --brokers: produce the Kafka cases of invalid.ndjson to tickets.raw (kcat) and find each
   on tickets.dlq with the expected taina-error reason;
3. wait until every document is searchable, then per document (POST /v1/search filtered on its
   ticket_id): language, category (expected.json), PII placeholders present and raw values gone;
4. every question of questions.json: the rank of its expected document among the distinct
   documents of POST /v1/search (top_k 10): top-1 and top-3; with --answers, also the answer
   and citations of POST /v1/query.

Exit 0 when every question has an expected document in its top 3 and every check passed (a
category other than expected.json's is a warning unless --strict-categories);
--json-out FILE writes the whole result. `--api-key none` sends no Authorization header (services
started with TAINA_AUTH_DISABLED=1).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
PLACEHOLDERS = ("EMAIL", "PHONE", "CEDULA", "CARD", "IBAN")


def load_ndjson(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_json(name):
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        return json.load(f)


class Client:
    def __init__(self, key):
        self.key = None if key in (None, "", "none") else key

    def post(self, url, body, ctype="application/json", timeout=30):
        data = body if isinstance(body, bytes) else (
            body.encode() if isinstance(body, str) else json.dumps(body).encode())
        req = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": ctype})
        if self.key:
            req.add_header("Authorization", "Bearer " + self.key)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw.decode(errors="replace")

    def search(self, rag, question, top_k=10, filters=None):
        body = {"question": question, "top_k": top_k}
        if filters:
            body["filters"] = filters
        st, r = self.post(rag + "/v1/search", body)
        if st != 200:
            raise RuntimeError("POST /v1/search: %s %s" % (st, r))
        return r["results"]


# --------------------------------------------------------------------------------------------
# 1. HTTP ingest

def post_documents(cl, ingest, docs, out):
    body = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs).encode()
    st, r = cl.post(ingest + "/v1/tickets", body, "application/x-ndjson", timeout=120)
    ok = st == 202 and isinstance(r, dict) and r.get("accepted") == len(docs)
    got = [i.get("ticket_id") for i in r.get("items", [])] if isinstance(r, dict) else []
    ids_ok = got == [d["ticket_id"] for d in docs]
    out["post"] = {"status": st, "accepted": r.get("accepted") if isinstance(r, dict) else None,
                   "ok": ok and ids_ok}
    print("POST %d documents: %s, accepted %s%s" % (
        len(docs), st, out["post"]["accepted"], "" if ids_ok else ", ticket ids NOT kept"))
    return ok and ids_ok


def http_cases(cl, ingest, cases, expected, out):
    res, ok = {}, True
    for c in cases:
        if c["via"] != "http":
            continue
        want = expected[c["case"]]
        body = c["text"] if "text" in c else json.dumps(c["record"], ensure_ascii=False)
        st, r = cl.post(ingest + "/v1/tickets", body)
        err = r.get("error", {}) if isinstance(r, dict) else {}
        good = st == want["http_status"] and err.get("code") == want.get("code") and all(
            err.get(k) == want[k] for k in ("path", "keyword") if k in want)
        ok &= good
        res[c["case"]] = {"status": st, "error": err, "ok": good}
        print("  %-4s %-28s %s %s %s %s" % ("ok" if good else "FAIL", c["case"], st,
                                           err.get("code"), err.get("path", ""),
                                           err.get("keyword", "")))
    out["http_invalid"] = res
    return ok


# --------------------------------------------------------------------------------------------
# 2. Kafka cases to tickets.raw, found again on tickets.dlq

def kafka_value(c):
    if "text" in c:
        return c["text"].encode()
    rec = dict(c["record"])
    if "pad_to_bytes" in c:
        base = len(json.dumps(rec, ensure_ascii=False).encode())
        rec["body"] = "relleno " * ((c["pad_to_bytes"] - base) // 8 + 1)
    return json.dumps(rec, ensure_ascii=False).encode()


def kafka_cases(brokers, cases, expected, out, timeout=60):
    todo = [c for c in cases if c["via"] == "kafka"]
    with tempfile.TemporaryDirectory() as tmp:
        for c in todo:
            p = os.path.join(tmp, c["case"])
            with open(p, "wb") as f:
                f.write(kafka_value(c))
            subprocess.run(["kcat", "-P", "-b", brokers, "-t", "tickets.raw", "-k", c["key"],
                            "-X", "message.max.bytes=2000000", p], check=True)
    want = {c["key"]: c["case"] for c in todo}
    seen = {}
    deadline = time.time() + timeout
    while time.time() < deadline and len(seen) < len(want):
        p = subprocess.run(["kcat", "-C", "-b", brokers, "-t", "tickets.dlq", "-J", "-e", "-q",
                            "-X", "isolation.level=read_committed"],
                           capture_output=True, text=True, timeout=60)
        for line in p.stdout.splitlines():
            try:
                m = json.loads(line)
            except ValueError:
                continue
            h = m.get("headers") or []
            hd = dict(zip(h[0::2], h[1::2]))
            if m.get("key") in want:
                seen[m["key"]] = hd.get("taina-error")
        if len(seen) < len(want):
            time.sleep(1)
    res, ok = {}, True
    for key, case in want.items():
        got = seen.get(key)
        good = got == expected[case]["dlq_reason"]
        ok &= good
        res[case] = {"dlq_reason": got, "ok": good}
        print("  %-4s %-28s tickets.dlq taina-error=%s" % ("ok" if good else "FAIL", case, got))
    out["kafka_invalid"] = res
    return ok


# --------------------------------------------------------------------------------------------
# 3. per document

def doc_chunks(cl, rag, d):
    return cl.search(rag, d["title"], 50, {"ticket_id": d["ticket_id"]})


def wait_indexed(cl, rag, docs, timeout):
    deadline = time.time() + timeout
    missing = list(docs)
    while missing and time.time() < deadline:
        missing = [d for d in missing if not doc_chunks(cl, rag, d)]
        if missing:
            time.sleep(1)
    return missing


def check_documents(cl, rag, docs, expected, out, strict_categories=False):
    res, ok = {}, True
    for d in docs:
        name = d["metadata"]["doc"]
        chunks = doc_chunks(cl, rag, d)
        text = " ".join(c["text"] for c in chunks) + " " + chunks[0].get("title", "")
        want = expected["pii"].get(name, {"counts": {}, "raw": []})
        problems = []
        for t in PLACEHOLDERS:
            n = text.count("[%s]" % t)
            w = want["counts"].get(t, 0)
            if (n == 0) != (w == 0):  # chunks overlap: presence, not exact counts
                problems.append("[%s] %s, expected %s" % (t, n, w))
        for raw in want["raw"]:
            if raw in text:
                problems.append("raw value survived: %r" % raw)
        lang, cat = chunks[0].get("lang"), chunks[0].get("category")
        if lang != d["lang"]:
            problems.append("lang %s, expected %s" % (lang, d["lang"]))
        wcat = expected["categories"].get(name)
        warnings = []
        if wcat and cat != wcat:
            (problems if strict_categories else warnings).append(
                "category %s, expected %s" % (cat, wcat))
        ok &= not problems
        res[name] = {"chunks": len(chunks), "lang": lang, "category": cat, "problems": problems,
                     "warnings": warnings}
        if problems or warnings:
            print("  %s %-32s %s" % ("FAIL" if problems else "WARN", name,
                                     "; ".join(problems + warnings)))
    print("documents: %d checked, %d with problems, %d with warnings" % (
        len(docs), sum(1 for r in res.values() if r["problems"]),
        sum(1 for r in res.values() if r["warnings"])))
    out["documents"] = res
    return ok


# --------------------------------------------------------------------------------------------
# 4. questions

def check_questions(cl, rag, docs, questions, out):
    by_id = {d["ticket_id"]: d["metadata"]["doc"] for d in docs}
    res, top1, top3 = {}, 0, 0
    for q in questions["questions"]:
        results = cl.search(rag, q["question"], 10)
        ranked = []
        for r in results:
            name = by_id.get(r["ticket_id"], r["ticket_id"])
            if name not in ranked:
                ranked.append(name)
        rank = next((i + 1 for i, n in enumerate(ranked) if n in q["expect"]), None)
        top1 += rank == 1
        top3 += rank is not None and rank <= 3
        res[q["id"]] = {"rank": rank, "top3": ranked[:3],
                        "scores": [round(r["score"], 4) for r in results[:3]]}
        print("  %-5s %-26s rank %-4s %s" % ("top1" if rank == 1 else "top3" if rank and rank <= 3
                                            else "MISS", q["id"], rank, ", ".join(ranked[:3])))
    n = len(questions["questions"])
    print("questions: top-1 %d/%d, top-3 %d/%d" % (top1, n, top3, n))
    out["questions"] = {"top1": top1, "top3": top3, "n": n, "each": res}
    return top3 == n


def print_answers(cl, rag, docs, questions, out):
    by_id = {d["ticket_id"]: d["metadata"]["doc"] for d in docs}
    res = {}
    for q in questions["questions"]:
        st, r = cl.post(rag + "/v1/query", {"question": q["question"], "top_k": 3})
        if st != 200:
            print("  %s: POST /v1/query %s %s" % (q["id"], st, r))
            continue
        cites = [by_id.get(c["ticket_id"], c["ticket_id"]) for c in r["citations"]]
        res[q["id"]] = {"answer": r.get("answer", r.get("answer_error")), "citations": cites}
        print("  Q: %s\n  A: %s\n     cites: %s" % (q["question"], res[q["id"]]["answer"],
                                                    ", ".join(cites)))
    out["answers"] = res


# --------------------------------------------------------------------------------------------

def start_stack(tmpdir):
    """devstack + ingest + embedder + rag from build/bin, auth disabled."""
    sys.path.insert(0, os.path.join(TOP, "tests", "support"))
    from taina_harness import KAFKA_FAST_GROUP, Devstack, Service, TempDir
    tmp = TempDir("taina-corpus-")
    ds = Devstack(tmp)
    base = dict(KAFKA_FAST_GROUP, TAINA_KAFKA_BROKERS=ds.bootstrap, TAINA_AUTH_DISABLED="1")
    ingest = Service("ingest", tmp, dict(base, TAINA_INGEST_BATCH_LINGER="20ms"))
    emb = Service("embedder", tmp, dict(base))
    rag = Service("rag", tmp, dict(base))
    for s in (ingest, emb, rag):
        s.wait_ready(60)
    return tmp, ds, [rag, emb, ingest]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rag", help="rag base URL, e.g. http://127.0.0.1:8082")
    ap.add_argument("--ingest", help="ingest base URL: post the corpus and the HTTP cases first")
    ap.add_argument("--api-key", default="none", help="API key, or none (auth disabled)")
    ap.add_argument("--brokers", help="Kafka bootstrap: produce the Kafka cases, read the DLQ")
    ap.add_argument("--start", action="store_true",
                    help="start devstack, ingest, embedder and rag from build/bin (auth disabled)")
    ap.add_argument("--timeout", type=float, default=120, help="seconds to wait for indexing")
    ap.add_argument("--json-out", help="write the results to this file")
    ap.add_argument("--strict-categories", action="store_true",
                    help="a category other than expected.json's fails (default: a warning; the "
                         "rules are keyword heuristics)")
    ap.add_argument("--answers", action="store_true",
                    help="also ask each question through POST /v1/query and print the answer")
    a = ap.parse_args()

    docs = load_ndjson(os.path.join(HERE, "documents.ndjson"))
    cases = load_ndjson(os.path.join(HERE, "invalid.ndjson"))
    expected, questions = load_json("expected.json"), load_json("questions.json")
    stack = None
    if a.start:
        stack = start_stack(None)
        tmp, ds, svcs = stack
        a.rag, a.ingest, a.brokers = svcs[0].url(""), svcs[2].url(""), ds.bootstrap
        print("started devstack, ingest, embedder, rag (logs in %s)" % tmp.path)
    if not a.rag:
        ap.error("--rag or --start is needed")
    cl, out, ok = Client(a.api_key), {}, True
    try:
        if a.ingest:
            ok &= post_documents(cl, a.ingest, docs, out)
            print("HTTP invalid cases:")
            ok &= http_cases(cl, a.ingest, cases, expected["invalid"], out)
        if a.brokers:
            print("Kafka invalid cases (tickets.raw -> tickets.dlq):")
            ok &= kafka_cases(a.brokers, cases, expected["invalid"], out)
        t0 = time.time()
        missing = wait_indexed(cl, a.rag, docs, a.timeout)
        print("indexed %d/%d documents in %.1f s" % (len(docs) - len(missing), len(docs),
                                                      time.time() - t0))
        if missing:
            print("not searchable: " + ", ".join(d["metadata"]["doc"] for d in missing))
            ok = False
            docs_ok = [d for d in docs if d not in missing]
        else:
            docs_ok = docs
        ok &= check_documents(cl, a.rag, docs_ok, expected, out, a.strict_categories)
        print("questions (POST /v1/search, top_k 10, distinct documents):")
        ok &= check_questions(cl, a.rag, docs, questions, out)
        if a.answers:
            print("answers (POST /v1/query, top_k 3):")
            print_answers(cl, a.rag, docs, questions, out)
    finally:
        if stack:
            tmp, ds, svcs = stack
            codes = [s.stop() for s in svcs]
            ds.stop()
            if any(codes):
                print("a service did not exit 0: %s (logs in %s)" % (codes, tmp.path))
            else:
                tmp.cleanup()
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(out, f, indent=2, ensure_ascii=False)
    print("RESULT: %s" % ("ok" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
