/* appointments: POST /v1/appointments (the same request as on the topic; the tenant comes from
 * the API key), GET and DELETE /v1/appointments/{request_id}, each limited to the caller's
 * tenant. POST answers once the request is stored (202; 200 for a request id seen before): the
 * booking itself happens in the workers, and GET or appointments.results tell the outcome. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appointments.h"
#include "taina/clock.h"
#include "taina/log.h"
#include "taina/mem.h"

static void respond_row(tn_http_req_t *req, int status, const appt_row_t *row)
{
    tn_http_req_respond(req, status, "application/json", row->view, strlen(row->view));
}

static void unavailable(tn_http_req_t *req, const char *what)
{
    tn_http_req_add_header(req, "Retry-After", "1");
    tn_http_req_respond_error(req, 503, "unavailable", "%s; retry later", what);
}

static bool ready_or_503(appt_t *a, tn_http_req_t *req)
{
    if (atomic_load(&a->migrated))
        return true;
    unavailable(req, "the database is not ready");
    return false;
}

/* A request id in a path must look like a UUID; anything else cannot exist. */
static bool uuid_like(const char *s)
{
    if (!s || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        char ch = s[i];
        bool hex = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
        if (i == 8 || i == 13 || i == 18 || i == 23 ? ch != '-' : !hex)
            return false;
    }
    return true;
}

static void on_post(tn_http_req_t *req, void *opaque)
{
    appt_t *a = opaque;
    if (!ready_or_503(a, req))
        return;
    size_t len;
    const char *body = tn_http_req_body(req, &len);
    appt_reject_t why = {0};
    json_t *doc = appt_request_parse(body, len, &why);
    if (!doc) {
        tn_metric_add(a->m.requests, TN_LABELS("http", "invalid"), 1);
        tn_http_req_respond_error(req, why.status, why.code, "%s", why.message);
        return;
    }
    /* the HTTP shape first (no tenant_id allowed), then the topic's with what the server adds */
    tn_schema_error_t se;
    size_t nse = 0;
    if (tn_schema_validate(a->schema_http, doc, &se, 1, &nse) != TN_OK) {
        json_decref(doc);
        tn_metric_add(a->m.requests, TN_LABELS("http", "invalid"), 1);
        tn_http_req_respond_json(
            req, 422,
            json_pack("{so}", "error",
                      nse ? tn_schema_error_json(&se)
                          : json_pack("{ssss}", "code", "schema_violation", "message", "invalid")));
        return;
    }
    char now[40];
    tn_clock_rfc3339(now, sizeof(now), tn_clock_wall_ms());
    json_object_set_new(doc, "schema_version", json_integer(1));
    json_object_set_new(doc, "tenant_id", json_string(tn_http_req_tenant(req)));
    json_object_set_new(doc, "requested_at", json_string(now));
    appt_request_t r;
    if (appt_request_from(a->schema_topic, doc, &r, &why) != TN_OK) {
        tn_metric_add(a->m.requests, TN_LABELS("http", "invalid"), 1);
        tn_http_req_respond_error(req, 422, why.code, "%s", why.message);
        appt_reject_cleanup(&why);
        return;
    }
    tn_log_ctx_set_request(r.request_id);
    bool created = false;
    appt_row_t row = {0};
    char err[512];
    tn_err_t rc = appt_accept(a, &r, a->cfg->db_timeout_ms, &created, &row, err, sizeof(err));
    if (rc == TN_OK) {
        tn_metric_add(a->m.requests, TN_LABELS("http", created ? "accepted" : "duplicate"), 1);
        respond_row(req, created ? 202 : 200, &row);
    } else if (rc == TN_ERR_EXISTS) {
        tn_metric_add(a->m.requests, TN_LABELS("http", "conflict"), 1);
        tn_http_req_respond_error(req, 409, "conflict", "%s", err);
    } else if (rc == TN_ERR_INVALID) {
        tn_metric_add(a->m.requests, TN_LABELS("http", "invalid"), 1);
        tn_http_req_respond_error(req, 422, "rejected", "the database refused a value: %s", err);
    } else {
        unavailable(req, "the database is not reachable");
    }
    appt_row_cleanup(&row);
    appt_request_cleanup(&r);
}

