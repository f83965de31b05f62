/* taina-fake-qdrant: an in-memory double of the Qdrant REST API (CONTRACTS.md section 1):
 * collections, payload indexes, points (upsert, delete, retrieve, exact search and query,
 * scroll, count) with payload filters, aliases, health, API keys, and the fault switches of
 * tests/support/fake_api.h. One lock over all the data. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_api.h"
#include "qdrant.h"
#include "taina/app.h"
#include "taina/lifecycle.h"
#include "taina/log.h"
#include "taina/mem.h"

extern char **environ;

typedef struct qd_cfg {
    tn_fake_cfg_t fake;
} qd_cfg_t;

static const tn_cfg_key_t qd_keys[] = {
    TN_FAKE_CFG_KEYS(qd_cfg_t, fake),
};

typedef struct alias {
    char *alias;
    char *coll;
} alias_t;

typedef struct qd {
    pthread_mutex_t lock;
    coll_t **colls;
    size_t ncolls;
    alias_t *aliases;
    size_t naliases;
    tn_fake_t *fake;
} qd_t;

#define MAX_DIM 65536

/* ============================================================================================ */
/* Envelopes                                                                                    */

static void ok(tn_fake_call_t *c, json_t *result)
{
    json_t *o = json_object();
    json_object_set_new(o, "result", result ? result : json_null());
    json_object_set_new(o, "status", json_string("ok"));
    json_object_set_new(o, "time", json_real(tn_fake_elapsed(c)));
    tn_http_req_respond_json(c->req, 200, o);
}

static void qerror(tn_fake_call_t *c, int status, const char *message)
{
    json_t *o = json_pack("{s{ss}sf}", "status", "error", message, "time", tn_fake_elapsed(c));
    tn_http_req_respond_json(c->req, status, o);
}

static void fail(tn_fake_call_t *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(tn_fake_call_t *c, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    qerror(c, status, msg);
}

static bool qd_authorize(tn_fake_call_t *c, const char *key)
{
    const char *got = tn_http_req_header(c->req, "api-key");
    if (!got)
        got = tn_fake_bearer(c->req);
    if (got && strcmp(got, key) == 0)
        return true;
    const char *msg =
        got ? "Invalid API key or JWT" : "Must provide an API key or an Authorization bearer token";
    tn_http_req_respond(c->req, 401, "text/plain; charset=utf-8", msg, strlen(msg));
    return false;
}

/* Is a non-empty body application/json? Answers 400 when not. */
static bool content_ok(tn_fake_call_t *c)
{
    size_t len = 0;
    tn_http_req_body(c->req, &len);
    const char *ct = tn_http_req_content_type(c->req);
    if (len > 0 && (!ct || strncasecmp(ct, "application/json", 16) != 0 ||
                    (ct[16] != '\0' && ct[16] != ';' && ct[16] != ' '))) {
        qerror(c, 400, "Content type error");
        return false;
    }
    return true;
}

/* The JSON body (an object), or NULL when answered 400. */
static json_t *body_of(tn_fake_call_t *c)
{
    if (!content_ok(c))
        return NULL;
    char msg[512];
    json_t *j = tn_fake_body_json(c, msg, sizeof(msg));
    if (!j)
        fail(c, 400, "Format error in JSON body: %s", msg);
    return j;
}

static bool query_wait(tn_fake_call_t *c)
{
    const char *w = tn_http_req_query(c->req, "wait");
    return w && (strcmp(w, "true") == 0 || strcmp(w, "1") == 0 || *w == '\0');
}

/* ============================================================================================ */
/* Names and aliases (caller holds the lock)                                                    */

static coll_t *coll_by_name(qd_t *q, const char *name)
{
    for (size_t i = 0; i < q->ncolls; i++) {
        if (strcmp(q->colls[i]->name, name) == 0)
            return q->colls[i];
    }
    return NULL;
}

static long alias_index(const alias_t *a, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(a[i].alias, name) == 0)
            return (long)i;
    }
    return -1;
}

/* A collection by name or alias; answers 404 when there is none. */
static coll_t *resolve(tn_fake_call_t *c, qd_t *q, const char *name)
{
    coll_t *col = coll_by_name(q, name);
    if (!col) {
        long a = alias_index(q->aliases, q->naliases, name);
        if (a >= 0)
            col = coll_by_name(q, q->aliases[a].coll);
    }
    if (!col)
        fail(c, 404, "Not found: Collection `%s` doesn't exist!", name);
    return col;
}

static bool name_valid(tn_fake_call_t *c, const char *name)
{
    if (strlen(name) > 255) {
        qerror(c, 422,
               "Validation error in path parameters: [name: length must be between 1 and 255]");
        return false;
    }
    for (const char *p = name; *p; p++) {
        if (strchr("<>:\"/\\|?*", *p)) {
            fail(c, 422,
                 "Validation error in path parameters: [name: collection name cannot contain "
                 "\"%c\" char]",
                 *p);
            return false;
        }
    }
    return true;
}

/* ============================================================================================ */
/* Output                                                                                       */

/* with_payload: true/false, [keys], {"include": [keys]}, {"exclude": [keys]}. */
typedef struct sel {
    bool on;
    json_t *include, *exclude; /* borrowed from the request */
} sel_t;

static bool sel_parse(tn_fake_call_t *c, json_t *v, bool def, sel_t *s)
{
    memset(s, 0, sizeof(*s));
    s->on = def;
    if (!v || json_is_null(v))
        return true;
    if (json_is_boolean(v)) {
        s->on = json_is_true(v);
        return true;
    }
    if (json_is_array(v)) {
        s->on = true;
        s->include = v;
        return true;
    }
    if (json_is_object(v) && json_is_array(json_object_get(v, "include"))) {
        s->on = true;
        s->include = json_object_get(v, "include");
        return true;
    }
    if (json_is_object(v) && json_is_array(json_object_get(v, "exclude"))) {
        s->on = true;
        s->exclude = json_object_get(v, "exclude");
        return true;
    }
    qerror(c, 400,
           "Format error in JSON body: data did not match any variant of untagged enum "
           "WithPayloadInterface");
    return false;
}

