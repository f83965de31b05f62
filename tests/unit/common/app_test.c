/* Unit tests for common/src/app.c: the program skeleton's exit codes and hook order. */
#include "tn_test.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "taina/app.h"
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_run),
        cmocka_unit_test(test_help_exits_zero),
        cmocka_unit_test(test_bad_config_exits_two),
        cmocka_unit_test(test_auth_required_unless_disabled),
        cmocka_unit_test(test_init_failure_codes),
    };
    return cmocka_run_group_tests_name("app", tests, NULL, NULL);
}
