#!/usr/bin/env python3
"""Offline checks of the demo corpus (python3 stdlib + jsonschema; no services).

    python3 tools/demo/corpus/check.py      # prints a summary, exits 1 on any error

Each check_* function returns a list of error strings (empty: fine), so tests can call them
one by one (tests/integration/0026-demo-corpus.py).
"""
import html
import unicodedata
import html.parser
import importlib.util
import json
import os
import re
import sys
import uuid

import jsonschema

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
SCHEMAS = os.path.join(TOP, "schemas")

MIN_DOCS = 64
MIN_WORDS, MAX_WORDS = 80, 600
MIN_PII_TICKETS = 4
MIN_HTML = 3
PLACEHOLDERS = ("EMAIL", "PHONE", "CEDULA", "CARD", "IBAN")
KINDS = ("faq", "procedure", "ticket")
# The categories of ingest's built-in rules (common/src/category.c) and the default one.
CATEGORIES = ("passport", "national_id", "driving_licence", "civil_registry", "tax", "vehicle",
              "social_benefits", "appointments", "complaint", "urgent", "general")
DLQ_REASONS = ("json", "schema", "unknown_version", "too_large", "enrich")
MAX_RECORD_BYTES = 900 * 1024  # TAINA_INGEST_MAX_RECORD_BYTES default


# --------------------------------------------------------------------------------------------
# loading

def load_ndjson(name):
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_json(name):
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        return json.load(f)


RFC3339 = re.compile(r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt]([01]\d|2[0-3]):[0-5]\d:"
                     r"([0-5]\d|60)(\.\d+)?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)$")


def format_checker():
    """jsonschema's, with date-time always checked (Debian's python3-jsonschema checks it only
    when rfc3339-validator is installed, and it is not a dependency)."""
    fc = jsonschema.FormatChecker()
    fc.checks("date-time")(lambda v: not isinstance(v, str) or bool(RFC3339.match(v)))
    return fc


def validator(rel):
    with open(os.path.join(SCHEMAS, rel), encoding="utf-8") as f:
        schema = json.load(f)
    return jsonschema.Draft7Validator(schema, format_checker=format_checker())


def load_all():
    return {
        "docs": load_ndjson("documents.ndjson"),
        "invalid": load_ndjson("invalid.ndjson"),
        "expected": load_json("expected.json"),
        "questions": load_json("questions.json"),
        "http": validator("http/ingest.ticket.schema.json"),
        "raw": validator("tickets.raw.schema.json"),
    }


# --------------------------------------------------------------------------------------------
# helpers

class _Text(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts = []

    def handle_data(self, data):
        self.parts.append(data)

    def handle_starttag(self, tag, attrs):
        self.parts.append(" ")

    def handle_endtag(self, tag):
        self.parts.append(" ")


def plain_text(doc):
    """The body as ingest indexes it, roughly: HTML to text, entities decoded."""
    if doc["content_type"] != "text/html":
        return doc["body"]
    p = _Text()
    p.feed(doc["body"])
    p.close()
    return html.unescape("".join(p.parts))


def words(text):
    return len(re.findall(r"\w+", text))


def luhn_ok(s):
    d = [int(c) for c in s if c.isdigit()]
    return 13 <= len(d) <= 19 and luhn_sum(d) % 10 == 0


def iban_ok(s):
    c = s.replace(" ", "").upper()
    if not (15 <= len(c) <= 34 and c[:2].isalpha() and c.isalnum()):
        return False
    return int("".join(str(int(ch, 36)) for ch in c[4:] + c[:4])) % 97 == 1


def _phone_ok(s):
    return 9 <= sum(ch.isdigit() for ch in s) <= 15


def cedula_ok(s):
    d = [int(c) for c in s if c.isdigit()]
    return len(d) == 11 and luhn_sum(d) % 10 == 0


def luhn_sum(digits):
    r = digits[::-1]
    return sum(x if i % 2 == 0 else (2 * x - 9 if x > 4 else 2 * x) for i, x in enumerate(r))


# The CHECK column of a rules file (common/include/taina/pii.h) in Python.
PII_CHECKS = {"none": None, "luhn": luhn_ok, "iban": iban_ok, "phone": _phone_ok,
              "cedula": cedula_ok}
PII_SOURCE = os.path.join(TOP, "common", "src", "pii.c")


def c_string_literal(body):
    """The value of the adjacent C string literals in @body (comments skipped)."""
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    out = []
    for lit in re.findall(r'"((?:[^"\\]|\\.)*)"', body):
        out.append(re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)),
                          lit))
    return "".join(out)


