/* appointments: the booking system client. OAuth2 client credentials (RFC 6749 4.4): a token is
 * fetched when needed, cached until shortly before it expires, and fetched again once when the
 * API answers 401. The first driver speaks a FHIR R4 subset (CONTRACTS.md 5.4): search free
 * Slots of the service in the preferred window, create a booked Appointment for the first one
 * (conditional create on the request id, so a retried create never books twice), move on to
 * the next slot when one was taken meanwhile (409/412), cancel by updating the status. */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "appointments.h"
#include "taina/buf.h"
#include "taina/clock.h"
#include "taina/log.h"
#include "taina/mem.h"

#define FHIR_JSON            "application/fhir+json"
#define REQUEST_SYSTEM       "urn:taina:appointments:request-id"
#define ID_SYSTEM            "urn:taina:appointments:id-number"
#define BOOKING_MAX_RESPONSE ((size_t)1 << 20) /* token, Bundle of <= 100 slots, Appointment */

struct booking {
    const appt_cfg_t *cfg;
    appt_metrics_t *m;
    tn_breaker_t *breaker;    /* borrowed */
    tn_http_client_t *api;    /* FHIR base */
    tn_http_client_t *auth;   /* token endpoint (absolute URL) */
    char *basic;              /* "Authorization: Basic ..." */
    pthread_mutex_t lock;     /* the token */
    char *token;              /* "Authorization: Bearer ..." */
    int64_t token_expires_ms; /* monotonic, skew applied */
    uint64_t token_gen;       /* bumped at each fetch */
};

/* ============================================================================================ */
/* Helpers                                                                                      */

/* Percent-encoding of everything but RFC 3986 unreserved characters. */
static void url_enc(tn_buf_t *b, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~')
            tn_buf_add(b, s, 1);
        else
            tn_buf_addf(b, "%%%02X", ch);
    }
}

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* The first OperationOutcome diagnostics (or the HTTP description) for a reason line. */
static void describe(const tn_http_response_t *resp, char *out, size_t len)
{
    json_t *doc = json_loadb(resp->body.data ? resp->body.data : "", resp->body.len, 0, NULL);
    const json_t *issue = json_array_get(json_object_get(doc, "issue"), 0);
    const char *d = jstr(issue, "diagnostics");
    const char *e =
        jstr(doc, "error_description") ? jstr(doc, "error_description") : jstr(doc, "error");
    if (d || e)
        snprintf(out, len, "HTTP %ld: %s", resp->status, d ? d : e);
    else
        tn_http_response_describe(resp, out, len);
    json_decref(doc);
}

booking_t *booking_new(const appt_cfg_t *cfg, appt_metrics_t *m, tn_metrics_t *reg,
                       tn_breaker_t *breaker, char *errbuf, size_t errlen)
{
    booking_t *bk = tn_xcalloc(1, sizeof(*bk));
    bk->cfg = cfg;
    bk->m = m;
    bk->breaker = breaker;
    pthread_mutex_init(&bk->lock, NULL);
    tn_http_client_opts_t o = tn_http_client_opts_default();
    o.upstream = "booking";
    o.base_url = cfg->booking_url;
    o.deadline_ms = cfg->booking_timeout_ms;
    o.timeout_ms = cfg->booking_timeout_ms;
    o.max_attempts = 3;
    /* A Bundle of at most 100 slots or one Appointment is a few KB; a larger answer is refused
     * as it arrives instead of being held (and its pages kept by malloc) per worker. */
    o.max_response_bytes = BOOKING_MAX_RESPONSE;
    o.metrics = reg;
    o.pool_size = (int)cfg->workers + 2;
    bk->api = tn_http_client_new(&o, errbuf, errlen);
    o.upstream = "booking_token";
    o.base_url = NULL;
    bk->auth = bk->api ? tn_http_client_new(&o, errbuf, errlen) : NULL;
    if (!bk->auth) {
        booking_destroy(bk);
        return NULL;
    }
    /* RFC 6749 2.3.1: id and secret form-urlencoded, then "id:secret" in base64 */
    tn_buf_t cred;
    tn_buf_init(&cred, 8192);
    url_enc(&cred, cfg->client_id);
    tn_buf_add(&cred, ":", 1);
    url_enc(&cred, cfg->client_secret);
    size_t b64 = 4 * ((cred.len + 2) / 3);
    char *hdr = tn_xmalloc(b64 + 32);
    int n = snprintf(hdr, 32, "Authorization: Basic ");
    EVP_EncodeBlock((unsigned char *)hdr + n, (const unsigned char *)cred.data, (int)cred.len);
    OPENSSL_cleanse(cred.data, cred.len);
    tn_buf_cleanup(&cred);
    bk->basic = hdr;
    return bk;
}

