/* appointments: the appointments.requests consumer. A record is parsed, validated and stored
 * (idempotently: a request id seen before is a duplicate, not a second request); only then is
 * its offset committed. Records that are not valid requests go to the dead-letter topic with
 * the reason in taina-error. While the database is away the loop waits and retries the same
 * record. */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appointments.h"
#include "taina/clock.h"
#include "taina/lifecycle.h"
#include "taina/log.h"
#include "taina/mem.h"

tn_err_t appt_accept(appt_t *a, const appt_request_t *r, int64_t wait_ms, bool *created,
                     appt_row_t *row, char *err, size_t errlen)
{
    char *stored = appt_idnum_protect(a->cfg, r->id_number);
    int64_t until = tn_clock_mono_ms() + wait_ms;
    tn_err_t rc;
    for (int attempt = 1;; attempt++) {
        rc = appt_store_insert(a, r, stored, created, row, err, errlen);
        if (rc != TN_ERR_UNAVAILABLE)
            break;
        int64_t pause = appt_store_backoff(a, attempt);
        if (tn_clock_mono_ms() + pause > until)
            break;
        TN_LOG(TN_LOG_WARN, "appointments: database away, retrying: %s", err);
        if (tn_lifecycle_wait(pause)) {
            rc = TN_ERR_STOPPED;
            break;
        }
    }
    OPENSSL_cleanse(stored, strlen(stored));
    free(stored);
    if (rc == TN_OK && strcmp(row->tenant_id, r->tenant_id) != 0) {
        snprintf(err, errlen, "the request id is already used by another tenant");
        appt_row_cleanup(row);
        return TN_ERR_EXISTS;
    }
    if (rc == TN_OK && *created)
        appt_wake_workers(a);
    return rc;
}

static void dead_letter(appt_t *a, const tn_kafka_msg_t *msg, const char *reason,
                        const char *detail)
{
    tn_kafka_error_t ke;
    tn_metric_add(a->m.dlq, TN_LABELS(reason), 1);
    tn_metric_add(a->m.requests, TN_LABELS("kafka", "invalid"), 1);
    TN_LOGF(TN_LOG_WARN, TN_F({"reason", reason}, {"detail", detail}),
            "appointments: record %s/%d@%lld to the dead-letter topic", msg->topic,
            (int)msg->partition, (long long)msg->offset);
    /* the offset is committed only once the dead letter is acknowledged */
    while (tn_kafka_dlq_send(a->producer, a->cfg->topic_dlq, msg, reason, detail, &ke) != TN_OK ||
           tn_kafka_producer_flush(a->producer, 10000) != TN_OK) {
        TN_LOG(TN_LOG_WARN, "appointments: dead-letter topic not writable: %s", ke.msg);
        if (tn_lifecycle_wait(1000))
            return;
    }
}

/* One record: TN_OK when handled (stored, duplicate or dead-lettered), TN_ERR_STOPPED when
 * the stop came first (not committed: it is read again). */
static tn_err_t handle(appt_t *a, const tn_kafka_msg_t *msg)
{
    appt_reject_t why = {0};
    json_t *doc = appt_request_parse(msg->value ? msg->value : "", msg->value_len, &why);
    if (!doc) {
        dead_letter(a, msg, why.code, why.message);
        return TN_OK;
    }
    appt_request_t r;
    if (appt_request_from(a->schema_topic, doc, &r, &why) != TN_OK) {
        dead_letter(a, msg, why.code, why.message);
        appt_reject_cleanup(&why);
        return TN_OK;
    }
    tn_log_ctx_set_request(r.request_id);
    bool created = false;
    appt_row_t row = {0};
    char err[512];
    tn_err_t rc = appt_accept(a, &r, INT64_MAX / 4, &created, &row, err, sizeof(err));
    if (rc == TN_OK) {
        tn_metric_add(a->m.requests, TN_LABELS("kafka", created ? "accepted" : "duplicate"), 1);
        TN_LOG(TN_LOG_INFO, "appointments: request %s (%s)",
               created ? "accepted" : "seen before, nothing to do", row.status);
    } else if (rc == TN_ERR_EXISTS) {
        dead_letter(a, msg, "request_id_conflict", err);
        tn_metric_add(a->m.requests, TN_LABELS("kafka", "conflict"), 1);
        rc = TN_OK;
    } else if (rc == TN_ERR_INVALID) {
        dead_letter(a, msg, "rejected_by_database", err);
        rc = TN_OK;
    } else if (rc != TN_ERR_STOPPED) {
        /* a bug or a schema the database does not have: keep the record, stop the partition's
         * progress, and say so loudly; the next delivery tries again */
        TN_LOG(TN_LOG_ERROR, "appointments: cannot store the request: %s", err);
        rc = TN_ERR_STOPPED;
    }
    appt_row_cleanup(&row);
    appt_request_cleanup(&r);
    tn_log_ctx_set_request(NULL);
    return rc;
}

tn_err_t appt_intake_run(appt_t *a)
{
    tn_log_ctx_set_action("consuming appointments.requests");
    while (!tn_lifecycle_is_stopping()) {
        tn_kafka_msg_t msg;
        tn_kafka_error_t ke;
        tn_err_t rc = tn_kafka_consumer_poll(a->consumer, 200, &msg, &ke);
        atomic_store(&a->assigned, tn_kafka_consumer_assigned(a->consumer) > 0);
        if (rc == TN_AGAIN)
            continue;
        if (rc != TN_OK) {
            if (rc == TN_ERR_FATAL || ke.fatal)
                return TN_ERR_FATAL;
            continue;
        }
        tn_trace_t tr;
        tn_kafka_msg_trace(&msg, &tr);
        rc = handle(a, &msg);
        if (rc == TN_OK) {
            tn_kafka_consumer_store(a->consumer, &msg);
            tn_kafka_consumer_commit(a->consumer, 0);
        } else {
            /* not handled: read it again from here */
            tn_kafka_consumer_seek(a->consumer, msg.topic, msg.partition, msg.offset);
            tn_lifecycle_wait(1000);
        }
        tn_kafka_msg_release(&msg);
        tn_log_ctx_clear();
        tn_log_ctx_set_action("consuming appointments.requests");
    }
    return TN_OK;
}
