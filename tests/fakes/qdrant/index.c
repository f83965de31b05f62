/* taina-fake-qdrant: keyword payload indexes (string value -> set of point indexes), kept in
 * step with the points, and the candidate points of a filter that pins an indexed field. */
#include <stdlib.h>
#include <string.h>

#include "qdrant.h"
#include "taina/mem.h"

/* ============================================================================================ */
/* Sets of point indexes: open addressing, linear probing, -1 = empty, no tombstones.            */

static size_t int_home(int32_t v, size_t mask)
{
    uint64_t x = (uint64_t)(uint32_t)v * 0x9e3779b97f4a7c15ULL;
    return (size_t)(x >> 32) & mask;
}

static void iset_free(iset_t *s)
{
    free(s->slot);
    memset(s, 0, sizeof(*s));
}

static size_t iset_pos(const iset_t *s, int32_t v)
{
    size_t mask = s->cap - 1, p = int_home(v, mask);
    while (s->slot[p] >= 0 && s->slot[p] != v)
        p = (p + 1) & mask;
    return p;
}

static void iset_grow(iset_t *s)
{
    int32_t *old = s->slot;
    size_t ocap = s->cap;
    s->cap = ocap ? ocap * 2 : 8;
    s->slot = tn_xmalloc(s->cap * sizeof(*s->slot));
    memset(s->slot, 0xff, s->cap * sizeof(*s->slot));
    for (size_t i = 0; i < ocap; i++) {
        if (old[i] >= 0)
            s->slot[iset_pos(s, old[i])] = old[i];
    }
    free(old);
}

static void iset_add(iset_t *s, int32_t v)
{
    if ((s->n + 1) * 2 > s->cap)
        iset_grow(s);
    size_t p = iset_pos(s, v);
    if (s->slot[p] < 0) {
        s->slot[p] = v;
        s->n++;
    }
}

static void iset_del(iset_t *s, int32_t v)
{
    if (!s->cap)
        return;
    size_t mask = s->cap - 1, i = iset_pos(s, v), j = i;
    if (s->slot[i] < 0)
        return;
    s->slot[i] = -1;
    s->n--;
    for (;;) { /* shift back the entries after the hole that may move into it */
        j = (j + 1) & mask;
        if (s->slot[j] < 0)
            return;
        size_t k = int_home(s->slot[j], mask);
        bool in = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!in) {
            s->slot[i] = s->slot[j];
            s->slot[j] = -1;
            i = j;
        }
    }
}

/* ============================================================================================ */
/* Keyword indexes: value -> set, open addressing over entries (val NULL = empty).              */

static uint64_t bytes_hash(const char *p, size_t n)
{
    uint64_t x = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        x = (x ^ (unsigned char)p[i]) * 1099511628211ULL;
    return x ^ (x >> 29);
}

static size_t kidx_pos(const kidx_t *k, const char *val, size_t len, uint64_t h)
{
    size_t mask = k->cap - 1, p = (size_t)h & mask;
    while (k->e[p].val &&
           !(k->e[p].h == h && k->e[p].len == len && memcmp(k->e[p].val, val, len) == 0))
        p = (p + 1) & mask;
    return p;
}

static void kidx_grow(kidx_t *k)
{
    kentry_t *old = k->e;
    size_t ocap = k->cap;
    k->cap = ocap ? ocap * 2 : 16;
    k->e = tn_xcalloc(k->cap, sizeof(*k->e));
    for (size_t i = 0; i < ocap; i++) {
        if (old[i].val)
            k->e[kidx_pos(k, old[i].val, old[i].len, old[i].h)] = old[i];
    }
    free(old);
}

/* Remove the (empty) entry at @p i, shifting back the ones after it. */
static void kidx_remove_at(kidx_t *k, size_t i)
{
    size_t mask = k->cap - 1, j = i;
    free(k->e[i].val);
    iset_free(&k->e[i].pts);
    memset(&k->e[i], 0, sizeof(k->e[i]));
    k->n--;
    for (;;) {
        j = (j + 1) & mask;
        if (!k->e[j].val)
            return;
        size_t home = (size_t)k->e[j].h & mask;
        bool in = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (!in) {
            k->e[i] = k->e[j];
            memset(&k->e[j], 0, sizeof(k->e[j]));
            i = j;
        }
    }
}

static const iset_t *kidx_get(const kidx_t *k, const char *val, size_t len)
{
    if (!k->cap)
        return NULL;
    const kentry_t *e = &k->e[kidx_pos(k, val, len, bytes_hash(val, len))];
    return e->val ? &e->pts : NULL;
}

