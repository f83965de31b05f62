/*
 * The local vector store (vecstore.h): exact cosine top-k over one contiguous matrix.
 *
 * Layout: each row (L2-normalized on insert) is kept in 24-bit fixed point with one scale per
 * row, m = round(x / scale * 65536), |m| <= 127 * 65536, split in two arrays:
 *   qmat     rows x dims int8, round(m / 65536): the row quantized (x ~ qmat * qscale), read
 *            alone by the first pass of a search (candidates);
 *   lo       rows x dims int16, m - qmat * 65536: with qmat, the exact m, for the rescoring
 *            (x = m * qscale / 65536, an absolute error of at most max|x| / 2^24 a component,
 *            below that of float32 rounding of the largest ones; |m| < 2^24, exact as float);
 *   qscale   per row: max|x| / 127.
 *   qsum     per row: the sum of its qmat bytes (the VNNI kernels multiply unsigned query bytes
 *            q + 128 with the signed row and take 128 * qsum off).
 *   So a row takes 3 bytes a dimension (+8), 0.75x its floats; the arrays grow by an eighth
 *   (at least 64 rows), so vector_bytes <= 0.85x the rows' raw float32 bytes (realloc of a
 *   large block is an mremap in glibc: no copy).
 *   rows     per row: the ticket it belongs to (NULL = tombstone), its payload, tenant id and
 *            interned lang/category/source ids (filters compare integers; a source filter is a
 *            list of up to 8 ids).
 *   tenants  interned names; each has the ascending list of its rows, so a search reads only
 *            the caller's tenant's vectors.
 *   tickets  open-addressing map (tenant, ticket) -> ticket, each holding its chunks sorted by
 *            chunk_index -> row: the (tenant, ticket, chunk) -> row map in two levels, which also
 *            makes trim and delete_ticket O(chunks of the ticket).
 * A replaced, trimmed or deleted chunk leaves a tombstone; when tombstones exceed a quarter of
 * the rows, live rows move down (order kept, so results and ties do not change) and ids are
 * remapped.
 *
 * Dot products: GCC vector extensions (8 floats), 4 independent accumulators per call (4 rows
 * for one query, or 4 queries for one row), on rows decoded from the fixed point, cloned for
 * AVX2 where the compiler supports target_clones. Both kernels do the same operations in the
 * same order for each (query, row) pair, so search and search_many give bitwise identical
 * scores. The int8 first pass has portable kernels and, on x86-64 CPUs with VNNI (checked at
 * run time), one for a single query (64 dims an instruction) and lane kernels for batches (16 or
 * 8 queries an instruction, the row read once for all); its sums are exact integers, so every
 * kernel picks the same candidates with the same scores.
 *
 * The shared scan (last section): scan threads read the rows round and round for the searches in
 * their lanes, which join and leave at block boundaries; writers wait for them (write_begin).
 */
#include "taina/vecstore.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "taina/mem.h"

/* ------------------------------------------------------------------------------------------ */
/* Kernels */

typedef float v8f __attribute__((vector_size(32)));

/* ld8 and hsum8 are static and always inlined: the 32-byte vector ABI note does not apply. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#if defined(__x86_64__) && defined(__has_attribute) && !defined(TN_VECSTORE_NO_CLONES)
#if __has_attribute(target_clones)
#define VS_KERNEL __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef VS_KERNEL
#define VS_KERNEL
#endif

static inline __attribute__((always_inline)) v8f ld8(const float *p)
{
    v8f v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* Fixed order, so every kernel reduces the same way. */
static inline __attribute__((always_inline)) float hsum8(const v8f *p)
{
    v8f a = *p;
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

/* One query against four rows. */
VS_KERNEL static void dot_1q4r(const float *q, const float *r0, const float *r1, const float *r2,
                               const float *r3, size_t d, float *out)
{
    v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    size_t i = 0;
    for (; i + 8 <= d; i += 8) {
        v8f x = ld8(q + i);
        a0 += x * ld8(r0 + i);
        a1 += x * ld8(r1 + i);
        a2 += x * ld8(r2 + i);
        a3 += x * ld8(r3 + i);
    }
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (; i < d; i++) {
        s0 += q[i] * r0[i];
        s1 += q[i] * r1[i];
        s2 += q[i] * r2[i];
        s3 += q[i] * r3[i];
    }
    out[0] = hsum8(&a0) + s0;
    out[1] = hsum8(&a1) + s1;
    out[2] = hsum8(&a2) + s2;
    out[3] = hsum8(&a3) + s3;
}

/* Four queries against one row: the same operations per pair as dot_1q4r. */
VS_KERNEL static void dot_4q1r(const float *q0, const float *q1, const float *q2, const float *q3,
                               const float *r, size_t d, float *out)
{
    v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    size_t i = 0;
    for (; i + 8 <= d; i += 8) {
        v8f x = ld8(r + i);
        a0 += ld8(q0 + i) * x;
        a1 += ld8(q1 + i) * x;
        a2 += ld8(q2 + i) * x;
        a3 += ld8(q3 + i) * x;
    }
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (; i < d; i++) {
        s0 += q0[i] * r[i];
        s1 += q1[i] * r[i];
        s2 += q2[i] * r[i];
        s3 += q3[i] * r[i];
    }
    out[0] = hsum8(&a0) + s0;
    out[1] = hsum8(&a1) + s1;
    out[2] = hsum8(&a2) + s2;
    out[3] = hsum8(&a3) + s3;
}

/*
 * int8 kernels for the first pass: rows are quantized per row (q = round(x / scale), scale =
 * max|x| / 127) and stored as int8; the query is quantized the same way and kept widened to
 * int16. Products of int16 with a widened int8 summed into int32 is the dot-product pattern GCC
 * turns into vpmaddwd in the AVX2 clone (|sum| <= 127 * 127 * dims < 2^31 for dims <= 2^17;
 * larger stores skip the int8 pass). GCC 12 vectorizes at -O2 only with the cheap cost model,
 * too cheap for these loops, hence the optimize attribute. The sums are exact integers, so
 * every caller ranks candidates identically.
 */
#if defined(__GNUC__) && !defined(__clang__)
#define VS_VECTORIZE __attribute__((optimize("tree-loop-vectorize", "vect-cost-model=dynamic")))
#else
#define VS_VECTORIZE
#endif

VS_KERNEL VS_VECTORIZE static void idot_1q4r(const int16_t *q, const int8_t *r0, const int8_t *r1,
                                             const int8_t *r2, const int8_t *r3, size_t d,
                                             int32_t *out)
{
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (size_t i = 0; i < d; i++) {
        a0 += q[i] * (int16_t)r0[i];
        a1 += q[i] * (int16_t)r1[i];
        a2 += q[i] * (int16_t)r2[i];
        a3 += q[i] * (int16_t)r3[i];
    }
    out[0] = a0;
    out[1] = a1;
    out[2] = a2;
    out[3] = a3;
}

VS_KERNEL VS_VECTORIZE static void idot_4q1r(const int16_t *q0, const int16_t *q1,
                                             const int16_t *q2, const int16_t *q3, const int8_t *r,
                                             size_t d, int32_t *out)
{
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (size_t i = 0; i < d; i++) {
        int16_t x = r[i];
        a0 += q0[i] * x;
        a1 += q1[i] * x;
        a2 += q2[i] * x;
        a3 += q3[i] * x;
    }
    out[0] = a0;
    out[1] = a1;
    out[2] = a2;
    out[3] = a3;
}

/* Quantize the query @p v (d floats) as the rows' first-pass copy, widened to int16. */
static void quantize(const float *v, size_t d, int16_t *out)
{
    float mx = 0;
    for (size_t i = 0; i < d; i++)
        mx = fmaxf(mx, fabsf(v[i]));
    float inv = mx > 0 ? 127.0f / mx : 0;
    for (size_t i = 0; i < d; i++) {
        float x = roundf(v[i] * inv);
        out[i] = (int16_t)(x > 127 ? 127 : x < -127 ? -127 : x);
    }
}

/*
 * Lane kernels (x86-64 with VNNI), for a batch of queries: each query in its own 32-bit lane of
 * a vector register, 16 (AVX-512 VNNI) or 8 (AVX-VNNI) at a time. The queries of a group are
 * packed by groups of 4 dims: word w of lane l holds q_l[4w..4w+3] + 128 as unsigned bytes (0 in
 * the lanes of no query). A row's 4 int8 at 4w are broadcast to every lane and VPDPBUSD adds the
 * 4 products to each lane's int32 sum, which ends as q.r + 128 * sum(r): minus 128 * qsum[row],
 * exactly the integer dot product of idot_*, so every path ranks the same candidates with the
 * same scores. The row is read once for all the queries, one instruction does 4 dims of 16 (or
 * 8) queries, and no horizontal sums are needed. The score (float)sum * qscale is compared in
 * the kernel with each query's threshold (its heap's worst kept score, or its minimum), so the
 * caller looks only at the few (row, query) pairs that may enter a heap. Rows go 8 at a time (8
 * independent sums to cover VPDPBUSD's latency); dims must be a multiple of 4.
 */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) &&                            \
    !defined(TN_VECSTORE_NO_CLONES) && !defined(TN_VECSTORE_NO_LANES)
#define VS_LANES 1
#include <cpuid.h>
#include <immintrin.h>
#endif

#ifdef VS_LANES
enum { LANE_ROWS = 8 };

static inline int32_t ld32(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* The rows ids[i..i+LANE_ROWS) of a lane kernel's step into @p r (a short last step repeats
 * ids[i]), the next step's rows prefetched; @returns how many are real. */
static inline size_t lane_rows(const int8_t *qmat, size_t d, const uint32_t *ids, size_t i,
                               size_t n, const int8_t *r[LANE_ROWS])
{
    size_t m = TN_MIN((size_t)LANE_ROWS, n - i);
    for (size_t j = 0; j < LANE_ROWS; j++)
        r[j] = qmat + (size_t)ids[i + (j < m ? j : 0)] * d;
    for (size_t j = i + LANE_ROWS; j < TN_MIN(i + 2 * LANE_ROWS, n); j++)
        for (size_t c = 0; c < d; c += 64)
            _mm_prefetch((const char *)(qmat + (size_t)ids[j] * d + c), _MM_HINT_T0);
    return m;
}

/* 16 queries (packed @p qp: dims / 4 x 16 words) against the rows @p ids[0..n): scores into
 * @p sc (n x 16), and per row the lanes whose score >= @p thr[lane] into @p mask. */
