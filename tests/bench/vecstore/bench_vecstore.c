/*
 * The local vector store: N chunks of D dims in tenant "A" plus N/10 noise rows of tenant "B"
 * (interleaved), clustered random data, queries near stored rows; top-10.
 *   bench-vecstore N DIMS NQUERIES OUTDIR
 * Prints "key value" lines: insert rate, single-query latency p50/p99 and QPS (1 and 2 threads),
 * search_many QPS for batches of 8 and 32 on 1 and 2 threads, memory stats. Writes tenant A's
 * vectors (OUTDIR/m.f32, insertion order), the queries (q.f32) and the top-10 row numbers
 * (ids.u32) for the numpy anchor (anchor.py).
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "taina/clock.h"
#include "taina/mem.h"
#include "taina/vecstore.h"

enum { K = 10 };

static uint64_t rng = 0x9E3779B97F4A7C15ULL;

static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static int dcmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    qsort(v, n, sizeof(*v), dcmp);
    size_t i = (size_t)ceil(p * (double)n) - 1;
    return v[i < n ? i : n - 1];
}

static int write_file(const char *dir, const char *name, const void *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(p, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

typedef struct job {
    tn_vecstore_t *vs;
    const float *qs;
    size_t d, from, to, batch;
    double *lat; /* per query (batch == 0) or per batch, seconds */
} job_t;

static void *run_job(void *arg)
{
    job_t *j = arg;
    tn_vec_hit_t *hits = tn_xcalloc((j->batch ? j->batch : 1) * K, sizeof(*hits));
    size_t counts[64];
    tn_vec_filter_t f[64];
    for (size_t i = 0; i < 64; i++)
        f[i] = (tn_vec_filter_t){"A", NULL, NULL, NULL, NULL, 0};
    size_t li = 0;
    for (size_t q = j->from; q < j->to;) {
        double t0 = tn_clock_mono_s();
        if (!j->batch) {
            size_t n = tn_vecstore_search(j->vs, j->qs + q * j->d, f, K, -2, hits);
            tn_vec_hits_free(hits, n);
            q++;
        } else {
            size_t b = TN_MIN(j->batch, j->to - q);
            tn_vecstore_search_many(j->vs, j->qs + q * j->d, f, b, K, -2, hits, counts);
            for (size_t i = 0; i < b; i++)
                tn_vec_hits_free(hits + i * K, counts[i]);
            q += b;
        }
        j->lat[li++] = tn_clock_mono_s() - t0;
    }
    free(hits);
    return NULL;
}

