/* Unit tests for common/src/vecstore.c: exact top-k, filters, replace, trim, compaction,
 * search_many (also with tombstones and filters), the fixed point's precision, stats,
 * concurrent readers with a writer, every first-pass kernel agreeing with the portable one, and
 * the shared scan agreeing with tn_vecstore_search under concurrent searches and writes and
 * after a compaction. */
#include "tn_test.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "taina/mem.h"
#include "taina/vecstore.h"

static uint64_t rng = 88172645463325252ULL;

static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void rand_vec(float *v, size_t d)
{
    for (size_t i = 0; i < d; i++)
        v[i] = frand();
}

static tn_err_t put_src(tn_vecstore_t *vs, const char *tenant, const char *ticket, uint32_t ci,
                        const char *lang, const char *cat, const char *src, const float *v)
{
    char text[64];
    snprintf(text, sizeof(text), "%s/%s/%u", tenant, ticket, ci);
    tn_vec_payload_t p = {tenant, ticket, ci, "title", text, lang, cat, src, ci * 10, ci * 10 + 9};
    return tn_vecstore_put(vs, &p, v);
}

static tn_err_t put(tn_vecstore_t *vs, const char *tenant, const char *ticket, uint32_t ci,
                    const char *lang, const char *cat, const float *v)
{
    return put_src(vs, tenant, ticket, ci, lang, cat, NULL, v);
}

static size_t search(tn_vecstore_t *vs, const float *q, const char *tenant, size_t k,
                     tn_vec_hit_t *hits)
{
    tn_vec_filter_t f = {tenant, NULL, NULL, NULL, NULL, 0};
    return tn_vecstore_search(vs, q, &f, k, -2, hits);
}

/* Brute force in double: scores of every row, then the k best (ties: lower row first). */
typedef struct ref {
    double s;
    size_t row;
} ref_t;

