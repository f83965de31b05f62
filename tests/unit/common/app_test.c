/* Unit tests for common/src/app.c: the program skeleton's exit codes and hook order. */
#include "tn_test.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "taina/app.h"
#include "taina/auth.h"
#include "taina/lifecycle.h"
#include "taina/log.h"
#include "taina/mem.h"

typedef struct svc_cfg {
    int64_t workers;
    char *name;
} svc_cfg_t;

static const tn_cfg_key_t svc_keys[] = {
    {"svc_workers", TN_CFG_INT, offsetof(svc_cfg_t, workers), "2", 0, "Workers", 1, 16, NULL},
    {"svc_name", TN_CFG_STRING, offsetof(svc_cfg_t, name), "x", 0, "Name", 0, 0, NULL},
};

static char calls[64];
static tn_err_t init_rc;
static int64_t seen_workers;

static void note(const char *c)
{
    size_t n = strlen(calls);
    snprintf(calls + n, sizeof(calls) - n, "%s", c);
}

static tn_err_t svc_init(tn_app_t *app, void *cfg, void **state)
{
    note("i");
    seen_workers = ((svc_cfg_t *)cfg)->workers;
    assert_non_null(tn_app_metrics(app));
    assert_string_equal(tn_app_name(app), "svc");
    *state = tn_xstrdup("state");
    if (init_rc != TN_OK)
        TN_FREE(*state);
    return init_rc;
}

static tn_err_t svc_run(tn_app_t *app, void *state)
{
    (void)app;
    assert_string_equal(state, "state");
    note("r");
    tn_lifecycle_request_stop(); /* as if SIGTERM arrived */
    tn_lifecycle_wait(-1);
    return TN_OK;
}

static void svc_shutdown(tn_app_t *app, void *state)
{
    (void)app;
    note("s");
    free(state);
}

static const tn_app_def_t def = {
    .name = "svc",
    .summary = "test service",
    .features = TN_APP_HTTP | TN_APP_AUTH,
    .keys = svc_keys,
    .nkeys = TN_ARRAY_LEN(svc_keys),
    .cfg_size = sizeof(svc_cfg_t),
    .init = svc_init,
    .run = svc_run,
    .shutdown = svc_shutdown,
};

static int run_app(int argc, char **argv, char **env)
{
    calls[0] = '\0';
    tn_lifecycle_reset();
    FILE *null = fopen("/dev/null", "w");
    tn_log_set_output(null);
    /* tn_app_main prints --help to stdout: silence it for the test run */
    fflush(stdout);
    int saved = dup(1);
    dup2(fileno(null), 1);
    int code = tn_app_main(&def, argc, argv, env);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    tn_log_set_output(NULL);
    fclose(null);
    tn_lifecycle_reset();
    return code;
}

static void test_clean_run(void **state)
{
    (void)state;
    char *argv[] = {"svc", "--workers", "5", NULL};
    char *env[] = {"TAINA_AUTH_DISABLED=1", NULL};
    init_rc = TN_OK;
    assert_int_equal(run_app(3, argv, env), 0);
    assert_string_equal(calls, "irs");
    assert_int_equal(seen_workers, 5);
}

static void test_help_exits_zero(void **state)
{
    (void)state;
    char *argv[] = {"svc", "--help", NULL};
    assert_int_equal(run_app(2, argv, NULL), 0);
    assert_string_equal(calls, ""); /* no hook ran */
}

static void test_bad_config_exits_two(void **state)
{
    (void)state;
    char *argv[] = {"svc", NULL};
    char *env[] = {"TAINA_AUTH_DISABLED=1", "TAINA_SVC_WORKERS=99", NULL};
    assert_int_equal(run_app(1, argv, env), 2);
    char *env2[] = {"TAINA_AUTH_DISABLED=1", "TAINA_LOG_DEBUG=kafak", NULL};
    assert_int_equal(run_app(1, argv, env2), 2);
    assert_string_equal(calls, "");
}

static void test_auth_required_unless_disabled(void **state)
{
    (void)state;
    char *argv[] = {"svc", NULL};
    char *env[] = {NULL};
    assert_int_equal(run_app(1, argv, env), 2);
    assert_string_equal(calls, "");
}

static void test_init_failure_codes(void **state)
{
    (void)state;
    char *argv[] = {"svc", NULL};
    char *env[] = {"TAINA_AUTH_DISABLED=1", NULL};
    init_rc = TN_ERR_UNAVAILABLE;
    assert_int_equal(run_app(1, argv, env), 1);
    assert_string_equal(calls, "i"); /* no run, no shutdown after a failed init */
    init_rc = TN_ERR_CONFIG;
    assert_int_equal(run_app(1, argv, env), 2);
    init_rc = TN_OK;
}

/* ---- a service with HTTP and API keys ---- */

static char http_results[512];

static void on_hello(tn_http_req_t *req, void *opaque)
{
    tn_http_req_respond_error(req, 200, "hello", "tenant %s, opaque %s", tn_http_req_tenant(req),
                              (const char *)opaque);
}

static tn_err_t web_init(tn_app_t *app, void *cfg, void **state)
{
    (void)cfg;
    static const tn_http_route_t routes[] = {
        {"GET", "/v1/hello", on_hello, TN_HTTP_ROUTE_AUTH, NULL, "svc-state"}};
    *state = NULL;
    return tn_app_http_start(app, routes, 1, NULL, NULL);
}

