/* Kafka through librdkafka: producer, consumer, transactions, DLQ, lag gauges. */
#include "taina/kafka.h"

#include <dlfcn.h>
#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "taina/buf.h"
#include "taina/clock.h"
#include "taina/log.h"
#include "taina/mem.h"
#include "kafka_int.h"

/* librdkafka 2.1.0: the first with fetch.queue.backoff.ms */
#define TN_RDKAFKA_FETCH_QUEUE_BACKOFF 0x020100ff
/* librdkafka before 2.3.0 asserts (aborts the process) when it destroys a cooperative-sticky
 * consumer that joined its group but got no assignment yet (librdkafka #4312): a member stopped
 * during its first rebalance, as when an instance added to a busy group is removed again. */
#define TN_RDKAFKA_STICKY_DESTROY_FIXED 0x020300ff

/* ---------------------------------------------------------------------------------------------
 * Shared: configuration, logging, errors, metrics */

typedef struct kmetrics {
    tn_metric_t *produced, *produce_errors, *consumed, *lag, *group_lag;
} kmetrics_t;

static void kmetrics_init(kmetrics_t *km, tn_metrics_t *m)
{
    memset(km, 0, sizeof(*km));
    if (!m)
        return;
    km->produced = tn_metrics_counter(m, "taina_kafka_records_produced_total",
                                      "Records acknowledged by the broker.", TN_LABELS("topic"));
    km->produce_errors = tn_metrics_counter(m, "taina_kafka_produce_errors_total",
                                            "Records the broker refused or that timed out.",
                                            TN_LABELS("topic", "reason"));
    km->consumed = tn_metrics_counter(m, "taina_kafka_records_consumed_total",
                                      "Records handed to the application.", TN_LABELS("topic"));
    km->lag = tn_metrics_gauge(m, "taina_kafka_consumer_lag",
                               "Records behind the high watermark, per assigned partition.",
                               TN_LABELS("group", "topic", "partition"));
    km->group_lag = tn_metrics_gauge(m, "taina_kafka_consumer_group_lag",
                                     "Records behind the high watermark, summed per topic over "
                                     "this consumer's partitions.",
                                     TN_LABELS("group", "topic"));
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    /* syslog levels: 0..3 errors, 4 warning, 5..6 notice/info, 7 debug */
    tn_log_level_t l = level <= 3   ? TN_LOG_ERROR
                       : level == 4 ? TN_LOG_WARN
                       : level <= 6 ? TN_LOG_INFO
                                    : TN_LOG_DEBUG;
    if (l == TN_LOG_DEBUG && !(tn_log_dbg_mask & TN_DBG_KAFKA))
        return;
    TN_LOGF(l, TN_F({"client", rd_kafka_name(rk)}, {"facility", fac}), "kafka: %s", buf);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)opaque;
    TN_LOGF(err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ? TN_LOG_ERROR : TN_LOG_WARN,
            TN_F({"client", rd_kafka_name(rk)}, {"code", rd_kafka_err2name(err)}), "kafka: %s",
            reason);
}

static void fill_error(tn_kafka_error_t *e, rd_kafka_resp_err_t err, const char *msg)
{
    if (!e)
        return;
    memset(e, 0, sizeof(*e));
    snprintf(e->msg, sizeof(e->msg), "%s", msg ? msg : rd_kafka_err2str(err));
    e->retriable = err == RD_KAFKA_RESP_ERR__QUEUE_FULL || err == RD_KAFKA_RESP_ERR__TIMED_OUT ||
                   err == RD_KAFKA_RESP_ERR__TRANSPORT ||
                   err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN;
    e->fatal = err == RD_KAFKA_RESP_ERR__FATAL || err == RD_KAFKA_RESP_ERR__FENCED ||
               err == RD_KAFKA_RESP_ERR_PRODUCER_FENCED;
}

/* Map an rd_kafka_error_t (transactional APIs) and free it. */
static tn_err_t take_error(rd_kafka_error_t *error, tn_kafka_error_t *e, const char *what)
{
    if (!error)
        return TN_OK;
    if (e) {
        memset(e, 0, sizeof(*e));
        snprintf(e->msg, sizeof(e->msg), "%s: %s", what, rd_kafka_error_string(error));
        e->retriable = rd_kafka_error_is_retriable(error);
        e->abortable = rd_kafka_error_txn_requires_abort(error);
        e->fatal = rd_kafka_error_is_fatal(error);
    }
    TN_LOGF(TN_LOG_WARN, TN_F({"code", rd_kafka_error_name(error)}), "kafka: %s: %s", what,
            rd_kafka_error_string(error));
    tn_err_t rc = rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR__TIMED_OUT ? TN_ERR_TIMEOUT
                  : rd_kafka_error_is_fatal(error)                           ? TN_ERR_FATAL
                                                                             : TN_ERR_KAFKA;
    rd_kafka_error_destroy(error);
    return rc;
}

static tn_err_t map_err(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return TN_OK;
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
        return TN_AGAIN;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
        return TN_ERR_TOO_LARGE;
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
        return TN_ERR_TIMEOUT;
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
        return TN_ERR_NOT_FOUND;
    case RD_KAFKA_RESP_ERR__FATAL:
        return TN_ERR_FATAL;
    default:
        return TN_ERR_KAFKA;
    }
}

static int conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errbuf,
                    size_t errlen)
{
    char rkerr[256];
    if (rd_kafka_conf_set(conf, name, value, rkerr, sizeof(rkerr)) != RD_KAFKA_CONF_OK) {
        snprintf(errbuf, errlen, "kafka property %s: %s", name, rkerr);
        return -1;
    }
    return 0;
}

/* Build a configuration: our defaults, then the caller's, then the passthrough properties. */
static rd_kafka_conf_t *conf_build(const tn_kafka_opts_t *o, const char *const *defaults,
                                   char *errbuf, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char num[32];
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    if (conf_set(conf, "bootstrap.servers", o->brokers, errbuf, errlen) ||
        conf_set(conf, "client.id", o->client_id ? o->client_id : "taina", errbuf, errlen))
        goto fail;
    if (o->stats_interval_ms > 0) {
        snprintf(num, sizeof(num), "%" PRId64, o->stats_interval_ms);
        if (conf_set(conf, "statistics.interval.ms", num, errbuf, errlen))
            goto fail;
    }
    if (tn_log_dbg_mask & TN_DBG_KAFKA &&
        conf_set(conf, "debug", "broker,topic,msg,cgrp,eos", errbuf, errlen))
        goto fail;
    for (size_t i = 0; defaults && defaults[i]; i += 2)
        if (conf_set(conf, defaults[i], defaults[i + 1], errbuf, errlen))
            goto fail;
    for (size_t i = 0; i < o->ndefaults; i++)
        if (conf_set(conf, o->defaults[i].name, o->defaults[i].value, errbuf, errlen))
            goto fail;
    for (size_t i = 0; i < o->nprops; i++)
        if (conf_set(conf, o->props[i].name, o->props[i].value, errbuf, errlen))
            goto fail;
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

rd_kafka_conf_t *tn_kafka_conf_build(const tn_kafka_opts_t *o, const char *const *defaults,
                                     char *errbuf, size_t errlen)
{
    return conf_build(o, defaults, errbuf, errlen);
}

tn_err_t tn_kafka_map_err(rd_kafka_resp_err_t err)
{
    return map_err(err);
}

/* ---------------------------------------------------------------------------------------------
 * Producer */

/* One tn_kafka_produce_sync() call: delivery reports fill results and count down. */
struct tn_kafka_batch {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    size_t n;
    size_t pending;
    tn_err_t *results;
    int abandoned; /* the waiter gave up; the last report frees the batch */
};
typedef struct tn_kafka_batch sync_batch_t;

typedef struct sync_slot {
    sync_batch_t *batch;
    size_t index;
} sync_slot_t;

struct tn_kafka_producer {
    rd_kafka_t *rk;
    kmetrics_t km;
    int transactional;
    atomic_uint_fast64_t produced, delivered, failed;
    atomic_int_fast64_t pending_bytes; /* keys + values enqueued without a delivery report yet */
    size_t max_record_bytes;           /* message.max.bytes */
    atomic_int stop;
    pthread_t poller;
    /* The poll thread stands aside while a commit flushes (flush_begin): see poll_thread. */
    rd_kafka_queue_t *mainq;
    pthread_mutex_t park_mu;
    pthread_cond_t park_cv;
    int flushers, parked; /* under park_mu */
    int soon;             /* under park_mu: tn_kafka_txn_commit_soon() holds one of the flushers */
};

static void sync_batch_release(sync_batch_t *b)
{
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->cond);
    free(b->results);
    free(b);
}

/* @thread librdkafka delivery reports, served on the producer's poll thread. */
static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
    (void)rk;
    tn_kafka_producer_t *p = opaque;
    const char *topic = rd_kafka_topic_name(rkm->rkt);
    if (rkm->err) {
        atomic_fetch_add(&p->failed, 1);
        if (p->km.produce_errors)
            tn_metric_add(p->km.produce_errors, TN_LABELS(topic, rd_kafka_err2name(rkm->err)), 1);
        TN_LOGF(TN_LOG_WARN, TN_F({"topic", topic}, {"code", rd_kafka_err2name(rkm->err)}),
                "kafka: delivery failed: %s", rd_kafka_err2str(rkm->err));
    } else {
        atomic_fetch_add(&p->delivered, 1);
        if (p->km.produced)
            tn_metric_add(p->km.produced, TN_LABELS(topic), 1);
    }
    atomic_fetch_sub(&p->pending_bytes, (int_fast64_t)(rkm->len + rkm->key_len));
    sync_slot_t *slot = rkm->_private;
    if (!slot)
        return;
    sync_batch_t *b = slot->batch;
    int last_abandoned = 0;
    pthread_mutex_lock(&b->lock);
    if (!b->abandoned)
        b->results[slot->index] = map_err(rkm->err);
    b->pending--;
    last_abandoned = b->abandoned && b->pending == 0;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
    free(slot);
    if (last_abandoned)
        sync_batch_release(b);
}

