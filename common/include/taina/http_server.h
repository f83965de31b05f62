/**
 * @file http_server.h
 * @brief The HTTP server of every service (wraps libmicrohttpd): a route table, API-key
 *        auth, body limits, request ids, built-in /health /ready /metrics, and metrics.
 *
 *     static const char *const json_only[] = {"application/json", NULL};
 *     static const tn_http_route_t routes[] = {
 *         {"POST", "/v1/tickets", on_ticket, TN_HTTP_ROUTE_AUTH, json_only, NULL},
 *         {"GET", "/v1/appointments/{request_id}", on_get, TN_HTTP_ROUTE_AUTH, NULL, NULL},
 *     };
 *     tn_http_server_opts_t o;
 *     tn_http_server_opts_init(&o);
 *     o.port = 8080; o.metrics = m; o.auth = auth;
 *     tn_http_server_new(&o, routes, TN_ARRAY_LEN(routes), &srv, err, sizeof(err));
 *     tn_http_server_start(srv, err, sizeof(err));
 *     ...
 *     tn_http_server_stop(srv);      (stop accepting, drain in-flight requests, stop)
 *     tn_http_server_destroy(srv);
 *
 * Request lifecycle (each step may end the request with a JSON error, see below):
 *   1. headers received: a request id is taken from a sane `X-Request-Id` (1..64 characters of
 *      `[A-Za-z0-9._:-]`) or generated (32 random hex digits); it is echoed in every response.
 *   2. routing: no route with that path -> 404 `not_found`; a path known for other methods
 *      -> 405 `method_not_allowed` with `Allow`. HEAD matches GET routes.
 *   3. auth (routes with TN_HTTP_ROUTE_AUTH when an auth set is given):
 *      `Authorization: Bearer KEY`; missing or unknown -> 401 `unauthorized` with
 *      `WWW-Authenticate: Bearer`. Without an auth set every request has tenant "default".
 *      With rate_limit, each key has a token bucket (rate_limit per second, rate_burst at
 *      once): a request over it -> 429 `rate_limited` with `Retry-After` (seconds).
 *   4. content type: when the route lists types and the request has a body or a Content-Type,
 *      the media type (parameters like charset ignored, case-insensitive) must be one of them,
 *      else 415 `unsupported_media_type`.
 *   5. body: a Content-Length above max_body -> 413 `payload_too_large` before any byte is read;
 *      a chunked body is counted while it arrives and never buffered beyond max_body.
 *   6. the handler runs with the whole body in memory and the request id as log context
 *      (tn_log_ctx_set_request). It must answer with one of the tn_http_req_respond*()
 *      functions before it returns (a later call replaces an earlier one); a handler that does
 *      not answer produces 500 `internal`.
 * Error bodies are always `{"error":{"code":"...","message":"..."}}` with
 * Content-Type application/json.
 *
 * Built-in routes (never need auth): GET /health -> 200 {"status":"ok"};
 * GET /ready -> 200 {"status":"ready"} or 503 {"status":"not_ready","reason":"..."} from the
 * ready callback; GET /metrics (only when a registry is given) -> the Prometheus text format.
 *
 * Metrics (when a registry is given): `taina_http_requests_total{route,method,status}`,
 * `taina_http_request_duration_seconds{route,method,status}` (route is the pattern, or
 * "unmatched"; unusual methods count as "OTHER"), `taina_http_connections` (open connections).
 *
 * @thread Handlers, the ready callback and stream callbacks run on the server's threads, several
 *         at once, and may block (e.g. waiting for a Kafka acknowledgement). By default each
 *         connection has its own thread, so a handler that waits delays only its own connection.
 *         With a pool (opts.threads > 0) a connection stays with the pool thread that accepted
 *         it, which serves its connections one request at a time: a waiting handler then delays
 *         the other connections of its thread. The tn_http_server_* functions are called from
 *         one controlling thread.
 */
#ifndef TAINA_HTTP_SERVER_H
#define TAINA_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "taina/auth.h"
#include "taina/err.h"
#include "taina/metrics.h"
#include "taina/trace.h"

struct json_t; /* jansson's json_t */

typedef struct tn_http_server tn_http_server_t;
/** One request. Borrowed by a handler; valid until the handler returns. */
typedef struct tn_http_req tn_http_req_t;

/** A route handler. @p opaque is the route's. @thread Runs on a worker thread. */
typedef void(tn_http_handler_fn)(tn_http_req_t *req, void *opaque);

