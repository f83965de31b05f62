/* taina-voice-gateway: voice sessions over WebSocket. A person speaks (Opus packets); the
 * gateway detects the end of the utterance, transcribes it, asks rag (or books an appointment)
 * and speaks the grounded answer back as Opus, paced in real time. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "taina/clock.h"
#include "taina/lifecycle.h"
#include "taina/log.h"
#include "taina/mem.h"
#include "taina/trace.h"
#include "voice.h"

extern char **environ;

static tn_schema_t *load_schema(const vg_t *g, const char *name, char *err, size_t errlen)
{
    char *rel = tn_xasprintf("%s/%s", g->cfg->schemas_dir, name);
    char *path = tn_app_data_path(rel);
    tn_schema_t *s = tn_schema_load(path, err, errlen);
    free(path);
    free(rel);
    return s;
}

/* TAINA_VOICE_RAG_KEYS_FILE: "TENANT KEY" lines, the keys rag knows the tenants by. */
static tn_err_t load_rag_keys(vg_t *g, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read TAINA_VOICE_RAG_KEYS_FILE %s", path);
        return TN_ERR_CONFIG;
    }
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        char tenant[TN_AUTH_TENANT_MAX + 1], key[256];
        if (line[0] == '#' || sscanf(line, "%64s %255s", tenant, key) != 2)
            continue;
        g->rag_keys = tn_xrealloc(g->rag_keys, (g->nrag_keys + 1) * sizeof(*g->rag_keys));
        snprintf(g->rag_keys[g->nrag_keys].tenant, sizeof(tenant), "%s", tenant);
        g->rag_keys[g->nrag_keys++].key = tn_xstrdup(key);
    }
    free(line);
    fclose(f);
    return TN_OK;
}

/* Speech providers, the rag client and the reachability probes. */
static tn_err_t clients_new(vg_t *g, char *err, size_t errlen)
{
    const vg_cfg_t *c = g->cfg;
    tn_metrics_t *m = tn_app_metrics(g->app);
    tn_stt_opts_t so = tn_stt_opts_default();
    so.provider = vg_stt_providers[c->stt_provider];
    so.url = *c->stt_url ? c->stt_url : NULL;
    so.api_key = c->stt_api_key;
    so.model = *c->stt_model ? c->stt_model : NULL;
    so.timeout_ms = c->stt_timeout_ms;
    so.metrics = m;
    if (!(g->stt = tn_stt_new(&so, err, errlen)))
        return TN_ERR_CONFIG;
    tn_tts_opts_t to = tn_tts_opts_default();
    to.provider = vg_tts_providers[c->tts_provider];
    if (*c->tts_url)
        to.url = c->tts_url;
    to.api_key = c->tts_api_key;
    to.voice_es = *c->tts_voice_es ? c->tts_voice_es : NULL;
    to.voice_en = *c->tts_voice_en ? c->tts_voice_en : NULL;
    if (*c->tts_model)
        to.model = c->tts_model;
    to.timeout_ms = c->tts_timeout_ms;
    to.metrics = m;
    if (!(g->tts = tn_tts_new(&to, err, errlen)))
        return TN_ERR_CONFIG;
    tn_http_client_opts_t ho = tn_http_client_opts_default();
    ho.upstream = "rag";
    ho.base_url = c->rag_url;
    ho.metrics = m;
    ho.max_attempts = 2;
    ho.pool_size = (int)c->workers + 1;
    if (!(g->rag = tn_http_client_new(&ho, err, errlen)))
        return TN_ERR_CONFIG;
    const char *probe_urls[2] = {
        c->stt_provider ? c->stt_url : NULL,
        c->tts_provider ? (*c->tts_url ? c->tts_url : "https://api.elevenlabs.io") : NULL};
    tn_http_client_t **probes[2] = {&g->probe_stt, &g->probe_tts};
    for (int i = 0; i < 2; i++) {
        if (!probe_urls[i] || !*probe_urls[i])
            continue;
        tn_http_client_opts_t po = tn_http_client_opts_default();
        po.upstream = i ? "tts_probe" : "stt_probe";
        po.base_url = probe_urls[i];
        po.max_attempts = 1;
        po.pool_size = 1;
        if (!(*probes[i] = tn_http_client_new(&po, err, errlen)))
            return TN_ERR_CONFIG;
    }
    return TN_OK;
}