def parse_pii_rules(text):
    """A rules file (TYPE CHECK pattern; # comments) as [(type, compiled pattern, check)]."""
    rules = []
    for n, line in enumerate(text.splitlines(), 1):
        f = line.split(None, 2)
        if not f or f[0].startswith("#"):
            continue
        if len(f) < 3 or f[1] not in PII_CHECKS:
            raise ValueError("PII rules line %d: %r" % (n, line))
        rules.append((f[0], re.compile(f[2].rstrip(), re.ASCII), PII_CHECKS[f[1]]))
    return rules


def load_pii_rules(path=PII_SOURCE):
    """Ingest's built-in PII rules, read from common/src/pii.c (tn_pii_default_rules): the
    prediction runs the very rules ingest compiles, with Python's re instead of PCRE2."""
    with open(path, encoding="utf-8") as f:
        src = f.read()
    m = re.search(r"const char tn_pii_default_rules\[\] =(.*?);\n", src, re.S)
    if not m:
        raise ValueError("%s: tn_pii_default_rules not found" % path)
    return parse_pii_rules(c_string_literal(m.group(1)))


PII_RULES = load_pii_rules()


def _shorter(check, s):
    """pii.c's shorter_ok(): an IBAN match that fails its check, retried without its trailing
    space-separated pieces (longest first). The new length, or None."""
    if check is not iban_ok:
        return None
    for k in range(len(s) - 1, -1, -1):
        if s[k] == " " and iban_ok(s[:k]):
            return k
    return None


def predict_pii(text, rules=None):
    """The placeholder counts and the redacted text, as pii.c's apply_rule() makes them: each
    rule in order over the output of the ones above, a match after a replacement seeing the
    text from the replacement's end on (what a placeholder is to the rules' lookbehinds)."""
    counts = {}
    for typ, rx, check in rules or PII_RULES:
        out, pos, copied = [], 0, 0
        while pos <= len(text):
            m = rx.search(text[copied:], pos - copied)
            if not m:
                break
            s, e = (copied + i for i in m.span())
            if e == s:
                pos = e + 1
                continue
            n = e - s
            ok = not check or check(text[s:e])
            if not ok:
                k = _shorter(check, text[s:e])
                if k is not None:
                    ok, n = True, k
            if ok:
                out.append(text[copied:s])
                out.append("[%s]" % typ)
                copied = s + n
                counts[typ] = counts.get(typ, 0) + 1
            pos = s + n
        out.append(text[copied:])
        text = "".join(out)
    return counts, text


# Ingest's category rules (common/src/category.c, tn_category_default_rules), scored as
# tn_category_classify_doc() does: 1 per keyword occurrence in the body, CATEGORY_TITLE_WEIGHT in
# the title, ties to more distinct keywords, then file order.
CATEGORY_SOURCE = os.path.join(TOP, "common", "src", "category.c")
CATEGORY_TITLE_WEIGHT = 3  # TN_CATEGORY_TITLE_WEIGHT, common/include/taina/category.h


def fold(text):
    """tn_category_fold(), nearly: accents and case off, runs of non-word characters one space."""
    t = unicodedata.normalize("NFD", text)
    t = "".join(ch for ch in t if not unicodedata.combining(ch)).casefold()
    t = re.sub(r"[^\w']+|_", " ", t)
    return " " + " ".join(t.split()) + " "


def load_category_rules(path=CATEGORY_SOURCE):
    with open(path, encoding="utf-8") as f:
        src = f.read()
    m = re.search(r"const char tn_category_default_rules\[\] =(.*?);\n", src, re.S)
    if not m:
        raise ValueError("%s: tn_category_default_rules not found" % path)
    rules = []
    for line in c_string_literal(m.group(1)).splitlines():
        f = line.split(None, 3)
        if not f or f[0].startswith("#"):
            continue
        phrases = [fold(k) for k in f[3].split(",") if fold(k).strip()]
        rules.append((f[0], f[2], phrases))
    return rules