/**
 * Ready check for GET /ready: return true when ready, else false with a short reason written to
 * @p reason (NUL-terminated, at most @p len bytes). @thread Runs on a worker thread.
 */
typedef bool(tn_http_ready_fn)(void *opaque, char *reason, size_t len);

/**
 * Produces a streamed response body (Server-Sent Events, long downloads). Write up to @p max
 * bytes to @p buf and return how many (> 0); return 0 at the end of the stream or -1 to abort
 * the connection. It may block until data is available, but should return every few seconds so
 * that tn_http_server_stop() can finish. @thread Runs on a worker thread.
 */
typedef ssize_t(tn_http_stream_fn)(void *opaque, char *buf, size_t max);
/** Frees a stream's opaque once the response is finished or aborted. */
typedef void(tn_http_stream_free_fn)(void *opaque);

enum {
    TN_HTTP_ROUTE_AUTH = 1 << 0 /**< requires a valid API key (when the server has an auth set) */
};

/**
 * One route. The table passed to tn_http_server_new() is copied, but the strings and the
 * content_types array are borrowed and must outlive the server (they are normally static).
 */
typedef struct tn_http_route {
    const char *method;          /**< "GET", "POST", ... (exact, upper case) */
    const char *pattern;         /**< "/v1/appointments/{request_id}": `{name}` = one segment */
    tn_http_handler_fn *handler; /**< answers the request */
    unsigned flags;              /**< TN_HTTP_ROUTE_* */
    const char *const *content_types; /**< NULL-terminated accepted media types; NULL = any */
    void *opaque;                     /**< passed to the handler; borrowed */
} tn_http_route_t;

/** Server options. Start from tn_http_server_opts_init(); zero numeric fields mean default. */
typedef struct tn_http_server_opts {
    const char *bind_addr;    /**< numeric IPv4 or IPv6 address; default "0.0.0.0". Copied. */
    int port;                 /**< TCP port; 0 = an ephemeral one (see tn_http_server_port()) */
    const char *service;      /**< name for log lines; default "taina". Copied. */
    size_t max_body;          /**< largest request body in bytes; default 1 MiB */
    unsigned max_connections; /**< open connections at once; more wait unaccepted; default 256 */
    unsigned conn_timeout_s;  /**< idle connection timeout in seconds; default 30 */
    unsigned threads;         /**< 0 (default): a thread for each connection; N: a pool of N */
    int64_t stop_grace_ms;    /**< how long stop waits for in-flight requests; default 10 s */
    tn_metrics_t *metrics;    /**< registry for HTTP metrics and /metrics. Borrowed; NULL = none */
    tn_auth_t *auth;          /**< API keys. Borrowed; NULL = auth disabled (tenant "default") */
    double rate_limit;        /**< requests per second per API key (token bucket); 0 = none */
    double rate_burst;        /**< requests a key may send at once; 0 = rate_limit (at least 1) */
    tn_http_ready_fn *ready;  /**< /ready check; NULL = always ready */
    void *ready_opaque;       /**< passed to @p ready. Borrowed */
} tn_http_server_opts_t;

/** @brief Fill @p o with the defaults. */
void tn_http_server_opts_init(tn_http_server_opts_t *o);

/**
 * @brief Create a server (not yet listening) with @p nroutes routes plus the built-ins.
 * @param opts copied; its borrowed pointers (metrics, auth, ready_opaque) must outlive the server.
 * @param out Caller owns the result; free with tn_http_server_destroy().
 * @returns TN_OK, or TN_ERR_INVALID for a bad option or route pattern (one sentence in @p errbuf).
 */
tn_err_t tn_http_server_new(const tn_http_server_opts_t *opts, const tn_http_route_t *routes,
                            size_t nroutes, tn_http_server_t **out, char *errbuf, size_t errlen);

/**
 * @brief Bind and start serving on the worker threads.
 * @returns TN_OK, or TN_ERR_IO when the address cannot be bound (reason in @p errbuf).
 */
tn_err_t tn_http_server_start(tn_http_server_t *srv, char *errbuf, size_t errlen);

/** @brief The bound TCP port (after a successful start), or 0. */
int tn_http_server_port(const tn_http_server_t *srv);

/** @brief Requests received and not finished yet (handler running or response being sent). */
unsigned tn_http_server_inflight(const tn_http_server_t *srv);

