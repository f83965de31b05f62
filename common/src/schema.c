/* JSON Schema draft-07 validation: compile (ids, refs, regexes) once, validate many times. */
#include "taina/schema.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <math.h>
#include <stdarg.h>
#include <pcre2.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "schema_int.h"
#include "taina/mem.h"
#include "taina/text.h"

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

/* The compiled form of one schema object: its keywords looked up once, regexes and types
 * resolved, so validation does no string lookups in the schema. */
typedef struct snode {
    const json_t *js;
    const json_t *ref;    /* "$ref" target (a schema object or boolean), when has_ref */
    int has_ref, bad_ref; /* bad_ref: a "$ref" that was not resolved */
    const json_t *type;   /* as written, for messages */
    unsigned types;       /* T_* bits allowed by "type"; checked when type != NULL */
    const json_t *enum_, *const_;
    const json_t *minimum, *maximum, *xmin, *xmax, *multiple;
    json_int_t min_len, max_len; /* -1: absent */
    pcre2_code *pattern;
    const char *pattern_src, *format;
    json_int_t min_items, max_items, min_props, max_props;
    int unique;
    const json_t *items, *additional_items, *contains;
    const json_t *required, *properties, *pattern_props, *additional_props, *property_names,
        *dependencies;
    const json_t *all_of, *any_of, *one_of, *not_, *if_, *then_, *else_;
    int any_number, any_string, any_array, any_object, any_comb; /* keyword groups present */
} snode_t;

enum {
    T_OBJECT = 1,
    T_ARRAY = 2,
    T_STRING = 4,
    T_BOOLEAN = 8,
    T_NULL = 16,
    T_NUMBER = 32,
    T_INTEGER = 64
};

struct tn_schema {
    json_t *root;
    snode_t **nodes; /* open addressing by json_t pointer; ncap is a power of two */
    size_t nnodes, ncap;
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

static size_t node_slot(const tn_schema_t *s, const json_t *js)
{
    uint64_t h = (uint64_t)(uintptr_t)js * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 17) & (s->ncap - 1);
}

static const snode_t *node_get(const tn_schema_t *s, const json_t *js)
{
    if (!s->ncap)
        return NULL;
    for (size_t i = node_slot(s, js);; i = (i + 1) & (s->ncap - 1)) {
        if (!s->nodes[i])
            return NULL;
        if (s->nodes[i]->js == js)
            return s->nodes[i];
    }
}

static void node_put(tn_schema_t *s, snode_t *n)
{
    if ((s->nnodes + 1) * 2 > s->ncap) {
        size_t ocap = s->ncap;
        snode_t **old = s->nodes;
        s->ncap = ocap ? ocap * 2 : 64;
        s->nodes = tn_xcalloc(s->ncap, sizeof(*s->nodes));
        s->nnodes = 0;
        for (size_t i = 0; i < ocap; i++)
            if (old[i])
                node_put(s, old[i]);
        free(old);
    }
    size_t j = node_slot(s, n->js);
    while (s->nodes[j])
        j = (j + 1) & (s->ncap - 1);
    s->nodes[j] = n;
    s->nnodes++;
}

static unsigned type_bit(const char *t)
{
    static const struct {
        const char *name;
        unsigned bit;
    } map[] = {{"object", T_OBJECT},   {"array", T_ARRAY}, {"string", T_STRING},
               {"boolean", T_BOOLEAN}, {"null", T_NULL},   {"number", T_NUMBER},
               {"integer", T_INTEGER}};
    for (size_t i = 0; t && i < sizeof(map) / sizeof(*map); i++)
        if (!strcmp(map[i].name, t))
            return map[i].bit;
    return 0;
}

static json_int_t int_kw(const json_t *js, const char *kw)
{
    const json_t *k = json_object_get(js, kw);
    return json_is_integer(k) ? json_integer_value(k) : -1;
}

static const json_t *num_kw(const json_t *js, const char *kw)
{
    const json_t *k = json_object_get(js, kw);
    return json_is_integer(k) || json_is_real(k) ? k : NULL;
}

