/**
 * @file breaker.h
 * @brief A circuit breaker for an upstream, and backoff with full jitter.
 *
 * Closed: calls go through; @p threshold consecutive failures open it. Open: calls are refused
 * until @p cooldown_ms passed; then one probe goes through (half-open): a success closes the
 * breaker, a failure opens it again for another cooldown. A probe that reports nothing within
 * a cooldown (its caller gave up) lets the next caller probe.
 *
 *     if (!tn_breaker_allow(&b)) { answer "unavailable, retry in tn_breaker_retry_in_ms()"; }
 *     rc = call();
 *     tn_breaker_record(&b, rc);
 *
 * Opening logs "NAME: circuit open after N failures in a row; ..." (warn) and closing
 * "NAME: circuit closed: ..." (info). With tn_breaker_export() the breaker also keeps a gauge
 * series {upstream=NAME} at 1 from the moment it opens until it closes, 0 otherwise.
 *
 * @thread Every function is thread-safe.
 */
#ifndef TAINA_BREAKER_H
#define TAINA_BREAKER_H

#include <pthread.h>
#include <stdint.h>

#include "taina/err.h"
#include "taina/metrics.h"

typedef enum { TN_BREAKER_CLOSED, TN_BREAKER_OPEN, TN_BREAKER_HALF_OPEN } tn_breaker_state_t;

typedef struct tn_breaker {
    pthread_mutex_t lock;
    const char *name; /**< for the log lines and the gauge's upstream label */
    int threshold;
    int64_t cooldown_ms;
    int failures;
    int64_t open_until_ms; /**< open: when a probe may go; half-open: when the probe is late */
    tn_breaker_state_t state;
    tn_metric_t *gauge; /**< NULL: no metric */
} tn_breaker_t;

/** @brief Start closed. @p name is borrowed (a string literal or config: it must outlive b).
 *         With @p threshold INT_MAX it never opens (a local provider: no network to lose). */
void tn_breaker_init(tn_breaker_t *b, const char *name, int threshold, int64_t cooldown_ms);
void tn_breaker_destroy(tn_breaker_t *b);
/**
 * @brief Keep the gauge family @p family of @p reg (registered here with the label `upstream`
 *        if it is new, e.g. "taina_rag_circuit_open") at 1 while the breaker is not closed.
 *        Sets the breaker's series now. The family is borrowed; valid while @p reg lives.
 */
void tn_breaker_export(tn_breaker_t *b, tn_metrics_t *reg, const char *family);
/** @brief May a call go out now? Open: no until the cooldown passed, then one probe. */
int tn_breaker_allow(tn_breaker_t *b);
/**
 * @brief The call tn_breaker_allow() let through was not made (nothing to do after all): a
 *        probe's turn goes back, so the next caller may probe at once. No-op when closed.
 */
void tn_breaker_release(tn_breaker_t *b);
void tn_breaker_success(tn_breaker_t *b);
void tn_breaker_failure(tn_breaker_t *b);
/**
 * @brief Report a call's outcome by the common clients' codes: TN_ERR_UNAVAILABLE,
 *        TN_ERR_TIMEOUT, TN_ERR_PARSE, TN_ERR_TOO_LARGE (the upstream down, slow or garbled) are
 *        failures; TN_ERR_STOPPED and TN_ERR_INVALID (the caller stopped, or nothing was sent)
 *        release; anything else (TN_OK, a 4xx refusal...) is an answer: success.
 */
void tn_breaker_record(tn_breaker_t *b, tn_err_t rc);
tn_breaker_state_t tn_breaker_state(tn_breaker_t *b);
/** @brief 1 from opening until closing (also while a probe is due or out), else 0. */
int tn_breaker_is_open(tn_breaker_t *b);
/**
 * @brief Milliseconds until a probe may go out (for Retry-After): 0 when closed or when a
 *        probe may go now; while a probe is out, the time until it would be considered lost.
 */
int64_t tn_breaker_retry_in_ms(tn_breaker_t *b);

/**
 * @brief A random wait in [0, min(cap_ms, base_ms * 2^(attempt-1))] ("full jitter"); attempt
 *        counts from 1.
 */
int64_t tn_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms);

#endif
