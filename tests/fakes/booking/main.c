/* taina-fake-booking: a double of an agency's booking system (CONTRACTS.md section 5): an OAuth2
 * token endpoint for the client credentials grant (RFC 6749 4.4) with tokens that expire, and a
 * FHIR R4 subset: Slot search, Appointment create (conditional, If-None-Exist), read, search by
 * identifier and cancel by update. A slot holds one appointment: a second create for it gets 409.
 * The fault switches of tests/support/fake_api.h apply, plus: the system can be taken down
 * (503 for everything but admin), the next N creates can find their slot taken by someone else,
 * and every token can be revoked.
 *
 * Slots are not stored: every service has a free slot every fake_slot_minutes around the clock
 * (ids "<service>.<minute since the epoch>"), and a slot is busy while an appointment that is not
 * cancelled holds it. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "fake_api.h"
#include "taina/app.h"
#include "taina/clock.h"
#include "taina/lifecycle.h"
#include "taina/log.h"
#include "taina/mem.h"

extern char **environ;

typedef struct bk_cfg {
    tn_fake_cfg_t fake;
    char *client_id;
    char *client_secret;
    int64_t token_lifetime_s;
    int64_t slot_minutes;
    int64_t max_slots;
} bk_cfg_t;

static const tn_cfg_key_t bk_keys[] = {
    TN_FAKE_CFG_KEYS(bk_cfg_t, fake),
    {"fake_client_id", TN_CFG_STRING, offsetof(bk_cfg_t, client_id), "taina", 0,
     "OAuth2 client id accepted by POST /token", 0, 0, NULL},
    {"fake_client_secret", TN_CFG_STRING, offsetof(bk_cfg_t, client_secret), "secret",
     TN_CFG_SECRET, "OAuth2 client secret accepted by POST /token", 0, 0, NULL},
    {"fake_token_lifetime", TN_CFG_INT, offsetof(bk_cfg_t, token_lifetime_s), "3600", 0,
     "Seconds an access token lives (expires_in)", 1, 86400 * 365, NULL},
    {"fake_slot_minutes", TN_CFG_INT, offsetof(bk_cfg_t, slot_minutes), "30", 0,
     "Length of a slot; every service has one every this many minutes", 1, 1440, NULL},
    {"fake_max_slots", TN_CFG_INT, offsetof(bk_cfg_t, max_slots), "20", 0,
     "Most slots in one search answer (_count is capped to it)", 1, 1000, NULL},
};

#define FHIR_JSON "application/fhir+json"
#define TOKEN_LEN 32

typedef struct token {
    char value[TOKEN_LEN + 1];
    int64_t expires_ms; /* wall clock */
} token_t;

typedef struct bk {
    const bk_cfg_t *cfg;
    tn_fake_t *fake;
    pthread_mutex_t lock; /* everything below */
    token_t *tokens;
    size_t ntokens, captokens;
    json_t *appts;    /* id -> Appointment resource */
    json_t *busy;     /* slot id -> appointment id (only appointments not cancelled) */
    json_t *by_ident; /* "system|value" -> appointment id */
    uint64_t next_id;
    int64_t down_until_ms;         /* monotonic */
    int64_t steal;                 /* the next creates that find their slot taken */
    int64_t refuse, refuse_status; /* the next creates refused with that status */
    uint64_t n_tokens, n_created, n_existing, n_conflict, n_rejected, n_cancelled, n_unauth;
} bk_t;

/* ============================================================================================ */
/* Answers                                                                                      */

static void fhir_respond(tn_fake_call_t *c, int status, json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    tn_http_req_respond(c->req, status, FHIR_JSON, text, strlen(text));
    free(text);
}

/* An OperationOutcome with one issue. */
static void outcome(tn_fake_call_t *c, int status, const char *code, const char *diagnostics)
{
    fhir_respond(c, status,
                 json_pack("{ss s[{ss ss ss}]}", "resourceType", "OperationOutcome", "issue",
                           "severity", "error", "code", code, "diagnostics", diagnostics));
}

/* Errors of the skeleton: 404, 405, injected faults. */
static void bk_error(tn_fake_call_t *c, int status, const char *message)
{
    const char *code = status == 404   ? "not-found"
                       : status == 405 ? "not-supported"
                       : status == 429 ? "throttled"
                       : status >= 500 ? "transient"
                                       : "processing";
    outcome(c, status, code, message);
}

