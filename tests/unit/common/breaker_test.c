/* Circuit breaker states and backoff bounds. */
#include "tn_test.h"

#include "taina/breaker.h"
#include "taina/clock.h"

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
        cmocka_unit_test(test_backoff_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