/*
 * Delivery reports are served by this thread, except while a transaction commits. Then
 * rd_kafka_flush() (ours, and the one inside rd_kafka_commit_transaction()) serves them itself:
 * it polls in steps of up to 10 ms and checks what is left after each, so when this thread
 * took the last report, the flush slept out its step. That was 10 ms of every commit.
 */
static void *poll_thread(void *arg)
{
    tn_kafka_producer_t *p = arg;
    pthread_setname_np(pthread_self(), "kafka-poll");
    while (!atomic_load(&p->stop)) {
        pthread_mutex_lock(&p->park_mu);
        if (p->flushers) {
            p->parked = 1;
            pthread_cond_broadcast(&p->park_cv);
            while (p->flushers && !atomic_load(&p->stop))
                pthread_cond_wait(&p->park_cv, &p->park_mu);
            p->parked = 0;
        }
        pthread_mutex_unlock(&p->park_mu);
        rd_kafka_poll(p->rk, 100);
    }
    return NULL;
}

/*
 * librdkafka before 2.4 serves its main thread's queue with the time to the next timer rounded
 * down to whole milliseconds, so it busy-waits through the last millisecond before each timer
 * (librdkafka#4671), and a transactional producer arms a 1 ms timer at each registration of
 * partitions with the transaction and another after each answer to one: at 1 KB tickets that
 * thread took 17% of taina-ingest's CPU, 1 ms of spinning per transaction.
 *
 * That thread naps instead: the process's clock_gettime() (below, which librdkafka's clock
 * calls) counts the calls of the thread, and one that reads the clock NAP_CALLS times within
 * NAP_WINDOW_NS is busy-waiting; it sleeps NAP_NS (its timer then fires up to that much late),
 * then reads the clock again. The thread uses some 70 ms of CPU in a 100,000-record run instead
 * of 250, and runs at nice 0 with the shortest slice Linux grants (100 us, a custom slice since
 * Linux 6.12; older kernels ignore it), so that it registers partitions and answers the
 * transaction's calls as soon as it wakes. Before, it spun at nice 19 (sessions 22-23): the spin
 * then mostly yielded, but the thread also waited for a core 2-3 ms at a time while the
 * enrichment kept both busy, and the transaction's records waited with it for their
 * registration (the commit's flush took 3.2-3.7 ms; with naps 2.5-2.7).
 *
 * A nap can fall on a clock read that librdkafka makes holding its timers' lock (one read in three
 * of the spin's loop): a thread that arms a timer meanwhile (a transaction's first record, once
 * per transaction) waits up to NAP_NS. In taina-ingest the spin has ended before the next
 * transaction begins (it follows the registration's answer, in the middle of the commit).
 *
 * tn_kafka_opts_t.spin_nice keeps the spin at nice 19 instead (bench-ingest's passthrough, a
 * loop that waits for each commit on an otherwise idle core, is faster so: the ceiling at its
 * best). Only librdkafka's main threads of transactional producers are affected; every other
 * thread's clock_gettime() is the C library's plus one thread-local test.
 */
#define SPIN_FIXED_VERSION 0x020400ff
#define SPIN_NICE          19
#define SPIN_SLICE_NS      100000
#define NAP_WINDOW_NS      50000
#define NAP_CALLS          50
#define NAP_NS             200000

static atomic_ulong main_naps;         /* tn_kafka_main_thread_naps() */
static __thread int nap_guard;         /* this thread is a transactional main thread */
static __thread int64_t nap_window_ns; /* when its current window of calls began */
static __thread int nap_calls;         /* its calls in that window */
typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);
static _Atomic(clock_gettime_fn) libc_clock_gettime;

static int clock_gettime_syscall(clockid_t clk, struct timespec *ts)
{
    return (int)syscall(SYS_clock_gettime, clk, ts);
}

/* The next definition of clock_gettime() after this program's own (the C library's, or a
 * sanitizer's in front of it). */
static clock_gettime_fn clock_gettime_next(void)
{
    clock_gettime_fn f = atomic_load_explicit(&libc_clock_gettime, memory_order_acquire);
    if (f)
        return f;
    void *sym = dlsym(RTLD_NEXT, "clock_gettime");
    if (sym)
        memcpy(&f, &sym, sizeof(f)); /* ISO C has no object-to-function pointer conversion */
    else
        f = clock_gettime_syscall;
    atomic_store_explicit(&libc_clock_gettime, f, memory_order_release);
    return f;
}

__attribute__((constructor)) static void clock_gettime_resolve(void)
{
    clock_gettime_next();
}

