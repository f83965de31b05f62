/* The program skeleton: config, logging, metrics, signals, then init / run / shutdown. */
#include "taina/app.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "taina/auth.h"
#include "taina/http_client.h"
#include "taina/lifecycle.h"
#include "taina/log.h"
#include "taina/mem.h"

struct tn_app {
    const tn_app_def_t *def;
    tn_cfg_t *cfg;
    tn_app_common_t common;
    void *svc_cfg;
    tn_metrics_t *metrics;
    tn_auth_t *auth;
    tn_http_server_t *http;
    tn_cfg_key_t http_keys[8]; /* the common HTTP keys with the program's default port */
};

/* Weak: a program links the HTTP client (and with it libcurl and the two dozen libraries libcurl
 * loads, 1.4 MB of taina-ingest's resident memory) only when it makes HTTP requests itself;
 * then this is the client's function, else NULL and there is no HTTPS trust to set. */
#pragma weak tn_http_client_tls_trust

static const char *const log_levels[] = {"debug", "info", "warn", "error", "fatal", "off", NULL};

#define KEY(name, type, field, def, flags, help, min, max)                                         \
    {                                                                                              \
        name, type, offsetof(tn_app_common_t, field), def, flags, help, min, max, NULL             \
    }

static const tn_cfg_key_t base_keys[] = {
    {"log_level", TN_CFG_ENUM, offsetof(tn_app_common_t, log_level), "info", 0,
     "Minimum level of the JSON log lines on stderr", 0, 0, log_levels},
    KEY("log_debug", TN_CFG_STRING, log_debug, "", 0,
        "Debug contexts to log: all, kafka, http, client, db, config, audio; -name removes one", 0,
        0),
    KEY("shutdown_grace", TN_CFG_DURATION, shutdown_grace_ms, "20s", 0,
        "On SIGTERM, time allowed to drain in-flight work before exiting anyway", 0, 3600000),
    KEY("tls_ca_file", TN_CFG_STRING, tls_ca_file, "", 0,
        "PEM bundle of CAs trusted for HTTPS upstreams instead of the system's (private CAs)", 0,
        0),
    KEY("tls_ca_path", TN_CFG_STRING, tls_ca_path, "", 0,
        "Folder of hashed CA certificates trusted for HTTPS upstreams (c_rehash layout)", 0, 0),
};

static const tn_cfg_key_t http_keys[] = {
    KEY("http_port", TN_CFG_INT, http_port, "8080", 0, "HTTP listen port (0 = any free port)", 0,
        65535),
    KEY("http_bind", TN_CFG_STRING, http_bind, "0.0.0.0", 0, "HTTP listen address", 0, 0),
    KEY("http_max_body", TN_CFG_SIZE, http_max_body, "1MiB", 0,
        "Largest request body accepted (larger gets 413)", 1, 1LL << 31),
    KEY("http_max_connections", TN_CFG_INT, http_max_connections, "1024", 0,
        "Concurrent HTTP connections accepted", 1, 1000000),
    KEY("http_timeout", TN_CFG_DURATION, http_timeout_ms, "30s", 0,
        "Idle timeout of an HTTP connection", 1000, 3600000),
    KEY("http_threads", TN_CFG_INT, http_threads, "0", 0,
        "HTTP threads: 0 = one for each connection (a request that waits delays only its own "
        "connection); N = a pool of N, each serving the connections it accepted one request at a "
        "time",
        0, 1024),
};

static const tn_cfg_key_t kafka_keys[] = {
    KEY("kafka_brokers", TN_CFG_STRING, kafka_brokers, "127.0.0.1:9092", TN_CFG_REQUIRED,
        "Kafka bootstrap servers (host:port,...); other client properties as TAINA_KAFKA_<PROP>", 0,
        0),
    KEY("kafka_stats_interval", TN_CFG_DURATION, kafka_stats_interval_ms, "5s", 0,
        "How often librdkafka statistics (consumer lag gauges) are refreshed", 100, 3600000),
    KEY("metrics_emf", TN_CFG_BOOL, metrics_emf, "false", 0,
        "Also write consumer lag as CloudWatch EMF lines (ConsumerLagSum) on stdout, each "
        "statistics interval",
        0, 0),
    KEY("metrics_emf_namespace", TN_CFG_STRING, metrics_emf_namespace, TN_METRICS_EMF_NAMESPACE, 0,
        "CloudWatch namespace of the EMF lines", 0, 0),
};

