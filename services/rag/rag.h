/* rag: questions answered from the indexed chunks of the caller's tenant, with citations.
 *   main.c    the table of contents: config, wiring, loop, shutdown
 *   config.c  the config keys and metric families
 *   index.c   the vector search backends: local (tickets.embedded materialized in a vecstore)
 *             and qdrant
 *   query.c   one question: embed, search, context, answer, event
 *   http.c    POST /v1/query (JSON or Server-Sent Events) and POST /v1/search
 *   json.c    JSON written straight into a buffer (what json_dumps writes, without the values)
 */
#ifndef RAG_H
#define RAG_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "taina/app.h"
#include "taina/buf.h"
#include "taina/breaker.h"
#include "taina/embed.h"
#include "taina/kafka.h"
#include "taina/llm.h"
#include "taina/metrics.h"
#include "taina/pii.h"
#include "taina/qdrant.h"
#include "taina/schema.h"
#include "taina/vecstore.h"

enum { RAG_BACKEND_LOCAL, RAG_BACKEND_QDRANT };

typedef struct rag_cfg {
    int backend;
    char *topic_embedded, *topic_queries;
    int64_t max_inflight, request_timeout_ms, context_tokens;
    char *local_seed_file;
    int64_t coalesce_window_us, coalesce_max, coalesce_passes;
    char *schemas_dir, *pii_rules_file;
    int embed_provider;
    char *embed_model, *embed_url, *embed_api_key;
    int64_t embed_dims, embed_timeout_ms;
    char *qdrant_url, *qdrant_api_key, *collection;
    int64_t qdrant_timeout_ms;
    int llm_provider;
    char *llm_model, *llm_url, *llm_api_key;
    int64_t llm_timeout_ms, llm_max_tokens;
    char *sources; /* TAINA_RAG_SOURCES: comma-separated; empty = every source */
} rag_cfg_t;

extern const char *const rag_embed_providers[];
extern const char *const rag_llm_providers[];
extern const tn_cfg_key_t rag_keys[];
extern const size_t rag_nkeys;

typedef struct rag_metrics {
    tn_metric_t *queries;  /* {endpoint,outcome} */
    tn_metric_t *stage_s;  /* histogram {stage}: embed, search, llm, total */
    tn_metric_t *index;    /* gauge {what}: chunks, rows, vector_bytes, payload_bytes */
    tn_metric_t *inflight; /* gauge */
    tn_metric_t *events;   /* {outcome}: rag.queries produced or failed */
} rag_metrics_t;

/** A search hit, whatever the backend (strings owned). */
typedef struct rag_hit {
    char ticket_id[64];
    uint32_t chunk_index;
    float score;
    char *title, *text;
    char lang[8], category[64], source[64]; /* "" when the chunk has none */
    uint32_t start, end;
} rag_hit_t;

/** A search's filters; strings borrowed. nsources 0: any source (chunks without one too);
 *  else only chunks whose source is one of sources[]. */
typedef struct rag_filter {
    const char *tenant_id, *lang, *category, *ticket_id;
    const char *sources[TN_VEC_MAX_SOURCES];
    size_t nsources;
} rag_filter_t;

typedef struct rag {
    const rag_cfg_t *cfg;
    rag_metrics_t m;
    tn_schema_t *query_req, *search_req;
    tn_pii_t *pii;
    tn_embedder_t *emb;
    tn_llm_t *llm;
    tn_qdrant_t *qdrant;
    tn_vecstore_t *local;
    tn_kafka_producer_t *events;
    /* TAINA_RAG_SOURCES split (strings in src_buf); nsources 0: every source */
    char *src_buf;
    const char *sources[TN_VEC_MAX_SOURCES];
    size_t nsources;
    /* one circuit breaker per upstream: while open, calls fail fast without going out (the
     * qdrant one only with that backend) */
    tn_breaker_t embed_breaker, store_breaker, llm_breaker;
    /* local backend feeder */
    tn_kafka_consumer_t *feed;
    FILE *seed; /* TAINA_RAG_LOCAL_SEED_FILE, applied by the feeder before the topic */
    pthread_t feeder;
    int feeder_running;
    atomic_bool caught_up;
    atomic_bool stop_feeder;
    atomic_int inflight;
} rag_t;

/* config.c */
void rag_metrics_init(rag_metrics_t *m, tn_metrics_t *reg);

/* index.c */
tn_err_t rag_index_start(rag_t *r, tn_app_t *app);
void rag_index_stop(rag_t *r);
/** Top @p k hits for @p vec that pass @p f, best first; *n hits in *hits (free with
 *  rag_hits_free). TN_ERR_UNAVAILABLE / TN_ERR_TIMEOUT when the backend failed. */
tn_err_t rag_index_search(rag_t *r, const float *vec, size_t dims, const rag_filter_t *f, size_t k,
                          rag_hit_t **hits, size_t *n, char *err, size_t errlen);
void rag_hits_free(rag_hit_t *hits, size_t n);
bool rag_index_ready(rag_t *r, char *reason, size_t len);

