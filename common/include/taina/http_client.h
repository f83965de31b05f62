/**
 * @file http_client.h
 * @brief HTTP client for upstream APIs (Qdrant, embeddings, LLM, booking): retries with backoff,
 *        deadlines, capped responses, connection reuse, metrics. Wraps libcurl.
 *
 *     tn_http_client_opts_t o = tn_http_client_opts_default();
 *     o.upstream = "qdrant";
 *     o.base_url = cfg->qdrant_url;
 *     o.headers = (const char *const[]){api_key_header, NULL};
 *     o.metrics = m;
 *     o.retry_post = true;                          (upserts with deterministic ids)
 *     tn_http_client_t *hc = tn_http_client_new(&o, err, sizeof(err));
 *
 *     tn_http_response_t resp;
 *     tn_http_response_init(&resp);
 *     json_t *out = NULL;
 *     tn_err_t rc = tn_http_client_json(hc, TN_HTTP_POST, "/collections/x/points/search", body,
 *                                       &resp, &out);
 *     ...
 *     json_decref(out);
 *     tn_http_response_cleanup(&resp);
 *
 * Retries: a timeout, a connection failure (refused, reset, DNS, nothing received) or status 429,
 * 500, 502, 503 or 504 is retried, up to max_attempts attempts in all, when the method is
 * idempotent (GET, HEAD, PUT, DELETE; POST and PATCH only with retry_post or
 * TN_HTTP_F_IDEMPOTENT). Between attempts the client sleeps a random time in
 * [0, min(backoff_cap, backoff_base * 2^(attempt-1))] ("full jitter"), or what Retry-After says
 * (delta-seconds or HTTP-date, at most retry_after_max). No attempt starts or runs past the
 * call's deadline: when the wait would reach it, the client stops and returns the last outcome.
 * Other 4xx statuses are answers, not failures, and are never retried. Redirects are not
 * followed (a 3xx is an answer). Only http and https URLs are accepted.
 *
 * Secrets: header values are never logged. Debug output (log_debug "client") shows libcurl's
 * trace with the values of Authorization, Proxy-Authorization, Cookie, Set-Cookie and any header
 * whose name contains "key", "token", "secret" or "auth" replaced by "[redacted]"; bodies are
 * shown by size only.
 *
 * Metrics (when a registry is given), per attempt:
 *   taina_upstream_request_duration_seconds{upstream,outcome}  histogram
 *   taina_upstream_requests_total{upstream,outcome}            counter
 *   taina_upstream_retries_total{upstream}                     counter
 * with outcome one of ok (1xx-3xx), client_error (4xx), server_error (5xx), timeout, error
 * (no HTTP answer for another reason, or a response over the size cap).
 *
 * @thread A client may be used from several threads at once: each call borrows a libcurl handle
 *         from a small pool (guarded by a mutex) and returns it afterwards, so connections stay
 *         open and are reused by later calls. Calls block the calling thread for at most the
 *         call's deadline (waits between attempts included; they do not watch the stop flag,
 *         so keep deadlines below the shutdown grace period).
 */
#ifndef TAINA_HTTP_CLIENT_H
#define TAINA_HTTP_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "taina/buf.h"
#include "taina/err.h"
#include "taina/metrics.h"

typedef struct tn_http_client tn_http_client_t;

/** Client options. Zero fields take the defaults in brackets (see tn_http_client_opts_default). */
typedef struct tn_http_client_opts {
    const char *upstream;       /**< name for metrics and logs ("qdrant"); required */
    const char *base_url;       /**< "http(s)://host[:port][/prefix]"; NULL: every request
                                     must give an absolute URL */
    int64_t connect_timeout_ms; /**< TCP (+TLS) connect, per attempt [5000] */
    int64_t timeout_ms;         /**< whole attempt, connect to last byte [30000] */
    int64_t deadline_ms;        /**< whole call, all attempts and waits [60000] */
    int max_attempts;           /**< attempts in all, 1 = no retry [3] */
    int64_t backoff_base_ms;    /**< first backoff ceiling [100] */
    int64_t backoff_cap_ms;     /**< largest backoff ceiling [5000] */
    int64_t retry_after_max_ms; /**< longest wait a Retry-After may ask for [30000] */
    size_t max_response_bytes;  /**< body cap; more is TN_ERR_TOO_LARGE [16 MiB] */
    const char *const *headers; /**< NULL-terminated "Name: value" lines sent with every
                                     request (e.g. "api-key: ..."). Copied. */
    const char *user_agent;     /**< ["taina/1"] */
    tn_metrics_t *metrics;      /**< Borrowed, may be NULL; must outlive the client. */
    bool retry_post;            /**< POST/PATCH may be retried (the upstream is idempotent) */
    int pool_size;              /**< idle libcurl handles (and so open connections) kept [4] */
} tn_http_client_opts_t;