/* nq queries on @p threads threads, in batches of @p batch (0: single queries). */
static void measure(tn_vecstore_t *vs, const float *qs, size_t d, size_t nq, size_t batch,
                    int threads, const char *tag)
{
    job_t jobs[2];
    pthread_t th[2];
    double *lat = tn_xmalloc(nq * sizeof(double));
    size_t per = nq / (size_t)threads, nlat = 0;
    double t0 = tn_clock_mono_s();
    for (int t = 0; t < threads; t++) {
        size_t from = per * (size_t)t, to = t == threads - 1 ? nq : from + per;
        jobs[t] = (job_t){vs, qs, d, from, to, batch, tn_xmalloc(nq * sizeof(double))};
        pthread_create(&th[t], NULL, run_job, &jobs[t]);
    }
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        size_t b = batch ? batch : 1, n = (jobs[t].to - jobs[t].from + b - 1) / b;
        memcpy(lat + nlat, jobs[t].lat, n * sizeof(double));
        nlat += n;
        free(jobs[t].lat);
    }
    double secs = tn_clock_mono_s() - t0;
    printf("%s_qps %.1f\n", tag, (double)nq / secs);
    printf("%s_p50_ms %.3f\n", tag, pct(lat, nlat, 0.50) * 1e3);
    printf("%s_p99_ms %.3f\n", tag, pct(lat, nlat, 0.99) * 1e3);
    free(lat);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: bench-vecstore N DIMS NQUERIES OUTDIR\n");
        return 2;
    }
    size_t n = strtoul(argv[1], NULL, 10), d = strtoul(argv[2], NULL, 10);
    size_t nq = strtoul(argv[3], NULL, 10);
    const char *dir = argv[4];
    if (n < 100 || d < 1 || nq < 64)
        return 2;
    /* Clustered data: n / 50 centroids, each row a centroid plus as much noise. */
    size_t nc = n / 50;
    float *cent = tn_xmalloc(nc * d * sizeof(float)), *m = tn_xmalloc(n * d * sizeof(float));
    float *noise = tn_xmalloc(d * sizeof(float)), *qs = tn_xmalloc(nq * d * sizeof(float));
    for (size_t i = 0; i < nc * d; i++)
        cent[i] = frand();
    for (size_t r = 0; r < n; r++) {
        size_t c = (size_t)(rng % nc);
        for (size_t i = 0; i < d; i++)
            m[r * d + i] = cent[c * d + i] + frand();
    }
    for (size_t q = 0; q < nq; q++) {
        size_t r = (size_t)(rng % n);
        for (size_t i = 0; i < d; i++)
            qs[q * d + i] = m[r * d + i] + 0.5f * frand();
    }

    tn_vecstore_t *vs = tn_vecstore_new(d);
    char text[256];
    memset(text, 'x', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    double t0 = tn_clock_mono_s();
    for (size_t r = 0; r < n; r++) {
        char tk[32];
        snprintf(tk, sizeof(tk), "%zu", r / 4);
        tn_vec_payload_t p = {"A", tk, (uint32_t)(r % 4), "a title", text, "es", "water", NULL,
                              0,   255};
        if (tn_vecstore_put(vs, &p, m + r * d) != TN_OK)
            return 3;
        if (r % 10 == 9) { /* the other tenant's noise */
            for (size_t i = 0; i < d; i++)
                noise[i] = frand();
            p.tenant_id = "B";
            if (tn_vecstore_put(vs, &p, noise) != TN_OK)
                return 3;
        }
    }
    double secs = tn_clock_mono_s() - t0;
    printf("insert_per_s %.0f\n", (double)(n + n / 10) / secs);

    tn_vecstore_stats_t st;
    tn_vecstore_stats(vs, &st);
    size_t raw = st.live * d * sizeof(float);
    printf("live %zu\nrows %zu\nraw_vector_bytes %zu\nvector_bytes %zu\npayload_bytes %zu\n",
           st.live, st.rows, raw, st.vector_bytes, st.payload_bytes);
    printf("vector_overhead %.3f\n", (double)st.vector_bytes / (double)raw);

    /* The C answers, for the anchor's agreement check; also warms the matrix. */
    uint32_t *ids = tn_xmalloc(nq * K * sizeof(uint32_t));
    tn_vec_hit_t hits[K];
    tn_vec_filter_t f = {"A", NULL, NULL, NULL, NULL, 0};
    for (size_t q = 0; q < nq; q++) {
        size_t c = tn_vecstore_search(vs, qs + q * d, &f, K, -2, hits);
        for (size_t i = 0; i < K; i++)
            ids[q * K + i] =
                i < c ? (uint32_t)(strtoul(hits[i].ticket_id, NULL, 10) * 4 + hits[i].chunk_index)
                      : UINT32_MAX;
        tn_vec_hits_free(hits, c);
    }
    /* recall@10 against exact brute force (double, over the normalized rows) for the first
     * queries: the store's int8 first pass must not lose true top-10 rows. */
    size_t rq = TN_MIN(nq, (size_t)200), found = 0;
    double *inv = tn_xmalloc(n * sizeof(double));
    for (size_t r = 0; r < n; r++) {
        double ss = 0;
        for (size_t i = 0; i < d; i++)
            ss += (double)m[r * d + i] * m[r * d + i];
        inv[r] = 1.0 / sqrt(ss);
    }
    for (size_t q = 0; q < rq; q++) {
        double best[K];
        uint32_t bid[K];
        for (size_t i = 0; i < K; i++) {
            best[i] = -3;
            bid[i] = UINT32_MAX;
        }
        for (size_t r = 0; r < n; r++) {
            double s = 0;
            for (size_t i = 0; i < d; i++)
                s += (double)qs[q * d + i] * m[r * d + i];
            s *= inv[r];
            if (s <= best[K - 1])
                continue;
            size_t j = K - 1;
            for (; j > 0 && best[j - 1] < s; j--) {
                best[j] = best[j - 1];
                bid[j] = bid[j - 1];
            }
            best[j] = s;
            bid[j] = (uint32_t)r;
        }
        for (size_t i = 0; i < K; i++)
            for (size_t j = 0; j < K; j++)
                found += ids[q * K + i] == bid[j] && bid[j] != UINT32_MAX;
    }
    printf("recall_at10 %.4f\nrecall_queries %zu\n", (double)found / (double)(rq * K), rq);
    free(inv);
    if (write_file(dir, "m.f32", m, n * d * sizeof(float)) ||
        write_file(dir, "q.f32", qs, nq * d * sizeof(float)) ||
        write_file(dir, "ids.u32", ids, nq * K * sizeof(uint32_t))) {
        fprintf(stderr, "bench-vecstore: cannot write to %s\n", dir);
        return 4;
    }

    measure(vs, qs, d, nq, 0, 1, "single_t1");
    measure(vs, qs, d, nq, 0, 2, "single_t2");
    measure(vs, qs, d, nq, 8, 1, "many8_t1");
    measure(vs, qs, d, nq, 8, 2, "many8_t2");
    measure(vs, qs, d, nq, 32, 1, "many32_t1");
    measure(vs, qs, d, nq, 32, 2, "many32_t2");

    free(ids);
    tn_vecstore_destroy(vs);
    free(qs);
    free(noise);
    free(m);
    free(cent);
    return 0;
}