static int ref_cmp(const void *a, const void *b)
{
    const ref_t *x = a, *y = b;
    if (x->s != y->s)
        return x->s > y->s ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

static double cosine(const float *a, const float *b, size_t d)
{
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < d; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return ab / sqrt(aa * bb);
}

static void test_exact_topk(void **state)
{
    TN_UNUSED(state);
    static const size_t dims[] = {4, 7, 8, 16, 33, 100, 384};
    static const size_t ks[] = {1, 3, 10, 50, 300};
    for (size_t di = 0; di < TN_ARRAY_LEN(dims); di++) {
        size_t d = dims[di], n = 257;
        tn_vecstore_t *vs = tn_vecstore_new(d);
        assert_non_null(vs);
        assert_int_equal(tn_vecstore_dims(vs), d);
        float *m = tn_xmalloc(n * d * sizeof(float));
        for (size_t r = 0; r < n; r++) {
            rand_vec(m + r * d, d);
            char tk[24];
            snprintf(tk, sizeof(tk), "t%zu", r);
            assert_int_equal(put(vs, "A", tk, 0, NULL, NULL, m + r * d), TN_OK);
        }
        float q[384];
        ref_t *ref = tn_xmalloc(n * sizeof(*ref));
        tn_vec_hit_t *hits = tn_xcalloc(300, sizeof(*hits));
        for (int qn = 0; qn < 5; qn++) {
            rand_vec(q, d);
            for (size_t r = 0; r < n; r++)
                ref[r] = (ref_t){cosine(q, m + r * d, d), r};
            qsort(ref, n, sizeof(*ref), ref_cmp);
            for (size_t ki = 0; ki < TN_ARRAY_LEN(ks); ki++) {
                size_t k = ks[ki], got = search(vs, q, "A", k, hits);
                assert_int_equal(got, TN_MIN(k, n));
                for (size_t i = 0; i < got; i++) {
                    /* same score at each rank, and the row returned really has that score */
                    assert_true(fabs(hits[i].score - ref[i].s) < 1e-5);
                    size_t row = (size_t)strtoul(hits[i].ticket_id + 1, NULL, 10);
                    assert_true(fabs(hits[i].score - cosine(q, m + row * d, d)) < 1e-5);
                    if (i > 0)
                        assert_true(hits[i - 1].score >= hits[i].score);
                }
                tn_vec_hits_free(hits, got);
            }
        }
        free(hits);
        free(ref);
        free(m);
        tn_vecstore_destroy(vs);
    }
}

/*
 * The int8 first pass (dims >= 32, more rows than candidates) returns the brute-force top k:
 * the same rows in the same order, with the exact scores; search_many agrees bitwise. Ids are
 * compared wherever neighbouring reference scores differ by more than float rounding.
 */
static void test_two_pass_ids(void **state)
{
    TN_UNUSED(state);
    static const size_t dims[] = {32, 48, 64, 100, 128, 256, 384};
    static const size_t ks[] = {1, 5, 10, 20, 40};
    enum { NQ = 8 };
    for (size_t di = 0; di < TN_ARRAY_LEN(dims); di++) {
        size_t d = dims[di], n = 3000;
        tn_vecstore_t *vs = tn_vecstore_new(d);
        float *m = tn_xmalloc(n * d * sizeof(float));
        for (size_t r = 0; r < n; r++) {
            rand_vec(m + r * d, d);
            char tk[24];
            snprintf(tk, sizeof(tk), "t%zu", r);
            assert_int_equal(put(vs, "A", tk, 0, NULL, NULL, m + r * d), TN_OK);
        }
        float *qs = tn_xmalloc(NQ * d * sizeof(float));
        ref_t *ref = tn_xmalloc(n * sizeof(*ref));
        tn_vec_hit_t *hits = tn_xcalloc(40, sizeof(*hits)),
                     *many = tn_xcalloc(NQ * 40, 1 * sizeof(*many));
        tn_vec_filter_t f[NQ];
        size_t counts[NQ];
        for (size_t i = 0; i < NQ; i++) {
            rand_vec(qs + i * d, d);
            f[i] = (tn_vec_filter_t){"A", NULL, NULL, NULL, NULL, 0};
        }
        for (size_t ki = 0; ki < TN_ARRAY_LEN(ks); ki++) {
            size_t k = ks[ki];
            tn_vecstore_search_many(vs, qs, f, NQ, k, -2, many, counts);
            for (size_t qn = 0; qn < NQ; qn++) {
                const float *q = qs + qn * d;
                for (size_t r = 0; r < n; r++)
                    ref[r] = (ref_t){cosine(q, m + r * d, d), r};
                qsort(ref, n, sizeof(*ref), ref_cmp);
                size_t got = search(vs, q, "A", k, hits);
                assert_int_equal(got, k);
                assert_int_equal(counts[qn], k);
                for (size_t i = 0; i < got; i++) {
                    assert_true(fabs(hits[i].score - ref[i].s) < 1e-5);
                    size_t row = (size_t)strtoul(hits[i].ticket_id + 1, NULL, 10);
                    int clear = (i == 0 || ref[i - 1].s - ref[i].s > 1e-6) &&
                                ref[i].s - ref[i + 1].s > 1e-6;
                    if (clear)
                        assert_int_equal(row, ref[i].row);
                    assert_true(many[qn * k + i].score == hits[i].score);
                    assert_string_equal(many[qn * k + i].ticket_id, hits[i].ticket_id);
                }
                tn_vec_hits_free(hits, got);
                tn_vec_hits_free(many + qn * k, counts[qn]);
            }
        }
        free(many);
        free(hits);
        free(ref);
        free(qs);
        free(m);
        tn_vecstore_destroy(vs);
    }
}

static void test_ties_and_payload(void **state)
{
    TN_UNUSED(state);
    tn_vecstore_t *vs = tn_vecstore_new(4);
    float v[4] = {1, 2, 3, 4}, w[4] = {-1, 0, 0, 0};
    assert_int_equal(put(vs, "A", "x", 0, "es", "water", w), TN_OK);
    for (uint32_t i = 0; i < 6; i++)
        assert_int_equal(put(vs, "A", "dup", i, "es", "water", v), TN_OK);
    tn_vec_hit_t hits[10];
    for (int rep = 0; rep < 3; rep++) {
        size_t n = search(vs, v, "A", 3, hits);
        assert_int_equal(n, 3);
        for (uint32_t i = 0; i < 3; i++) {
            assert_int_equal(hits[i].chunk_index, i); /* earlier row first */
            assert_true(fabsf(hits[i].score - 1.0f) < 1e-6f);
        }
        assert_string_equal(hits[0].ticket_id, "dup");
        assert_string_equal(hits[0].title, "title");
        assert_string_equal(hits[0].text, "A/dup/0");
        assert_string_equal(hits[0].lang, "es");
        assert_string_equal(hits[0].category, "water");
        assert_int_equal(hits[1].start, 10);
        assert_int_equal(hits[1].end, 19);
        tn_vec_hits_free(hits, n);
    }
    /* NULL title, lang, category */
    tn_vec_payload_t p = {"A", "bare", 0, NULL, "t", NULL, NULL, NULL, 0, 1};
    assert_int_equal(tn_vecstore_put(vs, &p, w), TN_OK);
    tn_vec_filter_t f = {"A", NULL, NULL, "bare", NULL, 0};
    assert_int_equal(tn_vecstore_search(vs, w, &f, 5, -2, hits), 1);
    assert_null(hits[0].title);
    assert_string_equal(hits[0].lang, "");
    assert_string_equal(hits[0].category, "");
    tn_vec_hits_free(hits, 1);
    tn_vecstore_destroy(vs);
}

static void test_filters(void **state)
{
    TN_UNUSED(state);
    size_t d = 16;
    tn_vecstore_t *vs = tn_vecstore_new(d);
    float v[16];
    static const char *langs[] = {"es", "en"}, *cats[] = {"water", "roads", "noise"};
    for (uint32_t i = 0; i < 300; i++) {
        rand_vec(v, d);
        char tk[24];
        snprintf(tk, sizeof(tk), "k%u", i % 30);
        assert_int_equal(put(vs, i % 3 ? "A" : "B", tk, i, langs[i % 2], cats[i % 3], v), TN_OK);
    }
    tn_vec_hit_t *hits = tn_xcalloc(300, sizeof(*hits));
    for (int qn = 0; qn < 10; qn++) {
        rand_vec(v, d);
        size_t n = search(vs, v, "A", 300, hits);
        assert_int_equal(n, 200);
        for (size_t i = 0; i < n; i++)
            assert_true(hits[i].chunk_index % 3 != 0); /* B's rows never */
        tn_vec_hits_free(hits, n);
        n = search(vs, v, "B", 300, hits);
        assert_int_equal(n, 100);
        for (size_t i = 0; i < n; i++)
            assert_true(hits[i].chunk_index % 3 == 0);
        tn_vec_hits_free(hits, n);

        tn_vec_filter_t f = {"A", "es", NULL, NULL, NULL, 0};
        n = tn_vecstore_search(vs, v, &f, 300, -2, hits);
        assert_int_equal(n, 100);
        for (size_t i = 0; i < n; i++) {
            assert_string_equal(hits[i].lang, "es");
            assert_true(hits[i].chunk_index % 3 != 0);
        }
        tn_vec_hits_free(hits, n);

        f = (tn_vec_filter_t){"A", "en", "roads", NULL, NULL, 0};
        n = tn_vecstore_search(vs, v, &f, 300, -2, hits);
        assert_int_equal(n, 50); /* i % 2 == 1 and i % 3 == 1 */
        for (size_t i = 0; i < n; i++)
            assert_true(hits[i].chunk_index % 6 == 1);
        tn_vec_hits_free(hits, n);

        f = (tn_vec_filter_t){"A", NULL, NULL, "k4", NULL, 0};
        n = tn_vecstore_search(vs, v, &f, 300, -2, hits);
        assert_int_equal(n, 10);
        for (size_t i = 0; i < n; i++) {
            assert_string_equal(hits[i].ticket_id, "k4");
            if (i)
                assert_true(hits[i - 1].score >= hits[i].score);
        }
        tn_vec_hits_free(hits, n);
        f = (tn_vec_filter_t){"B", NULL, NULL, "k4", NULL, 0}; /* k4 chunks: i = 4 + 30j, never B */
        assert_int_equal(tn_vecstore_search(vs, v, &f, 300, -2, hits), 0);
        f = (tn_vec_filter_t){"A", "fr", NULL, NULL, NULL, 0};
        assert_int_equal(tn_vecstore_search(vs, v, &f, 300, -2, hits), 0);
        f = (tn_vec_filter_t){"A", NULL, "nope", NULL, NULL, 0};
        assert_int_equal(tn_vecstore_search(vs, v, &f, 300, -2, hits), 0);
        f = (tn_vec_filter_t){"C", NULL, NULL, NULL, NULL, 0};
        assert_int_equal(tn_vecstore_search(vs, v, &f, 300, -2, hits), 0);
        f = (tn_vec_filter_t){NULL, NULL, NULL, NULL, NULL, 0};
        assert_int_equal(tn_vecstore_search(vs, v, &f, 300, -2, hits), 0);
    }
    free(hits);
    tn_vecstore_destroy(vs);
}

static void test_min_score_and_zero(void **state)
{
    TN_UNUSED(state);
    tn_vecstore_t *vs = tn_vecstore_new(2);
    float a[2] = {1, 0}, b[2] = {1, 1}, c[2] = {0, 1}, z[2] = {0, 0}, nan2[2] = {NAN, 1};
    assert_int_equal(put(vs, "A", "a", 0, NULL, NULL, a), TN_OK);
    assert_int_equal(put(vs, "A", "b", 0, NULL, NULL, b), TN_OK);
    assert_int_equal(put(vs, "A", "c", 0, NULL, NULL, c), TN_OK);
    assert_int_equal(put(vs, "A", "z", 0, NULL, NULL, z), TN_ERR_INVALID);
    assert_int_equal(put(vs, "A", "n", 0, NULL, NULL, nan2), TN_ERR_INVALID);
    assert_int_equal(tn_vecstore_put(vs, NULL, a), TN_ERR_INVALID);
    tn_vec_hit_t hits[3];
    tn_vec_filter_t f = {"A", NULL, NULL, NULL, NULL, 0};
    size_t n = tn_vecstore_search(vs, a, &f, 3, 0.5f, hits);
    assert_int_equal(n, 2);
    assert_string_equal(hits[0].ticket_id, "a");
    assert_string_equal(hits[1].ticket_id, "b");
    tn_vec_hits_free(hits, n);
    n = tn_vecstore_search(vs, a, &f, 3, 1.5f, hits);
    assert_int_equal(n, 0);
    n = tn_vecstore_search(vs, a, &f, 3, -2, hits);
    assert_int_equal(n, 3);
    tn_vec_hits_free(hits, n);
    assert_int_equal(tn_vecstore_search(vs, z, &f, 3, -2, hits), 0); /* zero query */
    assert_int_equal(tn_vecstore_search(vs, a, &f, 0, -2, hits), 0);
    tn_vecstore_stats_t st;
    tn_vecstore_stats(vs, &st);
    assert_int_equal(st.live, 3);
    tn_vecstore_destroy(vs);
    assert_null(tn_vecstore_new(0));
}

static void test_replace_trim_delete(void **state)
{
    TN_UNUSED(state);
    size_t d = 8;
    tn_vecstore_t *vs = tn_vecstore_new(d);
    float v[8], q[8];
    for (uint32_t i = 0; i < 40; i++) { /* filler keeps compaction away for now */
        rand_vec(v, d);
        char tk[24];
        snprintf(tk, sizeof(tk), "f%u", i);
        assert_int_equal(put(vs, "A", tk, 0, NULL, NULL, v), TN_OK);
    }
    rand_vec(v, d);
    assert_int_equal(put(vs, "A", "r", 0, NULL, NULL, v), TN_OK);
    rand_vec(q, d);
    assert_int_equal(put(vs, "A", "r", 0, "en", NULL, q), TN_OK); /* replace */
    tn_vecstore_stats_t st;
    tn_vecstore_stats(vs, &st);
    assert_int_equal(st.live, 41);
    assert_int_equal(st.rows, 42);
    tn_vec_hit_t hits[64];
    tn_vec_filter_t f = {"A", NULL, NULL, "r", NULL, 0};
    size_t n = tn_vecstore_search(vs, v, &f, 10, -2, hits);
    assert_int_equal(n, 1); /* one row live */
    assert_string_equal(hits[0].lang, "en");
    tn_vec_hits_free(hits, n);
    n = tn_vecstore_search(vs, q, &f, 10, -2, hits);
    assert_true(fabsf(hits[0].score - 1.0f) < 1e-5f);
    tn_vec_hits_free(hits, n);

    for (uint32_t i = 0; i < 6; i++) {
        rand_vec(v, d);
        assert_int_equal(put(vs, "A", "t", i * 2, NULL, NULL, v), TN_OK);
        assert_int_equal(put(vs, "B", "t", i * 2, NULL, NULL, v), TN_OK);
    }
    assert_int_equal(tn_vecstore_trim(vs, "A", "t", 5), 3); /* 6, 8, 10 */
    assert_int_equal(tn_vecstore_trim(vs, "A", "t", 5), 0);
    assert_int_equal(tn_vecstore_trim(vs, "A", "nope", 0), 0);
    assert_int_equal(tn_vecstore_trim(vs, "Z", "t", 0), 0);
    f = (tn_vec_filter_t){"A", NULL, NULL, "t", NULL, 0};
    n = tn_vecstore_search(vs, v, &f, 10, -2, hits);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++)
        assert_true(hits[i].chunk_index < 5);
    tn_vec_hits_free(hits, n);
    assert_int_equal(tn_vecstore_delete_ticket(vs, "A", "t"), 3);
    assert_int_equal(tn_vecstore_search(vs, v, &f, 10, -2, hits), 0);
    f.tenant_id = "B"; /* the other tenant's ticket of the same name is untouched */
    n = tn_vecstore_search(vs, v, &f, 10, -2, hits);
    assert_int_equal(n, 6);
    tn_vec_hits_free(hits, n);
    /* deleting then putting again works */
    assert_int_equal(put(vs, "A", "t", 1, NULL, NULL, v), TN_OK);
    f.tenant_id = "A";
    n = tn_vecstore_search(vs, v, &f, 10, -2, hits);
    assert_int_equal(n, 1);
    tn_vec_hits_free(hits, n);
    tn_vecstore_destroy(vs);
}