typedef enum {
    TN_HTTP_GET = 0,
    TN_HTTP_POST,
    TN_HTTP_PUT,
    TN_HTTP_PATCH,
    TN_HTTP_DELETE,
    TN_HTTP_HEAD
} tn_http_method_t;

enum {
    TN_HTTP_F_IDEMPOTENT = 1 << 0, /**< retry this request even if its method is POST/PATCH */
    TN_HTTP_F_NO_RETRY = 1 << 1    /**< never retry this request */
};

/** One request. Every pointer is borrowed for the duration of the call. */
typedef struct tn_http_request {
    tn_http_method_t method;
    const char *path;           /**< appended to base_url ("/collections/x"), or an absolute
                                     "http://" / "https://" URL */
    const char *const *headers; /**< NULL-terminated extra "Name: value" lines; NULL ok */
    const void *body;           /**< NULL for none */
    size_t body_len;
    const char *content_type; /**< Content-Type of the body; NULL ok */
    int64_t timeout_ms;       /**< per-attempt timeout for this call; 0: the client's */
    int64_t deadline_ms;      /**< deadline for this call; 0: the client's */
    unsigned flags;           /**< TN_HTTP_F_* */
} tn_http_request_t;

/**
 * The outcome of a call. Embed it, tn_http_response_init() it once, pass it to any number of
 * calls (each resets it) and tn_http_response_cleanup() it at the end. Read the fields directly.
 */
typedef struct tn_http_response {
    long status;        /**< HTTP status of the last attempt, 0 when no answer arrived */
    int attempts;       /**< attempts made */
    int64_t elapsed_ms; /**< time the call took, waits included */
    tn_buf_t body;      /**< body of the last answer, capped at max_response_bytes */
    tn_buf_t hdrs;      /**< private: headers of the last answer; use tn_http_response_header */
    char error[192];    /**< when no answer arrived: why, in libcurl's words ("SSL certificate
                             problem: self-signed certificate"); "" otherwise */
} tn_http_response_t;

/** @brief The defaults: every field zero or NULL (the client applies its documented defaults). */
tn_http_client_opts_t tn_http_client_opts_default(void);

/**
 * @brief Create a client.
 * @returns the client, or NULL with one sentence in @p errbuf (bad URL, bad header line,
 *          missing upstream). Caller owns the result; free with tn_http_client_destroy().
 * @thread Any thread. Initialises libcurl globally once per process.
 */
tn_http_client_t *tn_http_client_new(const tn_http_client_opts_t *opts, char *errbuf,
                                     size_t errlen);
/**
 * @brief The CAs every client of the process trusts for HTTPS (TAINA_TLS_CA_FILE and
 *        TAINA_TLS_CA_PATH, set by tn_app_main before any client exists): a PEM bundle and/or
 *        a folder of hashed certificates used instead of the system's store, for upstreams
 *        behind a private CA. NULL or "" leaves the system default. Copied. Call before
 *        creating clients (not concurrently with requests); (NULL, NULL) frees the copies.
 */
void tn_http_client_tls_trust(const char *ca_file, const char *ca_path);

/** @brief Close connections and free the client. NULL ok. No call may be in progress. */
void tn_http_client_destroy(tn_http_client_t *hc);

/** @brief The upstream name. Borrowed; valid until tn_http_client_destroy(). */
const char *tn_http_client_upstream(const tn_http_client_t *hc);

/**
 * @brief Perform @p req with retries.
 * @returns
 *   - TN_OK: an HTTP answer arrived; read resp->status (any status that was not retried, or a
 *     2xx-4xx after retries).
 *   - TN_ERR_UNAVAILABLE: connection refused or reset, DNS failure, no answer; or a retryable
 *     status (429, 5xx above) that was still returned by the last attempt (resp->status and
 *     resp->body then hold it).
 *   - TN_ERR_TIMEOUT: the last attempt timed out or the deadline passed.
 *   - TN_ERR_TOO_LARGE: the answer was larger than max_response_bytes (not retried).
 *   - TN_ERR_INVALID: bad URL or header line (not retried).
 * @thread Any thread; blocks until done.
 */
tn_err_t tn_http_client_request(tn_http_client_t *hc, const tn_http_request_t *req,
                                tn_http_response_t *resp);

/**
 * Receives a piece of a streamed answer's body (tn_http_client_stream) as it arrives: @p len
 * bytes (> 0) at @p data, borrowed for the call only. Return 0 to go on, non-zero to stop (the
 * call then returns TN_ERR_STOPPED). @thread Runs on the thread that called
 * tn_http_client_stream().
 */
typedef int(tn_http_body_fn)(void *opaque, const char *data, size_t len);

