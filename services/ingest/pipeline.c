/* ingest: the enrichment pipeline. Consume tickets.raw (read_committed), enrich, produce to
 * tickets.enriched or tickets.dlq, and commit outputs and input offsets in one Kafka transaction
 * per batch (consume-transform-produce); the commit of one batch runs on a thread of its own while
 * the next batch is read and enriched. A failed batch is aborted and consumed again. */
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

#define MAX_REASONS    8
#define MAX_PII        16
#define GROUP          64 /* records polled at once, enriched on two threads, produced in order */
#define COMMIT_LOOK_MS 10 /* with a commit in flight, a poll waits this long to see it return */

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

/* The keys a batch produced, as 64-bit hashes (open addressing; 0 is a free slot): a record of
 * the next batch whose key is among them waits for this batch's commit (key_order()). */
typedef struct keyset {
    uint64_t *h;
    size_t cap; /* a power of two, at least twice the records of a batch */
} keyset_t;

static void keyset_init(keyset_t *ks, size_t records)
{
    for (ks->cap = 64; ks->cap < 2 * records; ks->cap *= 2)
        ;
    ks->h = tn_xcalloc(ks->cap, sizeof(*ks->h));
}

static uint64_t key_hash(const void *key, size_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ ((const unsigned char *)key)[i]) * 1099511628211ULL;
    return h ? h : 1;
}

/* Add @p h (a batch adds at most cap / 2). */
static void keyset_add(keyset_t *ks, uint64_t h)
{
    size_t i = (size_t)(h ^ h >> 29) & (ks->cap - 1);
    for (; ks->h[i]; i = (i + 1) & (ks->cap - 1))
        if (ks->h[i] == h)
            return;
    ks->h[i] = h;
}