static void wipe_free(char *s)
{
    if (s)
        OPENSSL_cleanse(s, strlen(s));
    free(s);
}

void booking_destroy(booking_t *bk)
{
    if (!bk)
        return;
    tn_http_client_destroy(bk->api);
    tn_http_client_destroy(bk->auth);
    wipe_free(bk->basic);
    wipe_free(bk->token);
    pthread_mutex_destroy(&bk->lock);
    free(bk);
}

/* ============================================================================================ */
/* OAuth2                                                                                       */

/* Fetch a token (the lock held). TN_OK; TN_ERR_UNAVAILABLE (retry later); TN_ERR_AUTH
 * (refused: wrong credentials); TN_ERR_PARSE. */
static tn_err_t token_fetch(booking_t *bk, const char *reason, char *err, size_t errlen)
{
    tn_buf_t form;
    tn_buf_init(&form, 4096);
    tn_buf_adds(&form, "grant_type=client_credentials");
    if (bk->cfg->scope && *bk->cfg->scope) {
        tn_buf_adds(&form, "&scope=");
        url_enc(&form, bk->cfg->scope);
    }
    const char *hdrs[] = {bk->basic, "Accept: application/json", NULL};
    tn_http_request_t req = {.method = TN_HTTP_POST,
                             .path = bk->cfg->token_url,
                             .headers = hdrs,
                             .body = form.data,
                             .body_len = form.len,
                             .content_type = "application/x-www-form-urlencoded",
                             .flags = TN_HTTP_F_IDEMPOTENT}; /* a token more is harmless */
    tn_http_response_t resp;
    tn_http_response_init(&resp);
    tn_err_t rc = tn_http_client_request(bk->auth, &req, &resp);
    tn_buf_cleanup(&form);
    json_t *doc = NULL;
    if (rc != TN_OK) {
        snprintf(err, errlen, "token endpoint: %s", tn_err_str(rc));
        rc = rc == TN_ERR_TIMEOUT ? TN_ERR_UNAVAILABLE : rc;
        goto out;
    }
    if (resp.status != 200) {
        char d[300];
        describe(&resp, d, sizeof(d));
        snprintf(err, errlen, "token endpoint refused: %s", d);
        rc = resp.status == 400 || resp.status == 401 || resp.status == 403 ? TN_ERR_AUTH
                                                                            : TN_ERR_UNAVAILABLE;
        goto out;
    }
    doc = json_loadb(resp.body.data ? resp.body.data : "", resp.body.len, 0, NULL);
    const char *tok = jstr(doc, "access_token");
    const char *type = jstr(doc, "token_type");
    if (!tok || !*tok || !type || strcasecmp(type, "bearer") != 0 || strpbrk(tok, "\r\n")) {
        snprintf(err, errlen, "token endpoint: no bearer access_token in the answer");
        rc = TN_ERR_PARSE;
        goto out;
    }
    /* expires_in: a number of seconds; sloppy servers send a numeric string */
    json_t *ein = json_object_get(doc, "expires_in");
    int64_t ttl_ms = bk->cfg->token_default_ttl_ms;
    if (json_is_number(ein) && json_number_value(ein) > 0)
        ttl_ms = (int64_t)(json_number_value(ein) * 1000);
    else if (json_is_string(ein) && strtod(json_string_value(ein), NULL) > 0)
        ttl_ms = (int64_t)(strtod(json_string_value(ein), NULL) * 1000);
    int64_t skew = TN_MIN(bk->cfg->token_skew_ms, ttl_ms / 2);
    wipe_free(bk->token);
    bk->token = tn_xasprintf("Authorization: Bearer %s", tok);
    bk->token_expires_ms = tn_clock_mono_ms() + ttl_ms - skew;
    bk->token_gen++;
    tn_metric_add(bk->m->refreshes, TN_LABELS(reason), 1);
    TN_LOG(TN_LOG_INFO, "appointments: booking token fetched (%s), valid %lld s", reason,
           (long long)(ttl_ms / 1000));
    rc = TN_OK;
out:
    if (resp.body.data)
        OPENSSL_cleanse(resp.body.data, resp.body.len);
    json_decref(doc);
    tn_http_response_cleanup(&resp);
    return rc;
}

