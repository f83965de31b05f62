/**
 * @file qdrant.h
 * @brief Qdrant REST client (shared/CONTRACTS.md section 1): collections, points, search,
 *        aliases. On the common http_client (libcurl): api-key header, timeouts, retries of
 *        429/5xx/connection failures with backoff (point writes are idempotent: deterministic
 *        ids), metrics with upstream="qdrant".
 *
 *     tn_qdrant_opts_t o = {.url = "http://127.0.0.1:6333", .api_key = key, .metrics = m};
 *     tn_qdrant_t *q = tn_qdrant_new(&o, err, sizeof(err));
 *     tn_qdrant_ensure_collection(q, "taina-chunks", 384, err, sizeof(err));
 *     tn_qdrant_upsert(q, "taina-chunks", pts, n, err, sizeof(err));           // wait=true
 *
 * Errors: TN_ERR_UNAVAILABLE when Qdrant did not answer (connection failure, timeout) or
 * answered 429/5xx after the retries, or 408 (its own timeout), or a write ended "wait_timeout"
 * (retriable); TN_ERR_NOT_FOUND for 404; TN_ERR_UPSTREAM for other 4xx (the request was
 * refused: not retriable; 401/403 included); TN_ERR_PARSE for an answer outside the contract;
 * TN_ERR_CONFIG from ensure_collection when an existing collection has another size or
 * distance; TN_ERR_INVALID for bad arguments, found before any request (see names below);
 * TN_ERR_TOO_LARGE when an answer is over 64 MiB or a request body over 256 MiB. Every error
 * fills @p errbuf with one line that includes Qdrant's "status.error" message (or the plain-text
 * body of a 401/403) when there is one. On TN_OK, @p errbuf is set to "".
 *
 * Names: collection and alias names go into URL paths unencoded, so they must be 1-255
 * characters of [A-Za-z0-9._-] (not "." or ".."); anything else is TN_ERR_INVALID.
 * Point ids: an id of decimal digits that fits in 64 bits is sent as a Qdrant integer id,
 * anything else as a string (a UUID).
 *
 * @thread A client may be used from several threads at once.
 */
#ifndef TAINA_QDRANT_H
#define TAINA_QDRANT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "taina/err.h"
#include "taina/metrics.h"

typedef struct tn_qdrant tn_qdrant_t;

typedef struct tn_qdrant_opts {
    const char *url;       /**< base URL, e.g. "http://127.0.0.1:6333" */
    const char *api_key;   /**< sent as "api-key"; NULL/"" = none */
    int64_t timeout_ms;    /**< deadline of one call (retries included), default 10000 */
    int max_attempts;      /**< per call, default 4 */
    tn_metrics_t *metrics; /**< borrowed; NULL = none */
    /** Largest answer accepted (more is TN_ERR_TOO_LARGE, not retried); default 64 MiB, which
     *  scroll pages with vectors need. A reader that only searches sets far less, so that a
     *  broken upstream cannot make each request hold tens of MiB. */
    size_t max_response_bytes;
} tn_qdrant_opts_t;

tn_qdrant_t *tn_qdrant_new(const tn_qdrant_opts_t *o, char *errbuf, size_t errlen);
void tn_qdrant_destroy(tn_qdrant_t *q);

/**
 * @brief Make sure collection (or alias) @p name exists with vectors of @p dims and Cosine
 *        distance: create it when missing (with keyword payload indexes on tenant_id and
 *        ticket_id), or check the existing one and return TN_ERR_CONFIG naming both sizes or
 *        distances when it differs (a collection of named vectors is a mismatch too). An alias
 *        is checked through its collection. Safe to call from several replicas at once: a 409
 *        on create means another one made it, and that one is checked. An existing collection
 *        that lacks either index gets it.
 */
tn_err_t tn_qdrant_ensure_collection(tn_qdrant_t *q, const char *name, size_t dims, char *errbuf,
                                     size_t errlen);
/** @brief Delete a collection; TN_OK also when it did not exist. */
tn_err_t tn_qdrant_delete_collection(tn_qdrant_t *q, const char *name, char *errbuf, size_t errlen);

/** One point to write. */
typedef struct tn_qdrant_point {
    const char *id;      /**< UUID text */
    const float *vector; /**< dims floats */
    size_t dims;
    const json_t *payload; /**< object, borrowed; NULL = none */
    /** The payload as serialized JSON object text (borrowed), used when payload is NULL: callers
     *  that already hold the text skip building a tree. Written as is: it must be one valid JSON
     *  object (only its first non-blank byte, '{', is checked). NULL = none. */
    const char *payload_json;
} tn_qdrant_point_t;