CATEGORY_RULES = load_category_rules()


def predict_category(title, body, lang, rules=None):
    rules = rules or CATEGORY_RULES
    ft, fb = fold(title), fold(body)
    score, distinct, order = {}, {}, []
    for cat, rlang, phrases in rules:
        if cat not in order:
            order.append(cat)
        if rlang != "*" and lang not in (None, "und", rlang):
            continue
        for p in phrases:
            nt = len(re.findall("(?=%s)" % re.escape(p), ft))
            nb = len(re.findall("(?=%s)" % re.escape(p), fb))
            score[cat] = score.get(cat, 0) + CATEGORY_TITLE_WEIGHT * nt + nb
            distinct[cat] = distinct.get(cat, 0) + (nt + nb > 0)
    best = max(order, key=lambda c: (score.get(c, 0), distinct.get(c, 0), -order.index(c)))
    return best if score.get(best, 0) > 0 else "general"


def _pointer(path):
    return "/" + "/".join(str(p) for p in path) if path else "/"


# --------------------------------------------------------------------------------------------
# checks

def check_documents(docs, http_v, raw_v=None):
    errs = []
    if len(docs) < MIN_DOCS:
        errs.append("%d documents, at least %d wanted" % (len(docs), MIN_DOCS))
    seen_ids, seen_docs = set(), set()
    for n, d in enumerate(docs, 1):
        name = d.get("metadata", {}).get("doc", "line %d" % n)
        for e in http_v.iter_errors(d):
            errs.append("%s: %s: %s" % (name, _pointer(e.absolute_path), e.message))
        tid = d.get("ticket_id")
        try:
            u = uuid.UUID(tid)
            if u.version != 4 or u.variant != uuid.RFC_4122 or str(u) != tid:
                errs.append("%s: ticket_id %s is not a lower-case UUIDv4" % (name, tid))
        except (TypeError, ValueError):
            errs.append("%s: ticket_id %r is not a UUID" % (name, tid))
        if tid in seen_ids:
            errs.append("%s: ticket_id %s used twice" % (name, tid))
        seen_ids.add(tid)
        if name in seen_docs:
            errs.append("%s: metadata.doc used twice" % name)
        seen_docs.add(name)
        if d.get("lang") not in ("es", "en"):
            errs.append("%s: lang hint %r, es or en wanted" % (name, d.get("lang")))
        if d.get("metadata", {}).get("kind") not in KINDS:
            errs.append("%s: metadata.kind %r not in %s" % (name, d.get("metadata", {}).get(
                "kind"), KINDS))
        w = words(plain_text(d))
        if not MIN_WORDS <= w <= MAX_WORDS:
            errs.append("%s: %d words, %d-%d wanted" % (name, w, MIN_WORDS, MAX_WORDS))
        if raw_v is not None:  # what HTTP ingest makes of it must fit tickets.raw
            full = dict(d, schema_version=1, tenant_id="demo",
                        received_at="2026-11-24T10:00:00Z")
            for e in raw_v.iter_errors(full):
                errs.append("%s: as tickets.raw: %s" % (name, e.message))
    return errs


def check_balance(docs):
    errs = []
    es = sum(d.get("lang") == "es" for d in docs)
    en = sum(d.get("lang") == "en" for d in docs)
    if min(es, en) < 0.4 * len(docs):
        errs.append("languages unbalanced: %d es, %d en" % (es, en))
    nhtml = sum(d.get("content_type") == "text/html" for d in docs)
    if nhtml < MIN_HTML:
        errs.append("%d text/html documents, at least %d wanted" % (nhtml, MIN_HTML))
    return errs


