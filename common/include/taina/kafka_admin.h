/**
 * @file kafka_admin.h
 * @brief Kafka operations of tools (wraps librdkafka, with kafka.c): topic metadata,
 *        watermarks, a group's committed offsets, offset lookup by time, describing a group and
 *        altering its committed offsets, and reading bounded ranges of partitions.
 *
 * Devstack (librdkafka's mock cluster, 2.0) answers neither ListGroups nor DescribeGroups, looks
 * offsets up by time as the end offset, and refuses an offset commit from outside a group that
 * ever had a member. So:
 *   - tn_kafka_admin_offset_for_time() checks the broker's answer against the records around it
 *     and, when it is wrong, scans the partition for the first record at or after the time;
 *   - tn_kafka_admin_alter_committed() joins the group as its only member when the cluster
 *     cannot describe the group or alter its offsets from outside (see there).
 *
 * @thread A handle is used from one thread at a time.
 */
#ifndef TAINA_KAFKA_ADMIN_H
#define TAINA_KAFKA_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "taina/err.h"
#include "taina/kafka.h"

typedef struct tn_kafka_admin tn_kafka_admin_t;

/**
 * @brief A handle for the operations below, acting for consumer group @p group (NULL: none;
 *        the group functions then answer TN_ERR_INVALID). It never joins the group, except in
 *        tn_kafka_admin_alter_committed()'s fallback. @p o is borrowed during the call; its
 *        passthrough properties (SASL/TLS) apply.
 * @returns NULL with one sentence in @p errbuf. Caller owns the result; free with
 *          tn_kafka_admin_destroy().
 */
tn_kafka_admin_t *tn_kafka_admin_new(const tn_kafka_opts_t *o, const char *group, char *errbuf,
                                     size_t errlen);
/** @brief Free. NULL ok. */
void tn_kafka_admin_destroy(tn_kafka_admin_t *a);

/** @brief Number of partitions of @p topic; TN_ERR_NOT_FOUND when it does not exist. */
tn_err_t tn_kafka_admin_partition_count(tn_kafka_admin_t *a, const char *topic, int32_t *n,
                                        char *errbuf, size_t errlen);
/**
 * @brief The cluster's topics, internal ones (`__...`) left out, sorted.
 * @param names out: caller owns the array and its strings; free with tn_kafka_admin_names_free().
 */
tn_err_t tn_kafka_admin_topics(tn_kafka_admin_t *a, char ***names, size_t *n, char *errbuf,
                               size_t errlen);
void tn_kafka_admin_names_free(char **names, size_t n);

/** @brief The log start offset (@p lo) and the high watermark (@p hi) of a partition. */
tn_err_t tn_kafka_admin_watermarks(tn_kafka_admin_t *a, const char *topic, int32_t partition,
                                   int64_t *lo, int64_t *hi, char *errbuf, size_t errlen);

/**
 * @brief The group's committed offsets of partitions 0..@p n-1 of @p topic: offsets[i] is the
 *        next offset the group reads in partition i, or -1 when it committed none there.
 */
tn_err_t tn_kafka_admin_committed(tn_kafka_admin_t *a, const char *topic, int32_t n,
                                  int64_t *offsets, char *errbuf, size_t errlen);

/**
 * @brief The offset of the first record of a partition whose timestamp is at or after
 *        @p ts_ms (the high watermark when none is). The broker's answer (ListOffsets) is
 *        checked by reading the records before and at it; when it is wrong (devstack answers
 *        the end offset) the partition is scanned from its start, and @p scanned (may be NULL)
 *        says so. Timestamps are not ordered within a partition in general: "first" is by
 *        offset among the records at or after the time, as Kafka's own lookup.
 */
tn_err_t tn_kafka_admin_offset_for_time(tn_kafka_admin_t *a, const char *topic, int32_t partition,
                                        int64_t ts_ms, int64_t *offset, bool *scanned, char *errbuf,
                                        size_t errlen);

