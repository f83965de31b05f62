/* Unit tests for common/src/metrics.c: values, exposition text, escaping, threads, promtool. */
#include "tn_test.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "taina/mem.h"
#include "taina/metrics.h"

static char *render(tn_metrics_t *m)
{
    tn_buf_t b;
    tn_buf_init(&b, 1 << 20);
    assert_int_equal(tn_metrics_render(m, &b), TN_OK);
    return tn_buf_detach(&b, NULL);
}

/* The part of the exposition for one family (from its # HELP to the next # HELP). */
static char *family_text(const char *all, const char *name)
{
    char *needle = tn_xasprintf("# HELP %s ", name);
    const char *p = strstr(all, needle);
    free(needle);
    if (!p)
        return tn_xstrdup("");
    const char *end = strstr(p + 1, "# HELP ");
    return tn_xstrndup(p, end ? (size_t)(end - p) : strlen(p));
}

static void test_counter_gauge_values(void **state)
{
    (void)state;
    tn_metrics_t *m = tn_metrics_new();
    tn_metric_t *c = tn_metrics_counter(m, "taina_records_total", "Records.", TN_LABELS("topic"));
    assert_ptr_equal(c, tn_metrics_counter(m, "taina_records_total", "Records.",
                                           TN_LABELS("topic"))); /* same family */
    tn_metric_add(c, TN_LABELS("a"), 1);
    tn_metric_add(c, TN_LABELS("a"), 2.5);
    tn_metric_add(c, TN_LABELS("b"), 1);
    assert_true(tn_metric_get(c, TN_LABELS("a")) == 3.5);
    assert_true(tn_metric_get(c, TN_LABELS("zzz")) == 0);
    tn_metric_t *g = tn_metrics_gauge(m, "taina_lag", "Lag.", TN_NOLABELS);
    tn_metric_set(g, TN_NOLABELS, 7);
    tn_metric_add(g, TN_NOLABELS, -2);
    assert_true(tn_metric_get(g, TN_NOLABELS) == 5);
    char *out = render(m);
    char *fam = family_text(out, "taina_records_total");
    assert_string_equal(fam, "# HELP taina_records_total Records.\n"
                             "# TYPE taina_records_total counter\n"
                             "taina_records_total{topic=\"a\"} 3.5\n"
                             "taina_records_total{topic=\"b\"} 1\n");
    free(fam);
    fam = family_text(out, "taina_lag");
    assert_string_equal(fam, "# HELP taina_lag Lag.\n# TYPE taina_lag gauge\ntaina_lag 5\n");
    free(fam);
    /* families are sorted by name */
    assert_true(strstr(out, "# HELP taina_lag") < strstr(out, "# HELP taina_records_total"));
    free(out);
    /* a label value longer than the key's stack buffer: the same series, updated and removed */
    char longv[400];
    memset(longv, 'v', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    tn_metric_add(c, TN_LABELS(longv), 1);
    tn_metric_add(c, TN_LABELS(longv), 2);
    assert_true(tn_metric_get(c, TN_LABELS(longv)) == 3);
    tn_metric_remove(c, TN_LABELS(longv));
    assert_true(tn_metric_get(c, TN_LABELS(longv)) == 0);
    assert_true(tn_metric_get(c, TN_LABELS("a")) == 3.5);
    tn_metrics_destroy(m);
}

static void test_histogram_cumulative(void **state)
{
    (void)state;
    tn_metrics_t *m = tn_metrics_new();
    const double bounds[] = {0.1, 1, 10};
    tn_metric_t *h =
        tn_metrics_histogram(m, "taina_op_seconds", "Op time.", TN_LABELS("op"), bounds, 3);
    tn_metric_observe(h, TN_LABELS("x"), 0.05);
    tn_metric_observe(h, TN_LABELS("x"), 0.5);
    tn_metric_observe(h, TN_LABELS("x"), 0.5);
    tn_metric_observe(h, TN_LABELS("x"), 100);
    assert_int_equal(tn_metric_count(h, TN_LABELS("x")), 4);
    char *out = render(m);
    char *fam = family_text(out, "taina_op_seconds");
    assert_string_equal(fam, "# HELP taina_op_seconds Op time.\n"
                             "# TYPE taina_op_seconds histogram\n"
                             "taina_op_seconds_bucket{op=\"x\",le=\"0.10000000000000001\"} 1\n"
                             "taina_op_seconds_bucket{op=\"x\",le=\"1\"} 3\n"
                             "taina_op_seconds_bucket{op=\"x\",le=\"10\"} 3\n"
                             "taina_op_seconds_bucket{op=\"x\",le=\"+Inf\"} 4\n"
                             "taina_op_seconds_sum{op=\"x\"} 101.05\n"
                             "taina_op_seconds_count{op=\"x\"} 4\n");
    free(fam);
    free(out);
    tn_metrics_destroy(m);
}

static void test_escaping_and_special_values(void **state)
{
    (void)state;
    tn_metrics_t *m = tn_metrics_new();
    tn_metric_t *g = tn_metrics_gauge(m, "taina_odd", "Help with \\ and\nnewline.", TN_LABELS("v"));
    tn_metric_set(g, TN_LABELS("quote\" back\\ nl\n"), INFINITY);
    tn_metric_set(g, TN_LABELS("nan"), NAN);
    char *out = render(m);
    char *fam = family_text(out, "taina_odd");
    assert_string_equal(fam, "# HELP taina_odd Help with \\\\ and\\nnewline.\n"
                             "# TYPE taina_odd gauge\n"
                             "taina_odd{v=\"nan\"} NaN\n"
                             "taina_odd{v=\"quote\\\" back\\\\ nl\\n\"} +Inf\n");
    free(fam);
    free(out);
    tn_metrics_destroy(m);
}

static void test_remove_and_process_metrics(void **state)
{
    (void)state;
    tn_metrics_t *m = tn_metrics_new();
    tn_metric_t *g = tn_metrics_gauge(m, "taina_kafka_consumer_lag", "Lag.",
                                      TN_LABELS("group", "topic", "partition"));
    tn_metric_set(g, TN_LABELS("g", "t", "0"), 3);
    tn_metric_set(g, TN_LABELS("g", "t", "1"), 4);
    tn_metric_remove(g, TN_LABELS("g", "t", "0"));
    tn_metric_remove(g, TN_LABELS("g", "t", "9")); /* absent: no-op */
    char *out = render(m);
    assert_null(strstr(out, "partition=\"0\""));
    assert_non_null(
        strstr(out, "taina_kafka_consumer_lag{group=\"g\",topic=\"t\",partition=\"1\"} 4"));
    assert_non_null(strstr(out, "process_resident_memory_bytes "));
    assert_non_null(strstr(out, "process_cpu_seconds_total "));
    assert_non_null(strstr(out, "process_open_fds "));
    /* RSS is a plausible number of bytes */
    double rss = strtod(strstr(out, "\nprocess_resident_memory_bytes ") + 31, NULL);
    assert_true(rss > 100000 && rss < 1e11);
    free(out);
    tn_metrics_destroy(m);
}

static int collected;
static void collector(tn_metrics_t *m, void *opaque)
{
    collected++;
    tn_metric_set(tn_metrics_gauge(m, "taina_queue_depth", "Depth.", TN_NOLABELS), TN_NOLABELS,
                  *(int *)opaque);
}

static void test_collector_and_cap(void **state)
{
    (void)state;
    tn_metrics_t *m = tn_metrics_new();
    int depth = 42;
    tn_metrics_add_collector(m, collector, &depth);
    char *out = render(m);
    assert_int_equal(collected, 1);
    assert_non_null(strstr(out, "taina_queue_depth 42\n"));
    free(out);
    tn_buf_t small;
    tn_buf_init(&small, 64);
    assert_int_equal(tn_metrics_render(m, &small), TN_ERR_TOO_LARGE);
    tn_buf_cleanup(&small);
    tn_metrics_destroy(m);
}

typedef struct worker {
    tn_metric_t *c, *h;
    int id;
} worker_t;

static void *work(void *arg)
{
    worker_t *w = arg;
    char own[16];
    snprintf(own, sizeof(own), "t%d", w->id);
    for (int i = 0; i < 20000; i++) {
        tn_metric_add(w->c, TN_LABELS("shared"), 1);
        tn_metric_add(w->c, TN_LABELS(own), 1);
        tn_metric_observe(w->h, TN_NOLABELS, 0.002);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    tn_metrics_t *m = tn_metrics_new();
    worker_t w[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        w[i].c = tn_metrics_counter(m, "taina_ops_total", "Ops.", TN_LABELS("who"));
        w[i].h = tn_metrics_histogram(m, "taina_op_seconds", "Op.", TN_NOLABELS,
                                      tn_metrics_duration_buckets, tn_metrics_duration_nbuckets);
        w[i].id = i;
        pthread_create(&th[i], NULL, work, &w[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_true(tn_metric_get(w[0].c, TN_LABELS("shared")) == 80000);
    assert_true(tn_metric_get(w[0].c, TN_LABELS("t3")) == 20000);
    assert_int_equal(tn_metric_count(w[0].h, TN_NOLABELS), 80000);
    tn_metrics_destroy(m);
}

static void test_promtool_clean(void **state)
{
    (void)state;
    tn_metrics_t *m = tn_metrics_new();
    tn_metric_add(tn_metrics_counter(m, "taina_http_requests_total", "HTTP requests.",
                                     TN_LABELS("route", "method", "status")),
                  TN_LABELS("/v1/tickets", "POST", "202"), 3);
    tn_metric_set(
        tn_metrics_gauge(m, "taina_kafka_consumer_group_lag", "Lag.", TN_LABELS("group", "topic")),
        TN_LABELS("taina-ingest", "tickets \"raw\"\\\n"), 12);
    tn_metric_observe(tn_metrics_histogram(m, "taina_http_request_duration_seconds",
                                           "HTTP request duration.", TN_LABELS("route"),
                                           tn_metrics_duration_buckets,
                                           tn_metrics_duration_nbuckets),
                      TN_LABELS("/health"), 0.003);
    char *out = render(m);
    char *dir = tn_test_mkdtemp("metrics");
    char *path = tn_xasprintf("%s/scrape.txt", dir);
    assert_int_equal(tn_test_write_file(path, out), 0);
    char *cmd = tn_xasprintf("promtool check metrics < %s", path), *res = NULL;
    int rc = tn_test_run(cmd, &res, 1);
    if (rc != 0 || *res)
        fail_msg("promtool check metrics: rc=%d output: %s", rc, res);
    free(res);
    free(cmd);
    free(path);
    tn_test_rmdir(dir);
    free(dir);
    free(out);
    tn_metrics_destroy(m);
}

/* The EMF line parses back as the one JSON document CONTRACTS.md 7.1 describes. */
static void test_emf_lag_line(void **state)
{
    (void)state;
    tn_buf_t b;
    tn_buf_init(&b, 4096);
    tn_metrics_emf_lag_t r = {.ns = "Taina",
                              .service = "embedder",
                              .group = "taina-embedder",
                              .topic = "tickets.enriched",
                              .lag_sum = 42,
                              .timestamp_ms = 1767225600123LL};
    assert_int_equal(tn_metrics_emf_lag(&b, &r), TN_OK);
    /* one line: a newline at the end and nowhere else */
    assert_true(b.len > 0 && b.data[b.len - 1] == '\n');
    assert_null(memchr(b.data, '\n', b.len - 1));
    /* _aws comes first */
    assert_true(strncmp(b.data, "{\"_aws\":{", 9) == 0);

    json_error_t jerr;
    json_t *doc = json_loadb(b.data, b.len, 0, &jerr);
    if (!doc)
        fail_msg("EMF line is not JSON: %s: %s", jerr.text, b.data);
    json_t *aws = json_object_get(doc, "_aws");
    assert_true(json_is_object(aws));
    json_t *ts = json_object_get(aws, "Timestamp");
    assert_true(json_is_integer(ts));
    assert_true(json_integer_value(ts) == 1767225600123LL);
    json_t *dirs = json_object_get(aws, "CloudWatchMetrics");
    assert_true(json_is_array(dirs) && json_array_size(dirs) == 1);
    json_t *dir = json_array_get(dirs, 0);
    assert_string_equal(json_string_value(json_object_get(dir, "Namespace")), "Taina");
    json_t *dims = json_object_get(dir, "Dimensions");
    assert_true(json_is_array(dims) && json_array_size(dims) == 1);
    json_t *set = json_array_get(dims, 0);
    assert_int_equal(json_array_size(set), 2);
    /* every dimension named is a root member with a string value */
    for (size_t i = 0; i < json_array_size(set); i++) {
        const char *dname = json_string_value(json_array_get(set, i));
        assert_non_null(dname);
        assert_true(json_is_string(json_object_get(doc, dname)));
    }
    assert_string_equal(json_string_value(json_array_get(set, 0)), "Service");
    assert_string_equal(json_string_value(json_array_get(set, 1)), "ConsumerGroup");
    json_t *mets = json_object_get(dir, "Metrics");
    assert_true(json_is_array(mets) && json_array_size(mets) == 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(mets, 0), "Name")),
                        "ConsumerLagSum");
    assert_string_equal(json_string_value(json_object_get(json_array_get(mets, 0), "Unit")),
                        "Count");
    assert_string_equal(json_string_value(json_object_get(doc, "Service")), "embedder");
    assert_string_equal(json_string_value(json_object_get(doc, "ConsumerGroup")), "taina-embedder");
    assert_string_equal(json_string_value(json_object_get(doc, "Topic")), "tickets.enriched");
    json_t *v = json_object_get(doc, "ConsumerLagSum");
    assert_true(json_is_number(v) && json_number_value(v) == 42);
    assert_int_equal(json_object_size(doc), 5);
    json_decref(doc);

    /* A group or service name with quotes stays one valid document. */
    tn_buf_reset(&b);
    r.group = "g\"x\\y";
    r.lag_sum = 0.5;
    assert_int_equal(tn_metrics_emf_lag(&b, &r), TN_OK);
    doc = json_loadb(b.data, b.len, 0, &jerr);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "ConsumerGroup")), "g\"x\\y");
    assert_true(json_number_value(json_object_get(doc, "ConsumerLagSum")) == 0.5);
    json_decref(doc);

    /* What CloudWatch would refuse is refused here. */
    tn_buf_reset(&b);
    r.group = "g";
    r.ns = "has space";
    assert_int_equal(tn_metrics_emf_lag(&b, &r), TN_ERR_INVALID);
    r.ns = "Taina";
    r.service = "";
    assert_int_equal(tn_metrics_emf_lag(&b, &r), TN_ERR_INVALID);
    r.service = "embedder";
    r.lag_sum = NAN;
    assert_int_equal(tn_metrics_emf_lag(&b, &r), TN_ERR_INVALID);
    assert_int_equal(b.len, 0);
    tn_buf_cleanup(&b);

    assert_true(tn_metrics_emf_namespace_ok("Taina/Prod-1.x#a:b_c"));
    assert_false(tn_metrics_emf_namespace_ok(""));
    assert_false(tn_metrics_emf_namespace_ok("Taina Prod"));
    char *longns = tn_xcalloc(1, 258);
    memset(longns, 'a', 257);
    assert_false(tn_metrics_emf_namespace_ok(longns));
    longns[256] = '\0';
    assert_true(tn_metrics_emf_namespace_ok(longns));
    free(longns);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_gauge_values),
        cmocka_unit_test(test_histogram_cumulative),
        cmocka_unit_test(test_escaping_and_special_values),
        cmocka_unit_test(test_remove_and_process_metrics),
        cmocka_unit_test(test_collector_and_cap),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_promtool_clean),
        cmocka_unit_test(test_emf_lag_line),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
