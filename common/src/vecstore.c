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
 * Dot products (vecstore_kernels.c): GCC vector extensions (8 floats), 4 independent
 * accumulators per call (4 rows for one query, or 4 queries for one row), on rows decoded from
 * the fixed point, cloned for AVX2 where the compiler supports target_clones. Both kernels do the
 * same operations in the same order for each (query, row) pair, so search and search_many give
 * bitwise identical scores. The int8 first pass has portable kernels and, on x86-64 CPUs with
 * VNNI (checked at run time), one for a single query (64 dims an instruction) and lane kernels
 * for batches (16 or 8 queries an instruction, the row read once for all); its sums are exact
 * integers, so every kernel picks the same candidates with the same scores.
 *
 * The shared scan (vecstore_scan.c): scan threads read the rows round and round for the searches
 * in their lanes, which join and leave at block boundaries; writers wait for them (write_begin).
 * The three files share vecstore_int.h.
 */
#include "taina/vecstore.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "taina/mem.h"
#include "vecstore_int.h"

/* ------------------------------------------------------------------------------------------ */
/* Structures (the shared ones are in vecstore_int.h) */

struct chunk {
    uint32_t chunk_index, start, end;
    uint32_t size; /* bytes of this allocation */
    char *title;   /* inside this allocation, or NULL */
    char text[];   /* text, then title */
};

typedef struct tkchunk {
    uint32_t chunk_index;
    uint32_t row;
} tkchunk_t;

struct ticket {
    uint64_t hash;
    uint32_t tenant;
    uint32_t n, cap;
    tkchunk_t *ch; /* sorted by chunk_index */
    char id[];
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
    vs->lanes = vs_lane_kernels();
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
    vs->lanes = vs_lane_kernels() & mask;
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
    if (vs_normalize(v, vs->dims, nv) != 0) {
        free(nv);
        return TN_ERR_INVALID;
    }
    int8_t *q8 = tn_xmalloc(vs->dims);
    int16_t *lo = tn_xmalloc(vs->dims * sizeof(*lo));
    float qs = vs_encode(nv, vs->dims, q8, lo);
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
size_t vs_heap_emit(const tn_vecstore_t *vs, heap_t *h, tn_vec_hit_t *hits)
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

rfilter_t vs_resolve(const tn_vecstore_t *vs, const tn_vec_filter_t *f)
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

static inline int row_ok(const vrow_t *r, const rfilter_t *f)
{
    return r->tk && meta_ok(r, f);
}

/* Row @p row decoded into @p out (dims floats). */
static void row_floats(const tn_vecstore_t *vs, uint32_t row, float *out)
{
    size_t d = vs->dims;
    vs_decode(vs->qmat + (size_t)row * d, vs->lo + (size_t)row * d, vs->qscale[row], d, out);
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
        vs_dot_1q4r(q, buf, buf + (m > 1 ? d : 0), buf + (m > 2 ? 2 * d : 0),
                    buf + (m > 3 ? 3 * d : 0), d, out);
        for (size_t j = 0; j < m; j++)
            heap_push(h, out[j], ids[i + j]);
    }
}

/* Score @p n rows (ids) against one int8 query (approximate: scaled int8 dot products). @p qu:
 * the query for vs_vdot_1q4r, or NULL. */
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
            vs_vdot_1q4r(qu, r[0], r[1], r[2], r[3], d, out);
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
        vs_idot_1q4r(qw, vs->qmat + (size_t)ids[i] * d, vs->qmat + (size_t)ids[i + 1] * d,
                     vs->qmat + (size_t)ids[i + 2] * d, vs->qmat + (size_t)ids[i + 3] * d, d, out);
        for (int j = 0; j < 4; j++)
            heap_push(h, (float)out[j] * vs->qscale[ids[i + j]], ids[i + j]);
    }
    if (i < n) {
        const int8_t *r[4];
        for (size_t j = 0; j < 4; j++)
            r[j] = vs->qmat + (size_t)ids[i + (i + j < n ? j : 0)] * d;
        vs_idot_1q4r(qw, r[0], r[1], r[2], r[3], d, out);
        for (size_t j = 0; i + j < n; j++)
            heap_push(h, (float)out[j] * vs->qscale[ids[i + j]], ids[i + j]);
    }
}

size_t vs_ncand(size_t k)
{
    return k > 16 ? 4 * k : 64;
}

int vs_two_pass(const tn_vecstore_t *vs, size_t rows, size_t k)
{
    return vs->dims >= Q8_MIN_DIMS && vs->dims <= Q8_MAX_DIMS && rows > vs_ncand(k);
}

