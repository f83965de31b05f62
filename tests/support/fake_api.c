/* The shared skeleton of the test doubles of external APIs (see fake_api.h). */
#include "fake_api.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "taina/clock.h"
#include "taina/log.h"
#include "taina/mem.h"

typedef struct faults {
    int64_t latency_ms;
    double error_rate;
    int64_t error_status;
    double drop_rate;
    double malformed_rate;
    double huge_rate; /* 200 with a valid but endless JSON body, streamed */
    int64_t huge_bytes;
} faults_t;

struct tn_fake {
    const tn_fake_api_t *api;
    const tn_fake_route_t *routes;
    size_t nroutes;
    void *ctx;
    char *api_key;

    pthread_mutex_t lock; /* everything below */
    faults_t faults;
    faults_t initial;
    uint64_t rng;
    json_t *requests; /* route name -> count */
    uint64_t total, n_error, n_drop, n_malformed, n_huge, n_unauthorized;
};

/* Catch-all patterns: every path of 0..TN_FAKE_MAX_SEGS segments, for every method. */
static const char *const catchall_patterns[] = {
    "/",
    "/{a}",
    "/{a}/{b}",
    "/{a}/{b}/{c}",
    "/{a}/{b}/{c}/{d}",
    "/{a}/{b}/{c}/{d}/{e}",
    "/{a}/{b}/{c}/{d}/{e}/{f}",
    "/{a}/{b}/{c}/{d}/{e}/{f}/{g}",
    "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}",
};
static const char *const catchall_methods[] = {"GET", "POST", "PUT", "DELETE", "PATCH"};

static void admin_faults(tn_fake_call_t *c);
static void admin_stats(tn_fake_call_t *c);
static void admin_reset(tn_fake_call_t *c);

static const tn_fake_route_t admin_routes[] = {
    {"GET", "/admin/faults", "GET /admin/faults", admin_faults, 0},
    {"POST", "/admin/faults", "POST /admin/faults", admin_faults, 0},
    {"GET", "/admin/stats", "GET /admin/stats", admin_stats, 0},
    {"POST", "/admin/reset", "POST /admin/reset", admin_reset, 0},
};

/* ============================================================================================ */
/* Faults                                                                                       */

static bool parse_rate(const char *s, double *out)
{
    char *end = NULL;
    if (!s || !*s) {
        *out = 0;
        return true;
    }
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !(v >= 0 && v <= 1))
        return false;
    *out = v;
    return true;
}

/* xorshift64*: a double in [0, 1). Caller holds the lock. */
static double dice(tn_fake_t *f)
{
    f->rng ^= f->rng >> 12;
    f->rng ^= f->rng << 25;
    f->rng ^= f->rng >> 27;
    uint64_t x = f->rng * 2685821657736338717ULL;
    return (double)(x >> 11) * (1.0 / 9007199254740992.0);
}

static json_t *faults_json(const faults_t *ft)
{
    return json_pack("{sI sf sI sf sf sf sI}", "latency_ms", (json_int_t)ft->latency_ms,
                     "error_rate", ft->error_rate, "error_status", (json_int_t)ft->error_status,
                     "drop_rate", ft->drop_rate, "malformed_rate", ft->malformed_rate, "huge_rate",
                     ft->huge_rate, "huge_bytes", (json_int_t)ft->huge_bytes);
}

static bool json_rate(json_t *v, double *out)
{
    if (!json_is_number(v))
        return false;
    double d = json_number_value(v);
    if (!(d >= 0 && d <= 1))
        return false;
    *out = d;
    return true;
}

/* Apply the members of @p body to @p ft. @returns false with a message when one is bad. */
static bool faults_update(faults_t *ft, json_t *body, char *msg, size_t len)
{
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v)
    {
        bool ok = true;
        if (strcmp(k, "latency_ms") == 0) {
            ok =
                json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= 600000;
            if (ok)
                ft->latency_ms = json_integer_value(v);
        } else if (strcmp(k, "error_status") == 0) {
            ok = json_is_integer(v) && json_integer_value(v) >= 400 && json_integer_value(v) <= 599;
            if (ok)
                ft->error_status = json_integer_value(v);
        } else if (strcmp(k, "error_rate") == 0) {
            ok = json_rate(v, &ft->error_rate);
        } else if (strcmp(k, "drop_rate") == 0) {
            ok = json_rate(v, &ft->drop_rate);
        } else if (strcmp(k, "malformed_rate") == 0) {
            ok = json_rate(v, &ft->malformed_rate);
        } else if (strcmp(k, "huge_rate") == 0) {
            ok = json_rate(v, &ft->huge_rate);
        } else if (strcmp(k, "huge_bytes") == 0) {
            ok = json_is_integer(v) && json_integer_value(v) >= 64 &&
                 json_integer_value(v) <= ((json_int_t)1 << 30);
            if (ok)
                ft->huge_bytes = json_integer_value(v);
        } else {
            snprintf(msg, len,
                     "unknown fault %s (known: latency_ms, error_rate, error_status, drop_rate, "
                     "malformed_rate, huge_rate, huge_bytes)",
                     k);
            return false;
        }
        if (!ok) {
            snprintf(msg, len,
                     "bad value for %s (latency_ms 0..600000, error_status 400..599, rates 0..1, "
                     "huge_bytes 64..2^30)",
                     k);
            return false;
        }
    }
    return true;
}