static void kidx_add(kidx_t *k, const char *val, size_t len, int32_t pt)
{
    if ((k->n + 1) * 2 > k->cap)
        kidx_grow(k);
    uint64_t h = bytes_hash(val, len);
    kentry_t *e = &k->e[kidx_pos(k, val, len, h)];
    if (!e->val) {
        e->val = tn_xmalloc(len + 1);
        memcpy(e->val, val, len);
        e->val[len] = '\0';
        e->len = len;
        e->h = h;
        k->n++;
    }
    iset_add(&e->pts, pt);
}

static void kidx_del(kidx_t *k, const char *val, size_t len, int32_t pt)
{
    if (!k->cap)
        return;
    size_t p = kidx_pos(k, val, len, bytes_hash(val, len));
    if (!k->e[p].val)
        return;
    iset_del(&k->e[p].pts, pt);
    if (k->e[p].pts.n == 0)
        kidx_remove_at(k, p);
}

static void kidx_cleanup(kidx_t *k)
{
    for (size_t i = 0; i < k->cap; i++) {
        free(k->e[i].val);
        iset_free(&k->e[i].pts);
    }
    free(k->e);
    free(k->field);
}

/* Add (@p add) or remove point @p pt under every string value of @p payload at the field. */
static void kidx_point(kidx_t *k, json_t *payload, int32_t pt, bool add)
{
    if (!payload)
        return;
    json_t *vals = json_array();
    payload_values(payload, k->field, vals);
    size_t i;
    json_t *v;
    json_array_foreach(vals, i, v)
    {
        if (!json_is_string(v))
            continue;
        if (add)
            kidx_add(k, json_string_value(v), json_string_length(v), pt);
        else
            kidx_del(k, json_string_value(v), json_string_length(v), pt);
    }
    json_decref(vals);
}

/* ============================================================================================ */
/* Collection side                                                                              */

static long kidx_find(const coll_t *c, const char *field)
{
    for (size_t i = 0; i < c->nkidx; i++) {
        if (strcmp(c->kidx[i].field, field) == 0)
            return (long)i;
    }
    return -1;
}

void coll_index_keyword(coll_t *c, const char *field)
{
    if (kidx_find(c, field) >= 0)
        return;
    c->kidx = tn_xrealloc(c->kidx, (c->nkidx + 1) * sizeof(*c->kidx));
    kidx_t *k = &c->kidx[c->nkidx++];
    memset(k, 0, sizeof(*k));
    k->field = tn_xstrdup(field);
    for (size_t i = 0; i < c->n; i++)
        kidx_point(k, c->payloads[i], (int32_t)i, true);
}

void coll_index_drop(coll_t *c, const char *field)
{
    long i = kidx_find(c, field);
    if (i < 0)
        return;
    kidx_cleanup(&c->kidx[i]);
    c->kidx[i] = c->kidx[--c->nkidx];
}

void coll_index_free(coll_t *c)
{
    for (size_t i = 0; i < c->nkidx; i++)
        kidx_cleanup(&c->kidx[i]);
    free(c->kidx);
    c->kidx = NULL;
    c->nkidx = 0;
}

void coll_index_point(coll_t *c, size_t i, bool add)
{
    for (size_t k = 0; k < c->nkidx; k++)
        kidx_point(&c->kidx[k], c->payloads[i], (int32_t)i, add);
}

void coll_index_move(coll_t *c, size_t from, size_t to)
{
    for (size_t k = 0; k < c->nkidx; k++) {
        kidx_point(&c->kidx[k], c->payloads[from], (int32_t)from, false);
        kidx_point(&c->kidx[k], c->payloads[from], (int32_t)to, true);
    }
}

const iset_t *coll_index_lookup(const coll_t *c, const char *field, const char *val, size_t len,
                                bool *indexed)
{
    long i = kidx_find(c, field);
    *indexed = i >= 0;
    return i >= 0 ? kidx_get(&c->kidx[i], val, len) : NULL;
}

static int idx_cmp(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

size_t *coll_candidates(const coll_t *c, const qfilter_t *f, size_t *n)
{
    cand_t cd = {0};
    if (!f || !c->nkidx || !qfilter_candidates(f, c, &cd)) {
        free(cd.sets);
        *n = c->n;
        return NULL;
    }
    size_t *out = tn_xmalloc((cd.total ? cd.total : 1) * sizeof(*out)), m = 0;
    for (size_t s = 0; s < cd.nsets; s++) {
        const iset_t *set = cd.sets[s];
        for (size_t j = 0; j < set->cap; j++) {
            if (set->slot[j] >= 0)
                out[m++] = (size_t)set->slot[j];
        }
    }
    free(cd.sets);
    /* ascending and without repeats (should branches may overlap): the order of a full scan */
    qsort(out, m, sizeof(*out), idx_cmp);
    size_t u = 0;
    for (size_t j = 0; j < m; j++) {
        if (u == 0 || out[u - 1] != out[j])
            out[u++] = out[j];
    }
    *n = u;
    return out;
}
