/* HTTP client for upstream APIs: libcurl easy handles in a pool, retries, deadlines, metrics. */
#include "taina/http_client.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "taina/buf.h"
#include "taina/clock.h"
#include "taina/log.h"
#include "taina/mem.h"

#define DEF_CONNECT_TIMEOUT_MS 5000
#define DEF_TIMEOUT_MS         30000
#define DEF_DEADLINE_MS        60000
#define DEF_MAX_ATTEMPTS       3
#define DEF_BACKOFF_BASE_MS    100
#define DEF_BACKOFF_CAP_MS     5000
#define DEF_RETRY_AFTER_MAX_MS 30000
#define DEF_MAX_RESPONSE       ((size_t)16 * 1024 * 1024)
#define DEF_POOL_SIZE          4
#define DEF_USER_AGENT         "taina/1"
#define MAX_RESP_HEADERS       (128 * 1024) /* name\0value\0 pairs of one answer */

struct tn_http_client {
    char *upstream;
    char *base_url; /* without a trailing '/'; NULL when absent */
    char *user_agent;
    char **headers; /* default "Name: value" lines, NULL-terminated */
    int64_t connect_timeout_ms, timeout_ms, deadline_ms;
    int max_attempts;
    int64_t backoff_base_ms, backoff_cap_ms, retry_after_max_ms;
    size_t max_response;
    bool retry_post;

    tn_metric_t *m_duration, *m_requests, *m_retries; /* NULL without a registry */

    pthread_mutex_t lock; /* guards the pool and the random state */
    CURL **idle;
    int nidle, pool_size;
    uint64_t rng;
};

/* What one attempt produced, beyond the response itself. */
typedef struct attempt {
    tn_http_client_t *hc;
    tn_http_response_t *resp;
    CURL *h;
    bool too_large; /* the body or the headers went over their cap */
    /* Streaming (tn_http_client_stream): the sink gets the body of a 2xx answer. */
    tn_http_body_fn *sink;
    void *opaque;
    bool decided;    /* the status of this attempt's answer was looked at */
    bool delivering; /* a 2xx: body pieces go to the sink, not to resp->body */
    bool stopped;    /* the sink asked to stop */
    size_t streamed; /* bytes given to the sink in this attempt */
} attempt_t;

typedef enum { OUT_OK, OUT_CLIENT_ERROR, OUT_SERVER_ERROR, OUT_TIMEOUT, OUT_ERROR } outcome_t;

static const char *const outcome_names[] = {"ok", "client_error", "server_error", "timeout",
                                            "error"};

/* ------------------------------------------------------------------------------------------ */
/* libcurl global state */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;
/* Process-wide trust for HTTPS (tn_http_client_tls_trust): set once at start, read after. */
static char *tls_ca_file, *tls_ca_path;

void tn_http_client_tls_trust(const char *ca_file, const char *ca_path)
{
    free(tls_ca_file);
    free(tls_ca_path);
    tls_ca_file = ca_file && *ca_file ? tn_xstrdup(ca_file) : NULL;
    tls_ca_path = ca_path && *ca_path ? tn_xstrdup(ca_path) : NULL;
}

