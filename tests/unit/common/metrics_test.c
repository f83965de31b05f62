/* Unit tests for common/src/metrics.c: values, exposition text, escaping, threads, promtool. */
#include "tn_test.h"

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
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
