/* rag: the vector search backends. local: a feeder thread materializes tickets.embedded (every
 * partition from the beginning, no group) into an in-memory exact vecstore; the service is
 * ready once it read what was on the topic at start. qdrant: the common client, the tenant
 * filter always applied.
 * TAINA_RAG_LOCAL_SEED_FILE (a bench and operations aid) names an NDJSON file of
 * tickets.embedded record values that the feeder applies, through the same parsing path as the
 * topic's records, before it reads the topic: a snapshot larger than the topic can carry (e.g.
 * devstack's ~5 MB per partition) loads without Kafka; the topic's records, read next from the
 * beginning, still apply on top, and /ready waits for both.
 * Concurrent local searches share one scan (tn_vecstore_scan_start): a thread reads the matrix
 * round and round in blocks of RAG_SCAN_BLOCK_ROWS; a search joins at the next block, leaves after
 * one round, and gets the same hits as tn_vecstore_search. At most rag_coalesce_max searches are in
 * the scan at once; rag_coalesce_window_us 0 (or rag_coalesce_max 1) answers each search alone in
 * its own thread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "rag.h"
#include "taina/clock.h"
#include "taina/log.h"
#include "taina/mem.h"

#define RAG_QDRANT_MAX_RESPONSE ((size_t)4 << 20) /* bytes of one search answer at most */
/* Rows a block of the shared scan: a search waits for the block under way before it joins (4096
 * x 384 int8 = 1.5 MB, ~0.1-0.2 ms), and the scan thread takes the queue's lock once a block. */
#define RAG_SCAN_BLOCK_ROWS 4096

/* Threads of the shared scan. One: the scan then takes one core while searches are in flight and
 * leaves the other to the HTTP threads (and, in the bench, wrk). Two (each reading half the rows)
 * made rounds shorter on an idle machine but, since a round costs the same however few lanes are
 * busy, they took ~180% CPU under wrk and the tail was no better: 100k /v1/search p99 20-59 ms
 * against 17-25 ms with one (services/rag/README.md, Figures). */
#define RAG_SCAN_THREADS 1