static json_t *payload_out(const sel_t *s, json_t *p)
{
    json_t *out = p ? json_deep_copy(p) : json_object();
    size_t i;
    json_t *k;
    if (s->include) {
        json_t *kept = json_object();
        json_array_foreach(s->include, i, k)
        {
            json_t *v = json_is_string(k) ? json_object_get(out, json_string_value(k)) : NULL;
            if (v)
                json_object_set(kept, json_string_value(k), v);
        }
        json_decref(out);
        out = kept;
    }
    if (s->exclude) {
        json_array_foreach(s->exclude, i, k)
        {
            if (json_is_string(k))
                json_object_del(out, json_string_value(k));
        }
    }
    return out;
}

static json_t *vector_json(const coll_t *col, size_t i)
{
    json_t *a = json_array();
    const float *v = col->vecs + i * col->dim;
    for (size_t d = 0; d < col->dim; d++)
        json_array_append_new(a, json_real(v[d]));
    return a;
}

/* A Record (scored when @p score is not NULL). */
static json_t *point_json(const coll_t *col, size_t i, const sel_t *wp, bool wv, const float *score)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", qid_json(&col->ids[i]));
    if (score) {
        json_object_set_new(o, "version", json_integer((json_int_t)col->versions[i]));
        json_object_set_new(o, "score", json_real(*score));
    }
    if (wp->on)
        json_object_set_new(o, "payload", payload_out(wp, col->payloads[i]));
    if (wv)
        json_object_set_new(o, "vector", vector_json(col, i));
    return o;
}

static bool with_vector_of(json_t *body)
{
    json_t *v = json_object_get(body, "with_vector");
    return json_is_true(v) || (json_is_array(v) && json_array_size(v) > 0);
}

/* ============================================================================================ */
/* Collections                                                                                  */

static void on_root(tn_fake_call_t *c)
{
    tn_http_req_respond_json(c->req, 200,
                             json_pack("{ss ss}", "title",
                                       "qdrant - vector search engine (taina fake)", "version",
                                       "1.19.0"));
}

static void on_health(tn_fake_call_t *c)
{
    const char *p = tn_http_req_path(c->req);
    const char *msg = strcmp(p, "/healthz") == 0 ? "healthz check passed"
                      : strcmp(p, "/livez") == 0 ? "livez check passed"
                                                 : "all shards are ready";
    tn_http_req_respond(c->req, 200, "text/plain; charset=utf-8", msg, strlen(msg));
}

static void on_list(tn_fake_call_t *c)
{
    qd_t *q = c->ctx;
    json_t *a = json_array();
    pthread_mutex_lock(&q->lock);
    for (size_t i = 0; i < q->ncolls; i++)
        json_array_append_new(a, json_pack("{ss}", "name", q->colls[i]->name));
    pthread_mutex_unlock(&q->lock);
    ok(c, json_pack("{so}", "collections", a));
}

/* Parse the "vectors" of a create request. @returns false when answered. */
static bool vectors_parse(tn_fake_call_t *c, json_t *v, size_t *dim, dist_t *dist)
{
    if (!json_is_object(v)) {
        qerror(c, 400, "Bad request: the fake needs \"vectors\": {\"size\": N, \"distance\": D}");
        return false;
    }
    json_t *size = json_object_get(v, "size"), *d = json_object_get(v, "distance");
    if (!size && !d) {
        qerror(c, 400,
               "Bad request: named vectors are not supported by the fake (one unnamed vector)");
        return false;
    }
    if (!size || !d) {
        fail(c, 400, "Format error in JSON body: missing field `%s`", size ? "distance" : "size");
        return false;
    }
    if (!json_is_integer(size) || json_integer_value(size) < 0) {
        qerror(c, 400, "Format error in JSON body: vectors.size: expected u64");
        return false;
    }
    if (json_integer_value(size) < 1 || json_integer_value(size) > MAX_DIM) {
        fail(c, 422,
             "Validation error in JSON body: [vectors.size: value %lld invalid, must be from 1 "
             "to %d]",
             (long long)json_integer_value(size), MAX_DIM);
        return false;
    }
    if (!json_is_string(d) || !dist_parse(json_string_value(d), dist)) {
        char t[96];
        qid_describe(d, t, sizeof(t));
        fail(c, 400,
             "Format error in JSON body: unknown variant %s, expected one of `Cosine`, `Euclid`, "
             "`Dot`, `Manhattan`",
             t);
        return false;
    }
    *dim = (size_t)json_integer_value(size);
    return true;
}

static void on_create(tn_fake_call_t *c)
{
    qd_t *q = c->ctx;
    const char *name = c->arg[0];
    if (!name_valid(c, name))
        return;
    json_t *body = body_of(c);
    if (!body)
        return;
    size_t dim;
    dist_t dist;
    if (!vectors_parse(c, json_object_get(body, "vectors"), &dim, &dist)) {
        json_decref(body);
        return;
    }
    pthread_mutex_lock(&q->lock);
    if (coll_by_name(q, name)) {
        fail(c, 409, "Wrong input: Collection `%s` already exists!", name);
    } else if (alias_index(q->aliases, q->naliases, name) >= 0) {
        fail(c, 409, "Wrong input: Alias with the same name `%s` already exists!", name);
    } else {
        coll_t *col = coll_new(name, dim, dist);
        col->config = json_deep_copy(body);
        q->colls = tn_xrealloc(q->colls, (q->ncolls + 1) * sizeof(*q->colls));
        q->colls[q->ncolls++] = col;
        ok(c, json_true());
    }
    pthread_mutex_unlock(&q->lock);
    json_decref(body);
}

static json_t *schema_json(const coll_t *col)
{
    json_t *out = json_object();
    const char *field;
    json_t *type;
    json_object_foreach(col->payload_schema, field, type)
    {
        size_t n = 0;
        for (size_t i = 0; i < col->n; i++) {
            json_t *vals = json_array();
            payload_values(col->payloads[i], field, vals);
            n += json_array_size(vals) > 0;
            json_decref(vals);
        }
        json_t *e = json_deep_copy(type);
        json_object_set_new(e, "points", json_integer((json_int_t)n));
        json_object_set_new(out, field, e);
    }
    return out;
}

static json_t *copy_or_null(json_t *v)
{
    return v ? json_deep_copy(v) : json_null();
}

