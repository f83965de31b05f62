/* Unit tests for common/src/config.c: tables, sources, validation, printing. */
#include "tn_test.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "taina/config.h"
#include "taina/mem.h"

typedef struct demo_cfg {
    char *brokers;
    int64_t port;
    bool auth_disabled;
    int64_t grace_ms;
    int64_t max_body;
    int level;
    char *qdrant_url;
    char *api_key;
    char *must;
    char *colour;
} demo_cfg_t;

static const char *const levels[] = {"debug", "info", "warn", "error", NULL};

#define K(name, type, field, def, flags, help)                                                     \
    {                                                                                              \
        name, type, offsetof(demo_cfg_t, field), def, flags, help, 0, 0, NULL                      \
    }

static const tn_cfg_key_t demo_keys[] = {
    K("kafka_brokers", TN_CFG_STRING, brokers, "127.0.0.1:9092", 0, "Kafka bootstrap servers"),
    {"http_port", TN_CFG_INT, offsetof(demo_cfg_t, port), "8080", 0, "HTTP port", 1, 65535, NULL},
    K("auth_disabled", TN_CFG_BOOL, auth_disabled, "false", 0, "Disable API keys"),
    K("shutdown_grace", TN_CFG_DURATION, grace_ms, "10s", 0, "Drain time on SIGTERM"),
    {"max_body", TN_CFG_SIZE, offsetof(demo_cfg_t, max_body), "1MiB", 0, "Largest request body", 1,
     1 << 30, NULL},
    {"log_level", TN_CFG_ENUM, offsetof(demo_cfg_t, level), "info", 0, "Log level", 0, 0, levels},
    K("qdrant_url", TN_CFG_URL, qdrant_url, NULL, 0, "Qdrant base URL"),
    K("qdrant_api_key", TN_CFG_STRING, api_key, NULL, TN_CFG_SECRET, "Qdrant API key"),
    K("must_have", TN_CFG_STRING, must, NULL, TN_CFG_REQUIRED, "A required value"),
    K("demo_colour", TN_CFG_STRING, colour, "blue", 0, "A key named after its table"),
};

typedef struct fixture {
    tn_cfg_t *cfg;
    demo_cfg_t v;
    char err[512];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = tn_xcalloc(1, sizeof(*f));
    f->cfg = tn_cfg_new("taina-demo");
    tn_cfg_add_table(f->cfg, "demo", demo_keys, TN_ARRAY_LEN(demo_keys), &f->v);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    tn_cfg_destroy(f->cfg);
    free(f);
    return 0;
}

static void test_defaults_and_env(void **state)
{
    fixture_t *f = *state;
    char *env[] = {"TAINA_MUST_HAVE=x",
                   "TAINA_HTTP_PORT=9000",
                   "TAINA_AUTH_DISABLED=yes",
                   "TAINA_SHUTDOWN_GRACE=1m30s",
                   "TAINA_LOG_LEVEL=WARN",
                   "PATH=/bin",
                   "TAINA_OTHER_SERVICE_KEY=ignored",
                   NULL};
    assert_int_equal(tn_cfg_load(f->cfg, NULL, env, f->err, sizeof(f->err)), TN_OK);
    assert_string_equal(f->v.brokers, "127.0.0.1:9092");
    assert_int_equal(f->v.port, 9000);
    assert_true(f->v.auth_disabled);
    assert_int_equal(f->v.grace_ms, 90000);
    assert_int_equal(f->v.max_body, 1 << 20);
    assert_int_equal(f->v.level, 2);
    assert_null(f->v.qdrant_url);
}

static void test_bad_int_names_variable(void **state)
{
    fixture_t *f = *state;
    char *env[] = {"TAINA_MUST_HAVE=x", "TAINA_HTTP_PORT=80a", NULL};
    assert_int_equal(tn_cfg_load(f->cfg, NULL, env, f->err, sizeof(f->err)), TN_ERR_CONFIG);
    assert_non_null(strstr(f->err, "TAINA_HTTP_PORT"));
    assert_non_null(strstr(f->err, "not an integer"));
}

static void test_out_of_range(void **state)
{
    fixture_t *f = *state;
    char *env[] = {"TAINA_MUST_HAVE=x", "TAINA_HTTP_PORT=70000", NULL};
    assert_int_equal(tn_cfg_load(f->cfg, NULL, env, f->err, sizeof(f->err)), TN_ERR_CONFIG);
    assert_non_null(strstr(f->err, "out of range"));
}

