/* Qdrant REST client (shared/CONTRACTS.md section 1) on the common HTTP client: collections,
 * points, search, scroll, count and aliases, with Qdrant's answers mapped to tn_err_t. */
#include "taina/qdrant.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "taina/buf.h"
#include "taina/http_client.h"
#include "taina/mem.h"

#define QD_DEFAULT_TIMEOUT_MS 10000
#define QD_DEFAULT_ATTEMPTS   4
#define QD_CONNECT_TIMEOUT_MS 5000
#define QD_MAX_REQUEST        ((size_t)256 << 20) /* request body cap */
#define QD_MAX_RESPONSE       ((size_t)64 << 20)  /* answer cap (scroll pages with vectors) */
#define QD_NAME_MAX           255                 /* Qdrant's own limit on collection names */
#define QD_DISTANCE           "Cosine"
#define QD_ALIAS_TRIES        3

struct tn_qdrant {
    tn_http_client_t *hc;
};

/* The payload fields every collection gets a keyword index on. */
static const char *const qd_indexed_fields[] = {"tenant_id", "ticket_id", "source"};

/* ------------------------------------------------------------------------------------------ */
/* Errors and names */

static void qd_err(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void qd_err(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (!errbuf || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

static void qd_err_clear(char *errbuf, size_t errlen)
{
    if (errbuf && errlen > 0)
        errbuf[0] = '\0';
}

/*
 * Names go into URL paths unencoded, so only [A-Za-z0-9._-] is accepted (what our services use;
 * Qdrant itself allows more). "." and ".." would be path segments, not names.
 */
static bool qd_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > QD_NAME_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

static bool qd_check_name(const char *s, const char *what, char *errbuf, size_t errlen)
{
    if (qd_name_ok(s))
        return true;
    qd_err(errbuf, errlen, "qdrant: bad %s name \"%.64s\": use 1-%d characters of [A-Za-z0-9._-]",
           what, s ? s : "(null)", QD_NAME_MAX);
    return false;
}

/* Copy @p s (at most @p n bytes) into @p out as one line: control characters become spaces and
 * trailing blanks go. */
static void qd_one_line(char *out, size_t outlen, const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < outlen; i++) {
        unsigned char c = (unsigned char)s[i];
        out[k++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    while (k > 0 && out[k - 1] == ' ')
        k--;
    out[k] = '\0';
}

/* ------------------------------------------------------------------------------------------ */
/* Request bodies: a tn_buf with a sticky error, so builders need not check every append. */

typedef struct qd_body {
    tn_buf_t b;
    tn_err_t rc;
} qd_body_t;

static void body_init(qd_body_t *w)
{
    tn_buf_init(&w->b, QD_MAX_REQUEST);
    w->rc = TN_OK;
}

static void body_add(qd_body_t *w, const char *s, size_t n)
{
    if (w->rc == TN_OK)
        w->rc = tn_buf_add(&w->b, s, n);
}

static void body_adds(qd_body_t *w, const char *s)
{
    body_add(w, s, strlen(s));
}

static void body_str(qd_body_t *w, const char *s)
{
    if (w->rc == TN_OK)
        w->rc = tn_buf_add_json_str(&w->b, s);
}

static void body_json(qd_body_t *w, const json_t *v)
{
    if (w->rc != TN_OK)
        return;
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s) {
        w->rc = TN_ERR_INVALID;
        return;
    }
    body_adds(w, s);
    free(s);
}

/* ,"filter":{...} when there is a filter. */
static void body_filter(qd_body_t *w, const json_t *filter)
{
    if (filter) {
        body_adds(w, ",\"filter\":");
        body_json(w, filter);
    }
}

/* "%.9g" reads back as the same float (9 significant digits suffice for binary32). snprintf costs
 * some 400 ns a value, most of a batch's CPU time (64 x 384 values), so a finite float whose
 * decimal exponent is in [-36, 8] is printed here with integer arithmetic instead, byte for byte
 * what glibc's "%.9g" prints: x = m * 2^e2 exactly, q = x * 10^(8 - E) as a 64-bit (128-bit below
 * 1e-8) integer quotient and remainder, rounded half to even (like printf, in the default rounding
 * mode). Anything else (subnormals below 1e-36, |x| >= 1e9, NaN, infinities) goes to snprintf.
 * @returns the length written to out (at most 16 bytes), 0 to fall back. */
__extension__ typedef unsigned __int128 qd_u128;

static size_t qd_format_float(float f, char *out)
{
    /* clang-format off */
    static const uint64_t pow5[28] = {
        1ull, 5ull, 25ull, 125ull,
        625ull, 3125ull, 15625ull, 78125ull,
        390625ull, 1953125ull, 9765625ull, 48828125ull,
        244140625ull, 1220703125ull, 6103515625ull, 30517578125ull,
        152587890625ull, 762939453125ull, 3814697265625ull, 19073486328125ull,
        95367431640625ull, 476837158203125ull, 2384185791015625ull, 11920928955078125ull,
        59604644775390625ull, 298023223876953125ull, 1490116119384765625ull, 7450580596923828125ull,
    };
    /* clang-format on */
    uint32_t bits;
    memcpy(&bits, &f, sizeof(bits));
    uint32_t be = (bits >> 23) & 0xFF, man = bits & 0x7FFFFF;
    if (be == 0xFF)
        return 0;
    char *p = out;
    if (bits >> 31)
        *p++ = '-';
    if (be == 0 && man == 0) {
        *p++ = '0';
        return (size_t)(p - out);
    }
    uint64_t m = be ? (man | (1u << 23)) : man;
    int e2 = be ? (int)be - 150 : -149;
    int lg2 = e2 + 63 - __builtin_clzll(m); /* floor(log2 |x|) */
    /* floor(lg2 * log10(2)), give or take one: corrected below */
    int E = lg2 >= 0 ? (lg2 * 1233) >> 12 : -((-lg2 * 1233 + 4095) >> 12);
    uint64_t q;
    bool up;
    for (int tries = 0;; tries++) {
        int p10 = 8 - E;
        if (p10 < 0 || p10 > 44 || tries > 3)
            return 0;
        int sh = p10 + e2; /* x * 10^p10 = m * 5^p10 * 2^sh */
        if (p10 <= 16) {
            /* |x| >= 1e-8, nearly every component of a unit vector: m * 5^p10 < 2^24 * 2^37.2
             * fits 64 bits, and 64-bit shifts and compares cost a fraction of 128-bit ones. */
            uint64_t num = m * pow5[p10];
            if (sh >= 0) {
                q = sh >= 40 || (num >> (40 - sh)) != 0 ? UINT64_MAX : num << sh;
                up = false;
            } else if (-sh >= 64) {
                q = 0;
                up = false;
            } else {
                uint64_t qq = num >> -sh, rem = num & ((UINT64_C(1) << -sh) - 1);
                uint64_t half = UINT64_C(1) << (-sh - 1);
                q = qq > 4000000000u ? UINT64_MAX : qq;
                up = rem > half || (rem == half && (q & 1));
            }
        } else {
            qd_u128 num =
                p10 < 28 ? (qd_u128)m * pow5[p10] : (qd_u128)m * pow5[27] * pow5[p10 - 27];
            if (sh >= 0) {                               /* an integer: no rounding */
                if (sh >= 40 || (num >> (40 - sh)) != 0) /* q >= 2^40 > 10^9 */
                    q = UINT64_MAX;
                else
                    q = (uint64_t)num << sh;
                up = false;
            } else if (-sh >= 128) {
                q = 0;
                up = false;
            } else {
                qd_u128 qq = num >> -sh;
                qd_u128 rem = num - (qq << -sh), half = (qd_u128)1 << (-sh - 1);
                q = qq > 4000000000u ? UINT64_MAX : (uint64_t)qq;
                up = rem > half || (rem == half && (q & 1));
            }
        }
        if (q >= 1000000000u)
            E++;
        else if (q < 100000000u)
            E--;
        else
            break;
    }
    if (up && ++q == 1000000000u) {
        q = 100000000u;
        E++;
    }
    /* The nine digits: the first alone, then four pairs from a table. */
    static const char pairs[] = "00010203040506070809101112131415161718192021222324"
                                "25262728293031323334353637383940414243444546474849"
                                "50515253545556575859606162636465666768697071727374"
                                "75767778798081828384858687888990919293949596979899";
    char d[9];
    uint32_t r = (uint32_t)q;
    d[0] = (char)('0' + r / 100000000u);
    r %= 100000000u;
    uint32_t hi = r / 10000u, lo = r % 10000u;
    memcpy(d + 1, pairs + 2 * (hi / 100u), 2);
    memcpy(d + 3, pairs + 2 * (hi % 100u), 2);
    memcpy(d + 5, pairs + 2 * (lo / 100u), 2);
    memcpy(d + 7, pairs + 2 * (lo % 100u), 2);
    int nd = 9;
    while (nd > 1 && d[nd - 1] == '0')
        nd--;
    if (E < -4 || E >= 9) {
        *p++ = d[0];
        if (nd > 1) {
            *p++ = '.';
            memcpy(p, d + 1, (size_t)nd - 1);
            p += nd - 1;
        }
        *p++ = 'e';
        *p++ = E < 0 ? '-' : '+';
        int a = E < 0 ? -E : E;
        *p++ = (char)('0' + a / 10);
        *p++ = (char)('0' + a % 10);
    } else if (E >= 0) {
        memcpy(p, d, (size_t)E + 1);
        p += E + 1;
        if (nd > E + 1) {
            *p++ = '.';
            memcpy(p, d + E + 1, (size_t)(nd - E - 1));
            p += nd - E - 1;
        }
    } else {
        *p++ = '0';
        *p++ = '.';
        for (int i = -1; i > E; i--)
            *p++ = '0';
        memcpy(p, d, (size_t)nd);
        p += nd;
    }
    return (size_t)(p - out);
}

static void body_floats(qd_body_t *w, const float *v, size_t n)
{
    char tmp[4096];
    size_t k = 0;
    tmp[k++] = '[';
    for (size_t i = 0; i < n && w->rc == TN_OK; i++) {
        if (k > sizeof(tmp) - 40) {
            body_add(w, tmp, k);
            k = 0;
        }
        if (i)
            tmp[k++] = ',';
        size_t l = qd_format_float(v[i], tmp + k);
        if (l == 0)
            l = (size_t)snprintf(tmp + k, 32, "%.9g", (double)v[i]);
        k += l;
    }
    tmp[k++] = ']';
    body_add(w, tmp, k);
}

/* An all-digit id that fits in 64 bits is a Qdrant integer id; anything else goes as a string
 * (a UUID). Qdrant refuses "123" as a string id. */
static bool qd_id_is_integer(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 20 || (n > 1 && id[0] == '0'))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (id[i] < '0' || id[i] > '9')
            return false;
    }
    return n < 20 || strcmp(id, "18446744073709551615") <= 0;
}

static void body_id(qd_body_t *w, const char *id)
{
    if (qd_id_is_integer(id))
        body_adds(w, id);
    else
        body_str(w, id);
}

static bool qd_floats_ok(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i]))
            return false;
    }
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* One call */