static void oauth_error(tn_fake_call_t *c, int status, const char *err, const char *desc)
{
    if (status == 401)
        tn_http_req_add_header(c->req, "WWW-Authenticate", "Basic realm=\"taina-fake-booking\"");
    tn_http_req_add_header(c->req, "Cache-Control", "no-store");
    tn_http_req_respond_json(c->req, status,
                             json_pack("{ss ss}", "error", err, "error_description", desc));
}

/* While the system is down everything but admin gets 503. */
static bool is_down(tn_fake_call_t *c)
{
    bk_t *b = c->ctx;
    pthread_mutex_lock(&b->lock);
    bool down = tn_clock_mono_ms() < b->down_until_ms;
    pthread_mutex_unlock(&b->lock);
    if (down) {
        tn_http_req_add_header(c->req, "Retry-After", "1");
        outcome(c, 503, "transient", "the booking system is down for maintenance");
    }
    return down;
}

/* The API needs a valid access token (RFC 6750). */
static bool authorized(tn_fake_call_t *c)
{
    bk_t *b = c->ctx;
    if (is_down(c))
        return false;
    const char *tok = tn_fake_bearer(c->req);
    bool ok = false;
    int64_t now = tn_clock_wall_ms();
    pthread_mutex_lock(&b->lock);
    for (size_t i = 0; tok && i < b->ntokens && !ok; i++)
        ok = !strcmp(b->tokens[i].value, tok) && b->tokens[i].expires_ms > now;
    if (!ok)
        b->n_unauth++;
    pthread_mutex_unlock(&b->lock);
    if (!ok) {
        tn_http_req_add_header(c->req, "WWW-Authenticate",
                               tok ? "Bearer error=\"invalid_token\"" : "Bearer");
        outcome(c, 401, "login",
                tok ? "the access token is invalid or expired" : "an access token is required");
    }
    return ok;
}

