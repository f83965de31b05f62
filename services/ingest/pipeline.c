/* ingest: the enrichment pipeline. Consume tickets.raw (read_committed), enrich, produce to
 * tickets.enriched or tickets.dlq, and commit outputs and input offsets in one Kafka transaction
 * per batch (consume-transform-produce). A failed batch is aborted and consumed again. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest.h"
#include "taina/clock.h"
#include "taina/lifecycle.h"
#include "taina/log.h"
#include "taina/mem.h"
#include "taina/trace.h"

#define MAX_REASONS 8
#define MAX_PII     16
#define GROUP       64 /* records polled at once, enriched on two threads, produced in order */
#define WAKE_MS     10 /* tn_kafka_consumer_wake_fetchers() at most this often */

/* What one batch did; added to the metrics once its transaction committed. */
typedef struct batch {
    size_t in, out;
    const char *reasons[MAX_REASONS];
    size_t dlq[MAX_REASONS];
    size_t pii[MAX_PII];
    size_t invalid_utf8;
    int failed; /* a produce was refused: abort */
} batch_t;

static void batch_dlq(batch_t *b, const char *reason)
{
    for (size_t i = 0; i < MAX_REASONS; i++) {
        if (!b->reasons[i])
            b->reasons[i] = reason;
        if (!strcmp(b->reasons[i], reason)) {
            b->dlq[i]++;
            return;
        }
    }
}

static void batch_commit_metrics(ingest_t *in, const batch_t *b)
{
    tn_metric_add(in->m.records_in, TN_LABELS(in->cfg->topic_raw), (double)b->in);
    tn_metric_add(in->m.records_out, TN_LABELS(in->cfg->topic_enriched), (double)b->out);
    for (size_t i = 0; i < MAX_REASONS && b->reasons[i]; i++)
        tn_metric_add(in->m.dlq, TN_LABELS(b->reasons[i]), (double)b->dlq[i]);
    for (size_t i = 0; i < tn_pii_ntypes(in->rules.pii) && i < MAX_PII; i++)
        if (b->pii[i])
            tn_metric_add(in->m.pii, TN_LABELS(tn_pii_type_name(in->rules.pii, i)),
                          (double)b->pii[i]);
    tn_metric_add(in->m.invalid_utf8, TN_NOLABELS, (double)b->invalid_utf8);
    tn_metric_add(in->m.txn, TN_LABELS("committed"), 1);
}

tn_err_t ingest_pipeline_init(ingest_t *in, tn_app_t *app)
{
    const ingest_cfg_t *cfg = in->cfg;
    char err[512];
    tn_kafka_opts_t o = tn_app_kafka_opts(app, "taina-ingest");
    char host[128] = "local";
    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    char *txnid = *cfg->transactional_id ? tn_xstrdup(cfg->transactional_id)
                                         : tn_xasprintf("taina-ingest-%s", host);
    /* Transactions need the broker: retry with backoff until it answers or we are stopped. */
    int64_t backoff = 500;
    while (!in->txn_producer) {
        tn_kafka_error_t e;
        in->txn_producer = tn_kafka_producer_new(&o, txnid, err, sizeof(err));
        if (!in->txn_producer) {
            TN_LOG(TN_LOG_ERROR, "ingest: %s", err);
            free(txnid);
            return TN_ERR_CONFIG;
        }
        if (tn_kafka_txn_init(in->txn_producer, cfg->txn_timeout_ms, &e) == TN_OK)
            break;
        TN_LOG(TN_LOG_WARN, "ingest: cannot initialize transactions (retrying in %lld ms): %s",
               (long long)backoff, e.msg);
        tn_kafka_producer_destroy(in->txn_producer);
        in->txn_producer = NULL;
        if (tn_lifecycle_wait(backoff)) {
            free(txnid);
            return TN_ERR_STOPPED;
        }
        backoff = backoff * 2 > 10000 ? 10000 : backoff * 2;
    }
    free(txnid);
    const char *topics[] = {cfg->topic_raw, NULL};
    /* 2 MB of read-ahead, not the kafka module's 8 MB, which were a third of the process:
     * run() wakes the fetchers as it takes records (tn_kafka_consumer_wake_fetchers), so a
     * small queue keeps up (1 MB lost a third of the rate; README, Figures). TAINA_KAFKA_*
     * still overrides. */
    tn_cfg_prop_t readahead[] = {{"queued.max.messages.kbytes", "2048"}};
    tn_kafka_opts_t co = o;
    co.defaults = readahead;
    co.ndefaults = 1;
    in->consumer = tn_kafka_consumer_new(&co, cfg->group, topics, err, sizeof(err));
    if (!in->consumer) {
        TN_LOG(TN_LOG_ERROR, "ingest: %s", err);
        return TN_ERR_CONFIG;
    }
    if (*cfg->checkpoint_topic)
        tn_kafka_consumer_set_checkpoints(in->consumer, &o, cfg->checkpoint_topic);
    return TN_OK;
}

