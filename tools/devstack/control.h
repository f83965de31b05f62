/**
 * @file control.h
 * @brief devstack's fault control interface: a small HTTP API on loopback over the mock
 *        cluster's fault functions (taina/devstack.h), for tests and chaos by hand.
 *
 *     POST /broker/{id}/down            broker id (1..brokers) down: connections closed, none
 *     POST /broker/{id}/up              accepted, until up again
 *     POST /broker/{id}/rtt  {"ms": N}  N ms added to each of its responses (0 = none)
 *     POST /errors {"api": "Produce", "count": N, "code": "NOT_ENOUGH_REPLICAS"}
 *                                       the next N requests of that API fail with that error
 *     POST /leader {"topic": T, "partition": P, "broker": B}   move a partition's leader
 *
 * Answers 200 `{"ok":true}`; 400 `invalid_body` (not JSON, a field missing or of the wrong
 * type), 404 `unknown_broker` / `unknown_api` / `unknown_error` / `unknown_partition`.
 *
 * @thread Handlers run on the control server's one worker thread, under the control's lock.
 */
#ifndef TAINA_DEVSTACK_CONTROL_H
#define TAINA_DEVSTACK_CONTROL_H

#include <stddef.h>

#include "taina/devstack.h"
#include "taina/err.h"

typedef struct devstack_control devstack_control_t;

/**
 * @brief Serve the control API on 127.0.0.1:@p port for @p ds (borrowed; must outlive the
 *        control).
 * @returns the control, or NULL with one sentence in @p errbuf (port taken).
 *          Caller owns the result; free with devstack_control_destroy().
 */
devstack_control_t *devstack_control_start(tn_devstack_t *ds, int port, char *errbuf,
                                           size_t errlen);
/** @brief Stop serving (in-flight requests finish) and free. NULL ok. */
void devstack_control_destroy(devstack_control_t *ctl);

#endif
