/* ingest: POST /v1/tickets, one JSON ticket or an NDJSON batch, answered only after the broker
 * acknowledged (or refused) every accepted item. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ingest.h"
#include "taina/clock.h"
#include "taina/log.h"
#include "taina/mem.h"
#include "taina/trace.h"

static json_t *error_obj(const char *code, const char *msg, const tn_schema_error_t *se)
{
    json_t *e = json_pack("{s:s, s:s}", "code", code, "message", msg);
    if (se) {
        json_object_set_new(e, "path", json_string(*se->instance_path ? se->instance_path : "/"));
        json_object_set_new(e, "keyword", json_string(se->keyword));
    }
    return e;
}

void ingest_item_prepare(const ingest_rules_t *rules, ingest_item_t *it, const char *tenant,
                         const char *now)
{
    tn_schema_error_t se;
    size_t nse = 0;
    char line[900];
    if (tn_schema_validate(rules->http_ticket, it->doc, &se, 1, &nse) != TN_OK) {
        it->error = error_obj("schema_violation",
                              nse ? tn_schema_error_format(&se, line, sizeof(line)) : "invalid",
                              nse ? &se : NULL);
        goto rejected;
    }
    if (!json_object_get(it->doc, "ticket_id")) {
        char id[40];
        json_object_set_new(it->doc, "ticket_id", json_string(tn_uuid4(id, sizeof(id))));
    }
    if (!json_object_get(it->doc, "received_at"))
        json_object_set_new(it->doc, "received_at", json_string(now));
    json_object_set_new(it->doc, "schema_version", json_integer(1));
    json_object_set_new(it->doc, "tenant_id", json_string(tenant));
    if (tn_schema_validate(rules->raw, it->doc, &se, 1, &nse) != TN_OK) {
        it->error = error_obj("schema_violation",
                              nse ? tn_schema_error_format(&se, line, sizeof(line)) : "invalid",
                              nse ? &se : NULL);
        goto rejected;
    }
    it->id = json_string_value(json_object_get(it->doc, "ticket_id"));
    it->value = json_dumps(it->doc, JSON_COMPACT);
    return;
rejected:
    json_decref(it->doc);
    it->doc = NULL;
}

void ingest_items_free(ingest_item_t *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        json_decref(items[i].doc);
        json_decref(items[i].error);
        free(items[i].value);
    }
    free(items);
}

static tn_err_t body_error(ingest_body_error_t *err, int status, const char *code, const char *fmt,
                           ...) __attribute__((format(printf, 4, 5)));

static tn_err_t body_error(ingest_body_error_t *err, int status, const char *code, const char *fmt,
                           ...)
{
    va_list ap;
    err->status = status;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return status == 413 ? TN_ERR_TOO_LARGE : TN_ERR_INVALID;
}

tn_err_t ingest_body_parse(const char *body, size_t len, bool ndjson, int64_t max_items,
                           ingest_item_t **out, size_t *nout, ingest_body_error_t *err)
{
    json_error_t jerr;
    *out = NULL;
    *nout = 0;
    if (!ndjson) {
        json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!doc)
            return body_error(err, 400, "invalid_json", "line %d, column %d: %s", jerr.line,
                              jerr.column, jerr.text);
        *out = tn_xcalloc(1, sizeof(**out));
        (*out)[0] = (ingest_item_t){.line = 1, .doc = doc};
        *nout = 1;
        return TN_OK;
    }
    /* NDJSON: one ticket a line, blank lines skipped */
    size_t cap = 16, n = 0;
    ingest_item_t *items = tn_xcalloc(cap, sizeof(*items));
    int line = 0;
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(body + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - body) : len;
        line++;
        size_t s = pos, e = end;
        while (s < e && (body[s] == ' ' || body[s] == '\t' || body[s] == '\r'))
            s++;
        while (e > s && (body[e - 1] == ' ' || body[e - 1] == '\t' || body[e - 1] == '\r'))
            e--;
        pos = end + 1;
        if (s == e)
            continue;
        if ((int64_t)n >= max_items) {
            ingest_items_free(items, n);
            return body_error(err, 413, "too_many_items", "more than %lld lines in one request",
                              (long long)max_items);
        }
        json_t *doc = json_loadb(body + s, e - s, JSON_REJECT_DUPLICATES, &jerr);
        if (!doc) {
            ingest_items_free(items, n);
            return body_error(err, 400, "invalid_json", "line %d, column %d: %s", line, jerr.column,
                              jerr.text);
        }
        if (n == cap) {
            cap *= 2;
            items = tn_xrealloc(items, cap * sizeof(*items));
        }
        items[n++] = (ingest_item_t){.line = line, .doc = doc};
    }
    if (n == 0) {
        free(items);
        return body_error(err, 400, "invalid_json", "no NDJSON lines in the body");
    }
    *out = items;
    *nout = n;
    return TN_OK;
}

