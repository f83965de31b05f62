/* embedder: the loop. Gather a batch (by chunk count or linger), write it, and only then commit
 * its offsets. A failing upstream pauses the batch's partitions and the batch is retried with
 * backoff (full jitter) behind circuit breakers; after the configured attempts its records go
 * to the DLQ. Input the provider refuses (4xx) is isolated record by record. */
#include <stdio.h>
#include <string.h>

#include "embedder.h"
#include "taina/clock.h"
#include "taina/lifecycle.h"
#include "taina/log.h"
#include "taina/mem.h"

static void set_ready(embedder_t *e)
{
    /* the breakers keep their gauges (taina_embedder_circuit_open) themselves */
    int open_embed = tn_breaker_is_open(&e->embed_breaker);
    int open_store = e->qdrant && tn_breaker_is_open(&e->store_breaker);
    atomic_store(&e->ready, tn_kafka_consumer_assigned(e->consumer) > 0 && !open_embed &&
                                !open_store && !e->failing);
}

/* Poll one record into the batch; TN_AGAIN when none came. */
static tn_err_t poll_one(embedder_t *e, int64_t wait_ms)
{
    tn_kafka_msg_t msg;
    tn_kafka_error_t ke;
    tn_err_t rc = tn_kafka_consumer_poll(e->consumer, wait_ms, &msg, &ke);
    set_ready(e);
    if (rc == TN_OK)
        embedder_batch_add(e, &msg);
    else if (rc == TN_ERR_FATAL || (rc != TN_AGAIN && ke.fatal))
        return TN_ERR_FATAL;
    return rc == TN_OK ? TN_OK : TN_AGAIN;
}

/* Pause or resume the partitions of the batch's records. */
static void pause_batch(embedder_t *e, int pause)
{
    for (size_t i = 0; i < e->nrecs; i++) {
        const tn_kafka_msg_t *m = &e->recs[i].msg;
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen =
                e->recs[j].msg.partition == m->partition && !strcmp(e->recs[j].msg.topic, m->topic);
        if (seen)
            continue;
        if (pause)
            tn_kafka_consumer_pause(e->consumer, m->topic, m->partition);
        else
            tn_kafka_consumer_resume(e->consumer, m->topic, m->partition);
    }
}

/* The provider refused the batch: find the records it refuses on their own (to the DLQ). */
static void isolate_rejected(embedder_t *e)
{
    for (size_t i = 0; i < e->nrecs; i++) {
        embedder_rec_t *r = &e->recs[i];
        if (!r->doc || !r->nchunks)
            continue;
        const json_t *chunks = json_object_get(r->doc, "chunks");
        const char **texts = tn_xcalloc(r->nchunks, sizeof(*texts));
        size_t *lens = tn_xcalloc(r->nchunks, sizeof(*lens));
        for (size_t k = 0; k < r->nchunks; k++) {
            const json_t *t = json_object_get(json_array_get(chunks, k), "text");
            texts[k] = json_string_value(t);
            lens[k] = json_string_length(t);
        }
        float *v = NULL;
        size_t dims = 0;
        tn_embed_error_t why = {0};
        if (tn_embed(e->emb, texts, lens, r->nchunks, &v, &dims, &why) == TN_ERR_UPSTREAM) {
            r->reason = "embed_rejected";
            snprintf(r->detail, sizeof(r->detail), "the embeddings API refused it (%d): %s",
                     why.status, why.msg);
            json_decref(r->doc);
            r->doc = NULL;
        }
        free(v);
        free(texts);
        free(lens);
    }
    /* chunk positions changed: recount */
    e->nchunks = 0;
    for (size_t i = 0; i < e->nrecs; i++) {
        e->recs[i].first_chunk = e->nchunks;
        e->recs[i].nchunks =
            e->recs[i].doc ? json_array_size(json_object_get(e->recs[i].doc, "chunks")) : 0;
        e->nchunks += e->recs[i].nchunks;
    }
}

/* Out of attempts: every record of the batch goes to the DLQ with the reason. */
static void give_up(embedder_t *e, const char *stage, const char *err)
{
    for (size_t i = 0; i < e->nrecs; i++) {
        embedder_rec_t *r = &e->recs[i];
        if (!r->doc)
            continue;
        r->reason = !strcmp(stage, "store") ? "upstream_qdrant" : "upstream_embeddings";
        snprintf(r->detail, sizeof(r->detail), "%lld attempts failed; last: %s",
                 (long long)e->cfg->max_attempts, err);
        json_decref(r->doc);
        r->doc = NULL;
    }
    e->nchunks = 0;
}

