/* Unit tests for common/src/clock.c: RFC 3339 timestamps against gmtime_r() and snprintf(). */
#include "tn_test.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "taina/clock.h"

/* What the libc pair writes for @p ms (the reference). */
static void reference(char *buf, size_t len, int64_t ms)
{
    time_t secs = (time_t)(ms / 1000);
    int rem = (int)(ms % 1000);
    if (rem < 0) {
        rem += 1000;
        secs -= 1;
    }
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, rem);
}

static void same(int64_t ms)
{
    char want[64], got[64];
    reference(want, sizeof(want), ms);
    tn_clock_rfc3339(got, sizeof(got), ms);
    if (strcmp(want, got) != 0)
        fail_msg("%lld ms: %s, want %s", (long long)ms, got, want);
}

static void test_known(void **state)
{
    (void)state;
    char b[32];
    assert_string_equal(tn_clock_rfc3339(b, sizeof(b), 0), "1970-01-01T00:00:00.000Z");
    assert_string_equal(tn_clock_rfc3339(b, sizeof(b), 951782400123), "2000-02-29T00:00:00.123Z");
    assert_string_equal(tn_clock_rfc3339(b, sizeof(b), 1796342399999), "2026-12-03T23:59:59.999Z");
    assert_string_equal(tn_clock_rfc3339(b, sizeof(b), -1), "1969-12-31T23:59:59.999Z");
    assert_string_equal(tn_clock_rfc3339(b, sizeof(b), 4107542400000), "2100-03-01T00:00:00.000Z");
    /* cut as snprintf cuts */
    char small[11];
    assert_string_equal(tn_clock_rfc3339(small, sizeof(small), 0), "1970-01-01");
}

/* Every day boundary from 1900 to 2200 (leap years, centuries, 2000), and a seeded spread of
 * instants from year 1 to 9999, as gmtime_r() and snprintf() give them. */
static void test_against_libc(void **state)
{
    (void)state;
    for (int64_t d = -25567; d < 84000; d++) {
        same(d * 86400000);
        same(d * 86400000 - 1);
        same(d * 86400000 + 43200500);
    }
    uint64_t s = 0x9E3779B97F4A7C15u;
    for (int i = 0; i < 200000; i++) {
        s = s * 6364136223846793005u + 1442695040888963407u;
        int64_t lo = -62135596800000, hi = 253402300799999; /* 0001-01-01 .. 9999-12-31 */
        same(lo + (int64_t)((s >> 11) % (uint64_t)(hi - lo)));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known),
        cmocka_unit_test(test_against_libc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