/* Produce the prepared items; returns how many the broker took. Failed ones get an error. */
static size_t produce(ingest_t *in, tn_http_req_t *req, ingest_item_t *items, size_t n,
                      int *too_large)
{
    tn_kafka_record_t *recs = tn_xcalloc(n ? n : 1, sizeof(*recs));
    size_t *idx = tn_xcalloc(n ? n : 1, sizeof(*idx));
    tn_err_t *res = tn_xcalloc(n ? n : 1, sizeof(*res));
    char tp[64];
    tn_kafka_header_t h[2];
    h[0] = tn_kafka_trace_header(tn_http_req_trace(req), tp, sizeof(tp));
    h[1] = (tn_kafka_header_t){TN_KAFKA_H_SCHEMA, "tickets.raw/1", 13};
    size_t m = 0, ok = 0;
    for (size_t i = 0; i < n; i++) {
        if (!items[i].doc)
            continue;
        recs[m] = (tn_kafka_record_t){in->cfg->topic_raw,
                                      -1,
                                      items[i].id,
                                      strlen(items[i].id),
                                      items[i].value,
                                      strlen(items[i].value),
                                      h,
                                      2};
        idx[m++] = i;
    }
    /* The producer's message.timeout.ms is the produce timeout: every record has its final
     * answer (delivered or failed) before this wait ends. */
    if (m)
        tn_kafka_produce_sync(in->http_producer, recs, m, res, in->cfg->produce_timeout_ms + 5000);
    for (size_t j = 0; j < m; j++) {
        ingest_item_t *it = &items[idx[j]];
        if (res[j] == TN_OK) {
            ok++;
            continue;
        }
        *too_large |= res[j] == TN_ERR_TOO_LARGE;
        it->error = error_obj(res[j] == TN_ERR_TOO_LARGE ? "too_large" : "unavailable",
                              res[j] == TN_ERR_TOO_LARGE
                                  ? "the record is larger than the broker accepts"
                                  : "Kafka did not take the record in time; retry later",
                              NULL);
        json_decref(it->doc);
        it->doc = NULL;
    }
    free(recs);
    free(idx);
    free(res);
    return ok;
}

void ingest_http_tickets(tn_http_req_t *req, void *opaque)
{
    ingest_t *in = opaque;
    size_t len;
    const char *body = tn_http_req_body(req, &len);
    const char *ct = tn_http_req_content_type(req);
    int ndjson = ct && !strncasecmp(ct, "application/x-ndjson", 20);
    const char *tenant = tn_http_req_tenant(req);
    ingest_item_t *items = NULL;
    size_t n;
    ingest_body_error_t berr;
    if (ingest_body_parse(body, len, ndjson, in->cfg->max_items, &items, &n, &berr) != TN_OK) {
        tn_http_req_respond_error(req, berr.status, berr.code, "%s", berr.message);
        return;
    }

    char now[40];
    tn_clock_rfc3339(now, sizeof(now), tn_clock_wall_ms());
    size_t valid = 0;
    for (size_t i = 0; i < n; i++) {
        ingest_item_prepare(&in->rules, &items[i], tenant, now);
        valid += items[i].doc != NULL;
    }
    int too_large = 0;
    size_t accepted = produce(in, req, items, n, &too_large);
    tn_metric_add(in->m.http_items, TN_LABELS("accepted"), (double)accepted);
    tn_metric_add(in->m.http_items, TN_LABELS("rejected"), (double)(n - accepted));

    int status = accepted ? 202 : valid == 0 ? 422 : too_large ? 413 : 503;
    if (status == 503)
        tn_http_req_add_header(req, "Retry-After", "1");
    if (!ndjson) {
        if (accepted) {
            tn_http_req_respond_json(
                req, 202, json_pack("{s:s, s:s}", "ticket_id", items[0].id, "status", "accepted"));
        } else {
            tn_http_req_respond_json(req, status, json_pack("{s:O}", "error", items[0].error));
        }
        ingest_items_free(items, n);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_pack("{s:i, s:s}", "line", items[i].line, "status",
                              items[i].doc ? "accepted" : "rejected");
        if (items[i].doc)
            json_object_set_new(r, "ticket_id", json_string(items[i].id));
        else
            json_object_set(r, "error", items[i].error);
        json_array_append_new(list, r);
    }
    tn_http_req_respond_json(req, status,
                             json_pack("{s:I, s:I, s:o}", "accepted", (json_int_t)accepted,
                                       "rejected", (json_int_t)(n - accepted), "items", list));
    ingest_items_free(items, n);
}
