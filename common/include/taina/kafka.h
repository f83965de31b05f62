/**
 * @file kafka.h
 * @brief Kafka for the suite (wraps librdkafka): idempotent producer with delivery accounting,
 *        group consumer with manual commits and cooperative-sticky assignment, transactions
 *        for consume-transform-produce, DLQ records, and consumer lag gauges.
 *
 * Producer defaults: enable.idempotence=true, acks=all, compression.type=lz4, linger.ms=5.
 * Consumer defaults: enable.auto.commit=false, enable.auto.offset.store=false,
 * partition.assignment.strategy=cooperative-sticky, isolation.level=read_committed,
 * auto.offset.reset=earliest. Passthrough properties (TAINA_KAFKA_*) are applied last, so
 * SASL/SSL settings and overrides work.
 *
 * Metrics (when a registry is given):
 *   taina_kafka_records_produced_total{topic}, taina_kafka_produce_errors_total{topic,reason},
 *   taina_kafka_records_consumed_total{topic},
 *   taina_kafka_consumer_lag{group,topic,partition} (assigned partitions only) and
 *   taina_kafka_consumer_group_lag{group,topic} (their sum; the autoscaling signal).
 * With emf_namespace set, that sum is also written to stdout as a CloudWatch Embedded Metric
 * Format line (metric ConsumerLagSum, dimensions Service and ConsumerGroup) for ECS.
 *
 * @thread A producer may be used from many threads at once; its delivery reports are served by
 *         its own poll thread. A consumer is used from one thread at a time; its rebalance and
 *         statistics callbacks run inside tn_kafka_consumer_poll() on that thread.
 */
#ifndef TAINA_KAFKA_H
#define TAINA_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "taina/config.h"
#include "taina/err.h"
#include "taina/metrics.h"
#include "taina/trace.h"

typedef struct tn_kafka_producer tn_kafka_producer_t;
typedef struct tn_kafka_consumer tn_kafka_consumer_t;

/** DLQ header names (DESIGN.md). */
#define TN_KAFKA_H_ERROR        "taina-error"
#define TN_KAFKA_H_ERROR_DETAIL "taina-error-detail"
#define TN_KAFKA_H_SRC_TOPIC    "taina-source-topic"
#define TN_KAFKA_H_SRC_PART     "taina-source-partition"
#define TN_KAFKA_H_SRC_OFFSET   "taina-source-offset"
#define TN_KAFKA_H_SCHEMA       "taina-schema"

/** What the caller of a failed operation should do (STYLE rule 9). */
typedef struct tn_kafka_error {
    int retriable; /**< the same call may succeed later */
    int abortable; /**< the transaction must be aborted (then the batch redone) */
    int fatal;     /**< the client is unusable: recreate it (e.g. producer fenced) */
    char msg[256]; /**< librdkafka's text */
} tn_kafka_error_t;

/** Connection options shared by producers and consumers. All pointers borrowed during _new. */
typedef struct tn_kafka_opts {
    const char *brokers;           /**< bootstrap servers */
    const tn_cfg_prop_t *defaults; /**< the program's own settings, before props (may be NULL) */
    size_t ndefaults;
    const tn_cfg_prop_t *props; /**< passthrough properties, applied last (may be NULL) */
    size_t nprops;
    tn_metrics_t *metrics;     /**< borrowed, must outlive the client; NULL = no metrics */
    int64_t stats_interval_ms; /**< statistics (lag gauges) period; 0 = off */
    const char *client_id;     /**< default "taina" */
    /** Non-NULL: a consumer also writes, per statistics interval and topic, one CloudWatch EMF
     *  line with its group's ConsumerLagSum to stdout (tn_metrics_emf_lag()). */
    const char *emf_namespace;
    const char *emf_service; /**< the EMF `Service` dimension (the program's name) */
    /** Transactional producers with librdkafka before 2.4, whose main thread busy-waits the
     *  last millisecond before each timer: 0 (the default) = it naps instead; 1 = it spins at
     *  nice 19 (kafka.c). */
    int spin_nice;
} tn_kafka_opts_t;

/** One header of a record to produce. */
typedef struct tn_kafka_header {
    const char *name;
    const void *value;
    size_t len;
} tn_kafka_header_t;