static json_t *info_json(const coll_t *col)
{
    json_t *cfg = col->config;
    json_t *params =
        json_pack("{s{sIss}sIsIsIsb}", "vectors", "size", (json_int_t)col->dim, "distance",
                  dist_name(col->dist), "shard_number", (json_int_t)1, "replication_factor",
                  (json_int_t)1, "write_consistency_factor", (json_int_t)1, "on_disk_payload", 1);
    json_t *hnsw = json_pack("{sisisisisb}", "m", 16, "ef_construct", 100, "full_scan_threshold",
                             10000, "max_indexing_threads", 0, "on_disk", 0);
    json_t *optim =
        json_pack("{sfsisisnsisisi}", "deleted_threshold", 0.2, "vacuum_min_vector_number", 1000,
                  "default_segment_number", 0, "max_segment_size", "memmap_threshold", 20000,
                  "indexing_threshold", 10000, "flush_interval_sec", 5);
    json_t *wal = json_pack("{sisi}", "wal_capacity_mb", 32, "wal_segments_ahead", 0);
    json_t *config = json_pack("{sosososososo}", "params", params, "hnsw_config", hnsw,
                               "optimizer_config", optim, "wal_config", wal, "quantization_config",
                               copy_or_null(json_object_get(cfg, "quantization_config")),
                               "metadata", copy_or_null(json_object_get(cfg, "metadata")));
    return json_pack("{sssssIsIsIsoso}", "status", "green", "optimizer_status", "ok",
                     "points_count", (json_int_t)col->n, "indexed_vectors_count", (json_int_t)0,
                     "segments_count", (json_int_t)1, "config", config, "payload_schema",
                     schema_json(col));
}

static void on_info(tn_fake_call_t *c)
{
    qd_t *q = c->ctx;
    pthread_mutex_lock(&q->lock);
    coll_t *col = resolve(c, q, c->arg[0]);
    json_t *r = col ? info_json(col) : NULL;
    pthread_mutex_unlock(&q->lock);
    if (r)
        ok(c, r);
}

static void on_exists(tn_fake_call_t *c)
{
    qd_t *q = c->ctx;
    pthread_mutex_lock(&q->lock);
    bool e = coll_by_name(q, c->arg[0]) || alias_index(q->aliases, q->naliases, c->arg[0]) >= 0;
    pthread_mutex_unlock(&q->lock);
    ok(c, json_pack("{sb}", "exists", e));
}

static void drop_aliases_of(qd_t *q, const char *coll)
{
    size_t o = 0;
    for (size_t i = 0; i < q->naliases; i++) {
        if (strcmp(q->aliases[i].coll, coll) == 0) {
            free(q->aliases[i].alias);
            free(q->aliases[i].coll);
        } else {
            q->aliases[o++] = q->aliases[i];
        }
    }
    q->naliases = o;
}

static void on_delete(tn_fake_call_t *c)
{
    qd_t *q = c->ctx;
    bool found = false;
    pthread_mutex_lock(&q->lock);
    for (size_t i = 0; i < q->ncolls; i++) {
        if (strcmp(q->colls[i]->name, c->arg[0]) == 0) {
            drop_aliases_of(q, q->colls[i]->name);
            coll_free(q->colls[i]);
            q->colls[i] = q->colls[--q->ncolls];
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&q->lock);
    ok(c, json_boolean(found));
}

static void on_update(tn_fake_call_t *c)
{
    qd_t *q = c->ctx;
    json_t *body = body_of(c);
    if (!body)
        return;
    pthread_mutex_lock(&q->lock);
    if (resolve(c, q, c->arg[0]))
        ok(c, json_true());
    pthread_mutex_unlock(&q->lock);
    json_decref(body);
}

static json_t *update_result(coll_t *col, bool wait)
{
    return json_pack("{sIss}", "operation_id", (json_int_t)col->op_seq, "status",
                     wait ? "completed" : "acknowledged");
}

static void on_index(tn_fake_call_t *c)
{
    qd_t *q = c->ctx;
    json_t *body = body_of(c);
    if (!body)
        return;
    json_t *field = json_object_get(body, "field_name");
    json_t *schema = json_object_get(body, "field_schema");
    const char *type = json_is_string(schema) ? json_string_value(schema)
                       : json_is_object(schema) && json_is_string(json_object_get(schema, "type"))
                           ? json_string_value(json_object_get(schema, "type"))
                           : NULL;
    static const char *const types[] = {"keyword", "integer",  "float", "geo", "text",
                                        "bool",    "datetime", "uuid",  NULL};
    bool known = false;
    for (size_t i = 0; type && types[i]; i++)
        known = known || strcmp(type, types[i]) == 0;
    if (!json_is_string(field) || !*json_string_value(field)) {
        qerror(c, 400, "Format error in JSON body: missing field `field_name`");
    } else if (schema && !json_is_null(schema) && !known) {
        qerror(c, 400,
               "Format error in JSON body: data did not match any variant of untagged enum "
               "PayloadFieldSchema");
    } else {
        pthread_mutex_lock(&q->lock);
        coll_t *col = resolve(c, q, c->arg[0]);
        if (col) {
            json_t *e = json_pack("{ss}", "data_type", type ? type : "keyword");
            if (json_is_object(schema))
                json_object_set_new(e, "params", json_deep_copy(schema));
            json_object_set_new(col->payload_schema, json_string_value(field), e);
            if (!type || strcmp(type, "keyword") == 0)
                coll_index_keyword(col, json_string_value(field));
            else
                coll_index_drop(col, json_string_value(field));
            col->op_seq++;
            ok(c, update_result(col, query_wait(c)));
        }
        pthread_mutex_unlock(&q->lock);
    }
    json_decref(body);
}

static void on_index_delete(tn_fake_call_t *c)
{
    qd_t *q = c->ctx;
    pthread_mutex_lock(&q->lock);
    coll_t *col = resolve(c, q, c->arg[0]);
    if (col) {
        json_object_del(col->payload_schema, c->arg[1]);
        coll_index_drop(col, c->arg[1]);
        col->op_seq++;
        ok(c, update_result(col, query_wait(c)));
    }
    pthread_mutex_unlock(&q->lock);
}

/* ============================================================================================ */
/* Aliases                                                                                      */

static json_t *aliases_json(const qd_t *q, const char *coll)
{
    json_t *a = json_array();
    for (size_t i = 0; i < q->naliases; i++) {
        if (!coll || strcmp(q->aliases[i].coll, coll) == 0)
            json_array_append_new(a, json_pack("{ssss}", "alias_name", q->aliases[i].alias,
                                               "collection_name", q->aliases[i].coll));
    }
    return json_pack("{so}", "aliases", a);
}

static void on_aliases(tn_fake_call_t *c)
{
    qd_t *q = c->ctx;
    pthread_mutex_lock(&q->lock);
    json_t *r = NULL;
    if (c->arg[0]) {
        coll_t *col = resolve(c, q, c->arg[0]);
        if (col)
            r = aliases_json(q, col->name);
    } else {
        r = aliases_json(q, NULL);
    }
    pthread_mutex_unlock(&q->lock);
    if (r)
        ok(c, r);
}

static void aliases_free(alias_t *a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(a[i].alias);
        free(a[i].coll);
    }
    free(a);
}