static const tn_cfg_key_t auth_keys[] = {
    KEY("api_keys_file", TN_CFG_STRING, api_keys_file, "", 0,
        "File of API keys: one 'TENANT_ID SHA256_HEX_OF_KEY' per line", 0, 0),
    KEY("auth_disabled", TN_CFG_BOOL, auth_disabled, "false", 0,
        "Accept requests without API keys (all as tenant 'default'); for local use only", 0, 0),
    KEY("rate_limit", TN_CFG_INT, rate_limit, "0", 0,
        "Requests per second each API key may make (token bucket; more get 429); 0 = no limit", 0,
        1000000),
    KEY("rate_burst", TN_CFG_INT, rate_burst, "0", 0,
        "Requests an API key may make at once after a quiet spell; 0 = TAINA_RATE_LIMIT", 0,
        1000000),
};

static const tn_cfg_key_t breaker_keys[] = {
    KEY("breaker_threshold", TN_CFG_INT, breaker_threshold, "5", 0,
        "Failed calls in a row that open an upstream's circuit breaker (calls then fail fast)", 1,
        1000000),
    KEY("breaker_cooldown", TN_CFG_DURATION, breaker_cooldown_ms, "5s", 0,
        "How long an open circuit refuses calls before one probe call tries the upstream again", 10,
        3600000),
};

const tn_app_common_t *tn_app_common(const tn_app_t *app)
{
    return &app->common;
}

tn_metrics_t *tn_app_metrics(tn_app_t *app)
{
    return app->metrics;
}

const tn_cfg_prop_t *tn_app_kafka_props(const tn_app_t *app, size_t *n)
{
    return tn_cfg_kafka_props(app->cfg, n);
}

tn_kafka_opts_t tn_app_kafka_opts(tn_app_t *app, const char *client_id)
{
    tn_kafka_opts_t o = {0};
    o.brokers = app->common.kafka_brokers;
    o.props = tn_cfg_kafka_props(app->cfg, &o.nprops);
    o.metrics = app->metrics;
    o.stats_interval_ms = app->common.kafka_stats_interval_ms;
    o.client_id = client_id;
    if (app->common.metrics_emf) {
        o.emf_namespace = app->common.metrics_emf_namespace;
        o.emf_service = app->def->name;
    }
    return o;
}

tn_auth_t *tn_app_auth(tn_app_t *app)
{
    return app->auth;
}

const char *tn_app_name(const tn_app_t *app)
{
    return app->def->name;
}

void tn_app_breaker_init(tn_app_t *app, tn_breaker_t *b, const char *upstream)
{
    TN_ASSERT(app->def->features & TN_APP_BREAKER);
    char family[128];
    int n = snprintf(family, sizeof(family), "taina_%s_circuit_open", app->def->name);
    TN_ASSERT(n > 0 && (size_t)n < sizeof(family));
    for (char *p = family; *p; p++)
        if (*p == '-')
            *p = '_';
    tn_breaker_init(b, upstream, (int)app->common.breaker_threshold,
                    app->common.breaker_cooldown_ms);
    tn_breaker_export(b, app->metrics, family);
}