/* One polled record, enriched (and dumped) on either thread, then produced in poll order. */
typedef struct slot {
    tn_kafka_msg_t msg;
    char *value; /* the tickets.enriched value, or NULL: dead letter for why */
    size_t len;
    char *id;
    size_t counts[MAX_PII], bad;
    ingest_reject_t why;
} slot_t;

/* The second enrichment thread. Each group is shared out by an atomic index. */
typedef struct pool {
    ingest_t *in;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned gen; /* bumped for each group */
    int busy;     /* the worker is on the current group */
    int quit;
    slot_t *slots;
    size_t n;
    atomic_size_t next;
} pool_t;

static void enrich_slot(ingest_t *in, slot_t *sl)
{
    const ingest_cfg_t *cfg = in->cfg;
    double t0 = tn_clock_mono_s();
    sl->value =
        ingest_enrich(&in->rules, sl->msg.value, sl->msg.value_len, (size_t)cfg->max_record_bytes,
                      sl->counts, &sl->bad, &sl->why, &sl->len, &sl->id);
    tn_metric_observe(in->m.enrich_secs, TN_NOLABELS, tn_clock_mono_s() - t0);
}

static void enrich_share(pool_t *p)
{
    for (size_t i; (i = atomic_fetch_add(&p->next, 1)) < p->n;)
        enrich_slot(p->in, &p->slots[i]);
}

static void *worker(void *arg)
{
    pool_t *p = arg;
    unsigned seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && p->gen == seen)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->quit)
            break;
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        enrich_share(p);
        pthread_mutex_lock(&p->mu);
        p->busy = 0;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Enrich slots[0..n) on this thread and the worker (if it runs). */
