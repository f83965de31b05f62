/* taina-fake-qdrant: point ids, collections in memory, exact search and scroll. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qdrant.h"
#include "taina/mem.h"

/* ============================================================================================ */
/* Point ids                                                                                    */

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = tolower(ch);
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* The forms of the Rust uuid crate: hyphenated, simple (32 hex), braced, urn:uuid:. */
static bool uuid_parse(const char *s, uint8_t out[16])
{
    size_t len = strlen(s);
    char hex[33];
    size_t nh = 0;
    if (len == 45 && strncasecmp(s, "urn:uuid:", 9) == 0) {
        s += 9;
        len -= 9;
    } else if (len == 38 && s[0] == '{' && s[37] == '}') {
        s++;
        len -= 2;
    }
    if (len == 36) {
        for (size_t i = 0; i < 36; i++) {
            if (i == 8 || i == 13 || i == 18 || i == 23) {
                if (s[i] != '-')
                    return false;
            } else {
                hex[nh++] = s[i];
            }
        }
    } else if (len == 32) {
        memcpy(hex, s, 32);
        nh = 32;
    } else {
        return false;
    }
    for (size_t i = 0; i < 16; i++) {
        int hi = hexval((unsigned char)hex[2 * i]), lo = hexval((unsigned char)hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

bool qid_parse(json_t *v, qid_t *out)
{
    memset(out, 0, sizeof(*out));
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0)
            return false;
        out->num = (uint64_t)json_integer_value(v);
        return true;
    }
    if (json_is_string(v) && uuid_parse(json_string_value(v), out->bytes)) {
        out->uuid = true;
        return true;
    }
    return false;
}

json_t *qid_json(const qid_t *id)
{
    if (!id->uuid)
        return json_integer((json_int_t)id->num);
    static const char hx[] = "0123456789abcdef";
    char s[37];
    size_t o = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            s[o++] = '-';
        s[o++] = hx[id->bytes[i] >> 4];
        s[o++] = hx[id->bytes[i] & 15];
    }
    s[o] = '\0';
    return json_string(s);
}

int qid_cmp(const qid_t *a, const qid_t *b)
{
    if (a->uuid != b->uuid)
        return a->uuid ? 1 : -1;
    if (!a->uuid)
        return a->num < b->num ? -1 : a->num > b->num;
    return memcmp(a->bytes, b->bytes, 16);
}