static int64_t ts_ns(const struct timespec *ts)
{
    return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

/* librdkafka reads the clock through the process's clock_gettime(): this one. */
int clock_gettime(clockid_t clk, struct timespec *ts)
{
    int rc = clock_gettime_next()(clk, ts);
    if (!nap_guard || rc != 0 || clk != CLOCK_MONOTONIC)
        return rc;
    int64_t now = ts_ns(ts);
    if (now - nap_window_ns > NAP_WINDOW_NS) {
        nap_window_ns = now;
        nap_calls = 0;
    } else if (++nap_calls >= NAP_CALLS) { /* busy-waiting for a timer */
        struct timespec nap = {0, NAP_NS};
        nanosleep(&nap, NULL);
        atomic_fetch_add_explicit(&main_naps, 1, memory_order_relaxed);
        rc = clock_gettime_next()(clk, ts);
        nap_window_ns = ts_ns(ts);
        nap_calls = 0;
    }
    return rc;
}

unsigned long tn_kafka_main_thread_naps(void)
{
    return atomic_load(&main_naps);
}

/* The kernel's sched_attr (its first version, 48 bytes): glibc 2.36 declares neither it nor
 * sched_setattr(), and <linux/sched/types.h> clashes with <sched.h>. */
typedef struct sched_attr_v0 {
    uint32_t size, sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime, sched_deadline, sched_period;
} sched_attr_v0_t;

/* The on_thread_start interceptor of a transactional producer: its main thread naps, or with
 * @p opaque (spin_nice) spins at nice 19; both with the shortest slice. */
static rd_kafka_resp_err_t main_thread_start(rd_kafka_t *rk, rd_kafka_thread_type_t type,
                                             const char *name, void *opaque)
{
    (void)rk, (void)name;
    if (type != RD_KAFKA_THREAD_MAIN)
        return RD_KAFKA_RESP_ERR_NO_ERROR;
    int nice = opaque ? SPIN_NICE : 0;
    nap_guard = !opaque;
    pid_t tid = (pid_t)syscall(SYS_gettid);
    sched_attr_v0_t a = {.size = sizeof(a),
                         .sched_policy = SCHED_OTHER,
                         .sched_nice = nice,
                         .sched_runtime = SPIN_SLICE_NS};
    if (syscall(SYS_sched_setattr, tid, &a, 0) != 0 && nice) /* filtered (seccomp) */
        setpriority(PRIO_PROCESS, (id_t)tid, nice);
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

static rd_kafka_resp_err_t add_main_thread_start(rd_kafka_t *rk, const rd_kafka_conf_t *conf,
                                                 void *opaque, char *errstr, size_t errlen)
{
    (void)conf, (void)errstr, (void)errlen;
    return rd_kafka_interceptor_add_on_thread_start(rk, "taina-main", main_thread_start, opaque);
}

tn_kafka_producer_t *tn_kafka_producer_new(const tn_kafka_opts_t *o, const char *transactional_id,
                                           char *errbuf, size_t errlen)
{
    static const char *const defaults[] = {"enable.idempotence", "true",  "acks",      "all",
                                           "compression.type",   "lz4",   "linger.ms", "5",
                                           "message.timeout.ms", "30000", NULL};
    char rkerr[512];
    rd_kafka_conf_t *conf = conf_build(o, defaults, errbuf, errlen);
    if (!conf)
        return NULL;
    if (transactional_id && conf_set(conf, "transactional.id", transactional_id, errbuf, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (transactional_id && rd_kafka_version() < SPIN_FIXED_VERSION)
        rd_kafka_conf_interceptor_add_on_new(conf, "taina-main", add_main_thread_start,
                                             o->spin_nice ? (void *)1 : NULL);
    tn_kafka_producer_t *p = tn_xcalloc(1, sizeof(*p));
    p->transactional = transactional_id != NULL;
    kmetrics_init(&p->km, o->metrics);
    rd_kafka_conf_set_opaque(conf, p);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rkerr, sizeof(rkerr));
    if (!p->rk) {
        snprintf(errbuf, errlen, "kafka producer: %s", rkerr);
        rd_kafka_conf_destroy(conf);
        free(p);
        return NULL;
    }
    conf = NULL; /* owned by rk */
    char v[32];
    size_t vlen = sizeof(v);
    p->max_record_bytes = 1000000; /* librdkafka's default */
    if (rd_kafka_conf_get(rd_kafka_conf(p->rk), "message.max.bytes", v, &vlen) == RD_KAFKA_CONF_OK)
        p->max_record_bytes = (size_t)strtoull(v, NULL, 10);
    p->mainq = rd_kafka_queue_get_main(p->rk);
    pthread_mutex_init(&p->park_mu, NULL);
    pthread_cond_init(&p->park_cv, NULL);
    if (pthread_create(&p->poller, NULL, poll_thread, p) != 0) {
        snprintf(errbuf, errlen, "kafka producer: cannot start its poll thread");
        pthread_cond_destroy(&p->park_cv);
        pthread_mutex_destroy(&p->park_mu);
        rd_kafka_queue_destroy(p->mainq);
        rd_kafka_destroy(p->rk);
        free(p);
        return NULL;
    }
    return p;
}

void tn_kafka_producer_destroy(tn_kafka_producer_t *p)
{
    if (!p)
        return;
    if (rd_kafka_flush(p->rk, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        TN_LOG(TN_LOG_WARN, "kafka: %d records still unacknowledged at producer close",
               rd_kafka_outq_len(p->rk));
    pthread_mutex_lock(&p->park_mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->park_cv);
    pthread_mutex_unlock(&p->park_mu);
    pthread_join(p->poller, NULL);
    pthread_cond_destroy(&p->park_cv);
    pthread_mutex_destroy(&p->park_mu);
    rd_kafka_queue_destroy(p->mainq);
    rd_kafka_destroy(p->rk);
    free(p);
}

tn_err_t tn_kafka_producer_warm(tn_kafka_producer_t *p, const char *const *topics,
                                int64_t timeout_ms)
{
    tn_err_t rc = TN_OK;
    for (size_t i = 0; topics[i]; i++) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(p->rk, topics[i], NULL);
        const struct rd_kafka_metadata *md = NULL;
        if (!rkt || rd_kafka_metadata(p->rk, 0, rkt, &md, (int)timeout_ms) || md->topic_cnt != 1 ||
            md->topics[0].err)
            rc = TN_ERR_KAFKA;
        if (md)
            rd_kafka_metadata_destroy(md);
        if (rkt)
            rd_kafka_topic_destroy(rkt); /* its partitions keep the topic and what was learned */
    }
    return rc;
}

/* Enqueue one record (copied, or with @p msgflags RD_KAFKA_MSG_F_FREE its value taken on
 * success); its bytes count as pending until its delivery report. @p what names it in an error
 * ("checkpoint"; NULL: nothing). */
static tn_err_t produce_flags(tn_kafka_producer_t *p, const tn_kafka_record_t *r, void *opaque,
                              const char *what, int msgflags, tn_kafka_error_t *e)
{
    rd_kafka_headers_t *hdrs = NULL;
    if (r->nheaders) {
        hdrs = rd_kafka_headers_new(r->nheaders);
        for (size_t i = 0; i < r->nheaders; i++)
            rd_kafka_header_add(hdrs, r->headers[i].name, -1, r->headers[i].value,
                                (ssize_t)r->headers[i].len);
    }
    /* counted before the call: its delivery report may come before producev returns */
    int_fast64_t bytes = (int_fast64_t)(r->value_len + r->key_len);
    atomic_fetch_add(&p->pending_bytes, bytes);
    rd_kafka_resp_err_t err = rd_kafka_producev(
        p->rk, RD_KAFKA_V_TOPIC(r->topic),
        RD_KAFKA_V_PARTITION(r->partition < 0 ? RD_KAFKA_PARTITION_UA : r->partition),
        RD_KAFKA_V_MSGFLAGS(msgflags), RD_KAFKA_V_KEY(r->key, r->key_len),
        RD_KAFKA_V_VALUE((void *)r->value, r->value_len), RD_KAFKA_V_HEADERS(hdrs),
        RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    if (err) {
        if (hdrs)
            rd_kafka_headers_destroy(hdrs); /* only owned by the message on success */
        atomic_fetch_sub(&p->pending_bytes, bytes);
        fill_error(e, err, what);
        return map_err(err);
    }
    atomic_fetch_add(&p->produced, 1);
    return TN_OK;
}

static tn_err_t produce(tn_kafka_producer_t *p, const tn_kafka_record_t *r, void *opaque,
                        const char *what, tn_kafka_error_t *e)
{
    return produce_flags(p, r, opaque, what, RD_KAFKA_MSG_F_COPY, e);
}

tn_err_t tn_kafka_produce(tn_kafka_producer_t *p, const tn_kafka_record_t *r, tn_kafka_error_t *e)
{
    return produce(p, r, NULL, NULL, e);
}

tn_err_t tn_kafka_produce_give(tn_kafka_producer_t *p, const tn_kafka_record_t *r,
                               tn_kafka_error_t *e)
{
    return produce_flags(p, r, NULL, NULL, RD_KAFKA_MSG_F_FREE, e);
}

tn_kafka_batch_t *tn_kafka_produce_start(tn_kafka_producer_t *p, const tn_kafka_record_t *recs,
                                         size_t n, int64_t timeout_ms)
{
    int64_t deadline = tn_clock_mono_ms() + timeout_ms;
    sync_batch_t *b = tn_xcalloc(1, sizeof(*b));
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->cond, NULL);
    b->n = n;
    b->results = tn_xcalloc(n ? n : 1, sizeof(*b->results));
    for (size_t i = 0; i < n; i++)
        b->results[i] = TN_ERR_TIMEOUT;

    for (size_t i = 0; i < n; i++) {
        sync_slot_t *slot = tn_xmalloc(sizeof(*slot));
        slot->batch = b;
        slot->index = i;
        pthread_mutex_lock(&b->lock);
        b->pending++;
        pthread_mutex_unlock(&b->lock);
        tn_err_t rc;
        /* A full local queue drains as the broker acknowledges: wait and retry. */
        while ((rc = produce(p, &recs[i], slot, NULL, NULL)) == TN_AGAIN &&
               tn_clock_mono_ms() < deadline)
            tn_clock_sleep_ms(5);
        if (rc != TN_OK) {
            pthread_mutex_lock(&b->lock);
            b->pending--;
            b->results[i] = rc == TN_AGAIN ? TN_ERR_TIMEOUT : rc;
            pthread_mutex_unlock(&b->lock);
            free(slot);
        }
    }
    return b;
}

bool tn_kafka_batch_done(tn_kafka_batch_t *b)
{
    pthread_mutex_lock(&b->lock);
    bool done = b->pending == 0;
    pthread_mutex_unlock(&b->lock);
    return done;
}

tn_err_t tn_kafka_batch_wait(tn_kafka_batch_t *b, tn_err_t *results, int64_t timeout_ms)
{
    if (!b)
        return TN_OK;
    int64_t deadline = tn_clock_mono_ms() + timeout_ms;
    pthread_mutex_lock(&b->lock);
    while (b->pending > 0) {
        int64_t left = deadline - tn_clock_mono_ms();
        if (left <= 0)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t wait = left < 100 ? left : 100;
        ts.tv_nsec += (long)(wait % 1000) * 1000000L;
        ts.tv_sec += wait / 1000 + ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&b->cond, &b->lock, &ts);
    }
    tn_err_t rc = TN_OK;
    for (size_t i = 0; i < b->n; i++) {
        if (results)
            results[i] = b->results[i];
        if (b->results[i] == TN_ERR_TIMEOUT && rc == TN_OK)
            rc = TN_ERR_TIMEOUT;
        else if (b->results[i] != TN_OK && b->results[i] != TN_ERR_TIMEOUT)
            rc = TN_ERR_KAFKA;
    }
    int free_now = b->pending == 0;
    b->abandoned = 1; /* late reports must not touch results */
    pthread_mutex_unlock(&b->lock);
    if (free_now)
        sync_batch_release(b);
    return rc;
}

tn_err_t tn_kafka_produce_sync(tn_kafka_producer_t *p, const tn_kafka_record_t *recs, size_t n,
                               tn_err_t *results, int64_t timeout_ms)
{
    int64_t deadline = tn_clock_mono_ms() + timeout_ms;
    tn_kafka_batch_t *b = tn_kafka_produce_start(p, recs, n, timeout_ms);
    int64_t left = deadline - tn_clock_mono_ms();
    return tn_kafka_batch_wait(b, results, left > 0 ? left : 0);
}

tn_err_t tn_kafka_producer_flush(tn_kafka_producer_t *p, int64_t timeout_ms)
{
    return rd_kafka_flush(p->rk, (int)timeout_ms) ? TN_ERR_TIMEOUT : TN_OK;
}

void tn_kafka_producer_get_stats(tn_kafka_producer_t *p, tn_kafka_producer_stats_t *st)
{
    st->produced = atomic_load(&p->produced);
    st->delivered = atomic_load(&p->delivered);
    st->failed = atomic_load(&p->failed);
}

size_t tn_kafka_producer_max_record_bytes(const tn_kafka_producer_t *p)
{
    return p->max_record_bytes;
}

int tn_kafka_stores_txn_offsets(tn_kafka_producer_t *p, int timeout_ms)
{
    char *id = rd_kafka_clusterid(p->rk, timeout_ms);
    if (!id)
        return -1;
    int stores = strncmp(id, "mockCluster", 11) != 0;
    rd_kafka_mem_free(p->rk, id);
    return stores;
}

int64_t tn_kafka_producer_pending_bytes(tn_kafka_producer_t *p)
{
    return (int64_t)atomic_load(&p->pending_bytes);
}

/* ---------------------------------------------------------------------------------------------
 * Consumer */

typedef struct part {
    char *topic;
    int32_t partition;
    int64_t start;       /* where the next range begins (the last take's end, the committed offset
                            after an assignment with checkpoints or a rewind); -1 unknown */
    int64_t first, next; /* the range read since the last take, [first, next); first -1: none */
    int64_t skip_below;  /* checkpoints: records below were committed by a transaction; -1 none */
    int64_t ck_first, ck_next; /* checkpoints: the group's committed offset, and how far
                                  committed transactions' checkpoints carry it (ckpt_load) */
    int64_t mark_lo, mark_hi;  /* tn_kafka_consumer_mark_ends(): the log's bounds then; -1 none */
    int fresh;                 /* assigned, its checkpoints not read yet (ckpt_load) */
} part_t;

struct tn_kafka_consumer {
    rd_kafka_t *rk;
    char *group; /* NULL: no group, assigned from the beginning */
    kmetrics_t km;
    part_t *parts; /* current assignment, for the lag gauges */
    size_t nparts;
    int closed;
    char **lag_topics; /* topics whose group lag gauge we set */
    size_t nlag_topics;
    char *emf_namespace, *emf_service; /* NULL: no EMF lines */
    /* checkpoints (tn_kafka_consumer_set_checkpoints): where and how to read them back */
    char *ckpt_topic;
    int ckpt_stale;       /* an assignment happened: read the checkpoints before the next record */
    uint64_t revocations; /* partitions revoked or lost, so far */
    int ever_assigned;    /* a group assignment arrived (even an empty one) */
    int64_t woke_ms, got_ms; /* tn_kafka_consumer_refill(): the last wake-up, the last record */
    void (*on_revoke)(void *arg); /* tn_kafka_consumer_on_revoke() */
    void *on_revoke_arg;
    tn_kafka_opts_t ckpt_opts;
    char *ckpt_brokers;
    /* tn_kafka_consumer_wake_fetchers(): a thread that sends the wake-up requests */
    pthread_t waker;
    int waker_started;
    pthread_mutex_t waker_mu;
    pthread_cond_t waker_cv;
    rd_kafka_topic_partition_list_t *waker_parts; /* under waker_mu: a wake-up is due for these */
    int waker_stop;                               /* under waker_mu */
};

static void parts_log(const char *what, const char *group, const rd_kafka_topic_partition_list_t *l)
{
    tn_buf_t b;
    tn_buf_init(&b, 4096);
    for (int i = 0; i < l->cnt; i++)
        tn_buf_addf(&b, "%s%s[%" PRId32 "]", i ? " " : "", l->elems[i].topic,
                    l->elems[i].partition);
    TN_LOGF(TN_LOG_INFO, TN_F({"group", group ? group : ""}, {"partitions", b.data ? b.data : ""}),
            "kafka: %s %d partition(s)", what, l->cnt);
    tn_buf_cleanup(&b);
}

static void lag_forget(tn_kafka_consumer_t *cons, const char *topic, int32_t partition)
{
    if (!cons->km.lag || !cons->group)
        return;
    char pbuf[16];
    snprintf(pbuf, sizeof(pbuf), "%" PRId32, partition);
    tn_metric_remove(cons->km.lag, TN_LABELS(cons->group, topic, pbuf));
}

static void parts_add(tn_kafka_consumer_t *cons, const rd_kafka_topic_partition_list_t *l)
{
    cons->parts = tn_xrealloc(cons->parts, (cons->nparts + (size_t)l->cnt + 1) * sizeof(part_t));
    for (int i = 0; i < l->cnt; i++) {
        part_t *pt = &cons->parts[cons->nparts++];
        memset(pt, 0, sizeof(*pt));
        pt->topic = tn_xstrdup(l->elems[i].topic);
        pt->partition = l->elems[i].partition;
        pt->start = pt->first = pt->next = -1;
        pt->skip_below = pt->ck_first = pt->ck_next = -1;
        pt->mark_lo = pt->mark_hi = -1;
        pt->fresh = 1;
    }
}

static part_t *part_find(tn_kafka_consumer_t *cons, const char *topic, int32_t partition)
{
    for (size_t j = 0; j < cons->nparts; j++)
        if (cons->parts[j].partition == partition && strcmp(cons->parts[j].topic, topic) == 0)
            return &cons->parts[j];
    return NULL;
}

static void ckpt_load(tn_kafka_consumer_t *cons);
static void waker_stop(tn_kafka_consumer_t *cons);
static tn_err_t ckpt_write(tn_kafka_producer_t *p, tn_kafka_consumer_t *cons,
                           const tn_kafka_offsets_t *offs, int empty, tn_kafka_error_t *e);

static void parts_remove(tn_kafka_consumer_t *cons, const rd_kafka_topic_partition_list_t *l)
{
    for (int i = 0; i < l->cnt; i++) {
        for (size_t j = 0; j < cons->nparts; j++) {
            if (cons->parts[j].partition == l->elems[i].partition &&
                strcmp(cons->parts[j].topic, l->elems[i].topic) == 0) {
                lag_forget(cons, cons->parts[j].topic, cons->parts[j].partition);
                free(cons->parts[j].topic);
                cons->parts[j] = cons->parts[--cons->nparts];
                break;
            }
        }
    }
}

static void parts_clear(tn_kafka_consumer_t *cons)
{
    for (size_t j = 0; j < cons->nparts; j++) {
        lag_forget(cons, cons->parts[j].topic, cons->parts[j].partition);
        free(cons->parts[j].topic);
    }
    cons->nparts = 0;
}

/* @thread Runs inside tn_kafka_consumer_poll() (the consumer's thread). */
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    tn_kafka_consumer_t *cons = opaque;
    /* NULL while the group's protocol is not known yet: a close during the first join (seen:
     * SIGTERM while the embedder waited for Qdrant) revokes then. Unassign all in that case. */
    const char *proto = rd_kafka_rebalance_protocol(rk);
    int cooperative = proto && strcmp(proto, "COOPERATIVE") == 0;
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t ret = RD_KAFKA_RESP_ERR_NO_ERROR;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        parts_log("assigned", cons->group, parts);
        cons->ever_assigned = 1;
        if (cooperative)
            error = rd_kafka_incremental_assign(rk, parts);
        else
            ret = rd_kafka_assign(rk, parts);
        parts_add(cons, parts);
        cons->ckpt_stale = cons->ckpt_topic != NULL;
    } else {
        parts_log(err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS ? "revoked" : "lost", cons->group,
                  parts);
        cons->revocations++;
        /* Let work in flight on these partitions (a transaction committing their offsets on
         * another thread) finish before they move to another member. */
        if (cons->on_revoke)
            cons->on_revoke(cons->on_revoke_arg);
        /* Commit what was processed before the partitions move to another member. */
        if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS && !rd_kafka_assignment_lost(rk)) {
            rd_kafka_resp_err_t cerr = rd_kafka_commit(rk, NULL, 0);
            if (cerr && cerr != RD_KAFKA_RESP_ERR__NO_OFFSET)
                TN_LOG(TN_LOG_WARN, "kafka: commit on revoke: %s", rd_kafka_err2str(cerr));
        }
        if (cooperative)
            error = rd_kafka_incremental_unassign(rk, parts);
        else
            ret = rd_kafka_assign(rk, NULL);
        if (cooperative)
            parts_remove(cons, parts);
        else
            parts_clear(cons);
    }
    if (error) {
        TN_LOG(TN_LOG_ERROR, "kafka: rebalance: %s", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    } else if (ret) {
        TN_LOG(TN_LOG_ERROR, "kafka: rebalance: %s", rd_kafka_err2str(ret));
    }
}

static int assigned(const tn_kafka_consumer_t *cons, const char *topic, int32_t partition)
{
    for (size_t j = 0; j < cons->nparts; j++)
        if (cons->parts[j].partition == partition && strcmp(cons->parts[j].topic, topic) == 0)
            return 1;
    return 0;
}

/* One EMF line per statistics interval and topic on stdout, where ECS (awslogs or FireLens)
 * picks it up; logs go to stderr, so the two never mix. One fwrite of a whole line (a few hundred
 * bytes, under PIPE_BUF) keeps lines from different threads apart. */
static void emf_write(tn_kafka_consumer_t *cons, const char *topic, double sum)
{
    if (!cons->emf_namespace)
        return;
    tn_buf_t b;
    tn_buf_init(&b, 4096);
    tn_metrics_emf_lag_t r = {.ns = cons->emf_namespace,
                              .service = cons->emf_service,
                              .group = cons->group,
                              .topic = topic,
                              .lag_sum = sum,
                              .timestamp_ms = tn_clock_wall_ms()};
    tn_err_t rc = tn_metrics_emf_lag(&b, &r);
    if (rc == TN_OK) {
        fwrite(b.data, 1, b.len, stdout);
        fflush(stdout);
    } else {
        TN_LOG(TN_LOG_WARN, "kafka: EMF line for group %s: %s", cons->group, tn_err_str(rc));
    }
    tn_buf_cleanup(&b);
}

/* The lag of a partition on which the group never committed, or -1 when unknown. librdkafka
 * reports -1 there, so a new group with a backlog would look idle to the autoscaler. Once the
 * partition fetches (its committed offset was looked up and there was none), the group starts
 * from the log start (auto.offset.reset=earliest): everything from there to the end waits. */
static json_int_t lag_uncommitted(json_t *pj)
{
    const char *state = json_string_value(json_object_get(pj, "fetch_state"));
    json_int_t committed = json_integer_value(json_object_get(pj, "committed_offset"));
    json_int_t lo = json_integer_value(json_object_get(pj, "lo_offset"));
    json_int_t end = json_integer_value(json_object_get(pj, "ls_offset")); /* read_committed */
    if (!json_is_integer(json_object_get(pj, "ls_offset")) || end < 0)
        end = json_integer_value(json_object_get(pj, "hi_offset"));
    if (!state || strcmp(state, "active") != 0 || committed >= 0 || lo < 0 || end < lo)
        return -1;
    return end - lo;
}

/* Statistics JSON -> lag gauges. @thread Runs inside tn_kafka_consumer_poll(). */
static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    (void)rk;
    tn_kafka_consumer_t *cons = opaque;
    if (!cons->km.lag || !cons->group)
        return 0;
    json_t *root = json_loadb(json, len, 0, NULL);
    json_t *topics = json_object_get(root, "topics");
    const char *tname;
    json_t *t;
    json_object_foreach(topics, tname, t)
    {
        const char *pname;
        json_t *pj;
        double sum = 0;
        int any = 0;
        json_object_foreach(json_object_get(t, "partitions"), pname, pj)
        {
            int32_t partition = (int32_t)strtol(pname, NULL, 10);
            json_t *lag = json_object_get(pj, "consumer_lag");
            if (partition < 0 || !json_is_integer(lag) || !assigned(cons, tname, partition))
                continue;
            /* -1 means unknown: no high watermark yet, or no committed offset. */
            json_int_t v = json_integer_value(lag);
            if (v < 0)
                v = lag_uncommitted(pj);
            if (v < 0)
                continue;
            tn_metric_set(cons->km.lag, TN_LABELS(cons->group, tname, pname), (double)v);
            sum += (double)v;
            any = 1;
        }
        if (any) {
            tn_metric_set(cons->km.group_lag, TN_LABELS(cons->group, tname), sum);
            emf_write(cons, tname, sum);
            int known = 0;
            for (size_t i = 0; i < cons->nlag_topics; i++)
                known |= strcmp(cons->lag_topics[i], tname) == 0;
            if (!known) {
                cons->lag_topics =
                    tn_xrealloc(cons->lag_topics, (cons->nlag_topics + 1) * sizeof(char *));
                cons->lag_topics[cons->nlag_topics++] = tn_xstrdup(tname);
            }
        }
    }
    json_decref(root);
    return 0; /* librdkafka frees the json */
}

