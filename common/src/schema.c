/* JSON Schema draft-07 validation: compile (ids, refs, regexes) once, validate many times. */
#include "taina/schema.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <math.h>
#include <stdarg.h>
#include <pcre2.h>
#include <stdio.h>
#include <string.h>

#include "schema_int.h"
#include "taina/mem.h"

#define MAX_DEPTH   200
#define MATCH_LIMIT 100000

typedef struct id_entry {
    char *uri; /* absolute, fragment kept only for plain-name ids ("...#foo") */
    const json_t *node;
} id_entry_t;

typedef struct ref_entry {
    const json_t *ref_node; /* the schema object holding "$ref" */
    const json_t *target;
} ref_entry_t;

typedef struct re_entry {
    char *pattern;
    pcre2_code *code;
} re_entry_t;

struct tn_schema {
    json_t *root;
    id_entry_t *ids;
    size_t nids;
    ref_entry_t *refs;
    size_t nrefs;
    re_entry_t *res;
    size_t nres;
    pcre2_match_context *mctx;
};

/* ---------------------------------------------------------------------------------------------
 * URIs: just enough of RFC 3986 resolution for $id and $ref */

static int has_scheme(const char *s)
{
    size_t n = strcspn(s, ":/?#");
    return n > 0 && s[n] == ':';
}

/* Resolve @p ref against @p base (both may have fragments). Caller frees. */
static char *uri_resolve(const char *base, const char *ref)
{
    if (has_scheme(ref) || !base || !*base)
        return tn_xstrdup(ref);
    size_t bl = strcspn(base, "#");
    if (ref[0] == '#')
        return tn_xasprintf("%.*s%s", (int)bl, base, ref);
    if (ref[0] == '/' && ref[1] == '/') { /* network path: keep the scheme */
        size_t sl = strcspn(base, ":");
        return tn_xasprintf("%.*s:%s", (int)sl, base, ref);
    }
    if (ref[0] == '/') { /* absolute path: keep scheme://authority */
        const char *p = strstr(base, "://");
        size_t al = p ? (size_t)(strcspn(p + 3, "/?#") + (size_t)(p + 3 - base)) : 0;
        return tn_xasprintf("%.*s%s", (int)al, base, ref);
    }
    /* relative path: replace the last segment of the base path */
    size_t dir = bl;
    while (dir > 0 && base[dir - 1] != '/')
        dir--;
    if (dir == 0) {
        const char *p = strstr(base, "://");
        if (p && !strchr(p + 3, '/'))
            return tn_xasprintf("%.*s/%s", (int)bl, base, ref);
    }
    return tn_xasprintf("%.*s%s", (int)dir, base, ref);
}

/* The URI without its fragment ("" fragment too). Caller frees. */
static char *uri_strip_fragment(const char *uri)
{
    return tn_xstrndup(uri, strcspn(uri, "#"));
}

/* ---------------------------------------------------------------------------------------------
 * Compile */

static const json_t *id_lookup(const tn_schema_t *s, const char *uri)
{
    for (size_t i = 0; i < s->nids; i++)
        if (strcmp(s->ids[i].uri, uri) == 0)
            return s->ids[i].node;
    return NULL;
}

static void id_add(tn_schema_t *s, char *uri, const json_t *node)
{
    s->ids = tn_xrealloc(s->ids, (s->nids + 1) * sizeof(*s->ids));
    s->ids[s->nids].uri = uri;
    s->ids[s->nids].node = node;
    s->nids++;
}

static pcre2_code *regex_get(const tn_schema_t *s, const char *pattern)
{
    for (size_t i = 0; i < s->nres; i++)
        if (strcmp(s->res[i].pattern, pattern) == 0)
            return s->res[i].code;
    return NULL;
}

static int regex_add(tn_schema_t *s, const char *pattern, char *errbuf, size_t errlen)
{
    if (regex_get(s, pattern))
        return 0;
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                     PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &ec, &eo, NULL);
    if (!code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof(msg));
        snprintf(errbuf, errlen, "pattern \"%s\": %s at offset %zu", pattern, (const char *)msg,
                 (size_t)eo);
        return -1;
    }
    if (!TN_ON_VALGRIND())
        pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    s->res = tn_xrealloc(s->res, (s->nres + 1) * sizeof(*s->res));
    s->res[s->nres].pattern = tn_xstrdup(pattern);
    s->res[s->nres].code = code;
    s->nres++;
    return 0;
}

