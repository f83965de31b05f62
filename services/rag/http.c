/* rag: POST /v1/search (ranked chunks) and POST /v1/query (answer with citations, as JSON or as
 * Server-Sent Events: citations first, tokens as they arrive, a final event). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rag.h"
#include "taina/buf.h"
#include "taina/clock.h"
#include "taina/log.h"
#include "taina/mem.h"
#include "taina/text.h"

/* Count the request in; 0 after answering 503 when too many are in flight. */
static int admit(rag_t *r, tn_http_req_t *req, const char *endpoint)
{
    int now = atomic_fetch_add(&r->inflight, 1) + 1;
    if (now > r->cfg->max_inflight) {
        atomic_fetch_sub(&r->inflight, 1);
        tn_metric_add(r->m.queries, TN_LABELS(endpoint, "overloaded"), 1);
        tn_http_req_add_header(req, "Retry-After", "1");
        tn_http_req_respond_error(req, 503, "overloaded",
                                  "more than %lld requests in flight; retry shortly",
                                  (long long)r->cfg->max_inflight);
        return 0;
    }
    tn_metric_set(r->m.inflight, TN_NOLABELS, now);
    return 1;
}

static void leave(rag_t *r)
{
    tn_metric_set(r->m.inflight, TN_NOLABELS, atomic_fetch_sub(&r->inflight, 1) - 1);
}

int rag_request_parse(const tn_schema_t *schema, const char *body, size_t len, rag_request_t *out,
                      json_t **error)
{
    json_error_t jerr;
    memset(out, 0, sizeof(*out));
    *error = NULL;
    out->doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!out->doc) {
        /* jansson's text may quote the bad bytes (or half a character): repair for json_pack */
        char msg[256];
        snprintf(msg, sizeof(msg), "line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
        char *fixed = tn_text_utf8_repair(msg, strlen(msg), NULL, NULL);
        *error = json_pack("{s:s, s:s}", "code", "invalid_json", "message", fixed);
        free(fixed);
        return 400;
    }
    tn_schema_error_t se;
    size_t nse = 0;
    if (tn_schema_validate(schema, out->doc, &se, 1, &nse) != TN_OK) {
        *error = nse ? tn_schema_error_json(&se)
                     : json_pack("{s:s,s:s}", "code", "schema_violation", "message",
                                 "the body does not match the schema");
        json_decref(out->doc);
        out->doc = NULL;
        return 422;
    }
    rag_query_t *q = &out->q;
    const json_t *f = json_object_get(out->doc, "filters");
    q->question = json_string_value(json_object_get(out->doc, "question"));
    q->filter = (rag_filter_t){.lang = json_string_value(json_object_get(f, "lang")),
                               .category = json_string_value(json_object_get(f, "category")),
                               .ticket_id = json_string_value(json_object_get(f, "ticket_id"))};
    /* filters.source: one name or an array of 1..TN_VEC_MAX_SOURCES (the schema's bounds) */
    const json_t *src = json_object_get(f, "source");
    if (json_is_string(src)) {
        q->filter.sources[q->filter.nsources++] = json_string_value(src);
    } else {
        size_t i;
        const json_t *v;
        json_array_foreach(src, i, v)
        {
            if (q->filter.nsources < TN_VEC_MAX_SOURCES && json_is_string(v))
                q->filter.sources[q->filter.nsources++] = json_string_value(v);
        }
    }
    /* json_number_value: the schema's "integer" also admits an integral real such as 5.0 */
    json_t *k = json_object_get(out->doc, "top_k");
    q->top_k = k ? (size_t)json_number_value(k) : 5;
    out->stream = json_is_true(json_object_get(out->doc, "stream"));
    return 0;
}

/* Parse and validate; 0 after answering 400/422. */
static int parse(rag_t *r, tn_http_req_t *req, const tn_schema_t *schema, rag_request_t *out)
{
    size_t len;
    const char *body = tn_http_req_body(req, &len);
    json_t *error;
    int status = rag_request_parse(schema, body, len, out, &error);
    if (status) {
        tn_http_req_respond_json(req, status, json_pack("{s:o}", "error", error));
        return 0;
    }
    char msg[1024];
    if (rag_sources_apply(r->sources, r->nsources, &out->q.filter, msg, sizeof(msg))) {
        tn_http_req_respond_error(req, 422, "source_not_allowed", "%s", msg);
        json_decref(out->doc);
        out->doc = NULL;
        return 0;
    }
    out->q.tenant = tn_http_req_tenant(req);
    out->q.filter.tenant_id = out->q.tenant;
    out->q.deadline_ms = tn_clock_mono_ms() + r->cfg->request_timeout_ms;
    return 1;
}