static void global_init(void)
{
    /* Process-wide and not thread-safe in libcurl itself, hence pthread_once. Never undone:
     * curl_global_cleanup would race with other clients still alive. */
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ------------------------------------------------------------------------------------------ */
/* Small helpers */

const char *tn_http_method_name(tn_http_method_t method)
{
    switch (method) {
    case TN_HTTP_GET:
        return "GET";
    case TN_HTTP_POST:
        return "POST";
    case TN_HTTP_PUT:
        return "PUT";
    case TN_HTTP_PATCH:
        return "PATCH";
    case TN_HTTP_DELETE:
        return "DELETE";
    case TN_HTTP_HEAD:
        return "HEAD";
    }
    return "GET";
}

static bool method_is_idempotent(tn_http_method_t method)
{
    return method != TN_HTTP_POST && method != TN_HTTP_PATCH;
}

static bool status_is_retryable(long status)
{
    return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

static bool is_absolute(const char *url)
{
    return strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0;
}

/* A header line must be "Name: value" with a token name and no CR/LF anywhere. */
static bool header_line_ok(const char *line)
{
    const char *colon = strchr(line, ':');
    if (!colon || colon == line || strpbrk(line, "\r\n"))
        return false;
    for (const char *p = line; p < colon; p++)
        if (!isgraph((unsigned char)*p))
            return false;
    return true;
}

/* Names whose values must never reach a log line. */
static bool header_is_secret(const char *name, size_t len)
{
    static const char *const exact[] = {"authorization", "proxy-authorization", "cookie",
                                        "set-cookie"};
    static const char *const parts[] = {"key", "token", "secret", "auth"};
    char low[64];
    if (len >= sizeof(low))
        return true; /* odd enough to be careful */
    for (size_t i = 0; i < len; i++)
        low[i] = (char)tolower((unsigned char)name[i]);
    low[len] = '\0';
    for (size_t i = 0; i < TN_ARRAY_LEN(exact); i++)
        if (strcmp(low, exact[i]) == 0)
            return true;
    for (size_t i = 0; i < TN_ARRAY_LEN(parts); i++)
        if (strstr(low, parts[i]))
            return true;
    return false;
}

/* xorshift64*: jitter only, no need for anything stronger. Called with hc->lock held. */
static uint64_t rng_next(tn_http_client_t *hc)
{
    uint64_t x = hc->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    hc->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Responses */

void tn_http_response_init(tn_http_response_t *resp)
{
    memset(resp, 0, sizeof(*resp));
    tn_buf_init(&resp->body, DEF_MAX_RESPONSE);
    tn_buf_init(&resp->hdrs, MAX_RESP_HEADERS);
}

void tn_http_response_cleanup(tn_http_response_t *resp)
{
    if (!resp)
        return;
    tn_buf_cleanup(&resp->body);
    tn_buf_cleanup(&resp->hdrs);
}

static void response_reset(tn_http_response_t *resp)
{
    resp->status = 0;
    tn_buf_reset(&resp->body);
    tn_buf_reset(&resp->hdrs);
}

const char *tn_http_response_header(const tn_http_response_t *resp, const char *name)
{
    const char *p = resp->hdrs.data;
    const char *end = p ? p + resp->hdrs.len : NULL;
    while (p && p < end) {
        const char *val = p + strlen(p) + 1;
        if (strcasecmp(p, name) == 0)
            return val;
        p = val + strlen(val) + 1;
    }
    return NULL;
}

char *tn_http_response_describe(const tn_http_response_t *resp, char *buf, size_t len)
{
    TN_ASSERT(buf && len > 0);
    if (resp->status == 0) {
        snprintf(buf, len, "no HTTP answer%s%s%s", resp->error[0] ? " (" : "", resp->error,
                 resp->error[0] ? ")" : "");
        return buf;
    }
    char snippet[201];
    size_t n = TN_MIN(resp->body.len, sizeof(snippet) - 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)resp->body.data[i];
        snippet[i] = (ch < 0x20 || ch == 0x7f) ? ' ' : (char)ch;
    }
    snippet[n] = '\0';
    snprintf(buf, len, "HTTP %ld%s%s%s", resp->status, n ? ": " : "", snippet,
             resp->body.len > n ? "..." : "");
    return buf;
}

/* ------------------------------------------------------------------------------------------ */
/* libcurl callbacks */

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    attempt_t *at = userp;
    size_t n = size * nmemb;
    if (at->sink && !at->decided) {
        /* The head is complete once the body starts: only a 2xx streams; other answers are
         * kept whole so that they can be retried or described. */
        long status = 0;
        curl_easy_getinfo(at->h, CURLINFO_RESPONSE_CODE, &status);
        at->decided = true;
        at->delivering = status >= 200 && status <= 299;
    }
    if (at->delivering) {
        if (n > at->hc->max_response - TN_MIN(at->streamed, at->hc->max_response)) {
            at->too_large = true;
            return CURL_WRITEFUNC_ERROR;
        }
        at->streamed += n;
        if (n > 0 && at->sink(at->opaque, data, n) != 0) {
            at->stopped = true;
            return CURL_WRITEFUNC_ERROR;
        }
        return n;
    }
    if (tn_buf_add(&at->resp->body, data, n) != TN_OK) {
        at->too_large = true;
        return CURL_WRITEFUNC_ERROR;
    }
    return n;
}

/* Store "Name: value" lines as name\0value\0 pairs; a status line starts a new answer (after
 * an interim 100 Continue, only the final answer's headers remain). */
static size_t on_header(char *data, size_t size, size_t nmemb, void *userp)
{
    attempt_t *at = userp;
    size_t n = size * nmemb, len = n;
    while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
        len--;
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        tn_buf_reset(&at->resp->hdrs);
        return n;
    }
    const char *colon = memchr(data, ':', len);
    if (!colon || colon == data)
        return n; /* blank line, or obsolete folding: ignore */
    const char *v = colon + 1, *ve = data + len;
    while (v < ve && (*v == ' ' || *v == '\t'))
        v++;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
        ve--;
    tn_buf_t *h = &at->resp->hdrs;
    size_t before = h->len;
    if (tn_buf_add(h, data, (size_t)(colon - data)) != TN_OK || tn_buf_add(h, "", 1) != TN_OK ||
        tn_buf_add(h, v, (size_t)(ve - v)) != TN_OK || tn_buf_add(h, "", 1) != TN_OK) {
        h->len = before;
        at->too_large = true;
        return CURL_WRITEFUNC_ERROR;
    }
    return n;
}