/* Keywords whose value is a schema, an array of schemas, or an object of schemas. */
static const char *const kw_schema[] = {"additionalItems",
                                        "additionalProperties",
                                        "contains",
                                        "propertyNames",
                                        "not",
                                        "if",
                                        "then",
                                        "else",
                                        NULL};
static const char *const kw_array[] = {"allOf", "anyOf", "oneOf", NULL};
static const char *const kw_object[] = {"properties", "patternProperties", "definitions",
                                        "dependencies", NULL};

typedef struct walk {
    tn_schema_t *s;
    char *errbuf;
    size_t errlen;
    int pass; /* 1: collect ids and regexes, 2: resolve refs */
} walk_t;

static int walk(walk_t *w, const json_t *node, const char *base, int depth);

static int walk_children(walk_t *w, const json_t *node, const char *base, int depth)
{
    for (size_t i = 0; kw_schema[i]; i++) {
        const json_t *v = json_object_get(node, kw_schema[i]);
        if (v && walk(w, v, base, depth + 1))
            return -1;
    }
    for (size_t i = 0; kw_array[i]; i++) {
        const json_t *v = json_object_get(node, kw_array[i]);
        size_t k;
        const json_t *e;
        json_array_foreach(v, k, e) if (walk(w, e, base, depth + 1)) return -1;
    }
    const json_t *items = json_object_get(node, "items");
    if (json_is_array(items)) {
        size_t k;
        const json_t *e;
        json_array_foreach(items, k, e) if (walk(w, e, base, depth + 1)) return -1;
    } else if (items && walk(w, items, base, depth + 1)) {
        return -1;
    }
    for (size_t i = 0; kw_object[i]; i++) {
        const json_t *v = json_object_get(node, kw_object[i]);
        const char *key;
        const json_t *e;
        json_object_foreach((json_t *)v, key, e)
        {
            if (w->pass == 1 && i == 1 && regex_add(w->s, key, w->errbuf, w->errlen))
                return -1;
            if ((json_is_object(e) || json_is_boolean(e)) && walk(w, e, base, depth + 1))
                return -1;
        }
    }
    return 0;
}

/* JSON Pointer (a URI fragment: percent-encoded, ~0 ~1) from @p node. */
static const json_t *pointer_get(const json_t *node, const char *frag)
{
    char seg[512];
    const char *p = frag;
    while (node && *p == '/') {
        p++;
        size_t n = 0;
        while (*p && *p != '/' && n < sizeof(seg) - 1) {
            char c = *p++;
            if (c == '%' && p[0] && p[1]) {
                char hex[3] = {p[0], p[1], 0};
                c = (char)strtol(hex, NULL, 16);
                p += 2;
            } else if (c == '~' && (*p == '0' || *p == '1')) {
                c = *p++ == '0' ? '~' : '/';
            }
            seg[n++] = c;
        }
        seg[n] = '\0';
        if (json_is_object(node)) {
            node = json_object_get(node, seg);
        } else if (json_is_array(node)) {
            char *end;
            long idx = strtol(seg, &end, 10);
            node = (*end || n == 0 || idx < 0) ? NULL : json_array_get(node, (size_t)idx);
        } else {
            node = NULL;
        }
    }
    return *p ? NULL : node;
}

static const json_t *resolve_ref(const tn_schema_t *s, const char *base, const char *ref)
{
    char *abs = uri_resolve(base, ref);
    const char *hash = strchr(abs, '#');
    const json_t *target = NULL;
    if (!hash || hash[1] == '\0' || hash[1] == '/') {
        char *doc = uri_strip_fragment(abs);
        const json_t *d = id_lookup(s, doc);
        if (!d && !*doc)
            d = s->root;
        target = d ? (hash ? pointer_get(d, hash + 1) : d) : NULL;
        free(doc);
    } else {
        target = id_lookup(s, abs);
    }
    free(abs);
    return target;
}