/* Without a group: assign every partition of the topics from the beginning. */
static tn_err_t assign_all(tn_kafka_consumer_t *cons, const char *const *topics, char *errbuf,
                           size_t errlen)
{
    tn_err_t rc = TN_ERR_KAFKA;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    for (size_t i = 0; topics[i]; i++) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(cons->rk, topics[i], NULL);
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(cons->rk, 0, rkt, &md, 10000);
        rd_kafka_topic_destroy(rkt);
        if (!err && md->topic_cnt != 1)
            err = RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
        if (!err)
            err = md->topics[0].err;
        if (err) {
            snprintf(errbuf, errlen, "kafka: no metadata for topic %s: %s", topics[i],
                     rd_kafka_err2str(err));
            if (md)
                rd_kafka_metadata_destroy(md);
            goto out;
        }
        for (int p = 0; p < md->topics[0].partition_cnt; p++)
            rd_kafka_topic_partition_list_add(l, topics[i], md->topics[0].partitions[p].id)
                ->offset = RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_resp_err_t err = rd_kafka_assign(cons->rk, l);
    if (err) {
        snprintf(errbuf, errlen, "kafka: assign: %s", rd_kafka_err2str(err));
        goto out;
    }
    parts_add(cons, l);
    parts_log("assigned (no group, from the beginning)", NULL, l);
    rc = TN_OK;
out:
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

tn_kafka_consumer_t *tn_kafka_consumer_new(const tn_kafka_opts_t *o, const char *group,
                                           const char *const *topics, char *errbuf, size_t errlen)
{
    const char *defaults[] = {"enable.auto.commit", "false", "enable.auto.offset.store", "false",
                              "partition.assignment.strategy", "cooperative-sticky",
                              "isolation.level", "read_committed", "auto.offset.reset", "earliest",
                              "enable.partition.eof", "false",
                              /* librdkafka reads ahead up to 64 MB by default,
                               * most of a worker's memory; 8 MB keeps it fed */
                              "queued.max.messages.kbytes", "8192",
                              /* A broker has one fetch in flight per client: while it waits
                               * (up to this long) on a partition at its end, the client's other
                               * partitions there are not fetched, even once the read-ahead has
                               * room. 500 ms (the default) stalled a backlog's drain for up to
                               * half a second whenever a partition ran out, and on devstack
                               * each hop of a pipeline waited out the long poll (tests 0013 and
                               * 0037 ran 1.5-1.7x longer with 500 ms). At 50 ms the ingest
                               * bench's passthrough still waited 30-45 ms for records up to 15
                               * times in 200 transactions, half of some runs (74,000-180,000
                               * records/s); at 10 ms it runs at 150,000-175,000. Idle, 10 ms is
                               * 100 empty fetches a second per broker: devstack's broker used 0.5%
                               * of a core more. */
                              "fetch.wait.max.ms", "10",
                              /* the pause after a full read-ahead: a setting from 2.1 on (1 s
                               * before, see tn_kafka_consumer_wake_fetchers) */
                              NULL, NULL, NULL};
    if (rd_kafka_version() >= TN_RDKAFKA_FETCH_QUEUE_BACKOFF) {
        defaults[TN_ARRAY_LEN(defaults) - 3] = "fetch.queue.backoff.ms";
        defaults[TN_ARRAY_LEN(defaults) - 2] = "10";
    }
    char rkerr[512];
    tn_kafka_consumer_t *cons = NULL;
    rd_kafka_conf_t *conf = conf_build(o, defaults, errbuf, errlen);
    if (!conf)
        return NULL;
    /* Without a group librdkafka still wants a group.id for its consumer; it is never used to
     * commit (we assign, never subscribe). */
    if (conf_set(conf, "group.id", group ? group : "taina-nogroup", errbuf, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    cons = tn_xcalloc(1, sizeof(*cons));
    cons->group = tn_xstrdup(group);
    if (o->emf_namespace && group) {
        cons->emf_namespace = tn_xstrdup(o->emf_namespace);
        cons->emf_service = tn_xstrdup(o->emf_service ? o->emf_service : "taina");
    }
    kmetrics_init(&cons->km, o->metrics);
    rd_kafka_conf_set_opaque(conf, cons);
    if (group)
        rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_stats_cb(conf, stats_cb);
    cons->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rkerr, sizeof(rkerr));
    if (!cons->rk) {
        snprintf(errbuf, errlen, "kafka consumer: %s", rkerr);
        rd_kafka_conf_destroy(conf);
        goto fail;
    }
    conf = NULL; /* owned by rk */
    rd_kafka_poll_set_consumer(cons->rk);
    if (group) {
        size_t n = 0;
        while (topics[n])
            n++;
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
        for (size_t i = 0; i < n; i++)
            rd_kafka_topic_partition_list_add(l, topics[i], RD_KAFKA_PARTITION_UA);
        rd_kafka_resp_err_t err = rd_kafka_subscribe(cons->rk, l);
        rd_kafka_topic_partition_list_destroy(l);
        if (err) {
            snprintf(errbuf, errlen, "kafka: subscribe: %s", rd_kafka_err2str(err));
            goto fail;
        }
    } else if (assign_all(cons, topics, errbuf, errlen) != TN_OK) {
        goto fail;
    }
    return cons;
fail:
    cons->closed = 1; /* nothing to commit */
    tn_kafka_consumer_destroy(cons);
    return NULL;
}

void tn_kafka_consumer_close(tn_kafka_consumer_t *cons)
{
    if (cons->closed)
        return;
    cons->closed = 1;
    waker_stop(cons);
    if (cons->group) {
        rd_kafka_resp_err_t err = rd_kafka_commit(cons->rk, NULL, 0);
        if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
            TN_LOG(TN_LOG_WARN, "kafka: commit at close: %s", rd_kafka_err2str(err));
    }
    rd_kafka_consumer_close(cons->rk);
    parts_clear(cons);
    for (size_t i = 0; i < cons->nlag_topics; i++)
        if (cons->km.group_lag)
            tn_metric_remove(cons->km.group_lag, TN_LABELS(cons->group, cons->lag_topics[i]));
}

/* Handles not destroyed (see TN_RDKAFKA_STICKY_DESTROY_FIXED): kept reachable until exit. */
static rd_kafka_t **spared_rk;
static size_t nspared_rk;
static pthread_mutex_t spared_mu = PTHREAD_MUTEX_INITIALIZER;

void tn_kafka_group_destroy(rd_kafka_t *rk, const char *group, int ever_assigned)
{
    if (group && !ever_assigned && rd_kafka_version() < TN_RDKAFKA_STICKY_DESTROY_FIXED) {
        /* It left the group (close); only its memory and threads stay, until exit. */
        TN_LOG(TN_LOG_INFO,
               "kafka: consumer of group %s closed before its first assignment; "
               "handle kept until exit (librdkafka < 2.3 aborts destroying it)",
               group);
        pthread_mutex_lock(&spared_mu);
        spared_rk = tn_xrealloc(spared_rk, (nspared_rk + 1) * sizeof(*spared_rk));
        spared_rk[nspared_rk++] = rk;
        pthread_mutex_unlock(&spared_mu);
    } else {
        rd_kafka_destroy(rk);
    }
}

void tn_kafka_consumer_destroy(tn_kafka_consumer_t *cons)
{
    if (!cons)
        return;
    waker_stop(cons);
    if (cons->rk) {
        tn_kafka_consumer_close(cons);
        tn_kafka_group_destroy(cons->rk, cons->group, cons->ever_assigned);
    }
    parts_clear(cons);
    free(cons->parts);
    for (size_t i = 0; i < cons->nlag_topics; i++)
        free(cons->lag_topics[i]);
    free(cons->lag_topics);
    free(cons->group);
    free(cons->emf_namespace);
    free(cons->emf_service);
    free(cons->ckpt_topic);
    free(cons->ckpt_brokers);
    free(cons);
}

/* A record was read (returned or skipped): it joins the partition's open range. The range
 * starts where the last one ended, so that consecutive batches' checkpoints chain even across
 * offsets that are never returned (transaction markers, aborted records). */
static void range_note(part_t *pt, int64_t offset)
{
    if (pt->first < 0)
        pt->first = pt->start >= 0 && pt->start <= offset ? pt->start : offset;
    pt->next = offset + 1;
}

tn_err_t tn_kafka_consumer_poll(tn_kafka_consumer_t *cons, int64_t timeout_ms, tn_kafka_msg_t *out,
                                tn_kafka_error_t *e)
{
    memset(out, 0, sizeof(*out));
    rd_kafka_message_t *rkm = rd_kafka_consumer_poll(cons->rk, (int)timeout_ms);
    if (!rkm)
        return TN_AGAIN;
    if (rkm->err) {
        rd_kafka_resp_err_t err = rkm->err;
        if (err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            rd_kafka_message_destroy(rkm);
            return TN_AGAIN;
        }
        char msg[256];
        snprintf(msg, sizeof(msg), "%s", rd_kafka_message_errstr(rkm));
        fill_error(e, err, msg);
        TN_LOGF(TN_LOG_WARN, TN_F({"code", rd_kafka_err2name(err)}), "kafka: consumer: %s", msg);
        rd_kafka_message_destroy(rkm);
        return err == RD_KAFKA_RESP_ERR__FATAL ? TN_ERR_FATAL : TN_ERR_KAFKA;
    }
    if (cons->ckpt_topic && cons->ckpt_stale)
        ckpt_load(cons);
    part_t *pt = part_find(cons, rd_kafka_topic_name(rkm->rkt), rkm->partition);
    if (pt)
        range_note(pt, rkm->offset);
    if (pt && rkm->offset < pt->skip_below) {
        /* Already processed and committed by the last transaction: skip. It stays in the
         * range, which starts at the group's committed offset, so that a crash before the next
         * offset commit still finds a checkpoint that matches it. */
        rd_kafka_message_destroy(rkm);
        return TN_AGAIN;
    }
    tn_kafka_msg_fill(out, rkm);
    if (cons->km.consumed)
        tn_metric_add(cons->km.consumed, TN_LABELS(out->topic), 1);
    cons->got_ms = tn_clock_mono_ms();
    return TN_OK;
}

void tn_kafka_msg_fill(tn_kafka_msg_t *out, rd_kafka_message_t *rkm)
{
    out->topic = rd_kafka_topic_name(rkm->rkt);
    out->partition = rkm->partition;
    out->offset = rkm->offset;
    rd_kafka_timestamp_type_t tstype;
    out->timestamp_ms = rd_kafka_message_timestamp(rkm, &tstype);
    out->key = rkm->key;
    out->key_len = rkm->key_len;
    out->value = rkm->payload;
    out->value_len = rkm->len;
    out->rkm = rkm;
}

void tn_kafka_msg_release(tn_kafka_msg_t *m)
{
    if (m && m->rkm) {
        rd_kafka_message_destroy(m->rkm);
        memset(m, 0, sizeof(*m));
    }
}

const void *tn_kafka_msg_header(const tn_kafka_msg_t *m, const char *name, size_t *len)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *val = NULL;
    size_t sz = 0;
    if (rd_kafka_message_headers(m->rkm, &hdrs) || rd_kafka_header_get_last(hdrs, name, &val, &sz))
        return NULL;
    if (len)
        *len = sz;
    return val;
}

size_t tn_kafka_msg_header_count(const tn_kafka_msg_t *m)
{
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(m->rkm, &hdrs))
        return 0;
    return rd_kafka_header_cnt(hdrs);
}

