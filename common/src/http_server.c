/* HTTP server over libmicrohttpd: routing, auth, body limits, request ids, metrics, lifecycle. */
#include "http_server_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "taina/buf.h"
#include "taina/clock.h"
#include "taina/log.h"
#include "taina/mem.h"

/* ============================================================================================ */
/* Small helpers                                                                                */

static const char *method_label(const char *m)
{
    static const char *const known[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    for (size_t i = 0; i < TN_ARRAY_LEN(known); i++) {
        if (strcmp(m, known[i]) == 0)
            return known[i];
    }
    return "OTHER";
}

static bool request_id_ok(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == ':' || c == '-';
        if (!ok || n >= TN_HTTP_REQ_ID_MAX)
            return false;
    }
    return n > 0;
}

static void request_id_generate(char *out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char rnd[16];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        /* Only before the kernel's pool is ready; uniqueness is what matters here. */
        static atomic_ulong seq;
        unsigned long v = atomic_fetch_add(&seq, 1) ^ (unsigned long)tn_clock_wall_ms();
        for (size_t i = 0; i < sizeof(rnd); i++)
            rnd[i] = (unsigned char)(v >> (8 * (i % sizeof(v)))) ^ (unsigned char)(i * 131);
    }
    for (size_t i = 0; i < sizeof(rnd); i++) {
        out[2 * i] = hex[rnd[i] >> 4];
        out[2 * i + 1] = hex[rnd[i] & 0xf];
    }
    out[2 * sizeof(rnd)] = '\0';
}

/* "application/json; charset=utf-8" matches "application/json" (case-insensitive). */
static bool media_type_is(const char *header, const char *want)
{
    while (*header == ' ' || *header == '\t')
        header++;
    size_t n = strcspn(header, ";");
    while (n > 0 && (header[n - 1] == ' ' || header[n - 1] == '\t'))
        n--;
    return n == strlen(want) && strncasecmp(header, want, n) == 0;
}

/* ============================================================================================ */
/* Routes                                                                                       */

static bool param_name_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

static tn_err_t route_compile(const tn_http_route_t *def, route_t *r, char *errbuf, size_t errlen)
{
    const char *p = def->pattern;
    size_t nparams = 0;

    memset(r, 0, sizeof(*r));
    r->def = *def;
    if (!def->method || !*def->method || !def->handler || !p || p[0] != '/') {
        snprintf(errbuf, errlen,
                 "route %s %s: needs a method, a handler and a path starting with /",
                 def->method ? def->method : "(null)", p ? p : "(null)");
        return TN_ERR_INVALID;
    }
    if (strcmp(p, "/") == 0)
        return TN_OK;
    while (*p == '/') {
        p++;
        size_t len = strcspn(p, "/");
        if (len == 0 || r->nsegs == TN_HTTP_MAX_SEGS) {
            snprintf(errbuf, errlen, "route %s %s: empty segment or more than %d segments",
                     def->method, def->pattern, TN_HTTP_MAX_SEGS);
            return TN_ERR_INVALID;
        }
        seg_t *s = &r->segs[r->nsegs++];
        if (p[0] == '{') {
            if (p[len - 1] != '}' || !param_name_ok(p + 1, len - 2) ||
                ++nparams > TN_HTTP_MAX_PARAMS) {
                snprintf(errbuf, errlen,
                         "route %s %s: a parameter is `{name}` (letters, digits, _), "
                         "a whole segment, at most %d per route",
                         def->method, def->pattern, TN_HTTP_MAX_PARAMS);
                return TN_ERR_INVALID;
            }
            s->text = p + 1;
            s->len = len - 2;
            s->param = true;
        } else {
            if (memchr(p, '{', len) || memchr(p, '}', len)) {
                snprintf(errbuf, errlen, "route %s %s: braces only around a whole segment",
                         def->method, def->pattern);
                return TN_ERR_INVALID;
            }
            s->text = p;
            s->len = len;
        }
        p += len;
    }
    return TN_OK;
}

