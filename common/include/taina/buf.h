/**
 * @file buf.h
 * @brief A growable byte buffer with a maximum size set at init (STYLE rule 15).
 *
 * The struct is public so it can be embedded; access it only through this API
 * (reading `data` and `len` is fine). `data` is always NUL-terminated when non-NULL.
 */
#ifndef TAINA_BUF_H
#define TAINA_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "taina/err.h"

typedef struct tn_buf {
    char *data; /**< Owned by the buffer; NULL until the first append. */
    size_t len; /**< Bytes used, not counting the terminating NUL. */
    size_t cap; /**< Bytes allocated. */
    size_t max; /**< Largest allowed len; appends beyond it fail with TN_ERR_TOO_LARGE. */
} tn_buf_t;

/** @brief Initialise an empty buffer that may grow to @p max bytes. */
void tn_buf_init(tn_buf_t *b, size_t max);
/** @brief Free the contents (not the struct). Accepts a zeroed or cleaned buffer. */
void tn_buf_cleanup(tn_buf_t *b);
/** @brief Forget the contents, keep the allocation. */
void tn_buf_reset(tn_buf_t *b);
/** @brief Make room for @p n more bytes at once (an expected size: no doubling steps later).
 *  @returns TN_OK or TN_ERR_TOO_LARGE when len + @p n would pass the maximum (unchanged). */
tn_err_t tn_buf_reserve(tn_buf_t *b, size_t n);
/** @brief Append @p n bytes. @returns TN_OK or TN_ERR_TOO_LARGE (the buffer is unchanged). */
tn_err_t tn_buf_add(tn_buf_t *b, const void *p, size_t n);
/** @brief Append a NUL-terminated string. */
tn_err_t tn_buf_adds(tn_buf_t *b, const char *s);
/** @brief Append formatted text. @returns TN_OK or TN_ERR_TOO_LARGE (unchanged). */
tn_err_t tn_buf_addf(tn_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** @brief Append @p v in decimal, as "%llu" would (no printf: cheap enough for hot paths). */
tn_err_t tn_buf_add_uint(tn_buf_t *b, unsigned long long v);
/** @brief va_list form of tn_buf_addf(). */
tn_err_t tn_buf_vaddf(tn_buf_t *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/** @brief Append @p s as a JSON string literal, quotes included, escaping as RFC 8259 asks;
 *         bytes that are not valid UTF-8 become \ufffd, so the result is always valid JSON. */
tn_err_t tn_buf_add_json_str(tn_buf_t *b, const char *s);
/** @brief tn_buf_add_json_str() of @p len bytes of @p s (a NUL among them is escaped). */
tn_err_t tn_buf_add_json_strn(tn_buf_t *b, const char *s, size_t len);
/**
 * @brief Take the contents out of the buffer, leaving it empty.
 * @returns a NUL-terminated string (never NULL). Caller owns the result; free with free().
 */
char *tn_buf_detach(tn_buf_t *b, size_t *len);

#endif