/* 504 or 503 for a search that failed; 0 when it worked. */
static int search_or_fail(rag_t *r, tn_http_req_t *req, rag_query_t *q, const char *endpoint)
{
    char err[512] = "";
    tn_err_t rc = rag_query_search(r, q, err, sizeof(err));
    if (rc == TN_OK)
        return 0;
    if (rc == TN_ERR_TIMEOUT) {
        tn_metric_add(r->m.queries, TN_LABELS(endpoint, "timeout"), 1);
        tn_http_req_respond_error(req, 504, "upstream_timeout", "%s", err);
    } else {
        tn_metric_add(r->m.queries, TN_LABELS(endpoint, "unavailable"), 1);
        char ra[24] = "1"; /* an open circuit: when its next probe may go */
        if (q->retry_after_ms > 0)
            snprintf(ra, sizeof(ra), "%lld", (long long)(q->retry_after_ms + 999) / 1000);
        tn_http_req_add_header(req, "Retry-After", ra);
        tn_http_req_respond_error(req, 503, "upstream_unavailable", "%s", err);
    }
    return 1;
}

static json_t *timings(const rag_query_t *q, int llm)
{
    json_t *t = json_pack("{s:f, s:f, s:f}", "embed_ms", q->embed_ms, "search_ms", q->search_ms,
                          "total_ms", q->total_ms);
    if (llm)
        json_object_set_new(t, "llm_ms", json_real(q->llm_ms));
    return t;
}

/* Bytes of a citation's snippet: the first 300 of @p text, cut at a UTF-8 boundary. */
static size_t snippet_len(const char *text)
{
    return tn_text_utf8_complete(text, strnlen(text, 300));
}

/* Citations (snippets cut at a UTF-8 boundary). */
static json_t *citations(const rag_query_t *q)
{
    json_t *a = json_array();
    for (size_t i = 0; i < q->nhits; i++) {
        const rag_hit_t *h = &q->hits[i];
        size_t len = snippet_len(h->text);
        json_t *c = json_pack("{s:s, s:I, s:f, s:s#}", "ticket_id", h->ticket_id, "chunk_index",
                              (json_int_t)h->chunk_index, "score", (double)h->score, "snippet",
                              h->text, (int)len);
        if (h->title)
            json_object_set_new(c, "title", json_string(h->title));
        json_array_append_new(a, c);
    }
    return a;
}

/* ------------------------------------------------------------------------------------------- */
/* The /v1/query body written straight into a buffer: with the answer cheap, building it as
 * jansson values and dumping them cost more than the answer. The same members in the same order
 * as json_dumps of the values wrote; reals as jansson writes them. */

#define QUERY_BODY_MAX (64u << 20) /* never reached: the answer is at most 1 MB, 6 bytes a byte */

char *rag_query_body(const rag_t *r, const rag_query_t *q, size_t *len)
{
    rag_jw_t w;
    rag_jw_init(&w, QUERY_BODY_MAX);
    rag_jw_raw(&w, "{\"citations\":[");
    for (size_t i = 0; i < q->nhits; i++) {
        const rag_hit_t *h = &q->hits[i];
        rag_jw_hit_head(&w, h, i);
        rag_jw_raw(&w, ",\"snippet\":");
        rag_jw_str(&w, h->text, snippet_len(h->text));
        if (h->title) {
            rag_jw_kv(&w, ",\"title\":", h->title);
        }
        rag_jw_raw(&w, "}");
    }
    const char *model = tn_llm_model(r->llm);
    rag_jw_kv(&w, "],\"model\":", model);
    rag_jw_raw(&w, ",\"timings\":{\"embed_ms\":");
    rag_jw_real(&w, q->embed_ms);
    rag_jw_raw(&w, ",\"search_ms\":");
    rag_jw_real(&w, q->search_ms);
    rag_jw_raw(&w, ",\"total_ms\":");
    rag_jw_real(&w, q->total_ms);
    rag_jw_raw(&w, ",\"llm_ms\":");
    rag_jw_real(&w, q->llm_ms);
    if (q->answer) {
        rag_jw_kv(&w, "},\"answer\":", q->answer);
    } else {
        rag_jw_kv(&w, "},\"answer_error\":", q->answer_error);
    }
    rag_jw_raw(&w, "}");
    return rag_jw_detach(&w, len);
}