/* Compile one schema object into a node (its subschemas get their own). */
static void node_add(tn_schema_t *s, const json_t *js)
{
    snode_t *n = tn_xcalloc(1, sizeof(*n));
    n->js = js;
    n->bad_ref = json_object_get(js, "$ref") != NULL;
    n->type = json_object_get(js, "type");
    if (json_is_string(n->type)) {
        n->types = type_bit(json_string_value(n->type));
    } else if (json_is_array(n->type)) {
        for (size_t i = 0; i < json_array_size(n->type); i++)
            n->types |= type_bit(json_string_value(json_array_get(n->type, i)));
    } else {
        n->type = NULL;
    }
    n->enum_ = json_object_get(js, "enum");
    n->const_ = json_object_get(js, "const");
    n->minimum = num_kw(js, "minimum");
    n->maximum = num_kw(js, "maximum");
    n->xmin = num_kw(js, "exclusiveMinimum");
    n->xmax = num_kw(js, "exclusiveMaximum");
    n->multiple = num_kw(js, "multipleOf");
    n->min_len = int_kw(js, "minLength");
    n->max_len = int_kw(js, "maxLength");
    n->pattern_src = json_string_value(json_object_get(js, "pattern"));
    n->format = json_string_value(json_object_get(js, "format"));
    n->min_items = int_kw(js, "minItems");
    n->max_items = int_kw(js, "maxItems");
    n->min_props = int_kw(js, "minProperties");
    n->max_props = int_kw(js, "maxProperties");
    n->unique = json_is_true(json_object_get(js, "uniqueItems"));
    n->items = json_object_get(js, "items");
    n->additional_items = json_object_get(js, "additionalItems");
    n->contains = json_object_get(js, "contains");
    n->required = json_object_get(js, "required");
    n->properties = json_object_get(js, "properties");
    n->pattern_props = json_object_get(js, "patternProperties");
    n->additional_props = json_object_get(js, "additionalProperties");
    n->property_names = json_object_get(js, "propertyNames");
    n->dependencies = json_object_get(js, "dependencies");
    n->all_of = json_object_get(js, "allOf");
    n->any_of = json_object_get(js, "anyOf");
    n->one_of = json_object_get(js, "oneOf");
    n->not_ = json_object_get(js, "not");
    n->if_ = json_object_get(js, "if");
    n->then_ = json_object_get(js, "then");
    n->else_ = json_object_get(js, "else");
    n->any_number = n->minimum || n->maximum || n->xmin || n->xmax || n->multiple;
    n->any_string = n->min_len >= 0 || n->max_len >= 0 || n->pattern_src || n->format;
    n->any_array = n->min_items >= 0 || n->max_items >= 0 || n->unique || n->items || n->contains;
    n->any_object = n->min_props >= 0 || n->max_props >= 0 || n->required || n->properties ||
                    n->pattern_props || n->additional_props || n->property_names || n->dependencies;
    n->any_comb = n->all_of || n->any_of || n->one_of || n->not_ || n->if_;
    node_put(s, n);
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
    int pass; /* 1: collect ids and regexes, 2: resolve refs, 3: build nodes */
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
            if (w->pass != 2 && i == 1 && regex_add(w->s, key, w->errbuf, w->errlen))
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
    if (w->pass == 3) {
        if (node_get(w->s, node))
            return 0; /* built, with its subtree */
        node_add(w->s, node);
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
    if (w->pass != 2 && pat && regex_add(w->s, pat, w->errbuf, w->errlen)) {
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
    if (rc == 0) {
        /* Nodes for every subschema, then for reference targets outside the keywords walked
         * (their own patterns are compiled here too). */
        w.pass = 3;
        rc = walk(&w, s->root, base, 0);
        for (size_t i = 0; rc == 0 && i < s->nrefs; i++)
            rc = walk(&w, s->refs[i].target, base, 0);
        for (size_t i = 0; rc == 0 && i < s->nrefs; i++) {
            snode_t *n = (snode_t *)node_get(s, s->refs[i].ref_node);
            n->has_ref = 1;
            n->ref = s->refs[i].target;
        }
        for (size_t i = 0; rc == 0 && i < s->ncap; i++)
            if (s->nodes[i] && s->nodes[i]->pattern_src)
                s->nodes[i]->pattern = regex_get(s, s->nodes[i]->pattern_src);
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
    for (size_t i = 0; i < s->ncap; i++)
        free(s->nodes[i]);
    free(s->nodes);
    free(s->ids);
    free(s->refs);
    free(s->res);
    pcre2_match_context_free(s->mctx);
    json_decref(s->root);
    free(s);
}

/* ---------------------------------------------------------------------------------------------
 * Validate */

/* A path segment: a name (property, keyword) or an array index. Paths are kept as segment
 * stacks and only rendered as JSON Pointers when an error is recorded. */
typedef struct seg {
    const char *name; /* NULL: idx */
    size_t idx;
} seg_t;

#define MAX_SEGS (2 * MAX_DEPTH + 8)

typedef struct vctx {
    const tn_schema_t *s;
    tn_schema_error_t *errs;
    size_t maxerrs, nerrs;
    int quiet; /* inside anyOf/oneOf/not/if/contains trials: no errors recorded */
    int depth;
    size_t ni, ns;
    pcre2_match_data *md; /* created at the first regex match */
    seg_t iseg[MAX_SEGS]; /* instance path */
    seg_t sseg[MAX_SEGS]; /* schema path */
} vctx_t;

static void seg_push(seg_t *segs, size_t *n, const char *name, size_t idx)
{
    if (*n < MAX_SEGS)
        segs[*n] = (seg_t){name, idx};
    (*n)++;
}

/* Render segments as a JSON Pointer ("~" and "/" escaped); truncates to fit. */
static void seg_render(const seg_t *segs, size_t n, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && i < MAX_SEGS && len + 2 < cap; i++) {
        out[len++] = '/';
        if (!segs[i].name) {
            int w = snprintf(out + len, cap - len, "%zu", segs[i].idx);
            len += w > 0 ? (size_t)w : 0;
            if (len >= cap)
                len = cap - 1;
            continue;
        }
        for (const char *p = segs[i].name; *p && len + 3 < cap; p++) {
            if (*p == '~' || *p == '/') {
                out[len++] = '~';
                out[len++] = *p == '~' ? '0' : '1';
            } else {
                out[len++] = *p;
            }
        }
    }
    out[len] = '\0';
}

static int fail(vctx_t *v, const char *kw, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(vctx_t *v, const char *kw, const char *fmt, ...)
{
    if (v->quiet)
        return 0;
    if (v->nerrs++ >= v->maxerrs)
        return 0;
    tn_schema_error_t *e = &v->errs[v->nerrs - 1];
    char sp[sizeof(e->schema_path)];
    seg_render(v->iseg, v->ni, e->instance_path, sizeof(e->instance_path));
    seg_render(v->sseg, v->ns, sp, sizeof(sp));
    snprintf(e->schema_path, sizeof(e->schema_path), "#%.200s/%.40s", sp, kw);
    snprintf(e->keyword, sizeof(e->keyword), "%s", kw);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    /* a long key or value cut to fit may end in half a character: JSON and logs want whole ones */
    e->instance_path[tn_text_utf8_complete(e->instance_path, strlen(e->instance_path))] = '\0';
    e->schema_path[tn_text_utf8_complete(e->schema_path, strlen(e->schema_path))] = '\0';
    e->message[tn_text_utf8_complete(e->message, strlen(e->message))] = '\0';
    return 0;
}

static int validate(vctx_t *v, const json_t *schema, const json_t *inst);

/* Validate against a subschema reached by keyword @p kw and then a key (or, with key NULL and
 * idx != SIZE_MAX, an index) of the schema. */
static int sub(vctx_t *v, const json_t *schema, const json_t *inst, const char *kw, const char *key,
               size_t idx)
{
    size_t old = v->ns;
    seg_push(v->sseg, &v->ns, kw, 0);
    if (key || idx != SIZE_MAX)
        seg_push(v->sseg, &v->ns, key, idx);
    int ok = validate(v, schema, inst);
    v->ns = old;
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

/* The T_* bits an instance satisfies (an integral real is an integer too). */
static unsigned inst_types(const json_t *inst)
{
    switch (json_typeof(inst)) {
    case JSON_OBJECT:
        return T_OBJECT;
    case JSON_ARRAY:
        return T_ARRAY;
    case JSON_STRING:
        return T_STRING;
    case JSON_INTEGER:
        return T_NUMBER | T_INTEGER;
    case JSON_REAL: {
        double x = json_real_value(inst);
        return T_NUMBER | (isfinite(x) && x == floor(x) ? T_INTEGER : 0);
    }
    case JSON_TRUE:
    case JSON_FALSE:
        return T_BOOLEAN;
    case JSON_NULL:
        return T_NULL;
    }
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

/* 1 match, 0 no match, -1 error (match limit, or no compiled pattern) */
static int regex_match(vctx_t *v, pcre2_code *code, const char *str, size_t len)
{
    if (!code)
        return -1;
    if (!v->md)
        v->md = pcre2_match_data_create(1, NULL);
    int rc = pcre2_match(code, (PCRE2_SPTR)str, len, 0, 0, v->md, v->s->mctx);
    if (rc >= 0)
        return 1;
    return rc == PCRE2_ERROR_NOMATCH ? 0 : -1;
}

static int v_number(vctx_t *v, const snode_t *n, const json_t *inst)
{
    int ok = 1;
    double x = num(inst);
    if (n->minimum && x < num(n->minimum))
        ok = fail(v, "minimum", "%g is less than the minimum %g", x, num(n->minimum));
    if (n->maximum && x > num(n->maximum))
        ok = fail(v, "maximum", "%g is greater than the maximum %g", x, num(n->maximum));
    if (n->xmin && x <= num(n->xmin))
        ok = fail(v, "exclusiveMinimum", "%g is not greater than %g", x, num(n->xmin));
    if (n->xmax && x >= num(n->xmax))
        ok = fail(v, "exclusiveMaximum", "%g is not less than %g", x, num(n->xmax));
    if (n->multiple && num(n->multiple) > 0) {
        const json_t *k = n->multiple;
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

static int v_string(vctx_t *v, const snode_t *n, const json_t *inst)
{
    int ok = 1;
    const char *str = json_string_value(inst);
    size_t bytes = json_string_length(inst);
    /* Code points are counted at their first bytes, so there are no more than bytes: a string
     * no longer in bytes than maxLength, and for a minLength of 1 one that starts with a first
     * byte, passes without the count (an 8 KB body against its 200,000 was a pass of its own). */
    int count = (n->max_len >= 0 && (json_int_t)bytes > n->max_len) || n->min_len > 1 ||
                (n->min_len == 1 && (bytes == 0 || ((unsigned char)str[0] & 0xC0) == 0x80));
    if (count) {
        size_t len = tn_text_cp_count(str, bytes);
        if (n->min_len >= 0 && (json_int_t)len < n->min_len)
            ok =
                fail(v, "minLength", "%zu characters, fewer than %lld", len, (long long)n->min_len);
        if (n->max_len >= 0 && (json_int_t)len > n->max_len)
            ok = fail(v, "maxLength", "%zu characters, more than %lld", len, (long long)n->max_len);
    }
    if (n->pattern_src) {
        int m = regex_match(v, n->pattern, str, bytes);
        if (m < 0)
            ok = fail(v, "pattern", "too costly to match against \"%s\"", n->pattern_src);
        else if (m == 0)
            ok = fail(v, "pattern", "does not match \"%s\"", n->pattern_src);
    }
    if (n->format && !tn_schema_format_ok(n->format, str, bytes))
        ok = fail(v, "format", "not a valid %s", n->format);
    return ok;
}

static int v_array(vctx_t *v, const snode_t *n, const json_t *inst)
{
    int ok = 1;
    size_t len = json_array_size(inst);
    if (n->min_items >= 0 && (json_int_t)len < n->min_items)
        ok = fail(v, "minItems", "%zu items, fewer than %lld", len, (long long)n->min_items);
    if (n->max_items >= 0 && (json_int_t)len > n->max_items)
        ok = fail(v, "maxItems", "%zu items, more than %lld", len, (long long)n->max_items);
    if (n->unique) {
        for (size_t i = 0; i < len && ok; i++)
            for (size_t j = i + 1; j < len; j++)
                if (json_eq(json_array_get(inst, i), json_array_get(inst, j))) {
                    ok = fail(v, "uniqueItems", "items %zu and %zu are equal", i, j);
                    break;
                }
    }
    const json_t *items = n->items;
    size_t first_additional = len;
    for (size_t i = 0; items && i < len; i++) {
        size_t old = v->ni;
        seg_push(v->iseg, &v->ni, NULL, i);
        const json_t *item = json_array_get(inst, i);
        if (!json_is_array(items))
            ok &= sub(v, items, item, "items", NULL, SIZE_MAX);
        else if (i < json_array_size(items))
            ok &= sub(v, json_array_get(items, i), item, "items", NULL, i);
        else if (first_additional == len)
            first_additional = i;
        v->ni = old;
    }
    for (size_t i = first_additional; n->additional_items && i < len; i++) {
        size_t old = v->ni;
        seg_push(v->iseg, &v->ni, NULL, i);
        ok &=
            sub(v, n->additional_items, json_array_get(inst, i), "additionalItems", NULL, SIZE_MAX);
        v->ni = old;
    }
    if (n->contains) {
        int found = 0;
        for (size_t i = 0; i < len && !found; i++)
            found = trial(v, n->contains, json_array_get(inst, i));
        if (!found)
            ok = fail(v, "contains", "no item matches the contains schema");
    }
    return ok;
}

static int v_object(vctx_t *v, const snode_t *n, const json_t *inst)
{
    int ok = 1;
    size_t count = json_object_size(inst);
    if (n->min_props >= 0 && (json_int_t)count < n->min_props)
        ok = fail(v, "minProperties", "%zu properties, fewer than %lld", count,
                  (long long)n->min_props);
    if (n->max_props >= 0 && (json_int_t)count > n->max_props)
        ok = fail(v, "maxProperties", "%zu properties, more than %lld", count,
                  (long long)n->max_props);
    size_t i;
    const json_t *e;
    json_array_foreach(n->required, i, e)
    {
        const char *name = json_string_value(e);
        if (name && !json_object_get(inst, name))
            ok = fail(v, "required", "missing property \"%s\"", name);
    }
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)inst, key, val)
    {
        int matched = 0;
        size_t old = v->ni;
        seg_push(v->iseg, &v->ni, key, 0);
        const json_t *ps = n->properties ? json_object_get(n->properties, key) : NULL;
        if (ps) {
            matched = 1;
            ok &= sub(v, ps, val, "properties", key, 0);
        }
        const char *pat;
        const json_t *pss;
        json_object_foreach((json_t *)n->pattern_props, pat, pss)
        {
            int m = regex_match(v, regex_get(v->s, pat), key, strlen(key));
            if (m < 0)
                ok = fail(v, "patternProperties", "too costly to match \"%s\"", pat);
            if (m > 0) {
                matched = 1;
                ok &= sub(v, pss, val, "patternProperties", pat, 0);
            }
        }
        if (!matched && n->additional_props) {
            if (json_is_false(n->additional_props))
                ok = fail(v, "additionalProperties", "property \"%s\" is not allowed", key);
            else
                ok &= sub(v, n->additional_props, val, "additionalProperties", NULL, SIZE_MAX);
        }
        v->ni = old;
        if (n->property_names) {
            json_t *name = json_string(key);
            if (!trial(v, n->property_names, name))
                ok = fail(v, "propertyNames", "property name \"%s\" is not allowed", key);
            json_decref(name);
        }
        const json_t *dep = n->dependencies ? json_object_get(n->dependencies, key) : NULL;
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
            ok &= sub(v, dep, inst, "dependencies", key, 0);
        }
    }
    return ok;
}

static int v_combinators(vctx_t *v, const snode_t *n, const json_t *inst)
{
    int ok = 1;
    size_t i;
    for (i = 0; i < json_array_size(n->all_of); i++)
        ok &= sub(v, json_array_get(n->all_of, i), inst, "allOf", NULL, i);
    if (n->any_of) {
        int found = 0;
        for (i = 0; i < json_array_size(n->any_of) && !found; i++)
            found = trial(v, json_array_get(n->any_of, i), inst);
        if (!found)
            ok = fail(v, "anyOf", "matches none of the anyOf schemas");
    }
    if (n->one_of) {
        int count = 0;
        for (i = 0; i < json_array_size(n->one_of); i++)
            count += trial(v, json_array_get(n->one_of, i), inst);
        if (count != 1)
            ok = fail(v, "oneOf", "matches %d of the oneOf schemas, not exactly one", count);
    }
    if (n->not_ && trial(v, n->not_, inst))
        ok = fail(v, "not", "matches the schema under not");
    if (n->if_) {
        if (trial(v, n->if_, inst)) {
            if (n->then_)
                ok &= sub(v, n->then_, inst, "then", NULL, SIZE_MAX);
        } else if (n->else_) {
            ok &= sub(v, n->else_, inst, "else", NULL, SIZE_MAX);
        }
    }
    return ok;
}

static int validate(vctx_t *v, const json_t *schema, const json_t *inst)
{
    if (json_is_true(schema))
        return 1;
    if (json_is_false(schema))
        return fail(v, "false", "no value is allowed here");
    if (!json_is_object(schema))
        return 1;
    const snode_t *n = node_get(v->s, schema);
    if (!n)
        return fail(v, "$ref", "subschema not compiled (a reference into an unknown keyword?)");
    if (v->depth >= MAX_DEPTH)
        return fail(v, "$ref", "references nest deeper than %d levels", MAX_DEPTH);
    v->depth++;
    int ok = 1;
    if (n->has_ref) {
        ok = sub(v, n->ref, inst, "$ref", NULL, SIZE_MAX);
        v->depth--;
        return ok;
    }
    if (n->bad_ref) { /* present but never resolved */
        v->depth--;
        return fail(v, "$ref", "unresolved reference");
    }
    if (n->type && !(n->types & inst_types(inst))) {
        if (json_is_string(n->type))
            ok = fail(v, "type", "%s, expected %s", type_name(inst), json_string_value(n->type));
        else
            ok = fail(v, "type", "%s is not one of the allowed types", type_name(inst));
    }
    if (n->enum_) {
        int found = 0;
        for (size_t i = 0; i < json_array_size(n->enum_) && !found; i++)
            found = json_eq(json_array_get(n->enum_, i), inst);
        if (!found)
            ok = fail(v, "enum", "not one of the allowed values");
    }
    if (n->const_ && !json_eq(n->const_, inst))
        ok = fail(v, "const", "not the required value");
    if (is_number(inst)) {
        if (n->any_number)
            ok &= v_number(v, n, inst);
    } else if (json_is_string(inst)) {
        if (n->any_string)
            ok &= v_string(v, n, inst);
    } else if (json_is_array(inst)) {
        if (n->any_array)
            ok &= v_array(v, n, inst);
    } else if (json_is_object(inst)) {
        if (n->any_object)
            ok &= v_object(v, n, inst);
    }
    if (n->any_comb)
        ok &= v_combinators(v, n, inst);
    v->depth--;
    return ok;
}

tn_err_t tn_schema_validate(const tn_schema_t *s, const json_t *instance, tn_schema_error_t *errs,
                            size_t maxerrs, size_t *nerrs)
{
    vctx_t *v = tn_xmalloc(sizeof(*v));
    v->s = s;
    v->errs = errs;
    v->maxerrs = errs ? maxerrs : 0;
    v->nerrs = 0;
    v->quiet = 0;
    v->depth = 0;
    v->ni = v->ns = 0;
    v->md = NULL;
    int ok = validate(v, s->root, instance);
    pcre2_match_data_free(v->md);
    if (nerrs)
        *nerrs = v->nerrs < v->maxerrs ? v->nerrs : v->maxerrs;
    free(v);
    return ok ? TN_OK : TN_ERR_SCHEMA;
}

char *tn_schema_error_format(const tn_schema_error_t *e, char *buf, size_t len)
{
    snprintf(buf, len, "%s: %s: %s (%s)", *e->instance_path ? e->instance_path : "/", e->keyword,
             e->message, e->schema_path);
    buf[tn_text_utf8_complete(buf, strlen(buf))] = '\0';
    return buf;
}

json_t *tn_schema_error_json(const tn_schema_error_t *e)
{
    char line[900];
    tn_schema_error_format(e, line, sizeof(line));
    return json_pack("{s:s, s:s, s:s, s:s}", "code", "schema_violation", "message", line, "path",
                     *e->instance_path ? e->instance_path : "/", "keyword", e->keyword);
}
