/**
 * @file err.h
 * @brief The one error type of the suite. Library errors are mapped to it in their wrapper.
 *
 * TN_OK is 0; failures are negative. TN_AGAIN ("try again") and TN_DECLINED ("not mine")
 * are statuses, not errors, and are positive so `rc < 0` always means failure.
 */
#ifndef TAINA_ERR_H
#define TAINA_ERR_H

/* X-macro: name, value, text. Keep values stable: they appear in logs. */
#define TN_ERR_LIST(X)                                                                             \
    X(TN_DECLINED, 2, "not handled here")                                                          \
    X(TN_AGAIN, 1, "try again")                                                                    \
    X(TN_OK, 0, "success")                                                                         \
    X(TN_ERR, -1, "unspecified failure")                                                           \
    X(TN_ERR_INVALID, -2, "invalid argument or value")                                             \
    X(TN_ERR_NOMEM, -3, "out of memory")                                                           \
    X(TN_ERR_TOO_LARGE, -4, "size limit exceeded")                                                 \
    X(TN_ERR_NOT_FOUND, -5, "not found")                                                           \
    X(TN_ERR_IO, -6, "input/output error")                                                         \
    X(TN_ERR_TIMEOUT, -7, "timed out")                                                             \
    X(TN_ERR_PARSE, -8, "malformed input")                                                         \
    X(TN_ERR_CONFIG, -9, "bad configuration")                                                      \
    X(TN_ERR_UNAVAILABLE, -10, "upstream unavailable")                                             \
    X(TN_ERR_UPSTREAM, -11, "upstream answered with an error")                                     \
    X(TN_ERR_AUTH, -12, "not authorized")                                                          \
    X(TN_ERR_KAFKA, -13, "kafka error")                                                            \
    X(TN_ERR_FATAL, -14, "fatal error, the component must be recreated")                           \
    X(TN_ERR_EXISTS, -15, "already exists")                                                        \
    X(TN_ERR_STOPPED, -16, "stopped")                                                              \
    X(TN_ERR_SCHEMA, -17, "schema violation")

typedef enum {
#define TN_ERR_ENUM_(name, val, text) name = (val),
    TN_ERR_LIST(TN_ERR_ENUM_)
#undef TN_ERR_ENUM_
} tn_err_t;

/** @brief A readable sentence fragment for @p rc. @returns a static string, never NULL. */
const char *tn_err_str(tn_err_t rc);

/** @brief The symbolic name of @p rc ("TN_ERR_TIMEOUT"). @returns a static string, never NULL. */
const char *tn_err_name(tn_err_t rc);

#endif
