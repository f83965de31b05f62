/* Integration 0001: scrape /metrics over HTTP and have `promtool check metrics` accept it silently.
 *
 * A server with a registry holding counters, gauges and histograms with labels (values that
 * need escaping), some requests through it, then GET /metrics with the curl tool; the body
 * goes to a temp file and `promtool check metrics` must exit 0 and print nothing (no lint
 * warnings either). */
#include "tn_test.h"

#include <stdlib.h>
#include <string.h>

#include "taina/http_server.h"
#include "taina/mem.h"
#include "taina/metrics.h"

typedef struct fixture {
    tn_metrics_t *metrics;
    tn_http_server_t *srv;
    int port;
    char *dir;
} fixture_t;

static void on_echo(tn_http_req_t *req, void *opaque)
{
    size_t len;
    const char *body = tn_http_req_body(req, &len);
    TN_UNUSED(opaque);
    tn_http_req_respond(req, 200, "application/json", body, len);
}

static const char *const json_only[] = {"application/json", NULL};

static const tn_http_route_t routes[] = {
    {"POST", "/v1/echo/{name}", on_echo, 0, json_only, NULL},
};

/* Families a service would have, with label values that need escaping in the text format. */
static void fill_registry(tn_metrics_t *m)
{
    tn_metric_t *consumed = tn_metrics_counter(m, "taina_records_consumed_total",
                                               "Records consumed, by topic.", TN_LABELS("topic"));
    tn_metric_add(consumed, TN_LABELS("tickets.raw"), 41);
    tn_metric_add(consumed, TN_LABELS("tickets.raw"), 1);
    tn_metric_add(consumed, TN_LABELS("tickets.enriched"), 7);

    tn_metric_t *failed = tn_metrics_counter(m, "taina_records_failed_total",
                                             "Records sent to the DLQ, by topic and reason.",
                                             TN_LABELS("topic", "reason"));
    tn_metric_add(failed, TN_LABELS("tickets.raw", "quote \"x\", back\\slash\nnew line"), 2);
    tn_metric_add(failed, TN_LABELS("tickets.raw", "caf\xc3\xa9 {schema} = 1"), 1);
    tn_metric_add(failed, TN_LABELS("tickets.raw", ""), 1);

    tn_metric_t *lag = tn_metrics_gauge(m, "taina_kafka_consumer_lag",
                                        "Messages behind the high watermark, per partition.",
                                        TN_LABELS("group", "topic", "partition"));
    tn_metric_set(lag, TN_LABELS("ingest", "tickets.raw", "0"), 12);
    tn_metric_set(lag, TN_LABELS("ingest", "tickets.raw", "1"), 0);
    tn_metric_set(lag, TN_LABELS("ingest", "tickets.raw", "2"), -1);

    tn_metric_t *up = tn_metrics_gauge(m, "taina_build_info", "Build information (always 1).",
                                       TN_LABELS("version"));
    tn_metric_set(up, TN_LABELS("1.0.0-test"), 1);

    static const double buckets[] = {0.01, 0.1, 0.5, 1, 2.5};
    tn_metric_t *dur =
        tn_metrics_histogram(m, "taina_upstream_request_duration_seconds",
                             "Upstream request duration, by provider and outcome.",
                             TN_LABELS("provider", "outcome"), buckets, TN_ARRAY_LEN(buckets));
    const double obs[] = {0.003, 0.04, 0.2, 0.2, 0.9, 3.5};
    for (size_t i = 0; i < TN_ARRAY_LEN(obs); i++)
        tn_metric_observe(dur, TN_LABELS("openai", "ok"), obs[i]);
    tn_metric_observe(dur, TN_LABELS("qdrant", "error \"5xx\""), 0.05);

    tn_metric_t *plain = tn_metrics_gauge(m, "taina_queue_depth", "Items waiting.", TN_NOLABELS);
    tn_metric_set(plain, TN_NOLABELS, 3);
}

