#!/usr/bin/env python3
"""Distinct chunks of citizen-service text for the embedder benchmarks, one per line.

    corpus.py OUT N [WORDS] [SEED]   ->  "corpus N chunks, W words, B bytes each on average"

Each chunk is WORDS (default 200) words of Spanish (60%) or English (40%) citizen-service text,
about 1,300 bytes: sentences from templates whose slots (cities, offices, documents, names,
dates, amounts, reference numbers, months) are filled at random, so the vocabulary varies from
chunk to chunk the way real tickets do (numbers and names are fresh words). No newlines inside a
chunk. Deterministic for a seed; the same file feeds the C hash benchmark, its Python anchor and
the preload of tickets.enriched.
"""
import random
import sys

CITIES = ["Santo Domingo", "Santiago", "La Vega", "San Pedro de Macorís", "Puerto Plata",
          "Higüey", "La Romana", "San Francisco de Macorís", "Baní", "Moca", "Bonao", "Azua",
          "Barahona", "Mao", "Nagua", "Samaná", "Cotuí", "Jarabacoa", "Constanza", "Monte Plata"]
OFFICES_ES = ["la oficina central", "la sucursal del Megacentro", "el punto de servicio de Ágora",
              "la delegación provincial", "la ventanilla única", "el centro de atención",
              "la oficina de pasaportes", "la junta central electoral", "la tesorería municipal"]
OFFICES_EN = ["the main office", "the downtown branch", "the service point at the mall",
              "the provincial office", "the one-stop desk", "the call centre",
              "the passport office", "the electoral board", "the city treasury"]
DOCS_ES = ["pasaporte", "cédula", "licencia de conducir", "acta de nacimiento",
           "certificado de matrimonio", "título de propiedad", "marbete", "certificado de "
           "antecedentes", "permiso de residencia", "registro mercantil", "constancia de pago",
           "carnet del seguro", "acta de defunción", "certificado de estudios"]
DOCS_EN = ["passport", "identity card", "driving licence", "birth certificate",
           "marriage certificate", "property deed", "vehicle sticker", "police record",
           "residence permit", "business registration", "payment receipt", "insurance card",
           "death certificate", "school transcript"]
MONTHS_ES = ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
             "septiembre", "octubre", "noviembre", "diciembre"]
MONTHS_EN = ["January", "February", "March", "April", "May", "June", "July", "August",
             "September", "October", "November", "December"]
FIRST = ["María", "José", "Ana", "Luis", "Carmen", "Rafael", "Yolanda", "Francisco", "Juana",
         "Pedro", "Altagracia", "Miguel", "Rosa", "Ramón", "Mercedes", "John", "Mary", "David",
         "Sarah", "Wendy", "Héctor", "Ángela", "Domingo", "Milagros", "Julio"]
LAST = ["Pérez", "Rodríguez", "Gómez", "Martínez", "Díaz", "Fernández", "Santana", "Reyes",
        "Núñez", "Peña", "Castillo", "Jiménez", "Vásquez", "Smith", "Jones", "Tavárez",
        "Batista", "Almonte", "Guzmán", "Ortiz"]
RELS_ES = ["mi madre", "mi padre", "mi hija", "mi hijo", "mi esposa", "mi esposo", "mi abuela",
           "mi hermano", "mi tía", "mi vecino"]
RELS_EN = ["my mother", "my father", "my daughter", "my son", "my wife", "my husband",
           "my grandmother", "my brother", "my aunt", "my neighbour"]

