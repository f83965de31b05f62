#!/usr/bin/env python3
"""The peer of taina-ingest's enrichment pipeline, written the way a Python team would write it.

    ingest_enrich.py BOOTSTRAP N [OUT_TOPIC] [GROUP] [SCHEMAS_DIR]
      -> "python_records N seconds S records_per_s R maxrss_kb K cpu_us_per_record C"
      (C: user + sys CPU time of the process, all threads, over the timed window)

confluent-kafka (Debian python3-confluent-kafka) with the Kafka settings of taina-ingest:
consume tickets.raw (read_committed, cooperative-sticky, manual commits), per record: json
parse, jsonschema validation against schemas/tickets.raw.schema.json, normalize (HTML strip
for text/html, NFC, whitespace collapse), detect es/en by function words, categorize by
keywords, redact PII with `re` (email, IBAN with mod-97, card with Luhn, Dominican cedula,
phone), sha256 content hash, 200-word chunks with 40 words of overlap, json dumps; produce to
OUT_TOPIC inside one Kafka transaction per batch (500 records or 100 ms) with
send_offsets_to_transaction. Invalid records go to tickets.dlq in the same transaction.
Stops once N records are committed. The rate is the steady state: the records committed after
the first transaction, over the time from that first commit to the commit covering the N-th.
"""
import hashlib
import html.parser
import json
import os
import re
import resource
import sys
import time
import unicodedata
from datetime import datetime, timezone

import jsonschema
from confluent_kafka import Consumer, KafkaException, Producer

BATCH_MAX = 500
LINGER_S = 0.100
CHUNK_WORDS, CHUNK_OVERLAP = 200, 40

# --- normalization ------------------------------------------------------------------------------

_WS = re.compile(r"\s+")
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class _TextOf(html.parser.HTMLParser):
    BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts, self.skip = [], 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self.skip += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self.skip:
            self.skip -= 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)



def cpu_s():
    """User + system CPU seconds of this process, all threads (librdkafka's included)."""
    t = os.times()
    return t.user + t.system

def html_to_text(s):
    p = _TextOf()
    p.feed(s)
    p.close()
    return "".join(p.parts)


def normalize(s, is_html=False):
    if is_html:
        s = html_to_text(s)
    s = unicodedata.normalize("NFC", s)
    s = _CONTROLS.sub("", s)
    return _WS.sub(" ", s).strip()


# --- language -----------------------------------------------------------------------------------

ES_WORDS = frozenset(
    "al algo ante cita como con cuando de del desde donde el ella ellos en entre es esta este "
    "esto hay la las le lo los mi mis muy necesito para pero por porque puedo que quiero se ser "
    "si sin sobre son su sus tengo una uno unos y ya yo".split())
EN_WORDS = frozenset(
    "a about am and are as at be but by can could do does for from have how i if in is it my "
    "need not of on or please should that the this to want was what when where which will with "
    "would you your".split())
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
_ES_MARKS = re.compile(r"[ñÑ¿¡áéíóú]")


def detect_lang(text, hint=None):
    es = en = 0.0
    for w in _WORD.findall(fold(text)):  # every word, folded as the keywords (as taina's detector)
        if w in ES_WORDS:
            es += 1
        if w in EN_WORDS:
            en += 1
    es += 0.5 * len(_ES_MARKS.findall(text))
    total = es + en
    if total < 2:
        return "und", 0.0
    if hint == "es":
        es += 0.5
    elif hint == "en":
        en += 0.5
    best = max(es, en)
    share = best / (es + en)
    confidence = share * min(1.0, 1.0 if total >= 8 else total / 8.0 + 0.25)
    if share < 0.6:
        if hint in ("es", "en"):
            return hint, confidence
        return "und", confidence
    return ("es" if es > en else "en"), confidence


# --- categories ---------------------------------------------------------------------------------