static const char *sfield(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* Apply one tickets.embedded record (its JSON value) to the local store: the one parsing path
 * of the topic's records and of the seed file's lines. */
static void apply(rag_t *r, const void *value, size_t len, int *warned)
{
    json_t *v = json_loadb(value, len, 0, NULL);
    const char *tenant = sfield(v, "tenant_id"), *ticket = sfield(v, "ticket_id");
    if (!tenant || !ticket) {
        json_decref(v);
        return;
    }
    if (json_is_true(json_object_get(v, "deleted"))) {
        tn_vecstore_delete_ticket(r->local, tenant, ticket);
        json_decref(v);
        return;
    }
    const char *model = sfield(v, "model"), *b64 = sfield(v, "vector");
    size_t dims = 0;
    float *vec = b64 ? tn_embed_vector_from_b64(b64, strlen(b64), &dims) : NULL;
    if (!vec || dims != tn_vecstore_dims(r->local) || !model ||
        strcmp(model, tn_embedder_model(r->emb)) != 0) {
        if (!*warned) {
            TN_LOG(TN_LOG_ERROR,
                   "rag: %s has vectors of model %s and %zu dims; this service embeds questions "
                   "with %s (%zu dims): such records are not searchable (re-embed, or configure "
                   "the same model)",
                   r->cfg->topic_embedded, model ? model : "?", dims, tn_embedder_model(r->emb),
                   tn_vecstore_dims(r->local));
            *warned = 1;
        }
        free(vec);
        json_decref(v);
        return;
    }
    json_t *jc = json_object_get(v, "chunk_index");
    tn_vec_payload_t p = {tenant,
                          ticket,
                          (uint32_t)json_integer_value(jc),
                          sfield(v, "title"),
                          sfield(v, "text") ? sfield(v, "text") : "",
                          sfield(v, "lang"),
                          sfield(v, "category"),
                          sfield(v, "source"),
                          (uint32_t)json_integer_value(json_object_get(v, "start")),
                          (uint32_t)json_integer_value(json_object_get(v, "end"))};
    tn_vecstore_put(r->local, &p, vec);
    json_t *cc = json_object_get(v, "chunk_count");
    if (json_is_integer(cc))
        tn_vecstore_trim(r->local, tenant, ticket, (uint32_t)json_integer_value(cc));
    free(vec);
    json_decref(v);
}

static void index_gauges(rag_t *r)
{
    tn_vecstore_stats_t st;
    tn_vecstore_stats(r->local, &st);
    tn_metric_set(r->m.index, TN_LABELS("chunks"), (double)st.live);
    tn_metric_set(r->m.index, TN_LABELS("rows"), (double)st.rows);
    tn_metric_set(r->m.index, TN_LABELS("vector_bytes"), (double)st.vector_bytes);
    tn_metric_set(r->m.index, TN_LABELS("payload_bytes"), (double)st.payload_bytes);
}

/* Apply the seed file's lines (one record value each; blank lines skipped). */
static void seed(rag_t *r, int *warned)
{
    char *line = NULL;
    size_t cap = 0, count = 0;
    ssize_t n;
    double t0 = tn_clock_mono_s();
    while (!atomic_load(&r->stop_feeder) && (n = getline(&line, &cap, r->seed)) >= 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            n--;
        if (!n)
            continue;
        apply(r, line, (size_t)n, warned);
        if (++count % 10000 == 0)
            index_gauges(r);
    }
    if (ferror(r->seed))
        TN_LOG(TN_LOG_ERROR, "rag: reading %s: %s", r->cfg->local_seed_file, strerror(errno));
    free(line);
    fclose(r->seed);
    r->seed = NULL;
    index_gauges(r);
    TN_LOG(TN_LOG_INFO, "rag: %zu records of the seed file %s applied in %.1f s", count,
           r->cfg->local_seed_file, tn_clock_mono_s() - t0);
}

static void *feeder(void *arg)
{
    rag_t *r = arg;
    int warned = 0;
    size_t applied = 0;
    if (r->seed)
        seed(r, &warned);
    while (!atomic_load(&r->stop_feeder)) {
        tn_kafka_msg_t m;
        tn_kafka_error_t e;
        tn_err_t rc = tn_kafka_consumer_poll(r->feed, 200, &m, &e);
        if (rc == TN_OK) {
            apply(r, m.value, m.value_len, &warned);
            tn_kafka_msg_release(&m);
            if (++applied % 1000 == 0)
                index_gauges(r);
        } else {
            index_gauges(r);
        }
        if (!atomic_load(&r->caught_up) && tn_kafka_consumer_reached_ends(r->feed)) {
            atomic_store(&r->caught_up, true);
            index_gauges(r);
            TN_LOG(TN_LOG_INFO, "rag: local index caught up with %s (%zu records read)",
                   r->cfg->topic_embedded, applied);
        }
    }
    return NULL;
}

/* The index must hold vectors of the model the questions are embedded with: look at one point.
 * An empty collection, or Qdrant not answering yet, is no reason to refuse to start. */
static tn_err_t check_qdrant_model(rag_t *r)
{
    char err[512];
    json_t *points = NULL, *next = NULL;
    if (tn_qdrant_scroll(r->qdrant, r->cfg->collection, NULL, 1, 0, NULL, &points, &next, err,
                         sizeof(err)) != TN_OK) {
        TN_LOG(TN_LOG_WARN, "rag: cannot check the index's model yet: %s", err);
        return TN_OK;
    }
    const char *model = sfield(json_object_get(json_array_get(points, 0), "payload"), "model");
    tn_err_t rc = TN_OK;
    if (model && strcmp(model, tn_embedder_model(r->emb)) != 0) {
        TN_LOG(TN_LOG_ERROR,
               "rag: collection %s holds vectors of model %s; questions would be embedded with "
               "%s: configure the index's model (TAINA_EMBED_MODEL) or point to the right "
               "collection",
               r->cfg->collection, model, tn_embedder_model(r->emb));
        rc = TN_ERR_CONFIG;
    }
    json_decref(points);
    json_decref(next);
    return rc;
}

tn_err_t rag_index_start(rag_t *r, tn_app_t *app)
{
    char err[512];
    const rag_cfg_t *c = r->cfg;
    if (c->backend == RAG_BACKEND_QDRANT) {
        /* A search answers at most 50 hits of one chunk each: 4 MiB is plenty. The client's
         * 64 MiB default (for scrolls with vectors) let a broken upstream make every request in
         * flight hold a 64 MiB body and its parse (RSS +150 MB under 4 clients in 0034). */
        tn_qdrant_opts_t qo = {c->qdrant_url,       c->qdrant_api_key,      c->qdrant_timeout_ms, 2,
                               tn_app_metrics(app), RAG_QDRANT_MAX_RESPONSE};
        if (!(r->qdrant = tn_qdrant_new(&qo, err, sizeof(err)))) {
            TN_LOG(TN_LOG_ERROR, "rag: %s", err);
            return TN_ERR_CONFIG;
        }
        atomic_store(&r->caught_up, true);
        return check_qdrant_model(r);
    }
    size_t dims = tn_embedder_dims(r->emb);
    if (!dims) {
        TN_LOG(TN_LOG_ERROR, "rag: the local backend needs TAINA_EMBED_DIMS (the index's size)");
        return TN_ERR_CONFIG;
    }
    if (*c->local_seed_file && !(r->seed = fopen(c->local_seed_file, "r"))) {
        TN_LOG(TN_LOG_ERROR, "rag: rag_local_seed_file %s: %s", c->local_seed_file,
               strerror(errno));
        return TN_ERR_CONFIG;
    }
    r->local = tn_vecstore_new(dims);
    if (c->coalesce_window_us > 0 && c->coalesce_max > 1 &&
        tn_vecstore_scan_start(r->local, (size_t)c->coalesce_max, RAG_SCAN_BLOCK_ROWS,
                               RAG_SCAN_THREADS) != TN_OK) {
        TN_LOG(TN_LOG_ERROR, "rag: cannot start the local index's scan thread");
        return TN_ERR_NOMEM;
    }
    tn_kafka_opts_t ko = tn_app_kafka_opts(app, "taina-rag-index");
    const char *topics[] = {c->topic_embedded, NULL};
    if (!(r->feed = tn_kafka_consumer_new(&ko, NULL, topics, err, sizeof(err)))) {
        TN_LOG(TN_LOG_ERROR, "rag: %s", err);
        return TN_ERR_KAFKA;
    }
    if (tn_kafka_consumer_mark_ends(r->feed, 10000) != TN_OK)
        return TN_ERR_KAFKA;
    if (pthread_create(&r->feeder, NULL, feeder, r) != 0)
        return TN_ERR_NOMEM;
    r->feeder_running = 1;
    return TN_OK;
}

void rag_index_stop(rag_t *r)
{
    atomic_store(&r->stop_feeder, true);
    if (r->feeder_running)
        pthread_join(r->feeder, NULL);
    r->feeder_running = 0;
    if (r->seed)
        fclose(r->seed);
    r->seed = NULL;
    tn_kafka_consumer_destroy(r->feed);
    r->feed = NULL;
    tn_vecstore_destroy(r->local);
    r->local = NULL;
    tn_qdrant_destroy(r->qdrant);
    r->qdrant = NULL;
}

bool rag_index_ready(rag_t *r, char *reason, size_t len)
{
    if (!atomic_load(&r->caught_up)) {
        snprintf(reason, len, "the local index has not read %s up to its end at start yet",
                 r->cfg->topic_embedded);
        return false;
    }
    return true;
}

void rag_hits_free(rag_hit_t *hits, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(hits[i].title);
        free(hits[i].text);
    }
    free(hits);
}