/* ============================================================================================ */
/* Admin                                                                                        */

static void admin_faults(tn_fake_call_t *c)
{
    tn_fake_t *f = c->fake;
    if (strcmp(tn_http_req_method(c->req), "POST") == 0) {
        char msg[256];
        json_t *body = tn_fake_body_json(c, msg, sizeof(msg));
        if (!body) {
            f->api->error(c, 400, msg);
            return;
        }
        pthread_mutex_lock(&f->lock);
        faults_t ft = f->faults;
        bool ok = faults_update(&ft, body, msg, sizeof(msg));
        if (ok)
            f->faults = ft;
        pthread_mutex_unlock(&f->lock);
        json_decref(body);
        if (!ok) {
            f->api->error(c, 400, msg);
            return;
        }
        TN_LOG(TN_LOG_INFO, "faults set");
    }
    pthread_mutex_lock(&f->lock);
    json_t *out = faults_json(&f->faults);
    pthread_mutex_unlock(&f->lock);
    tn_http_req_respond_json(c->req, 200, out);
}

static void admin_stats(tn_fake_call_t *c)
{
    tn_fake_t *f = c->fake;
    pthread_mutex_lock(&f->lock);
    json_t *out =
        json_pack("{sI sO s{sI sI sI sI sI}}", "requests_total", (json_int_t)f->total, "requests",
                  f->requests, "faults", "error", (json_int_t)f->n_error, "drop",
                  (json_int_t)f->n_drop, "malformed", (json_int_t)f->n_malformed, "huge",
                  (json_int_t)f->n_huge, "unauthorized", (json_int_t)f->n_unauthorized);
    json_t *copy = json_deep_copy(out); /* "requests" keeps changing under the lock */
    json_decref(out);
    pthread_mutex_unlock(&f->lock);
    if (f->api->stats) {
        json_t *extra = f->api->stats(f->ctx);
        if (extra)
            json_object_update(copy, extra);
        json_decref(extra);
    }
    tn_http_req_respond_json(c->req, 200, copy);
}

static void admin_reset(tn_fake_call_t *c)
{
    tn_fake_t *f = c->fake;
    pthread_mutex_lock(&f->lock);
    f->faults = f->initial;
    json_object_clear(f->requests);
    f->total = f->n_error = f->n_drop = f->n_malformed = f->n_huge = f->n_unauthorized = 0;
    pthread_mutex_unlock(&f->lock);
    if (f->api->reset)
        f->api->reset(f->ctx);
    tn_http_req_respond_json(c->req, 200, json_pack("{sb}", "reset", 1));
}

/* ============================================================================================ */
/* Dispatch                                                                                     */

/* Does @p path match @p pattern (`*` = one non-empty segment)? Captures go to c->arg. */
static bool path_match(const char *pattern, const char *path, tn_fake_call_t *c)
{
    const char *p = pattern, *s = path;
    size_t na = 0;
    if (strcmp(pattern, "/") == 0)
        return strcmp(path, "/") == 0;
    while (*p) {
        if (*p != '/' || *s != '/')
            return false;
        p++;
        s++;
        size_t pl = strcspn(p, "/"), sl = strcspn(s, "/");
        if (pl == 1 && *p == '*') {
            if (sl == 0 || na == TN_FAKE_MAX_ARGS)
                return false;
            if (c)
                c->arg[na] = s; /* fixed up by the caller: segments are cut below */
            na++;
        } else if (pl != sl || memcmp(p, s, pl) != 0) {
            return false;
        }
        p += pl;
        s += sl;
    }
    return *s == '\0';
}