static void test_compaction(void **state)
{
    TN_UNUSED(state);
    size_t d = 24, n = 400;
    tn_vecstore_t *vs = tn_vecstore_new(d);
    float *m = tn_xmalloc(n * d * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        rand_vec(m + i * d, d);
        char tk[24];
        snprintf(tk, sizeof(tk), "t%zu", i / 4);
        assert_int_equal(put(vs, i % 5 ? "A" : "B", tk, (uint32_t)(i % 4), NULL, NULL, m + i * d),
                         TN_OK);
    }
    tn_vecstore_stats_t st;
    tn_vecstore_stats(vs, &st);
    assert_int_equal(st.live, n);
    assert_int_equal(st.rows, n);
    /* per row: 3 bytes a dimension (the int8 copy and the int16 rest of the 24-bit fixed point)
     * and a scale, 0.75x the floats; growth by an eighth (at least 64 rows) */
    size_t rowb = d * (sizeof(int8_t) + sizeof(int16_t)) + sizeof(float);
    assert_true(rowb < d * sizeof(float));
    assert_true(st.vector_bytes >= n * rowb);
    assert_true(st.vector_bytes <= n * rowb * 9 / 8 + 64 * rowb);
    assert_true(st.payload_bytes > 0);

    float q[24];
    rand_vec(q, d);
    tn_vec_hit_t before[40], after[40];
    size_t nb = search(vs, q, "A", 40, before);
    /* Delete tickets until tombstones would pass a quarter: rows shrink back to live. */
    size_t removed = 0, min_rows = n;
    for (size_t t = 1; t < 100; t += 3) {
        char tk[24];
        snprintf(tk, sizeof(tk), "t%zu", t);
        removed += tn_vecstore_delete_ticket(vs, "A", tk) + tn_vecstore_delete_ticket(vs, "B", tk);
        tn_vecstore_stats(vs, &st);
        assert_int_equal(st.live, n - removed);
        assert_true((st.rows - st.live) * 4 <= st.rows);
        if (st.rows < min_rows)
            min_rows = st.rows;
    }
    assert_true(min_rows < n);     /* compacted at least once */
    assert_true(removed >= n / 4); /* so tombstones passed the threshold */
    size_t na = search(vs, q, "A", 40, after);
    /* The rows of the surviving hits keep their rank and score. */
    size_t j = 0;
    for (size_t i = 0; i < nb; i++) {
        unsigned tnum = (unsigned)strtoul(before[i].ticket_id + 1, NULL, 10);
        int gone = tnum % 3 == 1;
        if (gone)
            continue;
        if (j >= na)
            break;
        assert_string_equal(before[i].ticket_id, after[j].ticket_id);
        assert_int_equal(before[i].chunk_index, after[j].chunk_index);
        assert_true(before[i].score == after[j].score);
        j++;
    }
    assert_true(j > 0);
    tn_vec_hits_free(before, nb);
    tn_vec_hits_free(after, na);

    /* Replacing every chunk many times keeps memory bounded. */
    for (int rep = 0; rep < 5; rep++)
        for (size_t i = 0; i < 100; i++) {
            char tk[24];
            snprintf(tk, sizeof(tk), "r%zu", i);
            assert_int_equal(put(vs, "A", tk, 0, NULL, NULL, m + i * d), TN_OK);
        }
    tn_vecstore_stats(vs, &st);
    assert_int_equal(st.live, n - removed + 100);
    assert_true((st.rows - st.live) * 4 <= st.rows);
    assert_true(st.vector_bytes <= st.rows * rowb * 5 / 4 + 64 * rowb);
    free(m);
    tn_vecstore_destroy(vs);
}

