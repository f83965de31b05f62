/* embedder: tickets.enriched -> vectors in Qdrant and on tickets.embedded, at least once with
 * idempotent writes. Shared declarations of the service's files:
 *   main.c    the table of contents: config, wiring, loop, shutdown
 *   config.c  the config keys and the metric families
 *   batch.c   one batch: parse records, embed chunks, write points and records
 *   worker.c  the loop: gather batches, retry with backoff behind circuit breakers, commit
 */
#ifndef EMBEDDER_H
#define EMBEDDER_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "taina/buf.h"
#include "taina/app.h"
#include "taina/breaker.h"
#include "taina/embed.h"
#include "taina/kafka.h"
#include "taina/metrics.h"
#include "taina/qdrant.h"
#include "taina/schema.h"

typedef struct embedder_cfg {
    char *topic_in, *topic_out, *topic_dlq, *group;
    int64_t batch_chunks, batch_linger_ms;
    int64_t max_attempts, retry_base_ms, retry_cap_ms;
    char *schemas_dir;
    int provider; /* index in embedder_providers */
    char *model, *embed_url, *embed_api_key;
    int64_t dims, embed_batch, embed_timeout_ms;
    int vector_store; /* EMBEDDER_STORE_* */
    char *qdrant_url, *qdrant_api_key, *collection;
    int64_t qdrant_timeout_ms;
} embedder_cfg_t;

enum { EMBEDDER_STORE_NONE, EMBEDDER_STORE_QDRANT };
extern const char *const embedder_providers[];
extern const tn_cfg_key_t embedder_keys[];
extern const size_t embedder_nkeys;

typedef struct embedder_metrics {
    tn_metric_t *records; /* {outcome}: embedded, deleted, dlq */
    tn_metric_t *chunks;  /* chunks embedded and written */
    tn_metric_t *dlq;     /* {reason} */
    tn_metric_t *batch;   /* histogram: chunks per batch */
    tn_metric_t *batch_s; /* histogram: seconds per batch (embed + write) */
    tn_metric_t *retries; /* {stage} */
} embedder_metrics_t;

/* One consumed record in the open batch. */
typedef struct embedder_rec {
    tn_kafka_msg_t msg;
    json_t *doc;        /* the enriched value; NULL when it goes to the DLQ */
    const char *reason; /* DLQ reason when doc is NULL */
    char detail[512];
    size_t first_chunk; /* index of its first chunk in the batch's chunk arrays */
    size_t nchunks;
} embedder_rec_t;

/* A batch's Qdrant writes, built on the main thread and sent from either thread. */
typedef struct embedder_points {
    tn_qdrant_point_t *pts; /* vectors borrowed from the batch's vecs, payloads from e->payloads */
    char (*ids)[37];
    size_t n;
    json_t *should; /* the stale-point filters */
} embedder_points_t;

/* Batches whose records may await acknowledgment at once. Deep enough to ride out a slow
 * acknowledgment (devstack answers some produce requests ~40 ms late, 6-8 batches' time at
 * full speed) without stopping the gathering, embedding and Qdrant writes behind it. */
#define EMBEDDER_SENT_MAX 8

/* A batch written to the vector store whose records were produced (worker.c). */
typedef struct embedder_sent {
    embedder_rec_t *recs;
    size_t n, cap, nchunks;
    tn_kafka_batch_t *inflight; /* NULL: no records (all dead letters or superseded) */
} embedder_sent_t;