/* Does @p path match @p r? When @p req is given, also store the parameter values. */
static bool route_match(const route_t *r, const char *path, tn_http_req_t *req)
{
    const char *p = path;
    if (r->nsegs == 0)
        return strcmp(path, "/") == 0;
    for (size_t i = 0; i < r->nsegs; i++) {
        if (*p != '/')
            return false;
        p++;
        size_t len = strcspn(p, "/");
        const seg_t *s = &r->segs[i];
        if (s->param) {
            if (len == 0)
                return false;
            if (req) {
                param_t *pa = &req->params[req->nparams++];
                pa->name = s->text;
                pa->nlen = s->len;
                pa->value = tn_xstrndup(p, len);
            }
        } else if (len != s->len || memcmp(p, s->text, len) != 0) {
            return false;
        }
        p += len;
    }
    return *p == '\0';
}

static bool method_matches(const char *route_method, const char *method)
{
    return strcmp(route_method, method) == 0 ||
           (strcmp(method, "HEAD") == 0 && strcmp(route_method, "GET") == 0);
}

/* ============================================================================================ */
/* Request lifecycle (MHD callbacks)                                                            */

static tn_http_req_t *req_new(tn_http_server_t *srv, struct MHD_Connection *conn, const char *url,
                              const char *method)
{
    tn_http_req_t *req = tn_xcalloc(1, sizeof(*req));
    req->srv = srv;
    req->conn = conn;
    req->method = method;
    req->path = tn_xstrdup(url);
    req->start_s = tn_clock_mono_s();
    tn_buf_init(&req->body, srv->opts.max_body);
    const char *rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    if (rid && request_id_ok(rid))
        snprintf(req->id, sizeof(req->id), "%s", rid);
    else
        request_id_generate(req->id);
    return req;
}

static void req_free(tn_http_req_t *req)
{
    if (!req)
        return;
    tn_http_req_clear_response(req);
    for (size_t i = 0; i < req->nparams; i++)
        free(req->params[i].value);
    for (size_t i = 0; i < req->nheaders; i++) {
        free(req->headers[i].name);
        free(req->headers[i].value);
    }
    tn_buf_cleanup(&req->body);
    free(req->path);
    free(req);
}

/* Add @p m to the list of allowed methods unless it is there already. */
static void allow_add(const char **allow, size_t *n, const char *m)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp(allow[i], m) == 0)
            return;
    }
    if (*n < TN_HTTP_MAX_ALLOW)
        allow[(*n)++] = m;
}

/* Find the route; answer 404 or 405 when there is none. @returns false when answered. */
static bool req_route(tn_http_req_t *req)
{
    tn_http_server_t *srv = req->srv;
    const char *allow[TN_HTTP_MAX_ALLOW];
    size_t nallow = 0;

    for (size_t i = 0; i < srv->nroutes; i++) {
        const route_t *r = &srv->routes[i];
        if (!route_match(r, req->path, NULL))
            continue;
        if (method_matches(r->def.method, req->method)) {
            req->route = r;
            route_match(r, req->path, req);
            return true;
        }
        if (!req->route)
            req->route = r; /* the metrics label of a 405 is the path's pattern */
        allow_add(allow, &nallow, r->def.method);
        if (strcmp(r->def.method, "GET") == 0)
            allow_add(allow, &nallow, "HEAD"); /* answered by GET routes */
    }
    if (nallow == 0) {
        tn_http_req_respond_error(req, 404, "not_found", "no such resource");
        return false;
    }
    char list[TN_HTTP_ALLOW_MAX] = "";
    size_t len = 0;
    for (size_t i = 0; i < nallow && len < sizeof(list); i++)
        len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "", allow[i]);
    tn_http_req_respond_error(req, 405, "method_not_allowed",
                              "method %s is not allowed here; allowed: %s", req->method, list);
    tn_http_req_add_header(req, "Allow", list);
    return false;
}