static void test_search_many(void **state)
{
    TN_UNUSED(state);
    size_t d = 37, n = 500, nq = 11, k = 7;
    tn_vecstore_t *vs = tn_vecstore_new(d);
    float v[37];
    static const char *langs[] = {"es", "en", "ca"};
    for (size_t i = 0; i < n; i++) {
        rand_vec(v, d);
        char tk[24];
        snprintf(tk, sizeof(tk), "t%zu", i % 50);
        assert_int_equal(put(vs, i % 4 ? "A" : "B", tk, (uint32_t)i, langs[i % 3], NULL, v), TN_OK);
    }
    float *qs = tn_xmalloc(nq * d * sizeof(float));
    for (size_t i = 0; i < nq * d; i++)
        qs[i] = frand();
    memset(qs + 9 * d, 0, d * sizeof(float)); /* a zero query: no hits */
    tn_vec_filter_t f[11];
    for (size_t i = 0; i < nq; i++)
        f[i] = (tn_vec_filter_t){i % 3 ? "A" : "B", NULL, NULL, NULL, NULL, 0};
    f[2].lang = "en";
    f[4].ticket_id = "t5";
    f[5].tenant_id = "nobody";
    f[7].lang = "ca";
    tn_vec_hit_t *hits = tn_xcalloc(nq * k, sizeof(*hits)), one[7];
    size_t counts[11];
    for (float ms = -2; ms < 0.5f; ms += 2.1f) {
        tn_vecstore_search_many(vs, qs, f, nq, k, ms, hits, counts);
        for (size_t i = 0; i < nq; i++) {
            size_t c = tn_vecstore_search(vs, qs + i * d, &f[i], k, ms, one);
            assert_int_equal(counts[i], c);
            for (size_t j = 0; j < c; j++) {
                assert_true(hits[i * k + j].score == one[j].score); /* bitwise */
                assert_string_equal(hits[i * k + j].ticket_id, one[j].ticket_id);
                assert_int_equal(hits[i * k + j].chunk_index, one[j].chunk_index);
                assert_string_equal(hits[i * k + j].text, one[j].text);
            }
            tn_vec_hits_free(one, c);
            tn_vec_hits_free(hits + i * k, counts[i]);
        }
        assert_int_equal(counts[5], 0);
        assert_int_equal(counts[9], 0);
        assert_true(ms > 0 || counts[0] == k);
    }
    free(hits);
    free(qs);
    tn_vecstore_destroy(vs);
}

/*
 * The rows are kept in 24-bit fixed point (an int8 copy and an int16 rest): the scores are as
 * close to the exact cosine as float32 gets, also for rows whose components span six orders of
 * magnitude, in one pass (ticket filter, 4 dims) and two (384 and 1536 dims), one search and
 * many. A 16-bit float or the int8 copy alone would miss by 1e-5 to 1e-2.
 */
static void test_fixed_point_precision(void **state)
{
    TN_UNUSED(state);
    static const size_t dims[] = {4, 33, 384, 1536};
    for (size_t di = 0; di < TN_ARRAY_LEN(dims); di++) {
        size_t d = dims[di], n = 150;
        tn_vecstore_t *vs = tn_vecstore_new(d);
        float *m = tn_xmalloc(n * d * sizeof(float)), *q = tn_xmalloc(d * sizeof(float));
        for (size_t r = 0; r < n; r++) {
            for (size_t i = 0; i < d; i++) {
                float x = frand();
                m[r * d + i] = r % 2 ? x : x * (i % 7 == 0 ? 1000.0f : 0.001f);
            }
            char tk[24];
            snprintf(tk, sizeof(tk), "t%zu", r);
            assert_int_equal(put(vs, "A", tk, 0, NULL, NULL, m + r * d), TN_OK);
        }
        tn_vec_hit_t hit[1], many[1];
        size_t count;
        for (size_t r = 0; r < n; r++) {
            const float *row = m + r * d;
            for (size_t i = 0; i < d; i++)
                q[i] = r % 3 ? frand() : row[i]; /* a third: the row itself, score 1 */
            char tk[24];
            snprintf(tk, sizeof(tk), "t%zu", r);
            tn_vec_filter_t f = {"A", NULL, NULL, tk, NULL, 0};
            assert_int_equal(tn_vecstore_search(vs, q, &f, 1, -2, hit), 1);
            assert_true(fabs(hit[0].score - cosine(q, row, d)) < 5e-7);
            tn_vecstore_search_many(vs, q, &f, 1, 1, -2, many, &count);
            assert_int_equal(count, 1);
            assert_true(many[0].score == hit[0].score);
            tn_vec_hits_free(hit, 1);
            tn_vec_hits_free(many, 1);
        }
        /* the best of all rows for a row's own vector: itself, in two passes for d >= 32 (the
         * plain random rows: the scaled ones are all close to the axes of their big parts) */
        for (size_t r = 1; r < n; r += 6) {
            assert_int_equal(search(vs, m + r * d, "A", 1, hit), 1);
            char tk[24];
            snprintf(tk, sizeof(tk), "t%zu", r);
            assert_string_equal(hit[0].ticket_id, tk);
            assert_true(fabs(hit[0].score - 1.0) < 5e-7);
            tn_vec_hits_free(hit, 1);
        }
        free(q);
        free(m);
        tn_vecstore_destroy(vs);
    }
}

/*
 * search_many over a store with tombstones (replaced, trimmed and deleted chunks, before and
 * after a compaction) and filters (lang, category, ticket, another tenant): the same hits as
 * one search each, bitwise, and the brute-force top k over the live rows that pass the filter
 * (ids compared where neighbouring scores differ by more than float rounding).
 */