/* ============================================================================================ */
/* OAuth2 token endpoint                                                                        */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* application/x-www-form-urlencoded value decoding ('+' is a space). Caller frees. */
static char *form_decode(const char *s, size_t n)
{
    char *out = tn_xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

/* The value of @p name in a form body, decoded; NULL when absent. Caller frees. */
static char *form_get(const char *body, size_t len, const char *name)
{
    size_t nl = strlen(name);
    for (size_t pos = 0; pos < len;) {
        const char *amp = memchr(body + pos, '&', len - pos);
        size_t end = amp ? (size_t)(amp - body) : len;
        const char *eq = memchr(body + pos, '=', end - pos);
        if (eq && (size_t)(eq - (body + pos)) == nl && !memcmp(body + pos, name, nl))
            return form_decode(eq + 1, end - (size_t)(eq - body) - 1);
        pos = end + 1;
    }
    return NULL;
}

/* Client credentials from "Authorization: Basic base64(urlenc(id):urlenc(secret))". */
static bool basic_credentials(tn_http_req_t *req, char **id, char **secret)
{
    const char *h = tn_http_req_header(req, "Authorization");
    if (!h || strncasecmp(h, "Basic ", 6) != 0)
        return false;
    h += 6;
    size_t n = strlen(h);
    unsigned char *raw = tn_xcalloc(1, n + 4);
    int got = n % 4 == 0 ? EVP_DecodeBlock(raw, (const unsigned char *)h, (int)n) : -1;
    if (got >= 0) {
        while (n && h[n - 1] == '=') { /* EVP_DecodeBlock counts padding as zero bytes */
            n--;
            got--;
        }
    }
    const char *colon = got > 0 ? memchr(raw, ':', (size_t)got) : NULL;
    if (colon) {
        *id = form_decode((const char *)raw, (size_t)(colon - (const char *)raw));
        *secret = form_decode(colon + 1, (size_t)got - (size_t)(colon - (const char *)raw) - 1);
    } else {
        *id = tn_xstrdup("");
        *secret = tn_xstrdup("");
    }
    free(raw);
    return true;
}

static void on_token(tn_fake_call_t *c)
{
    bk_t *b = c->ctx;
    if (is_down(c))
        return;
    const char *ct = tn_http_req_content_type(c->req);
    if (!ct || strncasecmp(ct, "application/x-www-form-urlencoded", 33) != 0) {
        oauth_error(c, 400, "invalid_request",
                    "the body must be application/x-www-form-urlencoded");
        return;
    }
    size_t len;
    const char *body = tn_http_req_body(c->req, &len);
    char *grant = form_get(body, len, "grant_type");
    char *scope = form_get(body, len, "scope");
    char *id = NULL, *secret = NULL;
    bool basic = basic_credentials(c->req, &id, &secret);
    if (!basic) { /* client_secret_post (RFC 6749 2.3.1, allowed, not recommended) */
        id = form_get(body, len, "client_id");
        secret = form_get(body, len, "client_secret");
    }
    if (!grant) {
        oauth_error(c, 400, "invalid_request", "grant_type is required");
    } else if (!id || !secret || strcmp(id, b->cfg->client_id) != 0 ||
               strcmp(secret, b->cfg->client_secret) != 0) {
        oauth_error(c, basic ? 401 : 400, "invalid_client", "client authentication failed");
    } else if (strcmp(grant, "client_credentials") != 0) {
        oauth_error(c, 400, "unsupported_grant_type", "only client_credentials is supported");
    } else {
        unsigned char rnd[TOKEN_LEN / 2];
        token_t t;
        RAND_bytes(rnd, sizeof(rnd));
        for (size_t i = 0; i < sizeof(rnd); i++)
            snprintf(t.value + 2 * i, 3, "%02x", rnd[i]);
        int64_t now = tn_clock_wall_ms();
        t.expires_ms = now + b->cfg->token_lifetime_s * 1000;
        pthread_mutex_lock(&b->lock);
        size_t keep = 0; /* forget expired tokens */
        for (size_t i = 0; i < b->ntokens; i++)
            if (b->tokens[i].expires_ms > now)
                b->tokens[keep++] = b->tokens[i];
        b->ntokens = keep;
        if (b->ntokens == b->captokens) {
            b->captokens = b->captokens ? b->captokens * 2 : 16;
            b->tokens = tn_xrealloc(b->tokens, b->captokens * sizeof(*b->tokens));
        }
        b->tokens[b->ntokens++] = t;
        b->n_tokens++;
        pthread_mutex_unlock(&b->lock);
        json_t *out = json_pack("{ss ss sI}", "access_token", t.value, "token_type", "Bearer",
                                "expires_in", (json_int_t)b->cfg->token_lifetime_s);
        if (scope)
            json_object_set_new(out, "scope", json_string(scope));
        tn_http_req_add_header(c->req, "Cache-Control", "no-store");
        tn_http_req_add_header(c->req, "Pragma", "no-cache");
        tn_http_req_respond_json(c->req, 200, out);
    }
    free(grant);
    free(scope);
    free(id);
    free(secret);
}

/* ============================================================================================ */
/* Time                                                                                         */

/* RFC 3339 date-time ("2026-09-01T09:00:00Z", fractions and offsets allowed) to epoch ms. */
static bool parse_instant(const char *s, int64_t *ms)
{
    struct tm tm = {0};
    int n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &n) != 6 ||
        n != 19)
        return false;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    const char *p = s + n;
    int64_t frac = 0;
    if (*p == '.') {
        int64_t scale = 100;
        for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
            frac += (*p - '0') * scale;
    }
    int64_t off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int hh, mm;
        if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2)
            return false;
        off = (int64_t)(hh * 60 + mm) * 60000 * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return false;
    }
    if (*p)
        return false;
    *ms = (int64_t)timegm(&tm) * 1000 + frac - off;
    return true;
}

