/* Private to the Kafka wrapper modules (kafka.c, kafka_admin.c): the two that include
 * librdkafka's header. */
#ifndef TAINA_KAFKA_INT_H
#define TAINA_KAFKA_INT_H

#include <librdkafka/rdkafka.h>

#include "taina/kafka.h"

/**
 * @brief A librdkafka configuration: our log and error callbacks, brokers and client id from
 *        @p o, then @p defaults (NULL-terminated name, value pairs), then the program's
 *        defaults and passthrough properties of @p o. NULL with one sentence in @p errbuf.
 *        Caller owns the result (rd_kafka_new takes it).
 */
rd_kafka_conf_t *tn_kafka_conf_build(const tn_kafka_opts_t *o, const char *const *defaults,
                                     char *errbuf, size_t errlen);
/** @brief Fill @p out from @p rkm, which it takes (tn_kafka_msg_release() destroys it). */
void tn_kafka_msg_fill(tn_kafka_msg_t *out, rd_kafka_message_t *rkm);
/** @brief Our error code for a librdkafka one. */
tn_err_t tn_kafka_map_err(rd_kafka_resp_err_t err);

/**
 * @brief Destroy @p rk, a consumer of @p group already closed. A cooperative-sticky member
 *        that never got an assignment (@p ever_assigned 0) is kept until exit instead on
 *        librdkafka < 2.3, which aborts destroying it (librdkafka #4312).
 */
void tn_kafka_group_destroy(rd_kafka_t *rk, const char *group, int ever_assigned);

#endif
