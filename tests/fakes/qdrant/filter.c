/* taina-fake-qdrant: payload filters (must / should / must_not / min_should, field conditions,
 * has_id, is_empty, is_null, nested, values_count), compiled once per request. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qdrant.h"
#include "taina/mem.h"

typedef enum {
    C_FILTER,
    C_MATCH_VALUE,
    C_MATCH_ANY,
    C_MATCH_EXCEPT,
    C_MATCH_TEXT,
    C_RANGE,
    C_VALUES_COUNT,
    C_IS_EMPTY,
    C_IS_NULL,
    C_HAS_ID,
    C_NESTED,
    C_TRUE
} ctype_t;

typedef struct range {
    bool has[4]; /* gt, gte, lt, lte */
    double v[4];
} range_t;

typedef struct cond {
    ctype_t t;
    char *key;
    json_t *val; /* match value / any / except list; text string */
    range_t r;
    qid_t *ids;
    size_t nids;
    qfilter_t *f; /* C_FILTER, C_NESTED */
} cond_t;

typedef struct clist {
    cond_t *c;
    size_t n;
} clist_t;

struct qfilter {
    clist_t must, should, must_not, min_should;
    size_t min_count;
    bool has_min;
};

static void clist_free(clist_t *l);

void qfilter_free(qfilter_t *f)
{
    if (!f)
        return;
    clist_free(&f->must);
    clist_free(&f->should);
    clist_free(&f->must_not);
    clist_free(&f->min_should);
    free(f);
}

static void cond_cleanup(cond_t *c)
{
    free(c->key);
    json_decref(c->val);
    free(c->ids);
    qfilter_free(c->f);
}

static void clist_free(clist_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        cond_cleanup(&l->c[i]);
    free(l->c);
}

/* ============================================================================================ */
/* Compile                                                                                      */

static bool compile_filter_into(qfilter_t *f, json_t *j, char *msg, size_t len);

static bool key_of(json_t *o, const char *what, char **key, char *msg, size_t len)
{
    json_t *k = json_object_get(o, "key");
    if (!json_is_string(k) || !*json_string_value(k)) {
        snprintf(msg, len, "%s: missing field `key`", what);
        return false;
    }
    *key = tn_xstrdup(json_string_value(k));
    return true;
}

static bool scalar_ok(json_t *v)
{
    return json_is_string(v) || json_is_integer(v) || json_is_boolean(v);
}

static bool compile_match(cond_t *c, json_t *m, char *msg, size_t len)
{
    json_t *v;
    if ((v = json_object_get(m, "value"))) {
        if (!scalar_ok(v)) {
            snprintf(msg, len, "match.value must be a string, an integer or a boolean");
            return false;
        }
        c->t = C_MATCH_VALUE;
    } else if ((v = json_object_get(m, "any")) || (v = json_object_get(m, "except"))) {
        c->t = json_object_get(m, "any") ? C_MATCH_ANY : C_MATCH_EXCEPT;
        if (!json_is_array(v)) {
            snprintf(msg, len, "match.any / match.except must be an array");
            return false;
        }
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(e) && !json_is_integer(e)) {
                snprintf(msg, len, "match.any / match.except take strings or integers");
                return false;
            }
        }
    } else if ((v = json_object_get(m, "text")) || (v = json_object_get(m, "phrase"))) {
        if (!json_is_string(v)) {
            snprintf(msg, len, "match.text must be a string");
            return false;
        }
        c->t = C_MATCH_TEXT;
    } else {
        snprintf(msg, len,
                 "data did not match any variant of untagged enum Match (the fake knows value, "
                 "any, except, text, phrase)");
        return false;
    }
    c->val = json_incref(v);
    return true;
}

static bool compile_range(range_t *r, json_t *j, char *msg, size_t len)
{
    static const char *const names[] = {"gt", "gte", "lt", "lte"};
    if (!json_is_object(j)) {
        snprintf(msg, len, "range must be an object");
        return false;
    }
    for (size_t i = 0; i < 4; i++) {
        json_t *v = json_object_get(j, names[i]);
        if (!v || json_is_null(v))
            continue;
        if (!json_is_number(v)) {
            snprintf(msg, len, "range.%s must be a number (date-time ranges are not supported)",
                     names[i]);
            return false;
        }
        r->has[i] = true;
        r->v[i] = json_number_value(v);
    }
    return true;
}

