/*
 * Private to the vector store's three files: vecstore.c (the store: rows, tickets, writes, the
 * searches), vecstore_kernels.c (the arithmetic on arrays: dot products, quantization, the
 * fixed-point encoding) and vecstore_scan.c (the shared scan). Not a public header.
 */
#ifndef TAINA_VECSTORE_INT_H
#define TAINA_VECSTORE_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "taina/vecstore.h"

#if defined(__x86_64__) && defined(__has_attribute) && !defined(TN_VECSTORE_NO_CLONES)
#if __has_attribute(target_clones)
#define VS_KERNEL __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef VS_KERNEL
#define VS_KERNEL
#endif

/* The VNNI kernels (vs_lanes16, vs_lanes8, vs_vdot_1q4r in vecstore_kernels.c), used where the CPU
 * has them (vs_lane_kernels()). */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) &&                            \
    !defined(TN_VECSTORE_NO_CLONES) && !defined(TN_VECSTORE_NO_LANES)
#define VS_LANES 1
#endif

enum { TILE = 64 }; /* rows per tile: 64 x 384 floats = 96 KiB, stays in L2 */

/*
 * Two passes: int8 dot products pick the vs_ncand(k) best rows by approximate score, which are
 * then rescored on the decoded rows (the scores are those of a one-pass search). Only for stores of
 * at least Q8_MIN_DIMS dims (fewer dims quantize too coarsely and are cheap anyway) and for row
 * lists longer than the candidates.
 */
enum { Q8_MIN_DIMS = 32, Q8_MAX_DIMS = 1 << 17 };

typedef struct chunk chunk_t;   /* vecstore.c */
typedef struct ticket ticket_t; /* vecstore.c */

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

typedef struct vs_quest vs_quest_t; /* a search in the shared scan (vecstore_scan.c) */

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

static inline void heap_sift_down(heap_t *h, size_t i)
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

/* A filter resolved to ids. ok = 0: nothing can match. */
typedef struct rfilter {
    int ok;
    uint32_t tenant;
    uint32_t lang, cat; /* 0 = any */
    const ticket_t *tk; /* NULL = any */
    uint32_t nsrc;      /* 0 = any source; else the row's src is one of src[] */
    uint32_t src[TN_VEC_MAX_SOURCES];
} rfilter_t;

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

/* ---- vecstore_kernels.c ---- */

/** Scores of one query @p q against four rows (d floats each) into @p out[4]. */
void vs_dot_1q4r(const float *q, const float *r0, const float *r1, const float *r2, const float *r3,
                 size_t d, float *out);
/** Scores of four queries against one row @p r: the same operations per pair as vs_dot_1q4r. */
void vs_dot_4q1r(const float *q0, const float *q1, const float *q2, const float *q3, const float *r,
                 size_t d, float *out);
/** The int8 first pass: exact integer dot products of a quantized query and four int8 rows. */
void vs_idot_1q4r(const int16_t *q, const int8_t *r0, const int8_t *r1, const int8_t *r2,
                  const int8_t *r3, size_t d, int32_t *out);
/** The same for four quantized queries against one int8 row. */
void vs_idot_4q1r(const int16_t *q0, const int16_t *q1, const int16_t *q2, const int16_t *q3,
                  const int8_t *r, size_t d, int32_t *out);
/** Quantize the query @p v (d floats) as the rows' first-pass copy, widened to int16. */
void vs_quantize(const float *v, size_t d, int16_t *out);
#ifdef VS_LANES
/** 16 queries (packed @p qp) against the rows @p ids[0..n): scores into @p sc (n x 16), and per
 *  row the lanes whose score >= @p thr[lane] into @p mask. AVX-512 VNNI only. */
void vs_lanes16(const int8_t *qmat, size_t d, const int32_t *qsum, const float *qscale,
                const uint32_t *qp, const float *thr, const uint32_t *ids, size_t n, float *sc,
                uint32_t *mask);
/** The same for 8 queries (sc: n x 8). AVX-VNNI only. */
void vs_lanes8(const int8_t *qmat, size_t d, const int32_t *qsum, const float *qscale,
               const uint32_t *qp, const float *thr, const uint32_t *ids, size_t n, float *sc,
               uint32_t *mask);
/** One query (@p qu: q + 128, zero-padded to a multiple of 64) against four int8 rows:
 *  out[j] = q.r_j + 128 * sum(r_j). AVX-512 VNNI only. */
void vs_vdot_1q4r(const uint8_t *qu, const int8_t *r0, const int8_t *r1, const int8_t *r2,
                  const int8_t *r3, size_t d, int32_t *out);
#endif
/** The kernels this CPU runs: TN_VEC_KERNEL_VNNI512 | TN_VEC_KERNEL_VNNI256 bits. */
unsigned vs_lane_kernels(void);
/** Encode @p v (d floats, not all zero) into the 24-bit fixed point @p hi, @p lo.
 *  @returns the scale of hi (max|v| / 127). */
float vs_encode(const float *v, size_t d, int8_t *hi, int16_t *lo);
/** Decode row @p hi, @p lo of scale @p scale into @p out (d floats). */
void vs_decode(const int8_t *hi, const int16_t *lo, float scale, size_t d, float *out);
/** L2-normalize @p v into @p out. @returns 0, or -1 for a zero or non-finite vector. */
int vs_normalize(const float *v, size_t d, float *out);

/* ---- vecstore.c, for the shared scan ---- */

/** The candidates a two-pass search keeps for a top @p k. */
size_t vs_ncand(size_t k);
/** Whether a search of @p k over @p rows rows runs in two passes. */
int vs_two_pass(const tn_vecstore_t *vs, size_t rows, size_t k);
/** @p f resolved to ids (ok = 0: nothing can match). Caller holds the lock. */
rfilter_t vs_resolve(const tn_vecstore_t *vs, const tn_vec_filter_t *f);
/** Rescore the candidates in @p ah exactly into @p h (@p buf: 4 x dims floats). Caller holds the
 *  read lock. */
void vs_rescore(const tn_vecstore_t *vs, const float *q, const heap_t *ah, heap_t *h, float *buf);
/** Sort the heap best first and copy it into @p hits. @returns the count. Caller holds the lock. */
size_t vs_heap_emit(const tn_vecstore_t *vs, heap_t *h, tn_vec_hit_t *hits);

#endif
