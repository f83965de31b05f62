/* Unit tests for common/src/lifecycle.c: signals start a drain, waits wake up, grace watchdog. */
#include "tn_test.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "taina/clock.h"
#include "taina/lifecycle.h"

static void test_sigterm_wakes_wait(void **state)
{
    (void)state;
    tn_lifecycle_reset();
    assert_int_equal(tn_lifecycle_install(), TN_OK);
    assert_false(tn_lifecycle_is_stopping());
    assert_int_equal(tn_lifecycle_wait(10), 0); /* timeout, no stop */
    raise(SIGTERM);
    assert_true(tn_lifecycle_is_stopping());
    assert_int_equal(tn_lifecycle_wait(5000), 1);
    tn_lifecycle_reset();
}

static void test_request_stop_from_thread_context(void **state)
{
    (void)state;
    tn_lifecycle_reset();
    tn_lifecycle_request_stop();
    assert_int_equal(tn_lifecycle_wait(-1), 1);
    assert_int_equal(tn_lifecycle_grace_left_ms(), INT64_MAX);
    tn_lifecycle_reset();
}

/* In a child: arm a short grace period and hang; the watchdog must end it with code 1. */
static void test_grace_watchdog_exits(void **state)
{
    (void)state;
    pid_t pid = fork();
    if (pid == 0) {
        tn_lifecycle_install();
        tn_lifecycle_arm_grace(200);
        tn_clock_sleep_ms(10000);
        _exit(0);
    }
    int st;
    int64_t t0 = tn_clock_mono_ms();
    waitpid(pid, &st, 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    assert_true(tn_clock_mono_ms() - t0 < 9000);
}

/* A second signal during the drain ends the process at once. */
static void test_second_signal_exits(void **state)
{
    (void)state;
    pid_t pid = fork();
    if (pid == 0) {
        tn_lifecycle_install();
        raise(SIGINT); /* first: starts the drain */
        if (!tn_lifecycle_is_stopping())
            _exit(3);
        raise(SIGTERM); /* second: exit now */
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigterm_wakes_wait),
        cmocka_unit_test(test_request_stop_from_thread_context),
        cmocka_unit_test(test_grace_watchdog_exits),
        cmocka_unit_test(test_second_signal_exits),
    };
    return cmocka_run_group_tests_name("lifecycle", tests, NULL, NULL);
}