/**
 * @brief Perform @p req like tn_http_client_request(), handing the body of a 2xx answer to
 *        @p on_body_piece piece by piece as it arrives (Server-Sent Events, long downloads)
 *        instead of keeping it in resp->body.
 *
 * Retries, deadlines, metrics and the size cap are those of tn_http_client_request(), with one
 * difference: once a piece was delivered, a failure of that attempt (timeout, reset, a body
 * over max_response_bytes in all) is returned as it is and never retried, since the reader has
 * seen part of the answer. Answers that are not 2xx (including the retried 429 and 5xx) are
 * never streamed: their bodies are kept in resp->body as usual. The response headers are
 * readable (tn_http_response_header) from the first piece on; resp->status is set when the
 * call returns.
 * @returns the codes of tn_http_client_request(), and TN_ERR_STOPPED when @p on_body_piece
 *          returned non-zero (resp->status then holds the answer's status).
 * @thread Any thread; blocks until the answer is complete, fails or is stopped.
 */
tn_err_t tn_http_client_stream(tn_http_client_t *hc, const tn_http_request_t *req,
                               tn_http_body_fn *on_body_piece, void *opaque,
                               tn_http_response_t *resp);

/**
 * @brief The error message in a JSON error answer of an HTTP API: `error.message` (OpenAI's
 *        envelope, CONTRACTS.md 2.0), else `error` as a string, `message` or `detail`.
 * @returns the message, borrowed from @p doc; NULL when @p doc is not an object with one.
 */
const char *tn_http_json_error_message(const json_t *doc);

/**
 * @brief Send @p body (NULL: no body) as JSON ("Content-Type: application/json",
 *        "Accept: application/json") and parse the answer.
 * @param out on TN_OK the parsed answer (NULL when the 2xx answer had an empty body). Caller
 *        owns it; free with json_decref(). Set to NULL on failure.
 * @returns the codes of tn_http_client_request(), and
 *   - TN_ERR_UPSTREAM: a non-2xx answer; resp->status and resp->body hold it (see
 *     tn_http_response_describe()).
 *   - TN_ERR_PARSE: a 2xx answer that is not valid JSON.
 */
tn_err_t tn_http_client_json(tn_http_client_t *hc, tn_http_method_t method, const char *path,
                             const json_t *body, tn_http_response_t *resp, json_t **out);

/**
 * @brief Like tn_http_client_json() with a full request: @p req's method, path, headers,
 *        timeouts and flags are used; its body and content_type are ignored.
 */
tn_err_t tn_http_client_json_req(tn_http_client_t *hc, const tn_http_request_t *req,
                                 const json_t *body, tn_http_response_t *resp, json_t **out);

/** @brief Initialise an empty response. */
void tn_http_response_init(tn_http_response_t *resp);
/** @brief Free the response's buffers (not the struct). NULL ok. */
void tn_http_response_cleanup(tn_http_response_t *resp);
/**
 * @brief A header of the last answer by case-insensitive name (the first if repeated).
 * @returns the value without surrounding blanks, or NULL. Borrowed; valid until the response is
 *          reused or cleaned up.
 */
const char *tn_http_response_header(const tn_http_response_t *resp, const char *name);
/**
 * @brief Describe the answer for an error message: `HTTP 404: <start of the body>`, with control
 *        characters replaced and the body cut at 200 bytes. Always NUL-terminates @p buf.
 * @returns buf.
 */
char *tn_http_response_describe(const tn_http_response_t *resp, char *buf, size_t len);

/** One part of a multipart/form-data body (RFC 7578). Every pointer is borrowed. */
typedef struct tn_http_form_part {
    const char *name;         /**< form field name (no '"', CR or LF) */
    const char *filename;     /**< NULL for a plain field; else the file name sent */
    const char *content_type; /**< NULL: none (a plain field) */
    const void *data;
    size_t len;
} tn_http_form_part_t;

/**
 * @brief Build a multipart/form-data body of @p n parts (file uploads such as OpenAI's
 *        /v1/audio/transcriptions). The boundary is random and checked not to occur in any
 *        part; send the body with @p content_type as the request's content_type.
 * @returns the body (caller frees), its size in @p len, and in @p content_type
 *          "multipart/form-data; boundary=..." (caller frees).
 */
uint8_t *tn_http_form_encode(const tn_http_form_part_t *parts, size_t n, size_t *len,
                             char **content_type);

/** @brief The method's name ("GET"). */
const char *tn_http_method_name(tn_http_method_t method);

/**
 * @brief A client for an OpenAI-compatible API (embeddings, chat): @p url may be "http://host:port"
 *        or end in "/v1" (trailing slashes ignored); *@p path gets the request path of
 *        @p endpoint ("/embeddings" -> "/v1/embeddings" or "/embeddings"), caller frees;
 *        "Authorization: Bearer KEY" is sent when @p api_key is set (the header text is wiped
 *        from memory once the client has it); POST is retried (the calls are idempotent or
 *        retried only before any answer). The other options come from @p ho.
 * @returns the client, or NULL with one sentence in @p errbuf.
 */
tn_http_client_t *tn_http_client_openai_new(const tn_http_client_opts_t *ho, const char *url,
                                            const char *api_key, const char *endpoint, char **path,
                                            char *errbuf, size_t errlen);

#endif