static void copy_str(char *dst, size_t cap, const char *s)
{
    snprintf(dst, cap, "%s", s ? s : "");
}

static tn_err_t search_local(rag_t *r, const float *vec, const rag_filter_t *f, size_t k,
                             rag_hit_t **out, size_t *n)
{
    tn_vec_hit_t *vh = tn_xcalloc(k, sizeof(*vh));
    tn_vec_filter_t vf = {f->tenant_id, f->lang,    f->category,
                          f->ticket_id, f->sources, f->nsources};
    size_t got = tn_vecstore_search_shared(r->local, vec, &vf, k, -2.0f, vh);
    rag_hit_t *h = tn_xcalloc(got ? got : 1, sizeof(*h));
    for (size_t i = 0; i < got; i++) {
        copy_str(h[i].ticket_id, sizeof(h[i].ticket_id), vh[i].ticket_id);
        h[i].chunk_index = vh[i].chunk_index;
        h[i].score = vh[i].score;
        h[i].title = vh[i].title ? tn_xstrdup(vh[i].title) : NULL;
        h[i].text = tn_xstrdup(vh[i].text ? vh[i].text : "");
        copy_str(h[i].lang, sizeof(h[i].lang), vh[i].lang);
        copy_str(h[i].category, sizeof(h[i].category), vh[i].category);
        copy_str(h[i].source, sizeof(h[i].source), vh[i].source);
        h[i].start = vh[i].start;
        h[i].end = vh[i].end;
    }
    tn_vec_hits_free(vh, got);
    free(vh);
    *out = h;
    *n = got;
    return TN_OK;
}