ES = [
    "Buenos días, quiero renovar mi {doc} que vence en {month} y no sé qué documentos necesito.",
    "Solicité una cita en {office} de {city} el {day} de {month} y todavía no me han llamado.",
    "Necesito una copia del {doc} de {rel} para un trámite en {city}.",
    "El sistema de pagos no acepta mi tarjeta cuando intento pagar {amount} pesos del {doc}.",
    "Por favor, ¿me pueden indicar el horario de atención de {office} de {city}?",
    "Quiero presentar una queja por el mal servicio que recibí en {office} el {day} de {month}.",
    "Mi {doc} está vencido desde {month} de {year} y necesito saber si puedo usarlo todavía.",
    "La pensión de {rel} no ha sido depositada este mes y depende de esos {amount} pesos.",
    "Llevo {hours} horas esperando en la fila de {office} y nadie nos da información del turno.",
    "¿Dónde puedo consultar el estado de la solicitud {ref} que hice en {city}?",
    "Perdí mi {doc} durante la mudanza de {city} a {city2} y quiero reportarlo cuanto antes.",
    "Necesito el {doc} apostillado para un trámite en el extranjero antes del {day} de {month}.",
    "Es urgente: {rel} viaja el {day} de {month} y el {doc} todavía aparece en proceso.",
    "Gracias por la ayuda de ayer, pero el formulario en línea sigue mostrando el error {code}.",
    "La declaración jurada de {year} no se guarda en el portal, lo intenté {hours} veces.",
    "Me llamo {name} y vivo en {city}; el expediente {ref} quedó incompleto en {office}.",
    "El funcionario de {office} me pidió {doc2} original, pero en la página dice que basta una "
    "copia.",
    "Pagué {amount} pesos el {day} de {month} y el recibo {ref} no aparece en el sistema.",
    "¿Es posible cambiar la dirección del {doc} sin volver a {city}? Ahora vivo en {city2}.",
    "El correo de confirmación nunca llegó y la cita del {day} de {month} desapareció.",
    "Mi vecino {name} recibió su {doc} en {days} días; el mío lleva {weeks} semanas en trámite.",
    "Quisiera saber cuánto cuesta el {doc} para menores y si {rel} debe estar presente.",
    "En {office} de {city} no funcionan las máquinas de turnos desde el {day} de {month}.",
    "Adjunto la foto del {doc} y del {doc2}, como me indicaron por teléfono el {day} de {month}.",
    "No entiendo por qué me cobraron {amount} pesos de recargo si pagué antes de {month}.",
    "Solicito formalmente la actualización de la información correspondiente a mi expediente "
    "administrativo {ref}, ya que la notificación electrónica indica documentación incompleta.",
    "Agradecería una explicación detallada de los requisitos establecidos para la legalización "
    "del {doc}, porque las instrucciones publicadas en la plataforma son contradictorias.",
    "Independientemente de la disponibilidad presupuestaria, la institución debería garantizar "
    "la continuidad del servicio en {office} de {city}.",
    "Presenté la documentación complementaria solicitada mediante comunicación {ref}, pero la "
    "verificación institucional permanece pendiente desde {month}.",
    "Lamentablemente, la información suministrada telefónicamente contradice las disposiciones "
    "reglamentarias vigentes sobre la expedición del {doc}.",
]
EN = [
    "Hello, I need to renew my {doc} before my trip in {month} and would like to book a slot.",
    "I applied for a {doc} at {office} in {city} on {month} {day} and have no answer yet.",
    "Could you please tell me which documents {rel} needs for a {doc}?",
    "The online payment page rejects my card when I try to pay {amount} pesos for the {doc}.",
    "I want to file a complaint about the service I received at {office} on {month} {day}.",
    "My {doc} was lost when we moved from {city} to {city2} and I need a replacement.",
    "The pension of {rel} was not paid this month and the family depends on those {amount} pesos.",
    "Where can I check the status of application {ref} that I filed in {city}?",
    "This is urgent: {rel} needs the {doc} for a medical appointment abroad on {month} {day}.",
    "The form on the portal does not save my answers after page {hours}, error {code}.",
    "Thank you for your help yesterday, but the booking system still shows error {code}.",
    "Is {office} in {city} open on Saturdays, and can I schedule an appointment online?",
    "My name is {name}, I live in {city} and case {ref} was left incomplete at {office}.",
    "I paid {amount} pesos on {month} {day} and receipt {ref} does not show in the system.",
    "The clerk at {office} asked for the original {doc2}, but the website says a copy is fine.",
    "I waited {hours} hours at {office} and nobody explained how the queue works.",
    "Can I change the address on my {doc} without travelling back to {city}? I live in {city2}.",
    "My neighbour {name} got the {doc} in {days} days; mine has been pending for {weeks} weeks.",
    "I attach photos of the {doc} and the {doc2}, as I was told on the phone on {month} {day}.",
    "Why was I charged a {amount} pesos late fee when I paid before {month}?",
    "I formally request the correction of the information registered in administrative file "
    "{ref}, since the electronic notification indicates incomplete documentation.",
    "I would appreciate a detailed explanation of the requirements established for the "
    "legalization of the {doc}, because the published instructions are contradictory.",
    "Notwithstanding the budgetary constraints, the institution should guarantee continuity "
    "of service at {office} in {city}.",
    "I submitted the supplementary documentation requested in communication {ref}, but the "
    "institutional verification has remained pending since {month}.",
    "Unfortunately, the information provided by telephone contradicts the current regulatory "
    "provisions regarding the issuance of the {doc}.",
]


def fill(rng, tmpl, es):
    def pick(x):
        return rng.choice(x)
    return tmpl.format(
        doc=pick(DOCS_ES if es else DOCS_EN), doc2=pick(DOCS_ES if es else DOCS_EN),
        office=pick(OFFICES_ES if es else OFFICES_EN), city=pick(CITIES), city2=pick(CITIES),
        month=pick(MONTHS_ES if es else MONTHS_EN), day=rng.randrange(1, 29),
        year=rng.randrange(2015, 2027), rel=pick(RELS_ES if es else RELS_EN),
        name="%s %s" % (pick(FIRST), pick(LAST)), amount="{:,}".format(rng.randrange(150, 25000)),
        hours=rng.randrange(2, 7), days=rng.randrange(3, 30), weeks=rng.randrange(3, 12),
        code="%s-%d" % (rng.choice(["E", "ERR", "PX", "SIG"]), rng.randrange(100, 9999)),
        ref="%s-%d-%06d" % (rng.choice(["SOL", "EXP", "REC", "CAS", "TRM"]),
                            rng.randrange(2019, 2027), rng.randrange(10**6)))


def chunk(rng, words):
    es = rng.random() < 0.6
    pool = ES if es else EN
    out = []
    while len(out) < words:
        out.extend(fill(rng, rng.choice(pool), es).split())
    return " ".join(out[:words])


def main():
    path, n = sys.argv[1], int(sys.argv[2])
    words = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    rng = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 7)
    total, seen = 0, set()
    with open(path, "w", encoding="utf-8") as f:
        while len(seen) < n:
            c = chunk(rng, words)
            if c in seen:
                continue
            seen.add(c)
            f.write(c + "\n")
            total += len(c.encode())
    print("corpus %d chunks, %d words, %.0f bytes each on average" % (n, words, total / n))


if __name__ == "__main__":
    main()