__attribute__((target("avx512f,avx512vnni"))) static void
lanes16(const int8_t *qmat, size_t d, const int32_t *qsum, const float *qscale, const uint32_t *qp,
        const float *thr, const uint32_t *ids, size_t n, float *sc, uint32_t *mask)
{
    size_t d4 = d / 4;
    __m512 t = _mm512_loadu_ps(thr);
    for (size_t i = 0; i < n; i += LANE_ROWS) {
        const int8_t *r[LANE_ROWS];
        size_t m = lane_rows(qmat, d, ids, i, n, r);
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0,
                a7 = a0;
        for (size_t w = 0; w < d4; w++) {
            __m512i q = _mm512_loadu_si512(qp + w * 16);
            a0 = _mm512_dpbusd_epi32(a0, q, _mm512_set1_epi32(ld32(r[0] + 4 * w)));
            a1 = _mm512_dpbusd_epi32(a1, q, _mm512_set1_epi32(ld32(r[1] + 4 * w)));
            a2 = _mm512_dpbusd_epi32(a2, q, _mm512_set1_epi32(ld32(r[2] + 4 * w)));
            a3 = _mm512_dpbusd_epi32(a3, q, _mm512_set1_epi32(ld32(r[3] + 4 * w)));
            a4 = _mm512_dpbusd_epi32(a4, q, _mm512_set1_epi32(ld32(r[4] + 4 * w)));
            a5 = _mm512_dpbusd_epi32(a5, q, _mm512_set1_epi32(ld32(r[5] + 4 * w)));
            a6 = _mm512_dpbusd_epi32(a6, q, _mm512_set1_epi32(ld32(r[6] + 4 * w)));
            a7 = _mm512_dpbusd_epi32(a7, q, _mm512_set1_epi32(ld32(r[7] + 4 * w)));
        }
        __m512i a[LANE_ROWS] = {a0, a1, a2, a3, a4, a5, a6, a7};
        for (size_t j = 0; j < m; j++) {
            uint32_t row = ids[i + j];
            __m512i s = _mm512_sub_epi32(a[j], _mm512_set1_epi32(128 * qsum[row]));
            __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(qscale[row]));
            _mm512_storeu_ps(sc + (i + j) * 16, f);
            mask[i + j] = (uint32_t)_mm512_cmp_ps_mask(f, t, _CMP_GE_OQ);
        }
    }
}

/* The same for 8 queries (qp: dims / 4 x 8 words; sc: n x 8). */
__attribute__((target("avx2,avxvnni"))) static void
lanes8(const int8_t *qmat, size_t d, const int32_t *qsum, const float *qscale, const uint32_t *qp,
       const float *thr, const uint32_t *ids, size_t n, float *sc, uint32_t *mask)
{
    size_t d4 = d / 4;
    __m256 t = _mm256_loadu_ps(thr);
    for (size_t i = 0; i < n; i += LANE_ROWS) {
        const int8_t *r[LANE_ROWS];
        size_t m = lane_rows(qmat, d, ids, i, n, r);
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0,
                a7 = a0;
        for (size_t w = 0; w < d4; w++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(qp + w * 8));
            a0 = _mm256_dpbusd_avx_epi32(a0, q, _mm256_set1_epi32(ld32(r[0] + 4 * w)));
            a1 = _mm256_dpbusd_avx_epi32(a1, q, _mm256_set1_epi32(ld32(r[1] + 4 * w)));
            a2 = _mm256_dpbusd_avx_epi32(a2, q, _mm256_set1_epi32(ld32(r[2] + 4 * w)));
            a3 = _mm256_dpbusd_avx_epi32(a3, q, _mm256_set1_epi32(ld32(r[3] + 4 * w)));
            a4 = _mm256_dpbusd_avx_epi32(a4, q, _mm256_set1_epi32(ld32(r[4] + 4 * w)));
            a5 = _mm256_dpbusd_avx_epi32(a5, q, _mm256_set1_epi32(ld32(r[5] + 4 * w)));
            a6 = _mm256_dpbusd_avx_epi32(a6, q, _mm256_set1_epi32(ld32(r[6] + 4 * w)));
            a7 = _mm256_dpbusd_avx_epi32(a7, q, _mm256_set1_epi32(ld32(r[7] + 4 * w)));
        }
        __m256i a[LANE_ROWS] = {a0, a1, a2, a3, a4, a5, a6, a7};
        for (size_t j = 0; j < m; j++) {
            uint32_t row = ids[i + j];
            __m256i s = _mm256_sub_epi32(a[j], _mm256_set1_epi32(128 * qsum[row]));
            __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(qscale[row]));
            _mm256_storeu_ps(sc + (i + j) * 8, f);
            mask[i + j] = (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(f, t, _CMP_GE_OQ));
        }
    }
}
#endif

#ifdef VS_LANES
/* One query (@p qu: q + 128 as unsigned bytes, zero-padded to a multiple of 64) against four
 * rows, 64 dims an instruction: out[j] = q.r_j + 128 * sum(r_j) (the caller subtracts
 * 128 * qsum). The last partial 64 bytes of a row are read masked. */
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void
vdot_1q4r(const uint8_t *qu, const int8_t *r0, const int8_t *r1, const int8_t *r2, const int8_t *r3,
          size_t d, int32_t *out)
{
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 64 <= d; i += 64) {
        __m512i q = _mm512_loadu_si512(qu + i);
        a0 = _mm512_dpbusd_epi32(a0, q, _mm512_loadu_si512(r0 + i));
        a1 = _mm512_dpbusd_epi32(a1, q, _mm512_loadu_si512(r1 + i));
        a2 = _mm512_dpbusd_epi32(a2, q, _mm512_loadu_si512(r2 + i));
        a3 = _mm512_dpbusd_epi32(a3, q, _mm512_loadu_si512(r3 + i));
    }
    if (i < d) {
        __mmask64 m = ~0ULL >> (64 - (d - i));
        __m512i q = _mm512_loadu_si512(qu + i);
        a0 = _mm512_dpbusd_epi32(a0, q, _mm512_maskz_loadu_epi8(m, r0 + i));
        a1 = _mm512_dpbusd_epi32(a1, q, _mm512_maskz_loadu_epi8(m, r1 + i));
        a2 = _mm512_dpbusd_epi32(a2, q, _mm512_maskz_loadu_epi8(m, r2 + i));
        a3 = _mm512_dpbusd_epi32(a3, q, _mm512_maskz_loadu_epi8(m, r3 + i));
    }
    out[0] = _mm512_reduce_add_epi32(a0);
    out[1] = _mm512_reduce_add_epi32(a1);
    out[2] = _mm512_reduce_add_epi32(a2);
    out[3] = _mm512_reduce_add_epi32(a3);
}
#endif

/* The kernels this CPU runs: TN_VEC_KERNEL_VNNI512 | TN_VEC_KERNEL_VNNI256 bits. */
static unsigned lane_kernels(void)
{
    unsigned k = 0;
#ifdef VS_LANES
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vnni"))
        k |= TN_VEC_KERNEL_VNNI512;
    /* AVX-VNNI: CPUID leaf 7, subleaf 1, EAX bit 4 (not every compiler's builtin knows it) */
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (__builtin_cpu_supports("avx2") && __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & 16u))
        k |= TN_VEC_KERNEL_VNNI256;
#endif
    return k;
}

/* Encode @p v (d floats, not all zero) into the 24-bit fixed point: @p hi (the int8 first-pass
 * copy) and @p lo. @returns the scale of hi (max|v| / 127). */
static float encode(const float *v, size_t d, int8_t *hi, int16_t *lo)
{
    float mx = 0;
    for (size_t i = 0; i < d; i++)
        mx = fmaxf(mx, fabsf(v[i]));
    float scale = mx / 127.0f;
    double inv = 65536.0 / scale, lim = 127.0 * 65536;
    for (size_t i = 0; i < d; i++) {
        double x = round((double)v[i] * inv);
        int32_t m = (int32_t)(x > lim ? lim : x < -lim ? -lim : x);
        int32_t h = (m + 32768 + 128 * 65536) / 65536 - 128; /* round(m / 65536), in +-127 */
        hi[i] = (int8_t)h;
        lo[i] = (int16_t)(m - h * 65536);
    }
    return scale;
}

/* Decode row @p hi, @p lo of scale @p scale into @p out (d floats). */
VS_VECTORIZE static void decode(const int8_t *hi, const int16_t *lo, float scale, size_t d,
                                float *out)
{
    float s = scale / 65536.0f; /* exact: a power of two */
    for (size_t i = 0; i < d; i++)
        out[i] = (float)((int32_t)hi[i] * 65536 + lo[i]) * s;
}