static const tn_fake_route_t *find_route(const tn_fake_route_t *routes, size_t n, const char *m,
                                         const char *path, bool *path_known)
{
    for (size_t i = 0; i < n; i++) {
        if (!path_match(routes[i].pattern, path, NULL))
            continue;
        *path_known = true;
        if (strcmp(routes[i].method, m) == 0 ||
            (strcmp(m, "HEAD") == 0 && strcmp(routes[i].method, "GET") == 0))
            return &routes[i];
    }
    return NULL;
}

static void count(tn_fake_t *f, const char *name)
{
    json_t *n = json_object_get(f->requests, name);
    json_object_set_new(f->requests, name, json_integer(n ? json_integer_value(n) + 1 : 1));
    f->total++;
}

static void malformed(tn_fake_t *f, tn_http_req_t *req)
{
    const char *b = f->api->malformed_body ? f->api->malformed_body : "{\"result\": [";
    tn_http_req_respond(req, 200, "application/json", b, strlen(b));
}

/* A huge answer: `{"pad":"xxx...x"}` of exactly the remaining bytes, made as it is sent. */
typedef struct huge_body {
    int64_t left;
    int started;
} huge_body_t;

static ssize_t huge_next(void *opaque, char *buf, size_t max)
{
    huge_body_t *h = opaque;
    size_t n = 0;
    if (h->left <= 0)
        return 0;
    if (!h->started) {
        static const char head[] = "{\"pad\":\"";
        h->started = 1;
        memcpy(buf, head, sizeof(head) - 1);
        n = sizeof(head) - 1;
        h->left -= (int64_t)n;
    }
    while (n < max && h->left > 2) {
        buf[n++] = 'x';
        h->left--;
    }
    if (h->left <= 2 && max - n >= 2) {
        buf[n++] = '"';
        buf[n++] = '}';
        h->left = 0;
    }
    return (ssize_t)n;
}

static void huge(tn_http_req_t *req, int64_t bytes)
{
    huge_body_t *h = tn_xcalloc(1, sizeof(*h));
    h->left = bytes;
    tn_http_req_respond_stream(req, 200, "application/json", huge_next, free, h);
}

static void on_request(tn_http_req_t *req, void *opaque)
{
    tn_fake_t *f = opaque;
    tn_fake_call_t c = {.req = req, .fake = f, .ctx = f->ctx, .start_s = tn_clock_mono_s()};
    const char *path = tn_http_req_path(req);
    const char *method = tn_http_req_method(req);
    bool known = false;
    bool admin = true;
    const tn_fake_route_t *r =
        find_route(admin_routes, TN_ARRAY_LEN(admin_routes), method, path, &known);
    if (!r && !known) {
        r = find_route(f->routes, f->nroutes, method, path, &known);
        admin = r && (r->flags & TN_FAKE_ADMIN);
    }
    char *copy = tn_xstrdup(path); /* the captured segments, cut at their '/' */
    if (r) {
        path_match(r->pattern, copy, &c);
        for (size_t i = 0; i < TN_FAKE_MAX_ARGS && c.arg[i]; i++)
            ((char *)c.arg[i])[strcspn(c.arg[i], "/")] = '\0';
    }
    c.route = r ? r->name : "unmatched";

    if (admin) {
        if (r && (!f->api_key || f->api->authorize(&c, f->api_key)))
            r->fn(&c);
        else if (!r)
            f->api->error(&c, 405, "method not allowed on an admin endpoint");
        free(copy);
        return;
    }

    pthread_mutex_lock(&f->lock);
    count(f, c.route);
    faults_t ft = f->faults;
    double d_drop = dice(f), d_err = dice(f), d_mal = dice(f), d_huge = dice(f);
    enum { NONE, DROP, ERROR, MALFORMED, HUGE } fault = NONE;
    if (d_drop < ft.drop_rate) {
        fault = DROP;
        f->n_drop++;
    } else if (d_err < ft.error_rate) {
        fault = ERROR;
        f->n_error++;
    } else if (d_mal < ft.malformed_rate) {
        fault = MALFORMED;
        f->n_malformed++;
    } else if (d_huge < ft.huge_rate) {
        fault = HUGE;
        f->n_huge++;
    }
    pthread_mutex_unlock(&f->lock);

    if (ft.latency_ms > 0)
        tn_clock_sleep_ms(ft.latency_ms);
    switch (fault) {
    case DROP:
        tn_fake_drop(req);
        break;
    case ERROR: {
        char msg[128];
        snprintf(msg, sizeof(msg), "injected fault: status %d", (int)ft.error_status);
        f->api->error(&c, (int)ft.error_status, msg);
        if (ft.error_status == 429)
            tn_http_req_add_header(req, "Retry-After", "1");
        break;
    }
    case MALFORMED:
        malformed(f, req);
        break;
    case HUGE:
        huge(req, ft.huge_bytes);
        break;
    case NONE:
        if (!r) {
            f->api->error(&c, known ? 405 : 404,
                          known ? "method not allowed" : "no such endpoint in this fake");
        } else if ((r->flags & TN_FAKE_OPEN) || !f->api_key || f->api->authorize(&c, f->api_key)) {
            r->fn(&c);
        } else {
            pthread_mutex_lock(&f->lock);
            f->n_unauthorized++;
            pthread_mutex_unlock(&f->lock);
        }
        break;
    }
    free(copy);
}

