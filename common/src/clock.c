/* Clocks and timestamps. */
#include "taina/clock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t tn_clock_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double tn_clock_mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int64_t tn_clock_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Digits of v, zero-padded to n, at o. */
static void put_digits(char *o, unsigned v, int n)
{
    while (n-- > 0) {
        o[n] = (char)('0' + v % 10);
        v /= 10;
    }
}

char *tn_clock_rfc3339(char *buf, size_t len, int64_t epoch_ms)
{
    int64_t secs = epoch_ms / 1000;
    int ms = (int)(epoch_ms % 1000);
    if (ms < 0) {
        ms += 1000;
        secs -= 1;
    }
    /* The civil date of a day count by arithmetic (March-based years of 400-year eras), not
     * gmtime_r() and snprintf(): this runs for every enriched record and log line, and the libc
     * pair cost some 3,000 instructions (a lock inside gmtime_r). */
    int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
    int64_t sod = secs - days * 86400;
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;                                      /* [0, 146096] */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
    int64_t mp = (5 * doy + 2) / 153;                                    /* [0, 11], March = 0 */
    int64_t day = doy - (153 * mp + 2) / 5 + 1;
    int64_t month = mp < 10 ? mp + 3 : mp - 9;
    int64_t year = yoe + era * 400 + (month <= 2);
    if (year < 0 || year > 9999) { /* as printf would write it */
        snprintf(buf, len, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", (long long)year, (int)month,
                 (int)day, (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60), ms);
        return buf;
    }
    char t[25]; /* YYYY-MM-DDTHH:MM:SS.mmmZ */
    put_digits(t, (unsigned)year, 4);
    t[4] = '-';
    put_digits(t + 5, (unsigned)month, 2);
    t[7] = '-';
    put_digits(t + 8, (unsigned)day, 2);
    t[10] = 'T';
    put_digits(t + 11, (unsigned)(sod / 3600), 2);
    t[13] = ':';
    put_digits(t + 14, (unsigned)(sod / 60 % 60), 2);
    t[16] = ':';
    put_digits(t + 17, (unsigned)(sod % 60), 2);
    t[19] = '.';
    put_digits(t + 20, (unsigned)ms, 3);
    t[23] = 'Z';
    t[24] = '\0';
    if (len > 0) {
        size_t n = len - 1 < 24 ? len - 1 : 24;
        memcpy(buf, t, n);
        buf[n] = '\0';
    }
    return buf;
}

void tn_clock_sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}