static bool compile_cond(cond_t *c, json_t *j, char *msg, size_t len)
{
    json_t *v;
    memset(c, 0, sizeof(*c));
    if (!json_is_object(j)) {
        snprintf(msg, len, "a condition must be an object");
        return false;
    }
    if ((v = json_object_get(j, "has_id"))) {
        c->t = C_HAS_ID;
        if (!json_is_array(v)) {
            snprintf(msg, len, "has_id must be an array of point ids");
            return false;
        }
        c->ids = tn_xcalloc(json_array_size(v) + 1, sizeof(*c->ids));
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            if (!qid_parse(e, &c->ids[i])) {
                char d[96];
                qid_describe(e, d, sizeof(d));
                snprintf(msg, len,
                         "value %s is not a valid point ID, valid values are either an unsigned "
                         "integer or a UUID",
                         d);
                return false;
            }
        }
        c->nids = json_array_size(v);
        return true;
    }
    if ((v = json_object_get(j, "is_empty")) || (v = json_object_get(j, "is_null"))) {
        c->t = json_object_get(j, "is_empty") ? C_IS_EMPTY : C_IS_NULL;
        return key_of(v, c->t == C_IS_EMPTY ? "is_empty" : "is_null", &c->key, msg, len);
    }
    if ((v = json_object_get(j, "nested"))) {
        c->t = C_NESTED;
        if (!key_of(v, "nested", &c->key, msg, len))
            return false;
        c->f = tn_xcalloc(1, sizeof(*c->f));
        return compile_filter_into(c->f, json_object_get(v, "filter"), msg, len);
    }
    if (json_object_get(j, "has_vector")) {
        c->t = C_TRUE; /* one unnamed vector: every point has it */
        return true;
    }
    if (json_object_get(j, "must") || json_object_get(j, "should") ||
        json_object_get(j, "must_not") || json_object_get(j, "min_should")) {
        c->t = C_FILTER;
        c->f = tn_xcalloc(1, sizeof(*c->f));
        return compile_filter_into(c->f, j, msg, len);
    }
    if (!json_object_get(j, "key")) {
        snprintf(msg, len, "data did not match any variant of untagged enum Condition");
        return false;
    }
    if (!key_of(j, "field condition", &c->key, msg, len))
        return false;
    if ((v = json_object_get(j, "match")) && !json_is_null(v)) {
        if (!json_is_object(v)) {
            snprintf(msg, len, "match must be an object");
            return false;
        }
        return compile_match(c, v, msg, len);
    }
    if ((v = json_object_get(j, "range")) && !json_is_null(v)) {
        c->t = C_RANGE;
        return compile_range(&c->r, v, msg, len);
    }
    if ((v = json_object_get(j, "values_count")) && !json_is_null(v)) {
        c->t = C_VALUES_COUNT;
        return compile_range(&c->r, v, msg, len);
    }
    if ((v = json_object_get(j, "is_empty")) && json_is_boolean(v)) {
        c->t = json_is_true(v) ? C_IS_EMPTY : C_FILTER;
        if (c->t == C_FILTER) { /* is_empty: false = must_not is_empty */
            c->f = tn_xcalloc(1, sizeof(*c->f));
            c->f->must_not.c = tn_xcalloc(1, sizeof(cond_t));
            c->f->must_not.n = 1;
            c->f->must_not.c[0].t = C_IS_EMPTY;
            c->f->must_not.c[0].key = tn_xstrdup(c->key);
        }
        return true;
    }
    if (json_object_get(j, "geo_bounding_box") || json_object_get(j, "geo_radius") ||
        json_object_get(j, "geo_polygon") || json_object_get(j, "datetime_range")) {
        snprintf(msg, len, "geo and datetime conditions are not supported by the fake");
        return false;
    }
    snprintf(msg, len, "field condition on `%s` has no match, range or values_count", c->key);
    return false;
}

static bool compile_list(clist_t *l, json_t *j, char *msg, size_t len)
{
    if (!j || json_is_null(j))
        return true;
    if (json_is_object(j)) {
        l->c = tn_xcalloc(1, sizeof(cond_t));
        l->n = 1;
        return compile_cond(&l->c[0], j, msg, len);
    }
    if (!json_is_array(j)) {
        snprintf(msg, len, "must / should / must_not take a condition or an array of them");
        return false;
    }
    l->c = tn_xcalloc(json_array_size(j) + 1, sizeof(cond_t));
    size_t i;
    json_t *e;
    json_array_foreach(j, i, e)
    {
        l->n = i + 1;
        if (!compile_cond(&l->c[i], e, msg, len))
            return false;
    }
    return true;
}