def check_pii(docs, expected):
    """expected.json's PII table against the documents, and against a mirror of ingest's rules:
    every document not listed must predict no placeholder, so the demo shows no surprises."""
    errs = []
    by_doc = {d["metadata"]["doc"]: d for d in docs}
    table = expected.get("pii", {})
    if len(table) < MIN_PII_TICKETS:
        errs.append("%d documents with PII, at least %d wanted" % (len(table), MIN_PII_TICKETS))
    for name, want in table.items():
        d = by_doc.get(name)
        if not d:
            errs.append("pii: %s is not a document" % name)
            continue
        bad = set(want["counts"]) - set(PLACEHOLDERS)
        if bad:
            errs.append("pii: %s: unknown placeholder types %s" % (name, sorted(bad)))
        text = d["title"] + "\n" + plain_text(d)
        for raw in want.get("raw", []):
            if raw not in text:
                errs.append("pii: %s: raw value %r not in the document" % (name, raw))
    for typ in ("CARD", "IBAN"):
        for name, want in table.items():
            if typ not in want["counts"]:
                continue
            check = luhn_ok if typ == "CARD" else iban_ok
            vals = [r for r in want.get("raw", []) if check(r)]
            if len(vals) < want["counts"][typ]:
                errs.append("pii: %s: no %s value passing its checksum in raw" % (name, typ))
    for name, d in by_doc.items():
        got = {}
        for part in (d["title"], plain_text(d)):
            c, _ = predict_pii(part)
            for k, v in c.items():
                got[k] = got.get(k, 0) + v
        want = table.get(name, {}).get("counts", {})
        if got != want:
            errs.append("pii: %s: the rules would find %s, expected.json says %s" % (
                name, got, want))
    return errs


def check_categories(docs, expected):
    """expected.json's categories exist, and ingest's rules (read from category.c, scored as
    tn_category_classify_doc() does) give them."""
    by_doc = {d["metadata"]["doc"]: d for d in docs}
    errs = []
    for name, cat in expected.get("categories", {}).items():
        if name not in by_doc:
            errs.append("categories: %s is not a document" % name)
            continue
        if cat not in CATEGORIES:
            errs.append("categories: %s: %r is not a category of the rules" % (name, cat))
        d = by_doc[name]
        got = predict_category(d["title"], plain_text(d), d["lang"])
        if got != cat:
            errs.append("categories: %s: the rules would give %s, expected.json says %s" % (
                name, got, cat))
    return errs


def check_invalid(cases, expected, http_v, raw_v):
    errs = []
    table = expected.get("invalid", {})
    names = [c.get("case") for c in cases]
    if len(cases) < 4:
        errs.append("%d invalid cases, at least 4 wanted" % len(cases))
    if len(set(names)) != len(names):
        errs.append("invalid: case names repeat")
    if set(names) != set(table):
        errs.append("invalid: cases %s vs expected.json %s" % (
            sorted(set(names) - set(table)), sorted(set(table) - set(names))))
    if not any(c.get("via") == "kafka" for c in cases):
        errs.append("invalid: no case for tickets.raw (the DLQ path)")
    for c in cases:
        name, want = c.get("case"), table.get(c.get("case"), {})
        if c.get("via") == "http":
            if "text" in c:
                try:
                    json.loads(c["text"])
                    errs.append("%s: text is valid JSON" % name)
                except ValueError:
                    pass
                if want.get("http_status") != 400:
                    errs.append("%s: a body that is not JSON is a 400" % name)
                continue
            found = list(http_v.iter_errors(c["record"]))
            if not found:
                errs.append("%s: valid against the HTTP ticket schema" % name)
            elif want.get("http_status") != 422:
                errs.append("%s: a schema violation is a 422" % name)
            else:
                ok = False
                for e in found:
                    ptrs = {_pointer(e.absolute_path)}
                    if e.validator == "additionalProperties":
                        extra = set(e.instance) - set(e.schema.get("properties", {}))
                        ptrs |= {_pointer(list(e.absolute_path) + [x]) for x in extra}
                    if e.validator == want.get("keyword") and want.get("path", "/") in ptrs:
                        ok = True
                if not ok:
                    errs.append("%s: no %s error at %s (jsonschema: %s)" % (
                        name, want.get("keyword"), want.get("path"),
                        ["%s %s" % (_pointer(e.absolute_path), e.validator) for e in found]))
        elif c.get("via") == "kafka":
            reason = want.get("dlq_reason")
            if reason not in DLQ_REASONS:
                errs.append("%s: dlq_reason %r not in %s" % (name, reason, DLQ_REASONS))
            if not c.get("key"):
                errs.append("%s: no key" % name)
            if "text" in c:
                try:
                    json.loads(c["text"])
                    errs.append("%s: text is valid JSON" % name)
                except ValueError:
                    if reason != "json":
                        errs.append("%s: not JSON lands as json" % name)
                continue
            rec = c["record"]
            if "pad_to_bytes" in c:
                if c["pad_to_bytes"] <= MAX_RECORD_BYTES or reason != "too_large":
                    errs.append("%s: pad_to_bytes must pass %d and land as too_large" % (
                        name, MAX_RECORD_BYTES))
                continue
            ver = rec.get("schema_version")
            if isinstance(ver, int) and ver != 1:
                if reason != "unknown_version":
                    errs.append("%s: schema_version %s lands as unknown_version" % (name, ver))
                continue
            if not list(raw_v.iter_errors(rec)):
                errs.append("%s: valid against tickets.raw" % name)
            elif reason != "schema":
                errs.append("%s: a tickets.raw schema violation lands as schema" % name)
        else:
            errs.append("%s: via %r, http or kafka wanted" % (name, c.get("via")))
    return errs


