/*
 * The vector store's shared scan (tn_vecstore_scan_start, tn_vecstore_search_shared in
 * vecstore.h); the store itself is vecstore.c.
 *
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
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "taina/mem.h"
#include "vecstore_int.h"

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
                    vs_lanes16(vs->qmat, d, vs->qsum, vs->qscale, wk->qp + g * (d / 4), t, ids, n,
                               sco, mask);
                else
                    vs_lanes8(vs->qmat, d, vs->qsum, vs->qscale,
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
                vs_idot_4q1r(qw[0], qw[1], qw[2], qw[3], vs->qmat + (size_t)row * d, d, out);
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
        q->rf = vs_resolve(vs, q->f);
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
        /* searches in flight: no writer until they are answered, so nrows holds still. Blocks
         * start at lo + a multiple of the block, so a search that joined at one comes round to
         * it again at a block's end: it sees each row once. A position left by another nrows
         * (a write moved lo) may be off that grid: start over at lo (seen twice, a row would be
         * two of a search's hits). */
        uint32_t nrows = vs->nrows, lo, hi;
        worker_range(sc, id, nrows, &lo, &hi);
        uint32_t from =
            wk->pos >= lo && wk->pos < hi && (wk->pos - lo) % sc->block == 0 ? wk->pos : lo;
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
    rfilter_t rf = vs_resolve(vs, f);
    int yes = rf.ok && vs_two_pass(vs, vs->trows[rf.tenant].n, k) &&
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
    size_t d = vs->dims, nc = vs_ncand(k), n = 0;
    float *q = tn_xmalloc(5 * d * sizeof(float)), *buf = q + d;
    if (vs_normalize(query, d, q) != 0) {
        free(q);
        return 0;
    }
    int16_t *qw = tn_xmalloc(d * sizeof(*qw));
    vs_quantize(q, d, qw);
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
        vs_rescore(vs, q, &qs.ah[0], &h, buf);
        n = vs_heap_emit(vs, &h, hits);
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