static void count_committed(embedder_t *e)
{
    for (size_t i = 0; i < e->nrecs; i++) {
        const embedder_rec_t *r = &e->recs[i];
        if (!r->doc) {
            tn_metric_add(e->m.records, TN_LABELS("dlq"), 1);
            tn_metric_add(e->m.dlq, TN_LABELS(r->reason), 1);
        } else {
            int del = json_is_true(json_object_get(r->doc, "deleted"));
            tn_metric_add(e->m.records, TN_LABELS(del ? "deleted" : "embedded"), 1);
        }
    }
    tn_metric_add(e->m.chunks, TN_NOLABELS, (double)e->nchunks);
    tn_metric_observe(e->m.batch, TN_NOLABELS, (double)e->nchunks);
}

/* Keep polling while waiting (rebalances, liveness); records of other partitions join the
 * batch. */
static tn_err_t wait_polling(embedder_t *e, int64_t ms)
{
    int64_t until = tn_clock_mono_ms() + ms;
    while (tn_clock_mono_ms() < until && !tn_lifecycle_is_stopping())
        if (poll_one(e, until - tn_clock_mono_ms()) == TN_ERR_FATAL)
            return TN_ERR_FATAL;
    return TN_OK;
}

/* Stopping with a batch that is not written: nothing of it is committed; the partitions' next
 * owner (or this worker after a restart) does it again. */
static tn_err_t stop_unfinished(embedder_t *e, int paused, const char *err)
{
    TN_LOG(TN_LOG_WARN, "embedder: stopping with an unfinished batch (%s)", err);
    if (paused)
        pause_batch(e, 0);
    return TN_ERR_STOPPED;
}

/* The open batch and the previous one trade places. */
static void swap_batches(embedder_t *e)
{
    embedder_rec_t *r = e->recs;
    size_t n = e->nrecs, cap = e->caprecs, nc = e->nchunks;
    e->recs = e->prev;
    e->nrecs = e->nprev;
    e->caprecs = e->capprev;
    e->nchunks = e->prev_nchunks;
    e->prev = r;
    e->nprev = n;
    e->capprev = cap;
    e->prev_nchunks = nc;
}

/* Store and commit the open batch's offsets, count it and clear it. */
static void commit_batch(embedder_t *e)
{
    for (size_t i = 0; i < e->nrecs; i++)
        tn_kafka_consumer_store(e->consumer, &e->recs[i].msg);
    tn_err_t rc = tn_kafka_consumer_commit(e->consumer, 1);
    if (rc != TN_OK)
        TN_LOG(TN_LOG_WARN, "embedder: offset commit failed (%s); the batch may be redone",
               tn_err_str(rc));
    count_committed(e);
    embedder_batch_clear(e);
}

/*
 * The previous batch's records were acknowledged (waiting for them): commit its offsets. When
 * some were not, nothing of it is committed: both batches (every record consumed and not
 * committed) are dropped, their partitions rewound to their first records, and the next batches
 * are written the synchronous way (retries, DLQ) until one succeeds. Nothing was produced for
 * the open batch yet, so tickets.embedded keeps the order of the input.
 */
static tn_err_t complete_prev(embedder_t *e)
{
    if (!e->nprev && !e->inflight)
        return TN_OK;
    tn_err_t rc = tn_kafka_batch_wait(e->inflight, NULL, 30000);
    e->inflight = NULL;
    swap_batches(e);
    if (rc == TN_OK) {
        commit_batch(e);
        swap_batches(e);
        return TN_OK;
    }
    swap_batches(e);
    TN_LOG(TN_LOG_WARN, "embedder: %s did not acknowledge a batch (%s); redoing it",
           e->cfg->topic_out, tn_err_str(rc));
    tn_metric_add(e->m.retries, TN_LABELS("kafka"), 1);
    for (int pass = 0; pass < 2; pass++) {
        embedder_rec_t *recs = pass ? e->recs : e->prev;
        size_t n = pass ? e->nrecs : e->nprev;
        for (size_t i = 0; i < n; i++) {
            const tn_kafka_msg_t *m = &recs[i].msg;
            int64_t first = m->offset;
            for (int q = 0; q < 2; q++) { /* the partition's first record in either batch */
                const embedder_rec_t *o = q ? e->recs : e->prev;
                size_t on = q ? e->nrecs : e->nprev;
                for (size_t j = 0; j < on; j++)
                    if (o[j].msg.partition == m->partition && !strcmp(o[j].msg.topic, m->topic) &&
                        o[j].msg.offset < first)
                        first = o[j].msg.offset;
            }
            if (first == m->offset)
                tn_kafka_consumer_seek(e->consumer, m->topic, m->partition, first);
        }
    }
    swap_batches(e);
    embedder_batch_clear(e);
    swap_batches(e);
    embedder_batch_clear(e);
    e->sync_batches = 4;
    return TN_ERR_KAFKA;
}

