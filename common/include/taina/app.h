/**
 * @file app.h
 * @brief The one skeleton every service and tool main runs (STYLE rule 24).
 *
 * A program is a definition: its name, its config table and three hooks. tn_app_main()
 * parses arguments, loads the common and the program's config tables, sets up logging,
 * metrics and signals, then calls init, run and shutdown, and returns the exit code:
 * 0 clean stop, 2 bad configuration, 1 anything else.
 *
 *     static const tn_app_def_t def = {
 *         .name = "ingest", .summary = "HTTP and Kafka ingest",
 *         .features = TN_APP_HTTP | TN_APP_KAFKA | TN_APP_AUTH,
 *         .keys = ingest_keys, .nkeys = TN_ARRAY_LEN(ingest_keys),
 *         .cfg_size = sizeof(ingest_cfg_t),
 *         .init = ingest_init, .run = ingest_run, .shutdown = ingest_shutdown,
 *     };
 *     int main(int argc, char **argv) { return tn_app_main(&def, argc, argv, environ); }
 */
#ifndef TAINA_APP_H
#define TAINA_APP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "taina/breaker.h"
#include "taina/config.h"
#include "taina/err.h"
#include "taina/http_server.h"
#include "taina/kafka.h"
#include "taina/metrics.h"

typedef struct tn_app tn_app_t;

/** Which groups of common keys a program takes. */
enum {
    TN_APP_HTTP = 1 << 0,   /**< http_port, http_bind, limits */
    TN_APP_KAFKA = 1 << 1,  /**< kafka_brokers, statistics interval, EMF, passthrough */
    TN_APP_AUTH = 1 << 2,   /**< api_keys_file, auth_disabled */
    TN_APP_BREAKER = 1 << 3 /**< breaker_threshold, breaker_cooldown (tn_app_breaker_init) */
};

/** Values of the common keys (the groups a program did not ask for keep their zero). */
typedef struct tn_app_common {
    int log_level;   /**< tn_log_level_t */
    char *log_debug; /**< debug contexts, "kafka,http" */
    int64_t shutdown_grace_ms;
    char *tls_ca_file; /**< CA bundle for HTTPS upstreams ("" = the system's) */
    char *tls_ca_path; /**< CA folder for HTTPS upstreams ("" = the system's) */
    int64_t http_port;
    char *http_bind;
    int64_t http_max_body;
    int64_t http_max_connections;
    int64_t http_timeout_ms;
    int64_t http_threads;
    char *kafka_brokers;
    int64_t kafka_stats_interval_ms;
    bool metrics_emf;            /**< consumers write CloudWatch EMF lag lines on stdout */
    char *metrics_emf_namespace; /**< their CloudWatch namespace */
    char *api_keys_file;
    bool auth_disabled;
    int64_t rate_limit; /**< requests/s per API key, 0 = none */
    int64_t rate_burst;
    int64_t breaker_threshold;   /**< failures in a row that open an upstream's circuit */
    int64_t breaker_cooldown_ms; /**< how long it stays open before a probe */
} tn_app_common_t;

typedef struct tn_app_def {
    const char *name;         /**< "ingest": service name in logs; the program is taina-<name> */
    const char *summary;      /**< one line for --help */
    unsigned features;        /**< TN_APP_* */
    const char *http_port;    /**< default of TAINA_HTTP_PORT ("8081"); NULL = 8080 */
    const tn_cfg_key_t *keys; /**< the program's own table (may be NULL) */
    size_t nkeys;
    size_t cfg_size; /**< size of the struct the keys' offsets refer to; allocated zeroed */
    /** Build everything; on failure free what was built. TN_ERR_CONFIG exits 2. */
    tn_err_t (*init)(tn_app_t *app, void *cfg, void **state);
    /** The loop: return when tn_lifecycle_is_stopping() or on a fatal error. */
    tn_err_t (*run)(tn_app_t *app, void *state);
    /** Drain and free @p state (called after init succeeded, also when run failed). */
    void (*shutdown)(tn_app_t *app, void *state);
} tn_app_def_t;

/**
 * @brief Run a program. @p envp is the environment (`environ`), read only by config.
 * @returns the process exit code.
 */
int tn_app_main(const tn_app_def_t *def, int argc, char **argv, char *const *envp);

/** @brief The common config values. Borrowed; valid while the app runs. */
const tn_app_common_t *tn_app_common(const tn_app_t *app);
/** @brief The metrics registry of the process. Borrowed; valid while the app runs. */
tn_metrics_t *tn_app_metrics(tn_app_t *app);
/** @brief Kafka passthrough properties (TAINA_KAFKA_*). Borrowed; valid while the app runs. */
const tn_cfg_prop_t *tn_app_kafka_props(const tn_app_t *app, size_t *n);
/**
 * @brief Kafka client options from the common keys: brokers, the TAINA_KAFKA_* passthrough
 *        properties, the metrics registry, the statistics interval, and @p client_id
 *        (borrowed). Everything borrowed lives as long as the app.
 */
tn_kafka_opts_t tn_app_kafka_opts(tn_app_t *app, const char *client_id);
/** @brief The API keys (TN_APP_AUTH), NULL when auth is disabled. Borrowed; valid while the app
 *         runs. For programs that serve requests without tn_app_http_start() (WebSocket). */
tn_auth_t *tn_app_auth(tn_app_t *app);
/** @brief The program's short name ("ingest"). */
const char *tn_app_name(const tn_app_t *app);

/**
 * @brief Start @p b, the circuit breaker of upstream @p upstream (borrowed: a literal), on the
 *        common keys breaker_threshold and breaker_cooldown (TN_APP_BREAKER), exported as the
 *        gauge `taina_<program>_circuit_open{upstream}` (dashes of the name as underscores).
 *        Free with tn_breaker_destroy().
 */
void tn_app_breaker_init(tn_app_t *app, tn_breaker_t *b, const char *upstream);

/**
 * @brief Start the program's HTTP server (TN_APP_HTTP) on the common http_* keys, with the
 *        process metrics registry (/metrics) and, with TN_APP_AUTH, the API keys of
 *        TAINA_API_KEYS_FILE. Call from init; the skeleton drains it (in-flight requests finish)
 *        after run returns and before shutdown, and frees it after shutdown.
 * @param routes the service's routes (copied; their strings and opaques are borrowed), may be
 *        NULL for /health, /ready and /metrics only.
 * @param ready the /ready check (NULL = always ready); @p ready_opaque is borrowed.
 * @returns TN_OK, or TN_ERR_IO when the port cannot be bound (logged).
 */
tn_err_t tn_app_http_start(tn_app_t *app, const tn_http_route_t *routes, size_t nroutes,
                           tn_http_ready_fn *ready, void *ready_opaque);
/** @brief The bound HTTP port (after tn_app_http_start), e.g. when TAINA_HTTP_PORT=0. */
int tn_app_http_port(const tn_app_t *app);

/**
 * @brief Find a data file or folder shipped with Taina (schemas/, rules): @p path as given when
 *        it exists or is absolute, else relative to the repository root beside the build tree
 *        (build/bin, build/asan/bin), else under PREFIX/share/taina of an installed program
 *        (make install puts schemas/ there). Falls back to @p path. Caller frees the result.
 */
char *tn_app_data_path(const char *path);

#endif
