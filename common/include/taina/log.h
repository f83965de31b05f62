/**
 * @file log.h
 * @brief One JSON object per line on stderr: ts, level, service, msg, context, extra fields.
 *
 *     TN_LOG(TN_LOG_INFO, "assigned %d partitions", n);
 *     TN_LOGF(TN_LOG_WARN, TN_F({"topic", topic}, {"reason", why}), "record sent to DLQ");
 *     TN_DBG(TN_DBG_KAFKA, "fetch from broker %d", id);   (only when log.debug has "kafka")
 *
 * Each line also carries the calling thread's context (trace_id, request_id, action), set
 * with tn_log_ctx_*(): the context lives in thread-local storage, so a request handler sets
 * it once and every line it logs, in any module, carries it.
 *
 * @thread All functions are thread-safe; lines from different threads never interleave.
 */
#ifndef TAINA_LOG_H
#define TAINA_LOG_H

#include <stdio.h>

#include "taina/err.h"

typedef enum {
    TN_LOG_DEBUG = 0,
    TN_LOG_INFO = 1,
    TN_LOG_WARN = 2,
    TN_LOG_ERROR = 3,
    TN_LOG_FATAL = 4,
    TN_LOG_OFF = 5
} tn_log_level_t;

/** Debug contexts, switched on by the `log_debug` key ("kafka,http", "all,-db"). */
typedef enum {
    TN_DBG_KAFKA = 1 << 0,
    TN_DBG_HTTP = 1 << 1,
    TN_DBG_CLIENT = 1 << 2,
    TN_DBG_DB = 1 << 3,
    TN_DBG_CONFIG = 1 << 4,
    TN_DBG_AUDIO = 1 << 5,
    TN_DBG_ALL = 0xffff
} tn_log_dbg_t;

/** One extra field: a key and a string value (copied into the line, escaped). */
typedef struct tn_log_field {
    const char *key;
    const char *val;
} tn_log_field_t;

/** Read-mostly globals (STYLE rule 25 allows the level): the minimum level and debug mask. */
extern volatile int tn_log_min_level;
extern volatile int tn_log_dbg_mask;

#define TN_LOG(level, ...)                                                                         \
    do {                                                                                           \
        if ((int)(level) < tn_log_min_level)                                                       \
            break;                                                                                 \
        tn_log_write((level), NULL, __VA_ARGS__);                                                  \
    } while (0)

#define TN_LOGF(level, fields, ...)                                                                \
    do {                                                                                           \
        if ((int)(level) < tn_log_min_level)                                                       \
            break;                                                                                 \
        tn_log_write((level), (fields), __VA_ARGS__);                                              \
    } while (0)

/** A NULL-terminated array of fields for TN_LOGF: TN_F({"k", v}, {"k2", v2}). */
#define TN_F(...) ((const tn_log_field_t[]){__VA_ARGS__, {NULL, NULL}})

#define TN_DBG(ctx, ...)                                                                           \
    do {                                                                                           \
        if (!(tn_log_dbg_mask & (ctx)))                                                            \
            break;                                                                                 \
        tn_log_write(TN_LOG_DEBUG, TN_F({"ctx", tn_log_dbg_name(ctx)}), __VA_ARGS__);              \
    } while (0)

/** @brief Set the service name on every line and the minimum level. Call once at start. */
void tn_log_init(const char *service, tn_log_level_t level);
/** @brief Change the minimum level. */
void tn_log_set_level(tn_log_level_t level);
/** @brief Send lines to @p f instead of stderr (tests). Borrowed; NULL restores stderr. */
void tn_log_set_output(FILE *f);
/** @brief Parse "debug", "info", "warn", "error", "off". @returns TN_OK or TN_ERR_INVALID. */
tn_err_t tn_log_level_parse(const char *s, tn_log_level_t *out);
/** @brief The lower-case name of a level. */
const char *tn_log_level_name(tn_log_level_t level);
/**
 * @brief Parse a debug context list ("kafka,http", "all,-db", "" for none) into a mask.
 * @returns TN_OK or TN_ERR_INVALID naming the unknown context in @p errbuf.
 */
tn_err_t tn_log_dbg_parse(const char *s, int *mask, char *errbuf, size_t errlen);
/** @brief Set the debug mask. */
void tn_log_set_dbg(int mask);
/** @brief The name of one debug context. */
const char *tn_log_dbg_name(tn_log_dbg_t ctx);

/** @brief Write one line now. Use the macros, which check the level first. */
void tn_log_write(tn_log_level_t level, const tn_log_field_t *fields, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** @brief Set this thread's trace id (32 hex) on its lines; NULL clears. The value is copied. */
void tn_log_ctx_set_trace(const char *trace_id);
/** @brief Set this thread's request id; NULL clears. The value is copied. */
void tn_log_ctx_set_request(const char *request_id);
/** @brief Set this thread's current action ("consuming tickets.raw"); NULL clears. Copied. */
void tn_log_ctx_set_action(const char *action);
/** @brief Clear this thread's context. */
void tn_log_ctx_clear(void);

#endif