typedef struct embedder {
    const embedder_cfg_t *cfg;
    embedder_metrics_t m;
    tn_schema_t *schema_in;
    tn_embedder_t *emb;
    tn_qdrant_t *qdrant; /* NULL with vector_store none */
    tn_kafka_producer_t *producer;
    tn_kafka_consumer_t *consumer;
    tn_breaker_t embed_breaker, store_breaker;
    atomic_bool ready;
    int failing; /* the last batch attempt failed on an upstream (until one succeeds) */
    /* the open batch */
    embedder_rec_t *recs;
    size_t nrecs, caprecs;
    size_t nchunks;
    float *vecs; /* the batch's vectors between embedder_batch_write() (async) and its records */
    size_t dims;
    /* the sent batches, oldest first (a ring of EMBEDDER_SENT_MAX from sent_head): in the
     * vector store, their tickets.embedded records on their way; offsets are committed in this
     * order, each batch once its records and those of every batch before it are acknowledged */
    embedder_sent_t sent[EMBEDDER_SENT_MAX];
    size_t sent_head, nsent;
    /* the batch being written to Qdrant on the store thread (st_busy), between the open batch
     * and the sent ones: embedded, its vectors in e->vecs; its records go out once Qdrant
     * acknowledged it (a slot among the sent batches free) */
    embedder_rec_t *st_recs;
    size_t nst, capst, st_nchunks;
    embedder_points_t st_points;
    pthread_t st_thread;
    bool st_busy;     /* a batch is in the store slot (its write running or done) */
    bool st_joinable; /* st_thread runs it (else it was written inline) */
    atomic_bool st_done;
    tn_err_t st_rc;
    char st_err[512];
    double st_t0;              /* when the batch's embedding started (batch_s) */
    int sync_batches;          /* after a failed delivery: batches written the synchronous way */
    tn_buf_t payloads, values; /* batch.c's point payloads and record values, reused */
} embedder_t;

/* config.c */
void embedder_metrics_init(embedder_metrics_t *m, tn_metrics_t *reg);

/* batch.c */
/** Parse and validate a consumed record into the batch (takes the message). */
void embedder_batch_add(embedder_t *e, tn_kafka_msg_t *msg);
/**
 * Embed the batch's chunks and write them: stale and deleted points removed, points upserted
 * (wait=true), records produced to tickets.embedded and acknowledged (only with @p sync;
 * otherwise the vectors are kept for embedder_batch_start_records()), dead letters sent.
 * @returns TN_OK; TN_AGAIN when an upstream's circuit is open (no call made: wait, this is no
 *          attempt); TN_ERR_UNAVAILABLE when an upstream failed in a way worth retrying (nothing
 *          committed; safe to redo); TN_ERR_UPSTREAM when the provider refused the input (the
 *          caller isolates the records); TN_ERR_KAFKA when Kafka did not take the output.
 * @param stage out: "embed", "store" or "kafka" on failure.
 */
tn_err_t embedder_batch_write(embedder_t *e, bool sync, const char **stage, char *errbuf,
                              size_t errlen);
/** Embed the open batch's chunks (n * dims floats in @p vecs, caller frees), behind the
 *  embeddings circuit breaker. @returns as embedder_batch_write() for the "embed" stage. */
tn_err_t embedder_batch_embed(embedder_t *e, float **vecs, size_t *dims, char *errbuf,
                              size_t errlen);
/** The open batch's points and stale filter (payloads written to e->payloads). */
void embedder_points_build(embedder_t *e, const float *vecs, size_t dims, embedder_points_t *p);
/** Upsert and delete; touches only e->qdrant and e->cfg (safe on the store thread). */
tn_err_t embedder_points_send(embedder_t *e, const embedder_points_t *p, char *errbuf,
                              size_t errlen);
void embedder_points_cleanup(embedder_points_t *p);
/** The open batch's dead letters, sent and acknowledged. */
tn_err_t embedder_batch_dead_letters(embedder_t *e, char *errbuf, size_t errlen);
/** With !sync: produce the written batch's tickets.embedded records; the handle to wait on
 *  (NULL: none). */
tn_kafka_batch_t *embedder_batch_start_records(embedder_t *e);
/** Release the batch's messages and documents. */
void embedder_batch_clear(embedder_t *e);

/* worker.c */
tn_err_t embedder_worker_run(embedder_t *e);

#endif