static int walk(walk_t *w, const json_t *node, const char *base, int depth)
{
    if (!json_is_object(node))
        return 0;
    if (depth > MAX_DEPTH) {
        snprintf(w->errbuf, w->errlen, "schema nested deeper than %d levels", MAX_DEPTH);
        return -1;
    }
    const char *ref = json_string_value(json_object_get(node, "$ref"));
    if (ref && w->pass == 2) {
        const json_t *t = resolve_ref(w->s, base, ref);
        if (!t) {
            snprintf(w->errbuf, w->errlen,
                     "$ref \"%s\" cannot be resolved (only references within the same document "
                     "are supported)",
                     ref);
            return -1;
        }
        tn_schema_t *s = w->s;
        s->refs = tn_xrealloc(s->refs, (s->nrefs + 1) * sizeof(*s->refs));
        s->refs[s->nrefs].ref_node = node;
        s->refs[s->nrefs].target = t;
        s->nrefs++;
    }
    /* draft-07: the siblings of $ref, $id included, do not apply; their subschemas may still be
     * the targets of other references, so they are walked. */
    char *mybase = NULL;
    const char *id = ref ? NULL : json_string_value(json_object_get(node, "$id"));
    if (id) {
        mybase = uri_resolve(base, id);
        if (w->pass == 1) {
            /* "#foo" names the node; a URI with an empty fragment names a document */
            const char *hash = strchr(mybase, '#');
            id_add(w->s, hash && hash[1] ? tn_xstrdup(mybase) : uri_strip_fragment(mybase), node);
        }
        if (strchr(id, '#') == id) { /* a plain-name id does not change the base */
            free(mybase);
            mybase = tn_xstrdup(base);
        }
    }
    const char *pat = json_string_value(json_object_get(node, "pattern"));
    if (w->pass == 1 && pat && regex_add(w->s, pat, w->errbuf, w->errlen)) {
        free(mybase);
        return -1;
    }
    int rc = walk_children(w, node, mybase ? mybase : base, depth);
    free(mybase);
    return rc;
}

tn_schema_t *tn_schema_compile(const json_t *schema, char *errbuf, size_t errlen)
{
    if (!json_is_object(schema) && !json_is_boolean(schema)) {
        snprintf(errbuf, errlen, "a schema is an object or a boolean");
        return NULL;
    }
    tn_schema_t *s = tn_xcalloc(1, sizeof(*s));
    s->root = json_deep_copy(schema);
    s->mctx = pcre2_match_context_create(NULL);
    pcre2_set_match_limit(s->mctx, MATCH_LIMIT);
    pcre2_set_depth_limit(s->mctx, 5000);
    const char *rid = json_string_value(json_object_get(s->root, "$id"));
    char *base = rid ? uri_strip_fragment(rid) : tn_xstrdup("");
    id_add(s, tn_xstrdup(base), s->root);
    walk_t w = {s, errbuf, errlen, 1};
    int rc = walk(&w, s->root, base, 0);
    if (rc == 0) {
        w.pass = 2;
        rc = walk(&w, s->root, base, 0);
    }
    free(base);
    if (rc != 0) {
        tn_schema_destroy(s);
        return NULL;
    }
    return s;
}

tn_schema_t *tn_schema_load(const char *path, char *errbuf, size_t errlen)
{
    json_error_t jerr;
    json_t *j = json_load_file(path, JSON_DECODE_ANY, &jerr);
    if (!j) {
        snprintf(errbuf, errlen, "%s:%d: %s", path, jerr.line, jerr.text);
        return NULL;
    }
    char sub[400];
    tn_schema_t *s = tn_schema_compile(j, sub, sizeof(sub));
    if (!s)
        snprintf(errbuf, errlen, "%s: %s", path, sub);
    json_decref(j);
    return s;
}

void tn_schema_destroy(tn_schema_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nids; i++)
        free(s->ids[i].uri);
    for (size_t i = 0; i < s->nres; i++) {
        free(s->res[i].pattern);
        pcre2_code_free(s->res[i].code);
    }
    free(s->ids);
    free(s->refs);
    free(s->res);
    pcre2_match_context_free(s->mctx);
    json_decref(s->root);
    free(s);
}

/* ---------------------------------------------------------------------------------------------
 * Validate */

typedef struct vctx {
    const tn_schema_t *s;
    tn_schema_error_t *errs;
    size_t maxerrs, nerrs;
    int quiet; /* inside anyOf/oneOf/not/if/contains trials: no errors recorded */
    char ipath[256];
    size_t ilen;
    char spath[256];
    size_t slen;
    int depth;
    pcre2_match_data *md;
} vctx_t;