CATEGORIES = [  # (category, priority, lang or None, keywords)
    ("passport", "normal", "es", ["pasaporte", "pasaportes"]),
    ("passport", "normal", "en", ["passport", "passports"]),
    ("national_id", "normal", "es", ["cedula", "documento de identidad", "carnet de identidad"]),
    ("national_id", "normal", "en", ["id card", "identity card", "national id"]),
    ("driving_licence", "normal", "es",
     ["licencia de conducir", "licencia de conduccion", "permiso de conducir"]),
    ("driving_licence", "normal", "en",
     ["driving licence", "driver's license", "drivers license", "driving license"]),
    ("civil_registry", "normal", "es",
     ["acta de nacimiento", "certificado de nacimiento", "acta de matrimonio",
      "certificado de matrimonio", "registro civil"]),
    ("civil_registry", "normal", "en",
     ["birth certificate", "marriage certificate", "civil registry"]),
    ("tax", "normal", "es",
     ["impuesto", "impuestos", "rnc", "declaracion jurada", "numero de identificacion fiscal"]),
    ("tax", "normal", "en", ["tax", "taxes", "tax id", "tax return"]),
    ("vehicle", "normal", "es", ["matricula", "placa", "vehiculo", "marbete"]),
    ("vehicle", "normal", "en",
     ["vehicle registration", "licence plate", "license plate", "vehicle"]),
    ("social_benefits", "normal", "es",
     ["subsidio", "pension", "ayuda social", "beneficio", "beneficios"]),
    ("social_benefits", "normal", "en", ["benefit", "benefits", "pension", "allowance", "welfare"]),
    ("appointments", "normal", "es", ["cita", "turno", "agendar", "reservar"]),
    ("appointments", "normal", "en", ["appointment", "booking", "book", "schedule"]),
    ("complaint", "high", "es", ["queja", "reclamo", "denuncia", "mal servicio"]),
    ("complaint", "high", "en", ["complaint", "complain", "poor service"]),
    ("urgent", "urgent", None, ["urgente", "urgent", "emergencia", "emergency"]),
]
# One alternation per rule, on accent-folded lower-case text; a multi-word phrase weighs more.
_CAT_RES = [(c, p, lang, re.compile(r"\b(?:%s)\b" % "|".join(
    re.escape(k) for k in sorted(kws, key=len, reverse=True)))) for c, p, lang, kws in CATEGORIES]
_PRIO = {"normal": 0, "high": 1, "urgent": 2}


def fold(s):
    s = unicodedata.normalize("NFD", s.lower())
    return "".join(ch for ch in s if not unicodedata.combining(ch))


def categorize(text, lang):
    folded = fold(text)
    scores, priority = {}, "normal"
    for cat, prio, rlang, rx in _CAT_RES:
        if rlang is not None and lang in ("es", "en") and rlang != lang:
            continue
        hits = rx.findall(folded)
        if not hits:
            continue
        if _PRIO[prio] > _PRIO[priority]:
            priority = prio
        if cat != "urgent":
            scores[cat] = scores.get(cat, 0) + sum(1 + h.count(" ") for h in hits)
    category = max(scores, key=scores.get) if scores else "other"
    return category, priority


# --- PII ----------------------------------------------------------------------------------------


def luhn_ok(s):
    digits = [int(c) for c in s if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(s):
    s = s.replace(" ", "")
    r = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in r)) % 97 == 1


def phone_ok(s):
    n = sum(c.isdigit() for c in s)
    return 9 <= n <= 15


PII_RULES = [  # (type, regex, check); applied in order, each to the output of the ones above
    ("EMAIL", re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}"
                         r"\.[A-Za-z]{2,24}\b"), None),
    ("IBAN", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"), iban_ok),
    ("CARD", re.compile(r"\b\d(?:[ -]?\d){12,18}\b"), luhn_ok),
    ("CEDULA", re.compile(r"\b\d{3}-\d{7}-\d\b"), None),
    ("PHONE", re.compile(r"(?<![\w+])(?<!\d[ .-])\+?\(?\d(?:[ .()-]{0,2}\d){7,14}\b"
                         r"(?![ .-]?\d)"), phone_ok),
]


def redact(text, counts):
    for name, rx, check in PII_RULES:
        placeholder = "[%s]" % name

        def repl(m, name=name, check=check, placeholder=placeholder):
            if check is not None and not check(m.group(0)):
                return m.group(0)
            counts[name] = counts.get(name, 0) + 1
            return placeholder
        text = rx.sub(repl, text)
    return text


# --- chunks -------------------------------------------------------------------------------------

_TOKEN = re.compile(r"\S+")


def chunks(text):
    spans = [m.span() for m in _TOKEN.finditer(text)]
    out, step, i = [], CHUNK_WORDS - CHUNK_OVERLAP, 0
    while i < len(spans):
        part = spans[i:i + CHUNK_WORDS]
        start, end = part[0][0], part[-1][1]
        # as taina writes them by default: offsets into the text, no copy of it
        out.append({"index": len(out), "start": start, "end": end, "words": len(part)})
        if i + CHUNK_WORDS >= len(spans):
            break
        i += step
    return out


# --- one record ---------------------------------------------------------------------------------


class Reject(Exception):
    def __init__(self, reason, detail):
        super().__init__(detail)
        self.reason = reason


