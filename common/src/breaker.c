/* Circuit breaker (with its optional open gauge) and full-jitter backoff. */
#include "taina/breaker.h"

#include <limits.h>

#include "taina/clock.h"
#include "taina/log.h"
#include "taina/trace.h"

void tn_breaker_init(tn_breaker_t *b, const char *name, int threshold, int64_t cooldown_ms)
{
    pthread_mutex_init(&b->lock, NULL);
    b->name = name;
    b->threshold = threshold > 0 ? threshold : 1;
    b->cooldown_ms = cooldown_ms;
    b->failures = 0;
    b->open_until_ms = 0;
    b->state = TN_BREAKER_CLOSED;
    b->gauge = NULL;
}

void tn_breaker_destroy(tn_breaker_t *b)
{
    pthread_mutex_destroy(&b->lock);
}

/* The gauge follows the state (the lock held). */
static void set_state(tn_breaker_t *b, tn_breaker_state_t s)
{
    b->state = s;
    if (b->gauge)
        tn_metric_set(b->gauge, TN_LABELS(b->name), s != TN_BREAKER_CLOSED);
}

void tn_breaker_export(tn_breaker_t *b, tn_metrics_t *reg, const char *family)
{
    tn_metric_t *g = tn_metrics_gauge(reg, family,
                                      "1 while the circuit breaker of an upstream is open "
                                      "(calls refused but for a probe each cooldown).",
                                      TN_LABELS("upstream"));
    pthread_mutex_lock(&b->lock);
    b->gauge = g;
    set_state(b, b->state);
    pthread_mutex_unlock(&b->lock);
}

int tn_breaker_allow(tn_breaker_t *b)
{
    pthread_mutex_lock(&b->lock);
    int ok = 1;
    if (b->state != TN_BREAKER_CLOSED) {
        /* open: the cooldown passed; half-open: the probe is overdue (its caller gave up) */
        int64_t now = tn_clock_mono_ms();
        if (now >= b->open_until_ms) {
            set_state(b, TN_BREAKER_HALF_OPEN); /* this caller is the probe */
            b->open_until_ms = now + b->cooldown_ms;
        } else {
            ok = 0; /* one probe at a time */
        }
    }
    pthread_mutex_unlock(&b->lock);
    return ok;
}

void tn_breaker_release(tn_breaker_t *b)
{
    pthread_mutex_lock(&b->lock);
    if (b->state == TN_BREAKER_HALF_OPEN) {
        set_state(b, TN_BREAKER_OPEN);
        b->open_until_ms = tn_clock_mono_ms();
    }
    pthread_mutex_unlock(&b->lock);
}

void tn_breaker_success(tn_breaker_t *b)
{
    pthread_mutex_lock(&b->lock);
    if (b->state != TN_BREAKER_CLOSED)
        TN_LOG(TN_LOG_INFO, "%s: circuit closed: the upstream answers again", b->name);
    set_state(b, TN_BREAKER_CLOSED);
    b->failures = 0;
    pthread_mutex_unlock(&b->lock);
}

void tn_breaker_failure(tn_breaker_t *b)
{
    pthread_mutex_lock(&b->lock);
    if (b->failures < INT_MAX)
        b->failures++;
    if (b->state == TN_BREAKER_HALF_OPEN ||
        (b->state == TN_BREAKER_CLOSED && b->failures >= b->threshold)) {
        if (b->state == TN_BREAKER_CLOSED)
            TN_LOG(TN_LOG_WARN, "%s: circuit open after %d failures in a row; next try in %lld ms",
                   b->name, b->failures, (long long)b->cooldown_ms);
        set_state(b, TN_BREAKER_OPEN);
        b->open_until_ms = tn_clock_mono_ms() + b->cooldown_ms;
    }
    pthread_mutex_unlock(&b->lock);
}

void tn_breaker_record(tn_breaker_t *b, tn_err_t rc)
{
    switch (rc) {
    case TN_ERR_UNAVAILABLE:
    case TN_ERR_TIMEOUT:
    case TN_ERR_PARSE:
    case TN_ERR_TOO_LARGE:
        tn_breaker_failure(b);
        break;
    case TN_ERR_STOPPED:
    case TN_ERR_INVALID:
        tn_breaker_release(b);
        break;
    default:
        tn_breaker_success(b);
        break;
    }
}

tn_breaker_state_t tn_breaker_state(tn_breaker_t *b)
{
    pthread_mutex_lock(&b->lock);
    tn_breaker_state_t s = b->state;
    if (s == TN_BREAKER_OPEN && tn_clock_mono_ms() >= b->open_until_ms)
        s = TN_BREAKER_HALF_OPEN;
    pthread_mutex_unlock(&b->lock);
    return s;
}

int tn_breaker_is_open(tn_breaker_t *b)
{
    pthread_mutex_lock(&b->lock);
    int open = b->state != TN_BREAKER_CLOSED;
    pthread_mutex_unlock(&b->lock);
    return open;
}

int64_t tn_breaker_retry_in_ms(tn_breaker_t *b)
{
    pthread_mutex_lock(&b->lock);
    int64_t left = 0;
    if (b->state != TN_BREAKER_CLOSED) {
        left = b->open_until_ms - tn_clock_mono_ms();
        if (left < 0)
            left = 0;
    }
    pthread_mutex_unlock(&b->lock);
    return left;
}

int64_t tn_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms)
{
    int64_t ceil = base_ms;
    for (int i = 1; i < attempt && ceil < cap_ms; i++)
        ceil *= 2;
    if (ceil > cap_ms)
        ceil = cap_ms;
    if (ceil <= 0)
        return 0;
    uint64_t r;
    tn_random_bytes(&r, sizeof(r));
    return (int64_t)(r % (uint64_t)(ceil + 1));
}