/* Push a JSON Pointer segment (escaped) on a path; returns the old length to pop back to. */
static size_t path_push(char *path, size_t *len, size_t cap, const char *seg)
{
    size_t old = *len;
    size_t n = *len;
    if (n + 1 < cap)
        path[n++] = '/';
    for (const char *p = seg; *p && n + 2 < cap; p++) {
        if (*p == '~' || *p == '/') {
            path[n++] = '~';
            path[n++] = *p == '~' ? '0' : '1';
        } else {
            path[n++] = *p;
        }
    }
    path[n] = '\0';
    *len = n;
    return old;
}

static void path_pop(char *path, size_t *len, size_t old)
{
    *len = old;
    path[old] = '\0';
}

#define IPUSH(v, seg) size_t io_ = path_push((v)->ipath, &(v)->ilen, sizeof((v)->ipath), (seg))
#define IPOP(v)       path_pop((v)->ipath, &(v)->ilen, io_)

static int fail(vctx_t *v, const char *kw, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(vctx_t *v, const char *kw, const char *fmt, ...)
{
    if (v->quiet)
        return 0;
    if (v->nerrs++ >= v->maxerrs)
        return 0;
    tn_schema_error_t *e = &v->errs[v->nerrs - 1];
    snprintf(e->instance_path, sizeof(e->instance_path), "%s", v->ipath);
    snprintf(e->schema_path, sizeof(e->schema_path), "#%.200s/%.40s", v->spath, kw);
    snprintf(e->keyword, sizeof(e->keyword), "%s", kw);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    return 0;
}

static int validate(vctx_t *v, const json_t *schema, const json_t *inst);

/* Validate against a subschema reached by keyword (and an optional key/index) of the schema. */
static int sub(vctx_t *v, const json_t *schema, const json_t *inst, const char *kw, const char *key)
{
    size_t so = path_push(v->spath, &v->slen, sizeof(v->spath), kw);
    if (key)
        path_push(v->spath, &v->slen, sizeof(v->spath), key);
    int ok = validate(v, schema, inst);
    path_pop(v->spath, &v->slen, so);
    return ok;
}

/* Run a trial validation that records no errors. */
static int trial(vctx_t *v, const json_t *schema, const json_t *inst)
{
    int q = v->quiet;
    v->quiet = 1;
    int ok = validate(v, schema, inst);
    v->quiet = q;
    return ok;
}

static int is_number(const json_t *j)
{
    return json_is_integer(j) || json_is_real(j);
}

static double num(const json_t *j)
{
    return json_is_integer(j) ? (double)json_integer_value(j) : json_real_value(j);
}

/* JSON equality where 1 and 1.0 are equal. */
static int json_eq(const json_t *a, const json_t *b)
{
    if (is_number(a) && is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b))
            return json_integer_value(a) == json_integer_value(b);
        return num(a) == num(b);
    }
    if (json_typeof(a) != json_typeof(b))
        return 0;
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!json_eq(json_array_get(a, i), json_array_get(b, i)))
                return 0;
        return 1;
    }
    if (json_is_object(a)) {
        if (json_object_size(a) != json_object_size(b))
            return 0;
        const char *k;
        json_t *va;
        json_object_foreach((json_t *)a, k, va)
        {
            const json_t *vb = json_object_get(b, k);
            if (!vb || !json_eq(va, vb))
                return 0;
        }
        return 1;
    }
    return json_equal(a, b);
}