/* The current "Authorization: Bearer" line (copied into @p hdr, caller wipes and frees) and its
 * generation. A @p stale_gen >= 0 (the token a 401 was answered to) forces a new one, unless
 * another thread already replaced it. */
static tn_err_t token_get(booking_t *bk, int64_t stale_gen, char **hdr, uint64_t *gen, char *err,
                          size_t errlen)
{
    tn_err_t rc = TN_OK;
    pthread_mutex_lock(&bk->lock);
    const char *reason = NULL;
    if (!bk->token)
        reason = "initial";
    else if (stale_gen >= 0 && (uint64_t)stale_gen == bk->token_gen)
        reason = "unauthorized";
    else if (tn_clock_mono_ms() >= bk->token_expires_ms)
        reason = "expiry";
    if (reason)
        rc = token_fetch(bk, reason, err, errlen);
    if (rc == TN_OK) {
        *hdr = tn_xstrdup(bk->token);
        *gen = bk->token_gen;
    }
    pthread_mutex_unlock(&bk->lock);
    return rc;
}

/* One API call with the token; on 401 one new token and one more try. On TN_OK, resp holds
 * the answer (any status). */
static tn_err_t api_call(booking_t *bk, tn_http_method_t method, const char *path,
                         const char *extra, const json_t *body, unsigned flags,
                         tn_http_response_t *resp, char *err, size_t errlen)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    int64_t stale = -1;
    tn_err_t rc = TN_ERR;
    for (int round = 0; round < 2; round++) {
        char *auth = NULL;
        uint64_t gen = 0;
        rc = token_get(bk, stale, &auth, &gen, err, errlen);
        if (rc != TN_OK)
            break;
        const char *hdrs[] = {auth, "Accept: " FHIR_JSON, extra, NULL};
        tn_http_request_t req = {.method = method,
                                 .path = path,
                                 .headers = hdrs,
                                 .body = text,
                                 .body_len = text ? strlen(text) : 0,
                                 .content_type = text ? FHIR_JSON : NULL,
                                 .flags = flags};
        rc = tn_http_client_request(bk->api, &req, resp);
        wipe_free(auth);
        if (rc != TN_OK) {
            snprintf(err, errlen, "%s %s: %s", tn_http_method_name(method), path, tn_err_str(rc));
            rc = rc == TN_ERR_TIMEOUT ? TN_ERR_UNAVAILABLE : rc;
            break;
        }
        if (resp->status != 401)
            break;
        stale = (int64_t)gen; /* the token was refused: one new one */
        describe(resp, err, errlen);
    }
    if (text)
        OPENSSL_cleanse(text, strlen(text)); /* it may carry the id number */
    free(text);
    return rc;
}

/* ============================================================================================ */
/* FHIR                                                                                         */

/* Free slots of the request's service in its window, in the order the server gives (by start). */
static tn_err_t search_slots(booking_t *bk, const appt_claim_t *c, json_t **entries,
                             booking_result_t *out)
{
    tn_buf_t path;
    tn_buf_init(&path, 4096);
    tn_buf_adds(&path, "/Slot?service-type=");
    url_enc(&path, c->service_code);
    tn_buf_adds(&path, "&status=free&start=ge");
    url_enc(&path, c->window_from);
    tn_buf_adds(&path, "&start=lt");
    url_enc(&path, c->window_to);
    tn_buf_addf(&path, "&_count=%lld", (long long)bk->cfg->max_slots);
    tn_http_response_t resp;
    tn_http_response_init(&resp);
    tn_err_t rc = api_call(bk, TN_HTTP_GET, path.data, NULL, NULL, 0, &resp, out->reason,
                           sizeof(out->reason));
    tn_buf_cleanup(&path);
    *entries = NULL;
    if (rc == TN_OK && resp.status == 200) {
        json_t *doc = json_loadb(resp.body.data ? resp.body.data : "", resp.body.len, 0, NULL);
        json_t *e = json_object_get(doc, "entry");
        if (jstr(doc, "resourceType") && !strcmp(jstr(doc, "resourceType"), "Bundle") &&
            (!e || json_is_array(e))) {
            *entries = e ? json_incref(e) : json_array();
        } else {
            snprintf(out->reason, sizeof(out->reason), "Slot search: the answer is no Bundle");
            rc = TN_ERR_UNAVAILABLE; /* a garbled answer: worth another try */
        }
        json_decref(doc);
    } else if (rc == TN_OK) {
        char d[400];
        describe(&resp, d, sizeof(d));
        snprintf(out->reason, sizeof(out->reason), "Slot search: %s", d);
        rc = resp.status >= 500 || resp.status == 429 || resp.status == 401 ? TN_ERR_UNAVAILABLE
                                                                            : TN_ERR_UPSTREAM;
    } else if (rc == TN_ERR_AUTH || rc == TN_ERR_PARSE) {
        rc = TN_ERR_UNAVAILABLE; /* credentials may be fixed; the attempts cap the retries */
    }
    tn_http_response_cleanup(&resp);
    return rc;
}