static tn_err_t web_run(tn_app_t *app, void *state)
{
    (void)state;
    int port = tn_app_http_port(app);
    char *cmd =
        tn_xasprintf("curl -s -o /dev/null -w '%%{http_code} ' http://127.0.0.1:%d/health; "
                     "curl -s -o /dev/null -w '%%{http_code} ' http://127.0.0.1:%d/v1/hello; "
                     "curl -s -H 'Authorization: Bearer s3cret' http://127.0.0.1:%d/v1/hello; "
                     "curl -s http://127.0.0.1:%d/metrics | grep -c '^taina_http_requests_total'",
                     port, port, port, port);
    char *out = NULL;
    tn_test_run(cmd, &out, 0);
    snprintf(http_results, sizeof(http_results), "%s", out ? out : "");
    free(out);
    free(cmd);
    tn_lifecycle_request_stop();
    return TN_OK;
}

static void web_shutdown(tn_app_t *app, void *state)
{
    (void)app;
    (void)state;
}

static const tn_app_def_t web_def = {
    .name = "web",
    .features = TN_APP_HTTP | TN_APP_AUTH,
    .init = web_init,
    .run = web_run,
    .shutdown = web_shutdown,
};

static void test_http_service(void **state)
{
    (void)state;
    char *dir = tn_test_mkdtemp("app");
    char *keys = tn_xasprintf("%s/keys", dir);
    char hash[65];
    tn_auth_hash_hex("s3cret", 6, hash);
    char *line = tn_xasprintf("# tenant key\ntenant-a %s\n", hash);
    tn_test_write_file(keys, line);
    char *keyenv = tn_xasprintf("TAINA_API_KEYS_FILE=%s", keys);
    char *env[] = {keyenv, "TAINA_HTTP_PORT=0", "TAINA_HTTP_BIND=127.0.0.1", NULL};
    char *argv[] = {"web", NULL};
    FILE *null = fopen("/dev/null", "w");
    tn_log_set_output(null);
    tn_lifecycle_reset();
    assert_int_equal(tn_app_main(&web_def, 1, argv, env), 0);
    tn_lifecycle_reset();
    /* health open, hello needs a key, the key maps to its tenant, metrics served */
    assert_non_null(strstr(http_results, "200 401 "));
    assert_non_null(strstr(http_results, "tenant tenant-a, opaque svc-state"));
    assert_true(strtol(strrchr(http_results, '}') + 1, NULL, 10) >= 2);

    /* a keys file that does not parse stops the start with exit code 2 */
    tn_test_write_file(keys, "tenant-a not-a-hash\n");
    assert_int_equal(tn_app_main(&web_def, 1, argv, env), 2);
    tn_log_set_output(NULL);
    fclose(null);
    tn_test_rmdir(dir);
    free(keyenv);
    free(line);
    free(keys);
    free(dir);
}

/* tn_app_breaker_init: the common keys and the program's gauge family */
static double breaker_gauge = -1;
static int64_t breaker_cooldown;

static tn_err_t brk_init(tn_app_t *app, void *cfg, void **state)
{
    (void)cfg;
    tn_breaker_t b;
    tn_app_breaker_init(app, &b, "stt");
    breaker_cooldown = b.cooldown_ms;
    assert_int_equal(b.threshold, 2);
    tn_breaker_failure(&b);
    tn_breaker_failure(&b);
    tn_metric_t *g = tn_metrics_gauge(tn_app_metrics(app), "taina_voice_gw_circuit_open", "x",
                                      TN_LABELS("upstream"));
    breaker_gauge = tn_metric_get(g, TN_LABELS("stt"));
    tn_breaker_destroy(&b);
    *state = NULL;
    return TN_OK;
}

static tn_err_t brk_run(tn_app_t *app, void *state)
{
    (void)app;
    (void)state;
    return TN_OK;
}

static const tn_app_def_t brk_def = {
    .name = "voice-gw",
    .features = TN_APP_BREAKER,
    .init = brk_init,
    .run = brk_run,
};

static void test_breaker_keys(void **state)
{
    (void)state;
    char *argv[] = {"voice-gw", NULL};
    char *env[] = {"TAINA_BREAKER_THRESHOLD=2", "TAINA_BREAKER_COOLDOWN=750ms", NULL};
    FILE *null = fopen("/dev/null", "w");
    tn_log_set_output(null);
    tn_lifecycle_reset();
    assert_int_equal(tn_app_main(&brk_def, 1, argv, env), 0);
    tn_lifecycle_reset();
    assert_true(breaker_gauge == 1.0);
    assert_int_equal(breaker_cooldown, 750);
    char *bad[] = {"TAINA_BREAKER_THRESHOLD=0", NULL};
    assert_int_equal(tn_app_main(&brk_def, 1, argv, bad), 2);
    tn_log_set_output(NULL);
    fclose(null);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_run),
        cmocka_unit_test(test_help_exits_zero),
        cmocka_unit_test(test_bad_config_exits_two),
        cmocka_unit_test(test_auth_required_unless_disabled),
        cmocka_unit_test(test_init_failure_codes),
        cmocka_unit_test(test_http_service),
        cmocka_unit_test(test_breaker_keys),
    };
    return cmocka_run_group_tests_name("app", tests, NULL, NULL);
}
