/* rag: one question. Embed it, search the caller's tenant, keep the best chunks that do not
 * overlap, fit them in the context budget, ask the LLM, and record an event. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rag.h"
#include "taina/buf.h"
#include "taina/clock.h"
#include "taina/lang.h"
#include "taina/log.h"
#include "taina/mem.h"
#include "taina/trace.h"

static double since_ms(double t0)
{
    return (tn_clock_mono_s() - t0) * 1000.0;
}

/* Keep the best @p keep hits, dropping any that overlaps a better chunk of the same ticket
 * (consecutive chunks share words); the dropped ones are freed. Returns how many are kept (at
 * the front). */
static size_t keep_best(rag_hit_t *h, size_t n, size_t keep)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int drop = m >= keep;
        for (size_t j = 0; j < m && !drop; j++)
            drop = !strcmp(h[j].ticket_id, h[i].ticket_id) && h[i].start < h[j].end &&
                   h[j].start < h[i].end;
        if (drop) {
            free(h[i].title);
            free(h[i].text);
            continue;
        }
        h[m++] = h[i];
    }
    return m;
}

/* Refused by @p b's open circuit: no call; say which upstream and when to come back. */
static tn_err_t circuit_open(tn_breaker_t *b, rag_query_t *q, char *err, size_t errlen)
{
    q->retry_after_ms = tn_breaker_retry_in_ms(b);
    if (q->retry_after_ms < 1)
        q->retry_after_ms = 1;
    snprintf(err, errlen,
             "%s: unavailable (circuit open after repeated failures; not called), retry in %lld s",
             b->name, (long long)(q->retry_after_ms + 999) / 1000);
    return TN_ERR_UNAVAILABLE;
}

static tn_err_t search_stage(rag_t *r, rag_query_t *q, char *err, size_t errlen)
{
    double t0 = tn_clock_mono_s();
    q->lang = tn_lang_detect(q->question, strlen(q->question), NULL).code;
    if (!tn_breaker_allow(&r->embed_breaker))
        return circuit_open(&r->embed_breaker, q, err, errlen);
    float *vec = NULL;
    size_t dims = 0;
    tn_embed_error_t why = {0};
    tn_err_t rc = tn_embed(r->emb, &q->question, NULL, 1, &vec, &dims, &why);
    tn_breaker_record(&r->embed_breaker, rc);
    q->embed_ms = since_ms(t0);
    tn_metric_observe(r->m.stage_s, TN_LABELS("embed"), q->embed_ms / 1000.0);
    if (rc != TN_OK) {
        snprintf(err, errlen, "embeddings: %s", why.msg);
        return rc == TN_ERR_UNAVAILABLE && why.status == 0 && tn_clock_mono_ms() >= q->deadline_ms
                   ? TN_ERR_TIMEOUT
                   : TN_ERR_UNAVAILABLE;
    }
    if (tn_clock_mono_ms() >= q->deadline_ms) {
        free(vec);
        snprintf(err, errlen, "the request deadline passed while embedding the question");
        return TN_ERR_TIMEOUT;
    }
    if (r->qdrant && !tn_breaker_allow(&r->store_breaker)) {
        free(vec);
        return circuit_open(&r->store_breaker, q, err, errlen);
    }
    double t1 = tn_clock_mono_s();
    size_t fetch = q->top_k * 3 < 150 ? q->top_k * 3 : 150;
    rag_hit_t *hits = NULL;
    size_t n = 0;
    rc = rag_index_search(r, vec, dims, &q->filter, fetch, &hits, &n, err, errlen);
    if (r->qdrant) /* rag_index_search maps every other failure to TN_ERR_UPSTREAM (a 4xx) */
        tn_breaker_record(&r->store_breaker, rc);
    free(vec);
    q->search_ms = since_ms(t1);
    tn_metric_observe(r->m.stage_s, TN_LABELS("search"), q->search_ms / 1000.0);
    if (rc != TN_OK)
        return tn_clock_mono_ms() >= q->deadline_ms ? TN_ERR_TIMEOUT : TN_ERR_UNAVAILABLE;
    size_t kept = keep_best(hits, n, q->top_k);
    q->hits = hits;
    q->nhits = kept;
    return TN_OK;
}

tn_err_t rag_query_search(rag_t *r, rag_query_t *q, char *err, size_t errlen)
{
    return search_stage(r, q, err, errlen);
}

