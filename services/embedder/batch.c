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
#include "taina/text.h"
#include "taina/trace.h"

/* The namespace of chunk point ids: UUIDv5(URL namespace, "https://taina.dev/chunks"). */
#define CHUNK_NS "7441305e-0cc3-59c8-96eb-9538dae643ca"

/* A chunk written without its text (ingest_chunk_text off) gets it from its code-point offsets
 * into the record's text; -1 with the reason in r->detail when they are not a span of it. */
static int chunk_texts(embedder_rec_t *r)
{
    const json_t *t = json_object_get(r->doc, "text");
    const char *text = json_string_value(t);
    size_t len = json_string_length(t);
    json_t *chunks = json_object_get(r->doc, "chunks"), *c;
    tn_text_pos_t at = {0, 0}; /* chunks come in text order: one pass over the text */
    size_t k;
    json_array_foreach(chunks, k, c)
    {
        if (json_object_get(c, "text"))
            continue;
        json_int_t start = json_integer_value(json_object_get(c, "start"));
        json_int_t end = json_integer_value(json_object_get(c, "end"));
        size_t bs, be;
        if (!text || tn_text_cp_span(text, len, (size_t)start, (size_t)end, &at, &bs, &be) != 0) {
            snprintf(r->detail, sizeof(r->detail),
                     "/chunks/%zu: [%" JSON_INTEGER_FORMAT ", %" JSON_INTEGER_FORMAT
                     ") is not a span of the text (%s)",
                     k, start, end, text ? "code points" : "no text");
            return -1;
        }
        json_object_set_new(c, "text", json_stringn(text + bs, be - bs));
    }
    return 0;
}

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
    int invalid = tn_schema_validate(e->schema_in, r->doc, &se, 1, &nse) != TN_OK;
    if (invalid && nse)
        tn_schema_error_format(&se, r->detail, sizeof(r->detail));
    if (invalid || chunk_texts(r) != 0) { /* chunk_texts() says why in r->detail */
        r->reason = "schema";
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

/* JSON text is written straight into buffers (no trees, no dumps): strings through
 * tn_buf_add_json_str, integers formatted, anything else (rare) dumped by jansson. The buffers
 * have no practical maximum, so appends cannot fail. */
static void add_value(tn_buf_t *b, const json_t *v)
{
    if (json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v)) {
        (void)tn_buf_add_json_str(b, json_string_value(v));
    } else if (json_is_integer(v)) {
        (void)tn_buf_addf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else {
        char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        (void)tn_buf_adds(b, t ? t : "null");
        free(t);
    }
}

/* ,"key": (the caller opened the object with its first member) */
static void add_key(tn_buf_t *b, const char *key)
{
    (void)tn_buf_adds(b, ",\"");
    (void)tn_buf_adds(b, key);
    (void)tn_buf_adds(b, "\":");
}

/* ,"key":VALUE when v is set (json_object_set() of NULL set nothing either) */
static void add_field(tn_buf_t *b, const char *key, const json_t *v)
{
    if (!v)
        return;
    add_key(b, key);
    add_value(b, v);
}

/* The fields a point's payload and a chunk's record share, after a first member: the ticket's
 * title lang category source content_hash (when set; source lets rag keep answers to published
 * documents), the chunk's text start end, and the model. */
static void add_chunk_fields(const embedder_t *e, tn_buf_t *b, const json_t *doc,
                             const json_t *chunk)
{
    static const char *const copy[] = {"title", "lang", "category", "source", "content_hash"};
    for (size_t i = 0; i < TN_ARRAY_LEN(copy); i++)
        add_field(b, copy[i], json_object_get(doc, copy[i]));
    add_field(b, "text", json_object_get(chunk, "text"));
    add_field(b, "start", json_object_get(chunk, "start"));
    add_field(b, "end", json_object_get(chunk, "end"));
    add_key(b, "model");
    (void)tn_buf_add_json_str(b, tn_embedder_model(e->emb));
}

/* A point's payload: tenant_id ticket_id chunk_index, then the shared fields. */
static void chunk_payload(const embedder_t *e, tn_buf_t *b, const json_t *doc, const json_t *chunk,
                          size_t idx)
{
    (void)tn_buf_adds(b, "{\"chunk_index\":");
    (void)tn_buf_add_uint(b, idx);
    add_field(b, "tenant_id", json_object_get(doc, "tenant_id"));
    add_field(b, "ticket_id", json_object_get(doc, "ticket_id"));
    add_chunk_fields(e, b, doc, chunk);
    (void)tn_buf_adds(b, "}");
}

/* The filter of the points of (tenant, ticket) with chunk_index >= from. */
static json_t *stale_filter(const json_t *doc, size_t from)
{
    return json_pack("{s:[{s:s, s:{s:s}}, {s:s, s:{s:s}}, {s:s, s:{s:I}}]}", "must", "key",
                     "tenant_id", "match", "value", sfield(doc, "tenant_id"), "key", "ticket_id",
                     "match", "value", sfield(doc, "ticket_id"), "key", "chunk_index", "range",
                     "gte", (json_int_t)from);
}

/* Vector store: the open batch's points (payloads in e->payloads, vectors borrowed from
 * @p vecs) and the filter of the points its tickets no longer have (all of them for a deleted
 * ticket). */
void embedder_points_build(embedder_t *e, const float *vecs, size_t dims, embedder_points_t *p)
{
    size_t cap = e->nchunks ? e->nchunks : 1;
    p->pts = tn_xcalloc(cap, sizeof(*p->pts));
    size_t *offs = tn_xcalloc(cap, sizeof(*offs));
    p->ids = tn_xcalloc(cap, 37);
    tn_buf_t *b = &e->payloads; /* every payload, NUL-separated; kept across batches */
    tn_buf_reset(b);
    p->should = json_array();
    size_t n = 0;
    for (size_t i = 0; i < e->nrecs; i++) {
        const embedder_rec_t *r = &e->recs[i];
        if (!r->doc || superseded(e, i))
            continue;
        const json_t *chunks = json_object_get(r->doc, "chunks");
        for (size_t k = 0; k < r->nchunks; k++) {
            point_id(r->doc, k, p->ids[n]);
            offs[n] = b->len;
            chunk_payload(e, b, r->doc, json_array_get(chunks, k), k);
            (void)tn_buf_add(b, "", 1);
            p->pts[n] = (tn_qdrant_point_t){p->ids[n], vecs + (r->first_chunk + k) * dims, dims,
                                            NULL, NULL};
            n++;
        }
        json_array_append_new(p->should, stale_filter(r->doc, r->nchunks));
    }
    for (size_t i = 0; i < n; i++) /* the buffer moved while it grew */
        p->pts[i].payload_json = b->data + offs[i];
    p->n = n;
    free(offs);
}

/* Upsert the points (wait=true), then delete the stale ones. Uses e->qdrant and e->cfg only, so
 * it may run on the store thread while the main thread gathers and embeds the next batch. */
tn_err_t embedder_points_send(embedder_t *e, const embedder_points_t *p, char *errbuf,
                              size_t errlen)
{
    tn_err_t rc = TN_OK;
    if (p->n)
        rc = tn_qdrant_upsert(e->qdrant, e->cfg->collection, p->pts, p->n, errbuf, errlen);
    if (rc == TN_OK && json_array_size(p->should)) {
        json_t *filter = json_pack("{s:O}", "should", p->should);
        rc = tn_qdrant_delete_filter(e->qdrant, e->cfg->collection, filter, errbuf, errlen);
        json_decref(filter);
    }
    return rc;
}

void embedder_points_cleanup(embedder_points_t *p)
{
    json_decref(p->should);
    free(p->pts);
    free(p->ids);
    memset(p, 0, sizeof(*p));
}

static tn_err_t write_points(embedder_t *e, const float *vecs, size_t dims, char *errbuf,
                             size_t errlen)
{
    embedder_points_t p;
    embedder_points_build(e, vecs, dims, &p);
    tn_err_t rc = embedder_points_send(e, &p, errbuf, errlen);
    embedder_points_cleanup(&p);
    return rc;
}

/* One tickets.embedded value per chunk (or one deleted marker), produced and acknowledged; with
 * @p started, produced only: the handle to wait on is left there. */
static tn_err_t write_records(embedder_t *e, const float *vecs, size_t dims,
                              tn_kafka_batch_t **started, char *errbuf, size_t errlen)
{
    size_t cap = e->nchunks + e->nrecs + 1, n = 0;
    tn_kafka_record_t *recs = tn_xcalloc(cap, sizeof(*recs));
    size_t *offs = tn_xcalloc(cap, sizeof(*offs));
    tn_err_t *res = tn_xcalloc(cap, sizeof(*res));
    char now[40];
    tn_clock_rfc3339(now, sizeof(now), tn_clock_wall_ms());
    tn_kafka_header_t *hdrs = tn_xcalloc(e->nrecs + 1, 2 * sizeof(*hdrs));
    char(*tps)[64] = tn_xcalloc(e->nrecs + 1, 64);
    tn_buf_t *b = &e->values; /* every value, back to back; kept across batches */
    tn_buf_reset(b);
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
            offs[n] = b->len;
            (void)tn_buf_adds(b, "{\"schema_version\":1,\"ticket_id\":");
            (void)tn_buf_add_json_str(b, tid);
            add_key(b, "tenant_id");
            (void)tn_buf_add_json_str(b, sfield(r->doc, "tenant_id"));
            (void)tn_buf_addf(b, ",\"chunk_index\":%zu,\"chunk_count\":%zu,\"embedded_at\":", k,
                              deleted ? (size_t)0 : r->nchunks);
            (void)tn_buf_add_json_str(b, now);
            if (deleted) {
                (void)tn_buf_adds(b, ",\"deleted\":true");
            } else {
                char id[37];
                point_id(r->doc, k, id);
                add_key(b, "point_id");
                (void)tn_buf_add_json_str(b, id);
                (void)tn_buf_addf(b, ",\"dims\":%zu,\"vector\":\"", dims);
                char *b64 = tn_embed_vector_b64(vecs + (r->first_chunk + k) * dims, dims);
                (void)tn_buf_adds(b, b64);
                free(b64);
                (void)tn_buf_adds(b, "\"");
                add_chunk_fields(e, b, r->doc, json_array_get(chunks, k));
            }
            (void)tn_buf_adds(b, "}");
            recs[n] = (tn_kafka_record_t){e->cfg->topic_out, -1, tid, strlen(tid), NULL,
                                          b->len - offs[n],  h,  2};
            n++;
        }
    }
    for (size_t i = 0; i < n; i++) /* the buffer moved while it grew */
        recs[i].value = b->data + offs[i];
    tn_err_t rc = TN_OK;
    if (started)
        *started = n ? tn_kafka_produce_start(e->producer, recs, n, 30000) : NULL;
    else if (n)
        rc = tn_kafka_produce_sync(e->producer, recs, n, res, 30000);
    if (rc != TN_OK)
        snprintf(errbuf, errlen, "%s did not take the records: %s", e->cfg->topic_out,
                 tn_err_str(rc));
    free(offs);
    free(recs);
    free(res);
    free(hdrs);
    free(tps);
    return rc == TN_OK ? TN_OK : TN_ERR_KAFKA;
}

