/* Unit tests for services/rag/http.c and json.c: the /v1/query and /v1/search bodies
 * (rag_query_body, rag_search_body) and the rag.queries event (rag_query_event_value, query.c),
 * written directly, are byte for byte what json_dumps wrote of the same values built with
 * jansson. */
#include "tn_test.h"

#include <stdlib.h>
#include <string.h>

#include "../../../../services/rag/rag.h"
#include "taina/mem.h"

/* The body as http.c built it before: jansson values, dumped compact. */
static char *jansson_body(const rag_t *r, const rag_query_t *q)
{
    json_t *a = json_array();
    for (size_t i = 0; i < q->nhits; i++) {
        const rag_hit_t *h = &q->hits[i];
        size_t len = strlen(h->text);
        if (len > 300) {
            len = 300;
            while (len > 0 && ((unsigned char)h->text[len] & 0xC0) == 0x80)
                len--;
        }
        json_t *c = json_pack("{s:s, s:I, s:f, s:s#}", "ticket_id", h->ticket_id, "chunk_index",
                              (json_int_t)h->chunk_index, "score", (double)h->score, "snippet",
                              h->text, (int)len);
        if (h->title)
            json_object_set_new(c, "title", json_string(h->title));
        json_array_append_new(a, c);
    }
    json_t *t = json_pack("{s:f, s:f, s:f}", "embed_ms", q->embed_ms, "search_ms", q->search_ms,
                          "total_ms", q->total_ms);
    json_object_set_new(t, "llm_ms", json_real(q->llm_ms));
    json_t *body =
        json_pack("{s:o, s:s, s:o}", "citations", a, "model", tn_llm_model(r->llm), "timings", t);
    if (q->answer)
        json_object_set_new(body, "answer", json_string(q->answer));
    else
        json_object_set_new(body, "answer_error", json_string(q->answer_error));
    char *s = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(body);
    return s;
}

/* The /v1/search body as http.c built it before. */
static char *jansson_search_body(const rag_query_t *q)
{
    json_t *res = json_array();
    for (size_t i = 0; i < q->nhits; i++) {
        const rag_hit_t *h = &q->hits[i];
        json_t *o =
            json_pack("{s:s, s:I, s:f, s:s}", "ticket_id", h->ticket_id, "chunk_index",
                      (json_int_t)h->chunk_index, "score", (double)h->score, "text", h->text);
        if (h->title)
            json_object_set_new(o, "title", json_string(h->title));
        if (*h->lang)
            json_object_set_new(o, "lang", json_string(h->lang));
        if (*h->category)
            json_object_set_new(o, "category", json_string(h->category));
        if (*h->source)
            json_object_set_new(o, "source", json_string(h->source));
        json_array_append_new(res, o);
    }
    json_t *t = json_pack("{s:f, s:f, s:f}", "embed_ms", q->embed_ms, "search_ms", q->search_ms,
                          "total_ms", q->total_ms);
    json_t *body = json_pack("{s:o, s:o}", "results", res, "timings", t);
    char *s = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(body);
    return s;
}

/* The event as query.c built it before. */
static char *jansson_event(const rag_t *r, const rag_query_t *q, const char *endpoint,
                           const char *question, const char *id, const char *at)
{
    json_t *hits = json_array();
    for (size_t i = 0; i < q->nhits; i++)
        json_array_append_new(hits, json_pack("{s:s, s:I, s:f}", "ticket_id", q->hits[i].ticket_id,
                                              "chunk_index", (json_int_t)q->hits[i].chunk_index,
                                              "score", (double)q->hits[i].score));
    json_t *t = json_pack("{s:f}", "total_ms", q->total_ms);
    json_object_set_new(t, "embed_ms", json_real(q->embed_ms));
    json_object_set_new(t, "search_ms", json_real(q->search_ms));
    if (q->with_answer)
        json_object_set_new(t, "llm_ms", json_real(q->llm_ms));
    json_t *v = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:I, s:o, s:o, s:s}", "schema_version", 1,
                          "query_id", id, "tenant_id", q->tenant, "question", question, "endpoint",
                          endpoint, "lang", q->lang, "top_k", (json_int_t)q->top_k, "hits", hits,
                          "timings", t, "at", at);
    if (q->with_answer)
        json_object_set_new(v, "model", json_string(tn_llm_model(r->llm)));
    if (q->answer_error[0])
        json_object_set_new(v, "answer_error", json_string(q->answer_error));
    char *s = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    return s;
}

