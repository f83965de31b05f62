/* devstack's fault control API: loopback HTTP over the mock cluster's fault functions. */
#include "control.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "taina/http_server.h"
#include "taina/log.h"
#include "taina/mem.h"

struct devstack_control {
    tn_devstack_t *ds;    /* borrowed */
    pthread_mutex_t lock; /* devstack's fault functions take one caller at a time */
    tn_http_server_t *srv;
};

static const char *const json_only[] = {"application/json", NULL};

/* The body as a JSON object, or NULL after answering 400. */
static json_t *body_object(tn_http_req_t *req)
{
    size_t len;
    const char *body = tn_http_req_body(req, &len);
    json_error_t jerr;
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(doc)) {
        tn_http_req_respond_error(req, 400, "invalid_body", "expected a JSON object%s%s",
                                  doc ? "" : ": ", doc ? "" : jerr.text);
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* The {id} path parameter, or 0 when it is not a number (then no broker matches it). */
static int broker_param(tn_http_req_t *req)
{
    const char *s = tn_http_req_param(req, "id");
    char *end = NULL;
    long id = strtol(s, &end, 10);
    return (*s && !*end && id >= 1 && id <= 1000) ? (int)id : 0;
}

static void respond(tn_http_req_t *req, tn_err_t rc, const char *what, const char *unknown)
{
    if (rc == TN_OK) {
        TN_LOGF(TN_LOG_INFO, TN_F({"fault", what}), "devstack: %s", what);
        tn_http_req_respond_json(req, 200, json_pack("{s:b}", "ok", 1));
    } else if (rc == TN_ERR_INVALID || rc == TN_ERR_KAFKA) {
        tn_http_req_respond_error(req, 404, unknown, "cannot apply \"%s\": %s", what,
                                  tn_err_str(rc));
    } else {
        tn_http_req_respond_error(req, 500, "internal", "%s: %s", what, tn_err_str(rc));
    }
}

static void broker_set_up(tn_http_req_t *req, devstack_control_t *ctl, int up)
{
    int id = broker_param(req);
    char what[64];
    snprintf(what, sizeof(what), "broker %d %s", id, up ? "up" : "down");
    pthread_mutex_lock(&ctl->lock);
    tn_err_t rc = tn_devstack_broker_set_up(ctl->ds, id, up);
    pthread_mutex_unlock(&ctl->lock);
    respond(req, rc, what, "unknown_broker");
}

static void on_down(tn_http_req_t *req, void *opaque)
{
    broker_set_up(req, opaque, 0);
}

static void on_up(tn_http_req_t *req, void *opaque)
{
    broker_set_up(req, opaque, 1);
}

static void on_rtt(tn_http_req_t *req, void *opaque)
{
    devstack_control_t *ctl = opaque;
    json_t *doc = body_object(req);
    if (!doc)
        return;
    json_t *ms = json_object_get(doc, "ms");
    if (!json_is_integer(ms) || json_integer_value(ms) < 0 || json_integer_value(ms) > 600000) {
        tn_http_req_respond_error(req, 400, "invalid_body", "\"ms\" must be an integer 0..600000");
        goto out;
    }
    int id = broker_param(req);
    char what[80];
    snprintf(what, sizeof(what), "broker %d rtt %d ms", id, (int)json_integer_value(ms));
    pthread_mutex_lock(&ctl->lock);
    tn_err_t rc = tn_devstack_broker_set_rtt(ctl->ds, id, (int)json_integer_value(ms));
    pthread_mutex_unlock(&ctl->lock);
    respond(req, rc, what, "unknown_broker");
out:
    json_decref(doc);
}

static void on_errors(tn_http_req_t *req, void *opaque)
{
    devstack_control_t *ctl = opaque;
    json_t *doc = body_object(req);
    if (!doc)
        return;
    const char *api = json_string_value(json_object_get(doc, "api"));
    const char *code = json_string_value(json_object_get(doc, "code"));
    json_t *count = json_object_get(doc, "count");
    if (!api || !code || !json_is_integer(count) || json_integer_value(count) < 1 ||
        json_integer_value(count) > 100000) {
        tn_http_req_respond_error(req, 400, "invalid_body",
                                  "expected {\"api\": NAME, \"count\": 1..100000, \"code\": "
                                  "KAFKA_ERROR_NAME}");
        goto out;
    }
    char what[160];
    snprintf(what, sizeof(what), "next %d %.40s requests fail with %.60s",
             (int)json_integer_value(count), api, code);
    pthread_mutex_lock(&ctl->lock);
    tn_err_t rc = tn_devstack_push_errors(ctl->ds, api, (size_t)json_integer_value(count), code);
    pthread_mutex_unlock(&ctl->lock);
    respond(req, rc, what, "unknown_api_or_error");
out:
    json_decref(doc);
}

static void on_leader(tn_http_req_t *req, void *opaque)
{
    devstack_control_t *ctl = opaque;
    json_t *doc = body_object(req);
    if (!doc)
        return;
    const char *topic = json_string_value(json_object_get(doc, "topic"));
    json_t *part = json_object_get(doc, "partition");
    json_t *broker = json_object_get(doc, "broker");
    if (!topic || !json_is_integer(part) || !json_is_integer(broker) ||
        json_integer_value(part) < 0 || json_integer_value(part) > 100000 ||
        json_integer_value(broker) < 1 || json_integer_value(broker) > 1000) {
        tn_http_req_respond_error(req, 400, "invalid_body",
                                  "expected {\"topic\": NAME, \"partition\": N, \"broker\": ID}");
        goto out;
    }
    char what[160];
    snprintf(what, sizeof(what), "leader of %.100s [%d] to broker %d", topic,
             (int)json_integer_value(part), (int)json_integer_value(broker));
    pthread_mutex_lock(&ctl->lock);
    tn_err_t rc = tn_devstack_set_leader(ctl->ds, topic, (int)json_integer_value(part),
                                         (int)json_integer_value(broker));
    pthread_mutex_unlock(&ctl->lock);
    respond(req, rc, what, "unknown_partition");
out:
    json_decref(doc);
}

devstack_control_t *devstack_control_start(tn_devstack_t *ds, int port, char *errbuf, size_t errlen)
{
    devstack_control_t *ctl = tn_xcalloc(1, sizeof(*ctl));
    ctl->ds = ds;
    pthread_mutex_init(&ctl->lock, NULL);
    const tn_http_route_t routes[] = {
        {"POST", "/broker/{id}/down", on_down, 0, NULL, ctl},
        {"POST", "/broker/{id}/up", on_up, 0, NULL, ctl},
        {"POST", "/broker/{id}/rtt", on_rtt, 0, json_only, ctl},
        {"POST", "/errors", on_errors, 0, json_only, ctl},
        {"POST", "/leader", on_leader, 0, json_only, ctl},
    };
    tn_http_server_opts_t o;
    tn_http_server_opts_init(&o);
    o.bind_addr = "127.0.0.1"; /* it can break the cluster: never beyond loopback */
    o.port = port;
    o.service = "devstack";
    o.threads = 1;
    o.max_body = 4096;
    if (tn_http_server_new(&o, routes, TN_ARRAY_LEN(routes), &ctl->srv, errbuf, errlen) != TN_OK ||
        tn_http_server_start(ctl->srv, errbuf, errlen) != TN_OK) {
        devstack_control_destroy(ctl);
        return NULL;
    }
    return ctl;
}

void devstack_control_destroy(devstack_control_t *ctl)
{
    if (!ctl)
        return;
    tn_http_server_destroy(ctl->srv);
    pthread_mutex_destroy(&ctl->lock);
    free(ctl);
}
