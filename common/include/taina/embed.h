/**
 * @file embed.h
 * @brief Embedding providers behind one interface: a batch of texts in, vectors out.
 *
 *   - "hash": feature hashing in C (word unigrams and bigrams, character 3- to 5-grams of the
 *     accent- and case-folded text, signed hashing with a fixed hash, sublinear term frequency
 *     1 + log(tf), L2-normalized). Deterministic across machines; no network; the default.
 *   - "openai": any OpenAI-compatible POST {url}/v1/embeddings (OpenAI, TEI, vLLM, Ollama):
 *     inputs sent in requests of at most max_batch texts, optional "dimensions", an API key,
 *     429/5xx retried with Retry-After and backoff (common http_client).
 *
 *     tn_embed_opts_t o = tn_embed_opts_default();          // hash, 384 dims
 *     tn_embedder_t *e = tn_embedder_new(&o, err, sizeof(err));
 *     float *vecs; size_t dims;
 *     tn_embed(e, texts, lens, n, &vecs, &dims, &why);     // n * dims floats, caller frees
 *
 * @thread An embedder may be used from several threads at once.
 */
#ifndef TAINA_EMBED_H
#define TAINA_EMBED_H

#include <stddef.h>
#include <stdint.h>

#include "taina/err.h"
#include "taina/metrics.h"

typedef struct tn_embedder tn_embedder_t;

typedef struct tn_embed_opts {
    const char *provider;  /**< "hash" (default) or "openai" */
    const char *model;     /**< openai: the model name (required); hash: reported name,
                                default "taina-hash-v1" */
    size_t dims;           /**< hash: vector size (default 384); openai: "dimensions" to ask
                                for, 0 = the model's own (learned from the first answer) */
    const char *url;       /**< openai: base URL, e.g. "http://127.0.0.1:8000" or
                                "https://api.openai.com" (the client adds /v1/embeddings) */
    const char *api_key;   /**< openai: sent as "Authorization: Bearer"; NULL/"" = none */
    size_t max_batch;      /**< openai: texts per request, default 64; also sizes the answer
                                cap (256 KiB per text, at least 1 MiB) */
    int64_t timeout_ms;    /**< openai: deadline of one tn_embed() call, default 30000 */
    int max_attempts;      /**< openai: attempts per request, default 4 */
    tn_metrics_t *metrics; /**< borrowed; upstream metrics with upstream="embeddings" */
} tn_embed_opts_t;

/** @brief Defaults: hash, 384 dims, max_batch 64, timeout 30 s, 4 attempts. */
tn_embed_opts_t tn_embed_opts_default(void);

/**
 * @brief Make an embedder. @returns NULL with one sentence in @p errbuf (unknown provider,
 *        openai without url or model, bad URL). Caller frees with tn_embedder_destroy().
 */
tn_embedder_t *tn_embedder_new(const tn_embed_opts_t *o, char *errbuf, size_t errlen);
void tn_embedder_destroy(tn_embedder_t *e);

/** @brief The model name (borrowed). */
const char *tn_embedder_model(const tn_embedder_t *e);
/** @brief Vector size; 0 for openai until the first answer when no dims were configured. */
size_t tn_embedder_dims(const tn_embedder_t *e);

/** Why a tn_embed() call failed. */
typedef struct tn_embed_error {
    int status;    /**< HTTP status of the last answer, 0 if none */
    int retriable; /**< 429, 5xx, timeout, connection: the same call may work later */
    char msg[256]; /**< one readable line (no text content, no secrets) */
} tn_embed_error_t;

/**
 * @brief Embed @p n texts (@p lens[i] bytes of UTF-8 each; lens may be NULL for
 *        NUL-terminated texts).
 * @param out out: n * dims floats, row i the vector of text i; caller frees.
 * @param dims out: the vector size.
 * @returns TN_OK; TN_ERR_UNAVAILABLE (retriable: upstream down, 429/5xx after the retries,
 *          deadline); TN_ERR_UPSTREAM (4xx: the input was refused, e.g. too long: not
 *          retriable); TN_ERR_PARSE (an answer that is not a valid embeddings response: wrong
 *          count, wrong or changing dims, non-numbers). @p why (may be NULL) says more.
 */
tn_err_t tn_embed(tn_embedder_t *e, const char *const *texts, const size_t *lens, size_t n,
                  float **out, size_t *dims, tn_embed_error_t *why);

/**
 * @brief The hash embedding of one text into @p dims floats (the "hash" provider's function,
 *        exposed for benchmarks and the rag service). Empty text gives the zero vector.
 */
void tn_embed_hash(const char *text, size_t len, size_t dims, float *out);

/** @brief Little-endian float32 base64 of @p n floats (the tickets.embedded "vector"). Caller
 * frees. */
char *tn_embed_vector_b64(const float *v, size_t n);
/**
 * @brief Decode tn_embed_vector_b64() output. @returns the floats (caller frees) and their
 *        count in @p n, or NULL when the text is not base64 of a whole number of floats.
 */
float *tn_embed_vector_from_b64(const char *b64, size_t len, size_t *n);

#endif