static void format_instant(char *buf, size_t len, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ============================================================================================ */
/* Slots                                                                                        */

/* "<service>.<minute>" -> service and start minute. */
static bool slot_parse(const char *id, char *service, size_t slen, int64_t *minute)
{
    const char *dot = strrchr(id, '.');
    if (!dot || dot == id || (size_t)(dot - id) >= slen)
        return false;
    char *end = NULL;
    long long m = strtoll(dot + 1, &end, 10);
    if (!dot[1] || *end || m < 0)
        return false;
    memcpy(service, id, (size_t)(dot - id));
    service[dot - id] = '\0';
    *minute = m;
    return true;
}

static json_t *slot_json(const bk_t *b, const char *service, int64_t minute, const char *status)
{
    char id[160], start[32], end[32];
    snprintf(id, sizeof(id), "%s.%lld", service, (long long)minute);
    format_instant(start, sizeof(start), minute * 60000);
    format_instant(end, sizeof(end), (minute + b->cfg->slot_minutes) * 60000);
    char *sched = tn_xasprintf("Schedule/%s", service);
    json_t *s = json_pack("{ss ss s{ss} ss ss ss s[{s[{ss}]}]}", "resourceType", "Slot", "id", id,
                          "schedule", "reference", sched, "status", status, "start", start, "end",
                          end, "serviceType", "coding", "code", service);
    free(sched);
    return s;
}

/* GET /Slot?service-type=X&status=free&start=geT1&start=ltT2&_count=N */
static void on_slot_search(tn_fake_call_t *c)
{
    bk_t *b = c->ctx;
    if (!authorized(c))
        return;
    const char *service = tn_http_req_query(c->req, "service-type");
    const char *status = tn_http_req_query(c->req, "status");
    const char *count = tn_http_req_query(c->req, "_count");
    if (!service || !*service || strlen(service) > 100 || strchr(service, '.')) {
        outcome(c, 400, "required", "service-type is required (one code)");
        return;
    }
    if (status && strcmp(status, "free") != 0) {
        outcome(c, 400, "not-supported", "only status=free is searchable here");
        return;
    }
    int64_t from = INT64_MIN, to = INT64_MAX;
    const char *v;
    for (unsigned i = 0; (v = tn_http_req_query_nth(c->req, "start", i)) != NULL; i++) {
        int64_t t;
        if (strlen(v) < 3 || !parse_instant(v + 2, &t)) {
            outcome(c, 400, "invalid", "start must be ge|gt|le|lt followed by an instant");
            return;
        }
        if (!strncmp(v, "ge", 2))
            from = TN_MAX(from, t);
        else if (!strncmp(v, "gt", 2))
            from = TN_MAX(from, t + 1);
        else if (!strncmp(v, "lt", 2))
            to = TN_MIN(to, t);
        else if (!strncmp(v, "le", 2))
            to = TN_MIN(to, t + 1);
        else {
            outcome(c, 400, "invalid", "start must be ge|gt|le|lt followed by an instant");
            return;
        }
    }
    if (from == INT64_MIN || to == INT64_MAX) {
        outcome(c, 400, "required", "a start range (start=ge..&start=lt..) is required");
        return;
    }
    int64_t max = b->cfg->max_slots;
    if (count) {
        long long n = strtoll(count, NULL, 10);
        if (n > 0 && n < max)
            max = n;
    }
    int64_t step = b->cfg->slot_minutes;
    int64_t m = (from / 60000 + step - 1) / step * step; /* first aligned slot at or after from */
    json_t *entries = json_array();
    pthread_mutex_lock(&b->lock);
    for (int64_t scanned = 0;
         m * 60000 < to && (int64_t)json_array_size(entries) < max && scanned < 100000;
         m += step, scanned++) {
        char id[160];
        snprintf(id, sizeof(id), "%s.%lld", service, (long long)m);
        if (json_object_get(b->busy, id))
            continue;
        json_t *s = slot_json(b, service, m, "free");
        char *url = tn_xasprintf("Slot/%s", id);
        json_array_append_new(entries, json_pack("{ss so s{ss}}", "fullUrl", url, "resource", s,
                                                 "search", "mode", "match"));
        free(url);
    }
    pthread_mutex_unlock(&b->lock);
    fhir_respond(c, 200,
                 json_pack("{ss ss sI so}", "resourceType", "Bundle", "type", "searchset", "total",
                           (json_int_t)json_array_size(entries), "entry", entries));
}

/* ============================================================================================ */
/* Appointments                                                                                 */

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* The checks a FHIR server makes of an Appointment we care about. NULL when fine. */
static const char *appointment_invalid(const json_t *a, const char **slot_ref)
{
    if (!json_is_object(a) || !jstr(a, "resourceType") ||
        strcmp(jstr(a, "resourceType"), "Appointment") != 0)
        return "resourceType must be Appointment";
    const char *st = jstr(a, "status");
    if (!st || strcmp(st, "booked") != 0)
        return "status must be booked (the fake books slots directly)";
    json_t *parts = json_object_get(a, "participant");
    if (!json_is_array(parts) || json_array_size(parts) == 0)
        return "participant: at least one is required";
    size_t i;
    json_t *p;
    json_array_foreach(parts, i, p)
    {
        if (!jstr(p, "status"))
            return "participant.status is required";
        if (!json_object_get(p, "actor") && !json_object_get(p, "type"))
            return "app-1: a participant needs a type or an actor";
    }
    json_t *slot = json_array_get(json_object_get(a, "slot"), 0);
    const char *ref = jstr(slot, "reference");
    if (!ref || strncmp(ref, "Slot/", 5) != 0 || json_array_size(json_object_get(a, "slot")) != 1)
        return "slot: exactly one reference Slot/<id> is required";
    *slot_ref = ref + 5;
    return NULL;
}

/* "system|value" of the Appointment's first identifier, or NULL. Caller frees. */
static char *ident_key(const json_t *a)
{
    json_t *id = json_array_get(json_object_get(a, "identifier"), 0);
    if (!jstr(id, "system") || !jstr(id, "value"))
        return NULL;
    return tn_xasprintf("%s|%s", jstr(id, "system"), jstr(id, "value"));
}

static void set_meta(json_t *a, int version)
{
    char now[32], v[16];
    format_instant(now, sizeof(now), tn_clock_wall_ms());
    snprintf(v, sizeof(v), "%d", version);
    json_object_set_new(a, "meta", json_pack("{ss ss}", "versionId", v, "lastUpdated", now));
}

static int version_of(const json_t *a)
{
    const char *v = jstr(json_object_get(a, "meta"), "versionId");
    return v ? (int)strtol(v, NULL, 10) : 1;
}

static void on_appointment_create(tn_fake_call_t *c)
{
    bk_t *b = c->ctx;
    if (!authorized(c))
        return;
    char msg[256];
    json_t *a = tn_fake_body_json(c, msg, sizeof(msg));
    if (!a) {
        outcome(c, 400, "structure", msg);
        return;
    }
    const char *slot_id = NULL;
    const char *bad = appointment_invalid(a, &slot_id);
    char service[128];
    int64_t minute = 0;
    if (!bad && (!slot_parse(slot_id, service, sizeof(service), &minute) ||
                 minute % b->cfg->slot_minutes != 0))
        bad = "slot: no such Slot";
    if (bad) {
        pthread_mutex_lock(&b->lock);
        b->n_rejected++;
        pthread_mutex_unlock(&b->lock);
        outcome(c, 422, "processing", bad);
        json_decref(a);
        return;
    }
    /* conditional create: If-None-Exist: identifier=system|value */
    const char *ine = tn_http_req_header(c->req, "If-None-Exist");
    char *cond = NULL;
    if (ine) {
        if (strncmp(ine, "identifier=", 11) != 0 || !strchr(ine + 11, '|')) {
            outcome(c, 400, "invalid", "If-None-Exist: only identifier=system|value is supported");
            json_decref(a);
            return;
        }
        cond = tn_xstrdup(ine + 11);
    }
    char *ident = ident_key(a);
    char slot_key[160];
    snprintf(slot_key, sizeof(slot_key), "%s", slot_id);
    pthread_mutex_lock(&b->lock);
    const char *existing = cond ? json_string_value(json_object_get(b->by_ident, cond)) : NULL;
    json_t *prev = existing ? json_object_get(b->appts, existing) : NULL;
    if (prev && strcmp(jstr(prev, "status"), "cancelled") != 0) {
        b->n_existing++;
        json_t *copy = json_deep_copy(prev);
        pthread_mutex_unlock(&b->lock);
        fhir_respond(c, 200, copy);
        goto out;
    }
    if (b->refuse > 0) {
        b->refuse--;
        b->n_rejected++;
        int status = (int)b->refuse_status;
        pthread_mutex_unlock(&b->lock);
        outcome(c, status, "business-rule", "refused by the booking system's rules");
        goto out;
    }
    if (b->steal > 0 && !json_object_get(b->busy, slot_key)) {
        b->steal--;
        json_object_set_new(b->busy, slot_key, json_string("someone-else"));
    }
    if (json_object_get(b->busy, slot_key)) {
        b->n_conflict++;
        pthread_mutex_unlock(&b->lock);
        snprintf(msg, sizeof(msg), "Slot/%.100s is already booked", slot_key);
        outcome(c, 409, "conflict", msg);
        goto out;
    }
    char id[32], start[32], end[32];
    snprintf(id, sizeof(id), "appt-%llu", (unsigned long long)++b->next_id);
    format_instant(start, sizeof(start), minute * 60000);
    format_instant(end, sizeof(end), (minute + b->cfg->slot_minutes) * 60000);
    json_object_set_new(a, "id", json_string(id));
    json_object_set_new(a, "start", json_string(start));
    json_object_set_new(a, "end", json_string(end));
    set_meta(a, 1);
    json_object_set(b->appts, id, a);
    json_object_set_new(b->busy, slot_key, json_string(id));
    if (ident)
        json_object_set_new(b->by_ident, ident, json_string(id));
    b->n_created++;
    json_t *copy = json_deep_copy(a);
    pthread_mutex_unlock(&b->lock);
    char loc[64];
    snprintf(loc, sizeof(loc), "Appointment/%s/_history/1", id);
    tn_http_req_add_header(c->req, "Location", loc);
    fhir_respond(c, 201, copy);
out:
    free(cond);
    free(ident);
    json_decref(a);
}

static void on_appointment_read(tn_fake_call_t *c)
{
    bk_t *b = c->ctx;
    if (!authorized(c))
        return;
    pthread_mutex_lock(&b->lock);
    json_t *a = json_object_get(b->appts, c->arg[0]);
    json_t *copy = a ? json_deep_copy(a) : NULL;
    pthread_mutex_unlock(&b->lock);
    if (!copy)
        outcome(c, 404, "not-found", "no such Appointment");
    else
        fhir_respond(c, 200, copy);
}

/* PUT /Appointment/{id}: the fake supports one update, cancellation. */
static void on_appointment_update(tn_fake_call_t *c)
{
    bk_t *b = c->ctx;
    if (!authorized(c))
        return;
    char msg[256];
    json_t *body = tn_fake_body_json(c, msg, sizeof(msg));
    if (!body) {
        outcome(c, 400, "structure", msg);
        return;
    }
    const char *st = jstr(body, "status");
    if (!jstr(body, "resourceType") || strcmp(jstr(body, "resourceType"), "Appointment") != 0 ||
        !st || strcmp(st, "cancelled") != 0 ||
        (jstr(body, "id") && strcmp(jstr(body, "id"), c->arg[0]) != 0)) {
        outcome(c, 422, "processing",
                "only cancellation is supported: resourceType Appointment, the same id, "
                "status cancelled");
        json_decref(body);
        return;
    }
    pthread_mutex_lock(&b->lock);
    json_t *a = json_object_get(b->appts, c->arg[0]);
    json_t *copy = NULL;
    if (a) {
        if (strcmp(jstr(a, "status"), "cancelled") != 0) {
            json_t *slot = json_array_get(json_object_get(a, "slot"), 0);
            const char *ref = jstr(slot, "reference");
            if (ref && !strncmp(ref, "Slot/", 5))
                json_object_del(b->busy, ref + 5);
            json_object_set_new(a, "status", json_string("cancelled"));
            json_t *why = json_object_get(body, "cancelationReason");
            if (why)
                json_object_set(a, "cancelationReason", why);
            set_meta(a, version_of(a) + 1);
            b->n_cancelled++;
        }
        copy = json_deep_copy(a);
    }
    pthread_mutex_unlock(&b->lock);
    json_decref(body);
    if (!copy)
        outcome(c, 404, "not-found", "no such Appointment");
    else
        fhir_respond(c, 200, copy);
}

/* GET /Appointment?identifier=system|value */
static void on_appointment_search(tn_fake_call_t *c)
{
    bk_t *b = c->ctx;
    if (!authorized(c))
        return;
    const char *ident = tn_http_req_query(c->req, "identifier");
    json_t *entries = json_array();
    pthread_mutex_lock(&b->lock);
    const char *key;
    json_t *a;
    json_object_foreach(b->appts, key, a)
    {
        char *k = ident_key(a);
        if (!ident || (k && !strcmp(k, ident)))
            json_array_append_new(
                entries, json_pack("{sO s{ss}}", "resource", a, "search", "mode", "match"));
        free(k);
    }
    pthread_mutex_unlock(&b->lock);
    fhir_respond(c, 200,
                 json_pack("{ss ss sI so}", "resourceType", "Bundle", "type", "searchset", "total",
                           (json_int_t)json_array_size(entries), "entry", entries));
}

/* ============================================================================================ */
/* Admin                                                                                        */

static json_t *admin_body(tn_fake_call_t *c, const char *field, json_int_t *v)
{
    char msg[256];
    json_t *body = tn_fake_body_json(c, msg, sizeof(msg));
    json_t *f = body ? json_object_get(body, field) : NULL;
    if (!json_is_integer(f) || json_integer_value(f) < 0) {
        snprintf(msg, sizeof(msg), "expected {\"%s\": integer >= 0}", field);
        outcome(c, 400, "invalid", msg);
        json_decref(body);
        return NULL;
    }
    *v = json_integer_value(f);
    return body;
}

/* POST /admin/down {"seconds": N}: 503 for everything but admin for N seconds (0: back up). */
static void on_admin_down(tn_fake_call_t *c)
{
    bk_t *b = c->ctx;
    json_int_t s;
    json_t *body = admin_body(c, "seconds", &s);
    if (!body)
        return;
    pthread_mutex_lock(&b->lock);
    b->down_until_ms = s ? tn_clock_mono_ms() + (int64_t)s * 1000 : 0;
    pthread_mutex_unlock(&b->lock);
    json_decref(body);
    TN_LOG(TN_LOG_INFO, "fake booking down for %lld s", (long long)s);
    tn_http_req_respond_json(c->req, 200, json_pack("{sI}", "down_seconds", s));
}

/* POST /admin/steal {"count": N}: the next N creates find their slot just taken (409). */
static void on_admin_steal(tn_fake_call_t *c)
{
    bk_t *b = c->ctx;
    json_int_t n;
    json_t *body = admin_body(c, "count", &n);
    if (!body)
        return;
    pthread_mutex_lock(&b->lock);
    b->steal = n;
    pthread_mutex_unlock(&b->lock);
    json_decref(body);
    tn_http_req_respond_json(c->req, 200, json_pack("{sI}", "steal", n));
}

/* POST /admin/refuse {"count": N, "status": S}: the next N creates are refused with S (4xx). */
static void on_admin_refuse(tn_fake_call_t *c)
{
    bk_t *b = c->ctx;
    json_int_t n;
    json_t *body = admin_body(c, "count", &n);
    if (!body)
        return;
    json_t *st = json_object_get(body, "status");
    json_int_t status = json_is_integer(st) ? json_integer_value(st) : 422;
    json_decref(body);
    if (status < 400 || status > 499) {
        outcome(c, 400, "invalid", "status must be a 4xx");
        return;
    }
    pthread_mutex_lock(&b->lock);
    b->refuse = n;
    b->refuse_status = status;
    pthread_mutex_unlock(&b->lock);
    tn_http_req_respond_json(c->req, 200, json_pack("{sIsI}", "refuse", n, "status", status));
}

/* POST /admin/revoke: every token issued so far stops working (401 invalid_token). */
static void on_admin_revoke(tn_fake_call_t *c)
{
    bk_t *b = c->ctx;
    pthread_mutex_lock(&b->lock);
    size_t n = b->ntokens;
    b->ntokens = 0;
    pthread_mutex_unlock(&b->lock);
    tn_http_req_respond_json(c->req, 200, json_pack("{sI}", "revoked", (json_int_t)n));
}

/* GET /admin/appointments: every appointment, cancelled ones too. */
static void on_admin_appointments(tn_fake_call_t *c)
{
    bk_t *b = c->ctx;
    json_t *list = json_array();
    pthread_mutex_lock(&b->lock);
    const char *key;
    json_t *a;
    json_object_foreach(b->appts, key, a)
    {
        json_array_append(list, a);
    }
    json_t *copy = json_deep_copy(list);
    pthread_mutex_unlock(&b->lock);
    json_decref(list);
    tn_http_req_respond_json(c->req, 200, json_pack("{so}", "appointments", copy));
}

static const tn_fake_route_t bk_routes[] = {
    {"POST", "/token", "POST /token", on_token, 0},
    {"GET", "/Slot", "GET /Slot", on_slot_search, 0},
    {"POST", "/Appointment", "POST /Appointment", on_appointment_create, 0},
    {"GET", "/Appointment", "GET /Appointment", on_appointment_search, 0},
    {"GET", "/Appointment/*", "GET /Appointment/{id}", on_appointment_read, 0},
    {"PUT", "/Appointment/*", "PUT /Appointment/{id}", on_appointment_update, 0},
    {"POST", "/admin/down", "POST /admin/down", on_admin_down, TN_FAKE_ADMIN},
    {"POST", "/admin/steal", "POST /admin/steal", on_admin_steal, TN_FAKE_ADMIN},
    {"POST", "/admin/refuse", "POST /admin/refuse", on_admin_refuse, TN_FAKE_ADMIN},
    {"POST", "/admin/revoke", "POST /admin/revoke", on_admin_revoke, TN_FAKE_ADMIN},
    {"GET", "/admin/appointments", "GET /admin/appointments", on_admin_appointments, TN_FAKE_ADMIN},
};

static json_t *bk_stats(void *ctx)
{
    bk_t *b = ctx;
    pthread_mutex_lock(&b->lock);
    size_t booked = 0;
    const char *key;
    json_t *a;
    json_object_foreach(b->appts, key, a)
    {
        booked += !strcmp(jstr(a, "status"), "booked");
    }
    json_t *o = json_pack(
        "{s{sIsI} s{sIsI} s{sIsIsIsI} sI}", "tokens", "issued", (json_int_t)b->n_tokens, "active",
        (json_int_t)b->ntokens, "appointments", "booked", (json_int_t)booked, "cancelled",
        (json_int_t)b->n_cancelled, "creates", "created", (json_int_t)b->n_created, "existing",
        (json_int_t)b->n_existing, "conflict", (json_int_t)b->n_conflict, "rejected",
        (json_int_t)b->n_rejected, "unauthorized_api", (json_int_t)b->n_unauth);
    pthread_mutex_unlock(&b->lock);
    return o;
}

static void bk_reset(void *ctx)
{
    bk_t *b = ctx;
    pthread_mutex_lock(&b->lock);
    b->ntokens = 0;
    json_object_clear(b->appts);
    json_object_clear(b->busy);
    json_object_clear(b->by_ident);
    b->down_until_ms = 0;
    b->steal = 0;
    b->refuse = 0;
    b->n_tokens = b->n_created = b->n_existing = b->n_conflict = b->n_rejected = 0;
    b->n_cancelled = b->n_unauth = 0;
    pthread_mutex_unlock(&b->lock);
}

static const tn_fake_api_t bk_api = {
    .error = bk_error,
    .authorize = NULL,
    .malformed_body = "{\"resourceType\":\"Bundle\",\"type\":\"searchset\",\"entry\":[{",
    .stats = bk_stats,
    .reset = bk_reset,
};

static void bk_free(bk_t *b)
{
    tn_fake_destroy(b->fake);
    json_decref(b->appts);
    json_decref(b->busy);
    json_decref(b->by_ident);
    free(b->tokens);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

static tn_err_t bk_init(tn_app_t *app, void *cfgp, void **state)
{
    char errbuf[256];
    bk_t *b = tn_xcalloc(1, sizeof(*b));
    b->cfg = cfgp;
    pthread_mutex_init(&b->lock, NULL);
    b->appts = json_object();
    b->busy = json_object();
    b->by_ident = json_object();
    if (b->cfg->fake.api_key && *b->cfg->fake.api_key) {
        TN_LOG(TN_LOG_ERROR, "fake booking: the API needs OAuth2 tokens, not TAINA_FAKE_API_KEY");
        bk_free(b);
        return TN_ERR_CONFIG;
    }
    b->fake = tn_fake_new(&bk_api, bk_routes, TN_ARRAY_LEN(bk_routes), b, &b->cfg->fake, errbuf,
                          sizeof(errbuf));
    if (!b->fake) {
        TN_LOG(TN_LOG_ERROR, "%s", errbuf);
        bk_free(b);
        return TN_ERR_CONFIG;
    }
    tn_err_t rc = tn_fake_serve(b->fake, app);
    if (rc != TN_OK) {
        bk_free(b);
        return rc;
    }
    TN_LOG(TN_LOG_INFO, "fake booking listening on port %d", tn_app_http_port(app));
    *state = b;
    return TN_OK;
}

static tn_err_t bk_run(tn_app_t *app, void *state)
{
    (void)app;
    (void)state;
    while (!tn_lifecycle_wait(-1))
        ;
    return TN_OK;
}

static void bk_shutdown(tn_app_t *app, void *state)
{
    (void)app;
    if (state)
        bk_free(state);
}

static const tn_app_def_t bk_def = {
    .name = "fake-booking",
    .summary = "test double of a booking system: OAuth2 client credentials and FHIR R4 Slot / "
               "Appointment, with faults",
    .features = TN_APP_HTTP,
    .keys = bk_keys,
    .nkeys = TN_ARRAY_LEN(bk_keys),
    .cfg_size = sizeof(bk_cfg_t),
    .init = bk_init,
    .run = bk_run,
    .shutdown = bk_shutdown,
};

int main(int argc, char **argv)
{
    return tn_app_main(&bk_def, argc, argv, environ);
}