/* L2-normalize @p v into @p out. @returns 0, or -1 for a zero or non-finite vector. */
static int normalize(const float *v, size_t d, float *out)
{
    double ss = 0;
    for (size_t i = 0; i < d; i++) {
        if (!isfinite(v[i]))
            return -1;
        ss += (double)v[i] * v[i];
    }
    if (!(ss > 0) || !isfinite(ss))
        return -1;
    double inv = 1.0 / sqrt(ss);
    for (size_t i = 0; i < d; i++)
        out[i] = (float)(v[i] * inv);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Structures */

typedef struct chunk {
    uint32_t chunk_index, start, end;
    uint32_t size; /* bytes of this allocation */
    char *title;   /* inside this allocation, or NULL */
    char text[];   /* text, then title */
} chunk_t;

typedef struct tkchunk {
    uint32_t chunk_index;
    uint32_t row;
} tkchunk_t;

typedef struct ticket {
    uint64_t hash;
    uint32_t tenant;
    uint32_t n, cap;
    tkchunk_t *ch; /* sorted by chunk_index */
    char id[];
} ticket_t;

typedef struct vrow {
    ticket_t *tk; /* NULL: tombstone */
    chunk_t *c;
    uint32_t tenant;
    uint32_t lang, cat, src; /* interned id + 1; 0 = none (src fills the padding: 32 bytes) */
} vrow_t;

/* Interned strings (tenants, langs, categories, sources): never removed. */
typedef struct strtab {
    char **s;
    uint32_t n, cap;
    uint32_t *slot; /* index + 1; 0 = empty */
    uint32_t nslot; /* power of two */
    size_t bytes;
} strtab_t;

typedef struct tenant_rows {
    uint32_t *ids; /* ascending */
    uint32_t n, cap;
} tenant_rows_t;

typedef struct vs_quest vs_quest_t; /* a search in the shared scan (Shared scan, below) */

enum { VS_MAX_WORKERS = 4 };

/* One scan thread: the rows [nrows * id / nworkers, nrows * (id + 1) / nworkers) round and
 * round; only this thread touches its fields after the start. */
typedef struct vs_worker {
    struct tn_vecstore *vs;
    size_t id;
    pthread_t thread;
    vs_quest_t **lane; /* nlanes: the searches it has joined and has rows left for */
    uint32_t *qp;      /* nlanes / width groups of dims / 4 x width packed words */
    uint32_t *qp8;     /* width 16 and AVX-VNNI: the same in groups of 8, for half-full groups */
    float *thr;        /* nlanes: each lane's threshold (INFINITY when free) */
    uint32_t pos;      /* the next block's first row */
} vs_worker_t;

/* The shared scan's state; mu, drained, inflight, writers and owed are used by every writer
 * whether or not the scan runs. */
typedef struct vscan {
    pthread_mutex_t mu;
    pthread_cond_t work;     /* the scan threads: a search queued or admitted, writers gone, stop */
    pthread_cond_t drained;  /* writers: no search in flight, or questions admitted */
    vs_quest_t *head, *tail; /* queued, not yet in a lane */
    size_t inflight;         /* searches admitted and not yet emitted: no writer meanwhile */
    unsigned writers;        /* writers waiting or writing: no search is admitted */
    int owed;                /* a write ended with searches queued: they go before the next */
    int started, stop;
    size_t width;      /* lanes of one kernel call: 16, 8, or 4 (portable) */
    size_t nlanes;     /* a multiple of width */
    uint32_t block;    /* rows a block */
    vs_quest_t **lane; /* nlanes: the searches admitted and not yet scanned; NULL = free */
    size_t nworkers;
    vs_worker_t worker[VS_MAX_WORKERS];
} vscan_t;

struct tn_vecstore {
    pthread_rwlock_t lock;
    size_t dims;
    int8_t *qmat;  /* rows x dims: the rows quantized, qmat * qscale ~ x (first pass) */
    int16_t *lo;   /* rows x dims: with qmat the 24-bit fixed point (rescoring) */
    float *qscale; /* per row: max|x| / 127 */
    int32_t *qsum; /* per row: the sum of its qmat (the lane kernels' offset) */
    vrow_t *rows;
    uint32_t nrows, cap, dead;
    strtab_t tenants, langs, cats, srcs;
    tenant_rows_t *trows; /* ntrows entries (>= tenants.n) */
    uint32_t ntrows;
    ticket_t **tmap; /* open addressing, NULL = empty */
    uint32_t tslots, ntickets;
    size_t payload;      /* chunk and ticket allocations */
    unsigned lanes;      /* kernels searches use (TN_VEC_KERNEL_*) */
    int first_pass_only; /* TN_VEC_FIRST_PASS_ONLY (tests) */
    vscan_t scan;
};

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static uint64_t str_hash(const char *s)
{
    return fnv(1469598103934665603ULL, s, strlen(s));
}

static uint64_t ticket_hash(uint32_t tenant, const char *id)
{
    uint64_t h = fnv(1469598103934665603ULL, &tenant, sizeof(tenant));
    h = fnv(h, id, strlen(id));
    return h ^ (h >> 29);
}

/* @returns the id of @p s, or UINT32_MAX when absent. */
static uint32_t strtab_find(const strtab_t *t, const char *s)
{
    if (!t->nslot)
        return UINT32_MAX;
    uint32_t m = t->nslot - 1;
    for (uint32_t i = (uint32_t)str_hash(s) & m;; i = (i + 1) & m) {
        uint32_t v = t->slot[i];
        if (!v)
            return UINT32_MAX;
        if (strcmp(t->s[v - 1], s) == 0)
            return v - 1;
    }
}

static void strtab_place(strtab_t *t, uint32_t id)
{
    uint32_t m = t->nslot - 1;
    uint32_t i = (uint32_t)str_hash(t->s[id]) & m;
    while (t->slot[i])
        i = (i + 1) & m;
    t->slot[i] = id + 1;
}

static uint32_t strtab_intern(strtab_t *t, const char *s)
{
    uint32_t id = strtab_find(t, s);
    if (id != UINT32_MAX)
        return id;
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 8;
        t->s = tn_xrealloc(t->s, t->cap * sizeof(*t->s));
    }
    if ((t->n + 1) * 2 > t->nslot) {
        free(t->slot);
        t->nslot = t->nslot ? t->nslot * 2 : 16;
        t->slot = tn_xcalloc(t->nslot, sizeof(*t->slot));
        for (uint32_t i = 0; i < t->n; i++)
            strtab_place(t, i);
    }
    id = t->n++;
    t->s[id] = tn_xstrdup(s);
    t->bytes += strlen(s) + 1;
    strtab_place(t, id);
    return id;
}

static void strtab_free(strtab_t *t)
{
    for (uint32_t i = 0; i < t->n; i++)
        free(t->s[i]);
    free(t->s);
    free(t->slot);
}

static size_t strtab_bytes(const strtab_t *t)
{
    return t->bytes + t->cap * sizeof(*t->s) + t->nslot * sizeof(*t->slot);
}

/* ------------------------------------------------------------------------------------------ */
/* Ticket map */

static uint32_t tmap_slot(const tn_vecstore_t *vs, uint32_t tenant, const char *id, uint64_t h)
{
    uint32_t m = vs->tslots - 1;
    for (uint32_t i = (uint32_t)h & m;; i = (i + 1) & m) {
        ticket_t *t = vs->tmap[i];
        if (!t || (t->hash == h && t->tenant == tenant && strcmp(t->id, id) == 0))
            return i;
    }
}

static ticket_t *tmap_find(const tn_vecstore_t *vs, uint32_t tenant, const char *id)
{
    if (!vs->tslots)
        return NULL;
    return vs->tmap[tmap_slot(vs, tenant, id, ticket_hash(tenant, id))];
}

static void tmap_grow(tn_vecstore_t *vs)
{
    ticket_t **old = vs->tmap;
    uint32_t n = vs->tslots;
    vs->tslots = n ? n * 2 : 64;
    vs->tmap = tn_xcalloc(vs->tslots, sizeof(*vs->tmap));
    for (uint32_t i = 0; i < n; i++)
        if (old[i])
            vs->tmap[tmap_slot(vs, old[i]->tenant, old[i]->id, old[i]->hash)] = old[i];
    free(old);
}

static ticket_t *tmap_get_or_add(tn_vecstore_t *vs, uint32_t tenant, const char *id)
{
    if ((vs->ntickets + 1) * 2 > vs->tslots)
        tmap_grow(vs);
    uint64_t h = ticket_hash(tenant, id);
    uint32_t i = tmap_slot(vs, tenant, id, h);
    if (vs->tmap[i])
        return vs->tmap[i];
    size_t len = strlen(id);
    ticket_t *t = tn_xcalloc(1, sizeof(*t) + len + 1);
    memcpy(t->id, id, len + 1);
    t->hash = h;
    t->tenant = tenant;
    vs->tmap[i] = t;
    vs->ntickets++;
    vs->payload += sizeof(*t) + len + 1;
    return t;
}

/* Remove an empty ticket (backward-shift deletion: no tombstones in the map). */
static void tmap_remove(tn_vecstore_t *vs, ticket_t *t)
{
    uint32_t m = vs->tslots - 1;
    uint32_t i = tmap_slot(vs, t->tenant, t->id, t->hash);
    TN_ASSERT(vs->tmap[i] == t);
    vs->tmap[i] = NULL;
    for (uint32_t j = (i + 1) & m; vs->tmap[j]; j = (j + 1) & m) {
        uint32_t home = (uint32_t)vs->tmap[j]->hash & m;
        /* Move j into the hole at i unless its home lies cyclically in (i, j]. */
        if (((j - home) & m) >= ((j - i) & m)) {
            vs->tmap[i] = vs->tmap[j];
            vs->tmap[j] = NULL;
            i = j;
        }
    }
    vs->ntickets--;
    vs->payload -= sizeof(*t) + strlen(t->id) + 1 + t->cap * sizeof(*t->ch);
    free(t->ch);
    free(t);
}

