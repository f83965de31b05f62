/**
 * @file fake_api.h
 * @brief The shared skeleton of the test doubles of external HTTP APIs (tests/fakes/<name>):
 *        routing of every path through one dispatcher (so that unknown paths and methods are
 *        answered in the API's own error envelope), fault switches, request counters and the
 *        admin endpoints.
 *
 * A fake declares its routes (`*` in a pattern matches one path segment) and an api struct
 * with its error envelope and its API-key check, then starts HTTP from its init:
 *
 *     static const tn_fake_route_t routes[] = {
 *         {"POST", "/v1/embeddings", on_embeddings, 0},
 *     };
 *     f = tn_fake_new(&api, routes, TN_ARRAY_LEN(routes), state, &cfg->fake, errbuf, len);
 *     tn_fake_serve(f, app);
 *
 * Every request goes through, in order:
 *   1. routing: no route -> api.error 404 (405 for a known path with another method);
 *   2. admin routes (/admin/faults GET|POST, /admin/stats GET, /admin/reset POST): the API key
 *      check, then answered here; faults never apply to them;
 *   3. counting (GET /admin/stats "requests" by route pattern), then the fault switches:
 *      latency_ms (sleep), drop_rate (the connection is aborted, see tn_fake_drop()),
 *      error_rate (api.error with error_status, plus `Retry-After: 1` for 429),
 *      malformed_rate (200 with api.malformed_body, which is not valid JSON). A faulted request
 *      has no effect on the fake's data;
 *   4. the API-key check (api.authorize) unless the route is TN_FAKE_OPEN;
 *   5. the route's handler.
 *
 * Config keys (TAINA_FAKE_*, see TN_FAKE_CFG_KEYS): fake_api_key, fake_latency_ms,
 * fake_error_rate, fake_error_status, fake_drop_rate, fake_malformed_rate, fake_seed.
 *
 * @thread Handlers run on the HTTP worker threads, several at once; the fault state and the
 *         counters have their own lock. The fake's data is the fake's business.
 */
#ifndef TN_FAKE_API_H
#define TN_FAKE_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "taina/app.h"
#include "taina/config.h"
#include "taina/http_server.h"

#define TN_FAKE_MAX_SEGS 8 /**< deepest path served */
#define TN_FAKE_MAX_ARGS 4 /**< `*` captures per pattern */

/** The common config keys of a fake (bound into the fake's own config struct). */
typedef struct tn_fake_cfg {
    char *api_key;
    int64_t latency_ms;
    char *error_rate;
    int64_t error_status;
    char *drop_rate;
    char *malformed_rate;
    int64_t seed;
} tn_fake_cfg_t;

/** The key table entries of tn_fake_cfg_t member @p m of struct type @p T. */
/* clang-format off */
#define TN_FAKE_CFG_KEYS(T, m)                                                                     \
    {"fake_api_key", TN_CFG_STRING, offsetof(T, m.api_key), "", TN_CFG_SECRET,                     \
     "API key every non-health request must carry (empty: none)", 0, 0, NULL},                     \
    {"fake_latency_ms", TN_CFG_INT, offsetof(T, m.latency_ms), "0", 0,                             \
     "Fault: milliseconds added to every non-admin request", 0, 600000, NULL},                     \
    {"fake_error_rate", TN_CFG_STRING, offsetof(T, m.error_rate), "0", 0,                          \
     "Fault: fraction (0..1) of requests answered with fake_error_status", 0, 0, NULL},            \
    {"fake_error_status", TN_CFG_INT, offsetof(T, m.error_status), "503", 0,                       \
     "Fault: HTTP status of injected errors (429 adds Retry-After: 1)", 400, 599, NULL},           \
    {"fake_drop_rate", TN_CFG_STRING, offsetof(T, m.drop_rate), "0", 0,                            \
     "Fault: fraction (0..1) of requests whose connection is aborted", 0, 0, NULL},                \
    {"fake_malformed_rate", TN_CFG_STRING, offsetof(T, m.malformed_rate), "0", 0,                  \
     "Fault: fraction (0..1) of requests answered 200 with a malformed JSON body", 0, 0, NULL},    \
    {"fake_seed", TN_CFG_INT, offsetof(T, m.seed), "0", 0,                                         \
     "Seed of the fault dice (0: from the clock)", 0, INT64_MAX, NULL}