/** A record to produce. Every buffer is copied by the produce call. */
typedef struct tn_kafka_record {
    const char *topic;
    int32_t partition; /**< -1: by key (murmur2, as Java clients) */
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    const tn_kafka_header_t *headers;
    size_t nheaders;
} tn_kafka_record_t;

/**
 * A consumed record. Fields are borrowed views into librdkafka's message: valid until
 * tn_kafka_msg_release().
 */
typedef struct tn_kafka_msg {
    const char *topic;
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms; /**< -1 when unknown */
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    void *rkm; /**< private: the rd_kafka_message_t */
} tn_kafka_msg_t;

/* ------------------------------------------------------------------------------------------ */
/* Producer                                                                                     */

/**
 * @brief A producer; with @p transactional_id a transactional one (call tn_kafka_txn_init()),
 *        whose librdkafka main thread, with librdkafka before 2.4, naps where it would
 *        busy-wait for its timers, and runs with a 100 us time slice (kafka.c; o->spin_nice).
 * @returns NULL with one sentence in @p errbuf (e.g. an unknown passthrough property).
 *          Caller owns the result; free with tn_kafka_producer_destroy().
 */
tn_kafka_producer_t *tn_kafka_producer_new(const tn_kafka_opts_t *o, const char *transactional_id,
                                           char *errbuf, size_t errlen);
/** @brief Flush (up to 10 s), stop the poll thread and free. NULL ok. */
void tn_kafka_producer_destroy(tn_kafka_producer_t *p);
/** @brief How many naps transactional producers' main threads took in place of busy-waiting
 *         (all producers of the process; see tn_kafka_producer_new()). */
unsigned long tn_kafka_main_thread_naps(void);

/**
 * @brief Enqueue one record; the outcome arrives as a delivery report (counted).
 * @returns TN_OK; TN_ERR_TOO_LARGE (record over message.max.bytes); TN_AGAIN (local queue full,
 *          retry after a moment); TN_ERR_KAFKA otherwise. Reason in @p e (may be NULL).
 */
tn_err_t tn_kafka_produce(tn_kafka_producer_t *p, const tn_kafka_record_t *r, tn_kafka_error_t *e);

/**
 * @brief tn_kafka_produce() without the copy of the value: on TN_OK the producer owns r->value
 *        (from malloc) and frees it once the record is delivered, refused or purged; on any other
 *        outcome it stays the caller's.
 */
tn_err_t tn_kafka_produce_give(tn_kafka_producer_t *p, const tn_kafka_record_t *r,
                               tn_kafka_error_t *e);

/**
 * @brief Produce @p n records and wait until the broker acknowledged or refused each, or
 *        @p timeout_ms passed. results[i] is TN_OK when record i is durably written.
 * @returns TN_OK when all succeeded; TN_ERR_TIMEOUT when some were still unacknowledged at the
 *          deadline (their result is TN_ERR_TIMEOUT; they may still be delivered later);
 *          TN_ERR_KAFKA when some failed.
 */
tn_err_t tn_kafka_produce_sync(tn_kafka_producer_t *p, const tn_kafka_record_t *recs, size_t n,
                               tn_err_t *results, int64_t timeout_ms);

/** The delivery of records produced by tn_kafka_produce_start(). */
typedef struct tn_kafka_batch tn_kafka_batch_t;

/**
 * @brief Enqueue @p n records and return at once (waiting only while the local queue is full,
 *        up to @p timeout_ms): their acknowledgments are collected in the handle. Caller owns
 *        the result and ends it with tn_kafka_batch_wait() (exactly once).
 */
tn_kafka_batch_t *tn_kafka_produce_start(tn_kafka_producer_t *p, const tn_kafka_record_t *recs,
                                         size_t n, int64_t timeout_ms);
/** @brief Whether every record of @p b was acknowledged or refused (nothing left to wait for). */
bool tn_kafka_batch_done(tn_kafka_batch_t *b);
/**
 * @brief Wait up to @p timeout_ms for the records of @p b, fill @p results (n entries, may be
 *        NULL) like tn_kafka_produce_sync() and free the handle (late reports are dropped).
 *        NULL: TN_OK. @returns as tn_kafka_produce_sync().
 */