typedef struct qd_call {
    tn_http_method_t method;
    char *path;       /* owned */
    const char *body; /* borrowed; NULL for none */
    size_t body_len;
    unsigned flags; /* TN_HTTP_F_* */
    bool raw;       /* a 2xx answer is not parsed (health endpoints answer plain text) */
    long status;    /* HTTP status of the answer, 0 when none arrived */
    json_t *doc;    /* owned: the parsed 2xx answer */
    json_t *result; /* borrowed from doc: its "result" */
    char msg[256];  /* Qdrant's message for a non-2xx answer: status.error or the plain text */
} qd_call_t;

static void qd_call_init(qd_call_t *c, tn_http_method_t method, char *path)
{
    memset(c, 0, sizeof(*c));
    c->method = method;
    c->path = path; /* owned by the call from here on */
}

static void qd_call_body(qd_call_t *c, const qd_body_t *w)
{
    c->body = w->b.data ? w->b.data : "";
    c->body_len = w->b.len;
}

static void qd_call_cleanup(qd_call_t *c)
{
    TN_FREE(c->path);
    json_decref(c->doc);
    c->doc = NULL;
    c->result = NULL;
}

/* Qdrant's message from an error answer: the envelope's status.error, else the body as text (401
 * and 403 come as plain text). */