/* Reachable: any HTTP answer (a 404 from a provider's root still means it is there). */
static bool reachable(tn_http_client_t *hc, const char *path, bool need_2xx)
{
    if (!hc)
        return true;
    tn_http_request_t req = {.method = TN_HTTP_GET,
                             .path = path,
                             .timeout_ms = 1500,
                             .deadline_ms = 1500,
                             .flags = TN_HTTP_F_NO_RETRY};
    tn_http_response_t resp;
    tn_http_response_init(&resp);
    tn_err_t rc = tn_http_client_request(hc, &req, &resp);
    bool ok = rc == TN_OK && (!need_2xx || (resp.status >= 200 && resp.status < 300));
    tn_http_response_cleanup(&resp);
    return ok;
}

static void *prober_main(void *arg)
{
    vg_t *g = arg;
    while (!atomic_load(&g->stop_bg)) {
        atomic_store(&g->rag_ok, reachable(g->rag, "/ready", true));
        atomic_store(&g->stt_ok, reachable(g->probe_stt, "/", false));
        atomic_store(&g->tts_ok, reachable(g->probe_tts, "/", false));
        for (int64_t t = 0; t < g->cfg->probe_interval_ms && !atomic_load(&g->stop_bg); t += 50)
            tn_clock_sleep_ms(50);
    }
    return NULL;
}

static void vg_free(vg_t *g)
{
    vg_pool_stop(g);
    tn_ws_server_destroy(g->ws);
    atomic_store(&g->stop_bg, true);
    if (g->prober_running)
        pthread_join(g->prober, NULL);
    if (g->intents || g->results_cons)
        vg_booking_stop(g);
    if (g->producer)
        tn_kafka_producer_flush(g->producer, 5000);
    tn_kafka_producer_destroy(g->producer);
    tn_http_client_destroy(g->rag);
    tn_breaker_destroy(&g->stt_breaker);
    tn_breaker_destroy(&g->tts_breaker);
    tn_breaker_destroy(&g->rag_breaker);
    tn_http_client_destroy(g->probe_stt);
    tn_http_client_destroy(g->probe_tts);
    tn_stt_destroy(g->stt);
    tn_tts_destroy(g->tts);
    tn_pii_destroy(g->pii);
    tn_schema_destroy(g->client_schema);
    tn_schema_destroy(g->sessions_schema);
    tn_schema_destroy(g->requests_schema);
    for (size_t i = 0; i < g->nrag_keys; i++) {
        memset(g->rag_keys[i].key, 0, strlen(g->rag_keys[i].key));
        free(g->rag_keys[i].key);
    }
    free(g->rag_keys);
    memset(g->token_secret, 0, sizeof(g->token_secret));
    free(g);
}

