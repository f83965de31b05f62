/* Internals shared by http_server.c (routing, lifecycle, MHD callbacks) and http_server_req.c
 * (request accessors, responses, built-in routes). Not a public header. */
#ifndef TAINA_HTTP_SERVER_INT_H
#define TAINA_HTTP_SERVER_INT_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "taina/buf.h"
#include "taina/http_server.h"
#include "taina/ratelimit.h"
#include "taina/trace.h"

#define TN_HTTP_MAX_SEGS          16
#define TN_HTTP_MAX_PARAMS        8
#define TN_HTTP_MAX_EXTRA_HEADERS 16
#define TN_HTTP_REQ_ID_MAX        64
#define TN_HTTP_ALLOW_MAX         256
#define TN_HTTP_MAX_ALLOW         16
#define TN_HTTP_ERROR_BODY_MAX    4096
#define TN_HTTP_METRICS_BODY_MAX  (32u * 1024 * 1024)
#define TN_HTTP_STREAM_BLOCK      4096

#define TN_HTTP_DEF_MAX_BODY    (1024u * 1024)
#define TN_HTTP_DEF_MAX_CONNS   256u
#define TN_HTTP_DEF_TIMEOUT_S   30u
#define TN_HTTP_DEF_GRACE_MS    10000
#define TN_HTTP_DEF_BIND        "0.0.0.0"
#define TN_HTTP_TENANT_DISABLED "default"

/* ============================================================================================ */
/* Types                                                                                        */

typedef struct seg {
    const char *text; /* literal text, or the parameter name; points into the borrowed pattern */
    size_t len;
    bool param;
} seg_t;

typedef struct route {
    tn_http_route_t def;
    seg_t segs[TN_HTTP_MAX_SEGS];
    size_t nsegs;
} route_t;

struct tn_http_server {
    tn_http_server_opts_t opts; /* bind_addr and service point at the copies below */
    char *bind_addr;
    char *service;
    struct sockaddr_storage addr;
    route_t *routes;
    size_t nroutes;
    struct MHD_Daemon *daemon;
    int port;
    atomic_uint inflight;
    atomic_bool stopping;
    pthread_mutex_t conns_lock; /* keeps the connections gauge in step with the count */
    long conns;
    tn_metric_t *m_requests;
    tn_metric_t *m_duration;
    tn_metric_t *m_conns;
    tn_ratelimit_t *limits; /* per API key (index in the auth set); NULL = none */
};

typedef struct header {
    char *name;
    char *value;
} header_t;

typedef struct stream {
    tn_http_stream_fn *cb;
    tn_http_stream_free_fn *free_cb;
    void *opaque;
} stream_t;

typedef struct param {
    const char *name; /* into the route pattern */
    size_t nlen;
    char *value;
} param_t;

struct tn_http_req {
    tn_http_server_t *srv;
    struct MHD_Connection *conn;
    const route_t *route;
    const char *method; /* MHD's copy; valid for the request */
    char *path;
    char id[TN_HTTP_REQ_ID_MAX + 1];
    tn_trace_t trace; /* continued from traceparent, or new; set before the handler runs */
    const char *tenant;
    param_t params[TN_HTTP_MAX_PARAMS];
    size_t nparams;
    tn_buf_t body;
    double start_s;
    bool body_too_large; /* rejected while reading: discard the rest */
    size_t received;     /* body bytes received, kept or not */
    bool queued;         /* a response was handed to MHD */
    int final_status;    /* what the client got (or was about to get), for metrics */
    /* The response being prepared. */
    int status; /* 0 = none yet */
    char *resp_type;
    char *resp_body;
    size_t resp_len;
    stream_t *stream;
    header_t headers[TN_HTTP_MAX_EXTRA_HEADERS];
    size_t nheaders;
};

/* ============================================================================================ */
/* Functions shared by the two files                                                            */

/** Set the response, taking ownership of @p body (malloc'd; may be NULL when @p len is 0). */
void tn_http_req_respond_take(tn_http_req_t *req, int status, const char *type, char *body,
                              size_t len);
/** Forget the prepared response (frees its body and stream). */
void tn_http_req_clear_response(tn_http_req_t *req);
/** Hand the prepared response (500 when none) to MHD. @returns true when MHD accepted it. */
bool tn_http_req_queue(tn_http_req_t *req);

/* Built-in routes; their opaque is the server. */
void tn_http_builtin_health(tn_http_req_t *req, void *opaque);
void tn_http_builtin_ready(tn_http_req_t *req, void *opaque);
void tn_http_builtin_metrics(tn_http_req_t *req, void *opaque);

#endif