/* The /v1/search body, written as rag_query_body() is: the members json_pack and the optional
 * sets wrote, in their order. */
char *rag_search_body(const rag_query_t *q, size_t *len)
{
    rag_jw_t w;
    rag_jw_init(&w, QUERY_BODY_MAX);
    rag_jw_raw(&w, "{\"results\":[");
    for (size_t i = 0; i < q->nhits; i++) {
        const rag_hit_t *h = &q->hits[i];
        rag_jw_hit_head(&w, h, i);
        rag_jw_kv(&w, ",\"text\":", h->text);
        const char *opt[][2] = {{",\"title\":", h->title},
                                {",\"lang\":", *h->lang ? h->lang : NULL},
                                {",\"category\":", *h->category ? h->category : NULL},
                                {",\"source\":", *h->source ? h->source : NULL}};
        for (size_t j = 0; j < TN_ARRAY_LEN(opt); j++) {
            if (opt[j][1])
                rag_jw_kv(&w, opt[j][0], opt[j][1]);
        }
        rag_jw_raw(&w, "}");
    }
    rag_jw_raw(&w, "],\"timings\":{\"embed_ms\":");
    rag_jw_real(&w, q->embed_ms);
    rag_jw_raw(&w, ",\"search_ms\":");
    rag_jw_real(&w, q->search_ms);
    rag_jw_raw(&w, ",\"total_ms\":");
    rag_jw_real(&w, q->total_ms);
    rag_jw_raw(&w, "}}");
    return rag_jw_detach(&w, len);
}

void rag_http_search(tn_http_req_t *req, void *opaque)
{
    rag_t *r = opaque;
    double t0 = tn_clock_mono_s();
    rag_request_t rq;
    if (!admit(r, req, "search"))
        return;
    if (!parse(r, req, r->search_req, &rq)) {
        leave(r);
        return;
    }
    rag_query_t *q = &rq.q;
    if (!search_or_fail(r, req, q, "search")) {
        q->total_ms = (tn_clock_mono_s() - t0) * 1000.0;
        size_t len;
        char *body = rag_search_body(q, &len);
        tn_http_req_respond(req, 200, "application/json", body, len);
        free(body);
        tn_metric_add(r->m.queries, TN_LABELS("search", "ok"), 1);
        tn_metric_observe(r->m.stage_s, TN_LABELS("total"), q->total_ms / 1000.0);
        rag_query_event(r, q, "search");
    }
    rag_query_free(q);
    json_decref(rq.doc);
    leave(r);
}

/* ------------------------------------------------------------------------------------------- */
/* Server-Sent Events: a thread answers and appends events; the server's stream callback sends
 * them as they come. Shared by both sides; the last to let go frees it. */

typedef struct sse {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    tn_buf_t out;
    size_t sent;
    int done, cancelled, refs;
    rag_t *r;
    rag_request_t rq;
    double t0;
    char tenant[128]; /* the request is gone before the answering thread is done */
} sse_t;