static void on_get(tn_http_req_t *req, void *opaque)
{
    appt_t *a = opaque;
    if (!ready_or_503(a, req))
        return;
    const char *id = tn_http_req_param(req, "request_id");
    appt_row_t row = {0};
    tn_err_t rc =
        uuid_like(id) ? appt_store_get(a, id, tn_http_req_tenant(req), &row) : TN_ERR_NOT_FOUND;
    if (rc == TN_OK)
        respond_row(req, 200, &row);
    else if (rc == TN_ERR_NOT_FOUND)
        tn_http_req_respond_error(req, 404, "not_found", "no such appointment request");
    else
        unavailable(req, "the database is not reachable");
    appt_row_cleanup(&row);
}

/* Cancel: not booked yet -> cancelled at once (a worker booking it meanwhile undoes its
 * booking); booked -> cancelled at the booking system first, then here; already cancelled ->
 * 200 as it is; failed -> 409. */
static void on_delete(tn_http_req_t *req, void *opaque)
{
    appt_t *a = opaque;
    if (!ready_or_503(a, req))
        return;
    const char *id = tn_http_req_param(req, "request_id");
    const char *tenant = tn_http_req_tenant(req);
    appt_row_t row = {0};
    char err[512];
    tn_err_t rc = uuid_like(id) ? TN_OK : TN_ERR_NOT_FOUND;
    /* the state may move under us (a worker books it): look again, a few times */
    for (int round = 0; rc == TN_OK && round < 5; round++) {
        rc = appt_store_get(a, id, tenant, &row);
        if (rc != TN_OK)
            break;
        if (!strcmp(row.status, "requested") || !strcmp(row.status, "booking")) {
            rc = appt_store_cancel_pending(a, id, tenant, &row);
            if (rc == TN_OK)
                tn_metric_add(a->m.outcomes, TN_LABELS("cancelled"), 1);
        } else if (!strcmp(row.status, "booked")) {
            char *ext = tn_xstrdup(row.external_id ? row.external_id : "");
            rc = appt_cancel_booked(a, id, tenant, ext, &row, err, sizeof(err));
            free(ext);
            if (rc == TN_AGAIN) { /* its circuit is open: no call made */
                char ra[24];
                snprintf(ra, sizeof(ra), "%lld",
                         (long long)(tn_breaker_retry_in_ms(&a->breaker) + 999) / 1000);
                tn_http_req_add_header(req, "Retry-After", strcmp(ra, "0") ? ra : "1");
                tn_http_req_respond_error(req, 503, "upstream_unavailable", "%s", err);
                appt_row_cleanup(&row);
                return;
            }
            if (rc == TN_ERR_UNAVAILABLE || rc == TN_ERR_UPSTREAM) {
                tn_http_req_add_header(req, "Retry-After", "2");
                tn_http_req_respond_error(req, 502, "booking_system",
                                          "the booking system did not cancel it: %s", err);
                appt_row_cleanup(&row);
                return;
            }
        } else if (!strcmp(row.status, "cancelled")) {
            break;
        } else {
            tn_http_req_respond_error(req, 409, "not_cancellable",
                                      "the request failed; there is nothing to cancel");
            appt_row_cleanup(&row);
            return;
        }
        if (rc == TN_OK)
            break;
        if (rc == TN_DECLINED)
            rc = TN_OK; /* changed meanwhile: look again */
    }
    if (rc == TN_OK)
        respond_row(req, 200, &row);
    else if (rc == TN_ERR_NOT_FOUND)
        tn_http_req_respond_error(req, 404, "not_found", "no such appointment request");
    else
        unavailable(req, "the database is not reachable");
    appt_row_cleanup(&row);
}

static const char *const json_only[] = {"application/json", NULL};

const tn_http_route_t appt_routes[] = {
    {"POST", "/v1/appointments", on_post, TN_HTTP_ROUTE_AUTH, json_only, NULL},
    {"GET", "/v1/appointments/{request_id}", on_get, TN_HTTP_ROUTE_AUTH, NULL, NULL},
    {"DELETE", "/v1/appointments/{request_id}", on_delete, TN_HTTP_ROUTE_AUTH, NULL, NULL},
};
const size_t appt_nroutes = TN_ARRAY_LEN(appt_routes);
