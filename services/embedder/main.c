/* taina-embedder: enriched chunks -> vectors (hash or an OpenAI-compatible API) -> Qdrant points
 * and tickets.embedded records; offsets committed only after both acknowledged. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedder.h"
#include "taina/lifecycle.h"
#include "taina/log.h"
#include "taina/mem.h"

extern char **environ;

static bool ready(void *opaque, char *reason, size_t len)
{
    embedder_t *e = opaque;
    if (!atomic_load(&e->ready)) {
        snprintf(reason, len, "no partitions assigned yet, or an upstream circuit is open");
        return false;
    }
    return true;
}

static void embedder_free(embedder_t *e)
{
    for (size_t i = 0; i < EMBEDDER_SENT_MAX; i++) {
        tn_kafka_batch_wait(e->sent[i].inflight, NULL, 0); /* late reports free it */
        e->sent[i].inflight = NULL;
    }
    if (e->consumer)
        tn_kafka_consumer_close(e->consumer);
    tn_kafka_consumer_destroy(e->consumer);
    if (e->producer)
        tn_kafka_producer_flush(e->producer, 10000);
    tn_kafka_producer_destroy(e->producer);
    tn_qdrant_destroy(e->qdrant);
    tn_embedder_destroy(e->emb);
    tn_schema_destroy(e->schema_in);
    tn_breaker_destroy(&e->embed_breaker);
    tn_breaker_destroy(&e->store_breaker);
    embedder_batch_clear(e);
    free(e->recs);
    for (size_t i = 0; i < EMBEDDER_SENT_MAX; i++) {
        embedder_sent_t *s = &e->sent[i];
        for (size_t j = 0; j < s->n; j++) { /* batches left behind by a fatal error */
            tn_kafka_msg_release(&s->recs[j].msg);
            json_decref(s->recs[j].doc);
        }
        free(s->recs);
    }
    free(e->st_recs);
    free(e->vecs);
    tn_buf_cleanup(&e->payloads);
    tn_buf_cleanup(&e->values);
    free(e);
}

static tn_err_t clients_new(embedder_t *e, tn_app_t *app)
{
    const embedder_cfg_t *c = e->cfg;
    char err[512];
    tn_embed_opts_t eo = tn_embed_opts_default();
    eo.provider = embedder_providers[c->provider];
    eo.model = *c->model ? c->model : NULL;
    eo.dims = (size_t)c->dims;
    eo.url = c->embed_url;
    eo.api_key = c->embed_api_key;
    eo.max_batch = (size_t)c->embed_batch;
    eo.timeout_ms = c->embed_timeout_ms;
    eo.metrics = tn_app_metrics(app);
    if (!(e->emb = tn_embedder_new(&eo, err, sizeof(err)))) {
        TN_LOG(TN_LOG_ERROR, "embedder: %s", err);
        return TN_ERR_CONFIG;
    }
    if (c->vector_store == EMBEDDER_STORE_QDRANT) {
        tn_qdrant_opts_t qo = {c->qdrant_url,        c->qdrant_api_key,
                               c->qdrant_timeout_ms, 4,
                               tn_app_metrics(app),  0 /* default answer cap */};
        if (!(e->qdrant = tn_qdrant_new(&qo, err, sizeof(err)))) {
            TN_LOG(TN_LOG_ERROR, "embedder: %s", err);
            return TN_ERR_CONFIG;
        }
    }
    tn_kafka_opts_t ko = tn_app_kafka_opts(app, "taina-embedder");
    if (!(e->producer = tn_kafka_producer_new(&ko, NULL, err, sizeof(err)))) {
        TN_LOG(TN_LOG_ERROR, "embedder: %s", err);
        return TN_ERR_CONFIG;
    }
    const char *topics[] = {c->topic_in, NULL};
    e->consumer = tn_kafka_consumer_new(&ko, c->group, topics, err, sizeof(err));
    if (!e->consumer) {
        TN_LOG(TN_LOG_ERROR, "embedder: %s", err);
        return TN_ERR_CONFIG;
    }
    return TN_OK;
}