static void enrich_group(pool_t *p, slot_t *slots, size_t n, int threaded)
{
    p->slots = slots;
    p->n = n;
    atomic_store(&p->next, 0);
    if (threaded && n > 1) {
        pthread_mutex_lock(&p->mu);
        p->busy = 1;
        p->gen++;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    enrich_share(p);
    pthread_mutex_lock(&p->mu);
    while (p->busy)
        pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

/* Produce one enriched record (or its dead letter) inside the open transaction. */
static void produce_slot(ingest_t *in, slot_t *sl, batch_t *b)
{
    const ingest_cfg_t *cfg = in->cfg;
    tn_kafka_error_t e;
    b->in++;
    if (sl->value) {
        tn_trace_t trace;
        char tp[64];
        tn_kafka_msg_trace(&sl->msg, &trace);
        tn_kafka_header_t h[2] = {tn_kafka_trace_header(&trace, tp, sizeof(tp)),
                                  {TN_KAFKA_H_SCHEMA, "tickets.enriched/1", 18}};
        tn_kafka_record_t rec = {cfg->topic_enriched, -1,      sl->id, strlen(sl->id),
                                 sl->value,           sl->len, h,      2};
        tn_err_t rc;
        while ((rc = tn_kafka_produce(in->txn_producer, &rec, &e)) == TN_AGAIN)
            tn_clock_sleep_ms(5); /* the local queue is full: the poll thread drains it */
        if (rc == TN_OK) {
            b->out++;
            b->invalid_utf8 += sl->bad;
            for (size_t i = 0; i < MAX_PII; i++)
                b->pii[i] += sl->counts[i];
            return;
        }
        if (rc != TN_ERR_TOO_LARGE) {
            TN_LOG(TN_LOG_WARN, "ingest: produce to %s failed: %s", cfg->topic_enriched, e.msg);
            b->failed = 1;
            return;
        }
        sl->why.reason = "too_large";
        snprintf(sl->why.detail, sizeof(sl->why.detail),
                 "the enriched record is larger than the broker "
                 "accepts (message.max.bytes)");
    }
    if (tn_kafka_dlq_send(in->txn_producer, cfg->topic_dlq, &sl->msg, sl->why.reason,
                          sl->why.detail, &e) != TN_OK) {
        TN_LOG(TN_LOG_WARN, "ingest: dead letter to %s failed: %s", cfg->topic_dlq, e.msg);
        b->failed = 1;
        return;
    }
    batch_dlq(b, sl->why.reason);
}

static void slot_release(slot_t *sl)
{
    free(sl->value);
    free(sl->id);
    tn_kafka_msg_release(&sl->msg);
}

/* Commit the batch's transaction, or abort it (the consumer rewinds to the committed offsets).
 * Returns TN_ERR_FATAL when the producer cannot go on. */
static tn_err_t finish(ingest_t *in, batch_t *b)
{
    tn_kafka_error_t e;
    int64_t t = in->cfg->txn_timeout_ms;
    double t0 = tn_clock_mono_s();
    if (!b->failed && tn_kafka_txn_commit(in->txn_producer, in->consumer, t, &e) == TN_OK) {
        tn_metric_observe(in->m.txn_commit_secs, TN_NOLABELS, tn_clock_mono_s() - t0);
        tn_metric_observe(in->m.txn_records, TN_NOLABELS, (double)b->in);
        batch_commit_metrics(in, b);
        return TN_OK;
    }
    if (!b->failed && e.fatal) {
        TN_LOG(TN_LOG_ERROR, "ingest: transaction commit failed (fatal): %s", e.msg);
        return TN_ERR_FATAL;
    }
    TN_LOG(TN_LOG_WARN, "ingest: aborting a batch of %zu records: %s", b->in,
           b->failed ? "a produce failed" : e.msg);
    tn_metric_add(in->m.txn, TN_LABELS("aborted"), 1);
    if (tn_kafka_txn_abort(in->txn_producer, in->consumer, t, &e) != TN_OK) {
        TN_LOG(TN_LOG_ERROR, "ingest: transaction abort failed: %s", e.msg);
        return TN_ERR_FATAL;
    }
    return TN_OK;
}

/* librdkafka 2.0 stops fetching while the consumer's read-ahead (queued.max.messages.kbytes) is
 * full and looks again only when its broker threads wake up, up to a second later: a backlog
 * then drains at one read-ahead per second. So the fetchers are woken as records are taken,
 * and before waiting for records while records came lately (the queue may have run dry while
 * the fetchers sleep); such a wait is cut to WAKE_MS so that it wakes them again. Idle, nothing
 * is sent: an empty queue is fetched normally. */
typedef struct fetch_wake {
    int64_t woke_ms; /* the last tn_kafka_consumer_wake_fetchers() */
    int64_t got_ms;  /* the last record */
} fetch_wake_t;

/* Wake the fetchers (at most every WAKE_MS); returns how long a poll may wait, from @p wait
 * (0: a poll that does not wait). */
static int64_t fetch_wake(ingest_t *in, fetch_wake_t *w, int64_t wait)
{
    int64_t now = tn_clock_mono_ms();
    if (wait > 0 && now - w->got_ms > 1000)
        return wait; /* idle */
    if (now - w->woke_ms >= WAKE_MS) {
        tn_kafka_consumer_wake_fetchers(in->consumer);
        w->woke_ms = now;
    }
    return wait > WAKE_MS ? WAKE_MS : wait;
}

/* Consume into groups of up to GROUP records (what is already fetched, no waiting past the
 * first) and enrich each group on two threads as it comes; the batch's outputs are produced in
 * consumption order only when the batch is complete, right before its commit. Nothing of a batch
 * reaches the broker before the decision to commit it: a batch abandoned before (a failed
 * enrichment step, a stop) leaves no records behind even on a cluster without transaction
 * markers (devstack), and the window in which a crash leaves records of an unfinished
 * transaction is the commit itself. */
static tn_err_t run(ingest_t *in, pool_t *p, int threaded, slot_t *slots)
{
    const ingest_cfg_t *cfg = in->cfg;
    fetch_wake_t fw = {0, 0};
    while (!tn_lifecycle_is_stopping()) {
        batch_t b;
        memset(&b, 0, sizeof(b));
        int in_txn = 0;
        int64_t deadline = 0;
        size_t held = 0;   /* slots of this batch, enriched, not produced yet */
        int64_t bytes = 0; /* their enriched values: held in memory until the commit */
        while ((int64_t)held < cfg->batch_max && bytes < cfg->batch_max_bytes) {
            size_t n = 0, room = (size_t)cfg->batch_max - held;
            if (room > GROUP)
                room = GROUP;
            while (n < room) {
                int64_t wait = n ? 0 : in_txn ? deadline - tn_clock_mono_ms() : 200;
                if (in_txn && wait < 0)
                    break;
                if (in_txn && wait == 0 && !n)
                    break;
                tn_kafka_error_t e;
                slot_t *sl = &slots[held + n];
                memset(sl, 0, sizeof(*sl));
                if (wait > 0)
                    wait = fetch_wake(in, &fw, wait);
                tn_err_t rc = tn_kafka_consumer_poll(in->consumer, wait, &sl->msg, &e);
                atomic_store(&in->pipeline_ready, tn_kafka_consumer_assigned(in->consumer) > 0);
                if (rc == TN_AGAIN)
                    break;
                if (rc != TN_OK) {
                    if (e.fatal) {
                        for (size_t i = 0; i < held + n; i++)
                            slot_release(&slots[i]);
                        return TN_ERR_FATAL;
                    }
                    break;
                }
                n++;
                fw.got_ms = tn_clock_mono_ms();
            }
            if (n == 0) {
                if (in_txn && deadline - tn_clock_mono_ms() <= 0)
                    break;
                if (!in_txn && tn_lifecycle_is_stopping())
                    break;
                continue;
            }
            if (!in_txn) {
                tn_kafka_error_t e;
                if (tn_kafka_txn_begin(in->txn_producer, &e) != TN_OK) {
                    for (size_t i = 0; i < held + n; i++)
                        slot_release(&slots[i]);
                    TN_LOG(TN_LOG_ERROR, "ingest: cannot begin a transaction: %s", e.msg);
                    return TN_ERR_FATAL;
                }
                in_txn = 1;
                deadline = tn_clock_mono_ms() + cfg->batch_linger_ms;
            }
            fetch_wake(in, &fw, 0); /* records left the read-ahead: refill it now */
            enrich_group(p, slots + held, n, threaded);
            for (size_t i = held; i < held + n; i++)
                bytes += (int64_t)(slots[i].value ? slots[i].len : slots[i].msg.value_len);
            held += n;
        }
        for (size_t i = 0; i < held; i++) {
            if (!b.failed) /* the rest is consumed again after the abort */
                produce_slot(in, &slots[i], &b);
            slot_release(&slots[i]);
        }
        if (in_txn && finish(in, &b) != TN_OK)
            return TN_ERR_FATAL;
    }
    return TN_OK;
}

tn_err_t ingest_pipeline_run(ingest_t *in)
{
    pool_t p = {.in = in};
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    int threaded = pthread_create(&p.th, NULL, worker, &p) == 0;
    if (!threaded)
        TN_LOG(TN_LOG_WARN, "ingest: no second enrichment thread; enriching on one");
    slot_t *slots = tn_xcalloc((size_t)in->cfg->batch_max, sizeof(*slots));
    tn_err_t rc = run(in, &p, threaded, slots);
    free(slots);
    if (threaded) {
        pthread_mutex_lock(&p.mu);
        p.quit = 1;
        pthread_cond_broadcast(&p.cv);
        pthread_mutex_unlock(&p.mu);
        pthread_join(p.th, NULL);
    }
    pthread_cond_destroy(&p.cv);
    pthread_mutex_destroy(&p.mu);
    return rc;
}

void ingest_pipeline_close(ingest_t *in)
{
    if (in->consumer)
        tn_kafka_consumer_close(in->consumer);
    tn_kafka_consumer_destroy(in->consumer);
    tn_kafka_producer_destroy(in->txn_producer);
    in->consumer = NULL;
    in->txn_producer = NULL;
}