static void sse_unref(sse_t *s)
{
    pthread_mutex_lock(&s->mu);
    int last = --s->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (!last)
        return;
    rag_query_free(&s->rq.q);
    json_decref(s->rq.doc);
    tn_buf_cleanup(&s->out);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* Append one event; returns non-zero when the client went away. */
static int sse_event(sse_t *s, const char *event, json_t *data)
{
    char *d = json_dumps(data, JSON_COMPACT);
    json_decref(data);
    pthread_mutex_lock(&s->mu);
    tn_buf_addf(&s->out, "event: %s\ndata: %s\n\n", event, d);
    int gone = s->cancelled;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    free(d);
    return gone;
}

static int sse_token(void *opaque, const char *text, size_t len)
{
    sse_t *s = opaque;
    return sse_event(s, "token", json_pack("{s:s#}", "text", text, (int)len));
}

static ssize_t sse_read(void *opaque, char *buf, size_t max)
{
    sse_t *s = opaque;
    pthread_mutex_lock(&s->mu);
    if (s->sent == s->out.len && !s->done) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 2;
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    ssize_t n;
    if (s->sent < s->out.len) {
        size_t avail = s->out.len - s->sent;
        n = (ssize_t)(avail < max ? avail : max);
        memcpy(buf, s->out.data + s->sent, (size_t)n);
        s->sent += (size_t)n;
    } else if (s->done) {
        n = 0; /* the end */
    } else {
        static const char keepalive[] = ": waiting for the model\n\n";
        n = (ssize_t)(sizeof(keepalive) - 1 < max ? sizeof(keepalive) - 1 : max);
        memcpy(buf, keepalive, (size_t)n);
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void sse_free(void *opaque)
{
    sse_t *s = opaque;
    pthread_mutex_lock(&s->mu);
    s->cancelled = 1;
    pthread_mutex_unlock(&s->mu);
    sse_unref(s);
}

static void *sse_answer(void *arg)
{
    sse_t *s = arg;
    rag_t *r = s->r;
    rag_query_t *q = &s->rq.q;
    q->on_token = sse_token;
    q->opaque = s;
    rag_query_answer(r, q);
    q->total_ms = (tn_clock_mono_s() - s->t0) * 1000.0;
    json_t *fin = json_pack("{s:s, s:o}", "model", tn_llm_model(r->llm), "timings", timings(q, 1));
    if (q->answer_error[0])
        json_object_set_new(fin, "answer_error", json_string(q->answer_error));
    sse_event(s, "done", fin);
    pthread_mutex_lock(&s->mu);
    s->done = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    tn_metric_add(r->m.queries, TN_LABELS("query", q->answer_error[0] ? "answer_error" : "ok"), 1);
    tn_metric_observe(r->m.stage_s, TN_LABELS("total"), q->total_ms / 1000.0);
    rag_query_event(r, q, "query");
    leave(r);
    sse_unref(s);
    return NULL;
}

static void query_stream(rag_t *r, tn_http_req_t *req, rag_request_t *rq, double t0)
{
    sse_t *s = tn_xcalloc(1, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    tn_buf_init(&s->out, 16u << 20);
    s->r = r;
    s->rq = *rq;
    s->t0 = t0;
    snprintf(s->tenant, sizeof(s->tenant), "%s", rq->q.tenant);
    s->rq.q.tenant = s->tenant;
    s->rq.q.filter.tenant_id = s->tenant;
    s->refs = 2; /* the answering thread and the response */
    sse_event(s, "citations", json_pack("{s:o}", "citations", citations(&s->rq.q)));
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &attr, sse_answer, s) != 0) {
        pthread_attr_destroy(&attr);
        s->refs = 1;
        sse_unref(s);
        leave(r);
        tn_http_req_respond_error(req, 503, "overloaded", "cannot start the answer");
        return;
    }
    pthread_attr_destroy(&attr);
    tn_http_req_add_header(req, "Cache-Control", "no-cache");
    tn_http_req_respond_stream(req, 200, "text/event-stream", sse_read, sse_free, s);
}

void rag_http_query(tn_http_req_t *req, void *opaque)
{
    rag_t *r = opaque;
    double t0 = tn_clock_mono_s();
    rag_request_t rq;
    if (!admit(r, req, "query"))
        return;
    if (!parse(r, req, r->query_req, &rq)) {
        leave(r);
        return;
    }
    rag_query_t *q = &rq.q;
    q->with_answer = 1;
    if (search_or_fail(r, req, q, "query")) {
        rag_query_free(q);
        json_decref(rq.doc);
        leave(r);
        return;
    }
    if (rq.stream) {
        query_stream(r, req, &rq, t0); /* takes rq */
        return;
    }
    rag_query_answer(r, q);
    q->total_ms = (tn_clock_mono_s() - t0) * 1000.0;
    size_t len;
    char *body = rag_query_body(r, q, &len);
    tn_http_req_respond(req, 200, "application/json", body, len);
    free(body);
    tn_metric_add(r->m.queries, TN_LABELS("query", q->answer ? "ok" : "answer_error"), 1);
    tn_metric_observe(r->m.stage_s, TN_LABELS("total"), q->total_ms / 1000.0);
    rag_query_event(r, q, "query");
    rag_query_free(q);
    json_decref(rq.doc);
    leave(r);
}