static int keyset_has(const keyset_t *ks, uint64_t h)
{
    for (size_t i = (size_t)(h ^ h >> 29) & (ks->cap - 1); ks->h[i]; i = (i + 1) & (ks->cap - 1))
        if (ks->h[i] == h)
            return 1;
    return 0;
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

/* The partitions of @p topics known before the first transaction, not found by its first
 * commit (a second of it on devstack). */
static void warm(tn_kafka_producer_t *p, const char *const *topics)
{
    if (tn_kafka_producer_warm(p, topics, 5000) != TN_OK)
        TN_LOG(TN_LOG_WARN, "ingest: the output topics' partitions are not known yet");
}

/* A transactional producer with @p txnid, its transactions initialized: transactions need the
 * broker, so retried with backoff until it answers or a stop is requested. */
static tn_err_t txn_producer_new(const ingest_cfg_t *cfg, const tn_kafka_opts_t *o,
                                 const char *txnid, tn_kafka_producer_t **out)
{
    char err[512];
    int64_t backoff = 500;
    for (;;) {
        tn_kafka_error_t e;
        *out = tn_kafka_producer_new(o, txnid, err, sizeof(err));
        if (!*out) {
            TN_LOG(TN_LOG_ERROR, "ingest: %s", err);
            return TN_ERR_CONFIG;
        }
        if (tn_kafka_txn_init(*out, cfg->txn_timeout_ms, &e) == TN_OK) {
            const char *topics[] = {cfg->topic_enriched, cfg->topic_dlq, NULL};
            warm(*out, topics);
            return TN_OK;
        }
        TN_LOG(TN_LOG_WARN, "ingest: cannot initialize transactions (retrying in %lld ms): %s",
               (long long)backoff, e.msg);
        tn_kafka_producer_destroy(*out);
        *out = NULL;
        if (tn_lifecycle_wait(backoff))
            return TN_ERR_STOPPED;
        backoff = backoff * 2 > 10000 ? 10000 : backoff * 2;
    }
}

/* Whether transactions write checkpoints (TAINA_INGEST_CHECKPOINTS): they close a window only
 * on a cluster that does not store the offsets a transaction commits (devstack); on Kafka they
 * would be records in every transaction and reads at every assignment for nothing (their flush
 * before the offsets measured no throughput cost on devstack: services/ingest/README.md).
 * Unknown counts as needed. */
static bool checkpoints_wanted(const ingest_cfg_t *cfg, tn_kafka_producer_t *p)
{
    if (!*cfg->checkpoint_topic || cfg->checkpoints == INGEST_CKPT_OFF)
        return false;
    if (cfg->checkpoints == INGEST_CKPT_ON)
        return true;
    int stores = tn_kafka_stores_txn_offsets(p, 5000);
    TN_LOG(TN_LOG_INFO, "ingest: checkpoints to %s %s (%s)", cfg->checkpoint_topic,
           stores == 1 ? "off" : "on",
           stores == 1   ? "the cluster stores transactional offsets"
           : stores == 0 ? "devstack does not store transactional offsets"
                         : "the cluster id did not come in time");
    return stores != 1;
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
    /* Two producers, so that a batch can produce while the one before it commits (run()): the
     * first keeps the instance's transactional id, the second has "-1" appended. */
    char *txnid1 = tn_xasprintf("%s-1", txnid);
    tn_err_t rc = txn_producer_new(cfg, &o, txnid, &in->txn[0]);
    if (rc == TN_OK)
        rc = txn_producer_new(cfg, &o, txnid1, &in->txn[1]);
    free(txnid);
    free(txnid1);
    in->txn_producer = in->txn[0];
    if (rc != TN_OK)
        return rc;
    const char *topics[] = {cfg->topic_raw, NULL};
    /* 2 MB of read-ahead, not the kafka module's 8 MB, which were a third of the process.
     * fill() wakes the fetchers as it takes records (tn_kafka_consumer_refill), but a refill
     * takes a round trip or two (more when a fetch waits at a broker on a drained partition),
     * and at 8 KB tickets 1 MB lasted the pipeline under 10 ms: it waited for records 20-90 ms
     * at a time, and 2 MB drained 8 KB tickets a third faster (7,200 -> 10,500 records/s;
     * waking the fetchers every 3 ms instead of 10 gained nothing). Peak RSS stays under
     * 30 MB (README, Figures). TAINA_KAFKA_* still overrides. */
    tn_cfg_prop_t readahead[] = {{"queued.max.messages.kbytes", "2048"}};
    tn_kafka_opts_t co = o;
    co.defaults = readahead;
    co.ndefaults = TN_ARRAY_LEN(readahead);
    in->consumer = tn_kafka_consumer_new(&co, cfg->group, topics, err, sizeof(err));
    if (!in->consumer) {
        TN_LOG(TN_LOG_ERROR, "ingest: %s", err);
        return TN_ERR_CONFIG;
    }
    if (checkpoints_wanted(cfg, in->txn[0])) {
        const char *ckpt[] = {cfg->checkpoint_topic, NULL};
        warm(in->txn[0], ckpt);
        warm(in->txn[1], ckpt);
        tn_kafka_consumer_set_checkpoints(in->consumer, &o, cfg->checkpoint_topic);
    }
    return TN_OK;
}

/* One polled record, enriched (and dumped) on either thread, then produced in poll order. */
typedef struct slot {
    tn_kafka_msg_t msg; /* released once enriched, unless it may still go to the DLQ */
    tn_trace_t trace;   /* its trace context, taken before that */
    char *value;        /* the tickets.enriched value, or NULL: dead letter for why */
    size_t len;
    char *id;
    size_t counts[MAX_PII], bad;
    ingest_reject_t why;
    double guess;     /* its enriched bytes as guessed when it was polled (raw * grow) */
    double secs;      /* how long its enrichment took (observed by account()) */
    atomic_int ready; /* enriched: the fields above are set (release) */
} slot_t;

/*
 * The second enrichment thread. The pipeline's thread polls records into the batch's slots and
 * publishes them a group at a time; both threads take the next published slot (an atomic index)
 * until none is left, and the pipeline goes back to polling while the worker finishes the record
 * it holds: only the end of a batch waits for the worker's last record, not every group (waiting
 * for it at each group of 64 was a tenth of the pipeline's time at 1 KB).
 */
struct ingest_pool {
    ingest_t *in;
    size_t max_out; /* the largest enriched record the producer takes (message.max.bytes) */
    double grow;    /* enriched bytes per raw byte, as seen so far (fill()) */
    int threaded;   /* the worker runs */
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* the worker waits for slots, the pipeline for the worker's last one */
    int started;       /* under mu: the worker is running */
    int idle;          /* under mu: the worker waits for slots */
    int draining;      /* under mu: the pipeline waits for the worker's last slot */
    int quit;
    slot_t *slots; /* the batch's (fixed) */
    /* published << 32 | next: slots[0..published) may be enriched, slots[next] is the next to
     * take. One word, so that a take compares both: a thread held up between reading them and
     * taking could otherwise take slot i of a later batch in which next is i again but slot i is
     * still being polled. */
    _Atomic uint64_t claim;
    atomic_size_t done; /* slots enriched */
};
typedef struct ingest_pool pool_t;

static void enrich_slot(ingest_t *in, slot_t *sl)
{
    const ingest_cfg_t *cfg = in->cfg;
    double t0 = tn_clock_mono_s();
    sl->value =
        ingest_enrich(&in->rules, sl->msg.value, sl->msg.value_len, (size_t)cfg->max_record_bytes,
                      sl->counts, &sl->bad, &sl->why, &sl->len, &sl->id);
    sl->secs = tn_clock_mono_s() - t0;
}

/* A polled record pins librdkafka's buffer of its whole message set (up to a MB or more,
 * decompressed) until it is released: once enriched, only its trace context is needed, unless
 * it may still become a dead letter (not enriched, or so large that the producer could refuse
 * the output: headers and record overhead are well under the 1 KiB of margin). */
static void enrich_done(pool_t *p, slot_t *sl)
{
    tn_kafka_msg_trace(&sl->msg, &sl->trace);
    if (sl->value && sl->len + strlen(sl->id) + 1024 <= p->max_out)
        tn_kafka_msg_release(&sl->msg);
}

static size_t claim_published(uint64_t claim)
{
    return (size_t)(claim >> 32);
}

static size_t claim_next(uint64_t claim)
{
    return (size_t)(claim & 0xFFFFFFFFu);
}

static int slot_to_take(pool_t *p)
{
    uint64_t c = atomic_load(&p->claim);
    return claim_next(c) < claim_published(c);
}

/* Enrich published slots until none is left to take. */
static void enrich_take(pool_t *p)
{
    for (uint64_t c = atomic_load(&p->claim); claim_next(c) < claim_published(c);) {
        if (!atomic_compare_exchange_weak(&p->claim, &c, c + 1))
            continue; /* c is the word now: the other thread took one, or a spurious failure */
        size_t i = claim_next(c);
        enrich_slot(p->in, &p->slots[i]);
        atomic_store_explicit(&p->slots[i].ready, 1, memory_order_release);
        atomic_fetch_add(&p->done, 1);
        c = atomic_load(&p->claim);
    }
}

static void *worker(void *arg)
{
    pool_t *p = arg;
    pthread_setname_np(pthread_self(), "ingest-enrich");
    free(tn_xmalloc(64)); /* settle this thread's malloc arena now (ingest_pool_start) */
    pthread_mutex_lock(&p->mu);
    p->started = 1;
    pthread_cond_broadcast(&p->cv);
    for (;;) {
        while (!p->quit && !slot_to_take(p)) {
            p->idle = 1;
            pthread_cond_wait(&p->cv, &p->mu);
        }
        p->idle = 0;
        if (p->quit)
            break;
        pthread_mutex_unlock(&p->mu);
        enrich_take(p);
        pthread_mutex_lock(&p->mu);
        if (p->draining)
            pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Slots up to @p n are polled: let both threads enrich them; this thread takes its share. */
static void pool_publish(pool_t *p, size_t n)
{
    TN_ASSERT(n <= 0xFFFFFFFFu);
    uint64_t c = atomic_load(&p->claim);
    while (!atomic_compare_exchange_weak(&p->claim, &c, (uint64_t)n << 32 | claim_next(c)))
        ;
    if (p->threaded) {
        pthread_mutex_lock(&p->mu);
        if (p->idle)
            pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    enrich_take(p);
}

/* Wait until every published slot is enriched (the worker's last one). */
static void pool_drain(pool_t *p)
{
    enrich_take(p);
    if (p->threaded) {
        pthread_mutex_lock(&p->mu);
        p->draining = 1;
        while (atomic_load(&p->done) < claim_published(atomic_load(&p->claim)))
            pthread_cond_wait(&p->cv, &p->mu);
        p->draining = 0;
        pthread_mutex_unlock(&p->mu);
    }
}

/* Start over at slot 0 for the next batch (drained). */
static void pool_reset(pool_t *p)
{
    atomic_store(&p->claim, 0);
    atomic_store(&p->done, 0);
}

/* Produce one enriched record (or its dead letter) inside the open transaction. */
static void produce_slot(ingest_t *in, slot_t *sl, batch_t *b)
{
    const ingest_cfg_t *cfg = in->cfg;
    tn_kafka_error_t e;
    b->in++;
    tn_log_ctx_set_trace(sl->trace.trace_id);
    if (sl->value) {
        char tp[64];
        tn_kafka_header_t h[2] = {tn_kafka_trace_header(&sl->trace, tp, sizeof(tp)),
                                  {TN_KAFKA_H_SCHEMA, "tickets.enriched/1", 18}};
        tn_kafka_record_t rec = {cfg->topic_enriched, -1,      sl->id, strlen(sl->id),
                                 sl->value,           sl->len, h,      2};
        /* the value becomes the producer's, not copied (some 10 KB a record at 8 KB tickets,
         * on the thread that also polls and enriches) */
        tn_err_t rc;
        while ((rc = tn_kafka_produce_give(in->txn_producer, &rec, &e)) == TN_AGAIN)
            tn_clock_sleep_ms(5); /* the local queue is full: the poll thread drains it */
        if (rc == TN_OK) {
            sl->value = NULL;
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

/* ---------------------------------------------------------------------------------------------
 * The committer: a thread that commits one transaction while the pipeline reads and enriches
 * the next batch. A producer has one transaction open at a time, so that batch is held in
 * memory and produced only after this commit returned and a new transaction began. */

typedef struct committer {
    ingest_t *in;
    pthread_t th;
    int threaded; /* 0: no thread could be started; commits run on the pipeline's thread */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int quit;
    int busy;        /* a commit was handed over and its outcome not taken yet (pipeline only) */
    int queued;      /* under mu: the thread has a commit to run */
    atomic_int done; /* the commit returned: rc, e and secs are set */
    tn_kafka_offsets_t *offs;
    tn_kafka_producer_t *prod; /* the transaction's */
    keyset_t keys;             /* its batch's keys */
    batch_t b;
    tn_err_t rc;
    tn_kafka_error_t e;
    double secs;
} committer_t;

static void commit_run(committer_t *c)
{
    double t0 = tn_clock_mono_s();
    memset(&c->e, 0, sizeof(c->e));
    c->rc = tn_kafka_txn_commit_offsets(c->prod, c->in->consumer, c->offs,
                                        c->in->cfg->txn_timeout_ms, &c->e);
    c->secs = tn_clock_mono_s() - t0;
    atomic_store(&c->done, 1);
}

static void *committer_main(void *arg)
{
    committer_t *c = arg;
    pthread_setname_np(pthread_self(), "ingest-commit"); /* top -H, perf: 15 bytes at most */
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->quit && !c->queued)
            pthread_cond_wait(&c->cv, &c->mu);
        if (!c->queued) /* quit, nothing left */
            break;
        pthread_mutex_unlock(&c->mu);
        commit_run(c);
        pthread_mutex_lock(&c->mu);
        c->queued = 0;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* Hand the open transaction over with exactly the ranges of its batch. Takes @p offs, and the
 * batch's keys: @p keys comes back empty, for the next batch. */
static void commit_start(committer_t *c, tn_kafka_offsets_t *offs, const batch_t *b, keyset_t *keys)
{
    TN_ASSERT(!c->busy);
    c->offs = offs;
    c->prod = c->in->txn_producer;
    c->b = *b;
    keyset_t k = c->keys;
    c->keys = *keys;
    *keys = k;
    memset(keys->h, 0, keys->cap * sizeof(*keys->h));
    c->busy = 1;
    atomic_store(&c->done, 0);
    if (!c->threaded) {
        commit_run(c);
        return;
    }
    pthread_mutex_lock(&c->mu);
    c->queued = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static int commit_done(const committer_t *c)
{
    return atomic_load(&c->done);
}

/* Revocation (inside the pipeline's poll): the commit in flight carries offsets of the
 * partitions that leave, so it returns first; the next owner then starts after that batch
 * instead of reading it again. Its outcome is taken as usual, after the poll. */
static void committer_wait(void *arg)
{
    committer_t *c = arg;
    if (!c->busy || !c->threaded)
        return;
    pthread_mutex_lock(&c->mu);
    while (c->queued)
        pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

/* Abort the open transaction; the consumer rewinds to the committed offsets, so the batch, and
 * whatever was read after it, is read again. Returns TN_ERR_FATAL when the producer cannot go
 * on. */
static tn_err_t abort_batch(ingest_t *in, tn_kafka_producer_t *prod, size_t n, const char *why)
{
    tn_kafka_error_t e;
    TN_LOG(TN_LOG_WARN, "ingest: aborting a batch of %zu records: %s", n, why);
    tn_metric_add(in->m.txn, TN_LABELS("aborted"), 1);
    if (tn_kafka_txn_abort(prod, in->consumer, in->cfg->txn_timeout_ms, &e) != TN_OK) {
        TN_LOG(TN_LOG_ERROR, "ingest: transaction abort failed: %s", e.msg);
        return TN_ERR_FATAL;
    }
    return TN_OK;
}

/* Wait for the commit in flight and take its outcome: metrics once committed, an abort when it
 * failed (*aborted = 1). Returns TN_ERR_FATAL when the producer cannot go on. */
static tn_err_t commit_finish(committer_t *c, int *aborted)
{
    ingest_t *in = c->in;
    *aborted = 0;
    if (!c->busy)
        return TN_OK;
    committer_wait(c);
    c->busy = 0;
    tn_kafka_offsets_destroy(c->offs);
    c->offs = NULL;
    if (c->rc == TN_OK) {
        tn_metric_observe(in->m.txn_commit_secs, TN_NOLABELS, c->secs);
        tn_metric_observe(in->m.txn_records, TN_NOLABELS, (double)c->b.in);
        batch_commit_metrics(in, &c->b);
        return TN_OK;
    }
    if (c->e.fatal) {
        TN_LOG(TN_LOG_ERROR, "ingest: transaction commit failed (fatal): %s", c->e.msg);
        return TN_ERR_FATAL;
    }
    *aborted = 1;
    return abort_batch(in, c->prod, c->b.in, c->e.msg);
}

static void committer_init(committer_t *c, ingest_t *in)
{
    memset(c, 0, sizeof(*c));
    c->in = in;
    keyset_init(&c->keys, (size_t)in->cfg->batch_max);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->threaded = pthread_create(&c->th, NULL, committer_main, c) == 0;
    if (!c->threaded)
        TN_LOG(TN_LOG_WARN, "ingest: no commit thread; commits stop the pipeline meanwhile");
    tn_kafka_consumer_on_revoke(in->consumer, committer_wait, c);
}

/* After the commit in flight (if any) returned: stop the thread. */
static void committer_cleanup(committer_t *c)
{
    tn_kafka_consumer_on_revoke(c->in->consumer, NULL, NULL);
    if (c->threaded) {
        pthread_mutex_lock(&c->mu);
        c->quit = 1;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->th, NULL);
    }
    tn_kafka_offsets_destroy(c->offs);
    free(c->keys.h);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
}

static void slots_release(slot_t *slots, size_t n)
{
    for (size_t i = 0; i < n; i++)
        slot_release(&slots[i]);
}

/* A batch as it is read: its slots polled, enriched and accounted in order and, once its
 * transaction is open, produced in order as they come. */
typedef struct fill {
    slot_t *slots;
    size_t held;      /* slots polled into the batch (published to be enriched) */
    size_t accounted; /* slots enriched, in order, whose bytes are known */
    size_t produced;  /* slots produced and released, in order (streaming only) */
    double bytes;     /* enriched values of slots [produced, held), guessed until enriched: held in
                       * memory until produced */
    int64_t deadline; /* linger: the batch ends by then (from its first record) */
    int64_t min_end;  /* the earliest end once the commit before it returned */
    uint64_t revs;    /* the consumer's revocations when the batch began */
    int full;         /* the memory budget stopped reading while the batch was held */
    int eager;        /* the batch before reached the budget: so will this one, stream at once */
    int budget;       /* the memory budget stopped reading (held or streaming) */
    batch_t *b;       /* the batch's open transaction: produce as accounted; NULL: hold */
    committer_t *cm;  /* the commit before it, maybe still in flight on the other producer */
    keyset_t *keys;   /* the keys it produced */
} fill_t;

/* Before slot @p sl is produced: its keys (the ticket id; the raw record's key, which a dead
 * letter keeps) join the batch's, and when the batch before it is still committing on the other
 * producer and produced one of them too, it waits for that commit: the records of a key (a ticket
 * and its deletion, say) reach their partition in the order they were read. */
static void key_order(fill_t *f, const slot_t *sl)
{
    uint64_t h[2];
    size_t n = 0;
    if (sl->id)
        h[n++] = key_hash(sl->id, strlen(sl->id));
    if (sl->msg.key)
        h[n++] = key_hash(sl->msg.key, sl->msg.key_len);
    for (size_t i = 0; i < n; i++) {
        if (f->cm->busy && !commit_done(f->cm) && keyset_has(&f->cm->keys, h[i]))
            committer_wait(f->cm);
        keyset_add(f->keys, h[i]);
    }
}

/* What slot @p sl (enriched) comes to in the batch's memory: its value, or its raw record for a
 * dead letter. */
static double slot_bytes(const slot_t *sl)
{
    return sl->value ? (double)sl->len : (double)sl->msg.value_len;
}

/* The slots enriched since the last call, in order up to the first one still being enriched:
 * release what they no longer need (here, on the consumer's thread) and put the bytes they came to
 * in place of the guess; the ratio of enriched to raw bytes follows (each call weighs a quarter).
 * With the transaction open, produce them too. */
static void account(ingest_t *in, pool_t *p, fill_t *f)
{
    double out = 0, raw = 0;
    size_t i = f->accounted;
    for (; i < f->held && atomic_load_explicit(&p->slots[i].ready, memory_order_acquire); i++) {
        slot_t *sl = &p->slots[i];
        double o = slot_bytes(sl);
        raw += (double)sl->msg.value_len; /* before enrich_done() lets the record go */
        enrich_done(p, sl);
        /* here, on one thread: observed by both enrichment threads, the histogram's lock was
         * contended at every few records (futex sleeps and wake-ups on 2 busy cores) */
        tn_metric_observe(in->m.enrich_secs, TN_NOLABELS, sl->secs);
        f->bytes += o - sl->guess;
        out += o;
    }
    if (raw > 0) {
        p->grow = 0.75 * p->grow + 0.25 * (out / raw);
        tn_metric_set(in->m.grow, TN_NOLABELS, p->grow);
    }
    f->accounted = i;
    for (; f->b && f->produced < f->accounted; f->produced++) {
        slot_t *sl = &f->slots[f->produced];
        f->bytes -= slot_bytes(sl); /* from here on counted in the producer's pending bytes */
        if (!f->b->failed) {        /* the rest is consumed again after the abort */
            key_order(f, sl);
            produce_slot(in, sl, f->b);
        }
        slot_release(sl);
    }
}

/* Whether the batch ends here. Held: when the commit in flight returned (the next transaction
 * can begin) and the batch is at least TAINA_INGEST_BATCH_MIN_TIME old, or with no commit in
 * flight when its linger time is up; once the memory budget stopped it, as soon as that commit
 * returned, to stream the rest. Streaming: when its linger time is up, or at once when a produce
 * failed or partitions were revoked (its transaction is aborted). Full batches and a stop end it
 * in fill_slots(). */
static int batch_ends(ingest_t *in, const fill_t *f)
{
    const committer_t *cm = f->cm;
    int64_t now = tn_clock_mono_ms();
    if (f->b)
        return f->b->failed || now >= f->deadline ||
               tn_kafka_consumer_revocations(in->consumer) != f->revs;
    if (cm->busy) /* stopped by the budget: streams now, on the other producer (run()) */
        return f->full || (commit_done(cm) && (!f->held || now >= f->min_end));
    return f->held && (f->full || now >= f->deadline);
}

/* fill() up to its end; the worker may still hold the last slot. */
static tn_err_t fill_slots(ingest_t *in, pool_t *p, fill_t *f)
{
    const committer_t *cm = f->cm;
    const ingest_cfg_t *cfg = in->cfg;
    while ((int64_t)f->held < cfg->batch_max && !tn_lifecycle_is_stopping() && !batch_ends(in, f)) {
        /* the budget: what is held here, and what the producer holds until acknowledged (the
         * batch committing, or this one's records streamed) */
        double left = (double)cfg->batch_max_bytes - f->bytes;
        if (cm->busy || f->b)
            left -= (double)(tn_kafka_producer_pending_bytes(in->txn[0]) +
                             tn_kafka_producer_pending_bytes(in->txn[1]));
        if (left <= 0) {
            f->full |= !f->b;
            f->budget = 1;
            account(in, p, f);
            tn_clock_sleep_ms(1);
            continue;
        }
        size_t n = 0, room = (size_t)cfg->batch_max - f->held;
        double raw = 0; /* raw bytes of this group */
        if (room > GROUP)
            room = GROUP;
        while (n < room && raw * p->grow < left) {
            /* Waiting for the first record of a group: while a commit is in flight, briefly,
             * to see it return; with records in the batch, until the linger time is up; else
             * idle. */
            int64_t wait = n          ? 0
                           : cm->busy ? COMMIT_LOOK_MS
                           : f->held  ? f->deadline - tn_clock_mono_ms()
                                      : 200;
            if (!n && wait <= 0)
                break;
            tn_kafka_error_t e;
            slot_t *sl = &f->slots[f->held + n];
            memset(sl, 0, sizeof(*sl));
            if (wait > 0) /* librdkafka 2.0 leaves a drained read-ahead empty up to 1 s */
                wait = tn_kafka_consumer_refill(in->consumer, wait);
            tn_err_t prc = tn_kafka_consumer_poll(in->consumer, wait, &sl->msg, &e);
            atomic_store(&in->pipeline_ready, tn_kafka_consumer_assigned(in->consumer) > 0);
            if (prc == TN_AGAIN)
                break;
            if (prc != TN_OK) {
                if (e.fatal) { /* the group polled so far was not published: let it go */
                    slots_release(f->slots + f->held, n);
                    return TN_ERR_FATAL;
                }
                break;
            }
            raw += (double)sl->msg.value_len;
            n++;
        }
        if (n == 0)
            continue;
        if (!f->held) {
            int64_t now = tn_clock_mono_ms();
            f->deadline = now + cfg->batch_linger_ms;
            f->min_end = now + cfg->batch_min_ms;
        }
        tn_kafka_consumer_refill(in->consumer, 0); /* records left the read-ahead */
        for (size_t i = f->held; i < f->held + n; i++) {
            f->slots[i].guess = (double)f->slots[i].msg.value_len * p->grow;
            f->bytes += f->slots[i].guess;
        }
        f->held += n;
        pool_publish(p, f->held); /* back here once no slot is left to take */
        account(in, p, f);
        f->full |= f->eager && !f->b;
    }
    return TN_OK;
}

/* Read into the batch @p f: consume groups of up to GROUP records (what is already fetched, no
 * waiting past the first) and enrich each group on two threads as it comes (the worker may
 * finish a group's last record while the next group is polled), until batch_ends(), the batch is
 * full or the stop; then the last records are waited for (and, streaming, produced).
 *
 * A batch is held here while the transaction before it commits (on the committer's thread): a
 * producer has one transaction open at a time. It ends when that commit returned and the batch
 * is at least TAINA_INGEST_BATCH_MIN_TIME old, with no commit in flight when its linger time is
 * up, when it is full or at a stop; then run() begins its transaction and produces it. The
 * minimum age keeps transactions few under load: librdkafka 2.0.2's main thread spins about 1 ms
 * around each AddPartitionsToTxn (a 1 ms timer it serves with a zero timeout, fixed in
 * librdkafka 2.4), some 2-3 ms of CPU per transaction. Nothing of a held batch reaches the
 * broker before its transaction: one abandoned then (a failed commit before it, a revocation, a
 * stop) leaves no records behind even on a cluster without transaction markers (devstack).
 *
 * When the memory budget stops the reading of a held batch (large records at a high rate: 8 KB
 * tickets filled 2 MiB with half of TAINA_INGEST_BATCH_MAX), the batch streams instead: once the
 * commit before it returned, run() begins its transaction, produces what was held and reads on
 * with @p f->b set, each record produced as soon as it is enriched, until the batch has
 * TAINA_INGEST_BATCH_MAX records or its linger time is up. So transactions keep their size
 * whatever the records' size, while only what is read during a commit is held. A streaming
 * batch that must be abandoned (a revocation, a failed produce) is aborted: on Kafka nothing of it
 * is read; on devstack, which has no transaction markers, its outputs stay visible (README).
 *
 * Memory: TAINA_INGEST_BATCH_MAX_BYTES bounds the enriched bytes held here plus those the
 * producer holds until the broker acknowledged them (the batch committing, or this one's streamed
 * records). While they are at the budget, reading pauses until acknowledgments free room or the
 * commit returns. A group is cut short where its raw bytes, grown by the enriched/raw ratio seen
 * so far, would pass what is left. */
static tn_err_t fill(ingest_t *in, pool_t *p, fill_t *f)
{
    tn_err_t rc = fill_slots(in, p, f);
    pool_drain(p);
    account(in, p, f);
    TN_ASSERT(f->accounted == f->held && (!f->b || f->produced == f->held));
    if (rc != TN_OK) {
        slots_release(f->slots + f->produced, f->held - f->produced);
        f->produced = f->held;
    }
    return rc;
}

/* The batch's open transaction failed or must not commit: abort it (the consumer is rewound to
 * the committed offsets, so its records come again). */
static tn_err_t abort_streamed(ingest_t *in, fill_t *f, const char *why)
{
    tn_err_t rc = abort_batch(in, in->txn_producer, f->b->in, why);
    f->b = NULL;
    return rc;
}

/* Batch k+1 is read and enriched while the transaction of batch k commits on the committer's
 * thread. Held, it begins its own transaction once that commit returned, on the first producer.
 * When the memory budget stopped it first (large records at a high rate), it does not wait: it
 * begins on the other producer at once and streams its records while k commits (fill()): the
 * records k left in flight and k+1's are acknowledged together, instead of k+1 standing still
 * while the budget is full of k's. It commits only once k's commit returned, and is aborted when
 * k's failed; a record of a key that k produced too waits for k's commit (key_order()). Each
 * transaction's input offsets and checkpoints are the ranges of its own batch
 * (tn_kafka_consumer_take_offsets(), taken as the batch ends), not the consumer's position at
 * commit time, which is already past the next batch. When a commit fails, the batch read meanwhile
 * is dropped with it and both are read again from the committed offsets. */
static tn_err_t run(ingest_t *in, pool_t *p, committer_t *cm, slot_t *slots, keyset_t *keys)
{
    int eager = 0;
    while (!tn_lifecycle_is_stopping() || cm->busy) {
        uint64_t revs = tn_kafka_consumer_revocations(in->consumer);
        fill_t f = {.slots = slots, .revs = revs, .eager = eager, .cm = cm, .keys = keys};
        int aborted = 0;
        pool_reset(p);
        if (fill(in, p, &f) != TN_OK)
            return TN_ERR_FATAL;
        int overlap = f.held && f.full && cm->busy && !commit_done(cm) &&
                      !tn_lifecycle_is_stopping() &&
                      revs == tn_kafka_consumer_revocations(in->consumer);
        if (overlap) {
            in->txn_producer = cm->prod == in->txn[0] ? in->txn[1] : in->txn[0];
        } else {
            if (commit_finish(cm, &aborted) != TN_OK) {
                slots_release(slots, f.held);
                return TN_ERR_FATAL;
            }
            if (aborted) { /* the consumer was rewound: this batch comes again */
                slots_release(slots, f.held);
                continue;
            }
            if (f.held && revs != tn_kafka_consumer_revocations(in->consumer)) {
                /* Partitions left while this batch was read: some of its records may belong
                 * to another member now. Read again from the committed offsets what is still
                 * ours. */
                slots_release(slots, f.held);
                if (tn_kafka_consumer_rewind(in->consumer, in->cfg->txn_timeout_ms) != TN_OK)
                    return TN_ERR_FATAL;
                continue;
            }
            if (!f.held)
                continue;
            in->txn_producer = in->txn[0];
        }
        tn_kafka_error_t e;
        if (tn_kafka_txn_begin(in->txn_producer, &e) != TN_OK) {
            slots_release(slots, f.held);
            TN_LOG(TN_LOG_ERROR, "ingest: cannot begin a transaction: %s", e.msg);
            return TN_ERR_FATAL;
        }
        batch_t b;
        memset(&b, 0, sizeof(b));
        /* the checkpoint partitions of the ranges read so far join the transaction with the
         * outputs' (the same partitions, almost always, as those of the whole batch) */
        tn_kafka_offsets_t *early = tn_kafka_consumer_peek_offsets(in->consumer);
        b.failed =
            tn_kafka_txn_checkpoint_partitions(in->txn_producer, in->consumer, early, &e) != TN_OK;
        tn_kafka_offsets_destroy(early);
        f.b = &b;
        account(in, p, &f); /* the held records, in order */
        if (f.full && !b.failed && !tn_lifecycle_is_stopping() && fill(in, p, &f) != TN_OK)
            return TN_ERR_FATAL;
        if (overlap) { /* k's outcome: k+1 commits only after k */
            if (commit_finish(cm, &aborted) != TN_OK)
                return TN_ERR_FATAL;
            if (aborted) {
                if (abort_streamed(in, &f, "the transaction before it failed") != TN_OK)
                    return TN_ERR_FATAL;
                continue;
            }
        }
        if (b.failed) {
            if (abort_streamed(in, &f, "a produce failed") != TN_OK)
                return TN_ERR_FATAL;
            continue;
        }
        if (revs != tn_kafka_consumer_revocations(in->consumer)) { /* see above */
            if (abort_streamed(in, &f, "partitions were revoked during the transaction") != TN_OK)
                return TN_ERR_FATAL;
            continue;
        }
        /* the reports' thread stands aside while the commit is handed over, not after */
        tn_kafka_txn_commit_soon(in->txn_producer);
        /* the batch's ranges (nothing is polled from here to its commit) */
        commit_start(cm, tn_kafka_consumer_take_offsets(in->consumer), &b, keys);
        eager = f.budget; /* not f.full: once records are small again, batches are held again */
    }
    return TN_OK;
}

void ingest_pool_start(ingest_t *in)
{
    pool_t *p = tn_xcalloc(1, sizeof(*p));
    p->in = in;
    p->grow = 2;
    atomic_init(&p->claim, 0);
    atomic_init(&p->done, 0);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->threaded = pthread_create(&p->th, NULL, worker, p) == 0;
    if (!p->threaded)
        TN_LOG(TN_LOG_WARN, "ingest: no second enrichment thread; enriching on one");
    pthread_mutex_lock(&p->mu);
    while (p->threaded && !p->started)
        pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    in->pool = p;
}

static void pool_stop(pool_t *p)
{
    if (!p)
        return;
    if (p->threaded) {
        pthread_mutex_lock(&p->mu);
        p->quit = 1;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->th, NULL);
    }
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

tn_err_t ingest_pipeline_run(ingest_t *in)
{
    pool_t *p = in->pool;
    p->max_out = tn_kafka_producer_max_record_bytes(in->txn[0]);
    slot_t *slots = tn_xcalloc((size_t)in->cfg->batch_max, sizeof(*slots));
    p->slots = slots;
    committer_t cm;
    committer_init(&cm, in);
    keyset_t keys;
    keyset_init(&keys, (size_t)in->cfg->batch_max);
    tn_err_t rc = run(in, p, &cm, slots, &keys);
    int aborted = 0;
    if (commit_finish(&cm, &aborted) != TN_OK) /* left in flight by a fatal error */
        rc = TN_ERR_FATAL;
    committer_cleanup(&cm);
    free(keys.h);
    free(slots);
    return rc;
}

void ingest_pipeline_close(ingest_t *in)
{
    pool_stop(in->pool);
    in->pool = NULL;
    if (in->consumer)
        tn_kafka_consumer_close(in->consumer);
    tn_kafka_consumer_destroy(in->consumer);
    tn_kafka_producer_destroy(in->txn[0]);
    tn_kafka_producer_destroy(in->txn[1]);
    in->consumer = NULL;
    in->txn_producer = in->txn[0] = in->txn[1] = NULL;
}