static void qd_error_message(const tn_http_response_t *resp, char *msg, size_t len)
{
    msg[0] = '\0';
    if (resp->body.len == 0)
        return;
    json_t *doc = json_loadb(resp->body.data, resp->body.len, 0, NULL);
    const char *e = json_string_value(json_object_get(json_object_get(doc, "status"), "error"));
    if (e)
        qd_one_line(msg, len, e, strlen(e));
    else
        qd_one_line(msg, len, resp->body.data, TN_MIN(resp->body.len, (size_t)200));
    json_decref(doc);
}

/*
 * Perform @p c. TN_OK: a 2xx answer in the Qdrant envelope (c->result set unless raw). Otherwise
 * the mapped error with one line in errbuf; c->status and c->msg tell callers that treat some
 * answers (404, 409) as expected.
 */
static tn_err_t qd_do(tn_qdrant_t *q, qd_call_t *c, char *errbuf, size_t errlen)
{
    static const char *const json_hdrs[] = {"Accept: application/json", NULL};
    const char *m = tn_http_method_name(c->method);
    tn_http_response_t resp;
    tn_http_response_init(&resp);
    tn_http_request_t req = {.method = c->method,
                             .path = c->path,
                             .headers = c->raw ? NULL : json_hdrs,
                             .body = c->body,
                             .body_len = c->body_len,
                             .content_type = c->body ? "application/json" : NULL,
                             .flags = c->flags};
    tn_err_t rc = tn_http_client_request(q->hc, &req, &resp);
    c->status = resp.status;
    if (resp.status >= 300 || (rc != TN_OK && resp.status > 0))
        qd_error_message(&resp, c->msg, sizeof(c->msg));

    if (rc == TN_ERR_TOO_LARGE || rc == TN_ERR_INVALID) {
        qd_err(errbuf, errlen, "qdrant %s %s: %s", m, c->path,
               rc == TN_ERR_TOO_LARGE ? "answer over the size cap"
                                      : "request refused by the client");
        goto out;
    }
    if (rc != TN_OK) {
        /* Timeouts, connection failures and 429/5xx after the retries: all retriable. */
        if (resp.status > 0)
            qd_err(errbuf, errlen, "qdrant %s %s: HTTP %ld after %d attempts: %s", m, c->path,
                   resp.status, resp.attempts, c->msg);
        else
            qd_err(errbuf, errlen, "qdrant %s %s: no answer after %d attempts (%s: %s)", m, c->path,
                   resp.attempts, tn_err_str(rc), resp.error[0] ? resp.error : "connection failed");
        rc = TN_ERR_UNAVAILABLE;
        goto out;
    }
    if (resp.status < 200 || resp.status > 299) {
        if (resp.status == 404)
            rc = TN_ERR_NOT_FOUND;
        else if (resp.status == 408 || resp.status == 429 || resp.status >= 500)
            rc = TN_ERR_UNAVAILABLE; /* Qdrant's own timeout (408) is worth a retry too */
        else
            rc = TN_ERR_UPSTREAM;
        qd_err(errbuf, errlen, "qdrant %s %s: HTTP %ld: %s", m, c->path, resp.status,
               c->msg[0] ? c->msg : "(no message)");
        goto out;
    }
    if (c->raw)
        goto out;

    json_error_t jerr;
    c->doc = json_loadb(resp.body.data ? resp.body.data : "", resp.body.len, 0, &jerr);
    if (!c->doc) {
        rc = TN_ERR_PARSE;
        qd_err(errbuf, errlen, "qdrant %s %s: HTTP %ld answer is not JSON: %s", m, c->path,
               resp.status, jerr.text);
        goto out;
    }
    c->result = json_object_get(c->doc, "result");
    if (!c->result) {
        rc = TN_ERR_PARSE;
        qd_err(errbuf, errlen, "qdrant %s %s: HTTP %ld answer has no \"result\"", m, c->path,
               resp.status);
        goto out;
    }
out:
    tn_http_response_cleanup(&resp);
    return rc;
}

/* Send the body built in @p w with call @p c (a @p what on @p collection, for the message). */
static tn_err_t qd_send(tn_qdrant_t *q, qd_call_t *c, const qd_body_t *w, const char *what,
                        const char *collection, char *errbuf, size_t errlen)
{
    if (w->rc != TN_OK) {
        qd_err(errbuf, errlen, "qdrant: %s on %s: request body too large", what, collection);
        return w->rc;
    }
    qd_call_body(c, w);
    return qd_do(q, c, errbuf, errlen);
}

static tn_err_t qd_parse_error(const qd_call_t *c, const char *what, char *errbuf, size_t errlen)
{
    qd_err(errbuf, errlen, "qdrant %s %s: unexpected answer: %s", tn_http_method_name(c->method),
           c->path, what);
    return TN_ERR_PARSE;
}

/* An UpdateResult {"operation_id", "status"}: "completed" (wait=true) or "acknowledged". */
static tn_err_t qd_check_update(const qd_call_t *c, char *errbuf, size_t errlen)
{
    const char *st = json_string_value(json_object_get(c->result, "status"));
    if (!st)
        return qd_parse_error(c, "result.status missing", errbuf, errlen);
    if (strcmp(st, "completed") == 0 || strcmp(st, "acknowledged") == 0)
        return TN_OK;
    if (strcmp(st, "wait_timeout") == 0) {
        qd_err(errbuf, errlen,
               "qdrant %s %s: the operation did not complete in time (wait_timeout)",
               tn_http_method_name(c->method), c->path);
        return TN_ERR_UNAVAILABLE;
    }
    qd_err(errbuf, errlen, "qdrant %s %s: unexpected answer: result.status \"%.40s\"",
           tn_http_method_name(c->method), c->path, st);
    return TN_ERR_PARSE;
}

