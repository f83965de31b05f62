/* appointments: the booking workers. Each claims the oldest due request (a lease in the
 * database, so replicas and a restarted process never book the same request at once), books
 * it, and records the outcome: booked, failed with the reason, or a retry later with backoff.
 * The outcome is recorded only if the request is still `booking`: a request cancelled while it
 * was being booked gets its fresh booking cancelled at the booking system. */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "appointments.h"
#include "taina/breaker.h"
#include "taina/clock.h"
#include "taina/lifecycle.h"
#include "taina/log.h"
#include "taina/mem.h"

/* Sleep until woken (a new request) or @p ms passed. */
static void wait_work(appt_t *a, uint64_t seen, int64_t ms)
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
    while (a->work_seq == seen && !tn_lifecycle_is_stopping()) {
        if (pthread_cond_timedwait(&a->work_cv, &a->lock, &ts) != 0)
            break;
    }
    pthread_mutex_unlock(&a->lock);
}

/* One new request wakes one worker: waking all of them would send every idle worker to the
 * database for a claim that finds nothing. */
void appt_wake_workers(appt_t *a)
{
    pthread_mutex_lock(&a->lock);
    a->work_seq++;
    pthread_cond_signal(&a->work_cv);
    pthread_mutex_unlock(&a->lock);
}

static void wake_all_workers(appt_t *a)
{
    pthread_mutex_lock(&a->lock);
    a->work_seq++;
    pthread_cond_broadcast(&a->work_cv);
    pthread_mutex_unlock(&a->lock);
}

/* Keep trying a store call that records what already happened at the booking system: its
 * outcome must not be lost while the database is away (until the stop; then the lease runs
 * out and the request is booked again, which the conditional create turns into the same
 * appointment). */
#define RECORD(a, call)                                                                            \
    ({                                                                                             \
        tn_err_t rc_;                                                                              \
        for (int att_ = 1;; att_++) {                                                              \
            rc_ = (call);                                                                          \
            if (rc_ != TN_ERR_UNAVAILABLE || tn_lifecycle_grace_left_ms() < 1000)                  \
                break;                                                                             \
            TN_LOG(TN_LOG_WARN, "appointments: database away, keeping the outcome to record");     \
            tn_clock_sleep_ms(appt_store_backoff((a), att_));                                      \
        }                                                                                          \
        rc_;                                                                                       \
    })

tn_err_t appt_cancel_booked(appt_t *a, const char *request_id, const char *tenant,
                            const char *external_id, appt_row_t *row, char *err, size_t errlen)
{
    if (!tn_breaker_allow(&a->breaker)) {
        snprintf(err, errlen,
                 "the booking system is unavailable (circuit open after repeated failures; "
                 "not called); retry in %lld s",
                 (long long)(tn_breaker_retry_in_ms(&a->breaker) + 999) / 1000);
        return TN_AGAIN;
    }
    tn_err_t rc =
        booking_cancel(a->booking, external_id, "cancelled by the requester", err, errlen);
    if (rc != TN_OK)
        return rc;
    rc = appt_store_cancel_booked(a, request_id, tenant, row);
    if (rc == TN_OK)
        tn_metric_add(a->m.outcomes, TN_LABELS("cancelled"), 1);
    return rc;
}

/* Our booking could not be recorded because the request is no longer `booking`. Another worker
 * may have recorded the same appointment (a lease that ran out while the database was away: the
 * conditional create gave both the same one), which is fine; if the request was cancelled
 * meanwhile, or holds another appointment, ours is unwanted and is cancelled. */
static void undo_if_unwanted(appt_t *a, const appt_claim_t *c, const char *external_id)
{
    appt_row_t now = {0};
    tn_err_t rc = RECORD(a, appt_store_get(a, c->request_id, c->tenant_id, &now));
    bool same = rc == TN_OK && !strcmp(now.status, "booked") && now.external_id &&
                !strcmp(now.external_id, external_id);
    if (rc == TN_OK && !same) {
        char err[512];
        if (!strcmp(now.status, "cancelled"))
            appt_store_note_external(a, c->request_id, external_id);
        TN_LOG(TN_LOG_WARN, "appointments: %s is %s; cancelling the booking %s made meanwhile",
               c->request_id, now.status, external_id);
        if (booking_cancel(a->booking, external_id, "cancelled by the requester", err,
                           sizeof(err)) != TN_OK)
            TN_LOG(TN_LOG_ERROR, "appointments: cancelling %s for %s failed: %s", external_id,
                   c->request_id, err);
    } else if (same) {
        TN_LOG(TN_LOG_INFO, "appointments: %s was already recorded as %s", c->request_id,
               external_id);
    }
    appt_row_cleanup(&now);
}