/* A request line with the values of secret-looking query parameters ("?key=...") replaced. */
static void debug_request_line(const tn_http_client_t *hc, const char *p, size_t len)
{
    const char *q = memchr(p, '?', len);
    if (!q) {
        TN_DBG(TN_DBG_CLIENT, "%s > %.*s", hc->upstream, (int)len, p);
        return;
    }
    tn_buf_t b;
    tn_buf_init(&b, 8192);
    const char *end = p + len, *sp = memchr(q, ' ', (size_t)(end - q));
    const char *qend = sp ? sp : end;
    tn_buf_add(&b, p, (size_t)(q + 1 - p));
    for (const char *param = q + 1; param < qend;) {
        const char *amp = memchr(param, '&', (size_t)(qend - param));
        const char *pend = amp ? amp : qend;
        const char *eq = memchr(param, '=', (size_t)(pend - param));
        if (eq && header_is_secret(param, (size_t)(eq - param))) {
            tn_buf_add(&b, param, (size_t)(eq + 1 - param));
            tn_buf_adds(&b, "[redacted]");
        } else {
            tn_buf_add(&b, param, (size_t)(pend - param));
        }
        if (amp)
            tn_buf_add(&b, "&", 1);
        param = amp ? amp + 1 : qend;
    }
    tn_buf_add(&b, qend, (size_t)(end - qend));
    TN_DBG(TN_DBG_CLIENT, "%s > %s", hc->upstream, b.data ? b.data : "");
    tn_buf_cleanup(&b);
}

/* One debug line per header line; secret values replaced. */
static void debug_headers(const tn_http_client_t *hc, char dir, const char *data, size_t size)
{
    const char *p = data, *end = data + size;
    bool first = dir == '>';
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *next = eol ? eol + 1 : end;
        const char *le = eol ? eol : end;
        if (le > p && le[-1] == '\r')
            le--;
        if (le > p && first) {
            debug_request_line(hc, p, (size_t)(le - p));
        } else if (le > p) {
            const char *colon = memchr(p, ':', (size_t)(le - p));
            if (colon && header_is_secret(p, (size_t)(colon - p)))
                TN_DBG(TN_DBG_CLIENT, "%s %c %.*s: [redacted]", hc->upstream, dir, (int)(colon - p),
                       p);
            else
                TN_DBG(TN_DBG_CLIENT, "%s %c %.*s", hc->upstream, dir, (int)(le - p), p);
        }
        first = false;
        p = next;
    }
}

static int on_debug(CURL *h, curl_infotype type, char *data, size_t size, void *userp)
{
    const tn_http_client_t *hc = userp;
    TN_UNUSED(h);
    switch (type) {
    case CURLINFO_TEXT: {
        size_t n = size;
        while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == '\r'))
            n--;
        TN_DBG(TN_DBG_CLIENT, "%s * %.*s", hc->upstream, (int)n, data);
        break;
    }
    case CURLINFO_HEADER_OUT:
        debug_headers(hc, '>', data, size);
        break;
    case CURLINFO_HEADER_IN:
        debug_headers(hc, '<', data, size);
        break;
    case CURLINFO_DATA_OUT:
        TN_DBG(TN_DBG_CLIENT, "%s > [%zu bytes of body]", hc->upstream, size);
        break;
    case CURLINFO_DATA_IN:
        TN_DBG(TN_DBG_CLIENT, "%s < [%zu bytes of body]", hc->upstream, size);
        break;
    default:
        break; /* TLS records: nothing readable */
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Handle pool */

static CURL *pool_get(tn_http_client_t *hc)
{
    CURL *h = NULL;
    pthread_mutex_lock(&hc->lock);
    if (hc->nidle > 0)
        h = hc->idle[--hc->nidle];
    pthread_mutex_unlock(&hc->lock);
    if (!h)
        h = curl_easy_init();
    if (!h) {
        TN_LOG(TN_LOG_FATAL, "curl_easy_init failed (out of memory)");
        abort();
    }
    /* Keeps the handle's open connections and DNS cache, drops every option. */
    curl_easy_reset(h);
    return h;
}

static void pool_put(tn_http_client_t *hc, CURL *h)
{
    pthread_mutex_lock(&hc->lock);
    if (hc->nidle < hc->pool_size) {
        hc->idle[hc->nidle++] = h;
        h = NULL; /* the pool owns it now */
    }
    pthread_mutex_unlock(&hc->lock);
    if (h)
        curl_easy_cleanup(h);
}

/* ------------------------------------------------------------------------------------------ */
/* Client */

tn_http_client_opts_t tn_http_client_opts_default(void)
{
    tn_http_client_opts_t o;
    memset(&o, 0, sizeof(o));
    return o;
}