tn_err_t tn_kafka_batch_wait(tn_kafka_batch_t *b, tn_err_t *results, int64_t timeout_ms);

/** @brief Wait until every enqueued record is acknowledged. TN_OK or TN_ERR_TIMEOUT. */
tn_err_t tn_kafka_producer_flush(tn_kafka_producer_t *p, int64_t timeout_ms);

/** Delivery accounting since the producer was created. */
typedef struct tn_kafka_producer_stats {
    uint64_t produced;  /**< enqueued */
    uint64_t delivered; /**< acknowledged by the broker */
    uint64_t failed;    /**< refused or timed out */
} tn_kafka_producer_stats_t;

/** @brief Current delivery accounting. */
void tn_kafka_producer_get_stats(tn_kafka_producer_t *p, tn_kafka_producer_stats_t *st);
/**
 * @brief Bytes (keys and values) of the records enqueued on @p p that have no delivery report
 *        yet: what the producer still holds of them (acknowledged, refused and purged records
 *        are off). E.g. to bound memory across a batch being produced and the next one.
 * @thread any.
 */
int64_t tn_kafka_producer_pending_bytes(tn_kafka_producer_t *p);
/**
 * @brief Learn the partitions and leaders of @p topics (NULL-terminated) now, for the first
 *        records to them: librdkafka 2.0 looks a topic it has not seen up only at its next
 *        metadata scan, up to a second after the first produce (a transaction's first commit
 *        waited for it). TN_ERR_KAFKA when a topic is unknown or the cluster did not answer in
 *        @p timeout_ms (records to it are still looked up the usual way).
 */
tn_err_t tn_kafka_producer_warm(tn_kafka_producer_t *p, const char *const *topics,
                                int64_t timeout_ms);
/**
 * @brief The producer's message.max.bytes: a record whose key, value and headers together are
 *        larger is refused by tn_kafka_produce() with TN_ERR_TOO_LARGE.
 */
size_t tn_kafka_producer_max_record_bytes(const tn_kafka_producer_t *p);
/**
 * @brief Whether the cluster stores the offsets a transaction commits (TxnOffsetCommit): 0 for
 *        librdkafka's mock cluster (devstack), which acknowledges them without storing them and
 *        is told by its cluster id ("mockCluster..."), 1 for any other cluster, -1 when the
 *        cluster id did not come within @p timeout_ms.
 */
int tn_kafka_stores_txn_offsets(tn_kafka_producer_t *p, int timeout_ms);

/* ------------------------------------------------------------------------------------------ */
/* Transactions (consume-transform-produce, exactly once)                                       */

/** @brief Register the transactional id with the cluster (fences older instances). */
tn_err_t tn_kafka_txn_init(tn_kafka_producer_t *p, int64_t timeout_ms, tn_kafka_error_t *e);
/** @brief Begin a transaction. */
tn_err_t tn_kafka_txn_begin(tn_kafka_producer_t *p, tn_kafka_error_t *e);
/**
 * @brief Add what the consumer read since the last take (tn_kafka_consumer_take_offsets()) to
 *        the transaction, then commit it: outputs and input offsets become visible at once.
 * @returns TN_OK; on failure @p e says whether to abort (abortable) or recreate (fatal).
 */
tn_err_t tn_kafka_txn_commit(tn_kafka_producer_t *p, tn_kafka_consumer_t *cons, int64_t timeout_ms,
                             tn_kafka_error_t *e);
/**
 * The input ranges of one batch, per partition: [first, next), where next is the offset after
 * the batch's last record and first is where the previous batch on that partition ended (the
 * group's committed offset after an assignment or a rewind, else the batch's first record).
 * Taken from the consumer with tn_kafka_consumer_take_offsets(); with the group's metadata of
 * that moment (for fencing).
 */
typedef struct tn_kafka_offsets tn_kafka_offsets_t;

/**
 * @brief The ranges read since the last take (or the last rewind): every record returned by
 *        tn_kafka_consumer_poll() since then, and every record it skipped (checkpoints). The
 *        next take on a partition starts where this one ends.
 * @returns never NULL (empty when nothing was read). Caller owns the result; free with
 *          tn_kafka_offsets_destroy().
 * @thread the thread that polls @p cons.
 */