static void record(appt_t *a, const appt_claim_t *c, const booking_result_t *br)
{
    appt_row_t row = {0};
    tn_err_t rc;
    if (br->slots_taken)
        tn_metric_add(a->m.attempts, TN_LABELS("slot_taken"), br->slots_taken);
    switch (br->outcome) {
    case BOOKING_OK:
        tn_metric_add(a->m.attempts, TN_LABELS("booked"), 1);
        rc = RECORD(a, appt_store_booked(a, c->request_id, br->external_id, br->slot_id, br->start,
                                         br->end, &row));
        if (rc == TN_OK) {
            tn_metric_add(a->m.outcomes, TN_LABELS("booked"), 1);
            tn_metric_observe(a->m.latency, TN_LABELS("booked"), row.age_s);
            TN_LOG(TN_LOG_INFO, "appointments: %s booked (%s, attempt %d)", c->request_id,
                   br->external_id, c->attempts);
        } else if (rc == TN_DECLINED) {
            undo_if_unwanted(a, c, br->external_id);
        } else {
            TN_LOG(TN_LOG_ERROR,
                   "appointments: %s booked as %s but not recorded (%s); the "
                   "lease expiry books it again, to the same appointment",
                   c->request_id, br->external_id, tn_err_str(rc));
        }
        break;
    case BOOKING_FAILED:
        tn_metric_add(a->m.attempts, TN_LABELS("failed"), 1);
        rc = RECORD(a, appt_store_failed(a, c->request_id, br->reason, &row));
        if (rc == TN_OK) {
            tn_metric_add(a->m.outcomes, TN_LABELS("failed"), 1);
            tn_metric_observe(a->m.latency, TN_LABELS("failed"), row.age_s);
            TN_LOG(TN_LOG_WARN, "appointments: %s failed: %s", c->request_id, br->reason);
        }
        break;
    case BOOKING_RETRY:
        tn_metric_add(a->m.attempts, TN_LABELS("retry"), 1);
        if (c->attempts >= a->cfg->max_attempts) {
            char why[700];
            snprintf(why, sizeof(why), "gave up after %d attempts; last: %s", c->attempts,
                     br->reason);
            rc = RECORD(a, appt_store_failed(a, c->request_id, why, &row));
            if (rc == TN_OK) {
                tn_metric_add(a->m.outcomes, TN_LABELS("failed"), 1);
                tn_metric_observe(a->m.latency, TN_LABELS("failed"), row.age_s);
            }
            TN_LOG(TN_LOG_WARN, "appointments: %s failed: %s", c->request_id, why);
        } else {
            int64_t delay = tn_backoff_ms(c->attempts, a->cfg->retry_base_ms, a->cfg->retry_cap_ms);
            TN_LOG(TN_LOG_WARN, "appointments: %s attempt %d: %s; again in %lld ms", c->request_id,
                   c->attempts, br->reason, (long long)delay);
            /* a lost retry note is harmless: the lease runs out and it is claimed again */
            appt_store_retry(a, c->request_id, delay, br->reason);
        }
        break;
    }
    appt_row_cleanup(&row);
}

static void *worker_main(void *opaque)
{
    appt_t *a = opaque;
    int db_fail = 0;
    tn_log_ctx_set_action("booking");
    while (!tn_lifecycle_is_stopping()) {
        pthread_mutex_lock(&a->lock);
        uint64_t seen = a->work_seq;
        pthread_mutex_unlock(&a->lock);
        /* the booking system's circuit is open: claim nothing (requests keep their place and
         * their attempts) until a probe may go; one worker makes it with the next request */
        if (!tn_breaker_allow(&a->breaker)) {
            wait_work(a, seen, tn_breaker_retry_in_ms(&a->breaker) + 10);
            continue;
        }
        bool probe = tn_breaker_is_open(&a->breaker);
        appt_claim_t c = {0};
        tn_err_t rc = appt_store_claim(a, &c);
        if (rc != TN_OK)
            tn_breaker_release(&a->breaker); /* no call made */
        if (rc == TN_DECLINED) {
            db_fail = 0;
            wait_work(a, seen, a->cfg->poll_ms);
            continue;
        }
        if (rc != TN_OK) {
            wait_work(a, seen, appt_store_backoff(a, ++db_fail));
            continue;
        }
        db_fail = 0;
        tn_log_ctx_set_request(c.request_id);
        booking_result_t br;
        char *ident = appt_idnum_for_booking(a->cfg, c.id_stored);
        if (!ident) {
            tn_breaker_release(&a->breaker);
            memset(&br, 0, sizeof(br));
            br.outcome = BOOKING_FAILED;
            snprintf(br.reason, sizeof(br.reason),
                     "the stored id number cannot be opened with the configured key");
        } else {
            booking_book(a->booking, &c, ident, &br);
            OPENSSL_cleanse(ident, strlen(ident));
            free(ident);
            if (probe && !tn_breaker_is_open(&a->breaker))
                wake_all_workers(a); /* closed again: the others were waiting for a probe */
        }
        record(a, &c, &br);
        tn_log_ctx_set_request(NULL);
        appt_claim_cleanup(&c);
    }
    return NULL;
}

tn_err_t appt_workers_start(appt_t *a)
{
    a->workers = tn_xcalloc((size_t)a->cfg->workers, sizeof(*a->workers));
    for (int64_t i = 0; i < a->cfg->workers; i++) {
        if (pthread_create(&a->workers[i], NULL, worker_main, a) != 0) {
            TN_LOG(TN_LOG_ERROR, "appointments: cannot start a worker thread");
            return TN_ERR;
        }
        a->nworkers++;
    }
    return TN_OK;
}

void appt_workers_join(appt_t *a)
{
    wake_all_workers(a);
    for (size_t i = 0; i < a->nworkers; i++)
        pthread_join(a->workers[i], NULL);
    a->nworkers = 0;
    TN_FREE(a->workers);
}
