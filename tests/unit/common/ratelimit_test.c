/* Token buckets: burst, refill rate, retry time, independence of keys, threads. */
#include "tn_test.h"

#include <pthread.h>
#include <stdatomic.h>

#include "taina/ratelimit.h"

static void test_burst_then_rate(void **state)
{
    (void)state;
    tn_ratelimit_t *rl = tn_ratelimit_new(2, 10.0, 5.0); /* 10/s, burst 5 */
    assert_non_null(rl);
    int64_t retry = 0, t = 1000;
    for (int i = 0; i < 5; i++)
        assert_true(tn_ratelimit_take(rl, 0, t, &retry));
    assert_false(tn_ratelimit_take(rl, 0, t, &retry));
    assert_int_equal(retry, 100); /* one token per 100 ms */
    assert_false(tn_ratelimit_take(rl, 0, t + 50, &retry));
    assert_int_equal(retry, 50);
    assert_true(tn_ratelimit_take(rl, 0, t + 100, &retry));
    assert_false(tn_ratelimit_take(rl, 0, t + 100, &retry));
    /* the other key is untouched */
    for (int i = 0; i < 5; i++)
        assert_true(tn_ratelimit_take(rl, 1, t + 100, &retry));
    assert_false(tn_ratelimit_take(rl, 1, t + 100, &retry));
    /* a long quiet spell refills only up to the burst */
    for (int i = 0; i < 5; i++)
        assert_true(tn_ratelimit_take(rl, 0, t + 60000, &retry));
    assert_false(tn_ratelimit_take(rl, 0, t + 60000, &retry));
    /* time going backwards (another thread's older clock reading) never adds tokens */
    assert_false(tn_ratelimit_take(rl, 0, t + 59000, &retry));
    /* an index past the buckets is not limited */
    assert_true(tn_ratelimit_take(rl, 7, t, &retry));
    tn_ratelimit_destroy(rl);
}

static void test_sustained_rate(void **state)
{
    (void)state;
    tn_ratelimit_t *rl = tn_ratelimit_new(1, 50.0, 1.0);
    int ok = 0;
    for (int64_t ms = 0; ms < 10000; ms++) /* one request per ms for 10 s */
        ok += tn_ratelimit_take(rl, 0, 1 + ms, NULL);
    assert_in_range(ok, 499, 501); /* 50/s */
    tn_ratelimit_destroy(rl);
}

static void test_no_limit(void **state)
{
    (void)state;
    assert_null(tn_ratelimit_new(4, 0, 10));
    assert_null(tn_ratelimit_new(4, 10, 0));
    assert_null(tn_ratelimit_new(0, 10, 10));
    assert_true(tn_ratelimit_take(NULL, 0, 1, NULL));
}

typedef struct {
    tn_ratelimit_t *rl;
    atomic_int ok;
} shared_t;

static void *taker(void *arg)
{
    shared_t *s = arg;
    for (int i = 0; i < 1000; i++)
        if (tn_ratelimit_take(s->rl, 0, 5, NULL))
            atomic_fetch_add(&s->ok, 1);
    return NULL;
}

static void test_threads_share_a_bucket(void **state)
{
    (void)state;
    shared_t s = {.rl = tn_ratelimit_new(1, 1.0, 100.0)};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, taker, &s);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&s.ok), 100); /* exactly the burst, never more */
    tn_ratelimit_destroy(s.rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_rate),
        cmocka_unit_test(test_sustained_rate),
        cmocka_unit_test(test_no_limit),
        cmocka_unit_test(test_threads_share_a_bucket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