tn_http_client_t *tn_http_client_new(const tn_http_client_opts_t *opts, char *errbuf, size_t errlen)
{
    tn_http_client_t *hc = NULL;
    TN_ASSERT(opts);
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK) {
        snprintf(errbuf, errlen, "libcurl initialisation failed: %s",
                 curl_easy_strerror(global_rc));
        goto fail;
    }
    if (!opts->upstream || !*opts->upstream) {
        snprintf(errbuf, errlen, "HTTP client needs an upstream name");
        goto fail;
    }
    if (opts->base_url) {
        CURLU *u = curl_url();
        CURLUcode uc = u ? curl_url_set(u, CURLUPART_URL, opts->base_url, 0) : CURLUE_OUT_OF_MEMORY;
        curl_url_cleanup(u);
        if (uc != CURLUE_OK || !is_absolute(opts->base_url)) {
            snprintf(errbuf, errlen, "%s: base URL \"%s\" is not an http(s) URL%s%s",
                     opts->upstream, opts->base_url, uc != CURLUE_OK ? ": " : "",
                     uc != CURLUE_OK ? curl_url_strerror(uc) : "");
            goto fail;
        }
    }
    size_t nh = 0;
    for (const char *const *p = opts->headers; p && *p; p++, nh++) {
        if (!header_line_ok(*p)) {
            /* Name only: the value may be a secret. */
            const char *colon = strchr(*p, ':');
            snprintf(errbuf, errlen, "%s: bad default header line (header \"%.*s\")",
                     opts->upstream, colon ? (int)(colon - *p) : 0, *p);
            goto fail;
        }
    }

    hc = tn_xcalloc(1, sizeof(*hc));
    hc->upstream = tn_xstrdup(opts->upstream);
    if (opts->base_url) {
        hc->base_url = tn_xstrdup(opts->base_url);
        size_t bl = strlen(hc->base_url);
        while (bl > 0 && hc->base_url[bl - 1] == '/')
            hc->base_url[--bl] = '\0';
    }
    hc->user_agent = tn_xstrdup(opts->user_agent ? opts->user_agent : DEF_USER_AGENT);
    hc->headers = tn_xcalloc(nh + 1, sizeof(char *));
    for (size_t i = 0; i < nh; i++)
        hc->headers[i] = tn_xstrdup(opts->headers[i]);
    hc->connect_timeout_ms =
        opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : DEF_CONNECT_TIMEOUT_MS;
    hc->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : DEF_TIMEOUT_MS;
    hc->deadline_ms = opts->deadline_ms > 0 ? opts->deadline_ms : DEF_DEADLINE_MS;
    hc->max_attempts = opts->max_attempts > 0 ? opts->max_attempts : DEF_MAX_ATTEMPTS;
    hc->backoff_base_ms = opts->backoff_base_ms > 0 ? opts->backoff_base_ms : DEF_BACKOFF_BASE_MS;
    hc->backoff_cap_ms = opts->backoff_cap_ms > 0 ? opts->backoff_cap_ms : DEF_BACKOFF_CAP_MS;
    hc->retry_after_max_ms =
        opts->retry_after_max_ms > 0 ? opts->retry_after_max_ms : DEF_RETRY_AFTER_MAX_MS;
    hc->max_response = opts->max_response_bytes > 0 ? opts->max_response_bytes : DEF_MAX_RESPONSE;
    hc->retry_post = opts->retry_post;
    hc->pool_size = opts->pool_size > 0 ? opts->pool_size : DEF_POOL_SIZE;
    hc->idle = tn_xcalloc((size_t)hc->pool_size, sizeof(CURL *));
    pthread_mutex_init(&hc->lock, NULL);
    hc->rng =
        (uint64_t)tn_clock_wall_ms() ^ ((uint64_t)(uintptr_t)hc << 16) ^ 0x9E3779B97F4A7C15ULL;
    if (hc->rng == 0)
        hc->rng = 1;

    if (opts->metrics) {
        hc->m_duration =
            tn_metrics_histogram(opts->metrics, "taina_upstream_request_duration_seconds",
                                 "Duration of one attempt of a request to an upstream API.",
                                 TN_LABELS("upstream", "outcome"), tn_metrics_duration_buckets,
                                 tn_metrics_duration_nbuckets);
        hc->m_requests = tn_metrics_counter(opts->metrics, "taina_upstream_requests_total",
                                            "Attempts of requests to upstream APIs, by outcome.",
                                            TN_LABELS("upstream", "outcome"));
        hc->m_retries = tn_metrics_counter(opts->metrics, "taina_upstream_retries_total",
                                           "Requests to upstream APIs retried after a failure.",
                                           TN_LABELS("upstream"));
    }
    return hc;
fail:
    return NULL;
}

void tn_http_client_destroy(tn_http_client_t *hc)
{
    if (!hc)
        return;
    for (int i = 0; i < hc->nidle; i++)
        curl_easy_cleanup(hc->idle[i]);
    free(hc->idle);
    pthread_mutex_destroy(&hc->lock);
    for (char **p = hc->headers; p && *p; p++)
        free(*p);
    free(hc->headers);
    free(hc->upstream);
    free(hc->base_url);
    free(hc->user_agent);
    free(hc);
}

