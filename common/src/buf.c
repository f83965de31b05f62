/* Growable byte buffers with a hard cap. */
#include "taina/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "taina/mem.h"

void tn_buf_init(tn_buf_t *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
}

void tn_buf_cleanup(tn_buf_t *b)
{
    if (!b)
        return;
    TN_FREE(b->data);
    b->len = b->cap = 0;
}

void tn_buf_reset(tn_buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

/* Room for @p extra more bytes and the NUL: by doubling from 64 (appends), or exactly (an
 * expected size, tn_buf_reserve()). */
static tn_err_t grow(tn_buf_t *b, size_t extra, int exact)
{
    if (extra > b->max - b->len || b->len > b->max)
        return TN_ERR_TOO_LARGE;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return TN_OK;
    size_t cap = exact ? need : b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > ((size_t)-1) / 2 ? need : cap * 2;
    b->data = tn_xrealloc(b->data, cap);
    b->cap = cap;
    b->data[b->len] = '\0';
    return TN_OK;
}

static tn_err_t reserve(tn_buf_t *b, size_t extra)
{
    return grow(b, extra, 0);
}

tn_err_t tn_buf_reserve(tn_buf_t *b, size_t n)
{
    return grow(b, n, 1);
}

tn_err_t tn_buf_add(tn_buf_t *b, const void *p, size_t n)
{
    /* room already (the common case: appends of a few bytes) without grow()'s call */
    if (!(n < b->cap - b->len && n <= b->max - b->len && b->len <= b->max)) {
        tn_err_t rc = reserve(b, n);
        if (rc != TN_OK)
            return rc;
    }
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return TN_OK;
}

tn_err_t tn_buf_adds(tn_buf_t *b, const char *s)
{
    return tn_buf_add(b, s, strlen(s));
}

tn_err_t tn_buf_add_uint(tn_buf_t *b, unsigned long long v)
{
    char d[20]; /* 2^64 - 1 has 20 digits */
    size_t i = sizeof(d);
    do {
        d[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return tn_buf_add(b, d + i, sizeof(d) - i);
}

tn_err_t tn_buf_vaddf(tn_buf_t *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return TN_ERR_INVALID;
    tn_err_t rc = reserve(b, (size_t)n);
    if (rc != TN_OK)
        return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return TN_OK;
}

tn_err_t tn_buf_addf(tn_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tn_err_t rc = tn_buf_vaddf(b, fmt, ap);
    va_end(ap);
    return rc;
}

/* Length of the valid UTF-8 sequence at @p p (@p avail bytes there), or 0: overlongs,
 * surrogates, code points past U+10FFFF and cut sequences are invalid. */
static size_t utf8_seq(const unsigned char *p, size_t avail)
{
    unsigned c = p[0];
    size_t k;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf)
        k = 1, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        k = 2, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        k = 3, cp = c & 0x07;
    else
        return 0;
    if (k >= avail)
        return 0;
    for (size_t i = 1; i <= k; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return k + 1;
}

tn_err_t tn_buf_add_json_str(tn_buf_t *b, const char *s)
{
    return tn_buf_add_json_strn(b, s, strlen(s));
}

tn_err_t tn_buf_add_json_strn(tn_buf_t *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = b->len;
    tn_err_t rc = tn_buf_add(b, "\"", 1);
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (rc == TN_OK && p < end) {
        const unsigned char *run = p; /* bytes that need no escape go in one append */
        while (p < end) {
            size_t k = *p >= 0x80 ? utf8_seq(p, (size_t)(end - p)) : 0;
            if (k > 0)
                p += k;
            else if (*p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
                p++;
            else
                break;
        }
        if (p > run)
            rc = tn_buf_add(b, run, (size_t)(p - run));
        if (rc != TN_OK || p == end)
            break;
        char esc[7];
        switch (*p) {
        case '"':
            rc = tn_buf_add(b, "\\\"", 2);
            break;
        case '\\':
            rc = tn_buf_add(b, "\\\\", 2);
            break;
        case '\n':
            rc = tn_buf_add(b, "\\n", 2);
            break;
        case '\r':
            rc = tn_buf_add(b, "\\r", 2);
            break;
        case '\t':
            rc = tn_buf_add(b, "\\t", 2);
            break;
        default:
            if (*p >= 0x80) { /* invalid UTF-8 (a message quoting hostile input): U+FFFD */
                rc = tn_buf_add(b, "\\ufffd", 6);
                break;
            }
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[*p >> 4];
            esc[5] = hex[*p & 0xf];
            rc = tn_buf_add(b, esc, 6);
        }
        p++;
    }
    if (rc == TN_OK)
        rc = tn_buf_add(b, "\"", 1);
    if (rc != TN_OK) {
        b->len = start; /* all or nothing */
        if (b->data)
            b->data[start] = '\0';
    }
    return rc;
}

char *tn_buf_detach(tn_buf_t *b, size_t *len)
{
    char *p = b->data ? b->data : tn_xstrdup("");
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
