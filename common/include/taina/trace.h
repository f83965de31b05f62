/**
 * @file trace.h
 * @brief W3C Trace Context: parse, generate and propagate `traceparent`.
 *
 * A traceparent travels from an HTTP request header into the Kafka headers of every record
 * produced for it, and from a consumed record's headers into the records produced from it,
 * so one trace id follows a ticket through the whole pipeline. Each hop gets a new span id.
 *
 * Format (version 00): "00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>", lower case,
 * ids not all zeros. Higher versions are accepted when their first four fields have this
 * shape (the spec's forward-compatibility rule); version ff is invalid.
 *
 * @thread All functions are reentrant.
 */
#ifndef TAINA_TRACE_H
#define TAINA_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "taina/err.h"

#define TN_TRACE_HEADER "traceparent"
/** Length of a formatted traceparent, without the NUL. */
#define TN_TRACE_LEN 55

typedef struct tn_trace {
    char trace_id[33]; /**< 32 lower-case hex digits */
    char span_id[17];  /**< 16 lower-case hex digits: the parent id of the next hop */
    uint8_t flags;     /**< bit 0: sampled */
} tn_trace_t;

/**
 * @brief Parse a traceparent value (@p len bytes, need not be NUL-terminated).
 * @returns TN_OK, or TN_ERR_PARSE when the value is malformed (then start a new trace).
 */
tn_err_t tn_trace_parse(const char *value, size_t len, tn_trace_t *t);
/** @brief Start a new trace: random trace id and span id, sampled. */
void tn_trace_new(tn_trace_t *t);
/** @brief The context for the next hop: same trace id and flags, a new random span id. */
void tn_trace_child(const tn_trace_t *parent, tn_trace_t *child);
/**
 * @brief Continue the trace in @p value when it parses, else start a new one.
 *        The result is always a child (new span id). @p value may be NULL.
 * @returns 1 when the incoming trace was continued, 0 when a new one was started.
 */
int tn_trace_continue(const char *value, size_t len, tn_trace_t *out);
/** @brief Format as "00-trace-span-flags" into @p buf (at least TN_TRACE_LEN + 1 bytes). */
char *tn_trace_format(const tn_trace_t *t, char *buf, size_t buflen);
/** @brief Fill @p buf with @p n random bytes (getrandom). */
void tn_random_bytes(void *buf, size_t n);
/** @brief A random UUIDv4 as 36 characters + NUL into @p buf (at least 37 bytes). */
char *tn_uuid4(char *buf, size_t buflen);
/**
 * @brief A name-based UUID, version 5 (RFC 9562: SHA-1 of the namespace's 16 bytes and the
 *        name), as lower-case canonical text. @p ns is a UUID text. Deterministic: the vector
 *        point id of (tenant, ticket, chunk) is the same on every machine and every replay.
 * @returns @p out, or NULL when @p ns is not a UUID.
 */
char *tn_uuid5(const char *ns, const void *name, size_t len, char out[37]);

#endif