/* Check the API key of a route that needs one. @returns false when answered (401). */
static bool req_auth(tn_http_req_t *req)
{
    tn_http_server_t *srv = req->srv;
    if (!srv->opts.auth) {
        req->tenant = TN_HTTP_TENANT_DISABLED;
        return true;
    }
    if (!(req->route->def.flags & TN_HTTP_ROUTE_AUTH))
        return true;

    const char *h = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Authorization");
    const char *key = NULL;
    size_t klen = 0;
    if (h && strncasecmp(h, "Bearer ", 7) == 0) {
        key = h + 7;
        while (*key == ' ')
            key++;
        klen = strlen(key);
        while (klen > 0 && (key[klen - 1] == ' ' || key[klen - 1] == '\t'))
            klen--;
    }
    if (!key || klen == 0) {
        tn_http_req_respond_error(req, 401, "unauthorized",
                                  "an API key is required (Authorization: Bearer KEY)");
        tn_http_req_add_header(req, "WWW-Authenticate", "Bearer realm=\"taina\"");
        return false;
    }
    size_t index;
    if (tn_auth_lookup_index(srv->opts.auth, key, klen, &req->tenant, &index) != TN_OK) {
        tn_http_req_respond_error(req, 401, "unauthorized", "unknown API key");
        tn_http_req_add_header(req, "WWW-Authenticate",
                               "Bearer realm=\"taina\", error=\"invalid_token\"");
        return false;
    }
    int64_t retry_ms;
    if (!tn_ratelimit_take(srv->limits, index, tn_clock_mono_ms(), &retry_ms)) {
        char secs[24];
        snprintf(secs, sizeof(secs), "%lld", (long long)((retry_ms + 999) / 1000));
        tn_http_req_respond_error(req, 429, "rate_limited",
                                  "too many requests for this API key; retry in %s s", secs);
        tn_http_req_add_header(req, "Retry-After", secs);
        return false;
    }
    return true;
}

/* Content type and declared length. @returns false when answered (415, 413, 400). */
static bool req_check_body(tn_http_req_t *req)
{
    const char *ctype =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    const char *clen =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    unsigned long long declared = 0;

    if (clen) {
        char *end = NULL;
        declared = strtoull(clen, &end, 10);
        if (end == clen || *end != '\0' || clen[0] == '-') {
            tn_http_req_respond_error(req, 400, "bad_request", "invalid Content-Length");
            return false;
        }
    }
    const char *const *types = req->route->def.content_types;
    if (types && (ctype || declared > 0 || te)) {
        bool ok = false;
        for (size_t i = 0; ctype && types[i] && !ok; i++)
            ok = media_type_is(ctype, types[i]);
        if (!ok) {
            tn_http_req_respond_error(req, 415, "unsupported_media_type",
                                      "Content-Type %s is not accepted here; send %s",
                                      ctype ? ctype : "(none)", types[0] ? types[0] : "nothing");
            return false;
        }
    }
    if (declared > req->srv->opts.max_body) {
        tn_http_req_respond_error(req, 413, "payload_too_large",
                                  "the body is larger than %zu bytes", req->srv->opts.max_body);
        return false;
    }
    return true;
}