/* Write the batch until it is done (or stopping); then commit its offsets, or (async) start its
 * records and commit the previous batch's. */
static tn_err_t finish_batch(embedder_t *e)
{
    char err[512];
    const char *stage = "embed";
    int paused = 0;
    for (int attempt = 1;;) {
        double t0 = tn_clock_mono_s();
        err[0] = '\0';
        tn_err_t rc = embedder_batch_write(e, e->sync_batches > 0, &stage, err, sizeof(err));
        if (rc == TN_OK) {
            tn_metric_observe(e->m.batch_s, TN_NOLABELS, tn_clock_mono_s() - t0);
            e->failing = 0;
            break;
        }
        if (rc == TN_ERR_UPSTREAM) {
            TN_LOG(TN_LOG_WARN, "embedder: the provider refused a batch (%s); isolating", err);
            isolate_rejected(e);
            continue;
        }
        if (rc == TN_AGAIN) { /* circuit open: wait for its probe time; not an attempt */
            if (tn_lifecycle_is_stopping())
                return stop_unfinished(e, paused, err);
            if (!paused) {
                pause_batch(e, 1);
                paused = 1;
            }
            if (wait_polling(e, 250) == TN_ERR_FATAL)
                return TN_ERR_FATAL;
            continue;
        }
        tn_metric_add(e->m.retries, TN_LABELS(stage), 1);
        e->failing = 1;
        set_ready(e);
        if (attempt >= e->cfg->max_attempts) {
            TN_LOG(TN_LOG_ERROR, "embedder: giving up a batch of %zu records after %d attempts: %s",
                   e->nrecs, attempt, err);
            give_up(e, stage, err);
            continue;
        }
        if (tn_lifecycle_is_stopping())
            return stop_unfinished(e, paused, err);
        int64_t wait = tn_backoff_ms(attempt, e->cfg->retry_base_ms, e->cfg->retry_cap_ms);
        TN_LOG(TN_LOG_WARN, "embedder: %s failed (attempt %d), retrying in %lld ms: %s", stage,
               attempt, (long long)wait, err);
        attempt++;
        if (!paused) {
            pause_batch(e, 1);
            paused = 1;
        }
        if (wait_polling(e, wait) == TN_ERR_FATAL)
            return TN_ERR_FATAL;
    }
    if (paused)
        pause_batch(e, 0);
    if (complete_prev(e) != TN_OK)
        return TN_OK; /* both batches dropped and rewound */
    if (e->sync_batches > 0) {
        e->sync_batches--;
        commit_batch(e);
        return TN_OK;
    }
    e->inflight = embedder_batch_start_records(e);
    swap_batches(e); /* this batch waits for its acknowledgments; the open one is empty */
    return TN_OK;
}

tn_err_t embedder_worker_run(embedder_t *e)
{
    while (!tn_lifecycle_is_stopping()) {
        int64_t deadline = 0;
        while ((int64_t)e->nchunks < e->cfg->batch_chunks) {
            int64_t wait = e->nrecs ? deadline - tn_clock_mono_ms() : 200;
            if (e->nrecs && wait <= 0)
                break;
            if (e->inflight && tn_kafka_batch_done(e->inflight))
                complete_prev(e); /* idle or slow input: commit without waiting for a batch */
            else if (!e->inflight && e->nprev)
                complete_prev(e);
            tn_err_t rc = poll_one(e, e->inflight && (!e->nrecs || wait > 5) ? 5 : wait);
            if (rc == TN_ERR_FATAL)
                return TN_ERR_FATAL;
            if (rc == TN_OK && e->nrecs == 1)
                deadline = tn_clock_mono_ms() + e->cfg->batch_linger_ms;
            if (rc == TN_AGAIN && !e->nrecs && tn_lifecycle_is_stopping())
                break;
        }
        if (!e->nrecs)
            continue;
        tn_err_t rc = finish_batch(e);
        if (rc == TN_ERR_FATAL)
            return rc;
        if (rc == TN_ERR_STOPPED)
            break;
    }
    complete_prev(e); /* stopping: records already produced are committed once acknowledged */
    embedder_batch_clear(e);
    return TN_OK;
}
