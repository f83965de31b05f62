/* embedder: one batch of enriched records -> embedded chunks in Qdrant and on tickets.embedded.
 * Every write is idempotent (point id = UUIDv5 of tenant, ticket and chunk index), so a batch
 * that failed half-way is simply written again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedder.h"
#include "taina/clock.h"
#include "taina/log.h"
#include "taina/mem.h"
#include "taina/trace.h"

/* The namespace of chunk point ids: UUIDv5(URL namespace, "https://taina.dev/chunks"). */
#define CHUNK_NS "7441305e-0cc3-59c8-96eb-9538dae643ca"

void embedder_batch_add(embedder_t *e, tn_kafka_msg_t *msg)
{
    if (e->nrecs == e->caprecs) {
        e->caprecs = e->caprecs ? e->caprecs * 2 : 64;
        e->recs = tn_xrealloc(e->recs, e->caprecs * sizeof(*e->recs));
    }
    embedder_rec_t *r = &e->recs[e->nrecs++];
    memset(r, 0, sizeof(*r));
    r->msg = *msg;
    memset(msg, 0, sizeof(*msg));
    json_error_t jerr;
    r->doc = json_loadb(r->msg.value, r->msg.value_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!r->doc) {
        r->reason = "json";
        snprintf(r->detail, sizeof(r->detail), "line %d column %d: %s", jerr.line, jerr.column,
                 jerr.text);
        return;
    }
    tn_schema_error_t se;
    size_t nse = 0;
    if (tn_schema_validate(e->schema_in, r->doc, &se, 1, &nse) != TN_OK) {
        r->reason = "schema";
        if (nse)
            tn_schema_error_format(&se, r->detail, sizeof(r->detail));
        json_decref(r->doc);
        r->doc = NULL;
        return;
    }
    r->first_chunk = e->nchunks;
    r->nchunks = json_array_size(json_object_get(r->doc, "chunks"));
    e->nchunks += r->nchunks;
}

void embedder_batch_clear(embedder_t *e)
{
    for (size_t i = 0; i < e->nrecs; i++) {
        tn_kafka_msg_release(&e->recs[i].msg);
        json_decref(e->recs[i].doc);
    }
    e->nrecs = 0;
    e->nchunks = 0;
}

static const char *sfield(const json_t *doc, const char *name)
{
    return json_string_value(json_object_get(doc, name));
}

/* A later record of the same ticket in this batch supersedes this one. */
static int superseded(const embedder_t *e, size_t i)
{
    const json_t *a = e->recs[i].doc;
    for (size_t j = i + 1; j < e->nrecs; j++) {
        const json_t *b = e->recs[j].doc;
        if (b && !strcmp(sfield(a, "ticket_id"), sfield(b, "ticket_id")) &&
            !strcmp(sfield(a, "tenant_id"), sfield(b, "tenant_id")))
            return 1;
    }
    return 0;
}

static void point_id(const json_t *doc, size_t idx, char out[37])
{
    char name[256];
    int n = snprintf(name, sizeof(name), "%s/%s/%zu", sfield(doc, "tenant_id"),
                     sfield(doc, "ticket_id"), idx);
    tn_uuid5(CHUNK_NS, name, (size_t)n, out);
}

static json_t *chunk_payload(const embedder_t *e, const json_t *doc, const json_t *chunk,
                             size_t idx)
{
    json_t *p = json_object();
    static const char *const copy[] = {"tenant_id", "ticket_id", "title",
                                       "lang",      "category",  "content_hash"};
    for (size_t i = 0; i < TN_ARRAY_LEN(copy); i++) {
        json_t *v = json_object_get(doc, copy[i]);
        if (v)
            json_object_set(p, copy[i], v);
    }
    json_object_set_new(p, "chunk_index", json_integer((json_int_t)idx));
    json_object_set(p, "text", json_object_get(chunk, "text"));
    json_object_set(p, "start", json_object_get(chunk, "start"));
    json_object_set(p, "end", json_object_get(chunk, "end"));
    json_object_set_new(p, "model", json_string(tn_embedder_model(e->emb)));
    return p;
}

/* The filter of the points of (tenant, ticket) with chunk_index >= from. */
static json_t *stale_filter(const json_t *doc, size_t from)
{
    return json_pack("{s:[{s:s, s:{s:s}}, {s:s, s:{s:s}}, {s:s, s:{s:I}}]}", "must", "key",
                     "tenant_id", "match", "value", sfield(doc, "tenant_id"), "key", "ticket_id",
                     "match", "value", sfield(doc, "ticket_id"), "key", "chunk_index", "range",
                     "gte", (json_int_t)from);
}

/* Vector store: upsert the chunks' points, then remove the points a ticket no longer has (all
 * of them for a deleted ticket). */
