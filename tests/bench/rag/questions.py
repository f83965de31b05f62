#!/usr/bin/env python3
"""Questions for bench-rag: citizen-service questions in Spanish and English, one per line (the
text bench-rag embeds for the peer) and one wrk request body per line.

    questions.py QUESTIONS_OUT BODIES_OUT [N]   (N distinct questions, default 64)
"""
import json
import random
import sys

ES = ["¿Qué necesito para renovar el {doc}?", "¿Cuánto cuesta el {doc} en {city}?",
      "¿Cuál es el horario de la oficina de {city}?", "Perdí mi {doc}, ¿cómo lo reporto?",
      "¿Dónde consulto el estado de mi solicitud de {doc}?",
      "¿Puedo pagar el {doc} con tarjeta en {city}?", "Mi {doc} venció, ¿todavía lo puedo usar?",
      "¿Cuánto tarda la entrega del {doc} en {city}?"]
EN = ["What do I need to renew my {doc_en}?", "How much does the {doc_en} cost in {city}?",
      "When is the office in {city} open?", "I lost my {doc_en}, how do I report it?",
      "Where can I check the status of my {doc_en} application?",
      "How long does the {doc_en} take in {city}?"]
DOCS = ["pasaporte", "cédula", "licencia de conducir", "acta de nacimiento", "marbete",
        "certificado de matrimonio", "permiso de residencia", "título de propiedad"]
DOCS_EN = ["passport", "identity card", "driving licence", "birth certificate",
           "vehicle sticker", "residence permit", "property deed"]
CITIES = ["Santo Domingo", "Santiago", "La Vega", "Puerto Plata", "Higüey", "La Romana", "Baní",
          "Moca", "Bonao", "Azua", "Samaná", "Jarabacoa"]


def main():
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    rng = random.Random(6)
    qs = []
    while len(qs) < n:
        t = rng.choice(ES if rng.random() < 0.6 else EN)
        q = t.format(doc=rng.choice(DOCS), doc_en=rng.choice(DOCS_EN), city=rng.choice(CITIES))
        if q not in qs:
            qs.append(q)
    with open(sys.argv[1], "w", encoding="utf-8") as f:
        f.write("".join(q + "\n" for q in qs))
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        f.write("".join(json.dumps({"question": q, "top_k": 5}, ensure_ascii=False) + "\n"
                        for q in qs))


if __name__ == "__main__":
    main()
