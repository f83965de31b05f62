/* Unit tests for common/src/http_server.c: a real server on a loopback port, raw-socket client. */
#include "tn_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>

#include "taina/auth.h"
#include "taina/clock.h"
#include "taina/http_server.h"
#include "taina/mem.h"
#include "taina/metrics.h"

#define GOOD_KEY "good-key-0123456789"
#define MAX_BODY 1024

/* ============================================================================================ */
/* A tiny HTTP/1.1 client: write the request bytes, read until the server closes.               */

typedef struct resp {
    int status;
    char *head; /* status line and headers, NUL-terminated */
    char *body; /* de-chunked when the response was chunked */
    size_t body_len;
} resp_t;

static void resp_free(resp_t *r)
{
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

static int connect_to(int port, int64_t timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Send everything; a server that answered early may close on us, which is fine. */
static void send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        c += w;
        n -= (size_t)w;
    }
}

/* Read until EOF, error or timeout. @returns bytes read (NUL-terminated buffer in *out). */
static size_t recv_all(int fd, char **out)
{
    size_t cap = 4096, n = 0;
    char *buf = tn_xmalloc(cap);
    for (;;) {
        if (cap - n < 2048) {
            cap *= 2;
            buf = tn_xrealloc(buf, cap);
        }
        ssize_t r = recv(fd, buf + n, cap - n - 1, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *out = buf;
    return n;
}

static const char *find_header(const char *head, const char *name, size_t *vlen)
{
    size_t nlen = strlen(name);
    for (const char *l = strstr(head, "\r\n"); l && l[2]; l = strstr(l + 2, "\r\n")) {
        const char *line = l + 2;
        if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1;
            while (*v == ' ')
                v++;
            *vlen = strcspn(v, "\r");
            return v;
        }
    }
    return NULL;
}

/* The value of header @p name in @p r, or NULL. Caller frees. */
static char *resp_header(const resp_t *r, const char *name)
{
    size_t n;
    const char *v = r->head ? find_header(r->head, name, &n) : NULL;
    return v ? tn_xstrndup(v, n) : NULL;
}

static void dechunk(const char *p, const char *end, resp_t *r)
{
    size_t cap = (size_t)(end - p) + 1, n = 0;
    char *out = tn_xmalloc(cap);
    while (p < end) {
        char *e;
        unsigned long len = strtoul(p, &e, 16);
        const char *data = strstr(e, "\r\n");
        if (!data || len == 0 || data + 2 + len > end)
            break;
        memcpy(out + n, data + 2, len);
        n += len;
        p = data + 2 + len + 2;
    }
    out[n] = '\0';
    r->body = out;
    r->body_len = n;
}

static resp_t parse_resp(char *raw, size_t n)
{
    resp_t r = {0};
    char *sep = strstr(raw, "\r\n\r\n");
    if (strncmp(raw, "HTTP/1.", 7) != 0 || !sep) {
        free(raw);
        return r;
    }
    r.status = (int)strtol(raw + 9, NULL, 10);
    r.head = tn_xstrndup(raw, (size_t)(sep - raw) + 2);
    char *te = resp_header(&r, "Transfer-Encoding");
    if (te && strcasecmp(te, "chunked") == 0) {
        dechunk(sep + 4, raw + n, &r);
    } else {
        r.body_len = n - (size_t)(sep + 4 - raw);
        r.body = tn_xstrndup(sep + 4, r.body_len);
    }
    free(te);
    free(raw);
    return r;
}

/* Send raw request bytes on a new connection and read the whole response. */
static resp_t http_raw(int port, const char *req, size_t len)
{
    char *raw;
    int fd = connect_to(port, tn_test_timeout_ms(5000));
    assert_true(fd >= 0);
    send_all(fd, req, len);
    size_t n = recv_all(fd, &raw);
    close(fd);
    return parse_resp(raw, n);
}

/* A request with "Connection: close", @p headers ("Name: v\r\n" lines) and an optional body. */
static resp_t http_do(int port, const char *method, const char *target, const char *headers,
                      const char *body)
{
    char *req;
    if (body)
        req = tn_xasprintf("%s %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n%s"
                           "Content-Length: %zu\r\n\r\n%s",
                           method, target, headers ? headers : "", strlen(body), body);
    else
        req = tn_xasprintf("%s %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n%s\r\n", method,
                           target, headers ? headers : "");
    resp_t r = http_raw(port, req, strlen(req));
    free(req);
    return r;
}

static json_t *resp_json(const resp_t *r)
{
    json_error_t jerr;
    json_t *j = json_loadb(r->body, r->body_len, 0, &jerr);
    if (!j)
        fail_msg("response body is not JSON (%s): %s", jerr.text, r->body);
    return j;
}

static const char *jstr(json_t *j, const char *key)
{
    return json_string_value(json_object_get(j, key));
}

/* Check the shape {"error":{"code":CODE,"message":"..."}} and the JSON content type. */
static void assert_error(const resp_t *r, int status, const char *code)
{
    if (r->status != status)
        fail_msg("expected status %d, got %d: %s", status, r->status, r->body ? r->body : "");
    char *ct = resp_header(r, "Content-Type");
    assert_non_null(ct);
    assert_string_equal(ct, "application/json");
    free(ct);
    json_t *j = resp_json(r);
    json_t *e = json_object_get(j, "error");
    assert_true(json_is_object(e));
    assert_int_equal(json_object_size(j), 1);
    assert_int_equal(json_object_size(e), 2);
    assert_string_equal(jstr(e, "code"), code);
    assert_true(json_is_string(json_object_get(e, "message")));
    assert_true(strlen(jstr(e, "message")) > 0);
    json_decref(j);
}

/* ============================================================================================ */
/* The server under test                                                                        */

typedef struct fixture {
    tn_http_server_t *srv;
    tn_metrics_t *metrics;
    tn_auth_t *auth;
    int port;
    atomic_bool ready;
    atomic_int slow_entered;
    atomic_bool slow_release;
    atomic_int stream_freed;
} fixture_t;

static void on_appointment(tn_http_req_t *req, void *opaque)
{
    TN_UNUSED(opaque);
    const char *flag = tn_http_req_query(req, "flag");
    const char *trace = tn_http_req_traceparent(req);
    json_t *j = json_pack("{s:s,s:s?,s:s,s:s,s:s,s:s?,s:s?,s:b}", "id",
                          tn_http_req_param(req, "request_id"), "q", tn_http_req_query(req, "q"),
                          "route", tn_http_req_route(req), "path", tn_http_req_path(req), "rid",
                          tn_http_req_id(req), "tenant", tn_http_req_tenant(req), "trace", trace,
                          "flag", flag != NULL && *flag == '\0');
    /* Handlers run on server threads, where cmocka's asserts cannot be used. */
    TN_ASSERT(j);
    TN_ASSERT(!tn_http_req_param(req, "nope"));
    TN_ASSERT(!tn_http_req_query(req, "absent"));
    json_object_set_new(j, "q1", json_string(tn_http_req_query_nth(req, "q", 1)));
    TN_ASSERT(!tn_http_req_query_nth(req, "q", 2));
    tn_http_req_respond_json(req, 200, j);
}

static void on_note_delete(tn_http_req_t *req, void *opaque)
{
    TN_UNUSED(opaque);
    char *msg = tn_xasprintf("%s/%s %s", tn_http_req_param(req, "ticket_id"),
                             tn_http_req_param(req, "note"), tn_http_req_method(req));
    tn_http_req_respond(req, 200, "text/plain", msg, strlen(msg));
    free(msg);
}

static void on_ticket(tn_http_req_t *req, void *opaque)
{
    size_t len;
    const char *body = tn_http_req_body(req, &len);
    TN_UNUSED(opaque);
    json_t *j =
        json_pack("{s:s?,s:I,s:s%,s:s?}", "tenant", tn_http_req_tenant(req), "len", (json_int_t)len,
                  "body", body, len, "ctype", tn_http_req_content_type(req));
    TN_ASSERT(j);
    tn_http_req_respond_json(req, 202, j);
}

static void on_headers(tn_http_req_t *req, void *opaque)
{
    TN_UNUSED(opaque);
    TN_ASSERT(tn_http_req_add_header(req, "X-Bad", "a\r\nInjected: 1") == TN_ERR_INVALID);
    TN_ASSERT(tn_http_req_add_header(req, "Bad Name", "v") == TN_ERR_INVALID);
    TN_ASSERT(tn_http_req_add_header(req, "", "v") == TN_ERR_INVALID);
    /* A later respond replaces an earlier one; headers stay. */
    tn_http_req_respond_error(req, 500, "ignored", "replaced");
    TN_ASSERT(tn_http_req_add_header(req, "X-Custom", "yes") == TN_OK);
    const char *ua = tn_http_req_header(req, "user-AGENT");
    tn_http_req_respond(req, 200, "text/plain", ua ? ua : "none", ua ? strlen(ua) : 4);
}

static void on_silent(tn_http_req_t *req, void *opaque)
{
    TN_UNUSED(req);
    TN_UNUSED(opaque);
}

static void on_slow(tn_http_req_t *req, void *opaque)
{
    fixture_t *f = opaque;
    atomic_fetch_add(&f->slow_entered, 1);
    int64_t deadline = tn_clock_mono_ms() + tn_test_timeout_ms(10000);
    while (!atomic_load(&f->slow_release) && tn_clock_mono_ms() < deadline)
        tn_clock_sleep_ms(5);
    tn_http_req_respond(req, 200, "text/plain", "finished", 8);
}

typedef struct stream_state {
    fixture_t *f;
    int n;
} stream_state_t;

static ssize_t stream_cb(void *opaque, char *buf, size_t max)
{
    stream_state_t *st = opaque;
    if (st->n == 5)
        return 0;
    int w = snprintf(buf, max, "data: %d\n\n", st->n++);
    return w;
}

static void stream_free_cb(void *opaque)
{
    stream_state_t *st = opaque;
    atomic_fetch_add(&st->f->stream_freed, 1);
    free(st);
}

static void on_stream(tn_http_req_t *req, void *opaque)
{
    stream_state_t *st = tn_xcalloc(1, sizeof(*st));
    st->f = opaque;
    /* A replaced stream is freed too. */
    stream_state_t *dropped = tn_xcalloc(1, sizeof(*dropped));
    dropped->f = opaque;
    tn_http_req_respond_stream(req, 200, "text/event-stream", stream_cb, stream_free_cb, dropped);
    tn_http_req_respond_stream(req, 200, "text/event-stream", stream_cb, stream_free_cb, st);
}

static bool ready_cb(void *opaque, char *reason, size_t len)
{
    fixture_t *f = opaque;
    if (atomic_load(&f->ready))
        return true;
    snprintf(reason, len, "kafka consumer not assigned");
    return false;
}

static const char *const json_types[] = {"application/json", "application/x-ndjson", NULL};

static void make_routes(fixture_t *f, tn_http_route_t *r, size_t *n)
{
    const tn_http_route_t routes[] = {
        {"GET", "/v1/appointments/{request_id}", on_appointment, 0, NULL, NULL},
        {"DELETE", "/v1/tickets/{ticket_id}/notes/{note}", on_note_delete, TN_HTTP_ROUTE_AUTH, NULL,
         NULL},
        {"POST", "/v1/tickets", on_ticket, TN_HTTP_ROUTE_AUTH, json_types, NULL},
        {"PUT", "/v1/tickets", on_ticket, TN_HTTP_ROUTE_AUTH, json_types, NULL},
        {"GET", "/v1/headers", on_headers, 0, NULL, NULL},
        {"GET", "/v1/silent", on_silent, 0, NULL, NULL},
        {"GET", "/v1/slow", on_slow, 0, NULL, f},
        {"GET", "/v1/stream", on_stream, 0, NULL, f},
        {"GET", "/", on_note_delete, 0, NULL, NULL},
    };
    memcpy(r, routes, sizeof(routes));
    *n = TN_ARRAY_LEN(routes);
}

static void start_server(fixture_t *f, tn_http_server_opts_t *o)
{
    char err[256] = "";
    tn_http_route_t routes[16];
    size_t nroutes;
    make_routes(f, routes, &nroutes);
    o->bind_addr = "127.0.0.1";
    o->port = 0;
    o->ready = ready_cb;
    o->ready_opaque = f;
    assert_int_equal(tn_http_server_new(o, routes, nroutes, &f->srv, err, sizeof(err)), TN_OK);
    if (tn_http_server_start(f->srv, err, sizeof(err)) != TN_OK)
        fail_msg("start: %s", err);
    f->port = tn_http_server_port(f->srv);
    assert_true(f->port > 0);
}

static int setup(void **state)
{
    char err[256], hex[TN_AUTH_HEX_LEN + 1];
    fixture_t *f = tn_xcalloc(1, sizeof(*f));
    tn_auth_hash_hex(GOOD_KEY, strlen(GOOD_KEY), hex);
    char *keys = tn_xasprintf("acme %s\n", hex);
    if (tn_auth_parse(keys, strlen(keys), "keys", &f->auth, err, sizeof(err)) != TN_OK)
        fail_msg("%s", err);
    free(keys);
    f->metrics = tn_metrics_new();
    atomic_store(&f->ready, true);

    tn_http_server_opts_t o;
    tn_http_server_opts_init(&o);
    o.max_body = MAX_BODY;
    o.metrics = f->metrics;
    o.auth = f->auth; /* threads 0: a thread for each connection, the default */
    start_server(f, &o);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    tn_http_server_destroy(f->srv);
    tn_metrics_destroy(f->metrics);
    tn_auth_destroy(f->auth);
    free(f);
    return 0;
}

/* ============================================================================================ */
/* Tests                                                                                        */

static void test_routing_params_query(void **state)
{
    fixture_t *f = *state;
    resp_t r =
        http_do(f->port, "GET", "/v1/appointments/req-42?q=hello%20w%C3%B6rld&flag&q=second",
                "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n", NULL);
    assert_int_equal(r.status, 200);
    char *ct = resp_header(&r, "Content-Type");
    assert_string_equal(ct, "application/json");
    free(ct);
    json_t *j = resp_json(&r);
    assert_string_equal(jstr(j, "id"), "req-42");
    assert_string_equal(jstr(j, "q"), "hello w\xc3\xb6rld");
    assert_true(json_is_true(json_object_get(j, "flag")));
    assert_string_equal(jstr(j, "q1"), "second"); /* the second of a repeated parameter */
    assert_string_equal(jstr(j, "route"), "/v1/appointments/{request_id}");
    assert_string_equal(jstr(j, "path"), "/v1/appointments/req-42");
    assert_string_equal(jstr(j, "trace"),
                        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    /* An open route on a server with auth has no tenant. */
    assert_true(json_is_null(json_object_get(j, "tenant")));
    json_decref(j);
    resp_free(&r);

    /* Two parameters, and an auth route. */
    r = http_do(f->port, "DELETE", "/v1/tickets/T-1/notes/n%202",
                "Authorization: Bearer " GOOD_KEY "\r\n", NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "T-1/n 2 DELETE");
    resp_free(&r);

    /* The root route. */
    r = http_do(f->port, "GET", "/", NULL, NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
}

static void test_not_found(void **state)
{
    fixture_t *f = *state;
    static const char *const paths[] = {"/nope",
                                        "/v1/appointments",
                                        "/v1/appointments/",
                                        "/v1/appointments/a/b",
                                        "/v1/tickets/T-1/notes",
                                        "/healthz",
                                        "//health"};
    for (size_t i = 0; i < TN_ARRAY_LEN(paths); i++) {
        resp_t r = http_do(f->port, "GET", paths[i], NULL, NULL);
        assert_error(&r, 404, "not_found");
        resp_free(&r);
    }
}

static void test_method_not_allowed(void **state)
{
    fixture_t *f = *state;
    resp_t r = http_do(f->port, "PUT", "/v1/appointments/x", NULL, "{}");
    assert_error(&r, 405, "method_not_allowed");
    char *allow = resp_header(&r, "Allow");
    assert_non_null(allow);
    assert_string_equal(allow, "GET, HEAD");
    free(allow);
    resp_free(&r);

    r = http_do(f->port, "GET", "/v1/tickets", NULL, NULL);
    assert_error(&r, 405, "method_not_allowed");
    allow = resp_header(&r, "Allow");
    assert_string_equal(allow, "POST, PUT");
    free(allow);
    resp_free(&r);

    r = http_do(f->port, "POST", "/health", NULL, "x");
    assert_error(&r, 405, "method_not_allowed");
    resp_free(&r);
}

static void test_too_large_content_length(void **state)
{
    fixture_t *f = *state;
    /* Only the headers are sent: the answer must come without waiting for the body. */
    const char *req = "POST /v1/tickets HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                      "Authorization: Bearer " GOOD_KEY "\r\nContent-Type: application/json\r\n"
                      "Content-Length: 1025\r\n\r\n";
    resp_t r = http_raw(f->port, req, strlen(req));
    assert_error(&r, 413, "payload_too_large");
    resp_free(&r);

    /* Exactly the limit is fine. */
    char *body = tn_xmalloc(MAX_BODY + 1);
    memset(body, 'a', MAX_BODY);
    body[0] = '"';
    body[MAX_BODY - 1] = '"';
    body[MAX_BODY] = '\0';
    r = http_do(f->port, "POST", "/v1/tickets",
                "Authorization: Bearer " GOOD_KEY "\r\nContent-Type: application/json\r\n", body);
    assert_int_equal(r.status, 202);
    json_t *j = resp_json(&r);
    assert_int_equal(json_integer_value(json_object_get(j, "len")), MAX_BODY);
    assert_string_equal(jstr(j, "body"), body);
    json_decref(j);
    resp_free(&r);
    free(body);
}

static char *chunked_request(size_t nchunks, size_t chunk)
{
    tn_buf_t b;
    tn_buf_init(&b, 1 << 20);
    tn_buf_adds(&b, "POST /v1/tickets HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                    "Authorization: Bearer " GOOD_KEY "\r\nContent-Type: application/x-ndjson\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n");
    for (size_t i = 0; i < nchunks; i++) {
        tn_buf_addf(&b, "%zx\r\n", chunk);
        for (size_t k = 0; k < chunk; k++)
            tn_buf_add(&b, "x", 1);
        tn_buf_adds(&b, "\r\n");
    }
    tn_buf_adds(&b, "0\r\n\r\n");
    return tn_buf_detach(&b, NULL);
}

static void test_too_large_chunked(void **state)
{
    fixture_t *f = *state;
    char *req = chunked_request(3, 600);
    resp_t r = http_raw(f->port, req, strlen(req));
    assert_error(&r, 413, "payload_too_large");
    resp_free(&r);
    free(req);

    /* An endless body: the server drops at most another MAX_BODY bytes, then hangs up
     * instead of reading for ever (here the body never ends, so only that can answer). */
    req = chunked_request(6, 512);
    char *end = strstr(req, "0\r\n\r\n");
    *end = '\0';
    int fd = connect_to(f->port, tn_test_timeout_ms(5000));
    send_all(fd, req, strlen(req));
    char buf[256];
    errno = 0;
    ssize_t got = recv(fd, buf, sizeof(buf), 0);
    if (got > 0 || errno == EAGAIN || errno == EWOULDBLOCK)
        fail_msg("expected the connection to be closed, got %zd bytes, errno %d", got, errno);
    close(fd);
    free(req);

    req = chunked_request(4, 256); /* exactly MAX_BODY */
    r = http_raw(f->port, req, strlen(req));
    assert_int_equal(r.status, 202);
    json_t *j = resp_json(&r);
    assert_int_equal(json_integer_value(json_object_get(j, "len")), MAX_BODY);
    assert_string_equal(jstr(j, "tenant"), "acme");
    json_decref(j);
    resp_free(&r);
    free(req);
}

static void test_unsupported_media_type(void **state)
{
    fixture_t *f = *state;
    const char *auth = "Authorization: Bearer " GOOD_KEY "\r\n";
    char *h = tn_xasprintf("%sContent-Type: text/plain\r\n", auth);
    resp_t r = http_do(f->port, "POST", "/v1/tickets", h, "{}");
    assert_error(&r, 415, "unsupported_media_type");
    resp_free(&r);
    free(h);

    /* A body without a Content-Type. */
    r = http_do(f->port, "POST", "/v1/tickets", auth, "{}");
    assert_error(&r, 415, "unsupported_media_type");
    resp_free(&r);

    /* Parameters and case do not matter. */
    h = tn_xasprintf("%sContent-Type: application/json; charset=utf-8\r\n", auth);
    r = http_do(f->port, "POST", "/v1/tickets", h, "{}");
    assert_int_equal(r.status, 202);
    json_t *j = resp_json(&r);
    assert_string_equal(jstr(j, "ctype"), "application/json; charset=utf-8");
    json_decref(j);
    resp_free(&r);
    free(h);

    h = tn_xasprintf("%sContent-Type: Application/X-NDJSON\r\n", auth);
    r = http_do(f->port, "PUT", "/v1/tickets", h, "{}\n{}\n");
    assert_int_equal(r.status, 202);
    resp_free(&r);
    free(h);

    /* "application/jsonx" is not "application/json". */
    h = tn_xasprintf("%sContent-Type: application/jsonx\r\n", auth);
    r = http_do(f->port, "POST", "/v1/tickets", h, "{}");
    assert_error(&r, 415, "unsupported_media_type");
    resp_free(&r);
    free(h);
}

static void test_auth(void **state)
{
    fixture_t *f = *state;
    const char *ct = "Content-Type: application/json\r\n";
    resp_t r = http_do(f->port, "POST", "/v1/tickets", ct, "{}");
    assert_error(&r, 401, "unauthorized");
    char *www = resp_header(&r, "WWW-Authenticate");
    assert_non_null(www);
    assert_int_equal(strncmp(www, "Bearer", 6), 0);
    free(www);
    resp_free(&r);

    static const char *const bad[] = {
        "Authorization: Bearer wrong-key\r\n", "Authorization: Bearer \r\n",
        "Authorization: Basic Z29vZC1rZXk=\r\n", "Authorization: " GOOD_KEY "\r\n",
        "Authorization: Bearer " GOOD_KEY "x\r\n"};
    for (size_t i = 0; i < TN_ARRAY_LEN(bad); i++) {
        char *h = tn_xasprintf("%s%s", ct, bad[i]);
        r = http_do(f->port, "POST", "/v1/tickets", h, "{}");
        assert_error(&r, 401, "unauthorized");
        www = resp_header(&r, "WWW-Authenticate");
        assert_non_null(www);
        free(www);
        resp_free(&r);
        free(h);
    }

    /* 401 comes before 415 and 413: nothing about the body is revealed to strangers. */
    r = http_do(f->port, "POST", "/v1/tickets", "Content-Type: text/plain\r\n", "x");
    assert_error(&r, 401, "unauthorized");
    resp_free(&r);

    char *h = tn_xasprintf("%sauthorization: bearer   %s  \r\n", ct, GOOD_KEY);
    r = http_do(f->port, "POST", "/v1/tickets", h, "{\"a\":1}");
    assert_int_equal(r.status, 202);
    json_t *j = resp_json(&r);
    assert_string_equal(jstr(j, "tenant"), "acme");
    assert_string_equal(jstr(j, "body"), "{\"a\":1}");
    json_decref(j);
    resp_free(&r);
    free(h);

    /* Built-ins never need a key. */
    r = http_do(f->port, "GET", "/metrics", NULL, NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);
}

static void test_auth_disabled(void **state)
{
    fixture_t *f = *state;
    fixture_t g = {0};
    tn_http_server_opts_t o;
    TN_UNUSED(f);
    tn_http_server_opts_init(&o);
    atomic_store(&g.ready, true);
    start_server(&g, &o);
    resp_t r = http_do(g.port, "POST", "/v1/tickets", "Content-Type: application/json\r\n", "{}");
    assert_int_equal(r.status, 202);
    json_t *j = resp_json(&r);
    assert_string_equal(jstr(j, "tenant"), "default");
    json_decref(j);
    resp_free(&r);
    /* Without a registry there is no /metrics. */
    r = http_do(g.port, "GET", "/metrics", NULL, NULL);
    assert_error(&r, 404, "not_found");
    resp_free(&r);
    tn_http_server_destroy(g.srv);
}

/* Each API key has its own token bucket: over it, 429 with Retry-After; other keys go on. */
static void test_rate_limit(void **state)
{
    TN_UNUSED(state);
    char err[256], h1[TN_AUTH_HEX_LEN + 1], h2[TN_AUTH_HEX_LEN + 1];
    tn_auth_hash_hex("key-one", 7, h1);
    tn_auth_hash_hex("key-two", 7, h2);
    char *keys = tn_xasprintf("acme %s\nglobex %s\n", h1, h2);
    fixture_t g = {0};
    if (tn_auth_parse(keys, strlen(keys), "keys", &g.auth, err, sizeof(err)) != TN_OK)
        fail_msg("%s", err);
    free(keys);
    atomic_store(&g.ready, true);
    tn_http_server_opts_t o;
    tn_http_server_opts_init(&o);
    o.auth = g.auth;
    o.rate_limit = 0.5; /* one token per 2 s: the test cannot outrun it by accident */
    o.rate_burst = 3;
    start_server(&g, &o);
    const char *one = "Content-Type: application/json\r\nAuthorization: Bearer key-one\r\n";
    const char *two = "Content-Type: application/json\r\nAuthorization: Bearer key-two\r\n";
    for (int i = 0; i < 3; i++) {
        resp_t r = http_do(g.port, "POST", "/v1/tickets", one, "{}");
        assert_int_equal(r.status, 202);
        resp_free(&r);
    }
    resp_t r = http_do(g.port, "POST", "/v1/tickets", one, "{}");
    assert_error(&r, 429, "rate_limited");
    char *ra = resp_header(&r, "Retry-After");
    assert_non_null(ra);
    assert_in_range(strtol(ra, NULL, 10), 1, 2);
    free(ra);
    resp_free(&r);
    r = http_do(g.port, "POST", "/v1/tickets", two, "{}"); /* another key is not affected */
    assert_int_equal(r.status, 202);
    resp_free(&r);
    r = http_do(g.port, "POST", "/v1/tickets", "Content-Type: application/json\r\n", "{}");
    assert_error(&r, 401, "unauthorized"); /* no key: 401 first, never a bucket */
    resp_free(&r);
    r = http_do(g.port, "GET", "/health", NULL, NULL); /* built-ins are never limited */
    assert_int_equal(r.status, 200);
    resp_free(&r);
    tn_http_server_destroy(g.srv);
    tn_auth_destroy(g.auth);
}

static bool is_hex32(const char *s)
{
    if (strlen(s) != 32)
        return false;
    for (; *s; s++) {
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    }
    return true;
}

static void test_request_id(void **state)
{
    fixture_t *f = *state;
    resp_t r =
        http_do(f->port, "GET", "/v1/appointments/x", "X-Request-Id: abc-123.X:y_z\r\n", NULL);
    assert_int_equal(r.status, 200);
    char *rid = resp_header(&r, "X-Request-Id");
    assert_string_equal(rid, "abc-123.X:y_z");
    json_t *j = resp_json(&r);
    assert_string_equal(jstr(j, "rid"), "abc-123.X:y_z");
    json_decref(j);
    free(rid);
    resp_free(&r);

    /* Insane ids are replaced by generated ones, also on errors. */
    char long_id[80];
    memset(long_id, 'a', 65);
    long_id[65] = '\0';
    char *too_long = tn_xasprintf("X-Request-Id: %s\r\n", long_id);
    const char *const hdrs[] = {NULL, "X-Request-Id: has space\r\n", "X-Request-Id: a\"b\r\n",
                                "X-Request-Id: \r\n", too_long};
    char *seen[TN_ARRAY_LEN(hdrs)];
    for (size_t i = 0; i < TN_ARRAY_LEN(hdrs); i++) {
        r = http_do(f->port, "GET", "/nope", hdrs[i], NULL);
        assert_int_equal(r.status, 404);
        seen[i] = resp_header(&r, "X-Request-Id");
        assert_non_null(seen[i]);
        if (!is_hex32(seen[i]))
            fail_msg("generated request id %s is not 32 hex digits", seen[i]);
        for (size_t k = 0; k < i; k++)
            assert_string_not_equal(seen[k], seen[i]);
        resp_free(&r);
    }
    for (size_t i = 0; i < TN_ARRAY_LEN(hdrs); i++)
        free(seen[i]);
    free(too_long);

    /* 64 characters is the longest accepted. */
    long_id[64] = '\0';
    char *max_id = tn_xasprintf("X-Request-Id: %s\r\n", long_id);
    r = http_do(f->port, "GET", "/health", max_id, NULL);
    rid = resp_header(&r, "X-Request-Id");
    assert_string_equal(rid, long_id);
    free(rid);
    free(max_id);
    resp_free(&r);
}

static void test_health_ready(void **state)
{
    fixture_t *f = *state;
    resp_t r = http_do(f->port, "GET", "/health", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"ok\"}");
    resp_free(&r);

    r = http_do(f->port, "HEAD", "/health", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    resp_free(&r);

    r = http_do(f->port, "GET", "/ready", NULL, NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);

    atomic_store(&f->ready, false);
    r = http_do(f->port, "GET", "/ready", NULL, NULL);
    assert_int_equal(r.status, 503);
    char *ct = resp_header(&r, "Content-Type");
    assert_string_equal(ct, "application/json");
    free(ct);
    json_t *j = resp_json(&r);
    assert_string_equal(jstr(j, "status"), "not_ready");
    assert_string_equal(jstr(j, "reason"), "kafka consumer not assigned");
    json_decref(j);
    resp_free(&r);
}

static void test_headers_and_replace(void **state)
{
    fixture_t *f = *state;
    resp_t r = http_do(f->port, "GET", "/v1/headers", "User-Agent: cmocka/1\r\n", NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "cmocka/1");
    char *x = resp_header(&r, "X-Custom");
    assert_string_equal(x, "yes");
    free(x);
    assert_null(strstr(r.head, "Injected"));
    resp_free(&r);
}

static void test_no_answer_is_500(void **state)
{
    fixture_t *f = *state;
    resp_t r = http_do(f->port, "GET", "/v1/silent", NULL, NULL);
    assert_error(&r, 500, "internal");
    resp_free(&r);
}

static void test_stream(void **state)
{
    fixture_t *f = *state;
    resp_t r = http_do(f->port, "GET", "/v1/stream", NULL, NULL);
    assert_int_equal(r.status, 200);
    char *te = resp_header(&r, "Transfer-Encoding");
    assert_non_null(te);
    assert_string_equal(te, "chunked");
    free(te);
    char *ct = resp_header(&r, "Content-Type");
    assert_string_equal(ct, "text/event-stream");
    free(ct);
    assert_string_equal(r.body, "data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n");
    resp_free(&r);
    /* Both the replaced and the sent stream state are freed once the request is done. */
    int64_t deadline = tn_clock_mono_ms() + tn_test_timeout_ms(3000);
    while (atomic_load(&f->stream_freed) < 2 && tn_clock_mono_ms() < deadline)
        tn_clock_sleep_ms(5);
    assert_int_equal(atomic_load(&f->stream_freed), 2);
}

static double wait_counter(tn_metric_t *m, const char *const *labels, double want)
{
    int64_t deadline = tn_clock_mono_ms() + tn_test_timeout_ms(3000);
    double v = tn_metric_get(m, labels);
    while (v < want && tn_clock_mono_ms() < deadline) {
        tn_clock_sleep_ms(5);
        v = tn_metric_get(m, labels);
    }
    return v;
}

static void test_metrics(void **state)
{
    fixture_t *f = *state;
    for (int i = 0; i < 3; i++) {
        resp_t r = http_do(f->port, "GET", i == 2 ? "/v1/appointments/b?x=1" : "/v1/appointments/a",
                           NULL, NULL);
        assert_int_equal(r.status, 200);
        resp_free(&r);
    }
    resp_t r = http_do(f->port, "GET", "/some/random/path", NULL, NULL);
    resp_free(&r);
    r = http_do(f->port, "FROB", "/v1/appointments/a", NULL, NULL);
    resp_free(&r);

    tn_metric_t *reqs = tn_metrics_counter(f->metrics, "taina_http_requests_total",
                                           "HTTP requests answered, by route, method and status.",
                                           TN_LABELS("route", "method", "status"));
    tn_metric_t *dur = tn_metrics_histogram(
        f->metrics, "taina_http_request_duration_seconds",
        "Time from request headers to the end of the response, by route, method and status.",
        TN_LABELS("route", "method", "status"), tn_metrics_duration_buckets,
        tn_metrics_duration_nbuckets);
    const char *const *ok = TN_LABELS("/v1/appointments/{request_id}", "GET", "200");
    assert_true(wait_counter(reqs, ok, 3) == 3);
    assert_true(wait_counter(reqs, TN_LABELS("unmatched", "GET", "404"), 1) == 1);
    assert_true(wait_counter(reqs, TN_LABELS("/v1/appointments/{request_id}", "OTHER", "405"), 1) ==
                1);
    assert_int_equal(tn_metric_count(dur, ok), 3);
    /* The raw path never becomes a label. */
    assert_true(tn_metric_get(reqs, TN_LABELS("/v1/appointments/a", "GET", "200")) == 0);

    r = http_do(f->port, "GET", "/metrics", NULL, NULL);
    assert_int_equal(r.status, 200);
    char *ct = resp_header(&r, "Content-Type");
    assert_string_equal(ct, "text/plain; version=0.0.4; charset=utf-8");
    free(ct);
    assert_non_null(strstr(r.body, "taina_http_requests_total"));
    assert_non_null(strstr(r.body, "taina_http_connections"));
    resp_free(&r);
}

static void *release_later(void *arg)
{
    fixture_t *f = arg;
    tn_clock_sleep_ms(200);
    atomic_store(&f->slow_release, true);
    return NULL;
}

static void test_stop_with_request_in_flight(void **state)
{
    fixture_t *f = *state;
    const char *req = "GET /v1/slow HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    int fd = connect_to(f->port, tn_test_timeout_ms(10000));
    assert_true(fd >= 0);
    send_all(fd, req, strlen(req));
    int64_t deadline = tn_clock_mono_ms() + tn_test_timeout_ms(3000);
    while (atomic_load(&f->slow_entered) == 0 && tn_clock_mono_ms() < deadline)
        tn_clock_sleep_ms(2);
    assert_int_equal(atomic_load(&f->slow_entered), 1);
    assert_int_equal(tn_http_server_inflight(f->srv), 1);

    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, release_later, f), 0);
    int64_t t0 = tn_clock_mono_ms();
    tn_http_server_stop(f->srv); /* waits for the slow request */
    int64_t waited = tn_clock_mono_ms() - t0;
    pthread_join(th, NULL);
    assert_true(waited >= 150); /* it did wait for the handler (lower bound only) */
    assert_int_equal(tn_http_server_inflight(f->srv), 0);

    char *raw;
    size_t n = recv_all(fd, &raw);
    close(fd);
    resp_t r = parse_resp(raw, n);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "finished");
    resp_free(&r);

    /* Stopped: nobody listens any more. Stop again is a no-op. */
    assert_int_equal(connect_to(f->port, 1000), -1);
    tn_http_server_stop(f->srv);
}

/* A handler that waits delays only its own connection: connections opened before it (which a
 * pool would have spread over its threads by chance, some behind the waiting one) are answered
 * while it waits. */
static void test_waiting_handler_delays_only_its_connection(void **state)
{
    fixture_t *f = *state;
    enum { N = 12 };
    int fd[N];
    for (int i = 0; i < N; i++) {
        fd[i] = connect_to(f->port, tn_test_timeout_ms(5000));
        assert_true(fd[i] >= 0);
    }
    const char *slow = "GET /v1/slow HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    send_all(fd[0], slow, strlen(slow));
    int64_t deadline = tn_clock_mono_ms() + tn_test_timeout_ms(3000);
    while (atomic_load(&f->slow_entered) == 0 && tn_clock_mono_ms() < deadline)
        tn_clock_sleep_ms(2);
    assert_int_equal(atomic_load(&f->slow_entered), 1);

    const char *health = "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    for (int i = 1; i < N; i++) {
        send_all(fd[i], health, strlen(health));
        char *raw;
        size_t n = recv_all(fd[i], &raw);
        close(fd[i]);
        resp_t r = parse_resp(raw, n);
        if (r.status != 200)
            fail_msg("connection %d got no answer while /v1/slow waited on another", i);
        resp_free(&r);
    }
    assert_false(atomic_load(&f->slow_release)); /* all answered while it still waited */

    atomic_store(&f->slow_release, true);
    char *raw;
    size_t n = recv_all(fd[0], &raw);
    close(fd[0]);
    resp_t r = parse_resp(raw, n);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "finished");
    resp_free(&r);
}