tn_err_t tn_kafka_msg_header_at(const tn_kafka_msg_t *m, size_t i, const char **name,
                                const void **value, size_t *len)
{
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(m->rkm, &hdrs) ||
        rd_kafka_header_get_all(hdrs, i, name, value, len))
        return TN_ERR_NOT_FOUND;
    return TN_OK;
}

tn_err_t tn_kafka_consumer_store(tn_kafka_consumer_t *cons, const tn_kafka_msg_t *m)
{
    (void)cons;
    rd_kafka_resp_err_t err =
        rd_kafka_offset_store(((rd_kafka_message_t *)m->rkm)->rkt, m->partition, m->offset);
    if (err) {
        TN_LOG(TN_LOG_WARN, "kafka: store offset %s[%" PRId32 "]@%" PRId64 ": %s", m->topic,
               m->partition, m->offset, rd_kafka_err2str(err));
        return map_err(err);
    }
    return TN_OK;
}

tn_err_t tn_kafka_consumer_commit(tn_kafka_consumer_t *cons, int sync)
{
    if (!cons->group)
        return TN_OK;
    rd_kafka_resp_err_t err = rd_kafka_commit(cons->rk, NULL, !sync);
    if (err == RD_KAFKA_RESP_ERR__NO_OFFSET)
        return TN_OK; /* nothing new to commit */
    if (err)
        TN_LOG(TN_LOG_WARN, "kafka: commit: %s", rd_kafka_err2str(err));
    return map_err(err);
}