/* clang-format on */

typedef struct tn_fake tn_fake_t;

/** One request being served. */
typedef struct tn_fake_call {
    tn_http_req_t *req;
    tn_fake_t *fake;
    void *ctx;                         /**< the fake's state (tn_fake_new's @p ctx) */
    const char *route;                 /**< "POST /collections/{name}/points/search" */
    const char *arg[TN_FAKE_MAX_ARGS]; /**< the `*` segments of the pattern, in order */
    double start_s;                    /**< monotonic time the request reached the fake */
} tn_fake_call_t;

typedef void(tn_fake_handler_fn)(tn_fake_call_t *c);

enum {
    TN_FAKE_OPEN = 1 << 0, /**< no API key needed (health checks) */
    TN_FAKE_ADMIN = 1 << 1 /**< a fake's own admin endpoint: like /admin/faults, never counted
                                nor faulted (the API key still applies) */
};

typedef struct tn_fake_route {
    const char *method;  /**< "GET", "POST", ... */
    const char *pattern; /**< "/collections/{star}/points": a `*` segment matches any one */
    const char *name;    /**< the label in /admin/stats ("PUT /collections/{name}") */
    tn_fake_handler_fn *fn;
    unsigned flags; /**< TN_FAKE_* */
} tn_fake_route_t;

typedef struct tn_fake_api {
    /** Answer with the API's error envelope. */
    void (*error)(tn_fake_call_t *c, int status, const char *message);
    /** Check the API key against @p key; when wrong, answer (401) and return false. */
    bool (*authorize)(tn_fake_call_t *c, const char *key);
    /** The body of a malformed_rate answer (must not parse as JSON). */
    const char *malformed_body;
    /** Extra members of GET /admin/stats (a new object; NULL = none). Under no fake lock. */
    json_t *(*stats)(void *ctx);
    /** POST /admin/reset: forget every datum (NULL = nothing to forget). */
    void (*reset)(void *ctx);
} tn_fake_api_t;

/**
 * @brief A fake on @p routes (borrowed, static) with the faults of @p cfg.
 * @returns NULL with one sentence in @p errbuf when a fault rate in @p cfg is not a number in
 *          0..1.
 */
tn_fake_t *tn_fake_new(const tn_fake_api_t *api, const tn_fake_route_t *routes, size_t nroutes,
                       void *ctx, const tn_fake_cfg_t *cfg, char *errbuf, size_t errlen);
void tn_fake_destroy(tn_fake_t *f);

/** @brief Start the app's HTTP server with routes that send everything to the fake. */
tn_err_t tn_fake_serve(tn_fake_t *f, tn_app_t *app);

/** @brief The configured API key, or NULL when none. */
const char *tn_fake_api_key(const tn_fake_t *f);

/**
 * @brief Abort the connection instead of answering. The common HTTP server cannot close a
 *        connection before it sends a status line, so this sends the head of a chunked 200
 *        response and then aborts: the client sees the connection closed with the response
 *        incomplete (curl error 18, Python IncompleteRead / RemoteDisconnected).
 */
void tn_fake_drop(tn_http_req_t *req);

/** @brief The Bearer token of the Authorization header, or NULL. */
const char *tn_fake_bearer(tn_http_req_t *req);

/**
 * @brief Parse the request body as a JSON object.
 * @returns a new reference, or NULL with a message ("...at line 1 column 5") in @p msg.
 */
json_t *tn_fake_body_json(tn_fake_call_t *c, char *msg, size_t len);

/** @brief Seconds since the request reached the fake. */
double tn_fake_elapsed(const tn_fake_call_t *c);

#endif
