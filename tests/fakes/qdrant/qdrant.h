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
/* Collections                                                                                */

typedef enum { DIST_COSINE, DIST_DOT, DIST_EUCLID, DIST_MANHATTAN } dist_t;

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
} coll_t;

coll_t *coll_new(const char *name, size_t dim, dist_t dist);
void coll_free(coll_t *c);
/** Index of the point, or -1. */
long coll_find(const coll_t *c, const qid_t *id);
/** Insert or replace; @p vec has dim floats (normalized here for Cosine); takes @p payload. */
void coll_upsert(coll_t *c, const qid_t *id, const float *vec, json_t *payload, uint64_t version);
/** Remove the point at index @p i (the last point moves there). */
void coll_remove_at(coll_t *c, size_t i);

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
