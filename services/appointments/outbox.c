/* appointments: the outbox publisher. Unsent rows are taken in id order (locked, so replicas
 * take different ones), produced to appointments.results keyed by request id, and marked sent
 * in the same transaction only after Kafka acknowledged every one. A crash anywhere before
 * that commit leaves them unsent: they go again after the restart (at least once; readers
 * deduplicate on request_id and status). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "appointments.h"
#include "taina/buf.h"
#include "taina/clock.h"
#include "taina/lifecycle.h"
#include "taina/log.h"
#include "taina/mem.h"

static const char SQL_TAKE[] =
    "SELECT id::text, request_id::text, payload FROM appointments_outbox"
    " WHERE sent_at IS NULL AND created_at <= now() - $2::bigint * interval '1 millisecond'"
    " ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED";
static const char SQL_SENT[] =
    "UPDATE appointments_outbox SET sent_at = now() WHERE id = ANY($1::bigint[])";
static const char SQL_BACKLOG[] = "SELECT count(*) FROM appointments_outbox WHERE sent_at IS NULL";
static const char SQL_PURGE[] = "DELETE FROM appointments_outbox"
                                " WHERE sent_at < now() - $1::bigint * interval '1 millisecond'";

void appt_wake_publisher(appt_t *a)
{
    pthread_mutex_lock(&a->lock);
    a->outbox_seq++;
    pthread_cond_signal(&a->outbox_cv);
    pthread_mutex_unlock(&a->lock);
}

static void wait_rows(appt_t *a, uint64_t seen, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&a->lock);
    while (a->outbox_seq == seen && !tn_lifecycle_is_stopping()) {
        if (pthread_cond_timedwait(&a->outbox_cv, &a->lock, &ts) != 0)
            break;
    }
    pthread_mutex_unlock(&a->lock);
}

/* One round: publish up to a batch. Returns rows published, or -1 on a failure. */
static long publish_round(appt_t *a, tn_db_conn_t *conn)
{
    char lim[32], hold[32];
    snprintf(lim, sizeof(lim), "%lld", (long long)a->cfg->outbox_batch);
    snprintf(hold, sizeof(hold), "%lld", (long long)a->cfg->test_outbox_hold_ms);
    const char *p[] = {lim, hold};
    tn_db_error_t de = {0};
    tn_db_res_t *res = NULL;
    long published = -1;
    tn_kafka_record_t *recs = NULL;
    tn_err_t *results = NULL;
    tn_buf_t ids;
    tn_buf_init(&ids, (size_t)64 << 20);
    if (tn_db_exec(conn, "BEGIN", 0, NULL, NULL, NULL, &de) != TN_OK)
        goto out;
    if (tn_db_exec(conn, SQL_TAKE, 2, p, NULL, &res, &de) != TN_OK)
        goto out;
    int n = tn_db_res_rows(res);
    if (n == 0) {
        published = 0;
        goto out;
    }
    recs = tn_xcalloc((size_t)n, sizeof(*recs));
    results = tn_xcalloc((size_t)n, sizeof(*results));
    static const tn_kafka_header_t schema_hdr = {TN_KAFKA_H_SCHEMA, "appointments.results/1", 22};
    tn_buf_adds(&ids, "{");
    for (int i = 0; i < n; i++) {
        const char *key = tn_db_res_get(res, i, 1);
        recs[i] = (tn_kafka_record_t){
            a->cfg->topic_out,        -1,          key, strlen(key), tn_db_res_get(res, i, 2),
            tn_db_res_len(res, i, 2), &schema_hdr, 1};
        tn_buf_addf(&ids, "%s%s", i ? "," : "", tn_db_res_get(res, i, 0));
    }
    tn_buf_adds(&ids, "}");
    tn_err_t rc = tn_kafka_produce_sync(a->producer, recs, (size_t)n, results, 30000);
    if (rc != TN_OK) {
        TN_LOG(TN_LOG_WARN,
               "appointments: results not acknowledged by Kafka (%s); they stay in "
               "the outbox",
               tn_err_str(rc));
        goto out;
    }
    const char *sp[] = {ids.data};
    if (tn_db_exec(conn, SQL_SENT, 1, sp, NULL, NULL, &de) != TN_OK ||
        tn_db_exec(conn, "COMMIT", 0, NULL, NULL, NULL, &de) != TN_OK) {
        /* published but not marked: they go again (at least once) */
        TN_LOG(TN_LOG_WARN, "appointments: published results not marked sent: %s", de.msg);
        goto out;
    }
    tn_metric_add(a->m.published, TN_NOLABELS, n);
    published = n;
out:
    /* a failed round's open transaction is rolled back: the connection is closed on release */
    if (published == 0)
        tn_db_exec(conn, "COMMIT", 0, NULL, NULL, NULL, &de);
    else if (published < 0 && de.msg[0])
        TN_LOG(TN_LOG_WARN, "appointments: outbox: %s", de.msg);
    tn_db_res_free(res);
    free(recs);
    free(results);
    tn_buf_cleanup(&ids);
    return published;
}