static bool compile_filter_into(qfilter_t *f, json_t *j, char *msg, size_t len)
{
    if (!json_is_object(j)) {
        snprintf(msg, len, "a filter must be an object");
        return false;
    }
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v)
    {
        if (strcmp(k, "must") && strcmp(k, "should") && strcmp(k, "must_not") &&
            strcmp(k, "min_should")) {
            snprintf(msg, len,
                     "unknown field `%s`, expected one of `should`, `min_should`, `must`, "
                     "`must_not`",
                     k);
            return false;
        }
    }
    if (!compile_list(&f->must, json_object_get(j, "must"), msg, len) ||
        !compile_list(&f->should, json_object_get(j, "should"), msg, len) ||
        !compile_list(&f->must_not, json_object_get(j, "must_not"), msg, len))
        return false;
    json_t *ms = json_object_get(j, "min_should");
    if (ms && !json_is_null(ms)) {
        json_t *mc = json_object_get(ms, "min_count");
        if (!json_is_integer(mc) || json_integer_value(mc) < 1 ||
            !json_is_array(json_object_get(ms, "conditions"))) {
            snprintf(msg, len, "min_should needs conditions (an array) and min_count >= 1");
            return false;
        }
        f->has_min = true;
        f->min_count = (size_t)json_integer_value(mc);
        return compile_list(&f->min_should, json_object_get(ms, "conditions"), msg, len);
    }
    return true;
}

qfilter_t *qfilter_compile(json_t *j, char *msg, size_t len)
{
    msg[0] = '\0';
    if (!j || json_is_null(j))
        return NULL;
    qfilter_t *f = tn_xcalloc(1, sizeof(*f));
    if (!compile_filter_into(f, j, msg, len)) {
        qfilter_free(f);
        return NULL;
    }
    return f;
}

/* ============================================================================================ */
/* Payload values                                                                               */

static void push_flat(json_t *out, json_t *v)
{
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            json_array_append(out, e);
        }
    } else {
        json_array_append(out, v);
    }
}

static void collect(json_t *v, const char *key, json_t *out)
{
    if (!v)
        return;
    if (!*key) {
        push_flat(out, v);
        return;
    }
    if (json_is_array(v)) { /* "a.b" where a is an array of objects: look in each */
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            if (json_is_object(e))
                collect(e, key, out);
        }
        return;
    }
    if (!json_is_object(v))
        return;
    size_t n = strcspn(key, ".[");
    json_t *child = json_object_getn(v, key, n);
    const char *rest = key + n;
    if (strncmp(rest, "[]", 2) == 0)
        rest += 2; /* explicit array traversal: the same as the implicit one */
    if (*rest == '.')
        rest++;
    collect(child, rest, out);
}

void payload_values(json_t *payload, const char *key, json_t *out)
{
    collect(payload, key, out);
}

/* ============================================================================================ */
/* Match                                                                                        */

static bool value_eq(json_t *a, json_t *b)
{
    if (json_is_integer(a) && json_is_real(b))
        return (double)json_integer_value(a) == json_real_value(b);
    if (json_is_real(a) && json_is_integer(b))
        return json_real_value(a) == (double)json_integer_value(b);
    return json_equal(a, b);
}

static bool in_list(json_t *list, json_t *v)
{
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        if (value_eq(e, v))
            return true;
    }
    return false;
}

static bool range_ok(const range_t *r, double x)
{
    return (!r->has[0] || x > r->v[0]) && (!r->has[1] || x >= r->v[1]) &&
           (!r->has[2] || x < r->v[2]) && (!r->has[3] || x <= r->v[3]);
}

static bool cond_match(const cond_t *c, const qid_t *id, json_t *payload);

static bool list_all(const clist_t *l, const qid_t *id, json_t *p)
{
    for (size_t i = 0; i < l->n; i++) {
        if (!cond_match(&l->c[i], id, p))
            return false;
    }
    return true;
}

static size_t list_count(const clist_t *l, const qid_t *id, json_t *p, size_t enough)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n && n < enough; i++)
        n += cond_match(&l->c[i], id, p);
    return n;
}

static bool filter_match(const qfilter_t *f, const qid_t *id, json_t *p)
{
    if (!list_all(&f->must, id, p))
        return false;
    if (f->should.n && list_count(&f->should, id, p, 1) == 0)
        return false;
    if (list_count(&f->must_not, id, p, 1) > 0)
        return false;
    if (f->has_min && list_count(&f->min_should, id, p, f->min_count) < f->min_count)
        return false;
    return true;
}

