/* taina-rag: answers questions from the indexed chunks of the caller's tenant, with citations;
 * /v1/search returns the ranked chunks alone. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rag.h"
#include "taina/lifecycle.h"
#include "taina/log.h"
#include "taina/mem.h"

extern char **environ;

static const char *const json_only[] = {"application/json", NULL};

static bool ready(void *opaque, char *reason, size_t len)
{
    return rag_index_ready(opaque, reason, len);
}

static void rag_free(rag_t *r)
{
    rag_index_stop(r);
    if (r->events)
        tn_kafka_producer_flush(r->events, 5000);
    tn_kafka_producer_destroy(r->events);
    tn_llm_destroy(r->llm);
    tn_breaker_destroy(&r->embed_breaker);
    tn_breaker_destroy(&r->store_breaker);
    tn_breaker_destroy(&r->llm_breaker);
    tn_embedder_destroy(r->emb);
    tn_pii_destroy(r->pii);
    tn_schema_destroy(r->query_req);
    tn_schema_destroy(r->search_req);
    free(r->src_buf);
    free(r);
}

static tn_schema_t *load_schema(const rag_t *r, const char *name)
{
    char err[512];
    char *rel = tn_xasprintf("%s/%s", r->cfg->schemas_dir, name);
    char *path = tn_app_data_path(rel);
    tn_schema_t *s = tn_schema_load(path, err, sizeof(err));
    if (!s)
        TN_LOG(TN_LOG_ERROR, "rag: %s", err);
    free(path);
    free(rel);
    return s;
}

/* The question's embedder, the LLM, the event producer. */
static tn_err_t clients_new(rag_t *r, tn_app_t *app)
{
    const rag_cfg_t *c = r->cfg;
    char err[512];
    tn_embed_opts_t eo = tn_embed_opts_default();
    eo.provider = rag_embed_providers[c->embed_provider];
    eo.model = *c->embed_model ? c->embed_model : NULL;
    eo.dims = (size_t)c->embed_dims;
    eo.url = c->embed_url;
    eo.api_key = c->embed_api_key;
    eo.timeout_ms = c->embed_timeout_ms;
    eo.max_batch = 1; /* one question a call: the answer cap is 1 MiB, not 16 (0034) */
    eo.metrics = tn_app_metrics(app);
    if (!(r->emb = tn_embedder_new(&eo, err, sizeof(err))))
        goto fail;
    tn_llm_opts_t lo = tn_llm_opts_default();
    lo.provider = rag_llm_providers[c->llm_provider];
    lo.model = *c->llm_model ? c->llm_model : NULL;
    lo.url = c->llm_url;
    lo.api_key = c->llm_api_key;
    lo.max_tokens = (int)c->llm_max_tokens;
    lo.timeout_ms = c->llm_timeout_ms;
    lo.metrics = tn_app_metrics(app);
    if (!(r->llm = tn_llm_new(&lo, err, sizeof(err))))
        goto fail;
    r->pii = *c->pii_rules_file ? tn_pii_load(c->pii_rules_file, err, sizeof(err))
                                : tn_pii_new(NULL, "built-in PII rules", err, sizeof(err));
    if (!r->pii)
        goto fail;
    tn_kafka_opts_t ko = tn_app_kafka_opts(app, "taina-rag");
    if (!(r->events = tn_kafka_producer_new(&ko, NULL, err, sizeof(err))))
        goto fail;
    return TN_OK;
fail:
    TN_LOG(TN_LOG_ERROR, "rag: %s", err);
    return TN_ERR_CONFIG;
}

/* A breaker per upstream; the local ones (hash embeddings, the local index, extractive
 * answers) cannot lose a network: theirs never open and export no gauge. */
static void breakers_init(rag_t *r, tn_app_t *app)
{
    const rag_cfg_t *c = r->cfg;
    struct {
        tn_breaker_t *b;
        const char *name;
        bool remote;
    } bs[] = {
        {&r->embed_breaker, "embeddings", strcmp(rag_embed_providers[c->embed_provider], "hash")},
        {&r->store_breaker, "qdrant", c->backend == RAG_BACKEND_QDRANT},
        {&r->llm_breaker, "llm", strcmp(rag_llm_providers[c->llm_provider], "extractive")},
    };
    for (size_t i = 0; i < TN_ARRAY_LEN(bs); i++) {
        if (bs[i].remote)
            tn_app_breaker_init(app, bs[i].b, bs[i].name);
        else
            tn_breaker_init(bs[i].b, bs[i].name, INT_MAX, 0);
    }
}

static tn_err_t rag_init(tn_app_t *app, void *cfgp, void **state)
{
    rag_t *r = tn_xcalloc(1, sizeof(*r));
    r->cfg = cfgp;
    rag_metrics_init(&r->m, tn_app_metrics(app));
    breakers_init(r, app);
    /* config: schemas, providers; wiring: the index, the HTTP routes */
    tn_err_t rc = TN_ERR_CONFIG;
    char err[512];
    if (rag_sources_parse(r->cfg->sources, &r->src_buf, r->sources, &r->nsources, err,
                          sizeof(err)) != TN_OK) {
        TN_LOG(TN_LOG_ERROR, "rag: %s", err);
        rag_free(r);
        return TN_ERR_CONFIG;
    }
    if (r->nsources)
        TN_LOG(TN_LOG_INFO, "rag: searches limited to the sources %s (TAINA_RAG_SOURCES)",
               r->cfg->sources);
    r->query_req = load_schema(r, "http/rag.query.request.schema.json");
    r->search_req = load_schema(r, "http/rag.search.request.schema.json");
    if (r->query_req && r->search_req && (rc = clients_new(r, app)) == TN_OK &&
        (rc = rag_index_start(r, app)) == TN_OK) {
        const tn_http_route_t routes[] = {
            {"POST", "/v1/query", rag_http_query, TN_HTTP_ROUTE_AUTH, json_only, r},
            {"POST", "/v1/search", rag_http_search, TN_HTTP_ROUTE_AUTH, json_only, r},
        };
        rc = tn_app_http_start(app, routes, TN_ARRAY_LEN(routes), ready, r);
    }
    if (rc != TN_OK) {
        rag_free(r);
        return rc;
    }
    *state = r;
    return TN_OK;
}

/* The loop: requests are served by the HTTP threads and the index by its feeder. */
static tn_err_t rag_run(tn_app_t *app, void *state)
{
    (void)app;
    (void)state;
    while (!tn_lifecycle_wait(-1))
        ;
    return TN_OK;
}

static void rag_shutdown(tn_app_t *app, void *state)
{
    (void)app;
    if (state)
        rag_free(state);
}

static const tn_app_def_t def = {
    .name = "rag",
    .summary = "Answers questions from the caller's indexed chunks, with citations",
    .features = TN_APP_HTTP | TN_APP_KAFKA | TN_APP_AUTH | TN_APP_BREAKER,
    .http_port = "8082",
    .keys = rag_keys,
    .cfg_size = sizeof(rag_cfg_t),
    .init = rag_init,
    .run = rag_run,
    .shutdown = rag_shutdown,
};

int main(int argc, char **argv)
{
    tn_app_def_t d = def;
    d.nkeys = rag_nkeys;
    return tn_app_main(&d, argc, argv, environ);
}