static const char *str_at(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) && *json_string_value(v) ? json_string_value(v) : NULL;
}

/* Apply one action to the working copy @p a. @returns false when answered. */
static bool alias_action(tn_fake_call_t *c, qd_t *q, json_t *act, alias_t **a, size_t *n)
{
    json_t *v;
    if ((v = json_object_get(act, "create_alias"))) {
        const char *coll = str_at(v, "collection_name"), *name = str_at(v, "alias_name");
        if (!coll || !name) {
            qerror(c, 400,
                   "Format error in JSON body: create_alias needs collection_name and "
                   "alias_name");
            return false;
        }
        if (!coll_by_name(q, coll)) {
            fail(c, 404, "Not found: Collection `%s` doesn't exist!", coll);
            return false;
        }
        if (coll_by_name(q, name)) {
            fail(c, 409, "Wrong input: Collection with the same name `%s` already exists!", name);
            return false;
        }
        long i = alias_index(*a, *n, name);
        if (i >= 0) { /* re-pointed */
            free((*a)[i].coll);
            (*a)[i].coll = tn_xstrdup(coll);
            return true;
        }
        *a = tn_xrealloc(*a, (*n + 1) * sizeof(**a));
        (*a)[*n].alias = tn_xstrdup(name);
        (*a)[*n].coll = tn_xstrdup(coll);
        (*n)++;
        return true;
    }
    if ((v = json_object_get(act, "delete_alias"))) {
        const char *name = str_at(v, "alias_name");
        long i = name ? alias_index(*a, *n, name) : -1;
        if (!name) {
            qerror(c, 400, "Format error in JSON body: delete_alias needs alias_name");
            return false;
        }
        if (i < 0) {
            fail(c, 404, "Not found: Alias %s does not exists!", name);
            return false;
        }
        free((*a)[i].alias);
        free((*a)[i].coll);
        (*a)[i] = (*a)[--(*n)];
        return true;
    }
    if ((v = json_object_get(act, "rename_alias"))) {
        const char *old = str_at(v, "old_alias_name"), *nw = str_at(v, "new_alias_name");
        if (!old || !nw) {
            qerror(c, 400,
                   "Format error in JSON body: rename_alias needs old_alias_name and "
                   "new_alias_name");
            return false;
        }
        long i = alias_index(*a, *n, old);
        if (i < 0) {
            fail(c, 404, "Not found: Alias %s does not exists!", old);
            return false;
        }
        if (coll_by_name(q, nw) || (strcmp(old, nw) != 0 && alias_index(*a, *n, nw) >= 0)) {
            fail(c, 409, "Wrong input: Alias with the same name `%s` already exists!", nw);
            return false;
        }
        free((*a)[i].alias);
        (*a)[i].alias = tn_xstrdup(nw);
        return true;
    }
    qerror(c, 400,
           "Format error in JSON body: unknown alias action (create_alias, delete_alias, "
           "rename_alias)");
    return false;
}

static void on_alias_actions(tn_fake_call_t *c)
{
    qd_t *q = c->ctx;
    json_t *body = body_of(c);
    if (!body)
        return;
    json_t *acts = json_object_get(body, "actions");
    if (!json_is_array(acts)) {
        qerror(c, 400, "Format error in JSON body: missing field `actions`");
        json_decref(body);
        return;
    }
    pthread_mutex_lock(&q->lock);
    /* all or nothing: work on a copy, swap it in at the end */
    alias_t *a = tn_xcalloc(q->naliases + 1, sizeof(*a));
    size_t n = q->naliases;
    for (size_t i = 0; i < n; i++) {
        a[i].alias = tn_xstrdup(q->aliases[i].alias);
        a[i].coll = tn_xstrdup(q->aliases[i].coll);
    }
    bool good = true;
    size_t i;
    json_t *act;
    json_array_foreach(acts, i, act)
    {
        if (!alias_action(c, q, act, &a, &n)) {
            good = false;
            break;
        }
    }
    if (good) {
        aliases_free(q->aliases, q->naliases);
        q->aliases = a;
        q->naliases = n;
        ok(c, json_true());
    } else {
        aliases_free(a, n);
    }
    pthread_mutex_unlock(&q->lock);
    json_decref(body);
}

/* ============================================================================================ */
/* Points                                                                                       */

static bool bad_id(tn_fake_call_t *c, json_t *v)
{
    char d[96];
    qid_describe(v, d, sizeof(d));
    fail(c, 400,
         "Format error in JSON body: value %s is not a valid point ID, valid values are either "
         "an unsigned integer or a UUID",
         d);
    return false;
}

/* A dense vector of dim floats into @p out. @returns false when answered. */
static bool vector_parse(tn_fake_call_t *c, const coll_t *col, json_t *v, float *out)
{
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_t *unnamed = NULL;
        json_object_foreach(v, k, x)
        {
            if (*k) {
                fail(c, 400, "Wrong input: Not existing vector name error: %s", k);
                return false;
            }
            unnamed = x;
        }
        v = unnamed;
    }
    if (!json_is_array(v)) {
        qerror(c, 400,
               "Format error in JSON body: data did not match any variant of untagged enum "
               "VectorStruct");
        return false;
    }
    if (json_array_size(v) != col->dim) {
        fail(c, 400, "Wrong input: Vector dimension error: expected dim: %zu, got %zu", col->dim,
             json_array_size(v));
        return false;
    }
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x)
    {
        if (!json_is_number(x)) {
            qerror(c, 400, "Format error in JSON body: invalid type: expected f32");
            return false;
        }
        out[i] = (float)json_number_value(x);
    }
    return true;
}