static int setup(void **state)
{
    char err[256] = "";
    fixture_t *f = tn_xcalloc(1, sizeof(*f));
    f->metrics = tn_metrics_new();
    fill_registry(f->metrics);

    tn_http_server_opts_t o;
    tn_http_server_opts_init(&o);
    o.bind_addr = "127.0.0.1";
    o.port = 0;
    o.threads = 2;
    o.metrics = f->metrics;
    if (tn_http_server_new(&o, routes, TN_ARRAY_LEN(routes), &f->srv, err, sizeof(err)) != TN_OK ||
        tn_http_server_start(f->srv, err, sizeof(err)) != TN_OK)
        fail_msg("server: %s", err);
    f->port = tn_http_server_port(f->srv);
    f->dir = tn_test_mkdtemp("scrape");
    assert_non_null(f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    tn_http_server_destroy(f->srv);
    tn_metrics_destroy(f->metrics);
    tn_test_rmdir(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* Run curl against the server. @returns the status code curl reports (-1 on failure). */
static int curl(const fixture_t *f, const char *args, const char *path, char **out)
{
    char *cmd = tn_xasprintf("curl -sS --max-time %lld -w '%%{http_code} %%{content_type}' %s "
                             "'http://127.0.0.1:%d%s'",
                             (long long)(tn_test_timeout_ms(10000) / 1000), args, f->port, path);
    int rc = tn_test_run(cmd, out, 1);
    free(cmd);
    return rc == 0 ? (int)strtol(*out, NULL, 10) : -1;
}

/* The value of the line "SERIES VALUE" in a scrape. @returns 0, or -1 when there is none. */
static int series_value(const char *body, const char *series, double *v)
{
    size_t n = strlen(series);
    const char *l = body;
    while (l && *l) {
        if (strncmp(l, series, n) == 0 && l[n] == ' ') {
            char *end;
            *v = strtod(l + n + 1, &end);
            return end == l + n + 1 ? -1 : 0;
        }
        l = strchr(l, '\n');
        if (l)
            l++;
    }
    return -1;
}

static void test_scrape_passes_promtool(void **state)
{
    fixture_t *f = *state;
    char *out = NULL;

    /* Some traffic, so that the HTTP families have series too (route labels with braces). */
    assert_int_equal(curl(f, "-o /dev/null", "/health", &out), 200);
    free(out);
    assert_int_equal(curl(f, "-o /dev/null", "/nope", &out), 404);
    free(out);
    assert_int_equal(curl(f, "-o /dev/null -H 'Content-Type: application/json' -d '{\"a\":1}'",
                          "/v1/echo/x", &out),
                     200);
    free(out);
    assert_int_equal(
        curl(f, "-o /dev/null -H 'Content-Type: text/plain' -d 'x'", "/v1/echo/y", &out), 415);
    free(out);

    char *file = tn_xasprintf("%s/metrics.txt", f->dir);
    char *args = tn_xasprintf("-o '%s'", file);
    int status = curl(f, args, "/metrics", &out);
    if (status != 200)
        fail_msg("GET /metrics: %s", out);
    assert_non_null(strstr(out, "text/plain; version=0.0.4; charset=utf-8"));
    free(out);
    free(args);

    size_t len = 0;
    char *body = tn_test_read_file(file, &len);
    assert_non_null(body);
    assert_true(len > 0);
    /* Our families and the HTTP ones are there, label values escaped (text format 0.0.4). */
    static const char *const expect[] = {
        "# TYPE taina_records_consumed_total counter\n",
        "# TYPE taina_kafka_consumer_lag gauge\n",
        "# TYPE taina_upstream_request_duration_seconds histogram\n",
        "# TYPE taina_http_requests_total counter\n",
        "# TYPE taina_http_request_duration_seconds histogram\n",
        "# TYPE taina_http_connections gauge\n",
        "reason=\"quote \\\"x\\\", back\\\\slash\\nnew line\"",
        "outcome=\"error \\\"5xx\\\"\"",
    };
    for (size_t i = 0; i < TN_ARRAY_LEN(expect); i++) {
        if (!strstr(body, expect[i]))
            fail_msg("scrape lacks `%s`:\n%s", expect[i], body);
    }
    static const struct {
        const char *series;
        double value;
    } values[] = {
        {"taina_records_consumed_total{topic=\"tickets.raw\"}", 42},
        {"taina_kafka_consumer_lag{group=\"ingest\",topic=\"tickets.raw\",partition=\"2\"}", -1},
        {"taina_upstream_request_duration_seconds_bucket{provider=\"openai\",outcome=\"ok\","
         "le=\"+Inf\"}",
         6},
        {"taina_upstream_request_duration_seconds_count{provider=\"openai\",outcome=\"ok\"}", 6},
        {"taina_http_requests_total{route=\"/v1/echo/{name}\",method=\"POST\",status=\"200\"}", 1},
        {"taina_http_requests_total{route=\"/v1/echo/{name}\",method=\"POST\",status=\"415\"}", 1},
        {"taina_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"}", 1},
        {"taina_http_request_duration_seconds_count{route=\"/health\",method=\"GET\","
         "status=\"200\"}",
         1},
    };
    for (size_t i = 0; i < TN_ARRAY_LEN(values); i++) {
        double v;
        if (series_value(body, values[i].series, &v) != 0)
            fail_msg("scrape lacks series %s:\n%s", values[i].series, body);
        if (v != values[i].value)
            fail_msg("%s is %g, expected %g", values[i].series, v, values[i].value);
    }

    char *cmd = tn_xasprintf("promtool check metrics < '%s'", file);
    int rc = tn_test_run(cmd, &out, 1);
    if (rc != 0 || out[0] != '\0')
        fail_msg("promtool check metrics exited %d and said:\n%s\nscrape:\n%s", rc, out, body);
    free(out);
    free(cmd);
    free(body);
    free(file);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_scrape_passes_promtool, setup, teardown),
    };
    return cmocka_run_group_tests_name("0001-metrics-scrape", tests, NULL, NULL);
}