static void test_search_many_tombstones(void **state)
{
    TN_UNUSED(state);
    enum { D = 384, N = 1200, NQ = 9, K = 8 };
    static const char *langs[] = {"es", "en"}, *cats[] = {"tax", "water", "id"};
    tn_vecstore_t *vs = tn_vecstore_new(D);
    float *m = tn_xmalloc((size_t)N * D * sizeof(float));
    int *live = tn_xcalloc(N, sizeof(int));
    /* vector i is chunk (i % 4) of ticket t(i / 4); tenant A except every 5th ticket (B) */
    for (size_t i = 0; i < N; i++) {
        rand_vec(m + i * D, D);
        char tk[24];
        snprintf(tk, sizeof(tk), "t%zu", i / 4);
        assert_int_equal(put(vs, (i / 4) % 5 ? "A" : "B", tk, (uint32_t)(i % 4), langs[i % 2],
                             cats[(i / 4) % 3], m + i * D),
                         TN_OK);
        live[i] = 1;
    }
    for (int round = 0; round < 2; round++) {
        for (size_t i = (size_t)round; i < N; i += 13) { /* replace: a new vector */
            rand_vec(m + i * D, D);
            char tk[24];
            snprintf(tk, sizeof(tk), "t%zu", i / 4);
            assert_int_equal(put(vs, (i / 4) % 5 ? "A" : "B", tk, (uint32_t)(i % 4), langs[i % 2],
                                 cats[(i / 4) % 3], m + i * D),
                             TN_OK);
            live[i] = 1;
        }
        for (size_t t = (size_t)round * 3; t < N / 4; t += 11) { /* trim to 2, or delete */
            char tk[24];
            snprintf(tk, sizeof(tk), "t%zu", t);
            const char *tenant = t % 5 ? "A" : "B";
            if (t % 2)
                tn_vecstore_trim(vs, tenant, tk, 2);
            else
                tn_vecstore_delete_ticket(vs, tenant, tk);
            for (size_t c = t % 2 ? 2 : 0; c < 4; c++)
                live[t * 4 + c] = 0;
        }
        tn_vecstore_stats_t st;
        tn_vecstore_stats(vs, &st);
        if (round == 0)
            assert_true(st.rows > st.live); /* tombstones to skip */
        float *qs = tn_xmalloc((size_t)NQ * D * sizeof(float));
        tn_vec_filter_t f[NQ];
        for (size_t i = 0; i < NQ; i++) {
            rand_vec(qs + i * D, D);
            f[i] = (tn_vec_filter_t){"A", NULL, NULL, NULL, NULL, 0};
        }
        f[1].lang = "en";
        f[2].category = "water";
        f[3].lang = "es";
        f[3].category = "tax";
        f[4].ticket_id = "t11"; /* trimmed to 2 chunks in round 0 */
        f[5].tenant_id = "B";
        f[6].ticket_id = "t3";
        tn_vec_hit_t *many = tn_xcalloc(NQ * K, sizeof(*many)), one[K];
        size_t counts[NQ];
        ref_t *ref = tn_xmalloc(N * sizeof(*ref));
        tn_vecstore_search_many(vs, qs, f, NQ, K, -2, many, counts);
        for (size_t qn = 0; qn < NQ; qn++) {
            const float *q = qs + qn * D;
            size_t nr = 0;
            for (size_t i = 0; i < N; i++) {
                char tk[24];
                snprintf(tk, sizeof(tk), "t%zu", i / 4);
                int ok = live[i] && !strcmp((i / 4) % 5 ? "A" : "B", f[qn].tenant_id) &&
                         (!f[qn].lang || !strcmp(f[qn].lang, langs[i % 2])) &&
                         (!f[qn].category || !strcmp(f[qn].category, cats[(i / 4) % 3])) &&
                         (!f[qn].ticket_id || !strcmp(f[qn].ticket_id, tk));
                if (ok)
                    ref[nr++] = (ref_t){cosine(q, m + i * D, D), i};
            }
            qsort(ref, nr, sizeof(*ref), ref_cmp);
            size_t c = tn_vecstore_search(vs, q, &f[qn], K, -2, one);
            assert_int_equal(c, TN_MIN((size_t)K, nr));
            assert_int_equal(counts[qn], c);
            for (size_t j = 0; j < c; j++) {
                const tn_vec_hit_t *h = &many[qn * K + j];
                assert_true(h->score == one[j].score);
                assert_string_equal(h->ticket_id, one[j].ticket_id);
                assert_int_equal(h->chunk_index, one[j].chunk_index);
                assert_true(fabs(h->score - ref[j].s) < 5e-7);
                int clear = (j == 0 || ref[j - 1].s - ref[j].s > 1e-6) &&
                            (j + 1 >= nr || ref[j].s - ref[j + 1].s > 1e-6);
                if (clear) {
                    char tk[24];
                    snprintf(tk, sizeof(tk), "t%zu", ref[j].row / 4);
                    assert_string_equal(h->ticket_id, tk);
                    assert_int_equal(h->chunk_index, ref[j].row % 4);
                }
            }
            tn_vec_hits_free(one, c);
            tn_vec_hits_free(many + qn * K, counts[qn]);
        }
        assert_int_equal(counts[4], 2);
        free(ref);
        free(many);
        free(qs);
    }
    free(live);
    free(m);
    tn_vecstore_destroy(vs);
}

/* Readers search while a writer puts, replaces and deletes; compaction runs meanwhile. */
typedef struct conc {
    tn_vecstore_t *vs;
    volatile int stop;
    size_t d;
    int failures;
} conc_t;

static void *reader(void *arg)
{
    conc_t *c = arg;
    float q[32];
    tn_vec_hit_t hits[10];
    uint64_t s = (uint64_t)(uintptr_t)&q;
    for (int it = 0; it < 400 && !__atomic_load_n(&c->stop, __ATOMIC_RELAXED); it++) {
        for (size_t i = 0; i < c->d; i++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            q[i] = (float)(s >> 40) - 8388608.0f;
        }
        tn_vec_filter_t f = {"A", NULL, NULL, NULL, NULL, 0};
        size_t n = tn_vecstore_search(c->vs, q, &f, 10, -2, hits);
        for (size_t i = 0; i < n; i++)
            if (strncmp(hits[i].text, "A/", 2) != 0)
                __atomic_add_fetch(&c->failures, 1, __ATOMIC_RELAXED);
        tn_vec_hits_free(hits, n);
        tn_vec_hit_t many[20];
        size_t counts[2];
        float qq[64];
        memcpy(qq, q, c->d * sizeof(float));
        memcpy(qq + c->d, q, c->d * sizeof(float));
        tn_vec_filter_t ff[2] = {{"A", NULL, NULL, NULL, NULL, 0},
                                 {"B", NULL, NULL, NULL, NULL, 0}};
        tn_vecstore_search_many(c->vs, qq, ff, 2, 10, -2, many, counts);
        tn_vec_hits_free(many, counts[0]);
        tn_vec_hits_free(many + 10, counts[1]);
        tn_vecstore_stats_t st;
        tn_vecstore_stats(c->vs, &st);
        if (st.live > st.rows)
            __atomic_add_fetch(&c->failures, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    TN_UNUSED(state);
    conc_t c = {tn_vecstore_new(32), 0, 32, 0};
    float v[32];
    for (uint32_t i = 0; i < 200; i++) {
        rand_vec(v, c.d);
        char tk[24];
        snprintf(tk, sizeof(tk), "t%u", i % 20);
        assert_int_equal(put(c.vs, i % 2 ? "A" : "B", tk, i, NULL, NULL, v), TN_OK);
    }
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, reader, &c), 0);
    for (uint32_t i = 0; i < 1500; i++) {
        rand_vec(v, c.d);
        char tk[24];
        snprintf(tk, sizeof(tk), "t%u", i % 20);
        assert_int_equal(put(c.vs, i % 2 ? "A" : "B", tk, i % 50, NULL, NULL, v), TN_OK);
        if (i % 97 == 0)
            tn_vecstore_delete_ticket(c.vs, "A", tk);
        if (i % 31 == 0)
            tn_vecstore_trim(c.vs, "B", tk, 10);
    }
    __atomic_store_n(&c.stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(c.failures, 0);
    tn_vecstore_stats_t st;
    tn_vecstore_stats(c.vs, &st);
    assert_true((st.rows - st.live) * 4 <= st.rows);
    tn_vecstore_destroy(c.vs);
}

/* Hits @p a and @p b (n each) are the same chunks with bitwise the same scores. */
static void assert_same_hits(const tn_vec_hit_t *a, const tn_vec_hit_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_true(a[i].score == b[i].score);
        assert_string_equal(a[i].ticket_id, b[i].ticket_id);
        assert_int_equal(a[i].chunk_index, b[i].chunk_index);
        assert_string_equal(a[i].text, b[i].text);
        assert_string_equal(a[i].source, b[i].source);
    }
}