/* A point's vector taken out by fastvec_parse (@p pv its placeholder) into @p out. */
static bool fast_vector(tn_fake_call_t *c, const coll_t *col, const fastvec_t *fv, json_t *pv,
                        float *out)
{
    size_t len = 0;
    const float *v = NULL;
    if (!fastvec_get(fv, pv, &v, &len))
        return vector_parse(c, col, pv, out);
    if (len != col->dim) {
        fail(c, 400, "Wrong input: Vector dimension error: expected dim: %zu, got %zu", col->dim,
             len);
        return false;
    }
    if (len)
        memcpy(out, v, len * sizeof(*out));
    return true;
}

/* An upsert body: the fast path of fastvec.c when it applies, else body_of. */
static json_t *upsert_body_of(tn_fake_call_t *c, fastvec_t *fv)
{
    memset(fv, 0, sizeof(*fv));
    if (!content_ok(c))
        return NULL;
    size_t len = 0;
    const char *raw = tn_http_req_body(c->req, &len);
    json_t *j = fastvec_parse(raw, len, fv);
    return j ? j : body_of(c);
}

typedef struct upsert_item {
    qid_t id;
    json_t *payload; /* new reference or NULL */
} upsert_item_t;

static void on_upsert(tn_fake_call_t *c)
{
    qd_t *q = c->ctx;
    fastvec_t fv;
    json_t *body = upsert_body_of(c, &fv);
    if (!body)
        return;
    json_t *pts = json_object_get(body, "points"), *batch = json_object_get(body, "batch");
    json_t *ids = NULL, *vecs = NULL, *pls = NULL;
    if (json_is_object(batch)) {
        ids = json_object_get(batch, "ids");
        vecs = json_object_get(batch, "vectors");
        pls = json_object_get(batch, "payloads");
        if (!json_is_array(ids) || !json_is_array(vecs) ||
            json_array_size(ids) != json_array_size(vecs) ||
            (pls && !json_is_null(pls) &&
             (!json_is_array(pls) || json_array_size(pls) != json_array_size(ids)))) {
            qerror(c, 400,
                   "Bad request: batch needs ids and vectors (and payloads) of the same length");
            goto out;
        }
    } else if (!json_is_array(pts)) {
        qerror(c, 400,
               "Format error in JSON body: data did not match any variant of untagged enum "
               "PointInsertOperations");
        goto out;
    }
    size_t n = ids ? json_array_size(ids) : json_array_size(pts);
    const char *mode = str_at(body, "update_mode");
    if (mode && strcmp(mode, "upsert") && strcmp(mode, "insert_only") &&
        strcmp(mode, "update_only")) {
        qerror(c, 400,
               "Format error in JSON body: unknown variant for update_mode, expected one of "
               "`upsert`, `insert_only`, `update_only`");
        goto out;
    }

    pthread_mutex_lock(&q->lock);
    coll_t *col = resolve(c, q, c->arg[0]);
    upsert_item_t *items = tn_xcalloc(n + 1, sizeof(*items));
    float *vbuf = NULL;
    bool good = col != NULL;
    if (good)
        vbuf = tn_xmalloc((n ? n : 1) * col->dim * sizeof(float));
    for (size_t i = 0; good && i < n; i++) {
        json_t *pid = ids ? json_array_get(ids, i) : json_object_get(json_array_get(pts, i), "id");
        json_t *pv =
            vecs ? json_array_get(vecs, i) : json_object_get(json_array_get(pts, i), "vector");
        json_t *pp = ids ? (json_is_array(pls) ? json_array_get(pls, i) : NULL)
                         : json_object_get(json_array_get(pts, i), "payload");
        if (!ids && !json_is_object(json_array_get(pts, i))) {
            qerror(c, 400, "Format error in JSON body: a point must be an object");
            good = false;
        } else if (!pid || !qid_parse(pid, &items[i].id)) {
            good = pid ? bad_id(c, pid)
                       : (qerror(c, 400, "Format error in JSON body: missing field `id`"), false);
        } else if (!pv) {
            qerror(c, 400, "Format error in JSON body: missing field `vector`");
            good = false;
        } else if (!(fv.n && !ids ? fast_vector(c, col, &fv, pv, vbuf + i * col->dim)
                                  : vector_parse(c, col, pv, vbuf + i * col->dim))) {
            good = false;
        } else if (pp && !json_is_null(pp) && !json_is_object(pp)) {
            qerror(c, 400, "Format error in JSON body: payload must be an object");
            good = false;
        } else {
            /* the body is this request's own: keep its payload objects, no copy */
            items[i].payload = json_is_object(pp) ? json_incref(pp) : NULL;
        }
    }
    if (good) {
        uint64_t op = ++col->op_seq;
        for (size_t i = 0; i < n; i++) {
            bool exists = coll_find(col, &items[i].id) >= 0;
            if ((mode && strcmp(mode, "insert_only") == 0 && exists) ||
                (mode && strcmp(mode, "update_only") == 0 && !exists)) {
                json_decref(items[i].payload);
                continue;
            }
            coll_upsert(col, &items[i].id, vbuf + i * col->dim, items[i].payload, op);
            items[i].payload = NULL;
        }
        ok(c, update_result(col, query_wait(c)));
    }
    for (size_t i = 0; i < n; i++)
        json_decref(items[i].payload);
    pthread_mutex_unlock(&q->lock);
    free(items);
    free(vbuf);
out:
    fastvec_free(&fv);
    json_decref(body);
}

/* The compiled "filter" of @p body into @p f. @returns false when answered. */
static bool filter_of(tn_fake_call_t *c, json_t *body, qfilter_t **f)
{
    char msg[512];
    *f = qfilter_compile(json_object_get(body, "filter"), msg, sizeof(msg));
    if (!*f && msg[0]) {
        fail(c, 400, "Format error in JSON body: filter: %s", msg);
        return false;
    }
    return true;
}