tn_kafka_offsets_t *tn_kafka_consumer_take_offsets(tn_kafka_consumer_t *cons);
/**
 * @brief The same ranges as tn_kafka_consumer_take_offsets() would give now, without ending
 *        them: the next take still starts where the last one ended (a transaction that keeps
 *        reading after it began can join its checkpoint partitions early).
 * @thread the thread that polls @p cons.
 */
tn_kafka_offsets_t *tn_kafka_consumer_peek_offsets(tn_kafka_consumer_t *cons);
/** @brief Number of partitions in @p o. */
size_t tn_kafka_offsets_count(const tn_kafka_offsets_t *o);
/** @brief The i-th range of @p o; @p topic is borrowed, valid until @p o is destroyed. */
tn_err_t tn_kafka_offsets_at(const tn_kafka_offsets_t *o, size_t i, const char **topic,
                             int32_t *partition, int64_t *first, int64_t *next);
/** @brief Free. NULL ok. */
void tn_kafka_offsets_destroy(tn_kafka_offsets_t *o);

/**
 * @brief Commit the open transaction with exactly @p offs as its input: the "next" offsets go to
 *        the transaction (and, with checkpoints, one record per range, after every output was
 *        acknowledged), then, once it committed, to the group once more (devstack, see
 *        tn_kafka_txn_commit()). @p offs is borrowed; @p cons may be NULL (no offsets).
 * @returns TN_OK; on failure @p e says whether to abort (abortable) or recreate (fatal).
 * @thread any thread, also while another thread polls @p cons: it uses neither the consumer's
 *         assignment nor its ranges, only librdkafka calls that are thread-safe.
 */
tn_err_t tn_kafka_txn_commit_offsets(tn_kafka_producer_t *p, tn_kafka_consumer_t *cons,
                                     const tn_kafka_offsets_t *offs, int64_t timeout_ms,
                                     tn_kafka_error_t *e);

/**
 * @brief The open transaction's records are all produced and its commit comes next (maybe on
 *        another thread): the thread that serves delivery reports starts standing aside now,
 *        which the commit would otherwise ask for and wait for (a commit serves the reports
 *        itself). Until that commit, or an abort, no report is served: produce nothing more.
 */
void tn_kafka_txn_commit_soon(tn_kafka_producer_t *p);

/**
 * @brief With checkpoints, right after tn_kafka_txn_begin() and before the batch's outputs: one
 *        empty record per range of @p offs ({"first":F,"next":F}, which readers skip) under the
 *        key its checkpoint will have, so that the checkpoint partitions join the transaction
 *        with the outputs' partitions. librdkafka registers the partitions a transaction adds
 *        in waves, each after a 1 ms timer through whose last millisecond its main thread spins
 *        before 2.4 (see kafka.c): the checkpoints written at the commit (after the outputs were
 *        acknowledged) then add no second wave. Nothing to do without checkpoints.
 * @returns TN_OK; on failure @p e says whether to abort.
 */
tn_err_t tn_kafka_txn_checkpoint_partitions(tn_kafka_producer_t *p, tn_kafka_consumer_t *cons,
                                            const tn_kafka_offsets_t *offs, tn_kafka_error_t *e);

/**
 * @brief Abort the transaction and rewind @p cons (may be NULL) to its committed offsets, so
 *        the aborted batch is consumed again.
 */
tn_err_t tn_kafka_txn_abort(tn_kafka_producer_t *p, tn_kafka_consumer_t *cons, int64_t timeout_ms,
                            tn_kafka_error_t *e);

/* ------------------------------------------------------------------------------------------ */
/* Consumer                                                                                     */

/**
 * @brief A consumer of @p topics (NULL-terminated).
 * @param group the consumer group; NULL = no group: every partition of the topics is assigned
 *        from the beginning and nothing is committed (for services that materialize a topic).
 * @returns NULL with one sentence in @p errbuf. Caller owns the result; free with
 *          tn_kafka_consumer_destroy().
 */
tn_kafka_consumer_t *tn_kafka_consumer_new(const tn_kafka_opts_t *o, const char *group,
                                           const char *const *topics, char *errbuf, size_t errlen);
/** @brief Close (commits stored offsets, leaves the group) if not closed yet, then free. NULL ok.
 */
