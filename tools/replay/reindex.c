/* taina-replay reindex: tickets.embedded -> a new Qdrant collection (no re-embedding), point
 * count verified, then the alias switched in one atomic request.
 *
 * The log is read once, in batches. Per ticket the tool keeps which chunk indexes are live (a
 * bitset) and which of them are already in the new collection: a chunk record sets its bit
 * and trims the bits at or above its chunk_count (the ticket got shorter), a deleted record
 * clears them all, so the latest record per point id wins and nothing deleted comes back. At
 * each flush the points that went away since the last flush are deleted first (one filter:
 * that ticket's chunk_index >= the lowest index gone), then the batch's live points are
 * upserted. Memory: a few words per ticket, plus one batch of points. */
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "replay.h"
#include "taina/clock.h"
#include "taina/embed.h"
#include "taina/lifecycle.h"
#include "taina/log.h"
#include "taina/mem.h"

#define MAX_CHUNKS 10001 /* tickets.embedded.schema.json: chunk_count maximum */

/* What the tickets.embedded record carries besides the payload (schema fields of the record
 * itself); every other field is the point's payload, as the embedder writes it. */
static const char *const not_payload[] = {
    "schema_version", "chunk_count", "embedded_at", "point_id", "dims", "vector", "deleted"};

typedef struct ticket {
    char *key; /* tenant \x1f ticket */
    char *tenant, *id;
    uint64_t *live, *flushed;
    uint32_t nwords;
    bool touched; /* changed since the last flush */
} ticket_t;

typedef struct pending {
    ticket_t *t;
    uint32_t index;
    bool removed;
    char id[48];
    float *vec;
    char *payload;
} pending_t;

typedef struct reindex {
    replay_t *rp;
    tn_qdrant_t *q;
    const char *coll;
    ticket_t **slots; /* open addressing */
    size_t nslots, ntickets;
    pending_t *pend;
    size_t npend, cap;
    char *model; /* the model being indexed */
    size_t dims;
    bool created;
    uint64_t records, deletes, skipped_model, bad, upserted, delete_requests;
} reindex_t;

/* ---------------------------------------------------------------------------------------------
 * Tickets */

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void grow(reindex_t *x)
{
    size_t n = x->nslots ? x->nslots * 2 : 1024;
    ticket_t **s = tn_xcalloc(n, sizeof(*s));
    for (size_t i = 0; i < x->nslots; i++) {
        if (!x->slots[i])
            continue;
        size_t j = fnv1a(x->slots[i]->key) & (n - 1);
        while (s[j])
            j = (j + 1) & (n - 1);
        s[j] = x->slots[i];
    }
    free(x->slots);
    x->slots = s;
    x->nslots = n;
}

static ticket_t *ticket_get(reindex_t *x, const char *tenant, const char *id)
{
    char *key = tn_xasprintf("%s\x1f%s", tenant, id);
    if ((x->ntickets + 1) * 10 >= x->nslots * 7)
        grow(x);
    size_t j = fnv1a(key) & (x->nslots - 1);
    while (x->slots[j] && strcmp(x->slots[j]->key, key) != 0)
        j = (j + 1) & (x->nslots - 1);
    if (x->slots[j]) {
        free(key);
        return x->slots[j];
    }
    ticket_t *t = tn_xcalloc(1, sizeof(*t));
    t->key = key;
    t->tenant = tn_xstrdup(tenant);
    t->id = tn_xstrdup(id);
    x->slots[j] = t;
    x->ntickets++;
    return t;
}

static void bits_ensure(ticket_t *t, uint32_t index)
{
    uint32_t need = index / 64 + 1;
    if (need <= t->nwords)
        return;
    t->live = tn_xrealloc(t->live, need * sizeof(uint64_t));
    t->flushed = tn_xrealloc(t->flushed, need * sizeof(uint64_t));
    memset(t->live + t->nwords, 0, (need - t->nwords) * sizeof(uint64_t));
    memset(t->flushed + t->nwords, 0, (need - t->nwords) * sizeof(uint64_t));
    t->nwords = need;
}