def check_questions(docs, questions):
    errs = []
    names = {d["metadata"]["doc"]: d for d in docs}
    qs = questions.get("questions", [])
    ids = [q.get("id") for q in qs]
    if len(set(ids)) != len(ids):
        errs.append("questions: ids repeat")
    for lang in ("es", "en"):
        n = sum(q.get("lang") == lang for q in qs)
        if n < 4:
            errs.append("questions: %d in %s, at least 4 wanted" % (n, lang))
    for q in qs:
        if not q.get("question") or not q.get("expect"):
            errs.append("%s: question and expect wanted" % q.get("id"))
        for name in q.get("expect", []):
            if name not in names:
                errs.append("%s: expected document %s does not exist" % (q.get("id"), name))
    topics = {names[q["expect"][0]]["metadata"]["topic"] for q in qs
              if q.get("expect") and q["expect"][0] in names}
    if len(topics) < 6:
        errs.append("questions: only %d topics (%s)" % (len(topics), sorted(topics)))
    booking = questions.get("booking", [])
    if {b.get("lang") for b in booking} != {"es", "en"} or not all(b.get("text")
                                                                  for b in booking):
        errs.append("booking: one es and one en request with text wanted")
    return errs


def check_built():
    """documents.ndjson is what build.py makes of docs/."""
    spec = importlib.util.spec_from_file_location("corpus_build", os.path.join(HERE, "build.py"))
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    with open(os.path.join(HERE, "documents.ndjson"), encoding="utf-8") as f:
        if f.read() != build.build():
            return ["documents.ndjson is out of date: run tools/demo/corpus/build.py"]
    return []


def run_all(c=None):
    c = c or load_all()
    return {
        "documents": check_documents(c["docs"], c["http"], c["raw"]),
        "balance": check_balance(c["docs"]),
        "pii": check_pii(c["docs"], c["expected"]),
        "categories": check_categories(c["docs"], c["expected"]),
        "invalid": check_invalid(c["invalid"], c["expected"], c["http"], c["raw"]),
        "questions": check_questions(c["docs"], c["questions"]),
        "built": check_built(),
    }


def main():
    c = load_all()
    res = run_all(c)
    docs = c["docs"]
    print("%d documents (%d es, %d en, %d text/html, %d tickets), %d-%d words; "
          "%d invalid cases; %d questions, %d booking requests" % (
              len(docs), sum(d["lang"] == "es" for d in docs),
              sum(d["lang"] == "en" for d in docs),
              sum(d["content_type"] == "text/html" for d in docs),
              sum(d["metadata"]["kind"] == "ticket" for d in docs),
              min(words(plain_text(d)) for d in docs), max(words(plain_text(d)) for d in docs),
              len(c["invalid"]), len(c["questions"]["questions"]),
              len(c["questions"]["booking"])))
    bad = 0
    for name, errs in res.items():
        print("%-10s %s" % (name, "ok" if not errs else "%d error(s)" % len(errs)))
        for e in errs:
            print("    " + e)
        bad += len(errs)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