const char *tn_http_client_upstream(const tn_http_client_t *hc)
{
    return hc->upstream;
}

/* ------------------------------------------------------------------------------------------ */
/* Requests */

static char *build_url(const tn_http_client_t *hc, const char *path)
{
    if (strpbrk(path, " \r\n\t"))
        return NULL;
    if (is_absolute(path))
        return tn_xstrdup(path);
    if (!hc->base_url)
        return NULL;
    if (!*path)
        return tn_xstrdup(hc->base_url);
    return tn_xasprintf("%s%s%s", hc->base_url, path[0] == '/' ? "" : "/", path);
}

/* The header list of a call: defaults, the request's own, content type, no Expect. */
static tn_err_t build_headers(const tn_http_client_t *hc, const tn_http_request_t *req,
                              struct curl_slist **out)
{
    struct curl_slist *list = NULL, *next = NULL;
    tn_err_t rc = TN_ERR_INVALID;
    for (char **p = hc->headers; *p; p++) {
        next = curl_slist_append(list, *p);
        if (!next)
            goto oom;
        list = next;
    }
    for (const char *const *p = req->headers; p && *p; p++) {
        if (!header_line_ok(*p)) {
            const char *colon = strchr(*p, ':');
            TN_LOG(TN_LOG_WARN, "%s: bad request header line (header \"%.*s\")", hc->upstream,
                   colon ? (int)(colon - *p) : 0, *p);
            goto out;
        }
        next = curl_slist_append(list, *p);
        if (!next)
            goto oom;
        list = next;
    }
    if (req->content_type && strpbrk(req->content_type, "\r\n"))
        goto out;
    char ct[256];
    /* With no content type, "Content-Type:" stops libcurl adding a form-urlencoded one. */
    snprintf(ct, sizeof(ct), "Content-Type:%s%s", req->content_type ? " " : "",
             req->content_type ? req->content_type : "");
    next = curl_slist_append(list, ct);
    if (!next)
        goto oom;
    list = next;
    /* A 100-continue round trip costs a wait for nothing with APIs that always read bodies. */
    next = curl_slist_append(list, "Expect:");
    if (!next)
        goto oom;
    list = next;
    *out = list;
    list = NULL; /* the caller owns it now */
    rc = TN_OK;
out:
    curl_slist_free_all(list);
    return rc;
oom:
    TN_LOG(TN_LOG_FATAL, "curl_slist_append failed (out of memory)");
    abort();
}

static tn_err_t map_curl(CURLcode cc, bool too_large, bool *retryable, outcome_t *outcome)
{
    *retryable = false;
    *outcome = OUT_ERROR;
    if (too_large || cc == CURLE_FILESIZE_EXCEEDED)
        return TN_ERR_TOO_LARGE;
    switch (cc) {
    case CURLE_OK:
        return TN_OK;
    case CURLE_OPERATION_TIMEDOUT:
        *retryable = true;
        *outcome = OUT_TIMEOUT;
        return TN_ERR_TIMEOUT;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        *retryable = true;
        return TN_ERR_UNAVAILABLE;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_FUNCTION_ARGUMENT:
        return TN_ERR_INVALID;
    default:
        /* TLS verification and the like: retrying would not change the answer. */
        return TN_ERR_UNAVAILABLE;
    }
}

static outcome_t status_outcome(long status)
{
    if (status >= 500)
        return OUT_SERVER_ERROR;
    if (status >= 400)
        return OUT_CLIENT_ERROR;
    return OUT_OK;
}

/* Milliseconds a Retry-After header asks for, or -1 when absent or unreadable. */
static int64_t retry_after_ms(const tn_http_response_t *resp)
{
    const char *v = tn_http_response_header(resp, "Retry-After");
    if (!v || !*v)
        return -1;
    if (isdigit((unsigned char)*v)) {
        char *end = NULL;
        long long secs = strtoll(v, &end, 10);
        if (*end != '\0' || secs < 0)
            return -1;
        return secs > INT64_MAX / 1000 ? INT64_MAX : (int64_t)secs * 1000;
    }
    time_t t = curl_getdate(v, NULL);
    if (t == (time_t)-1)
        return -1;
    int64_t ms = (int64_t)t * 1000 - tn_clock_wall_ms();
    return ms > 0 ? ms : 0;
}

static int64_t backoff_ms(tn_http_client_t *hc, int attempt)
{
    int64_t ceiling = hc->backoff_base_ms;
    for (int i = 1; i < attempt && ceiling < hc->backoff_cap_ms; i++)
        ceiling *= 2;
    ceiling = TN_MIN(ceiling, hc->backoff_cap_ms);
    pthread_mutex_lock(&hc->lock);
    uint64_t r = rng_next(hc);
    pthread_mutex_unlock(&hc->lock);
    return (int64_t)(r % (uint64_t)(ceiling + 1));
}