/* Clear the live bits at and above @p from (and drop such points of the open batch). */
static void trim(reindex_t *x, ticket_t *t, uint32_t from)
{
    for (uint32_t w = from / 64; w < t->nwords; w++) {
        uint64_t keep = w == from / 64 && from % 64 ? (UINT64_C(1) << (from % 64)) - 1 : 0;
        t->live[w] &= keep;
    }
    for (size_t i = 0; i < x->npend; i++)
        if (x->pend[i].t == t && x->pend[i].index >= from && !x->pend[i].removed) {
            x->pend[i].removed = true;
            free(x->pend[i].vec);
            free(x->pend[i].payload);
            x->pend[i].vec = NULL;
            x->pend[i].payload = NULL;
        }
    t->touched = true;
}

static uint64_t popcount_live(const ticket_t *t)
{
    uint64_t n = 0;
    for (uint32_t w = 0; w < t->nwords; w++)
        n += (uint64_t)__builtin_popcountll(t->live[w]);
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * Flush: deletes of what went away, then upserts */

static tn_err_t ensure_created(reindex_t *x, char *err, size_t errlen)
{
    if (x->created)
        return TN_OK;
    tn_err_t rc = tn_qdrant_ensure_collection(x->q, x->coll, x->dims, err, errlen);
    x->created = rc == TN_OK;
    return rc;
}

static tn_err_t flush(reindex_t *x, char *err, size_t errlen)
{
    tn_err_t rc = TN_OK;
    if (!x->npend && !x->ntickets)
        return TN_OK;
    if (x->dims && (rc = ensure_created(x, err, errlen)) != TN_OK)
        return rc;
    json_t *should = json_array();
    for (size_t i = 0; i < x->nslots; i++) {
        ticket_t *t = x->slots[i];
        if (!t || !t->touched)
            continue;
        uint32_t gone = UINT32_MAX;
        for (uint32_t w = 0; w < t->nwords && gone == UINT32_MAX; w++) {
            uint64_t g = t->flushed[w] & ~t->live[w];
            if (g)
                gone = w * 64 + (uint32_t)__builtin_ctzll(g);
        }
        if (gone != UINT32_MAX)
            json_array_append_new(should,
                                  json_pack("{s:[{s:s, s:{s:s}}, {s:s, s:{s:s}}, {s:s, s:{s:I}}]}",
                                            "must", "key", "tenant_id", "match", "value", t->tenant,
                                            "key", "ticket_id", "match", "value", t->id, "key",
                                            "chunk_index", "range", "gte", (json_int_t)gone));
    }
    if (json_array_size(should) && x->created) {
        json_t *filter = json_pack("{s:O}", "should", should);
        rc = tn_qdrant_delete_filter(x->q, x->coll, filter, err, errlen);
        json_decref(filter);
        x->delete_requests++;
    }
    json_decref(should);
    if (rc != TN_OK)
        return rc;
    tn_qdrant_point_t *pts = tn_xcalloc(x->npend + 1, sizeof(*pts));
    size_t n = 0;
    for (size_t i = 0; i < x->npend; i++)
        if (!x->pend[i].removed)
            pts[n++] = (tn_qdrant_point_t){x->pend[i].id, x->pend[i].vec, x->dims, NULL,
                                           x->pend[i].payload};
    if (n)
        rc = tn_qdrant_upsert(x->q, x->coll, pts, n, err, errlen);
    free(pts);
    if (rc != TN_OK)
        return rc;
    x->upserted += n;
    for (size_t i = 0; i < x->npend; i++) {
        free(x->pend[i].vec);
        free(x->pend[i].payload);
    }
    x->npend = 0;
    for (size_t i = 0; i < x->nslots; i++) {
        ticket_t *t = x->slots[i];
        if (t && t->touched) {
            memcpy(t->flushed, t->live, t->nwords * sizeof(uint64_t));
            t->touched = false;
        }
    }
    return TN_OK;
}

/* ---------------------------------------------------------------------------------------------
 * One record */

static const char *sfield(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static char *payload_of(json_t *v)
{
    json_t *p = json_deep_copy(v);
    for (size_t i = 0; i < TN_ARRAY_LEN(not_payload); i++)
        json_object_del(p, not_payload[i]);
    char *s = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    return s;
}

/* Apply one tickets.embedded value. TN_ERR_CONFIG when a second model shows up without --model. */
static tn_err_t apply(reindex_t *x, const tn_kafka_msg_t *m, char *err, size_t errlen)
{
    json_t *v = json_loadb(m->value, m->value_len, 0, NULL);
    const char *tenant = sfield(v, "tenant_id"), *id = sfield(v, "ticket_id");
    json_t *ci = json_object_get(v, "chunk_index"), *cc = json_object_get(v, "chunk_count");
    tn_err_t rc = TN_OK;
    x->records++;
    if (!tenant || !id || !json_is_integer(ci) || json_integer_value(ci) < 0 ||
        json_integer_value(ci) >= MAX_CHUNKS) {
        x->bad++;
        goto out;
    }
    if (json_is_true(json_object_get(v, "deleted"))) {
        ticket_t *t = ticket_get(x, tenant, id);
        trim(x, t, 0);
        x->deletes++;
        goto out;
    }
    const char *model = sfield(v, "model"), *b64 = sfield(v, "vector"),
               *pid = sfield(v, "point_id");
    if (!model || !b64 || !pid || strlen(pid) >= sizeof(x->pend[0].id)) {
        x->bad++;
        goto out;
    }
    if (!x->model) {
        x->model = tn_xstrdup(model);
    } else if (strcmp(model, x->model) != 0) {
        if (*x->rp->cfg->model) {
            x->skipped_model++;
            goto out;
        }
        snprintf(err, errlen,
                 "%s holds vectors of models %s and %s: pass --model to pick one (re-embedding "
                 "with a new model writes new records for the same points)",
                 m->topic, x->model, model);
        rc = TN_ERR_CONFIG;
        goto out;
    }
    size_t dims = 0;
    float *vec = tn_embed_vector_from_b64(b64, strlen(b64), &dims);
    if (!vec || !dims || (x->dims && dims != x->dims)) {
        free(vec);
        x->bad++;
        goto out;
    }
    x->dims = dims;
    uint32_t index = (uint32_t)json_integer_value(ci);
    ticket_t *t = ticket_get(x, tenant, id);
    bits_ensure(t, index);
    /* An earlier point of the same id in this batch is superseded. */
    for (size_t i = 0; i < x->npend; i++)
        if (x->pend[i].t == t && x->pend[i].index == index && !x->pend[i].removed) {
            x->pend[i].removed = true;
            free(x->pend[i].vec);
            free(x->pend[i].payload);
            x->pend[i].vec = NULL;
            x->pend[i].payload = NULL;
        }
    if (x->npend == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 256;
        x->pend = tn_xrealloc(x->pend, x->cap * sizeof(*x->pend));
    }
    pending_t *p = &x->pend[x->npend++];
    memset(p, 0, sizeof(*p));
    p->t = t;
    p->index = index;
    snprintf(p->id, sizeof(p->id), "%s", pid);
    p->vec = vec;
    p->payload = payload_of(v);
    t->live[index / 64] |= UINT64_C(1) << (index % 64);
    t->touched = true;
    if (json_is_integer(cc) && json_integer_value(cc) >= 0 &&
        json_integer_value(cc) < MAX_CHUNKS + 1)
        trim(x, t, (uint32_t)json_integer_value(cc));
out:
    json_decref(v);
    return rc;
}

static void reindex_free(reindex_t *x)
{
    for (size_t i = 0; i < x->nslots; i++) {
        ticket_t *t = x->slots[i];
        if (!t)
            continue;
        free(t->key);
        free(t->tenant);
        free(t->id);
        free(t->live);
        free(t->flushed);
        free(t);
    }
    free(x->slots);
    for (size_t i = 0; i < x->npend; i++) {
        free(x->pend[i].vec);
        free(x->pend[i].payload);
    }
    free(x->pend);
    free(x->model);
}

/* ---------------------------------------------------------------------------------------------
 * The command */

tn_err_t replay_reindex_run(replay_t *rp)
{
    const replay_cfg_t *c = rp->cfg;
    char err[1024] = "", target[256] = "";
    tn_err_t rc = TN_ERR_KAFKA;
    reindex_t x = {.rp = rp, .coll = c->collection};
    tn_kafka_admin_t *a = NULL;
    tn_kafka_reader_t *rd = NULL;
    tn_kafka_range_t *ranges = NULL;
    int32_t nparts = 0;
    bool truncated = false;
    tn_qdrant_opts_t qo = {
        .url = c->qdrant_url, .api_key = c->qdrant_api_key, .timeout_ms = c->qdrant_timeout_ms};
    x.q = tn_qdrant_new(&qo, err, sizeof(err));
    if (!x.q) {
        rc = TN_ERR_CONFIG;
        goto out;
    }
    /* Never write into what readers use now. */
    rc = tn_qdrant_alias_target(x.q, c->alias, target, sizeof(target), err, sizeof(err));
    if (rc != TN_OK && rc != TN_ERR_NOT_FOUND)
        goto out;
    if (!strcmp(target, c->collection)) {
        snprintf(err, sizeof(err), "alias %s already points at %s: pick a new collection name",
                 c->alias, c->collection);
        rc = TN_ERR_EXISTS;
        goto out;
    }
    a = tn_kafka_admin_new(&rp->kopts, NULL, err, sizeof(err));
    if (!a) {
        rc = TN_ERR_KAFKA;
        goto out;
    }
    rc = tn_kafka_admin_partition_count(a, c->source, &nparts, err, sizeof(err));
    if (rc != TN_OK)
        goto out;
    ranges = tn_xcalloc((size_t)nparts, sizeof(*ranges));
    uint64_t total = 0;
    for (int32_t p = 0; p < nparts; p++) {
        int64_t lo, hi;
        rc = tn_kafka_admin_watermarks(a, c->source, p, &lo, &hi, err, sizeof(err));
        if (rc != TN_OK)
            goto out;
        truncated |= lo > 0;
        ranges[p] = (tn_kafka_range_t){p, lo, hi};
        total += (uint64_t)(hi - lo);
    }
    if (truncated)
        fprintf(rp->err,
                "taina-replay: warning: %s no longer starts at offset 0 in some partition "
                "(retention, or devstack's ~5 MB per partition): chunks written only before that "
                "are missing from the log\n",
                c->source);
    rd = tn_kafka_reader_new(&rp->kopts, c->source, ranges, (size_t)nparts, err, sizeof(err));
    if (!rd) {
        rc = TN_ERR_KAFKA;
        goto out;
    }
    if (*c->model)
        x.model = tn_xstrdup(c->model);
    replay_progress_t pg;
    replay_progress_start(&pg, "reindex", total);
    int64_t idle_since = tn_clock_mono_ms();
    rc = TN_OK;
    while (rc == TN_OK && !tn_kafka_reader_done(rd) && !tn_lifecycle_is_stopping()) {
        tn_kafka_msg_t m;
        tn_err_t prc = tn_kafka_reader_poll(rd, 200, &m);
        if (prc == TN_ERR_FATAL) {
            snprintf(err, sizeof(err), "reading %s failed", c->source);
            rc = TN_ERR_KAFKA;
            break;
        }
        if (prc != TN_OK) {
            if (tn_clock_mono_ms() - idle_since > 60000) {
                snprintf(err, sizeof(err), "no record from %s for 60 s before its end offsets",
                         c->source);
                rc = TN_ERR_TIMEOUT;
            }
            continue;
        }
        idle_since = tn_clock_mono_ms();
        pg.done++;
        rc = apply(&x, &m, err, sizeof(err));
        tn_kafka_msg_release(&m);
        if (rc == TN_OK && x.npend >= (size_t)c->batch)
            rc = flush(&x, err, sizeof(err));
        replay_progress_tick(rp, &pg, false);
    }
    if (rc == TN_OK && tn_lifecycle_is_stopping()) {
        snprintf(err, sizeof(err), "interrupted: %s is incomplete and the alias unchanged",
                 c->collection);
        rc = TN_ERR_STOPPED;
    }
    if (rc == TN_OK)
        rc = flush(&x, err, sizeof(err));
    replay_progress_tick(rp, &pg, true);
    if (rc != TN_OK)
        goto out;
    if (!x.created) {
        snprintf(err, sizeof(err), "%s holds no chunk vectors%s%s: nothing to index", c->source,
                 *c->model ? " of model " : "", c->model);
        rc = TN_ERR_NOT_FOUND;
        goto out;
    }

    /* Verify: the collection holds exactly the live points of the log. */
    uint64_t expected = 0;
    size_t live_tickets = 0;
    for (size_t i = 0; i < x.nslots; i++)
        if (x.slots[i]) {
            uint64_t k = popcount_live(x.slots[i]);
            expected += k;
            live_tickets += k > 0;
        }
    size_t count = 0, old_count = 0;
    rc = tn_qdrant_count(x.q, c->collection, NULL, &count, err, sizeof(err));
    if (rc != TN_OK)
        goto out;
    if (*target && tn_qdrant_count(x.q, target, NULL, &old_count, err, sizeof(err)) != TN_OK)
        old_count = 0;
    fprintf(rp->out,
            "reindex %s -> %s: %" PRIu64 " records read (%" PRIu64 " deletions, %" PRIu64
            " of other models, %" PRIu64 " unreadable); model %s, %zu dims\n",
            c->source, c->collection, x.records, x.deletes, x.skipped_model, x.bad, x.model,
            x.dims);
    fprintf(rp->out, "points: %zu in %s, %" PRIu64 " expected from the log (%zu tickets)\n", count,
            c->collection, expected, live_tickets);
    if (*target)
        fprintf(rp->out, "alias %s -> %s now (%zu points)\n", c->alias, target, old_count);
    if (count != expected) {
        snprintf(err, sizeof(err), "%s has %zu points, the log says %" PRIu64 ": not swapping",
                 c->collection, count, expected);
        rc = TN_ERR_SCHEMA;
        goto out;
    }
    if (!c->swap) {
        fprintf(rp->out, "verified; the alias is unchanged (add --swap to switch it)\n");
        goto out;
    }
    if ((truncated || x.bad) && !c->force) {
        snprintf(err, sizeof(err), "not swapping: %s (add --force to swap anyway)",
                 truncated ? "the log lost its start, the new collection may miss chunks"
                           : "some records were unreadable");
        rc = TN_ERR_SCHEMA;
        goto out;
    }
    rc = tn_qdrant_alias_switch(x.q, c->alias, c->collection, err, sizeof(err));
    if (rc != TN_OK)
        goto out;
    fprintf(rp->out, "alias %s: %s -> %s (atomic); the old collection is kept\n", c->alias,
            *target ? target : "(none)", c->collection);
out:
    if (rc != TN_OK)
        fprintf(rp->err, "taina-replay: %s\n", err);
    reindex_free(&x);
    tn_kafka_reader_destroy(rd);
    tn_kafka_admin_destroy(a);
    tn_qdrant_destroy(x.q);
    free(ranges);
    return rc;
}
