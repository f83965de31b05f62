/**
 * @file lifecycle.h
 * @brief Process lifecycle: SIGTERM/SIGINT start a drain, bounded by a grace period.
 *
 * The first SIGTERM or SIGINT sets the stop flag (the one global STYLE rule 25 allows) and
 * wakes tn_lifecycle_wait(). The service then drains: finishes in-flight work, commits,
 * closes. A watchdog ends the process with exit code 1 if the drain outlives the grace
 * period; a second signal ends it at once (exit code 1). SIGPIPE is ignored.
 *
 * @thread tn_lifecycle_install() from the main thread before other threads start;
 *         the rest from any thread.
 */
#ifndef TAINA_LIFECYCLE_H
#define TAINA_LIFECYCLE_H

#include <stdint.h>

#include "taina/err.h"

/** @brief Install the signal handlers and the wake-up pipe. @returns TN_OK or TN_ERR_IO. */
tn_err_t tn_lifecycle_install(void);
/** @brief Has a stop been requested (signal or tn_lifecycle_request_stop)? */
int tn_lifecycle_is_stopping(void);
/** @brief Request a stop from inside the program (a fatal error in a worker, a test). */
void tn_lifecycle_request_stop(void);
/**
 * @brief Sleep until a stop is requested or @p ms pass (ms < 0: no limit).
 * @returns 1 when stopping, 0 on timeout.
 */
int tn_lifecycle_wait(int64_t ms);
/**
 * @brief Start the drain watchdog: if the process is still running @p grace_ms from now,
 *        log and _exit(1). Call once, when the drain begins.
 */
void tn_lifecycle_arm_grace(int64_t grace_ms);
/** @brief Milliseconds left of the grace period (0 when over; INT64_MAX when not armed). */
int64_t tn_lifecycle_grace_left_ms(void);
/** @brief Forget a stop request (tests that run several lifecycles in one process). */
void tn_lifecycle_reset(void);

#endif