tn_err_t tn_app_http_start(tn_app_t *app, const tn_http_route_t *routes, size_t nroutes,
                           tn_http_ready_fn *ready, void *ready_opaque)
{
    char errbuf[512];
    const tn_app_common_t *c = &app->common;
    TN_ASSERT(app->def->features & TN_APP_HTTP);
    TN_ASSERT(!app->http);
    tn_http_server_opts_t o;
    tn_http_server_opts_init(&o);
    o.bind_addr = c->http_bind;
    o.port = (int)c->http_port;
    o.service = app->def->name;
    o.max_body = (size_t)c->http_max_body;
    o.max_connections = (unsigned)c->http_max_connections;
    o.conn_timeout_s = (unsigned)((c->http_timeout_ms + 999) / 1000);
    o.threads = (unsigned)c->http_threads;
    o.stop_grace_ms = c->shutdown_grace_ms / 2; /* leave the rest for the service's own drain */
    o.metrics = app->metrics;
    o.auth = app->auth;
    o.rate_limit = (double)c->rate_limit;
    o.rate_burst = (double)c->rate_burst;
    o.ready = ready;
    o.ready_opaque = ready_opaque;
    tn_err_t rc = tn_http_server_new(&o, routes, nroutes, &app->http, errbuf, sizeof(errbuf));
    if (rc == TN_OK)
        rc = tn_http_server_start(app->http, errbuf, sizeof(errbuf));
    if (rc != TN_OK) {
        TN_LOG(TN_LOG_ERROR, "%s", errbuf);
        tn_http_server_destroy(app->http);
        app->http = NULL;
    }
    return rc;
}

int tn_app_http_port(const tn_app_t *app)
{
    return app->http ? tn_http_server_port(app->http) : 0;
}

/* Checks that span keys (a rule between two keys rather than one value). */
static int check_combined(tn_app_t *app, char *errbuf, size_t errlen)
{
    const tn_app_common_t *c = &app->common;
    if ((app->def->features & TN_APP_AUTH) && !c->auth_disabled &&
        (!c->api_keys_file || !*c->api_keys_file)) {
        snprintf(errbuf, errlen,
                 "TAINA_API_KEYS_FILE is required (or set TAINA_AUTH_DISABLED=1 for local use)");
        return -1;
    }
    if ((app->def->features & TN_APP_KAFKA) && c->metrics_emf &&
        !tn_metrics_emf_namespace_ok(c->metrics_emf_namespace)) {
        snprintf(errbuf, errlen,
                 "TAINA_METRICS_EMF_NAMESPACE must be 1 to 256 of A-Z a-z 0-9 . _ # : / -");
        return -1;
    }
    return 0;
}