/* Set the options that stay the same for every attempt of a call. */
static void setup_handle(tn_http_client_t *hc, CURL *h, const tn_http_request_t *req,
                         const char *url, struct curl_slist *headers, attempt_t *at, char *curl_err)
{
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for DNS timeouts */
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)hc->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_USERAGENT, hc->user_agent);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, at);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, at);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)hc->max_response);
    if (tls_ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, tls_ca_file);
    if (tls_ca_path)
        curl_easy_setopt(h, CURLOPT_CAPATH, tls_ca_path);
    if (tn_log_dbg_mask & TN_DBG_CLIENT) {
        curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, on_debug);
        curl_easy_setopt(h, CURLOPT_DEBUGDATA, hc);
        curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
    }
    switch (req->method) {
    case TN_HTTP_GET:
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        break;
    case TN_HTTP_HEAD:
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
        break;
    case TN_HTTP_POST:
    case TN_HTTP_PUT:
    case TN_HTTP_PATCH:
    case TN_HTTP_DELETE:
        if (req->method != TN_HTTP_POST)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, tn_http_method_name(req->method));
        if (req->body || req->method != TN_HTTP_DELETE) {
            /* Borrowed, not copied: the body outlives every attempt of the call. */
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? (const char *)req->body : "");
        }
        break;
    }
}

static void observe(tn_http_client_t *hc, outcome_t outcome, double secs)
{
    if (!hc->m_duration)
        return;
    const char *const *labels = TN_LABELS(hc->upstream, outcome_names[outcome]);
    tn_metric_observe(hc->m_duration, labels, secs);
    tn_metric_add(hc->m_requests, labels, 1);
}

/* The path without its query string, for log lines (queries sometimes carry keys). */
static int path_len_for_log(const char *path)
{
    return (int)strcspn(path, "?#");
}

/* One call with retries; with a sink, the body of a 2xx answer goes to it as it arrives. */
static tn_err_t perform(tn_http_client_t *hc, const tn_http_request_t *req,
                        tn_http_response_t *resp, tn_http_body_fn *sink, void *opaque)
{
    TN_ASSERT(hc && req && req->path && resp);
    tn_err_t rc = TN_ERR_INVALID;
    struct curl_slist *headers = NULL;
    CURL *h = NULL;
    char curl_err[CURL_ERROR_SIZE];
    int64_t start = tn_clock_mono_ms();
    int64_t deadline = start + (req->deadline_ms > 0 ? req->deadline_ms : hc->deadline_ms);
    int64_t attempt_timeout = req->timeout_ms > 0 ? req->timeout_ms : hc->timeout_ms;
    bool may_retry = !(req->flags & TN_HTTP_F_NO_RETRY) &&
                     (method_is_idempotent(req->method) || hc->retry_post ||
                      (req->flags & TN_HTTP_F_IDEMPOTENT));
    const char *method = tn_http_method_name(req->method);
    int plen = path_len_for_log(req->path);
    attempt_t at = {.hc = hc, .resp = resp, .sink = sink, .opaque = opaque};

    resp->attempts = 0;
    resp->elapsed_ms = 0;
    resp->body.max = hc->max_response;
    response_reset(resp);

    char *url = build_url(hc, req->path);
    if (!url) {
        TN_LOG(TN_LOG_WARN, "%s: cannot build a URL from \"%.*s\"", hc->upstream, plen, req->path);
        goto out;
    }
    if (build_headers(hc, req, &headers) != TN_OK)
        goto out;
    h = pool_get(hc);
    at.h = h;
    setup_handle(hc, h, req, url, headers, &at, curl_err);

    for (int attempt = 1;; attempt++) {
        int64_t now = tn_clock_mono_ms();
        int64_t left = deadline - now;
        if (left <= 0) {
            rc = TN_ERR_TIMEOUT;
            break;
        }
        response_reset(resp);
        at.too_large = at.decided = at.delivering = at.stopped = false;
        at.streamed = 0;
        curl_err[0] = '\0';
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)TN_MIN(attempt_timeout, left));
        CURLcode cc = curl_easy_perform(h);
        double secs = (double)(tn_clock_mono_ms() - now) / 1000.0;
        resp->attempts = attempt;
        bool retryable = false;
        outcome_t outcome = OUT_ERROR;
        rc = map_curl(cc, at.too_large, &retryable, &outcome);
        if (rc == TN_OK || at.stopped) {
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
            outcome = status_outcome(resp->status);
            retryable = status_is_retryable(resp->status);
            if (at.stopped) {
                rc = TN_ERR_STOPPED;
                retryable = false;
            }
        } else if (at.delivering) {
            /* Failed in the middle of a streamed answer: its status stays readable. */
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
        } else {
            resp->status = 0;
        }
        if (at.streamed > 0)
            retryable = false; /* the sink has seen part of this answer: no second one */
        observe(hc, outcome, secs);
        char what[CURL_ERROR_SIZE + 64];
        if (rc == TN_OK || rc == TN_ERR_STOPPED)
            snprintf(what, sizeof(what), "HTTP %ld%s", resp->status,
                     rc == TN_ERR_STOPPED ? " (stopped by the reader)" : "");
        else
            snprintf(what, sizeof(what), "%s (curl %d: %s)", tn_err_str(rc), (int)cc,
                     curl_err[0] ? curl_err : curl_easy_strerror(cc));
        snprintf(resp->error, sizeof(resp->error), "%s",
                 resp->status  ? ""
                 : curl_err[0] ? curl_err
                               : curl_easy_strerror(cc));
        TN_DBG(TN_DBG_CLIENT, "%s %s %.*s attempt %d: %s in %.3f s", hc->upstream, method, plen,
               req->path, attempt, what, secs);
        if (!retryable || !may_retry || attempt >= hc->max_attempts)
            break;

        int64_t ra = rc == TN_OK ? retry_after_ms(resp) : -1;
        int64_t wait = ra >= 0 ? TN_MIN(ra, hc->retry_after_max_ms) : backoff_ms(hc, attempt);
        if (tn_clock_mono_ms() + wait >= deadline) {
            TN_DBG(TN_DBG_CLIENT, "%s: waiting %lld ms would pass the deadline; giving up",
                   hc->upstream, (long long)wait);
            break;
        }
        TN_LOGF(TN_LOG_WARN, TN_F({"upstream", hc->upstream}),
                "%s %.*s: %s; retrying in %lld ms (attempt %d of %d)", method, plen, req->path,
                what, (long long)wait, attempt + 1, hc->max_attempts);
        if (hc->m_retries)
            tn_metric_add(hc->m_retries, TN_LABELS(hc->upstream), 1);
        tn_clock_sleep_ms(wait);
    }
    if (rc == TN_OK && status_is_retryable(resp->status))
        rc = TN_ERR_UNAVAILABLE;