static void run_handler(tn_http_req_t *req)
{
    const char *tp = tn_http_req_traceparent(req);
    tn_trace_continue(tp, tp ? strlen(tp) : 0, &req->trace);
    tn_log_ctx_set_request(req->id);
    tn_log_ctx_set_trace(req->trace.trace_id);
    req->route->def.handler(req, req->route->def.opaque);
    tn_log_ctx_set_request(NULL);
    tn_log_ctx_set_trace(NULL);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    tn_http_server_t *srv = cls;
    tn_http_req_t *req = *con_cls;
    TN_UNUSED(version);

    if (!req) {
        /* Headers are in: decide everything that does not need the body now, so that a
         * rejected request never has its body read. */
        req = req_new(srv, conn, url, method);
        *con_cls = req;
        atomic_fetch_add(&srv->inflight, 1);
        if (req_route(req) && req_auth(req) && req_check_body(req))
            return MHD_YES;
        return tn_http_req_queue(req) ? MHD_YES : MHD_NO;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        req->received += n;
        if (req->queued)
            return MHD_YES; /* answered already: discard */
        if (req->body_too_large || tn_buf_add(&req->body, upload_data, n) != TN_OK) {
            /* Over the cap (a chunked body: a declared length was checked up front). MHD
             * 0.9.75 takes no response in the middle of a body, so drop what arrives and
             * answer 413 after the last chunk; but receive at most twice max_body in all, then
             * close the connection, so an endless upload cannot keep a worker busy. */
            if (!req->body_too_large) {
                req->body_too_large = true;
                tn_buf_cleanup(&req->body);
                tn_buf_init(&req->body, 0);
            }
            if (req->received / 2 > srv->opts.max_body) {
                TN_LOG(TN_LOG_INFO, "closing connection: chunked body of %s %s exceeds %zu bytes",
                       req->method, req->path, srv->opts.max_body);
                req->final_status = 413;
                return MHD_NO;
            }
        }
        return MHD_YES;
    }
    if (req->queued)
        return MHD_YES;
    if (req->body_too_large)
        tn_http_req_respond_error(req, 413, "payload_too_large",
                                  "the body is larger than %zu bytes", srv->opts.max_body);
    else
        run_handler(req);
    return tn_http_req_queue(req) ? MHD_YES : MHD_NO;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    tn_http_server_t *srv = cls;
    tn_http_req_t *req = *con_cls;
    TN_UNUSED(conn);

    if (!req)
        return;
    *con_cls = NULL;
    if (req->final_status && srv->m_requests) {
        char status[8];
        snprintf(status, sizeof(status), "%d", req->final_status);
        const char *route = req->route ? req->route->def.pattern : "unmatched";
        const char *const labels[] = {route, method_label(req->method), status, NULL};
        tn_metric_add(srv->m_requests, labels, 1);
        tn_metric_observe(srv->m_duration, labels, tn_clock_mono_s() - req->start_s);
    }
    TN_DBG(TN_DBG_HTTP, "%s %s -> %d (%s, request %s)", req->method, req->path, req->final_status,
           toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "completed" : "aborted", req->id);
    req_free(req);
    atomic_fetch_sub(&srv->inflight, 1);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    tn_http_server_t *srv = cls;
    TN_UNUSED(conn);
    TN_UNUSED(socket_context);
    pthread_mutex_lock(&srv->conns_lock);
    srv->conns += toe == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1;
    if (srv->m_conns)
        tn_metric_set(srv->m_conns, TN_NOLABELS, (double)srv->conns);
    pthread_mutex_unlock(&srv->conns_lock);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    TN_UNUSED(cls);
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    /* Clients that hang up or time out are routine on a public port: debug, not warnings. */
    if (strstr(line, "remote side") || strstr(line, "timed out") ||
        strstr(line, "Application reported internal error")) {
        TN_DBG(TN_DBG_HTTP, "libmicrohttpd: %s", line);
        return;
    }
    TN_LOGF(TN_LOG_WARN, TN_F({"lib", "libmicrohttpd"}), "%s", line);
}

/* ============================================================================================ */
/* Server lifecycle                                                                             */

void tn_http_server_opts_init(tn_http_server_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->bind_addr = TN_HTTP_DEF_BIND;
    o->service = "taina";
    o->max_body = TN_HTTP_DEF_MAX_BODY;
    o->max_connections = TN_HTTP_DEF_MAX_CONNS;
    o->conn_timeout_s = TN_HTTP_DEF_TIMEOUT_S;
    o->threads = 0; /* a thread for each connection */
    o->stop_grace_ms = TN_HTTP_DEF_GRACE_MS;
}

static bool parse_addr(const char *s, int port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, s, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        return true;
    }
    if (inet_pton(AF_INET6, s, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        return true;
    }
    return false;
}