static tn_err_t one_partition(tn_kafka_consumer_t *cons, const char *topic, int32_t partition,
                              int resume)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition);
    rd_kafka_resp_err_t err =
        resume ? rd_kafka_resume_partitions(cons->rk, l) : rd_kafka_pause_partitions(cons->rk, l);
    if (!err)
        err = l->elems[0].err;
    rd_kafka_topic_partition_list_destroy(l);
    return map_err(err);
}

tn_err_t tn_kafka_consumer_pause(tn_kafka_consumer_t *cons, const char *topic, int32_t partition)
{
    return one_partition(cons, topic, partition, 0);
}

tn_err_t tn_kafka_consumer_resume(tn_kafka_consumer_t *cons, const char *topic, int32_t partition)
{
    return one_partition(cons, topic, partition, 1);
}

tn_err_t tn_kafka_consumer_seek(tn_kafka_consumer_t *cons, const char *topic, int32_t partition,
                                int64_t offset)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
    rd_kafka_error_t *error = rd_kafka_seek_partitions(cons->rk, l, 10000);
    rd_kafka_resp_err_t err = error ? rd_kafka_error_code(error) : l->elems[0].err;
    if (error)
        rd_kafka_error_destroy(error);
    rd_kafka_topic_partition_list_destroy(l);
    return map_err(err);
}

tn_err_t tn_kafka_consumer_mark_ends(tn_kafka_consumer_t *cons, int64_t timeout_ms)
{
    for (size_t i = 0; i < cons->nparts; i++) {
        part_t *pt = &cons->parts[i];
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
            cons->rk, pt->topic, pt->partition, &lo, &hi, (int)timeout_ms);
        if (err) {
            TN_LOG(TN_LOG_WARN, "kafka: end offsets of %s[%" PRId32 "]: %s", pt->topic,
                   pt->partition, rd_kafka_err2str(err));
            return TN_ERR_KAFKA;
        }
        pt->mark_lo = lo;
        pt->mark_hi = hi;
    }
    return TN_OK;
}

/*
 * librdkafka before 2.1 stops fetching a partition once the consumer's queue holds
 * queued.max.messages.kbytes, and looks again only when the thread of the partition's leader
 * broker wakes up: on I/O, on an operation, or after up to a second. Draining a backlog with a
 * small read-ahead then runs at about one read-ahead per second. Any request to a broker wakes
 * its thread, which then fetches again if the queue went below the threshold; each leader
 * needs its own. A ListOffsets request (rd_kafka_offsets_for_times()) goes to the leader of
 * every partition it names, all at once; it blocks until every leader answered (an answer
 * can queue behind a fetch waiting at the broker), so it runs on a thread of its own, and
 * wake-ups asked for meanwhile become one. (A Metadata request, sent without waiting, went to
 * one broker only: librdkafka picks the one last used, so the others slept, for up to 1 s.)
 */
static void *waker_main(void *arg)
{
    tn_kafka_consumer_t *cons = arg;
    pthread_setname_np(pthread_self(), "kafka-waker"); /* top -H, perf: 15 bytes at most */
    pthread_mutex_lock(&cons->waker_mu);
    for (;;) {
        while (!cons->waker_stop && !cons->waker_parts)
            pthread_cond_wait(&cons->waker_cv, &cons->waker_mu);
        if (cons->waker_stop)
            break;
        rd_kafka_topic_partition_list_t *l = cons->waker_parts;
        cons->waker_parts = NULL;
        pthread_mutex_unlock(&cons->waker_mu);
        /* the offsets of the latest records (timestamp -1); the answer is not used */
        rd_kafka_offsets_for_times(cons->rk, l, 1000);
        rd_kafka_topic_partition_list_destroy(l);
        pthread_mutex_lock(&cons->waker_mu);
    }
    pthread_mutex_unlock(&cons->waker_mu);
    return NULL;
}

static void waker_stop(tn_kafka_consumer_t *cons)
{
    if (!cons->waker_started)
        return;
    pthread_mutex_lock(&cons->waker_mu);
    cons->waker_stop = 1;
    pthread_cond_broadcast(&cons->waker_cv);
    pthread_mutex_unlock(&cons->waker_mu);
    pthread_join(cons->waker, NULL);
    if (cons->waker_parts)
        rd_kafka_topic_partition_list_destroy(cons->waker_parts);
    cons->waker_parts = NULL;
    pthread_cond_destroy(&cons->waker_cv);
    pthread_mutex_destroy(&cons->waker_mu);
    cons->waker_started = 0;
}

void tn_kafka_consumer_wake_fetchers(tn_kafka_consumer_t *cons)
{
    if (!cons->nparts || cons->closed || rd_kafka_version() >= TN_RDKAFKA_FETCH_QUEUE_BACKOFF)
        return; /* fetch.queue.backoff.ms does it without requests */
    if (!cons->waker_started) {
        pthread_mutex_init(&cons->waker_mu, NULL);
        pthread_cond_init(&cons->waker_cv, NULL);
        if (pthread_create(&cons->waker, NULL, waker_main, cons) != 0) {
            pthread_cond_destroy(&cons->waker_cv);
            pthread_mutex_destroy(&cons->waker_mu);
            return;
        }
        cons->waker_started = 1;
    }
    pthread_mutex_lock(&cons->waker_mu);
    if (!cons->waker_parts) { /* else the last one is not sent yet */
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)cons->nparts);
        for (size_t i = 0; i < cons->nparts; i++)
            rd_kafka_topic_partition_list_add(l, cons->parts[i].topic, cons->parts[i].partition)
                ->offset = RD_KAFKA_OFFSET_END;
        cons->waker_parts = l;
        pthread_cond_signal(&cons->waker_cv);
    }
    pthread_mutex_unlock(&cons->waker_mu);
}

int64_t tn_kafka_consumer_refill(tn_kafka_consumer_t *cons, int64_t wait_ms)
{
    int64_t now = tn_clock_mono_ms();
    if (wait_ms > 0 && now - cons->got_ms > 1000)
        return wait_ms; /* idle: an empty queue is fetched normally */
    if (now - cons->woke_ms >= TN_KAFKA_REFILL_MS) {
        tn_kafka_consumer_wake_fetchers(cons);
        cons->woke_ms = now;
    }
    return wait_ms > TN_KAFKA_REFILL_MS ? TN_KAFKA_REFILL_MS : wait_ms;
}

int tn_kafka_consumer_reached_ends(tn_kafka_consumer_t *cons)
{
    if (!cons->nparts)
        return 0;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)cons->nparts);
    for (size_t i = 0; i < cons->nparts; i++)
        rd_kafka_topic_partition_list_add(l, cons->parts[i].topic, cons->parts[i].partition);
    int ok = rd_kafka_position(cons->rk, l) == RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int i = 0; ok && i < l->cnt; i++) {
        const part_t *pt = part_find(cons, l->elems[i].topic, l->elems[i].partition);
        if (!pt || pt->mark_hi < 0)
            ok = 0; /* not marked */
        else if (pt->mark_hi > pt->mark_lo && l->elems[i].offset < pt->mark_hi)
            ok = 0; /* records before the mark not read yet */
    }
    rd_kafka_topic_partition_list_destroy(l);
    return ok;
}

size_t tn_kafka_consumer_assigned(const tn_kafka_consumer_t *cons)
{
    return cons->nparts;
}

/* ---------------------------------------------------------------------------------------------
 * Transactions */

tn_err_t tn_kafka_txn_init(tn_kafka_producer_t *p, int64_t timeout_ms, tn_kafka_error_t *e)
{
    TN_ASSERT(p->transactional);
    return take_error(rd_kafka_init_transactions(p->rk, (int)timeout_ms), e, "init transactions");
}

tn_err_t tn_kafka_txn_begin(tn_kafka_producer_t *p, tn_kafka_error_t *e)
{
    return take_error(rd_kafka_begin_transaction(p->rk), e, "begin transaction");
}

/* ---------------------------------------------------------------------------------------------
 * A batch's input ranges (tn_kafka_offsets_t) */

typedef struct offs_range {
    char *topic;
    int32_t partition;
    int64_t first, next;
} offs_range_t;