static void test_bad_values_each_type(void **state)
{
    fixture_t *f = *state;
    const char *bad[] = {"TAINA_AUTH_DISABLED=maybe",      "TAINA_SHUTDOWN_GRACE=10",
                         "TAINA_SHUTDOWN_GRACE=5 parsecs", "TAINA_MAX_BODY=lots",
                         "TAINA_LOG_LEVEL=loud",           "TAINA_QDRANT_URL=ftp://x",
                         "TAINA_QDRANT_URL=http://"};
    for (size_t i = 0; i < TN_ARRAY_LEN(bad); i++) {
        char *env[] = {"TAINA_MUST_HAVE=x", (char *)bad[i], NULL};
        assert_int_equal(tn_cfg_load(f->cfg, NULL, env, f->err, sizeof(f->err)), TN_ERR_CONFIG);
        char var[64];
        snprintf(var, sizeof(var), "%.*s", (int)strcspn(bad[i], "="), bad[i]);
        assert_non_null(strstr(f->err, var));
    }
}

static void test_missing_required(void **state)
{
    fixture_t *f = *state;
    char *env[] = {"TAINA_MUST_HAVE=", NULL};
    assert_int_equal(tn_cfg_load(f->cfg, NULL, env, f->err, sizeof(f->err)), TN_ERR_CONFIG);
    assert_non_null(strstr(f->err, "TAINA_MUST_HAVE is required"));
}

static void test_file_then_env_precedence(void **state)
{
    fixture_t *f = *state;
    char *dir = tn_test_mkdtemp("cfg");
    char *path = tn_xasprintf("%s/taina.env", dir);
    tn_test_write_file(path, "# comment\n\nTAINA_MUST_HAVE=from-file\nhttp_port = 7000\n"
                             "export TAINA_QDRANT_URL=\"http://127.0.0.1:6333\"\n"
                             "TAINA_KAFKA_SASL_MECHANISM=SCRAM-SHA-512\n");
    char *env[] = {"TAINA_HTTP_PORT=7001", "TAINA_KAFKA_SASL_PASSWORD=hunter2", NULL};
    assert_int_equal(tn_cfg_load(f->cfg, path, env, f->err, sizeof(f->err)), TN_OK);
    assert_string_equal(f->v.must, "from-file");
    assert_int_equal(f->v.port, 7001);
    assert_string_equal(f->v.qdrant_url, "http://127.0.0.1:6333");
    size_t n;
    const tn_cfg_prop_t *props = tn_cfg_kafka_props(f->cfg, &n);
    assert_int_equal(n, 2);
    assert_string_equal(props[0].name, "sasl.mechanism");
    assert_string_equal(props[0].value, "SCRAM-SHA-512");
    assert_string_equal(props[1].name, "sasl.password");
    tn_test_rmdir(dir);
    free(path);
    free(dir);
}

static void test_file_errors(void **state)
{
    fixture_t *f = *state;
    char *dir = tn_test_mkdtemp("cfg");
    char *path = tn_xasprintf("%s/bad.env", dir);
    tn_test_write_file(path, "TAINA_MUST_HAVE=x\nTAINA_TYPO_KEY=1\n");
    assert_int_equal(tn_cfg_load(f->cfg, path, NULL, f->err, sizeof(f->err)), TN_ERR_CONFIG);
    assert_non_null(strstr(f->err, ":2: unknown key TAINA_TYPO_KEY"));
    assert_int_equal(tn_cfg_load(f->cfg, "/nonexistent/x.env", NULL, f->err, sizeof(f->err)),
                     TN_ERR_CONFIG);
    assert_non_null(strstr(f->err, "No such file"));
    tn_test_rmdir(dir);
    free(path);
    free(dir);
}

static char *capture(void (*fn)(fixture_t *, FILE *), fixture_t *fx)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    fn(fx, m);
    fclose(m);
    return buf;
}

static void print_eff(fixture_t *f, FILE *out)
{
    tn_cfg_print_effective(f->cfg, out);
}

static void print_help(fixture_t *f, FILE *out)
{
    tn_cfg_print_help(f->cfg, out);
}

static void test_print_masks_secrets(void **state)
{
    fixture_t *f = *state;
    char *env[] = {"TAINA_MUST_HAVE=x", "TAINA_QDRANT_API_KEY=s3cr3t",
                   "TAINA_KAFKA_SASL_PASSWORD=hunter2", NULL};
    assert_int_equal(tn_cfg_load(f->cfg, NULL, env, f->err, sizeof(f->err)), TN_OK);
    char *out = capture(print_eff, f);
    assert_null(strstr(out, "s3cr3t"));
    assert_null(strstr(out, "hunter2"));
    assert_non_null(strstr(out, "TAINA_QDRANT_API_KEY=********"));
    assert_non_null(strstr(out, "TAINA_SHUTDOWN_GRACE=10s  # default"));
    assert_non_null(strstr(out, "TAINA_MUST_HAVE=x  # env"));
    free(out);
    out = capture(print_help, f);
    assert_non_null(strstr(out, "TAINA_HTTP_PORT"));
    assert_non_null(strstr(out, "int 1..65535"));
    assert_non_null(strstr(out, "required"));
    free(out);
}

