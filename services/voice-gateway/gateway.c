/* voice-gateway: the WebSocket endpoint (auth on upgrade, control messages, audio) and the HTTP
 * routes on the same port: /health, /ready, /metrics, POST /v1/sessions/token. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "taina/buf.h"
#include "taina/clock.h"
#include "taina/log.h"
#include "taina/mem.h"
#include "voice.h"

/* More bad control messages than this close the session (1008). */
#define MAX_BAD_MESSAGES 20

void vg_send_json(vg_session_t *s, json_t *msg)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (text)
        tn_ws_conn_send(s->conn, text, strlen(text), false);
    free(text);
}

void vg_send_error(vg_session_t *s, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    vg_send_json(s, json_pack("{s:s, s:s, s:s}", "type", "error", "code", code, "message", msg));
}

/* ------------------------------------------------------------------------------------------- */
/* Auth                                                                                          */

/* The key of "Bearer KEY" in @p hdr, or NULL. */
static const char *bearer(const char *hdr)
{
    if (strncasecmp(hdr, "Bearer ", 7) != 0)
        return NULL;
    hdr += 7;
    while (*hdr == ' ')
        hdr++;
    return *hdr ? hdr : NULL;
}

static const char *rag_key_for(const vg_t *g, const char *tenant)
{
    for (size_t i = 0; i < g->nrag_keys; i++)
        if (!strcmp(g->rag_keys[i].tenant, tenant))
            return g->rag_keys[i].key;
    return NULL;
}

/* The tenant of the request (API key header, else token); 0 or an HTTP status with a message.
 * *key gets the API key presented (for rag), or NULL. */
static int authenticate(vg_t *g, tn_ws_conn_t *c, char *tenant, char *key, size_t keylen,
                        char *code, char *msg)
{
    char hdr[512], tok[TN_AUTH_TOKEN_MAX + 2];
    key[0] = '\0';
    if (!g->auth) {
        snprintf(tenant, TN_AUTH_TENANT_MAX + 1, "default");
        return 0;
    }
    if (tn_ws_conn_header(c, "authorization", hdr, sizeof(hdr)) > 0) {
        const char *k = bearer(hdr), *t = NULL;
        if (!k || tn_auth_lookup(g->auth, k, strlen(k), &t) != TN_OK) {
            snprintf(code, 64, "unauthorized");
            snprintf(msg, 256, "unknown API key");
            return 401;
        }
        snprintf(tenant, TN_AUTH_TENANT_MAX + 1, "%s", t);
        snprintf(key, keylen, "%s", k);
        return 0;
    }
    int n = tn_ws_conn_query(c, "token", tok, sizeof(tok));
    if (n > 0) {
        tn_err_t rc = tn_auth_token_verify(g->token_secret, g->token_secret_len, tok,
                                           tn_clock_wall_ms() / 1000, tenant, NULL);
        if (rc == TN_OK)
            return 0;
        snprintf(code, 64, "unauthorized");
        snprintf(msg, 256, "%s", rc == TN_ERR_TIMEOUT ? "the token expired" : "invalid token");
        return 401;
    }
    snprintf(code, 64, "unauthorized");
    snprintf(msg, 256, "an API key (Authorization: Bearer) or a token query parameter is needed");
    return 401;
}

/* ------------------------------------------------------------------------------------------- */
/* WebSocket handlers (loop thread)                                                             */

static int on_upgrade(tn_ws_conn_t *c, void *opaque, char *code, char *msg)
{
    vg_t *g = opaque;
    char tenant[TN_AUTH_TENANT_MAX + 1], key[512];
    int st = authenticate(g, c, tenant, key, sizeof(key), code, msg);
    if (st) {
        tn_metric_add(g->m.refused, TN_LABELS("auth"), 1);
        return st;
    }
    const char *rk = key[0] ? key : rag_key_for(g, tenant);
    vg_session_t *s = vg_session_new(g, c, tenant, rk);
    char tp[sizeof(s->trace)];
    if (tn_ws_conn_header(c, "traceparent", tp, sizeof(tp)) > 0)
        snprintf(s->trace, sizeof(s->trace), "%s", tp);
    tn_ws_conn_set_user(c, s); /* the connection's reference */
    return 0;
}