void rag_query_answer(rag_t *r, rag_query_t *q)
{
    double t0 = tn_clock_mono_s();
    tn_llm_passage_t *ps = tn_xcalloc(q->nhits ? q->nhits : 1, sizeof(*ps));
    size_t np = 0, budget = (size_t)r->cfg->context_tokens * 4, used = 0;
    for (size_t i = 0; i < q->nhits; i++) {
        size_t len = strlen(q->hits[i].text);
        if (np && used + len > budget)
            break;
        ps[np++] = (tn_llm_passage_t){q->hits[i].title, q->hits[i].text, len};
        used += len;
    }
    tn_llm_error_t why = {0};
    if (!tn_breaker_allow(&r->llm_breaker)) {
        /* the citations stand on their own: say why there is no answer, without calling */
        char msg[256];
        circuit_open(&r->llm_breaker, q, msg, sizeof(msg));
        snprintf(q->answer_error, sizeof(q->answer_error), "the answer could not be generated: %s",
                 msg);
        q->retry_after_ms = 0; /* not a refusal of the request */
        free(ps);
        return;
    }
    tn_err_t rc = tn_llm_answer(r->llm, q->question, q->lang, ps, np, q->on_token, q->opaque,
                                &q->answer, &why);
    tn_breaker_record(&r->llm_breaker, rc);
    free(ps);
    q->llm_ms = since_ms(t0);
    tn_metric_observe(r->m.stage_s, TN_LABELS("llm"), q->llm_ms / 1000.0);
    if (rc != TN_OK && rc != TN_ERR_STOPPED) {
        snprintf(q->answer_error, sizeof(q->answer_error),
                 "the answer could not be generated: %s%s",
                 rc == TN_ERR_TIMEOUT ? "the LLM did not answer in time; " : "", why.msg);
        TN_LOG(TN_LOG_WARN, "rag: LLM failed: %s", q->answer_error);
        free(q->answer);
        q->answer = NULL;
    }
}

void rag_query_event(rag_t *r, const rag_query_t *q, const char *endpoint)
{
    char id[40], now[40], err[256];
    tn_buf_t red;
    tn_buf_init(&red, strlen(q->question) * 2 + 256);
    if (tn_pii_redact(r->pii, q->question, strlen(q->question), &red, NULL, err, sizeof(err)) !=
        TN_OK) {
        tn_buf_reset(&red);
        tn_buf_adds(&red, "[REDACTION FAILED]");
    }
    tn_buf_add(&red, "", 1);
    tn_uuid4(id, sizeof(id));
    tn_clock_rfc3339(now, sizeof(now), tn_clock_wall_ms());
    size_t vlen;
    char *value = rag_query_event_value(r, q, endpoint, red.data, id, now, &vlen);
    tn_kafka_header_t h[1] = {{TN_KAFKA_H_SCHEMA, "rag.queries/1", 13}};
    tn_kafka_record_t rec = {r->cfg->topic_queries, -1, id, strlen(id), value, vlen, h, 1};
    tn_kafka_error_t ke;
    /* Telemetry: never wait for it; a full queue drops the event (counted). */
    tn_err_t rc = tn_kafka_produce(r->events, &rec, &ke);
    tn_metric_add(r->m.events, TN_LABELS(rc == TN_OK ? "produced" : "dropped"), 1);
    free(value);
    tn_buf_cleanup(&red);
}

char *rag_query_event_value(const rag_t *r, const rag_query_t *q, const char *endpoint,
                            const char *question, const char *query_id, const char *at, size_t *len)
{
    rag_jw_t w;
    rag_jw_init(&w, strlen(question) * 6 + q->nhits * 512 + sizeof(q->answer_error) * 6 + 4096);
    rag_jw_kv(&w, "{\"schema_version\":1,\"query_id\":", query_id);
    rag_jw_kv(&w, ",\"tenant_id\":", q->tenant);
    rag_jw_kv(&w, ",\"question\":", question);
    rag_jw_kv(&w, ",\"endpoint\":", endpoint);
    rag_jw_kv(&w, ",\"lang\":", q->lang);
    rag_jw_raw(&w, ",\"top_k\":");
    rag_jw_int(&w, (long long)q->top_k);
    rag_jw_raw(&w, ",\"hits\":[");
    for (size_t i = 0; i < q->nhits; i++) {
        rag_jw_hit_head(&w, &q->hits[i], i);
        rag_jw_raw(&w, "}");
    }
    rag_jw_raw(&w, "],\"timings\":{\"total_ms\":");
    rag_jw_real(&w, q->total_ms);
    rag_jw_raw(&w, ",\"embed_ms\":");
    rag_jw_real(&w, q->embed_ms);
    rag_jw_raw(&w, ",\"search_ms\":");
    rag_jw_real(&w, q->search_ms);
    if (q->with_answer) {
        rag_jw_raw(&w, ",\"llm_ms\":");
        rag_jw_real(&w, q->llm_ms);
    }
    rag_jw_kv(&w, "},\"at\":", at);
    if (q->with_answer) {
        const char *model = tn_llm_model(r->llm);
        rag_jw_kv(&w, ",\"model\":", model);
    }
    if (q->answer_error[0]) {
        rag_jw_kv(&w, ",\"answer_error\":", q->answer_error);
    }
    rag_jw_raw(&w, "}");
    return rag_jw_detach(&w, len);
}

void rag_query_free(rag_query_t *q)
{
    rag_hits_free(q->hits, q->nhits);
    q->hits = NULL;
    q->nhits = 0;
    free(q->answer);
    q->answer = NULL;
}