/* Searches through the shared scan from several threads at once (so they join it mid-round and
 * queue for lanes), each against the reference hits. */
typedef struct shared_job {
    tn_vecstore_t *vs;
    const float *qs;
    const tn_vec_filter_t *f;
    size_t nq, k, first, step;
    const tn_vec_hit_t *ref;
    const size_t *nref;
    int bad;
} shared_job_t;

static void *shared_worker(void *arg)
{
    shared_job_t *j = arg;
    size_t d = tn_vecstore_dims(j->vs);
    tn_vec_hit_t *one = tn_xcalloc(j->k, sizeof(*one));
    for (size_t q = j->first; q < j->nq; q += j->step) {
        size_t c = tn_vecstore_search_shared(j->vs, j->qs + q * d, &j->f[q], j->k, -2, one);
        if (c != j->nref[q])
            j->bad++;
        for (size_t i = 0; i < c && c == j->nref[q]; i++) {
            const tn_vec_hit_t *a = &one[i], *b = &j->ref[q * j->k + i];
            if (a->score != b->score || strcmp(a->ticket_id, b->ticket_id) ||
                a->chunk_index != b->chunk_index || strcmp(a->text, b->text) ||
                strcmp(a->source, b->source))
                j->bad++;
        }
        tn_vec_hits_free(one, c);
    }
    free(one);
    return NULL;
}

static void shared_agree(tn_vecstore_t *vs, const float *qs, const tn_vec_filter_t *f, size_t nq,
                         size_t k, const tn_vec_hit_t *ref, const size_t *nref, size_t threads)
{
    enum { T = 12 };
    /* blocks of 128 rows: ~16 a round; 16 lanes (8 with AVX-VNNI alone, rounded up) */
    assert_int_equal(tn_vecstore_scan_start(vs, 12, 128, threads), TN_OK);
    assert_int_equal(tn_vecstore_scan_start(vs, 12, 128, 1), TN_ERR_INVALID);
    pthread_t th[T];
    shared_job_t jobs[T];
    for (size_t t = 0; t < T; t++) {
        jobs[t] = (shared_job_t){vs, qs, f, nq, k, t, T, ref, nref, 0};
        assert_int_equal(pthread_create(&th[t], NULL, shared_worker, &jobs[t]), 0);
    }
    for (size_t t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(jobs[t].bad, 0);
    }
    tn_vecstore_scan_stop(vs);
}

/*
 * Every kernel of the int8 first pass gives the same hits with bitwise the same scores: the
 * portable ones, and on x86-64 those of this CPU (AVX-512 VNNI: one query, and 16 queries a lane
 * each; AVX-VNNI: 8 queries a lane each). search_many with batches of 1 to 40 queries (groups of
 * 16 and 8 and their remainders) against one search each on the portable kernels, with lang and
 * category filters, a ticket filter, another tenant, tombstones (replaced and deleted chunks) and
 * ties: a row inserted again with the same vector scores the same and ranks after the first.
 * Dims 384 (lanes), 388 (a partial 64-byte block) and 102 (not a multiple of 4: no lanes). The
 * first pass's candidates and int8 scores are compared too (TN_VEC_FIRST_PASS_ONLY): the rescoring
 * would hide a kernel that is slightly off. The shared scan (its lane kernels, or the portable
 * ones) too, with 1 to 3 scan threads, its searches coming from 12 threads at once (shared_agree).
 */