/** One member of a consumer group. */
typedef struct tn_kafka_group_member {
    char member_id[256];
    char client_id[128];
    char host[128];
} tn_kafka_group_member_t;

/** A consumer group's state and members (tn_kafka_admin_describe_group()). */
typedef struct tn_kafka_group {
    char state[32];                   /**< "Stable", "Empty", "PreparingRebalance", "Dead", ... */
    tn_kafka_group_member_t *members; /**< owned; free with tn_kafka_group_cleanup() */
    size_t nmembers;
} tn_kafka_group_t;

/**
 * @brief Describe the group (ListGroups and DescribeGroups).
 * @returns TN_OK; TN_DECLINED when the cluster does not support it (devstack); an error
 *          otherwise. Free @p g with tn_kafka_group_cleanup() after TN_OK.
 */
tn_err_t tn_kafka_admin_describe_group(tn_kafka_admin_t *a, tn_kafka_group_t *g, char *errbuf,
                                       size_t errlen);
/** @brief Free the members of @p g (not @p g itself). */
void tn_kafka_group_cleanup(tn_kafka_group_t *g);

/**
 * @brief Set the group's committed offsets of partitions 0..@p n-1 of @p topic to
 *        @p offsets (entries < 0 are left as they are), only while the group has no active
 *        member. Where the cluster describes groups, a group with members is refused and the
 *        offsets are altered from outside (AlterConsumerGroupOffsets), as kafka-consumer-groups
 *        does. Where it cannot (devstack), or refuses a commit from outside the group, this
 *        handle joins the group (cooperative-sticky, as the services) and commits only when it
 *        was given every partition of @p topic, i.e. no other member consumes it; joining makes
 *        active members of other topics rebalance once.
 * @param timeout_ms how long the join may take (a group whose member just left makes a
 *        newcomer wait up to its rebalance timeout).
 * @returns TN_OK; TN_ERR_EXISTS when the group has active members (nothing changed; the
 *          members are in @p errbuf); an error otherwise.
 */
tn_err_t tn_kafka_admin_alter_committed(tn_kafka_admin_t *a, const char *topic, int32_t n,
                                        const int64_t *offsets, int64_t timeout_ms, char *errbuf,
                                        size_t errlen);

/* ------------------------------------------------------------------------------------------ */
/* Reading ranges                                                                               */

typedef struct tn_kafka_reader tn_kafka_reader_t;

/** The records of one partition to read: offsets start (inclusive) to end (exclusive). */
typedef struct tn_kafka_range {
    int32_t partition;
    int64_t start;
    int64_t end;
} tn_kafka_range_t;

/**
 * @brief A reader of @p n ranges of @p topic (no group, nothing committed; read_committed).
 *        Empty ranges (start >= end) are done from the start. @p o is borrowed during the
 *        call. Caller owns the result; free with tn_kafka_reader_destroy().
 */
tn_kafka_reader_t *tn_kafka_reader_new(const tn_kafka_opts_t *o, const char *topic,
                                       const tn_kafka_range_t *ranges, size_t n, char *errbuf,
                                       size_t errlen);
void tn_kafka_reader_destroy(tn_kafka_reader_t *r);
/**
 * @brief The next record of the ranges (per partition in offset order; partitions
 *        interleaved), waiting up to @p timeout_ms.
 * @returns TN_OK with @p out filled (release with tn_kafka_msg_release()); TN_AGAIN when none
 *          arrived or every range is done (see tn_kafka_reader_done()); TN_ERR_KAFKA on a
 *          consumer error (logged; reading goes on unless it is fatal: TN_ERR_FATAL).
 */
tn_err_t tn_kafka_reader_poll(tn_kafka_reader_t *r, int64_t timeout_ms, tn_kafka_msg_t *out);
/** @brief Whether every range was read to its end. */
bool tn_kafka_reader_done(const tn_kafka_reader_t *r);

#endif