static void test_from_args(void **state)
{
    fixture_t *f = *state;
    char *env[] = {"TAINA_MUST_HAVE=x", NULL};
    char *errs = NULL, *outs = NULL;
    size_t el = 0, ol = 0;
    FILE *err = open_memstream(&errs, &el), *out = open_memstream(&outs, &ol);
    char *a1[] = {"prog", "--bogus", NULL};
    assert_int_equal(tn_cfg_from_args(f->cfg, 2, a1, env, out, err), TN_CFG_EXIT_BAD);
    char *a2[] = {"prog", "--print-config", NULL};
    assert_int_equal(tn_cfg_from_args(f->cfg, 2, a2, env, out, err), TN_CFG_EXIT_OK);
    char *a3[] = {"prog", NULL};
    char *env_bad[] = {"TAINA_HTTP_PORT=-1", "TAINA_MUST_HAVE=x", NULL};
    assert_int_equal(tn_cfg_from_args(f->cfg, 1, a3, env_bad, out, err), TN_CFG_EXIT_BAD);
    assert_int_equal(tn_cfg_from_args(f->cfg, 1, a3, env, out, err), TN_CFG_RUN);
    fclose(err);
    fclose(out);
    assert_non_null(strstr(errs, "unknown option --bogus"));
    assert_non_null(strstr(errs, "configuration error: TAINA_HTTP_PORT"));
    /* one line per error */
    int lines = 0;
    for (char *p = errs; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 2);
    assert_non_null(strstr(outs, "TAINA_HTTP_PORT=8080"));
    free(errs);
    free(outs);
}

static void test_command_line_overrides(void **state)
{
    fixture_t *f = *state;
    char *env[] = {"TAINA_MUST_HAVE=x", "TAINA_HTTP_PORT=9000", NULL};
    char *argv[] = {"prog",
                    "--http-port",
                    "9100",
                    "--auth-disabled",
                    "--max-body=2KB",
                    "--log_level",
                    "debug",
                    "--colour",
                    "red",
                    NULL};
    FILE *null = fopen("/dev/null", "w");
    assert_int_equal(tn_cfg_from_args(f->cfg, 9, argv, env, null, null), TN_CFG_RUN);
    assert_int_equal(f->v.port, 9100); /* argument wins over environment */
    assert_true(f->v.auth_disabled);
    assert_int_equal(f->v.max_body, 2048);
    assert_int_equal(f->v.level, 0);
    assert_string_equal(f->v.colour, "red"); /* --colour names demo_colour in table "demo" */
    char *bad[] = {"prog", "--http-port", "x", NULL};
    assert_int_equal(tn_cfg_from_args(f->cfg, 3, bad, env, null, null), TN_CFG_EXIT_BAD);
    char *stray[] = {"prog", "positional", NULL};
    assert_int_equal(tn_cfg_from_args(f->cfg, 2, stray, env, null, null), TN_CFG_EXIT_BAD);
    fclose(null);
}

static void test_parsers(void **state)
{
    (void)state;
    int64_t v;
    bool b;
    assert_int_equal(tn_cfg_parse_duration("250ms", &v), TN_OK);
    assert_int_equal(v, 250);
    assert_int_equal(tn_cfg_parse_duration("2h", &v), TN_OK);
    assert_int_equal(v, 7200000);
    assert_int_equal(tn_cfg_parse_duration("0", &v), TN_OK);
    assert_int_equal(v, 0);
    assert_int_equal(tn_cfg_parse_duration("", &v), TN_ERR_INVALID);
    assert_int_equal(tn_cfg_parse_duration("-5s", &v), TN_ERR_INVALID);
    assert_int_equal(tn_cfg_parse_size("64KB", &v), TN_OK);
    assert_int_equal(v, 65536);
    assert_int_equal(tn_cfg_parse_size("10MiB", &v), TN_OK);
    assert_int_equal(v, 10 << 20);
    assert_int_equal(tn_cfg_parse_size("99999999999999G", &v), TN_ERR_INVALID);
    assert_int_equal(tn_cfg_parse_bool("On", &b), TN_OK);
    assert_true(b);
    assert_int_equal(tn_cfg_parse_bool("2", &b), TN_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults_and_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_int_names_variable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_values_each_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_required, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_then_env_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_print_masks_secrets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_from_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_command_line_overrides, setup, teardown),
        cmocka_unit_test(test_parsers),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
