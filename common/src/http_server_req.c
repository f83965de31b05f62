/* HTTP server, request side: accessors, responses handed to libmicrohttpd, built-in routes. */
#include "http_server_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "taina/log.h"
#include "taina/mem.h"

static bool header_text_ok(const char *s)
{
    return strpbrk(s, "\r\n") == NULL;
}

/* ============================================================================================ */
/* Responses                                                                                    */

static void stream_free(void *cls)
{
    stream_t *st = cls;
    if (st->free_cb)
        st->free_cb(st->opaque);
    free(st);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    stream_t *st = cls;
    TN_UNUSED(pos);
    ssize_t n = st->cb(st->opaque, buf, max);
    if (n > 0)
        return n > (ssize_t)max ? (ssize_t)max : n;
    return n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

void tn_http_req_clear_response(tn_http_req_t *req)
{
    TN_FREE(req->resp_type);
    TN_FREE(req->resp_body);
    req->resp_len = 0;
    if (req->stream) {
        stream_free(req->stream);
        req->stream = NULL;
    }
    req->status = 0;
}

/* Set the response, taking ownership of @p body (malloc'd, may be NULL when len is 0). */
void tn_http_req_respond_take(tn_http_req_t *req, int status, const char *type, char *body,
                              size_t len)
{
    TN_ASSERT(status >= 100 && status <= 999);
    tn_http_req_clear_response(req);
    req->status = status;
    req->resp_type = tn_xstrdup(type);
    req->resp_body = body;
    req->resp_len = len;
}

void tn_http_req_respond(tn_http_req_t *req, int status, const char *content_type, const void *body,
                         size_t len)
{
    char *copy = NULL;
    if (len) {
        copy = tn_xmalloc(len);
        memcpy(copy, body, len);
    }
    tn_http_req_respond_take(req, status, content_type, copy, len);
}

void tn_http_req_respond_json(tn_http_req_t *req, int status, struct json_t *body)
{
    char *text = json_dumps(body ? body : json_object(), JSON_COMPACT | JSON_ENCODE_ANY);
    if (body)
        json_decref(body);
    if (!text) {
        TN_LOG(TN_LOG_ERROR, "could not serialize a JSON response (status %d)", status);
        tn_http_req_respond_error(req, 500, "internal", "the response could not be serialized");
        return;
    }
    tn_http_req_respond_take(req, status, "application/json", text, strlen(text));
}

static void respond_verror(tn_http_req_t *req, int status, const char *code, const char *fmt,
                           va_list ap) __attribute__((format(printf, 4, 0)));

static void respond_verror(tn_http_req_t *req, int status, const char *code, const char *fmt,
                           va_list ap)
{
    char msg[1024];
    tn_buf_t b;
    size_t len;

    vsnprintf(msg, sizeof(msg), fmt, ap);
    tn_buf_init(&b, TN_HTTP_ERROR_BODY_MAX);
    /* The message is at most 1 KiB, so even fully escaped it fits the cap. */
    tn_err_t rc = tn_buf_adds(&b, "{\"error\":{\"code\":");
    if (rc == TN_OK)
        rc = tn_buf_add_json_str(&b, code);
    if (rc == TN_OK)
        rc = tn_buf_adds(&b, ",\"message\":");
    if (rc == TN_OK)
        rc = tn_buf_add_json_str(&b, msg);
    if (rc == TN_OK)
        rc = tn_buf_adds(&b, "}}");
    TN_ASSERT(rc == TN_OK);
    char *body = tn_buf_detach(&b, &len);
    tn_http_req_respond_take(req, status, "application/json", body, len);
}

void tn_http_req_respond_error(tn_http_req_t *req, int status, const char *code, const char *fmt,
                               ...)
{
    va_list ap;
    va_start(ap, fmt);
    respond_verror(req, status, code, fmt, ap);
    va_end(ap);
}

void tn_http_req_respond_stream(tn_http_req_t *req, int status, const char *content_type,
                                tn_http_stream_fn *cb, tn_http_stream_free_fn *free_cb,
                                void *opaque)
{
    TN_ASSERT(cb);
    tn_http_req_respond_take(req, status, content_type, NULL, 0);
    stream_t *st = tn_xcalloc(1, sizeof(*st));
    st->cb = cb;
    st->free_cb = free_cb;
    st->opaque = opaque;
    req->stream = st;
}

tn_err_t tn_http_req_add_header(tn_http_req_t *req, const char *name, const char *value)
{
    if (!*name || strpbrk(name, ":\r\n \t") || !header_text_ok(value))
        return TN_ERR_INVALID;
    if (req->nheaders == TN_HTTP_MAX_EXTRA_HEADERS)
        return TN_ERR_TOO_LARGE;
    header_t *h = &req->headers[req->nheaders++];
    h->name = tn_xstrdup(name);
    h->value = tn_xstrdup(value);
    return TN_OK;
}

/* Hand the prepared response to MHD. @returns true when MHD accepted it. */
bool tn_http_req_queue(tn_http_req_t *req)
{
    struct MHD_Response *resp = NULL;

    if (req->status == 0) {
        TN_LOG(TN_LOG_ERROR, "handler for %s %s did not answer", req->method,
               req->route ? req->route->def.pattern : req->path);
        tn_http_req_respond_error(req, 500, "internal", "the request was not answered");
    }
    if (req->stream) {
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, TN_HTTP_STREAM_BLOCK,
                                                 stream_read, req->stream, stream_free);
        if (resp)
            req->stream = NULL; /* owned by the response (stream_free) */
    } else {
        resp =
            MHD_create_response_from_buffer(req->resp_len, req->resp_body, MHD_RESPMEM_MUST_FREE);
        if (resp) {
            req->resp_body = NULL; /* owned by the response */
            req->resp_len = 0;
        }
    }
    if (!resp) {
        TN_LOG(TN_LOG_ERROR, "libmicrohttpd could not create a response");
        return false;
    }
    bool ok = MHD_add_response_header(resp, "X-Request-Id", req->id) == MHD_YES;
    if (req->resp_type)
        ok = ok && MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, req->resp_type);
    for (size_t i = 0; i < req->nheaders; i++)
        ok = ok && MHD_add_response_header(resp, req->headers[i].name, req->headers[i].value);
    if (!ok)
        TN_LOG(TN_LOG_WARN, "libmicrohttpd refused a response header");
    req->queued = MHD_queue_response(req->conn, (unsigned)req->status, resp) == MHD_YES;
    MHD_destroy_response(resp); /* MHD keeps its own reference while sending */
    if (req->queued)
        req->final_status = req->status;
    else
        tn_http_req_clear_response(req);
    return req->queued;
}

