/* taina-fake-qdrant: internal interfaces (point ids, the in-memory store, filters). */
#ifndef TN_FAKE_QDRANT_H
#define TN_FAKE_QDRANT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* ------------------------------------------------------------------------------------------ */
/* Point ids: an unsigned 64-bit integer or a UUID (numbers sort before UUIDs).               */

typedef struct qid {
    bool uuid;
    uint64_t num;
    uint8_t bytes[16];
} qid_t;

/** Parse a JSON point id. @returns false when it is neither a u64 nor a UUID string. */
bool qid_parse(json_t *v, qid_t *out);
/** The JSON form: an integer or the canonical lower-case UUID string. New reference. */
json_t *qid_json(const qid_t *id);
int qid_cmp(const qid_t *a, const qid_t *b);
uint64_t qid_hash(const qid_t *id);
/** Describe a bad id for an error message (the JSON text, truncated). */
void qid_describe(json_t *v, char *buf, size_t len);

/* ------------------------------------------------------------------------------------------ */
/* Filters                                                                                    */

typedef struct qfilter qfilter_t;

/**
 * Compile a Filter object. @returns NULL with a message in @p msg when it is malformed (the
 * caller answers 400); a JSON null compiles to NULL with msg[0] == '\0' (no filter).
 */
qfilter_t *qfilter_compile(json_t *j, char *msg, size_t len);
void qfilter_free(qfilter_t *f);
/** Does the point (@p id, @p payload, may be NULL) pass? NULL filter = yes. */
bool qfilter_match(const qfilter_t *f, const qid_t *id, json_t *payload);

/** The values at @p key ("a.b", "a[].b") of @p payload: arrays are flattened. Appends to @p out. */
void payload_values(json_t *payload, const char *key, json_t *out);

/* ------------------------------------------------------------------------------------------ */
/* Upsert bodies: the points' vectors parsed straight to floats (fastvec.c)                    */

typedef struct fastvec {
    float *vals;
    size_t nvals, capvals;
    size_t *off, *len; /* vector k: len[k] floats at vals + off[k] */
    size_t n, cap;
} fastvec_t;

/**
 * Parse an upsert body whose "points" each have a "vector" that is a flat array of numbers:
 * each such array becomes the integer k (its number) in the JSON returned, and its floats are
 * in @p fv (as (float) of what jansson would parse). @returns NULL (and @p fv empty) when the
 * body is anything else, or has no such vector: then parse it the ordinary way.
 */
json_t *fastvec_parse(const char *body, size_t len, fastvec_t *fv);
/** The floats (@p *len of them) of the placeholder @p v. @returns false when @p v is none. */
bool fastvec_get(const fastvec_t *fv, json_t *v, const float **vals, size_t *len);
void fastvec_free(fastvec_t *fv);

/* ------------------------------------------------------------------------------------------ */
/* Collections                                                                                */

typedef enum { DIST_COSINE, DIST_DOT, DIST_EUCLID, DIST_MANHATTAN } dist_t;

/** A set of point indexes (open addressing, -1 = empty slot). */
typedef struct iset {
    int32_t *slot;
    size_t n, cap; /* cap: 0 or a power of two */
} iset_t;

/** One value of a keyword index and the points holding it. val NULL = empty slot. */
typedef struct kentry {
    char *val;
    size_t len;
    uint64_t h;
    iset_t pts;
} kentry_t;

/** A keyword payload index: string value at @p field -> points (open addressing). */
typedef struct kidx {
    char *field;
    kentry_t *e;
    size_t n, cap;
} kidx_t;

typedef struct coll {
    char *name;
    size_t dim;
    dist_t dist;
    size_t n, cap;
    qid_t *ids;
    json_t **payloads; /* NULL = no payload */
    uint64_t *versions;
    float *vecs;            /* n * dim, cosine vectors normalized */
    int32_t *slots;         /* open addressing: point index or -1 */
    size_t nslots;          /* power of two */
    uint64_t op_seq;        /* last operation id */
    json_t *payload_schema; /* field -> {"data_type": ...} */
    json_t *config;         /* the create request's extra members we echo */
    kidx_t *kidx;           /* the keyword indexes (fields with data_type keyword) */
    size_t nkidx;
} coll_t;

coll_t *coll_new(const char *name, size_t dim, dist_t dist);
void coll_free(coll_t *c);
/** Index of the point, or -1. */
long coll_find(const coll_t *c, const qid_t *id);
/** Insert or replace; @p vec has dim floats (normalized here for Cosine); takes @p payload. */
void coll_upsert(coll_t *c, const qid_t *id, const float *vec, json_t *payload, uint64_t version);
/** Remove the point at index @p i (the last point moves there). */
void coll_remove_at(coll_t *c, size_t i);

/* Keyword indexes (index.c). The store keeps them in step on upsert and removal. */

/** Index the string values at @p field (no-op when already indexed). */
void coll_index_keyword(coll_t *c, const char *field);
/** Forget the keyword index of @p field, if any. */
void coll_index_drop(coll_t *c, const char *field);
void coll_index_free(coll_t *c);
/** Add (@p add) or remove point @p i, with its current payload, in every index. */
void coll_index_point(coll_t *c, size_t i, bool add);
/** Point @p from (its current payload) is now at index @p to. */
void coll_index_move(coll_t *c, size_t from, size_t to);
/**
 * The points whose value at @p field is the string @p val (@p len bytes): NULL when none or
 * when @p field has no keyword index (then @p *indexed is false).
 */
const iset_t *coll_index_lookup(const coll_t *c, const char *field, const char *val, size_t len,
                                bool *indexed);

/** A superset of the points passing a filter: the union of some index sets. */
typedef struct cand {
    const iset_t **sets;
    size_t nsets, cap;
    size_t total; /* sum of the sets' sizes */
} cand_t;

/**
 * Fill @p out with index sets whose union holds every point passing @p f, when the top level
 * of @p f pins a keyword-indexed field (a must with match.value / match.any of strings, or a
 * should whose every branch does). @returns false when it does not (scan every point).
 */
bool qfilter_candidates(const qfilter_t *f, const coll_t *c, cand_t *out);

/**
 * The indexes of the points to test against @p f, ascending, in a new array of @p *n; NULL
 * (with @p *n = c->n) when every point must be tested.
 */
size_t *coll_candidates(const coll_t *c, const qfilter_t *f, size_t *n);

const char *dist_name(dist_t d);
bool dist_parse(const char *s, dist_t *out);
/** Score of stored vector @p v against query @p q (already normalized for Cosine). */
float dist_score(dist_t d, const float *q, const float *v, size_t dim);
/** Is score @p a better than @p b? */
bool dist_better(dist_t d, float a, float b);
/** Normalize @p v in place (Cosine); a zero vector stays zero. */
void vec_normalize(float *v, size_t dim);

/** One hit of a search. */
typedef struct hit {
    size_t idx;
    float score;
} hit_t;

/**
 * The best @p k points of @p c for @p q that pass @p f (and, with @p thr_set, meet the
 * threshold), best first (ties by id). @returns the number of hits in the new array @p *out.
 */
size_t coll_search(const coll_t *c, const float *q, const qfilter_t *f, bool thr_set, float thr,
                   size_t k, hit_t **out);

/** Points passing @p f with id >= @p from (NULL: all), ordered by id, at most @p k. */
size_t coll_scroll(const coll_t *c, const qfilter_t *f, const qid_t *from, size_t k, size_t **out);

#endif
