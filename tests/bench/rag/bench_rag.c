/* bench-rag's data: tickets.embedded records of the hash embedding (the rag service's own
 * provider and model, 384 dims) for the chunks of a corpus, and the question vectors the
 * Python peer looks up (the same function, so both sides search with the same floats).
 *
 *   bench-rag CORPUS N TENANT SEED_OUT QUESTIONS QVEC_OUT
 *     CORPUS     one chunk per line (tests/bench/embedder/corpus.py); the first N are used
 *     SEED_OUT   NDJSON of tickets.embedded record values (4 chunks a ticket, ids, offsets,
 *                title, lang, category, base64 f32 vector): what taina-embedder produces
 *     QUESTIONS  one question per line -> QVEC_OUT: {"question":..,"vector":b64} per line
 *   -> "records N bytes B embed_per_s R model M"
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "taina/clock.h"
#include "taina/embed.h"
#include "taina/mem.h"

enum { DIMS = 384, PER_TICKET = 4 };

static const char *const cats[] = {"passport",        "national_id",  "driving_licence",
                                   "civil_registry",  "tax",          "vehicle",
                                   "social_benefits", "appointments", "complaint"};

static char *chomp(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = 0;
    return s;
}

/* Code points of @p s (the offsets of tickets.embedded count them). */
static size_t cps(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: bench-rag CORPUS N TENANT SEED_OUT QUESTIONS QVEC_OUT\n");
        return 2;
    }
    size_t n = strtoul(argv[2], NULL, 10);
    const char *tenant = argv[3];
    FILE *f[4] = {fopen(argv[1], "r"), fopen(argv[4], "w"), fopen(argv[5], "r"),
                  fopen(argv[6], "w")};
    if (!f[0] || !f[1] || !f[2] || !f[3]) {
        perror("bench-rag");
        for (int i = 0; i < 4; i++)
            if (f[i])
                fclose(f[i]);
        return 1;
    }
    FILE *in = f[0], *out = f[1], *qin = f[2], *qout = f[3];
    char err[256];
    tn_embed_opts_t eo = tn_embed_opts_default();
    eo.provider = "hash";
    eo.dims = DIMS;
    tn_embedder_t *emb = tn_embedder_new(&eo, err, sizeof(err));
    if (!emb) {
        fprintf(stderr, "bench-rag: %s\n", err);
        for (int i = 0; i < 4; i++)
            fclose(f[i]);
        return 1;
    }
    const char *model = tn_embedder_model(emb);
    char *line = NULL;
    size_t cap = 0, made = 0, bytes = 0, pos = 0;
    float v[DIMS];
    double embed_s = 0;
    while (made < n && getline(&line, &cap, in) > 0) {
        chomp(line);
        size_t ticket = made / PER_TICKET, idx = made % PER_TICKET;
        if (idx == 0)
            pos = 0;
        double t0 = tn_clock_mono_s();
        tn_embed_hash(line, strlen(line), DIMS, v);
        embed_s += tn_clock_mono_s() - t0;
        char *b64 = tn_embed_vector_b64(v, DIMS);
        char tid[64], pid[64], title[64];
        snprintf(tid, sizeof(tid), "%08zx-0000-4000-8000-%012zx", ticket, ticket * 7919);
        snprintf(pid, sizeof(pid), "%08zx-0000-5000-8000-%012zx", made, made * 104729);
        size_t tl = 0; /* the title: the ticket's first words, cut at a space */
        for (size_t i = 0; i < 60 && line[i]; i++)
            if (line[i] == ' ')
                tl = i;
        snprintf(title, sizeof(title), "%.*s", (int)tl, line);
        size_t len = cps(line);
        json_t *rec = json_pack(
            "{s:i, s:s, s:s, s:I, s:s, s:s, s:i, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:s}",
            "schema_version", 1, "ticket_id", tid, "tenant_id", tenant, "chunk_index",
            (json_int_t)idx, "point_id", pid, "model", model, "dims", DIMS, "vector", b64, "text",
            line, "title", title, "lang", strstr(line, " de ") ? "es" : "en", "category",
            cats[ticket % TN_ARRAY_LEN(cats)], "start", (json_int_t)pos, "end",
            (json_int_t)(pos + len), "content_hash",
            "9f2c000000000000000000000000000000000000000000000000000000000000", "embedded_at",
            "2026-11-24T09:15:00.000Z");
        if (idx == PER_TICKET - 1) /* the ticket's last record says how many it has */
            json_object_set_new(rec, "chunk_count", json_integer(PER_TICKET));
        char *s = json_dumps(rec, JSON_COMPACT);
        bytes += strlen(s) + 1;
        fprintf(out, "%s\n", s);
        free(s);
        json_decref(rec);
        free(b64);
        pos += len + 1;
        made++;
    }
    while (getline(&line, &cap, qin) > 0) {
        chomp(line);
        if (!*line)
            continue;
        tn_embed_hash(line, strlen(line), DIMS, v);
        char *b64 = tn_embed_vector_b64(v, DIMS);
        json_t *q = json_pack("{s:s, s:s}", "question", line, "vector", b64);
        char *s = json_dumps(q, JSON_COMPACT);
        fprintf(qout, "%s\n", s);
        free(s);
        json_decref(q);
        free(b64);
    }
    free(line);
    fclose(in);
    fclose(qin);
    if (fclose(out) || fclose(qout) || made < n) {
        fprintf(stderr, "bench-rag: %zu of %zu records written\n", made, n);
        return 1;
    }
    printf("records %zu bytes %zu embed_per_s %.0f model %s\n", made, bytes,
           embed_s > 0 ? (double)made / embed_s : 0.0, model);
    tn_embedder_destroy(emb);
    return 0;
}