static void must_match(json_t *must, const char *key, const char *value)
{
    if (value)
        json_array_append_new(must,
                              json_pack("{s:s, s:{s:s}}", "key", key, "match", "value", value));
}

static tn_err_t search_qdrant(rag_t *r, const float *vec, size_t dims, const rag_filter_t *f,
                              size_t k, rag_hit_t **out, size_t *n, char *err, size_t errlen)
{
    json_t *must = json_array();
    must_match(must, "tenant_id", f->tenant_id); /* always: the tenant decides what is seen */
    must_match(must, "lang", f->lang);
    must_match(must, "category", f->category);
    must_match(must, "ticket_id", f->ticket_id);
    if (f->nsources == 1) {
        must_match(must, "source", f->sources[0]);
    } else if (f->nsources) {
        json_t *any = json_array();
        for (size_t i = 0; i < f->nsources; i++)
            json_array_append_new(any, json_string(f->sources[i]));
        json_array_append_new(must,
                              json_pack("{s:s, s:{s:o}}", "key", "source", "match", "any", any));
    }
    json_t *filter = json_pack("{s:o}", "must", must);
    tn_qdrant_hit_t *qh = NULL;
    size_t got = 0;
    tn_err_t rc = tn_qdrant_search(r->qdrant, r->cfg->collection, vec, dims, filter, k, -2.0, &qh,
                                   &got, err, errlen);
    json_decref(filter);
    if (rc != TN_OK) /* garbled or oversized answers are Qdrant's fault too (its breaker) */
        return rc == TN_ERR_UNAVAILABLE || rc == TN_ERR_PARSE || rc == TN_ERR_TOO_LARGE
                   ? TN_ERR_UNAVAILABLE
                   : TN_ERR_UPSTREAM;
    rag_hit_t *h = tn_xcalloc(got ? got : 1, sizeof(*h));
    size_t m = 0;
    for (size_t i = 0; i < got; i++) {
        const json_t *p = qh[i].payload;
        if (!p || strcmp(sfield(p, "tenant_id") ? sfield(p, "tenant_id") : "", f->tenant_id))
            continue; /* belt and braces: never another tenant's chunk */
        copy_str(h[m].ticket_id, sizeof(h[m].ticket_id), sfield(p, "ticket_id"));
        h[m].chunk_index = (uint32_t)json_integer_value(json_object_get(p, "chunk_index"));
        h[m].score = (float)qh[i].score;
        h[m].title = sfield(p, "title") ? tn_xstrdup(sfield(p, "title")) : NULL;
        h[m].text = tn_xstrdup(sfield(p, "text") ? sfield(p, "text") : "");
        copy_str(h[m].lang, sizeof(h[m].lang), sfield(p, "lang"));
        copy_str(h[m].category, sizeof(h[m].category), sfield(p, "category"));
        copy_str(h[m].source, sizeof(h[m].source), sfield(p, "source"));
        h[m].start = (uint32_t)json_integer_value(json_object_get(p, "start"));
        h[m].end = (uint32_t)json_integer_value(json_object_get(p, "end"));
        m++;
    }
    tn_qdrant_hits_free(qh, got);
    *out = h;
    *n = m;
    return TN_OK;
}

tn_err_t rag_index_search(rag_t *r, const float *vec, size_t dims, const rag_filter_t *f, size_t k,
                          rag_hit_t **hits, size_t *n, char *err, size_t errlen)
{
    TN_ASSERT(f->tenant_id);
    if (r->qdrant)
        return search_qdrant(r, vec, dims, f, k, hits, n, err, errlen);
    return search_local(r, vec, f, k, hits, n);
}
