/**
 * @file devstack.h
 * @brief A local Kafka for development and tests: librdkafka's mock cluster over TCP on
 *        loopback, with the suite's topics created from schemas/topics.json.
 *
 * Memory only, no persistence. Offset lookup by timestamp answers the end offset, and each
 * partition keeps only about 5 MB (older batches are dropped as if by retention): see
 * DESIGN.md, Local development.
 *
 * @thread The mock cluster runs on librdkafka's threads; these functions may be called from
 *         any one thread at a time.
 */
#ifndef TAINA_DEVSTACK_H
#define TAINA_DEVSTACK_H

#include <stddef.h>

#include "taina/err.h"

typedef struct tn_devstack tn_devstack_t;

/**
 * @brief Start a mock cluster of @p brokers brokers on 127.0.0.1 (ephemeral ports).
 * @returns the devstack, or NULL with one sentence in @p errbuf.
 *          Caller owns the result; free with tn_devstack_destroy().
 */
tn_devstack_t *tn_devstack_new(int brokers, char *errbuf, size_t errlen);
/** @brief Stop the cluster and free it. NULL ok. Clients connected to it lose their broker. */
void tn_devstack_destroy(tn_devstack_t *ds);
/** @brief The bootstrap servers ("127.0.0.1:p1,127.0.0.1:p2,..."). Borrowed; valid until destroy.
 */
const char *tn_devstack_bootstrap(const tn_devstack_t *ds);
/** @brief Create one topic. @returns TN_OK, or TN_ERR_KAFKA with the reason in @p errbuf. */
tn_err_t tn_devstack_create_topic(tn_devstack_t *ds, const char *name, int partitions,
                                  int replication, char *errbuf, size_t errlen);
/**
 * @brief Create every topic listed in a topics file (schemas/topics.json: {"topics":[{"name",
 *        "partitions","replication_factor",...}]}); replication is capped at the broker count.
 * @param ntopics out: how many topics were created (may be NULL).
 * @returns TN_OK, TN_ERR_IO / TN_ERR_PARSE / TN_ERR_KAFKA with one sentence in @p errbuf.
 */
tn_err_t tn_devstack_create_topics_file(tn_devstack_t *ds, const char *path, size_t *ntopics,
                                        char *errbuf, size_t errlen);

/* Faults, for tests of reconnects, retries and idempotence (see librdkafka's mock API). */

/**
 * @brief Make the next @p count requests of API @p api ("Produce", "Fetch", "OffsetCommit",
 *        "JoinGroup", "EndTxn", ... as Kafka names them) fail with error @p error (a Kafka error
 *        name such as "NOT_ENOUGH_REPLICAS" or "REQUEST_TIMED_OUT"), on any broker.
 * @returns TN_OK, or TN_ERR_INVALID for an unknown API or error name.
 */
tn_err_t tn_devstack_push_errors(tn_devstack_t *ds, const char *api, size_t count,
                                 const char *error);
/** @brief Take broker @p id (1..brokers) down (connections closed, no new ones) or up again. */
tn_err_t tn_devstack_broker_set_up(tn_devstack_t *ds, int id, int up);
/** @brief Add @p rtt_ms of round-trip time to every response of broker @p id. */
tn_err_t tn_devstack_broker_set_rtt(tn_devstack_t *ds, int id, int rtt_ms);
/** @brief Move the leader of @p topic [@p partition] to broker @p id. */
tn_err_t tn_devstack_set_leader(tn_devstack_t *ds, const char *topic, int partition, int id);

#endif