/* ============================================================================================ */
/* API                                                                                          */

tn_fake_t *tn_fake_new(const tn_fake_api_t *api, const tn_fake_route_t *routes, size_t nroutes,
                       void *ctx, const tn_fake_cfg_t *cfg, char *errbuf, size_t errlen)
{
    faults_t ft = {
        .latency_ms = cfg->latency_ms, .error_status = cfg->error_status, .huge_bytes = 32 << 20};
    if (!parse_rate(cfg->error_rate, &ft.error_rate) ||
        !parse_rate(cfg->drop_rate, &ft.drop_rate) ||
        !parse_rate(cfg->malformed_rate, &ft.malformed_rate)) {
        snprintf(errbuf, errlen,
                 "TAINA_FAKE_ERROR_RATE, TAINA_FAKE_DROP_RATE and TAINA_FAKE_MALFORMED_RATE must "
                 "be numbers from 0 to 1");
        return NULL;
    }
    tn_fake_t *f = tn_xcalloc(1, sizeof(*f));
    f->api = api;
    f->routes = routes;
    f->nroutes = nroutes;
    f->ctx = ctx;
    f->api_key = cfg->api_key && *cfg->api_key ? tn_xstrdup(cfg->api_key) : NULL;
    pthread_mutex_init(&f->lock, NULL);
    f->faults = f->initial = ft;
    f->rng = cfg->seed ? (uint64_t)cfg->seed : (uint64_t)tn_clock_wall_ms() * 2654435761ULL + 1;
    f->requests = json_object();
    return f;
}

void tn_fake_destroy(tn_fake_t *f)
{
    if (!f)
        return;
    json_decref(f->requests);
    pthread_mutex_destroy(&f->lock);
    free(f->api_key);
    free(f);
}

tn_err_t tn_fake_serve(tn_fake_t *f, tn_app_t *app)
{
    enum { NP = TN_ARRAY_LEN(catchall_patterns), NM = TN_ARRAY_LEN(catchall_methods) };
    tn_http_route_t routes[NP * NM];
    size_t n = 0;
    for (size_t m = 0; m < NM; m++) {
        for (size_t p = 0; p < NP; p++)
            routes[n++] = (tn_http_route_t){
                catchall_methods[m], catchall_patterns[p], on_request, 0, NULL, f};
    }
    return tn_app_http_start(app, routes, n, NULL, NULL);
}

const char *tn_fake_api_key(const tn_fake_t *f)
{
    return f->api_key;
}

static ssize_t drop_cb(void *opaque, char *buf, size_t max)
{
    TN_UNUSED(opaque);
    TN_UNUSED(buf);
    TN_UNUSED(max);
    return -1;
}

void tn_fake_drop(tn_http_req_t *req)
{
    tn_http_req_respond_stream(req, 200, "application/json", drop_cb, NULL, NULL);
}

const char *tn_fake_bearer(tn_http_req_t *req)
{
    const char *h = tn_http_req_header(req, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    return *h ? h : NULL;
}

json_t *tn_fake_body_json(tn_fake_call_t *c, char *msg, size_t len)
{
    size_t blen = 0;
    const char *body = tn_http_req_body(c->req, &blen);
    json_error_t jerr;
    json_t *j = json_loadb(body, blen, JSON_REJECT_DUPLICATES, &jerr);
    if (!j) {
        snprintf(msg, len, "%s at line %d column %d",
                 blen ? jerr.text : "EOF while parsing a value", jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(j)) {
        snprintf(msg, len, "expected a JSON object at line 1 column 1");
        json_decref(j);
        return NULL;
    }
    return j;
}

double tn_fake_elapsed(const tn_fake_call_t *c)
{
    return tn_clock_mono_s() - c->start_s;
}
