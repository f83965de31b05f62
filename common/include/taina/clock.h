/**
 * @file clock.h
 * @brief Monotonic and wall clocks in milliseconds, and RFC 3339 timestamps.
 */
#ifndef TAINA_CLOCK_H
#define TAINA_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/** @brief Milliseconds on the monotonic clock (for deadlines and durations). */
int64_t tn_clock_mono_ms(void);
/** @brief Seconds on the monotonic clock, with nanosecond resolution. */
double tn_clock_mono_s(void);
/** @brief Milliseconds since the Unix epoch (wall clock). */
int64_t tn_clock_wall_ms(void);
/**
 * @brief Format @p epoch_ms as RFC 3339 UTC with milliseconds ("2026-11-24T05:45:29.123Z").
 * @param buf at least 25 bytes. @returns buf.
 */
char *tn_clock_rfc3339(char *buf, size_t len, int64_t epoch_ms);
/** @brief Sleep @p ms milliseconds (restarts after signals until the time has passed). */
void tn_clock_sleep_ms(int64_t ms);

#endif