out:
    if (h)
        pool_put(hc, h);
    curl_slist_free_all(headers);
    free(url);
    resp->elapsed_ms = tn_clock_mono_ms() - start;
    return rc;
}

tn_err_t tn_http_client_request(tn_http_client_t *hc, const tn_http_request_t *req,
                                tn_http_response_t *resp)
{
    return perform(hc, req, resp, NULL, NULL);
}

tn_err_t tn_http_client_stream(tn_http_client_t *hc, const tn_http_request_t *req,
                               tn_http_body_fn *on_body_piece, void *opaque,
                               tn_http_response_t *resp)
{
    TN_ASSERT(on_body_piece);
    return perform(hc, req, resp, on_body_piece, opaque);
}

/* ------------------------------------------------------------------------------------------ */
/* JSON */

tn_err_t tn_http_client_json_req(tn_http_client_t *hc, const tn_http_request_t *req,
                                 const json_t *body, tn_http_response_t *resp, json_t **out)
{
    TN_ASSERT(hc && req && resp && out);
    tn_err_t rc = TN_ERR_INVALID;
    char *text = NULL;
    const char **hdrs = NULL;
    *out = NULL;
    if (body) {
        text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!text) {
            TN_LOG(TN_LOG_WARN, "%s: request body cannot be encoded as JSON", hc->upstream);
            goto out;
        }
    }
    size_t n = 0;
    for (const char *const *p = req->headers; p && *p; p++)
        n++;
    hdrs = tn_xcalloc(n + 2, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        hdrs[i] = req->headers[i];
    hdrs[n] = "Accept: application/json";

    tn_http_request_t r = *req;
    r.headers = hdrs;
    r.body = text;
    r.body_len = text ? strlen(text) : 0;
    r.content_type = text ? "application/json" : NULL;
    rc = tn_http_client_request(hc, &r, resp);
    if (rc != TN_OK)
        goto out;
    if (resp->status < 200 || resp->status > 299) {
        rc = TN_ERR_UPSTREAM;
        goto out;
    }
    if (resp->body.len == 0)
        goto out; /* TN_OK with *out NULL: 204 and friends */
    json_error_t jerr;
    *out = json_loadb(resp->body.data, resp->body.len, JSON_DECODE_ANY, &jerr);
    if (!*out) {
        TN_LOG(TN_LOG_WARN, "%s: %s %.*s answered malformed JSON: %s at byte %d", hc->upstream,
               tn_http_method_name(req->method), path_len_for_log(req->path), req->path, jerr.text,
               jerr.position);
        rc = TN_ERR_PARSE;
    }
out:
    free(text);
    free(hdrs);
    return rc;
}

