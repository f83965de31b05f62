/**
 * @file vecstore.h
 * @brief The local vector store: exact cosine top-k over one contiguous matrix, with
 *        per-chunk payload, tenant and payload filters, tombstones and compaction.
 *
 * Rows are L2-normalized on insert, so cosine is a dot product. A chunk is identified by
 * (tenant, ticket_id, chunk_index); putting it again replaces it (the old row becomes a
 * tombstone); tn_vecstore_trim() drops a ticket's chunks from an index on (fewer chunks now),
 * tn_vecstore_delete_ticket() all of them. When tombstones exceed a quarter of the rows the
 * matrix is compacted (live rows moved down in order, ids remapped).
 *
 * Each row is kept in 24-bit fixed point with one scale per row (max|x| / 127): an int8 array
 * (the row quantized, symmetric per row) and an int16 array (the rest), 3 bytes a dimension
 * instead of float32's 4; decoded, a component is off by at most max|x| / 2^24, so scores are
 * as close to the exact cosine as with float32 rows (within 2e-7 measured, 5e-7 tested). The
 * matrix grows by an eighth of its rows, so vector_bytes stays within 0.85x the rows' raw
 * float32 bytes (1.13x with the most tombstones a compaction allows).
 *
 * Search scans the rows of the caller's tenant only (each tenant's rows are listed), applies
 * the filters, and for stores of 32 dims or more ranks the rows first by int8 dot products
 * (int32 sums; a quarter of the float32 bytes to read), keeping the best max(4k, 64)
 * candidates, which are rescored on the decoded rows: the hits and scores are those of the
 * exact search whenever the true top k is among the candidates (recall@10 1.0 in
 * tests/bench/vecstore). The dot products use GCC vector extensions or loops GCC vectorizes
 * (an AVX2 clone where target_clones is available; VNNI kernels where the CPU has them). A ticket
 * filter reads only that ticket's rows. tn_vecstore_search_many() answers several queries in one
 * pass over the matrix, tile by tile (matrix-matrix), for concurrent requests; its scores are
 * bitwise those of tn_vecstore_search. On x86-64 CPUs with AVX-512 VNNI or AVX-VNNI (checked at run
 * time) its first pass puts each query in a lane of a vector register, 16 or 8 at a time, and reads
 * each row once for all of them: at 100,000 x 384 a pass for 16 queries costs about 1.7x one for a
 * single query. Ties in score rank the earlier-inserted row first (a replaced chunk
 * counts as inserted anew), so results are deterministic and unchanged by compaction.
 *
 * For many concurrent searches, tn_vecstore_scan_start() starts a shared ("elevator") scan:
 * scan threads each read their share of the rows round and round in blocks, and
 * tn_vecstore_search_shared() puts a search in a free lane at the next block boundary; it keeps
 * its own candidates and leaves once it has seen every row, so no search waits for another's pass
 * and lanes refill block by block. Since the ranking is a total order, the order in which rows
 * are seen does not matter: the hits are bitwise those of tn_vecstore_search. Writes wait until
 * the searches in the scan are answered (one round at most) and hold new ones back meanwhile.
 *
 * @thread Readers (search) run concurrently; writers (put, trim, delete, compact) take the
 *         lock exclusively (a pthread rwlock), after the searches in the shared scan.
 */
#ifndef TAINA_VECSTORE_H
#define TAINA_VECSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "taina/err.h"

typedef struct tn_vecstore tn_vecstore_t;

/** @brief A store of @p dims-dimensional vectors. Caller frees with tn_vecstore_destroy(). */
tn_vecstore_t *tn_vecstore_new(size_t dims);
void tn_vecstore_destroy(tn_vecstore_t *vs);
size_t tn_vecstore_dims(const tn_vecstore_t *vs);

/** What is kept with a chunk (strings copied). */
typedef struct tn_vec_payload {
    const char *tenant_id;
    const char *ticket_id;
    uint32_t chunk_index;
    const char *title;    /**< may be NULL */
    const char *text;     /**< the chunk text */
    const char *lang;     /**< may be NULL */
    const char *category; /**< may be NULL */
    const char *source;   /**< may be NULL: then no source filter matches the chunk */
    uint32_t start, end;  /**< code-point offsets in the ticket's text */
} tn_vec_payload_t;

/** @brief Insert or replace a chunk. @p v has dims floats. TN_ERR_INVALID for a zero or
 *         non-finite vector, or a NULL tenant_id or ticket_id. */
tn_err_t tn_vecstore_put(tn_vecstore_t *vs, const tn_vec_payload_t *p, const float *v);
/** @brief Remove the chunks of (tenant, ticket) with chunk_index >= @p from. Returns how many. */
size_t tn_vecstore_trim(tn_vecstore_t *vs, const char *tenant, const char *ticket, uint32_t from);
/** @brief Remove every chunk of (tenant, ticket). Returns how many. */
size_t tn_vecstore_delete_ticket(tn_vecstore_t *vs, const char *tenant, const char *ticket);

/** Most sources a filter may list. */
enum { TN_VEC_MAX_SOURCES = 8 };

/** Filters of a search; NULL fields match anything. The tenant is required (NULL: no hits).
 *  With nsources > 0 (at most TN_VEC_MAX_SOURCES), a chunk passes when its source is one of
 *  sources[] (borrowed for the call); a chunk without a source passes no such filter. */
