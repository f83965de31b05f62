/* Internal: reading text eight bytes at a time (text.c, embed.c, category.c). */
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

/* The inverse of tn_load8_le(): w's low byte to p[0]. */
static inline void tn_store8_le(void *p, uint64_t w)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    memcpy(p, &w, 8);
}

/* The first 8 bytes of a word of @p len bytes (fewer when shorter) as an integer, byte 0 in the
 * low bits, zero past the word: the key a word is looked up by (category.c's keywords, lang.c's
 * function words), the same a scan gets by masking one 8-byte load. */
static inline uint64_t tn_word_key(const char *w, size_t len)
{
    uint64_t key = 0;
    for (size_t i = 0; i < len && i < 8; i++)
        key |= (uint64_t)(unsigned char)w[i] << (8 * i);
    return key;
}

/* Masks of the bytes of a word that match a test: bit 7 of each such byte set and nothing else.
 * No carry or borrow crosses a byte, so every byte's bit is exact. */
#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Bytes below @p n, 1 <= n <= 0x80: adding 0x80 - n to the low 7 bits reaches bit 7 from n up. */
static inline uint64_t bytes_lt(uint64_t w, unsigned n)
{
    return ~((w & ~HIGHS) + (0x80 - n) * ONES) & ~w & HIGHS;
}

/* Bytes above @p n, 0 <= n < 0x80 (so every byte from 0x80 up). */
static inline uint64_t bytes_gt(uint64_t w, unsigned n)
{
    return (((w & ~HIGHS) + (0x7F - n) * ONES) | w) & HIGHS;
}

/* Bytes equal to @p c: those of w ^ c that are 0. */
static inline uint64_t bytes_eq(uint64_t w, unsigned c)
{
    return bytes_lt(w ^ (c * ONES), 1);
}

/* Bytes that start a code point: all but 10xxxxxx (bit 6 shifted up to bit 7 of its byte). */
static inline uint64_t lead_bytes(uint64_t w)
{
    return ~(w & ~(w << 1)) & HIGHS;
}

/* Index of the first marked byte of mask != 0. */
static inline size_t first_byte(uint64_t mask)
{
    return (size_t)__builtin_ctzll(mask) / 8;
}

/* The bits below the first marked byte of @p mask (all 64 when none is). */
static inline uint64_t before_first(uint64_t mask)
{
    return (mask & (0 - mask)) - 1;
}

/* How many bytes @p mask marks. */
static inline size_t count_bytes(uint64_t mask)
{
    return (size_t)(((mask >> 7) * ONES) >> 56);
}

/* One bit per byte of p[0..64) equal to @p c, byte 0 in bit 0: where a scan over words can take
 * the next word's end from a register (ctz, then clear the bit) instead of from a load of the
 * bytes after the last one, which chained every word to the one before. */
static inline uint64_t tn_bits64_eq(const void *p, unsigned char c);

/* Sixteen bytes at a time where the compiler may use SSE2 (every x86-64): the scans try a
 * block of 16 first and take the 8-byte steps above for a block that holds anything but the
 * common case, and everywhere without SSE2 (-DTN_NO_SSE2 builds that way here too). A vector
 * mask has 0xFF in each matching byte; tn_v16_bits() makes it one bit per byte, byte 0 in bit 0. */
#if defined(__SSE2__) && !defined(TN_NO_SSE2)
#include <emmintrin.h>
#define TN_V16 1

static inline __m128i tn_v16_load(const void *p)
{
    return _mm_loadu_si128((const __m128i *)p);
}

/* Bytes equal to @p c. */
static inline __m128i tn_v16_eq(__m128i v, unsigned char c)
{
    return _mm_cmpeq_epi8(v, _mm_set1_epi8((char)c));
}

/* Bytes in [lo, hi]: v - lo, wrapping, is at most hi - lo (unsigned). */
static inline __m128i tn_v16_in(__m128i v, unsigned char lo, unsigned char hi)
{
    __m128i x = _mm_sub_epi8(v, _mm_set1_epi8((char)lo));
    return _mm_cmpeq_epi8(_mm_min_epu8(x, _mm_set1_epi8((char)(hi - lo))), x);
}

static inline unsigned tn_v16_bits(__m128i m)
{
    return (unsigned)_mm_movemask_epi8(m);
}

/* How many bytes a vector mask marks (no popcnt in baseline x86-64: a call to libgcc). */
static inline unsigned tn_v16_count(__m128i m)
{
    __m128i s = _mm_sad_epu8(_mm_and_si128(m, _mm_set1_epi8(1)), _mm_setzero_si128());
    return (unsigned)(_mm_cvtsi128_si32(s) + _mm_extract_epi16(s, 4));
}
#endif

static inline uint64_t tn_bits64_eq(const void *p, unsigned char c)
{
    const unsigned char *u = p;
    uint64_t bits = 0;
#ifdef TN_V16
    for (int k = 0; k < 4; k++)
        bits |= (uint64_t)tn_v16_bits(tn_v16_eq(tn_v16_load(u + 16 * k), c)) << (16 * k);
#else
    /* bit 7 of each matching byte, gathered into the top byte by one multiply (the shifted
     * copies land on distinct bits 56..63, no carries), byte 0 in bit 56 */
    for (int k = 0; k < 8; k++)
        bits |= ((bytes_eq(tn_load8_le(u + 8 * k), c) >> 7) * 0x0102040810204080ULL >> 56)
                << (8 * k);
#endif
    return bits;
}

#endif