static void same_text(const char *got, size_t len, const char *want)
{
    assert_non_null(want);
    assert_int_equal(len, strlen(got));
    if (strcmp(got, want) != 0) {
        size_t i = 0;
        while (got[i] == want[i])
            i++;
        fail_msg("differs at byte %zu: ...%.60s, want ...%.60s", i, got + (i > 20 ? i - 20 : 0),
                 want + (i > 20 ? i - 20 : 0));
    }
}

static void same_event(const rag_t *r, const rag_query_t *q, const char *endpoint)
{
    static const char question[] = "¿Dónde renuevo la cédula [CEDULA] de \"Ana\"?\n";
    static const char id[] = "0f8fad5b-d9cb-469f-a165-70867728950e", at[] = "2026-12-02T07:45:00Z";
    size_t len;
    char *got = rag_query_event_value(r, q, endpoint, question, id, at, &len);
    char *want = jansson_event(r, q, endpoint, question, id, at);
    same_text(got, len, want);
    free(got);
    free(want);
}

static void same(const rag_t *r, const rag_query_t *q)
{
    same_event(r, q, "query");
    rag_query_t s = *q; /* as /v1/search has it */
    s.with_answer = 0;
    s.answer = NULL;
    s.answer_error[0] = '\0';
    same_event(r, &s, "search");
    size_t len;
    char *got = rag_query_body(r, q, &len), *want = jansson_body(r, q);
    assert_non_null(want);
    same_text(got, len, want);
    free(got);
    free(want);
    got = rag_search_body(q, &len);
    want = jansson_search_body(q);
    same_text(got, len, want);
    free(got);
    free(want);
}

static void test_query_body(void **state)
{
    (void)state;
    char err[256];
    tn_llm_opts_t o = tn_llm_opts_default();
    rag_t r = {.llm = tn_llm_new(&o, err, sizeof(err))};
    assert_non_null(r.llm);
    /* 299 ASCII bytes then "é" (300 cuts before its second byte, so the snippet stops at 299),
     * quotes, a backslash, a tab and a line break to escape, a title or none */
    char *cut = tn_xmalloc(400);
    memset(cut, 'a', 299);
    snprintf(cut + 299, 101, "%s", "\xC3\xA9 and more text after the cut");
    rag_hit_t hits[3] = {
        {.ticket_id = "t-1",
         .chunk_index = 0,
         .score = 0.8371234f,
         .title = "Horario \"2026\"",
         .text = "La oficina abre a las 9.\nCierra a las 5\t(sábados no) \\ fin.",
         .lang = "es",
         .category = "horarios \"y\" citas",
         .source = "web"},
        {.ticket_id = "t-2", .chunk_index = 4000000000u, .score = 1.0f, .title = NULL, .text = cut},
        {.ticket_id = "t-\"3\"",
         .chunk_index = 7,
         .score = -0.25f,
         .title = "",
         .text = "¿Cuánto cuesta? RD$ 2,400.",
         .source = "portal\\x"},
    };
    rag_query_t q = {.tenant = "tenant-\"a\"",
                     .lang = "es",
                     .top_k = 5,
                     .with_answer = 1,
                     .hits = hits,
                     .nhits = 3,
                     .answer = "Según los documentos: \"La oficina\" abre a las 9. [1]",
                     .embed_ms = 0.123456789,
                     .search_ms = 3.0,
                     .llm_ms = 1e-7,
                     .total_ms = 12345678.5};
    same(&r, &q);
    q.answer = NULL;
    snprintf(q.answer_error, sizeof(q.answer_error),
             "the answer could not be generated: llm: down");
    q.nhits = 0;
    q.embed_ms = 0;
    q.search_ms = 1e20;
    q.total_ms = -0.0;
    q.llm_ms = 2.5e-300;
    same(&r, &q);
    free(cut);
    tn_llm_destroy(r.llm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