typedef struct tn_vec_filter {
    const char *tenant_id;
    const char *lang;
    const char *category;
    const char *ticket_id;
    const char *const *sources;
    size_t nsources;
} tn_vec_filter_t;

/** One hit: the payload is borrowed from the store and valid until the next write. Copy what
 *  you keep before releasing the read lock (tn_vecstore_search copies into @p hits). */
typedef struct tn_vec_hit {
    float score;
    char ticket_id[64]; /**< truncated to 63 bytes */
    uint32_t chunk_index;
    char *title; /**< copies; freed by tn_vec_hits_free() */
    char *text;
    char lang[8];
    char category[64];
    char source[64]; /**< "" when the chunk has none */
    uint32_t start, end;
} tn_vec_hit_t;

/**
 * @brief The @p k best chunks for @p query (dims floats, normalized here) that pass @p f, best
 *        first, with score >= @p min_score (-2 for none). @p hits gets room for k. A zero
 *        query, k == 0 or a tenant with no chunks gives 0 hits.
 * @returns the number of hits written.
 */
size_t tn_vecstore_search(tn_vecstore_t *vs, const float *query, const tn_vec_filter_t *f, size_t k,
                          float min_score, tn_vec_hit_t *hits);
/**
 * @brief @p nq queries at once in one pass over the matrix (same semantics as
 *        tn_vecstore_search for each): queries is nq * dims floats, filters nq entries, hits
 *        nq * k entries, counts nq entries.
 */
void tn_vecstore_search_many(tn_vecstore_t *vs, const float *queries, const tn_vec_filter_t *f,
                             size_t nq, size_t k, float min_score, tn_vec_hit_t *hits,
                             size_t *counts);
/**
 * @brief Start the shared scan: @p threads threads (1..4) each read their share of the rows
 *        round and round in blocks of @p block_rows for the searches of
 *        tn_vecstore_search_shared(), at most @p lanes of them at once (rounded up to the
 *        kernel's width: 16 with AVX-512 VNNI, 8 with AVX-VNNI, 4 portable; 1..256). A search
 *        joins each thread at its next block boundary and leaves once every thread has shown it
 *        all of its rows, so its latency is one round whatever the others do. The threads sleep
 *        when no search is in flight. Writes wait for the searches in flight (at most one round
 *        each) and hold new ones back meanwhile; searches held back go before the next write.
 * @returns TN_OK; TN_ERR_INVALID for bad sizes or a scan already started; TN_ERR_NOMEM when a
 *          thread cannot start.
 * @thread Any thread, before the searches that use it; the kernels (tn_vecstore_kernels) in
 *         effect now are the scan's.
 */
tn_err_t tn_vecstore_scan_start(tn_vecstore_t *vs, size_t lanes, size_t block_rows, size_t threads);
/** @brief Stop and join the scan threads (no-op when not started; tn_vecstore_destroy calls it).
 *  @thread Not while tn_vecstore_search_shared() runs. */
void tn_vecstore_scan_stop(tn_vecstore_t *vs);
/**
 * @brief tn_vecstore_search() through the shared scan: the same hits with bitwise the same
 *        scores. Searches with a ticket filter, of a tenant with under a quarter of the rows, or
 *        of one pass (few rows, small dims), and every search when the scan is not started, are
 *        answered by tn_vecstore_search() in the calling thread.
 * @thread Any thread; blocks until answered (one round of the scan at most, plus queueing when
 *         the lanes are full).
 */
size_t tn_vecstore_search_shared(tn_vecstore_t *vs, const float *query, const tn_vec_filter_t *f,
                                 size_t k, float min_score, tn_vec_hit_t *hits);
/** Kernels of the int8 first pass besides the portable ones (x86-64): AVX-512 VNNI (one query,
 *  and 16 queries at a time in search_many) and AVX-VNNI (8 queries at a time). Results are the
 *  same with any of them. */
enum { TN_VEC_KERNEL_VNNI512 = 1u, TN_VEC_KERNEL_VNNI256 = 2u };
/** With the kernels' mask: searches that rank in two passes return the first pass's best rows
 *  with their int8 scores, not rescored. Tests compare the kernels' integer sums with it. */
enum { TN_VEC_FIRST_PASS_ONLY = 1u << 8 };
/**
 * @brief Let searches use only the kernels in @p mask (of those this CPU has; 0: the portable
 *        ones only). By default they use every kernel the CPU has. For tests and benchmarks.
 * @returns the kernels now in use. Not while searches run.
 */
unsigned tn_vecstore_kernels(tn_vecstore_t *vs, unsigned mask);
/** @brief Free the strings of @p n hits (not the array). */
void tn_vec_hits_free(tn_vec_hit_t *hits, size_t n);

/** Sizes, for /metrics and tests. */
typedef struct tn_vecstore_stats {
    size_t live;         /**< chunks searchable */
    size_t rows;         /**< rows in the matrix (live + tombstones) */
    size_t vector_bytes; /**< bytes allocated for vectors */
    size_t payload_bytes;
} tn_vecstore_stats_t;
void tn_vecstore_stats(tn_vecstore_t *vs, tn_vecstore_stats_t *st);

#endif