static tn_err_t write_points(embedder_t *e, const float *vecs, size_t dims, char *errbuf,
                             size_t errlen)
{
    tn_qdrant_point_t *pts = tn_xcalloc(e->nchunks ? e->nchunks : 1, sizeof(*pts));
    json_t **payloads = tn_xcalloc(e->nchunks ? e->nchunks : 1, sizeof(*payloads));
    char(*ids)[37] = tn_xcalloc(e->nchunks ? e->nchunks : 1, 37);
    json_t *should = json_array();
    size_t n = 0;
    for (size_t i = 0; i < e->nrecs; i++) {
        const embedder_rec_t *r = &e->recs[i];
        if (!r->doc || superseded(e, i))
            continue;
        const json_t *chunks = json_object_get(r->doc, "chunks");
        for (size_t k = 0; k < r->nchunks; k++) {
            point_id(r->doc, k, ids[n]);
            payloads[n] = chunk_payload(e, r->doc, json_array_get(chunks, k), k);
            pts[n] =
                (tn_qdrant_point_t){ids[n], vecs + (r->first_chunk + k) * dims, dims, payloads[n]};
            n++;
        }
        json_array_append_new(should, stale_filter(r->doc, r->nchunks));
    }
    tn_err_t rc = TN_OK;
    if (n)
        rc = tn_qdrant_upsert(e->qdrant, e->cfg->collection, pts, n, errbuf, errlen);
    if (rc == TN_OK && json_array_size(should)) {
        json_t *filter = json_pack("{s:O}", "should", should);
        rc = tn_qdrant_delete_filter(e->qdrant, e->cfg->collection, filter, errbuf, errlen);
        json_decref(filter);
    }
    for (size_t i = 0; i < n; i++)
        json_decref(payloads[i]);
    json_decref(should);
    free(payloads);
    free(pts);
    free(ids);
    return rc;
}

/* One tickets.embedded value per chunk (or one deleted marker), produced and acknowledged; with
 * @p started, produced only: the handle to wait on is left there. */
static tn_err_t write_records(embedder_t *e, const float *vecs, size_t dims,
                              tn_kafka_batch_t **started, char *errbuf, size_t errlen)
{
    size_t cap = e->nchunks + e->nrecs + 1, n = 0;
    tn_kafka_record_t *recs = tn_xcalloc(cap, sizeof(*recs));
    char **values = tn_xcalloc(cap, sizeof(*values));
    tn_err_t *res = tn_xcalloc(cap, sizeof(*res));
    char now[40], tp[64];
    tn_clock_rfc3339(now, sizeof(now), tn_clock_wall_ms());
    tn_kafka_header_t *hdrs = tn_xcalloc(e->nrecs + 1, 2 * sizeof(*hdrs));
    char(*tps)[64] = tn_xcalloc(e->nrecs + 1, 64);
    (void)tp;
    for (size_t i = 0; i < e->nrecs; i++) {
        const embedder_rec_t *r = &e->recs[i];
        if (!r->doc || superseded(e, i))
            continue;
        tn_trace_t trace;
        tn_kafka_msg_trace(&r->msg, &trace);
        tn_kafka_header_t *h = &hdrs[2 * i];
        h[0] = tn_kafka_trace_header(&trace, tps[i], 64);
        h[1] = (tn_kafka_header_t){TN_KAFKA_H_SCHEMA, "tickets.embedded/1", 18};
        const char *tid = sfield(r->doc, "ticket_id");
        int deleted = json_is_true(json_object_get(r->doc, "deleted"));
        const json_t *chunks = json_object_get(r->doc, "chunks");
        for (size_t k = 0; k < (deleted ? 1 : r->nchunks); k++) {
            json_t *v = json_pack("{s:i, s:s, s:s, s:I, s:I, s:s}", "schema_version", 1,
                                  "ticket_id", tid, "tenant_id", sfield(r->doc, "tenant_id"),
                                  "chunk_index", (json_int_t)k, "chunk_count",
                                  (json_int_t)(deleted ? 0 : r->nchunks), "embedded_at", now);
            if (deleted) {
                json_object_set_new(v, "deleted", json_true());
            } else {
                char id[37];
                const json_t *c = json_array_get(chunks, k);
                point_id(r->doc, k, id);
                char *b64 = tn_embed_vector_b64(vecs + (r->first_chunk + k) * dims, dims);
                json_object_set_new(v, "point_id", json_string(id));
                json_object_set_new(v, "model", json_string(tn_embedder_model(e->emb)));
                json_object_set_new(v, "dims", json_integer((json_int_t)dims));
                json_object_set_new(v, "vector", json_string(b64));
                free(b64);
                json_object_set(v, "text", json_object_get(c, "text"));
                json_object_set(v, "start", json_object_get(c, "start"));
                json_object_set(v, "end", json_object_get(c, "end"));
                static const char *const copy[] = {"title", "lang", "category", "content_hash"};
                for (size_t j = 0; j < TN_ARRAY_LEN(copy); j++) {
                    json_t *x = json_object_get(r->doc, copy[j]);
                    if (x)
                        json_object_set(v, copy[j], x);
                }
            }
            values[n] = json_dumps(v, JSON_COMPACT);
            json_decref(v);
            recs[n] = (tn_kafka_record_t){e->cfg->topic_out, -1, tid, strlen(tid), values[n],
                                          strlen(values[n]), h,  2};
            n++;
        }
    }
    tn_err_t rc = TN_OK;
    if (started)
        *started = n ? tn_kafka_produce_start(e->producer, recs, n, 30000) : NULL;
    else if (n)
        rc = tn_kafka_produce_sync(e->producer, recs, n, res, 30000);
    if (rc != TN_OK)
        snprintf(errbuf, errlen, "%s did not take the records: %s", e->cfg->topic_out,
                 tn_err_str(rc));
    for (size_t i = 0; i < n; i++)
        free(values[i]);
    free(values);
    free(recs);
    free(res);
    free(hdrs);
    free(tps);
    return rc == TN_OK ? TN_OK : TN_ERR_KAFKA;
}