/* Index of the first chunk with chunk_index >= @p ci. */
static uint32_t tk_lower(const ticket_t *t, uint32_t ci)
{
    uint32_t lo = 0, hi = t->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (t->ch[mid].chunk_index < ci)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* ------------------------------------------------------------------------------------------ */
/* Store */

tn_vecstore_t *tn_vecstore_new(size_t dims)
{
    if (dims == 0 || dims > (1u << 20))
        return NULL;
    tn_vecstore_t *vs = tn_xcalloc(1, sizeof(*vs));
    vs->dims = dims;
    vs->lanes = lane_kernels();
    if (pthread_rwlock_init(&vs->lock, NULL) != 0) {
        free(vs);
        return NULL;
    }
    pthread_mutex_init(&vs->scan.mu, NULL);
    pthread_cond_init(&vs->scan.work, NULL);
    pthread_cond_init(&vs->scan.drained, NULL);
    return vs;
}

void tn_vecstore_destroy(tn_vecstore_t *vs)
{
    if (!vs)
        return;
    tn_vecstore_scan_stop(vs);
    for (uint32_t r = 0; r < vs->nrows; r++)
        if (vs->rows[r].tk)
            free(vs->rows[r].c);
    for (uint32_t i = 0; i < vs->tslots; i++)
        if (vs->tmap[i]) {
            free(vs->tmap[i]->ch);
            free(vs->tmap[i]);
        }
    free(vs->tmap);
    for (uint32_t i = 0; i < vs->tenants.n; i++)
        free(vs->trows[i].ids);
    free(vs->trows);
    strtab_free(&vs->tenants);
    strtab_free(&vs->langs);
    strtab_free(&vs->cats);
    strtab_free(&vs->srcs);
    free(vs->lo);
    free(vs->qmat);
    free(vs->qscale);
    free(vs->qsum);
    free(vs->rows);
    pthread_cond_destroy(&vs->scan.drained);
    pthread_cond_destroy(&vs->scan.work);
    pthread_mutex_destroy(&vs->scan.mu);
    pthread_rwlock_destroy(&vs->lock);
    free(vs);
}

size_t tn_vecstore_dims(const tn_vecstore_t *vs)
{
    return vs ? vs->dims : 0;
}

unsigned tn_vecstore_kernels(tn_vecstore_t *vs, unsigned mask)
{
    if (!vs)
        return 0;
    vs->lanes = lane_kernels() & mask;
    vs->first_pass_only = (mask & TN_VEC_FIRST_PASS_ONLY) != 0;
    return vs->lanes | (mask & TN_VEC_FIRST_PASS_ONLY);
}

/*
 * Writers and the shared scan: a search in the scan keeps candidate rows across blocks, so no
 * write may land while one is in flight. A writer first stops admissions (writers > 0), waits
 * until the searches in flight are emitted (each at most one round), then takes the write lock;
 * searches that queued meanwhile go in before the next writer (owed), so neither side starves.
 */
static void write_begin(tn_vecstore_t *vs)
{
    vscan_t *sc = &vs->scan;
    pthread_mutex_lock(&sc->mu);
    while (sc->owed)
        pthread_cond_wait(&sc->drained, &sc->mu);
    sc->writers++;
    while (sc->inflight)
        pthread_cond_wait(&sc->drained, &sc->mu);
    pthread_mutex_unlock(&sc->mu);
    pthread_rwlock_wrlock(&vs->lock);
}

static void write_end(tn_vecstore_t *vs)
{
    vscan_t *sc = &vs->scan;
    pthread_rwlock_unlock(&vs->lock);
    pthread_mutex_lock(&sc->mu);
    if (!--sc->writers && sc->head && sc->started && !sc->stop) {
        sc->owed = 1;
        pthread_cond_signal(&sc->work);
    }
    pthread_mutex_unlock(&sc->mu);
}

static void set_capacity(tn_vecstore_t *vs, uint32_t cap)
{
    vs->lo = tn_xrealloc(vs->lo, (size_t)cap * vs->dims * sizeof(*vs->lo));
    vs->qmat = tn_xrealloc(vs->qmat, (size_t)cap * vs->dims);
    vs->qscale = tn_xrealloc(vs->qscale, (size_t)cap * sizeof(*vs->qscale));
    vs->qsum = tn_xrealloc(vs->qsum, (size_t)cap * sizeof(*vs->qsum));
    vs->rows = tn_xrealloc(vs->rows, (size_t)cap * sizeof(*vs->rows));
    vs->cap = cap;
}

static void tenant_push(tn_vecstore_t *vs, uint32_t tenant, uint32_t row)
{
    tenant_rows_t *tr = &vs->trows[tenant];
    if (tr->n == tr->cap) {
        tr->cap = tr->cap ? tr->cap + tr->cap / 4 + 16 : 16;
        tr->ids = tn_xrealloc(tr->ids, tr->cap * sizeof(*tr->ids));
    }
    tr->ids[tr->n++] = row;
}

static void kill_row(tn_vecstore_t *vs, uint32_t row)
{
    vrow_t *r = &vs->rows[row];
    vs->payload -= r->c->size;
    TN_FREE(r->c);
    r->tk = NULL;
    vs->dead++;
}

/* Move the live rows down (order kept), remap ids, rebuild the tenants' lists, shrink. */
static void compact(tn_vecstore_t *vs)
{
    uint32_t *remap = tn_xmalloc((size_t)(vs->nrows ? vs->nrows : 1) * sizeof(*remap));
    uint32_t n = 0;
    size_t d = vs->dims;
    for (uint32_t r = 0; r < vs->nrows; r++) {
        if (!vs->rows[r].tk)
            continue;
        if (n != r) {
            memcpy(vs->lo + (size_t)n * d, vs->lo + (size_t)r * d, d * sizeof(*vs->lo));
            memcpy(vs->qmat + (size_t)n * d, vs->qmat + (size_t)r * d, d);
            vs->qscale[n] = vs->qscale[r];
            vs->qsum[n] = vs->qsum[r];
            vs->rows[n] = vs->rows[r];
        }
        remap[r] = n++;
    }
    for (uint32_t i = 0; i < vs->tslots; i++) {
        ticket_t *t = vs->tmap[i];
        if (t)
            for (uint32_t j = 0; j < t->n; j++)
                t->ch[j].row = remap[t->ch[j].row];
    }
    free(remap);
    for (uint32_t i = 0; i < vs->tenants.n; i++)
        vs->trows[i].n = 0;
    for (uint32_t r = 0; r < n; r++)
        tenant_push(vs, vs->rows[r].tenant, r);
    for (uint32_t i = 0; i < vs->tenants.n; i++) {
        tenant_rows_t *tr = &vs->trows[i];
        if (tr->cap > tr->n + tr->n / 4 + 16) {
            tr->cap = tr->n + 16;
            tr->ids = tn_xrealloc(tr->ids, tr->cap * sizeof(*tr->ids));
        }
    }
    vs->nrows = n;
    vs->dead = 0;
    uint32_t cap = n + n / 8 + 64;
    if (cap < vs->cap)
        set_capacity(vs, cap);
}

static void maybe_compact(tn_vecstore_t *vs)
{
    if (vs->dead && (uint64_t)vs->dead * 4 > vs->nrows)
        compact(vs);
}

static chunk_t *chunk_new(const tn_vec_payload_t *p)
{
    const char *text = p->text ? p->text : "";
    size_t tl = strlen(text), hl = p->title ? strlen(p->title) + 1 : 0;
    size_t size = sizeof(chunk_t) + tl + 1 + hl;
    chunk_t *c = tn_xmalloc(size);
    c->chunk_index = p->chunk_index;
    c->start = p->start;
    c->end = p->end;
    c->size = (uint32_t)size;
    memcpy(c->text, text, tl + 1);
    c->title = NULL;
    if (p->title) {
        c->title = c->text + tl + 1;
        memcpy(c->title, p->title, hl);
    }
    return c;
}

tn_err_t tn_vecstore_put(tn_vecstore_t *vs, const tn_vec_payload_t *p, const float *v)
{
    if (!vs || !p || !v || !p->tenant_id || !p->ticket_id)
        return TN_ERR_INVALID;
    size_t tl = p->text ? strlen(p->text) : 0, hl = p->title ? strlen(p->title) : 0;
    if (tl + hl > UINT32_MAX / 2)
        return TN_ERR_INVALID;
    float *nv = tn_xmalloc(vs->dims * sizeof(float));
    if (normalize(v, vs->dims, nv) != 0) {
        free(nv);
        return TN_ERR_INVALID;
    }
    int8_t *q8 = tn_xmalloc(vs->dims);
    int16_t *lo = tn_xmalloc(vs->dims * sizeof(*lo));
    float qs = encode(nv, vs->dims, q8, lo);
    chunk_t *c = chunk_new(p);

    write_begin(vs);
    if (vs->nrows == UINT32_MAX - 1) {
        write_end(vs);
        free(c);
        free(lo);
        free(q8);
        free(nv);
        return TN_ERR_TOO_LARGE;
    }
    uint32_t tenant = strtab_intern(&vs->tenants, p->tenant_id);
    if (vs->tenants.n > vs->ntrows) { /* a new tenant: its (empty) row list */
        vs->trows = tn_xrealloc(vs->trows, vs->tenants.cap * sizeof(*vs->trows));
        memset(&vs->trows[vs->ntrows], 0, (vs->tenants.cap - vs->ntrows) * sizeof(*vs->trows));
        vs->ntrows = vs->tenants.cap;
    }
    ticket_t *t = tmap_get_or_add(vs, tenant, p->ticket_id);
    uint32_t pos = tk_lower(t, p->chunk_index);
    if (pos < t->n && t->ch[pos].chunk_index == p->chunk_index) {
        kill_row(vs, t->ch[pos].row);
    } else {
        if (t->n == t->cap) {
            uint32_t nc = t->cap ? t->cap * 2 : 4;
            t->ch = tn_xrealloc(t->ch, nc * sizeof(*t->ch));
            vs->payload += (nc - t->cap) * sizeof(*t->ch);
            t->cap = nc;
        }
        memmove(&t->ch[pos + 1], &t->ch[pos], (t->n - pos) * sizeof(*t->ch));
        t->n++;
        t->ch[pos].chunk_index = p->chunk_index;
    }
    if (vs->nrows == vs->cap) {
        uint32_t grow = vs->cap / 8 > 64 ? vs->cap / 8 : 64;
        set_capacity(vs, vs->cap + grow);
    }
    uint32_t row = vs->nrows++;
    memcpy(vs->lo + (size_t)row * vs->dims, lo, vs->dims * sizeof(*lo));
    memcpy(vs->qmat + (size_t)row * vs->dims, q8, vs->dims);
    vs->qscale[row] = qs;
    int32_t sum = 0;
    for (size_t i = 0; i < vs->dims; i++)
        sum += q8[i];
    vs->qsum[row] = sum;
    vrow_t *r = &vs->rows[row];
    r->tk = t;
    r->c = c;
    r->tenant = tenant;
    r->lang = p->lang ? strtab_intern(&vs->langs, p->lang) + 1 : 0;
    r->cat = p->category ? strtab_intern(&vs->cats, p->category) + 1 : 0;
    r->src = p->source ? strtab_intern(&vs->srcs, p->source) + 1 : 0;
    vs->payload += c->size;
    t->ch[pos].row = row;
    tenant_push(vs, tenant, row);
    maybe_compact(vs);
    write_end(vs);
    free(lo);
    free(q8);
    free(nv);
    return TN_OK;
}

/* Remove the chunks of (tenant, ticket) with chunk_index >= from. Caller holds the write lock. */
static size_t remove_from(tn_vecstore_t *vs, const char *tenant, const char *ticket, uint32_t from)
{
    if (!tenant || !ticket)
        return 0;
    uint32_t tid = strtab_find(&vs->tenants, tenant);
    if (tid == UINT32_MAX)
        return 0;
    ticket_t *t = tmap_find(vs, tid, ticket);
    if (!t)
        return 0;
    uint32_t pos = tk_lower(t, from);
    size_t n = t->n - pos;
    for (uint32_t i = pos; i < t->n; i++)
        kill_row(vs, t->ch[i].row);
    t->n = pos;
    if (t->n == 0)
        tmap_remove(vs, t);
    maybe_compact(vs);
    return n;
}

size_t tn_vecstore_trim(tn_vecstore_t *vs, const char *tenant, const char *ticket, uint32_t from)
{
    if (!vs)
        return 0;
    write_begin(vs);
    size_t n = remove_from(vs, tenant, ticket, from);
    write_end(vs);
    return n;
}

size_t tn_vecstore_delete_ticket(tn_vecstore_t *vs, const char *tenant, const char *ticket)
{
    return tn_vecstore_trim(vs, tenant, ticket, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Search */

typedef struct cand {
    float s;
    uint32_t row;
} cand_t;

/* a ranks below b: lower score, or the same score and a later row. */
static inline int worse(cand_t a, cand_t b)
{
    return a.s < b.s || (a.s == b.s && a.row > b.row);
}

/* A min-heap of the k best (root = the worst kept). */
typedef struct heap {
    cand_t *c;
    size_t n, k;
    float min_score;
} heap_t;

static void heap_sift_down(heap_t *h, size_t i)
{
    cand_t x = h->c[i];
    for (;;) {
        size_t l = 2 * i + 1, w = i;
        cand_t wc = x;
        if (l < h->n && worse(h->c[l], wc)) {
            w = l;
            wc = h->c[l];
        }
        if (l + 1 < h->n && worse(h->c[l + 1], wc))
            w = l + 1;
        if (w == i)
            break;
        h->c[i] = h->c[w];
        i = w;
    }
    h->c[i] = x;
}

static inline void heap_push(heap_t *h, float s, uint32_t row)
{
    if (!(s >= h->min_score))
        return;
    cand_t x = {s, row};
    if (h->n < h->k) {
        size_t i = h->n++;
        while (i > 0) {
            size_t p = (i - 1) / 2;
            if (!worse(x, h->c[p]))
                break;
            h->c[i] = h->c[p];
            i = p;
        }
        h->c[i] = x;
    } else if (worse(h->c[0], x)) {
        h->c[0] = x;
        heap_sift_down(h, 0);
    }
}

/* The threshold of heap @p h: a score below it cannot enter (equal ones are checked). */
static inline float heap_floor(const heap_t *h)
{
    return h->n < h->k ? h->min_score : h->c[0].s;
}

static int cand_cmp(const void *a, const void *b)
{
    cand_t x = *(const cand_t *)a, y = *(const cand_t *)b;
    return worse(y, x) ? -1 : worse(x, y) ? 1 : 0;
}

static void copy_str(char *dst, size_t cap, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, s, n);
    dst[n] = '\0';
}

/* Sort the heap best first and copy it into @p hits. @returns the count. */
static size_t heap_emit(const tn_vecstore_t *vs, heap_t *h, tn_vec_hit_t *hits)
{
    qsort(h->c, h->n, sizeof(*h->c), cand_cmp);
    for (size_t i = 0; i < h->n; i++) {
        const vrow_t *r = &vs->rows[h->c[i].row];
        tn_vec_hit_t *o = &hits[i];
        o->score = h->c[i].s;
        copy_str(o->ticket_id, sizeof(o->ticket_id), r->tk->id);
        o->chunk_index = r->c->chunk_index;
        o->title = tn_xstrdup(r->c->title);
        o->text = tn_xstrdup(r->c->text);
        copy_str(o->lang, sizeof(o->lang), r->lang ? vs->langs.s[r->lang - 1] : NULL);
        copy_str(o->category, sizeof(o->category), r->cat ? vs->cats.s[r->cat - 1] : NULL);
        copy_str(o->source, sizeof(o->source), r->src ? vs->srcs.s[r->src - 1] : NULL);
        o->start = r->c->start;
        o->end = r->c->end;
    }
    return h->n;
}

/* A filter resolved to ids. ok = 0: nothing can match. */
typedef struct rfilter {
    int ok;
    uint32_t tenant;
    uint32_t lang, cat; /* 0 = any */
    const ticket_t *tk; /* NULL = any */
    uint32_t nsrc;      /* 0 = any source; else the row's src is one of src[] */
    uint32_t src[TN_VEC_MAX_SOURCES];
} rfilter_t;

static rfilter_t resolve(const tn_vecstore_t *vs, const tn_vec_filter_t *f)
{
    rfilter_t r = {.ok = 0};
    if (!f || !f->tenant_id)
        return r;
    r.tenant = strtab_find(&vs->tenants, f->tenant_id);
    if (r.tenant == UINT32_MAX)
        return r;
    if (f->lang) {
        uint32_t id = strtab_find(&vs->langs, f->lang);
        if (id == UINT32_MAX)
            return r;
        r.lang = id + 1;
    }
    if (f->category) {
        uint32_t id = strtab_find(&vs->cats, f->category);
        if (id == UINT32_MAX)
            return r;
        r.cat = id + 1;
    }
    if (f->ticket_id) {
        r.tk = tmap_find(vs, r.tenant, f->ticket_id);
        if (!r.tk)
            return r;
    }
    if (f->nsources) {
        TN_ASSERT(f->nsources <= TN_VEC_MAX_SOURCES && f->sources);
        for (size_t i = 0; i < f->nsources; i++) {
            uint32_t id = f->sources[i] ? strtab_find(&vs->srcs, f->sources[i]) : UINT32_MAX;
            if (id != UINT32_MAX)
                r.src[r.nsrc++] = id + 1;
        }
        if (!r.nsrc) /* no chunk has any of them */
            return r;
    }
    r.ok = 1;
    return r;
}

/* The payload filters (lang, category, source) of a live row; every kernel's path asks this. */
static inline int meta_ok(const vrow_t *r, const rfilter_t *f)
{
    if ((f->lang && r->lang != f->lang) || (f->cat && r->cat != f->cat))
        return 0;
    if (!f->nsrc)
        return 1;
    for (uint32_t i = 0; i < f->nsrc; i++)
        if (r->src == f->src[i])
            return 1;
    return 0; /* src 0 (none) is never in the list */
}

static inline int row_ok(const vrow_t *r, const rfilter_t *f)
{
    return r->tk && meta_ok(r, f);
}

/* Row @p row decoded into @p out (dims floats). */
static void row_floats(const tn_vecstore_t *vs, uint32_t row, float *out)
{
    size_t d = vs->dims;
    decode(vs->qmat + (size_t)row * d, vs->lo + (size_t)row * d, vs->qscale[row], d, out);
}

/* Score @p n rows (ids) exactly against one query, 4 at a time, decoded into @p buf (4 x dims
 * floats). */
static void scan_rows(const tn_vecstore_t *vs, const float *q, const uint32_t *ids, size_t n,
                      heap_t *h, float *buf)
{
    size_t d = vs->dims;
    float out[4];
    for (size_t i = 0; i < n; i += 4) {
        size_t m = TN_MIN((size_t)4, n - i);
        for (size_t j = 0; j < m; j++)
            row_floats(vs, ids[i + j], buf + j * d);
        dot_1q4r(q, buf, buf + (m > 1 ? d : 0), buf + (m > 2 ? 2 * d : 0),
                 buf + (m > 3 ? 3 * d : 0), d, out);
        for (size_t j = 0; j < m; j++)
            heap_push(h, out[j], ids[i + j]);
    }
}

/* Score @p n rows (ids) against one int8 query (approximate: scaled int8 dot products). @p qu:
 * the query for vdot_1q4r, or NULL. */
static void scan_rows_q8(const tn_vecstore_t *vs, const int16_t *qw, const uint8_t *qu,
                         const uint32_t *ids, size_t n, heap_t *h)
{
    size_t d = vs->dims;
    int32_t out[4];
    size_t i = 0;
#ifdef VS_LANES
    if (qu) {
        for (; i < n; i += 4) {
            const int8_t *r[4];
            for (size_t j = 0; j < 4; j++)
                r[j] = vs->qmat + (size_t)ids[i + (i + j < n ? j : 0)] * d;
            vdot_1q4r(qu, r[0], r[1], r[2], r[3], d, out);
            for (size_t j = 0; j < 4 && i + j < n; j++) {
                uint32_t row = ids[i + j];
                heap_push(h, (float)(out[j] - 128 * vs->qsum[row]) * vs->qscale[row], row);
            }
        }
        return;
    }
#else
    (void)qu;
#endif
    for (; i + 4 <= n; i += 4) {
        idot_1q4r(qw, vs->qmat + (size_t)ids[i] * d, vs->qmat + (size_t)ids[i + 1] * d,
                  vs->qmat + (size_t)ids[i + 2] * d, vs->qmat + (size_t)ids[i + 3] * d, d, out);
        for (int j = 0; j < 4; j++)
            heap_push(h, (float)out[j] * vs->qscale[ids[i + j]], ids[i + j]);
    }
    if (i < n) {
        const int8_t *r[4];
        for (size_t j = 0; j < 4; j++)
            r[j] = vs->qmat + (size_t)ids[i + (i + j < n ? j : 0)] * d;
        idot_1q4r(qw, r[0], r[1], r[2], r[3], d, out);
        for (size_t j = 0; i + j < n; j++)
            heap_push(h, (float)out[j] * vs->qscale[ids[i + j]], ids[i + j]);
    }
}

/*
 * Two passes: int8 dot products pick the ncand(k) best rows by approximate score, which are
 * then rescored on the decoded rows (the scores are those of a one-pass search). Only for stores of
 * at least Q8_MIN_DIMS dims (fewer dims quantize too coarsely and are cheap anyway) and for row
 * lists longer than the candidates.
 */
enum { Q8_MIN_DIMS = 32, Q8_MAX_DIMS = 1 << 17 };

static size_t ncand(size_t k)
{
    return k > 16 ? 4 * k : 64;
}

static int two_pass(const tn_vecstore_t *vs, size_t rows, size_t k)
{
    return vs->dims >= Q8_MIN_DIMS && vs->dims <= Q8_MAX_DIMS && rows > ncand(k);
}

static int u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Rescore the candidates in @p ah exactly into @p h. */
static void rescore(const tn_vecstore_t *vs, const float *q, const heap_t *ah, heap_t *h,
                    float *buf)
{
    if (vs->first_pass_only) {
        for (size_t i = 0; i < ah->n; i++)
            heap_push(h, ah->c[i].s, ah->c[i].row);
        return;
    }
    uint32_t *ids = tn_xmalloc((ah->n ? ah->n : 1) * sizeof(*ids));
    for (size_t i = 0; i < ah->n; i++)
        ids[i] = ah->c[i].row;
    qsort(ids, ah->n, sizeof(*ids), u32_cmp); /* matrix order */
    scan_rows(vs, q, ids, ah->n, h, buf);
    free(ids);
}

enum { TILE = 64 }; /* rows per tile: 64 x 384 floats = 96 KiB, stays in L2 */

/* Live rows passing @p f of the tenant list [at, at + TILE) into @p ids. @returns the count. */
static size_t tile_rows(const tn_vecstore_t *vs, const tenant_rows_t *tr, size_t at,
                        const rfilter_t *f, uint32_t *ids)
{
    size_t n = 0, end = TN_MIN(at + TILE, (size_t)tr->n);
    for (size_t i = at; i < end; i++) {
        uint32_t row = tr->ids[i];
        ids[n] = row;
        n += (size_t)row_ok(&vs->rows[row], f);
    }
    return n;
}

/* One query (@p qw: quantized): caller holds the read lock. @p buf: 4 x dims floats. */
static size_t search_locked(const tn_vecstore_t *vs, const float *q, const int16_t *qw,
                            const uint8_t *qu, const rfilter_t *f, heap_t *h, tn_vec_hit_t *hits,
                            float *buf)
{
    if (!f->ok)
        return 0;
    uint32_t ids[TILE];
    if (f->tk) {
        for (uint32_t i = 0; i < f->tk->n;) {
            size_t n = 0;
            for (; i < f->tk->n && n < TILE; i++) {
                uint32_t row = f->tk->ch[i].row;
                ids[n] = row;
                n += (size_t)row_ok(&vs->rows[row], f);
            }
            scan_rows(vs, q, ids, n, h, buf);
        }
        return heap_emit(vs, h, hits);
    }
    const tenant_rows_t *tr = &vs->trows[f->tenant];
    if (two_pass(vs, tr->n, h->k)) {
        size_t nc = ncand(h->k);
        heap_t ah = {tn_xmalloc(nc * sizeof(cand_t)), 0, nc, -INFINITY};
        for (size_t at = 0; at < tr->n; at += TILE) {
            size_t n = tile_rows(vs, tr, at, f, ids);
            scan_rows_q8(vs, qw, qu, ids, n, &ah);
        }
        rescore(vs, q, &ah, h, buf);
        free(ah.c);
        return heap_emit(vs, h, hits);
    }
    for (size_t at = 0; at < tr->n; at += TILE) {
        size_t n = tile_rows(vs, tr, at, f, ids);
        scan_rows(vs, q, ids, n, h, buf);
    }
    return heap_emit(vs, h, hits);
}

size_t tn_vecstore_search(tn_vecstore_t *vs, const float *query, const tn_vec_filter_t *f, size_t k,
                          float min_score, tn_vec_hit_t *hits)
{
    if (!vs || !query || !f || !f->tenant_id || k == 0 || !hits)
        return 0;
    float *q = tn_xmalloc(5 * vs->dims * sizeof(float)), *buf = q + vs->dims;
    if (normalize(query, vs->dims, q) != 0) {
        free(q);
        return 0;
    }
    int16_t *qw = tn_xmalloc(vs->dims * sizeof(*qw));
    quantize(q, vs->dims, qw);
    uint8_t *qu = NULL; /* for vdot_1q4r: padded to 64 bytes */
    if (vs->lanes & TN_VEC_KERNEL_VNNI512) {
        qu = tn_xcalloc((vs->dims + 63) / 64 * 64, 1);
        for (size_t i = 0; i < vs->dims; i++)
            qu[i] = (uint8_t)(qw[i] + 128);
    }
    cand_t small[64];
    heap_t h = {k <= 64 ? small : tn_xmalloc(k * sizeof(cand_t)), 0, k, min_score};
    pthread_rwlock_rdlock(&vs->lock);
    rfilter_t rf = resolve(vs, f);
    size_t n = search_locked(vs, q, qw, qu, &rf, &h, hits, buf);
    pthread_rwlock_unlock(&vs->lock);
    if (h.c != small)
        free(h.c);
    free(qu);
    free(qw);
    free(q);
    return n;
}

#ifdef VS_LANES
/* Pack queries @p qi[0..m) (quantized, int16 in +-127) for a lane kernel of @p L lanes. */
static void lanes_pack(const int16_t *qws, size_t d, const size_t *qi, size_t m, size_t L,
                       uint32_t *qp)
{
    memset(qp, 0, d / 4 * L * sizeof(*qp));
    for (size_t j = 0; j < m; j++) {
        const int16_t *q = qws + qi[j] * d;
        for (size_t w = 0; w < d / 4; w++) {
            uint32_t v = 0;
            for (size_t b = 0; b < 4; b++)
                v |= (uint32_t)(uint8_t)(q[4 * w + b] + 128) << (8 * b);
            qp[w * L + j] = v;
        }
    }
}

/*
 * The int8 pass of scan_many with the lane kernels: the tenant's rows tile by tile, each tile
 * against every group of 16 (or 8) queries; the (row, query) pairs at or over the query's
 * threshold that pass its filters go to its candidate heap in @p aheaps.
 */
static void scan_lanes(const tn_vecstore_t *vs, const int16_t *qws, const rfilter_t *rf,
                       const size_t *qi, size_t nq, heap_t *aheaps)
{
    size_t d = vs->dims, d4 = d / 4;
    const tenant_rows_t *tr = &vs->trows[rf[qi[0]].tenant];
    rfilter_t live = {.ok = 1, .tenant = rf[qi[0]].tenant};
    /* groups: 16 lanes while more than 8 queries are left (or no 8-lane kernel), else 8 */
    size_t ng = 0, start[64], width[64];
    for (size_t g = 0; g < nq && ng < 64; ng++) {
        size_t L = (vs->lanes & TN_VEC_KERNEL_VNNI512) &&
                           (nq - g > 8 || !(vs->lanes & TN_VEC_KERNEL_VNNI256))
                       ? 16
                       : 8;
        start[ng] = g;
        width[ng] = L;
        g += L;
    }
    uint32_t *qp = tn_xmalloc(ng * d4 * 16 * sizeof(*qp));
    float *thr = tn_xmalloc(ng * 16 * sizeof(*thr));
    for (size_t g = 0; g < ng; g++) {
        size_t m = TN_MIN(width[g], nq - start[g]);
        lanes_pack(qws, d, qi + start[g], m, width[g], qp + g * d4 * 16);
        for (size_t j = 0; j < 16; j++)
            thr[g * 16 + j] = j < m ? heap_floor(&aheaps[qi[start[g] + j]]) : INFINITY;
    }
    uint32_t ids[TILE], mask[TILE];
    float sc[TILE * 16];
    for (size_t at = 0; at < tr->n; at += TILE) {
        size_t n = tile_rows(vs, tr, at, &live, ids);
        for (size_t g = 0; g < ng; g++) {
            size_t L = width[g];
            float *t = thr + g * 16;
            if (L == 16)
                lanes16(vs->qmat, d, vs->qsum, vs->qscale, qp + g * d4 * 16, t, ids, n, sc, mask);
            else
                lanes8(vs->qmat, d, vs->qsum, vs->qscale, qp + g * d4 * 16, t, ids, n, sc, mask);
            for (size_t i = 0; i < n; i++) {
                const vrow_t *r = &vs->rows[ids[i]];
                for (uint32_t bits = mask[i]; bits; bits &= bits - 1) {
                    size_t j = (size_t)__builtin_ctz(bits);
                    const rfilter_t *f = &rf[qi[start[g] + j]];
                    if (!meta_ok(r, f))
                        continue;
                    heap_t *h = &aheaps[qi[start[g] + j]];
                    heap_push(h, sc[i * L + j], ids[i]);
                    t[j] = heap_floor(h);
                }
            }
        }
    }
    free(thr);
    free(qp);
}
#endif

/*
 * Queries @p qi[0..nq) share one tenant and have no ticket filter: one pass over the tenant's
 * rows in tiles; each tile is scored against every query, 4 queries per row at a time. In two
 * passes (two_pass()), that pass is over the int8 rows into @p aheaps (candidates), which are
 * then rescored query by query. @p buf: 4 x dims floats.
 */
static void scan_many(const tn_vecstore_t *vs, const float *qs, const int16_t *qws,
                      const rfilter_t *rf, const size_t *qi, size_t nq, heap_t *heaps,
                      heap_t *aheaps, float *buf)
{
    size_t d = vs->dims;
    const tenant_rows_t *tr = &vs->trows[rf[qi[0]].tenant];
    rfilter_t live = {.ok = 1, .tenant = rf[qi[0]].tenant};
    int q8 = two_pass(vs, tr->n, heaps[qi[0]].k);
#ifdef VS_LANES
    if (q8 && vs->lanes && nq >= 2 && d % 4 == 0 && nq <= 64 * 8) {
        scan_lanes(vs, qws, rf, qi, nq, aheaps);
        for (size_t j = 0; j < nq; j++)
            rescore(vs, qs + qi[j] * d, &aheaps[qi[j]], &heaps[qi[j]], buf);
        return;
    }
#endif
    uint32_t ids[TILE];
    float out[4];
    int32_t iout[4];
    for (size_t at = 0; at < tr->n; at += TILE) {
        size_t n = tile_rows(vs, tr, at, &live, ids);
        for (size_t g = 0; g < nq; g += 4) {
            size_t m = TN_MIN((size_t)4, nq - g);
            const float *q[4];
            const int16_t *qw[4];
            for (size_t j = 0; j < 4; j++) {
                q[j] = qs + qi[g + (j < m ? j : 0)] * d;
                qw[j] = qws + qi[g + (j < m ? j : 0)] * d;
            }
            for (size_t i = 0; i < n; i++) {
                if (q8) {
                    idot_4q1r(qw[0], qw[1], qw[2], qw[3], vs->qmat + (size_t)ids[i] * d, d, iout);
                    for (size_t j = 0; j < 4; j++)
                        out[j] = (float)iout[j] * vs->qscale[ids[i]];
                } else {
                    row_floats(vs, ids[i], buf);
                    dot_4q1r(q[0], q[1], q[2], q[3], buf, d, out);
                }
                const vrow_t *r = &vs->rows[ids[i]];
                for (size_t j = 0; j < m; j++) {
                    const rfilter_t *f = &rf[qi[g + j]];
                    if (meta_ok(r, f))
                        heap_push(q8 ? &aheaps[qi[g + j]] : &heaps[qi[g + j]], out[j], ids[i]);
                }
            }
        }
    }
    if (q8)
        for (size_t j = 0; j < nq; j++)
            rescore(vs, qs + qi[j] * d, &aheaps[qi[j]], &heaps[qi[j]], buf);
}

void tn_vecstore_search_many(tn_vecstore_t *vs, const float *queries, const tn_vec_filter_t *f,
                             size_t nq, size_t k, float min_score, tn_vec_hit_t *hits,
                             size_t *counts)
{
    if (!counts)
        return;
    for (size_t i = 0; i < nq; i++)
        counts[i] = 0;
    if (!vs || !queries || !f || k == 0 || !hits || nq == 0)
        return;
    size_t d = vs->dims;
    float *qs = tn_xmalloc((nq + 4) * d * sizeof(float)), *buf = qs + nq * d;
    int16_t *qws = tn_xmalloc(nq * d * sizeof(*qws));
    int *valid = tn_xcalloc(nq, sizeof(*valid));
    for (size_t i = 0; i < nq; i++) {
        valid[i] = normalize(queries + i * d, d, qs + i * d) == 0;
        if (valid[i])
            quantize(qs + i * d, d, qws + i * d);
    }
    size_t nc = ncand(k);
    heap_t *heaps = tn_xmalloc(2 * nq * sizeof(*heaps)), *aheaps = heaps + nq;
    cand_t *cands = tn_xmalloc(nq * (k + nc) * sizeof(*cands));
    for (size_t i = 0; i < nq; i++) {
        heaps[i] = (heap_t){cands + i * k, 0, k, min_score};
        aheaps[i] = (heap_t){cands + nq * k + i * nc, 0, nc, -INFINITY};
    }
    rfilter_t *rf = tn_xmalloc(nq * sizeof(*rf));
    size_t *qi = tn_xmalloc(nq * sizeof(*qi));
    unsigned char *done = tn_xcalloc(nq, 1);

    pthread_rwlock_rdlock(&vs->lock);
    for (size_t i = 0; i < nq; i++) {
        rf[i] = resolve(vs, &f[i]);
        if (!valid[i] || !rf[i].ok)
            done[i] = 1;
    }
    /* A ticket filter reads that ticket's rows only: answered one by one. */
    for (size_t i = 0; i < nq; i++)
        if (!done[i] && rf[i].tk) {
            counts[i] = search_locked(vs, qs + i * d, qws + i * d, NULL, &rf[i], &heaps[i],
                                      hits + i * k, buf);
            done[i] = 1;
        }
    /* The rest: one pass per tenant. */
    for (size_t i = 0; i < nq; i++) {
        if (done[i])
            continue;
        size_t n = 0;
        for (size_t j = i; j < nq; j++)
            if (!done[j] && rf[j].tenant == rf[i].tenant)
                qi[n++] = j;
        scan_many(vs, qs, qws, rf, qi, n, heaps, aheaps, buf);
        for (size_t j = 0; j < n; j++) {
            counts[qi[j]] = heap_emit(vs, &heaps[qi[j]], hits + qi[j] * k);
            done[qi[j]] = 1;
        }
    }
    pthread_rwlock_unlock(&vs->lock);
    free(done);
    free(qi);
    free(rf);
    free(cands);
    free(heaps);
    free(valid);
    free(qws);
    free(qs);
}

/* ------------------------------------------------------------------------------------------ */
/* Shared scan */

/*
 * One thread reads the rows round and round, a block at a time, for every search in its lanes.
 * A search joins at the next block boundary (a free lane: its int8 query packed in the lane's
 * column, its threshold -inf), keeps its own candidate heap across blocks and leaves once it has
 * seen every row (the round wraps at the end of the matrix), so it waits for no other search's
 * pass and lanes refill block by block. Its thread then rescores the candidates and copies the
 * hits. No write lands while a search is in flight (write_begin), so the rows it saw are those it
 * rescores. The rows are all tenants' (the kernels' lane hits are checked for tenant and
 * filters); the ranking is a total order (score, then row), so the order in which the rows are
 * seen does not change the candidates: the hits are those of tn_vecstore_search, bit for bit.
 */
enum { Q_QUEUED, Q_SCANNING, Q_SCANNED };

struct vs_quest {
    const int16_t *qw; /* quantized query */
    const tn_vec_filter_t *f;
    rfilter_t rf;                     /* resolved when admitted */
    heap_t ah[VS_MAX_WORKERS];        /* candidates of each worker's rows, int8 scores */
    uint32_t left[VS_MAX_WORKERS];    /* rows each worker has still to see; under scan.mu */
    unsigned char in[VS_MAX_WORKERS]; /* joined by that worker; under scan.mu */
    int state;                        /* Q_*; under scan.mu */
    pthread_cond_t cv;                /* signalled at Q_SCANNED */
    vs_quest_t *next;
};

/* Worker @p w's rows when the matrix has @p nrows. */
static void worker_range(const vscan_t *sc, size_t w, uint32_t nrows, uint32_t *lo, uint32_t *hi)
{
    *lo = (uint32_t)((uint64_t)nrows * w / sc->nworkers);
    *hi = (uint32_t)((uint64_t)nrows * (w + 1) / sc->nworkers);
}

/* Pack @p qw (NULL: clear) into lane @p l's column of worker @p wk, and its threshold. */
static void lane_set(const tn_vecstore_t *vs, vs_worker_t *wk, size_t l, const int16_t *qw,
                     float thr)
{
    size_t d4 = vs->dims / 4, W = vs->scan.width;
    wk->thr[l] = thr;
    if (W == 4)
        return; /* the portable kernels read qw itself */
    uint32_t *qp = wk->qp + l / W * d4 * W, *qp8 = wk->qp8 ? wk->qp8 + l / 8 * d4 * 8 : NULL;
    for (size_t w = 0; w < d4; w++) {
        uint32_t v = 0;
        for (size_t b = 0; qw && b < 4; b++)
            v |= (uint32_t)(uint8_t)(qw[4 * w + b] + 128) << (8 * b);
        qp[w * W + l % W] = v;
        if (qp8)
            qp8[w * 8 + l % 8] = v;
    }
}

/* A (row, score) pair the kernel let through: to the search's heap if the row is the search's. */
static inline void lane_hit(const tn_vecstore_t *vs, heap_t *h, const rfilter_t *f, uint32_t row,
                            float s)
{
    const vrow_t *r = &vs->rows[row];
    if (r->tenant == f->tenant && meta_ok(r, f))
        heap_push(h, s, row);
}

/* The rows [from, to) against every search worker @p wk has joined. Caller holds the read
 * lock. */
static void scan_block(const tn_vecstore_t *vs, vs_worker_t *wk, uint32_t from, uint32_t to)
{
    size_t d = vs->dims, W = vs->scan.width, id = wk->id;
    uint32_t ids[TILE];
    for (uint32_t at = from; at < to; at += TILE) {
        size_t n = 0;
        uint32_t end = TN_MIN(at + TILE, to);
        if (!vs->dead) { /* no tombstones: no need to read the rows' records */
            for (uint32_t row = at; row < end; row++)
                ids[n++] = row;
        } else {
            for (uint32_t row = at; row < end; row++) {
                ids[n] = row;
                n += vs->rows[row].tk != NULL;
            }
        }
        if (!n)
            continue;
        for (size_t g = 0; g < vs->scan.nlanes; g += W) {
            unsigned busy = 0;
            for (size_t j = 0; j < W; j++)
                busy |= (unsigned)(wk->lane[g + j] != NULL) << j;
            if (!busy)
                continue;
#ifdef VS_LANES
            if (W != 4) {
                /* a 16-lane group with one half free runs the other half's 8 lanes (~3/4 of
                 * the cost at 100,000 x 384) */
                size_t L = W, at8 = g;
                if (W == 16 && wk->qp8 && !(busy & 0xff00u))
                    L = 8;
                else if (W == 16 && wk->qp8 && !(busy & 0xffu))
                    L = 8, at8 = g + 8;
                vs_quest_t **lq = wk->lane + at8;
                float *t = wk->thr + at8;
                uint32_t mask[TILE];
                float sco[TILE * 16];
                if (L == 16)
                    lanes16(vs->qmat, d, vs->qsum, vs->qscale, wk->qp + g * (d / 4), t, ids, n, sco,
                            mask);
                else
                    lanes8(vs->qmat, d, vs->qsum, vs->qscale,
                           (W == 8 ? wk->qp : wk->qp8) + at8 * (d / 4), t, ids, n, sco, mask);
                for (size_t i = 0; i < n; i++)
                    for (uint32_t bits = mask[i]; bits; bits &= bits - 1) {
                        size_t j = (size_t)__builtin_ctz(bits);
                        lane_hit(vs, &lq[j]->ah[id], &lq[j]->rf, ids[i], sco[i * L + j]);
                        t[j] = heap_floor(&lq[j]->ah[id]);
                    }
                continue;
            }
#endif
            vs_quest_t **lq = wk->lane + g;
            const int16_t *qw[4], *any = NULL; /* a free lane repeats a busy one's query */
            for (size_t j = 0; j < 4; j++)
                if (lq[j])
                    any = lq[j]->qw;
            for (size_t j = 0; j < 4; j++)
                qw[j] = lq[j] ? lq[j]->qw : any;
            int32_t out[4];
            for (size_t i = 0; i < n; i++) {
                uint32_t row = ids[i];
                idot_4q1r(qw[0], qw[1], qw[2], qw[3], vs->qmat + (size_t)row * d, d, out);
                for (size_t j = 0; j < 4; j++)
                    if (lq[j])
                        lane_hit(vs, &lq[j]->ah[id], &lq[j]->rf, row,
                                 (float)out[j] * vs->qscale[row]);
            }
        }
    }
}

/* Move queued searches into free lanes (caller holds mu, no writer): in flight from now on.
 * @returns how many. */
static size_t admit(tn_vecstore_t *vs)
{
    vscan_t *sc = &vs->scan;
    size_t n = 0;
    for (size_t l = 0; l < sc->nlanes && sc->head; l++) {
        if (sc->lane[l])
            continue;
        vs_quest_t *q = sc->head;
        sc->head = q->next;
        if (!sc->head)
            sc->tail = NULL;
        /* no writer can be under way (writers == 0 under mu), and none starts before this
         * search is emitted: the read lock only orders us after the last one */
        pthread_rwlock_rdlock(&vs->lock);
        q->rf = resolve(vs, q->f);
        for (size_t w = 0; w < sc->nworkers; w++) {
            uint32_t lo, hi;
            worker_range(sc, w, vs->nrows, &lo, &hi);
            q->left[w] = q->rf.ok ? hi - lo : 0;
        }
        pthread_rwlock_unlock(&vs->lock);
        q->state = Q_SCANNING;
        sc->lane[l] = q;
        sc->inflight++;
        n++;
    }
    if (sc->owed) {
        sc->owed = 0;
        pthread_cond_broadcast(&sc->drained);
    }
    return n;
}

/* Worker @p wk is done with lane @p l's search (caller holds mu): when every worker is, the
 * search is scanned and its lane free. */
static void leave(tn_vecstore_t *vs, vs_worker_t *wk, size_t l)
{
    vscan_t *sc = &vs->scan;
    vs_quest_t *q = sc->lane[l];
    if (wk->lane[l])
        lane_set(vs, wk, l, NULL, INFINITY);
    wk->lane[l] = NULL;
    q->in[wk->id] = 2;
    for (size_t w = 0; w < sc->nworkers; w++)
        if (q->in[w] != 2)
            return;
    sc->lane[l] = NULL;
    q->state = Q_SCANNED;
    pthread_cond_signal(&q->cv);
    if (sc->head) /* a free lane for the queue */
        pthread_cond_broadcast(&sc->work);
}

static void *scan_main(void *arg)
{
    vs_worker_t *wk = arg;
    tn_vecstore_t *vs = wk->vs;
    vscan_t *sc = &vs->scan;
    size_t id = wk->id;
    pthread_mutex_lock(&sc->mu);
    for (;;) {
        /* work: a search admitted that this worker has not joined, or one it has rows left
         * for, or queued searches, a free lane and no writer */
        for (;;) {
            size_t busy = 0, free_lanes = 0;
            for (size_t l = 0; l < sc->nlanes; l++) {
                busy += sc->lane[l] && sc->lane[l]->in[id] != 2;
                free_lanes += !sc->lane[l];
            }
            if (sc->stop || busy || (sc->head && !sc->writers && free_lanes))
                break;
            pthread_cond_wait(&sc->work, &sc->mu);
        }
        if (sc->stop)
            break;
        if (!sc->writers && sc->head && admit(vs))
            pthread_cond_broadcast(&sc->work); /* the other workers join them */
        for (size_t l = 0; l < sc->nlanes; l++) {
            vs_quest_t *q = sc->lane[l];
            if (!q || q->in[id])
                continue;
            q->in[id] = 1;
            if (!q->left[id]) {
                leave(vs, wk, l);
                continue;
            }
            wk->lane[l] = q;
            lane_set(vs, wk, l, q->qw, heap_floor(&q->ah[id]));
        }
        size_t mine = 0;
        for (size_t l = 0; l < sc->nlanes; l++)
            mine += wk->lane[l] != NULL;
        if (!mine)
            continue;
        /* searches in flight: no writer until they are answered, so nrows holds still */
        uint32_t nrows = vs->nrows, lo, hi;
        worker_range(sc, id, nrows, &lo, &hi);
        uint32_t from = wk->pos >= lo && wk->pos < hi ? wk->pos : lo;
        uint32_t to = hi - from > sc->block ? from + sc->block : hi;
        pthread_mutex_unlock(&sc->mu);

        if (from < to) {
            pthread_rwlock_rdlock(&vs->lock);
            scan_block(vs, wk, from, to);
            pthread_rwlock_unlock(&vs->lock);
        }

        pthread_mutex_lock(&sc->mu);
        for (size_t l = 0; l < sc->nlanes; l++) {
            vs_quest_t *q = wk->lane[l];
            if (!q)
                continue;
            q->left[id] -= TN_MIN(q->left[id], to - from);
            if (!q->left[id])
                leave(vs, wk, l);
        }
        wk->pos = to < hi ? to : lo;
    }
    pthread_mutex_unlock(&sc->mu);
    return NULL;
}

static void scan_free(vscan_t *sc)
{
    TN_FREE(sc->lane);
    for (size_t w = 0; w < VS_MAX_WORKERS; w++) {
        TN_FREE(sc->worker[w].lane);
        TN_FREE(sc->worker[w].qp);
        TN_FREE(sc->worker[w].qp8);
        TN_FREE(sc->worker[w].thr);
    }
}

tn_err_t tn_vecstore_scan_start(tn_vecstore_t *vs, size_t lanes, size_t block_rows, size_t threads)
{
    if (!vs || !lanes || lanes > 256 || !block_rows || block_rows > UINT32_MAX || !threads ||
        threads > VS_MAX_WORKERS || vs->scan.started)
        return TN_ERR_INVALID;
    vscan_t *sc = &vs->scan;
    size_t d = vs->dims;
    sc->width = 4;
#ifdef VS_LANES
    if (d % 4 == 0 && (vs->lanes & TN_VEC_KERNEL_VNNI512))
        sc->width = 16;
    else if (d % 4 == 0 && (vs->lanes & TN_VEC_KERNEL_VNNI256))
        sc->width = 8;
#endif
    sc->nlanes = (lanes + sc->width - 1) / sc->width * sc->width;
    sc->block = (uint32_t)block_rows;
    sc->lane = tn_xcalloc(sc->nlanes, sizeof(*sc->lane));
    sc->nworkers = threads;
    sc->stop = 0;
    for (size_t w = 0; w < threads; w++) {
        vs_worker_t *wk = &sc->worker[w];
        wk->vs = vs;
        wk->id = w;
        wk->pos = 0;
        wk->lane = tn_xcalloc(sc->nlanes, sizeof(*wk->lane));
        wk->qp = tn_xcalloc(sc->nlanes * (d / 4 ? d / 4 : 1), sizeof(*wk->qp));
        if (sc->width == 16 && (vs->lanes & TN_VEC_KERNEL_VNNI256))
            wk->qp8 = tn_xcalloc(sc->nlanes * (d / 4), sizeof(*wk->qp8));
        wk->thr = tn_xmalloc(sc->nlanes * sizeof(*wk->thr));
        for (size_t l = 0; l < sc->nlanes; l++)
            wk->thr[l] = INFINITY;
    }
    size_t started = 0;
    for (; started < threads; started++)
        if (pthread_create(&sc->worker[started].thread, NULL, scan_main, &sc->worker[started]))
            break;
    pthread_mutex_lock(&sc->mu);
    if (started < threads) {
        sc->stop = 1;
        pthread_cond_broadcast(&sc->work);
    } else {
        sc->started = 1;
    }
    pthread_mutex_unlock(&sc->mu);
    if (started == threads)
        return TN_OK;
    for (size_t w = 0; w < started; w++)
        pthread_join(sc->worker[w].thread, NULL);
    sc->stop = 0;
    scan_free(sc);
    return TN_ERR_NOMEM;
}

void tn_vecstore_scan_stop(tn_vecstore_t *vs)
{
    if (!vs || !vs->scan.started)
        return;
    vscan_t *sc = &vs->scan;
    pthread_mutex_lock(&sc->mu);
    TN_ASSERT(!sc->head && !sc->inflight); /* no search may be running */
    sc->stop = 1;
    sc->owed = 0;
    pthread_cond_broadcast(&sc->work);
    pthread_cond_broadcast(&sc->drained);
    pthread_mutex_unlock(&sc->mu);
    for (size_t w = 0; w < sc->nworkers; w++)
        pthread_join(sc->worker[w].thread, NULL);
    sc->started = 0;
    sc->stop = 0;
    scan_free(sc);
}

/* Whether @p f's search should go through the shared scan: a tenant with most of the rows, two
 * passes, no ticket filter (small row sets are cheaper alone; the hits are the same either way). */
static int want_shared(tn_vecstore_t *vs, const tn_vec_filter_t *f, size_t k)
{
    if (f->ticket_id || vs->dims < Q8_MIN_DIMS || vs->dims > Q8_MAX_DIMS)
        return 0;
    pthread_rwlock_rdlock(&vs->lock);
    rfilter_t rf = resolve(vs, f);
    int yes = rf.ok && two_pass(vs, vs->trows[rf.tenant].n, k) &&
              (uint64_t)vs->trows[rf.tenant].n * 4 >= vs->nrows;
    pthread_rwlock_unlock(&vs->lock);
    return yes;
}

size_t tn_vecstore_search_shared(tn_vecstore_t *vs, const float *query, const tn_vec_filter_t *f,
                                 size_t k, float min_score, tn_vec_hit_t *hits)
{
    if (!vs || !query || !f || !f->tenant_id || k == 0 || !hits)
        return 0;
    vscan_t *sc = &vs->scan;
    pthread_mutex_lock(&sc->mu);
    int started = sc->started && !sc->stop;
    size_t nw = sc->nworkers;
    pthread_mutex_unlock(&sc->mu);
    if (!started || !want_shared(vs, f, k))
        return tn_vecstore_search(vs, query, f, k, min_score, hits);
    size_t d = vs->dims, nc = ncand(k), n = 0;
    float *q = tn_xmalloc(5 * d * sizeof(float)), *buf = q + d;
    if (normalize(query, d, q) != 0) {
        free(q);
        return 0;
    }
    int16_t *qw = tn_xmalloc(d * sizeof(*qw));
    quantize(q, d, qw);
    cand_t *c = tn_xmalloc((nw * nc + k) * sizeof(*c));
    vs_quest_t qs = {.qw = qw, .f = f, .state = Q_QUEUED};
    for (size_t w = 0; w < nw; w++)
        qs.ah[w] = (heap_t){c + w * nc, 0, nc, -INFINITY};
    pthread_cond_init(&qs.cv, NULL);
    pthread_mutex_lock(&sc->mu);
    if (sc->tail)
        sc->tail->next = &qs;
    else
        sc->head = &qs;
    sc->tail = &qs;
    if (!sc->writers)
        pthread_cond_broadcast(&sc->work);
    while (qs.state != Q_SCANNED)
        pthread_cond_wait(&qs.cv, &sc->mu);
    pthread_mutex_unlock(&sc->mu);
    if (qs.rf.ok) { /* still in flight: no write until the hits are copied */
        /* the best nc of the workers' candidates: the ranking is a total order, so they are
         * those one heap over every row would hold */
        for (size_t w = 1; w < nw; w++)
            for (size_t i = 0; i < qs.ah[w].n; i++)
                heap_push(&qs.ah[0], qs.ah[w].c[i].s, qs.ah[w].c[i].row);
        heap_t h = {c + nw * nc, 0, k, min_score};
        pthread_rwlock_rdlock(&vs->lock);
        rescore(vs, q, &qs.ah[0], &h, buf);
        n = heap_emit(vs, &h, hits);
        pthread_rwlock_unlock(&vs->lock);
    }
    pthread_mutex_lock(&sc->mu);
    if (!--sc->inflight)
        pthread_cond_broadcast(&sc->drained);
    pthread_mutex_unlock(&sc->mu);
    pthread_cond_destroy(&qs.cv);
    free(c);
    free(qw);
    free(q);
    return n;
}

void tn_vec_hits_free(tn_vec_hit_t *hits, size_t n)
{
    if (!hits)
        return;
    for (size_t i = 0; i < n; i++) {
        TN_FREE(hits[i].title);
        TN_FREE(hits[i].text);
    }
}

void tn_vecstore_stats(tn_vecstore_t *vs, tn_vecstore_stats_t *st)
{
    if (!st)
        return;
    memset(st, 0, sizeof(*st));
    if (!vs)
        return;
    pthread_rwlock_rdlock(&vs->lock);
    st->live = vs->nrows - vs->dead;
    st->rows = vs->nrows;
    st->vector_bytes = (size_t)vs->cap * (vs->dims * (sizeof(*vs->qmat) + sizeof(*vs->lo)) +
                                          sizeof(*vs->qscale) + sizeof(*vs->qsum));
    size_t p = vs->payload + (size_t)vs->cap * sizeof(*vs->rows) +
               (size_t)vs->tslots * sizeof(*vs->tmap) + strtab_bytes(&vs->tenants) +
               strtab_bytes(&vs->langs) + strtab_bytes(&vs->cats) + strtab_bytes(&vs->srcs);
    for (uint32_t i = 0; i < vs->tenants.n; i++)
        p += vs->trows[i].cap * sizeof(uint32_t);
    st->payload_bytes = p;
    pthread_rwlock_unlock(&vs->lock);
}