/**
 * @brief Upsert @p n points (PUT .../points?wait=true); @p n = 0 sends nothing. Vectors must be
 *        finite (NaN or infinity is TN_ERR_INVALID); they are written with 9 significant digits,
 *        which read back as the same floats.
 */
tn_err_t tn_qdrant_upsert(tn_qdrant_t *q, const char *collection, const tn_qdrant_point_t *pts,
                          size_t n, char *errbuf, size_t errlen);
/** @brief Delete the points matching @p filter (a Qdrant filter object), wait=true. */
tn_err_t tn_qdrant_delete_filter(tn_qdrant_t *q, const char *collection, const json_t *filter,
                                 char *errbuf, size_t errlen);
/** @brief Delete points by id, wait=true. @p n = 0 sends nothing. */
tn_err_t tn_qdrant_delete_ids(tn_qdrant_t *q, const char *collection, const char *const *ids,
                              size_t n, char *errbuf, size_t errlen);

/** One search hit. */
typedef struct tn_qdrant_hit {
    char id[48]; /**< the point id as text (UUID, or an integer id in decimal) */
    double score;
    json_t *payload; /**< owned by the hits array; NULL when none */
} tn_qdrant_hit_t;

/**
 * @brief Nearest points to @p vector (POST .../points/query, with_payload), best first.
 * @param filter a Qdrant filter (borrowed) or NULL.
 * @param score_threshold drop hits below it; pass a negative value below -1 for none.
 * @param hits out: *n hits; free with tn_qdrant_hits_free(). NULL and 0 on failure (and
 *        NULL when there are no hits).
 */
tn_err_t tn_qdrant_search(tn_qdrant_t *q, const char *collection, const float *vector, size_t dims,
                          const json_t *filter, size_t limit, double score_threshold,
                          tn_qdrant_hit_t **hits, size_t *n, char *errbuf, size_t errlen);
void tn_qdrant_hits_free(tn_qdrant_hit_t *hits, size_t n);

/**
 * @brief One page of points matching @p filter (POST .../points/scroll, with payload and,
 *        when @p with_vector, vectors). @p offset (borrowed, may be NULL) is where to start;
 *        @p next (out, owned by the caller) is where the next page starts, NULL at the end.
 * @param points out: the "points" array (new reference). On failure *points and *next are NULL.
 */
tn_err_t tn_qdrant_scroll(tn_qdrant_t *q, const char *collection, const json_t *filter,
                          size_t limit, int with_vector, const json_t *offset, json_t **points,
                          json_t **next, char *errbuf, size_t errlen);
/** @brief Exact count of points matching @p filter (NULL = all). */
tn_err_t tn_qdrant_count(tn_qdrant_t *q, const char *collection, const json_t *filter,
                         size_t *count, char *errbuf, size_t errlen);

/**
 * @brief Point @p alias at @p collection atomically (delete_alias + create_alias in one
 *        request). When the alias does not exist yet (Qdrant refuses to delete it), it is
 *        created alone; TN_ERR_NOT_FOUND when @p collection does not exist.
 */
tn_err_t tn_qdrant_alias_switch(tn_qdrant_t *q, const char *alias, const char *collection,
                                char *errbuf, size_t errlen);
/** @brief Delete @p alias (TN_OK also when it did not exist). */
tn_err_t tn_qdrant_alias_delete(tn_qdrant_t *q, const char *alias, char *errbuf, size_t errlen);
/**
 * @brief The collection @p alias points at (GET /aliases), copied into @p out, or
 *        TN_ERR_NOT_FOUND (@p out = ""); TN_ERR_TOO_LARGE when it does not fit in @p outlen.
 */
tn_err_t tn_qdrant_alias_target(tn_qdrant_t *q, const char *alias, char *out, size_t outlen,
                                char *errbuf, size_t errlen);

/**
 * @brief GET /readyz: TN_OK when Qdrant answers 2xx. Not retried. /healthz is asked only when
 *        /readyz is 404 (a server without it); a 503 from /readyz ("not ready") is
 *        TN_ERR_UNAVAILABLE.
 */
tn_err_t tn_qdrant_ping(tn_qdrant_t *q, char *errbuf, size_t errlen);

#endif
