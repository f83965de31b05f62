/* Enrichment micro-benchmark: the exact ingest_enrich() of services/ingest on realistic 1 KB and
 * 8 KB tickets (the sentences of tests/bench/ingest/preload.py), one thread, no Kafka; prints
 * microseconds per record, the JSON dump included (the pipeline produces the dumped value): wall
 * time, and the thread's CPU time (steadier on a shared machine, where wall time includes waits).
 *   bench-enrich [SECONDS [KB]]   (from the repo top; KB: only that size, 1 or 8)
 * One size at a time suits a profiler, e.g. instructions per record, steady on a shared machine:
 *   valgrind --tool=callgrind --toggle-collect=ingest_enrich build/bench/bench-enrich 1 8 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../../services/ingest/enrich.c"

static const char *const es_s[] = {
    "Buenos días, quiero renovar mi pasaporte que vence en enero y no sé qué documentos "
    "necesito.",
    "Solicité una cita para la licencia de conducir hace dos semanas y todavía no me han "
    "llamado.",
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
    "Mi teléfono es 809-555-1234, llámenme en la tarde.",
    "Pueden escribirme a maria.perez12@gmail.com para más detalles.",
    "Mi cédula es 001-1234567-8.",
    "Pagué con la tarjeta 4111 1111 1111 1111 y me cobraron dos veces.",
};
static const char *const en_s[] = {
    "Hello, I need to renew my passport before my trip and I would like to book an "
    "appointment.",
    "I applied for a driving licence last month and I have not received any answer yet.",
    "Could you please tell me which documents are required for a birth certificate?",
    "The online payment page rejects my card when I try to pay the vehicle registration.",
    "I want to file a complaint about the poor service I received at the downtown office.",
    "My national id card was lost and I need a replacement as soon as possible.",
    "The pension for my father was not paid this month and he depends on that money.",
    "This is urgent: my son needs his identity card for a medical emergency abroad.",
    "You can write to me at john.smith7@outlook.com for details.",
    "The transfer came from account GB82 WEST 1234 5698 7654 32.",
};

/* A tickets.raw value of about @p size bytes. */
static char *ticket(unsigned seed, size_t size, int es)
{
    tn_buf_t b;
    tn_buf_init(&b, 1 << 20);
    tn_buf_addf(&b,
                "{\"schema_version\":1,\"ticket_id\":\"2f1c0c7e-1b7a-4d59-9c1e-%012u\","
                "\"tenant_id\":\"dgii\",\"source\":\"web\",\"title\":\"%s\","
                "\"content_type\":\"text/plain\",\"created_at\":\"2026-11-03T10:00:00Z\","
                "\"body\":\"",
                seed, es ? "Renovación de pasaporte" : "Passport renewal");
    const char *const *pool = es ? es_s : en_s;
    size_t n = es ? TN_ARRAY_LEN(es_s) : TN_ARRAY_LEN(en_s);
    while (b.len < size) {
        seed = seed * 1103515245u + 12345u;
        tn_buf_addf(&b, "%s%s ", pool[(seed >> 8) % n], (seed >> 4) % 7 == 0 ? "\\n\\n" : "");
    }
    tn_buf_add(&b, "\"}", 3);
    return tn_buf_detach(&b, NULL);
}

static double now_s(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 2;
    char err[512];
    ingest_rules_t r = {0};
    r.raw = tn_schema_load("schemas/tickets.raw.schema.json", err, sizeof(err));
    r.enriched = tn_schema_load("schemas/tickets.enriched.schema.json", err, sizeof(err));
    r.pii = tn_pii_new(NULL, "pii", err, sizeof(err));
    r.category = tn_category_new(NULL, "category", err, sizeof(err));
    r.chunk_words = 200;
    r.chunk_overlap = 40;
    if (!r.raw || !r.enriched || !r.pii || !r.category) {
        fprintf(stderr, "bench-enrich: %s (run from the repo top)\n", err);
        return 1;
    }
    static const size_t sizes[] = {1024, 8192};
    size_t only = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) * 1024 : 0;
    for (size_t s = 0; s < TN_ARRAY_LEN(sizes); s++) {
        if (only && sizes[s] != only)
            continue;
        /* 512 different tickets: with the same 16 over and over, the branch predictors
         * learned them, and 1 KB records looked about a fifth cheaper than in a stream */
        enum { NT = 512 };
        char *t[NT];
        for (unsigned i = 0; i < NT; i++)
            t[i] = ticket(i + 1, sizes[s], i % 5 < 3);
        size_t counts[64], n = 0;
        double t0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_THREAD_CPUTIME_ID), t1;
        do {
            for (unsigned i = 0; i < NT; i++) {
                ingest_reject_t why;
                size_t bad;
                memset(counts, 0, sizeof(counts));
                size_t olen;
                char *id;
                char *o =
                    ingest_enrich(&r, t[i], strlen(t[i]), 1 << 20, counts, &bad, &why, &olen, &id);
                if (!o) {
                    fprintf(stderr, "bench-enrich: rejected: %s %s\n", why.reason, why.detail);
                    return 1;
                }
                free(o);
                free(id);
            }
            n += NT;
            t1 = now_s(CLOCK_MONOTONIC);
        } while (t1 - t0 < secs);
        double c1 = now_s(CLOCK_THREAD_CPUTIME_ID);
        printf("enrich_%zuk_us_per_record %.1f\n", sizes[s] / 1024, (t1 - t0) * 1e6 / (double)n);
        printf("enrich_%zuk_cpu_us_per_record %.1f\n", sizes[s] / 1024,
               (c1 - c0) * 1e6 / (double)n);
        for (unsigned i = 0; i < NT; i++)
            free(t[i]);
    }
    tn_schema_destroy(r.raw);
    tn_schema_destroy(r.enriched);
    tn_pii_destroy(r.pii);
    tn_category_destroy(r.category);
    return 0;
}
