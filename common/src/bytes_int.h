/* Internal: reading text eight bytes at a time (text.c, embed.c). */
#ifndef TAINA_BYTES_INT_H
#define TAINA_BYTES_INT_H

#include <stdint.h>
#include <string.h>

/* 8 bytes at p (any alignment: memcpy, no cast) as an integer with byte 0 in the low bits,
 * whatever the host's byte order. */
static inline uint64_t tn_load8_le(const void *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

#endif
