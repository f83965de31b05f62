/* Circuit breaker states and backoff bounds. */
#include "tn_test.h"

#include <string.h>

#include "taina/breaker.h"
#include "taina/buf.h"
#include "taina/clock.h"
#include "taina/mem.h"
#include "taina/metrics.h"

static void test_opens_probes_closes(void **state)
{
    (void)state;
    tn_breaker_t b;
    tn_breaker_init(&b, "test", 3, 100);
    assert_true(tn_breaker_allow(&b));
    tn_breaker_failure(&b);
    tn_breaker_failure(&b);
    assert_int_equal(tn_breaker_state(&b), TN_BREAKER_CLOSED);
    tn_breaker_failure(&b);
    assert_int_equal(tn_breaker_state(&b), TN_BREAKER_OPEN);
    assert_false(tn_breaker_allow(&b));
    tn_clock_sleep_ms(120);
    assert_true(tn_breaker_allow(&b));  /* the probe */
    assert_false(tn_breaker_allow(&b)); /* only one */
    tn_breaker_failure(&b);             /* probe failed: open again */
    assert_false(tn_breaker_allow(&b));
    tn_clock_sleep_ms(120);
    assert_true(tn_breaker_allow(&b));
    tn_breaker_success(&b);
    assert_int_equal(tn_breaker_state(&b), TN_BREAKER_CLOSED);
    assert_true(tn_breaker_allow(&b));
    tn_breaker_failure(&b); /* a success reset the count */
    assert_int_equal(tn_breaker_state(&b), TN_BREAKER_CLOSED);
    tn_breaker_destroy(&b);
}

/* The gauge is 1 from opening until closing, also while a probe is due or out. */
static void test_export_gauge(void **state)
{
    (void)state;
    tn_metrics_t *m = tn_metrics_new();
    tn_breaker_t b;
    tn_breaker_init(&b, "llm", 2, 50);
    tn_breaker_export(&b, m, "taina_test_circuit_open");
    tn_metric_t *g = tn_metrics_gauge(m, "taina_test_circuit_open", "x", TN_LABELS("upstream"));
    tn_buf_t out;
    tn_buf_init(&out, 1 << 20);
    assert_int_equal(tn_metrics_render(m, &out), TN_OK);
    tn_buf_add(&out, "", 1);
    assert_non_null(strstr(out.data, "taina_test_circuit_open{upstream=\"llm\"} 0"));
    tn_breaker_failure(&b);
    assert_true(tn_metric_get(g, TN_LABELS("llm")) == 0.0);
    assert_false(tn_breaker_is_open(&b));
    tn_breaker_failure(&b);
    assert_true(tn_metric_get(g, TN_LABELS("llm")) == 1.0);
    assert_true(tn_breaker_is_open(&b));
    tn_clock_sleep_ms(60);
    assert_true(tn_breaker_allow(&b)); /* the probe: still open for the gauge */
    assert_true(tn_metric_get(g, TN_LABELS("llm")) == 1.0);
    assert_true(tn_breaker_is_open(&b));
    tn_breaker_success(&b);
    assert_true(tn_metric_get(g, TN_LABELS("llm")) == 0.0);
    assert_false(tn_breaker_is_open(&b));
    tn_buf_cleanup(&out);
    tn_breaker_destroy(&b);
    tn_metrics_destroy(m);
}

/* Retry-After material: the time left of the cooldown, 0 when closed or a probe may go. */
static void test_retry_in(void **state)
{
    (void)state;
    tn_breaker_t b;
    tn_breaker_init(&b, "qdrant", 1, 200);
    assert_int_equal(tn_breaker_retry_in_ms(&b), 0);
    tn_breaker_failure(&b);
    int64_t left = tn_breaker_retry_in_ms(&b);
    assert_in_range(left, 100, 200);
    tn_clock_sleep_ms(220);
    assert_int_equal(tn_breaker_retry_in_ms(&b), 0);
    tn_breaker_destroy(&b);
}

/* A probe whose caller made no call gives its turn back; one that never reports is taken as
 * lost after a cooldown, so the breaker cannot stay half-open for ever. */
static void test_release_and_lost_probe(void **state)
{
    (void)state;
    tn_breaker_t b;
    tn_breaker_init(&b, "booking", 1, 80);
    tn_breaker_release(&b); /* closed: nothing to give back */
    assert_int_equal(tn_breaker_state(&b), TN_BREAKER_CLOSED);
    tn_breaker_failure(&b);
    tn_clock_sleep_ms(100);
    assert_true(tn_breaker_allow(&b));
    assert_false(tn_breaker_allow(&b));
    tn_breaker_release(&b); /* nothing to do after all */
    assert_true(tn_breaker_is_open(&b));
    assert_true(tn_breaker_allow(&b)); /* the next caller probes at once */
    assert_false(tn_breaker_allow(&b));
    tn_clock_sleep_ms(100); /* that probe never reported */
    assert_true(tn_breaker_allow(&b));
    tn_breaker_failure(&b);
    assert_false(tn_breaker_allow(&b));
    tn_breaker_destroy(&b);
}

/* Outcomes by the clients' codes: down/slow/garbled fail, a refusal is an answer, a stopped
 * caller neither. */
static void test_record(void **state)
{
    (void)state;
    const tn_err_t fails[] = {TN_ERR_UNAVAILABLE, TN_ERR_TIMEOUT, TN_ERR_PARSE, TN_ERR_TOO_LARGE};
    for (size_t i = 0; i < TN_ARRAY_LEN(fails); i++) {
        tn_breaker_t b;
        tn_breaker_init(&b, "stt", 1, 60000);
        tn_breaker_record(&b, fails[i]);
        assert_true(tn_breaker_is_open(&b));
        tn_breaker_destroy(&b);
    }
    tn_breaker_t b;
    tn_breaker_init(&b, "stt", 2, 50);
    tn_breaker_record(&b, TN_ERR_UNAVAILABLE);
    tn_breaker_record(&b, TN_ERR_UPSTREAM); /* a 4xx: it answered */
    tn_breaker_record(&b, TN_ERR_UNAVAILABLE);
    assert_false(tn_breaker_is_open(&b));
    tn_breaker_record(&b, TN_ERR_UNAVAILABLE);
    assert_true(tn_breaker_is_open(&b));
    tn_clock_sleep_ms(60);
    assert_true(tn_breaker_allow(&b));
    tn_breaker_record(&b, TN_ERR_STOPPED); /* the probe's caller left: the next one probes */
    assert_true(tn_breaker_allow(&b));
    tn_breaker_record(&b, TN_OK);
    assert_false(tn_breaker_is_open(&b));
    tn_breaker_destroy(&b);
}

static void test_backoff_bounds(void **state)
{
    (void)state;
    for (int i = 0; i < 200; i++) {
        assert_in_range(tn_backoff_ms(1, 100, 5000), 0, 100);
        assert_in_range(tn_backoff_ms(3, 100, 5000), 0, 400);
        assert_in_range(tn_backoff_ms(30, 100, 5000), 0, 5000);
    }
    int64_t sum = 0;
    for (int i = 0; i < 1000; i++)
        sum += tn_backoff_ms(4, 100, 5000);
    assert_in_range(sum / 1000, 250, 550); /* mean of U[0,800] is 400 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opens_probes_closes),
        cmocka_unit_test(test_export_gauge),
        cmocka_unit_test(test_retry_in),
        cmocka_unit_test(test_release_and_lost_probe),
        cmocka_unit_test(test_record),
        cmocka_unit_test(test_backoff_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