/* Send @p w (already built) as @p method to @p path (owned, freed here) and, when @p update,
 * check the UpdateResult. */
static tn_err_t qd_send_update(tn_qdrant_t *q, tn_http_method_t method, char *path, qd_body_t *w,
                               char *errbuf, size_t errlen)
{
    qd_call_t c;
    qd_call_init(&c, method, path);
    tn_err_t rc = w->rc;
    if (rc != TN_OK) {
        qd_err(errbuf, errlen, "qdrant %s %s: request body %s", tn_http_method_name(method), path,
               rc == TN_ERR_TOO_LARGE ? "over the size cap" : "cannot be encoded");
        goto out;
    }
    qd_call_body(&c, w);
    rc = qd_do(q, &c, errbuf, errlen);
    if (rc == TN_OK)
        rc = qd_check_update(&c, errbuf, errlen);
out:
    qd_call_cleanup(&c);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Client */

tn_qdrant_t *tn_qdrant_new(const tn_qdrant_opts_t *o, char *errbuf, size_t errlen)
{
    TN_ASSERT(o);
    tn_qdrant_t *q = NULL;
    char *hdr = NULL;
    if (!o->url || !o->url[0]) {
        qd_err(errbuf, errlen, "qdrant: no URL given");
        goto out;
    }
    if (o->timeout_ms < 0 || o->max_attempts < 0) {
        qd_err(errbuf, errlen, "qdrant: timeout_ms and max_attempts must not be negative");
        goto out;
    }
    if (o->api_key && o->api_key[0]) {
        if (strpbrk(o->api_key, "\r\n")) {
            qd_err(errbuf, errlen, "qdrant: the API key contains a line break");
            goto out;
        }
        hdr = tn_xasprintf("api-key: %s", o->api_key);
    }
    const char *const hdrs[] = {hdr, NULL};
    int64_t t = o->timeout_ms > 0 ? o->timeout_ms : QD_DEFAULT_TIMEOUT_MS;
    tn_http_client_opts_t ho = tn_http_client_opts_default();
    ho.upstream = "qdrant";
    ho.base_url = o->url;
    ho.headers = hdr ? hdrs : NULL;
    ho.connect_timeout_ms = TN_MIN(t, (int64_t)QD_CONNECT_TIMEOUT_MS);
    ho.timeout_ms = t;
    ho.deadline_ms = t;
    ho.max_attempts = o->max_attempts > 0 ? o->max_attempts : QD_DEFAULT_ATTEMPTS;
    ho.max_response_bytes = o->max_response_bytes ? o->max_response_bytes : QD_MAX_RESPONSE;
    ho.metrics = o->metrics;
    ho.retry_post = true; /* point ids are deterministic: every write may be replayed */
    tn_http_client_t *hc = tn_http_client_new(&ho, errbuf, errlen);
    if (!hc)
        goto out;
    q = tn_xcalloc(1, sizeof(*q));
    q->hc = hc;
out:
    free(hdr);
    return q;
}

void tn_qdrant_destroy(tn_qdrant_t *q)
{
    if (!q)
        return;
    tn_http_client_destroy(q->hc);
    free(q);
}

/* ------------------------------------------------------------------------------------------ */
/* Aliases */

static tn_err_t qd_alias_lookup(tn_qdrant_t *q, const char *alias, char *out, size_t outlen,
                                char *errbuf, size_t errlen)
{
    qd_call_t c;
    qd_call_init(&c, TN_HTTP_GET, tn_xstrdup("/aliases"));
    tn_err_t rc = qd_do(q, &c, errbuf, errlen);
    if (rc != TN_OK)
        goto out;
    json_t *list = json_object_get(c.result, "aliases");
    if (!json_is_array(list)) {
        rc = qd_parse_error(&c, "result.aliases is not an array", errbuf, errlen);
        goto out;
    }
    size_t i;
    json_t *a;
    json_array_foreach(list, i, a)
    {
        const char *name = json_string_value(json_object_get(a, "alias_name"));
        const char *coll = json_string_value(json_object_get(a, "collection_name"));
        if (!name || !coll) {
            rc = qd_parse_error(&c, "an alias without alias_name or collection_name", errbuf,
                                errlen);
            goto out;
        }
        if (strcmp(name, alias) != 0)
            continue;
        if (strlen(coll) >= outlen) {
            qd_err(errbuf, errlen, "qdrant: alias %s points at a collection name too long (%zu)",
                   alias, strlen(coll));
            rc = TN_ERR_TOO_LARGE;
            goto out;
        }
        memcpy(out, coll, strlen(coll) + 1);
        rc = TN_OK;
        goto out;
    }
    qd_err(errbuf, errlen, "qdrant: no alias %s", alias);
    rc = TN_ERR_NOT_FOUND;
out:
    qd_call_cleanup(&c);
    return rc;
}

/* POST /collections/aliases with the actions in @p w. */
static tn_err_t qd_alias_actions(tn_qdrant_t *q, qd_body_t *w, qd_call_t *c, char *errbuf,
                                 size_t errlen)
{
    qd_call_init(c, TN_HTTP_POST, tn_xstrdup("/collections/aliases"));
    if (w->rc != TN_OK) {
        qd_err(errbuf, errlen, "qdrant POST /collections/aliases: request body over the size cap");
        return w->rc;
    }
    qd_call_body(c, w);
    return qd_do(q, c, errbuf, errlen);
}

/* Did Qdrant refuse the actions because an alias to delete does not exist? Qdrant answers 404
 * ("Not found: Alias ... does not exists!"); accept a 400 naming the alias as well. */
static bool qd_alias_missing(const qd_call_t *c)
{
    if (c->status == 404)
        return true;
    return c->status == 400 && strstr(c->msg, "lias") &&
           (strstr(c->msg, "not") || strstr(c->msg, "n't"));
}

static void body_delete_alias(qd_body_t *w, const char *alias)
{
    body_adds(w, "{\"delete_alias\":{\"alias_name\":");
    body_str(w, alias);
    body_adds(w, "}}");
}

static void body_create_alias(qd_body_t *w, const char *alias, const char *collection)
{
    body_adds(w, "{\"create_alias\":{\"collection_name\":");
    body_str(w, collection);
    body_adds(w, ",\"alias_name\":");
    body_str(w, alias);
    body_adds(w, "}}");
}

tn_err_t tn_qdrant_alias_switch(tn_qdrant_t *q, const char *alias, const char *collection,
                                char *errbuf, size_t errlen)
{
    TN_ASSERT(q);
    if (!qd_check_name(alias, "alias", errbuf, errlen) ||
        !qd_check_name(collection, "collection", errbuf, errlen))
        return TN_ERR_INVALID;
    tn_err_t rc = TN_ERR_UPSTREAM;
    /* Atomic delete + create; when the alias does not exist yet, create alone. Another replica
     * may create it in between (409): then the atomic switch again. */
    for (int i = 0; i < QD_ALIAS_TRIES; i++) {
        qd_body_t w;
        qd_call_t c;
        body_init(&w);
        body_adds(&w, "{\"actions\":[");
        body_delete_alias(&w, alias);
        body_adds(&w, ",");
        body_create_alias(&w, alias, collection);
        body_adds(&w, "]}");
        rc = qd_alias_actions(q, &w, &c, errbuf, errlen);
        bool missing = rc != TN_OK && qd_alias_missing(&c);
        qd_call_cleanup(&c);
        tn_buf_cleanup(&w.b);
        if (!missing)
            break;

        body_init(&w);
        body_adds(&w, "{\"actions\":[");
        body_create_alias(&w, alias, collection);
        body_adds(&w, "]}");
        rc = qd_alias_actions(q, &w, &c, errbuf, errlen);
        bool raced = rc != TN_OK && (c.status == 409 || strstr(c.msg, "already exists"));
        qd_call_cleanup(&c);
        tn_buf_cleanup(&w.b);
        if (!raced)
            break;
    }
    if (rc == TN_OK)
        qd_err_clear(errbuf, errlen);
    return rc;
}

tn_err_t tn_qdrant_alias_delete(tn_qdrant_t *q, const char *alias, char *errbuf, size_t errlen)
{
    TN_ASSERT(q);
    if (!qd_check_name(alias, "alias", errbuf, errlen))
        return TN_ERR_INVALID;
    qd_body_t w;
    qd_call_t c;
    body_init(&w);
    body_adds(&w, "{\"actions\":[");
    body_delete_alias(&w, alias);
    body_adds(&w, "]}");
    tn_err_t rc = qd_alias_actions(q, &w, &c, errbuf, errlen);
    if (rc != TN_OK && qd_alias_missing(&c)) {
        rc = TN_OK;
        qd_err_clear(errbuf, errlen);
    }
    qd_call_cleanup(&c);
    tn_buf_cleanup(&w.b);
    return rc;
}

tn_err_t tn_qdrant_alias_target(tn_qdrant_t *q, const char *alias, char *out, size_t outlen,
                                char *errbuf, size_t errlen)
{
    TN_ASSERT(q && out && outlen > 0);
    out[0] = '\0';
    if (!qd_check_name(alias, "alias", errbuf, errlen))
        return TN_ERR_INVALID;
    return qd_alias_lookup(q, alias, out, outlen, errbuf, errlen);
}

/* ------------------------------------------------------------------------------------------ */
/* Collections */

static tn_err_t qd_create_index(tn_qdrant_t *q, const char *collection, const char *field,
                                char *errbuf, size_t errlen)
{
    qd_body_t w;
    body_init(&w);
    body_adds(&w, "{\"field_name\":");
    body_str(&w, field);
    body_adds(&w, ",\"field_schema\":\"keyword\"}");
    tn_err_t rc =
        qd_send_update(q, TN_HTTP_PUT, tn_xasprintf("/collections/%s/index?wait=true", collection),
                       &w, errbuf, errlen);
    tn_buf_cleanup(&w.b);
    return rc;
}

/* Create the keyword indexes @p schema (the collection's payload_schema; NULL: unknown) lacks.
 * Index creation is idempotent in Qdrant, so a replica that finds them missing (the creator
 * crashed in between) simply makes them. */
static tn_err_t qd_ensure_indexes(tn_qdrant_t *q, const char *collection, const json_t *schema,
                                  char *errbuf, size_t errlen)
{
    for (size_t i = 0; i < TN_ARRAY_LEN(qd_indexed_fields); i++) {
        if (schema && json_object_get(schema, qd_indexed_fields[i]))
            continue;
        tn_err_t rc = qd_create_index(q, collection, qd_indexed_fields[i], errbuf, errlen);
        if (rc != TN_OK)
            return rc;
    }
    return TN_OK;
}

/* Check a CollectionInfo (c->result) of @p coll, reached through @p alias (NULL: directly). */
static tn_err_t qd_check_info(tn_qdrant_t *q, const qd_call_t *c, const char *coll,
                              const char *alias, size_t dims, char *errbuf, size_t errlen)
{
    char who[600];
    if (alias)
        snprintf(who, sizeof(who), "collection %s (alias %s)", coll, alias);
    else
        snprintf(who, sizeof(who), "collection %s", coll);
    json_t *vectors =
        json_object_get(json_object_get(json_object_get(c->result, "config"), "params"), "vectors");
    if (!json_is_object(vectors))
        return qd_parse_error(c, "result.config.params.vectors is not an object", errbuf, errlen);
    const json_t *size = json_object_get(vectors, "size");
    const json_t *dist = json_object_get(vectors, "distance");
    if (!size && !dist) {
        /* A map of named vectors: this service writes one unnamed vector. */
        char names[200] = "";
        size_t k = 0;
        const char *key;
        json_t *v;
        json_object_foreach(vectors, key, v)
        {
            int n = snprintf(names + k, sizeof(names) - k, "%s%s", k ? ", " : "", key);
            if (n < 0 || (size_t)n >= sizeof(names) - k)
                break;
            k += (size_t)n;
        }
        qd_err(errbuf, errlen,
               "%s has named vectors (%s); this service needs one unnamed vector of size %zu and "
               "distance %s",
               who, names, dims, QD_DISTANCE);
        return TN_ERR_CONFIG;
    }
    if (!json_is_integer(size) || !json_is_string(dist))
        return qd_parse_error(c, "result.config.params.vectors without size or distance", errbuf,
                              errlen);
    json_int_t have = json_integer_value(size);
    const char *have_dist = json_string_value(dist);
    if (have < 0 || (uint64_t)have != (uint64_t)dims || strcmp(have_dist, QD_DISTANCE) != 0) {
        qd_err(errbuf, errlen,
               "%s has vectors of size %" JSON_INTEGER_FORMAT
               " and distance %.32s; this service needs %zu and %s",
               who, have, have_dist, dims, QD_DISTANCE);
        return TN_ERR_CONFIG;
    }
    return qd_ensure_indexes(q, coll, json_object_get(c->result, "payload_schema"), errbuf, errlen);
}

static tn_err_t qd_info(tn_qdrant_t *q, qd_call_t *c, const char *coll, char *errbuf, size_t errlen)
{
    qd_call_init(c, TN_HTTP_GET, tn_xasprintf("/collections/%s", coll));
    return qd_do(q, c, errbuf, errlen);
}

tn_err_t tn_qdrant_ensure_collection(tn_qdrant_t *q, const char *name, size_t dims, char *errbuf,
                                     size_t errlen)
{
    TN_ASSERT(q);
    if (!qd_check_name(name, "collection", errbuf, errlen))
        return TN_ERR_INVALID;
    if (dims == 0) {
        qd_err(errbuf, errlen, "qdrant: collection %s: vector size must be at least 1", name);
        return TN_ERR_INVALID;
    }
    qd_call_t c;
    qd_body_t w;
    char target[QD_NAME_MAX + 1];
    body_init(&w);

    /* Qdrant resolves aliases in GET /collections/{name}; should a server not, a 404 is checked
     * against the alias list before creating anything under that name. */
    tn_err_t rc = qd_info(q, &c, name, errbuf, errlen);
    if (rc == TN_OK) {
        rc = qd_check_info(q, &c, name, NULL, dims, errbuf, errlen);
        goto out;
    }
    if (rc != TN_ERR_NOT_FOUND)
        goto out;
    qd_call_cleanup(&c);

    rc = qd_alias_lookup(q, name, target, sizeof(target), errbuf, errlen);
    if (rc == TN_OK) {
        rc = qd_info(q, &c, target, errbuf, errlen);
        if (rc == TN_OK)
            rc = qd_check_info(q, &c, target, name, dims, errbuf, errlen);
        goto out;
    }
    if (rc != TN_ERR_NOT_FOUND)
        goto out;

    char tmp[96];
    int k = snprintf(tmp, sizeof(tmp), "{\"vectors\":{\"size\":%zu,\"distance\":\"%s\"}}", dims,
                     QD_DISTANCE);
    body_add(&w, tmp, (size_t)k);
    qd_call_init(&c, TN_HTTP_PUT, tn_xasprintf("/collections/%s", name));
    qd_call_body(&c, &w);
    rc = qd_do(q, &c, errbuf, errlen);
    if (rc == TN_OK) {
        rc = qd_ensure_indexes(q, name, NULL, errbuf, errlen);
        goto out;
    }
    if (c.status != 409)
        goto out;
    /* Another replica created it meanwhile: check what it made. */
    qd_call_cleanup(&c);
    rc = qd_info(q, &c, name, errbuf, errlen);
    if (rc == TN_OK)
        rc = qd_check_info(q, &c, name, NULL, dims, errbuf, errlen);
out:
    qd_call_cleanup(&c);
    tn_buf_cleanup(&w.b);
    if (rc == TN_OK)
        qd_err_clear(errbuf, errlen);
    return rc;
}

tn_err_t tn_qdrant_delete_collection(tn_qdrant_t *q, const char *name, char *errbuf, size_t errlen)
{
    TN_ASSERT(q);
    if (!qd_check_name(name, "collection", errbuf, errlen))
        return TN_ERR_INVALID;
    qd_call_t c;
    qd_call_init(&c, TN_HTTP_DELETE, tn_xasprintf("/collections/%s", name));
    tn_err_t rc = qd_do(q, &c, errbuf, errlen);
    /* result false (it did not exist) is success too; so is a 404 from an older server. */
    if (rc == TN_ERR_NOT_FOUND)
        rc = TN_OK;
    if (rc == TN_OK)
        qd_err_clear(errbuf, errlen);
    qd_call_cleanup(&c);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Points */

tn_err_t tn_qdrant_upsert(tn_qdrant_t *q, const char *collection, const tn_qdrant_point_t *pts,
                          size_t n, char *errbuf, size_t errlen)
{
    TN_ASSERT(q && (pts || n == 0));
    if (!qd_check_name(collection, "collection", errbuf, errlen))
        return TN_ERR_INVALID;
    if (n == 0)
        return TN_OK;
    for (size_t i = 0; i < n; i++) {
        const tn_qdrant_point_t *p = &pts[i];
        const char *why = NULL;
        if (!p->id || !p->id[0])
            why = "has no id";
        else if (!p->vector || p->dims == 0)
            why = "has no vector";
        else if (!qd_floats_ok(p->vector, p->dims))
            why = "has a vector value that is NaN or infinite";
        else if (p->payload && !json_is_object(p->payload))
            why = "has a payload that is not an object";
        else if (!p->payload && p->payload_json &&
                 p->payload_json[strspn(p->payload_json, " \t\r\n")] != '{')
            why = "has a payload that is not an object";
        if (why) {
            qd_err(errbuf, errlen, "qdrant: upsert to %s: point %zu (%.48s) %s", collection, i,
                   p->id ? p->id : "", why);
            return TN_ERR_INVALID;
        }
    }
    qd_body_t w;
    body_init(&w);
    body_adds(&w, "{\"points\":[");
    for (size_t i = 0; i < n; i++) {
        body_adds(&w, i ? ",{\"id\":" : "{\"id\":");
        body_id(&w, pts[i].id);
        body_adds(&w, ",\"vector\":");
        body_floats(&w, pts[i].vector, pts[i].dims);
        if (pts[i].payload) {
            body_adds(&w, ",\"payload\":");
            body_json(&w, pts[i].payload);
        } else if (pts[i].payload_json) {
            body_adds(&w, ",\"payload\":");
            body_adds(&w, pts[i].payload_json);
        }
        body_adds(&w, "}");
    }
    body_adds(&w, "]}");
    tn_err_t rc =
        qd_send_update(q, TN_HTTP_PUT, tn_xasprintf("/collections/%s/points?wait=true", collection),
                       &w, errbuf, errlen);
    tn_buf_cleanup(&w.b);
    if (rc == TN_OK)
        qd_err_clear(errbuf, errlen);
    return rc;
}

tn_err_t tn_qdrant_delete_filter(tn_qdrant_t *q, const char *collection, const json_t *filter,
                                 char *errbuf, size_t errlen)
{
    TN_ASSERT(q);
    if (!qd_check_name(collection, "collection", errbuf, errlen))
        return TN_ERR_INVALID;
    if (!json_is_object(filter)) {
        qd_err(errbuf, errlen, "qdrant: delete from %s: the filter must be an object", collection);
        return TN_ERR_INVALID;
    }
    qd_body_t w;
    body_init(&w);
    body_adds(&w, "{\"filter\":");
    body_json(&w, filter);
    body_adds(&w, "}");
    tn_err_t rc = qd_send_update(
        q, TN_HTTP_POST, tn_xasprintf("/collections/%s/points/delete?wait=true", collection), &w,
        errbuf, errlen);
    tn_buf_cleanup(&w.b);
    if (rc == TN_OK)
        qd_err_clear(errbuf, errlen);
    return rc;
}

tn_err_t tn_qdrant_delete_ids(tn_qdrant_t *q, const char *collection, const char *const *ids,
                              size_t n, char *errbuf, size_t errlen)
{
    TN_ASSERT(q && (ids || n == 0));
    if (!qd_check_name(collection, "collection", errbuf, errlen))
        return TN_ERR_INVALID;
    if (n == 0)
        return TN_OK;
    qd_body_t w;
    body_init(&w);
    body_adds(&w, "{\"points\":[");
    for (size_t i = 0; i < n; i++) {
        if (!ids[i] || !ids[i][0]) {
            tn_buf_cleanup(&w.b);
            qd_err(errbuf, errlen, "qdrant: delete from %s: id %zu is empty", collection, i);
            return TN_ERR_INVALID;
        }
        if (i)
            body_adds(&w, ",");
        body_id(&w, ids[i]);
    }
    body_adds(&w, "]}");
    tn_err_t rc = qd_send_update(
        q, TN_HTTP_POST, tn_xasprintf("/collections/%s/points/delete?wait=true", collection), &w,
        errbuf, errlen);
    tn_buf_cleanup(&w.b);
    if (rc == TN_OK)
        qd_err_clear(errbuf, errlen);
    return rc;
}

/* A point id from an answer as text: an unsigned integer in decimal, or the UUID string. */
static bool qd_id_text(const json_t *id, char *out, size_t outlen)
{
    if (json_is_integer(id)) {
        json_int_t v = json_integer_value(id);
        if (v < 0)
            return false;
        snprintf(out, outlen, "%" PRIu64, (uint64_t)v);
        return true;
    }
    const char *s = json_string_value(id);
    if (!s || !s[0] || strlen(s) >= outlen)
        return false;
    memcpy(out, s, strlen(s) + 1);
    return true;
}

/* Search, scroll and count bodies share the optional filter. */
static bool qd_filter_ok(const json_t *filter, const char *op, const char *collection, char *errbuf,
                         size_t errlen)
{
    if (!filter || json_is_object(filter))
        return true;
    qd_err(errbuf, errlen, "qdrant: %s on %s: the filter must be an object", op, collection);
    return false;
}

tn_err_t tn_qdrant_search(tn_qdrant_t *q, const char *collection, const float *vector, size_t dims,
                          const json_t *filter, size_t limit, double score_threshold,
                          tn_qdrant_hit_t **hits, size_t *n, char *errbuf, size_t errlen)
{
    TN_ASSERT(q && hits && n);
    *hits = NULL;
    *n = 0;
    if (!qd_check_name(collection, "collection", errbuf, errlen) ||
        !qd_filter_ok(filter, "search", collection, errbuf, errlen))
        return TN_ERR_INVALID;
    if (!vector || dims == 0 || !qd_floats_ok(vector, dims) || limit == 0) {
        qd_err(errbuf, errlen,
               "qdrant: search on %s: needs a vector of finite values and a limit of at least 1",
               collection);
        return TN_ERR_INVALID;
    }
    tn_qdrant_hit_t *out = NULL;
    size_t count = 0;
    qd_call_t c;
    qd_body_t w;
    char tmp[64];
    body_init(&w);
    body_adds(&w, "{\"query\":");
    body_floats(&w, vector, dims);
    snprintf(tmp, sizeof(tmp), ",\"limit\":%zu,\"with_payload\":true", limit);
    body_adds(&w, tmp);
    body_filter(&w, filter);
    if (score_threshold >= -1.0) { /* NaN compares false: no threshold */
        snprintf(tmp, sizeof(tmp), ",\"score_threshold\":%.17g", score_threshold);
        body_adds(&w, tmp);
    }
    body_adds(&w, "}");
    qd_call_init(&c, TN_HTTP_POST, tn_xasprintf("/collections/%s/points/query", collection));
    tn_err_t rc = qd_send(q, &c, &w, "search", collection, errbuf, errlen);
    if (rc != TN_OK)
        goto out;
    json_t *points = json_object_get(c.result, "points");
    if (!json_is_array(points)) {
        rc = qd_parse_error(&c, "result.points is not an array", errbuf, errlen);
        goto out;
    }
    if (json_array_size(points) > 0)
        out = tn_xcalloc(json_array_size(points), sizeof(*out));
    size_t i;
    json_t *p;
    json_array_foreach(points, i, p)
    {
        tn_qdrant_hit_t *h = &out[count];
        const json_t *score = json_object_get(p, "score");
        json_t *payload = json_object_get(p, "payload");
        if (!qd_id_text(json_object_get(p, "id"), h->id, sizeof(h->id)) || !json_is_number(score) ||
            (payload && !json_is_object(payload) && !json_is_null(payload))) {
            rc = qd_parse_error(&c, "a point without a valid id, score or payload", errbuf, errlen);
            goto out;
        }
        h->score = json_number_value(score);
        h->payload = json_is_object(payload) ? json_incref(payload) : NULL;
        count++;
    }
    *hits = out;
    *n = count;
    out = NULL; /* handed to the caller */
    rc = TN_OK;
    qd_err_clear(errbuf, errlen);
out:
    tn_qdrant_hits_free(out, count);
    qd_call_cleanup(&c);
    tn_buf_cleanup(&w.b);
    return rc;
}

void tn_qdrant_hits_free(tn_qdrant_hit_t *hits, size_t n)
{
    if (!hits)
        return;
    for (size_t i = 0; i < n; i++)
        json_decref(hits[i].payload);
    free(hits);
}

static bool qd_is_id(const json_t *v)
{
    return (json_is_integer(v) && json_integer_value(v) >= 0) ||
           (json_is_string(v) && json_string_length(v) > 0);
}

tn_err_t tn_qdrant_scroll(tn_qdrant_t *q, const char *collection, const json_t *filter,
                          size_t limit, int with_vector, const json_t *offset, json_t **points,
                          json_t **next, char *errbuf, size_t errlen)
{
    TN_ASSERT(q && points && next);
    *points = NULL;
    *next = NULL;
    if (!qd_check_name(collection, "collection", errbuf, errlen) ||
        !qd_filter_ok(filter, "scroll", collection, errbuf, errlen))
        return TN_ERR_INVALID;
    if (limit == 0 || (offset && !json_is_null(offset) && !qd_is_id(offset))) {
        qd_err(errbuf, errlen,
               "qdrant: scroll on %s: needs a limit of at least 1 and an offset that is a point id",
               collection);
        return TN_ERR_INVALID;
    }
    qd_call_t c;
    qd_body_t w;
    char tmp[96];
    body_init(&w);
    snprintf(tmp, sizeof(tmp), "{\"limit\":%zu,\"with_payload\":true,\"with_vector\":%s", limit,
             with_vector ? "true" : "false");
    body_adds(&w, tmp);
    body_filter(&w, filter);
    if (offset && !json_is_null(offset)) {
        body_adds(&w, ",\"offset\":");
        body_json(&w, offset);
    }
    body_adds(&w, "}");
    qd_call_init(&c, TN_HTTP_POST, tn_xasprintf("/collections/%s/points/scroll", collection));
    tn_err_t rc = qd_send(q, &c, &w, "scroll", collection, errbuf, errlen);
    if (rc != TN_OK)
        goto out;
    json_t *pts = json_object_get(c.result, "points");
    json_t *nx = json_object_get(c.result, "next_page_offset");
    if (!json_is_array(pts) || (nx && !json_is_null(nx) && !qd_is_id(nx))) {
        rc = qd_parse_error(&c, "result.points is not an array or next_page_offset is not an id",
                            errbuf, errlen);
        goto out;
    }
    *points = json_incref(pts);
    *next = (nx && !json_is_null(nx)) ? json_incref(nx) : NULL;
    qd_err_clear(errbuf, errlen);
out:
    qd_call_cleanup(&c);
    tn_buf_cleanup(&w.b);
    return rc;
}

tn_err_t tn_qdrant_count(tn_qdrant_t *q, const char *collection, const json_t *filter,
                         size_t *count, char *errbuf, size_t errlen)
{
    TN_ASSERT(q && count);
    *count = 0;
    if (!qd_check_name(collection, "collection", errbuf, errlen) ||
        !qd_filter_ok(filter, "count", collection, errbuf, errlen))
        return TN_ERR_INVALID;
    qd_call_t c;
    qd_body_t w;
    body_init(&w);
    body_adds(&w, "{\"exact\":true");
    body_filter(&w, filter);
    body_adds(&w, "}");
    qd_call_init(&c, TN_HTTP_POST, tn_xasprintf("/collections/%s/points/count", collection));
    tn_err_t rc = qd_send(q, &c, &w, "count", collection, errbuf, errlen);
    if (rc != TN_OK)
        goto out;
    const json_t *v = json_object_get(c.result, "count");
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        rc = qd_parse_error(&c, "result.count is not a count", errbuf, errlen);
        goto out;
    }
    *count = (size_t)json_integer_value(v);
    qd_err_clear(errbuf, errlen);
out:
    qd_call_cleanup(&c);
    tn_buf_cleanup(&w.b);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Health */

tn_err_t tn_qdrant_ping(tn_qdrant_t *q, char *errbuf, size_t errlen)
{
    TN_ASSERT(q);
    /* A health check answers now or never: no retries. /healthz only when /readyz does not
     * exist (servers before it); a 503 from /readyz means "not ready" and is reported. */
    static const char *const paths[] = {"/readyz", "/healthz"};
    tn_err_t rc = TN_ERR_UNAVAILABLE;
    for (size_t i = 0; i < TN_ARRAY_LEN(paths); i++) {
        qd_call_t c;
        qd_call_init(&c, TN_HTTP_GET, tn_xstrdup(paths[i]));
        c.raw = true;
        c.flags = TN_HTTP_F_NO_RETRY;
        rc = qd_do(q, &c, errbuf, errlen);
        bool fallback = rc == TN_ERR_NOT_FOUND;
        qd_call_cleanup(&c);
        if (!fallback)
            break;
    }
    if (rc == TN_OK)
        qd_err_clear(errbuf, errlen);
    return rc;
}