/* query.c */
typedef struct rag_query {
    /* in */
    const char *tenant, *question, *trace;
    rag_filter_t filter;
    size_t top_k;
    int with_answer;
    int64_t deadline_ms; /* monotonic */
    tn_llm_token_fn *on_token;
    void *opaque;
    /* out */
    rag_hit_t *hits;
    size_t nhits;
    char *answer;
    char answer_error[512];
    const char *lang;
    double embed_ms, search_ms, llm_ms, total_ms;
    int64_t retry_after_ms; /* > 0: refused by an open circuit, a probe may go in that long */
} rag_query_t;

/** Embed and search (fills hits); TN_ERR_TIMEOUT / TN_ERR_UNAVAILABLE with @p err (also,
 *  without a call, while the embeddings or the qdrant circuit is open: q->retry_after_ms). */
tn_err_t rag_query_search(rag_t *r, rag_query_t *q, char *err, size_t errlen);
/** Assemble the context from q->hits and ask the LLM; failures (and an open LLM circuit: no
 *  call) go to q->answer_error. */
void rag_query_answer(rag_t *r, rag_query_t *q);
/** Produce the rag.queries event (asynchronous: never waits). */
void rag_query_event(rag_t *r, const rag_query_t *q, const char *endpoint);
/** The rag.queries event's value for @p q with the redacted @p question, @p query_id and @p at
 *  (pure). Caller owns the result (*len bytes); free(). */
char *rag_query_event_value(const rag_t *r, const rag_query_t *q, const char *endpoint,
                            const char *question, const char *query_id, const char *at,
                            size_t *len);
void rag_query_free(rag_query_t *q);

/* json.c: members written in order, as json_dumps(JSON_COMPACT) writes them; after a failure
 * (over max) writes do nothing. */
typedef struct rag_jw {
    tn_buf_t b;
    tn_err_t rc;
} rag_jw_t;

void rag_jw_init(rag_jw_t *w, size_t max);
/** Append @p s as it is (punctuation and member names). */
void rag_jw_raw(rag_jw_t *w, const char *s);
/** A JSON string of @p len bytes of @p s. */
void rag_jw_str(rag_jw_t *w, const char *s, size_t len);
/** @brief rag_jw_raw(@p key) then rag_jw_str(@p s, strlen(@p s)): one string member. */
void rag_jw_kv(rag_jw_t *w, const char *key, const char *s);
/** @brief The @p i-th hit's object up to its score: {"ticket_id":..,"chunk_index":..,"score":..
 *         (a comma first unless @p i is 0); the caller adds members and the closing brace. */
void rag_jw_hit_head(rag_jw_t *w, const rag_hit_t *h, size_t i);
void rag_jw_int(rag_jw_t *w, long long v);
/** As jansson writes a real: "%.17g", ".0" after what would read as an integer, the exponent
 *  without "+" or leading zeros ("1e-07" -> "1e-7"); null if not finite (jansson refuses it). */
void rag_jw_real(rag_jw_t *w, double v);
/** The text (*len bytes; asserts no write failed). Caller owns it; free(). */
char *rag_jw_detach(rag_jw_t *w, size_t *len);

/* sources.c */
/**
 * Split TAINA_RAG_SOURCES @p csv (comma-separated names of 1..64 bytes, blanks around them
 * ignored, at most TN_VEC_MAX_SOURCES; "" = none) into @p out. The names live in *buf (caller
 * owns it; free()). TN_ERR_CONFIG with one sentence in @p err, nothing kept.
 */
tn_err_t rag_sources_parse(const char *csv, char **buf, const char **out, size_t *n, char *err,
                           size_t errlen);
/**
 * Apply the configured sources @p allowed (@p nallowed; 0 = every source) to a request's filter:
 * without filters.source it gets them all; with one, each of its names must be among them. 0, or
 * 422 with one sentence in @p msg. @p f's pointers borrow from @p allowed.
 */
int rag_sources_apply(const char *const *allowed, size_t nallowed, rag_filter_t *f, char *msg,
                      size_t len);

/* http.c */
void rag_http_query(tn_http_req_t *req, void *opaque);
void rag_http_search(tn_http_req_t *req, void *opaque);

/** A parsed, validated /v1/query or /v1/search body: its strings live in doc. */
typedef struct rag_request {
    json_t *doc;
    rag_query_t q;
    int stream;
} rag_request_t;

/**
 * Parse and validate a /v1/query or /v1/search body against @p schema (pure: no I/O). 0 when
 * valid: @p out holds the question, filters (tenant_id NULL: the caller sets it), top_k and
 * stream, borrowed from out->doc (json_decref it when done). Otherwise the HTTP status (400
 * invalid_json, 422 schema_violation), nothing kept, and the error object {"code","message",...}
 * in @p error (caller owns it).
 */
int rag_request_parse(const tn_schema_t *schema, const char *body, size_t len, rag_request_t *out,
                      json_t **error);

/**
 * The JSON body of a /v1/query answer (not streamed) for @p q: citations (snippets of 300 bytes
 * at most), model, timings, and answer or answer_error. Written directly, the bytes json_dumps
 * would write for the same values (pure). Caller owns the result (*len bytes); free().
 */
char *rag_query_body(const rag_t *r, const rag_query_t *q, size_t *len);
/**
 * The JSON body of a /v1/search answer for @p q: results (ticket_id, chunk_index, score, text,
 * and title, lang, category, source when the chunk has them) and timings; the bytes json_dumps
 * would write for the same values (pure). Caller owns the result (*len bytes); free().
 */
char *rag_search_body(const rag_query_t *q, size_t *len);

#endif