static json_t *appointment_json(const appt_claim_t *c, const char *identifier, const json_t *slot)
{
    char *ref = tn_xasprintf("Slot/%s", jstr(slot, "id"));
    json_t *actor = json_pack("{ss s{ssss}}", "display", c->citizen_name, "identifier", "system",
                              ID_SYSTEM, "value", identifier);
    json_t *a = json_pack("{ss ss s[{ssss}] s[{s[{ss}]}] s[{ss}] ss ss s[{so ss ss}] ss}",
                          "resourceType", "Appointment", "status", "booked", "identifier", "system",
                          REQUEST_SYSTEM, "value", c->request_id, "serviceType", "coding", "code",
                          c->service_code, "slot", "reference", ref, "start", jstr(slot, "start"),
                          "end", jstr(slot, "end"), "participant", "actor", actor, "required",
                          "required", "status", "accepted", "description", "Booked by Taina");
    if (c->phone && *c->phone)
        json_object_set_new(a, "comment", json_sprintf("Phone: %s", c->phone));
    free(ref);
    return a;
}

/* Create the appointment for one slot. TN_OK booked; TN_ERR_EXISTS the slot was taken;
 * TN_ERR_UNAVAILABLE retry later; TN_ERR_UPSTREAM refused for good. */
static tn_err_t create(booking_t *bk, const appt_claim_t *c, const char *identifier,
                       const json_t *slot, booking_result_t *out)
{
    json_t *body = appointment_json(c, identifier, slot);
    /* conditional create: a retry after a lost answer finds the appointment it made */
    char *ine = tn_xasprintf("If-None-Exist: identifier=%s|%s", REQUEST_SYSTEM, c->request_id);
    tn_http_response_t resp;
    tn_http_response_init(&resp);
    tn_err_t rc = api_call(bk, TN_HTTP_POST, "/Appointment", ine, body, TN_HTTP_F_IDEMPOTENT, &resp,
                           out->reason, sizeof(out->reason));
    json_decref(body);
    free(ine);
    if (rc == TN_OK && (resp.status == 201 || resp.status == 200)) {
        json_t *doc = json_loadb(resp.body.data ? resp.body.data : "", resp.body.len, 0, NULL);
        const char *id = jstr(doc, "id"), *st = jstr(doc, "status");
        const char *ref = jstr(json_array_get(json_object_get(doc, "slot"), 0), "reference");
        if (id && *id && strlen(id) < sizeof(out->external_id) && jstr(doc, "start") &&
            jstr(doc, "end") && st && strcmp(st, "cancelled") != 0) {
            snprintf(out->external_id, sizeof(out->external_id), "%s", id);
            snprintf(out->slot_id, sizeof(out->slot_id), "%s",
                     ref && !strncmp(ref, "Slot/", 5) ? ref + 5 : jstr(slot, "id"));
            snprintf(out->start, sizeof(out->start), "%s", jstr(doc, "start"));
            snprintf(out->end, sizeof(out->end), "%s", jstr(doc, "end"));
        } else {
            /* created or found, but unreadable: the next attempt's conditional create finds
             * it again */
            snprintf(out->reason, sizeof(out->reason),
                     "Appointment create: HTTP %ld without a readable booked Appointment",
                     resp.status);
            rc = TN_ERR_UNAVAILABLE;
        }
        json_decref(doc);
    } else if (rc == TN_OK) {
        char d[400];
        describe(&resp, d, sizeof(d));
        snprintf(out->reason, sizeof(out->reason), "Appointment create: %s", d);
        if (resp.status == 409 || resp.status == 412)
            rc = TN_ERR_EXISTS;
        else if (resp.status >= 500 || resp.status == 429 || resp.status == 401 ||
                 resp.status == 408)
            rc = TN_ERR_UNAVAILABLE;
        else
            rc = TN_ERR_UPSTREAM;
    } else if (rc == TN_ERR_AUTH || rc == TN_ERR_PARSE) {
        rc = TN_ERR_UNAVAILABLE;
    }
    tn_http_response_cleanup(&resp);
    return rc;
}