struct tn_kafka_offsets {
    offs_range_t *r;
    size_t n;
    rd_kafka_consumer_group_metadata_t *cgmd; /* NULL without a group */
};

/* The ranges read since the last take; with @p take, the next ones start where they end. */
static tn_kafka_offsets_t *offsets_of(tn_kafka_consumer_t *cons, int take)
{
    tn_kafka_offsets_t *o = tn_xcalloc(1, sizeof(*o));
    o->r = tn_xcalloc(cons->nparts ? cons->nparts : 1, sizeof(*o->r));
    for (size_t i = 0; i < cons->nparts; i++) {
        part_t *pt = &cons->parts[i];
        if (pt->first < 0)
            continue;
        o->r[o->n++] = (offs_range_t){tn_xstrdup(pt->topic), pt->partition, pt->first, pt->next};
        if (take) {
            pt->start = pt->next;
            pt->first = -1;
        }
    }
    /* The group's generation as the batch was read: a transaction committed after the group
     * moved on is fenced (KIP-447) instead of committing offsets for another member. */
    if (cons->group)
        o->cgmd = rd_kafka_consumer_group_metadata(cons->rk);
    return o;
}

tn_kafka_offsets_t *tn_kafka_consumer_take_offsets(tn_kafka_consumer_t *cons)
{
    return offsets_of(cons, 1);
}

tn_kafka_offsets_t *tn_kafka_consumer_peek_offsets(tn_kafka_consumer_t *cons)
{
    return offsets_of(cons, 0);
}

size_t tn_kafka_offsets_count(const tn_kafka_offsets_t *o)
{
    return o->n;
}

tn_err_t tn_kafka_offsets_at(const tn_kafka_offsets_t *o, size_t i, const char **topic,
                             int32_t *partition, int64_t *first, int64_t *next)
{
    if (i >= o->n)
        return TN_ERR_NOT_FOUND;
    *topic = o->r[i].topic;
    *partition = o->r[i].partition;
    *first = o->r[i].first;
    *next = o->r[i].next;
    return TN_OK;
}

void tn_kafka_offsets_destroy(tn_kafka_offsets_t *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < o->n; i++)
        free(o->r[i].topic);
    free(o->r);
    if (o->cgmd)
        rd_kafka_consumer_group_metadata_destroy(o->cgmd);
    free(o);
}

/* Park the poll thread (see poll_thread): ask, kick it out of its poll, wait until it stands
 * aside. It stands aside within one poll (100 ms) even if the kick were lost. */
static void flush_begin(tn_kafka_producer_t *p)
{
    pthread_mutex_lock(&p->park_mu);
    p->flushers++;
    rd_kafka_queue_yield(p->mainq);
    while (!p->parked && !atomic_load(&p->stop))
        pthread_cond_wait(&p->park_cv, &p->park_mu);
    pthread_mutex_unlock(&p->park_mu);
}

/* The commit or abort is over: the poll thread serves delivery reports again (@p n: the
 * flushers this call leaves, besides a tn_kafka_txn_commit_soon()'s). */
static void flush_end(tn_kafka_producer_t *p, int n)
{
    pthread_mutex_lock(&p->park_mu);
    p->flushers -= n + p->soon;
    p->soon = 0;
    pthread_cond_broadcast(&p->park_cv);
    pthread_mutex_unlock(&p->park_mu);
}

void tn_kafka_txn_commit_soon(tn_kafka_producer_t *p)
{
    pthread_mutex_lock(&p->park_mu);
    if (!p->soon) {
        p->soon = 1;
        p->flushers++;
        rd_kafka_queue_yield(p->mainq);
    }
    pthread_mutex_unlock(&p->park_mu);
}

tn_err_t tn_kafka_txn_commit_offsets(tn_kafka_producer_t *p, tn_kafka_consumer_t *cons,
                                     const tn_kafka_offsets_t *offs, int64_t timeout_ms,
                                     tn_kafka_error_t *e)
{
    rd_kafka_topic_partition_list_t *pos = NULL;
    tn_err_t rc = TN_ERR_KAFKA;
    flush_begin(p);
    if (cons && cons->group && offs && offs->n && offs->cgmd) {
        pos = rd_kafka_topic_partition_list_new((int)offs->n);
        for (size_t i = 0; i < offs->n; i++)
            rd_kafka_topic_partition_list_add(pos, offs->r[i].topic, offs->r[i].partition)->offset =
                offs->r[i].next;
        /* Checkpoints go out only after every output was acknowledged: on a cluster without
         * transaction markers (devstack) what was sent is visible at once, so a checkpoint must
         * never be seen without the outputs it vouches for. */
        if (cons->ckpt_topic &&
            rd_kafka_flush(p->rk, (int)timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fill_error(e, RD_KAFKA_RESP_ERR__TIMED_OUT, "outputs not acknowledged before commit");
            if (e)
                e->abortable = 1;
            goto out;
        }
        if (cons->ckpt_topic && (rc = ckpt_write(p, cons, offs, 0, e)) != TN_OK)
            goto out;
        rc = TN_ERR_KAFKA;
        rd_kafka_error_t *error =
            rd_kafka_send_offsets_to_transaction(p->rk, pos, offs->cgmd, (int)timeout_ms);
        if (error) {
            rc = take_error(error, e, "send offsets to transaction");
            goto out;
        }
    }
    rc = take_error(rd_kafka_commit_transaction(p->rk, (int)timeout_ms), e, "commit transaction");

    /*
     * Commit the same offsets once more, outside the transaction. On Kafka this is redundant
     * (they are already committed, and equal); librdkafka's mock cluster (devstack) acknowledges
     * TxnOffsetCommit without storing it, and without this a restarted worker would re-read its
     * whole input there. Synchronous: a rewind after a later abort reads the committed offsets.
     */
    if (rc == TN_OK && pos) {
        rd_kafka_resp_err_t err = rd_kafka_commit(cons->rk, pos, 0);
        if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
            TN_LOG(TN_LOG_WARN, "kafka: offset commit after transaction: %s",
                   rd_kafka_err2str(err));
    }
out:
    flush_end(p, 1);
    if (pos)
        rd_kafka_topic_partition_list_destroy(pos);
    return rc;
}

tn_err_t tn_kafka_txn_checkpoint_partitions(tn_kafka_producer_t *p, tn_kafka_consumer_t *cons,
                                            const tn_kafka_offsets_t *offs, tn_kafka_error_t *e)
{
    if (!cons || !cons->ckpt_topic || !cons->group || !offs || !offs->n || !offs->cgmd)
        return TN_OK;
    return ckpt_write(p, cons, offs, 1, e);
}

tn_err_t tn_kafka_txn_commit(tn_kafka_producer_t *p, tn_kafka_consumer_t *cons, int64_t timeout_ms,
                             tn_kafka_error_t *e)
{
    tn_kafka_offsets_t *offs = cons ? tn_kafka_consumer_take_offsets(cons) : NULL;
    tn_err_t rc = tn_kafka_txn_commit_offsets(p, cons, offs, timeout_ms, e);
    tn_kafka_offsets_destroy(offs);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Checkpoints: transactional progress kept in a topic too (see kafka.h). */

/* One record per range of the batch: key GROUP|TOPIC|PARTITION, value {"first":F,"next":N}
 * (with @p empty: N = F, which readers skip). Inside the open transaction of @p p. */
static tn_err_t ckpt_write(tn_kafka_producer_t *p, tn_kafka_consumer_t *cons,
                           const tn_kafka_offsets_t *offs, int empty, tn_kafka_error_t *e)
{
    for (size_t i = 0; i < offs->n; i++) {
        const offs_range_t *r = &offs->r[i];
        char key[512], val[96];
        int kl = snprintf(key, sizeof(key), "%s|%s|%" PRId32, cons->group, r->topic, r->partition);
        int vl = snprintf(val, sizeof(val), "{\"first\":%" PRId64 ",\"next\":%" PRId64 "}",
                          r->first, empty ? r->first : r->next);
        tn_kafka_record_t rec = {.topic = cons->ckpt_topic,
                                 .partition = -1,
                                 .key = key,
                                 .key_len = (size_t)kl,
                                 .value = val,
                                 .value_len = (size_t)vl};
        if (produce(p, &rec, NULL, "checkpoint", e) != TN_OK) {
            if (e)
                e->abortable = 1;
            return TN_ERR_KAFKA;
        }
    }
    return TN_OK;
}

/* Read one checkpoint record into the matching assigned partition (last one wins). */
static void ckpt_apply_record(tn_kafka_consumer_t *cons, const rd_kafka_message_t *m)
{
    char key[512], val[128];
    if (!m->key || m->key_len >= sizeof(key) || !m->payload || m->len >= sizeof(val))
        return;
    memcpy(key, m->key, m->key_len);
    key[m->key_len] = '\0';
    memcpy(val, m->payload, m->len);
    val[m->len] = '\0';
    char *bar1 = strchr(key, '|'), *bar2 = bar1 ? strrchr(key, '|') : NULL;
    if (!bar1 || bar2 == bar1)
        return;
    *bar1 = *bar2 = '\0';
    long long first, next;
    if (strcmp(key, cons->group) != 0 ||
        sscanf(val, "{\"first\":%lld,\"next\":%lld}", &first, &next) != 2)
        return;
    part_t *pt = part_find(cons, bar1 + 1, (int32_t)strtol(bar2 + 1, NULL, 10));
    /* A transaction that read [first, next) vouches that every output of that range was
     * acknowledged: one that covers where we are carries us to its end. Following the chain,
     * not only the last record, matters when several transactions committed while their offset
     * commits failed (a member that lost the group during a long commit, 0032). */
    if (pt && pt->ck_next >= 0 && first <= pt->ck_next && next > pt->ck_next)
        pt->ck_next = next;
}

/*
 * After an assignment: take the group's committed offsets, read the checkpoint topic to its end
 * (read_committed, in write order) and, for each assigned partition, follow the committed
 * transactions' ranges from its committed offset; skip to where the chain ends.
 * @thread The consumer's thread.
 */
static void ckpt_load(tn_kafka_consumer_t *cons)
{
    static const char *const defaults[] = {"enable.auto.commit",
                                           "false",
                                           "isolation.level",
                                           "read_committed",
                                           "enable.partition.eof",
                                           "true",
                                           "group.id",
                                           "taina-checkpoint-reader",
                                           NULL};
    char err[512];
    cons->ckpt_stale = 0;
    for (size_t i = 0; i < cons->nparts; i++)
        cons->parts[i].ck_first = cons->parts[i].ck_next = -1;
    /* Where the group is: the start of each chain. Only for the partitions new since the last
     * load: the others are being read, and a transaction of theirs may be committing on another
     * thread right now, whose checkpoint devstack shows before the commit (no markers): were it
     * to fail, a skip mark taken from it would drop its records after the rewind. */
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)cons->nparts + 1);
    for (size_t i = 0; i < cons->nparts; i++)
        if (cons->parts[i].fresh)
            rd_kafka_topic_partition_list_add(l, cons->parts[i].topic, cons->parts[i].partition);
    for (size_t i = 0; i < cons->nparts; i++)
        cons->parts[i].fresh = 0;
    if (!l->cnt) {
        rd_kafka_topic_partition_list_destroy(l);
        return;
    }
    if (rd_kafka_committed(cons->rk, l, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < l->cnt; i++) {
            part_t *pt = part_find(cons, l->elems[i].topic, l->elems[i].partition);
            int64_t committed = l->elems[i].offset;
            if (committed < 0) { /* never committed: the group starts at the log start */
                int64_t lo = 0, hi = 0;
                rd_kafka_query_watermark_offsets(cons->rk, pt->topic, pt->partition, &lo, &hi,
                                                 5000);
                committed = lo;
            }
            pt->ck_first = pt->ck_next = committed;
            if (pt->first < 0)
                pt->start = committed; /* its first range starts here */
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_conf_t *conf = conf_build(&cons->ckpt_opts, defaults, err, sizeof(err));
    rd_kafka_t *rk = conf ? rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err)) : NULL;
    if (!rk) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        TN_LOG(TN_LOG_WARN, "kafka: checkpoints: %s", err);
        return;
    }
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, cons->ckpt_topic, NULL);
    int nparts = 0;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        md->topic_cnt == 1 && !md->topics[0].err)
        nparts = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    l = rd_kafka_topic_partition_list_new(nparts ? nparts : 1);
    for (int i = 0; i < nparts; i++)
        rd_kafka_topic_partition_list_add(l, cons->ckpt_topic, i)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    int eof = 0;
    if (nparts && rd_kafka_assign(rk, l) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        int64_t deadline = tn_clock_mono_ms() + 15000;
        while (eof < nparts && tn_clock_mono_ms() < deadline) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
            if (!m)
                continue;
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
                eof++;
            else if (!m->err)
                ckpt_apply_record(cons, m);
            rd_kafka_message_destroy(m);
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    if (!nparts || eof < nparts)
        TN_LOG(TN_LOG_WARN, "kafka: checkpoints: could not read %s to its end", cons->ckpt_topic);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);

    for (size_t i = 0; i < cons->nparts; i++) {
        part_t *pt = &cons->parts[i];
        if (pt->ck_first >= 0 && pt->ck_next > pt->ck_first) {
            pt->skip_below = pt->ck_next;
            TN_LOG(TN_LOG_WARN,
                   "kafka: %s[%" PRId32 "]: committed transactions read up to %" PRId64
                   " but the group has %" PRId64 "; skipping to %" PRId64,
                   pt->topic, pt->partition, pt->ck_next, pt->ck_first, pt->ck_next);
        }
    }
}

