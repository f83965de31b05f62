#!/usr/bin/env python3
"""Build documents.ndjson from the readable sources in docs/ (one file per document).

A source file is a header of `key: value` lines, a line `---`, then the body (plain text or HTML,
as `content_type` says; paragraphs separated by blank lines):

    title: Renovación de pasaporte
    lang: es
    kind: faq | procedure | ticket
    source: web
    content_type: text/html        (optional; text/plain by default)
    created_at: 2026-09-02T09:00:00Z
    ---
    ¿Qué necesito para renovar el pasaporte? ...

The document id (`metadata.doc`) is the file name without `.txt`. Its `ticket_id` is a fixed
UUIDv4 derived from that id, so tests and the demo can check citations without a lookup table,
and posting the corpus twice overwrites instead of duplicating.

    python3 tools/demo/corpus/build.py           # rewrite documents.ndjson
    python3 tools/demo/corpus/build.py --check   # exit 1 if documents.ndjson is out of date
"""
import hashlib
import json
import os
import sys
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
DOCS = os.path.join(HERE, "docs")
OUT = os.path.join(HERE, "documents.ndjson")
HEADER_KEYS = {"title", "lang", "kind", "source", "content_type", "created_at"}


def ticket_id(doc):
    """A UUIDv4-shaped id from the document id: SHA-256, version and variant bits set."""
    b = bytearray(hashlib.sha256(("taina-demo-corpus/" + doc).encode()).digest()[:16])
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(b)))


def parse(path):
    doc = os.path.basename(path)[:-4]
    with open(path, encoding="utf-8") as f:
        text = f.read()
    head, sep, body = text.partition("\n---\n")
    if not sep:
        raise ValueError("%s: no '---' line after the header" % path)
    h = {}
    for n, line in enumerate(head.splitlines(), 1):
        k, colon, v = line.partition(":")
        if not colon or k.strip() not in HEADER_KEYS:
            raise ValueError("%s:%d: expected one of %s" % (path, n, sorted(HEADER_KEYS)))
        h[k.strip()] = v.strip()
    missing = HEADER_KEYS - {"content_type"} - set(h)
    if missing:
        raise ValueError("%s: missing %s" % (path, sorted(missing)))
    return {
        "ticket_id": ticket_id(doc),
        "source": h["source"],
        "title": h["title"],
        "body": body.strip("\n"),
        "content_type": h.get("content_type", "text/plain"),
        "lang": h["lang"],
        "created_at": h["created_at"],
        "metadata": {"doc": doc, "kind": h["kind"], "topic": doc.split("-")[0]},
    }


def build():
    names = sorted(n for n in os.listdir(DOCS) if n.endswith(".txt"))
    return "".join(json.dumps(parse(os.path.join(DOCS, n)), ensure_ascii=False) + "\n"
                   for n in names)


def main(argv):
    text = build()
    if "--check" in argv:
        with open(OUT, encoding="utf-8") as f:
            if f.read() != text:
                print("documents.ndjson is out of date: run tools/demo/corpus/build.py")
                return 1
        return 0
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)
    print("wrote %s (%d documents)" % (OUT, text.count("\n")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