static void test_connection_limit(void **state)
{
    fixture_t *f = *state;
    fixture_t g = {0};
    tn_http_server_opts_t o;
    TN_UNUSED(f);
    tn_http_server_opts_init(&o);
    o.max_connections = 2;
    o.threads = 1;
    o.metrics = tn_metrics_new();
    atomic_store(&g.ready, true);
    start_server(&g, &o);
    tn_metric_t *conns = tn_metrics_gauge(o.metrics, "taina_http_connections",
                                          "Open HTTP connections.", TN_NOLABELS);

    /* Two connections hold the server's slots with half a request each. */
    int hold[2];
    for (int i = 0; i < 2; i++) {
        hold[i] = connect_to(g.port, 5000);
        assert_true(hold[i] >= 0);
        send_all(hold[i], "GET /health HTTP/1.1\r\n", 22);
    }
    assert_true(wait_counter(conns, TN_NOLABELS, 2) == 2);

    /* A third gets no answer while they stay (it waits unaccepted or is closed). */
    const char *req = "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    int extra = connect_to(g.port, 500);
    char buf[64];
    if (extra >= 0) {
        send_all(extra, req, strlen(req));
        ssize_t got = recv(extra, buf, sizeof(buf), 0);
        assert_true(got <= 0);
        close(extra);
    }
    assert_true(tn_metric_get(conns, TN_NOLABELS) <= 2);

    /* Freeing a slot lets the next connection in. */
    send_all(hold[0], "Host: t\r\nConnection: close\r\n\r\n", 31);
    char *raw;
    size_t n = recv_all(hold[0], &raw);
    resp_t r = parse_resp(raw, n);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    close(hold[0]);
    r = http_do(g.port, "GET", "/health", NULL, NULL);
    assert_int_equal(r.status, 200);
    resp_free(&r);

    close(hold[1]);
    tn_http_server_destroy(g.srv);
    tn_metrics_destroy(o.metrics);
}

