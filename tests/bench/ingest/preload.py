#!/usr/bin/env python3
"""Preload tickets.raw with N valid tickets of about SIZE bytes each (the JSON value).

    preload.py BOOTSTRAP N SIZE [SEED]   ->  "preloaded N records, B bytes, S s"

Realistic Spanish and English citizen-service text with emails, phones, cedulas, card numbers
and IBANs, so every PII path of the enrichment runs. Fails (exit 1) unless tickets.raw then
holds exactly N records from offset 0 (devstack keeps about 5 MB per partition; nothing may
have been dropped before the system under test reads it).
"""
import json
import random
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

TOPIC = "tickets.raw"

ES = [
    "Buenos días, quiero renovar mi pasaporte que vence en enero y no sé qué documentos necesito.",
    "Solicité una cita para la licencia de conducir hace dos semanas y todavía no me han llamado.",
    "Necesito una copia del acta de nacimiento de mi hija para inscribirla en la escuela.",
    "El sistema de pagos no acepta mi tarjeta cuando intento pagar el impuesto del marbete.",
    "Por favor, ¿me pueden indicar el horario de atención de la oficina de Santiago?",
    "Quiero presentar una queja por el mal servicio recibido en la sucursal del centro.",
    "Mi cédula está vencida y necesito saber si puedo votar con el documento anterior.",
    "La pensión de mi madre no ha sido depositada este mes y ella depende de ese dinero.",
    "Llevo tres horas esperando en la fila y nadie nos da información sobre el turno.",
    "¿Dónde puedo consultar el estado de mi solicitud de subsidio para la vivienda?",
    "Perdí la placa de mi vehículo durante la tormenta y quiero reportarlo cuanto antes.",
    "Necesito el certificado de matrimonio apostillado para un trámite en el extranjero.",
    "Es urgente: mi pasaporte fue robado y viajo la próxima semana por motivos de salud.",
    "Gracias por la ayuda de ayer, pero el formulario en línea sigue mostrando un error.",
    "La declaración jurada del impuesto sobre la renta no se guarda en el portal.",
]
EN = [
    "Hello, I need to renew my passport before my trip and I would like to book an appointment.",
    "I applied for a driving licence last month and I have not received any answer yet.",
    "Could you please tell me which documents are required for a birth certificate?",
    "The online payment page rejects my card when I try to pay the vehicle registration.",
    "I want to file a complaint about the poor service I received at the downtown office.",
    "My national id card was lost and I need a replacement as soon as possible.",
    "The pension for my father was not paid this month and he depends on that money.",
    "Where can I check the status of my application for the housing benefit?",
    "This is urgent: my son needs his identity card for a medical emergency abroad.",
    "The tax return form on the portal does not save my answers after the second page.",
    "Thank you for your help yesterday, but the booking system still shows an error.",
    "Is the office open on Saturdays, and can I schedule an appointment online?",
]
TITLES_ES = ["Renovación de pasaporte", "Cita para licencia", "Acta de nacimiento",
             "Pago de impuestos", "Queja por mal servicio", "Pensión no depositada",
             "Solicitud de subsidio", "Placa perdida"]
TITLES_EN = ["Passport renewal", "Driving licence", "Birth certificate", "Vehicle registration",
             "Complaint", "Lost id card", "Pension not paid", "Housing benefit"]
NAMES = ["maria.perez", "jose.rodriguez", "ana.gomez", "luis.martinez", "carmen.diaz",
         "john.smith", "mary.jones"]
DOMAINS = ["gmail.com", "hotmail.com", "yahoo.es", "correo.gob.do", "outlook.com"]


def luhn_card(rng):
    digits = [4] + [rng.randrange(10) for _ in range(14)]
    total = 0
    for i, d in enumerate(reversed(digits)):
        d = d * 2 if i % 2 == 0 else d
        total += d - 9 if d > 9 else d
    digits.append((10 - total % 10) % 10)
    s = "".join(map(str, digits))
    return " ".join(s[i:i + 4] for i in range(0, 16, 4))


def pii_sentence(rng, es):
    kind = rng.randrange(5)
    if kind == 0:
        v = "%s%d@%s" % (rng.choice(NAMES), rng.randrange(100), rng.choice(DOMAINS))
        return ("Pueden escribirme a %s para más detalles." if es else
                "You can write to me at %s for details.") % v
    if kind == 1:
        v = "809-%03d-%04d" % (rng.randrange(200, 999), rng.randrange(10000))
        return ("Mi teléfono es %s, llámenme en la tarde." if es else
                "My phone number is %s, call me in the afternoon.") % v
    if kind == 2:
        v = "%03d-%07d-%d" % (rng.randrange(1, 999), rng.randrange(10**7), rng.randrange(10))
        return ("Mi cédula es %s." if es else "My cedula is %s.") % v
    if kind == 3:
        return ("Pagué con la tarjeta %s y me cobraron dos veces." if es else
                "I paid with card %s and was charged twice.") % luhn_card(rng)
    return ("La transferencia salió de la cuenta DO28 BAGR 0000 0001 2124 5361 1324." if es else
            "The transfer came from account GB82 WEST 1234 5698 7654 32.")


def ticket(rng, size):
    es = rng.random() < 0.6
    pool = ES if es else EN
    t = {"schema_version": 1, "ticket_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
         "tenant_id": rng.choice(["ayuntamiento-sd", "dgii", "pasaportes", "intrant"]),
         "source": rng.choice(["web", "email", "chat", "phone"]),
         "title": rng.choice(TITLES_ES if es else TITLES_EN), "body": "",
         "content_type": "text/plain",
         "created_at": "2026-11-%02dT%02d:%02d:%02dZ" % (rng.randrange(1, 29), rng.randrange(24),
                                                         rng.randrange(60), rng.randrange(60))}
    base = len(json.dumps(t, ensure_ascii=False).encode())
    parts, n = [], base
    while n < size:
        s = pii_sentence(rng, es) if rng.random() < 0.2 else rng.choice(pool)
        if rng.random() < 0.15:
            s += "\n\n"
        parts.append(s)
        n += len(json.dumps(s, ensure_ascii=False).encode()) - 1
    t["body"] = " ".join(parts).strip()
    return t["ticket_id"].encode(), json.dumps(t, ensure_ascii=False).encode()


def main():
    bootstrap, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 42)
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                  "compression.type": "lz4", "linger.ms": 20, "batch.size": 1000000})
    t0 = time.perf_counter()
    total = 0
    for _ in range(n):
        key, v = ticket(rng, size)
        total += len(v)
        while True:
            try:
                p.produce(TOPIC, v, key)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    if p.flush(60) != 0:
        sys.exit("preload: records still unacknowledged after 60 s")
    secs = time.perf_counter() - t0
    # Every record must still be there, from offset 0 on.
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-preload-check"})
    parts = c.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions
    have = 0
    for part in parts:
        lo, hi = c.get_watermark_offsets(TopicPartition(TOPIC, part), timeout=10)
        if lo != 0:
            sys.exit("preload: %s[%d] starts at offset %d: devstack dropped records "
                     "(lower BENCH_N_*)" % (TOPIC, part, lo))
        have += hi
    c.close()
    if have != n:
        sys.exit("preload: %s holds %d records, not %d" % (TOPIC, have, n))
    print("preloaded %d records, %d bytes (%.0f bytes each), %.1f s" % (n, total, total / n, secs))


if __name__ == "__main__":
    main()