tn_err_t tn_kafka_consumer_set_checkpoints(tn_kafka_consumer_t *cons, const tn_kafka_opts_t *o,
                                           const char *topic)
{
    if (!cons->group || !topic || !*topic)
        return TN_ERR_INVALID;
    free(cons->ckpt_topic);
    free(cons->ckpt_brokers);
    cons->ckpt_topic = tn_xstrdup(topic);
    cons->ckpt_brokers = tn_xstrdup(o->brokers);
    cons->ckpt_opts = (tn_kafka_opts_t){0};
    cons->ckpt_opts.brokers = cons->ckpt_brokers;
    cons->ckpt_opts.props = o->props; /* borrowed: the app's passthrough properties */
    cons->ckpt_opts.nprops = o->nprops;
    cons->ckpt_opts.client_id = "taina-checkpoints";
    cons->ckpt_stale = cons->nparts > 0;
    return TN_OK;
}

/* Seek every assigned partition back to its committed offset (or the start if none) and
 * forget the ranges read since: the next range starts at the committed offset. */
static tn_err_t rewind_to_committed(tn_kafka_consumer_t *cons, int64_t timeout_ms)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    for (size_t i = 0; i < cons->nparts; i++)
        cons->parts[i].first = cons->parts[i].start = -1;
    rd_kafka_resp_err_t err = rd_kafka_assignment(cons->rk, &l);
    if (!err && l->cnt == 0) { /* everything was revoked: nothing to read again here */
        rd_kafka_topic_partition_list_destroy(l);
        return TN_OK;
    }
    if (!err)
        err = rd_kafka_committed(cons->rk, l, (int)timeout_ms);
    if (!err) {
        for (int i = 0; i < l->cnt; i++) {
            part_t *pt = part_find(cons, l->elems[i].topic, l->elems[i].partition);
            if (l->elems[i].offset < 0)
                l->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
            else if (pt)
                pt->start = l->elems[i].offset;
        }
        rd_kafka_error_t *error = rd_kafka_seek_partitions(cons->rk, l, (int)timeout_ms);
        if (error) {
            err = rd_kafka_error_code(error);
            rd_kafka_error_destroy(error);
        }
    }
    if (l)
        rd_kafka_topic_partition_list_destroy(l);
    if (err) {
        for (size_t i = 0; i < cons->nparts; i++)
            cons->parts[i].start = -1;
        TN_LOG(TN_LOG_ERROR, "kafka: rewind to committed offsets: %s", rd_kafka_err2str(err));
    }
    return map_err(err);
}

tn_err_t tn_kafka_consumer_rewind(tn_kafka_consumer_t *cons, int64_t timeout_ms)
{
    if (!cons->group) {
        for (size_t i = 0; i < cons->nparts; i++)
            cons->parts[i].first = -1;
        return TN_OK;
    }
    return rewind_to_committed(cons, timeout_ms);
}

uint64_t tn_kafka_consumer_revocations(const tn_kafka_consumer_t *cons)
{
    return cons->revocations;
}

void tn_kafka_consumer_on_revoke(tn_kafka_consumer_t *cons, void (*fn)(void *arg), void *arg)
{
    cons->on_revoke = fn;
    cons->on_revoke_arg = arg;
}

tn_err_t tn_kafka_txn_abort(tn_kafka_producer_t *p, tn_kafka_consumer_t *cons, int64_t timeout_ms,
                            tn_kafka_error_t *e)
{
    tn_err_t rc =
        take_error(rd_kafka_abort_transaction(p->rk, (int)timeout_ms), e, "abort transaction");
    flush_end(p, 0); /* a tn_kafka_txn_commit_soon() without its commit */
    if (cons && rc == TN_OK)
        rc = tn_kafka_consumer_rewind(cons, timeout_ms);
    else if (cons)
        for (size_t i = 0; i < cons->nparts; i++)
            cons->parts[i].first = -1;
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Trace propagation */

tn_kafka_header_t tn_kafka_trace_header(const tn_trace_t *t, char *buf, size_t buflen)
{
    tn_trace_format(t, buf, buflen);
    return (tn_kafka_header_t){TN_TRACE_HEADER, buf, strlen(buf)};
}

int tn_kafka_msg_trace(const tn_kafka_msg_t *m, tn_trace_t *out)
{
    size_t len = 0;
    const char *v = tn_kafka_msg_header(m, TN_TRACE_HEADER, &len);
    int continued = tn_trace_continue(v, len, out);
    tn_log_ctx_set_trace(out->trace_id);
    return continued;
}

/* ---------------------------------------------------------------------------------------------
 * Dead letters */

tn_err_t tn_kafka_dlq_send(tn_kafka_producer_t *p, const char *dlq_topic,
                           const tn_kafka_msg_t *orig, const char *reason, const char *detail,
                           tn_kafka_error_t *e)
{
    size_t n = tn_kafka_msg_header_count(orig);
    tn_kafka_header_t *h = tn_xcalloc(n + 5, sizeof(*h));
    char part[16], off[24];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name;
        /* Earlier DLQ headers (a re-driven record failing again) are replaced by ours. */
        if (tn_kafka_msg_header_at(orig, i, &name, &h[k].value, &h[k].len) == TN_OK &&
            strncmp(name, "taina-error", 11) != 0 && strncmp(name, "taina-source-", 13) != 0) {
            h[k].name = name;
            k++;
        }
    }
    snprintf(part, sizeof(part), "%" PRId32, orig->partition);
    snprintf(off, sizeof(off), "%" PRId64, orig->offset);
    h[k++] = (tn_kafka_header_t){TN_KAFKA_H_ERROR, reason, strlen(reason)};
    h[k++] = (tn_kafka_header_t){TN_KAFKA_H_ERROR_DETAIL, detail ? detail : "",
                                 detail ? strlen(detail) : 0};
    h[k++] = (tn_kafka_header_t){TN_KAFKA_H_SRC_TOPIC, orig->topic, strlen(orig->topic)};
    h[k++] = (tn_kafka_header_t){TN_KAFKA_H_SRC_PART, part, strlen(part)};
    h[k++] = (tn_kafka_header_t){TN_KAFKA_H_SRC_OFFSET, off, strlen(off)};
    tn_kafka_record_t r = {.topic = dlq_topic,
                           .partition = -1,
                           .key = orig->key,
                           .key_len = orig->key_len,
                           .value = orig->value,
                           .value_len = orig->value_len,
                           .headers = h,
                           .nheaders = k};
    tn_err_t rc = tn_kafka_produce(p, &r, e);
    TN_LOGF(TN_LOG_WARN,
            TN_F({"topic", orig->topic}, {"partition", part}, {"offset", off}, {"reason", reason}),
            "record sent to %s: %s", dlq_topic, detail ? detail : reason);
    free(h);
    return rc;
}