static tn_err_t vg_init(tn_app_t *app, void *cfgp, void **state)
{
    vg_t *g = tn_xcalloc(1, sizeof(*g));
    const vg_cfg_t *c = g->cfg = cfgp;
    char err[512] = "";
    tn_err_t rc = TN_ERR_CONFIG;
    g->app = app;
    g->auth = tn_app_auth(app);
    vg_metrics_init(&g->m, tn_app_metrics(app));
    /* the local providers (pocketsphinx, espeak-ng) need no breaker: no gauge for them */
    if (c->stt_provider)
        tn_app_breaker_init(app, &g->stt_breaker, "stt");
    else
        tn_breaker_init(&g->stt_breaker, "stt", INT_MAX, 0);
    if (c->tts_provider)
        tn_app_breaker_init(app, &g->tts_breaker, "tts");
    else
        tn_breaker_init(&g->tts_breaker, "tts", INT_MAX, 0);
    tn_app_breaker_init(app, &g->rag_breaker, "rag");
    /* config: the token secret, schemas, rules, providers */
    size_t sl = strlen(c->token_secret);
    if (sl && sl < 32) {
        snprintf(err, sizeof(err), "TAINA_VOICE_TOKEN_SECRET must have at least 32 characters");
        goto fail;
    }
    g->token_secret_len = sl ? TN_MIN(sl, sizeof(g->token_secret)) : 32;
    if (sl)
        memcpy(g->token_secret, c->token_secret, g->token_secret_len);
    else
        tn_random_bytes(g->token_secret, g->token_secret_len);
    if (*c->rag_keys_file && (rc = load_rag_keys(g, c->rag_keys_file, err, sizeof(err))) != TN_OK)
        goto fail;
    rc = TN_ERR_CONFIG;
    if (!(g->client_schema = load_schema(g, "http/voice.client.schema.json", err, sizeof(err))) ||
        !(g->sessions_schema = load_schema(g, "voice.sessions.schema.json", err, sizeof(err))) ||
        !(g->requests_schema =
              load_schema(g, "appointments.requests.schema.json", err, sizeof(err))))
        goto fail;
    g->pii = *c->pii_rules_file ? tn_pii_load(c->pii_rules_file, err, sizeof(err))
                                : tn_pii_new(NULL, "built-in PII rules", err, sizeof(err));
    if (!g->pii || (rc = clients_new(g, err, sizeof(err))) != TN_OK)
        goto fail;
    tn_kafka_opts_t ko = tn_app_kafka_opts(app, "taina-voice-gateway");
    if (!(g->producer = tn_kafka_producer_new(&ko, NULL, err, sizeof(err))))
        goto fail;
    /* wiring: booking (results consumer), the turn workers, the probes, the endpoint */
    if ((rc = vg_booking_start(g, err, sizeof(err))) != TN_OK || (rc = vg_pool_start(g)) != TN_OK)
        goto fail;
    if (pthread_create(&g->prober, NULL, prober_main, g) != 0) {
        rc = TN_ERR;
        goto fail;
    }
    g->prober_running = true;
    if ((rc = vg_gateway_start(g, err, sizeof(err))) != TN_OK)
        goto fail;
    *state = g;
    return TN_OK;
fail:
    TN_LOG(TN_LOG_ERROR, "voice-gateway: %s", err[0] ? err : tn_err_str(rc));
    vg_free(g);
    return rc;
}

/* The loop: sessions are served by the WebSocket loop thread and the turn workers. */
static tn_err_t vg_run(tn_app_t *app, void *state)
{
    (void)app;
    (void)state;
    while (!tn_lifecycle_wait(-1))
        ;
    return TN_OK;
}

/* Drain: every session gets a close frame (1001), running turns stop, events are flushed. */
static void vg_shutdown(tn_app_t *app, void *state)
{
    vg_t *g = state;
    if (!g)
        return;
    int64_t wait = tn_app_common(app)->shutdown_grace_ms / 2;
    unsigned left =
        tn_ws_server_shutdown(g->ws, TN_WS_CLOSE_GOING_AWAY, "server shutting down", wait);
    TN_LOG(TN_LOG_INFO, "sessions closed (%u did not answer the close in time)", left);
    vg_free(g);
}

static const tn_app_def_t def = {
    .name = "voice-gateway",
    .summary = "Voice sessions over WebSocket: Opus in, grounded spoken answers out",
    .features = TN_APP_HTTP | TN_APP_KAFKA | TN_APP_AUTH | TN_APP_BREAKER,
    .http_port = "8083",
    .keys = vg_keys,
    .cfg_size = sizeof(vg_cfg_t),
    .init = vg_init,
    .run = vg_run,
    .shutdown = vg_shutdown,
};

int main(int argc, char **argv)
{
    tn_app_def_t d = def;
    d.nkeys = vg_nkeys;
    return tn_app_main(&d, argc, argv, environ);
}