uint64_t qid_hash(const qid_t *id)
{
    uint64_t x;
    if (!id->uuid) {
        x = id->num + 0x9e3779b97f4a7c15ULL;
    } else {
        x = 1469598103934665603ULL;
        for (size_t i = 0; i < 16; i++)
            x = (x ^ id->bytes[i]) * 1099511628211ULL;
    }
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

void qid_describe(json_t *v, char *buf, size_t len)
{
    char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    snprintf(buf, len, "%.80s", t ? t : "?");
    free(t);
}

/* ============================================================================================ */
/* Distances                                                                                    */

static const char *const dist_names[] = {"Cosine", "Dot", "Euclid", "Manhattan"};

const char *dist_name(dist_t d)
{
    return dist_names[d];
}

bool dist_parse(const char *s, dist_t *out)
{
    for (size_t i = 0; i < TN_ARRAY_LEN(dist_names); i++) {
        if (strcmp(s, dist_names[i]) == 0) {
            *out = (dist_t)i;
            return true;
        }
    }
    return false;
}

void vec_normalize(float *v, size_t dim)
{
    double s = 0;
    for (size_t i = 0; i < dim; i++)
        s += (double)v[i] * v[i];
    if (s <= 0)
        return;
    float inv = (float)(1.0 / sqrt(s));
    for (size_t i = 0; i < dim; i++)
        v[i] *= inv;
}

float dist_score(dist_t d, const float *q, const float *v, size_t dim)
{
    float s = 0;
    switch (d) {
    case DIST_COSINE:
    case DIST_DOT: {
        /* eight partial sums: lets the compiler use SIMD without -ffast-math */
        float p[8] = {0};
        size_t i = 0;
        for (; i + 8 <= dim; i += 8) {
            for (size_t j = 0; j < 8; j++)
                p[j] += q[i + j] * v[i + j];
        }
        for (; i < dim; i++)
            s += q[i] * v[i];
        return s + ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
    }
    case DIST_EUCLID:
        for (size_t i = 0; i < dim; i++) {
            float x = q[i] - v[i];
            s += x * x;
        }
        return sqrtf(s);
    case DIST_MANHATTAN:
        for (size_t i = 0; i < dim; i++)
            s += fabsf(q[i] - v[i]);
        return s;
    }
    return s;
}

bool dist_better(dist_t d, float a, float b)
{
    return (d == DIST_COSINE || d == DIST_DOT) ? a > b : a < b;
}

/* ============================================================================================ */
/* Collections                                                                                  */

coll_t *coll_new(const char *name, size_t dim, dist_t dist)
{
    coll_t *c = tn_xcalloc(1, sizeof(*c));
    c->name = tn_xstrdup(name);
    c->dim = dim;
    c->dist = dist;
    c->nslots = 16;
    c->slots = tn_xmalloc(c->nslots * sizeof(*c->slots));
    memset(c->slots, 0xff, c->nslots * sizeof(*c->slots));
    c->payload_schema = json_object();
    return c;
}

void coll_free(coll_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        json_decref(c->payloads[i]);
    free(c->ids);
    free(c->payloads);
    free(c->versions);
    free(c->vecs);
    free(c->slots);
    coll_index_free(c);
    json_decref(c->payload_schema);
    json_decref(c->config);
    free(c->name);
    free(c);
}

/* The slot holding @p id, or the empty slot where it would go. */
static size_t slot_of(const coll_t *c, const qid_t *id)
{
    size_t mask = c->nslots - 1;
    size_t s = (size_t)qid_hash(id) & mask;
    while (c->slots[s] >= 0 && qid_cmp(&c->ids[c->slots[s]], id) != 0)
        s = (s + 1) & mask;
    return s;
}

long coll_find(const coll_t *c, const qid_t *id)
{
    return c->slots[slot_of(c, id)];
}

static void rehash(coll_t *c, size_t nslots)
{
    free(c->slots);
    c->nslots = nslots;
    c->slots = tn_xmalloc(nslots * sizeof(*c->slots));
    memset(c->slots, 0xff, nslots * sizeof(*c->slots));
    for (size_t i = 0; i < c->n; i++)
        c->slots[slot_of(c, &c->ids[i])] = (int32_t)i;
}

void coll_upsert(coll_t *c, const qid_t *id, const float *vec, json_t *payload, uint64_t version)
{
    size_t s = slot_of(c, id);
    long i = c->slots[s];
    if (i < 0) {
        if (c->n == c->cap) {
            c->cap = c->cap ? c->cap * 2 : 64;
            c->ids = tn_xrealloc(c->ids, c->cap * sizeof(*c->ids));
            c->payloads = tn_xrealloc(c->payloads, c->cap * sizeof(*c->payloads));
            c->versions = tn_xrealloc(c->versions, c->cap * sizeof(*c->versions));
            c->vecs = tn_xrealloc(c->vecs, c->cap * c->dim * sizeof(*c->vecs));
        }
        i = (long)c->n++;
        c->ids[i] = *id;
        c->payloads[i] = NULL;
        c->slots[s] = (int32_t)i;
        if (c->n * 2 > c->nslots)
            rehash(c, c->nslots * 2);
    } else {
        coll_index_point(c, (size_t)i, false);
    }
    float *v = c->vecs + (size_t)i * c->dim;
    memcpy(v, vec, c->dim * sizeof(*v));
    if (c->dist == DIST_COSINE)
        vec_normalize(v, c->dim);
    json_decref(c->payloads[i]);
    c->payloads[i] = payload;
    c->versions[i] = version;
    coll_index_point(c, (size_t)i, true);
}

/* Remove the entry of slot @p i (linear probing: shift back the entries after it). */
static void slot_delete(coll_t *c, size_t i)
{
    size_t mask = c->nslots - 1, j = i;
    c->slots[i] = -1;
    for (;;) {
        j = (j + 1) & mask;
        if (c->slots[j] < 0)
            return;
        size_t k = (size_t)qid_hash(&c->ids[c->slots[j]]) & mask;
        /* can the entry at j move to i? (its home k is not cyclically in (i, j]) */
        bool in = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!in) {
            c->slots[i] = c->slots[j];
            c->slots[j] = -1;
            i = j;
        }
    }
}

