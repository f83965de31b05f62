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

/* Poll one record into the batch; TN_AGAIN when none came. While records come the fetchers are
 * woken as they are taken (tn_kafka_consumer_refill(): librdkafka 2.0 leaves a drained read-ahead
 * empty up to a second, two stalls of ~400 ms in a 2.7 s bench run before). */
static tn_err_t poll_one(embedder_t *e, int64_t wait_ms)
{
    tn_kafka_msg_t msg;
    tn_kafka_error_t ke;
    tn_err_t rc = tn_kafka_consumer_poll(e->consumer,
                                         tn_kafka_consumer_refill(e->consumer, wait_ms), &msg, &ke);
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

/* The open batch trades places with the one whose fields are given. */
static void trade_batch(embedder_t *e, embedder_rec_t **recs, size_t *n, size_t *cap,
                        size_t *nchunks)
{
    embedder_rec_t *r = e->recs;
    size_t on = e->nrecs, ocap = e->caprecs, onc = e->nchunks;
    e->recs = *recs;
    e->nrecs = *n;
    e->caprecs = *cap;
    e->nchunks = *nchunks;
    *recs = r;
    *n = on;
    *cap = ocap;
    *nchunks = onc;
}

/* The open batch and the one on the store thread trade places. */
static void swap_store(embedder_t *e)
{
    trade_batch(e, &e->st_recs, &e->nst, &e->capst, &e->st_nchunks);
}

/* Wait for the store thread; @returns its result (TN_OK when none ran). */
static tn_err_t store_join(embedder_t *e)
{
    if (!e->st_busy)
        return TN_OK;
    if (e->st_joinable)
        pthread_join(e->st_thread, NULL);
    e->st_busy = false;
    embedder_points_cleanup(&e->st_points);
    return e->st_rc;
}

/* The sent batch @p i places after the oldest. */
static embedder_sent_t *sent_at(embedder_t *e, size_t i)
{
    return &e->sent[(e->sent_head + i) % EMBEDDER_SENT_MAX];
}

/* The open batch and sent batch @p s trade places. */
static void swap_sent(embedder_t *e, embedder_sent_t *s)
{
    trade_batch(e, &s->recs, &s->n, &s->cap, &s->nchunks);
}

/*
 * Drop every batch not committed (the sent ones, the one on the store thread, the open one) and
 * rewind each of their partitions to its first record among them, so all of it is consumed and
 * written again (idempotently) in the order of the input. Later batches are written the
 * synchronous way (retries, DLQ) until a few succeed.
 */
static void rewind_all(embedder_t *e)
{
    enum { NSLOT = EMBEDDER_SENT_MAX + 2 };
    (void)store_join(e);
    const embedder_rec_t *slot[NSLOT];
    size_t nslot[NSLOT], ns = 0;
    for (size_t i = 0; i < e->nsent; i++) {
        slot[ns] = sent_at(e, i)->recs;
        nslot[ns++] = sent_at(e, i)->n;
    }
    slot[ns] = e->st_recs;
    nslot[ns++] = e->nst;
    slot[ns] = e->recs;
    nslot[ns++] = e->nrecs;
    for (size_t s = 0; s < ns; s++) {
        for (size_t i = 0; i < nslot[s]; i++) {
            const tn_kafka_msg_t *m = &slot[s][i].msg;
            int64_t first = m->offset;
            for (size_t q = 0; q < ns; q++) /* the partition's first record in any batch */
                for (size_t j = 0; j < nslot[q]; j++)
                    if (slot[q][j].msg.partition == m->partition && slot[q][j].msg.offset < first &&
                        !strcmp(slot[q][j].msg.topic, m->topic))
                        first = slot[q][j].msg.offset;
            if (first == m->offset)
                tn_kafka_consumer_seek(e->consumer, m->topic, m->partition, first);
        }
    }
    for (; e->nsent; e->nsent--, e->sent_head = (e->sent_head + 1) % EMBEDDER_SENT_MAX) {
        embedder_sent_t *s = sent_at(e, 0);
        (void)tn_kafka_batch_wait(s->inflight, NULL, 0); /* late reports free it */
        s->inflight = NULL;
        swap_sent(e, s);
        embedder_batch_clear(e);
        swap_sent(e, s);
    }
    swap_store(e);
    embedder_batch_clear(e);
    swap_store(e);
    embedder_batch_clear(e);
    free(e->vecs);
    e->vecs = NULL;
    e->sync_batches = 4;
}

/* Store the open batch's offsets (committed by the caller), count it and clear it. */
static void store_batch(embedder_t *e)
{
    for (size_t i = 0; i < e->nrecs; i++)
        tn_kafka_consumer_store(e->consumer, &e->recs[i].msg);
    count_committed(e);
    embedder_batch_clear(e);
}

/* Asynchronously: only offsets of finished batches are stored, so a commit never covers
 * unfinished work however late it lands, and the loop does not wait a round trip to the group
 * coordinator per batch. A commit that fails is covered by the next one (librdkafka sends every
 * stored offset not yet committed), by the synchronous commit of a revocation or of the close,
 * or else the batch is redone by the partition's next owner (at least once). */
static void commit_stored(embedder_t *e)
{
    tn_err_t rc = tn_kafka_consumer_commit(e->consumer, 0);
    if (rc != TN_OK)
        TN_LOG(TN_LOG_WARN, "embedder: offset commit failed (%s); the batch may be redone",
               tn_err_str(rc));
}

enum { SENT_DONE, SENT_ONE, SENT_ALL }; /* what complete_sent() waits for */

/*
 * Commit the sent batches whose records were acknowledged, oldest first, stopping at the first
 * one still waiting: @p until SENT_DONE waits for none, SENT_ONE for the oldest (a slot frees),
 * SENT_ALL for every one. A batch some of whose records were not acknowledged is not committed,
 * and neither is any after it: every batch not committed is dropped and its partitions rewound
 * (rewind_all), and the next batches are written the synchronous way (retries, DLQ).
 * @returns TN_OK, or TN_ERR_KAFKA after which everything was rewound.
 */
static tn_err_t complete_sent(embedder_t *e, int until)
{
    size_t done = 0;
    tn_err_t rc = TN_OK;
    while (e->nsent) {
        embedder_sent_t *s = sent_at(e, 0);
        bool wait = until == SENT_ALL || (until == SENT_ONE && !done);
        if (!wait && s->inflight && !tn_kafka_batch_done(s->inflight))
            break;
        rc = tn_kafka_batch_wait(s->inflight, NULL, 30000);
        s->inflight = NULL;
        if (rc != TN_OK)
            break;
        swap_sent(e, s);
        store_batch(e);
        swap_sent(e, s);
        e->sent_head = (e->sent_head + 1) % EMBEDDER_SENT_MAX;
        e->nsent--;
        done++;
    }
    if (done)
        commit_stored(e); /* the batches before a failed one stay committed */
    if (rc == TN_OK)
        return TN_OK;
    TN_LOG(TN_LOG_WARN, "embedder: %s did not acknowledge a batch (%s); redoing it",
           e->cfg->topic_out, tn_err_str(rc));
    tn_metric_add(e->m.retries, TN_LABELS("kafka"), 1);
    rewind_all(e);
    return TN_ERR_KAFKA;
}

/* The open batch (written) is sent: its records are produced and it joins the sent batches,
 * which have a free slot; the open batch is empty again. */
static void send_batch(embedder_t *e)
{
    TN_ASSERT(e->nsent < EMBEDDER_SENT_MAX);
    embedder_sent_t *s = sent_at(e, e->nsent);
    s->inflight = embedder_batch_start_records(e);
    swap_sent(e, s);
    e->nsent++;
}

/*
 * The batch on the store thread is done (waiting for it): when Qdrant took it, its records go
 * out at once (after a slot among the sent batches frees, if all are taken), without waiting
 * for the batches before it: their commits come in order as their acknowledgments do. When
 * Qdrant failed, nothing of it is committed: the sent batches are committed as they are
 * acknowledged (none depends on it), the rest is rewound and the next batches are written the
 * synchronous way (backoff, circuit breaker, DLQ).
 * @returns TN_OK, or the error after which everything was rewound.
 */
static tn_err_t store_collect(embedder_t *e)
{
    if (!e->st_busy)
        return TN_OK;
    tn_err_t rc = store_join(e);
    if (rc == TN_ERR_UNAVAILABLE)
        tn_breaker_failure(&e->store_breaker);
    else
        tn_breaker_success(&e->store_breaker);
    if (rc != TN_OK) {
        TN_LOG(TN_LOG_WARN,
               "embedder: qdrant did not take a batch (%s); redoing it (%zu sent before it are "
               "committed once acknowledged)",
               e->st_err, e->nsent);
        tn_metric_add(e->m.retries, TN_LABELS("store"), 1);
        e->failing = 1;
        set_ready(e);
        if (complete_sent(e, SENT_ALL) == TN_OK)
            rewind_all(e);
        return TN_ERR_UNAVAILABLE;
    }
    if (e->nsent == EMBEDDER_SENT_MAX && complete_sent(e, SENT_ONE) != TN_OK)
        return TN_ERR_KAFKA; /* everything rewound, this batch too */
    swap_store(e);
    tn_metric_observe(e->m.batch_s, TN_NOLABELS, tn_clock_mono_s() - e->st_t0);
    send_batch(e);
    swap_store(e); /* the open batch is back in its place; the store slot is empty */
    return TN_OK;
}

static void *store_main(void *arg)
{
    embedder_t *e = arg;
    e->st_err[0] = '\0';
    e->st_rc = embedder_points_send(e, &e->st_points, e->st_err, sizeof(e->st_err));
    atomic_store(&e->st_done, true);
    return NULL;
}

/*
 * The open batch the overlapped way: embed it while the store thread writes the batch before it
 * to Qdrant, collect that one (its records go out), then hand this one to the store thread and
 * go back to gathering. @returns TN_DECLINED when the batch must go the synchronous way (an
 * embedding failure or an open circuit: the retry loop takes it as it is), TN_OK otherwise (also
 * when a failure rewound everything).
 */
static tn_err_t finish_batch_overlapped(embedder_t *e)
{
    char err[512] = "";
    float *vecs = NULL;
    size_t dims = 0;
    double t0 = tn_clock_mono_s();
    tn_err_t rc = embedder_batch_embed(e, &vecs, &dims, err, sizeof(err));
    if (rc != TN_OK) {
        if (store_collect(e) != TN_OK)
            return TN_OK; /* the open batch was rewound with the rest */
        return TN_DECLINED;
    }
    if (store_collect(e) != TN_OK) {
        free(vecs);
        return TN_OK;
    }
    if (embedder_batch_dead_letters(e, err, sizeof(err)) != TN_OK) {
        free(vecs);
        return TN_DECLINED; /* the synchronous way retries them */
    }
    e->failing = 0;
    free(e->vecs); /* none: the batch before it was sent */
    e->vecs = vecs;
    e->dims = dims;
    embedder_points_build(e, vecs, dims, &e->st_points);
    e->st_t0 = t0;
    swap_store(e); /* the open batch is empty again */
    atomic_store(&e->st_done, false);
    e->st_busy = true;
    e->st_joinable = pthread_create(&e->st_thread, NULL, store_main, e) == 0;
    if (!e->st_joinable)
        store_main(e); /* no thread: write it here instead */
    return TN_OK;
}

/* Write the batch until it is done (or stopping); then send it, or (the first batches after a
 * failure) commit its offsets once every sent batch is committed. */
static tn_err_t finish_batch(embedder_t *e)
{
    char err[512];
    const char *stage = "embed";
    int paused = 0;
    if (e->qdrant && e->sync_batches == 0 &&
        tn_breaker_state(&e->store_breaker) == TN_BREAKER_CLOSED &&
        finish_batch_overlapped(e) != TN_DECLINED)
        return TN_OK;
    if (store_collect(e) != TN_OK)
        return TN_OK; /* everything rewound */
    if (!e->nrecs)
        return TN_OK;
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
    if (e->sync_batches > 0) {
        if (complete_sent(e, SENT_ALL) != TN_OK)
            return TN_OK; /* every batch dropped and rewound */
        e->sync_batches--;
        store_batch(e);
        commit_stored(e);
        return TN_OK;
    }
    if (complete_sent(e, e->nsent == EMBEDDER_SENT_MAX ? SENT_ONE : SENT_DONE) != TN_OK)
        return TN_OK; /* every batch dropped and rewound */
    send_batch(e);    /* its records wait for their acknowledgments; the open batch is empty */
    return TN_OK;
}

static tn_err_t worker_loop(embedder_t *e)
{
    while (!tn_lifecycle_is_stopping()) {
        int64_t deadline = 0;
        while ((int64_t)e->nchunks < e->cfg->batch_chunks) {
            int64_t wait = e->nrecs ? deadline - tn_clock_mono_ms() : 200;
            if (e->nrecs && wait <= 0)
                break;
            if (e->st_busy && atomic_load(&e->st_done))
                store_collect(e); /* its records go out without waiting for a full batch */
            if (e->nsent)
                complete_sent(e, SENT_DONE); /* commit what was acknowledged */
            bool pending = e->nsent || e->st_busy;
            tn_err_t rc = poll_one(e, pending && (!e->nrecs || wait > 5) ? 5 : wait);
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
    return TN_OK;
}

tn_err_t embedder_worker_run(embedder_t *e)
{
    tn_err_t rc = worker_loop(e);
    if (rc == TN_OK) {
        store_collect(e); /* stopping: a batch Qdrant took still goes out and is committed */
        complete_sent(e, SENT_ALL); /* records produced are committed once acknowledged */
    }
    (void)store_join(e); /* never leave the thread running behind a fatal error */
    swap_store(e);
    embedder_batch_clear(e);
    swap_store(e);
    embedder_batch_clear(e);
    return rc;
}