def now():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def enrich(validator, value):
    try:
        raw = json.loads(value)
    except ValueError as e:
        raise Reject("json", str(e))
    if isinstance(raw, dict) and raw.get("schema_version") not in (None, 1):
        raise Reject("unknown_version", "schema_version %r is not known" % raw["schema_version"])
    err = next(validator.iter_errors(raw), None)
    if err is not None:
        raise Reject("schema", "%s: %s" % ("/".join(map(str, err.absolute_path)), err.message))
    out = {"schema_version": 1}
    for k in ("ticket_id", "tenant_id", "created_at", "received_at"):
        if k in raw:
            out[k] = raw[k]
    if raw.get("deleted") is True:
        out["deleted"] = True
        out["enriched_at"] = now()
        return out
    for k in ("source", "metadata"):
        if k in raw:
            out[k] = raw[k]
    title = normalize(raw["title"])
    body = normalize(raw["body"], raw["content_type"] == "text/html")
    content_hash = hashlib.sha256(body.encode()).hexdigest()
    whole = title + ". " + body
    lang, conf = detect_lang(whole, raw.get("lang"))
    category, priority = categorize(whole, lang)
    counts = {}
    title = redact(title, counts) or "(untitled)"
    body = redact(body, counts)
    text = body or title
    out.update({"title": title, "text": text, "lang": lang, "lang_confidence": round(conf, 4),
                "category": category, "priority": priority, "pii": counts, "invalid_utf8": 0,
                "content_hash": content_hash, "enriched_at": now(), "chunks": chunks(text)})
    return out


# --- the loop -----------------------------------------------------------------------------------


def main():
    bootstrap, want = sys.argv[1], int(sys.argv[2])
    out_topic = sys.argv[3] if len(sys.argv) > 3 else "tickets.enriched"
    group = sys.argv[4] if len(sys.argv) > 4 else "bench-python-enrich"
    schemas = sys.argv[5] if len(sys.argv) > 5 else "schemas"
    with open(os.path.join(schemas, "tickets.raw.schema.json")) as f:
        schema = json.load(f)
    validator = jsonschema.Draft7Validator(
        schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)

    # taina-ingest's settings (common/include/taina/kafka.h), statistics off: unused here.
    producer = Producer({"bootstrap.servers": bootstrap, "client.id": "python-enrich",
                         "transactional.id": "python-enrich-%d" % os.getpid(),
                         "enable.idempotence": True, "acks": "all", "compression.type": "lz4",
                         "linger.ms": 5, "message.timeout.ms": 30000})
    consumer = Consumer({"bootstrap.servers": bootstrap, "client.id": "python-enrich",
                         "group.id": group, "enable.auto.commit": False,
                         "enable.auto.offset.store": False,
                         "partition.assignment.strategy": "cooperative-sticky",
                         "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                         "fetch.wait.max.ms": 10})
    producer.init_transactions(30)
    consumer.subscribe(["tickets.raw"])

    done, done0, t0, t1 = 0, 0, None, None
    give_up = time.monotonic() + 120
    while done < want:
        first = consumer.poll(0.2)
        if first is None:
            if time.monotonic() > give_up:
                sys.exit("ingest_enrich: no records for too long (%d of %d)" % (done, want))
            continue
        if first.error():
            continue
        producer.begin_transaction()
        deadline = time.monotonic() + LINGER_S
        msgs = [first]
        while len(msgs) < BATCH_MAX:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            msgs.extend(consumer.consume(BATCH_MAX - len(msgs), left))
        n = 0
        for m in msgs:
            if m.error():
                continue
            n += 1
            try:
                rec = enrich(validator, m.value())
                topic, key = out_topic, rec["ticket_id"].encode()
                value = json.dumps(rec, ensure_ascii=False, separators=(",", ":")).encode()
                headers = [("taina-schema", b"tickets.enriched/1")]
            except Reject as r:
                topic, key, value = "tickets.dlq", m.key(), m.value()
                headers = (m.headers() or []) + [("taina-error", r.reason.encode()),
                                                 ("taina-error-detail", str(r).encode())]
            while True:
                try:
                    producer.produce(topic, value, key, headers=headers)
                    break
                except BufferError:
                    producer.poll(0.005)
            producer.poll(0)
        try:
            producer.send_offsets_to_transaction(
                consumer.position(consumer.assignment()), consumer.consumer_group_metadata(), 30)
            producer.commit_transaction(30)
        except KafkaException as e:
            sys.exit("ingest_enrich: transaction failed: %s" % e)
        done += n
        t1 = time.monotonic()
        if t0 is None:
            t0, done0, cpu0 = t1, done, cpu_s()
    cpu1 = cpu_s()
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if done == done0:
        sys.exit("ingest_enrich: N=%d fits in one transaction: nothing to time" % want)
    print("python_records %d seconds %.3f records_per_s %.0f maxrss_kb %d cpu_us_per_record %.0f"
          % (done - done0, t1 - t0, (done - done0) / (t1 - t0), kb,
             (cpu1 - cpu0) * 1e6 / (done - done0)))
    consumer.close()


if __name__ == "__main__":
    main()