int tn_app_main(const tn_app_def_t *def, int argc, char **argv, char *const *envp)
{
    int code = 1;
    void *state = NULL;
    char errbuf[512];
    char *program = tn_xasprintf("taina-%s", def->name);
    tn_app_t *app = tn_xcalloc(1, sizeof(*app));
    app->def = def;
    app->cfg = tn_cfg_new(program);
    app->svc_cfg = tn_xcalloc(1, def->cfg_size ? def->cfg_size : 1);

    tn_cfg_add_table(app->cfg, "common", base_keys, TN_ARRAY_LEN(base_keys), &app->common);
    if (def->features & TN_APP_HTTP) {
        _Static_assert(sizeof(http_keys) <= sizeof(app->http_keys), "room for the http keys");
        memcpy(app->http_keys, http_keys, sizeof(http_keys));
        for (size_t i = 0; i < TN_ARRAY_LEN(http_keys); i++) {
            if (def->http_port && !strcmp(app->http_keys[i].name, "http_port"))
                app->http_keys[i].def = def->http_port;
        }
        tn_cfg_add_table(app->cfg, "http", app->http_keys, TN_ARRAY_LEN(http_keys), &app->common);
    }
    if (def->features & TN_APP_KAFKA)
        tn_cfg_add_table(app->cfg, "kafka", kafka_keys, TN_ARRAY_LEN(kafka_keys), &app->common);
    if (def->features & TN_APP_AUTH)
        tn_cfg_add_table(app->cfg, "auth", auth_keys, TN_ARRAY_LEN(auth_keys), &app->common);
    if (def->features & TN_APP_BREAKER)
        tn_cfg_add_table(app->cfg, "breaker", breaker_keys, TN_ARRAY_LEN(breaker_keys),
                         &app->common);
    if (def->keys)
        tn_cfg_add_table(app->cfg, def->name, def->keys, def->nkeys, app->svc_cfg);

    switch (tn_cfg_from_args(app->cfg, argc, argv, envp, stdout, stderr)) {
    case TN_CFG_EXIT_OK:
        code = 0;
        goto out;
    case TN_CFG_EXIT_BAD:
        code = 2;
        goto out;
    case TN_CFG_RUN:
        break;
    }
    int dbg = 0;
    if (tn_log_dbg_parse(app->common.log_debug, &dbg, errbuf, sizeof(errbuf)) != TN_OK ||
        check_combined(app, errbuf, sizeof(errbuf)) != 0) {
        fprintf(stderr, "%s: configuration error: %s\n", program, errbuf);
        code = 2;
        goto out;
    }
    tn_log_init(def->name, (tn_log_level_t)app->common.log_level);
    tn_log_set_dbg(dbg);
    if (tn_http_client_tls_trust)
        tn_http_client_tls_trust(app->common.tls_ca_file, app->common.tls_ca_path);
    if (tn_lifecycle_install() != TN_OK)
        goto out;
    app->metrics = tn_metrics_new();
    if ((def->features & TN_APP_AUTH) && !app->common.auth_disabled &&
        tn_auth_load(app->common.api_keys_file, &app->auth, errbuf, sizeof(errbuf)) != TN_OK) {
        TN_LOG(TN_LOG_ERROR, "TAINA_API_KEYS_FILE: %s", errbuf);
        fprintf(stderr, "%s: configuration error: TAINA_API_KEYS_FILE: %s\n", program, errbuf);
        code = 2;
        goto out;
    }
    if ((def->features & TN_APP_AUTH) && app->common.auth_disabled)
        TN_LOG(TN_LOG_WARN, "authentication is disabled (TAINA_AUTH_DISABLED): every request "
                            "belongs to tenant 'default'");

    TN_LOG(TN_LOG_INFO, "starting %s", program);
    tn_err_t rc = def->init ? def->init(app, app->svc_cfg, &state) : TN_OK;
    if (rc != TN_OK) {
        tn_http_server_destroy(app->http); /* stop serving before init's state is gone */
        app->http = NULL;
        TN_LOG(TN_LOG_ERROR, "start-up failed: %s", tn_err_str(rc));
        code = rc == TN_ERR_CONFIG ? 2 : 1;
        goto out;
    }
    rc = def->run ? def->run(app, state) : TN_OK;
    if (rc != TN_OK)
        TN_LOG(TN_LOG_ERROR, "stopped on error: %s", tn_err_str(rc));
    tn_lifecycle_arm_grace(app->common.shutdown_grace_ms);
    TN_LOG(TN_LOG_INFO, "draining (grace %lld ms)", (long long)app->common.shutdown_grace_ms);
    if (app->http)
        tn_http_server_stop(app->http); /* no new requests; in-flight ones finish */
    if (def->shutdown)
        def->shutdown(app, state);
    TN_LOG(TN_LOG_INFO, "stopped");
    code = rc == TN_OK ? 0 : 1;
out:
    if (tn_http_client_tls_trust)
        tn_http_client_tls_trust(NULL, NULL);
    tn_http_server_destroy(app->http);
    tn_auth_destroy(app->auth);
    tn_metrics_destroy(app->metrics);
    tn_cfg_destroy(app->cfg);
    free(app->svc_cfg);
    free(app);
    free(program);
    return code;
}

char *tn_app_data_path(const char *path)
{
    if (access(path, R_OK) == 0 || path[0] == '/')
        return tn_xstrdup(path);
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        /* build/bin, build/asan/bin, or an installed PREFIX/bin with PREFIX/share/taina */
        const char *rel[] = {"../..", "../../..", "../share/taina"};
        for (size_t i = 0; i < TN_ARRAY_LEN(rel); i++) {
            char *p = tn_xasprintf("%s/%s/%s", exe, rel[i], path);
            if (access(p, R_OK) == 0)
                return p;
            free(p);
        }
    }
    return tn_xstrdup(path);
}
