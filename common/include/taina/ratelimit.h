/**
 * @file ratelimit.h
 * @brief Token buckets, one per client (an API key): @p rate tokens per second up to @p burst;
 *        a request takes one token or is refused with the time until the next one.
 *
 *     tn_ratelimit_t *rl = tn_ratelimit_new(nkeys, 50.0, 100.0);
 *     int64_t retry_ms;
 *     if (!tn_ratelimit_take(rl, key_index, tn_clock_mono_ms(), &retry_ms))
 *         answer 429 with Retry-After: ceil(retry_ms / 1000)
 *
 * @thread tn_ratelimit_take() may run on any number of threads at once.
 */
#ifndef TAINA_RATELIMIT_H
#define TAINA_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tn_ratelimit tn_ratelimit_t;

/**
 * @brief @p n buckets, each starting full. @returns NULL when @p rate or @p burst is not
 *        positive (no limit wanted). Free with tn_ratelimit_destroy().
 * @param burst the most requests accepted at once after a quiet spell (at least 1).
 */
tn_ratelimit_t *tn_ratelimit_new(size_t n, double rate, double burst);
void tn_ratelimit_destroy(tn_ratelimit_t *rl);

/**
 * @brief Take one token from bucket @p i at monotonic time @p now_ms.
 * @returns true when the request may go on; false when the bucket is empty, with the
 *          milliseconds until a token is back in @p retry_ms (at least 1). An index past the
 *          buckets is always allowed.
 */
bool tn_ratelimit_take(tn_ratelimit_t *rl, size_t i, int64_t now_ms, int64_t *retry_ms);

#endif