/* The breaker hears how the booking system did: TN_ERR_UNAVAILABLE (down, slow, garbled, or
 * its credentials refused) against it; anything else it answered for it. */
static void note(booking_t *bk, tn_err_t rc)
{
    tn_breaker_record(bk->breaker, rc == TN_ERR_UNAVAILABLE ? rc : TN_OK);
}

void booking_book(booking_t *bk, const appt_claim_t *c, const char *identifier,
                  booking_result_t *out)
{
    memset(out, 0, sizeof(*out));
    json_t *entries = NULL;
    tn_err_t rc = search_slots(bk, c, &entries, out);
    if (rc != TN_OK) {
        note(bk, rc);
        out->outcome = rc == TN_ERR_UPSTREAM ? BOOKING_FAILED : BOOKING_RETRY;
        return;
    }
    size_t i;
    json_t *e;
    size_t tried = 0;
    json_array_foreach(entries, i, e)
    {
        const json_t *slot = json_object_get(e, "resource");
        const char *st = jstr(slot, "status");
        if (!jstr(slot, "id") || !jstr(slot, "start") || !jstr(slot, "end") ||
            (st && strcmp(st, "free") != 0))
            continue;
        tried++;
        rc = create(bk, c, identifier, slot, out);
        if (rc == TN_OK) {
            note(bk, rc);
            out->outcome = BOOKING_OK;
            goto out;
        }
        if (rc != TN_ERR_EXISTS) {
            note(bk, rc);
            out->outcome = rc == TN_ERR_UPSTREAM ? BOOKING_FAILED : BOOKING_RETRY;
            goto out;
        }
        out->slots_taken++; /* taken meanwhile: the next one */
        TN_LOG(TN_LOG_INFO, "appointments: slot %s was taken, trying the next", jstr(slot, "id"));
    }
    note(bk, TN_OK); /* it answered: no slot, or every one taken */
    if (tried == 0) {
        out->outcome = BOOKING_FAILED;
        snprintf(out->reason, sizeof(out->reason), "no free slot for service %s between %s and %s",
                 c->service_code, c->window_from, c->window_to);
    } else {
        out->outcome = BOOKING_RETRY; /* every slot offered was taken: search again */
        snprintf(out->reason, sizeof(out->reason), "the %zu slots offered were taken meanwhile",
                 tried);
    }
out:
    json_decref(entries);
}

tn_err_t booking_cancel(booking_t *bk, const char *external_id, const char *reason, char *err,
                        size_t errlen)
{
    tn_buf_t path;
    tn_buf_init(&path, 1024);
    tn_buf_adds(&path, "/Appointment/");
    url_enc(&path, external_id);
    json_t *body =
        json_pack("{ss ss ss s{ss} s[{s[{ss}] ss}]}", "resourceType", "Appointment", "id",
                  external_id, "status", "cancelled", "cancelationReason", "text", reason,
                  "participant", "type", "text", "patient", "status", "declined");
    tn_http_response_t resp;
    tn_http_response_init(&resp);
    tn_err_t rc = api_call(bk, TN_HTTP_PUT, path.data, NULL, body, 0, &resp, err, errlen);
    tn_buf_cleanup(&path);
    json_decref(body);
    if (rc == TN_OK && resp.status != 200 && resp.status != 404) {
        describe(&resp, err, errlen);
        rc = resp.status >= 500 || resp.status == 429 || resp.status == 401 ? TN_ERR_UNAVAILABLE
                                                                            : TN_ERR_UPSTREAM;
    } else if (rc == TN_OK && resp.status == 404) {
        TN_LOG(TN_LOG_WARN,
               "appointments: appointment %s unknown to the booking system while "
               "cancelling: taken as cancelled",
               external_id);
    } else if (rc != TN_OK) {
        rc = TN_ERR_UNAVAILABLE;
    }
    note(bk, rc);
    tn_http_response_cleanup(&resp);
    return rc;
}