static void on_points_delete(tn_fake_call_t *c)
{
    qd_t *q = c->ctx;
    json_t *body = body_of(c);
    if (!body)
        return;
    json_t *pts = json_object_get(body, "points");
    qfilter_t *f = NULL;
    qid_t *ids = NULL;
    size_t nids = 0;
    if (json_is_array(pts)) {
        ids = tn_xcalloc(json_array_size(pts) + 1, sizeof(*ids));
        size_t i;
        json_t *v;
        json_array_foreach(pts, i, v)
        {
            if (!qid_parse(v, &ids[i])) {
                bad_id(c, v);
                goto out;
            }
        }
        nids = json_array_size(pts);
    } else if (json_is_object(json_object_get(body, "filter"))) {
        if (!filter_of(c, body, &f))
            goto out;
    } else {
        qerror(c, 400,
               "Format error in JSON body: data did not match any variant of untagged enum "
               "PointsSelector");
        goto out;
    }
    pthread_mutex_lock(&q->lock);
    coll_t *col = resolve(c, q, c->arg[0]);
    if (col) {
        col->op_seq++;
        if (ids) {
            for (size_t i = 0; i < nids; i++) {
                long at = coll_find(col, &ids[i]);
                if (at >= 0)
                    coll_remove_at(col, (size_t)at);
            }
        } else {
            /* descending: a removal moves the last point, which was tested already */
            size_t n;
            size_t *cand = coll_candidates(col, f, &n);
            for (size_t j = n; j-- > 0;) {
                size_t i = cand ? cand[j] : j;
                if (qfilter_match(f, &col->ids[i], col->payloads[i]))
                    coll_remove_at(col, i);
            }
            free(cand);
        }
        ok(c, update_result(col, query_wait(c)));
    }
    pthread_mutex_unlock(&q->lock);
out:
    free(ids);
    qfilter_free(f);
    json_decref(body);
}

static bool path_id(const char *s, qid_t *id)
{
    if (*s && strspn(s, "0123456789") == strlen(s)) {
        errno = 0;
        char *end = NULL;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno)
            return false;
        memset(id, 0, sizeof(*id));
        id->num = v;
        return true;
    }
    json_t *j = json_string(s);
    bool ok_ = j && qid_parse(j, id);
    json_decref(j);
    return ok_;
}

static void on_get_point(tn_fake_call_t *c)
{
    qd_t *q = c->ctx;
    qid_t id;
    if (!path_id(c->arg[1], &id)) {
        fail(c, 400,
             "Format error in path parameters: value %.80s is not a valid point ID, valid values "
             "are either an unsigned integer or a UUID",
             c->arg[1]);
        return;
    }
    pthread_mutex_lock(&q->lock);
    coll_t *col = resolve(c, q, c->arg[0]);
    json_t *r = NULL;
    if (col) {
        long at = coll_find(col, &id);
        sel_t all = {.on = true};
        if (at >= 0)
            r = point_json(col, (size_t)at, &all, true, NULL);
        else
            fail(c, 404, "Not found: No point with id %s found", c->arg[1]);
    }
    pthread_mutex_unlock(&q->lock);
    if (r)
        ok(c, r);
}

static void on_retrieve(tn_fake_call_t *c)
{
    qd_t *q = c->ctx;
    json_t *body = body_of(c);
    if (!body)
        return;
    json_t *ids = json_object_get(body, "ids");
    sel_t wp;
    qid_t *qids = NULL;
    if (!json_is_array(ids)) {
        qerror(c, 400, "Format error in JSON body: missing field `ids`");
        goto out;
    }
    if (!sel_parse(c, json_object_get(body, "with_payload"), true, &wp))
        goto out;
    qids = tn_xcalloc(json_array_size(ids) + 1, sizeof(*qids));
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v)
    {
        if (!qid_parse(v, &qids[i])) {
            bad_id(c, v);
            goto out;
        }
    }
    bool wv = with_vector_of(body);
    pthread_mutex_lock(&q->lock);
    coll_t *col = resolve(c, q, c->arg[0]);
    if (col) {
        json_t *a = json_array();
        for (i = 0; i < json_array_size(ids); i++) {
            long at = coll_find(col, &qids[i]);
            if (at >= 0)
                json_array_append_new(a, point_json(col, (size_t)at, &wp, wv, NULL));
        }
        ok(c, a);
    }
    pthread_mutex_unlock(&q->lock);
out:
    free(qids);
    json_decref(body);
}

/* ---- search and query ------------------------------------------------------------------- */

typedef struct sreq {
    json_t *vec;   /* the query vector (JSON array), or NULL */
    json_t *by_id; /* a point id whose vector is the query, or NULL */
    qfilter_t *f;
    size_t limit, offset;
    bool thr_set;
    float thr;
    sel_t wp;
    bool wv;
} sreq_t;

/* limit / offset / score_threshold / with_* / filter. @returns false when answered. */
static bool sreq_common(tn_fake_call_t *c, json_t *body, sreq_t *s, const char *limit_key,
                        size_t def_limit)
{
    json_t *l = json_object_get(body, limit_key);
    if (!l && strcmp(limit_key, "limit") == 0 && def_limit == 0)
        l = json_object_get(body, "top");
    if (!l || json_is_null(l)) {
        if (!def_limit) {
            qerror(c, 400, "Format error in JSON body: missing field `limit`");
            return false;
        }
        s->limit = def_limit;
    } else if (!json_is_integer(l) || json_integer_value(l) < 0) {
        qerror(c, 400, "Format error in JSON body: limit: invalid type, expected usize");
        return false;
    } else if (json_integer_value(l) == 0) {
        qerror(c, 422,
               "Validation error in JSON body: [limit: value 0 invalid, must be 1 or larger]");
        return false;
    } else {
        s->limit = (size_t)json_integer_value(l);
    }
    json_t *o = json_object_get(body, "offset");
    if (o && !json_is_null(o)) {
        if (!json_is_integer(o) || json_integer_value(o) < 0) {
            qerror(c, 400, "Format error in JSON body: offset: invalid type, expected usize");
            return false;
        }
        s->offset = (size_t)json_integer_value(o);
    }
    json_t *t = json_object_get(body, "score_threshold");
    if (t && !json_is_null(t)) {
        if (!json_is_number(t)) {
            qerror(c, 400, "Format error in JSON body: score_threshold: expected f32");
            return false;
        }
        s->thr_set = true;
        s->thr = (float)json_number_value(t);
    }
    s->wv = with_vector_of(body);
    return sel_parse(c, json_object_get(body, "with_payload"), false, &s->wp) &&
           filter_of(c, body, &s->f);
}