static void test_new_errors(void **state)
{
    char err[256];
    tn_http_server_t *srv = (tn_http_server_t *)0x1;
    tn_http_server_opts_t o;
    TN_UNUSED(state);
    tn_http_server_opts_init(&o);

    static const char *const bad[] = {"v1/x",   "/v1/{id",   "/v1/{}", "/v1/a{id}",
                                      "/v1//x", "/v1/{a-b}", "/v1/x/"};
    for (size_t i = 0; i < TN_ARRAY_LEN(bad); i++) {
        const tn_http_route_t r = {"GET", bad[i], on_silent, 0, NULL, NULL};
        err[0] = '\0';
        if (tn_http_server_new(&o, &r, 1, &srv, err, sizeof(err)) != TN_ERR_INVALID)
            fail_msg("pattern %s accepted", bad[i]);
        assert_non_null(strstr(err, bad[i]));
        assert_null(srv);
    }
    const tn_http_route_t nohandler = {"GET", "/x", NULL, 0, NULL, NULL};
    assert_int_equal(tn_http_server_new(&o, &nohandler, 1, &srv, err, sizeof(err)), TN_ERR_INVALID);

    o.bind_addr = "localhost";
    assert_int_equal(tn_http_server_new(&o, NULL, 0, &srv, err, sizeof(err)), TN_ERR_INVALID);
    assert_non_null(strstr(err, "localhost"));
    o.bind_addr = "127.0.0.1";
    o.port = 70000;
    assert_int_equal(tn_http_server_new(&o, NULL, 0, &srv, err, sizeof(err)), TN_ERR_INVALID);
}