static void housekeeping(appt_t *a, tn_db_conn_t *conn, int64_t *next_purge)
{
    tn_db_error_t de;
    tn_db_res_t *res = NULL;
    if (tn_db_exec(conn, SQL_BACKLOG, 0, NULL, NULL, &res, &de) == TN_OK)
        tn_metric_set(a->m.backlog, TN_NOLABELS, strtod(tn_db_res_get(res, 0, 0), NULL));
    tn_db_res_free(res);
    if (tn_clock_mono_ms() < *next_purge)
        return;
    *next_purge = tn_clock_mono_ms() + 600000;
    char keep[32];
    snprintf(keep, sizeof(keep), "%lld", (long long)a->cfg->outbox_retention_ms);
    const char *p[] = {keep};
    tn_db_exec(conn, SQL_PURGE, 1, p, NULL, NULL, &de);
}

static void *publisher_main(void *opaque)
{
    appt_t *a = opaque;
    int fails = 0;
    int64_t next_purge = 0, next_gauge = 0;
    tn_log_ctx_set_action("publishing appointments.results");
    /* after the stop: one last round, so what the drain recorded is published */
    for (int last = 0; last < 2;) {
        pthread_mutex_lock(&a->lock);
        uint64_t seen = a->outbox_seq;
        pthread_mutex_unlock(&a->lock);
        tn_db_conn_t *conn = NULL;
        tn_db_error_t de;
        long n = -1;
        if (tn_db_acquire(a->db, a->cfg->db_timeout_ms, &conn, &de) == TN_OK) {
            n = publish_round(a, conn);
            if (tn_clock_mono_ms() >= next_gauge) {
                housekeeping(a, conn, &next_purge);
                next_gauge = tn_clock_mono_ms() + 1000;
            }
            tn_db_release(a->db, conn);
        }
        fails = n < 0 ? fails + 1 : 0;
        if (tn_lifecycle_is_stopping()) {
            last++;
        } else if (n == a->cfg->outbox_batch) {
            continue; /* more waiting */
        } else if (n < 0) {
            wait_rows(a, seen, appt_store_backoff(a, fails));
        } else {
            wait_rows(a, seen, a->cfg->test_outbox_hold_ms ? 100 : a->cfg->poll_ms);
            /* woken by a change: let the changes of the other workers join this round */
            if (a->cfg->outbox_linger_ms)
                tn_clock_sleep_ms(a->cfg->outbox_linger_ms);
        }
    }
    return NULL;
}

tn_err_t appt_publisher_start(appt_t *a)
{
    if (pthread_create(&a->publisher, NULL, publisher_main, a) != 0) {
        TN_LOG(TN_LOG_ERROR, "appointments: cannot start the publisher thread");
        return TN_ERR;
    }
    a->publisher_started = true;
    return TN_OK;
}

void appt_publisher_join(appt_t *a)
{
    if (!a->publisher_started)
        return;
    appt_wake_publisher(a);
    pthread_join(a->publisher, NULL);
    a->publisher_started = false;
}