/* Run the search on @p col (lock held): the hits as ScoredPoints, NULL when answered. */
static json_t *sreq_run(tn_fake_call_t *c, coll_t *col, sreq_t *s)
{
    float *qv = tn_xmalloc(col->dim * sizeof(float));
    json_t *out = NULL;
    qid_t self;
    bool exclude = false;
    if (s->by_id) {
        if (!qid_parse(s->by_id, &self)) {
            bad_id(c, s->by_id);
            goto done;
        }
        long i = coll_find(col, &self);
        if (i < 0) {
            char d[96];
            qid_describe(s->by_id, d, sizeof(d));
            fail(c, 404, "Not found: No point with id %s found", d);
            goto done;
        }
        memcpy(qv, col->vecs + (size_t)i * col->dim, col->dim * sizeof(float));
        exclude = true;
    } else if (!vector_parse(c, col, s->vec, qv)) {
        goto done;
    }
    if (col->dist == DIST_COSINE)
        vec_normalize(qv, col->dim);
    hit_t *hits = NULL;
    size_t k = s->offset + s->limit + (exclude ? 1 : 0);
    size_t n = coll_search(col, qv, s->f, s->thr_set, s->thr, k, &hits);
    out = json_array();
    size_t skipped = 0;
    for (size_t i = 0; i < n && json_array_size(out) < s->limit; i++) {
        if (exclude && qid_cmp(&col->ids[hits[i].idx], &self) == 0)
            continue;
        if (skipped++ < s->offset)
            continue;
        json_array_append_new(out, point_json(col, hits[i].idx, &s->wp, s->wv, &hits[i].score));
    }
    free(hits);
done:
    free(qv);
    return out;
}

static void on_search(tn_fake_call_t *c)
{
    qd_t *q = c->ctx;
    json_t *body = body_of(c);
    if (!body)
        return;
    sreq_t s = {0};
    json_t *v = json_object_get(body, "vector");
    if (json_is_object(v) && json_object_get(v, "vector")) { /* {"name": ..., "vector": [...]} */
        const char *name = str_at(v, "name");
        if (name && *name) {
            fail(c, 400, "Wrong input: Not existing vector name error: %s", name);
            goto out;
        }
        v = json_object_get(v, "vector");
    }
    if (!v) {
        qerror(c, 400, "Format error in JSON body: missing field `vector`");
        goto out;
    }
    s.vec = v;
    if (!sreq_common(c, body, &s, "limit", 0))
        goto out;
    pthread_mutex_lock(&q->lock);
    coll_t *col = resolve(c, q, c->arg[0]);
    json_t *r = col ? sreq_run(c, col, &s) : NULL;
    pthread_mutex_unlock(&q->lock);
    if (r)
        ok(c, r);
out:
    qfilter_free(s.f);
    json_decref(body);
}

/* Query without a query: points by id, score 0. */
static json_t *query_by_order(coll_t *col, sreq_t *s)
{
    size_t *idx = NULL;
    size_t n = coll_scroll(col, s->f, NULL, s->offset + s->limit, &idx);
    json_t *out = json_array();
    float zero = 0;
    for (size_t i = s->offset; i < n; i++)
        json_array_append_new(out, point_json(col, idx[i], &s->wp, s->wv, &zero));
    free(idx);
    return out;
}

static void on_query(tn_fake_call_t *c)
{
    qd_t *q = c->ctx;
    json_t *body = body_of(c);
    if (!body)
        return;
    sreq_t s = {0};
    json_t *qq = json_object_get(body, "query");
    const char *using = str_at(body, "using");
    if (json_object_get(body, "prefetch") && !json_is_null(json_object_get(body, "prefetch"))) {
        qerror(c, 400, "Bad request: prefetch is not supported by the fake");
        goto out;
    }
    if (using && *using) {
        fail(c, 400, "Wrong input: Not existing vector name error: %s", using);
        goto out;
    }
    if (json_is_object(qq)) {
        if (!json_object_get(qq, "nearest")) {
            qerror(c, 400,
                   "Bad request: the fake only supports raw vectors, point ids and nearest "
                   "queries");
            goto out;
        }
        qq = json_object_get(qq, "nearest");
    }
    if (json_is_array(qq))
        s.vec = qq;
    else if (qq && !json_is_null(qq))
        s.by_id = qq;
    if (!sreq_common(c, body, &s, "limit", 10))
        goto out;
    pthread_mutex_lock(&q->lock);
    coll_t *col = resolve(c, q, c->arg[0]);
    json_t *r = NULL;
    if (col)
        r = (s.vec || s.by_id) ? sreq_run(c, col, &s) : query_by_order(col, &s);
    pthread_mutex_unlock(&q->lock);
    if (r)
        ok(c, json_pack("{so}", "points", r));
out:
    qfilter_free(s.f);
    json_decref(body);
}

static void on_scroll(tn_fake_call_t *c)
{
    qd_t *q = c->ctx;
    json_t *body = body_of(c);
    if (!body)
        return;
    sreq_t s = {0};
    qid_t from;
    json_t *off = json_object_get(body, "offset");
    json_t *ob = json_object_get(body, "order_by");
    if (ob && !json_is_null(ob)) {
        qerror(c, 400, "Bad request: order_by is not supported by the fake");
        goto out;
    }
    json_t *l = json_object_get(body, "limit");
    if (l && !json_is_null(l) && json_is_integer(l) && json_integer_value(l) == 0) {
        qerror(c, 422,
               "Validation error in JSON body: [limit: value 0 invalid, must be 1 or larger]");
        goto out;
    }
    s.limit = json_is_integer(l) && json_integer_value(l) > 0 ? (size_t)json_integer_value(l) : 10;
    if (off && !json_is_null(off) && !qid_parse(off, &from)) {
        bad_id(c, off);
        goto out;
    }
    s.wv = with_vector_of(body);
    if (!sel_parse(c, json_object_get(body, "with_payload"), true, &s.wp) ||
        !filter_of(c, body, &s.f))
        goto out;
    pthread_mutex_lock(&q->lock);
    coll_t *col = resolve(c, q, c->arg[0]);
    json_t *r = NULL;
    if (col) {
        size_t *idx = NULL;
        size_t n =
            coll_scroll(col, s.f, off && !json_is_null(off) ? &from : NULL, s.limit + 1, &idx);
        json_t *pts = json_array();
        for (size_t i = 0; i < n && i < s.limit; i++)
            json_array_append_new(pts, point_json(col, idx[i], &s.wp, s.wv, NULL));
        json_t *next = n > s.limit ? qid_json(&col->ids[idx[s.limit]]) : json_null();
        r = json_pack("{soso}", "points", pts, "next_page_offset", next);
        free(idx);
    }
    pthread_mutex_unlock(&q->lock);
    if (r)
        ok(c, r);
out:
    qfilter_free(s.f);
    json_decref(body);
}