void tn_kafka_consumer_destroy(tn_kafka_consumer_t *cons);

/**
 * @brief Wait up to @p timeout_ms for a record.
 * @returns TN_OK with @p out filled (release it with tn_kafka_msg_release()); TN_AGAIN when none
 *          arrived (also for partition EOF); TN_ERR_KAFKA for a consumer error (logged; the
 *          consumer goes on unless it is fatal, see @p e).
 */
tn_err_t tn_kafka_consumer_poll(tn_kafka_consumer_t *cons, int64_t timeout_ms, tn_kafka_msg_t *out,
                                tn_kafka_error_t *e);
/** @brief Release a polled record. */
void tn_kafka_msg_release(tn_kafka_msg_t *m);
/**
 * @brief The value of header @p name of a polled record (the last one if repeated).
 * @returns a borrowed pointer valid until release, or NULL. @p len may be NULL.
 */
const void *tn_kafka_msg_header(const tn_kafka_msg_t *m, const char *name, size_t *len);
/** @brief Number of headers of a polled record, and the i-th one. */
size_t tn_kafka_msg_header_count(const tn_kafka_msg_t *m);
tn_err_t tn_kafka_msg_header_at(const tn_kafka_msg_t *m, size_t i, const char **name,
                                const void **value, size_t *len);

/** @brief Mark @p m processed: its offset + 1 is committed by the next commit or close. */
tn_err_t tn_kafka_consumer_store(tn_kafka_consumer_t *cons, const tn_kafka_msg_t *m);
/** @brief Commit the stored offsets (synchronously when @p sync). No-op without a group. */
tn_err_t tn_kafka_consumer_commit(tn_kafka_consumer_t *cons, int sync);
/** @brief Stop (or resume) fetching one partition, e.g. while an upstream is down. */
tn_err_t tn_kafka_consumer_pause(tn_kafka_consumer_t *cons, const char *topic, int32_t partition);
tn_err_t tn_kafka_consumer_resume(tn_kafka_consumer_t *cons, const char *topic, int32_t partition);
/** @brief Continue one partition from @p offset. */
tn_err_t tn_kafka_consumer_seek(tn_kafka_consumer_t *cons, const char *topic, int32_t partition,
                                int64_t offset);
/**
 * @brief Keep transactional progress in @p topic too. From now on tn_kafka_txn_commit() and
 *        tn_kafka_txn_commit_offsets() with this consumer also write, inside the transaction,
 *        one record per range of the batch (tn_kafka_offsets_t; key "GROUP|TOPIC|PARTITION",
 *        value {"first":F,"next":N}, consecutive batches chained); after each assignment the
 *        consumer reads them back and, from each partition's committed offset, follows the
 *        ranges of committed transactions that cover it (F <= offset < N: go on from N), and
 *        skips the records below where the chain ends. This closes the window in
 *        which a crash between the transaction commit and the offset commit would process a
 *        batch twice on a cluster that does not store transactional offsets (librdkafka's mock,
 *        i.e. devstack). On Kafka it costs one small record per partition and transaction, and a
 *        round trip (the outputs are acknowledged before the checkpoints go out): use it where
 *        tn_kafka_stores_txn_offsets() says 0.
 * @param o the options the consumer was created with: brokers are copied, the passthrough
 *        properties are borrowed (they must outlive the consumer).
 * @returns TN_OK; TN_ERR_INVALID without a group or topic.
 */
tn_err_t tn_kafka_consumer_set_checkpoints(tn_kafka_consumer_t *cons, const tn_kafka_opts_t *o,
                                           const char *topic);
/**
 * @brief Remember the end offsets (high watermarks) of the assigned partitions as they are now
 *        (asks the brokers). For a service that materializes a topic: it is ready once
 *        tn_kafka_consumer_reached_ends() says it read everything that was there at start.
 */
tn_err_t tn_kafka_consumer_mark_ends(tn_kafka_consumer_t *cons, int64_t timeout_ms);
/**
 * @brief Make the consumer's fetchers look at their queue again: with librdkafka before 2.1 a
 *        fetcher that stopped at queued.max.messages.kbytes otherwise waits up to a second.
 *        Hands a ListOffsets request for the assigned partitions, which reaches every leader,
 *        to a thread of the consumer (started on first use, stopped at close) and returns at
 *        once; calls made while one is in flight become one. Call it often (every few ms)
 *        while records are taken from a small read-ahead. Nothing with librdkafka >= 2.1.
 * @thread the thread that polls @p cons.
 */