void coll_remove_at(coll_t *c, size_t i)
{
    slot_delete(c, slot_of(c, &c->ids[i]));
    coll_index_point(c, i, false);
    json_decref(c->payloads[i]);
    size_t last = c->n - 1;
    if (i != last) {
        coll_index_move(c, last, i);
        c->ids[i] = c->ids[last];
        c->payloads[i] = c->payloads[last];
        c->versions[i] = c->versions[last];
        memcpy(c->vecs + i * c->dim, c->vecs + last * c->dim, c->dim * sizeof(float));
        c->slots[slot_of(c, &c->ids[i])] = (int32_t)i;
    }
    c->n--;
}

/* ============================================================================================ */
/* Search: a bounded heap whose root is the worst hit kept.                                     */

/* Is hit @p a worse than @p b (score, then the larger id)? */
static bool hit_worse(const coll_t *c, const hit_t *a, const hit_t *b)
{
    if (a->score != b->score)
        return dist_better(c->dist, b->score, a->score);
    return qid_cmp(&c->ids[a->idx], &c->ids[b->idx]) > 0;
}

static void heap_down(const coll_t *c, hit_t *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && hit_worse(c, &h[l], &h[w]))
            w = l;
        if (r < n && hit_worse(c, &h[r], &h[w]))
            w = r;
        if (w == i)
            return;
        hit_t t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

static void heap_up(const coll_t *c, hit_t *h, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!hit_worse(c, &h[i], &h[p]))
            return;
        hit_t t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

/* Heap-sort the kept hits best first: pop the worst to the end. */
static void heap_sort(const coll_t *c, hit_t *h, size_t n)
{
    for (size_t m = n; m > 1; m--) {
        hit_t t = h[0];
        h[0] = h[m - 1];
        h[m - 1] = t;
        heap_down(c, h, m - 1, 0);
    }
}

size_t coll_search(const coll_t *c, const float *q, const qfilter_t *f, bool thr_set, float thr,
                   size_t k, hit_t **out)
{
    hit_t *h = tn_xmalloc((k ? k : 1) * sizeof(*h));
    size_t n = 0, ncand;
    size_t *cand = coll_candidates(c, f, &ncand);
    for (size_t j = 0; j < ncand && k > 0; j++) {
        size_t i = cand ? cand[j] : j;
        if (f && !qfilter_match(f, &c->ids[i], c->payloads[i]))
            continue;
        hit_t x = {i, dist_score(c->dist, q, c->vecs + i * c->dim, c->dim)};
        if (thr_set && dist_better(c->dist, thr, x.score))
            continue;
        if (n < k) {
            h[n++] = x;
            heap_up(c, h, n - 1);
        } else if (hit_worse(c, &h[0], &x)) {
            h[0] = x;
            heap_down(c, h, n, 0);
        }
    }
    free(cand);
    heap_sort(c, h, n);
    *out = h;
    return n;
}

/* Scroll: the same heap with scores all equal, so only ids decide. */
size_t coll_scroll(const coll_t *c, const qfilter_t *f, const qid_t *from, size_t k, size_t **out)
{
    hit_t *h = tn_xmalloc((k ? k : 1) * sizeof(*h));
    size_t n = 0, ncand;
    size_t *cand = coll_candidates(c, f, &ncand);
    for (size_t j = 0; j < ncand && k > 0; j++) {
        size_t i = cand ? cand[j] : j;
        if (from && qid_cmp(&c->ids[i], from) < 0)
            continue;
        if (f && !qfilter_match(f, &c->ids[i], c->payloads[i]))
            continue;
        hit_t x = {i, 0};
        if (n < k) {
            h[n++] = x;
            heap_up(c, h, n - 1);
        } else if (hit_worse(c, &h[0], &x)) {
            h[0] = x;
            heap_down(c, h, n, 0);
        }
    }
    free(cand);
    heap_sort(c, h, n);
    size_t *idx = tn_xmalloc((n ? n : 1) * sizeof(*idx));
    for (size_t i = 0; i < n; i++)
        idx[i] = h[i].idx;
    free(h);
    *out = idx;
    return n;
}