static bool cond_match(const cond_t *c, const qid_t *id, json_t *payload)
{
    switch (c->t) {
    case C_TRUE:
        return true;
    case C_FILTER:
        return filter_match(c->f, id, payload);
    case C_HAS_ID:
        for (size_t i = 0; i < c->nids; i++) {
            if (qid_cmp(&c->ids[i], id) == 0)
                return true;
        }
        return false;
    default:
        break;
    }
    json_t *vals = json_array();
    bool ok = false;
    size_t i;
    json_t *v;
    if (c->t == C_NESTED) {
        json_t *top = json_array();
        collect(payload, c->key, top); /* the objects of the array at key */
        json_array_foreach(top, i, v)
        {
            if (json_is_object(v) && filter_match(c->f, id, v)) {
                ok = true;
                break;
            }
        }
        json_decref(top);
        json_decref(vals);
        return ok;
    }
    if (c->t == C_IS_NULL) {
        /* the key is present and null (or an array holding only null) */
        json_t *raw = json_array();
        collect(payload, c->key, raw);
        ok = json_array_size(raw) > 0;
        json_array_foreach(raw, i, v)
        {
            if (!json_is_null(v)) {
                ok = false;
                break;
            }
        }
        json_decref(raw);
        json_decref(vals);
        return ok;
    }
    collect(payload, c->key, vals);
    switch (c->t) {
    case C_IS_EMPTY:
        ok = true;
        json_array_foreach(vals, i, v)
        {
            if (!json_is_null(v)) {
                ok = false;
                break;
            }
        }
        break;
    case C_MATCH_VALUE:
        json_array_foreach(vals, i, v)
        {
            if (value_eq(c->val, v)) {
                ok = true;
                break;
            }
        }
        break;
    case C_MATCH_ANY:
        json_array_foreach(vals, i, v)
        {
            if (in_list(c->val, v)) {
                ok = true;
                break;
            }
        }
        break;
    case C_MATCH_EXCEPT:
        /* a point without the key matches, else any value not in the list */
        ok = json_array_size(vals) == 0;
        json_array_foreach(vals, i, v)
        {
            if (!in_list(c->val, v)) {
                ok = true;
                break;
            }
        }
        break;
    case C_MATCH_TEXT:
        json_array_foreach(vals, i, v)
        {
            if (json_is_string(v) && strstr(json_string_value(v), json_string_value(c->val))) {
                ok = true;
                break;
            }
        }
        break;
    case C_RANGE:
        json_array_foreach(vals, i, v)
        {
            if (json_is_number(v) && range_ok(&c->r, json_number_value(v))) {
                ok = true;
                break;
            }
        }
        break;
    case C_VALUES_COUNT:
        ok = range_ok(&c->r, (double)json_array_size(vals));
        break;
    default:
        break;
    }
    json_decref(vals);
    return ok;
}

bool qfilter_match(const qfilter_t *f, const qid_t *id, json_t *payload)
{
    return !f || filter_match(f, id, payload);
}

/* ============================================================================================ */
/* Candidates from the keyword indexes                                                          */

static void cand_push(cand_t *o, const iset_t *s)
{
    if (!s)
        return;
    if (o->nsets == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 8;
        o->sets = tn_xrealloc(o->sets, o->cap * sizeof(*o->sets));
    }
    o->sets[o->nsets++] = s;
    o->total += s->n;
}

static bool filter_cand(const qfilter_t *f, const coll_t *col, cand_t *o);

/* The candidates of one condition appended to @p o. @returns false when it pins nothing. */
static bool cond_cand(const cond_t *c, const coll_t *col, cand_t *o)
{
    bool indexed = false;
    size_t i;
    json_t *v;
    switch (c->t) {
    case C_MATCH_VALUE: /* a string matches string values only: those are all indexed */
        if (!json_is_string(c->val))
            return false;
        cand_push(o, coll_index_lookup(col, c->key, json_string_value(c->val),
                                       json_string_length(c->val), &indexed));
        return indexed;
    case C_MATCH_ANY:
        if (json_array_size(c->val) == 0)
            return false;
        json_array_foreach(c->val, i, v)
        {
            if (!json_is_string(v))
                return false;
        }
        json_array_foreach(c->val, i, v)
        {
            cand_push(o, coll_index_lookup(col, c->key, json_string_value(v), json_string_length(v),
                                           &indexed));
            if (!indexed)
                return false;
        }
        return true;
    case C_FILTER:
        return filter_cand(c->f, col, o);
    default:
        return false;
    }
}

/* A must condition that pins (the smallest candidates), else a should whose every branch pins
 * (the union). */
static bool filter_cand(const qfilter_t *f, const coll_t *col, cand_t *o)
{
    cand_t best = {0};
    bool have = false;
    for (size_t i = 0; i < f->must.n; i++) {
        cand_t t = {0};
        if (cond_cand(&f->must.c[i], col, &t) && (!have || t.total < best.total)) {
            free(best.sets);
            best = t;
            have = true;
        } else {
            free(t.sets);
        }
    }
    if (!have && f->should.n) {
        have = true;
        for (size_t i = 0; i < f->should.n && have; i++)
            have = cond_cand(&f->should.c[i], col, &best);
    }
    if (have) {
        for (size_t i = 0; i < best.nsets; i++)
            cand_push(o, best.sets[i]);
    }
    free(best.sets);
    return have;
}

bool qfilter_candidates(const qfilter_t *f, const coll_t *col, cand_t *out)
{
    return f && filter_cand(f, col, out);
}