void tn_kafka_consumer_wake_fetchers(tn_kafka_consumer_t *cons);
/** How often tn_kafka_consumer_refill() wakes the fetchers at most, and the longest poll it allows
 *  while records come (ms). */
#define TN_KAFKA_REFILL_MS 10
/**
 * @brief Keep a small read-ahead full while a backlog drains: wakes the fetchers
 *        (tn_kafka_consumer_wake_fetchers()) at most every TN_KAFKA_REFILL_MS while records came
 *        in the last second (the last one tn_kafka_consumer_poll() returned), and returns how
 *        long the next poll may wait: @p wait_ms, cut to TN_KAFKA_REFILL_MS so that a poll on a
 *        queue run dry wakes them again. Idle (no record for a second), it sends nothing and
 *        returns @p wait_ms. Call it with 0 after taking records (nothing waits then).
 * @thread the thread that polls @p cons.
 */
int64_t tn_kafka_consumer_refill(tn_kafka_consumer_t *cons, int64_t wait_ms);
/** @brief 1 when every assigned partition's position is at or past its marked end. */
int tn_kafka_consumer_reached_ends(tn_kafka_consumer_t *cons);
/**
 * @brief Seek every assigned partition back to its committed offset and forget the ranges read
 *        since the last take: a batch read but dropped before any transaction (e.g. after a
 *        revocation) is read again. tn_kafka_txn_abort() does the same after its abort.
 * @thread the thread that polls @p cons.
 */
tn_err_t tn_kafka_consumer_rewind(tn_kafka_consumer_t *cons, int64_t timeout_ms);
/**
 * @brief How many times partitions were revoked from or lost by this consumer so far: when it
 *        changed while a batch was read, records of partitions it no longer owns may be in it.
 */
uint64_t tn_kafka_consumer_revocations(const tn_kafka_consumer_t *cons);
/**
 * @brief Call @p fn(@p arg) when partitions are revoked or lost, before they leave this member
 *        (and before the commit on revoke): e.g. to wait for a transaction that is committing
 *        their offsets on another thread, so the next owner starts from them. NULL: none.
 * @thread @p fn runs inside tn_kafka_consumer_poll(), on the thread that polls @p cons.
 */
void tn_kafka_consumer_on_revoke(tn_kafka_consumer_t *cons, void (*fn)(void *arg), void *arg);
/** @brief Number of partitions currently assigned to this consumer. */
size_t tn_kafka_consumer_assigned(const tn_kafka_consumer_t *cons);
/** @brief Commit stored offsets and leave the group. Idempotent. */
void tn_kafka_consumer_close(tn_kafka_consumer_t *cons);

/* ------------------------------------------------------------------------------------------ */
/* Trace propagation                                                                            */

/**
 * @brief A `traceparent` header carrying @p t, formatted into @p buf (TN_TRACE_LEN + 1 bytes,
 *        which must outlive the produce call).
 */
tn_kafka_header_t tn_kafka_trace_header(const tn_trace_t *t, char *buf, size_t buflen);
/**
 * @brief The trace context for work done on a consumed record: its `traceparent` header
 *        continued, or a new trace. Also sets it as this thread's log context.
 * @returns 1 when the record's trace was continued, 0 when a new one was started.
 */
int tn_kafka_msg_trace(const tn_kafka_msg_t *m, tn_trace_t *out);

/* ------------------------------------------------------------------------------------------ */
/* Dead letters                                                                                 */

/**
 * @brief Send @p orig to @p dlq_topic with its key, value and headers, plus taina-error
 *        (@p reason, a machine code), taina-error-detail and taina-source-topic/-partition/
 *        -offset. Inside an open transaction of @p p it is part of that transaction.
 */
tn_err_t tn_kafka_dlq_send(tn_kafka_producer_t *p, const char *dlq_topic,
                           const tn_kafka_msg_t *orig, const char *reason, const char *detail,
                           tn_kafka_error_t *e);

#endif
