/*
 * The vector store's kernels: the arithmetic on arrays that vecstore.c and vecstore_scan.c run
 * (float and int8 dot products, the VNNI lane kernels and the run-time check for them, query
 * quantization, the rows' fixed-point encoding and decoding, normalization). No state, no locks.
 */
#include <math.h>
#include <string.h>

#include "taina/mem.h"
#include "vecstore_int.h"

#ifdef VS_LANES
#include <cpuid.h>
#include <immintrin.h>
#endif

typedef float v8f __attribute__((vector_size(32)));

/* ld8 and hsum8 are static and always inlined: the 32-byte vector ABI note does not apply. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
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
VS_KERNEL void vs_dot_1q4r(const float *q, const float *r0, const float *r1, const float *r2,
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

/* Four queries against one row: the same operations per pair as vs_dot_1q4r. */
VS_KERNEL void vs_dot_4q1r(const float *q0, const float *q1, const float *q2, const float *q3,
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

VS_KERNEL VS_VECTORIZE void vs_idot_1q4r(const int16_t *q, const int8_t *r0, const int8_t *r1,
                                         const int8_t *r2, const int8_t *r3, size_t d, int32_t *out)
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

VS_KERNEL VS_VECTORIZE void vs_idot_4q1r(const int16_t *q0, const int16_t *q1, const int16_t *q2,
                                         const int16_t *q3, const int8_t *r, size_t d, int32_t *out)
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
void vs_quantize(const float *v, size_t d, int16_t *out)
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
__attribute__((target("avx512f,avx512vnni"))) void
vs_lanes16(const int8_t *qmat, size_t d, const int32_t *qsum, const float *qscale,
           const uint32_t *qp, const float *thr, const uint32_t *ids, size_t n, float *sc,
           uint32_t *mask)
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
__attribute__((target("avx2,avxvnni"))) void vs_lanes8(const int8_t *qmat, size_t d,
                                                       const int32_t *qsum, const float *qscale,
                                                       const uint32_t *qp, const float *thr,
                                                       const uint32_t *ids, size_t n, float *sc,
                                                       uint32_t *mask)
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
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void
vs_vdot_1q4r(const uint8_t *qu, const int8_t *r0, const int8_t *r1, const int8_t *r2,
             const int8_t *r3, size_t d, int32_t *out)
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
unsigned vs_lane_kernels(void)
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
float vs_encode(const float *v, size_t d, int8_t *hi, int16_t *lo)
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
VS_VECTORIZE void vs_decode(const int8_t *hi, const int16_t *lo, float scale, size_t d, float *out)
{
    float s = scale / 65536.0f; /* exact: a power of two */
    for (size_t i = 0; i < d; i++)
        out[i] = (float)((int32_t)hi[i] * 65536 + lo[i]) * s;
}

/* L2-normalize @p v into @p out. @returns 0, or -1 for a zero or non-finite vector. */
int vs_normalize(const float *v, size_t d, float *out)
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