static tn_err_t write_dead_letters(embedder_t *e, char *errbuf, size_t errlen)
{
    int any = 0;
    for (size_t i = 0; i < e->nrecs; i++) {
        embedder_rec_t *r = &e->recs[i];
        if (r->doc || !r->reason)
            continue;
        tn_kafka_error_t ke;
        if (tn_kafka_dlq_send(e->producer, e->cfg->topic_dlq, &r->msg, r->reason, r->detail, &ke) !=
            TN_OK) {
            snprintf(errbuf, errlen, "dead letter: %s", ke.msg);
            return TN_ERR_KAFKA;
        }
        any = 1;
    }
    if (any && tn_kafka_producer_flush(e->producer, 30000) != TN_OK) {
        snprintf(errbuf, errlen, "dead letters not acknowledged");
        return TN_ERR_KAFKA;
    }
    return TN_OK;
}

/* Embed every chunk of the batch (records superseded later in the batch included: simpler,
 * and rare). */
static tn_err_t embed_all(embedder_t *e, float **vecs, size_t *dims, char *errbuf, size_t errlen)
{
    *vecs = NULL;
    *dims = tn_embedder_dims(e->emb);
    if (!e->nchunks)
        return TN_OK;
    const char **texts = tn_xcalloc(e->nchunks, sizeof(*texts));
    size_t *lens = tn_xcalloc(e->nchunks, sizeof(*lens));
    for (size_t i = 0; i < e->nrecs; i++) {
        const embedder_rec_t *r = &e->recs[i];
        const json_t *chunks = r->doc ? json_object_get(r->doc, "chunks") : NULL;
        for (size_t k = 0; chunks && k < r->nchunks; k++) {
            const json_t *t = json_object_get(json_array_get(chunks, k), "text");
            texts[r->first_chunk + k] = json_string_value(t);
            lens[r->first_chunk + k] = json_string_length(t);
        }
    }
    tn_embed_error_t why = {0};
    tn_err_t rc = tn_embed(e->emb, texts, lens, e->nchunks, vecs, dims, &why);
    free(texts);
    free(lens);
    if (rc != TN_OK)
        snprintf(errbuf, errlen, "embeddings: %s", why.msg);
    return rc == TN_ERR_PARSE ? TN_ERR_UNAVAILABLE : rc;
}

tn_err_t embedder_batch_write(embedder_t *e, bool sync, const char **stage, char *errbuf,
                              size_t errlen)
{
    float *vecs = NULL;
    size_t dims = 0;
    tn_err_t rc;
    *stage = "embed";
    if (e->nchunks && !tn_breaker_allow(&e->embed_breaker)) {
        snprintf(errbuf, errlen, "embeddings: circuit open");
        return TN_AGAIN;
    }
    rc = embed_all(e, &vecs, &dims, errbuf, errlen);
    if (e->nchunks) {
        if (rc == TN_ERR_UNAVAILABLE)
            tn_breaker_failure(&e->embed_breaker);
        else
            tn_breaker_success(&e->embed_breaker);
    }
    if (rc != TN_OK)
        return rc;
    if (e->qdrant) {
        *stage = "store";
        if (!tn_breaker_allow(&e->store_breaker)) {
            free(vecs);
            snprintf(errbuf, errlen, "qdrant: circuit open");
            return TN_AGAIN;
        }
        rc = write_points(e, vecs, dims, errbuf, errlen);
        if (rc == TN_ERR_UNAVAILABLE)
            tn_breaker_failure(&e->store_breaker);
        else
            tn_breaker_success(&e->store_breaker);
        if (rc != TN_OK) {
            free(vecs);
            return rc == TN_ERR_UNAVAILABLE ? rc : TN_ERR_UNAVAILABLE;
        }
    }
    *stage = "kafka";
    if (!sync) { /* the records go out with embedder_batch_start_records() */
        free(e->vecs);
        e->vecs = vecs;
        e->dims = dims;
        return write_dead_letters(e, errbuf, errlen);
    }
    rc = write_records(e, vecs, dims, NULL, errbuf, errlen);
    free(vecs);
    if (rc == TN_OK)
        rc = write_dead_letters(e, errbuf, errlen);
    return rc;
}

tn_kafka_batch_t *embedder_batch_start_records(embedder_t *e)
{
    tn_kafka_batch_t *b = NULL;
    char err[256];
    write_records(e, e->vecs, e->dims, &b, err, sizeof(err));
    free(e->vecs);
    e->vecs = NULL;
    return b;
}