/**
 * @brief Stop: accept no new connections, wait up to stop_grace_ms for in-flight requests to
 *        finish (their responses are sent), then close every connection and join the threads.
 *        Idempotent; a server that was not started is left as is.
 */
void tn_http_server_stop(tn_http_server_t *srv);

/** @brief Stop if needed and free the server. NULL ok. */
void tn_http_server_destroy(tn_http_server_t *srv);

/* ------------------------------------------------------------------------------------------ */
/* Request accessors. Returned strings are borrowed; valid until the handler returns.         */

/** @brief The method ("GET"). */
const char *tn_http_req_method(const tn_http_req_t *req);
/** @brief The path, percent-decoded, without the query string. */
const char *tn_http_req_path(const tn_http_req_t *req);
/** @brief The matched route pattern ("/v1/appointments/{request_id}"). */
const char *tn_http_req_route(const tn_http_req_t *req);
/** @brief The value of path parameter @p name (`{name}` in the pattern), or NULL. */
const char *tn_http_req_param(const tn_http_req_t *req, const char *name);
/** @brief The (decoded) value of query parameter @p name; "" when present without value; NULL. */
const char *tn_http_req_query(const tn_http_req_t *req, const char *name);
/**
 * @brief The @p n-th (from 0) value of a repeated query parameter @p name, in URL order
 *        (`start=ge2026-01-01&start=lt2026-01-02`); "" when present without value; NULL.
 */
const char *tn_http_req_query_nth(const tn_http_req_t *req, const char *name, unsigned n);
/** @brief The value of request header @p name (case-insensitive), or NULL. */
const char *tn_http_req_header(const tn_http_req_t *req, const char *name);
/** @brief The body (NUL-terminated for convenience; "" when none) and its length. */
const char *tn_http_req_body(const tn_http_req_t *req, size_t *len);
/** @brief The Content-Type header as sent (with parameters), or NULL. */
const char *tn_http_req_content_type(const tn_http_req_t *req);
/** @brief The request id (echoed in X-Request-Id). Never NULL. */
const char *tn_http_req_id(const tn_http_req_t *req);
/** @brief The tenant of the API key, "default" when auth is disabled; NULL on open routes. */
const char *tn_http_req_tenant(const tn_http_req_t *req);
/**
 * @brief The trace context of this request: the incoming `traceparent` continued (same trace id,
 *        new span id), or a new trace. Its trace id is on every log line of the handler; pass it
 *        on to the Kafka records the request produces (tn_kafka_trace_header()).
 */
const tn_trace_t *tn_http_req_trace(const tn_http_req_t *req);
/** @brief The raw W3C `traceparent` header, or NULL (parsed by the trace module). */
const char *tn_http_req_traceparent(const tn_http_req_t *req);

/* ------------------------------------------------------------------------------------------ */
/* Responses. Call one respond function per request, from its handler.                          */

/**
 * @brief Answer with @p status and @p body serialized as compact JSON.
 * @param body Takes ownership (the reference is released, also on failure); NULL -> `{}`.
 */
void tn_http_req_respond_json(tn_http_req_t *req, int status, struct json_t *body);

/** @brief Answer with @p len bytes of @p body (copied) and @p content_type (copied). */
void tn_http_req_respond(tn_http_req_t *req, int status, const char *content_type, const void *body,
                         size_t len);

/**
 * @brief Answer with `{"error":{"code":CODE,"message":MESSAGE}}` (application/json).
 * @param code a machine-readable code ("invalid_body"); @p fmt formats the message.
 */
void tn_http_req_respond_error(tn_http_req_t *req, int status, const char *code, const char *fmt,
                               ...) __attribute__((format(printf, 4, 5)));

/**
 * @brief Answer with a body produced by @p cb (sent with chunked transfer encoding).
 * @param opaque Takes ownership: @p free_cb (may be NULL) runs once the stream is finished or
 *        aborted, also when the response is replaced or never sent.
 */
void tn_http_req_respond_stream(tn_http_req_t *req, int status, const char *content_type,
                                tn_http_stream_fn *cb, tn_http_stream_free_fn *free_cb,
                                void *opaque);

/**
 * @brief Add a response header (copied). Content-Type and X-Request-Id are set by the server.
 * @returns TN_OK; TN_ERR_INVALID for a name or value with CR, LF or NUL (or an empty name);
 *          TN_ERR_TOO_LARGE beyond 16 extra headers.
 */
tn_err_t tn_http_req_add_header(tn_http_req_t *req, const char *name, const char *value);

#endif