static size_t utf8_len(const char *s, size_t bytes)
{
    size_t n = 0;
    for (size_t i = 0; i < bytes; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

static int type_is(const json_t *inst, const char *t)
{
    if (!strcmp(t, "object"))
        return json_is_object(inst);
    if (!strcmp(t, "array"))
        return json_is_array(inst);
    if (!strcmp(t, "string"))
        return json_is_string(inst);
    if (!strcmp(t, "boolean"))
        return json_is_boolean(inst);
    if (!strcmp(t, "null"))
        return json_is_null(inst);
    if (!strcmp(t, "number"))
        return is_number(inst);
    if (!strcmp(t, "integer"))
        return json_is_integer(inst) || (json_is_real(inst) && isfinite(json_real_value(inst)) &&
                                         json_real_value(inst) == floor(json_real_value(inst)));
    return 0;
}

static const char *type_name(const json_t *inst)
{
    switch (json_typeof(inst)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

/* 1 match, 0 no match, -1 error (match limit) */
static int regex_match(vctx_t *v, const char *pattern, const char *str, size_t len)
{
    pcre2_code *code = regex_get(v->s, pattern);
    if (!code)
        return -1;
    int rc = pcre2_match(code, (PCRE2_SPTR)str, len, 0, 0, v->md, v->s->mctx);
    if (rc >= 0)
        return 1;
    return rc == PCRE2_ERROR_NOMATCH ? 0 : -1;
}

static int v_number(vctx_t *v, const json_t *s, const json_t *inst)
{
    int ok = 1;
    double x = num(inst);
    const json_t *k;
    k = json_object_get(s, "minimum");
    if (is_number(k) && x < num(k))
        ok = fail(v, "minimum", "%g is less than the minimum %g", x, num(k));
    k = json_object_get(s, "maximum");
    if (is_number(k) && x > num(k))
        ok = fail(v, "maximum", "%g is greater than the maximum %g", x, num(k));
    k = json_object_get(s, "exclusiveMinimum");
    if (is_number(k) && x <= num(k))
        ok = fail(v, "exclusiveMinimum", "%g is not greater than %g", x, num(k));
    k = json_object_get(s, "exclusiveMaximum");
    if (is_number(k) && x >= num(k))
        ok = fail(v, "exclusiveMaximum", "%g is not less than %g", x, num(k));
    k = json_object_get(s, "multipleOf");
    if (is_number(k) && num(k) > 0) {
        int mult;
        if (json_is_integer(inst) && json_is_integer(k)) {
            mult = json_integer_value(inst) % json_integer_value(k) == 0;
        } else {
            double q = x / num(k);
            mult = isfinite(q) && fabs(q - nearbyint(q)) <= 1e-9 * fmax(1.0, fabs(q));
        }
        if (!mult)
            ok = fail(v, "multipleOf", "%g is not a multiple of %g", x, num(k));
    }
    return ok;
}

static int v_string(vctx_t *v, const json_t *s, const json_t *inst)
{
    int ok = 1;
    const char *str = json_string_value(inst);
    size_t bytes = json_string_length(inst);
    const json_t *k;
    size_t n = utf8_len(str, bytes);
    k = json_object_get(s, "minLength");
    if (json_is_integer(k) && (json_int_t)n < json_integer_value(k))
        ok = fail(v, "minLength", "%zu characters, fewer than %lld", n,
                  (long long)json_integer_value(k));
    k = json_object_get(s, "maxLength");
    if (json_is_integer(k) && (json_int_t)n > json_integer_value(k))
        ok = fail(v, "maxLength", "%zu characters, more than %lld", n,
                  (long long)json_integer_value(k));
    const char *pat = json_string_value(json_object_get(s, "pattern"));
    if (pat) {
        int m = regex_match(v, pat, str, bytes);
        if (m < 0)
            ok = fail(v, "pattern", "too costly to match against \"%s\"", pat);
        else if (m == 0)
            ok = fail(v, "pattern", "does not match \"%s\"", pat);
    }
    const char *fmt = json_string_value(json_object_get(s, "format"));
    if (fmt && !tn_schema_format_ok(fmt, str, bytes))
        ok = fail(v, "format", "not a valid %s", fmt);
    return ok;
}

static int v_array(vctx_t *v, const json_t *s, const json_t *inst)
{
    int ok = 1;
    size_t n = json_array_size(inst);
    const json_t *k;
    char idx[24];
    k = json_object_get(s, "minItems");
    if (json_is_integer(k) && (json_int_t)n < json_integer_value(k))
        ok = fail(v, "minItems", "%zu items, fewer than %lld", n, (long long)json_integer_value(k));
    k = json_object_get(s, "maxItems");
    if (json_is_integer(k) && (json_int_t)n > json_integer_value(k))
        ok = fail(v, "maxItems", "%zu items, more than %lld", n, (long long)json_integer_value(k));
    if (json_is_true(json_object_get(s, "uniqueItems"))) {
        for (size_t i = 0; i < n && ok; i++)
            for (size_t j = i + 1; j < n; j++)
                if (json_eq(json_array_get(inst, i), json_array_get(inst, j))) {
                    ok = fail(v, "uniqueItems", "items %zu and %zu are equal", i, j);
                    break;
                }
    }
    const json_t *items = json_object_get(s, "items");
    if (json_is_array(items)) {
        size_t ni = json_array_size(items);
        for (size_t i = 0; i < n && i < ni; i++) {
            snprintf(idx, sizeof(idx), "%zu", i);
            IPUSH(v, idx);
            ok &= sub(v, json_array_get(items, i), json_array_get(inst, i), "items", idx);
            IPOP(v);
        }
        const json_t *add = json_object_get(s, "additionalItems");
        for (size_t i = ni; add && i < n; i++) {
            snprintf(idx, sizeof(idx), "%zu", i);
            IPUSH(v, idx);
            ok &= sub(v, add, json_array_get(inst, i), "additionalItems", NULL);
            IPOP(v);
        }
    } else if (items) {
        for (size_t i = 0; i < n; i++) {
            snprintf(idx, sizeof(idx), "%zu", i);
            IPUSH(v, idx);
            ok &= sub(v, items, json_array_get(inst, i), "items", NULL);
            IPOP(v);
        }
    }
    const json_t *contains = json_object_get(s, "contains");
    if (contains) {
        int found = 0;
        for (size_t i = 0; i < n && !found; i++)
            found = trial(v, contains, json_array_get(inst, i));
        if (!found)
            ok = fail(v, "contains", "no item matches the contains schema");
    }
    return ok;
}

static int v_object(vctx_t *v, const json_t *s, const json_t *inst)
{
    int ok = 1;
    size_t n = json_object_size(inst);
    const json_t *k;
    k = json_object_get(s, "minProperties");
    if (json_is_integer(k) && (json_int_t)n < json_integer_value(k))
        ok = fail(v, "minProperties", "%zu properties, fewer than %lld", n,
                  (long long)json_integer_value(k));
    k = json_object_get(s, "maxProperties");
    if (json_is_integer(k) && (json_int_t)n > json_integer_value(k))
        ok = fail(v, "maxProperties", "%zu properties, more than %lld", n,
                  (long long)json_integer_value(k));
    const json_t *req = json_object_get(s, "required");
    size_t i;
    const json_t *e;
    json_array_foreach(req, i, e)
    {
        const char *name = json_string_value(e);
        if (name && !json_object_get(inst, name))
            ok = fail(v, "required", "missing property \"%s\"", name);
    }
    const json_t *props = json_object_get(s, "properties");
    const json_t *pprops = json_object_get(s, "patternProperties");
    const json_t *addl = json_object_get(s, "additionalProperties");
    const json_t *pnames = json_object_get(s, "propertyNames");
    const json_t *deps = json_object_get(s, "dependencies");
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)inst, key, val)
    {
        int matched = 0;
        IPUSH(v, key);
        const json_t *ps = json_object_get(props, key);
        if (ps) {
            matched = 1;
            ok &= sub(v, ps, val, "properties", key);
        }
        const char *pat;
        const json_t *pss;
        json_object_foreach((json_t *)pprops, pat, pss)
        {
            int m = regex_match(v, pat, key, strlen(key));
            if (m < 0)
                ok = fail(v, "patternProperties", "too costly to match \"%s\"", pat);
            if (m > 0) {
                matched = 1;
                ok &= sub(v, pss, val, "patternProperties", pat);
            }
        }
        if (!matched && addl) {
            if (json_is_false(addl))
                ok = fail(v, "additionalProperties", "property \"%s\" is not allowed", key);
            else
                ok &= sub(v, addl, val, "additionalProperties", NULL);
        }
        IPOP(v);
        if (pnames) {
            json_t *name = json_string(key);
            if (!trial(v, pnames, name))
                ok = fail(v, "propertyNames", "property name \"%s\" is not allowed", key);
            json_decref(name);
        }
        const json_t *dep = json_object_get(deps, key);
        if (json_is_array(dep)) {
            size_t j;
            const json_t *d;
            json_array_foreach(dep, j, d)
            {
                const char *dn = json_string_value(d);
                if (dn && !json_object_get(inst, dn))
                    ok = fail(v, "dependencies", "\"%s\" requires property \"%s\"", key, dn);
            }
        } else if (dep) {
            ok &= sub(v, dep, inst, "dependencies", key);
        }
    }
    return ok;
}

static int v_combinators(vctx_t *v, const json_t *s, const json_t *inst)
{
    int ok = 1;
    size_t i;
    const json_t *e;
    char idx[24];
    const json_t *all = json_object_get(s, "allOf");
    json_array_foreach(all, i, e)
    {
        snprintf(idx, sizeof(idx), "%zu", i);
        ok &= sub(v, e, inst, "allOf", idx);
    }
    const json_t *any = json_object_get(s, "anyOf");
    if (any) {
        int found = 0;
        json_array_foreach(any, i, e) if ((found = trial(v, e, inst))) break;
        if (!found)
            ok = fail(v, "anyOf", "matches none of the anyOf schemas");
    }
    const json_t *one = json_object_get(s, "oneOf");
    if (one) {
        int count = 0;
        json_array_foreach(one, i, e) count += trial(v, e, inst);
        if (count != 1)
            ok = fail(v, "oneOf", "matches %d of the oneOf schemas, not exactly one", count);
    }
    const json_t *not = json_object_get(s, "not");
    if (not &&trial(v, not, inst))
        ok = fail(v, "not", "matches the schema under not");
    const json_t *ifs = json_object_get(s, "if");
    if (ifs) {
        const json_t *then = json_object_get(s, "then"), *els = json_object_get(s, "else");
        if (trial(v, ifs, inst)) {
            if (then)
                ok &= sub(v, then, inst, "then", NULL);
        } else if (els) {
            ok &= sub(v, els, inst, "else", NULL);
        }
    }
    return ok;
}

static const json_t *ref_target(const tn_schema_t *s, const json_t *node)
{
    for (size_t i = 0; i < s->nrefs; i++)
        if (s->refs[i].ref_node == node)
            return s->refs[i].target;
    return NULL;
}

static int validate(vctx_t *v, const json_t *schema, const json_t *inst)
{
    if (json_is_true(schema))
        return 1;
    if (json_is_false(schema))
        return fail(v, "false", "no value is allowed here");
    if (!json_is_object(schema))
        return 1;
    if (v->depth >= MAX_DEPTH)
        return fail(v, "$ref", "references nest deeper than %d levels", MAX_DEPTH);
    v->depth++;
    int ok = 1;
    if (json_object_get(schema, "$ref")) {
        const json_t *t = ref_target(v->s, schema);
        ok = t ? sub(v, t, inst, "$ref", NULL) : fail(v, "$ref", "unresolved reference");
        v->depth--;
        return ok;
    }
    const json_t *type = json_object_get(schema, "type");
    if (json_is_string(type) && !type_is(inst, json_string_value(type))) {
        ok = fail(v, "type", "%s, expected %s", type_name(inst), json_string_value(type));
    } else if (json_is_array(type)) {
        int any = 0;
        size_t i;
        const json_t *t;
        json_array_foreach(type, i, t) any |=
            json_is_string(t) && type_is(inst, json_string_value(t));
        if (!any)
            ok = fail(v, "type", "%s is not one of the allowed types", type_name(inst));
    }
    const json_t *en = json_object_get(schema, "enum");
    if (en) {
        int found = 0;
        size_t i;
        const json_t *e;
        json_array_foreach(en, i, e) if ((found = json_eq(e, inst))) break;
        if (!found)
            ok = fail(v, "enum", "not one of the allowed values");
    }
    const json_t *cst = json_object_get(schema, "const");
    if (cst && !json_eq(cst, inst))
        ok = fail(v, "const", "not the required value");
    if (is_number(inst))
        ok &= v_number(v, schema, inst);
    else if (json_is_string(inst))
        ok &= v_string(v, schema, inst);
    else if (json_is_array(inst))
        ok &= v_array(v, schema, inst);
    else if (json_is_object(inst))
        ok &= v_object(v, schema, inst);
    ok &= v_combinators(v, schema, inst);
    v->depth--;
    return ok;
}

tn_err_t tn_schema_validate(const tn_schema_t *s, const json_t *instance, tn_schema_error_t *errs,
                            size_t maxerrs, size_t *nerrs)
{
    vctx_t v;
    memset(&v, 0, sizeof(v));
    v.s = s;
    v.errs = errs;
    v.maxerrs = errs ? maxerrs : 0;
    v.md = pcre2_match_data_create(1, NULL);
    int ok = validate(&v, s->root, instance);
    pcre2_match_data_free(v.md);
    if (nerrs)
        *nerrs = v.nerrs < v.maxerrs ? v.nerrs : v.maxerrs;
    return ok ? TN_OK : TN_ERR_SCHEMA;
}

char *tn_schema_error_format(const tn_schema_error_t *e, char *buf, size_t len)
{
    snprintf(buf, len, "%s: %s: %s (%s)", *e->instance_path ? e->instance_path : "/", e->keyword,
             e->message, e->schema_path);
    return buf;
}