const char *tn_http_json_error_message(const json_t *doc)
{
    if (!json_is_object(doc))
        return NULL;
    json_t *err = json_object_get(doc, "error");
    if (json_is_object(err) && json_is_string(json_object_get(err, "message")))
        return json_string_value(json_object_get(err, "message"));
    if (json_is_string(err))
        return json_string_value(err);
    if (json_is_string(json_object_get(doc, "message")))
        return json_string_value(json_object_get(doc, "message"));
    if (json_is_string(json_object_get(doc, "detail")))
        return json_string_value(json_object_get(doc, "detail"));
    return NULL;
}

tn_err_t tn_http_client_json(tn_http_client_t *hc, tn_http_method_t method, const char *path,
                             const json_t *body, tn_http_response_t *resp, json_t **out)
{
    tn_http_request_t req = {.method = method, .path = path};
    return tn_http_client_json_req(hc, &req, body, resp, out);
}

tn_http_client_t *tn_http_client_openai_new(const tn_http_client_opts_t *ho, const char *url,
                                            const char *api_key, const char *endpoint, char **path,
                                            char *errbuf, size_t errlen)
{
    char *base = tn_xstrdup(url);
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        base[--bl] = '\0';
    int v1 = bl >= 3 && memcmp(base + bl - 3, "/v1", 3) == 0;
    *path = v1 ? tn_xstrdup(endpoint) : tn_xasprintf("/v1%s", endpoint);
    tn_http_client_opts_t o = *ho;
    o.base_url = base;
    o.retry_post = true;
    char *auth = NULL;
    const char *hdrs[2] = {NULL, NULL};
    if (api_key && api_key[0]) {
        auth = tn_xasprintf("Authorization: Bearer %s", api_key);
        hdrs[0] = auth;
        o.headers = hdrs;
    }
    tn_http_client_t *hc = tn_http_client_new(&o, errbuf, errlen);
    if (auth) { /* do not leave the key in freed memory */
        memset(auth, 0, strlen(auth));
        free(auth);
    }
    free(base);
    if (!hc) {
        free(*path);
        *path = NULL;
    }
    return hc;
}

/* ------------------------------------------------------------------------------------------ */
/* multipart/form-data */

static bool form_bytes_have(const void *data, size_t len, const char *needle, size_t nlen)
{
    return len >= nlen && memmem(data, len, needle, nlen) != NULL;
}

uint8_t *tn_http_form_encode(const tn_http_form_part_t *parts, size_t n, size_t *len,
                             char **content_type)
{
    TN_ASSERT((parts || n == 0) && len && content_type);
    static _Atomic uint64_t counter;
    char boundary[64];
    for (;;) {
        uint64_t r = (uint64_t)tn_clock_wall_ms() * 0x9E3779B97F4A7C15ull ^
                     (atomic_fetch_add(&counter, 1) + 1) * 0xC2B2AE3D27D4EB4Full;
        snprintf(boundary, sizeof(boundary), "----taina-%016llx%08x", (unsigned long long)r,
                 (unsigned)(uintptr_t)parts);
        bool clash = false;
        for (size_t i = 0; i < n && !clash; i++)
            clash = form_bytes_have(parts[i].data, parts[i].len, boundary, strlen(boundary));
        if (!clash)
            break;
    }
    size_t total = strlen(boundary) + 8;
    for (size_t i = 0; i < n; i++) {
        TN_ASSERT(parts[i].name && !strpbrk(parts[i].name, "\"\r\n"));
        TN_ASSERT(!parts[i].filename || !strpbrk(parts[i].filename, "\"\r\n"));
        TN_ASSERT(!parts[i].content_type || !strpbrk(parts[i].content_type, "\r\n"));
        TN_ASSERT(parts[i].data || parts[i].len == 0);
        total += strlen(boundary) + strlen(parts[i].name) + parts[i].len + 128 +
                 (parts[i].filename ? strlen(parts[i].filename) : 0) +
                 (parts[i].content_type ? strlen(parts[i].content_type) : 0);
    }
    tn_buf_t b;
    tn_buf_init(&b, total);
    for (size_t i = 0; i < n; i++) {
        const tn_http_form_part_t *p = &parts[i];
        tn_buf_addf(&b, "--%s\r\nContent-Disposition: form-data; name=\"%s\"", boundary, p->name);
        if (p->filename)
            tn_buf_addf(&b, "; filename=\"%s\"", p->filename);
        tn_buf_adds(&b, "\r\n");
        if (p->content_type)
            tn_buf_addf(&b, "Content-Type: %s\r\n", p->content_type);
        tn_buf_adds(&b, "\r\n");
        if (p->len)
            tn_buf_add(&b, p->data, p->len);
        tn_buf_adds(&b, "\r\n");
    }
    TN_ASSERT(tn_buf_addf(&b, "--%s--\r\n", boundary) == TN_OK);
    *content_type = tn_xasprintf("multipart/form-data; boundary=%s", boundary);
    return (uint8_t *)tn_buf_detach(&b, len);
}