static tn_err_t embedder_init(tn_app_t *app, void *cfgp, void **state)
{
    embedder_t *e = tn_xcalloc(1, sizeof(*e));
    e->cfg = cfgp;
    /* no practical maximum: a batch's payloads and records are far below it */
    tn_buf_init(&e->payloads, (size_t)1 << 30);
    tn_buf_init(&e->values, (size_t)1 << 30);
    tn_app_breaker_init(app, &e->embed_breaker, "embeddings");
    if (e->cfg->vector_store == EMBEDDER_STORE_QDRANT)
        tn_app_breaker_init(app, &e->store_breaker, "qdrant");
    else /* never called: no gauge */
        tn_breaker_init(&e->store_breaker, "qdrant", INT_MAX, 0);
    embedder_metrics_init(&e->m, tn_app_metrics(app));
    /* config: the input schema, the provider, the clients */
    char err[512];
    char *rel = tn_xasprintf("%s/tickets.enriched.schema.json", e->cfg->schemas_dir);
    char *path = tn_app_data_path(rel);
    e->schema_in = tn_schema_load(path, err, sizeof(err));
    free(rel);
    free(path);
    tn_err_t rc = TN_ERR_CONFIG;
    if (!e->schema_in)
        TN_LOG(TN_LOG_ERROR, "embedder: %s", err);
    else if ((rc = clients_new(e, app)) == TN_OK)
        rc = tn_app_http_start(app, NULL, 0, ready, e);
    if (rc != TN_OK) {
        embedder_free(e);
        return rc;
    }
    *state = e;
    return TN_OK;
}

/* The vector store must hold vectors of our size; wait for it while it is down. */
static tn_err_t ensure_store(embedder_t *e)
{
    char err[512];
    size_t dims = tn_embedder_dims(e->emb);
    if (!e->qdrant)
        return TN_OK;
    if (!dims) { /* an openai model of unknown size: ask it once */
        const char *probe = "taina";
        float *v = NULL;
        tn_embed_error_t why = {0};
        while (tn_embed(e->emb, &probe, NULL, 1, &v, &dims, &why) != TN_OK) {
            TN_LOG(TN_LOG_WARN, "embedder: embeddings not available yet: %s", why.msg);
            if (tn_lifecycle_wait(2000))
                return TN_ERR_STOPPED;
        }
        free(v);
    }
    for (int attempt = 1;; attempt++) {
        tn_err_t rc =
            tn_qdrant_ensure_collection(e->qdrant, e->cfg->collection, dims, err, sizeof(err));
        if (rc == TN_OK)
            return TN_OK;
        if (rc != TN_ERR_UNAVAILABLE) {
            TN_LOG(TN_LOG_ERROR, "embedder: refusing to start: %s", err);
            return TN_ERR_CONFIG;
        }
        TN_LOG(TN_LOG_WARN, "embedder: qdrant not available yet: %s", err);
        if (tn_lifecycle_wait(tn_backoff_ms(attempt, 500, 10000) + 100))
            return TN_ERR_STOPPED;
    }
}

static tn_err_t embedder_run(tn_app_t *app, void *state)
{
    (void)app;
    embedder_t *e = state;
    tn_err_t rc = ensure_store(e);
    if (rc == TN_ERR_STOPPED)
        return TN_OK;
    return rc == TN_OK ? embedder_worker_run(e) : rc;
}

static void embedder_shutdown(tn_app_t *app, void *state)
{
    (void)app;
    if (state)
        embedder_free(state);
}

static const tn_app_def_t def = {
    .name = "embedder",
    .summary = "Embeds enriched chunks into Qdrant and tickets.embedded (at least once, "
               "idempotent)",
    .features = TN_APP_HTTP | TN_APP_KAFKA | TN_APP_BREAKER,
    .http_port = "8081",
    .keys = embedder_keys,
    .cfg_size = sizeof(embedder_cfg_t),
    .init = embedder_init,
    .run = embedder_run,
    .shutdown = embedder_shutdown,
};

int main(int argc, char **argv)
{
    tn_app_def_t d = def;
    d.nkeys = embedder_nkeys;
    return tn_app_main(&d, argc, argv, environ);
}