static int u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Rescore the candidates in @p ah exactly into @p h. */
void vs_rescore(const tn_vecstore_t *vs, const float *q, const heap_t *ah, heap_t *h, float *buf)
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
        return vs_heap_emit(vs, h, hits);
    }
    const tenant_rows_t *tr = &vs->trows[f->tenant];
    if (vs_two_pass(vs, tr->n, h->k)) {
        size_t nc = vs_ncand(h->k);
        heap_t ah = {tn_xmalloc(nc * sizeof(cand_t)), 0, nc, -INFINITY};
        for (size_t at = 0; at < tr->n; at += TILE) {
            size_t n = tile_rows(vs, tr, at, f, ids);
            scan_rows_q8(vs, qw, qu, ids, n, &ah);
        }
        vs_rescore(vs, q, &ah, h, buf);
        free(ah.c);
        return vs_heap_emit(vs, h, hits);
    }
    for (size_t at = 0; at < tr->n; at += TILE) {
        size_t n = tile_rows(vs, tr, at, f, ids);
        scan_rows(vs, q, ids, n, h, buf);
    }
    return vs_heap_emit(vs, h, hits);
}

size_t tn_vecstore_search(tn_vecstore_t *vs, const float *query, const tn_vec_filter_t *f, size_t k,
                          float min_score, tn_vec_hit_t *hits)
{
    if (!vs || !query || !f || !f->tenant_id || k == 0 || !hits)
        return 0;
    float *q = tn_xmalloc(5 * vs->dims * sizeof(float)), *buf = q + vs->dims;
    if (vs_normalize(query, vs->dims, q) != 0) {
        free(q);
        return 0;
    }
    int16_t *qw = tn_xmalloc(vs->dims * sizeof(*qw));
    vs_quantize(q, vs->dims, qw);
    uint8_t *qu = NULL; /* for vs_vdot_1q4r: padded to 64 bytes */
    if (vs->lanes & TN_VEC_KERNEL_VNNI512) {
        qu = tn_xcalloc((vs->dims + 63) / 64 * 64, 1);
        for (size_t i = 0; i < vs->dims; i++)
            qu[i] = (uint8_t)(qw[i] + 128);
    }
    cand_t small[64];
    heap_t h = {k <= 64 ? small : tn_xmalloc(k * sizeof(cand_t)), 0, k, min_score};
    pthread_rwlock_rdlock(&vs->lock);
    rfilter_t rf = vs_resolve(vs, f);
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
                vs_lanes16(vs->qmat, d, vs->qsum, vs->qscale, qp + g * d4 * 16, t, ids, n, sc,
                           mask);
            else
                vs_lanes8(vs->qmat, d, vs->qsum, vs->qscale, qp + g * d4 * 16, t, ids, n, sc, mask);
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
 * passes (vs_two_pass()), that pass is over the int8 rows into @p aheaps (candidates), which are
 * then rescored query by query. @p buf: 4 x dims floats.
 */
static void scan_many(const tn_vecstore_t *vs, const float *qs, const int16_t *qws,
                      const rfilter_t *rf, const size_t *qi, size_t nq, heap_t *heaps,
                      heap_t *aheaps, float *buf)
{
    size_t d = vs->dims;
    const tenant_rows_t *tr = &vs->trows[rf[qi[0]].tenant];
    rfilter_t live = {.ok = 1, .tenant = rf[qi[0]].tenant};
    int q8 = vs_two_pass(vs, tr->n, heaps[qi[0]].k);
#ifdef VS_LANES
    if (q8 && vs->lanes && nq >= 2 && d % 4 == 0 && nq <= 64 * 8) {
        scan_lanes(vs, qws, rf, qi, nq, aheaps);
        for (size_t j = 0; j < nq; j++)
            vs_rescore(vs, qs + qi[j] * d, &aheaps[qi[j]], &heaps[qi[j]], buf);
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
                    vs_idot_4q1r(qw[0], qw[1], qw[2], qw[3], vs->qmat + (size_t)ids[i] * d, d,
                                 iout);
                    for (size_t j = 0; j < 4; j++)
                        out[j] = (float)iout[j] * vs->qscale[ids[i]];
                } else {
                    row_floats(vs, ids[i], buf);
                    vs_dot_4q1r(q[0], q[1], q[2], q[3], buf, d, out);
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
            vs_rescore(vs, qs + qi[j] * d, &aheaps[qi[j]], &heaps[qi[j]], buf);
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
        valid[i] = vs_normalize(queries + i * d, d, qs + i * d) == 0;
        if (valid[i])
            vs_quantize(qs + i * d, d, qws + i * d);
    }
    size_t nc = vs_ncand(k);
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
        rf[i] = vs_resolve(vs, &f[i]);
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
            counts[qi[j]] = vs_heap_emit(vs, &heaps[qi[j]], hits + qi[j] * k);
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