static void test_kernels_agree(void **state)
{
    TN_UNUSED(state);
    static const size_t dims[] = {384, 388, 102};
    static const size_t nqs[] = {1, 2, 3, 8, 9, 16, 17, 40};
    static const size_t ks[] = {1, 10, 25};
    static const unsigned masks[] = {TN_VEC_KERNEL_VNNI512 | TN_VEC_KERNEL_VNNI256,
                                     TN_VEC_KERNEL_VNNI512, TN_VEC_KERNEL_VNNI256, 0};
    static const char *langs[] = {"es", "en"}, *cats[] = {"tax", "water", "id"};
    /* sources by ticket: every fifth ticket has none (an old record) */
    static const char *srcs[] = {"email", "import", "web", "import", NULL};
    static const char *const imp[] = {"import"}, *const ew[] = {"email", "web"},
                             *const nope[] = {"nope"}, *const impnope[] = {"nope", "import"};
    enum { N = 2000, NQ = 40, KMAX = 25 };
    for (size_t di = 0; di < TN_ARRAY_LEN(dims); di++) {
        size_t d = dims[di];
        tn_vecstore_t *vs = tn_vecstore_new(d);
        float *m = tn_xmalloc((size_t)N * d * sizeof(float));
        /* row i: chunk i % 4 of ticket t(i / 4), tenant B for every 10th ticket; every 7th row
         * (i % 7 == 3) has the vector of row i - 3: a tie, inserted later */
        for (size_t i = 0; i < N; i++) {
            if (i % 7 == 3)
                memcpy(m + i * d, m + (i - 3) * d, d * sizeof(float));
            else
                rand_vec(m + i * d, d);
            char tk[24];
            snprintf(tk, sizeof(tk), "t%zu", i / 4);
            assert_int_equal(put_src(vs, (i / 4) % 10 ? "A" : "B", tk, (uint32_t)(i % 4),
                                     langs[i % 2], cats[(i / 4) % 3], srcs[(i / 4) % 5], m + i * d),
                             TN_OK);
        }
        for (size_t i = 1; i < N; i += 13) { /* tombstones: replaced chunks */
            if (i % 7 == 3 || i % 7 == 0)
                continue; /* keep the tied pairs */
            rand_vec(m + i * d, d);
            char tk[24];
            snprintf(tk, sizeof(tk), "t%zu", i / 4);
            assert_int_equal(put_src(vs, (i / 4) % 10 ? "A" : "B", tk, (uint32_t)(i % 4),
                                     langs[i % 2], cats[(i / 4) % 3], srcs[(i / 4) % 5], m + i * d),
                             TN_OK);
        }
        tn_vecstore_delete_ticket(vs, "A", "t33");
        tn_vecstore_delete_ticket(vs, "A", "t101");
        float *qs = tn_xmalloc((size_t)NQ * d * sizeof(float));
        tn_vec_filter_t f[NQ];
        for (size_t j = 0; j < NQ; j++) {
            /* a third of the queries are a tied row's vector: the tie is their best hit */
            size_t row = (7 * j + 3 * (j + 1)) / 7 * 7 + 3;
            if (j % 3 == 0 && row < N)
                memcpy(qs + j * d, m + row * d, d * sizeof(float));
            else
                rand_vec(qs + j * d, d);
            f[j] = (tn_vec_filter_t){"A", NULL, NULL, NULL, NULL, 0};
            if (j % 5 == 1)
                f[j].lang = "en";
            if (j % 5 == 2)
                f[j].category = "water";
            if (j % 11 == 4)
                f[j].tenant_id = "B";
            if (j == 7)
                f[j].ticket_id = "t12";
            if (j % 5 == 3)
                f[j] = (tn_vec_filter_t){f[j].tenant_id, NULL, NULL, NULL, imp, 1};
            if (j % 7 == 6)
                f[j] = (tn_vec_filter_t){"A", j % 2 ? "es" : NULL, NULL, NULL, ew, 2};
            if (j == 27) {
                f[j].sources = nope;
                f[j].nsources = 1;
            }
            if (j == 33)
                f[j] = (tn_vec_filter_t){"A", NULL, NULL, NULL, impnope, 2};
            if (j == 12)
                f[j] = (tn_vec_filter_t){"A", NULL, NULL, "t11", imp, 1}; /* t11: import */
        }
        tn_vec_hit_t *ref = tn_xcalloc(NQ * KMAX, sizeof(*ref)), one[KMAX];
        tn_vec_hit_t *many = tn_xcalloc(NQ * KMAX, sizeof(*many));
        size_t nref[NQ], counts[NQ], ties = 0;
        for (size_t ki = 0; ki < 2 * TN_ARRAY_LEN(ks); ki++) {
            /* the hits, then the first pass's candidates with their int8 scores */
            size_t k = ks[ki % TN_ARRAY_LEN(ks)];
            unsigned only = ki < TN_ARRAY_LEN(ks) ? 0 : TN_VEC_FIRST_PASS_ONLY;
            tn_vecstore_kernels(vs, only);
            for (size_t j = 0; j < NQ; j++)
                nref[j] = tn_vecstore_search(vs, qs + j * d, &f[j], k, -2, ref + j * k);
            /* each hit's source is its ticket's, and one the filter lists */
            for (size_t j = 0; j < NQ; j++) {
                if (f[j].nsources && f[j].sources != nope && !f[j].ticket_id && !only)
                    assert_int_equal(nref[j], k);
                for (size_t i = 0; i < nref[j]; i++) {
                    const tn_vec_hit_t *h = ref + j * k + i;
                    const char *want = srcs[strtoul(h->ticket_id + 1, NULL, 10) % 5];
                    assert_string_equal(h->source, want ? want : "");
                    int in = !f[j].nsources;
                    for (size_t si = 0; si < f[j].nsources; si++)
                        in |= !strcmp(h->source, f[j].sources[si]);
                    assert_true(in);
                }
                if (f[j].sources == nope)
                    assert_int_equal(nref[j], 0);
            }
            /* the ties: the first inserted of the two rows first, the same score */
            for (size_t j = 0; j < NQ; j += 3)
                if (!only && k > 1 && !f[j].lang && !f[j].category && !f[j].nsources &&
                    !strcmp(f[j].tenant_id, "A") && nref[j] > 1 &&
                    fabs(ref[j * k].score - 1.0) < 1e-6) {
                    const tn_vec_hit_t *h = ref + j * k;
                    size_t r0 = strtoul(h[0].ticket_id + 1, NULL, 10) * 4 + h[0].chunk_index,
                           r1 = strtoul(h[1].ticket_id + 1, NULL, 10) * 4 + h[1].chunk_index;
                    if (r0 % 7 == 0 && (r0 / 4) % 10 && ((r0 + 3) / 4) % 10) { /* both in A */
                        assert_true(h[0].score == h[1].score);
                        assert_int_equal(r0 + 3, r1);
                        ties++;
                    }
                }
            for (size_t mi = 0; mi < TN_ARRAY_LEN(masks); mi++) {
                tn_vecstore_kernels(vs, masks[mi] | only);
                for (size_t j = 0; j < NQ; j++) {
                    size_t c = tn_vecstore_search(vs, qs + j * d, &f[j], k, -2, one);
                    assert_int_equal(c, nref[j]);
                    assert_same_hits(one, ref + j * k, c);
                    tn_vec_hits_free(one, c);
                }
                shared_agree(vs, qs, f, NQ, k, ref, nref, 1 + (mi + ki) % 3); /* 1-3 threads */
                for (size_t ni = 0; ni < TN_ARRAY_LEN(nqs); ni++) {
                    size_t nq = nqs[ni];
                    for (size_t at = 0; at + nq <= NQ; at += nq) {
                        tn_vecstore_search_many(vs, qs + at * d, f + at, nq, k, -2, many, counts);
                        for (size_t j = 0; j < nq; j++) {
                            assert_int_equal(counts[j], nref[at + j]);
                            assert_same_hits(many + j * k, ref + (at + j) * k, counts[j]);
                            tn_vec_hits_free(many + j * k, counts[j]);
                        }
                    }
                }
            }
            for (size_t j = 0; j < NQ; j++)
                tn_vec_hits_free(ref + j * k, nref[j]);
        }
        assert_true(ties >= 4);
        free(many);
        free(ref);
        free(qs);
        free(m);
        tn_vecstore_destroy(vs);
    }
}

/*
 * The shared scan against tn_vecstore_search while a writer puts, replaces, trims and deletes
 * (compactions included) and searches join mid-round: 4 threads search with random filters and k
 * through the scan, then alone; when no write began or ended in between (a generation counter
 * around each write) the hits must be the same, bit for bit. Every kernel set, 1 and 2 scan
 * threads.
 */
typedef struct ileave {
    tn_vecstore_t *vs;
    size_t d;
    volatile unsigned gen; /* odd while the writer writes */
    volatile int stop;
    int bad, compared, seed;
} ileave_t;

static void *ileave_reader(void *arg)
{
    ileave_t *c = arg;
    static const char *langs[] = {NULL, "es", "en"}, *cats[] = {NULL, "tax", "water"};
    static const char *const imp[] = {"import"};
    uint64_t s =
        0x9E3779B97F4A7C15ULL * (uint64_t)(__atomic_add_fetch(&c->seed, 1, __ATOMIC_RELAXED));
    float q[64];
    tn_vec_hit_t a[30], b[30];
    /* until 50 searches after the writer stopped (those always compare) */
    for (int after = 0; after < 50;) {
        after += __atomic_load_n(&c->stop, __ATOMIC_ACQUIRE);
        for (size_t i = 0; i < c->d; i++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            q[i] = (float)(s >> 40) - 8388608.0f;
        }
        size_t k = 1 + (size_t)(s >> 60) % 30u;
        tn_vec_filter_t f = {(s >> 20) % 8 ? "A" : "B",  langs[(s >> 24) % 3],
                             cats[(s >> 28) % 3],        NULL,
                             (s >> 32) % 4 ? NULL : imp, (s >> 32) % 4 ? 0 : 1};
        unsigned g1 = __atomic_load_n(&c->gen, __ATOMIC_ACQUIRE);
        size_t na = tn_vecstore_search_shared(c->vs, q, &f, k, -2, a);
        size_t nb = tn_vecstore_search(c->vs, q, &f, k, -2, b);
        unsigned g2 = __atomic_load_n(&c->gen, __ATOMIC_ACQUIRE);
        if (g1 == g2 && !(g1 & 1)) {
            __atomic_add_fetch(&c->compared, 1, __ATOMIC_RELAXED);
            int same = na == nb;
            for (size_t i = 0; same && i < na; i++)
                same = a[i].score == b[i].score && !strcmp(a[i].ticket_id, b[i].ticket_id) &&
                       a[i].chunk_index == b[i].chunk_index && !strcmp(a[i].text, b[i].text);
            if (!same)
                __atomic_add_fetch(&c->bad, 1, __ATOMIC_RELAXED);
        }
        for (size_t i = 0; i < na; i++) /* never another tenant's chunk, whatever the writes */
            if (strncmp(a[i].text, f.tenant_id, 1) != 0)
                __atomic_add_fetch(&c->bad, 1, __ATOMIC_RELAXED);
        tn_vec_hits_free(a, na);
        tn_vec_hits_free(b, nb);
    }
    return NULL;
}