/* ============================================================================================ */
/* Built-in routes                                                                              */

void tn_http_builtin_health(tn_http_req_t *req, void *opaque)
{
    static const char body[] = "{\"status\":\"ok\"}";
    TN_UNUSED(opaque);
    tn_http_req_respond(req, 200, "application/json", body, sizeof(body) - 1);
}

void tn_http_builtin_ready(tn_http_req_t *req, void *opaque)
{
    tn_http_server_t *srv = opaque;
    char reason[256] = "";
    bool ready = true;

    if (atomic_load(&srv->stopping)) {
        ready = false;
        snprintf(reason, sizeof(reason), "shutting down");
    } else if (srv->opts.ready) {
        ready = srv->opts.ready(srv->opts.ready_opaque, reason, sizeof(reason));
        reason[sizeof(reason) - 1] = '\0';
    }
    if (ready) {
        static const char body[] = "{\"status\":\"ready\"}";
        tn_http_req_respond(req, 200, "application/json", body, sizeof(body) - 1);
        return;
    }
    tn_buf_t b;
    size_t len;
    tn_buf_init(&b, TN_HTTP_ERROR_BODY_MAX);
    tn_err_t rc = tn_buf_adds(&b, "{\"status\":\"not_ready\",\"reason\":");
    if (rc == TN_OK)
        rc = tn_buf_add_json_str(&b, reason[0] ? reason : "not ready");
    if (rc == TN_OK)
        rc = tn_buf_adds(&b, "}");
    TN_ASSERT(rc == TN_OK);
    char *body = tn_buf_detach(&b, &len);
    tn_http_req_respond_take(req, 503, "application/json", body, len);
}

void tn_http_builtin_metrics(tn_http_req_t *req, void *opaque)
{
    tn_http_server_t *srv = opaque;
    tn_buf_t b;
    size_t len;

    tn_buf_init(&b, TN_HTTP_METRICS_BODY_MAX);
    tn_err_t rc = tn_metrics_render(srv->opts.metrics, &b);
    if (rc != TN_OK) {
        tn_buf_cleanup(&b);
        TN_LOG(TN_LOG_ERROR, "rendering metrics failed: %s", tn_err_str(rc));
        tn_http_req_respond_error(req, 500, "internal", "metrics could not be rendered: %s",
                                  tn_err_str(rc));
        return;
    }
    char *body = tn_buf_detach(&b, &len);
    tn_http_req_respond_take(req, 200, "text/plain; version=0.0.4; charset=utf-8", body, len);
}

/* ============================================================================================ */
/* Request accessors                                                                            */

const char *tn_http_req_method(const tn_http_req_t *req)
{
    return req->method;
}

const char *tn_http_req_path(const tn_http_req_t *req)
{
    return req->path;
}

const char *tn_http_req_route(const tn_http_req_t *req)
{
    return req->route->def.pattern;
}

const char *tn_http_req_param(const tn_http_req_t *req, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->nparams; i++) {
        if (req->params[i].nlen == n && memcmp(req->params[i].name, name, n) == 0)
            return req->params[i].value;
    }
    return NULL;
}

const char *tn_http_req_query(const tn_http_req_t *req, const char *name)
{
    const char *value = NULL;
    if (MHD_lookup_connection_value_n(req->conn, MHD_GET_ARGUMENT_KIND, name, strlen(name), &value,
                                      NULL) != MHD_YES)
        return NULL;
    return value ? value : "";
}

typedef struct query_nth {
    const char *name;
    unsigned want, seen;
    const char *value;
    int found;
} query_nth_t;

static enum MHD_Result query_nth_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    (void)kind;
    query_nth_t *q = cls;
    if (!key || strcmp(key, q->name) != 0)
        return MHD_YES;
    if (q->seen++ < q->want)
        return MHD_YES;
    q->value = value ? value : "";
    q->found = 1;
    return MHD_NO;
}

const char *tn_http_req_query_nth(const tn_http_req_t *req, const char *name, unsigned n)
{
    query_nth_t q = {name, n, 0, NULL, 0};
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, query_nth_cb, &q);
    return q.found ? q.value : NULL;
}

const char *tn_http_req_header(const tn_http_req_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *tn_http_req_body(const tn_http_req_t *req, size_t *len)
{
    if (len)
        *len = req->body.len;
    return req->body.data ? req->body.data : "";
}

const char *tn_http_req_content_type(const tn_http_req_t *req)
{
    return tn_http_req_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
}

const char *tn_http_req_id(const tn_http_req_t *req)
{
    return req->id;
}

const char *tn_http_req_tenant(const tn_http_req_t *req)
{
    return req->tenant;
}

const tn_trace_t *tn_http_req_trace(const tn_http_req_t *req)
{
    return &req->trace;
}

const char *tn_http_req_traceparent(const tn_http_req_t *req)
{
    return tn_http_req_header(req, "traceparent");
}