static void test_port_in_use_and_ipv6(void **state)
{
    fixture_t *f = *state;
    char err[256] = "";
    tn_http_server_t *srv = NULL;
    tn_http_server_opts_t o;
    tn_http_server_opts_init(&o);
    o.bind_addr = "127.0.0.1";
    o.port = f->port;
    assert_int_equal(tn_http_server_new(&o, NULL, 0, &srv, err, sizeof(err)), TN_OK);
    assert_int_equal(tn_http_server_start(srv, err, sizeof(err)), TN_ERR_IO);
    assert_non_null(strstr(err, "127.0.0.1"));
    assert_int_equal(tn_http_server_port(srv), 0);
    tn_http_server_destroy(srv);

    /* IPv6 loopback, when the machine has it. */
    o.bind_addr = "::1";
    o.port = 0;
    assert_int_equal(tn_http_server_new(&o, NULL, 0, &srv, err, sizeof(err)), TN_OK);
    if (tn_http_server_start(srv, err, sizeof(err)) == TN_OK) {
        int fd = socket(AF_INET6, SOCK_STREAM, 0);
        struct sockaddr_in6 sa = {.sin6_family = AF_INET6,
                                  .sin6_port = htons((uint16_t)tn_http_server_port(srv))};
        sa.sin6_addr = in6addr_loopback;
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        const char *req = "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
        send_all(fd, req, strlen(req));
        char *raw;
        size_t n = recv_all(fd, &raw);
        close(fd);
        resp_t r = parse_resp(raw, n);
        assert_int_equal(r.status, 200);
        resp_free(&r);
    }
    tn_http_server_destroy(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_routing_params_query, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_method_not_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_large_content_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_large_chunked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsupported_media_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth, setup, teardown),
        cmocka_unit_test(test_rate_limit),
        cmocka_unit_test_setup_teardown(test_auth_disabled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health_ready, setup, teardown),
        cmocka_unit_test_setup_teardown(test_headers_and_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_answer_is_500, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_with_request_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waiting_handler_delays_only_its_connection, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_connection_limit, setup, teardown),
        cmocka_unit_test(test_new_errors),
        cmocka_unit_test_setup_teardown(test_port_in_use_and_ipv6, setup, teardown),
    };
    return cmocka_run_group_tests_name("http_server", tests, NULL, NULL);
}