tn_err_t embedder_batch_dead_letters(embedder_t *e, char *errbuf, size_t errlen)
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

tn_err_t embedder_batch_embed(embedder_t *e, float **vecs, size_t *dims, char *errbuf,
                              size_t errlen)
{
    *vecs = NULL;
    *dims = 0;
    if (e->nchunks && !tn_breaker_allow(&e->embed_breaker)) {
        snprintf(errbuf, errlen, "embeddings: circuit open");
        return TN_AGAIN;
    }
    tn_err_t rc = embed_all(e, vecs, dims, errbuf, errlen);
    if (e->nchunks) {
        if (rc == TN_ERR_UNAVAILABLE)
            tn_breaker_failure(&e->embed_breaker);
        else
            tn_breaker_success(&e->embed_breaker);
    }
    if (rc != TN_OK) {
        free(*vecs);
        *vecs = NULL;
    }
    return rc;
}

tn_err_t embedder_batch_write(embedder_t *e, bool sync, const char **stage, char *errbuf,
                              size_t errlen)
{
    float *vecs = NULL;
    size_t dims = 0;
    tn_err_t rc;
    *stage = "embed";
    rc = embedder_batch_embed(e, &vecs, &dims, errbuf, errlen);
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
        return embedder_batch_dead_letters(e, errbuf, errlen);
    }
    rc = write_records(e, vecs, dims, NULL, errbuf, errlen);
    free(vecs);
    if (rc == TN_OK)
        rc = embedder_batch_dead_letters(e, errbuf, errlen);
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