static void on_open(tn_ws_conn_t *c, void *opaque)
{
    vg_t *g = opaque;
    int n = atomic_fetch_add(&g->nsessions, 1) + 1;
    tn_metric_set(g->m.active, TN_NOLABELS, n);
    (void)c;
}

static void bad_message(vg_session_t *s, const char *code, const char *detail)
{
    long n = atomic_fetch_add(&s->bad_messages, 1) + 1;
    vg_send_error(s, code, "%s", detail);
    if (n > MAX_BAD_MESSAGES)
        tn_ws_conn_close(s->conn, TN_WS_CLOSE_POLICY, "too many invalid messages");
}

static void on_control(vg_session_t *s, const uint8_t *data, size_t len)
{
    vg_t *g = s->g;
    json_error_t je;
    json_t *doc = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &je);
    if (!doc) {
        bad_message(s, "invalid_json", je.text);
        return;
    }
    tn_schema_error_t se;
    size_t nse = 0;
    if (tn_schema_validate(g->client_schema, doc, &se, 1, &nse) != TN_OK) {
        char why[600];
        snprintf(why, sizeof(why), "%s: %s", nse ? se.instance_path : "",
                 nse ? se.message : "not a client message");
        bad_message(s, "invalid_message", why);
        json_decref(doc);
        return;
    }
    const char *type = json_string_value(json_object_get(doc, "type"));
    if (!strcmp(type, "start")) {
        if (s->started)
            bad_message(s, "already_started", "the session has started already");
        else
            vg_session_start(s, json_string_value(json_object_get(doc, "lang")),
                             (int)json_integer_value(json_object_get(doc, "sample_rate")),
                             json_object_get(doc, "citizen"));
    } else if (!s->started) {
        bad_message(s, "not_started", "send a start message first");
    } else if (!strcmp(type, "stop")) {
        vg_session_flush(s);
    } else if (!strcmp(type, "text")) {
        vg_session_text(s, json_string_value(json_object_get(doc, "text")));
    } else if (!strcmp(type, "citizen")) {
        vg_session_set_citizen(s, doc);
    }
    json_decref(doc);
}

static void on_message(tn_ws_conn_t *c, const uint8_t *data, size_t len, bool binary, void *opaque)
{
    vg_session_t *s = tn_ws_conn_user(c);
    (void)opaque;
    if (!s)
        return;
    if (!binary)
        on_control(s, data, len);
    else if (!s->started)
        bad_message(s, "not_started", "audio before the start message");
    else
        vg_session_audio(s, data, len);
}

static void on_close(tn_ws_conn_t *c, int code, int http_status, void *opaque)
{
    vg_t *g = opaque;
    vg_session_t *s = tn_ws_conn_user(c);
    (void)http_status;
    if (!s)
        return;
    tn_ws_conn_set_user(c, NULL);
    int n = atomic_fetch_sub(&g->nsessions, 1) - 1;
    tn_metric_set(g->m.active, TN_NOLABELS, n);
    vg_session_closed(s, code);
    vg_session_release(s);
}

static const tn_ws_handlers_t handlers = {
    .on_upgrade = on_upgrade,
    .on_open = on_open,
    .on_message = on_message,
    .on_close = on_close,
};

/* ------------------------------------------------------------------------------------------- */
/* HTTP routes (loop thread)                                                                    */

static void respond_json(tn_ws_http_req_t *r, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    tn_ws_http_respond(r, status, "application/json", text, strlen(text));
    free(text);
}