static void add_builtin(tn_http_server_t *srv, const char *pattern, tn_http_handler_fn *fn)
{
    const tn_http_route_t def = {"GET", pattern, fn, 0, NULL, srv};
    char err[16];
    tn_err_t rc = route_compile(&def, &srv->routes[srv->nroutes++], err, sizeof(err));
    TN_ASSERT(rc == TN_OK);
}

tn_err_t tn_http_server_new(const tn_http_server_opts_t *opts, const tn_http_route_t *routes,
                            size_t nroutes, tn_http_server_t **out, char *errbuf, size_t errlen)
{
    tn_err_t rc = TN_ERR_INVALID;
    tn_http_server_t *srv = tn_xcalloc(1, sizeof(*srv));

    *out = NULL;
    pthread_mutex_init(&srv->conns_lock, NULL);
    srv->opts = *opts;
    srv->bind_addr = tn_xstrdup(opts->bind_addr ? opts->bind_addr : TN_HTTP_DEF_BIND);
    srv->service = tn_xstrdup(opts->service ? opts->service : "taina");
    srv->opts.bind_addr = srv->bind_addr;
    srv->opts.service = srv->service;
    if (!srv->opts.max_body)
        srv->opts.max_body = TN_HTTP_DEF_MAX_BODY;
    if (!srv->opts.max_connections)
        srv->opts.max_connections = TN_HTTP_DEF_MAX_CONNS;
    if (!srv->opts.conn_timeout_s)
        srv->opts.conn_timeout_s = TN_HTTP_DEF_TIMEOUT_S;
    if (srv->opts.stop_grace_ms <= 0)
        srv->opts.stop_grace_ms = TN_HTTP_DEF_GRACE_MS;
    /* MHD splits the connection limit between its worker threads. */
    srv->opts.threads = TN_MIN(srv->opts.threads, srv->opts.max_connections);
    if (opts->port < 0 || opts->port > 65535 ||
        !parse_addr(srv->bind_addr, opts->port, &srv->addr)) {
        snprintf(errbuf, errlen, "HTTP listen address %s port %d is not a numeric IP and port",
                 srv->bind_addr, opts->port);
        goto out;
    }

    srv->routes = tn_xcalloc(nroutes + 3, sizeof(*srv->routes));
    /* Built-ins first: they answer the same in every service and never need a key. */
    add_builtin(srv, "/health", tn_http_builtin_health);
    add_builtin(srv, "/ready", tn_http_builtin_ready);
    if (opts->metrics)
        add_builtin(srv, "/metrics", tn_http_builtin_metrics);
    for (size_t i = 0; i < nroutes; i++) {
        rc = route_compile(&routes[i], &srv->routes[srv->nroutes], errbuf, errlen);
        if (rc != TN_OK)
            goto out;
        srv->nroutes++;
    }

    if (opts->metrics) {
        srv->m_requests = tn_metrics_counter(opts->metrics, "taina_http_requests_total",
                                             "HTTP requests answered, by route, method and status.",
                                             TN_LABELS("route", "method", "status"));
        srv->m_duration = tn_metrics_histogram(
            opts->metrics, "taina_http_request_duration_seconds",
            "Time from request headers to the end of the response, by route, method and status.",
            TN_LABELS("route", "method", "status"), tn_metrics_duration_buckets,
            tn_metrics_duration_nbuckets);
        srv->m_conns = tn_metrics_gauge(opts->metrics, "taina_http_connections",
                                        "Open HTTP connections.", TN_NOLABELS);
        tn_metric_set(srv->m_conns, TN_NOLABELS, 0);
    }
    if (opts->auth && opts->rate_limit > 0)
        srv->limits = tn_ratelimit_new(tn_auth_count(opts->auth), opts->rate_limit,
                                       opts->rate_burst > 0 ? opts->rate_burst : opts->rate_limit);
    *out = srv;
    srv = NULL; /* handed to the caller */
    rc = TN_OK;
out:
    tn_http_server_destroy(srv);
    return rc;
}

