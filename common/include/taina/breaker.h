/**
 * @file breaker.h
 * @brief A circuit breaker for an upstream, and backoff with full jitter.
 *
 * Closed: calls go through; @p threshold consecutive failures open it. Open: calls are refused
 * until @p cooldown_ms passed; then one probe goes through (half-open): a success closes the
 * breaker, a failure opens it again for another cooldown.
 *
 *     if (!tn_breaker_allow(&b)) { wait; continue; }
 *     rc = call();
 *     rc == TN_OK ? tn_breaker_success(&b) : tn_breaker_failure(&b);
 *
 * @thread Every function is thread-safe.
 */
#ifndef TAINA_BREAKER_H
#define TAINA_BREAKER_H

#include <pthread.h>
#include <stdint.h>

typedef enum { TN_BREAKER_CLOSED, TN_BREAKER_OPEN, TN_BREAKER_HALF_OPEN } tn_breaker_state_t;

typedef struct tn_breaker {
    pthread_mutex_t lock;
    const char *name; /**< for the log line when it opens or closes */
    int threshold;
    int64_t cooldown_ms;
    int failures;
    int64_t open_until_ms;
    tn_breaker_state_t state;
} tn_breaker_t;

/** @brief Start closed. @p name is borrowed. */
void tn_breaker_init(tn_breaker_t *b, const char *name, int threshold, int64_t cooldown_ms);
void tn_breaker_destroy(tn_breaker_t *b);
/** @brief May a call go out now? Open: no until the cooldown passed, then one probe. */
int tn_breaker_allow(tn_breaker_t *b);
void tn_breaker_success(tn_breaker_t *b);
void tn_breaker_failure(tn_breaker_t *b);
tn_breaker_state_t tn_breaker_state(tn_breaker_t *b);

/**
 * @brief A random wait in [0, min(cap_ms, base_ms * 2^(attempt-1))] ("full jitter"); attempt
 *        counts from 1.
 */
int64_t tn_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms);

#endif