static void http_health(tn_ws_http_req_t *r, void *opaque)
{
    (void)opaque;
    respond_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

static void http_ready(tn_ws_http_req_t *r, void *opaque)
{
    vg_t *g = opaque;
    const char *why = !atomic_load(&g->kafka_ok) ? "kafka unreachable"
                      : !atomic_load(&g->rag_ok) ? "rag not ready"
                      : !atomic_load(&g->stt_ok) ? "STT provider unreachable"
                      : !atomic_load(&g->tts_ok) ? "TTS provider unreachable"
                                                 : NULL;
    if (why)
        respond_json(r, 503, json_pack("{s:s, s:s}", "status", "not_ready", "reason", why));
    else
        respond_json(r, 200, json_pack("{s:s}", "status", "ready"));
}

static void http_metrics(tn_ws_http_req_t *r, void *opaque)
{
    vg_t *g = opaque;
    tn_buf_t b;
    tn_buf_init(&b, 16u << 20);
    if (tn_metrics_render(tn_app_metrics(g->app), &b) != TN_OK)
        tn_ws_http_respond(r, 500, "text/plain", "metrics too large\n", 18);
    else
        tn_ws_http_respond(r, 200, "text/plain; version=0.0.4", b.data, b.len);
    tn_buf_cleanup(&b);
}

/* POST /v1/sessions/token: an API key in, a short-lived signed token for ?token= out. */
static void http_token(tn_ws_http_req_t *r, void *opaque)
{
    vg_t *g = opaque;
    char hdr[512], tok[TN_AUTH_TOKEN_MAX + 1], at[40];
    const char *tenant = "default";
    if (g->auth) {
        const char *k =
            tn_ws_http_header(r, "authorization", hdr, sizeof(hdr)) > 0 ? bearer(hdr) : NULL;
        if (!k || tn_auth_lookup(g->auth, k, strlen(k), &tenant) != TN_OK) {
            respond_json(r, 401,
                         json_pack("{s:{s:s, s:s}}", "error", "code", "unauthorized", "message",
                                   "a valid API key (Authorization: Bearer) is needed"));
            return;
        }
    }
    long long now = tn_clock_wall_ms() / 1000, ttl = g->cfg->token_ttl_ms / 1000;
    if (ttl < 1)
        ttl = 1;
    tn_auth_token_sign(g->token_secret, g->token_secret_len, tenant, now + ttl, tok, sizeof(tok));
    tn_clock_rfc3339(at, sizeof(at), (now + ttl) * 1000);
    respond_json(r, 200,
                 json_pack("{s:s, s:s, s:s, s:I}", "token", tok, "tenant_id", tenant, "expires_at",
                           at, "expires_in", (json_int_t)ttl));
}

tn_err_t vg_gateway_start(vg_t *g, char *err, size_t errlen)
{
    const vg_cfg_t *c = g->cfg;
    const tn_app_common_t *com = tn_app_common(g->app);
    const tn_ws_http_route_t routes[] = {
        {"GET", "/health", http_health, g},
        {"GET", "/ready", http_ready, g},
        {"GET", "/metrics", http_metrics, g},
        {"POST", "/v1/sessions/token", http_token, g},
    };
    tn_ws_server_opts_t o = tn_ws_server_opts_default();
    o.bind_addr = com->http_bind;
    o.port = (int)com->http_port;
    o.ws_path = "/v1/sessions/ws";
    o.max_frame = (size_t)c->max_frame;
    o.max_message = (size_t)c->max_message;
    o.max_queue = (size_t)c->max_queue;
    o.max_http_body = (size_t)com->http_max_body;
    o.max_conns = (unsigned)c->max_sessions;
    o.idle_timeout_s = (unsigned)((c->idle_timeout_ms + 999) / 1000);
    o.io_batch_us = (unsigned)(c->io_batch_ms * 1000);
    o.handlers = &handlers;
    o.opaque = g;
    g->ws = tn_ws_server_new(&o, routes, TN_ARRAY_LEN(routes), err, errlen);
    if (!g->ws)
        return TN_ERR_IO;
    TN_LOG(TN_LOG_INFO, "voice sessions on ws://%s:%d/v1/sessions/ws", com->http_bind,
           tn_ws_server_port(g->ws));
    return TN_OK;
}