tn_err_t tn_http_server_start(tn_http_server_t *srv, char *errbuf, size_t errlen)
{
    TN_ASSERT(!srv->daemon);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG; /* ITC: needed by MHD_quiesce_daemon in stop */
    /* A pool thread keeps the connections it accepted and serves them one request at a time,
     * so a handler that waits (for a broker, a scan, an upstream) holds up every connection of
     * its thread; which thread accepts is chance (16 connections can land on 3 of 64 threads).
     * A thread for each connection: a waiting handler delays only its own client. */
    if (!srv->opts.threads)
        flags |= MHD_USE_THREAD_PER_CONNECTION;
    if (srv->addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    atomic_store(&srv->stopping, false);
    /* The logger goes first so that MHD's complaints about later options reach our log. A
     * pool of one is no pool (MHD serves from its single internal thread), and MHD warns
     * when told so; hence the array, which can leave the option out. */
    struct MHD_OptionItem mopts[] = {
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, srv},
        {MHD_OPTION_SOCK_ADDR, 0, &srv->addr},
        {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)srv->opts.max_connections, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)srv->opts.conn_timeout_s, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, srv},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, srv},
        {MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)srv->opts.threads, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    if (srv->opts.threads < 2)
        mopts[TN_ARRAY_LEN(mopts) - 2].option = MHD_OPTION_END;
    srv->daemon = MHD_start_daemon(flags, (uint16_t)srv->opts.port, NULL, NULL, on_access, srv,
                                   MHD_OPTION_ARRAY, mopts, MHD_OPTION_END);
    if (!srv->daemon) {
        snprintf(errbuf, errlen,
                 "cannot serve HTTP on %s port %d (address in use or not local? "
                 "see the libmicrohttpd log line)",
                 srv->bind_addr, srv->opts.port);
        return TN_ERR_IO;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : srv->opts.port;
    char threads[48];
    if (srv->opts.threads)
        snprintf(threads, sizeof(threads), "%u threads", srv->opts.threads);
    else
        snprintf(threads, sizeof(threads), "a thread for each connection");
    TN_LOG(TN_LOG_INFO, "HTTP server %s listening on %s port %d (%s, %u connections max)",
           srv->service, srv->bind_addr, srv->port, threads, srv->opts.max_connections);
    return TN_OK;
}

int tn_http_server_port(const tn_http_server_t *srv)
{
    return srv->port;
}

unsigned tn_http_server_inflight(const tn_http_server_t *srv)
{
    return atomic_load(&((tn_http_server_t *)srv)->inflight);
}

void tn_http_server_stop(tn_http_server_t *srv)
{
    if (!srv || !srv->daemon)
        return;
    atomic_store(&srv->stopping, true);
    /* Stop accepting; the listening socket stays open (MHD's threads may still look at it)
     * until the daemon is stopped, so late connections wait in the backlog and are reset. */
    MHD_socket lsock = MHD_quiesce_daemon(srv->daemon);
    int64_t deadline = tn_clock_mono_ms() + srv->opts.stop_grace_ms;
    while (atomic_load(&srv->inflight) > 0 && tn_clock_mono_ms() < deadline)
        tn_clock_sleep_ms(10);
    unsigned left = atomic_load(&srv->inflight);
    if (left > 0)
        TN_LOG(TN_LOG_WARN, "HTTP server stopping with %u requests still in flight after %lld ms",
               left, (long long)srv->opts.stop_grace_ms);
    MHD_stop_daemon(srv->daemon);
    srv->daemon = NULL;
    if (lsock != MHD_INVALID_SOCKET)
        close(lsock);
    TN_LOG(TN_LOG_INFO, "HTTP server %s stopped", srv->service);
}

void tn_http_server_destroy(tn_http_server_t *srv)
{
    if (!srv)
        return;
    tn_http_server_stop(srv);
    tn_ratelimit_destroy(srv->limits);
    pthread_mutex_destroy(&srv->conns_lock);
    free(srv->routes);
    free(srv->bind_addr);
    free(srv->service);
    free(srv);
}