static void on_count(tn_fake_call_t *c)
{
    qd_t *q = c->ctx;
    json_t *body = body_of(c);
    if (!body)
        return;
    qfilter_t *f = NULL;
    if (filter_of(c, body, &f)) {
        pthread_mutex_lock(&q->lock);
        coll_t *col = resolve(c, q, c->arg[0]);
        if (col) {
            size_t n = 0, ncand;
            size_t *cand = coll_candidates(col, f, &ncand);
            for (size_t j = 0; j < ncand; j++) {
                size_t i = cand ? cand[j] : j;
                n += qfilter_match(f, &col->ids[i], col->payloads[i]);
            }
            free(cand);
            ok(c, json_pack("{sI}", "count", (json_int_t)n));
        }
        pthread_mutex_unlock(&q->lock);
    }
    qfilter_free(f);
    json_decref(body);
}

/* ============================================================================================ */
/* App                                                                                          */

static const tn_fake_route_t qd_routes[] = {
    {"GET", "/", "GET /", on_root, TN_FAKE_OPEN},
    {"GET", "/healthz", "GET /healthz", on_health, TN_FAKE_OPEN},
    {"GET", "/livez", "GET /livez", on_health, TN_FAKE_OPEN},
    {"GET", "/readyz", "GET /readyz", on_health, TN_FAKE_OPEN},
    {"GET", "/collections", "GET /collections", on_list, 0},
    {"GET", "/aliases", "GET /aliases", on_aliases, 0},
    {"POST", "/collections/aliases", "POST /collections/aliases", on_alias_actions, 0},
    {"GET", "/collections/*", "GET /collections/{name}", on_info, 0},
    {"PUT", "/collections/*", "PUT /collections/{name}", on_create, 0},
    {"DELETE", "/collections/*", "DELETE /collections/{name}", on_delete, 0},
    {"PATCH", "/collections/*", "PATCH /collections/{name}", on_update, 0},
    {"GET", "/collections/*/exists", "GET /collections/{name}/exists", on_exists, 0},
    {"GET", "/collections/*/aliases", "GET /collections/{name}/aliases", on_aliases, 0},
    {"PUT", "/collections/*/index", "PUT /collections/{name}/index", on_index, 0},
    {"DELETE", "/collections/*/index/*", "DELETE /collections/{name}/index/{field}",
     on_index_delete, 0},
    {"PUT", "/collections/*/points", "PUT /collections/{name}/points", on_upsert, 0},
    {"POST", "/collections/*/points", "POST /collections/{name}/points", on_retrieve, 0},
    {"POST", "/collections/*/points/delete", "POST /collections/{name}/points/delete",
     on_points_delete, 0},
    {"POST", "/collections/*/points/search", "POST /collections/{name}/points/search", on_search,
     0},
    {"POST", "/collections/*/points/query", "POST /collections/{name}/points/query", on_query, 0},
    {"POST", "/collections/*/points/scroll", "POST /collections/{name}/points/scroll", on_scroll,
     0},
    {"POST", "/collections/*/points/count", "POST /collections/{name}/points/count", on_count, 0},
    {"GET", "/collections/*/points/*", "GET /collections/{name}/points/{id}", on_get_point, 0},
};

static json_t *qd_stats(void *ctx)
{
    qd_t *q = ctx;
    json_t *cs = json_object();
    pthread_mutex_lock(&q->lock);
    for (size_t i = 0; i < q->ncolls; i++)
        json_object_set_new(cs, q->colls[i]->name,
                            json_pack("{sIsI}", "points_count", (json_int_t)q->colls[i]->n,
                                      "vector_size", (json_int_t)q->colls[i]->dim));
    pthread_mutex_unlock(&q->lock);
    return json_pack("{so}", "collections", cs);
}

static void qd_clear(qd_t *q)
{
    for (size_t i = 0; i < q->ncolls; i++)
        coll_free(q->colls[i]);
    free(q->colls);
    q->colls = NULL;
    q->ncolls = 0;
    aliases_free(q->aliases, q->naliases);
    q->aliases = NULL;
    q->naliases = 0;
}

static void qd_reset(void *ctx)
{
    qd_t *q = ctx;
    pthread_mutex_lock(&q->lock);
    qd_clear(q);
    pthread_mutex_unlock(&q->lock);
}

static const tn_fake_api_t qd_api = {
    .error = qerror,
    .authorize = qd_authorize,
    .malformed_body = "{\"result\":{\"points\":[{\"id\":1,\"score\":0.9",
    .stats = qd_stats,
    .reset = qd_reset,
};

static void qd_free(qd_t *q)
{
    tn_fake_destroy(q->fake);
    qd_clear(q);
    pthread_mutex_destroy(&q->lock);
    free(q);
}

static tn_err_t qd_init(tn_app_t *app, void *cfgp, void **state)
{
    qd_cfg_t *cfg = cfgp;
    char errbuf[256];
    qd_t *q = tn_xcalloc(1, sizeof(*q));
    pthread_mutex_init(&q->lock, NULL);
    q->fake = tn_fake_new(&qd_api, qd_routes, TN_ARRAY_LEN(qd_routes), q, &cfg->fake, errbuf,
                          sizeof(errbuf));
    if (!q->fake) {
        TN_LOG(TN_LOG_ERROR, "%s", errbuf);
        qd_free(q);
        return TN_ERR_CONFIG;
    }
    tn_err_t rc = tn_fake_serve(q->fake, app);
    if (rc != TN_OK) {
        qd_free(q);
        return rc;
    }
    TN_LOG(TN_LOG_INFO, "fake qdrant listening on port %d", tn_app_http_port(app));
    *state = q;
    return TN_OK;
}

static tn_err_t qd_run(tn_app_t *app, void *state)
{
    (void)app;
    (void)state;
    while (!tn_lifecycle_wait(-1))
        ;
    return TN_OK;
}

static void qd_shutdown(tn_app_t *app, void *state)
{
    (void)app;
    if (state)
        qd_free(state);
}

static const tn_app_def_t qd_def = {
    .name = "fake-qdrant",
    .summary = "in-memory test double of the Qdrant REST API, with fault switches",
    .features = TN_APP_HTTP,
    .keys = qd_keys,
    .nkeys = TN_ARRAY_LEN(qd_keys),
    .cfg_size = sizeof(qd_cfg_t),
    .init = qd_init,
    .run = qd_run,
    .shutdown = qd_shutdown,
};

int main(int argc, char **argv)
{
    return tn_app_main(&qd_def, argc, argv, environ);
}