static void test_shared_interleaved(void **state)
{
    TN_UNUSED(state);
    static const unsigned masks[] = {TN_VEC_KERNEL_VNNI512 | TN_VEC_KERNEL_VNNI256,
                                     TN_VEC_KERNEL_VNNI256, 0};
    static const char *langs[] = {"es", "en"}, *cats[] = {"tax", "water", "id"},
                      *srcs[] = {"import", "web", NULL};
    enum { D = 64, N = 3000, T = 4 };
    for (size_t mi = 0; mi < 2 * TN_ARRAY_LEN(masks); mi++) {
        ileave_t c = {tn_vecstore_new(D), D, 0, 0, 0, 0, 0};
        float v[D];
        for (uint32_t i = 0; i < N; i++) {
            rand_vec(v, D);
            char tk[24];
            snprintf(tk, sizeof(tk), "t%u", i / 4);
            assert_int_equal(put_src(c.vs, (i / 4) % 9 ? "A" : "B", tk, i % 4, langs[i % 2],
                                     cats[(i / 4) % 3], srcs[(i / 4) % 3], v),
                             TN_OK);
        }
        tn_vecstore_kernels(c.vs, masks[mi % TN_ARRAY_LEN(masks)]);
        assert_int_equal(tn_vecstore_scan_start(c.vs, 8, 64, 1 + mi / TN_ARRAY_LEN(masks)), TN_OK);
        pthread_t th[T];
        for (int i = 0; i < T; i++)
            assert_int_equal(pthread_create(&th[i], NULL, ileave_reader, &c), 0);
        for (uint32_t i = 0; i < 1200; i++) {
            rand_vec(v, D);
            uint32_t t = (i * 7919u) % (N / 4 + 50); /* some tickets new: appended rows */
            char tk[24];
            snprintf(tk, sizeof(tk), "t%u", t);
            const char *tenant = t % 9 ? "A" : "B";
            __atomic_add_fetch(&c.gen, 1, __ATOMIC_ACQ_REL);
            if (i % 23 == 0)
                tn_vecstore_delete_ticket(c.vs, tenant, tk);
            else if (i % 17 == 0)
                tn_vecstore_trim(c.vs, tenant, tk, 2);
            else
                assert_int_equal(
                    put_src(c.vs, tenant, tk, i % 4, langs[i % 2], cats[t % 3], srcs[t % 3], v),
                    TN_OK);
            __atomic_add_fetch(&c.gen, 1, __ATOMIC_ACQ_REL);
            if (i % 8 == 0) /* gaps without writes, so searches compare */
                sched_yield();
        }
        __atomic_store_n(&c.stop, 1, __ATOMIC_RELAXED);
        for (int i = 0; i < T; i++)
            pthread_join(th[i], NULL);
        assert_int_equal(c.bad, 0);
        assert_true(c.compared >= T * 50);
        tn_vecstore_stats_t st;
        tn_vecstore_stats(c.vs, &st);
        assert_true(st.rows > N / 2);
        tn_vecstore_destroy(c.vs); /* stops the scan */
    }
}

/*
 * The shared scan after a compaction moved the second scan thread's first row: each search must
 * see each row once. The thread's position, left where its last round began (row 1,500 of
 * 3,000), is off the block grid of its new range (from 1,124 of 2,248): the round that began
 * there used to end with a block that read rows 1,500-1,507 a second time, and the query for
 * row 1,500 got that row as its first two hits. Then every row's query, as one search each and
 * through the scan: the same hits.
 */
static void test_shared_after_compaction(void **state)
{
    TN_UNUSED(state);
    enum { D = 64, N = 3000 };
    tn_vecstore_t *vs = tn_vecstore_new(D);
    float *m = tn_xmalloc((size_t)N * D * sizeof(float));
    for (uint32_t i = 0; i < N; i++) {
        rand_vec(m + (size_t)i * D, D);
        char tk[24];
        snprintf(tk, sizeof(tk), "t%u", i / 4);
        assert_int_equal(put(vs, "A", tk, i % 4, NULL, NULL, m + (size_t)i * D), TN_OK);
    }
    assert_int_equal(tn_vecstore_scan_start(vs, 8, 64, 2), TN_OK);
    tn_vec_filter_t f = {"A", NULL, NULL, NULL, NULL, 0};
    tn_vec_hit_t a[2], b[2];
    size_t na = tn_vecstore_search_shared(vs, m, &f, 2, -2, a);
    tn_vec_hits_free(a, na);
    for (uint32_t t = 0; t < 188; t++) { /* 752 rows dead of 3,000: a compaction */
        char tk[24];
        snprintf(tk, sizeof(tk), "t%u", t);
        tn_vecstore_delete_ticket(vs, "A", tk);
    }
    tn_vecstore_stats_t st;
    tn_vecstore_stats(vs, &st);
    assert_int_equal(st.rows, N - 752);
    for (uint32_t n = 0; n < N - 752; n++) {
        uint32_t i = 752 + (n + 1500) % (N - 752); /* first: row 1,500 now (2,252 before) */
        const float *q = m + (size_t)i * D;
        na = tn_vecstore_search_shared(vs, q, &f, 2, -2, a);
        size_t nb = tn_vecstore_search(vs, q, &f, 2, -2, b);
        assert_int_equal(na, 2);
        assert_int_equal(nb, 2);
        char tk[24];
        snprintf(tk, sizeof(tk), "t%u", i / 4);
        assert_string_equal(a[0].ticket_id, tk);
        assert_int_equal(a[0].chunk_index, i % 4);
        assert_same_hits(a, b, 2);
        tn_vec_hits_free(a, na);
        tn_vec_hits_free(b, nb);
    }
    free(m);
    tn_vecstore_destroy(vs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_topk),
        cmocka_unit_test(test_two_pass_ids),
        cmocka_unit_test(test_ties_and_payload),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_min_score_and_zero),
        cmocka_unit_test(test_replace_trim_delete),
        cmocka_unit_test(test_compaction),
        cmocka_unit_test(test_search_many),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_fixed_point_precision),
        cmocka_unit_test(test_search_many_tombstones),
        cmocka_unit_test(test_kernels_agree),
        cmocka_unit_test(test_shared_interleaved),
        cmocka_unit_test(test_shared_after_compaction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
